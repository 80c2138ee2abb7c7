package tracing

import (
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Option configures Setup and NewProvider. Options are applied once, at
// construction. Where an option and a standard OTEL_* environment variable
// set the same thing, the environment variable wins (see the package
// documentation, "Environment").
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	serviceName    string
	serviceVersion string
	endpoint       string
	insecure       bool
	headers        map[string]string
	sampler        sdktrace.Sampler
	exporter       sdktrace.SpanExporter
	resourceAttrs  []attribute.KeyValue
	batchOpts      []sdktrace.BatchSpanProcessorOption
	errorLogger    *slog.Logger
	metrics        *Metrics
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithServiceName sets the service.name resource attribute. OTEL_SERVICE_NAME
// (or service.name in OTEL_RESOURCE_ATTRIBUTES) overrides it. Without either,
// service.name is "unknown_service:<executable>".
func WithServiceName(name string) Option {
	return optionFunc(func(c *config) { c.serviceName = name })
}

// WithServiceVersion sets the service.version resource attribute.
// service.version in OTEL_RESOURCE_ATTRIBUTES overrides it.
func WithServiceVersion(version string) Option {
	return optionFunc(func(c *config) { c.serviceVersion = version })
}

// WithEndpoint sets the OTLP gRPC endpoint, either "host:port" or a URL
// ("http://host:port" implies an insecure connection, "https://..." a TLS
// one). It is ignored when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. The default is the exporter's,
// localhost:4317 over TLS.
func WithEndpoint(endpoint string) Option {
	return optionFunc(func(c *config) { c.endpoint = strings.TrimSpace(endpoint) })
}

// WithInsecure makes the exporter connect without TLS. It is ignored when an
// endpoint or OTEL_EXPORTER_OTLP_(TRACES_)INSECURE comes from the environment
// (an "http://" endpoint is insecure there).
func WithInsecure() Option {
	return optionFunc(func(c *config) { c.insecure = true })
}

// WithHeaders sets gRPC metadata sent with every export (authentication, a
// tenant). It is ignored when OTEL_EXPORTER_OTLP_HEADERS or
// OTEL_EXPORTER_OTLP_TRACES_HEADERS is set. The map is copied.
func WithHeaders(headers map[string]string) Option {
	h := make(map[string]string, len(headers))
	for k, v := range headers {
		h[k] = v
	}
	return optionFunc(func(c *config) { c.headers = h })
}

// WithSampler sets the sampler. It is ignored when OTEL_TRACES_SAMPLER names a
// sampler, which the SDK then reads (with OTEL_TRACES_SAMPLER_ARG); a value the
// SDK does not know is reported through otel.Handle and leaves this one in
// force. Without either the
// sampler is ParentBased(AlwaysSample). A nil sampler is ignored.
func WithSampler(s sdktrace.Sampler) Option {
	return optionFunc(func(c *config) {
		if s != nil {
			c.sampler = s
		}
	})
}

// WithExporter replaces the OTLP gRPC exporter with e (tests, stdouttrace).
// The endpoint, insecure and header options and variables then have no
// effect. The provider shuts e down on Shutdown. A nil exporter is ignored.
func WithExporter(e sdktrace.SpanExporter) Option {
	return optionFunc(func(c *config) {
		if e != nil {
			c.exporter = e
		}
	})
}

// WithResourceAttributes adds attributes to the resource. Attributes from
// OTEL_RESOURCE_ATTRIBUTES override those with the same key.
func WithResourceAttributes(attrs ...attribute.KeyValue) Option {
	a := append([]attribute.KeyValue(nil), attrs...)
	return optionFunc(func(c *config) { c.resourceAttrs = append(c.resourceAttrs, a...) })
}

// WithBatchOptions passes options to the batch span processor (queue size,
// batch timeout...). The OTEL_BSP_* variables set its defaults. Do not pass
// sdktrace.WithBlocking: it makes span ends wait for a full queue.
func WithBatchOptions(opts ...sdktrace.BatchSpanProcessorOption) Option {
	o := append([]sdktrace.BatchSpanProcessorOption(nil), opts...)
	return optionFunc(func(c *config) { c.batchOpts = append(c.batchOpts, o...) })
}

// WithErrorLogger sets the logger that the error handler installed by Setup
// writes its rate-limited warnings to, and that Shutdown reports the spans it
// could not export on (both providers). Nil, the default, means
// slog.Default() at the time of each warning. NewProvider installs no error
// handler.
func WithErrorLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.errorLogger = l })
}

// WithMetrics counts the provider's spans in m: exported, export failed and
// dropped (see Metrics). Register m on a registry. Without it they are
// counted where nobody reads them. A nil m is ignored.
func WithMetrics(m *Metrics) Option {
	return optionFunc(func(c *config) {
		if m != nil {
			c.metrics = m
		}
	})
}
