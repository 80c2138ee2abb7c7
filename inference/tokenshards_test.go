package inference

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gatheredTokens is inference_tokens_total{gen_ai_token_type=typ} of model
// "m" as a scrape (Gather) reads it.
func gatheredTokens(t *testing.T, reg *prometheus.Registry, typ string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "inference_tokens_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if labelValue(mt, labelModel) == "m" && labelValue(mt, labelTokenType) == typ {
				return mt.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Output tokens are counted in per-series shards, not in the counter: a
// scrape still reads every token reported so far by streams that have not
// ended (it is never behind), End leaves the request's tokens in the counter
// however it is read, and the SetUsage paths count as before.
func TestOutputTokensShardedExact(t *testing.T) {
	for _, tt := range []struct {
		name    string
		streams int
		tokens  int // OutputTokens(1) calls per stream
		usage   int64
		end     bool
		want    float64
	}{
		{"one stream, scraped while running", 1, 7, -1, false, 7},
		{"many streams, scraped while running", 40, 25, -1, false, 1000},
		{"many streams, ended", 40, 25, -1, true, 1000},
		{"usage raises the count", 3, 5, 9, true, 30}, // 9, then one more
		{"usage lowers the total, never the counter", 3, 5, 2, true, 15},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _, reg := newTestMetrics(t)
			var wg sync.WaitGroup
			recs := make([]*Recorder, tt.streams)
			for i := range recs {
				_, recs[i] = m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
				wg.Add(1)
				go func(rec *Recorder) {
					defer wg.Done()
					for range tt.tokens {
						rec.OutputTokens(1)
					}
					if tt.usage >= 0 {
						rec.SetUsage(-1, tt.usage, -1)
						rec.OutputTokens(1) // after usage: raises only above the high-water mark
					}
				}(recs[i])
			}
			wg.Wait()
			if tt.end {
				for _, rec := range recs {
					rec.End(nil)
				}
				if got := tokenCount(t, m, "output"); got != tt.want {
					t.Errorf("counter after End = %v, want %v", got, tt.want)
				}
			}
			if got := gatheredTokens(t, reg, "output"); got != tt.want {
				t.Errorf("scraped = %v, want %v", got, tt.want)
			}
			if got := gatheredTokens(t, reg, "output"); got != tt.want {
				t.Errorf("scraped again = %v, want %v", got, tt.want)
			}
		})
	}
}

// Scrapes racing streams never see the count go down or past the total.
func TestOutputTokensScrapeConcurrent(t *testing.T) {
	m, _, reg := newTestMetrics(t)
	const streams, tokens = 8, 500
	var wg sync.WaitGroup
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, rec := m.Start(context.Background(), Request{Model: "m", Operation: "chat"})
			for range tokens {
				rec.OutputTokens(1)
			}
			rec.End(nil)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); done <- struct{}{} }()
	last := 0.0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		got := gatheredTokens(t, reg, "output")
		if got < last || got > streams*tokens {
			t.Fatalf("scraped %v after %v (total %d)", got, last, streams*tokens)
		}
		last = got
	}
	if got := gatheredTokens(t, reg, "output"); got != streams*tokens {
		t.Errorf("final scrape %v, want %d", got, streams*tokens)
	}
}
