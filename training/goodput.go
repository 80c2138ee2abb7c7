package training

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Badput reasons, the values of the reason label of
// training_badput_seconds_total: what the wall time of a run that was not
// productive step time went into.
const (
	// BadputStartup is the time from the start of the run (NewMetrics) to
	// its first step: process start, model load, compilation.
	BadputStartup = "startup"
	// BadputDataWait is time spent waiting for the data loader
	// (ObserveDataWait, the data_wait field of a trainer line).
	BadputDataWait = "data_wait"
	// BadputCheckpoint is time spent saving checkpoints (ObserveCheckpoint)
	// and restoring them (ObserveResume).
	BadputCheckpoint = "checkpoint"
	// BadputRestart is the time from a crash (ObserveCrash) to the first step
	// after it: backoff, process start, checkpoint load.
	BadputRestart = "restart"
	// BadputRecompute is the step time of steps run again after a resume from
	// a checkpoint older than the last step completed: the progress the crash
	// lost, paid for a second time.
	BadputRecompute = "recompute"
	// BadputOther is the rest of the wall time between the intervals above:
	// time between steps that nothing reported (logging, evaluation, a
	// data wait the trainer did not report), and the part of a step a crash
	// cut short.
	BadputOther = "other"
)

// Indexes of ledger.bad.
const (
	badStartup = iota
	badDataWait
	badCheckpoint
	badRestart
	badRecompute
	badOther
	numBadput
)

var badputNames = [numBadput]string{BadputStartup, BadputDataWait, BadputCheckpoint, BadputRestart, BadputRecompute, BadputOther}

// Goodput is a run's wall time split into productive step time and badput by
// reason, as Metrics.Goodput returns it. Productive, the six badput fields
// and Pending add up to Wall.
type Goodput struct {
	// Wall is the time since the run started (NewMetrics), up to now or to
	// EndRun.
	Wall time.Duration
	// Productive is the step time of steps that advanced the run: each step
	// number counts once.
	Productive time.Duration
	// Badput by reason; see the Badput* constants.
	Startup, DataWait, Checkpoint, Restart, Recompute, Other time.Duration
	// Pending is the time since the last interval recorded (a step, a data
	// wait, a checkpoint), not yet attributed: the step in progress. It is 0
	// after EndRun.
	Pending time.Duration
	// RecomputedSteps is the number of steps run again after resuming from
	// an older checkpoint (training_recomputed_steps_total).
	RecomputedSteps int64
}

// Ratio is Productive / Wall (training_goodput_ratio), 0 while Wall is 0.
func (g Goodput) Ratio() float64 {
	if g.Wall <= 0 {
		return 0
	}
	return min(max(float64(g.Productive)/float64(g.Wall), 0), 1)
}

// Badput is the sum of the badput of every reason.
func (g Goodput) Badput() time.Duration {
	return g.Startup + g.DataWait + g.Checkpoint + g.Restart + g.Recompute + g.Other
}

// Windows: what the time until the next step is counted as, when it is no
// other interval.
const (
	windowNone    = iota // between steps: other
	windowStartup        // before the first step: startup
	windowRestart        // after a crash, before the first step after it: restart
)

// ledger splits the run's timeline into productive and badput time. Every
// interval reported ([end-d, end]) is counted from the cursor, the end of the
// time already counted, so that the parts never overlap and always add up to
// cursor - start; the time between the cursor and the start of the next
// interval (a gap) goes to the open window's reason. Intervals that overlap
// time already counted (two ranks sharing one Metrics, a data wait that ran
// during a step) are counted once, first come.
type ledger struct {
	mu         sync.Mutex
	start      time.Time
	cursor     time.Time
	end        time.Time
	ended      bool
	window     int8
	good       time.Duration
	bad        [numBadput]time.Duration
	recomputed int64
	// cur is the number of the last step recorded (the next one without a
	// number is cur+1); high is the highest step number completed, -1 before
	// any. Steps up to high that run again are recomputed.
	cur, high int64

	goodDesc, badDesc, ratioDesc, recompDesc *prometheus.Desc
}

