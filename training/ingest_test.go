package training_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/internal/testkit"
	"github.com/modeltel/modeltel/training"
)

// ingest runs Ingest over input with a clock that ticks one second per
// reading, and returns what the callbacks saw.
type ingestResult struct {
	m      *training.Metrics
	text   []string
	events []training.Event
	errs   []*training.LineError
	err    error
}

func runIngest(t *testing.T, input string, opts ...training.IngestOption) ingestResult {
	t.Helper()
	clk := newClock(time.Second)
	res := ingestResult{m: training.NewMetrics(training.WithClock(clk.now), training.WithStepBuckets([]float64{0.5, 1, 2}))}
	opts = append([]training.IngestOption{
		training.WithTextLine(func(l string) { res.text = append(res.text, l) }),
		training.WithEvent(func(e training.Event) { res.events = append(res.events, e) }),
		training.WithErrorHandler(func(e *training.LineError) { res.errs = append(res.errs, e) }),
	}, opts...)
	res.err = training.Ingest(context.Background(), strings.NewReader(input), res.m, opts...)
	return res
}

func TestIngestGood(t *testing.T) {
	// Python's json.dumps output, including NaN; the clock ticks 1 s per line read.
	input := `{"step": 1, "loss": 2.5, "lr": 0.0003, "grad_norm": 1.5, "samples": 8, "tokens": 1024, "epoch": 0, "data_wait": 0.02}
{"step": 2, "loss": 2.25, "lr": 0.0003, "grad_norm": 1.25, "samples": 8, "tokens": 1024, "step_time": 0.75}
{"event": "checkpoint", "step": 2, "duration": 1.5, "bytes": 4096}
{"step": 3, "loss": NaN, "grad_norm": Infinity, "samples": 8, "tokens": 1024}
{"step": 5, "loss": 2.0, "samples": 16, "tokens": 2048, "epoch": 1}
{"epoch": 2}
{"data_wait": 0.5}
`
	res := runIngest(t, input)
	if res.err != nil {
		t.Fatalf("Ingest: %v", res.err)
	}
	if len(res.errs) != 0 || len(res.text) != 0 {
		t.Errorf("errors %v, text %q; want none", res.errs, res.text)
	}
	// Step 1: no step time (first line). Step 2: 0.75 s given. Checkpoint at
	// t0+2s. Step 3 at t0+3s: 1 s since the checkpoint. Step 5 at t0+4s:
	// 1 s over 2 steps = 0.5 s, steps_total +2.
	want := withTypes(`
training_loss 2
training_learning_rate 0.0003
training_grad_norm 1.25
training_epoch 2
training_steps_total 5
training_samples_total 40
training_tokens_total 5120
training_nonfinite_loss_total 1
training_nonfinite_grad_norm_total 1
training_checkpoint_size_bytes 4096
`) + `
# HELP training_step_duration_seconds Duration of a training step.
# TYPE training_step_duration_seconds histogram
training_step_duration_seconds_bucket{le="0.5"} 1
training_step_duration_seconds_bucket{le="1"} 3
training_step_duration_seconds_bucket{le="2"} 3
training_step_duration_seconds_bucket{le="+Inf"} 3
training_step_duration_seconds_sum 2.25
training_step_duration_seconds_count 3
# HELP training_ingest_errors_total Trainer output lines (Ingest) that could not be used, by reason.
# TYPE training_ingest_errors_total counter
training_ingest_errors_total{reason="overlong"} 0
training_ingest_errors_total{reason="syntax"} 0
training_ingest_errors_total{reason="value"} 0
`
	names := []string{"training_loss", "training_learning_rate", "training_grad_norm", "training_epoch", "training_steps_total",
		"training_samples_total", "training_tokens_total", "training_nonfinite_loss_total", "training_nonfinite_grad_norm_total",
		"training_checkpoint_size_bytes", "training_step_duration_seconds", "training_ingest_errors_total"}
	if err := testutil.CollectAndCompare(res.m, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	wantEv := training.Event{Name: "checkpoint", Line: 3, Step: 2, Duration: 1500 * time.Millisecond, Bytes: 4096,
		Raw: `{"event": "checkpoint", "step": 2, "duration": 1.5, "bytes": 4096}`}
	if len(res.events) != 1 || res.events[0] != wantEv {
		t.Errorf("events = %+v, want [%+v]", res.events, wantEv)
	}
	testkit.Lint(t, res.m)
}

func TestIngestMalformed(t *testing.T) {
	tests := []struct {
		name       string
		input      string
		wantErrs   []string // "line reason field"
		wantText   []string
		wantSteps  float64
		wantReason map[string]float64
	}{
		{
			name:      "bad JSON is a syntax error and still text",
			input:     "{\"step\": 1, \"loss\": \n{'step': 2}\n{\"step\": 3}\n",
			wantErrs:  []string{"1 syntax ", "2 syntax "},
			wantText:  []string{`{"step": 1, "loss": `, `{'step': 2}`},
			wantSteps: 1,
		},
		{
			name:      "bad values skip the field, keep the step",
			input:     `{"step": 1, "loss": "abc", "tokens": -5, "samples": true, "lr": [1], "step_time": NaN, "grad_norm": {"a": 1}}` + "\n",
			wantErrs:  []string{"1 value loss", "1 value lr", "1 value grad_norm", "1 value samples", "1 value tokens", "1 value step_time"},
			wantSteps: 1,
		},
		{
			// Issue 10: a "step" that is not a step number is a value
			// error and no step (it was counted as one).
			name:      "bad step number is a value error and no step",
			input:     `{"step":"three"}` + "\n" + `{"step": "x", "loss": 1}` + "\n" + `{"step": -1}` + "\n" + `{"step": 4}` + "\n",
			wantErrs:  []string{"1 value step", "2 value step", "3 value step"},
			wantSteps: 1,
		},
		{
			name:     "checkpoint without duration",
			input:    `{"event": "checkpoint", "bytes": 10}` + "\n" + `{"event": "checkpoint", "duration": "slow"}` + "\n" + `{"event": 5}` + "\n",
			wantErrs: []string{"1 value duration", "2 value duration", "3 value event"},
		},
		{
			name:     "epoch and data_wait errors",
			input:    `{"epoch": -1}` + "\n" + `{"data_wait": "x"}` + "\n",
			wantErrs: []string{"1 value epoch", "2 value data_wait"},
		},
		{
			name:      "trailing garbage after the object",
			input:     `{"step": 1}{"step": 2}` + "\n" + `{"step": 3} x` + "\n",
			wantErrs:  []string{"1 syntax ", "2 syntax "},
			wantText:  []string{`{"step": 1}{"step": 2}`, `{"step": 3} x`},
			wantSteps: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runIngest(t, tt.input)
			if res.err != nil {
				t.Fatalf("Ingest: %v", res.err)
			}
			var got []string
			for _, e := range res.errs {
				got = append(got, fmt.Sprintf("%d %s %s", e.Line, e.Reason, e.Field))
				if !strings.Contains(e.Error(), fmt.Sprintf("line %d", e.Line)) {
					t.Errorf("error %q does not name its line", e)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.wantErrs, "|") {
				t.Errorf("errors = %q, want %q", got, tt.wantErrs)
			}
			if strings.Join(res.text, "|") != strings.Join(tt.wantText, "|") {
				t.Errorf("text = %q, want %q", res.text, tt.wantText)
			}
			if got := testutil.ToFloat64(collectorOf(res.m, "training_steps_total")); got != tt.wantSteps {
				t.Errorf("steps = %v, want %v", got, tt.wantSteps)
			}
			var counted float64
			for _, r := range []string{training.ReasonSyntax, training.ReasonValue, training.ReasonOverlong} {
				counted += testutil.ToFloat64(reasonOf(res.m, r))
			}
			if counted != float64(len(tt.wantErrs)) {
				t.Errorf("training_ingest_errors_total sums to %v, want %d", counted, len(tt.wantErrs))
			}
		})
	}
}

func reasonOf(m *training.Metrics, reason string) filteredReason {
	return filteredReason{filtered{m, "training_ingest_errors_total"}, reason}
}

type filteredReason struct {
	filtered
	reason string
}

func (f filteredReason) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }

