package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/examples/internal/openai"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/middleware"
)

// Defaults of Config.
const (
	DefaultRefresh    = 10 * time.Second
	DefaultTimeout    = 60 * time.Second
	DefaultMaxTenants = 50
	// MaxBodyBytes bounds the request body the gateway reads the model from.
	MaxBodyBytes = 8 << 20
)

// Config is what New needs. Only Upstreams is required.
type Config struct {
	// Upstreams are the base URLs of OpenAI-compatible servers
	// (http://host:port, a trailing /v1 is allowed).
	Upstreams []string
	// Refresh is how often each upstream's GET /v1/models is asked
	// (DefaultRefresh); it is also the health check.
	Refresh time.Duration
	// Timeout bounds the wait for an upstream's response headers
	// (DefaultTimeout); a stream, once started, may last longer.
	Timeout time.Duration
	// TenantHeader names the request header that identifies the tenant;
	// "" uses the API key (Authorization: Bearer). Either is hashed.
	TenantHeader string
	// TenantSalt is mixed into the tenant hash, so that a hash cannot be
	// matched against a list of known keys.
	TenantSalt string
	// MaxTenants bounds the tenant label (DefaultMaxTenants).
	MaxTenants int
	// Transport is the base transport to the upstreams; nil is a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// TracerProvider and Propagator trace the upstream calls (client spans,
	// trace context in the request to the upstream); nil: the global
	// provider, and the W3C trace context and baggage propagators.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Logger gets upstream state changes; nil discards.
	Logger *slog.Logger
}

// Gateway is an OpenAI-compatible reverse proxy: it serves the union of its
// upstreams' models on /v1/models and forwards each POST /v1/... to an
// upstream that serves the request's "model". It is a prometheus.Collector
// of its own metrics (see the package documentation); register it. Safe for
// concurrent use.
type Gateway struct {
	cfg     Config
	ups     []*upstream
	cat     atomic.Pointer[catalog]
	proxy   *httputil.ReverseProxy
	client  *http.Client // for GET /v1/models
	m       *metrics
	tenants *tenants
	log     *slog.Logger
	now     func() time.Time
	body    func(*http.Request) string // the "model" of a JSON body
}

// New returns a gateway over cfg.Upstreams; call Refresh (or Run) before
// serving, so that it knows their models.
func New(cfg Config) (*Gateway, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("gateway: no upstream")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxTenants <= 0 {
		cfg.MaxTenants = DefaultMaxTenants
	}
	g := &Gateway{cfg: cfg, m: newMetrics(), log: cfg.Logger, now: time.Now,
		body: middleware.ModelFromJSONBody(MaxBodyBytes)}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.tenants = &tenants{header: cfg.TenantHeader, salt: cfg.TenantSalt, max: cfg.MaxTenants, m: g.m}
	seen := map[string]bool{}
	for _, raw := range cfg.Upstreams {
		u, err := parseUpstream(raw)
		if err != nil {
			return nil, err
		}
		if seen[u.String()] {
			return nil, fmt.Errorf("gateway: upstream %s given twice", u)
		}
		seen[u.String()] = true
		up := &upstream{name: u.Host, url: u}
		g.m.forUpstream(up)
		g.ups = append(g.ups, up)
	}
	base := cfg.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = cfg.Timeout
		t.MaxIdleConnsPerHost = 256
		base = t
	}
	otelOpts := []otelhttp.Option{otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return "upstream " + r.Method + " " + r.URL.Path
	})}
	if cfg.TracerProvider != nil {
		otelOpts = append(otelOpts, otelhttp.WithTracerProvider(cfg.TracerProvider))
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	otelOpts = append(otelOpts, otelhttp.WithPropagators(cfg.Propagator))
	traced := otelhttp.NewTransport(base, otelOpts...)
	g.client = &http.Client{Transport: base}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      &timedTransport{g: g, next: traced},
		FlushInterval:  -1, // every write reaches the client at once: no added buffering delay
		ErrorHandler:   g.proxyError,
		ModifyResponse: g.modifyResponse,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	g.cat.Store(buildCatalog(nil))
	return g, nil
}

// Describe implements prometheus.Collector.
func (g *Gateway) Describe(ch chan<- *prometheus.Desc) { g.m.all.Describe(ch) }

// Collect implements prometheus.Collector.
func (g *Gateway) Collect(ch chan<- prometheus.Metric) { g.m.all.Collect(ch) }

