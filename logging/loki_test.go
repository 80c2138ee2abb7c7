package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/internal/testkit"
)

// testLokiConfig never sends on its own before Close (big batches, long wait)
// and backs off briefly.
func testLokiConfig(url string) LokiConfig {
	return LokiConfig{
		URL:        url,
		Labels:     map[string]string{"service_name": "api", "env": "test"},
		BatchWait:  time.Hour,
		MinBackoff: time.Millisecond,
		MaxBackoff: 2 * time.Millisecond,
		Fallback:   slog.NewTextHandler(io.Discard, nil),
	}
}

func mustLoki(t testing.TB, cfg LokiConfig) *Loki {
	t.Helper()
	l, err := NewLoki(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// stuckLoki is a Loki whose pushes are held until release is closed (see
// holdAll), one line a batch, with room for lines lines of up to 1 KiB:
// every line logged stays queued. The queue is twice that, so that it stays
// under half full, where a Handle would yield to the pusher for its first
// 100 ms (see yield): what the benchmarks built on it measure is Handle.
func stuckLoki(tb testing.TB, release chan struct{}, lines int) (*Loki, *fakeLoki) {
	tb.Helper()
	f := newFakeLoki(tb, holdAll(release))
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 1
	cfg.QueueSize = 2 * lines
	cfg.QueueBytes = 2 * lines << 10
	return mustLoki(tb, cfg), f
}

// dropQueue closes l with a context already done: what is queued is
// dropped, not pushed line by line.
func dropQueue(l *Loki) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = l.Close(ctx)
}

// noQueueFull fails a benchmark of enqueues that dropped lines instead.
func noQueueFull(tb testing.TB, l *Loki) {
	tb.Helper()
	if n := testutil.ToFloat64(l.core.drops[DropQueueFull]); n != 0 {
		tb.Fatalf("%v lines dropped: the benchmark measured drops, not enqueues", n)
	}
}

func closeLoki(t *testing.T, l *Loki) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// wantMetrics compares the Loki metrics with exposition text (no push in
// progress) and lints them.
func wantMetrics(t *testing.T, l *Loki, sent, pushErrors int, dropped map[string]int, queue int) {
	t.Helper()
	wantMetricsPushing(t, l, sent, pushErrors, dropped, queue, 0)
}

// wantMetricsPushing is wantMetrics with pushing lines in a push.
func wantMetricsPushing(t *testing.T, l *Loki, sent, pushErrors int, dropped map[string]int, queue, pushing int) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `# HELP logging_loki_dropped_lines_total Log lines dropped before Loki accepted them, by reason.
# TYPE logging_loki_dropped_lines_total counter
`)
	for _, r := range []string{DropClosed, DropEncode, DropQueueFull, DropRejected, DropRetriesExhausted, DropTooLarge} {
		fmt.Fprintf(&b, "logging_loki_dropped_lines_total{reason=%q} %d\n", r, dropped[r])
	}
	fmt.Fprintf(&b, `# HELP logging_loki_push_errors_total Failed push attempts to Loki (network errors and non-2xx answers), retried or not.
# TYPE logging_loki_push_errors_total counter
logging_loki_push_errors_total %d
# HELP logging_loki_pushing_lines Log lines handed to a push to Loki and not yet sent or dropped (being encoded, posted, or waiting to retry).
# TYPE logging_loki_pushing_lines gauge
logging_loki_pushing_lines %d
# HELP logging_loki_queue_length Log lines waiting in the queue to be batched and pushed to Loki.
# TYPE logging_loki_queue_length gauge
logging_loki_queue_length %d
# HELP logging_loki_sent_lines_total Log lines Loki accepted.
# TYPE logging_loki_sent_lines_total counter
logging_loki_sent_lines_total %d
`, pushErrors, pushing, queue, sent)
	if err := testutil.CollectAndCompare(l, strings.NewReader(b.String())); err != nil {
		t.Error(err)
	}
	testkit.Lint(t, l)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(l); err != nil {
		t.Errorf("register: %v", err)
	}
}

