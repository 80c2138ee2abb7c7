package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client calls an OpenAI-style chat completions API. The zero value needs a
// BaseURL; it is safe for concurrent use.
type Client struct {
	// BaseURL is the server's root, such as "http://127.0.0.1:8080".
	BaseURL string
	// HTTPClient defaults to http.DefaultClient.
	HTTPClient *http.Client
}

// Result is what one chat request gave, as the caller saw it.
type Result struct {
	Text         string
	FinishReason string
	Usage        Usage
	// Latency is from sending the request to the end of the answer.
	Latency time.Duration
	// TTFT is from sending the request to the first non-empty content; for a
	// non-streaming request it equals Latency.
	TTFT time.Duration
	// Chunks counts the content chunks of a streaming answer.
	Chunks int
}

// Chat sends req and reads the whole answer, streaming or not. A streaming
// req without StreamOptions asks for the usage (include_usage), so that
// Result.Usage is filled. An error answer is returned as *Error.
func (c *Client) Chat(ctx context.Context, req ChatRequest) (Result, error) {
	if req.Stream && req.StreamOptions == nil {
		req.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Result{}, fmt.Errorf("openai: encode request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("openai: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	start := time.Now()
	resp, err := hc.Do(hreq)
	if err != nil {
		return Result{}, fmt.Errorf("openai: %w", err)
	}
	defer func() {
		// Read what is left (a trailing newline, mostly) so that the
		// connection is reused, not closed under a server still finishing
		// the request.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return Result{}, readError(resp)
	}
	if !req.Stream {
		var cc ChatCompletion
		if err := json.NewDecoder(resp.Body).Decode(&cc); err != nil {
			return Result{}, fmt.Errorf("openai: decode response: %w", err)
		}
		res := Result{Latency: time.Since(start)}
		res.TTFT = res.Latency
		if len(cc.Choices) == 0 {
			return res, errors.New("openai: response without choices")
		}
		res.Text, res.FinishReason = cc.Choices[0].Message.Content, cc.Choices[0].FinishReason
		if cc.Usage != nil {
			res.Usage = *cc.Usage
		}
		return res, nil
	}
	return readStream(resp.Body, start)
}

func readStream(r io.Reader, start time.Time) (Result, error) {
	var (
		res  Result
		text strings.Builder
		done bool
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // blank separators, comments, other fields
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			done = true
			break
		}
		var ch ChatCompletionChunk
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			return res, fmt.Errorf("openai: decode chunk: %w", err)
		}
		if ch.Usage != nil {
			res.Usage = *ch.Usage
		}
		for _, c := range ch.Choices {
			if c.Delta.Content != "" {
				if res.Chunks == 0 {
					res.TTFT = time.Since(start)
				}
				res.Chunks++
				text.WriteString(c.Delta.Content)
			}
			if c.FinishReason != nil {
				res.FinishReason = *c.FinishReason
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("openai: read stream: %w", err)
	}
	res.Latency = time.Since(start)
	res.Text = text.String()
	if !done {
		return res, errors.New("openai: stream ended without [DONE]")
	}
	return res, nil
}

func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var er ErrorResponse
	if err := json.Unmarshal(b, &er); err != nil || er.Error.Message == "" {
		return &Error{Status: resp.StatusCode, Type: "http_error", Message: strings.TrimSpace(string(b))}
	}
	er.Error.Status = resp.StatusCode
	return &er.Error
}
