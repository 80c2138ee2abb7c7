package inference

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/modeltel/modeltel/internal/genai"
	"github.com/modeltel/modeltel/internal/testkit"
)

func tokenCount(t *testing.T, m *Metrics, typ string) float64 {
	t.Helper()
	c, err := m.tokens.GetMetricWithLabelValues("chat", "m", typ)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.ToFloat64(c)
}

// Cached input tokens: the convention's gen_ai.usage.cache_read.input_tokens
// (Recommended; "The value SHOULD be included in gen_ai.usage.input_tokens"),
// so they are a subset of input, counted under their own token type.
func TestCachedInputTokens(t *testing.T) {
	m, _, _ := newTestMetrics(t)
	_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
	if n := testutil.CollectAndCount(m, "inference_tokens_total"); n != 2 {
		t.Errorf("series before any cached token = %d, want 2 (no cache_read series yet)", n)
	}
	rec.InputTokens(100)
	rec.CachedInputTokens(60)
	rec.CachedInputTokens(0)
	rec.CachedInputTokens(-5)
	rec.End(nil)
	rec.CachedInputTokens(10) // after End: nothing
	if got := tokenCount(t, m, "cache_read"); got != 60 {
		t.Errorf("cache_read tokens = %v, want 60", got)
	}
	if got := tokenCount(t, m, "input"); got != 100 {
		t.Errorf("input tokens = %v, want 100 (cached tokens do not add to input)", got)
	}
	if got := rec.CachedTokens(); got != 60 {
		t.Errorf("CachedTokens = %d", got)
	}
	testkit.Lint(t, m)
}

// SetUsage: the server's usage totals are the truth; counters only rise;
// the first token is not marked.
func TestSetUsage(t *testing.T) {
	tests := []struct {
		name                    string
		streamed                int // OutputTokens(1) calls before SetUsage
		in, out, cached         int64
		wantIn, wantOut, wantCa int64   // recorder totals after
		cntIn, cntOut, cntCa    float64 // counters after
		wantTTFT                bool
	}{
		{"non-streaming usage", 0, 12, 30, 4, 12, 30, 4, 12, 30, 4, false},
		{"stream undercounted", 5, 12, 30, 0, 12, 30, 0, 12, 30, 0, true},
		{"stream overcounted: counter stays", 40, 12, 30, 0, 12, 30, 0, 12, 40, 0, true},
		{"negative keeps total", 3, -1, -1, -1, 2, 3, 0, 2, 3, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clk, _ := newTestMetrics(t)
			_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
			rec.InputTokens(2)
			for range tt.streamed {
				clk.advance(10 * time.Millisecond)
				rec.OutputTokens(1)
			}
			clk.advance(time.Second)
			rec.SetUsage(tt.in, tt.out, tt.cached)
			in, out := rec.Tokens()
			if in != tt.wantIn || out != tt.wantOut || rec.CachedTokens() != tt.wantCa {
				t.Errorf("totals = %d, %d, %d; want %d, %d, %d", in, out, rec.CachedTokens(), tt.wantIn, tt.wantOut, tt.wantCa)
			}
			rec.End(nil)
			rec.SetUsage(1000, 1000, 1000) // after End: nothing
			if got := tokenCount(t, m, "input"); got != tt.cntIn {
				t.Errorf("input counter = %v, want %v", got, tt.cntIn)
			}
			if got := tokenCount(t, m, "output"); got != tt.cntOut {
				t.Errorf("output counter = %v, want %v", got, tt.cntOut)
			}
			if tt.cntCa > 0 {
				if got := tokenCount(t, m, "cache_read"); got != tt.cntCa {
					t.Errorf("cache_read counter = %v, want %v", got, tt.cntCa)
				}
			}
			ttft := testutil.CollectAndCount(m, "gen_ai_server_time_to_first_token_seconds") > 0 &&
				histCount(t, m, "gen_ai_server_time_to_first_token_seconds") > 0
			if ttft != tt.wantTTFT {
				t.Errorf("TTFT observed = %v, want %v (SetUsage must not mark the first token)", ttft, tt.wantTTFT)
			}
		})
	}
}

// histCount returns the sample count summed over the series of a histogram.
func histCount(t *testing.T, m *Metrics, name string) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mm := range mf.GetMetric() {
			n += mm.GetHistogram().GetSampleCount()
		}
	}
	return n
}

