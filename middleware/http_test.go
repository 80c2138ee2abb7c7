package middleware

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/genai"
	"github.com/modeltel/modeltel/internal/testkit"
)

// fakeClock advances by step on every reading, so each request lasts exactly
// step (one reading at start, one at the end).
type fakeClock struct {
	ns   atomic.Int64
	step time.Duration
}

func (c *fakeClock) now() time.Time { return time.Unix(0, c.ns.Add(int64(c.step))) }

func serve(h http.Handler, method, target string, body io.Reader) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, body))
	return w
}

func TestHTTPMetricsExact(t *testing.T) {
	clk := &fakeClock{step: 250 * time.Millisecond} // exact in binary: sums are exact
	m := New(withClock(clk.now), WithTracerProvider(nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.PathValue("id"))
	})
	h := m.Handler(mux)
	for i := range 1000 {
		serve(h, http.MethodGet, fmt.Sprintf("/v1/models/m%03d", i), nil) // 4 bytes each
	}
	want := `
# HELP http_server_request_duration_seconds Duration of HTTP server requests.
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.005"} 0
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.01"} 0
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.025"} 0
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.05"} 0
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.075"} 0
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.1"} 0
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.25"} 1000
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.5"} 1000
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="0.75"} 1000
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="1"} 1000
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="2.5"} 1000
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="5"} 1000
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="7.5"} 1000
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="10"} 1000
http_server_request_duration_seconds_bucket{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http",le="+Inf"} 1000
http_server_request_duration_seconds_sum{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http"} 250
http_server_request_duration_seconds_count{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{id}",url_scheme="http"} 1000
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "http_server_request_duration_seconds"); err != nil {
		t.Error(err)
	}
	checkHist(t, m.respSize, 1000, 4000)
	checkHist(t, m.reqSize, 1000, 0)
	if v := testutil.ToFloat64(m.activeBy[0][0]); v != 0 {
		t.Errorf("active = %v after requests", v)
	}
	testkit.Lint(t, m)
}

// checkHist checks the count and sum of the only series of a histogram vec.
func checkHist(t *testing.T, c prometheus.Collector, count uint64, sum float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("want one series, got %v", mfs)
	}
	h := mfs[0].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != count || h.GetSampleSum() != sum {
		t.Errorf("%s: count %d sum %v, want %d %v", mfs[0].GetName(), h.GetSampleCount(), h.GetSampleSum(), count, sum)
	}
}

func TestHTTPLabels(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/a/{x}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("example.com/host/", func(w http.ResponseWriter, r *http.Request) {})
	tests := []struct {
		name, method, target string
		opts                 []Option
		wantMethod           string
		wantRoute            string
		wantStatus           string
	}{
		{"pattern", "GET", "/a/1", nil, "GET", "/a/{x}", "418"},
		{"host pattern", "GET", "http://example.com/host/x", nil, "GET", "/host/", "200"},
		{"unknown method", "FOO", "/a/2", nil, "_OTHER", "/a/{x}", "418"},
		{"no route", "GET", "/nope", nil, "GET", UnmatchedRoute, "404"},
		{"route func", "POST", "/a/3", []Option{WithRoute(func(*http.Request) string { return "/custom" })}, "POST", "/custom", "418"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(tt.opts...)
			serve(m.Handler(mux), tt.method, tt.target, nil)
			if c := testutil.CollectAndCount(m.duration); c != 1 {
				t.Fatalf("series = %d", c)
			}
			if err := hasSeries(m.duration, tt.wantMethod, tt.wantRoute, tt.wantStatus); err != nil {
				t.Error(err)
			}
		})
	}
}

// hasSeries checks that the histogram vec has a series with the labels and one observation.
func hasSeries(v *prometheus.HistogramVec, method, route, status string) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(v)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["http_request_method"] == method && l["http_route"] == route && l["http_response_status_code"] == status {
				if mt.GetHistogram().GetSampleCount() == 1 {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("no series {%s %s %s} with one observation in %v", method, route, status, mfs)
}

func TestRouteCap(t *testing.T) {
	m := New(WithMaxRoutes(2), WithRoute(func(r *http.Request) string { return r.URL.Path }))
	h := m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for i := range 50 {
		serve(h, "GET", fmt.Sprintf("/p%d", i%10), nil)
	}
	if c := testutil.CollectAndCount(m.duration); c != 3 {
		t.Errorf("series = %d, want 3 (2 routes + _OTHER)", c)
	}
	if err := hasSeriesCount(m.duration, OtherRoute, 40); err != nil {
		t.Error(err)
	}
}

func hasSeriesCount(v *prometheus.HistogramVec, route string, n uint64) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(v)
	mfs, _ := reg.Gather()
	for _, mt := range mfs[0].GetMetric() {
		for _, p := range mt.GetLabel() {
			if p.GetName() == "http_route" && p.GetValue() == route {
				if got := mt.GetHistogram().GetSampleCount(); got != n {
					return fmt.Errorf("route %s: %d, want %d", route, got, n)
				}
				return nil
			}
		}
	}
	return fmt.Errorf("route %s missing", route)
}

func TestFilter(t *testing.T) {
	m := New(WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" }))
	h := m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	serve(h, "GET", "/healthz", nil)
	if c := testutil.CollectAndCount(m.duration); c != 0 {
		t.Errorf("filtered request recorded: %d series", c)
	}
}

func TestChunkedRequestBodyCounted(t *testing.T) {
	m := New()
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	req := httptest.NewRequest("POST", "/up", io.MultiReader(strings.NewReader("12345"), strings.NewReader("678")))
	req.ContentLength = -1
	h.ServeHTTP(httptest.NewRecorder(), req)
	checkHist(t, m.reqSize, 1, 8)
}

func TestPanic(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(func(*http.Request) string { return "m" }))
	h := m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the handler's panic", p)
			}
		}()
		serve(h, "GET", "/x", nil)
		t.Error("panic did not go on up")
	}()
	if err := hasSeries(m.duration, "GET", UnmatchedRoute, "500"); err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(m.activeBy[0][0]); v != 0 {
		t.Errorf("active = %v after panic", v)
	}
	if n := testutil.CollectAndCount(inf, "inference_requests_active"); n != 1 {
		t.Fatalf("active series %d", n)
	}
	if err := infDurationCount(inf, "500", 1); err != nil {
		t.Error(err)
	}
}

func infDurationCount(inf *inference.Metrics, errType string, n uint64) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(inf)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "inference_requests_active":
			for _, mt := range mf.GetMetric() {
				if mt.GetGauge().GetValue() != 0 {
					return fmt.Errorf("inference_requests_active = %v", mt.GetGauge().GetValue())
				}
			}
		case "gen_ai_server_request_duration_seconds":
			for _, mt := range mf.GetMetric() {
				for _, p := range mt.GetLabel() {
					if p.GetName() == "error_type" && p.GetValue() == errType {
						if got := mt.GetHistogram().GetSampleCount(); got != n {
							return fmt.Errorf("error_type %q count %d, want %d", errType, got, n)
						}
						return nil
					}
				}
			}
		}
	}
	return fmt.Errorf("no duration series with error_type %q", errType)
}

// SSE through a real server: every chunk reaches the client while the handler
// is still running (it waits for the client's acknowledgement of each).
func TestSSEStreaming(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(ModelFromJSONBody(0)))
	ack := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Model string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "llama" {
			http.Error(w, "body not replayed", http.StatusBadRequest)
			return
		}
		rec := inference.FromContext(r.Context())
		rec.InputTokens(5)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			rec.OutputTokens(1)
			fmt.Fprintf(w, "data: %d\n\n", i)
			if i == 0 {
				w.(http.Flusher).Flush()
			} else if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("ResponseController.Flush: %v", err)
			}
			select {
			case <-ack:
			case <-time.After(10 * time.Second):
				t.Error("chunk not received while the handler runs")
				return
			}
		}
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true,"model":"llama"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			got = append(got, line)
			ack <- struct{}{}
		}
	}
	if strings.Join(got, ",") != "data: 0,data: 1,data: 2" {
		t.Errorf("events = %v (status %d)", got, resp.StatusCode)
	}
	waitFor(t, func() bool { return testutil.CollectAndCount(m.duration) == 1 })
	if got := tokens(inf, "llama", "output"); got != 3 {
		t.Errorf("output tokens = %v", got)
	}
	if err := hasSeries(m.duration, "POST", "/v1/chat/completions", "200"); err != nil {
		t.Error(err)
	}
}

// tokens returns inference_tokens_total for a model and token type.
func tokens(inf *inference.Metrics, model, typ string) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(inf)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "inference_tokens_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["gen_ai_request_model"] == model && l["gen_ai_token_type"] == typ {
				return mt.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// waitFor polls cond: the server records after the response is complete,
// which the client sees slightly earlier.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met")
}

// A client that hangs up mid-stream: the request is recorded with 499 and the
// recorder ends with error_type "canceled".
func TestClientGoneMidStream(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(func(*http.Request) string { return "m" }))
	done := make(chan struct{})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inference.FromContext(r.Context()).OutputTokens(1)
		_, _ = io.WriteString(w, "data: 0\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		close(done)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = bufio.NewReader(resp.Body).ReadString('\n')
	cancel()
	_ = resp.Body.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not see the cancellation")
	}
	if err := hasSeries(m.duration, "GET", UnmatchedRoute, "499"); err != nil {
		t.Error(err)
	}
	if err := infDurationCount(inf, "canceled", 1); err != nil {
		t.Error(err)
	}
}

func TestStatusErrorTypes(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(func(*http.Request) string { return "m" }))
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	serve(h, "POST", "/x", nil)
	if err := infDurationCount(inf, "429", 1); err != nil {
		t.Error(err)
	}
}

func TestConcurrentRequests(t *testing.T) {
	inf := inference.NewMetrics(inference.WithMaxModels(3))
	m := New(WithInference(inf), WithModel(func(r *http.Request) string { return r.URL.Query().Get("model") }))
	mux := http.NewServeMux()
	mux.HandleFunc("/gen/{n}", func(w http.ResponseWriter, r *http.Request) {
		rec := inference.FromContext(r.Context())
		for range 10 {
			rec.OutputTokens(1)
		}
		_, _ = io.WriteString(w, "ok")
	})
	h := m.Handler(mux)
	const workers, per = 32, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				serve(h, "GET", fmt.Sprintf("/gen/%d?model=m%d", i, (w+i)%10), nil)
			}
		}()
	}
	wg.Wait()
	if err := hasSeriesCount(m.duration, "/gen/{n}", workers*per); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(inf, "inference_requests_active"); n != 4 {
		t.Errorf("model series = %d, want 4 (3 + other)", n)
	}
	var total float64
	for _, model := range []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "other"} {
		total += tokens(inf, model, "output")
	}
	if total != workers*per*10 {
		t.Errorf("output tokens = %v, want %d", total, workers*per*10)
	}
	testkit.Lint(t, m)
	testkit.Lint(t, inf)
}

func TestSpanTree(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	inf := inference.NewMetrics()
	var logs bytes.Buffer
	m := New(WithInference(inf), WithModel(func(*http.Request) string { return "llama-3-8b" }),
		WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}),
		WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		ctx, child := trace.SpanFromContext(r.Context()).TracerProvider().Tracer("handler").Start(r.Context(), "forward")
		rec := inference.FromContext(ctx)
		rec.InputTokens(4)
		rec.OutputTokens(2)
		child.End()
	})
	req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader("{}"))
	const parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req.Header.Set("traceparent", "00-"+parentTrace+"-00f067aa0ba902b7-01")
	m.Handler(mux).ServeHTTP(httptest.NewRecorder(), req)

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range sr.Ended() {
		spans[s.Name()] = s
	}
	server, gen, child := spans["POST /v1/chat/completions"], spans["chat llama-3-8b"], spans["forward"]
	if server == nil || gen == nil || child == nil {
		t.Fatalf("spans = %v", keys(spans))
	}
	if server.SpanKind() != trace.SpanKindServer || server.SpanContext().TraceID().String() != parentTrace ||
		server.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("server span does not continue the incoming trace: %v %v", server.SpanContext(), server.Parent())
	}
	if gen.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Error("GenAI span is not the server span's child")
	}
	if child.Parent().SpanID() != gen.SpanContext().SpanID() {
		t.Error("handler span is not the GenAI span's child")
	}
	attrs := map[string]string{}
	for _, kv := range gen.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs[string(genai.UsageInputTokensKey)] != "4" || attrs[string(genai.UsageOutputTokensKey)] != "2" {
		t.Errorf("GenAI span attributes = %v", attrs)
	}
	if ev := gen.Events(); len(ev) != 1 || ev[0].Name != genai.FirstTokenEvent {
		t.Errorf("GenAI span events = %v", ev)
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", logs.String(), err)
	}
	if line["route"] != "/v1/chat/completions" || line["status"] != float64(200) || line["model"] != "llama-3-8b" || line["level"] != "INFO" {
		t.Errorf("log line = %v", line)
	}
}

func keys[V any](m map[string]V) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

func TestLogLevels(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{{200, "INFO"}, {404, "WARN"}, {503, "ERROR"}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			var buf bytes.Buffer
			m := New(WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
			serve(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tt.status) })), "GET", "/", nil)
			if lines := strings.Count(buf.String(), "\n"); lines != 1 || !strings.Contains(buf.String(), `"level":"`+tt.want+`"`) {
				t.Errorf("log = %q", buf.String())
			}
		})
	}
}

func TestModelFromJSONBody(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"messages":[{"role":"user","content":"hi"}],"model":"gpt"}`, "gpt"},
		{`{"model":"a","x":`, "a"},
		{`[1,2]`, ""},
		{`{"model":3}`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			if got := ModelFromJSONBody(0)(r); got != tt.want {
				t.Errorf("model = %q, want %q", got, tt.want)
			}
			rest, _ := io.ReadAll(r.Body)
			if string(rest) != tt.body {
				t.Errorf("body replayed as %q", rest)
			}
		})
	}
}
