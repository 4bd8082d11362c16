/*
 * override.c - the malloc family, replaced.  Forwarding only, no logic: every
 * symbol calls the native hak_* function or glibc's own entry point.
 * Active when libhakmem.so is preloaded or libhakmem.a is linked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include <malloc.h>
#include <stdlib.h>

#include "hak_internal.h"

#define HAK_EXPORT __attribute__((visibility("default")))

/* The two calls every program makes most: a compare and a jump to glibc for
 * the sizes hakmem does not own (hak_large_threshold is 0 until init, so the
 * first call takes the slow path, and SIZE_MAX in mode=off). */
HAK_EXPORT void *malloc(size_t n) {
    if (likely(n < hak_large_threshold)) return hak_libc_malloc(n);
    return hak_alloc(n);
}
/* A compare for the blocks of glibc's main heap (below every hakmem block);
 * otherwise one load (no hakmem block in the pointer's 4 GiB region) or two.
 * A pointer into the first 64 KiB of a hakmem block is caught here and
 * reported, whatever the bytes in front of it look like. */
HAK_EXPORT void free(void *p) {
    if (likely(hak_registry_below_all(p))) {
        hak_libc_free(p);
        return;
    }
    hak_block_t *b = hak_registry_chunk(p);
    if (likely(b == NULL)) {
        hak_libc_free(p);
        return;
    }
    hak_free_chunk(p, b);
}
HAK_EXPORT void *calloc(size_t n, size_t size) { return hak_calloc(n, size); }
HAK_EXPORT void *realloc(void *p, size_t n) { return hak_realloc(p, n); }
HAK_EXPORT size_t malloc_usable_size(void *p) { return hak_usable_size(p); }

HAK_EXPORT void *reallocarray(void *p, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return hak_realloc(p, total);
}

HAK_EXPORT int posix_memalign(void **out, size_t align, size_t n) { return hak_memalign(out, align, n); }

/* glibc memalign: alignment below the malloc alignment means malloc; other
 * alignments are rounded up to a power of two; absurd ones are EINVAL. */
HAK_EXPORT void *memalign(size_t align, size_t n) {
    if (align <= 2 * sizeof(void *)) return hak_alloc(n);
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1)) align = (size_t)1 << (64 - __builtin_clzll((unsigned long long)align));
    void *p = NULL;
    int rc = hak_memalign(&p, align, n);
    if (rc != 0) {
        errno = rc;
        return NULL;
    }
    return p;
}

/* C11 aligned_alloc: the alignment must be a power of two (EINVAL otherwise). */
HAK_EXPORT void *aligned_alloc(size_t align, size_t n) {
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return memalign(align, n);
}

HAK_EXPORT void *valloc(size_t n) { return memalign((size_t)sysconf(_SC_PAGESIZE), n); }

HAK_EXPORT void *pvalloc(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (n > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return memalign(page, n == 0 ? page : hak_align_up(n, page));
}

/* glibc malloc_trim, extended (tcmalloc's ReleaseFreeMemory): programs call
 * it to give memory back, so hakmem's cached blocks go too (hak_trim_held),
 * then glibc's own malloc_trim(pad) runs on the small-block heap.  1 if
 * either released memory, else 0. */
HAK_EXPORT int malloc_trim(size_t pad) {
    int ours = hak_trim_held();
    int theirs = hak_libc_malloc_trim(pad);
    return ours || theirs;
}
