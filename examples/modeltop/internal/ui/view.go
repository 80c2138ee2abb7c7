// Package ui is modeltop's screen: Render, a pure function of a snapshot and
// the terminal size, and the Bubble Tea model that polls a source and
// handles keys.
package ui

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

// Pane is what the screen shows: every section, or one of them at full
// height.
type Pane int

// The panes, in the order tab goes through them.
const (
	PaneAll Pane = iota
	PaneModels
	PaneGPUs
	PaneTraining
	numPanes
)

func (p Pane) String() string {
	return [...]string{"all", "models", "gpus", "training"}[p]
}

// Input is everything the screen shows.
type Input struct {
	// Data is the last snapshot that held data.
	Data snap.Snapshot
	// Status is the backends' state after the latest fetch (nil before the
	// first).
	Status []snap.Status
	// Source describes the source ("scrape 127.0.0.1:8080").
	Source   string
	Interval time.Duration
	Now      time.Time
	Pane     Pane
	// Offset is the rows scrolled past in a single-section pane.
	Offset int
}

var (
	sHeader  = lipgloss.NewStyle().Reverse(true).Bold(true)
	sTitle   = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("6"))
	sColHead = lipgloss.NewStyle().Faint(true)
	sRed     = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	sYellow  = lipgloss.NewStyle().Foreground(lipgloss.Color("3"))
	sGreen   = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	sFaint   = lipgloss.NewStyle().Faint(true)
)

// section is one block of the screen.
type section struct {
	pane  Pane
	title string
	table table
	rows  [][]cell
	empty string // what to say when there are no rows
}

// Render draws the screen at width x height: a header line, the sections of
// the pane, a status line. No line is wider than width and there are at most
// height lines, so nothing wraps.
func Render(in Input, width, height int) string {
	if width < 20 {
		width = 20
	}
	if height < 3 {
		height = 3
	}
	lines := []string{header(in, width)}
	secs := sections(in, width)
	var shown []section
	for _, s := range secs {
		if in.Pane == s.pane || in.Pane == PaneAll && len(s.rows) > 0 {
			shown = append(shown, s)
		}
	}
	if len(shown) == 0 {
		// Nothing at all yet: list the sections, each saying why.
		shown = secs
	}
	body := height - 2
	alloc := allocate(shown, body)
	used := 0
	for _, n := range alloc {
		used += n
	}
	gap := used+len(shown)-1 <= body // room for a blank line between sections
	for i, s := range shown {
		if gap && i > 0 {
			lines = append(lines, "")
		}
		if in.Pane == PaneAll {
			lines = append(lines, s.render(alloc[i])...)
		} else {
			lines = append(lines, s.scroll(alloc[i], in.Offset)...)
		}
	}
	for len(lines) < height-1 {
		lines = append(lines, "")
	}
	lines = append(lines[:height-1], statusLine(in, width))
	for i, l := range lines {
		if ansi.StringWidth(l) > width {
			lines[i] = ansi.Truncate(l, width, "")
		}
	}
	return strings.Join(lines, "\n")
}

// allocate shares lines among sections: each gets its title, header and one
// row first, then rows go round the sections that have more.
func allocate(secs []section, lines int) []int {
	need := make([]int, len(secs))
	got := make([]int, len(secs))
	for i, s := range secs {
		need[i] = 2 + max(len(s.rows), 1)
	}
	left := lines
	for i := range secs {
		n := min(need[i], 3, left)
		got[i], left = n, left-n
	}
	for left > 0 {
		gave := false
		for i := range secs {
			if left > 0 && got[i] < need[i] {
				got[i]++
				left--
				gave = true
			}
		}
		if !gave {
			break
		}
	}
	return got
}

// render draws the section in lines, the rows that do not fit summed up in
// the last line.
func (s section) render(lines int) []string {
	out, room := s.top(lines)
	if room <= 0 || len(s.rows) == 0 {
		return out
	}
	rows, more := s.rows, 0
	if len(rows) > room {
		more = len(rows) - room + 1
		rows = rows[:room-1]
	}
	for _, r := range rows {
		out = append(out, s.table.row(r))
	}
	if more > 0 {
		out = append(out, sFaint.Render(fmt.Sprintf("… %d more (tab to the %s pane)", more, s.pane)))
	}
	return out
}

