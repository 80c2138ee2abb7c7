package openaistream

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
)

// scanner walks one JSON document, reading the few fields a Parser wants
// and skipping the rest without decoding it: string contents are passed over
// with bytes.IndexByte. It validates only what it needs to find its way; bad
// is set when it lost it.
type scanner struct {
	b   []byte
	i   int
	bad bool
	// mark is the cursor at the template mark (see Parser.tmpl), -1 while
	// none was seen; marking is on only when it starts at -1.
	mark     int
	markEnd  int // the closing quote of the string at mark
	sawUsage bool
}

func (s *scanner) fail() bool { s.bad = true; return false }

func (s *scanner) ws() {
	// Compact JSON has no whitespace: one comparison answers (every JSON
	// whitespace byte is <= ' ').
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return
	}
	s.wsSlow()
}

func (s *scanner) wsSlow() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the byte at the cursor, 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads the string at the cursor (its opening quote) and returns its
// raw contents and whether they hold an escape.
func (s *scanner) str() (raw []byte, escaped, ok bool) {
	start := s.i + 1
	j := start
	// Eight bytes at a time: the first quote or backslash.
	for ; j+8 <= len(s.b); j += 8 {
		if m := stopMask(binary.LittleEndian.Uint64(s.b[j:])); m != 0 {
			j += bits.TrailingZeros64(m) >> 3
			if s.b[j] == '"' {
				s.i = j + 1
				return s.b[start:j], false, true
			}
			return s.strSlow(start)
		}
	}
	for ; j < len(s.b); j++ {
		switch s.b[j] {
		case '"':
			s.i = j + 1
			return s.b[start:j], false, true
		case '\\':
			return s.strSlow(start)
		}
	}
	return nil, false, s.fail()
}

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// stopMask has the high bit set of the bytes of v (little-endian) that are
// a quote or a backslash, and maybe of some above the first such: its
// lowest set bit is exact (the classic has-zero-byte test, whose borrow only
// runs upwards from a zero byte).
func stopMask(v uint64) uint64 {
	q := v ^ ('"' * lsbs)
	e := v ^ ('\\' * lsbs)
	return ((q-lsbs)&^q | (e-lsbs)&^e) & msbs
}

func (s *scanner) strSlow(start int) (raw []byte, escaped, ok bool) {
	j := start
	for {
		if j > len(s.b) {
			return nil, false, s.fail()
		}
		k := bytes.IndexByte(s.b[j:], '"')
		if k < 0 {
			return nil, false, s.fail()
		}
		q := j + k
		n := 0
		for p := q - 1; p >= start && s.b[p] == '\\'; p-- {
			n++
		}
		if n > 0 {
			escaped = true
		}
		if n%2 == 0 {
			s.i = q + 1
			raw = s.b[start:q]
			if !escaped {
				escaped = bytes.IndexByte(raw, '\\') >= 0
			}
			return raw, escaped, true
		}
		j = q + 1
	}
}

// key reads `"key" :` and returns the raw key.
func (s *scanner) key() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, s.fail()
	}
	k, _, ok := s.str()
	if !ok {
		return nil, false
	}
	s.ws()
	if s.peek() != ':' {
		return nil, s.fail()
	}
	s.i++
	s.ws()
	return k, true
}

// next moves past the separator after a member or element: true when
// another follows, false at the closing bracket (or on error: see bad).
func (s *scanner) next(closer byte) bool {
	s.ws()
	switch s.peek() {
	case ',':
		s.i++
		s.ws()
		return true
	case closer:
		s.i++
		return false
	}
	return s.fail()
}

// open moves past an opening bracket and reports whether the container has
// members (false for an empty one, which it also moves past).
func (s *scanner) open(closer byte) bool {
	s.i++
	s.ws()
	if s.peek() == closer {
		s.i++
		return false
	}
	return true
}

