//go:build cgo

package gpumon_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
)

// TestTimeoutAfterGoodRead: once a GPU's NVML call hangs, a scrape must not
// go on reporting its last read as if the GPU had answered it: its gpu_up is
// 0 and none of its stale values are served. (Only GPU 0's series are
// compared: with a 20 ms timeout GPU 1 may or may not make it on a loaded
// machine; TestHungDeviceIsolated checks it does.)
func TestTimeoutAfterGoodRead(t *testing.T) {
	b := newBox(t, 2)
	var hung atomic.Bool
	release := make(chan struct{})
	util := b.devs[0].GetUtilizationRatesFunc
	b.devs[0].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		if hung.Load() {
			<-release
		}
		return util()
	}
	c := newCollector(t, b, gpumon.WithScrapeTimeout(20*time.Millisecond))
	defer close(release)
	// A good read first. On a loaded machine a read can outlast 20 ms
	// without any hang: scrape until one makes it (10 s at most).
	for deadline := time.Now().Add(10 * time.Second); testutil.CollectAndCount(c, "gpu_power_usage_watts") != 2; {
		if time.Now().After(deadline) {
			t.Fatal("no scrape got both GPUs' values before the hang")
		}
		time.Sleep(time.Millisecond)
	}
	hung.Store(true)
	const want = `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 0
`
	for i := range 2 {
		if err := testutil.CollectAndCompare(onlyGPU(c, "0"), strings.NewReader(want), deviceNames...); err != nil {
			t.Errorf("scrape %d during the hang: %v", i+1, err)
		}
	}
}

// TestPanicInRead: a panic inside an NVML call (a go-nvml bug, or a mock that
// lacks a func) happens on the background read goroutine, where nothing would
// recover it: it must not take the process down nor wedge later scrapes. It
// reads as "not supported": that one value is left out, counted as
// call="panic", and the GPU's other values still count.
func TestPanicInRead(t *testing.T) {
	b := newBox(t, 2)
	var panics atomic.Bool
	panics.Store(true)
	temp := b.devs[1].GetTemperatureFunc
	b.devs[1].GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
		if panics.Load() {
			panic("boom")
		}
		return temp(s)
	}
	c := newCollector(t, b)
	if v := testutil.ToFloat64(upOf(t, c, "1")); v != 1 {
		t.Errorf("gpu_up{gpu=1} with one panicking call = %v, want 1", v)
	}
	if n := testutil.CollectAndCount(onlyGPU(c, "1"), "gpu_temperature_celsius"); n != 0 {
		t.Errorf("gpu 1 has %d temperature series while the call panics, want 0", n)
	}
	if n := testutil.CollectAndCount(onlyGPU(c, "1"), "gpu_power_usage_watts"); n != 1 {
		t.Errorf("gpu 1 has %d power series beside the panicking call, want 1", n)
	}
	if v := testutil.ToFloat64(upOf(t, c, "0")); v != 1 {
		t.Errorf("gpu_up{gpu=0} beside a panicking call = %v, want 1", v)
	}
	if err := c.Healthy(context.Background()); err != nil {
		t.Errorf("Healthy = %v, want nil: a panicking read is no fault of the GPU", err)
	}
	// errCount scrapes again: each of the six reads so far panicked once.
	if n := errCount(t, c, "panic"); n != 6 {
		t.Errorf(`gpumon_collect_errors_total{call="panic"} = %v, want 6`, n)
	}
	panics.Store(false)
	if n := testutil.CollectAndCount(c, "gpu_temperature_celsius"); n != 2 {
		t.Errorf("scrape after the panic: %d gpu_temperature_celsius series, want 2", n)
	}
}

