package modeltel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/logging"
	"github.com/modeltel/modeltel/middleware"
	"github.com/modeltel/modeltel/tracing"
)

// noOTLP clears the OTLP endpoint variables, so that Start does not export.
func noOTLP(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// chat is a handler that records 3 input and 4 output tokens.
var chat = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	rec := inference.FromContext(r.Context())
	rec.InputTokens(3)
	for range 4 {
		rec.OutputTokens(1)
	}
	_, _ = io.WriteString(w, "ok")
})

func serve(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w
}

func TestStartNoBackend(t *testing.T) {
	noOTLP(t)
	var logs bytes.Buffer
	tests := []struct {
		name string
		opts []Option
	}{
		{"defaults", nil},
		{"without gpu", []Option{WithoutGPU()}},
		{"own logger", []Option{WithLogger(slog.New(slog.NewJSONHandler(&logs, nil)))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel, err := Start(context.Background(), append([]Option{WithServiceName("test")}, tt.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			if tel.Registry() == nil || tel.Inference() == nil || tel.Middleware() == nil || tel.Logger() == nil || tel.TracerProvider() == nil {
				t.Fatal("an accessor returned nil")
			}
			if tel.Exporting() {
				t.Error("exporting with no endpoint configured")
			}
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Errorf("second Shutdown: %v", err)
			}
		})
	}
	if tel, err := Start(context.Background(), WithoutGPU()); err != nil || tel.GPU() != nil {
		t.Errorf("WithoutGPU: GPU() = %v, err %v", tel.GPU(), err)
	}
}

func TestMetricsHandlerServesNames(t *testing.T) {
	noOTLP(t)
	tel, err := Start(context.Background(), WithLogger(discard()), WithoutGPU(),
		WithMiddlewareOptions(middleware.WithModel(func(*http.Request) string { return "llama-3-8b" })))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.Handle("POST /v1/chat/completions", chat)
	if w := serve(t, tel.Middleware().Handler(mux), "POST", "/v1/chat/completions", "{}"); w.Code != 200 {
		t.Fatalf("chat: %d", w.Code)
	}
	w := serve(t, tel.MetricsHandler(), "GET", "/metrics", "")
	body := w.Body.String()
	// Each want is a series: its name, label pairs that must all be there, and
	// its value ("" for any).
	for _, want := range []struct {
		name   string
		labels []string
		value  string
	}{
		{"gen_ai_server_request_duration_seconds_count", []string{`gen_ai_operation_name="chat"`, `gen_ai_request_model="llama-3-8b"`}, "1"},
		{"gen_ai_server_time_to_first_token_seconds_count", []string{`gen_ai_request_model="llama-3-8b"`}, "1"},
		{"inference_tokens_total", []string{`gen_ai_request_model="llama-3-8b"`, `gen_ai_token_type="output"`}, "4"},
		{"http_server_request_duration_seconds_count", []string{`http_request_method="POST"`, `http_response_status_code="200"`, `http_route="/v1/chat/completions"`}, "1"},
		{"go_goroutines", nil, ""},
		{"process_cpu_seconds_total", nil, ""},
	} {
		if !hasSeries(body, want.name, want.labels, want.value) {
			t.Errorf("/metrics lacks %s%v %s", want.name, want.labels, want.value)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

func TestDefaultModelFromBody(t *testing.T) {
	noOTLP(t)
	tel, err := Start(context.Background(), WithLogger(discard()), WithoutGPU())
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	h := tel.Middleware().Handler(chat)
	serve(t, h, "POST", "/v1/chat/completions", `{"model":"llama-3-8b","messages":[]}`)
	serve(t, h, "GET", "/healthz", "")
	body := serve(t, tel.MetricsHandler(), "GET", "/metrics", "").Body.String()
	if !hasSeries(body, "gen_ai_server_request_duration_seconds_count", []string{`gen_ai_request_model="llama-3-8b"`}, "1") {
		t.Errorf("the request with a model was not recorded:\n%s", body)
	}
	if n := strings.Count(body, "gen_ai_server_request_duration_seconds_count{"); n != 1 {
		t.Errorf("%d inference series, want 1 (the request without a model is not one)", n)
	}
}

func hasSeries(exposition, name string, labels []string, value string) bool {
lines:
	for _, line := range strings.Split(exposition, "\n") {
		series, v, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) || (value != "" && v != value) {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(series, l) {
				continue lines
			}
		}
		return true
	}
	return false
}

func TestTracingExport(t *testing.T) {
	noOTLP(t)
	exp := tracetest.NewInMemoryExporter()
	tel, err := Start(context.Background(), WithServiceName("svc"), WithLogger(discard()), WithoutGPU(),
		WithTracingOptions(tracing.WithExporter(exp)),
		WithMiddlewareOptions(middleware.WithModel(func(*http.Request) string { return "llama-3-8b" })))
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Exporting() {
		t.Error("Exporting() = false with an exporter given")
	}
	serve(t, tel.Middleware().Handler(chat), "POST", "/v1/chat/completions", "{}")
	// Flush, not Shutdown: the in-memory exporter forgets its spans at Shutdown.
	if err := tel.TracerProvider().(*sdktrace.TracerProvider).ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	names := map[string]bool{}
	for _, s := range exp.GetSpans() {
		names[s.Name] = true
		if s.Name == "chat llama-3-8b" {
			if v, _ := s.Resource.Set().Value("service.name"); v.AsString() != "svc" {
				t.Errorf("service.name = %q", v.AsString())
			}
		}
	}
	if !names["chat llama-3-8b"] {
		t.Errorf("exported spans %v lack the GenAI request span", names)
	}
	// The span counters are on the registry and count what was exported.
	mfs, err := tel.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exported float64
	for _, mf := range mfs {
		if mf.GetName() == tracing.SpansExportedName {
			exported = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if int(exported) != len(exp.GetSpans()) {
		t.Errorf("%s = %v, want the %d spans exported", tracing.SpansExportedName, exported, len(exp.GetSpans()))
	}
}

// lokiServer records the bodies pushed to it.
type lokiServer struct {
	mu     sync.Mutex
	bodies []string
}

func (l *lokiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.bodies = append(l.bodies, string(b))
	l.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func TestLoki(t *testing.T) {
	noOTLP(t)
	ls := &lokiServer{}
	srv := httptest.NewServer(ls)
	defer srv.Close()
	tel, err := Start(context.Background(), WithServiceName("svc"), WithoutGPU(),
		WithLogger(discard()),
		WithLoki(logging.LokiConfig{URL: srv.URL, Encoding: logging.EncodingJSON}))
	if err != nil {
		t.Fatal(err)
	}
	tel.Logger().Info("hello loki")
	mfs, err := tel.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lokiMetrics int
	for _, mf := range mfs {
		if strings.Contains(mf.GetName(), "loki") {
			lokiMetrics++
		}
	}
	if lokiMetrics == 0 {
		t.Error("no Loki metrics registered")
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	all := strings.Join(ls.bodies, "\n")
	if !strings.Contains(all, "hello loki") || !strings.Contains(all, `"service_name":"svc"`) {
		t.Errorf("Loki got %q, want the line under service_name=svc", all)
	}
}

func TestStartErrors(t *testing.T) {
	noOTLP(t)
	tests := []struct {
		name string
		opts []Option
	}{
		{"bad loki url", []Option{WithLoki(logging.LokiConfig{URL: "ftp://nowhere"})}},
		{"bad loki label", []Option{WithLoki(logging.LokiConfig{URL: "http://127.0.0.1:1", Labels: map[string]string{"bad-label": "x"}})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel, err := Start(context.Background(), append(tt.opts, WithoutGPU(), WithLogger(discard()))...)
			if err == nil || tel != nil || !strings.HasPrefix(err.Error(), "modeltel: ") {
				t.Errorf("Start = %v, %v; want a modeltel error", tel, err)
			}
		})
	}
}

func TestShutdownJoinsErrors(t *testing.T) {
	tel := &Telemetry{}
	var order []int
	e1, e2 := errors.New("one"), errors.New("two")
	tel.closers = []func(context.Context) error{
		func(context.Context) error { order = append(order, 1); return e1 },
		func(context.Context) error { order = append(order, 2); return nil },
		func(context.Context) error { order = append(order, 3); return e2 },
	}
	err := tel.Shutdown(context.Background())
	if !errors.Is(err, e1) || !errors.Is(err, e2) || len(order) != 3 || order[0] != 3 || order[2] != 1 {
		t.Errorf("err %v, order %v; want both errors, reverse order", err, order)
	}
}

func TestGlobals(t *testing.T) {
	noOTLP(t)
	prevTP, prevLog := otel.GetTracerProvider(), slog.Default()
	defer func() { otel.SetTracerProvider(prevTP); slog.SetDefault(prevLog) }()

	tel, err := Start(context.Background(), WithLogger(discard()), WithoutGPU())
	if err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() == tel.TracerProvider() || slog.Default() == tel.Logger() {
		t.Error("Start without WithGlobals set a global")
	}
	_ = tel.Shutdown(context.Background())

	tel, err = Start(context.Background(), WithLogger(discard()), WithoutGPU(), WithGlobals())
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if slog.Default() != tel.Logger() {
		t.Error("WithGlobals did not set slog's default")
	}
	if _, span := otel.Tracer("t").Start(context.Background(), "x"); !span.SpanContext().IsValid() {
		t.Error("WithGlobals did not set the tracer provider (spans have no ids)")
	}
}

// failing is a collector whose Collect always reports an error.
type failing struct{ desc *prometheus.Desc }

func (f failing) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f failing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.desc, errors.New("nvml: GPU is lost"))
}

// TestMetricsHandlerCollectorError checks that a failing collector does not
// blank the scrape: the other series are served with 200, and the error is
// logged and counted, so that it is not silently lost.
func TestMetricsHandlerCollectorError(t *testing.T) {
	noOTLP(t)
	var logs bytes.Buffer
	tel, err := Start(context.Background(), WithoutGPU(), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	tel.Registry().MustRegister(failing{prometheus.NewDesc("gpu_broken", "x", nil, nil)})
	h := tel.MetricsHandler()
	w := serve(t, h, "GET", "/metrics", "")
	body := w.Body.String()
	if w.Code != 200 || !hasSeries(body, "go_goroutines", nil, "") {
		t.Errorf("status %d, want 200 with the other series:\n%s", w.Code, body)
	}
	if !strings.Contains(logs.String(), "GPU is lost") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("the collector error was not logged as a warning: %q", logs.String())
	}
	body = serve(t, h, "GET", "/metrics", "").Body.String()
	if !hasSeries(body, "promhttp_metric_handler_errors_total", []string{`cause="gathering"`}, "1") {
		t.Errorf("the error is not counted in promhttp_metric_handler_errors_total:\n%s", body)
	}
}

// TestSDKDisabled checks that OTEL_SDK_DISABLED=true wins over an OTLP
// endpoint: nothing is exported, and Exporting says so.
func TestSDKDisabled(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	tel, err := Start(context.Background(), WithLogger(discard()), WithoutGPU())
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if tel.Exporting() {
		t.Error("Exporting() = true with OTEL_SDK_DISABLED=true")
	}
}
