package genai

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestStartRequestSpan(t *testing.T) {
	tests := []struct {
		op, model, wantName string
		wantAttrs           int
	}{
		{"chat", "llama-3-8b", "chat llama-3-8b", 2},
		{"embeddings", "", "embeddings", 1},
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			_, span := StartRequestSpan(context.Background(), tp.Tracer(TracerName), tt.op, tt.model)
			span.End()
			got := rec.Ended()
			if len(got) != 1 {
				t.Fatalf("ended spans = %d, want 1", len(got))
			}
			if got[0].Name() != tt.wantName {
				t.Errorf("name = %q, want %q", got[0].Name(), tt.wantName)
			}
			if n := len(got[0].Attributes()); n != tt.wantAttrs {
				t.Errorf("attributes = %d (%v), want %d", n, got[0].Attributes(), tt.wantAttrs)
			}
		})
	}
}
