package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modeltel/modeltel/examples/modeltop/internal/fixture"
	"github.com/modeltel/modeltel/examples/modeltop/internal/ui"
)

// TestMain runs modeltop itself when the screen test starts this binary
// under tmux with MODELTOP_RUN_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("MODELTOP_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "either --prometheus"},
		{[]string{"--prometheus", "http://p:9090", "--scrape", "a:1"}, "either --prometheus"},
		{[]string{"--scrape", "ftp://x/y"}, "want http"},
		{[]string{"--scrape", "a:1", "--interval", "1ms"}, "at least 100ms"},
		{[]string{"--prometheus", "p:9090", "--window", "1ms"}, "at least 1s"},
		{[]string{"--scrape", "a:1", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := run(tt.args, new(strings.Builder))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}

// fakeNode serves the fixture at its n-th scrape, n counting up.
func fakeNode(t *testing.T) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprint(w, fixture.Node(int(n.Add(1)), time.Now()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOnce(t *testing.T) {
	srv := fakeNode(t)
	var out strings.Builder
	if err := run([]string{"--scrape", srv.URL, "--once", "--interval", "200ms", "--width", "100", "--height", "30"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fixture.Model, ui.Dur(fixture.TTFT50), ui.Dur(fixture.TTFT99), "87%", "thermal", fixture.Run} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--once output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestScreenUnderTmux runs modeltop as a person would, in an 80x24 terminal
// (tmux), against a fake node, and reads the screen with capture-pane.
func TestScreenUnderTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not on PATH (apt-get install tmux): the screen test needs a terminal to run modeltop in")
	}
	srv := fakeNode(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	rcFile := filepath.Join(dir, "rc")
	errFile := filepath.Join(dir, "stderr")
	tm := func(args ...string) (string, error) {
		out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = tm("kill-server") })

	cmd := fmt.Sprintf("MODELTOP_RUN_MAIN=1 %q --scrape %q --interval 300ms 2>%q; echo $? >%q",
		os.Args[0], srv.URL, errFile, rcFile)
	if out, err := tm("new-session", "-d", "-s", "modeltop", "-x", "80", "-y", "24", cmd); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	screen := func() string {
		out, _ := tm("capture-pane", "-p", "-t", "modeltop")
		return out
	}
	// waitFor polls the screen until every string is on it.
	waitFor := func(what string, wants ...string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var s string
		for time.Now().Before(deadline) {
			s = screen()
			ok := true
			for _, w := range wants {
				ok = ok && strings.Contains(s, w)
			}
			if ok {
				return s
			}
			time.Sleep(200 * time.Millisecond)
		}
		stderr, _ := os.ReadFile(errFile)
		t.Fatalf("%s: the screen never showed %q; last screen:\n%s\nstderr: %s", what, wants, s, stderr)
		return ""
	}

	host := strings.TrimPrefix(srv.URL, "http://")
	s := waitFor("live view",
		"modeltop  scrape "+host, fixture.Model, fixture.Model2,
		ui.Dur(fixture.TTFT50), ui.Dur(fixture.TTFT99), ui.Dur(fixture.TPOT50), // quantiles of bucket deltas
		"H100 80GB HBM3", "87%", "45.5/80G", "312/700W", "64C", "2 (79)", "thermal", // GPU rows
		fixture.Run, ui.Dur(fixture.StepTime), "42%", "ok  1/1 backends")
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 24 {
		t.Errorf("screen has %d lines at 24 rows", len(lines))
	}
	for i, l := range lines {
		if n := len([]rune(l)); n > 80 {
			t.Errorf("line %d is %d wide: %q", i, n, l)
		}
	}
	t.Logf("screen at 80x24:\n%s", s)

	if out, err := tm("send-keys", "-t", "modeltop", "Tab", "Tab"); err != nil {
		t.Fatalf("send-keys: %v %s", err, out)
	}
	s = waitFor("gpus pane", "GPUS 2", "tab: training")
	if strings.Contains(s, "MODELS") {
		t.Errorf("gpus pane still shows the models:\n%s", s)
	}
	_, _ = tm("send-keys", "-t", "modeltop", "1")

	// The backend goes away: the screen says so, keeps the last data, and
	// modeltop goes on running.
	srv.Close()
	s = waitFor("backend gone", host+" unreachable", "connection refused", "last ok", "(stale)", fixture.Model)
	t.Logf("screen with the backend gone:\n%s", s)

	if out, err := tm("send-keys", "-t", "modeltop", "q"); err != nil {
		t.Fatalf("send-keys q: %v %s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		rc, err := os.ReadFile(rcFile)
		if err == nil && len(rc) > 0 {
			if got := strings.TrimSpace(string(rc)); got != "0" {
				stderr, _ := os.ReadFile(errFile)
				t.Fatalf("modeltop exited with status %s; stderr: %s", got, stderr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("modeltop did not exit after q; screen:\n%s", screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
