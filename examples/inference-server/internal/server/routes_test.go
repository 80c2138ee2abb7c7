package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/middleware"
)

// TestUnknownRoutes checks that a path the API does not serve (404) and a
// method a path does not allow (405, with Allow) are answered in OpenAI's
// error shape, as api.openai.com words them, and that the served routes still
// answer.
func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	const hint = " (HINT: Perhaps you meant to use a different HTTP method?)"
	tests := []struct {
		method, path string
		status       int
		allow        string // the Allow header, 405 only
		message      string // "" for a served route
	}{
		{"POST", "/v1/images/generations", 404, "", "Invalid URL (POST /v1/images/generations)"},
		{"GET", "/v2/x", 404, "", "Invalid URL (GET /v2/x)"},
		{"GET", "/", 404, "", "Invalid URL (GET /)"},
		{"DELETE", "/v1/models/fake-llama-3-8b", 405, "GET, HEAD", "Not allowed to DELETE on /v1/models/fake-llama-3-8b. (HINT: Perhaps you meant to use a different HTTP method?)"},
		{"POST", "/v1/chat/completions/", 404, "", "Invalid URL (POST /v1/chat/completions/)"},
		{"GET", "/v1/chat/completions", 405, "POST", "Not allowed to GET on /v1/chat/completions." + hint},
		{"PUT", "/v1/chat/completions", 405, "POST", "Not allowed to PUT on /v1/chat/completions." + hint},
		{"POST", "/v1/models", 405, "GET, HEAD", "Not allowed to POST on /v1/models." + hint},
		{"DELETE", "/healthz", 405, "GET, HEAD", "Not allowed to DELETE on /healthz." + hint},
		{"GET", "/v1/models", 200, "", ""},
		{"HEAD", "/v1/models", 200, "", ""},
		{"GET", "/healthz", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body io.Reader
			if tt.method == http.MethodPost {
				body = strings.NewReader(`{"model":"fake-llama-3-8b","messages":[{"role":"user","content":"hi"}]}`)
			}
			req, err := http.NewRequest(tt.method, e.http.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.http.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, b)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if tt.message == "" {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var got map[string]map[string]any
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			want := map[string]any{"message": tt.message, "type": "invalid_request_error", "param": nil, "code": nil}
			if fmt.Sprint(got["error"]) != fmt.Sprint(want) || len(got) != 1 {
				t.Errorf("body = %v, want {error: %v}", got, want)
			}
		})
	}
}

// TestUnknownRoutesBounded sends a thousand distinct unknown paths through the
// middleware: they are one http_route series, not a thousand.
func TestUnknownRoutesBounded(t *testing.T) {
	srv := New(Config{Models: []*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{})}})
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	mw := middleware.New()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(mw)
	h := mw.Handler(srv.Handler())
	for i := range 1000 {
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodPost
		}
		r := httptest.NewRequest(method, fmt.Sprintf("/v1/unknown-%d/x%d", i, i*7919), nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNotFound {
			t.Fatalf("%s %s: status %d", method, r.URL.Path, w.Code)
		}
	}
	// And a 405 is recorded under the route it was sent to.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/chat/completions", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/chat/completions: status %d", w.Code)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type series struct{ method, route, status string }
	got := map[series]uint64{}
	for _, m := range find(mfs, "http_server_request_duration_seconds").GetMetric() {
		var s series
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "http_request_method":
				s.method = l.GetValue()
			case "http_route":
				s.route = l.GetValue()
			case "http_response_status_code":
				s.status = l.GetValue()
			}
		}
		got[s] = m.GetHistogram().GetSampleCount()
	}
	want := map[series]uint64{
		{"GET", "/{path...}", "404"}:           500,
		{"POST", "/{path...}", "404"}:          500,
		{"GET", "/v1/chat/completions", "405"}: 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("http_server_request_duration_seconds series = %v, want %v", got, want)
	}
}
