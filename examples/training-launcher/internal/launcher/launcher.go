package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/promlist"
	"github.com/modeltel/modeltel/training"
)

// TracerName is the instrumentation scope of the launcher's spans.
const TracerName = "github.com/modeltel/modeltel/examples/training-launcher"

// RestartCountEnv is the environment variable that tells the trainer how many
// times it has been restarted (torchelastic's TORCHELASTIC_RESTART_COUNT).
const RestartCountEnv = "MODELTEL_RESTART_COUNT"

// Config configures a Launcher. Command is required; the zero values of the
// other fields are the defaults given on each.
type Config struct {
	Command     []string      // the trainer and its arguments
	Env         []string      // added to the launcher's environment
	MaxRestarts int           // restarts after failures in a row (see HealthyAfter); negative: 0
	Backoff     time.Duration // first wait before a restart, doubled each time; 0: 1s
	MaxBackoff  time.Duration // 0: 1m
	Grace       time.Duration // after a forwarded signal, before SIGKILL; 0: 30s
	Drain       time.Duration // after exit, for the rest of the trainer's stdout; 0: 2s
	// OrphanGrace: after the trainer exits, how long what it left running in
	// its process group (workers, a shell's background job) has to exit on
	// SIGTERM before SIGKILL. 0: 5s.
	OrphanGrace time.Duration
	// HealthyAfter: a failed attempt that ran at least this long was a healthy
	// run, not a crash loop; the failure count and the backoff start over, so
	// MaxRestarts limits failures in a row. 0: 10m; negative: never.
	HealthyAfter time.Duration

	Metrics        *training.Metrics    // nil: no training metrics
	Logger         *slog.Logger         // nil: discard
	TracerProvider trace.TracerProvider // nil: otel.GetTracerProvider()
	Stderr         io.Writer            // the trainer's stderr; nil: os.Stderr
	Signals        <-chan os.Signal     // signals to forward; nil: none
	Attributes     []attribute.KeyValue // on the run span (run, job...)
}

// Launcher supervises one trainer. It is a prometheus.Collector for its own
// metrics (training_launcher_*). Run must be called once; the other methods
// are safe for concurrent use.
type Launcher struct {
	cfg      Config
	tracer   trace.Tracer
	log      *slog.Logger
	restarts prometheus.Counter
	running  prometheus.Gauge
	lastExit prometheus.Gauge
	metrics  promlist.Collectors // the three above: what Describe and Collect send
	state    atomic.Value        // string
	stopping atomic.Bool
}

// New returns a Launcher for cfg; constLabels are put on its metrics.
func New(cfg Config, constLabels prometheus.Labels) *Launcher {
	if cfg.MaxRestarts < 0 {
		cfg.MaxRestarts = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 2 * time.Second
	}
	if cfg.OrphanGrace <= 0 {
		cfg.OrphanGrace = 5 * time.Second
	}
	if cfg.HealthyAfter == 0 {
		cfg.HealthyAfter = 10 * time.Minute
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Launcher{
		cfg:    cfg,
		tracer: tp.Tracer(TracerName),
		log:    log,
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "training_launcher_restarts_total",
			Help: "Times the launcher restarted the trainer after a failure.", ConstLabels: constLabels}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "training_launcher_trainer_running",
			Help: "1 while the trainer process runs, 0 otherwise.", ConstLabels: constLabels}),
		lastExit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "training_launcher_last_exit_code",
			Help: "Exit code of the last trainer process (128+signal when killed by a signal).", ConstLabels: constLabels}),
	}
	l.metrics = promlist.Collectors{l.restarts, l.running, l.lastExit}
	l.state.Store("starting")
	return l
}

// Describe implements prometheus.Collector.
func (l *Launcher) Describe(ch chan<- *prometheus.Desc) { l.metrics.Describe(ch) }

// Collect implements prometheus.Collector.
func (l *Launcher) Collect(ch chan<- prometheus.Metric) { l.metrics.Collect(ch) }

// State is what the launcher is doing: starting, running, backoff, stopping
// or exited.
func (l *Launcher) State() string { return l.state.Load().(string) }

// Stopped reports whether Run was told to stop, by a signal from
// Config.Signals or a cancelled context, rather than the trainer ending on its
// own.
func (l *Launcher) Stopped() bool { return l.stopping.Load() }

