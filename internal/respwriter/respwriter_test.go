package respwriter

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

type plain struct{ http.ResponseWriter }

type hijackOnly struct{ *httptest.ResponseRecorder }

func (hijackOnly) Hijack() (net.Conn, *bufio.ReadWriter, error) { return nil, nil, http.ErrHijacked }

func TestWrapInterfaces(t *testing.T) {
	tests := []struct {
		name                   string
		w                      http.ResponseWriter
		flush, hijack, readFrm bool
	}{
		{"recorder (flusher)", httptest.NewRecorder(), true, false, false},
		{"plain", plain{httptest.NewRecorder()}, false, false, false},
		{"flusher+hijacker", hijackOnly{httptest.NewRecorder()}, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := Wrap(tt.w)
			_, f := w.(http.Flusher)
			_, h := w.(http.Hijacker)
			_, r := w.(io.ReaderFrom)
			if f != tt.flush || h != tt.hijack || r != tt.readFrm {
				t.Errorf("flusher %v hijacker %v readerfrom %v", f, h, r)
			}
			if w.(interface{ Unwrap() http.ResponseWriter }).Unwrap() != tt.w {
				t.Error("Unwrap does not return the underlying writer")
			}
		})
	}
}

func TestStatusAndBytes(t *testing.T) {
	tests := []struct {
		name       string
		do         func(w http.ResponseWriter)
		wantStatus int
		wantBytes  int64
	}{
		{"nothing", func(http.ResponseWriter) {}, 0, 0},
		{"write", func(w http.ResponseWriter) { _, _ = w.Write([]byte("hello")) }, 200, 5},
		{"header then write", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusTeapot)
			_, _ = io.WriteString(w, "ab")
		}, 418, 2},
		{"early hints first", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}, 201, 0},
		{"flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, 200, 0},
		{"response controller", func(w http.ResponseWriter) {
			_ = http.NewResponseController(w).Flush()
			_, _ = w.Write([]byte("x"))
		}, 200, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, st := Wrap(httptest.NewRecorder())
			tt.do(w)
			if st.Status != tt.wantStatus || st.Bytes != tt.wantBytes {
				t.Errorf("status %d bytes %d, want %d %d", st.Status, st.Bytes, tt.wantStatus, tt.wantBytes)
			}
		})
	}
}

// Through a real server the HTTP/1 writer keeps Hijacker and ReaderFrom.
func TestRealServerInterfaces(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww, st := Wrap(w)
		_, h := ww.(http.Hijacker)
		rf, r2 := ww.(io.ReaderFrom)
		if r2 {
			_, _ = rf.ReadFrom(strings.NewReader("abc"))
		}
		got <- map[bool]string{true: "ok", false: "missing"}[h && r2 && st.Bytes == 3 && st.Status == 200]
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if g := <-got; g != "ok" {
		t.Error("HTTP/1 writer lost Hijacker/ReaderFrom or miscounted")
	}
}

// failing is a flushing writer whose writes and flushes fail with the
// errors given, as net/http's do once the client is gone.
type failing struct {
	*httptest.ResponseRecorder
	writeErr, flushErr error
}

func (f *failing) Write(b []byte) (int, error) {
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	return f.ResponseRecorder.Write(b)
}

func (f *failing) WriteString(s string) (int, error) { return f.Write([]byte(s)) }
func (f *failing) FlushError() error                 { return f.flushErr }

func TestErr(t *testing.T) {
	errW, errF := errors.New("write: broken pipe"), errors.New("flush: broken pipe")
	tests := []struct {
		name               string
		writeErr, flushErr error
		do                 func(w http.ResponseWriter) error // returns what the handler saw
		seen, want         error
	}{
		{"no error", nil, nil, func(w http.ResponseWriter) error {
			_, err := io.WriteString(w, "x")
			return err
		}, nil, nil},
		{"write", errW, nil, func(w http.ResponseWriter) error {
			_, err := w.Write([]byte("x"))
			return err
		}, errW, errW},
		{"write string", errW, nil, func(w http.ResponseWriter) error {
			_, err := io.WriteString(w, "x")
			return err
		}, errW, errW},
		{"flush via Flusher", nil, errF, func(w http.ResponseWriter) error {
			w.(http.Flusher).Flush()
			return nil
		}, nil, errF},
		{"flush via ResponseController", nil, errF, func(w http.ResponseWriter) error {
			return http.NewResponseController(w).Flush()
		}, errF, errF},
		{"first kept", errW, errF, func(w http.ResponseWriter) error {
			_, err := w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			return err
		}, errW, errW},
		{"read from source error not kept", nil, nil, func(w http.ResponseWriter) error {
			_, err := io.Copy(w, iotest.ErrReader(errW))
			if err == nil {
				return errors.New("copy did not fail")
			}
			return nil
		}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, st := Wrap(&failing{ResponseRecorder: httptest.NewRecorder(), writeErr: tt.writeErr, flushErr: tt.flushErr})
			if got := tt.do(w); got != tt.seen {
				t.Errorf("handler saw %v, want %v", got, tt.seen)
			}
			if st.Err != tt.want {
				t.Errorf("Err = %v, want %v", st.Err, tt.want)
			}
		})
	}
}

func BenchmarkWrap(b *testing.B) {
	rec := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		w, _ := Wrap(rec)
		w.WriteHeader(200)
	}
}

type collect struct{ got []byte }

func (c *collect) Observe(p []byte) { c.got = append(c.got, p...) }

// TestObserver: the observer sees every body byte, whichever way it was
// written, and the client gets the same bytes.
func TestObserver(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww, st := Wrap(w)
		c := &collect{}
		st.Observer = c
		_, _ = ww.Write([]byte("a"))
		_, _ = io.WriteString(ww, "bc")
		_, _ = ww.(io.ReaderFrom).ReadFrom(strings.NewReader("def"))
		_ = http.NewResponseController(ww).Flush()
		_, _ = ww.Write([]byte("g"))
		if string(c.got) != "abcdefg" || st.Bytes != 7 {
			t.Errorf("observed %q, %d bytes", c.got, st.Bytes)
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "abcdefg" {
		t.Errorf("client got %q", b)
	}
}
