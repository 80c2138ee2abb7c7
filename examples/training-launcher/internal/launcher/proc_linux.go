//go:build linux

package launcher

import (
	"syscall"
	"unsafe"
)

// waitExited blocks until process pid has exited, leaving it a zombie (not
// reaped), and reports whether it could. While the trainer is an unreaped
// zombie its pid, the id of its process group, cannot be given to another
// process, so signals to the group reach only what the trainer started.
func waitExited(pid int) bool {
	const pPID = 1 // P_PID
	var siginfo [16]uint64
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&siginfo)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return true
		case syscall.EINTR:
			continue
		default:
			return false
		}
	}
}
