package ui

import (
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var now = time.Date(2026, 12, 2, 18, 55, 2, 0, time.UTC)

func node() snap.Snapshot {
	nan := math.NaN()
	m1 := snap.Model{Model: "fake-llama-3-8b", ReqRate: 10, ErrRate: 0.5, TTFT50: 0.06, TTFT99: 0.475,
		TPOT50: 0.0175, TPOT99: 0.02485, OutTPS: 320, InTPS: 60, Active: 3, Queue: nan}
	m2 := snap.Model{Model: "fake-mistral-7b-instruct-v0.3-with-a-very-long-name", ReqRate: 2, ErrRate: 0,
		TTFT50: 0.175, TTFT99: 0.2485, TPOT50: 0.0375, TPOT99: 0.04975, OutTPS: 64, InTPS: 12, Active: 0, Queue: 4}
	m3 := snap.NewModel("embed-small") // seen, no traffic yet
	g0 := snap.GPU{Instance: "127.0.0.1:8080", Index: "0", Name: "NVIDIA H100 80GB HBM3", Up: 1, Util: 0.87,
		MemUsed: 45.5 * (1 << 30), MemTotal: 80 * (1 << 30), Power: 312, PowerLimit: 700, Temp: 64, XID: 0}
	g1 := snap.GPU{Instance: "127.0.0.1:8080", Index: "1", Name: "NVIDIA H100 80GB HBM3", Up: 1, Util: 0.12,
		MemUsed: 79 * (1 << 30), MemTotal: 80 * (1 << 30), Power: 698.5, PowerLimit: 700, Temp: 81, XID: 2,
		XIDCodes: []string{"79"}, Throttle: []string{"sw_thermal_slowdown", "sw_power_cap"}}
	g1.Simulated = true
	g2 := snap.NewGPU("127.0.0.1:8080", "2")
	g2.Up = 0
	r := snap.Run{Run: "llama-8b-sft-7", Rank: "0", Instance: "127.0.0.1:8080", StepTime: 0.5, Steps: 8,
		Loss: 2.48, TokensPerSec: 8192, MFU: 0.42, LastStep: float64(now.Unix() - 3)}
	stalled := r
	stalled.Rank, stalled.LastStep, stalled.Loss, stalled.MFU = "1", float64(now.Unix()-600), nan, math.Inf(1)
	return snap.Snapshot{Time: now, Models: []snap.Model{m1, m2, m3}, GPUs: []snap.GPU{g0, g1, g2},
		Runs: []snap.Run{r, stalled}, Status: []snap.Status{{Source: "scrape http://127.0.0.1:8080/metrics", LastOK: now}}}
}

// fleet is 12 instances of 8 GPUs.
func fleet() snap.Snapshot {
	s := node()
	s.GPUs = nil
	for i := range 12 {
		for j := range 8 {
			g := snap.GPU{Instance: fmt.Sprintf("gpu-node-%02d.dc1.example:9400", i), Index: fmt.Sprint(j),
				Name: "NVIDIA H200", Up: 1, Util: float64(j) / 8, MemUsed: 100 << 30, MemTotal: 141 << 30,
				Power: 500, PowerLimit: 700, Temp: 60, XID: 0}
			s.GPUs = append(s.GPUs, g)
		}
	}
	s.Status = []snap.Status{{Source: "prometheus http://127.0.0.1:9090", LastOK: now}}
	return s
}

func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

func TestRender(t *testing.T) {
	down := []snap.Status{{Source: "prometheus http://127.0.0.1:9090", Err: refused(), LastOK: now.Add(-12 * time.Second)}}
	inputs := map[string]Input{
		"node":  {Data: node(), Status: node().Status, Source: "scrape 127.0.0.1:8080", Interval: 2 * time.Second, Now: now},
		"fleet": {Data: fleet(), Status: fleet().Status, Source: "prometheus http://127.0.0.1:9090", Interval: 2 * time.Second, Now: now},
		"down":  {Data: fleet(), Status: down, Source: "prometheus http://127.0.0.1:9090", Interval: 2 * time.Second, Now: now},
		"empty": {Source: "scrape 127.0.0.1:8080", Now: now},
	}
	sizes := [][2]int{{80, 24}, {120, 40}, {200, 60}, {40, 10}}
	for name, in := range inputs {
		for _, sz := range sizes {
			for p := PaneAll; p < numPanes; p++ {
				in := in
				in.Pane = p
				t.Run(fmt.Sprintf("%s/%dx%d/%s", name, sz[0], sz[1], p), func(t *testing.T) {
					out := Render(in, sz[0], sz[1])
					lines := strings.Split(out, "\n")
					if len(lines) != sz[1] {
						t.Errorf("%d lines, want %d", len(lines), sz[1])
					}
					for i, l := range lines {
						if w := ansi.StringWidth(l); w > sz[0] {
							t.Errorf("line %d is %d wide (> %d): %q", i, w, sz[0], ansi.Strip(l))
						}
					}
					text := ansi.Strip(out)
					if !strings.Contains(lines[0], "modeltop") {
						t.Errorf("no header: %q", ansi.Strip(lines[0]))
					}
					if name == "down" && !strings.Contains(ansi.Strip(lines[len(lines)-1]), "unreachable") {
						t.Errorf("status line does not say unreachable: %q", ansi.Strip(lines[len(lines)-1]))
					}
					if sz[0] >= 80 && (p == PaneAll || p == PaneModels) && name != "empty" && !strings.Contains(text, "fake-llama-3-8b") {
						t.Errorf("model name missing:\n%s", text)
					}
				})
			}
		}
	}
}

func TestRenderGolden(t *testing.T) {
	in := Input{Data: node(), Status: node().Status, Source: "scrape 127.0.0.1:8080", Interval: 2 * time.Second, Now: now}
	down := Input{Data: fleet(), Source: "prometheus http://127.0.0.1:9090", Interval: 2 * time.Second, Now: now,
		Status: []snap.Status{{Source: "prometheus http://127.0.0.1:9090", Err: refused(), LastOK: now.Add(-12 * time.Second)}}}
	tests := []struct {
		name string
		in   Input
		w, h int
	}{
		{"node-80x24", in, 80, 24},
		{"node-120x40", in, 120, 40},
		{"node-200x60", in, 200, 60},
		{"fleet-down-80x24", down, 80, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ansi.Strip(Render(tt.in, tt.w, tt.h)) + "\n"
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("screen differs from %s (-update rewrites it):\n%s", path, got)
			}
		})
	}
}

