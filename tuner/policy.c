/*
 * tuner/policy.c - what the policy's rules share (pure): the configuration,
 * the state and its resets, the knob / reason / grade names, the knobs in
 * force for a snapshot, and tuner_emit.
 *
 * tuner_step (policy_step.c) runs the rules, each in its own file
 * (policy_internal.h lists them); they stand on this file, and this file
 * calls none of them.  Grading is in policy_grade.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy_internal.h"

const char *tuner_reason_name(uint32_t reason) {
    static const char *const names[TUNER_NREASONS] = {
        [TUNER_R_NONE] = "none",
        [TUNER_R_GHOST_DEMAND] = "ghost_demand",
        [TUNER_R_DECAY] = "decay",
        [TUNER_R_BUDGET] = "budget",
        [TUNER_R_FLUSH_COST] = "flush_cost",
        [TUNER_R_FLUSH_CHEAP] = "flush_cheap",
        [TUNER_R_PENDING_HELD] = "pending_held",
        [TUNER_R_IDLE] = "idle",
        [TUNER_R_BOUNDS] = "bounds",
        [TUNER_R_THP_TOUCH] = "thp_touch",
        [TUNER_R_OPENING] = "opening",
        [TUNER_R_FAULT_COST] = "fault_cost",
    };
    return reason < TUNER_NREASONS ? names[reason] : "unknown";
}

const char *tuner_knob_name(uint32_t knob) {
    switch (knob) {
    case HAK_KNOB_RING_CAP: return "ring_cap";
    case HAK_KNOB_BATCH_THRESHOLD: return "batch_threshold";
    case HAK_KNOB_CLASS_CAP: return "class_cap";
    case HAK_KNOB_TRIM: return "trim";
    case HAK_KNOB_CLASS_THP: return "class_thp";
    case HAK_KNOB_THP_COST: return "thp_cost";
    default: return "unknown";
    }
}

const char *tuner_grade_name(int grade) {
    switch (grade) {
    case TUNER_GRADE_NONE: return "ungraded";
    case TUNER_GRADE_CONFIRMED: return "confirmed";
    case TUNER_GRADE_REFUTED: return "refuted";
    case TUNER_GRADE_INCONCLUSIVE: return "inconclusive";
    default: return "unknown";
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

void tuner_cfg_default(tuner_cfg_t *cfg, const hak_snapshot_t *s) {
    memset(cfg, 0, sizeof *cfg);
    cfg->cache_max_bytes = s ? s->knobs.cache_max_bytes : (uint64_t)1 << 30;
    cfg->ring_cap_min = 1;
    cfg->ring_cap_max = CAP_HARD_MAX;
    cfg->batch_min = BATCH_HARD_MIN;
    cfg->batch_max = BATCH_HARD_MAX;
    cfg->idle_ms = s && s->knobs.idle_ms ? s->knobs.idle_ms : 1000;
    cfg->interval_ms = s && s->knobs.tune_interval_ms ? s->knobs.tune_interval_ms : 250;
    cfg->hit_target = 1.0;
    cfg->flush_target = 0.005;
    cfg->decay_hold = 8;
    cfg->grade_intervals = 4;
}

/* Fill the 0 fields of c with defaults and make the bounds consistent.
 * cache_max_bytes, idle_ms and interval_ms stay 0 = "the process's knob". */
