package middleware

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// DefaultBodyReadTimeout is how long, by default, the WithModel func may
// spend reading the request body before the handler runs (see
// WithBodyReadTimeout).
const DefaultBodyReadTimeout = 10 * time.Second

// modelOf runs the WithModel func with the connection's read deadline set
// to the body read timeout, and resets it afterwards, so that only this
// read is bounded: the handler's own reads and the response, a stream
// included, are not. It reports whether the read ran out of time. Where the
// server's ReadTimeout ends sooner, that one is left to act; a server that
// cannot set deadlines (http.ErrNotSupported) gets no bound.
func (m *Middleware) modelOf(w http.ResponseWriter, r *http.Request, start time.Time) (model string, timedOut bool) {
	d := m.cfg.bodyTimeout
	if d <= 0 || r.Body == nil || r.Body == http.NoBody {
		return m.cfg.model(r), false
	}
	deadline := start.Add(d)
	var restore time.Time // no deadline, or the server's ReadTimeout
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.ReadTimeout > 0 {
		// start is a little after the server read the request line, from
		// which its deadline counts: restoring it from start gives the
		// body slightly longer than ReadTimeout, never less.
		restore = start.Add(srv.ReadTimeout)
	}
	rc := http.NewResponseController(w)
	set := restore.IsZero() || deadline.Before(restore)
	if set && rc.SetReadDeadline(deadline) != nil {
		set = false
	}
	tb := &timedBody{ReadCloser: r.Body}
	r.Body = tb
	model = m.cfg.model(r)
	if tb.timedOut {
		return "", true
	}
	if set {
		_ = rc.SetReadDeadline(restore)
	}
	return model, false
}

// timedBody notes a read that failed on the connection's read deadline.
type timedBody struct {
	io.ReadCloser
	timedOut bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.timedOut = true
	}
	return n, err
}

// bodyTimeoutBody is the answer to a request whose body did not arrive in
// time, in the error format of the OpenAI-style APIs ModelFromJSONBody
// serves.
const bodyTimeoutBody = `{"error":{"message":"request body not received in time","type":"invalid_request_error","code":"request_timeout"}}`

// bodyTimedOut answers 408 Request Timeout ("the server did not receive a
// complete request message within the time that it was prepared to wait",
// RFC 9110) and closes the connection, whose read side is spent.
var bodyTimedOut = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(bodyTimeoutBody)))
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusRequestTimeout)
	_, _ = io.WriteString(w, bodyTimeoutBody)
})
