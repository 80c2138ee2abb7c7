package training

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		kind int
		has  uint16
		errs int
	}{
		{"text", "hello world", kindText, 0, 0},
		{"empty", "   ", kindText, 0, 0},
		{"array", "[1,2]", kindText, 0, 0},
		{"json log", `{"msg": "x", "level": "info"}`, kindText, 0, 0},
		{"step", `{"step": 1, "loss": 2, "lr": 1e-4, "grad_norm": 1, "samples": 2, "tokens": 3, "step_time": 0.5}`, kindStep,
			hasStep | hasLoss | hasLR | hasGradNorm | hasSamples | hasTokens | hasStepTime, 0},
		{"learning_rate alias", `{"step": 1, "learning_rate": 0.1}`, kindStep, hasStep | hasLR, 0},
		{"nulls are absent", `{"step": 1, "loss": null, "tokens": null}`, kindStep, hasStep, 0},
		{"epoch only", `{"epoch": 3}`, kindOther, hasEpoch, 0},
		{"data wait only", `{"data_wait": 0.1}`, kindOther, hasDataWait, 0},
		{"bad epoch only", `{"epoch": "x"}`, kindOther, 0, 1},
		{"event", `{"event": "checkpoint", "duration": 1, "bytes": 2, "step": 3, "loss": 1}`, kindEvent, hasDuration | hasBytes | hasStep, 0},
		{"nan step is no step", `{"step": NaN, "loss": -Infinity}`, kindOther, 0, 1},
		{"huge number", `{"step": 1, "tokens": 1e400}`, kindStep, hasStep, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := parseLine([]byte(tt.in))
			if err != nil {
				t.Fatalf("parseLine: %v", err)
			}
			if rec.kind != tt.kind || rec.has != tt.has || len(rec.errs) != tt.errs {
				t.Errorf("kind %d has %b errs %v; want kind %d has %b, %d errors", rec.kind, rec.has, rec.errs, tt.kind, tt.has, tt.errs)
			}
		})
	}
}

func TestQuoteNonFinite(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a": NaN}`, `{"a": "NaN"}`},
		{`{"a": [Infinity, -Infinity]}`, `{"a": ["Infinity", "-Infinity"]}`},
		{`{"a": "NaN", "b": "x\"NaN"}`, `{"a": "NaN", "b": "x\"NaN"}`},
		{`{"a\\": NaN}`, `{"a\\": "NaN"}`},
		{`{"a": 1}`, `{"a": 1}`},
	}
	for _, tt := range tests {
		if got := string(quoteNonFinite([]byte(tt.in))); got != tt.want {
			t.Errorf("quoteNonFinite(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzParseLine checks that no input makes the parser or the line handler
// panic, that valid JSON is never rewritten, and that every value accepted into
// a counter or histogram is finite and not negative.
//
//	go test -run '^$' -fuzz FuzzParseLine -fuzztime 30s ./training/
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"step": 1, "loss": 2.1, "lr": 3e-4, "grad_norm": 0.9, "samples": 32, "tokens": 65536, "step_time": 0.4, "epoch": 1, "data_wait": 0.01}`,
		`{"step": 2, "loss": NaN, "grad_norm": Infinity}`,
		`{"step": 3, "loss": -Infinity, "lr": "NaN"}`,
		`{"event": "checkpoint", "step": 500, "duration": 12.5, "bytes": 1073741824}`,
		`{"event": "checkpoint"}`,
		`{"epoch": 4}`,
		`{"msg": "NaN \"Infinity\" \\", "level": "info"}`,
		`{"step": "x", "tokens": -1, "samples": true, "loss": [1], "lr": {"a": null}}`,
		`{"step": 1e400, "tokens": 1e-400}`,
		`{'step': 1}`,
		`{"step": 1}{"step": 2}`,
		"Traceback (most recent call last):",
		"\t  \r",
		"{",
		`{"step": 1, "loss": NaNx}`,
		`{"a": -Infinit}`,
	} {
		f.Add([]byte(s))
	}
	m := NewMetrics(WithFLOPs(1, 1))
	in := &ingester{cfg: &ingestConfig{text: func(string) {}, event: func(Event) {}, onError: func(*LineError) {}}, m: m}
	f.Fuzz(func(t *testing.T, b []byte) {
		if json.Valid(b) {
			if q := quoteNonFinite(b); !bytes.Equal(q, b) {
				t.Fatalf("valid JSON rewritten: %q -> %q", b, q)
			}
		}
		rec, err := parseLine(b)
		trimmed := bytes.TrimSpace(b)
		if len(trimmed) == 0 || trimmed[0] != '{' {
			if err != nil || rec.kind != kindText {
				t.Fatalf("non-JSON line: kind %d err %v, want text", rec.kind, err)
			}
		}
		if err == nil {
			for _, c := range []struct {
				bit uint16
				v   float64
			}{{hasSamples, rec.samples}, {hasTokens, rec.tokens}, {hasStepTime, rec.stepTime}, {hasDataWait, rec.dataWait},
				{hasDuration, rec.duration}, {hasBytes, rec.bytes}, {hasEpoch, rec.epoch}, {hasStep, rec.step}} {
				if rec.has&c.bit != 0 && (math.IsNaN(c.v) || math.IsInf(c.v, 0) || c.v < 0) {
					t.Fatalf("accepted %v for field bit %b", c.v, c.bit)
				}
			}
			if rec.has&hasLR != 0 && !isFinite(rec.lr) {
				t.Fatalf("accepted lr %v", rec.lr)
			}
		}
		in.line++
		in.handle(b)
	})
}
