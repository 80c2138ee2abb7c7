package fakemodel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
)

func Example() {
	ctx := context.Background()
	m := fakemodel.New("fake-llama-3-8b", fakemodel.Config{}) // no delays
	if err := m.Load(ctx); err != nil {
		fmt.Println(err)
		return
	}
	prompt := fakemodel.Tokenize("Why is the sky blue?")
	seq, err := m.Prefill(ctx, prompt, 8)
	if err != nil {
		fmt.Println(err)
		return
	}
	var out strings.Builder
	for {
		tok, err := seq.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		out.WriteString(tok)
	}
	fmt.Println(len(prompt), "prompt tokens,", seq.Generated(), "generated, finish:", seq.FinishReason())
	// Output: 6 prompt tokens, 8 generated, finish: length
}
