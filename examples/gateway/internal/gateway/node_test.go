package gateway_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/modeltel/modeltel/examples/gateway/internal/gateway"
)

// TestNodeSDK drives the gateway (in front of the inference-server example)
// with the official Node SDK, npm "openai", and compares every metric with
// what it saw. It needs node and a folder where `npm install openai` ran,
// named by GATEWAY_NODE_MODULES (the folder holding node_modules); without
// them it skips.
func TestNodeSDK(t *testing.T) {
	dir := os.Getenv("GATEWAY_NODE_MODULES")
	node, err := exec.LookPath("node")
	if dir == "" || err != nil {
		t.Skip("needs node and GATEWAY_NODE_MODULES=DIR, where `npm install openai` ran in DIR")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Skipf("no openai package under %s/node_modules: %v", dir, err)
	}
	e := newEnv(t, gateway.Config{Upstreams: []string{startInferenceServer(t)}})
	// ESM imports resolve from the script's folder: the script and a link
	// to the modules in a folder of their own.
	tmp := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(tmp, "node_modules")); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("testdata/node-client.mjs")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(tmp, "client.mjs")
	if err := os.WriteFile(script, src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+e.srv.URL, "GATEWAY_MODEL="+defaultModels[0])
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	var saw struct{ OK, NotFound, Input, Output, FirstTokens float64 }
	if err := json.Unmarshal(out, &saw); err != nil {
		t.Fatalf("node client said %q: %v", out, err)
	}
	e.waitRequests(t, saw.OK+saw.NotFound+1) // and GET /v1/models
	e.waitValue(t, "http_server_request_duration_seconds", map[string]string{"http_response_status_code": "200", "http_route": "/v1/{path...}"}, saw.OK)
	status := func(code string) float64 {
		return e.value(t, "http_server_request_duration_seconds", map[string]string{"http_response_status_code": code, "http_route": "/v1/{path...}"})
	}
	if got := status("200"); got != saw.OK {
		t.Errorf("200s %v, node saw %v", got, saw.OK)
	}
	if got := status("404"); got != saw.NotFound {
		t.Errorf("404s %v, node saw %v", got, saw.NotFound)
	}
	in := e.value(t, "inference_tokens_total", map[string]string{"gen_ai_token_type": "input"})
	outTok := e.value(t, "inference_tokens_total", map[string]string{"gen_ai_token_type": "output"})
	if in != saw.Input || outTok != saw.Output {
		t.Errorf("tokens in %v out %v, node saw %v %v", in, outTok, saw.Input, saw.Output)
	}
	if got := e.value(t, "gen_ai_server_time_to_first_token_seconds", nil); got != saw.FirstTokens {
		t.Errorf("ttft count %v, node saw %v", got, saw.FirstTokens)
	}
	checkIdle(t, e)
}
