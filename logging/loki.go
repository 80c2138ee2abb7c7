package logging

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/modeltel/modeltel/internal/promlist"
	"github.com/modeltel/modeltel/internal/ratelimit"
)

// Encodings of the Loki push body.
const (
	EncodingProtobuf = "protobuf" // snappy-compressed protobuf, Loki's default
	EncodingJSON     = "json"
)

// Reasons of logging_loki_dropped_lines_total.
const (
	DropQueueFull        = "queue_full"        // the queue was full when the record was logged
	DropRejected         = "rejected"          // Loki answered 4xx other than 429: never retried
	DropRetriesExhausted = "retries_exhausted" // 429, 5xx or network errors past MaxRetries
	DropClosed           = "closed"            // logged after Close, or still queued when Close's ctx ended
	DropEncode           = "encode"            // the batch could not be encoded
	DropTooLarge         = "too_large"         // the line alone is longer than BatchBytes
)

// LokiConfig configures NewLoki. Only URL is required; zero values of the
// other fields mean the defaults given with each.
type LokiConfig struct {
	// URL is Loki's base URL, "http(s)://host:port"; the push path
	// /loki/api/v1/push is appended unless the URL already ends with it.
	URL string
	// Labels are the stream labels: keep them few and of low cardinality
	// (service_name, env); never ids. Default {service_name="unknown_service"}.
	Labels map[string]string
	// LevelLabel adds the record's level as the stream label "level"
	// ("debug", "info", "warn", "error"). Off by default.
	LevelLabel bool
	// Level is the minimum level sent. Default slog.LevelInfo.
	Level slog.Leveler
	// Encoding is EncodingProtobuf (default) or EncodingJSON.
	Encoding string
	// TenantID, when set, is sent as X-Scope-OrgID: Loki's tenant.
	// VictoriaLogs reads it only as a number, "AccountID" or
	// "AccountID:ProjectID", and answers 400 to anything else (the batch is
	// then dropped as rejected); there, set its AccountID and ProjectID
	// headers with Headers instead.
	TenantID string
	// Username and Password set basic auth; BearerToken sets a bearer
	// token. Set at most one of the two.
	Username, Password string
	BearerToken        string
	// Headers are extra HTTP headers sent with every push, such as
	// VictoriaLogs' AccountID, ProjectID and VL-Stream-Fields. Every push
	// also carries "VL-Msg-Field: msg", so that VictoriaLogs, which parses
	// the JSON line into fields, takes the record's message as its _msg;
	// Headers can replace it.
	Headers map[string]string
	// BatchLines and BatchBytes bound a batch (default 10000 lines, 1 MiB
	// of log lines: with lines of a few hundred bytes the bytes bound
	// first); a line longer than BatchBytes is dropped (reason too_large).
	// BatchWait is how long the first line of a batch waits for more
	// before the batch is sent (default 1s).
	BatchLines int
	BatchBytes int
	BatchWait  time.Duration
	// MaxInFlight is the most pushes in flight at once (default 4), so
	// that a backend far away (every push taking 200 ms) still receives
	// 4 MiB per round trip. Batches may then arrive out of order, which
	// Loki (since 2.4, unordered_writes) and VictoriaLogs accept; set 1 to
	// push one batch at a time, in order.
	MaxInFlight int
	// QueueBytes bounds the bytes of the lines accepted and not yet handed
	// to a push (default 16 MiB, and never less than BatchBytes), and
	// QueueSize their number (default 100000, which leaves QueueBytes the
	// bound that counts for lines over ~170 bytes). Handle never waits
	// for the network: when either bound would be passed the new line is
	// dropped (the older lines are kept, they are already on their way)
	// and counted with reason queue_full. Past half of either bound while
	// Loki takes pushes quickly, the lines pile up because the process
	// gives its pusher too little CPU (loggers that never wait); a Handle
	// then yields its processor (runtime.Gosched) until the queue is back
	// under half, for about 1 ms at most, so that a Loki that keeps up
	// loses no lines (see Loki). The lines of the batch being made count
	// too; past half, that batch goes to a free push at once, full or not,
	// so a queue smaller than a batch does not fill with it. Memory grows
	// with use, not up front: at most QueueBytes of lines, about 90 bytes
	// more for each, two 32 KiB slabs of lines per queue shard in use (the
	// one being filled and the next), and MaxInFlight batches being
	// pushed, each push goroutine keeping its encoding buffers (about
	// twice BatchBytes) for the next.
	QueueSize  int
	QueueBytes int
	// MinBackoff and MaxBackoff bound the exponential backoff, with jitter,
	// between attempts (default 250ms and 30s); MaxRetries is the number of
	// retries after the first attempt (default 20, which with the default
	// backoffs rides out a Loki outage of 3.5 to 7 minutes: the lines wait,
	// within the queue's bounds, rather than be dropped while there is room;
	// negative: none). No
	// retry comes sooner than MinBackoff. A Retry-After header (seconds or
	// an HTTP-date) on a retried answer lengthens the wait to what it says,
	// up to MaxBackoff, but never shortens it: "Retry-After: 0" is retried
	// after the backoff. A push that succeeds lets one push waiting out its
	// backoff retry at once (though not before MinBackoff or its
	// Retry-After), which, if it succeeds, lets the next go: after an
	// outage the batches waiting go as soon as Loki takes them again.
	MinBackoff, MaxBackoff time.Duration
	MaxRetries             int
	// Timeout bounds one HTTP request (default 10s). Client, when set,
	// replaces the default http.Client and its Timeout.
	Timeout time.Duration
	Client  *http.Client
	// AddSource adds the source position to each line.
	AddSource bool
	// Fallback receives the rate-limited warnings about dropped lines and
	// failed pushes. Default: text lines on stderr. Never pass the Loki
	// handler itself, or a logger that leads to it.
	Fallback slog.Handler
	// WarnInterval is the least time between two warnings (default 1m).
	WarnInterval time.Duration
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (c *LokiConfig) validate() (*url.URL, error) {
	if strings.TrimSpace(c.URL) == "" {
		return nil, errors.New("logging: loki: empty URL")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("logging: loki: URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("logging: loki: URL %q: scheme must be http or https", c.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("logging: loki: URL %q: no host", c.URL)
	}
	for k := range c.Labels {
		if !labelNameRE.MatchString(k) {
			return nil, fmt.Errorf("logging: loki: invalid label name %q", k)
		}
		if c.LevelLabel && k == "level" {
			return nil, errors.New(`logging: loki: label "level" set and LevelLabel on`)
		}
	}
	switch c.Encoding {
	case "", EncodingProtobuf, EncodingJSON:
	default:
		return nil, fmt.Errorf("logging: loki: unknown encoding %q", c.Encoding)
	}
	if c.BearerToken != "" && (c.Username != "" || c.Password != "") {
		return nil, errors.New("logging: loki: set basic auth or a bearer token, not both")
	}
	if !strings.HasSuffix(u.Path, "/loki/api/v1/push") {
		u.Path = strings.TrimRight(u.Path, "/") + "/loki/api/v1/push"
	}
	return u, nil
}

func (c *LokiConfig) setDefaults() {
	if len(c.Labels) == 0 {
		c.Labels = map[string]string{"service_name": "unknown_service"}
	}
	if c.Level == nil {
		c.Level = slog.LevelInfo
	}
	if c.Encoding == "" {
		c.Encoding = EncodingProtobuf
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.BatchLines, 10000)
	def(&c.BatchBytes, 1<<20)
	def(&c.MaxInFlight, 4)
	def(&c.QueueSize, 100000)
	def(&c.QueueBytes, 16<<20)
	c.QueueBytes = max(c.QueueBytes, c.BatchBytes)
	defDur(&c.BatchWait, time.Second)
	defDur(&c.MinBackoff, 250*time.Millisecond)
	defDur(&c.MaxBackoff, 30*time.Second)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = 20
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	defDur(&c.Timeout, 10*time.Second)
	defDur(&c.WarnInterval, time.Minute)
	if c.Client == nil {
		c.Client = &http.Client{Timeout: c.Timeout}
	}
	if c.Fallback == nil {
		c.Fallback = slog.NewTextHandler(os.Stderr, nil)
	}
}

// Loki is a slog.Handler that pushes records to Loki's push API. Each record
// becomes one line, the record as JSON (as slog.JSONHandler writes it), in the
// stream of the configured labels, with trace_id and span_id from the ctx's
// span as structured metadata. Handle formats the line and puts it on a
// bounded queue without ever waiting for the network; a goroutine batches the
// queue by size and time and hands the batches to up to MaxInFlight pushes at
// once, which retry 429, 5xx and network errors with exponential backoff and
// jitter, never other 4xx. What cannot be sent is dropped and counted.
//
// When the queue is more than half full while Loki answers quickly (a push
// accepted within 50 ms in the last second, and the pusher taking lines in
// the last 100 ms), the lines pile up for want of CPU in this process, not
// of Loki: goroutines that log without ever waiting take their whole time
// slices while the pusher queues for a processor. A Handle then yields its
// processor until the queue is back under half, for about 1 ms at most,
// holding the loggers to the pusher's pace instead of dropping lines. A
// slow, stuck or failing Loki gets no yields: its lines are dropped when
// the queue is full.
//
// *Loki is also a prometheus.Collector of its own metrics (see Describe). The
// handlers returned by WithAttrs and WithGroup share the queue, the pusher and
// the metrics; Close on any of them closes them all. All methods are safe for
// concurrent use. The zero Loki is not usable: call NewLoki.
type Loki struct {
	core *lokiCore
	// A handler made by WithAttrs or WithGroup is op applied to parent;
	// hs[i] is its JSON formatter for slot i, built on first use while
	// holding that slot's fmu (the root uses the slots' own).
	parent *Loki
	op     fmtOp
	hs     []slog.Handler
}

// fmtOp is one WithGroup (group != "") or WithAttrs call.
type fmtOp struct {
	group string
	attrs []slog.Attr
}

// lineWriter receives the line a shard's JSON handler writes for a record
// (slog's handlers write each record in one Write) and keeps it, without the
// newline, in line: lines up to slabLine bytes go straight into a slab, back
// to back (one allocation for many lines, not zeroed, and no copy through a
// buffer of its own), longer ones into a string of their own. A line longer
// than max is not kept: tooLarge is set instead.
//
// The next slab is made ahead, by run (spare), so that the caller whose line
// fills a slab does not wait for the allocation: a new 8 KiB span from the
// heap, with the sweeping the GC charges to it, took over 2 µs in most cases,
// which with 8 KiB slabs was 1 call in 60 (BenchmarkLokiSlowBackend's p99).
type lineWriter struct {
	max      int
	slab     *strings.Builder // only appended to: the lines taken from it stay valid
	spare    atomic.Pointer[strings.Builder]
	line     string
	tooLarge bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	b := bytes.TrimSuffix(p, []byte{'\n'})
	switch n := len(b); {
	case n > w.max:
		w.line, w.tooLarge = "", true
	case n > slabLine:
		w.line = string(b)
	default:
		if w.slab == nil || w.slab.Cap()-w.slab.Len() < n {
			// A full slab is left to the GC once its lines are pushed.
			if w.slab = w.spare.Swap(nil); w.slab == nil {
				w.slab = newSlab()
			}
		}
		off := w.slab.Len()
		w.slab.Write(b)
		w.line = w.slab.String()[off:]
	}
	return len(p), nil
}

func newSlab() *strings.Builder {
	b := new(strings.Builder)
	b.Grow(slabSize)
	return b
}

// qshard is one part of the queue, with a formatter of its own. Handle
// formats a record in its P's shard, or the first other one whose fmu it
// can take when that one is busy (so that records are formatted in
// parallel, not one at a time behind a shared buffer), then appends it
// to the last of that shard's chunks, fixed-size so that no append copies
// a long queue under the lock; run takes them all at once.
type qshard struct {
	fmu  sync.Mutex
	root slog.Handler // under fmu: the JSON handler writing into w
	w    lineWriter   // under fmu

	mu     sync.Mutex
	chunks [][]lokiEntry
	free   [][]lokiEntry // emptied chunks for reuse
	closed bool          // set by run's last take: Handle then drops as closed
	_      [64]byte      // keep the shards' locks off one cache line
}

type lokiCore struct {
	cfg     LokiConfig
	pushURL string
	jsonOpt *slog.HandlerOptions

	// The queue: the lines accepted and not yet handed to a push, in
	// shards so that concurrent Handles seldom wait for one another.
	// qlines and qbytes count both the lines in the shards and those run
	// is still batching, and are what QueueSize and QueueBytes bound:
	// Handle reserves before it appends, the push goroutine that receives
	// a batch releases its lines.
	shards []qshard
	qlines atomic.Int64
	qbytes atomic.Int64
	seq    atomic.Uint64 // orders the entries across shards
	// run takes the queue every takeInterval() while lines come; after
	// idleTakes takes that found none it sets idle and waits on wake,
	// which the first Handle to see idle then sends (cap 1). A Handle
	// that leaves a full chunk in its shard sends it too, to cut the
	// interval short.
	idle     atomic.Bool
	wake     chan struct{}
	batches  chan pushBatch
	inFlight sync.WaitGroup // the push goroutines
	// Past yieldLines or yieldBytes queued, a Handle yields its P to the
	// pusher (see yield) while the pusher moves and Loki answers quickly:
	// moved is when run last took lines or a push goroutine received a
	// batch or had one accepted, quickAt when one was last accepted within
	// quickPush; both in nanoseconds since epoch on the monotonic clock (0:
	// at NewLoki).
	yieldLines int64
	yieldBytes int64
	epoch      time.Time
	moved      atomic.Int64
	quickAt    atomic.Int64
	yields     atomic.Int64 // the Handles that yielded (for the tests)
	// retryNow (unbuffered) hands a push that succeeded's go-ahead to one
	// push waiting to retry (see waitRetry).
	retryNow chan struct{}

	// hints holds, per P in practice, a pointer into hintIdx: the shard
	// lockFormatter tries first. hintIdx[i] == i, never written after
	// NewLoki, so that a hint costs no allocation; nextHint spreads the
	// new ones over the shards.
	hints    sync.Pool
	hintIdx  []int
	nextHint atomic.Uint32

	// baseStream is the label string of the stream; with LevelLabel,
	// levelStreams holds those of the four standard levels.
	baseStream   string
	levelStreams map[slog.Level]string

	closing     chan struct{}
	closeGaveUp atomic.Bool // a batch failed for good after Close: the later ones get one attempt
	done        chan struct{}
	closeOnce   sync.Once
	closed      atomic.Bool
	ctx         context.Context // cancelled when Close's ctx ends first
	cancel      context.CancelFunc

	warnGate ratelimit.Gate

	sentLines  prometheus.Counter
	pushErrors prometheus.Counter
	dropped    *prometheus.CounterVec
	drops      map[string]prometheus.Counter
	queueLen   prometheus.GaugeFunc
	pushingLen prometheus.GaugeFunc
	all        promlist.Collectors // the five above: what Describe and Collect send

	// pushing counts the lines handed to a push goroutine and not yet
	// sent or dropped (encoded, posted, waiting to retry). It is raised
	// before a batch leaves the queue's counts and lowered after the batch
	// is counted sent or dropped, so that a line is always in at least
	// one of the queue, pushing and the counters.
	pushing atomic.Int64
}

// lokiEntry is one queued line: 64 bytes, one cache line.
type lokiEntry struct {
	seq      uint64
	ts       int64 // Unix nanoseconds
	line     string
	traceID  trace.TraceID
	spanID   trace.SpanID
	level    int32 // a slog.Level
	hasTrace bool
}

// NewLoki validates cfg, starts the pushing goroutine and returns the handler.
// An empty URL, a scheme other than http(s), an invalid label name, an unknown
// encoding or both auth kinds give an error and start nothing. Call Close to
// flush and stop it.
func NewLoki(cfg LokiConfig) (*Loki, error) {
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	cfg.Labels = maps.Clone(cfg.Labels)
	cfg.Headers = maps.Clone(cfg.Headers)
	cfg.setDefaults()
	c := &lokiCore{
		cfg:      cfg,
		pushURL:  u.String(),
		jsonOpt:  &slog.HandlerOptions{Level: slog.LevelDebug - 100, AddSource: cfg.AddSource},
		wake:     make(chan struct{}, 1),
		batches:  make(chan pushBatch),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		retryNow: make(chan struct{}),
		shards:   make([]qshard, min(max(runtime.GOMAXPROCS(0), 4), 64)),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.yieldLines, c.yieldBytes = int64(cfg.QueueSize/2), int64(cfg.QueueBytes/2)
	c.epoch = time.Now()
	c.baseStream = labelString(cfg.Labels, "")
	if cfg.LevelLabel {
		c.levelStreams = map[slog.Level]string{}
		for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
			c.levelStreams[lv] = labelString(cfg.Labels, levelName(lv))
		}
	}
	c.hintIdx = make([]int, len(c.shards))
	for i := range c.hintIdx {
		c.hintIdx[i] = i
	}
	c.hints.New = func() any { return &c.hintIdx[(c.nextHint.Add(1)-1)%uint32(len(c.hintIdx))] }
	for i := range c.shards {
		q := &c.shards[i]
		q.w.max = cfg.BatchBytes
		q.root = slog.NewJSONHandler(&q.w, c.jsonOpt)
	}
	c.initMetrics()
	for range cfg.MaxInFlight {
		c.inFlight.Go(func() {
			var sc encodeScratch // this push goroutine's own
			for b := range c.batches {
				// Off the queue's counts as soon as it is received, before
				// anything of the push can be seen.
				c.pushing.Add(int64(len(b.entries)))
				c.handedOff(len(b.entries), int64(b.bytes))
				c.moved.Store(int64(c.clock()))
				c.push(b.entries, &sc)
				c.pushing.Add(-int64(len(b.entries)))
			}
		})
	}
	go c.run()
	return &Loki{core: c}, nil
}

// child returns the handler that is op applied to l.
func (l *Loki) child(op fmtOp) *Loki {
	return &Loki{core: l.core, parent: l, op: op, hs: make([]slog.Handler, len(l.core.shards))}
}

// handler returns l's formatter for shard i; the caller holds its fmu.
func (l *Loki) handler(i int) slog.Handler {
	if l.parent == nil {
		return l.core.shards[i].root
	}
	if h := l.hs[i]; h != nil {
		return h
	}
	h := l.parent.handler(i)
	if l.op.group != "" {
		h = h.WithGroup(l.op.group)
	} else {
		h = h.WithAttrs(l.op.attrs)
	}
	l.hs[i] = h
	return h
}

// lockFormatter takes the fmu of a free shard and returns its index. It
// tries the shard of its P's hint first, so that each P keeps to a shard
// whose lock, slab and queue chunk stay in its core's cache; when that one
// is busy it tries the others in turn, waits for the hinted one when all
// are, and leaves the shard it took as the P's hint.
func (c *lokiCore) lockFormatter() int {
	i := *c.hints.Get().(*int)
	if !c.shards[i].fmu.TryLock() {
		n := len(c.shards)
		got := false
		for k := 1; k < n && !got; k++ {
			if j := (i + k) % n; c.shards[j].fmu.TryLock() {
				i, got = j, true
			}
		}
		if !got {
			c.shards[i].fmu.Lock()
		}
	}
	c.hints.Put(&c.hintIdx[i])
	return i
}

// labelString renders labels in Loki's stream selector form, sorted by name,
// with level added when not empty.
func labelString(labels map[string]string, level string) string {
	keys := make([]string, 0, len(labels)+1)
	for k := range labels {
		keys = append(keys, k)
	}
	if level != "" {
		keys = append(keys, "level")
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		v := labels[k]
		if k == "level" && level != "" {
			v = level
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v))
	}
	b.WriteByte('}')
	return b.String()
}

func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

// Enabled reports whether l is at or above the configured level.
func (l *Loki) Enabled(_ context.Context, level slog.Level) bool {
	return level >= l.core.cfg.Level.Level()
}

// WithAttrs returns a handler that adds as to every line; it shares the queue
// and the pusher with l.
func (l *Loki) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return l
	}
	return l.child(fmtOp{attrs: slices.Clone(as)})
}

