/*
 * hakmem.h - public API of libhakmem, a large-block allocator.
 *
 * Two ways to use hakmem:
 *   1. Drop-in: LD_PRELOAD=libhakmem.so prog  (or link libhakmem.a before libc):
 *      malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
 *      memalign, valloc, pvalloc and malloc_usable_size are replaced.
 *   2. Native: call the hak_* functions below; no preloading needed.
 *
 * Requests of at least HAKMEM_LARGE_MIN bytes (default 64 KiB) are served by
 * hakmem: size class -> BigCache ring -> fresh mapping.  Smaller requests go to
 * glibc's own allocator untouched.  Freed large blocks are kept warm in BigCache;
 * blocks evicted from it go to Batch, which releases them with one munmap per
 * coalesced address range.  Only Batch ever munmaps a hakmem block.
 *
 * Errors: allocation functions return NULL and set errno (ENOMEM, EINVAL) like
 * their libc counterparts; knob setters return 0 or -errno.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#include "hakmem/shm.h"   /* HAK_COUNTERS / HAK_GAUGES, from which hak_stats_t is generated */

#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 1
#define HAKMEM_VERSION_PATCH 0
#define HAKMEM_VERSION "0.1.0"

#if defined(__GNUC__)
#define HAKMEM_API __attribute__((visibility("default")))
#else
#define HAKMEM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* malloc(size) semantics: size 0 gives a unique pointer; NULL + ENOMEM on failure. */
HAKMEM_API void  *hak_alloc(size_t size);
/* free(ptr) semantics: NULL is a no-op; an invalid or double free of a hakmem block
 * is reported on stderr and aborts the process, like glibc. */
HAKMEM_API void   hak_free(void *ptr);
/* calloc semantics: n*size overflow gives NULL + ENOMEM. */
HAKMEM_API void  *hak_calloc(size_t n, size_t size);
/* realloc semantics: realloc(NULL,n) = alloc(n); realloc(p,0) frees p and returns NULL
 * (glibc behaviour); on failure NULL + ENOMEM and p is untouched.  Large blocks grow
 * in place or by mremap, never by copying. */
HAKMEM_API void  *hak_realloc(void *ptr, size_t size);
/* posix_memalign semantics: returns 0, EINVAL (alignment not a power of two multiple
 * of sizeof(void *)) or ENOMEM. */
HAKMEM_API int    hak_memalign(void **out, size_t alignment, size_t size);
/* malloc_usable_size semantics: 0 for NULL. */
HAKMEM_API size_t hak_usable_size(const void *ptr);
/* Nonzero if ptr is the start of a live hakmem large block (exact lookup). */
HAKMEM_API int    hak_owns(const void *ptr);

/* ---- knobs (run-time values, always clamped to their bounds) ---- */
enum hakmem_knob {
    HAKMEM_KNOB_RING_CAP = 1,        /* BIGCACHE_RING_CAP: blocks per size-class ring */
    HAKMEM_KNOB_BATCH_THRESHOLD = 2, /* BATCH_THRESHOLD: pending bytes that trigger a flush */
    HAKMEM_KNOB_CACHE_MAX_BYTES = 3, /* total bytes BigCache may hold */
};
/* Current value of a knob, or 0 for an unknown knob. */
HAKMEM_API uint64_t hak_knob_get(int knob);
/* Set a knob.  Returns 0, or -EINVAL for an unknown knob, or -ERANGE when the
 * value was out of bounds (the knob is then set to the nearest bound). */
HAKMEM_API int      hak_knob_set(int knob, uint64_t value);
/* Convenience wrappers. */
HAKMEM_API int      hak_set_ring_cap(uint64_t cap);
HAKMEM_API int      hak_set_batch_threshold(uint64_t bytes);

/* Per-size-class ring cap: class cls (0 .. hak_class_count()-1) keeps at most
 * cap blocks instead of following BIGCACHE_RING_CAP; cap = UINT64_MAX
 * (HAK_CLASS_CAP_GLOBAL) makes it follow the global cap again.  Returns 0,
 * -EINVAL for an unknown class, -ERANGE when cap was clamped to 512. */
