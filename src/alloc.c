/*
 * alloc.c - the allocation path of a large block:
 *   size class -> this thread's front cache: the block it freed last of the
 *                 class or up to one doubling bigger (no lock, no syscall)
 *              -> BigCache ring of that class: hit? reuse (no syscall)
 *              -> miss? warm memory hakmem already holds, in this order:
 *                   a block of the class (or up to one doubling bigger)
 *                   still pending in Batch, taken back before its munmap;
 *                   a cached block of a bigger class (one doubling at most);
 *                   a smaller cached block grown in place or moved by mremap
 *                   (its touched pages come along);
 *              -> else, the peak bound holding (footprint.c), os map (THP
 *                 per class) -> registry
 * and the native allocation API (hak_alloc, hak_calloc, hak_memalign).
 * No page is zeroed twice while a warm one is at hand (DESIGN.md item 12),
 * and a bigger block lent to a smaller request does not keep a big unused
 * resident tail (release_lent_tail: peak memory no worse than the peers').
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hak_internal.h"

void (*_Atomic hak_first_large_hook)(void);

/* A miss of ring c served from warm memory, or NULL. */
static hak_block_t *warm_miss(uint32_t c) {
    hak_block_t *b = hak_batch_rescue(c, c + HAK_NEAR_CLASSES);
    if (b != NULL) return b;
    b = hak_bigcache_pop_near(c);
    if (b != NULL) {
        HAK_CNT(warm_near);
        return b;
    }
    if (hak_class_size(c) < HAK_RESHAPE_MIN) return NULL;
    b = hak_bigcache_pop_smaller(c);
    if (b == NULL) return NULL;
    if (hak_block_grow(b, c) != 0) {
        /* no room to grow it: it goes where a block nobody wants goes */
        hak_batch_add(b, HAK_EVICT_UNCACHEABLE);
        return NULL;
    }
    HAK_CNT(warm_reshaped);
    return b;
}

/* A tail worth releasing when a bigger block serves a smaller request: at
 * least this much, and a quarter of the block; beyond the peak bound
 * (footprint.c), any tail of LENT_TAIL_TIGHT or more. */
#define LENT_TAIL_MIN    ((size_t)8 << 20)
#define LENT_TAIL_SHARE  4u
#define LENT_TAIL_TIGHT  ((size_t)4 << 20)

/* Block b, of another class, serves a request of keep bytes.  Pages an
 * earlier, bigger use made resident past keep are memory the program no
 * longer uses but that counts in its RSS (a 24 MiB block written whole, lent
 * to a 12 MiB request, holds 12 MiB for nothing).  Give them back when they
 * are worth the madvise and the refault (the kernel zeroes them again) that
 * a later bigger use of b pays: LENT_TAIL_MIN and a quarter of the block.
 * Measured (bench, 3 runs each): with 8 MiB, 5-25 MiB blocks peak at 418
 * MiB instead of 449 at the same speed; with 2 MiB, mixed (64 KiB-8 MiB)
 * ran 7x slower in steady state, with 4 MiB 2x.  Beyond the peak bound the
 * memory matters more: tails of LENT_TAIL_TIGHT go too (5-25 MiB blocks:
 * peak 418 -> 385 MiB with the bound's sheds; 1 MiB made mixed 1.6x slower
 * in evolving mode, 142 tails refaulted, 4 MiB within the noise).
 * Whole huge pages of a THP block, so none is split.
 * The mapping stays; the program may still use all of b->size
 * (malloc_usable_size): those pages come back zeroed. */
static void release_tail(hak_block_t *b, size_t keep) {
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    uintptr_t g = (b->flags & HAK_BF_HUGE) ? HAK_HUGE_PAGE : HAK_PAGE;
    size_t used = b->touched < b->size ? b->touched : b->size;
    uintptr_t from = (u + keep + g - 1) & ~(g - 1);
    uintptr_t to = (u + used + g - 1) & ~(g - 1), end = b->map_base + b->map_size;
    if (to > end) to = end;
    if (to <= from || to - from < LENT_TAIL_TIGHT) return;
    if ((b->cls == HAK_CLASS_NONE || to - from < LENT_TAIL_MIN || to - from < b->size / LENT_TAIL_SHARE) &&
        hak_footprint_over(keep, b->size) == 0)
        return;
    if (hak_os_release(from, to - from) != 0) return;     /* it stays resident: only a lost saving */
    b->touched = from - u;
    HAK_CNT(lent_tail_released);
    HAK_CNT_ADD(lent_tail_bytes, to - from);
}

