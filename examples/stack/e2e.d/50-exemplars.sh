# Exemplars, against the running stack: e2e.sh starts Prometheus with --enable-feature=exemplar-storage, and
# Prometheus scrapes the inference server's OpenMetrics /metrics. For the request duration, TTFT, TPOT and HTTP
# duration histograms, /api/v1/query_exemplars must return exemplars labelled trace_id (and nothing else), and
# Jaeger must return every one of those trace ids as a trace of the inference server (/api/traces/<id>).
# shellcheck disable=SC2154 # $model and $logs come from e2e.sh, which sources this file
step "exemplars: Prometheus stores the trace ids of sampled requests, Jaeger has each trace"
ex_prom=http://127.0.0.1:9090

# ex_query SELECTOR: prints the exemplars Prometheus has for SELECTOR over the last hour, as JSON.
ex_query() {
  curl -fsS --max-time 5 -G "$ex_prom/api/v1/query_exemplars" --data-urlencode "query=$1" \
    --data-urlencode "start=$(( $(date +%s) - 3600 ))" --data-urlencode "end=$(( $(date +%s) + 60 ))"
}
ex_has() { ex_query "$1" | jq -e '[.data[]?.exemplars[]?] | length > 0' >/dev/null; }

# ex_in_jaeger ID: Jaeger returns the trace ID (its traceID may drop leading zeros) with a span of the
# inference server.
ex_in_jaeger() {
  local out
  out=$(curl -fsS --max-time 5 "http://127.0.0.1:16686/api/traces/$1" 2>/dev/null) || return 1
  jq -e --arg id "$1" '
    .data[]? | select(((.traceID | length) as $n | ("0" * (32 - $n)) + .traceID) == $id)
    | .processes[] | select(.serviceName == "inference-server")' <<<"$out" >/dev/null
}

ex_checked=0
for ex_metric in gen_ai_server_request_duration_seconds gen_ai_server_time_to_first_token_seconds \
  gen_ai_server_time_per_output_token_seconds http_server_request_duration_seconds; do
  ex_sel="${ex_metric}_bucket{job=\"inference-server\"}"
  poll 20 "query_exemplars returns exemplars for $ex_sel" ex_has "$ex_sel" ||
    fail "no exemplars for $ex_sel in Prometheus: $(ex_query "$ex_sel" | head -c 1000)"
  ex_ans=$(ex_query "$ex_sel") || fail "query_exemplars $ex_sel failed"
  # Every exemplar has exactly the label trace_id, 32 hex digits.
  ex_bad=$(jq -c '[.data[].exemplars[] | select((.labels | keys) != ["trace_id"]
    or (.labels.trace_id | test("^[0-9a-f]{32}$") | not))] | .[:3]' <<<"$ex_ans")
  [ "$ex_bad" = "[]" ] || fail "$ex_metric exemplars with labels other than a trace_id: $ex_bad"
  ex_ids=$(jq -r '[.data[].exemplars[].labels.trace_id] | unique | .[]' <<<"$ex_ans")
  ex_n=0
  while IFS= read -r ex_id; do
    [ -n "$ex_id" ] || continue
    poll 10 "Jaeger has trace $ex_id ($ex_metric exemplar)" ex_in_jaeger "$ex_id" >/dev/null ||
      fail "$ex_metric exemplar trace_id $ex_id is not a trace of inference-server in Jaeger"
    ex_n=$((ex_n + 1))
  done <<<"$ex_ids"
  ok "$ex_metric: $ex_n exemplar trace ids, each a trace in Jaeger"
  ex_checked=$((ex_checked + ex_n))
done
ok "$ex_checked exemplar trace ids in all found in Jaeger"
