#!/usr/bin/env bash
# Security of the telemetry segment /dev/shm/hakmem.<pid>:
#   1. a live process's segment is a regular file, mode 0600, owned by the
#      process's user, of the layout's size; another (unprivileged) user cannot
#      open it;
#   2. readers refuse what is not that: a segment created by another uid for
#      the pid, a symlink in its place, mode 0644, a truncated segment, a size
#      field larger than the file, another layout version, a foreign file, a
#      segment naming another pid;
#   3. control values out of range posted into a live process's control block
#      are clamped (knobs read back) and counted as rejected; the process keeps
#      working;
#   4. hostile segments (random bytes behind a valid header, huge nclasses,
#      generations odd forever, a live writer scribbling generations and
#      counters) cannot make a reader crash or hang: a clean error in bounded
#      time.
# Readers: tests/progs/shm_probe (the reader API of hakmem/shm.h) always, and
# $HAKMEM_BUILD/hakmem-stat when it is built (exit codes from its --help).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
PROBE=$B/tests/progs/shm_probe
LIVE_PROG=$B/tests/progs/fault_preload
STAT=$B/hakmem-stat
for f in "$PROBE" "$LIVE_PROG"; do [ -x "$f" ] || { echo "security: $f missing (make test-build)"; exit 1; }; done
[ -x "$STAT" ] || STAT=
tmp=$T
pids=() shmfiles=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "${shmfiles[@]}"; do rm -f "$f"; done
}
at_exit cleanup
fail=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; fail=1; }

