package middleware

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/inference"
)

func sseChunk(content string) string {
	return `data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}` + "\n\n"
}

const (
	sseFinish = `data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	sseUsage  = `data: {"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":2}}}` + "\n\n"
	sseDone   = "data: [DONE]\n\n"
)

// histCount returns the sample count of a histogram of inf, summed over
// its series.
func histCount(inf *inference.Metrics, name string) uint64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(inf)
	mfs, _ := reg.Gather()
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, mt := range mf.GetMetric() {
				n += mt.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestResponseAccounting(t *testing.T) {
	stream := func(ct string, pieces ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			for _, p := range pieces {
				_, _ = io.WriteString(w, p)
				_ = http.NewResponseController(w).Flush()
			}
		}
	}
	full := sseChunk("a") + sseChunk("b") + sseFinish + sseUsage + sseDone
	tests := []struct {
		name          string
		path          string
		h             http.HandlerFunc
		in, out, ttft float64
	}{
		{"stream with usage", "/v1/chat/completions", stream("text/event-stream", full), 7, 5, 1},
		{"split events", "/v1/chat/completions", stream("text/event-stream", full[:10], full[10:100], full[100:]), 7, 5, 1},
		{"no usage chunk", "/v1/chat/completions", stream("text/event-stream", sseChunk("a"), sseChunk("b"), sseChunk("c"), sseFinish, sseDone), 0, 3, 1},
		{"usage only", "/v1/chat/completions", stream("text/event-stream", sseUsage, sseDone), 7, 5, 0},
		// The counter cannot go down: the chunks counted stay counted.
		{"usage below the chunks", "/v1/chat/completions", stream("text/event-stream", strings.Repeat(sseChunk("x"), 9), sseUsage), 7, 9, 1},
		{"json body", "/v1/chat/completions", stream("application/json",
			`{"id":"c2","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}`), 4, 2, 0},
		{"embeddings", "/v1/embeddings", stream("application/json",
			`{"object":"list","data":[{"object":"embedding","embedding":[0.1,0.2],"index":0}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}`), 3, 0, 0},
		{"not openai", "/v1/chat/completions", stream("text/plain", "hello\n\n"), 0, 0, 0},
		{"compressed", "/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			stream("text/event-stream", full)(w, r)
		}, 0, 0, 0},
		{"error status", "/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"usage":{"prompt_tokens":4}}`)
		}, 0, 0, 0},
		{"garbage", "/v1/chat/completions", stream("text/event-stream", "data: {\x00\n\ndata: [1,2]\n\n\xff\xfe"), 0, 0, 0},
		{"route not accounted", "/v1/other", stream("text/event-stream", full), 0, 0, 0},
		{"handler reports", "/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
			rec := inference.FromContext(r.Context())
			rec.InputTokens(3)
			w.Header().Set("Content-Type", "text/event-stream")
			for range 4 {
				rec.OutputTokens(1)
				_, _ = io.WriteString(w, sseChunk("t"))
			}
			_, _ = io.WriteString(w, sseUsage)
		}, 3, 4, 1},
		{"handler reports at the end", "/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"usage":{"prompt_tokens":40,"completion_tokens":20}}`)
			rec := inference.FromContext(r.Context())
			rec.InputTokens(4)
			rec.OutputTokens(2)
		}, 4, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inf := inference.NewMetrics()
			m := New(WithInference(inf), WithModel(ModelFromJSONBody(0)), WithResponseAccounting(OpenAIRoutes))
			// What the handler writes, to compare with what the client got.
			var want strings.Builder
			srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.h(teeWriter{w, &want}, r)
			})))
			defer srv.Close()
			c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			defer c.CloseIdleConnections()
			resp, err := c.Post(srv.URL+tt.path, "application/json", strings.NewReader(`{"model":"m"}`))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != want.String() {
				t.Errorf("client got %q, handler wrote %q", got, want.String())
			}
			waitFor(t, func() bool { return histCount(inf, "gen_ai_server_request_duration_seconds") == 1 })
			if in, out := tokens(inf, "m", "input"), tokens(inf, "m", "output"); in != tt.in || out != tt.out {
				t.Errorf("tokens in %v out %v, want %v %v", in, out, tt.in, tt.out)
			}
			wantCached := 0.0
			if tt.in == 7 {
				wantCached = 2 // sseUsage
			}
			if c := tokens(inf, "m", "cache_read"); c != wantCached {
				t.Errorf("cached tokens %v, want %v", c, wantCached)
			}
			if n := histCount(inf, "gen_ai_server_time_to_first_token_seconds"); float64(n) != tt.ttft {
				t.Errorf("ttft count %d, want %v", n, tt.ttft)
			}
		})
	}
}

// teeWriter keeps a copy of what the handler writes, and keeps the
// interfaces reachable through Unwrap.
type teeWriter struct {
	http.ResponseWriter
	b *strings.Builder
}

func (w teeWriter) Write(p []byte) (int, error) {
	w.b.Write(p)
	return w.ResponseWriter.Write(p)
}

