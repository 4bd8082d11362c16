#!/usr/bin/env bash
# The installed tree, as a user gets it from `make install PREFIX=... `:
#   1. install into a fresh prefix (mktemp -d) from the test build: the .pc
#      files name that prefix (the build's own hakmem.pc was made for
#      /usr/local: it must be rewritten), every tool is there (hakmem-stat,
#      hakmem-tuner, hakmem-report in bin/, hakmem-probe in sbin/ when it was
#      built), the library, both headers, both .pc files and every man page;
#   2. a program built with nothing but `pkg-config --cflags --libs hakmem`
#      runs with the installed library (LD_LIBRARY_PATH, then an rpath): its
#      large blocks are hakmem's (hak_owns, hak_stats_get), its segment is
#      read by the installed hakmem-stat, /proc/PID/maps shows the installed
#      libhakmem.so;
#   3. the static recipe of the README (pkg-config hakmem-static) links
#      libhakmem.a: ldd shows no libhakmem.so, the program runs without any
#      library path, its own and libc's large allocations are hakmem's; the
#      installed hakmem-probe traces a program with the installed library;
#   4. every installed tool (read from bin/ and sbin/) answers --help and
#      --version (exit 0, its name, the package version), has a man page,
#      every long option its --help names is on that page, and every exit code
#      its --help lists is in the page's EXIT STATUS;
#   5. every installed page renders with man -l and groff -ww without a
#      warning, man finds it through MANPATH; hakmem(3) names every function
#      of the installed hakmem.h, and its ENVIRONMENT entries are the ones
#      env-doc generates from the option table;
#   6. DESTDIR: a staged install puts the same files under DESTDIR with .pc
#      files naming the final prefix;
#   7. make uninstall (both) leaves no file behind.
# Exit 0 pass, anything else fail.
# (grep -q reads here-strings, never a pipe: with pipefail, grep -q quitting at the
# first match would fail the pipeline when the writer gets SIGPIPE.)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${HAKMEM_BUILD:?run through tests/run.sh}
fail() { echo "FAIL: $*" >&2; exit 1; }
for c in cc pkg-config man groff ldd python3; do
  command -v "$c" >/dev/null || fail "$c is not installed (scripts/deps.sh installs it)"
done

T=$(mktemp -d)
P=$T/prefix            # a prefix that is not /usr/local
D=$T/stage             # DESTDIR
FINAL=/opt/hakmem-install-test
bgpid=
MK=(make --no-print-directory -s O="$B")
cleanup() {
  [ -n "$bgpid" ] && kill "$bgpid" 2>/dev/null && wait "$bgpid" 2>/dev/null
  rm -rf "$T"
  # Give the build its own .pc files back (the installs above rewrote them).
  "${MK[@]}" "$B/hakmem.pc" "$B/hakmem-static.pc" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---- 1. install -------------------------------------------------------------
"${MK[@]}" lib >/dev/null       # the build's .pc, made for the default prefix
grep -qx "prefix=$P" "$B/hakmem.pc" && fail "the build's hakmem.pc already names $P"
"${MK[@]}" PREFIX="$P" install >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "make install PREFIX=$P failed"; }
export PKG_CONFIG_PATH=$P/lib/pkgconfig
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR || true
for pc in hakmem hakmem-static; do
  [ -f "$P/lib/pkgconfig/$pc.pc" ] || fail "$pc.pc not installed"
  [ "$(pkg-config --variable=prefix "$pc")" = "$P" ] ||
    fail "installed $pc.pc says prefix=$(pkg-config --variable=prefix "$pc"), not $P"
  [ "$(pkg-config --variable=includedir "$pc")" = "$P/include" ] || fail "$pc.pc: includedir is not $P/include"
  grep -qF -- "-I$P/include" <<<"$(pkg-config --cflags "$pc")" || fail "$pc.pc: --cflags lacks -I$P/include"
done
VERSION=$(pkg-config --modversion hakmem)
hdr_version=$(sed -n 's/^#define HAKMEM_VERSION "\(.*\)"/\1/p' include/hakmem.h)
[ "$VERSION" = "$hdr_version" ] || fail "hakmem.pc Version $VERSION, hakmem.h says $hdr_version"
for f in lib/libhakmem.so lib/libhakmem.a include/hakmem.h include/hakmem/shm.h \
         bin/hakmem-stat bin/hakmem-tuner bin/hakmem-report \
         share/man/man3/hakmem.3 share/man/man1/hakmem-stat.1 share/man/man1/hakmem-tuner.1 \
         share/man/man1/hakmem-report.1 share/man/man8/hakmem-probe.8; do
  [ -e "$P/$f" ] || fail "make install did not install $f"
