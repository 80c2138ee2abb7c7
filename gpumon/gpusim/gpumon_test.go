//go:build cgo

package gpusim_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/gpumon/gpusim"
	"github.com/modeltel/modeltel/internal/testkit"
)

// designSeries are the per-GPU default series of DESIGN.md and
// docs/gpumon.md, with how many series each has per GPU on an H100 SXM
// (gpu_fan_speed_ratio is absent: the board is passively cooled and NVML
// answers ERROR_NOT_SUPPORTED, as for the real one).
var designSeries = map[string]int{
	"gpu_info": 1, "gpu_up": 1, "gpu_utilization_ratio": 1, "gpu_memory_utilization_ratio": 1,
	"gpu_memory_used_bytes": 1, "gpu_memory_free_bytes": 1, "gpu_memory_total_bytes": 1,
	"gpu_temperature_celsius": 1, "gpu_memory_temperature_celsius": 1, "gpu_power_usage_watts": 1,
	"gpu_power_limit_watts": 1, "gpu_energy_consumed_joules_total": 1, "gpu_sm_clock_hertz": 1,
	"gpu_memory_clock_hertz": 1, "gpu_clock_event_active": 9, "gpu_pcie_replay_errors_total": 1,
	"gpu_ecc_errors_total": 2, "gpu_memory_remapped_rows_total": 2, "gpu_memory_row_remap_pending": 1,
	"gpu_memory_row_remap_failed": 1, "gpu_process_memory_used_bytes": 1, "gpu_xid_errors_total": 1,
	"gpu_process_sm_utilization_ratio": 1, "gpu_process_memory_utilization_ratio": 1,
	"gpu_process_encoder_utilization_ratio": 1, "gpu_process_decoder_utilization_ratio": 1,
	"gpu_fan_speed_ratio": 0,
}

// dcgmSeries are the DCGM names gpumon serves (docs/gpumon.md), one series
// per GPU each.
var dcgmSeries = []string{
	"DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_GPU_TEMP",
	"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
	"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_ENC_UTIL", "DCGM_FI_DEV_DEC_UTIL",
	"DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_RESERVED",
	"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
	"DCGM_FI_DEV_ROW_REMAP_FAILURE",
}