static void cfg_fix(tuner_cfg_t *c) {
    if (c->ring_cap_max == 0 && c->ring_cap_min == 0) c->ring_cap_max = CAP_HARD_MAX, c->ring_cap_min = 1;
    if (c->ring_cap_max > CAP_HARD_MAX) c->ring_cap_max = CAP_HARD_MAX;
    if (c->ring_cap_min > c->ring_cap_max) c->ring_cap_min = c->ring_cap_max;
    if (c->batch_min < BATCH_HARD_MIN) c->batch_min = BATCH_HARD_MIN;
    if (c->batch_max == 0 || c->batch_max > BATCH_HARD_MAX) c->batch_max = BATCH_HARD_MAX;
    if (c->batch_min > c->batch_max) c->batch_min = c->batch_max;
    if (!(c->hit_target > 0.0 && c->hit_target <= 1.0)) c->hit_target = 1.0;
    if (!(c->flush_target > 0.0 && c->flush_target < 1.0)) c->flush_target = 0.005;
    if (c->decay_hold == 0) c->decay_hold = 8;
    if (c->grade_intervals == 0) c->grade_intervals = 4;
}

static void class_reset(tuner_class_state_t *cs, uint32_t hold) {
    memset(cs, 0, sizeof *cs);
    cs->hold = hold;
    cs->since_decay = NONE32;
    cs->since_active = NONE32;
    cs->since_raise = NONE32;
    for (int e = 0; e < 2; e++) cs->lo[e] = NONE32, cs->ghost_lo[e] = NONE32;
}

void tuner_class_forget(tuner_state_t *st, uint32_t c) {
    tuner_class_state_t *cs = &st->cls[c];
    /* what describes the class, not the policy's opinion, survives */
    tuner_class_state_t keep = *cs;
    class_reset(cs, st->cfg.decay_hold);
    cs->since_active = keep.since_active;
    cs->thp_seen = keep.thp_seen, cs->thp_posted = keep.thp_posted, cs->thp_posted_age = keep.thp_posted_age;
    cs->ghost_lo[0] = keep.ghost_lo[0], cs->ghost_lo[1] = keep.ghost_lo[1];
    cs->rate = keep.rate;
}

void tuner_state_reset(tuner_state_t *st) {
    tuner_cfg_t cfg = st->cfg;
    memset(st, 0, sizeof *st);
    st->cfg = cfg;
    st->posted_cap = NONE32;
    st->flush_alpha = 1.0;
    st->batch_hold = cfg.decay_hold;
    st->batch_since_lower = NONE32;
    st->batch_since_raise = NONE32;
    for (uint32_t c = 0; c < HAK_SHM_CLASSES; c++) class_reset(&st->cls[c], cfg.decay_hold);
}

void tuner_init(tuner_state_t *st, const tuner_cfg_t *cfg) {
    memset(st, 0, sizeof *st);
    if (cfg) st->cfg = *cfg;
    cfg_fix(&st->cfg);
    tuner_state_reset(st);
}

uint64_t tuner_budget_of(const tuner_state_t *st, const hak_snapshot_t *s) {
    /* the library enforces its own budget: never plan beyond it */
    return st->cfg.cache_max_bytes ? min64(st->cfg.cache_max_bytes, s->knobs.cache_max_bytes) : s->knobs.cache_max_bytes;
}
uint64_t tuner_idle_ms_of(const tuner_state_t *st, const hak_snapshot_t *s) {
    if (st->cfg.idle_ms) return st->cfg.idle_ms;
    return s->knobs.idle_ms ? s->knobs.idle_ms : 1000;
}
uint64_t tuner_interval_ms_of(const tuner_state_t *st, const hak_snapshot_t *s) {
    if (st->cfg.interval_ms) return st->cfg.interval_ms;
    return s->knobs.tune_interval_ms ? s->knobs.tune_interval_ms : 250;
}

int tuner_emit(tuner_decision_t *out, int n, int max, uint32_t knob, uint32_t size_class, uint64_t oldv,
               uint64_t newv, uint32_t reason, uint32_t driver, double predicted, double before) {
    if (n >= max) return n;
    tuner_decision_t *d = &out[n];
    memset(d, 0, sizeof *d);
    d->knob = knob;
    d->size_class = size_class;
    d->old_value = oldv;
    d->new_value = newv;
    d->reason = reason;
    d->driver_class = driver;
    d->predicted = predicted;
    d->before = before;
    return n + 1;
}