done
cmp -s "$B/libhakmem.so" "$P/lib/libhakmem.so" || fail "installed libhakmem.so is not the build's"
if [ -x "$B/hakmem-probe" ]; then
  [ -x "$P/sbin/hakmem-probe" ] || fail "hakmem-probe was built but not installed in sbin/"
else
  echo "note: hakmem-probe is not built here ($(cat "$B/bpf/SKIPPED" 2>/dev/null)): not installed"
fi
echo "install: prefix $P, pc prefix ok, $(find "$P" -type f | wc -l) files"

# ---- 2. a program built with pkg-config only --------------------------------
mkdir "$T/src"
cat >"$T/src/t.c" <<'EOF'
#include <hakmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* Prints "owned=1 strdup_owned=1 large_allocs=N" when malloc, libc's own
 * allocations (strdup) and the native API are hakmem's; with an argument it
 * keeps its block and waits for stdin to close, for hakmem-stat to read. */
int main(int argc, char **argv) {
    size_t n = 1 << 20;
    char *p = malloc(n);
    if (!p) return 2;
    memset(p, 'x', n - 1);
    p[n - 1] = '\0';
    char *d = strdup(p);               /* allocated inside libc */
    int owned = hak_owns(p), downed = d && hak_owns(d);
    hak_stats_t s;
    hak_stats_get(&s);
    printf("owned=%d strdup_owned=%d large_allocs=%llu\n", owned, downed, (unsigned long long)s.large_allocs);
    fflush(stdout);
    if (argc > 1) {
        char c;
        while (read(0, &c, 1) > 0) {}
    }
    free(d);
    free(p);
    return !(owned && downed && s.large_allocs >= 2);
}
EOF
check_run() {   # what, output
  case $2 in
    "owned=1 strdup_owned=1 large_allocs="[0-9]*) ;;
    *) fail "$1: large blocks are not hakmem's: '$2'" ;;
  esac
}
# shellcheck disable=SC2046  # the flags are words
(cd "$T/src" && cc -o t t.c $(pkg-config --cflags --libs hakmem)) || fail "cc with pkg-config --cflags --libs hakmem failed"
grep -q 'libhakmem.so => not found' <<<"$(ldd "$T/src/t")" || fail "the program does not need libhakmem.so: $(ldd "$T/src/t")"
out=$(LD_LIBRARY_PATH=$P/lib "$T/src/t") || fail "the pkg-config program failed: $out"
check_run "pkg-config program" "$out"
grep -qF "$P/lib/libhakmem.so" <<<"$(LD_LIBRARY_PATH=$P/lib ldd "$T/src/t")" || fail "ldd does not resolve the installed libhakmem.so"

# Its segment, read by the installed hakmem-stat; its maps, the installed library.
mkfifo "$T/fifo"
LD_LIBRARY_PATH=$P/lib "$T/src/t" wait <"$T/fifo" >"$T/t.out" &
bgpid=$!
exec 9>"$T/fifo"
for _ in $(seq 100); do [ -s "$T/t.out" ] && break; sleep 0.05; done
[ -s "$T/t.out" ] || fail "the waiting program printed nothing"
grep -qF "$P/lib/libhakmem.so" "/proc/$bgpid/maps" || fail "/proc/$bgpid/maps does not map $P/lib/libhakmem.so"
# -p PID is the tools' convention; an older hakmem-stat took the PID as its
# argument (and read -p as --prometheus: a usage error with --json, exit 2).
json=$("$P/bin/hakmem-stat" --json -p "$bgpid" 2>"$T/err") ||
  { [ $? -eq 2 ] && json=$("$P/bin/hakmem-stat" --json "$bgpid"); } ||
  fail "installed hakmem-stat --json -p $bgpid failed: $(cat "$T/err")"
python3 - "$json" <<'EOF' || fail "hakmem-stat does not see the program's large allocations"
import json, sys
c = json.loads(sys.argv[1])["counters"]
sys.exit(0 if c["large_allocs"] >= 2 and c["large_frees"] == 0 else 1)
EOF
exec 9>&-
wait "$bgpid" || fail "the waiting program failed: $(cat "$T/t.out")"
bgpid=
echo "dynamic: $(cat "$T/t.out"), seen by hakmem-stat, maps the installed library"

