package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

type nopExporter struct{}

func (nopExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (nopExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkSpanStartEnd compares, in one run, a span started and ended on
// the SDK's batch processor alone and on NewProvider's, which counts it.
func BenchmarkSpanStartEnd(b *testing.B) {
	ctx := context.Background()
	counted, err := NewProvider(ctx, WithExporter(nopExporter{}))
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		tp   *sdktrace.TracerProvider
	}{
		{"sdk-batcher", sdktrace.NewTracerProvider(sdktrace.WithBatcher(nopExporter{}))},
		{"counted", counted},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			tr := c.tp.Tracer("bench")
			b.ReportAllocs()
			for b.Loop() {
				_, s := tr.Start(ctx, "s")
				s.End()
			}
		})
		_ = c.tp.Shutdown(ctx)
	}
}
