package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/modeltel/modeltel/examples/inference-server/generatepb"
	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/tracing"
)

// GenerateMethod is the full gRPC method name of Generate, as interceptors and
// the grpc_server_* metrics see it.
var GenerateMethod = generatepb.Generator_Generate_FullMethodName

// GRPCServiceName is the gRPC service of Generate, the service name its
// health status is kept under.
var GRPCServiceName = generatepb.Generator_ServiceDesc.ServiceName

// grpcCodes maps the HTTP status of an apiError to a gRPC code.
var grpcCodes = map[int]codes.Code{
	http.StatusBadRequest:         codes.InvalidArgument,
	http.StatusNotFound:           codes.NotFound,
	http.StatusServiceUnavailable: codes.Unavailable,
}

// RegisterGRPC adds to gs the Generate service, the standard gRPC health
// service (grpc.health.v1.Health: NOT_SERVING until every model loaded and
// again once the server drains, SERVING in between, for the server as a whole
// ("") and for GRPCServiceName) and server reflection (so grpcurl and other
// tools list and call the service with no .proto at hand).
func (s *Server) RegisterGRPC(gs *grpc.Server) {
	generatepb.RegisterGeneratorServer(gs, generator{s: s})
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
}

// setHealth sets the gRPC health status of the server and of Generate.
func (s *Server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(GRPCServiceName, st)
}

func newHealth() *health.Server {
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	h.SetServingStatus(GRPCServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	return h
}

// generator is the Server as a generatepb.GeneratorServer.
type generator struct {
	generatepb.UnimplementedGeneratorServer
	s *Server
}

func (g generator) Generate(req *generatepb.GenerateRequest, stream grpc.ServerStreamingServer[generatepb.GenerateResponse]) error {
	return g.s.Generate(req, stream)
}

// Generate implements the gRPC Generate service: one message per token (the
// first without its leading space, as over HTTP), then one with the finish
// reason and usage. It records the request on the recorder in the context
// when an interceptor started one, else on its own (Config.Inference) under a
// GenAI request span; and it adds its detail (tokens, finish reason) to the
// interceptor's log line, or logs one line itself where no interceptor logs.
func (s *Server) Generate(req *generatepb.GenerateRequest, stream grpc.ServerStreamingServer[generatepb.GenerateResponse]) (err error) {
	ctx := stream.Context()
	rec := inference.FromContext(ctx)
	if rec == nil {
		var span trace.Span
		opts := []tracing.SpanOption{}
		if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
			opts = s.spanOpts()
		}
		model := modelLabel(s.models, req.GetModel())
		ctx, span = tracing.StartRequest(ctx, OperationChat, model, opts...)
		defer span.End()
		ctx, rec = s.cfg.Inference.Start(ctx, inference.Request{Model: model, Operation: OperationChat})
	}
	start := time.Now()
	var (
		promptTokens, n int
		finish          string
	)
	defer func() {
		rec.End(err)
		attrs := []slog.Attr{slog.Int("prompt_tokens", promptTokens), slog.Int("completion_tokens", n),
			slog.String("finish_reason", finish), slog.Float64("generation_seconds", time.Since(start).Seconds())}
		own := []slog.Attr{slog.String("method", GenerateMethod), slog.String("model", req.GetModel()),
			slog.String("code", status.Code(err).String())}
		if err != nil {
			var ae *grpcAPIError
			if errors.As(err, &ae) {
				attrs = append(attrs, slog.String("error_type", ae.ErrorType()))
			}
			s.logRequest(ctx, slog.LevelWarn, "generate failed", append(own, slog.String("error", err.Error())), attrs...)
			return
		}
		s.logRequest(ctx, slog.LevelInfo, "generate", own, attrs...)
	}()

	var maxTokens *int
	if req.GetMaxTokens() != 0 {
		m := int(req.GetMaxTokens())
		maxTokens = &m
	}
	j, aerr := s.validate(req.GetModel(), "prompt", 1, maxTokens, "max_tokens") // one prompt, maybe empty
	if aerr != nil {
		return grpcError(aerr)
	}
	if aerr := tokenize(ctx, &j, "prompt", []string{req.GetPrompt()}); aerr != nil {
		return grpcError(aerr)
	}
	promptTokens = len(j.prompt)
	rec.InputTokens(promptTokens)
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
			n = seq.Generated()
			return status.FromContextError(err).Err()
		}
		rec.OutputTokens(1)
		n = seq.Generated()
		if n == 1 {
			tok = strings.TrimPrefix(tok, " ")
		}
		if err := stream.Send(&generatepb.GenerateResponse{Token: tok, Index: int32(n - 1)}); err != nil {
			return err
		}
	}
	n, finish = seq.Generated(), seq.FinishReason()
	return stream.Send(&generatepb.GenerateResponse{Index: int32(n), FinishReason: finish,
		Usage: &generatepb.Usage{PromptTokens: int32(promptTokens), CompletionTokens: int32(n)}})
}

// GRPCModelFunc returns the function to give middleware.WithGRPCModel: the
// model of a Generate request by the rule of ModelFunc (a served model by
// name, any other as "other", "" for none), and "" for any other message.
func GRPCModelFunc(models []*fakemodel.Model) func(context.Context, string, any) string {
	served := byName(models)
	return func(_ context.Context, _ string, req any) string {
		r, ok := req.(*generatepb.GenerateRequest)
		if !ok {
			return ""
		}
		return modelLabel(served, r.GetModel())
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
