# shellcheck shell=bash disable=SC2154 # $repo, $ebin, $logs and $model come from e2e.sh
# modeltop (examples/modeltop): the terminal view shows what the stack holds, read through Prometheus's HTTP
# API (PromQL rates and quantiles over the load the core steps drove) and by scraping the examples directly.
# It prints one plain-text screen with --once; each check polls until the screen shows it.
go build -o "$ebin/modeltop" "$repo/examples/modeltop" || fail "go build ./examples/modeltop"
mt_out="$logs/modeltop.txt"

# modeltop_has ARGS... -- AWK: one screen into $mt_out, then AWK over it must succeed.
modeltop_has() {
  local args=() prog
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  prog=$2
  timeout 20 "$ebin/modeltop" "${args[@]}" --once --width 160 --height 50 >"$mt_out" 2>&1 || return 1
  awk "$prog" "$mt_out"
}
# The model's row: a request rate and a TTFT p50 that are numbers, not "-" (columns: model, req/s, err/s,
# TTFT50). The window reaches back over the load driven earlier.
model_row="\$1 == \"$model\" && \$2 ~ /^[0-9]/ && \$4 ~ /^[0-9]/ { found = 1 } END { exit !found }"
ok_line='/ok  [0-9]+\/[0-9]+ backends/ { found = 1 } END { exit !found }'

poll 30 "modeltop --prometheus: $model with a request rate and a TTFT" \
  modeltop_has --prometheus http://127.0.0.1:9090 --window 10m -- "$model_row" ||
  fail "modeltop --prometheus does not show $model with numbers; its last screen:
$(cat "$mt_out")"
modeltop_has --prometheus http://127.0.0.1:9090 --window 10m -- "$ok_line" ||
  fail "modeltop --prometheus: the status line is not ok: $(tail -n 1 "$mt_out")"
# shellcheck disable=SC2016 # the $1 and $3 are awk's
poll 30 "modeltop --prometheus: the training run e2e with a step time" \
  modeltop_has --prometheus http://127.0.0.1:9090 --window 1m -- \
  '$1 == "e2e" && $3 ~ /^[0-9]/ { found = 1 } END { exit !found }' ||
  fail "modeltop --prometheus does not show the training run e2e with a step time; its last screen:
$(cat "$mt_out")"
if [ "${gpu_running:-0}" = 1 ]; then
  # shellcheck disable=SC2016
  poll 30 "modeltop --prometheus: a GPU row" modeltop_has --prometheus http://127.0.0.1:9090 -- \
    '/^GPUS [1-9]/ { found = 1 } END { exit !found }' ||
    fail "modeltop --prometheus shows no GPU; its last screen:
$(cat "$mt_out")"
else
  skip "modeltop GPU rows: no gpu-exporter running"
fi
ok "modeltop --prometheus: $(awk -v m="$model" '$1 == m' "$mt_out" | tr -s ' ')"

# Scrape mode: two scrapes one interval apart, no Prometheus in between. The load is over, so the rate may
# be 0; the row and both backends answering are what is checked.
poll 20 "modeltop --scrape: $model and 2/2 backends" \
  modeltop_has --scrape 127.0.0.1:8080 --scrape 127.0.0.1:8082 --interval 1s -- \
  "\$1 == \"$model\" { m = 1 } /ok  2\\/2 backends/ { s = 1 } END { exit !(m && s) }" ||
  fail "modeltop --scrape does not show $model with both backends ok; its last screen:
$(cat "$mt_out")"
ok "modeltop --scrape: $(awk -v m="$model" '$1 == m' "$mt_out" | tr -s ' ')"
