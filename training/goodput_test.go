package training_test

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/internal/testkit"
	"github.com/modeltel/modeltel/training"
)

const ms = time.Millisecond

// runStep runs one step of d on the fake clock through StartStep and End.
func runStep(m *training.Metrics, clk *clock, d time.Duration) {
	s := m.StartStep()
	clk.advance(d)
	s.End(training.StepResult{Samples: 1})
}

// checkSum fails t unless the parts of g add up to its wall time exactly.
func checkSum(t *testing.T, g training.Goodput) {
	t.Helper()
	if sum := g.Productive + g.Badput() + g.Pending; sum != g.Wall {
		t.Errorf("productive %v + badput %v + pending %v = %v, want the wall time %v", g.Productive, g.Badput(), g.Pending, sum, g.Wall)
	}
}

// TestGoodputTimeline drives scripted runs on a fake clock: known durations
// give exact goodput and badput.
func TestGoodputTimeline(t *testing.T) {
	tests := []struct {
		name string
		run  func(m *training.Metrics, clk *clock)
		want training.Goodput
	}{
		{
			name: "startup, data waits, steps, a gap, a checkpoint",
			run: func(m *training.Metrics, clk *clock) {
				clk.advance(2 * time.Second) // model load
				for range 3 {
					clk.advance(100 * ms)
					m.ObserveDataWait(100 * ms)
					runStep(m, clk, time.Second)
					clk.advance(50 * ms) // logging: nothing reports it
				}
				clk.advance(500 * ms)
				m.ObserveCheckpoint(500*ms, 1<<20)
				m.EndRun()
			},
			// The first data wait is in the startup window but is a data
			// wait; the three 50 ms gaps are other.
			want: training.Goodput{Wall: 5950 * ms, Productive: 3 * time.Second, Startup: 2 * time.Second,
				DataWait: 300 * ms, Checkpoint: 500 * ms, Other: 150 * ms},
		},
		{
			name: "crash, then resume from an older checkpoint",
			run: func(m *training.Metrics, clk *clock) {
				for i := 1; i <= 6; i++ {
					runStep(m, clk, time.Second)
					if i == 4 {
						clk.advance(500 * ms)
						m.ObserveCheckpoint(500*ms, 0)
					}
				}
				clk.advance(300 * ms) // step 7, cut short by the crash
				m.ObserveCrash()
				clk.advance(4 * time.Second) // backoff, process start
				clk.advance(time.Second)
				m.ObserveResume(4, time.Second) // steps 5 and 6 again
				for range 4 {
					runStep(m, clk, time.Second) // steps 5..8
				}
				m.EndRun()
			},
			want: training.Goodput{Wall: 15800 * ms, Productive: 8 * time.Second, Checkpoint: 1500 * ms,
				Other: 300 * ms, Restart: 4 * time.Second, Recompute: 2 * time.Second, RecomputedSteps: 2},
		},
		{
			name: "restart from scratch",
			run: func(m *training.Metrics, clk *clock) {
				for range 3 {
					runStep(m, clk, time.Second)
				}
				m.ObserveCrash()
				clk.advance(2 * time.Second)
				m.ObserveResume(0, 0)
				for range 4 {
					runStep(m, clk, time.Second) // steps 1..3 again, then 4
				}
				m.EndRun()
			},
			want: training.Goodput{Wall: 9 * time.Second, Productive: 4 * time.Second, Restart: 2 * time.Second,
				Recompute: 3 * time.Second, RecomputedSteps: 3},
		},
		{
			name: "crash loop: restart badput as it happens, without a step",
			run: func(m *training.Metrics, clk *clock) {
				clk.advance(time.Second)
				m.ObserveCrash()
				clk.advance(2 * time.Second)
				m.ObserveCrash()
				clk.advance(3 * time.Second)
			},
			want: training.Goodput{Wall: 6 * time.Second, Startup: time.Second, Restart: 5 * time.Second},
		},
		{
			name: "a step in progress is pending",
			run: func(m *training.Metrics, clk *clock) {
				runStep(m, clk, time.Second)
				clk.advance(700 * ms)
			},
			want: training.Goodput{Wall: 1700 * ms, Productive: time.Second, Pending: 700 * ms},
		},
		{
			name: "overlapping steps (two workers on one Metrics) count once",
			run: func(m *training.Metrics, clk *clock) {
				a := m.StartStep()
				clk.advance(time.Second)
				b := m.StartStep()
				clk.advance(time.Second)
				a.End(training.StepResult{})
				clk.advance(time.Second)
				b.End(training.StepResult{})
				m.ObserveDataWait(10 * time.Second) // longer than the run: only after the cursor counts
				m.EndRun()
			},
			want: training.Goodput{Wall: 3 * time.Second, Productive: 3 * time.Second},
		},
		{
			name: "EndRun stops the clock; what comes after is not goodput",
			run: func(m *training.Metrics, clk *clock) {
				runStep(m, clk, time.Second)
				clk.advance(time.Second)
				m.EndRun()
				clk.advance(time.Hour)
				runStep(m, clk, time.Second)
				m.ObserveCrash()
				m.ObserveCheckpoint(time.Second, 0)
				m.EndRun()
			},
			want: training.Goodput{Wall: 2 * time.Second, Productive: time.Second, Other: time.Second},
		},
		{
			name: "a scrape during a restart counts it; the first step is counted from then",
			run: func(m *training.Metrics, clk *clock) {
				runStep(m, clk, time.Second)
				m.ObserveCrash()
				clk.advance(time.Second)
				s := m.StartStep()
				clk.advance(500 * ms)
				_ = m.Goodput() // a scrape while the first step after the crash runs
				clk.advance(500 * ms)
				s.End(training.StepResult{})
				m.EndRun()
			},
			want: training.Goodput{Wall: 3 * time.Second, Productive: 1500 * ms, Restart: 1500 * ms},
		},
		{
			name: "ObserveStep and a negative duration",
			run: func(m *training.Metrics, clk *clock) {
				clk.advance(2 * time.Second)
				m.ObserveStep(1500*ms, training.StepResult{})
				clk.advance(time.Second)
				m.ObserveStep(-time.Second, training.StepResult{}) // no time: the second is other
				m.ObserveResume(-1, 0)                             // ignored
				m.ObserveResume(training.MaxCount+1, time.Second)  // ignored
				m.ObserveDataWait(-time.Second)                    // ignored
				m.EndRun()
			},
			want: training.Goodput{Wall: 3 * time.Second, Productive: 1500 * ms, Startup: 500 * ms, Other: time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(0)
			m := training.NewMetrics(training.WithClock(clk.now))
			tt.run(m, clk)
			got := m.Goodput()
			if got != tt.want {
				t.Errorf("Goodput() =\n %+v\nwant\n %+v", got, tt.want)
			}
			checkSum(t, got)
			if r := got.Ratio(); r < 0 || r > 1 {
				t.Errorf("Ratio = %v, outside [0, 1]", r)
			}
		})
	}
}

