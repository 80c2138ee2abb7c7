package training_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/internal/testkit"
	"github.com/modeltel/modeltel/training"
)

// clock is a settable clock for WithClock.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	tick time.Duration // added after every reading
}

func newClock(tick time.Duration) *clock {
	return &clock{t: time.Unix(1700000000, 0), tick: tick}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.tick)
	return t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMetricsExposition(t *testing.T) {
	clk := newClock(0)
	m := training.NewMetrics(
		training.WithRun("r1"),
		training.WithRank(0),
		training.WithConstLabels(prometheus.Labels{"node": "n0"}),
		training.WithFLOPs(1e9, 1e14),
		training.WithStepBuckets([]float64{0.1, 1, 10}),
		training.WithDataWaitBuckets([]float64{0.01, 0.1}),
		training.WithCheckpointBuckets([]float64{1, 10}),
		training.WithClock(clk.now),
	)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)

	m.SetEpoch(2)
	m.ObserveDataWait(30 * time.Millisecond)
	step := m.StartStep()
	clk.advance(250 * time.Millisecond)
	step.End(training.StepResult{Loss: 2.5, LearningRate: 3e-4, GradNorm: 1.25, Samples: 8, Tokens: 4096})
	clk.advance(time.Second)
	m.ObserveStep(2*time.Second, training.StepResult{Loss: math.NaN(), GradNorm: math.Inf(1), Samples: 8, Tokens: 100})
	m.ObserveCheckpoint(3*time.Second, 1024)

	// Goodput: the data wait and the second step's start come before the
	// run started or overlap time already counted, and the checkpoint lies
	// inside the second step: each second of the run is counted once.
	const want = `
# HELP training_badput_seconds_total Wall time of the run that was not productive step time, by reason.
# TYPE training_badput_seconds_total counter
training_badput_seconds_total{node="n0",rank="0",reason="checkpoint",run="r1"} 0
training_badput_seconds_total{node="n0",rank="0",reason="data_wait",run="r1"} 0
training_badput_seconds_total{node="n0",rank="0",reason="other",run="r1"} 0
training_badput_seconds_total{node="n0",rank="0",reason="recompute",run="r1"} 0
training_badput_seconds_total{node="n0",rank="0",reason="restart",run="r1"} 0
training_badput_seconds_total{node="n0",rank="0",reason="startup",run="r1"} 0
# HELP training_checkpoint_duration_seconds Duration of a checkpoint save.
# TYPE training_checkpoint_duration_seconds histogram
training_checkpoint_duration_seconds_bucket{node="n0",rank="0",run="r1",le="1"} 0
training_checkpoint_duration_seconds_bucket{node="n0",rank="0",run="r1",le="10"} 1
training_checkpoint_duration_seconds_bucket{node="n0",rank="0",run="r1",le="+Inf"} 1
training_checkpoint_duration_seconds_sum{node="n0",rank="0",run="r1"} 3
training_checkpoint_duration_seconds_count{node="n0",rank="0",run="r1"} 1
# HELP training_checkpoint_size_bytes Size of the last checkpoint.
# TYPE training_checkpoint_size_bytes gauge
training_checkpoint_size_bytes{node="n0",rank="0",run="r1"} 1024
# HELP training_checkpoint_written_bytes_total Bytes written by checkpoints.
# TYPE training_checkpoint_written_bytes_total counter
training_checkpoint_written_bytes_total{node="n0",rank="0",run="r1"} 1024
# HELP training_data_wait_seconds Time spent waiting for the data loader.
# TYPE training_data_wait_seconds histogram
training_data_wait_seconds_bucket{node="n0",rank="0",run="r1",le="0.01"} 0
training_data_wait_seconds_bucket{node="n0",rank="0",run="r1",le="0.1"} 1
training_data_wait_seconds_bucket{node="n0",rank="0",run="r1",le="+Inf"} 1
training_data_wait_seconds_sum{node="n0",rank="0",run="r1"} 0.03
training_data_wait_seconds_count{node="n0",rank="0",run="r1"} 1
# HELP training_epoch Current epoch.
# TYPE training_epoch gauge
training_epoch{node="n0",rank="0",run="r1"} 2
# HELP training_goodput_ratio Productive step time over the wall time since the run started.
# TYPE training_goodput_ratio gauge
training_goodput_ratio{node="n0",rank="0",run="r1"} 1
# HELP training_goodput_seconds_total Productive step time: steps that advanced the run, each step number counted once.
# TYPE training_goodput_seconds_total counter
training_goodput_seconds_total{node="n0",rank="0",run="r1"} 1.25
# HELP training_grad_norm Gradient norm of the last step that reported a finite one.
# TYPE training_grad_norm gauge
training_grad_norm{node="n0",rank="0",run="r1"} 1.25
# HELP training_ingest_errors_total Trainer output lines (Ingest) that could not be used, by reason.
# TYPE training_ingest_errors_total counter
training_ingest_errors_total{node="n0",rank="0",reason="overlong",run="r1"} 0
training_ingest_errors_total{node="n0",rank="0",reason="syntax",run="r1"} 0
training_ingest_errors_total{node="n0",rank="0",reason="value",run="r1"} 0
# HELP training_last_checkpoint_timestamp_seconds Unix time at which the last checkpoint was recorded.
# TYPE training_last_checkpoint_timestamp_seconds gauge
training_last_checkpoint_timestamp_seconds{node="n0",rank="0",run="r1"} 1.70000000125e+09
# HELP training_last_step_timestamp_seconds Unix time at which the last training step ended.
# TYPE training_last_step_timestamp_seconds gauge
training_last_step_timestamp_seconds{node="n0",rank="0",run="r1"} 1.70000000125e+09
# HELP training_learning_rate Learning rate of the last step that reported one.
# TYPE training_learning_rate gauge
training_learning_rate{node="n0",rank="0",run="r1"} 0.0003
# HELP training_loss Training loss of the last step that reported a finite loss.
# TYPE training_loss gauge
training_loss{node="n0",rank="0",run="r1"} 2.5
# HELP training_model_flops_utilization_ratio Model FLOPs utilisation of the last step: achieved model FLOP/s over peak FLOP/s.
# TYPE training_model_flops_utilization_ratio gauge
training_model_flops_utilization_ratio{node="n0",rank="0",run="r1"} 0.0005
# HELP training_nonfinite_grad_norm_total Steps that reported a NaN or infinite gradient norm.
# TYPE training_nonfinite_grad_norm_total counter
training_nonfinite_grad_norm_total{node="n0",rank="0",run="r1"} 1
# HELP training_nonfinite_loss_total Steps that reported a NaN or infinite loss.
# TYPE training_nonfinite_loss_total counter
training_nonfinite_loss_total{node="n0",rank="0",run="r1"} 1
# HELP training_recomputed_steps_total Steps run again after resuming from a checkpoint older than the last step completed.
# TYPE training_recomputed_steps_total counter
training_recomputed_steps_total{node="n0",rank="0",run="r1"} 0
# HELP training_samples_total Training samples processed.
# TYPE training_samples_total counter
training_samples_total{node="n0",rank="0",run="r1"} 16
# HELP training_step_duration_seconds Duration of a training step.
# TYPE training_step_duration_seconds histogram
training_step_duration_seconds_bucket{node="n0",rank="0",run="r1",le="0.1"} 0
training_step_duration_seconds_bucket{node="n0",rank="0",run="r1",le="1"} 1
training_step_duration_seconds_bucket{node="n0",rank="0",run="r1",le="10"} 2
training_step_duration_seconds_bucket{node="n0",rank="0",run="r1",le="+Inf"} 2
training_step_duration_seconds_sum{node="n0",rank="0",run="r1"} 2.25
training_step_duration_seconds_count{node="n0",rank="0",run="r1"} 2
# HELP training_steps_total Training steps completed.
# TYPE training_steps_total counter
training_steps_total{node="n0",rank="0",run="r1"} 2
# HELP training_tokens_total Training tokens processed.
# TYPE training_tokens_total counter
training_tokens_total{node="n0",rank="0",run="r1"} 4196
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(m, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	testkit.Lint(t, m)
}

func TestMFUFirstStep(t *testing.T) {
	clk := newClock(0)
	m := training.NewMetrics(training.WithFLOPs(1e9, 1e14), training.WithClock(clk.now))
	step := m.StartStep()
	clk.advance(250 * time.Millisecond)
	step.End(training.StepResult{Tokens: 4096})
	// 4096 tokens x 1e9 FLOPs / (0.25 s x 1e14 FLOP/s)
	if got, want := testutil.ToFloat64(collectorOf(m, "training_model_flops_utilization_ratio")), 0.16384; math.Abs(got-want) > 1e-12 {
		t.Errorf("mfu = %v, want %v", got, want)
	}
}

// collectorOf returns a collector that yields only the named series of m.
func collectorOf(m *training.Metrics, name string) prometheus.Collector {
	return filtered{m, name}
}

type filtered struct {
	m    *training.Metrics
	name string
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.m.Collect(all); close(all) }()
	for x := range all {
		if strings.Contains(x.Desc().String(), `fqName: "`+f.name+`"`) {
			ch <- x
		}
	}
}

func TestStepResultReporting(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name    string
		results []training.StepResult
		want    string // exposition of the series named in names
	}{
		{
			name:    "zero result reports no gauges",
			results: []training.StepResult{{}},
			want: `