func (f filteredReason) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.filtered.Collect(all); close(all) }()
	for x := range all {
		if strings.Contains(x.Desc().String(), `"`+f.reason+`"`) {
			ch <- x
		}
	}
}

func TestIngestInterleaved(t *testing.T) {
	input := "Loading model...\n" +
		`{"level": "info", "msg": "dataset ready"}` + "\n" +
		`{"step": 1, "loss": 3.0}` + "\n" +
		"\n" +
		"  warning: something\r\n" +
		`[1, 2, 3]` + "\n" +
		`{"step": 2, "loss": 2.9}` + "\r\n" +
		`{"event": "eval", "step": 2}` + "\n" +
		"done" // no final newline
	res := runIngest(t, input)
	if res.err != nil {
		t.Fatalf("Ingest: %v", res.err)
	}
	wantText := []string{"Loading model...", `{"level": "info", "msg": "dataset ready"}`, "  warning: something", "[1, 2, 3]", "done"}
	if strings.Join(res.text, "|") != strings.Join(wantText, "|") {
		t.Errorf("text = %q, want %q", res.text, wantText)
	}
	if len(res.errs) != 0 {
		t.Errorf("errors = %v", res.errs)
	}
	if len(res.events) != 1 || res.events[0].Name != "eval" || res.events[0].Line != 8 || res.events[0].Step != 2 {
		t.Errorf("events = %+v, want one eval event on line 8", res.events)
	}
	if got := testutil.ToFloat64(collectorOf(res.m, "training_steps_total")); got != 2 {
		t.Errorf("steps = %v, want 2", got)
	}
	if got := testutil.ToFloat64(collectorOf(res.m, "training_loss")); got != 2.9 {
		t.Errorf("loss = %v, want 2.9", got)
	}
}

