package inference

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRequest is one request's metric path: Start, tokens, End.
func BenchmarkRequest(b *testing.B) {
	ctx := context.Background()
	b.Run("recorder", func(b *testing.B) {
		m := NewMetrics()
		req := Request{Model: "llama-3-8b", Operation: "chat"}
		b.ReportAllocs()
		for b.Loop() {
			_, rec := m.Start(ctx, req)
			rec.InputTokens(100)
			rec.OutputTokens(1)
			rec.OutputTokens(1)
			rec.End(nil)
		}
	})
	// baseline: the same observations written the obvious way, resolving
	// label children with WithLabelValues on every observation.
	b.Run("baseline-withlabelvalues", func(b *testing.B) {
		m := NewMetrics()
		b.ReportAllocs()
		for b.Loop() {
			start := time.Now()
			m.active.WithLabelValues("chat", "llama-3-8b").Inc()
			m.tokens.WithLabelValues("chat", "llama-3-8b", "input").Add(100)
			first := time.Since(start)
			m.tokens.WithLabelValues("chat", "llama-3-8b", "output").Add(1)
			m.tokens.WithLabelValues("chat", "llama-3-8b", "output").Add(1)
			d := time.Since(start)
			m.active.WithLabelValues("chat", "llama-3-8b").Dec()
			m.duration.WithLabelValues("chat", "llama-3-8b", "").Observe(d.Seconds())
			m.ttft.WithLabelValues("chat", "llama-3-8b").Observe(first.Seconds())
			m.tpot.WithLabelValues("chat", "llama-3-8b").Observe((d - first).Seconds())
			m.tps.WithLabelValues("chat", "llama-3-8b").Observe(1 / (d - first).Seconds())
		}
	})
}

// BenchmarkOutputTokens is the per-token cost inside a stream, serial and
// with every core reporting tokens for its own request of the same model
// (one recorder per goroutine, all on one series), next to the least a live
// counter can cost: a bare Prometheus Counter.Add and an atomic.Int64.Add,
// serial and parallel. The baselines run first; each recorder run reports
// its time as a ratio to them ("x-counter-add", "x-atomic-add": parallel to
// parallel, serial to serial).
func BenchmarkOutputTokens(b *testing.B) {
	var base [2]struct{ counter, atomic float64 } // [serial, parallel]
	perOp := func(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }
	ratio := func(b *testing.B, par int) {
		if f := base[par]; f.counter > 0 && f.atomic > 0 {
			b.ReportMetric(perOp(b)/f.counter, "x-counter-add")
			b.ReportMetric(perOp(b)/f.atomic, "x-atomic-add")
		}
	}
	// baseline: one bare Prometheus counter Add, the least a live token
	// counter can cost.
	b.Run("baseline-counter-add", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
		b.ReportAllocs()
		for b.Loop() {
			c.Add(1)
		}
		base[0].counter = perOp(b)
	})
	b.Run("baseline-atomic-add", func(b *testing.B) {
		var n atomic.Int64
		b.ReportAllocs()
		for b.Loop() {
			n.Add(1)
		}
		base[0].atomic = perOp(b)
	})
	b.Run("baseline-counter-add-parallel", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
		base[1].counter = perOp(b)
	})
	b.Run("baseline-atomic-add-parallel", func(b *testing.B) {
		var n atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n.Add(1)
			}
		})
		base[1].atomic = perOp(b)
	})
	b.Run("recorder", func(b *testing.B) {
		m := NewMetrics()
		_, rec := m.Start(context.Background(), Request{Model: "llama-3-8b", Operation: "chat"})
		rec.OutputTokens(1)
		b.ReportAllocs()
		for b.Loop() {
			rec.OutputTokens(1)
		}
		rec.End(nil)
		ratio(b, 0)
	})
	b.Run("recorder-parallel", func(b *testing.B) {
		m := NewMetrics()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			_, rec := m.Start(context.Background(), Request{Model: "llama-3-8b", Operation: "chat"})
			for pb.Next() {
				rec.OutputTokens(1)
			}
			rec.End(nil)
		})
		ratio(b, 1)
	})
}

// BenchmarkResponse is the usage and response report a non-streaming
// handler makes once per request, next to the recorder's own path.
func BenchmarkResponse(b *testing.B) {
	ctx := context.Background()
	req := Request{Model: "llama-3-8b", Operation: "chat"}
	reasons := []string{"stop"}
	b.Run("recorder-usage-response", func(b *testing.B) {
		m := NewMetrics()
		b.ReportAllocs()
		for b.Loop() {
			_, rec := m.Start(ctx, req)
			rec.SetUsage(100, 20, 64)
			rec.SetResponse(Response{Model: "llama-3-8b", ID: "cmpl-1", FinishReasons: reasons})
			rec.End(nil)
		}
	})
	// baseline: the recorder path without the usage and response report.
	b.Run("baseline-recorder", func(b *testing.B) {
		m := NewMetrics()
		b.ReportAllocs()
		for b.Loop() {
			_, rec := m.Start(ctx, req)
			rec.InputTokens(100)
			rec.OutputTokens(20)
			rec.End(nil)
		}
	})
}
