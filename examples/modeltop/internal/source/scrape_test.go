package source

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modeltel/modeltel/examples/modeltop/internal/fixture"
	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

// fakeNode serves fixture.Node(n) with n = the value of *n at each scrape.
func fakeNode(t *testing.T, n *atomic.Int64, now func() time.Time) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprint(w, fixture.Node(int(n.Load()), now()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b))
}

// clock is a settable time for Scrape.now.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) set(t time.Time)     { c.t.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func findModel(s snap.Snapshot, name string) (snap.Model, bool) {
	i := slices.IndexFunc(s.Models, func(m snap.Model) bool { return m.Model == name })
	if i < 0 {
		return snap.Model{}, false
	}
	return s.Models[i], true
}

func TestScrapeRatesAndQuantiles(t *testing.T) {
	var n atomic.Int64
	n.Store(1)
	clk := newClock(time.Unix(1_800_000_000, 0))
	srv := fakeNode(t, &n, clk.now)
	s, err := NewScrape([]string{srv.URL}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	s.now = clk.now
	ctx := context.Background()

	first := s.Fetch(ctx)
	if first.Failed() || first.Status[0].Err != nil {
		t.Fatalf("first fetch failed: %+v", first.Status)
	}
	m, ok := findModel(first, fixture.Model)
	if !ok {
		t.Fatalf("first fetch: no model %q in %+v", fixture.Model, first.Models)
	}
	// The first scrape has no rate nor quantile, but has the gauges.
	for name, v := range map[string]float64{"ReqRate": m.ReqRate, "TTFT50": m.TTFT50, "OutTPS": m.OutTPS} {
		if !math.IsNaN(v) {
			t.Errorf("first fetch: %s = %v, want NaN", name, v)
		}
	}
	if m.Active != fixture.Active {
		t.Errorf("first fetch: Active = %v, want %v", m.Active, fixture.Active)
	}

	n.Store(2)
	clk.add(2 * time.Second)
	second := s.Fetch(ctx)
	m, _ = findModel(second, fixture.Model)
	want := snap.Model{Model: fixture.Model, ReqRate: 10, ErrRate: 0.5,
		TTFT50: fixture.TTFT50, TTFT99: fixture.TTFT99, TPOT50: fixture.TPOT50, TPOT99: fixture.TPOT99,
		OutTPS: 320, InTPS: 60, Active: fixture.Active, Queue: math.NaN()}
	checkModel(t, m, want)
	m2, _ := findModel(second, fixture.Model2)
	checkModel(t, m2, snap.Model{Model: fixture.Model2, ReqRate: 2, ErrRate: 0, TTFT50: 0.175, TTFT99: 0.2485,
		TPOT50: 0.0375, TPOT99: 0.04975, OutTPS: 64, InTPS: 12, Active: 0, Queue: math.NaN()})

	if len(second.GPUs) != 2 {
		t.Fatalf("GPUs = %+v, want 2", second.GPUs)
	}
	g0, g1 := second.GPUs[0], second.GPUs[1]
	host := strings.TrimPrefix(srv.URL, "http://")
	if g0.Instance != host || g0.Index != "0" || g0.Name != fixture.GPUName || g0.Up != 1 {
		t.Errorf("GPU 0 identity = %+v", g0)
	}
	if !near(g0.Util, 0.87) || g0.Temp != 64 || g0.Power != 312 || g0.PowerLimit != 700 ||
		g0.MemUsed != 45.5*(1<<30) || g0.MemTotal != 80*(1<<30) || g0.XID != 0 || len(g0.Throttle) != 0 {
		t.Errorf("GPU 0 = %+v", g0)
	}
	if g1.XID != 2 || !slices.Equal(g1.XIDCodes, []string{fixture.GPU1XID}) || !slices.Equal(g1.Throttle, []string{fixture.GPU1Throttl}) {
		t.Errorf("GPU 1 events = XID %v %v throttle %v", g1.XID, g1.XIDCodes, g1.Throttle)
	}

	if len(second.Runs) != 1 {
		t.Fatalf("runs = %+v, want 1", second.Runs)
	}
	r := second.Runs[0]
	if r.Run != fixture.Run || r.Rank != "0" || r.Instance != host || !near(r.StepTime, fixture.StepTime) ||
		r.Steps != 8 || !near(r.TokensPerSec, 4*4096/2) || !near(r.MFU, fixture.MFU) || !near(r.Loss, 2.48) {
		t.Errorf("run = %+v", r)
	}
	if st := r.Stall(clk.now()); !near(st, 0) {
		t.Errorf("stall = %v, want 0 (the fixture's last step is now)", st)
	}

	// No scrape in between: the same counters give zero rates, and the
	// quantiles of no observation are unknown.
	clk.add(time.Second)
	third := s.Fetch(ctx)
	m, _ = findModel(third, fixture.Model)
	if m.ReqRate != 0 || m.ErrRate != 0 || !math.IsNaN(m.TTFT50) || !math.IsNaN(third.Runs[0].StepTime) {
		t.Errorf("idle interval: %+v, step time %v", m, third.Runs[0].StepTime)
	}

	// A restarted process (counters back to the first scrape's values) is a
	// reset, not a negative rate.
	n.Store(1)
	clk.add(2 * time.Second)
	reset := s.Fetch(ctx)
	m, _ = findModel(reset, fixture.Model)
	if m.ReqRate != 10 || !near(m.TTFT50, fixture.TTFT50) {
		t.Errorf("after reset: ReqRate %v TTFT50 %v, want 10 and %v", m.ReqRate, m.TTFT50, fixture.TTFT50)
	}
}

func checkModel(t *testing.T, got, want snap.Model) {
	t.Helper()
	fields := []struct {
		name      string
		got, want float64
	}{
		{"ReqRate", got.ReqRate, want.ReqRate}, {"ErrRate", got.ErrRate, want.ErrRate},
		{"TTFT50", got.TTFT50, want.TTFT50}, {"TTFT99", got.TTFT99, want.TTFT99},
		{"TPOT50", got.TPOT50, want.TPOT50}, {"TPOT99", got.TPOT99, want.TPOT99},
		{"OutTPS", got.OutTPS, want.OutTPS}, {"InTPS", got.InTPS, want.InTPS},
		{"Active", got.Active, want.Active}, {"Queue", got.Queue, want.Queue},
	}
	for _, f := range fields {
		if !near(f.got, f.want) {
			t.Errorf("%s: %s = %v, want %v", want.Model, f.name, f.got, f.want)
		}
	}
}

func TestScrapeTargetDown(t *testing.T) {
	var n atomic.Int64
	n.Store(1)
	clk := newClock(time.Unix(1_800_000_000, 0))
	srv := fakeNode(t, &n, clk.now)
	s, err := NewScrape([]string{srv.URL}, &http.Client{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.now = clk.now
	ok := s.Fetch(context.Background())
	if ok.Failed() {
		t.Fatalf("fetch failed: %+v", ok.Status)
	}
	okAt := clk.now()
	srv.Close()
	clk.add(12 * time.Second)
	down := s.Fetch(context.Background())
	if !down.Failed() {
		t.Fatalf("fetch from a closed server did not fail: %+v", down.Status)
	}
	st := down.Status[0]
	if !st.LastOK.Equal(okAt) || !strings.Contains(st.Err.Error(), "refused") {
		t.Errorf("status = %+v (err %v), want last ok %v and connection refused", st, st.Err, okAt)
	}
	if len(down.Models)+len(down.GPUs)+len(down.Runs) != 0 {
		t.Errorf("a failed fetch has data: %+v", down)
	}
}

func TestScrapeBadResponses(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{"HTTP 500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, "HTTP 500"},
		{"not an exposition", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			fmt.Fprint(w, "gen_ai_x{ 1 2 3\n")
		}, "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			s, err := NewScrape([]string{srv.URL + "/metrics"}, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			got := s.Fetch(context.Background())
			if !got.Failed() || !strings.Contains(got.Status[0].Err.Error(), tt.wantErr) {
				t.Errorf("status = %+v, want an error with %q", got.Status, tt.wantErr)
			}
		})
	}
}

func TestNewScrapeURLs(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080/metrics", ""},
		{"http://h:1/", "http://h:1/metrics", ""},
		{"https://h:1/custom", "https://h:1/custom", ""},
		{"ftp://h/x", "", "want http"},
		{"http://", "", "want http"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := NewScrape([]string{tt.in}, http.DefaultClient)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || s.targets[0].url != tt.want {
				t.Fatalf("got %v %v, want %s", s, err, tt.want)
			}
		})
	}
	if _, err := NewScrape(nil, http.DefaultClient); err == nil {
		t.Error("NewScrape(nil) did not fail")
	}
}

