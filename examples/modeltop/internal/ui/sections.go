package ui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

// sections builds the three sections of in at width.
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
