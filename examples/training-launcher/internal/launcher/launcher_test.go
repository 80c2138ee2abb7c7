package launcher_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/modeltel/modeltel/examples/training-launcher/internal/launcher"
	"github.com/modeltel/modeltel/internal/syncbuf"
	"github.com/modeltel/modeltel/training"
)

const trainer = "../../trainer.py"

func needPython(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on PATH: these end-to-end tests run the shipped trainer.py")
	}
	return py
}

type harness struct {
	l       *launcher.Launcher
	m       *training.Metrics
	reg     *prometheus.Registry
	spans   *tracetest.SpanRecorder
	logs    *syncbuf.Buffer
	stderr  *syncbuf.Buffer
	signals chan os.Signal
}

func newHarness(t *testing.T, maxRestarts int, command ...string) *harness {
	return newHarnessWith(t, func(*launcher.Config) {}, maxRestarts, command...)
}

func newHarnessWith(t *testing.T, configure func(*launcher.Config), maxRestarts int, command ...string) *harness {
	t.Helper()
	h := &harness{
		m:       training.NewMetrics(training.WithRun("test")),
		reg:     prometheus.NewPedanticRegistry(),
		spans:   tracetest.NewSpanRecorder(),
		logs:    &syncbuf.Buffer{},
		stderr:  &syncbuf.Buffer{},
		signals: make(chan os.Signal, 1),
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := launcher.Config{
		Command:        command,
		MaxRestarts:    maxRestarts,
		Backoff:        10 * time.Millisecond,
		Grace:          5 * time.Second,
		Metrics:        h.m,
		Logger:         slog.New(slog.NewJSONHandler(h.logs, nil)),
		TracerProvider: tp,
		Stderr:         h.stderr,
		Signals:        h.signals,
	}
	configure(&cfg)
	h.l = launcher.New(cfg, prometheus.Labels{"run": "test"})
	h.reg.MustRegister(h.m, h.l)
	return h
}

func (h *harness) value(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1 // absent
}

func (h *harness) spanNames() map[string]int {
	n := map[string]int{}
	for _, s := range h.spans.Ended() {
		n[s.Name()]++
	}
	return n
}

// waitFor polls cond for up to 20 s (a bound, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunToCompletion(t *testing.T) {
	py := needPython(t)
	h := newHarness(t, 3, py, trainer, "--steps", "6", "--step-time", "0.01", "--checkpoint-every", "3", "--nan-at", "2")
	code, err := h.l.Run(context.Background())
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v; want 0, nil\nlogs:\n%s", code, err, h.logs)
	}
	for name, want := range map[string]float64{
		"training_steps_total":                 6,
		"training_samples_total":               48,
		"training_tokens_total":                6 * 8 * 512,
		"training_nonfinite_loss_total":        1,
		"training_checkpoint_duration_seconds": 2,
		"training_step_duration_seconds":       6, // step_time is in every line
		"training_epoch":                       0,
		"training_launcher_restarts_total":     0,
		"training_launcher_last_exit_code":     0,
		"training_launcher_trainer_running":    0,
		"training_ingest_errors_total":         0,
	} {
		if got := h.value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP training_checkpoint_written_bytes_total Bytes written by checkpoints.
# TYPE training_checkpoint_written_bytes_total counter
training_checkpoint_written_bytes_total{run="test"} 8264
`), "training_checkpoint_written_bytes_total"); err != nil {
		t.Error(err) // trainer.py without --checkpoint-dir: 4096 + 8*step bytes, steps 3 and 6
	}
	spans := h.spanNames()
	if spans["training.run"] != 1 || spans["training.attempt"] != 1 || spans["training.checkpoint"] != 2 {
		t.Errorf("spans = %v, want one run, one attempt, two checkpoints", spans)
	}
	var run, attempt sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		switch s.Name() {
		case "training.run":
			run = s
		case "training.attempt":
			attempt = s
		}
	}
	for _, s := range h.spans.Ended() {
		if s.Name() == "training.checkpoint" && s.Parent().SpanID() != attempt.SpanContext().SpanID() {
			t.Errorf("checkpoint span's parent is not the attempt span")
		}
	}
	if attempt.Parent().SpanID() != run.SpanContext().SpanID() {
		t.Errorf("attempt span's parent is not the run span")
	}
	logs := h.logs.String()
	for _, want := range []string{`"msg":"trainer output","line":"trainer: pid`, `"msg":"checkpoint"`, `"msg":"trainer finished"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if !strings.Contains(h.stderr.String(), "trainer: warming up") {
		t.Errorf("trainer stderr not passed through: %q", h.stderr)
	}
	if problems, err := testutil.GatherAndLint(h.reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestRestartAfterFailure(t *testing.T) {
	py := needPython(t)
	h := newHarness(t, 2, py, trainer, "--steps", "5", "--step-time", "0.01", "--fail-at", "3", "--checkpoint-every", "0")
	code, err := h.l.Run(context.Background())
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v; want 0 after one restart\nlogs:\n%s", code, err, h.logs)
	}
	// Attempt 0 reports steps 1-2 and fails at 3; attempt 1 runs 1-5.
	for name, want := range map[string]float64{
		"training_launcher_restarts_total": 1,
		"training_launcher_last_exit_code": 0,
		"training_steps_total":             7,
	} {
		if got := h.value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if spans := h.spanNames(); spans["training.attempt"] != 2 {
		t.Errorf("spans = %v, want two attempts", spans)
	}
	if !strings.Contains(h.logs.String(), `"msg":"trainer failed, restarting"`) {
		t.Errorf("no restart log:\n%s", h.logs)
	}
}

func TestRestartsExhausted(t *testing.T) {
	py := needPython(t)
	h := newHarness(t, 2, py, trainer, "--steps", "5", "--step-time", "0.01", "--fail-at", "2", "--fail-times", "99")
	code, err := h.l.Run(context.Background())
	if err != nil || code != 1 {
		t.Fatalf("Run = %d, %v; want the trainer's status 1\nlogs:\n%s", code, err, h.logs)
	}
	for name, want := range map[string]float64{
		"training_launcher_restarts_total": 2,
		"training_launcher_last_exit_code": 1,
		"training_steps_total":             3,
	} {
		if got := h.value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if spans := h.spanNames(); spans["training.attempt"] != 3 {
		t.Errorf("spans = %v, want three attempts", spans)
	}
}

func TestSignalForwarded(t *testing.T) {
	py := needPython(t)
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			h := newHarness(t, 3, py, trainer, "--steps", "100000", "--step-time", "0.01", "--checkpoint-every", "0")
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				code, err := h.l.Run(context.Background())
				done <- result{code, err}
			}()
			waitFor(t, "the first steps", func() bool { return h.value(t, "training_steps_total") >= 2 })
			if got := h.l.State(); got != "running" {
				t.Errorf("State = %q, want running", got)
			}
			h.signals <- sig
			r := <-done
			if r.err != nil || r.code != 0 {
				t.Fatalf("Run = %d, %v; want 0 (the trainer checkpoints and exits 0)\nlogs:\n%s", r.code, r.err, h.logs)
			}
			if got := h.value(t, "training_checkpoint_duration_seconds"); got != 1 {
				t.Errorf("checkpoints = %v, want the one written on the signal", got)
			}
			if got := h.value(t, "training_launcher_restarts_total"); got != 0 {
				t.Errorf("restarts = %v, want 0", got)
			}
			if !strings.Contains(h.logs.String(), `checkpointed at step`) {
				t.Errorf("the trainer did not report its checkpoint:\n%s", h.logs)
			}
			if got := h.l.State(); got != "exited" {
				t.Errorf("State = %q, want exited", got)
			}
		})
	}
}