// WithGroup returns a handler that puts the attributes that follow under name;
// it shares the queue and the pusher with l.
func (l *Loki) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	return l.child(fmtOp{group: name})
}

// Handle formats r as a JSON line and queues it; it never waits for Loki. A
// full queue or a closed handler drops the line and counts it. Records are
// formatted in parallel, in as many formatters as queue shards. It returns
// an error only when the record cannot be formatted.
func (l *Loki) Handle(ctx context.Context, r slog.Record) error {
	c := l.core
	if c.closed.Load() {
		c.drop(DropClosed, 1)
		return nil
	}
	shard := c.lockFormatter()
	q := &c.shards[shard]
	q.w.line, q.w.tooLarge = "", false
	err := l.handler(shard).Handle(ctx, r)
	line, tooLarge := q.w.line, q.w.tooLarge
	q.w.line = "" // the slab is the shard's; the line is on its way
	q.fmu.Unlock()
	if tooLarge {
		c.drop(DropTooLarge, 1)
		c.warn("logging: loki line too large, dropping it", "batch_bytes", c.cfg.BatchBytes)
		return nil
	}
	if err != nil {
		return fmt.Errorf("logging: loki: %w", err)
	}
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	e := lokiEntry{ts: ts.UnixNano(), line: line, level: int32(r.Level)}
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			e.traceID, e.spanID, e.hasTrace = sc.TraceID(), sc.SpanID(), true
		}
	}
	c.enqueue(&c.shards[shard], e)
	return nil
}

