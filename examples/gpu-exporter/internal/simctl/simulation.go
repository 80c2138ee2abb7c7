//go:build cgo

package simctl

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/gpumon/gpusim"
)

// Config is the exporter's --simulate flags.
type Config struct {
	GPUs  int    // --simulate
	Model string // --simulate-model ("" is the default, an H100 SXM)
	Load  string // --simulate-load (see ParsePattern)
	Seed  uint64 // --simulate-seed
	PID   uint32 // the pid the busy GPUs list as their compute process (0: none)
	MIG   string // --simulate-mig: GPU instance profiles, comma-separated ("3g.40gb,3g.40gb"); "" no MIG
	// Processes is how many compute processes each busy GPU lists
	// (--simulate-processes; 0: one where PID is set), as under
	// time-slicing or MPS.
	Processes int
}

// Simulation is the simulate mode: simulated GPUs, their control API and
// their load pattern.
type Simulation struct {
	Sim *gpusim.Sim
	ctl *Controller
}

// ModelNames lists the models --simulate-model accepts.
func ModelNames() string {
	var names []string
	for _, m := range gpusim.Models() {
		names = append(names, fmt.Sprintf("%q", m.Key))
	}
	return strings.Join(names, ", ")
}

// Start builds the simulated GPUs of cfg.
func Start(cfg Config) (*Simulation, error) {
	if cfg.GPUs < 1 {
		return nil, fmt.Errorf("simulate %d: want at least 1 GPU", cfg.GPUs)
	}
	model := gpusim.H100SXM
	if cfg.Model != "" {
		m, ok := gpusim.ModelByName(cfg.Model)
		if !ok {
			return nil, fmt.Errorf("simulate-model %q: want one of %s", cfg.Model, ModelNames())
		}
		model = m
	}
	pattern, err := ParsePattern(cfg.Load)
	if err != nil {
		return nil, err
	}
	var mig []string
	if cfg.MIG != "" {
		mig = strings.Split(cfg.MIG, ",")
	}
	sim, err := gpusim.New(gpusim.Config{GPUs: cfg.GPUs, Model: model, Seed: cfg.Seed, ProcessPID: cfg.PID, MIG: mig, Processes: cfg.Processes})
	if err != nil {
		return nil, err
	}
	return &Simulation{Sim: sim, ctl: New(sim, pattern)}, nil
}

// Option is the gpumon option that reads the simulated GPUs.
func (s *Simulation) Option() gpumon.Option { return gpumon.WithNVML(s.Sim.NVML()) }

// Register adds the control API to mux.
func (s *Simulation) Register(mux *http.ServeMux) { s.ctl.Register(mux) }

// Run applies the load pattern, once a second, until ctx ends.
func (s *Simulation) Run(ctx context.Context) { s.ctl.Run(ctx, time.Second) }

// Release ends every fault (hung calls return), so that the collector can
// close.
func (s *Simulation) Release() { _ = s.Sim.Clear(gpusim.AllGPUs) }
