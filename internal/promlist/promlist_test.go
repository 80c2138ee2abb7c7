package promlist

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectors(t *testing.T) {
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	b := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "b", Help: "b"}, []string{"l"})
	a.Add(2)
	b.WithLabelValues("x").Set(3)
	cs := Collectors{a, b}
	const want = `
# HELP a_total a
# TYPE a_total counter
a_total 2
# HELP b b
# TYPE b gauge
b{l="x"} 3
`
	if err := testutil.CollectAndCompare(cs, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(cs); err != nil {
		t.Errorf("register: %v", err)
	}
}
