// Package genai holds the OpenTelemetry GenAI semantic-convention names that
// several modeltel packages share, and the one function that starts the GenAI
// request span, so that tracing.StartRequest and the middleware name and
// describe that span the same way.
package genai

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of the GenAI conventions (semconv v1.41, the last release of
// the main semantic-conventions repository that carries the gen_ai namespace;
// the names are unchanged in semantic-conventions-genai).
const (
	OperationNameKey            = semconv.GenAIOperationNameKey             // gen_ai.operation.name
	RequestModelKey             = semconv.GenAIRequestModelKey              // gen_ai.request.model
	ProviderNameKey             = semconv.GenAIProviderNameKey              // gen_ai.provider.name
	UsageInputTokensKey         = semconv.GenAIUsageInputTokensKey          // gen_ai.usage.input_tokens
	UsageOutputTokensKey        = semconv.GenAIUsageOutputTokensKey         // gen_ai.usage.output_tokens
	UsageCacheReadInputKey      = semconv.GenAIUsageCacheReadInputTokensKey // gen_ai.usage.cache_read.input_tokens
	ResponseModelKey            = semconv.GenAIResponseModelKey             // gen_ai.response.model
	ResponseIDKey               = semconv.GenAIResponseIDKey                // gen_ai.response.id
	ResponseFinishReasonsKey    = semconv.GenAIResponseFinishReasonsKey     // gen_ai.response.finish_reasons
	ResponseTimeToFirstChunkKey = semconv.GenAIResponseTimeToFirstChunkKey  // gen_ai.response.time_to_first_chunk
	RequestMaxTokensKey         = semconv.GenAIRequestMaxTokensKey          // gen_ai.request.max_tokens
	RequestTemperatureKey       = semconv.GenAIRequestTemperatureKey        // gen_ai.request.temperature
	RequestTopPKey              = semconv.GenAIRequestTopPKey               // gen_ai.request.top_p
	RequestStreamKey            = semconv.GenAIRequestStreamKey             // gen_ai.request.stream
	ServerAddressKey            = semconv.ServerAddressKey                  // server.address
	ServerPortKey               = semconv.ServerPortKey                     // server.port
	ErrorTypeKey                = semconv.ErrorTypeKey                      // error.type
)

// FirstTokenEvent is the name of the span event recorded when the first output
// token of a request is produced. No convention names it yet.
const FirstTokenEvent = "gen_ai.first_token"

// TracerName is the instrumentation scope of the spans modeltel starts.
const TracerName = "github.com/modeltel/modeltel"

// SpanName returns the GenAI request span name, "{operation} {model}", or the
// operation alone when the model is unknown, as the convention says.
func SpanName(operation, model string) string {
	if model == "" {
		return operation
	}
	return operation + " " + model
}

// StartRequestSpan starts the GenAI request span as a child of the span in ctx,
// with gen_ai.operation.name and gen_ai.request.model set. extra attributes are
// added at start, where samplers see them.
func StartRequestSpan(ctx context.Context, tracer trace.Tracer, operation, model string, extra ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs := make([]attribute.KeyValue, 0, 2+len(extra))
	attrs = append(attrs, OperationNameKey.String(operation))
	if model != "" {
		attrs = append(attrs, RequestModelKey.String(model))
	}
	attrs = append(attrs, extra...)
	return tracer.Start(ctx, SpanName(operation, model),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrs...))
}
