#!/usr/bin/env bash
# Sanitizer and valgrind runs of the allocator core, linked directly (never
# preloaded: a sanitizer runtime must be the first malloc in the process).
#   1. SAN=address,undefined: every unit test, and the multi-thread stress
#      program tests/progs/mt_native (native API);
#   2. SAN=thread: every unit test, and mt_native (threads allocating in one
#      thread and freeing in another, threads exiting with cached blocks,
#      knob changes and control-block requests while churning, in-process
#      snapshots);
#   3. valgrind memcheck on every unit test of the normal build.
# Sanitizer builds go to $HAKMEM_BUILD/san-asan and $HAKMEM_BUILD/san-tsan.
# Exit 0 all clean, 1 any report or failure, 77 when a tool is missing (the
# available stages still run).  Bounded: about 2-3 minutes on 2 cores.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
STRESS_SECONDS=${STRESS_SECONDS:-8}
tmp=$T
# Instrumented runs are 5-50x slower: tests with timing thresholds may scale them.
export HAKMEM_TEST_SLOW=1
fail=0 missing=()

note() { printf '%s\n' "$*"; }
bad() { printf 'FAIL: %s\n' "$*"; fail=1; }

have_san() {   # can gcc build and run a program with -fsanitize=$1?
  printf 'int main(void){return 0;}\n' > "$tmp/t.c"
  ${CC:-cc} -fsanitize="$1" "$tmp/t.c" -o "$tmp/t" 2>/dev/null && "$tmp/t" 2>/dev/null
}

UNITS=()
for f in tests/unit/test_*.c; do UNITS+=("$(basename "$f" .c)"); done

build() {   # O SAN
  local o=$1 san=$2 targets=()
  for u in "${UNITS[@]}"; do targets+=("$o/tests/$u"); done
  targets+=("$o/tests/progs/mt_native")
  if ! make -j2 --no-print-directory O="$o" SAN="$san" "${targets[@]}" >"$tmp/build.log" 2>&1; then
    bad "build with SAN=$san"
    grep -E 'error|Error' "$tmp/build.log" | head -n 20
    return 1
  fi
}

run_units() {   # O LABEL [runner...]
  local o=$1 label=$2
  shift 2
  local n=0 t0=$SECONDS
  for u in "${UNITS[@]}"; do
    if "$@" "$o/tests/$u" >"$tmp/$label.$u.log" 2>&1; then
      n=$((n + 1))
    else
      bad "$label: $u"
      grep -E 'ERROR|WARNING|runtime error|SUMMARY|FAILED|Invalid|definitely|uninitialised|==[0-9]+== [A-Z]' \
        "$tmp/$label.$u.log" | head -n 30
      sed -n '1,200p' "$tmp/$label.$u.log" | grep -A12 -E '^(==[0-9]+==ERROR|WARNING: ThreadSanitizer|.*runtime error)' | head -n 40 || true
    fi
  done
  note "$label: $n/${#UNITS[@]} unit tests clean ($((SECONDS - t0)) s)"
}

run_stress() {   # O LABEL
  local o=$1 label=$2 t0=$SECONDS
  if "$o/tests/progs/mt_native" "$STRESS_SECONDS" 2 >"$tmp/$label.stress.log" 2>&1; then
    note "$label: $(grep '^mt_native:' "$tmp/$label.stress.log" | tail -n 1) ($((SECONDS - t0)) s)"
  else
    bad "$label: mt_native stress"
    grep -E 'FAIL|WARNING|ERROR|SUMMARY|runtime error' "$tmp/$label.stress.log" | sort | uniq -c | sort -rn | head -n 20
    grep -A14 -m 3 -E '^(==[0-9]+==ERROR|WARNING: ThreadSanitizer)' "$tmp/$label.stress.log" | head -n 60 || true
  fi
}

# ---- 1. AddressSanitizer + UndefinedBehaviorSanitizer ----
if have_san address,undefined; then
  O_ASAN=$B/san-asan
  if build "$O_ASAN" address,undefined; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    run_units "$O_ASAN" asan+ubsan
    run_stress "$O_ASAN" asan+ubsan
    unset ASAN_OPTIONS UBSAN_OPTIONS
  fi
else
  missing+=("gcc -fsanitize=address,undefined (libasan/libubsan)")
fi

