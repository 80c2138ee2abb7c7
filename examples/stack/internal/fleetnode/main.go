// Command fleetnode is the serving side of one simulated node in `make e2e-fleet`: an OpenAI-style
// /v1/chat/completions handler instrumented by modeltel (HTTP middleware, GenAI request recorder,
// the same metric names as examples/inference-server), with a built-in client that keeps a steady,
// light load on it, so the node's /metrics carries live serving series without a load generator per node.
//
//	fleetnode --listen 127.0.0.1:PORT [--grpc-listen 127.0.0.1:PORT2] --models fake-llama-3-8b,fake-mistral-7b --rps 2 --seed 7
//
// The "model" is a timer: each request waits in a queue, then a time to first token, then streams output
// tokens at a per-token pace, all drawn from the seed, so latency histograms have realistic spread; the
// node reports its engine state (queue, KV cache, prefix cache hits, preemptions) as a serving engine's
// scheduler would, and serves the standard gRPC health service behind modeltel's interceptors, which the
// built-in client also calls, so the serving dashboard's gRPC panels have data. It is not the
// inference-server example on purpose: 50 of those plus 50 load generators would spend the two CPU
// cores of a test machine on the fake model's tokenizer instead of on the fleet under test (docs/fleet.md).
//
// With --loki-url it logs each request's line (the middleware's) through the SDK's Loki handler into its
// team's tenant (--team, --account: X-Scope-OrgID and VictoriaLogs' AccountID, as tenantpush does), with
// the stream labels service_name="fleet-serving", team and node (--node), and serves the handler's metrics.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/logging"
	"github.com/modeltel/modeltel/middleware"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("fleetnode", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve /v1/chat/completions and /metrics on")
	grpcListen := fs.String("grpc-listen", "127.0.0.1:0", "address to serve the gRPC health service on")
	models := fs.String("models", "fake-llama-3-8b", "comma-separated models this node serves")
	rps := fs.Float64("rps", 2, "requests per second the built-in client sends (0: none)")
	seed := fs.Uint64("seed", 1, "seed of the simulated latencies")
	errRatio := fs.Float64("error-ratio", 0.01, "share of requests that fail with 500")
	lokiURL := fs.String("loki-url", "", "push the request log lines to this Loki push API (e.g. http://127.0.0.1:9428/insert)")
	team := fs.String("team", "", "with --loki-url: the team, tenant and stream label team")
	account := fs.Int("account", 0, "with --loki-url: the team's VictoriaLogs AccountID")
	node := fs.String("node", "", "with --loki-url: the stream label node")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *lokiURL != "" && (*team == "" || *account <= 0 || *node == "") {
		fmt.Fprintln(os.Stderr, "fleetnode: --loki-url needs --team, a positive --account and --node")
		return 2
	}
	served := strings.Split(*models, ",")
	if len(served) == 0 || served[0] == "" {
		fmt.Fprintln(os.Stderr, "fleetnode: --models is empty")
		return 2
	}

	reg := prometheus.NewRegistry()
	inf := inference.NewMetrics(inference.WithModels(served...))
	mwOpts := []middleware.Option{middleware.WithInference(inf), middleware.WithModel(middleware.ModelFromJSONBody(64 << 10))}
	if *lokiURL != "" {
		loki, err := logging.NewLoki(logging.LokiConfig{
			URL:      *lokiURL,
			Labels:   map[string]string{"service_name": "fleet-serving", "team": *team, "node": *node},
			TenantID: *team,
			Headers:  map[string]string{"AccountID": strconv.Itoa(*account), "ProjectID": "0"},
			Fallback: slog.NewTextHandler(os.Stderr, nil),
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "fleetnode: %v\n", err)
			return 2
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = loki.Close(cctx)
		}()
		reg.MustRegister(loki)
		mwOpts = append(mwOpts, middleware.WithLogger(slog.New(loki)))
	}
	mw := middleware.New(mwOpts...)
	// The middleware and inf as one collector, the middleware first, as
	// modeltel.Start registers them: a scrape then never has a request
	// neither active nor done.
	reg.MustRegister(mw.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	api := http.NewServeMux()
	m := &model{rng: rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15)), errRatio: *errRatio, engine: inf.Engine(served[0])}
	api.HandleFunc("POST /v1/chat/completions", m.chat)
	root := http.NewServeMux()
	root.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	root.Handle("/", mw.Handler(api))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleetnode: %v\n", err)
		return 1
	}
	gln, err := net.Listen("tcp", *grpcListen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleetnode: %v\n", err)
		return 1
	}
	gsrv := grpc.NewServer(grpc.UnaryInterceptor(mw.UnaryServerInterceptor()), grpc.StreamInterceptor(mw.StreamServerInterceptor()))
	healthpb.RegisterHealthServer(gsrv, health.NewServer())
	go func() { _ = gsrv.Serve(gln) }()
	defer gsrv.Stop()
	srv := &http.Server{Handler: root, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	slog.Info("fleetnode serving", "addr", ln.Addr().String(), "models", served, "rps", *rps)
	if *rps > 0 {
		go drive(ctx, "http://"+ln.Addr().String(), gln.Addr().String(), served, *rps, *seed)
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "fleetnode: %v\n", err)
		return 1
	}
	return 0
}

