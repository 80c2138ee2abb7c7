// Package tracing sets up OpenTelemetry tracing over OTLP gRPC and starts the
// spans of model serving: the GenAI request span and the phase spans
// model.load, tokenize and forward.
//
// # Setup
//
// Setup builds an SDK tracer provider (OTLP gRPC exporter, batch span
// processor, resource, sampler) and installs it, the W3C trace-context and
// baggage propagator and a rate-limited error handler as the otel globals.
// NewProvider builds the same provider and installs nothing; the caller owns
// it and calls its Shutdown.
//
// # Environment
//
// The standard variables work, and win over the options that set the same
// thing: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (resource),
// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// OTEL_EXPORTER_OTLP_(TRACES_)INSECURE, _HEADERS, _TIMEOUT, _COMPRESSION and
// _CERTIFICATE (read by the otlptracegrpc exporter), OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (read by the SDK), OTEL_BSP_* (batch processor) and
// OTEL_SDK_DISABLED=true, which leaves out the exporter: spans are then
// non-recording and nothing is sent.
//
// # No collector
//
// A collector that is down costs the service nothing but a warning: span ends
// never wait (the batch processor drops spans when its queue is full),
// shutdown is bounded by its context and gives up the flush after one failed
// export (ShutdownExportTimeout), and export errors reach the error handler,
// which Setup makes log at most once a minute. Every sampled span is counted
// as exported, export failed or dropped (Metrics, WithMetrics). The exporter
// reconnects within about 2 s of the collector coming back (gRPC backoff
// bounded at 1 s, export retries from 250 ms to 1 s).
//
// # Spans
//
// The Start functions start each span as a child of the span in ctx, with the
// tracer provider of that span when it is local, else the global provider:
//
//	span name            attributes
//	{operation} {model}  gen_ai.operation.name, gen_ai.request.model
//	model.load           gen_ai.request.model
//	tokenize             modeltel.sequence.length (tokens)
//	forward              modeltel.batch.size, modeltel.sequence.length,
//	                     modeltel.forward.phase (prefill | decode)
//
// # Example
//
//	shutdown, err := tracing.Setup(ctx, tracing.WithServiceName("api"),
//		tracing.WithEndpoint("http://127.0.0.1:4317"))
//	if err != nil {
//		return err
//	}
//	defer func() {
//		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//		defer cancel()
//		_ = shutdown(ctx)
//	}()
//
//	ctx, req := tracing.StartRequest(ctx, "chat", "llama-3-8b")
//	defer req.End()
//	_, fwd := tracing.StartForward(ctx, tracing.WithBatchSize(8),
//		tracing.WithSequenceLength(512), tracing.WithPhase(tracing.PhasePrefill))
//	fwd.End()
package tracing
