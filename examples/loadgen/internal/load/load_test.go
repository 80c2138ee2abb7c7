package load_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/modeltel/modeltel/examples/inference-server/generatepb"
	"github.com/modeltel/modeltel/examples/internal/openai"
	"github.com/modeltel/modeltel/examples/loadgen/internal/load"
	"github.com/modeltel/modeltel/internal/testkit"
)

func TestKind(t *testing.T) {
	tests := []struct {
		stream, grpc float64
		want         map[string]int
	}{
		{0, 0, map[string]int{load.KindHTTP: 40}},
		{0.5, 0, map[string]int{load.KindHTTP: 20, load.KindHTTPStream: 20}},
		{1, 0, map[string]int{load.KindHTTPStream: 40}},
		{0.5, 0.25, map[string]int{load.KindGRPC: 10, load.KindHTTPStream: 15, load.KindHTTP: 15}},
		{0.3, 1, map[string]int{load.KindGRPC: 40}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("stream=%v,grpc=%v", tt.stream, tt.grpc), func(t *testing.T) {
			got := map[string]int{}
			for i := range 40 {
				got[load.Kind(i, tt.stream, tt.grpc)]++
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("kinds = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	var rs []load.Result
	for i := 1; i <= 20; i++ {
		rs = append(rs, load.Result{Kind: load.KindHTTPStream, Latency: time.Duration(i) * time.Millisecond, TTFT: time.Duration(i) * time.Microsecond, Tokens: 2})
	}
	rs = append(rs, load.Result{Kind: load.KindHTTP, Latency: time.Second, TTFT: time.Second, Tokens: 3},
		load.Result{Kind: load.KindHTTP, Err: fmt.Errorf("boom")})
	s := load.Summarize(rs)
	want := load.Summary{Requests: 22, Succeeded: 21, Failed: 1, OutputTokens: 43,
		Latency: load.Percentiles{N: 21, P50: 11 * time.Millisecond, P95: 20 * time.Millisecond, Max: time.Second},
		TTFT:    load.Percentiles{N: 20, P50: 10 * time.Microsecond, P95: 19 * time.Microsecond, Max: 20 * time.Microsecond}}
	if s.Requests != want.Requests || s.Succeeded != want.Succeeded || s.Failed != want.Failed ||
		s.OutputTokens != want.OutputTokens || s.Latency != want.Latency || s.TTFT != want.TTFT {
		t.Errorf("summary = %+v\nwant      %+v", s, want)
	}
	if s.Errors["boom"] != 1 || s.ByKind[load.KindHTTP] != 2 || s.OK() {
		t.Errorf("errors %v, kinds %v, OK %v", s.Errors, s.ByKind, s.OK())
	}
}

// server is a fake inference server: HTTP chat completions that fail for the
// model "bad" (streams with the usage only when asked), and a gRPC Generate.
type server struct {
	generatepb.UnimplementedGeneratorServer
	http, grpc atomic.Int64
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.http.Add(1)
	var req openai.ChatRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	if req.Model == "bad" {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(openai.ErrorResponse{Error: openai.Error{Message: "model not found", Type: "invalid_request_error"}})
		return
	}
	usage := &openai.Usage{PromptTokens: 4, CompletionTokens: 2, TotalTokens: 6}
	if !req.Stream {
		_ = json.NewEncoder(w).Encode(openai.ChatCompletion{Choices: []openai.Choice{{Message: openai.Message{Content: "a b"}, FinishReason: "stop"}}, Usage: usage})
		return
	}
	for _, c := range []string{"a", " b"} {
		b, _ := json.Marshal(openai.ChatCompletionChunk{Choices: []openai.ChunkChoice{{Delta: openai.Delta{Content: c}}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage { // as OpenAI: usage only when asked
		b, _ := json.Marshal(openai.ChatCompletionChunk{Choices: []openai.ChunkChoice{}, Usage: usage})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func (s *server) Generate(req *generatepb.GenerateRequest, stream grpc.ServerStreamingServer[generatepb.GenerateResponse]) error {
	s.grpc.Add(1)
	if req.Model == "bad" {
		return status.Error(codes.NotFound, "model not found")
	}
	if err := stream.Send(&generatepb.GenerateResponse{Token: "a"}); err != nil {
		return err
	}
	return stream.Send(&generatepb.GenerateResponse{Index: 1, FinishReason: "stop", Usage: &generatepb.Usage{PromptTokens: 4, CompletionTokens: 1}})
}

func start(t *testing.T) (*server, string, generatepb.GeneratorClient) {
	t.Helper()
	s := &server{}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	gs := grpc.NewServer()
	generatepb.RegisterGeneratorServer(gs, s)
	return s, hs.URL, generatepb.NewGeneratorClient(testkit.ServeBufconn(t, gs))
}

func TestRun(t *testing.T) {
	tests := []struct {
		name                 string
		model                string
		grpc                 bool
		wantOK               bool
		wantHTTP, wantGRPC   int64
		wantTokens, wantTTFT int
	}{
		{"http", "m", false, true, 40, 0, 20*2 + 20*2, 20},
		{"http and grpc", "m", true, true, 30, 10, 30*2 + 10*1, 15 + 10},
		{"errors", "bad", true, false, 30, 10, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, url, gc := start(t)
			cfg := load.Config{URL: url, Requests: 40, Concurrency: 4, Model: tt.model, StreamRatio: 0.5, Timeout: time.Minute}
			if tt.grpc {
				cfg.GRPC, cfg.GRPCRatio = gc, 0.25
			}
			s := load.Run(context.Background(), cfg)
			if s.OK() != tt.wantOK || srv.http.Load() != tt.wantHTTP || srv.grpc.Load() != tt.wantGRPC || s.OutputTokens != tt.wantTokens {
				t.Errorf("OK %v, http %d, grpc %d, tokens %d; want %v, %d, %d, %d (%+v)",
					s.OK(), srv.http.Load(), srv.grpc.Load(), s.OutputTokens, tt.wantOK, tt.wantHTTP, tt.wantGRPC, tt.wantTokens, s)
			}
			if s.TTFT.N != tt.wantTTFT {
				t.Errorf("TTFT samples = %d, want %d", s.TTFT.N, tt.wantTTFT)
			}
			var out bytes.Buffer
			s.Print(&out)
			if !strings.Contains(out.String(), "requests: 40 ") || !strings.Contains(out.String(), "p95") {
				t.Errorf("summary output:\n%s", out.String())
			}
		})
	}
}

func TestRunCancelled(t *testing.T) {
	_, url, _ := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := load.Run(ctx, load.Config{URL: url, Requests: 10, Concurrency: 2})
	if s.OK() || s.Succeeded+s.Failed+s.NotSent != 10 {
		t.Errorf("cancelled run: %+v", s)
	}
}
