# shellcheck shell=bash disable=SC2154
# (e2e.sh defines $repo, $ebin, $logs, $vlogs and $model.)
# 40-gateway.sh: examples/gateway in front of the running inference-server (127.0.0.1:8080), on :8090, which
# prometheus.yml scrapes as job "gateway". It drives requests through the gateway with the load generator
# and checks that Prometheus has the gateway's series (requests by status, tokens and time to first token
# read from the traffic, upstream health), that its own errors are OpenAI's shape, and that Jaeger has the
# gateway's traces with the upstream call in them, and that every query of dashboards/gateway.json returns data.
gw_port=8090
gw_url=http://127.0.0.1:$gw_port
gw_requests=10

if listening $gw_port; then
  fail "port $gw_port is taken: the gateway fragment cannot start"
fi
go build -o "$ebin/gateway" "$repo/examples/gateway" || fail "go build ./examples/gateway"
OTEL_SERVICE_NAME=gateway start gateway "$ebin/gateway" --listen 127.0.0.1:$gw_port \
  --upstream http://127.0.0.1:8080 --refresh 2s --loki-url "$vlogs/insert"
wait_http gateway $gw_url/healthz 30

gw_models=$(curl -fsS --max-time 5 $gw_url/v1/models | jq -r '[.data[].id] | join(",")') ||
  fail "GET $gw_url/v1/models failed"
[[ ",$gw_models," == *",$model,"* ]] || fail "the gateway lists [$gw_models], not $model"
ok "the gateway serves the upstream's models: $gw_models"

timeout 120 "$ebin/loadgen" --url $gw_url --requests $gw_requests --concurrency 2 --model "$model" \
  --stream-ratio 0.5 >"$logs/loadgen-gateway.log" 2>&1 || fail "loadgen through the gateway failed (exit $?)"
ok "loadgen through the gateway: $(tail -n 1 "$logs/loadgen-gateway.log")"

gw_err=$(curl -sS --max-time 5 -w '\n%{http_code}' $gw_url/v1/chat/completions -H 'Content-Type: application/json' \
  -H 'Authorization: Bearer e2e-secret-key' -d '{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}')
[ "$(tail -n 1 <<<"$gw_err")" = 404 ] || fail "unknown model: want 404, got: $gw_err"
jq -e '.error.code == "model_not_found"' <<<"$(head -n 1 <<<"$gw_err")" >/dev/null ||
  fail "unknown model: not OpenAI's error shape: $gw_err"
ok "unknown model: 404 model_not_found"

poll 30 "Prometheus scrapes the gateway" prom_at_least 'up{job="gateway"}' 1 ||
  fail "Prometheus does not scrape the gateway (job gateway, $gw_url)"
poll 30 "gateway_upstream_up{upstream=\"127.0.0.1:8080\"} == 1" \
  prom_at_least 'gateway_upstream_up{job="gateway",upstream="127.0.0.1:8080"}' 1 ||
  fail "gateway_upstream_up of the inference-server is not 1"
poll 30 "$gw_requests chat requests through the gateway answered 200" \
  prom_at_least "sum(http_server_request_duration_seconds_count{job=\"gateway\",http_response_status_code=\"200\",http_route=\"/v1/{path...}\"}) >= $gw_requests" 1 ||
  fail "the gateway's 200s are not in Prometheus"
poll 30 "the 404 of the unknown model" \
  prom_at_least 'sum(http_server_request_duration_seconds_count{job="gateway",http_response_status_code="404"})' 1 ||
  fail "the gateway's 404 is not in Prometheus"
poll 30 "output tokens read from the traffic" \
  prom_at_least "sum(inference_tokens_total{job=\"gateway\",gen_ai_token_type=\"output\",gen_ai_request_model=\"$model\"})" 1 ||
  fail "no inference_tokens_total from the gateway"
poll 30 "time to first token of the streamed requests" \
  prom_at_least 'sum(gen_ai_server_time_to_first_token_seconds_count{job="gateway"})' 1 ||
  fail "no gen_ai_server_time_to_first_token_seconds from the gateway"
poll 30 "upstream time and gateway overhead measured apart" \
  prom_at_least "sum(gateway_upstream_duration_seconds_count{job=\"gateway\"}) >= $gw_requests and sum(gateway_overhead_seconds_count{job=\"gateway\"}) >= $gw_requests" 1 ||
  fail "gateway_upstream_duration_seconds / gateway_overhead_seconds missing"
poll 30 "tenants are hashed (no raw key in a label)" \
  prom_at_least 'count(gateway_tenant_requests_total{job="gateway"})' 1 ||
  fail "no gateway_tenant_requests_total"
if [ -n "$(prom_value 'count(gateway_tenant_requests_total{tenant=~".*secret.*"})')" ]; then
  fail "a raw API key is a tenant label"
fi
poll 30 "inference_requests_active and the upstream's active requests back to 0" \
  prom_at_least 'sum(inference_requests_active{job="gateway"}) + sum(gateway_upstream_active_requests{job="gateway"}) == 0' 0 ||
  fail "active gauges of the gateway not back to 0"

# The gateway dashboard: every query returns data now (the traffic above is within the 1m rate windows).
dashboard_check '' "$stack/dashboards/gateway.json"
ok "all $dq_total queries of dashboards/gateway.json return data"

gw_trace_ok() {
  jaeger_traces gateway 50 | jq -e '[.data[] | select(any(.spans[]; .operationName | startswith("upstream POST")))
    | select(any(.processes[]; .serviceName == "inference-server"))] | length > 0' >/dev/null
}
poll 30 "Jaeger: a gateway trace holds the upstream call and the inference-server's spans" gw_trace_ok ||
  fail "no gateway trace through to the inference-server in Jaeger"
