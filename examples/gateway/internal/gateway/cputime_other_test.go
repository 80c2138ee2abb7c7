//go:build !unix

package gateway_test

func cpuNanos() int64 { return 0 }
