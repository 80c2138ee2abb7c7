package training

import (
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/internal/promlist"
)

// Ingest error reasons, the values of the reason label of
// training_ingest_errors_total.
const (
	ReasonSyntax   = "syntax"   // a line that starts with '{' but is not valid JSON
	ReasonValue    = "value"    // a field of the wrong type or out of range
	ReasonOverlong = "overlong" // a line longer than the maximum line length
)

// forbiddenLabels change during a run: as labels they would create a new series
// every epoch or batch.
var forbiddenLabels = []string{"epoch", "batch", "step", "iteration"}

// Metrics is the Prometheus collector of one training process (or one rank):
// step time, loss, learning rate, gradient norm, throughput, data-loader wait,
// checkpoints, epoch, stall detection and goodput (the share of the run's
// wall time that went into steps that advanced it; see Metrics.Goodput).
// Register it on a registry:
//
//	m := training.NewMetrics(training.WithRun("llama-8b-sft-7"), training.WithRank(0))
//	reg.MustRegister(m)
//
// All methods are safe for concurrent use. A nil *Metrics is valid: its methods
// do nothing and StartStep returns a Step whose End does nothing.
type Metrics struct {
	now           func() time.Time
	flopsPerToken float64
	peakFLOPS     float64
	err           error // configuration error, reported at registration

	loss       prometheus.Gauge
	lr         prometheus.Gauge
	gradNorm   prometheus.Gauge
	epoch      prometheus.Gauge
	lastStep   prometheus.Gauge
	mfu        prometheus.Gauge
	ckptSize   prometheus.Gauge
	lastCkpt   prometheus.Gauge
	lossSet    atomic.Bool
	lrSet      atomic.Bool
	gradSet    atomic.Bool
	epochSet   atomic.Bool
	stepSet    atomic.Bool
	mfuSet     atomic.Bool
	ckptSet    atomic.Bool
	stepDur    prometheus.Histogram
	dataWait   prometheus.Histogram
	ckptDur    prometheus.Histogram
	steps      prometheus.Counter
	samples    prometheus.Counter
	tokens     prometheus.Counter
	nonfinite  prometheus.Counter
	nonfiniteG prometheus.Counter
	ckptBytes  prometheus.Counter
	ingestErrs map[string]prometheus.Counter
	gp         ledger // goodput: the run's wall time by what it went into

	always   promlist.Collectors // exported from the start: what Describe and Collect send first
	optional []optionalMetric
}

type optionalMetric struct {
	set *atomic.Bool
	m   prometheus.Metric
}

// StepResult is what one training step reports to Step.End or
// Metrics.ObserveStep.
//
// A zero Loss, LearningRate or GradNorm means "not reported": the gauge keeps
// its previous value (and is absent until first reported), so a caller that
// does not track the gradient norm can leave it out. To report a true zero
// (a learning rate of 0 at the start of warmup, a gradient norm of 0 when no
// gradient flows), call Metrics.SetLearningRate, SetGradNorm or SetLoss for
// that step and leave the field zero here. A NaN or infinite Loss
// increments training_nonfinite_loss_total and a non-finite GradNorm
// training_nonfinite_grad_norm_total; neither is written into its gauge, which
// keeps the last finite value. A non-finite LearningRate is ignored. Samples
// and Tokens are the samples and tokens of this step (summed over the
// micro-batches of a gradient-accumulation step); zero or negative adds
// nothing.
type StepResult struct {
	Loss         float64
	LearningRate float64
	GradNorm     float64
	Samples      int
	Tokens       int
}

// Step times one training step. It is a value returned by Metrics.StartStep
// (so starting a step does not allocate) and belongs to the goroutine that
// runs the step: End is not safe to call on one Step from two goroutines, and
// each copy of a Step can End once. The zero Step and a nil *Step are valid
// and their End does nothing.
type Step struct {
	m     *Metrics
	start time.Time
}

