package logging

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLokiYieldsToPusher: 16 goroutines logging flat out into a Loki that
// answers at once lose no line to the queue: past half of it, Handle yields
// its P to the batching and push goroutines, which would otherwise queue for
// a P behind loggers that never wait and deliver a fraction of what they
// are offered (with yield disabled: about 85 % of these lines dropped).
// Under 1 % may still be dropped: a yield hands this process's P to the
// pusher, not the cores other processes take (CI runs other packages' test
// binaries at the same time; one such run dropped 462 of these 400,000),
// and every line is either pushed or counted as dropped.
func TestLokiYieldsToPusher(t *testing.T) {
	var received atomic.Int64 // requests; sentLines counts the lines
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	l := mustLoki(t, LokiConfig{URL: srv.URL, QueueSize: 20000, BatchBytes: 256 << 10,
		Fallback: slog.NewTextHandler(io.Discard, nil)})
	const loggers, each = 16, 25000
	logFlatOut(slog.New(l), loggers, each)
	closeLoki(t, l)
	const total = loggers * each
	dropped := testutil.ToFloat64(l.core.drops[DropQueueFull])
	if dropped > total/100 {
		t.Errorf("%v of %d lines dropped as queue_full (%d Handles yielded), want under 1 %%", dropped, total, l.core.yields.Load())
	}
	if sent := testutil.ToFloat64(l.core.sentLines); sent+dropped != total {
		t.Errorf("%v lines pushed in %d requests and %v dropped, want %d in all", sent, received.Load(), dropped, total)
	}
	if l.core.yields.Load() == 0 {
		t.Error("no Handle yielded: the queue never passed half, the test shows nothing")
	}
}

// TestLokiNoYieldWhenStuck: when Loki does not answer, the push goroutines
// take no new batch, and once that has lasted yieldRecent a Handle past half
// the queue does not yield: lines are dropped when the queue is full, at no
// cost to the callers beyond that.
func TestLokiNoYieldWhenStuck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFakeLoki(t, holdAll(release))
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 1
	cfg.QueueSize = 100
	l := mustLoki(t, cfg)
	logger := slog.New(l)
	for range l.core.cfg.MaxInFlight + 1 {
		logger.Info("stuck")
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.attemptCount() < l.core.cfg.MaxInFlight && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(yieldRecent + 50*time.Millisecond)
	dropsWithoutYield(t, l, "a stuck pusher")
}

// TestLokiNoYieldWhenSlow: when no push has been accepted within quickPush
// for quickRecent, the time goes to Loki, not to this process, and a Handle
// past half the queue does not yield: lines are dropped when the queue is
// full, and the callers do not wait for a slow backend.
func TestLokiNoYieldWhenSlow(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(quickPush + 10*time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	l := mustLoki(t, LokiConfig{URL: srv.URL, QueueSize: 100, BatchWait: 10 * time.Millisecond, MaxInFlight: 1,
		Fallback: slog.NewTextHandler(io.Discard, nil)})
	started := time.Now()
	logger := slog.New(l)
	logger.Info("first")
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(l.core.sentLines) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Until(started.Add(quickRecent + 50*time.Millisecond))) // NewLoki counts as a quick push
	dropsWithoutYield(t, l, "a pusher waiting on a slow Loki")
}

// logFlatOut logs each lines from each of loggers goroutines, without pause.
func logFlatOut(logger *slog.Logger, loggers, each int) {
	ctx := spanCtx()
	var wg sync.WaitGroup
	for range loggers {
		wg.Go(func() {
			for range each {
				logRequestDone(ctx, logger)
			}
		})
	}
	wg.Wait()
}

// dropsWithoutYield logs 16 x 200 lines flat out into l (a queue of 100
// lines) and fails when a Handle yielded to the pusher (what), or when no
// line was dropped (the queue never filled: the test would show nothing);
// then it closes l, dropping what is queued.
func dropsWithoutYield(t *testing.T, l *Loki, what string) {
	t.Helper()
	logFlatOut(slog.New(l), 16, 200)
	if n := l.core.yields.Load(); n != 0 {
		t.Errorf("%d Handles yielded to %s", n, what)
	}
	if n := testutil.ToFloat64(l.core.drops[DropQueueFull]); n == 0 {
		t.Error("no line dropped: the queue never filled, the test shows nothing")
	}
	dropQueue(l)
}

// TestLokiQueueUnderBatch: a queue smaller than a batch (1,000 lines against
// BatchLines 10,000) keeps up with 20,000 lines/s into a quick Loki: the
// batch being made counts against the queue, and run hands it to a free push
// once the queue is past half instead of holding it for BatchWait. Without
// that the queue filled: most lines were dropped, or, with Handle yielding
// to the pusher, the callers were held up instead (a yield of up to 1 ms
// each time, over 500 in these 10,000 lines) and some lines dropped still.
// The queue holds 50 ms of these lines, so a stall of the process (other test
// binaries on the same cores) may cost a few: up to 2 % of the lines may be
// dropped and 2 % may yield (with the hand-off: about 20 yields, 0 dropped),
// and every line is either received or counted as dropped.
func TestLokiQueueUnderBatch(t *testing.T) {
	f := newFakeLoki(t, nil)
	l := mustLoki(t, LokiConfig{URL: f.srv.URL, QueueSize: 1000, Fallback: slog.NewTextHandler(io.Discard, nil)})
	lat := offer(slog.New(l), 20000, 500*time.Millisecond)
	closeLoki(t, l)
	dropped, yields := int(testutil.ToFloat64(l.core.drops[DropQueueFull])), int(l.core.yields.Load())
	if dropped > len(lat)/50 || yields > len(lat)/50 {
		t.Errorf("of %d lines, %d dropped as queue_full and %d yielded, want each under 2 %%", len(lat), dropped, yields)
	}
	if got := len(f.lines()); got+dropped != len(lat) {
		t.Errorf("Loki received %d lines and %d were dropped, want %d in all", got, dropped, len(lat))
	}
}
