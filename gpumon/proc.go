//go:build cgo

package gpumon

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// initPIDNS is what readlink(2) of /proc/<pid>/ns/pid gives for a process in
// the initial (host) PID namespace. The kernel gives the initial namespaces
// fixed inode numbers (PROC_PID_INIT_INO = 0xEFFFFFFC, include/linux/proc_ns.h,
// Linux 3.8 and later) outside the range it allocates other namespaces'
// inodes from, so this text identifies the host namespace wherever /proc is
// read from.
const initPIDNS = "pid:[4026531836]"

// Bounds of the cache of verified pids.
const (
	procSweepMin = 64   // the cache size at which the first sweep for dead pids is made
	procCacheMax = 1024 // the most pids kept
)

// procResolver names the processes NVML reports, from a /proc tree, and says
// nothing where it cannot be sure that the pid in that tree is the process
// NVML means.
//
// NVML reports a process's pid as the driver sees it: in the initial PID
// namespace on older drivers, in the caller's namespace (leaving out the
// processes it cannot see) on newer ones. When the collector is in the
// initial namespace both are the same as the pids of its /proc, and the
// name is read from /proc/<pid>/stat, the one file read the old comm read
// cost. Otherwise (a container without hostPID) a pid may be one of the
// host's that means nothing, or another process, in the container's /proc:
// the process there is named only if it holds a /dev/nvidia* file open
// (readlink of /proc/<pid>/fd/*), as every NVML/CUDA client does. That walk
// is cached by pid and start time (field 22 of stat), which a reused pid
// does not share, so a scrape reads one stat per process once the pid is
// known.
//
// A procResolver is safe for concurrent use (GPUs are read concurrently).
type procResolver struct {
	root string
	host bool                                // root/self/ns/pid is the initial PID namespace
	open func(name string) (*os.File, error) // os.Open; tests make it fail

	mu      sync.Mutex
	cache   map[uint32]procEntry // by pid, only when !host
	sweepAt int                  // the cache size at which the next sweep is made
	max     int                  // procCacheMax; tests lower it
	walks   int                  // fd walks made, for tests
}

type procEntry struct {
	start    uint64 // start time in clock ticks after boot: tells a reused pid
	verified bool   // the process held a /dev/nvidia* file open
}

// newProcResolver decides once whether the pids NVML reports are the pids
// of the /proc at root.
func newProcResolver(root string) *procResolver {
	link, err := os.Readlink(root + "/self/ns/pid")
	return &procResolver{
		root:    root,
		host:    err == nil && link == initPIDNS,
		open:    os.Open,
		cache:   make(map[uint32]procEntry),
		sweepAt: procSweepMin,
		max:     procCacheMax,
	}
}

// name returns the command name of the process NVML reported as pid, or ""
// where the process is gone, cannot be read or cannot be verified to be
// the one NVML means.
func (r *procResolver) name(pid uint32) string {
	dir := r.root + "/" + strconv.FormatUint(uint64(pid), 10)
	comm, start, ok := r.readStat(dir)
	if r.host {
		return comm // "" when !ok
	}
	if !ok {
		r.mu.Lock()
		delete(r.cache, pid)
		r.mu.Unlock()
		return ""
	}
	r.mu.Lock()
	e, hit := r.cache[pid]
	miss := !hit || e.start != start
	if miss {
		r.walks++
	}
	r.mu.Unlock()
	if miss {
		e = procEntry{start: start, verified: r.holdsNVIDIA(dir)}
		// The pid may have been reused during the walk: keep the answer
		// only if the process is still the one whose stat was read.
		if _, again, ok := r.readStat(dir); !ok || again != start {
			return ""
		}
		r.mu.Lock()
		r.store(pid, e)
		r.mu.Unlock()
	}
	if !e.verified {
		return ""
	}
	return comm
}

// readStat reads dir/stat.
func (r *procResolver) readStat(dir string) (comm string, start uint64, ok bool) {
	f, err := r.open(dir + "/stat")
	if err != nil {
		return "", 0, false
	}
	defer f.Close()
	var buf [1024]byte // a stat line is some 300 bytes; the kernel caps comm at 64
	n, err := io.ReadFull(f, buf[:])
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", 0, false
	}
	return parseStat(buf[:n])
}

// parseStat returns the comm (field 2) and start time (field 22) of a
// /proc/<pid>/stat line. The comm is in parentheses and may itself hold
// spaces and parentheses, so the fields after it are counted from the last
// ')'.
func parseStat(b []byte) (comm string, start uint64, ok bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	rest := b[end+1:]
	for field := 3; ; field++ {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			return "", 0, false
		}
		i := bytes.IndexAny(rest, " \n")
		if i < 0 {
			i = len(rest)
		}
		if field == 22 {
			v, err := strconv.ParseUint(string(rest[:i]), 10, 64)
			if err != nil {
				return "", 0, false
			}
			return string(b[open+1 : end]), v, true
		}
		rest = rest[i:]
	}
}

// holdsNVIDIA reports whether the process whose /proc directory is dir has
// a /dev/nvidia* file open. Any error (EACCES on a process of another user
// without CAP_SYS_PTRACE, the process gone) is false.
func (r *procResolver) holdsNVIDIA(dir string) bool {
	d, err := r.open(dir + "/fd")
	if err != nil {
		return false
	}
	defer d.Close()
	fdDir := dir + "/fd/"
	for {
		// In batches, lowest fds first: a CUDA process opens /dev/nvidiactl
		// early, so the walk rarely reads all of a big fd table.
		names, err := d.Readdirnames(64)
		for _, n := range names {
			if t, err := os.Readlink(fdDir + n); err == nil && strings.HasPrefix(t, "/dev/nvidia") {
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}

// store caches e for pid; r.mu is held. When the cache reaches sweepAt it
// first drops the pids that are gone, then, if it is still near
// its bound (that many live GPU processes), arbitrary ones down to half of
// it, so that it stays bounded and sweeps stay rare.
func (r *procResolver) store(pid uint32, e procEntry) {
	if _, ok := r.cache[pid]; !ok && len(r.cache) >= r.sweepAt {
		for p := range r.cache {
			if _, err := os.Lstat(r.root + "/" + strconv.FormatUint(uint64(p), 10)); err != nil {
				delete(r.cache, p)
			}
		}
		if len(r.cache) >= r.max*3/4 {
			for p := range r.cache {
				if len(r.cache) < r.max/2 {
					break
				}
				delete(r.cache, p)
			}
		}
		r.sweepAt = min(max(procSweepMin, 2*len(r.cache)), r.max)
	}
	r.cache[pid] = e
}

// withProcRoot makes the Collector read processes from root instead of
// /proc (tests build a fake tree).
func withProcRoot(root string) Option {
	return optionFunc(func(c *config) { c.procRoot = root })
}
