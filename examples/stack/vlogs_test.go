package stack_test

// TestVictoriaLogsLokiPush pushes with the SDK's Loki handler, in both
// encodings, to a real VictoriaLogs (the binary build.sh builds; set
// VLOGS_BIN to use another) and reads the lines back with LogsQL by
// service_name and trace_id. It skips when there is no binary.
//
//	VLOGS_BIN=$(bash examples/stack/build.sh --bin-dir)/victoria-logs go test -run VictoriaLogs -v ./examples/stack/

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/logging"
)

func findVictoriaLogs(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VLOGS_BIN"); p != "" {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "build.sh", "--bin-dir").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "victoria-logs")
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Skip("victoria-logs not built: run examples/stack/build.sh, or set VLOGS_BIN")
	return ""
}

// startVictoriaLogs runs victoria-logs on a free loopback port until the
// test ends and returns its base URL.
func startVictoriaLogs(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-httpListenAddr="+addr, "-storageDataPath="+t.TempDir(), "-loggerLevel=WARN")
	logf, err := os.Create(filepath.Join(t.TempDir(), "victoria-logs.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	base := "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("victoria-logs not healthy after 60s: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vlogsQuery runs a LogsQL query with the tenant headers and returns the
// rows (one JSON object a line).
func vlogsQuery(t *testing.T, base, query string, headers map[string]string) []map[string]string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/select/logsql/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("query %q: %s: %s", query, resp.Status, b)
	}
	var rows []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("row %q: %v", sc.Text(), err)
		}
		rows = append(rows, row)
	}
	return rows
}

// pollRows polls the query until it returns want rows (VictoriaLogs makes
// fresh data searchable within about a second).
func pollRows(t *testing.T, base, query string, headers map[string]string, want int) []map[string]string {
	t.Helper()
	var rows []map[string]string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if rows = vlogsQuery(t, base, query, headers); len(rows) >= want {
			break
		}
	}
	return rows
}

