//go:build cgo

package gpusim

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// device is one simulated GPU, an nvml.Device. Its state is advanced to the
// Sim's clock on every call, so values depend only on the loads set and the
// time that passed, never on how often it is read.
type device struct {
	unsupportedDevice
	sim    *Sim
	m      *Model
	index  int
	uuid   string
	serial string
	busID  string
	bus    uint8
	domain uint32

	mu   sync.Mutex
	last time.Time // the time the state below was advanced to
	// elapsed is the sum of the intervals advance integrated over: GPM's
	// sample time, so that its rates divide the counters by exactly the
	// time they were integrated over. (Sub reads the monotonic clock,
	// UnixNano the wall clock; time.Now takes the two readings tens of ns
	// apart, and NTP may slew one against the other.)
	elapsed time.Duration
	load    float64       // 0..1
	tempC   float64       // GPU temperature
	energy  float64       // mJ since the driver loaded
	lost    bool          // off the bus: calls answer ERROR_GPU_IS_LOST
	hung    chan struct{} // non-nil while hung: calls wait for it to close

	eccCorr, eccUnc       uint64 // volatile ECC counts (reset by Clear)
	eccAggCorr, eccAggUnc uint64 // aggregate ECC counts
	remapCorr, remapUnc   int
	remapPending          bool
	pcieReplay            int
	prof                  profState      // GPM, PCIe and NVLink counters (profiling.go)
	mig                   []*migInstance // GPU instances in MIG mode (mig.go); fixed at New
	sets                  []registration
}

type registration struct {
	set   *eventSet
	types uint64
}

// supportedEvents are the NVML event types a simulated GPU posts.
const supportedEvents = nvml.EventTypeXidCriticalError

func newDevice(s *Sim, i int, now time.Time) *device {
	uuid, serial := identity(s.cfg.Seed, i)
	d := &device{
		sim: s, m: &s.cfg.Model, index: i, uuid: uuid, serial: serial,
		bus: pciBuses[i%len(pciBuses)], domain: uint32(i / len(pciBuses)),
		last: now,
	}
	d.busID = fmt.Sprintf("%08X:%02X:00.0", d.domain, d.bus)
	d.prof = newProfState(d.m)
	d.tempC = d.steadyTemp(d.powerW())
	d.energy = d.m.IdlePowerW * 86400 * 1000 // idle for a day since the driver loaded
	return d
}

// lock waits out a hang, locks d and advances its state to the Sim's
// clock. It returns with d.mu held only when the answer is SUCCESS.
func (d *device) lock() nvml.Return {
	if !d.sim.lib.initialized() {
		return nvml.ERROR_UNINITIALIZED
	}
	d.mu.Lock()
	for d.hung != nil {
		ch := d.hung
		d.mu.Unlock()
		<-ch
		d.mu.Lock()
	}
	if d.lost {
		d.mu.Unlock()
		return nvml.ERROR_GPU_IS_LOST
	}
	d.advance(d.sim.now())
	return nvml.SUCCESS
}

// advance moves the state from d.last to now; d.mu is held. The power is
// constant in between (it changes only with the load, and setLoad advances
// first), so the energy and the temperature's exponential approach are
// exact. A clock that goes back changes nothing.
func (d *device) advance(now time.Time) {
	el := now.Sub(d.last)
	if el <= 0 {
		return
	}
	dt := el.Seconds()
	d.elapsed += el
	p := d.powerW()
	d.energy += p * dt * 1000
	d.advanceProf(dt)
	ss := d.steadyTemp(p)
	d.tempC = ss + (d.tempC-ss)*math.Exp(-dt/d.sim.tau)
	d.last = now
}

func (d *device) setLoad(load float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.advance(d.sim.now())
	d.load = load
}

func (d *device) injectXID(xid uint64) {
	d.mu.Lock()
	if xid == 48 {
		d.eccUnc++
		d.eccAggUnc++
		d.remapUnc++
		d.remapPending = true
	}
	sets := append([]registration(nil), d.sets...)
	d.mu.Unlock()
	for _, r := range sets {
		if r.types&nvml.EventTypeXidCriticalError != 0 {
			r.set.post(nvml.EventData{Device: d, EventType: nvml.EventTypeXidCriticalError, EventData: xid})
		}
	}
}

func (d *device) clear() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hung != nil {
		close(d.hung)
		d.hung = nil
	}
	d.lost = false
	d.remapPending = false
	d.eccCorr, d.eccUnc = 0, 0
}

// targetPowerW is the power the load asks for; above the limit the power is
// capped and the clocks come down.
func (d *device) targetPowerW() float64 {
	m := d.m
	return m.IdlePowerW + (1.1*m.PowerLimitW-m.IdlePowerW)*d.load
}

