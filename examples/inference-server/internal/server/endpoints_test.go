package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
)

// TestEndpointErrors: the completions, embeddings and model endpoints refuse
// bad requests in OpenAI's error shape, with the field at fault.
func TestEndpointErrors(t *testing.T) {
	e := newEnv(t, fakemodel.Config{}, nil)
	tests := []struct {
		name, method, path, body string
		status                   int
		param, code              string
	}{
		{"completion without prompt", "POST", "/v1/completions", `{"model":"fake-llama-3-8b"}`, 400, "prompt", "missing_required_parameter"},
		{"completion, unknown model", "POST", "/v1/completions", `{"model":"gpt-9","prompt":"hi"}`, 404, "model", "model_not_found"},
		{"completion, prompt not text", "POST", "/v1/completions", `{"model":"fake-llama-3-8b","prompt":{"a":1}}`, 400, "", "invalid_json"},
		{"completion beyond the context", "POST", "/v1/completions", `{"model":"fake-mistral-7b","prompt":"a b c d e f g h i j","max_tokens":10}`, 400, "prompt", "context_length_exceeded"},
		{"embeddings without input", "POST", "/v1/embeddings", `{"model":"fake-llama-3-8b"}`, 400, "input", "missing_required_parameter"},
		{"embeddings, bad dimensions", "POST", "/v1/embeddings", `{"model":"fake-llama-3-8b","input":"hi","dimensions":0}`, 400, "dimensions", "invalid_value"},
		{"embeddings, bad format", "POST", "/v1/embeddings", `{"model":"fake-llama-3-8b","input":"hi","encoding_format":"int8"}`, 400, "encoding_format", "invalid_value"},
		{"embeddings beyond the context", "POST", "/v1/embeddings", `{"model":"fake-mistral-7b","input":"a b c d e f g h i j k l m n o p q"}`, 400, "input", "context_length_exceeded"},
		{"unknown model", "GET", "/v1/models/gpt-9", ``, 404, "model", "model_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.http.URL+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct {
					Type  string  `json:"type"`
					Param *string `json:"param"`
					Code  *string `json:"code"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			param, code := "", ""
			if body.Error.Param != nil {
				param = *body.Error.Param
			}
			if body.Error.Code != nil {
				code = *body.Error.Code
			}
			if resp.StatusCode != tt.status || param != tt.param || code != tt.code || body.Error.Type == "" {
				t.Errorf("%d %+v (param %q, code %q), want %d param %q code %q", resp.StatusCode, body.Error, param, code, tt.status, tt.param, tt.code)
			}
		})
	}
}
