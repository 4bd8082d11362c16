#!/usr/bin/env bash
# scripts/demo.sh - what `make demo` runs once the build is done (about half a minute).
#
#   1. The phased workload (tests/progs/phased: 2 MiB blocks, working set
#      8 -> 120 -> 8 -> 120 ..., then idle) under HAKMEM_MODE=fixed with the
#      default knobs (ring cap 4), recorded by hakmem-tuner into the history;
#   2. the same command under HAKMEM_MODE=evolving with
#      HAKMEM_HISTORY=./hakmem-history.db (the in-process tuner records itself);
#   3. the text report of the evolving run (hakmem-report), a side-by-side of
#      the two runs (wall time, hit rate, idle memory), and
#      ./hakmem-report.html (both runs, plots, one self-contained file).
# Usage: scripts/demo.sh [BUILD_DIR]     (run from anywhere; files go to the current directory)
set -euo pipefail
O=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case "$O" in /*) B=$O ;; *) B=$ROOT/$O ;; esac
LIB=$B/libhakmem.so
PHASED=$B/tests/progs/phased
REPORT=$B/hakmem-report
TUNER=$B/hakmem-tuner
HIST=$PWD/hakmem-history.db
HTML=$PWD/hakmem-report.html

for f in "$LIB" "$PHASED" "$REPORT" "$TUNER"; do
  [ -e "$f" ] || { echo "demo: $f is missing: run 'make demo' (or 'make all test-build') first" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "demo: python3 is needed (make deps)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/hakmem-demo.XXXXXX)
BG=()
cleanup() {
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# The workload: 4 rounds of 8 cycles per phase (cycle-counted, so both modes do
# the same allocations and wall time compares), a 300 ms start delay (time
# for the recorder to attach), then 1.5 s idle (time for the idle trim).
WORK=("$PHASED" -r 4 -p 0 -c 8 -w 300 -i 1500)
now() { date +%s.%N; }

rm -f "$HIST" "$HIST-wal" "$HIST-shm" "$HTML"
echo "hakmem demo: the phased workload (2 MiB blocks, working set 8 -> 120 -> 8 ..., then idle)"
echo "  ${WORK[*]}"
echo

echo "[1/3] HAKMEM_MODE=fixed (ring cap 4, batch threshold 4M: the defaults), recorded by hakmem-tuner"
t0=$(now)
env HAKMEM_MODE=fixed LD_PRELOAD="$LIB" "${WORK[@]}" >"$TMP/fixed.out" 2>&1 &
WP=$!
BG+=("$WP")
for _ in $(seq 200); do [ -e "/dev/shm/hakmem.$WP" ] && break; sleep 0.01; done
"$TUNER" --db "$HIST" --pid "$WP" --interval 0.1 -q >"$TMP/tuner.out" 2>&1 &
TP=$!
BG+=("$TP")
wait "$WP" || { cat "$TMP/fixed.out"; echo "demo: the fixed-mode run failed" >&2; exit 1; }
t1=$(now)
wait "$TP" || echo "demo: note: hakmem-tuner could not record the fixed run: $(cat "$TMP/tuner.out")" >&2
sed 's/^/      /' "$TMP/fixed.out"
echo

echo "[2/3] HAKMEM_MODE=evolving, HAKMEM_HISTORY=./hakmem-history.db (the tuner runs inside the process)"
t2=$(now)
env HAKMEM_MODE=evolving HAKMEM_HISTORY="$HIST" LD_PRELOAD="$LIB" "${WORK[@]}" >"$TMP/evolving.out" 2>&1 ||
  { cat "$TMP/evolving.out"; echo "demo: the evolving run failed" >&2; exit 1; }
t3=$(now)
sed 's/^/      /' "$TMP/evolving.out"
echo

echo "[3/3] the report of the evolving run (build/hakmem-report --db hakmem-history.db)"
echo
"$REPORT" --db "$HIST" --last
"$REPORT" --db "$HIST" --all --format html -o "$HTML"
"$REPORT" --db "$HIST" --all --format json -o "$TMP/report.json"

echo
echo "Side by side: the same workload, fixed defaults vs evolving"
python3 - "$TMP/fixed.out" "$TMP/evolving.out" "$TMP/report.json" "$t0" "$t1" "$t2" "$t3" <<'EOF'
import json, re, sys
fixed_out, evo_out, rep, t0, t1, t2, t3 = sys.argv[1:8]
def summary(path):
    s = open(path).read()
    v = dict(re.findall(r"(\w+)=([0-9.]+)", s[s.find("summary"):]))
    return v
f, e = summary(fixed_out), summary(evo_out)
runs = {r["mode"]: r for r in json.load(open(rep))["runs"]}
wall_f, wall_e = float(t1) - float(t0), float(t3) - float(t2)
def pct(x): return "n/a" if x is None else "%.1f%%" % (100 * float(x))
def mib(x): return "%.1f MiB" % (float(x) / 1048576)
hr_f = runs.get("fixed", {}).get("summary", {}).get("hit_rate")
hr_e = runs.get("evolving", {}).get("summary", {}).get("hit_rate")
rows = [
    ("wall time (incl. 0.3 s delay + 1.5 s idle)", "%.2f s" % wall_f, "%.2f s" % wall_e),
    ("time per big-phase cycle (rounds 2-4)", "%.1f ms" % float(f["ms_per_big_cycle"]), "%.1f ms" % float(e["ms_per_big_cycle"])),
    ("cache hit rate, whole run", pct(hr_f), pct(hr_e)),
    ("hit rate, big phases of rounds 2-4", pct(f["big_hit_rate_later"]), pct(e["big_hit_rate_later"])),
    ("bytes cached after 1.5 s idle", mib(f["bytes_cached_after"]), mib(e["bytes_cached_after"])),
]
w = max(len(r[0]) for r in rows)
print("  %-*s  %14s  %14s" % (w, "", "fixed (cap 4)", "evolving"))
for r in rows:
    print("  %-*s  %14s  %14s" % (w, r[0], r[1], r[2]))
big_f, big_e = float(f["ms_per_big_cycle"]), float(e["ms_per_big_cycle"])
if big_e > 0:
    print("  -> evolving runs a big-phase cycle %.1fx faster than the fixed defaults" % (big_f / big_e))
reco = runs.get("evolving", {}).get("recommendation", {})
if reco:
    print("  -> a static configuration for this workload (from the recorded history): %s" % reco["env"])
EOF
echo
echo "Files:"
echo "  history DB    $HIST"
echo "  HTML report   $HTML   (one self-contained file: open it in any browser, no network needed)"
echo "  text report   printed above; again with: $REPORT --db $HIST   (--all, --format md|json|html)"
echo "Live dashboard: $TUNER --listen 127.0.0.1:9464 serves /metrics for Prometheus;"
echo "  import dashboards/hakmem-grafana.json into Grafana (dashboards/README.md)."
