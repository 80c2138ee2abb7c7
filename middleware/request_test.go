package middleware

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// refScanRequest is the reference scanRequest is checked against: the first
// top-level occurrence of each key, found with encoding/json's tokenizer and
// decoded with json.Unmarshal into the field's type.
func refScanRequest(doc []byte) RequestInfo {
	var info RequestInfo
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return info
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return info
		}
		k, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return info
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		switch k {
		case "model":
			var s string
			if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
				info.Model = s
			}
		case "max_tokens", "max_completion_tokens":
			var n int64
			if !(k == "max_completion_tokens" && info.HasMaxTokens) && isJSONNumberStart(raw) && json.Unmarshal(raw, &n) == nil {
				info.MaxTokens, info.HasMaxTokens = n, true
			}
		case "temperature", "top_p":
			var f float64
			if isJSONNumberStart(raw) && json.Unmarshal(raw, &f) == nil {
				if k == "temperature" {
					info.Temperature, info.HasTemperature = f, true
				} else {
					info.TopP, info.HasTopP = f, true
				}
			}
		case "stream":
			var b bool
			if (raw[0] == 't' || raw[0] == 'f') && json.Unmarshal(raw, &b) == nil {
				info.Stream, info.HasStream = b, true
			}
		}
	}
	return info
}

var requestDocs = []struct {
	body string
	want RequestInfo
}{
	{`{"messages":[],"model":"m","max_tokens":256,"stream":true,"temperature":0.7,"top_p":0.9}`,
		RequestInfo{Model: "m", MaxTokens: 256, HasMaxTokens: true, Stream: true, HasStream: true, Temperature: 0.7, HasTemperature: true, TopP: 0.9, HasTopP: true}},
	{`{"max_completion_tokens":10,"max_tokens":20}`, RequestInfo{MaxTokens: 20, HasMaxTokens: true}},
	{`{"max_tokens":20,"max_completion_tokens":10}`, RequestInfo{MaxTokens: 20, HasMaxTokens: true}},
	{`{"max_tokens":1.5,"temperature":"hot","stream":"yes","top_p":null}`, RequestInfo{}},
	{`{"max_tokens":99999999999999999999}`, RequestInfo{}},
	{`{"temperature":1e400}`, RequestInfo{}},
	{`{"stream":false,"stream":true}`, RequestInfo{HasStream: true}},
	{`{"model":"a","temperature":0,"x":`, RequestInfo{Model: "a", HasTemperature: true}}, // cut short
	{`{"messages":[{"max_tokens":5}],"top_p":-0}`, RequestInfo{HasTopP: true}},
	{`{"str\u0065am":true}`, RequestInfo{Stream: true, HasStream: true}},
	{`[{"model":"x"}]`, RequestInfo{}},
}

func TestScanRequest(t *testing.T) {
	for _, tt := range requestDocs {
		t.Run(tt.body, func(t *testing.T) {
			if got := scanRequest([]byte(tt.body)); got != tt.want {
				t.Errorf("scanRequest = %+v, want %+v", got, tt.want)
			}
			if json.Valid([]byte(tt.body)) {
				if ref := refScanRequest([]byte(tt.body)); ref != tt.want {
					t.Errorf("reference = %+v, want %+v: the table is wrong", ref, tt.want)
				}
			}
		})
	}
}

// The scan allocates only the model string.
func TestScanRequestAllocs(t *testing.T) {
	body := chatBody(2 << 10)
	if n := testing.AllocsPerRun(100, func() { _ = scanRequest(body) }); n > 1 {
		t.Errorf("scanRequest allocs = %v, want <= 1 (the model string)", n)
	}
}

// On valid JSON scanRequest agrees with encoding/json; on anything else it
// does not panic; RequestFromJSONBody replays the body exactly.
func FuzzScanRequest(f *testing.F) {
	for _, tt := range requestDocs {
		f.Add([]byte(tt.body))
	}
	for _, tt := range modelDocs {
		f.Add([]byte(tt.body))
	}
	f.Add(chatBody(300))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got := scanRequest(doc)
		if json.Valid(doc) {
			if want := refScanRequest(doc); got != want {
				t.Fatalf("scanRequest(%q) = %+v, encoding/json finds %+v", doc, got, want)
			}
		}
		r := &http.Request{Method: "POST", Body: io.NopCloser(bytes.NewReader(doc)), ContentLength: int64(len(doc))}
		RequestFromJSONBody(5)(r)
		if rest, _ := io.ReadAll(r.Body); !bytes.Equal(rest, doc) {
			t.Fatalf("body replayed as %q, sent %q", rest, doc)
		}
	})
}

func BenchmarkRequestFromJSONBody(b *testing.B) {
	body := chatBody(2 << 10)
	r := &http.Request{Method: "POST", ContentLength: int64(len(body))}
	reader := bytes.NewReader(body)
	b.Run("2KiB/RequestFromJSONBody", func(b *testing.B) {
		f := RequestFromJSONBody(0)
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			reader.Reset(body)
			r.Body = io.NopCloser(reader)
			if f(r).Model != "llama-3-8b-instruct" {
				b.Fatal("wrong model")
			}
		}
	})
	b.Run("2KiB/baseline/ModelFromJSONBody", func(b *testing.B) {
		f := ModelFromJSONBody(0)
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			reader.Reset(body)
			r.Body = io.NopCloser(reader)
			if f(r) != "llama-3-8b-instruct" {
				b.Fatal("wrong model")
			}
		}
	})
}
