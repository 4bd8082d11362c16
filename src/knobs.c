/*
 * knobs.c - the run-time knobs BIGCACHE_RING_CAP and BATCH_THRESHOLD (plus the
 * cache byte budget): their bounds, the public setters, and the control block
 * through which another process (hakmem-stat --set, the tuner) steers them.
 * Every value from outside is clamped here before the allocator uses it.
 */
#include <errno.h>

#include "hak_internal.h"

_Atomic uint64_t hak_ring_cap = 4;
_Atomic uint64_t hak_batch_threshold = (uint64_t)4 << 20;
_Atomic uint64_t hak_cache_max_bytes = (uint64_t)1 << 30;

static pthread_mutex_t knob_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;   /* one control applier */
_Atomic uint64_t hak_ctl_applied_seq;      /* last control request applied */

void hak_knobs_lock(void) { pthread_mutex_lock(&knob_lock); }
void hak_knobs_unlock(void) { pthread_mutex_unlock(&knob_lock); }
void hak_knobs_child_reset(void) {
    pthread_mutex_init(&knob_lock, NULL);
    pthread_mutex_init(&ctl_lock, NULL);
}

void hak_knobs_publish(void) {
    hak_shm_knobs_t *k = &hak_seg->knobs;
    _Atomic uint64_t *gen = (_Atomic uint64_t *)&k->gen;
    atomic_store_explicit(gen, k->gen + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
#define PUT(field, v) atomic_store_explicit((_Atomic uint64_t *)&k->field, (v), memory_order_relaxed)
    uint64_t cap = atomic_load(&hak_ring_cap);
    PUT(ring_cap, cap);
    PUT(batch_threshold, atomic_load(&hak_batch_threshold));
    PUT(cache_max_bytes, atomic_load(&hak_cache_max_bytes));
    PUT(large_min, hak_opt.large_min);
    PUT(thp, (uint64_t)hak_os_thp_effective());
    PUT(tune_interval_ms, hak_opt.tune_interval_ms);
    PUT(idle_ms, hak_opt.idle_ms);
#undef PUT
    hak_bigcache_publish_caps();
    atomic_store_explicit(gen, k->gen + 1, memory_order_release);
}

void hak_knobs_init(void) {
    atomic_store(&hak_ring_cap, hak_opt.ring_cap);
    atomic_store(&hak_batch_threshold, hak_opt.batch_threshold);
    atomic_store(&hak_cache_max_bytes, hak_opt.cache_max_bytes);
    atomic_store(&hak_ctl_applied_seq, atomic_load((_Atomic uint64_t *)&hak_seg->control.seq));
    atomic_store((_Atomic uint64_t *)&hak_seg->control.applied_seq, atomic_load(&hak_ctl_applied_seq));
    hak_knobs_publish();
}

/* Set one knob (clamped). Returns 0 or -ERANGE if clamped, -EINVAL if unknown. */
static int knob_set(int knob, uint64_t value) {
    int clamped = 0;
    uint64_t old, v;
    pthread_mutex_lock(&knob_lock);
    switch (knob) {
    case HAKMEM_KNOB_RING_CAP:
        v = hak_clamp(value, 0, HAK_RING_CAP_MAX, &clamped);
        old = atomic_exchange(&hak_ring_cap, v);
        break;
    case HAKMEM_KNOB_BATCH_THRESHOLD:
        v = hak_clamp(value, HAK_BATCH_THRESHOLD_MIN, HAK_BATCH_THRESHOLD_MAX, &clamped);
        old = atomic_exchange(&hak_batch_threshold, v);
        break;
    case HAKMEM_KNOB_CACHE_MAX_BYTES:
        v = hak_clamp(value, 0, (uint64_t)1 << 40, &clamped);
        old = atomic_exchange(&hak_cache_max_bytes, v);
        break;
    default:
        pthread_mutex_unlock(&knob_lock);
        return -EINVAL;
    }
    hak_knobs_publish();
    pthread_mutex_unlock(&knob_lock);
    if (old != v) {
        HAK_PROBE3(knob_change, knob, old, v);
        if (hak_opt.verbose)
            hak_log("knob %d: %llu -> %llu", knob, (unsigned long long)old, (unsigned long long)v);
    }
    /* Lowering a limit takes effect now, not at the next free.  A lower
     * byte budget or a cap of 0 (no caching) empties the front caches first
     * (into the rings), then the rings' caps and budget apply; a cap lowered
     * to another value binds the rings only (the front caches are bounded by
     * HAKMEM_TCACHE_MAX_BYTES), so it stops no thread. */
    /* (inside an operation bracket: evictions and flushes count, and the
     * caller - the tuner thread, the program - may not be in one) */
    if ((knob == HAKMEM_KNOB_RING_CAP || knob == HAKMEM_KNOB_CACHE_MAX_BYTES) && v < old) {
        if (knob == HAKMEM_KNOB_CACHE_MAX_BYTES || v == 0) hak_tcache_drain_all();
        hak_op_begin();
        hak_bigcache_apply_cap();
        hak_op_end();
    }
    if (knob == HAKMEM_KNOB_BATCH_THRESHOLD && v < old) {
        hak_op_begin();
        hak_batch_flush(false);
        hak_op_end();
    }
    return clamped ? -ERANGE : 0;
}

/* One applier at a time: requests are applied in order and acknowledged
 * with a monotonic applied_seq.  Threads that find another thread applying
 * go on (trylock); the applier loops until it has caught up with seq. */
static void control_apply(hak_shm_control_t *ctl) {
    for (;;) {
        uint64_t seq = atomic_load_explicit((_Atomic uint64_t *)&ctl->seq, memory_order_acquire);
        if (seq == atomic_load_explicit(&hak_ctl_applied_seq, memory_order_relaxed)) return;
        /* Read each value once: the writer may still be scribbling; clamping
         * below bounds whatever we got. */
        uint64_t flags = atomic_load_explicit((_Atomic uint64_t *)&ctl->flags, memory_order_relaxed);
        uint64_t cap = atomic_load_explicit((_Atomic uint64_t *)&ctl->ring_cap, memory_order_relaxed);
        uint64_t thr = atomic_load_explicit((_Atomic uint64_t *)&ctl->batch_threshold, memory_order_relaxed);
        uint64_t cls = atomic_load_explicit((_Atomic uint64_t *)&ctl->class_id, memory_order_relaxed);
        uint64_t ccap = atomic_load_explicit((_Atomic uint64_t *)&ctl->class_cap, memory_order_relaxed);
        uint64_t cthp = atomic_load_explicit((_Atomic uint64_t *)&ctl->class_thp, memory_order_relaxed);
        uint64_t rejected = 0;
        hak_op_begin();
        if (flags & HAK_CTL_RING_CAP) rejected += knob_set(HAKMEM_KNOB_RING_CAP, cap) == -ERANGE;
        if (flags & HAK_CTL_BATCH_THRESHOLD) rejected += knob_set(HAKMEM_KNOB_BATCH_THRESHOLD, thr) == -ERANGE;
        if (flags & HAK_CTL_CLASS_CAP)
            rejected += cls >= HAK_NCLASSES || hak_set_class_cap((unsigned)cls, ccap) != 0;
        if (flags & HAK_CTL_CLASS_THP)
            rejected += cls >= HAK_NCLASSES || cthp > UINT32_MAX || hak_set_class_thp((unsigned)cls, (unsigned)cthp) != 0;
        if (flags & HAK_CTL_TRIM) hak_trim();
        HAK_CNT(ctl_applied);
        hak_op_end();
        atomic_store_explicit(&hak_ctl_applied_seq, seq, memory_order_relaxed);
        atomic_fetch_add((_Atomic uint64_t *)&ctl->rejected, rejected);
        atomic_store((_Atomic uint64_t *)&ctl->applied_ns, hak_wall_ns());
        atomic_store_explicit((_Atomic uint64_t *)&ctl->applied_seq, seq, memory_order_release);
    }
}

void hak_control_poll_slow(void) {
    if (pthread_mutex_trylock(&ctl_lock) != 0) return;        /* another thread is applying */
    control_apply(&hak_seg->control);
    pthread_mutex_unlock(&ctl_lock);
}

/* ---- public API ---- */

uint64_t hak_knob_get(int knob) {
    hak_init();
    switch (knob) {
    case HAKMEM_KNOB_RING_CAP: return atomic_load(&hak_ring_cap);
    case HAKMEM_KNOB_BATCH_THRESHOLD: return atomic_load(&hak_batch_threshold);
    case HAKMEM_KNOB_CACHE_MAX_BYTES: return atomic_load(&hak_cache_max_bytes);
    default: return 0;
    }
}

int hak_knob_set(int knob, uint64_t value) {
    if (!hak_init()) return -EAGAIN;
    hak_op_begin();
    int rc = knob_set(knob, value);
    hak_op_end();
    return rc;
}

int hak_set_ring_cap(uint64_t cap) { return hak_knob_set(HAKMEM_KNOB_RING_CAP, cap); }
int hak_set_batch_threshold(uint64_t bytes) { return hak_knob_set(HAKMEM_KNOB_BATCH_THRESHOLD, bytes); }

int hak_set_class_cap(unsigned cls, uint64_t cap) {
    if (!hak_init()) return -EINVAL;
    uint32_t old;
    if (cls < HAK_NCLASSES && cap == 0 && hak_bigcache_cap(cls) > 0) hak_tcache_drain_all();   /* no caching at all */
    hak_op_begin();                     /* a lower cap evicts, and evictions count */
    int rc = hak_bigcache_set_class_cap(cls, cap, &old);
    hak_op_end();
    if (rc == -EINVAL) return rc;
    if (hak_opt.verbose)
        hak_log("class %u cap: %s -> %llu%s", cls, old == UINT32_MAX ? "global" : "set",
                (unsigned long long)(cap == HAK_CLASS_CAP_GLOBAL ? atomic_load(&hak_ring_cap) : cap),
                cap == HAK_CLASS_CAP_GLOBAL ? " (global)" : "");
    HAK_PROBE3(knob_change, HAK_KNOB_CLASS_CAP, cls, cap);
    return rc;
}

unsigned hak_class_count(void) { return HAK_NCLASSES; }
size_t hak_class_block_size(unsigned cls) { return cls < HAK_NCLASSES ? hak_class_size(cls) : 0; }

void hak_trim(void) {
    if (!hak_init()) return;
    hak_tcache_drain_all();             /* every thread's front cache, sleeping ones' too */
    hak_op_begin();
    HAK_CNT(trims);
    hak_bigcache_trim();
    hak_batch_flush(true);
    hak_batch_trim();
    hak_thp_trim();
    hak_registry_trim();
    hak_op_end();
}

int hak_trim_held(void) {
    if (!hak_active()) return 0;
    hak_stats_t st;
    hak_stats_get(&st);             /* rings, front caches and Batch */
    if (st.bytes_cached + st.bytes_pending == 0) return 0;
    hak_trim();
    return 1;
}

void hak_flush(void) {
    if (!hak_init()) return;
    hak_op_begin();
    hak_batch_flush(true);
    hak_op_end();
}
