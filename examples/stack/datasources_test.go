package stack_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/modeltel/modeltel/internal/exemplar"
)

// The Grafana provisioning file, as far as the stack uses it. Decoding is strict: a field the struct does not
// name fails the test, so a misspelt key (exemplarTraceIDDestinations) cannot pass unnoticed.
type grafanaProvisioning struct {
	APIVersion  int                 `yaml:"apiVersion"`
	Datasources []grafanaDatasource `yaml:"datasources"`
}

type grafanaDatasource struct {
	Name      string `yaml:"name"`
	Type      string `yaml:"type"`
	UID       string `yaml:"uid"`
	Access    string `yaml:"access"`
	URL       string `yaml:"url"`
	IsDefault bool   `yaml:"isDefault"`
	JSONData  struct {
		// prometheus
		HTTPMethod                  string `yaml:"httpMethod"`
		TimeInterval                string `yaml:"timeInterval"`
		ExemplarTraceIDDestinations []struct {
			Name            string `yaml:"name"`
			DatasourceUID   string `yaml:"datasourceUid"`
			URLDisplayLabel string `yaml:"urlDisplayLabel"`
		} `yaml:"exemplarTraceIdDestinations"`
		// jaeger
		TracesToLogsV2 *struct {
			DatasourceUID      string `yaml:"datasourceUid"`
			SpanStartTimeShift string `yaml:"spanStartTimeShift"`
			SpanEndTimeShift   string `yaml:"spanEndTimeShift"`
			CustomQuery        bool   `yaml:"customQuery"`
			Query              string `yaml:"query"`
		} `yaml:"tracesToLogsV2"`
		// victoriametrics-logs-datasource (the fields of Loki's derived fields)
		DerivedFields []struct {
			Name            string `yaml:"name"`
			MatcherType     string `yaml:"matcherType"`
			MatcherRegex    string `yaml:"matcherRegex"`
			URL             string `yaml:"url"`
			DatasourceUID   string `yaml:"datasourceUid"`
			URLDisplayLabel string `yaml:"urlDisplayLabel"`
		} `yaml:"derivedFields"`
	} `yaml:"jsonData"`
}

const (
	dsPrometheus   = "prometheus"
	dsJaeger       = "jaeger"
	dsVictoriaLogs = "victoriametrics-logs-datasource"
)

// exemplarHistograms are the SDK histograms that carry a trace_id exemplar.
var exemplarHistograms = []string{
	"gen_ai_server_request_duration_seconds", "gen_ai_server_time_to_first_token_seconds",
	"gen_ai_server_time_per_output_token_seconds", "http_server_request_duration_seconds",
	"grpc_server_handling_seconds",
}

func loadProvisioning(t *testing.T) grafanaProvisioning {
	t.Helper()
	data, err := os.ReadFile("grafana/datasources.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p grafanaProvisioning
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("grafana/datasources.yaml: %v", err)
	}
	return p
}

// hostPort returns the host:port of a URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("bad url %q: %v", raw, err)
	}
	return u.Host
}

// grafanaLiteral reports whether s reaches Grafana unchanged by its environment expansion: every "$" is
// written "$$".
func grafanaLiteral(s string) bool { return !strings.Contains(strings.ReplaceAll(s, "$$", ""), "$") }

