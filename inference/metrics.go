package inference

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/cowmap"
	"github.com/modeltel/modeltel/internal/exemplar"
	"github.com/modeltel/modeltel/internal/promlist"
)

// Label names.
const (
	labelOperation = "gen_ai_operation_name"
	labelModel     = "gen_ai_request_model"
	labelErrorType = "error_type"
	labelTokenType = "gen_ai_token_type"
	labelFinish    = "finish_reason"

	labelProvider      = "gen_ai_provider_name"
	labelServerAddress = "server_address"
	labelServerPort    = "server_port"

	tokenTypeInput     = "input"  // gen_ai.token.type input
	tokenTypeOutput    = "output" // gen_ai.token.type output
	tokenTypeCacheRead = "cache_read"
)

// Request describes one inference request. Model and Operation
// (gen_ai.operation.name: "chat", "text_completion", "embeddings", ...) become
// labels, bounded as the package documentation says.
type Request struct {
	Model     string
	Operation string
}

// Metrics is the set of inference metrics. It is a prometheus.Collector: the
// caller registers it. Its methods are safe for concurrent use; a nil
// *Metrics records nothing.
type Metrics struct {
	cfg config

	duration *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	tpot     *prometheus.HistogramVec
	tps      *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
	active   *prometheus.GaugeVec
	requests *prometheus.CounterVec

	// Per-request phases and lengths (see Recorder.Scheduled).
	queue, prefill, decode *prometheus.HistogramVec
	promptLen, genLen      *prometheus.HistogramVec

	// Engine state (see Metrics.Engine).
	waiting, running, kvUsage      *prometheus.GaugeVec
	pcQueries, pcHits, preemptions *prometheus.CounterVec

	all promlist.Collectors // every metric above: what Describe and Collect send

	// series maps a (operation, model) pair as given by the caller, when it
	// was admitted under its own name, to its resolved children. Copy on
	// write: readers never lock.
	series cowmap.Map[seriesKey, *series]

	// models and ops are the names admitted under the bounds; only admit
	// touches them, under the lock of series.
	models map[string]struct{}
	ops    map[string]struct{}
}

type seriesKey struct{ op, model string }

// series holds the label children of one (operation, model) pair, resolved
// once.
type series struct {
	op, model string
	// durationOK, ttft, tpot and the error durations carry the trace id of
	// a sampled request as an exemplar.
	durationOK  *exemplar.Histogram
	ttft        *exemplar.Histogram
	tpot        *exemplar.Histogram
	tps         prometheus.Observer
	inTokens    prometheus.Counter
	outTokens   prometheus.Counter
	outShards   *tokenShards // output tokens not yet added to outTokens
	active      prometheus.Gauge
	queue       prometheus.Observer
	prefill     prometheus.Observer
	decode      prometheus.Observer
	promptLen   prometheus.Observer
	genLen      prometheus.Observer
	errDuration sync.Map // error type -> *exemplar.Histogram
	// cachedTokens and requests are resolved on first use: a server that
	// never reports cached tokens exposes no cache_read series, and only the
	// finish reasons that occur get one.
	cachedTokens lazyCounter
	requests     [numFinish]lazyCounter
}

