#!/usr/bin/env bash
# Fault injection: the allocator returns clean errors, leaks nothing and keeps
# working when the system says no.
#   1. mmap/mremap failures through the test hook hak_os_fail_next (native,
#      tests/unit/test_faults: every allocating path, gauges unchanged, no
#      metadata lost) and munmap failures (munmap interposed there);
#   2. RLIMIT_AS on a preloaded program: lowered by the program itself, and
#      set before exec (prlimit): NULL/ENOMEM, old blocks intact, gauges
#      unchanged, everything works again once the limit allows;
#   3. munmap failure on a preloaded program (a seccomp filter fails munmap of
#      one length with EPERM): counted in munmap_failures, reported on stderr
#      exactly once, never silent;
#   4. telemetry segment creation failure leaves the allocator working and
#      HAKMEM_VERBOSE=1 says telemetry is disabled: a file of another user at
#      /dev/shm/hakmem.<pid>, a symlink there (its target untouched), /dev/shm
#      not writable (non-root user, private mount namespace), /dev/shm full;
#      and a stale segment of our own uid is replaced (telemetry on).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
P=$PROGS/fault_preload
need_exe "$P"
tmp=$T
pids=() shmfiles=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "${shmfiles[@]}"; do rm -f "$f"; done
}
at_exit cleanup
fail=0 skipped=()
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; fail=1; }

# ---- 1. native: hak_os_fail_next and an interposed munmap ----
if "$B/tests/test_faults" >"$tmp/native.log" 2>&1; then
  ok "native (test_faults): $(grep -c '^\[       OK \]' "$tmp/native.log") fault tests: mmap/mremap ENOMEM on every path, gauges unchanged, no metadata lost, munmap failure counted + reported once"
else
  bad "native fault tests (test_faults)"
  grep -E 'ERROR|FAILED' "$tmp/native.log" | head -n 20
fi

# ---- 2. RLIMIT_AS, preloaded ----
if LD_PRELOAD=$LIB "$P" rlimit inside >"$tmp/rl.out" 2>"$tmp/rl.err"; then
  ok "$(cat "$tmp/rl.out")"
else
  bad "RLIMIT_AS lowered by the program"; cat "$tmp/rl.out" "$tmp/rl.err" | head -n 20
fi
if prlimit --as=$((512 << 20)) env LD_PRELOAD="$LIB" "$P" rlimit outside >"$tmp/rl2.out" 2>"$tmp/rl2.err"; then
  ok "$(cat "$tmp/rl2.out")"
else
  bad "RLIMIT_AS set before exec"; cat "$tmp/rl2.out" "$tmp/rl2.err" | head -n 20
fi

# ---- 3. munmap failure, preloaded: counted and reported once ----
if HAKMEM_THP=never LD_PRELOAD=$LIB "$P" munmap >"$tmp/mu.out" 2>"$tmp/mu.err"; then
  n=$(grep -c 'munmap(.*failed' "$tmp/mu.err" || true)
  if [ "$n" -eq 1 ] && grep -q 'munmap_failures' "$tmp/mu.err"; then
    ok "$(cat "$tmp/mu.out")"
    ok "stderr: $(grep 'munmap(' "$tmp/mu.err")"
  else
    bad "munmap failures: $n reports on stderr, want exactly 1 naming munmap_failures"; cat "$tmp/mu.err"
  fi
else
  bad "munmap failure program"; cat "$tmp/mu.out" "$tmp/mu.err" | head -n 20
fi

# ---- 4. telemetry segment creation failures ----
# Start a preloaded program whose pid is known before it runs: it waits on a
# fifo, the test plants something at /dev/shm/hakmem.<pid>, then lets it go.
gated() {   # NAME cmd...   -> sets GPID; out/err in $tmp/NAME.{out,err}
  local name=$1
  shift
  mkfifo "$tmp/$name.go"
  ( read -r _ <"$tmp/$name.go"; exec "$@" ) >"$tmp/$name.out" 2>"$tmp/$name.err" &
  GPID=$!
  pids+=("$GPID")
}
go() { echo go >"$tmp/$1.go"; }
finish() {   # NAME PID -> 0 when the program succeeded
  local rc=0
  wait "$2" || rc=$?
  if [ $rc -ne 0 ] || ! grep -q '^churn ok' "$tmp/$1.out"; then
    bad "$1: program failed (exit $rc)"
    cat "$tmp/$1.out" "$tmp/$1.err" | head -n 10
    return 1
  fi
}
says_disabled() { grep -q 'telemetry disabled' "$tmp/$1.err"; }
run_env=(env HAKMEM_VERBOSE=1 LD_PRELOAD="$LIB" "$P" churn 0.5)

# 4a. a file of another user in the way
gated foreign "${run_env[@]}"
f=/dev/shm/hakmem.$GPID
shmfiles+=("$f")
printf 'not yours' >"$f"
chown 65534:65534 "$f"
chmod 600 "$f"
go foreign
if finish foreign "$GPID"; then
  if says_disabled foreign && [ "$(cat "$f")" = "not yours" ] && [ "$(stat -c %u "$f")" = 65534 ]; then
    ok "another user's file at $f: program works, 'telemetry disabled', the file untouched"
  else
    bad "another user's file: $(grep -c 'telemetry disabled' "$tmp/foreign.err") 'disabled' lines, file now '$(head -c 20 "$f")' uid $(stat -c %u "$f")"
  fi
fi
rm -f "$f"

