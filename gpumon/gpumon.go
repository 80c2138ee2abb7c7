package gpumon

import (
	"errors"
	"net/http"
	"time"
)

// ErrNVMLUnavailable is returned (wrapped) by New when NVML cannot be used on
// this machine: libnvidia-ml is not installed, the driver is not loaded, NVML
// refused to initialise, or the program was built without cgo. Callers test
// for it with errors.Is and carry on without GPU metrics.
var ErrNVMLUnavailable = errors.New("gpumon: nvml unavailable")

// ErrUnhealthy is wrapped by every error Healthy returns because of the state
// of a GPU (lost, uncorrected ECC errors, critical XID), as opposed to a
// timeout or a closed collector.
var ErrUnhealthy = errors.New("gpumon: gpu unhealthy")

// errClosed is returned by Healthy after Close.
var errClosed = errors.New("gpumon: collector closed")

// Default values of the options.
const (
	defaultScrapeTimeout  = 5 * time.Second
	defaultXIDWait        = 250 * time.Millisecond
	defaultSampleInterval = time.Second
)

// Option configures a Collector. Options are applied once, by New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is what the options set. nvmlOptions holds the fields that only
// cgo builds use; it is empty in builds without cgo.
type config struct {
	nvmlOptions
	dcgmNames      bool
	processMetrics bool
	cacheTTL       time.Duration
	scrapeTimeout  time.Duration
	hostname       string
	hostnameSet    bool
	xidWait        time.Duration
	sampleInterval time.Duration // 0: defaultSampleInterval; < 0: no sampler
	nvlinkPerGPU   bool          // WithNVLinkPerLink(false): NVLink summed per GPU
}

func newConfig(opts []Option) config {
	c := config{scrapeTimeout: defaultScrapeTimeout, xidWait: defaultXIDWait}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithDCGMNames makes the Collector emit dcgm-exporter's default metric names,
// units and labels (gpu, UUID, device, modelName, Hostname, pci_bus_id,
// DCGM_FI_DRIVER_VERSION), for example DCGM_FI_DEV_GPU_UTIL in percent and
// DCGM_FI_DEV_FB_USED in MiB (reserved memory left out, as DCGM does), so
// that dashboards and alerts written for dcgm-exporter work unchanged. The
// gpumon_* self-metrics and the opt-in process metrics keep their own names.
func WithDCGMNames() Option {
	return optionFunc(func(c *config) { c.dcgmNames = true })
}

// WithProcessMetrics enables the per-process series of the compute
// processes running on each GPU: gpu_process_memory_used_bytes and
// gpu_process_{sm,memory,encoder,decoder}_utilization_ratio (NVML process
// utilisation samples since the previous read), labelled gpu, uuid, pid,
// process, pod, namespace, container, pod_uid, container_id. Processes that
// have ended drop out at the next scrape, so the series stay bounded. pid is
// the pid as NVML reports it; process is its command name
// (/proc/<pid>/stat), or empty where the Collector cannot be sure that the
// process at /proc/<pid> is the one NVML means: see "Process metrics" in the
// package documentation. The pod labels are those of the process's
// Kubernetes container, read from /proc (no kubelet call), each empty where
// not known: see "Kubernetes attribution". The names and labels are the
// same with WithDCGMNames.
func WithProcessMetrics() Option {
	return optionFunc(func(c *config) { c.processMetrics = true })
}

// WithCacheTTL lets scrapes within d of a GPU's last NVML read reuse its
// values instead of reading NVML again, GPU by GPU: a GPU that answered
// within d is not read again even while another GPU's read hangs. Zero or
// negative (the default) means every scrape reads NVML; concurrent scrapes
// always share one read.
func WithCacheTTL(d time.Duration) Option {
	return optionFunc(func(c *config) { c.cacheTTL = d })
}

// WithScrapeTimeout bounds how long a scrape (or Healthy) waits for a GPU's
// NVML read (default 5s), from the start of that read. GPUs are read
// concurrently, so when it expires for one GPU the scrape reports gpu_up 0
// for that GPU and none of its values (an earlier read's values would be
// passed off as current), the other GPUs report theirs, and the scrape
// counts gpumon_collect_errors_total{call="timeout"} once. The hung read goes
// on in the background; later scrapes join it rather than starting another
// read of that GPU.
// Zero or negative keeps the default.
func WithScrapeTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.scrapeTimeout = d
		}
	})
}

// WithHostname sets the Hostname label of the DCGM-named metrics; an empty
// name gives an empty label. It has no effect without WithDCGMNames. The
// default is what dcgm-exporter uses: the environment variable NODE_NAME
// where it is set and not empty (on Kubernetes, the node name through the
// downward API), else os.Hostname.
func WithHostname(name string) Option {
	return optionFunc(func(c *config) { c.hostname, c.hostnameSet = name, true })
}

// HealthHandler returns an http.Handler for readiness probes: it answers 200
// "ok" when Healthy(r.Context()) returns nil, and 503 with the error text
// otherwise. A nil Collector answers 503. It is safe for concurrent use.
func (c *Collector) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := c.Healthy(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}
