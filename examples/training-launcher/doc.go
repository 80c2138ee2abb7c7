// Command training-launcher supervises a trainer process that prints JSON
// lines (see package training), exposes its metrics on /metrics, restarts it
// on failure with exponential backoff (up to --max-restarts failures in a row;
// a run of --healthy-after before a failure starts the count and the backoff
// over) and forwards SIGTERM/SIGINT so it can checkpoint. It exits with the
// trainer's status.
//
// # Usage
//
// Flags come first, the trainer command after "--" (default: python3
// examples/training-launcher/trainer.py, run from the repository root):
//
//	go run ./examples/training-launcher --run demo-1 --job llama-sft --max-restarts 3 --backoff 1s -- \
//		python3 examples/training-launcher/trainer.py --steps 300 --step-time 0.1 --fail-at 50
//	curl -s 127.0.0.1:8082/metrics | grep ^training_
//	curl -s 127.0.0.1:8082/healthz
//
// Logs are slog JSON on stdout with trace_id and span_id; with --loki-url they
// are also pushed to Loki (stream label service_name="training-launcher", or
// OTEL_SERVICE_NAME). The run, each trainer attempt and each checkpoint are
// spans, exported over OTLP gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is set.
package main
