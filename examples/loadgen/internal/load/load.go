package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modeltel/modeltel/examples/inference-server/generatepb"
	"github.com/modeltel/modeltel/examples/internal/openai"
)

// Request kinds, as the summary names them.
const (
	KindHTTP       = "http"
	KindHTTPStream = "http-stream"
	KindGRPC       = "grpc"
)

// Config says what load to send. Zero values take the defaults noted.
type Config struct {
	// URL is the inference server's base URL (required for HTTP requests).
	URL string
	// Requests is how many requests to send (default 40).
	Requests int
	// Concurrency is how many are in flight at once (default 4).
	Concurrency int
	// Model is the model asked for (default "fake-llama-3-8b").
	Model string
	// StreamRatio is the share of HTTP requests sent with "stream": true.
	StreamRatio float64
	// GRPCRatio is the share of all requests sent over gRPC Generate; it
	// needs GRPC.
	GRPCRatio float64
	// MaxTokens is each request's max_tokens (0: not sent).
	MaxTokens int
	// Timeout bounds the whole run (default 2m); requests not sent by then
	// count as failed.
	Timeout time.Duration
	// RequestTimeout bounds one request (default 30s).
	RequestTimeout time.Duration
	// HTTPClient defaults to a client with keep-alive sized to Concurrency.
	HTTPClient *http.Client
	// GRPC is the Generate client for gRPC requests; nil sends none.
	GRPC generatepb.GeneratorClient
}

func (c *Config) defaults() {
	if c.Requests <= 0 {
		c.Requests = 40
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Model == "" {
		c.Model = "fake-llama-3-8b"
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = c.Concurrency
		c.HTTPClient = &http.Client{Transport: tr}
	}
	if c.GRPC == nil {
		c.GRPCRatio = 0
	}
}

// Result is one request's outcome.
type Result struct {
	Kind    string
	Err     error
	Latency time.Duration
	// TTFT is the time to the first token; for plain HTTP it equals Latency.
	TTFT   time.Duration
	Tokens int
}

// Summary aggregates a run. Its zero value is an empty run.
type Summary struct {
	Requests  int
	Succeeded int
	// Failed counts requests that returned an error; NotSent those the
	// overall timeout left unsent.
	Failed, NotSent int
	ByKind          map[string]int
	// Errors counts error messages (the first 10 distinct ones).
	Errors       map[string]int
	Latency      Percentiles
	TTFT         Percentiles
	OutputTokens int
	Elapsed      time.Duration
}

// Percentiles of a set of durations, by nearest rank.
type Percentiles struct {
	N             int
	P50, P95, Max time.Duration
}

// OK reports whether every request was sent and succeeded.
func (s Summary) OK() bool {
	return s.Requests > 0 && s.Succeeded == s.Requests
}

// Print writes the summary as a few human-readable lines.
func (s Summary) Print(w io.Writer) {
	kinds := make([]string, 0, len(s.ByKind))
	for k, n := range s.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "requests: %d (%s), succeeded: %d, errors: %d, not sent: %d, elapsed: %s\n",
		s.Requests, strings.Join(kinds, " "), s.Succeeded, s.Failed, s.NotSent, s.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "latency: p50 %s  p95 %s  max %s  (n=%d)\n", ms(s.Latency.P50), ms(s.Latency.P95), ms(s.Latency.Max), s.Latency.N)
	fmt.Fprintf(w, "ttft:    p50 %s  p95 %s  max %s  (n=%d, client side)\n", ms(s.TTFT.P50), ms(s.TTFT.P95), ms(s.TTFT.Max), s.TTFT.N)
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.OutputTokens) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "output tokens: %d (%.1f/s)\n", s.OutputTokens, rate)
	msgs := make([]string, 0, len(s.Errors))
	for m := range s.Errors {
		msgs = append(msgs, m)
	}
	sort.Strings(msgs)
	for _, m := range msgs {
		fmt.Fprintf(w, "error x%d: %s\n", s.Errors[m], m)
	}
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

// Kind returns the kind of request i (0-based): shares are spread evenly over
// the run, so request kinds interleave and the run is reproducible.
func Kind(i int, streamRatio, grpcRatio float64) string {
	if pick(i, grpcRatio) {
		return KindGRPC
	}
	// Index among the HTTP requests, so the stream share holds among them.
	j := i - int(math.Floor(float64(i)*max(grpcRatio, 0)))
	if pick(j, streamRatio) {
		return KindHTTPStream
	}
	return KindHTTP
}

