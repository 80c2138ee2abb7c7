// Package generatepb is the inference-server example's gRPC API, generated
// from generate.proto by protoc-gen-go and protoc-gen-go-grpc: the
// server-streaming modeltel.examples.v1.Generator/Generate call, its messages,
// [NewGeneratorClient] and [RegisterGeneratorServer]. It is an ordinary public
// package, so a client outside this repository imports it as it is; a client
// in another language generates its own code from generate.proto, or reads the
// service from the server's reflection.
//
// # Calling it
//
//	conn, err := grpc.NewClient("127.0.0.1:8081",
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//	if err != nil {
//		return err
//	}
//	defer conn.Close()
//	stream, err := generatepb.NewGeneratorClient(conn).Generate(ctx, &generatepb.GenerateRequest{
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
//		fmt.Print(resp.GetToken())
//	}
//
// # Regenerating
//
// After a change to generate.proto, run go generate in this folder (it needs
// protoc, Debian's protobuf-compiler; the two plugins are built at the
// versions go.mod pins as tools). A test checks that the committed code is
// what the generator makes.
package generatepb

//go:generate bash gen.sh
