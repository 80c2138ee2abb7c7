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
}

type nvLink struct {
	id     int
	active []*dto.LabelPair // label pairs of the native per-link series
	tx, rx []*dto.LabelPair
	err    [numLinkErr][]*dto.LabelPair
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
	return &src
}

// sample appends the NVLink series of one round.
func (n *nvlinkSource) sample(r *sampRead, set *extSet, d *device, out []sample) []sample {
	h := r.h
	var active [nvml.NVLINK_MAX_LINKS]bool
	anyActive := false
	for k, l := range n.links {
		if r.lost {
			return out
		}
		st, ret := h.GetNvLinkState(l.id)
		if !r.ok("GetNvLinkState", ret) {
			continue
		}
		active[k] = st == nvml.FEATURE_ENABLED
		anyActive = anyActive || active[k]
		if set.linkActive != nil {
			out = append(out, sample{set.linkActive, l.active, prometheus.GaugeValue, b2f(active[k])})
		}
	}
	if !anyActive {
		return out
	}
	for k := range n.fields {
		n.fields[k].NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
	}
	fieldsOK := r.ok("GetFieldValues", h.GetFieldValues(n.fields))
	var bwTotal uint64 // KiB, all active links, TX and RX
	var bwUs int64     // the latest timestamp of those values
	var bwLinks int    // link directions summed
	var errTotal [numLinkErr]uint64
	var hasErr [numLinkErr]bool
	for k, l := range n.links {
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
				bwTotal += v
				bwUs = max(bwUs, fv.Timestamp)
				bwLinks++
				if set.linkTX != nil {
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
			errTotal[e] += v
			hasErr[e] = true
			if set.linkErr != nil {
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
	for e := range numLinkErr {
		if set.linkErrTotal[e] != nil && hasErr[e] {
			out = append(out, sample{set.linkErrTotal[e], d.base, prometheus.CounterValue, float64(errTotal[e])})
		}
	}
	return out
}