func TestRenderValues(t *testing.T) {
	in := Input{Data: node(), Status: node().Status, Source: "scrape 127.0.0.1:8080", Interval: 2 * time.Second, Now: now}
	text := ansi.Strip(Render(in, 120, 40))
	for _, want := range []string{
		"fake-llama-3-8b", "10.0", "0.50", "60ms", "475ms", "18ms", "25ms", "320", // model row
		"H100 80GB HBM3", "87%", "45.5/80G", "312/700W", "64C", // GPU 0
		"2 (79)", "thermal,pwr-cap", "DOWN", "GPUS 3  (1 simulated)", // GPU 1 and 2
		"llama-8b-sft-7", "500ms", "2.48", "8192", "42%", "3s", "10m00s", // runs
		"ok  1/1 backends", "q: quit",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("screen lacks %q:\n%s", want, text)
		}
	}
	// The model with no traffic shows dashes, not NaN.
	if strings.Contains(text, "NaN") || strings.Contains(text, "Inf") {
		t.Errorf("screen shows NaN or Inf:\n%s", text)
	}
	embed := lineWith(text, "embed-small")
	if strings.Count(embed, "-") < 8 {
		t.Errorf("unknown values are not dashes: %q", embed)
	}
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestStatusLine(t *testing.T) {
	ok := snap.Status{Source: "scrape http://a:1/metrics", LastOK: now}
	tests := []struct {
		name   string
		status []snap.Status
		want   []string
	}{
		{"before first fetch", nil, []string{"connecting"}},
		{"ok", []snap.Status{ok}, []string{"ok  1/1 backends"}},
		{"refused", []snap.Status{{Source: "prometheus http://p:9090", Err: refused(), LastOK: now.Add(-12 * time.Second)}},
			[]string{"prometheus p:9090 unreachable: connection refused (last ok 12s ago)"}},
		{"never reached", []snap.Status{{Source: "scrape http://a:1/metrics", Err: refused()}}, []string{"a:1 unreachable", "(never reached)"}},
		{"HTTP error", []snap.Status{{Source: "scrape http://a:1/metrics", Err: fmt.Errorf("HTTP 500 Internal Server Error"), LastOK: now}},
			[]string{"a:1 error: HTTP 500", "(last ok 0s ago)"}},
		{"one of two", []snap.Status{ok, {Source: "scrape http://b:2/metrics", Err: refused(), LastOK: now.Add(-90 * time.Second)}},
			[]string{"b:2 unreachable", "(last ok 1m30s ago)"}},
		{"partial", []snap.Status{{Source: "prometheus http://p:9090", Warn: fmt.Errorf("1 of 14 queries failed"), LastOK: now}},
			[]string{"p:9090: 1 of 14 queries failed"}},
	}
	for _, tt := range tests {
		for _, w := range []int{80, 200} {
			t.Run(fmt.Sprintf("%s/%d", tt.name, w), func(t *testing.T) {
				got := ansi.Strip(statusLine(Input{Status: tt.status, Now: now}, w))
				if ansi.StringWidth(got) > w {
					t.Errorf("status line wider than %d: %q", w, got)
				}
				for _, s := range tt.want {
					if !strings.Contains(got, s) {
						t.Errorf("status line %q lacks %q", got, s)
					}
				}
			})
		}
	}
}

