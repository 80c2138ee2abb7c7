package training_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/modeltel/modeltel/training"
)

// Values no trainer can produce once reached the metrics: a finite but huge
// token count made the MFU gauge +Inf (tokens x FLOPs per token overflows)
// and two lines of 1.7e308 tokens (or samples, checkpoint bytes, step
// numbers) pushed the counters to +Inf, which breaks every rate() over them.
// Now each is a value error and the metrics stay finite.
func TestIngestRejectsAbsurdValues(t *testing.T) {
	cases := []struct {
		name, input string
		errs        int
	}{
		{"mfu overflow", `{"step": 1, "tokens": 1e300, "step_time": 1}` + "\n", 1},
		{"tokens", strings.Repeat(`{"step": 1, "tokens": 1.7e308, "step_time": 1}`+"\n", 2), 2},
		{"samples", strings.Repeat(`{"step": 1, "samples": 1.7e308}`+"\n", 2), 2},
		{"step jump", `{"step": 0}` + "\n" + `{"step": 1.7e308}` + "\n" + `{"step": 0}` + "\n" + `{"step": 1.7e308}` + "\n", 2},
		{"checkpoint bytes", strings.Repeat(`{"event": "checkpoint", "duration": 1, "bytes": 1.7e308}`+"\n", 2), 2},
		{"epoch", `{"epoch": 1e300}` + "\n", 1},
		{"step_time", `{"step": 1, "step_time": 1e300, "tokens": 10}` + "\n", 1},
		{"data_wait", `{"data_wait": 1e300}` + "\n", 1},
		{"duration", `{"event": "checkpoint", "duration": 1e300}` + "\n", 1},
		{"just inside", `{"step": 9007199254740992, "tokens": 9007199254740992, "samples": 9007199254740992, "step_time": 10000000, "epoch": 9007199254740992}` + "\n", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := training.NewMetrics(training.WithFLOPs(6e9, 1e15))
			var errs []*training.LineError
			err := training.Ingest(context.Background(), strings.NewReader(c.input), m,
				training.WithErrorHandler(func(e *training.LineError) { errs = append(errs, e) }))
			if err != nil {
				t.Fatal(err)
			}
			if got := valueErrors(t, m); int(got) != c.errs || len(errs) != c.errs {
				t.Errorf("value errors = %v (%d reported), want %d", got, len(errs), c.errs)
			}
			for _, e := range errs {
				if e.Reason != training.ReasonValue || e.Field == "" {
					t.Errorf("error %+v, want reason value and a field", e)
				}
			}
			assertFinite(t, m)
		})
	}
}

// The MFU gauge stays finite whatever the API is given.
func TestMFUFinite(t *testing.T) {
	m := training.NewMetrics(training.WithFLOPs(1e300, 1e-300))
	m.ObserveStep(1, training.StepResult{Tokens: math.MaxInt})
	assertFinite(t, m)
}

func assertFinite(t *testing.T, m *training.Metrics) {
	t.Helper()
	for _, mf := range gather(t, m) {
		for _, mt := range mf.GetMetric() {
			for _, v := range []float64{mt.GetGauge().GetValue(), mt.GetCounter().GetValue(), mt.GetHistogram().GetSampleSum()} {
				if math.IsInf(v, 0) || math.IsNaN(v) {
					t.Errorf("%s = %v, want finite", mf.GetName(), v)
				}
			}
		}
	}
}

func gather(t *testing.T, m *training.Metrics) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func valueErrors(t *testing.T, m *training.Metrics) float64 {
	t.Helper()
	for _, mf := range gather(t, m) {
		if mf.GetName() != "training_ingest_errors_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == training.ReasonValue {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("no training_ingest_errors_total{reason=\"value\"}")
	return 0
}
