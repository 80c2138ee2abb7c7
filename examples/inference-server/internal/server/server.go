package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/modeltel/modeltel/examples/inference-server/internal/fakemodel"
	"github.com/modeltel/modeltel/examples/internal/openai"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/middleware"
	"github.com/modeltel/modeltel/tracing"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// Paths of the generation endpoints.
const (
	chatPath        = "/v1/chat/completions"
	completionsPath = "/v1/completions"
	embeddingsPath  = "/v1/embeddings"
)

// The gen_ai.operation.name of each endpoint, as the GenAI conventions name
// them: each has its own series in the inference metrics.
const (
	OperationChat           = "chat"            // POST /v1/chat/completions and gRPC Generate
	OperationTextCompletion = "text_completion" // POST /v1/completions
	OperationEmbeddings     = "embeddings"      // POST /v1/embeddings
)

// operations maps each generation path to its operation.
var operations = map[string]string{
	chatPath:        OperationChat,
	completionsPath: OperationTextCompletion,
	embeddingsPath:  OperationEmbeddings,
}

// Config is what New needs. Only Models is required.
type Config struct {
	// Models are the served models, loaded by Server.Load.
	Models []*fakemodel.Model
	// MaxTokens caps a request's max_tokens (default 1024); a request that
	// asks for more gets a 400. A request that sets none generates until the
	// model stops, at most MaxTokens.
	MaxTokens int
	// Inference records gRPC requests when no interceptor started a recorder;
	// nil records nothing there.
	Inference *inference.Metrics
	// Logger gets the model loads and, for a request no middleware logs
	// (middleware.WithLogger), one line per request; nil discards. A request
	// the middleware logs is one line, the middleware's, with the server's
	// detail added (the error of a failed request, the tokens of a
	// completion): see middleware.AddLogAttrs.
	Logger *slog.Logger
	// TracerProvider is used for spans started outside a request (model.load)
	// and for gRPC requests without a span; nil uses the global provider.
	TracerProvider trace.TracerProvider
	// EmbeddingDimensions is the length of an embedding vector when the
	// request asks for none (default 256).
	EmbeddingDimensions int
}

// Server serves the API. It is safe for concurrent use.
type Server struct {
	cfg    Config
	models map[string]*fakemodel.Model
	ready  atomic.Bool
	// draining is set by Drain when the server shuts down.
	draining atomic.Bool
	log      *slog.Logger
	// health is the gRPC health status, kept with ready and draining.
	health *health.Server
}

