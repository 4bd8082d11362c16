#!/usr/bin/env bash
# Run every test: cmocka unit binaries (build/tests/test_*) and integration
# scripts (tests/integration/*.sh).  A script exits 0 = pass, 77 = skip (its
# last line of output must say why), anything else = fail.  A unit binary that
# passes with cmocka tests skipped counts as a skip too.  Each test gets a time
# limit.  Skips are listed by name in the summary line; with CI=true (set by
# .ci/run) any skip fails the run: on CI every package and privilege the
# project needs is there, so a skip means a test did not run.  Running no test
# at all (an empty build dir, a FILTER that matches nothing) fails as well.
# Integration scripts start from one preamble, tests/lib.sh (build paths,
# a private temp dir, skip/fail/bad/ok, cleanup of what they start).
# Usage: tests/run.sh [BUILD_DIR] [FILTER]   (FILTER: substring of test names)
set -u
O=${1:-build}
FILTER=${2:-}
cd "$(dirname "$0")/.."
case $O in /*) B=$O ;; *) B=$PWD/$O ;; esac
export HAKMEM_BUILD="$B"
export HAKMEM_LIB="$B/libhakmem.so"
LOGDIR="$O/test-logs"
mkdir -p "$LOGDIR"
pass=0; fail=0; failed=(); skipped=()
case "${CI:-}" in true|TRUE|True|1|yes) on_ci=1 ;; *) on_ci=0 ;; esac

# The reason a test gave for skipping: the last non-empty line of its log.
skip_reason() { grep -v '^[[:space:]]*$' "$1" | tail -n 1; }

run_one() {   # name, timeout, command...
  local name=$1 limit=$2; shift 2
  [ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]] && return
  local log="$LOGDIR/${name//\//_}.log" t0=$SECONDS rc why=
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  local dt=$((SECONDS - t0))
  # cmocka's skip() leaves the binary's exit status 0: look at its report.
  if [ $rc -eq 0 ] && [[ "$name" == unit/* ]] && grep -q '^\[  SKIPPED \] [0-9]* test(s)' "$log"; then
    rc=77
    why="cmocka skipped: $(sed -n 's/^\[  SKIPPED \] \(test_[A-Za-z0-9_]*\).*/\1/p' "$log" | sort -u | tr '\n' ' ')"
  fi
  if [ $rc -eq 77 ]; then
    [ -n "$why" ] || why=$(skip_reason "$log")
    if [ -z "$why" ]; then
      fail=$((fail + 1)); failed+=("$name")
      printf 'FAIL  %-40s %3ss (exit 77 without saying why it skipped)\n' "$name" "$dt"
      return
    fi
    skipped+=("$name"); printf 'SKIP  %-40s %s\n' "$name" "$why"
  elif [ $rc -eq 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-40s %3ss\n' "$name" "$dt"
  else
    fail=$((fail + 1)); failed+=("$name")
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      printf 'FAIL  %-40s %3ss (exit %d: over the %ss limit)\n' "$name" "$dt" "$rc" "$limit"
    else
      printf 'FAIL  %-40s %3ss (exit %d)\n' "$name" "$dt" "$rc"
    fi
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

nskip=${#skipped[@]}
echo
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "logs: $LOGDIR/"
if [ "$nskip" -gt 0 ]; then
  echo "$pass passed, $fail failed, $nskip SKIPPED: ${skipped[*]}"
else
  echo "$pass passed, $fail failed, 0 skipped"
fi
rc=0
[ "$fail" -eq 0 ] || rc=1
if [ $((pass + fail + nskip)) -eq 0 ]; then
  echo "no test ran (build dir $O/tests empty${FILTER:+, or no test name contains '$FILTER'}): that is a failure"
  rc=1
fi
if [ "$nskip" -gt 0 ] && [ "$on_ci" -eq 1 ]; then
  echo "CI=${CI}: $nskip test(s) skipped; on CI nothing may skip (see the SKIP lines above for why)"
  rc=1
fi
exit $rc
