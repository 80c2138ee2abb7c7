# shellcheck shell=bash
# The variables it uses (model) are e2e.sh's.
# shellcheck disable=SC2154,SC2034
# e2e fragment (issue 15): kill Jaeger under light load, restart it, and check that the inference server's spans
# reach it again promptly and that its span counters account for the outage: export failures (or drops) counted
# while Jaeger is down, exports resuming once it is back. Sourced by e2e.sh with its functions in scope.

chaos_url=http://127.0.0.1:8080
chaos_outage=${E2E_CHAOS_OUTAGE:-12} # s; longer than the exporter's 10 s timeout, so a batch fails for good

# chaos_metric NAME: the sum of NAME's samples on the inference server's /metrics (0 when absent).
chaos_metric() { metric_sum "$chaos_url" "$1"; }
chaos_lost() {
  echo $(( $(chaos_metric modeltel_tracing_spans_export_failed_total) + $(chaos_metric modeltel_tracing_spans_dropped_total) ))
}
chaos_exported() { chaos_metric modeltel_tracing_spans_exported_total; }
chaos_port_closed() { ! listening 4317; }
chaos_lost_grew() { [ "$(chaos_lost)" -gt "$lost0" ]; }
chaos_exported_grew() { [ "$(chaos_exported)" -gt "$exported_down" ]; }
# Jaeger's in-memory store starts empty: any inference-server trace arrived after the restart.
chaos_trace_back() { [ "$(jaeger_traces inference-server 5 | jq '.data | length')" -gt 0 ]; }

step "chaos: Jaeger killed for ${chaos_outage}s under light load"
exported0=$(chaos_exported)
lost0=$(chaos_lost)
[ "$exported0" -gt 0 ] || fail "modeltel_tracing_spans_exported_total is $exported0 after the core steps, want > 0"
info "before: exported $exported0, failed + dropped $lost0"

# About 10 chat requests a second, for at most 90 s (stopped below).
chat_load chaos-load "$chaos_url" "$model" 90

jaeger_pid=$(pid_of jaeger)
kill -KILL "$jaeger_pid" 2>/dev/null || fail "could not kill jaeger (pid $jaeger_pid)"
wait "$jaeger_pid" 2>/dev/null || true
poll 10 "Jaeger's OTLP port 4317 closed" chaos_port_closed ||
  fail "port 4317 still open after killing jaeger"
t_down=$(date +%s)

poll $(( chaos_outage + 10 )) "spans counted as export failed or dropped while Jaeger is down" chaos_lost_grew ||
  fail "failed + dropped still $(chaos_lost) (was $lost0) after $(( $(date +%s) - t_down ))s without Jaeger"
left=$(( chaos_outage - ($(date +%s) - t_down) ))
[ $left -le 0 ] || sleep $left
exported_down=$(chaos_exported)
info "during the outage: exported $exported_down, failed + dropped $(chaos_lost)"

step "chaos: Jaeger restarted"
listening 4317 && fail "port 4317 taken before Jaeger's restart"
restart jaeger
wait_http jaeger http://127.0.0.1:13133/status 60
t_back=$(date +%s)

# The exporter reconnects within about 2 s (bounded backoff); 15 s bounds the check, not the behaviour.
poll 15 "exports resume (modeltel_tracing_spans_exported_total grows past $exported_down)" chaos_exported_grew ||
  fail "no span exported within 15 s of Jaeger's restart (exported $(chaos_exported))"
ok "first export $(( $(date +%s) - t_back ))s after Jaeger was ready"
poll 15 "Jaeger serves inference-server traces again" chaos_trace_back ||
  fail "Jaeger has no inference-server trace 15 s after its restart"

stop_group chaos-load
# The spans queued during the outage (up to the queue's 2048) go out once Jaeger is back.
chaos_settled() {
  local a b
  a=$(chaos_exported); sleep 1; b=$(chaos_exported)
  [ "$a" -eq "$b" ]
}
poll 20 "span export settled after the load stopped" chaos_settled || info "span export still moving after 20 s"
info "after: exported $(chaos_exported), failed $(chaos_metric \
modeltel_tracing_spans_export_failed_total), dropped $(chaos_metric modeltel_tracing_spans_dropped_total)\
 (exported since Jaeger came back: $(( $(chaos_exported) - exported_down )))"
