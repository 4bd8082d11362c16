#!/usr/bin/env bash
# No surprise threads (DESIGN.md item 15): in fixed mode with a published
# segment a program stays single-threaded, so unshare(CLONE_NEWUSER) works as
# it does under glibc; HAKMEM_BACKGROUND_THREAD=1 asks for the thread (and then
# unshare fails, which shows the probe can fail); evolving mode runs one, which
# blocks every signal (signal_probe).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
P=$PROGS/unshare_probe
need_exe "$P"

# The reference: under glibc alone unshare(CLONE_NEWUSER) must work here.
if ! "$P" >/dev/null 2>&1; then
  echo "threads: unshare(CLONE_NEWUSER) fails even without hakmem here ($("$P" 2>&1 || true))"
  exit 77
fi

for mode in fixed off; do
  out=$(HAKMEM_MODE=$mode HAKMEM_STATS=1 LD_PRELOAD=$LIB "$P" 2>&1) || fail "mode $mode: $out"
done
# with the segment private, too
out=$(HAKMEM_STATS=0 LD_PRELOAD=$LIB "$P" 2>&1) || fail "stats=0: $out"

# Asked for: a thread exists, so the same probe fails (exit 1: two threads).
rc=0; HAKMEM_MODE=fixed HAKMEM_BACKGROUND_THREAD=1 LD_PRELOAD=$LIB "$P" >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "HAKMEM_BACKGROUND_THREAD=1: probe exit $rc, want 1 (a second thread)"
rc=0; HAKMEM_MODE=evolving LD_PRELOAD=$LIB "$P" >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "evolving: probe exit $rc, want 1 (the tuner thread)"
# The allocator's thread blocks every signal: one the program blocks and
# reads (signalfd, sigwait) must reach it, not end the process in that thread.
S=$PROGS/signal_probe
need_exe "$S"
for env in "HAKMEM_MODE=evolving" "HAKMEM_MODE=fixed HAKMEM_BACKGROUND_THREAD=1"; do
  rc=0; out=$(env $env LD_PRELOAD=$LIB "$S" --want-thread 2>&1) || rc=$?
  [ "$rc" = 0 ] || fail "$env: signal probe exit $rc (143: killed by the SIGTERM it blocked): $out"
done
out=$(HAKMEM_MODE=fixed LD_PRELOAD=$LIB "$S" 2>&1) || fail "fixed: signal probe: $out"
echo "threads: ok"
