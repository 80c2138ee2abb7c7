package inference

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/genai"
)

type ctxKey struct{}

// recorderCtx is the context Start returns: it carries the recorder without a
// separate context.WithValue allocation. Done, Err and Deadline are the
// parent's, so cancellation propagates exactly as through the parent.
type recorderCtx struct {
	context.Context
	rec Recorder
}

func (c *recorderCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return &c.rec
	}
	return c.Context.Value(key)
}

// FromContext returns the recorder that Start stored in ctx, or nil. The
// methods of a nil *Recorder do nothing, so handler code can call them
// without checking.
func FromContext(ctx context.Context) *Recorder {
	if ctx == nil {
		return nil
	}
	r, _ := ctx.Value(ctxKey{}).(*Recorder)
	return r
}

// Recorder records one inference request; Metrics.Start returns it. Its
// methods are safe for concurrent use (a streaming handler may report tokens
// from several goroutines) and do nothing on a nil or zero Recorder or after
// End.
type Recorder struct {
	m     *Metrics
	s     *series
	span  trace.Span    // the span of Start's ctx when it was recording, else nil
	tid   trace.TraceID // the trace id of Start's ctx when sampled: the exemplars' trace_id
	start time.Time

	in, out, cached atomic.Int64 // token totals
	// inHW, outHW and cachedHW are what inference_tokens_total was raised
	// by: the highest total so far (SetUsage may lower a total, never the
	// counter).
	inHW, outHW, cachedHW atomic.Int64
	// outShard is where OutputTokens counts: the series' output-token
	// counter gets it at Collect and End. outRaised is set once SetUsage
	// took over the output total: from then on OutputTokens raises the
	// counter to outHW as InputTokens does (SetUsage may have lowered the
	// total); before, every token added is a token counted.
	outShard  *tokenShard
	outRaised atomic.Bool
	first     atomic.Int64 // time to first token in ns; 0 until the first token
	firstN    atomic.Int64 // tokens the first OutputTokens call delivered
	sched     atomic.Int64 // arrival to Scheduled in ns; 0 until Scheduled
	finish    atomic.Int32 // finish reason index SetResponse stored; 0 if none
	// end is nil until End, then points at the error End was given. One
	// pointer, so Ended never sees "ended" without its error.
	end atomic.Pointer[error]
}

// Errors End points at without allocating: the nil error and the context
// errors a canceled or timed-out request ends with.
var (
	endNil      error
	endCanceled error = context.Canceled
	endDeadline error = context.DeadlineExceeded
)

func (r *Recorder) isEnded() bool { return r.end.Load() != nil }

// InputTokens adds n input (prompt) tokens. n <= 0 does nothing.
func (r *Recorder) InputTokens(n int) {
	if r == nil || r.s == nil || n <= 0 || r.isEnded() {
		return
	}
	raiseTo(&r.inHW, r.in.Add(int64(n)), r.s.inTokens)
}

// OutputTokens adds n generated tokens. The first call with n > 0 marks the
// first token: it fixes the time to first token and adds the
// gen_ai.first_token event to a recording span. n <= 0 does nothing.
// Streams of one model on different cores do not contend: the tokens are
// counted in shards of the series that every Collect (so every scrape) and
// the recorder's End add to inference_tokens_total.
func (r *Recorder) OutputTokens(n int) {
	if r == nil || r.s == nil || n <= 0 || r.isEnded() {
		return
	}
	if r.first.Load() == 0 {
		r.markFirst(int64(n))
	}
	v := r.out.Add(int64(n))
	if r.outRaised.Load() {
		raiseTo(&r.outHW, v, r.s.outTokens)
		return
	}
	// An add to the recorder's own cache line and to a shard the series'
	// other streams mostly do not share: no contended counter per token.
	r.outShard.n.Add(int64(n))
}

// Scheduled marks the moment the engine's scheduler took the request up
// (its first prefill step): arrival to now is the queue time, now to the
// first token the prefill time. Only the first call counts; a recorder
// never marked observes neither (decode time, first token to the last, is
// observed either way).
func (r *Recorder) Scheduled() {
	if r == nil || r.s == nil || r.isEnded() || r.sched.Load() != 0 {
		return
	}
	d := int64(r.m.cfg.now().Sub(r.start))
	if d <= 0 {
		d = 1
	}
	r.sched.CompareAndSwap(0, d)
}

// TimeToFirstToken returns the time from Start to the first token
// OutputTokens marked, 0 when none was (or on nil).
func (r *Recorder) TimeToFirstToken() time.Duration {
	if r == nil {
		return 0
	}
	return time.Duration(r.first.Load())
}

