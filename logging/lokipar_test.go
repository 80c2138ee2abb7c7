package logging

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLokiQueueBoundsUnderParallelLoggers: 16 goroutines log lines of
// 100 to 400 bytes, 500 each, while the one push is held, into a queue of
// 40,000 bytes (and, in the second case, 150 lines). Whatever shards the
// lines went through, the lines queued never pass either bound, every line
// is queued or dropped with reason queue_full, and after the push is let go
// Loki receives exactly the lines counted as queued.
func TestLokiQueueBoundsUnderParallelLoggers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		queueSize  int
		queueBytes int
	}{
		{"bytes", 1 << 20, 40000},
		{"lines", 150, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const loggers, each = 16, 500
			arrived, release := make(chan struct{}), make(chan struct{})
			f := newFakeLoki(t, holdFirst(arrived, release))
			cfg := testLokiConfig(f.srv.URL)
			cfg.BatchLines = 1
			cfg.BatchBytes = 1000
			cfg.MaxInFlight = 1 // the one push held holds them all
			cfg.QueueSize = tc.queueSize
			cfg.QueueBytes = tc.queueBytes
			l := mustLoki(t, cfg)
			logger := slog.New(l)
			logger.Info("first") // handed to the push, off the queue's count
			<-arrived
			var wg sync.WaitGroup
			for g := range loggers {
				wg.Go(func() {
					for i := range each {
						logger.Info("m", "body", strings.Repeat("x", 50+(g*each+i)%300))
					}
				})
			}
			wg.Wait()
			c := l.core
			queued, qbytes := c.queueLength(), c.queueBytes()
			dropped := int(testutil.ToFloat64(c.drops[DropQueueFull]))
			if queued > tc.queueSize || qbytes > tc.queueBytes {
				t.Errorf("%d lines, %d bytes queued, want <= %d, %d", queued, qbytes, tc.queueSize, tc.queueBytes)
			}
			if queued+dropped != loggers*each {
				t.Errorf("queued %d + dropped %d = %d, want %d", queued, dropped, queued+dropped, loggers*each)
			}
			if dropped == 0 {
				t.Errorf("nothing dropped: the bound was not reached")
			}
			close(release)
			closeLoki(t, l)
			lines := f.lines()
			if len(lines) != 1+queued {
				t.Fatalf("received %d lines, want 1 + %d queued", len(lines), queued)
			}
			var n int
			for _, line := range lines[1:] {
				n += len(line)
			}
			if n != qbytes {
				t.Errorf("received %d bytes of queued lines, %d were counted", n, qbytes)
			}
			wantMetrics(t, l, 1+queued, 0, map[string]int{DropQueueFull: dropped}, 0)
		})
	}
}

// TestLokiHandleAllocs: a record costs Handle no allocation of its own: the
// line goes into the shard's slab (one allocation per 32 KiB of lines) and
// the entry into the shard's chunk (one per 256 entries).
func TestLokiHandleAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	release := make(chan struct{})
	defer close(release)
	l, _ := stuckLoki(t, release, 1<<20)
	logger := slog.New(l)
	ctx := spanCtx()
	logRequestDone(ctx, logger)
	if n := testing.AllocsPerRun(1000, func() { logRequestDone(ctx, logger) }); n != 0 {
		t.Errorf("%v allocs per line, want 0", n)
	}
	dropQueue(l)
}
