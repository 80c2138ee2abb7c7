package inference_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/inference"
)

func ExampleMetrics_Start() {
	m := inference.NewMetrics(inference.WithModels("llama-3-8b"))
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	ctx, rec := m.Start(context.Background(), inference.Request{Model: "llama-3-8b", Operation: "chat"})
	rec.InputTokens(12)
	generate(ctx) // deeper code reaches the recorder through ctx
	rec.End(nil)

	n, _ := testutil.GatherAndCount(reg, "inference_tokens_total")
	in, out := rec.Tokens()
	fmt.Println(n, "token series;", in, "in,", out, "out")
	// Output: 2 token series; 12 in, 3 out
}

func generate(ctx context.Context) {
	rec := inference.FromContext(ctx) // never nil-checked: a missing recorder does nothing
	for range 3 {
		rec.OutputTokens(1)
	}
}

func ExampleErrorType() {
	fmt.Println(inference.ErrorType(context.Canceled), inference.ErrorType(fmt.Errorf("x")))
	// Output: canceled _OTHER
}
