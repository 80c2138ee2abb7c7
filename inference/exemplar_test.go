package inference

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/testkit"
)

// TestExemplars scrapes the OpenMetrics text after one request and checks
// which histograms carry the request's trace id as an exemplar.
func TestExemplars(t *testing.T) {
	sampledTP := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	dropTP := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xee, 1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	streamed := []string{
		"gen_ai_server_request_duration_seconds_bucket",
		"gen_ai_server_time_per_output_token_seconds_bucket",
		"gen_ai_server_time_to_first_token_seconds_bucket",
	}
	for _, tt := range []struct {
		name string
		ctx  func() (context.Context, func())
		err  error
		want []string // metrics with an exemplar, sorted; nil for none
	}{
		{"sampled span", func() (context.Context, func()) {
			ctx, sp := sampledTP.Tracer("t").Start(context.Background(), "req")
			return ctx, func() { sp.End() }
		}, nil, streamed},
		{"sampled remote parent, no span of ours", func() (context.Context, func()) {
			return trace.ContextWithRemoteSpanContext(context.Background(), remote), func() {}
		}, nil, streamed},
		{"failed request: the error duration", func() (context.Context, func()) {
			ctx, sp := sampledTP.Tracer("t").Start(context.Background(), "req")
			return ctx, func() { sp.End() }
		}, errors.New("boom"), []string{"gen_ai_server_request_duration_seconds_bucket"}},
		{"unsampled span", func() (context.Context, func()) {
			ctx, sp := dropTP.Tracer("t").Start(context.Background(), "req")
			return ctx, func() { sp.End() }
		}, nil, nil},
		{"no span", func() (context.Context, func()) { return context.Background(), func() {} }, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, clk, reg := newTestMetrics(t)
			ctx, end := tt.ctx()
			want := trace.SpanContextFromContext(ctx).TraceID().String()
			_, rec := m.Start(ctx, Request{Model: "llama-3-8b", Operation: "chat"})
			clk.advance(200 * time.Millisecond)
			rec.OutputTokens(1)
			for range 4 {
				clk.advance(50 * time.Millisecond)
				rec.OutputTokens(1)
			}
			rec.End(tt.err)
			end()

			var got []string
			for _, e := range testkit.ScrapeExemplars(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})) {
				if e.Labels["trace_id"] != want || len(e.Labels) != 1 {
					t.Errorf("%s: exemplar labels %v, want only trace_id=%s", e.Metric, e.Labels, want)
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

// BenchmarkRequestExemplars is BenchmarkRequest's recorder path in one run:
// no span (the baseline), a sampled span context (exemplars in the steady
// state, each bucket had one within exemplar.Interval), and a sampled span
// context with a clock that moves a second per reading, so that the
// duration, TTFT and TPOT attach an exemplar on every request (the most
// they cost).
func BenchmarkRequestExemplars(b *testing.B) {
	sampled := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xee, 1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	var ns atomic.Int64
	ns.Store(time.Now().UnixNano())
	secondPerReading := func() time.Time { return time.Unix(0, ns.Add(int64(time.Second))) }
	for _, c := range []struct {
		name string
		ctx  context.Context
		opts []Option
	}{
		{"baseline-no-span", context.Background(), nil},
		{"sampled", sampled, nil},
		{"baseline-no-span-clock-1s", context.Background(), []Option{withClock(secondPerReading)}},
		{"sampled-exemplars-every-request-clock-1s", sampled, []Option{withClock(secondPerReading)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := NewMetrics(c.opts...)
			req := Request{Model: "llama-3-8b", Operation: "chat"}
			b.ReportAllocs()
			for b.Loop() {
				_, rec := m.Start(c.ctx, req)
				rec.InputTokens(100)
				rec.OutputTokens(1)
				rec.OutputTokens(1)
				rec.End(nil)
			}
		})
	}
}
