// Package server is the inference-server example's API over the fake model:
// OpenAI-style chat completions and text completions (plain JSON and
// server-sent events), embeddings, the model list and one model, health and
// readiness, and the gRPC Generate service (package generatepb) with the
// standard health service and server reflection, each instrumented with
// modeltel.
//
// # Instrumentation
//
// The HTTP handler expects to run behind the modeltel middleware configured
// with an inference recorder, [ModelFunc] and [OperationFunc]: the middleware
// starts the GenAI request span ("chat fake-llama-3-8b", "text_completion
// ...", "embeddings ...") and the recorder, and this package adds what only
// the handler knows: input and output tokens (embeddings have none out), the
// phase spans (tokenize, one forward pass with phase prefill, then one with
// phase decode per token) as children of the request span, an error type on
// the recorder for each error answer, and its detail on the request's one log
// line. The gRPC service starts its own recorder and request span when no
// interceptor did.
//
// # Wiring
//
//	models := []*fakemodel.Model{fakemodel.New("fake-llama-3-8b", fakemodel.Config{TokensPerSecond: 50})}
//	tel, err := modeltel.Start(ctx,
//		modeltel.WithServiceName("inference-server"),
//		modeltel.WithMiddlewareOptions(
//			middleware.WithModel(server.ModelFunc(models)),
//			middleware.WithOperation(server.OperationFunc()),
//			middleware.WithGRPCModel(server.GRPCModelFunc(models)),
//		),
//	)
//	if err != nil {
//		return err
//	}
//	srv := server.New(server.Config{Models: models, Inference: tel.Inference(), Logger: tel.Logger()})
//	go srv.Load(ctx)
//	gs := grpc.NewServer(grpc.ChainStreamInterceptor(tel.Middleware().StreamServerInterceptor()))
//	srv.RegisterGRPC(gs) // Generate, grpc.health.v1, reflection
//	mux := http.NewServeMux()
//	mux.Handle("GET /metrics", tel.MetricsHandler())
//	mux.Handle("/", tel.Middleware().Handler(srv.Handler()))
//	return http.ListenAndServe("127.0.0.1:8080", mux)
package server