training_steps_total 1
training_nonfinite_loss_total 0
training_nonfinite_grad_norm_total 0
training_samples_total 0
training_tokens_total 0
`,
		},
		{
			name:    "zero keeps the previous value",
			results: []training.StepResult{{Loss: 1.5, LearningRate: 1e-3, GradNorm: 2}, {Samples: 4, Tokens: 16}},
			want: `
training_loss 1.5
training_learning_rate 0.001
training_grad_norm 2
training_steps_total 2
training_nonfinite_loss_total 0
training_nonfinite_grad_norm_total 0
training_samples_total 4
training_tokens_total 16
`,
		},
		{
			name:    "NaN loss first: counted, no gauge",
			results: []training.StepResult{{Loss: nan}},
			want: `
training_steps_total 1
training_nonfinite_loss_total 1
training_nonfinite_grad_norm_total 0
training_samples_total 0
training_tokens_total 0
`,
		},
		{
			name:    "non-finite values keep the last finite one",
			results: []training.StepResult{{Loss: 2, GradNorm: 3, LearningRate: 1e-4}, {Loss: inf, GradNorm: nan, LearningRate: nan}, {Loss: -inf, GradNorm: -inf}},
			want: `
training_loss 2
training_learning_rate 0.0001
training_grad_norm 3
training_steps_total 3
training_nonfinite_loss_total 2
training_nonfinite_grad_norm_total 2
training_samples_total 0
training_tokens_total 0
`,
		},
		{
			name:    "negative loss is a value, negative counts add nothing",
			results: []training.StepResult{{Loss: -0.5, Samples: -3, Tokens: -7}},
			want: `
