package logging

import (
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLokiRetryAfterNeverShortensBackoff: a 429 or 503 whose Retry-After says
// "now" (0 seconds, or an HTTP-date already past) is retried no sooner than
// MinBackoff, so that a server answering it for a while cannot make the
// pusher spend its retries in a few milliseconds and drop the batch.
func TestLokiRetryAfterNeverShortensBackoff(t *testing.T) {
	tests := []struct {
		name  string
		value func() string
	}{
		{"delay seconds 0", func() string { return "0" }},
		{"HTTP-date in the past", func() string { return time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat) }},
		{"HTTP-date now", func() string { return time.Now().UTC().Format(http.TimeFormat) }},
	}
	const minBackoff = 40 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu    sync.Mutex
				times []time.Time
			)
			f := newFakeLoki(t, func(w http.ResponseWriter, _ *http.Request, n int) bool {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				if n < 3 {
					w.Header().Set("Retry-After", tt.value())
					w.WriteHeader(http.StatusTooManyRequests)
					return true
				}
				return false
			})
			cfg := testLokiConfig(f.srv.URL)
			cfg.BatchWait = time.Millisecond
			cfg.MinBackoff, cfg.MaxBackoff = minBackoff, time.Second
			l := mustLoki(t, cfg)
			slog.New(l).Info("m")
			select {
			case <-f.pushed:
			case <-time.After(10 * time.Second):
				t.Fatal("the line never arrived")
			}
			closeLoki(t, l)
			mu.Lock()
			defer mu.Unlock()
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap < minBackoff {
					t.Errorf("attempt %d came %v after the one before, sooner than MinBackoff %v", i, gap, minBackoff)
				}
			}
		})
	}
}

// TestLokiRetryAfterBurst is issue 15's case: Loki answers 429 with
// Retry-After: 0 for a while (300 ms here) to a burst of 1,000 lines in 10
// batches. Honoured literally, the 10 retries of each batch took about 2 ms
// and every batch was dropped; paced by the backoff, all arrive.
func TestLokiRetryAfterBurst(t *testing.T) {
	var (
		once  sync.Once
		start time.Time
	)
	f := newFakeLoki(t, func(w http.ResponseWriter, _ *http.Request, _ int) bool {
		once.Do(func() { start = time.Now() })
		if time.Since(start) < 300*time.Millisecond {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 100
	cfg.BatchWait = time.Millisecond
	cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, time.Second
	l := mustLoki(t, cfg)
	logger := slog.New(l)
	for i := range 1000 {
		logger.Info("burst", "i", i)
	}
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(l.core.sentLines)+testutil.ToFloat64(l.core.drops[DropRetriesExhausted]) < 1000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lost := testutil.ToFloat64(l.core.drops[DropRetriesExhausted])
	t.Logf("lines lost in the burst: %v of 1000", lost)
	if lost != 0 {
		t.Errorf("%v of 1000 lines dropped after retries: Retry-After: 0 cut the backoff short", lost)
	}
	closeLoki(t, l)
}

// TestLokiRetryAfterLengthensBackoff: a Retry-After longer than the backoff
// is waited for, up to MaxBackoff.
func TestLokiRetryAfterLengthensBackoff(t *testing.T) {
	for _, tt := range []struct {
		header    int // seconds
		max       time.Duration
		wantLeast time.Duration
	}{
		{1, 10 * time.Second, time.Second},                     // honoured
		{3600, 300 * time.Millisecond, 300 * time.Millisecond}, // capped at MaxBackoff
	} {
		t.Run(strconv.Itoa(tt.header), func(t *testing.T) {
			var first, second time.Time
			f := newFakeLoki(t, func(w http.ResponseWriter, _ *http.Request, n int) bool {
				if n == 0 {
					first = time.Now()
					w.Header().Set("Retry-After", strconv.Itoa(tt.header))
					w.WriteHeader(http.StatusServiceUnavailable)
					return true
				}
				second = time.Now()
				return false
			})
			cfg := testLokiConfig(f.srv.URL)
			cfg.BatchWait = time.Millisecond
			cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, tt.max
			l := mustLoki(t, cfg)
			slog.New(l).Info("m")
			select {
			case <-f.pushed:
			case <-time.After(20 * time.Second):
				t.Fatal("the line never arrived")
			}
			if gap := second.Sub(first); gap < tt.wantLeast {
				t.Errorf("retried %v after the 503, want at least %v", gap, tt.wantLeast)
			}
			closeLoki(t, l)
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"abc", 0, false},
		{"-3", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"99999999999999999999", 0, false},
		{"Sun, 01 Jun 2025 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 01-Jun-25 12:00:30 GMT", 30 * time.Second, true},
		{"Sun Jun  1 12:00:30 2025", 30 * time.Second, true},
		{"Sun, 01 Jun 2025 11:00:00 GMT", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// With the default MinBackoff, MaxBackoff and MaxRetries, a batch is kept
// through a Loki outage of at least 3.5 minutes (the shortest its jittered
// backoffs can add up to) and given up on within 7.5, so that a Loki
// restart or rollout of a few minutes loses no line while the queue has
// room.
func TestLokiDefaultRetriesRideOutOutage(t *testing.T) {
	cfg := LokiConfig{URL: "http://loki.invalid"}
	cfg.setDefaults()
	c := &lokiCore{cfg: cfg}
	var shortest, longest time.Duration
	for attempt := range cfg.MaxRetries {
		lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
		for range 2000 {
			d := c.backoff(attempt)
			lo, hi = min(lo, d), max(hi, d)
		}
		shortest += lo
		longest += hi
	}
	if shortest < 210*time.Second || longest > 450*time.Second {
		t.Errorf("the default retries span %v to %v of outage, want at least 3.5 minutes and at most 7.5", shortest, longest)
	}
}
