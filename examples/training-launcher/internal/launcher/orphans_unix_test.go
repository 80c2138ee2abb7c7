//go:build unix

package launcher_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modeltel/modeltel/examples/training-launcher/internal/launcher"
)

// running reports whether pid is a live process. A zombie is not: it holds
// no memory, GPU or pipe, only waits for its parent (here init, which in a
// container may never reap it) to collect its status.
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) || !dirExists("/proc/self")
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// TestTrainerLeavesChildrenBehind runs trainers that exit (crash or not)
// while a child they started in the background still runs and holds their
// stdout and stderr: the launcher stops the child (SIGTERM, SIGKILL after
// OrphanGrace when it ignores SIGTERM) before it returns or restarts, and
// returns without waiting on the pipes the child held. Grace and Drain are
// long, so that a launcher waiting on either is caught by the bound.
func TestTrainerLeavesChildrenBehind(t *testing.T) {
	// Each attempt first records the children of earlier attempts that
	// still run (none, if the restart starts clean), then starts its own.
	const checkStale = `for p in $(cat "$PIDS" 2>/dev/null); do
	if kill -0 "$p" 2>/dev/null && [ "$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)" != Z ]; then echo "$p" >> "$STALE"; fi
done
`
	tests := []struct {
		name     string
		script   string
		wantCode int
		attempts int
	}{
		{"crash", checkStale + `sleep 300 & echo $! >> "$PIDS"; echo '{"step": 1}'; exit 1`, 1, 2},
		{"normal exit", checkStale + `sleep 300 & echo $! >> "$PIDS"; echo '{"step": 1}'; exit 0`, 0, 1},
		{"child ignores SIGTERM", checkStale + `(trap '' TERM; exec sleep 300) & echo $! >> "$PIDS"; exit 3`, 3, 2},
		// The trainer exits once its child has started the grandchild.
		{"grandchild", checkStale + `n=$(cat "$PIDS" 2>/dev/null | wc -l)
sh -c 'sleep 300 & echo $! >> "$PIDS"; wait' &
while [ "$(cat "$PIDS" 2>/dev/null | wc -l)" -le "$n" ]; do sleep 0.01; done
exit 1`, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pids, stale := filepath.Join(dir, "pids"), filepath.Join(dir, "stale")
			h := newHarnessWith(t, func(c *launcher.Config) {
				c.Grace = 5 * time.Minute
				c.Drain = 5 * time.Minute
				// Also how long a SIGKILLed child has to finish exiting
				// before the restart looks for it: generous, for a loaded
				// machine. Only the child that ignores SIGTERM waits it out.
				c.OrphanGrace = 2 * time.Second
				c.Env = []string{"PIDS=" + pids, "STALE=" + stale}
			}, tt.attempts-1, "sh", "-c", tt.script)
			t.Cleanup(func() { killAll(t, pids) })

			code, err := runWithin(t, h, 60*time.Second) // Grace and Drain are 5 min
			if err != nil || code != tt.wantCode {
				t.Fatalf("Run = %d, %v; want %d\nlogs:\n%s", code, err, tt.wantCode, h.logs)
			}
			children := readPIDs(t, pids)
			if len(children) != tt.attempts {
				t.Fatalf("children started = %v, want one per attempt (%d)", children, tt.attempts)
			}
			// The launcher returned after stopping them; allow the kernel
			// a moment to finish their exit.
			deadline := time.Now().Add(10 * time.Second)
			for _, pid := range children {
				for running(pid) {
					if time.Now().After(deadline) {
						t.Fatalf("child %d of the trainer still runs after Run returned\nlogs:\n%s", pid, h.logs)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if b, _ := os.ReadFile(stale); len(b) > 0 {
				t.Errorf("a restarted trainer found the previous attempt's children still running: %s", b)
			}
			if !strings.Contains(h.logs.String(), "left processes behind") {
				t.Errorf("no log line about the stopped children:\n%s", h.logs)
			}
		})
	}
}

func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, pid)
	}
	return out
}

// killAll kills the recorded children a failed test left behind.
func killAll(t *testing.T, path string) {
	b, _ := os.ReadFile(path)
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// runWithin runs the launcher and fails the test if Run has not returned
// within d.
func runWithin(t *testing.T, h *harness, d time.Duration) (int, error) {
	t.Helper()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := h.l.Run(context.Background())
		done <- result{code, err}
	}()
	select {
	case r := <-done:
		return r.code, r.err
	case <-time.After(d):
		t.Fatalf("Run did not return within %v\nlogs:\n%s", d, h.logs)
		return 0, nil
	}
}