// Run starts the trainer and supervises it until it exits with status 0, fails
// more than MaxRestarts times in a row (an attempt that ran HealthyAfter ends
// a row), or exits after a forwarded signal. It returns
// the trainer's last exit code. A cancelled ctx is handled like SIGTERM. The
// error is non-nil only when the trainer could not be started at all.
func (l *Launcher) Run(ctx context.Context) (int, error) {
	if len(l.cfg.Command) == 0 {
		return 1, errors.New("launcher: no trainer command")
	}
	ctx, span := l.tracer.Start(ctx, "training.run", trace.WithAttributes(l.cfg.Attributes...),
		trace.WithAttributes(attribute.StringSlice("process.command_args", l.cfg.Command)))
	defer span.End()
	defer l.state.Store("exited")
	defer l.endRun(ctx)

	backoff := l.cfg.Backoff
	failures := 0 // in a row: attempts that failed before HealthyAfter
	for attempt := 0; ; attempt++ {
		started := time.Now()
		code, err := l.runOnce(ctx, attempt)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "trainer did not start")
			l.log.ErrorContext(ctx, "trainer did not start", "err", err)
			return startFailureCode(err), err
		}
		span.SetAttributes(attribute.Int("training.exit_code", code), attribute.Int("training.restarts", attempt))
		switch {
		case code == 0:
			l.log.InfoContext(ctx, "trainer finished", "attempt", attempt)
			return 0, nil
		case l.stopping.Load():
			l.log.InfoContext(ctx, "trainer stopped after a signal", "exit_code", code)
			return code, nil
		}
		if l.cfg.HealthyAfter > 0 && time.Since(started) >= l.cfg.HealthyAfter && failures > 0 {
			l.log.InfoContext(ctx, "trainer ran healthy before failing, restart count starts over",
				"ran", time.Since(started).Round(time.Second).String(), "failures_before", failures)
			failures, backoff = 0, l.cfg.Backoff
		}
		if failures >= l.cfg.MaxRestarts {
			span.SetStatus(codes.Error, "trainer failed, restarts exhausted")
			l.log.ErrorContext(ctx, "trainer failed, not restarting", "exit_code", code, "restarts", attempt, "max_restarts", l.cfg.MaxRestarts)
			return code, nil
		}
		failures++
		// From here to the first step of the next attempt is restart
		// badput; the trainer's last lines have been read by now.
		l.cfg.Metrics.ObserveCrash()
		l.state.Store("backoff")
		l.log.WarnContext(ctx, "trainer failed, restarting", "exit_code", code, "attempt", attempt, "backoff", backoff.String())
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case sig := <-l.cfg.Signals:
			timer.Stop()
			l.stopping.Store(true)
			l.log.InfoContext(ctx, "signal during backoff, not restarting", "signal", sig.String())
			return code, nil
		case <-ctx.Done():
			timer.Stop()
			l.stopping.Store(true)
			return code, nil
		}
		l.restarts.Inc()
		backoff = min(2*backoff, l.cfg.MaxBackoff)
	}
}

func startFailureCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return 127
	}
	return 1
}