// enqueue puts e on the queue, in shard q, or drops it when the queue is
// full or closed.
func (c *lokiCore) enqueue(q *qshard, e lokiEntry) {
	n := int64(len(e.line))
	lines, bytes := c.qlines.Add(1), c.qbytes.Add(n) // both, always: handedOff takes both back
	// A line dropped is counted dropped before it leaves the queue's
	// counts, as everywhere, so that a scrape never misses it.
	if lines > int64(c.cfg.QueueSize) || bytes > int64(c.cfg.QueueBytes) {
		c.drop(DropQueueFull, 1)
		c.handedOff(1, n)
		c.warn("logging: loki queue full, dropping lines", "queue_size", c.cfg.QueueSize, "queue_bytes", c.cfg.QueueBytes)
		c.yield() // the next lines may then find room
		return
	}
	var fresh []lokiEntry // a new chunk, made outside the lock when needed
again:
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		c.drop(DropClosed, 1)
		c.handedOff(1, n)
		return
	}
	last := len(q.chunks) - 1
	full := false // the shard has a full chunk waiting for run
	if last < 0 || len(q.chunks[last]) == cap(q.chunks[last]) {
		full = last >= 0
		var ch []lokiEntry
		switch k := len(q.free); {
		case k > 0:
			ch, q.free = q.free[k-1], q.free[:k-1]
		case fresh != nil:
			ch, fresh = fresh, nil
		default:
			// Allocating under the lock could make it wait for the
			// GC while the other Handles of the shard wait for the lock.
			q.mu.Unlock()
			fresh = make([]lokiEntry, 0, queueChunk)
			goto again
		}
		q.chunks = append(q.chunks, ch)
		last++
	}
	e.seq = c.seq.Add(1)
	q.chunks[last] = append(q.chunks[last], e)
	q.mu.Unlock()
	// Wake run only when it has gone idle, or early when a shard has a
	// full chunk (queueChunk lines) waiting, so that at high rates the
	// lines are taken while still in cache rather than a whole interval
	// later. Waking a parked goroutine cost the caller 10-20 µs (a futex
	// call to start a thread for it); it used to be paid once per take.
	// Past half the queue, wake it too, before yielding to it.
	overload := lines > c.yieldLines || bytes > c.yieldBytes
	if overload || full || (c.idle.Load() && c.idle.CompareAndSwap(true, false)) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	if overload {
		c.yield()
	}
}

