/*
 * tuner/policy.c - the tuner's policy: snapshots in, knob decisions out (pure).
 *
 * One tuner_step looks at the interval between two snapshots of one process:
 *
 *   idle       large_allocs + large_frees unchanged for idle_ms -> one TRIM
 *              (re-armed when activity resumes).  Nothing else is decided in
 *              an interval without large-block activity.
 *   ring cap   per size class, from the reuse_hist delta (ghost-served misses
 *              bucketed by deficit = extra ring slots the miss needed):
 *                covered(k) = misses a ring of cap+k would have hit
 *              want_c = cap + smallest k capturing hit_target of covered(kmax).
 *              Raise at once (one interval), never beyond the blocks seen in
 *              play.  Without ghost demand a class is "quiet"; once it has
 *              been over-provisioned (usage + 25% below its want) for hold
 *              intervals in a row, its want decays by 1/8 per interval towards
 *              1.25 x the ring depth it was seen to use (occupancy range and
 *              live blocks over two epochs of samples).  A decay undone by
 *              ghost demand within 4 holds doubles that class's hold (back-off,
 *              up to 64x), a decay that stuck for 4 holds halves it, so an
 *              alternating workload converges instead of oscillating.
 *              Global cap = max want over active classes, clamped to the
 *              bounds, then lowered until sum(size_c * min(cap, want_c)) fits
 *              the byte budget.
 *   batch      amortisable cost of one flush (measured flush time per flush,
 *              split with the kernel's munmap latency when published, scaled
 *              by what the grades confirmed) x flush rate must stay under
 *              flush_target of one core: threshold = the smallest power of
 *              two that does it, at most budget/16.  Raise at once (then wait
 *              a grade window before raising again); lower one
 *              halving per interval after batch_hold agreeing intervals (with
 *              the same back-off as the cap); pending bytes that sit with no
 *              flush for 4 holds lower it so they get released.
 *
 * Grading compares each prediction with the same figure measured over the
 * grade window after the decision (see tuner_grade_pending).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy.h"

#define NONE32            UINT32_MAX
#define CAP_HARD_MAX      512u        /* HAK_RING_CAP_MAX of the library */
#define BATCH_HARD_MIN    ((uint64_t)64 << 10)
#define BATCH_HARD_MAX    ((uint64_t)1 << 30)
#define GHOST_MIN         2u          /* ghost misses in an interval worth looking at */
#define GHOST_MIN_PERMILLE 10u        /* ... and at least 1% of the class's accesses */
#define HOLD_MAX_FACTOR   64u         /* back-off limit: hold <= 64 x decay_hold */
#define GRADE_MIN_ACCESSES 16u        /* accesses needed to grade a cap decision */
#define GRADE_EXPIRE      8u          /* grade windows before "inconclusive" */
#define HIT_TOLERANCE     0.05        /* confirmed if observed >= predicted - this */

static inline uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
static inline uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static inline double max_d(double a, double b) { return a > b ? a : b; }

static uint64_t pow2_ceil(uint64_t v) {
    if (v <= 1) return 1;
    if (v > ((uint64_t)1 << 62)) return (uint64_t)1 << 63;
    return (uint64_t)1 << (64 - __builtin_clzll(v - 1));
}
static uint64_t pow2_floor(uint64_t v) { return v ? (uint64_t)1 << (63 - __builtin_clzll(v)) : 0; }

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
    };
    return reason < TUNER_NREASONS ? names[reason] : "unknown";
}

