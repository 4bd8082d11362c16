/*
 * tuner/policy_step.c - tuner_step: the interval between two snapshots of
 * one process in, the rules run in order, knob decisions out (pure).
 *
 *   trim   (policy_trim.c)   idle_ms without large-block activity: one TRIM,
 *                            and every per-class cap back to the global cap.
 *   thp    (policy_thp.c)    each THP state change of a class is a decision.
 *   cap    (policy_cap.c)    ring cap per size class: the whole outstanding
 *                            demand at the first run of ghost misses, within
 *                            the byte budget; slow decay with hold, dead band
 *                            and back-off.
 *   batch  (policy_batch.c)  batch threshold from the measured flush cost.
 *
 * Nothing but the trim and the THP log is decided in an interval without
 * large-block activity.  What the rules share is in policy.c.
 */
#include <stddef.h>
#include <stdint.h>

#include "policy_internal.h"

// ---------------------------------------------------------------------------
// The step
// ---------------------------------------------------------------------------

/* True when cur cannot follow prev (another process, restart, clock). */
static int discontinuous(const hak_snapshot_t *prev, const hak_snapshot_t *cur) {
    static const int mono[] = {HAK_C_large_allocs, HAK_C_large_frees, HAK_C_cache_hits, HAK_C_cache_misses,
                               HAK_C_batch_flushes, HAK_C_batch_flush_ns, HAK_C_batch_add_bytes};
    if (prev->pid != cur->pid || prev->start_ns != cur->start_ns || cur->taken_ns <= prev->taken_ns) return 1;
    for (size_t i = 0; i < sizeof mono / sizeof mono[0]; i++)
        if (cur->counter[mono[i]] < prev->counter[mono[i]]) return 1;
    return 0;
}

/* The global ring cap is the default of the classes without an opinion: the
 * policy only brings it back into the configured bounds. */
static int step_global_cap(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
                           tuner_decision_t *out, int n, int max) {
    const tuner_cfg_t *cfg = &st->cfg;
    uint64_t cap = cur->knobs.ring_cap;
    if (st->posted_cap != NONE32 && (cap == st->posted_cap || ++st->posted_age > POSTED_MAX_AGE))
        st->posted_cap = NONE32;
    if (cap >= cfg->ring_cap_min && cap <= cfg->ring_cap_max) return n;
    uint64_t v = cap < cfg->ring_cap_min ? cfg->ring_cap_min : cfg->ring_cap_max;
    if (v == st->posted_cap) return n;
    uint64_t dh = sub0(cur->counter[HAK_C_cache_hits], prev->counter[HAK_C_cache_hits]);
    uint64_t dm = sub0(cur->counter[HAK_C_cache_misses], prev->counter[HAK_C_cache_misses]);
    uint64_t dw = sub0(tuner_warm(cur), tuner_warm(prev));
    double rate = dh + dm ? (double)min64(dh + dw, dh + dm) / (double)(dh + dm) : 0.0;
    n = tuner_emit(out, n, max, HAK_KNOB_RING_CAP, NONE32, cap, v, TUNER_R_BOUNDS, NONE32, rate, rate);
    st->posted_cap = (uint32_t)v;
    st->posted_age = 0;
    return n;
}

int tuner_step(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur, tuner_decision_t *out,
               int max) {
    if (max > (int)TUNER_MAX_DECISIONS) max = (int)TUNER_MAX_DECISIONS;
    if (max < 0) max = 0;
    if (st->pid != cur->pid) {
        tuner_state_reset(st);
        st->pid = cur->pid;
        prev = NULL;
    }
    if (prev == NULL || discontinuous(prev, cur)) {
        st->last_activity = tuner_activity(cur);
        st->activity_ns = cur->taken_ns;
        st->trimmed = 0;
        tuner_policy_thp_baseline(st, cur);
        tuner_policy_cap_baseline(st, cur);
        return 0;
    }
    st->steps++;
    int n = 0;
    n = tuner_policy_trim(st, prev, cur, out, n, max);
    n = tuner_policy_thp(st, prev, cur, out, n, max);
    if (tuner_activity(cur) == tuner_activity(prev)) {
        /* no traffic: nothing to learn; inactive classes age */
        for (uint32_t c = 0; c < HAK_SHM_CLASSES; c++)
            if (st->cls[c].since_active != NONE32) st->cls[c].since_active++;
        return n;
    }
    n = step_global_cap(st, prev, cur, out, n, max);
    n = tuner_policy_cap(st, prev, cur, out, n, max);
    n = tuner_policy_batch(st, prev, cur, out, n, max);
    return n;
}