func (g *ledger) init(now time.Time, cl prometheus.Labels) {
	g.start, g.cursor = now, now
	g.window = windowStartup
	g.high = -1
	g.goodDesc = prometheus.NewDesc("training_goodput_seconds_total",
		"Productive step time: steps that advanced the run, each step number counted once.", nil, cl)
	g.badDesc = prometheus.NewDesc("training_badput_seconds_total",
		"Wall time of the run that was not productive step time, by reason.", []string{"reason"}, cl)
	g.ratioDesc = prometheus.NewDesc("training_goodput_ratio",
		"Productive step time over the wall time since the run started.", nil, cl)
	g.recompDesc = prometheus.NewDesc("training_recomputed_steps_total",
		"Steps run again after resuming from a checkpoint older than the last step completed.", nil, cl)
}

func (g *ledger) describe(ch chan<- *prometheus.Desc) {
	ch <- g.goodDesc
	ch <- g.badDesc
	ch <- g.ratioDesc
	ch <- g.recompDesc
}

func (g *ledger) collect(ch chan<- prometheus.Metric, now time.Time) {
	s := g.snapshot(now)
	send := func(desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(desc, t, v, labels...); err == nil {
			ch <- m
		}
	}
	send(g.goodDesc, prometheus.CounterValue, s.Productive.Seconds())
	for i, d := range [numBadput]time.Duration{s.Startup, s.DataWait, s.Checkpoint, s.Restart, s.Recompute, s.Other} {
		send(g.badDesc, prometheus.CounterValue, d.Seconds(), badputNames[i])
	}
	send(g.ratioDesc, prometheus.GaugeValue, s.Ratio())
	send(g.recompDesc, prometheus.CounterValue, float64(s.RecomputedSteps))
}

// snapshot returns the books at now. While a startup or restart window is
// open, the time up to now is counted (as that window's reason) first, so
// that a run that takes long to start, or crashes again and again, shows its
// badput as it happens rather than at its next step.
func (g *ledger) snapshot(now time.Time) Goodput {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.ended && g.window != windowNone {
		g.advance(now, now)
	}
	until := now
	if g.ended {
		until = g.end
	}
	s := Goodput{
		Wall:       max(until.Sub(g.start), 0),
		Productive: g.good,
		Startup:    g.bad[badStartup], DataWait: g.bad[badDataWait], Checkpoint: g.bad[badCheckpoint],
		Restart: g.bad[badRestart], Recompute: g.bad[badRecompute], Other: g.bad[badOther],
		RecomputedSteps: g.recomputed,
	}
	s.Pending = max(s.Wall-s.Productive-s.Badput(), 0)
	return s
}

// advance counts the interval [start, end] from the cursor: the gap before
// start goes to the open window's reason, and it returns the part of the
// interval after the cursor, which the caller counts. The cursor moves to
// end. The caller holds mu.
func (g *ledger) advance(start, end time.Time) time.Duration {
	if gap := start.Sub(g.cursor); gap > 0 {
		r := badOther
		switch g.window {
		case windowStartup:
			r = badStartup
		case windowRestart:
			r = badRestart
		}
		g.bad[r] += gap
		g.cursor = start
	}
	d := end.Sub(g.cursor)
	if d <= 0 {
		return 0
	}
	g.cursor = end
	return d
}

// interval counts [end-d, end] as badput of reason r.
func (g *ledger) interval(r int, end time.Time, d time.Duration) {
	g.mu.Lock()
	if !g.ended {
		g.bad[r] += g.advance(end.Add(-max(d, 0)), end)
	}
	g.mu.Unlock()
}

