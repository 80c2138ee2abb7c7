package ui

import (
	"fmt"
	"math"
	"strings"
)

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Num formats a rate or count compactly: "-" when unknown, then 0.50, 12.3,
// 512, 12.3k, 4.5M.
func Num(v float64) string {
	switch a := math.Abs(v); {
	case !finite(v):
		return "-"
	case v == 0:
		return "0"
	case a < 0.005:
		return "<.01"
	// The bounds are where rounding would carry into one more digit.
	case a < 9.995:
		return fmt.Sprintf("%.2f", v)
	case a < 99.95:
		return fmt.Sprintf("%.1f", v)
	case a < 9999.5:
		return fmt.Sprintf("%.0f", v)
	case a < 999_950:
		return fmt.Sprintf("%.1fk", v/1e3)
	case a < 999_950_000:
		return fmt.Sprintf("%.1fM", v/1e6)
	}
	return fmt.Sprintf("%.1fG", v/1e9)
}

// Int formats a count with no fraction: 8, 1234, 12.3k.
func Int(v float64) string {
	if finite(v) && math.Abs(v) < 9999.5 {
		return fmt.Sprintf("%.0f", v)
	}
	return Num(v)
}

// Dur formats seconds: 850µs, 4.2ms, 60ms, 1.25s, 42.0s, 95s.
func Dur(s float64) string {
	switch {
	case !finite(s) || s < 0:
		return "-"
	case s == 0:
		return "0"
	case s < 1e-3:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 0.01:
		return fmt.Sprintf("%.1fms", s*1e3)
	case s < 1:
		return fmt.Sprintf("%.0fms", s*1e3)
	case s < 10:
		return fmt.Sprintf("%.2fs", s)
	case s < 60:
		return fmt.Sprintf("%.1fs", s)
	}
	return fmt.Sprintf("%.0fs", s)
}

// Age formats a stall or an age: 3s, 2m05s, 1h02m, 3d04h.
func Age(s float64) string {
	if !finite(s) || s < 0 {
		return "-"
	}
	n := int64(math.Round(s))
	switch {
	case n < 60:
		return fmt.Sprintf("%ds", n)
	case n < 3600:
		return fmt.Sprintf("%dm%02ds", n/60, n%60)
	case n < 86400:
		return fmt.Sprintf("%dh%02dm", n/3600, n%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", n/86400, n%86400/3600)
}

// Pct formats a ratio as a percentage: 87%.
func Pct(r float64) string {
	if !finite(r) {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", r*100)
}

// Mem formats used/total bytes in GiB: 45.5/80.0G, or 45.5G with no total.
func Mem(used, total float64) string {
	const gib = 1 << 30
	switch {
	case !finite(used):
		return "-"
	case !finite(total) || total <= 0:
		return fmt.Sprintf("%.1fG", used/gib)
	}
	return fmt.Sprintf("%.1f/%.0fG", used/gib, total/gib)
}

// Power formats watts used and the limit: 312/700W.
func Power(w, limit float64) string {
	switch {
	case !finite(w):
		return "-"
	case !finite(limit) || limit <= 0:
		return fmt.Sprintf("%.0fW", w)
	}
	return fmt.Sprintf("%.0f/%.0fW", w, limit)
}

// Temp formats degrees Celsius: 64C.
func Temp(c float64) string {
	if !finite(c) {
		return "-"
	}
	return fmt.Sprintf("%.0fC", c)
}

// XID formats the XID errors counted and their codes: "0", "2 (79)", or
// "(48)" when only the last code is known (DCGM).
func XID(count float64, codes []string) string {
	c := ""
	if len(codes) > 0 {
		c = "(" + strings.Join(codes, ",") + ")"
	}
	switch {
	case !finite(count) && c == "":
		return "-"
	case !finite(count):
		return c
	case c == "":
		return Int(count)
	}
	return Int(count) + " " + c
}

// throttleNames are short forms of gpumon's clock event reasons.
var throttleNames = map[string]string{
	"applications_clocks_setting": "app-clk",
	"sw_power_cap":                "pwr-cap",
	"hw_slowdown":                 "hw-slow",
	"sync_boost":                  "sync",
	"sw_thermal_slowdown":         "thermal",
	"hw_thermal_slowdown":         "hw-therm",
	"hw_power_brake_slowdown":     "pwr-brake",
	"display_clock_setting":       "display",
}

// Throttle formats the active clock event reasons: "thermal,pwr-cap", or
// "-" when none.
func Throttle(reasons []string) string {
	if len(reasons) == 0 {
		return "-"
	}
	out := make([]string, len(reasons))
	for i, r := range reasons {
		if s, ok := throttleNames[r]; ok {
			r = s
		}
		out[i] = r
	}
	return strings.Join(out, ",")
}

// Bar draws a ratio as a bar of width cells.
func Bar(r float64, width int) string {
	if !finite(r) || width <= 0 {
		return strings.Repeat(" ", max(width, 0))
	}
	n := int(math.Round(math.Min(math.Max(r, 0), 1) * float64(width)))
	return strings.Repeat("█", n) + strings.Repeat("░", width-n)
}
