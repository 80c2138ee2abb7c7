// Package promlist holds the list a prometheus.Collector made of other
// collectors describes and collects from, so that its Describe and Collect
// cannot disagree about what it exports.
package promlist

import "github.com/prometheus/client_golang/prometheus"

// Collectors is a prometheus.Collector that describes and collects its
// elements in order.
type Collectors []prometheus.Collector

// Describe sends the descriptors of every element.
func (cs Collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

// Collect sends the metrics of every element.
func (cs Collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