training_loss -0.5
training_steps_total 1
training_nonfinite_loss_total 0
training_nonfinite_grad_norm_total 0
training_samples_total 0
training_tokens_total 0
`,
		},
	}
	names := []string{"training_loss", "training_learning_rate", "training_grad_norm", "training_steps_total",
		"training_nonfinite_loss_total", "training_nonfinite_grad_norm_total", "training_samples_total", "training_tokens_total"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := training.NewMetrics()
			for _, r := range tt.results {
				s := m.StartStep()
				s.End(r)
			}
			if err := testutil.CollectAndCompare(m, strings.NewReader(withTypes(tt.want)), names...); err != nil {
				t.Error(err)
			}
			testkit.Lint(t, m)
		})
	}
}

// help is the HELP text of the series that withTypes annotates.
var help = map[string]string{
	"training_loss":                      "Training loss of the last step that reported a finite loss.",
	"training_learning_rate":             "Learning rate of the last step that reported one.",
	"training_grad_norm":                 "Gradient norm of the last step that reported a finite one.",
	"training_steps_total":               "Training steps completed.",
	"training_samples_total":             "Training samples processed.",
	"training_tokens_total":              "Training tokens processed.",
	"training_nonfinite_loss_total":      "Steps that reported a NaN or infinite loss.",
	"training_nonfinite_grad_norm_total": "Steps that reported a NaN or infinite gradient norm.",
	"training_checkpoint_size_bytes":     "Size of the last checkpoint.",
	"training_epoch":                     "Current epoch.",
	"training_recomputed_steps_total":    "Steps run again after resuming from a checkpoint older than the last step completed.",
}

// withTypes adds the HELP and TYPE lines of unlabelled gauge and counter
// samples, one per line.
func withTypes(samples string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(samples), "\n") {
		name := strings.Fields(l)[0]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		typ := "gauge"
		if strings.HasSuffix(name, "_total") {
			typ = "counter"
		}
		b.WriteString("# HELP " + name + " " + help[name] + "\n# TYPE " + name + " " + typ + "\n" + l + "\n")
	}
	return b.String()
}

func TestStepEndOnce(t *testing.T) {
	m := training.NewMetrics()
	s := m.StartStep()
	s.End(training.StepResult{Loss: 1})
	s.End(training.StepResult{Loss: 2})
	var zero training.Step
	zero.End(training.StepResult{Loss: 3})
	var nilStep *training.Step
	nilStep.End(training.StepResult{Loss: 4})
	if got := testutil.ToFloat64(collectorOf(m, "training_steps_total")); got != 1 {
		t.Errorf("steps = %v, want 1", got)
	}
	if got := testutil.ToFloat64(collectorOf(m, "training_loss")); got != 1 {
		t.Errorf("loss = %v, want 1", got)
	}
}

func TestNilMetrics(t *testing.T) {
	var m *training.Metrics
	s := m.StartStep()
	s.End(training.StepResult{Loss: 1})
	m.ObserveStep(time.Second, training.StepResult{Loss: 1})
	m.ObserveDataWait(time.Second)
	m.ObserveCheckpoint(time.Second, 1)
	m.SetEpoch(1)
	if n := testutil.CollectAndCount(m); n != 0 {
		t.Errorf("nil Metrics collected %d series", n)
	}
}

func TestNegativeDurations(t *testing.T) {
	m := training.NewMetrics(training.WithStepBuckets([]float64{1}), training.WithDataWaitBuckets([]float64{1}), training.WithCheckpointBuckets([]float64{1}))
	m.ObserveStep(-time.Second, training.StepResult{Loss: 1})
	m.ObserveDataWait(-time.Second)
	m.ObserveCheckpoint(-time.Second, -5)
	want := withTypes(`
