package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func main() {
	service := flag.String("service", "e2e-smoke", "service.name of the trace")
	timeout := flag.Duration("timeout", 10*time.Second, "time allowed to export the trace")
	flag.Parse()
	if err := run(*service, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "otlpsmoke:", err)
		os.Exit(1)
	}
}

func run(service string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return fmt.Errorf("exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
	tracer := tp.Tracer("github.com/modeltel/modeltel/examples/stack/internal/otlpsmoke")

	pctx, parent := tracer.Start(ctx, "smoke parent")
	_, child := tracer.Start(pctx, "smoke child")
	child.End()
	parent.End()

	if err := tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Println(parent.SpanContext().TraceID().String())
	return nil
}
