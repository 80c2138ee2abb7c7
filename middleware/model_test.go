package middleware

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// chatBody is a chat request as the OpenAI SDKs send it: the messages
// first, the model after them.
func chatBody(promptBytes int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"messages":[{"role":"system","content":"You are a helpful assistant."},`)
	fmt.Fprintf(&b, `{"role":"user","content":%q}`, strings.Repeat("Tell me about GPUs. ", promptBytes/20))
	b.WriteString(`],"model":"llama-3-8b-instruct","max_tokens":256,"stream":true,"stream_options":{"include_usage":true},"temperature":0.7}`)
	return b.Bytes()
}

// BenchmarkModelFromJSONBody reads the model of a chat request whose model
// comes after its messages, against reading the body alone and against
// json.Unmarshal into a struct with a Model field.
func BenchmarkModelFromJSONBody(b *testing.B) {
	for _, size := range []int{2 << 10, 64 << 10} {
		body := chatBody(size)
		r := &http.Request{Method: "POST", ContentLength: int64(len(body))}
		reader := bytes.NewReader(body)
		b.Run(fmt.Sprintf("%dKiB/ModelFromJSONBody", size>>10), func(b *testing.B) {
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
		b.Run(fmt.Sprintf("%dKiB/baseline/ReadAll", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				reader.Reset(body)
				if _, err := io.ReadAll(io.LimitReader(reader, 1<<20)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%dKiB/baseline/json.Unmarshal", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				reader.Reset(body)
				buf, _ := io.ReadAll(io.LimitReader(reader, 1<<20))
				var v struct{ Model string }
				if err := json.Unmarshal(buf, &v); err != nil || v.Model != "llama-3-8b-instruct" {
					b.Fatal(err)
				}
			}
		})
	}
}

// refTopLevelString is the reference topLevelString is checked against: the
// first top-level "key" string, found with encoding/json's tokenizer.
func refTopLevelString(doc []byte, key string) string {
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

var modelDocs = []struct{ body, want string }{
	{`{"messages":[{"role":"user","content":"hi"}],"model":"gpt"}`, "gpt"},
	{`{"model":"a","x":`, "a"}, // cut short after the model
	{`[1,2]`, ""},
	{`{"model":3}`, ""},
	{``, ""},
	{`  {  "model"  :  "spaced"  }  `, "spaced"},
	{`{"x":"a \"model\": \"fake\" \\","model":"real"}`, "real"},
	{`{"x":"ends in a backslash \\\\","model":"b"}`, "b"},
	{`{"messages":[{"model":"nested"}],"n":1}`, ""},
	{`{"messages":[{"model":"nested"}],"model":"top"}`, "top"},
	{`{"mod\u0065l":"escaped key"}`, "escaped key"},
	{`{"model":"caf\u00e9 \"q\""}`, `café "q"`},
	{`{"model":"first","model":"second"}`, "first"},
	{`{"a":1.5e3,"b":true,"c":null,"d":false,"e":[],"f":{},"model":"after literals"}`, "after literals"},
	{`{"a":[[["]"]]],"model":"brackets in strings"}`, "brackets in strings"},
	{`{"x":"never ends, "model":"m"`, ""},
	{`{"x":[1,2,"model":"m"`, ""},
	{`{"model":"a" "x":1}`, "a"},
	{`{"x":1 "model":"a"}`, ""},
	{`{"model":null}`, ""},
	{"{\"model\":\"bad\xffutf8\"}", "bad\ufffdutf8"},
	{"{\"model\":\"tab\tinside\"}", ""}, // a raw control character is not JSON
	{`{}`, ""},
	{`{"model":"`, ""},
}

func TestTopLevelString(t *testing.T) {
	for _, tt := range modelDocs {
		t.Run(tt.body, func(t *testing.T) {
			if got := topLevelString([]byte(tt.body), "model"); got != tt.want {
				t.Errorf("topLevelString = %q, want %q", got, tt.want)
			}
			if json.Valid([]byte(tt.body)) {
				if ref := refTopLevelString([]byte(tt.body), "model"); ref != tt.want {
					t.Errorf("reference = %q, want %q: the table is wrong", ref, tt.want)
				}
			}
		})
	}
}

// On valid JSON topLevelString agrees with encoding/json; on anything else
// it does not panic. ModelFromJSONBody always replays the body exactly.
func FuzzTopLevelString(f *testing.F) {
	for _, tt := range modelDocs {
		f.Add([]byte(tt.body))
	}
	f.Add(chatBody(300))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got := topLevelString(doc, "model")
		if json.Valid(doc) {
			if want := refTopLevelString(doc, "model"); got != want {
				t.Fatalf("topLevelString(%q) = %q, encoding/json finds %q", doc, got, want)
			}
		}
		for _, max := range []int64{0, 7} {
			r := &http.Request{Method: "POST", Body: io.NopCloser(bytes.NewReader(doc)), ContentLength: int64(len(doc))}
			ModelFromJSONBody(max)(r)
			if rest, _ := io.ReadAll(r.Body); !bytes.Equal(rest, doc) {
				t.Fatalf("body replayed as %q, sent %q", rest, doc)
			}
		}
	})
}
