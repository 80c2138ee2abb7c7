package inference

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/modeltel/modeltel/internal/genai"
	"github.com/modeltel/modeltel/internal/testkit"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestMetrics(t *testing.T, opts ...Option) (*Metrics, *fakeClock, *prometheus.Registry) {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	m := NewMetrics(append(opts, withClock(clk.now))...)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	return m, clk, reg
}

// A streamed request: 0.25 s to the first token, then 10 more tokens over
// 1 s, so duration 1.25 s, TPOT 0.1 s, decode rate 10 tokens/s.
func TestRecorderStreamExact(t *testing.T) {
	m, clk, reg := newTestMetrics(t)
	_, rec := m.Start(context.Background(), Request{Model: "llama-3-8b", Operation: "chat"})
	rec.InputTokens(12)
	if got := testutil.ToFloat64(m.active); got != 1 {
		t.Fatalf("active = %v during the request, want 1", got)
	}
	clk.advance(250 * time.Millisecond)
	rec.OutputTokens(1)
	for range 10 {
		clk.advance(100 * time.Millisecond)
		rec.OutputTokens(1)
	}
	rec.OutputTokens(0) // ignored
	rec.InputTokens(-3) // ignored
	rec.End(nil)
	rec.End(errors.New("second End does nothing"))
	rec.OutputTokens(5) // after End: ignored

	want := `
# HELP gen_ai_server_time_per_output_token_seconds Time per output token generated after the first token, for successful requests.
# TYPE gen_ai_server_time_per_output_token_seconds histogram
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.01"} 0
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.025"} 0
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.05"} 0
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.075"} 0
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.1"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.15"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.2"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.3"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.4"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.5"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="0.75"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="1"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="2.5"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",le="+Inf"} 1
gen_ai_server_time_per_output_token_seconds_sum{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b"} 0.1
gen_ai_server_time_per_output_token_seconds_count{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b"} 1
# HELP inference_requests_active Inference requests in flight.
# TYPE inference_requests_active gauge
inference_requests_active{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b"} 0
# HELP inference_tokens_total Input and output tokens processed; cache_read counts the input tokens served from the prompt cache, a subset of input.
# TYPE inference_tokens_total counter
inference_tokens_total{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",gen_ai_token_type="input"} 12
inference_tokens_total{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",gen_ai_token_type="output"} 11
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"gen_ai_server_time_per_output_token_seconds", "inference_requests_active", "inference_tokens_total"); err != nil {
		t.Error(err)
	}
	checkHist(t, reg, "gen_ai_server_request_duration_seconds", 1, 1.25)
	checkHist(t, reg, "gen_ai_server_time_to_first_token_seconds", 1, 0.25)
	checkHist(t, reg, "inference_output_tokens_per_second", 1, 10)
	if in, out := rec.Tokens(); in != 12 || out != 11 {
		t.Errorf("Tokens() = %d, %d; want 12, 11", in, out)
	}
	testkit.Lint(t, m)
}

// checkHist checks the single series of a histogram family: its count and sum.
func checkHist(t *testing.T, reg prometheus.Gatherer, name string, count uint64, sum float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s: %d series, want 1", name, len(mf.GetMetric()))
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != count || !close(h.GetSampleSum(), sum) {
			t.Errorf("%s: count %d sum %v, want %d %v", name, h.GetSampleCount(), h.GetSampleSum(), count, sum)
		}
		return
	}
	if count != 0 {
		t.Errorf("%s: not gathered", name)
	}
}

func close(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

// TestRecorderOneBatch: a handler that reports all its output in one call
// (usage at the end of a non-streaming answer) timed no decoding: its time to
// first token is observed, its time per output token and decode rate are not.
// A stream whose first call carries several tokens still is.
func TestRecorderOneBatch(t *testing.T) {
	tests := []struct {
		name    string
		batches []int // OutputTokens calls, 100 ms apart; End 50 ms after the last
		want    uint64
		tpot    float64 // (duration - TTFT) / (output - 1)
		rate    float64 // its inverse
	}{
		{"all at once", []int{40}, 0, 0, 0},
		{"first batch then more", []int{4, 1, 1}, 1, 0.25 / 5, 5 / 0.25},
		{"one by one", []int{1, 1, 1}, 1, 0.25 / 2, 2 / 0.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clk, reg := newTestMetrics(t)
			_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
			for _, n := range tt.batches {
				clk.advance(100 * time.Millisecond)
				rec.OutputTokens(n)
			}
			clk.advance(50 * time.Millisecond)
			rec.End(nil)
			checkHist(t, reg, "gen_ai_server_time_to_first_token_seconds", 1, 0.1)
			checkHist(t, reg, "gen_ai_server_time_per_output_token_seconds", tt.want, tt.tpot)
			checkHist(t, reg, "inference_output_tokens_per_second", tt.want, tt.rate)
		})
	}
}

func TestRecorderOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		outputs    int // tokens, one per 100 ms after a 100 ms TTFT
		err        error
		wantErrTyp string
		wantTTFT   uint64
		wantTPOT   uint64
	}{
		{"ok no tokens", 0, nil, "", 0, 0},
		{"ok one token", 1, nil, "", 1, 0},
		{"ok two tokens", 2, nil, "", 1, 1},
		{"canceled", 3, fmt.Errorf("stream: %w", context.Canceled), "canceled", 0, 0},
		{"deadline", 3, context.DeadlineExceeded, "deadline_exceeded", 0, 0},
		{"typed", 0, typedErr("rate_limited"), "rate_limited", 0, 0},
		{"other", 0, errors.New("boom"), "_OTHER", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clk, reg := newTestMetrics(t)
			_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
			for i := range tt.outputs {
				clk.advance(100 * time.Millisecond)
				rec.OutputTokens(1)
				_ = i
			}
			clk.advance(100 * time.Millisecond)
			rec.End(tt.err)
			dur := (time.Duration(tt.outputs+1) * 100 * time.Millisecond).Seconds()
			// The success series exists from Start on (children are resolved
			// once), so a failed request leaves it at zero.
			want := `
# HELP gen_ai_server_request_duration_seconds Generative AI server request duration, to the last output token; error_type is set when the request failed.
# TYPE gen_ai_server_request_duration_seconds histogram
`
			okSum, okCount := dur, 1
			if tt.err != nil {
				okSum, okCount = 0, 0
			}
			want += fmt.Sprintf(`gen_ai_server_request_duration_seconds_sum{error_type="",gen_ai_operation_name="chat",gen_ai_request_model="m"} %v
gen_ai_server_request_duration_seconds_count{error_type="",gen_ai_operation_name="chat",gen_ai_request_model="m"} %d
`, okSum, okCount)
			if tt.err != nil {
				want += fmt.Sprintf(`gen_ai_server_request_duration_seconds_sum{error_type=%q,gen_ai_operation_name="chat",gen_ai_request_model="m"} %v
gen_ai_server_request_duration_seconds_count{error_type=%q,gen_ai_operation_name="chat",gen_ai_request_model="m"} 1
`, tt.wantErrTyp, dur, tt.wantErrTyp)
			}
			if err := compareSumCount(m, want, "gen_ai_server_request_duration_seconds"); err != nil {
				t.Error(err)
			}
			checkHist(t, reg, "gen_ai_server_time_to_first_token_seconds", tt.wantTTFT, 0.1*float64(tt.wantTTFT))
			// TPOT = (duration - TTFT) / (outputs - 1): the tail after the
			// last token counts, as the convention defines it.
			checkHist(t, reg, "gen_ai_server_time_per_output_token_seconds", tt.wantTPOT, 0.2*float64(tt.wantTPOT))
			testkit.Lint(t, m)
		})
	}
}

type typedErr string

func (e typedErr) Error() string     { return string(e) }
func (e typedErr) ErrorType() string { return string(e) }

// compareSumCount compares only the _sum and _count lines of a histogram,
// so tests of outcomes need not list every bucket.
func compareSumCount(c prometheus.Collector, want, name string) error {
	got, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, name)
	if err != nil {
		return err
	}
	var lines []string
	for _, l := range strings.Split(string(got), "\n") {
		if strings.HasPrefix(l, "#") || strings.Contains(l, "_sum") || strings.Contains(l, "_count") {
			lines = append(lines, l)
		}
	}
	if g, w := strings.TrimSpace(strings.Join(lines, "\n")), strings.TrimSpace(want); g != w {
		return fmt.Errorf("got:\n%s\nwant:\n%s", g, w)
	}
	return nil
}

func TestModelCardinality(t *testing.T) {
	tests := []struct {
		name   string
		opts   []Option
		models []string
		want   map[string]int // model label -> requests
	}{
		{"cap", []Option{WithMaxModels(2)}, []string{"a", "b", "c", "a", "d", "b"},
			map[string]int{"a": 2, "b": 2, OtherModel: 2}},
		{"allowlist", []Option{WithModels("b", "z")}, []string{"a", "b", "c", "z"},
			map[string]int{"b": 1, "z": 1, OtherModel: 2}},
		{"a thousand names", []Option{WithMaxModels(3)}, thousand(),
			map[string]int{"m0": 1, "m1": 1, "m2": 1, OtherModel: 997}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _ := newTestMetrics(t, tt.opts...)
			for _, model := range tt.models {
				_, rec := m.Start(context.Background(), Request{Model: model, Operation: "chat"})
				rec.InputTokens(1)
				rec.End(nil)
			}
			for model, n := range tt.want {
				got := testutil.ToFloat64(m.tokens.WithLabelValues("chat", model, "input"))
				if got != float64(n) {
					t.Errorf("tokens{model=%q} = %v, want %d", model, got, n)
				}
			}
			// tokens_total has two series (input, output) per model label.
			if n := testutil.CollectAndCount(m, "inference_tokens_total"); n != 2*len(tt.want) {
				t.Errorf("inference_tokens_total series = %d, want %d", n, 2*len(tt.want))
			}
			if n := m.series.Len(); n > len(tt.want) {
				t.Errorf("cache holds %d pairs, want at most %d", n, len(tt.want))
			}
			testkit.Lint(t, m)
		})
	}
}

func thousand() []string {
	s := make([]string, 1000)
	for i := range s {
		s[i] = fmt.Sprintf("m%d", i)
	}
	return s
}

func TestOperationCap(t *testing.T) {
	m, _, _ := newTestMetrics(t, WithMaxOperations(1))
	for _, op := range []string{"chat", "embeddings", "chat"} {
		_, rec := m.Start(context.Background(), Request{Model: "m", Operation: op})
		rec.End(nil)
	}
	if got := testutil.CollectAndCount(m, "gen_ai_server_request_duration_seconds"); got != 2 {
		t.Errorf("duration series = %d, want 2 (chat, other)", got)
	}
}

func TestNilSafety(t *testing.T) {
	var m *Metrics
	ctx, rec := m.Start(context.Background(), Request{Model: "x"})
	if rec != nil || ctx == nil {
		t.Fatalf("nil Metrics: Start = %v, %v", ctx, rec)
	}
	for _, r := range []*Recorder{rec, FromContext(context.Background()), FromContext(nilCtx())} {
		r.InputTokens(1)
		r.OutputTokens(1)
		r.End(nil)
		if in, out := r.Tokens(); in != 0 || out != 0 {
			t.Errorf("nil recorder tokens = %d, %d", in, out)
		}
		_ = r.Request()
		if ended, err := r.Ended(); ended || err != nil {
			t.Errorf("nil recorder Ended = %v, %v", ended, err)
		}
	}
}

// Ended reports the first End and its error; later Ends change nothing.
func TestRecorderEnded(t *testing.T) {
	custom := errors.New("boom")
	wrapped := fmt.Errorf("x: %w", context.Canceled)
	tests := []struct {
		name      string
		ends      []error // calls to End, in order; nil slice: none
		wantEnded bool
		wantErr   error
	}{
		{"not ended", nil, false, nil},
		{"nil", []error{nil}, true, nil},
		{"canceled", []error{context.Canceled}, true, context.Canceled},
		{"deadline", []error{context.DeadlineExceeded}, true, context.DeadlineExceeded},
		{"wrapped canceled", []error{wrapped}, true, wrapped},
		{"custom", []error{custom}, true, custom},
		{"first wins", []error{nil, context.Canceled}, true, nil},
		{"first error wins", []error{custom, nil}, true, custom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _ := newTestMetrics(t)
			_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
			for _, e := range tt.ends {
				rec.End(e)
			}
			ended, err := rec.Ended()
			if ended != tt.wantEnded || err != tt.wantErr {
				t.Errorf("Ended() = %v, %v; want %v, %v", ended, err, tt.wantEnded, tt.wantErr)
			}
		})
	}
}

// Ended is consistent when End races with it: once ended, the error is the
// one End was given.
func TestRecorderEndedConcurrent(t *testing.T) {
	m, _, _ := newTestMetrics(t)
	for range 50 {
		_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
		var wg sync.WaitGroup
		wg.Go(func() { rec.End(context.Canceled) })
		wg.Go(func() {
			if ended, err := rec.Ended(); ended && err != context.Canceled {
				t.Errorf("Ended() = true, %v", err)
			}
		})
		wg.Wait()
	}
}

func TestFromContextAfterEnd(t *testing.T) {
	m, _, _ := newTestMetrics(t)
	ctx, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	if FromContext(child) != rec {
		t.Fatal("FromContext(child of Start's ctx) is not the recorder")
	}
	rec.End(nil)
	FromContext(child).OutputTokens(3) // safe and ignored after End
	if _, out := rec.Tokens(); out != 0 {
		t.Errorf("tokens after End counted: %d", out)
	}
	if got := testutil.ToFloat64(m.tokens.WithLabelValues("chat", "m", "output")); got != 0 {
		t.Errorf("output tokens counter = %v after End, want 0", got)
	}
}

// Cancellation of the parent reaches contexts derived from Start's context.
func TestStartContextPropagatesCancel(t *testing.T) {
	m, _, _ := newTestMetrics(t)
	parent, cancel := context.WithCancel(context.Background())
	ctx, rec := m.Start(parent, Request{Model: "m", Operation: "chat"})
	child, cancelChild := context.WithTimeout(ctx, time.Hour)
	defer cancelChild()
	cancel()
	<-child.Done()
	if !errors.Is(child.Err(), context.Canceled) {
		t.Errorf("child err = %v", child.Err())
	}
	rec.End(ctx.Err())
}

func TestConcurrentRecorders(t *testing.T) {
	m, _, reg := newTestMetrics(t, WithMaxModels(4))
	const workers, perWorker, tokens = 16, 50, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				ctx, rec := m.Start(context.Background(), Request{Model: fmt.Sprintf("m%d", (w+i)%8), Operation: "chat"})
				var inner sync.WaitGroup
				for range 2 { // two goroutines stream into one recorder
					inner.Add(1)
					go func() {
						defer inner.Done()
						for range tokens / 2 {
							FromContext(ctx).OutputTokens(1)
						}
					}()
				}
				inner.Wait()
				rec.End(nil)
			}
		}()
	}
	wg.Wait()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total, requests float64
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			switch mf.GetName() {
			case "inference_tokens_total":
				total += mt.GetCounter().GetValue()
			case "gen_ai_server_request_duration_seconds":
				requests += float64(mt.GetHistogram().GetSampleCount())
			case "inference_requests_active":
				if v := mt.GetGauge().GetValue(); v != 0 {
					t.Errorf("active = %v after all ended", v)
				}
			}
		}
	}
	if total != workers*perWorker*tokens || requests != workers*perWorker {
		t.Errorf("tokens %v requests %v, want %d %d", total, requests, workers*perWorker*tokens, workers*perWorker)
	}
	if n := testutil.CollectAndCount(m, "inference_requests_active"); n != 5 {
		t.Errorf("active series = %d, want 5 (4 models + other)", n)
	}
}

func TestSpanAttributes(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		outputs   int
		wantEvent bool
		wantErr   string
	}{
		{"ok", nil, 3, true, ""},
		{"canceled before first token", context.Canceled, 0, false, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
			m, clk, _ := newTestMetrics(t)
			ctx, span := genai.StartRequestSpan(context.Background(), tp.Tracer("test"), "chat", "m")
			_, rec := m.Start(ctx, Request{Model: "m", Operation: "chat"})
			rec.InputTokens(7)
			for range tt.outputs {
				clk.advance(time.Millisecond)
				rec.OutputTokens(1)
			}
			rec.End(tt.err)
			span.End()
			spans := sr.Ended()
			if len(spans) != 1 {
				t.Fatalf("spans = %d", len(spans))
			}
			attrs := map[attribute.Key]attribute.Value{}
			for _, kv := range spans[0].Attributes() {
				attrs[kv.Key] = kv.Value
			}
			if got := attrs[genai.UsageInputTokensKey].AsInt64(); got != 7 {
				t.Errorf("input tokens attr = %d", got)
			}
			if got := attrs[genai.UsageOutputTokensKey].AsInt64(); got != int64(tt.outputs) {
				t.Errorf("output tokens attr = %d", got)
			}
			if got := attrs[genai.ErrorTypeKey].AsString(); got != tt.wantErr {
				t.Errorf("error.type = %q, want %q", got, tt.wantErr)
			}
			var events int
			for _, e := range spans[0].Events() {
				if e.Name == genai.FirstTokenEvent {
					events++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tt.wantEvent]; events != want {
				t.Errorf("first-token events = %d, want %d", events, want)
			}
		})
	}
}

func TestNativeHistogramsLint(t *testing.T) {
	m, _, _ := newTestMetrics(t, WithNativeHistograms(0), WithConstLabels(prometheus.Labels{"pool": "a"}),
		WithDurationBuckets([]float64{1, 2}))
	_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
	rec.End(nil)
	testkit.Lint(t, m)
	if n := testutil.CollectAndCount(m, "gen_ai_server_request_duration_seconds"); n != 1 {
		t.Errorf("series = %d", n)
	}
}

// nilCtx returns a nil context, which FromContext must tolerate.
func nilCtx() context.Context { return nil }

func TestBound(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		reqs []Request
		want []Request
	}{
		{"cap", []Option{WithMaxModels(2)},
			[]Request{{"a", "chat"}, {"b", "chat"}, {"c", "chat"}, {"a", "chat"}},
			[]Request{{"a", "chat"}, {"b", "chat"}, {OtherModel, "chat"}, {"a", "chat"}}},
		{"allowlist", []Option{WithModels("b")},
			[]Request{{"a", "chat"}, {"b", "chat"}},
			[]Request{{OtherModel, "chat"}, {"b", "chat"}}},
		{"operations", []Option{WithMaxOperations(1)},
			[]Request{{"a", "chat"}, {"a", "embeddings"}},
			[]Request{{"a", "chat"}, {"a", OtherModel}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _ := newTestMetrics(t, tt.opts...)
			for i, req := range tt.reqs {
				got := m.Bound(req)
				if got != tt.want[i] {
					t.Errorf("Bound(%v) = %v, want %v", req, got, tt.want[i])
				}
				// Starting with the bounded request records the same series.
				_, rec := m.Start(context.Background(), got)
				if rec.Request() != got {
					t.Errorf("Start(Bound(%v)).Request() = %v, want %v", req, rec.Request(), got)
				}
				rec.End(nil)
			}
			if n := testutil.CollectAndCount(m, "gen_ai_server_request_duration_seconds"); n != distinct(tt.want) {
				t.Errorf("duration series = %d, want %d", n, distinct(tt.want))
			}
		})
	}
	var nilM *Metrics
	if got := nilM.Bound(Request{"x", "chat"}); got != (Request{"x", "chat"}) {
		t.Errorf("nil Bound = %v", got)
	}
}

func distinct(reqs []Request) int {
	set := map[Request]bool{}
	for _, r := range reqs {
		set[r] = true
	}
	return len(set)
}

// The zero Recorder (a test fake, a field not yet set) records nothing, as
// the nil one does, instead of panicking in handler code.
func TestZeroRecorder(t *testing.T) {
	var r Recorder
	r.InputTokens(1)
	r.OutputTokens(1)
	r.End(nil)
	r.End(errors.New("x"))
	if in, out := r.Tokens(); in != 0 || out != 0 {
		t.Errorf("zero recorder tokens = %d, %d", in, out)
	}
	if got := r.Request(); got != (Request{}) {
		t.Errorf("zero recorder Request = %v", got)
	}
	if ended, err := r.Ended(); ended || err != nil {
		t.Errorf("zero recorder Ended = %v, %v", ended, err)
	}
}
