package logging

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// fakeLoki is an httptest Loki push endpoint that decodes what it receives.
type fakeLoki struct {
	srv *httptest.Server

	mu       sync.Mutex
	reqs     []gotPush
	attempts int
	// respond, when set, answers attempt n (from 0) itself and reports
	// whether it did; otherwise the answer is 204.
	respond func(w http.ResponseWriter, r *http.Request, n int) bool
	pushed  chan struct{} // one value per decoded push, when not nil
}

type gotPush struct {
	header  http.Header
	streams []gotStream
}

type gotStream struct {
	labels  string
	entries []gotEntry
}

type gotEntry struct {
	ts   time.Time
	line string
	meta map[string]string
}

func newFakeLoki(t testing.TB, respond func(w http.ResponseWriter, r *http.Request, n int) bool) *fakeLoki {
	t.Helper()
	f := &fakeLoki{respond: respond, pushed: make(chan struct{}, 1000)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLoki) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := f.attempts
	f.attempts++
	f.mu.Unlock()
	if r.URL.Path != "/loki/api/v1/push" || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	// Read the body first: only then does the server notice a client that
	// goes away and cancel r.Context().
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f.respond != nil && f.respond(w, r, n) {
		return
	}
	streams, err := decodePush(r.Header.Get("Content-Type"), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, gotPush{header: r.Header.Clone(), streams: streams})
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	select {
	case f.pushed <- struct{}{}:
	default:
	}
}

func decodePush(contentType string, body []byte) ([]gotStream, error) {
	var out []gotStream
	if contentType == "application/json" {
		var req struct {
			Streams []struct {
				Stream map[string]string `json:"stream"`
				Values [][]json.RawMessage
			} `json:"streams"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		for _, s := range req.Streams {
			gs := gotStream{labels: labelString(s.Stream, "")}
			for _, v := range s.Values {
				var ts, line string
				var meta map[string]string
				if err := json.Unmarshal(v[0], &ts); err != nil {
					return nil, err
				}
				if err := json.Unmarshal(v[1], &line); err != nil {
					return nil, err
				}
				if len(v) > 2 {
					if err := json.Unmarshal(v[2], &meta); err != nil {
						return nil, err
					}
				}
				ns, err := strconv.ParseInt(ts, 10, 64)
				if err != nil {
					return nil, err
				}
				gs.entries = append(gs.entries, gotEntry{ts: time.Unix(0, ns), line: line, meta: meta})
			}
			out = append(out, gs)
		}
		return out, nil
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, err
	}
	var req push.PushRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, err
	}
	for _, s := range req.Streams {
		gs := gotStream{labels: s.Labels}
		for _, e := range s.Entries {
			var meta map[string]string
			for _, m := range e.StructuredMetadata {
				if meta == nil {
					meta = map[string]string{}
				}
				meta[m.Name] = m.Value
			}
			gs.entries = append(gs.entries, gotEntry{ts: e.Timestamp, line: e.Line, meta: meta})
		}
		out = append(out, gs)
	}
	return out, nil
}

func (f *fakeLoki) pushes() []gotPush {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gotPush(nil), f.reqs...)
}

func (f *fakeLoki) attemptCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

// lines returns every line received, in order.
func (f *fakeLoki) lines() []string {
	var out []string
	for _, p := range f.pushes() {
		for _, s := range p.streams {
			for _, e := range s.entries {
				out = append(out, e.line)
			}
		}
	}
	return out
}

// statuses answers attempt n with codes[n] while n < len(codes).
func statuses(codes ...int) func(w http.ResponseWriter, r *http.Request, n int) bool {
	return func(w http.ResponseWriter, _ *http.Request, n int) bool {
		if n < len(codes) {
			w.WriteHeader(codes[n])
			return true
		}
		return false
	}
}

// holdFirst holds the answer to the first push, closing arrived once it is
// in and answering once release is closed (or the client gives up); the
// pushes after it are accepted.
func holdFirst(arrived, release chan struct{}) func(w http.ResponseWriter, r *http.Request, n int) bool {
	return func(_ http.ResponseWriter, r *http.Request, n int) bool {
		if n == 0 {
			close(arrived)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return false
	}
}

// slowFlaky answers every push after a millisecond: 503 to the attempts
// whose number is rem modulo every, accepted otherwise (a slow Loki that
// fails some pushes, so batches wait to retry).
func slowFlaky(every, rem int) func(w http.ResponseWriter, r *http.Request, n int) bool {
	return func(w http.ResponseWriter, _ *http.Request, n int) bool {
		time.Sleep(time.Millisecond)
		if n%every == rem {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
}

// holdAll holds the answer to every push until release is closed (or the
// client gives up), then answers 200 without recording it: a stuck
// backend, behind which every line stays queued.
func holdAll(release chan struct{}) func(w http.ResponseWriter, r *http.Request, n int) bool {
	return func(_ http.ResponseWriter, r *http.Request, _ int) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}
}

// hangUp drops the connection of the first n attempts: a network error.
func hangUp(n int) func(w http.ResponseWriter, r *http.Request, i int) bool {
	return func(w http.ResponseWriter, _ *http.Request, i int) bool {
		if i >= n {
			return false
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}
}