// scroll draws the section alone in lines, from row offset (clamped), with
// a line saying which rows show when not all fit.
func (s section) scroll(lines, offset int) []string {
	out, room := s.top(lines)
	if room <= 0 || len(s.rows) == 0 {
		return out
	}
	if len(s.rows) <= room {
		for _, r := range s.rows {
			out = append(out, s.table.row(r))
		}
		return out
	}
	visible := max(room-1, 0)
	offset = min(max(offset, 0), len(s.rows)-visible)
	for _, r := range s.rows[offset : offset+visible] {
		out = append(out, s.table.row(r))
	}
	return append(out, sFaint.Render(fmt.Sprintf("rows %d-%d of %d  (up/down, pgup/pgdn, home/end)",
		offset+1, offset+visible, len(s.rows))))
}

// top draws the title and column header and returns the lines left for rows.
func (s section) top(lines int) ([]string, int) {
	if lines <= 0 {
		return nil, 0
	}
	title := sTitle.Render(s.title)
	if len(s.rows) == 0 {
		return []string{title + "  " + sFaint.Render(s.empty)}, 0
	}
	out := []string{title}
	if lines >= 2 {
		out = append(out, sColHead.Render(s.table.header()))
	}
	return out, lines - len(out)
}

// MaxOffset is the largest useful Input.Offset at height: past it the pane
// shows nothing new.
func MaxOffset(in Input, height int) int {
	if in.Pane == PaneAll {
		return 0
	}
	for _, s := range sections(in, 80) {
		if s.pane == in.Pane {
			room := max(height, 3) - 2 - 2
			if len(s.rows) <= room {
				return 0
			}
			return len(s.rows) - max(room-1, 0)
		}
	}
	return 0
}

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

func (p Pane) mod() Pane { return (p%numPanes + numPanes) % numPanes }

func sections(in Input, width int) []section {
	d := in.Data
	return []section{modelSection(d, width), gpuSection(d, width), runSection(d, in.Now, width)}
}

func modelSection(d snap.Snapshot, width int) section {
	cols := []col{
		{title: "MODEL", min: 10, max: 40},
		{title: "req/s", width: 6, right: true},
		{title: "err/s", width: 5, right: true},
		{title: "TTFT50", width: 6, right: true},
		{title: "TTFT99", width: 6, right: true},
		{title: "TPOT50", width: 6, right: true},
		{title: "TPOT99", width: 6, right: true},
		{title: "out tok/s", width: 9, right: true, drop: 1},
		{title: "in tok/s", width: 8, right: true, drop: 3},
		{title: "active", width: 6, right: true, drop: 2},
		{title: "queue", width: 5, right: true, drop: 4},
	}
	// At 80 columns the long titles give way to short ones.
	if width < 100 {
		cols[7].title, cols[7].width = "tok/s", 6
		cols[8].hide = true
		cols[9].title, cols[9].width = "act", 4
	}
	s := section{pane: PaneModels, title: fmt.Sprintf("MODELS %d", len(d.Models)), table: newTable(cols, width),
		empty: "none (no gen_ai_server_* series)"}
	for _, m := range d.Models {
		name := m.Model
		if name == "" {
			name = "(no model)"
		}
		errs := plain(Num(m.ErrRate))
		if finite(m.ErrRate) && m.ErrRate > 0 {
			errs = styled(errs.text, sRed)
		}
		s.rows = append(s.rows, []cell{plain(name), plain(Num(m.ReqRate)), errs,
			plain(Dur(m.TTFT50)), plain(Dur(m.TTFT99)), plain(Dur(m.TPOT50)), plain(Dur(m.TPOT99)),
			plain(Num(m.OutTPS)), plain(Num(m.InTPS)), plain(Int(m.Active)), plain(Int(m.Queue))})
	}
	return s
}

// commonSuffix returns the longest suffix that all of names share and that
// starts at a '.' or ':' ("dc1.example:9400" of "a.dc1.example:9400" and
// "b.dc1.example:9400"), so that the instance column shows what differs.
func commonSuffix(names []string) string {
	if len(names) < 2 {
		return ""
	}
	suf := names[0]
	for _, n := range names[1:] {
		for !strings.HasSuffix(n, suf) {
			suf = suf[1:]
		}
	}
	for suf != "" && suf[0] != '.' && suf[0] != ':' {
		suf = suf[1:]
	}
	for _, n := range names {
		if n == suf {
			return "" // nothing would be left of one of them
		}
	}
	return suf
}

