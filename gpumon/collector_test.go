//go:build cgo

package gpumon_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/internal/testkit"
)

// deviceNames are the per-device default metrics (all but gpu_info, XID and
// the self-metrics).
var deviceNames = []string{
	"gpu_up", "gpu_utilization_ratio", "gpu_memory_utilization_ratio", "gpu_memory_used_bytes",
	"gpu_memory_free_bytes", "gpu_memory_total_bytes", "gpu_temperature_celsius", "gpu_power_usage_watts",
	"gpu_power_limit_watts", "gpu_energy_consumed_joules_total", "gpu_sm_clock_hertz", "gpu_memory_clock_hertz",
	"gpu_fan_speed_ratio", "gpu_clock_event_active", "gpu_pcie_replay_errors_total", "gpu_ecc_errors_total",
	"gpu_memory_temperature_celsius", "gpu_memory_remapped_rows_total", "gpu_memory_row_remap_pending",
	"gpu_memory_row_remap_failed",
}

const wantDefault = `
# HELP gpu_info GPU identity; always 1.
# TYPE gpu_info gauge
gpu_info{driver_version="550.54.15",gpu="0",name="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0",uuid="GPU-mock-0"} 1
gpu_info{driver_version="550.54.15",gpu="1",name="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0",uuid="GPU-mock-1"} 1
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 1
gpu_up{gpu="1",uuid="GPU-mock-1"} 1
# HELP gpu_utilization_ratio Fraction of the last sample period in which one or more kernels ran on the GPU.
# TYPE gpu_utilization_ratio gauge
gpu_utilization_ratio{gpu="0",uuid="GPU-mock-0"} 0.5
gpu_utilization_ratio{gpu="1",uuid="GPU-mock-1"} 0.6
# HELP gpu_memory_utilization_ratio Fraction of the last sample period in which device memory was being read or written.
# TYPE gpu_memory_utilization_ratio gauge
gpu_memory_utilization_ratio{gpu="0",uuid="GPU-mock-0"} 0.2
gpu_memory_utilization_ratio{gpu="1",uuid="GPU-mock-1"} 0.25
# HELP gpu_memory_used_bytes Device memory in use.
# TYPE gpu_memory_used_bytes gauge
gpu_memory_used_bytes{gpu="0",uuid="GPU-mock-0"} 1073741824
gpu_memory_used_bytes{gpu="1",uuid="GPU-mock-1"} 2147483648
# HELP gpu_memory_free_bytes Device memory free.
# TYPE gpu_memory_free_bytes gauge
gpu_memory_free_bytes{gpu="0",uuid="GPU-mock-0"} 41875931136
gpu_memory_free_bytes{gpu="1",uuid="GPU-mock-1"} 40802189312
# HELP gpu_memory_total_bytes Device memory installed.
# TYPE gpu_memory_total_bytes gauge
gpu_memory_total_bytes{gpu="0",uuid="GPU-mock-0"} 42949672960
gpu_memory_total_bytes{gpu="1",uuid="GPU-mock-1"} 42949672960
# HELP gpu_temperature_celsius GPU core temperature.
# TYPE gpu_temperature_celsius gauge
gpu_temperature_celsius{gpu="0",uuid="GPU-mock-0"} 30
gpu_temperature_celsius{gpu="1",uuid="GPU-mock-1"} 31
# HELP gpu_power_usage_watts Power drawn by the GPU and its memory.
# TYPE gpu_power_usage_watts gauge
gpu_power_usage_watts{gpu="0",uuid="GPU-mock-0"} 50
gpu_power_usage_watts{gpu="1",uuid="GPU-mock-1"} 51
# HELP gpu_power_limit_watts Power limit enforced on the GPU.
# TYPE gpu_power_limit_watts gauge
gpu_power_limit_watts{gpu="0",uuid="GPU-mock-0"} 400
gpu_power_limit_watts{gpu="1",uuid="GPU-mock-1"} 400
# HELP gpu_energy_consumed_joules_total Energy consumed since the driver loaded.
# TYPE gpu_energy_consumed_joules_total counter
gpu_energy_consumed_joules_total{gpu="0",uuid="GPU-mock-0"} 1000.5
gpu_energy_consumed_joules_total{gpu="1",uuid="GPU-mock-1"} 2000.5
# HELP gpu_sm_clock_hertz Current SM clock.
# TYPE gpu_sm_clock_hertz gauge
gpu_sm_clock_hertz{gpu="0",uuid="GPU-mock-0"} 1410000000
gpu_sm_clock_hertz{gpu="1",uuid="GPU-mock-1"} 1410000000
# HELP gpu_memory_clock_hertz Current memory clock.
# TYPE gpu_memory_clock_hertz gauge
gpu_memory_clock_hertz{gpu="0",uuid="GPU-mock-0"} 1215000000
gpu_memory_clock_hertz{gpu="1",uuid="GPU-mock-1"} 1215000000
# HELP gpu_clock_event_active 1 when the reason is currently reducing (or holding) the GPU clocks, else 0 (NVML clocks event reasons).
# TYPE gpu_clock_event_active gauge
gpu_clock_event_active{gpu="0",reason="applications_clocks_setting",uuid="GPU-mock-0"} 0
gpu_clock_event_active{gpu="0",reason="display_clock_setting",uuid="GPU-mock-0"} 0
gpu_clock_event_active{gpu="0",reason="gpu_idle",uuid="GPU-mock-0"} 1
gpu_clock_event_active{gpu="0",reason="hw_power_brake_slowdown",uuid="GPU-mock-0"} 0
gpu_clock_event_active{gpu="0",reason="hw_slowdown",uuid="GPU-mock-0"} 0
gpu_clock_event_active{gpu="0",reason="hw_thermal_slowdown",uuid="GPU-mock-0"} 0
gpu_clock_event_active{gpu="0",reason="sw_power_cap",uuid="GPU-mock-0"} 0
gpu_clock_event_active{gpu="0",reason="sw_thermal_slowdown",uuid="GPU-mock-0"} 0
gpu_clock_event_active{gpu="0",reason="sync_boost",uuid="GPU-mock-0"} 0
gpu_clock_event_active{gpu="1",reason="applications_clocks_setting",uuid="GPU-mock-1"} 0
gpu_clock_event_active{gpu="1",reason="display_clock_setting",uuid="GPU-mock-1"} 0
gpu_clock_event_active{gpu="1",reason="gpu_idle",uuid="GPU-mock-1"} 0
gpu_clock_event_active{gpu="1",reason="hw_power_brake_slowdown",uuid="GPU-mock-1"} 0
gpu_clock_event_active{gpu="1",reason="hw_slowdown",uuid="GPU-mock-1"} 0
gpu_clock_event_active{gpu="1",reason="hw_thermal_slowdown",uuid="GPU-mock-1"} 0
gpu_clock_event_active{gpu="1",reason="sw_power_cap",uuid="GPU-mock-1"} 1
gpu_clock_event_active{gpu="1",reason="sw_thermal_slowdown",uuid="GPU-mock-1"} 1
gpu_clock_event_active{gpu="1",reason="sync_boost",uuid="GPU-mock-1"} 0
# HELP gpu_pcie_replay_errors_total PCIe replays (link-level retransmissions) since the driver loaded.
# TYPE gpu_pcie_replay_errors_total counter
gpu_pcie_replay_errors_total{gpu="0",uuid="GPU-mock-0"} 0
gpu_pcie_replay_errors_total{gpu="1",uuid="GPU-mock-1"} 1
# HELP gpu_ecc_errors_total ECC errors since the driver loaded (volatile counters), by type.
# TYPE gpu_ecc_errors_total counter
gpu_ecc_errors_total{gpu="0",type="corrected",uuid="GPU-mock-0"} 0
gpu_ecc_errors_total{gpu="0",type="uncorrected",uuid="GPU-mock-0"} 0
gpu_ecc_errors_total{gpu="1",type="corrected",uuid="GPU-mock-1"} 3
gpu_ecc_errors_total{gpu="1",type="uncorrected",uuid="GPU-mock-1"} 0
# HELP gpu_memory_temperature_celsius Device memory temperature (absent where the GPU reports none).
# TYPE gpu_memory_temperature_celsius gauge
gpu_memory_temperature_celsius{gpu="0",uuid="GPU-mock-0"} 60
gpu_memory_temperature_celsius{gpu="1",uuid="GPU-mock-1"} 61
# HELP gpu_memory_remapped_rows_total Device memory rows remapped to spare rows, by the type of the error that caused it (kept across reboots).
# TYPE gpu_memory_remapped_rows_total counter
gpu_memory_remapped_rows_total{gpu="0",type="corrected",uuid="GPU-mock-0"} 0
gpu_memory_remapped_rows_total{gpu="0",type="uncorrected",uuid="GPU-mock-0"} 0
gpu_memory_remapped_rows_total{gpu="1",type="corrected",uuid="GPU-mock-1"} 2
gpu_memory_remapped_rows_total{gpu="1",type="uncorrected",uuid="GPU-mock-1"} 1
# HELP gpu_memory_row_remap_pending 1 when a row remapping waits for the next GPU reset to take effect, else 0.
# TYPE gpu_memory_row_remap_pending gauge
gpu_memory_row_remap_pending{gpu="0",uuid="GPU-mock-0"} 0
gpu_memory_row_remap_pending{gpu="1",uuid="GPU-mock-1"} 1
# HELP gpu_memory_row_remap_failed 1 when a row remapping has failed (no spare row was left), else 0.
# TYPE gpu_memory_row_remap_failed gauge
gpu_memory_row_remap_failed{gpu="0",uuid="GPU-mock-0"} 0
gpu_memory_row_remap_failed{gpu="1",uuid="GPU-mock-1"} 0
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="timeout"} 0
`

