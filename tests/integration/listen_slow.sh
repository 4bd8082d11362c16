#!/usr/bin/env bash
# listen_slow.sh - hakmem-tuner --listen serves /metrics between samples, in
# the sampling loop: a client that sends its request a byte at a time (or
# never reads the answer) gets the request's 2 s and no more, so the samples
# go on at their interval, and SIGTERM ends the tuner at once even then.
# Exit 0 pass, 77 skip (reason on the last line), else fail.
set -u
. "$(dirname "$0")/../lib.sh"
TUNER=$B/hakmem-tuner
CHURN=$PROGS/churn
need_exe "$TUNER" make
need_exe "$CHURN"
need_cmd sqlite3
need_cmd python3
[ -d /dev/shm ] && [ -w /dev/shm ] || skip "no writable /dev/shm"

env HAKMEM_MODE=fixed HAKMEM_STATS=1 LD_PRELOAD="$LIB" "$CHURN" --pause -r 4 >"$T/churn.out" 2>&1 &
C=$!
at_exit kill -9 "$C"
at_exit rm -f "/dev/shm/hakmem.$C"
for _ in $(seq 1 400); do grep -q "^paused 1 " "$T/churn.out" && break; sleep 0.05; done
grep -q "^paused 1 " "$T/churn.out" || { cat "$T/churn.out"; fail "churn never paused"; }
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

slow_client() {   # a request of one byte every 0.7 s, for SECONDS, on fresh connections
  python3 - "$PORT" "$1" <<'PY' &
import socket, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + secs
while time.time() < end:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        for b in b"GET /metrics HTTP/1.0\r\n":
            s.send(bytes([b]))
            time.sleep(0.7)
            if time.time() >= end: break
        s.close()
    except OSError:
        time.sleep(0.1)
PY
  SLOW=$!
  at_exit kill "$SLOW"
}

# 1. samples go on at 0.1 s while the slow client holds requests open
"$TUNER" --listen "127.0.0.1:$PORT" --db "$T/h.db" -p "$C" -i 0.1 -d 5 >"$T/tuner.out" 2>&1 &
TP=$!
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), timeout=1).close()" 2>/dev/null && break; sleep 0.05; done
slow_client 5
rc=0; wait "$TP" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/tuner.out"; fail "hakmem-tuner --listen exit $rc"; }
n=$(sqlite3 "$T/h.db" "SELECT COUNT(*) FROM samples")
echo "samples in 5 s at 0.1 s under a slow client: $n"
[ "$n" -ge 25 ] || fail "only $n samples in 5 s at 0.1 s: the slow client held the sampling loop"

# 2. SIGTERM while a slow request is being read: the tuner ends within a second
"$TUNER" --listen "127.0.0.1:$PORT" --db "$T/h2.db" -p "$C" -i 0.1 -d 60 >"$T/tuner2.out" 2>&1 &
TP=$!
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), timeout=1).close()" 2>/dev/null && break; sleep 0.05; done
slow_client 10
sleep 1.2
t0=$(date +%s%N)
kill -TERM "$TP"
rc=0; wait "$TP" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "SIGTERM during a slow request: exit $rc after $ms ms"
[ "$ms" -lt 1500 ] || fail "SIGTERM took $ms ms to end hakmem-tuner --listen"
echo "listen_slow: ok"
