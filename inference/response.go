package inference

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/internal/genai"
)

// Response is what the server reported about a completed response: the
// model that generated it (gen_ai.response.model), its identifier
// (gen_ai.response.id, "chatcmpl-123") and the reason each choice stopped
// (gen_ai.response.finish_reasons). Empty fields are left out.
type Response struct {
	Model         string
	ID            string
	FinishReasons []string
}

// Finish reasons: the finish_reason label values of inference_requests_total.
// The reason a server reports is normalized to one of the first four (see
// [Recorder.SetResponse]); the recorder itself sets the other four.
const (
	FinishStop          = "stop"           // a natural stop: end of sequence, a stop sequence
	FinishLength        = "length"         // the max_tokens or context limit
	FinishContentFilter = "content_filter" // output withheld by a filter
	FinishToolCalls     = "tool_calls"     // the model called a tool
	FinishAbort         = "abort"          // the request ended with context.Canceled
	FinishError         = "error"          // the request ended with any other error
	FinishOther         = "other"          // a reported reason none of the above names
	FinishUnknown       = "unknown"        // succeeded with no reason reported
)

// finish reason indices; 0 means none reported.
const (
	finishNone = iota
	finishStop
	finishLength
	finishContentFilter
	finishToolCalls
	finishAbort
	finishError
	finishOther
	finishUnknown
	numFinish
)

var finishNames = [numFinish]string{
	finishNone: "", finishStop: FinishStop, finishLength: FinishLength,
	finishContentFilter: FinishContentFilter, finishToolCalls: FinishToolCalls,
	finishAbort: FinishAbort, finishError: FinishError, finishOther: FinishOther,
	finishUnknown: FinishUnknown,
}

// finishIndex normalizes a reported finish reason: the OpenAI values (stop,
// length, content_filter, tool_calls, function_call), vLLM's (stop, length,
// abort), TGI's (eos_token, stop_sequence, length) and Anthropic's (end_turn,
// stop_sequence, max_tokens, tool_use, refusal). No allocation.
func finishIndex(reason string) int32 {
	switch reason {
	case "":
		return finishNone
	case "stop", "eos_token", "stop_sequence", "end_turn", "eos":
		return finishStop
	case "length", "max_tokens", "model_length":
		return finishLength
	case "content_filter", "refusal", "safety":
		return finishContentFilter
	case "tool_calls", "function_call", "tool_use":
		return finishToolCalls
	case "abort", "cancelled", "canceled":
		return finishAbort
	case "error":
		return finishError
	}
	return finishOther
}

// lazyCounter is a label child resolved on first use, so that a series no
// request reaches is not exposed.
type lazyCounter struct {
	once sync.Once
	c    prometheus.Counter
}

func (l *lazyCounter) get(vec *prometheus.CounterVec, lvs ...string) prometheus.Counter {
	l.once.Do(func() { l.c = vec.WithLabelValues(lvs...) })
	return l.c
}

// raiseTo raises the high-water mark hw to v and adds the rise to c: the
// counter holds the highest total the recorder has had, so it never goes
// down when SetUsage lowers a total.
func raiseTo(hw *atomic.Int64, v int64, c prometheus.Counter) {
	for {
		h := hw.Load()
		if v <= h {
			return
		}
		if hw.CompareAndSwap(h, v) {
			c.Add(float64(v - h))
			return
		}
	}
}

// nopCounter is a counter that counts nothing, for raiseTo to move a
// high-water mark without adding.
type nopCounter struct{ prometheus.Counter }

func (nopCounter) Add(float64) {}

// CachedInputTokens adds n input tokens that were served from the prompt
// (prefix) cache: a subset of the input tokens, as OpenAI's
// usage.prompt_tokens_details.cached_tokens and the convention's
// gen_ai.usage.cache_read.input_tokens ("SHOULD be included in
// gen_ai.usage.input_tokens"). It does not add to InputTokens: report those
// too. They are counted in inference_tokens_total{gen_ai_token_type="cache_read"}
// and set on the span at End. n <= 0 does nothing.
func (r *Recorder) CachedInputTokens(n int) {
	if r == nil || r.s == nil || n <= 0 || r.isEnded() {
		return
	}
	raiseTo(&r.cachedHW, r.cached.Add(int64(n)), r.cachedCounter())
}

// SetUsage sets the input, output and cached input token totals to what the
// server reported (the usage object of a response), which is the truth: the
// recorder's totals (Tokens, the span's usage attributes, time per output
// token at End) become these. inference_tokens_total is raised by the
// difference where a total exceeds what was counted so far; it is never
// lowered. SetUsage does not mark the first token: time to first token stays
// what OutputTokens marked (none, if it was never called). A negative value
// leaves that total as it is.
func (r *Recorder) SetUsage(input, output, cachedInput int64) {
	if r == nil || r.s == nil || r.isEnded() {
		return
	}
	if input >= 0 {
		r.in.Store(input)
		raiseTo(&r.inHW, input, r.s.inTokens)
	}
	if output >= 0 {
		if !r.outRaised.Load() {
			// Every token OutputTokens added so far was counted (in
			// the shard): the total is the high-water mark.
			raiseTo(&r.outHW, r.out.Load(), nopCounter{})
			r.outRaised.Store(true)
		}
		r.out.Store(output)
		raiseTo(&r.outHW, output, r.s.outTokens)
	}
	if cachedInput >= 0 {
		r.cached.Store(cachedInput)
		raiseTo(&r.cachedHW, cachedInput, r.cachedCounter())
	}
}

// SetResponse records what the server reported about the response: the
// response model, id and finish reasons on a recording span
// (gen_ai.response.model, gen_ai.response.id,
// gen_ai.response.finish_reasons), and the first finish reason, normalized,
// for inference_requests_total{finish_reason} at End: stop (also TGI's
// eos_token and stop_sequence, Anthropic's end_turn), length (max_tokens),
// content_filter, tool_calls (function_call, tool_use), abort, and "other"
// for any other non-empty value. A later call replaces the finish reason.
func (r *Recorder) SetResponse(resp Response) {
	if r == nil || r.s == nil || r.isEnded() {
		return
	}
	if len(resp.FinishReasons) > 0 {
		if i := finishIndex(resp.FinishReasons[0]); i != finishNone {
			r.finish.Store(i)
		}
	}
	if r.span == nil {
		return
	}
	if resp.Model != "" {
		r.span.SetAttributes(genai.ResponseModelKey.String(resp.Model))
	}
	if resp.ID != "" {
		r.span.SetAttributes(genai.ResponseIDKey.String(resp.ID))
	}
	if len(resp.FinishReasons) > 0 {
		r.span.SetAttributes(genai.ResponseFinishReasonsKey.StringSlice(resp.FinishReasons))
	}
}

// CachedTokens returns the cached input tokens recorded so far (0 on nil).
func (r *Recorder) CachedTokens() int64 {
	if r == nil {
		return 0
	}
	return r.cached.Load()
}

func (r *Recorder) cachedCounter() prometheus.Counter {
	s := r.s
	return s.cachedTokens.get(r.m.tokens, s.op, s.model, tokenTypeCacheRead)
}

// finishReason returns the finish_reason End counts the request under.
func (r *Recorder) finishReason(err error) int32 {
	switch {
	case err == nil:
		if i := r.finish.Load(); i != finishNone {
			return i
		}
		return finishUnknown
	case ErrorType(err) == "canceled":
		return finishAbort
	}
	return finishError
}

func (s *series) requestsFor(m *Metrics, i int32) prometheus.Counter {
	return s.requests[i].get(m.requests, s.op, s.model, finishNames[i])
}
