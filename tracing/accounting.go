package tracing

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ShutdownExportTimeout bounds each export that runs once Shutdown has
// begun (the export in flight then included, counted from that moment).
// The first one that fails ends the flush: the spans still queued are
// dropped (reason shutdown) rather than retried until Shutdown's ctx ends.
// When the exports were already failing before Shutdown, the flush gives up
// at once.
const ShutdownExportTimeout = 2 * time.Second

// queueSlack is room in the batch processor's queue beyond the spans we let
// in, for the markers ForceFlush puts there: the processor's own drop on a
// full queue, which nobody counts, never happens.
const queueSlack = 64

var (
	errGaveUp = errors.New("tracing: shutdown: gave up exporting after an export failed")
	errClosed = errors.New("tracing: exporter shut down")
)

// accounting sits around the batch span processor (as its processor) and
// the exporter (as its exporter) of one provider. It counts every sampled
// span once, as exported, failed or dropped, and lets in no more spans than
// the processor's queue holds, so that the processor never drops one
// uncounted. It also makes Shutdown give up quickly when the exporter fails.
type accounting struct {
	m       *Metrics
	logger  *slog.Logger
	exp     sdktrace.SpanExporter
	bsp     sdktrace.SpanProcessor
	bounded bool  // false with WithBlocking: the processor waits for room
	max     int64 // spans let in and not yet handed to the exporter, when bounded

	pending atomic.Int64 // let in, not yet handed to the exporter

	// stopMu: OnEnd holds it shared while it lets a span in, Shutdown
	// exclusively while it stops letting spans in.
	stopMu  sync.RWMutex
	stopped bool

	mu         sync.Mutex
	failures   int       // consecutive failed exports
	inflight   int       // exports running
	since      time.Time // when the last of them began
	shutting   bool      // Shutdown began
	giveUp     bool      // an export failed during Shutdown: export no more
	closed     bool      // Shutdown ended: pending counted as dropped
	lastErr    error
	lostAtStop int64 // spans failed or dropped since Shutdown began

	// runAbort ends the exports that began before Shutdown;
	// stopAbort those that began after.
	runAbort, stopAbort   context.Context
	cancelRun, cancelStop context.CancelFunc
	runAbortTimer         *time.Timer
}

// newAccounting wraps exp in a batch span processor made with opts.
func newAccounting(exp sdktrace.SpanExporter, m *Metrics, logger *slog.Logger, opts []sdktrace.BatchSpanProcessorOption) *accounting {
	a := &accounting{m: m, logger: logger, exp: exp}
	a.runAbort, a.cancelRun = context.WithCancel(context.Background())
	a.stopAbort, a.cancelStop = context.WithCancel(context.Background())
	o := batchOptions(opts)
	if !o.BlockOnQueueFull {
		a.bounded, a.max = true, int64(o.MaxQueueSize)
		opts = append(opts[:len(opts):len(opts)], sdktrace.WithMaxQueueSize(o.MaxQueueSize+queueSlack))
	}
	a.bsp = sdktrace.NewBatchSpanProcessor(exporterOf{a}, opts...)
	return a
}

// batchOptions returns the options the batch processor will have, as
// NewBatchSpanProcessor computes them (OTEL_BSP_* defaults, then opts).
func batchOptions(opts []sdktrace.BatchSpanProcessorOption) sdktrace.BatchSpanProcessorOptions {
	o := sdktrace.BatchSpanProcessorOptions{
		MaxQueueSize:       envInt("OTEL_BSP_MAX_QUEUE_SIZE", sdktrace.DefaultMaxQueueSize),
		MaxExportBatchSize: envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", sdktrace.DefaultMaxExportBatchSize),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.MaxQueueSize < 0 {
		o.MaxQueueSize = 0
	}
	return o
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

// OnStart implements sdktrace.SpanProcessor.
func (a *accounting) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) { a.bsp.OnStart(ctx, s) }

