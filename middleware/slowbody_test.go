package middleware

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/inference"
)

// A client that sends its body at 1 byte a second held the connection and
// an http_server_active_requests slot for as long as it liked: the model is
// read from the body before the handler runs and nothing bounded that read
// in time. Now it is answered 408 within the bound (the handler never
// runs), recorded as a 408, and the active gauge goes back to 0.
func TestSlowBodyReleased(t *testing.T) {
	const bound = 300 * time.Millisecond
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(ModelFromJSONBody(0)), WithBodyReadTimeout(bound))
	var called atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		called.Store(true)
		_, _ = io.Copy(io.Discard, r.Body)
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model": "llama-3-8b", "messages": []}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte every 100 ms: the body would take 4 s
		for i := 0; i < len(body); i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()

	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("no response after %v: %v", took, err)
	}
	b, _ := io.ReadAll(resp.Body)
	t.Logf("answered %d after %v: %s", resp.StatusCode, took.Round(10*time.Millisecond), b)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	if took > bound+3*time.Second {
		t.Errorf("answered after %v, want within about %v", took, bound)
	}
	if !resp.Close {
		t.Error("the 408 does not close the connection")
	}
	if called.Load() {
		t.Error("the handler ran")
	}
	waitFor(t, func() bool { return testutil.ToFloat64(m.activeBy[methodIndex("POST")][0]) == 0 })
	if err := hasSeries(m.duration, "POST", UnmatchedRoute, "408"); err != nil {
		t.Error(err)
	}
}

// The read deadline covers only the model's read: a handler that reads the
// rest of the body later, and streams its answer for longer than the bound,
// is not cut.
func TestBodyReadTimeoutKeepsStreams(t *testing.T) {
	const bound = 200 * time.Millisecond
	m := New(WithInference(inference.NewMetrics()), WithModel(ModelFromJSONBody(64)), WithBodyReadTimeout(bound))
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * bound)
		b, err := io.ReadAll(r.Body) // 64 bytes replayed, the rest from the connection
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d %d\n\n", i, len(b))
			w.(http.Flusher).Flush()
			time.Sleep(bound)
		}
	})))
	defer srv.Close()
	body := `{"model": "m", "messages": "` + strings.Repeat("x", 200<<10) + `"}`
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v: %s", resp.StatusCode, err, got)
	}
	want := fmt.Sprintf("data: 0 %d\n\ndata: 1 %d\n\ndata: 2 %d\n\n", len(body), len(body), len(body))
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