func TestLokiPush(t *testing.T) {
	tests := []struct {
		name       string
		cfg        func(*LokiConfig)
		wantType   string
		wantHeader map[string]string
	}{
		{"protobuf, bearer", func(c *LokiConfig) {
			c.BearerToken = "tok"
		}, "application/x-protobuf", map[string]string{"Authorization": "Bearer tok"}},
		{"json, basic auth, tenant", func(c *LokiConfig) {
			c.Encoding = EncodingJSON
			c.Username, c.Password = "u", "p"
			c.TenantID = "team-a"
			c.Headers = map[string]string{"X-Extra": "1"}
		}, "application/json", map[string]string{
			"Authorization": "Basic dTpw", "X-Scope-Orgid": "team-a", "X-Extra": "1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeLoki(t, nil)
			cfg := testLokiConfig(f.srv.URL + "/")
			tt.cfg(&cfg)
			l := mustLoki(t, cfg)
			logger := slog.New(l)
			logger.InfoContext(spanCtx(), "with span", "n", 1)
			logger.With("component", "x").WithGroup("g").Warn("no span", "k", "v")
			logger.Debug("below level")
			closeLoki(t, l)

			pushes := f.pushes()
			if len(pushes) != 1 {
				t.Fatalf("got %d pushes, want 1", len(pushes))
			}
			p := pushes[0]
			if got := p.header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			for k, v := range tt.wantHeader {
				if got := p.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if len(p.streams) != 1 || p.streams[0].labels != `{env="test", service_name="api"}` {
				t.Fatalf("streams = %+v, want one with {env=\"test\", service_name=\"api\"}", p.streams)
			}
			entries := p.streams[0].entries
			if len(entries) != 2 {
				t.Fatalf("got %d entries, want 2", len(entries))
			}
			var first, second map[string]any
			if err := json.Unmarshal([]byte(entries[0].line), &first); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(entries[1].line), &second); err != nil {
				t.Fatal(err)
			}
			if first["msg"] != "with span" || first["level"] != "INFO" || first["n"] != 1.0 {
				t.Errorf("first line = %s", entries[0].line)
			}
			if _, ok := first[TraceIDKey]; ok {
				t.Errorf("trace_id in the line, want it as metadata only: %s", entries[0].line)
			}
			if second["component"] != "x" || fmt.Sprint(second["g"]) != "map[k:v]" {
				t.Errorf("second line = %s", entries[1].line)
			}
			if got := entries[0].meta; got[TraceIDKey] != testTraceID || got[SpanIDKey] != testSpanID || len(got) != 2 {
				t.Errorf("first metadata = %v", got)
			}
			if entries[1].meta != nil {
				t.Errorf("second metadata = %v, want none", entries[1].meta)
			}
			if entries[0].ts.IsZero() || time.Since(entries[0].ts) > time.Hour {
				t.Errorf("timestamp = %v", entries[0].ts)
			}
			wantMetrics(t, l, 2, 0, nil, 0)
		})
	}
}

func TestLokiLevelLabel(t *testing.T) {
	for _, enc := range []string{EncodingProtobuf, EncodingJSON} {
		t.Run(enc, func(t *testing.T) {
			f := newFakeLoki(t, nil)
			cfg := testLokiConfig(f.srv.URL)
			cfg.Labels = map[string]string{"service_name": "api"}
			cfg.LevelLabel = true
			cfg.Level = slog.LevelDebug
			cfg.Encoding = enc
			l := mustLoki(t, cfg)
			logger := slog.New(l)
			logger.Info("a")
			logger.Error("b")
			logger.Info("c")
			logger.Log(context.Background(), slog.LevelInfo+2, "d")
			closeLoki(t, l)
			got := map[string]int{}
			for _, s := range f.pushes()[0].streams {
				got[s.labels] = len(s.entries)
			}
			want := map[string]int{
				`{level="info", service_name="api"}`:   2,
				`{level="error", service_name="api"}`:  1,
				`{level="info+2", service_name="api"}`: 1,
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("streams = %v, want %v", got, want)
			}
		})
	}
}

