package middleware

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/grpc"

	"github.com/modeltel/modeltel/inference"
)

// http.ResponseController reaches the server's writer through ours: read
// and write deadlines and full duplex over HTTP/1, deadlines over HTTP/2,
// and a hijack (a websocket upgrade) is counted once with the gauge back
// at zero.
func TestResponseControllerThroughWrapper(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			m := New()
			errs := make(chan error, 4)
			srv := httptest.NewUnstartedServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				errs <- rc.SetReadDeadline(time.Now().Add(time.Minute))
				errs <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
				if !h2 {
					errs <- rc.EnableFullDuplex()
				} else {
					errs <- nil
				}
				errs <- rc.Flush()
			})))
			if h2 {
				srv.EnableHTTP2 = true
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if h2 && resp.ProtoMajor != 2 {
				t.Fatalf("proto = %s", resp.Proto)
			}
			for range 4 {
				if err := <-errs; err != nil {
					t.Errorf("ResponseController: %v", err)
				}
			}
		})
	}
	t.Run("hijack", func(t *testing.T) {
		m := New()
		inner := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
		}))
		// httptest.Server.Close stops tracking a hijacked connection, so
		// it does not wait for the handler: wait for the middleware to
		// return instead.
		done := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(done)
			inner.ServeHTTP(w, r)
		}))
		defer srv.Close()
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		line, _ := bufio.NewReader(conn).ReadString('\n')
		if !strings.Contains(line, "101") {
			t.Fatalf("status line %q", line)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the hijacking handler did not return")
		}
		if n := testutil.CollectAndCount(m, "http_server_request_duration_seconds"); n != 1 {
			t.Errorf("duration series = %d, want 1", n)
		}
		got, err := testutil.CollectAndFormat(m, expfmt.TypeTextPlain, "http_server_request_duration_seconds")
		if err != nil {
			t.Fatal(err)
		}
		if want := `http_response_status_code="101"`; !strings.Contains(string(got), want) {
			t.Errorf("a hijacked upgrade is not recorded as %s:\n%s", want, got)
		}
		if v := testutil.ToFloat64(m.activeBy[0][0]); v != 0 {
			t.Errorf("active = %v after a hijacked request", v)
		}
	})
}

// A handler that calls runtime.Goexit (t.FailNow in a test server, say)
// must not be turned into a panic by the interceptors.
func TestGRPCGoexitNotPanic(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithGRPCModel(func(context.Context, string, any) string { return "m" }))
	info := &grpc.UnaryServerInfo{FullMethod: "/llm.Chat/Complete"}
	var recovered any
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { recovered = recover() }()
		_, _ = m.UnaryServerInterceptor()(context.Background(), "req", info, func(context.Context, any) (any, error) {
			runtime.Goexit()
			return nil, nil
		})
	}()
	wg.Wait()
	if recovered != nil {
		t.Errorf("unary: Goexit became a panic: %v", recovered)
	}
	if n := testutil.ToFloat64(m.grpc.handled.WithLabelValues("unary", "llm.Chat", "Complete", "Internal")); n != 1 {
		t.Errorf("handled{Internal} = %v, want 1", n)
	}

	recovered = nil
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { recovered = recover() }()
		_ = m.StreamServerInterceptor()(nil, fakeStream{}, &grpc.StreamServerInfo{FullMethod: "/llm.Chat/Stream", IsServerStream: true},
			func(any, grpc.ServerStream) error {
				runtime.Goexit()
				return nil
			})
	}()
	wg.Wait()
	if recovered != nil {
		t.Errorf("stream: Goexit became a panic: %v", recovered)
	}
}

type fakeStream struct{ grpc.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }

// msgStream is a server stream whose RecvMsg always succeeds.
type msgStream struct{ fakeStream }

func (msgStream) RecvMsg(any) error { return nil }

// A message received after the handler returned (a reader goroutine the
// handler left behind) must not start a recorder the interceptor has
// already ended: it would never end, and inference_requests_active would
// leak.
func TestGRPCStreamRecvAfterReturn(t *testing.T) {
	inf := inference.NewMetrics()
	m := New(WithInference(inf), WithGRPCModel(func(context.Context, string, any) string { return "m" }))
	info := &grpc.StreamServerInfo{FullMethod: "/llm.Chat/Stream", IsClientStream: true, IsServerStream: true}
	var left grpc.ServerStream
	err := m.StreamServerInterceptor()(nil, msgStream{}, info, func(_ any, ss grpc.ServerStream) error {
		left = ss
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = left.RecvMsg(new(string))
	if inference.FromContext(left.Context()) != nil {
		t.Error("a recorder was started after the RPC ended")
	}
	// No recorder, so no in-flight series left at 1.
	if n := testutil.CollectAndCount(inf, "inference_requests_active"); n != 0 {
		t.Errorf("inference_requests_active has %d series after the RPC ended, want none", n)
	}
}
