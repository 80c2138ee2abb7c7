package launcher_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/modeltel/modeltel/training"
)

// badput returns training_badput_seconds_total{reason} as gathered.
func (h *harness) badput(t *testing.T, reason string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "training_badput_seconds_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no training_badput_seconds_total{reason=%q}", reason)
	return 0
}

// histogramSum returns the _sum of a histogram as gathered.
func (h *harness) histogramSum(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleSum()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

var badputReasons = []string{training.BadputStartup, training.BadputDataWait, training.BadputCheckpoint,
	training.BadputRestart, training.BadputRecompute, training.BadputOther}

// checkGoodputBooks checks what holds for every run, once Run has returned
// (it calls EndRun): the ratio is in (0, 1]; the exported goodput and badput
// seconds add up to the run's wall time (float rounding aside: the tolerance
// is a ratio of 1e-9); and that wall time is most of what the test measured
// around the run (it starts when the harness builds the Metrics and ends when
// Run returns, inside the test's own stopwatch).
func checkGoodputBooks(t *testing.T, h *harness, stopwatch time.Duration) training.Goodput {
	t.Helper()
	g := h.m.Goodput()
	t.Logf("goodput: %+v, ratio %.3f", g, g.Ratio())
	ratio := h.value(t, "training_goodput_ratio")
	if !(ratio > 0 && ratio <= 1) {
		t.Errorf("training_goodput_ratio = %v, want it in (0, 1]", ratio)
	}
	sum := h.value(t, "training_goodput_seconds_total")
	for _, r := range badputReasons {
		sum += h.badput(t, r)
	}
	wall := g.Wall.Seconds()
	if math.Abs(sum-wall) > 1e-9*wall {
		t.Errorf("goodput + badput = %v s, want the wall time %v s (within a ratio of 1e-9)", sum, wall)
	}
	if g.Pending != 0 {
		t.Errorf("pending = %v after the run ended, want 0", g.Pending)
	}
	if r := wall / stopwatch.Seconds(); r < 0.9 || r > 1 {
		t.Errorf("wall time %v s is %.3f of the %v the test measured around the run, want [0.9, 1]", wall, r, stopwatch)
	}
	if want := g.Ratio(); math.Abs(ratio-want) > 1e-12 {
		t.Errorf("training_goodput_ratio = %v, Goodput().Ratio() = %v", ratio, want)
	}
	return g
}

// TestGoodputCrashResume: the shipped trainer checkpoints every 4 steps and
// crashes at step 7; the launcher restarts it, it resumes from the checkpoint
// of step 4 and runs steps 5 and 6 again. The books: restart and recompute
// badput, two recomputed steps, every step counted.
func TestGoodputCrashResume(t *testing.T) {
	py := needPython(t)
	start := time.Now()
	h := newHarness(t, 2, py, trainer, "--steps", "10", "--step-time", "0.01", "--checkpoint-every", "4",
		"--fail-at", "7", "--checkpoint-dir", t.TempDir())
	code, err := h.l.Run(context.Background())
	stopwatch := time.Since(start)
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v; want 0 after one restart\nlogs:\n%s", code, err, h.logs)
	}
	// Attempt 0: steps 1-6 (the failure comes before step 7 is reported),
	// checkpoint at 4. Attempt 1: resume at 4, steps 5-10, checkpoint at 8.
	for name, want := range map[string]float64{
		"training_launcher_restarts_total":     1,
		"training_steps_total":                 12,
		"training_recomputed_steps_total":      2,
		"training_checkpoint_duration_seconds": 2,
	} {
		if got := h.value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	g := checkGoodputBooks(t, h, stopwatch)
	if g.RecomputedSteps != 2 {
		t.Errorf("Goodput().RecomputedSteps = %d, want 2", g.RecomputedSteps)
	}
	for _, r := range []string{training.BadputRestart, training.BadputRecompute, training.BadputStartup} {
		if got := h.badput(t, r); !(got > 0) {
			t.Errorf("badput %s = %v, want > 0", r, got)
		}
	}
	// Ten distinct steps were productive, two were run again: the recompute
	// is less than the goodput (a ratio, about 2/10, loosely bounded).
	if g.Recompute >= g.Productive {
		t.Errorf("recompute %v >= productive %v", g.Recompute, g.Productive)
	}
	logs := h.logs.String()
	for _, want := range []string{`"msg":"trainer resumed from a checkpoint","step":4`, `"msg":"run goodput"`, `"recomputed_steps":2`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

// TestGoodputSlowDataAndCheckpoints: the trainer's data loader takes ten
// times its step time, or its checkpoints are slow; that time is badput of
// the matching reason, as much as the trainer reported (the histogram's sum),
// less only what overlapped time already counted (line arrival jitter): the
// test allows a ratio of 0.8.
func TestGoodputSlowDataAndCheckpoints(t *testing.T) {
	py := needPython(t)
	tests := []struct {
		name, reason, histogram string
		args                    []string
	}{
		{"slow data", training.BadputDataWait, "training_data_wait_seconds",
			[]string{"--steps", "6", "--step-time", "0.01", "--data-wait", "0.1", "--checkpoint-every", "0"}},
		{"slow checkpoints", training.BadputCheckpoint, "training_checkpoint_duration_seconds",
			[]string{"--steps", "6", "--step-time", "0.01", "--data-wait", "0", "--checkpoint-every", "2", "--checkpoint-time", "0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			h := newHarness(t, 0, append([]string{py, trainer}, tt.args...)...)
			code, err := h.l.Run(context.Background())
			stopwatch := time.Since(start)
			if err != nil || code != 0 {
				t.Fatalf("Run = %d, %v\nlogs:\n%s", code, err, h.logs)
			}
			g := checkGoodputBooks(t, h, stopwatch)
			reported := h.histogramSum(t, tt.histogram)
			got := h.badput(t, tt.reason)
			if r := got / reported; r < 0.8 || r > 1+1e-6 {
				t.Errorf("badput %s = %v s, %.3f of the %v s the trainer reported; want [0.8, 1]", tt.reason, got, r, reported)
			}
			// Six 0.1 s waits or three 0.1 s saves against six 0.01 s
			// steps: the badput is larger than the goodput.
			if got <= g.Productive.Seconds() {
				t.Errorf("badput %s = %v s, not more than the productive %v", tt.reason, got, g.Productive)
			}
			if h.value(t, "training_recomputed_steps_total") != 0 || h.badput(t, training.BadputRestart) != 0 {
				t.Errorf("recompute or restart badput without a crash")
			}
		})
	}
}
