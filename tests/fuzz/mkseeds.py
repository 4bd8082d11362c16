#!/usr/bin/env python3
"""tests/fuzz/mkseeds.py - (re)write the hand-made seed inputs of the fuzz
targets into tests/fuzz/corpus/<target>/seed-*.  Regression inputs (crashes
found by fuzzing, named regress-*) live next to them and are never touched.
The byte formats are described at the top of fuzz_api.c and fuzz_shm.c."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# fuzz_api opcodes (op % 9)
ALLOC, CALLOC, MEMALIGN, REALLOC, FREE, KNOB, CTL, TRIM, FAIL = range(9)


def size(sel, d=0, extra=b""):
    """pick_size(): selector byte, signed 16-bit delta, then selector-specific bytes"""
    return bytes([sel]) + struct.pack("<h", d) + extra


def api_seeds():
    s = {}
    # alloc/free around large_min and the first class boundaries
    s["boundaries"] = b"".join(
        bytes([ALLOC]) + size(2, d) + bytes([i]) for i, d in enumerate([-1, 0, 1, -4096, 4096])
    ) + b"".join(bytes([ALLOC]) + size(3, d, bytes([c])) + bytes([c]) for c, d in [(1, -1), (1, 0), (1, 1), (4, 0), (8, 64)]) \
        + b"".join(bytes([FREE, i]) for i in range(10))
    # 2 MiB, multiples of it, then realloc growth (in place / mremap) and shrink
    s["huge_pages"] = (bytes([ALLOC]) + size(4, 0) + b"\x11" + bytes([ALLOC]) + size(5, 0, b"\x02") + b"\x22"
                       + bytes([REALLOC, 0]) + size(5, 100, b"\x05") + bytes([REALLOC, 1]) + size(4, -4096)
                       + bytes([REALLOC, 0]) + size(2, 0) + bytes([FREE, 0, FREE, 1]))
    # calloc of a dirty warm block, memalign of every kind
    s["calloc_reuse"] = (bytes([ALLOC]) + size(8, 0, b"\x10\x00") + b"\x33" + bytes([FREE, 0])
                         + bytes([CALLOC]) + size(8, 0, b"\x10\x00") + b"\x00\x00" + b"\x44"
                         + bytes([CALLOC]) + size(8, 0, b"\x10\x00") + b"\x01\xff")
    s["memalign"] = b"".join(bytes([MEMALIGN]) + size(sel, 0, b"\x01\x00") + bytes([a, 0x55])
                             for sel in (1, 2, 4, 8) for a in (0x02, 0x12, 0x42, 0x92, 0x9a, 0xa2, 0x00, 0x01))
    # small <-> large realloc, realloc(p, 0), realloc(NULL, n)
    s["realloc_cross"] = (bytes([ALLOC]) + size(1, 0, b"\x00\x10") + b"\x66" + bytes([REALLOC, 0]) + size(8, 0, b"\x00\x01")
                          + bytes([REALLOC, 0]) + size(1, 0, b"\x00\x02") + bytes([REALLOC, 0]) + size(0, 0) + b"\x01"
                          + bytes([REALLOC, 5]) + size(2, 0) + b"\x77")
    # uncached (> 256 MiB) and absurd sizes
    s["uncached_absurd"] = (bytes([ALLOC]) + size(6, 1, b"\x01") + b"\x01" + bytes([FREE, 0])
                            + b"".join(bytes([ALLOC]) + size(7, 0, bytes([i])) for i in range(6))
                            + bytes([REALLOC, 0]) + size(7, 0, b"\x00"))
    # knobs in and out of range, control block requests, trims
    s["knobs"] = (bytes([KNOB, 0]) + struct.pack("<H", 600) + bytes([KNOB, 0]) + struct.pack("<H", 0)
                  + bytes([KNOB, 1]) + struct.pack("<I", 1) + b"\x00" + bytes([KNOB, 5]) + struct.pack("<I", 0xffffffff) + b"\x0b"
                  + bytes([KNOB, 12]) + b"\x00\x00" + bytes([CTL, 7, 0]) + struct.pack("<I", 1000) + b"\x00"
                  + struct.pack("<I", 1) + b"\x00" + bytes([TRIM, 1, TRIM, 0]))
    # churn one class with ring cap 1 and a tiny threshold: evictions + flushes
    s["churn"] = (bytes([KNOB, 0]) + struct.pack("<H", 1) + bytes([KNOB, 5]) + struct.pack("<I", 65536) + b"\x00"
                  + (bytes([ALLOC]) + size(8, 0, b"\x40\x00") + b"\x01" + bytes([ALLOC]) + size(8, 0, b"\x40\x00") + b"\x02"
                     + bytes([FREE, 0, FREE, 1])) * 4)
    # injected mmap / mremap failures
    s["faults"] = (bytes([FAIL, 0, ALLOC]) + size(9, 0, struct.pack("<I", 77 << 20)) + b"\x01"
                   + bytes([ALLOC]) + size(8, 0, b"\x10\x00") + b"\x02"
                   + bytes([FAIL, 0, REALLOC, 0]) + size(5, 0, b"\x07")
                   + bytes([FAIL, 1, CALLOC]) + size(9, 0, struct.pack("<I", 9 << 20)) + b"\x01\x00"
                   + bytes([FAIL, 2, MEMALIGN]) + size(9, 0, struct.pack("<I", 5 << 20)) + b"\xa2"
                   + bytes([FAIL, 0, REALLOC, 3]) + size(1, 0, b"\x00\x01") + b"\x00"
                   + bytes([FAIL, 0, REALLOC, 3]) + size(8, 0, b"\x00\x08"))
    return s


def shm_seeds():
    s = {}
    # flags: bit0 raw, bit1 odd gens, bit2 file, bit3 0644, bit4 control, bits5-7 length mode
    s["valid"] = bytes([0])
    s["valid_file"] = bytes([4])
    s["mode_0644"] = bytes([4 | 8])
    s["short"] = bytes([1 << 5]) + struct.pack("<H", 100)
    s["longer"] = bytes([(2 << 5) | 4]) + struct.pack("<H", 4096)
    s["tiny"] = bytes([3 << 5]) + b"\x10"
    s["raw_magic"] = bytes([1]) + struct.pack("<QII", 0x4D454D4B4148, 1, 1 << 20)
    s["raw_foreign"] = bytes([1 | 4]) + b"not a hakmem segment at all"
    # region 0 patches: nclasses at offset 28, version at 8, size at 12
    s["huge_nclasses"] = bytes([0]) + bytes([0]) + struct.pack("<H", 24) + bytes([8]) + struct.pack("<II", 0, 0xffffffff)
    s["bad_version"] = bytes([0, 0x00]) + struct.pack("<H", 8) + bytes([4]) + struct.pack("<I", 2)
    s["size_lie"] = bytes([0, 0x18]) + struct.pack("<H", 12) + bytes([4]) + struct.pack("<I", 0x7fffffff)
    # odd generation in slot 5 and in class 3 (made even by the target; see fuzz_shm.c)
    s["odd_gens"] = bytes([2]) + bytes([1, 5]) + struct.pack("<H", 0) + bytes([8]) + struct.pack("<Q", 1) \
        + bytes([2, 3]) + struct.pack("<H", 0) + bytes([8]) + struct.pack("<Q", 7)
    # counters that break the invariants (negative gauge, more flushed than added)
    s["corrupt_counters"] = bytes([0]) + bytes([1, 3]) + struct.pack("<H", 16 + 8 * 33) + bytes([0, 4])
    s["control"] = bytes([16]) + struct.pack("<QQQQ", 99, 7, 1 << 40, 1)
    s["control_trim"] = bytes([16]) + struct.pack("<QQQQ", 100, 4, 3, 1 << 20)
    return s


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("api", api_seeds())
    write("shm", shm_seeds())
