//go:build cgo

package gpusim_test

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/gpumon/gpusim"
	"github.com/modeltel/modeltel/internal/testkit"
)

// values returns the values of name's series whose labels include want.
func values(t *testing.T, c prometheus.Collector, name string, want map[string]string) []float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for k, v := range want {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				out = append(out, g.GetValue())
			} else {
				out = append(out, m.GetCounter().GetValue())
			}
		}
	}
	return out
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.Label {
		if l.GetName() == k {
			return l.GetValue() == v
		}
	}
	return false
}

// waitSeries waits until name has n series.
func waitSeries(t *testing.T, c prometheus.Collector, name string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if testutil.CollectAndCount(c, name) == n {
			return
		}
	}
	t.Fatalf("%s: %d series, want %d within 5s", name, testutil.CollectAndCount(c, name), n)
}

// TestProfilingH100: eight simulated H100 SXMs under load give the GPM
// series (following the load), PCIe and NVLink rates, and 18 active
// NVLinks each with their counters; injected NVLink errors show on their
// link.
func TestProfilingH100(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 8})
	_ = sim.SetLoad(gpusim.AllGPUs, 0.6)
	c := collector(t, sim, gpumon.WithSampleInterval(20*time.Millisecond))
	waitSeries(t, c, "gpu_tensor_pipe_active_ratio", 8)
	testkit.Lint(t, c)
	for name, want := range map[string]float64{
		"gpu_graphics_engine_active_ratio": 0.6, "gpu_sm_active_ratio": 0.57, "gpu_sm_occupancy_ratio": 0.27,
		"gpu_tensor_pipe_active_ratio": 0.42, "gpu_dram_active_ratio": 0.36,
		"gpu_pcie_receive_bytes_per_second": 0.15 * 64e9 * 0.6, "gpu_pcie_transmit_bytes_per_second": 0.05 * 64e9 * 0.6,
		"gpu_nvlink_transmit_bytes_per_second": 18 * 0.5 * 25e9 * 0.6, "gpu_nvlink_receive_bytes_per_second": 18 * 0.5 * 25e9 * 0.6,
	} {
		got := values(t, c, name, map[string]string{"gpu": "7"})
		if len(got) != 1 || math.Abs(got[0]-want) > 1e-6*want {
			t.Errorf("%s{gpu=7} = %v, want %v", name, got, want)
		}
	}
	for name, n := range map[string]int{"gpu_nvlink_active": 8 * 18, "gpu_nvlink_transmit_bytes_total": 8 * 18,
		"gpu_nvlink_receive_bytes_total": 8 * 18, "gpu_nvlink_errors_total": 8 * 18 * 4} {
		if got := testutil.CollectAndCount(c, name); got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
	}
	if err := sim.InjectNVLinkErrors(2, 5, 7); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := values(t, c, "gpu_nvlink_errors_total", map[string]string{"gpu": "2", "link": "5", "type": "crc_flit"})
		if len(got) == 1 && got[0] == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gpu_nvlink_errors_total{gpu=2,link=5,type=crc_flit} = %v, want 7", got)
		}
	}
}

// TestProfilingUnsupported: an A100 has NVLink but no GPM (PCIe throughput
// from nvmlDeviceGetPcieThroughput instead), an L4 neither; what is missing
// is counted once per GPU, and the GPUs stay up.
func TestProfilingUnsupported(t *testing.T) {
	for _, tc := range []struct {
		model         gpusim.Model
		links, noLink int
	}{{gpusim.A100SXM80GB, 12, 0}, {gpusim.L4, 0, 2}} {
		t.Run(tc.model.Key, func(t *testing.T) {
			sim := newSim(t, gpusim.Config{GPUs: 2, Model: tc.model})
			_ = sim.SetLoad(gpusim.AllGPUs, 0.5)
			c := collector(t, sim, gpumon.WithSampleInterval(20*time.Millisecond))
			waitSeries(t, c, "gpu_pcie_receive_bytes_per_second", 2)
			if n := testutil.CollectAndCount(c, "gpu_tensor_pipe_active_ratio", "gpu_sm_active_ratio", "gpu_nvlink_transmit_bytes_per_second"); n != 0 {
				t.Errorf("%d GPM series without GPM", n)
			}
			if n := testutil.CollectAndCount(c, "gpu_nvlink_active"); n != 2*tc.links {
				t.Errorf("gpu_nvlink_active: %d series, want %d", n, 2*tc.links)
			}
			if got := values(t, c, "gpumon_unsupported_gpus", map[string]string{"feature": "gpm"}); len(got) != 1 || got[0] != 2 {
				t.Errorf("unsupported gpm = %v, want 2", got)
			}
			if got := values(t, c, "gpumon_unsupported_gpus", map[string]string{"feature": "nvlink"}); len(got) != 1 || got[0] != float64(tc.noLink) {
				t.Errorf("unsupported nvlink = %v, want %d", got, tc.noLink)
			}
			for _, v := range values(t, c, "gpu_up", nil) {
				if v != 1 {
					t.Errorf("gpu_up %v", v)
				}
			}
		})
	}
}

