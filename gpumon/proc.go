//go:build cgo

package gpumon

import (
	"bytes"
	"cmp"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
	comm, _ := r.identify(pid)
	return comm
}

// identify returns the command name of the process NVML reported as pid
// and whether the process at /proc/<pid> is known to be that one (false,
// with "", where it is gone, cannot be read or cannot be verified).
func (r *procResolver) identify(pid uint32) (comm string, ok bool) {
	dir := r.root + "/" + strconv.FormatUint(uint64(pid), 10)
	comm, start, ok := r.readStat(dir)
	if r.host {
		return comm, ok // "" when !ok
	}
	if !ok {
		r.mu.Lock()
		delete(r.cache, pid)
		r.mu.Unlock()
		return "", false
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
			return "", false
		}
		r.mu.Lock()
		r.store(pid, e)
		r.mu.Unlock()
	}
	if !e.verified {
		return "", false
	}
	return comm, true
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

// withClock makes the Collector tell time by now (tests move a fake clock
// past procUtilHold).
func withClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}

func (c *Collector) clock() time.Time {
	if c.cfg.now != nil {
		return c.cfg.now()
	}
	return time.Now()
}

// ---- Kubernetes pod and container of a process ----

// Sizes read at most from the /proc files of a process.
const (
	maxCgroupFile    = 16 << 10
	maxMountinfoFile = 512 << 10
	maxEnvironFile   = 256 << 10
	maxNamespaceFile = 256
)

// saNamespace is where a pod's containers find the namespace of the
// service account token the kubelet mounts (automountServiceAccountToken,
// the default).
const saNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// pod returns what the /proc tree tells of the Kubernetes pod and
// container of the process NVML reported as pid, which identify has
// verified. The pod UID and container id come from /proc/<pid>/cgroup and
// the container name from /proc/<pid>/mountinfo, both readable for any
// process one can see (hostPID). The pod name (HOSTNAME in
// /proc/<pid>/environ, unless the process shares the host's UTS namespace,
// as a hostNetwork pod does) and the namespace (the service account file
// in /proc/<pid>/root) need ptrace read access to the process as well: the
// same uid and no fewer capabilities, or CAP_SYS_PTRACE; without it they
// are "".
func (r *procResolver) pod(pid uint32) podIdentity {
	dir := r.root + "/" + strconv.FormatUint(uint64(pid), 10)
	var p podIdentity
	p.uid, p.containerID = parseCgroup(r.readSmall(dir+"/cgroup", maxCgroupFile))
	if p.uid == "" {
		return p
	}
	p.container = parseTerminationLog(r.readSmall(dir+"/mountinfo", maxMountinfoFile), p.uid)
	if r.ownUTS(dir) {
		if h := environValue(r.readSmall(dir+"/environ", maxEnvironFile), "HOSTNAME"); isDNSSubdomain(h) {
			p.pod = h
		}
	}
	if ns := strings.TrimSpace(string(r.readSmall(dir+"/root"+saNamespace, maxNamespaceFile))); isDNSLabel(ns) {
		p.namespace = ns
	}
	return p
}

// ownUTS reports whether the process whose /proc directory is dir has a
// UTS namespace (and so a host name) of its own, not the one of the
// root/1 (the host's init, with hostPID). Either link unreadable: false.
func (r *procResolver) ownUTS(dir string) bool {
	own, err := os.Readlink(dir + "/ns/uts")
	if err != nil {
		return false
	}
	host, err := os.Readlink(r.root + "/1/ns/uts")
	return err == nil && own != host
}

// readSmall returns up to max bytes of the file name, or nil.
func (r *procResolver) readSmall(name string, max int64) []byte {
	f, err := r.open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil
	}
	return b
}

// ---- per-process series ----

// procLabels are the labels of every per-process series: the GPU, the pid
// as NVML reports it, its command name, and its Kubernetes pod (pod,
// namespace, container as dcgm-exporter names them, pod_uid as its
// --kubernetes-enable-pod-uid does, and the runtime's container_id), each
// "" where not known.
var procLabels = []string{"gpu", "uuid", "pid", "process", "pod", "namespace", "container", "pod_uid", "container_id"}

