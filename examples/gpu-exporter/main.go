// Command gpu-exporter serves NVIDIA GPU metrics for Prometheus from NVML,
// without DCGM: what dcgm-exporter does, with gpumon.
//
//	gpu-exporter --listen 127.0.0.1:9400 [--dcgm-names] [--process-metrics] [--cache-ttl 1s] [--nvlink-per-link=false]
//	gpu-exporter --simulate 8 [--simulate-model "H100 SXM"] [--simulate-load sine:0.2:0.9:60s] [--simulate-processes 1] [other flags]
//
// It serves /metrics (GPU metrics plus the exporter's own Go and process
// metrics) and /healthz (200 while every GPU is healthy, 503 on a lost GPU,
// uncorrected ECC errors or a critical XID). Where there is no NVIDIA driver
// it says so on stderr and exits with status 1.
//
// With --simulate N it serves N simulated GPUs (gpumon/gpusim) instead,
// every other flag working as on real ones; gpu_info then carries
// simulated="true". The same listener serves a control API for tests and
// demos:
//
//	POST /simulate/load?gpu=N&value=0.8              (gpu omitted: every GPU)
//	POST /simulate/fault?gpu=N&type=xid&code=79      (or type=nvlink&link=L&count=N, type=fall-off-bus, type=hang)
//	POST /simulate/clear?gpu=N
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

	"github.com/modeltel/modeltel/examples/gpu-exporter/internal/simctl"
	"github.com/modeltel/modeltel/gpumon"
)

func main() { os.Exit(run()) }

func run() int {
	listen := flag.String("listen", "127.0.0.1:9400", "address to serve /metrics and /healthz on")
	dcgmNames := flag.Bool("dcgm-names", false, "emit dcgm-exporter's metric names, units and labels")
	processMetrics := flag.Bool("process-metrics", false, "emit per-process memory and utilisation (gpu_process_*) with the process's Kubernetes pod where it has one")
	cacheTTL := flag.Duration("cache-ttl", 0, "reuse an NVML read for scrapes within this long (0: read on every scrape)")
	scrapeTimeout := flag.Duration("scrape-timeout", 5*time.Second, "longest a scrape waits for NVML")
	nvlinkPerLink := flag.Bool("nvlink-per-link", true, "serve NVLink per link (gpu_nvlink_active, gpu_nvlink_*_total with a link label: 7 series a link); =false serves each GPU's sums over its links and gpu_nvlink_active_links instead (7 series a GPU)")
	hostname := flag.String("hostname", "", "Hostname label of the DCGM names (default: $NODE_NAME where set, as dcgm-exporter does, else the host name)")
	simulate := flag.Int("simulate", 0, "serve this many simulated GPUs (gpumon/gpusim) instead of NVML's, with a control API on the same listener:\n"+simctl.Usage)
	simModel := flag.String("simulate-model", "", "model of the simulated GPUs: "+simctl.ModelNames()+" (default \"H100 SXM\")")
	simLoad := flag.String("simulate-load", "", "load of the simulated GPUs until the API sets it: a constant (0.6) or sine:MIN:MAX:PERIOD (sine:0.2:0.9:60s); default idle")
	simSeed := flag.Uint64("simulate-seed", 1, "seed of the simulated GPUs' UUIDs and serials")
	simMIG := flag.String("simulate-mig", "", "put the simulated GPUs in MIG mode with these GPU instance profiles, comma-separated (3g.40gb,2g.20gb,1g.10gb)")
	simProcs := flag.Int("simulate-processes", 1, "compute processes per busy simulated GPU, sharing it as under time-slicing or MPS (the first is the exporter itself; with --process-metrics)")
	flag.Parse()

	opts := []gpumon.Option{gpumon.WithCacheTTL(*cacheTTL), gpumon.WithScrapeTimeout(*scrapeTimeout), gpumon.WithNVLinkPerLink(*nvlinkPerLink)}
	if *dcgmNames {
		opts = append(opts, gpumon.WithDCGMNames())
	}
	if *processMetrics {
		opts = append(opts, gpumon.WithProcessMetrics())
	}
	if *hostname != "" {
		opts = append(opts, gpumon.WithHostname(*hostname))
	}
	var sim *simctl.Simulation
	if *simulate != 0 || *simModel != "" || *simLoad != "" || *simMIG != "" {
		var err error
		sim, err = simctl.Start(simctl.Config{GPUs: *simulate, Model: *simModel, Load: *simLoad, Seed: *simSeed, PID: uint32(os.Getpid()), MIG: *simMIG, Processes: *simProcs})
		if err != nil {
			fmt.Fprintf(os.Stderr, "gpu-exporter: %v\n", err)
			return 2
		}
		defer sim.Release() // before Close (deferred later, so run earlier): hung calls return
		opts = append(opts, sim.Option())
	}
	gpus, err := gpumon.New(opts...)
	if errors.Is(err, gpumon.ErrNVMLUnavailable) {
		fmt.Fprintf(os.Stderr, "gpu-exporter: no NVIDIA GPU telemetry on this machine (is the NVIDIA driver installed and libnvidia-ml.so.1 on the library path? --simulate N serves simulated GPUs): %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gpu-exporter: %v\n", err)
		return 1
	}
	defer func() {
		if sim != nil {
			sim.Release()
		}
		if err := gpus.Close(); err != nil {
			slog.Error("close", "err", err)
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(gpus,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	mux.Handle("GET /healthz", gpus.HealthHandler())
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if sim != nil {
		sim.Register(mux)
		go sim.Run(ctx)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	slog.Info("serving GPU metrics", "addr", *listen, "dcgm_names", *dcgmNames, "process_metrics", *processMetrics, "nvlink_per_link", *nvlinkPerLink, "simulated_gpus", *simulate)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "gpu-exporter: %v\n", err)
		return 1
	}
	return 0
}
