//go:build cgo

package gpusim

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// How busy each engine is at load 1 (they scale with the load): a training
// step's mix, with DRAM matching GetUtilizationRates' memory (60%).
const (
	grAtFull     = 1.0
	smAtFull     = 0.95
	occAtFull    = 0.45
	tensorAtFull = 0.7
	dramAtFull   = 0.6
	// Shares of the PCIe link's bandwidth (per direction) in use at load 1:
	// input batches in, little out.
	pcieRXAtFull = 0.15
	pcieTXAtFull = 0.05
	// Share of each NVLink's bandwidth (per direction) in use at load 1
	// (gradient all-reduce), the same on every link and both ways.
	nvlinkAtFull = 0.5
)

// numAct is the number of GPM activities simulated: graphics, SM active,
// SM occupancy, tensor, DRAM (in GPM's order in gpmMetric below).
const numAct = 5

// profState is what a GPU has done since the driver loaded, integrated as
// the state advances: busy-seconds per activity, bytes per direction over
// PCIe and over each NVLink, and the NVLink error counters.
type profState struct {
	act            [numAct]float64
	pcieTX, pcieRX float64   // bytes
	linkTX, linkRX []float64 // bytes per link
	linkErr        [][numLinkErr]uint64
}

// The NVLink error counters, indexed as nvml.NvLinkErrorCounter.
const numLinkErr = int(nvml.NVLINK_ERROR_DL_ECC_DATA) + 1

func newProfState(m *Model) profState {
	return profState{
		linkTX: make([]float64, m.NVLinks), linkRX: make([]float64, m.NVLinks),
		linkErr: make([][numLinkErr]uint64, m.NVLinks),
	}
}

// pcieBps is the PCIe x16 bandwidth per direction of the model's generation.
func (m *Model) pcieBps() float64 {
	switch m.PCIeGen {
	case 3:
		return 16e9
	case 4:
		return 32e9
	case 5:
		return 64e9
	}
	return 0
}

// rates are the instantaneous values at load l: the activities (fractions)
// and the byte rates (PCIe TX, RX; NVLink per link, each direction).
func (d *device) rates() (act [numAct]float64, pcieTX, pcieRX, perLink float64) {
	l := d.load
	act = [numAct]float64{grAtFull * l, smAtFull * l, occAtFull * l, tensorAtFull * l, dramAtFull * l}
	bw := d.m.pcieBps()
	return act, pcieTXAtFull * bw * l, pcieRXAtFull * bw * l, nvlinkAtFull * d.m.NVLinkGBps * 1e9 * l
}

// advanceProf integrates dt seconds at the current load; d.mu is held.
func (d *device) advanceProf(dt float64) {
	act, tx, rx, link := d.rates()
	p := &d.prof
	for k := range act {
		p.act[k] += act[k] * dt
	}
	p.pcieTX += tx * dt
	p.pcieRX += rx * dt
	for k := range p.linkTX {
		p.linkTX[k] += link * dt
		p.linkRX[k] += link * dt
	}
}

// injectNVLinkErrors counts n CRC flit errors on link, each retried (a
// replay), as a marginal link does.
func (d *device) injectNVLinkErrors(link int, n uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if link < 0 || link >= d.m.NVLinks {
		return fmt.Errorf("gpusim: gpu %d: no NVLink %d (the %s has %d)", d.index, link, d.m.Key, d.m.NVLinks)
	}
	e := &d.prof.linkErr[link]
	e[nvml.NVLINK_ERROR_DL_CRC_FLIT] += n
	e[nvml.NVLINK_ERROR_DL_REPLAY] += n
	return nil
}

// InjectNVLinkErrors makes GPU gpu (or AllGPUs) count n CRC flit errors on
// its NVLink link, and n replays (each retried), as a failing link does.
// The counters are kept across Clear (they are what the driver counted).
// The model must have that link (H100 SXM: 0 to 17, A100: 0 to 11; L4
// none).
func (s *Sim) InjectNVLinkErrors(gpu, link int, n uint64) error {
	var err error
	if e := s.each(gpu, func(d *device) {
		if e := d.injectNVLinkErrors(link, n); e != nil && err == nil {
			err = e
		}
	}); e != nil {
		return e
	}
	return err
}

// ---- GPM ----

