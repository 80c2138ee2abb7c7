package tracing

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/testkit"
)

// flakyExporter fails (slowly, like an exporter retrying) while down.
type flakyExporter struct{ down atomic.Bool }

func (e *flakyExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	if !e.down.Load() {
		return nil
	}
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
	}
	return errors.New("collector down")
}

func (*flakyExporter) Shutdown(context.Context) error { return nil }

// Every sampled span is counted once: exported, failed or dropped, through
// an outage that fills the queue and the recovery. Unsampled spans are not
// counted.
func TestSpanAccounting(t *testing.T) {
	ctx := context.Background()
	exp := &flakyExporter{}
	m := NewMetrics()
	tp, err := NewProvider(ctx, WithExporter(exp), WithMetrics(m), WithBatchOptions(
		sdktrace.WithMaxQueueSize(8), sdktrace.WithMaxExportBatchSize(4), sdktrace.WithBatchTimeout(5*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tp.Tracer("test")
	ended := 0
	end := func(n int) {
		for range n {
			_, s := tr.Start(ctx, "s")
			s.End()
			ended++
		}
	}
	flushed := func(n int) {
		for range n / 4 {
			end(4)
			if err := tp.ForceFlush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	flushed(20)
	if c := countsOf(m); c.exported != 20 || c.sum() != 20 {
		t.Fatalf("after 20 spans, healthy: %+v", c)
	}

	exp.down.Store(true)
	for range 20 {
		end(10)
		time.Sleep(2 * time.Millisecond)
	}
	exp.down.Store(false)
	time.Sleep(50 * time.Millisecond) // the batches failing now end
	before := countsOf(m).exported
	flushed(20)
	// A child of an unsampled remote parent is not sampled (ParentBased).
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true})
	_, unsampled := tr.Start(trace.ContextWithRemoteSpanContext(ctx, parent), "u")
	unsampled.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	c := countsOf(m)
	t.Logf("ended %d: %+v", ended, c)
	if c.sum() != ended {
		t.Errorf("exported + failed + dropped = %d, want %d (%+v)", c.sum(), ended, c)
	}
	if c.failed == 0 || c.full == 0 {
		t.Errorf("want failed and queue_full counts: %+v", c)
	}
	if c.exported < before+20 {
		t.Errorf("exported %d, want the 20 spans after recovery on top of %d", c.exported, before)
	}
	testkit.Lint(t, m)
}
