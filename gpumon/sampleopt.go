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
