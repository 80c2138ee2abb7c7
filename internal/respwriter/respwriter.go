// Package respwriter wraps an http.ResponseWriter to learn the status code and
// the body bytes a handler wrote, and whether writing failed, keeping the optional interfaces the
// underlying writer has (http.Flusher for SSE, http.Hijacker, io.ReaderFrom)
// and Unwrap for http.ResponseController, at one allocation per request.
package respwriter

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"unsafe"
)

// Observer sees the response body as it is written. Observe gets the bytes
// each Write, WriteString or ReadFrom passed to the underlying writer, after
// they were written, on the handler's goroutine; it must not keep or modify
// them.
type Observer interface {
	Observe(p []byte)
}

// State is what the wrapped writer saw. Read it after the handler returned;
// like the http.ResponseWriter itself it is not for concurrent use.
type State struct {
	w http.ResponseWriter
	// Status is the final status code written, 0 if none was (net/http then
	// sends 200 when the handler returns).
	Status int
	// Bytes is the number of response body bytes written.
	Bytes int64
	// Hijacked is true once the connection was hijacked.
	Hijacked bool
	// Err is the first error a Write, WriteString or Flush (of the
	// underlying writer's FlushError, as net/http's writers have) returned:
	// with net/http, a response that did not reach the client. ReadFrom
	// errors are not kept: they cannot be told apart from the source's.
	Err error
	// Observer, when set before the handler writes, sees the body bytes
	// written (see Observer); ReadFrom then copies through Write.
	Observer Observer
	// Complete is set (by an Observer) once the response's own end marker
	// was written, an event stream's "data: [DONE]": the answer is whole,
	// so a write error after it (a client that closed as soon as it read
	// the marker, as the OpenAI SDKs do, while a proxy still copies the
	// stream's last bytes) does not mean the client missed the response.
	Complete bool
}

func (s *State) fail(err error) {
	if err != nil && s.Err == nil {
		s.Err = err
	}
}

// Header implements http.ResponseWriter.
func (s *State) Header() http.Header { return s.w.Header() }

// WriteHeader implements http.ResponseWriter. Informational codes (1xx but
// 101) may precede the final one and are not recorded.
func (s *State) WriteHeader(code int) {
	if s.Status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.Status = code
	}
	s.w.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (s *State) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	n, err := s.w.Write(b)
	s.Bytes += int64(n)
	s.fail(err)
	if s.Observer != nil && n > 0 {
		s.Observer.Observe(b[:n])
	}
	return n, err
}

// WriteString implements io.StringWriter without copying s when the
// underlying writer has WriteString.
func (s *State) WriteString(str string) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	var n int
	var err error
	if sw, ok := s.w.(io.StringWriter); ok {
		n, err = sw.WriteString(str)
	} else {
		n, err = s.w.Write([]byte(str))
	}
	s.Bytes += int64(n)
	s.fail(err)
	if s.Observer != nil && n > 0 {
		// Read only, and not kept: see Observer.
		s.Observer.Observe(unsafe.Slice(unsafe.StringData(str), n))
	}
	return n, err
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (s *State) Unwrap() http.ResponseWriter { return s.w }

// flushError flushes, keeping the error when the underlying writer reports
// one (net/http's do, through FlushError).
func (s *State) flushError() error {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	if fe, ok := s.w.(interface{ FlushError() error }); ok {
		err := fe.FlushError()
		s.fail(err)
		return err
	}
	s.w.(http.Flusher).Flush()
	return nil
}

func (s *State) hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := s.w.(http.Hijacker).Hijack()
	if err == nil {
		s.Hijacked = true
	}
	return c, rw, err
}

func (s *State) readFrom(src io.Reader) (int64, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	if s.Observer != nil {
		// The bytes must pass through Write to be seen (no sendfile).
		return io.Copy(writerOnly{s}, src)
	}
	n, err := s.w.(io.ReaderFrom).ReadFrom(src)
	s.Bytes += n
	return n, err
}

// writerOnly hides State's ReadFrom-less methods from io.Copy.
type writerOnly struct{ s *State }

func (w writerOnly) Write(p []byte) (int, error) { return w.s.Write(p) }

// The writers with Flush also have FlushError, which
// http.ResponseController.Flush prefers, so that the error is both returned
// and kept.

type flusher struct{ State }

func (w *flusher) Flush()            { _ = w.flushError() }
func (w *flusher) FlushError() error { return w.flushError() }

type flushHijacker struct{ State }

func (w *flushHijacker) Flush()                                       { _ = w.flushError() }
func (w *flushHijacker) FlushError() error                            { return w.flushError() }
func (w *flushHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }

// http1 has the interfaces of net/http's HTTP/1 response.
type http1 struct{ State }

func (w *http1) Flush()                                       { _ = w.flushError() }
func (w *http1) FlushError() error                            { return w.flushError() }
func (w *http1) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }
func (w *http1) ReadFrom(src io.Reader) (int64, error)        { return w.readFrom(src) }

// Wrap returns a writer to hand to the handler and the State it fills. The
// writer implements http.Flusher, http.Hijacker and io.ReaderFrom when w
// implements them in one of the combinations net/http's own writers have
// (Flusher; Flusher+Hijacker; Flusher+Hijacker+ReaderFrom); any interface
// stays reachable through Unwrap and http.ResponseController.
func Wrap(w http.ResponseWriter) (http.ResponseWriter, *State) {
	_, f := w.(http.Flusher)
	_, h := w.(http.Hijacker)
	_, r := w.(io.ReaderFrom)
	switch {
	case f && h && r:
		x := &http1{State{w: w}}
		return x, &x.State
	case f && h:
		x := &flushHijacker{State{w: w}}
		return x, &x.State
	case f:
		x := &flusher{State{w: w}}
		return x, &x.State
	default:
		x := &State{w: w}
		return x, x
	}
}
