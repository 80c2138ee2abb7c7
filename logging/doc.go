// Package logging builds slog loggers whose records carry the trace and span
// ids of the request they belong to, and pushes them to Loki without ever
// making the caller wait.
//
// # Trace ids
//
// NewHandler wraps any slog.Handler and adds trace_id and span_id, lower-case
// hex, at the top level of every record logged with a ctx that holds a valid
// span context, also under WithGroup. It passes testing/slogtest.
//
// # Loggers
//
// New returns a *slog.Logger writing JSON to stdout (WithConsole: tint's
// coloured text; WithWriter: another writer) at info level (WithLevel, or the
// LOG_LEVEL environment variable, which wins), and fanning out to Loki
// (WithLoki) and other handlers (WithHandler). Close flushes the Loki
// handler that New built.
//
// # Loki
//
// NewLoki returns a *Loki, a slog.Handler that batches lines by count, bytes
// and time and posts them to /loki/api/v1/push as snappy protobuf (Loki's
// default) or JSON, up to MaxInFlight pushes at once. Any receiver of Loki's
// push API will do: Loki, VictoriaLogs (URL "http://host:9428/insert"), an
// OpenTelemetry Collector's lokireceiver. Stream labels come from the config and stay few; the
// level is a label only when asked; trace_id and span_id are structured
// metadata; the line is the record as JSON. Handle only formats and queues:
// a full queue drops the new line, and 429, 5xx and network errors are
// retried with exponential backoff and jitter while other 4xx are dropped at
// once. Every drop is counted in logging_loki_dropped_lines_total{reason}
// (*Loki is a prometheus.Collector) and reported by a rate-limited warning on
// stderr or LokiConfig.Fallback, never on the Loki handler itself.
// Close(ctx) sends what is queued, within ctx.
//
// # Example
//
//	loki, err := logging.NewLoki(logging.LokiConfig{
//		URL:    "http://127.0.0.1:3100",
//		Labels: map[string]string{"service_name": "api", "env": "prod"},
//	})
//	if err != nil {
//		return err
//	}
//	reg.MustRegister(loki)
//	logger := logging.New(logging.WithHandler(loki))
//	logger.InfoContext(ctx, "request done", "status", 200)
//
//	// at shutdown
//	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//	defer cancel()
//	_ = loki.Close(ctx)
package logging
