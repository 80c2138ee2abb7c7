package source

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

// fakeProm answers /api/v1/query with the first answer whose key the query
// contains, an empty vector when none does, and records the queries.
type fakeProm struct {
	mu      sync.Mutex
	queries []string
	answers [][2]string // query substring, JSON result array
	fail    string      // queries containing this get a bad_data error
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	_ = r.ParseForm()
	q := r.Form.Get("query")
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.fail != "" && strings.Contains(q, f.fail) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error: unexpected thing"}`)
		return
	}
	result := "[]"
	for _, a := range f.answers {
		if strings.Contains(q, a[0]) {
			result = a[1]
			break
		}
	}
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":%s}}`, result)
}

func vec(v float64, labels ...string) string {
	var ls []string
	for i := 0; i+1 < len(labels); i += 2 {
		ls = append(ls, fmt.Sprintf("%q:%q", labels[i], labels[i+1]))
	}
	return fmt.Sprintf(`{"metric":{%s},"value":[1800000000,"%v"]}`, strings.Join(ls, ","), v)
}

func vecs(v ...string) string { return "[" + strings.Join(v, ",") + "]" }

func TestPrometheusFetch(t *testing.T) {
	const llama = "fake-llama-3-8b"
	m := func(v float64) string { return vecs(vec(v, "gen_ai_request_model", llama)) }
	f := &fakeProm{answers: [][2]string{
		{`error_type!=""`, m(0.5)},
		{`histogram_quantile(0.5, sum by (gen_ai_request_model, le) (rate(gen_ai_server_time_to_first_token_seconds_bucket[30s])))`, m(0.06)},
		{`histogram_quantile(0.99, sum by (gen_ai_request_model, le) (rate(gen_ai_server_time_to_first_token_seconds_bucket[30s])))`, m(0.475)},
		{`histogram_quantile(0.5, sum by (gen_ai_request_model, le) (rate(gen_ai_server_time_per_output_token_seconds_bucket[30s])))`, m(0.0175)},
		{`histogram_quantile(0.99, sum by (gen_ai_request_model, le) (rate(gen_ai_server_time_per_output_token_seconds_bucket[30s])))`, m(0.025)},
		{`sum by (gen_ai_request_model) (rate(gen_ai_server_request_duration_seconds_count[30s]))`, m(10)},
		{`gen_ai_token_type="output"`, m(320)},
		{`gen_ai_token_type="input"`, m(60)},
		{`sum by (gen_ai_request_model) (inference_requests_active)`, m(3)},
		{`vllm:num_requests_waiting`, m(7)},
		{`gpu_utilization_ratio|`, vecs(
			vec(1, "__name__", "gpu_info", "instance", "node-b:9400", "gpu", "0", "uuid", "GPU-b0", "name", "NVIDIA H100 80GB HBM3", "simulated", "true"),
			vec(0.87, "__name__", "gpu_utilization_ratio", "instance", "node-b:9400", "gpu", "0", "uuid", "GPU-b0"),
			vec(64, "__name__", "gpu_temperature_celsius", "instance", "node-b:9400", "gpu", "0", "uuid", "GPU-b0"),
			vec(1, "__name__", "gpu_clock_event_active", "instance", "node-b:9400", "gpu", "0", "uuid", "GPU-b0", "reason", "hw_slowdown"),
			vec(33, "__name__", "DCGM_FI_DEV_GPU_UTIL", "instance", "node-a:9400", "gpu", "0", "UUID", "GPU-a0", "modelName", "NVIDIA A100"),
			vec(2, "__name__", "gpu_xid_errors_total", "instance", "node-b:9400", "gpu", "10", "uuid", "GPU-b10", "xid", "79"),
			vec(1, "__name__", "gpu_up", "instance", "node-b:9400", "gpu", "2", "uuid", "GPU-b2"),
		)},
		{`training_loss|`, vecs(
			vec(2.48, "__name__", "training_loss", "instance", "trainer:8082", "run", "sft-7", "rank", "0"),
			vec(1800000000-30, "__name__", "training_last_step_timestamp_seconds", "instance", "trainer:8082", "run", "sft-7", "rank", "0"),
		)},
		{`rate(training_step_duration_seconds_sum[30s])`, vecs(vec(0.5, "instance", "trainer:8082", "run", "sft-7", "rank", "0"))},
		{`rate(training_tokens_total[30s])`, vecs(vec(8192, "instance", "trainer:8082", "run", "sft-7", "rank", "0"))},
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	p, err := NewPrometheus(srv.URL, 30*time.Second, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 0)
	p.now = func() time.Time { return at }
	got := p.Fetch(context.Background())
	if got.Failed() || got.Status[0].Err != nil || got.Status[0].Warn != nil {
		t.Fatalf("status = %+v", got.Status)
	}
	if !got.Status[0].LastOK.Equal(at) {
		t.Errorf("LastOK = %v, want %v", got.Status[0].LastOK, at)
	}
	if len(got.Models) != 1 {
		t.Fatalf("models = %+v", got.Models)
	}
	checkModel(t, got.Models[0], modelOf(llama, 10, 0.5, 0.06, 0.475, 0.0175, 0.025, 320, 60, 3, 7))

	// Sorted by instance, then GPU index as a number.
	var ids []string
	for _, g := range got.GPUs {
		ids = append(ids, g.Instance+"/"+g.Index)
	}
	if want := []string{"node-a:9400/0", "node-b:9400/0", "node-b:9400/2", "node-b:9400/10"}; !slices.Equal(ids, want) {
		t.Fatalf("GPUs = %v, want %v", ids, want)
	}
	a0, b0, b10 := got.GPUs[0], got.GPUs[1], got.GPUs[3]
	if a0.Name != "NVIDIA A100" || !near(a0.Util, 0.33) {
		t.Errorf("DCGM GPU = %+v", a0)
	}
	if b0.Name != "NVIDIA H100 80GB HBM3" || !b0.Simulated || a0.Simulated || b0.Util != 0.87 || b0.Temp != 64 || !slices.Equal(b0.Throttle, []string{"hw_slowdown"}) {
		t.Errorf("native GPU = %+v", b0)
	}
	if b10.XID != 2 || !slices.Equal(b10.XIDCodes, []string{"79"}) {
		t.Errorf("XID GPU = %+v", b10)
	}
	if len(got.Runs) != 1 {
		t.Fatalf("runs = %+v", got.Runs)
	}
	r := got.Runs[0]
	if r.Run != "sft-7" || r.Loss != 2.48 || r.StepTime != 0.5 || r.TokensPerSec != 8192 || r.Stall(at) != 30 || !math.IsNaN(r.MFU) {
		t.Errorf("run = %+v (stall %v)", r, r.Stall(at))
	}

	// Every query names the window, and the quantiles fall back to native
	// histograms.
	for _, q := range f.queries {
		if strings.Contains(q, "rate(") && !strings.Contains(q, "[30s]") {
			t.Errorf("query without the 30s window: %s", q)
		}
		if strings.HasPrefix(q, "histogram_quantile") && !strings.Contains(q, "_seconds[30s]") {
			t.Errorf("quantile without the native histogram fallback: %s", q)
		}
	}
}

func modelOf(name string, v ...float64) snap.Model {
	return snap.Model{Model: name, ReqRate: v[0], ErrRate: v[1], TTFT50: v[2], TTFT99: v[3], TPOT50: v[4], TPOT99: v[5],
		OutTPS: v[6], InTPS: v[7], Active: v[8], Queue: v[9]}
}

func TestPrometheusFailures(t *testing.T) {
	t.Run("partial", func(t *testing.T) {
		f := &fakeProm{fail: "vllm:", answers: [][2]string{{"inference_requests_active", vecs(vec(1, "gen_ai_request_model", "m"))}}}
		srv := httptest.NewServer(f)
		defer srv.Close()
		p, _ := NewPrometheus(srv.URL, time.Minute, srv.Client())
		got := p.Fetch(context.Background())
		st := got.Status[0]
		if st.Err != nil || st.Warn == nil || !strings.Contains(st.Warn.Error(), "1 of 14 queries failed") || len(got.Models) != 1 {
			t.Errorf("status %+v, models %+v", st, got.Models)
		}
	})
	t.Run("server error", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		p, _ := NewPrometheus(srv.URL, time.Minute, srv.Client())
		got := p.Fetch(context.Background())
		if !got.Failed() || !strings.Contains(got.Status[0].Err.Error(), "503") {
			t.Errorf("status = %+v", got.Status)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		p, _ := NewPrometheus(url, time.Minute, &http.Client{Timeout: 2 * time.Second})
		got := p.Fetch(context.Background())
		if !got.Failed() || !strings.Contains(got.Status[0].Err.Error(), "refused") || !got.Status[0].LastOK.IsZero() {
			t.Errorf("status = %+v", got.Status)
		}
		if strings.Contains(got.Status[0].Err.Error(), "sum by") {
			t.Errorf("status error carries the query: %v", got.Status[0].Err)
		}
	})
	t.Run("bad window", func(t *testing.T) {
		if _, err := NewPrometheus("http://x:9090", time.Millisecond, http.DefaultClient); err == nil {
			t.Error("a 1ms window was accepted")
		}
	})
}