// SetResponse puts gen_ai.response.model, gen_ai.response.id and
// gen_ai.response.finish_reasons (all Recommended on the GenAI inference
// span) on the span, and the finish reason feeds inference_requests_total.
func TestSetResponse(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	m, _, _ := newTestMetrics(t)
	ctx, span := genai.StartRequestSpan(context.Background(), tp.Tracer("test"), "chat", "m")
	_, rec := m.Start(ctx, Request{Model: "m", Operation: "chat"})
	rec.InputTokens(10)
	rec.CachedInputTokens(4)
	rec.SetResponse(Response{Model: "m-2024-06", ID: "chatcmpl-1", FinishReasons: []string{"length", "stop"}})
	rec.End(nil)
	rec.SetResponse(Response{Model: "late"}) // after End: nothing
	span.End()
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range sr.Ended()[0].Attributes() {
		attrs[kv.Key] = kv.Value
	}
	if got := attrs[genai.ResponseModelKey].AsString(); got != "m-2024-06" {
		t.Errorf("gen_ai.response.model = %q", got)
	}
	if got := attrs[genai.ResponseIDKey].AsString(); got != "chatcmpl-1" {
		t.Errorf("gen_ai.response.id = %q", got)
	}
	if got := attrs[genai.ResponseFinishReasonsKey].AsStringSlice(); strings.Join(got, ",") != "length,stop" {
		t.Errorf("gen_ai.response.finish_reasons = %v", got)
	}
	if got := attrs[genai.UsageCacheReadInputKey].AsInt64(); got != 4 {
		t.Errorf("gen_ai.usage.cache_read.input_tokens = %d", got)
	}
	c, _ := m.requests.GetMetricWithLabelValues("chat", "m", "length")
	if got := testutil.ToFloat64(c); got != 1 {
		t.Errorf("requests{finish_reason=length} = %v", got)
	}
}

// Finish reasons are normalized to a fixed set, so the label is bounded; the
// recorder sets abort and error from End's error (vLLM's
// vllm:request_success_total{finished_reason} has stop, length, abort).
func TestFinishReasons(t *testing.T) {
	tests := []struct {
		reason string
		err    error
		want   string
	}{
		{"stop", nil, FinishStop},
		{"eos_token", nil, FinishStop},     // TGI
		{"stop_sequence", nil, FinishStop}, // TGI, Anthropic
		{"end_turn", nil, FinishStop},      // Anthropic
		{"length", nil, FinishLength},
		{"max_tokens", nil, FinishLength},
		{"content_filter", nil, FinishContentFilter},
		{"tool_calls", nil, FinishToolCalls},
		{"function_call", nil, FinishToolCalls},
		{"abort", nil, FinishAbort},
		{"weird", nil, FinishOther},
		{"", nil, FinishUnknown},
		{"stop", context.Canceled, FinishAbort},
		{"", errors.New("boom"), FinishError},
		{"length", context.DeadlineExceeded, FinishError},
	}
	for _, tt := range tests {
		t.Run(tt.reason+"/"+ErrorType(tt.err), func(t *testing.T) {
			m, _, _ := newTestMetrics(t)
			_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
			rec.SetResponse(Response{FinishReasons: []string{tt.reason}})
			rec.End(tt.err)
			if n := testutil.CollectAndCount(m, "inference_requests_total"); n != 1 {
				t.Fatalf("series = %d", n)
			}
			c, _ := m.requests.GetMetricWithLabelValues("chat", "m", tt.want)
			if got := testutil.ToFloat64(c); got != 1 {
				t.Errorf("requests{finish_reason=%q} = %v, want 1", tt.want, got)
			}
		})
	}
}

func TestResponseNilAndZero(t *testing.T) {
	var nilRec *Recorder
	var zero Recorder
	for _, r := range []*Recorder{nilRec, &zero} {
		r.CachedInputTokens(1)
		r.SetUsage(1, 2, 3)
		r.SetResponse(Response{Model: "x", FinishReasons: []string{"stop"}})
		if r.CachedTokens() != 0 {
			t.Errorf("cached = %d", r.CachedTokens())
		}
	}
}

// Concurrent streaming reports and a usage report: the counter ends at the
// highest total, never below what was counted.
func TestSetUsageConcurrent(t *testing.T) {
	m, _, _ := newTestMetrics(t)
	_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				rec.OutputTokens(1)
				rec.CachedInputTokens(1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rec.SetUsage(10, 500, -1)
		rec.SetResponse(Response{FinishReasons: []string{"stop"}})
	}()
	wg.Wait()
	rec.End(nil)
	_, out := rec.Tokens()
	if got := tokenCount(t, m, "output"); got < float64(out) || got < 500 || got > 1300 {
		t.Errorf("output counter = %v with total %d", got, out)
	}
	if got := tokenCount(t, m, "cache_read"); got != 800 {
		t.Errorf("cache_read = %v, want 800", got)
	}
}

// The new methods cost no allocation on a recorder without a recording span.
func TestResponseAllocs(t *testing.T) {
	m, _, _ := newTestMetrics(t)
	_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
	rec.CachedInputTokens(1) // resolves the lazy series once
	reasons := []string{"stop"}
	if n := testing.AllocsPerRun(100, func() {
		rec.CachedInputTokens(1)
		rec.SetUsage(10, 20, 5)
		rec.SetResponse(Response{Model: "m", ID: "x", FinishReasons: reasons})
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
	rec.End(nil)
}
