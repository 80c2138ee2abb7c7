package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel"
	"github.com/modeltel/modeltel/examples/gateway/internal/gateway"
	"github.com/modeltel/modeltel/internal/syncbuf"
	"github.com/modeltel/modeltel/middleware"
)

// env is a gateway with the SDK's telemetry, as main wires it.
type env struct {
	logs  *syncbuf.Buffer // the JSON log lines
	reg   *prometheus.Registry
	gw    *gateway.Gateway
	srv   *httptest.Server
	spans *tracetest.SpanRecorder
}

func newEnv(t testing.TB, cfg gateway.Config) *env {
	t.Helper()
	e := &env{reg: prometheus.NewPedanticRegistry(), spans: tracetest.NewSpanRecorder(), logs: &syncbuf.Buffer{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	var gw *gateway.Gateway
	tel, err := modeltel.Start(context.Background(), modeltel.WithRegistry(e.reg), modeltel.WithoutGPU(),
		modeltel.WithLogger(slog.New(slog.NewJSONHandler(e.logs, nil))), modeltel.WithTracerProvider(tp),
		modeltel.WithMiddlewareOptions(middleware.WithModel(func(r *http.Request) string { return gw.Model(r) }),
			middleware.WithOperation(gateway.Operation)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg.TracerProvider = tp
	if gw, err = gateway.New(cfg); err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	e.reg.MustRegister(gw)
	_ = gw.Refresh(context.Background())
	e.srv = httptest.NewServer(gw.Handler(tel.Middleware().Handler))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) client(key string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

// value sums the series of name whose labels include want: counter and
// gauge values, histogram sample counts.
func (e *env) value(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			for k, v := range want {
				if l[k] != v {
					continue series
				}
			}
			sum += metricValue(m)
		}
	}
	return sum
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

func (e *env) waitRequests(t testing.TB, n float64) {
	t.Helper()
	for range 500 {
		if e.value(t, "http_server_request_duration_seconds", nil) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%v requests recorded, want %v", e.value(t, "http_server_request_duration_seconds", nil), n)
}

// waitValue waits until value(name, labels) is want: a stream is recorded
// when the gateway's handler returns, a little after the client read its
// end.
func (e *env) waitValue(t testing.TB, name string, labels map[string]string, want float64) {
	t.Helper()
	for range 500 {
		if e.value(t, name, labels) == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nasty is an upstream whose answers, chosen by the model, are what real
// servers do at their worst.
func nasty(t testing.TB) *httptest.Server {
	models := []string{"split", "no-usage", "usage-only", "early-close", "slow-drip", "json"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		list := map[string]any{"object": "list"}
		var data []map[string]any
		for _, m := range models {
			data = append(data, map[string]any{"id": m, "object": "model", "created": 1, "owned_by": "nasty"})
		}
		list["data"] = data
		_ = json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Traceparent") == "" {
			t.Errorf("no traceparent upstream")
		}
		if r.Header.Get("Authorization") == "" {
			t.Errorf("no Authorization upstream")
		}
		var req struct{ Model string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		chunk := func(c string) string {
			return `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"` + req.Model +
				`","choices":[{"index":0,"delta":{"content":"` + c + `"},"finish_reason":null}]}` + "\n\n"
		}
		finish := `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"` + req.Model + `","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
		usage := func(in, out int) string {
			return fmt.Sprintf(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"%s","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", req.Model, in, out, in+out)
		}
		rc := http.NewResponseController(w)
		write := func(parts ...string) {
			for _, p := range parts {
				_, _ = io.WriteString(w, p)
				_ = rc.Flush()
			}
		}
		if req.Model == "json" {
			w.Header().Set("Content-Type", "application/json")
			write(`{"id":"c2","object":"chat.completion","created":1,"model":"json","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		switch req.Model {
		case "split":
			s := chunk("a") + chunk("b") + chunk("c") + finish + usage(5, 3) + "data: [DONE]\n\n"
			for i := 0; i < len(s); i += 37 {
				write(s[i:min(i+37, len(s))])
			}
		case "no-usage":
			write(chunk("a"), chunk("b"), chunk("c"), chunk("d"), finish, "data: [DONE]\n\n")
		case "usage-only":
			write(usage(5, 7), "data: [DONE]\n\n")
		case "early-close":
			write(chunk("a"), chunk("b")[:20])
			panic(http.ErrAbortHandler) // the connection is cut mid-event
		case "slow-drip":
			for _, c := range []string{"a", "b", "c", "d", "e"} {
				write(chunk(c))
				time.Sleep(20 * time.Millisecond)
			}
			write(finish, usage(2, 5), "data: [DONE]\n\n")
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// seen is what the clients saw, to compare with the metrics.
type seen struct {
	mu               sync.Mutex
	ok, failed       map[int]float64 // by HTTP status (0: a stream cut after its 200)
	in, out          float64
	firstTokens      float64
	requestsByTenant map[string]float64
}

func newSeen() *seen {
	return &seen{ok: map[int]float64{}, failed: map[int]float64{}, requestsByTenant: map[string]float64{}}
}

// stream runs one streaming chat request and notes what the client saw.
func (s *seen) stream(ctx context.Context, c *openai.Client, model string) error {
	st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         model,
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi there")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var chunks, in, out float64
	usage := false
	for st.Next() {
		ch := st.Current()
		for _, c := range ch.Choices {
			if c.Delta.Content != "" {
				chunks++
			}
		}
		if ch.JSON.Usage.Valid() && ch.Usage.TotalTokens > 0 {
			usage, in, out = true, float64(ch.Usage.PromptTokens), float64(ch.Usage.CompletionTokens)
		}
	}
	err := st.Err()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !usage {
		out = chunks
	}
	s.in += in
	s.out += out
	if err != nil {
		var ae *openai.Error
		if errors.As(err, &ae) {
			s.failed[ae.StatusCode]++
		} else {
			s.failed[0]++
		}
		return err
	}
	s.ok[200]++
	if chunks > 0 {
		s.firstTokens++
	}
	return nil
}

func TestNastyUpstream(t *testing.T) {
	up := nasty(t)
	e := newEnv(t, gateway.Config{Upstreams: []string{up.URL + "/v1"}})
	ctx := context.Background()
	s := newSeen()
	for _, m := range []string{"split", "no-usage", "usage-only", "early-close", "slow-drip"} {
		err := s.stream(ctx, e.client("key-a"), m)
		if (err != nil) != (m == "early-close") {
			t.Errorf("%s: %v", m, err)
		}
	}
	// A plain JSON answer.
	cc, err := e.client("key-b").Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "json", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	s.ok[200]++
	s.in += float64(cc.Usage.PromptTokens)
	s.out += float64(cc.Usage.CompletionTokens)
	// An unknown model: the gateway's own 404, in OpenAI's shape.
	_, err = e.client("key-b").Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "nope", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var ae *openai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != "model_not_found" {
		t.Fatalf("unknown model: %v", err)
	}
	s.failed[404]++

	e.waitRequests(t, 7)
	// Requests by status, as the clients saw them; a stream cut after its
	// 200 is a 500 (the gateway's handler failed it).
	if got := e.value(t, "http_server_request_duration_seconds", map[string]string{"http_response_status_code": "200"}); got != s.ok[200] {
		t.Errorf("200s: %v, clients saw %v", got, s.ok[200])
	}
	if got := e.value(t, "http_server_request_duration_seconds", map[string]string{"http_response_status_code": "500"}); got != s.failed[0] {
		t.Errorf("500s: %v, clients saw %v cut streams", got, s.failed[0])
	}
	if got := e.value(t, "http_server_request_duration_seconds", map[string]string{"http_response_status_code": "404"}); got != s.failed[404] {
		t.Errorf("404s: %v, clients saw %v", got, s.failed[404])
	}
	checkTokens(t, e, s)

	// Every request but the unknown model's has a recorder; the first token
	// is recorded for each successful stream with content.
	if got := e.value(t, "gen_ai_server_time_to_first_token_seconds", nil); got != s.firstTokens {
		t.Errorf("ttft count %v, clients saw %v", got, s.firstTokens)
	}
	checkIdle(t, e)
	if got := e.value(t, "gateway_upstream_errors_total", map[string]string{"error_type": "aborted"}); got != 1 {
		t.Errorf("aborted upstream streams: %v", got)
	}
	if got := e.value(t, "gateway_upstream_up", nil); got != 1 {
		t.Errorf("up %v", got)
	}
	if got := e.value(t, "gateway_upstream_requests_total", nil); got != 6 {
		t.Errorf("upstream requests %v", got)
	}
	if got := e.value(t, "gateway_tenant_requests_total", nil); got != 7 {
		t.Errorf("tenant requests %v", got)
	}
	if got := testutil.CollectAndCount(e.gw, "gateway_tenant_requests_total"); got != 2 {
		t.Errorf("%d tenant series, want 2", got)
	}
	if got := e.value(t, "gateway_upstream_duration_seconds", nil); got != 6 {
		t.Errorf("upstream durations %v", got)
	}
	if got := e.value(t, "gateway_overhead_seconds", nil); got != 6 {
		t.Errorf("overhead observations %v", got)
	}
	if problems, err := testutil.CollectAndLint(e.gw); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	checkTrace(t, e)
}

// checkTokens compares the token counters with the clients' view, in total
// and per tenant.
func checkTokens(t *testing.T, e *env, s *seen) {
	t.Helper()
	in := e.value(t, "inference_tokens_total", map[string]string{"gen_ai_token_type": "input"})
	out := e.value(t, "inference_tokens_total", map[string]string{"gen_ai_token_type": "output"})
	if in != s.in || out != s.out {
		t.Errorf("tokens in %v out %v, clients saw %v %v", in, out, s.in, s.out)
	}
	tin := e.value(t, "gateway_tenant_tokens_total", map[string]string{"gen_ai_token_type": "input"})
	tout := e.value(t, "gateway_tenant_tokens_total", map[string]string{"gen_ai_token_type": "output"})
	if tin != s.in || tout != s.out {
		t.Errorf("tenant tokens in %v out %v, clients saw %v %v", tin, tout, s.in, s.out)
	}
}

func checkIdle(t *testing.T, e *env) {
	t.Helper()
	for _, g := range []string{"http_server_active_requests", "inference_requests_active", "gateway_upstream_active_requests"} {
		if v := e.value(t, g, nil); v != 0 {
			t.Errorf("%s = %v after the requests", g, v)
		}
	}
}

// checkTrace: the upstream call is a client span under the server span, in
// the same trace.
func checkTrace(t *testing.T, e *env) {
	t.Helper()
	var server, client int
	traces := map[trace.TraceID]bool{}
	for _, sp := range e.spans.Ended() {
		switch sp.SpanKind() {
		case trace.SpanKindServer:
			server++
			traces[sp.SpanContext().TraceID()] = true
		case trace.SpanKindClient:
			client++
			if !traces[sp.SpanContext().TraceID()] && !sp.Parent().IsValid() {
				t.Errorf("client span %q has no parent", sp.Name())
			}
		}
	}
	if server == 0 || client == 0 {
		t.Errorf("%d server spans, %d client spans", server, client)
	}
	// The GenAI span has the response's model and id, read from the stream.
	found := false
	for _, sp := range e.spans.Ended() {
		var model, id string
		for _, kv := range sp.Attributes() {
			switch kv.Key {
			case "gen_ai.response.model":
				model = kv.Value.AsString()
			case "gen_ai.response.id":
				id = kv.Value.AsString()
			}
		}
		if model == "split" && id == "c1" {
			found = true
		}
	}
	if !found {
		t.Error("no span with gen_ai.response.model and gen_ai.response.id of the split stream")
	}
}

func TestModelsAndErrors(t *testing.T) {
	a := nasty(t)
	// b serves one model, then goes away.
	bmux := http.NewServeMux()
	bmux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"b-model","object":"model","created":2,"owned_by":"b"},{"id":"json","object":"model","created":2,"owned_by":"b"}]}`)
	})
	b := httptest.NewServer(bmux)
	e := newEnv(t, gateway.Config{Upstreams: []string{a.URL, b.URL}})
	ctx := context.Background()
	c := e.client("k")
	page, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "b-model,early-close,json,no-usage,slow-drip,split,usage-only" {
		t.Errorf("models %s", got)
	}
	if m, err := c.Models.Get(ctx, "b-model"); err != nil || m.OwnedBy != "b" {
		t.Errorf("get: %v %v", m, err)
	}
	var ae *openai.Error
	if _, err := c.Models.Get(ctx, "nope"); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Errorf("get unknown: %v", err)
	}
	b.Close()
	req := openai.ChatCompletionNewParams{Model: "b-model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	// A request that finds b gone is a 502; the first that cannot connect
	// marks it down (one on a connection b had open may fail otherwise
	// first), and the next ones are 503s until a refresh finds it back.
	got503 := false
	for i := 0; i < 3 && !got503; i++ {
		_, err := c.Chat.Completions.New(ctx, req)
		switch {
		case errors.As(err, &ae) && ae.StatusCode == 502 && ae.Code == "upstream_error":
		case errors.As(err, &ae) && ae.StatusCode == 503 && ae.Code == "upstream_unavailable" && i > 0:
			got503 = true
		default:
			t.Fatalf("request %d to a gone upstream: %v", i, err)
		}
	}
	if !got503 {
		t.Fatal("the gone upstream was not marked down")
	}
	// A model both serve goes to the one up.
	for range 3 {
		if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "json",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = e.gw.Refresh(ctx)
	e.waitRequests(t, 7)
	if got := e.value(t, "gateway_upstream_up", map[string]string{"upstream": strings.TrimPrefix(b.URL, "http://")}); got != 0 {
		t.Errorf("b up = %v", got)
	}
	if got := e.value(t, "gateway_upstream_errors_total", map[string]string{"error_type": "connect"}); got != 1 {
		t.Errorf("connect errors %v", got)
	}
	if got := e.value(t, "http_server_request_duration_seconds", map[string]string{"http_response_status_code": "503"}); got != 1 {
		t.Errorf("503s %v", got)
	}
	checkIdle(t, e)
}

// Timeouts: an upstream that does not answer in time is a 504.
func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"slow","object":"model"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	up := httptest.NewServer(mux)
	defer up.Close()
	defer close(release)
	e := newEnv(t, gateway.Config{Upstreams: []string{up.URL}, Timeout: 100 * time.Millisecond})
	_, err := e.client("k").Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "slow",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var ae *openai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 504 || ae.Code != "upstream_timeout" {
		t.Fatalf("timeout: %v", err)
	}
	e.waitRequests(t, 1)
	if got := e.value(t, "gateway_upstream_errors_total", map[string]string{"error_type": "timeout"}); got != 1 {
		t.Errorf("timeout errors %v", got)
	}
	checkIdle(t, e)
}

// Tenants: hashed, never the key, bounded.
func TestTenants(t *testing.T) {
	up := nasty(t)
	e := newEnv(t, gateway.Config{Upstreams: []string{up.URL}, MaxTenants: 3})
	for i := range 10 {
		_, err := e.client(fmt.Sprintf("secret-key-%d", i)).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "json", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.waitRequests(t, 10)
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "secret") {
					t.Errorf("%s has the raw key: %v", mf.GetName(), l)
				}
			}
		}
	}
	// One log line per request, with its upstream and hashed tenant.
	lines := 0
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var rec struct {
			Msg, Upstream, Tenant, Model string
			Status                       int
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Msg != "http request" {
			continue
		}
		lines++
		if rec.Upstream != strings.TrimPrefix(up.URL, "http://") || !strings.HasPrefix(rec.Tenant, "t-") || rec.Model != "json" || rec.Status != 200 {
			t.Errorf("log line %s", l)
		}
	}
	if lines != 10 {
		t.Errorf("%d request log lines, want 10", lines)
	}
	if strings.Contains(e.logs.String(), "secret") {
		t.Error("a raw API key is in the logs")
	}
	if n := testutil.CollectAndCount(e.gw, "gateway_tenant_requests_total"); n != 4 {
		t.Errorf("%d tenant series, want 3 and other", n)
	}
	if got := e.value(t, "gateway_tenant_requests_total", map[string]string{"tenant": gateway.TenantOther}); got != 7 {
		t.Errorf("other %v", got)
	}
}