// TestCollectDefault checks every default series of two GPUs, exactly,
// through a pedantic registry (which fails on undescribed or inconsistent
// metrics), and lints the names.
func TestCollectDefault(t *testing.T) {
	b := newBox(t, 2)
	c := newCollector(t, b)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	names := append([]string{"gpu_info", "gpumon_collect_errors_total"}, deviceNames...)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantDefault), names...); err != nil {
		t.Error(err)
	}
	// The self-metrics are there too; the duration is a measured time.
	if n, err := testutil.GatherAndCount(reg, "gpumon_collect_duration_seconds"); err != nil || n != 1 {
		t.Errorf("gpumon_collect_duration_seconds: %d series, %v", n, err)
	}
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []gpumon.Option
	}{
		{"default", nil},
		{"process metrics", []gpumon.Option{gpumon.WithProcessMetrics()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t, 8)
			b.devs[0].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
				return []nvml.ProcessInfo{{Pid: uint32(os.Getpid()), UsedGpuMemory: gib}}, nvml.SUCCESS
			}
			c := newCollector(t, b, tc.opts...)
			b.events <- nvml.EventData{Device: b.devs[1], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
			waitFor(t, c, "gpu_xid_errors_total", 1)
			// Make every self-metric appear.
			b.devs[2].GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
			// A pedantic registry fails on any series whose descriptor
			// Describe did not send.
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(c)
			if _, err := reg.Gather(); err != nil {
				t.Errorf("pedantic Gather: %v", err)
			}
			testkit.Lint(t, c)
			if n := testutil.CollectAndCount(c); n < 8*25 {
				t.Errorf("collected %d series from 8 GPUs, want at least %d", n, 8*25)
			}
		})
	}
}

