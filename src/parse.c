/*
 * parse.c - sizes as people write them: "123", "64K", "4M", "1GiB", "2T"
 * (binary multiples, case-insensitive, optional "i" and "B").  Shared by the
 * HAKMEM_* options and the tools (hakmem-stat --set batch_threshold=4M).
 */
#include <errno.h>
#include <stdint.h>

#include "hak_internal.h"

int hak_parse_size(const char *s, uint64_t *out) {
    if (s == NULL) return -EINVAL;
    while (*s == ' ' || *s == '\t') s++;
    if (*s < '0' || *s > '9') return -EINVAL;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -ERANGE;
        v = v * 10 + d;
        s++;
    }
    unsigned shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    case 't': case 'T': shift = 40; s++; break;
    default: break;
    }
    if (shift && (*s == 'i' || *s == 'I')) s++;
    if (*s == 'b' || *s == 'B') s++;
    while (*s == ' ' || *s == '\t') s++;
    if (*s != '\0') return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift)) return -ERANGE;
    *out = v << shift;
    return 0;
}

