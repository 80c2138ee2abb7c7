package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"

	"github.com/modeltel/modeltel"
	"github.com/modeltel/modeltel/examples/inference-server/generatepb"
	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/examples/inference-server/internal/server"
	"github.com/modeltel/modeltel/examples/internal/openai"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/testkit"
	"github.com/modeltel/modeltel/middleware"
)

// stack wires the server as main does, with modeltel.Start and the real
// middleware, spans going to a recorder.
type stack struct {
	tel   *modeltel.Telemetry
	spans *tracetest.SpanRecorder
	http  *httptest.Server
	gen   generatepb.GeneratorClient
}

func newStack(t *testing.T) *stack {
	t.Helper()
	st := &stack{spans: tracetest.NewSpanRecorder()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(st.spans))
	models := []*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{})}
	names := []string{"fake-llama-3-8b"}
	tel, err := modeltel.Start(context.Background(),
		modeltel.WithServiceName("inference-server"),
		modeltel.WithoutGPU(),
		modeltel.WithLogger(slog.New(slog.DiscardHandler)),
		modeltel.WithTracerProvider(tp),
		modeltel.WithInferenceOptions(inference.WithModels(names...)),
		modeltel.WithMiddlewareOptions(
			middleware.WithModel(server.ModelFunc(models)),
			middleware.WithOperation(server.OperationFunc()),
			middleware.WithGRPCModel(server.GRPCModelFunc(models)),
		))
	if err != nil {
		t.Fatal(err)
	}
	st.tel = tel
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	srv := server.New(server.Config{Models: models, Inference: tel.Inference(), Logger: tel.Logger(), TracerProvider: tp})
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.MetricsHandler())
	mux.Handle("/", tel.Middleware().Handler(srv.Handler()))
	st.http = httptest.NewServer(mux)
	t.Cleanup(st.http.Close)

	gs := grpc.NewServer(grpc.ChainStreamInterceptor(tel.Middleware().StreamServerInterceptor()))
	srv.RegisterGRPC(gs)
	st.gen = generatepb.NewGeneratorClient(testkit.ServeBufconn(t, gs))
	return st
}

// TestWithModeltel checks what the stack's end-to-end test looks for: the
// GenAI request span "chat fake-llama-3-8b" with tokenize and forward
// children, for HTTP (plain and streaming) and gRPC, and the error metrics.
func TestWithModeltel(t *testing.T) {
	st := newStack(t)
	c := &openai.Client{BaseURL: st.http.URL}
	ctx := context.Background()
	for _, stream := range []bool{false, true} {
		if _, err := c.Chat(ctx, openai.ChatRequest{Model: "fake-llama-3-8b", Stream: stream,
			Messages: []openai.Message{{Role: "user", Content: "Why is the sky blue?"}}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Chat(ctx, openai.ChatRequest{Model: "gpt-9", Messages: []openai.Message{{Role: "user", Content: "hi"}}})
	var ae *openai.Error
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("unknown model: %v", err)
	}
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	gs, err := st.gen.Generate(gctx, &generatepb.GenerateRequest{Model: "fake-llama-3-8b", Prompt: "Why is the sky blue?", MaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	var grpcTokens int
	for {
		resp, err := gs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if resp.Token != "" {
			grpcTokens++
		}
	}
	if grpcTokens != 5 {
		t.Errorf("gRPC tokens = %d, want 5", grpcTokens)
	}
	st.http.Close() // wait for the handlers and the middleware to finish

	spans := st.spans.Ended()
	var requests int
	for _, req := range spans {
		if req.Name() != "chat fake-llama-3-8b" {
			continue
		}
		requests++
		kids := map[string]int{}
		for _, s := range spans {
			if s.Parent().SpanID() == req.SpanContext().SpanID() {
				kids[s.Name()]++
			}
		}
		if kids["tokenize"] != 1 || kids["forward"] < 2 {
			t.Errorf("request span %s children %v, want tokenize and forward", req.SpanContext().SpanID(), kids)
		}
	}
	if requests != 3 {
		t.Errorf("request spans = %d, want 3 (2 HTTP, 1 gRPC)", requests)
	}

	mfs, err := st.tel.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gen_ai_server_time_to_first_token_seconds", map[string]string{"gen_ai_request_model": "fake-llama-3-8b"}, 3},
		{"gen_ai_server_request_duration_seconds", map[string]string{"error_type": "model_not_found"}, 1},
		{"http_server_request_duration_seconds", map[string]string{"http_response_status_code": "404", "http_route": "/v1/chat/completions"}, 1},
		{"http_server_request_duration_seconds", map[string]string{"http_response_status_code": "200", "http_route": "/v1/chat/completions"}, 2},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Generate", "grpc_code": "OK"}, 1},
	}
	for _, c := range checks {
		if got := sum(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// sum adds the sample counts (histograms) or values (counters) of the series
// of name that carry all labels.
func sum(mfs []*dto.MetricFamily, name string, labels map[string]string) float64 {
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.Metric {
			for k, v := range labels {
				found := false
				for _, l := range m.Label {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				n += float64(h.GetSampleCount())
			} else {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// endless is a request body of n bytes (a JSON string that never closes),
// produced as it is read; read counts what the server took.
type endless struct {
	n       int64
	read    atomic.Int64 // the transport may still be reading after Do
	started bool
}

func (e *endless) Read(p []byte) (int, error) {
	read := e.read.Load()
	if read >= e.n {
		return 0, io.EOF
	}
	k := 0
	if !e.started {
		e.started = true
		k = copy(p, `{"model":"fake-llama-3-8b","messages":[{"role":"user","content":"`)
	}
	for ; k < len(p) && read+int64(k) < e.n; k++ {
		p[k] = 'x'
	}
	e.read.Add(int64(k))
	return k, nil
}

// TestHugeBody sends a 1 GB body through the whole stack (middleware reading
// the model, then the handler): it must be refused with 413 in the OpenAI
// error shape after reading a bounded prefix, not buffered.
func TestHugeBody(t *testing.T) {
	st := newStack(t)
	body := &endless{n: 1 << 30}
	req, err := http.NewRequest("POST", st.http.URL+"/v1/chat/completions", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = body.n
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The server may close the connection before the client sends
		// everything; that is a refusal too, as long as little was read.
		t.Logf("client: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"code":"request_too_large"`) {
			t.Errorf("status %d %s, want 413 request_too_large", resp.StatusCode, b)
		}
	}
	if n := body.read.Load(); n > 64<<20 {
		t.Errorf("the client had to send %d bytes, want the server to stop reading near %d", n, server.MaxBodyBytes)
	}
}
