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