// Indexes of procDescs.util, in the order of nvml.ProcessUtilizationSample.
const (
	utilSM = iota
	utilMem
	utilEnc
	utilDec
	numUtil
)

// procDescs are the descriptors of the per-process series
// (WithProcessMetrics). They keep these names with WithDCGMNames too:
// dcgm-exporter has no per-process series.
type procDescs struct {
	memory *prometheus.Desc
	util   [numUtil]*prometheus.Desc
	mps    bool // the driver has nvmlDeviceGetMPSComputeRunningProcesses
}

func newProcDescs() *procDescs {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, procLabels, nil) }
	const since = " since the previous read (NVML process utilisation samples; 0 while it has none)."
	return &procDescs{
		memory: d("gpu_process_memory_used_bytes", "Device memory used by a compute process running on the GPU at scrape time."),
		util: [numUtil]*prometheus.Desc{
			utilSM:  d("gpu_process_sm_utilization_ratio", "Fraction of the time in which the process ran kernels on the GPU's SMs"+since),
			utilMem: d("gpu_process_memory_utilization_ratio", "Fraction of the time in which the process read or wrote device memory"+since),
			utilEnc: d("gpu_process_encoder_utilization_ratio", "Fraction of the time in which the process used the video encoder"+since),
			utilDec: d("gpu_process_decoder_utilization_ratio", "Fraction of the time in which the process used the video decoder"+since),
		},
	}
}

func (p *procDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- p.memory
	for _, d := range p.util {
		ch <- d
	}
}

// procUtilHold is how long a process keeps its last utilisation sample
// when a read brings no new one. NVML returns a sample only for the
// processes that used the GPU since lastSeenTimeStamp, one per process per
// driver sampling period (some 1/6 s to 1 s), so a process without a new
// sample for longer than that has been idle: it reads 0. Scrapes closer
// together than the driver's period (two Prometheus servers, a TUI) keep
// the last value instead of flapping to 0.
const procUtilHold = 3 * time.Second

// procState is the per-process state of one GPU: the newest utilisation
// sample timestamp seen and, for each process NVML listed in the last
// read, its label pairs (built once, when it first shows up: /proc is not
// read again while it stays) and its last utilisation sample. Only the
// GPU's own reads touch it, and they never overlap.
type procState struct {
	lastSeen uint64 // µs: ask NVML for samples newer than this
	utilOff  bool   // GetProcessUtilization is not supported: never asked again
	mpsOff   bool   // GetMPSComputeRunningProcesses is not supported: likewise
	read     uint64 // counts the reads
	buf      []nvml.ProcessInfo
	pids     map[uint32]*procSeries
}

type procSeries struct {
	labels []*dto.LabelPair
	read   uint64          // the last read whose process list held it
	util   [numUtil]uint32 // the last sample, in %
	ts     uint64          // its timestamp (µs; 0: none yet)
	at     time.Time       // when that sample was read
}

