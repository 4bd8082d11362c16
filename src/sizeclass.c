/*
 * sizeclass.c - size -> size class, pure functions.
 *
 * Classes start at 64 KiB and split every power of two into 4 equal steps:
 * 64K, 80K, 96K, 112K, 128K, 160K, ... 192M, 224M, 256M (49 classes).  A request
 * of n bytes gets the smallest class >= n, so internal waste is below 25%.
 * Requests above 256 MiB get no class: they are mapped exactly (page-rounded)
 * and never cached.
 */
#include "hak_internal.h"

uint32_t hak_size_class(size_t n) {
    if (n <= ((size_t)64 << 10)) return 0;
    if (n > HAK_CLASS_MAX_SIZE) return HAK_CLASS_NONE;
    unsigned e = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1)); /* 2^e < n <= 2^(e+1) */
    unsigned sh = e - 2;                                                        /* step = 2^(e-2) */
    size_t k = (n - ((size_t)1 << e) + ((size_t)1 << sh) - 1) >> sh;           /* 1..4 */
    return (uint32_t)((e - 16) * 4 + k);
}

size_t hak_class_size(uint32_t c) {
    if (c == 0) return (size_t)64 << 10;
    unsigned e = 16 + (c - 1) / 4;
    size_t k = (c - 1) % 4 + 1;
    return ((size_t)1 << e) + k * ((size_t)1 << (e - 2));
}
