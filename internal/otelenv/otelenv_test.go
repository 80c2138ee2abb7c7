package otelenv

import "testing"

func TestSet(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"", "", false},
		{"  ", "", false},
		{"", "x", true},
		{" localhost:4317 ", "", true},
	} {
		t.Setenv("OTELENV_TEST_A", tc.a)
		t.Setenv("OTELENV_TEST_B", tc.b)
		if got := Set("OTELENV_TEST_A", "OTELENV_TEST_B"); got != tc.want {
			t.Errorf("Set with %q, %q = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSDKDisabled(t *testing.T) {
	for v, want := range map[string]bool{
		"":       false,
		"false":  false,
		"1":      false,
		"true":   true,
		" TRUE ": true,
		"True":   true,
		"truthy": false,
	} {
		t.Setenv("OTEL_SDK_DISABLED", v)
		if got := SDKDisabled(); got != want {
			t.Errorf("OTEL_SDK_DISABLED=%q: SDKDisabled() = %v, want %v", v, got, want)
		}
	}
}
