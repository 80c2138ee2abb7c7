//go:build cgo

package gpumon_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/internal/testkit"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// procGPU is one mocked GPU's process list and utilisation samples, which a
// test changes between scrapes. It records the lastSeenTimeStamp of every
// GetProcessUtilization call.
type procGPU struct {
	mu      sync.Mutex
	procs   []nvml.ProcessInfo
	samples []nvml.ProcessUtilizationSample // NVML returns those newer than lastSeen
	ret     nvml.Return                     // when not SUCCESS, what GetProcessUtilization answers
	listRet nvml.Return                     // when not SUCCESS, what GetComputeRunningProcesses answers
	asked   []uint64
}

func (g *procGPU) install(d interface {
	setProcs(func() ([]nvml.ProcessInfo, nvml.Return))
	setUtil(func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return))
}) {
	d.setProcs(func() ([]nvml.ProcessInfo, nvml.Return) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.listRet != nvml.SUCCESS {
			return nil, g.listRet
		}
		return append([]nvml.ProcessInfo(nil), g.procs...), nvml.SUCCESS
	})
	d.setUtil(func(last uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.asked = append(g.asked, last)
		if g.ret != nvml.SUCCESS {
			return nil, g.ret
		}
		var out []nvml.ProcessUtilizationSample
		for _, s := range g.samples {
			if s.TimeStamp > last {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return out, nvml.SUCCESS
	})
}

func (g *procGPU) set(procs []nvml.ProcessInfo, samples ...nvml.ProcessUtilizationSample) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.procs, g.samples = procs, samples
}

// boxDevice adapts a box device to procGPU.install.
type boxDevice struct {
	b *box
	i int
}

func (d boxDevice) setProcs(f func() ([]nvml.ProcessInfo, nvml.Return)) {
	d.b.devs[d.i].GetComputeRunningProcessesFunc = f
}

func (d boxDevice) setUtil(f func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return)) {
	d.b.devs[d.i].GetProcessUtilizationFunc = f
}

// scrape gathers c once and returns each per-process family's series as
// "pid=value" followed by the pod labels that are set, sorted.
func scrape(t *testing.T, c prometheus.Collector) map[string][]string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string][]string)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if strings.HasPrefix(mf.GetName(), "gpu_process_") {
				out[mf.GetName()] = append(out[mf.GetName()], procSeriesString(m))
			} else if l := m.GetLabel(); len(l) > 0 { // gpu_up{gpu,uuid}, errors{call}: first label=value
				out[mf.GetName()] = append(out[mf.GetName()], fmt.Sprintf("%s=%g", l[0].GetValue(), gaugeOrCounter(m)))
			}
		}
		sort.Strings(out[mf.GetName()])
	}
	return out
}

