package stack_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// gatewayPrefix starts the series examples/gateway exports besides the SDK's (dashboards/gateway.json,
// rules/gateway.yml). This package cannot import the gateway's internal package; the gateway's
// TestStackNames checks those names against its real collector instead.
const gatewayPrefix = "gateway_"

// prometheusSeriesNames are series Prometheus itself makes, which rules may use next to the SDK's.
var prometheusSeriesNames = map[string]bool{"up": true}

var dashboardFiles = []string{"dashboards/gateway.json", "dashboards/gpu.json", "dashboards/serving.json", "dashboards/training.json"}

// ruleFiles are the rule files Prometheus loads (prometheus.yml); rules/slo.yml is generated from slo.yml.
var ruleFiles = []string{"rules/energy.yml", "rules/gateway.yml", "rules/gpu.yml", "rules/serving.yml", "rules/slo.yml", "rules/telemetry.yml", "rules/training.yml"}

// dashboard is the part of a Grafana dashboard the tests look at.
type dashboard struct {
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

// query returns a variable's query, stored either as a string or as {"query": "..."}.
func (v variable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

func loadDashboard(t *testing.T, path string) (dashboard, any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d, raw
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// walkJSON calls fn for every object member in v, with its JSON path.
func walkJSON(path string, v any, fn func(path, key string, val any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			fn(path, k, val)
			walkJSON(path+"."+k, val, fn)
		}
	case []any:
		for i, val := range x {
			walkJSON(fmt.Sprintf("%s[%d]", path, i), val, fn)
		}
	}
}

func TestDashboards(t *testing.T) {
	matches, err := filepath.Glob("dashboards/*.json")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(matches)
	if want := append([]string(nil), dashboardFiles...); strings.Join(matches, " ") != strings.Join(want, " ") {
		t.Errorf("dashboards/*.json = %q, want %q", matches, want)
	}
	for _, path := range dashboardFiles {
		t.Run(path, func(t *testing.T) {
			d, raw := loadDashboard(t, path)
			if d.Title == "" {
				t.Error("no title")
			}

			// The data source is a variable of type datasource over Prometheus, declared first so the
			// other variables can use it.
			if len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" ||
				d.Templating.List[0].Type != "datasource" || d.Templating.List[0].query() != "prometheus" {
				t.Errorf("first template variable must be {name: datasource, type: datasource, query: prometheus}, got %+v",
					d.Templating.List)
			}

			// No uid anywhere but the datasource variable, and every datasource reference is to it.
			walkJSON("$", raw, func(p, key string, val any) {
				switch key {
				case "uid":
					if val != "${datasource}" {
						t.Errorf("%s.uid = %v: only \"${datasource}\" is allowed (no fixed uids)", p, val)
					}
				case "datasource":
					switch ds := val.(type) {
					case string:
						if ds != "${datasource}" {
							t.Errorf("%s.datasource = %q, want \"${datasource}\"", p, ds)
						}
					case map[string]any:
						if ds["type"] != "prometheus" || ds["uid"] != "${datasource}" {
							t.Errorf("%s.datasource = %v, want {type: prometheus, uid: ${datasource}}", p, ds)
						}
					default:
						t.Errorf("%s.datasource = %v, want {type: prometheus, uid: ${datasource}}", p, val)
					}
				}
			})

			ids := map[int]bool{}
			for _, p := range allPanels(d.Panels) {
				if p.Title == "" {
					t.Errorf("panel %d has no title", p.ID)
				}
				if ids[p.ID] {
					t.Errorf("panel id %d used twice", p.ID)
				}
				ids[p.ID] = true
				if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
					t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
				}
				if p.Type == "row" {
					continue
				}
				if len(p.Datasource) == 0 {
					t.Errorf("panel %q has no datasource", p.Title)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, tg := range p.Targets {
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("panel %q target %s has an empty expr", p.Title, tg.RefID)
					}
				}
			}
		})
	}
}

// exprSource is one PromQL expression and where it comes from.
type exprSource struct {
	where string
	expr  string
	// variable is true for a Grafana variable query (label_values(...)), not plain PromQL.
	variable bool
}

func dashboardExprs(t *testing.T) []exprSource {
	t.Helper()
	var out []exprSource
	for _, path := range dashboardFiles {
		d, _ := loadDashboard(t, path)
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				out = append(out, exprSource{fmt.Sprintf("%s variable %s", path, v.Name), v.query(), true})
			}
		}
		for _, p := range allPanels(d.Panels) {
			for _, tg := range p.Targets {
				out = append(out, exprSource{fmt.Sprintf("%s panel %q %s", path, p.Title, tg.RefID), tg.Expr, false})
			}
		}
	}
	return out
}

