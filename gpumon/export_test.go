//go:build cgo

package gpumon

import "testing"

// WithProcRoot is withProcRoot for the tests of package gpumon_test.
var WithProcRoot = withProcRoot

// FakeProc is fakeProc for the tests of package gpumon_test.
type FakeProc struct{ p *fakeProc }

// NewFakeProc builds a fake /proc tree in t.TempDir(); host says whether the
// collector is in the initial PID namespace.
func NewFakeProc(t testing.TB, host bool) FakeProc { return FakeProc{newFakeProc(t, host)} }

// Root is the tree's directory, for WithProcRoot.
func (f FakeProc) Root() string { return f.p.root }

// Add makes process pid named comm with one open fd per target.
func (f FakeProc) Add(pid uint32, comm string, start uint64, targets ...string) {
	f.p.add(pid, comm, start, targets...)
}

// Remove ends process pid.
func (f FakeProc) Remove(pid uint32) { f.p.remove(pid) }

// SampleNow waits for the sampler's first round and makes one more.
func SampleNow(c *Collector) error { return c.sampler.sampleNow() }

// SamplerRunning reports whether c has a sampler goroutine that has not ended.
func SamplerRunning(c *Collector) bool {
	if c.sampler == nil {
		return false
	}
	select {
	case <-c.sampler.done:
		return false
	default:
		return true
	}
}

// WithClock is withClock for the tests of package gpumon_test.
var WithClock = withClock

// ProcUtilHold is procUtilHold for the tests of package gpumon_test.
const ProcUtilHold = procUtilHold

// PodFiles are the files of a process that tell its Kubernetes pod.
type PodFiles struct {
	Cgroup, Mountinfo, Environ, Namespace, UTS string
}

// SetPod writes the pod files of process pid.
func (f FakeProc) SetPod(pid uint32, p PodFiles) {
	f.p.setPod(pid, podFiles{p.Cgroup, p.Mountinfo, p.Environ, p.Namespace, p.UTS})
}

// HostUTS is the host's UTS namespace as readlink shows it (root/1's in a
// FakeProc with pods).
const HostUTS = hostUTS
