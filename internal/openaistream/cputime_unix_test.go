//go:build unix

package openaistream

import "syscall"

// cpuNanos is the CPU time (user and system) the process has used: on a
// shared machine it does not count the time the benchmark waited for a core.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
