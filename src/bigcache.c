/*
 * bigcache.c - BigCache: one ring of warm blocks per size class.
 *
 * Hits are served newest-first (warmest pages); evictions take the oldest.
 * A ring holds at most cap blocks (BIGCACHE_RING_CAP, a run-time knob); all
 * rings together hold at most HAKMEM_CACHE_MAX_BYTES.  A block that does not
 * fit (ring full, cap lowered, budget exceeded, trim) is handed to Batch:
 * BigCache never releases memory itself.
 *
 * Ghost accounting for the tuner: every capacity eviction leaves a "ghost"; a
 * later miss that finds a ghost would have been a hit with a bigger ring.  The
 * length of the current run of such misses (deficit) is how many more slots
 * that hit needed; its log2 histogram per class (reuse_hist) lets the tuner
 * predict the hit rate of every candidate cap without trial and error.
 *
 * A ring holds at most its class's cap: the per-class cap when one was set
 * (hak_set_class_cap, the tuner), else the global BIGCACHE_RING_CAP.
 *
 * Warm reuse on a miss (alloc.c asks in this order, before mapping fresh
 * memory): the ring of a bigger class within HAK_NEAR_CLASSES (one doubling,
 * so waste stays under 2x; hak_bigcache_pop_near), or a smaller cached block
 * that realloc's mremap grows (hak_bigcache_pop_smaller).
 *
 * Locking: one spinlock per class; no global lock on the hit path.  Victims
 * are handed to Batch after the ring lock is dropped.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "hak_internal.h"

#define GHOST_MAX 4096u
#define PUT_VICTIMS_MAX 8u      /* evictions one free may do itself; the rest wait */

void hak_lock_slow(hak_lock_t *l) {
    for (unsigned n = 0;; n++) {
        while (atomic_load_explicit(&l->v, memory_order_relaxed)) {
            if (n++ < 64) __builtin_ia32_pause();
            else sched_yield();
        }
        if (!atomic_exchange_explicit(&l->v, 1, memory_order_acquire)) return;
    }
}

typedef struct hak_ring {
    hak_lock_t lock;
    uint32_t tail;                      /* index of the oldest block */
    uint32_t count;
    uint32_t ghosts;                    /* capacity evictions not yet "reused" by a miss */
    uint32_t deficit;                   /* current run of ghost-served misses */
    uint32_t lent;                      /* blocks lent to other classes' misses: the next misses
                                           here are theirs, not a demand for a bigger ring */
    bool slots_dirty;                   /* a block went into the slots since they were given back */
    hak_block_t **v;                    /* its slots: ring_slots[class] */
} __attribute__((aligned(64))) hak_ring_t;

/* The headers sit together and the slots apart: a class's slot page is
 * touched only when the class caches a block, so the idle process keeps
 * one small page of ring headers resident, not a page per class. */
static hak_ring_t rings[HAK_NCLASSES];
static hak_block_t *ring_slots[HAK_NCLASSES][HAK_RING_CAP_MAX] HAK_PAGE_ALIGNED;
_Static_assert(sizeof ring_slots[0] % HAK_PAGE == 0, "each class's slots fill whole pages (hak_bigcache_trim gives them back)");
_Atomic int64_t hak_cached_bytes;      /* bytes in all rings: what the byte budget bounds */
/* Per-class cap plus one (0 = follow hak_ring_cap, so .bss means "global"). */
_Atomic uint32_t hak_class_cap1[HAK_NCLASSES];

#define cap_of hak_bigcache_cap

/* Cached blocks of class c as last published (a hint read without the lock). */
static inline uint64_t cached_hint(uint32_t c) {
    return atomic_load_explicit((_Atomic uint64_t *)&hak_seg->classes[c].cached_blocks, memory_order_relaxed);
}

