package tracing

import (
	"context"
	"encoding/hex"
	"net"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// receiver is a real OTLP gRPC trace endpoint on loopback.
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	mu    sync.Mutex
	spans []gotSpan
}

type gotSpan struct {
	res  *resourcepb.Resource
	span *tracepb.Span
}

func (r *receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, gotSpan{res: rs.GetResource(), span: s})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *receiver) got() []gotSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gotSpan(nil), r.spans...)
}

// byName returns the received span with that name, failing the test when
// there is not exactly one.
func (r *receiver) byName(t *testing.T, name string) gotSpan {
	t.Helper()
	var found []gotSpan
	for _, s := range r.got() {
		if s.span.GetName() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("received %d spans named %q, want 1 (all: %v)", len(found), name, names(r.got()))
	}
	return found[0]
}

func names(spans []gotSpan) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.span.GetName())
	}
	return n
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	r, _ := startReceiverOn(t, "127.0.0.1:0")
	return r
}

// startReceiverOn starts a receiver listening on addr and returns it with a
// func that stops it (also called when the test ends).
func startReceiverOn(t *testing.T, addr string) (*receiver, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	r := &receiver{addr: lis.Addr().String()}
	collectortrace.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return r, srv.Stop
}

func attrValue(attrs []*commonpb.KeyValue, key string) (*commonpb.AnyValue, bool) {
	for _, kv := range attrs {
		if kv.GetKey() == key {
			return kv.GetValue(), true
		}
	}
	return nil, false
}

func stringAttr(attrs []*commonpb.KeyValue, key string) string {
	v, _ := attrValue(attrs, key)
	return v.GetStringValue()
}

func hexID(b []byte) string { return hex.EncodeToString(b) }
