package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLokiLineOverBatchBytes: a record whose line alone exceeds BatchBytes is
// dropped and counted (reason too_large) instead of making a batch larger
// than BatchBytes; the lines around it still arrive.
func TestLokiLineOverBatchBytes(t *testing.T) {
	f := newFakeLoki(t, nil)
	var warnings bytes.Buffer
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchBytes = 1000
	cfg.Fallback = slog.NewTextHandler(&warnings, nil)
	l := mustLoki(t, cfg)
	logger := slog.New(l)
	logger.Info("before")
	logger.Info("huge", "body", strings.Repeat("x", 5000))
	logger.Info("after")
	closeLoki(t, l)
	lines := f.lines()
	if len(lines) != 2 || !strings.Contains(lines[0], "before") || !strings.Contains(lines[1], "after") {
		t.Errorf("received %d lines (%.200q), want the lines before and after", len(lines), lines)
	}
	if n := testutil.ToFloat64(l.core.dropped.WithLabelValues("too_large")); n != 1 {
		t.Errorf("too_large drops = %v, want 1", n)
	}
	if !strings.Contains(warnings.String(), "too large") {
		t.Errorf("no warning: %q", warnings.String())
	}
}

// TestLokiLineSizes: lines of every size up to BatchBytes arrive whole and
// unchanged, whether they fill a slab, cross into the next one or are too
// long for a slab (slabLine) and kept on their own, in a mix that runs
// through several slabs of one shard.
func TestLokiLineSizes(t *testing.T) {
	f := newFakeLoki(t, nil)
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchBytes = 4 * slabSize
	cfg.MaxInFlight = 1 // the batches in order
	l := mustLoki(t, cfg)
	sizes := []int{0, 1, 100, slabLine - 60, slabLine, slabLine + 1, 3000, slabSize - 100, slabSize, 2 * slabSize}
	var want []string
	for round := range 3 {
		for i, n := range sizes {
			body := strings.Repeat(string(rune('a'+i)), n)
			slog.New(l).Info("m", "round", round, "body", body)
			want = append(want, body)
		}
	}
	closeLoki(t, l)
	lines := f.lines()
	if len(lines) != len(want) {
		t.Fatalf("received %d lines, want %d", len(lines), len(want))
	}
	for i, line := range lines {
		var m struct{ Body string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d: %v (%.100q)", i, err, line)
		}
		if m.Body != want[i] {
			t.Errorf("line %d: body of %d bytes, want %d", i, len(m.Body), len(want[i]))
		}
		if strings.HasSuffix(line, "\n") {
			t.Errorf("line %d ends with a newline", i)
		}
	}
}

// TestLokiQueueBytes: while the pusher is stuck, the queue holds at most
// QueueBytes of lines, whatever QueueSize allows; the rest is dropped with
// reason queue_full.
func TestLokiQueueBytes(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	f := newFakeLoki(t, holdFirst(arrived, release))
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 1
	cfg.BatchBytes = 1000
	cfg.QueueSize = 1000
	cfg.QueueBytes = 2000
	cfg.MaxInFlight = 1 // the one push held holds them all
	l := mustLoki(t, cfg)
	logger := slog.New(l)
	logger.Info("first")
	<-arrived
	body := strings.Repeat("y", 150) // lines of about 200 bytes
	for range 100 {
		logger.Info("queued", "body", body)
	}
	queued := int(testutil.ToFloat64(l.core.queueLen))
	if queued == 0 || queued > 10 {
		t.Errorf("%d lines queued, want 1..10 (2000 bytes of ~200-byte lines)", queued)
	}
	if got := l.core.queueBytes(); got > 2000 {
		t.Errorf("%d bytes queued, want <= 2000", got)
	}
	if n := int(testutil.ToFloat64(l.core.drops[DropQueueFull])); n != 100-queued {
		t.Errorf("queue_full drops = %d, want %d", n, 100-queued)
	}
	close(release)
	closeLoki(t, l)
	if n := len(f.lines()); n != 1+queued {
		t.Errorf("received %d lines, want %d", n, 1+queued)
	}
	if got := l.core.queueBytes(); got != 0 {
		t.Errorf("%d bytes still counted as queued after Close", got)
	}
}

// TestLokiHandleRacingClose: a Handle that passed the closed check just
// before Close, and queues after Close has drained the queue, must still count
// its line as dropped (reason closed) rather than leave it in the queue
// uncounted. The race is forced by clearing the closed flag after Close.
func TestLokiHandleRacingClose(t *testing.T) {
	f := newFakeLoki(t, nil)
	l := mustLoki(t, testLokiConfig(f.srv.URL))
	closeLoki(t, l)
	l.core.closed.Store(false) // as seen by a Handle that loaded it before Close
	slog.New(l).Info("late")
	l.core.closed.Store(true)
	wantMetrics(t, l, 0, 0, map[string]int{DropClosed: 1}, 0)
}