// waitFor collects until the metric name has n series; the XID watcher
// works in the background. It gives up after a bounded number of tries.
func waitFor(t *testing.T, c prometheus.Collector, name string, n int) {
	t.Helper()
	for range 2000 {
		if testutil.CollectAndCount(c, name) == n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never had %d series", name, n)
}

// TestFailingDevice: an error on one device marks that device down and is
// counted; its other fields and the other device go on.
func TestFailingDevice(t *testing.T) {
	b := newBox(t, 2)
	b.devs[1].GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	b.devs[1].GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_TIMEOUT }
	c := newCollector(t, b)
	want := `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 1
gpu_up{gpu="1",uuid="GPU-mock-1"} 0
# HELP gpu_power_usage_watts Power drawn by the GPU and its memory.
# TYPE gpu_power_usage_watts gauge
gpu_power_usage_watts{gpu="0",uuid="GPU-mock-0"} 50
# HELP gpu_temperature_celsius GPU core temperature.
# TYPE gpu_temperature_celsius gauge
gpu_temperature_celsius{gpu="0",uuid="GPU-mock-0"} 30
# HELP gpu_sm_clock_hertz Current SM clock.
# TYPE gpu_sm_clock_hertz gauge
gpu_sm_clock_hertz{gpu="0",uuid="GPU-mock-0"} 1410000000
gpu_sm_clock_hertz{gpu="1",uuid="GPU-mock-1"} 1410000000
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="GetPowerUsage"} 1
gpumon_collect_errors_total{call="GetTemperature"} 1
gpumon_collect_errors_total{call="timeout"} 0
`
	names := []string{"gpu_up", "gpu_power_usage_watts", "gpu_temperature_celsius", "gpu_sm_clock_hertz", "gpumon_collect_errors_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if err := c.Healthy(context.Background()); err != nil {
		t.Errorf("Healthy with a failing (not lost) call: %v, want nil", err)
	}
}

// TestUnsupported: a field a device does not support is absent for that
// device, with no error counted and gpu_up 1.
func TestUnsupported(t *testing.T) {
	ns := nvml.ERROR_NOT_SUPPORTED
	for _, tc := range []struct {
		name   string
		set    func(d *dgxa100.Device)
		absent []string
	}{
		{"power", func(d *dgxa100.Device) {
			d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, ns }
		}, []string{"gpu_power_usage_watts"}},
		{"energy", func(d *dgxa100.Device) {
			d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 0, ns }
		}, []string{"gpu_energy_consumed_joules_total"}},
		{"ecc", func(d *dgxa100.Device) {
			d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, ns }
		}, []string{"gpu_ecc_errors_total"}},
		{"utilization", func(d *dgxa100.Device) {
			d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, ns }
		}, []string{"gpu_utilization_ratio", "gpu_memory_utilization_ratio"}},
		{"clock events", func(d *dgxa100.Device) {
			d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, ns }
		}, []string{"gpu_clock_event_active"}},
		{"pcie replay", func(d *dgxa100.Device) {
			d.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return 0, ns }
		}, []string{"gpu_pcie_replay_errors_total"}},
		{"memory temperature field", func(d *dgxa100.Device) {
			d.GetFieldValuesFunc = func(values []nvml.FieldValue) nvml.Return {
				for k := range values {
					values[k].NvmlReturn = uint32(ns)
				}
				return nvml.SUCCESS
			}
		}, []string{"gpu_memory_temperature_celsius"}},
		{"field values call", func(d *dgxa100.Device) {
			d.GetFieldValuesFunc = func([]nvml.FieldValue) nvml.Return { return ns }
		}, []string{"gpu_memory_temperature_celsius"}},
		{"remapped rows", func(d *dgxa100.Device) {
			d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, ns }
		}, []string{"gpu_memory_remapped_rows_total", "gpu_memory_row_remap_pending", "gpu_memory_row_remap_failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t, 2)
			tc.set(b.devs[1])
			c := newCollector(t, b)
			for _, name := range tc.absent {
				got := testutil.CollectAndCount(c, name)
				full := testutil.CollectAndCount(newCollector(t, newBox(t, 2)), name)
				if full == 0 || got*2 != full {
					t.Errorf("%s: %d series, want %d (device 1's absent)", name, got, full/2)
				}
			}
			if v := testutil.ToFloat64(upOf(t, c, "1")); v != 1 {
				t.Errorf("gpu_up{gpu=1} = %v, want 1", v)
			}
			if n := testutil.CollectAndCount(c, "gpumon_collect_errors_total"); n != 1 { // only the timeout child
				t.Errorf("gpumon_collect_errors_total has %d series, want only call=timeout", n)
			}
			if n := testutil.CollectAndCount(c, "gpu_fan_speed_ratio"); n != 0 {
				t.Errorf("gpu_fan_speed_ratio (never supported by the mock): %d series", n)
			}
		})
	}
}

