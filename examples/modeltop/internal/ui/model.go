package ui

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
	"github.com/modeltel/modeltel/examples/modeltop/internal/source"
)

// Model is the Bubble Tea model: it fetches from its source every interval
// (one fetch at a time, each bounded by timeout), redraws every second so
// that ages move, and handles the keys: q or ctrl+c quits, tab and
// shift+tab (or 1-4) switch panes, up/down, pgup/pgdn and home/end scroll a
// single-section pane.
type Model struct {
	src      source.Source
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time

	width, height int
	pane          Pane
	offset        int
	data          snap.Snapshot
	status        []snap.Status
}

// NewModel returns the model for src.
func NewModel(src source.Source, interval, timeout time.Duration) Model {
	return Model{src: src, interval: interval, timeout: timeout, now: time.Now, width: 80, height: 24}
}

type (
	fetchedMsg snap.Snapshot
	fetchMsg   struct{}
	redrawMsg  struct{}
)

func (m Model) fetch() tea.Msg {
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	return fetchedMsg(m.src.Fetch(ctx))
}

func redraw() tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return redrawMsg{} })
}

// Init implements tea.Model: the first fetch and the redraw clock.
func (m Model) Init() tea.Cmd { return tea.Batch(m.fetch, redraw()) }

// Update implements tea.Model.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case "tab", "right", "l":
			m.pane, m.offset = (m.pane + 1).mod(), 0
		case "shift+tab", "left", "h":
			m.pane, m.offset = (m.pane - 1).mod(), 0
		case "1", "2", "3", "4":
			m.pane, m.offset = Pane(msg.String()[0]-'1'), 0
		case "down", "j":
			m.offset++
		case "up", "k":
			m.offset--
		case "pgdown", "space", "f":
			m.offset += max(m.height-5, 1)
		case "pgup", "b":
			m.offset -= max(m.height-5, 1)
		case "home", "g":
			m.offset = 0
		case "end", "G":
			m.offset = 1 << 30
		}
		m.offset = min(max(m.offset, 0), MaxOffset(m.Input(), m.height))
	case fetchedMsg:
		s := snap.Snapshot(msg)
		if !s.Failed() {
			m.data = s
		}
		m.status = s.Status
		return m, tea.Tick(m.interval, func(time.Time) tea.Msg { return fetchMsg{} })
	case fetchMsg:
		return m, m.fetch
	case redrawMsg:
		return m, redraw()
	}
	return m, nil
}

// Input is what the screen shows now.
func (m Model) Input() Input {
	return Input{Data: m.data, Status: m.status, Source: m.src.Describe(), Interval: m.interval,
		Now: m.now(), Pane: m.pane, Offset: m.offset}
}

// View implements tea.Model.
func (m Model) View() tea.View {
	v := tea.NewView(Render(m.Input(), m.width, m.height))
	v.AltScreen = true
	v.WindowTitle = "modeltop"
	return v
}

// Feed fetches once, synchronously, and returns the model with the result:
// for a screen printed without a terminal.
func (m Model) Feed() Model {
	next, _ := m.Update(m.fetch())
	return next.(Model)
}
