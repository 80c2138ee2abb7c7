#!/usr/bin/env bash
# End-to-end test against real Prometheus, Jaeger and VictoriaLogs on 127.0.0.1 (`make e2e` runs it).
# VictoriaLogs is the log backend: it receives Loki's push API, which is all the SDK speaks; the Loki server
# itself is AGPL-licensed and this project uses no AGPL code, not even as a test server.
#
#  1. builds or reuses the servers (build.sh; cached outside the repository),
#  2. starts Prometheus (:9090), Jaeger (OTLP gRPC :4317, query :16686, health :13133) and VictoriaLogs
#     (:9428, Loki push API at /insert/loki/api/v1/push) with the configs next to this script, data under
#     .e2e/ in the repository root,
#  3. smoke test of the stack alone: one OTLP trace into Jaeger, one log line pushed to VictoriaLogs with
#     Loki's JSON push format, Prometheus scraping itself with all alert rules loaded,
#  4. where the examples exist, builds and starts the inference server, the training launcher and the GPU
#     exporter against the stack, drives load with the load generator and checks through each server's own
#     query API that the metrics, the request trace (with its tokenize and forward children) and the
#     request's log lines (found by trace_id) arrived,
#  5. sources every examples/stack/e2e.d/*.sh fragment in name order, with this script's functions and the
#     running stack and examples in scope (each fragment starts what it needs with `start NAME ...`; on exit
#     everything started is stopped, examples first).
#
# Everything it starts is stopped by PID on every exit path (SIGTERM, up to 5 s, then SIGKILL). Every wait
# is bounded. On failure it prints the tail of every log and exits 1.
#
# Environment: MODELTEL_STACK_CACHE (build cache, see build.sh), E2E_REQUESTS (default 40),
# E2E_KEEP=1 (keep .e2e/data and logs after a pass; they are always kept after a failure).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
stack="$repo/examples/stack"
e2e="$repo/.e2e"
data="$e2e/data"
logs="$e2e/logs"
ebin="$e2e/bin"
requests="${E2E_REQUESTS:-40}"
model="fake-llama-3-8b"
t_start=$(date +%s)

export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}"

servers="prometheus jaeger victoria-logs"
# shellcheck source=lib.sh
source "$stack/lib.sh"
trap on_exit EXIT
trap 'printf "\ninterrupted\n" >&2; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------------------
step "tools"
need_tools curl jq
info "$(go version), $(jq --version), $(curl --version | head -n1 | cut -d' ' -f1-2)"

step "build or reuse Prometheus, promtool, Jaeger and VictoriaLogs (build.sh)"
t0=$(date +%s)
bin=$("$stack/build.sh" | tail -n1) || fail "build.sh failed"
for b in prometheus promtool jaeger victoria-logs; do
  [ -x "$bin/$b" ] || fail "build.sh did not produce $bin/$b"
done
ok "binaries in $bin ($(( $(date +%s) - t0 ))s)"