// Refresh asks every upstream for its models at once and rebuilds the
// catalog; an upstream that fails is marked down. It returns the errors
// joined (the gateway goes on with the upstreams that answered).
func (g *Gateway) Refresh(ctx context.Context) error {
	errs := make([]error, len(g.ups))
	var wg sync.WaitGroup
	for i, u := range g.ups {
		wg.Go(func() {
			was := u.up.Load()
			errs[i] = u.refresh(ctx, g.client, min(g.cfg.Refresh, 10*time.Second))
			switch now := u.up.Load(); {
			case now && !was:
				g.log.InfoContext(ctx, "upstream up", "upstream", u.name, "models", len(u.modelList()))
			case !now && was:
				g.log.WarnContext(ctx, "upstream down", "upstream", u.name, "error", errs[i].Error())
			}
		})
	}
	wg.Wait()
	g.cat.Store(buildCatalog(g.ups))
	return errors.Join(errs...)
}

// Run refreshes every cfg.Refresh until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	t := time.NewTicker(g.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = g.Refresh(ctx)
		}
	}
}

// Models returns the ids of the models the gateway routes, sorted.
func (g *Gateway) Models() []string {
	c := g.cat.Load()
	ids := make([]string, len(c.list))
	for i, m := range c.list {
		ids[i] = m.ID
	}
	return ids
}

// call is the state of one request, from the tenant layer (outside the
// middleware) to the proxy (inside it).
type call struct {
	start  time.Time
	model  string // the request's "model", read once
	read   bool   // model was read
	up     *upstream
	rec    *inference.Recorder
	sent   time.Time // the request went upstream
	upDur  time.Duration
	upDone atomic.Bool
}

type callKey struct{}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// Handler returns the gateway's HTTP API, instrumented by instrument (the
// SDK middleware's Handler; nil: none) and attributed to tenants outside
// it. Routes: GET /v1/models, GET /v1/models/{id}, POST /v1/{path...}
// (forwarded by model), anything else a 404 in OpenAI's error shape.
func (g *Gateway) Handler(instrument func(http.Handler) http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", g.listModels)
	mux.HandleFunc("GET /v1/models/{id...}", g.getModel)
	mux.HandleFunc("POST /v1/{path...}", g.forward)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, "invalid_request_error", "",
			fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
	})
	var h http.Handler = mux
	if instrument != nil {
		h = instrument(mux)
	}
	return g.attribute(h)
}

// attribute is the outermost layer: it counts the request and its tokens
// for its tenant once the middleware inside has recorded them.
func (g *Gateway) attribute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{start: g.now()}
		id := g.tenants.id(r)
		ts := g.tenants.series(id)
		ts.requests.Inc()
		defer func() {
			if c.rec != nil {
				in, out := c.rec.Tokens()
				ts.in.Add(float64(in))
				ts.out.Add(float64(out))
			}
		}()
		ctx := context.WithValue(r.Context(), callKey{}, c)
		// Logs and spans get the tenant's own hash: no bound is needed there.
		ctx = context.WithValue(ctx, tenantKey{}, id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type tenantKey struct{}

// Model is the middleware.WithModel func: the "model" of a POST /v1/...
// body when the gateway routes it, "other" for a model it does not know
// (model names are user input), "" for no model. The body is read once here
// (and restored), and the model kept for the forwarding.
func (g *Gateway) Model(r *http.Request) string {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/") {
		return ""
	}
	model := g.body(r)
	if c := callFrom(r.Context()); c != nil {
		c.model, c.read = model, true
	}
	if model == "" {
		return ""
	}
	if _, ok := g.cat.Load().routes[model]; !ok {
		return "other"
	}
	return model
}

// Operation returns the middleware.WithOperation func: the
// gen_ai.operation.name of an OpenAI path.
func Operation(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
		return "chat"
	case strings.HasSuffix(p, "/completions"):
		return "text_completion"
	case strings.HasSuffix(p, "/embeddings"):
		return "embeddings"
	}
	return "chat"
}

func (g *Gateway) listModels(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, openai.ModelList{Object: "list", Data: g.cat.Load().list})
}