// rule is an alert or a recording rule read from a rules file; the files are also checked by promtool, so
// a line reader that knows their shape (alert or record, then expr on one line or as a "|" block) is enough
// here. Exactly one of alert and record is set.
type rule struct {
	file, alert, record, expr string
}

// name is the alert's or the recorded series' name.
func (r rule) name() string { return r.alert + r.record }

func readRules(t *testing.T, path string) []rule {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		rules      []rule
		lines      []string
		alertRE    = regexp.MustCompile(`^\s*- alert:\s*(\S+)\s*$`)
		recordRE   = regexp.MustCompile(`^\s*- record:\s*(\S+)\s*$`)
		exprRE     = regexp.MustCompile(`^(\s*)expr:\s*(.*)$`)
		sc         = bufio.NewScanner(f)
		blockStart = -1
	)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(lines); i++ {
		if m := alertRE.FindStringSubmatch(lines[i]); m != nil {
			rules = append(rules, rule{file: path, alert: m[1]})
			continue
		}
		if m := recordRE.FindStringSubmatch(lines[i]); m != nil {
			rules = append(rules, rule{file: path, record: m[1]})
			continue
		}
		m := exprRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if len(rules) == 0 || rules[len(rules)-1].expr != "" {
			t.Fatalf("%s:%d: expr outside an alert or recording rule", path, i+1)
		}
		if m[2] != "|" && m[2] != "|-" {
			rules[len(rules)-1].expr = m[2]
			continue
		}
		indent := len(m[1])
		var block []string
		for blockStart = i + 1; blockStart < len(lines); blockStart++ {
			l := lines[blockStart]
			if strings.TrimSpace(l) != "" && len(l)-len(strings.TrimLeft(l, " ")) <= indent {
				break
			}
			block = append(block, strings.TrimSpace(l))
		}
		rules[len(rules)-1].expr = strings.TrimSpace(strings.Join(block, "\n"))
		i = blockStart - 1
	}
	for _, r := range rules {
		if r.expr == "" {
			t.Errorf("%s: rule %s has no expr", path, r.name())
		}
	}
	return rules
}

// TestMetricNames checks that every series a dashboard or a rule selects is one the SDK's real collectors
// export (see sdkMetricNames), one Prometheus makes itself, or one a recording rule of ruleFiles records
// (level:metric:operations, always with a colon). The gpumon names are checked in their own subtest, which
// skips where gpumon's mock cannot be built (without cgo).
func TestMetricNames(t *testing.T) {
	sdk := sdkMetricNames(t)
	var sources []exprSource
	sources = append(sources, dashboardExprs(t)...)
	recorded := map[string]bool{}
	for _, path := range ruleFiles {
		for _, r := range readRules(t, path) {
			kind := "alert"
			if r.record != "" {
				kind = "record"
				recorded[r.record] = true
				if !strings.Contains(r.record, ":") {
					t.Errorf("%s: recorded series %s has no colon: use level:metric:operations", path, r.record)
				}
			}
			sources = append(sources, exprSource{fmt.Sprintf("%s %s %s", path, kind, r.name()), r.expr, false})
		}
	}
	if len(sources) < 50 {
		t.Fatalf("found only %d expressions; the dashboard or rule reader is broken", len(sources))
	}
	type use struct{ where, name string }
	var sdkUses, gpuUses []use
	used := map[string]bool{}
	for _, s := range sources {
		names := promqlSeriesNames(s.expr)
		if s.variable {
			names = grafanaQuerySeriesNames(s.expr)
		}
		if len(names) == 0 && !s.variable {
			t.Errorf("%s: no series name found in %q", s.where, s.expr)
		}
		for _, n := range names {
			used[n] = true
			if recorded[n] {
				continue
			}
			if isGPUMetric(n) {
				gpuUses = append(gpuUses, use{s.where, n})
			} else {
				sdkUses = append(sdkUses, use{s.where, n})
			}
		}
	}
	t.Logf("%d expressions use %d distinct series names", len(sources), len(used))
	check := func(t *testing.T, uses []use) {
		if len(uses) == 0 {
			t.Fatal("no series name to check: the reader or isGPUMetric is broken")
		}
		for _, u := range uses {
			if sdk.names[u.name] || prometheusSeriesNames[u.name] {
				continue
			}
			if strings.HasPrefix(u.name, gatewayPrefix) {
				continue // examples/gateway's own: its TestStackNames checks them against its collector
			}
			hint := ""
			if sdk.names[u.name+"_bucket"] {
				hint = " (a histogram: select " + u.name + "_bucket, _count or _sum)"
			}
			t.Errorf("%s: %s is not a metric the SDK exports%s", u.where, u.name, hint)
		}
	}
	t.Run("sdk", func(t *testing.T) { check(t, sdkUses) })
	t.Run("gpumon", func(t *testing.T) {
		if sdk.gpumonSkip != "" {
			t.Skip(sdk.gpumonSkip)
		}
		check(t, gpuUses)
	})
}

