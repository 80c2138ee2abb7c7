package gateway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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
		paced := bytes.Contains(body, []byte(`"paced"`))
		for range n {
			buf = append(buf[:0], `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","t":`...)
			buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
			buf = append(buf, `,"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}`+"\n\n"...)
			_, _ = w.Write(buf)
			_ = rc.Flush()
			if paced {
				time.Sleep(time.Millisecond)
			}
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

// readStream reads one streamed answer of model and appends each event's
// delay (read time less write time) to lat.
func readStream(c *http.Client, url, model string, lat []time.Duration) ([]time.Duration, error) {
	body := `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"hello"}]}`
	resp, err := c.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
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

// benchStreams runs streamed completions of model, 50 at a time, against
// url and reports the p50 and p99 delay of an event.
func benchStreams(b *testing.B, url, model string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	defer c.CloseIdleConnections()
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 64*benchEvents)
		for pb.Next() {
			var err error
			if lat, err = readStream(c, url, model, lat); err != nil {
				b.Error(err)
				return
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-event-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-event-µs")
	}
}

// BenchmarkStreamDirect is the baseline: streamed completions (64 events)
// straight to the upstream, 50 concurrent.
func BenchmarkStreamDirect(b *testing.B) {
	benchStreams(b, benchUpstream(b, nil).URL, "bench")
}

// BenchmarkStreamGateway is the same through the gateway with the SDK's
// telemetry as main wires it (metrics, response accounting, spans that
// sample nothing, request logs discarded).
func BenchmarkStreamGateway(b *testing.B) {
	e := newEnv(b, gateway.Config{Upstreams: []string{benchUpstream(b, nil).URL}})
	benchStreams(b, e.srv.URL, "bench")
}

// BenchmarkPacedDirect is the latency baseline: 50 concurrent streams whose
// upstream writes an event every millisecond (a fast decoder), straight to
// it; p99-event-µs is the delay from the upstream's write to the client's
// read.
func BenchmarkPacedDirect(b *testing.B) {
	benchStreams(b, benchUpstream(b, nil).URL, "paced")
}

// BenchmarkPacedGateway is the same through the gateway: the difference of
// the event delays is the latency the gateway adds per event.
func BenchmarkPacedGateway(b *testing.B) {
	e := newEnv(b, gateway.Config{Upstreams: []string{benchUpstream(b, nil).URL}})
	benchStreams(b, e.srv.URL, "paced")
	if b.Failed() {
		mfs, _ := e.reg.Gather()
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "gateway_upstream_errors") || mf.GetName() == "http_server_request_duration_seconds" {
				for _, m := range mf.GetMetric() {
					b.Log(mf.GetName(), m.GetLabel(), m.GetCounter().GetValue(), m.GetHistogram().GetSampleCount())
				}
			}
		}
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
