//go:build cgo

package gpumon

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// extSet is the descriptors of the sampler's series in one naming scheme.
// A nil descriptor is a series that scheme does not have.
type extSet struct {
	dcgm bool
	prof [numProf]*prometheus.Desc // per GPU

	// NVLink, native names: per link (linkActive; linkTX, linkRX, linkErr
	// with a link label), or with linkPerGPU summed per GPU (linkActiveLinks;
	// linkTX, linkRX, linkErr without it).
	linkPerGPU                  bool
	linkActive, linkActiveLinks *prometheus.Desc
	linkTX, linkRX, linkErr     *prometheus.Desc
	// NVLink, DCGM names: per GPU, summed over its links.
	linkBW       *prometheus.Desc
	linkErrTotal [numLinkErr]*prometheus.Desc

	// MIG instances; nil migLabels: no MIG series.
	migLabels                  *prometheus.Desc // template of an instance's labels
	migProf                    [numActivity]*prometheus.Desc
	migUsed, migFree, migTotal *prometheus.Desc
	memConv                    func(uint64) float64

	vgpuLicense *prometheus.Desc

	unsupported *prometheus.GaugeVec
}

// newExtSet builds the sampler's descriptors for cfg's naming scheme. With
// DCGM names it shares the descriptors of set where the names are the same
// (DCGM_FI_DEV_FB_USED and FB_FREE of a MIG instance).
func newExtSet(cfg config, set *metricSet) *extSet {
	e := &extSet{
		dcgm: cfg.dcgmNames,
		unsupported: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gpumon_unsupported_gpus",
			Help: "GPUs on which the feature is not available (GPU or driver without it); its series are absent for them.",
		}, []string{"feature"}),
	}
	if cfg.dcgmNames {
		labels := set.labels // dcgmLabels (+ the MIG labels when a GPU was in MIG mode)
		d := func(name, help string) *prometheus.Desc {
			return prometheus.NewDesc(name, help, dcgmLabelNames(cfg), nil)
		}
		e.prof = [numProf]*prometheus.Desc{
			profGR:     d("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "Ratio of time the graphics engine is active."),
			profSM:     d("DCGM_FI_PROF_SM_ACTIVE", "The ratio of cycles an SM has at least 1 warp assigned."),
			profSMOcc:  d("DCGM_FI_PROF_SM_OCCUPANCY", "The ratio of number of warps resident on an SM."),
			profTensor: d("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "Ratio of cycles the tensor (HMMA) pipe is active."),
			profDRAM:   d("DCGM_FI_PROF_DRAM_ACTIVE", "Ratio of cycles the device memory interface is active sending or receiving data."),
			profPCIeTX: d("DCGM_FI_PROF_PCIE_TX_BYTES", "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second."),
			profPCIeRX: d("DCGM_FI_PROF_PCIE_RX_BYTES", "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second."),
			profNVLTX:  d("DCGM_FI_PROF_NVLINK_TX_BYTES", "The rate of data transmitted over NVLink, not including protocol headers, in bytes per second."),
			profNVLRX:  d("DCGM_FI_PROF_NVLINK_RX_BYTES", "The rate of data received over NVLink, not including protocol headers, in bytes per second."),
		}
		e.vgpuLicense = d("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "vGPU License status")
		e.linkBW = d("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "Total number of NVLink bandwidth counters for all lanes")
		e.linkErrTotal = [numLinkErr]*prometheus.Desc{
			d("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "Total number of NVLink flow-control CRC errors."),
			d("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "Total number of NVLink data CRC errors."),
			d("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "Total number of NVLink retries."),
			d("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "Total number of NVLink recovery errors."),
		}
		if cfg.dcgmMIG {
			e.migLabels = labels
			copy(e.migProf[:], e.prof[:numActivity])
			e.migUsed, e.migFree = set.fields[fMemUsed].desc, set.fields[fMemFree].desc
			e.memConv = mib
		}
		return e
	}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, defaultLabels, nil) }
	e.prof = [numProf]*prometheus.Desc{
		profGR:     d("gpu_graphics_engine_active_ratio", "Fraction of time the graphics or compute engine was active (GPM, Hopper and later)."),
		profSM:     d("gpu_sm_active_ratio", "Fraction of SM cycles with at least one warp assigned, averaged over the SMs (GPM)."),
		profSMOcc:  d("gpu_sm_occupancy_ratio", "Fraction of the SMs' warp slots with a resident warp (GPM)."),
		profTensor: d("gpu_tensor_pipe_active_ratio", "Fraction of cycles any tensor pipe was active (GPM)."),
		profDRAM:   d("gpu_dram_active_ratio", "Fraction of the device memory bandwidth in use (GPM)."),
		profPCIeTX: d("gpu_pcie_transmit_bytes_per_second", "PCIe traffic from the GPU, headers included (GPM; else nvmlDeviceGetPcieThroughput, sampled in the background)."),
		profPCIeRX: d("gpu_pcie_receive_bytes_per_second", "PCIe traffic to the GPU, headers included (GPM; else nvmlDeviceGetPcieThroughput, sampled in the background)."),
		profNVLTX:  d("gpu_nvlink_transmit_bytes_per_second", "NVLink traffic from the GPU over all its links (GPM)."),
		profNVLRX:  d("gpu_nvlink_receive_bytes_per_second", "NVLink traffic to the GPU over all its links (GPM)."),
	}
	e.vgpuLicense = d("gpu_vgpu_licensed", "1 when the GPU's vGPU licence is active, else 0 (only where NVML reports vGPU licensing).")
	if cfg.nvlinkPerGPU {
		e.linkPerGPU = true
		e.linkActiveLinks = d("gpu_nvlink_active_links", "NVLink links of the GPU that are active.")
		e.linkTX = d("gpu_nvlink_transmit_bytes_total", "Data sent over the GPU's NVLink links, payload only, summed over its links (NVML counters).")
		e.linkRX = d("gpu_nvlink_receive_bytes_total", "Data received over the GPU's NVLink links, payload only, summed over its links (NVML counters).")
		e.linkErr = prometheus.NewDesc("gpu_nvlink_errors_total", "NVLink data-link errors of the GPU by type, summed over its links: crc_flit, crc_data, replay, recovery.",
			[]string{"gpu", "uuid", "type"}, nil)
	} else {
		link := []string{"gpu", "uuid", "link"}
		e.linkActive = prometheus.NewDesc("gpu_nvlink_active", "1 when the NVLink link is active, else 0 (links the GPU has).", link, nil)
		e.linkTX = prometheus.NewDesc("gpu_nvlink_transmit_bytes_total", "Data sent over the NVLink link, payload only (NVML counter, active links).", link, nil)
		e.linkRX = prometheus.NewDesc("gpu_nvlink_receive_bytes_total", "Data received over the NVLink link, payload only (NVML counter, active links).", link, nil)
		e.linkErr = prometheus.NewDesc("gpu_nvlink_errors_total", "NVLink data-link errors on the link by type: crc_flit, crc_data, replay, recovery (active links).",
			[]string{"gpu", "uuid", "link", "type"}, nil)
	}
	e.migLabels = prometheus.NewDesc("gpumon_mig_labels", "template", migNativeLabels, nil)
	m := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, migNativeLabels, nil) }
	e.migProf = [numActivity]*prometheus.Desc{
		profGR:     m("gpu_mig_graphics_engine_active_ratio", "Fraction of time the MIG instance's graphics or compute engines were active (GPM)."),
		profSM:     m("gpu_mig_sm_active_ratio", "Fraction of the MIG instance's SM cycles with at least one warp assigned (GPM)."),
		profSMOcc:  m("gpu_mig_sm_occupancy_ratio", "Fraction of the MIG instance's warp slots with a resident warp (GPM)."),
		profTensor: m("gpu_mig_tensor_pipe_active_ratio", "Fraction of cycles any tensor pipe of the MIG instance was active (GPM)."),
		profDRAM:   m("gpu_mig_dram_active_ratio", "Fraction of the MIG instance's device memory bandwidth in use (GPM)."),
	}
	e.migUsed = m("gpu_mig_memory_used_bytes", "Device memory in use in the MIG GPU instance.")
	e.migFree = m("gpu_mig_memory_free_bytes", "Device memory free in the MIG GPU instance.")
	e.migTotal = m("gpu_mig_memory_total_bytes", "Device memory of the MIG GPU instance.")
	e.memConv = ident
	return e
}

// migNativeLabels are the labels of the native MIG instance series.
var migNativeLabels = []string{"gpu", "uuid", "gpu_instance", "gpu_instance_profile"}

// dcgmLabelNames are the per-GPU labels with DCGM names.
func dcgmLabelNames(cfg config) []string {
	if cfg.dcgmMIG {
		return append(slices.Clone(dcgmLabels), migDCGMLabels...)
	}
	return dcgmLabels
}

func (e *extSet) describe(ch chan<- *prometheus.Desc) {
	for _, d := range e.prof {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{e.linkActive, e.linkActiveLinks, e.linkTX, e.linkRX, e.linkErr, e.linkBW, e.vgpuLicense} {
		if d != nil {
			ch <- d
		}
	}
	for _, d := range e.linkErrTotal {
		if d != nil {
			ch <- d
		}
	}
	if !e.dcgm {
		for _, d := range e.migProf {
			ch <- d
		}
		ch <- e.migUsed
		ch <- e.migFree
		ch <- e.migTotal
	}
	e.unsupported.Describe(ch)
}
