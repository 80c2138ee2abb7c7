package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	dto "github.com/prometheus/client_model/go"
)

// TestOfficialOpenAISDK calls the server, wired as main wires it, with the
// official OpenAI Go SDK: each call a user of the SDK makes against an
// OpenAI-compatible server works, and each endpoint is recorded under its own
// gen_ai.operation.name (embeddings with input tokens and no output tokens).
func TestOfficialOpenAISDK(t *testing.T) {
	st := newStack(t)
	client := openai.NewClient(option.WithBaseURL(st.http.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const model = "fake-llama-3-8b"

	t.Run("models.get", func(t *testing.T) {
		m, err := client.Models.Get(ctx, model)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != model || m.OwnedBy != "modeltel" || m.Created == 0 {
			t.Errorf("model = %+v", m)
		}
		_, err = client.Models.Get(ctx, "gpt-9")
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" || apiErr.Type != "invalid_request_error" {
			t.Errorf("unknown model: err = %v, want a 404 model_not_found in OpenAI's shape", err)
		}
		list, err := client.Models.List(ctx)
		if err != nil || len(list.Data) != 1 || list.Data[0].ID != model {
			t.Errorf("models.list = %+v, %v", list, err)
		}
	})

	var plainText string
	t.Run("completions.new", func(t *testing.T) {
		c, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model:     openai.CompletionNewParamsModel(model),
			Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Why is the sky blue?")},
			MaxTokens: openai.Int(8),
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.Object != "text_completion" || len(c.Choices) != 1 || c.Choices[0].Text == "" ||
			c.Choices[0].FinishReason != openai.CompletionChoiceFinishReasonLength || c.Usage.CompletionTokens != 8 {
			t.Errorf("completion = %+v", c)
		}
		plainText = c.Choices[0].Text
	})

	t.Run("completions.new streaming", func(t *testing.T) {
		stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
			Model:         openai.CompletionNewParamsModel(model),
			Prompt:        openai.CompletionNewParamsPromptUnion{OfString: openai.String("Why is the sky blue?")},
			MaxTokens:     openai.Int(8),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var text strings.Builder
		var finish string
		var usage int64
		for stream.Next() {
			c := stream.Current()
			for _, ch := range c.Choices {
				text.WriteString(ch.Text)
				if ch.FinishReason != "" {
					finish = string(ch.FinishReason)
				}
			}
			if c.Usage.CompletionTokens > 0 {
				usage = c.Usage.CompletionTokens
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != plainText || finish != "length" || usage != 8 {
			t.Errorf("streamed %q finish %q usage %d; plain %q", text.String(), finish, usage, plainText)
		}
	})

	t.Run("embeddings.new", func(t *testing.T) {
		for _, format := range []openai.EmbeddingNewParamsEncodingFormat{"", openai.EmbeddingNewParamsEncodingFormatFloat} {
			e, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model:          openai.EmbeddingModel(model),
				Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"the blue sky", "red light"}},
				EncodingFormat: format,
				Dimensions:     openai.Int(32),
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Data) != 2 || len(e.Data[0].Embedding) != 32 || e.Data[1].Index != 1 || e.Usage.PromptTokens != 5 || e.Usage.TotalTokens != 5 {
				t.Errorf("embeddings (format %q) = %+v", format, e)
			}
			var norm float64
			for _, x := range e.Data[0].Embedding {
				norm += x * x
			}
			if norm < 0.99 || norm > 1.01 {
				t.Errorf("|v|^2 = %v, want a unit vector", norm)
			}
		}
	})

	t.Run("chat.completions streaming", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:               model,
			Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Why is the sky blue?")},
			MaxCompletionTokens: openai.Int(6),
			StreamOptions:       openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(acc.Choices) != 1 || acc.Choices[0].Message.Content == "" || acc.Choices[0].FinishReason != "length" || acc.Usage.CompletionTokens != 6 {
			t.Errorf("accumulated = %+v", acc.ChatCompletion)
		}
	})

	// Each endpoint under its own operation: 2 text completions, 2
	// embeddings requests, 1 chat. The SDK returns once it has read a
	// stream's [DONE], which can be before the handler has returned and its
	// request been recorded (under load, by many milliseconds, and not
	// always in the order the requests were made): wait, up to 5 s, until
	// each count has reached what it should be, then check it is exactly
	// that.
	want := map[string]float64{"text_completion": 2, "embeddings": 2, "chat": 1}
	count := func(mfs []*dto.MetricFamily, op string) float64 {
		return sum(mfs, "gen_ai_server_request_duration_seconds", map[string]string{"gen_ai_operation_name": op, "gen_ai_request_model": model})
	}
	var mfs []*dto.MetricFamily
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		var err error
		if mfs, err = st.tel.Registry().Gather(); err != nil {
			t.Fatal(err)
		}
		reached := true
		for op, n := range want {
			reached = reached && count(mfs, op) >= n
		}
		if reached || time.Now().After(deadline) {
			break
		}
	}
	for op, n := range want {
		if got := count(mfs, op); got != n {
			t.Errorf("%s requests = %v, want %v", op, got, n)
		}
	}
	if n := sum(mfs, "gen_ai_server_time_to_first_token_seconds", map[string]string{"gen_ai_operation_name": "embeddings"}); n != 0 {
		t.Errorf("embeddings TTFT observations = %v, want 0: embeddings have no output tokens", n)
	}
	tokens := func(op, typ string) float64 {
		return sum(mfs, "inference_tokens_total", map[string]string{"gen_ai_operation_name": op, "gen_ai_token_type": typ})
	}
	if in, out := tokens("embeddings", "input"), tokens("embeddings", "output"); in != 10 || out != 0 {
		t.Errorf("embeddings tokens: input %v, output %v; want 10 (two requests of 5) and 0", in, out)
	}
	if out := tokens("text_completion", "output"); out != 16 {
		t.Errorf("text_completion output tokens = %v, want 16", out)
	}
}
