/*
 * hak_sizeclass.h - size -> size class, pure functions (inline: the class of
 * a request is on every large malloc's path).
 *
 * Classes start at 64 KiB and split every power of two into 4 equal steps:
 * 64K, 80K, 96K, 112K, 128K, 160K, ... 192M, 224M, 256M (49 classes).  A request
 * of n bytes gets the smallest class >= n, so internal waste is below 25%.
 * Requests above 256 MiB get no class: they are mapped exactly (page-rounded)
 * and never cached.
 */
#ifndef HAK_SIZECLASS_H
#define HAK_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#include "hak_base.h"          /* HAK_CLASS_NONE */
#include "hakmem/shm.h"        /* HAK_SHM_CLASSES */

#define HAK_NCLASSES 49u        /* 64 KiB .. 256 MiB, 4 classes per doubling */
_Static_assert(HAK_NCLASSES <= HAK_SHM_CLASSES, "shm has room for every class");
#define HAK_CLASS_MAX_SIZE ((size_t)256 << 20)

/* Class of a request of n bytes (n <= 256 MiB), or HAK_CLASS_NONE above. */
static inline uint32_t hak_size_class(size_t n) {
    if (n <= ((size_t)64 << 10)) return 0;
    if (n > HAK_CLASS_MAX_SIZE) return HAK_CLASS_NONE;
    unsigned e = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1)); /* 2^e < n <= 2^(e+1) */
    unsigned sh = e - 2;                                                        /* step = 2^(e-2) */
    size_t k = (n - ((size_t)1 << e) + ((size_t)1 << sh) - 1) >> sh;           /* 1..4 */
    return (uint32_t)((e - 16) * 4 + k);
}

/* Block size of class c (c < HAK_NCLASSES). */
static inline size_t hak_class_size(uint32_t c) {
    if (c == 0) return (size_t)64 << 10;
    unsigned e = 16 + (c - 1) / 4;
    size_t k = (c - 1) % 4 + 1;
    return ((size_t)1 << e) + k * ((size_t)1 << (e - 2));
}

#endif
