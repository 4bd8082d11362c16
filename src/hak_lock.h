/*
 * hak_lock.h - the per-class rings' spinlock.
 */
#ifndef HAK_LOCK_H
#define HAK_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>

#include "hak_base.h"

/* A small spinlock for the per-class rings: their critical sections are a
 * few loads and stores, shorter than a futex mutex's own bookkeeping.  It
 * spins briefly, then yields, so a preempted holder on a 2-core machine costs
 * a time slice at worst, never a livelock. */
typedef struct hak_lock { _Atomic int v; } hak_lock_t;
void hak_lock_slow(hak_lock_t *l) HAK_HIDDEN;
static inline void hak_lock(hak_lock_t *l) {
    if (likely(!atomic_exchange_explicit(&l->v, 1, memory_order_acquire))) return;
    hak_lock_slow(l);
}
/* True if taken; never waits (callers that may skip their work when busy). */
static inline bool hak_trylock(hak_lock_t *l) { return !atomic_exchange_explicit(&l->v, 1, memory_order_acquire); }
static inline void hak_unlock(hak_lock_t *l) { atomic_store_explicit(&l->v, 0, memory_order_release); }
static inline void hak_lock_init(hak_lock_t *l) { atomic_store_explicit(&l->v, 0, memory_order_relaxed); }

#endif
