/*
 * tuner/policy_grade.c - grading: was each decision's prediction right?
 *
 * tuner_note_decision remembers a decision with the counters at the time;
 * after grade_intervals intervals tuner_grade_pending compares the figure it
 * predicted with the same figure measured since:
 *
 *   RING_CAP         cache hit rate, warm reuse counted as a hit (>= 16
 *                    accesses); confirmed if observed >= predicted - 0.05
 *   CLASS_CAP        the class's own ring hit rate (>= 16 accesses of the
 *                    class), same tolerance
 *   BATCH_THRESHOLD  flush ns per MiB released (>= 1 MiB flushed);
 *                    confirmed if observed <= 1.25 x predicted + 0.1 us/MiB
 *                    (tuner_grade_flush: 25% relative tolerance and a floor
 *                    for timer noise; 2.5 x the prediction is refuted)
 *   TRIM             bytes cached + pending: <= 10% of what was held (or,
 *                    if activity resumed, a trim ran)
 *   CLASS_THP        the class's touched fraction once more blocks were
 *                    sampled: confirmed if it is still on the side of 50%
 *                    the state chose (HUGE: >= 50%)
 *   THP_COST         the fault-cost ratio once more faults were timed:
 *                    confirmed if it is still on the side of 1.5 the flip
 *                    chose (refused: above)
 * A decision with nothing to judge by within 8 windows is inconclusive.
 * Batch grades feed back into the policy: a refuted flush_cost raise halves
 * flush_alpha (the share of the flush cost a bigger batch is believed to
 * save), a confirmed one regains 25%.
 */
#include <stdint.h>
#include <string.h>

#include "policy_internal.h"

#define GRADE_MIN_ACCESSES 16u        /* accesses needed to grade a cap decision */
#define GRADE_EXPIRE      8u          /* grade windows before "inconclusive" */
#define HIT_TOLERANCE     0.05        /* confirmed if observed >= predicted - this */
#define FLUSH_TOLERANCE   0.25        /* confirmed if observed <= predicted x (1 + this) + FLUSH_NOISE_NS */
#define FLUSH_NOISE_NS    100.0       /* ns per MiB: clock and scheduling noise of the flush timing */

int tuner_grade_flush(double predicted, double observed) {
    if (!(predicted >= 0.0) || !(observed >= 0.0)) return TUNER_GRADE_INCONCLUSIVE;
    return observed <= predicted * (1.0 + FLUSH_TOLERANCE) + FLUSH_NOISE_NS ? TUNER_GRADE_CONFIRMED : TUNER_GRADE_REFUTED;
}

void tuner_note_decision(tuner_state_t *st, const tuner_decision_t *d, uint64_t seq, const hak_snapshot_t *at) {
    tuner_pending_t *slot = NULL;
    for (uint32_t i = 0; i < TUNER_PENDING_MAX; i++) {
        tuner_pending_t *p = &st->pending[i];
        if (p->seq == 0) {
            slot = p;
            break;
        }
        if (slot == NULL || p->seq < slot->seq) slot = p;   /* full: replace the oldest */
    }
    if (slot->seq == 0) st->npending++;
    memset(slot, 0, sizeof *slot);
    slot->seq = seq ? seq : 1;
    slot->knob = d->knob;
    slot->reason = d->reason;
    slot->predicted = d->predicted;
    slot->at_ns = at->taken_ns;
    slot->old_value = d->old_value;
    slot->new_value = d->new_value;
    slot->hits = at->counter[HAK_C_cache_hits];
    slot->misses = at->counter[HAK_C_cache_misses];
    slot->warm = tuner_warm(at);
    slot->size_class = d->size_class;
    if (d->size_class < HAK_SHM_CLASSES && d->size_class < at->nclasses) {
        const hak_shm_class_t *c = &at->classes[d->size_class];
        slot->class_hits = c->hits;
        slot->class_misses = c->misses;
        slot->thp_samples = HAK_CTHP_SAMPLES(c->thp);
    }
    slot->flush_ns = at->counter[HAK_C_batch_flush_ns];
    slot->activity = tuner_activity(at);
    slot->trims = at->counter[HAK_C_trims] + at->counter[HAK_C_evict_idle_trim];
    slot->bytes_flushed = at->counter[HAK_C_batch_bytes_flushed];
    slot->fault_probes = at->counter[HAK_C_thp_fault_probes];
}