// New returns a server whose models are not loaded yet: call Load.
func New(cfg Config) *Server {
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 1024
	}
	if cfg.EmbeddingDimensions <= 0 {
		cfg.EmbeddingDimensions = 256
	}
	s := &Server{cfg: cfg, models: byName(cfg.Models), log: cfg.Logger, health: newHealth()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

func byName(models []*fakemodel.Model) map[string]*fakemodel.Model {
	served := make(map[string]*fakemodel.Model, len(models))
	for _, m := range models {
		served[m.Name()] = m
	}
	return served
}

// modelLabel is the name the telemetry gives model: itself when served,
// "other" for any other model (model names are user input: they must not
// grow span names or label values without bound), "" for none.
func modelLabel(served map[string]*fakemodel.Model, model string) string {
	switch _, ok := served[model]; {
	case ok, model == "":
		return model
	}
	return "other"
}

// ModelFunc returns the function to give middleware.WithModel: the "model"
// field of the JSON body of a POST to a generation endpoint
// (/v1/chat/completions, /v1/completions, /v1/embeddings; any other request
// is no inference request: ""), as middleware.ModelFromJSONBody reads it (at
// most MaxBodyBytes; the body is restored for the handler), when it is one of
// models; "other" for any other model (model names are user input: they must
// not grow span names or label values without bound); and "" when the body
// has no model.
func ModelFunc(models []*fakemodel.Model) func(*http.Request) string {
	served := byName(models)
	fromBody := middleware.ModelFromJSONBody(MaxBodyBytes)
	return func(r *http.Request) string {
		if r.Method != http.MethodPost || operationOf(r.URL) == "" {
			return ""
		}
		return modelLabel(served, fromBody(r))
	}
}

// OperationFunc returns the function to give middleware.WithOperation: the
// operation of the generation endpoint a request goes to (OperationChat,
// OperationTextCompletion, OperationEmbeddings), "" (the middleware's
// default, chat) for any other.
func OperationFunc() func(*http.Request) string {
	return func(r *http.Request) string { return operationOf(r.URL) }
}

// Load loads every model, each under a model.load span, logs each load and
// marks the server ready when all are loaded. It returns the first error (ctx
// ending), leaving the server not ready.
func (s *Server) Load(ctx context.Context) error {
	for _, m := range s.cfg.Models {
		start := time.Now()
		lctx, span := tracing.StartModelLoad(ctx, m.Name(), s.spanOpts()...)
		err := m.Load(lctx)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		if err != nil {
			s.log.ErrorContext(lctx, "model load failed", "model", m.Name(), "error", err)
			return fmt.Errorf("server: %w", err)
		}
		s.log.InfoContext(lctx, "model loaded", "model", m.Name(), "duration_seconds", time.Since(start).Seconds())
	}
	s.ready.Store(true)
	s.setHealth(healthpb.HealthCheckResponse_SERVING)
	return nil
}

func (s *Server) spanOpts() []tracing.SpanOption {
	if s.cfg.TracerProvider == nil {
		return nil
	}
	return []tracing.SpanOption{tracing.WithTracerProvider(s.cfg.TracerProvider)}
}

// Ready reports whether every model has loaded and the server is not
// draining.
func (s *Server) Ready() bool { return s.ready.Load() && !s.draining.Load() }

// Drain marks the server as shutting down: /readyz answers 503 from then on,
// so a load balancer stops sending new requests while those in flight finish.
// Requests that still arrive are served.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.health.Shutdown() // NOT_SERVING from now on, whatever Load does later
}

// Handler returns the HTTP API: POST /v1/chat/completions, POST
// /v1/completions, POST /v1/embeddings, GET /v1/models, GET
// /v1/models/{model}, GET /healthz and GET /readyz. /metrics is the caller's
// to add (outside the middleware, so that scrapes are neither logged nor
// counted as requests).
//
// Every other request gets an error in OpenAI's shape, worded as
// api.openai.com words it: a path the API does not serve a 404 ("Invalid URL
// (POST /v1/foo)"), a method a served path does not allow a 405 with Allow
// ("Not allowed to GET on /v1/chat/completions. ..."). The mux names their
// patterns, so the middleware's http_route stays bounded: a 405 is recorded
// under the path it was sent to, every 404 under the catch-all NotFoundRoute.
func (s *Server) Handler() http.Handler {
	routes := []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{http.MethodPost, chatPath, s.chat},
		{http.MethodPost, completionsPath, s.completions},
		{http.MethodPost, embeddingsPath, s.embeddings},
		{http.MethodGet, "/v1/models", s.listModels},
		{http.MethodGet, "/v1/models/{model}", s.getModel},
		{http.MethodGet, "/healthz", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok\n")
		}},
		{http.MethodGet, "/readyz", func(w http.ResponseWriter, _ *http.Request) {
			switch {
			case s.draining.Load():
				http.Error(w, "shutting down", http.StatusServiceUnavailable)
				return
			case !s.ready.Load():
				http.Error(w, "loading models", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ready\n")
		}},
	}
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, rt.h)
		if allowed[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead) // as the mux serves it
		}
	}
	// A pattern without a method is less specific than one with, so these
	// see only the methods the path does not serve.
	for _, p := range paths {
		methods := allowed[p]
		slices.Sort(methods)
		allow := strings.Join(slices.Compact(methods), ", ")
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.reject(w, r, &apiError{status: http.StatusMethodNotAllowed, typ: "invalid_request_error",
				msg: fmt.Sprintf("Not allowed to %s on %s. (HINT: Perhaps you meant to use a different HTTP method?)", r.Method, r.URL.Path)})
		})
	}
	mux.HandleFunc(NotFoundRoute, func(w http.ResponseWriter, r *http.Request) {
		s.reject(w, r, &apiError{status: http.StatusNotFound, typ: "invalid_request_error",
			msg: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)})
	})
	return mux
}

