//go:build cgo

package gpumon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/internal/testkit"
)

// go-nvml's dgxa100 mock as it comes, most of its device funcs nil (a call
// to one panics): New must not panic, every GPU answers with what the mock
// has (identity, memory), in both naming schemes.
func TestBareDGXA100Mock(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opts  []gpumon.Option
		info  string // an identity series per GPU
		value string // a value series per GPU the mock answers
	}{
		{"default names", nil, "gpu_info", "gpu_memory_total_bytes"},
		{"DCGM names", []gpumon.Option{gpumon.WithDCGMNames()}, "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := gpumon.New(append([]gpumon.Option{gpumon.WithNVML(dgxa100.New()), gpumon.WithProcessMetrics()}, tt.opts...)...)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer func() {
				if err := c.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(c)
			if _, err := reg.Gather(); err != nil {
				t.Fatalf("gather: %v", err)
			}
			for _, name := range []string{tt.info, tt.value} {
				if n := testutil.CollectAndCount(c, name); n != 8 {
					t.Errorf("%d %s series, want 8", n, name)
				}
			}
			if tt.opts == nil {
				mfs, _ := reg.Gather()
				for _, mf := range mfs {
					if mf.GetName() != "gpu_up" {
						continue
					}
					for _, m := range mf.GetMetric() {
						if m.GetGauge().GetValue() != 1 {
							t.Errorf("gpu_up %v = 0 with a bare mock", m.GetLabel())
						}
					}
				}
			}
			if tt.opts == nil { // dcgm-exporter's labels (modelName, UUID) are not snake_case
				testkit.Lint(t, c)
			}
			if err := c.Healthy(context.Background()); err != nil {
				t.Errorf("Healthy: %v", err)
			}
		})
	}
}

// A panic while New reads the GPUs' identity is New's error, and NVML is
// shut down again.
func TestNewIdentityPanics(t *testing.T) {
	lib := dgxa100.New()
	lib.Devices[3].(*dgxa100.Device).GetNameFunc = func() (string, nvml.Return) { panic("boom") }
	shutdowns := 0
	shutdown := lib.ShutdownFunc
	lib.ShutdownFunc = func() nvml.Return { shutdowns++; return shutdown() }
	c, err := gpumon.New(gpumon.WithNVML(lib))
	if err == nil || !strings.Contains(err.Error(), "boom") || c != nil {
		t.Fatalf("New = %v, %v; want nil and an error naming the panic", c, err)
	}
	if shutdowns != 1 {
		t.Errorf("Shutdown called %d times, want 1", shutdowns)
	}
}
