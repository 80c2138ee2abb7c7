// Command inference-server is modeltel's main example: an OpenAI-style API
// (chat completions and text completions, plain JSON and streaming SSE;
// embeddings; the model list) and a gRPC Generate service (protobuf, with
// server reflection and the standard health service) over a deterministic
// fake LLM, with Prometheus metrics on /metrics, OTLP
// traces when OTEL_EXPORTER_OTLP_ENDPOINT is set, and JSON logs on stdout
// (and Loki with --loki-url). It needs no backend to run:
//
//	go run ./examples/inference-server
//	curl -s 127.0.0.1:8080/v1/chat/completions -d '{"model":"fake-llama-3-8b","messages":[{"role":"user","content":"Why is the sky blue?"}]}'
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

	"google.golang.org/grpc"

	"github.com/modeltel/modeltel"
	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/examples/inference-server/internal/server"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/logging"
	"github.com/modeltel/modeltel/middleware"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "inference-server:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "HTTP listen address (API, /metrics, /healthz, /readyz)")
	grpcListen := flag.String("grpc-listen", "127.0.0.1:8081", "gRPC Generate listen address; empty disables gRPC")
	tps := flag.Float64("tokens-per-second", 50, "decode rate of the fake model; 0 means no delay")
	loadTime := flag.Duration("load-time", time.Second, "how long each model takes to load")
	maxTokens := flag.Int("max-tokens", 1024, "largest max_tokens a request may ask for")
	contextLength := flag.Int("context-length", 4096, "context window of the fake models, in tokens")
	lokiURL := flag.String("loki-url", "", "also push logs to this Loki (http://127.0.0.1:3100)")
	modelList := flag.String("models", strings.Join(fakemodel.DefaultModels, ","), "comma-separated model names to serve")
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "bound on graceful shutdown")
	drainDelay := flag.Duration("drain-delay", 0, "on SIGTERM, answer /readyz 503 this long before closing the listeners (e.g. a readiness probe period)")
	flag.Parse()

	var models []*fakemodel.Model
	var names []string
	for _, n := range strings.Split(*modelList, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
			models = append(models, fakemodel.New(n, fakemodel.Config{
				LoadTime: *loadTime, TokensPerSecond: *tps, ContextLength: *contextLength}))
		}
	}
	if len(models) == 0 {
		return errors.New("--models names no model")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	service := "inference-server"
	if v := strings.TrimSpace(os.Getenv("OTEL_SERVICE_NAME")); v != "" {
		service = v
	}
	opts := []modeltel.Option{
		modeltel.WithServiceName(service),
		modeltel.WithInferenceOptions(inference.WithModels(names...)),
		modeltel.WithMiddlewareOptions(
			middleware.WithModel(server.ModelFunc(models)),
			middleware.WithOperation(server.OperationFunc()),
			middleware.WithGRPCModel(server.GRPCModelFunc(models)),
		),
		modeltel.WithGlobals(),
	}
	if *lokiURL != "" {
		opts = append(opts, modeltel.WithLoki(logging.LokiConfig{URL: *lokiURL}))
	}
	tel, err := modeltel.Start(ctx, opts...)
	if err != nil {
		return err
	}
	log := tel.Logger()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			fmt.Fprintln(os.Stderr, "inference-server:", err)
		}
	}()

	srv := server.New(server.Config{Models: models, MaxTokens: *maxTokens, Inference: tel.Inference(),
		Logger: log, TracerProvider: tel.TracerProvider()})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.MetricsHandler())
	mux.Handle("/", tel.Middleware().Handler(srv.Handler()))
	// The limits of a production server (docs/inference-middleware.md,
	// "Server limits"). No WriteTimeout: it counts from the end of the
	// request headers and would cut every SSE stream longer than it; a
	// stream ends with its generation or when its client goes.
	hs := &http.Server{
		Handler: mux,
		// Headers within 10 s of the connection's first byte (slowloris).
		ReadHeaderTimeout: 10 * time.Second,
		// The whole request, body included, within 60 s. The middleware
		// bounds the model's read of the body sooner
		// (middleware.WithBodyReadTimeout, 10 s) and answers 408.
		ReadTimeout: 60 * time.Second,
		// A keep-alive connection waits at most 2 min for its next request.
		IdleTimeout: 2 * time.Minute,
		// 64 KiB of request line and headers (net/http allows 4 KiB more);
		// beyond it net/http answers 431 in plain text before any handler.
		MaxHeaderBytes: 64 << 10,
	}
	hl, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(hl) }()

	var gs *grpc.Server
	grpcAddr := ""
	if *grpcListen != "" {
		gl, err := net.Listen("tcp", *grpcListen)
		if err != nil {
			_ = hs.Close()
			return err
		}
		gs = grpc.NewServer(
			grpc.ChainUnaryInterceptor(tel.Middleware().UnaryServerInterceptor()),
			grpc.ChainStreamInterceptor(tel.Middleware().StreamServerInterceptor()),
		)
		srv.RegisterGRPC(gs)
		grpcAddr = gl.Addr().String()
		go func() { errc <- gs.Serve(gl) }()
	}
	announce(tel, hl.Addr().String(), grpcAddr, *lokiURL)

	go func() {
		if err := srv.Load(ctx); err != nil && ctx.Err() == nil {
			log.Error("model load failed", "error", err)
		}
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", shutdownTimeout.String())
	case err := <-errc:
		log.Error("server stopped", "error", err)
	}
	stop()      // a second SIGINT/SIGTERM now ends the process at once
	srv.Drain() // /readyz answers 503, so load balancers stop sending new requests
	time.Sleep(*drainDelay)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if gs != nil {
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			gs.Stop()
		}
	}
	if err := hs.Shutdown(sctx); err != nil {
		// Streams outlived the timeout: cut them off rather than exit with
		// connections still open.
		_ = hs.Close()
		return fmt.Errorf("shutdown: in-flight requests outlived --shutdown-timeout %s: %w", *shutdownTimeout, err)
	}
	return nil
}

// announce says on stderr where each signal goes, so that stdout stays JSON.
func announce(tel *modeltel.Telemetry, httpAddr, grpcAddr, lokiURL string) {
	w := os.Stderr
	fmt.Fprintf(w, "inference-server: API     http://%s/v1/chat/completions (/v1/completions, /v1/embeddings, GET /v1/models, /healthz, /readyz)\n", httpAddr)
	if grpcAddr != "" {
		fmt.Fprintf(w, "inference-server: gRPC    %s %s (reflection, grpc.health.v1.Health)\n", grpcAddr, server.GenerateMethod)
	}
	fmt.Fprintf(w, "inference-server: metrics http://%s/metrics\n", httpAddr)
	if tel.Exporting() {
		ep := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
		if ep == "" {
			ep = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
		}
		fmt.Fprintf(w, "inference-server: traces  OTLP gRPC to %s\n", ep)
	} else {
		fmt.Fprintln(w, "inference-server: traces  off (set OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 to export); trace ids still in the logs")
	}
	logs := "stdout (JSON lines with trace_id, span_id)"
	if lokiURL != "" {
		logs += " and Loki " + lokiURL
	}
	fmt.Fprintf(w, "inference-server: logs    %s\n", logs)
	if tel.GPU() != nil {
		fmt.Fprintln(w, "inference-server: GPU     NVML collector on /metrics")
	}
}
