#!/usr/bin/env bash
# bench_smoke: bench_allocators_hakmem works and checks its own work (not how
# fast anything is): the JSON has every field, hakmem's counters show cache
# hits in vm and no large blocks in small, the first-round / steady-state,
# peak-RSS-ratio, blocks-per-munmap and decisions-per-minute columns agree with
# the numbers they come from, a quick mode of every scenario runs with matching
# checksums, the seed's command line works, and the exit codes hold (2 usage,
# 1 failed worker, 0 with a skipped allocator).
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u
. "$(dirname "$0")/../lib.sh"
BIN=$B/bench_allocators_hakmem

[ -x "$BIN" ] || fail "$BIN is not built (make)"
[ -f "$LIB" ] || skip "$LIB is not built"
command -v python3 >/dev/null || skip "python3 is needed to check the JSON"
if ldd "$LIB" 2>/dev/null | grep -q 'lib[at]san'; then
  skip "libhakmem.so is built with a sanitizer: it cannot be preloaded into the benchmark"
fi

# ---- usage errors exit 2 ----
"$BIN" --help > "$T/help" || fail "--help exited $?"
grep -q -- '--allocator' "$T/help" || fail "--help lacks its options"
for s in vm cold-churn mixed phased realloc-grow threads malloc-large small partial large small-threads; do
  grep -q "^  $s " "$T/help" || fail "--help does not list scenario $s"
done
for args in "--allocator nosuch" "--scenario nosuch" "--iterations abc" "--iterations vm=0" "--repeat 0" \
            "--repeat vm=0" "--repeat 3,nosuch=2" "--repeat 65" \
            "--threads x" "--touch half" "--warm-mib -1" "--warm-mib lots" "--cold-ms x" "--cold-ms -5" \
            "--cold-ms 600001" "--bogus" "extra-arg"; do
  # shellcheck disable=SC2086
  "$BIN" $args --syscalls none > /dev/null 2> "$T/usage.err"
  rc=$?
  [ $rc -eq 2 ] || fail "'$args' exited $rc, want 2 (usage error)"
done

# ---- hakmem and system, vm and small: JSON fields and hakmem's counters ----
"$BIN" --allocator hakmem,system --scenario vm,small --iterations 20 --repeat 1,vm=2 --warmup 0 --idle-ms 100 \
  --warm-mib 32 --cold-ms 20 --hakmem-lib "$LIB" --json "$T/f.json" --csv "$T/f.csv" > "$T/table.md" 2> "$T/run.err" \
  || { cat "$T/run.err"; fail "bench run exited $?"; }
grep -q '^| vm |' "$T/table.md" && grep -q '^| small |' "$T/table.md" || { cat "$T/table.md"; fail "no table on stdout"; }
python3 - "$T/f.json" <<'EOF' || fail "JSON check failed"
import json, sys
d = json.load(open(sys.argv[1]))
def need(cond, msg):
    if not cond:
        print("JSON:", msg)
        sys.exit(1)
for k in ("command", "date", "machine", "config", "allocators", "results"):
    need(k in d, "missing top-level field %s" % k)
need(d["machine"]["nproc"] >= 1 and d["machine"]["kernel"] and d["machine"]["cpu"], "machine description")
need(d["config"].get("warm_mib") == 32, "config.warm_mib %r, want 32 (--warm-mib 32)" % d["config"].get("warm_mib"))
need(d["config"].get("cold_ms") == 20, "config.cold_ms %r, want 20 (--cold-ms 20)" % d["config"].get("cold_ms"))
need(d["config"].get("repeat") == 1 and d["config"].get("repeats") == {"vm": 2, "small": 1},
     "config.repeat/repeats %r/%r, want 1 and vm 2, small 1 (--repeat 1,vm=2)" % (d["config"].get("repeat"), d["config"].get("repeats")))