func TestIngestOverlong(t *testing.T) {
	long := `{"step": 1, "note": "` + strings.Repeat("x", 200) + `"}`
	input := long + "\n" + `{"step": 2, "loss": 1}` + "\n" + strings.Repeat("y", 300) // last line overlong, no newline
	res := runIngest(t, input, training.WithMaxLineBytes(100))
	if res.err != nil {
		t.Fatalf("Ingest: %v", res.err)
	}
	var got []string
	for _, e := range res.errs {
		got = append(got, fmt.Sprintf("%d %s", e.Line, e.Reason))
	}
	if want := "1 overlong|3 overlong"; strings.Join(got, "|") != want {
		t.Errorf("errors = %q, want %q", got, want)
	}
	if got := testutil.ToFloat64(collectorOf(res.m, "training_steps_total")); got != 1 {
		t.Errorf("steps = %v, want 1 (the overlong step is skipped)", got)
	}
	if got := testutil.ToFloat64(reasonOf(res.m, training.ReasonOverlong)); got != 2 {
		t.Errorf("overlong errors = %v, want 2", got)
	}
	if len(res.text) != 0 {
		t.Errorf("text = %q, want none", res.text)
	}
}

// The limit counts a line's bytes without its newline, whether or not the
// line is longer than the reader's own buffer, and a large limit costs
// nothing up front.
func TestIngestLineLimit(t *testing.T) {
	line := func(n int) string { // a text line of n bytes
		return strings.Repeat("z", n)
	}
	tests := []struct {
		name     string
		limit    int
		input    string
		text     []int // lengths of the text lines passed on
		overlong []int // line numbers counted overlong
	}{
		{"under", 100, line(99) + "\n", []int{99}, nil},
		{"at", 100, line(100) + "\n", []int{100}, nil},
		{"at, no newline", 100, line(100), []int{100}, nil},
		{"over", 100, line(101) + "\n" + line(3) + "\n", []int{3}, []int{1}},
		{"over, no newline", 100, line(3) + "\n" + line(101), []int{3}, []int{2}},
		{"longer than the read buffer", 1 << 20, line(200<<10) + "\n" + line(5) + "\n", []int{200 << 10, 5}, nil},
		{"at, longer than the read buffer", 1 << 20, line(1<<20) + "\n", []int{1 << 20}, nil},
		{"over, longer than the read buffer", 1 << 20, line(1<<20+1) + "\n" + line(5), []int{5}, []int{1}},
		{"huge limit", 1 << 40, line(10) + "\n" + line(70<<10) + "\n", []int{10, 70 << 10}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runIngest(t, tt.input, training.WithMaxLineBytes(tt.limit))
			if res.err != nil {
				t.Fatalf("Ingest: %v", res.err)
			}
			var text []int
			for _, l := range res.text {
				if strings.Trim(l, "z") != "" {
					t.Fatalf("text line changed: %.40q", l)
				}
				text = append(text, len(l))
			}
			var overlong []int
			for _, e := range res.errs {
				if e.Reason != training.ReasonOverlong {
					t.Errorf("line %d: %s, want only overlong errors", e.Line, e.Reason)
				}
				overlong = append(overlong, e.Line)
			}
			if !slices.Equal(text, tt.text) || !slices.Equal(overlong, tt.overlong) {
				t.Errorf("text lines %v, overlong %v; want %v, %v", text, overlong, tt.text, tt.overlong)
			}
		})
	}
}

