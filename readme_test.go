package modeltel_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestReadmeQuickStart builds the README's quick start (the Go block between
// the quickstart markers) as its own module, with a replace line pointing at
// this checkout, runs it on a free port, and checks what the README promises:
// events as text/event-stream ending in "data: [DONE]", a client that leaves
// after two events recorded as cut off (error_type="canceled", HTTP 499, no
// TTFT) while a complete stream is a success with one, scrapes not logged,
// and SIGTERM handled (a clean exit, so the deferred Shutdown ran).
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test builds the README's program (a go build of a module)")
	}
	if runtime.GOOS == "windows" {
		t.Skip("sends SIGTERM")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src := extract(t, string(readme))
	port := freePort(t)
	const addr = `run(ctx, "127.0.0.1:8080")`
	if !strings.Contains(src, addr) {
		t.Fatalf("the quick start no longer calls %s: update this test", addr)
	}
	src = strings.Replace(src, addr, fmt.Sprintf(`run(ctx, "127.0.0.1:%d")`, port), 1)

	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := "module quickstart\n\ngo 1.26\n\nrequire github.com/modeltel/modeltel v0.0.0\n\nreplace github.com/modeltel/modeltel => " + root + "\n"
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"main.go": []byte(src), "go.mod": []byte(gomod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "quickstart")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's quick start does not build: %v\n%s\n%s", err, out, src)
	}

	var stdout, stderr strings.Builder
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the quick start does not serve /metrics: %v\nstderr:\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	const body = `{"model":"demo","messages":[{"role":"user","content":"Why is the sky blue?"}]}`

	// A client that goes away after two events.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q, want text/event-stream", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	for events := 0; events < 2 && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "data: ") {
			events++
		}
	}
	cancel()
	resp.Body.Close()

	// A client that reads the whole stream.
	resp, err = http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(all), "data: {") || !strings.HasSuffix(string(all), "data: [DONE]\n\n") {
		t.Errorf("stream = %q, want data: events ending in data: [DONE]", all)
	}

	// The cut-off request is recorded once the server noticed (its next
	// decode step or write): poll.
	var fams map[string]*series
	for deadline := time.Now().Add(20 * time.Second); ; {
		fams = scrape(t, base+"/metrics")
		if count(fams, "gen_ai_server_request_duration_seconds", `error_type="canceled"`) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	checks := []struct {
		name, match string
		want        float64
	}{
		{"gen_ai_server_request_duration_seconds", `error_type="canceled"`, 1},
		{"gen_ai_server_request_duration_seconds", `error_type=""`, 1},
		{"gen_ai_server_time_to_first_token_seconds", `gen_ai_request_model="demo"`, 1},
		{"http_server_request_duration_seconds", `http_response_status_code="499"`, 1},
		{"http_server_request_duration_seconds", `http_response_status_code="200"`, 1},
		{"http_server_request_duration_seconds", `http_route="GET /metrics"`, 0},
	}
	for _, c := range checks {
		if got := count(fams, c.name, c.match); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.match, got, c.want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want a clean exit (the signal context ends run)\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the quick start did not exit within 20s of SIGTERM")
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.Contains(line, "/metrics") {
			t.Errorf("a scrape was logged: %s", line)
		}
	}
	if !strings.Contains(stdout.String(), `"status":499`) {
		t.Errorf("no log line for the cut-off request:\n%s", stdout.String())
	}
}

// extract returns the Go block between the quickstart markers.
func extract(t *testing.T, readme string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- quickstart:begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- quickstart:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no <!-- quickstart:begin --> ... <!-- quickstart:end --> block")
	}
	block = strings.TrimSpace(block)
	block, ok = strings.CutPrefix(block, "```go\n")
	if !ok || !strings.HasSuffix(block, "```") {
		t.Fatalf("the quickstart block is not one ```go fence:\n%s", block)
	}
	return strings.TrimSuffix(block, "```")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// series are the samples of one metric family.
type series = model.Vector

// scrape parses the text exposition at url into samples by metric name
// (histograms as their _count series).
func scrape(t *testing.T, url string) map[string]*series {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*series{}
	for name, mf := range mfs {
		v := model.Vector{}
		for _, m := range mf.GetMetric() {
			metric := model.Metric{}
			for _, l := range m.GetLabel() {
				metric[model.LabelName(l.GetName())] = model.LabelValue(l.GetValue())
			}
			val := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			v = append(v, &model.Sample{Metric: metric, Value: model.SampleValue(val)})
		}
		out[name] = &v
	}
	return out
}

// count adds the values of the series of name whose labels include match
// (`key="value"`; value "" matches a series without the label).
func count(fams map[string]*series, name, match string) float64 {
	k, v, _ := strings.Cut(match, "=")
	v = strings.Trim(v, `"`)
	var n float64
	if fams[name] == nil {
		return 0
	}
	for _, s := range *fams[name] {
		if string(s.Metric[model.LabelName(k)]) == v {
			n += float64(s.Value)
		}
	}
	return n
}