cells = {(r["allocator"], r["scenario"]): r for r in d["results"]}
need(len(cells) == 4, "want 4 results, got %d" % len(cells))
want_ops = {"vm": 20, "small": 1020}
for (a, s), r in cells.items():
    need(r["status"] == "ok", "%s/%s status %s" % (a, s, r["status"]))
    for k in ("ops", "runs", "checksum", "ns_per_op", "ratio_to_best_peer", "minor_faults_per_op",
              "syscalls_per_op", "rss_mib"):
        need(k in r, "%s/%s lacks %s" % (a, s, k))
    need(r["ops"] == want_ops[s], "%s/%s ops %d, want %d" % (a, s, r["ops"], want_ops[s]))
    ns = r["ns_per_op"]
    need(0 < ns["min"] <= ns["median"] <= ns["max"], "%s/%s ns_per_op not ordered: %s" % (a, s, ns))
    want_runs = 2 if s == "vm" else 1                       # --repeat 1,vm=2
    need(len(ns["runs"]) == want_runs and r["runs"] == want_runs,
         "%s/%s: %r timed runs (%d times), want %d" % (a, s, r["runs"], len(ns["runs"]), want_runs))
    need(r["minor_faults_per_op"] >= 0, "%s/%s faults" % (a, s))
    need(r["rss_mib"]["peak"] > 0 and r["rss_mib"]["idle"] is not None and r["rss_mib"]["idle"] > 0,
         "%s/%s rss %s" % (a, s, r["rss_mib"]))
    need(r["ratio_to_best_peer"] is not None and r["ratio_to_best_peer"] > 0, "%s/%s ratio" % (a, s))
    need(r["syscalls_per_op"]["source"] in ("hakmem-counters", "strace", "n/a"), "%s/%s syscall source" % (a, s))
for s in ("vm", "small"):
    need(cells[("system", s)]["ratio_to_best_peer"] == 1, "system is the only peer: its ratio must be 1")
    need(cells[("system", s)]["checksum"] == cells[("hakmem", s)]["checksum"], "%s checksums differ" % s)
    need(cells[("system", s)]["syscalls_per_op"]["source"] in ("strace", "n/a"), "system syscalls source")
hv, hs = cells[("hakmem", "vm")], cells[("hakmem", "small")]
need(hv["syscalls_per_op"]["source"] == "hakmem-counters", "hakmem rows take syscalls from hakmem's counters")
need("hakmem" in hv and hv["hakmem"]["mode"] == 1, "hakmem vm: no counters, or mode is not fixed: %s" % hv.get("hakmem"))
need(hv["hakmem"]["cache_hits"] >= 15, "hakmem vm: %d cache hits in 20 allocations of one size" % hv["hakmem"]["cache_hits"])
need(hv["hakmem"]["cache_hits"] + hv["hakmem"]["cache_misses"] >= 20, "hakmem vm: hits + misses < allocations")
need(hv["syscalls_per_op"]["mmap"] <= 0.25, "hakmem vm: %.2f mmap per op despite the cache" % hv["syscalls_per_op"]["mmap"])
need(hs["hakmem"]["cache_hits"] == 0 and hs["hakmem"]["cache_misses"] == 0,
     "hakmem small: small objects reached hakmem's large path: %s" % hs["hakmem"])
print("JSON ok: hakmem vm %d hits / %d misses" % (hv["hakmem"]["cache_hits"], hv["hakmem"]["cache_misses"]))
EOF
head -1 "$T/f.csv" | grep -q '^scenario,allocator,status,' || fail "CSV header"
for col in first_round_ns steady_ns_per_op peak_rss_ratio blocks_per_munmap decisions_per_min; do
  head -1 "$T/f.csv" | tr ',' '\n' | grep -qx "$col" || fail "CSV lacks column $col"
done
[ "$(grep -c ',ok,' "$T/f.csv")" -eq 4 ] || fail "CSV: want 4 ok rows"

# ---- --cold-ms alone: no warming by default, said in the report's header ----
"$BIN" --allocator system --scenario vm --iterations 5 --repeat 1 --warmup 0 --idle-ms 0 --syscalls none \
  --cold-ms 30 --json "$T/c.json" --md "$T/c.md" > /dev/null 2> "$T/cold.err" || { cat "$T/cold.err"; fail "--cold-ms run exited $?"; }
python3 -c 'import json,sys; c = json.load(open(sys.argv[1]))["config"]; sys.exit(0 if c["cold_ms"] == 30 and c["warm_mib"] == 0 else "config %r: want cold_ms 30, warm_mib 0" % c)' "$T/c.json" \
  || fail "--cold-ms: config"
grep -q 'slept 30 ms before each run' "$T/c.md" || fail "--cold-ms: the report's header does not say it"

# ---- the new scenarios and columns: first round, steady state, peak RSS ratio, blocks/munmap, decisions ----
# --threads 2: small-threads must still run 4.  HAKMEM_BATCH_THRESHOLD=1 makes
# every eviction a flush, so hakmem's rows have munmap calls to divide by.
peers=system
for p in jemalloc mimalloc tcmalloc; do
  "$BIN" --list 2>/dev/null | grep -q "^  $p  *\/" && peers="$peers,$p"
