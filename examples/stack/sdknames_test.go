package stack_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"

	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/logging"
	"github.com/modeltel/modeltel/middleware"
	"github.com/modeltel/modeltel/tracing"
	"github.com/modeltel/modeltel/training"
)

// metricKind is the Prometheus type of a metric family; it decides which sample names the family exposes.
type metricKind int

const (
	counter metricKind = iota
	gauge
	histogram
)

func (k metricKind) String() string {
	switch k {
	case counter:
		return "counter"
	case gauge:
		return "gauge"
	case histogram:
		return "histogram"
	}
	return "unknown"
}

// addFamily adds the sample names a family of the given kind exposes: the name itself for counters and
// gauges, name_bucket, name_count and name_sum for a (classic) histogram.
func addFamily(names map[string]bool, name string, kind metricKind) {
	if kind == histogram {
		names[name+"_bucket"] = true
		names[name+"_count"] = true
		names[name+"_sum"] = true
		return
	}
	names[name] = true
}

// sdkMetrics is what the SDK's real collectors export under their default names.
type sdkMetrics struct {
	// names are the sample names, as they appear in the exposition and in PromQL.
	names map[string]bool
	// families maps each family name to its type.
	families map[string]metricKind
	// gpumonSkip, when not empty, says why the gpumon collector is not in the set.
	gpumonSkip string
}

// isGPUMetric reports whether name belongs to gpumon (checked only where the gpumon collector can be built).
func isGPUMetric(name string) bool {
	return strings.HasPrefix(name, "gpu_") || strings.HasPrefix(name, "gpumon_")
}

// sdkMetricNames builds the SDK's collectors with their exported API and default names, registers them on
// a pedantic registry, drives each once so that every labelled family has a child, gathers, and returns
// the families and sample names gathered. A renamed metric in a package changes what this returns.
func sdkMetricNames(t *testing.T) sdkMetrics {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()

	inf := inference.NewMetrics()
	mw := middleware.New(
		middleware.WithInference(inf),
		middleware.WithModel(func(*http.Request) string { return "llama-3-8b" }),
	)
	tm := training.NewMetrics(training.WithFLOPs(6*8e9, 989e12), training.WithClock(stepClock()))
	loki := newLoki(t)
	spans := tracing.NewMetrics()
	reg.MustRegister(inf, mw, tm, loki, spans)

	driveHTTP(t, mw)
	driveGRPC(t, mw)
	// The engine-state API a server's scheduler loop calls.
	eng := inf.Engine("llama-3-8b")
	eng.SetQueue(1, 2)
	eng.SetKVCacheUsage(0.5)
	eng.AddPrefixCache(10, 4)
	eng.AddPreemptions(1)
	driveTraining(t, tm)

	gpus, skip := gpumonCollector(t)
	if gpus != nil {
		reg.MustRegister(gpus)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	m := sdkMetrics{names: map[string]bool{}, families: map[string]metricKind{}, gpumonSkip: skip}
	for _, mf := range mfs {
		var kind metricKind
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			kind = counter
		case dto.MetricType_GAUGE:
			kind = gauge
		case dto.MetricType_HISTOGRAM:
			kind = histogram
		default:
			t.Fatalf("%s: type %s: these tests know no sample names for it; extend metricKind", mf.GetName(), mf.GetType())
		}
		m.families[mf.GetName()] = kind
		addFamily(m.names, mf.GetName(), kind)
	}
	return m
}

// stepClock is a clock for training.WithClock that advances one second per reading, so that every step
// has a duration and the FLOPs utilisation a value.
func stepClock() func() time.Time {
	now := time.Unix(1_700_000_000, 0)
	return func() time.Time {
		now = now.Add(time.Second)
		return now
	}
}

// newLoki returns a Loki handler pushing to a local server that accepts everything; it is closed, and the
// server stopped, when the test ends.
func newLoki(t *testing.T) *logging.Loki {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	loki, err := logging.NewLoki(logging.LokiConfig{URL: srv.URL, Labels: map[string]string{"service_name": "stack-test"}})
	if err != nil {
		t.Fatalf("NewLoki: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := loki.Close(ctx); err != nil {
			t.Errorf("Loki.Close: %v", err)
		}
	})
	return loki
}

