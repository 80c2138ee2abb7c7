package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/middleware"
)

// A handler that never calls the recorder (a proxy in front of vLLM, say)
// still gets its tokens: the middleware reads them from the response.
func ExampleWithResponseAccounting() {
	inf := inference.NewMetrics()
	mw := middleware.New(
		middleware.WithInference(inf),
		middleware.WithModel(middleware.ModelFromJSONBody(0)),
		middleware.WithResponseAccounting(middleware.OpenAIRoutes),
	)
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"model":"llama","choices":[{"delta":{"content":"Hi"}}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`+"\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	mw.Handler(proxy).ServeHTTP(httptest.NewRecorder(),
		httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"llama","stream":true}`)))

	reg := prometheus.NewRegistry()
	reg.MustRegister(inf)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "inference_tokens_total":
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "gen_ai_token_type" {
						fmt.Printf("%s tokens: %v\n", l.GetValue(), m.GetCounter().GetValue())
					}
				}
			}
		case "gen_ai_server_time_to_first_token_seconds":
			fmt.Println("first tokens timed:", mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	// Output:
	// first tokens timed: 1
	// input tokens: 5
	// output tokens: 1
}
