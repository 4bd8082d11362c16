#!/usr/bin/env bash
# Real programs under LD_PRELOAD=libhakmem.so, each output compared with the
# same command run without hakmem, and proof that hakmem served large blocks:
#   python3  large bytes/bytearrays built, grown, sliced, hashed; asserts from
#            inside (ctypes -> hak_stats_get_sized, /dev/shm/hakmem.<pid> header)
#   python3  multiprocessing (fork) pool hashing 16 MiB buffers in workers
#   sqlite3  0.3-8 MiB zeroblob/randomblob rows, 64 KiB pages, copy, update, VACUUM
#   xz -T2   64 MiB compressed + decompressed          (segment watched live)
#   zstd -T2 64 MiB compressed + decompressed, --long   (segment watched live)
#   git      init/add/commit of 2-8 MiB files, gc, fsck, log, archive; a third
#            run with RING_CAP=0, BATCH_THRESHOLD=64K, VERBOSE=2 must log flushes
#   perl     big strings, global regex substitution, split/join/pack/reverse;
#            reads its own segment through shmpeek while alive
#   sort     --parallel=2 -S 32M on 15 MiB of CSV          (segment watched live)
#   sh       a shell pipeline under hakmem
# Every program's exited processes must leave no /dev/shm/hakmem.<pid> behind,
# once the next hakmem process has started (removed at exit, or swept as
# stale): checked exactly in a private /dev/shm when the script can unshare a
# mount namespace (root), otherwise only reported.
# Exit 0 pass, 1 fail, 77 skip (a program is missing; reason on the last line).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
LIB=${HAKMEM_LIB:-$ROOT/build/libhakmem.so}
BUILD=${HAKMEM_BUILD:-$ROOT/build}
PEEK=$BUILD/tests/progs/shmpeek
HEADER=$ROOT/include/hakmem.h
[ -f "$LIB" ] || { echo "preload_programs: $LIB missing: run make"; exit 1; }
[ -x "$PEEK" ] || { echo "preload_programs: $PEEK missing: run make test-build"; exit 1; }

# The knobs are the ones each run sets, not whatever the caller's environment holds.
for v in $(compgen -e | grep '^HAKMEM_' || true); do
  case $v in HAKMEM_LIB|HAKMEM_BUILD|HAKMEM_TEST_SHM_NS) ;; *) unset "$v" ;; esac
done

# A private /dev/shm (own mount namespace): segments left behind are exactly ours.
if [ -z "${HAKMEM_TEST_SHM_NS:-}" ]; then
  if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    export HAKMEM_TEST_SHM_NS=1
    exec unshare -m bash -c 'mount -t tmpfs -o mode=1777,size=256m hakmem-test /dev/shm 2>/dev/null ||
                              export HAKMEM_TEST_SHM_NS=shared; exec bash "$0" "$@"' "$0" "$@"
  fi
  export HAKMEM_TEST_SHM_NS=shared
fi
PRIVATE_SHM=0
[ "$HAKMEM_TEST_SHM_NS" = 1 ] && PRIVATE_SHM=1

T=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-preload.XXXXXX")
trap 'rm -rf "$T"' EXIT
MARK=$T/.start
touch "$MARK"
export HOME=$T/home LC_ALL=C
mkdir -p "$HOME"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)

