package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modeltel/modeltel/examples/internal/openai"
)

// fake answers like the inference server: "hello world" in two chunks, and the
// usage chunk only when the request asks for it.
func fake(w http.ResponseWriter, r *http.Request) {
	var req openai.ChatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "m" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		code := "model_not_found"
		_ = json.NewEncoder(w).Encode(openai.ErrorResponse{Error: openai.Error{Message: "no such model", Type: "invalid_request_error", Code: &code}})
		return
	}
	usage := &openai.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}
	if !req.Stream {
		_ = json.NewEncoder(w).Encode(openai.ChatCompletion{Object: "chat.completion", Choices: []openai.Choice{{
			Message: openai.Message{Role: "assistant", Content: "hello world"}, FinishReason: "stop"}}, Usage: usage})
		return
	}
	if req.Messages[0].Content == "truncate" {
		fmt.Fprint(w, "data: {\"choices\":[]}\n\n")
		return
	}
	stop := "stop"
	for _, ch := range []openai.ChatCompletionChunk{
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{Role: "assistant"}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{Content: "hello"}}}},
		{Choices: []openai.ChunkChoice{{Delta: openai.Delta{Content: " world"}}}},
		{Choices: []openai.ChunkChoice{{FinishReason: &stop}}},
		{Choices: []openai.ChunkChoice{}, Usage: usage},
	} {
		if ch.Usage != nil && (req.StreamOptions == nil || !req.StreamOptions.IncludeUsage) {
			continue
		}
		b, _ := json.Marshal(ch)
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func TestChat(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(fake))
	defer srv.Close()
	tests := []struct {
		name       string
		prompt     string
		model      string
		stream     bool
		wantChunks int
		wantStatus int // 0: success
	}{
		{"plain", "say hello", "m", false, 0, 0},
		{"stream", "say hello", "m", true, 2, 0},
		{"unknown model", "say hello", "x", true, 0, 404},
		{"stream without DONE", "truncate", "m", true, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c := &openai.Client{BaseURL: srv.URL}
			res, err := c.Chat(ctx, openai.ChatRequest{Model: tt.model, Stream: tt.stream,
				Messages: []openai.Message{{Role: "user", Content: tt.prompt}}})
			switch {
			case tt.wantStatus > 0:
				var ae *openai.Error
				if !errors.As(err, &ae) || ae.Status != tt.wantStatus || ae.Code == nil || *ae.Code != "model_not_found" {
					t.Fatalf("err = %v, want API error %d model_not_found", err, tt.wantStatus)
				}
				return
			case tt.wantStatus < 0:
				if err == nil {
					t.Fatal("no error for a stream without [DONE]")
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if res.Text != "hello world" || res.FinishReason != "stop" || res.Usage.TotalTokens != 5 || res.Chunks != tt.wantChunks {
				t.Errorf("result = %+v", res)
			}
			if res.TTFT <= 0 || res.TTFT > res.Latency {
				t.Errorf("TTFT %v not in (0, latency %v]", res.TTFT, res.Latency)
			}
		})
	}
}

func TestTextsUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{`"one"`, []string{"one"}, false},
		{`["a","b"]`, []string{"a", "b"}, false},
		{`[1,2,3]`, []string{"1 2 3"}, false},
		{`[[1,2],[3]]`, []string{"1 2", "3"}, false},
		{`null`, nil, false},
		{`{"x":1}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got openai.Texts
			err := json.Unmarshal([]byte(tt.in), &got)
			if (err != nil) != tt.wantErr || fmt.Sprint([]string(got)) != fmt.Sprint(tt.want) {
				t.Errorf("Unmarshal(%s) = %q, %v", tt.in, got, err)
			}
		})
	}
}
