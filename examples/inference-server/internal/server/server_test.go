package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/modeltel/modeltel/examples/inference-server/generatepb"
	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/examples/internal/openai"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/testkit"
	"github.com/modeltel/modeltel/tracing"
)

// env is a server with its telemetry: an SDK tracer provider recording into
// spans, inference metrics on reg.
type env struct {
	srv   *Server
	reg   *prometheus.Registry
	inf   *inference.Metrics
	spans *tracetest.SpanRecorder
	tp    trace.TracerProvider
	http  *httptest.Server
}

func newEnv(t *testing.T, cfg fakemodel.Config, wrap func(e *env, h http.Handler) http.Handler) *env {
	t.Helper()
	e := &env{reg: prometheus.NewPedanticRegistry(), spans: tracetest.NewSpanRecorder()}
	e.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	e.inf = inference.NewMetrics(inference.WithModels(fakemodel.DefaultModels...))
	e.reg.MustRegister(e.inf)
	models := []*fakemodel.Model{
		fakemodel.New("fake-llama-3-8b", cfg),
		fakemodel.New("fake-mistral-7b", fakemodel.Config{ContextLength: 16}),
	}
	e.srv = New(Config{Models: models, MaxTokens: 64, Inference: e.inf, TracerProvider: e.tp})
	if err := e.srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if wrap == nil {
		wrap = instrument
	}
	e.http = httptest.NewServer(wrap(e, e.srv.Handler()))
	t.Cleanup(e.http.Close)
	return e
}

// instrument does what the modeltel middleware does for a request: it starts
// the GenAI request span and the inference recorder, with the model from
// ModelFunc, and ends the recorder after the handler (a no-op when the
// handler ended it).
func instrument(e *env, h http.Handler) http.Handler {
	modelOf, opOf := ModelFunc(e.srv.cfg.Models), OperationFunc()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		model, op := modelOf(r), opOf(r)
		if op == "" {
			op = OperationChat
		}
		ctx, span := tracing.StartRequest(r.Context(), op, model, tracing.WithTracerProvider(e.tp))
		defer span.End()
		ctx, rec := e.inf.Start(ctx, inference.Request{Model: model, Operation: op})
		defer rec.End(nil)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func chatReq(model string, stream bool, maxTokens int) openai.ChatRequest {
	r := openai.ChatRequest{Model: model, Stream: stream,
		Messages: []openai.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Why is the sky blue?"}}}
	if maxTokens > 0 {
		r.MaxTokens = &maxTokens
	}
	return r
}

func TestChatStreamingAndPlainAgree(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	c := &openai.Client{BaseURL: e.http.URL}
	ctx := context.Background()
	tests := []struct {
		name       string
		maxTokens  int
		wantFinish string
	}{
		{"natural end", 0, fakemodel.FinishStop},
		{"max tokens", 5, fakemodel.FinishLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain, err := c.Chat(ctx, chatReq("fake-llama-3-8b", false, tt.maxTokens))
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := c.Chat(ctx, chatReq("fake-llama-3-8b", true, tt.maxTokens))
			if err != nil {
				t.Fatal(err)
			}
			if plain.Text == "" || plain.Text != streamed.Text {
				t.Errorf("plain %q != streamed %q", plain.Text, streamed.Text)
			}
			if plain.Usage != streamed.Usage || plain.FinishReason != tt.wantFinish || streamed.FinishReason != tt.wantFinish {
				t.Errorf("usage %+v / %+v, finish %q / %q, want finish %q", plain.Usage, streamed.Usage, plain.FinishReason, streamed.FinishReason, tt.wantFinish)
			}
			u := plain.Usage
			if u.PromptTokens != 9 || u.TotalTokens != u.PromptTokens+u.CompletionTokens || streamed.Chunks != u.CompletionTokens {
				t.Errorf("usage %+v, %d chunks; want 9 prompt tokens, one chunk per completion token", u, streamed.Chunks)
			}
			if tt.maxTokens > 0 && u.CompletionTokens != tt.maxTokens {
				t.Errorf("completion tokens %d, want %d", u.CompletionTokens, tt.maxTokens)
			}
		})
	}
}

// TestStreamWireFormat checks the SSE framing and that the usage chunk (whose
// choices are empty) comes only when stream_options.include_usage asks for
// it, as OpenAI does: clients that index choices[0] of every chunk (the
// OpenAI quickstart does) break on an usage chunk they did not ask for.
func TestStreamWireFormat(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	tests := []struct {
		name, opts string
		usage      bool
	}{
		{"no stream_options", ``, false},
		{"include_usage false", `"stream_options":{"include_usage":false},`, false},
		{"include_usage", `"stream_options":{"include_usage":true},`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(e.http.URL+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"fake-llama-3-8b","stream":true,`+tt.opts+`"max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !strings.HasSuffix(string(b), "\n\ndata: [DONE]\n\n") {
				t.Errorf("stream does not end with data: [DONE]:\n%s", b)
			}
			events := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
			// role, 2 tokens, finish, [usage], [DONE]
			n := 5
			if tt.usage {
				n = 6
			}
			if len(events) != n || events[n-1] != "data: [DONE]" {
				t.Fatalf("%d events, want %d:\n%s", len(events), n, b)
			}
			chunks := make([]map[string]any, n-1)
			for i := range chunks {
				if err := json.Unmarshal([]byte(strings.TrimPrefix(events[i], "data: ")), &chunks[i]); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
			}
			first, fin := chunks[0], chunks[3]
			if first["object"] != "chat.completion.chunk" || !strings.HasPrefix(first["id"].(string), "chatcmpl-") {
				t.Errorf("first chunk %v", first)
			}
			if got := fin["choices"].([]any)[0].(map[string]any)["finish_reason"]; got != "length" {
				t.Errorf("finish chunk %v", fin)
			}
			for i, c := range chunks[:4] {
				if len(c["choices"].([]any)) != 1 || c["usage"] != nil {
					t.Errorf("chunk %d: %v, want one choice and no usage", i, c)
				}
			}
			if !tt.usage {
				return
			}
			usage := chunks[4]
			if u, _ := usage["usage"].(map[string]any); u["completion_tokens"] != 2.0 || u["prompt_tokens"] != 1.0 || len(usage["choices"].([]any)) != 0 {
				t.Errorf("usage chunk %v", usage)
			}
		})
	}
}