/* Grade one pending decision; 0 = not yet. */
static int grade_one(const tuner_pending_t *p, const hak_snapshot_t *cur, uint64_t window_ns, tuner_grade_t *g) {
    uint64_t age = cur->taken_ns > p->at_ns ? cur->taken_ns - p->at_ns : 0;
    if (age < window_ns) return 0;
    int expired = age >= GRADE_EXPIRE * window_ns;
    g->decision_seq = p->seq;
    g->observed = __builtin_nan("");
    switch (p->knob) {
    case HAK_KNOB_RING_CAP: {
        uint64_t dh = sub0(cur->counter[HAK_C_cache_hits], p->hits);
        uint64_t dm = sub0(cur->counter[HAK_C_cache_misses], p->misses);
        uint64_t dw = min64(sub0(tuner_warm(cur), p->warm), dm);
        if (dh + dm < GRADE_MIN_ACCESSES) {
            if (!expired) return 0;
            g->grade = TUNER_GRADE_INCONCLUSIVE;
            return 1;
        }
        g->observed = (double)(dh + dw) / (double)(dh + dm);
        g->grade = g->observed >= p->predicted - HIT_TOLERANCE ? TUNER_GRADE_CONFIRMED : TUNER_GRADE_REFUTED;
        return 1;
    }
    case HAK_KNOB_CLASS_CAP: {
        if (p->size_class >= cur->nclasses || p->size_class >= HAK_SHM_CLASSES) {
            g->grade = TUNER_GRADE_INCONCLUSIVE;
            return 1;
        }
        const hak_shm_class_t *c = &cur->classes[p->size_class];
        uint64_t dh = sub0(c->hits, p->class_hits), dm = sub0(c->misses, p->class_misses);
        if (dh + dm < GRADE_MIN_ACCESSES) {
            if (!expired) return 0;
            g->grade = TUNER_GRADE_INCONCLUSIVE;
            return 1;
        }
        g->observed = (double)dh / (double)(dh + dm);
        g->grade = g->observed >= p->predicted - HIT_TOLERANCE ? TUNER_GRADE_CONFIRMED : TUNER_GRADE_REFUTED;
        return 1;
    }
    case HAK_KNOB_CLASS_THP: {
        if (p->size_class >= cur->nclasses || p->size_class >= HAK_SHM_CLASSES) {
            g->grade = TUNER_GRADE_INCONCLUSIVE;
            return 1;
        }
        uint64_t v = cur->classes[p->size_class].thp;
        if (HAK_CTHP_SAMPLES(v) <= p->thp_samples && HAK_CTHP_SAMPLES(v) < 255) {
            if (!expired) return 0;
            g->grade = TUNER_GRADE_INCONCLUSIVE;
            return 1;
        }
        g->observed = HAK_CTHP_PERMILLE(v) > 1000 ? 1.0 : HAK_CTHP_PERMILLE(v) / 1000.0;
        int huge = p->new_value == HAK_CTHP_HUGE;
        g->grade = (g->observed >= 0.5) == huge ? TUNER_GRADE_CONFIRMED : TUNER_GRADE_REFUTED;
        return 1;
    }
    case HAK_KNOB_THP_COST: {
        double r = tuner_thp_cost_ratio(cur);
        if (cur->counter[HAK_C_thp_fault_probes] <= p->fault_probes || r <= 0.0) {
            if (!expired) return 0;
            g->grade = TUNER_GRADE_INCONCLUSIVE;
            return 1;
        }
        g->observed = r;
        g->grade = (r * 100.0 > HAK_THP_FAULT_SLACK_PCT) == (p->new_value != 0) ? TUNER_GRADE_CONFIRMED
                                                                                 : TUNER_GRADE_REFUTED;
        return 1;
    }
    case HAK_KNOB_BATCH_THRESHOLD: {
        uint64_t bytes = sub0(cur->counter[HAK_C_batch_bytes_flushed], p->bytes_flushed);
        if (bytes < ((uint64_t)1 << 20)) {
            if (!expired) return 0;
            g->grade = TUNER_GRADE_INCONCLUSIVE;
            return 1;
        }
        g->observed = (double)sub0(cur->counter[HAK_C_batch_flush_ns], p->flush_ns) / ((double)bytes / 1048576.0);
        g->grade = tuner_grade_flush(p->predicted, g->observed);
        return 1;
    }
    case HAK_KNOB_TRIM: {
        uint64_t held = gauge0(cur, HAK_G_bytes_cached) + gauge0(cur, HAK_G_bytes_pending);
        uint64_t trims = cur->counter[HAK_C_trims] + cur->counter[HAK_C_evict_idle_trim];
        g->observed = (double)held;
        if (tuner_activity(cur) == p->activity)
            g->grade = held <= p->old_value / 10 ? TUNER_GRADE_CONFIRMED : TUNER_GRADE_REFUTED;
        else   /* activity resumed and may have refilled the rings: did the trim run? */
            g->grade = trims > p->trims ? TUNER_GRADE_CONFIRMED : TUNER_GRADE_REFUTED;
        return 1;
    }
    default:
        g->grade = TUNER_GRADE_INCONCLUSIVE;
        return 1;
    }
}

int tuner_grade_pending(tuner_state_t *st, const hak_snapshot_t *cur, tuner_grade_t *out, int max) {
    int n = 0;
    if (st->npending == 0 || cur->pid != st->pid) return 0;
    uint64_t window_ns = (uint64_t)st->cfg.grade_intervals * tuner_interval_ms_of(st, cur) * 1000000ull;
    while (n < max) {
        /* oldest first, so grades come out in decision order */
        tuner_pending_t *best = NULL;
        tuner_grade_t g;
        for (uint32_t i = 0; i < TUNER_PENDING_MAX; i++) {
            tuner_pending_t *p = &st->pending[i];
            if (p->seq == 0 || (best && p->seq > best->seq)) continue;
            tuner_grade_t tmp;
            if (grade_one(p, cur, window_ns, &tmp)) best = p, g = tmp;
        }
        if (best == NULL) break;
        /* learn from batch grades: did a bigger batch save what we thought? */
        if (best->knob == HAK_KNOB_BATCH_THRESHOLD && g.grade != TUNER_GRADE_INCONCLUSIVE) {
            if (best->reason == TUNER_R_FLUSH_COST)
                st->flush_alpha = g.grade == TUNER_GRADE_REFUTED ? max_d(st->flush_alpha * 0.5, 1.0 / 64)
                                                                 : (st->flush_alpha * 1.25 > 1.0 ? 1.0 : st->flush_alpha * 1.25);
            else if (g.grade == TUNER_GRADE_REFUTED && best->new_value < best->old_value)
                st->flush_alpha = st->flush_alpha * 2 > 1.0 ? 1.0 : st->flush_alpha * 2;
        }
        out[n++] = g;
        best->seq = 0;
        st->npending--;
    }
    return n;
}
