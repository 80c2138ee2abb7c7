package logging

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/internal/promlist"
)

func (c *lokiCore) initMetrics() {
	c.sentLines = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "logging_loki_sent_lines_total",
		Help: "Log lines Loki accepted.",
	})
	c.pushErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "logging_loki_push_errors_total",
		Help: "Failed push attempts to Loki (network errors and non-2xx answers), retried or not.",
	})
	c.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logging_loki_dropped_lines_total",
		Help: "Log lines dropped before Loki accepted them, by reason.",
	}, []string{"reason"})
	c.drops = map[string]prometheus.Counter{}
	for _, r := range []string{DropQueueFull, DropRejected, DropRetriesExhausted, DropClosed, DropEncode, DropTooLarge} {
		c.drops[r] = c.dropped.WithLabelValues(r)
	}
	c.queueLen = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logging_loki_queue_length",
		Help: "Log lines waiting in the queue to be batched and pushed to Loki.",
	}, func() float64 { return float64(c.queueLength()) })
	c.pushingLen = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logging_loki_pushing_lines",
		Help: "Log lines handed to a push to Loki and not yet sent or dropped (being encoded, posted, or waiting to retry).",
	}, func() float64 { return float64(c.pushing.Load()) })
	// Collected in the order a line moves (queue, push, then sent or
	// dropped), so that a scrape sees every line logged before it in at
	// least one of them.
	c.all = promlist.Collectors{c.queueLen, c.pushingLen, c.sentLines, c.dropped, c.pushErrors}
}

func (c *lokiCore) drop(reason string, n int) { c.drops[reason].Add(float64(n)) }

// Describe implements prometheus.Collector: logging_loki_queue_length,
// logging_loki_pushing_lines, logging_loki_sent_lines_total,
// logging_loki_dropped_lines_total{reason} and
// logging_loki_push_errors_total. Every line Handle accepted is in the queue,
// being pushed, sent or dropped; a scrape reads them in that order, so it
// never misses a line logged before it (one that moves on during the scrape
// may be seen twice). The handlers returned by WithAttrs and WithGroup
// describe the same metrics: register only one of them.
func (l *Loki) Describe(ch chan<- *prometheus.Desc) { l.core.all.Describe(ch) }

// Collect implements prometheus.Collector.
func (l *Loki) Collect(ch chan<- prometheus.Metric) { l.core.all.Collect(ch) }
