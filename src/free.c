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
    uint32_t expect = HAK_BLOCK_LIVE;
    /* Claim the block; a second free of the same pointer finds it CACHED or
     * PENDING and is reported before it can corrupt a ring. */
    if (!atomic_compare_exchange_strong(&b->state, &expect, HAK_BLOCK_CACHED))
        hak_invalid_pointer("free", (void *)atomic_load(&b->user), NULL);
    hak_shm_publish_check();
    hak_op_begin();
    HAK_CNT(large_frees);
    HAK_GAUGE(bytes_live, -(int64_t)b->size);
    HAK_GAUGE(blocks_live, -1);
    hak_control_poll();
    hak_bigcache_put(b);
    hak_op_end();
}

void hak_free(void *p) {
    hak_block_t *b = hak_registry_chunk(p);      /* NULL for NULL and for most small blocks */
    if (likely(b == NULL)) {
        hak_libc_free(p);
        return;
    }
    if (atomic_load_explicit(&b->user, memory_order_relaxed) == (uintptr_t)p) {
        hak_large_free(b);
        return;
    }
    hak_block_t *near = hak_registry_near(p);
    if (unlikely(near != NULL)) hak_invalid_pointer("free", p, near);
    hak_libc_free(p);
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