// gpmSample is a simulated nvml.GpmSample: a copy of the GPU's (or MIG
// instance's) counters at one moment, and its rates then.
type gpmSample struct {
	t              int64 // ns: the GPU's elapsed (device.go) when taken
	act            [numAct]float64
	pcieTX, pcieRX float64
	nvlTX, nvlRX   float64
	inst           [numAct + 4]float64 // the rates at t, for two samples at the same moment
	taken          bool
}

func (s *gpmSample) Free() nvml.Return                          { return nvml.SUCCESS }
func (s *gpmSample) Get(dev nvml.Device) nvml.Return            { return gpmGet(dev, s) }
func (s *gpmSample) MigGet(dev nvml.Device, gi int) nvml.Return { return gpmMigGet(dev, gi, s) }

func gpmGet(dev nvml.Device, s nvml.GpmSample) nvml.Return {
	if dev == nil {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	return dev.GpmSampleGet(s)
}

func gpmMigGet(dev nvml.Device, gi int, s nvml.GpmSample) nvml.Return {
	if dev == nil {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	return dev.GpmMigSampleGet(gi, s)
}

func (l *library) GpmSampleAlloc() (nvml.GpmSample, nvml.Return) {
	if !l.initialized() {
		return nil, nvml.ERROR_UNINITIALIZED
	}
	return &gpmSample{}, nvml.SUCCESS
}

func (l *library) GpmSampleFree(s nvml.GpmSample) nvml.Return {
	if _, ok := s.(*gpmSample); !ok {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	return nvml.SUCCESS
}

func (l *library) GpmSampleGet(dev nvml.Device, s nvml.GpmSample) nvml.Return { return gpmGet(dev, s) }

func (l *library) GpmMigSampleGet(dev nvml.Device, gi int, s nvml.GpmSample) nvml.Return {
	return gpmMigGet(dev, gi, s)
}

func (l *library) GpmQueryDeviceSupport(dev nvml.Device) (nvml.GpmSupport, nvml.Return) {
	if dev == nil {
		return nvml.GpmSupport{}, nvml.ERROR_INVALID_ARGUMENT
	}
	return dev.GpmQueryDeviceSupport()
}

// gpmMetric maps the GPM metrics gpusim answers to the index of their
// value in gpmSample.inst (the activities in percent, the rates in MiB/s).
var gpmMetric = map[nvml.GpmMetricId]int{
	nvml.GPM_METRIC_GRAPHICS_UTIL:           0,
	nvml.GPM_METRIC_SM_UTIL:                 1,
	nvml.GPM_METRIC_SM_OCCUPANCY:            2,
	nvml.GPM_METRIC_ANY_TENSOR_UTIL:         3,
	nvml.GPM_METRIC_DRAM_BW_UTIL:            4,
	nvml.GPM_METRIC_PCIE_TX_PER_SEC:         5,
	nvml.GPM_METRIC_PCIE_RX_PER_SEC:         6,
	nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC: 7,
	nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC: 8,
}

// GpmMetricsGet computes the metrics between two samples of the same GPU,
// as NVML does: busy time over elapsed time in percent, bytes over elapsed
// time in MiB/s. Two samples taken at the same moment of the Sim's clock
// (a test's fake clock that did not move) give the rates at that moment.
func (l *library) GpmMetricsGet(m *nvml.GpmMetricsGetType) nvml.Return {
	if m == nil || m.NumMetrics > uint32(len(m.Metrics)) {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	a, ok1 := m.Sample1.(*gpmSample)
	b, ok2 := m.Sample2.(*gpmSample)
	if !ok1 || !ok2 || !a.taken || !b.taken {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	var v [numAct + 4]float64
	if dt := float64(b.t-a.t) / 1e9; dt > 0 {
		for k := range numAct {
			v[k] = 100 * (b.act[k] - a.act[k]) / dt
		}
		v[5] = (b.pcieTX - a.pcieTX) / dt / mib
		v[6] = (b.pcieRX - a.pcieRX) / dt / mib
		v[7] = (b.nvlTX - a.nvlTX) / dt / mib
		v[8] = (b.nvlRX - a.nvlRX) / dt / mib
	} else {
		v = b.inst
	}
	for k := range m.NumMetrics {
		x := &m.Metrics[k]
		i, ok := gpmMetric[nvml.GpmMetricId(x.MetricId)]
		if !ok {
			x.NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
			continue
		}
		x.Value, x.NvmlReturn = v[i], uint32(nvml.SUCCESS)
	}
	return nvml.SUCCESS
}

func (d *device) GpmQueryDeviceSupport() (nvml.GpmSupport, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nvml.GpmSupport{}, ret
	}
	defer d.mu.Unlock()
	s := nvml.GpmSupport{Version: nvml.GPM_SUPPORT_VERSION}
	if d.m.GPM {
		s.IsSupportedDevice = 1
	}
	return s, nvml.SUCCESS
}

func (d *device) GpmSampleGet(s nvml.GpmSample) nvml.Return {
	g, ok := s.(*gpmSample)
	if !ok || g == nil {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	if ret := d.lock(); ret != nvml.SUCCESS {
		return ret
	}
	defer d.mu.Unlock()
	if !d.m.GPM {
		return nvml.ERROR_NOT_SUPPORTED
	}
	d.gpmSnapshot(g)
	return nvml.SUCCESS
}

// gpmSnapshot fills g with the GPU's counters and rates now; d.mu is held.
func (d *device) gpmSnapshot(g *gpmSample) {
	p := &d.prof
	*g = gpmSample{t: int64(d.elapsed), act: p.act, pcieTX: p.pcieTX, pcieRX: p.pcieRX, taken: true}
	for k := range p.linkTX {
		g.nvlTX += p.linkTX[k]
		g.nvlRX += p.linkRX[k]
	}
	act, tx, rx, link := d.rates()
	for k := range act {
		g.inst[k] = 100 * act[k]
	}
	all := link * float64(d.m.NVLinks) / mib
	g.inst[5], g.inst[6], g.inst[7], g.inst[8] = tx/mib, rx/mib, all, all
}

// ---- PCIe and NVLink ----

// GetPcieThroughput answers the rate at the current load in KB/s (1024
// bytes), as NVML does after its 20 ms window (gpusim does not wait).
func (d *device) GetPcieThroughput(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	_, tx, rx, _ := d.rates()
	switch c {
	case nvml.PCIE_UTIL_TX_BYTES:
		return round32(tx / 1024), nvml.SUCCESS
	case nvml.PCIE_UTIL_RX_BYTES:
		return round32(rx / 1024), nvml.SUCCESS
	}
	return 0, nvml.ERROR_INVALID_ARGUMENT
}

// nvlink checks link; d.mu is held.
func (d *device) nvlink(link int) nvml.Return {
	switch {
	case d.m.NVLinks == 0:
		return nvml.ERROR_NOT_SUPPORTED
	case link < 0 || link >= d.m.NVLinks:
		return nvml.ERROR_INVALID_ARGUMENT
	}
	return nvml.SUCCESS
}

// GetNvLinkState answers FEATURE_ENABLED for every link of the model
// (every link is active).
func (d *device) GetNvLinkState(link int) (nvml.EnableState, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	if ret := d.nvlink(link); ret != nvml.SUCCESS {
		return 0, ret
	}
	return nvml.FEATURE_ENABLED, nvml.SUCCESS
}

func (d *device) GetNvLinkVersion(link int) (uint32, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	if ret := d.nvlink(link); ret != nvml.SUCCESS {
		return 0, ret
	}
	if d.m.Architecture == nvml.DEVICE_ARCH_HOPPER {
		return 4, nvml.SUCCESS
	}
	return 3, nvml.SUCCESS
}

func (d *device) GetNvLinkErrorCounter(link int, c nvml.NvLinkErrorCounter) (uint64, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	if ret := d.nvlink(link); ret != nvml.SUCCESS {
		return 0, ret
	}
	if c < 0 || int(c) >= numLinkErr {
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	return d.prof.linkErr[link][c], nvml.SUCCESS
}

// nvlinkField answers an NVLink field value (d.mu held); false: not one.
func (d *device) nvlinkField(v *nvml.FieldValue) bool {
	switch v.FieldId {
	case nvml.FI_DEV_NVLINK_LINK_COUNT:
		if d.m.NVLinks == 0 {
			return false
		}
		putUint(v, uint64(d.m.NVLinks), nvml.VALUE_TYPE_UNSIGNED_INT)
		return true
	case nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX, nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX:
		l := int(v.ScopeId)
		if d.nvlink(l) != nvml.SUCCESS {
			return false
		}
		b := d.prof.linkTX[l]
		if v.FieldId == nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX {
			b = d.prof.linkRX[l]
		}
		putUint(v, uint64(b/1024), nvml.VALUE_TYPE_UNSIGNED_LONG_LONG) // KiB
		return true
	}
	return false
}
