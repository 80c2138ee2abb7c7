package genrules

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseRuleFile(t *testing.T) {
	const ok = `
groups:
  - name: g
    interval: 30s
    rules:
      - alert: A
        expr: up == 0
        for: 1m
        keep_firing_for: 5m
        labels: {severity: warning}
        annotations: {summary: s}
      - record: job:up:sum
        expr: sum by (job) (up)
`
	tests := []struct {
		name, in, wantErr string
	}{
		{"valid", ok, ""},
		{"unknown rule field", strings.Replace(ok, "for: 1m", "fro: 1m", 1), `unknown field "groups[0].rules[0].fro"`},
		{"field in the wrong case", strings.Replace(ok, "expr: up == 0", "Expr: up == 0", 1), `unknown field "groups[0].rules[0].Expr"`},
		{"unknown group field", strings.Replace(ok, "interval: 30s", "intervall: 30s", 1), `unknown field "groups[0].intervall"`},
		{"unknown top-level field", "group: []\n" + ok, `unknown field "group"`},
		{"duplicate key", strings.Replace(ok, "for: 1m", "for: 1m\n        for: 2m", 1), `already set`},
		{"labels of the wrong type", strings.Replace(ok, "labels: {severity: warning}", "labels: [warning]", 1), "cannot unmarshal"},
		{"no groups", "groups: []\n", "no rule groups"},
		{"group without a name", strings.Replace(ok, "name: g", "name: ''", 1), "has no name"},
		{"duplicate group", ok + "  - name: g\n    rules: [{alert: B, expr: up}]\n", `group "g" appears twice`},
		{"group without rules", "groups: [{name: g}]\n", "has no rules"},
		{"alert and record", strings.Replace(ok, "- alert: A", "- alert: A\n        record: r", 1), "exactly one of alert and record"},
		{"neither alert nor record", "groups: [{name: g, rules: [{expr: up}]}]\n", "exactly one of alert and record"},
		{"no expr", strings.Replace(ok, "expr: up == 0", "expr: ''", 1), "non-empty string"},
		{"numeric expr", strings.Replace(ok, "expr: up == 0", "expr: 1", 1), "non-empty string"},
		{"bad for", strings.Replace(ok, "for: 1m", "for: 1 minute", 1), "not a duration"},
		{"bad keep_firing_for", strings.Replace(ok, "keep_firing_for: 5m", "keep_firing_for: 5min", 1), "not a duration"},
		{"bad interval", strings.Replace(ok, "interval: 30s", "interval: 30sec", 1), "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in == ok && tt.wantErr != "" {
				t.Fatal("the test case does not change the input")
			}
			_, err := ParseRuleFile([]byte(tt.in))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ParseRuleFile: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("ParseRuleFile succeeded, want an error with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("ParseRuleFile: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestObjectName(t *testing.T) {
	for src, want := range map[string]string{
		"examples/stack/rules/gpu.yml":         "modeltel-gpu",
		"examples/stack/fleet/fleet-rules.yml": "modeltel-fleet",
		"x/serving.yaml":                       "modeltel-serving",
	} {
		if got := ObjectName(src); got != want {
			t.Errorf("ObjectName(%q) = %q, want %q", src, got, want)
		}
	}
}

// writeTree makes a repository root holding the given files.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindSources(t *testing.T) {
	const rule = "groups: [{name: NAME, rules: [{alert: A, expr: up}]}]\n"
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{"rules only", []string{"examples/stack/rules/b.yml", "examples/stack/rules/a.yml", "examples/stack/rules/a_test.yml"},
			[]string{"examples/stack/rules/a.yml", "examples/stack/rules/b.yml"}},
		{"with the fleet's", []string{"examples/stack/rules/a.yml", "examples/stack/fleet/fleet-rules.yml", "examples/stack/fleet/fleet-rules_test.yml"},
			[]string{"examples/stack/rules/a.yml", "examples/stack/fleet/fleet-rules.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for _, f := range tt.files {
				files[f] = strings.Replace(rule, "NAME", filepath.Base(f), 1)
			}
			got, err := FindSources(writeTree(t, files))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("FindSources = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := FindSources(t.TempDir()); err == nil {
		t.Error("FindSources of an empty tree succeeded, want an error")
	}
}

func TestGenerate(t *testing.T) {
	root := writeTree(t, map[string]string{
		"examples/stack/rules/a.yml": "groups:\n  - name: ga\n    rules:\n      - alert: A\n        expr: |\n          up\n          == 0\n        for: 1m\n",
		"examples/stack/rules/b.yml": "groups:\n  - name: gb\n    rules:\n      - record: r\n        expr: sum(up)\n",
	})
	cfg, err := DefaultConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Header + `---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: modeltel-a
  namespace: monitoring
  labels:
    app.kubernetes.io/part-of: modeltel
    release: kube-prometheus-stack
  annotations:
    modeltel.io/rules-source: examples/stack/rules/a.yml
spec:
  groups:
    - name: ga
      rules:
        - alert: A
          expr: |
            up
            == 0
          for: 1m
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: modeltel-b
  namespace: monitoring
  labels:
    app.kubernetes.io/part-of: modeltel
    release: kube-prometheus-stack
  annotations:
    modeltel.io/rules-source: examples/stack/rules/b.yml
spec:
  groups:
    - name: gb
      rules:
        - record: r
          expr: sum(up)
`
	if string(got) != want {
		t.Fatalf("Generate:\n%s\nwant:\n%s", got, want)
	}
	again, err := Generate(cfg)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("a second Generate differs (err %v)", err)
	}

	// The same group name in two files is refused.
	if err := os.WriteFile(filepath.Join(root, "examples/stack/rules/c.yml"), []byte("groups: [{name: ga, rules: [{alert: C, expr: up}]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err = DefaultConfig(root); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(cfg); err == nil || !strings.Contains(err.Error(), `group "ga" is in both`) {
		t.Fatalf("Generate with a duplicate group: %v, want an error", err)
	}
}
