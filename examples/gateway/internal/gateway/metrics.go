package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/internal/promlist"
)

// metrics are the gateway's own series (the HTTP, inference and trace
// telemetry is the SDK middleware's). Names start with gateway_: no
// convention has them.
type metrics struct {
	up, models, active          *prometheus.GaugeVec
	requests, errors            *prometheus.CounterVec
	duration, headers           *prometheus.HistogramVec
	overhead                    prometheus.Histogram
	tenantRequests, tenantToken *prometheus.CounterVec
	all                         promlist.Collectors
}

// upstreamBuckets are the boundaries of the upstream histograms: the
// GenAI request duration's (a stream may last minutes).
var upstreamBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}

// overheadBuckets are the boundaries of gateway_overhead_seconds: 50µs to
// about 0.4s.
var overheadBuckets = prometheus.ExponentialBuckets(50e-6, 2, 14)

func newMetrics() *metrics {
	u := []string{"upstream"}
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateway_upstream_up",
			Help: "1 when the upstream answered its last GET /v1/models (and no request since failed to connect), else 0."}, u),
		models: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateway_upstream_models",
			Help: "Models the upstream listed on its last successful GET /v1/models."}, u),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateway_upstream_active_requests",
			Help: "Requests being forwarded to the upstream, streams included."}, u),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_upstream_requests_total",
			Help: "Requests forwarded to the upstream."}, u),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_upstream_errors_total",
			Help: "Forwarded requests that failed, by error_type: connect, timeout, transport, aborted (the body was cut), status_5xx."},
			[]string{"upstream", "error_type"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateway_upstream_duration_seconds",
			Help: "Upstream time of a forwarded request: from sending it to the end of the upstream's body.", Buckets: upstreamBuckets}, u),
		headers: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateway_upstream_response_header_seconds",
			Help: "From sending a request upstream to its response headers.", Buckets: upstreamBuckets}, u),
		overhead: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gateway_overhead_seconds",
			Help: "Gateway time of a forwarded request: its whole time in the gateway less the upstream time.", Buckets: overheadBuckets}),
		tenantRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_tenant_requests_total",
			Help: "Requests by tenant: a hash of the API key (or tenant header), the first --max-tenants seen; the rest are \"other\"."},
			[]string{"tenant"}),
		tenantToken: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_tenant_tokens_total",
			Help: "Tokens by tenant (see gateway_tenant_requests_total) and gen_ai_token_type (input, output)."},
			[]string{"tenant", "gen_ai_token_type"}),
	}
	// The order keeps each scrape consistent: a request raises active and
	// requests first and lowers active last, so active goes first (no
	// request is neither active nor in the histograms) and requests last
	// (never more timed than counted).
	m.all = promlist.Collectors{m.active, m.up, m.models, m.errors, m.duration, m.headers, m.overhead,
		m.tenantRequests, m.tenantToken, m.requests}
	return m
}

func (m *metrics) forUpstream(u *upstream) {
	n := u.name
	u.upGauge = m.up.WithLabelValues(n)
	u.modelsGauge = m.models.WithLabelValues(n)
	u.active = m.active.WithLabelValues(n)
	u.requests = m.requests.WithLabelValues(n)
	u.duration = m.duration.WithLabelValues(n)
	u.headers = m.headers.WithLabelValues(n)
	for i := range u.errs {
		u.errs[i] = m.errors.WithLabelValues(n, errTypeNames[i])
	}
}
