#!/usr/bin/env bash
# arena: a preloaded program's blocks come from an arena (a 1 GiB inaccessible
# reservation in /proc/self/maps, the block right in front of its free
# space), and the off switches hold: HAKMEM_ARENA=0, and a finite RLIMIT_AS
# (ulimit -v: a reservation would spend the program's address-space budget),
# each leave block placement to the kernel and reserve nothing.
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u
. "$(dirname "$0")/../lib.sh"
P=$PROGS/arena_probe
need_exe "$P"
need_file "$LIB" "make lib"

out=$(LD_PRELOAD=$LIB "$P") || fail "arena_probe exited $?: $out"
[ "$out" = "arenas=1 block_in_arena=1" ] || fail "default: want one arena holding the block, got '$out'"
ok "default: $out"

out=$(HAKMEM_ARENA=0 LD_PRELOAD=$LIB "$P") || fail "arena_probe (HAKMEM_ARENA=0) exited $?: $out"
[ "$out" = "arenas=0 block_in_arena=0" ] || fail "HAKMEM_ARENA=0: want no arena, got '$out'"
ok "HAKMEM_ARENA=0: $out"

# 64 GiB of address space: far more than the program needs, but finite
out=$( (ulimit -v 67108864 && LD_PRELOAD=$LIB exec "$P") ) || fail "arena_probe (ulimit -v) exited $?: $out"
[ "$out" = "arenas=0 block_in_arena=0" ] || fail "ulimit -v 64 GiB: want no arena, got '$out'"
ok "ulimit -v 67108864: $out"

# glibc alone reserves no such range: the probe tells them apart
out=$("$P") || fail "arena_probe (no preload) exited $?: $out"
[ "$out" = "arenas=0 block_in_arena=0" ] || fail "without hakmem: want no arena, got '$out'"
ok "without hakmem: $out"
finish