// readProcesses appends the per-process series of GPU d to s: memory from
// GetComputeRunningProcesses (summed over MIG instances, where a pid shows
// up once per instance) and, for the MPS clients it may not list,
// GetMPSComputeRunningProcesses; utilisation from GetProcessUtilization;
// all only for the processes listed now; the others are forgotten.
//
// go-nvml v0.13.3-0 also has GetProcessesUtilizationInfo (the _v1 struct
// API of driver 550 and later, which adds JPEG and OFA use), but its
// wrapper passes NVML a zeroed struct, with neither the version nor a
// buffer for the samples, so it cannot return them; gpumon uses
// GetProcessUtilization, which every driver since Maxwell has.
func (c *Collector) readProcesses(r *devRead, d *device, s *devResult) {
	h := d.handle
	st := &d.procs
	procs, ret := try(r, h.GetComputeRunningProcesses)
	if !r.ok("GetComputeRunningProcesses", ret) {
		// Which processes left is not known: forget them all, so that a
		// pid reused meanwhile is read again.
		clear(st.pids)
		return
	}
	st.buf = append(st.buf[:0], procs...)
	if c.set.proc.mps && !st.mpsOff {
		mps, ret := try(r, h.GetMPSComputeRunningProcesses)
		switch {
		case ret == nvml.ERROR_NOT_SUPPORTED:
			st.mpsOff = true
		case r.ok("GetMPSComputeRunningProcesses", ret):
			// A client the compute list has already is not added twice.
			n := len(st.buf)
			for _, p := range mps {
				if !slices.ContainsFunc(st.buf[:n], func(q nvml.ProcessInfo) bool { return q.Pid == p.Pid }) {
					st.buf = append(st.buf, p)
				}
			}
		}
	}
	if st.pids == nil {
		st.pids = make(map[uint32]*procSeries)
	}
	st.read++
	descs := c.set.proc

	// Utilisation samples newer than the last one seen.
	var samples []nvml.ProcessUtilizationSample
	util := !st.utilOff && !r.lost // lost: the MPS list found the GPU gone
	if util {
		v, ret := try(r, func() ([]nvml.ProcessUtilizationSample, nvml.Return) { return h.GetProcessUtilization(st.lastSeen) })
		switch ret {
		case nvml.SUCCESS:
			samples = v
		case nvml.ERROR_NOT_FOUND: // no process used the GPU since lastSeen
		case nvml.ERROR_INSUFFICIENT_SIZE: // more processes between go-nvml's two calls: next read
		case nvml.ERROR_NOT_SUPPORTED: // before Maxwell; a MIG-enabled GPU
			st.utilOff, util = true, false
		default:
			r.ok("GetProcessUtilization", ret)
			util = false
		}
	}

	slices.SortFunc(st.buf, func(a, b nvml.ProcessInfo) int { return cmp.Compare(a.Pid, b.Pid) })
	for i := 0; i < len(st.buf); {
		pid := st.buf[i].Pid
		var used uint64
		known := false
		for ; i < len(st.buf) && st.buf[i].Pid == pid; i++ {
			if m := st.buf[i].UsedGpuMemory; m != notAvailable {
				used += m
				known = true
			}
		}
		e := st.pids[pid]
		if e == nil {
			e = c.newProcSeries(d, pid)
			st.pids[pid] = e
		}
		e.read = st.read
		if known {
			s.samples = append(s.samples, sample{descs.memory, e.labels, prometheus.GaugeValue, float64(used)})
		}
	}

	now := c.clock()
	for _, u := range samples {
		st.lastSeen = max(st.lastSeen, u.TimeStamp)
		e := st.pids[u.Pid]
		if e == nil || e.read != st.read || u.TimeStamp <= e.ts {
			continue // not a compute process listed now, or an older sample
		}
		e.util = [numUtil]uint32{utilSM: u.SmUtil, utilMem: u.MemUtil, utilEnc: u.EncUtil, utilDec: u.DecUtil}
		e.ts, e.at = u.TimeStamp, now
	}
	for pid, e := range st.pids {
		if e.read != st.read {
			delete(st.pids, pid) // left the GPU
			continue
		}
		if !util {
			continue
		}
		vals := e.util
		if e.ts == 0 || now.Sub(e.at) > procUtilHold {
			vals = [numUtil]uint32{}
		}
		for k, desc := range descs.util {
			s.samples = append(s.samples, sample{desc, e.labels, prometheus.GaugeValue, float64(min(vals[k], 100)) / 100})
		}
	}
}

// newProcSeries names the process pid that NVML lists on GPU d, once.
func (c *Collector) newProcSeries(d *device, pid uint32) *procSeries {
	comm, ok := c.procs.identify(pid)
	var p podIdentity
	if ok {
		p = c.procs.pod(pid)
	}
	return &procSeries{labels: labelPairs(c.set.proc.memory,
		d.idx, d.uuid, strconv.FormatUint(uint64(pid), 10), comm, p.pod, p.namespace, p.container, p.uid, p.containerID)}
}

// notAvailable is NVML_VALUE_NOT_AVAILABLE for unsigned long long values.
const notAvailable = ^uint64(0)