step "check the stack's own files with promtool"
"$bin/promtool" check config "$stack/prometheus.yml" >/dev/null || fail "promtool check config"
(cd "$stack" && "$bin/promtool" test rules rules/*_test.yml >/dev/null) || fail "promtool test rules"
ok "prometheus.yml, rules and rule unit tests"

step "prepare .e2e/"
for port in 9090 4317 4318 13133 16685 16686 9428 8080 8081 8082 9400; do
  if listening "$port"; then
    fail "127.0.0.1:$port is already in use (another stack or example still running?)"
  fi
done
rm -rf "$data" "$logs"
mkdir -p "$data/prometheus" "$data/victorialogs" "$logs" "$ebin"
ok "ports free, data in ${data#"$repo"/}, logs in ${logs#"$repo"/}"

step "start Prometheus, Jaeger and VictoriaLogs on 127.0.0.1"
# exemplar-storage: Prometheus keeps the trace ids the SDK's histograms carry (e2e.d/50-exemplars.sh).
start prometheus "$bin/prometheus" --config.file="$stack/prometheus.yml" --storage.tsdb.path="$data/prometheus" \
  --web.listen-address=127.0.0.1:9090 --log.level=warn --enable-feature=exemplar-storage
start jaeger "$bin/jaeger" --config="$stack/jaeger.yaml"
start victoria-logs "$bin/victoria-logs" -httpListenAddr=127.0.0.1:9428 -storageDataPath="$data/victorialogs" \
  -loggerLevel=WARN
wait_http prometheus http://127.0.0.1:9090/-/ready 60
wait_http jaeger http://127.0.0.1:13133/status 60
wait_http victoria-logs $vlogs/health 60

step "smoke test of the stack alone"
poll 20 "Prometheus scrapes itself (up{job=\"prometheus\"} == 1)" prom_at_least 'up{job="prometheus"}' 1 ||
  fail "Prometheus did not scrape itself within 20s"
# Every rules file prometheus.yml loads (rules/*.yml but the promtool tests): alerts and recording rules.
nrules=$(find "$stack/rules" -name '*.yml' ! -name '*_test.yml' -exec cat {} + | grep -cE -- '- (alert|record):')
rules_ok() {
  curl -fsS --max-time 5 http://127.0.0.1:9090/api/v1/rules |
    jq -e --argjson n "$nrules" '[.data.groups[].rules[]] | length == $n and all(.health == "ok")' >/dev/null
}
poll 20 "Prometheus loaded and evaluates all $nrules rules" rules_ok ||
  fail "rules not loaded or not healthy: $(curl -fsS --max-time 5 http://127.0.0.1:9090/api/v1/rules | head -c 2000)"

go build -o "$ebin/otlpsmoke" "$repo/examples/stack/internal/otlpsmoke" || fail "go build otlpsmoke"
smoke_trace=$(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_EXPORTER_OTLP_INSECURE=true \
  timeout 30 "$ebin/otlpsmoke" -service e2e-smoke 2>>"$logs/otlpsmoke.log") || fail "otlpsmoke could not send a span"
smoke_in_jaeger() {
  jaeger_traces e2e-smoke 10 | jq -e --arg id "$smoke_trace" \
    '.data[] | select(.traceID == $id) | .spans as $s
     | ($s[] | select(.operationName == "smoke parent") | .spanID) as $p
     | $s[] | select(.operationName == "smoke child") | .references[]? | select(.refType == "CHILD_OF" and .spanID == $p)' \
    >/dev/null
}
poll 15 "Jaeger serves the smoke trace $smoke_trace with its child span" smoke_in_jaeger ||
  fail "trace $smoke_trace not found in Jaeger: $(jaeger_traces e2e-smoke 10 | head -c 2000)"

smoke_id=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
push=$(jq -cn --arg ts "$(( $(date +%s) * 1000000000 ))" --arg id "$smoke_id" \
  '{streams: [{stream: {service_name: "e2e-smoke"}, values: [[$ts, "e2e smoke line", {trace_id: $id}]]}]}')
code=$(curl -sS --max-time 5 -o "$logs/loki-push.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data "$push" "$vlogs/insert/loki/api/v1/push") || fail "Loki-format push to VictoriaLogs failed"
[ "$code" = 204 ] || fail "Loki-format push to VictoriaLogs answered $code: $(cat "$logs/loki-push.out")"
# Stream labels become VictoriaLogs stream fields, structured metadata becomes ordinary fields.
poll 15 "VictoriaLogs returns the pushed line by stream label service_name and field trace_id" \
  vlogs_has "{service_name=\"e2e-smoke\"} trace_id:=\"$smoke_id\"" ||
  fail "pushed line not found in VictoriaLogs by trace_id: $(vlogs_query '{service_name="e2e-smoke"}' 5)"

# ---------------------------------------------------------------------------------------------------------
missing=()
for ex in inference-server training-launcher loadgen; do
  [ -d "$repo/examples/$ex" ] || missing+=("examples/$ex")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "examples"
  skip "not present yet: ${missing[*]}; the stack smoke test passed, the examples part did not run"
  step "e2e passed (stack only) in $(( $(date +%s) - t_start ))s"
  remove_data
  exit 0
fi

step "build the examples into ${ebin#"$repo"/}"
t0=$(date +%s)
for ex in inference-server training-launcher loadgen; do
  go build -o "$ebin/$ex" "$repo/examples/$ex" || fail "go build ./examples/$ex"
done
have_gpu_exporter=0
if [ -d "$repo/examples/gpu-exporter" ]; then
  # cgo: go-nvml loads libnvidia-ml at run time.
  CGO_ENABLED=1 go build -o "$ebin/gpu-exporter" "$repo/examples/gpu-exporter" || fail "go build ./examples/gpu-exporter"
  have_gpu_exporter=1
fi
ok "built in $(( $(date +%s) - t0 ))s"

step "start the examples"
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_EXPORTER_OTLP_INSECURE=true
# Jaeger sees the spans sooner with a short batch span processor delay (the SDK's default is 5 s).
export OTEL_BSP_SCHEDULE_DELAY=200
start inference-server "$ebin/inference-server" --listen 127.0.0.1:8080 --grpc-listen 127.0.0.1:8081 \
  --loki-url $vlogs/insert
wait_http inference-server http://127.0.0.1:8080/readyz 60
# The launcher exits when its trainer does: give the trainer more steps than the test needs (it is stopped at
# the end), and a short grace so that SIGTERM reaches the trainer and both exit within stop_all's 5 s.
start training-launcher "$ebin/training-launcher" --listen 127.0.0.1:8082 --loki-url $vlogs/insert \
  --run e2e --grace 3s -- python3 "$repo/examples/training-launcher/trainer.py" --steps 3000 --step-time 0.05
wait_http training-launcher http://127.0.0.1:8082/healthz 30
gpu_running=0
if [ $have_gpu_exporter = 1 ]; then
  start gpu-exporter "$ebin/gpu-exporter" --listen 127.0.0.1:9400
  t0=$(date +%s)
  while [ $(( $(date +%s) - t0 )) -lt 15 ]; do
    if ! alive gpu-exporter; then break; fi
    if curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:9400/metrics 2>/dev/null; then gpu_running=1; break; fi
    sleep 0.25
  done
  if [ $gpu_running = 1 ]; then
    ok "gpu-exporter serving /metrics"
  elif ! alive gpu-exporter; then
    skip "gpu-exporter exited (no NVML here?): $(tail -n 1 "$logs/gpu-exporter.log")"
  else
    fail "gpu-exporter neither serves /metrics nor exits within 15s"
  fi
else
  skip "examples/gpu-exporter not present"
fi

step "drive load: $requests requests, concurrency 4, half streaming"
t0=$(date +%s)
timeout 180 "$ebin/loadgen" --url http://127.0.0.1:8080 --requests "$requests" --concurrency 4 --model "$model" \
  --stream-ratio 0.5 >"$logs/loadgen.log" 2>&1 || fail "loadgen failed (exit $?)"
ok "loadgen done in $(( $(date +%s) - t0 ))s: $(tail -n 1 "$logs/loadgen.log")"

step "Prometheus: metrics scraped from the examples"
poll 20 "gen_ai_server_time_to_first_token_seconds_bucket series for job inference-server" \
  prom_at_least 'count(gen_ai_server_time_to_first_token_seconds_bucket{job="inference-server"})' 1 ||
  fail "no TTFT histogram buckets for job inference-server in Prometheus"
poll 20 "all $requests requests counted (gen_ai_server_request_duration_seconds_count)" \
  prom_at_least "sum(gen_ai_server_request_duration_seconds_count{job=\"inference-server\",gen_ai_request_model=\"$model\"})" "$requests" ||
  fail "Prometheus counts $(prom_value "sum(gen_ai_server_request_duration_seconds_count{job=\"inference-server\"})") GenAI requests, want >= $requests"
poll 20 "training_steps_total > 0 for job training-launcher" \
  prom_at_least 'sum(training_steps_total{job="training-launcher"})' 1 ||
  fail "no training_steps_total > 0 for job training-launcher in Prometheus"
if [ $gpu_running = 1 ]; then
  poll 20 "gpu_up series for job gpu-exporter" prom_at_least 'count(gpu_up{job="gpu-exporter"})' 1 ||
    fail "no gpu_up series for job gpu-exporter in Prometheus"
else
  skip "gpu_ series: no GPU exporter running (NVML absent)"
fi

# Every dashboard query, with Grafana's variables filled in, must run on the real Prometheus without error.
# Not all have data yet (the fragments below make the traffic that fills them, and check their panels).
dashboard_check . "$stack"/dashboards/*.json
ok "all $dq_total dashboard queries run on Prometheus ($((dq_total - ${#dq_empty[@]})) return data now)"

step "Jaeger: the request trace"
trace_id=""
find_trace() {
  local traces
  traces=$(jaeger_traces inference-server 200) || return 1
  trace_id=$(jq -r --arg op "chat $model" --arg model "$model" '
    [.data[] | .traceID as $tid | .spans as $s
     | $s[] | select(.operationName == $op)
     | select(any(.tags[]?; .key == "gen_ai.request.model" and .value == $model)) | .spanID as $req
     | select(any($s[]; .operationName == "tokenize" and any(.references[]?; .refType == "CHILD_OF" and .spanID == $req)))
     | select(any($s[]; .operationName == "forward" and any(.references[]?; .refType == "CHILD_OF" and .spanID == $req)))
     | $tid] | first // empty' <<<"$traces")
  [ -n "$trace_id" ]
}
if ! poll 20 "a trace with span \"chat $model\" and its tokenize and forward children" find_trace; then
  info "spans of the latest inference-server traces (count x operation, first spanID <- parent spanIDs):"
  jaeger_traces inference-server 3 |
    jq -r '.data[] | "      trace \(.traceID)",
      (.spans | group_by([.operationName, ([.references[]? | .spanID] | join(","))])[]
       | "        \(length) x \(.[0].operationName)  \(.[0].spanID) <- \([.[0].references[]? | .spanID] | join(","))")' |
    head -n 40 || true
  fail "Jaeger has no inference-server trace with the GenAI request span and its tokenize and forward children"
fi
info "trace $trace_id: http://127.0.0.1:16686/trace/$trace_id"

step "VictoriaLogs: the request's log lines (pushed by the SDK's Loki handler)"
trace32=$(printf '%32s' "$trace_id" | tr ' ' 0)
poll 20 "lines for {service_name=\"inference-server\"} trace_id:=\"$trace32\"" \
  vlogs_has "{service_name=\"inference-server\"} trace_id:=\"$trace32\"" ||
  fail "VictoriaLogs has no inference-server line with trace_id $trace32 (lines for the service: $(vlogs_count '{service_name="inference-server"}' 2>&1))"
poll 20 "lines for {service_name=\"training-launcher\"}" vlogs_has '{service_name="training-launcher"}' ||
  fail "VictoriaLogs has no training-launcher line (it pushes with --loki-url)"
line=$(vlogs_query "{service_name=\"inference-server\"} trace_id:=\"$trace32\"" 1)
# VictoriaLogs takes _msg from the JSON line's "msg" field because the SDK sends VL-Msg-Field: msg; without
# it every row's _msg is a "missing _msg field" placeholder.
jq -e --arg id "$trace32" '(._msg | type) == "string" and (._msg | startswith("missing _msg field") | not)
    and .trace_id == $id and (.span_id | length) == 16' <<<"$line" >/dev/null ||
  fail "the inference-server line in VictoriaLogs lacks _msg, trace_id or span_id: $line"
ok "the line carries its message, trace_id and span_id: $(jq -c '{_stream, trace_id, span_id}' <<<"$line")"

# Fragments: each adds its own steps against the running stack and examples (see the header).
for fragment in "$stack"/e2e.d/*.sh; do
  [ -e "$fragment" ] || continue
  step "fragment ${fragment#"$repo"/}"
  # shellcheck source=/dev/null
  source "$fragment"
done

if ! alive inference-server; then
  fail "inference-server exited during the test"
fi

step "e2e passed in $(( $(date +%s) - t_start ))s"
remove_data
