package exemplar_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/exemplar"
)

var (
	tidA = trace.TraceID{0xa1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	tidB = trace.TraceID{0xb1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid  = trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
)

// bucketExemplars returns the trace_id of each bucket's exemplar ("" for none),
// the +Inf bucket last.
func bucketExemplars(t *testing.T, h prometheus.Histogram) []string {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range m.GetHistogram().GetBucket() {
		ids = append(ids, exemplarID(t, b.GetExemplar()))
	}
	// client_golang puts the exemplar of observations above the last bound
	// on an extra +Inf bucket, present only then.
	if n := len(ids); n == 3 {
		ids = append(ids, "")
	}
	return ids
}

func exemplarID(t *testing.T, e *dto.Exemplar) string {
	if e == nil {
		return ""
	}
	if len(e.GetLabel()) != 1 || e.GetLabel()[0].GetName() != exemplar.Label {
		t.Fatalf("exemplar labels %v, want only %s", e.GetLabel(), exemplar.Label)
	}
	return e.GetLabel()[0].GetValue()[:2]
}

func TestObserve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type obs struct {
		v   float64
		tid trace.TraceID
		at  time.Duration // after t0
	}
	for _, tt := range []struct {
		name string
		obs  []obs
		want []string // trace id prefix per bucket (le 1, 2, 4, +Inf)
	}{
		{"no trace id, no exemplar", []obs{{0.5, trace.TraceID{}, 0}}, []string{"", "", "", ""}},
		{"sampled: an exemplar", []obs{{0.5, tidA, 0}}, []string{"a1", "", "", ""}},
		{"within the interval a bucket keeps its first", []obs{{0.5, tidA, 0}, {0.7, tidB, time.Second - 1}},
			[]string{"a1", "", "", ""}},
		{"after the interval the next one replaces it", []obs{{0.5, tidA, 0}, {0.7, tidB, time.Second}},
			[]string{"b1", "", "", ""}},
		{"each bucket on its own", []obs{{0.5, tidA, 0}, {3, tidB, 0}, {9, tidA, 0}},
			[]string{"a1", "", "b1", "a1"}},
		{"a bound is its own bucket's", []obs{{2, tidA, 0}}, []string{"", "a1", "", ""}},
		{"a clock that went back allows one", []obs{{0.5, tidA, time.Hour}, {0.7, tidB, 0}},
			[]string{"b1", "", "", ""}},
		{"an unsampled one in between changes nothing", []obs{{0.5, tidA, 0}, {0.6, trace.TraceID{}, 2 * time.Second}},
			[]string{"a1", "", "", ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bounds := []float64{1, 2, 4}
			ph := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: bounds})
			h := exemplar.New(ph, bounds)
			for _, o := range tt.obs {
				h.Observe(o.v, o.tid, t0.Add(o.at))
			}
			got := bucketExemplars(t, ph)
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Fatalf("bucket exemplars %q, want %q", got, tt.want)
				}
			}
			var m dto.Metric
			_ = ph.Write(&m)
			if n := m.GetHistogram().GetSampleCount(); n != uint64(len(tt.obs)) {
				t.Errorf("count %d, want %d", n, len(tt.obs))
			}
		})
	}
}

func TestTraceID(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags trace.TraceFlags
		want  trace.TraceID
	}{
		{"sampled", trace.FlagsSampled, tidA},
		{"not sampled", 0, trace.TraceID{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tidA, SpanID: sid, TraceFlags: tt.flags})
			if got := exemplar.TraceID(sc); got != tt.want {
				t.Errorf("TraceID = %v, want %v", got, tt.want)
			}
		})
	}
	if got := exemplar.TraceID(trace.SpanContext{}); got.IsValid() {
		t.Errorf("TraceID of the empty span context = %v", got)
	}
}

// An observer without exemplar support (a Summary) is observed plainly.
func TestObserveWithoutExemplarSupport(t *testing.T) {
	var n int
	h := exemplar.New(prometheus.ObserverFunc(func(float64) { n++ }), nil)
	h.Observe(1, tidA, time.Now())
	var nilH *exemplar.Histogram
	nilH.Observe(1, tidA, time.Now())
	if n != 1 {
		t.Errorf("observed %d times, want 1", n)
	}
}

// BenchmarkObserve: a plain Observe next to the three paths of Observe: no
// trace id, a trace id in a bucket that had an exemplar within the interval
// (the steady state under load), and one that attaches an exemplar (every
// observation a new interval: the most an exemplar can cost).
func BenchmarkObserve(b *testing.B) {
	bounds := prometheus.ExponentialBuckets(0.01, 2, 14)
	newH := func() (prometheus.Histogram, *exemplar.Histogram) {
		ph := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: bounds})
		return ph, exemplar.New(ph, bounds)
	}
	now := time.Now()
	b.Run("baseline-observe", func(b *testing.B) {
		ph, _ := newH()
		b.ReportAllocs()
		for b.Loop() {
			ph.Observe(0.3)
		}
	})
	b.Run("unsampled", func(b *testing.B) {
		_, h := newH()
		b.ReportAllocs()
		for b.Loop() {
			h.Observe(0.3, trace.TraceID{}, now)
		}
	})
	b.Run("sampled-within-interval", func(b *testing.B) {
		_, h := newH()
		h.Observe(0.3, tidA, now)
		b.ReportAllocs()
		for b.Loop() {
			h.Observe(0.3, tidA, now)
		}
	})
	b.Run("sampled-new-exemplar", func(b *testing.B) {
		_, h := newH()
		at := now
		b.ReportAllocs()
		for b.Loop() {
			at = at.Add(exemplar.Interval)
			h.Observe(0.3, tidA, at)
		}
	})
}

// Concurrent observations of one bucket within the interval attach exactly
// one exemplar, and every observation is counted.
func TestObserveConcurrent(t *testing.T) {
	bounds := []float64{1}
	ph := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: bounds})
	var attached atomic.Int64
	h := exemplar.New(countingObserver{ph, &attached}, bounds)
	now := time.Unix(1000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Observe(0.5, trace.TraceID{byte(g + 1), byte(i)}, now)
			}
		})
	}
	wg.Wait()
	var m dto.Metric
	_ = ph.Write(&m)
	if n := m.GetHistogram().GetSampleCount(); n != 8000 {
		t.Errorf("count %d, want 8000", n)
	}
	if n := attached.Load(); n != 1 {
		t.Errorf("%d exemplars attached, want 1", n)
	}
}

// countingObserver counts the exemplars it is given.
type countingObserver struct {
	prometheus.Histogram
	n *atomic.Int64
}

func (c countingObserver) ObserveWithExemplar(v float64, l prometheus.Labels) {
	c.n.Add(1)
	c.Histogram.(prometheus.ExemplarObserver).ObserveWithExemplar(v, l)
}