// collector is gpumon over sim, closed (with the faults cleared) when the
// test ends.
func collector(t *testing.T, sim *gpusim.Sim, opts ...gpumon.Option) *gpumon.Collector {
	t.Helper()
	c, err := gpumon.New(append([]gpumon.Option{gpumon.WithNVML(sim.NVML())}, opts...)...)
	if err != nil {
		t.Fatalf("gpumon.New: %v", err)
	}
	t.Cleanup(func() {
		_ = sim.Clear(gpusim.AllGPUs)
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// value is the value of name{gpu}; it fails the test unless there is one.
func value(t *testing.T, c prometheus.Collector, name, gpu string) float64 {
	t.Helper()
	f := filtered{c, name, gpu}
	if n := testutil.CollectAndCount(f); n != 1 {
		t.Fatalf("%s{gpu=%q}: %d series, want 1", name, gpu, n)
	}
	return testutil.ToFloat64(f)
}

// waitValue polls name{gpu} until it is want, for up to 5 s.
func waitValue(t *testing.T, c prometheus.Collector, name, gpu string, want float64) {
	t.Helper()
	var got float64
	for range 500 {
		f := filtered{c, name, gpu}
		if testutil.CollectAndCount(f) == 1 {
			if got = testutil.ToFloat64(f); got == want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s{gpu=%q} = %v, want %v within 5s", name, gpu, got, want)
}

// TestDefaultNames: eight simulated H100s under load give every default
// series of the design for every GPU, with sane values, lint-clean names,
// and gpu_info says they are simulated.
func TestDefaultNames(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 8, Seed: 1, ProcessPID: uint32(os.Getpid())})
	c := collector(t, sim, gpumon.WithProcessMetrics())
	_ = sim.SetLoad(gpusim.AllGPUs, 0.7)
	_ = sim.InjectXID(gpusim.AllGPUs, 13)
	waitValue(t, c, "gpu_xid_errors_total", "7", 1)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("pedantic Gather: %v", err)
	}
	testkit.Lint(t, c)
	for name, per := range designSeries {
		if n := testutil.CollectAndCount(c, name); n != 8*per {
			t.Errorf("%s: %d series, want %d for 8 GPUs", name, n, 8*per)
		}
	}
	m := gpusim.H100SXM
	for _, gpu := range []string{"0", "7"} {
		for _, tc := range []struct {
			name     string
			min, max float64
		}{
			{"gpu_up", 1, 1},
			{"gpu_utilization_ratio", 0.7, 0.7},
			{"gpu_memory_utilization_ratio", 0.42, 0.42},
			{"gpu_memory_used_bytes", 1 << 30, float64(m.MemoryTotal)},
			{"gpu_memory_total_bytes", float64(m.MemoryTotal), float64(m.MemoryTotal)},
			{"gpu_temperature_celsius", m.IdleTempC, m.FullTempC},
			{"gpu_memory_temperature_celsius", m.IdleTempC, m.FullTempC + 10},
			{"gpu_power_usage_watts", m.IdlePowerW + 1, m.PowerLimitW},
			{"gpu_power_limit_watts", 700, 700},
			{"gpu_energy_consumed_joules_total", 1, 1e12},
			{"gpu_sm_clock_hertz", 1.9e9, 1.98e9},
			{"gpu_memory_clock_hertz", 2.619e9, 2.619e9},
			{"gpu_pcie_replay_errors_total", 0, 0},
			{"gpu_memory_row_remap_failed", 0, 0},
			{"gpu_process_memory_used_bytes", 1 << 30, float64(m.MemoryTotal)},
			{"gpu_process_sm_utilization_ratio", 0.7, 0.7},
			{"gpu_process_memory_utilization_ratio", 0.42, 0.42},
			{"gpu_process_encoder_utilization_ratio", 0, 0},
		} {
			if v := value(t, c, tc.name, gpu); v < tc.min || v > tc.max {
				t.Errorf("%s{gpu=%s} = %v, want %v to %v", tc.name, gpu, v, tc.min, tc.max)
			}
		}
		info := filtered{c, "gpu_info", gpu}
		ch := make(chan prometheus.Metric, 1)
		info.Collect(ch)
		mi := <-ch
		if labelOf(mi, "simulated") != "true" || labelOf(mi, "name") != m.Name || !strings.HasSuffix(labelOf(mi, "driver_version"), "-sim") {
			t.Errorf("gpu_info{gpu=%s}: simulated=%q name=%q driver_version=%q", gpu, labelOf(mi, "simulated"), labelOf(mi, "name"), labelOf(mi, "driver_version"))
		}
	}
	if err := c.Healthy(context.Background()); err != nil {
		t.Errorf("Healthy: %v (XID 13 is an application error)", err)
	}
}

// A model with a fan reports gpu_fan_speed_ratio, between 0.3 and 1.
func TestFan(t *testing.T) {
	m := gpusim.L4
	m.HasFan = true
	sim := newSim(t, gpusim.Config{GPUs: 2, Model: m})
	c := collector(t, sim)
	if v := value(t, c, "gpu_fan_speed_ratio", "1"); v < 0.3 || v > 1 {
		t.Errorf("gpu_fan_speed_ratio = %v", v)
	}
	// The L4's GDDR6 has no temperature sensor of its own.
	if n := testutil.CollectAndCount(c, "gpu_memory_temperature_celsius"); n != 0 {
		t.Errorf("gpu_memory_temperature_celsius on an L4: %d series", n)
	}
}

// TestDCGMNames: the same GPUs with dcgm-exporter's names: every name gpumon
// serves, for every GPU, with the -sim driver version and err_code/err_msg
// on DCGM_FI_DEV_XID_ERRORS.
func TestDCGMNames(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 8, Seed: 1})
	c := collector(t, sim, gpumon.WithDCGMNames(), gpumon.WithHostname("sim-node"))
	_ = sim.SetLoad(gpusim.AllGPUs, 0.5)
	for _, name := range dcgmSeries {
		if n := testutil.CollectAndCount(c, name); n != 8 {
			t.Errorf("%s: %d series, want 8", name, n)
		}
	}
	if v := value(t, c, "DCGM_FI_DEV_GPU_UTIL", "3"); v != 50 {
		t.Errorf("DCGM_FI_DEV_GPU_UTIL = %v, want 50", v)
	}
	_ = sim.InjectXID(3, 79)
	waitValue(t, c, "DCGM_FI_DEV_XID_ERRORS", "3", 79)
	ch := make(chan prometheus.Metric, 1)
	filtered{c, "DCGM_FI_DEV_XID_ERRORS", "3"}.Collect(ch)
	m := <-ch
	if labelOf(m, "err_code") != "79" || labelOf(m, "err_msg") != "GPU has fallen off the bus" ||
		!strings.HasSuffix(labelOf(m, "DCGM_FI_DRIVER_VERSION"), "-sim") || labelOf(m, "Hostname") != "sim-node" {
		t.Errorf("DCGM_FI_DEV_XID_ERRORS labels: %v", m.Desc())
	}
	if v := value(t, c, "DCGM_FI_DEV_XID_ERRORS", "2"); v != 0 {
		t.Errorf("gpu 2's last XID: %v", v)
	}
}