// upOf returns the gpu_up series of one GPU as a collector of one metric.
func upOf(t *testing.T, c prometheus.Collector, gpu string) prometheus.Collector {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	c.Collect(ch)
	close(ch)
	for m := range ch {
		if !strings.Contains(m.Desc().String(), `"gpu_up"`) {
			continue
		}
		var one oneMetric
		one.m = m
		if strings.Contains(metricText(t, m), `gpu="`+gpu+`"`) {
			return one
		}
	}
	t.Fatalf("no gpu_up for gpu %s", gpu)
	return nil
}

type oneMetric struct{ m prometheus.Metric }

func (o oneMetric) Describe(ch chan<- *prometheus.Desc) { ch <- o.m.Desc() }
func (o oneMetric) Collect(ch chan<- prometheus.Metric) { ch <- o.m }

func metricText(t *testing.T, m prometheus.Metric) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(oneMetric{m})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			for _, l := range mm.GetLabel() {
				sb.WriteString(l.GetName() + `="` + l.GetValue() + `",`)
			}
		}
	}
	return sb.String()
}

// TestGPULost: a GPU lost mid-life is reported down and unhealthy, and no
// more calls are made to it in that read; one lost at start is kept.
func TestGPULost(t *testing.T) {
	t.Run("mid-life", func(t *testing.T) {
		b := newBox(t, 2)
		c := newCollector(t, b)
		b.devs[1].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST
		}
		want := `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 1
gpu_up{gpu="1",uuid="GPU-mock-1"} 0
# HELP gpu_temperature_celsius GPU core temperature.
# TYPE gpu_temperature_celsius gauge
gpu_temperature_celsius{gpu="0",uuid="GPU-mock-0"} 30
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="GetUtilizationRates"} 1
gpumon_collect_errors_total{call="timeout"} 0
`
		before := len(b.devs[1].GetTemperatureCalls())
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_up", "gpu_temperature_celsius", "gpumon_collect_errors_total"); err != nil {
			t.Error(err)
		}
		if n := len(b.devs[1].GetTemperatureCalls()); n != before {
			t.Errorf("GetTemperature called %d times on a lost GPU", n-before)
		}
		err := c.Healthy(context.Background())
		if !errors.Is(err, gpumon.ErrUnhealthy) || !strings.Contains(err.Error(), "gpu 1 (GPU-mock-1): lost") {
			t.Errorf("Healthy = %v, want gpu 1 lost", err)
		}
	})
	t.Run("at start", func(t *testing.T) {
		b := newBox(t, 2)
		b.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
			if i == 0 {
				return nil, nvml.ERROR_GPU_IS_LOST
			}
			return b.devs[i], nvml.SUCCESS
		}
		c := newCollector(t, b)
		want := `
# HELP gpu_info GPU identity; always 1.
# TYPE gpu_info gauge
gpu_info{driver_version="550.54.15",gpu="0",name="",pci_bus_id="",uuid=""} 1
gpu_info{driver_version="550.54.15",gpu="1",name="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0",uuid="GPU-mock-1"} 1
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid=""} 0
gpu_up{gpu="1",uuid="GPU-mock-1"} 1
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="DeviceGetHandleByIndex"} 1
gpumon_collect_errors_total{call="timeout"} 0
`
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_info", "gpu_up", "gpumon_collect_errors_total"); err != nil {
			t.Error(err)
		}
		if err := c.Healthy(context.Background()); !errors.Is(err, gpumon.ErrUnhealthy) {
			t.Errorf("Healthy = %v, want ErrUnhealthy", err)
		}
	})
}

// TestNewUnavailable: a failed Init maps to ErrNVMLUnavailable and no other
// NVML call follows (the mock panics on any Func left nil).
func TestNewUnavailable(t *testing.T) {
	for _, ret := range []nvml.Return{nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_NO_PERMISSION} {
		t.Run(ret.Error(), func(t *testing.T) {
			lib := &mock.Interface{InitFunc: func() nvml.Return { return ret }}
			c, err := gpumon.New(gpumon.WithNVML(lib))
			if !errors.Is(err, gpumon.ErrNVMLUnavailable) || !errors.Is(err, ret) {
				t.Errorf("New = %v, want ErrNVMLUnavailable and %v", err, ret)
			}
			if c != nil {
				t.Errorf("New returned a Collector with an error")
			}
			if n := len(lib.InitCalls()); n != 1 {
				t.Errorf("Init called %d times", n)
			}
		})
	}
}

