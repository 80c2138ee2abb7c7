package logging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLokiMaxInFlight: with every push held, exactly MaxInFlight pushes are
// in flight at once, the rest wait in the queue under its bounds, and once
// Loki answers every line arrives exactly once (in some order) and the
// counters add up.
func TestLokiMaxInFlight(t *testing.T) {
	const inFlight = 3
	var (
		mu      sync.Mutex
		now     int
		most    int
		release = make(chan struct{})
		arrived = make(chan struct{}, 100)
	)
	f := newFakeLoki(t, func(_ http.ResponseWriter, r *http.Request, _ int) bool {
		mu.Lock()
		now++
		most = max(most, now)
		mu.Unlock()
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		mu.Lock()
		now--
		mu.Unlock()
		return false
	})
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 1
	cfg.MaxInFlight = inFlight
	cfg.QueueSize = 10
	l := mustLoki(t, cfg)
	logger := slog.New(l)
	for i := range inFlight {
		logger.Info("m", "i", i)
	}
	for range inFlight {
		<-arrived
	}
	// The pushes are all held: what follows waits in the queue, 10 lines
	// at most, the rest dropped and counted.
	for i := inFlight; i < inFlight+15; i++ {
		logger.Info("m", "i", i)
	}
	if n := l.core.queueLength(); n != 10 {
		t.Errorf("queue length %d while %d pushes are held, want 10", n, inFlight)
	}
	close(release)
	closeLoki(t, l)
	if most != inFlight {
		t.Errorf("%d pushes in flight at most, want %d", most, inFlight)
	}
	lines := f.lines()
	var got []int
	for _, line := range lines {
		var i int
		if _, err := fmt.Sscanf(line[strings.Index(line, `"i":`):], `"i":%d}`, &i); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, i)
	}
	slices.Sort(got)
	var want []int
	for i := range inFlight + 10 {
		want = append(want, i)
	}
	if !slices.Equal(got, want) {
		t.Errorf("received lines %v, want each of %v once", got, want)
	}
	wantMetrics(t, l, inFlight+10, 0, map[string]int{DropQueueFull: 5}, 0)
}

// TestLokiCloseAbandonsPushesInFlight: with MaxInFlight pushes stuck on a
// Loki that never answers and more batches queued, Close returns when its
// ctx ends, every line counted as closed, none lost from the counters.
func TestLokiCloseAbandonsPushesInFlight(t *testing.T) {
	arrived := make(chan struct{}, 100)
	f := newFakeLoki(t, func(_ http.ResponseWriter, r *http.Request, _ int) bool {
		arrived <- struct{}{}
		<-r.Context().Done()
		return true
	})
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 2
	cfg.MaxInFlight = 2
	l := mustLoki(t, cfg)
	logger := slog.New(l)
	for i := range 20 {
		logger.Info("m", "i", i)
	}
	<-arrived
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := l.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline", err)
	}
	if took := time.Since(start); took > 10*time.Second { // a hang guard
		t.Errorf("Close took %v", took)
	}
	wantMetrics(t, l, 0, 2, map[string]int{DropClosed: 20}, 0)
	logger.Info("after")
	wantMetrics(t, l, 0, 2, map[string]int{DropClosed: 21}, 0)
}

// TestLokiCountsExactUnderLoad: 8 goroutines log 2,000 lines each into a
// small queue while Loki answers slowly and sometimes with 503; after Close
// every line is either sent or dropped, each counted once, and none is
// left queued.
func TestLokiCountsExactUnderLoad(t *testing.T) {
	f := newFakeLoki(t, slowFlaky(5, 1))
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 50
	cfg.BatchWait = time.Millisecond
	cfg.QueueSize = 500
	cfg.QueueBytes = 40000
	cfg.MaxRetries = 2
	l := mustLoki(t, cfg)
	logger := slog.New(l)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				logger.Info("m", "g", g, "i", i)
			}
		})
	}
	wg.Wait()
	closeLoki(t, l)
	sent := int(testutil.ToFloat64(l.core.sentLines))
	var dropped int
	for _, c := range l.core.drops {
		dropped += int(testutil.ToFloat64(c))
	}
	if sent+dropped != 16000 {
		t.Errorf("sent %d + dropped %d = %d, want 16000", sent, dropped, sent+dropped)
	}
	if got := len(f.lines()); got != sent {
		t.Errorf("Loki received %d lines, the counter says %d", got, sent)
	}
	if q, b := l.core.queueLength(), l.core.queueBytes(); q != 0 || b != 0 {
		t.Errorf("after Close: %d lines, %d bytes still counted as queued", q, b)
	}
}
