/*
 * tuner/shmlog.c - the decision log ring of a telemetry segment (writer side).
 * See shmlog.h for the protocol.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "shmlog.h"

#define ST64(p, v) atomic_store_explicit((_Atomic uint64_t *)(p), (v), memory_order_relaxed)

uint64_t tuner_shm_log_decision(hak_shm_t *shm, const tuner_decision_t *d, uint64_t time_ns) {
    uint64_t n = atomic_load_explicit((_Atomic uint64_t *)&shm->decision_head, memory_order_relaxed) + 1;
    hak_shm_decision_t *e = &shm->decisions[(n - 1) % HAK_SHM_DECISIONS];
    ST64(&e->seq, 0);
    atomic_thread_fence(memory_order_release);
    ST64(&e->time_ns, time_ns);
    e->knob = d->knob;
    e->size_class = d->size_class;
    ST64(&e->old_value, d->old_value);
    ST64(&e->new_value, d->new_value);
    e->reason = d->reason;
    e->pad0_ = 0;
    e->predicted = d->predicted;
    ST64(&e->grade, 0);
    atomic_store_explicit((_Atomic uint64_t *)&e->seq, n, memory_order_release);
    atomic_store_explicit((_Atomic uint64_t *)&shm->decision_head, n, memory_order_release);
    return n;
}

void tuner_shm_log_grade(hak_shm_t *shm, const tuner_grade_t *g) {
    uint64_t n = g->decision_seq;
    if (n == 0) return;
    hak_shm_decision_t *e = &shm->decisions[(n - 1) % HAK_SHM_DECISIONS];
    if (atomic_load_explicit((_Atomic uint64_t *)&e->seq, memory_order_acquire) != n) return;   /* overwritten */
    atomic_store_explicit((_Atomic uint64_t *)&e->grade, (uint64_t)g->grade, memory_order_release);
}