// One Handle yields at most maxYield; it yields only while the pusher
// moved in the last yieldRecent and a push was accepted within quickPush in
// the last quickRecent (one, not the last: a push that waited for a P in
// this starved process, not for Loki, takes longer too). After fastYields
// Goscheds in a row that came back within fastYield (the P had nothing
// else to run), it sleeps yieldSleep instead of spinning.
const (
	maxYield    = time.Millisecond
	fastYield   = time.Microsecond
	fastYields  = 4
	yieldSleep  = 50 * time.Microsecond
	yieldRecent = 100 * time.Millisecond
	quickPush   = 50 * time.Millisecond
	quickRecent = time.Second
)

// yield is called by a Handle whose line, queued or dropped as queue_full,
// found the queue past half its bounds. While Loki takes pushes quickly,
// the lines then pile up because the pusher cannot keep pace with the
// loggers in this process: goroutines that log without ever waiting (16 of
// them on 2 cores, flat out) take their whole time slices, while the
// batching and push goroutines, which wait for one another and for the
// HTTP client at every batch, queue for a P behind them at every step and
// deliver a fraction of what Loki would take (BenchmarkLokiFastSink: 25-80 %
// of the lines dropped). So the caller gives up its P (runtime.Gosched),
// again and again, until the queue is back under half or maxYield has
// passed: the loggers are held to the pusher's pace, by about maxYield a
// line at most, rather than losing lines to a Loki that keeps up. When the
// P has nothing else to run (the lines wait for the network, or in run's
// batch for BatchWait), it sleeps in short steps rather than burn the CPU.
// It does not yield when the time goes to Loki instead: a slow Loki (no
// push accepted within quickPush for quickRecent), or one that is stuck or
// down (its pushes hang or back off and take no new batch, and run, unable
// to hand on its batch, takes no lines: no move for yieldRecent). There the
// lines are dropped when the queue is full, as before; Handle never waits
// for the network.
func (c *lokiCore) yield() {
	since := c.clock()
	if since-time.Duration(c.moved.Load()) > yieldRecent || since-time.Duration(c.quickAt.Load()) > quickRecent {
		return
	}
	c.yields.Add(1)
	start := time.Now()
	for t, fast := start, 0; ; {
		if fast < fastYields {
			runtime.Gosched()
		} else {
			// Nothing else wanted this P lately: sleep rather than spin.
			time.Sleep(min(yieldSleep, maxYield-t.Sub(start)))
			fast = 0
		}
		now := time.Now()
		if !c.pastHalf() || now.Sub(start) >= maxYield {
			return
		}
		if now.Sub(t) < fastYield {
			fast++
		} else {
			fast = 0
		}
		t = now
	}
}

