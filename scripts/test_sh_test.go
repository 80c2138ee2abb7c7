// Package scripts_test checks the repository's shell scripts.
package scripts_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSkipReasons runs test.sh's skip-reason summary over a saved `go test -v`
// log (testdata/skips.txt, made from a package whose tests skip in each way
// go test prints: top level, subtest, parallel with earlier log lines, no
// reason, a reason on two lines) and checks each skip is given its own reason,
// not the line that follows its "--- SKIP".
func TestSkipReasons(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not on PATH: test.sh is a bash script")
	}
	if _, err := exec.LookPath("awk"); err != nil {
		t.Skip("awk is not on PATH: test.sh summarises skips with awk")
	}
	fixture, err := filepath.Abs("testdata/skips.txt") // test.sh runs from the repository root
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "test.sh", "--skip-reasons", fixture).CombinedOutput()
	if err != nil {
		t.Fatalf("test.sh --skip-reasons: %v\n%s", err, out)
	}
	got := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		got[strings.Join(strings.Fields(l), " ")] = true
	}
	want := []string{
		"1 skip reason: skipfix: a_test.go:7: python3 is not on PATH",
		"1 skip reason: skipfix: (no reason given) TestSkipNoReason",
		"1 skip reason: skipfix: a_test.go:13: protoc is not installed",
		"1 skip reason: skipfix: a_test.go:19: MODELTEL_E2E is not set",
		"1 skip reason: skipfix: a_test.go:27: first line of the reason second line",
		"1 skip reason: skipfix: a_test.go:29: needs grpcurl",
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("missing %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d lines, want %d:\n%s", len(got), len(want), out)
	}
	for l := range got {
		if strings.Contains(l, "=== RUN") || strings.Contains(l, "log line of a passing test") || strings.Contains(l, "parallel a before") {
			t.Errorf("a reason taken from the wrong line: %q", l)
		}
	}
}