func TestScrapeTwoTargetsSum(t *testing.T) {
	var n atomic.Int64
	n.Store(1)
	clk := newClock(time.Unix(1_800_000_000, 0))
	a, b := fakeNode(t, &n, clk.now), fakeNode(t, &n, clk.now)
	s, err := NewScrape([]string{a.URL, b.URL}, a.Client())
	if err != nil {
		t.Fatal(err)
	}
	s.now = clk.now
	s.Fetch(context.Background())
	n.Store(3)
	clk.add(4 * time.Second)
	got := s.Fetch(context.Background())
	m, _ := findModel(got, fixture.Model)
	// Each node: 2 scrapes' worth (40 requests) in 4s = 10/s; the quantiles
	// of the summed buckets are those of each.
	if m.ReqRate != 20 || !near(m.TTFT99, fixture.TTFT99) || m.Active != 2*fixture.Active {
		t.Errorf("two nodes: %+v", m)
	}
	if len(got.GPUs) != 4 || len(got.Runs) != 2 {
		t.Errorf("two nodes: %d GPUs, %d runs; want 4 and 2", len(got.GPUs), len(got.Runs))
	}
	if s.Describe() != "scrape 2 targets" {
		t.Errorf("Describe = %q", s.Describe())
	}
}

func TestScrapeDCGMNames(t *testing.T) {
	const body = `# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 55
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 1024
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 3072
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 250.5
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 70
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 48
# TYPE DCGM_FI_DEV_CLOCK_THROTTLE_REASONS gauge
DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 37
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
	defer srv.Close()
	s, _ := NewScrape([]string{srv.URL}, srv.Client())
	got := s.Fetch(context.Background())
	if len(got.GPUs) != 1 {
		t.Fatalf("GPUs = %+v", got.GPUs)
	}
	g := got.GPUs[0]
	// 37 = 0x25: gpu_idle (left out), sw_power_cap, sw_thermal_slowdown.
	if g.Name != "NVIDIA A100-SXM4-80GB" || !near(g.Util, 0.55) || g.MemUsed != 1<<30 || g.MemTotal != 4<<30 ||
		g.Power != 250.5 || g.Temp != 70 || !slices.Equal(g.XIDCodes, []string{"48"}) ||
		!slices.Equal(g.Throttle, []string{"sw_power_cap", "sw_thermal_slowdown"}) || !math.IsNaN(g.Up) {
		t.Errorf("DCGM GPU = %+v", g)
	}
}
