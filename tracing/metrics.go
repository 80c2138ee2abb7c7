package tracing

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/internal/promlist"
)

// Names of the span counters of Metrics.
const (
	SpansExportedName     = "modeltel_tracing_spans_exported_total"
	SpansExportFailedName = "modeltel_tracing_spans_export_failed_total"
	SpansDroppedName      = "modeltel_tracing_spans_dropped_total"
)

// Reasons of modeltel_tracing_spans_dropped_total.
const (
	// DropQueueFull: the span ended while the batch processor's queue was
	// full (the collector is down or slow).
	DropQueueFull = "queue_full"
	// DropShutdown: the span ended after Shutdown began, or was still
	// queued when Shutdown gave up (its ctx ended, or an export failed
	// during the flush).
	DropShutdown = "shutdown"
)

// Metrics counts what became of the sampled spans of the providers that
// NewProvider or Setup built with WithMetrics: each one that ends is, in the
// end, counted exactly once, as exported, export failed or dropped (while it
// waits in the queue or in an export, it is in none yet). It is a
// prometheus.Collector; register it on your registry (modeltel.Start does).
//
//	modeltel_tracing_spans_exported_total        spans the collector accepted
//	modeltel_tracing_spans_export_failed_total   spans of exports that failed
//	                                             (after the exporter's retries)
//	modeltel_tracing_spans_dropped_total{reason} queue_full, shutdown
//
// Its methods are safe for concurrent use; one Metrics may serve several
// providers.
type Metrics struct {
	exported, failed          prometheus.Counter
	droppedFull, droppedClose prometheus.Counter
	all                       promlist.Collectors
}

// NewMetrics returns span counters at zero.
func NewMetrics() *Metrics {
	dropped := func(reason string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{
			Name:        SpansDroppedName,
			Help:        "Sampled spans dropped before export, by reason (queue_full, shutdown).",
			ConstLabels: prometheus.Labels{"reason": reason},
		})
	}
	m := &Metrics{
		exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: SpansExportedName, Help: "Spans the trace exporter sent and the collector accepted.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: SpansExportFailedName, Help: "Spans of trace exports that failed, after the exporter's retries.",
		}),
		droppedFull:  dropped(DropQueueFull),
		droppedClose: dropped(DropShutdown),
	}
	m.all = promlist.Collectors{m.exported, m.failed, m.droppedFull, m.droppedClose}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { m.all.Describe(ch) }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) { m.all.Collect(ch) }