func gaugeOrCounter(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// procValues is scrape's series of name.
func procValues(t *testing.T, c prometheus.Collector, name string) []string {
	t.Helper()
	return scrape(t, c)[name]
}

func procSeriesString(m *dto.Metric) string {
	var pid string
	var extra []string
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "pid":
			pid = l.GetValue()
		case "gpu", "uuid":
		default:
			if l.GetValue() != "" {
				extra = append(extra, l.GetName()+"="+l.GetValue())
			}
		}
	}
	s := fmt.Sprintf("%s=%g", pid, m.GetGauge().GetValue())
	if len(extra) > 0 {
		s += " " + strings.Join(extra, " ")
	}
	return s
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// TestProcessUtilization: each read asks NVML for the samples newer than
// the newest one it has seen on that GPU; a process keeps its last sample
// for procUtilHold when no new one comes, then reads 0 (NVML sends samples
// only for processes that used the GPU); samples of processes not listed
// are ignored; a process that leaves the GPU loses its series.
func TestProcessUtilization(t *testing.T) {
	proc := gpumon.NewFakeProc(t, true)
	proc.Add(100, "trainer", 1)
	proc.Add(200, "server", 2)
	b := newBox(t, 2)
	g := &procGPU{}
	g.install(boxDevice{b, 1})
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newCollector(t, b, gpumon.WithProcessMetrics(), gpumon.WithProcRoot(proc.Root()), gpumon.WithClock(clock.now))

	const t0 = uint64(1_700_000_000_000_000) // µs, as NVML's CPU timestamps
	two := []nvml.ProcessInfo{{Pid: 100, UsedGpuMemory: gib}, {Pid: 200, UsedGpuMemory: 2 * gib}}
	steps := []struct {
		name    string
		advance time.Duration
		procs   []nvml.ProcessInfo
		samples []nvml.ProcessUtilizationSample
		sm, mem []string
		asked   uint64 // lastSeenTimeStamp of this read
	}{
		{
			name:  "first read: every sample in the driver's buffer",
			procs: two,
			samples: []nvml.ProcessUtilizationSample{
				{Pid: 100, TimeStamp: t0, SmUtil: 80, MemUtil: 30, EncUtil: 0, DecUtil: 5},
				{Pid: 200, TimeStamp: t0 + 10, SmUtil: 15, MemUtil: 4},
				{Pid: 999, TimeStamp: t0 + 20, SmUtil: 50}, // a graphics process: not listed, ignored
			},
			sm:    []string{"100=0.8 process=trainer", "200=0.15 process=server"},
			mem:   []string{"100=0.3 process=trainer", "200=0.04 process=server"},
			asked: 0,
		},
		{
			name:    "new samples: the newest timestamp seen is passed",
			advance: time.Second,
			procs:   two,
			samples: []nvml.ProcessUtilizationSample{
				{Pid: 100, TimeStamp: t0 + 1_000_000, SmUtil: 60, MemUtil: 20},
				{Pid: 200, TimeStamp: t0 + 1_000_010, SmUtil: 25, MemUtil: 6},
			},
			sm:    []string{"100=0.6 process=trainer", "200=0.25 process=server"},
			mem:   []string{"100=0.2 process=trainer", "200=0.06 process=server"},
			asked: t0 + 20,
		},
		{
			name:    "no new sample within the hold: last values kept",
			advance: time.Second,
			procs:   two,
			samples: nil,
			sm:      []string{"100=0.6 process=trainer", "200=0.25 process=server"},
			mem:     []string{"100=0.2 process=trainer", "200=0.06 process=server"},
			asked:   t0 + 1_000_010,
		},
		{
			name:    "pid 200 idle past the hold: 0; pid 100 busy",
			advance: gpumon.ProcUtilHold,
			procs:   two,
			samples: []nvml.ProcessUtilizationSample{{Pid: 100, TimeStamp: t0 + 5_000_000, SmUtil: 90, MemUtil: 40}},
			sm:      []string{"100=0.9 process=trainer", "200=0 process=server"},
			mem:     []string{"100=0.4 process=trainer", "200=0 process=server"},
			asked:   t0 + 1_000_010,
		},
		{
			name:    "pid 100 exits: its series go; a new process reads 0 until it has a sample",
			advance: time.Second,
			procs:   []nvml.ProcessInfo{{Pid: 200, UsedGpuMemory: gib}, {Pid: 300, UsedGpuMemory: gib}},
			samples: []nvml.ProcessUtilizationSample{{Pid: 100, TimeStamp: t0 + 6_000_000, SmUtil: 99}},
			sm:      []string{"200=0 process=server", "300=0"},
			mem:     []string{"200=0 process=server", "300=0"},
			asked:   t0 + 5_000_000,
		},
		{
			name:    "none left",
			advance: time.Second,
			procs:   nil,
			asked:   t0 + 6_000_000,
		},
	}
	for _, st := range steps {
		clock.add(st.advance)
		g.set(st.procs, st.samples...)
		g.mu.Lock()
		g.asked = nil
		g.mu.Unlock()
		got := scrape(t, c)
		sm, mem := got["gpu_process_sm_utilization_ratio"], got["gpu_process_memory_utilization_ratio"]
		if !equal(sm, st.sm) || !equal(mem, st.mem) {
			t.Errorf("%s:\nsm  %q, want %q\nmem %q, want %q", st.name, sm, st.sm, mem, st.mem)
		}
		g.mu.Lock()
		asked := g.asked
		g.mu.Unlock()
		if len(asked) != 1 || asked[0] != st.asked {
			t.Errorf("%s: lastSeenTimeStamp %v, want [%d]", st.name, asked, st.asked)
		}
		if n := len(got["gpu_process_encoder_utilization_ratio"]) + len(got["gpu_process_decoder_utilization_ratio"]); n != 2*len(st.sm) {
			t.Errorf("%s: %d encoder/decoder series, want %d", st.name, n, 2*len(st.sm))
		}
	}
	if got := scrape(t, c)["gpumon_collect_errors_total"]; !equal(got, []string{"timeout=0"}) {
		t.Errorf("errors counted: %q", got)
	}
	testkit.Lint(t, c)
}

