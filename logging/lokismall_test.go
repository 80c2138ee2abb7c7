//go:build unix

package logging

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// processCPU is the CPU time this process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLokiSmallQueue offers 20,000 lines/s for 2 s to a quick Loki
// through a queue of 1,000 lines, a tenth of a batch (BatchLines 10,000):
// the batch being made counts against the queue, and run used to hold it
// until BatchWait (1 s) while the queue filled and dropped 95 % of the
// lines (and every Handle then tried a yield that could not help). run now
// hands a batch on early, to a free push, once the queue is past half. It
// reports the process's CPU per second next to what was dropped.
func BenchmarkLokiSmallQueue(b *testing.B) {
	for range b.N {
		srv := slowLoki(b, 0)
		l, err := NewLoki(LokiConfig{URL: srv.URL, QueueSize: 1000, Fallback: slog.NewTextHandler(io.Discard, nil)})
		if err != nil {
			b.Fatal(err)
		}
		const dur = 2 * time.Second
		cpu := processCPU(b)
		lat := offer(slog.New(l), 20000, dur)
		cpu = processCPU(b) - cpu
		_ = l.Close(context.Background())
		b.ReportMetric(float64(cpu.Microseconds())/1000/dur.Seconds(), "cpu-ms/s")
		b.ReportMetric(100*testutil.ToFloat64(l.core.drops[DropQueueFull])/float64(len(lat)), "dropped-%")
		reportLatency(b, lat)
	}
}