// NewMetrics returns the training metrics, configured by opts. It cannot fail:
// a forbidden constant label (epoch, batch, step, iteration) or an invalid
// label name is reported as an error when the Metrics is registered.
func NewMetrics(opts ...Option) *Metrics {
	c := newConfig(opts)
	m := &Metrics{now: c.now, flopsPerToken: c.flopsPerToken, peakFLOPS: c.peakFLOPS}
	for _, l := range forbiddenLabels {
		if _, ok := c.constLabels[l]; ok {
			m.err = fmt.Errorf("training: constant label %q changes during a run and would create a series per value", l)
		}
	}
	cl := c.constLabels
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: cl})
	}
	counter := func(name, help string, extra prometheus.Labels) prometheus.Counter {
		labels := cl
		if len(extra) > 0 {
			labels = prometheus.Labels{}
			for k, v := range cl {
				labels[k] = v
			}
			for k, v := range extra {
				labels[k] = v
			}
		}
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: cl, Buckets: buckets})
	}

	m.loss = gauge("training_loss", "Training loss of the last step that reported a finite loss.")
	m.lr = gauge("training_learning_rate", "Learning rate of the last step that reported one.")
	m.gradNorm = gauge("training_grad_norm", "Gradient norm of the last step that reported a finite one.")
	m.epoch = gauge("training_epoch", "Current epoch.")
	m.lastStep = gauge("training_last_step_timestamp_seconds", "Unix time at which the last training step ended.")
	m.mfu = gauge("training_model_flops_utilization_ratio", "Model FLOPs utilisation of the last step: achieved model FLOP/s over peak FLOP/s.")
	m.ckptSize = gauge("training_checkpoint_size_bytes", "Size of the last checkpoint.")
	m.lastCkpt = gauge("training_last_checkpoint_timestamp_seconds", "Unix time at which the last checkpoint was recorded.")
	m.stepDur = histogram("training_step_duration_seconds", "Duration of a training step.", c.stepBuckets)
	m.dataWait = histogram("training_data_wait_seconds", "Time spent waiting for the data loader.", c.dataWaitBuckets)
	m.ckptDur = histogram("training_checkpoint_duration_seconds", "Duration of a checkpoint save.", c.checkpointBuckets)
	m.steps = counter("training_steps_total", "Training steps completed.", nil)
	m.samples = counter("training_samples_total", "Training samples processed.", nil)
	m.tokens = counter("training_tokens_total", "Training tokens processed.", nil)
	m.nonfinite = counter("training_nonfinite_loss_total", "Steps that reported a NaN or infinite loss.", nil)
	m.nonfiniteG = counter("training_nonfinite_grad_norm_total", "Steps that reported a NaN or infinite gradient norm.", nil)
	m.ckptBytes = counter("training_checkpoint_written_bytes_total", "Bytes written by checkpoints.", nil)
	m.always = promlist.Collectors{m.stepDur, m.dataWait, m.ckptDur, m.steps, m.samples, m.tokens, m.nonfinite, m.nonfiniteG, m.ckptBytes}
	m.gp.init(c.now(), cl)
	m.ingestErrs = map[string]prometheus.Counter{}
	for _, r := range []string{ReasonSyntax, ReasonValue, ReasonOverlong} {
		m.ingestErrs[r] = counter("training_ingest_errors_total", "Trainer output lines (Ingest) that could not be used, by reason.", prometheus.Labels{"reason": r})
		m.always = append(m.always, m.ingestErrs[r])
	}
	m.optional = []optionalMetric{
		{&m.lossSet, m.loss}, {&m.lrSet, m.lr}, {&m.gradSet, m.gradNorm}, {&m.epochSet, m.epoch},
		{&m.stepSet, m.lastStep}, {&m.ckptSet, m.ckptSize}, {&m.ckptSet, m.lastCkpt},
	}
	if m.peakFLOPS > 0 {
		m.optional = append(m.optional, optionalMetric{&m.mfuSet, m.mfu})
	}
	return m
}

// Describe implements prometheus.Collector. It describes every series the
// Metrics may export, including those that appear only once reported.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	if m == nil {
		return
	}
	if m.err != nil {
		ch <- prometheus.NewInvalidDesc(m.err)
		return
	}
	m.always.Describe(ch)
	m.gp.describe(ch)
	for _, x := range m.optional {
		ch <- x.m.Desc()
	}
}