# 4b. a symlink in its place (target must not be created or written)
gated symlink "${run_env[@]}"
f=/dev/shm/hakmem.$GPID
shmfiles+=("$f")
ln -s "$tmp/symlink-target" "$f"
printf 'keep' >"$tmp/existing"
ln -s "$tmp/existing" "$tmp/unused-link"
go symlink
if finish symlink "$GPID"; then
  if says_disabled symlink && [ ! -e "$tmp/symlink-target" ] && [ -L "$f" ]; then
    ok "a symlink at $f: program works, 'telemetry disabled', nothing created through it"
  else
    bad "symlink: disabled=$(says_disabled symlink && echo yes || echo no), target exists=$([ -e "$tmp/symlink-target" ] && echo yes || echo no)"
  fi
fi
rm -f "$f"
gated symlink2 "${run_env[@]}"
f=/dev/shm/hakmem.$GPID
shmfiles+=("$f")
ln -s "$tmp/existing" "$f"
go symlink2
if finish symlink2 "$GPID"; then
  if says_disabled symlink2 && [ "$(cat "$tmp/existing")" = keep ] && [ -L "$f" ]; then
    ok "a symlink to an existing file: program works, 'telemetry disabled', the file untouched"
  else
    bad "symlink to an existing file: contents now '$(cat "$tmp/existing")'"
  fi
fi
rm -f "$f"

# 4c. a stale segment of our own uid (a dead process had this pid) is replaced
gated stale env HAKMEM_VERBOSE=1 LD_PRELOAD="$LIB" "$P" churn 1.5
f=/dev/shm/hakmem.$GPID
shmfiles+=("$f")
head -c 100 /dev/urandom >"$f"
chmod 600 "$f"
go stale
for _ in $(seq 1 100); do grep -q ready "$tmp/stale.out" 2>/dev/null && break; sleep 0.05; done
magic=$(od -An -tx8 -N8 "$f" 2>/dev/null | tr -d ' ')
size=$(stat -c %s "$f" 2>/dev/null || echo 0)
if finish stale "$GPID"; then
  if [ "$magic" = 00004d454d4b4148 ] && [ "$size" -gt 100 ] && ! says_disabled stale; then
    ok "a stale segment of our uid is replaced by a fresh one (magic ok, $size bytes), telemetry on"
  else
    bad "stale segment: magic '$magic' size $size, disabled=$(says_disabled stale && echo yes || echo no)"
  fi
fi
[ -e "$f" ] && bad "the replaced segment $f was not removed at exit"
rm -f "$f"

# 4d/4e need a private mount namespace (a tmpfs over /dev/shm seen by the test only)
if unshare --mount --propagation private true 2>/dev/null; then
  # the library and the program must be readable by the unprivileged user
  priv=$tmp/priv
  mkdir -p "$priv"
  cp "$LIB" "$P" "$priv/"
  chmod 755 "$tmp" "$priv" "$priv"/*
  # 4d. /dev/shm not writable for a non-root user
  if unshare --mount --propagation private -- bash -c '
       mount -t tmpfs -o mode=0755,size=1m hakmem-test /dev/shm || exit 90
       exec setpriv --reuid=65534 --regid=65534 --clear-groups \
         env HAKMEM_VERBOSE=1 LD_PRELOAD="$1/libhakmem.so" "$1/fault_preload" churn 0.5' _ "$priv" \
       >"$tmp/ro.out" 2>"$tmp/ro.err"; then
    if grep -q '^churn ok' "$tmp/ro.out" && grep -q 'telemetry disabled.*Permission denied' "$tmp/ro.err"; then
      ok "/dev/shm not writable (uid 65534): program works, $(grep -o 'telemetry disabled.*' "$tmp/ro.err" | head -n 1)"
    else
      bad "/dev/shm not writable: output"; cat "$tmp/ro.out" "$tmp/ro.err" | head -n 10
    fi
  else
    rc=$?
    if [ $rc -eq 90 ]; then skipped+=("tmpfs mount in a namespace"); else
      bad "/dev/shm not writable (uid 65534): exit $rc"; cat "$tmp/ro.out" "$tmp/ro.err" | head -n 10
    fi
  fi
  # 4e. /dev/shm full: creating the segment must fail cleanly (not SIGBUS later)
  rc=0
  unshare --mount --propagation private -- bash -c '
       mount -t tmpfs -o size=64k hakmem-test /dev/shm || exit 90
       dd if=/dev/zero of=/dev/shm/fill bs=4k count=64 2>/dev/null
       exec env HAKMEM_VERBOSE=1 LD_PRELOAD="$1/libhakmem.so" "$1/fault_preload" churn 0.5' _ "$priv" \
       >"$tmp/full.out" 2>"$tmp/full.err" || rc=$?
  if [ $rc -eq 90 ]; then
    skipped+=("tmpfs mount in a namespace")
  elif [ $rc -eq 0 ] && grep -q '^churn ok' "$tmp/full.out" && grep -q 'telemetry disabled' "$tmp/full.err"; then
    ok "/dev/shm full: program works, $(grep -o 'telemetry disabled.*' "$tmp/full.err" | head -n 1)"
  else
    bad "/dev/shm full: the program died (exit $rc$([ $rc -gt 128 ] && echo ", signal $((rc - 128))"))"
    cat "$tmp/full.out" "$tmp/full.err" | head -n 10
  fi
else
  skipped+=("no private mount namespace (unshare --mount): /dev/shm read-only and full cases")
fi

if [ $fail -ne 0 ]; then
  echo "faults: FAILED"
  exit 1
fi
[ ${#skipped[@]} -gt 0 ] && echo "faults: passed; not run: ${skipped[*]}"
echo "faults: all injected faults handled"
