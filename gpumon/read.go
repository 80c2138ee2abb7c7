//go:build cgo

package gpumon

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// snapshot is what one scrape (or Healthy) got from NVML: each GPU's latest
// read, or why there is none. It is immutable once published.
type snapshot struct {
	at   time.Time    // when the oldest of its reads started
	devs []*devResult // by device; nil where the GPU did not answer (errs says why)
	errs []error      // by device; nil when every GPU answered
}

// devResult is one NVML read of one GPU. It is immutable once published.
type devResult struct {
	samples []sample
	extra   []prometheus.Metric // process metrics
	health  devHealth
}

type devHealth struct {
	lost        bool
	uncorrected uint64
	remapFailed bool
}

// devRead is the state of reading one device.
type devRead struct {
	c    *Collector
	up   bool
	lost bool
	has  uint32 // bit f set: vals[f] was read
	vals [numFields]uint64
}

// ok reports whether ret is SUCCESS. NOT_SUPPORTED is quietly false;
// NO_PERMISSION (what a MIG-enabled GPU answers a non-root caller's
// device-level memory and process queries) is counted under call but leaves
// the device up, since the device did answer; any other error is counted
// and marks the device down.
func (r *devRead) ok(call string, ret nvml.Return) bool {
	switch ret {
	case nvml.SUCCESS:
		return true
	case nvml.ERROR_NOT_SUPPORTED:
		return false
	case nvml.ERROR_NO_PERMISSION:
		r.c.countError(call, ret)
		return false
	}
	r.up = false
	if ret == nvml.ERROR_GPU_IS_LOST {
		r.lost = true
	}
	r.c.countError(call, ret)
	return false
}

// try makes one NVML read call. A panic in it (a mock that lacks the func,
// a go-nvml bug) is counted as call="panic" and reads as
// ERROR_NOT_SUPPORTED: that value is left out, and the device's other values
// still count.
func try[T any](r *devRead, f func() (T, nvml.Return)) (v T, ret nvml.Return) {
	defer func() {
		if p := recover(); p != nil {
			r.c.countError("panic", nvml.ERROR_UNKNOWN)
			var zero T
			v, ret = zero, nvml.ERROR_NOT_SUPPORTED
		}
	}()
	return f()
}

func (r *devRead) set(f field, v uint64) {
	r.vals[f] = v
	r.has |= 1 << f
}

