// Command amwebhook is the test's own Alertmanager webhook receiver for `make e2e-fleet`: it records every
// notification it is sent, with the receiver (the URL path) and the time, and serves them back as JSON so
// the test can assert what was routed where, how often, and what was not sent at all.
//
//	amwebhook --listen 127.0.0.1:9197
//	POST /<receiver>       Alertmanager's webhook payload (version 4); answered 200
//	GET  /notifications    [{"receiver_path": "serving-pager", "received": "...", "payload": {...}}, ...]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

type notification struct {
	Path     string          `json:"receiver_path"`
	Received time.Time       `json:"received"`
	Payload  json.RawMessage `json:"payload"`
}

type store struct {
	mu  sync.Mutex
	all []notification
}

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/notifications":
		s.mu.Lock()
		out, err := json.Marshal(s.all)
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	case r.Method == http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil || !json.Valid(body) {
			http.Error(w, "want an Alertmanager webhook payload (JSON)", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.all = append(s.all, notification{Path: strings.Trim(r.URL.Path, "/"), Received: time.Now().UTC(), Payload: body})
		s.mu.Unlock()
	default:
		http.Error(w, "POST /<receiver> or GET /notifications", http.StatusMethodNotAllowed)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9197", "address to receive webhooks on")
	flag.Parse()
	srv := &http.Server{Addr: *listen, Handler: &store{}, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "amwebhook:", err)
		os.Exit(1)
	}
}
