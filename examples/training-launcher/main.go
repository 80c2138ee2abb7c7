package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/examples/training-launcher/internal/launcher"
	"github.com/modeltel/modeltel/logging"
	"github.com/modeltel/modeltel/tracing"
	"github.com/modeltel/modeltel/training"
)

var defaultCommand = []string{"python3", "examples/training-launcher/trainer.py"}

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, sigs, nil))
}

// run is main without the process: it returns the exit code, and calls ready
// (when not nil) with the address it serves on.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, sigs <-chan os.Signal, ready func(addr string)) int {
	fs := flag.NewFlagSet("training-launcher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: training-launcher [flags] [-- trainer command...]\n(default trainer: %v)\n", defaultCommand)
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:8082", "address of /metrics and /healthz")
	maxRestarts := fs.Int("max-restarts", 3, "restarts after trainer failures in a row before giving up")
	healthyAfter := fs.Duration("healthy-after", 10*time.Minute, "a trainer that ran this long before failing starts the restart count and backoff over (negative: never)")
	backoff := fs.Duration("backoff", time.Second, "wait before the first restart, doubled each time (at most 1m)")
	grace := fs.Duration("grace", 30*time.Second, "after forwarding SIGTERM/SIGINT, wait this long before SIGKILL")
	orphanGrace := fs.Duration("orphan-grace", 5*time.Second, "after the trainer exits, give what it left running in its process group this long after SIGTERM before SIGKILL")
	lokiURL := fs.String("loki-url", "", "also push logs to this Loki (e.g. http://127.0.0.1:3100); logs always go to stdout as JSON")
	runID := fs.String("run", "", "run identity: the run label on every series")
	job := fs.String("job", "", "training job name: the training_job label on every series")
	rank := fs.Int("rank", -1, "distributed rank: the rank label on every series (-1: none)")
	flops := fs.Float64("flops-per-token", 0, "model FLOPs per training token, for MFU (with --peak-flops)")
	peak := fs.Float64("peak-flops", 0, "peak FLOP/s of the hardware, for MFU")
	linger := fs.Duration("linger", 30*time.Second, "after the trainer ends on its own, keep serving /metrics this long so that Prometheus scrapes the last steps (at least two scrape intervals; 0: exit at once); a signal ends it early")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	command := fs.Args()
	if len(command) == 0 {
		command = defaultCommand
	}

	reg := prometheus.NewRegistry()
	logger, closeLogs, err := newLogger(stdout, reg, *lokiURL, *runID, *job)
	if err != nil {
		fmt.Fprintf(stderr, "training-launcher: %v\n", err)
		return 2
	}
	defer closeLogs()
	tp, shutdownTracing, err := newTracerProvider(ctx)
	if err != nil {
		logger.ErrorContext(ctx, "tracing disabled", "err", err)
	}
	defer shutdownTracing()
	labels := prometheus.Labels{}
	if *runID != "" {
		labels["run"] = *runID
	}
	if *job != "" {
		labels["training_job"] = *job
	}
	if *rank >= 0 {
		labels["rank"] = fmt.Sprint(*rank)
	}
	metrics := training.NewMetrics(training.WithConstLabels(labels), training.WithFLOPs(*flops, *peak))
	l := launcher.New(launcher.Config{
		Command:      command,
		MaxRestarts:  *maxRestarts,
		HealthyAfter: *healthyAfter,
		Backoff:      *backoff,
		Grace:        *grace,
		OrphanGrace:  *orphanGrace,
		Metrics:      metrics,
		Logger:       logger,
		Stderr:       stderr,
		Signals:      sigs,
		Attributes:   []attribute.KeyValue{attribute.String("training.run", *runID), attribute.String("training.job", *job)},

		TracerProvider: tp,
	}, labels)
	if err := registerAll(reg, metrics, l, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		logger.ErrorContext(ctx, "metrics registration failed", "err", err)
		return 1
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.ErrorContext(ctx, "listen failed", "addr", *listen, "err", err)
		return 1
	}
	srv := &http.Server{Handler: newMux(reg, l), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.ErrorContext(ctx, "metrics server stopped", "err", err)
		}
	}()
	logger.InfoContext(ctx, "serving metrics", "addr", ln.Addr().String(), "command", command)
	if ready != nil {
		ready(ln.Addr().String())
	}

	code, err := l.Run(ctx)
	if err != nil {
		logger.ErrorContext(ctx, "launcher failed", "err", err)
	}
	if !l.Stopped() && *linger > 0 {
		lingerFor(ctx, logger, *linger, sigs, code)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return code
}

// lingerFor keeps the process (and so /metrics) up for d after the trainer
// ended on its own, so that the last steps and the exit code are scraped
// before the series go away; a signal or ctx ends the wait early.
func lingerFor(ctx context.Context, logger *slog.Logger, d time.Duration, sigs <-chan os.Signal, code int) {
	logger.InfoContext(ctx, "trainer ended, serving the last metrics before exiting", "linger", d.String(), "exit_code", code)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case sig := <-sigs:
		logger.InfoContext(ctx, "signal while lingering, exiting", "signal", sig.String())
	case <-ctx.Done():
	}
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func newMux(reg *prometheus.Registry, l *launcher.Launcher) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "ok %s\n", l.State())
	})
	return mux
}

// serviceName is the service.name of the traces and the service_name label of
// the Loki stream: OTEL_SERVICE_NAME where set.
func serviceName() string {
	if name := os.Getenv("OTEL_SERVICE_NAME"); name != "" {
		return name
	}
	return "training-launcher"
}

// newLogger logs JSON with trace ids to w, and also pushes to Loki when lokiURL
// is set (its drop and send counters registered on reg). The run identity is on
// every record. close flushes what the Loki handler still holds.
func newLogger(w io.Writer, reg prometheus.Registerer, lokiURL, run, job string) (logger *slog.Logger, close func(), err error) {
	opts := []logging.Option{logging.WithWriter(w)}
	close = func() {}
	if lokiURL != "" {
		loki, err := logging.NewLoki(logging.LokiConfig{URL: lokiURL, Labels: map[string]string{"service_name": serviceName()}})
		if err != nil {
			return nil, nil, err
		}
		if err := reg.Register(loki); err != nil {
			return nil, nil, err
		}
		opts = append(opts, logging.WithHandler(loki))
		close = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = loki.Close(ctx)
		}
	}
	logger = logging.New(opts...).With("service", "training-launcher")
	if run != "" {
		logger = logger.With("run", run)
	}
	if job != "" {
		logger = logger.With("job", job)
	}
	return logger, close, nil
}

// newTracerProvider exports the run's spans over OTLP gRPC when the standard
// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT variable is set; otherwise it returns a
// provider that samples and exports nothing but still gives each span a trace
// id, so the logs carry trace_id and span_id either way (as modeltel.Start
// does).
func newTracerProvider(ctx context.Context) (trace.TracerProvider, func(), error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
		return tp, func() { _ = tp.Shutdown(context.Background()) }, nil
	}
	tp, err := tracing.NewProvider(ctx, tracing.WithServiceName(serviceName()))
	if err != nil {
		return nil, func() {}, err
	}
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}, nil
}
