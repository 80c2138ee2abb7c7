package training

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// DefaultMaxLineBytes is the longest trainer output line Ingest reads whole;
// the rest of a longer line is skipped and counted as overlong.
const DefaultMaxLineBytes = 64 << 10

// IngestOption configures Ingest; a nil IngestOption is ignored.
type IngestOption interface {
	applyIngest(*ingestConfig)
}

type ingestOptionFunc func(*ingestConfig)

func (f ingestOptionFunc) applyIngest(c *ingestConfig) { f(c) }

type ingestConfig struct {
	text    func(string)
	event   func(Event)
	onError func(*LineError)
	maxLine int
}

// WithTextLine sets the function that receives the lines that are not training
// records: plain text (print output, warnings) and JSON objects with none of
// the fields Ingest reads (structured logs). Lines that are not valid JSON
// although they start with '{' are counted as errors and passed to it too.
// It is called from the goroutine that called Ingest, one line at a time,
// without the trailing newline. A nil function, the default, drops them.
func WithTextLine(f func(line string)) IngestOption {
	return ingestOptionFunc(func(c *ingestConfig) { c.text = f })
}

// WithEvent sets the function that receives every event line (a JSON object
// with an "event" field), after a checkpoint or resume event has been
// recorded in the Metrics. It is called from the goroutine that called
// Ingest. Nil, the default, ignores events beyond the metrics.
func WithEvent(f func(Event)) IngestOption {
	return ingestOptionFunc(func(c *ingestConfig) { c.event = f })
}

// WithErrorHandler sets the function that receives each line, or field, that
// could not be used, with its line number. Such errors are always counted in
// training_ingest_errors_total and never stop Ingest. It is called from the
// goroutine that called Ingest. Nil, the default, only counts them.
func WithErrorHandler(f func(*LineError)) IngestOption {
	return ingestOptionFunc(func(c *ingestConfig) { c.onError = f })
}

// WithMaxLineBytes sets the longest line Ingest reads whole (default
// DefaultMaxLineBytes); a longer line is skipped and counted as overlong.
// Values below 64 keep the default. Memory follows the lines that arrive, not
// the limit: a large limit costs nothing until a line that long is read.
func WithMaxLineBytes(n int) IngestOption {
	return ingestOptionFunc(func(c *ingestConfig) {
		if n >= 64 {
			c.maxLine = n
		}
	})
}

// Event is an event line of the trainer, a JSON object with an "event" field,
// for example {"event":"checkpoint","step":500,"duration":12.5,"bytes":1048576}.
// Step, Duration and Bytes are zero when the line does not have them. Ingest
// records two events in the Metrics: "checkpoint" (ObserveCheckpoint; a
// duration is required) and "resume" (ObserveResume: the trainer restored
// the checkpoint of step, in duration; a step is required).
type Event struct {
	Name     string
	Line     int
	Step     int64
	Duration time.Duration
	Bytes    int64
	Raw      string
}

// LineError is a trainer output line, or one field of it, that Ingest could
// not use. Reason is ReasonSyntax, ReasonValue or ReasonOverlong; Field names
// the offending field for ReasonValue.
type LineError struct {
	Line   int
	Reason string
	Field  string
	Err    error
}