func (r *Recorder) markFirst(n int64) {
	d := int64(r.m.cfg.now().Sub(r.start))
	if d <= 0 {
		d = 1 // 0 means "no first token yet"
	}
	if !r.first.CompareAndSwap(0, d) {
		return
	}
	r.firstN.Store(n)
	if r.span != nil {
		r.span.AddEvent(genai.FirstTokenEvent)
	}
}

// End completes the recording: it observes the duration (labelled with
// ErrorType(err) when err is not nil) and, for a successful request, the time
// to first token, time per output token and decode rate, and sets the usage
// attributes on the span. Time per output token and the decode rate need
// tokens reported after the first OutputTokens call: a request whose output
// arrived in one call (a non-streaming handler reporting usage at the end)
// timed no decoding, so it observes neither rather than a rate near infinity.
// Only the first End counts; later calls do nothing.
func (r *Recorder) End(err error) {
	if r == nil || r.s == nil || r.isEnded() {
		return
	}
	p := &endNil
	switch err {
	case nil:
	case context.Canceled:
		p = &endCanceled
	case context.DeadlineExceeded:
		p = &endDeadline
	default:
		e := err
		p = &e
	}
	if !r.end.CompareAndSwap(nil, p) {
		return
	}
	r.outShard.flushTo(r.s.outTokens) // the request's tokens are in the counter once it ended
	s := r.s
	now := r.m.cfg.now()
	d := now.Sub(r.start)
	in, out, first := r.in.Load(), r.out.Load(), time.Duration(r.first.Load())
	var errType string
	if err == nil {
		s.durationOK.Observe(d.Seconds(), r.tid, now)
		s.promptLen.Observe(float64(in))
		s.genLen.Observe(float64(out))
		sched := time.Duration(r.sched.Load())
		if sched > 0 {
			s.queue.Observe(sched.Seconds())
			if first >= sched {
				s.prefill.Observe((first - sched).Seconds())
			}
		}
		if first > 0 {
			s.decode.Observe(max(d-first, 0).Seconds())
			s.ttft.Observe(first.Seconds(), r.tid, now)
			if decode := d - first; out > 1 && out > r.firstN.Load() && decode > 0 {
				s.tpot.Observe(decode.Seconds()/float64(out-1), r.tid, now)
				s.tps.Observe(float64(out-1) / decode.Seconds())
			}
		}
	} else {
		errType = ErrorType(err)
		s.errorDuration(r.m, errType).Observe(d.Seconds(), r.tid, now)
	}
	s.requestsFor(r.m, r.finishReason(err)).Inc()
	// Last: a scrape that sees the request no longer active sees it done
	// (Collect reads the gauge first).
	s.active.Dec()
	if r.span != nil {
		r.endSpan(in, out, r.cached.Load(), errType)
	}
}

func (r *Recorder) endSpan(in, out, cached int64, errType string) {
	r.span.SetAttributes(
		genai.UsageInputTokensKey.Int64(in),
		genai.UsageOutputTokensKey.Int64(out),
	)
	if cached > 0 {
		r.span.SetAttributes(genai.UsageCacheReadInputKey.Int64(cached))
	}
	if errType != "" {
		r.span.SetAttributes(genai.ErrorTypeKey.String(errType))
		r.span.SetStatus(codes.Error, errType)
	}
}

// Ended reports whether End was called and the error it was called with
// (nil for a request that succeeded). A middleware that ends the recorder
// itself when the handler returns reads it first to learn whether the
// handler finished the request: ended with nil, or with an error of its
// own, it did; ended with context.Canceled, or not ended, it did not say so.
// It returns false, nil on a nil *Recorder and is safe for concurrent use.
func (r *Recorder) Ended() (ended bool, err error) {
	if r == nil {
		return false, nil
	}
	p := r.end.Load()
	if p == nil {
		return false, nil
	}
	return true, *p
}

// Tokens returns the input and output tokens recorded so far (0, 0 on nil).
func (r *Recorder) Tokens() (input, output int64) {
	if r == nil {
		return 0, 0
	}
	return r.in.Load(), r.out.Load()
}

// Request returns the operation and model the recorder's series are labelled
// with, after the cardinality bounds ("other" for a model beyond them).
func (r *Recorder) Request() Request {
	if r == nil || r.s == nil {
		return Request{}
	}
	return Request{Model: r.s.model, Operation: r.s.op}
}
