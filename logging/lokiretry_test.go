package logging

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

// TestLokiRetryAfter: a Retry-After header, in seconds or as an HTTP-date
// (RFC 9110), replaces the backoff. The backoff here is an hour, so a retry
// that comes before Close's deadline was paced by the header.
func TestLokiRetryAfter(t *testing.T) {
	tests := []struct {
		name  string
		value func() string
	}{
		{"delay seconds", func() string { return "0" }},
		{"HTTP-date in the past", func() string { return time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat) }},
		{"HTTP-date now", func() string { return time.Now().UTC().Format(http.TimeFormat) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeLoki(t, func(w http.ResponseWriter, _ *http.Request, n int) bool {
				if n == 0 {
					w.Header().Set("Retry-After", tt.value())
					w.WriteHeader(http.StatusTooManyRequests)
					return true
				}
				return false
			})
			cfg := testLokiConfig(f.srv.URL)
			cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
			l := mustLoki(t, cfg)
			slog.New(l).Info("m")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.Close(ctx); err != nil {
				t.Fatalf("close = %v: the retry waited for the backoff, not Retry-After", err)
			}
			if got := len(f.lines()); got != 1 {
				t.Errorf("received %d lines, want 1", got)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"abc", 0, false},
		{"-3", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"99999999999999999999", 0, false},
		{"Sun, 01 Jun 2025 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 01-Jun-25 12:00:30 GMT", 30 * time.Second, true},
		{"Sun Jun  1 12:00:30 2025", 30 * time.Second, true},
		{"Sun, 01 Jun 2025 11:00:00 GMT", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
