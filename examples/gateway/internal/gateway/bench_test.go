package gateway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modeltel/modeltel/examples/gateway/internal/gateway"
)

const benchEvents = 64

// benchUpstream streams benchEvents chat chunks per request, each stamped
// with the time it was written, then the usage and [DONE]. A request whose
// model is "hold" gets one event and is held open until release closes.
func benchUpstream(b testing.TB, release chan struct{}) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"bench","object":"model"},{"id":"paced","object":"model"},{"id":"hold","object":"model"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		buf := make([]byte, 0, 256)
		n := benchEvents
		if bytes.Contains(body, []byte(`"hold"`)) {
			n = 1
		}
		var gap time.Duration
		if bytes.Contains(body, []byte(`"paced"`)) {
			gap = time.Millisecond
		}
		if v := r.Header.Get("X-Bench-Gap"); v != "" {
			gap, _ = time.ParseDuration(v)
		}
		for i := range n {
			if i > 0 && gap > 0 {
				time.Sleep(gap)
			}
			// The write time goes last, where it leaves the chunks' start
			// the same, as a real stream's is.
			buf = append(buf[:0], `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}],"t":`...)
			buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
			buf = append(buf, "}\n\n"...)
			_, _ = w.Write(buf)
			_ = rc.Flush()
		}
		if n == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, `data: {"id":"chatcmpl-bench","model":"bench","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":64,"total_tokens":72}}`+"\n\ndata: [DONE]\n\n")
	})
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return srv
}

// readStream reads one streamed answer of model, whose events the upstream
// writes gap apart, and appends each event's delay (read time less write
// time) to lat.
func readStream(c *http.Client, url, model string, gap time.Duration, lat []time.Duration) ([]time.Duration, error) {
	body := `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"hello"}]}`
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return lat, err
	}
	req.Header.Set("Content-Type", "application/json")
	if gap > 0 {
		req.Header.Set("X-Bench-Gap", gap.String())
	}
	resp, err := c.Do(req)
	if err != nil {
		return lat, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	events := 0
	for sc.Scan() {
		line := sc.Bytes()
		i := bytes.Index(line, []byte(`"t":`))
		if i < 0 {
			continue
		}
		j := i + 4
		for j < len(line) && line[j] >= '0' && line[j] <= '9' {
			j++
		}
		ns, _ := strconv.ParseInt(string(line[i+4:j]), 10, 64)
		lat = append(lat, time.Duration(time.Now().UnixNano()-ns))
		events++
	}
	if err := sc.Err(); err != nil {
		return lat, fmt.Errorf("after %d events: %w", events, err)
	}
	if events != benchEvents {
		return lat, fmt.Errorf("%d events (status %d)", events, resp.StatusCode)
	}
	return lat, nil
}

// roundStats is what a round of streams measured: its wall time (from the
// first request to the last stream's end), the process's CPU time, mallocs
// and heap bytes allocated (client, upstream and, through the gateway, the
// gateway).
type roundStats struct {
	wall, cpu      time.Duration
	mallocs, bytes uint64
}

func (s *roundStats) add(o roundStats) {
	s.wall, s.cpu, s.mallocs, s.bytes = s.wall+o.wall, s.cpu+o.cpu, s.mallocs+o.mallocs, s.bytes+o.bytes
}

