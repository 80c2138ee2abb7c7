package middleware

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"unicode/utf8"
)

// ModelFromJSONBody returns a WithModel func for OpenAI-style APIs: it reads
// at most maxBytes of a JSON request body, returns its top-level "model"
// string, and puts the bytes it read back in front of the body, so the
// handler reads the whole body as sent. It returns "" for a body that is not
// a JSON object or has no "model" in its first maxBytes.
func ModelFromJSONBody(maxBytes int64) func(*http.Request) string {
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	return func(r *http.Request) string {
		if r.Body == nil || r.Body == http.NoBody {
			return ""
		}
		buf, err := readUpTo(r.Body, maxBytes, r.ContentLength)
		var rest io.Reader = bytes.NewReader(buf)
		if err != nil || int64(len(buf)) >= maxBytes {
			rest = io.MultiReader(rest, r.Body)
		}
		// A body read to its end is not read again: net/http closes a
		// request body once the response starts, and a reader still
		// looking for its EOF then (a proxy's transport sending it on)
		// would get an error instead.
		r.Body = &replayBody{Reader: rest, Closer: r.Body}
		if err != nil || len(buf) == 0 {
			return ""
		}
		return topLevelString(buf, "model")
	}
}

// readUpTo reads body until EOF or max bytes, in one allocation when the
// request declares its length (size >= 0) and it is at most presizeMax: a
// client cannot make a request reserve more memory than it sends.
func readUpTo(body io.Reader, max, size int64) ([]byte, error) {
	var b bytes.Buffer
	if size >= 0 {
		// bytes.Buffer reads into at least bytes.MinRead of free room, and
		// one more read finds the EOF.
		b.Grow(int(min(size, max, presizeMax)) + bytes.MinRead)
	}
	_, err := b.ReadFrom(io.LimitReader(body, max))
	return b.Bytes(), err
}

const presizeMax = 256 << 10

type replayBody struct {
	io.Reader
	io.Closer
}

// topLevelString returns the string value of key at the top level of the
// JSON object doc, tolerating a document cut short after that key, and ""
// when doc is no object or has no such string (the first occurrence counts).
// It skips the other values without decoding them: string contents, the bulk
// of a chat request, are passed over with bytes.IndexByte, so it runs at
// memory speed and allocates only the result. It validates only what it needs
// to find its way; a document that is not valid JSON may give a value that a
// validating decoder would refuse.
func topLevelString(doc []byte, key string) string {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return ""
	}
	i++
	for {
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != '"' {
			return "" // the end, "}", or not JSON
		}
		kEnd, ok := stringEnd(doc, i)
		if !ok {
			return ""
		}
		k := doc[i:kEnd]
		i = skipSpace(doc, kEnd)
		if i >= len(doc) || doc[i] != ':' {
			return ""
		}
		i = skipSpace(doc, i+1)
		if keyIs(k, key) {
			if i >= len(doc) || doc[i] != '"' {
				return ""
			}
			vEnd, ok := stringEnd(doc, i)
			if !ok {
				return ""
			}
			v, _ := unquote(doc[i:vEnd])
			return v
		}
		if i, ok = skipValue(doc, i); !ok {
			return ""
		}
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != ',' {
			return ""
		}
		i++
	}
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string that starts with the
// quote at doc[i], and false when it does not end.
func stringEnd(doc []byte, i int) (int, bool) {
	j := i + 1
	for {
		k := bytes.IndexByte(doc[j:], '"')
		if k < 0 {
			return 0, false
		}
		q := j + k
		// The quote is escaped when an odd run of backslashes precedes it.
		n := 0
		for p := q - 1; p > i && doc[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, true
		}
		j = q + 1
	}
}

// skipValue returns the index just past the JSON value at doc[i].
func skipValue(doc []byte, i int) (int, bool) {
	if i >= len(doc) {
		return 0, false
	}
	switch doc[i] {
	case '"':
		return stringEnd(doc, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(doc); j++ {
			switch doc[j] {
			case '"':
				end, ok := stringEnd(doc, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default: // a number, true, false or null
		j := i
		for j < len(doc) {
			switch doc[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j, j > i
			}
			j++
		}
		return j, j > i
	}
}

// keyIs reports whether the quoted JSON string q is key.
func keyIs(q []byte, key string) bool {
	raw := q[1 : len(q)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == key
	}
	s, ok := unquote(q)
	return ok && s == key
}

// unquote decodes the quoted JSON string q as encoding/json does; false when
// q is not a valid JSON string.
func unquote(q []byte) (string, bool) {
	raw := q[1 : len(q)-1]
	plain := utf8.Valid(raw)
	for _, c := range raw {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return string(raw), true
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", false
	}
	return s, true
}
