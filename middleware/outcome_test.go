package middleware

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/genai"
)

// brokenWriter is a flushing writer whose writes and flushes fail, as
// net/http's do once the client is gone; like net/http it cancels the
// request context when the connection fails.
type brokenWriter struct {
	*httptest.ResponseRecorder
	cancel             context.CancelFunc
	writeErr, flushErr error
}

func (b *brokenWriter) Write(p []byte) (int, error) {
	if b.writeErr != nil {
		if b.writeErr != http.ErrBodyNotAllowed { // a handler's mistake
			b.cancel()
		}
		return 0, b.writeErr
	}
	return b.ResponseRecorder.Write(p)
}

func (b *brokenWriter) WriteString(s string) (int, error) { return b.Write([]byte(s)) }

func (b *brokenWriter) FlushError() error {
	if b.flushErr != nil {
		b.cancel()
	}
	return b.flushErr
}

// infErrorTypes maps the error_type of every inference duration series to
// its count ("" is success), leaving out series with no observation.
func infErrorTypes(t *testing.T, inf *inference.Metrics) map[string]uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(inf)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "gen_ai_server_request_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, p := range mt.GetLabel() {
				if p.GetName() == "error_type" && mt.GetHistogram().GetSampleCount() > 0 {
					got[p.GetValue()] += mt.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return got
}

