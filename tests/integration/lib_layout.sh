#!/usr/bin/env bash
# The library's small globals (scalars, locks, ring headers, knob mirrors: every
# data object under a page) lie together on a few pages, and the big static
# arrays (HAK_PAGE_ALIGNED, src/hak_base.h) start on pages of their own.  The
# Makefile links with -fdata-sections and --sort-section=alignment for it; a
# link that loses either spreads the small globals over a page per module
# (12 pages before), which costs idle RSS and TLB entries on the hit path.
# Read from the symbol table of the built libhakmem.so (readelf -sW).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
need_file "$LIB" "make"
need_cmd readelf binutils
python3 - "$LIB" <<'PY'
import re, subprocess, sys
lib = sys.argv[1]
sec = {}
for l in subprocess.check_output(["readelf", "-SW", lib], text=True).splitlines():
    m = re.match(r"\s*\[\s*(\d+)\]\s+(\S+)", l)
    if m: sec[m.group(1)] = m.group(2)
small, big = set(), []
for l in subprocess.check_output(["readelf", "-sW", lib], text=True).splitlines():
    p = l.split()
    if len(p) < 8 or p[3] != "OBJECT" or sec.get(p[6]) not in (".data", ".bss"): continue
    addr, size, name = int(p[1], 16), int(p[2], 0), p[7]
    if size >= 4096: big.append((name, addr))
    elif size > 0: small.update(range(addr >> 12, ((addr + size - 1) >> 12) + 1))
need = {"ring_slots", "hak_registry_root", "pending", "flushing", "range_start", "range_len", "vec", "tstate", "snap0", "snap1"}
missing = need - {n for n, _ in big}
print(f"small data objects on {len(small)} pages; {len(big)} big arrays")
if missing: sys.exit(f"lib_layout: big arrays not found in the symbol table: {sorted(missing)}")
unaligned = [n for n, a in big if n in need and a % 4096]
if unaligned: sys.exit(f"lib_layout: big arrays not page-aligned: {unaligned}")
# .data holds one page of initialised knobs; .bss's small objects fill two
if len(small) > 4: sys.exit(f"lib_layout: the small globals spread over {len(small)} pages (want <= 4)")
print("lib_layout: ok")
PY