func pick(i int, ratio float64) bool {
	if ratio <= 0 {
		return false
	}
	if ratio >= 1 {
		return true
	}
	return math.Floor(float64(i+1)*ratio) > math.Floor(float64(i)*ratio)
}

var prompts = []string{
	"Why is the sky blue?",
	"Explain attention in transformers in two sentences.",
	"Write a haiku about GPUs.",
	"What is time to first token, and why does it matter?",
	"Summarise the plot of Hamlet.",
}

// Prompt returns the prompt of request i.
func Prompt(i int) string {
	return fmt.Sprintf("%s (request %d)", prompts[i%len(prompts)], i)
}

// Run sends cfg.Requests requests, cfg.Concurrency at a time, and returns the
// summary. It returns when all are done, the timeout passed or ctx ended.
func Run(ctx context.Context, cfg Config) Summary {
	cfg.defaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	jobs := make(chan int)
	results := make(chan Result, cfg.Requests)
	var wg sync.WaitGroup
	for range min(cfg.Concurrency, cfg.Requests) {
		wg.Go(func() {
			for i := range jobs {
				results <- Do(ctx, &cfg, i)
			}
		})
	}
	sent := 0
feed:
	for ; sent < cfg.Requests; sent++ {
		select {
		case jobs <- sent:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(results)
	all := make([]Result, 0, sent)
	for r := range results {
		all = append(all, r)
	}
	s := Summarize(all)
	s.Requests = cfg.Requests
	s.NotSent = cfg.Requests - sent
	s.Elapsed = time.Since(start)
	return s
}

// Do sends request i of the run described by cfg (defaults applied).
func Do(ctx context.Context, cfg *Config, i int) Result {
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	kind := Kind(i, cfg.StreamRatio, cfg.GRPCRatio)
	if kind == KindGRPC {
		return doGRPC(ctx, cfg, i)
	}
	c := openai.Client{BaseURL: cfg.URL, HTTPClient: cfg.HTTPClient}
	req := openai.ChatRequest{
		Model:    cfg.Model,
		Messages: []openai.Message{{Role: "user", Content: Prompt(i)}},
		Stream:   kind == KindHTTPStream,
	}
	if cfg.MaxTokens > 0 {
		req.MaxTokens = &cfg.MaxTokens
	}
	res, err := c.Chat(ctx, req)
	if err == nil && res.Usage.CompletionTokens == 0 {
		err = errors.New("answer without completion tokens")
	}
	return Result{Kind: kind, Err: err, Latency: res.Latency, TTFT: res.TTFT, Tokens: res.Usage.CompletionTokens}
}

func doGRPC(ctx context.Context, cfg *Config, i int) Result {
	r := Result{Kind: KindGRPC}
	start := time.Now()
	stream, err := cfg.GRPC.Generate(ctx, &generatepb.GenerateRequest{Model: cfg.Model, Prompt: Prompt(i), MaxTokens: int32(cfg.MaxTokens)})
	if err != nil {
		r.Err = err
		return r
	}
	var usage *generatepb.Usage
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.Err = err
			return r
		}
		if resp.Token != "" && r.TTFT == 0 {
			r.TTFT = time.Since(start)
		}
		if resp.Usage != nil {
			usage = resp.Usage
		}
	}
	r.Latency = time.Since(start)
	if usage == nil || usage.CompletionTokens == 0 {
		r.Err = errors.New("grpc: stream without usage or tokens")
		return r
	}
	r.Tokens = int(usage.CompletionTokens)
	return r
}

// Summarize aggregates results; Requests is len(results).
func Summarize(results []Result) Summary {
	s := Summary{Requests: len(results), ByKind: map[string]int{}, Errors: map[string]int{}}
	var lat, ttft []time.Duration
	for _, r := range results {
		s.ByKind[r.Kind]++
		if r.Err != nil {
			s.Failed++
			msg := r.Err.Error()
			if _, seen := s.Errors[msg]; seen || len(s.Errors) < 10 {
				s.Errors[msg]++
			}
			continue
		}
		s.Succeeded++
		s.OutputTokens += r.Tokens
		lat = append(lat, r.Latency)
		if r.Kind != KindHTTP {
			ttft = append(ttft, r.TTFT)
		}
	}
	s.Latency, s.TTFT = percentiles(lat), percentiles(ttft)
	return s
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration {
		k := int(math.Ceil(p*float64(len(ds)))) - 1
		return ds[max(k, 0)]
	}
	return Percentiles{N: len(ds), P50: rank(0.5), P95: rank(0.95), Max: ds[len(ds)-1]}
}
