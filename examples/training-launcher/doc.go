// Command training-launcher supervises a trainer process that prints JSON
// lines (see package training), exposes its metrics on /metrics, restarts it
// on failure with exponential backoff (up to --max-restarts failures in a row;
// a run of --healthy-after before a failure starts the count and the backoff
// over) and forwards SIGTERM/SIGINT so it can checkpoint. It exits with the
// trainer's status. The run's goodput (training_goodput_ratio and
// training_badput_seconds_total by reason: startup, data_wait, checkpoint,
// restart, recompute, other) includes the restarts it makes and the steps the
// trainer runs again after resuming from an older checkpoint.
//
// A trainer that ends on its own (done, or failed past --max-restarts) leaves
// the launcher serving /metrics for --linger (default 30s: two scrapes at the
// common 15 s interval; raise it to twice your scrape interval), so that
// Prometheus scrapes the last steps and the exit code before the series go
// away; /healthz then says "ok exited". A signal ends the wait at once, and
// after a forwarded signal there is no wait (the process was told to go).
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
// Logs are slog JSON on stdout; the lines of the run carry trace_id and span_id
// whether or not traces are exported (with no OTLP endpoint the spans get ids
// but are neither sampled nor sent); with --loki-url they
// are also pushed to Loki (stream label service_name="training-launcher", or
// OTEL_SERVICE_NAME). The run, each trainer attempt and each checkpoint are
// spans, exported over OTLP gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is set.
package main
