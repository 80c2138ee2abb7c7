//go:build cgo

package gpusim

import "github.com/NVIDIA/go-nvml/pkg/nvml"

// MaxProcesses is the most compute processes one simulated GPU lists.
const MaxProcesses = 64

// SimPIDBase is the first pid of the simulated processes beyond the one
// with Config.ProcessPID: GPU g's k-th process (k from 1) has pid
// SimPIDBase + g*MaxProcesses + k. It is PID_MAX_LIMIT, above every pid
// Linux hands out, so no /proc holds such a process and a collector names
// none of them.
const SimPIDBase = 1 << 22

// pids returns the pids of the processes d lists; d.mu is held.
func (d *device) pids() []uint32 {
	n := d.sim.cfg.Processes
	if n == 0 || d.load == 0 {
		return nil
	}
	out := make([]uint32, n)
	for k := range out {
		out[k] = uint32(SimPIDBase + d.index*MaxProcesses + k)
	}
	if pid := d.sim.cfg.ProcessPID; pid != 0 {
		out[0] = pid
	}
	return out
}

// GetComputeRunningProcesses lists Config.Processes processes on a GPU
// under load, which share its used memory (in whole MiB; the first holds
// what does not divide evenly).
func (d *device) GetComputeRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nil, ret
	}
	defer d.mu.Unlock()
	pids := d.pids()
	out := make([]nvml.ProcessInfo, len(pids))
	if len(pids) == 0 {
		return out, nvml.SUCCESS
	}
	used := d.memUsed()
	share := used / uint64(len(pids)) &^ (mib - 1)
	for k, pid := range pids {
		out[k] = nvml.ProcessInfo{Pid: pid, UsedGpuMemory: share}
	}
	out[0].UsedGpuMemory = used - share*uint64(len(pids)-1)
	return out, nvml.SUCCESS
}

// GetProcessUtilization returns one sample per listed process, stamped
// now (in µs, as NVML's CPU timestamps): each has an equal share of the
// GPU's utilisation (SM 100 L %, memory 60 L % at load L) and no encoder
// or decoder use. Like NVML it answers ERROR_NOT_FOUND when it has no
// sample newer than lastSeenTimestamp (an idle GPU, or the clock has not
// moved since).
func (d *device) GetProcessUtilization(lastSeenTimestamp uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nil, ret
	}
	defer d.mu.Unlock()
	pids := d.pids()
	ts := uint64(max(d.last.UnixMicro(), 0))
	if len(pids) == 0 || ts <= lastSeenTimestamp {
		return nil, nvml.ERROR_NOT_FOUND
	}
	n := float64(len(pids))
	out := make([]nvml.ProcessUtilizationSample, len(pids))
	for k, pid := range pids {
		out[k] = nvml.ProcessUtilizationSample{
			Pid: pid, TimeStamp: ts,
			SmUtil: round32(100 * d.load / n), MemUtil: round32(60 * d.load / n),
		}
	}
	return out, nvml.SUCCESS
}
