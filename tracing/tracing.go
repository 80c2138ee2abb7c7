package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/modeltel/modeltel/internal/otelenv"
)

// Setup builds a tracer provider as NewProvider does and installs it, the W3C
// trace-context + baggage propagator and a rate-limited error handler (see
// NewErrorHandler) as the OpenTelemetry globals. That is its documented job;
// nothing else in modeltel sets otel globals.
//
// The returned shutdown flushes the spans still queued and stops the exporter;
// it returns when done or when its ctx ends (with ctx's error), whichever is
// first, and is safe to call more than once. The globals are left in place.
// With OTEL_SDK_DISABLED=true the provider exports nothing (see NewProvider)
// and the propagator is still installed, so trace context passes through.
func Setup(ctx context.Context, opts ...Option) (shutdown func(context.Context) error, err error) {
	cfg := newConfig(opts)
	tp, err := newProvider(ctx, cfg)
	if err != nil {
		return nil, err
	}
	otel.SetErrorHandler(NewErrorHandler(cfg.errorLogger, 0))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// NewProvider builds an SDK tracer provider: an OTLP gRPC exporter behind a
// batch span processor, a resource with service.name, service.version,
// host.name, the SDK's attributes and OTEL_RESOURCE_ATTRIBUTES, and the
// configured sampler. It sets no globals: the caller owns the provider, passes
// it where spans are started (or to otel.SetTracerProvider) and calls its
// Shutdown(ctx), which flushes within ctx. Export errors go to otel.Handle,
// that is to the global error handler; install NewErrorHandler there
// (otel.SetErrorHandler) to rate-limit them, as Setup does.
//
// No collector listening costs nothing but those errors: creating the
// exporter does not connect, span ends never wait for the exporter (a full
// queue drops spans) and Shutdown is bounded by its ctx.
//
// With OTEL_SDK_DISABLED=true it returns a provider with no exporter and a
// never-sample sampler: spans are non-recording but still carry (and
// propagate) the parent's trace context.
func NewProvider(ctx context.Context, opts ...Option) (*sdktrace.TracerProvider, error) {
	return newProvider(ctx, newConfig(opts))
}

func newProvider(ctx context.Context, cfg config) (*sdktrace.TracerProvider, error) {
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if otelenv.SDKDisabled() {
		return sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.NeverSample()),
		), nil
	}
	exp := cfg.exporter
	if exp == nil {
		exp, err = otlptracegrpc.New(ctx, exporterOptions(cfg)...)
		if err != nil {
			return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
		}
	}
	m := cfg.metrics
	if m == nil {
		m = NewMetrics()
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(newAccounting(exp, m, cfg.errorLogger, cfg.batchOpts)),
	}
	// The SDK reads OTEL_TRACES_SAMPLER itself, but an explicit sampler
	// option would override it: the variable wins, so pass ours only when
	// it names no sampler the SDK knows (unset, or a typo the SDK reports
	// through otel.Handle and ignores).
	if cfg.sampler != nil && !envSampler() {
		tpOpts = append(tpOpts, sdktrace.WithSampler(cfg.sampler))
	}
	return sdktrace.NewTracerProvider(tpOpts...), nil
}

// exporterOptions turns the options into otlptracegrpc options, leaving out
// those that the environment sets: the exporter reads the environment first
// and lets options override it, and here the environment must win.
func exporterOptions(cfg config) []otlptracegrpc.Option {
	opts := []otlptracegrpc.Option{
		otlptracegrpc.WithDialOption(grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           connectBackoff,
			MinConnectTimeout: minConnectTimeout,
		})),
		otlptracegrpc.WithRetry(exportRetry),
	}
	envEndpoint := otelenv.Set("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if cfg.endpoint != "" && !envEndpoint {
		if strings.Contains(cfg.endpoint, "://") {
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.endpoint))
		} else {
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.endpoint))
		}
	}
	if cfg.insecure && !envEndpoint && !otelenv.Set("OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE") {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	if cfg.headers != nil && !otelenv.Set("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
		opts = append(opts, otlptracegrpc.WithHeaders(cfg.headers))
	}
	return opts
}

// The exporter's reconnection and retry settings. The gRPC defaults let the
// reconnect backoff grow to 2 minutes and the exporter's retries start at
// 5 s: once a collector that was down for a while came back, spans still
// failed for 2-28 s (measured against Jaeger). With these, a returning
// collector is reached within about the backoff's MaxDelay plus the
// retries' MaxInterval (2 s, jitter aside), at the cost of one connection
// attempt a second while it is down.
var (
	// connectBackoff is the gRPC connection backoff of the OTLP exporter.
	connectBackoff = backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}
	// exportRetry is the retry policy of the OTLP exporter for an export
	// that failed with a retryable error; each export is still bounded by
	// the exporter's timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default),
	// after which its spans count as export failed.
	exportRetry = otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 250 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: time.Minute}
)

// minConnectTimeout bounds one connection attempt of the OTLP exporter
// (gRPC's default is 20 s, long for a collector that does not answer).
const minConnectTimeout = 5 * time.Second

// newResource merges, later winning: service name and version from options,
// the resource attribute option, host and SDK attributes, and the
// environment (OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME).
func newResource(ctx context.Context, cfg config) (*resource.Resource, error) {
	name := cfg.serviceName
	if name == "" {
		name = "unknown_service:" + filepath.Base(os.Args[0])
	}
	attrs := append(make([]resource.Option, 0, 6),
		resource.WithAttributes(semconv.ServiceName(name)))
	if cfg.serviceVersion != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(cfg.serviceVersion)))
	}
	if len(cfg.resourceAttrs) > 0 {
		attrs = append(attrs, resource.WithAttributes(cfg.resourceAttrs...))
	}
	attrs = append(attrs,
		resource.WithHost(),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		if res == nil || !errors.Is(err, resource.ErrPartialResource) {
			return nil, fmt.Errorf("tracing: resource: %w", err)
		}
		// A detector failed (say the host name): keep what was found.
		otel.Handle(fmt.Errorf("tracing: resource: %w", err))
	}
	return res, nil
}

// envSampler reports whether OTEL_TRACES_SAMPLER names a sampler the SDK
// reads (the names of the SDK's sampler_env.go).
func envSampler() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER"))) {
	case "always_on", "always_off", "traceidratio",
		"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio":
		return true
	}
	return false
}