// operationOf returns the operation of the generation endpoint the mux routes
// u to, "" for none: its path is one of the endpoints', and no slash in it
// was escaped (%2F), which the mux does not take for a separator.
func operationOf(u *url.URL) string {
	op, ok := operations[u.Path]
	if !ok {
		return ""
	}
	raw := u.EscapedPath()
	if strings.Contains(raw, "%2F") || strings.Contains(raw, "%2f") {
		return ""
	}
	return op
}

// NotFoundRoute is the catch-all pattern of Handler that answers the paths
// the API does not serve: the http_route of every 404.
const NotFoundRoute = "/{path...}"

func (s *Server) listModels(w http.ResponseWriter, _ *http.Request) {
	list := openai.ModelList{Object: "list", Data: make([]openai.Model, 0, len(s.cfg.Models))}
	for _, m := range s.cfg.Models {
		list.Data = append(list.Data, describe(m))
	}
	writeJSON(w, http.StatusOK, list)
}

func describe(m *fakemodel.Model) openai.Model {
	return openai.Model{ID: m.Name(), Object: "model", Created: created, OwnedBy: "modeltel"}
}

// getModel answers GET /v1/models/{model} as OpenAI does: the model, or a
// 404 model_not_found.
func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	m, ok := s.models[name]
	if !ok {
		e := invalid("model", "model_not_found", "The model `%s` does not exist or you do not have access to it.", name)
		e.status = http.StatusNotFound
		s.reject(w, r, e)
		return
	}
	writeJSON(w, http.StatusOK, describe(m))
}

// created is the "created" time of every model: fixed, so answers are stable.
var created = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// apiError is an error answer; it is also the error given to the recorder,
// whose error_type label is its ErrorType.
type apiError struct {
	status      int
	typ, msg    string
	param, code string
}

func (e *apiError) Error() string { return e.msg }

// ErrorType returns the error_type label: the code, or the type without one.
func (e *apiError) ErrorType() string {
	if e.code != "" {
		return e.code
	}
	return e.typ
}

func invalid(param, code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, code: code, msg: fmt.Sprintf(format, args...)}
}

// reject answers a request refused before generation with e, and logs it.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, e *apiError) {
	s.writeError(w, r, e)
	s.logRequest(r.Context(), slog.LevelWarn, "request rejected", []slog.Attr{slog.Int("status", e.status)},
		slog.String("error_type", e.ErrorType()), slog.String("error", e.msg))
}

// logRequest puts attrs on the line the middleware logs for the request, so
// that a request is one log line; where no middleware logs it, it logs msg at
// level with own and attrs itself. own are attributes the middleware's line
// has already (status, model).
func (s *Server) logRequest(ctx context.Context, level slog.Level, msg string, own []slog.Attr, attrs ...slog.Attr) {
	if middleware.AddLogAttrs(ctx, attrs...) {
		return
	}
	s.log.LogAttrs(ctx, level, msg, append(own, attrs...)...)
}

// writeError ends the request's recorder with e and answers it in OpenAI's
// error shape.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	inference.FromContext(r.Context()).End(e)
	body := openai.ErrorResponse{Error: openai.Error{Message: e.msg, Type: e.typ}}
	if e.param != "" {
		body.Error.Param = &e.param
	}
	if e.code != "" {
		body.Error.Code = &e.code
	}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// job is a validated request.
type job struct {
	model     *fakemodel.Model
	prompt    []string
	maxTokens int
	explicit  bool // maxTokens was asked for, not the default
}

