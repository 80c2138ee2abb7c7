// Command loadgen drives the inference-server example with concurrent chat
// requests (plain, streaming and optionally gRPC), prints a summary of what the
// client measured and exits 0 only when every request succeeded.
//
//	go run ./examples/loadgen --url http://127.0.0.1:8080 --requests 40 \
//		--concurrency 4 --model fake-llama-3-8b --stream-ratio 0.5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/modeltel/modeltel/examples/inference-server/generatepb"
	"github.com/modeltel/modeltel/examples/loadgen/internal/load"
)

func main() {
	os.Exit(run())
}

func run() int {
	var cfg load.Config
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "inference server base URL")
	flag.IntVar(&cfg.Requests, "requests", 40, "number of requests to send")
	flag.IntVar(&cfg.Concurrency, "concurrency", 4, "requests in flight at once")
	flag.StringVar(&cfg.Model, "model", "fake-llama-3-8b", "model to ask for")
	flag.Float64Var(&cfg.StreamRatio, "stream-ratio", 0.5, "share of HTTP requests that stream (0..1)")
	grpcAddr := flag.String("grpc-addr", "", "gRPC Generate address (host:port); empty sends HTTP only")
	flag.Float64Var(&cfg.GRPCRatio, "grpc-ratio", 0.25, "share of requests sent over gRPC when --grpc-addr is set (0..1)")
	flag.IntVar(&cfg.MaxTokens, "max-tokens", 0, "max_tokens of each request (0: not sent)")
	flag.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "bound on the whole run")
	flag.DurationVar(&cfg.RequestTimeout, "request-timeout", 30*time.Second, "bound on one request")
	flag.Parse()

	if *grpcAddr != "" {
		conn, err := grpc.NewClient(*grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 2
		}
		defer conn.Close()
		cfg.GRPC = generatepb.NewGeneratorClient(conn)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum := load.Run(ctx, cfg)
	sum.Print(os.Stdout)
	if !sum.OK() {
		return 1
	}
	return 0
}