// readDevice reads the changing values of GPU i into s, whose samples are
// empty.
func (c *Collector) readDevice(i int, d *device, s *devResult) {
	set := c.set
	r := devRead{c: c, up: d.handle != nil, lost: d.handle == nil}
	var reasons uint64
	var ecc [len(eccTypes)]uint64
	var hasReasons bool
	var hasECC [len(eccTypes)]bool
	h := d.handle
	// Each step stops once the GPU is lost: every further call would fail too.
	if !r.lost && set.wants(fUtil, fMemUtil) {
		if u, ret := try(&r, h.GetUtilizationRates); r.ok("GetUtilizationRates", ret) {
			r.set(fUtil, uint64(u.Gpu))
			r.set(fMemUtil, uint64(u.Memory))
		}
	}
	if !r.lost && set.wants(fMemUsed, fMemFree, fMemTotal, fMemReserved) {
		v1 := !set.memoryV2
		if !v1 {
			m, ret := try(&r, h.GetMemoryInfo_v2)
			if r.ok("GetMemoryInfo_v2", ret) {
				r.set(fMemUsed, m.Used) // without the reserved memory
				r.set(fMemFree, m.Free)
				r.set(fMemTotal, m.Total)
				r.set(fMemReserved, m.Reserved)
			}
			v1 = ret == nvml.ERROR_NOT_SUPPORTED
		}
		if v1 {
			if m, ret := try(&r, h.GetMemoryInfo); r.ok("GetMemoryInfo", ret) {
				r.set(fMemUsed, m.Used)
				r.set(fMemFree, m.Free)
				r.set(fMemTotal, m.Total)
			}
		}
	}
	if !r.lost && set.wants(fTemp) {
		if t, ret := try(&r, func() (uint32, nvml.Return) { return h.GetTemperature(nvml.TEMPERATURE_GPU) }); r.ok("GetTemperature", ret) {
			r.set(fTemp, uint64(t))
		}
	}
	if !r.lost && set.wants(fMemTemp) {
		fv := &d.fields[0]
		*fv = nvml.FieldValue{FieldId: nvml.FI_DEV_MEMORY_TEMP}
		if _, ret := try(&r, func() (struct{}, nvml.Return) { return struct{}{}, h.GetFieldValues(d.fields[:]) }); r.ok("GetFieldValues", ret) && r.ok("GetFieldValues", nvml.Return(fv.NvmlReturn)) {
			if v, ok := fieldUint(fv); ok {
				r.set(fMemTemp, v)
			}
		}
	}
	if !r.lost && set.wants(fPower) {
		if p, ret := try(&r, h.GetPowerUsage); r.ok("GetPowerUsage", ret) {
			r.set(fPower, uint64(p))
		}
	}
	if !r.lost && set.wants(fPowerLimit) {
		if p, ret := try(&r, h.GetEnforcedPowerLimit); r.ok("GetEnforcedPowerLimit", ret) {
			r.set(fPowerLimit, uint64(p))
		}
	}
	if !r.lost && set.wants(fEnergy) {
		if e, ret := try(&r, h.GetTotalEnergyConsumption); r.ok("GetTotalEnergyConsumption", ret) {
			r.set(fEnergy, e)
		}
	}
	if !r.lost && set.wants(fSMClock) {
		if v, ret := try(&r, func() (uint32, nvml.Return) { return h.GetClockInfo(nvml.CLOCK_SM) }); r.ok("GetClockInfo", ret) {
			r.set(fSMClock, uint64(v))
		}
	}
	if !r.lost && set.wants(fMemClock) {
		if v, ret := try(&r, func() (uint32, nvml.Return) { return h.GetClockInfo(nvml.CLOCK_MEM) }); r.ok("GetClockInfo", ret) {
			r.set(fMemClock, uint64(v))
		}
	}
	if !r.lost && set.wants(fFan) {
		if v, ret := try(&r, h.GetFanSpeed); r.ok("GetFanSpeed", ret) {
			r.set(fFan, uint64(v))
		}
	}
	if !r.lost && set.wants(fPCIeReplay) {
		if v, ret := try(&r, h.GetPcieReplayCounter); r.ok("GetPcieReplayCounter", ret) && v >= 0 {
			r.set(fPCIeReplay, uint64(v))
		}
	}
	if !r.lost && set.wants(fEncUtil) {
		if v, ret := try(&r, func() (uint32, nvml.Return) { v, _, ret := h.GetEncoderUtilization(); return v, ret }); r.ok("GetEncoderUtilization", ret) {
			r.set(fEncUtil, uint64(v))
		}
	}
	if !r.lost && set.wants(fDecUtil) {
		if v, ret := try(&r, func() (uint32, nvml.Return) { v, _, ret := h.GetDecoderUtilization(); return v, ret }); r.ok("GetDecoderUtilization", ret) {
			r.set(fDecUtil, uint64(v))
		}
	}
	if !r.lost && set.clockEvent != nil {
		var v uint64
		var ret nvml.Return
		if set.eventReasons {
			v, ret = try(&r, h.GetCurrentClocksEventReasons)
		} else {
			v, ret = try(&r, h.GetCurrentClocksThrottleReasons) // drivers before 535 lack the new name
		}
		if r.ok("GetCurrentClocksEventReasons", ret) {
			reasons, hasReasons = v, true
		}
	}
	// ECC is read with either metric set: Healthy needs the uncorrected count.
	for t := range eccTypes {
		if r.lost {
			break
		}
		if v, ret := try(&r, func() (uint64, nvml.Return) { return h.GetTotalEccErrors(nvml.MemoryErrorType(t), nvml.VOLATILE_ECC) }); r.ok("GetTotalEccErrors", ret) {
			ecc[t], hasECC[t] = v, true
		}
	}
	// Remapped rows are read with either metric set: Healthy needs the
	// failure flag.
	var remapFailed bool
	if !r.lost {
		type remapped struct {
			corr, unc       int
			pending, failed bool
		}
		if m, ret := try(&r, func() (m remapped, ret nvml.Return) {
			m.corr, m.unc, m.pending, m.failed, ret = h.GetRemappedRows()
			return m, ret
		}); r.ok("GetRemappedRows", ret) {
			r.set(fRemapCorr, uint64(m.corr))
			r.set(fRemapUnc, uint64(m.unc))
			r.set(fRemapPend, b2u(m.pending))
			r.set(fRemapFail, b2u(m.failed))
			remapFailed = m.failed
		}
	}
	var xidLast uint64
	if !r.lost && set.xidLast != nil {
		xidLast = c.xid.lastXID(i)
	}
	if !r.lost && set.proc != nil {
		c.readProcesses(&r, d, s)
	}

	s.health = devHealth{lost: r.lost, uncorrected: ecc[nvml.MEMORY_ERROR_TYPE_UNCORRECTED], remapFailed: remapFailed}
	if set.up != nil {
		s.samples = append(s.samples, sample{set.up, d.base, prometheus.GaugeValue, b2f(r.up)})
	}
	for f := range numFields {
		def := &set.fields[f]
		if def.desc != nil && r.has&(1<<f) != 0 {
			s.samples = append(s.samples, sample{def.desc, d.base, def.typ, def.conv(r.vals[f])})
		}
	}
	if !r.lost && set.xidLast != nil {
		s.samples = append(s.samples, sample{set.xidLast, set.xidLabels(d, xidLast), prometheus.GaugeValue, float64(xidLast)})
	}
	if hasReasons {
		for k, cr := range clockReasons {
			s.samples = append(s.samples, sample{set.clockEvent, d.reason[k], prometheus.GaugeValue, b2f(reasons&cr.bit != 0)})
		}
	}
	if set.ecc != nil {
		for t := range eccTypes {
			if hasECC[t] {
				s.samples = append(s.samples, sample{set.ecc, d.ecc[t], prometheus.CounterValue, float64(ecc[t])})
			}
		}
	}
	if set.remapped != nil {
		for t, f := range remapFields {
			if r.has&(1<<f) != 0 {
				s.samples = append(s.samples, sample{set.remapped, d.remap[t], prometheus.CounterValue, float64(r.vals[f])})
			}
		}
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// fieldUint is the value of an NVML field value read with SUCCESS, if it is
// a whole number of at least zero.
func fieldUint(v *nvml.FieldValue) (uint64, bool) {
	b := v.Value[:]
	switch nvml.ValueType(v.ValueType) {
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return uint64(binary.NativeEndian.Uint32(b)), true
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return binary.NativeEndian.Uint64(b), true
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return uint64(binary.NativeEndian.Uint16(b)), true
	case nvml.VALUE_TYPE_SIGNED_INT:
		if x := int32(binary.NativeEndian.Uint32(b)); x >= 0 {
			return uint64(x), true
		}
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		if x := int64(binary.NativeEndian.Uint64(b)); x >= 0 {
			return uint64(x), true
		}
	case nvml.VALUE_TYPE_DOUBLE:
		if x := math.Float64frombits(binary.NativeEndian.Uint64(b)); x >= 0 && x < 1<<63 {
			return uint64(x), true
		}
	}
	return 0, false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
