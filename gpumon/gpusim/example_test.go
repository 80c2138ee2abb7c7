//go:build cgo

package gpusim_test

import (
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/gpumon/gpusim"
)

// Simulated GPUs under gpumon: the load sets the utilisation, a GPU that
// falls off the bus reports gpu_up 0, and Clear brings it back.
func Example() {
	sim, err := gpusim.New(gpusim.Config{GPUs: 2, Model: gpusim.H100SXM, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	gpus, err := gpumon.New(gpumon.WithNVML(sim.NVML()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gpus.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(gpus)

	_ = sim.SetLoad(gpusim.AllGPUs, 0.75)
	_ = sim.FallOffBus(1)
	fmt.Println(testutil.ToFloat64(only(gpus, "gpu_utilization_ratio", "0")))
	fmt.Println(testutil.ToFloat64(only(gpus, "gpu_up", "1")))
	_ = sim.Clear(1)
	fmt.Println(testutil.ToFloat64(only(gpus, "gpu_up", "1")))
	// Output:
	// 0.75
	// 0
	// 1
}

// The NVML interface answers as a real library would; what gpusim does not
// simulate answers ERROR_NOT_SUPPORTED.
func ExampleSim_NVML() {
	sim, _ := gpusim.New(gpusim.Config{GPUs: 1, Model: gpusim.L4})
	lib := sim.NVML()
	_ = lib.Init()
	defer lib.Shutdown()
	d, _ := lib.DeviceGetHandleByIndex(0)
	name, _ := d.GetName()
	mem, _ := d.GetMemoryInfo_v2()
	limit, _ := d.GetEnforcedPowerLimit()
	_, ret := d.GetNvLinkState(0)
	fmt.Println(name, mem.Total>>20, "MiB", limit/1000, "W")
	fmt.Println(ret == nvml.ERROR_NOT_SUPPORTED)
	// Output:
	// NVIDIA L4 23034 MiB 72 W
	// true
}

// With an injected clock the temperature follows the power with its time
// constant (20 s by default): after a step to full load it covers 63% of the
// way in one time constant.
func ExampleConfig_now() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sim, _ := gpusim.New(gpusim.Config{Model: gpusim.H100SXM, Now: func() time.Time { return now }})
	lib := sim.NVML()
	_ = lib.Init()
	d, _ := lib.DeviceGetHandleByIndex(0)
	temp := func() uint32 { t, _ := d.GetTemperature(nvml.TEMPERATURE_GPU); return t }
	fmt.Println(temp(), "°C idle")
	_ = sim.SetLoad(0, 1)
	now = now.Add(20 * time.Second)
	fmt.Println(temp(), "°C after 20 s at full load")
	now = now.Add(5 * time.Minute)
	fmt.Println(temp(), "°C later")
	// Output:
	// 31 °C idle
	// 61 °C after 20 s at full load
	// 78 °C later
}

// Several processes sharing a GPU, as under time-slicing: each has its
// share of the memory and of the utilisation, which gpumon's process
// metrics show per process.
func ExampleConfig_processes() {
	sim, _ := gpusim.New(gpusim.Config{GPUs: 1, Processes: 4})
	gpus, err := gpumon.New(gpumon.WithNVML(sim.NVML()), gpumon.WithProcessMetrics())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gpus.Close()
	_ = sim.SetLoad(0, 0.8)
	fmt.Println(testutil.CollectAndCount(gpus, "gpu_process_sm_utilization_ratio"), "processes")
	ch := make(chan prometheus.Metric, 8)
	only(gpus, "gpu_process_sm_utilization_ratio", "0").Collect(ch)
	close(ch)
	for m := range ch {
		if labelOf(m, "pid") == fmt.Sprint(gpusim.SimPIDBase) {
			fmt.Println(testutil.ToFloat64(constCollector{m}), "of the SMs' time for the first")
		}
	}
	// Output:
	// 4 processes
	// 0.2 of the SMs' time for the first
}

// constCollector collects one metric.
type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

// only is the series name{gpu} of c, as a collector with that one metric.
func only(c prometheus.Collector, name, gpu string) prometheus.Collector {
	return filtered{c, name, gpu}
}
