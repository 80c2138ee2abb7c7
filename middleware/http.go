package middleware

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/exemplar"
	"github.com/modeltel/modeltel/internal/genai"
	"github.com/modeltel/modeltel/internal/respwriter"
)

// StatusClientClosedRequest is the http_response_status_code recorded for a
// request whose response did not reach its client, whatever status the
// handler had written: the code nginx uses for a client that closed the
// connection. See the package documentation for how the middleware tells a
// client that went away from one that closed after reading the whole answer.
const StatusClientClosedRequest = 499

// Handler returns next instrumented: HTTP metrics always; a server span and
// trace-context extraction when a tracer provider is set; an inference
// recorder and GenAI span when WithInference and WithModel name a model; a
// log line per request with WithLogger. The writer passed to next keeps
// http.Flusher (and http.Hijacker, io.ReaderFrom where the server's writer
// has them) and unwraps for http.ResponseController. A panic in next is
// recorded as a 500 (an http.ErrAbortHandler panic of a request whose client
// went away as StatusClientClosedRequest) and then goes on up.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.cfg.filter != nil && !m.cfg.filter(r) {
			next.ServeHTTP(w, r)
			return
		}
		m.serveHTTP(next, w, r)
	})
}

func (m *Middleware) serveHTTP(next http.Handler, w http.ResponseWriter, r *http.Request) {
	start := m.cfg.now()
	method := methodIndex(r.Method)
	scheme := 0
	if r.TLS != nil {
		scheme = 1
	}
	active := m.activeBy[method][scheme]
	active.Inc()

	reqCtx := r.Context()
	ctx := m.propagators().Extract(reqCtx, headerCarrier(r.Header))
	var span, gspan trace.Span
	tracer := m.tracer()
	if tracer != nil {
		ctx, span = tracer.Start(ctx, spanMethod(method, r.Method),
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(serverAttrs(r)...))
	}
	var tid trace.TraceID // the exemplars' trace_id
	switch {
	case span != nil:
		tid = exemplar.TraceID(span.SpanContext())
	case ctx != reqCtx:
		// No tracer, but the request carried a trace context.
		tid = exemplar.TraceID(trace.SpanContextFromContext(ctx))
	}
	logCtx := ctx

	var rec *inference.Recorder
	var model string
	var info RequestInfo
	if m.cfg.inference != nil && (m.cfg.model != nil || m.cfg.request != nil) {
		var timedOut bool
		if info, timedOut = m.modelOf(w, r, start); timedOut {
			next = bodyTimedOut
		} else if model = info.Model; model != "" {
			var op string
			if m.cfg.operation != nil {
				op = m.cfg.operation(r)
			}
			ctx, gspan, rec, model = m.startInference(ctx, tracer, model, op, func(a []attribute.KeyValue) []attribute.KeyValue {
				return genaiRequestAttrs(a, r, &info)
			})
		}
	}
	var lc *attrCtx
	if m.cfg.logger != nil {
		lc = &attrCtx{Context: ctx}
		ctx = lc
	}
	if ctx != reqCtx {
		r = r.WithContext(ctx)
	}
	var body *countingBody
	if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	ww, st := respwriter.Wrap(w)
	acct := m.startAccounting(r, rec, st)

	panicked := true
	defer func() {
		var p any
		if panicked {
			p = recover()
		}
		acct.finish()
		status := st.Status
		switch {
		case status == 0 && st.Hijacked:
			// The handler took the connection over (a websocket upgrade)
			// and answered on it: a protocol switch, whatever it wrote.
			status = http.StatusSwitchingProtocols
		case status == 0:
			status = http.StatusOK
		}
		var recErr error
		switch {
		case panicked && !(p == http.ErrAbortHandler && (writeFailed(st.Err) || reqCtx.Err() != nil)):
			status = http.StatusInternalServerError
			recErr = statusError(status)
		case (panicked && !st.Complete) || !delivered(reqCtx, st, rec):
			// An abort (ErrAbortHandler) of a request whose client went
			// away, or a response that did not reach the client. An abort
			// after the stream's end marker went out (httputil.ReverseProxy
			// aborts when its last copy or flush fails because the client
			// closed as soon as it read "data: [DONE]") is not one.
			status = StatusClientClosedRequest
			if recErr = reqCtx.Err(); recErr == nil {
				recErr = context.Canceled
			}
		case status >= 400:
			recErr = statusError(status)
		}
		now := m.cfg.now()
		d := now.Sub(start)
		route := m.routeOf(r)
		reqBytes := r.ContentLength
		if body != nil {
			reqBytes = body.n.Load()
		}
		s := m.httpSeriesFor(method, uint8(scheme), route, status)
		s.duration.Observe(d.Seconds(), tid, now)
		s.reqSize.Observe(float64(max(reqBytes, 0)))
		s.respSize.Observe(float64(st.Bytes))

		rec.End(recErr)
		// After the request's GenAI series too: once the gauge is back
		// to 0, everything the requests record in metrics is there.
		active.Dec()
		if gspan != nil {
			// gen_ai.response.time_to_first_chunk: "time to first chunk in
			// a streaming response", for streaming requests only.
			if ttft := rec.TimeToFirstToken(); info.Stream && ttft > 0 {
				gspan.SetAttributes(genai.ResponseTimeToFirstChunkKey.Float64(ttft.Seconds()))
			}
			gspan.End()
		}
		if span != nil {
			endServerSpan(span, method, r.Method, route, status, recErr)
		}
		if m.cfg.logger != nil {
			m.logHTTP(logCtx, r, route, status, d, reqBytes, st.Bytes, model, p != nil, lc.take())
		}
		if p != nil {
			panic(p)
		}
	}()
	next.ServeHTTP(ww, r)
	panicked = false
}

