package ui

import (
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// col is one table column. A column of width 0 is flexible: it takes what
// the fixed ones leave, at least min and at most max cells.
type col struct {
	title    string
	width    int
	min, max int
	right    bool
	// drop orders the columns left out when the terminal is narrow:
	// the highest first; 0 is never dropped.
	drop int
	// hide leaves the column out whatever the width.
	hide bool
}

// cell is one value, styled after it is padded.
type cell struct {
	text  string
	style *lipgloss.Style
}

func plain(s string) cell                     { return cell{text: s} }
func styled(s string, st lipgloss.Style) cell { return cell{text: s, style: &st} }

// layout decides which columns fit in width and how wide each is. It returns
// the indices of the columns kept and their widths.
func layout(cols []col, width int) (keep []int, widths []int) {
	dropped := make([]bool, len(cols))
	for i, c := range cols {
		dropped[i] = c.hide
	}
	for {
		need, n := 0, 0
		for i, c := range cols {
			if dropped[i] {
				continue
			}
			n++
			if c.width > 0 {
				need += c.width
			} else {
				need += c.min
			}
		}
		need += n - 1
		if need <= width {
			break
		}
		worst := -1
		for i, c := range cols {
			if !dropped[i] && c.drop > 0 && (worst < 0 || c.drop > cols[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			break // nothing left to drop: the line is cut at the edge
		}
		dropped[worst] = true
	}
	fixed, flex := 0, 0
	for i, c := range cols {
		if dropped[i] {
			continue
		}
		keep = append(keep, i)
		if c.width > 0 {
			fixed += c.width
		} else {
			flex++
		}
	}
	spare := width - fixed - (len(keep) - 1)
	for _, i := range keep {
		c := cols[i]
		w := c.width
		if w == 0 {
			w = spare / flex
			spare -= w
			flex--
			if w < c.min {
				w = c.min
			}
			if c.max > 0 && w > c.max {
				spare += w - c.max
				w = c.max
			}
		}
		widths = append(widths, w)
	}
	return keep, widths
}

// fit truncates s to w cells (with an ellipsis) and pads it to w.
func fit(s string, w int, right bool) string {
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	pad := strings.Repeat(" ", max(w-ansi.StringWidth(s), 0))
	if right {
		return pad + s
	}
	return s + pad
}

// table renders the header line and the rows of cols within width.
type table struct {
	cols   []col
	keep   []int
	widths []int
}

func newTable(cols []col, width int) table {
	keep, widths := layout(cols, width)
	return table{cols: cols, keep: keep, widths: widths}
}

func (t table) header() string {
	parts := make([]string, len(t.keep))
	for j, i := range t.keep {
		parts[j] = fit(t.cols[i].title, t.widths[j], t.cols[i].right)
	}
	return strings.TrimRight(strings.Join(parts, " "), " ")
}

func (t table) row(cells []cell) string {
	parts := make([]string, len(t.keep))
	for j, i := range t.keep {
		c := cell{}
		if i < len(cells) {
			c = cells[i]
		}
		s := fit(c.text, t.widths[j], t.cols[i].right)
		if j == len(t.keep)-1 {
			s = strings.TrimRight(s, " ")
		}
		if c.style != nil {
			s = c.style.Render(s)
		}
		parts[j] = s
	}
	return strings.TrimRight(strings.Join(parts, " "), " ")
}
