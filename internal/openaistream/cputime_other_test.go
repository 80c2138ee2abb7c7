//go:build !unix

package openaistream

func cpuNanos() int64 { return 0 }
