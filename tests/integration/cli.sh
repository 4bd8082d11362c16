#!/usr/bin/env bash
# cli.sh - the command-line convention every hakmem tool shares (README.md,
# "Command-line conventions and exit status"; tools/cli.h):
#   1. every tool: -h/--help (usage + the shared exit table), -V/--version
#      (the HAKMEM_VERSION of include/hakmem.h), --bogus (one line + "Try ...",
#      exit 2, nothing on stdout), a missing value (exit 2); --help and
#      --version into /dev/full exit 1 with "write error"
#   2. -p 999999 is "no such process" (3) in every tool that takes a pid, and a
#      live process without libhakmem is "no hakmem" (4): never the same code
#   3. hakmem-stat against a live process: -p PID interval count, --watch 0.1 2
#      (0.1 is the interval, not a pid), interval count for all processes, the
#      old positional PID and -p-as-prometheus explained; hakmem-probe -p PID
#      interval count (when eBPF works here)
#   4. hakmem-tuner: --interval / --duration in seconds with fractions (a 0.6 s
#      run at 0.05 s records many samples), the old "--interval 100" (ms)
#      explained, --listen with a malformed address is a usage error (2)
#   5. hakmem-report on an unreadable DB (as uid 65534: root ignores modes)
#      names the file and the errno reason, exit 1; a missing one too; a
#      history in a directory it cannot write is read (immutable) unless a
#      -wal file holds changes (then exit 1, said); its
#      JSON of a command line with DEL (recorded from /proc/PID/cmdline) is
#      escaped (the report's own escaper let 0x7f through)
#   6. README's exit-status table has every row of the tools' --help table
# Exit 0 pass, 77 skip, else fail.
set -u
. "$(dirname "$0")/../lib.sh"
STAT=$B/hakmem-stat
TUNER=$B/hakmem-tuner
REPORT=$B/hakmem-report
PROBE=$B/hakmem-probe
CHURN=$B/tests/progs/churn
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

for f in "$STAT" "$TUNER" "$REPORT" "$CHURN" "$LIB"; do [ -e "$f" ] || { echo "FAIL: $f missing (make all test-build)"; exit 1; }; done
command -v python3 >/dev/null || skip "python3 needed to check JSON"
command -v sqlite3 >/dev/null || skip "sqlite3 needed to count samples"
TOOLS=("$STAT" "$TUNER" "$REPORT")
if [ -x "$PROBE" ]; then TOOLS+=("$PROBE")
elif [ -f "$B/bpf/SKIPPED" ]; then echo "note: hakmem-probe not built: $(cat "$B/bpf/SKIPPED")"
else echo "FAIL: $PROBE missing"; exit 1; fi

chmod 755 "$T"
bg=()
cleanup() {
  local p
  for p in "${bg[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${bg[@]}"; do wait "$p" 2>/dev/null; done
}
at_exit cleanup

# run CMD...: sets RC, OUT (stdout file $T/out), ERR ($T/err)
run() { RC=0; "$@" >"$T/out" 2>"$T/err" || RC=$?; }
show() { echo "--- stdout"; head -n 20 "$T/out"; echo "--- stderr"; head -n 20 "$T/err"; }

VERSION=$(sed -n 's/^#define HAKMEM_VERSION "\(.*\)"/\1/p' include/hakmem.h)
[ -n "$VERSION" ] || { echo "FAIL: no HAKMEM_VERSION in include/hakmem.h"; exit 1; }

