//go:build cgo

package stack_test

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/gpumon/gpusim"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// gpumonCollector returns the gpumon collector, with process metrics, over one GPU of go-nvml's mocked DGX
// A100, after one XID event has been counted, so that every family it exports under its default names has
// a sample, together with one over a simulated H100 SXM (gpusim), for the families of the background sampler
// (GPM, PCIe and NVLink throughput, NVLink errors) that the A100 mock does not answer. The collectors are
// closed when the test ends. The skip reason is always empty here.
func gpumonCollector(t *testing.T) (prometheus.Collector, string) {
	t.Helper()
	const gib = 1 << 30
	s := dgxa100.New()
	s.DeviceGetCountFunc = func() (int, nvml.Return) { return 1, nvml.SUCCESS }
	d := s.Devices[0].(*dgxa100.Device)
	d.MemoryInfo = nvml.Memory{Total: 40 * gib, Used: gib, Free: 39 * gib}
	// The Funcs gpumon calls that dgxa100 leaves unset.
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: 50, Memory: 20}, nvml.SUCCESS
	}
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 40, nvml.SUCCESS }
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 250000, nvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 1000500, nvml.SUCCESS }
	d.GetClockInfoFunc = func(nvml.ClockType) (uint32, nvml.Return) { return 1410, nvml.SUCCESS }
	d.GetFanSpeedFunc = func() (uint32, nvml.Return) { return 30, nvml.SUCCESS }
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return nvml.ClocksEventReasonGpuIdle, nvml.SUCCESS }
	d.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return 0, nvml.SUCCESS }
	d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, nvml.SUCCESS }
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, nvml.SUCCESS }
	d.GetFieldValuesFunc = func(values []nvml.FieldValue) nvml.Return {
		for k := range values { // memory temperature 45 °C; gpumon asks for no other field
			values[k].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
			values[k].Value = [8]byte{45}
		}
		return nvml.SUCCESS
	}
	d.GetEncoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 0, 167000, nvml.SUCCESS }
	d.GetDecoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 0, 167000, nvml.SUCCESS }
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: uint32(os.Getpid()), UsedGpuMemory: gib}}, nvml.SUCCESS
	}
	d.GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	d.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		return []nvml.ProcessUtilizationSample{{Pid: uint32(os.Getpid()), TimeStamp: 1, SmUtil: 60, MemUtil: 20}}, nvml.SUCCESS
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypeXidCriticalError, nvml.SUCCESS }
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }

	// The event set hands the XID watcher one XID 79 event; its next Wait means the event was counted.
	var calls int
	counted := make(chan struct{})
	var once sync.Once
	set := &mock.EventSet{
		WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
			calls++ // only the watcher goroutine calls Wait
			if calls == 1 {
				return nvml.EventData{Device: d, EventType: nvml.EventTypeXidCriticalError, EventData: 79}, nvml.SUCCESS
			}
			once.Do(func() { close(counted) })
			time.Sleep(time.Duration(min(ms, 5)) * time.Millisecond)
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }

	c, err := gpumon.New(gpumon.WithNVML(s), gpumon.WithProcessMetrics(), gpumon.WithHostname("stack-test"))
	if err != nil {
		t.Fatalf("gpumon.New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("gpumon Close: %v", err)
		}
	})
	select {
	case <-counted:
	case <-time.After(10 * time.Second):
		t.Fatal("the XID watcher did not take the mocked event within 10s")
	}
	sim, err := gpusim.New(gpusim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_ = sim.SetLoad(gpusim.AllGPUs, 0.5)
	h100, err := gpumon.New(gpumon.WithNVML(sim.NVML()), gpumon.WithSampleInterval(20*time.Millisecond))
	if err != nil {
		t.Fatalf("gpumon.New over gpusim: %v", err)
	}
	t.Cleanup(func() {
		if err := h100.Close(); err != nil {
			t.Errorf("gpumon Close: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); testutil.CollectAndCount(h100, "gpu_tensor_pipe_active_ratio") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no GPM series from the simulated H100 within 10s")
		}
	}
	return both{c, h100}, ""
}

// both is two collectors as one; of the second, only the per-GPU series other than gpu_info (whose labels
// say simulated="true"), so that the self-metrics are not collected twice.
type both [2]prometheus.Collector

func isInfo(d *prometheus.Desc) bool {
	s := d.String()
	return strings.Contains(s, `fqName: "gpu_info"`) || !strings.Contains(s, "uuid")
}

func (b both) Describe(ch chan<- *prometheus.Desc) {
	b[0].Describe(ch)
	all := make(chan *prometheus.Desc, 256)
	go func() { b[1].Describe(all); close(all) }()
	for d := range all {
		if !isInfo(d) {
			ch <- d
		}
	}
}

func (b both) Collect(ch chan<- prometheus.Metric) {
	b[0].Collect(ch)
	all := make(chan prometheus.Metric, 1024)
	go func() { b[1].Collect(all); close(all) }()
	for m := range all {
		if !isInfo(m.Desc()) {
			ch <- m
		}
	}
}
