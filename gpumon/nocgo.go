//go:build !cgo

package gpumon

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// nvmlOptions is empty without cgo: go-nvml cannot be compiled.
type nvmlOptions struct{}

// Collector is a prometheus.Collector of NVML GPU metrics. This build has no
// cgo, so New always fails and a Collector is never created; the methods are
// safe to call on a nil *Collector and do nothing.
type Collector struct{}

// New returns an error matching ErrNVMLUnavailable: go-nvml needs cgo, and
// this program was built with CGO_ENABLED=0.
func New(opts ...Option) (*Collector, error) {
	_ = newConfig(opts)
	return nil, fmt.Errorf("%w: built without cgo", ErrNVMLUnavailable)
}

// Describe sends nothing.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect sends nothing.
func (c *Collector) Collect(chan<- prometheus.Metric) {}

// Close does nothing and returns nil.
func (c *Collector) Close() error { return nil }

// Healthy returns an error matching ErrNVMLUnavailable.
func (c *Collector) Healthy(context.Context) error {
	return fmt.Errorf("%w: built without cgo", ErrNVMLUnavailable)
}