func instanceNamer[T any](xs []T, inst func(T) string) (multi bool, short func(string) string) {
	seen := map[string]bool{}
	var names []string
	for _, x := range xs {
		if n := inst(x); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	suf := commonSuffix(names)
	return len(names) > 1, func(s string) string { return strings.TrimSuffix(s, suf) }
}

func countSimulated(gs []snap.GPU) int {
	n := 0
	for _, g := range gs {
		if g.Simulated {
			n++
		}
	}
	return n
}

func gpuSection(d snap.Snapshot, width int) section {
	multi, short := instanceNamer(d.GPUs, func(g snap.GPU) string { return g.Instance })
	cols := []col{
		{title: "INSTANCE", min: 8, max: 22},
		{title: "GPU", width: 3, right: true},
		{title: "NAME", min: 8, max: 28, drop: 2},
		{title: "util", width: 4, right: true},
		{title: "", width: 10, drop: 5},
		{title: "mem", width: 10, right: true},
		{title: "power", width: 8, right: true},
		{title: "temp", width: 4, right: true},
		{title: "xid", width: 6, right: true, drop: 1},
		{title: "throttle", min: 7, max: 24},
	}
	cols[0].hide = !multi
	cols[4].hide = width < 110
	title := fmt.Sprintf("GPUS %d", len(d.GPUs))
	if n := countSimulated(d.GPUs); n > 0 {
		title += fmt.Sprintf("  (%d simulated)", n)
	}
	s := section{pane: PaneGPUs, title: title, table: newTable(cols, width),
		empty: "none (no gpu_* or DCGM_FI_DEV_* series)"}
	for _, g := range d.GPUs {
		util := plain(Pct(g.Util))
		temp := plain(Temp(g.Temp))
		switch {
		case g.Temp >= 85:
			temp = styled(temp.text, sRed)
		case g.Temp >= 75:
			temp = styled(temp.text, sYellow)
		}
		xid := plain(XID(g.XID, g.XIDCodes))
		if g.XID > 0 || len(g.XIDCodes) > 0 {
			xid = styled(xid.text, sRed)
		}
		thr := plain(Throttle(g.Throttle))
		if len(g.Throttle) > 0 {
			thr = styled(thr.text, sYellow)
		}
		if g.Up == 0 {
			thr = styled("DOWN (gpu_up 0)", sRed)
		}
		name := strings.TrimPrefix(g.Name, "NVIDIA ")
		if name == "" {
			name = "-"
		}
		s.rows = append(s.rows, []cell{plain(short(g.Instance)), plain(g.Index), plain(name), util,
			styled(Bar(g.Util, 10), sGreen), plain(Mem(g.MemUsed, g.MemTotal)), plain(Power(g.Power, g.PowerLimit)),
			temp, xid, thr})
	}
	return s
}

func runSection(d snap.Snapshot, now time.Time, width int) section {
	multi, short := instanceNamer(d.Runs, func(r snap.Run) string { return r.Instance })
	cols := []col{
		{title: "RUN", min: 8, max: 32},
		{title: "rank", width: 4, right: true},
		{title: "INSTANCE", min: 8, max: 22, drop: 3},
		{title: "step", width: 6, right: true},
		{title: "steps", width: 6, right: true, drop: 2},
		{title: "loss", width: 7, right: true},
		{title: "tok/s", width: 7, right: true},
		{title: "MFU", width: 4, right: true},
		{title: "stall", width: 6, right: true},
	}
	cols[2].hide = !multi
	s := section{pane: PaneTraining, title: fmt.Sprintf("TRAINING %d", len(d.Runs)), table: newTable(cols, width),
		empty: "none (no training_* series)"}
	for _, r := range d.Runs {
		name := r.Run
		if name == "" {
			name = r.Instance
		}
		stall := r.Stall(now)
		st := plain(Age(stall))
		// Stalled: no step for a minute, or for ten steps' time.
		limit := 60.0
		if finite(r.StepTime) {
			limit = math.Max(limit, 10*r.StepTime)
		}
		if finite(stall) && stall > limit {
			st = styled(st.text, sRed)
		}
		loss := "-"
		if finite(r.Loss) {
			loss = fmt.Sprintf("%.4g", r.Loss)
		}
		rank := r.Rank
		if rank == "" {
			rank = "-"
		}
		s.rows = append(s.rows, []cell{plain(name), plain(rank), plain(short(r.Instance)), plain(Dur(r.StepTime)),
			plain(Int(r.Steps)), plain(loss), plain(Num(r.TokensPerSec)), plain(Pct(r.MFU)), st})
	}
	return s
}
