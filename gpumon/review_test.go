//go:build cgo

package gpumon_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
)

// TestTimeoutAfterGoodRead: once NVML hangs, a scrape must not go on
// reporting the last read as if the GPUs had answered it: gpu_up is 0 for
// every GPU (none answered this scrape) and no stale values are served.
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
	if n := testutil.CollectAndCount(c, "gpu_power_usage_watts"); n != 2 {
		t.Fatalf("first scrape: %d gpu_power_usage_watts series, want 2", n)
	}
	hung.Store(true)
	const want = `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 0
gpu_up{gpu="1",uuid="GPU-mock-1"} 0
`
	for i := range 2 {
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), deviceNames...); err != nil {
			t.Errorf("scrape %d during the hang: %v", i+1, err)
		}
	}
}

// TestPanicInRead: a panic inside an NVML call (a go-nvml bug, or a mock that
// lacks a func) happens on the background read goroutine, where nothing would
// recover it: it must not take the process down nor wedge later scrapes.
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
	const want = `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 0
gpu_up{gpu="1",uuid="GPU-mock-1"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), deviceNames...); err != nil {
		t.Errorf("scrape with a panicking call: %v", err)
	}
	// errCount scrapes again: both reads panicked and were counted.
	if n := errCount(t, c, "panic"); n != 2 {
		t.Errorf(`gpumon_collect_errors_total{call="panic"} = %v, want 2`, n)
	}
	panics.Store(false)
	if n := testutil.CollectAndCount(c, "gpu_power_usage_watts"); n != 2 {
		t.Errorf("scrape after the panic: %d gpu_power_usage_watts series, want 2", n)
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