training_steps_total 1
training_checkpoint_size_bytes 0
`) + `
# HELP training_step_duration_seconds Duration of a training step.
# TYPE training_step_duration_seconds histogram
training_step_duration_seconds_bucket{le="1"} 0
training_step_duration_seconds_bucket{le="+Inf"} 0
training_step_duration_seconds_sum 0
training_step_duration_seconds_count 0
# HELP training_data_wait_seconds Time spent waiting for the data loader.
# TYPE training_data_wait_seconds histogram
training_data_wait_seconds_bucket{le="1"} 0
training_data_wait_seconds_bucket{le="+Inf"} 0
training_data_wait_seconds_sum 0
training_data_wait_seconds_count 0
# HELP training_checkpoint_duration_seconds Duration of a checkpoint save.
# TYPE training_checkpoint_duration_seconds histogram
training_checkpoint_duration_seconds_bucket{le="1"} 1
training_checkpoint_duration_seconds_bucket{le="+Inf"} 1
training_checkpoint_duration_seconds_sum 0
training_checkpoint_duration_seconds_count 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "training_steps_total", "training_step_duration_seconds",
		"training_data_wait_seconds", "training_checkpoint_duration_seconds", "training_checkpoint_size_bytes"); err != nil {
		t.Error(err)
	}
}

func TestRanksOnOneRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	ranks := make([]*training.Metrics, 4)
	for i := range ranks {
		ranks[i] = training.NewMetrics(training.WithRun("r"), training.WithRank(i))
		if err := reg.Register(ranks[i]); err != nil {
			t.Fatalf("register rank %d: %v", i, err)
		}
		ranks[i].ObserveStep(time.Second, training.StepResult{Tokens: 100 * (i + 1)})
	}
	n, err := testutil.GatherAndCount(reg, "training_tokens_total")
	if err != nil || n != 4 {
		t.Fatalf("training_tokens_total series = %d, %v; want 4", n, err)
	}
	const want = `
# HELP training_tokens_total Training tokens processed.
# TYPE training_tokens_total counter
training_tokens_total{rank="0",run="r"} 100
training_tokens_total{rank="1",run="r"} 200
training_tokens_total{rank="2",run="r"} 300
training_tokens_total{rank="3",run="r"} 400
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "training_tokens_total"); err != nil {
		t.Error(err)
	}
	// The same rank twice collides.
	err = reg.Register(training.NewMetrics(training.WithRun("r"), training.WithRank(1)))
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("registering rank 1 twice: err = %v, want AlreadyRegisteredError", err)
	}
}

func TestForbiddenLabels(t *testing.T) {
	for _, l := range []string{"epoch", "batch", "step"} {
		t.Run(l, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := training.NewMetrics(training.WithConstLabels(prometheus.Labels{l: "1"}))
			if err := reg.Register(m); err == nil || !strings.Contains(err.Error(), l) {
				t.Errorf("Register with label %q: err = %v, want an error naming it", l, err)
			}
			m.ObserveStep(time.Second, training.StepResult{Loss: 1}) // still safe to call
		})
	}
	t.Run("invalid name", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if err := reg.Register(training.NewMetrics(training.WithConstLabels(prometheus.Labels{"\xff": "x"}))); err == nil {
			t.Error("Register with an invalid label name: no error")
		}
	})
}

func TestConcurrentSteps(t *testing.T) {
	m := training.NewMetrics(training.WithFLOPs(1, 1))
	const workers, steps = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < steps; i++ {
				s := m.StartStep()
				s.End(training.StepResult{Loss: float64(i + 1), Samples: 1, Tokens: 2})
				m.ObserveDataWait(time.Millisecond)
			}
		}()
	}
	go func() { // scrapes during the steps
		for i := 0; i < 20; i++ {
			testutil.CollectAndCount(m)
			_ = m.Goodput()
		}
	}()
	wg.Wait()
	for name, want := range map[string]float64{"training_steps_total": workers * steps, "training_samples_total": workers * steps, "training_tokens_total": 2 * workers * steps} {
		if got := testutil.ToFloat64(collectorOf(m, name)); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestStepDoesNotAllocate(t *testing.T) {
	m := training.NewMetrics(training.WithRun("r"), training.WithRank(0), training.WithFLOPs(6e9, 1e15))
	r := training.StepResult{Loss: 2, LearningRate: 1e-4, GradNorm: 1, Samples: 8, Tokens: 8192}
	if n := testing.AllocsPerRun(100, func() {
		s := m.StartStep()
		s.End(r)
		m.ObserveStep(time.Millisecond, r)
		m.ObserveDataWait(time.Millisecond)
	}); n != 0 {
		t.Errorf("allocations per step = %v, want 0", n)
	}
}

// StepResult cannot carry a true zero (zero means "not reported"); the
// setters can: a learning rate of 0 at the start of warmup or the end of a
// cosine schedule, a gradient norm of 0 when no gradient flows.
func TestSettersReportZero(t *testing.T) {
	m := training.NewMetrics()
	step := m.StartStep()
	step.End(training.StepResult{Loss: 2, LearningRate: 3e-4, GradNorm: 1.5})
	step = m.StartStep()
	m.SetLearningRate(0)
	m.SetGradNorm(0)
	m.SetLoss(0)
	step.End(training.StepResult{Samples: 1})
	m.SetLoss(math.NaN())
	m.SetGradNorm(math.Inf(1))
	m.SetLearningRate(math.NaN()) // ignored
	want := `
# HELP training_grad_norm Gradient norm of the last step that reported a finite one.
# TYPE training_grad_norm gauge
training_grad_norm 0
# HELP training_learning_rate Learning rate of the last step that reported one.
# TYPE training_learning_rate gauge
training_learning_rate 0
# HELP training_loss Training loss of the last step that reported a finite loss.
# TYPE training_loss gauge
training_loss 0
# HELP training_nonfinite_grad_norm_total Steps that reported a NaN or infinite gradient norm.
# TYPE training_nonfinite_grad_norm_total counter
training_nonfinite_grad_norm_total 1
# HELP training_nonfinite_loss_total Steps that reported a NaN or infinite loss.
# TYPE training_nonfinite_loss_total counter
training_nonfinite_loss_total 1
# HELP training_steps_total Training steps completed.
# TYPE training_steps_total counter
training_steps_total 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "training_grad_norm", "training_learning_rate", "training_loss",
		"training_nonfinite_grad_norm_total", "training_nonfinite_loss_total", "training_steps_total"); err != nil {
		t.Error(err)
	}
	testkit.Lint(t, m)
	var nilM *training.Metrics
	nilM.SetLoss(1)
	nilM.SetLearningRate(1)
	nilM.SetGradNorm(1)
}