// TestTimeoutAndSharedRead: a hung NVML call bounds the scrape; a second
// scrape joins the hung read instead of starting another; once it returns,
// scrapes get fresh values again. (One GPU: TestHungDeviceIsolated has the
// others go on.)
func TestTimeoutAndSharedRead(t *testing.T) {
	b := newBox(t, 1)
	release := make(chan struct{})
	var once sync.Once
	hang := make(chan struct{})
	util := b.devs[0].GetUtilizationRatesFunc
	b.devs[0].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		select {
		case <-hang: // only the first call hangs
		default:
			once.Do(func() { close(hang) })
			<-release
		}
		return util()
	}
	c := newCollector(t, b, gpumon.WithScrapeTimeout(20*time.Millisecond))
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	const wantTimeout = `
# HELP gpu_info GPU identity; always 1.
# TYPE gpu_info gauge
gpu_info{driver_version="550.54.15",gpu="0",name="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0",uuid="GPU-mock-0"} 1
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 0
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="timeout"} %d
`
	for i := 1; i <= 2; i++ {
		// No read has finished: identity, gpu_up 0, and the timeout counted.
		want := strings.Replace(wantTimeout, "%d", string(rune('0'+i)), 1)
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), append([]string{"gpu_info", "gpumon_collect_errors_total"}, deviceNames...)...); err != nil {
			t.Errorf("scrape %d during the hang: %v", i, err)
		}
	}
	if err := c.Healthy(context.Background()); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Healthy during the hang = %v, want a timeout", err)
	}
	if n := len(b.devs[0].GetUtilizationRatesCalls()); n != 1 {
		t.Errorf("GetUtilizationRates called %d times while hung, want 1 (scrapes share the read)", n)
	}
	close(release)
	// The hung read completes in the background; a later scrape shows its
	// values (or a fresh read's), whichever it gets first.
	waitFor(t, c, "gpu_power_usage_watts", 1)
	if v := testutil.ToFloat64(upOf(t, c, "0")); v != 1 {
		t.Errorf("gpu_up{gpu=0} after the hang = %v, want 1", v)
	}
}

// TestCacheTTL: scrapes within the TTL reuse one read.
func TestCacheTTL(t *testing.T) {
	b := newBox(t, 2)
	c := newCollector(t, b, gpumon.WithCacheTTL(time.Hour))
	for range 5 {
		if n := testutil.CollectAndCount(c, "gpu_up"); n != 2 {
			t.Fatalf("gpu_up: %d series", n)
		}
	}
	if n := len(b.devs[0].GetPowerUsageCalls()); n != 1 {
		t.Errorf("GetPowerUsage called %d times in 5 cached scrapes, want 1", n)
	}
	nc := newCollector(t, newBox(t, 2))
	for range 3 {
		testutil.CollectAndCount(nc, "gpu_up")
	}
}

