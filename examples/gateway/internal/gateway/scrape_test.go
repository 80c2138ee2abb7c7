package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modeltel/modeltel/examples/gateway/internal/gateway"
	"github.com/modeltel/modeltel/internal/testkit"
)

// Every scrape taken while requests go through the gateway counts each
// request that reached the upstream before it as active or as done (in
// gateway_overhead_seconds, observed as the request ends), and never more
// requests timed than counted: a request raises gateway_upstream_active_requests
// and gateway_upstream_requests_total first and lowers the gauge last, and
// Collect reads the gauge first and the counter last.
func TestScrapeConsistent(t *testing.T) {
	var begun atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"m","object":"model"}]}`)
			return
		}
		begun.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer up.Close()
	e := newEnv(t, gateway.Config{Upstreams: []string{up.URL}})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer c.CloseIdleConnections()

	var errs atomic.Int64
	stop := testkit.Hammer(8, func() {
		resp, err := c.Post(e.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[]}`))
		if err != nil {
			errs.Add(1)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	defer stop()
	scrapes := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && !t.Failed(); scrapes++ {
		before := float64(begun.Load())
		mfs, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		active, requests := testkit.Total(mfs, "gateway_upstream_active_requests"), testkit.Total(mfs, "gateway_upstream_requests_total")
		if timed := testkit.Total(mfs, "gateway_overhead_seconds"); active+timed < before {
			t.Fatalf("scrape %d: %v requests active + %v done < %v that reached the upstream before it", scrapes, active, timed, before)
		}
		if timed := testkit.Total(mfs, "gateway_upstream_duration_seconds"); timed > requests {
			t.Fatalf("scrape %d: %v upstream requests timed > %v counted", scrapes, timed, requests)
		}
	}
	if begun.Load() == 0 || errs.Load() > 0 {
		t.Fatalf("%d requests reached the upstream, %d failed", begun.Load(), errs.Load())
	}
}