// runOnce runs the trainer once and returns its exit code.
func (l *Launcher) runOnce(ctx context.Context, attempt int) (int, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 1, fmt.Errorf("launcher: pipe: %w", err)
	}
	defer pr.Close()
	cmd := exec.Command(l.cfg.Command[0], l.cfg.Command[1:]...)
	cmd.Stdout = pw
	// The trainer's stdout and stderr are files, so that cmd.Wait returns
	// when the trainer exits, not when the last process holding them (a
	// child it left behind) does: exec copies to any other writer in a
	// goroutine Wait waits for. An io.Writer Stderr gets a pipe the launcher
	// copies from, bounded by Drain like stdout.
	var er *os.File
	stderrDone := make(chan struct{})
	if f, ok := l.cfg.Stderr.(*os.File); ok {
		cmd.Stderr = f
		close(stderrDone)
	} else {
		var ew *os.File
		if er, ew, err = os.Pipe(); err != nil {
			pw.Close()
			return 1, fmt.Errorf("launcher: pipe: %w", err)
		}
		defer er.Close()
		cmd.Stderr = ew
	}
	cmd.Env = append(append(os.Environ(), "PYTHONUNBUFFERED=1", RestartCountEnv+"="+strconv.Itoa(attempt)), l.cfg.Env...)
	cmd.WaitDelay = l.cfg.Drain // a backstop: exec has no I/O of its own to wait for
	setProcessGroup(cmd)
	err = cmd.Start()
	pw.Close() // the trainer holds the write ends now
	if er != nil {
		cmd.Stderr.(*os.File).Close()
	}
	if err != nil {
		return 1, fmt.Errorf("launcher: start %s: %w", l.cfg.Command[0], err)
	}
	if er != nil {
		go func() {
			defer close(stderrDone)
			_, _ = io.Copy(l.cfg.Stderr, er)
		}()
	}

	ctx, span := l.tracer.Start(ctx, "training.attempt", trace.WithAttributes(
		attribute.Int("training.attempt", attempt), attribute.Int("process.pid", cmd.Process.Pid)))
	defer span.End()
	l.running.Set(1)
	defer l.running.Set(0)
	if !l.stopping.Load() {
		l.state.Store("running")
	}
	l.log.InfoContext(ctx, "trainer started", "pid", cmd.Process.Pid, "attempt", attempt)

	// Ingest goes on after ctx is cancelled (that only stops the trainer),
	// until the trainer's last line, so the checkpoint it writes is recorded.
	ingestCtx, cancelIngest := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelIngest()
	ingestDone := make(chan error, 1)
	go func() {
		ingestDone <- training.Ingest(ingestCtx, pr, l.cfg.Metrics,
			training.WithTextLine(func(line string) { l.log.InfoContext(ctx, "trainer output", "line", line) }),
			training.WithEvent(func(ev training.Event) { l.event(ctx, ev) }),
			training.WithErrorHandler(func(e *training.LineError) {
				l.log.WarnContext(ctx, "trainer output not understood", "line_number", e.Line, "reason", e.Reason, "field", e.Field, "err", e.Err)
			}))
	}()
	// The trainer's exit is waited for without reaping it where the system
	// allows (Linux): until cmd.Wait below, its pid, the id of its process
	// group, stays taken, so no signal to the group (forwarded, or to stop
	// its leftovers) can reach an unrelated process given that number.
	exited := make(chan struct{})
	var waitErr error
	reaped := false
	go func() {
		defer close(exited)
		if !waitExited(cmd.Process.Pid) {
			waitErr, reaped = cmd.Wait(), true
		}
	}()

	var kill <-chan time.Time
	forward := func(sig os.Signal) {
		l.stopping.Store(true)
		l.state.Store("stopping")
		l.log.InfoContext(ctx, "forwarding signal to trainer", "signal", sig.String(), "pid", cmd.Process.Pid)
		span.AddEvent("signal", trace.WithAttributes(attribute.String("signal", sig.String())))
		signalProcess(cmd.Process, sig)
		if kill == nil {
			kill = time.After(l.cfg.Grace)
		}
	}
	done := ctx.Done()
wait:
	for {
		select {
		case sig := <-l.cfg.Signals:
			forward(sig)
		case <-done:
			done = nil
			forward(syscall.SIGTERM)
		case <-kill:
			l.log.WarnContext(ctx, "trainer did not exit in time, killing it", "grace", l.cfg.Grace.String())
			killProcess(cmd.Process)
		case <-exited:
			break wait
		}
	}
	// The trainer has exited: stop what it left running, so that nothing
	// holds the GPU (or its pipes) and a restart starts clean.
	l.stopLeftovers(ctx, span, cmd.Process.Pid)
	if !reaped {
		waitErr = cmd.Wait()
	}
	// Read what it printed last, unless something that escaped its process
	// group (setsid) keeps a pipe open.
	drain := time.NewTimer(l.cfg.Drain)
	for ingestDone != nil || stderrDone != nil {
		select {
		case <-ingestDone:
			ingestDone = nil
		case <-stderrDone:
			stderrDone = nil
		case <-drain.C:
			l.log.WarnContext(ctx, "trainer's output still open after it exited, no longer reading it", "drain", l.cfg.Drain.String())
			cancelIngest()
			pr.Close()
			if er != nil {
				er.Close()
			}
			if ingestDone != nil {
				<-ingestDone
			}
			if stderrDone != nil {
				<-stderrDone
			}
			ingestDone, stderrDone = nil, nil
		}
	}
	drain.Stop()

	code := exitCode(cmd.ProcessState)
	l.lastExit.Set(float64(code))
	span.SetAttributes(attribute.Int("process.exit.code", code))
	if code != 0 {
		span.SetStatus(codes.Error, "trainer exited with status "+strconv.Itoa(code))
	}
	level := slog.LevelInfo
	if code != 0 {
		level = slog.LevelWarn
	}
	l.log.Log(ctx, level, "trainer exited", "pid", cmd.Process.Pid, "exit_code", code, "wait", errString(waitErr))
	return code, nil
}

