#!/usr/bin/env bash
# Builds (or reuses) the real servers the stack runs: Prometheus + promtool, Jaeger v2 and VictoriaLogs (the
# log backend: it receives Loki's push API; the Loki server itself is AGPL and not used), from the Go module
# proxy at pinned versions. None of their code goes into this repository: each module is downloaded
# with `go mod download`, copied to a writable folder under the cache and built there.
#
# Binaries are cached in ${MODELTEL_STACK_CACHE:-$HOME/.cache/modeltel-stack}/<versions-key>/bin, so a second
# run takes seconds. A cold run takes about 16 minutes and 5 GB of module downloads on 2 cores.
# The go commands' own output goes to <versions-key>/build.log; its tail is printed when a step fails.
#
#   build.sh                    build what is missing, then print the bin folder on the last line
#   build.sh --bin-dir          only print the bin folder (builds nothing)
#   build.sh --fleet [--bin-dir] the same for the fleet tier (`make e2e-fleet`): Alertmanager + amtool and
#                               Thanos, in a folder of their own (Thanos's go.mod asks for Go 1.26.10, so its
#                               build runs with GOTOOLCHAIN=go1.27.3, which the go command fetches from the
#                               module proxy)
set -euo pipefail

fleet=0
if [ "${1:-}" = "--fleet" ]; then
  fleet=1
  shift
fi

PROM_MODULE=github.com/prometheus/prometheus
PROM_VERSION=v0.315.0
PROM_RELEASE=3.15.0
JAEGER_MODULE=github.com/jaegertracing/jaeger
JAEGER_VERSION=v1.76.0
VLOGS_MODULE=github.com/VictoriaMetrics/VictoriaLogs
VLOGS_VERSION=v1.52.1
AM_MODULE=github.com/prometheus/alertmanager
AM_VERSION=v0.35.0
THANOS_MODULE=github.com/thanos-io/thanos
THANOS_VERSION=v0.42.5
THANOS_TOOLCHAIN=go1.27.3

goos=$(go env GOOS)
goarch=$(go env GOARCH)
key="prometheus-${PROM_RELEASE}_jaeger-${JAEGER_VERSION}_victorialogs-${VLOGS_VERSION}_${goos}-${goarch}"
want="prometheus promtool jaeger victoria-logs"
if [ $fleet = 1 ]; then
  key="fleet_alertmanager-${AM_VERSION}_thanos-${THANOS_VERSION}-slicelabels_${goos}-${goarch}"
  want="alertmanager amtool thanos"
fi
cache="${MODELTEL_STACK_CACHE:-$HOME/.cache/modeltel-stack}"
root="$cache/$key"
bin="$root/bin"

if [ "${1:-}" = "--bin-dir" ]; then
  echo "$bin"
  exit 0
fi

