package gpumon_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modeltel/modeltel/gpumon"
)

// ExampleNew serves GPU metrics and a readiness probe, and carries on without
// them where the machine has no NVIDIA driver.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	gpus, err := gpumon.New(gpumon.WithCacheTTL(time.Second), gpumon.WithScrapeTimeout(2*time.Second))
	switch {
	case errors.Is(err, gpumon.ErrNVMLUnavailable):
		fmt.Fprintln(os.Stderr, "no GPU metrics:", err)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return
	default:
		defer gpus.Close()
		reg.MustRegister(gpus)
		http.Handle("/readyz", gpus.HealthHandler())
	}
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// ExampleWithSampleInterval samples the GPM profiling metrics (tensor and SM
// activity, DRAM, PCIe and NVLink rates), NVLink links and MIG instances
// every 5 seconds instead of every second; a negative interval turns the
// background sampler off.
func ExampleWithSampleInterval() {
	gpus, err := gpumon.New(gpumon.WithSampleInterval(5 * time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "no GPU metrics:", err)
		return
	}
	defer gpus.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(gpus)
}

// ExampleWithNVLinkPerLink serves each GPU's NVLink traffic and errors summed
// over its links, and the number of links that are up, instead of 7 series
// per link (126 on an 18-link H100 SXM): gpu_nvlink_transmit_bytes_total,
// gpu_nvlink_receive_bytes_total, gpu_nvlink_errors_total{type} without a
// link label, and gpu_nvlink_active_links. Queries written as
// sum by (instance, gpu) (rate(gpu_nvlink_transmit_bytes_total[5m])) work
// in both modes.
func ExampleWithNVLinkPerLink() {
	gpus, err := gpumon.New(gpumon.WithNVLinkPerLink(false))
	if err != nil {
		fmt.Fprintln(os.Stderr, "no GPU metrics:", err)
		return
	}
	defer gpus.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(gpus)
}
