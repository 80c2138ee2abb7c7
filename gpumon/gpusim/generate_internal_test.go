//go:build cgo

package gpusim

import (
	"bytes"
	"os"
	"testing"

	"github.com/modeltel/modeltel/gpumon/gpusim/internal/nvmlgen"
)

// zz_unsupported.go is what the generator writes for this go-nvml: after a
// go-nvml update, run go generate ./gpumon/gpusim.
func TestGeneratedUpToDate(t *testing.T) {
	want, err := nvmlgen.Generate("gpusim")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("zz_unsupported.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("zz_unsupported.go is stale: run go generate ./gpumon/gpusim")
	}
}
