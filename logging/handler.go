package logging

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel/trace"
)

// Keys of the attributes NewHandler adds, and of the structured metadata the
// Loki handler sends.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// NewHandler returns a handler that adds trace_id and span_id (lower-case hex)
// from the span context in the record's ctx to every record, when that span
// context is valid, and passes the record on to next. The two keys stay at the
// top level of the output even after WithGroup: attributes and groups opened
// after a WithGroup are kept by this handler and handed to next as nested
// group attributes of each record. A nil next means
// slog.NewJSONHandler(os.Stdout, nil). It is safe for concurrent use when next
// is. Do not put it in front of a *Loki, which sends the ids as structured
// metadata itself.
func NewHandler(next slog.Handler) slog.Handler {
	if next == nil {
		next = defaultHandler()
	}
	return &traceHandler{next: next, ids: new(idCache), std: isStdHandler(next)}
}

// isStdHandler reports whether h is slog's JSON or text handler, which
// format a record while Handle runs and keep nothing of it.
func isStdHandler(h slog.Handler) bool {
	switch h.(type) {
	case *slog.JSONHandler, *slog.TextHandler:
		return true
	}
	return false
}

type traceHandler struct {
	next slog.Handler // with the attributes added before the first group
	// goas are the groups and attributes added from the first WithGroup
	// on, outermost first; each entry is a group name or a list of attrs.
	goas []groupOrAttrs
	ids  *idCache // shared by the WithAttrs/WithGroup copies
	// std: next is slog's JSON or text handler (see isStdHandler), which
	// is handed a record whose attributes lie in a pooled array.
	std bool
}

// idCache remembers the hex form of recently seen span contexts, so that the
// records logged within a span (the handler's lines and the middleware's
// request line) share one encoding instead of allocating their own, even
// while other requests log in between. It is direct-mapped on the span id,
// which is random: concurrent spans mostly land in different slots, and a
// collision only costs a re-encoding.
type idCache struct {
	slots [idCacheSlots]atomic.Pointer[hexIDs]
}

const idCacheSlots = 64 // a power of two

type hexIDs struct {
	traceID trace.TraceID
	spanID  trace.SpanID
	buf     [48]byte // never written after the entry is published
	tid     string   // buf[:32], lower-case hex
	sid     string   // buf[32:]
}

// attrs returns the trace_id and span_id attributes of sc, their hex from
// the cache.
func (c *idCache) attrs(sc trace.SpanContext) [2]slog.Attr {
	tid, sid := sc.TraceID(), sc.SpanID()
	slot := &c.slots[binary.LittleEndian.Uint64(sid[:])&(idCacheSlots-1)]
	e := slot.Load()
	if e == nil || e.traceID != tid || e.spanID != sid {
		e = &hexIDs{traceID: tid, spanID: sid}
		hex.Encode(e.buf[:32], tid[:])
		hex.Encode(e.buf[32:], sid[:])
		s := unsafe.String(&e.buf[0], len(e.buf))
		e.tid, e.sid = s[:32], s[32:]
		slot.Store(e)
	}
	return [2]slog.Attr{slog.String(TraceIDKey, e.tid), slog.String(SpanIDKey, e.sid)}
}

// inlineAttrs is the number of attributes a slog.Record holds without
// allocating; past it, AddAttrs grows a slice of its own.
const inlineAttrs = 5

// attrBuf holds a record's attributes and the ids for handleInline.
type attrBuf struct{ as []slog.Attr }

// maxPooledAttrs is the largest attrBuf kept in attrBufs.
const maxPooledAttrs = 64

var attrBufs = sync.Pool{New: func() any { return new(attrBuf) }}

// handleInline hands next (slog's JSON or text handler) a new record whose
// one attribute is a group with an empty key, which those handlers inline:
// r's attributes followed by the ids, in a pooled array. The output is the
// same as that of r with the ids added, without the allocation of adding
// them: r's own inline slots are full, and the slice the slog.Logger made
// for the rest is exactly as long as those attributes. The array goes back
// to the pool once next.Handle returns: those handlers keep no part of the
// record.
func (h *traceHandler) handleInline(ctx context.Context, r slog.Record, ids [2]slog.Attr) error {
	b := attrBufs.Get().(*attrBuf)
	as := append(appendAttrs(b.as[:0], r), ids[:]...)
	return h.handOn(ctx, r, b, as, 0)
}

