#!/usr/bin/env bash
# tests/integration/tuner.sh - hakmem-tuner --drive on a phased workload.
#
# tests/progs/phased (2 MiB blocks, working set 8 -> 120 -> 8 -> 120 ..., then
# idle) runs under LD_PRELOAD in HAKMEM_MODE=fixed twice:
#   A. alone, ring cap 4 (the default knobs): the baseline;
#   B. with `hakmem-tuner --drive --pid` recording into a temporary DB.
# Checks (sqlite3 CLI on the DB, and phased's own per-phase figures):
#   - the run, samples, per-class samples and decisions are recorded, every
#     decision with a reason and a prediction, some graded;
#   - the 2 MiB class's cap rose to cover the big working set (>= 100), with
#     few cap decisions (no flapping);
#   - the hit rate of the later big phases beats fixed cap 4 by far;
#   - after the workload, exactly one idle trim, and bytes cached fell to 0
#     while the process slept;
#   - the decisions are in the segment's decision log too.
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u
. "$(dirname "$0")/../lib.sh"
TUNER=$B/hakmem-tuner
PHASED=$B/tests/progs/phased


[ -f "$LIB" ] || skip "libhakmem.so not built ($LIB)"
[ -x "$TUNER" ] || skip "hakmem-tuner not built ($TUNER)"
[ -x "$PHASED" ] || skip "tests/progs/phased not built ($PHASED)"
command -v sqlite3 >/dev/null || skip "sqlite3 CLI missing (apt-get install sqlite3)"
[ -d /dev/shm ] && [ -w /dev/shm ] || skip "no writable /dev/shm"

TMP=$T
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
}
at_exit cleanup
DB=$TMP/history.db
q() { sqlite3 -batch -noheader "$DB" "$1"; }

# Common environment: fixed knobs, telemetry on, idle trim after 500 ms.
run_env=(env HAKMEM_MODE=fixed HAKMEM_BACKGROUND_THREAD=1 HAKMEM_RING_CAP=4 HAKMEM_STATS=1 HAKMEM_IDLE_MS=500 LD_PRELOAD="$LIB")

echo "== A: fixed cap 4, no tuner"
"${run_env[@]}" "$PHASED" -r 3 -p 1000 -c 3 -i 0 >"$TMP/fixed.out" 2>&1 || { cat "$TMP/fixed.out"; fail "phased (fixed) failed"; }
cat "$TMP/fixed.out"
grep -q "segment yes" "$TMP/fixed.out" || fail "phased did not find its telemetry segment under LD_PRELOAD"

echo "== B: fixed mode driven by hakmem-tuner --drive"
"${run_env[@]}" "$PHASED" -r 4 -p 1500 -c 3 -w 700 -i 2500 >"$TMP/driven.out" 2>&1 &
PP=$!
PIDS+=("$PP")
for _ in $(seq 100); do [ -e "/dev/shm/hakmem.$PP" ] && break; sleep 0.05; done
[ -e "/dev/shm/hakmem.$PP" ] || { cat "$TMP/driven.out"; fail "no segment /dev/shm/hakmem.$PP"; }
"$TUNER" --db "$DB" --pid "$PP" --drive --interval 0.1 >"$TMP/tuner.out" 2>&1 &
TP=$!
PIDS+=("$TP")
wait "$PP"; prc=$?
wait "$TP"; trc=$?
cat "$TMP/driven.out"
echo "-- tuner output (decisions and grades):"
cat "$TMP/tuner.out"
[ $prc -eq 0 ] || fail "phased (driven) exited $prc"
[ $trc -eq 0 ] || fail "hakmem-tuner exited $trc (expected 0 once its --pid exited)"

echo "== checks"
[ "$(q "PRAGMA integrity_check")" = ok ] || fail "DB integrity check"
[ "$(q "PRAGMA journal_mode")" = wal ] || fail "DB not in WAL mode"
[ "$(q "PRAGMA user_version")" -ge 2 ] || fail "schema version"
[ "$(q "SELECT COUNT(*) FROM runs WHERE pid = $PP AND mode = 'fixed' AND source = 'daemon' AND end_ns IS NOT NULL")" = 1 ] \
  || fail "run row (pid, mode, source, end)"
ns=$(q "SELECT COUNT(*) FROM samples")
nc=$(q "SELECT COUNT(*) FROM class_samples")
nd=$(q "SELECT COUNT(*) FROM decisions")
echo "samples=$ns class_samples=$nc decisions=$nd"
[ "$ns" -ge 50 ] || fail "expected >= 50 samples, got $ns"
[ "$nc" -ge 50 ] || fail "expected per-class samples, got $nc"
[ "$nd" -ge 2 ] || fail "expected decisions, got $nd"
[ "$(q "SELECT COUNT(*) FROM decisions WHERE reason IS NULL OR reason = 'none' OR (knob != 'trim' AND predicted IS NULL)")" = 0 ] \
  || fail "a decision without reason or prediction"
