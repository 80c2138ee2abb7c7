package middleware

import (
	"context"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/cowmap"
	"github.com/modeltel/modeltel/internal/exemplar"
	"github.com/modeltel/modeltel/internal/genai"
	"github.com/modeltel/modeltel/internal/promlist"
)

// Middleware instruments net/http handlers and gRPC servers. It is a
// prometheus.Collector holding the HTTP and gRPC metrics: the caller
// registers it. Its methods are safe for concurrent use; one Middleware may
// wrap any number of handlers and servers.
type Middleware struct {
	cfg config

	duration *prometheus.HistogramVec
	reqSize  *prometheus.HistogramVec
	respSize *prometheus.HistogramVec
	active   *prometheus.GaugeVec
	// activeBy is resolved at New: [method][scheme].
	activeBy [numMethods][2]prometheus.Gauge

	// http maps (method, route, status) to its resolved children; copy on
	// write, readers never lock.
	http   cowmap.Map[httpKey, *httpSeries]
	routes cowmap.Map[string, struct{}] // admitted http_route values

	grpc *grpcMetrics

	// all is every metric above: what Describe and Collect send, in an
	// order that keeps each scrape consistent (see New).
	all promlist.Collectors

	tracers atomic.Pointer[tracerEntry]
	fixed   *tracerEntry // set when WithTracerProvider was given
}

type httpKey struct {
	route  string
	method uint8
	scheme uint8 // 0 http, 1 https
	status uint16
}

type httpSeries struct {
	duration          *exemplar.Histogram // with the trace id of a sampled request
	reqSize, respSize prometheus.Observer
}

// New returns a Middleware configured by opts. It cannot fail.
func New(opts ...Option) *Middleware {
	c := newConfig(opts)
	c.guardFuncs()
	// url.scheme is Required and error.type Conditionally Required (on an
	// error: a 5xx here) on http.server.request.duration and both body-size
	// histograms; http_route is absent when no route matched.
	labels := []string{"http_request_method", "http_route", "http_response_status_code", "url_scheme", "error_type"}
	m := &Middleware{
		cfg: c,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_server_request_duration_seconds", Help: "Duration of HTTP server requests.",
			Buckets: c.durBuckets, ConstLabels: c.constLabels,
		}, labels),
		reqSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_server_request_body_size_bytes", Help: "Size of HTTP server request bodies.",
			Buckets: c.sizeBuckets, ConstLabels: c.constLabels,
		}, labels),
		respSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_server_response_body_size_bytes", Help: "Size of HTTP server response bodies.",
			Buckets: c.sizeBuckets, ConstLabels: c.constLabels,
		}, labels),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "http_server_active_requests", Help: "Number of active HTTP server requests.",
			ConstLabels: c.constLabels,
		}, []string{"http_request_method", "url_scheme"}),
	}
	for i := range numMethods {
		m.activeBy[i][0] = m.active.WithLabelValues(methodNames[i], "http")
		m.activeBy[i][1] = m.active.WithLabelValues(methodNames[i], "https")
	}
	m.grpc = newGRPCMetrics(c)
	g := m.grpc
	// A request raises the gauge and the started counter first, records
	// the rest, then lowers the gauge; the registry reads the metrics in
	// the order they are sent. So the gauge goes first (read after a
	// request's end, the reads that follow see all it recorded: no scrape
	// has a request neither active nor done) and the started counter last
	// (no scrape has more calls handled than started).
	m.all = promlist.Collectors{m.active, m.duration, m.reqSize, m.respSize,
		g.handled, g.handling, g.received, g.sent, g.started}
	if c.tp != nil {
		m.fixed = newTracerEntry(c.tp)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Middleware) Describe(ch chan<- *prometheus.Desc) { m.all.Describe(ch) }

// Collect implements prometheus.Collector.
func (m *Middleware) Collect(ch chan<- prometheus.Metric) { m.all.Collect(ch) }

// Collector returns what to register for m: with WithInference, one
// prometheus.Collector of m and those inference metrics, collected in that
// order; without, m itself. Registered apart, the two are collected
// concurrently and in any order, so a request that ends during a scrape can
// be missing from it: no longer counted active by the middleware, not yet
// done in the GenAI and inference series. Collected as one, the middleware
// first, a scrape sees every request active or done in both (as
// modeltel.Start registers them). Register it instead of m and the
// inference metrics, not as well: the same metrics registered twice fail
// to register.
func (m *Middleware) Collector() prometheus.Collector {
	if m.cfg.inference == nil {
		return m
	}
	return promlist.Collectors{m, m.cfg.inference}
}

// Methods of the HTTP conventions; any other is recorded as _OTHER.
const numMethods = 10

var methodNames = [numMethods]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch, OtherRoute,
}

func methodIndex(method string) uint8 {
	switch method {
	case http.MethodGet, "":
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodDelete:
		return 4
	case http.MethodConnect:
		return 5
	case http.MethodOptions:
		return 6
	case http.MethodTrace:
		return 7
	case http.MethodPatch:
		return 8
	}
	return numMethods - 1
}

var schemeNames = [2]string{"http", "https"}

// httpSeriesFor returns the children of (method, scheme, route, status);
// route is already bounded. A 5xx status is also its error_type, as the
// HTTP conventions set error.type to the status code when no other error
// type is known: no series beyond the status code's own.
func (m *Middleware) httpSeriesFor(method, scheme uint8, route string, status int) *httpSeries {
	return m.http.LoadOrCreate(httpKey{route: route, method: method, scheme: scheme, status: uint16(status)}, func() *httpSeries {
		code := strconv.Itoa(status)
		mn, sn := methodNames[method], schemeNames[scheme]
		var errType string
		if status >= 500 {
			errType = code
		}
		return &httpSeries{
			duration: exemplar.New(m.duration.WithLabelValues(mn, route, code, sn, errType), m.cfg.durBuckets),
			reqSize:  m.reqSize.WithLabelValues(mn, route, code, sn, errType),
			respSize: m.respSize.WithLabelValues(mn, route, code, sn, errType),
		}
	})
}