HAKMEM_API int      hak_set_class_cap(unsigned cls, uint64_t cap);
/* THP choice of class cls (a class of 2 MiB or more): state 2 = huge pages
 * (2 MiB-aligned + MADV_HUGEPAGE), 3 = 4 KiB pages (enum hak_class_thp in
 * hakmem/shm.h).  Applies to blocks mapped from now on.  Returns 0, or
 * -EINVAL for an unknown class, a class below 2 MiB or another state. */
HAKMEM_API int      hak_set_class_thp(unsigned cls, unsigned state);
/* Number of size classes, and the block size of class cls (0 if unknown). */
HAKMEM_API unsigned hak_class_count(void);
HAKMEM_API size_t   hak_class_block_size(unsigned cls);

/* Hand every cached block to Batch and flush Batch now (RSS falls back). */
HAKMEM_API void     hak_trim(void);
/* Flush Batch now, whatever its pending bytes. */
HAKMEM_API void     hak_flush(void);

/* A copy of this process's counters: a header that says which layout the
 * library filled (size and version), then one field per HAK_COUNTERS and
 * HAK_GAUGES entry of hakmem/shm.h (same name, meaning and order: the struct is
 * generated from those lists, so it can never miss one), then two figures
 * derived from them.  The layout changes when a counter is added (the version
 * goes up); the header stays the first 8 bytes for ever, so a caller built
 * against another hakmem.h can tell, through hak_stats_get_sized. */
#define HAK_STATS_VERSION 4u            /* 1: 0.1.0, without this header; 2: before lent_tail_*; 3: before peak_* */
#define HAK_X_STATS_FIELD(name, help) uint64_t name;
typedef struct hak_stats {
    uint32_t size;                     /* sizeof(hak_stats_t) in the library that filled it */
    uint32_t version;                  /* HAK_STATS_VERSION of that library */
    HAK_COUNTERS(HAK_X_STATS_FIELD)    /* large_allocs, cache_hits, evict_*, batch_*, munmap_calls, warm_* ... */
    HAK_GAUGES(HAK_X_STATS_FIELD)      /* bytes_mapped, bytes_cached, bytes_pending ... (now) */
    uint64_t evictions;                /* blocks handed to Batch, all reasons (sum of evict_*) */
    uint64_t peak_bytes_mapped;        /* high-water mark of bytes_mapped */
} hak_stats_t;
#undef HAK_X_STATS_FIELD
/* Fill *out, sized by this header (the caller and the library agree). */
HAKMEM_API void     hak_stats_get(hak_stats_t *out);
/* The ABI-checked form, for callers that may meet another build of the
 * library (dlsym, plugins): size is sizeof(*out) in the caller.  Returns 0
 * and fills *out when it matches the library's hak_stats_t; otherwise writes
 * only the header (size and version of the library's layout; nothing if
 * size < 8) and returns -EINVAL, so a mismatch is an error, not an overrun.
 * -EFAULT for out == NULL. */
HAKMEM_API int      hak_stats_get_sized(hak_stats_t *out, size_t size);

/* Print this process's counters, as HAKMEM_SHOW_STATS=1 does at exit (like
 * jemalloc's malloc_stats_print and mimalloc's mi_stats_print_out): a
 * readable summary (flags 0) or one JSON object (HAK_STATS_PRINT_JSON), the
 * format HAKMEM_STATS_FILE writes.  write(arg, text) receives the output in
 * NUL-terminated pieces that end at line boundaries; write == NULL prints on
 * stderr (fd 2, one write(2) for a summary up to 8 KiB) and ignores arg.
 * Works with HAKMEM_STATS=0 (the counters are then private) and in mode off
 * (all zero).  Returns 0, -EINVAL for unknown flags, -ENOMEM, or -EBUSY when
 * no consistent snapshot could be taken (nothing printed); errno is kept. */
#define HAK_STATS_PRINT_JSON 0x1u
HAKMEM_API int      hak_stats_print(void (*write)(void *arg, const char *text), void *arg, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
