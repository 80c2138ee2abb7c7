package ui

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

// header is the first line: the source, the interval, whether the data is
// stale, the counts and the clock, in reverse video.
func header(in Input, width int) string {
	left := " modeltop"
	if in.Source != "" {
		left += "  " + shortSource(in.Source)
	}
	if in.Interval > 0 {
		left += "  every " + in.Interval.String()
	}
	if in.Data.Failed() || stale(in) {
		left += "  (stale)"
	}
	clock := ""
	if !in.Now.IsZero() {
		clock = "  " + in.Now.Format("15:04:05")
	}
	counts := fmt.Sprintf("  %d models  %d GPUs  %d runs", len(in.Data.Models), len(in.Data.GPUs), len(in.Data.Runs))
	// What does not fit goes: the counts first, then the clock.
	for _, right := range []string{counts + clock + " ", clock + " ", ""} {
		pad := width - ansi.StringWidth(left) - ansi.StringWidth(right)
		if pad >= 0 || right == "" {
			return sHeader.Render(fit(left+strings.Repeat(" ", max(pad, 0))+right, width, false))
		}
	}
	return ""
}

// stale reports whether the latest fetch failed, so the data on screen is
// from an earlier one.
func stale(in Input) bool {
	if len(in.Status) == 0 {
		return false
	}
	for _, st := range in.Status {
		if st.Err == nil {
			return false
		}
	}
	return true
}

// shortSource drops the scheme and the default /metrics path.
func shortSource(s string) string {
	s = strings.Replace(s, "http://", "", 1)
	return strings.TrimSuffix(s, "/metrics")
}

// unreachable reports whether err is a network failure (refused, reset,
// timeout, no route) rather than an answer that was wrong.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// errText is the part of err that says what went wrong: for a network
// error the cause ("connection refused"), not the operation and the
// addresses the line already shows.
func errText(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		inner := op.Err
		for u := errors.Unwrap(inner); u != nil; u = errors.Unwrap(inner) {
			inner = u
		}
		return inner.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}

// statusLine is the last line: the first backend that failed (red), else a
// partial answer (yellow), else ok (green), and the keys where they fit.
func statusLine(in Input, width int) string {
	keys := "tab: " + (in.Pane + 1).mod().String() + "  q: quit"
	if len(in.Status) == 0 {
		return fit(sFaint.Render("connecting…"), width, false)
	}
	var bad []snap.Status
	var warn *snap.Status
	for i, st := range in.Status {
		if st.Err != nil {
			bad = append(bad, st)
		} else if st.Warn != nil && warn == nil {
			warn = &in.Status[i]
		}
	}
	var msg string
	style := sGreen
	switch {
	case len(bad) > 0:
		st := bad[0]
		what := "error"
		if unreachable(st.Err) {
			what = "unreachable"
		}
		since := "never reached"
		if !st.LastOK.IsZero() {
			since = "last ok " + Age(in.Now.Sub(st.LastOK).Seconds()) + " ago"
		}
		extra := ""
		if len(bad) > 1 {
			extra = fmt.Sprintf(" (+%d more failing of %d)", len(bad)-1, len(in.Status))
		}
		// The error text is what gives way when the line is too long.
		head := shortSource(st.Source) + " " + what + ": "
		tail := " (" + since + ")" + extra
		room := width - ansi.StringWidth(head) - ansi.StringWidth(tail)
		msg = head + fit(errText(st.Err), max(room, 1), false)
		msg = strings.TrimRight(msg, " ") + tail
		if room < 8 {
			msg = shortSource(st.Source) + " " + what + tail
		}
		style = sRed
	case warn != nil:
		msg = shortSource(warn.Source) + ": " + warn.Warn.Error()
		style = sYellow
	default:
		msg = fmt.Sprintf("ok  %d/%d backends", len(in.Status), len(in.Status))
	}
	pad := width - ansi.StringWidth(msg) - ansi.StringWidth(keys)
	if pad >= 2 {
		return style.Render(msg) + strings.Repeat(" ", pad) + sFaint.Render(keys)
	}
	return style.Render(fit(msg, width, false))
}

// mod wraps p into the panes there are.
func (p Pane) mod() Pane { return (p%numPanes + numPanes) % numPanes }
