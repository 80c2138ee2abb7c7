package generatepb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// protocLine is the generated header line naming the protoc version, the one
// part of the output that depends on which protoc is installed rather than on
// generate.proto and the plugin versions go.mod pins.
var protocLine = regexp.MustCompile(`(?m)^// \tprotoc +v\S+$`)

// TestGeneratedCodeIsCurrent runs gen.sh (protoc with the pinned plugins) into
// a temporary folder and compares its output with the committed files, so that
// a change to generate.proto cannot land without regenerated code.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc is not on PATH (Debian: apt-get install protobuf-compiler): cannot check that the committed generated code is current")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not on PATH: gen.sh is a bash script")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "gen.sh")
	cmd.Env = append(os.Environ(), "OUT_DIR="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, b)
	}
	for _, name := range []string{"generate.pb.go", "generate_grpc.pb.go"} {
		committed, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := os.ReadFile(filepath.Join(out, "examples", "inference-server", "generatepb", name))
		if err != nil {
			t.Fatal(err)
		}
		norm := func(b []byte) []byte { return protocLine.ReplaceAll(b, []byte("// \tprotoc (any)")) }
		if !bytes.Equal(norm(committed), norm(fresh)) {
			t.Errorf("%s is not what generate.proto gives: run go generate ./examples/inference-server/generatepb/ and commit the result", name)
		}
	}
}
