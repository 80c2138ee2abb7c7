# shellcheck shell=bash disable=SC2154 # $ebin, $logs, $model, $stack, $gpu_running come from e2e.sh
# e2e fragment: energy and GPU time per token (rules/energy.yml) and serving SLOs (rules/slo.yml, generated
# from slo.yml) on the main Prometheus, with the real rules.
#
# The simulated GPU exporter that 20-gpu-sim.sh leaves on :9400 and the inference server on :8080 share the
# label node="e2e-node" (prometheus.yml), which is what the energy rules join on. The fragment drives a
# little load of its own (the windows are 5 minutes and earlier load may have aged out), then asserts:
#  - joules per output token, GPU-seconds per request and per million output tokens, per node and model and
#    per model, are finite and positive for the e2e model on e2e-node;
#  - the attribution conserves: the shares of the node's request-seconds sum to 1 and the energy charged to
#    its models sums to the node's energy;
#  - for each SLI (ttft, tpot, errors) and window (5m, 30m, 1h, 6h) of the e2e model on job inference-server,
#    a good ratio in (0, 1] and a finite burn rate >= 0;
#  - every query of the dashboards' "Energy, GPU time and SLOs" row returns data.
# Every wait is bounded.

# es_check PROMQL JQ_TEST: the query answers at least one sample, and every value passes JQ_TEST (a jq
# expression over the number; NaN and infinities fail).
es_check() {
  prom_query "$1" 2>/dev/null | jq -e "[.data.result[].value[1]] | length > 0 and
    all(. != \"NaN\" and . != \"+Inf\" and . != \"-Inf\" and (tonumber | $2))" >/dev/null
}
es_show() { prom_query "$1" 2>/dev/null | jq -c '[.data.result[] | {m: .metric, v: .value[1]}]' | head -c 1500; }

step "energy per token and SLOs: load for the 5-minute windows"
timeout 120 "$ebin/loadgen" --url http://127.0.0.1:8080 --requests 20 --concurrency 2 --model "$model" \
  --stream-ratio 0.5 >"$logs/loadgen-energy-slo.log" 2>&1 || fail "loadgen failed (exit $?)"
ok "loadgen: $(tail -n 1 "$logs/loadgen-energy-slo.log")"

if [ "${gpu_running:-0}" = 1 ]; then
  step "energy per token: rules/energy.yml joins the simulated GPUs and the server on node e2e-node"
  es_sel="node=\"e2e-node\",gen_ai_request_model=\"$model\""
  for rec in node_model:inference_joules_per_output_token:ratio5m node_model:inference_gpu_seconds_per_request:ratio5m \
    node_model:inference_gpu_seconds_per_million_output_tokens:ratio5m; do
    poll 30 "$rec{$es_sel} finite and > 0" es_check "$rec{$es_sel}" '. > 0' ||
      fail "$rec{$es_sel}: $(es_show "$rec{$es_sel}"); inputs: node:gpu_energy_joules:rate5m $(es_show 'node:gpu_energy_joules:rate5m'), tokens $(es_show 'node_model:inference_output_tokens:rate5m')"
    info "$rec{$es_sel} = $(prom_value "$rec{$es_sel}")"
  done
  for rec in model:inference_joules_per_output_token:ratio5m model:inference_gpu_seconds_per_request:ratio5m \
    model:inference_gpu_seconds_per_million_output_tokens:ratio5m; do
    poll 10 "$rec{gen_ai_request_model=\"$model\"} finite and > 0" \
      es_check "$rec{gen_ai_request_model=\"$model\"}" '. > 0' || fail "$rec: $(es_show "$rec")"
  done
  es_check 'sum by (node) (node_model:gen_ai_server_request_seconds:share5m{node="e2e-node"})' '. > 0.999999 and . < 1.000001' ||
    fail "the shares of e2e-node do not sum to 1: $(es_show 'node_model:gen_ai_server_request_seconds:share5m')"
  es_check 'sum by (node) (node_model:gpu_energy_joules:rate5m{node="e2e-node"}) / node:gpu_energy_joules:rate5m{node="e2e-node"}' \
    '. > 0.999999 and . < 1.000001' ||
    fail "the energy charged to e2e-node's models is not the node's: $(es_show 'node_model:gpu_energy_joules:rate5m')"
  ok "e2e-node: $(prom_value 'node:gpu_energy_joules:rate5m{node="e2e-node"}') W over its GPUs, all of it charged to its models (shares sum to 1)"
else
  skip "energy per token: no GPU exporter running (20-gpu-sim.sh did not leave one)"
fi

step "SLOs: rules/slo.yml for $model on job inference-server, every SLI and window"
for w in 5m 30m 1h 6h; do
  for sli in ttft tpot errors; do
    sel="job=\"inference-server\",gen_ai_request_model=\"$model\",sli=\"$sli\""
    poll 20 "gen_ai_slo:good_ratio:rate$w{sli=\"$sli\"} in (0, 1]" es_check "gen_ai_slo:good_ratio:rate$w{$sel}" '. > 0 and . <= 1' ||
      fail "gen_ai_slo:good_ratio:rate$w{$sel}: $(es_show "gen_ai_slo:good_ratio:rate$w{gen_ai_request_model=\"$model\"}")"
    es_check "gen_ai_slo:burn_rate:rate$w{$sel}" '. >= 0' ||
      fail "gen_ai_slo:burn_rate:rate$w{$sel}: $(es_show "gen_ai_slo:burn_rate:rate$w{gen_ai_request_model=\"$model\"}")"
  done
done
ok "good ratios over 1h: $(prom_query "gen_ai_slo:good_ratio:rate1h{job=\"inference-server\",gen_ai_request_model=\"$model\"}" |
  jq -r '[.data.result[] | "\(.metric.sli) \(.value[1])"] | join(", ")')"

step "dashboards: every query of the energy and SLO row returns data"
es_total=0
while IFS= read -r q; do
  es_total=$((es_total + 1))
  if [ "${gpu_running:-0}" != 1 ] && [[ "$q" != *gen_ai_slo:* ]]; then continue; fi
  poll 10 "data: ${q:0:90}" es_check "$q" 'true' || fail "dashboard query returns no data: $q"
done < <(dashboard_row "$stack/dashboards/serving.json" "Energy, GPU time and SLOs" | dashboard_queries /dev/stdin)
[ "$es_total" -ge 8 ] || fail "found only $es_total queries in the \"Energy, GPU time and SLOs\" row of serving.json"
ok "$es_total queries of the energy and SLO row return data"