// Error implements error.
func (e *LineError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("training: ingest: line %d: %s: field %q: %v", e.Line, e.Reason, e.Field, e.Err)
	}
	return fmt.Sprintf("training: ingest: line %d: %s: %v", e.Line, e.Reason, e.Err)
}

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// Ingest reads the JSON lines a trainer prints and records them in m until r
// reaches EOF (it returns nil) or ctx is done (it returns ctx.Err()). See the
// package documentation for the line format. Lines that cannot be used are
// counted in training_ingest_errors_total, given to WithErrorHandler, and
// skipped; they never stop Ingest. A read error other than EOF is returned.
//
// Ingest reads r in a goroutine of its own, so it returns promptly when ctx is
// done even while r blocks; that goroutine then ends when its pending Read
// returns, so a caller that cancels should also close r (an *os.File pipe, for
// example, unblocks on Close). No callback runs after Ingest has returned.
// A nil m parses and calls the callbacks without recording metrics.
func Ingest(ctx context.Context, r io.Reader, m *Metrics, opts ...IngestOption) error {
	if r == nil {
		return errors.New("training: ingest: nil reader")
	}
	c := ingestConfig{maxLine: DefaultMaxLineBytes}
	for _, o := range opts {
		if o != nil {
			o.applyIngest(&c)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	lines := make(chan rawLine, 64)
	done := make(chan struct{})
	defer close(done)
	go readLines(r, c.maxLine, lines, done)

	in := ingester{cfg: &c, m: m}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l := <-lines:
			if l.overlong || l.b != nil {
				in.line++
			}
			switch {
			case l.overlong:
				in.fail(ReasonOverlong, "", fmt.Errorf("longer than %d bytes, skipped", c.maxLine))
			case l.b != nil:
				in.handle(l.b)
			}
			if l.err != nil {
				if l.err == io.EOF {
					return nil
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				return fmt.Errorf("training: ingest: read: %w", l.err)
			}
		}
	}
}

// rawLine is one line read (b, or overlong), the end of input (err), or both
// (a last line without newline).
type rawLine struct {
	b        []byte
	overlong bool
	err      error
}

func readLines(r io.Reader, maxLine int, out chan<- rawLine, done <-chan struct{}) {
	// The reader's buffer is at most readBufferBytes, whatever maxLine is:
	// a line longer than that is gathered in a buffer of its own that grows
	// with the line, so a large limit costs memory only when a line that long
	// arrives.
	br := bufio.NewReaderSize(r, min(maxLine, readBufferBytes))
	send := func(l rawLine) bool {
		select {
		case out <- l:
			return true
		case <-done:
			return false
		}
	}
	var long []byte // a line longer than the reader's buffer, so far
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || long != nil {
			if n := len(long) + len(b); n > maxLine && (n > maxLine+1 || b[len(b)-1] != '\n') {
				long = nil
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				if !send(rawLine{overlong: true, err: err}) || err != nil {
					return
				}
				continue
			}
			long = append(long, b...)
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			b, long = long, nil
			if !send(rawLine{b: b, err: err}) || err != nil {
				return
			}
			continue
		}
		if len(b) == 0 {
			if err != nil {
				send(rawLine{err: err})
				return
			}
			continue
		}
		if !send(rawLine{b: bytes.Clone(b), err: err}) || err != nil {
			return
		}
	}
}

// readBufferBytes is the most the line reader buffers up front.
const readBufferBytes = 64 << 10

type ingester struct {
	cfg  *ingestConfig
	m    *Metrics
	line int
	// Step-time derivation from the arrival of step lines.
	prevStep    float64
	hasPrevStep bool
	prevTime    time.Time
	hasPrevTime bool
}

func (in *ingester) fail(reason, field string, err error) {
	in.m.ingestError(reason)
	if in.cfg.onError != nil {
		in.cfg.onError(&LineError{Line: in.line, Reason: reason, Field: field, Err: err})
	}
}

func (in *ingester) text(b []byte) {
	if in.cfg.text != nil {
		in.cfg.text(string(b))
	}
}

func (in *ingester) now() time.Time {
	if in.m == nil {
		return time.Now()
	}
	return in.m.now()
}

func (in *ingester) handle(raw []byte) {
	b := bytes.TrimRight(raw, "\r\n")
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	rec, err := parseLine(b)
	switch {
	case err != nil:
		in.fail(ReasonSyntax, "", err)
		in.text(b)
		return
	case rec.kind == kindText:
		in.text(b)
		return
	}
	for _, fe := range rec.errs {
		in.fail(ReasonValue, fe.field, fe.err)
	}
	if rec.kind == kindEvent {
		in.event(rec, b)
		return
	}
	if rec.has&hasEpoch != 0 && in.m != nil {
		in.m.setEpoch(rec.epoch)
	}
	if rec.has&hasDataWait != 0 {
		if rec.kind == kindStep {
			// The wait before this step: the step accounts it.
			if in.m != nil {
				in.m.dataWait.Observe(rec.dataWait)
			}
		} else {
			in.m.ObserveDataWait(seconds(rec.dataWait))
		}
	}
	if rec.kind == kindStep {
		in.step(rec)
	}
}