# The same with an rpath instead of LD_LIBRARY_PATH.
(cd "$T/src" && cc -o tr t.c $(pkg-config --cflags --libs hakmem) -Wl,-rpath,"$(pkg-config --variable=libdir hakmem)") ||
  fail "cc with an rpath failed"
out=$(env -u LD_LIBRARY_PATH "$T/src/tr") || fail "the rpath program failed: $out"
check_run "rpath program" "$out"

# ---- 3. the static recipe -----------------------------------------------------
grep -qF 'cc prog.c $(pkg-config --cflags --libs hakmem-static)' README.md ||
  fail "README.md does not give the static recipe this test checks"
(cd "$T/src" && cc -o ts t.c $(pkg-config --cflags --libs hakmem-static)) || fail "cc with pkg-config hakmem-static failed"
if grep -q libhakmem <<<"$(ldd "$T/src/ts")"; then fail "the static program needs libhakmem.so: $(ldd "$T/src/ts")"; fi
mv "$P/lib/libhakmem.so" "$T/libhakmem.so.away"      # nothing to fall back on
out=$(env -u LD_LIBRARY_PATH -u LD_PRELOAD "$T/src/ts") || { mv "$T/libhakmem.so.away" "$P/lib/libhakmem.so"; fail "the static program failed: $out"; }
mv "$T/libhakmem.so.away" "$P/lib/libhakmem.so"
check_run "static program" "$out"
echo "static: $out, no libhakmem.so in ldd"

# The installed hakmem-probe finds the installed library by itself (sbin/../lib).
if [ -x "$P/sbin/hakmem-probe" ]; then
  if "$P/sbin/hakmem-probe" --check >"$T/check.out" 2>&1; then
    env -u LD_PRELOAD -u HAKMEM_LIB "$P/sbin/hakmem-probe" -q -d 20 -- "$T/src/tr" >"$T/probe.out" 2>&1 ||
      fail "installed hakmem-probe -- prog failed: $(tail -n 5 "$T/probe.out")"
    grep -qF "with $P/lib/libhakmem.so" "$T/probe.out" || fail "installed hakmem-probe did not use $P/lib/libhakmem.so: $(head -n 3 "$T/probe.out")"
    echo "probe: the installed hakmem-probe traced a program with $P/lib/libhakmem.so"
  else
    echo "note: hakmem-probe cannot probe here ($(tail -n 1 "$T/check.out")); tests/integration/ebpf.sh reports it"
  fi
fi

