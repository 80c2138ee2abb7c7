// Package modeltel makes AI inference and training services observable with the
// tools their operators already run: Prometheus for metrics, OpenTelemetry (OTLP,
// Jaeger) for traces and log/slog JSON (Loki) for logs.
//
// The feature packages can be used one by one:
//
//   - gpumon: GPU telemetry read from NVML at scrape time, a Prometheus
//     collector that can replace dcgm-exporter without DCGM.
//   - inference: per-request LLM serving metrics (latency, time to first token,
//     time per output token, tokens) following the OpenTelemetry GenAI
//     conventions.
//   - middleware: net/http and gRPC server middleware that records HTTP/gRPC
//     metrics, continues the incoming trace and starts an inference recorder.
//   - training: step time, loss, learning rate, throughput and stall metrics,
//     and Ingest for the JSON lines a Python trainer prints.
//   - tracing: an OTLP gRPC tracer provider and spans for model load,
//     tokenize and forward passes.
//   - logging: slog handlers that carry trace and span IDs, and a Loki push
//     handler that never blocks the caller.
//
// This package wires them together with one call, [Start], which returns a
// [Telemetry] holding a Prometheus registry, the inference metrics, the
// middleware, the logger and (where NVML is present) the GPU collector, with a
// single Shutdown.
//
// # Quick start
//
//	func main() {
//		ctx := context.Background()
//		tel, err := modeltel.Start(ctx, modeltel.WithServiceName("chat-api"))
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer tel.Shutdown(context.Background())
//
//		mux := http.NewServeMux()
//		mux.Handle("GET /metrics", tel.MetricsHandler())
//		mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
//			rec := inference.FromContext(r.Context())
//			rec.InputTokens(42)
//			for i := 0; i < 16; i++ {
//				rec.OutputTokens(1) // first call marks the first token
//			}
//			fmt.Fprintln(w, "ok")
//			rec.End(nil) // the response is complete (the middleware would end it otherwise)
//		})
//		log.Fatal(http.ListenAndServe("127.0.0.1:8080", tel.Middleware().Handler(mux)))
//	}
//
// # Failure
//
// Telemetry never fails the request it observes: an exporter that cannot reach
// its backend, a GPU that stops answering or a full log queue is counted and
// reported, and the request goes on.
package modeltel
