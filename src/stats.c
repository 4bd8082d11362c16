/*
 * stats.c - per-thread counter slots in the telemetry segment.
 *
 * Each thread claims one slot of hak_seg->slots and is its only writer: hot
 * counters are plain stores, no atomic read-modify-write shared by threads.
 * hak_op_begin/hak_op_end (hak_internal.h) make the slot's generation odd for
 * the length of one allocator operation, so a reader sees every slot at an
 * operation boundary.  Slot 0 accumulates exited threads.  A thread that found
 * no free slot counts into a private slot of its own (thread-local) and adds
 * it into slot 1 with atomic adds at the end of each operation; slot 1's gen
 * counts the writers inside (hakmem/shm.h), so no thread ever waits for
 * another, and the thread looks for a free slot again every 1024 operations.
 * Folding a slot into slot 0 happens under hak_seg->fold_gen, which readers
 * check around a snapshot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hak_internal.h"

__thread hak_tls_t hak_tls __attribute__((tls_model("initial-exec")));
hak_shm_t *hak_seg;

static pthread_mutex_t fold_lock = PTHREAD_MUTEX_INITIALIZER;
/* The counts of a thread on the overflow slot, between two operations' ends
 * (zero outside an operation).  Default TLS model: it is touched only then. */
static __thread hak_shm_slot_t overflow_counts;
static pthread_key_t slot_key;
static bool slot_key_ok;

#define SLOT_RETIRED 0u
#define SLOT_SHARED  HAK_SHM_SLOT_SHARED
#define SLOT_FIRST   2u

static _Atomic uint64_t *shared_gen(void) { return (_Atomic uint64_t *)&hak_seg->slots[SLOT_SHARED].gen; }

/* slots[0 .. slots_in_use()) are every slot a thread ever claimed: scans stop
 * there, so the slots of threads that never existed are never paged in. */
static uint32_t slots_in_use(void) {
    uint64_t n = atomic_load_explicit((_Atomic uint64_t *)&hak_seg->slots_used, memory_order_acquire);
    return n == 0 || n > HAK_SHM_SLOTS ? HAK_SHM_SLOTS : (uint32_t)n;
}

/* Raise the high-water mark to n before slot n - 1 is claimed, so a reader
 * that sees anything the claimer counted also sees the slot. */
static void slots_raise(uint32_t n) {
    _Atomic uint64_t *used = (_Atomic uint64_t *)&hak_seg->slots_used;
    uint64_t old = atomic_load_explicit(used, memory_order_relaxed);
    while (old < n && !atomic_compare_exchange_weak_explicit(used, &old, n, memory_order_seq_cst,
                                                             memory_order_relaxed)) {
    }
}
void hak_stats_fold_lock(void) { pthread_mutex_lock(&fold_lock); }
void hak_stats_fold_unlock(void) { pthread_mutex_unlock(&fold_lock); }

static inline void gen_bump(uint64_t *gen, memory_order mo) {
    _Atomic uint64_t *g = (_Atomic uint64_t *)gen;
    atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + 1, mo);
}

/* Add src's counters into dst (both owned by the caller under fold_lock). */
static void slot_add(hak_shm_slot_t *dst, const hak_shm_slot_t *src) {
    for (int i = 0; i < HAK_NCOUNTERS; i++)
        atomic_store_explicit((_Atomic uint64_t *)&dst->counter[i], dst->counter[i] + src->counter[i],
                              memory_order_relaxed);
    for (int i = 0; i < HAK_NGAUGES; i++) {
        atomic_store_explicit((_Atomic uint64_t *)&dst->gauge_in[i], dst->gauge_in[i] + src->gauge_in[i],
                              memory_order_relaxed);
        atomic_store_explicit((_Atomic uint64_t *)&dst->gauge_out[i], dst->gauge_out[i] + src->gauge_out[i],
                              memory_order_relaxed);
    }
}