done
HAKMEM_BATCH_THRESHOLD=1 "$BIN" --allocator "hakmem,hakmem-evolving,$peers" --scenario partial,large,small-threads,threads \
  --iterations partial=64,large=20,small-threads=3000,threads=16 --threads 2 --repeat 2 --warmup 0 --idle-ms 0 \
  --syscalls none --hakmem-lib "$LIB" --json "$T/n.json" --csv "$T/n.csv" > "$T/n.md" 2> "$T/n.err" \
  || { cat "$T/n.err"; fail "run of the new scenarios exited $?"; }
grep -q '^### First round and steady state' "$T/n.md" || { cat "$T/n.md"; fail "no first-round table"; }
grep -q '^| small-threads | hakmem |' "$T/n.md" || { cat "$T/n.md"; fail "no small-threads row"; }
python3 - "$T/n.json" <<'EOF' || fail "JSON check of the new columns failed"
import json, sys
d = json.load(open(sys.argv[1]))
def need(cond, msg):
    if not cond:
        print("JSON:", msg)
        sys.exit(1)
cells = {(r["allocator"], r["scenario"]): r for r in d["results"]}
peers = [a["name"] for a in d["allocators"] if a["peer"]]
hak = ["hakmem", "hakmem-evolving"]
need(len(cells) == 4 * (2 + len(peers)), "want %d results, got %d" % (4 * (2 + len(peers)), len(cells)))
# per scenario: ops of one run, allocations in the first round, complete rounds after it
want = {"partial": (32 + 64, 32, 2), "large": (20 + 20, 20, 1), "small-threads": (4 * 3000, 4 * 1000, 2),
        "threads": (2 * (8 + 16), 2 * 8, 2)}
for (a, s), r in cells.items():
    w = "%s/%s" % (a, s)
    need(r["status"] == "ok", "%s status %s" % (w, r["status"]))
    for k in ("first_round_ns", "first_round_ops", "first_round_ns_per_op", "steady_ns_per_op", "steady_rounds",
              "peak_rss_ratio", "blocks_per_munmap", "decisions_per_min"):
        need(k in r, "%s lacks %s" % (w, k))
    ops, fops, rounds = want[s]
    need(r["ops"] == ops, "%s ops %d, want %d" % (w, r["ops"], ops))
    need(r["first_round_ops"] == fops, "%s: the first round made %d allocations, want %d" % (w, r["first_round_ops"], fops))
    need(r["steady_rounds"] == rounds, "%s: %d steady rounds, want %d" % (w, r["steady_rounds"], rounds))
    need(r["first_round_ns"] is not None and r["first_round_ns"] > 0, "%s first_round_ns %s" % (w, r["first_round_ns"]))
    need(r["steady_ns_per_op"] is not None and r["steady_ns_per_op"] > 0, "%s steady_ns_per_op %s" % (w, r["steady_ns_per_op"]))
    # the first round is part of a run: it cannot take longer than the slowest run
    run_ns = r["ns_per_op"]["max"] * r["ops"]
    need(r["first_round_ns"] <= run_ns * 1.001, "%s: first round %.0f ns, longer than the run (%.0f ns)"
         % (w, r["first_round_ns"], run_ns))
    if s in ("threads", "small-threads"):
        need(r.get("threads") == (2 if s == "threads" else 4), "%s ran %s threads" % (w, r.get("threads")))
    if a in peers:
        need(r["blocks_per_munmap"] is None and r["decisions_per_min"] is None,
             "%s: a peer has hakmem's blocks_per_munmap / decisions_per_min" % w)
        continue
    h = r["hakmem"]
    if h["munmap_calls"] > 0:
        need(r["blocks_per_munmap"] is not None and r["blocks_per_munmap"] >= 1,
             "%s: %s blocks per munmap (%d blocks flushed, %d munmaps): less than one block per munmap"
             % (w, r["blocks_per_munmap"], h["batch_blocks_flushed"], h["munmap_calls"]))
        need(abs(r["blocks_per_munmap"] - h["batch_blocks_flushed"] / h["munmap_calls"]) < 1e-3 * r["blocks_per_munmap"],
             "%s: blocks_per_munmap is not batch_blocks_flushed / munmap_calls" % w)
        need(h["batch_flushes"] > 0 and r["blocks_per_flush"] is not None
             and abs(r["blocks_per_flush"] - h["batch_blocks_flushed"] / h["batch_flushes"]) < 1e-3 * r["blocks_per_flush"],
             "%s: blocks_per_flush %s is not batch_blocks_flushed / batch_flushes" % (w, r["blocks_per_flush"]))
        need(r["blocks_per_munmap"] <= r["blocks_per_flush"] + 1e-9,
             "%s: %s blocks per munmap, more than the %s blocks a flush held" % (w, r["blocks_per_munmap"], r["blocks_per_flush"]))
    else:
        need(r["blocks_per_munmap"] is None, "%s: blocks_per_munmap without a munmap" % w)
    need(r["decisions_per_min"] is not None and r["decisions_per_min"] >= 0, "%s decisions_per_min" % w)
    need((r["decisions_per_min"] > 0) == (h["decisions_in_runs"] > 0), "%s: decisions_per_min disagrees with decisions" % w)
    if a == "hakmem":
        need(h["decisions_in_runs"] == 0, "%s: fixed mode logged %d tuner decisions" % (w, h["decisions_in_runs"]))
