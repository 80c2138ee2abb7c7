//go:build cgo

package gpusim_test

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// filtered is the metrics of c named name, of GPU gpu ("" for any). It
// collects c on its own goroutine, so any number of series fits.
type filtered struct {
	c         prometheus.Collector
	name, gpu string
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 256)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if !strings.Contains(m.Desc().String(), `fqName: "`+f.name+`"`) {
			continue
		}
		if f.gpu != "" && labelOf(m, "gpu") != f.gpu {
			continue
		}
		ch <- m
	}
}

// labelOf is the value of label name on m, "" if it has none.
func labelOf(m prometheus.Metric, name string) string {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		return ""
	}
	for _, l := range out.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
