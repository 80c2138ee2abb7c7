// Package gateway is the logic of examples/gateway: an OpenAI-compatible
// reverse proxy (net/http/httputil) in front of servers modeltel did not
// write (vLLM, SGLang, TGI, llama.cpp, Ollama, or the inference-server
// example), instrumented by the SDK from the traffic alone.
//
// # Routing
//
// New takes the upstreams' base URLs; Refresh (and Run, every
// Config.Refresh) asks each for GET /v1/models. The gateway serves the union
// on GET /v1/models and GET /v1/models/{id}, and forwards each POST /v1/...
// to an upstream that lists the body's "model", round robin among those up.
// Its own errors are in OpenAI's shape: an unknown model 404
// (model_not_found), a model whose upstreams are all down 503
// (upstream_unavailable), an upstream that cannot be reached 502
// (upstream_error) or does not answer in time 504 (upstream_timeout).
// Streams pass through with FlushInterval -1: each write reaches the client
// at once.
//
// # Telemetry
//
// The SDK middleware (modeltel.Start) wraps the API, with Model and
// Operation: HTTP and GenAI metrics, tokens and time to first token read from
// the responses (middleware.WithResponseAccounting), server spans and
// request logs. The gateway adds client spans for the upstream calls (W3C
// context passed upstream) and its own series:
//
//	gateway_upstream_up{upstream}                        1 up, 0 down
//	gateway_upstream_models{upstream}                    models listed
//	gateway_upstream_active_requests{upstream}           in flight
//	gateway_upstream_requests_total{upstream}
//	gateway_upstream_errors_total{upstream,error_type}   connect, timeout, transport, aborted, status_5xx
//	gateway_upstream_duration_seconds{upstream}          upstream time: sent to end of its body
//	gateway_upstream_response_header_seconds{upstream}   sent to response headers
//	gateway_overhead_seconds                             gateway time: the rest of the request
//	gateway_tenant_requests_total{tenant}
//	gateway_tenant_tokens_total{tenant,gen_ai_token_type}
//
// A tenant is "t-" and 16 hex digits of the salted SHA-256 of the API key
// (or of Config.TenantHeader's value), never the key; the first
// Config.MaxTenants tenants get their own series, later ones share "other".
//
// # Usage
//
//	gw, err := gateway.New(gateway.Config{Upstreams: []string{"http://127.0.0.1:8000"}})
//	if err != nil { ... }
//	tel.Registry().MustRegister(gw)
//	_ = gw.Refresh(ctx)
//	go gw.Run(ctx)
//	http.ListenAndServe(":8090", gw.Handler(tel.Middleware().Handler))
package gateway
