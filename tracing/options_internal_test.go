package tracing

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A nil sampler or exporter is ignored, as documented: it does not clear one
// given earlier.
func TestNilOptionsIgnored(t *testing.T) {
	s := sdktrace.NeverSample()
	e := tracetest.NewInMemoryExporter()
	c := newConfig([]Option{WithSampler(s), WithExporter(e), WithSampler(nil), WithExporter(nil)})
	if c.sampler != s {
		t.Errorf("sampler = %v after WithSampler(nil), want the earlier one", c.sampler)
	}
	if c.exporter != e {
		t.Errorf("exporter = %v after WithExporter(nil), want the earlier one", c.exporter)
	}
}
