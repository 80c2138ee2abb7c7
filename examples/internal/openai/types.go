package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ChatRequest is the body of POST /v1/chat/completions.
type ChatRequest struct {
	Model     string    `json:"model"`
	Messages  []Message `json:"messages"`
	Stream    bool      `json:"stream,omitempty"`
	MaxTokens *int      `json:"max_tokens,omitempty"`
	// MaxCompletionTokens is what current OpenAI SDKs send instead of the
	// deprecated MaxTokens; it wins when both are set.
	MaxCompletionTokens *int           `json:"max_completion_tokens,omitempty"`
	StreamOptions       *StreamOptions `json:"stream_options,omitempty"`
}

// StreamOptions are the options of a streaming request: with IncludeUsage the
// stream ends with a chunk holding the usage and no choices, as OpenAI does.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Message is one chat message. Its content is a string on the wire, or null,
// or (in requests) an array of content parts, whose text parts are joined
// with spaces into Content and whose other parts (images, audio) are ignored.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// UnmarshalJSON accepts a string, null or an array of content parts as the
// content.
func (m *Message) UnmarshalJSON(b []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Role, m.Content = raw.Role, ""
	c := bytes.TrimSpace(raw.Content)
	switch {
	case len(c) == 0 || bytes.Equal(c, []byte("null")):
		return nil
	case c[0] == '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(c, &parts); err != nil {
			return fmt.Errorf("message content: %w", err)
		}
		var texts []string
		for _, p := range parts {
			if p.Type == "text" {
				texts = append(texts, p.Text)
			}
		}
		m.Content = strings.Join(texts, " ")
		return nil
	}
	if err := json.Unmarshal(c, &m.Content); err != nil {
		return fmt.Errorf("message content: %w", err)
	}
	return nil
}

// ChatCompletion is the non-streaming answer.
type ChatCompletion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"` // "chat.completion"
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage"`
}

// Choice is one answer of a ChatCompletion.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// ChatCompletionChunk is one server-sent event of a streaming answer.
type ChatCompletionChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"` // "chat.completion.chunk"
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage"`
}

// ChunkChoice is the delta of one choice in a chunk. FinishReason is null until
// the choice's last chunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is the text a chunk adds.
type Delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// Usage counts the tokens of one request.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ModelList is the answer of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"` // "list"
	Data   []Model `json:"data"`
}

// Model describes one served model.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// Error is an API error as OpenAI clients expect it. It implements error so the
// client can return it; Status is the HTTP status (not serialised).
type Error struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
	Status  int     `json:"-"`
}

// Error returns the status, type, code and message on one line.
func (e *Error) Error() string {
	code := ""
	if e.Code != nil {
		code = " " + *e.Code
	}
	return fmt.Sprintf("openai: %d %s%s: %s", e.Status, e.Type, code, e.Message)
}

// Texts is a request field that is one string or an array of strings (or of
// tokens: an array of integers, or an array of such arrays, each integer
// taken as one token and written as its decimal text). It decodes to one
// string per input.
type Texts []string

// UnmarshalJSON accepts a string, an array of strings, an array of integers
// (one input) or an array of arrays of integers.
func (t *Texts) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*t = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = Texts{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err == nil {
		*t = many
		return nil
	}
	var toks []int64
	if err := json.Unmarshal(b, &toks); err == nil {
		*t = Texts{joinTokens(toks)}
		return nil
	}
	var lists [][]int64
	if err := json.Unmarshal(b, &lists); err != nil {
		return fmt.Errorf("want a string, an array of strings or an array of token arrays: %w", err)
	}
	*t = make(Texts, len(lists))
	for i, l := range lists {
		(*t)[i] = joinTokens(l)
	}
	return nil
}

func joinTokens(toks []int64) string {
	s := make([]string, len(toks))
	for i, v := range toks {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, " ")
}

// CompletionRequest is the body of POST /v1/completions (the legacy text
// completions API).
type CompletionRequest struct {
	Model         string         `json:"model"`
	Prompt        Texts          `json:"prompt"`
	Stream        bool           `json:"stream,omitempty"`
	MaxTokens     *int           `json:"max_tokens,omitempty"`
	StreamOptions *StreamOptions `json:"stream_options,omitempty"`
}

// Completion is the answer of POST /v1/completions, and (with one choice's
// text, or its finish reason, or with empty choices and the usage) each event
// of its stream.
type Completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"` // "text_completion"
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// CompletionChoice is one choice of a Completion. FinishReason is null until
// the choice's last event.
type CompletionChoice struct {
	Text         string    `json:"text"`
	Index        int       `json:"index"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

// EmbeddingRequest is the body of POST /v1/embeddings.
type EmbeddingRequest struct {
	Model string `json:"model"`
	Input Texts  `json:"input"`
	// EncodingFormat is "float" (the default) or "base64" (the float32
	// values, little endian, base64-encoded: what the OpenAI Node and Python
	// SDKs ask for by default).
	EncodingFormat string `json:"encoding_format,omitempty"`
	// Dimensions is the length of each vector; 0: the server's default.
	Dimensions *int `json:"dimensions,omitempty"`
}

// EmbeddingList is the answer of POST /v1/embeddings.
type EmbeddingList struct {
	Object string         `json:"object"` // "list"
	Data   []Embedding    `json:"data"`
	Model  string         `json:"model"`
	Usage  EmbeddingUsage `json:"usage"`
}

// EmbeddingUsage counts the input tokens of an embeddings request (there are
// no output tokens).
type EmbeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// Embedding is one input's vector: a JSON array of numbers, or a base64
// string with encoding_format "base64".
type Embedding struct {
	Object    string `json:"object"` // "embedding"
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}