// validate checks a decoded request against the served models and limits;
// inputs counts the request's inputs (messages, prompts), inputParam names
// their field; maxTokens is the completion limit asked for (nil: none), param
// names the field it came from.
func (s *Server) validate(model string, inputParam string, inputs int, maxTokens *int, param string) (job, *apiError) {
	if model == "" {
		return job{}, invalid("model", "missing_required_parameter", "Missing required parameter: 'model'.")
	}
	m, ok := s.models[model]
	if !ok {
		e := invalid("model", "model_not_found", "The model `%s` does not exist or you do not have access to it.", model)
		e.status = http.StatusNotFound
		return job{}, e
	}
	if inputs == 0 {
		return job{}, invalid(inputParam, "missing_required_parameter", "Missing required parameter: '%s'.", inputParam)
	}
	if !m.Loaded() {
		return job{}, &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "model_not_ready",
			msg: fmt.Sprintf("The model `%s` is still loading; retry shortly.", model)}
	}
	max := s.cfg.MaxTokens
	if maxTokens != nil {
		if *maxTokens < 1 || *maxTokens > s.cfg.MaxTokens {
			return job{}, invalid(param, "invalid_value",
				"Invalid '%s': %d; this server allows 1 to %d.", param, *maxTokens, s.cfg.MaxTokens)
		}
		max = *maxTokens
	}
	return job{model: m, maxTokens: max, explicit: maxTokens != nil}, nil
}

// tokenize tokenizes the messages under a tokenize span and checks the
// context window: an explicit max_tokens that does not fit is an error, the
// default is lowered to fit.
func tokenize(ctx context.Context, j *job, inputParam string, messages []string) *apiError {
	_, span := tracing.StartTokenize(ctx)
	for _, c := range messages {
		j.prompt = append(j.prompt, fakemodel.Tokenize(c)...)
	}
	span.SetAttributes(tracing.SequenceLengthKey.Int(len(j.prompt)))
	span.End()
	if room := j.model.ContextLength() - len(j.prompt); j.maxTokens > room {
		if room < 1 || j.explicit {
			return invalid(inputParam, "context_length_exceeded",
				"This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the %s, %d in the completion).",
				j.model.ContextLength(), len(j.prompt)+j.maxTokens, len(j.prompt), inputParam, j.maxTokens)
		}
		j.maxTokens = room
	}
	return nil
}

// sequence runs the prefill forward pass under its span.
func prefill(ctx context.Context, j job) (*fakemodel.Sequence, error) {
	_, span := tracing.StartForward(ctx, tracing.WithPhase(tracing.PhasePrefill),
		tracing.WithBatchSize(1), tracing.WithSequenceLength(len(j.prompt)))
	seq, err := j.model.Prefill(ctx, j.prompt, j.maxTokens)
	endSpan(span, err)
	return seq, err
}

// decode runs one decode forward pass under its span; io.EOF ends the
// sequence (the span is still recorded: the pass that found the end).
func decode(ctx context.Context, seq *fakemodel.Sequence, promptLen int) (string, error) {
	_, span := tracing.StartForward(ctx, tracing.WithPhase(tracing.PhaseDecode),
		tracing.WithBatchSize(1), tracing.WithSequenceLength(promptLen+seq.Generated()+1))
	tok, err := seq.Next(ctx)
	if errors.Is(err, io.EOF) {
		span.End()
		return "", err
	}
	endSpan(span, err)
	return tok, err
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func newID(prefix string) string { return prefix + rand.Text() }

// decodeBody decodes the JSON body of r into v (at most MaxBodyBytes) and
// answers the error when it cannot.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			e := invalid("", "request_too_large", "The request body exceeds %d bytes.", MaxBodyBytes)
			e.status = http.StatusRequestEntityTooLarge
			s.reject(w, r, e)
			return false
		}
		s.reject(w, r, invalid("", "invalid_json",
			"We could not parse the JSON body of your request: %v.", err))
		return false
	}
	return true
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req openai.ChatRequest
	if !s.decodeBody(w, r, &req) {
		return
	}
	limit, param := req.MaxTokens, "max_tokens"
	if req.MaxCompletionTokens != nil {
		limit, param = req.MaxCompletionTokens, "max_completion_tokens"
	}
	j, aerr := s.validate(req.Model, "messages", len(req.Messages), limit, param)
	if aerr != nil {
		s.reject(w, r, aerr)
		return
	}
	contents := make([]string, len(req.Messages))
	for i, m := range req.Messages {
		contents[i] = m.Content
	}
	if aerr := tokenize(r.Context(), &j, "messages", contents); aerr != nil {
		s.reject(w, r, aerr)
		return
	}
	s.generate(w, r, j, chatShape{id: newID("chatcmpl-"), model: j.model.Name()},
		req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, "chat completion")
}