log() { printf '[build.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
start_all=$(date +%s)
mkdir -p "$bin"

# One build at a time per cache key: a second caller waits for the first (bounded) and then reuses its output.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$root/.lock"
  if ! flock -w 3600 9; then
    log "another build.sh holds $root/.lock for over an hour; giving up"
    exit 1
  fi
fi

work=""
cleanup() { if [ -n "$work" ] && [ -d "$work" ]; then chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; fi; }
trap cleanup EXIT

# fetch MODULE VERSION DEST: download the module zip through the proxy and copy its tree to a writable DEST.
fetch() {
  local module=$1 version=$2 dest=$3 json dir
  log "go mod download $module@$version"
  if ! json=$(cd "$work" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$module@$version" 2>>"$buildlog"); then
    log "go mod download failed; it said:"
    printf '%s\n' "$json" >&2
    tail -n 30 "$buildlog" >&2
    return 1
  fi
  dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    log "no module folder for $module@$version; go mod download said:"
    printf '%s\n' "$json" >&2
    return 1
  fi
  cp -R "$dir" "$dest"
  chmod -R u+w "$dest"
}

# gobuild SRC PKG NAME [LDFLAGS [TAGS]]: build PKG in SRC into a temporary file, then move it into bin
# atomically.
gobuild() {
  local src=$1 pkg=$2 name=$3 extra=${4:-} tags=${5:-} t0
  t0=$(date +%s)
  log "go build $pkg -> $bin/$name"
  if ! (cd "$src" && GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
    go build -trimpath -tags "$tags" -ldflags "-s -w $extra" -o "$work/$name.new" "$pkg") >>"$buildlog" 2>&1; then
    log "go build $pkg failed; last lines of $buildlog:"
    tail -n 50 "$buildlog" >&2
    return 1
  fi
  mv -f "$work/$name.new" "$bin/$name"
  log "built $name in $(( $(date +%s) - t0 ))s"
}

have() { [ -x "$bin/$1" ]; }

all_there() {
  local b
  for b in $want; do have "$b" || return 1; done
}
if all_there; then
  log "reusing $bin ($want)"
  echo "$bin"
  exit 0
fi

work=$(mktemp -d "$root/work.XXXXXX")
buildlog="$root/build.log"
: >"$buildlog"
log "building into $bin (work folder $work; go's output in $buildlog)"

if [ $fleet = 1 ]; then
  if ! have alertmanager || ! have amtool; then
    t0=$(date +%s)
    fetch "$AM_MODULE" "$AM_VERSION" "$work/alertmanager"
    # The module zip lacks the built web UI that ui/web.go embeds: a placeholder page (the API works).
    for ui in elm mantine; do
      mkdir -p "$work/alertmanager/ui/app/dist/$ui"
      echo '<!doctype html><title>Alertmanager</title><p>No web UI in this build; the API is at /api/v2.' \
        >"$work/alertmanager/ui/app/dist/$ui/index.html"
    done
    ver="-X github.com/prometheus/common/version.Version=${AM_VERSION#v}"
    have alertmanager || gobuild "$work/alertmanager" ./cmd/alertmanager alertmanager "$ver"
    have amtool || gobuild "$work/alertmanager" ./cmd/amtool amtool "$ver"
    log "alertmanager + amtool done in $(( $(date +%s) - t0 ))s"
  fi
  if ! have thanos; then
    t0=$(date +%s)
    # Its replace lines all name other module paths, so building in the module's own folder honours them.
    export GOTOOLCHAIN=$THANOS_TOOLCHAIN
    fetch "$THANOS_MODULE" "$THANOS_VERSION" "$work/thanos"
    # The tags of Thanos's own release build (.promu.yml): without slicelabels its unsafe casts between
    # Prometheus's labels and its protobuf labels read garbage, and receive panics on its first gRPC answer.
    gobuild "$work/thanos" ./cmd/thanos thanos "-X github.com/prometheus/common/version.Version=${THANOS_VERSION#v}" \
      "netgo slicelabels"
    unset GOTOOLCHAIN
    log "thanos done in $(( $(date +%s) - t0 ))s"
  fi
  "$bin/alertmanager" --version 2>&1 | head -n1 >&2
  "$bin/thanos" --version 2>&1 | head -n1 >&2
  log "fleet tier built in $(( $(date +%s) - start_all ))s"
  echo "$bin"
  exit 0
fi

if ! have prometheus || ! have promtool; then
  t0=$(date +%s)
  fetch "$PROM_MODULE" "$PROM_VERSION" "$work/prometheus"
  # The module zip holds a go.work naming folders it lacks: GOWORK=off (set in gobuild) ignores it.
  ver="-X github.com/prometheus/common/version.Version=$PROM_RELEASE"
  have prometheus || gobuild "$work/prometheus" ./cmd/prometheus prometheus "$ver"
  have promtool || gobuild "$work/prometheus" ./cmd/promtool promtool "$ver"
  log "prometheus + promtool done in $(( $(date +%s) - t0 ))s"
fi

if ! have jaeger; then
  t0=$(date +%s)
  fetch "$JAEGER_MODULE" "$JAEGER_VERSION" "$work/jaeger"
  gobuild "$work/jaeger" ./cmd/jaeger jaeger
  log "jaeger done in $(( $(date +%s) - t0 ))s"
fi

if ! have victoria-logs; then
  t0=$(date +%s)
  fetch "$VLOGS_MODULE" "$VLOGS_VERSION" "$work/victorialogs"
  gobuild "$work/victorialogs" ./app/victoria-logs victoria-logs
  log "victoria-logs done in $(( $(date +%s) - t0 ))s"
fi

"$bin/prometheus" --version 2>&1 | head -n1 >&2
"$bin/promtool" --version 2>&1 | head -n1 >&2
log "all built in $(( $(date +%s) - start_all ))s"
echo "$bin"