// pastHalf reports whether the queue holds more than half of either bound.
func (c *lokiCore) pastHalf() bool {
	return c.qlines.Load() > c.yieldLines || c.qbytes.Load() > c.yieldBytes
}

// clock is the time since NewLoki, on the monotonic clock: what moved and
// quickAt hold.
func (c *lokiCore) clock() time.Duration { return time.Since(c.epoch) }

// take returns the entries queued in every shard, and how many, after
// putting done (the chunks of the last take, which it reuses) up for reuse;
// with closing, the queue is closed too. It holds every shard's lock at
// once, so that what it takes is all that was queued up to a point: no
// entry queued later comes before one queued earlier. A shard that had
// entries gets a spare slab for its next lines, made here, off the
// callers' path.
func (c *lokiCore) take(done [][][]lokiEntry, closing bool) ([][][]lokiEntry, int) {
	for _, old := range done {
		for _, ch := range old {
			clear(ch)
		}
	}
	got := done
	if got == nil {
		got = make([][][]lokiEntry, len(c.shards))
	}
	for i := range c.shards {
		c.shards[i].mu.Lock()
	}
	n := 0
	for i := range c.shards {
		q := &c.shards[i]
		old := got[i]
		for _, ch := range old {
			if len(q.free) < maxFreeChunks {
				q.free = append(q.free, ch[:0])
			}
		}
		clear(old)
		got[i], q.chunks = q.chunks, old[:0]
		for _, ch := range got[i] {
			n += len(ch)
		}
		if closing {
			q.closed = true
		}
	}
	for i := range c.shards {
		c.shards[i].mu.Unlock()
	}
	for i := range got {
		if len(got[i]) > 0 && !closing {
			if w := &c.shards[i].w; w.spare.Load() == nil {
				w.spare.Store(newSlab())
			}
		}
	}
	return got, n
}

// merge calls fn with the entries of shards in seq order (each shard's
// chunks are in that order already).
func merge(shards [][][]lokiEntry, fn func(lokiEntry)) {
	type cursor struct{ chunk, i int }
	cur := make([]cursor, len(shards))
	for {
		best := -1
		var bestSeq uint64
		for s, cs := range shards {
			c := cur[s]
			if c.chunk < len(cs) {
				if seq := cs[c.chunk][c.i].seq; best < 0 || seq < bestSeq {
					best, bestSeq = s, seq
				}
			}
		}
		if best < 0 {
			return
		}
		c := &cur[best]
		fn(shards[best][c.chunk][c.i])
		if c.i++; c.i == len(shards[best][c.chunk]) {
			c.chunk, c.i = c.chunk+1, 0
		}
	}
}

