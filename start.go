package modeltel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/otelenv"
	"github.com/modeltel/modeltel/internal/promlist"
	"github.com/modeltel/modeltel/logging"
	"github.com/modeltel/modeltel/middleware"
	"github.com/modeltel/modeltel/tracing"
)

// Telemetry is what Start built. Its accessors are safe for concurrent use
// and return the same values for its whole life; call Shutdown once, when the
// service stops. A nil *Telemetry is not usable.
type Telemetry struct {
	reg        *prometheus.Registry
	inf        *inference.Metrics
	mw         *middleware.Middleware
	logger     *slog.Logger
	tp         trace.TracerProvider
	gpu        *gpumon.Collector
	exporting  bool
	closers    []func(context.Context) error // in start order
	shutdownMu sync.Mutex
	shutdown   bool
	err        error
}

// Start builds the telemetry of one service with defaults:
//
//   - a new Prometheus registry with the Go and process collectors (or the
//     one of WithRegistry), on which everything below is registered;
//   - the inference metrics (inference.NewMetrics);
//   - a tracer provider: tracing.NewProvider, exporting over OTLP gRPC, when
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
//     or WithTracingOptions is given, with its span counters
//     (tracing.Metrics: modeltel_tracing_spans_exported_total, ..._export_failed_total,
//     ..._dropped_total) registered; otherwise one that samples nothing,
//     whose spans still carry trace ids for the logs, at almost no cost;
//   - a logger: logging.New (JSON on stdout with trace_id and span_id), also
//     pushing to Loki with WithLoki;
//   - the middleware (middleware.New) with the inference metrics, the tracer
//     provider, the W3C propagator, the logger and, as the model of a request,
//     the "model" field of its JSON body with the request parameters, read in
//     one pass (middleware.RequestFromJSONBody), so that OpenAI-style
//     requests get an inference recorder and other requests do not, and the
//     operation from the route (middleware.OperationFromPath: embeddings,
//     text_completion, chat); give middleware.WithModel (or WithRequest,
//     WithOperation) through WithMiddlewareOptions to choose otherwise; and
//     response accounting for OpenAI-style routes
//     (middleware.WithResponseAccounting(middleware.OpenAIRoutes)), so that
//     a handler that does not call the recorder, a proxy in front of vLLM
//     say, still gets its tokens and time to first token from the response
//     it passes on; WithMiddlewareOptions(middleware.WithResponseAccounting(nil))
//     turns it off;
//   - the GPU collector (gpumon.New) where NVML is present. Without NVML it
//     logs one info line and goes on; see WithGPUOptions for other errors.
//
// It sets no global unless WithGlobals is given. On error, what was built is
// shut down again and nothing is left running.
func Start(ctx context.Context, opts ...Option) (*Telemetry, error) {
	cfg := newConfig(opts)
	t := &Telemetry{reg: cfg.registry}
	fail := func(err error) (*Telemetry, error) {
		_ = t.Shutdown(context.WithoutCancel(ctx))
		return nil, err
	}
	if t.reg == nil {
		t.reg = prometheus.NewRegistry()
		t.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}

	// Logs first: the other parts report through the logger.
	var loki *logging.Loki
	if cfg.loki != nil {
		lc := *cfg.loki
		if _, ok := lc.Labels["service_name"]; !ok {
			labels := make(map[string]string, len(lc.Labels)+1)
			for k, v := range lc.Labels {
				labels[k] = v
			}
			labels["service_name"] = cfg.serviceName
			lc.Labels = labels
		}
		var err error
		if loki, err = logging.NewLoki(lc); err != nil {
			return fail(fmt.Errorf("modeltel: loki: %w", err))
		}
		t.closers = append(t.closers, loki.Close)
		if err := t.reg.Register(loki); err != nil {
			return fail(fmt.Errorf("modeltel: register loki metrics: %w", err))
		}
	}
	switch {
	case cfg.logger != nil && loki != nil:
		t.logger = slog.New(slog.NewMultiHandler(cfg.logger.Handler(), loki))
	case cfg.logger != nil:
		t.logger = cfg.logger
	case loki != nil:
		t.logger = logging.New(logging.WithHandler(loki))
	default:
		t.logger = logging.New()
	}

	// Traces.
	switch {
	case cfg.tracerProvider != nil:
		t.tp = cfg.tracerProvider
	case len(cfg.tracingOpts) > 0 || otelenv.Set("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
		// The span counters and the shutdown report; options given later
		// may replace either.
		spans := tracing.NewMetrics()
		topts := []tracing.Option{tracing.WithServiceName(cfg.serviceName),
			tracing.WithMetrics(spans), tracing.WithErrorLogger(t.logger)}
		if cfg.serviceVersion != "" {
			topts = append(topts, tracing.WithServiceVersion(cfg.serviceVersion))
		}
		tp, err := tracing.NewProvider(ctx, append(topts, cfg.tracingOpts...)...)
		if err != nil {
			return fail(fmt.Errorf("modeltel: %w", err))
		}
		// tracing.NewProvider exports nothing under OTEL_SDK_DISABLED.
		t.tp, t.exporting = tp, !otelenv.SDKDisabled()
		t.closers = append(t.closers, tp.Shutdown)
		if err := t.reg.Register(spans); err != nil {
			return fail(fmt.Errorf("modeltel: register span metrics: %w", err))
		}
	default:
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
		t.tp = tp
		t.closers = append(t.closers, tp.Shutdown)
	}

	// Inference metrics and the middleware.
	t.inf = inference.NewMetrics(cfg.inferenceOpts...)
	mopts := append([]middleware.Option{
		middleware.WithInference(t.inf),
		middleware.WithRequest(middleware.RequestFromJSONBody(0)),
		middleware.WithOperation(middleware.OperationFromPath),
		middleware.WithResponseAccounting(middleware.OpenAIRoutes),
		middleware.WithTracerProvider(t.tp),
		middleware.WithPropagators(propagator),
		middleware.WithLogger(t.logger),
	}, cfg.middlewareOpts...)
	t.mw = middleware.New(mopts...)
	// One collector, the middleware first: it lowers its active gauges
	// after the request's GenAI series are recorded and collects those
	// gauges first, so a scrape that finds a request no longer active
	// finds it in the GenAI series too. Registered apart, the two would be
	// collected concurrently, in any order.
	if err := t.reg.Register(promlist.Collectors{t.mw, t.inf}); err != nil {
		return fail(fmt.Errorf("modeltel: register: %w", err))
	}

	// GPU.
	if cfg.gpu {
		gpu, err := gpumon.New(cfg.gpuOpts...)
		switch {
		case errors.Is(err, gpumon.ErrNVMLUnavailable):
			t.logger.InfoContext(ctx, "modeltel: no GPU telemetry: NVML is not available", "error", err.Error())
		case err != nil && cfg.gpuExplicit:
			return fail(fmt.Errorf("modeltel: gpu: %w", err))
		case err != nil:
			t.logger.WarnContext(ctx, "modeltel: no GPU telemetry", "error", err.Error())
		default:
			t.closers = append(t.closers, func(context.Context) error { return gpu.Close() })
			if err := t.reg.Register(gpu); err != nil {
				return fail(fmt.Errorf("modeltel: register gpu: %w", err))
			}
			t.gpu = gpu
		}
	}

	if cfg.globals {
		otel.SetTracerProvider(t.tp)
		otel.SetTextMapPropagator(propagator)
		otel.SetErrorHandler(tracing.NewErrorHandler(t.logger, 0))
		slog.SetDefault(t.logger)
	}
	return t, nil
}

var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Registry returns the registry every collector is registered on; register
// your own collectors there too.
func (t *Telemetry) Registry() *prometheus.Registry { return t.reg }

// MetricsHandler serves the registry in the Prometheus exposition formats.
// When a collector fails, the others are still served with status 200
// (promhttp.ContinueOnError); the error is logged as a warning on the
// logger, once per scrape, and counted in
// promhttp_metric_handler_errors_total{cause="gathering"}.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{
		ErrorLog:          promLogger{t.logger},
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          t.reg,
		EnableOpenMetrics: true,
	})
}