// TestClientGoneOutcome drives each state of a request whose client closed
// (the test cancels the request context at a point it chooses, as net/http
// does when the connection closes) and checks what is recorded: the HTTP
// status, the inference outcome and the span's error_type.
func TestClientGoneOutcome(t *testing.T) {
	sse := func(w http.ResponseWriter, events ...string) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			_, _ = io.WriteString(w, "data: "+e+"\n\n")
			w.(http.Flusher).Flush()
		}
	}
	rec := func(r *http.Request) *inference.Recorder { return inference.FromContext(r.Context()) }
	tests := []struct {
		name     string
		writeErr error
		flushErr error
		handler  func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc)
		status   string
		inf      map[string]uint64 // error_type -> count
		spanErr  string            // error.type on the server span
		panics   bool
	}{
		{"live context, completed", nil, nil, func(w http.ResponseWriter, r *http.Request, _ context.CancelFunc) {
			sse(w, "a", "[DONE]")
		}, "200", map[string]uint64{"": 1}, "", false},
		{"recorder ended, then client closed", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			rec(r).OutputTokens(1)
			sse(w, "a", "[DONE]")
			rec(r).End(nil)
			cancel()
		}, "200", map[string]uint64{"": 1}, "", false},
		{"recorder ended with own error, then client closed", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			w.WriteHeader(http.StatusTooManyRequests)
			rec(r).End(statusError(http.StatusTooManyRequests))
			cancel()
		}, "429", map[string]uint64{"429": 1}, "", false},
		{"client gone mid-stream", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			rec(r).OutputTokens(1)
			sse(w, "a")
			cancel()
		}, "499", map[string]uint64{"canceled": 1}, "canceled", false},
		{"handler ended with canceled", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			sse(w, "a")
			cancel()
			rec(r).End(r.Context().Err())
		}, "499", map[string]uint64{"canceled": 1}, "canceled", false},
		{"nothing written", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			cancel()
		}, "499", map[string]uint64{"canceled": 1}, "canceled", false},
		{"write error", syscall.EPIPE, nil, func(w http.ResponseWriter, r *http.Request, _ context.CancelFunc) {
			sse(w, "a")
		}, "499", map[string]uint64{"canceled": 1}, "canceled", false},
		{"write error beats recorder ended", syscall.EPIPE, nil, func(w http.ResponseWriter, r *http.Request, _ context.CancelFunc) {
			sse(w, "a", "[DONE]")
			rec(r).End(nil)
		}, "499", map[string]uint64{"": 1}, "canceled", false},
		{"flush error", nil, syscall.ECONNRESET, func(w http.ResponseWriter, r *http.Request, _ context.CancelFunc) {
			_, _ = io.WriteString(w, "data: a\n\n")
			_ = http.NewResponseController(w).Flush()
		}, "499", map[string]uint64{"canceled": 1}, "canceled", false},
		{"handler mistake is no write error", http.ErrBodyNotAllowed, nil, func(w http.ResponseWriter, r *http.Request, _ context.CancelFunc) {
			w.WriteHeader(http.StatusNoContent)
			_, _ = io.WriteString(w, "x")
		}, "204", map[string]uint64{"": 1}, "", false},
		{"content-length complete", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
			cancel()
		}, "200", map[string]uint64{"": 1}, "", false},
		{"content-length short", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "hello")
			cancel()
		}, "499", map[string]uint64{"canceled": 1}, "canceled", false},
		{"content-length, nothing written", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			w.Header().Set("Content-Length", "0")
			cancel()
		}, "499", map[string]uint64{"canceled": 1}, "canceled", false},
		{"abort panic, client gone", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			sse(w, "a")
			cancel()
			panic(http.ErrAbortHandler)
		}, "499", map[string]uint64{"canceled": 1}, "canceled", true},
		{"abort panic, live context", nil, nil, func(w http.ResponseWriter, r *http.Request, _ context.CancelFunc) {
			panic(http.ErrAbortHandler)
		}, "500", map[string]uint64{"500": 1}, "500", true},
		{"other panic, client gone", nil, nil, func(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) {
			cancel()
			panic("boom")
		}, "500", map[string]uint64{"500": 1}, "500", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inf := inference.NewMetrics()
			sr := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
			m := New(WithInference(inf), WithModel(func(*http.Request) string { return "m" }),
				WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.handler(w, r, cancel)
			}))
			w := &brokenWriter{ResponseRecorder: httptest.NewRecorder(), cancel: cancel,
				writeErr: tt.writeErr, flushErr: tt.flushErr}
			func() {
				defer func() {
					if p := recover(); (p != nil) != tt.panics {
						t.Errorf("panic %v, want one: %v", p, tt.panics)
					}
				}()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/chat", nil).WithContext(ctx))
			}()
			if err := hasSeries(m.duration, "GET", UnmatchedRoute, tt.status); err != nil {
				t.Error(err)
			}
			if got := infErrorTypes(t, inf); !maps.Equal(got, tt.inf) {
				t.Errorf("inference outcomes %v, want %v", got, tt.inf)
			}
			var spanErr string
			for _, s := range sr.Ended() {
				if s.SpanKind().String() != "server" {
					continue
				}
				for _, a := range s.Attributes() {
					if a.Key == genai.ErrorTypeKey {
						spanErr = a.Value.AsString()
					}
				}
			}
			if spanErr != tt.spanErr {
				t.Errorf("server span error.type %q, want %q", spanErr, tt.spanErr)
			}
		})
	}
}

// The client closes right after reading the whole answer, through a real
// server: the handler ends the recorder after its last event and returns
// only once the context is canceled, so the request is complete and the
// context canceled when the middleware decides, every time.
func TestClientClosesAfterDone(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(func(*http.Request) string { return "m" }))
	done := make(chan struct{})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := inference.FromContext(r.Context())
		rec.OutputTokens(1)
		_, _ = io.WriteString(w, "data: a\n\ndata: [DONE]\n\n")
		w.(http.Flusher).Flush()
		rec.End(nil)
		<-r.Context().Done()
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, len("data: a\n\ndata: [DONE]\n\n"))
	if _, err := io.ReadFull(resp.Body, body); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // mid-chunked body: the transport closes the connection
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not see the client close")
	}
	if err := hasSeries(m.duration, "GET", UnmatchedRoute, "200"); err != nil {
		t.Error(err)
	}
	if got := infErrorTypes(t, inf); !maps.Equal(got, map[string]uint64{"": 1}) {
		t.Errorf("inference outcomes %v, want success only", got)
	}
}