func (in *ingester) event(rec *record, b []byte) {
	now := in.now()
	ev := Event{Name: rec.event, Line: in.line, Raw: string(b)}
	if rec.has&hasStep != 0 {
		ev.Step = int64(rec.step)
	}
	if rec.has&hasDuration != 0 {
		ev.Duration = seconds(rec.duration)
	}
	if rec.has&hasBytes != 0 {
		// float64(math.MaxInt64) is 2^63, which does not convert back to an
		// int64 (on amd64 it becomes a negative number).
		if rec.bytes >= 1<<63 {
			ev.Bytes = math.MaxInt64
		} else {
			ev.Bytes = int64(rec.bytes)
		}
	}
	if rec.event == "checkpoint" {
		if rec.has&hasDuration == 0 {
			if !rec.badDuration {
				in.fail(ReasonValue, "duration", errors.New("checkpoint event without a duration"))
			}
		} else if in.m != nil {
			in.m.checkpoint(now, ev.Duration, rec.bytes) // finite and >= 0 (parseLine)
		}
		// The next step's derived time should not include the checkpoint.
		in.prevTime, in.hasPrevTime = now, true
	}
	if rec.event == "resume" {
		if rec.has&hasStep == 0 {
			if !rec.badStep {
				in.fail(ReasonValue, "step", errors.New("resume event without a step"))
			}
		} else {
			if in.m != nil {
				in.m.gp.resume(now, ev.Step, ev.Duration)
			}
			// The next step line counts from the checkpoint's step, and
			// its derived time does not include the restore.
			in.prevStep, in.hasPrevStep = rec.step, true
			in.prevTime, in.hasPrevTime = now, true
		}
	}
	if in.cfg.event != nil {
		in.cfg.event(ev)
	}
}

func (in *ingester) step(rec *record) {
	now := in.now()
	o := observation{steps: 1, has: uint8(rec.has & (hasLoss | hasLR | hasGradNorm)), num: int64(rec.step), hasNum: true}
	o.result.Loss, o.result.LearningRate, o.result.GradNorm = rec.loss, rec.lr, rec.gradNorm
	if rec.has&hasSamples != 0 {
		o.samples = rec.samples
	}
	if rec.has&hasTokens != 0 {
		o.tokens = rec.tokens
	}
	if rec.has&hasStep != 0 {
		if in.hasPrevStep {
			switch {
			case rec.step > in.prevStep:
				o.steps = rec.step - in.prevStep
			case rec.step == in.prevStep:
				// Another line about the step just recorded (an eval line,
				// say): its values count, it is no new step and has no time.
				if in.m != nil {
					in.m.record(now, observation{has: o.has, result: o.result, samples: o.samples, tokens: o.tokens})
				}
				return
			default:
				// The trainer went back to an earlier step: it restarted
				// from a checkpoint. The time since the previous line
				// includes the restart, so this step has none of its own.
				in.hasPrevTime = false
			}
		}
		in.prevStep, in.hasPrevStep = rec.step, true
	}
	switch {
	case rec.has&hasStepTime != 0:
		o.dur, o.hasDur = seconds(rec.stepTime), true
		o.span = seconds(rec.stepTime * o.steps)
	case in.hasPrevTime:
		o.span = now.Sub(in.prevTime)
		o.dur, o.hasDur = time.Duration(float64(o.span)/o.steps), true
		// The time since the previous line includes this step's data wait.
		o.waitInside = true
	}
	if rec.has&hasDataWait != 0 {
		o.wait = seconds(rec.dataWait)
	}
	in.prevTime, in.hasPrevTime = now, true
	if in.m != nil {
		in.m.record(now, o)
	}
}

