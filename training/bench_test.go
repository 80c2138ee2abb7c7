package training_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/training"
)

var benchResult = training.StepResult{Loss: 2.31, LearningRate: 3e-4, GradNorm: 0.9, Samples: 32, Tokens: 65536}

// BenchmarkStep is the per-step hot path: StartStep and End with every field.
func BenchmarkStep(b *testing.B) {
	m := training.NewMetrics(training.WithRun("bench"), training.WithRank(0), training.WithFLOPs(6*8e9, 989e12))
	b.ReportAllocs()
	for b.Loop() {
		s := m.StartStep()
		s.End(benchResult)
	}
}

// BenchmarkStepParallel runs the step path from every P at once (ranks or
// workers sharing one Metrics).
func BenchmarkStepParallel(b *testing.B) {
	m := training.NewMetrics(training.WithRun("bench"), training.WithFLOPs(6*8e9, 989e12))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := m.StartStep()
			s.End(benchResult)
		}
	})
}

// BenchmarkObserveStep records a step whose duration was measured elsewhere.
func BenchmarkObserveStep(b *testing.B) {
	m := training.NewMetrics(training.WithRun("bench"), training.WithFLOPs(6*8e9, 989e12))
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveStep(400*time.Millisecond, benchResult)
	}
}

// BenchmarkBaselinePrometheus is the floor for BenchmarkStep: the same
// Prometheus operations done by hand (two clock readings, one histogram
// observation, five gauge sets, three counter adds), without the package.
func BenchmarkBaselinePrometheus(b *testing.B) {
	cl := prometheus.Labels{"run": "bench", "rank": "0"}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", ConstLabels: cl, Buckets: training.DefaultStepBuckets})
	var g [5]prometheus.Gauge
	for i := range g {
		g[i] = prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g", ConstLabels: cl})
	}
	var c [3]prometheus.Counter
	for i := range c {
		c[i] = prometheus.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c", ConstLabels: cl})
	}
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		end := time.Now()
		h.Observe(end.Sub(start).Seconds())
		g[0].Set(benchResult.Loss)
		g[1].Set(benchResult.LearningRate)
		g[2].Set(benchResult.GradNorm)
		g[3].Set(float64(end.UnixNano()) / 1e9)
		g[4].Set(0.4)
		c[0].Inc()
		c[1].Add(float64(benchResult.Samples))
		c[2].Add(float64(benchResult.Tokens))
	}
}

const benchLines = `{"step": 1, "loss": 2.31, "lr": 0.0003, "grad_norm": 0.9, "samples": 32, "tokens": 65536, "step_time": 0.41, "epoch": 1, "data_wait": 0.02}
[rank0] some text the trainer printed
{"step": 2, "loss": NaN, "lr": 0.0003, "grad_norm": Infinity, "samples": 32, "tokens": 65536, "step_time": 0.40}
{"event": "checkpoint", "step": 2, "duration": 12.5, "bytes": 1073741824}
`

// BenchmarkIngest reads four trainer lines per op (two steps, one text line,
// one checkpoint event).
func BenchmarkIngest(b *testing.B) {
	m := training.NewMetrics()
	input := strings.Repeat(benchLines, 256)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		if err := training.Ingest(context.Background(), strings.NewReader(input), m, training.WithTextLine(func(string) {})); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4*256), "ns/line")
}
