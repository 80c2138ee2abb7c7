package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/syncbuf"
	"github.com/modeltel/modeltel/middleware"
)

// logLines returns the JSON log lines written to b so far.
func logLines(t *testing.T, b *syncbuf.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestOneLogLinePerRequest sends one request at a time through the server and
// the middleware sharing one logger, as main wires them: each request is one
// line, the middleware's, carrying the handler's detail (the error behind a
// failure, the tokens of a completion). Without a middleware that logs, the
// server logs the line itself.
func TestOneLogLinePerRequest(t *testing.T) {
	const chat = "/v1/chat/completions"
	tests := []struct {
		name, method, path, body string
		cancel                   bool // the client is gone before the model runs
		status                   float64
		level                    string
		attrs                    map[string]any // attributes the line must carry
		errorContains            string
	}{
		{name: "bad json", method: "POST", path: chat, body: `{"model":`, status: 400, level: "WARN",
			attrs: map[string]any{"error_type": "invalid_json"}, errorContains: "could not parse the JSON body"},
		{name: "unknown model", method: "POST", path: chat, body: `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`,
			status: 404, level: "WARN", attrs: map[string]any{"error_type": "model_not_found"}, errorContains: "`gpt-9` does not exist"},
		{name: "too many tokens", method: "POST", path: chat, body: `{"model":"fake-llama-3-8b","max_tokens":65,"messages":[{"role":"user","content":"hi"}]}`,
			status: 400, level: "WARN", attrs: map[string]any{"error_type": "invalid_value"}, errorContains: "Invalid 'max_tokens': 65"},
		{name: "unknown path", method: "POST", path: "/v1/images/generations", body: `{}`, status: 404, level: "WARN",
			attrs: map[string]any{"error_type": "invalid_request_error"}, errorContains: "Invalid URL (POST /v1/images/generations)"},
		{name: "wrong method", method: "GET", path: chat, status: 405, level: "WARN",
			attrs: map[string]any{"error_type": "invalid_request_error"}, errorContains: "Not allowed to GET"},
		{name: "model run fails (client gone)", method: "POST", path: chat, cancel: true,
			body:   `{"model":"fake-llama-3-8b","messages":[{"role":"user","content":"hi"}]}`,
			status: middleware.StatusClientClosedRequest, level: "WARN", errorContains: "context canceled"},
		{name: "completion", method: "POST", path: chat, body: `{"model":"fake-llama-3-8b","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`,
			status: 200, level: "INFO", attrs: map[string]any{"completion_tokens": float64(3), "finish_reason": "length", "stream": false}},
	}
	for _, withMiddleware := range []bool{true, false} {
		for _, tt := range tests {
			name := tt.name
			if !withMiddleware {
				name = "server alone/" + name
			}
			t.Run(name, func(t *testing.T) {
				var logs syncbuf.Buffer
				logger := slog.New(slog.NewJSONHandler(&logs, nil))
				// TokensPerSecond: the model waits on the context, so a
				// canceled request fails in the model run.
				models := []*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{TokensPerSecond: 1e6})}
				srv := New(Config{Models: models, MaxTokens: 64, Logger: logger})
				if err := srv.Load(context.Background()); err != nil {
					t.Fatal(err)
				}
				h := srv.Handler()
				if withMiddleware {
					inf := inference.NewMetrics()
					h = middleware.New(middleware.WithLogger(logger), middleware.WithTracerProvider(nil),
						middleware.WithInference(inf), middleware.WithModel(ModelFunc(models))).Handler(h)
				}
				logs.Reset() // not the model loads
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tt.cancel {
					cancel()
				}
				r := httptest.NewRequestWithContext(ctx, tt.method, tt.path, strings.NewReader(tt.body))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r) // synchronous: every line is written when it returns

				lines := logLines(t, &logs)
				if len(lines) != 1 {
					t.Fatalf("%d log lines, want 1:\n%v", len(lines), lines)
				}
				line := lines[0]
				if withMiddleware && line["msg"] != "http request" {
					t.Errorf("msg = %v, want the middleware's line", line["msg"])
				}
				wantStatus := tt.status
				if !withMiddleware && tt.cancel {
					wantStatus = 0 // no answer: the server alone does not know a status
				}
				if got, _ := line["status"].(float64); got != wantStatus {
					t.Errorf("status = %v, want %v", line["status"], wantStatus)
				}
				if line["level"] != tt.level {
					t.Errorf("level = %v, want %v", line["level"], tt.level)
				}
				for k, v := range tt.attrs {
					if line[k] != v {
						t.Errorf("%s = %v, want %v (line %v)", k, line[k], v, line)
					}
				}
				errText, _ := line["error"].(string)
				if tt.errorContains == "" && line["error"] != nil || !strings.Contains(errText, tt.errorContains) {
					t.Errorf("error = %v, want it to contain %q", line["error"], tt.errorContains)
				}
				if tt.status == 200 && w.Code != http.StatusOK {
					t.Errorf("response status %d", w.Code)
				}
			})
		}
	}
}