/* The color of a block mapped at page base: an offset into its first page, a
 * multiple of a cache line, drawn from the address (a hash of the page number:
 * no state, and the same block keeps the same color for its life).
 *
 * Why: a page-aligned block puts the word at offset k * 4 KiB of every block
 * in the same cache set (the set index bits are the low 12 address bits, in
 * L1 and, physical pages being page-aligned too, in L2 and L3).  A program
 * that walks many blocks page by page, or reads the same header field of
 * each, then uses 1/64 of every cache level.  jemalloc offsets its large
 * blocks the same way (opt.cache_oblivious).  Measured: the bench's partial
 * scenario (32 live 4 MiB buffers, 16-512 KiB of each written a word per
 * page) went from 1.26-1.30x glibc's time to 0.95-0.96x. */
static inline size_t color_for(uintptr_t page) {
    return (size_t)(((uint64_t)(page >> 12) * 0x9E3779B97F4A7C15ull) >> 58) * HAK_COLOR_ALIGN;
}

/* Map a fresh block for class c (or an uncacheable request of n bytes).  A
 * block bigger than HAK_COLOR_MIN that keeps 4 KiB pages gets a page of room
 * past its size and a color (color_for); one that may get huge pages keeps
 * the 2 MiB geometry and color 0 (a color would put its last bytes in one
 * more huge page). */
static hak_block_t *map_fresh(uint32_t c, size_t n, size_t align) {
    size_t size = c != HAK_CLASS_NONE ? hak_class_size(c) : hak_align_up(n, HAK_PAGE);
    uintptr_t base;
    size_t len;
    uint32_t flags = 0;
    int thp = align <= HAK_PAGE && size >= HAK_HUGE_PAGE ? hak_thp_choose(c, &flags) : HAK_OS_THP_NONE;
    if (thp == HAK_OS_THP_HUGE) flags |= HAK_BF_HUGE;
    size_t extra = c != HAK_CLASS_NONE && size > HAK_COLOR_MIN && thp != HAK_OS_THP_HUGE && !(flags & HAK_BF_PROBE)
                       ? HAK_PAGE
                       : 0;
    hak_block_t *b = hak_block_new();
    void *user = b ? hak_os_map_block(size, align, thp, extra, &base, &len) : NULL;
    if (user == NULL) {
        if (b) hak_block_delete(b);
        return NULL;
    }
    if (extra != 0 && align <= HAK_COLOR_ALIGN) user = (char *)user + color_for((uintptr_t)user);
    atomic_store_explicit(&b->user, (uintptr_t)user, memory_order_relaxed);
    b->map_base = base;
    b->map_size = len;
    b->size = size;
    b->cls = c;
    b->flags = flags;
    b->split = 0;
    b->touched = n < size ? n : size;
    atomic_store_explicit(&b->state, HAK_BLOCK_LIVE, memory_order_relaxed);
    if (hak_registry_insert(b) != 0) {
        hak_batch_add(b, HAK_EVICT_UNCACHEABLE);   /* only Batch may release it */
        return NULL;
    }
    if (unlikely(flags & HAK_BF_PROBE)) hak_thp_mapped(b);
    if (flags & HAK_BF_HUGE) hak_thp_fresh(b);
    return b;
}

bool hak_oom_release(void) {
    if (hak_tls.depth != 0) return false;       /* inside an operation: the drain must not nest */
    int64_t g[HAK_NGAUGES];
    hak_stats_gauges_now(g);
    if (g[HAK_G_bytes_cached] + g[HAK_G_bytes_pending] <= 0) return false;
    hak_tcache_drain_all();                     /* every thread's front cache, to the rings */
    hak_op_begin();
    hak_bigcache_trim();                        /* every ring, to Batch */
    hak_batch_flush(true);                      /* and all of it to the kernel */
    hak_op_end();
    return true;
}

