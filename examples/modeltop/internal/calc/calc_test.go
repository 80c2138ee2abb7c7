package calc

import (
	"math"
	"testing"
)

func TestDeltaRate(t *testing.T) {
	tests := []struct {
		name          string
		prev, cur, dt float64
		delta, perSec float64
	}{
		{"growth", 10, 25, 5, 15, 3},
		{"flat", 7, 7, 2, 0, 0},
		{"reset", 100, 4, 2, 4, 2},
		{"reset to zero", 100, 0, 1, 0, 0},
		{"zero dt", 1, 2, 0, 1, math.NaN()},
		{"negative dt", 1, 2, -1, 1, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Delta(tt.prev, tt.cur); got != tt.delta {
				t.Errorf("Delta = %v, want %v", got, tt.delta)
			}
			if got := Rate(tt.prev, tt.cur, tt.dt); !same(got, tt.perSec) {
				t.Errorf("Rate = %v, want %v", got, tt.perSec)
			}
		})
	}
}

func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return a == b
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

var inf = math.Inf(1)

func TestQuantile(t *testing.T) {
	// Expected values as Prometheus' histogram_quantile gives them
	// (promql/quantile.go: linear interpolation, +Inf bucket -> highest
	// finite bound, first bucket interpolated from 0).
	tests := []struct {
		name    string
		q       float64
		buckets []Bucket
		want    float64
	}{
		{"median in second bucket", 0.5, []Bucket{{0.1, 2}, {0.2, 6}, {0.4, 8}, {inf, 8}}, 0.15},
		{"p99 in third bucket", 0.99, []Bucket{{0.1, 2}, {0.2, 6}, {0.4, 8}, {inf, 8}}, 0.2 + 0.2*(7.92-6)/2},
		{"first bucket from zero", 0.25, []Bucket{{0.1, 4}, {0.2, 8}, {inf, 8}}, 0.05},
		{"unsorted input", 0.5, []Bucket{{inf, 8}, {0.4, 8}, {0.1, 2}, {0.2, 6}}, 0.15},
		{"rank in +Inf bucket", 0.99, []Bucket{{0.1, 2}, {0.2, 4}, {inf, 10}}, 0.2},
		{"non-monotonic fixed", 0.5, []Bucket{{0.1, 2}, {0.2, 1}, {0.4, 4}, {inf, 4}}, 0.1},
		{"first bucket non-positive bound", 0.1, []Bucket{{-1, 5}, {1, 10}, {inf, 10}}, -1},
		{"exactly on a boundary", 0.5, []Bucket{{1, 5}, {2, 10}, {inf, 10}}, 1},
		{"q = 0", 0, []Bucket{{1, 5}, {2, 10}, {inf, 10}}, 0},
		{"q = 1", 1, []Bucket{{1, 5}, {2, 10}, {inf, 10}}, 2},
		{"no observations", 0.5, []Bucket{{1, 0}, {inf, 0}}, math.NaN()},
		{"no +Inf bucket", 0.5, []Bucket{{1, 1}, {2, 2}}, math.NaN()},
		{"one bucket", 0.5, []Bucket{{inf, 3}}, math.NaN()},
		{"empty", 0.5, nil, math.NaN()},
		{"q below 0", -0.1, []Bucket{{1, 1}, {inf, 1}}, math.Inf(-1)},
		{"q above 1", 1.1, []Bucket{{1, 1}, {inf, 1}}, math.Inf(1)},
		{"q NaN", math.NaN(), []Bucket{{1, 1}, {inf, 1}}, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quantile(tt.q, tt.buckets); !same(got, tt.want) {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestSubBuckets(t *testing.T) {
	prev := []Bucket{{0.1, 2}, {0.2, 5}, {inf, 6}}
	tests := []struct {
		name string
		cur  []Bucket
		want []Bucket
	}{
		{"growth", []Bucket{{0.1, 3}, {0.2, 9}, {inf, 12}}, []Bucket{{0.1, 1}, {0.2, 4}, {inf, 6}}},
		{"no change", prev, []Bucket{{0.1, 0}, {0.2, 0}, {inf, 0}}},
		{"reset", []Bucket{{0.1, 1}, {0.2, 1}, {inf, 1}}, []Bucket{{0.1, 1}, {0.2, 1}, {inf, 1}}},
		{"layout changed", []Bucket{{0.5, 9}, {inf, 9}}, []Bucket{{0.5, 9}, {inf, 9}}},
		{"bounds moved", []Bucket{{0.1, 3}, {0.3, 9}, {inf, 12}}, []Bucket{{0.1, 3}, {0.3, 9}, {inf, 12}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SubBuckets(tt.cur, prev)
			if !equal(got, tt.want) {
				t.Errorf("SubBuckets = %v, want %v", got, tt.want)
			}
		})
	}
	// The delta's quantile is the quantile of what happened in between.
	d := SubBuckets([]Bucket{{0.1, 2}, {0.2, 5}, {inf, 16}}, prev)
	if got := Quantile(0.5, d); got != 0.2 {
		t.Errorf("quantile of delta = %v, want 0.2 (all new observations above 0.2)", got)
	}
}

func TestAddBuckets(t *testing.T) {
	tests := []struct {
		name   string
		acc, b []Bucket
		want   []Bucket
	}{
		{"into empty", nil, []Bucket{{1, 1}, {inf, 2}}, []Bucket{{1, 1}, {inf, 2}}},
		{"same layout", []Bucket{{1, 1}, {inf, 2}}, []Bucket{{1, 3}, {inf, 4}}, []Bucket{{1, 4}, {inf, 6}}},
		{"other bounds kept", []Bucket{{1, 1}, {inf, 2}}, []Bucket{{0.5, 1}, {2, 3}, {inf, 3}}, []Bucket{{0.5, 1}, {1, 1}, {2, 3}, {inf, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AddBuckets(tt.acc, tt.b); !equal(got, tt.want) {
				t.Errorf("AddBuckets = %v, want %v", got, tt.want)
			}
		})
	}
}

func equal(a, b []Bucket) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
