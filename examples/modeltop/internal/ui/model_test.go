package ui

import (
	"context"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

type fakeSource struct{ next []snap.Snapshot }

func (f *fakeSource) Describe() string { return "fake" }
func (f *fakeSource) Fetch(context.Context) snap.Snapshot {
	s := f.next[0]
	if len(f.next) > 1 {
		f.next = f.next[1:]
	}
	return s
}

func TestModelUpdate(t *testing.T) {
	good := node()
	bad := snap.Snapshot{Time: now, Status: []snap.Status{{Source: "scrape http://127.0.0.1:8080/metrics", Err: refused(), LastOK: now}}}
	src := &fakeSource{next: []snap.Snapshot{good, bad}}
	m := NewModel(src, time.Second, time.Second)
	m.now = func() time.Time { return now }

	step := func(msg tea.Msg) tea.Cmd {
		t.Helper()
		next, cmd := m.Update(msg)
		m = next.(Model)
		return cmd
	}
	if cmd := step(m.fetch()); cmd == nil {
		t.Fatal("a fetch result schedules no next fetch")
	}
	if len(m.Input().Data.Models) != 3 {
		t.Fatalf("after a good fetch: %d models", len(m.Input().Data.Models))
	}
	step(m.fetch())
	in := m.Input()
	if len(in.Data.Models) != 3 || in.Status[0].Err == nil {
		t.Fatalf("a failed fetch replaced the data or lost the error: %+v", in)
	}

	step(tea.WindowSizeMsg{Width: 100, Height: 30})
	if m.width != 100 || m.height != 30 {
		t.Errorf("size = %dx%d", m.width, m.height)
	}
	keys := []struct {
		key  tea.KeyPressMsg
		want Pane
	}{
		{tea.KeyPressMsg{Code: tea.KeyTab}, PaneModels},
		{tea.KeyPressMsg{Code: tea.KeyTab}, PaneGPUs},
		{tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}, PaneModels},
		{tea.KeyPressMsg{Code: '4', Text: "4"}, PaneTraining},
		{tea.KeyPressMsg{Code: tea.KeyTab}, PaneAll},
		{tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}, PaneTraining},
	}
	for _, k := range keys {
		step(k.key)
		if m.pane != k.want {
			t.Errorf("after %q: pane %v, want %v", k.key.String(), m.pane, k.want)
		}
	}
	// Scrolling is bounded by what the pane holds: 3 GPUs fit at 30 lines.
	step(tea.KeyPressMsg{Code: '3', Text: "3"})
	step(tea.KeyPressMsg{Code: tea.KeyDown})
	step(tea.KeyPressMsg{Code: tea.KeyEnd})
	if m.offset != 0 {
		t.Errorf("offset = %d in a pane whose rows all fit", m.offset)
	}
	m.data = fleet()
	step(tea.KeyPressMsg{Code: tea.KeyEnd})
	if want := MaxOffset(m.Input(), 30); m.offset != want || want == 0 {
		t.Errorf("end: offset %d, want %d", m.offset, want)
	}
	step(tea.KeyPressMsg{Code: tea.KeyUp})
	step(tea.KeyPressMsg{Code: tea.KeyHome})
	step(tea.KeyPressMsg{Code: tea.KeyPgDown})
	if m.offset != 25 {
		t.Errorf("home then pgdown: offset %d, want 25", m.offset)
	}
	step(tea.KeyPressMsg{Code: tea.KeyTab})
	if m.offset != 0 {
		t.Errorf("a new pane keeps offset %d", m.offset)
	}

	cmd := step(tea.KeyPressMsg{Code: 'q', Text: "q"})
	if cmd == nil {
		t.Fatal("q returned no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Error("q does not quit")
	}
	v := m.View()
	if !v.AltScreen || v.Content == "" {
		t.Errorf("view: alt screen %v, %d bytes", v.AltScreen, len(v.Content))
	}
}
