#!/usr/bin/env bash
# The pass-through costs no extra hop (DESIGN.md item 14, issue 12): inside
# libhakmem.so, malloc -> hak_alloc and every other call to a function the
# library itself defines is a direct call, never a jump through the PLT
# (Makefile: -fno-semantic-interposition, -Wl,-Bsymbolic-functions).
# Checked on the disassembly of the built library.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
need_file "$LIB"
need_cmd objdump binutils
dis=$T/dis
objdump -d --no-show-raw-insn "$LIB" >"$dis"
fails=0
# Functions the library defines and exports (the malloc family, the hak_* API).
own=$(nm -D --defined-only "$LIB" | awk '$2 == "T" || $2 == "W" || $2 == "i" { print $3 }' | sed 's/@.*//' | sort -u)
[ -n "$own" ] || { echo "FAIL: no exported functions in $LIB"; exit 1; }
for f in malloc free calloc realloc hak_alloc; do
  grep -qx "$f" <<<"$own" || { echo "FAIL: $LIB does not export $f"; fails=$((fails + 1)); }
done
# Any PLT call or jump to one of them is a hop the library could bind itself.
while read -r sym; do
  if grep -Eq "(call|jmp) +[0-9a-f]+ <${sym}@plt>" "$dis"; then
    echo "FAIL: calls to $sym go through the PLT:"
    grep -E "(call|jmp) +[0-9a-f]+ <${sym}@plt>" "$dis" | head -n 3 | sed 's/^/    /'
    fails=$((fails + 1))
  fi
done <<<"$own"
# The forwarders themselves: malloc must reach hak_alloc directly.
body=$(awk '/^[0-9a-f]+ <malloc>:/ { on = 1; next } on && /^$/ { exit } on' "$dis")
grep -Eq '(call|jmp) +[0-9a-f]+ <hak_alloc>' <<<"$body" ||
  { echo "FAIL: malloc does not call hak_alloc directly:"; sed 's/^/    /' <<<"$body" | head -n 5; fails=$((fails + 1)); }
[ $fails -eq 0 ] || exit 1
echo "direct_calls: ok ($(wc -l <<<"$own") exported functions, none reached through the PLT from inside)"
