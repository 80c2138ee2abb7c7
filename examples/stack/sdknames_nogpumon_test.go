//go:build !cgo

package stack_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gpumonCollector contributes nothing without cgo: gpumon's NVML mock (go-nvml) needs it. The reason it
// returns makes the gpumon part of the name checks skip.
func gpumonCollector(*testing.T) (prometheus.Collector, string) {
	return nil, "gpumon needs cgo (go-nvml): built with CGO_ENABLED=0, the gpu_ and gpumon_ names are not checked"
}
