#!/usr/bin/env bash
# tests/fuzz/run.sh FUZZ_DIR SECONDS TARGET...
# For each target: replay its corpus tests/fuzz/corpus/<target>/ (seeds and
# regression inputs: must not crash), then fuzz it for SECONDS (0 = replay
# only).  Prints executions and seconds per target; exits 1 if anything
# crashed, timed out or ran out of memory (inputs kept in FUZZ_DIR/crashes/).
set -euo pipefail
dir=$1 secs=$2
shift 2
cd "$(dirname "$0")/../.."
status=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Counters in private memory: a crashing target must not leave /dev/shm/hakmem.<pid>
# behind (the library reads this at its constructor, before the fuzzer's init).
export HAKMEM_STATS=0
for t in "$@"; do
  bin=$dir/fuzz_$t corpus=tests/fuzz/corpus/$t work=$dir/work/$t crashes=$dir/crashes/$t
  mkdir -p "$work" "$crashes" "$corpus"
  log=$dir/fuzz_$t.log
  # libFuzzer's own error exit code is 77, which the test runner reads as "skip": map everything to 1.
  common=(-error_exitcode=1 -timeout_exitcode=1 -oom_exitcode=1 -timeout=20 -rss_limit_mb=4096
          -max_len=4096 -artifact_prefix="$crashes/" -print_final_stats=1)
  nseed=$(find "$corpus" -type f | wc -l)
  if ! "$bin" "${common[@]}" -runs=0 "$corpus" >"$log.replay" 2>&1; then
    echo "fuzz_$t: CRASH replaying the corpus ($nseed inputs); log: $log.replay"
    grep '^Running: ' "$log.replay" | tail -n 1 || true
    grep -E 'ERROR|check failed|runtime error|SUMMARY|invalid pointer|munmap_chunk|free\(\)|corrupted|Test unit written' \
      "$log.replay" | head -n 20 || true
    status=1
    continue
  fi
  if [ "$secs" -eq 0 ]; then
    echo "fuzz_$t: corpus of $nseed inputs replayed, no crash"
    continue
  fi
  t0=$SECONDS
  rc=0
  "$bin" "${common[@]}" -max_total_time="$secs" "$work" "$corpus" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
  echo "fuzz_$t: ${runs:-?} executions in $((SECONDS - t0)) s (${cov:-no coverage line}), corpus $nseed seeds + $(find "$work" -type f | wc -l) found, exit $rc"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz_$t: CRASH; log: $log"
    grep -E 'ERROR|check failed|runtime error|SUMMARY|invalid pointer|munmap_chunk|free\(\)|corrupted|Test unit written|timeout|out-of-memory' \
      "$log" | head -n 20 || true
    status=1
  fi
done
exit $status
