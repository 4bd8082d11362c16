/*
 * tuner/policy_internal.h - what the policy's rule files share (not for
 * callers of the policy: they use policy.h).
 *
 * Each rule is one file with one entry point, called by tuner_step
 * (policy_step.c) in this order:
 *   tuner_policy_trim   (policy_trim.c)   idle: TRIM, and class caps back to the global cap
 *   tuner_policy_thp    (policy_thp.c)    THP state per class: log the library's, decide the undecided
 *   tuner_policy_cap    (policy_cap.c)    ring cap per class: demand, decay, budget
 *   tuner_policy_batch  (policy_batch.c)  batch threshold from the flush cost
 * Grading (policy_grade.c) is called by the caller, not by tuner_step.
 * Each entry point appends decisions to out[n..max) and returns the new n.
 */
#ifndef HAKMEM_TUNER_POLICY_INTERNAL_H
#define HAKMEM_TUNER_POLICY_INTERNAL_H

#include <stdint.h>

#include "policy.h"

#define NONE32            UINT32_MAX
#define CAP_HARD_MAX      512u        /* HAK_RING_CAP_MAX of the library */
#define BATCH_HARD_MIN    ((uint64_t)64 << 10)
#define BATCH_HARD_MAX    ((uint64_t)1 << 30)
#define HOLD_MAX_FACTOR   256u        /* back-off limit: hold <= 256 x decay_hold */
#define POSTED_MAX_AGE    8u          /* steps a posted value may take to show before it is forgotten */

static inline uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
static inline uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static inline double max_d(double a, double b) { return a > b ? a : b; }
static inline uint64_t gauge0(const hak_snapshot_t *s, int g) { return s->gauge[g] > 0 ? (uint64_t)s->gauge[g] : 0; }

/* Large-block activity: large_allocs + large_frees. */
static inline uint64_t tuner_activity(const hak_snapshot_t *s) {
    return s->counter[HAK_C_large_allocs] + s->counter[HAK_C_large_frees];
}

/* Misses served from warm memory all the same (a nearby class, a reshaped
 * block, a block taken back from Batch). */
static inline uint64_t tuner_warm(const hak_snapshot_t *s) {
    return s->counter[HAK_C_warm_near] + s->counter[HAK_C_warm_reshaped] + s->counter[HAK_C_warm_rescued];
}

/* Size classes both snapshots describe. */
static inline uint32_t tuner_nclasses(const hak_snapshot_t *prev, const hak_snapshot_t *cur) {
    uint32_t n = cur->nclasses < prev->nclasses ? cur->nclasses : prev->nclasses;
    return n > HAK_SHM_CLASSES ? HAK_SHM_CLASSES : n;
}

/* The budget, idle time and interval in force for snapshot s (policy.c). */
uint64_t tuner_budget_of(const tuner_state_t *st, const hak_snapshot_t *s);
uint64_t tuner_idle_ms_of(const tuner_state_t *st, const hak_snapshot_t *s);
uint64_t tuner_interval_ms_of(const tuner_state_t *st, const hak_snapshot_t *s);

/* Append one decision to out[n] if n < max; returns the new n (policy.c). */
int tuner_emit(tuner_decision_t *out, int n, int max, uint32_t knob, uint32_t size_class, uint64_t oldv,
               uint64_t newv, uint32_t reason, uint32_t driver, double predicted, double before);

/* Forget what the policy learnt about class c (its cap follows the global one again). */
void tuner_class_forget(tuner_state_t *st, uint32_t c);
/* Forget everything but the configuration: a new process, or the first step (policy.c). */
void tuner_state_reset(tuner_state_t *st);

/* The rules (see the top of this file). */
int tuner_policy_trim(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
                      tuner_decision_t *out, int n, int max);
int tuner_policy_thp(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
                     tuner_decision_t *out, int n, int max);
int tuner_policy_cap(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
                     tuner_decision_t *out, int n, int max);
int tuner_policy_batch(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
                       tuner_decision_t *out, int n, int max);

/* Baselines of the rules that compare a snapshot with what they saw before
 * (THP states, ghost floors), taken when there is no usable prev. */
void tuner_policy_thp_baseline(tuner_state_t *st, const hak_snapshot_t *cur);
/* A huge-page fault's cost / 512 faults of 4 KiB pages' in s's knobs (0 = not measured). */
double tuner_thp_cost_ratio(const hak_snapshot_t *s);
void tuner_policy_cap_baseline(tuner_state_t *st, const hak_snapshot_t *cur);

#endif /* HAKMEM_TUNER_POLICY_INTERNAL_H */