// model answers a chat request after simulated queue, prefill and decode times, and keeps the engine
// state a scheduler would report.
type model struct {
	mu       sync.Mutex
	rng      *rand.Rand
	errRatio float64
	engine   *inference.Engine
	waiting  int
	running  int
}

func (m *model) draw() (queue, ttft, perToken time.Duration, in, cached, out int, fail bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	queue = time.Duration(m.rng.ExpFloat64()*10) * time.Millisecond
	ttft = time.Duration(20+m.rng.ExpFloat64()*60) * time.Millisecond
	perToken = time.Duration(5+m.rng.IntN(15)) * time.Millisecond
	in = 20 + m.rng.IntN(200)
	cached = m.rng.IntN(in / 2)
	m.engine.AddPrefixCache(1, min(cached, 1))
	if m.rng.IntN(50) == 0 {
		m.engine.AddPreemptions(1)
	}
	return queue, ttft, perToken, in, cached, 4 + m.rng.IntN(28), m.rng.Float64() < m.errRatio
}

// move shifts one request between the waiting and running counts and reports the engine state.
func (m *model) move(dWaiting, dRunning int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.waiting += dWaiting
	m.running += dRunning
	m.engine.SetQueue(m.waiting, m.running)
	m.engine.SetKVCacheUsage(min(float64(m.running)/16, 1))
}

func (m *model) chat(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	rec := inference.FromContext(r.Context())
	queue, ttft, perToken, in, cached, out, fail := m.draw()
	rec.InputTokens(in)
	rec.CachedInputTokens(cached)
	m.move(1, 0)
	select {
	case <-r.Context().Done():
		m.move(-1, 0)
		rec.End(r.Context().Err())
		return
	case <-time.After(queue):
	}
	m.move(-1, 1)
	defer m.move(0, -1)
	rec.Scheduled()
	if fail {
		http.Error(w, `{"error":{"message":"simulated failure","type":"server_error"}}`, http.StatusInternalServerError)
		return
	}
	t := time.NewTimer(ttft)
	defer t.Stop()
	for i := 0; i < out; i++ {
		select {
		case <-r.Context().Done():
			rec.End(r.Context().Err())
			return
		case <-t.C:
		}
		rec.OutputTokens(1)
		t.Reset(perToken)
	}
	rec.SetResponse(inference.Response{Model: inference.FromContext(r.Context()).Request().Model, FinishReasons: []string{inference.FinishStop}})
	rec.End(nil)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "chat.completion",
		"usage":  map[string]int{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out},
	})
}

// drive sends requests at rps (Poisson arrivals) round-robin over the models until ctx ends, each with a
// gRPC health check beside it.
func drive(ctx context.Context, base, grpcAddr string, models []string, rps float64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed+1, seed))
	client := &http.Client{Timeout: 10 * time.Second}
	var hc healthpb.HealthClient
	if conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		defer conn.Close()
		hc = healthpb.NewHealthClient(conn)
	}
	for i := 0; ; i++ {
		wait := time.Duration(rng.ExpFloat64() / rps * float64(time.Second))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		body := `{"model":"` + models[i%len(models)] + `","messages":[{"role":"user","content":"hello"}]}`
		if hc != nil {
			go func() {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, _ = hc.Check(cctx, &healthpb.HealthCheckRequest{})
			}()
		}
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}()
	}
}
