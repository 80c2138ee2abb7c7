//go:build !unix

package launcher

import (
	"os"
	"os/exec"
)

func setProcessGroup(*exec.Cmd) {}

func signalProcess(p *os.Process, sig os.Signal) {
	if err := p.Signal(sig); err != nil {
		_ = p.Kill()
	}
}

func killProcess(p *os.Process) { _ = p.Kill() }

// Without process groups the launcher cannot tell what the trainer left
// running: it stops only the trainer.
func signalGroup(int, os.Signal) {}

func groupRunning(int) bool { return false }

func exitCode(ps *os.ProcessState) int {
	if ps == nil || ps.ExitCode() < 0 {
		return 1
	}
	return ps.ExitCode()
}
