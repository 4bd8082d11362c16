#!/usr/bin/env bash
# bench/instructions.sh - instructions per malloc+free pair, counted by callgrind
# (valgrind), for hakmem and its peers: the part of the benchmark that does not
# drift on a noisy machine.  See --help, and bench/README.md ("Instructions per pair").
set -u
prog=instructions.sh
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
O=${O:-$root/build}
usage() {
  cat <<USAGE
usage: bench/instructions.sh [--allocator LIST] [--sizes LIST] [--pairs N] [--md FILE]
                             [--hakmem-lib PATH] [--pair-bin PATH]

Runs bench/instr_pair under callgrind twice per (allocator, case), with N and 2N pairs,
and prints a Markdown table of (instructions(2N) - instructions(N)) / N: the user-space
instructions of one malloc+free pair, start-up and exit cancelled out (the kernel's work
in a syscall is not counted: callgrind sees user space only).

  --allocator LIST  hakmem (HAKMEM_MODE=fixed), system, jemalloc, mimalloc, tcmalloc
                    (default: all five; a peer whose library is missing is skipped)
  --sizes LIST      block sizes of the 'large' pairs, K/M suffixes (default 256K,2M,8M);
                    each is a loop of malloc(SIZE), a write of its first byte, free
  --pairs N         N (default 10000); the 'small' case runs N replacements among 64
                    live blocks of 8-1024 bytes (hakmem passes them to glibc)
  --md FILE         write the table to FILE too
  --hakmem-lib PATH libhakmem.so (default: \$O/libhakmem.so, O=$O)
  --pair-bin PATH   the pair program (default: \$O/instr_pair)
  -h, --help        this text
  -V, --version     the version

Exit status: 0 ok; 1 a run failed (its valgrind log is shown); 2 usage error;
13 valgrind is not installed.
Example: bench/instructions.sh --allocator hakmem,system --sizes 2M --pairs 5000
USAGE
}
die_usage() { echo "$prog: $1" >&2; echo "Try 'bench/instructions.sh --help'." >&2; exit 2; }
version() {
  v=$(sed -n 's/^#define HAKMEM_VERSION "\(.*\)"/\1/p' "$root/include/hakmem.h")
  echo "instructions.sh (hakmem) ${v:-unknown}"
}

allocs=hakmem,system,jemalloc,mimalloc,tcmalloc sizes=256K,2M,8M pairs=10000 md= lib= bin=
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -V|--version) version; exit 0 ;;
    --allocator|--sizes|--pairs|--md|--hakmem-lib|--pair-bin)
      [ $# -ge 2 ] || die_usage "option '$1' needs a value"
      case "$1" in
        --allocator) allocs=$2 ;; --sizes) sizes=$2 ;; --pairs) pairs=$2 ;;
        --md) md=$2 ;; --hakmem-lib) lib=$2 ;; --pair-bin) bin=$2 ;;
      esac
      shift 2 ;;
    *) die_usage "unknown option '$1'" ;;
  esac
