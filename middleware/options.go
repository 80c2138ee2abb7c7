package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/inference"
)

// Defaults.
const (
	// DefaultOperation is the gen_ai.operation.name of a request when no
	// WithOperation (or WithGRPCOperation) func names one.
	DefaultOperation = "chat"
	// DefaultMaxRoutes caps distinct http_route values (and distinct gRPC
	// methods); later ones are recorded as OtherRoute.
	DefaultMaxRoutes = 1000
	// UnmatchedRoute is the http_route of a request for which neither the
	// mux pattern nor the route func named a route (say a 404).
	UnmatchedRoute = "unmatched"
	// OtherRoute is the http_route (grpc_service, grpc_method) beyond the
	// cap, and the http_request_method of a method outside the standard set.
	OtherRoute = "_OTHER"
)

// HTTPDurationBuckets are the advisory boundaries of http.server.request.duration.
var HTTPDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// BodySizeBuckets are the boundaries of the body size histograms (no
// convention advises any): 64 B to 64 MiB, by powers of 4.
var BodySizeBuckets = prometheus.ExponentialBuckets(64, 4, 11)

// GRPCHandlingBuckets are the boundaries of grpc_server_handling_seconds,
// prometheus.DefBuckets as go-grpc-middleware uses.
var GRPCHandlingBuckets = prometheus.DefBuckets

// Option configures a Middleware. Options are applied once, by New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	inference   *inference.Metrics
	model       func(*http.Request) string
	operation   func(*http.Request) string
	route       func(*http.Request) string
	filter      func(*http.Request) bool
	grpcModel   func(ctx context.Context, fullMethod string, req any) string
	grpcOp      func(ctx context.Context, fullMethod string) string
	tp          trace.TracerProvider
	propagators propagation.TextMapPropagator
	logger      *slog.Logger
	maxRoutes   int
	durBuckets  []float64
	sizeBuckets []float64
	grpcBuckets []float64
	constLabels prometheus.Labels
	now         func() time.Time
	bodyTimeout time.Duration
}

func newConfig(opts []Option) config {
	c := config{
		maxRoutes:   DefaultMaxRoutes,
		durBuckets:  HTTPDurationBuckets,
		sizeBuckets: BodySizeBuckets,
		grpcBuckets: GRPCHandlingBuckets,
		now:         time.Now,
		bodyTimeout: DefaultBodyReadTimeout,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithInference makes the middleware start an inference recorder (and, when
// tracing, the GenAI request span) for every request whose model the
// WithModel (HTTP) or WithGRPCModel (gRPC) func names. nil does nothing.
func WithInference(m *inference.Metrics) Option {
	return optionFunc(func(c *config) { c.inference = m })
}

// WithModel names the model an HTTP request asks for; "" means the request
// serves no model and gets no recorder. It runs before the handler, on the
// incoming request (see ModelFromJSONBody for OpenAI-style bodies). The
// name is bounded by the inference metrics (inference.WithModels,
// inference.WithMaxModels) before it labels anything, the GenAI span
// included.
func WithModel(f func(*http.Request) string) Option {
	return optionFunc(func(c *config) { c.model = f })
}

// WithBodyReadTimeout bounds the time the WithModel func may spend reading
// the request body, DefaultBodyReadTimeout (10 s) by default; d < 0 turns
// the bound off and 0 keeps the default. It sets the connection's read
// deadline (http.ResponseController) for that read only and resets it
// afterwards (to the server's ReadTimeout, counted from the request's
// start, where one is set), so the handler's own reads of the rest of the
// body and a streamed response are not cut. A request whose body does not
// arrive in time is answered 408 Request Timeout (a JSON error, Connection:
// close) without running the handler, and recorded as a 408 with the route
// of the mux pattern matched in front of the middleware, if any, else
// UnmatchedRoute. A server whose connections cannot take deadlines (an
// httptest.ResponseRecorder) gets no bound.
func WithBodyReadTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d != 0 {
			c.bodyTimeout = d
		}
	})
}

// WithOperation names the gen_ai.operation.name of an HTTP request ("chat",
// "text_completion", "embeddings", ...); "" or no func means DefaultOperation.
func WithOperation(f func(*http.Request) string) Option {
	return optionFunc(func(c *config) { c.operation = f })
}

// WithRoute names the http_route of a request, in place of the pattern the
// Go 1.22 ServeMux matched. It runs after the handler returned (so it may read
// r.Pattern and r.PathValue) and must return a template, never a raw path.
// "" means UnmatchedRoute.
func WithRoute(f func(*http.Request) string) Option {
	return optionFunc(func(c *config) { c.route = f })
}

// WithFilter skips the instrumentation of requests for which f returns false
// (say health checks and /metrics): they go straight to the handler.
func WithFilter(f func(*http.Request) bool) Option {
	return optionFunc(func(c *config) { c.filter = f })
}

// WithGRPCModel names the model of a gRPC call: for a unary call f gets the
// request message, for a stream the first message received (the recorder
// starts then, and stream.Context() carries it from then on). "" means no
// recorder.
func WithGRPCModel(f func(ctx context.Context, fullMethod string, req any) string) Option {
	return optionFunc(func(c *config) { c.grpcModel = f })
}

// WithGRPCOperation names the gen_ai.operation.name of a gRPC call; "" or no
// func means DefaultOperation.
func WithGRPCOperation(f func(ctx context.Context, fullMethod string) string) Option {
	return optionFunc(func(c *config) { c.grpcOp = f })
}

// WithTracerProvider sets the provider of the server and GenAI spans; by
// default the global one, looked up per request so that a provider set
// later is used. A noop provider (or the global one before any is set)
// turns span creation off at no cost.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithPropagators sets the propagator that extracts the incoming trace
// context; by default the global one (W3C once tracing.Setup ran).
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) { c.propagators = p })
}

// WithLogger logs one line per request (per RPC), with the request's context
// so a handler that adds trace ids sees the server span: Info below 400,
// Warn for 4xx (and client cancellations), Error for 5xx.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithMaxRoutes caps distinct routes (and gRPC methods), DefaultMaxRoutes by
// default. n <= 0 keeps the default.
func WithMaxRoutes(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxRoutes = n
		}
	})
}

// WithDurationBuckets sets the boundaries of http_server_request_duration_seconds.
func WithDurationBuckets(b []float64) Option {
	return optionFunc(func(c *config) {
		if len(b) > 0 {
			c.durBuckets = b
		}
	})
}

// WithConstLabels adds constant labels to every metric of the middleware.
func WithConstLabels(l prometheus.Labels) Option {
	return optionFunc(func(c *config) { c.constLabels = l })
}

// withClock replaces time.Now, for tests.
func withClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}