func TestIngestNonFiniteSpellings(t *testing.T) {
	for _, tok := range []string{"NaN", "Infinity", "-Infinity", `"NaN"`, `"inf"`, `"-Infinity"`, "1e999"} {
		t.Run(tok, func(t *testing.T) {
			res := runIngest(t, `{"step": 1, "loss": 1.5}`+"\n"+`{"step": 2, "loss": `+tok+`}`+"\n")
			if res.err != nil || len(res.errs) != 0 {
				t.Fatalf("Ingest: %v, line errors %v", res.err, res.errs)
			}
			if got := testutil.ToFloat64(collectorOf(res.m, "training_nonfinite_loss_total")); got != 1 {
				t.Errorf("nonfinite = %v, want 1", got)
			}
			if got := testutil.ToFloat64(collectorOf(res.m, "training_loss")); got != 1.5 || math.IsNaN(got) {
				t.Errorf("loss = %v, want the last finite 1.5", got)
			}
		})
	}
	t.Run("inside strings untouched", func(t *testing.T) {
		res := runIngest(t, `{"msg": "loss is NaN \" Infinity"}`+"\n")
		if len(res.text) != 1 || res.text[0] != `{"msg": "loss is NaN \" Infinity"}` || len(res.errs) != 0 {
			t.Errorf("text %q errors %v", res.text, res.errs)
		}
	})
}

func TestIngestExplicitZero(t *testing.T) {
	res := runIngest(t, `{"step": 1, "loss": 2, "lr": 0.1}`+"\n"+`{"step": 2, "loss": 0, "lr": 0}`+"\n")
	if got := testutil.ToFloat64(collectorOf(res.m, "training_loss")); got != 0 {
		t.Errorf("loss = %v, want 0 (present in the line)", got)
	}
	if got := testutil.ToFloat64(collectorOf(res.m, "training_learning_rate")); got != 0 {
		t.Errorf("lr = %v, want 0 (present in the line)", got)
	}
}

