# shellcheck shell=bash
# shellcheck disable=SC2154 # repo, e2e, logs, t_start and servers are the caller's (see below)
# Functions shared by e2e.sh and e2e-fleet.sh (sourced, not run). The caller sets, before sourcing:
# repo, e2e (the .e2e folder), logs, t_start, servers (the names `start`ed that stop_all stops last), and
# optionally prom_url (the Prometheus-compatible query API prom_* use; default http://127.0.0.1:9090).
# The caller installs the traps: `trap on_exit EXIT` and one for INT/TERM.
step() { printf '\n==> [%3ss] %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
info() { printf '    %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
skip() { printf '    SKIP: %s\n' "$*"; }

names=()
pids=()
cmds=() # each started command, quoted (printf %q), for restart

show_logs() {
  local f
  for f in "$logs"/*.log; do
    [ -e "$f" ] || continue
    printf '\n---- %s (last 40 lines) ----\n' "${f#"$repo"/}"
    tail -n 40 "$f" || true
  done
}

fail() {
  printf '\nE2E FAILED: %s\n' "$*" >&2
  show_logs
  printf '\nE2E FAILED: %s (logs and data kept in %s)\n' "$*" "${e2e#"$repo"/}" >&2
  exit 1
}

# stop_group NAME...: sends SIGTERM to those of the started processes named, waits up to 5 s for them all,
# then SIGKILLs what is left and reaps them.
stop_group() {
  local i pid deadline alive sel=()
  for i in "${!pids[@]}"; do
    case " $* " in *" ${names[$i]} "*) sel+=("$i") ;; esac
  done
  [ ${#sel[@]} -gt 0 ] || return 0
  for i in "${sel[@]}"; do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  deadline=$(( $(date +%s) + 5 ))
  while :; do
    alive=0
    for i in "${sel[@]}"; do
      if kill -0 "${pids[$i]}" 2>/dev/null; then alive=1; fi
    done
    if [ $alive -eq 0 ] || [ "$(date +%s)" -ge $deadline ]; then break; fi
    sleep 0.1
  done
  for i in "${sel[@]}"; do
    pid=${pids[$i]}
    if kill -0 "$pid" 2>/dev/null; then
      printf '    %s (pid %s) still running 5 s after SIGTERM: SIGKILL\n' "${names[$i]}" "$pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

# stop_all stops everything that is not one of the servers first (so the examples can flush their spans and
# logs), then the servers.
stop_all() {
  [ ${#pids[@]} -gt 0 ] || return 0
  local n rest=()
  for n in "${names[@]}"; do
    case " $servers " in *" $n "*) ;; *) rest+=("$n") ;; esac
  done
  [ ${#rest[@]} -eq 0 ] || stop_group "${rest[@]}"
  local srv
  read -ra srv <<<"$servers"
  stop_group "${srv[@]}"
  pids=()
  names=()
  cmds=()
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  rm -f "$e2e"/*.pid
  exit $rc
}

# remove_data: after a pass, stops everything started (a server still writing would make rm fail), then
# removes the data unless E2E_KEEP=1.
remove_data() {
  stop_all
  [ "${E2E_KEEP:-}" = 1 ] || rm -rf "$data"
}

# start NAME COMMAND...: runs COMMAND in the background with its output in $logs/NAME.log and keeps its PID.
start() {
  local name=$1
  shift
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
  cmds+=("$(printf '%q ' "$@")")
  echo "$!" >"$e2e/$name.pid"
  info "started $name (pid $!): $*"
}

# restart NAME: runs the command NAME was last started with again, its output appended to $logs/NAME.log,
# in the place of NAME's process (which the caller has stopped or killed), so that pid_of, alive and the
# stop functions see the new one.
restart() {
  local i at="" argv
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = "$1" ]; then at=$i; fi
  done
  [ -n "$at" ] || fail "restart $1: it was never started"
  eval "argv=(${cmds[$at]})"
  "${argv[@]}" >>"$logs/$1.log" 2>&1 &
  pids[at]=$!
  echo "$!" >"$e2e/$1.pid"
  info "restarted $1 (pid $!)"
}

# pid_of NAME: the PID of the latest process started as NAME (a restarted server keeps its name).
pid_of() {
  local i pid=""
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = "$1" ]; then pid=${pids[$i]}; fi
  done
  [ -n "$pid" ] && echo "$pid"
}

alive() { kill -0 "$(pid_of "$1")" 2>/dev/null; }

# wait_http NAME URL SECONDS: polls URL until it answers 2xx; fails early if NAME's process has exited.
wait_http() {
  local name=$1 url=$2 secs=$3 t0 deadline
  t0=$(date +%s)
  deadline=$(( t0 + secs ))
  while [ "$(date +%s)" -lt $deadline ]; do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      ok "$name ready ($url) after $(( $(date +%s) - t0 ))s"
      return 0
    fi
    alive "$name" || fail "$name exited before it became ready"
    sleep 0.25
  done
  fail "$name not ready at $url within ${secs}s"
}

listening() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# poll SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.5 s until it succeeds or SECONDS pass.
poll() {
  local secs=$1 what=$2 t0 deadline
  shift 2
  t0=$(date +%s)
  deadline=$(( t0 + secs ))
  while :; do
    if "$@"; then
      ok "$what ($(( $(date +%s) - t0 ))s)"
      return 0
    fi
    [ "$(date +%s)" -lt $deadline ] || return 1
    sleep 0.5
  done
}

# prom_query PROMQL: prints the JSON answer of Prometheus's instant query API.
prom_query() {
  curl -fsS --max-time 5 -G "${prom_url:-http://127.0.0.1:9090}/api/v1/query" --data-urlencode "query=$1"
}

# prom_value PROMQL: prints the first sample's value, or nothing.
prom_value() {
  prom_query "$1" | jq -r 'if .status == "success" and (.data.result | length) > 0 then .data.result[0].value[1] else empty end'
}

prom_at_least() {
  local v
  v=$(prom_value "$1" 2>/dev/null) || return 1
  [ -n "$v" ] && awk -v v="$v" -v min="$2" 'BEGIN { exit !(v + 0 >= min + 0) }'
}

vlogs=http://127.0.0.1:9428

# vlogs_query LOGSQL: prints the matching log entries of the last hour, one JSON object a line
# (VictoriaLogs' /select/logsql/query).
vlogs_query() {
  curl -fsS --max-time 5 "$vlogs/select/logsql/query" --data-urlencode "query=$1" \
    --data-urlencode "start=1h" --data-urlencode "limit=${2:-1000}"
}

# vlogs_count LOGSQL: prints the number of log entries LOGSQL finds over the last hour.
vlogs_count() {
  local out
  out=$(vlogs_query "$1") || return 1
  if [ -z "$out" ]; then echo 0; else printf '%s\n' "$out" | wc -l | tr -d ' '; fi
}

vlogs_has() { local n; n=$(vlogs_count "$1" 2>/dev/null) && [ "${n:-0}" -gt 0 ]; }

# chat_load NAME URL MODEL SECS: starts NAME, about 10 chat completions a second of MODEL against URL (a
# request line and a trace each), for at most SECS seconds; stop_group NAME ends it sooner.
chat_load() {
  start "$1" timeout "$4" bash -c '
    while :; do
      curl -s -o /dev/null --max-time 5 -H "Content-Type: application/json" \
        -d "{\"model\":\"'"$3"'\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4}" \
        '"$2"'/v1/chat/completions || true
      sleep 0.1
    done'
}

# metric_sum URL NAME: the sum of NAME's samples on URL's /metrics (0 when absent).
metric_sum() {
  curl -fsS --max-time 5 "$1/metrics" |
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }'
}

jaeger_traces() {
  curl -fsS --max-time 5 -G "http://127.0.0.1:16686/api/traces" --data-urlencode "service=$1" \
    --data-urlencode "limit=${2:-100}" --data-urlencode "lookback=1h"
}

# need_tools TOOL...: installs the Debian packages of the same names that are missing (apt-get, as root or
# through sudo -n), and fails when one still is not on PATH.
need_tools() {
  local tool need=() sudo=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null || need+=("$tool")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  info "missing ${need[*]}: apt-get install ${need[*]}"
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  ("${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}") \
    >/dev/null 2>&1 || true
  for tool in "${need[@]}"; do
    command -v "$tool" >/dev/null || fail "$tool is required and could not be installed"
  done
}

# dashboard_queries DASHBOARD.json...: prints every panel query of the Grafana dashboards, one a line, with
# Grafana's variables filled in as a person would pick "All" ($__rate_interval 1m, $__range 1h, others .*).
dashboard_queries() {
  jq -r '.panels[] | .targets[]? | .expr
    | gsub("\\$__rate_interval"; "1m") | gsub("\\$__range"; "1h") | gsub("\\$[A-Za-z_]+"; ".*")' "$@"
}

# dashboard_check ALLOWED DASHBOARD.json...: runs every panel query of the dashboards (dashboard_queries) once.
# A query that fails fails the test; so does one that returns no data, unless it matches the extended regular
# expression ALLOWED (empty: every query must return data). Sets dq_total (the queries run) and dq_empty (the
# allowed queries without data) for the caller's own report. Pass a row as a file: <(dashboard_row FILE TITLE).
dashboard_check() {
  local allowed=$1 q ans
  shift
  dq_total=0
  dq_empty=()
  while IFS= read -r q; do
    dq_total=$((dq_total + 1))
    ans=$(prom_query "$q" 2>&1) || fail "dashboard query failed ($*): $q: $ans"
    [ "$(jq -r '.data.result | length' <<<"$ans")" -gt 0 ] && continue
    if [ -n "$allowed" ] && [[ $q =~ $allowed ]]; then
      dq_empty+=("$q")
    else
      fail "dashboard query returns no data ($*): $q"
    fi
  done < <(dashboard_queries "$@")
  [ "$dq_total" -gt 0 ] || fail "no dashboard queries found in $*"
}

# dashboard_row FILE TITLE: the panels of the row titled TITLE in the dashboard FILE (those after it, up to
# the next row), as a dashboard that dashboard_queries reads.
dashboard_row() {
  jq --arg title "$2" '.panels | (map(.title) | index($title)) as $i | .[$i + 1:]
    | (map(.type) | index("row") // length) as $j | {panels: .[:$j]}' "$1"
}
