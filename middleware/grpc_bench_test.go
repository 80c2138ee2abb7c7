package middleware

import (
	"context"
	"runtime"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// benchIncoming is the incoming context a grpc-go server hands an
// interceptor: the metadata of a plain grpc-go client (no trace context).
func benchIncoming() context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(
		":authority", "localhost:50051",
		"content-type", "application/grpc",
		"user-agent", "grpc-go/1.85.0",
		"grpc-accept-encoding", "gzip",
	))
}

// benchStream is a ServerStream whose messages cost nothing and allocate
// nothing, so every allocation reported is the interceptor's.
type benchStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *benchStream) Context() context.Context { return s.ctx }
func (s *benchStream) RecvMsg(any) error        { return nil }
func (s *benchStream) SendMsg(any) error        { return nil }

// BenchmarkGRPCUnary is one unary call through the interceptor, called
// directly (no transport), metrics only (tracing off, no logger), next to
// go-grpc-middleware v2's providers/prometheus server metrics with the
// handling-time histogram (the same four series) and a bare handler call.
// Each modeltel sub-benchmark reports its time, bytes and allocations as a
// ratio to the go-grpc-middleware run ("x-grpcprom-time", "x-grpcprom-B",
// "x-grpcprom-allocs"; go-grpc-middleware runs first).
func BenchmarkGRPCUnary(b *testing.B) {
	ctx := benchIncoming()
	info := &grpc.UnaryServerInfo{FullMethod: "/modeltel.bench.v1.Generate/Generate"}
	handler := func(ctx context.Context, req any) (any, error) { return req, nil }
	peer := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	var base benchFigures
	for _, c := range []struct {
		name string
		i    grpc.UnaryServerInterceptor
	}{
		{"bare", func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		}},
		{"baseline-grpcprom", peer.UnaryServerInterceptor()},
		{"modeltel-metrics", New().UnaryServerInterceptor()},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := &struct{}{}
			b.ReportAllocs()
			m := startMem()
			for b.Loop() {
				if _, err := c.i(ctx, req, info, handler); err != nil {
					b.Fatal(err)
				}
			}
			base.report(b, c.name, m)
		})
	}
}

// BenchmarkGRPCStream is one server-streaming call, 1 message received and
// 8 sent, as BenchmarkGRPCUnary measures the unary one.
func BenchmarkGRPCStream(b *testing.B) {
	ss := &benchStream{ctx: benchIncoming()}
	info := &grpc.StreamServerInfo{FullMethod: "/modeltel.bench.v1.Generate/GenerateStream", IsServerStream: true}
	handler := func(_ any, s grpc.ServerStream) error {
		var m struct{}
		if err := s.RecvMsg(&m); err != nil {
			return err
		}
		for range 8 {
			if err := s.SendMsg(&m); err != nil {
				return err
			}
		}
		return nil
	}
	peer := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	var base benchFigures
	for _, c := range []struct {
		name string
		i    grpc.StreamServerInterceptor
	}{
		{"bare", func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, ss)
		}},
		{"baseline-grpcprom", peer.StreamServerInterceptor()},
		{"modeltel-metrics", New().StreamServerInterceptor()},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			m := startMem()
			for b.Loop() {
				if err := c.i(nil, ss, info, handler); err != nil {
					b.Fatal(err)
				}
			}
			base.report(b, c.name, m)
		})
	}
}

// benchFigures keeps the baseline's figures of a benchmark run so that the
// sub-benchmarks after it can report their ratio to it.
type benchFigures struct {
	ns, bytes, allocs float64
	ok                bool
}

// startMem reads the allocation counters before a benchmark's loop (b.Loop
// runs the function once, so the difference after it is the loop's).
func startMem() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func (f *benchFigures) report(b *testing.B, name string, before runtime.MemStats) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	n := float64(b.N)
	ns := float64(b.Elapsed().Nanoseconds()) / n
	bytes := float64(after.TotalAlloc-before.TotalAlloc) / n
	allocs := float64(after.Mallocs-before.Mallocs) / n
	if name == "baseline-grpcprom" {
		*f = benchFigures{ns: ns, bytes: bytes, allocs: allocs, ok: true}
		return
	}
	if !f.ok || name == "bare" {
		return
	}
	b.ReportMetric(ns/f.ns, "x-grpcprom-time")
	if f.bytes > 0 {
		b.ReportMetric(bytes/f.bytes, "x-grpcprom-B")
	}
	if f.allocs > 0 {
		b.ReportMetric(allocs/f.allocs, "x-grpcprom-allocs")
	}
}
