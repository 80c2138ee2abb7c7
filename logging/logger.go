package logging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/lmittmann/tint"
)

// LevelEnv is the environment variable New reads the minimum level from:
// debug, info, warn or error (any case), optionally with an offset such as
// "info+2", as slog.Level.UnmarshalText parses it. It wins over WithLevel.
const LevelEnv = "LOG_LEVEL"

// Option configures New. Options are applied once, in order.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	console  bool
	level    slog.Level
	writer   io.Writer
	loki     *LokiConfig
	handlers []slog.Handler
}

// WithConsole writes human-readable coloured lines (github.com/lmittmann/tint)
// instead of JSON; colour is left out when the writer is not a terminal.
func WithConsole() Option { return optionFunc(func(c *config) { c.console = true }) }

// WithLevel sets the minimum level of the stdout (or WithWriter) handler and of
// the Loki handler made by WithLoki (unless its config sets one). The default
// is slog.LevelInfo. LOG_LEVEL overrides it.
func WithLevel(l slog.Level) Option { return optionFunc(func(c *config) { c.level = l }) }

// WithWriter writes the JSON (or console) lines to w instead of os.Stdout. A
// nil w is ignored. w must be safe for concurrent writes if shared elsewhere.
func WithWriter(w io.Writer) Option {
	return optionFunc(func(c *config) {
		if w != nil {
			c.writer = w
		}
	})
}

// WithLoki also pushes every record to Loki through a *Loki that New builds
// from cfg and owns: close it with Close(ctx, logger). To register its
// Prometheus metrics, or to handle a bad config as an error, build the *Loki
// with NewLoki yourself and pass it with WithHandler instead. When cfg is
// invalid, New logs the error once and goes on without Loki.
func WithLoki(cfg LokiConfig) Option {
	return optionFunc(func(c *config) { c.loki = &cfg })
}

// WithHandler also sends every record to h (a *Loki the caller built and
// owns, say). h receives the records as logged, without the trace ids that
// the stdout handler adds; it is not closed by Close. A nil h is ignored.
func WithHandler(h slog.Handler) Option {
	return optionFunc(func(c *config) {
		if h != nil {
			c.handlers = append(c.handlers, h)
		}
	})
}

// New returns a logger that writes JSON lines with trace_id and span_id (see
// NewHandler) to stdout, at level info or above, and fans each record out to
// the Loki handler of WithLoki and the handlers of WithHandler. It sets no
// global; pass the result to slog.SetDefault if you want one. The logger's
// handler implements Close(context.Context) error, which flushes and stops the
// Loki handler made by WithLoki (see Close). Safe for concurrent use.
func New(opts ...Option) *slog.Logger {
	cfg := config{level: slog.LevelInfo, writer: os.Stdout}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	var levelErr error
	if v := strings.TrimSpace(os.Getenv(LevelEnv)); v != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			levelErr = fmt.Errorf("logging: %s=%q: %w", LevelEnv, v, err)
		} else {
			cfg.level = l
		}
	}

	var primary slog.Handler
	if cfg.console {
		primary = tint.NewTextHandler(cfg.writer, &tint.Options{Level: cfg.level, NoColor: !isTerminal(cfg.writer)})
	} else {
		primary = slog.NewJSONHandler(cfg.writer, &slog.HandlerOptions{Level: cfg.level})
	}
	handlers := []slog.Handler{NewHandler(primary)}
	var owned []*Loki
	var lokiErr error
	if cfg.loki != nil {
		lc := *cfg.loki
		if lc.Level == nil {
			lc.Level = cfg.level
		}
		if l, err := NewLoki(lc); err != nil {
			lokiErr = err
		} else {
			handlers = append(handlers, l)
			owned = append(owned, l)
		}
	}
	handlers = append(handlers, cfg.handlers...)
	logger := slog.New(&fanout{Handler: slog.NewMultiHandler(handlers...), owned: owned})
	if levelErr != nil {
		logger.Warn("logging: ignoring invalid level", "error", levelErr.Error())
	}
	if lokiErr != nil {
		logger.Error("logging: loki push disabled", "error", lokiErr.Error())
	}
	return logger
}

// Close flushes and stops the handlers that New built for l (the Loki handler
// of WithLoki), within ctx. It returns nil for a nil logger or one whose
// handler has no Close method, and is safe to call more than once.
func Close(ctx context.Context, l *slog.Logger) error {
	if l == nil {
		return nil
	}
	if c, ok := l.Handler().(interface{ Close(context.Context) error }); ok {
		return c.Close(ctx)
	}
	return nil
}

func defaultHandler() slog.Handler { return slog.NewJSONHandler(os.Stdout, nil) }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// fanout is slog.MultiHandler (every record to every handler enabled for
// it) with the Loki handlers New built, which Close closes.
type fanout struct {
	slog.Handler         // a *slog.MultiHandler or what its WithAttrs/WithGroup return
	owned        []*Loki // shared by the WithAttrs/WithGroup copies
}

func (f *fanout) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return f
	}
	return &fanout{Handler: f.Handler.WithAttrs(as), owned: f.owned}
}

func (f *fanout) WithGroup(name string) slog.Handler {
	if name == "" {
		return f
	}
	return &fanout{Handler: f.Handler.WithGroup(name), owned: f.owned}
}

// Close closes the Loki handlers New built.
func (f *fanout) Close(ctx context.Context) error {
	var errs []error
	for _, l := range f.owned {
		if err := l.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