void hak_bigcache_init(void) {
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) {
        hak_lock_init(&rings[c].lock);
        rings[c].v = ring_slots[c];
        hak_seg->classes[c].size = hak_class_size(c);
        hak_seg->classes[c].cap = atomic_load(&hak_ring_cap);
        hak_seg->classes[c].class_cap = HAK_CLASS_CAP_GLOBAL;
    }
    hak_seg->nclasses = HAK_NCLASSES;
}

void hak_bigcache_lock_all(void) {
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) hak_lock(&rings[c].lock);
}
void hak_bigcache_unlock_all(void) {
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) hak_unlock(&rings[c].lock);
}
void hak_bigcache_child_reset(void) {
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) hak_lock_init(&rings[c].lock);
}

/* Per-class figures in the segment: written under the ring lock, seqlock'd. */
static inline void cls_begin(hak_shm_class_t *s) {
    atomic_store_explicit((_Atomic uint64_t *)&s->gen, s->gen + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}
static inline void cls_end(hak_shm_class_t *s, const hak_ring_t *r) {
    atomic_store_explicit((_Atomic uint64_t *)&s->cached_blocks, r->count, memory_order_relaxed);
    atomic_store_explicit((_Atomic uint64_t *)&s->ghosts, r->ghosts, memory_order_relaxed);
    atomic_store_explicit((_Atomic uint64_t *)&s->gen, s->gen + 1, memory_order_release);
}
static inline void cls_inc(uint64_t *field, uint64_t n) {
    atomic_store_explicit((_Atomic uint64_t *)field, *field + n, memory_order_relaxed);
}

static inline hak_block_t *ring_take_oldest(hak_ring_t *r) {
    hak_block_t *b = r->v[r->tail];
    r->tail = (r->tail + 1) % HAK_RING_CAP_MAX;
    r->count--;
    return b;
}

static void evict_all(hak_block_t **victims, uint32_t n, int reason) {
    for (uint32_t i = 0; i < n; i++) {
        size_t sz = victims[i]->size;
        atomic_fetch_sub_explicit(&hak_cached_bytes, (int64_t)sz, memory_order_relaxed);
        HAK_GAUGE_DOWN(bytes_cached, sz);
        HAK_GAUGE_DOWN(blocks_cached, 1);
        hak_batch_add(victims[i], reason);
    }
}

/* A cached block leaves BigCache (hit, near-class reuse, reshape). */
static inline void block_out(hak_block_t *b) {
    atomic_store_explicit(&b->state, HAK_BLOCK_LIVE, memory_order_relaxed);
    atomic_fetch_sub_explicit(&hak_cached_bytes, (int64_t)b->size, memory_order_relaxed);
    HAK_GAUGE_DOWN(bytes_cached, b->size);
    HAK_GAUGE_DOWN(blocks_cached, 1);
}

hak_block_t *hak_bigcache_pop(uint32_t c) {
    hak_ring_t *r = &rings[c];
    hak_shm_class_t *s = &hak_seg->classes[c];
    hak_block_t *b = NULL;
    hak_lock(&r->lock);
    cls_begin(s);
    if (r->count > 0) {
        r->count--;
        b = r->v[(r->tail + r->count) % HAK_RING_CAP_MAX];
        cls_inc(&s->hits, 1);
    } else {
        cls_inc(&s->misses, 1);
        if (r->lent > 0) {
            r->lent--;
        } else if (r->ghosts > 0) {
            r->ghosts--;
            r->deficit++;
            unsigned bucket = 31u - (unsigned)__builtin_clz(r->deficit);
            if (bucket > 7) bucket = 7;
            cls_inc(&s->ghost_hits, 1);
            cls_inc(&s->reuse_hist[bucket], 1);
        }
    }
    /* a run of misses a bigger ring would have served: the tuner should look now */
    bool nudge = r->deficit == 4 || (r->deficit > 4 && r->deficit % 32 == 0);
    cls_end(s, r);
    hak_unlock(&r->lock);
    if (unlikely(nudge)) hak_stats_signal_tuner();
    if (b != NULL) {
        block_out(b);
        HAK_CNT(cache_hits);
    } else {
        HAK_CNT(cache_misses);
    }
    return b;
}

/* Take the newest block of ring c, or NULL; when len is nonzero, only if its
 * mapping holds len bytes and its second VMA, if any, starts within head.
 * A block lent to another class's miss counts in the ring's lent (the misses
 * it causes here are not a demand for a bigger ring); one taken for the
 * class's own demand (a realloc growing into the class) is a hit of the class. */
static hak_block_t *take_newest(uint32_t c, size_t len, size_t head, bool lend) {
    if (cached_hint(c) == 0) return NULL;
    hak_ring_t *r = &rings[c];
    hak_shm_class_t *s = &hak_seg->classes[c];
    hak_block_t *b = NULL;
    hak_lock(&r->lock);
    if (r->count > 0) {
        hak_block_t *n = r->v[(r->tail + r->count - 1) % HAK_RING_CAP_MAX];
        if (len == 0 || (n->map_size >= len && n->split <= head &&
                         hak_page_down(atomic_load_explicit(&n->user, memory_order_relaxed)) == n->map_base)) {
            cls_begin(s);
            r->count--;
            b = n;
            if (!lend) cls_inc(&s->hits, 1);
            else if (r->lent < HAK_RING_CAP_MAX) r->lent++;
            cls_end(s, r);
        }
    }
    hak_unlock(&r->lock);
    if (b != NULL) block_out(b);
    return b;
}

/* The newest block of class c + from .. c + HAK_NEAR_CLASSES, the lowest
 * class first (take_newest's len and head); of a class above c, lent. */
static hak_block_t *take_near(uint32_t c, uint32_t from, size_t len, size_t head) {
    for (uint32_t k = from; k <= HAK_NEAR_CLASSES && c + k < HAK_NCLASSES; k++) {
        hak_block_t *b = take_newest(c + k, len, head, k > 0);
        if (b != NULL) return b;
    }
    return NULL;
}

hak_block_t *hak_bigcache_take_for_grow(uint32_t c, size_t len, size_t head) { return take_near(c, 0, len, head); }

hak_block_t *hak_bigcache_pop_near(uint32_t c) { return take_near(c, 1, 0, 0); }

hak_block_t *hak_bigcache_pop_smaller(uint32_t c) {
    for (uint32_t k = 1; k <= HAK_NEAR_CLASSES && k <= c; k++) {
        hak_block_t *b = take_newest(c - k, 0, 0, true);
        if (b != NULL) return b;
    }
    return NULL;
}

void hak_bigcache_put(hak_block_t *b) {
    uint32_t c = b->cls;
    if (c == HAK_CLASS_NONE || unlikely(!hak_thp_block_fits(b))) {
        hak_batch_add(b, HAK_EVICT_UNCACHEABLE);
        return;
    }
    hak_ring_t *r = &rings[c];
    hak_shm_class_t *s = &hak_seg->classes[c];
    uint32_t cap = cap_of(c);
    uint64_t budget = atomic_load_explicit(&hak_cache_max_bytes, memory_order_relaxed);
    hak_block_t *victims[2 * PUT_VICTIMS_MAX + 1];
    uint32_t nfull = 0, nlow = 0, nbudget = 0;

    hak_lock(&r->lock);
    cls_begin(s);
    r->deficit = 0;
    r->lent = 0;                        /* a block came back: the lending is settled */
    /* cap lowered and not yet applied to this ring (hak_bigcache_apply_cap) */
    while (r->count > cap && nlow < PUT_VICTIMS_MAX) victims[nlow++] = ring_take_oldest(r);
    if (cap > 0 && r->count == cap) victims[nlow + nfull++] = ring_take_oldest(r); /* make room */
    /* budget: oldest blocks of this class first, then the freed block itself */
    int64_t cached = atomic_load_explicit(&hak_cached_bytes, memory_order_relaxed);
    int64_t freed = 0;
    for (uint32_t i = 0; i < nfull + nlow; i++) freed += (int64_t)victims[i]->size;
    while (r->count > 0 && nbudget < PUT_VICTIMS_MAX && (uint64_t)(cached - freed) + b->size > budget) {
        hak_block_t *v = ring_take_oldest(r);
        freed += (int64_t)v->size;
        victims[nfull + nlow + nbudget++] = v;
    }
    bool keep = cap > 0 && r->count < cap && (uint64_t)(cached - freed) + b->size <= budget;
    if (keep) {
        r->v[(r->tail + r->count) % HAK_RING_CAP_MAX] = b;
        r->count++;
        r->slots_dirty = true;
        atomic_store_explicit(&b->state, HAK_BLOCK_CACHED, memory_order_relaxed);
        cls_inc(&s->puts, 1);
        /* Count the block in before another thread can pop it (and count it
         * out): readers rely on every "out" having its "in" already. */
        atomic_fetch_add_explicit(&hak_cached_bytes, (int64_t)b->size, memory_order_relaxed);
        HAK_CNT(cache_puts);
        HAK_GAUGE_UP(bytes_cached, b->size);
        HAK_GAUGE_UP(blocks_cached, 1);
    }
    /* why the freed block itself is not kept, if it is not */
    int self = cap == 0 ? HAK_EVICT_RING_FULL : r->count >= cap ? HAK_EVICT_CAP_LOWERED : HAK_EVICT_BUDGET;
    uint32_t ncap = nfull + nlow + nbudget + (keep ? 0 : 1);
    r->ghosts = r->ghosts + ncap > GHOST_MAX ? GHOST_MAX : r->ghosts + ncap;
    cls_inc(&s->evictions[HAK_EVICT_RING_FULL], nfull);
    cls_inc(&s->evictions[HAK_EVICT_CAP_LOWERED], nlow);
    cls_inc(&s->evictions[HAK_EVICT_BUDGET], nbudget);
    if (!keep) cls_inc(&s->evictions[self], 1);
    cls_end(s, r);
    hak_unlock(&r->lock);

    evict_all(victims, nlow, HAK_EVICT_CAP_LOWERED);
    evict_all(victims + nlow, nfull, HAK_EVICT_RING_FULL);
    evict_all(victims + nfull + nlow, nbudget, HAK_EVICT_BUDGET);
    if (!keep) hak_batch_add(b, self);
}

/* Take blocks out of ring c until it holds at most keep; returns how many. */
static uint32_t shrink_ring(uint32_t c, uint32_t keep, int reason, hak_block_t **victims) {
    hak_ring_t *r = &rings[c];
    hak_shm_class_t *s = &hak_seg->classes[c];
    uint32_t n = 0;
    hak_lock(&r->lock);
    cls_begin(s);
    while (r->count > keep) victims[n++] = ring_take_oldest(r);
    if (reason == HAK_EVICT_IDLE_TRIM) {
        r->ghosts = 0;
        r->deficit = 0;
        r->lent = 0;
    } else {
        r->ghosts = r->ghosts + n > GHOST_MAX ? GHOST_MAX : r->ghosts + n;
    }
    cls_inc(&s->evictions[reason], n);
    atomic_store_explicit((_Atomic uint64_t *)&s->cap, cap_of(c), memory_order_relaxed);
    cls_end(s, r);
    /* A ring a trim emptied holds nothing but stale pointers: its slot page
     * goes back to the kernel (it reads as zeroes when the class caches a
     * block again), so an idle process does not keep a page for every class
     * it ever cached (measured: 108 KiB of an idle mixed-sizes worker's 2.5
     * MiB).  Under the lock: no put can write a slot while its page goes. */
    if (reason == HAK_EVICT_IDLE_TRIM && r->count == 0 && r->slots_dirty &&
        hak_os_release((uintptr_t)r->v, sizeof ring_slots[c]) == 0)
        r->slots_dirty = false;
    hak_unlock(&r->lock);
    return n;
}

/* Apply every ring's cap and the byte budget now: rings above their cap
 * evict their oldest blocks (cap_lowered), then, while the rings together
 * hold more than HAKMEM_CACHE_MAX_BYTES, the oldest blocks of the biggest
 * classes go (budget). */
void hak_bigcache_apply_cap(void) {
    hak_block_t *victims[HAK_RING_CAP_MAX];
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) {
        uint32_t n = shrink_ring(c, cap_of(c), HAK_EVICT_CAP_LOWERED, victims);
        evict_all(victims, n, HAK_EVICT_CAP_LOWERED);
    }
    int64_t cached = atomic_load_explicit(&hak_cached_bytes, memory_order_relaxed);
    uint64_t budget = atomic_load_explicit(&hak_cache_max_bytes, memory_order_relaxed);
    if (cached > 0 && (uint64_t)cached > budget) hak_bigcache_shed((uint64_t)cached - budget);
}

