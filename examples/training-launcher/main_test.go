package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"

	"github.com/modeltel/modeltel/internal/syncbuf"
)

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// TestLauncherEndToEnd runs the launcher as main does, with the shipped
// trainer: metrics on /metrics while it trains, then SIGTERM is forwarded and
// the trainer checkpoints and exits 0.
func TestLauncherEndToEnd(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on PATH: this end-to-end test runs the shipped trainer.py")
	}
	var stdout, stderr syncbuf.Buffer
	sigs := make(chan os.Signal, 1)
	addr := make(chan string, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), []string{"--listen", "127.0.0.1:0", "--run", "e2e", "--job", "demo", "--rank", "0",
			"--flops-per-token", "1e6", "--peak-flops", "1e12", "--backoff", "10ms", "--",
			py, "trainer.py", "--steps", "100000", "--step-time", "0.01", "--checkpoint-every", "0"},
			&stdout, &stderr, sigs, func(a string) { addr <- a })
	}()
	base := "http://" + <-addr
	var metrics string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(metrics, `training_tokens_total{rank="0",run="e2e",training_job="demo"}`) ||
		strings.Contains(metrics, `training_steps_total{rank="0",run="e2e",training_job="demo"} 0`) {
		if time.Now().After(deadline) {
			t.Fatalf("no steps on /metrics:\n%s\nlogs:\n%s", metrics, stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
		metrics = get(t, base+"/metrics")
	}
	for _, want := range []string{
		`training_loss{rank="0",run="e2e",training_job="demo"}`,
		`training_model_flops_utilization_ratio{rank="0",run="e2e",training_job="demo"}`,
		`training_last_step_timestamp_seconds{rank="0",run="e2e",training_job="demo"}`,
		`training_launcher_trainer_running{rank="0",run="e2e",training_job="demo"} 1`,
		`training_launcher_restarts_total{rank="0",run="e2e",training_job="demo"} 0`,
		`training_goodput_ratio{rank="0",run="e2e",training_job="demo"}`,
		`training_goodput_seconds_total{rank="0",run="e2e",training_job="demo"}`,
		`training_badput_seconds_total{rank="0",reason="data_wait",run="e2e",training_job="demo"}`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := get(t, base+"/healthz"); got != "ok running\n" {
		t.Errorf("/healthz = %q", got)
	}
	sigs <- syscall.SIGTERM
	if c := <-code; c != 0 {
		t.Errorf("exit code = %d, want 0\nlogs:\n%s", c, stdout.String())
	}
	logs := stdout.String()
	for _, want := range []string{`"msg":"forwarding signal to trainer","service":"training-launcher","run":"e2e","job":"demo","signal":"terminated"`,
		`"msg":"checkpoint"`, `checkpointed at step`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"-h"}, 0},
		{[]string{"--no-such-flag"}, 2},
		{[]string{"--listen", "256.0.0.1:bad", "--", "true"}, 1},
		{[]string{"--linger", "soon"}, 2},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut syncbuf.Buffer
			if got := run(context.Background(), tt.args, &out, &errOut, nil, nil); got != tt.code {
				t.Errorf("run = %d, want %d\n%s%s", got, tt.code, out.String(), errOut.String())
			}
		})
	}
}

func TestExitStatusOfTrainer(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("sh is not on PATH")
	}
	var out, errOut syncbuf.Buffer
	got := run(context.Background(), []string{"--listen", "127.0.0.1:0", "--linger", "0", "--max-restarts", "1", "--backoff", "1ms", "--", "sh", "-c", "exit 3"},
		&out, &errOut, nil, nil)
	if got != 3 {
		t.Errorf("run = %d, want the trainer's status 3\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), `"msg":"trainer failed, not restarting"`) {
		t.Errorf("logs:\n%s", out.String())
	}
}

// TestLauncherPushesToLoki runs the launcher with --loki-url pointing at a fake
// Loki: the trainer's lines and the launcher's own records arrive in one stream
// labelled service_name="training-launcher", flushed before run returns.
func TestLauncherPushesToLoki(t *testing.T) {
	var mu sync.Mutex
	var streams []push.Stream
	loki := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		var req push.PushRequest
		if err == nil {
			err = req.Unmarshal(raw)
		}
		if r.URL.Path != "/loki/api/v1/push" || err != nil {
			t.Errorf("push %s: %v", r.URL.Path, err)
			http.Error(w, "bad push", http.StatusBadRequest)
			return
		}
		mu.Lock()
		streams = append(streams, req.Streams...)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer loki.Close()

	var stdout, stderr syncbuf.Buffer
	code := run(context.Background(), []string{"--listen", "127.0.0.1:0", "--linger", "0", "--loki-url", loki.URL, "--run", "loki", "--",
		"sh", "-c", `echo 'hello from the trainer'; echo '{"step":1,"loss":2.5}'`}, &stdout, &stderr, nil, nil)
	if code != 0 {
		t.Fatalf("exit code = %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	var lines []string
	for _, s := range streams {
		if s.Labels != `{service_name="training-launcher"}` {
			t.Errorf("stream labels = %s, want {service_name=\"training-launcher\"}", s.Labels)
		}
		for _, e := range s.Entries {
			lines = append(lines, e.Line)
		}
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{`hello from the trainer`, `"run":"loki"`, `"msg":"serving metrics"`} {
		if !strings.Contains(all, want) {
			t.Errorf("Loki did not receive %s; got:\n%s", want, all)
		}
	}
}

// TestLingerServesLastMetrics: a trainer that finishes on its own leaves the
// launcher serving its final metrics (last step, exit code, not running) for
// --linger, so that a scrape after the end still sees them; a signal ends the
// wait. The logs carry trace ids with tracing off, as the doc says.
func TestLingerServesLastMetrics(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("sh is not on PATH")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	var stdout, stderr syncbuf.Buffer
	sigs := make(chan os.Signal, 1)
	addr := make(chan string, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), []string{"--listen", "127.0.0.1:0", "--run", "linger", "--linger", "10m", "--",
			"sh", "-c", `echo '{"step":1,"loss":2.5}'; echo '{"step":2,"loss":2.25}'`},
			&stdout, &stderr, sigs, func(a string) { addr <- a })
	}()
	base := "http://" + <-addr
	// The trainer is done once the launcher says it lingers.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), `"msg":"trainer ended, serving the last metrics before exiting"`) {
		if time.Now().After(deadline) {
			t.Fatalf("launcher did not start lingering; logs:\n%s", stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`training_steps_total{run="linger"} 2`,
		`training_loss{run="linger"} 2.25`,
		`training_launcher_trainer_running{run="linger"} 0`,
		`training_launcher_last_exit_code{run="linger"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics after the trainer ended lacks %s", want)
		}
	}
	if got := get(t, base+"/healthz"); got != "ok exited\n" {
		t.Errorf("/healthz = %q, want ok exited", got)
	}
	sigs <- syscall.SIGTERM
	if c := <-code; c != 0 {
		t.Errorf("exit code = %d, want the trainer's 0", c)
	}
	logs := stdout.String()
	if !strings.Contains(logs, `"msg":"signal while lingering, exiting"`) {
		t.Errorf("logs lack the signal that ended the linger:\n%s", logs)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(line, `"msg":"trainer started"`) && !strings.Contains(line, `"trace_id":"`) {
			t.Errorf("with tracing off, a log line inside the run has no trace_id: %s", line)
		}
	}
}
