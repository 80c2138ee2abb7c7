package middleware

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/genai"
	"github.com/modeltel/modeltel/internal/testkit"
)

// seriesLabels returns the label sets of the series of v.
func seriesLabels(t *testing.T, v prometheus.Collector) []map[string]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(v)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out = append(out, l)
		}
	}
	return out
}

// HTTP semantic conventions (http-metrics.md, http.server.request.duration,
// http.server.request.body.size, http.server.response.body.size):
// url.scheme is Required; error.type is Conditionally Required "if the
// request has ended with an error" (a 5xx status: its value is the status
// code); http.route is Conditionally Required "if and only if it's
// available", so a request no route matched has none.
func TestHTTPSemconvLabels(t *testing.T) {
	m := New(WithTracerProvider(nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	h := m.Handler(mux)
	for _, target := range []string{"/ok", "/fail", "/nope", "https://example.com/ok"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	want := map[string]map[string]string{
		"/ok 200 http":  {"url_scheme": "http", "error_type": ""},
		"/fail 503":     {"url_scheme": "http", "error_type": "503"},
		" 404":          {"url_scheme": "http", "error_type": ""}, // http_route "": Prometheus stores no label
		"/ok 200 https": {"url_scheme": "https", "error_type": ""},
	}
	for _, vec := range []*prometheus.HistogramVec{m.duration, m.reqSize, m.respSize} {
		got := seriesLabels(t, vec)
		if len(got) != len(want) {
			t.Fatalf("series = %v", got)
		}
		for _, l := range got {
			key := l["http_route"] + " " + l["http_response_status_code"]
			if l["http_route"] == "/ok" {
				key += " " + l["url_scheme"]
			}
			w, ok := want[key]
			if !ok {
				t.Errorf("unexpected series %v", l)
				continue
			}
			for k, v := range w {
				if l[k] != v {
					t.Errorf("series %v: %s = %q, want %q", l, k, l[k], v)
				}
			}
		}
	}
	testkit.Lint(t, m)
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	a := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		a[kv.Key] = kv.Value
	}
	return a
}

// Server span (http-spans.md): server.address is the host without the port,
// server.port the port. GenAI span (gen-ai-spans.md, inference):
// gen_ai.provider.name Required; gen_ai.request.max_tokens, temperature,
// top_p and gen_ai.request.stream Recommended; server.address Recommended,
// server.port Conditionally Required with it; and
// gen_ai.response.time_to_first_chunk Recommended for a streaming response.
func TestSpanConventions(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	inf := inference.NewMetrics(inference.WithProviderName("vllm"))
	m := New(WithInference(inf), WithRequest(RequestFromJSONBody(0)), WithTracerProvider(tp))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		rec := inference.FromContext(r.Context())
		rec.OutputTokens(1)
		rec.SetResponse(inference.Response{Model: "llama-3-8b-2024", ID: "chatcmpl-7", FinishReasons: []string{"stop"}})
	})
	body := `{"model":"llama-3-8b","messages":[{"role":"user","content":"hi"}],"max_tokens":64,"temperature":0.2,"top_p":0.95,"stream":true}`
	req := httptest.NewRequest("POST", "http://llm.internal:8000/v1/chat/completions", strings.NewReader(body))
	m.Handler(mux).ServeHTTP(httptest.NewRecorder(), req)

	var server, gen sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		switch s.Name() {
		case "POST /v1/chat/completions":
			server = s
		case "chat llama-3-8b":
			gen = s
		}
	}
	if server == nil || gen == nil {
		t.Fatalf("spans = %v", sr.Ended())
	}
	sa := spanAttrs(server)
	if sa["server.address"].AsString() != "llm.internal" || sa["server.port"].AsInt64() != 8000 {
		t.Errorf("server span server.address = %q, server.port = %v", sa["server.address"].AsString(), sa["server.port"].AsInt64())
	}
	ga := spanAttrs(gen)
	checks := []struct {
		key  attribute.Key
		got  any
		want any
	}{
		{genai.ProviderNameKey, ga[genai.ProviderNameKey].AsString(), "vllm"},
		{genai.RequestMaxTokensKey, ga[genai.RequestMaxTokensKey].AsInt64(), int64(64)},
		{genai.RequestTemperatureKey, ga[genai.RequestTemperatureKey].AsFloat64(), 0.2},
		{genai.RequestTopPKey, ga[genai.RequestTopPKey].AsFloat64(), 0.95},
		{genai.RequestStreamKey, ga[genai.RequestStreamKey].AsBool(), true},
		{genai.ServerAddressKey, ga[genai.ServerAddressKey].AsString(), "llm.internal"},
		{genai.ServerPortKey, ga[genai.ServerPortKey].AsInt64(), int64(8000)},
		{genai.ResponseModelKey, ga[genai.ResponseModelKey].AsString(), "llama-3-8b-2024"},
		{genai.ResponseIDKey, ga[genai.ResponseIDKey].AsString(), "chatcmpl-7"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("GenAI span %s = %v, want %v", c.key, c.got, c.want)
		}
	}
	if _, ok := ga[genai.ResponseTimeToFirstChunkKey]; !ok {
		t.Errorf("GenAI span lacks %s on a streaming request", genai.ResponseTimeToFirstChunkKey)
	}
}

func TestAppendServerAddr(t *testing.T) {
	tests := []struct {
		host, addr string
		port       int64
	}{
		{"example.com", "example.com", 0},
		{"example.com:8080", "example.com", 8080},
		{"[::1]:9000", "::1", 9000},
		{"[::1]", "::1", 0},
		{"host:notaport", "host", 0},
		{"", "", 0},
	}
	for _, tt := range tests {
		a := map[attribute.Key]attribute.Value{}
		for _, kv := range appendServerAddr(nil, tt.host) {
			a[kv.Key] = kv.Value
		}
		if a["server.address"].AsString() != tt.addr || a["server.port"].AsInt64() != tt.port {
			t.Errorf("%q: address %q port %d, want %q %d", tt.host, a["server.address"].AsString(), a["server.port"].AsInt64(), tt.addr, tt.port)
		}
	}
}

// gen_ai.operation.name well-known values (gen-ai-spans.md): chat,
// text_completion ("OpenAI Completions API (Legacy)"), embeddings.
func TestOperationFromPath(t *testing.T) {
	for path, want := range map[string]string{
		"/v1/chat/completions": "chat",
		"/v1/completions":      "text_completion",
		"/v1/completions/":     "text_completion",
		"/v1/embeddings":       "embeddings",
		"/generate":            "chat",
		"/":                    "chat",
	} {
		if got := OperationFromPath(httptest.NewRequest("POST", path, nil)); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}
