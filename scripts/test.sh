#!/usr/bin/env bash
# Runs the unit tests the way CI does and closes with one summary line:
#   tests: N passed, N failed, N skipped
# Extra arguments go to `go test` (default: -race -count=1 ./...).
# `scripts/test.sh --skip-reasons LOG` prints only the skip reasons of a saved
# `go test -v` log (scripts/testdata/skips.txt is the fixture its test reads).
set -uo pipefail
cd "$(dirname "$0")/.."
export CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}"

# skip_reasons LOG prints, for each skipped test in a `go test -v` log, the
# reason its t.Skip gave: the last log entry of that test before its
# "--- SKIP" line (parallel tests interleave: lines are attributed by the
# "=== RUN/CONT/NAME" markers), with its package, counted when repeated.
skip_reasons() {
  awk '
    function flush(pkg,   i) {
      for (i = 1; i <= n; i++) print "skip reason: " (pkg == "" ? "" : pkg ": ") pending[i]
      n = 0
      delete last
    }
    /^=== (RUN|CONT|NAME|PAUSE) / { cur = $3; cont = 0; next }
    /^ *--- SKIP: / {
      name = $3
      pending[++n] = (name in last) ? last[name] : "(no reason given) " name
      cont = 0; next
    }
    /^ *--- / { cont = 0; next }
    /^ +[^ ]+\.go:[0-9]+: / { sub(/^ +/, ""); last[cur] = $0; cont = 1; next }
    /^ +/ && cont { sub(/^ +/, " "); last[cur] = last[cur] $0; next }
    /^(ok|FAIL|\?) +[^ ]+/ { p = $2; sub(/^github\.com\/modeltel\/modeltel\/?/, "", p); flush(p == "" ? "." : p) }
    { cont = 0 }
    END { flush("") }
  ' "$1" | sort | uniq -c | sort -rn | head -20
}

if [ "${1:-}" = "--skip-reasons" ]; then
  skip_reasons "$2"
  exit 0
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-race -count=1 ./...)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -v "${args[@]}" >"$log" 2>&1
rc=$?
# Packages and failures; the verbose log is printed only for failing tests.
grep -E '^(ok|FAIL|---|\?|panic:|# )' "$log" | grep -v -E '^--- (PASS|SKIP)' || true
if [ $rc -ne 0 ]; then
  echo "---- output of failing packages ----"
  awk '/^=== RUN/{buf=""} {buf=buf $0 "\n"} /^--- FAIL/{printf "%s", buf; buf=""}' "$log" | tail -n 300
  grep -E '^(panic:|fatal error:|.*\.go:[0-9]+:[0-9]+:)' "$log" | head -50
fi
pass=$(grep -c -E '^\s*--- PASS' "$log")
fail=$(grep -c -E '^\s*--- FAIL' "$log")
skip=$(grep -c -E '^\s*--- SKIP' "$log")
skip_reasons "$log"
echo "tests: ${pass} passed, ${fail} failed, ${skip} skipped"
exit $rc
