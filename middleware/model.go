package middleware

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
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
		buf, err := io.ReadAll(io.LimitReader(r.Body, maxBytes))
		r.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
		if err != nil || len(buf) == 0 {
			return ""
		}
		return topLevelString(buf, "model")
	}
}

type replayBody struct {
	io.Reader
	io.Closer
}

// topLevelString scans a JSON object for the string value of key at its top
// level, tolerating a document cut short after that key.
func topLevelString(doc []byte, key string) string {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		if k, _ := t.(string); k == key {
			v, err := dec.Token()
			if s, ok := v.(string); ok && err == nil {
				return s
			}
			return ""
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}
