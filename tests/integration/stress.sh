#!/usr/bin/env bash
# Stress, fork and seed programs under LD_PRELOAD=libhakmem.so (tests/progs):
#   stress    4 threads, random large/small sizes, class boundaries, 2 MiB,
#             realloc across 64 KiB, calloc zeroing, alignments up to 4 MiB,
#             cross-thread frees, content checks, live telemetry snapshots;
#             then the same with HAKMEM_RING_CAP=0, HAKMEM_BATCH_THRESHOLD=64K,
#             HAKMEM_THP=never, HAKMEM_MODE=off, a cold churn of 64 KiB blocks
#             with RING_CAP=0 and a 1 GiB threshold (Batch's pending list fills
#             while flushes run), and 140 threads (shared counter slot);
#   forktest  forks while threads allocate; child segments checked from outside;
#   seed      1000 alloc/free of 2 MiB blocks: Batch adds, flushes, coalescing.
# Each run has a time limit (a hang is a failure).  Processes that exited must
# leave no /dev/shm/hakmem.<pid> behind (checked in a private /dev/shm when the
# script can unshare a mount namespace, i.e. as root).
# Seeds: STRESS_SEED (default 1).  Exit 0 pass, 1 fail.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
LIB=${HAKMEM_LIB:-$ROOT/build/libhakmem.so}
BUILD=${HAKMEM_BUILD:-$ROOT/build}
PROGS=$BUILD/tests/progs
[ -f "$LIB" ] || { echo "stress: $LIB missing: run make"; exit 1; }
for p in stress forktest seed; do
  [ -x "$PROGS/$p" ] || { echo "stress: $PROGS/$p missing: run make test-build"; exit 1; }
done

# The knobs are the ones each run sets, not whatever the caller's environment holds.
for v in $(compgen -e | grep '^HAKMEM_' || true); do
  case $v in HAKMEM_LIB|HAKMEM_BUILD|HAKMEM_TEST_SHM_NS) ;; *) unset "$v" ;; esac
done

# A private /dev/shm (own mount namespace): segments left behind are exactly ours.
if [ -z "${HAKMEM_TEST_SHM_NS:-}" ]; then
  if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    export HAKMEM_TEST_SHM_NS=1
    exec unshare -m bash -c 'mount -t tmpfs -o mode=1777,size=64m hakmem-test /dev/shm 2>/dev/null ||
                              export HAKMEM_TEST_SHM_NS=shared; exec bash "$0" "$@"' "$0" "$@"
  fi
  export HAKMEM_TEST_SHM_NS=shared
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-stress.XXXXXX")
trap 'rm -rf "$T"' EXIT
SEED=${STRESS_SEED:-1}
failed=()
SECONDS=0
ok()  { printf 'ok    %-58s [%3ds]\n' "$*" $SECONDS; }
bad() { printf 'FAIL  %s [%3ds]\n' "$*" $SECONDS; failed+=("$1"); }

