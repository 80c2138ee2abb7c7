package server

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/examples/internal/openai"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/tracing"
)

// maxEmbeddingDimensions bounds the dimensions a request may ask for.
const maxEmbeddingDimensions = 4096

// embeddings serves POST /v1/embeddings, operation embeddings: one vector per
// input, under a tokenize span and one prefill forward pass. The recorder gets
// the input tokens and no output tokens (so no time to first token).
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req openai.EmbeddingRequest
	if !s.decodeBody(w, r, &req) {
		return
	}
	j, aerr := s.validate(req.Model, "input", len(req.Input), nil, "")
	if aerr != nil {
		s.reject(w, r, aerr)
		return
	}
	dims := s.cfg.EmbeddingDimensions
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > maxEmbeddingDimensions {
			s.reject(w, r, invalid("dimensions", "invalid_value", "Invalid 'dimensions': %d; this server allows 1 to %d.", *req.Dimensions, maxEmbeddingDimensions))
			return
		}
		dims = *req.Dimensions
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		s.reject(w, r, invalid("encoding_format", "invalid_value", "Invalid 'encoding_format': '%s'; use 'float' or 'base64'.", req.EncodingFormat))
		return
	}
	inputs := make([][]string, len(req.Input))
	total := 0
	_, span := tracing.StartTokenize(ctx)
	for i, in := range req.Input {
		inputs[i] = fakemodel.Tokenize(in)
		total += len(inputs[i])
	}
	span.SetAttributes(tracing.SequenceLengthKey.Int(total))
	span.End()
	rec := inference.FromContext(ctx)
	rec.InputTokens(total)
	start := time.Now()
	list := openai.EmbeddingList{Object: "list", Model: j.model.Name(), Data: make([]openai.Embedding, len(inputs)),
		Usage: openai.EmbeddingUsage{PromptTokens: total, TotalTokens: total}}
	var err error
	for i, toks := range inputs {
		_, fspan := tracing.StartForward(ctx, tracing.WithPhase(tracing.PhasePrefill),
			tracing.WithBatchSize(1), tracing.WithSequenceLength(len(toks)))
		var v []float32
		v, err = j.model.Embed(ctx, toks, dims)
		endSpan(fspan, err)
		if err != nil {
			break
		}
		list.Data[i] = openai.Embedding{Object: "embedding", Index: i, Embedding: encodeVector(v, req.EncodingFormat)}
	}
	if err != nil {
		var cle *fakemodel.ContextLengthError
		if errors.As(err, &cle) && ctx.Err() == nil {
			e := invalid("input", "context_length_exceeded", "This model's maximum context length is %d tokens, but an input has %d tokens.", cle.ContextLength, cle.Prompt)
			s.reject(w, r, e)
			return
		}
		err = s.generationError(w, r, err)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		rec.End(err)
		s.logRequest(ctx, slog.LevelWarn, "embeddings failed", []slog.Attr{slog.String("model", j.model.Name())},
			slog.Int("prompt_tokens", total), slog.String("error", err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, list)
	rec.End(nil)
	s.logRequest(ctx, slog.LevelInfo, "embeddings", []slog.Attr{slog.String("model", j.model.Name()), slog.Int("status", http.StatusOK)},
		slog.Int("inputs", len(inputs)), slog.Int("prompt_tokens", total), slog.Int("dimensions", dims),
		slog.Float64("generation_seconds", time.Since(start).Seconds()))
}

// encodeVector is v as a JSON array, or with format "base64" as OpenAI sends
// it then: the float32 values, little endian, in standard base64.
func encodeVector(v []float32, format string) any {
	if format != "base64" {
		return v
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}
