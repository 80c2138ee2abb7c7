package testkit

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// Exemplar is one exemplar of an OpenMetrics exposition: on which sample line
// it stood and what it says.
type Exemplar struct {
	Metric string            // the sample's name, such as x_seconds_bucket
	Series map[string]string // the sample's labels
	Labels map[string]string // the exemplar's labels
	Value  float64
}

// ScrapeExemplars scrapes h as Prometheus does when it asks for OpenMetrics,
// fails t unless the answer is OpenMetrics text, and returns its exemplars.
func ScrapeExemplars(t testing.TB, h http.Handler) []Exemplar {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type")); mt != "application/openmetrics-text" {
		t.Fatalf("scrape answered Content-Type %q, want OpenMetrics", w.Header().Get("Content-Type"))
	}
	ex, err := ParseOpenMetricsExemplars(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// ParseOpenMetricsExemplars reads an OpenMetrics 1.0 text exposition and
// returns the exemplars of its sample lines. It checks the syntax of every
// sample line (name, labels, value, timestamp, exemplar) and the closing
// "# EOF"; it does not check metadata against samples.
func ParseOpenMetricsExemplars(r io.Reader) ([]Exemplar, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	text := string(b)
	if !strings.HasSuffix(text, "# EOF\n") {
		return nil, errors.New("openmetrics: no closing # EOF")
	}
	var out []Exemplar
	for n, line := range strings.Split(strings.TrimSuffix(text, "# EOF\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "# ") {
			continue
		}
		e, ok, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("openmetrics: line %d %q: %w", n+1, line, err)
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

func parseSample(line string) (e Exemplar, hasExemplar bool, err error) {
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' {
		i++
	}
	if i == 0 {
		return e, false, errors.New("no metric name")
	}
	e.Metric, line = line[:i], line[i:]
	if strings.HasPrefix(line, "{") {
		if e.Series, line, err = parseLabels(line); err != nil {
			return e, false, err
		}
	}
	rest, ok := strings.CutPrefix(line, " ")
	if !ok {
		return e, false, errors.New("no value")
	}
	sample, exemplar, hasExemplar := strings.Cut(rest, " # ")
	fields := strings.Split(sample, " ")
	if len(fields) > 2 {
		return e, false, errors.New("more than a value and a timestamp")
	}
	for _, f := range fields {
		if _, err := strconv.ParseFloat(f, 64); err != nil {
			return e, false, fmt.Errorf("value or timestamp: %w", err)
		}
	}
	if !hasExemplar {
		return e, false, nil
	}
	if e.Labels, exemplar, err = parseLabels(exemplar); err != nil {
		return e, false, fmt.Errorf("exemplar: %w", err)
	}
	if exemplar, ok = strings.CutPrefix(exemplar, " "); !ok {
		return e, false, errors.New("exemplar: no value")
	}
	fields = strings.Split(exemplar, " ")
	if len(fields) > 2 {
		return e, false, errors.New("exemplar: more than a value and a timestamp")
	}
	if e.Value, err = strconv.ParseFloat(fields[0], 64); err != nil {
		return e, false, fmt.Errorf("exemplar value: %w", err)
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseFloat(fields[1], 64); err != nil {
			return e, false, fmt.Errorf("exemplar timestamp: %w", err)
		}
	}
	return e, true, nil
}

// parseLabels reads {name="value",...} off the front of s.
func parseLabels(s string) (map[string]string, string, error) {
	if !strings.HasPrefix(s, "{") {
		return nil, s, errors.New("no label set")
	}
	s = s[1:]
	labels := map[string]string{}
	for {
		if rest, ok := strings.CutPrefix(s, "}"); ok {
			return labels, rest, nil
		}
		name, rest, ok := strings.Cut(s, "=\"")
		if !ok || name == "" || strings.ContainsAny(name, " ,{}\"") {
			return nil, s, fmt.Errorf("bad label name in %q", s)
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case 'n':
					v.WriteByte('\n')
				case '\\', '"':
					v.WriteByte(rest[i])
				default:
					return nil, s, fmt.Errorf("bad escape in label %s", name)
				}
				continue
			}
			v.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, s, fmt.Errorf("unterminated value of label %s", name)
		}
		if _, dup := labels[name]; dup {
			return nil, s, fmt.Errorf("label %s twice", name)
		}
		labels[name] = v.String()
		s = rest[i+1:]
		if r, ok := strings.CutPrefix(s, ","); ok && !strings.HasPrefix(r, "}") {
			s = r
		} else if !strings.HasPrefix(s, "}") {
			return nil, s, fmt.Errorf("expected , or } after label %s", name)
		}
	}
}
