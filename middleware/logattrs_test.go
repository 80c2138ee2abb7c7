package middleware

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestAddLogAttrs(t *testing.T) {
	tests := []struct {
		name      string
		opts      func(l *slog.Logger) []Option
		wantAdded bool
		wantLines int
	}{
		{"logger", func(l *slog.Logger) []Option { return []Option{WithLogger(l)} }, true, 1},
		{"logger and tracing off", func(l *slog.Logger) []Option { return []Option{WithLogger(l), WithTracerProvider(nil)} }, true, 1},
		{"no logger", func(*slog.Logger) []Option { return nil }, false, 0},
		{"filtered", func(l *slog.Logger) []Option {
			return []Option{WithLogger(l), WithFilter(func(*http.Request) bool { return false })}
		}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			m := New(tt.opts(slog.New(slog.NewJSONHandler(&buf, nil)))...)
			var added bool
			var reqCtx context.Context
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqCtx = r.Context()
				added = AddLogAttrs(r.Context(), slog.String("error", "bad json"), slog.String("error_type", "invalid_json"))
				w.WriteHeader(http.StatusBadRequest)
			}))
			serve(h, "POST", "/v1/chat/completions", strings.NewReader("{"))
			if added != tt.wantAdded {
				t.Errorf("AddLogAttrs = %v, want %v", added, tt.wantAdded)
			}
			// The line is written: later attributes are refused, not lost
			// silently.
			if AddLogAttrs(reqCtx, slog.String("late", "x")) {
				t.Error("AddLogAttrs after the handler returned = true")
			}
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != tt.wantLines {
				t.Fatalf("log = %q, want %d lines", buf.String(), tt.wantLines)
			}
			if tt.wantLines == 0 {
				return
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
				t.Fatal(err)
			}
			if line["msg"] != "http request" || line["status"] != float64(400) || line["level"] != "WARN" ||
				line["error"] != "bad json" || line["error_type"] != "invalid_json" || line["late"] != nil {
				t.Errorf("log line = %v", line)
			}
		})
	}
	if AddLogAttrs(context.Background(), slog.Int("n", 1)) {
		t.Error("AddLogAttrs outside a request = true")
	}
}
