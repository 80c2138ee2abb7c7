//go:build cgo

package gpumon

import (
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// linkErrs are the NVLink error counters read per link, with the type label
// of gpu_nvlink_errors_total.
var linkErrs = [...]struct {
	ctr  nvml.NvLinkErrorCounter
	name string
}{
	{nvml.NVLINK_ERROR_DL_CRC_FLIT, "crc_flit"},
	{nvml.NVLINK_ERROR_DL_CRC_DATA, "crc_data"},
	{nvml.NVLINK_ERROR_DL_REPLAY, "replay"},
	{nvml.NVLINK_ERROR_DL_RECOVERY, "recovery"},
}

const numLinkErr = len(linkErrs)

// Counters of a link that the per-GPU sums add up: the data counters (KiB),
// then linkErrs' error counters.
const (
	ctrTX = iota
	ctrRX
	ctrErr     // + the index in linkErrs
	numLinkCtr = ctrErr + numLinkErr
)

// nvlinkSource reads the NVLinks of one GPU: per link the state
// (nvmlDeviceGetNvLinkState), the data throughput counters (field values
// NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX/RX with the link as scopeId, in KiB)
// and the error counters (nvmlDeviceGetNvLinkErrorCounter). Links are found
// once, when New probes the GPU; counters are read only for links that are
// active in the round.
type nvlinkSource struct {
	links  []nvLink
	fields []nvml.FieldValue // TX, RX per link, in links' order
	errs   []bool            // per link: the error counters answer

	// The data counters of all active links summed (KiB) at the last round
	// and the field values' timestamp (µs), for DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL.
	prevKiB, prevUs int64
	prevLinks       int // active links summed; a change restarts the rate

	// The per-GPU sums of the links' counters (the native series with
	// WithNVLinkPerLink(false), the DCGM error totals), made of each link's
	// increases as read, so that they never go backwards: see add.
	sum     [numLinkCtr]uint64
	has     [numLinkCtr]bool // some link's counter has answered
	served  [numLinkCtr]bool // the sum was served in an earlier round
	errPair [numLinkErr][]*dto.LabelPair
}

type nvLink struct {
	id     int
	active []*dto.LabelPair // label pairs of the native per-link series
	tx, rx []*dto.LabelPair
	err    [numLinkErr][]*dto.LabelPair

	last [numLinkCtr]uint64 // the counters' last readings, for the sums
	seen [numLinkCtr]bool
}

// add counts reading v of counter c of link l into the GPU's sum: the
// increase since the link's last reading. A counter lower than its last
// reading restarted (a reset of the link's counters) and counts from zero,
// as Prometheus takes a counter reset. A link's first reading counts whole
// when the sum has not been served yet (the sum then starts as the sum of
// the counters, since the driver loaded), and only from then on for a link
// that first answers later (it is the baseline, as rate takes a new
// series' first sample), so that the sum does not jump by what the link
// counted before.
func (n *nvlinkSource) add(l *nvLink, c int, v uint64) {
	switch {
	case !l.seen[c]:
		if !n.served[c] {
			n.sum[c] += v
		}
	case v >= l.last[c]:
		n.sum[c] += v - l.last[c]
	default:
		n.sum[c] += v
	}
	l.last[c], l.seen[c] = v, true
	n.has[c] = true
}

// probeNVLink returns the NVLink source of d, or nil where the GPU has no
// NVLink (every link's state answers other than SUCCESS).
func probeNVLink(d *device, set *extSet) *nvlinkSource {
	h := d.handle
	var src nvlinkSource
	for l := range nvml.NVLINK_MAX_LINKS {
		if _, ret := probe(func() (nvml.EnableState, nvml.Return) { return h.GetNvLinkState(l) }); ret != nvml.SUCCESS {
			continue
		}
		k := nvLink{id: l}
		if set.linkActive != nil {
			ls := strconv.Itoa(l)
			k.active = labelPairs(set.linkActive, d.idx, d.uuid, ls)
			k.tx = labelPairs(set.linkTX, d.idx, d.uuid, ls)
			k.rx = labelPairs(set.linkRX, d.idx, d.uuid, ls)
			for e, le := range linkErrs {
				k.err[e] = labelPairs(set.linkErr, d.idx, d.uuid, ls, le.name)
			}
		}
		src.links = append(src.links, k)
		src.fields = append(src.fields,
			nvml.FieldValue{FieldId: nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX, ScopeId: uint32(l)},
			nvml.FieldValue{FieldId: nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX, ScopeId: uint32(l)})
		src.errs = append(src.errs, true)
	}
	if len(src.links) == 0 {
		return nil
	}
	if set.linkPerGPU {
		for e, le := range linkErrs {
			src.errPair[e] = labelPairs(set.linkErr, d.idx, d.uuid, le.name)
		}
	}
	return &src
}

// sample appends the NVLink series of one round: per link, or the GPU's
// sums (per GPU with WithNVLinkPerLink(false); DCGM's totals).
func (n *nvlinkSource) sample(r *sampRead, set *extSet, d *device, out []sample) []sample {
	h := r.h
	var active [nvml.NVLINK_MAX_LINKS]bool
	anyActive := false
	nActive, stateOK := 0, true
	for k, l := range n.links {
		if r.lost {
			return out
		}
		st, ret := h.GetNvLinkState(l.id)
		if !r.ok("GetNvLinkState", ret) {
			stateOK = false
			continue
		}
		active[k] = st == nvml.FEATURE_ENABLED
		anyActive = anyActive || active[k]
		if active[k] {
			nActive++
		}
		if set.linkActive != nil {
			out = append(out, sample{set.linkActive, l.active, prometheus.GaugeValue, b2f(active[k])})
		}
	}
	if set.linkActiveLinks != nil && stateOK {
		// A link whose state did not answer is neither up nor down: no
		// count rather than a count one short.
		out = append(out, sample{set.linkActiveLinks, d.base, prometheus.GaugeValue, float64(nActive)})
	}
	if anyActive {
		out = n.read(r, set, d, &active, out)
	}
	if r.lost {
		return out
	}
	// The sums, also in a round where no link is up or a read failed: a
	// counter that stays where it was rather than one that disappears.
	if set.linkPerGPU {
		for c, desc := range [2]*prometheus.Desc{set.linkTX, set.linkRX} {
			if n.has[c] {
				out = append(out, sample{desc, d.base, prometheus.CounterValue, float64(n.sum[c]) * 1024})
			}
		}
	}
	for e := range numLinkErr {
		if !n.has[ctrErr+e] {
			continue
		}
		v := float64(n.sum[ctrErr+e])
		switch {
		case set.linkPerGPU:
			out = append(out, sample{set.linkErr, n.errPair[e], prometheus.CounterValue, v})
		case set.linkErrTotal[e] != nil:
			out = append(out, sample{set.linkErrTotal[e], d.base, prometheus.CounterValue, v})
		}
	}
	for c := range n.served {
		n.served[c] = n.served[c] || n.has[c]
	}
	return out
}

// read reads the counters of the active links, appends the per-link series
// (native names, per link) and DCGM's bandwidth, and adds the readings to
// the GPU's sums.
func (n *nvlinkSource) read(r *sampRead, set *extSet, d *device, active *[nvml.NVLINK_MAX_LINKS]bool, out []sample) []sample {
	h := r.h
	perLink := set.linkActive != nil
	for k := range n.fields {
		n.fields[k].NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
	}
	fieldsOK := r.ok("GetFieldValues", h.GetFieldValues(n.fields))
	var bwTotal uint64 // KiB, all active links, TX and RX
	var bwUs int64     // the latest timestamp of those values
	var bwLinks int    // link directions summed
	for k := range n.links {
		l := &n.links[k]
		if !active[k] || r.lost {
			continue
		}
		if fieldsOK {
			for dir, pairs := range [2][]*dto.LabelPair{l.tx, l.rx} {
				fv := &n.fields[2*k+dir]
				if nvml.Return(fv.NvmlReturn) != nvml.SUCCESS {
					continue
				}
				v, ok := fieldUint(fv)
				if !ok {
					continue
				}
				n.add(l, ctrTX+dir, v)
				bwTotal += v
				bwUs = max(bwUs, fv.Timestamp)
				bwLinks++
				if perLink {
					desc := set.linkTX
					if dir == 1 {
						desc = set.linkRX
					}
					out = append(out, sample{desc, pairs, prometheus.CounterValue, float64(v) * 1024})
				}
			}
		}
		if !n.errs[k] {
			continue
		}
		for e, le := range linkErrs {
			v, ret := h.GetNvLinkErrorCounter(l.id, le.ctr)
			if ret == nvml.ERROR_NOT_SUPPORTED && e == 0 {
				n.errs[k] = false // this link has no error counters: not asked again
				break
			}
			if !r.ok("GetNvLinkErrorCounter", ret) {
				continue
			}
			n.add(l, ctrErr+e, v)
			if perLink {
				out = append(out, sample{set.linkErr, l.err[e], prometheus.CounterValue, float64(v)})
			}
		}
	}
	if set.linkBW != nil && bwLinks > 0 {
		// dcgm-exporter's DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL is DCGM's rate
		// over all links and both directions in MB/s (typed counter there, and
		// so here): the counters' change since the last round over the time
		// between their timestamps.
		cur := int64(bwTotal)
		if dt := bwUs - n.prevUs; n.prevLinks == bwLinks && dt > 0 && cur >= n.prevKiB {
			mbps := float64(cur-n.prevKiB) * 1024 / (float64(dt) / 1e6) / 1e6
			out = append(out, sample{set.linkBW, d.base, prometheus.CounterValue, mbps})
		}
		n.prevKiB, n.prevUs, n.prevLinks = cur, bwUs, bwLinks
	}
	return out
}
