// Package ui is modeltop's screen: Render, a pure function of a snapshot and
// the terminal size, and the Bubble Tea model that polls a source and
// handles keys.
package ui

import (
	"fmt"
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
