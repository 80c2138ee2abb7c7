package inference

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/internal/genai"
)

// Bucket boundaries advised by the OpenTelemetry GenAI semantic conventions.
var (
	// DurationBuckets are the advisory boundaries of gen_ai.server.request.duration.
	DurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	// TTFTBuckets are the advisory boundaries of gen_ai.server.time_to_first_token.
	TTFTBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	// TPOTBuckets are the advisory boundaries of gen_ai.server.time_per_output_token.
	TPOTBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	// TokensPerSecondBuckets are the boundaries of inference_output_tokens_per_second
	// (no convention names this metric; roughly 1/TPOTBuckets, extended).
	TokensPerSecondBuckets = []float64{1, 2.5, 5, 10, 25, 50, 75, 100, 150, 250, 500, 1000, 2500}
	// TokenCountBuckets are the boundaries of inference_request_prompt_tokens
	// and inference_request_generation_tokens (ours; the 1-2-5 series vLLM's
	// request_prompt_tokens and request_generation_tokens use).
	TokenCountBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000}

	// DurationTailBuckets extend DurationBuckets (which stop at 81.92 s)
	// for long or queued generations under WithExtendedBuckets: the same
	// doubling, to 2621.44 s.
	DurationTailBuckets = []float64{163.84, 327.68, 655.36, 1310.72, 2621.44}
	// TTFTTailBuckets extend TTFTBuckets (which stop at 10 s) under
	// WithExtendedBuckets, to 2560 s as vLLM's time_to_first_token_seconds.
	TTFTTailBuckets = []float64{20, 40, 80, 160, 320, 640, 1280, 2560}
)

// DefaultProviderName is the gen_ai.provider.name of a Metrics without
// WithProviderName: a server that runs the model itself. The convention's
// well-known values (openai, aws.bedrock, ...) name hosted providers; for a
// self-hosted server none applies, and "a custom value MAY be used".
const DefaultProviderName = genai.DefaultProviderName

// Defaults of the cardinality bounds.
const (
	DefaultMaxModels     = 100
	DefaultMaxOperations = 16
	// OtherModel is the gen_ai_request_model (and gen_ai_operation_name) value
	// of requests beyond the allowlist or cap.
	OtherModel = "other"
)

// Option configures a Metrics. Options are applied once, by NewMetrics.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	durationBuckets, ttftBuckets, tpotBuckets, tpsBuckets []float64
	extended                                              bool
	nativeFactor                                          float64
	provider, serverAddress                               string
	serverPort                                            int
	allow                                                 map[string]struct{}
	maxModels, maxOperations                              int
	constLabels                                           prometheus.Labels
	now                                                   func() time.Time
}