echo "decisions by knob/reason:"; q "SELECT knob, reason, COUNT(*) FROM decisions GROUP BY 1, 2" | sed 's/^/  /'
echo "grades:"; q "SELECT CASE grade WHEN 1 THEN 'confirmed' WHEN 2 THEN 'refuted' WHEN 3 THEN 'inconclusive' ELSE 'ungraded' END, COUNT(*) FROM decisions GROUP BY 1" | sed 's/^/  /'
[ "$(q "SELECT COUNT(*) FROM decisions WHERE grade IN (1, 2)")" -ge 1 ] || fail "no decision was graded"

# the 2 MiB class's cap rose to cover the big working set, by ghost demand
# (per-class caps: class_cap decisions; the global ring_cap stays the default)
raised=$(q "SELECT COALESCE(MAX(new_value), 0) FROM decisions WHERE knob IN ('ring_cap', 'class_cap') AND reason = 'ghost_demand'")
maxcap=$(q "SELECT MAX(cap) FROM class_samples WHERE size = 2097152")
echo "ring cap of the 2 MiB class: raised to $raised, max seen in samples $maxcap (start 4)"
[ "$raised" -ge 100 ] || fail "ring cap was not raised to cover 120 blocks (max decision $raised)"
[ "$maxcap" -ge 100 ] || fail "the raised cap was not applied (max sampled class cap $maxcap)"
# how fast: intervals from the first sample with big-phase ghost demand to cap >= 100
first_big=$(q "SELECT MIN(id) FROM samples WHERE blocks_live >= 40")
reach=$(q "SELECT MIN(sample_id) FROM class_samples WHERE size = 2097152 AND cap >= 100")
echo "first sample with >= 40 blocks live: $first_big; first with cap >= 100: $reach ($((reach - first_big)) intervals later)"
# no flapping: the caps of the 2 MiB class change direction at most once per big/small swing
ncap=$(q "SELECT COUNT(*) FROM decisions WHERE knob IN ('ring_cap', 'class_cap') AND new_value != -1")
echo "cap decisions (not counting the idle reset): $ncap"
[ "$ncap" -le 8 ] || fail "$ncap cap decisions for 4 rounds of one pattern: the tuner flaps"

# hit rates of the later phases: driven vs fixed cap 4
hr() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2"; }
fb=$(hr big_hit_rate_later "$TMP/fixed.out"); fs=$(hr small_hit_rate_later "$TMP/fixed.out")
db=$(hr big_hit_rate_later "$TMP/driven.out"); ds=$(hr small_hit_rate_later "$TMP/driven.out")
fm=$(hr ms_per_big_cycle "$TMP/fixed.out"); dm=$(hr ms_per_big_cycle "$TMP/driven.out")
echo "later phases, hit rate big/small: fixed cap 4 = $fb/$fs, driven = $db/$ds; ms per big cycle: fixed $fm, driven $dm"
awk -v f="$fb" -v d="$db" 'BEGIN { exit !(d >= 0.9 && d > f + 0.3) }' || fail "driven big-phase hit rate $db not well above fixed $fb"
awk -v f="$fs" -v d="$ds" 'BEGIN { exit !(d >= f) }' || fail "driven small-phase hit rate $ds below fixed $fs"

# idle: one trim, after the workload, and the caches emptied while sleeping
nt=$(q "SELECT COUNT(*) FROM decisions WHERE knob = 'trim'")
[ "$nt" = 1 ] || fail "expected exactly one idle trim decision, got $nt"
[ "$(q "SELECT reason FROM decisions WHERE knob = 'trim'")" = idle ] || fail "trim reason"
tt=$(q "SELECT time_ns FROM decisions WHERE knob = 'trim'")
peak=$(q "SELECT MAX(bytes_cached) FROM samples")
after=$(q "SELECT MIN(bytes_cached) FROM samples WHERE time_ns > $tt")
echo "bytes cached: peak $peak, lowest after the trim ${after:-none}"
if [ -z "$after" ] || [ "$after" -ne 0 ]; then
  posted=$(q "SELECT ctl_seq, ctl_applied_seq FROM samples ORDER BY id DESC LIMIT 1")
  fail "idle trim decided but bytes_cached did not fall to 0 while the process slept (control seq/applied: $posted):" \
       "the library applies control requests only on a large alloc/free, so a sleeping fixed-mode process never trims"
fi
grep -q "bytes_cached_after=0 " "$TMP/driven.out" || fail "phased saw bytes cached after its idle sleep != 0"

# the decision log in the segment saw them too
head=$(q "SELECT MAX(decision_head) FROM samples")
[ "$head" -ge "$((nd - 1))" ] || fail "segment decision log head $head < decisions $nd"
echo "PASS: cap 4 -> $raised, later big-phase hit rate $fb -> $db, idle trim to 0 bytes, $nd decisions, $ns samples"
exit 0
