package gateway_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/modeltel/modeltel/examples/gateway/internal/gateway"
)

// defaultModels are the models examples/inference-server serves by default.
var defaultModels = []string{"fake-llama-3-8b", "fake-mistral-7b"}

// startInferenceServer builds and starts examples/inference-server (its
// server package is internal to it) on a free port and returns its URL once
// ready.
func startInferenceServer(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs examples/inference-server; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "inference-server")
	build := exec.Command("go", "build", "-o", bin, "github.com/modeltel/modeltel/examples/inference-server")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build inference-server: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--listen", addr, "--grpc-listen", "", "--load-time", "0s",
		"--tokens-per-second", "2000", "--max-tokens", "64")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	url := "http://" + addr
	for range 300 {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("inference-server not ready")
	return ""
}

// The gateway in front of the inference-server example (the real program:
// the gateway knows nothing of it but its traffic), driven by the official
// Go SDK: chat streams with and without the
// usage chunk, plain answers, embeddings and completions streams, concurrently; every metric is compared with
// what the clients saw.
func TestInferenceServerUpstream(t *testing.T) {
	e := newEnv(t, gateway.Config{Upstreams: []string{startInferenceServer(t)}})
	if got := e.gw.Models(); len(got) != 2 {
		t.Fatalf("models %v", got)
	}

	s := newSeen()
	var wg sync.WaitGroup
	const each = 4
	for i := range each {
		for _, model := range defaultModels {
			c := e.client("key-" + model)
			// A stream with the usage chunk.
			wg.Go(func() {
				if err := s.stream(context.Background(), c, model); err != nil {
					t.Error(err)
				}
			})
			// A stream without: the tokens are the content chunks.
			wg.Go(func() {
				st := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
					Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Why is the sky blue?")},
					MaxCompletionTokens: openai.Int(int64(8 + i)),
				})
				var chunks float64
				for st.Next() {
					for _, ch := range st.Current().Choices {
						if ch.Delta.Content != "" {
							chunks++
						}
					}
				}
				if err := st.Err(); err != nil {
					t.Error(err)
					return
				}
				s.mu.Lock()
				s.ok[200]++
				s.out += chunks
				if chunks > 0 {
					s.firstTokens++
				}
				s.mu.Unlock()
			})
			// Embeddings: input tokens from the usage.
			wg.Go(func() {
				em, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
					Model: openai.EmbeddingModel(model), Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("embed me")},
					EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
				})
				if err != nil {
					t.Error(err)
					return
				}
				s.mu.Lock()
				s.ok[200]++
				s.in += float64(em.Usage.PromptTokens)
				s.mu.Unlock()
			})
			// A legacy completions stream with the usage chunk.
			wg.Go(func() {
				st := c.Completions.NewStreaming(context.Background(), openai.CompletionNewParams{
					Model: openai.CompletionNewParamsModel(model), Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon")},
					MaxTokens: openai.Int(int64(3 + i)), StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
				})
				var chunks, in, out float64
				usage := false
				for st.Next() {
					ch := st.Current()
					for _, c := range ch.Choices {
						if c.Text != "" {
							chunks++
						}
					}
					if ch.Usage.TotalTokens > 0 {
						usage, in, out = true, float64(ch.Usage.PromptTokens), float64(ch.Usage.CompletionTokens)
					}
				}
				if err := st.Err(); err != nil {
					t.Error(err)
					return
				}
				if !usage {
					out = chunks
				}
				s.mu.Lock()
				s.ok[200]++
				s.in += in
				s.out += out
				if chunks > 0 {
					s.firstTokens++
				}
				s.mu.Unlock()
			})
			// A plain answer: tokens from its usage, no first token.
			wg.Go(func() {
				cc, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
					Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
					MaxCompletionTokens: openai.Int(int64(4 + i)),
				})
				if err != nil {
					t.Error(err)
					return
				}
				s.mu.Lock()
				s.ok[200]++
				s.in += float64(cc.Usage.PromptTokens)
				s.out += float64(cc.Usage.CompletionTokens)
				s.mu.Unlock()
			})
		}
	}
	wg.Wait()
	n := float64(each * 5 * len(defaultModels))
	e.waitRequests(t, n)
	e.waitValue(t, "http_server_request_duration_seconds", map[string]string{"http_response_status_code": "200"}, n)
	if got := e.value(t, "http_server_request_duration_seconds", map[string]string{"http_response_status_code": "200"}); got != s.ok[200] || got != n {
		t.Errorf("200s: %v, clients saw %v", got, s.ok[200])
	}
	checkTokens(t, e, s)
	if got := e.value(t, "gen_ai_server_time_to_first_token_seconds", nil); got != s.firstTokens {
		t.Errorf("ttft count %v, clients saw %v", got, s.firstTokens)
	}
	for _, model := range defaultModels {
		if got := e.value(t, "gen_ai_server_request_duration_seconds", map[string]string{"gen_ai_request_model": model}); got != 5*each {
			t.Errorf("%s: %v requests", model, got)
		}
	}
	// Every chat and completion has its finish reason from the traffic;
	// embeddings have none.
	if got := e.value(t, "inference_requests_total", map[string]string{"finish_reason": "unknown"}); got != each*2 {
		t.Errorf("%v requests without a finish reason, want the %d embeddings", got, each*2)
	}
	for op, want := range map[string]float64{"chat": 3 * each * 2, "embeddings": each * 2, "text_completion": each * 2} {
		if got := e.value(t, "gen_ai_server_request_duration_seconds", map[string]string{"gen_ai_operation_name": op}); got != want {
			t.Errorf("%s: %v requests, want %v", op, got, want)
		}
	}
	checkIdle(t, e)
}
