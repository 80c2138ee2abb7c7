//go:build cgo

package gpusim_test

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/gpumon/gpusim"
)

// BenchmarkCollect: one gpumon scrape of 8 simulated H100s (compare with
// gpumon's BenchmarkCollect over go-nvml's dgxa100 mock), by naming scheme.
func BenchmarkCollect(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []gpumon.Option
	}{
		{"default", nil},
		{"dcgm", []gpumon.Option{gpumon.WithDCGMNames(), gpumon.WithHostname("h")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sim, _ := gpusim.New(gpusim.Config{GPUs: 8})
			_ = sim.SetLoad(gpusim.AllGPUs, 0.5)
			c, err := gpumon.New(append(bc.opts, gpumon.WithNVML(sim.NVML()))...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ch := make(chan prometheus.Metric, 1024)
			b.ReportAllocs()
			for b.Loop() {
				c.Collect(ch)
				for len(ch) > 0 {
					<-ch
				}
			}
		})
	}
}

// BenchmarkReads is the baseline: the NVML calls of one scrape of 8 GPUs,
// made directly on the simulated devices, no collector.
func BenchmarkReads(b *testing.B) {
	sim, _ := gpusim.New(gpusim.Config{GPUs: 8})
	lib := sim.NVML()
	_ = lib.Init()
	defer lib.Shutdown()
	var devs []nvml.Device
	for i := range 8 {
		d, _ := lib.DeviceGetHandleByIndex(i)
		devs = append(devs, d)
	}
	fv := make([]nvml.FieldValue, 1)
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range devs {
			_, _ = d.GetUtilizationRates()
			_, _ = d.GetMemoryInfo_v2()
			_, _ = d.GetTemperature(nvml.TEMPERATURE_GPU)
			fv[0].FieldId = nvml.FI_DEV_MEMORY_TEMP
			_ = d.GetFieldValues(fv)
			_, _ = d.GetPowerUsage()
			_, _ = d.GetEnforcedPowerLimit()
			_, _ = d.GetTotalEnergyConsumption()
			_, _ = d.GetClockInfo(nvml.CLOCK_SM)
			_, _ = d.GetClockInfo(nvml.CLOCK_MEM)
			_, _ = d.GetFanSpeed()
			_, _ = d.GetPcieReplayCounter()
			_, _, _ = d.GetEncoderUtilization()
			_, _, _ = d.GetDecoderUtilization()
			_, _ = d.GetCurrentClocksEventReasons()
			_, _ = d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC)
			_, _ = d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
			_, _, _, _, _ = d.GetRemappedRows()
		}
	}
}
