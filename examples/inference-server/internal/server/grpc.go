package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/examples/internal/generate"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/tracing"
)

var _ generate.Server = (*Server)(nil)

// grpcCodes maps the HTTP status of an apiError to a gRPC code.
var grpcCodes = map[int]codes.Code{
	http.StatusBadRequest:         codes.InvalidArgument,
	http.StatusNotFound:           codes.NotFound,
	http.StatusServiceUnavailable: codes.Unavailable,
}

// Generate implements the gRPC Generate service: one message per token, then
// one with the finish reason and usage. It records the request on the
// recorder in the context when an interceptor started one, else on its own
// (Config.Inference) under a GenAI request span.
func (s *Server) Generate(req *generate.Request, stream grpc.ServerStreamingServer[generate.Response]) (err error) {
	ctx := stream.Context()
	rec := inference.FromContext(ctx)
	if rec == nil {
		var span trace.Span
		opts := []tracing.SpanOption{}
		if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
			opts = s.spanOpts()
		}
		model := modelLabel(s.models, req.Model)
		ctx, span = tracing.StartRequest(ctx, Operation, model, opts...)
		defer span.End()
		ctx, rec = s.cfg.Inference.Start(ctx, inference.Request{Model: model, Operation: Operation})
	}
	defer func() { rec.End(err) }()

	var maxTokens *int
	if req.MaxTokens != 0 {
		maxTokens = &req.MaxTokens
	}
	j, aerr := s.validate(req.Model, 1, maxTokens, "max_tokens") // one prompt, maybe empty
	if aerr != nil {
		return grpcError(aerr)
	}
	if aerr := tokenize(ctx, &j, []string{req.Prompt}); aerr != nil {
		return grpcError(aerr)
	}
	rec.InputTokens(len(j.prompt))
	start := time.Now()
	seq, err := prefill(ctx, j)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	for {
		tok, err := decode(ctx, seq, len(j.prompt))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return status.FromContextError(err).Err()
		}
		rec.OutputTokens(1)
		if err := stream.Send(&generate.Response{Token: tok, Index: seq.Generated() - 1}); err != nil {
			return err
		}
	}
	n := seq.Generated()
	s.log.InfoContext(ctx, "generate", "model", j.model.Name(), "prompt_tokens", len(j.prompt),
		"completion_tokens", n, "finish_reason", seq.FinishReason(), "duration_seconds", time.Since(start).Seconds())
	return stream.Send(&generate.Response{Index: n, FinishReason: seq.FinishReason(),
		Usage: &generate.Usage{PromptTokens: len(j.prompt), CompletionTokens: n}})
}

// GRPCModelFunc returns the function to give middleware.WithGRPCModel: the
// model of a Generate request by the rule of ModelFunc (a served model by
// name, any other as "other", "" for none), and "" for any other message.
func GRPCModelFunc(models []*fakemodel.Model) func(context.Context, string, any) string {
	served := byName(models)
	return func(_ context.Context, _ string, req any) string {
		r, ok := req.(*generate.Request)
		if !ok {
			return ""
		}
		return modelLabel(served, r.Model)
	}
}

func grpcError(e *apiError) error {
	c, ok := grpcCodes[e.status]
	if !ok {
		c = codes.Internal
	}
	return &grpcAPIError{apiError: e, st: status.New(c, e.msg)}
}

// grpcAPIError is a gRPC status that keeps the recorder's error type.
type grpcAPIError struct {
	*apiError
	st *status.Status
}

// GRPCStatus makes status.FromError and gRPC itself see the status.
func (e *grpcAPIError) GRPCStatus() *status.Status { return e.st }