# the programs must be runnable by unprivileged users too
chmod 755 "$tmp"
cp "$PROBE" "$LIVE_PROG" "$LIB" "$tmp/"
chmod 755 "$tmp"/*
PROBE_U=$tmp/shm_probe

ms() { date +%s%3N; }
# probe WHO ARGS... -> sets RC (exit status), OUT, DT (ms); WHO = root or a uid
probe() {
  local who=$1 t0
  shift
  t0=$(ms)
  RC=0
  if [ "$who" = root ]; then
    OUT=$(timeout 10 "$PROBE_U" "$@" 2>&1) || RC=$?
  else
    OUT=$(timeout 10 setpriv --reuid="$who" --regid="$who" --clear-groups "$PROBE_U" "$@" 2>&1) || RC=$?
  fi
  DT=$(($(ms) - t0))
}
# hstat ARGS... -> sets SRC, SOUT, SDT
hstat() {
  local t0
  t0=$(ms)
  SRC=0
  SOUT=$(timeout 10 "$STAT" "$@" 2>&1) || SRC=$?
  SDT=$(($(ms) - t0))
}
# expect_refused CASE PID PROBE_CODE STAT_CODE: both readers refuse with these codes, fast, no crash
expect_refused() {
  local what=$1 pid=$2 want=$3 swant=$4
  probe root open "$pid"
  if [ "$RC" -eq "$want" ] && [ "$DT" -lt 3000 ]; then
    ok "$what: refused ($(sed -n 's/^result: [0-9]* //p' <<<"$OUT" | head -n 1))"
  else
    bad "$what: shm_probe exit $RC (want $want) in $DT ms: $OUT"
  fi
  if [ -n "$STAT" ]; then
    hstat -p "$pid"
    if [ "$SRC" -eq "$swant" ] && [ "$SDT" -lt 3000 ]; then
      ok "$what: hakmem-stat exit $SRC: $(tail -n 1 <<<"$SOUT" | cut -c1-120)"
    else
      bad "$what: hakmem-stat exit $SRC (want $swant) in $SDT ms: $(tail -n 2 <<<"$SOUT")"
    fi
  fi
}

# ---- 1. the segment of a live process ----
start_live() {   # [uid] -> LIVE pid; waits until the segment exists
  if [ $# -gt 0 ]; then
    setpriv --reuid="$1" --regid="$1" --clear-groups env LD_PRELOAD="$tmp/libhakmem.so" "$tmp/fault_preload" churn 60 \
      >"$tmp/live.$1.out" 2>&1 &
  else
    LD_PRELOAD=$LIB "$LIVE_PROG" churn 60 >"$tmp/live.out" 2>&1 &
  fi
  LIVE=$!
  pids+=("$LIVE")
  shmfiles+=("/dev/shm/hakmem.$LIVE")
  for _ in $(seq 1 200); do [ -e "/dev/shm/hakmem.$LIVE" ] && return 0; sleep 0.02; done
  bad "no segment appeared for pid $LIVE"
  return 1
}
"$PROBE_U" forge "$tmp/valid.seg" valid 1
SEGSIZE=$(stat -c %s "$tmp/valid.seg")
start_live
LIVE_ROOT=$LIVE
seg=/dev/shm/hakmem.$LIVE
st=$(stat -c '%F %a %u %s' "$seg")
if [ "$st" = "regular file 600 0 $SEGSIZE" ]; then ok "live segment $seg: $st (regular file, mode 0600, owner root, layout size)"
else bad "live segment $seg: '$st', want 'regular file 600 0 $SEGSIZE'"; fi
probe root open "$LIVE"
[ "$RC" -eq 0 ] && ok "owner reads it: $(head -n 1 <<<"$OUT")" || bad "owner cannot read its segment: $OUT"
probe 65533 open "$LIVE"
[ "$RC" -eq 2 ] && ok "another user cannot open it (EACCES)" || bad "another user opening root's segment: exit $RC: $OUT"

start_live 65534
useg=/dev/shm/hakmem.$LIVE
ULIVE=$LIVE
st=$(stat -c '%a %u' "$useg")
[ "$st" = "600 65534" ] && ok "a process of uid 65534 has a 0600 segment owned by 65534" || bad "uid 65534 segment: $st"
probe 65533 open "$ULIVE"
[ "$RC" -eq 2 ] && ok "uid 65533 cannot open uid 65534's segment (EACCES)" || bad "uid 65533 on uid 65534's segment: exit $RC: $OUT"
probe 65534 open "$ULIVE"
[ "$RC" -eq 0 ] && ok "uid 65534 reads its own process's segment" || bad "uid 65534 reading its own: exit $RC: $OUT"

# ---- 2. what readers refuse (planted for a live process without hakmem) ----
sleep 60 &
VICTIM=$!
pids+=("$VICTIM")
vseg=/dev/shm/hakmem.$VICTIM
shmfiles+=("$vseg")
plant() {   # KIND OWNER MODE
  rm -f "$vseg"
  "$PROBE_U" forge "$vseg" "$1" "$VICTIM"
  chown "$2:$2" "$vseg"
  chmod "$3" "$vseg"
}
plant valid 0 600
probe root open "$VICTIM"
[ "$RC" -eq 0 ] && ok "control case: a well-formed segment of the right owner is accepted" || bad "control case refused: $OUT"
plant valid 65534 600
expect_refused "a segment created by another uid (65534) for a root process" "$VICTIM" 2 5
plant valid 0 644
expect_refused "a segment with mode 0644" "$VICTIM" 2 5
rm -f "$vseg"
"$PROBE_U" forge "$tmp/target.seg" valid "$VICTIM"
chmod 600 "$tmp/target.seg"
ln -s "$tmp/target.seg" "$vseg"
expect_refused "a symlink to a well-formed segment in its place" "$VICTIM" 2 5
plant short 0 600
expect_refused "a truncated segment (4 KiB)" "$VICTIM" 5 8
plant size-lie 0 600
expect_refused "a size field larger than the file" "$VICTIM" 5 8
plant wrong-version 0 600
expect_refused "another layout version" "$VICTIM" 4 7
plant bad-magic 0 600
expect_refused "a foreign file (bad magic)" "$VICTIM" 3 6
plant pid-mismatch 0 600
expect_refused "a segment naming another pid" "$VICTIM" 6 9
plant bigger 0 600
probe root open "$VICTIM"
[ "$RC" -eq 0 ] && ok "a larger segment of a newer writer is accepted (fields are only appended)" || bad "bigger segment: $OUT"

# ---- 3. out-of-range control values are clamped ----
post_check() {   # FLAGS CAP THR WANT_CAP WANT_THR WANT_REJECTED_DELTA
  probe root knobs "$LIVE_ROOT"
  local rej0
  rej0=$(sed -n 's/.*rejected=\([0-9]*\).*/\1/p' <<<"$OUT")
  probe root post "$LIVE_ROOT" "$1" "$2" "$3"
  local cap thr rej
  cap=$(sed -n 's/^ring_cap=\([0-9]*\).*/\1/p' <<<"$OUT")
  thr=$(sed -n 's/.*batch_threshold=\([0-9]*\).*/\1/p' <<<"$OUT")
  rej=$(sed -n 's/.*rejected=\([0-9]*\).*/\1/p' <<<"$OUT")
  if [ "$RC" -eq 0 ] && [ "$cap" = "$4" ] && [ "$thr" = "$5" ] && [ $((rej - rej0)) -eq "$6" ]; then
    ok "control flags=$1 ring_cap=$2 batch_threshold=$3 -> ring_cap=$cap batch_threshold=$thr, rejected +$((rej - rej0))"
  else
    bad "control flags=$1 ring_cap=$2 batch_threshold=$3: exit $RC, got '$OUT' (want ring_cap=$4 batch_threshold=$5 rejected +$6)"
  fi
}
post_check 3 1000000 1 512 65536 2
post_check 2 0 $((1 << 62)) 512 1073741824 1
post_check 1 18446744073709551615 0 512 1073741824 1
post_check 3 0 0 0 65536 1
post_check 0xffffffffffffffff 7 4194304 7 4194304 0        # unknown flag bits ignored, trim done
if [ -n "$STAT" ]; then
  hstat --set ring_cap=100000 --set batch_threshold=1 -p "$LIVE_ROOT"
  probe root knobs "$LIVE_ROOT"
  if [ "$SRC" -eq 0 ] && grep -q '^ring_cap=512 batch_threshold=65536' <<<"$OUT"; then
    ok "hakmem-stat --set ring_cap=100000 batch_threshold=1: posted, the process clamped it ($(head -n 1 <<<"$OUT"))"
  elif [ "$SRC" -eq 2 ]; then
    ok "hakmem-stat --set ring_cap=100000 batch_threshold=1: refused by the tool (exit 2): $(tail -n 1 <<<"$SOUT")"
  else
    bad "hakmem-stat --set out of range: exit $SRC ($(tail -n 1 <<<"$SOUT")), knobs now $OUT"
  fi
