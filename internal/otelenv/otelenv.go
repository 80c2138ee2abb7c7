// Package otelenv reads the OpenTelemetry environment variables that
// tracing.NewProvider and modeltel.Start both decide on, so that the two read
// them the same way.
package otelenv

import (
	"os"
	"strings"
)

// Set reports whether any of the variables names is set to something other
// than blanks.
func Set(names ...string) bool {
	for _, n := range names {
		if strings.TrimSpace(os.Getenv(n)) != "" {
			return true
		}
	}
	return false
}

// SDKDisabled reports whether OTEL_SDK_DISABLED is "true" (any case, blanks
// around it ignored).
func SDKDisabled() bool {
	return strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true")
}
