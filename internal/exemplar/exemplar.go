// Package exemplar attaches the trace id of a sampled request to histogram
// observations as an OpenMetrics exemplar, under the label trace_id
// (Grafana's convention), at most once per bucket per Interval.
//
// # Cost
//
// An exemplar costs client_golang about 1 µs and 10 allocations (the labels,
// the protobuf exemplar it stores, its timestamp), and only the latest
// exemplar of a bucket is ever exposed. So a histogram here attaches one to
// an observation only when the observation's span is sampled and its bucket
// has had no exemplar for Interval; every other observation is a plain
// Observe plus a bucket search and an atomic load. Rare buckets (the slow
// tail one looks for exemplars in) get every sampled observation; a busy
// bucket gets one exemplar per Interval, which is still fresher than any
// scrape interval in use.
//
// # Usage
//
//	h := exemplar.New(vec.WithLabelValues("GET", "/v1"), buckets)
//	h.Observe(d.Seconds(), exemplar.TraceID(trace.SpanContextFromContext(ctx)), now)
package exemplar

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Label is the exemplar label that carries the trace id.
const Label = "trace_id"

// Interval is the least time between two exemplars of one bucket.
const Interval = time.Second

// TraceID returns sc's trace id when sc is sampled, else the zero TraceID
// (which Observe takes as "no exemplar").
func TraceID(sc trace.SpanContext) trace.TraceID {
	if !sc.IsSampled() {
		return trace.TraceID{}
	}
	return sc.TraceID()
}

// Histogram is one histogram series (a label child) with the state that
// bounds its exemplars. The zero Histogram records nothing; a Histogram must
// not be copied after first use. Observe is safe for concurrent use.
type Histogram struct {
	obs    prometheus.Observer
	ex     prometheus.ExemplarObserver // nil when obs takes no exemplars
	bounds []float64
	// last holds, per bucket (the +Inf bucket last), the time of the last
	// exemplar in Unix nanoseconds; 0 for none yet.
	last []atomic.Int64
}

// New returns o with exemplars, bounded per bucket of bounds (the upper
// bounds o was built with, ascending; nil for one bucket). Bounds that differ
// from o's only change how often exemplars are attached, never their labels.
func New(o prometheus.Observer, bounds []float64) *Histogram {
	h := &Histogram{obs: o, bounds: bounds, last: make([]atomic.Int64, len(bounds)+1)}
	h.ex, _ = o.(prometheus.ExemplarObserver)
	return h
}

// Observe observes v. When tid is valid and v's bucket has had no exemplar in
// the Interval before now, the observation carries the exemplar
// {trace_id="<tid>"}. A nil Histogram does nothing.
func (h *Histogram) Observe(v float64, tid trace.TraceID, now time.Time) {
	if h == nil || h.obs == nil {
		return
	}
	if !tid.IsValid() || h.ex == nil {
		h.obs.Observe(v)
		return
	}
	last := &h.last[bucket(h.bounds, v)]
	t, ns := last.Load(), now.UnixNano()
	if (t != 0 && ns-t < int64(Interval) && ns >= t) || !last.CompareAndSwap(t, ns) {
		h.obs.Observe(v)
		return
	}
	h.ex.ObserveWithExemplar(v, prometheus.Labels{Label: tid.String()})
}

// bucket returns the index of v's bucket: the first bound not below v, or
// len(bounds) for the +Inf bucket. A linear scan for the few bounds of a
// usual histogram, as client_golang does.
func bucket(bounds []float64, v float64) int {
	if len(bounds) > 32 {
		i, _ := slices.BinarySearch(bounds, v)
		return i
	}
	for i, b := range bounds {
		if v <= b {
			return i
		}
	}
	return len(bounds)
}