func seconds(s float64) time.Duration {
	d := s * float64(time.Second)
	if d >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(d)
}

// Line kinds.
const (
	kindText  = iota // not a training record: plain text or another JSON object
	kindStep         // has "step"
	kindEvent        // has "event"
	kindOther        // epoch or data_wait only
)

// Bits of record.has beyond hasLoss, hasLR and hasGradNorm.
const (
	hasStep = 1 << (iota + 3)
	hasSamples
	hasTokens
	hasStepTime
	hasEpoch
	hasDataWait
	hasDuration
	hasBytes
)

// record is one parsed trainer output line.
type record struct {
	kind                             int
	has                              uint16
	step, loss, lr, gradNorm         float64
	samples, tokens, stepTime, epoch float64
	dataWait, duration, bytes        float64
	event                            string
	badDuration, badStep             bool
	errs                             []fieldError
}

type fieldError struct {
	field string
	err   error
}

// line is the JSON object of a trainer output line. Fields are kept raw so
// that one bad value does not lose the others.
type line struct {
	Event        json.RawMessage `json:"event"`
	Step         json.RawMessage `json:"step"`
	Loss         json.RawMessage `json:"loss"`
	LR           json.RawMessage `json:"lr"`
	LearningRate json.RawMessage `json:"learning_rate"`
	GradNorm     json.RawMessage `json:"grad_norm"`
	Samples      json.RawMessage `json:"samples"`
	Tokens       json.RawMessage `json:"tokens"`
	StepTime     json.RawMessage `json:"step_time"`
	Epoch        json.RawMessage `json:"epoch"`
	DataWait     json.RawMessage `json:"data_wait"`
	Duration     json.RawMessage `json:"duration"`
	Bytes        json.RawMessage `json:"bytes"`
}

// parseLine parses one trainer output line (without its newline). A line that
// does not start with '{' is text. A line that does but is not a JSON object
// is an error. Python's NaN, Infinity and -Infinity are accepted as numbers.
func parseLine(b []byte) (*record, error) {
	b = bytes.TrimSpace(b)
	rec := &record{}
	if len(b) == 0 || b[0] != '{' {
		return rec, nil
	}
	var l line
	if err := json.Unmarshal(quoteNonFinite(b), &l); err != nil {
		return nil, err
	}
	num := func(raw json.RawMessage, name string, bit uint16, dst *float64, check func(float64) error) {
		if raw == nil || bytes.Equal(raw, []byte("null")) {
			return
		}
		v, err := parseNumber(raw)
		if err == nil && check != nil {
			err = check(v)
		}
		if err != nil {
			rec.errs = append(rec.errs, fieldError{name, err})
			return
		}
		*dst = v
		rec.has |= bit
	}
	if l.Event != nil && !bytes.Equal(l.Event, []byte("null")) {
		rec.kind = kindEvent
		var name string
		if err := json.Unmarshal(l.Event, &name); err != nil || name == "" {
			rec.errs = append(rec.errs, fieldError{"event", errors.New("not a non-empty string")})
			name = "unknown"
		}
		rec.event = name
		num(l.Step, "step", hasStep, &rec.step, count)
		num(l.Duration, "duration", hasDuration, &rec.duration, secondsValue)
		num(l.Bytes, "bytes", hasBytes, &rec.bytes, count)
		rec.badDuration = l.Duration != nil && rec.has&hasDuration == 0
		rec.badStep = l.Step != nil && rec.has&hasStep == 0
		return rec, nil
	}
	if l.Step != nil {
		// A step that is not a number ({"step":"three"}) is a value error
		// and no step: the line is then only what else it carries.
		n := len(rec.errs)
		num(l.Step, "step", hasStep, &rec.step, count)
		if len(rec.errs) == n {
			rec.kind = kindStep
		}
	}
	num(l.Epoch, "epoch", hasEpoch, &rec.epoch, count)
	num(l.DataWait, "data_wait", hasDataWait, &rec.dataWait, secondsValue)
	if rec.kind != kindStep {
		if rec.has&(hasEpoch|hasDataWait) != 0 || len(rec.errs) > 0 {
			rec.kind = kindOther
		}
		return rec, nil
	}
	num(l.Loss, "loss", hasLoss, &rec.loss, nil)
	if l.LR != nil {
		num(l.LR, "lr", hasLR, &rec.lr, finite)
	} else {
		num(l.LearningRate, "learning_rate", hasLR, &rec.lr, finite)
	}
	num(l.GradNorm, "grad_norm", hasGradNorm, &rec.gradNorm, nil)
	num(l.Samples, "samples", hasSamples, &rec.samples, count)
	num(l.Tokens, "tokens", hasTokens, &rec.tokens, count)
	num(l.StepTime, "step_time", hasStepTime, &rec.stepTime, secondsValue)
	return rec, nil
}