void *hak_large_alloc(size_t n, size_t align, bool zero) {
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    hak_shm_publish_check();
    hak_op_begin();
    hak_control_poll();
    uint32_t c = align <= HAK_PAGE ? hak_size_class(n) : HAK_CLASS_NONE;
    hak_block_t *b = NULL;
    if (c != HAK_CLASS_NONE) {
        b = hak_tcache_pop(c);
        if (b == NULL) b = hak_bigcache_pop(c);
        if (b == NULL && likely(hak_opt.warm_reuse)) b = warm_miss(c);
    } else {
        HAK_CNT(cache_misses);                  /* never cacheable: a miss by definition */
    }
    bool fresh = false;
    if (b == NULL) {
        hak_footprint_fit(n, c != HAK_CLASS_NONE ? hak_class_size(c) : n);
        b = map_fresh(c, n, align);
        if (b == NULL) {
            hak_op_end();
            /* out of memory while blocks are held: all of them back, and
             * once more (the second time round nothing is held) */
            if (hak_oom_release()) return hak_large_alloc(n, align, zero);
            errno = ENOMEM;
            return NULL;
        }
        fresh = true;
    }
    if (!fresh) {
        /* A warm block: a bigger block lent or a smaller one grown (another
         * class), or one of the class.  What its earlier uses made resident
         * past this request may go (release_tail); then this use may touch
         * up to n. */
        if (unlikely(b->cls != c)) release_tail(b, n);
        if (b->touched < n) b->touched = n;
    }
    /* a request aligned beyond a cache line gets the block's page start (same
     * registry chunk, so nothing to update); a later malloc keeps it so */
    if (unlikely(align > HAK_COLOR_ALIGN))
        atomic_store_explicit(&b->user, hak_page_down(atomic_load_explicit(&b->user, memory_order_relaxed)),
                              memory_order_relaxed);
    HAK_CNT(large_allocs);
    b->req = n;
    HAK_GAUGE_UP(bytes_live, b->size);
    HAK_GAUGE_UP(bytes_requested, n);
    HAK_GAUGE_UP(blocks_live, 1);
    void *p = (void *)atomic_load_explicit(&b->user, memory_order_relaxed);
    if (zero && fresh) HAK_CNT(calloc_zero_skipped);   /* the kernel zeroed it */
    hak_op_end();
    /* Outside the bracket: a memset of up to 256 MiB must not hold off
     * snapshot readers or fork (the block is this thread's alone now).  Past
     * n too, up to what earlier requests of a warm block reached (touched):
     * its usable size is the program's, and no earlier owner's bytes show. */
    if (zero && !fresh) memset(p, 0, b->touched < b->size ? b->touched : b->size);   /* touched >= n */
    /* the first large block runs the hook (the background thread, if wanted) */
    if (unlikely(atomic_load_explicit(&hak_first_large_hook, memory_order_relaxed))) {
        void (*hook)(void) = atomic_exchange(&hak_first_large_hook, NULL);
        if (hook) hook();
    }
    return p;
}

void *hak_alloc(size_t n) {
    /* a nonzero threshold means initialised and not mode=off (SIZE_MAX there) */
    if (n >= hak_large_threshold && (likely(hak_large_threshold != 0) || hak_active()))
        return hak_large_alloc(n, 0, false);
    return hak_libc_malloc(n);
}

void *hak_calloc(size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (total >= hak_large_threshold && hak_active()) return hak_large_alloc(total, 0, true);
    return hak_libc_calloc(n, size);
}

int hak_memalign(void **out, size_t align, size_t n) {
    if (align == 0 || (align & (align - 1)) != 0 || align % sizeof(void *) != 0) return EINVAL;
    void *p;
    int saved = errno;
    if (n >= hak_large_threshold && hak_active()) p = hak_large_alloc(n, align, false);
    else p = hak_libc_memalign(align, n);
    if (p == NULL) {
        errno = saved;          /* posix_memalign reports through its return value */
        return ENOMEM;
    }
    *out = p;
    return 0;
}