// TestProfilingDCGMNames: with DCGM names, dcgm-exporter's profiling and
// NVLink fields for every simulated H100.
func TestProfilingDCGMNames(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 8})
	_ = sim.SetLoad(gpusim.AllGPUs, 0.5)
	c := collector(t, sim, gpumon.WithDCGMNames(), gpumon.WithSampleInterval(20*time.Millisecond))
	waitSeries(t, c, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 8)
	for _, name := range []string{"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_SM_ACTIVE", "DCGM_FI_PROF_SM_OCCUPANCY",
		"DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_PROF_PCIE_TX_BYTES", "DCGM_FI_PROF_PCIE_RX_BYTES", "DCGM_FI_PROF_NVLINK_TX_BYTES",
		"DCGM_FI_PROF_NVLINK_RX_BYTES", "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
		"DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
		"DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"} {
		if n := testutil.CollectAndCount(c, name); n != 8 {
			t.Errorf("%s: %d series, want 8", name, n)
		}
	}
}

// TestProfilingMIG: simulated GPUs in MIG mode report memory and GPM
// activity per GPU instance, labelled gpu_instance/gpu_instance_profile and,
// with DCGM names, GPU_I_ID/GPU_I_PROFILE.
func TestProfilingMIG(t *testing.T) {
	cfg := gpusim.Config{GPUs: 2, MIG: []string{"3g.40gb", "2g.20gb", "1g.10gb"}}
	sim := newSim(t, cfg)
	_ = sim.SetLoad(gpusim.AllGPUs, 0.5)
	c := collector(t, sim, gpumon.WithSampleInterval(20*time.Millisecond))
	waitSeries(t, c, "gpu_mig_tensor_pipe_active_ratio", 6)
	testkit.Lint(t, c)
	if got := values(t, c, "gpu_mig_memory_total_bytes", map[string]string{"gpu": "1", "gpu_instance": "1", "gpu_instance_profile": "3g.40gb"}); len(got) != 1 || got[0] != 40192<<20 {
		t.Errorf("gpu_mig_memory_total_bytes of 3g.40gb = %v, want %d", got, 40192<<20)
	}
	if got := values(t, c, "gpu_mig_tensor_pipe_active_ratio", map[string]string{"gpu_instance_profile": "1g.10gb"}); len(got) != 2 || math.Abs(got[0]-0.35) > 1e-6 {
		t.Errorf("gpu_mig_tensor_pipe_active_ratio of 1g.10gb = %v, want 0.35 on 2 GPUs", got)
	}

	sim2 := newSim(t, cfg)
	d := collector(t, sim2, gpumon.WithDCGMNames(), gpumon.WithSampleInterval(20*time.Millisecond))
	waitSeries(t, d, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 2+6)
	if got := values(t, d, "DCGM_FI_DEV_FB_USED", map[string]string{"GPU_I_ID": "2", "GPU_I_PROFILE": "2g.20gb"}); len(got) != 2 {
		t.Errorf("DCGM_FI_DEV_FB_USED of instance 2 (2g.20gb): %v, want 2 GPUs", got)
	}
	if got := values(t, d, "DCGM_FI_DEV_GPU_TEMP", map[string]string{"GPU_I_ID": ""}); len(got) != 2 {
		t.Errorf("DCGM_FI_DEV_GPU_TEMP with GPU_I_ID=\"\": %v, want 2 GPUs", got)
	}
	if _, err := gpusim.New(gpusim.Config{MIG: []string{"7g.80gb", "1g.10gb"}}); err == nil {
		t.Error("8 slices: no error")
	}
	if _, err := gpusim.New(gpusim.Config{Model: gpusim.L4, MIG: []string{"1g.10gb"}}); err == nil {
		t.Error("MIG on an L4: no error")
	}
}
