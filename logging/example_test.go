package logging_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/logging"
)

func ExampleNewHandler() {
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	logger := slog.New(logging.NewHandler(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime})))

	// A span context, as the tracing middleware puts it in a request's ctx.
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
		SpanID:  trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	logger.WithGroup("req").InfoContext(ctx, "done", "status", 200)
	// Output:
	// {"level":"INFO","msg":"done","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","req":{"status":200}}
}

func ExampleNewLoki() {
	loki, err := logging.NewLoki(logging.LokiConfig{
		URL:      "http://127.0.0.1:3100",
		Labels:   map[string]string{"service_name": "api", "env": "dev"},
		TenantID: "team-a",
	})
	if err != nil {
		fmt.Println(err) // a bad config: empty URL, bad scheme, bad label name...
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(loki) // logging_loki_* metrics

	logger := logging.New(logging.WithHandler(loki))
	logger.Info("model loaded", "model", "llama-3-8b")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = loki.Close(ctx) // flushes what is queued
}

func ExampleNew() {
	logger := logging.New(logging.WithLevel(slog.LevelDebug), logging.WithLoki(logging.LokiConfig{
		URL:    "http://127.0.0.1:3100",
		Labels: map[string]string{"service_name": "api"},
	}))
	logger.Debug("starting")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = logging.Close(ctx, logger) // flushes the Loki handler New made
}