/* Move slot s into the retired slot; caller holds fold_lock. */
static void fold_slot_locked(hak_shm_slot_t *s) {
    hak_shm_slot_t *r = &hak_seg->slots[SLOT_RETIRED];
    gen_bump(&hak_seg->fold_gen, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    gen_bump(&r->gen, memory_order_relaxed);
    slot_add(r, s);
    gen_bump(&r->gen, memory_order_release);
    gen_bump(&s->gen, memory_order_relaxed);
    for (int i = 0; i < HAK_NCOUNTERS; i++)
        atomic_store_explicit((_Atomic uint64_t *)&s->counter[i], 0, memory_order_relaxed);
    for (int i = 0; i < HAK_NGAUGES; i++) {
        atomic_store_explicit((_Atomic uint64_t *)&s->gauge_in[i], 0, memory_order_relaxed);
        atomic_store_explicit((_Atomic uint64_t *)&s->gauge_out[i], 0, memory_order_relaxed);
    }
    gen_bump(&s->gen, memory_order_release);
    atomic_store_explicit((_Atomic uint64_t *)&s->owner_tid, 0, memory_order_release);
    gen_bump(&hak_seg->fold_gen, memory_order_release);
}

static void slot_release(void *arg) {
    hak_shm_slot_t *s = arg;
    if (s == NULL || hak_tls.slot != s || hak_tls.depth != 0) return;
    if (hak_tls.tc_ok) {
        /* the front cache's blocks go to the rings before the thread goes */
        hak_op_begin();
        hak_tcache_drain();
        hak_tcache_unregister((uint32_t)(s - hak_seg->slots));
        hak_tls.tc_ok = 0;
        hak_op_end();
    }
    pthread_mutex_lock(&fold_lock);
    fold_slot_locked(s);
    pthread_mutex_unlock(&fold_lock);
    /* A later free in another TLS destructor (glibc runs up to four rounds,
     * and one that frees in the last re-arms a destructor that never runs)
     * counts in the overflow slot, with no front cache: nothing may stay
     * registered in the TLS of a thread that is gone. */
    hak_tls.slot = NULL;
    hak_tls.own = 0;
    hak_tls.exited = 1;
}

_Atomic int hak_fork_gate;
bool hak_membarrier_ok;

/* Called by hak_op_begin when fork is quiescing: step back out of the
 * operation (even generation, shared slot released), wait, step in again. */
/* Step out of the current operation (the slot at a boundary, as far as
 * readers and quiescers see) and back in.  On the overflow slot the counts
 * made so far stay private meanwhile, so slot 1 is consistent without them. */
static void step_out(hak_tls_t *t) {
    _Atomic uint64_t *gen = (_Atomic uint64_t *)&t->slot->gen;
    atomic_store_explicit(gen, atomic_load_explicit(gen, memory_order_relaxed) + 1, memory_order_release);
    if (t->shared) atomic_fetch_sub_explicit(shared_gen(), 1, memory_order_release);
}
static void step_in(hak_tls_t *t) {
    _Atomic uint64_t *gen = (_Atomic uint64_t *)&t->slot->gen;
    if (t->shared) atomic_fetch_add_explicit(shared_gen(), 1, memory_order_seq_cst);
    atomic_store_explicit(gen, atomic_load_explicit(gen, memory_order_relaxed) + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

void hak_op_wait_gate(void) {
    hak_tls_t *t = &hak_tls;
    if (t->quiescing) return;          /* its own gate */
    while (atomic_load_explicit(&hak_fork_gate, memory_order_relaxed)) {
        step_out(t);
        while (atomic_load_explicit(&hak_fork_gate, memory_order_acquire)) sched_yield();
        step_in(t);
    }
}

/* One quiescer at a time (fork, a trim, a cap change).  A thread that wants
 * to quiesce from inside an operation steps out of it while it waits for
 * the lock, so the quiescer holding it can see it at a boundary. */
static pthread_mutex_t quiesce_lock = PTHREAD_MUTEX_INITIALIZER;

void hak_stats_quiesce_begin(void) {
    hak_tls_t *t = &hak_tls;
    bool inside = t->slot != NULL && t->depth != 0;
    while (pthread_mutex_trylock(&quiesce_lock) != 0) {
        if (inside) step_out(t);
        sched_yield();
        if (inside) step_in(t);
    }
    atomic_store_explicit(&hak_fork_gate, 1, memory_order_relaxed);
    if (hak_membarrier_ok) syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    else atomic_thread_fence(memory_order_seq_cst);
    /* on the overflow slot, this thread itself may be one of the writers inside */
    uint64_t own = inside && t->shared ? 1 : 0;
    /* read after the barrier: every thread inside an operation claimed its slot before it */
    uint32_t nslots = slots_in_use();
    for (uint32_t i = 0; i < nslots; i++) {
        hak_shm_slot_t *s = &hak_seg->slots[i];
        if (s == hak_tls.slot) continue;
        uint64_t busy = HAK_SHM_SLOT_BUSY(i), mine = i == SLOT_SHARED ? own : 0;
        while ((atomic_load_explicit((_Atomic uint64_t *)&s->gen, memory_order_acquire) & busy) > mine)
            sched_yield();
    }
}

void hak_stats_quiesce_end(void) {
    atomic_store_explicit(&hak_fork_gate, 0, memory_order_release);
    pthread_mutex_unlock(&quiesce_lock);
}

void hak_stats_quiesce_end_child(void) {
    pthread_mutex_init(&quiesce_lock, NULL);
    atomic_store_explicit(&hak_fork_gate, 0, memory_order_release);
}

void hak_stats_init(void) {
    hak_membarrier_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    slot_key_ok = pthread_key_create(&slot_key, slot_release) == 0;
    hak_seg->slots[SLOT_RETIRED].owner_tid = UINT64_MAX;
    hak_seg->slots[SLOT_SHARED].owner_tid = UINT64_MAX;
    slots_raise(SLOT_FIRST);
}

/* Take a free slot for this thread: true, or false when all are taken. */
static bool claim_own(hak_tls_t *t) {
    uint64_t tid = (uint64_t)syscall(SYS_gettid);
    for (uint32_t i = SLOT_FIRST; i < HAK_SHM_SLOTS; i++) {
        uint64_t expect = 0;
        if (atomic_load_explicit((_Atomic uint64_t *)&hak_seg->slots[i].owner_tid, memory_order_relaxed) != 0)
            continue;
        slots_raise(i + 1);
        if (atomic_compare_exchange_strong((_Atomic uint64_t *)&hak_seg->slots[i].owner_tid, &expect, tid)) {
            t->slot = &hak_seg->slots[i];
            t->shared = 0;
            t->own = 1;
            if (slot_key_ok) pthread_setspecific(slot_key, t->slot);
            if (slot_key_ok && hak_tcache_max_bytes > 0) {      /* the destructor drains it */
                hak_tcache_register(i);
                t->tc_ok = 1;
            }
            return true;
        }
    }
    return false;
}

void hak_stats_claim_slot(void) {
    hak_tls_t *t = &hak_tls;
    if (!t->exited && claim_own(t)) return;
    t->slot = &overflow_counts;
    t->shared = 1;
    t->own = 0;
}

void hak_stats_enter_slow(void) {
    hak_tls_t *t = &hak_tls;
    if (t->slot == NULL) hak_stats_claim_slot();
    if (t->shared) hak_stats_shared_enter();
}

void hak_stats_shared_enter(void) {
    hak_tls_t *t = &hak_tls;
    /* A slot may have come free since (a thread exited): look now and then. */
    if (unlikely((++t->overflow_ops & 1023u) == 0) && !t->exited && claim_own(t)) return;
    atomic_fetch_add_explicit(shared_gen(), 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_release);     /* the counts below come after it */
}

void hak_stats_shared_exit(void) {
    hak_shm_slot_t *p = hak_tls.slot, *s = &hak_seg->slots[SLOT_SHARED];
    for (int i = 0; i < HAK_NCOUNTERS; i++)
        if (p->counter[i]) {
            atomic_fetch_add_explicit((_Atomic uint64_t *)&s->counter[i], p->counter[i], memory_order_relaxed);
            p->counter[i] = 0;
        }
    for (int i = 0; i < HAK_NGAUGES; i++) {
        if (p->gauge_in[i]) {
            atomic_fetch_add_explicit((_Atomic uint64_t *)&s->gauge_in[i], p->gauge_in[i], memory_order_relaxed);
            p->gauge_in[i] = 0;
        }
        if (p->gauge_out[i]) {
            atomic_fetch_add_explicit((_Atomic uint64_t *)&s->gauge_out[i], p->gauge_out[i], memory_order_relaxed);
            p->gauge_out[i] = 0;
        }
    }
    /* one writer fewer inside, a new epoch: a reader that copied meanwhile retries */
    atomic_fetch_add_explicit(shared_gen(), HAK_SHM_SHARED_EPOCH - 1, memory_order_release);
}

void hak_stats_signal_tuner(void) {
    atomic_fetch_add_explicit((_Atomic uint64_t *)&hak_seg->tune_signal, 1, memory_order_release);
    /* whoever sleeps on the control block (the in-process tuner) wakes up */
    syscall(SYS_futex, &hak_seg->control.seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

void hak_stats_gauges_now(int64_t *gauge) {
    /* Approximate: this thread's view of the sums is exact at operation
     * boundaries of every other thread. */
    memset(gauge, 0, sizeof(int64_t) * HAK_NGAUGES);
    uint32_t nslots = slots_in_use();
    for (uint32_t i = 0; i < nslots; i++) {
        const hak_shm_slot_t *s = &hak_seg->slots[i];
        for (int k = 0; k < HAK_NGAUGES; k++)
            gauge[k] += (int64_t)(atomic_load_explicit((_Atomic uint64_t *)&s->gauge_in[k], memory_order_relaxed) -
                                  atomic_load_explicit((_Atomic uint64_t *)&s->gauge_out[k], memory_order_relaxed));
    }
}

void hak_stats_note_mapped(void) {
    /* approximate but monotonic high-water mark */
    int64_t g[HAK_NGAUGES];
    hak_stats_gauges_now(g);
    int64_t now = g[HAK_G_bytes_mapped];
    _Atomic uint64_t *peak = (_Atomic uint64_t *)&hak_seg->peak_bytes_mapped;
    uint64_t old = atomic_load_explicit(peak, memory_order_relaxed);
    while (now > 0 && (uint64_t)now > old &&
           !atomic_compare_exchange_weak_explicit(peak, &old, (uint64_t)now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

void hak_stats_sum(uint64_t *counter, int64_t *gauge) {
    memset(counter, 0, sizeof(uint64_t) * HAK_NCOUNTERS);
    uint32_t nslots = slots_in_use();
    for (uint32_t i = 0; i < nslots; i++) {
        const hak_shm_slot_t *s = &hak_seg->slots[i];
        for (int k = 0; k < HAK_NCOUNTERS; k++)
            counter[k] += atomic_load_explicit((_Atomic uint64_t *)&s->counter[k], memory_order_relaxed);
    }
    hak_stats_gauges_now(gauge);
}

void hak_stats_rebase(const hak_shm_t *old, hak_shm_t *s) {
    if (hak_tls.slot != NULL && !hak_tls.shared) hak_tls.slot = &s->slots[hak_tls.slot - old->slots];
}

/* In the child after fork(): only the forking thread exists; fold every other
 * thread's slot into the retired slot so they can be reused. */
void hak_stats_child_fold(void) {
    pthread_mutex_init(&fold_lock, NULL);
    uint32_t nslots = slots_in_use();
    for (uint32_t i = SLOT_FIRST; i < nslots; i++) {
        hak_shm_slot_t *s = &hak_seg->slots[i];
        if (s == hak_tls.slot || s->owner_tid == 0) continue;
        if (s->gen & 1) s->gen++;      /* its thread was mid-operation at fork */
        fold_slot_locked(s);
    }
    if (hak_seg->slots[SLOT_RETIRED].gen & 1) hak_seg->slots[SLOT_RETIRED].gen++;
    /* the overflow slot's writers inside were threads that do not exist here */
    uint64_t *g = &hak_seg->slots[SLOT_SHARED].gen;
    if (*g & HAK_SHM_SHARED_BUSY) *g = (*g & ~HAK_SHM_SHARED_BUSY) + HAK_SHM_SHARED_EPOCH;
    if (hak_tls.slot != NULL && !hak_tls.shared)
        hak_tls.slot->owner_tid = (uint64_t)syscall(SYS_gettid);
}

_Static_assert(offsetof(hak_stats_t, size) == 0 && offsetof(hak_stats_t, version) == 4,
               "hak_stats_t's header is its first 8 bytes, in every version");

int hak_stats_get_sized(hak_stats_t *out, size_t size) {
    if (out == NULL) return -EFAULT;
    if (size != sizeof *out) {
        if (size >= 2 * sizeof(uint32_t)) {
            uint32_t hdr[2] = {(uint32_t)sizeof *out, HAK_STATS_VERSION};
            memcpy(out, hdr, sizeof hdr);
        }
        return -EINVAL;
    }
    hak_stats_get(out);
    return 0;
}

void hak_stats_get(hak_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->size = (uint32_t)sizeof *out;
    out->version = HAK_STATS_VERSION;
    if (!hak_init()) return;
    uint64_t c[HAK_NCOUNTERS];
    int64_t g[HAK_NGAUGES];
    hak_stats_sum(c, g);
    /* every field from the X-macro lists that generate hak_stats_t */
#define X_C(name, help) out->name = c[HAK_C_##name];
#define X_G(name, help) out->name = g[HAK_G_##name] > 0 ? (uint64_t)g[HAK_G_##name] : 0;
    HAK_COUNTERS(X_C)
    HAK_GAUGES(X_G)
#undef X_C
#undef X_G
    out->evictions = c[HAK_C_evict_ring_full] + c[HAK_C_evict_cap_lowered] + c[HAK_C_evict_budget] +
                     c[HAK_C_evict_idle_trim] + c[HAK_C_evict_uncacheable];
    out->peak_bytes_mapped = atomic_load_explicit((_Atomic uint64_t *)&hak_seg->peak_bytes_mapped, memory_order_relaxed);
}