func finite(v float64) error {
	if !isFinite(v) {
		return errors.New("not finite")
	}
	return nil
}

func nonNegative(v float64) error {
	if !isFinite(v) || v < 0 {
		return fmt.Errorf("%v is not a finite number >= 0", v)
	}
	return nil
}

// Bounds of the values a trainer can produce. Larger ones are value errors:
// they come from a bug or a corrupted line, and let through they would turn
// the counters (and MFU) into +Inf, which breaks every rate() over them.
const (
	// MaxCount bounds step numbers, epochs, samples, tokens and checkpoint
	// bytes of one line: 2^53, the largest integer a float64 (the number
	// type of JSON in Python and JavaScript) holds exactly. Counters fed
	// values up to it cannot reach +Inf in any real run.
	MaxCount = 1 << 53
	// MaxSeconds bounds step_time, data_wait and a checkpoint's duration:
	// 10^7 s, about 116 days.
	MaxSeconds = 1e7
)

func count(v float64) error {
	if err := nonNegative(v); err != nil {
		return err
	}
	if v > MaxCount {
		return fmt.Errorf("%v is larger than %d, more than any trainer produces", v, int64(MaxCount))
	}
	return nil
}

func secondsValue(v float64) error {
	if err := nonNegative(v); err != nil {
		return err
	}
	if v > MaxSeconds {
		return fmt.Errorf("%v s is longer than %g s, more than any trainer reports", v, float64(MaxSeconds))
	}
	return nil
}

// parseNumber parses a JSON number, or a string holding a number or one of
// NaN, Infinity, -Infinity (and the other spellings strconv accepts).
func parseNumber(raw json.RawMessage) (float64, error) {
	s := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
	} else if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f') {
		return 0, fmt.Errorf("%.32s is not a number", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return v, nil // ±Inf or 0 from an out-of-range literal
		}
		return 0, fmt.Errorf("%.32q is not a number", s)
	}
	return v, nil
}

// quoteNonFinite rewrites the bare tokens NaN, Infinity and -Infinity that
// Python's json module writes into JSON strings, outside of strings. It
// returns b itself when there is nothing to rewrite.
func quoteNonFinite(b []byte) []byte {
	if !bytes.Contains(b, []byte("NaN")) && !bytes.Contains(b, []byte("Infinity")) {
		return b
	}
	var out []byte
	inString, escaped := false, false
	last := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			continue
		}
		var tok string
		switch {
		case bytes.HasPrefix(b[i:], []byte("NaN")):
			tok = "NaN"
		case bytes.HasPrefix(b[i:], []byte("Infinity")):
			tok = "Infinity"
		case bytes.HasPrefix(b[i:], []byte("-Infinity")):
			tok = "-Infinity"
		default:
			continue
		}
		out = append(out, b[last:i]...)
		out = append(out, '"')
		out = append(out, tok...)
		out = append(out, '"')
		i += len(tok) - 1
		last = i + 1
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}
