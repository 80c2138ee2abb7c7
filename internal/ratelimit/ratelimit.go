// Package ratelimit holds the gate that modeltel's own warnings pass through:
// at most one per interval, counting the ones it held back, so that a backend
// that stays down costs the service one log line an interval, not one per
// failure.
package ratelimit

import (
	"sync"
	"time"
)

// Gate lets one event through per interval. The zero Gate lets the first
// event through. It is safe for concurrent use.
type Gate struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether an event at now may go through, at most one per
// every, and, when it may, how many events were held back since the last one
// that went through.
func (g *Gate) Allow(now time.Time, every time.Duration) (ok bool, suppressed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.Sub(g.last) < every {
		g.suppressed++
		return false, 0
	}
	g.last = now
	suppressed, g.suppressed = g.suppressed, 0
	return true, suppressed
}
