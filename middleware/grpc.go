package middleware

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/cowmap"
	"github.com/modeltel/modeltel/internal/exemplar"
	"github.com/modeltel/modeltel/internal/genai"
)

// gRPC call types, the grpc_type label values of go-grpc-middleware.
const (
	grpcUnary        = "unary"
	grpcClientStream = "client_stream"
	grpcServerStream = "server_stream"
	grpcBidiStream   = "bidi_stream"
)

type grpcMetrics struct {
	started  *prometheus.CounterVec
	handled  *prometheus.CounterVec
	handling *prometheus.HistogramVec
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec

	series cowmap.Map[grpcKey, *grpcSeries]
	// methods counts distinct full method names against the route cap;
	// only admit touches it, under the lock of series.
	methods map[string]struct{}
	max     int
	buckets []float64 // of handling
}

type grpcKey struct{ typ, fullMethod string }

type grpcSeries struct {
	m                       *grpcMetrics
	typ, service, method    string
	started, received, sent prometheus.Counter
	handling                *exemplar.Histogram            // with the trace id of a sampled call
	handled                 [17]atomic.Pointer[counterBox] // by codes.Code, resolved on first use
}

type counterBox struct{ prometheus.Counter }

func newGRPCMetrics(c config) *grpcMetrics {
	l := []string{"grpc_type", "grpc_service", "grpc_method"}
	g := &grpcMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total", Help: "Total number of RPCs started on the server.",
			ConstLabels: c.constLabels,
		}, l),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total", Help: "Total number of RPCs completed on the server, regardless of success or failure.",
			ConstLabels: c.constLabels,
		}, append(append([]string{}, l...), "grpc_code")),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "grpc_server_handling_seconds", Help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: c.grpcBuckets, ConstLabels: c.constLabels,
		}, l),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_received_total", Help: "Total number of RPC stream messages received on the server.",
			ConstLabels: c.constLabels,
		}, l),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_sent_total", Help: "Total number of gRPC stream messages sent by the server.",
			ConstLabels: c.constLabels,
		}, l),
		methods: make(map[string]struct{}),
		max:     c.maxRoutes,
		buckets: c.grpcBuckets,
	}
	return g
}

// otherMethod is the full method of the series of methods beyond the cap.
const otherMethod = "/" + OtherRoute + "/" + OtherRoute

// seriesFor returns the children of (type, method), bounded by the route cap
// (a server with an UnknownServiceHandler sees arbitrary method names).
func (g *grpcMetrics) seriesFor(typ, fullMethod string) *grpcSeries {
	s, _ := g.series.LoadOrAdmit(grpcKey{typ, fullMethod}, g.admit, g.newSeries)
	return s
}

// admit counts a new full method against the cap, or sends it to the
// (type, _OTHER) series beyond it. It runs under the lock of g.series.
func (g *grpcMetrics) admit(k grpcKey) (grpcKey, bool) {
	if _, ok := g.methods[k.fullMethod]; ok {
		return k, true
	}
	if len(g.methods) >= g.max {
		return grpcKey{k.typ, otherMethod}, true
	}
	g.methods[k.fullMethod] = struct{}{}
	return k, true
}

func (g *grpcMetrics) newSeries(k grpcKey) *grpcSeries {
	typ := k.typ
	service, method := splitMethod(k.fullMethod)
	return &grpcSeries{
		m: g, typ: typ, service: service, method: method,
		started:  g.started.WithLabelValues(typ, service, method),
		received: g.received.WithLabelValues(typ, service, method),
		sent:     g.sent.WithLabelValues(typ, service, method),
		handling: exemplar.New(g.handling.WithLabelValues(typ, service, method), g.buckets),
	}
}

func (s *grpcSeries) handledFor(code codes.Code) prometheus.Counter {
	i := int(code)
	if i < 0 || i >= len(s.handled) {
		return s.m.handled.WithLabelValues(s.typ, s.service, s.method, code.String())
	}
	if c := s.handled[i].Load(); c != nil {
		return c.Counter
	}
	c := &counterBox{s.m.handled.WithLabelValues(s.typ, s.service, s.method, code.String())}
	s.handled[i].Store(c)
	return c.Counter
}

// splitMethod splits "/pkg.Service/Method" into "pkg.Service" and "Method".
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

func streamType(info *grpc.StreamServerInfo) string {
	switch {
	case info.IsClientStream && info.IsServerStream:
		return grpcBidiStream
	case info.IsClientStream:
		return grpcClientStream
	case info.IsServerStream:
		return grpcServerStream
	}
	return grpcUnary
}

