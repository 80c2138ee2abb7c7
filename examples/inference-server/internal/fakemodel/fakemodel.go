package fakemodel

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultModels are the model names the inference-server example serves when
// none are configured.
var DefaultModels = []string{"fake-llama-3-8b", "fake-mistral-7b"}

// Finish reasons reported by [Sequence.FinishReason], as in the OpenAI API.
const (
	FinishStop   = "stop"   // the model ended its answer
	FinishLength = "length" // max tokens reached first
)

// ErrNotLoaded is returned by [Model.Prefill] before [Model.Load] completed.
var ErrNotLoaded = errors.New("fakemodel: model not loaded")

// Config sets a model's timing and limits. The zero value loads instantly,
// generates as fast as the caller reads and has a 4096-token context window.
type Config struct {
	// LoadTime is how long Load takes.
	LoadTime time.Duration
	// TokensPerSecond is the decode rate; zero or negative means no delay.
	// Prefill takes one decode step plus one step per 64 prompt tokens.
	TokensPerSecond float64
	// ContextLength caps prompt tokens plus max tokens; zero means 4096.
	ContextLength int
}

// Model is a fake LLM. Its methods are safe for concurrent use; a nil *Model
// is not usable.
type Model struct {
	name   string
	cfg    Config
	step   time.Duration
	seed   uint64
	loaded atomic.Bool
}

// New returns an unloaded model called name.
func New(name string, cfg Config) *Model {
	if cfg.ContextLength <= 0 {
		cfg.ContextLength = 4096
	}
	var step time.Duration
	if cfg.TokensPerSecond > 0 {
		step = time.Duration(float64(time.Second) / cfg.TokensPerSecond)
	}
	return &Model{name: name, cfg: cfg, step: step, seed: hash64(name)}
}

// Name returns the model's name.
func (m *Model) Name() string { return m.name }

// ContextLength returns the most prompt plus output tokens one request may use.
func (m *Model) ContextLength() int { return m.cfg.ContextLength }

// Loaded reports whether Load has completed.
func (m *Model) Loaded() bool { return m.loaded.Load() }

// Load waits the configured load time and marks the model loaded. It returns
// ctx's error, leaving the model unloaded, if ctx ends first. Loading a loaded
// model does nothing.
func (m *Model) Load(ctx context.Context) error {
	if m.loaded.Load() {
		return nil
	}
	if err := sleep(ctx, m.cfg.LoadTime); err != nil {
		return fmt.Errorf("fakemodel: load %s: %w", m.name, err)
	}
	m.loaded.Store(true)
	return nil
}

// Prefill processes the prompt (one step, plus one per 64 prompt tokens) and
// returns the sequence that generates at most maxTokens tokens (maxTokens <= 0:
// up to the context window). It fails if the model is not loaded, if the
// prompt plus maxTokens do not fit the context window, or if ctx ends first.
func (m *Model) Prefill(ctx context.Context, prompt []string, maxTokens int) (*Sequence, error) {
	if !m.loaded.Load() {
		return nil, ErrNotLoaded
	}
	room := m.cfg.ContextLength - len(prompt)
	if room <= 0 || maxTokens > room {
		return nil, &ContextLengthError{Prompt: len(prompt), MaxTokens: maxTokens, ContextLength: m.cfg.ContextLength}
	}
	if maxTokens <= 0 {
		maxTokens = room
	}
	if err := sleep(ctx, m.step*time.Duration(1+len(prompt)/64)); err != nil {
		return nil, err
	}
	h := fnv.New64a()
	for _, t := range prompt {
		_, _ = io.WriteString(h, t)
		_, _ = h.Write([]byte{0})
	}
	ps := h.Sum64()
	rng := rand.New(rand.NewPCG(m.seed, ps))
	natural := 12 + int(ps%52) // the answer's own length: 12..63 tokens
	return &Sequence{m: m, rng: rng, natural: natural, max: maxTokens}, nil
}

// ContextLengthError says a request does not fit a model's context window.
type ContextLengthError struct {
	Prompt, MaxTokens, ContextLength int
}