// TestProcessUtilizationUnsupported: a GPU without process utilisation
// (ERROR_NOT_SUPPORTED: before Maxwell, MIG mode) has no utilisation series
// but its memory series, stays up, counts no error, and is not asked again;
// another error is counted and takes the GPU down, as any NVML error does.
func TestProcessUtilizationUnsupported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ret    nvml.Return
		up     float64
		asked  int // calls in 3 scrapes
		errors float64
	}{
		{"not supported", nvml.ERROR_NOT_SUPPORTED, 1, 1, 0},
		{"unknown error", nvml.ERROR_UNKNOWN, 0, 3, 3},
		{"no permission", nvml.ERROR_NO_PERMISSION, 1, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t, 1)
			g := &procGPU{ret: tc.ret}
			g.install(boxDevice{b, 0})
			g.set([]nvml.ProcessInfo{{Pid: 4000000000, UsedGpuMemory: gib}})
			c := newCollector(t, b, gpumon.WithProcessMetrics())
			var got map[string][]string
			for range 3 {
				got = scrape(t, c)
				if n := len(got["gpu_process_sm_utilization_ratio"]); n != 0 {
					t.Errorf("%d utilisation series, want none", n)
				}
				if n := len(got["gpu_process_memory_used_bytes"]); n != 1 {
					t.Errorf("%d memory series, want 1", n)
				}
			}
			g.mu.Lock()
			asked := len(g.asked)
			g.mu.Unlock()
			if asked != tc.asked {
				t.Errorf("GetProcessUtilization called %d times in 3 scrapes, want %d", asked, tc.asked)
			}
			if want := []string{fmt.Sprintf("0=%g", tc.up)}; !equal(got["gpu_up"], want) {
				t.Errorf("gpu_up %q, want %q", got["gpu_up"], want)
			}
			want := []string{"timeout=0"}
			if tc.errors > 0 {
				want = []string{fmt.Sprintf("GetProcessUtilization=%g", tc.errors), "timeout=0"}
			}
			if !equal(got["gpumon_collect_errors_total"], want) {
				t.Errorf("errors %q, want %q", got["gpumon_collect_errors_total"], want)
			}
		})
	}
}

// Pod attribution fixtures: a burstable pod under the systemd cgroup
// driver and containerd, cgroup v2.
const (
	podUID      = "2d5b5b9c-8f1e-4c3a-9b7d-0e1f2a3b4c5d"
	containerID = "4c1d8e0d2b7a4f6e9c3b5a7d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f"
)

var podCgroup = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
	strings.ReplaceAll(podUID, "-", "_") + ".slice/cri-containerd-" + containerID + ".scope\n"

