//go:build linux

package launcher_test

import (
	"context"
	"os"
	"path/filepath"
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

	done := make(chan error, 1)
	go func() {
		_, err := h.l.Run(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return within 30 s\nlogs:\n%s", h.logs)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("the child recorded nothing (was it signalled?): %v\nlogs:\n%s", err, h.logs)
	}
	if got := strings.TrimSpace(string(b)); got != "Z" {
		t.Errorf("trainer's state when its leftovers were signalled = %q, want Z (exited, not yet reaped)", got)
	}
}
