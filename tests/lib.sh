# tests/lib.sh - the preamble every integration script (tests/integration/*.sh)
# sources first:   . "$(dirname "$0")/../lib.sh"
#
# Exit codes (tests/run.sh): 0 pass, 77 skip (the reason on the last line of
# output), anything else fail.  On CI (CI=true) a skip fails the run too.
#
# After it:
#   ROOT   the source tree (the current directory too)
#   B      the build directory, LIB its libhakmem.so, PROGS its test programs
#          (tests/run.sh exports HAKMEM_BUILD and HAKMEM_LIB; run alone, a
#          script uses ./build)
#   T      a private temporary directory, removed at exit
#   NAME   the script's name, the prefix of its messages
# and no HAKMEM_* variable of the caller's environment is left but
# HAKMEM_BUILD, HAKMEM_LIB and HAKMEM_TEST_* (a test sets what it needs).
#
# Functions:
#   skip MSG...         say why and exit 77
#   fail MSG...         say what failed and exit 1
#   bad MSG... / ok MSG...   record a failed / passed check and go on;
#                       finish exits 1 if any check failed, else 0
#   need_file PATH HINT / need_exe PATH HINT   fail when a build product is missing
#   need_cmd CMD PACKAGE                      skip when a command is not installed
#   at_exit CMD...      run CMD at exit (before T is removed), last registered first
#   bg CMD...           start CMD in the background; killed at exit; $! is its pid
# The caller sets its shell options (set -euo pipefail, or less) before
# sourcing this file; it changes none of them.

NAME=$(basename "$0" .sh)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
B=${HAKMEM_BUILD:-$ROOT/build}
LIB=${HAKMEM_LIB:-$B/libhakmem.so}
PROGS=$B/tests/progs

for _v in $(compgen -e | grep '^HAKMEM_' || true); do
  case $_v in HAKMEM_BUILD|HAKMEM_LIB|HAKMEM_TEST_*) ;; *) unset "$_v" ;; esac
done
unset _v

skip() { echo "$NAME: skipped: $*"; exit 77; }
fail() { echo "$NAME: FAIL: $*"; exit 1; }

_lib_failed=0
bad() { echo "FAIL  $*"; _lib_failed=$((_lib_failed + 1)); }
ok() { echo "ok    $*"; }
finish() {
  if [ "$_lib_failed" -ne 0 ]; then
    echo "$NAME: $_lib_failed check(s) failed"
    exit 1
  fi
  echo "$NAME: ok"
  exit 0
}

need_file() { [ -f "$1" ] || fail "$1 missing (${2:-make})"; }
need_exe() { [ -x "$1" ] || fail "$1 missing (${2:-make test-build})"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed (package ${2:-$1})"; }

_lib_exit=()
_lib_bg=()
at_exit() { _lib_exit+=("$*"); }
bg() {
  "$@" &
  _lib_bg+=($!)
}
_lib_cleanup() {
  local i p
  for ((i = ${#_lib_exit[@]} - 1; i >= 0; i--)); do eval "${_lib_exit[i]}" || true; done
  for p in "${_lib_bg[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${_lib_bg[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
T=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-$NAME.XXXXXX")
trap _lib_cleanup EXIT
