//go:build cgo

package gpumon_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
)

// TestTimeoutAfterGoodRead: once NVML hangs, a scrape must not go on
// reporting the last read as if the GPUs had answered it: gpu_up is 0 for
// every GPU (none answered this scrape) and no stale values are served.
func TestTimeoutAfterGoodRead(t *testing.T) {
	b := newBox(t, 2)
	var hung atomic.Bool
	release := make(chan struct{})
	util := b.devs[0].GetUtilizationRatesFunc
	b.devs[0].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		if hung.Load() {
			<-release
		}
		return util()
	}
	c := newCollector(t, b, gpumon.WithScrapeTimeout(20*time.Millisecond))
	defer close(release)
	if n := testutil.CollectAndCount(c, "gpu_power_usage_watts"); n != 2 {
		t.Fatalf("first scrape: %d gpu_power_usage_watts series, want 2", n)
	}
	hung.Store(true)
	const want = `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 0
gpu_up{gpu="1",uuid="GPU-mock-1"} 0
`
	for i := range 2 {
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), deviceNames...); err != nil {
			t.Errorf("scrape %d during the hang: %v", i+1, err)
		}
	}
}
