package modeltel

import (
	"context"
	"net/http"
	"slices"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/modeltel/modeltel/internal/testkit"
	"github.com/modeltel/modeltel/middleware"
	"github.com/modeltel/modeltel/tracing"
)

// TestMetricsHandlerExemplars: the metrics handler answers an OpenMetrics
// scrape with the trace id of the exported request span as the exemplar of
// the HTTP duration, request duration, TTFT and TPOT histograms; with the
// sampler off, none.
func TestMetricsHandlerExemplars(t *testing.T) {
	for _, tt := range []struct {
		sampler string
		want    []string
	}{
		{"always_on", []string{
			"gen_ai_server_request_duration_seconds_bucket",
			"gen_ai_server_time_per_output_token_seconds_bucket",
			"gen_ai_server_time_to_first_token_seconds_bucket",
			"http_server_request_duration_seconds_bucket",
		}},
		{"always_off", nil},
	} {
		t.Run(tt.sampler, func(t *testing.T) {
			noOTLP(t)
			t.Setenv("OTEL_TRACES_SAMPLER", tt.sampler)
			exp := tracetest.NewInMemoryExporter()
			tel, err := Start(context.Background(), WithServiceName("svc"), WithLogger(discard()), WithoutGPU(),
				WithTracingOptions(tracing.WithExporter(exp)),
				WithMiddlewareOptions(middleware.WithModel(func(*http.Request) string { return "llama-3-8b" })))
			if err != nil {
				t.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			serve(t, tel.Middleware().Handler(chat), "POST", "/v1/chat/completions", "{}")
			if err := tel.TracerProvider().(*sdktrace.TracerProvider).ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			traces := map[string]bool{}
			for _, s := range exp.GetSpans() {
				traces[s.SpanContext.TraceID().String()] = true
			}
			var got []string
			for _, e := range testkit.ScrapeExemplars(t, tel.MetricsHandler()) {
				if !traces[e.Labels["trace_id"]] || len(e.Labels) != 1 {
					t.Errorf("%s: exemplar %v is not exactly the trace_id of an exported span (%v)", e.Metric, e.Labels, traces)
				}
				got = append(got, e.Metric)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("exemplars on %q, want %q", got, tt.want)
			}
		})
	}
}
