/*
 * tcache.c - the per-thread front cache of large blocks, in front of the
 * BigCache rings (DESIGN.md item 5).
 *
 * Each thread keeps up to HAK_TC_SLOTS freed blocks, at most
 * HAKMEM_TCACHE_MAX_BYTES of them, in its own TLS.  A hit pops one (newest
 * first, exact class) and a free pushes one: no lock, no atomic
 * read-modify-write, no store to memory another thread writes - only the
 * thread's own counter slot.  When it is full, the oldest block goes on to
 * its ring (hak_bigcache_put), where caps, budget and ghosts apply as before.
 * A ring cap of 0 for the class means no caching here either.
 *
 * Who else touches a thread's front cache, and how:
 *   - the thread itself at exit (stats.c's slot destructor): hak_tcache_drain;
 *   - trims, a lower budget, caps set to 0: hak_tcache_drain_all stops every thread at
 *     an operation boundary (the fork gate of stats.c: hak_stats_quiesce_*),
 *     then empties every registered front cache into the rings, sleeping
 *     threads' included;
 *   - a forked child: the threads that did not survive fork left their front
 *     caches behind, and hak_tcache_child_adopt hands those blocks to the rings.
 * Front caches are registered by slot index (stats.c gives every thread with a
 * slot of its own one entry); threads on the shared overflow slot have none.
 *
 * Accounting: blocks here count as cached (bytes_cached/blocks_cached, and
 * blocks_tcached for the front caches alone); a front-cache hit is a
 * cache_hit and a tcache_hit; a free kept here is a tcache_put (cache_puts
 * counts puts into rings, a block moved on from a front cache included).  The
 * per-class ring records see only ring traffic, and HAKMEM_CACHE_MAX_BYTES
 * bounds the rings: the front caches add at most HAKMEM_TCACHE_MAX_BYTES per
 * thread.
 */
#include "hak_internal.h"

uint64_t hak_tcache_max_bytes;
static hak_tcache_t *registry[HAK_SHM_SLOTS];   /* by slot index; written by the owner, read quiesced */

void hak_tcache_register(uint32_t slot_index) {
    if (slot_index < HAK_SHM_SLOTS)
        __atomic_store_n(&registry[slot_index], &hak_tls.tc, __ATOMIC_RELEASE);
}

void hak_tcache_unregister(uint32_t slot_index) {
    if (slot_index < HAK_SHM_SLOTS) __atomic_store_n(&registry[slot_index], NULL, __ATOMIC_RELEASE);
}

/* Move every block of tc to its ring.  Inside an operation bracket. */
static void drain(hak_tcache_t *tc) {
    uint32_t n = HAK_TC_LD(tc->n);
    HAK_TC_ST(tc->n, 0);
    HAK_TC_ST(tc->bytes, 0);
    for (uint32_t i = 0; i < n; i++) {
        hak_block_t *b = HAK_TC_LD(tc->v[i]);
        HAK_TC_ST(tc->v[i], NULL);
        HAK_GAUGE_DOWN(bytes_cached, b->size);
        HAK_GAUGE_DOWN(blocks_cached, 1);
        HAK_GAUGE_DOWN(blocks_tcached, 1);
        atomic_store_explicit(&b->state, HAK_BLOCK_LIVE, memory_order_relaxed);
        hak_bigcache_put(b);
    }
}

hak_block_t *hak_tcache_evict_oldest(hak_tcache_t *tc) {
    hak_block_t *b = HAK_TC_LD(tc->v[0]);
    uint32_t n = HAK_TC_LD(tc->n);
    for (uint32_t i = 1; i < n; i++) HAK_TC_ST(tc->v[i - 1], HAK_TC_LD(tc->v[i]));
    HAK_TC_ST(tc->n, n - 1);
    HAK_TC_ST(tc->v[n - 1], NULL);
    HAK_TC_ST(tc->bytes, HAK_TC_LD(tc->bytes) - b->size);
    HAK_GAUGE_DOWN(bytes_cached, b->size);
    HAK_GAUGE_DOWN(blocks_cached, 1);
    HAK_GAUGE_DOWN(blocks_tcached, 1);
    atomic_store_explicit(&b->state, HAK_BLOCK_LIVE, memory_order_relaxed);
    return b;
}

void hak_tcache_drain(void) {
    if (HAK_TC_LD(hak_tls.tc.n) == 0) return;
    hak_op_begin();
    drain(&hak_tls.tc);
    hak_op_end();
}

/* Any other thread's front cache holding a block?  A relaxed look, without
 * stopping anybody: a sleeping thread's count is exact; a busy thread may
 * cache a block just after, which a trim cannot prevent anyway. */
static bool others_hold_blocks(void) {
    for (uint32_t i = 0; i < HAK_SHM_SLOTS; i++) {
        hak_tcache_t *tc = __atomic_load_n(&registry[i], __ATOMIC_ACQUIRE);
        if (tc != NULL && tc != &hak_tls.tc && __atomic_load_n(&tc->n, __ATOMIC_RELAXED) > 0) return true;
    }
    return false;
}

void hak_tcache_drain_all(void) {
    if (!others_hold_blocks()) {    /* the common case: nobody to stop */
        hak_tcache_drain();
        return;
    }
    /* Stop the others first, outside any operation of ours (so snapshot
     * readers are not held off while we wait), then drain inside one: the
     * quiescer passes its own gate (hak_op_wait_gate). */
    hak_stats_quiesce_begin();      /* every other thread out of its operations, new ones held */
    hak_tls.quiescing = 1;
    hak_op_begin();
    for (uint32_t i = 0; i < HAK_SHM_SLOTS; i++) {
        hak_tcache_t *tc = __atomic_load_n(&registry[i], __ATOMIC_ACQUIRE);
        if (tc != NULL && __atomic_load_n(&tc->n, __ATOMIC_RELAXED) > 0) drain(tc);
    }
    hak_op_end();
    hak_tls.quiescing = 0;
    hak_stats_quiesce_end();
}

void hak_tcache_child_adopt(void) {
    /* Only the forking thread lives on; the others' TLS is still mapped. */
    hak_op_begin();
    for (uint32_t i = 0; i < HAK_SHM_SLOTS; i++) {
        hak_tcache_t *tc = registry[i];
        if (tc == NULL || tc == &hak_tls.tc) continue;
        registry[i] = NULL;
        if (HAK_TC_LD(tc->n) > 0) drain(tc);
    }
    hak_op_end();
}
