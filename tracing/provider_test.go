package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/modeltel/modeltel/internal/genai"
)

// gen_ai.provider.name is Required on GenAI spans (semantic-conventions-genai,
// gen-ai-spans.md): StartRequest sets "self_hosted" unless told otherwise.
func TestStartRequestProviderName(t *testing.T) {
	for _, tt := range []struct {
		opts []SpanOption
		want string
	}{
		{nil, genai.DefaultProviderName},
		{[]SpanOption{WithProviderName("vllm")}, "vllm"},
	} {
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		_, span := StartRequest(context.Background(), "chat", "m", append(tt.opts, WithTracerProvider(tp))...)
		span.End()
		var got string
		n := 0
		for _, kv := range sr.Ended()[0].Attributes() {
			if kv.Key == genai.ProviderNameKey {
				got = kv.Value.AsString()
				n++
			}
		}
		if got != tt.want || n != 1 {
			t.Errorf("gen_ai.provider.name = %q (%d times), want %q once", got, n, tt.want)
		}
	}
}