// step counts k steps that ended at end and took span together, preceded by
// a data wait of wait (0: none reported with them). The wait ran before the
// span, or, when waitInside, during its first part (a step time derived from
// the arrival of lines includes the wait). num is the number of the last of
// the k steps; without it (hasNum false) they follow the last step recorded.
// Steps whose number is at most the highest completed are recomputed; the
// rest are productive. The first step closes a startup or restart window.
func (g *ledger) step(end time.Time, span, wait time.Duration, waitInside bool, k, num int64, hasNum bool) {
	if k <= 0 {
		return
	}
	span, wait = max(span, 0), max(wait, 0)
	g.mu.Lock()
	defer g.mu.Unlock()
	if !hasNum {
		num = g.cur + k
	}
	first := num - k // the steps are first+1 .. num
	redo := min(max(g.high-first, 0), k)
	g.recomputed += redo
	g.cur, g.high = num, max(g.high, num)
	if g.ended {
		return
	}
	stepStart := end.Add(-span)
	if wait > 0 {
		waitStart, waitEnd := stepStart.Add(-wait), stepStart
		if waitInside {
			wait = min(wait, span)
			waitStart, waitEnd = stepStart, stepStart.Add(wait)
			stepStart = waitEnd
		}
		g.bad[badDataWait] += g.advance(waitStart, waitEnd)
	}
	d := g.advance(stepStart, end)
	g.window = windowNone
	if redo == 0 || d == 0 {
		g.good += d
		return
	}
	r := d
	if redo < k {
		r = time.Duration(float64(d) * float64(redo) / float64(k))
	}
	g.bad[badRecompute] += r
	g.good += d - r
}

// resume records a resume from the checkpoint of step step, whose restore
// ended at end and took d.
func (g *ledger) resume(end time.Time, step int64, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur, g.high = step, max(g.high, step)
	if !g.ended && d > 0 {
		g.bad[badCheckpoint] += g.advance(end.Add(-d), end)
	}
}

// crash counts the time up to now (as other, or restart in a crash loop) and
// opens a restart window.
func (g *ledger) crash(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		return
	}
	g.advance(now, now)
	g.window = windowRestart
}

func (g *ledger) endRun(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		return
	}
	g.advance(now, now)
	g.ended, g.end = true, now
	if g.end.Before(g.cursor) {
		g.end = g.cursor
	}
}

// ObserveCrash records that training stopped without finishing, now: the
// trainer crashed, its node went away, or it was killed and will be
// restarted. The time from now to the start of the first step after it is
// counted as restart badput (training_badput_seconds_total{reason="restart"}),
// as it happens: a run that crashes again and again before a step shows it at
// every scrape. The time between the last step and the crash is other badput.
// A launcher calls it when its trainer exits with an error and is restarted.
// It does nothing on a nil *Metrics or after EndRun.
func (m *Metrics) ObserveCrash() {
	if m == nil {
		return
	}
	m.gp.crash(m.now())
}

// ObserveResume records that training resumed from a checkpoint of step step
// (the last step the checkpoint holds: the next step is step+1), whose
// restore took d (0 when unknown; counted as checkpoint badput). The steps
// after it, up to the highest step completed before, are recomputed: their
// step time counts as recompute badput, not as goodput, and
// training_recomputed_steps_total counts them. Steps recorded without a
// number (Step.End, ObserveStep) continue from step+1. A negative step, or
// one above MaxCount, is ignored; a negative d is taken as 0. It does nothing
// on a nil *Metrics.
//
// A trainer that prints its steps does not need it to detect recomputation:
// Ingest takes a step number lower than one already recorded as a resume
// from just before it. The resume also tells where the run went on from when
// the trainer prints steps only every so often.
func (m *Metrics) ObserveResume(step int64, d time.Duration) {
	if m == nil || step < 0 || step > MaxCount {
		return
	}
	m.gp.resume(m.now(), step, d)
}

// EndRun ends the run's wall-time accounting now: the time since the last
// interval recorded is counted (as other badput, or startup or restart when
// no step came since the start or the last crash), and training_goodput_ratio
// no longer falls with time, so that a process that keeps serving its metrics
// after the run (a launcher lingering for the last scrape) does not report
// its idle time as badput. Steps and intervals recorded after it still count
// in the other metrics but not in goodput. Later calls do nothing; so do
// calls on a nil *Metrics.
func (m *Metrics) EndRun() {
	if m == nil {
		return
	}
	m.gp.endRun(m.now())
}

// Goodput returns the run's wall time split into productive step time and
// badput by reason, as training_goodput_seconds_total,
// training_badput_seconds_total and training_goodput_ratio export it. A nil
// *Metrics returns the zero Goodput.
func (m *Metrics) Goodput() Goodput {
	if m == nil {
		return Goodput{}
	}
	return m.gp.snapshot(m.now())
}

// stepCount converts the step count of an observation (a float64 holding an
// integer up to MaxCount) to an int64.
func stepCount(f float64) int64 {
	if !(f > 0) {
		return 0
	}
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(f)
}
