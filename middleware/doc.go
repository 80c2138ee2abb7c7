// Package middleware instruments net/http handlers and gRPC servers of an AI
// inference API: HTTP and gRPC metrics, a server span continuing the incoming
// W3C trace, an inference recorder (with its GenAI span) for the requests that
// serve a model, and one log line per request.
//
// # Usage
//
// A [Middleware] is a [prometheus.Collector]. Register [Middleware.Collector]
// (the middleware and the inference metrics it records into, as one
// collector, so that every scrape is consistent across the two) and wrap the
// mux (outside it, so the route is the pattern the mux matched):
//
//	inf := inference.NewMetrics()
//	mw := middleware.New(
//		middleware.WithInference(inf),
//		middleware.WithModel(middleware.ModelFromJSONBody(1<<20)),
//		middleware.WithLogger(logger),
//	)
//	reg.MustRegister(mw.Collector()) // mw and inf
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
//		rec := inference.FromContext(r.Context()) // started by the middleware
//		rec.InputTokens(promptTokens)
//		for tok := range stream {
//			rec.OutputTokens(1)
//			fmt.Fprintf(w, "data: %s\n\n", tok)
//			w.(http.Flusher).Flush()
//		}
//		io.WriteString(w, "data: [DONE]\n\n")
//		w.(http.Flusher).Flush()
//		rec.End(nil) // complete: a client closing now is not a 499
//	})
//	srv := &http.Server{Handler: mw.Handler(mux)}
//
//	gs := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(mw.UnaryServerInterceptor()),
//		grpc.ChainStreamInterceptor(mw.StreamServerInterceptor()),
//	)
//
// The middleware ends the recorder when the handler returns: with no error
// for a status below 400, with error_type set to the status code ("429",
// "500") from 400 on, "canceled" when the client went away (see below), and
// "500" for a panic. A handler may end the recorder itself first (with its
// own error); the middleware's End then does nothing.
//
// The funcs given to WithModel, WithOperation, WithRoute, WithFilter,
// WithGRPCModel and WithGRPCOperation run on every request; a panic in one
// never fails the request: the call falls back (no model, the default
// operation, the mux pattern, instrumented), and the panic is reported at
// most once a minute on the logger (or to OpenTelemetry's error handler).
//
// # Clients that go away
//
// A request whose response did not reach its client is recorded with status
// 499 ([StatusClientClosedRequest]) and error_type "canceled". net/http
// cancels the request context when the client closes the connection, but a
// client that closes right after reading the whole answer (curl, an SSE
// client that stops at "data: [DONE]") may do so before the handler
// returns, so a canceled context alone does not mean the answer was lost.
// When the handler returns, the middleware decides, in this order:
//
//   - a write or flush to the client failed: 499;
//   - the context is not canceled: the status written;
//   - the handler ended the recorder itself: with nil or an error of its
//     own, the status written (it finished); with context.Canceled, 499;
//   - the handler wrote a Content-Length and that many body bytes: the
//     status written;
//   - otherwise: 499.
//
// So a streaming handler should End the recorder with nil as soon as it has
// written (and flushed) its last event, before any clean-up: a client that
// closes after that is not counted as gone. A handler with no recorder can
// only be told complete through Content-Length; a stream without one whose
// context is canceled before it returns is recorded as 499. With
// WithResponseAccounting, the stream's "data: [DONE]" ends the recorder for
// a handler that does not.
//
// # Response accounting
//
// WithResponseAccounting(OpenAIRoutes) (on in modeltel.Start) gives a
// handler that never calls the recorder, a proxy in front of vLLM say, its
// tokens and time to first token from the response it writes: each SSE event
// of a streamed answer (the first with content marks the first token, each
// counts one output token, the usage chunk is the truth) or the usage of a
// JSON body. The client gets every byte as written, flushed as the handler
// flushes; a handler that reports to the recorder itself is left alone.
//
// # HTTP metrics
//
//   - http_server_request_duration_seconds{http_request_method,http_route,http_response_status_code,url_scheme,error_type}
//   - http_server_request_body_size_bytes{...same labels}
//   - http_server_response_body_size_bytes{...same labels}
//   - http_server_active_requests{http_request_method,url_scheme}
//
// http_route is the path of the ServeMux pattern that matched (read after the
// handler returned: the mux sets r.Pattern on the request it was given), or
// what [WithRoute] returns; never the raw path. A request no route matched
// has no http_route (the HTTP conventions set http.route only when a route
// matched); routes beyond [WithMaxRoutes] are "_OTHER", as are methods
// outside the standard nine. url_scheme is "http" or "https"; error_type is
// the status code of a 5xx response and empty (no label) otherwise. A request whose client went away before the
// response was complete is recorded with status 499, as above. A panic is
// recorded as 500 (an http.ErrAbortHandler panic of a request whose client
// went away as 499) and then re-raised.
//
// # gRPC metrics
//
// As go-grpc-middleware's providers/prometheus, so its dashboards work:
// grpc_server_started_total, grpc_server_handled_total (with grpc_code),
// grpc_server_handling_seconds, grpc_server_msg_received_total and
// grpc_server_msg_sent_total, labelled grpc_type, grpc_service, grpc_method.
//
// # Consistent scrapes
//
// A scrape taken while requests come and go never loses one: each request
// that began before it is in http_server_active_requests or in the request
// histograms (or in both, never neither), and grpc_server_handled_total is
// never above grpc_server_started_total. A request lowers the gauge after it
// has recorded everything else, and Collect reads the gauge first and the
// started counter last (a Prometheus registry reads a collector's metrics in
// the order they are sent). The inference metrics keep the same rule for
// inference_requests_active. Two collectors registered apart are read in
// whatever order the registry picks: modeltel.Start registers the
// middleware and its inference metrics as one collector, the middleware
// first, so that a request no longer active is in the GenAI series too.
//
// # Logs
//
// With [WithLogger], one line per request ("http request": method, route,
// status, duration, body sizes, model) and per RPC ("grpc request": method,
// code, duration, model, and the status message of a failure), at Info,
// Warn from 400 (and for a client that went away), Error from 500. A handler
// puts its own detail (the error behind a 400, the tokens of a completion) on
// the request's line with [AddLogAttrs] instead of logging a second line; it
// reports false where no middleware logs the request, so the handler can log
// the detail itself.
//
// # Tracing
//
// The incoming trace context is extracted with the global propagator (or
// [WithPropagators]) and a server span started with the global tracer
// provider (or [WithTracerProvider]), named "{method} {route}" once the route
// is known. With a model, the GenAI span "{operation} {model}" is its child
// and the parent of whatever the handler starts. Model names are client
// input, so the span name, its gen_ai.request.model attribute and the log
// line's "model" carry the model as the inference metrics bound it
// ([inference.Metrics.Bound]): "other" beyond the allowlist or cap, never an
// unbounded set of span names. With no provider set, tracing costs nothing.
//
// # Exemplars
//
// http_server_request_duration_seconds and grpc_server_handling_seconds carry
// the trace id of a sampled request's server span as the exemplar
// {trace_id="..."}, at most one per bucket per second, as the inference
// histograms do (with no tracer, an HTTP request's sampled incoming
// traceparent is used as it came); an unsampled request attaches none. Serve the registry with
// promhttp.HandlerOpts{EnableOpenMetrics: true} to expose them.
package middleware
