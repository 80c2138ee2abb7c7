package tracing

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// After the collector came back, no span arrived until the gRPC reconnect
// backoff and the exporter's retry backoff (5 s, growing) ran out: 2-28 s
// against Jaeger, every span ended meanwhile lost. With the bounded backoffs
// a span arrives within a second or two; 5 s is a generous correctness
// bound, not a timing.
func TestReconnectsPromptly(t *testing.T) {
	ctx := context.Background()
	r, stop := startReceiverOn(t, "127.0.0.1:0")
	addr := r.addr
	m := NewMetrics()
	tp, err := NewProvider(ctx, WithEndpoint("http://"+addr), WithMetrics(m),
		WithBatchOptions(sdktrace.WithBatchTimeout(50*time.Millisecond), sdktrace.WithMaxQueueSize(16)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tp.Tracer("test")
	ended := 0
	end := func(name string) {
		_, s := tr.Start(ctx, name)
		s.End()
		ended++
	}
	end("before")
	waitFor(t, 10*time.Second, func() bool { return len(r.got()) > 0 })

	stop()
	// An outage of 10 s under light load: exports fail, backoffs grow.
	for range 100 {
		end("outage")
		time.Sleep(100 * time.Millisecond)
	}

	r2, _ := startReceiverOn(t, addr)
	back := time.Now()
	deadline := back.Add(40 * time.Second)
	for len(r2.got()) == 0 && time.Now().Before(deadline) {
		end("after")
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(back)
	if len(r2.got()) == 0 {
		t.Fatalf("no span arrived within %v of the receiver coming back", took)
	}
	t.Logf("first span arrived %v after the receiver came back", took.Round(10*time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("first span arrived %v after the receiver came back, want < 5s", took.Round(10*time.Millisecond))
	}

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	c := countsOf(m)
	t.Logf("ended %d: %+v; received %d", ended, c, len(r.got())+len(r2.got()))
	if c.sum() != ended {
		t.Errorf("exported + failed + dropped = %d, want the %d spans ended (%+v)", c.sum(), ended, c)
	}
	if c.failed+c.full == 0 {
		t.Errorf("no span counted failed or dropped during the outage: %+v", c)
	}
	if got := len(r.got()) + len(r2.got()); c.exported > got {
		t.Errorf("exported = %d, but the receivers got %d", c.exported, got)
	}
}

type counts struct{ exported, failed, full, shutdown int }

func (c counts) sum() int { return c.exported + c.failed + c.full + c.shutdown }

func countsOf(m *Metrics) counts {
	return counts{
		exported: int(testutil.ToFloat64(m.exported)),
		failed:   int(testutil.ToFloat64(m.failed)),
		full:     int(testutil.ToFloat64(m.droppedFull)),
		shutdown: int(testutil.ToFloat64(m.droppedClose)),
	}
}

// With no collector listening, Shutdown took its whole ctx (10 s in the
// example server) and returned ctx's error: the exporter retried the last
// batch until the deadline. Now the flush gives up after one failed export.
func TestShutdownWithoutCollector(t *testing.T) {
	for _, failing := range []bool{false, true} {
		name := "first export at shutdown"
		if failing {
			name = "exporter failing before"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			m := NewMetrics()
			tp, err := NewProvider(ctx, WithEndpoint("http://"+closedAddr(t)), WithMetrics(m),
				WithBatchOptions(sdktrace.WithBatchTimeout(50*time.Millisecond)))
			if err != nil {
				t.Fatal(err)
			}
			_, s := tp.Tracer("test").Start(ctx, "one")
			s.End()
			if failing {
				time.Sleep(2500 * time.Millisecond) // the batch is exported, and fails
				_, s = tp.Tracer("test").Start(ctx, "two")
				s.End()
			}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			start := time.Now()
			err = tp.Shutdown(sctx)
			took := time.Since(start)
			t.Logf("Shutdown took %v, returned %v", took.Round(10*time.Millisecond), err)
			if took > 5*time.Second {
				t.Errorf("Shutdown took %v with a 10 s ctx, want < 5 s", took.Round(10*time.Millisecond))
			}
			if err != nil {
				t.Errorf("Shutdown = %v, want nil (the loss is logged and counted)", err)
			}
			want := 1
			if failing {
				want = 2
			}
			if c := countsOf(m); c.sum() != want || c.exported != 0 {
				t.Errorf("counts %+v, want %d spans failed or dropped", c, want)
			}
		})
	}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
