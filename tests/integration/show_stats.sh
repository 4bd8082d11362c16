#!/usr/bin/env bash
# Statistics at exit and the user conventions around them, with real programs
# under LD_PRELOAD:
#   - HAKMEM_SHOW_STATS=1 prints a summary on stderr at exit whose figures are
#     plausible (churn: every allocation counted, hits > 0) and equal to what
#     HAKMEM_STATS_FILE wrote as JSON (valid, written by rename: a new inode,
#     no temporary left; %p = pid; an unwritable path warns, the exit status
#     stays); the same with HAKMEM_STATS=0; nothing without the variable;
#     python3 too, and hak_stats_print through ctypes (stderr, JSON, callback);
#   - malloc_trim(0) releases hakmem's cached blocks and returns 1;
#   - HAKMEM_HISTORY without HAKMEM_MODE=evolving warns exactly once, also in a
#     program that forks and runs threads; not in evolving mode.
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
CHURN=$PROGS/churn
TRIM=$PROGS/trim_probe
need_file "$LIB"
need_exe "$CHURN"
need_exe "$TRIM"
need_cmd python3 python3
# the interpreter itself, not a wrapper script (pyenv shims exec a chain of programs)
PY=$(python3 -c 'import sys; print(sys.executable)')
tmp=$T

