/*
 * alloc.c - the allocation path of a large block:
 *   size class -> BigCache ring of that class: hit? reuse (no syscall)
 *              -> miss? os map (THP-aware alignment) -> registry
 * and the native allocation API (hak_alloc, hak_calloc, hak_memalign).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hak_internal.h"

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
    if (c != HAK_CLASS_NONE) b = hak_bigcache_pop(c);
    else HAK_CNT(cache_misses);                 /* never cacheable: a miss by definition */
    bool fresh = false;
    if (b == NULL) {
        size_t size = c != HAK_CLASS_NONE ? hak_class_size(c) : hak_align_up(n, HAK_PAGE);
        uintptr_t base;
        size_t len;
        b = hak_block_new();
        void *user = b ? hak_os_map_block(size, align, &base, &len) : NULL;
        if (user == NULL) {
            if (b) hak_block_delete(b);
            hak_op_end();
            errno = ENOMEM;
            return NULL;
        }
        atomic_store_explicit(&b->user, (uintptr_t)user, memory_order_relaxed);
        b->map_base = base;
        b->map_size = len;
        b->size = size;
        b->cls = c;
        atomic_store_explicit(&b->state, HAK_BLOCK_LIVE, memory_order_relaxed);
        if (hak_registry_insert(b) != 0) {
            hak_batch_add(b, HAK_EVICT_UNCACHEABLE);   /* only Batch may release it */
            hak_op_end();
            errno = ENOMEM;
            return NULL;
        }
        fresh = true;
    }
    HAK_CNT(large_allocs);
    HAK_GAUGE(bytes_live, (int64_t)b->size);
    HAK_GAUGE(blocks_live, 1);
    void *p = (void *)atomic_load_explicit(&b->user, memory_order_relaxed);
    if (zero) {
        if (fresh) HAK_CNT(calloc_zero_skipped);   /* the kernel zeroed it */
        else memset(p, 0, n);
    }
    hak_op_end();
    /* the first large block starts the background thread */
    if (unlikely(atomic_load_explicit(&hak_evolve_pending, memory_order_relaxed)) &&
        atomic_exchange(&hak_evolve_pending, false))
        hak_evolve_start_slow();
    return p;
}

void *hak_alloc(size_t n) {
    if (n >= hak_large_threshold && hak_active()) return hak_large_alloc(n, 0, false);
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