// NewMetrics returns the inference metrics configured by opts.
func NewMetrics(opts ...Option) *Metrics {
	c := newConfig(opts)
	// The gen_ai.server.* metrics carry gen_ai.provider.name (Required) and,
	// when set, server.address and server.port: constant per process.
	semconvLabels := prometheus.Labels{labelProvider: c.provider}
	if c.serverAddress != "" {
		semconvLabels[labelServerAddress] = c.serverAddress
		if c.serverPort > 0 {
			semconvLabels[labelServerPort] = strconv.Itoa(c.serverPort)
		}
	}
	for k, v := range c.constLabels {
		semconvLabels[k] = v
	}
	semconvHist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return histVec(c, semconvLabels, name, help, buckets, labels...)
	}
	hist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return histVec(c, c.constLabels, name, help, buckets, labels...)
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: c.constLabels}, []string{labelModel})
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: c.constLabels}, []string{labelModel})
	}
	m := &Metrics{
		cfg: c,
		duration: semconvHist("gen_ai_server_request_duration_seconds",
			"Generative AI server request duration, to the last output token; error_type is set when the request failed.",
			c.durationBuckets, labelOperation, labelModel, labelErrorType),
		ttft: semconvHist("gen_ai_server_time_to_first_token_seconds",
			"Time to generate the first token, for successful requests.",
			c.ttftBuckets, labelOperation, labelModel),
		tpot: semconvHist("gen_ai_server_time_per_output_token_seconds",
			"Time per output token generated after the first token, for successful requests.",
			c.tpotBuckets, labelOperation, labelModel),
		tps: hist("inference_output_tokens_per_second",
			"Per-request decode rate: output tokens after the first per second after the first token, for successful requests.",
			c.tpsBuckets, labelOperation, labelModel),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inference_tokens_total", Help: "Input and output tokens processed; cache_read counts the input tokens served from the prompt cache, a subset of input.", ConstLabels: c.constLabels,
		}, []string{labelOperation, labelModel, labelTokenType}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "inference_requests_active", Help: "Inference requests in flight.", ConstLabels: c.constLabels,
		}, []string{labelOperation, labelModel}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inference_requests_total", Help: "Inference requests completed, by finish reason (stop, length, content_filter, tool_calls, abort, error, other, unknown).", ConstLabels: c.constLabels,
		}, []string{labelOperation, labelModel, labelFinish}),
		queue: hist("inference_request_queue_time_seconds",
			"Time from arrival to scheduling (Recorder.Scheduled), for successful requests.",
			c.durationBuckets, labelOperation, labelModel),
		prefill: hist("inference_request_prefill_time_seconds",
			"Time from scheduling to the first token, for successful requests.",
			c.durationBuckets, labelOperation, labelModel),
		decode: hist("inference_request_decode_time_seconds",
			"Time from the first token to the last, for successful requests.",
			c.durationBuckets, labelOperation, labelModel),
		promptLen: hist("inference_request_prompt_tokens",
			"Input (prompt) tokens per successful request.",
			TokenCountBuckets, labelOperation, labelModel),
		genLen: hist("inference_request_generation_tokens",
			"Output (generated) tokens per successful request.",
			TokenCountBuckets, labelOperation, labelModel),
		waiting:     gauge("inference_requests_waiting", "Requests waiting for the scheduler (Engine.SetQueue)."),
		running:     gauge("inference_requests_running", "Requests the scheduler is running (Engine.SetQueue)."),
		kvUsage:     gauge("inference_kv_cache_usage_ratio", "Fraction of the KV cache in use, 0 to 1 (Engine.SetKVCacheUsage)."),
		pcQueries:   counter("inference_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache (Engine.AddPrefixCache)."),
		pcHits:      counter("inference_prefix_cache_hits_total", "Prompt tokens found in the prefix cache (Engine.AddPrefixCache)."),
		preemptions: counter("inference_preemptions_total", "Requests the scheduler preempted (Engine.AddPreemptions)."),
		models:      make(map[string]struct{}),
		ops:         make(map[string]struct{}),
	}
	// The active gauge first: End lowers it after recording the rest, so
	// a scrape that reads it after a request's end sees all the request
	// recorded (never a request neither active nor done).
	m.all = promlist.Collectors{m.active, m.duration, m.ttft, m.tpot, m.tps, m.tokens, m.requests,
		m.queue, m.prefill, m.decode, m.promptLen, m.genLen,
		m.waiting, m.running, m.kvUsage, m.pcQueries, m.pcHits, m.preemptions}
	return m
}

// histVec returns a histogram with the configured native-histogram settings.
func histVec(c config, constLabels prometheus.Labels, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	o := prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: constLabels}
	if c.nativeFactor > 1 {
		o.NativeHistogramBucketFactor = c.nativeFactor
		o.NativeHistogramMaxBucketNumber = 160
		o.NativeHistogramMinResetDuration = time.Hour
	}
	return prometheus.NewHistogramVec(o, labels)
}

// ProviderName returns the gen_ai.provider.name the metrics are labelled
// with (WithProviderName; DefaultProviderName by default). The middleware
// puts it on the GenAI span. "" on a nil *Metrics.
func (m *Metrics) ProviderName() string {
	if m == nil {
		return ""
	}
	return m.cfg.provider
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	if m == nil {
		return
	}
	m.all.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	if m == nil {
		return
	}
	// Every series ever created is in m.series (a redirected name's lives
	// under the name it shares): add their sharded output tokens to the
	// counters before they are sent.
	for _, s := range m.series.All() {
		s.outShards.flushTo(s.outTokens)
	}
	m.all.Collect(ch)
}

// lookup returns the series of (op, model): a lock-free map read once the
// pair has been seen.
func (m *Metrics) lookup(op, model string) *series {
	s, _ := m.series.LoadOrAdmit(seriesKey{op, model}, m.admit, m.newSeries)
	return s
}

// admit bounds the labels of a pair seen for the first time; it runs under
// the lock of m.series. Only pairs admitted under their own names enter the
// cache, so names beyond the bounds cost a locked lookup but no memory.
func (m *Metrics) admit(k seriesKey) (seriesKey, bool) {
	return seriesKey{op: m.boundOp(k.op), model: m.boundModel(k.model)}, true
}

