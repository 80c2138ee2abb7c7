package logging

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLineWriterSpareSlab: the line that does not fit in the slab goes
// into the spare made ahead (by run), which is then used up; with no spare,
// into a slab of its own making; lines already taken stay as they were.
func TestLineWriterSpareSlab(t *testing.T) {
	w := &lineWriter{max: 1 << 20}
	line := strings.Repeat("x", 999) + "\n" // 999 bytes kept
	var kept []string
	write := func() {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, w.line)
	}
	write() // no slab yet, no spare: one is made
	first := w.slab
	if first == nil || first.Cap() < slabSize {
		t.Fatalf("first slab: %v", first)
	}
	spare := newSlab()
	w.spare.Store(spare)
	for w.slab == first {
		write()
	}
	if w.slab != spare {
		t.Fatal("the full slab was not replaced by the spare")
	}
	if w.spare.Load() != nil {
		t.Fatal("the spare is still there after it was used")
	}
	for w.slab == spare {
		write()
	}
	if w.slab == nil || w.slab == first {
		t.Fatal("with no spare left, no new slab was made")
	}
	for i, s := range kept {
		if s != line[:999] {
			t.Fatalf("line %d changed after later writes: %q", i, s[:min(len(s), 20)])
		}
	}
}

// TestLokiWakesAfterIdle logs one line at a time, each after a pause around
// the time after which run stops taking the queue on its own and waits to
// be woken (idleTakes takes of takeInterval), and wants each line pushed
// before the next is logged: a wake-up lost between run's last take and its
// wait would leave a line queued until Close.
func TestLokiWakesAfterIdle(t *testing.T) {
	logger, f, idleAfter := idleLoki(t)
	pauses := []time.Duration{0, idleAfter / 2, idleAfter - time.Millisecond, idleAfter, idleAfter + time.Millisecond,
		idleAfter + 2*time.Millisecond, 2 * idleAfter, 3 * time.Millisecond}
	n := 0
	for round := range 4 {
		for _, p := range pauses {
			time.Sleep(p + time.Duration(round)*100*time.Microsecond)
			logger.Info("line " + strconv.Itoa(n))
			n++
			waitLines(t, f, n, fmt.Sprintf("line %d, after a %v pause,", n-1, p))
		}
	}
}

// TestLokiParallelIdleBursts: 8 goroutines log bursts of 1 to 4 lines at
// once, rounds apart by pauses around the idle threshold, so that run goes
// idle and several Handles race to wake it; every line must reach Loki
// without Close pushing it.
func TestLokiParallelIdleBursts(t *testing.T) {
	logger, f, idleAfter := idleLoki(t)
	pauses := []time.Duration{idleAfter - time.Millisecond, idleAfter, idleAfter + time.Millisecond, 2 * idleAfter}
	const loggers, rounds = 8, 16
	logged := 0
	for r := range rounds {
		var wg sync.WaitGroup
		for g := range loggers {
			n := 1 + (g+r)%4
			logged += n
			wg.Go(func() {
				time.Sleep(time.Duration(g*25) * time.Microsecond)
				for range n {
					logger.Info("burst", "g", g, "round", r)
				}
			})
		}
		wg.Wait()
		time.Sleep(pauses[r%len(pauses)])
	}
	waitLines(t, f, logged, "the last burst")
	if got := len(f.lines()); got != logged {
		t.Fatalf("%d lines pushed, %d logged", got, logged)
	}
}

// idleLoki is a Loki that pushes each line within 5 ms (BatchWait) and goes
// idle after idleAfter without lines, with its fake backend.
func idleLoki(t *testing.T) (logger *slog.Logger, f *fakeLoki, idleAfter time.Duration) {
	t.Helper()
	f = newFakeLoki(t, nil)
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchWait = 5 * time.Millisecond
	l := mustLoki(t, cfg)
	return slog.New(l), f, time.Duration(idleTakes) * l.core.takeInterval()
}

// waitLines waits up to 5 s for f to have received n lines, and fails the
// test, naming what, when it has not.
func waitLines(t *testing.T, f *fakeLoki, n int, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(f.lines()) < n; time.Sleep(200 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not pushed in 5 s: %d of %d lines pushed", what, len(f.lines()), n)
		}
	}
}
