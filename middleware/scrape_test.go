package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/testkit"
)

// Every scrape taken while requests come and go counts each request that
// began before it either as active or as done, never as neither: the
// middleware lowers the active gauges after it has recorded the request
// (its own series and the GenAI ones), and its Collect reads them first, so
// a gauge read after a request's end is followed by reads that see all it
// recorded. Read the other way round, a request ending between the two
// reads vanished from that scrape; a dashboard's in-flight + completed then
// dipped under the requests made.
func TestScrapeSeesEveryRequest(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithModel(func(*http.Request) string { return "m" }), WithTracerProvider(nil))
	var begun atomic.Int64 // requests inside the handler: after the gauges went up
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begun.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	// The middleware and the GenAI metrics as one collector, the
	// middleware first, as modeltel.Start registers them.
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())

	stop := testkit.Hammer(4, func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil))
	})
	defer stop()
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		before := float64(begun.Load())
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		active := testkit.Total(mfs, "http_server_active_requests")
		if done := testkit.Total(mfs, "http_server_request_duration_seconds"); active+done < before {
			t.Fatalf("scrape: %v HTTP requests active + %v done < %v begun before it", active, done, before)
		}
		if done := testkit.Total(mfs, "gen_ai_server_request_duration_seconds"); active+done < before {
			t.Fatalf("scrape: %v HTTP requests active + %v GenAI requests done < %v begun before it", active, done, before)
		}
		if iactive, done := testkit.Total(mfs, "inference_requests_active"), testkit.Total(mfs, "inference_requests_total"); iactive+done < before {
			t.Fatalf("scrape: %v inference requests active + %v done < %v begun before it", iactive, done, before)
		}
	}
}

// Collector is what to register: the middleware alone without
// WithInference, else the middleware and its inference metrics, which
// then cannot be registered again.
func TestCollector(t *testing.T) {
	inf := inference.NewMetrics()
	tests := []struct {
		name      string
		opts      []Option
		want      []string // metric families gathered after one request
		wantNot   string
		infLeft   bool // inf can still be registered apart
		sameAsMid bool // Collector() is the middleware itself
	}{
		{
			name:      "without inference",
			opts:      []Option{WithTracerProvider(nil)},
			want:      []string{"http_server_request_duration_seconds"},
			wantNot:   "inference_requests_total",
			infLeft:   true,
			sameAsMid: true,
		},
		{
			name: "with inference",
			opts: []Option{WithInference(inf), WithModel(func(*http.Request) string { return "m" }), WithTracerProvider(nil)},
			want: []string{"http_server_request_duration_seconds", "inference_requests_total", "gen_ai_server_request_duration_seconds"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(tt.opts...)
			c := m.Collector()
			if got := c == prometheus.Collector(m); got != tt.sameAsMid {
				t.Errorf("Collector() is the middleware: %v, want %v", got, tt.sameAsMid)
			}
			reg := prometheus.NewRegistry()
			if err := reg.Register(c); err != nil {
				t.Fatalf("Register(Collector()): %v", err)
			}
			m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})).
				ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil))
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range tt.want {
				if testkit.Total(mfs, name) != 1 {
					t.Errorf("%s: %v, want 1 request", name, testkit.Total(mfs, name))
				}
			}
			if tt.wantNot != "" && testkit.Total(mfs, tt.wantNot) != 0 {
				t.Errorf("%s gathered from a middleware without inference", tt.wantNot)
			}
			err = reg.Register(inf)
			if tt.infLeft != (err == nil) {
				t.Errorf("registering the inference metrics after Collector(): %v", err)
			}
		})
	}
}

// No scrape shows more gRPC calls handled than started: Collect reads
// grpc_server_handled_total before grpc_server_started_total, so a call
// counted handled was counted started too (started - handled, the calls in
// flight, never goes negative).
func TestScrapeGRPCHandledNotAboveStarted(t *testing.T) {
	m := New(WithTracerProvider(nil))
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	ic := m.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/pkg.Svc/Do"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	stop := testkit.Hammer(4, func() { _, _ = ic(context.Background(), nil, info, handler) })
	defer stop()
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		started, handled := testkit.Total(mfs, "grpc_server_started_total"), testkit.Total(mfs, "grpc_server_handled_total")
		if handled > started {
			t.Fatalf("scrape: %v calls handled > %v started", handled, started)
		}
		if n := testkit.Total(mfs, "grpc_server_handling_seconds"); n > started {
			t.Fatalf("scrape: %v calls timed > %v started", n, started)
		}
	}
}
