/*
 * tuner/policy_trim.c - the idle rule: give memory back when the program
 * stops using large blocks.
 *
 * When large_allocs + large_frees has not changed for idle_ms (the process's
 * HAKMEM_IDLE_MS unless configured), once per idle period:
 *   - one TRIM (reason idle) if anything is cached or pending: every cached
 *     block goes to Batch and Batch is flushed;
 *   - every class with a per-class cap gets it back to the global cap
 *     (CLASS_CAP -> HAK_CLASS_CAP_GLOBAL, reason idle), and the policy
 *     forgets what it learnt about the class: when the program comes back,
 *     its first repetition raises the caps again.
 * Activity re-arms the rule.
 */
#include <stdint.h>

#include "policy_internal.h"

int tuner_policy_trim(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
                      tuner_decision_t *out, int n, int max) {
    uint64_t act = tuner_activity(cur);
    if (act != st->last_activity) {
        st->last_activity = act;
        st->activity_ns = cur->taken_ns;
        st->trimmed = 0;
    }
    if (st->trimmed || cur->taken_ns - st->activity_ns < tuner_idle_ms_of(st, cur) * 1000000ull) return n;
    st->trimmed = 1;
    uint64_t held = gauge0(cur, HAK_G_bytes_cached) + gauge0(cur, HAK_G_bytes_pending);
    if (held > 0) n = tuner_emit(out, n, max, HAK_KNOB_TRIM, NONE32, held, 0, TUNER_R_IDLE, NONE32, 0.0, (double)held);
    uint32_t ncls = tuner_nclasses(prev, cur);
    for (uint32_t c = 0; c < ncls; c++) {
        const hak_shm_class_t *cc = &cur->classes[c];
        tuner_class_state_t *cs = &st->cls[c];
        int own = cc->class_cap != HAK_CLASS_CAP_GLOBAL || (cs->has_posted && cs->posted != HAK_CLASS_CAP_GLOBAL);
        if (own && n < max) {
            uint64_t acc = cc->hits + cc->misses;
            double life = acc ? (double)cc->hits / (double)acc : 0.0;
            /* an emptied ring serves nothing until the program refills it */
            n = tuner_emit(out, n, max, HAK_KNOB_CLASS_CAP, c, cc->cap, HAK_CLASS_CAP_GLOBAL, TUNER_R_IDLE, c, 0.0,
                           life);
        }
        if (own && n >= max) continue;   /* no room: try again next idle period */
        tuner_class_forget(st, c);
        if (own) {
            cs->has_posted = 1;
            cs->posted = HAK_CLASS_CAP_GLOBAL;
        }
    }
    return n;
}