// completions serves the legacy text completions endpoint, POST
// /v1/completions, operation text_completion.
func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req openai.CompletionRequest
	if !s.decodeBody(w, r, &req) {
		return
	}
	j, aerr := s.validate(req.Model, "prompt", len(req.Prompt), req.MaxTokens, "max_tokens")
	if aerr != nil {
		s.reject(w, r, aerr)
		return
	}
	if aerr := tokenize(r.Context(), &j, "prompt", req.Prompt); aerr != nil {
		s.reject(w, r, aerr)
		return
	}
	s.generate(w, r, j, completionShape{id: newID("cmpl-"), model: j.model.Name()},
		req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, "completion")
}

// shape is how one endpoint puts a generation on the wire: the events of a
// stream, or the one document of a plain answer.
type shape interface {
	// start is the stream's first event, nil for none.
	start() any
	// token is the event of one piece of text.
	token(text string) any
	// finish is the event with the finish reason.
	finish(reason string) any
	// usage is the usage event (stream_options.include_usage).
	usage(u openai.Usage) any
	// whole is the plain answer.
	whole(text, finish string, u openai.Usage) any
}

type chatShape struct{ id, model string }

func (c chatShape) chunk(ch ...openai.ChunkChoice) openai.ChatCompletionChunk {
	return openai.ChatCompletionChunk{ID: c.id, Object: "chat.completion.chunk", Created: time.Now().Unix(), Model: c.model, Choices: ch}
}
func (c chatShape) start() any {
	return c.chunk(openai.ChunkChoice{Delta: openai.Delta{Role: "assistant"}})
}
func (c chatShape) token(t string) any {
	return c.chunk(openai.ChunkChoice{Delta: openai.Delta{Content: t}})
}
func (c chatShape) finish(reason string) any {
	return c.chunk(openai.ChunkChoice{FinishReason: &reason})
}
func (c chatShape) usage(u openai.Usage) any {
	ch := c.chunk()
	ch.Choices, ch.Usage = []openai.ChunkChoice{}, &u
	return ch
}
func (c chatShape) whole(text, finish string, u openai.Usage) any {
	return openai.ChatCompletion{ID: c.id, Object: "chat.completion", Created: time.Now().Unix(), Model: c.model,
		Choices: []openai.Choice{{Message: openai.Message{Role: "assistant", Content: text}, FinishReason: finish}},
		Usage:   &u}
}

type completionShape struct{ id, model string }

func (c completionShape) completion(ch ...openai.CompletionChoice) openai.Completion {
	return openai.Completion{ID: c.id, Object: "text_completion", Created: time.Now().Unix(), Model: c.model, Choices: ch}
}
func (c completionShape) start() any         { return nil }
func (c completionShape) token(t string) any { return c.completion(openai.CompletionChoice{Text: t}) }
func (c completionShape) finish(reason string) any {
	return c.completion(openai.CompletionChoice{FinishReason: &reason})
}
func (c completionShape) usage(u openai.Usage) any {
	cc := c.completion()
	cc.Choices, cc.Usage = []openai.CompletionChoice{}, &u
	return cc
}
func (c completionShape) whole(text, finish string, u openai.Usage) any {
	cc := c.completion(openai.CompletionChoice{Text: text, FinishReason: &finish})
	cc.Usage = &u
	return cc
}