// stopLeftovers ends the processes the trainer (the leader of process group
// pgid) left running when it exited: torchrun's workers after torchrun
// crashed, a shell's background job. SIGTERM first, so they can clean up;
// SIGKILL for those still running OrphanGrace later. It returns when none
// runs, or after another OrphanGrace for those SIGKILL did not end (a process
// stuck in the kernel), which it logs. Where process groups do not exist it
// does nothing.
func (l *Launcher) stopLeftovers(ctx context.Context, span trace.Span, pgid int) {
	if !groupRunning(pgid) {
		return
	}
	l.log.WarnContext(ctx, "trainer exited and left processes behind, stopping them",
		"pgid", pgid, "grace", l.cfg.OrphanGrace.String())
	span.AddEvent("stop leftover processes", trace.WithAttributes(attribute.Int("process.group.id", pgid)))
	signalGroup(pgid, syscall.SIGTERM)
	if waitGroupGone(pgid, l.cfg.OrphanGrace) {
		return
	}
	l.log.WarnContext(ctx, "processes the trainer left behind did not exit on SIGTERM, killing them", "pgid", pgid)
	signalGroup(pgid, syscall.SIGKILL)
	if !waitGroupGone(pgid, l.cfg.OrphanGrace) {
		l.log.ErrorContext(ctx, "processes the trainer left behind survived SIGKILL", "pgid", pgid)
	}
}

// waitGroupGone polls until no process of group pgid runs, for at most d.
func waitGroupGone(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for groupRunning(pgid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// endRun closes the run's goodput accounting and logs its breakdown.
func (l *Launcher) endRun(ctx context.Context) {
	m := l.cfg.Metrics
	if m == nil {
		return
	}
	m.EndRun()
	g := m.Goodput()
	l.log.InfoContext(ctx, "run goodput", "goodput_ratio", g.Ratio(), "wall", g.Wall.String(), "productive", g.Productive.String(),
		"startup", g.Startup.String(), "data_wait", g.DataWait.String(), "checkpoint", g.Checkpoint.String(),
		"restart", g.Restart.String(), "recompute", g.Recompute.String(), "other", g.Other.String(),
		"recomputed_steps", g.RecomputedSteps)
}

// event handles an event line of the trainer: a checkpoint becomes a span
// that ends now and started its duration ago; a resume, an event on the
// attempt's span.
func (l *Launcher) event(ctx context.Context, ev training.Event) {
	if ev.Name == "resume" {
		trace.SpanFromContext(ctx).AddEvent("resume", trace.WithAttributes(attribute.Int64("training.step", ev.Step)))
		l.log.InfoContext(ctx, "trainer resumed from a checkpoint", "step", ev.Step, "restore", ev.Duration.String())
		return
	}
	if ev.Name != "checkpoint" {
		l.log.InfoContext(ctx, "trainer event", "event", ev.Name, "step", ev.Step, "line_number", ev.Line)
		return
	}
	end := time.Now()
	_, span := l.tracer.Start(ctx, "training.checkpoint", trace.WithTimestamp(end.Add(-ev.Duration)),
		trace.WithAttributes(attribute.Int64("training.step", ev.Step), attribute.Int64("training.checkpoint.bytes", ev.Bytes)))
	span.End(trace.WithTimestamp(end))
	l.log.InfoContext(ctx, "checkpoint", "step", ev.Step, "duration", ev.Duration.String(), "bytes", ev.Bytes)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
