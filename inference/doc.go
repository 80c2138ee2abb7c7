// Package inference records what an operator of an LLM API watches per
// request: latency, time to first token, time per output token, decode rate,
// token counts and requests in flight, as Prometheus metrics named after the
// OpenTelemetry GenAI semantic conventions.
//
// # Recording a request
//
// A [Metrics] is a [prometheus.Collector]; register it once. Each request gets
// a [Recorder] from [Metrics.Start], which also stores it in the returned
// context, so code deeper in the handler reaches it with [FromContext]. A
// recorder costs a few atomic operations: token counts are atomic adds, the
// histograms are observed once, at [Recorder.End].
//
//	m := inference.NewMetrics()
//	reg.MustRegister(m)
//
//	ctx, rec := m.Start(ctx, inference.Request{Model: "llama-3-8b", Operation: "chat"})
//	defer rec.End(err)
//	rec.InputTokens(len(prompt))
//	for tok := range generate(ctx, prompt) {
//		rec.OutputTokens(1) // the first call with n > 0 marks the first token
//	}
//
// # Metrics
//
//   - gen_ai_server_request_duration_seconds{gen_ai_operation_name,gen_ai_request_model,error_type}
//   - gen_ai_server_time_to_first_token_seconds{gen_ai_operation_name,gen_ai_request_model}
//   - gen_ai_server_time_per_output_token_seconds{gen_ai_operation_name,gen_ai_request_model}
//   - inference_output_tokens_per_second{gen_ai_operation_name,gen_ai_request_model}
//   - inference_tokens_total{gen_ai_operation_name,gen_ai_request_model,gen_ai_token_type}
//   - inference_requests_active{gen_ai_operation_name,gen_ai_request_model}
//   - inference_requests_total{gen_ai_operation_name,gen_ai_request_model,finish_reason}
//   - inference_request_queue_time_seconds, inference_request_prefill_time_seconds,
//     inference_request_decode_time_seconds{gen_ai_operation_name,gen_ai_request_model}
//     (with [Recorder.Scheduled])
//   - inference_request_prompt_tokens, inference_request_generation_tokens{gen_ai_operation_name,gen_ai_request_model}
//   - engine state ([Metrics.Engine]): inference_requests_waiting, inference_requests_running,
//     inference_kv_cache_usage_ratio, inference_prefix_cache_queries_total,
//     inference_prefix_cache_hits_total, inference_preemptions_total{gen_ai_request_model}
//
// The three gen_ai_server_* histograms also carry gen_ai_provider_name
// (Required by the conventions; [WithProviderName], "self_hosted" by
// default) and, with [WithServerAddress], server_address and server_port.
// Names with the inference_ prefix are ours: no convention covers them.
//
// gen_ai_token_type is "input", "output" (the convention's gen_ai.token.type
// values) or "cache_read": input tokens served from the prompt cache
// ([Recorder.CachedInputTokens], the convention's
// gen_ai.usage.cache_read.input_tokens), a subset of "input", so sum only
// input and output for a total. finish_reason is one of stop, length,
// content_filter, tool_calls, abort, error, other, unknown (see
// [Recorder.SetResponse]).
//
// # Usage reported by the server
//
// A handler that gets the usage object of a response (or of the last chunk
// of a stream) calls [Recorder.SetUsage]: those totals are the truth, and
// the counters catch up to them (never going down). [Recorder.SetResponse]
// records the response model, id and finish reasons.
//
// The first three use the bucket boundaries the GenAI conventions advise.
// error_type is "" for a request that succeeded: Prometheus drops a label whose
// value is empty, so a successful request's series carries no error_type, as
// in the OpenTelemetry-to-Prometheus translation. Time to first token, time per
// output token and the decode rate are observed for successful requests only,
// as the conventions say; time per output token is
// (duration - time to first token) / (output tokens - 1), for requests with at
// least two output tokens.
//
// # Error types
//
// [Recorder.End] labels a failed request by [ErrorType]: "canceled" for
// context.Canceled, "deadline_exceeded" for context.DeadlineExceeded, the
// value of an ErrorType() string method anywhere in the error chain, and
// "_OTHER" for anything else.
//
// # Cardinality
//
// Model names come from requests. By default the first 100 distinct models
// get their own series and the rest are recorded as "other"; [WithModels]
// replaces the cap with an allowlist. Likewise at most 16 distinct operation
// names are kept.
//
// # Tracing
//
// When the context passed to [Metrics.Start] carries a recording span, the
// recorder adds the gen_ai.first_token event to it at the first token (an
// event of ours: no convention names one) and sets
// gen_ai.usage.input_tokens, gen_ai.usage.output_tokens,
// gen_ai.usage.cache_read.input_tokens (when any) and error.type on failure
// when it ends; [Recorder.SetResponse] sets gen_ai.response.model,
// gen_ai.response.id and gen_ai.response.finish_reasons.
//
// # Exemplars
//
// When that context's span context is sampled (a recording span or a remote
// parent), the request duration, time to first token and time per output
// token carry its trace id as an exemplar, {trace_id="<32 hex digits>"}, at
// most one per histogram bucket per second. Exemplars are served only in the
// OpenMetrics format (promhttp.HandlerOpts{EnableOpenMetrics: true}) and kept
// by Prometheus only with --enable-feature=exemplar-storage. An unsampled
// request attaches none.
package inference
