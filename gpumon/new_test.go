package gpumon_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
)

// TestNewSystem calls New against this machine's real NVML. Without a driver
// (or without cgo) it must fail with ErrNVMLUnavailable, without crashing;
// on a GPU machine it must succeed and scrape. The log says which it saw.
func TestNewSystem(t *testing.T) {
	c, err := gpumon.New()
	if err != nil {
		if !errors.Is(err, gpumon.ErrNVMLUnavailable) {
			t.Fatalf("New without NVML = %v, want ErrNVMLUnavailable", err)
		}
		t.Logf("saw no NVML: %v", err)
		return
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	n, err := testutil.GatherAndCount(reg, "gpu_info")
	if err != nil {
		t.Fatal(err)
	}
	up, _ := testutil.GatherAndCount(reg, "gpu_up")
	t.Logf("saw real NVML: %d GPUs, %d gpu_up series", n, up)
	if up != n {
		t.Errorf("%d gpu_info but %d gpu_up series", n, up)
	}
}
