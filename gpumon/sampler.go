//go:build cgo

package gpumon

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// sampler is the collector's one background goroutine for the values that
// need two readings an interval apart or that NVML answers slowly: GPM
// profiling metrics (per GPU and per MIG instance), PCIe throughput where
// GPM has none (nvmlDeviceGetPcieThroughput blocks ~20 ms per direction),
// NVLink per link, MIG instance memory. Every interval it reads each GPU
// and publishes that GPU's samples; a scrape only sends the last published
// ones (collectDevice), never waits for NVML and allocates nothing.
//
// What a GPU lacks is found once, when New probes it (GPM, NVLink, MIG) or
// in the first round (PCIe throughput): those series are absent for that GPU
// and gpumon_unsupported_gpus{feature} counts it, without an error per
// round.
type sampler struct {
	c        *Collector
	set      *extSet
	interval time.Duration
	stale    time.Duration // published values older than this are not sent
	devs     []*sampDev

	mu     sync.Mutex // one round at a time (the goroutine's or SampleNow's)
	rounds atomic.Int64
	first  chan struct{} // closed after the first round
	stop   chan struct{}
	done   chan struct{}
}

// sampDev is the sampling state of one GPU. Only the round (under
// sampler.mu) touches it, except out, which scrapes load.
type sampDev struct {
	d     *device
	gpm   *gpmSource    // nil: no GPM
	pcie  pcieMode      // where PCIe throughput comes from
	links *nvlinkSource // nil: no NVLink
	mig   *migSource    // nil: not in MIG mode
	vgpu  bool          // NVML reports a vGPU licence state
	n     int           // samples in the last round, to size the next

	out atomic.Pointer[sampOut]
}

type pcieMode uint8

const (
	pcieUnprobed pcieMode = iota // not known before the first round
	pcieGPM                      // GPM's PCIe rates
	pcieNVML                     // nvmlDeviceGetPcieThroughput
	pcieNone
)

// sampOut is one round's samples of one GPU. It is immutable once
// published: each round builds a new one.
type sampOut struct {
	at      time.Time
	samples []sample
}

// Features counted by gpumon_unsupported_gpus.
const (
	featGPM    = "gpm"
	featPCIe   = "pcie_throughput"
	featNVLink = "nvlink"
)

// startSampler probes every GPU and starts the goroutine. It returns nil,
// and starts nothing, when the sampler is disabled (a negative
// WithSampleInterval). It starts even where no GPU has GPM, NVLink or MIG:
// PCIe throughput is found only in the first round.
func startSampler(c *Collector) *sampler {
	if c.cfg.sampleInterval < 0 {
		return nil
	}
	iv := c.cfg.sampleInterval
	if iv == 0 {
		iv = defaultSampleInterval
	}
	s := &sampler{
		c: c, set: newExtSet(c.cfg, c.set), interval: iv,
		stale: 3*iv + c.cfg.scrapeTimeout,
		first: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
	var noGPM, noLinks float64
	for _, d := range c.devs {
		sd := &sampDev{d: d}
		s.devs = append(s.devs, sd)
		if d.handle == nil {
			sd.pcie = pcieNone
			continue
		}
		sd.gpm = probeGPM(c.lib, d.handle)
		if sd.gpm == nil {
			noGPM++
		}
		if sd.gpm != nil && sd.gpm.has(profPCIeTX) {
			sd.pcie = pcieGPM
		}
		sd.links = probeNVLink(d, s.set)
		if sd.links == nil {
			noLinks++
		}
		sd.mig = probeMIG(c.lib, d, s.set, sd.gpm != nil)
		sd.vgpu = probeVGPULicense(d.handle)
	}
	s.set.unsupported.WithLabelValues(featGPM).Set(noGPM)
	s.set.unsupported.WithLabelValues(featNVLink).Set(noLinks)
	go s.run()
	return s
}

// probe calls f, and reports a panic in it (a mock without the func, a
// go-nvml that lacks the symbol) as ERROR_NOT_SUPPORTED: a probe decides
// whether a feature is there, and a feature that panics is not.
func probe[T any](f func() (T, nvml.Return)) (v T, ret nvml.Return) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, ret = zero, nvml.ERROR_NOT_SUPPORTED
		}
	}()
	return f()
}

func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.round()
	close(s.first)
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.round()
		}
	}
}

// round reads every GPU once and publishes its samples.
func (s *sampler) round() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sd := range s.devs {
		select {
		case <-s.stop:
			return
		default:
		}
		if s.hung(sd.d) {
			continue // its values go stale and are left out, rather than the sampler hang too
		}
		s.sampleDevice(sd)
	}
	s.rounds.Add(1)
}

// hung reports whether a scrape's read of d has been running for longer
// than the scrape timeout: the GPU hangs in the driver, and a call from the
// sampler would hang the sampler (and so every GPU's values) with it. A GPU
// that hangs first in the sampler's own call does stall it until the call
// returns; its values, and the others', are then stale and left out.
func (s *sampler) hung(d *device) bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	call := d.inflight
	return call != nil && time.Since(call.start) > s.c.cfg.scrapeTimeout
}

