#!/usr/bin/env bash
# instructions: bench/instructions.sh counts instructions per malloc+free pair
# with callgrind, and what it counts holds: hakmem's front-cache hit pair of a
# 2 MiB block within 1.5x glibc's own pair (a pair through the rings, with the
# front cache off, is 1.7x: the check tells them apart), the pass-through of
# 8-1024 B blocks at most 12 instructions per pair above glibc alone (it is 6:
# a compare, a branch and a jump per call); usage errors exit 2, a missing
# pair program 1.  Counts, not times: they do not drift on a noisy machine.
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u
. "$(dirname "$0")/../lib.sh"
S=$ROOT/bench/instructions.sh
need_file "$LIB" "make lib"
need_exe "$B/instr_pair" "make"
need_cmd valgrind valgrind

# ---- conventions: --help, usage errors 2, a missing program 1 ----
bash "$S" --help > "$T/help" || fail "--help exited $?"
grep -q -- '--pairs' "$T/help" || fail "--help lacks its options"
for args in "--bogus" "--pairs 0" "--pairs x" "--sizes 12Q" "--sizes 0" "--allocator nosuch" "--md"; do
  bash "$S" $args > /dev/null 2> "$T/err"; rc=$?
  [ "$rc" -eq 2 ] || fail "'$args' exited $rc, want 2"
  grep -q "Try 'bench/instructions.sh --help'" "$T/err" || fail "'$args': no pointer to --help"
done
O=$B bash "$S" --pair-bin "$T/none" --allocator system > /dev/null 2> "$T/err"; rc=$?
[ "$rc" -eq 1 ] || fail "a missing pair program exited $rc, want 1"
"$B/instr_pair" large 0 5 2> /dev/null; [ $? -eq 2 ] || fail "instr_pair large 0 5: want exit 2"

# ---- the counts ----
O=$B bash "$S" --allocator hakmem,system --sizes 2M --pairs 2000 --hakmem-lib "$LIB" --md "$T/i.md" \
  > "$T/out" 2> "$T/err" || { cat "$T/err"; fail "instructions.sh exited $?"; }
cmp -s "$T/out" "$T/i.md" || fail "--md differs from stdout"
grep -q '^| allocator | 2M pair | 8-1024 B pair |$' "$T/out" || { cat "$T/out"; fail "no table header"; }
row() { awk -F'|' -v a="$1" -v c="$2" '$2 == " " a " " { gsub(/ /, "", $(c + 2)); print $(c + 2) }' "$T/out"; }
hl=$(row hakmem 1) hs=$(row hakmem 2) sl=$(row system 1) ss=$(row system 2)
for v in "$hl" "$hs" "$sl" "$ss"; do
  case "$v" in ''|*[!0-9]*) cat "$T/out"; fail "a count is not a number: '$v'" ;; esac
done
[ "$sl" -gt 50 ] && [ "$ss" -gt 50 ] || fail "glibc's pairs take $sl and $ss instructions: the loop was optimised away"
[ $((hl * 2)) -le $((sl * 3)) ] || fail "hakmem's 2 MiB hit pair takes $hl instructions, more than 1.5x glibc's $sl"
[ "$hs" -le $((ss + 12)) ] || fail "the pass-through takes $hs instructions per pair, glibc alone $ss: more than 12 above"
ok "2 MiB pair: hakmem $hl, glibc $sl; 8-1024 B pair: hakmem $hs, glibc $ss instructions"
finish