// TestGoodputExposition checks the series of the crash-and-resume run above.
func TestGoodputExposition(t *testing.T) {
	clk := newClock(0)
	m := training.NewMetrics(training.WithClock(clk.now), training.WithRun("r1"))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	clk.advance(time.Second) // startup
	for range 3 {
		runStep(m, clk, time.Second)
	}
	clk.advance(time.Second)
	m.ObserveCrash()
	clk.advance(2 * time.Second)
	m.ObserveResume(1, 0)
	for range 3 {
		runStep(m, clk, time.Second) // steps 2, 3 again, then 4
	}
	m.EndRun()
	clk.advance(time.Hour) // lingering after the run: no longer counted
	const want = `
# HELP training_badput_seconds_total Wall time of the run that was not productive step time, by reason.
# TYPE training_badput_seconds_total counter
training_badput_seconds_total{reason="checkpoint",run="r1"} 0
training_badput_seconds_total{reason="data_wait",run="r1"} 0
training_badput_seconds_total{reason="other",run="r1"} 1
training_badput_seconds_total{reason="recompute",run="r1"} 2
training_badput_seconds_total{reason="restart",run="r1"} 2
training_badput_seconds_total{reason="startup",run="r1"} 1
# HELP training_goodput_ratio Productive step time over the wall time since the run started.
# TYPE training_goodput_ratio gauge
training_goodput_ratio{run="r1"} 0.4
# HELP training_goodput_seconds_total Productive step time: steps that advanced the run, each step number counted once.
# TYPE training_goodput_seconds_total counter
training_goodput_seconds_total{run="r1"} 4
# HELP training_recomputed_steps_total Steps run again after resuming from a checkpoint older than the last step completed.
# TYPE training_recomputed_steps_total counter
training_recomputed_steps_total{run="r1"} 2
# HELP training_steps_total Training steps completed.
# TYPE training_steps_total counter
training_steps_total{run="r1"} 6
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "training_badput_seconds_total", "training_goodput_ratio",
		"training_goodput_seconds_total", "training_recomputed_steps_total", "training_steps_total"); err != nil {
		t.Error(err)
	}
	testkit.Lint(t, m)
}

// TestGoodputMonotonic runs random operations, reading the books after each:
// the counters never go down (rate() would see a reset), the parts always add
// up to the wall time, and the ratio stays in [0, 1].
func TestGoodputMonotonic(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		clk := newClock(0)
		m := training.NewMetrics(training.WithClock(clk.now))
		var prev training.Goodput
		open := []training.Step{}
		for i := range 300 {
			clk.advance(time.Duration(rng.IntN(2000)) * ms)
			d := time.Duration(rng.IntN(3000)-500) * ms
			switch rng.IntN(9) {
			case 0:
				open = append(open, m.StartStep())
			case 1:
				if len(open) > 0 {
					j := rng.IntN(len(open))
					open[j].End(training.StepResult{})
					open = append(open[:j], open[j+1:]...)
				}
			case 2:
				m.ObserveStep(d, training.StepResult{})
			case 3:
				m.ObserveDataWait(d)
			case 4:
				m.ObserveCheckpoint(d, 0)
			case 5:
				m.ObserveCrash()
			case 6:
				m.ObserveResume(int64(rng.IntN(20)), d)
			case 7:
				if rng.IntN(40) == 0 {
					m.EndRun()
				}
			case 8:
				// Ingest a line: a step number, maybe going back.
				n := rng.IntN(30)
				_ = training.Ingest(t.Context(), strings.NewReader(`{"step":`+strconv.Itoa(n)+`,"step_time":0.5,"data_wait":0.25}`+"\n"), m)
			}
			g := m.Goodput()
			checkSum(t, g)
			if r := g.Ratio(); r < 0 || r > 1 {
				t.Fatalf("seed %d op %d: ratio %v", seed, i, r)
			}
			for _, p := range []struct {
				name    string
				was, is time.Duration
			}{
				{"wall", prev.Wall, g.Wall}, {"productive", prev.Productive, g.Productive},
				{"startup", prev.Startup, g.Startup}, {"data_wait", prev.DataWait, g.DataWait},
				{"checkpoint", prev.Checkpoint, g.Checkpoint}, {"restart", prev.Restart, g.Restart},
				{"recompute", prev.Recompute, g.Recompute}, {"other", prev.Other, g.Other},
			} {
				if p.is < p.was {
					t.Fatalf("seed %d op %d: %s went down from %v to %v", seed, i, p.name, p.was, p.is)
				}
			}
			if g.RecomputedSteps < prev.RecomputedSteps {
				t.Fatalf("seed %d op %d: recomputed steps went down", seed, i)
			}
			prev = g
		}
	}
}

func TestGoodputNil(t *testing.T) {
	var m *training.Metrics
	m.ObserveCrash()
	m.ObserveResume(3, time.Second)
	m.EndRun()
	if g := m.Goodput(); g != (training.Goodput{}) || g.Ratio() != 0 {
		t.Errorf("nil Metrics: Goodput = %+v", g)
	}
}