func TestLokiBatching(t *testing.T) {
	t.Run("by lines", func(t *testing.T) {
		f := newFakeLoki(t, nil)
		cfg := testLokiConfig(f.srv.URL)
		cfg.BatchLines = 2
		cfg.MaxInFlight = 1 // in order
		l := mustLoki(t, cfg)
		for i := range 5 {
			slog.New(l).Info("m", "i", i)
		}
		closeLoki(t, l)
		var sizes []int
		for _, p := range f.pushes() {
			sizes = append(sizes, len(p.streams[0].entries))
		}
		if fmt.Sprint(sizes) != "[2 2 1]" {
			t.Errorf("batch sizes = %v, want [2 2 1]", sizes)
		}
	})
	t.Run("by bytes", func(t *testing.T) {
		f := newFakeLoki(t, nil)
		cfg := testLokiConfig(f.srv.URL)
		cfg.BatchBytes = 300 // a line here is about 100 bytes
		l := mustLoki(t, cfg)
		for i := range 9 {
			slog.New(l).Info("m", "pad", strings.Repeat("x", 40), "i", i)
		}
		closeLoki(t, l)
		if n := len(f.pushes()); n < 3 || n > 5 {
			t.Errorf("got %d pushes for 9 lines of ~100 bytes in 300-byte batches", n)
		}
		if n := len(f.lines()); n != 9 {
			t.Errorf("got %d lines, want 9", n)
		}
	})
	t.Run("by time", func(t *testing.T) {
		f := newFakeLoki(t, nil)
		cfg := testLokiConfig(f.srv.URL)
		cfg.BatchWait = time.Millisecond
		l := mustLoki(t, cfg)
		slog.New(l).Info("alone")
		select {
		case <-f.pushed: // sent without Close: the batch wait ran out
		case <-time.After(time.Minute): // a hang guard, not a timing target
			t.Fatal("batch never sent")
		}
		closeLoki(t, l)
	})
}

func TestLokiRetries(t *testing.T) {
	tests := []struct {
		name         string
		respond      func(w http.ResponseWriter, r *http.Request, n int) bool
		maxRetries   int
		wantAttempts int
		wantSent     int
		wantDropped  map[string]int
	}{
		{"400 is never retried", statuses(400), 0, 1, 0, map[string]int{DropRejected: 3}},
		{"413 is never retried", statuses(413), 0, 1, 0, map[string]int{DropRejected: 3}},
		{"429 then 204", statuses(429), 0, 2, 3, nil},
		{"503, 500 then 204", statuses(503, 500), 0, 3, 3, nil},
		{"network errors then 204", hangUp(2), 0, 3, 3, nil},
		{"5xx past MaxRetries", statuses(503, 503, 503, 503), 2, 3, 0, map[string]int{DropRetriesExhausted: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeLoki(t, tt.respond)
			cfg := testLokiConfig(f.srv.URL)
			cfg.MaxRetries = tt.maxRetries
			l := mustLoki(t, cfg)
			for i := range 3 {
				slog.New(l).Info("m", "i", i)
			}
			closeLoki(t, l)
			if got := f.attemptCount(); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
			if got := len(f.lines()); got != tt.wantSent {
				t.Errorf("lines received = %d, want %d", got, tt.wantSent)
			}
			wantMetrics(t, l, tt.wantSent, tt.wantAttempts-min(1, tt.wantSent), tt.wantDropped, 0)
		})
	}
}

