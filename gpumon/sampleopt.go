package gpumon

import "time"

// WithSampleInterval sets how often the Collector's background sampler
// reads the values that need two readings an interval apart or that NVML
// answers slowly: GPM profiling metrics (Hopper and later), PCIe throughput,
// NVLink per link and MIG instances (default 1s). Scrapes send the sampler's
// last values and never wait for it. A negative d disables the sampler: no
// background goroutine and none of those series. Zero keeps the default.
func WithSampleInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.sampleInterval = d })
}

// WithNVLinkPerLink chooses how the native NVLink series are served. On (the
// default) they are per link: gpu_nvlink_active{link} and
// gpu_nvlink_transmit_bytes_total, gpu_nvlink_receive_bytes_total and
// gpu_nvlink_errors_total{type} with a link label, 7 series per link (126 on
// an 18-link H100 SXM). Off, each GPU has the sums over its links instead,
// the same counter names without the link label, and
// gpu_nvlink_active_links, the number of its links that are up: 7 series per
// GPU whatever its links. The sums never go backwards: each link's last
// reading is kept, so a link that goes down, a read that fails for one link
// in a round or a counter that restarts from zero leaves the sum where it
// was and it grows again from there. The option has no effect with
// WithDCGMNames, whose NVLink series are per GPU already, nor without the
// background sampler (WithSampleInterval).
func WithNVLinkPerLink(on bool) Option {
	return optionFunc(func(c *config) { c.nvlinkPerGPU = !on })
}
