// Package generate defines the inference-server example's gRPC Generate
// service by hand, without protoc: a [grpc.ServiceDesc], Go message types, and
// a JSON codec registered under the content subtype "json" (so the messages
// travel as JSON inside ordinary gRPC framing, content type
// "application/grpc+json").
//
// # Service
//
// modeltel.examples.v1.Generator/Generate is server streaming: one [Request]
// in, one [Response] per generated token out, and a last Response carrying
// the finish reason and the [Usage]. Errors are gRPC statuses: NotFound for an
// unknown model, InvalidArgument for a bad request, Unavailable while the
// model loads.
//
// # Calling it
//
// Any gRPC client can call it with content subtype "json"; from Go:
//
//	conn, err := grpc.NewClient("127.0.0.1:8081",
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//	if err != nil {
//		return err
//	}
//	defer conn.Close()
//	stream, err := generate.NewClient(conn).Generate(ctx, &generate.Request{
//		Model: "fake-llama-3-8b", Prompt: "Why is the sky blue?", MaxTokens: 32,
//	})
//	if err != nil {
//		return err
//	}
//	for {
//		resp, err := stream.Recv()
//		if errors.Is(err, io.EOF) {
//			break
//		}
//		if err != nil {
//			return err
//		}
//		fmt.Print(resp.Token)
//	}
package generate
