// Package openaistream reads the usage of an OpenAI-style response from the
// bytes a server writes, incrementally: server-sent events
// (text/event-stream, the streaming chat and completions answers) event by
// event, a JSON body (application/json) at its end.
//
// From each event it takes only what telemetry needs: whether the chunk
// carries content (the first such chunk is the first token; with no usage
// chunk, each counts as one output token), the final usage object (input,
// output and cached input tokens), the finish reasons, and the response's
// model and id. Memory is bounded: a partial line is buffered up to MaxBuffer
// bytes, a longer event is skipped, not buffered whole; after the first
// events it allocates nothing. Garbage or a body that is not OpenAI's gives,
// at worst, an empty Result; nothing it is fed can make it panic.
package openaistream

import (
	"bytes"
	"strings"
)

// MaxBuffer bounds the bytes a Parser keeps of an event or line that spans
// writes; a longer one is skipped (counted in Result.Skipped).
const MaxBuffer = 64 << 10

// maxFinish bounds the distinct finish reasons kept.
const maxFinish = 8

// maxDepth bounds JSON nesting: deeper values make the event unreadable.
const maxDepth = 64

// Kind is what a Parser reads its input as.
type Kind uint8

// Kinds.
const (
	// None reads nothing: the body is neither an event stream nor JSON (or
	// it is compressed).
	None Kind = iota
	// SSE reads server-sent events whose data are JSON chunks.
	SSE
	// JSON reads one JSON document.
	JSON
)

// KindOf returns the Kind of a response with the given Content-Type and
// Content-Encoding headers: SSE for text/event-stream, JSON for
// application/json (and +json types), None otherwise and for any encoding
// other than identity.
func KindOf(contentType, contentEncoding string) Kind {
	if contentEncoding != "" && !strings.EqualFold(contentEncoding, "identity") {
		return None
	}
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch {
	case mt == "text/event-stream":
		return SSE
	case mt == "application/json", strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
		return JSON
	}
	return None
}

// Result is what a Parser found so far.
type Result struct {
	// Usage is true once a usage object with token counts was read; the
	// counts below are its values (the last one read wins).
	Usage                                   bool
	InputTokens, OutputTokens, CachedTokens int64
	// ContentChunks counts the events with content (per choice with a
	// non-empty content, reasoning, tool-call or text delta).
	ContentChunks int64
	// Events counts the data events read, [DONE] included.
	Events int64
	// Done is true once the stream's "data: [DONE]" was read.
	Done bool
	// Skipped counts events (or a JSON body) that could not be read: too
	// large or not JSON.
	Skipped int64
	// Model and ID are the response's first "model" and "id".
	Model, ID string
	// FinishReasons are the distinct finish reasons, in order of
	// appearance (at most 8).
	FinishReasons []string
}

// Parser reads one response. The zero value reads nothing; Reset readies it
// for a response. It is not safe for concurrent use.
type Parser struct {
	kind Kind
	res  Result

	// SSE state.
	line     []byte // the partial line of the last write
	data     []byte // the data of the event being read, when copied
	pending  []byte // data of the event being read, in the current input
	hasData  bool   // the event being read has a data line
	dropLine bool   // skipping the rest of an oversized line
	dropEvt  bool   // the event being read is oversized
	afterCR  bool   // the last byte fed was a CR

	// tmpl is the start of the last chunk read in full, up to and with the
	// opening quote of its choices[0].delta.content, where no content was
	// counted and no usage read yet. The chunks of a stream repeat it (id,
	// created, model, fingerprint, index, ...) and differ from there: a
	// chunk that starts with tmpl is read from there on (scanner.resumeAfter),
	// which is what reading it whole would do, as the scanner is a function
	// of the bytes and what it read before is either nothing or idempotent
	// (the first id and model; a finish reason already in the set).
	tmpl []byte
	// tmplEnd is the rest of a chunk that started with tmpl, from its
	// content's closing quote on, when that rest read no usage; tmplN the
	// content chunks such a chunk counts, by whether its content is empty
	// or not. A chunk that starts with tmpl and ends with tmplEnd, its
	// content string running exactly up to it, is read with no more than
	// that (the rest's effects other than the count being idempotent too).
	tmplEnd    []byte
	tmplN      [2]int32
	tmplBuilds int
	noTmpl     bool   // tests: read every chunk in full
	lastModel  string // the model of the response before, kept by Reset

	// JSON state: the whole body up to MaxBuffer, then head and tail.
	body []byte
	tail tailBuf
	over bool
}

