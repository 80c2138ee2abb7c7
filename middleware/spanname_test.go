package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/genai"
)

// genAISpans returns the distinct names and gen_ai.request.model values of
// the ended GenAI spans (those with gen_ai.operation.name).
func genAISpans(sr *tracetest.SpanRecorder) (names, models map[string]bool) {
	names, models = map[string]bool{}, map[string]bool{}
	for _, s := range sr.Ended() {
		isGen := false
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case genai.OperationNameKey:
				isGen = true
			case genai.RequestModelKey:
				models[kv.Value.AsString()] = true
			}
		}
		if isGen {
			names[s.Name()] = true
		}
	}
	return names, models
}

// A client that sends many distinct model strings must not create as many
// span names: the GenAI span is named after the model as the metrics bound
// it.
func TestGenAISpanNameBounded(t *testing.T) {
	const distinct, maxModels = 200, 100
	t.Run("http", func(t *testing.T) {
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		inf := inference.NewMetrics(inference.WithMaxModels(maxModels))
		m := New(WithInference(inf), WithModel(ModelFromJSONBody(0)), WithTracerProvider(tp))
		h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inference.FromContext(r.Context()).OutputTokens(1)
		}))
		for i := range distinct {
			body := fmt.Sprintf(`{"model":"m-%d"}`, i)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body)))
		}
		names, models := genAISpans(sr)
		if len(names) > maxModels+1 || len(models) > maxModels+1 {
			t.Errorf("%d distinct GenAI span names, %d distinct gen_ai.request.model values; want at most %d",
				len(names), len(models), maxModels+1)
		}
		if !names["chat m-0"] || !names["chat "+inference.OtherModel] || !models[inference.OtherModel] {
			t.Errorf("span names = %v", keys(names))
		}
	})
	t.Run("grpc", func(t *testing.T) {
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		inf := inference.NewMetrics(inference.WithMaxModels(maxModels))
		m := New(WithInference(inf), WithTracerProvider(tp),
			WithGRPCModel(func(_ context.Context, _ string, req any) string { return req.(string) }))
		ic := m.UnaryServerInterceptor()
		info := &grpc.UnaryServerInfo{FullMethod: "/llm.Chat/Complete"}
		for i := range distinct {
			_, err := ic(context.Background(), fmt.Sprintf("m-%d", i), info, func(ctx context.Context, _ any) (any, error) {
				inference.FromContext(ctx).OutputTokens(1)
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		names, models := genAISpans(sr)
		if len(names) > maxModels+1 || len(models) > maxModels+1 {
			t.Errorf("%d distinct GenAI span names, %d distinct gen_ai.request.model values; want at most %d",
				len(names), len(models), maxModels+1)
		}
		if !names["chat "+inference.OtherModel] {
			t.Errorf("span names = %v", keys(names))
		}
	})
}
