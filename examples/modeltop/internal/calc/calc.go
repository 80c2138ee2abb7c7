// Package calc is the arithmetic modeltop does itself when it scrapes
// /metrics endpoints with no Prometheus in between: counter deltas across
// resets, and quantiles of the observations a classic histogram gained
// between two scrapes, the way PromQL's rate and histogram_quantile do them.
package calc

import (
	"math"
	"slices"
	"sort"
)

// Bucket is one classic histogram bucket: the cumulative count of
// observations less than or equal to UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Delta returns how much a counter grew from prev to cur. A counter that went
// down was reset (its process restarted), and then everything it holds is new,
// as in PromQL's rate.
func Delta(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// Rate returns the per-second growth of a counter from prev to cur over dt
// seconds, or NaN when dt is not positive.
func Rate(prev, cur, dt float64) float64 {
	if !(dt > 0) {
		return math.NaN()
	}
	return Delta(prev, cur) / dt
}

// SubBuckets returns the observations each bucket gained from prev to cur
// (both cumulative, matched by upper bound). If any bucket went down, or the
// bucket layout changed, the histogram was reset and cur is returned as it is.
// The result is a new slice.
func SubBuckets(cur, prev []Bucket) []Bucket {
	out := slices.Clone(cur)
	if len(prev) != len(cur) {
		return out
	}
	for i := range cur {
		if cur[i].UpperBound != prev[i].UpperBound && !(math.IsNaN(cur[i].UpperBound) && math.IsNaN(prev[i].UpperBound)) {
			return slices.Clone(cur)
		}
		if cur[i].Count < prev[i].Count {
			return slices.Clone(cur)
		}
		out[i].Count = cur[i].Count - prev[i].Count
	}
	return out
}

// AddBuckets adds b into acc bucket by bucket, matching upper bounds (sum by
// le), and returns the result. Bounds only one side has are kept.
func AddBuckets(acc, b []Bucket) []Bucket {
	if len(acc) == 0 {
		return slices.Clone(b)
	}
	for _, x := range b {
		i, found := slices.BinarySearchFunc(acc, x.UpperBound, func(e Bucket, t float64) int {
			switch {
			case e.UpperBound < t:
				return -1
			case e.UpperBound > t:
				return 1
			}
			return 0
		})
		if found {
			acc[i].Count += x.Count
			continue
		}
		acc = slices.Insert(acc, i, x)
	}
	return acc
}

// Quantile returns the q-quantile (0 <= q <= 1) of the observations in the
// cumulative buckets, as PromQL's histogram_quantile does: sorted by upper
// bound, counts made monotonic, linear interpolation inside the bucket the
// rank falls in (from 0 for the first bucket when its bound is positive), and
// the highest finite bound when the rank falls in the +Inf bucket. It returns
// NaN when the buckets hold no observation, have no +Inf bucket or fewer
// than two buckets, and -Inf or +Inf for q below 0 or above 1. buckets is
// sorted in place.
func Quantile(q float64, buckets []Bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	if len(buckets) < 2 {
		return math.NaN()
	}
	slices.SortFunc(buckets, func(a, b Bucket) int {
		switch {
		case a.UpperBound < b.UpperBound:
			return -1
		case a.UpperBound > b.UpperBound:
			return 1
		}
		return 0
	})
	if !math.IsInf(buckets[len(buckets)-1].UpperBound, 1) {
		return math.NaN()
	}
	// Make the counts monotonic, as a scrape that raced observations can
	// leave them out of order.
	for i := 1; i < len(buckets); i++ {
		if buckets[i].Count < buckets[i-1].Count {
			buckets[i].Count = buckets[i-1].Count
		}
	}
	total := buckets[len(buckets)-1].Count
	if !(total > 0) {
		return math.NaN()
	}
	rank := q * total
	b := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].Count >= rank })
	if b == len(buckets)-1 {
		return buckets[len(buckets)-2].UpperBound
	}
	if b == 0 && buckets[0].UpperBound <= 0 {
		return buckets[0].UpperBound
	}
	start, end, count := 0.0, buckets[b].UpperBound, buckets[b].Count
	if b > 0 {
		start = buckets[b-1].UpperBound
		count -= buckets[b-1].Count
		rank -= buckets[b-1].Count
	}
	return start + (end-start)*(rank/count)
}
