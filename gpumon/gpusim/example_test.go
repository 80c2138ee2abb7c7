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

// only is the series name{gpu} of c, as a collector with that one metric.
func only(c prometheus.Collector, name, gpu string) prometheus.Collector {
	return filtered{c, name, gpu}
}