// sampleDevice reads one GPU. A panic (go-nvml, a mock) is counted as
// call="panic" and leaves the GPU without values until a round succeeds.
func (s *sampler) sampleDevice(sd *sampDev) {
	if sd.d.handle == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			s.c.countError("panic", nvml.ERROR_UNKNOWN)
			sd.out.Store(nil)
		}
	}()
	r := &sampRead{c: s.c, h: sd.d.handle}
	out := make([]sample, 0, max(sd.n, 8))
	if sd.gpm != nil {
		out = sd.gpm.sample(r, s.set, sd.d, out)
		if sd.pcie == pcieGPM && (!sd.gpm.has(profPCIeTX) || sd.gpm.off) {
			sd.pcie = pcieUnprobed // GPM has no PCIe rates on this GPU after all
		}
	}
	if (sd.pcie == pcieUnprobed || sd.pcie == pcieNVML) && !r.lost {
		out = s.samplePCIe(r, sd, out)
	}
	if sd.links != nil && !r.lost {
		out = sd.links.sample(r, s.set, sd.d, out)
	}
	if sd.mig != nil && !r.lost {
		out = sd.mig.sample(r, s.c.lib, s.set, out)
	}
	if sd.vgpu && !r.lost {
		out = sampleVGPULicense(r, s.set, sd.d, out)
	}
	sd.n = len(out)
	sd.out.Store(&sampOut{at: time.Now(), samples: out})
}

// samplePCIe reads PCIe throughput with nvmlDeviceGetPcieThroughput (KB/s
// over a 20 ms window, each direction), for a GPU whose GPM has none.
func (s *sampler) samplePCIe(r *sampRead, sd *sampDev, out []sample) []sample {
	h := sd.d.handle
	var v [2]uint32
	for k, ctr := range [2]nvml.PcieUtilCounter{nvml.PCIE_UTIL_TX_BYTES, nvml.PCIE_UTIL_RX_BYTES} {
		var ret nvml.Return
		if sd.pcie == pcieUnprobed {
			v[k], ret = probe(func() (uint32, nvml.Return) { return h.GetPcieThroughput(ctr) })
			if ret != nvml.SUCCESS {
				sd.pcie = pcieNone
				s.set.unsupported.WithLabelValues(featPCIe).Inc()
				return out
			}
			continue
		}
		v[k], ret = h.GetPcieThroughput(ctr)
		if !r.ok("GetPcieThroughput", ret) {
			return out
		}
	}
	sd.pcie = pcieNVML
	for k, p := range [2]prof{profPCIeTX, profPCIeRX} {
		out = append(out, sample{s.set.prof[p], sd.d.base, prometheus.GaugeValue, float64(v[k]) * 1024})
	}
	return out
}

// sampRead is the state of one GPU's reading in a round.
type sampRead struct {
	c    *Collector
	h    nvml.Device
	lost bool // the GPU answered ERROR_GPU_IS_LOST: the round skips its other calls
}

// ok reports whether ret is SUCCESS; NOT_SUPPORTED is quietly false, any
// other error is counted under call. Errors in the background never mark
// the GPU down (gpu_up is the scrape's read). Once the GPU is lost, ok is
// false without counting: one error per lost GPU per round, not one per
// call.
func (r *sampRead) ok(call string, ret nvml.Return) bool {
	switch {
	case ret == nvml.SUCCESS:
		return !r.lost
	case ret == nvml.ERROR_NOT_SUPPORTED || r.lost:
		return false
	case ret == nvml.ERROR_GPU_IS_LOST:
		r.lost = true
	}
	r.c.countError(call, ret)
	return false
}

// collectDevice sends GPU i's last published samples, unless they are
// stale (the sampler is stuck in a hung NVML call). It allocates nothing.
func (s *sampler) collectDevice(i int, ch chan<- prometheus.Metric) {
	if s == nil || i >= len(s.devs) {
		return
	}
	o := s.devs[i].out.Load()
	if o == nil || time.Since(o.at) > s.stale {
		return
	}
	for k := range o.samples {
		ch <- &o.samples[k]
	}
}

// collectSelf sends gpumon_unsupported_gpus.
func (s *sampler) collectSelf(ch chan<- prometheus.Metric) {
	if s != nil {
		s.set.unsupported.Collect(ch)
	}
}

func (s *sampler) describe(ch chan<- *prometheus.Desc) {
	if s != nil {
		s.set.describe(ch)
	}
}

// halt stops the goroutine and waits for it until timeout fires; it reports
// whether the goroutine ended (false: it is in an NVML call that hangs).
// The GPM samples are freed once it has ended.
func (s *sampler) halt(timeout <-chan time.Time) bool {
	if s == nil {
		return true
	}
	close(s.stop)
	select {
	case <-s.done:
	case <-timeout:
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sd := range s.devs {
		sd.gpm.free(s.c.lib)
		if sd.mig != nil {
			for _, in := range sd.mig.insts {
				in.gpm.free(s.c.lib)
			}
		}
	}
	return true
}

// sampleNow waits for the first round and makes one more, for tests.
func (s *sampler) sampleNow() error {
	if s == nil {
		return fmt.Errorf("gpumon: no sampler")
	}
	select {
	case <-s.first:
	case <-s.done:
		return fmt.Errorf("gpumon: sampler stopped")
	}
	s.round()
	return nil
}
