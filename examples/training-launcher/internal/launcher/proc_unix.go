//go:build unix

package launcher

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// signalGroup sends sig to every process of group pgid.
func signalGroup(pgid int, sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok {
		_ = syscall.Kill(-pgid, s)
	}
}

// groupRunning reports whether a process of group pgid still runs. The group
// is the trainer's: its id is the trainer's pid, which the kernel does not
// give to another process while the group has a member. On Linux the
// launcher has not reaped the trainer yet (waitExited), so the trainer, a
// zombie, is that member; elsewhere a group whose last member is gone could
// in principle have had its id reused by the time it is signalled.
//
// kill(2) counts zombies, which hold nothing (no memory, no GPU, no pipe) but
// wait for their parent, init once orphaned, to collect their status; a
// container's PID 1 that does not reap leaves them forever. Where /proc lists
// the processes (Linux), zombies do not count; a process whose main thread
// exited (a zombie in /proc/<pid>/stat) while other threads run does.
func groupRunning(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); err != nil {
		return false // ESRCH: none; EPERM: none the launcher may signal
	}
	running, ok := procGroupRunning(pgid)
	return running || !ok
}

// procGroupRunning reads /proc for a process of group pgid that is not a
// zombie; ok is false where /proc cannot say.
func procGroupRunning(pgid int) (running, ok bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false, false
	}
	want := strconv.Itoa(pgid)
	seen := false
	for _, e := range entries {
		name := e.Name()
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		f, err := statFields("/proc/" + name + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		seen = true
		if len(f) < 3 || f[2] != want {
			continue
		}
		if !dead(f[0]) || threadRunning(name) {
			return true, true
		}
	}
	return false, seen
}

// statFields reads a /proc stat file, "pid (comm) state ppid pgrp ...", and
// returns its fields after the comm, state first (none where the file has no
// comm). The comm may hold spaces and ')', so the fields are counted from
// the last ')'.
func statFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, nil
	}
	return strings.Fields(s[i+1:]), nil
}

// dead reports whether a /proc stat state is a zombie's or a dying task's.
func dead(state string) bool { return state == "Z" || state == "X" }

// threadRunning reports whether a thread of process pid is no zombie: a
// process whose main thread exited shows Z in /proc/<pid>/stat while its
// other threads run on.
func threadRunning(pid string) bool {
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if f, err := statFields("/proc/" + pid + "/task/" + t.Name() + "/stat"); err == nil && len(f) > 0 && !dead(f[0]) {
			return true
		}
	}
	return false
}
