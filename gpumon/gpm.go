//go:build cgo

package gpumon

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// prof is one GPM profiling metric gpumon emits.
type prof int

const (
	profGR     prof = iota // graphics engine active
	profSM                 // SM active
	profSMOcc              // SM occupancy
	profTensor             // any tensor pipe active
	profDRAM               // DRAM bandwidth used
	profPCIeTX             // PCIe bytes per second from the GPU
	profPCIeRX
	profNVLTX // NVLink bytes per second, all links
	profNVLRX
	numProf
)

// numActivity is the number of activity ratios (the profs before PCIe),
// the ones GPM also gives per MIG instance.
const numActivity = int(profPCIeTX)

// gpmMetrics are the GPM metric ids of the profs. GPM reports the
// activities in percent and the rates in MiB/s.
var gpmMetrics = [numProf]nvml.GpmMetricId{
	profGR:     nvml.GPM_METRIC_GRAPHICS_UTIL,
	profSM:     nvml.GPM_METRIC_SM_UTIL,
	profSMOcc:  nvml.GPM_METRIC_SM_OCCUPANCY,
	profTensor: nvml.GPM_METRIC_ANY_TENSOR_UTIL,
	profDRAM:   nvml.GPM_METRIC_DRAM_BW_UTIL,
	profPCIeTX: nvml.GPM_METRIC_PCIE_TX_PER_SEC,
	profPCIeRX: nvml.GPM_METRIC_PCIE_RX_PER_SEC,
	profNVLTX:  nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC,
	profNVLRX:  nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC,
}

// gpmScale converts GPM's value of p to the unit both naming schemes use
// (a ratio, bytes per second).
func gpmScale(p prof, v float64) float64 {
	if int(p) < numActivity {
		return v / 100
	}
	return v * (1 << 20)
}

// gpmSource reads GPM metrics of one GPU, or of one MIG instance (gi >= 0),
// from two samples a round apart. Its samples and the request are
// allocated once; a round makes no allocation for GPM.
type gpmSource struct {
	h       nvml.Device
	gi      int // MIG GPU instance id; -1 for the whole GPU
	n       int // profs asked for: numProf for a GPU, numActivity for an instance
	samples [2]nvml.GpmSample
	cur     int  // samples[cur] is taken next
	have    bool // samples[1-cur] holds the last round's sample
	off     bool // sampling answered NOT_SUPPORTED or NO_PERMISSION: not asked again
	unsup   uint16
	req     nvml.GpmMetricsGetType
	vals    [numProf]float64
	got     uint16 // bit p: vals[p] is valid this round
}

// probeGPM returns the GPM source of h, or nil where the GPU (or driver)
// has no GPM or the samples cannot be allocated.
func probeGPM(lib nvml.Interface, h nvml.Device) *gpmSource {
	sup, ret := probe(h.GpmQueryDeviceSupport)
	if ret != nvml.SUCCESS || sup.IsSupportedDevice == 0 {
		return nil
	}
	return newGPMSource(lib, h, -1, int(numProf))
}

func newGPMSource(lib nvml.Interface, h nvml.Device, gi, n int) *gpmSource {
	g := &gpmSource{h: h, gi: gi, n: n}
	for k := range g.samples {
		s, ret := probe(lib.GpmSampleAlloc)
		if ret != nvml.SUCCESS || s == nil {
			g.free(lib)
			return nil
		}
		g.samples[k] = s
	}
	return g
}

// has reports whether GPM has answered (or may yet answer) p: a metric
// that answered NOT_SUPPORTED once is not asked again.
func (g *gpmSource) has(p prof) bool { return g != nil && g.unsup&(1<<p) == 0 }

// read takes a sample and, from the second round on, computes the metrics
// between it and the last round's. It returns whether vals/got are fresh.
func (g *gpmSource) read(r *sampRead, lib nvml.Interface) bool {
	g.got = 0
	if g.off {
		return false
	}
	s := g.samples[g.cur]
	var ret nvml.Return
	if g.gi < 0 {
		ret = g.h.GpmSampleGet(s)
	} else {
		ret = g.h.GpmMigSampleGet(g.gi, s)
	}
	if !r.ok("GpmSampleGet", ret) {
		// A GPU that refuses (a MIG-mode GPU's whole-GPU sample, say) is
		// counted once, not every round.
		g.have, g.off = false, ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_NO_PERMISSION
		return false
	}
	prev := g.samples[1-g.cur]
	had := g.have
	g.cur, g.have = 1-g.cur, true
	if !had {
		return false
	}
	req := &g.req
	req.Sample1, req.Sample2 = prev, s
	var ids [numProf]prof
	n := 0
	for p := range prof(g.n) {
		if g.has(p) {
			req.Metrics[n] = nvml.GpmMetric{MetricId: uint32(gpmMetrics[p])}
			ids[n] = p
			n++
		}
	}
	if n == 0 {
		return false
	}
	req.NumMetrics = uint32(n)
	if !r.ok("GpmMetricsGet", lib.GpmMetricsGet(req)) {
		return false
	}
	for k, p := range ids[:n] {
		m := &req.Metrics[k]
		switch nvml.Return(m.NvmlReturn) {
		case nvml.SUCCESS:
			g.vals[p] = gpmScale(p, m.Value)
			g.got |= 1 << p
		case nvml.ERROR_NOT_SUPPORTED:
			g.unsup |= 1 << p
		}
	}
	return true
}

// sample appends the GPU's GPM series.
func (g *gpmSource) sample(r *sampRead, set *extSet, d *device, out []sample) []sample {
	if !g.read(r, r.c.lib) {
		return out
	}
	for p := range numProf {
		if g.got&(1<<p) != 0 {
			out = append(out, sample{set.prof[p], d.base, prometheus.GaugeValue, g.vals[p]})
		}
	}
	return out
}

// free releases the samples; a nil source does nothing.
func (g *gpmSource) free(lib nvml.Interface) {
	if g == nil {
		return
	}
	for k, s := range g.samples {
		if s != nil {
			_, _ = probe(func() (struct{}, nvml.Return) { return struct{}{}, lib.GpmSampleFree(s) })
			g.samples[k] = nil
		}
	}
}