// Reset readies p for a response of kind k, keeping its buffers.
func (p *Parser) Reset(k Kind) {
	fr := p.res.FinishReasons[:0]
	if p.res.Model != "" {
		p.lastModel = p.res.Model
	}
	*p = Parser{kind: k, line: p.line[:0], data: p.data[:0], body: p.body[:0], tail: tailBuf{b: p.tail.b[:0]},
		tmpl: p.tmpl[:0], tmplEnd: p.tmplEnd[:0], noTmpl: p.noTmpl, lastModel: p.lastModel}
	p.res.FinishReasons = fr
}

// Done reports whether the stream's "data: [DONE]" was read.
func (p *Parser) Done() bool { return p.res.Done }

// Kind returns the kind p reads.
func (p *Parser) Kind() Kind { return p.kind }

// Result returns what p found so far. FinishReasons is p's own slice, valid
// until the next Reset.
func (p *Parser) Result() Result { return p.res }

// Feed reads b, the next bytes of the response, and returns the number of
// content chunks (see Result.ContentChunks) that completed in it. p does not
// keep b, nor write to it.
func (p *Parser) Feed(b []byte) int {
	switch p.kind {
	case SSE:
		return p.feedSSE(b)
	case JSON:
		p.feedJSON(b)
	}
	return 0
}

// Finish ends the response: a JSON body is read now; an event left without
// its closing blank line is read as if it had one. It returns the content
// chunks that completed so (as Feed does). Feed and Finish do nothing after
// Finish, until Reset.
func (p *Parser) Finish() int {
	before := p.res.ContentChunks
	switch p.kind {
	case SSE:
		if len(p.line) > 0 && !p.dropLine {
			p.processLine(p.line)
		}
		p.line = p.line[:0]
		p.dispatch()
	case JSON:
		p.finishJSON()
	}
	p.kind = None
	return int(p.res.ContentChunks - before)
}

func (p *Parser) feedSSE(b []byte) int {
	before := p.res.ContentChunks
	if p.afterCR && len(b) > 0 {
		p.afterCR = false
		if b[0] == '\n' {
			b = b[1:]
		}
	}
	for len(b) > 0 {
		i := lineEnd(b)
		if i < 0 {
			if p.pending != nil {
				// The event's data may lie in p.line, which partial
				// overwrites.
				p.copyPending()
			}
			p.partial(b)
			break
		}
		seg := b[:i]
		switch {
		case p.dropLine:
			p.dropLine = false
		case len(p.line) > 0:
			if len(p.line)+len(seg) > MaxBuffer {
				p.dropEvent()
			} else {
				p.line = append(p.line, seg...)
				p.processLine(p.line)
			}
			p.line = p.line[:0]
		default:
			p.processLine(seg)
		}
		if b[i] == '\r' {
			if i+1 == len(b) {
				p.afterCR = true
			} else if b[i+1] == '\n' {
				i++
			}
		}
		b = b[i+1:]
	}
	// The event's data may lie in b, which the caller reuses.
	if p.pending != nil {
		p.copyPending()
	}
	return int(p.res.ContentChunks - before)
}

// lineEnd returns the index of the first CR or LF in b, or -1.
func lineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	s := b
	if i >= 0 {
		s = b[:i]
	}
	if j := bytes.IndexByte(s, '\r'); j >= 0 {
		return j
	}
	return i
}

// partial keeps the start of a line that the next write ends.
func (p *Parser) partial(b []byte) {
	if p.dropLine {
		return
	}
	if len(p.line)+len(b) > MaxBuffer {
		p.line = p.line[:0]
		p.dropLine = true
		p.dropEvent()
		return
	}
	p.line = append(p.line, b...)
}

