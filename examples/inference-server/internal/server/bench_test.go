package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/inference"
)

const benchBody = `{"model":"fake-llama-3-8b","max_tokens":16,"stream":%s,"messages":[{"role":"user","content":"Why is the sky blue?"}]}`

func benchChat(b *testing.B, instrumented, stream bool) {
	models := []*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{})}
	e := &env{reg: prometheus.NewRegistry(), inf: inference.NewMetrics()}
	e.reg.MustRegister(e.inf)
	e.tp = noop.NewTracerProvider()
	if instrumented {
		// Spans recorded (sampled) but dropped: the SDK's cost without I/O.
		e.tp = sdktrace.NewTracerProvider()
	}
	e.srv = New(Config{Models: models, Inference: e.inf, TracerProvider: e.tp})
	if err := e.srv.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	var h http.Handler = e.srv.Handler()
	if instrumented {
		h = instrument(e, h)
	}
	body := strings.Replace(benchBody, "%s", map[bool]string{false: "false", true: "true"}[stream], 1)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body)))
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkChat is one 16-token chat request through the handler with the
// request span, recorder and phase spans (18 spans) recorded by an SDK
// provider; BenchmarkChatBaseline is the same handler with a no-op tracer
// provider and no recorder.
func BenchmarkChat(b *testing.B)               { benchChat(b, true, false) }
func BenchmarkChatBaseline(b *testing.B)       { benchChat(b, false, false) }
func BenchmarkChatStream(b *testing.B)         { benchChat(b, true, true) }
func BenchmarkChatStreamBaseline(b *testing.B) { benchChat(b, false, true) }