func TestCommonSuffix(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"a.dc1.example:9400", "b.dc1.example:9400"}, ".dc1.example:9400"},
		{[]string{"10.0.0.1:9400", "10.0.0.2:9400"}, ":9400"},
		{[]string{"node-1:9400", "node-2:9500"}, ""},
		{[]string{"x.example", "y.example", "example"}, ""},
		{[]string{"only.one:1"}, ""},
		{[]string{"gpu-node-00.dc1:9400", "gpu-node-10.dc1:9400"}, ".dc1:9400"},
	}
	for _, tt := range tests {
		if got := commonSuffix(tt.names); got != tt.want {
			t.Errorf("commonSuffix(%q) = %q, want %q", tt.names, got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		got, want string
	}{
		{Num(nan), "-"}, {Num(inf), "-"}, {Num(0), "0"}, {Num(0.004), "<.01"}, {Num(0.5), "0.50"},
		{Num(12.34), "12.3"}, {Num(512), "512"}, {Num(12345), "12.3k"}, {Num(4.5e6), "4.5M"},
		{Num(9.9999), "10.0"}, {Num(99.97), "100"}, {Num(9999.7), "10.0k"}, {Num(999_999), "1.0M"}, {Num(0.006), "0.01"},
		{Int(8), "8"}, {Int(nan), "-"}, {Int(123456), "123.5k"},
		{Dur(nan), "-"}, {Dur(-1), "-"}, {Dur(0), "0"}, {Dur(0.00085), "850µs"}, {Dur(0.0042), "4.2ms"},
		{Dur(0.06), "60ms"}, {Dur(1.25), "1.25s"}, {Dur(42), "42.0s"}, {Dur(95), "95s"},
		{Age(3), "3s"}, {Age(125), "2m05s"}, {Age(3720), "1h02m"}, {Age(273600), "3d04h"}, {Age(nan), "-"},
		{Pct(0.87), "87%"}, {Pct(nan), "-"},
		{Mem(45.5*(1<<30), 80*(1<<30)), "45.5/80G"}, {Mem(1<<30, nan), "1.0G"}, {Mem(nan, 1), "-"},
		{Power(312.4, 700), "312/700W"}, {Power(312, nan), "312W"}, {Power(nan, 700), "-"},
		{Temp(64), "64C"}, {Temp(nan), "-"},
		{XID(0, nil), "0"}, {XID(2, []string{"79"}), "2 (79)"}, {XID(nan, []string{"48"}), "(48)"}, {XID(nan, nil), "-"},
		{Throttle(nil), "-"}, {Throttle([]string{"sw_thermal_slowdown", "x_new"}), "thermal,x_new"},
		{Bar(0.5, 4), "██░░"}, {Bar(nan, 3), "   "}, {Bar(2, 2), "██"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestLayout(t *testing.T) {
	cols := []col{{title: "name", min: 4, max: 10}, {title: "a", width: 5}, {title: "b", width: 5, drop: 1}, {title: "c", width: 5, drop: 2}}
	tests := []struct {
		width      int
		keep, wide []int
	}{
		{100, []int{0, 1, 2, 3}, []int{10, 5, 5, 5}},
		{25, []int{0, 1, 2, 3}, []int{7, 5, 5, 5}},
		{16, []int{0, 1, 2}, []int{4, 5, 5}},
		{10, []int{0, 1}, []int{4, 5}},
		{3, []int{0, 1}, []int{4, 5}}, // too narrow for anything: cut at the edge
	}
	for _, tt := range tests {
		keep, widths := layout(cols, tt.width)
		if fmt.Sprint(keep) != fmt.Sprint(tt.keep) || fmt.Sprint(widths) != fmt.Sprint(tt.wide) {
			t.Errorf("layout(%d) = %v %v, want %v %v", tt.width, keep, widths, tt.keep, tt.wide)
		}
	}
}

func TestScroll(t *testing.T) {
	in := Input{Data: fleet(), Status: fleet().Status, Source: "prometheus http://127.0.0.1:9090", Now: now, Pane: PaneGPUs}
	// 24 lines: header, title, column header, 19 rows, the rows line, status.
	maxOff := MaxOffset(in, 24)
	if maxOff != 96-19 {
		t.Fatalf("MaxOffset = %d, want %d", maxOff, 96-19)
	}
	tests := []struct {
		offset    int
		want      string
		firstRow  string
		notOnPage string
	}{
		{0, "rows 1-19 of 96", "gpu-node-00", "gpu-node-03"},
		{50, "rows 51-69 of 96", "gpu-node-06", "gpu-node-00"},
		{maxOff, "rows 78-96 of 96", "gpu-node-09", "gpu-node-00"},
		{1000, "rows 78-96 of 96", "gpu-node-09", "gpu-node-00"}, // clamped
		{-5, "rows 1-19 of 96", "gpu-node-00", "gpu-node-03"},
	}
	for _, tt := range tests {
		in.Offset = tt.offset
		text := ansi.Strip(Render(in, 80, 24))
		lines := strings.Split(text, "\n")
		if !strings.Contains(text, tt.want) || !strings.HasPrefix(lines[3], tt.firstRow) || strings.Contains(text, tt.notOnPage) {
			t.Errorf("offset %d: want %q, first row %q, no %q:\n%s", tt.offset, tt.want, tt.firstRow, tt.notOnPage, text)
		}
	}
	in.Pane = PaneAll
	if MaxOffset(in, 24) != 0 {
		t.Error("the all pane scrolls")
	}
}
