package inference

import "github.com/prometheus/client_golang/prometheus"

// Engine reports the state of a serving engine's scheduler for one model:
// what vLLM, SGLang and TGI export as waiting and running requests, KV-cache
// usage, prefix-cache hits and preemptions. A server calls it from its
// scheduler loop, next to the per-request Recorder; Metrics.Engine returns
// it. Its methods are safe for concurrent use, allocate nothing, and do
// nothing on a nil *Engine. Names are ours (no convention covers engine
// state): inference_requests_waiting, inference_requests_running,
// inference_kv_cache_usage_ratio, inference_prefix_cache_queries_total,
// inference_prefix_cache_hits_total, inference_preemptions_total, each
// labelled gen_ai_request_model.
type Engine struct {
	waiting, running, kvUsage     prometheus.Gauge
	pcQueries, pcHits, preemption prometheus.Counter
}

// Engine returns the engine-state reporter of model, bounded as requests'
// models are ("other" beyond the allowlist or cap). Call it once per model
// and keep the result. nil on a nil *Metrics.
func (m *Metrics) Engine(model string) *Engine {
	if m == nil {
		return nil
	}
	model = m.Bound(Request{Model: model, Operation: engineOperation}).Model
	return &Engine{
		waiting:    m.waiting.WithLabelValues(model),
		running:    m.running.WithLabelValues(model),
		kvUsage:    m.kvUsage.WithLabelValues(model),
		pcQueries:  m.pcQueries.WithLabelValues(model),
		pcHits:     m.pcHits.WithLabelValues(model),
		preemption: m.preemptions.WithLabelValues(model),
	}
}

// engineOperation is the operation Engine bounds its model under; it never
// labels a series.
const engineOperation = "chat"

// SetQueue sets the requests waiting for the scheduler and those it is
// running (vLLM's num_requests_waiting and num_requests_running).
// Negative values are taken as 0.
func (e *Engine) SetQueue(waiting, running int) {
	if e == nil {
		return
	}
	e.waiting.Set(float64(max(waiting, 0)))
	e.running.Set(float64(max(running, 0)))
}

// SetKVCacheUsage sets the fraction of the KV cache in use, clamped to
// [0, 1] (vLLM's kv_cache_usage_perc, a ratio despite its name). NaN is
// ignored.
func (e *Engine) SetKVCacheUsage(ratio float64) {
	if e == nil || ratio != ratio {
		return
	}
	e.kvUsage.Set(min(max(ratio, 0), 1))
}

// AddPrefixCache adds prompt tokens looked up in the prefix cache and those
// found there (vLLM's prefix_cache_queries and prefix_cache_hits); the hit
// rate is rate(hits) / rate(queries). Negative values are ignored; hits
// beyond queries are capped at queries.
func (e *Engine) AddPrefixCache(queries, hits int) {
	if e == nil || queries < 0 || hits < 0 {
		return
	}
	e.pcQueries.Add(float64(queries))
	e.pcHits.Add(float64(min(hits, queries)))
}

// AddPreemptions adds n requests the scheduler preempted (vLLM's
// num_preemptions). n <= 0 does nothing.
func (e *Engine) AddPreemptions(n int) {
	if e == nil || n <= 0 {
		return
	}
	e.preemption.Add(float64(n))
}