// TestMaxCompletionTokens checks max_completion_tokens, which the current
// OpenAI SDKs send instead of the deprecated max_tokens, and that it wins
// over max_tokens when both are given.
func TestMaxCompletionTokens(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	tests := []struct {
		name, limits string
		want         float64
	}{
		{"max_completion_tokens", `"max_completion_tokens":3`, 3},
		{"max_tokens", `"max_tokens":4`, 4},
		{"both", `"max_tokens":4,"max_completion_tokens":2`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, b := post(t, e.http.URL, `{"model":"fake-llama-3-8b",`+tt.limits+`,"messages":[{"role":"user","content":"Why is the sky blue?"}]}`)
			var got struct {
				Usage   map[string]float64 `json:"usage"`
				Choices []map[string]any   `json:"choices"`
			}
			if err := json.Unmarshal(b, &got); err != nil || status != 200 {
				t.Fatalf("%d %s: %v", status, b, err)
			}
			if got.Usage["completion_tokens"] != tt.want || len(got.Choices) != 1 || got.Choices[0]["finish_reason"] != "length" {
				t.Errorf("answer %s, want %v completion tokens, finish length", b, tt.want)
			}
		})
	}
}

// TestContentParts checks the message shapes the OpenAI SDKs send besides a
// plain string: an array of content parts (text parts are the prompt, others
// ignored) and null content (an assistant turn with tool calls), and that
// unknown fields are accepted.
func TestContentParts(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	tests := []struct {
		name, messages string
		status         int
		prompt         float64
	}{
		{"string", `[{"role":"user","content":"Why is the sky blue?"}]`, 200, 6},
		{"parts", `[{"role":"user","content":[{"type":"text","text":"Why is"},{"type":"image_url","image_url":{"url":"data:,"}},{"type":"text","text":"the sky blue?"}]}]`, 200, 6},
		{"null content and unknown fields", `[{"role":"assistant","content":null,"tool_calls":[]},{"role":"user","name":"u","content":"Why is the sky blue?"}]`, 200, 6},
		{"number content", `[{"role":"user","content":42}]`, 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, b := post(t, e.http.URL, `{"model":"fake-llama-3-8b","max_tokens":1,"temperature":0.2,"messages":`+tt.messages+`}`)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, b)
			}
			if status != 200 {
				return
			}
			var got struct{ Usage map[string]float64 }
			if err := json.Unmarshal(b, &got); err != nil || got.Usage["prompt_tokens"] != tt.prompt {
				t.Errorf("answer %s, want %v prompt tokens", b, tt.prompt)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	tests := []struct {
		name, body string
		status     int
		param      any // nil or string
		code       any
		errorType  string
	}{
		{"bad json", `{"model":`, 400, nil, "invalid_json", "invalid_json"},
		{"missing model", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "model", "missing_required_parameter", "missing_required_parameter"},
		{"missing messages", `{"model":"fake-llama-3-8b"}`, 400, "messages", "missing_required_parameter", "missing_required_parameter"},
		{"unknown model", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404, "model", "model_not_found", "model_not_found"},
		{"too many tokens", `{"model":"fake-llama-3-8b","max_tokens":65,"messages":[{"role":"user","content":"hi"}]}`, 400, "max_tokens", "invalid_value", "invalid_value"},
		{"zero tokens", `{"model":"fake-llama-3-8b","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, 400, "max_tokens", "invalid_value", "invalid_value"},
		{"too many completion tokens", `{"model":"fake-llama-3-8b","max_completion_tokens":65,"messages":[{"role":"user","content":"hi"}]}`, 400, "max_completion_tokens", "invalid_value", "invalid_value"},
		{"context length", `{"model":"fake-mistral-7b","max_tokens":10,"messages":[{"role":"user","content":"one two three four five six seven"}]}`, 400, "messages", "context_length_exceeded", "context_length_exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, b := post(t, e.http.URL, tt.body)
			if status != tt.status {
				t.Errorf("status = %d, want %d", status, tt.status)
			}
			var got map[string]map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("body %s: %v", b, err)
			}
			er := got["error"]
			if len(er) != 4 || er["type"] != "invalid_request_error" || er["param"] != tt.param || er["code"] != tt.code || er["message"] == "" {
				t.Errorf("error = %v, want param %v code %v", er, tt.param, tt.code)
			}
		})
	}
	// Every error is recorded once under its error type.
	e.http.Close()
	want := map[string]uint64{}
	for _, tt := range tests {
		want[tt.errorType]++
	}
	got := durationCounts(t, e.reg)
	for et, n := range want {
		if got[et] != n {
			t.Errorf("duration count for error_type %q = %d, want %d (all: %v)", et, got[et], n, got)
		}
	}
}

func TestNotReady(t *testing.T) {
	srv := New(Config{Models: []*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{})}})
	h := srv.Handler()
	tests := []struct {
		path   string
		status int
	}{
		{"/healthz", 200},
		{"/readyz", 503},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
		if w.Code != tt.status {
			t.Errorf("%s before load: %d, want %d", tt.path, w.Code, tt.status)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"fake-llama-3-8b","messages":[{"role":"user","content":"hi"}]}`)))
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"code":"model_not_ready"`) {
		t.Errorf("chat before load: %d %s", w.Code, w.Body)
	}
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != 200 {
		t.Errorf("/readyz after load: %d", w.Code)
	}

	// Draining: not ready any more, but requests that still arrive are served.
	srv.Drain()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != 503 || !strings.Contains(w.Body.String(), "shutting down") || srv.Ready() {
		t.Errorf("/readyz while draining: %d %q, Ready() = %v", w.Code, w.Body, srv.Ready())
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"fake-llama-3-8b","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`)))
	if w.Code != 200 {
		t.Errorf("chat while draining: %d %s", w.Code, w.Body)
	}
}

