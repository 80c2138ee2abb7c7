package fakemodel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"hello", []string{"hello"}},
		{"Why is the sky blue?", []string{"Why", "is", "the", "sky", "blue", "?"}},
		{"a,b  c.\n\td", []string{"a", ",", "b", "c", ".", "d"}},
		{"GPU-memory: 80GB!", []string{"GPU", "-", "memory", ":", "80GB", "!"}},
		{"héllo wörld", []string{"héllo", "wörld"}},
		{"1+1=2", []string{"1", "+", "1", "=", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Tokenize(tt.in); len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("Tokenize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func generate(t *testing.T, m *Model, prompt string, maxTokens int) ([]string, string) {
	t.Helper()
	seq, err := m.Prefill(context.Background(), Tokenize(prompt), maxTokens)
	if err != nil {
		t.Fatalf("Prefill: %v", err)
	}
	var toks []string
	for {
		tok, err := seq.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		toks = append(toks, tok)
		if len(toks) > 10000 {
			t.Fatal("generation does not end")
		}
	}
	if seq.Generated() != len(toks) {
		t.Errorf("Generated() = %d, want %d", seq.Generated(), len(toks))
	}
	return toks, seq.FinishReason()
}

func loaded(t *testing.T, name string, cfg Config) *Model {
	t.Helper()
	m := New(name, cfg)
	if err := m.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func TestGenerateDeterministic(t *testing.T) {
	a := loaded(t, "fake-llama-3-8b", Config{})
	b := loaded(t, "fake-llama-3-8b", Config{})
	c := loaded(t, "fake-mistral-7b", Config{})

	x1, f1 := generate(t, a, "Why is the sky blue?", 0)
	x2, f2 := generate(t, b, "Why is the sky blue?", 0)
	if !reflect.DeepEqual(x1, x2) || f1 != f2 {
		t.Fatalf("same model and prompt gave different outputs:\n%q\n%q", x1, x2)
	}
	if f1 != FinishStop {
		t.Errorf("finish = %q, want %q", f1, FinishStop)
	}
	if len(x1) < 12 || len(x1) > 63 {
		t.Errorf("natural length %d outside 12..63", len(x1))
	}
	if x1[len(x1)-1] != "." {
		t.Errorf("answer does not end with a full stop: %q", strings.Join(x1, ""))
	}
	if y, _ := generate(t, c, "Why is the sky blue?", 0); reflect.DeepEqual(x1, y) {
		t.Errorf("two models gave the same answer %q", strings.Join(y, ""))
	}
	if y, _ := generate(t, a, "Why is the sea blue?", 0); reflect.DeepEqual(x1, y) {
		t.Errorf("two prompts gave the same answer %q", strings.Join(y, ""))
	}
}

func TestGenerateMaxTokens(t *testing.T) {
	m := loaded(t, "fake-llama-3-8b", Config{})
	full, _ := generate(t, m, "Tell me a story", 0)
	tests := []struct {
		max        int
		wantN      int
		wantFinish string
	}{
		{1, 1, FinishLength},
		{5, 5, FinishLength},
		{len(full), len(full), FinishLength},
		{len(full) + 1, len(full), FinishStop},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("max=", tt.max), func(t *testing.T) {
			got, finish := generate(t, m, "Tell me a story", tt.max)
			if len(got) != tt.wantN || finish != tt.wantFinish {
				t.Errorf("max %d: %d tokens, %q; want %d, %q", tt.max, len(got), finish, tt.wantN, tt.wantFinish)
			}
			if !reflect.DeepEqual(got, full[:len(got)]) {
				t.Errorf("max %d: %q is not a prefix of %q", tt.max, got, full)
			}
		})
	}
}

func TestPrefillErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := New("m", Config{}).Prefill(ctx, []string{"x"}, 1); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("unloaded: err = %v, want ErrNotLoaded", err)
	}
	m := loaded(t, "m", Config{ContextLength: 10})
	tests := []struct {
		prompt, max int
		wantErr     bool
	}{
		{3, 7, false},
		{3, 8, true},
		{10, 0, true},
		{9, 0, false},
	}
	for _, tt := range tests {
		_, err := m.Prefill(ctx, make([]string, tt.prompt), tt.max)
		var cle *ContextLengthError
		if got := errors.As(err, &cle); got != tt.wantErr {
			t.Errorf("prompt %d max %d: err = %v, want context length error %v", tt.prompt, tt.max, err, tt.wantErr)
		}
	}
}

