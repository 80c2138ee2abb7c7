# shellcheck shell=bash disable=SC2154 # $stack comes from e2e.sh
# Training goodput (the training package's wall-time ledger, fed by the launcher and the trainer's lines): the
# e2e launcher's goodput series are in Prometheus, the ratio is in (0, 1], every badput reason is exported, and
# every query of the training dashboard's Goodput row returns data.
poll 30 "training_goodput_seconds_total > 0 for job training-launcher" \
  prom_at_least 'sum(training_goodput_seconds_total{job="training-launcher"})' 0.001 ||
  fail "no productive training time in Prometheus (training_goodput_seconds_total{job=\"training-launcher\"})"
gp_ratio=$(prom_value 'max(training_goodput_ratio{job="training-launcher"})')
awk -v r="$gp_ratio" 'BEGIN { exit !(r > 0 && r <= 1) }' ||
  fail "training_goodput_ratio = '$gp_ratio', want a value in (0, 1]"
gp_reasons=$(prom_value 'count(training_badput_seconds_total{job="training-launcher"})')
[ "$gp_reasons" = 6 ] ||
  fail "training_badput_seconds_total has '$gp_reasons' reasons in Prometheus, want 6 (startup, data_wait, checkpoint, restart, recompute, other)"
ok "training_goodput_ratio $gp_ratio, 6 badput reasons"

dashboard_check '' <(dashboard_row "$stack/dashboards/training.json" Goodput)
[ "$dq_total" -ge 6 ] || fail "found only $dq_total queries in the training dashboard's Goodput row"
ok "all $dq_total Goodput row queries return data"
