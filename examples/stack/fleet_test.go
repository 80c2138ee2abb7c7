package stack_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// findFleetTool returns the named binary that `build.sh --fleet` built (amtool, alertmanager, thanos), else
// the one on PATH.
func findFleetTool(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "bash", "build.sh", "--fleet", "--bin-dir").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", errors.New(name + " not found: run examples/stack/build.sh --fleet (or make e2e-fleet) to check the fleet's Alertmanager config with it")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestFleetAlertmanager checks fleet/alertmanager.yml with amtool: the config loads, and each alert is
// routed to the receiver the routing tree promises (team first, then severity; no team: the fleet on-call).
func TestFleetAlertmanager(t *testing.T) {
	amtool, err := findFleetTool("amtool")
	if err != nil {
		t.Skip(err.Error())
	}
	const config = "fleet/alertmanager.yml"
	run(t, amtool, "check-config", config)
	for _, tc := range []struct {
		labels []string
		want   string
	}{
		{[]string{"alertname=GPUXIDErrors", "severity=critical", "team=serving", "node=node-00"}, "serving-pager"},
		{[]string{"alertname=GPUTemperatureHigh", "severity=warning", "team=serving", "node=node-00"}, "serving-tickets"},
		{[]string{"alertname=NodeDown", "severity=critical", "team=research", "node=node-01"}, "research-pager"},
		{[]string{"alertname=InferenceTTFTHigh", "severity=warning", "team=research"}, "research-tickets"},
		{[]string{"alertname=GPUDown", "severity=critical", "team=platform", "node=node-02"}, "platform-pager"},
		{[]string{"alertname=GPUMemoryNearlyFull", "severity=warning", "team=platform"}, "platform-tickets"},
		{[]string{"alertname=TrainingStalled", "severity=critical"}, "fleet-oncall"},
		{[]string{"alertname=GPUDown", "severity=critical", "team=unknown-team"}, "fleet-oncall"},
	} {
		t.Run(strings.Join(tc.labels, ","), func(t *testing.T) {
			args := append([]string{"config", "routes", "test", "--config.file=" + config, "--verify.receivers=" + tc.want}, tc.labels...)
			run(t, amtool, args...)
		})
	}
}

// TestFleetPrometheus checks the agents' config template, rendered as e2e-fleet.sh renders it, and the
// fleet rules with their unit tests.
func TestFleetPrometheus(t *testing.T) {
	promtool, err := findPromtool()
	if err != nil {
		t.Skip(err.Error())
	}
	tmpl, err := os.ReadFile("fleet/agent.yml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"targets-gpu.json", "targets-serving.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("[]"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, shard := range []string{"0", "1"} {
		cfg := strings.NewReplacer("__SHARDS__", "2", "__SHARD__", shard).Replace(string(tmpl))
		if strings.Contains(cfg, "__") && strings.Contains(cfg, "__SHARD") {
			t.Fatalf("placeholder left in the rendered config:\n%s", cfg)
		}
		path := filepath.Join(dir, "agent-"+shard+".yml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		runPromtool(t, promtool, "check", "config", "--agent", path)
	}
	runPromtool(t, promtool, "check", "rules", "fleet/fleet-rules.yml")
	runPromtool(t, promtool, "test", "rules", "fleet/fleet-rules_test.yml")
}
