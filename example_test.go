package modeltel_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/modeltel/modeltel"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/middleware"
)

func ExampleStart() {
	ctx := context.Background()
	tel, err := modeltel.Start(ctx,
		modeltel.WithServiceName("chat-api"),
		modeltel.WithoutGPU(),
		modeltel.WithLogger(slog.New(slog.DiscardHandler)), // keep the example's output clean
		modeltel.WithMiddlewareOptions(middleware.WithModel(func(*http.Request) string { return "llama-3-8b" })),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tel.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.MetricsHandler())
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		rec := inference.FromContext(r.Context())
		rec.InputTokens(42)
		for range 16 {
			rec.OutputTokens(1) // the first call marks the first token
		}
		_, _ = io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(tel.Middleware().Handler(mux))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()

	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "inference_tokens_total") || strings.HasPrefix(line, "gen_ai_server_time_to_first_token_seconds_count") {
			fmt.Println(line)
		}
	}
	// Output:
	// gen_ai_server_time_to_first_token_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="self_hosted",gen_ai_request_model="llama-3-8b"} 1
	// inference_tokens_total{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",gen_ai_token_type="input"} 42
	// inference_tokens_total{gen_ai_operation_name="chat",gen_ai_request_model="llama-3-8b",gen_ai_token_type="output"} 16
}
