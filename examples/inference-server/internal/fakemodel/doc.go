// Package fakemodel is a deterministic stand-in for a large language model, so
// that the inference-server example runs, and its telemetry can be tested,
// without a GPU or weights.
//
// # Behaviour
//
// A [Model] "loads" for a configurable time ([Model.Load]), splits text into
// tokens on whitespace and punctuation ([Tokenize]), and generates a token
// stream that depends only on the model name and the prompt: the same prompt
// always gives the same answer. Tokens come at a configurable rate (tokens per
// second); every wait honours context cancellation. Generation is split into
// the steps a real server traces: one prefill ([Model.Prefill]) over the whole
// prompt, then one decode step per token ([Sequence.Next]).
//
// # Example
//
//	m := fakemodel.New("fake-llama-3-8b", fakemodel.Config{TokensPerSecond: 50})
//	if err := m.Load(ctx); err != nil {
//		return err
//	}
//	seq, err := m.Prefill(ctx, fakemodel.Tokenize("Why is the sky blue?"), 32)
//	if err != nil {
//		return err
//	}
//	for {
//		tok, err := seq.Next(ctx)
//		if errors.Is(err, io.EOF) {
//			break // seq.FinishReason() is "stop" or "length"
//		}
//		if err != nil {
//			return err
//		}
//		fmt.Print(tok)
//	}
package fakemodel
