//go:build cgo

package gpumon

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// probeVGPULicense reports whether h answers a vGPU licence state: NVML's
// licensable features say licensing applies (a vGPU guest, or a board
// licensed for vGPU). Bare-metal data-centre GPUs answer NOT_SUPPORTED or
// no licensing, and get no series.
func probeVGPULicense(h nvml.Device) bool {
	f, ret := probe(h.GetGridLicensableFeatures)
	return ret == nvml.SUCCESS && f.IsGridLicenseSupported != 0
}

// sampleVGPULicense appends the licence state: 1 when the vGPU feature is
// licensed, else 0 (the value of DCGM_FI_DEV_VGPU_LICENSE_STATUS).
func sampleVGPULicense(r *sampRead, set *extSet, d *device, out []sample) []sample {
	f, ret := r.h.GetGridLicensableFeatures()
	if !r.ok("GetGridLicensableFeatures", ret) || f.IsGridLicenseSupported == 0 {
		return out
	}
	var licensed bool
	for k := range min(int(f.LicensableFeaturesCount), len(f.GridLicensableFeatures)) {
		g := &f.GridLicensableFeatures[k]
		if nvml.GridLicenseFeatureCode(g.FeatureCode) == nvml.GRID_LICENSE_FEATURE_CODE_VGPU && g.FeatureState != 0 {
			licensed = true
		}
	}
	return append(out, sample{set.vgpuLicense, d.base, prometheus.GaugeValue, b2f(licensed)})
}