func (p *Parser) dropEvent() {
	p.dropEvt = true
	p.pending = nil
	p.data = p.data[:0]
}

func (p *Parser) copyPending() {
	if len(p.data)+len(p.pending) > MaxBuffer {
		p.dropEvent()
		return
	}
	p.data = append(p.data, p.pending...)
	p.pending = nil
}

// processLine handles one complete line (without its end).
func (p *Parser) processLine(l []byte) {
	if len(l) == 0 {
		p.dispatch()
		return
	}
	if p.dropEvt || len(l) < 4 || l[0] != 'd' || l[1] != 'a' || l[2] != 't' || l[3] != 'a' {
		return // a comment (":..."), another field, or a dropped event
	}
	v := l[4:]
	switch {
	case len(v) == 0:
	case v[0] != ':':
		return // a field named "data..." but longer
	default:
		v = v[1:]
		if len(v) > 0 && v[0] == ' ' {
			v = v[1:]
		}
	}
	switch {
	case len(v) > MaxBuffer:
		p.dropEvent()
	case !p.hasData:
		p.hasData = true
		p.pending = v
	default:
		if p.pending != nil {
			p.copyPending()
			if p.dropEvt {
				return
			}
		}
		if len(p.data)+1+len(v) > MaxBuffer {
			p.dropEvent()
			return
		}
		p.data = append(p.data, '\n')
		p.data = append(p.data, v...)
	}
}

// dispatch ends the event being read.
func (p *Parser) dispatch() {
	switch {
	case p.dropEvt:
		p.res.Skipped++
	case !p.hasData:
	case p.pending != nil:
		p.event(p.pending)
	default:
		p.event(p.data)
	}
	p.hasData, p.dropEvt, p.pending, p.data = false, false, nil, p.data[:0]
}

var doneMark = []byte("[DONE]")

func (p *Parser) event(d []byte) {
	p.res.Events++
	d = bytes.TrimSpace(d)
	if bytes.Equal(d, doneMark) {
		p.res.Done = true
		return
	}
	if len(d) == 0 || d[0] != '{' {
		p.res.Skipped++
		return
	}
	var n int
	var s scanner
	if t := len(p.tmpl); t > 0 && len(d) > t && bytes.Equal(d[:t], p.tmpl) {
		s = scanner{b: d, i: t - 1}
		raw, _, ok := s.str()
		c, end := ok && len(raw) > 0, s.i-1
		if e := len(p.tmplEnd); ok && e > 0 && end == len(d)-e && bytes.Equal(d[end:], p.tmplEnd) {
			p.res.ContentChunks += int64(p.tmplN[b2i(c)])
			return
		}
		n = s.resumeAfter(p, c)
		if ok && !s.bad && !s.sawUsage && p.tmplBuilds < maxTemplateBuilds && len(d)-end <= maxTemplate {
			p.templateEnd(d, end, c, n)
		}
	} else {
		s = scanner{b: d, mark: -1}
		n = s.topLevel(p)
		if !s.bad && s.mark >= 0 && s.mark < maxTemplate && !p.noTmpl {
			p.tmpl = append(p.tmpl[:0], d[:s.mark+1]...)
			p.tmplEnd = p.tmplEnd[:0]
		}
	}
	if s.bad {
		p.res.Skipped++
	}
	p.res.ContentChunks += int64(n)
}

// maxTemplate bounds Parser.tmpl and tmplEnd.
const maxTemplate = 2 << 10

// maxTemplateBuilds bounds the tmplEnd a Parser makes in a response: the
// chunks of a stream whose ends all differ (OpenAI's obfuscation field) are
// then read from tmpl on, with no more attempts at a template end.
const maxTemplateBuilds = 4

