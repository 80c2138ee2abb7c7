// Package openai holds the subset of the OpenAI wire format that the
// inference-server example serves (chat completions, text completions,
// embeddings, models) and the loadgen example sends, and a small chat client
// that measures what a caller sees (latency, time to first token). Clients
// outside this repository use the official SDKs, which the server's tests
// run against it.
//
// # Wire format
//
// POST /v1/chat/completions takes a [ChatRequest]. Without "stream" the answer
// is one [ChatCompletion]; with it, server-sent events "data: {json}\n\n" each
// holding a [ChatCompletionChunk] whose choices[0].delta.content is the next
// piece of text, then (only with stream_options.include_usage, as OpenAI does)
// a chunk with empty choices and the [Usage], then "data: [DONE]". The
// completion limit is max_completion_tokens, or the older max_tokens. Errors are an
// [ErrorResponse] with a 4xx or 5xx status.
//
// # Client
//
//	c := &openai.Client{BaseURL: "http://127.0.0.1:8080"}
//	res, err := c.Chat(ctx, openai.ChatRequest{
//		Model:    "fake-llama-3-8b",
//		Messages: []openai.Message{{Role: "user", Content: "Why is the sky blue?"}},
//		Stream:   true,
//	})
//	if err != nil {
//		return err
//	}
//	fmt.Println(res.Text, res.TTFT, res.Usage.CompletionTokens)
package openai
