package modeltel

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/logging"
	"github.com/modeltel/modeltel/middleware"
	"github.com/modeltel/modeltel/tracing"
)

// Option configures Start. Options are applied once, in order; a nil Option
// is ignored.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	serviceName    string
	serviceVersion string
	registry       *prometheus.Registry
	loki           *logging.LokiConfig
	logger         *slog.Logger
	tracerProvider trace.TracerProvider
	gpu            bool
	gpuExplicit    bool
	gpuOpts        []gpumon.Option
	middlewareOpts []middleware.Option
	inferenceOpts  []inference.Option
	tracingOpts    []tracing.Option
	globals        bool
}

func newConfig(opts []Option) config {
	c := config{serviceName: "unknown_service", gpu: true}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithServiceName names the service: the OpenTelemetry service.name of its
// spans (OTEL_SERVICE_NAME, when set, wins there) and the service_name stream
// label of its Loki logs unless the Loki config sets one. Default
// "unknown_service".
func WithServiceName(name string) Option {
	return optionFunc(func(c *config) {
		if name != "" {
			c.serviceName = name
		}
	})
}

// WithServiceVersion sets service.version on the spans.
func WithServiceVersion(version string) Option {
	return optionFunc(func(c *config) { c.serviceVersion = version })
}

// WithRegistry registers every collector on reg instead of a new registry
// (which Start otherwise creates, with the Go and process collectors). Start
// adds nothing else to reg: register the Go and process collectors yourself if
// reg lacks them. A nil reg is ignored.
func WithRegistry(reg *prometheus.Registry) Option {
	return optionFunc(func(c *config) {
		if reg != nil {
			c.registry = reg
		}
	})
}

// WithLoki also pushes the logs to Loki (see logging.NewLoki); the push
// handler's own metrics are registered and Shutdown flushes it. When
// cfg.Labels has no service_name, the service name is added. An invalid cfg
// makes Start fail.
func WithLoki(cfg logging.LokiConfig) Option {
	return optionFunc(func(c *config) { c.loki = &cfg })
}

// WithLogger uses l instead of a new logging.New logger (JSON on stdout with
// trace ids). With WithLoki, records go to both l and Loki. Start does not
// close l. A nil l is ignored.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithTracerProvider uses tp for the middleware's spans instead of one Start
// builds; Start does not shut tp down. A nil tp is ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tracerProvider = tp
		}
	})
}

// WithoutGPU skips the GPU collector, even where NVML is present.
func WithoutGPU() Option {
	return optionFunc(func(c *config) { c.gpu = false })
}

// WithGPUOptions passes opts to gpumon.New. It also says the GPU is wanted:
// with it, a GPU collector that fails for any reason but NVML being absent
// makes Start fail, where otherwise that is logged and Start goes on.
func WithGPUOptions(opts ...gpumon.Option) Option {
	return optionFunc(func(c *config) {
		c.gpuExplicit = true
		c.gpuOpts = append(c.gpuOpts, opts...)
	})
}

// WithMiddlewareOptions passes opts to middleware.New, after Start's own
// (WithInference, WithModel(ModelFromJSONBody), WithTracerProvider,
// WithPropagators, WithLogger), so they can override them. A
// middleware.WithModel given here decides which requests are inference
// requests and how their model is named (bounded, ideally: model names are
// user input).
func WithMiddlewareOptions(opts ...middleware.Option) Option {
	return optionFunc(func(c *config) { c.middlewareOpts = append(c.middlewareOpts, opts...) })
}

// WithProviderName sets gen_ai.provider.name on the inference metrics and
// the GenAI spans (inference.WithProviderName; "self_hosted" by default).
// A vLLM, TGI or SGLang server may name itself ("vllm", "tgi", "sglang"); a
// gateway in front of a hosted API names that provider with the
// convention's value ("openai", "aws.bedrock", ...).
func WithProviderName(name string) Option {
	return WithInferenceOptions(inference.WithProviderName(name))
}

// WithInferenceOptions passes opts to inference.NewMetrics (say
// inference.WithModels for an allowlist of model names).
func WithInferenceOptions(opts ...inference.Option) Option {
	return optionFunc(func(c *config) { c.inferenceOpts = append(c.inferenceOpts, opts...) })
}

// WithTracingOptions passes opts to tracing.NewProvider, after the service
// name and version. Giving any turns span export on even without
// OTEL_EXPORTER_OTLP_ENDPOINT (tracing.WithEndpoint, tracing.WithExporter).
func WithTracingOptions(opts ...tracing.Option) Option {
	return optionFunc(func(c *config) { c.tracingOpts = append(c.tracingOpts, opts...) })
}

// WithGlobals makes Start set the process-wide defaults: the tracer
// provider, the W3C trace-context and baggage propagator and a rate-limited
// error handler (logging to the logger) for OpenTelemetry, and slog's default
// logger. Without it Start sets no global.
func WithGlobals() Option {
	return optionFunc(func(c *config) { c.globals = true })
}