// TestConcurrentScrapes gathers from many goroutines at once (run with -race).
func TestConcurrentScrapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []gpumon.Option
	}{
		{"no cache", nil},
		{"cache", []gpumon.Option{gpumon.WithCacheTTL(time.Millisecond)}},
		{"dcgm", []gpumon.Option{gpumon.WithDCGMNames(), gpumon.WithProcessMetrics()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t, 8)
			c := newCollector(t, b, tc.opts...)
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(c)
			var wg sync.WaitGroup
			errs := make(chan error, 8*20)
			for range 8 {
				wg.Go(func() {
					for range 20 {
						mfs, err := reg.Gather()
						if err != nil {
							errs <- err
							return
						}
						if len(mfs) < 10 {
							errs <- errors.New("too few metric families")
						}
					}
				})
			}
			wg.Go(func() {
				for range 20 {
					if err := c.Healthy(context.Background()); err != nil {
						errs <- err
					}
				}
			})
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestXID: XID events are counted per GPU and code, critical ones make
// Healthy fail, and Close stops the watcher and shuts NVML down once.
func TestXID(t *testing.T) {
	b := newBox(t, 2)
	c, err := gpumon.New(gpumon.WithNVML(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Healthy(context.Background()); err != nil {
		t.Fatalf("Healthy before any XID: %v", err)
	}
	for _, e := range []struct {
		dev int
		xid uint64
	}{{0, 13}, {1, 79}, {1, 79}} {
		b.events <- nvml.EventData{Device: b.devs[e.dev], EventType: nvml.EventTypeXidCriticalError, EventData: e.xid}
	}
	// Another event type on the same set is not an XID.
	b.events <- nvml.EventData{Device: b.devs[0], EventType: nvml.EventTypeSingleBitEccError}
	waitFor(t, c, "gpu_xid_errors_total", 2)
	want := `
# HELP gpu_xid_errors_total XID errors reported by the driver (NVML critical XID events), by XID code.
# TYPE gpu_xid_errors_total counter
gpu_xid_errors_total{gpu="0",uuid="GPU-mock-0",xid="13"} 1
gpu_xid_errors_total{gpu="1",uuid="GPU-mock-1",xid="79"} 2
`
	for range 2000 { // the second 79 may still be on its way
		if err = testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_xid_errors_total"); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Error(err)
	}
	err = c.Healthy(context.Background())
	if !errors.Is(err, gpumon.ErrUnhealthy) || !strings.Contains(err.Error(), "gpu 1 (GPU-mock-1): critical XID 79") {
		t.Errorf("Healthy = %v, want gpu 1 critical XID 79", err)
	}
	if strings.Contains(err.Error(), "gpu 0") {
		t.Errorf("Healthy = %v: XID 13 is an application error", err)
	}

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := b.freed.Load(); n != 1 {
		t.Errorf("event set freed %d times, want 1 (watcher stopped)", n)
	}
	waits := len(b.set.WaitCalls())
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := len(b.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times, want 1", n)
	}
	if n := len(b.set.WaitCalls()); n != waits {
		t.Errorf("EventSetWait called after Close")
	}
	if err := c.Healthy(context.Background()); err == nil {
		t.Error("Healthy after Close = nil")
	}
	if n := testutil.CollectAndCount(c, "gpu_up", "gpu_info"); n != 0 {
		t.Errorf("%d GPU series after Close", n)
	}
}

// TestXIDUnsupported: without XID event support there is no watcher, and
// Close still shuts down.
func TestXIDUnsupported(t *testing.T) {
	b := newBox(t, 2)
	b.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	c := newCollector(t, b)
	if n := testutil.CollectAndCount(c, "gpu_up"); n != 2 {
		t.Errorf("gpu_up: %d series", n)
	}
	if n := testutil.CollectAndCount(c, "gpumon_collect_errors_total"); n != 1 {
		t.Errorf("unsupported XID events counted as errors")
	}
}

const wantDCGM = `
# HELP DCGM_FI_DEV_DEC_UTIL Decoder utilization (in %%).
# TYPE DCGM_FI_DEV_DEC_UTIL gauge
DCGM_FI_DEV_DEC_UTIL{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 9
DCGM_FI_DEV_DEC_UTIL{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 9
# HELP DCGM_FI_DEV_ENC_UTIL Encoder utilization (in %%).
# TYPE DCGM_FI_DEV_ENC_UTIL gauge
DCGM_FI_DEV_ENC_UTIL{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 7
DCGM_FI_DEV_ENC_UTIL{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 7
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 39936
DCGM_FI_DEV_FB_FREE{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 38912
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 512
DCGM_FI_DEV_FB_USED{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 1536
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 30
DCGM_FI_DEV_GPU_TEMP{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 31
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %%).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 50
DCGM_FI_DEV_GPU_UTIL{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 60
# HELP DCGM_FI_DEV_MEM_CLOCK Memory clock frequency (in MHz).
# TYPE DCGM_FI_DEV_MEM_CLOCK gauge
DCGM_FI_DEV_MEM_CLOCK{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 1215
DCGM_FI_DEV_MEM_CLOCK{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 1215
# HELP DCGM_FI_DEV_MEM_COPY_UTIL Memory utilization (in %%).
# TYPE DCGM_FI_DEV_MEM_COPY_UTIL gauge
DCGM_FI_DEV_MEM_COPY_UTIL{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 20
DCGM_FI_DEV_MEM_COPY_UTIL{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 25
# HELP DCGM_FI_DEV_PCIE_REPLAY_COUNTER Total number of PCIe retries.
# TYPE DCGM_FI_DEV_PCIE_REPLAY_COUNTER counter
DCGM_FI_DEV_PCIE_REPLAY_COUNTER{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 0
DCGM_FI_DEV_PCIE_REPLAY_COUNTER{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 1
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 50
DCGM_FI_DEV_POWER_USAGE{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 51
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 1410
DCGM_FI_DEV_SM_CLOCK{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 1410
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 1000500
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 2000500
# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",err_code="0",err_msg="No Error",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 0
DCGM_FI_DEV_XID_ERRORS{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",err_code="%[1]s",err_msg="%[2]s",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} %[1]s
# HELP DCGM_FI_DEV_FB_RESERVED Framebuffer memory reserved (in MiB).
# TYPE DCGM_FI_DEV_FB_RESERVED gauge
DCGM_FI_DEV_FB_RESERVED{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 512
DCGM_FI_DEV_FB_RESERVED{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 512
# HELP DCGM_FI_DEV_MEMORY_TEMP Memory temperature (in C).
# TYPE DCGM_FI_DEV_MEMORY_TEMP gauge
DCGM_FI_DEV_MEMORY_TEMP{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 60
DCGM_FI_DEV_MEMORY_TEMP{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 61
# HELP DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS Number of remapped rows for uncorrectable errors
# TYPE DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS counter
DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 0
DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 1
# HELP DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS Number of remapped rows for correctable errors
# TYPE DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS counter
DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 0
DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 2
# HELP DCGM_FI_DEV_ROW_REMAP_FAILURE Whether remapping of rows has failed
# TYPE DCGM_FI_DEV_ROW_REMAP_FAILURE gauge
DCGM_FI_DEV_ROW_REMAP_FAILURE{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 0
DCGM_FI_DEV_ROW_REMAP_FAILURE{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 0
`

// TestDCGMNames checks dcgm-exporter's names, units and labels exactly (they
// break Prometheus naming lint by design, so no lint here), and that no
// default-named GPU series is emitted alongside.
func TestDCGMNames(t *testing.T) {
	b := newBox(t, 2)
	c := newCollector(t, b, gpumon.WithDCGMNames(), gpumon.WithHostname("node-a"))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "DCGM_") {
			names = append(names, mf.GetName())
		} else if !strings.HasPrefix(mf.GetName(), "gpumon_") {
			t.Errorf("unexpected metric %s with DCGM names", mf.GetName())
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(wantDCGM, "0", "No Error")), names...); err != nil {
		t.Error(err)
	}
	// DCGM_FI_DEV_XID_ERRORS is the last XID, as dcgm-exporter has it, with
	// its err_code and err_msg labels (dcgm-exporter's xid_errors.go: 48 is
	// "Double Bit ECC Error").
	b.events <- nvml.EventData{Device: b.devs[1], EventType: nvml.EventTypeXidCriticalError, EventData: 48}
	for range 2000 {
		if err = testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(wantDCGM, "48", "Double Bit ECC Error")), names...); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Error(err)
	}
}