func (g *Gateway) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, m := range g.cat.Load().list {
		if m.ID == id {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, r, http.StatusNotFound, "invalid_request_error", "model_not_found",
		fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", id))
}

func (g *Gateway) forward(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := callFrom(ctx)
	if c == nil { // Handler always sets one; a defensive default
		c = &call{start: g.now()}
		ctx = context.WithValue(ctx, callKey{}, c)
	}
	if !c.read {
		c.model, c.read = g.body(r), true
	}
	c.rec = inference.FromContext(ctx)
	if c.model == "" {
		writeError(w, r, http.StatusBadRequest, "invalid_request_error", "missing_required_parameter",
			"Missing required parameter: 'model'.")
		return
	}
	route, ok := g.cat.Load().routes[c.model]
	if !ok {
		writeError(w, r, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", c.model))
		return
	}
	up := route.pick()
	if up == nil {
		writeError(w, r, http.StatusServiceUnavailable, "server_error", "upstream_unavailable",
			fmt.Sprintf("No upstream serving `%s` is up; retry shortly.", c.model))
		return
	}
	c.up = up
	tenant, _ := ctx.Value(tenantKey{}).(string)
	middleware.AddLogAttrs(ctx, slog.String("upstream", up.name), slog.String("tenant", tenant))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("modeltel.gateway.upstream", up.name),
			attribute.String("modeltel.gateway.tenant", tenant))
	}
	up.active.Inc()
	up.requests.Inc()
	defer func() {
		if !c.sent.IsZero() {
			upDur := c.upDur
			if !c.upDone.Load() {
				upDur = g.now().Sub(c.sent) // the body was never read to its end
			}
			if o := g.now().Sub(c.start) - upDur; o >= 0 {
				g.m.overhead.Observe(o.Seconds())
			}
		}
		// Last: a scrape that finds the request no longer active finds
		// all it recorded (Collect reads the gauge first).
		up.active.Dec()
	}()
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite points the outgoing request at the chosen upstream.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	c := callFrom(pr.In.Context())
	pr.SetURL(c.up.url)
	pr.SetXForwarded()
}

// modifyResponse counts an upstream's 5xx answers.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	if c := callFrom(resp.Request.Context()); c != nil && resp.StatusCode >= 500 {
		c.up.errs[errStatus5xx].Inc()
	}
	return nil
}

// proxyError answers a request the upstream could not: 504 for a timeout,
// 502 otherwise, in OpenAI's error shape; nothing for a client that went
// away (there is no one to read it).
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	c := callFrom(r.Context())
	name := ""
	if c != nil && c.up != nil {
		name = c.up.name
	}
	if classify(err) == errTimeout {
		writeError(w, r, http.StatusGatewayTimeout, "server_error", "upstream_timeout",
			fmt.Sprintf("The upstream %s did not answer in time.", name))
		return
	}
	writeError(w, r, http.StatusBadGateway, "server_error", "upstream_error",
		fmt.Sprintf("The upstream %s failed: %v", name, errors.Unwrap(err)))
}

// classify returns the error type of a failed round trip.
func classify(err error) int {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.As(err, &oe) && oe.Op == "dial":
		return errConnect
	}
	return errTransport
}

// timedTransport times the upstream part of a request: from the round trip
// to the end of the upstream's body, and counts its errors.
type timedTransport struct {
	g    *Gateway
	next http.RoundTripper
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := callFrom(req.Context())
	if c == nil || c.up == nil {
		return t.next.RoundTrip(req)
	}
	c.sent = t.g.now()
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		c.upDur = t.g.now().Sub(c.sent)
		c.upDone.Store(true)
		if req.Context().Err() == nil { // not the client going away
			typ := classify(err)
			c.up.errs[typ].Inc()
			if typ == errConnect {
				c.up.setUp(false) // until the next refresh finds it
			}
		}
		c.up.duration.Observe(c.upDur.Seconds())
		return nil, err
	}
	c.up.headers.Observe(t.g.now().Sub(c.sent).Seconds())
	resp.Body = &timedBody{ReadCloser: resp.Body, c: c, t: t, ctx: req.Context()}
	return resp, nil
}

// timedBody ends the upstream time when the upstream's body ends.
type timedBody struct {
	io.ReadCloser
	c    *call
	t    *timedTransport
	ctx  context.Context
	once sync.Once
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done(err)
	}
	return n, err
}

func (b *timedBody) Close() error {
	b.done(nil)
	return b.ReadCloser.Close()
}

func (b *timedBody) done(err error) {
	b.once.Do(func() {
		c := b.c
		c.upDur = b.t.g.now().Sub(c.sent)
		c.upDone.Store(true)
		c.up.duration.Observe(c.upDur.Seconds())
		if err != nil && !errors.Is(err, io.EOF) && b.ctx.Err() == nil {
			if classify(err) == errTimeout {
				c.up.errs[errTimeout].Inc()
			} else {
				c.up.errs[errAborted].Inc()
			}
		}
	})
}

// bufferPool recycles the proxy's copy buffers: 8 KiB, not httputil's
// 32 KiB, as each open stream holds one and SSE events are small (97 -> 70
// KiB per open stream, BenchmarkOpenStreamMemory). It pools the arrays
// themselves, so that neither Get nor Put allocates.
type bufferPool struct{}

const copyBufSize = 8 << 10

var buffers = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[copyBufSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) >= copyBufSize {
		buffers.Put((*[copyBufSize]byte)(b[:copyBufSize]))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in OpenAI's error shape.
func writeError(w http.ResponseWriter, _ *http.Request, status int, typ, code, msg string) {
	e := openai.ErrorResponse{Error: openai.Error{Message: msg, Type: typ}}
	if code != "" {
		e.Error.Code = &code
	}
	writeJSON(w, status, e)
}