uint64_t hak_bigcache_shed(uint64_t bytes) {
    hak_block_t *victims[HAK_RING_CAP_MAX];
    uint64_t shed = 0;
    for (uint32_t c = HAK_NCLASSES; c-- > 0 && shed < bytes;) {
        uint64_t have = cached_hint(c), size = hak_class_size(c);
        if (have == 0) continue;
        uint64_t drop = (bytes - shed + size - 1) / size;
        uint32_t keep = drop >= have ? 0 : (uint32_t)(have - drop);
        uint32_t n = shrink_ring(c, keep, HAK_EVICT_BUDGET, victims);
        for (uint32_t i = 0; i < n; i++) shed += victims[i]->size;
        evict_all(victims, n, HAK_EVICT_BUDGET);
    }
    return shed;
}

int hak_bigcache_set_class_cap(uint32_t c, uint64_t cap, uint32_t *old) {
    if (c >= HAK_NCLASSES) return -EINVAL;
    int clamped = 0;
    uint32_t before = cap_of(c);
    uint32_t v = cap == HAK_CLASS_CAP_GLOBAL ? 0 : (uint32_t)hak_clamp(cap, 0, HAK_RING_CAP_MAX, &clamped) + 1;
    uint32_t was = atomic_exchange(&hak_class_cap1[c], v);
    if (old) *old = was == 0 ? UINT32_MAX : was - 1;
    hak_shm_class_t *s = &hak_seg->classes[c];
    hak_lock(&rings[c].lock);
    cls_begin(s);
    atomic_store_explicit((_Atomic uint64_t *)&s->class_cap, v == 0 ? HAK_CLASS_CAP_GLOBAL : v - 1,
                          memory_order_relaxed);
    atomic_store_explicit((_Atomic uint64_t *)&s->cap, cap_of(c), memory_order_relaxed);
    cls_end(s, &rings[c]);
    hak_unlock(&rings[c].lock);
    if (cap_of(c) < before) {
        hak_block_t *victims[HAK_RING_CAP_MAX];
        uint32_t n = shrink_ring(c, cap_of(c), HAK_EVICT_CAP_LOWERED, victims);
        evict_all(victims, n, HAK_EVICT_CAP_LOWERED);
    }
    return clamped ? -ERANGE : 0;
}

/* The global cap changed: publish every following class's effective cap. */
void hak_bigcache_publish_caps(void) {
    for (uint32_t c = 0; c < HAK_NCLASSES; c++)
        atomic_store_explicit((_Atomic uint64_t *)&hak_seg->classes[c].cap, cap_of(c), memory_order_relaxed);
}

void hak_bigcache_trim(void) {
    hak_block_t *victims[HAK_RING_CAP_MAX];
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) {
        uint32_t n = shrink_ring(c, 0, HAK_EVICT_IDLE_TRIM, victims);
        evict_all(victims, n, HAK_EVICT_IDLE_TRIM);
    }
}

const void *hak_bigcache_slot_page(uint32_t c) { return ring_slots[c]; }