fi
kill -0 "$LIVE_ROOT" 2>/dev/null && ok "the steered process is alive and still allocating" || bad "the steered process died"

# ---- 4. hostile segments: clean errors in bounded time ----
for kind in random-valid-header huge-nclasses odd-gens odd-fold negative-gauge; do
  plant "$kind" 0 600
  probe root open "$VICTIM"
  if [ "$RC" -ge 1 ] && [ "$RC" -le 9 ] && [ "$DT" -lt 3000 ]; then
    ok "hostile segment '$kind': shm_probe $(sed -n 's/^result: [0-9]* //p' <<<"$OUT")"
  else
    bad "hostile segment '$kind': shm_probe exit $RC in $DT ms: $OUT"
  fi
  if [ -n "$STAT" ]; then
    hstat -p "$VICTIM"
    if [ "$SRC" -ge 3 ] && [ "$SRC" -le 10 ] && [ "$SDT" -lt 3000 ]; then
      ok "hostile segment '$kind': hakmem-stat exit $SRC in $SDT ms: $(tail -n 1 <<<"$SOUT" | cut -c1-100)"
    else
      bad "hostile segment '$kind': hakmem-stat exit $SRC in $SDT ms: $(tail -n 3 <<<"$SOUT")"
    fi
    hstat --json -p "$VICTIM"
    [ "$SRC" -ge 3 ] && [ "$SRC" -le 10 ] || bad "hostile segment '$kind': hakmem-stat --json exit $SRC"
  fi
done
# a live hostile writer while readers read
plant valid 0 600
"$PROBE_U" scribble "$vseg" 4 >"$tmp/scribble.out" 2>&1 &
SCRIB=$!
pids+=("$SCRIB")
sleep 0.2
worst=0 codes=()
for _ in $(seq 1 10); do
  probe root open "$VICTIM"
  codes+=("$RC")
  [ "$DT" -gt "$worst" ] && worst=$DT
  if [ "$RC" -gt 9 ]; then bad "reader against a scribbling writer: exit $RC: $OUT"; break; fi
done
ok "reader against a live scribbling writer: 10 reads, exits {$(printf '%s\n' "${codes[@]}" | sort -u | tr '\n' ' ')}, slowest $worst ms"
[ "$worst" -lt 3000 ] || bad "a read took $worst ms against a scribbling writer"
if [ -n "$STAT" ]; then
  hstat -p "$VICTIM" 0.1 10
  if [ "$SRC" -lt 124 ]; then ok "hakmem-stat --watch against a scribbling writer: exit $SRC in $SDT ms, no crash or hang"
  else bad "hakmem-stat --watch against a scribbling writer: exit $SRC"; fi
  # the list mode skips unreadable segments and does not fail
  hstat
  [ "$SRC" -eq 0 ] && ok "hakmem-stat (list) with a hostile segment present: exit 0" || bad "hakmem-stat list: exit $SRC: $(tail -n 3 <<<"$SOUT")"
fi
wait "$SCRIB" 2>/dev/null || true

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
if [ $fail -ne 0 ]; then
  echo "security: FAILED"
  exit 1
fi
echo "security: segment permissions, refusals, clamping and hostile segments ok${STAT:+ (shm_probe and hakmem-stat)}"