var podMountinfo = "2201 2180 0:410 / / rw,relatime master:601 - overlay overlay rw\n" +
	"2214 2201 259:1 /var/lib/kubelet/pods/" + podUID + "/etc-hosts /etc/hosts rw,relatime - ext4 /dev/nvme0n1p1 rw\n" +
	"2215 2201 259:1 /var/lib/kubelet/pods/" + podUID + "/containers/trainer/5e6f7a8b /dev/termination-log rw,relatime - ext4 /dev/nvme0n1p1 rw\n"

// TestPodAttribution: a process in a pod gets pod_uid and container_id
// from its cgroup and the container name from its mounts whatever the
// privileges; pod (HOSTNAME, not for a pod on the host's network) and
// namespace (the service account file) where its environ and root can be
// read. A process outside Kubernetes gets none; a process the collector
// cannot verify (container mode, no /dev/nvidia* file) gets no pod either.
func TestPodAttribution(t *testing.T) {
	full := gpumon.PodFiles{
		Cgroup:    podCgroup,
		Mountinfo: podMountinfo,
		Environ:   "PATH=/usr/bin\x00HOSTNAME=llama-train-0\x00NVIDIA_VISIBLE_DEVICES=GPU-1\x00",
		Namespace: "ml-team",
		UTS:       "uts:[4026532711]",
	}
	withUTS := func(f gpumon.PodFiles, uts string) gpumon.PodFiles { f.UTS = uts; return f }
	noPtrace := full // environ and root not readable: no pod name, no namespace
	noPtrace.Environ, noPtrace.Namespace, noPtrace.UTS = "", "", ""
	const k8s = "container=trainer container_id=" + containerID + " "
	for _, tc := range []struct {
		name  string
		host  bool
		files gpumon.PodFiles
		fds   []string
		want  string
	}{
		{"full", true, full, nil, k8s + "namespace=ml-team pod=llama-train-0 pod_uid=" + podUID + " process=python3"},
		{"no ptrace access", true, noPtrace, nil, k8s + "pod_uid=" + podUID + " process=python3"},
		{"host network", true, withUTS(full, gpumon.HostUTS), nil, k8s + "namespace=ml-team pod_uid=" + podUID + " process=python3"},
		{"not kubernetes", true, gpumon.PodFiles{Cgroup: "0::/user.slice/user-1000.slice/session-4.scope\n"}, nil, "process=python3"},
		{"docker", true, gpumon.PodFiles{Cgroup: "0::/system.slice/docker-" + containerID + ".scope\n"}, nil, "container_id=" + containerID + " process=python3"},
		{"container, verified", false, full, []string{"/dev/nvidiactl", "/dev/nvidia0"}, k8s + "namespace=ml-team pod=llama-train-0 pod_uid=" + podUID + " process=python3"},
		{"container, unverified", false, full, []string{"/dev/null"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := gpumon.NewFakeProc(t, tc.host)
			proc.Add(4242, "python3", 7, tc.fds...)
			proc.SetPod(4242, tc.files)
			b := newBox(t, 1)
			g := &procGPU{}
			g.install(boxDevice{b, 0})
			g.set([]nvml.ProcessInfo{{Pid: 4242, UsedGpuMemory: gib}})
			c := newCollector(t, b, gpumon.WithProcessMetrics(), gpumon.WithProcRoot(proc.Root()))
			want := []string{strings.TrimSpace("4242=1.073741824e+09 " + tc.want)}
			if got := procValues(t, c, "gpu_process_memory_used_bytes"); !equal(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
			testkit.Lint(t, c)
		})
	}
}

// TestProcessLabelsCached: /proc is read when a process first shows up on
// a GPU, not at every scrape; a process that leaves the GPU is forgotten,
// so when its pid shows up again it is read again.
func TestProcessLabelsCached(t *testing.T) {
	proc := gpumon.NewFakeProc(t, true)
	proc.Add(4242, "python3", 7)
	proc.SetPod(4242, gpumon.PodFiles{Cgroup: podCgroup})
	b := newBox(t, 1)
	g := &procGPU{}
	g.install(boxDevice{b, 0})
	on := []nvml.ProcessInfo{{Pid: 4242, UsedGpuMemory: gib}}
	g.set(on)
	c := newCollector(t, b, gpumon.WithProcessMetrics(), gpumon.WithProcRoot(proc.Root()))
	first := []string{"4242=1.073741824e+09 container_id=" + containerID + " pod_uid=" + podUID + " process=python3"}
	if got := procValues(t, c, "gpu_process_memory_used_bytes"); !equal(got, first) {
		t.Fatalf("got %q, want %q", got, first)
	}
	// The process's files change (as a reused pid's would): a known pid is
	// not read again.
	proc.Remove(4242)
	proc.Add(4242, "bash", 9)
	if got := procValues(t, c, "gpu_process_memory_used_bytes"); !equal(got, first) {
		t.Errorf("known pid read again: %q", got)
	}
	// A read whose process list fails forgets every process: the next one
	// reads /proc again.
	g.mu.Lock()
	g.listRet = nvml.ERROR_UNKNOWN
	g.mu.Unlock()
	if n := len(procValues(t, c, "gpu_process_memory_used_bytes")); n != 0 {
		t.Errorf("%d series from a failed process list", n)
	}
	g.mu.Lock()
	g.listRet = nvml.SUCCESS
	g.mu.Unlock()
	if got, want := procValues(t, c, "gpu_process_memory_used_bytes"), []string{"4242=1.073741824e+09 process=bash"}; !equal(got, want) {
		t.Errorf("after a failed list: %q, want %q", got, want)
	}
	proc.Remove(4242)
	proc.Add(4242, "python3", 11)
	proc.SetPod(4242, gpumon.PodFiles{Cgroup: podCgroup})
	// It leaves the GPU, and a process with its pid arrives.
	g.set(nil)
	if n := testutil.CollectAndCount(c, "gpu_process_memory_used_bytes"); n != 0 {
		t.Errorf("%d series after the process left", n)
	}
	g.set(on)
	if got := procValues(t, c, "gpu_process_memory_used_bytes"); !equal(got, first) {
		t.Errorf("pid back on the GPU: %q, want %q", got, first)
	}
}

// TestMPSClients: the clients of an MPS server that GetComputeRunningProcesses
// does not list come from GetMPSComputeRunningProcesses; one in both
// lists is counted once. A driver without MPS listing is asked once.
func TestMPSClients(t *testing.T) {
	b := newBox(t, 2)
	server := nvml.ProcessInfo{Pid: 50, UsedGpuMemory: 300 << 20}
	b.devs[0].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{server, {Pid: 100, UsedGpuMemory: gib}}, nvml.SUCCESS
	}
	b.devs[0].GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 100, UsedGpuMemory: gib}, {Pid: 200, UsedGpuMemory: 2 * gib}}, nvml.SUCCESS
	}
	var asked int
	b.devs[1].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 300, UsedGpuMemory: gib}}, nvml.SUCCESS
	}
	b.devs[1].GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		asked++ // only GPU 1's reads call it, and they never overlap
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	c := newCollector(t, b, gpumon.WithProcessMetrics(), gpumon.WithProcRoot(t.TempDir()))
	for range 3 {
		got := procValues(t, c, "gpu_process_memory_used_bytes")
		want := []string{"100=1.073741824e+09", "200=2.147483648e+09", "300=1.073741824e+09", "50=3.145728e+08"}
		if !equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if asked != 1 {
		t.Errorf("GetMPSComputeRunningProcesses asked %d times on a GPU without it, want 1", asked)
	}
	if got := procValues(t, c, "gpu_up"); !equal(got, []string{"0=1", "1=1"}) {
		t.Errorf("gpu_up %q", got)
	}
}
