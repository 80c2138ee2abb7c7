package tracing

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/modeltel/modeltel/internal/ratelimit"
)

// DefaultErrorInterval is how often, at most, the handler from
// NewErrorHandler logs when no other interval is given.
const DefaultErrorInterval = time.Minute

// NewErrorHandler returns an otel.ErrorHandler that logs an OpenTelemetry
// error (a failed export, typically: no collector listening) as a warning on l
// at most once per every, counting the errors it left out in between and
// reporting that count with the next warning. A nil l means slog.Default() at
// the time of each warning; every <= 0 means DefaultErrorInterval. It is safe
// for concurrent use. Setup installs one; install it yourself with
// otel.SetErrorHandler when you use NewProvider.
func NewErrorHandler(l *slog.Logger, every time.Duration) otel.ErrorHandler {
	if every <= 0 {
		every = DefaultErrorInterval
	}
	return &errorHandler{logger: l, every: every, now: time.Now}
}

type errorHandler struct {
	logger *slog.Logger
	every  time.Duration
	now    func() time.Time

	gate ratelimit.Gate
}

func (h *errorHandler) Handle(err error) {
	if err == nil {
		return
	}
	ok, suppressed := h.gate.Allow(h.now(), h.every)
	if !ok {
		return
	}

	l := h.logger
	if l == nil {
		l = slog.Default()
	}
	l.Warn("tracing: opentelemetry error", "error", err.Error(), "suppressed", suppressed, "interval", h.every.String())
}
