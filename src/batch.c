/*
 * batch.c - Batch: the one place where hakmem blocks are released.
 *
 * Evicted blocks wait here until their sizes add up to BATCH_THRESHOLD
 * bytes (a run-time knob).  A flush takes every pending block, sorts them by
 * address, merges neighbours whose mappings touch or are separated only by
 * free address space of an arena (arena.c), and issues ONE munmap per
 * merged range: fewer syscalls and one TLB shootdown per range instead of one
 * per block.  USDT probes hakmem:batch_flush_begin(blocks, bytes) and
 * hakmem:batch_flush_end(ranges, munmaps, ns) bracket every flush, so an eBPF
 * program can tell munmaps inside a flush window from all others.
 *
 * A miss may take a pending block back before it is unmapped
 * (hak_batch_rescue): its pages are still warm, and the munmap is saved.
 * A range whose munmap fails stays mapped: its blocks go back to the pending
 * list (still registered, still counted as mapped) for the next flush.
 *
 * Locking: batch_lock guards the pending list (short); flush_lock serialises
 * flushes, which run without batch_lock held so evictions never wait on munmap.
 */
#include <errno.h>
#include <string.h>

#include "hak_internal.h"

#define BATCH_MAX 4096u                 /* pending blocks; a full list flushes */

static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_block_t *pending[BATCH_MAX] HAK_PAGE_ALIGNED;
static _Atomic size_t npending;       /* read without the lock only as a hint */
static uint32_t pending_in_class[HAK_NCLASSES];   /* guarded by batch_lock */
static uint64_t pending_bytes;
static hak_block_t *flushing[BATCH_MAX] HAK_PAGE_ALIGNED;  /* guarded by flush_lock */
static uintptr_t range_start[BATCH_MAX] HAK_PAGE_ALIGNED;
static size_t range_len[BATCH_MAX] HAK_PAGE_ALIGNED;
static _Atomic int munmap_warned;
/* A block went into the pending list since hak_batch_trim gave the lists
 * back (batch_lock).  A flush writes the other arrays only for such blocks. */
static bool lists_dirty;
_Static_assert(sizeof(hak_block_t *[BATCH_MAX]) % HAK_PAGE == 0, "the lists fill whole pages (hak_batch_trim gives them back)");

void hak_batch_lock(void) {
    pthread_mutex_lock(&flush_lock);
    pthread_mutex_lock(&batch_lock);
}
void hak_batch_unlock(void) {
    pthread_mutex_unlock(&batch_lock);
    pthread_mutex_unlock(&flush_lock);
}
void hak_batch_child_reset(void) {
    pthread_mutex_init(&batch_lock, NULL);
    pthread_mutex_init(&flush_lock, NULL);
}

/* In-place heap sort by map_base: no allocation, O(n log n), n <= BATCH_MAX. */
static void sift(hak_block_t **v, size_t i, size_t n) {
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && v[l]->map_base > v[m]->map_base) m = l;
        if (l + 1 < n && v[l + 1]->map_base > v[m]->map_base) m = l + 1;
        if (m == i) return;
        hak_block_t *t = v[i]; v[i] = v[m]; v[m] = t;
        i = m;
    }
}

size_t hak_batch_coalesce(hak_block_t **v, size_t n, uintptr_t *starts, size_t *lens) {
    for (size_t i = n / 2; i-- > 0;) sift(v, i, n);
    for (size_t end = n; end-- > 1;) {
        hak_block_t *t = v[0]; v[0] = v[end]; v[end] = t;
        sift(v, 0, end);
    }
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        if (nr > 0 && starts[nr - 1] + lens[nr - 1] == v[i]->map_base) {
            lens[nr - 1] += v[i]->map_size;
        } else {
            starts[nr] = v[i]->map_base;
            lens[nr] = v[i]->map_size;
            nr++;
        }
    }
    return nr;
}

/* Merge ranges r and r+1 (sorted, disjoint) where the address space between
 * them is an arena's and holds nothing (hak_arena_claim takes it): blocks
 * carved from one arena are released by one munmap though freed apart.  A
 * gap the kernel left between mappings nobody owns is never crossed: another
 * thread may have mapped something there.  Returns the new count. */
static size_t merge_gaps(uintptr_t *starts, size_t *lens, size_t nr) {
    size_t out = 0;
    for (size_t i = 0; i < nr; i++) {
        if (out > 0 && hak_arena_claim(starts[out - 1] + lens[out - 1], starts[i])) {
            lens[out - 1] = starts[i] + lens[i] - starts[out - 1];
            continue;
        }
        starts[out] = starts[i];
        lens[out++] = lens[i];
    }
    return out;
}

