package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/grpc"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/internal/syncbuf"
)

// A panic in a func the user gives for telemetry never fails the request,
// never leaves the active gauge or a span behind, and is reported once.
func TestTelemetryFuncPanics(t *testing.T) {
	boom := func(*http.Request) string { panic("user bug") }
	tests := []struct {
		option    string
		opts      []Option
		wantRoute string
		wantModel bool // the inference recorder ran (with the model)
	}{
		{"WithModel", []Option{WithModel(boom)}, "/v1/chat/completions", false},
		{"WithOperation", []Option{WithModel(func(*http.Request) string { return "llama" }), WithOperation(boom)}, "/v1/chat/completions", true},
		{"WithRoute", []Option{WithRoute(boom)}, "/v1/chat/completions", false},
		{"WithFilter", []Option{WithFilter(func(*http.Request) bool { panic("user bug") })}, "/v1/chat/completions", false},
	}
	for _, tt := range tests {
		t.Run(tt.option, func(t *testing.T) {
			var logs syncbuf.Buffer
			inf := inference.NewMetrics()
			opts := append([]Option{WithInference(inf), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil)))}, tt.opts...)
			m := New(opts...)
			mux := http.NewServeMux()
			mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
				inference.FromContext(r.Context()).OutputTokens(3)
				w.WriteHeader(http.StatusOK)
			})
			h := m.Handler(mux)
			for range 3 {
				if w := serve(h, http.MethodPost, "/v1/chat/completions", strings.NewReader(`{}`)); w.Code != http.StatusOK {
					t.Fatalf("status %d, want 200", w.Code)
				}
			}
			if v := testutil.ToFloat64(m.activeBy[methodIndex("POST")][0]); v != 0 {
				t.Errorf("active requests = %v after the requests ended", v)
			}
			got, err := testutil.CollectAndFormat(m, expfmt.TypeTextPlain, "http_server_request_duration_seconds")
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`http_server_request_duration_seconds_count{error_type="",http_request_method="POST",http_response_status_code="200",http_route=%q,url_scheme="http"} 3`, tt.wantRoute); !strings.Contains(string(got), want) {
				t.Errorf("missing %s in\n%s", want, got)
			}
			if n := testutil.CollectAndCount(inf, "gen_ai_server_request_duration_seconds"); (n > 0) != tt.wantModel {
				t.Errorf("inference series = %d, want the recorder to run: %v", n, tt.wantModel)
			}
			if n := strings.Count(logs.String(), "panicked"); n != 1 {
				t.Errorf("%d panic warnings for 3 requests, want 1 (rate-limited):\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), tt.option) {
				t.Errorf("the warning does not name %s:\n%s", tt.option, logs.String())
			}
		})
	}
}

func TestGRPCTelemetryFuncPanics(t *testing.T) {
	inf := inference.NewMetrics()
	var logs syncbuf.Buffer
	m := New(WithInference(inf), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))),
		WithGRPCModel(func(context.Context, string, any) string { panic("user bug") }))
	info := &grpc.UnaryServerInfo{FullMethod: "/llm.Chat/Complete"}
	resp, err := m.UnaryServerInterceptor()(context.Background(), "req", info, func(context.Context, any) (any, error) {
		return "ok", nil
	})
	if err != nil || resp != "ok" {
		t.Fatalf("RPC = %v, %v; want ok", resp, err)
	}
	if n := testutil.ToFloat64(m.grpc.handled.WithLabelValues("unary", "llm.Chat", "Complete", "OK")); n != 1 {
		t.Errorf("handled{OK} = %v, want 1", n)
	}
	if !strings.Contains(logs.String(), "WithGRPCModel") {
		t.Errorf("no warning naming WithGRPCModel:\n%s", logs.String())
	}
}
