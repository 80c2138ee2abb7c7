package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/modeltel/modeltel/examples/inference-server/generatepb"
	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/syncbuf"
	"github.com/modeltel/modeltel/internal/testkit"
	"github.com/modeltel/modeltel/middleware"
)

// TestGRPCHealth: the standard health service says NOT_SERVING while the
// models load, SERVING once they are, and NOT_SERVING again from Drain on,
// for the server ("") and for the Generate service alike.
func TestGRPCHealth(t *testing.T) {
	srv := New(Config{Models: []*fakemodel.Model{fakemodel.New("m", fakemodel.Config{})}})
	gs := grpc.NewServer()
	srv.RegisterGRPC(gs)
	hc := healthpb.NewHealthClient(testkit.ServeBufconn(t, gs))
	ctx := context.Background()
	check := func(when string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range []string{"", GRPCServiceName} {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil {
				t.Fatalf("%s: Check(%q): %v", when, svc, err)
			}
			if resp.GetStatus() != want {
				t.Errorf("%s: Check(%q) = %v, want %v", when, svc, resp.GetStatus(), want)
			}
		}
	}
	check("before Load", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := srv.Load(ctx); err != nil {
		t.Fatal(err)
	}
	check("after Load", healthpb.HealthCheckResponse_SERVING)
	srv.Drain()
	check("after Drain", healthpb.HealthCheckResponse_NOT_SERVING)
}

// TestGRPCReflection: server reflection lists the Generate service and the
// health service, so that grpcurl and similar tools need no .proto.
func TestGRPCReflection(t *testing.T) {
	srv := New(Config{Models: []*fakemodel.Model{fakemodel.New("m", fakemodel.Config{})}})
	gs := grpc.NewServer()
	srv.RegisterGRPC(gs)
	rc := reflectionpb.NewServerReflectionClient(testkit.ServeBufconn(t, gs))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := rc.ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"modeltel.examples.v1.Generator", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, want %s among them", names, want)
		}
	}
}

// TestGRPCOneLogLine: a Generate call through the logging interceptor is one
// line, the interceptor's, with the server's detail (tokens, finish reason)
// on it, as an HTTP request is; without an interceptor that logs, the server
// logs the line itself.
func TestGRPCOneLogLine(t *testing.T) {
	for _, withMiddleware := range []bool{true, false} {
		name := "server alone"
		if withMiddleware {
			name = "with middleware"
		}
		t.Run(name, func(t *testing.T) {
			var logs syncbuf.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, nil))
			models := []*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{})}
			inf := inference.NewMetrics()
			srv := New(Config{Models: models, Logger: logger, Inference: inf})
			if err := srv.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			var opts []grpc.ServerOption
			if withMiddleware {
				mw := middleware.New(middleware.WithLogger(logger), middleware.WithTracerProvider(nil),
					middleware.WithInference(inf), middleware.WithGRPCModel(GRPCModelFunc(models)))
				opts = append(opts, grpc.ChainStreamInterceptor(mw.StreamServerInterceptor()))
			}
			gs := grpc.NewServer(opts...)
			srv.RegisterGRPC(gs)
			c := generatepb.NewGeneratorClient(testkit.ServeBufconn(t, gs))
			logs.Reset() // not the model loads
			stream, err := c.Generate(context.Background(), &generatepb.GenerateRequest{Model: "fake-llama-3-8b", Prompt: "hi", MaxTokens: 3})
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := stream.Recv(); err != nil {
					break
				}
			}
			gs.GracefulStop() // the interceptor has logged once the handler returned
			lines := logLines(t, &logs)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1:\n%v", len(lines), lines)
			}
			line := lines[0]
			if wantMsg := "generate"; !withMiddleware && line["msg"] != wantMsg || withMiddleware && line["msg"] == wantMsg {
				t.Errorf("msg = %v (with middleware: %v), want the middleware's line when it logs", line["msg"], withMiddleware)
			}
			if line["completion_tokens"] != 3.0 || line["finish_reason"] != "length" || line["code"] != "OK" {
				t.Errorf("line = %v, want completion_tokens 3, finish_reason length, code OK", line)
			}
		})
	}
}

// TestGrpcurl runs the grpcurl commands the docs give (list, describe, a
// call, a health check) against a server on a loopback port, through server
// reflection alone.
func TestGrpcurl(t *testing.T) {
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl is not on PATH (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4): cannot run the documented grpcurl commands")
	}
	srv := New(Config{Models: []*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{})}})
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.RegisterGRPC(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	addr := ln.Addr().String()
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, grpcurl, append([]string{"-plaintext"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run(addr, "list"); !strings.Contains(out, "modeltel.examples.v1.Generator") || !strings.Contains(out, "grpc.health.v1.Health") {
		t.Errorf("grpcurl list:\n%s", out)
	}
	if out := run(addr, "describe", "modeltel.examples.v1.Generator"); !strings.Contains(out, "rpc Generate ( .modeltel.examples.v1.GenerateRequest ) returns ( stream .modeltel.examples.v1.GenerateResponse );") {
		t.Errorf("grpcurl describe:\n%s", out)
	}
	out := run("-d", `{"model":"fake-llama-3-8b","prompt":"Why is the sky blue?","max_tokens":4}`, addr, "modeltel.examples.v1.Generator/Generate")
	dec := json.NewDecoder(strings.NewReader(out))
	var msgs []map[string]any
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("grpcurl output: %v\n%s", err, out)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 5 || msgs[0]["token"] == nil || msgs[4]["finishReason"] != "length" {
		t.Errorf("grpcurl Generate: %d messages, want 4 tokens and the finish:\n%s", len(msgs), out)
	}
	if out := run("-d", `{"service":"modeltel.examples.v1.Generator"}`, addr, "grpc.health.v1.Health/Check"); !strings.Contains(out, `"SERVING"`) {
		t.Errorf("grpcurl health check:\n%s", out)
	}
}
