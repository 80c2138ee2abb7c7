//go:build !cgo

package simctl

import (
	"context"
	"errors"
	"net/http"

	"github.com/modeltel/modeltel/gpumon"
)

// Config is the exporter's --simulate flags.
type Config struct {
	GPUs      int
	Model     string
	Load      string
	Seed      uint64
	PID       uint32
	MIG       string
	Processes int
}

// Simulation is the simulate mode; without cgo there is none.
type Simulation struct{}

// ModelNames lists the models --simulate-model accepts: none without cgo.
func ModelNames() string { return "(none: built without cgo)" }

// Start fails: gpusim, like go-nvml, needs cgo.
func Start(Config) (*Simulation, error) {
	return nil, errors.New("simulate: built without cgo (gpusim needs it, as go-nvml does)")
}

// Option is nil.
func (*Simulation) Option() gpumon.Option { return nil }

// Register does nothing.
func (*Simulation) Register(*http.ServeMux) {}

// Run does nothing.
func (*Simulation) Run(context.Context) {}

// Release does nothing.
func (*Simulation) Release() {}
