// Package load drives the inference-server example with a bounded number of
// concurrent chat requests (plain JSON, streaming SSE and, optionally, gRPC
// Generate) and summarises what the client saw: errors, and p50/p95 latency
// and time to first token.
//
// # Example
//
//	sum := load.Run(ctx, load.Config{
//		URL:         "http://127.0.0.1:8080",
//		Requests:    40,
//		Concurrency: 4,
//		Model:       "fake-llama-3-8b",
//		StreamRatio: 0.5,
//	})
//	sum.Print(os.Stdout)
//	if !sum.OK() {
//		os.Exit(1)
//	}
package load
