/*
 * hak_base.h - what every file of the library uses: symbol visibility, branch hints,
 * page sizes and the few size constants and helpers that are not any module's.
 */
#ifndef HAK_BASE_H
#define HAK_BASE_H

#include <stddef.h>
#include <stdint.h>

#define HAK_HIDDEN __attribute__((visibility("hidden")))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
/* A static array of many pages, most of them never touched: it starts on a page
 * of its own.  The library is linked with its data sorted by alignment
 * (Makefile), so these come first and the small globals (scalars, locks, the
 * ring headers) share the next page or two instead of one page per module:
 * fewer pages resident when idle, and fewer TLB entries on the hit path. */
#define HAK_PAGE_ALIGNED __attribute__((aligned(4096)))

#define HAK_PAGE           4096u
#define HAK_HUGE_PAGE      (2u << 20)
#define HAK_LARGE_MIN_MIN  (64u << 10)     /* registry needs blocks >= 64 KiB */
#define HAK_CLASS_NONE     UINT32_MAX
#define HAK_RING_CAP_MAX   512u            /* upper bound of BIGCACHE_RING_CAP */

static inline size_t hak_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline uintptr_t hak_page_down(uintptr_t u) { return u & ~(uintptr_t)(HAK_PAGE - 1); }

/* Cache colouring (alloc.c): a block's user pointer may start up to a page
 * past its page, at a multiple of a cache line; its color is that offset.
 * A request aligned more strictly than HAK_COLOR_ALIGN gets color 0, and so
 * do blocks of at most HAK_COLOR_MIN: a buffer that starts there and grows by
 * realloc must keep offset 0 to reach the 2 MiB geometry (realloc.c; mremap
 * moves pages, it cannot shift bytes within them). */
#define HAK_COLOR_ALIGN    64u
#define HAK_COLOR_MIN      (256u << 10)
static inline size_t hak_color_of(uintptr_t user) { return user & (HAK_PAGE - 1); }

/* Clamp v into [lo, hi]; *clamped set to 1 when it moved. */
static inline uint64_t hak_clamp(uint64_t v, uint64_t lo, uint64_t hi, int *clamped) {
    if (v < lo) { if (clamped) *clamped = 1; return lo; }
    if (v > hi) { if (clamped) *clamped = 1; return hi; }
    return v;
}

#endif
