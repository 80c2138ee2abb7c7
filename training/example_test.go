package training_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/training"
)

func ExampleMetrics_StartStep() {
	reg := prometheus.NewRegistry()
	m := training.NewMetrics(training.WithRun("example"), training.WithRank(0))
	reg.MustRegister(m)

	m.SetEpoch(0)
	for batch := 0; batch < 3; batch++ {
		step := m.StartStep()
		// forward, backward, optimizer step...
		step.End(training.StepResult{Loss: 2.0 - 0.5*float64(batch), LearningRate: 3e-4, Samples: 8, Tokens: 8 * 1024})
	}
	m.ObserveCheckpoint(2*time.Second, 1<<20)

	n, _ := testutil.GatherAndCount(reg, "training_steps_total", "training_loss")
	fmt.Println("series:", n)
	// Output: series: 2
}

func ExampleIngest() {
	m := training.NewMetrics(training.WithRun("example"))
	trainerOutput := strings.NewReader(`loading model...
{"step": 1, "loss": 2.5, "lr": 0.0003, "tokens": 4096, "step_time": 0.41}
{"step": 2, "loss": NaN, "tokens": 4096, "step_time": 0.40}
{"event": "checkpoint", "step": 2, "duration": 3.2, "bytes": 1048576}
`)
	err := training.Ingest(context.Background(), trainerOutput, m,
		training.WithTextLine(func(line string) { fmt.Println("text:", line) }),
		training.WithEvent(func(e training.Event) { fmt.Println("event:", e.Name, e.Duration) }),
	)
	fmt.Println("err:", err)
	// Output:
	// text: loading model...
	// event: checkpoint 3.2s
	// err: <nil>
}

// ExampleMetrics_Goodput splits a run's wall time: a startup, steps with data
// waits, a checkpoint, a crash, a restart that resumes from that checkpoint
// and runs two steps again. The clock is a fake one, so the durations are
// exact.
func ExampleMetrics_Goodput() {
	now := time.Unix(0, 0)
	advance := func(d time.Duration) { now = now.Add(d) }
	m := training.NewMetrics(training.WithRun("example"), training.WithClock(func() time.Time { return now }))

	advance(10 * time.Second) // load the model
	step := func() {
		advance(time.Second)
		m.ObserveDataWait(time.Second)
		s := m.StartStep()
		advance(4 * time.Second)
		s.End(training.StepResult{Samples: 8})
	}
	for i := 1; i <= 4; i++ {
		step()
		if i == 2 {
			advance(5 * time.Second)
			m.ObserveCheckpoint(5*time.Second, 1<<30)
		}
	}
	m.ObserveCrash()          // the trainer died after step 4
	advance(20 * time.Second) // the launcher restarts it
	m.ObserveResume(2, 0)     // from the checkpoint of step 2
	for range 3 {
		step() // steps 3 and 4 again, then 5
	}
	m.EndRun()

	g := m.Goodput()
	fmt.Printf("wall %v: productive %v, startup %v, data_wait %v, checkpoint %v, restart %v, recompute %v, other %v\n",
		g.Wall, g.Productive, g.Startup, g.DataWait, g.Checkpoint, g.Restart, g.Recompute, g.Other)
	fmt.Printf("goodput %.2f, %d steps recomputed\n", g.Ratio(), g.RecomputedSteps)
	// Output:
	// wall 1m10s: productive 20s, startup 10s, data_wait 7s, checkpoint 5s, restart 20s, recompute 8s, other 0s
	// goodput 0.29, 2 steps recomputed
}
