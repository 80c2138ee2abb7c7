package testkit

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestServeBufconn(t *testing.T) {
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	conn := ServeBufconn(t, s)
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v", resp, err)
	}
}

func TestLintClean(t *testing.T) {
	Lint(t, prometheus.NewCounter(prometheus.CounterOpts{Name: "ok_total", Help: "fine"}))
}

func TestTotal(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"l"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "h"}, []string{"l"})
	reg.MustRegister(c, g, h)
	c.WithLabelValues("a").Add(2)
	c.WithLabelValues("b").Add(3)
	g.Set(-1.5)
	h.WithLabelValues("a").Observe(10)
	h.WithLabelValues("b").Observe(20)
	h.WithLabelValues("b").Observe(30)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want float64
	}{{"c_total", 5}, {"g", -1.5}, {"h", 3}, {"absent", 0}} {
		if got := Total(mfs, tc.name); got != tc.want {
			t.Errorf("Total(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHammer(t *testing.T) {
	var calls atomic.Int64
	var stopped, late atomic.Bool
	stop := Hammer(3, func() {
		calls.Add(1)
		runtime.Gosched() // a call in progress when stop is called
		if stopped.Load() {
			late.Store(true)
		}
	})
	for calls.Load() < 100 {
		runtime.Gosched()
	}
	stop()
	stopped.Store(true)
	n := calls.Load()
	for range 100 { // give a goroutine stop failed to wait for its turns
		runtime.Gosched()
	}
	if late.Load() || calls.Load() != n {
		t.Errorf("work called after stop returned (%d calls, %d when it returned)", calls.Load(), n)
	}
}
