package inference

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/modeltel/modeltel/internal/testkit"
)

func gatherOne(t *testing.T, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("%s not gathered", name)
	return nil
}

func labelOf(mm *dto.Metric, name string) (string, bool) {
	for _, lp := range mm.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue(), true
		}
	}
	return "", false
}

// gen_ai.provider.name is Required on gen_ai.server.request.duration,
// gen_ai.server.time_to_first_token and gen_ai.server.time_per_output_token
// (semantic-conventions-genai, gen-ai-metrics.md); server.address is
// Recommended and server.port Conditionally Required when server.address is
// set.
func TestProviderAndServerLabels(t *testing.T) {
	tests := []struct {
		name                 string
		opts                 []Option
		provider, addr, port string
	}{
		{"default", nil, DefaultProviderName, "", ""},
		{"vllm with address", []Option{WithProviderName("vllm"), WithServerAddress("llm.internal", 8000)}, "vllm", "llm.internal", "8000"},
		{"address without port", []Option{WithProviderName(""), WithServerAddress("llm.internal", 0)}, DefaultProviderName, "llm.internal", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clk, _ := newTestMetrics(t, tt.opts...)
			_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
			rec.OutputTokens(1)
			clk.advance(time.Second)
			rec.OutputTokens(1)
			rec.End(nil)
			for _, name := range []string{"gen_ai_server_request_duration_seconds", "gen_ai_server_time_to_first_token_seconds", "gen_ai_server_time_per_output_token_seconds"} {
				mm := gatherOne(t, m, name).GetMetric()[0]
				if v, _ := labelOf(mm, "gen_ai_provider_name"); v != tt.provider {
					t.Errorf("%s gen_ai_provider_name = %q, want %q", name, v, tt.provider)
				}
				if v, _ := labelOf(mm, "server_address"); v != tt.addr {
					t.Errorf("%s server_address = %q, want %q", name, v, tt.addr)
				}
				if v, _ := labelOf(mm, "server_port"); v != tt.port {
					t.Errorf("%s server_port = %q, want %q", name, v, tt.port)
				}
			}
			if m.ProviderName() != tt.provider {
				t.Errorf("ProviderName = %q", m.ProviderName())
			}
			testkit.Lint(t, m)
		})
	}
}

// Queue, prefill and decode time and the prompt and generation lengths: the
// per-request signals of vLLM's dashboard (request_queue_time_seconds,
// request_prefill_time_seconds, request_decode_time_seconds,
// request_prompt_tokens, request_generation_tokens), named as ours.
func TestRequestPhases(t *testing.T) {
	m, clk, _ := newTestMetrics(t)
	_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
	rec.InputTokens(100)
	clk.advance(2 * time.Second) // queued
	rec.Scheduled()
	clk.advance(time.Second)
	rec.Scheduled() // only the first counts
	clk.advance(500 * time.Millisecond)
	rec.OutputTokens(1) // prefill: 1.5 s after scheduling
	clk.advance(4 * time.Second)
	rec.OutputTokens(9) // decode: 4 s
	rec.End(nil)
	for name, want := range map[string]float64{
		"inference_request_queue_time_seconds":   2,
		"inference_request_prefill_time_seconds": 1.5,
		"inference_request_decode_time_seconds":  4,
		"inference_request_prompt_tokens":        100,
		"inference_request_generation_tokens":    10,
	} {
		h := gatherOne(t, m, name).GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 1 || math.Abs(h.GetSampleSum()-want) > 1e-9 {
			t.Errorf("%s = count %d sum %v, want 1, %v", name, h.GetSampleCount(), h.GetSampleSum(), want)
		}
	}
	if got := rec.TimeToFirstToken(); got != 3500*time.Millisecond {
		t.Errorf("TimeToFirstToken = %v", got)
	}

	// Not scheduled: no queue or prefill time; a failed request: none.
	_, rec = m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
	rec.OutputTokens(1)
	rec.End(nil)
	_, rec = m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
	rec.Scheduled()
	rec.End(context.Canceled)
	if c := gatherOne(t, m, "inference_request_queue_time_seconds").GetMetric()[0].GetHistogram().GetSampleCount(); c != 1 {
		t.Errorf("queue samples = %d, want 1", c)
	}
	if c := gatherOne(t, m, "inference_request_decode_time_seconds").GetMetric()[0].GetHistogram().GetSampleCount(); c != 2 {
		t.Errorf("decode samples = %d, want 2", c)
	}
	var nilRec *Recorder
	nilRec.Scheduled()
	if nilRec.TimeToFirstToken() != 0 {
		t.Error("nil TimeToFirstToken")
	}
}