// promLogger logs promhttp's errors as warnings.
type promLogger struct{ l *slog.Logger }

func (p promLogger) Println(v ...any) {
	p.l.Warn("modeltel: metrics handler: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// Middleware returns the HTTP and gRPC middleware; wrap the server's handler
// with Middleware().Handler and add its interceptors to a gRPC server.
func (t *Telemetry) Middleware() *middleware.Middleware { return t.mw }

// Inference returns the inference metrics the middleware records on; use it
// to record requests outside the middleware (inference.Metrics.Start).
func (t *Telemetry) Inference() *inference.Metrics { return t.inf }

// Logger returns the logger: JSON on stdout with trace_id and span_id (or the
// WithLogger one), and Loki with WithLoki.
func (t *Telemetry) Logger() *slog.Logger { return t.logger }

// TracerProvider returns the tracer provider of the middleware's spans.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// Exporting reports whether spans are exported (an OTLP endpoint or
// WithTracingOptions was given, and OTEL_SDK_DISABLED is not true), as
// opposed to carrying trace ids only.
func (t *Telemetry) Exporting() bool { return t.exporting }

// GPU returns the GPU collector, or nil when there is none (no NVML,
// WithoutGPU, or it failed to start).
func (t *Telemetry) GPU() *gpumon.Collector { return t.gpu }

// Shutdown stops what Start started, in reverse order (GPU, tracer provider
// flushing its spans, Loki flushing its logs), each within ctx, and returns
// their errors joined. Later calls return the first call's result.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownMu.Lock()
	defer t.shutdownMu.Unlock()
	if t.shutdown {
		return t.err
	}
	t.shutdown = true
	var errs []error
	for i := len(t.closers) - 1; i >= 0; i-- {
		if err := t.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.err = fmt.Errorf("modeltel: shutdown: %w", err)
	}
	return t.err
}
