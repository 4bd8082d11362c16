#!/usr/bin/env bash
# tests/integration/bpftrace_attach.sh - bpf/flushes.bt attached to a process
# that is already running and flushing (not started stopped): its totals must
# agree exactly, @munmap_calls_kernel == @munmap_calls_lib, however the attach
# and the detach fall between flushes.
#
#   1. tests/progs/churn (2 threads, 256 KiB blocks of varied sizes, batch
#      threshold 1 MiB: hundreds of flushes per second) runs under
#      libhakmem.so;
#   2. three times: `bpftrace -p PID bpf/flushes.bt PID 2` attaches to it and
#      exits by itself after 2 s; the two counters are equal and non-zero,
#      windows were counted, and at least one line per counted flush printed;
#   3. once more stopped by SIGINT (Ctrl-C) instead of the deadline: still equal.
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u -o pipefail
. "$(dirname "$0")/../lib.sh"
CHURN=$PROGS/churn
SCRIPT=$ROOT/bpf/flushes.bt

need_file "$LIB"
need_exe "$CHURN"
need_cmd bpftrace bpftrace
need_cmd python3 python3
[ "$(id -u)" -eq 0 ] || skip "bpftrace needs root"
readelf -n "$LIB" 2>/dev/null | grep -q batch_flush_begin || skip "libhakmem.so has no USDT probes (systemtap-sdt-dev)"
TMP=$T

bg env HAKMEM_BATCH_THRESHOLD=1M LD_PRELOAD="$LIB" "$CHURN" -n 48 -s 256K -r 100000000 -t 2 --vary -q \
  >"$TMP/churn.out" 2>&1
WPID=$!
for _ in $(seq 200); do [ -e "/dev/shm/hakmem.$WPID" ] && break; sleep 0.01; done
[ -e "/dev/shm/hakmem.$WPID" ] || fail "no segment for churn"
sleep 0.5   # flushing well before the attach
kill -0 "$WPID" 2>/dev/null || { cat "$TMP/churn.out"; fail "churn exited"; }

check() {   # output-file what
  python3 - "$1" "$2" <<'EOF'
import re, sys
path, what = sys.argv[1], sys.argv[2]
out = open(path).read().splitlines()
def val(name):
    m = [l for l in out if l.startswith("@%s:" % name)]
    return int(m[0].split(":")[1]) if m else 0
k, l, n = val("munmap_calls_kernel"), val("munmap_calls_lib"), val("windows_counted")
rows = [x.split() for x in out if re.match(r"^\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\|", x)]
print("%s: @munmap_calls_kernel %d, @munmap_calls_lib %d, %d windows counted, %d skipped, %d lines" %
      (what, k, l, n, val("windows_skipped"), len(rows)))
if k != l:
    print("FAIL: %s: @munmap_calls_kernel %d != @munmap_calls_lib %d" % (what, k, l)); sys.exit(1)
if what.startswith("deadline") and (k == 0 or n == 0):
    print("FAIL: %s: nothing counted in 2 s of flushing" % what); sys.exit(1)
# A line per counted window.  bpftrace prints them from its output buffer;
# when SIGINT or the script's own exit() at the deadline stops it, the last few
# may still be in that buffer and are not printed (4056 lines for 4059 windows
# seen on CI after SIGINT, 4175 for 4177 at the deadline), while the counters,
# which END prints from maps, stay exact (checked above): a deficit of at most
# 1% of the lines is allowed.
slack = max(8, n // 100)
if len(rows) < n - slack:
    print("FAIL: %s: %d lines for %d counted windows" % (what, len(rows), n)); sys.exit(1)
EOF
}

for i in 1 2 3; do
  timeout 120 bpftrace -p "$WPID" "$SCRIPT" "$WPID" 2 >"$TMP/bt.$i.out" 2>"$TMP/bt.$i.err"
  rc=$?
  [ $rc -eq 0 ] || { grep -v RLIMIT_MEMLOCK "$TMP/bt.$i.err" | head -5; fail "bpftrace exited $rc (try $i)"; }
  grep -q "^Tracing hakmem flushes of pid $WPID" "$TMP/bt.$i.out" || fail "no banner (try $i)"
  check "$TMP/bt.$i.out" "deadline, try $i" || { tail -30 "$TMP/bt.$i.out"; fail "counts differ (try $i)"; }
  kill -0 "$WPID" 2>/dev/null || fail "churn died while traced"
done
ok "attached 3 times to a running process: kernel and library munmap counts equal"

# Ctrl-C: bpftrace detaches its probes one by one; the counts still agree
timeout -s INT 6 bpftrace -p "$WPID" "$SCRIPT" "$WPID" >"$TMP/bt.int.out" 2>"$TMP/bt.int.err"
grep -q "^Tracing hakmem flushes of pid $WPID" "$TMP/bt.int.out" || { cat "$TMP/bt.int.err"; fail "no banner (SIGINT)"; }
check "$TMP/bt.int.out" "SIGINT" || { tail -30 "$TMP/bt.int.out"; fail "counts differ after SIGINT"; }
ok "stopped by SIGINT: kernel and library munmap counts equal"
finish
