package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/modeltel/modeltel/examples/gateway/internal/gateway"
)

// TestStackNames checks that every gateway_* series the stack's gateway
// dashboard and alert rules select is one the gateway exports (the stack's
// own name test cannot import this package, and leaves these to it).
func TestStackNames(t *testing.T) {
	g, err := gateway.New(gateway.Config{Upstreams: []string{"http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	// A request makes the tenant series (the upstream is down: a 404 for
	// a model no upstream lists).
	g.Handler(nil).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/chat/completions",
		strings.NewReader(`{"model":"m"}`)))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		names[n] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			names[n+"_bucket"], names[n+"_count"], names[n+"_sum"] = true, true, true
		}
	}
	nameRE := regexp.MustCompile(`\bgateway_[a-z_]+\b`)
	for _, path := range []string{"../../../stack/dashboards/gateway.json", "../../../stack/rules/gateway.yml",
		"../../../stack/rules/gateway_test.yml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, n := range nameRE.FindAllString(string(data), -1) {
			if strings.HasSuffix(n, "_test") { // a file name
				continue
			}
			found++
			if !names[n] {
				t.Errorf("%s: %s is not a series the gateway exports", path, n)
			}
		}
		if found == 0 {
			t.Errorf("%s: no gateway_ series found", path)
		}
	}
}