// boundRoute admits route under the cap: the first maxRoutes distinct routes
// keep their names, later ones are recorded as OtherRoute (and not stored).
// Admitted routes are answered from a copy-on-write set without a lock.
func (m *Middleware) boundRoute(route string) string {
	if route == "" {
		return UnmatchedRoute
	}
	if _, ok := m.routes.LoadOrAdmit(route, m.admitRoute, noValue); !ok {
		return OtherRoute
	}
	return route
}

// admitRoute admits a new route while the set is under the cap; it runs
// under the lock of m.routes, so Len is exact.
func (m *Middleware) admitRoute(route string) (string, bool) {
	return route, m.routes.Len() < m.cfg.maxRoutes
}

func noValue(string) struct{} { return struct{}{} }

// routeOf returns the bounded route of a served request.
func (m *Middleware) routeOf(r *http.Request) string {
	if m.cfg.route != nil {
		return m.boundRoute(m.cfg.route(r))
	}
	return m.boundRoute(patternPath(r.Pattern))
}

// patternPath returns the path of a ServeMux pattern ("[METHOD ][HOST]/PATH"),
// the http.route of the conventions.
func patternPath(p string) string {
	if p == "" || p[0] == '/' {
		return p
	}
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[i:]
	}
	return p
}

// startInference starts the GenAI span (when tracer is not nil) and the
// inference recorder of a request for model and op ("": DefaultOperation),
// and returns the model as the metrics label it. The span is named after the
// bounded model, as the metrics label it: model names are client input.
//
// The span carries gen_ai.provider.name (Required on GenAI spans) from the
// inference metrics, and extra (the request parameters, the server address)
// when not nil: they are built only when tracer is not nil.
func (m *Middleware) startInference(ctx context.Context, tracer trace.Tracer, model, op string, extra func([]attribute.KeyValue) []attribute.KeyValue) (context.Context, trace.Span, *inference.Recorder, string) {
	if op == "" {
		op = DefaultOperation
	}
	req := m.cfg.inference.Bound(inference.Request{Model: model, Operation: op})
	var span trace.Span
	if tracer != nil {
		attrs := genai.RequestSpanAttrs(make([]attribute.KeyValue, 0, 10), req.Operation, req.Model)
		attrs = append(attrs, genai.ProviderNameKey.String(m.cfg.inference.ProviderName()))
		if extra != nil {
			attrs = extra(attrs)
		}
		ctx, span = genai.StartRequestSpanAttrs(ctx, tracer, req.Operation, req.Model, attrs)
	}
	ctx, rec := m.cfg.inference.Start(ctx, req)
	return ctx, span, rec, req.Model
}

// tracerEntry is a tracer resolved from a provider; tracer is nil when the
// provider is a no-op.
type tracerEntry struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
}

func newTracerEntry(tp trace.TracerProvider) *tracerEntry {
	if isNoopProvider(tp) {
		return &tracerEntry{tp: tp}
	}
	return &tracerEntry{tp: tp, tracer: tp.Tracer(genai.TracerName)}
}

// isNoopProvider reports a provider whose spans can never record: the noop
// package's, and OpenTelemetry's global delegate before a provider was set
// (its spans only carry the parent's span context, which the extracted
// context carries already).
func isNoopProvider(tp trace.TracerProvider) bool {
	if _, ok := tp.(noop.TracerProvider); ok {
		return true
	}
	t := reflect.TypeOf(tp)
	return t.Kind() == reflect.Pointer && t.Elem().Name() == "tracerProvider" &&
		t.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global"
}

// isNoopPropagator reports a propagator that extracts nothing:
// OpenTelemetry's global delegate before a propagator was set (and with no
// delegate given since). Calls skip reading the incoming headers for it.
func isNoopPropagator(p propagation.TextMapPropagator) bool {
	t := reflect.TypeOf(p)
	if t == nil {
		return true
	}
	if t.Kind() != reflect.Pointer || t.Elem().Name() != "textMapPropagator" ||
		t.Elem().PkgPath() != "go.opentelemetry.io/otel/internal/global" {
		return false
	}
	// The delegate answers its delegate's fields, none before one is set.
	return len(p.Fields()) == 0
}

// tracer returns the tracer for this request, nil when tracing is off.
func (m *Middleware) tracer() trace.Tracer {
	if m.fixed != nil {
		return m.fixed.tracer
	}
	tp := otel.GetTracerProvider()
	// Only comparable providers are cached, so == cannot panic: it compares
	// dynamic types first.
	if e := m.tracers.Load(); e != nil && e.tp == tp {
		return e.tracer
	}
	e := newTracerEntry(tp)
	if reflect.TypeOf(tp).Comparable() {
		m.tracers.Store(e)
	}
	return e.tracer
}

func (m *Middleware) propagators() propagation.TextMapPropagator {
	if m.cfg.propagators != nil {
		return m.cfg.propagators
	}
	return otel.GetTextMapPropagator()
}

// statusError is the error an inference recorder ends with for an HTTP
// status >= 400: its error_type is the status code, as the HTTP conventions
// set error.type.
type statusError int

func (e statusError) Error() string     { return "middleware: status " + strconv.Itoa(int(e)) }
func (e statusError) ErrorType() string { return strconv.Itoa(int(e)) }