// Collect implements prometheus.Collector. Counters, histograms and
// training_goodput_ratio are always exported; training_loss,
// training_learning_rate, training_grad_norm, training_epoch,
// training_last_step_timestamp_seconds, the checkpoint gauges and
// training_model_flops_utilization_ratio only once a value was reported.
// During a startup or a restart (no step since), it counts the time up to
// now as that badput (see Metrics.Goodput).
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	if m == nil {
		return
	}
	if m.err != nil {
		ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(m.err), m.err)
		return
	}
	m.always.Collect(ch)
	m.gp.collect(ch, m.now())
	for _, x := range m.optional {
		if x.set.Load() {
			ch <- x.m
		}
	}
}

// StartStep starts timing a training step; call End on the returned Step when
// the step (forward, backward, optimizer update) is done. It does not allocate.
// On a nil *Metrics it returns a Step whose End does nothing.
func (m *Metrics) StartStep() Step {
	if m == nil {
		return Step{}
	}
	return Step{m: m, start: m.now()}
}

// End records the step: its duration since StartStep, the values of r, one
// more training_steps_total and the last-step timestamp. Only the first End of
// a Step counts; later calls, and End on a zero or nil Step, do nothing. End
// does not allocate.
func (s *Step) End(r StepResult) {
	if s == nil || s.m == nil {
		return
	}
	m := s.m
	s.m = nil
	now := m.now()
	d := now.Sub(s.start)
	m.record(now, observation{steps: 1, dur: d, hasDur: true, span: d, result: r, has: reportedFields(r)})
}

// ObserveStep records one training step whose duration d was measured
// elsewhere (for example by the trainer itself), ending now. It does what
// Step.End does; a negative d records the step without a duration
// observation and without step time for goodput.
func (m *Metrics) ObserveStep(d time.Duration, r StepResult) {
	if m == nil {
		return
	}
	m.record(m.now(), observation{steps: 1, dur: d, hasDur: d >= 0, span: d, result: r, has: reportedFields(r)})
}

// ObserveDataWait records time spent waiting for the data loader before a
// step, a wait that ended now: the histogram, and data_wait badput. A
// negative d is ignored.
func (m *Metrics) ObserveDataWait(d time.Duration) {
	if m == nil || d < 0 {
		return
	}
	m.dataWait.Observe(d.Seconds())
	m.gp.interval(badDataWait, m.now(), d)
}

// ObserveCheckpoint records a checkpoint save that took d, ended now and wrote
// bytes (0 when unknown): the duration histogram, the bytes counter, the size
// of the last checkpoint, its timestamp and checkpoint badput. A negative d
// or bytes is taken as 0.
func (m *Metrics) ObserveCheckpoint(d time.Duration, bytes int64) {
	if m == nil {
		return
	}
	m.checkpoint(m.now(), d, float64(max(bytes, 0)))
}

// SetLoss sets training_loss to loss, zero included, which a StepResult
// cannot report. A NaN or infinite loss increments
// training_nonfinite_loss_total instead, as in StepResult. Use it instead of
// StepResult.Loss for the same step, not as well, or a non-finite loss is
// counted twice. It does nothing on a nil *Metrics.
func (m *Metrics) SetLoss(loss float64) {
	if m == nil {
		return
	}
	m.record(time.Time{}, observation{has: hasLoss, result: StepResult{Loss: loss}})
}

// SetLearningRate sets training_learning_rate to lr, zero included (the start
// of a warmup, the end of a schedule), which a StepResult cannot report. A NaN
// or infinite lr is ignored. It does nothing on a nil *Metrics.
func (m *Metrics) SetLearningRate(lr float64) {
	if m == nil {
		return
	}
	m.record(time.Time{}, observation{has: hasLR, result: StepResult{LearningRate: lr}})
}

// SetGradNorm sets training_grad_norm to norm, zero included (no gradient
// flows: a frozen or broken model), which a StepResult cannot report. A NaN or
// infinite norm increments training_nonfinite_grad_norm_total instead. Use it
// instead of StepResult.GradNorm for the same step, not as well. It does
// nothing on a nil *Metrics.
func (m *Metrics) SetGradNorm(norm float64) {
	if m == nil {
		return
	}
	m.record(time.Time{}, observation{has: hasGradNorm, result: StepResult{GradNorm: norm}})
}

