package testkit

import (
	"context"
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
