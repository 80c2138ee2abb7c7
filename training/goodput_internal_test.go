package training

import (
	"testing"
	"time"
)

// BenchmarkLedgerStep is the goodput part of the per-step path alone (a
// mutex and a few time subtractions), next to BenchmarkStep.
func BenchmarkLedgerStep(b *testing.B) {
	var g ledger
	now := time.Now()
	g.init(now, nil)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		g.step(now, time.Millisecond, 0, false, 1, 0, false)
	}
}
