// Package snap holds what modeltop shows: one snapshot of the models, GPUs
// and training runs a source saw, with the state of each backend. A value that
// is unknown (absent series, no traffic in the interval, first scrape) is NaN;
// the view prints it as "-".
package snap

import (
	"math"
	"time"
)

// Model is one served model, summed over operations and instances.
type Model struct {
	Model string
	// ReqRate and ErrRate are requests (all, and failed) per second.
	ReqRate, ErrRate float64
	// TTFT50, TTFT99, TPOT50 and TPOT99 are quantiles in seconds.
	TTFT50, TTFT99, TPOT50, TPOT99 float64
	// OutTPS and InTPS are output and input tokens per second.
	OutTPS, InTPS float64
	// Active is requests in flight; Queue is requests waiting (vLLM's
	// num_requests_waiting where the server exports it).
	Active, Queue float64
}

// GPU is one device of one instance.
type GPU struct {
	Instance, Index, Name string
	// Up is 1 when the device answered its last read, 0 when not, NaN when
	// the exporter does not say.
	Up float64
	// Util is the utilisation ratio (0..1).
	Util float64
	// MemUsed and MemTotal are bytes.
	MemUsed, MemTotal float64
	// Power and PowerLimit are watts; Temp is degrees Celsius.
	Power, PowerLimit, Temp float64
	// XID is the XID errors counted since the driver loaded (NaN when the
	// exporter does not count them); XIDCodes are the XID codes seen (or,
	// with DCGM names, the last one).
	XID      float64
	XIDCodes []string
	// Throttle is the clock event reasons active now, gpu_idle left out.
	Throttle []string
	// Simulated is set when gpu_info says simulated="true" (gpumon/gpusim).
	Simulated bool
}

// Run is one training process (run and rank, or an instance).
type Run struct {
	Run, Rank, Instance string
	// StepTime is the mean step duration over the last interval, seconds.
	StepTime float64
	// Steps is the steps completed.
	Steps float64
	// Loss and MFU are the last reported values; TokensPerSec is a rate.
	Loss, TokensPerSec, MFU float64
	// LastStep is the Unix time of the last step, seconds.
	LastStep float64
}

// Stall returns the seconds since the run's last step at now, or NaN.
func (r Run) Stall(now time.Time) float64 {
	if math.IsNaN(r.LastStep) || r.LastStep <= 0 {
		return math.NaN()
	}
	s := float64(now.UnixNano())/1e9 - r.LastStep
	if s < 0 {
		return 0
	}
	return s
}

// Status is the state of one backend (a Prometheus server or a scrape target)
// after the last fetch.
type Status struct {
	// Source names the backend: "prometheus http://..." or "scrape http://...".
	Source string
	// Err is set when the backend gave no data this time.
	Err error
	// Warn is set when the backend answered only in part.
	Warn error
	// LastOK is when it last answered; zero if never.
	LastOK time.Time
}

// Snapshot is one fetch from a source.
type Snapshot struct {
	Time   time.Time
	Models []Model
	GPUs   []GPU
	Runs   []Run
	Status []Status
}

// Failed reports whether every backend failed, so that the snapshot holds no
// data and the last good one should stay on screen.
func (s Snapshot) Failed() bool {
	if len(s.Status) == 0 {
		return false
	}
	for _, st := range s.Status {
		if st.Err == nil {
			return false
		}
	}
	return true
}

// NaN is shorthand for an unknown value.
func NaN() float64 { return math.NaN() }

// NewModel returns a Model whose values are all unknown.
func NewModel(name string) Model {
	n := math.NaN()
	return Model{Model: name, ReqRate: n, ErrRate: n, TTFT50: n, TTFT99: n, TPOT50: n, TPOT99: n,
		OutTPS: n, InTPS: n, Active: n, Queue: n}
}

// NewGPU returns a GPU whose values are all unknown.
func NewGPU(instance, index string) GPU {
	n := math.NaN()
	return GPU{Instance: instance, Index: index, Up: n, Util: n, MemUsed: n, MemTotal: n,
		Power: n, PowerLimit: n, Temp: n, XID: n}
}

// NewRun returns a Run whose values are all unknown.
func NewRun(run, rank, instance string) Run {
	n := math.NaN()
	return Run{Run: run, Rank: rank, Instance: instance, StepTime: n, Steps: n, Loss: n,
		TokensPerSec: n, MFU: n, LastStep: n}
}

// Add adds v to *x, where a NaN *x means "nothing yet". A NaN v adds nothing.
func Add(x *float64, v float64) {
	if math.IsNaN(v) {
		return
	}
	if math.IsNaN(*x) {
		*x = v
		return
	}
	*x += v
}