// handedOff takes lines and bytes off the queue's counts.
func (c *lokiCore) handedOff(lines int, bytes int64) {
	c.qlines.Add(-int64(lines))
	c.qbytes.Add(-bytes)
}

// queueLength is the number of lines accepted and not yet handed to a push.
func (c *lokiCore) queueLength() int { return int(c.qlines.Load()) }

// queueBytes is the bytes of those lines.
func (c *lokiCore) queueBytes() int { return int(c.qbytes.Load()) }

// Lines up to slabLine bytes are copied into slabs of slabSize bytes: 32
// KiB, the largest of Go's small size classes, about 230 lines of 140
// bytes, so that one slab made ahead by run lasts a shard the 10 ms between
// two takes at up to ~23,000 lines/s, and past that a caller makes one in
// about 230 lines, not one in 60 (8 KiB slabs).
const (
	slabSize = 32 << 10
	slabLine = 1 << 10
)

// While lines come, run takes the queue every BatchWait/8, within
// [minTakeInterval, maxTakeInterval] (10 ms by default: a line waits that
// long at most before it joins a batch, and a take, which locks every
// shard, comes 100 times a second, not once per burst of lines, which cost
// the callers' p99 more at 1 ms); after idleTakes takes in a row that found
// nothing (100 ms by default) it waits to be woken by the next Handle.
const (
	minTakeInterval = time.Millisecond
	maxTakeInterval = 10 * time.Millisecond
	idleTakes       = 10
)

func (c *lokiCore) takeInterval() time.Duration {
	return min(max(c.cfg.BatchWait/8, minTakeInterval), maxTakeInterval)
}

// A queue chunk holds queueChunk entries; up to maxFreeChunks emptied
// ones are kept for reuse.
const (
	queueChunk    = 256
	maxFreeChunks = 64
)

// Close stops accepting lines, pushes what is queued and stops the pushing
// goroutines. When ctx ends first, the pushes in flight are abandoned, the
// lines still queued are dropped (counted with reason closed) and Close
// returns ctx's error. While it flushes, failed pushes are retried MinBackoff
// apart (not after backoffs of up to MaxBackoff), and once one batch has
// failed for good the later ones get one attempt each, so a Loki that is
// down holds the service's exit for seconds, not minutes. Safe to call more
// than once and from any WithAttrs copy.
func (l *Loki) Close(ctx context.Context) error {
	c := l.core
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.closing)
	})
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.cancel()
		<-c.done // quick now: every push fails at once
		return fmt.Errorf("logging: loki close: %w", ctx.Err())
	}
}

// pushBatch is what run hands to a push goroutine: the entries and the bytes of
// their lines, which the push goroutine takes off the queue's counts.
type pushBatch struct {
	entries []lokiEntry
	bytes   int
}