// delivered reports whether the response of a handler that returned reached
// the client, as far as the middleware can tell. Checked in order:
//   - a write or flush to the client failed: not delivered;
//   - the request context is live: delivered (nothing says otherwise);
//   - the handler ended the inference recorder: delivered unless it ended
//     it with context.Canceled (the handler saw the client go);
//   - the handler wrote a status and a Content-Length, and that many body
//     bytes: delivered;
//   - otherwise (canceled, and no sign the handler finished): not delivered.
//
// Only the last three read more than a field, and only for canceled requests.
func delivered(ctx context.Context, st *respwriter.State, rec *inference.Recorder) bool {
	if st.Complete {
		// The stream's end marker was written before any failure: the
		// client has the whole answer (response accounting saw it).
		return true
	}
	if writeFailed(st.Err) {
		return false
	}
	if ctx.Err() == nil || st.Hijacked {
		// A hijacked connection is the handler's: what a canceled context
		// says about the client no longer concerns the response we saw.
		return true
	}
	if ended, err := rec.Ended(); ended {
		return !errors.Is(err, context.Canceled)
	}
	if st.Status != 0 {
		if cl := st.Header().Get("Content-Length"); cl != "" {
			n, err := strconv.ParseInt(cl, 10, 64)
			return err == nil && n == st.Bytes
		}
	}
	return false
}

// writeFailed reports a write error that means the client did not get the
// response: not the errors net/http returns for a handler's own mistakes
// (a body where none is allowed, more than the declared Content-Length, a
// write after Hijack) or after http.TimeoutHandler answered for it.
func writeFailed(err error) bool {
	return err != nil && !errors.Is(err, http.ErrBodyNotAllowed) && !errors.Is(err, http.ErrContentLength) &&
		!errors.Is(err, http.ErrHijacked) && !errors.Is(err, http.ErrHandlerTimeout)
}

// countingBody counts the bytes of a request body of unknown length.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// spanMethod is the span name before the route is known: the method, or
// "HTTP" for a method outside the standard set, as the conventions say.
func spanMethod(idx uint8, method string) string {
	if idx == numMethods-1 {
		return "HTTP"
	}
	if method == "" {
		return http.MethodGet
	}
	return method
}