# ---- 2. ThreadSanitizer ----
if have_san thread; then
  O_TSAN=$B/san-tsan
  if build "$O_TSAN" thread; then
    # Reports inside mt_native's user_mem_* functions are about the bytes of
    # blocks changing hands through mremap or glibc's arenas, which TSan cannot
    # see (see mt_native.c); the tags in the blocks check those instead.
    printf 'race:user_mem_\n' > "$tmp/tsan.supp"
    # die_after_fork=0: the death tests fork, and the child starts the background thread.
    # history_size=7 (the most): the suppression above matches the OLD access's stack too,
    # and a report whose old stack fell out of the history ("failed to restore the stack")
    # could not be matched, so a block's bytes changing hands failed the run now and then.
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0 history_size=7 suppressions=$tmp/tsan.supp"
    run_units "$O_TSAN" tsan
    run_stress "$O_TSAN" tsan
    unset TSAN_OPTIONS
  fi
else
  missing+=("gcc -fsanitize=thread (libtsan)")
fi

# ---- 3. valgrind memcheck on the normal build's unit tests ----
# HAKMEM_ARENA=0: memcheck leaves the pages a block mremap moves onto a
# reservation of its own (PROT_NONE) unaddressable, so a realloc moved into an
# arena reads as invalid there (test_arena still runs its arena: no realloc).
# HAKMEM_THP=never: valgrind places every mapping itself, never 2 MiB-aligned,
# so test_api's check that THP blocks are 2 MiB-aligned (a kernel placement
# property, not a memory error) cannot hold there.  test_faults runs again with
# HAKMEM_THP=always: its alignment checks must hold wherever mappings land.
# The radix leaves and metadata slabs are mmap'd and never freed by design;
# memcheck only tracks malloc'd memory, so they are not reported as leaks.
# --fair-sched=yes: valgrind runs one thread at a time; with its default lock a
# spinning thread (a seqlock reader) can starve the others for seconds.
# Only the test process itself is judged (its own log, ERROR SUMMARY: 0):
# forked children (death tests, killed writers) abort or exit holding
# resources on purpose.
vg_one() {   # LABEL ENV... -- PROGRAM
  local label=$1 envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local log="$tmp/vg.$label.%p" rc=0 pid
  env "${envs[@]}" valgrind --log-file="$log" --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --child-silent-after-fork=yes --fair-sched=yes "$@" >"$tmp/vg.$label.out" 2>&1 &
  pid=$!
  wait $pid || rc=$?
  local vlog="$tmp/vg.$label.$pid"
  if [ $rc -eq 0 ] && grep -q 'ERROR SUMMARY: 0 errors' "$vlog" 2>/dev/null; then
    return 0
  fi
  bad "valgrind: $label (exit $rc)"
  grep -E 'FAILED|ERROR  ' "$tmp/vg.$label.out" | head -n 10
  grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|.*definitely lost|   (at|by) )' "$vlog" 2>/dev/null | head -n 30
  return 1
}
if command -v valgrind >/dev/null; then
  have_units=1
  for u in "${UNITS[@]}"; do [ -x "$B/tests/$u" ] || have_units=0; done
  if [ $have_units -eq 0 ]; then
    rel=${B#"$PWD"/}
    make -j2 --no-print-directory O="$rel" $(for u in "${UNITS[@]}"; do printf '%s/tests/%s ' "$rel" "$u"; done) \
      >"$tmp/build-vg.log" 2>&1 || { bad "build of the unit tests for valgrind"; tail -n 20 "$tmp/build-vg.log"; }
  fi
  n=0 t0=$SECONDS
  for u in "${UNITS[@]}"; do
    # test_evolve and test_idle_tick re-execute themselves with their options
    # unless they are set (an exec that valgrind cannot follow): give them
    extra=()
    [ "$u" = test_evolve ] && extra=(HAKMEM_MODE=evolving HAKMEM_TUNE_INTERVAL_MS=60000 HAKMEM_RING_CAP=0 HAKMEM_STATS=1)
    [ "$u" = test_idle_tick ] && extra=(HAKMEM_MODE=evolving HAKMEM_TUNE_INTERVAL_MS=20 HAKMEM_IDLE_MS=100 HAKMEM_STATS=1)
    vg_one "$u" HAKMEM_THP=never HAKMEM_ARENA=0 "${extra[@]}" -- "$B/tests/$u" && n=$((n + 1))
  done
  note "valgrind: $n/${#UNITS[@]} unit tests clean ($((SECONDS - t0)) s)"
  if [ -x "$B/tests/test_faults" ] && vg_one test_faults-thp HAKMEM_THP=always HAKMEM_ARENA=0 -- "$B/tests/test_faults"; then
    note "valgrind: test_faults clean with HAKMEM_THP=always"
  fi
else
  missing+=("valgrind")
fi

if [ $fail -ne 0 ]; then
  echo "sanitizers: FAILED"
  exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "sanitizers: skipped stages: missing ${missing[*]}"
  exit 77
fi
echo "sanitizers: asan+ubsan, tsan and valgrind clean"