// grpcCall is the per-RPC state both interceptors share. A unary call keeps
// it on the interceptor's stack; a streaming call inside its serverStream:
// neither allocates it on its own.
type grpcCall struct {
	m          *Middleware
	s          *grpcSeries
	fullMethod string
	start      time.Time
	tracer     trace.Tracer
	span       trace.Span
	gspan      trace.Span
	rec        *inference.Recorder
	model      string
	logCtx     context.Context
	// logAttrs carries AddLogAttrs' attributes; nil without a logger.
	logAttrs *attrCtx
}

// startCall starts the call c. carrier, when not nil, is where the incoming
// metadata is read from for the propagators (a streaming call keeps one in
// its serverStream); with nil, one is allocated when the propagators read
// any.
func (m *Middleware) startCall(ctx context.Context, c *grpcCall, typ, fullMethod string, carrier *incomingCarrier) context.Context {
	*c = grpcCall{m: m, s: m.grpc.seriesFor(typ, fullMethod), fullMethod: fullMethod, start: m.cfg.now()}
	c.s.started.Inc()
	if p := m.propagators(); !isNoopPropagator(p) {
		if carrier == nil {
			carrier = new(incomingCarrier)
		}
		carrier.ctx = ctx
		ctx = p.Extract(ctx, carrier)
	}
	if c.tracer = m.tracer(); c.tracer != nil {
		service, method := splitMethod(fullMethod)
		ctx, c.span = c.tracer.Start(ctx, strings.TrimPrefix(fullMethod, "/"),
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.RPCSystemGRPC, semconv.RPCService(service), semconv.RPCMethod(method)))
	}
	if m.cfg.logger != nil {
		c.logAttrs = &attrCtx{Context: ctx}
		ctx = c.logAttrs
	}
	c.logCtx = ctx
	return ctx
}

// startRecorder starts the inference recorder (and GenAI span) when the model
// func names a model for msg.
func (c *grpcCall) startRecorder(ctx context.Context, msg any) context.Context {
	m := c.m
	if m.cfg.inference == nil || m.cfg.grpcModel == nil {
		return ctx
	}
	if c.model = m.cfg.grpcModel(ctx, c.fullMethod, msg); c.model == "" {
		return ctx
	}
	var op string
	if m.cfg.grpcOp != nil {
		op = m.cfg.grpcOp(ctx, c.fullMethod)
	}
	ctx, c.gspan, c.rec, c.model = m.startInference(ctx, c.tracer, c.model, op, nil)
	return ctx
}

func (c *grpcCall) end(err error, panicked bool) {
	code := codeOf(err)
	if panicked {
		code = codes.Internal
	}
	now := c.m.cfg.now()
	d := now.Sub(c.start)
	c.s.handledFor(code).Inc()
	var tid trace.TraceID // the exemplar's: the server span's, when sampled
	if c.span != nil {
		tid = exemplar.TraceID(c.span.SpanContext())
	}
	c.s.handling.Observe(d.Seconds(), tid, now)
	c.rec.End(grpcError(err, code))
	if c.gspan != nil {
		c.gspan.End()
	}
	if c.span != nil {
		c.span.SetAttributes(semconv.RPCGRPCStatusCodeKey.Int(int(code)))
		if serverFault(code) {
			c.span.SetAttributes(genai.ErrorTypeKey.String(code.String()))
			c.span.SetStatus(otelcodes.Error, code.String())
		}
		c.span.End()
	}
	if l := c.m.cfg.logger; l != nil {
		level := slog.LevelInfo
		switch {
		case serverFault(code):
			level = slog.LevelError
		case code != codes.OK:
			level = slog.LevelWarn
		}
		extra := c.logAttrs.take()
		if l.Enabled(c.logCtx, level) {
			attrs := make([]slog.Attr, 0, 16) // constant: on the stack, room for a handler's attributes
			attrs = append(attrs,
				slog.String("method", c.fullMethod),
				slog.String("code", code.String()),
				slog.Duration("duration", d),
			)
			if c.model != "" {
				attrs = append(attrs, slog.String("model", c.model))
			}
			if err != nil && code != codes.OK {
				attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
			}
			attrs = append(attrs, extra...)
			l.LogAttrs(c.logCtx, level, "grpc request", attrs...)
		}
	}
}