func TestGrafanaDatasources(t *testing.T) {
	p := loadProvisioning(t)
	if p.APIVersion != 1 {
		t.Errorf("apiVersion = %d, want 1", p.APIVersion)
	}
	byUID := map[string]grafanaDatasource{}
	byType := map[string][]grafanaDatasource{}
	names := map[string]bool{}
	var defaults []grafanaDatasource
	for _, ds := range p.Datasources {
		if ds.UID == "" || ds.Name == "" || ds.URL == "" {
			t.Errorf("data source %+v: name, uid and url are required", ds)
		}
		if _, dup := byUID[ds.UID]; dup {
			t.Errorf("uid %q used twice", ds.UID)
		}
		if names[ds.Name] {
			t.Errorf("name %q used twice", ds.Name)
		}
		byUID[ds.UID], names[ds.Name] = ds, true
		byType[ds.Type] = append(byType[ds.Type], ds)
		if ds.IsDefault {
			defaults = append(defaults, ds)
		}
		if ds.Access != "proxy" {
			t.Errorf("%s: access %q, want proxy", ds.Name, ds.Access)
		}
	}
	for _, typ := range []string{dsPrometheus, dsJaeger, dsVictoriaLogs} {
		if len(byType[typ]) != 1 {
			t.Fatalf("want one data source of type %s, have %d", typ, len(byType[typ]))
		}
	}
	prom, jaeger, vlogs := byType[dsPrometheus][0], byType[dsJaeger][0], byType[dsVictoriaLogs][0]
	// The dashboards' ${datasource} variable lists the Prometheus data sources and starts on the default.
	if len(defaults) != 1 || defaults[0].UID != prom.UID {
		t.Errorf("the default data source must be the Prometheus one (the dashboards' ${datasource}), have %d defaults", len(defaults))
	}
	linksTo := func(what, uid, wantType string) {
		t.Helper()
		if ds, ok := byUID[uid]; !ok || ds.Type != wantType {
			t.Errorf("%s links to uid %q, which is not the %s data source", what, uid, wantType)
		}
	}

	// Metrics -> traces: the exemplar label the SDK writes, to Jaeger.
	d := prom.JSONData.ExemplarTraceIDDestinations
	if len(d) != 1 || d[0].Name != exemplar.Label {
		t.Errorf("Prometheus exemplarTraceIdDestinations = %+v, want one named %q", d, exemplar.Label)
	} else {
		linksTo("Prometheus exemplar "+d[0].Name, d[0].DatasourceUID, dsJaeger)
	}

	// Logs -> traces: the trace_id field of the SDK's log lines, to Jaeger.
	f := vlogs.JSONData.DerivedFields
	if len(f) != 1 || f[0].MatcherType != "label" || f[0].MatcherRegex != "trace_id" || f[0].URL != "$${__value.raw}" {
		t.Errorf("VictoriaLogs derivedFields = %+v, want one matching the field trace_id, url $${__value.raw}", f)
	} else {
		linksTo("VictoriaLogs derived field "+f[0].Name, f[0].DatasourceUID, dsJaeger)
	}

	// Traces -> logs: Jaeger to the lines of the trace in VictoriaLogs.
	if tl := jaeger.JSONData.TracesToLogsV2; tl == nil {
		t.Error("Jaeger has no tracesToLogsV2")
	} else {
		linksTo("Jaeger tracesToLogsV2", tl.DatasourceUID, dsVictoriaLogs)
		if !tl.CustomQuery || tl.Query != `trace_id:="$${__trace.traceId}"` {
			t.Errorf("Jaeger tracesToLogsV2 query %q (custom %v), want the LogsQL trace_id:=\"$${__trace.traceId}\"", tl.Query, tl.CustomQuery)
		}
	}

	// Every "$" survives Grafana's environment expansion.
	for _, ds := range p.Datasources {
		b, _ := json.Marshal(ds)
		if !grafanaLiteral(string(b)) {
			t.Errorf("%s: a single \"$\" (Grafana expands $VAR in provisioning files; write $$): %s", ds.Name, b)
		}
	}

	// The URLs are the stack's: Prometheus scrapes itself there, Jaeger's query API, lib.sh's VictoriaLogs.
	var promCfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus.yml", &promCfg)
	var promSelf string
	for _, sc := range promCfg.ScrapeConfigs {
		if sc.JobName == "prometheus" && len(sc.StaticConfigs) > 0 && len(sc.StaticConfigs[0].Targets) > 0 {
			promSelf = sc.StaticConfigs[0].Targets[0]
		}
	}
	if got := hostPort(t, prom.URL); got != promSelf {
		t.Errorf("Prometheus url %s, want the address Prometheus scrapes itself on (%s)", got, promSelf)
	}
	var jaegerCfg struct {
		Extensions struct {
			JaegerQuery struct {
				HTTP struct {
					Endpoint string `yaml:"endpoint"`
				} `yaml:"http"`
			} `yaml:"jaeger_query"`
		} `yaml:"extensions"`
	}
	readYAML(t, "jaeger.yaml", &jaegerCfg)
	if got, want := hostPort(t, jaeger.URL), jaegerCfg.Extensions.JaegerQuery.HTTP.Endpoint; got != want {
		t.Errorf("Jaeger url %s, want jaeger.yaml's query endpoint %s", got, want)
	}
	lib, err := os.ReadFile("lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^vlogs=(\S+)$`).FindSubmatch(lib)
	if m == nil {
		t.Fatal("lib.sh sets no vlogs=URL")
	}
	if got, want := hostPort(t, vlogs.URL), hostPort(t, string(m[1])); got != want {
		t.Errorf("VictoriaLogs url %s, want lib.sh's %s", got, want)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestDashboardExemplars: the time series panels over the histograms that carry exemplars show them (a
// target's "exemplar": true), no other target asks for them, and they need the Prometheus data source that
// links exemplars to traces.
func TestDashboardExemplars(t *testing.T) {
	re := regexp.MustCompile(`\b(` + strings.Join(exemplarHistograms, "|") + `)_bucket\b`)
	withExemplars := 0
	for _, path := range dashboardFiles {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Type    string `json:"type"`
				Targets []struct {
					RefID    string `json:"refId"`
					Expr     string `json:"expr"`
					Exemplar *bool  `json:"exemplar"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				want := p.Type == "timeseries" && re.MatchString(tg.Expr)
				got := tg.Exemplar != nil && *tg.Exemplar
				if got != want {
					t.Errorf("%s: panel %q target %s: exemplar %v, want %v", path, p.Title, tg.RefID, got, want)
				}
				if got {
					withExemplars++
				}
			}
		}
	}
	if withExemplars == 0 {
		t.Error("no dashboard target shows exemplars")
	}
	p := loadProvisioning(t)
	for _, ds := range p.Datasources {
		if ds.Type == dsPrometheus && len(ds.JSONData.ExemplarTraceIDDestinations) == 0 {
			t.Errorf("dashboards show exemplars, but the Prometheus data source %s links them nowhere", ds.Name)
		}
	}
}