failed=()
missing=()
ok()   { printf 'ok    %-40s [%3ds]\n' "$*" $SECONDS; }
bad()  { printf 'FAIL  %s [%3ds]\n' "$*" $SECONDS; failed+=("$1"); }
have() { command -v "$1" >/dev/null 2>&1 || { echo "skip  $1: not installed"; missing+=("$1"); return 1; }; }
pre()  { env LD_PRELOAD="$LIB" "$@"; }
plain(){ env -u LD_PRELOAD "$@"; }
sha()  { sha256sum "$@" | cut -c1-64; }
# Compare two output files of one scenario (plain = reference).
same() {   # name ref got
  if cmp -s "$2" "$3"; then ok "$1: output identical to the run without hakmem ($(wc -l <"$2") lines)"
  else bad "$1" "output differs from the run without hakmem:"; diff "$2" "$3" | head -20 || true; fi
}
# Run a command under hakmem in the background and watch its segment while it
# runs: the program must be served large blocks by hakmem.  stdout -> $2.
watched() {   # name outfile cmd...
  local name=$1 out=$2; shift 2
  env LD_PRELOAD="$LIB" "$@" >"$out" 2>"$T/$name.err" &
  local pid=$! prc=0 rc=0
  "$PEEK" -w -r "$pid" >"$T/$name.peek" 2>&1 || prc=$?
  wait "$pid" || rc=$?
  if [ $rc -ne 0 ]; then bad "$name" "exited with $rc under hakmem:"; tail -5 "$T/$name.err"; return 1; fi
  if [ $prc -ne 0 ]; then bad "$name" "segment check failed (shmpeek exit $prc):"; cat "$T/$name.peek"; return 1; fi
  ok "$name: hakmem served it: $(cut -d' ' -f2- "$T/$name.peek" | tr ' ' '\n' |
       grep -E '^(large_allocs|cache_hits|batch_flushes|munmap_calls|batch_ranges_flushed|peak_bytes_mapped)=' | tr '\n' ' ')"
}
# Segments of processes that have exited.
leaked() {
  local f p st
  for f in /dev/shm/hakmem.*; do
    [ -e "$f" ] || continue
    p=${f##*.}
    st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1) || true
    [ -n "$st" ] && [ "$st" != Z ] && continue          # alive
    [ $PRIVATE_SHM = 1 ] || [ "$f" -nt "$MARK" ] || continue
    echo "$f ($("$PEEK" -f "$f" 2>/dev/null || echo unreadable))"
  done
}
# No segment of an exited process may stay behind.  A library may remove them
# at exit or sweep stale ones when the next hakmem process starts: one short
# hakmem process runs first, then the check.
check_leaks() {   # name
  local l
  [ -n "$(leaked)" ] && pre true
  l=$(leaked)
  if [ -z "$l" ]; then ok "$1: no telemetry segment left behind by exited processes"; return; fi
  if [ $PRIVATE_SHM = 1 ]; then
    bad "$1: segments" "exited processes left their telemetry segment (pid comm):"
  else
    echo "warn  $1: segments of exited processes (shared /dev/shm: maybe not ours):"
  fi
  echo "$l" | sed 's/^/        /'
  [ $PRIVATE_SHM = 1 ] && rm -f $(echo "$l" | cut -d' ' -f1)
  return 0
}

echo "hakmem: $LIB"
echo "/dev/shm: $([ $PRIVATE_SHM = 1 ] && echo "private tmpfs (exact segment-leak checks)" || echo "shared (segment leaks only reported)")"

# ---- input data, generated once without hakmem ----
if [ -n "$PY" ]; then
  plain "$PY" - "$T" <<'EOF'
import random, sys
d = sys.argv[1]
r = random.Random(20261125)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 10))) for _ in range(4000)]
k = 0
with open(d + "/data64", "wb") as f:           # 64 MiB: 7/8 text records, 1/8 random bytes
    for i in range(64):
        if i % 8 == 7:
            f.write(r.randbytes(1 << 20))
            continue
        lines, n = [], 0
        while n < 1 << 20:
            l = b"record %08d value %d %s %s\n" % (k, k * 2654435761 % 1000003, words[k % 4000], words[k * 7 % 4000])
            lines.append(l)
            n += len(l)
            k += 1
        f.write(b"".join(lines)[: 1 << 20])
with open(d + "/sort.csv", "w") as f:          # ~15 MiB of CSV lines
    for i in range(600_000):
        f.write("%d,%d,%s\n" % (r.randrange(10**9), i, words[i % 4000].decode()))
EOF
else
  seq -f 'record %08g value hakmem big block allocator' 1 1500000 | head -c $((64 << 20)) >"$T/data64"
  seq 1 600000 | awk '{print ($1*7919)%1000003 "," $1 ",w" $1%977}' >"$T/sort.csv"
fi
DATA_SHA=$(sha "$T/data64")

# ---- python3 ----
if [ -n "$PY" ]; then
  cat >"$T/big.py" <<'EOF'
import ctypes, hashlib, os, random, re, struct, sys, zlib
MiB = 1 << 20
def out(name, b):
    print(f"{name:<22} {len(b):>10} {hashlib.sha256(b).hexdigest()[:40]}")
