#!/usr/bin/env bash
# bench_smoke: bench_allocators_hakmem works and checks its own work (not how
# fast anything is): the JSON has every field, hakmem's counters show cache
# hits in vm and no large blocks in small, a quick mode of every scenario runs
# with matching checksums, the seed's command line works, and the exit codes
# hold (2 usage, 1 failed worker, 0 with a skipped allocator).
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u
B=${HAKMEM_BUILD:-build}
BIN=$B/bench_allocators_hakmem
LIB=${HAKMEM_LIB:-$B/libhakmem.so}

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "skip: $*"; exit 77; }

[ -x "$BIN" ] || fail "$BIN is not built (make)"
[ -f "$LIB" ] || skip "$LIB is not built"
command -v python3 >/dev/null || skip "python3 is needed to check the JSON"
if ldd "$LIB" 2>/dev/null | grep -q 'lib[at]san'; then
  skip "libhakmem.so is built with a sanitizer: it cannot be preloaded into the benchmark"
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# ---- usage errors exit 2 ----
"$BIN" --help > "$T/help" || fail "--help exited $?"
grep -q -- '--allocator' "$T/help" && grep -q 'realloc-grow' "$T/help" || fail "--help lacks options or scenarios"
for args in "--allocator nosuch" "--scenario nosuch" "--iterations abc" "--iterations vm=0" "--repeat 0" \
            "--threads x" "--touch half" "--bogus" "extra-arg"; do
  # shellcheck disable=SC2086
  "$BIN" $args --syscalls none > /dev/null 2> "$T/usage.err"
  rc=$?
  [ $rc -eq 2 ] || fail "'$args' exited $rc, want 2 (usage error)"
done

# ---- hakmem and system, vm and small: JSON fields and hakmem's counters ----
"$BIN" --allocator hakmem,system --scenario vm,small --iterations 20 --repeat 1 --warmup 0 --idle-ms 100 \
  --hakmem-lib "$LIB" --json "$T/f.json" --csv "$T/f.csv" > "$T/table.md" 2> "$T/run.err" \
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
    need(len(ns["runs"]) == 1 and r["runs"] == 1, "%s/%s runs" % (a, s))
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
[ "$(grep -c ',ok,' "$T/f.csv")" -eq 4 ] || fail "CSV: want 4 ok rows"

# ---- quick mode of every scenario (checksums must agree across allocators) ----
"$BIN" --allocator hakmem-evolving,system --scenario all --iterations 3,vm=20,mixed=40,threads=20,small=3000 \
  --threads 2 --repeat 1 --warmup 0 --idle-ms 0 --syscalls none --hakmem-lib "$LIB" --csv "$T/all.csv" \
  > /dev/null 2> "$T/all.err" || { tail -20 "$T/all.err"; fail "quick run of every scenario exited $?"; }
n=$(grep -c ',ok,' "$T/all.csv")
[ "$n" -eq 16 ] || { cat "$T/all.csv"; fail "quick run: $n of 16 cells ok"; }
python3 - "$T/all.csv" <<'EOF' || fail "checksums differ between allocators"
import csv, sys
sums = {}
for row in csv.DictReader(open(sys.argv[1])):
    sums.setdefault(row["scenario"], set()).add(row["checksum"])
bad = {s: v for s, v in sums.items() if len(v) != 1}
if bad or len(sums) != 8:
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
