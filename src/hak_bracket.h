/*
 * hak_bracket.h - the operation bracket and the counters inside it (stats.c implements
 * the slow parts): every allocator operation runs between hak_op_begin and
 * hak_op_end, and counts into its thread's slot of the telemetry segment.
 */
#ifndef HAK_BRACKET_H
#define HAK_BRACKET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hak_types.h"
#include "hakmem/shm.h"

extern hak_shm_t *hak_seg HAK_HIDDEN;          /* shm segment or private fallback */
HAK_HIDDEN void hak_stats_claim_slot(void);
/* An operation begins on a thread without a slot of its own: claim one, or
 * enter the overflow slot. */
HAK_HIDDEN void hak_stats_enter_slow(void);
/* A thread without a slot of its own enters / leaves an operation on the
 * overflow slot (no lock: an atomic count of writers inside; leaving adds the
 * operation's counts into slot 1). */
HAK_HIDDEN void hak_stats_shared_enter(void);
HAK_HIDDEN void hak_stats_shared_exit(void);

/* Operation bracket: the slot's generation is odd inside. Nested brackets are free. */
/* fork() quiesces the allocator (stats.c): while hak_fork_gate is set, no
 * operation may begin.  An operation makes its slot odd, then looks at the
 * gate; fork sets the gate, then looks at every slot.  The barrier between
 * the two is paid by fork (membarrier) when the kernel offers it, so the
 * operation itself needs only a compiler barrier. */
extern _Atomic int hak_fork_gate HAK_HIDDEN;
extern bool hak_membarrier_ok HAK_HIDDEN;
HAK_HIDDEN void hak_op_wait_gate(void);
static inline void hak_op_begin(void) {
    hak_tls_t *t = &hak_tls;
    if (t->depth++ == 0) {
        if (unlikely(!t->own)) hak_stats_enter_slow();
        uint64_t g = atomic_load_explicit((_Atomic uint64_t *)&t->slot->gen, memory_order_relaxed);
        atomic_store_explicit((_Atomic uint64_t *)&t->slot->gen, g + 1, memory_order_relaxed);
        if (likely(hak_membarrier_ok)) atomic_signal_fence(memory_order_seq_cst);
        else atomic_thread_fence(memory_order_seq_cst);
        /* acquire (a plain load on x86): what a quiescer did before it
         * lowered the gate happens before this operation */
        if (unlikely(atomic_load_explicit(&hak_fork_gate, memory_order_acquire))) hak_op_wait_gate();
        atomic_thread_fence(memory_order_release);
    }
}
static inline void hak_op_end(void) {
    hak_tls_t *t = &hak_tls;
    if (--t->depth == 0) {
        uint64_t g = atomic_load_explicit((_Atomic uint64_t *)&t->slot->gen, memory_order_relaxed);
        atomic_store_explicit((_Atomic uint64_t *)&t->slot->gen, g + 1, memory_order_release);
        if (unlikely(!t->own)) hak_stats_shared_exit();
    }
}
/* Counter updates: only inside a bracket, single writer per slot. */
static inline void hak_cnt_add(int id, uint64_t n) {
    _Atomic uint64_t *c = (_Atomic uint64_t *)&hak_tls.slot->counter[id];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}
/* Gauges: each slot keeps the sum of its increments and of its decrements. */
static inline void hak_gauge_up(int id, uint64_t m) {
    _Atomic uint64_t *c = (_Atomic uint64_t *)&hak_tls.slot->gauge_in[id];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + m, memory_order_relaxed);
}
static inline void hak_gauge_down(int id, uint64_t m) {
    _Atomic uint64_t *c = (_Atomic uint64_t *)&hak_tls.slot->gauge_out[id];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + m, memory_order_relaxed);
}
/* A delta of either sign (HAK_GAUGE_UP/DOWN when the sign is known: no branch). */
static inline void hak_gauge_add(int id, int64_t d) {
    if (d >= 0) hak_gauge_up(id, (uint64_t)d);
    else hak_gauge_down(id, (uint64_t)-d);
}
#define HAK_CNT(name)        hak_cnt_add(HAK_C_##name, 1)
#define HAK_CNT_ADD(name, n) hak_cnt_add(HAK_C_##name, (n))
#define HAK_GAUGE(name, d)   hak_gauge_add(HAK_G_##name, (d))
#define HAK_GAUGE_UP(name, m)   hak_gauge_up(HAK_G_##name, (m))
#define HAK_GAUGE_DOWN(name, m) hak_gauge_down(HAK_G_##name, (m))

#endif
