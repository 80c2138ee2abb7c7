//go:build cgo

package gpumon

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeProc is a /proc tree in a temporary directory: self/ns/pid says which
// PID namespace the collector is in, and each process has stat (comm and
// start time), comm, status (NSpid) and fd/ symlinks.
type fakeProc struct {
	t    testing.TB
	root string
}

// newFakeProc builds the tree; host says whether self is in the initial PID
// namespace.
func newFakeProc(t testing.TB, host bool) *fakeProc {
	t.Helper()
	p := &fakeProc{t: t, root: t.TempDir()}
	ns := "pid:[4026532451]" // a container's namespace
	if host {
		ns = initPIDNS
	}
	p.mkdir("self/ns")
	p.symlink(ns, "self/ns/pid")
	return p
}

func (p *fakeProc) mkdir(rel string) {
	p.t.Helper()
	if err := os.MkdirAll(filepath.Join(p.root, rel), 0o755); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakeProc) symlink(target, rel string) {
	p.t.Helper()
	if err := os.Symlink(target, filepath.Join(p.root, rel)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakeProc) write(rel, text string) {
	p.t.Helper()
	if err := os.WriteFile(filepath.Join(p.root, rel), []byte(text), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// add makes process pid named comm, started at start (clock ticks), with
// one fd per target (e.g. "/dev/nvidia0", "socket:[123]").
func (p *fakeProc) add(pid uint32, comm string, start uint64, targets ...string) {
	p.t.Helper()
	dir := strconv.FormatUint(uint64(pid), 10)
	p.mkdir(dir + "/fd")
	// Fields 3 to 52 of proc_pid_stat(5); field 22 is the start time.
	rest := make([]string, 50)
	for i := range rest {
		rest[i] = "0"
	}
	rest[0] = "S"
	rest[19] = strconv.FormatUint(start, 10)
	p.write(dir+"/stat", fmt.Sprintf("%d (%s) %s\n", pid, comm, strings.Join(rest, " ")))
	p.write(dir+"/comm", comm+"\n")
	p.write(dir+"/status", fmt.Sprintf("Name:\t%s\nNSpid:\t%d\n", comm, pid))
	for i, target := range targets {
		p.symlink(target, fmt.Sprintf("%s/fd/%d", dir, i))
	}
}

func (p *fakeProc) remove(pid uint32) {
	p.t.Helper()
	if err := os.RemoveAll(filepath.Join(p.root, strconv.FormatUint(uint64(pid), 10))); err != nil {
		p.t.Fatal(err)
	}
}

// denyFD makes reading the fd directory of pid fail with EACCES, as it does
// for a process of another user without CAP_SYS_PTRACE (a chmod cannot
// stand in for it: the tests may run as root).
func denyFD(r *procResolver, pid uint32) {
	fdDir := filepath.Join(r.root, strconv.FormatUint(uint64(pid), 10), "fd")
	open := r.open
	r.open = func(name string) (*os.File, error) {
		if name == fdDir {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return open(name)
	}
}

func TestProcResolverName(t *testing.T) {
	const (
		gpuUser   = 100 // holds /dev/nvidia0 (and other files)
		ctlOnly   = 101 // holds only /dev/nvidiactl
		unrelated = 102 // a process of our namespace that holds no NVIDIA device
		denied    = 103 // its fd directory cannot be read
		missing   = 104 // no such process in our /proc
		odd       = 105 // a comm with spaces and parentheses
	)
	build := func(t *testing.T, host bool) *procResolver {
		p := newFakeProc(t, host)
		p.add(gpuUser, "python3", 1000, "/dev/null", "socket:[77]", "/dev/nvidia0")
		p.add(ctlOnly, "nvidia-smi", 1001, "/dev/nvidiactl")
		p.add(unrelated, "bash", 1002, "/dev/pts/0", "/home/u/.bash_history")
		p.add(denied, "trainer", 1003, "/dev/nvidia1")
		p.add(odd, "a) (b", 1004, "/dev/nvidia-uvm")
		r := newProcResolver(p.root)
		denyFD(r, denied)
		return r
	}
	tests := []struct {
		pid             uint32
		host, container string
	}{
		{gpuUser, "python3", "python3"},
		{ctlOnly, "nvidia-smi", "nvidia-smi"},
		// In our own namespace's /proc, pid 102 is some other process: NVML
		// (with a driver that reports host PIDs) means another one.
		{unrelated, "bash", ""},
		// Not verifiable in a container; in the host namespace the fds are
		// not needed.
		{denied, "trainer", ""},
		{missing, "", ""},
		{odd, "a) (b", "a) (b"},
	}
	for _, mode := range []string{"host", "container"} {
		t.Run(mode, func(t *testing.T) {
			r := build(t, mode == "host")
			if got := r.host; got != (mode == "host") {
				t.Fatalf("host namespace detected: %v", got)
			}
			for _, tc := range tests {
				want := tc.container
				if mode == "host" {
					want = tc.host
				}
				if got := r.name(tc.pid); got != want {
					t.Errorf("name(%d) = %q, want %q", tc.pid, got, want)
				}
			}
			if mode == "host" && r.walks != 0 {
				t.Errorf("%d fd walks in the host namespace, want none", r.walks)
			}
		})
	}
}

// TestProcResolverNoNamespace: without a readable self/ns/pid (an old
// kernel, a /proc that does not show us) the collector cannot know that it
// shares the host's namespace, and verifies every pid.
func TestProcResolverNoNamespace(t *testing.T) {
	p := newFakeProc(t, true)
	if err := os.RemoveAll(filepath.Join(p.root, "self")); err != nil {
		t.Fatal(err)
	}
	p.add(200, "bash", 5)
	r := newProcResolver(p.root)
	if r.host {
		t.Fatal("host namespace assumed without self/ns/pid")
	}
	if got := r.name(200); got != "" {
		t.Errorf("name = %q, want none", got)
	}
	if got := newProcResolver(filepath.Join(p.root, "nonexistent")).name(200); got != "" {
		t.Errorf("name without a /proc = %q, want none", got)
	}
}

// TestProcResolverCache: the fd walk is made once per pid and start time;
// a new process with the same pid is walked again; a pid that is gone is
// forgotten at its next lookup or, when the cache grows, by a sweep.
func TestProcResolverCache(t *testing.T) {
	p := newFakeProc(t, false)
	p.add(300, "python3", 10, "/dev/nvidia0")
	r := newProcResolver(p.root)
	for range 5 {
		if got := r.name(300); got != "python3" {
			t.Fatalf("name = %q", got)
		}
	}
	if r.walks != 1 {
		t.Errorf("%d fd walks for 5 lookups of one process, want 1", r.walks)
	}
	// The pid is reused by a process that holds no NVIDIA device.
	p.remove(300)
	p.add(300, "bash", 20)
	if got := r.name(300); got != "" {
		t.Errorf("reused pid: name = %q, want none", got)
	}
	if r.walks != 2 {
		t.Errorf("%d fd walks after the pid was reused, want 2", r.walks)
	}
	// Gone: forgotten at the next lookup.
	p.remove(300)
	if got := r.name(300); got != "" {
		t.Errorf("gone: name = %q", got)
	}
	if _, ok := r.cache[300]; ok {
		t.Error("a pid that is gone is still cached")
	}

	// Dead pids that are never looked up again go in the sweep made when
	// the cache reaches sweepAt (lowered from procSweepMin: a fake process
	// is a dozen files).
	const n uint32 = 8
	r.sweepAt = int(n)
	for pid := range n {
		p.add(1000+pid, "w", 1, "/dev/nvidia0")
		r.name(1000 + pid)
	}
	if len(r.cache) != int(n) {
		t.Fatalf("%d cached, want %d", len(r.cache), n)
	}
	for pid := range n - 1 { // all but the last end
		p.remove(1000 + pid)
	}
	p.add(5000, "w", 1, "/dev/nvidia0")
	r.name(5000)
	if len(r.cache) != 2 {
		t.Errorf("%d cached after the sweep, want 2 (the live ones)", len(r.cache))
	}
	for _, pid := range []uint32{1000 + n - 1, 5000} {
		if _, ok := r.cache[pid]; !ok {
			t.Errorf("live pid %d not cached", pid)
		}
	}
}

// TestProcResolverBound: with more live GPU processes than the bound
// (procCacheMax, lowered here) the cache stays bounded and names stay right.
func TestProcResolverBound(t *testing.T) {
	p := newFakeProc(t, false)
	r := newProcResolver(p.root)
	r.max, r.sweepAt = 16, 4
	for pid := range uint32(3 * r.max) {
		p.add(pid+1, "w", 1, "/dev/nvidia0")
		if got := r.name(pid + 1); got != "w" {
			t.Fatalf("name(%d) = %q", pid+1, got)
		}
		if len(r.cache) > r.max {
			t.Fatalf("%d cached, more than %d", len(r.cache), r.max)
		}
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in    string
		comm  string
		start uint64
		ok    bool
	}{
		{"1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 17 1000 2 3\n", "systemd", 17, true},
		{"9 (a) b) (c) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0\n", "a) b) (c", 4242, true},
		{"9 () R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0\n", "", 5, true},
		{"9 (short) R 1 2 3\n", "", 0, false},
		{"garbage", "", 0, false},
		{"9 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 notanumber 0\n", "", 0, false},
	} {
		comm, start, ok := parseStat([]byte(tc.in))
		if comm != tc.comm || start != tc.start || ok != tc.ok {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, %v", tc.in, comm, start, ok, tc.comm, tc.start, tc.ok)
		}
	}
}

// podFiles are the files of a process that tell its Kubernetes pod; ""
// leaves a file out.
type podFiles struct {
	cgroup    string // /proc/<pid>/cgroup
	mountinfo string // /proc/<pid>/mountinfo
	environ   string // /proc/<pid>/environ, NUL-separated
	namespace string // <root>/var/run/secrets/kubernetes.io/serviceaccount/namespace
	uts       string // readlink of ns/uts ("uts:[4026531838]" is the host's, as root/1 has)
}

// hostUTS is the host's UTS namespace, as readlink shows it.
const hostUTS = "uts:[4026531838]"

// setPod writes the pod files of process pid (added before) and makes
// root/1 the host's init, in the host's UTS namespace.
func (p *fakeProc) setPod(pid uint32, f podFiles) {
	p.t.Helper()
	if _, err := os.Lstat(filepath.Join(p.root, "1/ns/uts")); err != nil {
		p.mkdir("1/ns")
		p.symlink(hostUTS, "1/ns/uts")
	}
	dir := strconv.FormatUint(uint64(pid), 10)
	for name, text := range map[string]string{"cgroup": f.cgroup, "mountinfo": f.mountinfo, "environ": f.environ} {
		if text != "" {
			p.write(dir+"/"+name, text)
		}
	}
	if f.namespace != "" {
		p.mkdir(dir + "/root/var/run/secrets/kubernetes.io/serviceaccount")
		p.write(dir+"/root"+saNamespace, f.namespace)
	}
	if f.uts != "" {
		p.mkdir(dir + "/ns")
		p.symlink(f.uts, dir+"/ns/uts")
	}
}
