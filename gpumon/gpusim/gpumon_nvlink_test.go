//go:build cgo

package gpusim_test

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/gpumon/gpusim"
	"github.com/modeltel/modeltel/internal/testkit"
)

// TestNVLinkPerGPU: over the same simulated H100 SXMs, a collector with
// WithNVLinkPerLink(false) serves per GPU what the default one serves per
// link, summed: 18 active links, the data counters and the injected errors;
// 7 NVLink series per GPU instead of 126. The sims' clock only moves when
// the test moves it, so both collectors' samplers read the same counters.
func TestNVLinkPerGPU(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sim := newSim(t, gpusim.Config{GPUs: 2, Now: clock})
	_ = sim.SetLoad(gpusim.AllGPUs, 0.6)
	perLink := collector(t, sim, gpumon.WithSampleInterval(10*time.Millisecond))
	perGPU := collector(t, sim, gpumon.WithSampleInterval(10*time.Millisecond), gpumon.WithNVLinkPerLink(false))
	waitSeries(t, perLink, "gpu_nvlink_transmit_bytes_total", 2*18)
	waitSeries(t, perGPU, "gpu_nvlink_transmit_bytes_total", 2)
	testkit.Lint(t, perLink)
	testkit.Lint(t, perGPU)

	for name, n := range map[string]int{"gpu_nvlink_active": 0, "gpu_nvlink_active_links": 2,
		"gpu_nvlink_transmit_bytes_total": 2, "gpu_nvlink_receive_bytes_total": 2, "gpu_nvlink_errors_total": 2 * 4} {
		if got := testutil.CollectAndCount(perGPU, name); got != n {
			t.Errorf("per GPU: %s: %d series, want %d", name, got, n)
		}
	}
	if got := values(t, perGPU, "gpu_nvlink_active_links", map[string]string{"gpu": "1"}); len(got) != 1 || got[0] != 18 {
		t.Errorf("gpu_nvlink_active_links{gpu=1} = %v, want 18", got)
	}

	sum := func(name string, want map[string]string) float64 {
		var s float64
		for _, v := range values(t, perLink, name, want) {
			s += v
		}
		return s
	}
	// same waits until the per-GPU value of name is the per-link values
	// summed and ok (both samplers have read the counters since the change
	// the test waits for), and returns it.
	same := func(name string, labels map[string]string, ok func(float64) bool) float64 {
		t.Helper()
		var got []float64
		var want float64
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			got, want = values(t, perGPU, name, labels), sum(name, labels)
			if len(got) == 1 && got[0] == want && ok(want) {
				return want
			}
		}
		t.Fatalf("%s%v: per GPU %v, per link summed %v", name, labels, got, want)
		return 0
	}
	always := func(float64) bool { return true }
	gpu1 := map[string]string{"gpu": "1"}
	tx := same("gpu_nvlink_transmit_bytes_total", gpu1, always)
	rx := same("gpu_nvlink_receive_bytes_total", gpu1, always)

	// A minute later the counters have grown by the minute's traffic
	// (0.5 of 25 GB/s per link and direction at load 0.6).
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	want := 18 * 0.5 * 25e9 * 0.6 * 60
	for name, before := range map[string]float64{"gpu_nvlink_transmit_bytes_total": tx, "gpu_nvlink_receive_bytes_total": rx} {
		after := same(name, gpu1, func(v float64) bool { return v > before })
		if grew := after - before; grew < 0.99*want || grew > 1.01*want {
			t.Errorf("%s{gpu=1} grew by %v in a minute, want about %v", name, grew, want)
		}
	}

	if err := sim.InjectNVLinkErrors(1, 5, 7); err != nil {
		t.Fatal(err)
	}
	if err := sim.InjectNVLinkErrors(1, 11, 2); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"crc_flit", "replay"} {
		same("gpu_nvlink_errors_total", map[string]string{"gpu": "1", "type": typ}, func(v float64) bool { return v == 9 })
	}
	if got := values(t, perGPU, "gpu_nvlink_errors_total", map[string]string{"gpu": "0", "type": "crc_flit"}); len(got) != 1 || got[0] != 0 {
		t.Errorf("gpu_nvlink_errors_total{gpu=0,type=crc_flit} = %v, want 0", got)
	}
}
