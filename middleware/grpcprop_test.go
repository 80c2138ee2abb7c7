package middleware

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The incoming W3C trace context reaches both interceptors' server spans and
// handlers, read from the metadata without copying it (incomingCarrier),
// whatever the case of the key; with no propagator set the metadata is not
// read and the call goes on untraced by the client.
func TestGRPCPropagation(t *testing.T) {
	const traceID = "4bf92f3577b34d0e8736ce6f3bd0a8f3"
	const parent = "00f067aa0ba902b7"
	tp := "00-" + traceID + "-" + parent + "-01"
	for _, tt := range []struct {
		name       string
		key        string
		propagator propagation.TextMapPropagator // nil: the global one, unset
		want       string                        // trace id the handler sees; "" a new one
	}{
		{"w3c", "traceparent", propagation.TraceContext{}, traceID},
		{"composite", "traceparent", propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}), traceID},
		{"key in another case", "Traceparent", propagation.TraceContext{}, traceID},
		{"no trace context sent", "x-other", propagation.TraceContext{}, ""},
		{"global propagator unset", "traceparent", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sr := tracetest.NewSpanRecorder()
			opts := []Option{WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)))}
			if tt.propagator != nil {
				opts = append(opts, WithPropagators(tt.propagator))
			} else if !isNoopPropagator(otel.GetTextMapPropagator()) {
				t.Skip("a global propagator was set by another test")
			}
			m := New(opts...)
			// Built by hand: metadata.Pairs would lower-case the key.
			ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{
				tt.key: {tp}, "content-type": {"application/grpc"},
			})
			check := func(ctx context.Context) {
				t.Helper()
				sc := trace.SpanContextFromContext(ctx)
				if got := sc.TraceID().String(); (tt.want == "" && got == traceID) || (tt.want != "" && got != tt.want) {
					t.Errorf("handler trace id %s, want %q", got, tt.want)
				}
			}
			_, err := m.UnaryServerInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/p.S/U"},
				func(ctx context.Context, req any) (any, error) { check(ctx); return nil, nil })
			if err != nil {
				t.Fatal(err)
			}
			ss := &benchStream{ctx: ctx}
			err = m.StreamServerInterceptor()(nil, ss, &grpc.StreamServerInfo{FullMethod: "/p.S/S", IsServerStream: true},
				func(_ any, s grpc.ServerStream) error { check(s.Context()); return s.RecvMsg(nil) })
			if err != nil {
				t.Fatal(err)
			}
			spans := sr.Ended()
			if len(spans) != 2 {
				t.Fatalf("%d spans, want 2", len(spans))
			}
			for _, s := range spans {
				remote := s.Parent().IsRemote() && s.Parent().SpanID().String() == parent
				if remote != (tt.want != "") {
					t.Errorf("span %s parent %v (remote %v), want remote parent %v", s.Name(), s.Parent().SpanID(), s.Parent().IsRemote(), tt.want != "")
				}
			}
		})
	}
}

// Keys lists every incoming key (for propagators that look for a prefix).
func TestIncomingCarrierKeys(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("a", "1", "b", "2"))
	c := &incomingCarrier{ctx: ctx}
	keys := c.Keys()
	if len(keys) != 2 || c.Get("a") != "1" || c.Get("missing") != "" {
		t.Errorf("keys %v, a=%q", keys, c.Get("a"))
	}
	c.Set("a", "x") // ignored
	if c.Get("a") != "1" {
		t.Error("Set changed the incoming metadata")
	}
	if (&incomingCarrier{ctx: context.Background()}).Get("a") != "" {
		t.Error("a value without metadata")
	}
}
