//go:build cgo

package simctl_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modeltel/modeltel/examples/gpu-exporter/internal/simctl"
	"github.com/modeltel/modeltel/gpumon"
)

// exporter is the exporter's wiring over four simulated GPUs, served by an
// httptest server: /metrics and the control API.
func exporter(t *testing.T, cfg simctl.Config, opts ...gpumon.Option) (*simctl.Simulation, *httptest.Server) {
	t.Helper()
	sim, err := simctl.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	gpus, err := gpumon.New(append(opts, sim.Option(), gpumon.WithScrapeTimeout(200*time.Millisecond))...)
	if err != nil {
		t.Fatalf("gpumon.New: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(gpus)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	sim.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		sim.Release()
		if err := gpus.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sim, srv
}

func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape returns the /metrics text.
func scrape(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	code, body := do(t, http.MethodGet, srv.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	return body
}

// waitFor scrapes until the text has line, for up to 5 s.
func waitFor(t *testing.T, srv *httptest.Server, line string) {
	t.Helper()
	var body string
	for range 250 {
		if body = scrape(t, srv); strings.Contains(body, line) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in /metrics within 5s:\n%s", line, body)
}

func TestControlAPI(t *testing.T) {
	sim, srv := exporter(t, simctl.Config{GPUs: 4, Seed: 1})
	post := func(path string) (int, string) { return do(t, http.MethodPost, srv.URL+path) }
	uuid := func(gpu int) string { return sim.Sim.UUID(gpu) }

	if code, body := post("/simulate/load?value=0.25"); code != 200 || body != "ok: load 0.25 on every GPU\n" {
		t.Errorf("load all: %d %q", code, body)
	}
	if code, _ := post("/simulate/load?gpu=2&value=0.8"); code != 200 {
		t.Errorf("load gpu 2: %d", code)
	}
	body := scrape(t, srv)
	for _, want := range []string{
		`gpu_utilization_ratio{gpu="2",uuid="` + uuid(2) + `"} 0.8`,
		`gpu_utilization_ratio{gpu="3",uuid="` + uuid(3) + `"} 0.25`,
		`simulated="true"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in /metrics", want)
		}
	}

	if code, body := post("/simulate/fault?gpu=1&type=xid&code=79"); code != 200 || body != "ok: XID 79 on gpu 1\n" {
		t.Errorf("xid: %d %q", code, body)
	}
	waitFor(t, srv, `gpu_xid_errors_total{gpu="1",uuid="`+uuid(1)+`",xid="79"} 1`)

	if code, body := post("/simulate/fault?gpu=1&type=nvlink&link=3&count=4"); code != 200 || body != "ok: 4 NVLink CRC errors on link 3 of gpu 1\n" {
		t.Errorf("nvlink fault: %d %q", code, body)
	}
	if code, _ := post("/simulate/fault?gpu=0&type=fall-off-bus"); code != 200 {
		t.Errorf("fall-off-bus: %d", code)
	}
	if code, _ := post("/simulate/fault?gpu=3&type=hang"); code != 200 {
		t.Errorf("hang: %d", code)
	}
	body = scrape(t, srv)
	for gpu, want := range []string{"0", "1", "1", "0"} {
		line := `gpu_up{gpu="` + string(rune('0'+gpu)) + `",uuid="` + uuid(gpu) + `"} ` + want
		if !strings.Contains(body, line) {
			t.Errorf("no %s in /metrics with gpu 0 off the bus and gpu 3 hung", line)
		}
	}
	if code, body := post("/simulate/clear"); code != 200 || body != "ok: faults of every GPU cleared\n" {
		t.Errorf("clear: %d %q", code, body)
	}
	waitFor(t, srv, `gpu_up{gpu="3",uuid="`+uuid(3)+`"} 1`)
	waitFor(t, srv, `gpu_up{gpu="0",uuid="`+uuid(0)+`"} 1`)
}

func TestControlAPIBadInput(t *testing.T) {
	sim, srv := exporter(t, simctl.Config{GPUs: 2})
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"POST", "/simulate/load", 400, `value "": want a load from 0 to 1`},
		{"POST", "/simulate/load?value=1.5", 400, `value "1.5": want a load from 0 to 1`},
		{"POST", "/simulate/load?value=NaN", 400, "want a load from 0 to 1"},
		{"POST", "/simulate/load?gpu=2&value=0.5", 400, `gpu "2": want a GPU index from 0 to 1`},
		{"POST", "/simulate/load?gpu=-1&value=0.5", 400, `gpu "-1"`},
		{"POST", "/simulate/load?gpu=x&value=0.5", 400, `gpu "x"`},
		{"POST", "/simulate/fault?gpu=0", 400, `type "": want xid, nvlink, fall-off-bus or hang`},
		{"POST", "/simulate/fault?gpu=0&type=melt", 400, `type "melt"`},
		{"POST", "/simulate/fault?gpu=0&type=nvlink", 400, `link "": type=nvlink wants a link number`},
		{"POST", "/simulate/fault?gpu=0&type=nvlink&link=99", 400, `no NVLink 99`},
		{"POST", "/simulate/fault?gpu=0&type=nvlink&link=0&count=0", 400, `count "0"`},
		{"POST", "/simulate/fault?gpu=0&type=xid", 400, `code "": type=xid wants an XID code from 1 to 999`},
		{"POST", "/simulate/fault?gpu=0&type=xid&code=0", 400, `code "0"`},
		{"POST", "/simulate/fault?gpu=0&type=xid&code=abc", 400, `code "abc"`},
		{"POST", "/simulate/clear?gpu=7", 400, `gpu "7"`},
		{"GET", "/simulate/load?value=0.5", 405, ""},
	} {
		code, body := do(t, tc.method, srv.URL+tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.want)
		}
	}
	for gpu := range 2 { // nothing changed
		if l, _ := sim.Sim.Load(gpu); l != 0 {
			t.Errorf("gpu %d load %v after bad requests", gpu, l)
		}
	}
	if !strings.Contains(scrape(t, srv), `gpu_up{gpu="0",uuid="`+sim.Sim.UUID(0)+`"} 1`) {
		t.Error("gpu 0 not up after bad requests")
	}
}

// With --dcgm-names the control API drives the DCGM series the same way.
func TestControlAPIDCGMNames(t *testing.T) {
	_, srv := exporter(t, simctl.Config{GPUs: 2}, gpumon.WithDCGMNames(), gpumon.WithHostname("n1"))
	do(t, http.MethodPost, srv.URL+"/simulate/load?gpu=1&value=0.6")
	do(t, http.MethodPost, srv.URL+"/simulate/fault?gpu=1&type=xid&code=48")
	waitFor(t, srv, `err_code="48",err_msg="Double Bit ECC Error",gpu="1"`)
	if body := scrape(t, srv); !strings.Contains(body, "DCGM_FI_DEV_GPU_UTIL{") || !strings.Contains(body, `"} 60`) {
		t.Errorf("DCGM_FI_DEV_GPU_UTIL of gpu 1 is not 60:\n%s", body)
	}
}

func TestStartBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  simctl.Config
		want string
	}{
		{simctl.Config{GPUs: 0}, "want at least 1 GPU"},
		{simctl.Config{GPUs: 1, Model: "H200"}, `simulate-model "H200": want one of "H100 SXM", "A100 SXM 80GB", "L4"`},
		{simctl.Config{GPUs: 1, Load: "wave"}, `simulate-load "wave"`},
		{simctl.Config{GPUs: 100000}, "GPUs: want 0 to"},
	} {
		if _, err := simctl.Start(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestParsePattern(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		gpu     int
		at      time.Duration
		want    float64
		wantErr string
	}{
		{spec: "0.6", want: 0.6},
		{spec: "1", want: 1},
		{spec: "sine:0.2:0.8:60s", want: 0.5},                       // sin(0) at gpu 0
		{spec: "sine:0.2:0.8:60s", at: 15 * time.Second, want: 0.8}, // the crest
		{spec: "sine:0.2:0.8:60s", gpu: 2, want: 0.8},               // 1/4 period on
		{spec: "sine:0.2:0.8:60s", at: 45 * time.Second, want: 0.2}, // the trough
		{spec: "1.2", wantErr: "want a load from 0 to 1"},
		{spec: "sine:0.9:0.2:60s", wantErr: "MIN <= MAX"},
		{spec: "sine:0.2:0.9:0s", wantErr: "PERIOD above 0"},
		{spec: "sine:0.2:0.9", wantErr: "sine:MIN:MAX:PERIOD"},
		{spec: "sine:a:0.9:1m", wantErr: "invalid syntax"},
	} {
		p, err := simctl.ParsePattern(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePattern(%q) = %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePattern(%q): %v", tc.spec, err)
			continue
		}
		if got := p(tc.gpu, tc.at); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("ParsePattern(%q)(%d, %v) = %v, want %v", tc.spec, tc.gpu, tc.at, got, tc.want)
		}
	}
	if p, err := simctl.ParsePattern(""); p != nil || err != nil {
		t.Errorf("ParsePattern(\"\") = %v, %v; want none", p != nil, err)
	}
}

// The pattern drives the GPUs the API has not set.
func TestPatternAndPin(t *testing.T) {
	sim, err := simctl.Start(simctl.Config{GPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctl := simctl.New(sim.Sim, func(int, time.Duration) float64 { return 0.4 })
	ctl.Apply(0)
	mux := http.NewServeMux()
	ctl.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/simulate/load?gpu=1&value=0.9", nil))
	if rec.Code != 200 {
		t.Fatalf("load: %d %s", rec.Code, rec.Body)
	}
	ctl.Apply(time.Second)
	if l, _ := sim.Sim.Load(0); l != 0.4 {
		t.Errorf("gpu 0 (pattern) load %v, want 0.4", l)
	}
	if l, _ := sim.Sim.Load(1); l != 0.9 {
		t.Errorf("gpu 1 (set by the API) load %v, want 0.9", l)
	}
}
