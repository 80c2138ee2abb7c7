# shellcheck shell=bash
# The variables it uses (model, stack, vlogs, and dq_total and dq_empty from dashboard_check) are e2e.sh's.
# shellcheck disable=SC2154,SC2034
# e2e fragment: kill VictoriaLogs (the log backend) under light load, restart it, and check what the
# inference server's Loki handler says and does: the lines wait (logging_loki_queue_length and
# logging_loki_pushing_lines above 0, push errors counted, none sent), rules/telemetry.yml's LogsNotDelivered
# expression (its 5m window shortened to 10s) finds the server on the real Prometheus, and once VictoriaLogs is
# back every waiting line is delivered with the time it was logged, none dropped. Sourced by e2e.sh.

logs_url=http://127.0.0.1:8080
logs_outage=${E2E_LOGS_OUTAGE:-15} # s; the handler retries for 3.5 minutes at least (20 retries, backoff up to 30 s)

# logs_metric NAME: the sum of NAME's samples on the inference server's /metrics (0 when absent).
logs_metric() { metric_sum "$logs_url" "$1"; }
logs_waiting() { echo $(( $(logs_metric logging_loki_queue_length) + $(logs_metric logging_loki_pushing_lines) )); }
logs_port_closed() { ! listening 9428; }
logs_held() { [ "$(logs_waiting)" -gt 0 ] && [ "$(logs_metric logging_loki_push_errors_total)" -gt "$errors0" ]; }
logs_sent_grew() { [ "$(logs_metric logging_loki_sent_lines_total)" -gt "$sent_down" ]; }
logs_drained() { [ "$(logs_waiting)" = 0 ]; }

# The alert's expression as rules/telemetry.yml has it, with the 5m window at 10s (Prometheus scrapes every
# second here), for the inference server.
logs_expr=$(awk '/alert: LogsNotDelivered/ { on = 1; next } on && /expr: \|/ { block = 1; next }
  block && /^ *(for|labels):/ { exit } block { printf "%s ", $0 }' "$stack/rules/telemetry.yml" | sed -E 's/\[5m\]/[10s]/g')
case "$logs_expr" in
  *'[10s]'*logging_loki_sent_lines_total* | *logging_loki_sent_lines_total*'[10s]'*) ;;
  *) fail "could not derive LogsNotDelivered's expression from rules/telemetry.yml (got: $logs_expr)" ;;
esac
logs_alert_expr() { prom_query "$logs_expr" | jq -e '.data.result[] | select(.metric.job == "inference-server")' >/dev/null; }
logs_alert_quiet() { ! logs_alert_expr; }

step "chaos: VictoriaLogs killed for ${logs_outage}s under light load"
sent0=$(logs_metric logging_loki_sent_lines_total)
dropped0=$(logs_metric logging_loki_dropped_lines_total)
errors0=$(logs_metric logging_loki_push_errors_total)
[ "$sent0" -gt 0 ] || fail "logging_loki_sent_lines_total is $sent0 after the core steps, want > 0"
logs_alert_quiet || fail "LogsNotDelivered's expression already finds the inference server before the outage"
info "before: sent $sent0, dropped $dropped0, push errors $errors0, waiting $(logs_waiting)"

# About 10 chat requests a second (one request line each), for at most 90 s (stopped below).
chat_load logs-load "$logs_url" "$model" 90

vl_pid=$(pid_of victoria-logs)
kill -KILL "$vl_pid" 2>/dev/null || fail "could not kill victoria-logs (pid $vl_pid)"
wait "$vl_pid" 2>/dev/null || true
poll 10 "VictoriaLogs' port 9428 closed" logs_port_closed || fail "port 9428 still open after killing victoria-logs"
t_down=$(date +%s)
sleep 2 # lines logged from here on were logged while VictoriaLogs was down
t_mark=$(date +%s)

poll $(( logs_outage + 10 )) "lines waiting (queued or in a push) and push errors counted" logs_held ||
  fail "waiting $(logs_waiting), push errors $(logs_metric logging_loki_push_errors_total) (were $errors0) without VictoriaLogs"
poll $(( logs_outage + 15 )) "LogsNotDelivered's expression (10s window) finds the inference server" logs_alert_expr ||
  fail "LogsNotDelivered's expression finds nothing: $(prom_query "$logs_expr" | head -c 1000)"
left=$(( logs_outage - ($(date +%s) - t_down) ))
[ $left -le 0 ] || sleep $left
sent_down=$(logs_metric logging_loki_sent_lines_total)
waiting_down=$(logs_waiting)
t_end=$(date +%s)
info "during the outage: sent $sent_down, waiting $waiting_down, push errors $(logs_metric logging_loki_push_errors_total)"

step "chaos: VictoriaLogs restarted"
listening 9428 && fail "port 9428 taken before VictoriaLogs' restart"
restart victoria-logs
wait_http victoria-logs "$vlogs/health" 60
t_back=$(date +%s)

# The handler's next retry comes within its backoff (up to 30 s); 45 s bounds the check, not the behaviour.
poll 45 "pushes succeed again (logging_loki_sent_lines_total grows past $sent_down)" logs_sent_grew ||
  fail "no line sent within 45 s of VictoriaLogs' restart (sent $(logs_metric logging_loki_sent_lines_total))"
ok "first push $(( $(date +%s) - t_back ))s after VictoriaLogs was ready"
stop_group logs-load
poll 60 "every waiting line delivered (queue and pushes empty)" logs_drained ||
  fail "still $(logs_waiting) lines waiting 60 s after the load stopped"
dropped=$(logs_metric logging_loki_dropped_lines_total)
[ "$dropped" = "$dropped0" ] || fail "$(( dropped - dropped0 )) lines dropped over a ${logs_outage}s outage, want 0"
ok "all delivered, none dropped: sent $(( $(logs_metric logging_loki_sent_lines_total) - sent0 )) since the outage began"

# The lines logged while VictoriaLogs was down arrive with the time they were logged.
logs_in_outage() {
  local out
  out=$(curl -fsS --max-time 5 "$vlogs/select/logsql/query" --data-urlencode 'query={service_name="inference-server"} "http request"' \
    --data-urlencode "start=$t_mark" --data-urlencode "end=$t_end" --data-urlencode "limit=1000") || return 1
  [ "$(printf '%s' "$out" | grep -c .)" -gt 0 ]
}
poll 20 "VictoriaLogs has request lines stamped inside the outage ($t_mark..$t_end)" logs_in_outage ||
  fail "no inference-server request line with a time inside the outage"
poll 30 "LogsNotDelivered's expression finds nothing again" logs_alert_quiet ||
  fail "LogsNotDelivered's expression still finds the inference server: $(prom_query "$logs_expr" | head -c 1000)"
ok "lines logged during the outage stored with their own time; the alert's condition cleared"
# The serving dashboard's telemetry row has data for all this (its "> 0" queries, drops and failures, may
# rightly be empty).
dashboard_check '> 0$' <(dashboard_row "$stack/dashboards/serving.json" "Telemetry delivery (the SDK's own logs and spans)")
ok "the serving dashboard's telemetry delivery row: $(( dq_total - ${#dq_empty[@]} )) of $dq_total queries with data"