func TestModels(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	resp, err := http.Get(e.http.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list openai.ModelList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "fake-llama-3-8b" || list.Data[1].Object != "model" {
		t.Errorf("models = %+v", list)
	}
}

func TestModelFunc(t *testing.T) {
	f := ModelFunc([]*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{})})
	big := `{"model":"fake-llama-3-8b","messages":[{"role":"user","content":"` + strings.Repeat("x", MaxBodyBytes) + `"}]}`
	const chat = "/v1/chat/completions"
	tests := []struct {
		name, method, path, body, want string
	}{
		{"served", "POST", chat, `{"model":"fake-llama-3-8b","messages":[]}`, "fake-llama-3-8b"},
		{"unknown", "POST", chat, `{"model":"gpt-9"}`, "other"},
		{"no model", "POST", chat, `{"messages":[]}`, ""},
		{"bad json", "POST", chat, `{"model":`, ""},
		{"get", "GET", chat, "", ""},
		{"model before the bound", "POST", chat, big, "fake-llama-3-8b"},
		{"model after the bound", "POST", chat, `{"messages":[{"role":"user","content":"` + strings.Repeat("x", MaxBodyBytes) + `"}],"model":"fake-llama-3-8b"}`, ""},
		// A path the API does not serve (a 404) is no chat request.
		{"unknown path", "POST", "/v1/images/generations", `{"model":"fake-llama-3-8b","prompt":"hi"}`, ""},
		{"completions", "POST", "/v1/completions", `{"model":"fake-llama-3-8b","prompt":"hi"}`, "fake-llama-3-8b"},
		{"embeddings", "POST", "/v1/embeddings", `{"model":"gpt-9","input":"hi"}`, "other"},
		{"trailing slash", "POST", chat + "/", `{"model":"fake-llama-3-8b","messages":[]}`, ""},
		// The mux does not take an escaped slash for a separator: a 404,
		// though the decoded path is the chat path. Other escapes it
		// decodes: the chat endpoint.
		{"escaped slash", "POST", "/v1/chat%2Fcompletions", `{"model":"fake-llama-3-8b","messages":[]}`, ""},
		{"escaped slash, lower case", "POST", "/v1%2fchat/completions", `{"model":"fake-llama-3-8b","messages":[]}`, ""},
		{"escaped letter", "POST", "/v1/chat/%63ompletions", `{"model":"fake-llama-3-8b","messages":[]}`, "fake-llama-3-8b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if got := f(r); got != tt.want {
				t.Errorf("model = %q, want %q", got, tt.want)
			}
			rest, _ := io.ReadAll(r.Body)
			if string(rest) != tt.body {
				t.Errorf("body not restored: %d bytes, want %d", len(rest), len(tt.body))
			}
		})
	}
}