// templateEnd keeps the end of chunk d from end, its content's closing
// quote, as tmplEnd: d starts with tmpl, was read without error and read n
// content chunks with content c; it reads d's end again with the other c.
func (p *Parser) templateEnd(d []byte, end int, c bool, n int) {
	p.tmplBuilds++
	s := scanner{b: d, i: end + 1}
	m := s.resumeAfter(p, !c)
	if s.bad {
		return
	}
	p.tmplN[b2i(c)], p.tmplN[b2i(!c)] = int32(n), int32(m)
	p.tmplEnd = append(p.tmplEnd[:0], d[end:]...)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// feedJSON keeps the body: whole up to MaxBuffer; beyond, its first
// MaxBuffer bytes and its last tailSize bytes.
func (p *Parser) feedJSON(b []byte) {
	if !p.over {
		if len(p.body)+len(b) <= MaxBuffer {
			p.body = append(p.body, b...)
			return
		}
		p.over = true
		room := MaxBuffer - len(p.body)
		p.body = append(p.body, b[:room]...)
		b = b[room:]
	}
	p.tail.write(b)
}

func (p *Parser) finishJSON() {
	if !p.over {
		d := bytes.TrimSpace(p.body)
		if len(d) == 0 {
			return
		}
		if _, ok := p.readDoc(d); !ok {
			p.res.Skipped++
		}
		return
	}
	// Too large to read whole (say embeddings): the id and model from the
	// head, the usage from the tail, where OpenAI puts it.
	p.res.Skipped++
	s := scanner{b: p.body}
	s.topLevel(p)
	t := p.tail.bytes()
	for i := len(t); i > 0; {
		j := bytes.LastIndex(t[:i], usageKey)
		if j < 0 {
			break
		}
		s := scanner{b: t, i: j + len(usageKey)}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ':' {
			s.i++
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == '{' && s.usage(p) {
				return
			}
		}
		i = j
	}
}

var usageKey = []byte(`"usage"`)

const tailSize = 8 << 10

// tailBuf keeps the last tailSize bytes written.
type tailBuf struct {
	b   []byte
	pos int // next write position once full
}

func (t *tailBuf) write(b []byte) {
	if len(b) >= tailSize {
		t.b = append(t.b[:0], b[len(b)-tailSize:]...)
		t.pos = 0
		return
	}
	for len(b) > 0 {
		if len(t.b) < tailSize {
			n := min(tailSize-len(t.b), len(b))
			t.b = append(t.b, b[:n]...)
			b = b[n:]
			continue
		}
		n := copy(t.b[t.pos:], b)
		t.pos = (t.pos + n) % tailSize
		b = b[n:]
	}
}

func (t *tailBuf) bytes() []byte {
	if len(t.b) < tailSize || t.pos == 0 {
		return t.b
	}
	out := make([]byte, 0, tailSize)
	out = append(out, t.b[t.pos:]...)
	return append(out, t.b[:t.pos]...)
}

// readDoc reads one JSON chunk or body; it returns the content chunks it
// found and false when d is no JSON object it could read to its end.
func (p *Parser) readDoc(d []byte) (int, bool) {
	s := scanner{b: d}
	n := s.topLevel(p)
	return n, !s.bad
}

func (p *Parser) setString(dst *string, raw []byte, escaped bool) {
	if *dst != "" || len(raw) == 0 || len(raw) > 256 {
		return
	}
	if escaped {
		if v, ok := unescape(raw); ok {
			*dst = v
		}
		return
	}
	if dst == &p.res.Model && string(raw) == p.lastModel {
		*dst = p.lastModel // a server's responses name the same models
		return
	}
	*dst = string(raw)
}

func (p *Parser) addFinish(raw []byte) {
	for _, f := range p.res.FinishReasons {
		if f == string(raw) {
			return
		}
	}
	if len(p.res.FinishReasons) >= maxFinish || len(raw) == 0 || len(raw) > 64 {
		return
	}
	var v string
	switch string(raw) {
	case "stop":
		v = "stop"
	case "length":
		v = "length"
	case "tool_calls":
		v = "tool_calls"
	case "content_filter":
		v = "content_filter"
	case "function_call":
		v = "function_call"
	default:
		v = string(raw)
	}
	p.res.FinishReasons = append(p.res.FinishReasons, v)
}
