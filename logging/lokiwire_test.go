package logging_test

// A second, independent receiver of the Loki push wire format: the SDK
// encodes with Loki's gogo-generated push types; this decoder reads the same
// bytes with google.golang.org/protobuf's protowire, straight from the field
// numbers of Loki's pkg/push/push.proto, and the JSON body with encoding/json
// against the documented shape of POST /loki/api/v1/push
// ({"streams":[{"stream":{labels},"values":[["<ns>","<line>",{metadata}]]}]}).
// Stream labels are parsed from their selector text here too, not with the
// SDK's own helpers, so a mistake in either side shows as a mismatch.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/modeltel/modeltel/logging"
)

type wireEntry struct {
	ns   int64
	line string
	meta map[string]string
}

type wireStream struct {
	labels  map[string]string
	entries []wireEntry
}

type wireRequest struct {
	path    string
	header  http.Header
	streams []wireStream
}

// Field numbers of Loki's push.proto (and google.protobuf.Timestamp).
const (
	fPushStreams      = 1 // PushRequest.streams: StreamAdapter
	fStreamLabels     = 1 // StreamAdapter.labels: string
	fStreamEntries    = 2 // StreamAdapter.entries: EntryAdapter
	fEntryTimestamp   = 1 // EntryAdapter.timestamp: Timestamp
	fEntryLine        = 2 // EntryAdapter.line: string
	fEntryMetadata    = 3 // EntryAdapter.structuredMetadata: LabelPairAdapter
	fLabelName        = 1
	fLabelValue       = 2
	fTimestampSeconds = 1 // int64
	fTimestampNanos   = 2 // int32
)

// eachField calls fn for every field of the protobuf message b.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func decodeProtoPush(raw []byte) ([]wireStream, error) {
	var streams []wireStream
	err := eachField(raw, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fPushStreams || typ != protowire.BytesType {
			return nil
		}
		var s wireStream
		err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			switch {
			case num == fStreamLabels && typ == protowire.BytesType:
				l, err := parseSelector(string(v))
				s.labels = l
				return err
			case num == fStreamEntries && typ == protowire.BytesType:
				e, err := decodeProtoEntry(v)
				s.entries = append(s.entries, e)
				return err
			}
			return nil
		})
		streams = append(streams, s)
		return err
	})
	return streams, err
}

func decodeProtoEntry(b []byte) (wireEntry, error) {
	var e wireEntry
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return fmt.Errorf("entry field %d: wire type %d", num, typ)
		}
		switch num {
		case fEntryTimestamp:
			var sec, nanos int64
			err := eachField(v, func(num protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
				switch num {
				case fTimestampSeconds:
					sec = int64(x)
				case fTimestampNanos:
					nanos = int64(int32(x))
				}
				return nil
			})
			e.ns = sec*1e9 + nanos
			return err
		case fEntryLine:
			e.line = string(v)
		case fEntryMetadata:
			var name, value string
			err := eachField(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				switch num {
				case fLabelName:
					name = string(v)
				case fLabelValue:
					value = string(v)
				}
				return nil
			})
			if e.meta == nil {
				e.meta = map[string]string{}
			}
			e.meta[name] = value
			return err
		}
		return nil
	})
	return e, err
}

// parseSelector parses the stream labels in Loki's form, {a="x", b="y"}.
func parseSelector(s string) (map[string]string, error) {
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, fmt.Errorf("labels %q: not {...}", s)
	}
	rest := strings.TrimSpace(s[1 : len(s)-1])
	out := map[string]string{}
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, fmt.Errorf("labels %q: no '='", s)
		}
		q, err := strconv.QuotedPrefix(after)
		if err != nil {
			return nil, fmt.Errorf("labels %q: %w", s, err)
		}
		v, _ := strconv.Unquote(q)
		out[strings.TrimSpace(name)] = v
		rest = strings.TrimSpace(after[len(q):])
		rest = strings.TrimSpace(strings.TrimPrefix(rest, ","))
	}
	return out, nil
}