echo "== 1. -h, -V, --bogus on every tool"
for tool in "${TOOLS[@]}"; do
  name=$(basename "$tool")
  for h in -h --help; do
    run "$tool" "$h"
    if [ $RC -eq 0 ] && grep -q "^Usage: $name" "$T/out" && grep -q "^Exit status" "$T/out" \
       && grep -Eq "^ +3  no such process" "$T/out" && grep -Eq "^ +4  the process runs without hakmem" "$T/out" \
       && grep -q "Command-line conventions" "$T/out"; then
      ok "$name $h: usage, the shared exit table, the README pointer"
    else bad "$name $h: exit $RC"; show; fi
  done
  for v in -V --version; do
    run "$tool" "$v"
    if [ $RC -eq 0 ] && grep -q "^$name (hakmem) $VERSION\b" "$T/out" && [ ! -s "$T/err" ]; then ok "$name $v: $(head -n 1 "$T/out")"
    else bad "$name $v: exit $RC"; show; fi
  done
  run "$tool" --bogus
  if [ $RC -eq 2 ] && [ ! -s "$T/out" ] && [ "$(wc -l <"$T/err")" -eq 2 ] \
     && [ "$(sed -n 1p "$T/err")" = "$name: unknown option '--bogus'" ] \
     && [ "$(sed -n 2p "$T/err")" = "Try '$name --help'." ]; then
    ok "$name --bogus: exit 2, '$(sed -n 1p "$T/err")'"
  else bad "$name --bogus: exit $RC (want 2, two lines)"; show; fi
  run "$tool" -Z
  [ $RC -eq 2 ] && [ "$(sed -n 1p "$T/err")" = "$name: unknown option '-Z'" ] && [ "$(wc -l <"$T/err")" -eq 2 ] \
    && ok "$name -Z: exit 2" || { bad "$name -Z: exit $RC"; show; }
  run "$tool" --help=x
  [ $RC -eq 2 ] && [ "$(sed -n 1p "$T/err")" = "$name: option '--help' takes no value" ] \
    && ok "$name --help=x: exit 2" || { bad "$name --help=x: exit $RC"; show; }
  # what cannot be written is an error, not a success (a full disk, a closed pipe)
  if [ -w /dev/full ]; then
    for o in --help --version; do
      RC=0; "$tool" "$o" >/dev/full 2>"$T/err" || RC=$?
      [ $RC -eq 1 ] && grep -q "^$name: write error on standard output" "$T/err" \
        && ok "$name $o >/dev/full: exit 1, '$(head -n 1 "$T/err")'" || { bad "$name $o >/dev/full: exit $RC"; show; }
    done
  fi