// TestDCGMUnsupported: with DCGM names, a value device 1 cannot give is left
// out for it alone, with no error counted; without GetMemoryInfo_v2 (driver
// before R510, or the call unsupported) FB_USED falls back to
// GetMemoryInfo's used memory, reserved memory included, and FB_RESERVED is
// left out.
func TestDCGMUnsupported(t *testing.T) {
	ns := nvml.ERROR_NOT_SUPPORTED
	for _, tc := range []struct {
		name   string
		set    func(b *box)
		absent []string
		left   int    // series of each absent name left (device 0's)
		fbUsed string // DCGM_FI_DEV_FB_USED of device 1
	}{
		{"memory info v2", func(b *box) {
			b.devs[1].GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, ns }
		}, []string{"DCGM_FI_DEV_FB_RESERVED"}, 1, "2048"},
		{"no v2 symbol", func(b *box) {
			b.LookupSymbolFunc = func(sym string) error {
				if sym == "nvmlDeviceGetMemoryInfo_v2" {
					return errors.New("undefined symbol")
				}
				return nil
			}
			for _, d := range b.devs {
				d.GetMemoryInfo_v2Func = nil // the mock panics if it is called
			}
		}, []string{"DCGM_FI_DEV_FB_RESERVED"}, 0, "2048"},
		{"memory temperature", func(b *box) {
			b.devs[1].GetFieldValuesFunc = func([]nvml.FieldValue) nvml.Return { return ns }
		}, []string{"DCGM_FI_DEV_MEMORY_TEMP"}, 1, "1536"},
		{"remapped rows", func(b *box) {
			b.devs[1].GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, ns }
		}, []string{"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_ROW_REMAP_FAILURE"}, 1, "1536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t, 2)
			tc.set(b)
			c := newCollector(t, b, gpumon.WithDCGMNames(), gpumon.WithHostname("node-a"))
			for _, name := range tc.absent {
				if n := testutil.CollectAndCount(c, name); n != tc.left {
					t.Errorf("%s: %d series, want %d (device 1's absent)", name, n, tc.left)
				}
			}
			want := `
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{DCGM_FI_DRIVER_VERSION="550.54.15",Hostname="node-a",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} ` + tc.fbUsed + `
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="timeout"} 0
`
			if err := testutil.CollectAndCompare(onlyGPU(c, "1"), strings.NewReader(want), "DCGM_FI_DEV_FB_USED", "gpumon_collect_errors_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

// onlyGPU is c without the per-GPU series of the other GPUs.
func onlyGPU(c prometheus.Collector, gpu string) prometheus.Collector {
	return filtered{c, func(m prometheus.Metric) bool {
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			return false
		}
		for _, l := range out.GetLabel() {
			if l.GetName() == "gpu" && l.GetValue() != gpu {
				return false
			}
		}
		return true
	}}
}

// filteredName is c with only the series named name.
func filteredName(c prometheus.Collector, name string) prometheus.Collector {
	return filtered{c, func(m prometheus.Metric) bool {
		return strings.Contains(m.Desc().String(), `fqName: "`+name+`"`)
	}}
}

// filtered is c with only the series keep accepts. It collects c on its
// own goroutine, so a collector with more series than a buffer holds does
// not block.
type filtered struct {
	c    prometheus.Collector
	keep func(prometheus.Metric) bool
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 256)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if f.keep(m) {
			ch <- m
		}
	}
}

// TestProcessMetrics: one series per live pid (MIG duplicates summed), with
// the pid as NVML reported it and the name from /proc only where the pid is
// known to be the process NVML means; a process that ends drops out at the
// next scrape.
func TestProcessMetrics(t *testing.T) {
	const (
		user      = 4242       // holds /dev/nvidia1
		unrelated = 77         // in our /proc, but holds no NVIDIA device
		missing   = 4000000000 // not in our /proc
	)
	for _, tc := range []struct {
		name          string
		host          bool
		unrelatedName string
	}{
		// In the host's PID namespace NVML's pids are our /proc's: pid 77
		// is the process NVML reports, whatever files it holds.
		{"host namespace", true, "sidecar"},
		// In a container's, pid 77 of our /proc is not known to be it.
		{"container", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := gpumon.NewFakeProc(t, tc.host)
			proc.Add(user, "python3", 100, "/dev/nvidiactl", "/dev/nvidia1", "/dev/nvidia-uvm")
			proc.Add(unrelated, "sidecar", 200, "/dev/null")
			b := newBox(t, 2)
			var mu sync.Mutex
			procs := []nvml.ProcessInfo{
				{Pid: user, UsedGpuMemory: 100 << 20},
				{Pid: missing, UsedGpuMemory: 1 << 20},
				{Pid: user, UsedGpuMemory: 50 << 20, GpuInstanceId: 1},
				{Pid: unrelated, UsedGpuMemory: 2 << 20},
				{Pid: 7, UsedGpuMemory: ^uint64(0)}, // NVML_VALUE_NOT_AVAILABLE: left out
			}
			b.devs[1].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
				mu.Lock()
				defer mu.Unlock()
				return procs, nvml.SUCCESS
			}
			c := newCollector(t, b, gpumon.WithProcessMetrics(), gpumon.WithProcRoot(proc.Root()))
			want := `
# HELP gpu_process_memory_used_bytes Device memory used by a compute process running on the GPU at scrape time.
# TYPE gpu_process_memory_used_bytes gauge
gpu_process_memory_used_bytes{container="",container_id="",gpu="1",namespace="",pid="4000000000",pod="",pod_uid="",process="",uuid="GPU-mock-1"} 1048576
gpu_process_memory_used_bytes{container="",container_id="",gpu="1",namespace="",pid="4242",pod="",pod_uid="",process="python3",uuid="GPU-mock-1"} 157286400
gpu_process_memory_used_bytes{container="",container_id="",gpu="1",namespace="",pid="77",pod="",pod_uid="",process="` + tc.unrelatedName + `",uuid="GPU-mock-1"} 2097152
`
			for range 2 { // the second scrape uses the cache
				if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_process_memory_used_bytes"); err != nil {
					t.Error(err)
				}
			}
			mu.Lock()
			procs = procs[1:2]
			mu.Unlock()
			proc.Remove(user)
			if n := testutil.CollectAndCount(c, "gpu_process_memory_used_bytes"); n != 1 {
				t.Errorf("%d process series after two ended, want 1", n)
			}
		})
	}
	if n := testutil.CollectAndCount(newCollector(t, newBox(t, 2)), "gpu_process_memory_used_bytes"); n != 0 {
		t.Errorf("process metrics without the option: %d series", n)
	}
}