// pushWithSDK logs msgs through a *Loki of cfg, closes it and returns the
// number of lines the receiver accepted.
func pushWithSDK(t *testing.T, cfg logging.LokiConfig, ctx context.Context, msgs ...string) float64 {
	t.Helper()
	cfg.Fallback = slog.NewTextHandler(io.Discard, nil)
	cfg.MaxRetries = -1
	l, err := logging.NewLoki(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(l)
	for i, m := range msgs {
		logger.InfoContext(ctx, m, "i", i, "route", "/v1/chat")
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(cctx); err != nil {
		t.Fatal(err)
	}
	return sentLines(t, l)
}

// sentLines reads logging_loki_sent_lines_total from l.
func sentLines(t *testing.T, l *logging.Loki) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(l)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "logging_loki_sent_lines_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func TestVictoriaLogsLokiPush(t *testing.T) {
	bin := findVictoriaLogs(t)
	base := startVictoriaLogs(t, bin)
	tid := trace.TraceID{0xab, 0xcd, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	sid := trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))

	for _, enc := range []string{logging.EncodingProtobuf, logging.EncodingJSON} {
		t.Run(enc, func(t *testing.T) {
			svc := "vlogs-test-" + enc
			if sent := pushWithSDK(t, logging.LokiConfig{
				URL:      base + "/insert",
				Labels:   map[string]string{"service_name": svc, "env": "test"},
				Encoding: enc,
			}, ctx, "first", "second"); sent != 2 {
				t.Fatalf("VictoriaLogs accepted %v of 2 lines", sent)
			}
			q := fmt.Sprintf(`{service_name=%q} trace_id:=%q`, svc, tid.String())
			rows := pollRows(t, base, q, nil, 2)
			if len(rows) != 2 {
				t.Fatalf("%s: %d rows, want 2: %v", q, len(rows), rows)
			}
			for _, r := range rows {
				t.Logf("row: %v", r)
				if r["span_id"] != sid.String() {
					t.Errorf("span_id = %q, want %q (structured metadata as a field)", r["span_id"], sid.String())
				}
				want := fmt.Sprintf(`{env="test",service_name=%q}`, svc)
				if r["_stream"] != want {
					t.Errorf("_stream = %q, want %q (the stream labels)", r["_stream"], want)
				}
				if r["_msg"] != "first" && r["_msg"] != "second" {
					t.Errorf("_msg = %q, want the record's message (the JSON line parsed)", r["_msg"])
				}
				if r["route"] != "/v1/chat" || r["level"] != "INFO" {
					t.Errorf("fields route=%q level=%q: the JSON line's attributes should be fields", r["route"], r["level"])
				}
			}
		})
	}

	// Why the SDK sends VL-Msg-Field: msg. Without it VictoriaLogs parses
	// the JSON line into fields but finds no message field; with
	// LevelLabel the stream label level and slog's level field share a name.
	t.Run("without VL-Msg-Field", func(t *testing.T) {
		if n := pushWithSDK(t, logging.LokiConfig{URL: base + "/insert", LevelLabel: true,
			Labels:  map[string]string{"service_name": "vlogs-nomsg"},
			Headers: map[string]string{"VL-Msg-Field": ""}}, ctx, "lost message"); n != 1 {
			t.Fatalf("%v lines accepted, want 1", n)
		}
		rows := pollRows(t, base, `{service_name="vlogs-nomsg"}`, nil, 1)
		if len(rows) != 1 {
			t.Fatalf("%d rows, want 1", len(rows))
		}
		t.Logf("row: %v", rows[0])
		if !strings.HasPrefix(rows[0]["_msg"], "missing _msg field") || rows[0]["msg"] != "lost message" {
			t.Errorf("_msg = %q, msg = %q: want VictoriaLogs' placeholder and the message in msg", rows[0]["_msg"], rows[0]["msg"])
		}
	})

	// Tenants: VictoriaLogs takes the tenant from the AccountID and
	// ProjectID headers (LokiConfig.Headers); without them it reads
	// X-Scope-OrgID (TenantID) as "AccountID[:ProjectID]" and rejects any
	// other value with 400.
	t.Run("tenant headers", func(t *testing.T) {
		push := func(cfg logging.LokiConfig, msg string) float64 {
			cfg.URL = base + "/insert"
			return pushWithSDK(t, cfg, ctx, msg)
		}
		if n := push(logging.LokiConfig{Labels: map[string]string{"service_name": "vlogs-tenant"},
			Headers: map[string]string{"AccountID": "7", "ProjectID": "3"}}, "tenant 7:3"); n != 1 {
			t.Errorf("AccountID/ProjectID headers: %v lines accepted, want 1", n)
		}
		if n := push(logging.LokiConfig{Labels: map[string]string{"service_name": "vlogs-orgid"}, TenantID: "5"}, "org 5"); n != 1 {
			t.Errorf("X-Scope-OrgID 5: %v lines accepted, want 1", n)
		}
		if n := push(logging.LokiConfig{Labels: map[string]string{"service_name": "vlogs-orgname"}, TenantID: "team-a"}, "org team-a"); n != 0 {
			t.Errorf("X-Scope-OrgID team-a: %v lines accepted, want 0 (VictoriaLogs tenants are numbers)", n)
		}
		if rows := pollRows(t, base, `{service_name="vlogs-tenant"}`, map[string]string{"AccountID": "7", "ProjectID": "3"}, 1); len(rows) != 1 {
			t.Errorf("tenant 7:3 has %d lines, want 1", len(rows))
		}
		if rows := pollRows(t, base, `{service_name="vlogs-orgid"}`, map[string]string{"AccountID": "5"}, 1); len(rows) != 1 {
			t.Errorf("tenant 5:0 has %d lines, want 1 (X-Scope-OrgID: 5)", len(rows))
		}
		for _, svc := range []string{"vlogs-tenant", "vlogs-orgid"} {
			if rows := vlogsQuery(t, base, fmt.Sprintf(`{service_name=%q}`, svc), nil); len(rows) != 0 {
				t.Errorf("the default tenant 0:0 sees %d lines of %s", len(rows), svc)
			}
		}
	})
}