func TestIngestCancel(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	m := training.NewMetrics()
	seen := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- training.Ingest(ctx, pr, m, training.WithEvent(func(training.Event) { close(seen) }))
	}()
	if _, err := io.WriteString(pw, `{"event": "started"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	<-seen
	cancel() // the reader is now blocked in Read
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Ingest = %v, want context.Canceled", err)
	}
}

func TestIngestCanceledBefore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := training.Ingest(ctx, strings.NewReader(`{"step": 1}`), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Ingest = %v, want context.Canceled", err)
	}
}

type failingReader struct{ n int }

var errBoom = errors.New("boom")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		r.n++
		return copy(p, `{"step": 1}`+"\n"), nil
	}
	return 0, errBoom
}

func TestIngestReadError(t *testing.T) {
	m := training.NewMetrics()
	err := training.Ingest(context.Background(), &failingReader{}, m)
	if !errors.Is(err, errBoom) || !strings.HasPrefix(err.Error(), "training: ingest: read:") {
		t.Errorf("Ingest = %v, want the wrapped read error", err)
	}
	if got := testutil.ToFloat64(collectorOf(m, "training_steps_total")); got != 1 {
		t.Errorf("steps = %v, want 1 (the line before the error)", got)
	}
	if err := training.Ingest(context.Background(), nil, m); err == nil {
		t.Error("Ingest(nil reader) = nil, want an error")
	}
}

func TestIngestNilMetrics(t *testing.T) {
	var text []string
	err := training.Ingest(context.Background(), strings.NewReader("hello\n{\"step\": 1, \"loss\": \"x\"}\n{bad\n"), nil,
		training.WithTextLine(func(l string) { text = append(text, l) }))
	if err != nil || len(text) != 2 {
		t.Errorf("Ingest = %v, text %q; want nil and 2 lines", err, text)
	}
}

// A checkpoint event with a byte count at or beyond 2^63 once converted to a
// negative int64, and the negative value reached Counter.Add, which panics:
// a trainer's output line could crash the launcher. Byte counts above
// training.MaxCount are now value errors: the checkpoint is recorded without
// its size.
func TestIngestHugeCheckpointBytes(t *testing.T) {
	for _, n := range []string{"9223372036854775807", "1e19", "1e300"} {
		t.Run(n, func(t *testing.T) {
			res := runIngest(t, `{"event": "checkpoint", "step": 1, "duration": 1, "bytes": `+n+`}`+"\n")
			if res.err != nil {
				t.Fatalf("Ingest: %v", res.err)
			}
			if len(res.events) != 1 || res.events[0].Bytes != 0 {
				t.Fatalf("events = %+v, want one with Bytes = 0", res.events)
			}
			if len(res.errs) != 1 || res.errs[0].Field != "bytes" || res.errs[0].Reason != training.ReasonValue {
				t.Fatalf("errors = %v, want one value error for bytes", res.errs)
			}
			if got := testutil.ToFloat64(collectorOf(res.m, "training_checkpoint_size_bytes")); got != 0 {
				t.Errorf("checkpoint size = %v, want 0", got)
			}
		})
	}
}

// Step numbers that do not go forward: a line that repeats the previous step
// (a second report of the same step, say an eval line) is not another step,
// and a step number that goes back (a trainer restarted under the same output,
// torchrun's elastic restarts, resuming from a checkpoint) is a step, but the
// time since the previous line includes the restart and is no step time.
func TestIngestStepNumbersNotIncreasing(t *testing.T) {
	input := `{"step": 10, "loss": 2.0}
{"step": 11, "loss": 1.9}
{"step": 11, "loss": 1.8}
{"step": 6, "loss": 2.2}
{"step": 7, "loss": 2.1}
{"step": 8, "loss": 2.0, "step_time": 0.75}
`
	res := runIngest(t, input)
	if res.err != nil || len(res.errs) != 0 {
		t.Fatalf("Ingest: %v, line errors %v", res.err, res.errs)
	}
	// Steps: 10, 11, (11 again: not counted), 6 (after a restart), 7, 8.
	// Durations (clock ticks 1 s a line): 11 -> 1 s; 7 -> 1 s; 8 -> 0.75 s.
	want := `
# HELP training_step_duration_seconds Duration of a training step.
# TYPE training_step_duration_seconds histogram
training_step_duration_seconds_bucket{le="0.5"} 0
training_step_duration_seconds_bucket{le="1"} 3
training_step_duration_seconds_bucket{le="2"} 3
training_step_duration_seconds_bucket{le="+Inf"} 3
training_step_duration_seconds_sum 2.75
training_step_duration_seconds_count 3
# HELP training_steps_total Training steps completed.
# TYPE training_steps_total counter
training_steps_total 5
# HELP training_loss Training loss of the last step that reported a finite loss.
# TYPE training_loss gauge
training_loss 2
`
	if err := testutil.CollectAndCompare(res.m, strings.NewReader(want), "training_step_duration_seconds", "training_steps_total", "training_loss"); err != nil {
		t.Error(err)
	}
}

// TestIngestGoodput: the goodput of trainer lines, on a clock that ticks one
// second per line. A line's step interval ends when it is read and lasts its
// step_time (or, without it, the time since the previous line); its data_wait
// comes just before (or at the start of a derived step time). Resume events
// and step numbers going back mark the steps run again.
func TestIngestGoodput(t *testing.T) {
	input := `{"step": 1, "step_time": 0.5, "data_wait": 0.25}
{"step": 2, "data_wait": 0.25}
{"event": "checkpoint", "step": 2, "duration": 0.5}
{"step": 3, "step_time": 1}
{"event": "resume", "step": 1, "duration": 0.25}
{"step": 2, "step_time": 0.5}
{"step": 3, "step_time": 0.5}
{"step": 4, "step_time": 1}
{"step": 2, "step_time": 1}
{"data_wait": 0.5}
{"event": "resume"}
{"event": "resume", "step": -3}
`
	// t0 is NewMetrics; line n is read at t0+n s.
	//   1: startup [0, .25], data wait [.25, .5], step 1 [.5, 1]
	//   2: data wait [1, 1.25], step 2 [1.25, 2] (derived: 1 s since line 1)
	//   3: other [2, 2.5], checkpoint [2.5, 3]
	//   4: step 3 [3, 4]
	//   5: other [4, 4.75], restore [4.75, 5]: resumed after step 1
	//   6, 7: other .5 each, steps 2 and 3 again: recompute [5.5, 6], [6.5, 7]
	//   8: step 4 [7, 8]
	//   9: step 2 again (a restart without a resume event): recompute [8, 9]
	//  10: other [9, 9.5], data wait [9.5, 10]
	//  11, 12: value errors; the scrape at t0+13 s leaves 3 s pending.
	res := runIngest(t, input)
	if res.err != nil {
		t.Fatal(res.err)
	}
	var errs []string
	for _, e := range res.errs {
		errs = append(errs, fmt.Sprintf("%d %s %s", e.Line, e.Reason, e.Field))
	}
	if want := []string{"11 value step", "12 value step"}; !slices.Equal(errs, want) {
		t.Errorf("errors = %q, want %q", errs, want)
	}
	const want = `
# HELP training_badput_seconds_total Wall time of the run that was not productive step time, by reason.
# TYPE training_badput_seconds_total counter
training_badput_seconds_total{reason="checkpoint"} 0.75
training_badput_seconds_total{reason="data_wait"} 1
training_badput_seconds_total{reason="other"} 2.75
training_badput_seconds_total{reason="recompute"} 2
training_badput_seconds_total{reason="restart"} 0
training_badput_seconds_total{reason="startup"} 0.25
# HELP training_goodput_ratio Productive step time over the wall time since the run started.
# TYPE training_goodput_ratio gauge
training_goodput_ratio 0.25
# HELP training_goodput_seconds_total Productive step time: steps that advanced the run, each step number counted once.
# TYPE training_goodput_seconds_total counter
training_goodput_seconds_total 3.25
# HELP training_recomputed_steps_total Steps run again after resuming from a checkpoint older than the last step completed.
# TYPE training_recomputed_steps_total counter
training_recomputed_steps_total 3
# HELP training_steps_total Training steps completed.
# TYPE training_steps_total counter
training_steps_total 7
# HELP training_data_wait_seconds Time spent waiting for the data loader.
# TYPE training_data_wait_seconds histogram
training_data_wait_seconds_bucket{le="0.001"} 0
training_data_wait_seconds_bucket{le="0.0025"} 0
training_data_wait_seconds_bucket{le="0.005"} 0
training_data_wait_seconds_bucket{le="0.01"} 0
training_data_wait_seconds_bucket{le="0.025"} 0
training_data_wait_seconds_bucket{le="0.05"} 0
training_data_wait_seconds_bucket{le="0.1"} 0
training_data_wait_seconds_bucket{le="0.25"} 2
training_data_wait_seconds_bucket{le="0.5"} 3
training_data_wait_seconds_bucket{le="1"} 3
training_data_wait_seconds_bucket{le="2.5"} 3
training_data_wait_seconds_bucket{le="5"} 3
training_data_wait_seconds_bucket{le="10"} 3
training_data_wait_seconds_bucket{le="30"} 3
training_data_wait_seconds_bucket{le="60"} 3
training_data_wait_seconds_bucket{le="+Inf"} 3
training_data_wait_seconds_sum 1
training_data_wait_seconds_count 3
`
	if err := testutil.CollectAndCompare(res.m, strings.NewReader(want), "training_badput_seconds_total", "training_goodput_ratio",
		"training_goodput_seconds_total", "training_recomputed_steps_total", "training_steps_total", "training_data_wait_seconds"); err != nil {
		t.Error(err)
	}
	var names []string
	for _, e := range res.events {
		names = append(names, fmt.Sprintf("%s %d %v", e.Name, e.Step, e.Duration))
	}
	if want := []string{"checkpoint 2 500ms", "resume 1 250ms", "resume 0 0s", "resume 0 0s"}; !slices.Equal(names, want) {
		t.Errorf("events = %q, want %q", names, want)
	}
}

// TestIngestResumeCountsFromCheckpoint: after a resume event, a trainer that
// logs every few steps has its first line counted from the checkpoint's step.
func TestIngestResumeCountsFromCheckpoint(t *testing.T) {
	res := runIngest(t, `{"step": 10, "step_time": 1}
{"event": "resume", "step": 4}
{"step": 12, "step_time": 1}
{"step": 16, "step_time": 1}
`)
	if res.err != nil {
		t.Fatal(res.err)
	}
	// Steps 5-12 (8 steps in one line: 6 again) and 13-16.
	want := withTypes(`
training_steps_total 13
training_recomputed_steps_total 6
`)
	if err := testutil.CollectAndCompare(res.m, strings.NewReader(want), "training_steps_total", "training_recomputed_steps_total"); err != nil {
		t.Error(err)
	}
}