// TestHealthy covers the health check and its HTTP handler.
func TestHealthy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     func(b *box)
		wantErr string
	}{
		{"healthy", func(*box) {}, ""},
		{"uncorrected ECC", func(b *box) {
			b.devs[1].GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, _ nvml.EccCounterType) (uint64, nvml.Return) {
				return uint64(t) * 2, nvml.SUCCESS
			}
		}, "gpu 1 (GPU-mock-1): 2 uncorrected ECC errors"},
		{"lost", func(b *box) {
			b.devs[0].GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST }
		}, "gpu 0 (GPU-mock-0): lost"},
		{"row remapping failed", func(b *box) {
			b.devs[1].GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 512, false, true, nvml.SUCCESS }
		}, "gpu 1 (GPU-mock-1): row remapping failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t, 2)
			tc.set(b)
			c := newCollector(t, b)
			err := c.Healthy(context.Background())
			rec := httptest.NewRecorder()
			c.HealthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if tc.wantErr == "" {
				if err != nil || rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
					t.Errorf("Healthy = %v, handler %d %q; want nil, 200 ok", err, rec.Code, rec.Body.String())
				}
				return
			}
			if !errors.Is(err, gpumon.ErrUnhealthy) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Healthy = %v, want %q", err, tc.wantErr)
			}
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), tc.wantErr) {
				t.Errorf("handler: %d %q", rec.Code, rec.Body.String())
			}
		})
	}
	t.Run("canceled context", func(t *testing.T) {
		b := newBox(t, 1)
		block := make(chan struct{})
		b.devs[0].GetPowerUsageFunc = func() (uint32, nvml.Return) { <-block; return 1, nvml.SUCCESS }
		c := newCollector(t, b)
		defer close(block)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Healthy(ctx); err == nil {
			t.Error("Healthy with a canceled context and a hung read = nil")
		}
	})
}

// TestNilCollector: the methods of a nil Collector are safe.
func TestNilCollector(t *testing.T) {
	var c *gpumon.Collector
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Healthy(context.Background()); !errors.Is(err, gpumon.ErrNVMLUnavailable) {
		t.Errorf("Healthy: %v", err)
	}
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("Collect sent %d metrics", n)
	}
}

// TestDCGMHostname: the Hostname label is dcgm-exporter's: $NODE_NAME where
// set and not empty, else the host name; WithHostname overrides both.
func TestDCGMHostname(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name, env string
		opts      []gpumon.Option
		want      string
	}{
		{"NODE_NAME", "node-k8s-7", nil, "node-k8s-7"},
		{"empty NODE_NAME", "", nil, host},
		{"WithHostname wins", "node-k8s-7", []gpumon.Option{gpumon.WithHostname("given")}, "given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NODE_NAME", tc.env)
			c := newCollector(t, newBox(t, 1), append([]gpumon.Option{gpumon.WithDCGMNames()}, tc.opts...)...)
			ch := make(chan prometheus.Metric, 256)
			c.Collect(ch)
			close(ch)
			n := 0
			for m := range ch {
				var out dto.Metric
				if err := m.Write(&out); err != nil {
					t.Fatal(err)
				}
				for _, l := range out.GetLabel() {
					if l.GetName() == "Hostname" {
						n++
						if l.GetValue() != tc.want {
							t.Fatalf("%s: Hostname=%q, want %q", m.Desc(), l.GetValue(), tc.want)
						}
					}
				}
			}
			if n == 0 {
				t.Fatal("no series with a Hostname label")
			}
		})
	}
}

// The GPUs' reader goroutines, started in New, end at Close.
func TestReadersEndAtClose(t *testing.T) {
	before := runtime.NumGoroutine()
	bx := newBox(t, 8)
	c, err := gpumon.New(gpumon.WithNVML(bx))
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "gpu_up"); n != 8 {
		t.Fatalf("%d gpu_up series, want 8", n)
	}
	if runtime.NumGoroutine() < before+8 {
		t.Errorf("%d goroutines with 8 GPUs, %d before New: want a reader per GPU", runtime.NumGoroutine(), before)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before; { // a hang guard, not a timing target
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before New", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
