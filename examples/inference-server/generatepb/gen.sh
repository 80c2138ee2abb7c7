#!/usr/bin/env bash
# Regenerates generate.pb.go and generate_grpc.pb.go from generate.proto with
# protoc (Debian: apt-get install protobuf-compiler) and the protoc-gen-go and
# protoc-gen-go-grpc versions go.mod pins as tools. Run by `go generate` in
# this folder; OUT_DIR writes elsewhere (the regeneration test uses it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${OUT_DIR:-$root}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cd "$root"
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
protoc --proto_path=. \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  examples/inference-server/generatepb/generate.proto
