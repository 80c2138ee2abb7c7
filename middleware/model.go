package middleware

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// ModelFromJSONBody returns a WithModel func for OpenAI-style APIs: it reads
// at most maxBytes of a JSON request body, returns its top-level "model"
// string, and puts the bytes it read back in front of the body, so the
// handler reads the whole body as sent. It returns "" for a body that is not
// a JSON object or has no "model" in its first maxBytes.
// RequestFromJSONBody reads the sampling parameters in the same pass.
func ModelFromJSONBody(maxBytes int64) func(*http.Request) string {
	f := RequestFromJSONBody(maxBytes)
	return func(r *http.Request) string { return f(r).Model }
}

// RequestInfo is what the middleware takes from an OpenAI-style request
// body for the GenAI span: the model (gen_ai.request.model) and the request
// parameters of the GenAI conventions (gen_ai.request.max_tokens,
// gen_ai.request.temperature, gen_ai.request.top_p, gen_ai.request.stream).
// A Has field is false when the body did not carry that parameter as a
// value of its type.
type RequestInfo struct {
	Model          string
	MaxTokens      int64 // "max_tokens", else "max_completion_tokens"
	Temperature    float64
	TopP           float64
	Stream         bool
	HasMaxTokens   bool
	HasTemperature bool
	HasTopP        bool
	HasStream      bool
}

// RequestFromJSONBody returns a WithRequest func for OpenAI-style APIs: as
// ModelFromJSONBody, it reads at most maxBytes of a JSON request body and
// puts them back, and in one pass over the top level of the object it takes
// the "model" string and the "max_tokens" (or "max_completion_tokens"),
// "temperature", "top_p" and "stream" values; the first occurrence of a key
// counts. A body that is not a JSON object gives the zero RequestInfo.
func RequestFromJSONBody(maxBytes int64) func(*http.Request) RequestInfo {
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	return func(r *http.Request) RequestInfo {
		if r.Body == nil || r.Body == http.NoBody {
			return RequestInfo{}
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
			return RequestInfo{}
		}
		return scanRequest(buf)
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

// topLevelString returns the "model" string at the top level of doc (see
// scanRequest); the fuzz test checks it against encoding/json.
func topLevelString(doc []byte, key string) string {
	if key != "model" {
		return ""
	}
	return scanRequest(doc).Model
}

// Keys scanRequest takes.
const (
	keyNone = iota
	keyModel
	keyMaxTokens
	keyMaxCompletionTokens
	keyTemperature
	keyTopP
	keyStream
)

// requestKey returns which of the keys scanRequest takes the quoted JSON
// string q is.
func requestKey(q []byte) int {
	raw := q[1 : len(q)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		s, ok := unquote(q)
		if !ok {
			return keyNone
		}
		raw = []byte(s)
	}
	switch string(raw) {
	case "model":
		return keyModel
	case "max_tokens":
		return keyMaxTokens
	case "max_completion_tokens":
		return keyMaxCompletionTokens
	case "temperature":
		return keyTemperature
	case "top_p":
		return keyTopP
	case "stream":
		return keyStream
	}
	return keyNone
}

// scanRequest reads the top level of the JSON object doc in one pass and
// returns the RequestInfo of its keys, tolerating a document cut short
// (what was read before the cut counts), and the zero RequestInfo when doc
// is no object. It skips the other values without decoding them: string
// contents, the bulk of a chat request, are passed over with
// bytes.IndexByte, so it runs at memory speed and allocates only the model
// string. It validates only what it needs to find its way; a document that
// is not valid JSON may give values that a validating decoder would refuse.
func scanRequest(doc []byte) RequestInfo {
	var info RequestInfo
	var seen [keyStream + 1]bool // the first occurrence of a key counts
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return info
	}
	i++
	for {
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != '"' {
			return info // the end, "}", or not JSON
		}
		kEnd, ok := stringEnd(doc, i)
		if !ok {
			return info
		}
		k := requestKey(doc[i:kEnd])
		i = skipSpace(doc, kEnd)
		if i >= len(doc) || doc[i] != ':' {
			return info
		}
		i = skipSpace(doc, i+1)
		vStart := i
		if i, ok = skipValue(doc, i); !ok {
			return info
		}
		if k != keyNone && !seen[k] {
			seen[k] = true
			info.take(k, doc[vStart:i])
		}
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != ',' {
			return info
		}
		i++
	}
}

// take sets the field of key k from its raw JSON value v, when v is a
// value of the field's type.
func (info *RequestInfo) take(k int, v []byte) {
	switch k {
	case keyModel:
		if v[0] == '"' {
			info.Model, _ = unquote(v)
		}
	case keyMaxTokens, keyMaxCompletionTokens:
		if info.HasMaxTokens && k == keyMaxCompletionTokens {
			return // max_tokens wins
		}
		if n, ok := jsonInt(v); ok {
			info.MaxTokens, info.HasMaxTokens = n, true
		}
	case keyTemperature:
		info.Temperature, info.HasTemperature = jsonFloat(v)
	case keyTopP:
		info.TopP, info.HasTopP = jsonFloat(v)
	case keyStream:
		switch string(v) {
		case "true":
			info.Stream, info.HasStream = true, true
		case "false":
			info.Stream, info.HasStream = false, true
		}
	}
}

// isJSONNumberStart reports whether v can begin a JSON number.
func isJSONNumberStart(v []byte) bool {
	return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9')
}

// jsonFloat parses the JSON number v as encoding/json does into a float64.
func jsonFloat(v []byte) (float64, bool) {
	if !isJSONNumberStart(v) || len(v) > 64 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// jsonInt parses the JSON number v as encoding/json does into an int64:
// integers only.
func jsonInt(v []byte) (int64, bool) {
	if !isJSONNumberStart(v) || len(v) > 24 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
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

// OperationFromPath is a WithOperation func for OpenAI-style routes: it
// derives gen_ai.operation.name from the request path: "embeddings" for a
// path ending in /embeddings, "text_completion" for /completions (the
// legacy completions API, not /chat/completions), and "chat" otherwise.
func OperationFromPath(r *http.Request) string {
	p := r.URL.Path
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	switch {
	case hasSuffix(p, "/embeddings"):
		return "embeddings"
	case hasSuffix(p, "/chat/completions"):
		return "chat"
	case hasSuffix(p, "/completions"):
		return "text_completion"
	}
	return DefaultOperation
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}
