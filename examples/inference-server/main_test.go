package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/modeltel/modeltel/examples/inference-server/generatepb"
)

// TestStartupLineAndGRPC builds the command and runs it as a user does, on
// port 0: the startup line names the gRPC port it bound (not ":0"), a client
// of the generated package streams a completion from it, the health service
// says SERVING once the models loaded, and SIGTERM stops it cleanly.
func TestStartupLineAndGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the command")
	}
	if runtime.GOOS == "windows" {
		t.Skip("sends SIGTERM")
	}
	bin := filepath.Join(t.TempDir(), "inference-server")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--load-time", "0", "--tokens-per-second", "0")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	line := regexp.MustCompile(`^inference-server: gRPC +(\S+) /modeltel\.examples\.v1\.Generator/Generate`)
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := line.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(30 * time.Second):
		t.Fatal("no gRPC startup line within 30s")
	}
	if regexp.MustCompile(`:0$`).MatchString(addr) {
		t.Fatalf("the startup line names %s, not the bound port", addr)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	for {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("health never SERVING: %v, %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stream, err := generatepb.NewGeneratorClient(conn).Generate(ctx, &generatepb.GenerateRequest{Model: "fake-llama-3-8b", Prompt: "hi", MaxTokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	var last *generatepb.GenerateResponse
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = resp
	}
	if last.GetUsage().GetCompletionTokens() != 3 || last.GetFinishReason() != "length" {
		t.Errorf("last message = %v", last)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGTERM")
	}
}
