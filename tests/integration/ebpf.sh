#!/usr/bin/env bash
# ebpf.sh - the eBPF probe against known workloads, with exact figures.
#
#   A  hakmem-probe -- mmwork (2 threads, mremap, knob changes): kernel munmaps
#      inside flush windows == library munmap_calls / munmap_bytes; flush
#      events == batch_flushes (blocks, bytes, ranges too); no hakmem munmap
#      outside flush windows; every flush event's kernel munmap count == the
#      library's for that flush; knob events.
#   B  hakmem-probe -p PID --cont --publish on a process that stopped itself:
#      same equalities (since attach), and the kernel section of the segment
#      holds the probe's figures (read back by the workload itself).
#   C  negative: the workload munmaps mappings of its own (odd length, from
#      another thread while flushes run) and one hakmem block behind hakmem's
#      back: the own ones are outside flush windows and not hakmem's, the
#      rogue one is flagged as a hakmem mapping, the library's still match.
#   D  missing privilege (uid 65534): exit 5 (the tools' "permission" code)
#      with a clear message, the command never runs; missing BTF / tracefs in
#      a private mount namespace when unshare works: exit 13 ("not possible
#      here") with a message naming what is missing.
#   E  bpf/flushes.bt with bpftrace: one line per flush, counts match.
# Exit 0 pass, 77 skip (reason on the last line), else fail.
set -u
. "$(dirname "$0")/../lib.sh"
PROBE=$B/hakmem-probe
W=$B/tests/progs/mmwork
chmod 755 "$T"
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

if [ ! -x "$PROBE" ]; then
  if [ -f "$B/bpf/SKIPPED" ]; then skip "$(cat "$B/bpf/SKIPPED")"; fi
  skip "hakmem-probe not built ($PROBE missing; make needs clang, bpftool, libbpf-dev and kernel BTF)"
fi
[ -x "$W" ] || { echo "FAIL: $W missing (make test-build)"; exit 1; }
[ -f "$LIB" ] || { echo "FAIL: $LIB missing"; exit 1; }
command -v python3 >/dev/null || skip "python3 needed to check the JSON output"

# ---- D1: missing privilege (first: it needs nothing else) ----
D_OUT=$T/priv.out
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
  AS_NOBODY=()   # already unprivileged
fi
"${AS_NOBODY[@]}" "$PROBE" --lib "$LIB" -- "$W" -r 1 -o "$T/priv.lib.json" >"$D_OUT" 2>&1
rc=$?
if [ $rc -eq 5 ] && grep -q "missing privilege" "$D_OUT" && grep -q "CAP_BPF" "$D_OUT" && [ ! -e "$T/priv.lib.json" ]; then
  ok "D: unprivileged run exits 5: $(head -c 160 "$D_OUT")..."
else
  fail "D: unprivileged hakmem-probe exited $rc (want 5 + message, command not run): $(cat "$D_OUT")"
fi
if [ "$(id -u)" -ne 0 ]; then
  skip "not root: only the missing-privilege path could be checked (CI runs as root)"
fi

# ---- environment: tracefs, then what the probe itself says ----
if ! mountpoint -q /sys/kernel/tracing 2>/dev/null && [ ! -d /sys/kernel/debug/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
CHECK=$("$PROBE" --check 2>&1)
rc=$?
case $rc in
  0) ;;
  5|13) skip "eBPF cannot work here (hakmem-probe --check exit $rc): $CHECK" ;;
  *) echo "FAIL: hakmem-probe --check exit $rc: $CHECK"; exit 1 ;;
esac

if ! readelf -n "$LIB" 2>/dev/null | grep -q "batch_flush_begin"; then
  if printf '#include <sys/sdt.h>\nint main(void){return 0;}\n' | ${CC:-cc} -x c - -fsyntax-only 2>/dev/null; then
    echo "FAIL: $LIB has no hakmem USDT probes although <sys/sdt.h> is present:"
    echo "      the library was built without -DHAK_HAVE_SDT (HAVE_SDT detection in the Makefile)"
    exit 1
  fi
  skip "$LIB was built without USDT probes (no <sys/sdt.h>: install systemtap-sdt-dev)"