func (d *device) powerW() float64 { return min(d.targetPowerW(), d.m.PowerLimitW) }

func (d *device) powerCapped() bool { return d.targetPowerW() > d.m.PowerLimitW }

func (d *device) steadyTemp(p float64) float64 {
	m := d.m
	return m.IdleTempC + (m.FullTempC-m.IdleTempC)*(p-m.IdlePowerW)/(m.PowerLimitW-m.IdlePowerW)
}

func (d *device) thermalSlowdown() bool {
	return d.m.SlowdownTempC > 0 && d.tempC >= d.m.SlowdownTempC
}

func (d *device) smClockMHz() uint32 {
	m := d.m
	if d.load == 0 {
		return m.IdleSMClockMHz
	}
	f := float64(m.MaxSMClockMHz)
	if d.powerCapped() {
		f *= m.PowerLimitW / d.targetPowerW()
	}
	if d.thermalSlowdown() {
		f *= 0.8
	}
	return max(m.IdleSMClockMHz, uint32(f))
}

func (d *device) clocksEventReasons() uint64 {
	var r uint64
	if d.load == 0 {
		r |= nvml.ClocksEventReasonGpuIdle
	}
	if d.powerCapped() {
		r |= nvml.ClocksEventReasonSwPowerCap
	}
	if d.thermalSlowdown() {
		r |= nvml.ClocksEventReasonSwThermalSlowdown
	}
	return r
}

// memUsed is the memory in use, without the reserved memory, in whole MiB.
func (d *device) memUsed() uint64 {
	avail := d.m.MemoryTotal - d.m.MemoryReserved
	return uint64(float64(avail)*0.9*d.load) &^ (mib - 1)
}

func round32(v float64) uint32 { return uint32(math.Round(v)) }

// ---- nvml.Device: identity ----

func (d *device) GetUUID() (string, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return "", ret
	}
	defer d.mu.Unlock()
	return d.uuid, nvml.SUCCESS
}

func (d *device) GetName() (string, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return "", ret
	}
	defer d.mu.Unlock()
	return d.m.Name, nvml.SUCCESS
}

func (d *device) GetSerial() (string, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return "", ret
	}
	defer d.mu.Unlock()
	return d.serial, nvml.SUCCESS
}

func (d *device) GetIndex() (int, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return d.index, nvml.SUCCESS
}

func (d *device) GetMinorNumber() (int, nvml.Return) { return d.GetIndex() }

func (d *device) GetBrand() (nvml.BrandType, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return nvml.BRAND_NVIDIA, nvml.SUCCESS
}

func (d *device) GetArchitecture() (nvml.DeviceArchitecture, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return d.m.Architecture, nvml.SUCCESS
}

func (d *device) GetCudaComputeCapability() (int, int, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, 0, ret
	}
	defer d.mu.Unlock()
	return d.m.ComputeMajor, d.m.ComputeMinor, nvml.SUCCESS
}

func (d *device) GetPciInfo() (nvml.PciInfo, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nvml.PciInfo{}, ret
	}
	defer d.mu.Unlock()
	p := nvml.PciInfo{
		Domain: d.domain, Bus: uint32(d.bus),
		PciDeviceId:    uint32(d.m.PCIDeviceID)<<16 | 0x10de,
		PciSubSystemId: uint32(0x16c1)<<16 | 0x10de,
	}
	for i, c := range []byte(d.busID) {
		p.BusId[i] = int8(c)
	}
	for i, c := range []byte(fmt.Sprintf("%04X:%02X:00.0", d.domain, d.bus)) {
		p.BusIdLegacy[i] = int8(c)
	}
	return p, nvml.SUCCESS
}

func (d *device) GetPersistenceMode() (nvml.EnableState, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return nvml.FEATURE_ENABLED, nvml.SUCCESS
}

func (d *device) GetCurrPcieLinkGeneration() (int, nvml.Return) { return d.pcie(d.m.PCIeGen) }
func (d *device) GetMaxPcieLinkGeneration() (int, nvml.Return)  { return d.pcie(d.m.PCIeGen) }
func (d *device) GetCurrPcieLinkWidth() (int, nvml.Return)      { return d.pcie(16) }
func (d *device) GetMaxPcieLinkWidth() (int, nvml.Return)       { return d.pcie(16) }

func (d *device) pcie(v int) (int, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	if v == 0 {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	return v, nvml.SUCCESS
}

// ---- nvml.Device: values that follow the load ----

func (d *device) GetUtilizationRates() (nvml.Utilization, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nvml.Utilization{}, ret
	}
	defer d.mu.Unlock()
	return nvml.Utilization{Gpu: round32(100 * d.load), Memory: round32(60 * d.load)}, nvml.SUCCESS
}

