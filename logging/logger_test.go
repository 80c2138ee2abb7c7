package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		env      string
		opts     []Option
		log      func(l *slog.Logger)
		contains []string
		absent   []string
	}{
		{"json with trace ids, info by default", "", nil, func(l *slog.Logger) {
			l.InfoContext(spanCtx(), "hello", "k", "v")
			l.Debug("hidden")
		}, []string{`"msg":"hello"`, `"k":"v"`, `"trace_id":"` + testTraceID + `"`, `"span_id":"` + testSpanID + `"`}, []string{"hidden"}},
		{"WithLevel", "", []Option{WithLevel(slog.LevelDebug)}, func(l *slog.Logger) {
			l.Debug("shown")
		}, []string{`"msg":"shown"`}, nil},
		{"LOG_LEVEL wins over WithLevel", "warn", []Option{WithLevel(slog.LevelDebug)}, func(l *slog.Logger) {
			l.Info("hidden")
			l.Warn("shown")
		}, []string{`"msg":"shown"`}, []string{"hidden"}},
		{"LOG_LEVEL invalid", "loud", nil, func(l *slog.Logger) {
			l.Info("shown")
		}, []string{`"msg":"shown"`, "logging: ignoring invalid level", "LOG_LEVEL"}, nil},
		{"console", "", []Option{WithConsole()}, func(l *slog.Logger) {
			l.InfoContext(spanCtx(), "hello", "k", "v")
		}, []string{"INF hello", "k=v", "trace_id=" + testTraceID}, []string{"\x1b[", `"msg"`}},
		{"bad Loki config", "", []Option{WithLoki(LokiConfig{URL: "ftp://x"})}, func(l *slog.Logger) {
			l.Info("still logs")
		}, []string{"logging: loki push disabled", "scheme must be http or https", `"msg":"still logs"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(LevelEnv, tt.env)
			var buf bytes.Buffer
			l := New(append([]Option{WithWriter(&buf)}, tt.opts...)...)
			tt.log(l)
			out := buf.String()
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestNewFansOutToLoki(t *testing.T) {
	t.Setenv(LevelEnv, "")
	f := newFakeLoki(t, nil)
	owned := testLokiConfig(f.srv.URL)
	owned.Labels = map[string]string{"service_name": "owned"}
	callers := testLokiConfig(f.srv.URL)
	callers.Labels = map[string]string{"service_name": "callers"}
	theirs := mustLoki(t, callers)

	var buf bytes.Buffer
	l := New(WithWriter(&buf), WithLoki(owned), WithHandler(theirs))
	l.With("req", 1).InfoContext(spanCtx(), "fan out")
	l.Debug("below level") // WithLoki's handler takes New's level

	if err := Close(context.Background(), l.With("x", 1)); err != nil {
		t.Fatal(err)
	}
	if err := Close(context.Background(), l); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if theirs.core.closed.Load() {
		t.Error("Close closed a handler the caller owns")
	}
	closeLoki(t, theirs)

	perStream := map[string][]gotEntry{}
	for _, p := range f.pushes() {
		for _, s := range p.streams {
			perStream[s.labels] = append(perStream[s.labels], s.entries...)
		}
	}
	for _, stream := range []string{`{service_name="owned"}`, `{service_name="callers"}`} {
		e := perStream[stream]
		if len(e) != 1 || !strings.Contains(e[0].line, `"msg":"fan out","req":1`) || e[0].meta[TraceIDKey] != testTraceID {
			t.Errorf("stream %s got %+v", stream, e)
		}
		if len(e) == 1 && strings.Contains(e[0].line, TraceIDKey) {
			t.Errorf("stream %s line carries the trace id, want it only as metadata: %s", stream, e[0].line)
		}
	}
	if !strings.Contains(buf.String(), `"trace_id":"`+testTraceID+`"`) || strings.Contains(buf.String(), "below level") {
		t.Errorf("stdout = %s", buf.String())
	}
	if err := Close(context.Background(), nil); err != nil {
		t.Errorf("Close(nil) = %v", err)
	}
	if err := Close(context.Background(), slog.New(slog.NewJSONHandler(&buf, nil))); err != nil {
		t.Errorf("Close of a logger without Close = %v", err)
	}
}
