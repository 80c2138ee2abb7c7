//go:build cgo

// Command cmd writes gpusim's zz_unsupported.go (go generate in gpumon/gpusim).
package main

import (
	"fmt"
	"os"

	"github.com/modeltel/modeltel/gpumon/gpusim/internal/nvmlgen"
)

func main() {
	src, err := nvmlgen.Generate("gpusim")
	if err != nil {
		fmt.Fprintln(os.Stderr, "nvmlgen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile("zz_unsupported.go", src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "nvmlgen:", err)
		os.Exit(1)
	}
}
