#!/usr/bin/env bash
# overhead.sh - what the probes cost a churning program (run as root).
#
#   bpf/overhead.sh [BUILD_DIR] [ROUNDS] [REPEATS] [NOSDT_LIB]
#   TOUCH=1 bpf/overhead.sh ...     blocks are touched (page faults dominate)
#
# Runs tests/progs/mmwork (churn of 64 KiB..3 MiB blocks, untouched: -N, so
# the allocator paths dominate, unless TOUCH=1) and reports the median churn
# time of:
#   nosdt     libhakmem built without USDT probes (only if NOSDT_LIB is given)
#   sdt       libhakmem with USDT probes, nothing attached
#   probe     hakmem-probe -- attached (tracepoints + 4 USDT probes)
#   bpftrace  bpftrace bpf/flushes.bt attached
# each for HAKMEM_RING_CAP=4 (default) and 0 (every free goes through Batch:
# one bigcache_evict probe per block, the probe-heaviest case).  Configurations
# are interleaved round by round; the machine is noisy, compare medians.
set -u
B=${1:-build}
ROUNDS=${2:-100}
REP=${3:-7}
NOSDT=${4:-}
LIB=$B/libhakmem.so
W=$B/tests/progs/mmwork
PROBE=$B/hakmem-probe
cd "$(dirname "$0")/.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null

NT=-N
[ "${TOUCH:-0}" = 1 ] && NT=
ns() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["churn_ns"], d["churn_cpu_ns"])' "$1"; }

run() {   # config cap -> prints churn_ns
  local cfg=$1 cap=$2 out=$T/out.json
  rm -f "$out"
  case $cfg in
    nosdt) HAKMEM_RING_CAP=$cap LD_PRELOAD=$NOSDT "$W" $NT -r "$ROUNDS" -o "$out" ;;
    sdt) HAKMEM_RING_CAP=$cap LD_PRELOAD=$LIB "$W" $NT -r "$ROUNDS" -o "$out" ;;
    probe) HAKMEM_RING_CAP=$cap "$PROBE" -q --lib "$LIB" -- "$W" $NT -r "$ROUNDS" -o "$out" >/dev/null 2>&1 ;;
    bpftrace)
      HAKMEM_RING_CAP=$cap LD_PRELOAD=$LIB "$W" -s $NT -r "$ROUNDS" -o "$out" &
      local p=$!
      while [ "$(awk '{print $3}' /proc/$p/stat 2>/dev/null)" != T ]; do sleep 0.02; done
      bpftrace -p $p bpf/flushes.bt $p >"$T/bt.out" 2>&1 &
      local bt=$!
      while ! grep -q '^Tracing' "$T/bt.out"; do sleep 0.05; done
      kill -CONT $p
      wait $p
      wait $bt ;;
  esac
  ns "$out"
}

cfgs=(sdt probe)
[ -n "$NOSDT" ] && cfgs=(nosdt "${cfgs[@]}")
command -v bpftrace >/dev/null && cfgs+=(bpftrace)
for cap in 4 0; do
  for c in "${cfgs[@]}"; do : >"$T/$c.$cap"; done
  for r in $(seq "$REP"); do
    for c in "${cfgs[@]}"; do run "$c" "$cap" >>"$T/$c.$cap"; done
  done
  med() { awk -v k="$2" '{print $k}' "$1" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  bw=$(med "$T/sdt.$cap" 1)
  bc=$(med "$T/sdt.$cap" 2)
  echo "HAKMEM_RING_CAP=$cap, mmwork $NT -r $ROUNDS, median of $REP (wall, and CPU time of the traced process):"
  for c in "${cfgs[@]}"; do
    mw=$(med "$T/$c.$cap" 1)
    mc=$(med "$T/$c.$cap" 2)
    awk -v c="$c" -v mw="$mw" -v bw="$bw" -v mc="$mc" -v bc="$bc" 'BEGIN {
      printf "  %-9s wall %9.2f ms %+6.1f%%   cpu %9.2f ms %+6.1f%%  (vs sdt)\n", c, mw / 1e6, (mw - bw) * 100 / bw, mc / 1e6, (mc - bc) * 100 / bc }'
  done
done
