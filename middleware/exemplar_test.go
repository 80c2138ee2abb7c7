package middleware

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/testkit"
)

// exemplarsOn scrapes reg's OpenMetrics text and returns the names of the
// samples with an exemplar, sorted, failing t for an exemplar whose labels
// are not exactly trace_id=want.
func exemplarsOn(t *testing.T, reg *prometheus.Registry, want string) []string {
	t.Helper()
	var got []string
	for _, e := range testkit.ScrapeExemplars(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})) {
		if e.Labels["trace_id"] != want || len(e.Labels) != 1 {
			t.Errorf("%s: exemplar labels %v, want only trace_id=%s", e.Metric, e.Labels, want)
		}
		got = append(got, e.Metric)
	}
	slices.Sort(got)
	return got
}

func TestHTTPExemplars(t *testing.T) {
	sampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"
	both := []string{"gen_ai_server_request_duration_seconds_bucket", "http_server_request_duration_seconds_bucket"}
	for _, tt := range []struct {
		name        string
		tp          trace.TracerProvider
		traceparent string
		want        []string
	}{
		{"sampled server span", sampled, "", both},
		{"sampled server span under a sampled parent", sampled, parent + "01", both},
		{"no tracer, sampled parent", nil, parent + "01", both},
		{"no tracer, parent not sampled", nil, parent + "00", nil},
		{"span not sampled", never, "", nil},
		{"no tracer, no parent", nil, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inf := inference.NewMetrics()
			m := New(withClock((&fakeClock{step: 250 * time.Millisecond}).now), WithTracerProvider(tt.tp),
				WithPropagators(propagation.TraceContext{}), WithInference(inf),
				WithModel(func(*http.Request) string { return "llama" }))
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(m, inf)
			var seen trace.SpanContext
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = trace.SpanContextFromContext(r.Context())
				_, _ = io.WriteString(w, "ok")
			}))
			req := httptest.NewRequest(http.MethodGet, "/v1", nil)
			if tt.traceparent != "" {
				req.Header.Set("Traceparent", tt.traceparent)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got := exemplarsOn(t, reg, seen.TraceID().String()); !slices.Equal(got, tt.want) {
				t.Errorf("exemplars on %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGRPCExemplars(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sampler sdktrace.Sampler
		want    []string
	}{
		{"sampled", sdktrace.AlwaysSample(), []string{"grpc_server_handling_seconds_bucket"}},
		{"not sampled", sdktrace.NeverSample(), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sr := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(tt.sampler), sdktrace.WithSpanProcessor(sr))
			m := New(WithTracerProvider(tp))
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(m)
			conn := startGRPC(t, m)
			if _, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			var want string // the server span's trace id; none when not sampled
			for _, sp := range sr.Ended() {
				if sp.SpanKind() == trace.SpanKindServer {
					want = sp.SpanContext().TraceID().String()
				}
			}
			got := exemplarsOn(t, reg, want)
			if !slices.Equal(got, tt.want) {
				t.Errorf("exemplars on %q, want %q", got, tt.want)
			}
		})
	}
}

// recordOnly records every span without sampling it: the same span work as
// AlwaysSample (the processors see every span end) and no exemplar, the
// baseline of BenchmarkExemplars.
type recordOnly struct{}

func (recordOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly,
		Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}
func (recordOnly) Description() string { return "RecordOnly" }

// BenchmarkExemplars is the whole middleware path (server span, GenAI span,
// inference recorder with two output tokens, a log line) of one request, in
// one run: spans recorded but not sampled (no exemplar: the baseline),
// sampled (exemplars, in the steady state where each bucket had one within
// exemplar.Interval); then both again with a clock that moves a second per
// reading, so that the HTTP duration attaches an exemplar on every sampled
// request (the most one costs; the inference histograms run on the real
// clock).
func BenchmarkExemplars(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models/{id}", func(w http.ResponseWriter, r *http.Request) {
		rec := inference.FromContext(r.Context())
		rec.OutputTokens(1)
		rec.OutputTokens(1)
		_, _ = io.WriteString(w, "ok")
	})
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	newTP := func(s sdktrace.Sampler) *sdktrace.TracerProvider {
		return sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithSpanProcessor(discard{}))
	}
	newHandler := func(tp trace.TracerProvider, opts ...Option) http.Handler {
		return New(append(opts, WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}),
			WithLogger(logger), WithInference(inference.NewMetrics()),
			WithModel(func(*http.Request) string { return "llama-3-8b" }))...).Handler(mux)
	}
	var ns atomic.Int64
	ns.Store(time.Now().UnixNano())
	secondPerReading := func() time.Time { return time.Unix(0, ns.Add(int64(time.Second))) }
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"baseline-recorded-not-sampled", newHandler(newTP(recordOnly{}))},
		{"sampled-exemplars", newHandler(newTP(sdktrace.AlwaysSample()))},
		{"baseline-recorded-not-sampled-clock-1s", newHandler(newTP(recordOnly{}), withClock(secondPerReading))},
		{"sampled-http-exemplar-every-request-clock-1s", newHandler(newTP(sdktrace.AlwaysSample()), withClock(secondPerReading))},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/models/llama", nil)
			w := &benchWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
