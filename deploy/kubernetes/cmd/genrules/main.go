// Command genrules writes deploy/kubernetes/prometheusrule.yaml from the
// project's alert rule files (examples/stack/rules/*.yml and
// examples/stack/fleet/fleet-rules.yml), one PrometheusRule per file. Run it
// from deploy/kubernetes (go generate ./... does):
//
//	go run ./cmd/genrules [--root ../..] [--out prometheusrule.yaml] [--release kube-prometheus-stack] [--namespace monitoring]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/modeltel/modeltel/deploy/kubernetes/internal/genrules"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "genrules:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("root", "../..", "repository root")
	out := flag.String("out", "prometheusrule.yaml", "file to write; - for stdout")
	release := flag.String("release", "kube-prometheus-stack", "value of the release label (your kube-prometheus-stack Helm release); empty leaves the label out")
	namespace := flag.String("namespace", "monitoring", "namespace of the PrometheusRules")
	flag.Parse()

	cfg, err := genrules.DefaultConfig(*root)
	if err != nil {
		return err
	}
	cfg.Namespace = *namespace
	if *release == "" {
		delete(cfg.Labels, "release")
	} else {
		cfg.Labels["release"] = *release
	}
	data, err := genrules.Generate(cfg)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = os.Stdout.Write(data)
		return err
	}
	return os.WriteFile(*out, data, 0o644)
}
