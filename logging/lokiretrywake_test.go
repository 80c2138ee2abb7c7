package logging

import (
	"context"
	"testing"
	"time"
)

// waitResult is what one waitRetry returned, and after how long.
type waitResult struct {
	ok   bool
	took time.Duration
}

// startWait runs waitRetry(wait, floor) on c from now in a goroutine.
func startWait(c *lokiCore, wait, floor time.Duration) <-chan waitResult {
	done := make(chan waitResult, 1)
	start := time.Now()
	posted := c.clock() // after start: took is never under what waitRetry waited from posted
	go func() {
		ok := c.waitRetry(wait, floor, posted, nil)
		done <- waitResult{ok, time.Since(start)}
	}()
	return done
}

// wakeOne calls pushed until it lets a waiting push go, for at most 5 s.
func wakeOne(t *testing.T, c *lokiCore) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !c.pushed(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no push waiting to retry took the go-ahead within 5 s")
		}
	}
}

// A push that succeeds lets one push waiting out a backoff go at once, but
// not before the wait's floor (MinBackoff, or what Retry-After asked), and
// each success lets only one go: the retries follow Loki's successes.
func TestLokiRetryWokenBySuccess(t *testing.T) {
	c := mustLoki(t, testLokiConfig("http://127.0.0.1:1")).core

	t.Run("a success ends an hour's wait", func(t *testing.T) {
		done := startWait(c, time.Hour, time.Millisecond)
		wakeOne(t, c)
		select {
		case r := <-done:
			if !r.ok {
				t.Error("waitRetry = false, want true (not closed)")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("still waiting 5 s after the go-ahead")
		}
	})

	t.Run("not before the floor", func(t *testing.T) {
		const floor = 150 * time.Millisecond
		done := startWait(c, time.Hour, floor)
		wakeOne(t, c) // long before the floor
		r := <-done
		if !r.ok || r.took < floor {
			t.Errorf("waitRetry = %v after %v, want true no sooner than %v", r.ok, r.took, floor)
		}
	})

	t.Run("no go-ahead for a wait at its floor", func(t *testing.T) {
		const wait = 100 * time.Millisecond
		done := startWait(c, wait, wait)
		time.Sleep(10 * time.Millisecond)
		if c.pushed() {
			t.Error("a wait already at its floor took the go-ahead")
		}
		if r := <-done; !r.ok || r.took < wait {
			t.Errorf("waitRetry = %v after %v, want true no sooner than %v", r.ok, r.took, wait)
		}
	})

	t.Run("one success, one retry", func(t *testing.T) {
		a, b := startWait(c, time.Hour, 0), startWait(c, time.Hour, 0)
		wakeOne(t, c)
		var second <-chan waitResult
		select {
		case <-a:
			second = b
		case <-b:
			second = a
		case <-time.After(5 * time.Second):
			t.Fatal("neither wait ended after the go-ahead")
		}
		select {
		case <-second:
			t.Fatal("one success let both waiting pushes go")
		case <-time.After(50 * time.Millisecond):
		}
		wakeOne(t, c)
		if r := <-second; !r.ok {
			t.Error("waitRetry = false, want true")
		}
	})

	t.Run("no push waiting", func(t *testing.T) {
		if c.pushed() {
			t.Error("pushed let a push go with none waiting")
		}
	})
}

// Close giving up (its context ended) ends a wait with false.
func TestLokiRetryWaitEndsWhenCloseGivesUp(t *testing.T) {
	l := mustLoki(t, testLokiConfig("http://127.0.0.1:1"))
	done := startWait(l.core, time.Hour, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = l.Close(ctx)
	select {
	case r := <-done:
		if r.ok {
			t.Error("waitRetry = true after Close gave up, want false")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting 5 s after Close gave up")
	}
}
