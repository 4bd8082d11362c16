/*
 * tuner/policy_thp.c - the THP rule: huge pages per size class by what the
 * program touches (DESIGN.md item 13).
 *
 * The library samples, at free, how much of a block of a class >= 2 MiB the
 * program touched, and moves the class from UNDECIDED to HUGE or SMALL
 * (hak_shm_class_t.thp: state, samples, touched permille).  This rule:
 *   - logs every change of a class's state it sees between two snapshots as
 *     a CLASS_THP decision (reason thp_touch, flag TUNER_D_OBSERVED: the
 *     library already applied it), predicted = the touched fraction;
 *   - decides itself a class still UNDECIDED once 4 blocks were sampled:
 *     HUGE when the program touched at least half of the pages, else SMALL.
 * A state the policy decided is not logged again when it shows up.
 *
 * The fault-cost rule (thp.c, HAKMEM_THP_FAULT_COST) is the library's own: each
 * change of knobs.thp_by_cost is logged as a THP_COST decision (reason
 * fault_cost, TUNER_D_OBSERVED), old/new = refused before/after, predicted =
 * the cost ratio that led to it (a huge-page fault / 512 small ones).
 */
#include <stdint.h>

#include "policy_internal.h"

#define THP_MIN_SAMPLES   4u
#define THP_HUGE_PERMILLE 500u

double tuner_thp_cost_ratio(const hak_snapshot_t *s) {
    if (s->knobs.thp_huge_fault_ns == 0 || s->knobs.thp_small_fault_ns == 0) return 0.0;
    return (double)s->knobs.thp_huge_fault_ns / (double)s->knobs.thp_small_fault_ns;
}

void tuner_policy_thp_baseline(tuner_state_t *st, const hak_snapshot_t *cur) {
    uint32_t ncls = cur->nclasses > HAK_SHM_CLASSES ? HAK_SHM_CLASSES : cur->nclasses;
    for (uint32_t c = 0; c < ncls; c++) {
        st->cls[c].thp_seen = HAK_CTHP_STATE(cur->classes[c].thp);
        st->cls[c].thp_posted = 0;
    }
    st->thp_cost_seen = cur->knobs.thp_by_cost != 0;
}

int tuner_policy_thp(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
                     tuner_decision_t *out, int n, int max) {
    uint32_t refused = cur->knobs.thp_by_cost != 0;
    if (refused != st->thp_cost_seen && n < max) {
        double r = tuner_thp_cost_ratio(cur);
        n = tuner_emit(out, n, max, HAK_KNOB_THP_COST, UINT32_MAX, st->thp_cost_seen, refused, TUNER_R_FAULT_COST,
                       UINT32_MAX, r, tuner_thp_cost_ratio(prev));
        out[n - 1].flags |= TUNER_D_OBSERVED;
        st->thp_cost_seen = refused;
    }
    uint32_t ncls = tuner_nclasses(prev, cur);
    for (uint32_t c = 0; c < ncls && n < max; c++) {
        tuner_class_state_t *cs = &st->cls[c];
        uint64_t v = cur->classes[c].thp;
        uint32_t state = HAK_CTHP_STATE(v), samples = HAK_CTHP_SAMPLES(v), permille = HAK_CTHP_PERMILLE(v);
        double touched = permille > 1000 ? 1.0 : permille / 1000.0;
        if (cs->thp_posted && (state == cs->thp_posted || ++cs->thp_posted_age > POSTED_MAX_AGE)) {
            if (state == cs->thp_posted) cs->thp_seen = state;   /* ours: logged when decided */
            cs->thp_posted = 0;
        }
        if (state != cs->thp_seen) {
            if (state != HAK_CTHP_NA) {
                n = tuner_emit(out, n, max, HAK_KNOB_CLASS_THP, c, cs->thp_seen, state, TUNER_R_THP_TOUCH, c, touched,
                               touched);
                out[n - 1].flags |= TUNER_D_OBSERVED;
            }
            cs->thp_seen = state;
            continue;
        }
        if (state == HAK_CTHP_UNDECIDED && samples >= THP_MIN_SAMPLES && cs->thp_posted == 0) {
            uint32_t choice = permille >= THP_HUGE_PERMILLE ? HAK_CTHP_HUGE : HAK_CTHP_SMALL;
            n = tuner_emit(out, n, max, HAK_KNOB_CLASS_THP, c, state, choice, TUNER_R_THP_TOUCH, c, touched, touched);
            cs->thp_posted = choice;
            cs->thp_posted_age = 0;
        }
    }
    return n;
}
