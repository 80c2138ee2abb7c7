// Command otlpsmoke sends one small trace (a parent span and a child span) over OTLP gRPC and prints its
// trace ID, so e2e.sh can check that Jaeger receives and serves traces before any example runs.
//
// # Usage
//
// The exporter reads the standard OTEL_EXPORTER_OTLP_* variables:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_EXPORTER_OTLP_INSECURE=true \
//		go run ./examples/stack/internal/otlpsmoke -service e2e-smoke
package main
