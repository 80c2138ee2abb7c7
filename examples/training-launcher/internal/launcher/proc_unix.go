//go:build unix

package launcher

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup puts the trainer in a process group of its own, so that a
// Ctrl-C on the terminal reaches it once, through the launcher, and so that
// the signal reaches what the trainer started (torchrun's workers, a shell's
// child) too.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func signalProcess(p *os.Process, sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok {
		if err := syscall.Kill(-p.Pid, s); err == nil {
			return
		}
	}
	_ = p.Signal(sig)
}

func killProcess(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill()
	}
}

// exitCode is the process's exit status, or 128+signal when a signal ended it,
// as a shell reports it.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
