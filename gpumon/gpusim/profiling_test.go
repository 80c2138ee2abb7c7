//go:build cgo

package gpusim_test

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/modeltel/modeltel/gpumon/gpusim"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestGPMRates: two GPM samples 10 s apart at load 0.5 give the simulated
// activities and rates; two at the same moment give the rates then.
func TestGPMRates(t *testing.T) {
	clk := newClock()
	sim := newSim(t, gpusim.Config{Now: clk.Now})
	lib, devs := open(t, sim)
	_ = sim.SetLoad(0, 0.5)
	if s, ret := devs[0].GpmQueryDeviceSupport(); ret != nvml.SUCCESS || s.IsSupportedDevice != 1 {
		t.Fatalf("GpmQueryDeviceSupport = %+v, %v", s, ret)
	}
	s1, _ := lib.GpmSampleAlloc()
	s2, _ := lib.GpmSampleAlloc()
	ids := []nvml.GpmMetricId{nvml.GPM_METRIC_GRAPHICS_UTIL, nvml.GPM_METRIC_SM_UTIL, nvml.GPM_METRIC_SM_OCCUPANCY,
		nvml.GPM_METRIC_ANY_TENSOR_UTIL, nvml.GPM_METRIC_DRAM_BW_UTIL, nvml.GPM_METRIC_PCIE_TX_PER_SEC,
		nvml.GPM_METRIC_PCIE_RX_PER_SEC, nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, nvml.GPM_METRIC_FP64_UTIL}
	const mib = 1 << 20
	want := []float64{50, 47.5, 22.5, 35, 30, 0.05 * 64e9 * 0.5 / mib, 0.15 * 64e9 * 0.5 / mib, 18 * 0.5 * 25e9 * 0.5 / mib}
	get := func() *nvml.GpmMetricsGetType {
		m := &nvml.GpmMetricsGetType{NumMetrics: uint32(len(ids)), Sample1: s1, Sample2: s2}
		for k, id := range ids {
			m.Metrics[k].MetricId = uint32(id)
		}
		if ret := lib.GpmMetricsGet(m); ret != nvml.SUCCESS {
			t.Fatalf("GpmMetricsGet: %v", ret)
		}
		return m
	}
	for _, dt := range []time.Duration{10 * time.Second, 0} {
		if ret := lib.GpmSampleGet(devs[0], s1); ret != nvml.SUCCESS {
			t.Fatal(ret)
		}
		clk.Add(dt)
		if ret := s2.Get(devs[0]); ret != nvml.SUCCESS {
			t.Fatal(ret)
		}
		m := get()
		for k, w := range want {
			if x := m.Metrics[k]; x.NvmlReturn != uint32(nvml.SUCCESS) || !near(x.Value, w) {
				t.Errorf("dt %v: metric %d = %v (%v), want %v", dt, ids[k], x.Value, nvml.Return(x.NvmlReturn), w)
			}
		}
		if r := m.Metrics[len(ids)-1].NvmlReturn; r != uint32(nvml.ERROR_NOT_SUPPORTED) {
			t.Errorf("FP64: %v, want NOT_SUPPORTED", nvml.Return(r))
		}
	}
}

// TestNVLinkSim: an H100 SXM has 18 active links whose data counters
// follow the load, an A100 12, an L4 none; injected errors count on the
// link (CRC flit, and a replay each).
func TestNVLinkSim(t *testing.T) {
	for _, tc := range []struct {
		model gpusim.Model
		links int
		gpm   uint32
	}{{gpusim.H100SXM, 18, 1}, {gpusim.A100SXM80GB, 12, 0}, {gpusim.L4, 0, 0}} {
		t.Run(tc.model.Key, func(t *testing.T) {
			clk := newClock()
			sim := newSim(t, gpusim.Config{Model: tc.model, Now: clk.Now})
			_, devs := open(t, sim)
			d := devs[0]
			if s, _ := d.GpmQueryDeviceSupport(); s.IsSupportedDevice != tc.gpm {
				t.Errorf("GPM support %d, want %d", s.IsSupportedDevice, tc.gpm)
			}
			for l := range tc.links {
				if st, ret := d.GetNvLinkState(l); ret != nvml.SUCCESS || st != nvml.FEATURE_ENABLED {
					t.Fatalf("link %d: %v, %v", l, st, ret)
				}
			}
			want := nvml.ERROR_INVALID_ARGUMENT
			if tc.links == 0 {
				want = nvml.ERROR_NOT_SUPPORTED
			}
			if _, ret := d.GetNvLinkState(tc.links); ret != want {
				t.Errorf("link %d: %v, want %v", tc.links, ret, want)
			}
			if tc.links == 0 {
				if err := sim.InjectNVLinkErrors(0, 0, 1); err == nil {
					t.Error("InjectNVLinkErrors on an L4: no error")
				}
				return
			}
			_ = sim.SetLoad(0, 0.5)
			clk.Add(10 * time.Second)
			fv := []nvml.FieldValue{{FieldId: nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX, ScopeId: 3}, {FieldId: nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX, ScopeId: 3}}
			if ret := d.GetFieldValues(fv); ret != nvml.SUCCESS {
				t.Fatal(ret)
			}
			for _, v := range fv {
				got := binary.NativeEndian.Uint64(v.Value[:])
				if w := uint64(0.5 * tc.model.NVLinkGBps * 1e9 * 0.5 * 10 / 1024); v.NvmlReturn != uint32(nvml.SUCCESS) || got != w {
					t.Errorf("field %d: %d KiB (%v), want %d", v.FieldId, got, nvml.Return(v.NvmlReturn), w)
				}
			}
			if err := sim.InjectNVLinkErrors(0, 3, 5); err != nil {
				t.Fatal(err)
			}
			_ = sim.Clear(0) // kept across a reset
			for c, w := range map[nvml.NvLinkErrorCounter]uint64{nvml.NVLINK_ERROR_DL_CRC_FLIT: 5, nvml.NVLINK_ERROR_DL_REPLAY: 5, nvml.NVLINK_ERROR_DL_CRC_DATA: 0, nvml.NVLINK_ERROR_DL_RECOVERY: 0} {
				if got, ret := d.GetNvLinkErrorCounter(3, c); ret != nvml.SUCCESS || got != w {
					t.Errorf("counter %d: %d (%v), want %d", c, got, ret, w)
				}
			}
			if err := sim.InjectNVLinkErrors(0, tc.links, 1); err == nil {
				t.Errorf("InjectNVLinkErrors on link %d: no error", tc.links)
			}
			if kb, ret := d.GetPcieThroughput(nvml.PCIE_UTIL_RX_BYTES); ret != nvml.SUCCESS || kb == 0 {
				t.Errorf("GetPcieThroughput: %d, %v", kb, ret)
			}
		})
	}
}