// TestFollowsLoad: with an injected clock, utilisation and power follow the
// load, the temperature rises, and the energy counter never goes down.
func TestFollowsLoad(t *testing.T) {
	clk := newClock()
	sim := newSim(t, gpusim.Config{GPUs: 2, Now: clk.Now})
	c := collector(t, sim)
	idlePower := value(t, c, "gpu_power_usage_watts", "0")
	idleTemp := value(t, c, "gpu_temperature_celsius", "0")
	lastEnergy := value(t, c, "gpu_energy_consumed_joules_total", "0")
	_ = sim.SetLoad(0, 0.9)
	for i := range 10 {
		clk.Add(10 * time.Second)
		e := value(t, c, "gpu_energy_consumed_joules_total", "0")
		if e <= lastEnergy {
			t.Fatalf("step %d: energy %v after %v", i, e, lastEnergy)
		}
		lastEnergy = e
	}
	if u := value(t, c, "gpu_utilization_ratio", "0"); u != 0.9 {
		t.Errorf("utilisation %v at load 0.9", u)
	}
	if p := value(t, c, "gpu_power_usage_watts", "0"); p <= idlePower+500 {
		t.Errorf("power %v W at load 0.9, idle %v W", p, idlePower)
	}
	if tc := value(t, c, "gpu_temperature_celsius", "0"); tc <= idleTemp+30 {
		t.Errorf("temperature %v after 100 s at load 0.9, idle %v", tc, idleTemp)
	}
	if u := value(t, c, "gpu_utilization_ratio", "1"); u != 0 {
		t.Errorf("gpu 1 utilisation %v, want 0 (its load was not set)", u)
	}
	if v := testutil.ToFloat64(oneClockReason(c, "1", "gpu_idle")); v != 1 {
		t.Errorf("gpu 1 gpu_idle = %v", v)
	}
	_ = sim.SetLoad(0, 1)
	if v := testutil.ToFloat64(oneClockReason(c, "0", "sw_power_cap")); v != 1 {
		t.Errorf("gpu 0 sw_power_cap at full load = %v", v)
	}
}

func oneClockReason(c prometheus.Collector, gpu, reason string) prometheus.Collector {
	return reasonFilter{filtered{c, "gpu_clock_event_active", gpu}, reason}
}

type reasonFilter struct {
	f      filtered
	reason string
}

func (r reasonFilter) Describe(ch chan<- *prometheus.Desc) { r.f.Describe(ch) }
func (r reasonFilter) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	r.f.Collect(all)
	close(all)
	for m := range all {
		if labelOf(m, "reason") == r.reason {
			ch <- m
		}
	}
}

// TestXIDCounter: an injected XID counts in gpu_xid_errors_total for that
// GPU and code; a critical one (79) makes Healthy fail.
func TestXIDCounter(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 4})
	c := collector(t, sim)
	_ = sim.InjectXID(2, 79)
	waitValue(t, c, "gpu_xid_errors_total", "2", 1)
	_ = sim.InjectXID(2, 79)
	waitValue(t, c, "gpu_xid_errors_total", "2", 2)
	if n := testutil.CollectAndCount(c, "gpu_xid_errors_total"); n != 1 {
		t.Errorf("%d XID series, want only gpu 2's", n)
	}
	err := c.Healthy(context.Background())
	if !errors.Is(err, gpumon.ErrUnhealthy) || !strings.Contains(err.Error(), "gpu 2") || !strings.Contains(err.Error(), "critical XID 79") {
		t.Errorf("Healthy = %v, want gpu 2 critical XID 79", err)
	}
}