func decodeJSONPush(body []byte) ([]wireStream, error) {
	var req struct {
		Streams []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	var out []wireStream
	for _, s := range req.Streams {
		ws := wireStream{labels: s.Stream}
		for _, v := range s.Values {
			if len(v) != 2 && len(v) != 3 {
				return nil, fmt.Errorf("value of %d elements, want 2 or 3", len(v))
			}
			var ts string
			var e wireEntry
			if err := json.Unmarshal(v[0], &ts); err != nil {
				return nil, fmt.Errorf("timestamp must be a string of ns: %w", err)
			}
			ns, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return nil, err
			}
			e.ns = ns
			if err := json.Unmarshal(v[1], &e.line); err != nil {
				return nil, err
			}
			if len(v) == 3 {
				if err := json.Unmarshal(v[2], &e.meta); err != nil {
					return nil, fmt.Errorf("structured metadata must be an object of strings: %w", err)
				}
			}
			ws.entries = append(ws.entries, e)
		}
		out = append(out, ws)
	}
	return out, nil
}

// wireReceiver records and decodes what it is sent at the push path.
type wireReceiver struct {
	mu   sync.Mutex
	reqs []wireRequest
	errs []error
}

func (rc *wireReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var streams []wireStream
	if err == nil {
		switch ct := r.Header.Get("Content-Type"); ct {
		case "application/json":
			streams, err = decodeJSONPush(body)
		case "application/x-protobuf":
			var raw []byte
			if raw, err = snappy.Decode(nil, body); err == nil {
				streams, err = decodeProtoPush(raw)
			}
		default:
			err = fmt.Errorf("content type %q", ct)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil {
		rc.errs = append(rc.errs, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.reqs = append(rc.reqs, wireRequest{path: r.URL.Path, header: r.Header.Clone(), streams: streams})
	w.WriteHeader(http.StatusNoContent)
}

// TestLokiWireConformance pushes records through the SDK in both encodings
// and checks, with the independent decoder above, the push path, the tenant
// and extra headers, the stream labels (with the level label), the
// nanosecond timestamps, the lines and the trace ids as structured metadata.
func TestLokiWireConformance(t *testing.T) {
	tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	sid := trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	spanCtx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)

	for _, enc := range []string{logging.EncodingProtobuf, logging.EncodingJSON} {
		t.Run(enc, func(t *testing.T) {
			rc := &wireReceiver{}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			l, err := logging.NewLoki(logging.LokiConfig{
				URL:        srv.URL + "/insert", // a prefix, as VictoriaLogs has
				Labels:     map[string]string{"service_name": "wire", "env": "a \"quoted\", value"},
				LevelLabel: true,
				Encoding:   enc,
				TenantID:   "tenant-7",
				Headers:    map[string]string{"AccountID": "12", "ProjectID": "34"},
				BatchWait:  time.Hour,
				Fallback:   slog.NewTextHandler(io.Discard, nil),
			})
			if err != nil {
				t.Fatal(err)
			}
			logRec := func(ctx context.Context, ts time.Time, lv slog.Level, msg string) {
				r := slog.NewRecord(ts, lv, msg, 0)
				r.AddAttrs(slog.Int("n", 1))
				if err := l.Handle(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			logRec(spanCtx, t0, slog.LevelInfo, "with span")
			logRec(context.Background(), t0.Add(time.Nanosecond), slog.LevelWarn, "no span")
			logRec(spanCtx, t0.Add(2*time.Nanosecond), slog.LevelInfo, "with span again")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}

			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.errs) > 0 {
				t.Fatalf("decode errors: %v", errors.Join(rc.errs...))
			}
			if len(rc.reqs) != 1 {
				t.Fatalf("%d pushes, want 1", len(rc.reqs))
			}
			req := rc.reqs[0]
			if req.path != "/insert/loki/api/v1/push" {
				t.Errorf("path %q", req.path)
			}
			for k, want := range map[string]string{"X-Scope-OrgID": "tenant-7", "AccountID": "12", "ProjectID": "34", "VL-Msg-Field": "msg"} {
				if got := req.header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			byLevel := map[string]wireStream{}
			for _, s := range req.streams {
				byLevel[s.labels["level"]] = s
			}
			if len(req.streams) != 2 || len(byLevel) != 2 {
				t.Fatalf("streams %+v, want one per level (info, warn)", req.streams)
			}
			meta := map[string]string{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
			want := map[string]struct {
				msgs []string
				ns   []int64
				meta []map[string]string
			}{
				"info": {[]string{"with span", "with span again"}, []int64{t0.UnixNano(), t0.UnixNano() + 2}, []map[string]string{meta, meta}},
				"warn": {[]string{"no span"}, []int64{t0.UnixNano() + 1}, []map[string]string{nil}},
			}
			for lv, w := range want {
				s := byLevel[lv]
				wantLabels := map[string]string{"service_name": "wire", "env": "a \"quoted\", value", "level": lv}
				if !maps.Equal(s.labels, wantLabels) {
					t.Errorf("%s: labels %v, want %v", lv, s.labels, wantLabels)
				}
				if len(s.entries) != len(w.msgs) {
					t.Fatalf("%s: %d entries, want %d", lv, len(s.entries), len(w.msgs))
				}
				for i, e := range s.entries {
					if e.ns != w.ns[i] {
						t.Errorf("%s[%d]: ts %d ns, want %d", lv, i, e.ns, w.ns[i])
					}
					if !maps.Equal(e.meta, w.meta[i]) {
						t.Errorf("%s[%d]: structured metadata %v, want %v", lv, i, e.meta, w.meta[i])
					}
					var line map[string]any
					if err := json.Unmarshal([]byte(e.line), &line); err != nil {
						t.Fatalf("%s[%d]: line %q is not JSON: %v", lv, i, e.line, err)
					}
					keys := slices.Sorted(maps.Keys(line))
					if line["msg"] != w.msgs[i] || line["n"] != 1.0 || !slices.Equal(keys, []string{"level", "msg", "n", "time"}) {
						t.Errorf("%s[%d]: line %q", lv, i, e.line)
					}
					if line["time"] != time.Unix(0, w.ns[i]).UTC().Format(time.RFC3339Nano) {
						t.Errorf("%s[%d]: line time %v, want the record's", lv, i, line["time"])
					}
				}
			}
		})
	}
}

func TestParseSelector(t *testing.T) {
	got, err := parseSelector(`{a="x", b="y, \"z\"=1"}`)
	if err != nil || !maps.Equal(got, map[string]string{"a": "x", "b": `y, "z"=1`}) {
		t.Errorf("parseSelector = %v, %v", got, err)
	}
	for _, bad := range []string{`a="x"`, `{a}`, `{a=x}`} {
		if _, err := parseSelector(bad); err == nil {
			t.Errorf("parseSelector(%q): no error", bad)
		}
	}
}

// TestLokiHeadersReplaceMsgField: Headers can replace the VL-Msg-Field
// header every push carries.
func TestLokiHeadersReplaceMsgField(t *testing.T) {
	rc := &wireReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	l, err := logging.NewLoki(logging.LokiConfig{
		URL:      srv.URL,
		Headers:  map[string]string{"VL-Msg-Field": "message"},
		Fallback: slog.NewTextHandler(io.Discard, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	slog.New(l).Info("m")
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.reqs) != 1 || rc.reqs[0].header.Values("VL-Msg-Field")[0] != "message" || len(rc.reqs[0].header.Values("VL-Msg-Field")) != 1 {
		t.Errorf("pushes %+v: want one VL-Msg-Field: message", rc.reqs)
	}
}
