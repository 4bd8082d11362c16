/*
 * free.c - the release path of a large block:
 *   registry says "ours"? -> BigCache ring: room? keep warm
 *                          -> full / cap lowered / budget -> Batch
 * plus hak_free, hak_usable_size, hak_owns and invalid-pointer reports.
 */
#include <errno.h>

#include "hak_internal.h"

void hak_invalid_pointer(const char *fn, const void *p, hak_block_t *near) {
    if (hak_ready == 2) {
        hak_op_begin();
        HAK_CNT(invalid_frees);
        hak_op_end();
    }
    hak_shm_remove();          /* abort() runs no destructor: leave no stale segment */
    if (near != NULL)
        hak_fatal("%s(): invalid pointer %p: inside the hakmem block %p (%zu bytes), not its start", fn, p,
                  (void *)atomic_load(&near->user), near->size);
    hak_fatal("%s(): invalid pointer %p: double free or hakmem block no longer live", fn, p);
}

void hak_large_free(hak_block_t *b) {
    /* Claim the block; a second free of the same pointer finds it CACHED or
     * PENDING and is reported before it can corrupt a cache.  (A load and a
     * store, not a compare-and-swap: two threads freeing one block at the
     * same moment is a race in the program that no check can make safe.) */
    if (unlikely(atomic_load_explicit(&b->state, memory_order_relaxed) != HAK_BLOCK_LIVE))
        hak_invalid_pointer("free", (void *)atomic_load(&b->user), NULL);
    atomic_store_explicit(&b->state, HAK_BLOCK_CACHED, memory_order_relaxed);
    hak_shm_publish_check();
    hak_op_begin();
    HAK_CNT(large_frees);
    HAK_GAUGE_DOWN(bytes_live, b->size);
    HAK_GAUGE_DOWN(bytes_requested, b->req);
    HAK_GAUGE_DOWN(blocks_live, 1);
    hak_control_poll();
    hak_thp_on_free(b);
    if (likely(b->cls != HAK_CLASS_NONE) && (likely(!(b->flags & HAK_BF_HUGE)) || hak_thp_block_fits(b)))
        b = hak_tcache_put(b);
    if (b != NULL) hak_bigcache_put(b);
    hak_op_end();
}

void hak_free_chunk(void *p, hak_block_t *b) {
    if (atomic_load_explicit(&b->user, memory_order_relaxed) == (uintptr_t)p) {
        hak_large_free(b);
        return;
    }
    hak_block_t *near = hak_registry_near(p);
    if (unlikely(near != NULL)) hak_invalid_pointer("free", p, near);
    hak_libc_free(p);
}

void hak_free(void *p) {
    hak_block_t *b = hak_registry_chunk(p);      /* NULL for NULL and for most small blocks */
    if (likely(b == NULL)) {
        hak_libc_free(p);
        return;
    }
    hak_free_chunk(p, b);
}

size_t hak_usable_size(const void *p) {
    if (p == NULL) return 0;
    hak_block_t *b = hak_registry_lookup(p);
    if (b != NULL) return b->size;
    return hak_libc_usable_size((void *)p);
}

int hak_owns(const void *p) {
    hak_block_t *b = p ? hak_registry_lookup(p) : NULL;
    return b != NULL && atomic_load(&b->state) == HAK_BLOCK_LIVE;
}