// TestEveryAlertIsTested checks that each rules/X.yml has a rules/X_test.yml with at least one case where
// each of its alerts fires and one where it does not, and a promql_expr_test that selects each series it
// records.
func TestEveryAlertIsTested(t *testing.T) {
	caseRE := regexp.MustCompile(`^\s*alertname:\s*(\S+)\s*$`)
	exprRE := regexp.MustCompile(`^\s*- expr:\s*(.+)$`)
	for _, path := range ruleFiles {
		t.Run(path, func(t *testing.T) {
			testPath := strings.TrimSuffix(path, ".yml") + "_test.yml"
			data, err := os.ReadFile(testPath)
			if err != nil {
				t.Fatal(err)
			}
			firing, quiet, selected := map[string]int{}, map[string]int{}, map[string]int{}
			lines := strings.Split(string(data), "\n")
			for i, l := range lines {
				if m := exprRE.FindStringSubmatch(l); m != nil {
					for _, n := range promqlSeriesNames(m[1]) {
						selected[n]++
					}
					continue
				}
				m := caseRE.FindStringSubmatch(l)
				if m == nil {
					continue
				}
				next := ""
				for j := i + 1; j < len(lines) && next == ""; j++ {
					next = strings.TrimSpace(lines[j])
				}
				switch next {
				case "exp_alerts: []":
					quiet[m[1]]++
				case "exp_alerts:":
					firing[m[1]]++
				default:
					t.Errorf("%s:%d: alertname %s is not followed by exp_alerts", testPath, i+1, m[1])
				}
			}
			rules := readRules(t, path)
			if len(rules) == 0 {
				t.Fatalf("%s: no rules", path)
			}
			for _, r := range rules {
				if r.record != "" {
					if selected[r.record] == 0 {
						t.Errorf("%s: no promql_expr_test selects %s", testPath, r.record)
					}
					continue
				}
				if firing[r.alert] == 0 {
					t.Errorf("%s: no case where %s fires", testPath, r.alert)
				}
				if quiet[r.alert] == 0 {
					t.Errorf("%s: no case where %s stays quiet", testPath, r.alert)
				}
			}
		})
	}
}

// findPromtool returns the promtool build.sh built, else the one on PATH.
func findPromtool() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "build.sh", "--bin-dir").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "promtool")
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p, nil
	}
	return "", errors.New("promtool not found: run examples/stack/build.sh (or install the prometheus package) to check the rules with it")
}