func (m *Metrics) boundModel(model string) string {
	if m.cfg.allow != nil {
		if _, ok := m.cfg.allow[model]; ok {
			return model
		}
		return OtherModel
	}
	return admitUnder(m.models, model, m.cfg.maxModels)
}

func (m *Metrics) boundOp(op string) string {
	return admitUnder(m.ops, op, m.cfg.maxOperations)
}

// admitUnder returns name when it is in admitted or, while admitted holds
// fewer than max names, adds it; any other name is OtherModel.
func admitUnder(admitted map[string]struct{}, name string, max int) string {
	if _, ok := admitted[name]; ok {
		return name
	}
	if len(admitted) < max {
		admitted[name] = struct{}{}
		return name
	}
	return OtherModel
}

func (m *Metrics) newSeries(k seriesKey) *series {
	s := &series{
		op:         k.op,
		model:      k.model,
		durationOK: exemplar.New(m.duration.WithLabelValues(k.op, k.model, ""), m.cfg.durationBuckets),
		ttft:       exemplar.New(m.ttft.WithLabelValues(k.op, k.model), m.cfg.ttftBuckets),
		tpot:       exemplar.New(m.tpot.WithLabelValues(k.op, k.model), m.cfg.tpotBuckets),
		tps:        m.tps.WithLabelValues(k.op, k.model),
		inTokens:   m.tokens.WithLabelValues(k.op, k.model, tokenTypeInput),
		outTokens:  m.tokens.WithLabelValues(k.op, k.model, tokenTypeOutput),
		active:     m.active.WithLabelValues(k.op, k.model),
		queue:      m.queue.WithLabelValues(k.op, k.model),
		prefill:    m.prefill.WithLabelValues(k.op, k.model),
		decode:     m.decode.WithLabelValues(k.op, k.model),
		promptLen:  m.promptLen.WithLabelValues(k.op, k.model),
		genLen:     m.genLen.WithLabelValues(k.op, k.model),
		outShards:  new(tokenShards),
	}
	return s
}

func (s *series) errorDuration(m *Metrics, errType string) *exemplar.Histogram {
	if o, ok := s.errDuration.Load(errType); ok {
		return o.(*exemplar.Histogram)
	}
	o, _ := s.errDuration.LoadOrStore(errType,
		exemplar.New(m.duration.WithLabelValues(s.op, s.model, errType), m.cfg.durationBuckets))
	return o.(*exemplar.Histogram)
}

// Bound returns req with its operation and model as the metrics label them:
// each name itself while it is within the bounds (the allowlist of
// WithModels, the caps of WithMaxModels and WithMaxOperations), OtherModel
// beyond them. A name seen for the first time is admitted against the caps
// exactly as Start would admit it, and Start(ctx, m.Bound(req)) records the
// same series as Start(ctx, req). Use it for anything else that must stay
// bounded, such as the name of the span the recorder reports on. On a nil
// *Metrics it returns req unchanged. Safe for concurrent use.
func (m *Metrics) Bound(req Request) Request {
	if m == nil {
		return req
	}
	s := m.lookup(req.Operation, req.Model)
	return Request{Model: s.model, Operation: s.op}
}

// Start begins recording req and returns a context that carries the recorder
// (see FromContext) and the recorder itself. The caller must call End once the
// response is complete. On a nil *Metrics, Start returns ctx unchanged and a
// nil recorder, whose methods do nothing.
func (m *Metrics) Start(ctx context.Context, req Request) (context.Context, *Recorder) {
	if m == nil {
		return ctx, nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	s := m.lookup(req.Operation, req.Model)
	// The recorder is the context: one allocation for both.
	rc := &recorderCtx{Context: ctx, rec: Recorder{outShard: s.outShards.pick()}}
	r := &rc.rec
	r.m, r.s, r.start = m, s, m.cfg.now()
	sp := trace.SpanFromContext(ctx)
	if sp.IsRecording() {
		r.span = sp
	}
	r.tid = exemplar.TraceID(sp.SpanContext())
	s.active.Inc()
	return rc, r
}

// ErrorType returns the error_type label value of err: "" for nil, "canceled"
// for context.Canceled, "deadline_exceeded" for context.DeadlineExceeded, the
// result of the first ErrorType() string method in err's chain (when not
// empty), and "_OTHER" otherwise. Keep ErrorType values few: each is a series.
func ErrorType(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		if t := typed.ErrorType(); t != "" {
			return t
		}
	}
	return "_OTHER"
}
