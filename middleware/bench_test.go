package middleware

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/modeltel/modeltel/inference"
)

// benchWriter is a ResponseWriter that allocates nothing, so that the
// harness costs 0 allocs/op and every allocation reported is the
// middleware's.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Flush()                      {}

// discard is a span processor that drops ended spans: the spans are sampled
// and recorded, and exporting costs nothing.
type discard struct{}

func (discard) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discard) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discard) Shutdown(context.Context) error                  { return nil }
func (discard) ForceFlush(context.Context) error                { return nil }

func sdkProvider() *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(discard{}))
}

// BenchmarkHTTP compares, in one run, the cost per request of a bare handler
// (a Go 1.22 mux serving a pattern with a path value), the promhttp chain,
// otelhttp with a sampling SDK tracer provider, and this middleware.
func BenchmarkHTTP(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})

	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "in_flight", Help: "h"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d_seconds", Help: "h"}, []string{"code", "method"})
	cnt := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "h"}, []string{"code", "method"})
	tp := sdkProvider()
	inf := inference.NewMetrics()
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))

	cases := []struct {
		name string
		h    http.Handler
	}{
		{"bare", mux},
		{"promhttp-chain", promhttp.InstrumentHandlerInFlight(inFlight,
			promhttp.InstrumentHandlerDuration(dur, promhttp.InstrumentHandlerCounter(cnt, mux)))},
		{"otelhttp", otelhttp.NewHandler(mux, "server", otelhttp.WithTracerProvider(tp),
			otelhttp.WithPropagators(propagation.TraceContext{}))},
		{"modeltel-metrics", New().Handler(mux)},
		{"modeltel-metrics-tracing-logging", New(WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}),
			WithLogger(logger)).Handler(mux)},
		{"modeltel-all-with-inference", New(WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}),
			WithLogger(logger), WithInference(inf),
			WithModel(func(*http.Request) string { return "llama-3-8b" })).Handler(mux)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/models/llama", nil)
			w := &benchWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		})
	}
}