// TestFallOffBus: the lost GPU alone reports gpu_up 0 and none of its
// values, Healthy names it, and Clear brings it back.
func TestFallOffBus(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 4})
	c := collector(t, sim)
	_ = sim.FallOffBus(1)
	for gpu, want := range []float64{1, 0, 1, 1} {
		if v := value(t, c, "gpu_up", string(rune('0'+gpu))); v != want {
			t.Errorf("gpu_up{gpu=%d} = %v, want %v", gpu, v, want)
		}
	}
	if n := testutil.CollectAndCount(filtered{c, "gpu_power_usage_watts", "1"}); n != 0 {
		t.Errorf("a lost GPU reports its power")
	}
	if err := c.Healthy(context.Background()); !errors.Is(err, gpumon.ErrUnhealthy) || !strings.Contains(err.Error(), "gpu 1") || !strings.Contains(err.Error(), "lost") {
		t.Errorf("Healthy = %v, want gpu 1 lost", err)
	}
	_ = sim.Clear(1)
	if v := value(t, c, "gpu_up", "1"); v != 1 {
		t.Errorf("gpu_up{gpu=1} after Clear = %v", v)
	}
	if err := c.Healthy(context.Background()); err != nil {
		t.Errorf("Healthy after Clear: %v", err)
	}
}

// TestHang: a hung GPU reports gpu_up 0 within the scrape timeout while the
// others report theirs, the timeout is counted, and it recovers after Clear.
func TestHang(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 3})
	c := collector(t, sim, gpumon.WithScrapeTimeout(100*time.Millisecond))
	_ = sim.Hang(2)
	start := time.Now()
	if v := value(t, c, "gpu_up", "2"); v != 0 {
		t.Errorf("hung gpu_up = %v, want 0", v)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the scrape took %v with a 100ms scrape timeout", d)
	}
	if v := value(t, c, "gpu_up", "0"); v != 1 {
		t.Errorf("gpu 0 while gpu 2 hangs: gpu_up %v", v)
	}
	if v := testutil.ToFloat64(timeoutCounter{c}); v < 1 {
		t.Errorf("timeouts counted: %v", v)
	}
	_ = sim.Clear(2)
	waitValue(t, c, "gpu_up", "2", 1)
}

type timeoutCounter struct{ c prometheus.Collector }

func (f timeoutCounter) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }
func (f timeoutCounter) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 4096)
	f.c.Collect(all)
	close(all)
	for m := range all {
		if strings.Contains(m.Desc().String(), `"gpumon_collect_errors_total"`) && labelOf(m, "call") == "timeout" {
			ch <- m
		}
	}
}

// TestTimeSlicedProcesses: three processes sharing each simulated GPU (as
// under time-slicing or MPS) give three series per GPU of each
// per-process family, their memory adding up to the GPU's and their SM
// utilisation to its utilisation (within rounding); the exporter's own pid
// is named, the others (pids no Linux has) are not.
func TestTimeSlicedProcesses(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 2, Seed: 1, ProcessPID: uint32(os.Getpid()), Processes: 3})
	c := collector(t, sim, gpumon.WithProcessMetrics())
	_ = sim.SetLoad(gpusim.AllGPUs, 0.9)
	for _, name := range []string{"gpu_process_memory_used_bytes", "gpu_process_sm_utilization_ratio", "gpu_process_memory_utilization_ratio"} {
		if n := testutil.CollectAndCount(c, name); n != 6 {
			t.Errorf("%s: %d series, want 3 per GPU", name, n)
		}
	}
	ch := make(chan prometheus.Metric, 64)
	filtered{c, "gpu_process_sm_utilization_ratio", "1"}.Collect(ch)
	close(ch)
	var sum float64
	named := 0
	for m := range ch {
		var out dto.Metric
		_ = m.Write(&out)
		sum += out.GetGauge().GetValue()
		if labelOf(m, "process") != "" {
			named++
			if labelOf(m, "pid") != strconv.Itoa(os.Getpid()) {
				t.Errorf("pid %s named %q", labelOf(m, "pid"), labelOf(m, "process"))
			}
		}
	}
	if sum < 0.89 || sum > 0.91 || named != 1 {
		t.Errorf("gpu 1: SM utilisation adds up to %v (want 0.9), %d processes named (want 1)", sum, named)
	}
}