func TestContextCancelStopsTrainer(t *testing.T) {
	py := needPython(t)
	h := newHarness(t, 3, py, trainer, "--steps", "100000", "--step-time", "0.01", "--checkpoint-every", "0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _ := h.l.Run(ctx)
		done <- code
	}()
	waitFor(t, "the first step", func() bool { return h.value(t, "training_steps_total") >= 1 })
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("Run = %d, want 0", code)
	}
	if got := h.value(t, "training_checkpoint_duration_seconds"); got != 1 {
		t.Errorf("checkpoints = %v, want 1", got)
	}
}

func TestKillAfterGrace(t *testing.T) {
	py := needPython(t)
	h := newHarnessWith(t, func(c *launcher.Config) { c.Grace = 50 * time.Millisecond }, 3, py, "-c", `import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print('{"step": 1}', flush=True)
time.sleep(60)`)
	done := make(chan int, 1)
	go func() {
		code, _ := h.l.Run(context.Background())
		done <- code
	}()
	waitFor(t, "the first step", func() bool { return h.value(t, "training_steps_total") >= 1 })
	h.signals <- syscall.SIGTERM
	if code := <-done; code != 128+int(syscall.SIGKILL) {
		t.Errorf("Run = %d, want %d (killed after the grace period)", code, 128+int(syscall.SIGKILL))
	}
}

func TestStartFailure(t *testing.T) {
	h := newHarness(t, 3, "/nonexistent/trainer")
	code, err := h.l.Run(context.Background())
	if err == nil || code != 127 {
		t.Errorf("Run = %d, %v; want 127 and an error", code, err)
	}
	if got := h.value(t, "training_launcher_restarts_total"); got != 0 {
		t.Errorf("restarts = %v, want 0 (a missing trainer is not restarted)", got)
	}
	if _, err := launcher.New(launcher.Config{}, nil).Run(context.Background()); err == nil {
		t.Error("Run without a command: no error")
	}
}

// A trainer that fails after a long healthy run is not in a crash loop: the
// failure count (and the backoff) start over, so MaxRestarts limits failures
// in a row, not failures over a week-long run. The trainer fails on its first
// three attempts, each of which runs longer than HealthyAfter.
func TestHealthyRunResetsRestarts(t *testing.T) {
	py := needPython(t)
	h := newHarnessWith(t, func(c *launcher.Config) { c.HealthyAfter = time.Millisecond }, 1,
		py, trainer, "--steps", "3", "--step-time", "0.01", "--fail-at", "2", "--fail-times", "3", "--checkpoint-every", "0")
	code, err := h.l.Run(context.Background())
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v; want 0: each failure came after a healthy run\nlogs:\n%s", code, err, h.logs)
	}
	if got := h.value(t, "training_launcher_restarts_total"); got != 3 {
		t.Errorf("restarts = %v, want 3", got)
	}
}
