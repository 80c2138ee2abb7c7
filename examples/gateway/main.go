// Command gateway is an OpenAI-compatible reverse proxy in front of one or
// more upstream servers (vLLM, SGLang, TGI, llama.cpp, Ollama, or
// examples/inference-server), instrumented by modeltel from the traffic
// alone: request, token and time-to-first-token metrics, traces (W3C context
// passed upstream) and request logs, per upstream and per tenant.
//
//	go run ./examples/gateway --listen 127.0.0.1:8090 --upstream http://127.0.0.1:8080
//	curl -s 127.0.0.1:8090/v1/models
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/modeltel/modeltel"
	"github.com/modeltel/modeltel/examples/gateway/internal/gateway"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/logging"
	"github.com/modeltel/modeltel/middleware"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	var upstreams list
	listen := flag.String("listen", "127.0.0.1:8090", "HTTP listen address (API, /metrics, /healthz)")
	flag.Var(&upstreams, "upstream", "base URL of an OpenAI-compatible upstream (repeatable)")
	refresh := flag.Duration("refresh", gateway.DefaultRefresh, "how often each upstream's /v1/models is asked (the health check)")
	timeout := flag.Duration("upstream-timeout", gateway.DefaultTimeout, "bound on the wait for an upstream's response headers")
	tenantHeader := flag.String("tenant-header", "", "request header naming the tenant; empty: the API key (Authorization: Bearer), hashed")
	tenantSalt := flag.String("tenant-salt", os.Getenv("GATEWAY_TENANT_SALT"), "salt of the tenant hash (default $GATEWAY_TENANT_SALT)")
	maxTenants := flag.Int("max-tenants", gateway.DefaultMaxTenants, "tenants with their own series; the rest are \"other\"")
	maxModels := flag.Int("max-models", 100, "models with their own series; the rest are \"other\"")
	lokiURL := flag.String("loki-url", "", "also push logs to this Loki push endpoint")
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "bound on graceful shutdown")
	flag.Parse()
	if len(upstreams) == 0 {
		return errors.New("give at least one --upstream URL")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	service := "gateway"
	if v := strings.TrimSpace(os.Getenv("OTEL_SERVICE_NAME")); v != "" {
		service = v
	}
	// The model func needs the gateway, the gateway the tracer provider.
	var gw *gateway.Gateway
	opts := []modeltel.Option{
		modeltel.WithServiceName(service),
		modeltel.WithInferenceOptions(inference.WithMaxModels(*maxModels)),
		modeltel.WithMiddlewareOptions(
			middleware.WithModel(func(r *http.Request) string { return gw.Model(r) }),
			middleware.WithOperation(gateway.Operation),
		),
		modeltel.WithoutGPU(),
		modeltel.WithGlobals(),
	}
	if *lokiURL != "" {
		opts = append(opts, modeltel.WithLoki(logging.LokiConfig{URL: *lokiURL}))
	}
	tel, err := modeltel.Start(ctx, opts...)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
	}()
	gw, err = gateway.New(gateway.Config{Upstreams: upstreams, Refresh: *refresh, Timeout: *timeout,
		TenantHeader: *tenantHeader, TenantSalt: *tenantSalt, MaxTenants: *maxTenants,
		TracerProvider: tel.TracerProvider(), Logger: tel.Logger()})
	if err != nil {
		return err
	}
	tel.Registry().MustRegister(gw)
	if err := gw.Refresh(ctx); err != nil {
		tel.Logger().Warn("first model refresh", "error", err.Error())
	}
	go gw.Run(ctx)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.MetricsHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	mux.Handle("/", gw.Handler(tel.Middleware().Handler))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gateway: API http://%s/v1 -> %s (models: %s); metrics http://%s/metrics\n",
		ln.Addr(), upstreams.String(), strings.Join(gw.Models(), ","), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