// OnEnd implements sdktrace.SpanProcessor: it counts a sampled span that
// finds no room, or ends after Shutdown began, as dropped, and hands the
// others to the batch processor.
func (a *accounting) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return // the batch processor ignores it too
	}
	a.stopMu.RLock()
	defer a.stopMu.RUnlock()
	switch {
	case a.stopped:
		a.m.droppedClose.Inc()
	case a.pending.Add(1) > a.max && a.bounded:
		a.pending.Add(-1)
		a.m.droppedFull.Inc()
	default:
		a.bsp.OnEnd(s)
	}
}

// ForceFlush implements sdktrace.SpanProcessor.
func (a *accounting) ForceFlush(ctx context.Context) error { return a.bsp.ForceFlush(ctx) }

// Shutdown implements sdktrace.SpanProcessor: it stops letting spans in,
// flushes what is queued (giving up as ShutdownExportTimeout says), counts
// what was not exported and logs it.
func (a *accounting) Shutdown(ctx context.Context) error {
	a.stopMu.Lock()
	a.stopped = true
	a.stopMu.Unlock()

	a.mu.Lock()
	a.shutting = true
	// An export still running after ShutdownExportTimeout is failing too
	// (one that succeeds takes milliseconds): the exporter is retrying.
	left := ShutdownExportTimeout
	if a.inflight > 0 {
		left -= time.Since(a.since)
	}
	if a.failures > 0 || left <= 0 {
		a.giveUp = true
		a.cancelRun()
	} else {
		a.runAbortTimer = time.AfterFunc(left, a.cancelRun)
	}
	a.mu.Unlock()

	err := a.bsp.Shutdown(ctx)

	a.mu.Lock()
	a.closed = true
	unsent := a.pending.Swap(0)
	a.lostAtStop += unsent
	lost, lastErr := a.lostAtStop, a.lastErr
	if a.runAbortTimer != nil {
		a.runAbortTimer.Stop()
	}
	a.mu.Unlock()
	a.m.droppedClose.Add(float64(unsent))
	// Exports still running (Shutdown's ctx ended first) stop now; they
	// count their spans as failed.
	a.cancelRun()
	a.cancelStop()

	if lost > 0 {
		l := a.logger
		if l == nil {
			l = slog.Default()
		}
		attrs := []any{"spans", lost}
		if lastErr != nil {
			attrs = append(attrs, "error", lastErr.Error())
		}
		l.Warn("tracing: shutdown: spans not exported", attrs...)
	}
	return err
}

// exporterOf is the exporter the batch processor sees.
type exporterOf struct{ a *accounting }

// ExportSpans implements sdktrace.SpanExporter.
func (e exporterOf) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	a := e.a
	n := int64(len(spans))
	a.mu.Lock()
	if a.closed {
		// Counted as dropped when Shutdown ended.
		a.mu.Unlock()
		return errClosed
	}
	a.pending.Add(-n)
	giveUp, shutting := a.giveUp, a.shutting
	if giveUp {
		a.lostAtStop += n
	} else {
		a.inflight++
		a.since = time.Now()
	}
	a.mu.Unlock()
	if giveUp {
		a.m.droppedClose.Add(float64(n))
		return errGaveUp
	}

	abort := a.runAbort
	if shutting {
		abort = a.stopAbort
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ShutdownExportTimeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(abort, cancel)()

	err := a.exp.ExportSpans(ctx, spans)

	a.mu.Lock()
	a.inflight--
	if err != nil {
		a.failures++
		a.lastErr = err
		if a.shutting {
			a.giveUp = true
			a.lostAtStop += n
		}
	} else {
		a.failures = 0
	}
	giveUp = a.giveUp
	a.mu.Unlock()
	if err != nil {
		a.m.failed.Add(float64(n))
		if giveUp {
			a.cancelStop()
		}
		return err
	}
	a.m.exported.Add(float64(n))
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (e exporterOf) Shutdown(ctx context.Context) error { return e.a.exp.Shutdown(ctx) }