# ---- 4. the tools ---------------------------------------------------------------
tools=()
for f in "$P"/bin/* "$P"/sbin/*; do [ -f "$f" ] && [ -x "$f" ] && tools+=("$f"); done
[ ${#tools[@]} -ge 3 ] || fail "only ${#tools[@]} tools installed"
export MANPATH=$P/share/man
for t in "${tools[@]}"; do
  name=$(basename "$t")
  help=$("$t" --help 2>"$T/err") || fail "$name --help exited $? ($(head -c 300 "$T/err"))"
  [ -n "$help" ] || fail "$name --help printed nothing on stdout"
  grep -qF "$name" <<<"$help" || fail "$name --help does not name $name"
  ver=$("$t" --version 2>"$T/err") || fail "$name --version exited $? ($(head -c 300 "$T/err"))"
  grep -qF "$name" <<<"$ver" && grep -qF "$VERSION" <<<"$ver" ||
    fail "$name --version does not say '$name' and '$VERSION': '$ver'"
  page=$(man -w "$name" 2>/dev/null) || fail "no man page for $name in $MANPATH"
  case $page in "$P"/*) ;; *) fail "man -w $name found $page, not the installed page" ;; esac
  text=$(MANWIDTH=200 man -l "$page" 2>/dev/null)
  for opt in $(grep -oE -- '--[a-z][a-z-]*' <<<"$help" | sort -u); do
    grep -qF -- "$opt" <<<"$text" || fail "$name --help names $opt, its man page does not"
  done
  # Every exit code the help lists ("  N  meaning" lines after "Exit status")
  # is an entry of the page's EXIT STATUS section.
  codes=$(awk '/^[Ee]xit status/ { on = 1; next } on && /^[A-Z]/ { on = 0 }
               on && match($0, /^ +[0-9]+  /) { print $1 }' <<<"$help")
  estat=$(awk '/^EXIT STATUS/ { on = 1; next } /^[A-Z]/ { on = 0 } on' <<<"$text")
  for code in $codes; do
    grep -qE "^ +$code( |\$)" <<<"$estat" || fail "$name --help lists exit code $code, its man page's EXIT STATUS does not"
  done
  echo "tool: $name --help, --version ok; $page documents its $(grep -oE -- '--[a-z][a-z-]*' <<<"$help" | sort -u | wc -l) options, exit codes ${codes//$'\n'/ }"
done

# ---- 5. the man pages -------------------------------------------------------------
pages=("$P"/share/man/man*/*)
[ ${#pages[@]} -ge 5 ] || fail "only ${#pages[@]} man pages installed"
for page in "${pages[@]}"; do
  MANWIDTH=80 man -l --warnings "$page" >"$T/man.out" 2>"$T/man.err" || fail "man -l $page failed"
  [ -s "$T/man.err" ] && fail "man -l $page warns: $(head -n 5 "$T/man.err")"
  grep -q '^NAME' "$T/man.out" && grep -q '^SYNOPSIS' "$T/man.out" || fail "$page renders without NAME/SYNOPSIS"
  groff -man -ww -z "$page" 2>"$T/groff.err" || fail "groff -man $page failed"
  [ -s "$T/groff.err" ] && fail "groff -ww warns on $page: $(head -n 5 "$T/groff.err")"
  grep -q "^\.TH .* \"hakmem $VERSION\"" "$page" || fail "$page: its .TH line does not say \"hakmem $VERSION\""
  case $page in
    */man[18]/*) grep -q '^EXIT STATUS' "$T/man.out" || fail "$page has no EXIT STATUS section" ;;
  esac
done
man3=$(MANWIDTH=200 man -l "$P/share/man/man3/hakmem.3" 2>/dev/null)
for fn in $(sed -n 's/^HAKMEM_API[^(]*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' "$P/include/hakmem.h"); do
  grep -qw "$fn" <<<"$man3" || fail "hakmem(3) does not document $fn (installed hakmem.h declares it)"
done
[ -x "$B/env-doc" ] || fail "$B/env-doc missing (make test-build)"
diff <("$B/env-doc" --man) <(sed -n '/^\.\\" ENV-TABLE:BEGIN/,/^\.\\" ENV-TABLE:END/p' "$P/share/man/man3/hakmem.3" | sed '1d;$d') ||
  fail "hakmem(3) ENVIRONMENT differs from the option table (run make env-doc)"
echo "man: ${#pages[@]} pages render without warnings; hakmem(3) documents every API function and variable"

# ---- 6. DESTDIR --------------------------------------------------------------------
"${MK[@]}" PREFIX="$FINAL" DESTDIR="$D" install >"$T/install2.log" 2>&1 || { cat "$T/install2.log"; fail "make install DESTDIR=$D failed"; }
[ -e "$FINAL" ] && fail "DESTDIR install wrote into $FINAL itself"
grep -qx "prefix=$FINAL" "$D$FINAL/lib/pkgconfig/hakmem.pc" || fail "staged hakmem.pc does not say prefix=$FINAL"
diff <(cd "$P" && find . \( -type f -o -type l \) | sort) <(cd "$D$FINAL" && find . \( -type f -o -type l \) | sort) ||
  fail "the DESTDIR install holds other files than the plain one"
[ "$(find "$D" -mindepth 1 -maxdepth 1)" = "$D/opt" ] || fail "DESTDIR install wrote outside $D$FINAL"

# ---- 7. uninstall ------------------------------------------------------------------
"${MK[@]}" PREFIX="$P" uninstall >/dev/null || fail "make uninstall failed"
left=$(find "$P" \( -type f -o -type l \))
[ -z "$left" ] || fail "make uninstall left files behind: $left"
"${MK[@]}" PREFIX="$FINAL" DESTDIR="$D" uninstall >/dev/null || fail "make uninstall DESTDIR=$D failed"
left=$(find "$D" \( -type f -o -type l \))
[ -z "$left" ] || fail "make uninstall DESTDIR=$D left files behind: $left"
echo "uninstall: no file left in either prefix"
echo "install: ok"
