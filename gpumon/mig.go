//go:build cgo

package gpumon

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// migDCGMLabels are the labels dcgm-exporter adds to a MIG instance's
// series; with DCGM names, every per-GPU series has them (empty, which
// Prometheus stores as absent, on the GPUs themselves) once any GPU is in
// MIG mode when New runs.
var migDCGMLabels = []string{"GPU_I_PROFILE", "GPU_I_ID"}

// migEnabled reports whether h is in MIG mode (current mode).
func migEnabled(h nvml.Device) bool {
	type mode struct{ cur, pending int }
	m, ret := probe(func() (m mode, ret nvml.Return) {
		m.cur, m.pending, ret = h.GetMigMode()
		return m, ret
	})
	return ret == nvml.SUCCESS && m.cur == nvml.DEVICE_MIG_ENABLE
}

// anyMIG reports whether any of the count GPUs of lib is in MIG mode.
func anyMIG(lib nvml.Interface, count int) bool {
	for i := range count {
		h, ret := probe(func() (nvml.Device, nvml.Return) { return lib.DeviceGetHandleByIndex(i) })
		if ret == nvml.SUCCESS && h != nil && migEnabled(h) {
			return true
		}
	}
	return false
}

// migSource reads the GPU instances of a GPU in MIG mode: memory (on the
// MIG device handle) and, where the GPU has GPM, activity per instance
// (nvmlGpmMigSampleGet). The instances are found once, when New probes the
// GPU (a MIG reconfiguration needs the collector restarted).
type migSource struct {
	insts []*migInstance
}

type migInstance struct {
	id      int
	profile string      // dcgm-exporter's GPU_I_PROFILE, e.g. "1g.10gb"
	h       nvml.Device // the MIG device handle (its first compute instance)
	labels  []*dto.LabelPair
	gpm     *gpmSource // nil without GPM
}

// probeMIG returns the MIG source of d, or nil where d is not in MIG mode.
func probeMIG(lib nvml.Interface, d *device, set *extSet, gpm bool) *migSource {
	h := d.handle
	if !migEnabled(h) || set.migLabels == nil {
		return nil
	}
	n, ret := probe(h.GetMaxMigDeviceCount)
	if ret != nvml.SUCCESS {
		return nil
	}
	var src migSource
	for k := range n {
		mh, ret := probe(func() (nvml.Device, nvml.Return) { return h.GetMigDeviceHandleByIndex(k) })
		if ret != nvml.SUCCESS || mh == nil {
			continue
		}
		gi, ret := probe(mh.GetGpuInstanceId)
		if ret != nvml.SUCCESS || slices.ContainsFunc(src.insts, func(in *migInstance) bool { return in.id == gi }) {
			continue // one series per GPU instance, not per compute instance
		}
		in := &migInstance{id: gi, h: mh, profile: migProfile(h, gi)}
		ids := strconv.Itoa(gi)
		if set.dcgm {
			in.labels = labelPairs(set.migLabels, append(slices.Clone(d.dcgmValues[:len(d.dcgmValues)-len(migDCGMLabels)]), in.profile, ids)...)
		} else {
			in.labels = labelPairs(set.migLabels, d.idx, d.uuid, ids, in.profile)
		}
		if gpm {
			in.gpm = newGPMSource(lib, h, gi, numActivity)
		}
		src.insts = append(src.insts, in)
	}
	if len(src.insts) == 0 {
		return nil
	}
	return &src
}

// migProfile is the name of GPU instance gi's profile as nvidia-smi and
// dcgm-exporter write it: slices "g." memory in GB (rounded up) "gb".
func migProfile(h nvml.Device, gi int) string {
	inst, ret := probe(func() (nvml.GpuInstance, nvml.Return) { return h.GetGpuInstanceById(gi) })
	if ret != nvml.SUCCESS || inst == nil {
		return ""
	}
	info, ret := probe(inst.GetInfo)
	if ret != nvml.SUCCESS {
		return ""
	}
	p, ret := probe(func() (nvml.GpuInstanceProfileInfo, nvml.Return) {
		return h.GetGpuInstanceProfileInfo(int(info.ProfileId))
	})
	if ret != nvml.SUCCESS || p.SliceCount == 0 {
		return ""
	}
	return fmt.Sprintf("%dg.%dgb", p.SliceCount, (p.MemorySizeMB+1023)/1024)
}

// sample appends the series of every instance.
func (m *migSource) sample(r *sampRead, lib nvml.Interface, set *extSet, out []sample) []sample {
	for _, in := range m.insts {
		if mem, ret := in.h.GetMemoryInfo(); r.ok("GetMemoryInfo", ret) {
			out = append(out, sample{set.migUsed, in.labels, prometheus.GaugeValue, set.memConv(mem.Used)})
			out = append(out, sample{set.migFree, in.labels, prometheus.GaugeValue, set.memConv(mem.Free)})
			if set.migTotal != nil {
				out = append(out, sample{set.migTotal, in.labels, prometheus.GaugeValue, float64(mem.Total)})
			}
		}
		if in.gpm != nil && in.gpm.read(r, lib) {
			for p := range numActivity {
				if in.gpm.got&(1<<p) != 0 {
					out = append(out, sample{set.migProf[p], in.labels, prometheus.GaugeValue, in.gpm.vals[p]})
				}
			}
		}
	}
	return out
}
