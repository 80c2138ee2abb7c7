package training

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Default histogram buckets, in seconds.
var (
	// DefaultStepBuckets covers training steps from 10 ms to 10 minutes.
	DefaultStepBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// DefaultDataWaitBuckets covers data-loader waits from 1 ms to 1 minute.
	DefaultDataWaitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// DefaultCheckpointBuckets covers checkpoint saves from 100 ms to 1 hour.
	DefaultCheckpointBuckets = []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

// Option configures NewMetrics. Options are applied once, in order, at
// construction; a nil Option is ignored.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	constLabels       prometheus.Labels
	stepBuckets       []float64
	dataWaitBuckets   []float64
	checkpointBuckets []float64
	flopsPerToken     float64
	peakFLOPS         float64
	now               func() time.Time
}

func newConfig(opts []Option) *config {
	c := &config{
		constLabels:       prometheus.Labels{},
		stepBuckets:       DefaultStepBuckets,
		dataWaitBuckets:   DefaultDataWaitBuckets,
		checkpointBuckets: DefaultCheckpointBuckets,
		now:               time.Now,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	return c
}

// WithConstLabels adds constant labels (run identity: run, rank, node...) to
// every series of the Metrics. Labels that change during a run (epoch, batch,
// step) must not be used: they are rejected when the Metrics is registered.
// A nil or empty map adds nothing; later options override earlier keys.
func WithConstLabels(labels prometheus.Labels) Option {
	return optionFunc(func(c *config) {
		for k, v := range labels {
			c.constLabels[k] = v
		}
	})
}

// WithRun sets the constant label run, the identity of one training run
// (for example a W&B or MLflow run name). An empty run adds nothing.
func WithRun(run string) Option {
	return optionFunc(func(c *config) {
		if run != "" {
			c.constLabels["run"] = run
		}
	})
}

// WithRank sets the constant label rank, the distributed rank of the process
// or worker this Metrics describes, so that several ranks can register their
// Metrics on one registry without collision. A negative rank adds nothing.
func WithRank(rank int) Option {
	return optionFunc(func(c *config) {
		if rank >= 0 {
			c.constLabels["rank"] = itoa(rank)
		}
	})
}

// WithStepBuckets sets the bucket boundaries (seconds) of
// training_step_duration_seconds. An empty slice keeps DefaultStepBuckets.
func WithStepBuckets(b []float64) Option {
	return optionFunc(func(c *config) {
		if len(b) > 0 {
			c.stepBuckets = b
		}
	})
}

// WithDataWaitBuckets sets the bucket boundaries (seconds) of
// training_data_wait_seconds. An empty slice keeps DefaultDataWaitBuckets.
func WithDataWaitBuckets(b []float64) Option {
	return optionFunc(func(c *config) {
		if len(b) > 0 {
			c.dataWaitBuckets = b
		}
	})
}

// WithCheckpointBuckets sets the bucket boundaries (seconds) of
// training_checkpoint_duration_seconds. An empty slice keeps
// DefaultCheckpointBuckets.
func WithCheckpointBuckets(b []float64) Option {
	return optionFunc(func(c *config) {
		if len(b) > 0 {
			c.checkpointBuckets = b
		}
	})
}

// WithFLOPs enables training_model_flops_utilization_ratio (MFU). flopsPerToken
// is the model FLOPs one training token costs (forward and backward, about
// 6 x parameters for a dense transformer, plus attention); peakFLOPS is the
// peak FLOP/s of the hardware the reported tokens ran on (one GPU when each
// rank reports its own tokens). Values that are not both positive and finite
// leave MFU disabled.
func WithFLOPs(flopsPerToken, peakFLOPS float64) Option {
	return optionFunc(func(c *config) {
		if finitePositive(flopsPerToken) && finitePositive(peakFLOPS) {
			c.flopsPerToken, c.peakFLOPS = flopsPerToken, peakFLOPS
		}
	})
}

// WithClock sets the clock used for step durations, timestamps and the
// goodput wall time (tests). A nil clock keeps time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) {
		if now != nil {
			c.now = now
		}
	})
}