// serverFault reports the codes the RPC conventions count as server errors.
func serverFault(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal,
		codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// grpcError is what the recorder ends with: nil for OK, context.Canceled and
// context.DeadlineExceeded for those codes (error_type "canceled",
// "deadline_exceeded"), else an error whose error_type is the code's name
// ("ResourceExhausted", "Internal", ...).
func grpcError(err error, code codes.Code) error {
	switch code {
	case codes.OK:
		return nil
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	return codeError(code)
}

type codeError codes.Code

func (e codeError) Error() string     { return "middleware: grpc " + codes.Code(e).String() }
func (e codeError) ErrorType() string { return codes.Code(e).String() }

// UnaryServerInterceptor returns the interceptor that records unary RPCs:
// the go-grpc-middleware metrics, a server span, an inference recorder when
// WithGRPCModel names a model for the request, and a log line.
func (m *Middleware) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		var call grpcCall
		c := &call
		ctx = m.startCall(ctx, c, grpcUnary, info.FullMethod, nil)
		c.s.received.Inc()
		ctx = c.startRecorder(ctx, req)
		panicked := true
		defer func() {
			if panicked {
				// p is nil when the handler called runtime.Goexit,
				// which goes on by itself.
				p := recover()
				c.end(nil, true)
				if p != nil {
					panic(p)
				}
			}
		}()
		resp, err = handler(ctx, req)
		panicked = false
		if err == nil {
			c.s.sent.Inc()
		}
		c.end(err, false)
		return resp, err
	}
}

// StreamServerInterceptor returns the interceptor that records streaming
// RPCs: the go-grpc-middleware metrics (messages counted as they are
// received and sent), a server span, an inference recorder when WithGRPCModel
// names a model for the first message received, and a log line.
func (m *Middleware) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		ws := &serverStream{ServerStream: ss}
		c := &ws.call
		ws.ctx0.Context = m.startCall(ss.Context(), c, streamType(info), info.FullMethod, &ws.carrier)
		ws.carrier.ctx = nil
		ws.ctx.Store(&ws.ctx0)
		panicked := true
		defer func() {
			if panicked {
				// p is nil when the handler called runtime.Goexit,
				// which goes on by itself.
				p := recover()
				ws.finish()
				c.end(nil, true)
				if p != nil {
					panic(p)
				}
			}
		}()
		err = handler(srv, ws)
		panicked = false
		ws.finish()
		c.end(err, false)
		return err
	}
}

type ctxBox struct{ context.Context }

// serverStream counts messages and starts the recorder at the first message
// received. Context may be called from the sending and receiving goroutines
// at once, so the context is swapped atomically. mu orders the start of the
// recorder before the interceptor's end: a message a left-behind goroutine
// receives after the handler returned starts nothing (it would never end).
//
// The call, the first context and the carrier live in the one allocation of
// the serverStream.
type serverStream struct {
	grpc.ServerStream
	call    grpcCall
	ctx     atomic.Pointer[ctxBox]
	ctx0    ctxBox // the context the handler starts with
	carrier incomingCarrier
	started atomic.Bool
	mu      sync.Mutex
	done    bool // the handler returned; under mu
}

// finish marks the handler returned, waiting for a recorder start under way.
func (s *serverStream) finish() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
}

func (s *serverStream) Context() context.Context { return s.ctx.Load().Context }

func (s *serverStream) RecvMsg(msg any) error {
	err := s.ServerStream.RecvMsg(msg)
	if err == nil {
		s.call.s.received.Inc()
		if s.started.CompareAndSwap(false, true) {
			s.mu.Lock()
			if !s.done {
				if ctx := s.call.startRecorder(s.Context(), msg); ctx != s.Context() {
					s.ctx.Store(&ctxBox{ctx})
				}
			}
			s.mu.Unlock()
		}
	}
	return err
}

func (s *serverStream) SendMsg(msg any) error {
	err := s.ServerStream.SendMsg(msg)
	if err == nil {
		s.call.s.sent.Inc()
	}
	return err
}

// incomingCarrier is a TextMapCarrier over the incoming metadata of ctx. It
// does not copy the metadata (metadata.FromIncomingContext copies every key
// and value, on every call): Get copies the one value it finds, and only
// Keys, which the W3C and B3 propagators never call, copies them all.
type incomingCarrier struct{ ctx context.Context }

func (c *incomingCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set does nothing: a server only extracts.
func (c *incomingCarrier) Set(string, string) {}

func (c *incomingCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}

// codeOf is the status code of a handler's error; a bare context error maps
// to Canceled or DeadlineExceeded, as grpc-go sends it.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return status.FromContextError(err).Code()
}
