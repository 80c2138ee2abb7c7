package ratelimit

import (
	"sync"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at             time.Duration
		ok             bool
		wantSuppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{59 * time.Second, false, 0},
		{time.Minute, true, 2},
		{time.Minute + time.Second, false, 0},
		{3 * time.Minute, true, 1},
		{4 * time.Minute, true, 0},
	}
	var g Gate
	for _, s := range steps {
		ok, n := g.Allow(t0.Add(s.at), time.Minute)
		if ok != s.ok || n != s.wantSuppressed {
			t.Errorf("Allow at +%v = %v, %d; want %v, %d", s.at, ok, n, s.ok, s.wantSuppressed)
		}
	}
}

// TestGateConcurrent: of many events at one instant exactly one goes through,
// and the next one through reports all the others.
func TestGateConcurrent(t *testing.T) {
	var g Gate
	now := time.Unix(1000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for range 100 {
		wg.Go(func() {
			if ok, _ := g.Allow(now, time.Minute); ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if passed != 1 {
		t.Fatalf("%d events went through, want 1", passed)
	}
	if ok, n := g.Allow(now.Add(time.Minute), time.Minute); !ok || n != 99 {
		t.Errorf("next interval: %v, %d suppressed; want true, 99", ok, n)
	}
}