func TestCancellation(t *testing.T) {
	// One token a minute: only cancellation can end these waits in time.
	m := New("m", Config{LoadTime: time.Hour, TokensPerSecond: 1.0 / 60})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Load(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load: err = %v, want context.Canceled", err)
	}
	if m.Loaded() {
		t.Fatal("model loaded after a cancelled Load")
	}
	m.loaded.Store(true)
	if _, err := m.Prefill(ctx, []string{"a"}, 4); !errors.Is(err, context.Canceled) {
		t.Fatalf("Prefill: err = %v, want context.Canceled", err)
	}

	fast := loaded(t, "m", Config{})
	seq, err := fast.Prefill(context.Background(), []string{"a"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	seq.m = m // decode at one token a minute from here on
	dctx, dcancel := context.WithCancel(context.Background())
	go dcancel()
	if _, err := seq.Next(dctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next: err = %v, want context.Canceled", err)
	}
}

func TestLoad(t *testing.T) {
	m := New("fake-mistral-7b", Config{LoadTime: time.Millisecond})
	if m.Loaded() || m.Name() != "fake-mistral-7b" || m.ContextLength() != 4096 {
		t.Fatalf("new model: loaded=%v name=%q ctx=%d", m.Loaded(), m.Name(), m.ContextLength())
	}
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !m.Loaded() {
		t.Fatal("not loaded after Load")
	}
}

func BenchmarkGenerate(b *testing.B) {
	m := New("fake-llama-3-8b", Config{})
	_ = m.Load(context.Background())
	prompt := Tokenize("Why is the sky blue? Explain it to a five year old.")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		seq, _ := m.Prefill(ctx, prompt, 0)
		for {
			if _, err := seq.Next(ctx); err != nil {
				break
			}
		}
	}
}

func BenchmarkTokenize(b *testing.B) {
	text := strings.Repeat("Why is the sky blue? Explain it, briefly. ", 20)
	b.ReportAllocs()
	for b.Loop() {
		_ = Tokenize(text)
	}
}

// BenchmarkTokenizeBaseline is strings.Fields over the same text: the floor a
// whitespace-only tokenizer would cost.
func BenchmarkTokenizeBaseline(b *testing.B) {
	text := strings.Repeat("Why is the sky blue? Explain it, briefly. ", 20)
	b.ReportAllocs()
	for b.Loop() {
		_ = strings.Fields(text)
	}
}

func TestEmbed(t *testing.T) {
	m := New("m", Config{})
	ctx := context.Background()
	if _, err := m.Embed(ctx, []string{"a"}, 8); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("before Load: err = %v, want ErrNotLoaded", err)
	}
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	dot := func(a, b []float32) float64 {
		var s float64
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	sky, _ := m.Embed(ctx, Tokenize("the blue sky"), 64)
	again, _ := m.Embed(ctx, Tokenize("the blue sky"), 64)
	near, _ := m.Embed(ctx, Tokenize("the blue sea"), 64)
	far, _ := m.Embed(ctx, Tokenize("GPU memory latency"), 64)
	if d := dot(sky, sky); d < 0.999 || d > 1.001 {
		t.Errorf("|v|^2 = %v, want 1", d)
	}
	if dot(sky, again) < 0.999 {
		t.Error("the same input gave another vector")
	}
	if dot(sky, near) <= dot(sky, far) {
		t.Errorf("sharing tokens is not closer: near %v, far %v", dot(sky, near), dot(sky, far))
	}
	tests := []struct {
		name   string
		tokens []string
		dims   int
		ok     bool
	}{
		{"empty input", nil, 4, true},
		{"zero dims", []string{"a"}, 0, false},
		{"too long", make([]string, 5000), 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := m.Embed(ctx, tt.tokens, tt.dims)
			if (err == nil) != tt.ok || tt.ok && len(v) != tt.dims {
				t.Errorf("Embed = %d values, %v", len(v), err)
			}
		})
	}
}