done
case "$pairs" in ''|*[!0-9]*|0*) die_usage "--pairs: '$pairs' is not a positive count" ;; esac
[ "$pairs" -le 100000000 ] || die_usage "--pairs: '$pairs' is more than 100000000"
bytes_of() {   # 256K -> 262144; '' on a bad size
  case "$1" in
    *[Kk]) n=${1%?}; m=1024 ;; *[Mm]) n=${1%?}; m=1048576 ;; *[Gg]) n=${1%?}; m=1073741824 ;; *) n=$1; m=1 ;;
  esac
  case "$n" in ''|*[!0-9]*) echo ""; return ;; esac
  [ ${#n} -le 10 ] || { echo ""; return; }    # no overflow below
  echo $((10#$n * m))
}
IFS=, read -r -a size_list <<< "$sizes"
[ ${#size_list[@]} -gt 0 ] || die_usage "--sizes: empty list"
for s in "${size_list[@]}"; do
  b=$(bytes_of "$s")
  [ -n "$b" ] && [ "$b" -ge 1 ] && [ "$b" -le $((1 << 32)) ] || die_usage "--sizes: '$s' is not a size of 1 byte to 4 GiB (K/M/G suffixes)"
done
IFS=, read -r -a alloc_list <<< "$allocs"
[ ${#alloc_list[@]} -gt 0 ] || die_usage "--allocator: empty list"
for a in "${alloc_list[@]}"; do
  case "$a" in hakmem|system|jemalloc|mimalloc|tcmalloc) ;; *) die_usage "--allocator: unknown allocator '$a'" ;; esac
done
lib=${lib:-$O/libhakmem.so}
bin=${bin:-$O/instr_pair}
command -v valgrind > /dev/null || { echo "$prog: valgrind is not installed (apt-get install valgrind)" >&2; exit 13; }
[ -x "$bin" ] || { echo "$prog: $bin: no such program (make $O/instr_pair)" >&2; exit 1; }

peer_lib() {   # the peer's shared library, as the benchmark finds it; '' when missing
  local pat
  case "$1" in
    jemalloc) pat='libjemalloc.so.2' ;; mimalloc) pat='libmimalloc.so.2*' ;; tcmalloc) pat='libtcmalloc_minimal.so.4' ;;
  esac
  for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /lib64 /lib /usr/local/lib; do
    for f in $d/$pat; do [ -e "$f" ] && { echo "$f"; return; }; done
  done
  echo ""
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-instr.XXXXXX") || { echo "$prog: mktemp: cannot create a directory" >&2; exit 1; }
trap 'rm -rf "$tmp"' EXIT

# instructions of one run: callgrind's total Ir of the whole process
count() {   # preload case-args...
  local pre=$1; shift
  local out=$tmp/cg.out log=$tmp/cg.log
  rm -f "$out"
  if ! env ${pre:+LD_PRELOAD=$pre} HAKMEM_MODE=fixed valgrind --tool=callgrind --callgrind-out-file="$out" \
      "$bin" "$@" > "$log" 2>&1; then
    echo "$prog: callgrind run of '$bin $*'${pre:+ under $pre} failed:" >&2
    cat "$log" >&2
    return 1
  fi
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

cases=()
for s in "${size_list[@]}"; do cases+=("large $(bytes_of "$s") $s"); done
cases+=("small")
header="| allocator |"; rule="|---|"
for c in "${cases[@]}"; do
  set -- $c
  if [ "$1" = large ]; then header="$header $3 pair |"; else header="$header 8-1024 B pair |"; fi
  rule="$rule---:|"
done
table=$(mktemp "$tmp/table.XXXXXX")
{
  echo "### Instructions per malloc+free pair (callgrind, ($pairs x 2 pairs - $pairs pairs) / $pairs)"
  echo
  echo "$header"
  echo "$rule"
} > "$table"
failed=0 skipped=()
for a in "${alloc_list[@]}"; do
  case "$a" in
    system) pre= ;;
    hakmem) pre=$lib; [ -f "$pre" ] || { echo "$prog: $pre: no such library (make lib)" >&2; exit 1; } ;;
    *) pre=$(peer_lib "$a"); [ -n "$pre" ] || { skipped+=("$a"); continue; } ;;
  esac
  row="| $a |"
  for c in "${cases[@]}"; do
    set -- $c
    if [ "$1" = large ]; then args=(large "$2"); else args=(small); fi
    echo "$prog: $a: ${args[*]} ..." >&2
    i1=$(count "$pre" "${args[@]}" "$pairs") && i2=$(count "$pre" "${args[@]}" $((2 * pairs))) || { failed=1; row="$row failed |"; continue; }
    row="$row $(awk -v a="$i1" -v b="$i2" -v n="$pairs" 'BEGIN { printf "%.0f", (b - a) / n }') |"
  done
  echo "$row" >> "$table"
done
{
  echo
  echo "user-space instructions only; large: malloc(SIZE), its first byte written, free (a cache hit"
  echo "after the first pair wherever the allocator keeps the block); small: free and malloc of"
  echo "8-1024 B among 64 live blocks. hakmem in fixed mode, $(basename "$lib")."
  [ ${#skipped[@]} -eq 0 ] || echo "skipped (library not installed): ${skipped[*]}."
} >> "$table"
cat "$table"
if [ -n "$md" ]; then cp "$table" "$md" || { echo "$prog: cannot write $md" >&2; exit 1; }; fi
exit $failed