// run batches the queue and hands the batches to the push goroutines, until
// Close.
func (c *lokiCore) run() {
	defer close(c.done)
	defer c.cancel()
	var (
		entries    []lokiEntry // the batch being made
		batchBytes int
		lastLen    int // of the last batch: the next one starts that big
		done       [][][]lokiEntry
	)
	timer := time.NewTimer(c.cfg.BatchWait)
	timer.Stop()
	interval := c.takeInterval()
	pause := time.NewTimer(interval)
	pause.Stop()
	flush := func() {
		timer.Stop()
		if len(entries) == 0 {
			return
		}
		b := pushBatch{entries: entries, bytes: batchBytes}
		entries, batchBytes, lastLen = nil, 0, len(entries)
		select {
		case c.batches <- b: // the push goroutine takes it off the counts
		case <-c.ctx.Done():
			c.drop(DropClosed, len(b.entries))
			c.handedOff(len(b.entries), int64(b.bytes))
		}
	}
	// early hands the batch being made to a push goroutine that is free,
	// without waiting for one, when the queue is past half: those lines
	// count against the queue's bounds while they wait, and a queue under
	// twice a batch would otherwise fill with them, up to BatchWait, and
	// drop lines however quick Loki is. When every push is busy (a slow
	// Loki), the batch goes on growing, so that a round trip still
	// carries a full one.
	early := func() {
		if len(entries) == 0 || !c.pastHalf() {
			return
		}
		select {
		case c.batches <- pushBatch{entries: entries, bytes: batchBytes}:
			timer.Stop()
			entries, batchBytes, lastLen = nil, 0, len(entries)
		default:
		}
	}
	add := func(e lokiEntry) {
		if len(entries) > 0 && batchBytes+len(e.line) > c.cfg.BatchBytes {
			flush()
		}
		if len(entries) == 0 {
			timer.Reset(c.cfg.BatchWait)
			if entries == nil {
				// Sized like the last one, rather than grown from
				// nothing: growing made as much garbage again.
				entries = make([]lokiEntry, 0, min(max(lastLen, 64), c.cfg.BatchLines))
			}
		}
		entries = append(entries, e)
		batchBytes += len(e.line)
		if len(entries) >= c.cfg.BatchLines || batchBytes >= c.cfg.BatchBytes {
			flush()
		}
	}
	for empty := 0; ; {
		closing := c.isClosing()
		got, n := c.take(done, closing)
		if n > 0 {
			c.moved.Store(int64(c.clock()))
		}
		merge(got, add)
		early()
		done = got
		if closing {
			break
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty >= idleTakes {
			// Idle: wait for a Handle to wake it. idle is set before the
			// last take, so that a line queued after that take finds it
			// set, and one queued before is taken by it.
			c.idle.Store(true)
			if got, n = c.take(done, false); n == 0 {
				select {
				case <-c.wake:
				case <-timer.C:
					flush()
				case <-c.closing:
				}
			} else {
				merge(got, add)
				early()
			}
			done = got
			c.idle.Store(false)
			empty = 0
			continue
		}
		// Lines come: take them again after interval, whether or not
		// more came (no Handle needs to wake run), so that they gather
		// between takes, which lock every shard.
		pause.Reset(interval)
		select {
		case <-pause.C:
		case <-c.wake: // a shard has a full chunk
			pause.Stop()
		case <-timer.C:
			pause.Stop()
			flush()
		case <-c.closing: // seen again at the top of the loop
			pause.Stop()
		}
	}
	flush()
	close(c.batches)
	c.inFlight.Wait()
}

// push sends one batch, retrying what may succeed later.
func (c *lokiCore) push(batch []lokiEntry, sc *encodeScratch) {
	if c.ctx.Err() != nil { // Close gave up: no attempt, no push error
		c.drop(DropClosed, len(batch))
		return
	}
	body, contentType, err := c.encode(batch, sc)
	if err != nil {
		c.drop(DropEncode, len(batch))
		c.warn("logging: loki encode failed, dropping batch", "error", err.Error(), "lines", len(batch))
		return
	}
	for attempt := 0; ; attempt++ {
		posted := c.clock()
		status, retryAfter, hasRetryAfter, err := c.post(body, contentType)
		closing := c.isClosing()
		if err == nil && status/100 == 2 {
			now := c.clock()
			if now-posted < quickPush {
				c.quickAt.Store(int64(now))
			}
			c.moved.Store(int64(now))
			c.sentLines.Add(float64(len(batch)))
			c.pushed()
			return
		}
		c.pushErrors.Inc()
		retryable := err != nil || status == http.StatusTooManyRequests || status >= 500
		if c.ctx.Err() != nil {
			c.drop(DropClosed, len(batch))
			return
		}
		if !retryable {
			c.drop(DropRejected, len(batch))
			c.warn("logging: loki rejected a batch, dropping it", "status", status, "lines", len(batch))
			return
		}
		if attempt >= c.cfg.MaxRetries || (closing && c.closeGaveUp.Load()) {
			if closing {
				c.closeGaveUp.Store(true)
			}
			c.drop(DropRetriesExhausted, len(batch))
			c.warn("logging: loki push failed, dropping batch", "status", status, "error", errString(err),
				"attempts", attempt+1, "lines", len(batch))
			return
		}
		// Retry-After can lengthen the wait, never shorten it: a server
		// answering "Retry-After: 0" for a while would otherwise have the
		// retries spent in milliseconds and the batch dropped.
		wait := c.backoff(attempt)
		if hasRetryAfter && retryAfter > wait {
			wait = min(retryAfter, c.cfg.MaxBackoff)
		}
		closingCh := c.closing
		if closing {
			// Shutting down: retry at MinBackoff, not after backoffs of
			// up to MaxBackoff that would hold the service's exit.
			wait = min(wait, c.cfg.MinBackoff)
			closingCh = nil
		}
		// Another push succeeding may end the wait, though not before
		// MinBackoff, nor before what Retry-After asked.
		floor := c.cfg.MinBackoff
		if hasRetryAfter {
			floor = max(floor, min(retryAfter, c.cfg.MaxBackoff))
		}
		if !c.waitRetry(wait, floor, posted, closingCh) {
			c.drop(DropClosed, len(batch))
			return
		}
	}
}

// waitRetry waits wait before a retry of an attempt posted at posted (on
// c.clock). A push that succeeds meanwhile may end the wait early, once
// floor has passed since the attempt: each success lets one waiting push
// go (see pushed), which, if it succeeds in turn, lets the next go. After
// an outage the batches waiting out backoffs of up to MaxBackoff are sent
// one after another as soon as Loki takes pushes again, instead of each in
// its own time while the queue waits for a free push; while Loki fails
// some pushes and takes others, the retries go no faster than it takes
// them. closing (nil once closing) ends the wait at once. It returns false
// when Close gave up (c.ctx ended).
func (c *lokiCore) waitRetry(wait, floor, posted time.Duration, closing <-chan struct{}) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	var wake <-chan struct{}
	if floor < wait {
		wake = c.retryNow
	}
	for {
		select {
		case <-t.C:
			return true
		case <-wake:
			wake = nil
			if d := floor - (c.clock() - posted); d > 0 {
				t.Reset(d)
				continue
			}
			return true
		case <-closing: // Close was called during a long backoff: retry now
			return true
		case <-c.ctx.Done():
			return false
		}
	}
}

// pushed lets one push waiting to retry (in waitRetry) go now, if one is
// waiting, after a push succeeded, and reports whether one was. When none
// waits it costs one failed non-blocking send.
func (c *lokiCore) pushed() bool {
	select {
	case c.retryNow <- struct{}{}:
		return true
	default:
		return false
	}
}

func (c *lokiCore) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// backoff is d = MinBackoff * 2^attempt capped at MaxBackoff, with "equal
// jitter": a random duration in [d/2, d], and never less than MinBackoff.
func (c *lokiCore) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 0; i < attempt && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	half := d / 2
	return max(half+rand.N(half+1), c.cfg.MinBackoff)
}

func (c *lokiCore) post(body []byte, contentType string) (status int, retryAfter time.Duration, hasRetryAfter bool, err error) {
	// A panic in the HTTP client (a user's RoundTripper) is a failed push,
	// retried like a network error: on this goroutine it would kill the
	// process.
	defer func() {
		if p := recover(); p != nil {
			status, retryAfter, hasRetryAfter, err = 0, 0, false, fmt.Errorf("logging: loki push panicked: %v", p)
		}
	}()
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, c.pushURL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, false, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "modeltel-logging")
	// Tells VictoriaLogs which field of the JSON line is the message (its
	// _msg); Loki and other receivers ignore it. Headers can replace it.
	req.Header.Set("VL-Msg-Field", slog.MessageKey)
	for k, v := range c.cfg.Headers {
		req.Header.Set(k, v)
	}
	if c.cfg.TenantID != "" {
		req.Header.Set("X-Scope-OrgID", c.cfg.TenantID)
	}
	if c.cfg.Username != "" || c.cfg.Password != "" {
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	if c.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken)
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return 0, 0, false, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	retryAfter, hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return resp.StatusCode, retryAfter, hasRetryAfter, nil
}

