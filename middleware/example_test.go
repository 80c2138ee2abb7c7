package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/middleware"
)

func ExampleMiddleware_Handler() {
	inf := inference.NewMetrics()
	mw := middleware.New(
		middleware.WithInference(inf),
		middleware.WithModel(middleware.ModelFromJSONBody(1<<20)),
	)
	reg := prometheus.NewRegistry()
	reg.MustRegister(mw.Collector()) // mw and inf, as one collector

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		rec := inference.FromContext(r.Context()) // started by the middleware
		rec.InputTokens(3)
		for _, tok := range []string{"Hello", " world"} {
			rec.OutputTokens(1)
			fmt.Fprintf(w, "data: %s\n\n", tok)
			w.(http.Flusher).Flush()
		}
	})
	srv := httptest.NewServer(mw.Handler(mux))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"llama-3-8b","stream":true}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	fmt.Print(string(body))
	n, _ := testutil.GatherAndCount(reg, "inference_tokens_total")
	fmt.Println(n, "token series")
	// Output:
	// data: Hello
	//
	// data:  world
	//
	// 2 token series
}