for s in want:
    if s in ("partial", "large"):
        need(cells[("hakmem", s)]["hakmem"]["munmap_calls"] > 0, "hakmem %s: no munmap with HAKMEM_BATCH_THRESHOLD=1" % s)
    low = min(cells[(p, s)]["rss_mib"]["peak"] for p in peers)
    need(abs(min(cells[(p, s)]["peak_rss_ratio"] for p in peers) - 1) < 1e-6,
         "%s: the lowest peer's peak_rss_ratio is not 1" % s)
    for a in hak + peers:
        r = cells[(a, s)]
        need(r["peak_rss_ratio"] is not None and abs(r["peak_rss_ratio"] - r["rss_mib"]["peak"] / low) < 1e-3 * r["peak_rss_ratio"],
             "%s/%s: peak_rss_ratio %s is not peak / lowest peer peak" % (a, s, r["peak_rss_ratio"]))
        if a in peers:
            need(r["peak_rss_ratio"] >= 1 - 1e-9, "%s/%s: a peer below the lowest peer's peak" % (a, s))
    need(len({cells[(a, s)]["checksum"] for a in hak + peers}) == 1, "%s checksums differ" % s)
st = cells[("hakmem", "small-threads")]["hakmem"]
need(st["cache_hits"] == 0 and st["cache_misses"] == 0, "hakmem small-threads: 8-1024 B blocks reached the large path: %s" % st)
need(cells[("hakmem", "partial")]["hakmem"]["cache_hits"] > 0, "hakmem partial: no cache hit in 64 same-size replacements")
print("JSON ok: first round, steady state, peak RSS ratio, blocks/munmap, decisions of %d cells" % len(cells))
EOF
[ "$(grep -c ',ok,' "$T/n.csv")" -eq "$(grep -c '"status": "ok"' "$T/n.json")" ] || fail "CSV of the new scenarios: cells not ok"

# ---- the idle trim's release batching: evolving trims in the idle sleep ----
HAKMEM_IDLE_MS=100 "$BIN" --allocator hakmem-evolving,hakmem --scenario phased --iterations 1 --repeat 1 --warmup 0 \
  --idle-ms 1500 --syscalls none --hakmem-lib "$LIB" --json "$T/t.json" --csv "$T/t.csv" > "$T/t.md" 2> "$T/t.err" \
  || { cat "$T/t.err"; fail "idle-trim run exited $?"; }
python3 - "$T/t.json" <<'EOF' || { cat "$T/t.md"; fail "JSON check of the idle trim's release batching failed"; }
import json, sys
d = json.load(open(sys.argv[1]))
cells = {r["allocator"]: r for r in d["results"]}
def need(cond, msg):
    if not cond:
        print("JSON:", msg)
        sys.exit(1)
e, f = cells["hakmem-evolving"], cells["hakmem"]
h = e["hakmem"]
# 8 + 112 blocks of 2 MiB, all freed: the idle trim sends the cached ones to Batch and flushes them
need(h["idle_flushes"] >= 1 and h["idle_blocks_flushed"] >= 8 and h["idle_munmaps"] >= 1,
     "evolving phased: no idle-trim flush in 1.5 s idle (HAKMEM_IDLE_MS=100): %s" % h)
need(abs(e["idle_blocks_per_munmap"] - h["idle_blocks_flushed"] / h["idle_munmaps"]) < 1e-3 * e["idle_blocks_per_munmap"],
     "idle_blocks_per_munmap %s is not idle_blocks_flushed / idle_munmaps" % e["idle_blocks_per_munmap"])