// TestPanicInXIDWatcher: a panic in the XID watcher goroutine must not take
// the process down; Close still frees the event set and shuts NVML down.
func TestPanicInXIDWatcher(t *testing.T) {
	b := newBox(t, 2)
	b.set.WaitFunc = func(uint32) (nvml.EventData, nvml.Return) { panic("boom") }
	c := newCollector(t, b)
	for range 2000 {
		if errCount(t, c, "panic") == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := errCount(t, c, "panic"); n != 1 {
		t.Errorf(`gpumon_collect_errors_total{call="panic"} = %v, want 1`, n)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := b.freed.Load(); n != 1 {
		t.Errorf("event set freed %d times, want 1", n)
	}
}

// errCount is gpumon_collect_errors_total{call} of c, 0 when absent.
func errCount(t *testing.T, c *gpumon.Collector, call string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gpumon_collect_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "call" && l.GetValue() == call {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestNoPermission: on a MIG-enabled GPU, NVML answers device-level memory
// and process queries with ERROR_NO_PERMISSION unless the caller is root. The
// GPU answered; it is not down: the fields are left out and the refusal is
// counted, but gpu_up stays 1.
func TestNoPermission(t *testing.T) {
	b := newBox(t, 2)
	np := nvml.ERROR_NO_PERMISSION
	b.devs[0].GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, np }
	b.devs[0].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, np }
	c := newCollector(t, b, gpumon.WithProcessMetrics())
	const want = `
# HELP gpu_memory_used_bytes Device memory in use.
# TYPE gpu_memory_used_bytes gauge
gpu_memory_used_bytes{gpu="1",uuid="GPU-mock-1"} 2.147483648e+09
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 1
gpu_up{gpu="1",uuid="GPU-mock-1"} 1
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="GetComputeRunningProcesses"} 1
gpumon_collect_errors_total{call="GetMemoryInfo"} 1
gpumon_collect_errors_total{call="timeout"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_up", "gpu_memory_used_bytes", "gpumon_collect_errors_total"); err != nil {
		t.Error(err)
	}
}

// TestHungDeviceIsolated: one GPU whose NVML call hangs reports gpu_up 0 and
// counts a timeout, while the other GPUs report their real values in the
// same scrape; later scrapes do not start another read of the hung GPU (no
// goroutines pile up) but do read the others afresh; once the call returns,
// the GPU is back.
func TestHungDeviceIsolated(t *testing.T) {
	b := newBox(t, 3)
	release := make(chan struct{})
	var hung atomic.Bool
	hung.Store(true)
	util := b.devs[1].GetUtilizationRatesFunc
	b.devs[1].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		if hung.Load() {
			<-release
		}
		return util()
	}
	// The timeout must let the healthy GPUs' reads finish on a loaded CI
	// machine: it bounds only the wait for the hung one.
	c := newCollector(t, b, gpumon.WithScrapeTimeout(2*time.Second))
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	const want = `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 1
gpu_up{gpu="1",uuid="GPU-mock-1"} 0
gpu_up{gpu="2",uuid="GPU-mock-2"} 1
# HELP gpu_power_usage_watts Power drawn by the GPU and its memory.
# TYPE gpu_power_usage_watts gauge
gpu_power_usage_watts{gpu="0",uuid="GPU-mock-0"} 50
gpu_power_usage_watts{gpu="2",uuid="GPU-mock-2"} 52
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="timeout"} %d
`
	for i := 1; i <= 2; i++ {
		w := strings.Replace(want, "%d", string(rune('0'+i)), 1)
		if err := testutil.CollectAndCompare(c, strings.NewReader(w), "gpu_up", "gpu_power_usage_watts", "gpumon_collect_errors_total"); err != nil {
			t.Errorf("scrape %d during the hang: %v", i, err)
		}
		if n := len(b.devs[0].GetPowerUsageCalls()); n != i {
			t.Errorf("scrape %d: GPU 0 read %d times, want %d (a fresh read per scrape)", i, n, i)
		}
	}
	if n := len(b.devs[1].GetUtilizationRatesCalls()); n != 1 {
		t.Errorf("hung GPU 1: %d reads started, want 1 (later scrapes wait on the hung call)", n)
	}
	err := c.Healthy(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gpu 1 (GPU-mock-1)") || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Healthy during the hang = %v, want gpu 1 timed out", err)
	}
	if err != nil && strings.Contains(err.Error(), "gpu 0") {
		t.Errorf("Healthy during the hang = %v: gpu 0 answered", err)
	}

	hung.Store(false)
	close(release)
	released = true
	waitFor(t, c, "gpu_power_usage_watts", 3)
	if v := testutil.ToFloat64(upOf(t, c, "1")); v != 1 {
		t.Errorf("gpu_up{gpu=1} after the hang = %v, want 1", v)
	}
}

// TestCacheTTLWithHungDevice: WithCacheTTL must go on sparing the GPUs that
// answer while another GPU's call hangs: scrapes within the TTL reuse the
// answering GPU's read instead of reading it again every scrape, and the hung
// GPU still reports gpu_up 0.
func TestCacheTTLWithHungDevice(t *testing.T) {
	b := newBox(t, 2)
	release := make(chan struct{})
	defer close(release)
	util := b.devs[1].GetUtilizationRatesFunc
	b.devs[1].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		<-release
		return util()
	}
	// The timeout must let GPU 0's read finish on a loaded CI machine.
	c := newCollector(t, b, gpumon.WithCacheTTL(time.Hour), gpumon.WithScrapeTimeout(2*time.Second))
	const want = `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 1
gpu_up{gpu="1",uuid="GPU-mock-1"} 0
`
	for i := 1; i <= 3; i++ {
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_up"); err != nil {
			t.Errorf("scrape %d during the hang: %v", i, err)
		}
	}
	if n := len(b.devs[0].GetPowerUsageCalls()); n != 1 {
		t.Errorf("GPU 0 read %d times in 3 scrapes within the cache TTL, want 1", n)
	}
}
