//go:build cgo

package gpumon_test

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"

	"github.com/modeltel/modeltel/gpumon"
)

const gib = 1 << 30

// box is a mocked DGX A100 whose devices answer every call gpumon makes with
// values derived from the device index i:
//
//	utilization gpu 50+10i %, memory 20+5i %; memory used (i+1) GiB of 40 GiB
//	(GetMemoryInfo_v2: 512 MiB of it reserved, (i+1) GiB - 512 MiB used)
//	memory temperature (NVML field value) 60+i °C
//	remapped rows: corrected 2i, uncorrected i, pending on i==1, no failure
//	temperature 30+i °C; power 50000+1000i mW, limit 400000 mW
//	energy 1000000(i+1)+500 mJ; SM clock 1410 MHz, memory clock 1215 MHz
//	fan: not supported; clocks event reasons: i==0 gpu_idle, else sw_power_cap|sw_thermal_slowdown
//	PCIe replays i; ECC corrected 3i, uncorrected 0; encoder 7 %, decoder 9 %
type box struct {
	*dgxa100.Server
	devs   []*dgxa100.Device
	set    *mock.EventSet
	events chan nvml.EventData
	freed  atomic.Int32
}

func newBox(tb testing.TB, n int) *box {
	tb.Helper()
	s := dgxa100.New()
	b := &box{Server: s, events: make(chan nvml.EventData, 16)}
	s.DeviceGetCountFunc = func() (int, nvml.Return) { return n, nvml.SUCCESS }
	for i, nd := range s.Devices[:n] {
		d := nd.(*dgxa100.Device)
		b.devs = append(b.devs, d)
		fillDevice(d, i)
	}
	b.set = &mock.EventSet{
		WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
			// Wait less than asked so tests never wait long for Close.
			select {
			case e := <-b.events:
				return e, nvml.SUCCESS
			case <-time.After(time.Duration(min(ms, 5)) * time.Millisecond):
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() nvml.Return { b.freed.Add(1); return nvml.SUCCESS },
	}
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return b.set, nvml.SUCCESS }
	return b
}

func fillDevice(d *dgxa100.Device, i int) {
	d.UUID = fmt.Sprintf("GPU-mock-%d", i)
	d.MemoryInfo = nvml.Memory{Total: 40 * gib, Used: uint64(i+1) * gib, Free: 40*gib - uint64(i+1)*gib}
	d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		m := d.MemoryInfo
		return nvml.Memory_v2{Total: m.Total, Reserved: 512 << 20, Used: m.Used - 512<<20, Free: m.Free}, nvml.SUCCESS
	}
	d.GetFieldValuesFunc = func(values []nvml.FieldValue) nvml.Return {
		for k := range values {
			v := &values[k]
			if v.FieldId != nvml.FI_DEV_MEMORY_TEMP {
				v.NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
				continue
			}
			v.ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
			v.NvmlReturn = uint32(nvml.SUCCESS)
			binary.NativeEndian.PutUint32(v.Value[:], uint32(60+i))
		}
		return nvml.SUCCESS
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 2 * i, i, i == 1, false, nvml.SUCCESS }
	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		var p nvml.PciInfo
		for k, c := range d.PciBusID {
			p.BusId[k] = int8(c)
		}
		return p, nvml.SUCCESS
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: uint32(50 + 10*i), Memory: uint32(20 + 5*i)}, nvml.SUCCESS
	}
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return uint32(30 + i), nvml.SUCCESS }
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(50000 + 1000*i), nvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return uint64(1000000*(i+1) + 500), nvml.SUCCESS }
	d.GetClockInfoFunc = func(t nvml.ClockType) (uint32, nvml.Return) {
		switch t {
		case nvml.CLOCK_SM:
			return 1410, nvml.SUCCESS
		case nvml.CLOCK_MEM:
			return 1215, nvml.SUCCESS
		}
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	d.GetFanSpeedFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
		if i == 0 {
			return nvml.ClocksEventReasonGpuIdle, nvml.SUCCESS
		}
		return nvml.ClocksEventReasonSwPowerCap | nvml.ClocksEventReasonSwThermalSlowdown, nvml.SUCCESS
	}
	d.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return i, nvml.SUCCESS }
	d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, _ nvml.EccCounterType) (uint64, nvml.Return) {
		if t == nvml.MEMORY_ERROR_TYPE_CORRECTED {
			return uint64(3 * i), nvml.SUCCESS
		}
		return 0, nvml.SUCCESS
	}
	d.GetEncoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 7, 167000, nvml.SUCCESS }
	d.GetDecoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 9, 167000, nvml.SUCCESS }
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	d.GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	d.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) { return nil, nvml.ERROR_NOT_FOUND }
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		return nvml.EventTypeXidCriticalError | nvml.EventTypeSingleBitEccError, nvml.SUCCESS
	}
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
}

// newCollector builds a Collector over b and closes it when the test ends.
func newCollector(tb testing.TB, b *box, opts ...gpumon.Option) *gpumon.Collector {
	tb.Helper()
	c, err := gpumon.New(append([]gpumon.Option{gpumon.WithNVML(b)}, opts...)...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return c
}
