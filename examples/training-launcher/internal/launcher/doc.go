// Package launcher supervises a trainer process for the training-launcher
// example: it starts the trainer, feeds its stdout to training.Ingest, restarts
// it with exponential backoff when it fails, forwards SIGTERM and SIGINT so it
// can checkpoint, and traces the run with a span per attempt and per
// checkpoint.
//
// # Goodput
//
// The launcher tells Config.Metrics what only a supervisor knows: when it
// restarts a failed trainer it calls ObserveCrash (after the trainer's last
// lines are read), so the time until the first step of the next attempt is
// restart badput; when Run returns it calls EndRun, so the time the process
// lingers afterwards is not counted, and logs the run's goodput breakdown
// ("run goodput"). The trainer's resume events and step numbers tell
// training.Ingest which steps were run again.
//
// # Process handling
//
// The trainer runs in a process group of its own with PYTHONUNBUFFERED=1 and
// MODELTEL_RESTART_COUNT set. Its stderr goes to Config.Stderr unchanged; its
// stdout is parsed, and lines that are not training records are logged. A
// signal from Config.Signals (or a cancelled context, as SIGTERM) is forwarded
// to the group and the launcher stops restarting; after Config.Grace the group
// is killed. Run returns the trainer's last exit status (128+signal when a
// signal ended it).
//
// When the trainer exits, crashed or not, whatever it left running in its
// group (torchrun's workers, a shell's background job) is stopped before Run
// returns or restarts it: SIGTERM, then SIGKILL after Config.OrphanGrace. So
// nothing holds the GPU or the trainer's pipes, and a restart never runs next
// to the previous attempt's workers. The trainer's stdout and stderr are
// pipes the launcher reads itself, for at most Config.Drain after the exit: a
// process that escaped the group (setsid) and keeps them open cannot hold the
// launcher up. Without process groups (not unix) only the trainer is stopped.
//
// # Example
//
//	sigs := make(chan os.Signal, 1)
//	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
//	m := training.NewMetrics(training.WithRun("demo"))
//	l := launcher.New(launcher.Config{
//		Command:     []string{"python3", "trainer.py", "--steps", "100"},
//		MaxRestarts: 3,
//		Backoff:     time.Second,
//		Metrics:     m,
//		Logger:      slog.Default(),
//		Signals:     sigs,
//	}, prometheus.Labels{"run": "demo"})
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(m, l)
//	code, err := l.Run(context.Background())
//	if err != nil {
//		log.Print(err)
//	}
//	os.Exit(code)
package launcher
