package logging

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/internal/testkit"
)

// Every line logged before a scrape is in it: in the queue, being pushed
// (a slow Loki that answers some pushes 503, so batches wait to retry),
// sent or dropped (a small queue, so some are; one so small that most
// are). A scrape reads them in the order a line moves, and a line is
// counted in the next place before it leaves the last; after Close every
// line is sent or dropped, none pending.
func TestLokiScrapeSeesEveryLine(t *testing.T) {
	// A queue that holds the lines while Loki is slow, and one so small
	// that most lines are dropped.
	for _, size := range []int{256, 8} {
		t.Run(fmt.Sprintf("queue=%d", size), func(t *testing.T) { testScrapeSeesEveryLine(t, size) })
	}
}

func testScrapeSeesEveryLine(t *testing.T, queueSize int) {
	f := newFakeLoki(t, slowFlaky(3, 2))
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 16
	cfg.BatchWait = time.Millisecond
	cfg.QueueSize = queueSize
	cfg.MaxInFlight = 2
	l := mustLoki(t, cfg)
	reg := prometheus.NewRegistry()
	reg.MustRegister(l)
	logger := slog.New(l)

	var logged atomic.Int64 // lines whose Handle returned
	stop := testkit.Hammer(4, func() {
		logger.Info("line", "k", "v")
		logged.Add(1)
	})
	defer stop()
	total := func() (sum, pushing, queue float64) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		queue = testkit.Total(mfs, "logging_loki_queue_length")
		pushing = testkit.Total(mfs, "logging_loki_pushing_lines")
		sum = queue + pushing + testkit.Total(mfs, "logging_loki_sent_lines_total") + testkit.Total(mfs, "logging_loki_dropped_lines_total")
		return sum, pushing, queue
	}
	sawPushing := false
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		before := float64(logged.Load())
		sum, pushing, _ := total()
		if sum < before {
			t.Fatalf("scrape: queue + pushing + sent + dropped = %v < %v lines logged before it", sum, before)
		}
		sawPushing = sawPushing || pushing > 0
	}
	stop()
	if !sawPushing {
		t.Error("no scrape saw a line being pushed")
	}
	closeLoki(t, l)
	sum, pushing, queue := total()
	if n := float64(logged.Load()); sum != n || pushing != 0 || queue != 0 {
		t.Errorf("after Close: %v lines counted (%v pushing, %v queued), want %v logged, none pending", sum, pushing, queue, n)
	}
}