func (d *device) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nvml.Memory{}, ret
	}
	defer d.mu.Unlock()
	used := d.memUsed() + d.m.MemoryReserved // v1 counts the reserved memory as used
	return nvml.Memory{Total: d.m.MemoryTotal, Used: used, Free: d.m.MemoryTotal - used}, nvml.SUCCESS
}

func (d *device) GetMemoryInfo_v2() (nvml.Memory_v2, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nvml.Memory_v2{}, ret
	}
	defer d.mu.Unlock()
	used := d.memUsed()
	return nvml.Memory_v2{
		Version: nvml.STRUCT_VERSION(nvml.Memory_v2{}, 2),
		Total:   d.m.MemoryTotal, Reserved: d.m.MemoryReserved, Used: used,
		Free: d.m.MemoryTotal - d.m.MemoryReserved - used,
	}, nvml.SUCCESS
}

func (d *device) GetTemperature(s nvml.TemperatureSensors) (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	if s != nvml.TEMPERATURE_GPU {
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	return round32(d.tempC), nvml.SUCCESS
}

func (d *device) GetTemperatureThreshold(t nvml.TemperatureThresholds) (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	switch t {
	case nvml.TEMPERATURE_THRESHOLD_SLOWDOWN:
		return round32(d.m.SlowdownTempC), nvml.SUCCESS
	case nvml.TEMPERATURE_THRESHOLD_SHUTDOWN:
		return round32(d.m.SlowdownTempC + 5), nvml.SUCCESS
	}
	return 0, nvml.ERROR_NOT_SUPPORTED
}

// memTempC is the HBM temperature: a few degrees above the GPU's.
func (d *device) memTempC() float64 { return d.tempC + 4 }

// GetFieldValues answers NVML_FI_DEV_MEMORY_TEMP (HBM models),
// NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, NVML_FI_DEV_NVLINK_LINK_COUNT and
// NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX/RX (scopeId: the link; KiB since the
// driver loaded); every other field has NvmlReturn ERROR_NOT_SUPPORTED.
func (d *device) GetFieldValues(values []nvml.FieldValue) nvml.Return {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return ret
	}
	defer d.mu.Unlock()
	ts := d.last.UnixMicro()
	for i := range values {
		v := &values[i]
		v.Timestamp = ts
		v.LatencyUsec = 0
		switch {
		case v.FieldId == nvml.FI_DEV_MEMORY_TEMP && d.m.HBM:
			putUint(v, uint64(round32(d.memTempC())), nvml.VALUE_TYPE_UNSIGNED_INT)
		case v.FieldId == nvml.FI_DEV_TOTAL_ENERGY_CONSUMPTION:
			putUint(v, uint64(d.energy), nvml.VALUE_TYPE_UNSIGNED_LONG_LONG)
		case d.nvlinkField(v):
		default:
			v.NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
		}
	}
	return nvml.SUCCESS
}

func putUint(v *nvml.FieldValue, x uint64, t nvml.ValueType) {
	v.ValueType = uint32(t)
	v.NvmlReturn = uint32(nvml.SUCCESS)
	v.Value = [8]byte{}
	if t == nvml.VALUE_TYPE_UNSIGNED_INT {
		nativeEndian.PutUint32(v.Value[:], uint32(x))
		return
	}
	nativeEndian.PutUint64(v.Value[:], x)
}

func (d *device) GetPowerUsage() (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return round32(d.powerW() * 1000), nvml.SUCCESS
}

func (d *device) powerLimit() (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return round32(d.m.PowerLimitW * 1000), nvml.SUCCESS
}

func (d *device) GetEnforcedPowerLimit() (uint32, nvml.Return)          { return d.powerLimit() }
func (d *device) GetPowerManagementLimit() (uint32, nvml.Return)        { return d.powerLimit() }
func (d *device) GetPowerManagementDefaultLimit() (uint32, nvml.Return) { return d.powerLimit() }

func (d *device) GetTotalEnergyConsumption() (uint64, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return uint64(d.energy), nvml.SUCCESS
}

func (d *device) GetClockInfo(t nvml.ClockType) (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	switch t {
	case nvml.CLOCK_SM, nvml.CLOCK_GRAPHICS:
		return d.smClockMHz(), nvml.SUCCESS
	case nvml.CLOCK_MEM:
		return d.m.MemClockMHz, nvml.SUCCESS
	}
	return 0, nvml.ERROR_NOT_SUPPORTED
}