func newConfig(opts []Option) config {
	c := config{
		durationBuckets: DurationBuckets,
		ttftBuckets:     TTFTBuckets,
		tpotBuckets:     TPOTBuckets,
		tpsBuckets:      TokensPerSecondBuckets,
		maxModels:       DefaultMaxModels,
		maxOperations:   DefaultMaxOperations,
		provider:        DefaultProviderName,
		now:             time.Now,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.extended {
		// Only the defaults are extended: buckets the caller chose stay.
		if &c.durationBuckets[0] == &DurationBuckets[0] {
			c.durationBuckets = append(append([]float64{}, DurationBuckets...), DurationTailBuckets...)
		}
		if &c.ttftBuckets[0] == &TTFTBuckets[0] {
			c.ttftBuckets = append(append([]float64{}, TTFTBuckets...), TTFTTailBuckets...)
		}
	}
	return c
}

// WithProviderName sets gen_ai.provider.name, the label
// gen_ai_provider_name of the three gen_ai_server_* histograms and the
// attribute of the GenAI span (Required on both by the GenAI conventions).
// The default is DefaultProviderName, "self_hosted". A server that proxies a
// hosted provider names it with the convention's value ("openai",
// "aws.bedrock", ...); an engine may name itself ("vllm", "tgi", "sglang"):
// the value says whose telemetry flavor the signals follow. "" keeps the
// default.
func WithProviderName(name string) Option {
	return optionFunc(func(c *config) {
		if name != "" {
			c.provider = name
		}
	})
}

// WithServerAddress sets server.address and server.port (the address the
// server is reached at, "Recommended" and "Conditionally Required if
// server.address is set" on the gen_ai.server.* metrics): constant labels
// server_address and server_port on the three gen_ai_server_* histograms,
// one value per process, so they add no series. port <= 0 leaves
// server_port out; "" sets neither.
func WithServerAddress(address string, port int) Option {
	return optionFunc(func(c *config) {
		c.serverAddress, c.serverPort = address, port
	})
}

// WithExtendedBuckets extends the default boundaries of request duration
// (and of queue, prefill and decode time) with DurationTailBuckets, to
// 2621.44 s, and of time to first token with TTFTTailBuckets, to 2560 s, so
// that the p99 of long or queued generations is measured rather than
// clamped at the last boundary (81.92 s, 10 s). The default boundaries stay
// the convention's; boundaries set with WithDurationBuckets or
// WithTTFTBuckets are kept as given. WithNativeHistograms is the other way
// to long-tail truth, and the two combine.
func WithExtendedBuckets() Option {
	return optionFunc(func(c *config) { c.extended = true })
}

// WithDurationBuckets sets the boundaries of gen_ai_server_request_duration_seconds.
// nil or empty keeps the default.
func WithDurationBuckets(b []float64) Option {
	return optionFunc(func(c *config) {
		if len(b) > 0 {
			c.durationBuckets = b
		}
	})
}

// WithTTFTBuckets sets the boundaries of gen_ai_server_time_to_first_token_seconds.
// nil or empty keeps the default.
func WithTTFTBuckets(b []float64) Option {
	return optionFunc(func(c *config) {
		if len(b) > 0 {
			c.ttftBuckets = b
		}
	})
}

// WithTPOTBuckets sets the boundaries of gen_ai_server_time_per_output_token_seconds.
// nil or empty keeps the default.
func WithTPOTBuckets(b []float64) Option {
	return optionFunc(func(c *config) {
		if len(b) > 0 {
			c.tpotBuckets = b
		}
	})
}

// WithTokensPerSecondBuckets sets the boundaries of inference_output_tokens_per_second.
// nil or empty keeps the default.
func WithTokensPerSecondBuckets(b []float64) Option {
	return optionFunc(func(c *config) {
		if len(b) > 0 {
			c.tpsBuckets = b
		}
	})
}

// WithNativeHistograms makes every histogram also a Prometheus native
// histogram with the given bucket growth factor (1.1 when factor <= 1), next
// to the classic buckets, so a scraper that does not ask for native
// histograms sees no difference.
func WithNativeHistograms(factor float64) Option {
	return optionFunc(func(c *config) {
		if factor <= 1 {
			factor = 1.1
		}
		c.nativeFactor = factor
	})
}

// WithModels is an allowlist of model names: the requests for any other model
// are recorded as "other". It replaces the cap of WithMaxModels. With no names
// the option does nothing.
func WithModels(models ...string) Option {
	return optionFunc(func(c *config) {
		if len(models) == 0 {
			return
		}
		c.allow = make(map[string]struct{}, len(models))
		for _, m := range models {
			c.allow[m] = struct{}{}
		}
	})
}

// WithMaxModels caps the number of distinct model names (default 100): the
// first n seen get their own series, later ones are recorded as "other".
// n <= 0 keeps the default.
func WithMaxModels(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxModels = n
		}
	})
}

// WithMaxOperations caps the number of distinct operation names (default 16);
// later ones are recorded as "other". n <= 0 keeps the default.
func WithMaxOperations(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxOperations = n
		}
	})
}

// WithConstLabels adds constant labels (say the serving replica's pool) to
// every metric.
func WithConstLabels(l prometheus.Labels) Option {
	return optionFunc(func(c *config) { c.constLabels = l })
}

// withClock replaces time.Now, for tests.
func withClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}
