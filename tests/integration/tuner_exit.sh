#!/usr/bin/env bash
# tests/integration/tuner_exit.sh - the in-process tuner closes its run in the
# history even when another writer holds the DB lock at exit (issue 13,
# defect 8: the exit waited 1 s for the tuner thread while a SQLite write may
# wait 2 s for a lock, so a run could be left with end_ns NULL).
#
# tests/progs/history_exit runs in HAKMEM_MODE=evolving with HAKMEM_HISTORY;
# once its run has samples, a python3 sqlite3 connection takes the write lock
# (BEGIN IMMEDIATE), tells the program to exit, and holds the lock 1.2 s.
# The run must still end with end_ns set, and the program must exit 0 without
# hanging (the library waits for its thread, bounded).
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u
. "$(dirname "$0")/../lib.sh"
PROG=$PROGS/history_exit

[ -f "$LIB" ] || skip "libhakmem.so not built ($LIB)"
[ -x "$PROG" ] || skip "tests/progs/history_exit not built ($PROG)"
command -v sqlite3 >/dev/null || skip "sqlite3 CLI missing (apt-get install sqlite3)"
command -v python3 >/dev/null || skip "python3 missing"
python3 -c 'import sqlite3' 2>/dev/null || skip "python3 has no sqlite3 module"
[ -e /usr/lib/x86_64-linux-gnu/libsqlite3.so.0 ] || ldconfig -p | grep -q 'libsqlite3\.so\.0' \
  || skip "libsqlite3.so.0 missing (apt-get install libsqlite3-0)"

TMP=$T
PP=
cleanup() {
  [ -n "$PP" ] && kill "$PP" 2>/dev/null
}
at_exit cleanup
DB=$TMP/history.db
q() { sqlite3 -batch -noheader "$DB" "$1" 2>/dev/null; }

env HAKMEM_MODE=evolving HAKMEM_HISTORY="$DB" HAKMEM_TUNE_INTERVAL_MS=50 LD_PRELOAD="$LIB" \
  "$PROG" "$TMP/go" 60 >"$TMP/prog.out" 2>&1 &
PP=$!
for _ in $(seq 200); do
  n=$(q "SELECT COUNT(*) FROM samples s JOIN runs r ON r.id = s.run_id WHERE r.pid = $PP")
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.05
done
[ "${n:-0}" -ge 3 ] || { cat "$TMP/prog.out"; fail "the in-process tuner recorded no samples for pid $PP"; }

# hold the write lock across the program's exit
python3 - "$DB" "$TMP/go" <<'PY' || fail "could not hold the DB lock"
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
con.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(1.2)
con.execute("ROLLBACK")
con.close()
PY
t0=$(date +%s%N)
wait "$PP"; rc=$?
PP=
t1=$(date +%s%N)
cat "$TMP/prog.out"
[ $rc -eq 0 ] || fail "history_exit exited $rc"
end=$(q "SELECT COALESCE(end_ns, 'NULL') FROM runs WHERE source = 'in-process'")
echo "run end_ns after a 1.2 s lock at exit: $end (program gone $(( (t1 - t0) / 1000000 )) ms after the lock was released)"
[ "$end" != NULL ] && [ -n "$end" ] || fail "the run was left unclosed (end_ns NULL): the exit did not outwait the DB lock"
[ "$(q "PRAGMA integrity_check")" = ok ] || fail "DB integrity check"
echo "PASS: run closed although the DB was locked for 1.2 s at exit"
exit 0