// skip moves past the value at the cursor.
func (s *scanner) skip() bool {
	switch s.peek() {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				if depth++; depth > maxDepth {
					return s.fail()
				}
			case '}', ']':
				if depth--; depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return s.fail()
	case 0:
		return s.fail()
	}
	j := s.i
	for j < len(s.b) {
		switch s.b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			ok := j > s.i
			s.i = j
			return ok || s.fail()
		}
		j++
	}
	ok := j > s.i
	s.i = j
	return ok || s.fail()
}

// isNull moves past a null at the cursor and reports whether there was one.
func (s *scanner) isNull() bool {
	if bytes.HasPrefix(s.b[s.i:], nullLit) {
		s.i += len(nullLit)
		return true
	}
	return false
}

var nullLit = []byte("null")

// int reads a non-negative integer (a number with a fraction or exponent
// gives its integer part); ok is false for anything else.
func (s *scanner) int() (int64, bool) {
	var v int64
	j := s.i
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		if v < 1<<50 {
			v = v*10 + int64(s.b[j]-'0')
		}
		j++
	}
	if j == s.i {
		s.skip()
		return 0, false
	}
	s.i = j
	if s.peek() == '.' || s.peek() == 'e' || s.peek() == 'E' {
		if !s.skip() {
			return 0, false
		}
	}
	return v, true
}

// nonEmptyString moves past the value at the cursor and reports whether it
// is a string with at least one byte.
func (s *scanner) nonEmptyString() bool {
	if s.peek() != '"' {
		s.skip()
		return false
	}
	raw, _, ok := s.str()
	return ok && len(raw) > 0
}

// topLevel reads a chunk or body: its id, model, choices and usage. It
// returns the choices with content.
func (s *scanner) topLevel(p *Parser) int {
	s.ws()
	if s.peek() != '{' {
		s.fail()
		return 0
	}
	if !s.open('}') {
		return 0
	}
	return s.topMembers(p, 0, false)
}

// resumeAfter reads the rest of a chunk whose start is the Parser's
// template (see Parser.tmpl) and whose content string ends at the cursor,
// with content c (it is non-empty): the template ends at the opening quote
// of choices[0].delta.content, reached with no content counted yet and no
// usage read. It returns what topLevel would.
func (s *scanner) resumeAfter(p *Parser, c bool) int {
	c = s.deltaMembers(c, false, true)
	n := 0
	if s.choiceMembers(p, c, false, true) {
		n = 1
	}
	n = s.choiceElems(p, n, false, true)
	return s.topMembers(p, n, true)
}

// The ...Members and choiceElems loops read an object's members (an
// array's elements) from the cursor on; resumed starts them after a value,
// at its separator, which is where resumeAfter enters them.

func (s *scanner) topMembers(p *Parser, n int, resumed bool) int {
	for ; ; resumed = false {
		if !resumed {
			k, ok := s.key()
			if !ok {
				return n
			}
			switch string(k) {
			case "id", "model":
				dst := &p.res.ID
				if k[0] == 'm' {
					dst = &p.res.Model
				}
				if *dst != "" || s.peek() != '"' {
					s.skip()
					break
				}
				if raw, esc, ok := s.str(); ok {
					p.setString(dst, raw, esc)
				}
			case "choices":
				n += s.choices(p, n == 0 && !s.sawUsage)
			case "usage":
				if s.isNull() {
					break
				}
				s.sawUsage = true
				s.usage(p)
			default:
				s.skip()
			}
		}
		if s.bad || !s.next('}') {
			return n
		}
	}
}

// choices reads the choices array: finish reasons, and the choices whose
// delta (or text) carries content. mark allows the template mark in its
// first element.
func (s *scanner) choices(p *Parser, mark bool) int {
	if s.peek() != '[' {
		s.skip()
		return 0
	}
	if !s.open(']') {
		return 0
	}
	return s.choiceElems(p, 0, mark, false)
}

func (s *scanner) choiceElems(p *Parser, n int, mark, resumed bool) int {
	for ; ; resumed, mark = false, false {
		if !resumed {
			if s.peek() != '{' {
				if !s.skip() {
					return n
				}
			} else if s.choice(p, mark) {
				n++
			}
		}
		if s.bad || !s.next(']') {
			return n
		}
	}
}

