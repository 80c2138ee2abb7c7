package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The benchmarks of issue 16's logging rows, each next to its baseline and
// reporting the ratio:
//
//	go test -run '^$' -bench 'LokiHandleParallel|LokiSlowBackend|LokiFastSink' -benchtime=1x ./logging/

// parallelLoggers is the number of goroutines logging at once.
const parallelLoggers = 16

// inParallel runs fn n times, split over parallelLoggers goroutines, and
// returns the time taken.
func inParallel(n int, fn func()) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for g := range parallelLoggers {
		k := n / parallelLoggers
		if g < n%parallelLoggers {
			k++
		}
		wg.Go(func() {
			for range k {
				fn()
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func logRequestDone(ctx context.Context, l *slog.Logger) {
	l.LogAttrs(ctx, slog.LevelInfo, "request done",
		slog.String("route", "/v1/chat/completions"), slog.Int("status", 200), slog.Duration("took", time.Millisecond))
}

// parallelTurn is the lines BenchmarkLokiHandleParallel logs through one
// handler before it turns to the other: a few milliseconds.
const parallelTurn = 8192

// BenchmarkLokiHandleParallel: 16 goroutines logging through one *Loki (its
// pusher stuck, the queue large enough for all), against 16 goroutines
// logging through one slog.JSONHandler to io.Discard, timed in the same run
// in alternating turns; x-JSONHandler is the ratio (goal <= 1.2).
func BenchmarkLokiHandleParallel(b *testing.B) {
	release := make(chan struct{})
	defer close(release)
	l, _ := stuckLoki(b, release, b.N+1)
	alternate(b, slog.New(l), nil, nil)
	noQueueFull(b, l)
	dropQueue(l)
}

// alternate times b.N lines through logger and b.N through a
// slog.JSONHandler to io.Discard, 16 goroutines each, in alternating turns
// of parallelTurn lines, and reports JSONHandler-ns/op and x-JSONHandler.
// settle, when not nil, is called at the end of each of the logger's turns,
// on its clock, with the lines logged so far; between, after it and off
// the clock.
func alternate(b *testing.B, logger *slog.Logger, settle func(logged int), between func()) {
	alternateWith(b, logger, slog.New(slog.NewJSONHandler(io.Discard, nil)), "JSONHandler", settle, between)
}

// alternateWith is alternate against base, reporting <name>-ns/op and
// x-<name>.
func alternateWith(b *testing.B, logger, base *slog.Logger, name string, settle func(logged int), between func()) {
	ctx := spanCtx()
	b.ReportAllocs()
	b.ResetTimer()
	// In turns of parallelTurn lines each, so that the ratio compares the
	// two on the same machine state (this machine's load moves by tens of
	// per cent within a second); ns/op and B/op are the logger's alone.
	var d, d0 time.Duration
	for done := 0; done < b.N; done += parallelTurn {
		k := min(parallelTurn, b.N-done)
		start := time.Now()
		inParallel(k, func() { logRequestDone(ctx, logger) })
		if settle != nil {
			settle(done + k)
		}
		d += time.Since(start)
		b.StopTimer()
		if between != nil {
			between()
		}
		d0 += inParallel(k, func() { logRequestDone(ctx, base) })
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(d0.Nanoseconds())/float64(b.N), name+"-ns/op")
	b.ReportMetric(float64(d)/float64(d0), "x-"+name)
}

// BenchmarkLokiHandleParallelKept measures the floor under
// BenchmarkLokiHandleParallel's goal: what the JSON handler costs when it
// must keep every line, as any queue does until its lines are pushed.
//
// floor: 16 goroutines logging through keptHandler (a slog.JSONHandler per
// P, each writing into a keptLines: the line copied into a 32 KiB slab and
// an entry of 64 bytes, none freed before the end, as with Loki's stuck
// pusher) against the JSON handler to io.Discard (x-JSONHandler). This is
// Loki's structure without its own work: no queue lock or bounds, no time,
// level or trace ids kept, no span lookup.
// Loki: Loki with its pusher stuck against that floor (x-floor): Loki's own
// cost over it.
func BenchmarkLokiHandleParallelKept(b *testing.B) {
	b.Run("floor", func(b *testing.B) {
		alternate(b, slog.New(newKeptHandler()), nil, nil)
	})
	b.Run("Loki", func(b *testing.B) {
		release := make(chan struct{})
		defer close(release)
		l, _ := stuckLoki(b, release, b.N+1)
		alternateWith(b, slog.New(l), slog.New(newKeptHandler()), "floor", nil, nil)
		noQueueFull(b, l)
		dropQueue(l)
	})
}

// keptHandler formats each record with a slog.JSONHandler of its P's (from
// a sync.Pool, as Loki's shard hints are), each writing into a keptLines of
// its own; every keptLines made is also held in all, so that none of the
// lines is freed when the pool drops a handler.
type keptHandler struct {
	hs  sync.Pool
	mu  sync.Mutex
	all []*keptLines
}

func newKeptHandler() *keptHandler {
	k := new(keptHandler)
	k.hs.New = func() any {
		w := new(keptLines)
		k.mu.Lock()
		k.all = append(k.all, w)
		k.mu.Unlock()
		return slog.NewJSONHandler(w, nil)
	}
	return k
}

func (*keptHandler) Enabled(context.Context, slog.Level) bool { return true }
func (k *keptHandler) WithAttrs([]slog.Attr) slog.Handler     { return k }
func (k *keptHandler) WithGroup(string) slog.Handler          { return k }

func (k *keptHandler) Handle(ctx context.Context, r slog.Record) error {
	h := k.hs.Get().(*slog.JSONHandler)
	err := h.Handle(ctx, r)
	k.hs.Put(h)
	return err
}

// keptLines is an io.Writer that keeps every line written to it, as a queue
// holds it: the line copied into a 32 KiB slab (Loki's slab size) and an
// entry of 64 bytes (Loki's) in a chunk of 256 (Loki's), none ever freed.
// slog's handlers call Write under their own lock.
type keptLines struct {
	slab   []byte
	slabs  [][]byte
	chunk  []keptEntry
	chunks [][]keptEntry
}

type keptEntry struct {
	line string
	_    [48]byte
}

func (k *keptLines) Write(p []byte) (int, error) {
	if cap(k.slab)-len(k.slab) < len(p) {
		k.slabs = append(k.slabs, k.slab)
		k.slab = make([]byte, 0, max(32<<10, len(p)))
	}
	off := len(k.slab)
	k.slab = append(k.slab, p...)
	if len(k.chunk) == cap(k.chunk) {
		k.chunks = append(k.chunks, k.chunk)
		k.chunk = make([]keptEntry, 0, 256)
	}
	k.chunk = append(k.chunk, keptEntry{line: unsafe.String(&k.slab[off], len(p))})
	return len(p), nil
}

// discardTransport answers every push 204 at once, without reading it.
type discardTransport struct{}

func (discardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

// BenchmarkLokiHandleParallelDrained is BenchmarkLokiHandleParallel with
// the queue emptied as it would be by a pusher that keeps up, so that the
// lines are freed and Handle writes into memory the heap has had before,
// not into pages new to the process as with the stuck pusher (which the
// kernel must zero: most of what Handle costs over the JSON handler there).
//
// discarded: after each of Loki's turns, off the clock, the benchmark takes
// the queue as the pusher does and drops it: Handle's cost alone.
// pushed: a working pusher, batches of 64 KiB encoded and handed to a
// transport that answers 204 at once, on Loki's clock (each of its turns
// ends when every full batch has been pushed): what the process pays.
//
// The queue is large enough that nothing is dropped.
func BenchmarkLokiHandleParallelDrained(b *testing.B) {
	b.Run("discarded", func(b *testing.B) {
		release := make(chan struct{})
		defer close(release)
		l, f := stuckLoki(b, release, b.N+6)
		c := l.core
		// Five lines, and run is stuck handing on the fifth batch (four
		// pushes waiting for their answers): from then on only the
		// benchmark takes the queue.
		for range 5 {
			slog.New(l).Info("stuck")
		}
		for f.attemptCount() < c.cfg.MaxInFlight {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		var done [][][]lokiEntry
		alternate(b, slog.New(l), nil, func() {
			got, _ := c.take(done, false)
			var lines, n int
			merge(got, func(e lokiEntry) { lines, n = lines+1, n+len(e.line) })
			c.handedOff(lines, int64(n))
			done = got
		})
		noQueueFull(b, l)
		dropQueue(l)
	})
	b.Run("pushed", func(b *testing.B) {
		const batchBytes = 64 << 10
		l, err := NewLoki(LokiConfig{URL: "http://loki.invalid", Labels: map[string]string{"service_name": "bench"},
			Client: &http.Client{Transport: discardTransport{}}, Fallback: slog.NewTextHandler(io.Discard, nil),
			BatchBytes: batchBytes, BatchWait: time.Hour, QueueSize: 2 * (b.N + 1), QueueBytes: 2 * (b.N + 1) << 10})
		if err != nil {
			b.Fatal(err)
		}
		c := l.core
		alternate(b, slog.New(l), func(logged int) {
			// Left: less than a batch, waiting in run for more, and no
			// push in flight (every line handed off has been sent).
			for c.queueBytes() >= batchBytes || int(testutil.ToFloat64(c.sentLines))+c.queueLength() < logged {
				time.Sleep(20 * time.Microsecond)
			}
		}, nil)
		if err := l.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		var dropped float64
		for _, c := range c.drops {
			dropped += testutil.ToFloat64(c)
		}
		if dropped != 0 {
			b.Fatalf("%v lines dropped: the benchmark measured drops, not enqueues", dropped)
		}
	})
}

// slowLoki is a Loki push endpoint that takes delay to answer every push
// (a backend in another region) and counts the lines it accepted.
func slowLoki(b *testing.B, delay time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// offer logs lines at rate lines/s for dur, from one goroutine, and returns
// the latency of every call.
func offer(logger *slog.Logger, rate int, dur time.Duration) []time.Duration {
	ctx := spanCtx()
	lat := make([]time.Duration, 0, int(float64(rate)*dur.Seconds())+1)
	start := time.Now()
	for sent := 0; ; {
		el := time.Since(start)
		if el >= dur {
			return lat
		}
		for due := int(float64(rate) * el.Seconds()); sent < due; sent++ {
			t0 := time.Now()
			logger.LogAttrs(ctx, slog.LevelInfo, "request done",
				slog.String("route", "/v1/chat/completions"), slog.Int("status", 200), slog.Int("i", sent))
			lat = append(lat, time.Since(t0))
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(lat[int(math.Ceil(0.99*float64(len(lat))))-1].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
}

// BenchmarkLokiSlowBackend offers lines at a fixed rate for 2 s to a Loki
// whose every push takes 200 ms, with the default config, and reports the
// lines delivered per second (until Close returned), the lines dropped and
// the callers' p99 and max latency; baseline/blocking is a client that, like
// samber/slog-loki over grafana/loki-client-go, hands every record to one
// goroutine over an unbuffered channel and pushes 1 MiB batches
// synchronously. Goals: >= 50,000 lines/s delivered, 0 dropped at 20,000
// lines/s offered, p99 < 5 us.
func BenchmarkLokiSlowBackend(b *testing.B) {
	const delay, dur = 200 * time.Millisecond, 2 * time.Second
	for _, rate := range []int{20000, 100000} {
		b.Run("offered="+strconv.Itoa(rate)+"/Loki", func(b *testing.B) {
			for range b.N {
				srv := slowLoki(b, delay)
				cfg := LokiConfig{URL: srv.URL, Labels: map[string]string{"service_name": "bench"},
					Fallback: slog.NewTextHandler(io.Discard, nil)}
				l, err := NewLoki(cfg)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				lat := offer(slog.New(l), rate, dur)
				if err := l.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				el := time.Since(start)
				sent := testutil.ToFloat64(l.core.sentLines)
				var dropped float64
				for _, c := range l.core.drops {
					dropped += testutil.ToFloat64(c)
				}
				b.ReportMetric(sent/el.Seconds(), "delivered-lines/s")
				b.ReportMetric(dropped, "dropped-lines")
				reportLatency(b, lat)
			}
		})
		// The callers' latency floor on this machine: the same offer into
		// the JSON handler alone.
		b.Run("offered="+strconv.Itoa(rate)+"/baseline/JSONHandler", func(b *testing.B) {
			for range b.N {
				reportLatency(b, offer(slog.New(slog.NewJSONHandler(io.Discard, nil)), rate, dur))
			}
		})
		b.Run("offered="+strconv.Itoa(rate)+"/baseline/blocking", func(b *testing.B) {
			for range b.N {
				srv := slowLoki(b, delay)
				c := newBlockingLoki(srv.URL + "/loki/api/v1/push")
				start := time.Now()
				lat := offer(slog.New(c), rate, dur)
				sent := c.close()
				b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "delivered-lines/s")
				b.ReportMetric(0, "dropped-lines")
				reportLatency(b, lat)
			}
		})
	}
}

// BenchmarkLokiSlowBackendOverCapacity offers 100,000 lines/s for 3 s to a
// Loki whose pushes take 200 ms, one at a time (MaxInFlight 1: about 35,000
// lines/s): more than it takes, so that the queue fills and lines are
// dropped. It shows that a Handle past half the queue does not wait for a
// slow backend (see yield): the callers' p99 stays that of a queue with room.
func BenchmarkLokiSlowBackendOverCapacity(b *testing.B) {
	for range b.N {
		srv := slowLoki(b, 200*time.Millisecond)
		l, err := NewLoki(LokiConfig{URL: srv.URL, Labels: map[string]string{"service_name": "bench"},
			MaxInFlight: 1, Fallback: slog.NewTextHandler(io.Discard, nil)})
		if err != nil {
			b.Fatal(err)
		}
		lat := offer(slog.New(l), 100000, 3*time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = l.Close(ctx)
		b.ReportMetric(100*testutil.ToFloat64(l.core.drops[DropQueueFull])/float64(len(lat)), "dropped-%")
		reportLatency(b, lat)
	}
}

// BenchmarkLokiFastSink logs flat out from 16 goroutines, with the default
// config, into a local Loki that answers at once, and reports the share of
// lines dropped (the default queue should absorb it) and the lines/s.
func BenchmarkLokiFastSink(b *testing.B) {
	srv := slowLoki(b, 0)
	l, err := NewLoki(LokiConfig{URL: srv.URL, Labels: map[string]string{"service_name": "bench"},
		Fallback: slog.NewTextHandler(io.Discard, nil)})
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(l)
	ctx := spanCtx()
	b.ReportAllocs()
	b.ResetTimer()
	inParallel(b.N, func() { logRequestDone(ctx, logger) })
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	dropped := testutil.ToFloat64(l.core.drops[DropQueueFull])
	b.ReportMetric(100*dropped/float64(b.N), "dropped-%")
	b.ReportMetric(testutil.ToFloat64(l.core.sentLines)/b.Elapsed().Seconds(), "delivered-lines/s")
}

// blockingLoki is the baseline client: Handle formats the record and hands
// it over an unbuffered channel to one goroutine, which batches up to 1 MiB
// or 1 s and pushes synchronously (snappy protobuf), so that callers wait
// while a push is in flight. This is how grafana/loki-client-go, under
// samber/slog-loki, behaves.
type blockingLoki struct {
	url     string
	mu      sync.Mutex
	fmt     slog.Handler
	buf     []byte
	entries chan push.Entry
	done    chan int
}

type blockingWriter struct{ c *blockingLoki }

func (w blockingWriter) Write(p []byte) (int, error) {
	w.c.buf = append(w.c.buf, p...)
	return len(p), nil
}

func newBlockingLoki(url string) *blockingLoki {
	c := &blockingLoki{url: url, entries: make(chan push.Entry), done: make(chan int)}
	c.fmt = slog.NewJSONHandler(blockingWriter{c}, nil)
	go c.run()
	return c
}

func (c *blockingLoki) Enabled(context.Context, slog.Level) bool { return true }
func (c *blockingLoki) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *blockingLoki) WithGroup(string) slog.Handler            { return c }

func (c *blockingLoki) Handle(ctx context.Context, r slog.Record) error {
	c.mu.Lock()
	c.buf = c.buf[:0]
	err := c.fmt.Handle(ctx, r)
	line := string(c.buf)
	c.mu.Unlock()
	c.entries <- push.Entry{Timestamp: r.Time, Line: line}
	return err
}

func (c *blockingLoki) run() {
	var (
		batch []push.Entry
		size  int
		sent  int
	)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	send := func() {
		if len(batch) == 0 {
			return
		}
		req := push.PushRequest{Streams: []push.Stream{{Labels: `{service_name="bench"}`, Entries: batch}}}
		raw, _ := req.Marshal()
		resp, err := http.Post(c.url, "application/x-protobuf", bytes.NewReader(snappy.Encode(nil, raw)))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				sent += len(batch)
			}
		}
		batch, size = nil, 0
	}
	for {
		select {
		case e, ok := <-c.entries:
			if !ok {
				send()
				c.done <- sent
				return
			}
			batch = append(batch, e)
			if size += len(e.Line); size >= 1<<20 {
				send()
			}
		case <-tick.C:
			send()
		}
	}
}

func (c *blockingLoki) close() int {
	close(c.entries)
	return <-c.done
}

// BenchmarkLokiWithPerRequest: a request-scoped logger (logger.With) that
// logs one line, as a handler does per request, against the same through
// slog.JSONHandler; the pusher is stuck, the queue large enough.
func BenchmarkLokiWithPerRequest(b *testing.B) {
	ctx := spanCtx()
	run := func(b *testing.B, h slog.Handler) {
		logger := slog.New(h)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			logRequestDone(ctx, logger.With("request_id", i))
		}
	}
	b.Run("Loki", func(b *testing.B) {
		release := make(chan struct{})
		defer close(release)
		f := newFakeLoki(b, holdAll(release))
		cfg := testLokiConfig(f.srv.URL)
		cfg.QueueSize = 1 << 18 // run with -benchtime=100000x or less
		cfg.QueueBytes = 1 << 30
		l := mustLoki(b, cfg)
		run(b, l)
		dropQueue(l)
	})
	b.Run("baseline/JSONHandler", func(b *testing.B) { run(b, slog.NewJSONHandler(io.Discard, nil)) })
}
