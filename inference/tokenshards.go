package inference

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// numTokenShards is how many cache lines one series' output-token count is
// spread over: streams of the same model reporting tokens on different cores
// each add to their own line instead of all to the counter's one.
const numTokenShards = 16

// tokenShard is one cache line of a tokenShards. tokenShards is 1,032 bytes,
// allocated on its own in a size class (1,152) that is a multiple of 64, so
// each shard fills exactly one line.
type tokenShard struct {
	n atomic.Int64
	_ [56]byte
}

// tokenShards holds the output tokens of one series counted since they were
// last added to its inference_tokens_total{gen_ai_token_type="output"}
// counter. Each recorder adds to the shard Start gave it (round robin); the
// shards are added to the counter at every Collect (so a scrape is never
// behind) and a recorder's shard at its End (so the counter holds a request's
// tokens once it ended, however it is read).
type tokenShards struct {
	shards [numTokenShards]tokenShard
	next   atomic.Uint32
}

// pick returns the shard of a new recorder.
func (t *tokenShards) pick() *tokenShard {
	return &t.shards[t.next.Add(1)%numTokenShards]
}

// flushTo adds what every shard holds to c.
func (t *tokenShards) flushTo(c prometheus.Counter) {
	for i := range t.shards {
		t.shards[i].flushTo(c)
	}
}

// flushTo adds what the shard holds to c.
func (s *tokenShard) flushTo(c prometheus.Counter) {
	if s.n.Load() == 0 {
		return
	}
	if n := s.n.Swap(0); n > 0 {
		c.Add(float64(n))
	}
}