func (s *scanner) choice(p *Parser, mark bool) bool {
	if !s.open('}') {
		return false
	}
	return s.choiceMembers(p, false, mark, false)
}

func (s *scanner) choiceMembers(p *Parser, content, mark, resumed bool) bool {
	for ; ; resumed = false {
		if !resumed {
			k, ok := s.key()
			if !ok {
				return false
			}
			switch string(k) {
			case "delta":
				if s.peek() == '{' {
					if s.delta(mark && !content) {
						content = true
					}
				} else {
					s.skip()
				}
				mark = false
			case "text":
				if s.nonEmptyString() {
					content = true
				}
			case "finish_reason":
				if s.peek() == '"' {
					if raw, _, ok := s.str(); ok {
						p.addFinish(raw)
					}
				} else {
					s.skip()
				}
			default:
				s.skip()
			}
		}
		if s.bad || !s.next('}') {
			return content && !s.bad
		}
	}
}

// delta reads a chunk's delta: whether it carries content, reasoning, a
// refusal or tool-call arguments.
func (s *scanner) delta(mark bool) bool {
	if !s.open('}') {
		return false
	}
	return s.deltaMembers(false, mark, false)
}

func (s *scanner) deltaMembers(content, mark, resumed bool) bool {
	for ; ; resumed = false {
		if !resumed {
			k, ok := s.key()
			if !ok {
				return false
			}
			switch string(k) {
			case "content", "reasoning_content", "reasoning", "refusal":
				if mark && !content && s.mark < 0 && string(k) == "content" && s.peek() == '"' {
					s.mark = s.i
					if s.nonEmptyString() {
						content = true
					}
					s.markEnd = s.i - 1
					break
				}
				if s.nonEmptyString() {
					content = true
				}
			case "tool_calls", "function_call":
				if c := s.peek(); c == '[' || c == '{' {
					save := s.i
					s.i++
					s.ws()
					nonEmpty := s.peek() != ']' && s.peek() != '}'
					s.i = save
					if s.skip() && nonEmpty {
						content = true
					}
				} else {
					s.skip()
				}
			default:
				s.skip()
			}
		}
		if s.bad || !s.next('}') {
			return content
		}
	}
}

// usage reads a usage object; true when it held token counts.
func (s *scanner) usage(p *Parser) bool {
	if s.peek() != '{' {
		s.skip()
		return false
	}
	var in, out, cached int64
	found := false
	if s.open('}') {
		for {
			k, ok := s.key()
			if !ok {
				return false
			}
			switch string(k) {
			case "prompt_tokens", "input_tokens":
				if v, ok := s.int(); ok {
					in, found = v, true
				}
			case "completion_tokens", "output_tokens":
				if v, ok := s.int(); ok {
					out, found = v, true
				}
			case "prompt_tokens_details", "input_tokens_details":
				if s.peek() == '{' {
					cached = s.cached()
				} else {
					s.skip()
				}
			default:
				s.skip()
			}
			if s.bad || !s.next('}') {
				break
			}
		}
	}
	if s.bad || !found {
		return false
	}
	p.res.Usage = true
	p.res.InputTokens, p.res.OutputTokens, p.res.CachedTokens = in, out, cached
	return true
}

func (s *scanner) cached() int64 {
	var cached int64
	if !s.open('}') {
		return 0
	}
	for {
		k, ok := s.key()
		if !ok {
			return 0
		}
		if string(k) == "cached_tokens" {
			if v, ok := s.int(); ok {
				cached = v
			}
		} else {
			s.skip()
		}
		if s.bad || !s.next('}') {
			return cached
		}
	}
}

// unescape decodes the contents of a JSON string that holds escapes.
func unescape(raw []byte) (string, bool) {
	q := make([]byte, 0, len(raw)+2)
	q = append(q, '"')
	q = append(q, raw...)
	q = append(q, '"')
	var v string
	if err := json.Unmarshal(q, &v); err != nil {
		return "", false
	}
	return v, true
}
