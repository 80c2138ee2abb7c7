package inference

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/cowmap"
	"github.com/modeltel/modeltel/internal/promlist"
)

// Label names.
const (
	labelOperation = "gen_ai_operation_name"
	labelModel     = "gen_ai_request_model"
	labelErrorType = "error_type"
	labelTokenType = "gen_ai_token_type"
	labelFinish    = "finish_reason"

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
	all      promlist.Collectors // the seven above: what Describe and Collect send

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
	op, model   string
	durationOK  prometheus.Observer
	ttft        prometheus.Observer
	tpot        prometheus.Observer
	tps         prometheus.Observer
	inTokens    prometheus.Counter
	outTokens   prometheus.Counter
	active      prometheus.Gauge
	errDuration sync.Map // error type -> prometheus.Observer
	// cachedTokens and requests are resolved on first use: a server that
	// never reports cached tokens exposes no cache_read series, and only the
	// finish reasons that occur get one.
	cachedTokens lazyCounter
	requests     [numFinish]lazyCounter
}

// NewMetrics returns the inference metrics configured by opts.
func NewMetrics(opts ...Option) *Metrics {
	c := newConfig(opts)
	hist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		o := prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: c.constLabels}
		if c.nativeFactor > 1 {
			o.NativeHistogramBucketFactor = c.nativeFactor
			o.NativeHistogramMaxBucketNumber = 160
			o.NativeHistogramMinResetDuration = time.Hour
		}
		return prometheus.NewHistogramVec(o, labels)
	}
	m := &Metrics{
		cfg: c,
		duration: hist("gen_ai_server_request_duration_seconds",
			"Generative AI server request duration, to the last output token; error_type is set when the request failed.",
			c.durationBuckets, labelOperation, labelModel, labelErrorType),
		ttft: hist("gen_ai_server_time_to_first_token_seconds",
			"Time to generate the first token, for successful requests.",
			c.ttftBuckets, labelOperation, labelModel),
		tpot: hist("gen_ai_server_time_per_output_token_seconds",
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
		models: make(map[string]struct{}),
		ops:    make(map[string]struct{}),
	}
	m.all = promlist.Collectors{m.duration, m.ttft, m.tpot, m.tps, m.tokens, m.active, m.requests}
	return m
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
	return &series{
		op:         k.op,
		model:      k.model,
		durationOK: m.duration.WithLabelValues(k.op, k.model, ""),
		ttft:       m.ttft.WithLabelValues(k.op, k.model),
		tpot:       m.tpot.WithLabelValues(k.op, k.model),
		tps:        m.tps.WithLabelValues(k.op, k.model),
		inTokens:   m.tokens.WithLabelValues(k.op, k.model, tokenTypeInput),
		outTokens:  m.tokens.WithLabelValues(k.op, k.model, tokenTypeOutput),
		active:     m.active.WithLabelValues(k.op, k.model),
	}
}

func (s *series) errorDuration(m *Metrics, errType string) prometheus.Observer {
	if o, ok := s.errDuration.Load(errType); ok {
		return o.(prometheus.Observer)
	}
	o, _ := s.errDuration.LoadOrStore(errType, m.duration.WithLabelValues(s.op, s.model, errType))
	return o.(prometheus.Observer)
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
	rc := &recorderCtx{Context: ctx}
	r := &rc.rec
	r.m, r.s, r.start = m, s, m.cfg.now()
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		r.span = sp
	}
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
