//go:build cgo

package gpumon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSnapshotWait drives snapshot against a read in flight that never
// finishes (a hung NVML call), with a scrape timeout of an hour, so that any
// wait that is not cut short by the rule under test hangs the test.
func TestSnapshotWait(t *testing.T) {
	tests := []struct {
		name         string
		readAge      time.Duration // how long ago the hung read started
		cancel       bool
		wantErr      error
		wantTimeouts float64
	}{
		// A scrape that joins a read already older than the timeout gives up
		// at once: it does not wait a full timeout more.
		{"joins a read hung past the timeout", 2 * time.Hour, false, errTimeout, 1},
		// A caller that gives up (a health probe that disconnects) is not an
		// NVML timeout.
		{"caller canceled", 0, true, errCanceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := hungCollector(time.Now().Add(-tt.readAge))
			cancel := make(chan struct{})
			if tt.cancel {
				close(cancel)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := c.snapshot(cancel)
				errc <- err
			}()
			select {
			case err := <-errc:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("snapshot = %v, want %v", err, tt.wantErr)
				}
			case <-time.After(time.Minute): // a hang guard, not a timing target
				t.Fatal("snapshot waited on a hung read instead of returning")
			}
			if got := testutil.ToFloat64(c.timeouts); got != tt.wantTimeouts {
				t.Errorf("timeouts counted = %v, want %v", got, tt.wantTimeouts)
			}
		})
	}
}

// TestHealthyCanceled: Healthy with a context that ends before the read
// returns the context's error, not an NVML timeout.
func TestHealthyCanceled(t *testing.T) {
	c := hungCollector(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Healthy(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Healthy = %v, want context.Canceled", err)
	}
}

func hungCall(start time.Time) *devCall {
	b := newReadBatch(1)
	b.calls[0].start, b.calls[0].batch = start, b
	return &b.calls[0]
}

// hungCollector is a Collector of one GPU whose read, started at start,
// never finishes, with a scrape timeout of an hour.
func hungCollector(start time.Time) *Collector {
	return &Collector{
		cfg:      config{scrapeTimeout: time.Hour},
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "t"}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "d"}),
		devs:     []*device{{inflight: hungCall(start)}},
	}
}