const char *tuner_knob_name(uint32_t knob) {
    switch (knob) {
    case HAK_KNOB_RING_CAP: return "ring_cap";
    case HAK_KNOB_BATCH_THRESHOLD: return "batch_threshold";
    case HAK_KNOB_CLASS_CAP: return "class_cap";
    case HAK_KNOB_TRIM: return "trim";
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
    cfg->hit_target = 0.95;
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
    if (!(c->hit_target > 0.0 && c->hit_target <= 1.0)) c->hit_target = 0.95;
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
    for (int e = 0; e < 2; e++) cs->lo[e] = NONE32;
}

static void state_reset(tuner_state_t *st) {
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
    state_reset(st);
}

static uint64_t budget_of(const tuner_state_t *st, const hak_snapshot_t *s) {
    /* the library enforces its own budget: never plan beyond it */
    return st->cfg.cache_max_bytes ? min64(st->cfg.cache_max_bytes, s->knobs.cache_max_bytes) : s->knobs.cache_max_bytes;
}
static uint64_t idle_ms_of(const tuner_state_t *st, const hak_snapshot_t *s) {
    if (st->cfg.idle_ms) return st->cfg.idle_ms;
    return s->knobs.idle_ms ? s->knobs.idle_ms : 1000;
}
static uint64_t interval_ms_of(const tuner_state_t *st, const hak_snapshot_t *s) {
    if (st->cfg.interval_ms) return st->cfg.interval_ms;
    return s->knobs.tune_interval_ms ? s->knobs.tune_interval_ms : 250;
}

// ---------------------------------------------------------------------------
// Hit prediction from the reuse (deficit) histogram
// ---------------------------------------------------------------------------

/* Every run of ghost-served misses counts deficits 1, 2, ..., D, so the
 * number of misses with deficit exactly d, N(d), is non-increasing in d.  A
 * bucket's count is laid out from its low end at the density the previous
 * bucket ended with (the most concentrated layout N allows), which is exact
 * for runs of equal length; a bucket denser than that (noise) is spread
 * uniformly.  Bucket 7 (>= 128) extends at most to deficit 512. */
double tuner_hist_covered(const uint64_t hist[8], uint64_t k) {
    double covered = 0.0, p_prev = 0.0;
    for (unsigned b = 0; b < 8; b++) {
        double h = (double)hist[b];
        double lo = (double)(1u << b);
        double width = b == 7 ? (double)(CAP_HARD_MAX - 127) : lo;
        if (h <= 0.0) {
            p_prev = 0.0;
            continue;
        }
        double dens, len;
        if (b == 0) {
            dens = h, len = 1.0;
        } else if (p_prev > 0.0 && h / p_prev <= width) {
            dens = p_prev, len = h / p_prev;
        } else {
            dens = h / width, len = width;
        }
        double span = (double)k - lo + 1.0;     /* deficits lo..k of this bucket */
        if (span > len) span = len;
        if (span > 0.0) covered += dens * span;
        p_prev = dens;
    }
    return covered;
}

static void hist_delta(const hak_shm_class_t *p, const hak_shm_class_t *c, uint64_t out[8]) {
    for (int b = 0; b < 8; b++) out[b] = sub0(c->reuse_hist[b], p->reuse_hist[b]);
}

/* Smallest k in [0, kmax] whose covered(k) >= target * covered(kmax). */
static uint64_t smallest_k(const uint64_t hist[8], uint64_t kmax, double target) {
    double want = target * tuner_hist_covered(hist, kmax);
    for (uint64_t k = 0; k < kmax; k++)
        if (tuner_hist_covered(hist, k) >= want - 1e-9) return k;
    return kmax;
}

// ---------------------------------------------------------------------------
// The step
// ---------------------------------------------------------------------------

static uint64_t activity(const hak_snapshot_t *s) {
    return s->counter[HAK_C_large_allocs] + s->counter[HAK_C_large_frees];
}

/* True when cur cannot follow prev (another process, restart, clock). */
static int discontinuous(const hak_snapshot_t *prev, const hak_snapshot_t *cur) {
    static const int mono[] = {HAK_C_large_allocs, HAK_C_large_frees, HAK_C_cache_hits, HAK_C_cache_misses,
                               HAK_C_batch_flushes, HAK_C_batch_flush_ns, HAK_C_batch_add_bytes};
    if (prev->pid != cur->pid || prev->start_ns != cur->start_ns || cur->taken_ns <= prev->taken_ns) return 1;
    for (size_t i = 0; i < sizeof mono / sizeof mono[0]; i++)
        if (cur->counter[mono[i]] < prev->counter[mono[i]]) return 1;
    return 0;
}

static uint32_t class_used(const tuner_class_state_t *cs, int single_active) {
    uint32_t used = 0;
    for (int e = 0; e < 2; e++) {
        if (cs->lo[e] == NONE32) continue;
        uint32_t r = cs->hi[e] - cs->lo[e];
        if (r > used) used = r;
        if (single_active && cs->live_hi[e] > used) used = cs->live_hi[e];
    }
    return used;
}

static void epoch_note(tuner_class_state_t *cs, uint32_t occ, uint32_t live, uint32_t epoch_len) {
    if (cs->lo[0] == NONE32 || occ < cs->lo[0]) cs->lo[0] = occ;
    if (occ > cs->hi[0]) cs->hi[0] = occ;
    if (live > cs->live_hi[0]) cs->live_hi[0] = live;
    if (++cs->epoch_age >= epoch_len) {
        cs->lo[1] = cs->lo[0], cs->hi[1] = cs->hi[0], cs->live_hi[1] = cs->live_hi[0];
        cs->lo[0] = occ, cs->hi[0] = occ, cs->live_hi[0] = live;
        cs->epoch_age = 0;
    }
}

static void epoch_clear(tuner_class_state_t *cs) {
    for (int e = 0; e < 2; e++) cs->lo[e] = NONE32, cs->hi[e] = 0, cs->live_hi[e] = 0;
    cs->epoch_age = 0;
}

static uint32_t active_steps(const tuner_state_t *st) {
    uint32_t n = 4 * st->cfg.decay_hold;
    return n < 40 ? 40 : n;
}

/* Bytes the rings may pin at global cap T: each active class holds at most
 * min(T, what it wants) blocks. */
static uint64_t cap_cost(const tuner_state_t *st, const hak_snapshot_t *cur, uint32_t ncls, uint64_t T) {
    uint64_t cost = 0;
    for (uint32_t c = 0; c < ncls; c++) {
        const tuner_class_state_t *cs = &st->cls[c];
        if (cs->since_active >= active_steps(st) || cs->want == 0) continue;
        uint64_t blocks = min64(T, cs->want);
        uint64_t sz = cur->classes[c].size;
        if (sz && blocks > UINT64_MAX / sz) return UINT64_MAX;
        cost = cost + blocks * sz < cost ? UINT64_MAX : cost + blocks * sz;
    }
    return cost;
}

static int emit(tuner_decision_t *out, int n, int max, uint32_t knob, uint64_t oldv, uint64_t newv, uint32_t reason,
                uint32_t driver, double predicted, double before) {
    if (n >= max) return n;
    tuner_decision_t *d = &out[n];
    memset(d, 0, sizeof *d);
    d->knob = knob;
    d->size_class = NONE32;
    d->old_value = oldv;
    d->new_value = newv;
    d->reason = reason;
    d->driver_class = driver;
    d->predicted = predicted;
    d->before = before;
    return n + 1;
}

/* Ring cap part of a step; returns the new n. */
static int step_cap(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur, tuner_decision_t *out,
                    int n, int max) {
    const tuner_cfg_t *cfg = &st->cfg;
    uint64_t cap_now = cur->knobs.ring_cap;
    uint64_t cap_then = min64(prev->knobs.ring_cap, cap_now);
    uint32_t ncls = cur->nclasses < prev->nclasses ? cur->nclasses : prev->nclasses;
    if (ncls > HAK_SHM_CLASSES) ncls = HAK_SHM_CLASSES;
    uint64_t dh = sub0(cur->counter[HAK_C_cache_hits], prev->counter[HAK_C_cache_hits]);
    uint64_t dm = sub0(cur->counter[HAK_C_cache_misses], prev->counter[HAK_C_cache_misses]);
    uint32_t live = (uint32_t)min64((uint64_t)(cur->gauge[HAK_G_blocks_live] > 0 ? cur->gauge[HAK_G_blocks_live] : 0),
                                    NONE32 - 1);

    if (st->posted_cap != NONE32 && (cap_now == st->posted_cap || ++st->posted_age > 8)) st->posted_cap = NONE32;

    /* blocks in play (live + cached, all classes): at these two samples and
     * the max over two epochs of earlier ones */
    uint64_t inplay = 0;
    for (int i = 0; i < 2; i++) {
        const hak_snapshot_t *x = i ? cur : prev;
        int64_t v = x->gauge[HAK_G_blocks_live] + x->gauge[HAK_G_blocks_cached];
        if (v > 0 && (uint64_t)v > inplay) inplay = (uint64_t)v;
    }
    if (inplay > NONE32 - 1) inplay = NONE32 - 1;
    if (inplay > st->inplay_hi[0]) st->inplay_hi[0] = (uint32_t)inplay;
    if (++st->inplay_age >= cfg->decay_hold) {
        st->inplay_hi[1] = st->inplay_hi[0];
        st->inplay_hi[0] = (uint32_t)inplay;
        st->inplay_age = 0;
    }
    inplay = max64(inplay, max64(st->inplay_hi[0], st->inplay_hi[1]));

    uint32_t nact = 0;
    for (uint32_t c = 0; c < ncls; c++) {
        const hak_shm_class_t *pc = &prev->classes[c], *cc = &cur->classes[c];
        if (cc->size == pc->size && cc->hits + cc->misses > pc->hits + pc->misses) nact++;
    }

    int raised = 0;
    for (uint32_t c = 0; c < ncls; c++) {
        tuner_class_state_t *cs = &st->cls[c];
        const hak_shm_class_t *pc = &prev->classes[c], *cc = &cur->classes[c];
        if (cc->size != pc->size) continue;
        uint32_t occ = (uint32_t)min64(cc->cached_blocks, CAP_HARD_MAX);
        uint64_t acc = sub0(cc->hits, pc->hits) + sub0(cc->misses, pc->misses);
        if (acc == 0) {
            if (cs->since_active != NONE32) cs->since_active++;
            continue;
        }
        epoch_note(cs, occ, live, cfg->decay_hold);
        cs->since_active = 0;
        if (cs->since_decay != NONE32) cs->since_decay++;
        if (cs->since_raise != NONE32) cs->since_raise++;
        if (cs->want == 0) cs->want = (uint32_t)max64(min64(cap_now, cfg->ring_cap_max), cfg->ring_cap_min);

        uint64_t hd[8];
        hist_delta(pc, cc, hd);
        uint64_t dg = 0;
        for (int b = 0; b < 8; b++) dg += hd[b];
        if (dg >= GHOST_MIN && dg * 1000 >= acc * GHOST_MIN_PERMILLE) {
            uint64_t kmax = sub0(cfg->ring_cap_max, cap_then);
            uint64_t need = cap_then + smallest_k(hd, kmax, cfg->hit_target);
            /* Deficits count from the ring's occupancy when the run began,
             * which is cap_then only if the ring was full then - not always
             * so right after a raise, when the ring is still filling: then
             * never ask for more blocks than were seen in play (live +
             * cached, all classes) lately, when that is more than cap_then. */
            if (cs->since_raise <= 2 && need > inplay && inplay > cap_then) need = inplay;
            cs->quiet = 0;
            cs->slack = 0;
            if (need > cs->want) {
                /* a decay undone soon after: wait longer before the next one */
                if (cs->since_decay != NONE32 && cs->since_decay <= 4 * cs->hold)
                    cs->hold = cs->hold * 2 > HOLD_MAX_FACTOR * cfg->decay_hold ? HOLD_MAX_FACTOR * cfg->decay_hold
                                                                                 : cs->hold * 2;
                cs->want = (uint32_t)need;
                cs->since_decay = NONE32;
                cs->since_raise = 0;
                epoch_clear(cs);
                raised = 1;
            }
            continue;
        }
        /* quiet interval: no ghost demand worth having.  Was the ring
         * over-provisioned in it?  Usage seen in this interval: the ring
         * occupancy swing between the samples, and (only class active) the
         * blocks the program held. */
        cs->quiet++;
        /* a decay that stuck for 4 holds: the back-off may relax */
        if (cs->since_decay == 4 * cs->hold && cs->hold > cfg->decay_hold) cs->hold /= 2;
        uint32_t pocc = (uint32_t)min64(pc->cached_blocks, CAP_HARD_MAX);
        uint32_t u = occ > pocc ? occ - pocc : pocc - occ;
        if (nact == 1 && live > u) u = live;
        if ((uint64_t)u + u / 4 + 1 < cs->want) cs->slack++;
        else cs->slack = 0;
        if (cs->slack >= cs->hold && cs->want > cfg->ring_cap_min) {
            uint32_t used = class_used(cs, nact == 1);
            uint64_t floor = max64(cfg->ring_cap_min, (uint64_t)used + used / 4 + 1);
            if (floor < cs->want) {
                uint32_t step = cs->want / 8 ? cs->want / 8 : 1;
                uint64_t nw = cs->want - step;
                cs->want = (uint32_t)(nw < floor ? floor : nw);
                cs->since_decay = 0;
                for (int e = 0; e < 2; e++) {
                    if (cs->hi[e] > cs->want) cs->hi[e] = cs->want;
                    if (cs->lo[e] != NONE32 && cs->lo[e] > cs->want) cs->lo[e] = cs->want;
                }
            }
        }
    }

    /* global cap: the largest want among active classes, bounded, in budget */
    uint64_t target = 0;
    uint32_t driver = NONE32;
    for (uint32_t c = 0; c < ncls; c++) {
        const tuner_class_state_t *cs = &st->cls[c];
        if (cs->since_active >= active_steps(st) || cs->want == 0) continue;
        if (cs->want > target) target = cs->want, driver = c;
    }
    if (driver == NONE32) return n;
    uint64_t wanted = target;
    target = max64(cfg->ring_cap_min, min64(target, cfg->ring_cap_max));
    uint64_t budget = budget_of(st, cur);
    while (target > cfg->ring_cap_min && cap_cost(st, cur, ncls, target) > budget) target--;
    int budget_limited = target < min64(wanted, cfg->ring_cap_max);

    if (target == cap_now || target == st->posted_cap) return n;
    uint32_t reason;
    if (cap_now < cfg->ring_cap_min || cap_now > cfg->ring_cap_max) reason = TUNER_R_BOUNDS;
    else if (target > cap_now) reason = TUNER_R_GHOST_DEMAND;
    else if (budget_limited && cap_cost(st, cur, ncls, cap_now) > budget) reason = TUNER_R_BUDGET;
    else if (raised) return n;   /* a class just asked for more: never lower in the same step */
    else reason = TUNER_R_DECAY;

    /* predicted hit rate under this interval's traffic */
    double before = dh + dm ? (double)dh / (double)(dh + dm) : 0.0;
    double extra = 0.0;
    for (uint32_t c = 0; c < ncls; c++) {
        const hak_shm_class_t *pc = &prev->classes[c], *cc = &cur->classes[c];
        if (cc->size != pc->size) continue;
        uint64_t hd[8];
        hist_delta(pc, cc, hd);
        if (target > cap_then) extra += tuner_hist_covered(hd, target - cap_then);
    }
    double predicted = dh + dm ? ((double)dh + extra) / (double)(dh + dm) : 0.0;
    if (predicted > 1.0) predicted = 1.0;
    if (target < cap_now) predicted = before;   /* a decay predicts no loss */
    n = emit(out, n, max, HAK_KNOB_RING_CAP, cap_now, target, reason, driver, predicted, before);
    st->posted_cap = (uint32_t)target;
    st->posted_age = 0;
    return n;
}

/* Batch threshold part of a step; returns the new n.
 *
 * Model: one flush costs f_fix (what a bigger batch saves per flush avoided)
 * plus a part proportional to the bytes released.  f_fix is the intercept of
 * ns/flush against MiB/flush over the batch sizes seen (decayed least
 * squares) once they varied enough; before that the user-side work plus one
 * munmap (kernel figures, when published), else the whole time per flush;
 * always scaled by flush_alpha, which the grades correct.  At
 * threshold th the saveable cost is rate x f_fix / th per second; th is the
 * smallest power of two keeping that under flush_target of one core.
 * Predictions are in flush ns per MiB released: c - s + s x th_old / th_new,
 * with s = f_fix x MiB / th_old the saveable part now. */
static int step_batch(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur, tuner_decision_t *out,
                      int n, int max) {
    const tuner_cfg_t *cfg = &st->cfg;
    const double MiB = 1048576.0;
    uint64_t th = cur->knobs.batch_threshold;
    const uint64_t *pc = prev->counter, *cc = cur->counter;
    uint64_t F = sub0(cc[HAK_C_batch_flushes], pc[HAK_C_batch_flushes]);
    uint64_t T = sub0(cc[HAK_C_batch_flush_ns], pc[HAK_C_batch_flush_ns]);
    uint64_t Y = sub0(cc[HAK_C_batch_add_bytes], pc[HAK_C_batch_add_bytes]);
    uint64_t Yf = sub0(cc[HAK_C_batch_bytes_flushed], pc[HAK_C_batch_bytes_flushed]);
    double dt = (double)(cur->taken_ns - prev->taken_ns);
    uint64_t pending = cur->gauge[HAK_G_bytes_pending] > 0 ? (uint64_t)cur->gauge[HAK_G_bytes_pending] : 0;

    if (st->posted_batch && (th == st->posted_batch || ++st->posted_batch_age > 8)) st->posted_batch = 0;

    if (F > 0 && T > 0) {
        double amort = (double)T / (double)F;
        uint64_t kc = sub0(cur->kernel.munmap_calls, prev->kernel.munmap_calls);
        uint64_t kns = sub0(cur->kernel.munmap_ns_total, prev->kernel.munmap_ns_total);
        if (Yf > 0) {
            /* ns per flush against MiB per flush, over the thresholds seen */
            double x = (double)Yf / (double)F / MiB, y = amort;
            st->reg_w = 0.95 * st->reg_w + 1.0;
            st->reg_x = 0.95 * st->reg_x + x;
            st->reg_y = 0.95 * st->reg_y + y;
            st->reg_xx = 0.95 * st->reg_xx + x * x;
            st->reg_xy = 0.95 * st->reg_xy + x * y;
        }
        double mx = st->reg_w > 0 ? st->reg_x / st->reg_w : 0, my = st->reg_w > 0 ? st->reg_y / st->reg_w : 0;
        double vx = st->reg_w > 0 ? st->reg_xx / st->reg_w - mx * mx : 0;
        if (st->reg_w >= 1.9 && vx > 0.0625 * mx * mx) {
            /* batch sizes varied enough: the intercept is the per-flush cost */
            double slope = (st->reg_xy / st->reg_w - mx * my) / vx;
            double a = slope > 0.0 ? my - slope * mx : my;
            amort = a < 0.0 ? 0.0 : a > my ? my : a;
        } else if (cur->kernel.updated_ns != 0 && prev->kernel.updated_ns != 0 && kc > 0 && kns <= T) {
            /* user-side work per flush + one munmap call: what a bigger batch
             * saves per flush avoided (the rest scales with the ranges) */
            amort = (double)(T - kns) / (double)F + (double)kns / (double)kc;
        }
        st->flush_fixed_ns = st->flush_fixed_ns > 0.0 ? 0.7 * st->flush_fixed_ns + 0.3 * amort : amort;
        if (Yf > 0) {
            double per_mib = (double)T / ((double)Yf / MiB), bpf = (double)Yf / (double)F;
            st->flush_ns_per_mib = st->flush_ns_per_mib > 0.0 ? 0.7 * st->flush_ns_per_mib + 0.3 * per_mib : per_mib;
            st->bytes_per_flush = st->bytes_per_flush > 0.0 ? 0.7 * st->bytes_per_flush + 0.3 * bpf : bpf;
        }
        st->no_flush = 0;
    } else if (pending > 0) {
        st->no_flush++;
    } else {
        st->no_flush = 0;
    }
    double f_fix = st->flush_alpha * st->flush_fixed_ns;
    double c_now = st->flush_ns_per_mib;
    double bpf = st->bytes_per_flush > 0.0 ? st->bytes_per_flush : (double)th;
    double s_now = f_fix * MiB / bpf;   /* saveable flush ns per MiB now */
    if (s_now > c_now) s_now = c_now;
    if (st->batch_since_raise != NONE32) st->batch_since_raise++;
    if (st->batch_since_lower != NONE32 && ++st->batch_since_lower == 4 * st->batch_hold &&
        st->batch_hold > cfg->decay_hold)
        st->batch_hold /= 2;   /* a lowering that stuck: relax the back-off */
#define PREDICT(newth) (c_now > 0.0 ? max_d(0.0, c_now - s_now + s_now * (double)th / (double)(newth)) : 0.0)

    if (th < cfg->batch_min || th > cfg->batch_max) {
        uint64_t v = th < cfg->batch_min ? cfg->batch_min : cfg->batch_max;
        if (v != st->posted_batch) {
            n = emit(out, n, max, HAK_KNOB_BATCH_THRESHOLD, th, v, TUNER_R_BOUNDS, NONE32, PREDICT(v), c_now);
            st->posted_batch = v, st->posted_batch_age = 0;
        }
        return n;
    }

    uint64_t hold_max = max64(cfg->batch_min, min64(cfg->batch_max, budget_of(st, cur) / 16));
    if (Y > 0 && F > 0 && st->flush_ns_per_mib > 0.0) {
        double rate = (double)Y / dt;                        /* bytes per ns */
        double need = rate * f_fix / cfg->flush_target;      /* bytes */
        uint64_t cand = need >= (double)((uint64_t)1 << 62) ? (uint64_t)1 << 62 : pow2_ceil((uint64_t)need);
        cand = max64(cfg->batch_min, min64(cand, hold_max));
        if (cand > th && th < hold_max) {
            /* measure one raise (grade window) before compounding it */
            if (st->batch_since_raise < cfg->grade_intervals) return n;
            /* a lowering undone soon after: lower more reluctantly */
            if (st->batch_since_lower != NONE32 && st->batch_since_lower <= 4 * st->batch_hold)
                st->batch_hold = st->batch_hold * 2 > HOLD_MAX_FACTOR * cfg->decay_hold
                                     ? HOLD_MAX_FACTOR * cfg->decay_hold : st->batch_hold * 2;
            st->batch_since_lower = NONE32;
            if (cand != st->posted_batch) {
                n = emit(out, n, max, HAK_KNOB_BATCH_THRESHOLD, th, cand, TUNER_R_FLUSH_COST, NONE32, PREDICT(cand),
                         c_now);
                st->posted_batch = cand, st->posted_batch_age = 0;
                st->batch_since_raise = 0;
            }
            st->batch_agree = 0;
            return n;
        }
        if (cand * 4 <= th) {
            /* one halving per interval, once batch_hold intervals in a row
             * asked for at most a quarter of the threshold */
            uint64_t half = max64(th / 2, cand);
            if (++st->batch_agree >= st->batch_hold && half != st->posted_batch) {
                n = emit(out, n, max, HAK_KNOB_BATCH_THRESHOLD, th, half, TUNER_R_FLUSH_CHEAP, NONE32, PREDICT(half),
                         c_now);
                st->posted_batch = half, st->posted_batch_age = 0;
                st->batch_since_lower = 0;
            }
            return n;
        }
        st->batch_agree = 0;
    }
    if (st->no_flush >= 4 * st->batch_hold && pending > 0 && th > cfg->batch_min) {
        uint64_t v = max64(cfg->batch_min, pow2_floor(pending));
        if (v < th && v != st->posted_batch) {
            n = emit(out, n, max, HAK_KNOB_BATCH_THRESHOLD, th, v, TUNER_R_PENDING_HELD, NONE32, PREDICT(v), c_now);
            st->posted_batch = v, st->posted_batch_age = 0;
            st->batch_since_lower = 0;
        }
        st->no_flush = 0;
    }
#undef PREDICT
    return n;
}

int tuner_step(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur, tuner_decision_t *out,
               int max) {
    if (max > TUNER_MAX_DECISIONS) max = TUNER_MAX_DECISIONS;
    if (max < 0) max = 0;
    if (st->pid != cur->pid) {
        state_reset(st);
        st->pid = cur->pid;
        prev = NULL;
    }
    if (prev == NULL || discontinuous(prev, cur)) {
        st->last_activity = activity(cur);
        st->activity_ns = cur->taken_ns;
        st->trimmed = 0;
        return 0;
    }
    st->steps++;
    int n = 0;

    /* idle: one TRIM per idle period */
    uint64_t act = activity(cur);
    if (act != st->last_activity) {
        st->last_activity = act;
        st->activity_ns = cur->taken_ns;
        st->trimmed = 0;
    }
    if (!st->trimmed && cur->taken_ns - st->activity_ns >= idle_ms_of(st, cur) * 1000000ull) {
        st->trimmed = 1;
        uint64_t held = (uint64_t)(cur->gauge[HAK_G_bytes_cached] > 0 ? cur->gauge[HAK_G_bytes_cached] : 0) +
                        (uint64_t)(cur->gauge[HAK_G_bytes_pending] > 0 ? cur->gauge[HAK_G_bytes_pending] : 0);
        if (held > 0) n = emit(out, n, max, HAK_KNOB_TRIM, held, 0, TUNER_R_IDLE, NONE32, 0.0, (double)held);
    }
    if (act == activity(prev)) {
        /* no traffic: nothing to learn; inactive classes age */
        for (uint32_t c = 0; c < HAK_SHM_CLASSES; c++)
            if (st->cls[c].since_active != NONE32) st->cls[c].since_active++;
        return n;
    }
    n = step_cap(st, prev, cur, out, n, max);
    n = step_batch(st, prev, cur, out, n, max);
    return n;
}

// ---------------------------------------------------------------------------
// Grading
// ---------------------------------------------------------------------------

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
    slot->flush_ns = at->counter[HAK_C_batch_flush_ns];
    slot->activity = activity(at);
    slot->trims = at->counter[HAK_C_trims] + at->counter[HAK_C_evict_idle_trim];
    slot->bytes_flushed = at->counter[HAK_C_batch_bytes_flushed];
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
        if (dh + dm < GRADE_MIN_ACCESSES) {
            if (!expired) return 0;
            g->grade = TUNER_GRADE_INCONCLUSIVE;
            return 1;
        }
        g->observed = (double)dh / (double)(dh + dm);
        g->grade = g->observed >= p->predicted - HIT_TOLERANCE ? TUNER_GRADE_CONFIRMED : TUNER_GRADE_REFUTED;
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
        g->grade = g->observed <= p->predicted * 1.25 + 2000.0 ? TUNER_GRADE_CONFIRMED : TUNER_GRADE_REFUTED;
        return 1;
    }
    case HAK_KNOB_TRIM: {
        uint64_t held = (uint64_t)(cur->gauge[HAK_G_bytes_cached] > 0 ? cur->gauge[HAK_G_bytes_cached] : 0) +
                        (uint64_t)(cur->gauge[HAK_G_bytes_pending] > 0 ? cur->gauge[HAK_G_bytes_pending] : 0);
        uint64_t trims = cur->counter[HAK_C_trims] + cur->counter[HAK_C_evict_idle_trim];
        g->observed = (double)held;
        if (activity(cur) == p->activity)
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
    uint64_t window_ns = (uint64_t)st->cfg.grade_intervals * interval_ms_of(st, cur) * 1000000ull;
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
