//go:build linux

package launcher_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modeltel/modeltel/examples/training-launcher/internal/launcher"
)

// TestLeftoversStoppedBeforeTrainerReaped checks that the trainer's pid is
// still taken (the trainer a zombie the launcher has not collected yet) when
// the launcher signals the group the trainer left behind. Its group id is
// that pid: once the trainer is reaped and its last member gone, the kernel
// may give the number to an unrelated process, whose group a signal to -pid
// would then reach.
func TestLeftoversStoppedBeforeTrainerReaped(t *testing.T) {
	dir := t.TempDir()
	pids, state, ready := filepath.Join(dir, "pids"), filepath.Join(dir, "state"), filepath.Join(dir, "ready")
	// The child, on SIGTERM, records the trainer's ($$) state, then exits.
	// The trainer exits once the child's trap is set.
	script := `(trap 'if [ -e /proc/$$/stat ]; then cut -d" " -f3 /proc/$$/stat > "$STATE"; else echo gone > "$STATE"; fi; exit 0' TERM
: > "$READY"
while :; do sleep 0.05; done) &
echo $! >> "$PIDS"
while [ ! -e "$READY" ]; do sleep 0.01; done
exit 0`
	h := newHarnessWith(t, func(c *launcher.Config) {
		c.OrphanGrace = 10 * time.Second
		c.Env = []string{"PIDS=" + pids, "STATE=" + state, "READY=" + ready}
	}, 0, "sh", "-c", script)
	t.Cleanup(func() { killAll(t, pids) })

	if _, err := runWithin(t, h, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("the child recorded nothing (was it signalled?): %v\nlogs:\n%s", err, h.logs)
	}
	if got := strings.TrimSpace(string(b)); got != "Z" {
		t.Errorf("trainer's state when its leftovers were signalled = %q, want Z (exited, not yet reaped)", got)
	}
}

// mainThreadExits is a process whose main thread exits while another runs
// on: /proc/<pid>/stat says Z (a zombie) for it, though it still runs (and
// may hold a GPU). Once its main thread is gone it creates $READY.
const mainThreadExits = `import ctypes, os, threading, time
def run():
    while open("/proc/self/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    open(os.environ["READY"], "w").close()
    while True:
        time.sleep(0.05)
threading.Thread(target=run).start()
ctypes.CDLL(None).pthread_exit(None)
`

// TestLeftoverWhoseMainThreadExited checks that a process the trainer left
// behind counts as running, and is stopped, while any of its threads runs,
// even though its main thread has exited (and /proc/<pid>/stat calls it a
// zombie).
func TestLeftoverWhoseMainThreadExited(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: it makes the process whose main thread exits before its other threads")
	}
	dir := t.TempDir()
	pids, ready, prog := filepath.Join(dir, "pids"), filepath.Join(dir, "ready"), filepath.Join(dir, "mt.py")
	if err := os.WriteFile(prog, []byte(mainThreadExits), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `"$PYTHON" "$PROG" & echo $! >> "$PIDS"
while [ ! -e "$READY" ]; do sleep 0.01; done
exit 1`
	h := newHarnessWith(t, func(c *launcher.Config) {
		c.OrphanGrace = 10 * time.Second
		c.Env = []string{"PIDS=" + pids, "READY=" + ready, "PROG=" + prog, "PYTHON=" + python}
	}, 0, "sh", "-c", script)
	t.Cleanup(func() { killAll(t, pids) })

	if _, err := runWithin(t, h, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	children := readPIDs(t, pids)
	if len(children) != 1 {
		t.Fatalf("children = %v, want 1", children)
	}
	// The launcher returned after stopping it; allow the kernel a moment to
	// finish its exit.
	deadline := time.Now().Add(10 * time.Second)
	for threadRunning(children[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("the child whose main thread exited still runs after Run returned\nlogs:\n%s", h.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// threadRunning reports whether a thread of process pid runs (is no zombie).
func threadRunning(pid int) bool {
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}
