package middleware

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/syncbuf"
	"github.com/modeltel/modeltel/internal/testkit"
)

// streamingServer streams one response per requested size and reports one
// output token per message through the recorder in the stream's context.
type streamingServer struct {
	testpb.UnimplementedTestServiceServer
}

func (streamingServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	rec := inference.FromContext(stream.Context())
	AddLogAttrs(stream.Context(), slog.Int("responses", len(req.GetResponseParameters())))
	for _, p := range req.GetResponseParameters() {
		rec.OutputTokens(1)
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

func (streamingServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if req.GetResponseStatus().GetCode() != 0 {
		return nil, status.Error(codes.Code(req.GetResponseStatus().GetCode()), "requested")
	}
	inference.FromContext(ctx).OutputTokens(int(req.GetResponseSize()))
	AddLogAttrs(ctx, slog.Int("response_size", int(req.GetResponseSize())))
	return &testpb.SimpleResponse{}, nil
}

// One line per RPC, carrying the status message of a failure and what the
// handler added with AddLogAttrs.
func TestGRPCLogLine(t *testing.T) {
	var buf syncbuf.Buffer
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey || a.Key == "duration" {
			return slog.Attr{}
		}
		return a
	}
	m := New(WithLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime}))), WithTracerProvider(nil))
	conn := startGRPC(t, m)
	ctx := context.Background()
	tc := testpb.NewTestServiceClient(conn)
	if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.ResourceExhausted)}}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("unary error: %v", err)
	}
	stream, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// The server logs after it has sent the status: wait for the lines.
	want := []string{
		`{"level":"INFO","msg":"grpc request","method":"/grpc.testing.TestService/UnaryCall","code":"OK","response_size":7}`,
		`{"level":"WARN","msg":"grpc request","method":"/grpc.testing.TestService/UnaryCall","code":"ResourceExhausted","error":"requested"}`,
		`{"level":"INFO","msg":"grpc request","method":"/grpc.testing.TestService/StreamingOutputCall","code":"OK","responses":2}`,
	}
	deadline := time.Now().Add(10 * time.Second)
	var got []string
	for {
		got = strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !slices.Equal(got, want) {
		t.Errorf("log lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func startGRPC(t *testing.T, m *Middleware) *grpc.ClientConn {
	t.Helper()
	s := grpc.NewServer(grpc.ChainUnaryInterceptor(m.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.StreamServerInterceptor()))
	healthpb.RegisterHealthServer(s, health.NewServer())
	testpb.RegisterTestServiceServer(s, streamingServer{})
	return testkit.ServeBufconn(t, s)
}

func TestGRPCMetrics(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf),
		WithGRPCModel(func(_ context.Context, method string, req any) string {
			if strings.HasPrefix(method, "/grpc.testing.TestService/") && req != nil {
				return "llama"
			}
			return ""
		}),
		WithGRPCOperation(func(context.Context, string) string { return "text_completion" }))
	conn := startGRPC(t, m)
	ctx := context.Background()

	hc := healthpb.NewHealthClient(conn)
	for range 3 {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "missing"}); status.Code(err) != codes.NotFound {
		t.Fatalf("missing service: %v", err)
	}
	tc := testpb.NewTestServiceClient(conn)
	if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.ResourceExhausted)}}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("unary error: %v", err)
	}
	stream, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}, {Size: 4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("received %d messages", n)
	}

	const h, ts = `grpc_service="grpc.health.v1.Health"`, `grpc_service="grpc.testing.TestService"`
	want := `
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="NotFound",grpc_method="Check",` + h + `,grpc_type="unary"} 1
grpc_server_handled_total{grpc_code="OK",grpc_method="Check",` + h + `,grpc_type="unary"} 3
grpc_server_handled_total{grpc_code="OK",grpc_method="StreamingOutputCall",` + ts + `,grpc_type="server_stream"} 1
grpc_server_handled_total{grpc_code="OK",grpc_method="UnaryCall",` + ts + `,grpc_type="unary"} 1
grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="UnaryCall",` + ts + `,grpc_type="unary"} 1
# HELP grpc_server_msg_received_total Total number of RPC stream messages received on the server.
# TYPE grpc_server_msg_received_total counter
grpc_server_msg_received_total{grpc_method="Check",` + h + `,grpc_type="unary"} 4
grpc_server_msg_received_total{grpc_method="StreamingOutputCall",` + ts + `,grpc_type="server_stream"} 1
grpc_server_msg_received_total{grpc_method="UnaryCall",` + ts + `,grpc_type="unary"} 2
# HELP grpc_server_msg_sent_total Total number of gRPC stream messages sent by the server.
# TYPE grpc_server_msg_sent_total counter
grpc_server_msg_sent_total{grpc_method="Check",` + h + `,grpc_type="unary"} 3
grpc_server_msg_sent_total{grpc_method="StreamingOutputCall",` + ts + `,grpc_type="server_stream"} 4
grpc_server_msg_sent_total{grpc_method="UnaryCall",` + ts + `,grpc_type="unary"} 1
# HELP grpc_server_started_total Total number of RPCs started on the server.
# TYPE grpc_server_started_total counter
grpc_server_started_total{grpc_method="Check",` + h + `,grpc_type="unary"} 4
grpc_server_started_total{grpc_method="StreamingOutputCall",` + ts + `,grpc_type="server_stream"} 1
grpc_server_started_total{grpc_method="UnaryCall",` + ts + `,grpc_type="unary"} 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "grpc_server_started_total",
		"grpc_server_handled_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m, "grpc_server_handling_seconds"); n != 3 {
		t.Errorf("handling series = %d, want 3", n)
	}
	if got := tokens(inf, "llama", "output"); got != 11 {
		t.Errorf("output tokens = %v, want 11 (7 unary + 4 streamed)", got)
	}
	if err := infDurationCount(inf, "ResourceExhausted", 1); err != nil {
		t.Error(err)
	}
	testkit.Lint(t, m)
}

func TestGRPCMethodCap(t *testing.T) {
	m := New(WithMaxRoutes(1))
	conn := startGRPC(t, m)
	ctx := context.Background()
	_, _ = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	_, _ = testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{})
	_, _ = testpb.NewTestServiceClient(conn).EmptyCall(ctx, &testpb.Empty{})
	want := `
# HELP grpc_server_started_total Total number of RPCs started on the server.
# TYPE grpc_server_started_total counter
grpc_server_started_total{grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 1
grpc_server_started_total{grpc_method="_OTHER",grpc_service="_OTHER",grpc_type="unary"} 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "grpc_server_started_total"); err != nil {
		t.Error(err)
	}
}
