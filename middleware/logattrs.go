package middleware

import (
	"context"
	"log/slog"
	"sync"
)

// AddLogAttrs adds attrs to the line the middleware logs for the HTTP request
// or gRPC call whose context is ctx (WithLogger), so that a handler's details (the error
// behind a 400, the tokens of a completion) go on the request's one line
// rather than on a second one. It reports whether they will: false when no
// middleware with a logger serves the request (none at all, no WithLogger, a
// request WithFilter skips) or the middleware has logged it already (the
// handler returned), so the caller can log them itself:
//
//	if !middleware.AddLogAttrs(ctx, slog.String("error", err.Error())) {
//		logger.WarnContext(ctx, "request rejected", "error", err)
//	}
//
// Keys should not repeat the middleware's own (HTTP: method, route, status,
// duration, request_bytes, response_bytes, model, panic; gRPC: method, code,
// duration, model, error). Safe for concurrent
// use; a nil or empty attrs only reports.
func AddLogAttrs(ctx context.Context, attrs ...slog.Attr) bool {
	lc, _ := ctx.Value(logAttrsKey{}).(*attrCtx)
	if lc == nil {
		return false
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.done {
		return false
	}
	lc.attrs = append(lc.attrs, attrs...)
	return true
}

type logAttrsKey struct{}

// attrCtx is the request's context carrying the attributes for its log line:
// one allocation for both the context value and its holder.
type attrCtx struct {
	context.Context
	mu    sync.Mutex
	done  bool
	attrs []slog.Attr
}

func (c *attrCtx) Value(key any) any {
	if key == (logAttrsKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// take returns the attributes added so far; later AddLogAttrs calls report
// false. A nil c has none.
func (c *attrCtx) take() []slog.Attr {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	return c.attrs
}
