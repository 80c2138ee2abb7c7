//go:build cgo

package gpusim_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/gpumon/gpusim"
)

// A scrape makes the same few allocations however many GPUs (and so
// series) there are: the reads of one scrape share one batch, the readers
// are started once in New, the timeout timer is reused. gpusim records no
// calls (go-nvml's moq mocks do, and allocate as their records grow).
func TestCollectAllocsIndependentOfGPUs(t *testing.T) {
	var allocs []float64
	gpus := []int{1, 8, 64}
	for _, n := range gpus {
		sim, err := gpusim.New(gpusim.Config{GPUs: n})
		if err != nil {
			t.Fatal(err)
		}
		// The background sampler is off: AllocsPerRun counts every goroutine's
		// allocations, and its rounds (BenchmarkSamplerRound) are not the scrape's.
		c, err := gpumon.New(gpumon.WithNVML(sim.NVML()), gpumon.WithHostname("h"), gpumon.WithSampleInterval(-1))
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan prometheus.Metric, 64*1024) // room for every series of 64 GPUs (18 NVLink links each)
		scrape := func() {
			c.Collect(ch)
			for len(ch) > 0 {
				<-ch
			}
		}
		scrape()
		allocs = append(allocs, testing.AllocsPerRun(200, scrape))
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("allocations per scrape at %v GPUs: %v", gpus, allocs)
	// 6 at 8 GPUs: the snapshot and its slice, the scrape's list of reads,
	// the batch, its reads and its done channel (one fewer with few GPUs).
	// One more at 64 is the collector's own background (the XID watcher's
	// waits), which AllocsPerRun counts too and a slower scrape sees more of
	// under -race; per-GPU or per-series allocations would add 58 or more.
	if allocs[2] > allocs[1]+1 || allocs[1] > 8 || allocs[0] > allocs[1] {
		t.Errorf("allocations per scrape at %v GPUs: %v; want the same few (<= 8) at 8 and 64", gpus, allocs)
	}
}