// generate runs a validated, tokenized job, answers it in sh's shape
// (streamed or not), ends the request's recorder and logs the request (msg,
// and msg+" failed").
func (s *Server) generate(w http.ResponseWriter, r *http.Request, j job, sh shape, stream, includeUsage bool, msg string) {
	ctx := r.Context()
	rec := inference.FromContext(ctx)
	rec.InputTokens(len(j.prompt))
	start := time.Now()
	var (
		out    int
		finish string
		err    error
	)
	if stream {
		out, finish, err = s.stream(w, r, j, sh, includeUsage)
	} else {
		out, finish, err = s.complete(w, r, j, sh)
	}
	if err != nil && ctx.Err() != nil {
		// The client went away (net/http cancels the context when a write
		// to it fails): "canceled", as the middleware's 499 says.
		err = ctx.Err()
	}
	// Ended right after the last event or the JSON body, so a client that
	// closes once it has the whole answer is not counted as gone.
	rec.End(err)
	own := []slog.Attr{slog.String("model", j.model.Name())}
	attrs := []slog.Attr{slog.Bool("stream", stream), slog.Int("prompt_tokens", len(j.prompt)),
		slog.Int("completion_tokens", out), slog.String("finish_reason", finish),
		slog.Float64("generation_seconds", time.Since(start).Seconds())}
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) { // answered by generationError
			own = append(own, slog.Int("status", ae.status))
			attrs = append(attrs, slog.String("error_type", ae.ErrorType()))
		}
		s.logRequest(ctx, slog.LevelWarn, msg+" failed", own, append(attrs, slog.String("error", err.Error()))...)
		return
	}
	s.logRequest(ctx, slog.LevelInfo, msg, append(own, slog.Int("status", http.StatusOK)), attrs...)
}

// complete answers with one JSON document.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, j job, sh shape) (int, string, error) {
	ctx := r.Context()
	rec := inference.FromContext(ctx)
	seq, err := prefill(ctx, j)
	if err != nil {
		return 0, "", s.generationError(w, r, err)
	}
	var text strings.Builder
	for {
		tok, err := decode(ctx, seq, len(j.prompt))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return seq.Generated(), "", s.generationError(w, r, err)
		}
		rec.OutputTokens(1)
		text.WriteString(tok)
	}
	n := seq.Generated()
	writeJSON(w, http.StatusOK, sh.whole(strings.TrimPrefix(text.String(), " "), seq.FinishReason(),
		openai.Usage{PromptTokens: len(j.prompt), CompletionTokens: n, TotalTokens: len(j.prompt) + n}))
	return n, seq.FinishReason(), nil
}

// stream answers with server-sent events, one per token, flushed, then the
// finish reason, the usage when includeUsage (stream_options.include_usage)
// and [DONE].
func (s *Server) stream(w http.ResponseWriter, r *http.Request, j job, sh shape, includeUsage bool) (int, string, error) {
	ctx := r.Context()
	rec := inference.FromContext(ctx)
	seq, err := prefill(ctx, j)
	if err != nil {
		return 0, "", s.generationError(w, r, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(ev any) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if ev := sh.start(); ev != nil {
		if err := send(ev); err != nil {
			return 0, "", err
		}
	}
	for i := 0; ; i++ {
		tok, err := decode(ctx, seq, len(j.prompt))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return seq.Generated(), "", err
		}
		rec.OutputTokens(1)
		if i == 0 {
			tok = strings.TrimPrefix(tok, " ")
		}
		if err := send(sh.token(tok)); err != nil {
			return seq.Generated(), "", err // the client went away
		}
	}
	finish := seq.FinishReason()
	if err := send(sh.finish(finish)); err != nil {
		return seq.Generated(), finish, err
	}
	n := seq.Generated()
	if includeUsage {
		if err := send(sh.usage(openai.Usage{PromptTokens: len(j.prompt), CompletionTokens: n, TotalTokens: len(j.prompt) + n})); err != nil {
			return n, finish, err
		}
	}
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
		return n, finish, err
	}
	return n, finish, rc.Flush()
}

// generationError answers an error met before the answer started, and returns
// the error for the recorder. A request whose context ended (the client went
// away) gets no answer: there is no one to read it.
func (s *Server) generationError(w http.ResponseWriter, r *http.Request, err error) error {
	if r.Context().Err() != nil {
		return err
	}
	var cle *fakemodel.ContextLengthError
	if errors.As(err, &cle) {
		e := invalid("messages", "context_length_exceeded", "%s", strings.TrimPrefix(cle.Error(), "fakemodel: "))
		s.writeError(w, r, e)
		return e
	}
	e := &apiError{status: http.StatusInternalServerError, typ: "server_error", msg: err.Error()}
	s.writeError(w, r, e)
	return e
}