r = random.Random(2026)
base = r.randbytes(8 * MiB)
for mib in (1, 3, 7, 16, 31, 64):                 # bytes of 1..64 MiB, slices of them
    b = (base * (mib // 8 + 1))[: mib * MiB - 17]
    out(f"bytes{mib}M", b)
    out(f"slice{mib}M", b[mib * 1000 : -mib * 999 : 3])
    out(f"copy{mib}M", bytes(memoryview(b)[MiB // 3 :]))
ba = bytearray()                                   # grown by appends: realloc
for i in range(48):
    ba += base[i * 65536 : i * 65536 + MiB + i * 4099]
out("bytearray_grown", ba)
del ba[: 5 * MiB + 3]
out("bytearray_del_front", ba)
ba[MiB : 2 * MiB] = b"x" * (3 * MiB)
out("bytearray_splice", ba)
ba.extend(bytes(9 * MiB))
out("bytearray_extend", ba)
while len(ba) > 100000:                            # shrinking copies, across 64 KiB
    ba = ba[: len(ba) // 2] + b"!"
out("bytearray_halved", ba)
out("replace", base.replace(b"\x00", b"\x00\x01"))
out("join", b"|".join(base[i : i + 300000] for i in range(0, len(base), 300000)))
hx = base.hex().encode()
out("hex", hx)
assert bytes.fromhex(hx.decode()) == base
z = zlib.compress(base * 2, 1)
out("zlib", z)
assert zlib.decompress(z) == base * 2
mv = memoryview(base * 4)
h = hashlib.sha256()
for i in range(0, len(mv), 5 * MiB + 1):
    h.update(mv[i : i + 5 * MiB + 1])
print(f"{'streamed32M':<22} {len(mv):>10} {h.hexdigest()[:40]}")
out("list_blocks", b"".join(bytes([i]) * (65536 + i * 4096) for i in range(64)))
s = base[: 2 * MiB].decode("latin-1") * 4
out("str_regex", re.sub("a", "AA", s).encode("latin-1"))
if os.environ.get("HAKMEM_TEST_EXPECT"):
    # hak_stats_get_sized through ctypes: field types and names parsed from include/hakmem.h
    hdr = open(os.environ["HAKMEM_TEST_HEADER"]).read()
    # (the struct is generated from the X-macro lists of hakmem/shm.h: expand them)
    shm = open(os.path.join(os.path.dirname(os.environ["HAKMEM_TEST_HEADER"]), "hakmem", "shm.h")).read()
    xlist = lambda name: re.findall(r"X\((\w+),", re.search(r"#define %s\(X\)((?:.*\\\n)*.*)" % name, shm).group(1))
    body = re.search(r"typedef struct hak_stats \{(.*?)\} hak_stats_t;", hdr, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    body = re.sub(r"\b(HAK_COUNTERS|HAK_GAUGES)\(\w+\)",
                  lambda m: " ".join("uint64_t " + n + ";" for n in xlist(m.group(1))), body)
    fields = re.findall(r"\b(uint32_t|uint64_t)\s+([a-z_]+)\s*;", body)
    names = [n for _, n in fields]
    ctype = {"uint32_t": ctypes.c_uint32, "uint64_t": ctypes.c_uint64}
    class Stats(ctypes.Structure):
        _fields_ = [(n, ctype[t]) for t, n in fields]
    st = Stats()
    # the ABI-checked form: this layout, parsed from the header, against the library's
    rc = ctypes.CDLL(None).hak_stats_get_sized(ctypes.byref(st), ctypes.c_size_t(ctypes.sizeof(st)))
    assert rc == 0, "hak_stats_get_sized: %d (library: %d bytes, version %d; parsed: %d bytes)" % (
        rc, st.size, st.version, ctypes.sizeof(st))
    fig = {n: getattr(st, n) for n in names}
    print("hakmem: " + " ".join(f"{k}={v}" for k, v in fig.items()), file=sys.stderr)
    assert fig["large_allocs"] > 0, "hakmem served no large allocation"
    assert fig["large_frees"] > 0 and fig["cache_hits"] > 0, "no large frees / cache hits"
    assert fig["munmap_calls"] <= fig["batch_ranges_flushed"], "munmap outside Batch"
    with open(f"/dev/shm/hakmem.{os.getpid()}", "rb") as f:
        magic, version, size, pid = struct.unpack("<QIII", f.read(20))
    assert magic == 0x4D454D4B4148 and pid == os.getpid(), "bad segment header"
    print(f"segment: /dev/shm/hakmem.{pid} version {version} size {size}", file=sys.stderr)
EOF
  plain "$PY" "$T/big.py" >"$T/py.ref"
  if pre env HAKMEM_TEST_EXPECT=1 HAKMEM_TEST_HEADER="$HEADER" "$PY" "$T/big.py" >"$T/py.out" 2>"$T/py.err"; then
    same python3 "$T/py.ref" "$T/py.out"
    ok "python3: hakmem served it (in-process): $(grep '^hakmem:' "$T/py.err" | tr ' ' '\n' |
        grep -E '^(large_allocs|cache_hits|mremap_calls|batch_flushes|munmap_calls)=' | tr '\n' ' ')"
  else
    bad python3 "failed under hakmem:"; tail -15 "$T/py.err"
  fi
  check_leaks python3

  cat >"$T/mp.py" <<'EOF'
import hashlib, multiprocessing as mp
def work(i):
    ba = bytearray(bytes([i]) * (16 << 20))
    ba[::4096] = bytes(len(range(0, len(ba), 4096)))
    ba += bytes(range(256)) * 4096
    return "%d %s" % (i, hashlib.sha256(ba).hexdigest()[:40])
if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as p:
        print("\n".join(p.map(work, range(8))))
EOF
  plain "$PY" "$T/mp.py" >"$T/mp.ref"
  if pre "$PY" "$T/mp.py" >"$T/mp.out" 2>"$T/mp.err"; then
    same "python3-multiprocessing" "$T/mp.ref" "$T/mp.out"
  else
    bad python3-multiprocessing "failed under hakmem:"; tail -15 "$T/mp.err"
  fi
  check_leaks python3-multiprocessing
else
  have python3 || true
fi

# ---- sqlite3 ----
if have sqlite3; then
  cat >"$T/blobs.sql" <<'EOF'
PRAGMA page_size = 65536;
PRAGMA cache_size = 256;
CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16)
  INSERT INTO t SELECT i, zeroblob(i * 350000) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8)
  INSERT INTO t SELECT 100 + i, randomblob((i % 8 + 1) * 1048576) FROM n;
INSERT INTO t VALUES (200, CAST(replace(hex(zeroblob(4194304)), '00', 'ab') AS BLOB));
CREATE TABLE t2 AS SELECT * FROM t;
UPDATE t SET b = CAST(b || zeroblob(1048576) AS BLOB) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
VACUUM;
SELECT 'rows', count(*), sum(length(b)) FROM t;
SELECT 'unchanged', count(*) FROM t JOIN t2 USING (id) WHERE t.b = t2.b;
SELECT 'prefix kept', count(*) FROM t JOIN t2 USING (id) WHERE substr(t.b, 1, length(t2.b)) = t2.b;
SELECT 'hex', sum(length(hex(b))) FROM t WHERE id > 100;
SELECT id, length(b), hex(substr(b, 1000000, 4)) FROM t WHERE id < 100 OR id = 200 ORDER BY id;
PRAGMA integrity_check;
EOF
  plain sqlite3 "$T/ref.db" ".read $T/blobs.sql" >"$T/sq.ref"
  if watched sqlite3 "$T/sq.out" sqlite3 "$T/pre.db" ".read $T/blobs.sql"; then
    same sqlite3 "$T/sq.ref" "$T/sq.out"
    plain sqlite3 "$T/ref.db" 'SELECT count(*), sum(length(b)) FROM t2' >"$T/sq2.ref"
    pre sqlite3 "$T/pre.db" 'SELECT count(*), sum(length(b)) FROM t2' >"$T/sq2.out"
    same "sqlite3 (reopened)" "$T/sq2.ref" "$T/sq2.out"
  fi
  check_leaks sqlite3
fi

# ---- xz -T2 ----
if have xz; then
  plain xz -T2 -0 -c "$T/data64" >"$T/ref.xz"
  if watched xz-compress "$T/pre.xz" xz -T2 -0 -c "$T/data64"; then
    if cmp -s "$T/ref.xz" "$T/pre.xz"; then ok "xz: compressed stream identical ($(stat -c %s "$T/pre.xz") bytes)"
    else bad xz "compressed output differs from the run without hakmem"; fi
    if watched xz-decompress "$T/xz.out" xz -T2 -d -c "$T/pre.xz" && [ "$(sha "$T/xz.out")" = "$DATA_SHA" ]; then
      ok "xz: round trip of 64 MiB: sha256 matches"
    else bad xz "round trip: sha256 differs"; fi
    rm -f "$T/xz.out"
  fi
  check_leaks xz
fi

# ---- zstd -T2 ----
if have zstd; then
  plain zstd -q -T2 -3 --long=26 -c "$T/data64" >"$T/ref.zst"
  if watched zstd-compress "$T/pre.zst" zstd -q -T2 -3 --long=26 -c "$T/data64"; then
    if cmp -s "$T/ref.zst" "$T/pre.zst"; then ok "zstd: compressed stream identical ($(stat -c %s "$T/pre.zst") bytes)"
    else bad zstd "compressed output differs from the run without hakmem"; fi
    if watched zstd-decompress "$T/zst.out" zstd -q -d --long=26 -c "$T/pre.zst" && [ "$(sha "$T/zst.out")" = "$DATA_SHA" ]; then
      ok "zstd: round trip of 64 MiB: sha256 matches"
    else bad zstd "round trip: sha256 differs"; fi
    rm -f "$T/zst.out"
  fi
  check_leaks zstd
fi

# ---- git ----
if have git; then
  head -c $((8 << 20)) "$T/data64" >"$T/g1"
  tail -c $((4 << 20)) "$T/data64" >"$T/g2"
  head -c $((2 << 20)) "$T/sort.csv" >"$T/g3"
  git_scenario() {   # dir runner...   (prints everything to compare)
    local dir=$1; shift
    mkdir -p "$dir" && cd "$dir" || return 1
    "$@" git init -q -b main . || return 1
    cp "$T/g1" "$T/g2" "$T/g3" . || return 1
    "$@" git add . || return 1
    "$@" git commit -q -m "big files" || return 1
    head -c $((3 << 20)) "$T/data64" >>g1 && sed -i 's/,a/,A/' g3 || return 1
    "$@" git add -A || return 1
    "$@" git commit -q -m "grow g1, edit g3" || return 1
    "$@" git gc --quiet || return 1
    "$@" git fsck --full --strict 2>"$dir.fsck" || return 1
    grep -v '^hakmem\[' "$dir.fsck" || true
    "$@" git log --stat --format='%H %s' || return 1
    "$@" git cat-file -p HEAD:g1 | sha || return 1
    "$@" git cat-file -p HEAD~1:g1 | sha || return 1
    "$@" git cat-file -p HEAD:g3 | sha || return 1
    "$@" git rev-list --objects --all | wc -l || return 1
    "$@" git archive --format=tar HEAD | sha || return 1
    cd "$T"
  }
  export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=hakmem GIT_AUTHOR_EMAIL=hakmem@example.org
  export GIT_COMMITTER_NAME=hakmem GIT_COMMITTER_EMAIL=hakmem@example.org
  export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
  git_scenario "$T/git-ref" plain >"$T/git.ref" 2>"$T/git-ref.err"
  if git_scenario "$T/git-pre" pre >"$T/git.out" 2>"$T/git-pre.err"; then
    same git "$T/git.ref" "$T/git.out"
  else
    bad git "failed under hakmem:"; tail -10 "$T/git-pre.err"
  fi
  # Same scenario with no caching and a 64 KiB batch threshold: every large
  # free is flushed at once and logged (HAKMEM_VERBOSE=2): proof that git's
  # large blocks went through hakmem, and a second configuration checked.
  if git_scenario "$T/git-b64k" pre env HAKMEM_RING_CAP=0 HAKMEM_BATCH_THRESHOLD=64K HAKMEM_VERBOSE=2 \
       >"$T/git.b64k" 2>"$T/git-b64k.err"; then
    same "git (RING_CAP=0 BATCH_THRESHOLD=64K)" "$T/git.ref" "$T/git.b64k"
    n=$(grep -cE '^hakmem\[[0-9]+\]: flush: ' "$T/git-b64k.err" || true)
    if [ "$n" -gt 0 ]; then ok "git: hakmem served it: $n Batch flushes logged by git's processes"
    else bad git "no Batch flush logged with RING_CAP=0 BATCH_THRESHOLD=64K"; head -5 "$T/git-b64k.err"; fi
  else
    bad git "failed under hakmem (RING_CAP=0 BATCH_THRESHOLD=64K):"; grep -v '^hakmem\[' "$T/git-b64k.err" | tail -10
  fi
  rm -rf "$T/git-ref" "$T/git-pre" "$T/git-b64k"
  check_leaks git
fi

# ---- perl ----
if have perl; then
  cat >"$T/big.pl" <<'EOF'
use strict; use warnings;
use Digest::SHA qw(sha256_hex);
sub out { printf "%-16s %10d %s\n", $_[0], length($_[1]), substr(sha256_hex($_[1]), 0, 40) }
my $s = "hakmem-" x (4 << 20);                          # 28 MiB
out("repeat", $s);
(my $t = $s) =~ s/km/KM!/g;                             # global substitution, grows
out("subst", $t);
my $n = () = $s =~ /mem-h/g;
print "matches $n\n";
my @parts = split /-/, substr($s, 0, 8 << 20);
out("join", join("+", @parts));
out("reverse", scalar reverse $s);
my $big = "";
$big .= chr(65 + $_ % 26) x 65536 for 0 .. 511;         # 32 MiB by appends
out("concat", $big);
(my $r = $big) =~ tr/A-Z/N-ZA-M/;
out("tr", $r);
out("pack", pack("N*", 0 .. (2 << 20)));
my %h = map { $_ => ("v" x (70000 + $_ * 4096)) } 1 .. 64;
out("hash", join("", map { $h{$_} } sort { $a <=> $b } keys %h));
out("sprintf", sprintf("%s|%s", substr($s, 0, 3 << 20), substr($big, 0, 5 << 20)));
if (my $peek = $ENV{HAKMEM_TEST_PEEK}) {                # our own segment, read while alive
    my $me = "$$";                                      # ($$ itself would be the child's pid after fork)
    open(my $fh, "-|", $peek, "-r", $me) or die "shmpeek: $!";
    my $line = <$fh>;
    close($fh) or die "shmpeek failed on our own segment (exit " . ($? >> 8) . ")\n";
    print STDERR $line;
}
EOF
  plain perl "$T/big.pl" >"$T/pl.ref"
  if pre env HAKMEM_TEST_PEEK="$PEEK" perl "$T/big.pl" >"$T/pl.out" 2>"$T/pl.err"; then
    same perl "$T/pl.ref" "$T/pl.out"
    ok "perl: hakmem served it (own segment): $(grep '^shmpeek:' "$T/pl.err" | tr ' ' '\n' |
        grep -E '^(large_allocs|cache_hits|mremap_calls|batch_flushes|munmap_calls)=' | tr '\n' ' ')"
  else
    bad perl "failed under hakmem:"; tail -10 "$T/pl.err"
  fi
  check_leaks perl
fi

# ---- sort ----
if have sort; then
  plain sort -t, -k1,1n -k2,2n -S 32M --parallel=2 "$T/sort.csv" | sha >"$T/sort.ref"
  if watched sort "$T/sorted" sort -t, -k1,1n -k2,2n -S 32M --parallel=2 "$T/sort.csv"; then
    sha "$T/sorted" >"$T/sort.out"
    same "sort" "$T/sort.ref" "$T/sort.out"
  fi
  rm -f "$T/sorted"
  check_leaks sort
fi

# ---- a shell pipeline ----
if have sh; then
  script='x=$(head -c 3000000 /dev/zero | tr "\0" a | wc -c); echo "$x"; exit 0'
  if [ "$(pre sh -c "$script")" = 3000000 ]; then ok "sh: pipeline output correct"
  else bad sh "pipeline output wrong"; fi
  check_leaks sh
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "preload_programs: FAILED: ${failed[*]}"
  exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "preload_programs: missing program(s): ${missing[*]} (scripts/deps.sh installs them)"
  exit 77
fi
echo "preload_programs: all programs passed"
