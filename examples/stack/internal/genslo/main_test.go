package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommittedRules fails while rules/slo.yml is not what slo.yml generates.
func TestCommittedRules(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "slo.yml"))
	if err != nil {
		t.Fatal(err)
	}
	slos, err := parse(data)
	if err != nil {
		t.Fatalf("slo.yml: %v", err)
	}
	want, err := generate(slos)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "rules", "slo.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Error("examples/stack/rules/slo.yml differs from what examples/stack/slo.yml generates: run `go generate` in examples/stack")
	}
}

func TestParse(t *testing.T) {
	const good = `
slos:
  - model: m
    ttft: {threshold_seconds: 0.25, objective: 0.99}
    tpot: {threshold_seconds: 0.05, objective: 0.995}
    errors: {objective: 0.999}
`
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"valid", good, ""},
		{"ttft not a boundary", strings.Replace(good, "0.25", "0.3", 1), "threshold_seconds 0.3 is not a bucket boundary of gen_ai_server_time_to_first_token_seconds"},
		{"tpot not a boundary", strings.Replace(good, "0.05", "0.06", 1), "threshold_seconds 0.06 is not a bucket boundary of gen_ai_server_time_per_output_token_seconds"},
		{"tail bucket without extended", strings.Replace(good, "0.25", "20", 1), "threshold_seconds 20 is not a bucket boundary"},
		{"tail bucket with extended", strings.Replace(strings.Replace(good, "0.25", "20", 1), "model: m", "model: m\n    buckets: extended", 1), ""},
		{"tail bucket is not a tpot boundary", strings.Replace(strings.Replace(good, "0.05", "20", 1), "model: m", "model: m\n    buckets: extended", 1), "tpot: threshold_seconds 20"},
		{"unknown bucket set", strings.Replace(good, "model: m", "model: m\n    buckets: custom", 1), `buckets "custom"`},
		{"missing tpot", strings.Replace(good, "    tpot: {threshold_seconds: 0.05, objective: 0.995}\n", "", 1), "tpot: threshold_seconds 0 is not a bucket boundary"},
		{"objective 1", strings.Replace(good, "0.999", "1", 1), "errors: objective 1"},
		{"objective as a percentage", strings.Replace(good, "objective: 0.99}", "objective: 99}", 1), "ttft: objective 99"},
		{"missing errors objective", strings.Replace(good, "    errors: {objective: 0.999}\n", "", 1), "errors: objective 0"},
		{"unknown field", strings.Replace(good, "objective: 0.999", "objectiv: 0.999", 1), "field objectiv not found"},
		{"no model", strings.Replace(good, "model: m", "model: ''", 1), "no model"},
		{"model twice", good + strings.Replace(good, "slos:\n", "", 1), `model "m" declared twice`},
		{"empty", "slos: []\n", "no slos"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse([]byte(tt.yaml))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("parse: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("parse succeeded, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("parse: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	for _, tt := range []struct {
		objective float64
		want      string
	}{
		{0.99, "0.01"}, {0.999, "0.001"}, {0.95, "0.05"}, {0.9999, "0.0001"}, {0.5, "0.5"}, {0.995, "0.005"},
	} {
		got, err := budget(tt.objective)
		if err != nil || got != tt.want {
			t.Errorf("budget(%v) = %q, %v; want %q", tt.objective, got, err, tt.want)
		}
	}
}

func TestLeMatcher(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{
		{0.5, `le="0.5"`}, {0.001, `le="0.001"`}, {2.5, `le="2.5"`},
		{1, `le=~"1|1\\.0"`}, {10, `le=~"10|10\\.0"`}, {2560, `le=~"2560|2560\\.0"`},
	} {
		if got := leMatcher(tt.v); got != tt.want {
			t.Errorf("leMatcher(%v) = %s, want %s", tt.v, got, tt.want)
		}
	}
}
