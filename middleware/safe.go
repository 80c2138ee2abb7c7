package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/modeltel/modeltel/internal/ratelimit"
)

// guardFuncs wraps the funcs the user gives for telemetry (WithModel,
// WithOperation, WithRoute, WithFilter, WithGRPCModel, WithGRPCOperation) so
// that a panic in one never fails the request it observes, nor leaves the
// active-requests gauge or a span behind: the call gives its fallback (no
// model, the default operation, the mux pattern, instrumented) and the panic
// is reported, at most once a minute, on the logger (WithLogger) or else to
// OpenTelemetry's error handler.
func (c *config) guardFuncs() {
	p := &panicReporter{logger: c.logger}
	if f := c.model; f != nil {
		c.model = func(r *http.Request) (s string) {
			defer p.recover("WithModel", func() { s = "" })
			return f(r)
		}
	}
	if f := c.operation; f != nil {
		c.operation = func(r *http.Request) (s string) {
			defer p.recover("WithOperation", func() { s = "" })
			return f(r)
		}
	}
	if f := c.route; f != nil {
		c.route = func(r *http.Request) (s string) {
			defer p.recover("WithRoute", func() { s = patternPath(r.Pattern) })
			return f(r)
		}
	}
	if f := c.filter; f != nil {
		c.filter = func(r *http.Request) (ok bool) {
			defer p.recover("WithFilter", func() { ok = true })
			return f(r)
		}
	}
	if f := c.grpcModel; f != nil {
		c.grpcModel = func(ctx context.Context, fullMethod string, req any) (s string) {
			defer p.recover("WithGRPCModel", func() { s = "" })
			return f(ctx, fullMethod, req)
		}
	}
	if f := c.grpcOp; f != nil {
		c.grpcOp = func(ctx context.Context, fullMethod string) (s string) {
			defer p.recover("WithGRPCOperation", func() { s = "" })
			return f(ctx, fullMethod)
		}
	}
}

// panicWarnEvery is how often a panicking telemetry func is reported.
const panicWarnEvery = time.Minute

type panicReporter struct {
	logger *slog.Logger
	gate   ratelimit.Gate
}

// recover, deferred, recovers a panic of the user's func named option, sets
// the fallback result and reports the panic. A runtime.Goexit goes on.
func (p *panicReporter) recover(option string, fallback func()) {
	v := recover()
	if v == nil {
		return
	}
	fallback()
	ok, suppressed := p.gate.Allow(time.Now(), panicWarnEvery)
	if !ok {
		return
	}
	err := fmt.Errorf("middleware: the %s func panicked (the request goes on without it): %v", option, v)
	if p.logger != nil {
		p.logger.Warn(err.Error(), "suppressed_warnings", suppressed)
		return
	}
	otel.Handle(err)
}
