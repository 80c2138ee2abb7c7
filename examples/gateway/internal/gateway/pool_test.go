package gateway

import "testing"

func TestBufferPool(t *testing.T) {
	var p bufferPool
	b := p.Get()
	if len(b) != copyBufSize {
		t.Fatalf("Get: len %d, want %d", len(b), copyBufSize)
	}
	p.Put(b)
	p.Put(make([]byte, 100)) // a buffer too small to be an 8 KiB one: not kept
	if b := p.Get(); len(b) != copyBufSize {
		t.Fatalf("Get after a short Put: len %d, want %d", len(b), copyBufSize)
	}
	if raceEnabled {
		t.Skip("allocations: the race detector's sync.Pool drops items at random")
	}
	if n := testing.AllocsPerRun(1000, func() { p.Put(p.Get()) }); n != 0 {
		t.Errorf("Get and Put: %v allocations, want 0", n)
	}
}
