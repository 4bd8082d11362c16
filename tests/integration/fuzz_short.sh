#!/usr/bin/env bash
# A short, bounded fuzzing round (the long one is `make fuzz FUZZ_SECONDS=N`):
# builds the libFuzzer targets of tests/fuzz/ with clang
# -fsanitize=fuzzer,address,undefined, replays every corpus file (seeds and
# the regression inputs of crashes found so far), then fuzzes each target for
# FUZZ_SHORT_SECONDS (default 20).  Fails on any crash; the crashing input is
# left in $HAKMEM_BUILD/fuzz/crashes/<target>/.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
SECS=${FUZZ_SHORT_SECONDS:-20}
tmp=$T

printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$tmp/t.c"
if ! command -v clang >/dev/null || ! clang -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" 2>"$tmp/err" ||
   ! "$tmp/t" -runs=1 >/dev/null 2>&1; then
  head -n 3 "$tmp/err" 2>/dev/null || true
  echo "fuzz_short: skipped: clang with libFuzzer (-fsanitize=fuzzer, package libclang-rt-14-dev) is not available"
  exit 77
fi

O=${B#"$PWD"/}
if ! make --no-print-directory O="$O" fuzz-build >"$tmp/build.log" 2>&1; then
  grep -E 'error|Error' "$tmp/build.log" | head -n 20
  echo "fuzz_short: build failed"
  exit 1
fi
targets=$(ls tests/fuzz/fuzz_*.c | sed 's|tests/fuzz/fuzz_\(.*\)\.c|\1|')
if bash tests/fuzz/run.sh "$B/fuzz" "$SECS" $targets; then
  echo "fuzz_short: no crash ($SECS s per target)"
else
  echo "fuzz_short: crash found (see above; add the input to tests/fuzz/corpus/<target>/ once fixed)"
  exit 1
fi
