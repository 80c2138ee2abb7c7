package openaistream

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func chunk(content string) string {
	return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1733000000,"model":"m1","choices":[{"index":0,"delta":{"content":"` +
		content + `"},"finish_reason":null}],"usage":null}` + "\n\n"
}

const (
	roleChunk   = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"m1","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}` + "\n\n"
	finishChunk = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"m1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	usageChunk  = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"m1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":4}}}` + "\n\n"
	done        = "data: [DONE]\n\n"
)

type want struct {
	usage                bool
	in, out, cached      int64
	chunks, events, skip int64
	done                 bool
	model, id            string
	finish               []string
}

func resultWant(r Result) want {
	return want{usage: r.Usage, in: r.InputTokens, out: r.OutputTokens, cached: r.CachedTokens,
		chunks: r.ContentChunks, events: r.Events, skip: r.Skipped, done: r.Done, model: r.Model, id: r.ID,
		finish: append([]string(nil), r.FinishReasons...)}
}

// parse feeds in to a parser in the given pieces and returns what it found
// and the content chunks Feed reported.
func parse(k Kind, pieces []string) (want, int64) {
	var p Parser
	p.Reset(k)
	var fed int64
	for _, s := range pieces {
		b := []byte(s)
		fed += int64(p.Feed(b))
		for i := range b {
			b[i] = 'X' // the parser must not keep the caller's bytes
		}
	}
	fed += int64(p.Finish())
	return resultWant(p.Result()), fed
}

func TestParser(t *testing.T) {
	full := roleChunk + chunk("Hello") + chunk(" world") + chunk("!") + finishChunk + usageChunk + done
	tests := []struct {
		name string
		kind Kind
		in   string
		want want
	}{
		{"stream with usage", SSE, full, want{usage: true, in: 7, out: 3, cached: 4, chunks: 3, events: 7, done: true,
			model: "m1", id: "chatcmpl-1", finish: []string{"stop"}}},
		{"no usage chunk", SSE, roleChunk + chunk("a") + chunk("b") + finishChunk + done,
			want{chunks: 2, events: 5, done: true, model: "m1", id: "chatcmpl-1", finish: []string{"stop"}}},
		{"usage only", SSE, usageChunk + done, want{usage: true, in: 7, out: 3, cached: 4, events: 2, done: true, model: "m1", id: "chatcmpl-1"}},
		{"crlf", SSE, strings.ReplaceAll(full, "\n", "\r\n"), want{usage: true, in: 7, out: 3, cached: 4, chunks: 3, events: 7, done: true,
			model: "m1", id: "chatcmpl-1", finish: []string{"stop"}}},
		{"lone cr", SSE, strings.ReplaceAll(chunk("a")+done, "\n", "\r"), want{chunks: 1, events: 2, done: true, model: "m1", id: "chatcmpl-1"}},
		{"comments and other fields", SSE, ": keep-alive\n\nevent: message\nid: 5\nretry: 10\n" + chunk("a") + ":x\n\n" + done,
			want{chunks: 1, events: 2, done: true, model: "m1", id: "chatcmpl-1"}},
		{"multi-line data", SSE, "data: {\"model\":\"m2\",\ndata: \"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
			want{chunks: 1, events: 1, model: "m2"}},
		{"data without space", SSE, `data:{"choices":[{"delta":{"content":"x"}}]}` + "\n\n", want{chunks: 1, events: 1}},
		{"no final blank line", SSE, `data: {"choices":[{"text":"x"}]}`, want{chunks: 1, events: 1}},
		{"legacy completions", SSE, `data: {"id":"cmpl-1","object":"text_completion","model":"m","choices":[{"text":"hi","index":0,"finish_reason":"length"}]}` + "\n\n",
			want{chunks: 1, events: 1, model: "m", id: "cmpl-1", finish: []string{"length"}}},
		{"empty and null content", SSE, `data: {"choices":[{"delta":{"content":""}},{"delta":{"content":null}}]}` + "\n\n", want{events: 1}},
		{"two choices", SSE, `data: {"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}` + "\n\n", want{chunks: 2, events: 1}},
		{"tool calls and reasoning", SSE, `data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a"}}]}}]}` + "\n\n" +
			`data: {"choices":[{"delta":{"reasoning_content":"hmm"}}]}` + "\n\n" + `data: {"choices":[{"delta":{"tool_calls":[ ]}}]}` + "\n\n",
			want{chunks: 2, events: 3}},
		{"spaces in json", SSE, `data: { "id" : "x" , "choices" : [ { "delta" : { "content" : "a" } , "finish_reason" : "length" } ] , "usage" : { "prompt_tokens" : 2 , "completion_tokens" : 1 } }` + "\n\n",
			want{usage: true, in: 2, out: 1, chunks: 1, events: 1, id: "x", finish: []string{"length"}}},
		{"escaped strings", SSE, `data: {"id":"a\"b","model":"caf\u00e9","choices":[{"delta":{"content":"\"content\":\"x\\"}}]}` + "\n\n",
			want{chunks: 1, events: 1, id: `a"b`, model: "café"}},
		{"nested usage ignored", SSE, `data: {"choices":[{"delta":{"usage":{"prompt_tokens":9}}}]}` + "\n\n", want{events: 1}},
		{"garbage", SSE, "data: {not json\n\ndata: hello\n\n\x00\xff\n\n" + chunk("a"), want{chunks: 1, events: 3, skip: 2, model: "m1", id: "chatcmpl-1"}},
		{"oversized event", SSE, "data: {\"x\":\"" + strings.Repeat("a", 1<<20) + "\"}\n\n" + chunk("a"), want{chunks: 1, events: 1, skip: 1, model: "m1", id: "chatcmpl-1"}},
		{"oversized multi-line event", SSE, strings.Repeat("data: "+strings.Repeat("a", 1<<10)+"\n", 100) + "\n" + chunk("a"),
			want{chunks: 1, events: 1, skip: 1, model: "m1", id: "chatcmpl-1"}},
		{"json body", JSON, `{"id":"chatcmpl-9","object":"chat.completion","model":"m3","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}` + "\n",
			want{usage: true, in: 5, out: 2, model: "m3", id: "chatcmpl-9", finish: []string{"stop"}}},
		{"embeddings body", JSON, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2e-3]}],"model":"e","usage":{"prompt_tokens":8,"total_tokens":8}}`,
			want{usage: true, in: 8, model: "e"}},
		{"large json body", JSON, `{"object":"list","model":"e","data":[` + strings.Repeat(`{"embedding":[0.1,0.2,0.3]},`, 10000) + `{}],"usage":{"prompt_tokens":80,"total_tokens":80}}`,
			want{usage: true, in: 80, model: "e", skip: 1}},
		{"json error body", JSON, `{"error":{"message":"nope","type":"invalid_request_error","param":null,"code":"model_not_found"}}`, want{}},
		{"not json", JSON, "<html>hi</html>", want{skip: 1}},
		{"none", None, chunk("a"), want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fed := parse(tt.kind, []string{tt.in})
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("one write:\n got %+v\nwant %+v", got, tt.want)
			}
			if fed != tt.want.chunks {
				t.Errorf("Feed reported %d content chunks, want %d", fed, tt.want.chunks)
			}
			if len(tt.in) > 4096 {
				return
			}
			// Every split in two, and byte by byte, gives the same.
			for i := 1; i < len(tt.in); i++ {
				if got, _ := parse(tt.kind, []string{tt.in[:i], tt.in[i:]}); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("split at %d:\n got %+v\nwant %+v", i, got, tt.want)
				}
			}
			bytewise := make([]string, len(tt.in))
			for i := range tt.in {
				bytewise[i] = tt.in[i : i+1]
			}
			if got, _ := parse(tt.kind, bytewise); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("byte by byte:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		ct, ce string
		want   Kind
	}{
		{"text/event-stream", "", SSE},
		{"text/event-stream; charset=utf-8", "", SSE},
		{"Text/Event-Stream", "identity", SSE},
		{"application/json", "", JSON},
		{"application/json; charset=utf-8", "", JSON},
		{"application/problem+json", "", JSON},
		{"application/json", "gzip", None},
		{"text/event-stream", "br", None},
		{"text/plain", "", None},
		{"", "", None},
	}
	for _, tt := range tests {
		if got := KindOf(tt.ct, tt.ce); got != tt.want {
			t.Errorf("KindOf(%q, %q) = %d, want %d", tt.ct, tt.ce, got, tt.want)
		}
	}
}

func TestResetReuses(t *testing.T) {
	var p Parser
	for i := range 3 {
		p.Reset(SSE)
		p.Feed([]byte(chunk("a")[:20]))
		p.Feed([]byte(chunk("a")[20:] + finishChunk + usageChunk))
		p.Finish()
		r := p.Result()
		if r.ContentChunks != 1 || !r.Usage || len(r.FinishReasons) != 1 {
			t.Fatalf("round %d: %+v", i, r)
		}
	}
}

// TestBoundedMemory feeds a 4 MiB event in small writes: the parser's buffers
// stay under MaxBuffer.
func TestBoundedMemory(t *testing.T) {
	var p Parser
	p.Reset(SSE)
	p.Feed([]byte("data: {\"x\":\""))
	piece := []byte(strings.Repeat("a", 4096))
	for range 1024 {
		p.Feed(piece)
		if cap(p.line) > 2*MaxBuffer || cap(p.data) > 2*MaxBuffer {
			t.Fatalf("buffers grew to %d, %d", cap(p.line), cap(p.data))
		}
	}
	p.Feed([]byte("\"}\n\n" + chunk("z")))
	p.Finish()
	if r := p.Result(); r.ContentChunks != 1 || r.Skipped != 1 {
		t.Fatalf("%+v", r)
	}
}

func TestZeroAllocs(t *testing.T) {
	var p Parser
	p.Reset(SSE)
	ev := []byte(chunk("tok"))
	p.Feed(ev)
	split := len(ev) / 2
	if n := testing.AllocsPerRun(1000, func() {
		p.Feed(ev)
		p.Feed(ev[:split])
		p.Feed(ev[split:])
	}); n != 0 {
		t.Fatalf("%v allocations per event, want 0", n)
	}
}

func FuzzParser(f *testing.F) {
	f.Add([]byte(roleChunk+chunk("a")+finishChunk+usageChunk+done), 7)
	f.Add([]byte(`{"id":"x","usage":{"prompt_tokens":1}}`), 3)
	f.Add([]byte("data: {\"a\":[[[[[{\"b\":\"\\\"\"}]]]]]}\r\n\r"), 1)
	for _, evs := range templateStreams() {
		f.Add([]byte(strings.Join(evs, "")), 1000)
	}
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		// Templates (Parser.tmpl) change nothing: the same as reading
		// every chunk in full, fed whole.
		var full Parser
		full.noTmpl = true
		full.Reset(SSE)
		full.Feed(in)
		full.Finish()
		for _, k := range []Kind{SSE, JSON} {
			var p Parser
			p.Reset(k)
			if split <= 0 {
				split = 1
			}
			var fed int
			for b := in; len(b) > 0; {
				n := min(split, len(b))
				fed += p.Feed(b[:n])
				b = b[n:]
			}
			fed += p.Finish()
			r := p.Result()
			if int64(fed) != r.ContentChunks {
				t.Fatalf("Feed and Finish reported %d content chunks, Result %d", fed, r.ContentChunks)
			}
			if r.InputTokens < 0 || r.OutputTokens < 0 || r.CachedTokens < 0 || len(r.FinishReasons) > maxFinish {
				t.Fatalf("bad result %+v", r)
			}
			if cap(p.line) > 2*MaxBuffer || cap(p.data) > 2*MaxBuffer || cap(p.body) > 2*MaxBuffer ||
				cap(p.tmpl) > 2*maxTemplate || cap(p.tmplEnd) > 2*maxTemplate {
				t.Fatalf("unbounded buffers")
			}
			if g, w := resultWant(r), resultWant(full.Result()); k == SSE && !reflect.DeepEqual(g, w) {
				t.Fatalf("with templates %+v, read in full %+v", g, w)
			}
		}
	})
}

// A stream of the shape the benchmarks feed: one event per write.
func benchEvents(n int) [][]byte {
	evs := make([][]byte, n)
	for i := range evs {
		evs[i] = []byte(chunk(fmt.Sprintf(" tok%d", i%100)))
	}
	return evs
}

// BenchmarkParserEvent is the per-event cost of reading a chat chunk, one
// event per write (as a server that flushes each token writes it).
func BenchmarkParserEvent(b *testing.B) {
	evs := benchEvents(1024)
	var p Parser
	p.Reset(SSE)
	b.SetBytes(int64(len(evs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Feed(evs[i&1023])
	}
}

// BenchmarkParserEventSplit is the same with every event split in two
// writes (the partial line is buffered).
func BenchmarkParserEventSplit(b *testing.B) {
	evs := benchEvents(1024)
	var p Parser
	p.Reset(SSE)
	b.SetBytes(int64(len(evs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := evs[i&1023]
		p.Feed(e[:len(e)/2])
		p.Feed(e[len(e)/2:])
	}
}

var sink int

// BenchmarkBaselineIndex is the baseline: finding the event end and one key
// in the same input with bytes.Index, the least any parser must do.
func BenchmarkBaselineIndex(b *testing.B) {
	evs := benchEvents(1024)
	key := []byte(`"content":`)
	sep := []byte("\n\n")
	b.SetBytes(int64(len(evs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := evs[i&1023]
		sink += bytes.Index(e, sep) + bytes.Index(e, key)
	}
}

// realisticStream is one streamed chat completion as OpenAI's API sends it
// with stream_options.include_usage (service_tier, system_fingerprint,
// logprobs, a null usage on every chunk): the role chunk, n content chunks
// (tokens of a few bytes, some with escapes), the finish chunk, the usage
// chunk and [DONE]. vllm drops service_tier and the null usage.
func realisticStream(n int, vllm bool) [][]byte {
	head := `data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":`
	tail := `,"logprobs":null,"finish_reason":%s}],"usage":null}` + "\n\n"
	if vllm {
		head = `data: {"id":"chatcmpl-5f2c7d9e0a1b4c3d8e6f7a8b9c0d1e2f","object":"chat.completion.chunk","created":1741569952,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":`
		tail = `,"logprobs":null,"finish_reason":%s}]}` + "\n\n"
	}
	toks := []string{" the", " quick", " brown", " fox", `\n`, " said", ` \"`, "hello", `\",`, " jumps", " over", " 42", "."}
	evs := [][]byte{[]byte(head + `{"role":"assistant","content":""}` + fmt.Sprintf(tail, "null"))}
	for i := range n {
		evs = append(evs, []byte(head+`{"content":"`+toks[i%len(toks)]+`"}`+fmt.Sprintf(tail, "null")))
	}
	evs = append(evs, []byte(head+`{}`+fmt.Sprintf(tail, `"stop"`)))
	usage := `data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[],"usage":{"prompt_tokens":1117,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}` + "\n\n"
	evs = append(evs, []byte(fmt.Sprintf(usage, n, 1117+n)), []byte(done))
	return evs
}

// benchStream feeds whole streams, one event per write (split in two when
// split), a Reset before each, and reports the cost per event.
func benchStream(b *testing.B, evs [][]byte, split bool) {
	var p Parser
	size := 0
	for _, e := range evs {
		size += len(e)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	cpu := cpuNanos()
	for b.Loop() {
		p.Reset(SSE)
		for _, e := range evs {
			if split {
				p.Feed(e[:len(e)/2])
				p.Feed(e[len(e)/2:])
			} else {
				p.Feed(e)
			}
		}
		p.Finish()
	}
	reportPerEvent(b, cpu, len(evs))
}

// reportPerEvent reports the wall and CPU time per event; the CPU time
// (cpu-ns/event, the process's, taken from cpu) is the steadier figure on a
// machine whose cores are shared.
func reportPerEvent(b *testing.B, cpu int64, events int) {
	n := float64(b.N * events)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
	if c := cpuNanos(); c > 0 {
		b.ReportMetric(float64(c-cpu)/n, "cpu-ns/event")
	}
}

func TestRealisticStream(t *testing.T) {
	for _, vllm := range []bool{false, true} {
		var in []string
		for _, e := range realisticStream(60, vllm) {
			in = append(in, string(e))
		}
		got, fed := parse(SSE, in)
		w := want{chunks: 60, events: 64, done: true, finish: []string{"stop"}, id: "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
			model: "gpt-4o-2024-08-06", usage: true, in: 1117, out: 60, cached: 1024}
		if vllm {
			w.id, w.model = "chatcmpl-5f2c7d9e0a1b4c3d8e6f7a8b9c0d1e2f", "meta-llama/Llama-3.1-8B-Instruct"
		}
		if !reflect.DeepEqual(got, w) || fed != 60 {
			t.Errorf("vllm=%v: got %+v (fed %d), want %+v", vllm, got, fed, w)
		}
	}
}

// BenchmarkParserOpenAI is the per-event cost (ns/event) of a streamed
// completion as OpenAI sends it: 64 events of 250-450 bytes.
func BenchmarkParserOpenAI(b *testing.B) { benchStream(b, realisticStream(60, false), false) }

// BenchmarkParserOpenAISplit is the same with every event split in two writes.
func BenchmarkParserOpenAISplit(b *testing.B) { benchStream(b, realisticStream(60, false), true) }

// BenchmarkParserVLLM is the same for vLLM's chunks.
func BenchmarkParserVLLM(b *testing.B) { benchStream(b, realisticStream(60, true), false) }

// BenchmarkParserOpenAICold reads every chunk in full: each differs from the
// one before at its start (a changing id), so no template applies.
func BenchmarkParserOpenAICold(b *testing.B) {
	evs := realisticStream(60, false)
	for i, e := range evs {
		e = bytes.Clone(e)
		if len(e) > 20 {
			e[16] = 'A' + byte(i%26)
		}
		evs[i] = e
	}
	benchStream(b, evs, false)
}

// BenchmarkBaselineOpenAI is the baseline for the above: the event end and
// one key found with bytes.Index, the least any parser must do.
func BenchmarkBaselineOpenAI(b *testing.B) {
	evs := realisticStream(60, false)
	key := []byte(`"content":`)
	sep := []byte("\n\n")
	size := 0
	for _, e := range evs {
		size += len(e)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	cpu := cpuNanos()
	for b.Loop() {
		for _, e := range evs {
			sink += bytes.Index(e, sep) + bytes.Index(e, key)
		}
	}
	reportPerEvent(b, cpu, len(evs))
}

// templateStreams are streams whose chunks share a start, the case the
// template (Parser.tmpl) reads: it must find what reading every chunk in
// full finds.
func templateStreams() map[string][]string {
	h := `data: {"id":"c1","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"`
	e := `"},"finish_reason":null}]}` + "\n\n"
	var openai []string
	for _, ev := range realisticStream(20, false) {
		openai = append(openai, string(ev))
	}
	return map[string][]string{
		"openai":                     openai,
		"plain":                      {h + `a` + e, h + `b` + e, h + `` + e, h + `c` + e, done},
		"escapes":                    {h + `a` + e, h + `\"` + e, h + `\\` + e, h + `x\"},"finish_reason":"stop"}]}` + "\n\n", h + `\\"},` + "\n\n"},
		"empty content then content": {h + `` + e, h + `` + e, h + `x` + e},
		"finish in the end": {h + `a"},"finish_reason":"stop"}]}` + "\n\n", h + `b"},"finish_reason":"length"}]}` + "\n\n",
			h + `c"},"finish_reason":"stop"}]}` + "\n\n"},
		"usage in the end": {h + `a"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}` + "\n\n",
			h + `b"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}` + "\n\n", usageChunk,
			h + `c"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}` + "\n\n"},
		"more content in the end": {h + `a","reasoning_content":"r"}}]}` + "\n\n", h + `","reasoning_content":"r"}}]}` + "\n\n",
			h + `","reasoning_content":""}}]}` + "\n\n", h + `b","tool_calls":[{"id":"t"}]}}]}` + "\n\n"},
		"second choice": {h + `a"}},{"index":1,"delta":{"content":"b"}}]}` + "\n\n", h + `"}},{"index":1,"delta":{"content":"b"}}]}` + "\n\n",
			h + `"}},{"index":1,"delta":{"content":""}}]}` + "\n\n", h + `x"}},{"index":1,"text":"y"}]}` + "\n\n"},
		"obfuscation": {h + `a"}}],"obfuscation":"x1"}` + "\n\n", h + `b"}}],"obfuscation":"y22"}` + "\n\n",
			h + `c"}}],"obfuscation":"z"}` + "\n\n", h + `d"}}],"obfuscation":"w"}` + "\n\n", h + `e"}}],"obfuscation":"v"}` + "\n\n",
			h + `f"}}],"obfuscation":"u"}` + "\n\n", h + `f"}}],"obfuscation":"u"}` + "\n\n"},
		"broken rest": {h + `a` + e, h + `b"}` + "\n\n", h + `c"},"finish_reason":nul` + "\n\n", h + `d` + e, h + "\n\n", h + `e` + e},
		"model after choices": {`data: {"choices":[{"delta":{"content":"a"}}],"model":"m1"}` + "\n\n",
			`data: {"choices":[{"delta":{"content":"b"}}],"model":"m2"}` + "\n\n", `data: {"choices":[{"delta":{"content":"b"}}],"model":"m2"}` + "\n\n"},
		"usage before choices": {`data: {"usage":{"prompt_tokens":1,"completion_tokens":1},"choices":[{"delta":{"content":"a"}}]}` + "\n\n",
			`data: {"usage":{"prompt_tokens":1,"completion_tokens":1},"choices":[{"delta":{"content":"b"}}]}` + "\n\n", usageChunk,
			`data: {"usage":{"prompt_tokens":1,"completion_tokens":1},"choices":[{"delta":{"content":"b"}}]}` + "\n\n"},
		"text before delta": {`data: {"choices":[{"text":"t","delta":{"content":""}}]}` + "\n\n", `data: {"choices":[{"text":"t","delta":{"content":""}}]}` + "\n\n"},
		"role first":        {h[:len(h)-len(`"content":"`)] + `"role":"assistant","content":"` + e, h + `x` + e, h + `y` + e},
	}
}

// TestTemplate compares, event by event, a parser that uses templates with
// one that reads every chunk in full.
func TestTemplate(t *testing.T) {
	for name, evs := range templateStreams() {
		t.Run(name, func(t *testing.T) {
			var fast, full Parser
			full.noTmpl = true
			fast.Reset(SSE)
			full.Reset(SSE)
			for i, ev := range evs {
				nf, nn := fast.Feed([]byte(ev)), full.Feed([]byte(ev))
				if g, w := resultWant(fast.Result()), resultWant(full.Result()); nf != nn || !reflect.DeepEqual(g, w) {
					t.Fatalf("after event %d (%q): %d %+v, read in full %d %+v", i, ev, nf, g, nn, w)
				}
			}
		})
	}
	// The template is used: the hot path reads no chunk in full.
	var p Parser
	p.Reset(SSE)
	evs := realisticStream(8, false)
	for _, ev := range evs[:3] {
		p.Feed(ev)
	}
	if len(p.tmpl) == 0 || len(p.tmplEnd) == 0 {
		t.Fatalf("no template after %d chunks: %q %q", 3, p.tmpl, p.tmplEnd)
	}
}

// TestSplitLineThenPartial: a data line that ends in a later write, followed
// in that write by the start of another line of the same event (found by
// the fuzzer: the data was kept in the line buffer the partial line then
// overwrote).
func TestSplitLineThenPartial(t *testing.T) {
	ev := chunk("hi")
	line := ev[:len(ev)-2]
	got, fed := parse(SSE, []string{line[:30], line[30:] + "\nid: 1234567890", "1\n\n" + chunk("again")})
	if got.chunks != 2 || got.skip != 0 || fed != 2 {
		t.Errorf("got %+v (fed %d), want 2 content chunks, none skipped", got, fed)
	}
}