func TestGRPCModelFunc(t *testing.T) {
	f := GRPCModelFunc([]*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{})})
	tests := []struct {
		name string
		req  any
		want string
	}{
		{"served", &generatepb.GenerateRequest{Model: "fake-llama-3-8b"}, "fake-llama-3-8b"},
		{"unknown", &generatepb.GenerateRequest{Model: "gpt-9"}, "other"},
		{"no model", &generatepb.GenerateRequest{Prompt: "hi"}, ""},
		{"other message", &generatepb.GenerateResponse{Token: "fake-llama-3-8b"}, ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f(context.Background(), GenerateMethod, tt.req); got != tt.want {
				t.Errorf("model = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMetricsRecorded(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	c := &openai.Client{BaseURL: e.http.URL}
	var wantOut int
	for i, stream := range []bool{false, true, true} {
		res, err := c.Chat(context.Background(), chatReq("fake-llama-3-8b", stream, 3+i))
		if err != nil {
			t.Fatal(err)
		}
		wantOut += res.Usage.CompletionTokens
	}
	e.http.Close() // waits for the handlers, which end the recorders after the answer
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ttft := find(mfs, "gen_ai_server_time_to_first_token_seconds")
	if ttft == nil || len(ttft.Metric) != 1 || ttft.Metric[0].GetHistogram().GetSampleCount() != 3 {
		t.Fatalf("TTFT histogram: %v, want one series with 3 samples", ttft)
	}
	var in, out float64
	for _, m := range find(mfs, "inference_tokens_total").GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "gen_ai_token_type" {
				switch l.GetValue() {
				case "input":
					in += m.GetCounter().GetValue()
				case "output":
					out += m.GetCounter().GetValue()
				}
			}
		}
	}
	if in != 3*9 || out != float64(wantOut) || wantOut != 3+4+5 {
		t.Errorf("tokens in %v out %v, want %d and %d", in, out, 3*9, wantOut)
	}
}

func TestSpans(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "stream"}[stream], func(t *testing.T) {
			res, err := (&openai.Client{BaseURL: e.http.URL}).Chat(context.Background(), chatReq("fake-llama-3-8b", stream, 4))
			if err != nil {
				t.Fatal(err)
			}
			var req sdktrace.ReadOnlySpan
			ended := e.spans.Ended()
			for _, s := range ended {
				if s.Name() == "chat fake-llama-3-8b" {
					req = s // the latest
				}
			}
			if req == nil {
				t.Fatalf("no request span among %d", len(ended))
			}
			children := map[string]int{}
			phases := map[string]int{}
			for _, s := range ended {
				if s.Parent().SpanID() != req.SpanContext().SpanID() {
					continue
				}
				children[s.Name()]++
				for _, a := range s.Attributes() {
					if a.Key == tracing.PhaseKey {
						phases[a.Value.AsString()]++
					}
				}
			}
			// decode passes: one per token, and the one that found the end.
			if children["tokenize"] != 1 || children["forward"] != 2+res.Usage.CompletionTokens ||
				phases["prefill"] != 1 || phases["decode"] != res.Usage.CompletionTokens+1 {
				t.Errorf("children of the request span: %v, phases %v (%d tokens)", children, phases, res.Usage.CompletionTokens)
			}
		})
	}
	var loads int
	for _, s := range e.spans.Ended() {
		if s.Name() == "model.load" && !s.Parent().IsValid() {
			loads++
		}
	}
	if loads != 2 {
		t.Errorf("model.load root spans = %d, want 2", loads)
	}
}