void hak_batch_add(hak_block_t *b, int reason) {
    static const int reason_counter[HAK_EVICT_NREASONS] = {
        HAK_C_evict_ring_full, HAK_C_evict_cap_lowered, HAK_C_evict_budget,
        HAK_C_evict_idle_trim, HAK_C_evict_uncacheable,
    };
    HAK_PROBE3(bigcache_evict, b->cls, b->size, reason);
    atomic_store_explicit(&b->state, HAK_BLOCK_PENDING, memory_order_relaxed);
    hak_cnt_add(reason_counter[reason], 1);
    HAK_CNT(batch_adds);
    HAK_CNT_ADD(batch_add_bytes, b->size);
    HAK_GAUGE_UP(bytes_pending, b->size);
    HAK_GAUGE_UP(blocks_pending, 1);

    pthread_mutex_lock(&batch_lock);
    while (npending == BATCH_MAX) {
        /* Full while another thread's flush still runs: wait for the list
         * (a blocking flush takes flush_lock after that flush is done). */
        pthread_mutex_unlock(&batch_lock);
        hak_batch_flush(true);
        pthread_mutex_lock(&batch_lock);
    }
    pending[npending++] = b;
    lists_dirty = true;
    pending_bytes += b->size;
    if (b->cls < HAK_NCLASSES) pending_in_class[b->cls]++;
    bool due = pending_bytes >= atomic_load_explicit(&hak_batch_threshold, memory_order_relaxed) ||
               npending == BATCH_MAX;
    pthread_mutex_unlock(&batch_lock);
    if (due) hak_batch_flush(false);
}

/* The pending list and the flush's arrays hold stale pointers once nothing
 * is pending: their pages go back to the kernel (the trims). */
void hak_batch_trim(void) {
    pthread_mutex_lock(&flush_lock);
    pthread_mutex_lock(&batch_lock);
    if (npending == 0 && lists_dirty) {
        (void)hak_os_release((uintptr_t)pending, sizeof pending);
        (void)hak_os_release((uintptr_t)flushing, sizeof flushing);
        (void)hak_os_release((uintptr_t)range_start, sizeof range_start);
        (void)hak_os_release((uintptr_t)range_len, sizeof range_len);
        lists_dirty = false;
    }
    pthread_mutex_unlock(&batch_lock);
    pthread_mutex_unlock(&flush_lock);
}

const void *hak_batch_pending_array(size_t *len) {
    *len = sizeof pending;
    return pending;
}