func runPromtool(t *testing.T, promtool string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// grafanaVarRE matches Grafana variables in a query: $x, ${x}, ${x:format}, [[x]].
var grafanaVarRE = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]`)

// plainPromQL replaces Grafana's variables with values that keep the query valid PromQL.
func plainPromQL(expr string) string {
	return grafanaVarRE.ReplaceAllStringFunc(expr, func(v string) string {
		switch v {
		case "$__rate_interval", "$__interval", "${__rate_interval}", "${__interval}":
			return "1m"
		case "$__range", "${__range}":
			return "1h"
		case "$__range_s", "$__interval_ms":
			return "60"
		}
		return "x"
	})
}

func TestPromtool(t *testing.T) {
	promtool, err := findPromtool()
	if err != nil {
		t.Skip(err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	version, _ := exec.CommandContext(ctx, promtool, "--version").CombinedOutput()
	t.Logf("using %s: %s", promtool, strings.SplitN(string(version), "\n", 2)[0])

	t.Run("check config", func(t *testing.T) { runPromtool(t, promtool, "check", "config", "prometheus.yml") })
	t.Run("check rules", func(t *testing.T) { runPromtool(t, promtool, append([]string{"check", "rules"}, ruleFiles...)...) })
	t.Run("test rules", func(t *testing.T) {
		tests, err := filepath.Glob("rules/*_test.yml")
		if err != nil || len(tests) != len(ruleFiles) {
			t.Fatalf("rules/*_test.yml = %q, %v; want one per rules file", tests, err)
		}
		runPromtool(t, promtool, append([]string{"test", "rules"}, tests...)...)
	})
	// Every dashboard query, with its Grafana variables filled in, becomes a recording rule that promtool
	// parses: a PromQL syntax error in a dashboard fails here.
	t.Run("dashboard queries parse", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("groups:\n  - name: dashboards\n    rules:\n")
		n := 0
		for _, s := range dashboardExprs(t) {
			if s.variable {
				continue
			}
			q, _ := json.Marshal(plainPromQL(s.expr))
			fmt.Fprintf(&b, "      # %s\n      - record: dashboard:query:%d\n        expr: %s\n", s.where, n, q)
			n++
		}
		path := filepath.Join(t.TempDir(), "dashboards.yml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		runPromtool(t, promtool, "check", "rules", path)
	})
}

// TestScripts checks that the shell scripts parse, and lints them with shellcheck when it is installed.
func TestScripts(t *testing.T) {
	scripts := []string{"build.sh", "e2e.sh", "e2e-fleet.sh"}
	for _, s := range scripts {
		t.Run(s, func(t *testing.T) {
			st, err := os.Stat(s)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode()&0o111 == 0 {
				t.Errorf("%s is not executable", s)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if out, err := exec.CommandContext(ctx, "bash", "-n", s).CombinedOutput(); err != nil {
				t.Errorf("bash -n %s: %v\n%s", s, err, out)
			}
		})
	}
	t.Run("shellcheck", func(t *testing.T) {
		shellcheck, err := exec.LookPath("shellcheck")
		if err != nil {
			t.Skip("shellcheck not installed (apt-get install shellcheck)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The fragments e2e.sh sources are bash too, run with its functions in scope (lib.sh).
		fragments, err := filepath.Glob("e2e.d/*.sh")
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"-x", "--shell=bash", "lib.sh"}, scripts...)
		if out, err := exec.CommandContext(ctx, shellcheck, append(args, fragments...)...).CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	})
}

// TestRuleFilesLoaded checks that ruleFiles is every rules/*.yml but the promtool tests, and that
// prometheus.yml loads each of them, so a new rules file cannot be tested here and missed by Prometheus.
func TestRuleFilesLoaded(t *testing.T) {
	matches, err := filepath.Glob("rules/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, m := range matches {
		if !strings.HasSuffix(m, "_test.yml") {
			files = append(files, filepath.ToSlash(m))
		}
	}
	sort.Strings(files)
	if strings.Join(files, " ") != strings.Join(ruleFiles, " ") {
		t.Errorf("rules/*.yml = %q, ruleFiles = %q: keep them the same", files, ruleFiles)
	}
	data, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if strings.Join(cfg.RuleFiles, " ") != strings.Join(ruleFiles, " ") {
		t.Errorf("prometheus.yml rule_files = %q, want %q", cfg.RuleFiles, ruleFiles)
	}
}

// TestAlertsDocumented checks that docs/stack.md's alert table has a row for every alert of ruleFiles,
// naming its file, and that the README's count of alerts is the number in the files.
func TestAlertsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "stack.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range ruleFiles {
		for _, r := range readRules(t, path) {
			if r.alert == "" {
				continue
			}
			n++
			row := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(r.alert) + ` \| ` + regexp.QuoteMeta(filepath.Base(path)) + `\b`)
			if !row.Match(doc) {
				t.Errorf("docs/stack.md: no row for alert %s of %s", r.alert, path)
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("The alert rules (%d in `rules/*.yml`", n); !strings.Contains(string(readme), want) {
		t.Errorf("README.md does not say %q", want)
	}
}