func (w teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Each event reaches the client while the handler still runs, and the first
// token is marked when the first content event is written, not at the end.
func TestResponseAccountingFlushes(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(ModelFromJSONBody(0)), WithResponseAccounting(OpenAIRoutes))
	ack := make(chan struct{})
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 3 {
			fmt.Fprint(w, sseChunk(fmt.Sprint(i)))
			if err := rc.Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
			if i == 0 {
				// The first token is recorded already.
				if _, out := inference.FromContext(r.Context()).Tokens(); out != 1 {
					t.Errorf("after the first event: %d output tokens", out)
				}
			}
			select {
			case <-ack:
			case <-time.After(10 * time.Second):
				t.Error("event not received while the handler runs")
				return
			}
		}
	})))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() != "" {
			ack <- struct{}{}
		}
	}
	waitFor(t, func() bool { return histCount(inf, "gen_ai_server_request_duration_seconds") == 1 })
	if out := tokens(inf, "m", "output"); out != 3 {
		t.Errorf("output tokens %v", out)
	}
}

func TestOpenAIRoutes(t *testing.T) {
	for _, tt := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/v1/chat/completions", true},
		{"POST", "/v1/completions", true},
		{"POST", "/v1/embeddings/", true},
		{"POST", "/openai/v1/chat/completions", true},
		{"GET", "/v1/chat/completions", false},
		{"POST", "/v1/models", false},
	} {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if got := OpenAIRoutes(r); got != tt.want {
			t.Errorf("%s %s: %v", tt.method, tt.path, got)
		}
	}
}

// A panicking route func means no accounting, and the request goes on.
func TestResponseAccountingFuncPanics(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(ModelFromJSONBody(0)),
		WithResponseAccounting(func(*http.Request) bool { panic("boom") }))
	w := serve(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, sseChunk("a"))
	})), "POST", "/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	if w.Code != 200 || tokens(inf, "m", "output") != 0 {
		t.Errorf("status %d, tokens %v", w.Code, tokens(inf, "m", "output"))
	}
}

// BenchmarkAccountingStream is the cost of accounting a 64-event stream
// through the middleware, next to the same stream without accounting.
func BenchmarkAccountingStream(b *testing.B) {
	ev := []byte(sseChunk(" tok"))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for range 64 {
			_, _ = w.Write(ev)
		}
	})
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("accounting=%v", on), func(b *testing.B) {
			inf := inference.NewMetrics()
			opts := []Option{WithInference(inf), WithModel(func(*http.Request) string { return "m" })}
			if on {
				opts = append(opts, WithResponseAccounting(OpenAIRoutes))
			}
			hh := New(opts...).Handler(h)
			r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				hh.ServeHTTP(w, r)
			}
		})
	}
}

// onceEOF fails a Read after it returned io.EOF, as net/http's request body
// does once the server closed it when the response started.
type onceEOF struct {
	r   io.Reader
	eof bool
}

func (o *onceEOF) Read(p []byte) (int, error) {
	if o.eof {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := o.r.Read(p)
	if err == io.EOF {
		o.eof = true
	}
	return n, err
}

func (o *onceEOF) Close() error { return nil }

// A body ModelFromJSONBody read to its end is replayed without reading the
// original again, so a proxy forwarding it after the response started (the
// server closes the body then) does not fail the forwarding.
func TestModelFromJSONBodyReplayAtEOF(t *testing.T) {
	for _, size := range []int{0, 10} {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		body := `{"model":"m","pad":"` + strings.Repeat("x", size) + `"}`
		r.Body = &onceEOF{r: strings.NewReader(body)}
		if got := ModelFromJSONBody(1 << 20)(r); got != "m" {
			t.Fatalf("model %q", got)
		}
		b, err := io.ReadAll(r.Body)
		if err != nil || string(b) != body {
			t.Fatalf("replayed %q, %v", b, err)
		}
	}
}

// A client that closes the connection as soon as it read [DONE] (the OpenAI
// SDKs do), while the handler is still finishing (a proxy waiting for its
// upstream's end), got the whole answer: a 200, not a 499; also when the
// handler's last writes then fail, or it aborts as httputil.ReverseProxy does
// when its last copy or flush fails (panic(http.ErrAbortHandler)).
func TestResponseAccountingDoneIsDelivered(t *testing.T) {
	for _, tt := range []struct {
		name  string
		after func(w http.ResponseWriter)
	}{
		{"handler returns", func(http.ResponseWriter) {}},
		{"later write fails", func(w http.ResponseWriter) {
			for range 50 { // until the closed connection's error surfaces
				_, _ = io.WriteString(w, ": trailing comment\n\n")
				if http.NewResponseController(w).Flush() != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}},
		{"proxy aborts", func(w http.ResponseWriter) { panic(http.ErrAbortHandler) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inf := inference.NewMetrics()
			m := New(WithInference(inf), WithModel(ModelFromJSONBody(0)), WithResponseAccounting(OpenAIRoutes))
			closed := make(chan struct{})
			srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, sseChunk("a")+sseUsage+sseDone)
				_ = http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				defer close(closed)
				tt.after(w)
			})))
			defer srv.Close()
			resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() && sc.Text() != strings.TrimSpace(sseDone) {
			}
			resp.Body.Close() // at [DONE], before the handler returns
			<-closed
			waitFor(t, func() bool { return histCount(inf, "gen_ai_server_request_duration_seconds") == 1 })
			recorded := func(status string) bool { return hasSeries(m.duration, "POST", UnmatchedRoute, status) == nil }
			waitFor(t, func() bool { return recorded("200") || recorded("499") || recorded("500") })
			if !recorded("200") {
				t.Error("a client that read [DONE] is recorded as gone or failed")
			}
			if in, out := tokens(inf, "m", "input"), tokens(inf, "m", "output"); in != 7 || out != 5 {
				t.Errorf("tokens %v %v", in, out)
			}
		})
	}
}