// SetEpoch sets training_epoch.
func (m *Metrics) SetEpoch(n int) {
	if m == nil {
		return
	}
	m.setEpoch(float64(n))
}

func (m *Metrics) setEpoch(n float64) {
	m.epoch.Set(n)
	setFlag(&m.epochSet)
}

func (m *Metrics) checkpoint(now time.Time, d time.Duration, bytes float64) {
	m.ckptDur.Observe(max(d, 0).Seconds())
	m.gp.interval(badCheckpoint, now, d)
	m.ckptBytes.Add(bytes)
	m.ckptSize.Set(bytes)
	m.lastCkpt.Set(unixSeconds(now))
	setFlag(&m.ckptSet)
}

func (m *Metrics) ingestError(reason string) {
	if m == nil {
		return
	}
	m.ingestErrs[reason].Inc()
}

// Bits of observation.has.
const (
	hasLoss = 1 << iota
	hasLR
	hasGradNorm
)

// observation is one or more steps as reported through the public API or a
// trainer output line. dur is the duration of one step; steps > 1 when a line
// covers several steps (a trainer that logs every N steps), 0 when it reports
// again on a step already recorded (only its values count).
type observation struct {
	steps  float64
	dur    time.Duration
	hasDur bool
	result StepResult
	has    uint8
	// samples and tokens as floats, for Ingest; added to result's.
	samples, tokens float64
	// For goodput: the wall time all the steps took together (ending at
	// the observation's time), the data wait before them (or, waitInside,
	// at the start of span), and the number of the last step (hasNum).
	span, wait time.Duration
	waitInside bool
	num        int64
	hasNum     bool
}

func reportedFields(r StepResult) uint8 {
	var has uint8
	if r.Loss != 0 {
		has |= hasLoss
	}
	if r.LearningRate != 0 {
		has |= hasLR
	}
	if r.GradNorm != 0 {
		has |= hasGradNorm
	}
	return has
}

func (m *Metrics) record(now time.Time, o observation) {
	r := &o.result
	if o.has&hasLoss != 0 {
		if isFinite(r.Loss) {
			m.loss.Set(r.Loss)
			setFlag(&m.lossSet)
		} else {
			m.nonfinite.Inc()
		}
	}
	if o.has&hasLR != 0 && isFinite(r.LearningRate) {
		m.lr.Set(r.LearningRate)
		setFlag(&m.lrSet)
	}
	if o.has&hasGradNorm != 0 {
		if isFinite(r.GradNorm) {
			m.gradNorm.Set(r.GradNorm)
			setFlag(&m.gradSet)
		} else {
			m.nonfiniteG.Inc()
		}
	}
	samples, tokens := o.samples, o.tokens
	if r.Samples > 0 {
		samples += float64(r.Samples)
	}
	if r.Tokens > 0 {
		tokens += float64(r.Tokens)
	}
	if samples > 0 {
		m.samples.Add(samples)
	}
	if tokens > 0 {
		m.tokens.Add(tokens)
	}
	if o.steps == 0 {
		return // a repeated report of a step already recorded
	}
	m.steps.Add(o.steps)
	m.gp.step(now, o.span, o.wait, o.waitInside, stepCount(o.steps), o.num, o.hasNum)
	if o.hasDur {
		sec := o.dur.Seconds()
		m.stepDur.Observe(sec)
		if m.peakFLOPS > 0 && tokens > 0 && sec > 0 {
			// Finite inputs can still overflow (huge FLOPs per token, a
			// tiny peak): the gauge keeps its last finite value.
			if mfu := tokens * m.flopsPerToken / (sec * o.steps * m.peakFLOPS); isFinite(mfu) {
				m.mfu.Set(mfu)
				setFlag(&m.mfuSet)
			}
		}
	}
	m.lastStep.Set(unixSeconds(now))
	setFlag(&m.stepSet)
}

// setFlag sets b, reading first so that the hot path does not write a shared
// cache line on every step.
func setFlag(b *atomic.Bool) {
	if !b.Load() {
		b.Store(true)
	}
}

func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func finitePositive(f float64) bool { return isFinite(f) && f > 0 }

func itoa(n int) string { return strconv.Itoa(n) }