func (e *ContextLengthError) Error() string {
	return fmt.Sprintf("fakemodel: %d prompt tokens plus %d max tokens exceed the context length %d",
		e.Prompt, e.MaxTokens, e.ContextLength)
}

// Sequence is one request's generation state. It is not safe for concurrent
// use; a nil *Sequence is not usable.
type Sequence struct {
	m       *Model
	rng     *rand.Rand
	natural int
	max     int
	n       int
	finish  string
}

// Next waits one decode step and returns the next token (words carry their
// leading space, so concatenated tokens read as text). At the end it returns
// io.EOF and FinishReason says why; if ctx ends first it returns ctx's error.
func (s *Sequence) Next(ctx context.Context) (string, error) {
	if s.finish != "" {
		return "", io.EOF
	}
	if s.n >= s.max {
		s.finish = FinishLength
		return "", io.EOF
	}
	if s.n >= s.natural {
		s.finish = FinishStop
		return "", io.EOF
	}
	if err := sleep(ctx, s.m.step); err != nil {
		return "", err
	}
	s.n++
	if s.n == s.natural {
		return ".", nil
	}
	w := vocabulary[s.rng.IntN(len(vocabulary))]
	if s.n > 1 && s.rng.IntN(9) == 0 {
		return ",", nil
	}
	return " " + w, nil
}

// Generated returns how many tokens Next has returned.
func (s *Sequence) Generated() int { return s.n }

// FinishReason returns FinishStop or FinishLength once Next returned io.EOF,
// and "" before.
func (s *Sequence) FinishReason() string { return s.finish }

// Tokenize splits text into tokens: runs of letters and digits are one token,
// every punctuation or symbol character is a token of its own, and whitespace
// separates tokens without being one. It is what the fake model counts as
// prompt tokens.
func Tokenize(text string) []string {
	var toks []string
	if len(text) > 0 {
		toks = make([]string, 0, len(text)/4+1)
	}
	start := -1
	for i, r := range text {
		switch {
		case unicode.IsSpace(r):
			if start >= 0 {
				toks = append(toks, text[start:i])
				start = -1
			}
		case unicode.IsPunct(r) || unicode.IsSymbol(r):
			if start >= 0 {
				toks = append(toks, text[start:i])
				start = -1
			}
			toks = append(toks, text[i:i+utf8.RuneLen(r)])
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		toks = append(toks, text[start:])
	}
	return toks
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, s)
	return h.Sum64()
}

var vocabulary = []string{
	"the", "model", "token", "light", "sky", "blue", "because", "scattering", "of", "and",
	"a", "is", "in", "GPU", "memory", "attention", "layer", "weights", "answer", "question",
	"short", "wavelengths", "more", "than", "red", "air", "molecules", "sun", "we", "see",
	"this", "that", "it", "as", "with", "for", "latency", "throughput", "batch", "cache",
}

// Embed waits one forward pass (one decode step, plus one per 64 tokens) and
// returns a deterministic unit vector of dims values for tokens: the same
// tokens always give the same vector, and inputs that share tokens point in
// similar directions (each token adds a pseudo-random direction of its own).
// It fails if the model is not loaded, if the tokens do not fit the context
// window, if dims < 1, or if ctx ends first.
func (m *Model) Embed(ctx context.Context, tokens []string, dims int) ([]float32, error) {
	if !m.loaded.Load() {
		return nil, ErrNotLoaded
	}
	if dims < 1 {
		return nil, fmt.Errorf("fakemodel: %d embedding dimensions", dims)
	}
	if len(tokens) > m.cfg.ContextLength {
		return nil, &ContextLengthError{Prompt: len(tokens), ContextLength: m.cfg.ContextLength}
	}
	if err := sleep(ctx, m.step*time.Duration(1+len(tokens)/64)); err != nil {
		return nil, err
	}
	v := make([]float64, dims)
	for _, t := range tokens {
		rng := rand.New(rand.NewPCG(m.seed, hash64(t)))
		for i := range v {
			v[i] += rng.NormFloat64()
		}
	}
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	out := make([]float32, dims)
	if norm == 0 { // no tokens: a fixed unit vector
		out[0] = 1
		return out, nil
	}
	norm = math.Sqrt(norm)
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out, nil
}
