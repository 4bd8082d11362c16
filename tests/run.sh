#!/usr/bin/env bash
# Run every test: cmocka unit binaries (build/tests/test_*) and integration
# scripts (tests/integration/*.sh).  A script exits 0 = pass, 77 = skip (it must
# print why), anything else = fail.  Each test gets a time limit.
# Usage: tests/run.sh [BUILD_DIR] [FILTER]   (FILTER: substring of test names)
set -u
O=${1:-build}
FILTER=${2:-}
cd "$(dirname "$0")/.."
export HAKMEM_BUILD="$PWD/$O"
export HAKMEM_LIB="$PWD/$O/libhakmem.so"
LOGDIR="$O/test-logs"
mkdir -p "$LOGDIR"
pass=0; fail=0; skip=0; failed=()

run_one() {   # name, timeout, command...
  local name=$1 limit=$2; shift 2
  [ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]] && return
  local log="$LOGDIR/${name//\//_}.log" t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  local dt=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-40s %3ss\n' "$name" "$dt"
  elif [ $rc -eq 77 ]; then
    skip=$((skip + 1)); printf 'SKIP  %-40s %s\n' "$name" "$(tail -n 1 "$log")"
  else
    fail=$((fail + 1)); failed+=("$name")
    printf 'FAIL  %-40s %3ss (exit %d)\n' "$name" "$dt" "$rc"
    sed 's/^/      | /' "$log" | tail -n 40
  fi
}

for t in "$O"/tests/test_*; do
  [ -x "$t" ] || continue
  run_one "unit/$(basename "$t")" 300 "$t"
done
for s in tests/integration/*.sh; do
  [ -f "$s" ] || continue
  run_one "integration/$(basename "$s" .sh)" 900 bash "$s"
done

echo
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "logs: $LOGDIR/"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
