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