func TestClientGoneIsCounted(t *testing.T) {
	// One token a minute: only the client's cancellation ends the request.
	e := newEnv(t, fakemodel.Config{TokensPerSecond: 1.0 / 60}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := (&openai.Client{BaseURL: e.http.URL}).Chat(ctx, chatReq("fake-llama-3-8b", true, 0))
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for active(t, e.reg) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("request never became active")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client err = %v", err)
	}
	e.http.Close() // waits for the handler
	if got := durationCounts(t, e.reg)["canceled"]; got != 1 {
		t.Errorf("canceled requests = %d, want 1", got)
	}
}

func TestGRPC(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	gs := grpc.NewServer()
	e.srv.RegisterGRPC(gs)
	client := generatepb.NewGeneratorClient(testkit.ServeBufconn(t, gs))

	plain, err := (&openai.Client{BaseURL: e.http.URL}).Chat(context.Background(),
		openai.ChatRequest{Model: "fake-llama-3-8b", Messages: []openai.Message{{Role: "user", Content: "Why is the sky blue?"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.http.Close()
	tests := []struct {
		name string
		req  *generatepb.GenerateRequest
		code codes.Code
	}{
		{"ok", &generatepb.GenerateRequest{Model: "fake-llama-3-8b", Prompt: "Why is the sky blue?"}, codes.OK},
		{"unknown model", &generatepb.GenerateRequest{Model: "gpt-9", Prompt: "hi"}, codes.NotFound},
		{"too many tokens", &generatepb.GenerateRequest{Model: "fake-llama-3-8b", Prompt: "hi", MaxTokens: 1000}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := client.Generate(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			var last *generatepb.GenerateResponse
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					if status.Code(err) != tt.code {
						t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.code)
					}
					return
				}
				text.WriteString(resp.Token)
				last = resp
			}
			if tt.code != codes.OK {
				t.Fatalf("no error, want %v", tt.code)
			}
			// The same text as over HTTP, first token without its leading space.
			if text.String() != plain.Text || last.Usage == nil || int(last.Usage.CompletionTokens) != plain.Usage.CompletionTokens {
				t.Errorf("grpc text %q usage %+v; http %q %+v", text.String(), last.Usage, plain.Text, plain.Usage)
			}
		})
	}
	got := durationCounts(t, e.reg)
	if got[""] != 2 || got["model_not_found"] != 1 || got["invalid_value"] != 1 {
		t.Errorf("duration counts by error type = %v, want 2 ok (http+grpc), 1 model_not_found, 1 invalid_value", got)
	}
	reqSpans := map[string]int{}
	for _, s := range e.spans.Ended() {
		if strings.HasPrefix(s.Name(), "chat ") {
			reqSpans[s.Name()]++
		}
	}
	// HTTP: 1; gRPC: the served model twice (ok, too many tokens), gpt-9 once.
	if reqSpans["chat fake-llama-3-8b"] != 3 || reqSpans["chat other"] != 1 {
		t.Errorf("request spans = %v", reqSpans)
	}
}

// durationCounts returns the request duration sample count by error_type.
func durationCounts(t *testing.T, g prometheus.Gatherer) map[string]uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, m := range find(mfs, "gen_ai_server_request_duration_seconds").GetMetric() {
		et := ""
		for _, l := range m.Label {
			if l.GetName() == "error_type" {
				et = l.GetValue()
			}
		}
		out[et] += m.GetHistogram().GetSampleCount()
	}
	return out
}

func active(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, m := range find(mfs, "inference_requests_active").GetMetric() {
		n += m.GetGauge().GetValue()
	}
	return n
}

func find(mfs []*dto.MetricFamily, name string) *dto.MetricFamily {
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}
