package middleware

import (
	"net/http"
	"strings"
	"sync"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/openaistream"
	"github.com/modeltel/modeltel/internal/respwriter"
)

// WithResponseAccounting makes the middleware read the OpenAI-style response
// of every request with an inference recorder for which f returns true (see
// OpenAIRoutes), and record its tokens from the response itself, for
// handlers that do not call the recorder (a proxy in front of vLLM, say):
//
//   - a text/event-stream response is read event by event: the first chunk
//     with content marks the first token (time to first token), each chunk
//     with content counts one output token, and the final usage chunk, when
//     the server sends one, is the truth for the input, output and cached
//     input tokens (the counts are raised to it, never lowered);
//     The stream's "data: [DONE]" ends the recording (as a handler that
//     ends the recorder after its last event does), so a client that closes
//     the connection once it has read it is not recorded as gone;
//   - an application/json response is read at its end: its usage gives the
//     tokens (no first token: a non-streamed answer has no time to first
//     token to measure), its model, id and finish reasons the response.
//
// The client gets every byte as the handler wrote it, flushed when the
// handler flushes; http.ResponseController works as without it. Memory is
// bounded (64 KiB per request at worst, nothing per event), and a body that
// is not OpenAI's, or garbage, records no tokens.
//
// A handler that reports to the recorder itself is left alone: accounting
// stops as soon as the recorder holds tokens it did not add (checked at each
// content chunk and when the handler returns), so a handler that reports
// its input tokens before it writes, as handlers do, is never counted
// twice. nil f (the default of New) accounts nothing; modeltel.Start sets
// OpenAIRoutes.
func WithResponseAccounting(f func(*http.Request) bool) Option {
	return optionFunc(func(c *config) { c.account = f })
}

// OpenAIRoutes reports whether r is a POST to an OpenAI-style endpoint that
// answers with usage: a path ending in /v1/chat/completions,
// /v1/completions or /v1/embeddings. It is the WithResponseAccounting func
// of modeltel.Start.
func OpenAIRoutes(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	for _, s := range openAIPaths {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

var openAIPaths = [...]string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}

// accountant reads one response for its recorder: the Observer of the
// response writer.
type accountant struct {
	p       openaistream.Parser
	rec     *inference.Recorder
	st      *respwriter.State
	started bool  // the first body byte was seen
	off     bool  // nothing (more) to do: not OpenAI's, or the handler reports
	mine    int64 // output tokens this accountant added
}

var accountants = sync.Pool{New: func() any { return new(accountant) }}

// startAccounting attaches an accountant to st when r is to be accounted;
// it returns nil otherwise. Call finish when the handler returned.
func (m *Middleware) startAccounting(r *http.Request, rec *inference.Recorder, st *respwriter.State) *accountant {
	if rec == nil || m.cfg.account == nil || !m.accounts(r) {
		return nil
	}
	a := accountants.Get().(*accountant)
	a.rec, a.st, a.started, a.off, a.mine = rec, st, false, false, 0
	st.Observer = a
	return a
}

// accounts runs the user's func; a panic in it means no accounting.
func (m *Middleware) accounts(r *http.Request) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return m.cfg.account(r)
}

// Observe implements respwriter.Observer.
func (a *accountant) Observe(b []byte) {
	if a.off {
		return
	}
	if !a.started {
		a.started = true
		h := a.st.Header()
		k := openaistream.KindOf(h.Get("Content-Type"), h.Get("Content-Encoding"))
		if k == openaistream.None || a.st.Status < 200 || a.st.Status >= 300 {
			a.off = true
			return
		}
		a.p.Reset(k)
	}
	if n := a.p.Feed(b); n > 0 {
		a.count(n)
	}
	if a.p.Done() && !a.off {
		a.complete()
	}
}

// complete ends the recording at the stream's [DONE]: the answer is whole,
// so a client that closes the connection as soon as it read it (as the
// OpenAI SDKs do) is not counted as gone, and the duration ends with the
// answer.
func (a *accountant) complete() {
	a.off = true
	a.st.Complete = true
	if a.handlerReports() {
		return
	}
	a.p.Finish()
	a.record(a.p.Result())
	a.rec.End(nil)
}

// handlerReports reports whether the recorder holds tokens the accountant
// did not add, or was ended: the handler records the request itself.
func (a *accountant) handlerReports() bool {
	in, out := a.rec.Tokens()
	ended, _ := a.rec.Ended()
	return in != 0 || out != a.mine || ended
}

func (a *accountant) count(n int) {
	if a.handlerReports() {
		a.off = true
		return
	}
	a.rec.OutputTokens(n)
	a.mine += int64(n)
}

// finish reads the end of the response and records its usage, then returns
// a to the pool. A nil a does nothing.
func (a *accountant) finish() {
	if a == nil {
		return
	}
	a.st.Observer = nil
	if a.started && !a.off {
		if n := a.p.Finish(); n > 0 {
			a.count(n)
		}
		if !a.off && !a.handlerReports() {
			a.record(a.p.Result())
		}
	}
	a.rec, a.st = nil, nil
	a.p.Reset(openaistream.None)
	accountants.Put(a)
}

// record sets the usage and response the server reported. The usage is the
// truth (SetUsage): the output tokens counted per chunk are raised to it,
// never lowered.
func (a *accountant) record(res openaistream.Result) {
	if res.Usage {
		cached := res.CachedTokens
		if cached == 0 {
			cached = -1 // none: no cache_read series for a server that caches nothing
		}
		a.rec.SetUsage(res.InputTokens, res.OutputTokens, cached)
	}
	if res.Model != "" || res.ID != "" || len(res.FinishReasons) > 0 {
		a.rec.SetResponse(inference.Response{Model: res.Model, ID: res.ID, FinishReasons: res.FinishReasons})
	}
}
