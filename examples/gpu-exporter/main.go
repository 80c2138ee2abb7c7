// Command gpu-exporter serves NVIDIA GPU metrics for Prometheus from NVML,
// without DCGM: what dcgm-exporter does, with gpumon.
//
//	gpu-exporter --listen 127.0.0.1:9400 [--dcgm-names] [--process-metrics] [--cache-ttl 1s]
//
// It serves /metrics (GPU metrics plus the exporter's own Go and process
// metrics) and /healthz (200 while every GPU is healthy, 503 on a lost GPU,
// uncorrected ECC errors or a critical XID). Where there is no NVIDIA driver
// it says so on stderr and exits with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modeltel/modeltel/gpumon"
)

func main() { os.Exit(run()) }

func run() int {
	listen := flag.String("listen", "127.0.0.1:9400", "address to serve /metrics and /healthz on")
	dcgmNames := flag.Bool("dcgm-names", false, "emit dcgm-exporter's metric names, units and labels")
	processMetrics := flag.Bool("process-metrics", false, "emit gpu_process_memory_used_bytes per running process")
	cacheTTL := flag.Duration("cache-ttl", 0, "reuse an NVML read for scrapes within this long (0: read on every scrape)")
	scrapeTimeout := flag.Duration("scrape-timeout", 5*time.Second, "longest a scrape waits for NVML")
	hostname := flag.String("hostname", "", "Hostname label of the DCGM names (default: the host name; on Kubernetes pass the node name)")
	flag.Parse()

	opts := []gpumon.Option{gpumon.WithCacheTTL(*cacheTTL), gpumon.WithScrapeTimeout(*scrapeTimeout)}
	if *dcgmNames {
		opts = append(opts, gpumon.WithDCGMNames())
	}
	if *processMetrics {
		opts = append(opts, gpumon.WithProcessMetrics())
	}
	if *hostname != "" {
		opts = append(opts, gpumon.WithHostname(*hostname))
	}
	gpus, err := gpumon.New(opts...)
	if errors.Is(err, gpumon.ErrNVMLUnavailable) {
		fmt.Fprintf(os.Stderr, "gpu-exporter: no NVIDIA GPU telemetry on this machine (is the NVIDIA driver installed and libnvidia-ml.so.1 on the library path?): %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gpu-exporter: %v\n", err)
		return 1
	}
	defer func() {
		if err := gpus.Close(); err != nil {
			slog.Error("close", "err", err)
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(gpus,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /healthz", gpus.HealthHandler())
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	slog.Info("serving GPU metrics", "addr", *listen, "dcgm_names", *dcgmNames, "process_metrics", *processMetrics)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "gpu-exporter: %v\n", err)
		return 1
	}
	return 0
}
