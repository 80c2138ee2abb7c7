package tracing

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/genai"
)

// Span names of the phase spans.
const (
	SpanModelLoad = "model.load"
	SpanTokenize  = "tokenize"
	SpanForward   = "forward"
)

// Attribute keys set by the span options. No semantic convention names these
// yet, hence the modeltel. prefix.
const (
	BatchSizeKey      = attribute.Key("modeltel.batch.size")      // int
	SequenceLengthKey = attribute.Key("modeltel.sequence.length") // int, tokens
	PhaseKey          = attribute.Key("modeltel.forward.phase")   // "prefill" or "decode"
)

// Phase is the stage of autoregressive generation a forward pass serves.
type Phase string

// The phases of a forward pass.
const (
	PhasePrefill Phase = "prefill" // the prompt, all positions at once
	PhaseDecode  Phase = "decode"  // one new token per sequence
)

// SpanOption adds an attribute to, or picks the tracer provider of, a span
// started by this package. The zero SpanOption does nothing. Options are plain
// values: passing them allocates nothing.
type SpanOption struct {
	kv    attribute.KeyValue
	attrs []attribute.KeyValue
	tp    trace.TracerProvider
}

// WithBatchSize sets modeltel.batch.size, the number of sequences in the batch.
func WithBatchSize(n int) SpanOption { return SpanOption{kv: BatchSizeKey.Int(n)} }

// WithSequenceLength sets modeltel.sequence.length, in tokens.
func WithSequenceLength(n int) SpanOption { return SpanOption{kv: SequenceLengthKey.Int(n)} }

// WithPhase sets modeltel.forward.phase.
func WithPhase(p Phase) SpanOption { return SpanOption{kv: PhaseKey.String(string(p))} }

// WithAttributes adds attributes to the span, at start (where samplers see
// them). The slice is not copied; do not change it afterwards.
func WithAttributes(attrs ...attribute.KeyValue) SpanOption { return SpanOption{attrs: attrs} }

// WithTracerProvider starts the span with tp instead of the provider chosen
// from ctx (see StartForward). A nil tp is ignored.
func WithTracerProvider(tp trace.TracerProvider) SpanOption { return SpanOption{tp: tp} }

// StartModelLoad starts a "model.load" span with gen_ai.request.model = model
// (left out when empty). End it when the weights are ready to serve.
func StartModelLoad(ctx context.Context, model string, opts ...SpanOption) (context.Context, trace.Span) {
	var extra []attribute.KeyValue
	if model != "" {
		extra = []attribute.KeyValue{genai.RequestModelKey.String(model)}
	}
	return start(ctx, SpanModelLoad, extra, opts)
}

// StartTokenize starts a "tokenize" span; WithSequenceLength records the
// number of tokens produced.
func StartTokenize(ctx context.Context, opts ...SpanOption) (context.Context, trace.Span) {
	return start(ctx, SpanTokenize, nil, opts)
}

// StartForward starts a "forward" span, one model forward pass; give it
// WithBatchSize, WithSequenceLength and WithPhase.
//
// Like every Start function of this package it starts the span as a child of
// the span in ctx, with that span's tracer provider when ctx holds a local
// span (so the phase spans follow the provider of the request that started
// them), and with otel.GetTracerProvider() otherwise, including when ctx holds
// only a remote span context extracted from a request. WithTracerProvider
// overrides that choice. The returned span must be ended; its methods are
// safe for concurrent use.
func StartForward(ctx context.Context, opts ...SpanOption) (context.Context, trace.Span) {
	return start(ctx, SpanForward, nil, opts)
}

// StartRequest starts the GenAI request span, named "{operation} {model}" (or
// "{operation}" when model is empty), with gen_ai.operation.name and
// gen_ai.request.model, exactly as the middleware names it. The model becomes
// part of the span name, which tracing backends index: when it comes from a
// request, pass a bounded value (the label inference.Metrics.Bound returns,
// "other" beyond the allowlist or cap), never the raw string a client sent.
//
// The span carries gen_ai.provider.name (Required on GenAI spans):
// "self_hosted", as the inference metrics label it by default, unless
// WithProviderName says otherwise.
func StartRequest(ctx context.Context, operation, model string, opts ...SpanOption) (context.Context, trace.Span) {
	tp, attrs := resolve(ctx, nil, opts)
	hasProvider := false
	for _, kv := range attrs {
		if kv.Key == genai.ProviderNameKey {
			hasProvider = true
			break
		}
	}
	if !hasProvider {
		attrs = append(attrs, genai.ProviderNameKey.String(genai.DefaultProviderName))
	}
	return genai.StartRequestSpan(ctx, tp.Tracer(genai.TracerName), operation, model, attrs...)
}

// WithProviderName sets gen_ai.provider.name on the span of StartRequest
// (see inference.WithProviderName for the values).
func WithProviderName(name string) SpanOption {
	return SpanOption{kv: genai.ProviderNameKey.String(name)}
}

func start(ctx context.Context, name string, extra []attribute.KeyValue, opts []SpanOption) (context.Context, trace.Span) {
	tp, attrs := resolve(ctx, extra, opts)
	return tp.Tracer(genai.TracerName).Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrs...))
}

func resolve(ctx context.Context, extra []attribute.KeyValue, opts []SpanOption) (trace.TracerProvider, []attribute.KeyValue) {
	var tp trace.TracerProvider
	n := len(extra)
	for _, o := range opts {
		n += 1 + len(o.attrs)
	}
	attrs := append(make([]attribute.KeyValue, 0, n), extra...)
	for _, o := range opts {
		if o.kv.Key != "" {
			attrs = append(attrs, o.kv)
		}
		attrs = append(attrs, o.attrs...)
		if o.tp != nil {
			tp = o.tp
		}
	}
	if tp == nil {
		tp = providerFrom(ctx)
	}
	return tp, attrs
}

// providerFrom returns the provider of the local span in ctx, or the global.
func providerFrom(ctx context.Context) trace.TracerProvider {
	span := trace.SpanFromContext(ctx)
	if sc := span.SpanContext(); sc.IsValid() && !sc.IsRemote() {
		return span.TracerProvider()
	}
	return otel.GetTracerProvider()
}