// round runs n streams at once against url, each of benchEvents events
// gap apart, and appends the events' delays to lat.
func round(b *testing.B, c *http.Client, url string, n int, gap time.Duration, lat []time.Duration) (roundStats, []time.Duration) {
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu := cpuNanos()
	lats := make([][]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			var err error
			if lats[i], err = readStream(c, url, "bench", gap, make([]time.Duration, 0, benchEvents)); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	st := roundStats{wall: time.Since(start), cpu: time.Duration(cpuNanos() - cpu)}
	runtime.ReadMemStats(&ms1)
	st.mallocs, st.bytes = ms1.Mallocs-ms0.Mallocs, ms1.TotalAlloc-ms0.TotalAlloc
	for _, l := range lats {
		lat = append(lat, l...)
	}
	return st, lat
}

// BenchmarkOverhead is the gateway's overhead on streamed completions: each
// iteration runs 50 concurrent streams of 64 events, gap apart, straight to
// the upstream and then through the gateway (with the SDK's telemetry as
// newEnv wires it), in turn, so that the machine's other load falls on both
// alike. It reports the wall time of a round either way and their ratio
// (wall-ratio; the goal: under 1.05), the delay of an event from the
// upstream's write to the client's read (p50, p99) either way and the p99
// added (the goal: under 1 ms), the process's CPU time per event direct and
// added by the gateway, the mallocs and bytes allocated per stream either
// way (the difference is the gateway's), and the connections the upstream
// accepted per round (0: both paths keep theirs). gap=0 is CPU-bound: the
// client, gateway and upstream share the machine's cores and the gateway
// doubles the socket work, so there the ratio measures CPU cost, not delay.
func BenchmarkOverhead(b *testing.B) {
	const streams = 50
	for _, gap := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		b.Run("gap="+gap.String(), func(b *testing.B) {
			up := benchUpstream(b, nil)
			var upConns atomic.Int64
			up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					upConns.Add(1)
				}
			}
			e := newEnv(b, gateway.Config{Upstreams: []string{up.URL}})
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * streams}}
			defer c.CloseIdleConnections()
			// Warm both paths' connections and pools.
			round(b, c, up.URL, streams, 0, nil)
			round(b, c, e.srv.URL, streams, 0, nil)
			var d, g roundStats
			var dLat, gLat []time.Duration
			conns0 := upConns.Load()
			for b.Loop() {
				st, l := round(b, c, up.URL, streams, gap, dLat)
				d.add(st)
				dLat = l
				st, l = round(b, c, e.srv.URL, streams, gap, gLat)
				g.add(st)
				gLat = l
			}
			if b.Failed() || len(dLat) == 0 || len(gLat) == 0 {
				return
			}
			slices.Sort(dLat)
			slices.Sort(gLat)
			q := func(l []time.Duration, f float64) float64 { return float64(l[int(f*float64(len(l)-1))].Microseconds()) }
			n := float64(b.N)
			per := n * streams
			b.ReportMetric(float64(d.wall.Milliseconds())/n, "direct-ms/round")
			b.ReportMetric(float64(g.wall.Milliseconds())/n, "gateway-ms/round")
			b.ReportMetric(float64(g.wall)/float64(d.wall), "wall-ratio")
			b.ReportMetric(q(dLat, 0.5), "direct-p50-µs")
			b.ReportMetric(q(gLat, 0.5), "gateway-p50-µs")
			b.ReportMetric(q(dLat, 0.99), "direct-p99-µs")
			b.ReportMetric(q(gLat, 0.99), "gateway-p99-µs")
			b.ReportMetric(q(gLat, 0.99)-q(dLat, 0.99), "added-p99-µs")
			b.ReportMetric(float64(d.cpu)/1e3/per/benchEvents, "direct-cpu-µs/event")
			b.ReportMetric(float64(g.cpu-d.cpu)/1e3/per/benchEvents, "added-cpu-µs/event")
			b.ReportMetric(float64(d.mallocs)/per, "direct-allocs/stream")
			b.ReportMetric(float64(g.mallocs)/per, "gateway-allocs/stream")
			b.ReportMetric(float64(d.bytes)/per, "direct-B/stream")
			b.ReportMetric(float64(g.bytes)/per, "gateway-B/stream")
			b.ReportMetric(float64(upConns.Load()-conns0)/n, "upstream-conns/round")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkOpenStreamMemory reports the heap held per open stream: 200
// streams held open after their first event, through the gateway, less the
// same straight to the upstream (the client's and upstream's share). It
// measures once per run, whatever b.N; -benchtime 1x.
func BenchmarkOpenStreamMemory(b *testing.B) {
	const n = 200
	measure := func(url string, release chan struct{}) float64 {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
		defer c.CloseIdleConnections()
		before := heap()
		var bodies []io.ReadCloser
		for range n {
			resp, err := c.Post(url+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"hold","stream":true}`))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				b.Fatal(err)
			}
			bodies = append(bodies, resp.Body)
		}
		after := heap()
		close(release)
		for _, body := range bodies {
			_, _ = io.Copy(io.Discard, body)
			body.Close()
		}
		return float64(after-before) / n
	}
	// One measurement, whatever b.N.
	rel := make(chan struct{})
	direct := measure(benchUpstream(b, rel).URL, rel)
	rel = make(chan struct{})
	e := newEnv(b, gateway.Config{Upstreams: []string{benchUpstream(b, rel).URL}})
	through := measure(e.srv.URL, rel)
	b.ReportMetric(direct, "direct-B/stream")
	b.ReportMetric(through, "gateway-B/stream")
	b.ReportMetric(through-direct, "added-B/stream")
}

func heap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse) + int64(ms.StackInuse)
}