# run NAME LIMIT ENV... -- PROG ARGS...   (output in $T/NAME.log)
run() {
  local name=$1 limit=$2; shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local rc=0
  timeout -k 5 "$limit" env "${envs[@]}" LD_PRELOAD="$LIB" "$@" >"$T/$name.log" 2>&1 || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    bad "$name" "no result within ${limit}s (hang or deadlock): ${envs[*]} $*"; tail -5 "$T/$name.log" | sed 's/^/      | /'
    return 1
  elif [ $rc -ne 0 ]; then
    bad "$name" "exit $rc: ${envs[*]} $*"; tail -15 "$T/$name.log" | sed 's/^/      | /'
    return 1
  fi
  return 0
}
# figure NAME KEY: value of KEY=... in the "hakmem:" line of the log
figure() { grep -E '^hakmem: ' "$T/$1.log" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
# expect NAME "description" test-expression (evaluated with the figures in scope)
expect() {
  local name=$1 what=$2 expr=$3
  if eval "$expr"; then return 0; fi
  bad "$name" "$what ($(grep -E '^hakmem: ' "$T/$name.log" | cut -c1-200))"
  return 1
}
summary() { grep -E '^stress: [0-9]+ ops' "$T/$1.log" | sed 's/ (.*//; s/stress: //'; }

stress_variant() {   # name seconds env... -- extra args...
  local name=$1 secs=$2; shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  run "$name" $((secs + 60)) "${envs[@]}" -- "$PROGS/stress" -d "$secs" -s "$SEED" "$@" || return 1
  if ! grep -qx 'stress: OK' "$T/$name.log"; then bad "$name" "no 'stress: OK' line"; return 1; fi
  local la hits flushes munmap ranges madvise
  la=$(figure "$name" large_allocs); hits=$(figure "$name" hits); flushes=$(figure "$name" flushes)
  munmap=$(figure "$name" munmap); ranges=$(figure "$name" ranges); madvise=$(figure "$name" madvise)
  case "$name" in
    stress-mode-off)
      expect "$name" "HAKMEM_MODE=off must pass everything to glibc" '[ "$la" = 0 ]' || return 1 ;;
    *)
      expect "$name" "hakmem served no large allocation" '[ "${la:-0}" -gt 0 ]' || return 1
      expect "$name" "munmap outside Batch" '[ "$munmap" = "$ranges" ]' || return 1 ;;
  esac
  case "$name" in
    stress-ring0|stress-churn-batch-list)
      expect "$name" "HAKMEM_RING_CAP=0 must never hit the cache" '[ "$hits" = 0 ] && [ "$flushes" -gt 0 ]' || return 1 ;;
    stress-warm-rescue)
      expect "$name" "ring cap 0, 1 GiB threshold: misses must be served from Batch" \
        '[ "$hits" = 0 ] && [ "$(figure "$name" rescued)" -gt 0 ]' || return 1 ;;
    stress-batch64k)
      expect "$name" "a 64 KiB threshold must flush" '[ "$flushes" -gt 0 ]' || return 1 ;;
    stress-thp-never)
      # the one madvise allowed: MADV_DONTNEED of a lent block's unused tail
      expect "$name" "HAKMEM_THP=never must not madvise but for released tails" \
        '[ "$madvise" = "$(figure "$name" lent_tails)" ]' || return 1 ;;
    stress-default)
      expect "$name" "default knobs: no cache hit or no flush" '[ "$hits" -gt 0 ] && [ "$flushes" -gt 0 ]' || return 1 ;;
  esac
  local mis
  mis=$(grep -oE 'thp_misaligned=[0-9]+' "$T/$name.log" | cut -d= -f2)
  ok "$name: $(summary "$name")"
  [ "${mis:-0}" = 0 ] || echo "note  $name: $mis malloc/calloc blocks >= 2 MiB were not 2 MiB-aligned (THP lost)"
}

echo "hakmem: $LIB (seed $SEED)"
stress_variant stress-default 8 -- -t 4 || true
stress_variant stress-ring0 4 HAKMEM_RING_CAP=0 -- -t 4 || true
stress_variant stress-batch64k 4 HAKMEM_BATCH_THRESHOLD=64K -- -t 4 || true
stress_variant stress-thp-never 4 HAKMEM_THP=never -- -t 4 || true
stress_variant stress-mode-off 3 HAKMEM_MODE=off -- -t 4 || true
# no warm reuse: every block goes through the pending list until it is full
stress_variant stress-churn-batch-list 4 HAKMEM_RING_CAP=0 HAKMEM_BATCH_THRESHOLD=1G HAKMEM_WARM_REUSE=0 -- -C -t 6 -x 64 -m 16 || true
stress_variant stress-warm-rescue 4 HAKMEM_RING_CAP=0 HAKMEM_BATCH_THRESHOLD=1G -- -C -t 6 -x 64 -m 16 || true
stress_variant stress-140-threads 2 -- -t 140 -m 16 -x 2048 || true

if run forktest 90 -- "$PROGS/forktest" -f 8 -t 3 -s "$SEED"; then
  if grep -q '^forktest: OK' "$T/forktest.log"; then
    ok "forktest: $(grep -c '^fork ' "$T/forktest.log") forks checked; $(grep '^parent:' "$T/forktest.log" | cut -c1-80)"
  else
    bad forktest "no 'forktest: OK' line"; tail -5 "$T/forktest.log"
  fi
fi

# the ring + Batch path of the original design: no front cache in front of the rings
if run seed 60 HAKMEM_TCACHE_MAX_BYTES=0 -- "$PROGS/seed"; then
  sed 's/^/      /' "$T/seed.log"
  if grep -qx 'seed: OK' "$T/seed.log"; then ok "seed: Batch adds, flushes and coalesced munmaps as expected"
  else bad seed "no 'seed: OK' line"; fi
fi

# Every process above has exited: none may have left its segment behind
# (only meaningful when every run exited normally).
leaks=""
if [ "$HAKMEM_TEST_SHM_NS" = 1 ] && [ ${#failed[@]} -eq 0 ]; then
  env LD_PRELOAD="$LIB" true    # removed at exit, or swept by the next hakmem process
  for f in /dev/shm/hakmem.*; do [ -e "$f" ] && leaks+=" ${f##*/}"; done
  if [ -z "$leaks" ]; then ok "no telemetry segment left behind"
  else bad segments "segments left behind by exited processes:$leaks"; fi
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "stress: FAILED: ${failed[*]} (rerun a program by hand with the command shown, under LD_PRELOAD)"
  exit 1
fi
echo "stress: all runs passed"
