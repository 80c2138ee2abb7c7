package logging

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

type panicTransport struct{}

func (panicTransport) RoundTrip(*http.Request) (*http.Response, error) { panic("transport bug") }

// A panic in the user's HTTP client (a custom RoundTripper, say) is a failed
// push, retried and then counted as dropped: it never kills the process
// from the pusher's goroutine.
func TestLokiClientPanics(t *testing.T) {
	var warnings bytes.Buffer
	cfg := testLokiConfig("http://127.0.0.1:1")
	cfg.Client = &http.Client{Transport: panicTransport{}}
	cfg.MaxRetries = 2
	cfg.Fallback = slog.NewTextHandler(&warnings, nil)
	l := mustLoki(t, cfg)
	slog.New(l).Info("one")
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantMetrics(t, l, 0, 3, map[string]int{DropRetriesExhausted: 1}, 0)
	if !strings.Contains(warnings.String(), "transport bug") {
		t.Errorf("warning does not name the panic: %q", warnings.String())
	}
}