void hak_batch_flush(bool force) {
    if (force) pthread_mutex_lock(&flush_lock);
    else if (pthread_mutex_trylock(&flush_lock) != 0) return;   /* a flush is running */

    pthread_mutex_lock(&batch_lock);
    bool due = force || npending == BATCH_MAX ||
               pending_bytes >= atomic_load_explicit(&hak_batch_threshold, memory_order_relaxed);
    size_t n = due ? npending : 0;
    uint64_t bytes = due ? pending_bytes : 0;
    if (n > 0) {
        memcpy(flushing, pending, n * sizeof pending[0]);
        npending = 0;
        pending_bytes = 0;
        memset(pending_in_class, 0, sizeof pending_in_class);
    }
    pthread_mutex_unlock(&batch_lock);
    if (n == 0) {
        pthread_mutex_unlock(&flush_lock);
        return;
    }

    HAK_PROBE2(batch_flush_begin, n, bytes);
    uint64_t t0 = hak_now_ns();
    for (size_t i = 0; i < n; i++) hak_registry_remove(flushing[i]);
    size_t nr = merge_gaps(range_start, range_len, hak_batch_coalesce(flushing, n, range_start, range_len));
    uint64_t calls = 0, mapped = 0, kept_bytes = 0, gaps = 0;
    size_t kept = 0, bi = 0;
    for (size_t i = 0; i < nr; i++) {
        size_t first = bi;      /* blocks [first, bi) make up range i (sorted, consecutive) */
        uint64_t blocks_len = 0;
        while (bi < n && flushing[bi]->map_base < range_start[i] + range_len[i]) blocks_len += flushing[bi++]->map_size;
        int rc = hak_os_unmap(range_start[i], range_len[i]);
        calls++;
        if (rc == 0) {
            mapped += blocks_len;
            gaps += range_len[i] - blocks_len;      /* the arena's free space it crossed */
            for (size_t k = first; k < bi; k++) hak_block_delete(flushing[k]);
            continue;
        }
        /* the gaps it crossed are the arena's again (still reserved) */
        for (size_t k = first + 1; k < bi; k++) {
            uintptr_t g = flushing[k - 1]->map_base + flushing[k - 1]->map_size;
            if (g < flushing[k]->map_base) hak_arena_give(g, flushing[k]->map_base);
        }
        if (atomic_exchange(&munmap_warned, 1) == 0)
            hak_warn("munmap(%p, %zu) failed: %s; the range stays mapped and is retried at the next flush "
                     "(counted in munmap_failures; later failures are only counted)",
                     (void *)range_start[i], range_len[i], strerror(-rc));
        /* Still mapped: keep the blocks, pending, for the next flush
         * (compacted to the front: kept <= first, those slots are done). */
        for (size_t k = first; k < bi; k++) {
            hak_block_t *b = flushing[k];
            hak_registry_insert(b);     /* its leaf exists: it was registered before */
            kept_bytes += b->size;
            flushing[kept++] = b;
        }
    }
    uint64_t ns = hak_now_ns() - t0;
    HAK_PROBE3(batch_flush_end, nr, calls, ns);
    size_t kept_n = kept;
    if (kept_n > 0) {
        /* flushing[0, kept_n): back to the list (it has room: it was emptied
         * when this flush began and holds at most BATCH_MAX - n others...
         * unless other threads filled it meanwhile: those blocks then stay
         * mapped, registered and PENDING, and are only counted). */
        pthread_mutex_lock(&batch_lock);
        for (size_t i = 0; i < kept_n; i++) {
            hak_block_t *b = flushing[i];
            if (npending == BATCH_MAX) break;
            pending[npending++] = b;
            pending_bytes += b->size;
            if (b->cls < HAK_NCLASSES) pending_in_class[b->cls]++;
        }
        pthread_mutex_unlock(&batch_lock);
    }
    pthread_mutex_unlock(&flush_lock);

    HAK_CNT(batch_flushes);
    HAK_CNT_ADD(batch_blocks_flushed, n - kept_n);
    HAK_CNT_ADD(batch_bytes_flushed, bytes - kept_bytes);
    HAK_CNT_ADD(batch_ranges_flushed, nr);
    HAK_CNT_ADD(batch_flush_ns, ns);
    HAK_GAUGE_DOWN(bytes_pending, bytes - kept_bytes);
    HAK_GAUGE_DOWN(blocks_pending, n - kept_n);
    HAK_GAUGE_DOWN(bytes_mapped, mapped);
    HAK_CNT_ADD(batch_gap_bytes, gaps);
    if (hak_opt.verbose >= 2)
        hak_log("flush: %zu blocks, %llu bytes, %zu ranges, %llu ns", n, (unsigned long long)bytes, nr,
                (unsigned long long)ns);
}

/* Take back a pending block of class lo..hi (the lowest class first) before
 * it is unmapped.  Returns it LIVE, or NULL. */
hak_block_t *hak_batch_rescue(uint32_t lo, uint32_t hi) {
    if (atomic_load_explicit(&npending, memory_order_relaxed) == 0) return NULL;
    if (hi >= HAK_NCLASSES) hi = HAK_NCLASSES - 1;
    hak_block_t *b = NULL;
    pthread_mutex_lock(&batch_lock);
    uint32_t want = UINT32_MAX;
    for (uint32_t c = lo; c <= hi; c++)
        if (pending_in_class[c] > 0) { want = c; break; }
    if (want != UINT32_MAX) {
        /* newest first: the warmest pages */
        for (size_t i = npending; i-- > 0;) {
            if (pending[i]->cls != want) continue;
            b = pending[i];
            pending[i] = pending[--npending];
            pending_bytes -= b->size;
            pending_in_class[want]--;
            break;
        }
    }
    pthread_mutex_unlock(&batch_lock);
    if (b == NULL) return NULL;
    atomic_store_explicit(&b->state, HAK_BLOCK_LIVE, memory_order_relaxed);
    HAK_CNT(warm_rescued);
    HAK_CNT_ADD(warm_rescued_bytes, b->size);
    HAK_GAUGE_DOWN(bytes_pending, b->size);
    HAK_GAUGE_DOWN(blocks_pending, 1);
    return b;
}
