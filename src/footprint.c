/*
 * footprint.c - the peak bound: what hakmem holds beyond the program's
 * requests (blocks in BigCache and the front caches, blocks pending in Batch,
 * the unrequested rest of live blocks: class rounding, a lent block's tail)
 * must not take the process past the program's own high-water mark of
 * requested bytes by more than a slack:
 *
 *     requested + held <= max(requested high-water, requested) + slack,
 *     slack = max(PEAK_SLACK_MIN, requested / PEAK_SLACK_SHARE)
 *
 * A program that frees 200 MiB and asks for it again (phases, bursts) keeps
 * all of it warm: requested + held never passes the high-water mark.  One
 * whose live bytes stay near their mark while freed blocks of other sizes pile
 * up and bigger blocks serve smaller requests (5-25 MiB blocks, a random one
 * replaced: the bench's large) would hold 70 MiB more than it ever used at
 * once.  Beyond the bound, the oldest cached blocks of the biggest classes go
 * to Batch and are released before fresh memory is mapped (hak_footprint_fit),
 * and a bigger block lent to a smaller request gives back a smaller resident
 * tail than it otherwise would (alloc.c asks hak_footprint_over).
 *
 * The slack: 64 MiB, or an eighth of the requested bytes.  Measured (bench,
 * A/B of the library): with 16 MiB and 1/16 the 32 blocks of 64 KiB-8 MiB
 * churn (mixed) ran 1.5x slower and two threads' 256 KiB-4 MiB blocks 3x,
 * their caches being most of what they hold; with 64 MiB and 1/8 neither
 * moved, and 5-25 MiB blocks peaked at 385 MiB instead of 418 (jemalloc: 352).
 *
 * Only the misses that map fresh memory or lend a block ask (they make a
 * syscall or a madvise anyway); a hit adds nothing and does not ask.  The
 * figures are the counters' gauges summed over the slots: exact at every
 * other thread's operation boundary, good enough for a bound.  The resident
 * part of a live block's unrequested rest is not known; all of it counts.
 * HAKMEM_PEAK_BOUND=0 turns the bound off.
 */
#include "hak_internal.h"

#define PEAK_SLACK_MIN   ((int64_t)64 << 20)
#define PEAK_SLACK_SHARE 8
#define FOOTPRINT_MAX    ((size_t)1 << 48)

static _Atomic int64_t req_peak;    /* high-water mark of requested live bytes (with the request at hand) */

/* hak_footprint_over with the gauges g read already. */
static uint64_t over_of(const int64_t *g, size_t req, size_t size) {
    if (!hak_opt.peak_bound) return 0;
    /* beyond any address space: no mapping of it can succeed, and the sums
     * below must not overflow (the fuzzer asks for PTRDIFF_MAX bytes) */
    if (req > FOOTPRINT_MAX || size > FOOTPRINT_MAX) return 0;
    int64_t live = g[HAK_G_bytes_requested] + (int64_t)req;
    int64_t peak = atomic_load_explicit(&req_peak, memory_order_relaxed);
    while (live > peak &&
           !atomic_compare_exchange_weak_explicit(&req_peak, &peak, live, memory_order_relaxed, memory_order_relaxed)) {
    }
    if (live > peak) peak = live;
    int64_t slack = live / PEAK_SLACK_SHARE > PEAK_SLACK_MIN ? live / PEAK_SLACK_SHARE : PEAK_SLACK_MIN;
    /* held beyond the requests: the rest of the live blocks (class rounding,
     * lent tails: an upper bound of what of it is resident), cached, pending */
    int64_t held = g[HAK_G_bytes_live] + (int64_t)size - live + g[HAK_G_bytes_cached] + g[HAK_G_bytes_pending];
    int64_t room = peak - live + slack;
    return held > room ? (uint64_t)(held - room) : 0;
}

uint64_t hak_footprint_over(size_t req, size_t size) {
    if (!hak_opt.peak_bound) return 0;
    int64_t g[HAK_NGAUGES];
    hak_stats_gauges_now(g);
    return over_of(g, req, size);
}

void hak_footprint_fit(size_t req, size_t size) {
    if (!hak_opt.peak_bound) return;
    int64_t g[HAK_NGAUGES];
    hak_stats_gauges_now(g);
    uint64_t over = over_of(g, req, size);
    if (over == 0) return;
    uint64_t shed = hak_bigcache_shed(over);
    /* then this thread's front cache, oldest first (others' hold a bounded
     * HAKMEM_TCACHE_MAX_BYTES each and are theirs to touch) */
    while (shed < over && HAK_TC_LD(hak_tls.tc.n) > 0) {
        hak_block_t *b = hak_tcache_evict_oldest(&hak_tls.tc);
        shed += b->size;
        hak_batch_add(b, HAK_EVICT_BUDGET);
    }
    /* what went to Batch, and what was pending already, is resident until released */
    if (shed == 0 && g[HAK_G_bytes_pending] <= 0) return;
    hak_batch_flush(true);
    HAK_CNT(peak_fits);
    HAK_CNT_ADD(peak_shed_bytes, shed);
}

void hak_footprint_reset(void) { atomic_store_explicit(&req_peak, 0, memory_order_relaxed); }