// driveHTTP sends one request with a body through the middleware to a handler that reports tokens through
// the recorder the middleware started.
func driveHTTP(t *testing.T, mw *middleware.Middleware) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		rec := inference.FromContext(r.Context())
		if rec == nil {
			t.Error("inference.FromContext: no recorder in a request with a model")
		}
		rec.Scheduled()
		rec.InputTokens(12)
		rec.CachedInputTokens(4)
		rec.OutputTokens(1)
		// The decode time must be above zero for the time per output token and the decode rate to be
		// observed; this is not a timing assertion.
		time.Sleep(time.Millisecond)
		rec.OutputTokens(3)
		rec.SetResponse(inference.Response{FinishReasons: []string{"stop"}})
		_, _ = io.WriteString(w, `{"choices":[]}`)
	})
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"llama-3-8b"}`))
	w := httptest.NewRecorder()
	mw.Handler(mux).ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP request: status %d", w.Code)
	}
}

// driveGRPC calls the unary interceptor directly, as grpc would, once.
func driveGRPC(t *testing.T, mw *middleware.Middleware) {
	t.Helper()
	info := &grpc.UnaryServerInfo{FullMethod: "/modeltel.v1.Generator/Generate"}
	resp, err := mw.UnaryServerInterceptor()(context.Background(), "request", info, func(context.Context, any) (any, error) {
		return "response", nil
	})
	if err != nil || resp != "response" {
		t.Fatalf("unary interceptor: %v, %v", resp, err)
	}
}

// driveTraining reports a step with every StepResult field, one with a NaN loss and grad norm, the data
// wait, a checkpoint, the epoch and one malformed trainer line.
func driveTraining(t *testing.T, tm *training.Metrics) {
	t.Helper()
	tm.SetEpoch(1)
	tm.ObserveDataWait(20 * time.Millisecond)
	step := tm.StartStep()
	step.End(training.StepResult{Loss: 2.3, LearningRate: 3e-4, GradNorm: 0.9, Samples: 32, Tokens: 32 * 2048})
	step = tm.StartStep()
	step.End(training.StepResult{Loss: math.NaN(), LearningRate: 3e-4, GradNorm: math.NaN(), Samples: 32, Tokens: 32 * 2048})
	tm.ObserveCheckpoint(3*time.Second, 1<<30)

	var lineErrs []*training.LineError
	err := training.Ingest(context.Background(), strings.NewReader("{\"step\": 1, \"loss\": \n"), tm,
		training.WithErrorHandler(func(e *training.LineError) { lineErrs = append(lineErrs, e) }))
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("Ingest: %v", err)
	}
	if len(lineErrs) != 1 {
		t.Fatalf("Ingest of one malformed line reported %d line errors, want 1", len(lineErrs))
	}
}

// TestDesignMetricNamesExported checks that every metric DESIGN.md names for the default metric set is
// exported by the real collectors, with the type the design gives or implies.
func TestDesignMetricNamesExported(t *testing.T) {
	const anyKind metricKind = -1
	// The names and types of DESIGN.md. Left out: the model FLOPs utilisation, which DESIGN.md describes
	// without a name (TestMetricNames checks the name the dashboards use).
	design := []struct {
		name string
		kind metricKind
	}{
		// gpumon (default names).
		{"gpu_info", gauge},
		{"gpu_up", gauge},
		{"gpu_utilization_ratio", gauge},
		{"gpu_memory_utilization_ratio", gauge},
		{"gpu_memory_used_bytes", gauge},
		{"gpu_memory_free_bytes", gauge},
		{"gpu_memory_total_bytes", gauge},
		{"gpu_temperature_celsius", gauge},
		{"gpu_power_usage_watts", gauge},
		{"gpu_power_limit_watts", gauge},
		{"gpu_energy_consumed_joules_total", counter},
		{"gpu_sm_clock_hertz", gauge},
		{"gpu_memory_clock_hertz", gauge},
		{"gpu_fan_speed_ratio", gauge},
		{"gpu_clock_event_active", gauge},
		{"gpu_pcie_replay_errors_total", counter},
		{"gpu_ecc_errors_total", counter},
		{"gpu_xid_errors_total", counter},
		{"gpu_process_memory_used_bytes", gauge},
		{"gpumon_collect_errors_total", counter},
		{"gpumon_collect_duration_seconds", anyKind}, // DESIGN.md does not give its type

		// inference.
		{"gen_ai_server_request_duration_seconds", histogram},
		{"gen_ai_server_time_to_first_token_seconds", histogram},
		{"gen_ai_server_time_per_output_token_seconds", histogram},
		{"inference_tokens_total", counter},
		{"inference_requests_active", gauge},
		{"inference_output_tokens_per_second", histogram},

		// middleware: HTTP.
		{"http_server_request_duration_seconds", histogram},
		{"http_server_active_requests", gauge},
		{"http_server_request_body_size_bytes", histogram},
		{"http_server_response_body_size_bytes", histogram},

		// middleware: gRPC (go-grpc-middleware's names and types).
		{"grpc_server_started_total", counter},
		{"grpc_server_handled_total", counter},
		{"grpc_server_handling_seconds", histogram},
		{"grpc_server_msg_received_total", counter},
		{"grpc_server_msg_sent_total", counter},

		// training.
		{"training_loss", gauge},
		{"training_learning_rate", gauge},
		{"training_grad_norm", gauge},
		{"training_step_duration_seconds", histogram},
		{"training_steps_total", counter},
		{"training_samples_total", counter},
		{"training_tokens_total", counter},
		{"training_data_wait_seconds", histogram},
		{"training_checkpoint_duration_seconds", histogram},
		{"training_epoch", gauge},
		{"training_last_step_timestamp_seconds", gauge},
		{"training_nonfinite_loss_total", counter},
	}
	sdk := sdkMetricNames(t)
	for _, d := range design {
		t.Run(d.name, func(t *testing.T) {
			if isGPUMetric(d.name) && sdk.gpumonSkip != "" {
				t.Skip(sdk.gpumonSkip)
			}
			kind, ok := sdk.families[d.name]
			switch {
			case !ok:
				t.Errorf("DESIGN.md names %s, but the collectors export no such family", d.name)
			case d.kind != anyKind && kind != d.kind:
				t.Errorf("%s is a %s, DESIGN.md makes it a %s", d.name, kind, d.kind)
			}
		})
	}
}