func (d *device) GetMaxClockInfo(t nvml.ClockType) (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	switch t {
	case nvml.CLOCK_SM, nvml.CLOCK_GRAPHICS:
		return d.m.MaxSMClockMHz, nvml.SUCCESS
	case nvml.CLOCK_MEM:
		return d.m.MemClockMHz, nvml.SUCCESS
	}
	return 0, nvml.ERROR_NOT_SUPPORTED
}

func (d *device) GetPerformanceState() (nvml.Pstates, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return nvml.PSTATE_0, nvml.SUCCESS
}

func (d *device) fanPercent() (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	m := d.m
	if !m.HasFan {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	f := 0.0
	if m.FullTempC > m.IdleTempC {
		f = min(max((d.tempC-m.IdleTempC)/(m.FullTempC-m.IdleTempC), 0), 1)
	}
	return round32(30 + 70*f), nvml.SUCCESS
}

func (d *device) GetFanSpeed() (uint32, nvml.Return) { return d.fanPercent() }

func (d *device) GetFanSpeed_v2(fan int) (uint32, nvml.Return) {
	if fan != 0 {
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	return d.fanPercent()
}

func (d *device) GetNumFans() (int, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	if !d.m.HasFan {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	return 1, nvml.SUCCESS
}

func (d *device) GetCurrentClocksEventReasons() (uint64, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return d.clocksEventReasons(), nvml.SUCCESS
}

func (d *device) GetCurrentClocksThrottleReasons() (uint64, nvml.Return) {
	return d.GetCurrentClocksEventReasons()
}

func (d *device) GetSupportedClocksEventReasons() (uint64, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return nvml.ClocksEventReasonGpuIdle | nvml.ClocksEventReasonSwPowerCap | nvml.ClocksEventReasonSwThermalSlowdown, nvml.SUCCESS
}

func (d *device) GetSupportedClocksThrottleReasons() (uint64, nvml.Return) {
	return d.GetSupportedClocksEventReasons()
}

func (d *device) coderUtil() (uint32, uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, 0, ret
	}
	defer d.mu.Unlock()
	return 0, 167000, nvml.SUCCESS
}

func (d *device) GetEncoderUtilization() (uint32, uint32, nvml.Return) { return d.coderUtil() }
func (d *device) GetDecoderUtilization() (uint32, uint32, nvml.Return) { return d.coderUtil() }

// ---- nvml.Device: health ----

func (d *device) GetPcieReplayCounter() (int, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return d.pcieReplay, nvml.SUCCESS
}

func (d *device) GetEccMode() (nvml.EnableState, nvml.EnableState, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, 0, ret
	}
	defer d.mu.Unlock()
	return nvml.FEATURE_ENABLED, nvml.FEATURE_ENABLED, nvml.SUCCESS
}

func (d *device) GetTotalEccErrors(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	var corr, unc uint64
	switch c {
	case nvml.VOLATILE_ECC:
		corr, unc = d.eccCorr, d.eccUnc
	case nvml.AGGREGATE_ECC:
		corr, unc = d.eccAggCorr, d.eccAggUnc
	default:
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	switch t {
	case nvml.MEMORY_ERROR_TYPE_CORRECTED:
		return corr, nvml.SUCCESS
	case nvml.MEMORY_ERROR_TYPE_UNCORRECTED:
		return unc, nvml.SUCCESS
	}
	return 0, nvml.ERROR_INVALID_ARGUMENT
}

func (d *device) GetRemappedRows() (int, int, bool, bool, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, 0, false, false, ret
	}
	defer d.mu.Unlock()
	return d.remapCorr, d.remapUnc, d.remapPending, false, nvml.SUCCESS
}

// ---- nvml.Device: events (processes: process.go) ----

func (d *device) GetGraphicsRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nil, ret
	}
	defer d.mu.Unlock()
	return []nvml.ProcessInfo{}, nvml.SUCCESS
}

func (d *device) GetSupportedEventTypes() (uint64, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	return supportedEvents, nvml.SUCCESS
}

// RegisterEvents registers d's XID events with set, which must come from
// the same Sim's EventSetCreate.
func (d *device) RegisterEvents(types uint64, set nvml.EventSet) nvml.Return {
	es, ok := set.(*eventSet)
	if !ok || es == nil || es.freed() {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	if types&^supportedEvents != 0 {
		return nvml.ERROR_NOT_SUPPORTED
	}
	if ret := d.lock(); ret != nvml.SUCCESS {
		return ret
	}
	defer d.mu.Unlock()
	// Freed sets are dropped here, so the list stays as long as the live ones.
	keep := d.sets[:0]
	for _, r := range d.sets {
		if r.set == es {
			types |= r.types
		} else if !r.set.freed() {
			keep = append(keep, r)
		}
	}
	d.sets = append(keep, registration{es, types})
	return nvml.SUCCESS
}