// The engine-state API: vLLM's num_requests_waiting, num_requests_running,
// kv_cache_usage_perc, prefix_cache_queries/hits and num_preemptions.
func TestEngine(t *testing.T) {
	m, _, _ := newTestMetrics(t, WithModels("m"))
	e := m.Engine("m")
	e.SetQueue(3, 8)
	e.SetKVCacheUsage(0.75)
	e.AddPrefixCache(100, 40)
	e.AddPrefixCache(10, 20) // hits capped at queries
	e.AddPrefixCache(-1, 5)  // ignored
	e.AddPreemptions(2)
	e.AddPreemptions(-1)
	other := m.Engine("unlisted")
	other.SetKVCacheUsage(7) // clamped
	other.SetKVCacheUsage(math.NaN())
	other.SetQueue(-1, -2)
	for _, c := range []struct {
		vec   prometheus.Collector
		name  string
		model string
		want  float64
	}{
		{m.waiting, "waiting", "m", 3},
		{m.running, "running", "m", 8},
		{m.kvUsage, "kv", "m", 0.75},
		{m.pcQueries, "queries", "m", 110},
		{m.pcHits, "hits", "m", 50},
		{m.preemptions, "preemptions", "m", 2},
		{m.kvUsage, "kv other", OtherModel, 1},
		{m.waiting, "waiting other", OtherModel, 0},
	} {
		var got float64
		switch v := c.vec.(type) {
		case *prometheus.GaugeVec:
			got = testutil.ToFloat64(v.WithLabelValues(c.model))
		case *prometheus.CounterVec:
			got = testutil.ToFloat64(v.WithLabelValues(c.model))
		}
		if got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	var nilE *Engine
	nilE.SetQueue(1, 1)
	nilE.SetKVCacheUsage(1)
	nilE.AddPrefixCache(1, 1)
	nilE.AddPreemptions(1)
	var nilM *Metrics
	if nilM.Engine("x") != nil {
		t.Error("nil Metrics Engine != nil")
	}
	if n := testing.AllocsPerRun(100, func() { e.SetQueue(1, 2); e.SetKVCacheUsage(0.5); e.AddPrefixCache(4, 2); e.AddPreemptions(1) }); n != 0 {
		t.Errorf("engine allocs = %v", n)
	}
	testkit.Lint(t, m)
}

// classicQuantile is PromQL's histogram_quantile over classic buckets: linear
// interpolation inside the bucket, and the last finite boundary when the
// quantile falls in the +Inf bucket (the clamping this test is about).
func classicQuantile(q float64, h *dto.Histogram) float64 {
	total := float64(h.GetSampleCount())
	rank := q * total
	lower, prev := 0.0, 0.0
	for _, b := range h.GetBucket() {
		c := float64(b.GetCumulativeCount())
		if c >= rank {
			return lower + (b.GetUpperBound()-lower)*(rank-prev)/(c-prev)
		}
		lower, prev = b.GetUpperBound(), c
	}
	return lower // in the +Inf bucket: the highest finite boundary
}

// nativeQuantileBucket returns the bounds of the native-histogram bucket the
// q-quantile falls in: bucket i of schema s spans (base^(i-1), base^i] with
// base = 2^(2^-s).
func nativeQuantileBucket(q float64, h *dto.Histogram) (lo, hi float64) {
	base := math.Pow(2, math.Pow(2, -float64(h.GetSchema())))
	rank := q * float64(h.GetSampleCount())
	cum := float64(h.GetZeroCount())
	var idx int32
	var count int64
	d := 0
	for _, sp := range h.GetPositiveSpan() {
		idx += sp.GetOffset()
		for range sp.GetLength() {
			count += h.GetPositiveDelta()[d]
			d++
			cum += float64(count)
			if cum >= rank {
				return math.Pow(base, float64(idx-1)), math.Pow(base, float64(idx))
			}
			idx++
		}
	}
	return math.Inf(1), math.Inf(1)
}

// The convention's request-duration buckets stop at 81.92 s, so with them the
// p99 of 300 s requests reads 81.92 s: clamped. WithExtendedBuckets measures
// it in (163.84, 327.68], and native histograms (WithNativeHistograms, next
// to the classic buckets: Prometheus 3 scrapes both) within the factor.
func TestLongTailQuantile(t *testing.T) {
	run := func(opts ...Option) *dto.Histogram {
		m, clk, _ := newTestMetrics(t, opts...)
		for range 100 {
			_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
			rec.OutputTokens(1)
			clk.advance(300 * time.Second)
			rec.End(nil)
		}
		return gatherOne(t, m, "gen_ai_server_request_duration_seconds").GetMetric()[0].GetHistogram()
	}
	if got := classicQuantile(0.99, run()); got != 81.92 {
		t.Errorf("default buckets p99 = %v, want the clamp 81.92 (the semconv boundaries stay the default)", got)
	}
	if got := classicQuantile(0.99, run(WithExtendedBuckets())); got <= 163.84 || got > 327.68 {
		t.Errorf("extended buckets p99 = %v, want in (163.84, 327.68]", got)
	}
	h := run(WithNativeHistograms(1.1))
	if got := classicQuantile(0.99, h); got != 81.92 {
		t.Errorf("classic p99 next to native = %v, want 81.92 (classic buckets unchanged)", got)
	}
	lo, hi := nativeQuantileBucket(0.99, h)
	if !(lo < 300 && 300 <= hi && hi/lo <= 1.1) {
		t.Errorf("native p99 bucket = (%v, %v], want one that holds 300 within factor 1.1", lo, hi)
	}
	// Buckets the caller set are kept under WithExtendedBuckets.
	m, _, _ := newTestMetrics(t, WithExtendedBuckets(), WithTTFTBuckets([]float64{1, 2}))
	if len(m.cfg.ttftBuckets) != 2 || len(m.cfg.durationBuckets) != len(DurationBuckets)+len(DurationTailBuckets) {
		t.Errorf("buckets = %v / %v", m.cfg.ttftBuckets, m.cfg.durationBuckets)
	}
	if len(DurationBuckets) != 14 || DurationBuckets[13] != 81.92 || TTFTBuckets[len(TTFTBuckets)-1] != 10 {
		t.Error("the default buckets changed: they are the convention's advisory boundaries")
	}
}
