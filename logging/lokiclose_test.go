package logging

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

// closeWithin calls Close(context.Background()), the call a service makes
// on its way out, and fails the test if it has not returned in 10 s.
func closeWithin(t *testing.T, l *Loki) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- l.Close(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close(context.Background()) still waiting after 10s")
	}
}

// Close during a long backoff (a Retry-After of an hour) retries at once
// instead of waiting it out.
func TestLokiCloseCutsBackoffShort(t *testing.T) {
	first := make(chan struct{})
	f := newFakeLoki(t, func(w http.ResponseWriter, _ *http.Request, n int) bool {
		if n == 0 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			close(first)
			return true
		}
		return false // accepted
	})
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 1
	cfg.MaxBackoff = 2 * time.Hour
	l := mustLoki(t, cfg)
	slog.New(l).Info("one")
	<-first
	closeWithin(t, l)
	wantMetrics(t, l, 1, 1, nil, 0)
}

// With Loki down at shutdown, the first batch still gets its MaxRetries
// (MinBackoff apart, so a Loki that comes back in that time gets it), and
// once it has failed for good the batches after it get one attempt each:
// Close does not hold the service's exit for MaxRetries × MaxBackoff per
// batch.
func TestLokiCloseWithLokiDown(t *testing.T) {
	release := make(chan struct{})
	f := newFakeLoki(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 0 {
			<-release // the first push is in flight when Close is called
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 1
	cfg.MaxRetries = 3
	cfg.MinBackoff = time.Millisecond
	cfg.MaxBackoff = time.Hour
	cfg.MaxInFlight = 1 // batch one fails for good before the others start
	l := mustLoki(t, cfg)
	log := slog.New(l)
	log.Info("one")
	log.Info("two")
	log.Info("three")
	go func() {
		<-l.core.closing // Close has been called; closeWithin bounds the wait
		close(release)
	}()
	closeWithin(t, l)
	// Batch one: 1 + 3 retries; batches two and three: one attempt each.
	wantMetrics(t, l, 0, 6, map[string]int{DropRetriesExhausted: 3}, 0)
}
