package generate_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/modeltel/modeltel/examples/internal/generate"
	"github.com/modeltel/modeltel/internal/testkit"
)

// echo streams the prompt's words back, one per message.
type echo struct{}

func (echo) Generate(req *generate.Request, stream grpc.ServerStreamingServer[generate.Response]) error {
	if req.Model != "m" {
		return status.Errorf(codes.NotFound, "model %q not found", req.Model)
	}
	words := strings.Fields(req.Prompt)
	for i, w := range words {
		if err := stream.Send(&generate.Response{Token: w, Index: i}); err != nil {
			return err
		}
	}
	return stream.Send(&generate.Response{Index: len(words), FinishReason: "stop",
		Usage: &generate.Usage{PromptTokens: len(words), CompletionTokens: len(words)}})
}

func dial(t *testing.T) *generate.Client {
	t.Helper()
	s := grpc.NewServer()
	generate.Register(s, echo{})
	return generate.NewClient(testkit.ServeBufconn(t, s))
}

func TestGenerate(t *testing.T) {
	c := dial(t)
	tests := []struct {
		name     string
		req      generate.Request
		want     []string
		wantCode codes.Code
	}{
		{"ok", generate.Request{Model: "m", Prompt: "a b c"}, []string{"a", "b", "c"}, codes.OK},
		{"empty", generate.Request{Model: "m"}, nil, codes.OK},
		{"unknown model", generate.Request{Model: "x", Prompt: "a"}, nil, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := c.Generate(ctx, &tt.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var last *generate.Response
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					if status.Code(err) != tt.wantCode {
						t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tt.wantCode)
					}
					return
				}
				if resp.Token != "" {
					got = append(got, resp.Token)
				}
				last = resp
			}
			if tt.wantCode != codes.OK {
				t.Fatalf("no error, want %v", tt.wantCode)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("tokens = %q, want %q", got, tt.want)
			}
			if last == nil || last.FinishReason != "stop" || last.Usage == nil || last.Usage.CompletionTokens != len(tt.want) {
				t.Errorf("last message = %+v, want finish stop and usage", last)
			}
		})
	}
}

func TestCodec(t *testing.T) {
	var c generate.Codec
	b, err := c.Marshal(&generate.Request{Model: "m", Prompt: "p", MaxTokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"model":"m","prompt":"p","max_tokens":3}` {
		t.Errorf("Marshal = %s", b)
	}
	var r generate.Request
	if err := c.Unmarshal(b, &r); err != nil || r.MaxTokens != 3 {
		t.Errorf("Unmarshal = %+v, %v", r, err)
	}
	if err := c.Unmarshal([]byte("{"), &r); err == nil {
		t.Error("Unmarshal of bad JSON: no error")
	}
	if c.Name() != "json" {
		t.Errorf("Name = %q", c.Name())
	}
}