# N of the summary line "hakmem[pid]:   <label> N..." in stderr file $1
field() { sed -n "s/^hakmem\[[0-9]*\]:   $2 \([0-9][0-9]*\).*/\1/p" "$1" | head -n 1; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$1" "$2"; }

# ---- 1. churn: summary on stderr == the JSON file ----------------------------
echo '{"old": true}' > "$tmp/stats.json"
ino0=$(stat -c %i "$tmp/stats.json")
HAKMEM_SHOW_STATS=1 HAKMEM_STATS_FILE="$tmp/stats.json" LD_PRELOAD=$LIB \
  "$CHURN" --blocks 32 --rounds 10 >"$tmp/out" 2>"$tmp/err" || fail "churn failed: $(cat "$tmp/err")"
cat "$tmp/err"
grep -q "^hakmem\[[0-9]*\]: statistics of churn (pid [0-9]*, mode fixed" "$tmp/err" || fail "no summary header on stderr"
allocs=$(field "$tmp/err" "large allocations")
hits=$(field "$tmp/err" "cache hits")
misses=$(sed -n 's/^hakmem\[[0-9]*\]:   cache hits [0-9]*, misses \([0-9]*\).*/\1/p' "$tmp/err")
flushes=$(field "$tmp/err" "batch flushes")
[ "$allocs" = 320 ] || fail "summary says $allocs large allocations, churn made 32 x 10 = 320"
[ "$hits" -gt 0 ] || fail "a churn workload had no cache hit"
[ $((hits + misses)) = "$allocs" ] || fail "hits $hits + misses $misses != allocations $allocs"
grep -Eq "hit rate [0-9]+\.[0-9]%" "$tmp/err" || fail "no hit rate"
grep -Eq "^hakmem\[[0-9]*\]:   mapped now [0-9.]+ (B|KiB|MiB|GiB), peak [0-9.]+ (KiB|MiB|GiB)" "$tmp/err" ||
  fail "bytes are not in human units"
grep -Eq "^hakmem\[[0-9]*\]: +[0-9]+ +256 KiB +[0-9]+" "$tmp/err" || fail "no per-class row for the 256 KiB class"
python3 -m json.tool "$tmp/stats.json" >/dev/null || fail "the JSON file is not valid JSON"
[ "$(stat -c %i "$tmp/stats.json")" != "$ino0" ] || fail "the JSON file was rewritten in place, not renamed over"
ls "$tmp" | grep -q '\.tmp\.' && fail "a temporary file was left behind: $(ls "$tmp")"
[ "$(jget "$tmp/stats.json" '["counters"]["cache_hits"]')" = "$hits" ] || fail "JSON hits != summary hits $hits"
[ "$(jget "$tmp/stats.json" '["counters"]["large_allocs"]')" = "$allocs" ] || fail "JSON large_allocs != $allocs"
[ "$(jget "$tmp/stats.json" '["counters"]["batch_flushes"]')" = "$flushes" ] || fail "JSON flushes != $flushes"
[ "$(jget "$tmp/stats.json" '["comm"]')" = churn ] || fail "JSON comm is not churn"
python3 - "$tmp/stats.json" "$tmp/err" <<'PY' || fail "JSON and summary disagree on blocks per munmap / classes"
import json, re, sys
d = json.load(open(sys.argv[1])); c = d["counters"]; txt = open(sys.argv[2]).read()
bpm = float(re.search(r"([0-9.]+) blocks per munmap", txt).group(1))
assert abs(bpm - c["batch_blocks_flushed"] / max(c["munmap_calls"], 1)) < 0.01, bpm
assert abs(d["derived"]["blocks_per_munmap"] - bpm) < 0.01
assert [k["size"] for k in d["classes"]] == [262144], d["classes"]
assert d["classes"][0]["misses"] + d["classes"][0]["hits"] <= c["large_allocs"]
assert set(c) >= {"cache_hits", "cache_misses", "evict_ring_full", "munmap_calls"}
PY

# %p = pid; an unwritable path warns and does not change the exit status
HAKMEM_STATS_FILE="$tmp/s.%p.json" LD_PRELOAD=$LIB "$CHURN" --rounds 2 >"$tmp/out" 2>"$tmp/err2"
pid=$(sed -n 's/^churn: pid \([0-9]*\) ok.*/\1/p' "$tmp/out")
[ -n "$pid" ] && python3 -m json.tool "$tmp/s.$pid.json" >/dev/null || fail "no valid $tmp/s.<pid>.json ($(ls "$tmp"))"
[ -s "$tmp/err2" ] && fail "HAKMEM_STATS_FILE alone printed on stderr: $(cat "$tmp/err2")"
HAKMEM_STATS_FILE=/nonexistent/dir/s.json LD_PRELOAD=$LIB "$CHURN" --rounds 2 >/dev/null 2>"$tmp/err3" ||
  fail "an unwritable HAKMEM_STATS_FILE changed the exit status"
grep -q "HAKMEM_STATS_FILE=/nonexistent/dir/s.json: No such file or directory; statistics not written" "$tmp/err3" ||
  fail "no warning for an unwritable HAKMEM_STATS_FILE: $(cat "$tmp/err3")"

# HAKMEM_STATS=0: counting continues in private memory, the summary is the same
HAKMEM_STATS=0 HAKMEM_SHOW_STATS=1 LD_PRELOAD=$LIB "$CHURN" --blocks 32 --rounds 10 >/dev/null 2>"$tmp/err4"
[ "$(field "$tmp/err4" "large allocations")" = 320 ] || fail "HAKMEM_STATS=0: summary missing: $(cat "$tmp/err4")"
[ "$(field "$tmp/err4" "cache hits")" -gt 0 ] || fail "HAKMEM_STATS=0: no hits"
# not asked: not printed
LD_PRELOAD=$LIB "$CHURN" --rounds 2 >/dev/null 2>"$tmp/err5"
grep -q "statistics of" "$tmp/err5" && fail "summary printed without HAKMEM_SHOW_STATS"

# ---- 2. python3, and hak_stats_print through ctypes ---------------------------
HAKMEM_SHOW_STATS=on LD_PRELOAD=$LIB "$PY" - 2>"$tmp/py.err" >"$tmp/py.out" <<'PY' || fail "python3: $(cat "$tmp/py.err")"
import ctypes, json, sys
keep = [bytearray(1 << 20) for _ in range(40)]
del keep
lib = ctypes.CDLL(None)
lib.hak_stats_print.restype = ctypes.c_int
sys.stderr.flush()
assert lib.hak_stats_print(None, None, 0) == 0           # summary on stderr
assert lib.hak_stats_print(None, None, 2) == -22         # unknown flag: -EINVAL
parts = []
CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
cb = CB(lambda arg, text: parts.append(text.decode()))
assert lib.hak_stats_print(cb, None, 1) == 0             # JSON through a callback
d = json.loads("".join(parts))
assert d["counters"]["large_allocs"] >= 40, d["counters"]["large_allocs"]
print("api", d["counters"]["large_allocs"])
PY
n=$(grep -c "statistics of python3" "$tmp/py.err" || true)
[ "$n" = 2 ] || fail "python3: expected the API summary and the one at exit, saw $n: $(cat "$tmp/py.err")"
api=$(sed -n 's/^api //p' "$tmp/py.out")
last=$(grep "large allocations" "$tmp/py.err" | tail -n 1 | sed 's/.*large allocations \([0-9]*\).*/\1/')
[ "$last" -ge "$api" ] || fail "python3: the summary at exit ($last) counts fewer than the API saw ($api)"

# ---- 3. malloc_trim(0) --------------------------------------------------------
out=$(LD_PRELOAD=$LIB "$TRIM" 8 $((1 << 20))) || fail "malloc_trim: $out"
echo "$out"
grep -q "rc=1 cached_after=0 pending_after=0" <<<"$out" || fail "malloc_trim: $out"
# through python's ctypes, as programs call it
LD_PRELOAD=$LIB "$PY" - <<'PY' || fail "python3 malloc_trim"
import ctypes
lib = ctypes.CDLL(None)
keep = [bytearray(1 << 20) for _ in range(8)]
del keep
assert lib.malloc_trim(0) == 1
PY

# ---- 4. HAKMEM_HISTORY outside evolving mode: one warning ---------------------
fork_prog='
import os, threading
def work():
    for _ in range(20): bytearray(1 << 20)
ts = [threading.Thread(target=work) for _ in range(3)]
for t in ts: t.start()
for t in ts: t.join()
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        work()
        os._exit(0)
    os.waitpid(pid, 0)
'
msg="history is recorded only with HAKMEM_MODE=evolving"
for v in 0 1; do
  HAKMEM_VERBOSE=$v HAKMEM_HISTORY="$tmp/h.db" LD_PRELOAD=$LIB "$PY" -c "$fork_prog" 2>"$tmp/h.err"
  n=$(grep -c "$msg" "$tmp/h.err" || true)
  [ "$n" = 1 ] || fail "HAKMEM_VERBOSE=$v: the HISTORY warning appeared $n times: $(cat "$tmp/h.err")"
done
grep -q "HAKMEM_HISTORY=$tmp/h.db is ignored: .*(mode is fixed)" "$tmp/h.err" || fail "warning text: $(cat "$tmp/h.err")"
HAKMEM_MODE=off HAKMEM_HISTORY="$tmp/h.db" LD_PRELOAD=$LIB "$PY" -c 'pass' 2>"$tmp/h.err"
grep -q "(mode is off)" "$tmp/h.err" || fail "mode=off: no HISTORY warning"
HAKMEM_MODE=evolving HAKMEM_HISTORY="$tmp/h.db" LD_PRELOAD=$LIB "$PY" -c "$fork_prog" 2>"$tmp/h.err"
grep -q "$msg" "$tmp/h.err" && fail "evolving mode warned about HAKMEM_HISTORY: $(cat "$tmp/h.err")"
finish
