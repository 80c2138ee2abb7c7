// Package stack holds no Go API: it is the home of the local observability stack for the modeltel examples,
// and its tests check that stack's files.
//
// # What is here
//
//   - prometheus.yml: scrapes the inference server (127.0.0.1:8080), the training launcher (127.0.0.1:8082),
//     the gateway (127.0.0.1:8090) and the GPU exporter (127.0.0.1:9400) every second and loads the alert rules.
//   - rules/gateway.yml, rules/gpu.yml, rules/serving.yml, rules/training.yml, rules/telemetry.yml (the SDK's
//     own log and span delivery): alert rules, each with a promtool unit test file (rules/*_test.yml) holding a
//     firing and a non-firing case for every alert.
//   - rules/energy.yml: recording rules for joules per output token and GPU-seconds per request and per
//     million output tokens, per model and node; rules/slo.yml: SLO good ratios, burn rates and burn-rate
//     alerts, generated from slo.yml by `go generate` (internal/genslo). docs/slo.md explains both.
//   - jaeger.yaml (Jaeger v2: OTLP in, in-memory store), loopback only. The log backend, VictoriaLogs, needs no
//     config file: e2e.sh starts it with flags; it receives the Loki push API at /insert/loki/api/v1/push.
//   - dashboards/gateway.json, dashboards/gpu.json, dashboards/serving.json, dashboards/training.json: Grafana
//     dashboards whose data source is the variable ${datasource}, with no fixed uid, so they import into any
//     Grafana. The latency panels show exemplars (the trace_id of a sampled request).
//   - grafana/datasources.yaml: Grafana data source provisioning for Prometheus, Jaeger and VictoriaLogs that
//     links exemplar and log trace ids to Jaeger, and Jaeger's spans to their log lines.
//   - build.sh: builds Prometheus, promtool, Jaeger and VictoriaLogs from the Go module proxy at pinned versions into
//     a cache outside the repository.
//   - e2e.sh: starts the three servers on 127.0.0.1, runs the examples against them, drives load and checks
//     through each server's own query API that metrics, traces and logs arrived; then it sources the
//     fragments in e2e.d/ (one per feature) with the stack still running.
//
// # Tests
//
// The tests parse every dashboard, check its data source variable, and check that every metric named in a
// dashboard query or an alert rule is one the SDK exports. Where promtool is found (the one build.sh built,
// else one on PATH) they also run promtool check config, check rules and test rules, and check that every
// dashboard query is valid PromQL:
//
//	go test ./examples/stack/...
//	./examples/stack/build.sh    # Prometheus, promtool, Jaeger, VictoriaLogs into ~/.cache/modeltel-stack
//	./examples/stack/e2e.sh      # or: make e2e
package stack

//go:generate go run ./internal/genslo -config slo.yml -out rules/slo.yml
