package generate

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// Names of the service, for interceptors and clients that build paths.
const (
	ServiceName = "modeltel.examples.v1.Generator"
	// GenerateMethod is the full method name gRPC reports for Generate.
	GenerateMethod = "/" + ServiceName + "/Generate"
	// CodecName is the content subtype the messages use.
	CodecName = "json"
)

func init() {
	// Registering a codec is this package's documented job: without it a gRPC
	// server cannot decode "application/grpc+json" requests.
	encoding.RegisterCodec(Codec{})
}

// Request asks for one completion of Prompt.
type Request struct {
	Model     string `json:"model"`
	Prompt    string `json:"prompt"`
	MaxTokens int    `json:"max_tokens,omitempty"`
}

// Response is one streamed message: a token, or (the last one) the finish
// reason and usage with an empty token.
type Response struct {
	Token        string `json:"token,omitempty"`
	Index        int    `json:"index"`
	FinishReason string `json:"finish_reason,omitempty"`
	Usage        *Usage `json:"usage,omitempty"`
}

// Usage counts the tokens of one request.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Server is what a Generate implementation provides.
type Server interface {
	Generate(req *Request, stream grpc.ServerStreamingServer[Response]) error
}

// ServiceDesc describes the service to grpc.Server.RegisterService; prefer
// Register.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*Server)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Generate",
		Handler:       generateHandler,
		ServerStreams: true,
	}},
	Metadata: "hand-written (no .proto)",
}

// Register adds srv to s.
func Register(s grpc.ServiceRegistrar, srv Server) {
	s.RegisterService(&ServiceDesc, srv)
}

func generateHandler(srv any, stream grpc.ServerStream) error {
	req := new(Request)
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	return srv.(Server).Generate(req, &grpc.GenericServerStream[Request, Response]{ServerStream: stream})
}

// Client calls the Generate service. It is safe for concurrent use.
type Client struct {
	cc grpc.ClientConnInterface
}

// NewClient returns a client over cc.
func NewClient(cc grpc.ClientConnInterface) *Client { return &Client{cc: cc} }

// Generate starts one server-streaming call; read it with Recv until io.EOF.
func (c *Client) Generate(ctx context.Context, req *Request, opts ...grpc.CallOption) (grpc.ServerStreamingClient[Response], error) {
	opts = append([]grpc.CallOption{grpc.CallContentSubtype(CodecName)}, opts...)
	stream, err := c.cc.NewStream(ctx, &ServiceDesc.Streams[0], GenerateMethod, opts...)
	if err != nil {
		return nil, err
	}
	x := &grpc.GenericClientStream[Request, Response]{ClientStream: stream}
	if err := x.ClientStream.SendMsg(req); err != nil {
		return nil, err
	}
	if err := x.ClientStream.CloseSend(); err != nil {
		return nil, err
	}
	return x, nil
}

// Codec is the JSON gRPC codec, registered as "json". Its zero value is ready
// and it is safe for concurrent use.
type Codec struct{}

// Marshal encodes v as JSON.
func (Codec) Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("generate: json codec: %w", err)
	}
	return b, nil
}

// Unmarshal decodes JSON data into v.
func (Codec) Unmarshal(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("generate: json codec: %w", err)
	}
	return nil
}

// Name returns "json".
func (Codec) Name() string { return CodecName }