need(abs(e["idle_blocks_per_flush"] - h["idle_blocks_flushed"] / h["idle_flushes"]) < 1e-3 * e["idle_blocks_per_flush"],
     "idle_blocks_per_flush %s is not idle_blocks_flushed / idle_flushes" % e["idle_blocks_per_flush"])
need(e["idle_blocks_per_munmap"] <= e["idle_blocks_per_flush"] + 1e-9, "idle: more blocks per munmap than per flush")
# fixed mode starts no thread: nothing trims while it sleeps
need(f["hakmem"]["idle_flushes"] == 0 and f["idle_blocks_per_munmap"] is None,
     "fixed mode flushed in its idle sleep: %s" % f["hakmem"])
print("JSON ok: idle trim released %d blocks in %d munmaps (%d flushes)"
      % (h["idle_blocks_flushed"], h["idle_munmaps"], h["idle_flushes"]))
EOF
grep -q '^| phased | <= 0.50x best peer |.* trim [0-9.]* of [0-9.]* \(met\|MISSED\) |' "$T/t.md" \
  || { cat "$T/t.md"; fail "the targets table does not judge the idle trim's blocks per munmap"; }
head -1 "$T/t.csv" | tr ',' '\n' | grep -qx idle_blocks_per_munmap || fail "CSV lacks idle_blocks_per_munmap"

# ---- quick mode of every scenario (checksums must agree across allocators) ----
"$BIN" --allocator hakmem-evolving,system --scenario all \
  --iterations 3,vm=20,mixed=40,threads=20,small=3000,partial=40,large=2,small-threads=3000 \
  --threads 2 --repeat 1 --warmup 0 --idle-ms 0 --syscalls none --hakmem-lib "$LIB" --csv "$T/all.csv" \
  > /dev/null 2> "$T/all.err" || { tail -20 "$T/all.err"; fail "quick run of every scenario exited $?"; }
n=$(grep -c ',ok,' "$T/all.csv")
[ "$n" -eq 22 ] || { cat "$T/all.csv"; fail "quick run: $n of 22 cells ok"; }
python3 - "$T/all.csv" <<'EOF' || fail "checksums differ between allocators"
import csv, sys
sums = {}
for row in csv.DictReader(open(sys.argv[1])):
    sums.setdefault(row["scenario"], set()).add(row["checksum"])
bad = {s: v for s, v in sums.items() if len(v) != 1}
if bad or len(sums) != 11:
    print("checksums:", sums)
    sys.exit(1)
EOF

# ---- the seed's command line ----
"$BIN" --allocator hakmem-evolving --scenario vm --iterations 100 --hakmem-lib "$LIB" > "$T/seed.md" 2> "$T/seed.err" \
  || { cat "$T/seed.err"; fail "seed command exited $?"; }
grep -q '^| vm | hakmem-evolving |' "$T/seed.md" || { cat "$T/seed.md"; fail "seed command printed no vm row"; }

# ---- a missing library is skipped (exit 0); a broken one is a failed worker (exit 1) ----
"$BIN" --allocator hakmem,system --scenario vm --iterations 5 --repeat 1 --warmup 0 --idle-ms 0 --syscalls none \
  --hakmem-lib "$T/missing.so" --json "$T/skip.json" > "$T/skip.md" 2> "$T/skip.err"
rc=$?
[ $rc -eq 0 ] || { cat "$T/skip.err"; fail "missing hakmem library: exit $rc, want 0 (skipped)"; }
grep -q '"allocator": "hakmem", "scenario": "vm", "status": "skipped"' "$T/skip.json" || fail "missing library not reported as skipped"
grep -q 'skipped' "$T/skip.err" || fail "skip not said on stderr"
echo "not an ELF object" > "$T/broken.so"
"$BIN" --allocator hakmem,system --scenario vm --iterations 5 --repeat 1 --warmup 0 --idle-ms 0 --syscalls none \
  --hakmem-lib "$T/broken.so" > "$T/broken.md" 2> "$T/broken.err"
rc=$?
[ $rc -eq 1 ] || { cat "$T/broken.err"; fail "broken hakmem library: exit $rc, want 1"; }
grep -q 'hakmem/vm' "$T/broken.err" || { cat "$T/broken.err"; fail "the failed worker is not named"; }
grep -q '^| vm | system |' "$T/broken.md" || fail "the other allocator's results are missing after a failure"

echo "bench_smoke: ok"
exit 0