func serverAttrs(r *http.Request) []attribute.KeyValue {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	method := methodNames[methodIndex(r.Method)]
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		semconv.HTTPRequestMethodKey.String(method),
		semconv.URLScheme(scheme),
		semconv.URLPath(r.URL.Path),
	)
	attrs = appendServerAddr(attrs, r.Host)
	if method == OtherRoute {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(r.Method))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	return attrs
}

// appendServerAddr appends server.address and server.port of the Host
// header: the HTTP conventions put the port in server.port, not in
// server.address ("example.com:8080" is server.address "example.com" and
// server.port 8080; an IPv6 literal loses its brackets).
func appendServerAddr(attrs []attribute.KeyValue, host string) []attribute.KeyValue {
	if host == "" {
		return attrs
	}
	h, p := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host[i:], ']') < 0 {
		h, p = host[:i], host[i+1:]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "" {
		return attrs
	}
	attrs = append(attrs, semconv.ServerAddress(h))
	if p == "" {
		return attrs
	}
	if port, err := strconv.Atoi(p); err == nil && port > 0 && port < 65536 { // a bad port allocates its error; rare
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

// genaiRequestAttrs appends the GenAI span's request attributes: the
// request parameters the body carried and server.address/server.port.
func genaiRequestAttrs(a []attribute.KeyValue, r *http.Request, info *RequestInfo) []attribute.KeyValue {
	if info.HasMaxTokens {
		a = append(a, genai.RequestMaxTokensKey.Int64(info.MaxTokens))
	}
	if info.HasTemperature {
		a = append(a, genai.RequestTemperatureKey.Float64(info.Temperature))
	}
	if info.HasTopP {
		a = append(a, genai.RequestTopPKey.Float64(info.TopP))
	}
	if info.HasStream {
		a = append(a, genai.RequestStreamKey.Bool(info.Stream))
	}
	return appendServerAddr(a, r.Host)
}

func endServerSpan(span trace.Span, idx uint8, method, route string, status int, err error) {
	if route != UnmatchedRoute && route != OtherRoute {
		span.SetName(spanMethod(idx, method) + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status))
	} else {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	switch {
	case status >= 500:
		span.SetAttributes(genai.ErrorTypeKey.String(inference.ErrorType(err)))
		span.SetStatus(codes.Error, "")
	case errors.Is(err, context.Canceled):
		span.SetAttributes(genai.ErrorTypeKey.String("canceled"))
	}
	span.End()
}

func (m *Middleware) logHTTP(ctx context.Context, r *http.Request, route string, status int, d time.Duration,
	reqBytes, respBytes int64, model string, panicked bool, extra []slog.Attr) {
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = slog.LevelWarn
	}
	if !m.cfg.logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 16) // constant: on the stack, room for a handler's attributes
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.Int64("request_bytes", reqBytes),
		slog.Int64("response_bytes", respBytes),
	)
	if model != "" {
		attrs = append(attrs, slog.String("model", model))
	}
	if panicked {
		attrs = append(attrs, slog.Bool("panic", true))
	}
	attrs = append(attrs, extra...)
	m.cfg.logger.LogAttrs(ctx, level, "http request", attrs...)
}

// headerCarrier is propagation.HeaderCarrier without the allocation of
// canonicalising the lower-case keys the W3C propagators ask for.
type headerCarrier http.Header

func (h headerCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		key = "Traceparent"
	case "tracestate":
		key = "Tracestate"
	case "baggage":
		key = "Baggage"
	}
	return http.Header(h).Get(key)
}

func (h headerCarrier) Set(key, value string) { propagation.HeaderCarrier(h).Set(key, value) }
func (h headerCarrier) Keys() []string        { return propagation.HeaderCarrier(h).Keys() }