fi

# check.py KIND PROBE_JSONL LIB_JSON : asserts, prints ok/FAIL lines, exit 1 on failure
cat >"$T/check.py" <<'PY'
import json, sys
kind, probe_path, lib_path = sys.argv[1:4]
recs = [json.loads(l) for l in open(probe_path) if l.startswith("{")]
lib = json.load(open(lib_path))
summ = [r for r in recs if r.get("event") == "summary"]
flushes = [r for r in recs if r.get("event") == "flush"]
knobs = [r for r in recs if r.get("event") == "knob"]
outside = [r for r in recs if r.get("event") == "outside_munmap"]
bad = 0
def check(cond, what):
    global bad
    print(("ok: " if cond else "FAIL: ") + kind + ": " + what)
    if not cond: bad += 1
check(len(summ) == 1, "one summary record")
if not summ: sys.exit(1)
s = summ[0]
mi, mo, fl = s["munmap_inside"], s["munmap_outside"], s["flushes"]
check(s["target_exited"], "target exited (status %d)" % s["exit_status"])
check(lib["munmap_calls"] > 0 and lib["batch_flushes"] > 0, "workload flushed (%d flushes, %d munmaps)" % (lib["batch_flushes"], lib["munmap_calls"]))
check(mi["calls"] == lib["munmap_calls"], "kernel munmaps inside flush windows %d == library munmap_calls %d" % (mi["calls"], lib["munmap_calls"]))
check(mi["bytes"] == lib["munmap_bytes"], "kernel munmap bytes inside windows %d == library munmap_bytes %d" % (mi["bytes"], lib["munmap_bytes"]))
check(fl["events"] == lib["batch_flushes"], "flush events %d == library batch_flushes %d" % (fl["events"], lib["batch_flushes"]))
check(fl["begins"] == fl["ends"] == fl["events"] and fl["unmatched_ends"] == 0, "every flush window closed (begin %d end %d)" % (fl["begins"], fl["ends"]))
check(fl["blocks"] == lib["batch_blocks_flushed"], "flushed blocks %d == library %d" % (fl["blocks"], lib["batch_blocks_flushed"]))
check(fl["bytes"] == lib["batch_bytes_flushed"], "flushed block bytes %d == library %d" % (fl["bytes"], lib["batch_bytes_flushed"]))
check(fl["ranges"] == lib["batch_ranges_flushed"] == fl["lib_munmap_calls"], "merged ranges %d == library %d == munmap calls reported by the probes" % (fl["ranges"], lib["batch_ranges_flushed"]))
check(fl["mismatched_events"] == 0 and fl["event_kernel_munmap_calls"] == mi["calls"], "each flush: kernel munmap calls == library's (sum %d)" % fl["event_kernel_munmap_calls"])
check(mo["hakmem_code_calls"] == 0, "munmaps by libhakmem code outside flush windows: %d == 0" % mo["hakmem_code_calls"])
check(s["syscalls"]["munmap"]["calls"] == mi["calls"] + mo["calls"], "munmap calls = inside + outside")
check(s["ringbuf_drops"] == 0, "no ring buffer drops")
if flushes:
    check(len(flushes) == lib["batch_flushes"], "flush records %d == library batch_flushes" % len(flushes))
    check(sum(f["kernel_munmap_calls"] for f in flushes) == lib["munmap_calls"], "sum of per-flush kernel munmap calls == library munmap_calls")
    check(sum(f["kernel_munmap_bytes"] for f in flushes) == lib["munmap_bytes"], "sum of per-flush kernel munmap bytes == library munmap_bytes")
    check(len({f["id"] for f in flushes}) == len(flushes), "flush ids unique")
    # "t" is the flush's kernel time (begin_ktime) relative to the probe's start,
    # not when the tool read the event: t - begin_ktime is the same for all
    ts = sorted(flushes, key=lambda f: f["begin_ktime"])
    offs = [f["begin_ktime"] / 1e9 - f["t"] for f in ts]
    check(max(offs) - min(offs) < 2e-6 and all(f["t"] >= 0 for f in ts), "flush times are kernel times: t - begin_ktime spread %.3g s" % (max(offs) - min(offs)))
    check(len(ts) < 3 or len({round(f["t"], 6) for f in ts}) > len(ts) // 2, "flush times differ (%d distinct of %d)" % (len({round(f["t"], 6) for f in ts}), len(ts)))
hist = s["histograms_log2_ns"]["munmap_inside"]
check(sum(hist.values()) == mi["calls"], "munmap latency histogram holds every inside call (%d)" % sum(hist.values()))
lc = s.get("library_counters")
if lc is not None:
    cc = s["crosscheck"]
    check(cc["munmap_calls"] and cc["munmap_bytes"] and cc["flushes"], "hakmem-probe's own cross-check with the segment: %s" % cc)
if kind == "A":
    check(mo["hakmem_map_calls"] == 0, "munmaps of hakmem mappings outside flush windows: %d == 0" % mo["hakmem_map_calls"])
    check(len(knobs) == 2 and s["knob_changes"] == 2, "two knob_change events: %s" % [(k["name"], k["old"], k["new"]) for k in knobs])
    check(s["evictions"]["cap_lowered"]["blocks"] > 0, "cap_lowered evictions seen (%d)" % s["evictions"]["cap_lowered"]["blocks"])
    check(s["syscalls"]["mremap"]["calls"] >= lib["mremap_calls"] > 0, "mremap seen: kernel %d, library %d" % (s["syscalls"]["mremap"]["calls"], lib["mremap_calls"]))
    check(s["syscalls"]["madvise"]["calls"] >= lib["madvise_calls"], "madvise: kernel %d >= library %d" % (s["syscalls"]["madvise"]["calls"], lib["madvise_calls"]))
if kind == "B":
    check(lc is not None and lc["since_attach"], "library counters read from the segment, as deltas since attach")
    check(mo["hakmem_map_calls"] == 0, "munmaps of hakmem mappings outside flush windows: %d == 0" % mo["hakmem_map_calls"])
    check(lib["k_updated_ns"] > 0, "--publish: kernel section updated (updated_ns %d)" % lib["k_updated_ns"])
    check(lib["k_munmap_calls"] == lib["munmap_calls"] and lib["k_munmap_bytes"] == lib["munmap_bytes"], "--publish: kernel section munmap calls/bytes %d/%d == library %d/%d" % (lib["k_munmap_calls"], lib["k_munmap_bytes"], lib["munmap_calls"], lib["munmap_bytes"]))
    check(lib["k_munmap_ns_total"] > 0 and lib["k_munmap_outside_flush"] == mo["calls"], "--publish: munmap_ns_total %d > 0, munmap_outside_flush %d == probe's outside count %d (glibc's own, e.g. arena setup)" % (lib["k_munmap_ns_total"], lib["k_munmap_outside_flush"], mo["calls"]))
if kind == "C":
    own = [o for o in outside if o["len"] == lib["own_len"]]
    rogue = [o for o in outside if o["len"] == lib["rogue_len"] and o["hakmem_map"]]
    check(lib["own_munmaps"] > 0 and len(own) == lib["own_munmaps"], "the workload's own munmaps (%d) all seen outside flush windows (%d)" % (lib["own_munmaps"], len(own)))
    check(all(o["caller"] == "other" and not o["hakmem_map"] for o in own), "own munmaps: caller is not libhakmem, not hakmem mappings")
    check(len(rogue) == 1 and rogue[0]["caller"] == "other", "the hakmem block the program munmapped itself is flagged as a hakmem mapping: %s" % rogue)
    check(mo["hakmem_map_calls"] == 1 and mo["hakmem_map_bytes"] == lib["rogue_len"], "summary: 1 hakmem mapping munmapped outside flush windows (%d, %d bytes)" % (mo["hakmem_map_calls"], mo["hakmem_map_bytes"]))
    check(mo["calls"] == len(outside), "one outside_munmap record per outside munmap (%d)" % mo["calls"])
    # per-thread windows: own munmaps that fell while another thread was flushing
    wins = [(f["begin_ktime"], f["end_ktime"]) for f in flushes]
    during = sum(1 for o in own if any(b < o["end_ktime"] and o["end_ktime"] - o["ns"] < e for b, e in wins))
    print("info: C: %d of the own munmaps overlapped another thread's flush window; all counted outside" % during)
sys.exit(1 if bad else 0)
PY

# ---- A: -- CMD, exact figures ----
echo "== A: hakmem-probe --json -- mmwork -t 2 -m -k"
timeout 300 "$PROBE" --json --lib "$LIB" -- "$W" -t 2 -m -k -o "$T/a.lib.json" >"$T/a.jsonl" 2>"$T/a.err"
rc=$?
if [ $rc -ne 0 ] || [ ! -s "$T/a.lib.json" ]; then
  fail "A: hakmem-probe exited $rc: $(cat "$T/a.err")"
else
  python3 "$T/check.py" A "$T/a.jsonl" "$T/a.lib.json" || fails=$((fails + 1))
fi

# ---- B: -p PID --cont --publish ----
echo "== B: mmwork -s & hakmem-probe -p PID --cont --publish"
LD_PRELOAD=$LIB "$W" -s -r 10 -w 10 -o "$T/b.lib.json" &
P=$!
for _ in $(seq 200); do
  st=$(awk '{print $3}' "/proc/$P/stat" 2>/dev/null)
  [ "$st" = T ] && break
  sleep 0.05
done
if [ "$st" != T ]; then
  fail "B: workload did not stop itself (state '$st')"
  kill -9 $P 2>/dev/null
else
  timeout 300 "$PROBE" -p $P --cont --json -q --publish --interval 0.05 >"$T/b.jsonl" 2>"$T/b.err"
  rc=$?
  wait $P
  wrc=$?
  if [ $rc -ne 0 ] || [ $wrc -ne 0 ] || [ ! -s "$T/b.lib.json" ]; then
    fail "B: hakmem-probe exited $rc, workload $wrc: $(cat "$T/b.err")"
  else
    python3 "$T/check.py" B "$T/b.jsonl" "$T/b.lib.json" || fails=$((fails + 1))
  fi
fi

# ---- C: negative: own munmaps and a rogue one ----
echo "== C: hakmem-probe --json --outside -- mmwork -n 400 -R"
timeout 300 "$PROBE" --json --outside --lib "$LIB" -- "$W" -r 30 -n 400 -R -o "$T/c.lib.json" >"$T/c.jsonl" 2>"$T/c.err"
rc=$?
if [ $rc -ne 0 ] || [ ! -s "$T/c.lib.json" ]; then
  fail "C: hakmem-probe exited $rc: $(cat "$T/c.err")"
else
  python3 "$T/check.py" C "$T/c.jsonl" "$T/c.lib.json" || fails=$((fails + 1))
fi

# ---- D2/D3: missing BTF, missing tracefs (private mount namespace) ----
if unshare -m true 2>/dev/null; then
  out=$(unshare -m sh -c 'mount -t tmpfs none /sys/kernel/btf && exec "$0" --check' "$PROBE" 2>&1)
  rc=$?
  if [ $rc -eq 13 ] && echo "$out" | grep -q "BTF"; then ok "D: no kernel BTF -> 13: $out"
  else fail "D: no kernel BTF: exit $rc (want 13): $out"; fi
  out=$(unshare -m sh -c 'umount -l /sys/kernel/tracing 2>/dev/null; mount -t tmpfs none /sys/kernel/tracing;
                          [ -d /sys/kernel/debug ] && mount -t tmpfs none /sys/kernel/debug; exec "$0" --check' "$PROBE" 2>&1)
  rc=$?
  if [ $rc -eq 13 ] && echo "$out" | grep -q "tracefs"; then ok "D: no tracefs -> 13: $out"
  else fail "D: no tracefs: exit $rc (want 13): $out"; fi
else
  echo "note: unshare -m unavailable: BTF/tracefs absence not simulated"
fi

# ---- E: bpftrace flushes.bt ----
if command -v bpftrace >/dev/null; then
  echo "== E: bpftrace -p PID bpf/flushes.bt PID"
  LD_PRELOAD=$LIB "$W" -s -r 3 -o "$T/e.lib.json" &
  P=$!
  for _ in $(seq 200); do
    [ "$(awk '{print $3}' "/proc/$P/stat" 2>/dev/null)" = T ] && break
    sleep 0.05
  done
  timeout 120 bpftrace -p $P bpf/flushes.bt $P >"$T/e.out" 2>"$T/e.err" &
  BT=$!
  for _ in $(seq 300); do
    grep -q "^Tracing hakmem flushes" "$T/e.out" 2>/dev/null && break
    sleep 0.1
  done
  kill -CONT $P
  wait $P
  wait $BT
  rc=$?
  if [ $rc -ne 0 ] || [ ! -s "$T/e.lib.json" ]; then
    fail "E: bpftrace exited $rc: $(grep -v RLIMIT_MEMLOCK "$T/e.err" | head -5)"
  else
    python3 - "$T/e.out" "$T/e.lib.json" <<'PY' || fails=$((fails + 1))
import json, re, sys
out = open(sys.argv[1]).read().splitlines()
lib = json.load(open(sys.argv[2]))
rows = [l.split() for l in out if re.match(r"^\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\|", l)]
def val(name):
    m = [l for l in out if l.startswith("@%s:" % name)]
    return int(m[0].split(":")[1]) if m else None
bad = 0
def check(c, what):
    global bad
    print(("ok: " if c else "FAIL: ") + "E: " + what)
    bad += not c
check(len(rows) == lib["batch_flushes"] > 0, "one line per flush: %d lines, library %d flushes" % (len(rows), lib["batch_flushes"]))
check(sum(int(r[4]) for r in rows) == lib["batch_ranges_flushed"], "ranges column sums to library batch_ranges_flushed %d" % lib["batch_ranges_flushed"])
check(sum(int(r[7]) for r in rows) == lib["munmap_calls"], "kernel munmap column sums to library munmap_calls %d" % lib["munmap_calls"])
check(sum(int(r[8]) for r in rows) == lib["munmap_bytes"], "kernel bytes column sums to library munmap_bytes %d" % lib["munmap_bytes"])
check(val("munmap_inside") == lib["munmap_calls"], "@munmap_inside %s == library munmap_calls" % val("munmap_inside"))
check(val("flushes") == lib["batch_flushes"], "@flushes %s == library batch_flushes" % val("flushes"))
check(any(l.startswith("@munmap_inside_ns:") for l in out), "latency histogram printed")
check(val("munmap_calls_kernel") == val("munmap_calls_lib") and val("windows_counted") > 0,
      "@munmap_calls_kernel %s == @munmap_calls_lib %s over %s counted windows" %
      (val("munmap_calls_kernel"), val("munmap_calls_lib"), val("windows_counted")))
sys.exit(1 if bad else 0)
PY
  fi
else
  echo "note: bpftrace not installed: bpf/flushes.bt not checked"
fi

echo
if [ $fails -ne 0 ]; then
  echo "ebpf: $fails check group(s) failed"
  exit 1
fi
echo "ebpf: all checks passed"
exit 0
