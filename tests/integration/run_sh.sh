#!/usr/bin/env bash
# tests/run.sh itself: against a scratch build dir of fake unit tests (a pass,
# a skip with a reason, a cmocka skip, a skip without a reason, a failure) it
# must name every skip in the summary line, print why each one skipped, count a
# silent skip as a failure, and exit non-zero on a skip when CI=true (0 without
# CI when nothing failed).  A FILTER that matches nothing must fail too.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

mkdir -p "$T/tests"
fake() {   # name, body
  printf '#!/bin/sh\n%s\n' "$2" > "$T/tests/$1"
  chmod +x "$T/tests/$1"
}
fake test_fake_pass   'echo fine; exit 0'
fake test_fake_skip   'echo "needs a frobnicator (apt-get install frob)"; echo; exit 77'
fake test_fake_cmocka 'echo "[  SKIPPED ] test_needs_shm"; echo "[  PASSED  ] 1 test(s)."; echo "[  SKIPPED ] 1 test(s), listed below:"; echo "[  SKIPPED ] test_needs_shm"; exit 0'

run() {   # CI value, filter -> $out, $rc
  out=$(CI=$1 bash tests/run.sh "$T" "$2" 2>&1); rc=$?
}

# 1. skips only: visible, reasons printed, exit 0 off CI, non-zero on CI
run false fake_
summary=$(printf '%s\n' "$out" | grep 'passed, ')
[ "$summary" = "1 passed, 0 failed, 2 SKIPPED: unit/test_fake_cmocka unit/test_fake_skip" ] ||
  bad "summary line off CI: '$summary'"
[ $rc -eq 0 ] || bad "skips without CI: exit $rc, want 0"
printf '%s\n' "$out" | grep -q '^SKIP  unit/test_fake_skip .*needs a frobnicator' || bad "skip reason not printed"
printf '%s\n' "$out" | grep -q '^SKIP  unit/test_fake_cmocka .*test_needs_shm' || bad "cmocka skip not named"
run true fake_
[ $rc -ne 0 ] || bad "CI=true with skips: exit 0, want non-zero"
printf '%s\n' "$out" | grep -q 'nothing may skip' || bad "CI=true: no message about the skips"
run true fake_pass
[ $rc -eq 0 ] || bad "CI=true with nothing skipped: exit $rc, want 0"

# 2. a skip that gives no reason is a failure; a failure is a failure
fake test_fake_silent 'exit 77'
fake test_fake_fail 'echo broken; exit 3'
run false fake_
summary=$(printf '%s\n' "$out" | grep 'passed, ')
[ "$summary" = "1 passed, 2 failed, 2 SKIPPED: unit/test_fake_cmocka unit/test_fake_skip" ] ||
  bad "summary with failures: '$summary'"
[ $rc -ne 0 ] || bad "failures: exit 0"
printf '%s\n' "$out" | grep -q '^FAIL  unit/test_fake_silent .*without saying why' || bad "silent skip not failed"

# 3. nothing ran
run false no_such_test_name
[ $rc -ne 0 ] || bad "a FILTER matching nothing: exit 0"

[ $fails -eq 0 ] || { printf '%s\n' "--- last run.sh output:" "$out"; exit 1; }
echo "run_sh: ok"
