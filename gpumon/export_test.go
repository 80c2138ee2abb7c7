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
