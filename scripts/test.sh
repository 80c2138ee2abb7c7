#!/usr/bin/env bash
# Runs the unit tests the way CI does and closes with one summary line:
#   tests: N passed, N failed, N skipped
# Extra arguments go to `go test` (default: -race -count=1 ./...).
set -uo pipefail
cd "$(dirname "$0")/.."
export CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}"
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
grep -E '^\s*--- SKIP' -A1 "$log" | grep -v -E '^\s*--- SKIP|^--$' | sed 's/^ */skip reason: /' | sort | uniq -c | head -20
echo "tests: ${pass} passed, ${fail} failed, ${skip} skipped"
exit $rc