// appendAttrs appends r's attributes to as.
func appendAttrs(as []slog.Attr, r slog.Record) []slog.Attr {
	r.Attrs(func(a slog.Attr) bool {
		as = append(as, a)
		return true
	})
	return as
}

// nest lays out the levels of h's open groups after the record's
// attributes, which as holds: innermost first, each group an attribute
// whose value is the level before it, each WithAttrs level its attributes
// followed by the level before it. It returns as and the start of the
// outermost level, the attributes to hand on. The earlier levels are never
// written again (an append that grows as leaves them in the old array,
// where the groups built from them still point).
func (h *traceHandler) nest(as []slog.Attr) ([]slog.Attr, int) {
	lo := 0 // as[lo:] is the level built so far
	for i := len(h.goas) - 1; i >= 0; i-- {
		g := h.goas[i]
		n := len(as)
		if g.group != "" {
			as = append(as, slog.Attr{Key: g.group, Value: slog.GroupValue(as[lo:n]...)})
		} else {
			as = append(as, g.attrs...)
			as = append(as, as[lo:n]...)
		}
		lo = n
	}
	return as, lo
}

// handOn hands next a record with r's time, level, message and PC whose one
// attribute is a group with an empty key holding as[from:], then clears as
// (b's array, perhaps grown) and puts b back in the pool.
func (h *traceHandler) handOn(ctx context.Context, r slog.Record, b *attrBuf, as []slog.Attr, from int) error {
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	nr.AddAttrs(slog.Attr{Value: slog.GroupValue(as[from:]...)})
	err := h.next.Handle(ctx, nr)
	clear(as) // let go of what the attributes point to
	if cap(as) <= maxPooledAttrs {
		b.as = as[:0]
		attrBufs.Put(b)
	}
	return err
}

type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

func (h *traceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	if len(h.goas) == 0 {
		next := h.next.WithAttrs(as)
		return &traceHandler{next: next, ids: h.ids, std: isStdHandler(next)}
	}
	return &traceHandler{next: h.next, ids: h.ids, std: h.std, goas: append(slices.Clip(h.goas), groupOrAttrs{attrs: slices.Clone(as)})}
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &traceHandler{next: h.next, ids: h.ids, std: h.std, goas: append(slices.Clip(h.goas), groupOrAttrs{group: name})}
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	var sc trace.SpanContext
	if ctx != nil {
		sc = trace.SpanContextFromContext(ctx)
	}
	if len(h.goas) == 0 {
		if !sc.IsValid() {
			return h.next.Handle(ctx, r)
		}
		ids := h.ids.attrs(sc)
		if h.std && r.NumAttrs() > inlineAttrs-2 {
			return h.handleInline(ctx, r, ids)
		}
		// Clone so that adding to a record that shares its attribute
		// array with other copies (a fan-out) cannot overwrite theirs.
		r = r.Clone()
		r.AddAttrs(ids[:]...)
		return h.next.Handle(ctx, r)
	}

	// Open groups: rebuild the record with the ids first and the groups as
	// nested attributes, so that next sees the ids at the top level.
	if h.std {
		return h.handleGroups(ctx, r, sc)
	}
	// Any other handler may keep the record: the levels lie in an array
	// of their own.
	attrs, lo := h.nest(appendAttrs(make([]slog.Attr, 0, r.NumAttrs()), r))
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if sc.IsValid() {
		ids := h.ids.attrs(sc)
		nr.AddAttrs(ids[:]...)
	}
	nr.AddAttrs(attrs[lo:]...)
	return h.next.Handle(ctx, nr)
}

// handleGroups is Handle's rebuild of a record under open groups for slog's
// JSON and text handlers, without allocating: the levels (see nest) lie in
// a pooled array, and the ids and the outermost level are handed on as one
// group with an empty key, which those handlers inline (as in
// handleInline). The array goes back to the pool once next.Handle returns.
func (h *traceHandler) handleGroups(ctx context.Context, r slog.Record, sc trace.SpanContext) error {
	b := attrBufs.Get().(*attrBuf)
	as, lo := h.nest(appendAttrs(b.as[:0], r))
	n := len(as)
	if sc.IsValid() {
		ids := h.ids.attrs(sc)
		as = append(as, ids[:]...)
	}
	as = append(as, as[lo:n]...)
	return h.handOn(ctx, r, b, as, n)
}
