// Package kubernetes holds modeltel's Kubernetes manifests (gpu-exporter.yaml,
// inference-server.yaml, prometheusrule.yaml) and the tests that check them
// against the upstream API types without a cluster. It is a module of its
// own, so the SDK's go.mod does not carry the Kubernetes API's dependencies.
//
// prometheusrule.yaml is generated from examples/stack/rules; regenerate it
// with go generate ./... in this directory.
package kubernetes

//go:generate go run ./cmd/genrules