// TestLokiDownThenUp: Loki fails for a while, then recovers; lines logged
// meanwhile, within the queue bound, all arrive.
func TestLokiDownThenUp(t *testing.T) {
	for _, down := range []struct {
		name    string
		respond func(w http.ResponseWriter, r *http.Request, n int) bool
	}{
		{"503", statuses(503, 503, 503, 503, 503)},
		{"connection drops", hangUp(5)},
	} {
		t.Run(down.name, func(t *testing.T) {
			f := newFakeLoki(t, down.respond)
			cfg := testLokiConfig(f.srv.URL)
			cfg.QueueSize = 100
			cfg.BatchLines = 10
			cfg.MaxRetries = 50
			cfg.MaxInFlight = 1 // in order
			l := mustLoki(t, cfg)
			for i := range 100 {
				slog.New(l).Info("m", "i", i)
			}
			closeLoki(t, l)
			lines := f.lines()
			if len(lines) != 100 {
				t.Fatalf("received %d lines, want 100", len(lines))
			}
			for i, line := range lines {
				if !strings.Contains(line, fmt.Sprintf(`"i":%d}`, i)) {
					t.Fatalf("line %d = %s", i, line)
				}
			}
			wantMetrics(t, l, 100, 5, nil, 0)
		})
	}
}

// TestLokiNeverBlocks holds Loki's answer to the first push: Handle still
// returns at once, queueing up to QueueSize lines and dropping the rest.
func TestLokiNeverBlocks(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	f := newFakeLoki(t, holdFirst(arrived, release))
	var warnings bytes.Buffer
	cfg := testLokiConfig(f.srv.URL)
	cfg.BatchLines = 1
	cfg.QueueSize = 10
	cfg.MaxInFlight = 1 // the one push held holds them all
	cfg.Fallback = slog.NewTextHandler(&warnings, nil)
	l := mustLoki(t, cfg)
	logger := slog.New(l)

	logger.Info("first")
	<-arrived // the pusher is now stuck in the first push
	for i := range 15 {
		logger.Info("queued", "i", i) // 10 fit the queue, 5 are dropped
	}
	// 16 logged: the one being pushed, 10 in the queue, 5 dropped.
	wantMetricsPushing(t, l, 0, 0, map[string]int{DropQueueFull: 5}, 10, 1)
	if n := strings.Count(warnings.String(), "queue full"); n != 1 {
		t.Errorf("%d queue-full warnings, want 1 (rate-limited):\n%s", n, warnings.String())
	}
	close(release)
	closeLoki(t, l)
	if n := len(f.lines()); n != 11 {
		t.Errorf("received %d lines, want 11", n)
	}
	wantMetrics(t, l, 11, 0, map[string]int{DropQueueFull: 5}, 0)
}

func TestLokiCloseBoundedByContext(t *testing.T) {
	f := newFakeLoki(t, func(_ http.ResponseWriter, r *http.Request, _ int) bool {
		<-r.Context().Done() // Loki hangs
		return true
	})
	l := mustLoki(t, testLokiConfig(f.srv.URL))
	slog.New(l).Info("stuck")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close = %v, want the context's deadline error", err)
	}
	slog.New(l).Info("after close")
	if err := l.Close(context.Background()); err != nil {
		t.Errorf("second close = %v", err)
	}
	wantMetrics(t, l, 0, 1, map[string]int{DropClosed: 2}, 0)
}

func TestNewLokiValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     LokiConfig
		wantErr string
	}{
		{"empty URL", LokiConfig{}, "empty URL"},
		{"bad scheme", LokiConfig{URL: "ftp://127.0.0.1:3100"}, "scheme must be http or https"},
		{"no scheme", LokiConfig{URL: "127.0.0.1:3100"}, "logging: loki"},
		{"no host", LokiConfig{URL: "http://"}, "no host"},
		{"bad label", LokiConfig{URL: "http://127.0.0.1:3100", Labels: map[string]string{"service-name": "x"}}, "invalid label name"},
		{"level twice", LokiConfig{URL: "http://127.0.0.1:3100", Labels: map[string]string{"level": "x"}, LevelLabel: true}, `label "level"`},
		{"encoding", LokiConfig{URL: "http://127.0.0.1:3100", Encoding: "xml"}, "unknown encoding"},
		{"two auths", LokiConfig{URL: "http://127.0.0.1:3100", Username: "u", BearerToken: "t"}, "not both"},
		{"valid", LokiConfig{URL: "https://logs.example.com/loki/api/v1/push"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLoki(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewLoki = %v", err)
				}
				if l.core.pushURL != "https://logs.example.com/loki/api/v1/push" {
					t.Errorf("push URL = %s", l.core.pushURL)
				}
				if err := l.Close(context.Background()); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "logging: loki") {
				t.Errorf("NewLoki = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestLokiSlogtest(t *testing.T) {
	f := newFakeLoki(t, nil)
	var l *Loki
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		cfg := testLokiConfig(f.srv.URL)
		cfg.Encoding = EncodingJSON
		cfg.Labels = map[string]string{"test": strings.ReplaceAll(t.Name(), "/", "_")}
		l = mustLoki(t, cfg)
		return l
	}, func(t *testing.T) map[string]any {
		closeLoki(t, l)
		want := fmt.Sprintf(`{test=%q}`, strings.ReplaceAll(t.Name(), "/", "_"))
		var found []map[string]any
		for _, p := range f.pushes() {
			for _, s := range p.streams {
				if s.labels != want {
					continue
				}
				for _, e := range s.entries {
					var m map[string]any
					if err := json.Unmarshal([]byte(e.line), &m); err != nil {
						t.Fatal(err)
					}
					found = append(found, m)
				}
			}
		}
		if len(found) != 1 {
			t.Fatalf("found %d lines for %s, want 1", len(found), want)
		}
		return found[0]
	})
}

// BenchmarkLokiHandle measures what a caller pays per record: formatting and
// enqueueing, while the pusher is stuck on a Loki that does not answer.
// Baseline: the JSON handler alone, writing to io.Discard.
func BenchmarkLokiHandle(b *testing.B) {
	ctx := spanCtx()
	log := func(l *slog.Logger) {
		l.LogAttrs(ctx, slog.LevelInfo, "request done",
			slog.String("route", "/v1/chat/completions"), slog.Int("status", 200), slog.Duration("took", time.Millisecond))
	}
	b.Run("Loki", func(b *testing.B) {
		release := make(chan struct{})
		l, _ := stuckLoki(b, release, b.N+1)
		logger := slog.New(l)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			log(logger)
		}
		b.StopTimer()
		close(release)
		noQueueFull(b, l)
	})
	b.Run("baseline/JSONHandler", func(b *testing.B) {
		logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			log(logger)
		}
	})
}

// BenchmarkLokiPush measures end-to-end throughput to an httptest Loki that
// answers 204 once it has read the body: b.N lines logged, then Close.
func BenchmarkLokiPush(b *testing.B) {
	for _, enc := range []string{EncodingProtobuf, EncodingJSON} {
		b.Run(enc, func(b *testing.B) {
			var lines int
			f := newFakeLoki(b, func(w http.ResponseWriter, r *http.Request, _ int) bool {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusNoContent)
				return true
			})
			cfg := testLokiConfig(f.srv.URL)
			cfg.Encoding = enc
			cfg.QueueSize = b.N + 1
			cfg.QueueBytes = (b.N + 1) << 10
			l := mustLoki(b, cfg)
			logger := slog.New(l)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				logger.InfoContext(spanCtx(), "request done", "route", "/v1/chat/completions", "status", 200, "i", i)
			}
			if err := l.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			lines = int(testutil.ToFloat64(l.core.sentLines))
			if lines != b.N {
				b.Fatalf("sent %d lines, want %d", lines, b.N)
			}
			b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
