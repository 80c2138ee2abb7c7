package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// restoreGlobals puts the otel globals back after a test that calls Setup.
func restoreGlobals(t *testing.T) {
	t.Helper()
	tp, prop, eh := otel.GetTracerProvider(), otel.GetTextMapPropagator(), otel.GetErrorHandler()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(prop)
		otel.SetErrorHandler(eh)
	})
}

func shutdownOK(t *testing.T, shutdown func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestSetupExportsToOTLP(t *testing.T) {
	restoreGlobals(t)
	r := startReceiver(t)
	shutdown, err := Setup(context.Background(),
		WithEndpoint(r.addr), WithInsecure(),
		WithServiceName("svc"), WithServiceVersion("1.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); !ok {
		t.Errorf("global tracer provider is %T, want the SDK's", otel.GetTracerProvider())
	}
	fields := otel.GetTextMapPropagator().Fields()
	for _, f := range []string{"traceparent", "baggage"} {
		if !slices.Contains(fields, f) {
			t.Errorf("global propagator fields %v lack %q", fields, f)
		}
	}

	_, load := StartModelLoad(context.Background(), "llama-3-8b")
	load.End()
	ctx, req := StartRequest(context.Background(), "chat", "llama-3-8b")
	_, tok := StartTokenize(ctx, WithSequenceLength(12))
	tok.End()
	_, fwd := StartForward(ctx, WithBatchSize(8), WithSequenceLength(512), WithPhase(PhasePrefill))
	fwd.End()
	req.End()
	shutdownOK(t, shutdown) // flushes: nothing was exported before (batch timeout 5s)

	if got := len(r.got()); got != 4 {
		t.Fatalf("received %d spans (%v), want 4", got, names(r.got()))
	}
	request := r.byName(t, "chat llama-3-8b")
	if got := stringAttr(request.span.GetAttributes(), "gen_ai.operation.name"); got != "chat" {
		t.Errorf("request gen_ai.operation.name = %q", got)
	}
	if got := stringAttr(r.byName(t, "model.load").span.GetAttributes(), "gen_ai.request.model"); got != "llama-3-8b" {
		t.Errorf("model.load gen_ai.request.model = %q", got)
	}
	forward := r.byName(t, "forward")
	fa := forward.span.GetAttributes()
	if v, _ := attrValue(fa, "modeltel.batch.size"); v.GetIntValue() != 8 {
		t.Errorf("forward modeltel.batch.size = %v, want 8", v)
	}
	if v, _ := attrValue(fa, "modeltel.sequence.length"); v.GetIntValue() != 512 {
		t.Errorf("forward modeltel.sequence.length = %v, want 512", v)
	}
	if got := stringAttr(fa, "modeltel.forward.phase"); got != "prefill" {
		t.Errorf("forward modeltel.forward.phase = %q", got)
	}
	for _, child := range []gotSpan{forward, r.byName(t, "tokenize")} {
		if got, want := hexID(child.span.GetParentSpanId()), hexID(request.span.GetSpanId()); got != want {
			t.Errorf("%s parent = %s, want request span %s", child.span.GetName(), got, want)
		}
		if got, want := hexID(child.span.GetTraceId()), hexID(request.span.GetTraceId()); got != want {
			t.Errorf("%s trace = %s, want %s", child.span.GetName(), got, want)
		}
	}
	res := request.res.GetAttributes()
	if got := stringAttr(res, "service.name"); got != "svc" {
		t.Errorf("resource service.name = %q, want svc", got)
	}
	if got := stringAttr(res, "service.version"); got != "1.2.3" {
		t.Errorf("resource service.version = %q, want 1.2.3", got)
	}
	if got := stringAttr(res, "host.name"); got == "" {
		t.Error("resource lacks host.name")
	}
	if got := stringAttr(res, "telemetry.sdk.name"); got != "opentelemetry" {
		t.Errorf("resource telemetry.sdk.name = %q", got)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
}

func TestNewProviderSetsNoGlobals(t *testing.T) {
	restoreGlobals(t)
	global := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(global)))
	before := otel.GetTracerProvider()

	r := startReceiver(t)
	tp, err := NewProvider(context.Background(), WithEndpoint("http://"+r.addr), WithServiceName("own"))
	if err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() != before {
		t.Error("NewProvider changed the global tracer provider")
	}
	// Spans follow the provider of their parent, not the global.
	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	_, fwd := StartForward(ctx, WithPhase(PhaseDecode))
	fwd.End()
	root.End()
	// Without a local parent, the global provider is used.
	_, orphan := StartTokenize(context.Background())
	orphan.End()
	shutdownOK(t, tp.Shutdown)

	if got := hexID(r.byName(t, "forward").span.GetParentSpanId()); got != root.SpanContext().SpanID().String() {
		t.Errorf("forward parent = %s, want root %s", got, root.SpanContext().SpanID())
	}
	if got := stringAttr(r.byName(t, "forward").res.GetAttributes(), "service.name"); got != "own" {
		t.Errorf("service.name = %q, want own", got)
	}
	if n := len(global.Ended()); n != 1 || global.Ended()[0].Name() != "tokenize" {
		t.Errorf("global provider ended %d spans, want the tokenize span only", n)
	}
}

func TestEnvironment(t *testing.T) {
	r := startReceiver(t)
	tests := []struct {
		name string
		env  map[string]string
		opts []Option
		// check runs after a flush; exp holds what WithExporter got, if used.
		check func(t *testing.T, span trace.Span, exp *tracetest.InMemoryExporter)
	}{
		{
			name: "OTEL_SERVICE_NAME wins over WithServiceName",
			env:  map[string]string{"OTEL_SERVICE_NAME": "from-env", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test"},
			opts: []Option{WithServiceName("from-option")},
			check: func(t *testing.T, _ trace.Span, exp *tracetest.InMemoryExporter) {
				spans := exp.GetSpans()
				if len(spans) != 1 {
					t.Fatalf("exported %d spans, want 1", len(spans))
				}
				attrs := spans[0].Resource.Set()
				if v, _ := attrs.Value("service.name"); v.AsString() != "from-env" {
					t.Errorf("service.name = %q, want from-env", v.AsString())
				}
				if v, _ := attrs.Value("deployment.environment.name"); v.AsString() != "test" {
					t.Errorf("deployment.environment.name = %q, want test", v.AsString())
				}
			},
		},
		{
			name: "OTEL_TRACES_SAMPLER=always_off wins over WithSampler",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_off"},
			opts: []Option{WithSampler(sdktrace.AlwaysSample())},
			check: func(t *testing.T, span trace.Span, exp *tracetest.InMemoryExporter) {
				if span.IsRecording() {
					t.Error("span is recording under always_off")
				}
				if n := len(exp.GetSpans()); n != 0 {
					t.Errorf("exported %d spans, want 0", n)
				}
			},
		},
		{
			name: "an OTEL_TRACES_SAMPLER the SDK does not know leaves WithSampler in force",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always-off"},
			opts: []Option{WithSampler(sdktrace.NeverSample())},
			check: func(t *testing.T, span trace.Span, exp *tracetest.InMemoryExporter) {
				if n := len(exp.GetSpans()); n != 0 || span.IsRecording() {
					t.Errorf("exported %d spans (recording %v), want none: WithSampler(NeverSample) ignored", n, span.IsRecording())
				}
			},
		},
		{
			name: "OTEL_TRACES_SAMPLER=traceidratio with arg 0",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
			check: func(t *testing.T, span trace.Span, exp *tracetest.InMemoryExporter) {
				if n := len(exp.GetSpans()); n != 0 || span.IsRecording() {
					t.Errorf("exported %d spans (recording %v), want none", n, span.IsRecording())
				}
			},
		},
		{
			name: "OTEL_SDK_DISABLED=true exports nothing",
			env:  map[string]string{"OTEL_SDK_DISABLED": "true"},
			check: func(t *testing.T, span trace.Span, exp *tracetest.InMemoryExporter) {
				if span.IsRecording() {
					t.Error("span is recording with the SDK disabled")
				}
				if n := len(exp.GetSpans()); n != 0 {
					t.Errorf("exported %d spans, want 0", n)
				}
			},
		},
		{
			name: "OTEL_EXPORTER_OTLP_ENDPOINT wins over WithEndpoint",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + r.addr, "OTEL_SERVICE_NAME": "env-endpoint"},
			opts: []Option{WithEndpoint("127.0.0.1:1"), WithInsecure()},
			check: func(t *testing.T, _ trace.Span, _ *tracetest.InMemoryExporter) {
				var n int
				for _, s := range r.got() {
					if stringAttr(s.res.GetAttributes(), "service.name") == "env-endpoint" {
						n++
					}
				}
				if n != 1 {
					t.Errorf("receiver got %d spans of service env-endpoint, want 1", n)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			exp := tracetest.NewInMemoryExporter()
			opts := tt.opts
			if _, ok := tt.env["OTEL_EXPORTER_OTLP_ENDPOINT"]; !ok {
				opts = append(slices.Clone(opts), WithExporter(exp))
			}
			tp, err := NewProvider(context.Background(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, span := StartForward(context.Background(), WithTracerProvider(tp))
			span.End()
			// ForceFlush, not Shutdown, before the check: shutting down
			// the in-memory exporter forgets its spans.
			if err := tp.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			tt.check(t, span, exp)
			shutdownOK(t, tp.Shutdown)
		})
	}
}

func TestSDKDisabledKeepsRemoteParent(t *testing.T) {
	restoreGlobals(t)
	t.Setenv("OTEL_SDK_DISABLED", "true")
	shutdown, err := Setup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownOK(t, shutdown)
	carrier := propagation.MapCarrier{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	ctx := otel.GetTextMapPropagator().Extract(context.Background(), carrier)
	_, span := StartRequest(ctx, "chat", "m")
	defer span.End()
	if span.IsRecording() {
		t.Error("span is recording with the SDK disabled")
	}
	if got := span.SpanContext().TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("trace id = %s, want the remote parent's", got)
	}
}

// TestMissingCollector points the exporter at a closed port: span creation
// does not wait for it and Shutdown gives up when its context ends.
func TestMissingCollector(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	tp, err := NewProvider(context.Background(), WithEndpoint(addr), WithInsecure(),
		WithBatchOptions(sdktrace.WithMaxQueueSize(16), sdktrace.WithMaxExportBatchSize(4)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 { // far more than the queue holds: the rest is dropped
			_, span := StartForward(context.Background(), WithTracerProvider(tp))
			span.End()
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // a hang guard, not a timing target
		t.Fatal("span creation blocked on a missing collector")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The exporter retries an unavailable endpoint with a 5s initial backoff,
	// so only the context can end this shutdown.
	if err := tp.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown = %v, want the context's deadline error", err)
	}
}

func TestErrorHandlerRateLimits(t *testing.T) {
	var buf bytes.Buffer
	h := NewErrorHandler(slog.New(slog.NewJSONHandler(&buf, nil)), time.Minute).(*errorHandler)
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }

	for range 5 {
		h.Handle(errors.New("connection refused"))
	}
	h.Handle(nil)
	now = now.Add(2 * time.Minute)
	h.Handle(errors.New("still refused"))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var second struct {
		Level      string
		Error      string `json:"error"`
		Suppressed int    `json:"suppressed"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if second.Level != "WARN" || second.Error != "still refused" || second.Suppressed != 4 {
		t.Errorf("second warning = %+v, want WARN, still refused, suppressed 4", second)
	}
}

func TestStartSpans(t *testing.T) {
	tests := []struct {
		name      string
		start     func(ctx context.Context) (context.Context, trace.Span)
		wantName  string
		wantAttrs map[string]any
	}{
		{"model load", func(ctx context.Context) (context.Context, trace.Span) {
			return StartModelLoad(ctx, "m1")
		}, "model.load", map[string]any{"gen_ai.request.model": "m1"}},
		{"model load without model", func(ctx context.Context) (context.Context, trace.Span) {
			return StartModelLoad(ctx, "")
		}, "model.load", map[string]any{}},
		{"tokenize", func(ctx context.Context) (context.Context, trace.Span) {
			return StartTokenize(ctx, WithSequenceLength(7))
		}, "tokenize", map[string]any{"modeltel.sequence.length": int64(7)}},
		{"forward decode", func(ctx context.Context) (context.Context, trace.Span) {
			return StartForward(ctx, WithBatchSize(3), WithPhase(PhaseDecode), SpanOption{}, WithAttributes(BatchSizeKey.Int(4)))
		}, "forward", map[string]any{"modeltel.batch.size": int64(4), "modeltel.forward.phase": "decode"}},
		{"request", func(ctx context.Context) (context.Context, trace.Span) {
			return StartRequest(ctx, "embeddings", "e5", WithBatchSize(2))
		}, "embeddings e5", map[string]any{"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e5", "modeltel.batch.size": int64(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
			_, span := tt.start(ctx)
			span.End()
			parent.End()
			ended := rec.Ended()
			if len(ended) != 2 {
				t.Fatalf("ended %d spans, want 2", len(ended))
			}
			got := ended[0]
			if got.Name() != tt.wantName {
				t.Errorf("name = %q, want %q", got.Name(), tt.wantName)
			}
			if got.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Error("span is not a child of the span in ctx")
			}
			if got.SpanKind() != trace.SpanKindInternal {
				t.Errorf("kind = %v, want internal", got.SpanKind())
			}
			if got.InstrumentationScope().Name != "github.com/modeltel/modeltel" {
				t.Errorf("scope = %q", got.InstrumentationScope().Name)
			}
			attrs := map[string]any{}
			for _, kv := range got.Attributes() {
				attrs[string(kv.Key)] = kv.Value.AsInterface()
			}
			for k, want := range tt.wantAttrs {
				if attrs[k] != want {
					t.Errorf("attribute %s = %v, want %v (all %v)", k, attrs[k], want, attrs)
				}
			}
			if len(tt.wantAttrs) == 0 && len(attrs) != 0 {
				t.Errorf("attributes = %v, want none", attrs)
			}
		})
	}
}

func TestRemoteParentUsesGlobalProvider(t *testing.T) {
	restoreGlobals(t)
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	carrier := propagation.MapCarrier{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	ctx := propagation.TraceContext{}.Extract(context.Background(), carrier)
	_, span := StartForward(ctx)
	span.End()
	if n := len(rec.Ended()); n != 1 {
		t.Fatalf("global provider ended %d spans, want 1", n)
	}
	if got := rec.Ended()[0].Parent().SpanID().String(); got != "b7ad6b7169203331" {
		t.Errorf("parent = %s, want the remote span", got)
	}
}

var sinkSpan trace.Span

// BenchmarkStartForward measures a forward span with three attributes; its
// baseline starts the same span straight from the tracer.
func BenchmarkStartForward(b *testing.B) {
	tp := sdktrace.NewTracerProvider() // no processor: measures span creation only
	ctx, parent := tp.Tracer("b").Start(context.Background(), "parent")
	defer parent.End()
	b.Run("tracing.StartForward", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, span := StartForward(ctx, WithBatchSize(8), WithSequenceLength(512), WithPhase(PhaseDecode))
			span.End()
			sinkSpan = span
		}
	})
	b.Run("baseline/tracer.Start", func(b *testing.B) {
		b.ReportAllocs()
		tracer := tp.Tracer("b")
		for b.Loop() {
			_, span := tracer.Start(ctx, "forward", trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(BatchSizeKey.Int(8), SequenceLengthKey.Int(512), PhaseKey.String("decode")))
			span.End()
			sinkSpan = span
		}
	})
	b.Run("noop", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		prev := otel.GetTracerProvider()
		otel.SetTracerProvider(noop.NewTracerProvider())
		defer otel.SetTracerProvider(prev)
		for b.Loop() {
			_, span := StartForward(ctx, WithBatchSize(8), WithSequenceLength(512), WithPhase(PhaseDecode))
			span.End()
			sinkSpan = span
		}
	})
}
