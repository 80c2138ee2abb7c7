package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openaiNodeVersion is the npm openai package the Node test installs.
const openaiNodeVersion = "7.55.0"

// TestOfficialOpenAINodeSDK runs testdata/openai_node.mjs (models.retrieve,
// completions plain and streamed, embeddings in the SDK's default base64,
// chat streaming) against the server with the official Node SDK, installed
// into a temporary folder from the npm registry. It skips without node and
// npm, in -short mode, or when the install fails (no registry).
func TestOfficialOpenAINodeSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test installs the openai npm package")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: cannot run the OpenAI Node SDK")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not on PATH: cannot install the OpenAI Node SDK")
	}
	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join("testdata", "openai_node.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "openai_node.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--silent", "openai@"+openaiNodeVersion)
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("npm install openai@%s failed (no npm registry?): %v\n%s", openaiNodeVersion, err, out)
	}
	st := newStack(t)
	cmd := exec.CommandContext(ctx, node, "openai_node.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OPENAI_BASE_URL="+st.http.URL+"/v1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("the OpenAI Node SDK against the server: %v\n%s", err, out)
	}
}
