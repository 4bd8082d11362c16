#!/usr/bin/env bash
# segment_shrink.sh - a segment truncated while a tool has it mapped is a
# "truncated segment" for that tool (README: the SIGBUS is caught), not a
# crash: hakmem-tuner recording it (and then its other runs) and hakmem-probe
# cross-checking it; and a corrupt decision-log head does not hang the tuner.  A paused churn under LD_PRELOAD holds a real segment;
# the test truncates it under the tool, then puts it back.
# Exit 0 pass, 77 skip (reason on the last line), else fail.
set -u
. "$(dirname "$0")/../lib.sh"
TUNER=$B/hakmem-tuner
PROBE=$B/hakmem-probe
CHURN=$PROGS/churn
need_exe "$TUNER" make
need_exe "$CHURN"
[ -f "$LIB" ] || fail "$LIB missing (make)"
[ -d /dev/shm ] && [ -w /dev/shm ] || skip "no writable /dev/shm"

env HAKMEM_MODE=fixed HAKMEM_STATS=1 LD_PRELOAD="$LIB" "$CHURN" --pause --phases 2 -r 4 >"$T/churn.out" 2>&1 &
C=$!
SEG=/dev/shm/hakmem.$C
at_exit kill -9 "$C"
at_exit rm -f "$SEG"
for _ in $(seq 1 400); do grep -q "^paused 1 " "$T/churn.out" && break; sleep 0.05; done
grep -q "^paused 1 " "$T/churn.out" || { cat "$T/churn.out"; fail "churn never paused"; }
[ -f "$SEG" ] || fail "churn has no segment at $SEG"
cp "$SEG" "$T/seg"

# shrink_under OUT SECONDS CMD...: run CMD, truncate the segment under it
# after SECONDS, wait; rc = its exit status, which must not be SIGBUS's
shrink_under() {
  local out=$1 secs=$2 p
  shift 2
  "$@" >"$out" 2>&1 &
  p=$!
  sleep "$secs"
  truncate -s 4096 "$SEG"
  rc=0; wait "$p" || rc=$?
  [ "$rc" -ne 135 ] || { cat "$out"; fail "$(basename "$1") died of SIGBUS (exit 135)"; }
}

# hakmem-tuner: the run ends as "truncated segment"; the daemon does not die.
shrink_under "$T/tuner.out" 1 "$TUNER" --db "$T/h.db" -p "$C" -i 0.1 -d 4
grep -q "pid $C: truncated segment" "$T/tuner.out" || { cat "$T/tuner.out"; fail "hakmem-tuner did not say 'truncated segment'"; }
grep -q "run 1 ended (truncated segment)" "$T/tuner.out" || { cat "$T/tuner.out"; fail "hakmem-tuner did not end the run"; }
echo "hakmem-tuner: exit $rc, $(grep -c . "$T/tuner.out") lines, the run ended as truncated"

# hakmem-probe (root and eBPF only): the cross-check says the segment is truncated.
cp "$T/seg" "$SEG"
if [ -x "$PROBE" ] && [ "$(id -u)" -eq 0 ] && "$PROBE" --check >/dev/null 2>&1; then
  shrink_under "$T/probe.out" 1.5 "$PROBE" -p "$C" -P -d 3
  grep -q "unavailable: truncated segment" "$T/probe.out" || { cat "$T/probe.out"; fail "hakmem-probe did not say 'truncated segment'"; }
  echo "hakmem-probe: exit $rc, the library's counters 'unavailable: truncated segment'"
else
  echo "hakmem-probe: not checked (not built, not root, or no eBPF here)"
fi
# A corrupt decision log head (near UINT64_MAX, written while the tuner
# records) must not make the tuner loop for ever: it ends at -d as asked.
cp "$T/seg" "$SEG"
need_cmd cc gcc
printf '#include <stddef.h>\n#include <stdio.h>\n#include "hakmem/shm.h"\nint main(void){printf("%%zu\\n", offsetof(hak_shm_t, decision_head));return 0;}\n' >"$T/off.c"
cc -Iinclude -o "$T/off" "$T/off.c" || fail "cannot compile the offset probe"
OFF=$("$T/off")
timeout -k 2 20 "$TUNER" --db "$T/h2.db" -p "$C" -i 0.1 -d 2 >"$T/tuner2.out" 2>&1 &
TP=$!
sleep 0.6
python3 - "$SEG" "$OFF" <<'PY'
import os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, struct.pack("<Q", (1 << 64) - 1), int(sys.argv[2]))
os.close(fd)
PY
rc=0; wait "$TP" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/tuner2.out"; fail "hakmem-tuner with decision_head = UINT64_MAX: exit $rc (124/137: it hung)"; }
echo "hakmem-tuner: decision_head = UINT64_MAX written mid-run, ended at -d 2 (exit 0)"
echo "segment_shrink: ok"
