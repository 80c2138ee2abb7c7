package stack_test

import (
	"slices"
	"strings"
	"testing"
)

// promqlKeywords are identifiers in PromQL that are not series names: aggregations, binary operators,
// modifiers and literals. Functions are recognised by the "(" that follows them.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true,
	"limit_ratio": true, "and": true, "or": true, "unless": true, "atan2": true, "offset": true, "bool": true,
	"inf": true, "nan": true,
}

// promqlGroupingKeywords take a parenthesised label list that must not be read as series names.
var promqlGroupingKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlSeriesNames returns the series names a PromQL expression selects, in order of appearance, with
// duplicates. It is a tokenizer, not a parser: it skips string literals, label matchers ({...}), ranges and
// subqueries ([...]), comments, numbers and durations, Grafana variables ($x, ${x}), the label lists of
// by/without/on/ignoring/group_left/group_right, keywords, and identifiers followed by "(" (functions).
// promtool checks the syntax separately.
func promqlSeriesNames(expr string) []string {
	var names []string
	i := 0
	n := len(expr)
	for i < n {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			i = skipBalanced(expr, i, '{', '}')
		case c == '[':
			i = skipBalanced(expr, i, '[', ']')
		case c == '#':
			for i < n && expr[i] != '\n' {
				i++
			}
		case c == '$':
			i++
			if i < n && expr[i] == '{' {
				i = skipBalanced(expr, i, '{', '}')
				continue
			}
			for i < n && isIdentChar(expr[i]) {
				i++
			}
		case isDigit(c) || (c == '.' && i+1 < n && isDigit(expr[i+1])):
			for i < n && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < n && isIdentChar(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := i
			for next < n && (expr[next] == ' ' || expr[next] == '\t' || expr[next] == '\n' || expr[next] == '\r') {
				next++
			}
			lower := strings.ToLower(word)
			switch {
			case promqlGroupingKeywords[lower]:
				if next < n && expr[next] == '(' {
					i = skipBalanced(expr, next, '(', ')')
				}
			case promqlKeywords[lower]:
			case next < n && expr[next] == '(':
				// A function call.
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names
}

// grafanaQuerySeriesNames returns the series names of a Grafana Prometheus variable query:
// label_values(expr, label) and query_result(expr) look into expr; label_values(label) and the other
// helpers name no series.
func grafanaQuerySeriesNames(query string) []string {
	q := strings.TrimSpace(query)
	switch {
	case strings.HasPrefix(q, "label_values(") && strings.HasSuffix(q, ")"):
		inner := q[len("label_values(") : len(q)-1]
		comma := lastTopLevelComma(inner)
		if comma < 0 {
			return nil
		}
		return promqlSeriesNames(inner[:comma])
	case strings.HasPrefix(q, "query_result(") && strings.HasSuffix(q, ")"):
		return promqlSeriesNames(q[len("query_result(") : len(q)-1])
	case strings.HasPrefix(q, "label_names(") || strings.HasPrefix(q, "metrics("):
		return nil
	}
	return promqlSeriesNames(q)
}

func lastTopLevelComma(s string) int {
	depth := 0
	last := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i) - 1
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
		case ',':
			if depth == 0 {
				last = i
			}
		}
	}
	return last
}

// skipString returns the index just past the string literal that starts at i.
func skipString(s string, i int) int {
	quote := s[i]
	i++
	for i < len(s) {
		switch {
		case s[i] == '\\' && quote != '`':
			i += 2
		case s[i] == quote:
			return i + 1
		default:
			i++
		}
	}
	return i
}

// skipBalanced returns the index just past the closing bracket that matches the opening one at i,
// skipping string literals inside.
func skipBalanced(s string, i int, open, closing byte) int {
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i)
			continue
		case open:
			depth++
		case closing:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return i
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

func TestPromQLSeriesNames(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"bare name", "up", []string{"up"}},
		{"selector", `gpu_up{job="x",gpu=~"$gpu"} == 0`, []string{"gpu_up"}},
		{"matcher value looks like a name", `a{b="c{d}", e='f'}`, []string{"a"}},
		{"histogram quantile",
			`histogram_quantile(0.95, sum by (job, le) (rate(x_bucket{a="b"}[$__rate_interval])))`,
			[]string{"x_bucket"}},
		{"ratio with offset and duration", "rate(t_total[5m]) < 0.5 * rate(t_total[1h] offset 5m)",
			[]string{"t_total", "t_total"}},
		{"vector matching", "a / ignoring (t) group_left (u) sum(b)", []string{"a", "b"}},
		{"group_left without labels", "a * on (x) group_left b", []string{"a", "b"}},
		{"set operators and keywords", "a > 0 unless b offset 10m or vector(0) and bool_c",
			[]string{"a", "b", "bool_c"}},
		{"function then space", "time () - last_ts", []string{"last_ts"}},
		{"numbers and exponents", "x_total * 1e3 + 0x1F + .5 + Inf", []string{"x_total"}},
		{"recording rule name", "job:requests:rate5m > 1", []string{"job:requests:rate5m"}},
		{"grafana variables", "x_total{a=~\"$a\"} * ${scale} + $other", []string{"x_total"}},
		{"comment", "a # b c\n+ d", []string{"a", "d"}},
		{"subquery", "max_over_time(rate(a[1m])[5m:1m])", []string{"a"}},
		{"escaped quote in matcher", `a{b="x\"y{z"}`, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := promqlSeriesNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("promqlSeriesNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestGrafanaQuerySeriesNames(t *testing.T) {
	tests := []struct {
		query string
		want  []string
	}{
		{`label_values(gpu_info{instance=~"$instance"}, gpu)`, []string{"gpu_info"}},
		{`label_values(job)`, nil},
		{`label_values(a{b=",c"}, d)`, []string{"a"}},
		{`query_result(topk(3, x_total))`, []string{"x_total"}},
		{`label_names()`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if got := grafanaQuerySeriesNames(tt.query); !slices.Equal(got, tt.want) {
				t.Errorf("grafanaQuerySeriesNames(%q) = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}