// parseRetryAfter reads a Retry-After value (RFC 9110 10.2.3): delay seconds
// or an HTTP-date, a date already past meaning now. ok is false when v is
// absent or neither form.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int64(math.MaxInt64/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

func (c *lokiCore) streamLabels(l slog.Level) string {
	if !c.cfg.LevelLabel {
		return c.baseStream
	}
	if s, ok := c.levelStreams[l]; ok {
		return s
	}
	return labelString(c.cfg.Labels, levelName(l))
}

// encodeScratch is what a push goroutine reuses from one batch to the next
// while encoding protobuf, so that a batch of thousands of lines does not
// leave thousands of objects for the GC. The body itself is new each time:
// the HTTP transport may still read it after the answer came.
type encodeScratch struct {
	streams []push.Stream
	meta    []push.LabelAdapter // every entry's structured metadata, back to back
	hex     []byte              // the ids in hex, back to back
	raw     []byte              // the marshalled request, before snappy
	comp    []byte              // raw compressed, before it is copied out
}

func (c *lokiCore) encode(batch []lokiEntry, sc *encodeScratch) (body []byte, contentType string, err error) {
	if c.cfg.Encoding == EncodingJSON {
		return c.encodeJSON(batch)
	}
	// Sized up front: the entries point into meta and the labels into
	// hex, so neither may move while the request is built.
	sc.meta = slices.Grow(sc.meta[:0], 2*len(batch))
	sc.hex = slices.Grow(sc.hex[:0], 48*len(batch))
	streams := sc.streams[:0]
	for _, e := range batch {
		labels := c.streamLabels(slog.Level(e.level))
		i := slices.IndexFunc(streams, func(s push.Stream) bool { return s.Labels == labels })
		if i < 0 {
			i = len(streams)
			if i < cap(streams) {
				streams = streams[:i+1]
				streams[i].Labels, streams[i].Entries = labels, streams[i].Entries[:0]
			} else {
				streams = append(streams, push.Stream{Labels: labels})
			}
		}
		pe := push.Entry{Timestamp: time.Unix(0, e.ts), Line: e.line}
		if e.hasTrace {
			off := len(sc.hex)
			sc.hex = hex.AppendEncode(sc.hex, e.traceID[:])
			sc.hex = hex.AppendEncode(sc.hex, e.spanID[:])
			ids := unsafe.String(&sc.hex[off], 48)
			k := len(sc.meta)
			sc.meta = append(sc.meta,
				push.LabelAdapter{Name: TraceIDKey, Value: ids[:32]},
				push.LabelAdapter{Name: SpanIDKey, Value: ids[32:]})
			pe.StructuredMetadata = push.LabelsAdapter(sc.meta[k : k+2 : k+2])
		}
		streams[i].Entries = append(streams[i].Entries, pe)
	}
	req := push.PushRequest{Streams: streams}
	n := req.Size()
	if cap(sc.raw) < n {
		sc.raw = make([]byte, n)
	}
	n, err = req.MarshalTo(sc.raw[:n])
	// Keep the slices for the next batch, but not what they point to.
	for i := range streams {
		clear(streams[i].Entries)
	}
	clear(sc.meta)
	sc.streams = streams
	if err != nil {
		return nil, "", err
	}
	// snappy.Encode wants room for its worst case, 117 % of the input:
	// encode into the goroutine's scratch and keep an exact copy (log lines
	// compress to a third or so), which no later batch overwrites while
	// the HTTP client may still read it.
	if m := snappy.MaxEncodedLen(n); cap(sc.comp) < m {
		sc.comp = make([]byte, m)
	}
	return bytes.Clone(snappy.Encode(sc.comp[:cap(sc.comp)], sc.raw[:n])), "application/x-protobuf", nil
}

type jsonStream struct {
	Stream map[string]string `json:"stream"`
	Values [][]any           `json:"values"`
}

func (c *lokiCore) encodeJSON(batch []lokiEntry) ([]byte, string, error) {
	var streams []*jsonStream
	// Keyed by level (one key without LevelLabel): the level's name is
	// needed once per stream, not once per line.
	index := map[slog.Level]*jsonStream{}
	for _, e := range batch {
		var key slog.Level
		if c.cfg.LevelLabel {
			key = slog.Level(e.level)
		}
		s, ok := index[key]
		if !ok {
			labels := maps.Clone(c.cfg.Labels)
			if c.cfg.LevelLabel {
				labels["level"] = levelName(key)
			}
			s = &jsonStream{Stream: labels}
			index[key] = s
			streams = append(streams, s)
		}
		v := []any{strconv.FormatInt(e.ts, 10), e.line}
		if e.hasTrace {
			v = append(v, map[string]string{
				TraceIDKey: hex.EncodeToString(e.traceID[:]),
				SpanIDKey:  hex.EncodeToString(e.spanID[:]),
			})
		}
		s.Values = append(s.Values, v)
	}
	body, err := json.Marshal(struct {
		Streams []*jsonStream `json:"streams"`
	}{streams})
	return body, "application/json", err
}

// warn logs to the fallback handler at most once per WarnInterval.
func (c *lokiCore) warn(msg string, args ...any) {
	now := time.Now()
	ok, suppressed := c.warnGate.Allow(now, c.cfg.WarnInterval)
	if !ok {
		return
	}
	r := slog.NewRecord(now, slog.LevelWarn, msg, 0)
	r.Add(args...)
	r.Add("suppressed_warnings", suppressed, "url", c.pushURL)
	if c.cfg.Fallback.Enabled(context.Background(), slog.LevelWarn) {
		_ = c.cfg.Fallback.Handle(context.Background(), r)
	}
}