done
# the benchmark takes the same -V and the same usage errors
BENCH=$B/bench_allocators_hakmem
if [ -x "$BENCH" ]; then
  run "$BENCH" -V
  grep -q "^bench_allocators_hakmem (hakmem) $VERSION\b" "$T/out" && [ $RC -eq 0 ] && ok "bench_allocators_hakmem -V" \
    || { bad "bench_allocators_hakmem -V: exit $RC"; show; }
  run "$BENCH" --bogus
  [ $RC -eq 2 ] && [ "$(cat "$T/err")" = "bench_allocators_hakmem: unknown option '--bogus'
Try 'bench_allocators_hakmem --help'." ] && ok "bench_allocators_hakmem --bogus: exit 2, one line" \
    || { bad "bench_allocators_hakmem --bogus: exit $RC"; show; }
fi
for tool in "$STAT" "$TUNER" ${PROBE:+$([ -x "$PROBE" ] && echo "$PROBE")}; do
  name=$(basename "$tool")
  run "$tool" --pid
  [ $RC -eq 2 ] && grep -q "^$name: option '--pid' needs a value" "$T/err" && ok "$name --pid (no value): exit 2" \
    || { bad "$name --pid without a value: exit $RC"; show; }
  run "$tool" -p 12abc
  [ $RC -eq 2 ] && grep -q "^$name: '12abc' is not a process id" "$T/err" && ok "$name -p 12abc: exit 2" \
    || { bad "$name -p 12abc: exit $RC"; show; }
done
run "$REPORT" --db
[ $RC -eq 2 ] && grep -q "^hakmem-report: option '--db' needs a value" "$T/err" && ok "hakmem-report --db (no value): exit 2" \
  || { bad "hakmem-report --db without a value: exit $RC"; show; }

echo "== 2. -p 999999 (no such process) vs a live process without hakmem"
NOPID=999999
while [ -e "/proc/$NOPID" ]; do NOPID=$((NOPID + 1)); done
sleep 60 &
SLEEPER=$!; bg+=("$SLEEPER")
checkpid() {   # want-rc want-text tool args...
  local want=$1 text=$2; shift 2
  run "$@"
  if [ $RC -eq "$want" ] && grep -q "$text" "$T/err"; then ok "$(basename "$1") ${*:2}: exit $RC: $(head -n 1 "$T/err")"
  else bad "$(basename "$1") ${*:2}: exit $RC, want $want /$text/"; show; fi
}
checkpid 3 "pid $NOPID: no such process" "$STAT" -p "$NOPID"
checkpid 4 "pid $SLEEPER: no hakmem segment" "$STAT" -p "$SLEEPER"
checkpid 3 "pid $NOPID: no such process" "$TUNER" --db "$T/t.db" -p "$NOPID"
checkpid 4 "pid $SLEEPER: no hakmem segment" "$TUNER" --db "$T/t.db" -p "$SLEEPER"
if [ -x "$PROBE" ]; then
  # the target is checked before privilege and kernel support: the same codes everywhere
  checkpid 3 "pid $NOPID: no such process" "$PROBE" -p "$NOPID"
  checkpid 4 "process $SLEEPER has no libhakmem" "$PROBE" -p "$SLEEPER"
  checkpid 2 "count 'x' is not a positive number" "$PROBE" -p "$SLEEPER" 1 x
fi

echo "== 3. hakmem-stat: [interval [count]] against a live process"
# a command line with DEL and a control byte (the report's JSON below)
ODD="$T/ch"$'\x7f'"u"$'\x01'"rn"
ln -s "$CHURN" "$ODD"
env HAKMEM_MODE=fixed HAKMEM_BACKGROUND_THREAD=1 HAKMEM_STATS=1 LD_PRELOAD="$LIB" \
    "$ODD" -n 8 -s 256K -r 4 --pause >"$T/churn.out" 2>&1 &
P=$!; bg+=("$P")
for _ in $(seq 400); do grep -q "^paused 1 " "$T/churn.out" && break; sleep 0.05; done
grep -q "^paused 1 " "$T/churn.out" || { cat "$T/churn.out"; echo "FAIL: churn never paused"; exit 1; }
run "$STAT" -p "$P" 0.1 3
[ $RC -eq 0 ] && [ "$(grep -c ' refresh ' "$T/out")" -eq 3 ] && grep -q "every 0.1s" "$T/out" \
  && ok "hakmem-stat -p PID 0.1 3: 3 refreshes, every 0.1 s" || { bad "hakmem-stat -p PID 0.1 3: exit $RC"; show; }
run "$STAT" --watch 0.1 2 -p "$P"
[ $RC -eq 0 ] && [ "$(grep -c ' refresh ' "$T/out")" -eq 2 ] && grep -q "^pid $P " "$T/out" \
  && ok "hakmem-stat --watch 0.1 2 -p PID: the interval and count, not a pid" || { bad "--watch 0.1 2: exit $RC"; show; }
run "$STAT" --watch=0.1 -c 2 --json -p "$P"
[ $RC -eq 0 ] && [ "$(wc -l <"$T/out")" -eq 2 ] && ok "hakmem-stat --watch=0.1 -c 2 --json: 2 JSON lines" \
  || { bad "--watch=0.1 -c 2 --json: exit $RC"; show; }
run "$STAT" 0.1 2
[ $RC -eq 0 ] && [ "$(grep -c ' refresh ' "$T/out")" -eq 2 ] && grep -Eq "^ *$P " "$T/out" \
  && ok "hakmem-stat 0.1 2: every process, twice" || { bad "hakmem-stat 0.1 2: exit $RC"; show; }
run "$STAT" "$P"
[ $RC -eq 2 ] && grep -q "for process $P write -p $P" "$T/err" \
  && ok "hakmem-stat PID (the old form): exit 2, explained" || { bad "hakmem-stat PID: exit $RC"; show; }
run "$STAT" -p
[ $RC -eq 2 ] && grep -q -- "-P, --prometheus" "$T/err" && ok "hakmem-stat -p (the old --prometheus): exit 2, explained" \
  || { bad "hakmem-stat -p: exit $RC"; show; }
run "$STAT" -P -p "$P"
[ $RC -eq 0 ] && grep -q "^hakmem_" "$T/out" && ok "hakmem-stat -P -p PID: Prometheus text" || { bad "-P -p PID: exit $RC"; show; }
run "$STAT" --json -p "$P"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" && [ $RC -eq 0 ] \
  && ok "hakmem-stat --json -p PID: valid JSON" || { bad "hakmem-stat --json -p PID: exit $RC"; show; }

if [ -x "$PROBE" ] && "$PROBE" --check >/dev/null 2>&1; then
  # the same positional form in hakmem-probe: a summary every 0.2 s, 3 times, then it stops
  run timeout 60 "$PROBE" -p "$P" -q --json 0.2 3
  if [ $RC -eq 0 ] && [ "$(grep -c '"event":"interval"' "$T/out")" -eq 3 ] \
     && grep -q '"event":"summary".*"stopped_by":"count reached"' "$T/out"; then
    ok "hakmem-probe -p PID 0.2 3: 3 interval records, then stops"
  else bad "hakmem-probe -p PID 0.2 3: exit $RC"; show; fi
else
  echo "note: eBPF not usable here: hakmem-probe's interval count not run (tests/integration/ebpf.sh says why)"
fi

echo "== 4. hakmem-tuner: seconds with fractions"
t0=$(date +%s%N)
run "$TUNER" --db "$T/hist.db" -p "$P" --interval 0.05 --duration 0.6 -q
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
n=$(sqlite3 "$T/hist.db" "SELECT COUNT(*) FROM samples" 2>/dev/null || echo 0)
# 0.6 s at 0.05 s is ~12 samples; the old parser refused both values, and a
# whole-second interval would give 1 or 2
if [ $RC -eq 0 ] && [ "$n" -ge 4 ] && [ $ms -lt 10000 ]; then ok "hakmem-tuner --interval 0.05 --duration 0.6: exit 0 after $ms ms, $n samples"
else bad "hakmem-tuner --interval 0.05 --duration 0.6: exit $RC after $ms ms, $n samples"; show; fi
run "$TUNER" --db "$T/hist2.db" -p "$P" --interval 50ms --duration 0.2 -q
[ $RC -eq 0 ] && ok "hakmem-tuner --interval 50ms: accepted" || { bad "--interval 50ms: exit $RC"; show; }
run "$TUNER" --db "$T/hist2.db" -p "$P" --interval 100
[ $RC -eq 2 ] && grep -q "in seconds" "$T/err" && grep -q "0.1" "$T/err" \
  && ok "hakmem-tuner --interval 100 (the old ms): exit 2: $(head -n 1 "$T/err")" || { bad "--interval 100: exit $RC"; show; }
for l in foo 127.0.0.1:http 70000 "[::1]" "127.0.0.1:"; do
  run "$TUNER" --listen "$l" --duration 0.1
  [ $RC -eq 2 ] && grep -q "^hakmem-tuner: --listen" "$T/err" && ok "hakmem-tuner --listen '$l': usage error (2)" \
    || { bad "hakmem-tuner --listen '$l': exit $RC (want 2)"; show; }
done
run "$TUNER" --listen=127.0.0.1:0 --duration 0.2 -q
[ $RC -eq 0 ] && ok "hakmem-tuner --listen=127.0.0.1:0 --duration 0.2: exit 0" || { bad "--listen port 0: exit $RC"; show; }

echo "== 5. hakmem-report: an unreadable DB says why"
cp "$T/hist.db" "$T/locked.db"
chmod 000 "$T/locked.db"
if [ "$(id -u)" -eq 0 ]; then
  command -v setpriv >/dev/null || skip "setpriv needed to read the DB as another user"
  AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else AS=(); fi
run "${AS[@]}" "$REPORT" --db "$T/locked.db"
[ $RC -eq 1 ] && [ "$(cat "$T/err")" = "hakmem-report: cannot open $T/locked.db: Permission denied" ] \
  && ok "unreadable DB: exit 1: $(cat "$T/err")" || { bad "unreadable DB: exit $RC"; show; }
if [ ${#AS[@]} -gt 0 ]; then
  # a WAL history in a directory the reader cannot write (T is root's, 0755): read as immutable
  cp "$T/hist.db" "$T/ro.db"; chmod 644 "$T/ro.db"; rm -f "$T/ro.db-wal" "$T/ro.db-shm"
  run "${AS[@]}" "$REPORT" --db "$T/ro.db"
  [ $RC -eq 0 ] && grep -q "^hakmem report: $T/ro.db" "$T/out" \
    && ok "a history in a directory the reader cannot write: read (exit 0)" || { bad "read-only directory: exit $RC"; show; }
  # ... unless a -wal file beside it holds changes: then it says so
  printf 'x' >"$T/ro.db-wal"; chmod 644 "$T/ro.db-wal"
  run "${AS[@]}" "$REPORT" --db "$T/ro.db"
  [ $RC -eq 1 ] && grep -q "directory this user cannot write, with changes in its -wal file" "$T/err" \
    && ok "the same with changes in its -wal: exit 1, said" || { bad "read-only directory + wal: exit $RC"; show; }
  rm -f "$T/ro.db-wal"
fi
run "$REPORT" --db "$T/missing.db"
[ $RC -eq 1 ] && [ "$(cat "$T/err")" = "hakmem-report: cannot open $T/missing.db: No such file or directory" ] \
  && ok "missing DB: exit 1: $(cat "$T/err")" || { bad "missing DB: exit $RC"; show; }
run "$REPORT" --db "$T/hist.db" --format json
if [ $RC -eq 0 ] && ! LC_ALL=C grep -q $'[\x01\x7f]' "$T/out" \
   && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); c=d["runs"][0]["command"]; sys.exit(0 if "\x7f" in c else "command %r" % c)' "$T/out"; then
  ok "hakmem-report --format json: the command with DEL is escaped and reads back"
else bad "hakmem-report json of an odd command: exit $RC"; show; fi

echo "== 6. README's exit-status table = the tools' table"
"$STAT" --help | sed -n '/^Exit status/,/^  Without/p' | grep -E '^ +[0-9]+  ' | while read -r code text; do
  grep -Eq "^\| $code \| \`[A-Z]+\` \| " README.md || echo "README lacks exit status $code ($text)"
done >"$T/readme"
[ ! -s "$T/readme" ] && ok "every exit status of --help is in README.md" || { bad "README's table"; cat "$T/readme"; }

[ $fails -eq 0 ] && echo "PASS: the command-line convention holds" || { echo "FAIL: $fails check(s)"; exit 1; }
