/*
 * tuner/policy_cap.c - the ring cap rule: how many warm blocks each size
 * class keeps (CLASS_CAP decisions, applied with hak_set_class_cap or the
 * control block's HAK_CTL_CLASS_CAP).
 *
 * BigCache leaves a ghost for every capacity eviction (hak_shm_class_t.ghosts
 * counts those not yet matched by a miss) and counts each miss that finds one
 * in reuse_hist[log2(deficit)], the deficit being the length of the current
 * run of such misses: how many more ring slots that miss needed.
 *
 *   raise   class_demand: at the first interval with ghost misses worth
 *           having (>= 2 and >= 1% of the class's accesses) the class wants
 *           its whole outstanding demand at once:
 *             from the histogram  cap_then + the smallest k covering
 *                                 hit_target (1.0: all) of covered(kmax),
 *                                 no deeper than two runs and an eighth
 *                                 of the runs reached (the few long runs
 *                                 of a fluctuating demand are not chased)
 *             from the ghosts     a ring drained by a run in progress
 *                                 (the core signals at its 4th ghost miss):
 *                                 the occupancy the run began with + its
 *                                 ghost misses so far, followed across
 *                                 intervals, + the fresh ghosts, the rest
 *                                 of the run
 *           the larger of the two, from the occupancy the run began with:
 *           the cap, unless the budget evicted or fewer own hits than the
 *           cap came before each run (ring_base).  Ghosts that sat through
 *           two epochs of samples are stale, and no more ghosts are fresh
 *           than the class's capacity evictions in this interval and the one
 *           before.  Right after a raise the want is bounded by the blocks
 *           seen in play (the ring may still be filling).  Dead band: a
 *           small raise (less than 2 blocks and 1/8 of the want) waits until
 *           4 intervals in a row asked for one, then takes the most they
 *           asked; a big one - the first repetition of a pattern - is taken
 *           at once.
 *   decay   class_decay: an active interval without ghost demand whose usage
 *           (ring occupancy swing; blocks held, when the class is the only
 *           active one) leaves a quarter of the want idle is "slack".  After
 *           hold slack intervals in a row, and a whole epoch of samples
 *           since the last raise, the want drops by 1/8 (at least 2 blocks)
 *           per interval towards 1.5 x the depth seen in use over two epochs
 *           of 2 x decay_hold samples (a sampled range underestimates the
 *           true one: the margin and the >= 17 samples keep a cycling
 *           workload sampled at random points from decaying), and by no more
 *           than the blocks that sat in the ring at every sample (a ring the
 *           program drains now and then holds little memory, whatever its
 *           cap).  Dead band: a decay starts only if it would free at least
 *           2 blocks, a quarter of the want and 4 MiB (a small class's few
 *           blocks are not worth a decision, nor the miss that would undo
 *           it).  Back-off: a decay undone by ghost demand within 4 holds
 *           doubles the class's hold (up to 256x), one that stuck for 4
 *           holds halves it.  A steady workload therefore reaches a fixed
 *           point and stops deciding.
 *   budget  fit_budget: sum over active classes of want_c x size_c must fit
 *           the byte budget; when it does not, the budget goes to the
 *           classes with the most accesses per byte of their want first
 *           (a class that holds its grant keeps a 25% edge, so two close
 *           classes do not swap), each getting its whole want or what is
 *           left.
 *   retire  a class with a per-class cap and no traffic for
 *           max(40, 4 x decay_hold) active intervals goes back to the
 *           global cap (reason decay).
 *
 * A class without an opinion (never showed demand, never decayed) follows
 * the global cap and gets no decision.
 */
#include <stdint.h>
#include <string.h>

#include "policy_internal.h"

#define GHOST_MIN          2u      /* ghost misses in an interval worth looking at */
#define GHOST_MIN_PERMILLE 10u     /* ... and at least 1% of the class's accesses */
#define DECAY_MIN_BLOCKS   2u      /* dead band: a decay frees at least this many blocks ... */
#define DECAY_MIN_SHARE    4u      /* ... and at least 1/4 of the want ... */
#define DECAY_MIN_BYTES    ((uint64_t)4 << 20)   /* ... and at least 4 MiB */
#define HOLDER_EDGE        1.25    /* budget priority bonus of a class that holds its grant */
#define SMALL_RAISE_HOLD   4u      /* intervals in a row a small raise must be asked for */

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

/* The deepest deficit reached by at least two of the interval's runs and an
 * eighth of them (by the one run, when there was one): the runs of a cycling
 * working set all reach it; the few long runs of a demand that merely
 * fluctuates (a random walk of the blocks a class holds) do not make the cap
 * chase them, a slot that an eighth of the runs would use is worth it. */
static uint64_t run_depth(const uint64_t hist[8], uint64_t kmax, uint64_t runs) {
    double min_runs = runs >= 2 ? 2.0 : 1.0, prev = 0.0;
    if ((double)runs / 8.0 > min_runs) min_runs = (double)runs / 8.0;
    uint64_t depth = 0;
    for (uint64_t k = 1; k <= kmax; k++) {
        double c = tuner_hist_covered(hist, k);
        if (c - prev < min_runs - 1e-9) break;
        depth = k;
        prev = c;
    }
    return depth;
}

// ---------------------------------------------------------------------------
// What the policy remembers of a class's use
// ---------------------------------------------------------------------------

static uint32_t active_steps(const tuner_state_t *st) {
    uint32_t n = 4 * st->cfg.decay_hold;
    return n < 40 ? 40 : n;
}

static uint32_t clamp32(uint64_t v) { return v > NONE32 - 1 ? NONE32 - 1 : (uint32_t)v; }

/* Ring depth seen in use over the two epochs: the occupancy range across
 * all their samples (blocks that sat in the ring at every sample were not
 * used), and, when the class is the only active one, the blocks the program
 * held. */
static uint32_t class_used(const tuner_class_state_t *cs, int single_active) {
    uint32_t lo = NONE32, hi = 0, used = 0;
    for (int e = 0; e < 2; e++) {
        if (cs->lo[e] == NONE32) continue;
        if (cs->lo[e] < lo) lo = cs->lo[e];
        if (cs->hi[e] > hi) hi = cs->hi[e];
        if (single_active && cs->live_hi[e] > used) used = cs->live_hi[e];
    }
    if (lo != NONE32 && hi - lo > used) used = hi - lo;
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

/* Ghosts of every class at every sample: the fewest seen over two epochs
 * are stale (they sat there through all of them). */
static void ghost_note(tuner_state_t *st, const hak_snapshot_t *cur, uint32_t ncls) {
    int roll = ++st->ghost_epoch_age >= st->cfg.decay_hold;
    if (roll) st->ghost_epoch_age = 0;
    for (uint32_t c = 0; c < ncls; c++) {
        tuner_class_state_t *cs = &st->cls[c];
        uint32_t g = clamp32(cur->classes[c].ghosts);
        if (g < cs->ghost_lo[0]) cs->ghost_lo[0] = g;
        if (roll) cs->ghost_lo[1] = cs->ghost_lo[0], cs->ghost_lo[0] = g;
    }
}

static uint64_t ghost_floor(const tuner_class_state_t *cs) {
    uint32_t f = cs->ghost_lo[0] < cs->ghost_lo[1] ? cs->ghost_lo[0] : cs->ghost_lo[1];
    return f == NONE32 ? 0 : f;
}

void tuner_policy_cap_baseline(tuner_state_t *st, const hak_snapshot_t *cur) {
    uint32_t ncls = cur->nclasses > HAK_SHM_CLASSES ? HAK_SHM_CLASSES : cur->nclasses;
    for (uint32_t c = 0; c < ncls; c++) {
        uint32_t g = clamp32(cur->classes[c].ghosts);
        if (g < st->cls[c].ghost_lo[0]) st->cls[c].ghost_lo[0] = g;
    }
}

/* Blocks in play (live + cached, all classes): at these two samples and the
 * max over two epochs of earlier ones. */
static uint64_t blocks_in_play(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur) {
    uint64_t inplay = 0;
    for (int i = 0; i < 2; i++) {
        const hak_snapshot_t *x = i ? cur : prev;
        inplay = max64(inplay, gauge0(x, HAK_G_blocks_live) + gauge0(x, HAK_G_blocks_cached));
    }
    uint32_t v = clamp32(inplay);
    if (v > st->inplay_hi[0]) st->inplay_hi[0] = v;
    if (++st->inplay_age >= st->cfg.decay_hold) {
        st->inplay_hi[1] = st->inplay_hi[0];
        st->inplay_hi[0] = v;
        st->inplay_age = 0;
    }
    return max64(inplay, max64(st->inplay_hi[0], st->inplay_hi[1]));
}

// ---------------------------------------------------------------------------
// Raise: the whole outstanding demand
// ---------------------------------------------------------------------------

/* The ring occupancy a run of ghost misses counts its deficits from (a run
 * begins when the ring is empty): the cap, if the ring was full when it
 * began.  It was not when the byte budget evicted blocks of the class in the
 * interval (then: the most it held at the two samples), nor when fewer own
 * hits than the cap came before each run (other classes' misses took warm
 * blocks from this ring, or it never filled): then the hits per run. */
static uint64_t ring_base(const hak_shm_class_t *pc, const hak_shm_class_t *cc, uint64_t cap_then,
                          const uint64_t hd[8]) {
    uint64_t base = cap_then;
    if (cc->evictions[HAK_EVICT_BUDGET] != pc->evictions[HAK_EVICT_BUDGET])
        base = min64(base, max64(pc->cached_blocks, cc->cached_blocks));
    if (hd[0] > 0) base = min64(base, sub0(cc->hits, pc->hits) / hd[0]);
    return base;
}

/* Follow the latest run of ghost misses across intervals: hd[0] counts the
 * runs that began in the interval (every run has one miss at deficit 1); a
 * run that goes on adds its ghost misses. */
static void run_note(tuner_class_state_t *cs, const uint64_t hd[8], uint64_t base, uint64_t deficit) {
    uint64_t dg = 0;
    for (int b = 0; b < 8; b++) dg += hd[b];
    if (hd[0] > 0) {
        cs->run_base = clamp32(base);
        /* the newest run: what the others (taken as long as the longest) leave */
        cs->run_ghosts = clamp32(hd[0] == 1 ? dg : min64(sub0(dg, (hd[0] - 1) * deficit), deficit));
    } else {
        cs->run_ghosts = clamp32((uint64_t)cs->run_ghosts + dg);
    }
}

/* Blocks class c would need now to have served this interval's ghost misses
 * and to keep every block it still sees demand for. */
static uint64_t class_demand(const tuner_state_t *st, const tuner_class_state_t *cs, const hak_shm_class_t *cc,
                             const uint64_t hd[8], uint64_t base, uint64_t deficit, uint64_t evictions) {
    const tuner_cfg_t *cfg = &st->cfg;
    /* complete runs of the interval; a run still going on counts from its start */
    uint64_t from_hist = hd[0] > 0 ? base + deficit : (uint64_t)cs->run_base + cs->run_ghosts;
    /* Fresh ghosts: not stale, and no more than the capacity evictions of
     * this interval and the one before (the ghost count of a ring whose
     * demand merely fluctuates drifts like a random walk: not demand). */
    uint64_t fresh = min64(sub0(cc->ghosts, ghost_floor(cs)), evictions + cs->evict_prev);
    uint64_t from_ghosts = 0;
    if (cc->cached_blocks == 0) {
        /* A drained ring: a run is in progress (or done, its blocks live).
         * It took run_base hits, then its ghost misses so far; the fresh
         * ghosts are the rest of it. */
        from_ghosts = (uint64_t)cs->run_base + cs->run_ghosts + fresh;
    }
    uint64_t need = max64(from_hist, from_ghosts);
    return max64(cfg->ring_cap_min, min64(need, cfg->ring_cap_max));
}

// ---------------------------------------------------------------------------
// Decay: slow, with hold, dead band and back-off
// ---------------------------------------------------------------------------

/* A quiet interval of class c (no ghost demand): was it over-provisioned,
 * and has it been long enough to lower the want one step? */
static void class_decay(const tuner_state_t *st, tuner_class_state_t *cs, const hak_shm_class_t *pc,
                        const hak_shm_class_t *cc, uint32_t live, uint32_t nact) {
    const tuner_cfg_t *cfg = &st->cfg;
    cs->quiet++;
    /* a decay that stuck for 4 holds: the back-off may relax */
    if (cs->since_decay == 4 * cs->hold && cs->hold > cfg->decay_hold) cs->hold /= 2;
    uint32_t occ = (uint32_t)min64(cc->cached_blocks, CAP_HARD_MAX);
    uint32_t pocc = (uint32_t)min64(pc->cached_blocks, CAP_HARD_MAX);
    uint32_t u = occ > pocc ? occ - pocc : pocc - occ;
    if (nact == 1 && live > u) u = live;
    if ((uint64_t)u + u / 4 + 1 < cs->want) cs->slack++;
    else cs->slack = 0;
    if (cs->slack < cs->hold || cs->want <= cfg->ring_cap_min) return;
    if (cs->lo[1] == NONE32) return;   /* a whole epoch of samples first (since the last raise) */
    uint32_t used = class_used(cs, nact == 1);
    uint64_t floor = max64(cfg->ring_cap_min, (uint64_t)used + used / 2 + 1);
    /* Only blocks that sat in the ring at every sample of the two epochs are
     * memory to give back: a ring the program drains now and then holds
     * little, whatever its cap (and lowering it would only cost misses). */
    uint32_t idle = cs->lo[0] < cs->lo[1] ? cs->lo[0] : cs->lo[1];
    if (idle == NONE32) idle = 0;
    floor = max64(floor, sub0(cs->want, idle));
    if (floor >= cs->want) return;
    /* dead band: a decay starts only when it frees enough; once started
     * (the previous active interval decayed) it goes on to the floor */
    uint32_t gap = cs->want - (uint32_t)floor;
    int going = cs->since_decay == 1;
    if (!going && (gap < DECAY_MIN_BLOCKS || gap < cs->want / DECAY_MIN_SHARE || gap * cc->size < DECAY_MIN_BYTES))
        return;
    uint32_t step = cs->want / 8 > 2 ? cs->want / 8 : 2;
    uint64_t nw = cs->want - step;
    cs->want = (uint32_t)(nw < floor ? floor : nw);
    cs->since_decay = 0;
    for (int e = 0; e < 2; e++) {
        if (cs->hi[e] > cs->want) cs->hi[e] = cs->want;
        if (cs->lo[e] != NONE32 && cs->lo[e] > cs->want) cs->lo[e] = cs->want;
    }
}

// ---------------------------------------------------------------------------
// Budget: the classes with the most accesses per byte first
// ---------------------------------------------------------------------------

static int budget_candidate(const tuner_state_t *st, uint32_t c) {
    const tuner_class_state_t *cs = &st->cls[c];
    return cs->want > 0 && cs->since_active < active_steps(st);
}

/* grant[c] = the cap class c gets (only candidates are written); returns 1
 * when the budget limited some class. */
static int fit_budget(tuner_state_t *st, const hak_snapshot_t *cur, uint32_t ncls, uint32_t grant[]) {
    uint64_t budget = tuner_budget_of(st, cur), cost = 0;
    int over = 0;
    for (uint32_t c = 0; c < ncls; c++) {
        if (!budget_candidate(st, c)) continue;
        grant[c] = st->cls[c].want;
        uint64_t sz = cur->classes[c].size, b = (uint64_t)st->cls[c].want * sz;
        if (sz && b / sz != st->cls[c].want) b = UINT64_MAX;
        cost = cost + b < cost ? UINT64_MAX : cost + b;
    }
    if (cost <= budget) goto done;
    over = 1;
    /* selection by priority: accesses per byte of the want (deterministic ties: lower class first) */
    uint8_t done_c[HAK_SHM_CLASSES];
    double prio[HAK_SHM_CLASSES];
    memset(done_c, 0, sizeof done_c);
    for (uint32_t c = 0; c < ncls; c++) {
        if (!budget_candidate(st, c)) {
            done_c[c] = 1;
            continue;
        }
        const tuner_class_state_t *cs = &st->cls[c];
        double bytes = (double)cs->want * (double)(cur->classes[c].size ? cur->classes[c].size : 1);
        prio[c] = (cs->rate + 1e-9) / bytes;
        if (cs->granted >= cs->want) prio[c] *= HOLDER_EDGE;
    }
    uint64_t left = budget;
    for (;;) {
        uint32_t best = NONE32;
        for (uint32_t c = 0; c < ncls; c++)
            if (!done_c[c] && (best == NONE32 || prio[c] > prio[best])) best = c;
        if (best == NONE32) break;
        done_c[best] = 1;
        uint64_t sz = cur->classes[best].size ? cur->classes[best].size : 1;
        uint64_t blocks = min64(st->cls[best].want, left / sz);
        grant[best] = (uint32_t)blocks;
        left -= blocks * sz;
    }
done:
    for (uint32_t c = 0; c < ncls; c++) st->cls[c].granted = budget_candidate(st, c) ? grant[c] : 0;
    return over;
}

// ---------------------------------------------------------------------------
// The rule
// ---------------------------------------------------------------------------

static int posted_matches(const tuner_class_state_t *cs, const hak_shm_class_t *cc) {
    return cs->posted == HAK_CLASS_CAP_GLOBAL ? cc->class_cap == HAK_CLASS_CAP_GLOBAL : cc->cap == cs->posted;
}

int tuner_policy_cap(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
                     tuner_decision_t *out, int n, int max) {
    const tuner_cfg_t *cfg = &st->cfg;
    uint32_t ncls = tuner_nclasses(prev, cur);
    uint32_t live = clamp32(gauge0(cur, HAK_G_blocks_live));
    uint64_t inplay = blocks_in_play(st, prev, cur);

    uint32_t nact = 0;
    for (uint32_t c = 0; c < ncls; c++) {
        const hak_shm_class_t *pc = &prev->classes[c], *cc = &cur->classes[c];
        if (cc->size == pc->size && cc->hits + cc->misses > pc->hits + pc->misses) nact++;
    }

    /* 1. what each class wants */
    for (uint32_t c = 0; c < ncls; c++) {
        tuner_class_state_t *cs = &st->cls[c];
        const hak_shm_class_t *pc = &prev->classes[c], *cc = &cur->classes[c];
        if (cs->has_posted && (posted_matches(cs, cc) || ++cs->posted_age > POSTED_MAX_AGE)) cs->has_posted = 0;
        if (cc->size != pc->size) continue;
        uint64_t acc = sub0(cc->hits, pc->hits) + sub0(cc->misses, pc->misses);
        if (acc == 0) {
            if (cs->since_active != NONE32) cs->since_active++;
            /* retire: long without traffic, back to the global cap */
            if (cs->since_active == active_steps(st) && cc->class_cap != HAK_CLASS_CAP_GLOBAL && n < max &&
                !(cs->has_posted && cs->posted == HAK_CLASS_CAP_GLOBAL)) {
                uint64_t all = cc->hits + cc->misses;
                double life = all ? (double)cc->hits / (double)all : 0.0;
                n = tuner_emit(out, n, max, HAK_KNOB_CLASS_CAP, c, cc->cap, HAK_CLASS_CAP_GLOBAL, TUNER_R_DECAY, c,
                               life, life);
                tuner_class_forget(st, c);
                cs->has_posted = 1;
                cs->posted = HAK_CLASS_CAP_GLOBAL;
            }
            continue;
        }
        uint64_t cap_now = cc->cap, cap_then = min64(pc->cap, cap_now);
        epoch_note(cs, (uint32_t)min64(cc->cached_blocks, CAP_HARD_MAX), live, 2 * cfg->decay_hold);
        cs->since_active = 0;
        cs->rate = cs->rate > 0.0 ? 0.8 * cs->rate + 0.2 * (double)acc : (double)acc;
        if (cs->since_decay != NONE32) cs->since_decay++;
        if (cs->since_raise != NONE32) cs->since_raise++;
        if (cs->want == 0) cs->want = (uint32_t)max64(min64(cap_now, cfg->ring_cap_max), cfg->ring_cap_min);

        uint64_t hd[8], dg = 0;
        hist_delta(pc, cc, hd);
        for (int b = 0; b < 8; b++) dg += hd[b];
        uint64_t base = ring_base(pc, cc, cap_then, hd);
        uint64_t evictions = sub0(cc->evictions[HAK_EVICT_RING_FULL] + cc->evictions[HAK_EVICT_CAP_LOWERED] +
                                      cc->evictions[HAK_EVICT_BUDGET],
                                  pc->evictions[HAK_EVICT_RING_FULL] + pc->evictions[HAK_EVICT_CAP_LOWERED] +
                                      pc->evictions[HAK_EVICT_BUDGET]);
        uint64_t kmax = sub0(cfg->ring_cap_max, base);
        uint64_t deficit = min64(smallest_k(hd, kmax, cfg->hit_target), run_depth(hd, kmax, hd[0]));
        run_note(cs, hd, base, deficit);
        uint32_t evict_prev = cs->evict_prev;
        cs->evict_prev = clamp32(evictions);
        if (dg >= GHOST_MIN && dg * 1000 >= acc * GHOST_MIN_PERMILLE) {
            cs->evict_prev = evict_prev;   /* class_demand wants the previous interval's */
            uint64_t need = class_demand(st, cs, cc, hd, base, deficit, evictions);
            cs->evict_prev = clamp32(evictions);
            /* right after a raise the ring may still be filling and the
             * deficits overcount: never beyond the blocks seen in play */
            if (cs->since_raise <= 2 && need > max64(inplay, cs->want)) need = max64(inplay, cs->want);
            cs->quiet = 0;
            cs->slack = 0;
            /* A class the budget holds below its want keeps missing: its
             * want follows the estimate only when it moved by more than 1/8
             * (noise must not ratchet it up, nor shuffle the budget). */
            int limited = cap_now < cs->want;
            uint32_t band = limited ? cs->want / 8 : 0;
            /* Dead band: a small raise (< 2 blocks and 1/8 of the want) waits
             * until SMALL_RAISE_HOLD intervals in a row asked for it, then
             * takes the most they asked; a big one (the first repetition of
             * a pattern) is taken at once. */
            int small = need > cs->want && need - cs->want < max64(2, cs->want / 8);
            if (small && !limited) {
                cs->small_need = (uint32_t)max64(cs->small_need, need);
                if (++cs->small_raises < SMALL_RAISE_HOLD) continue;
                need = cs->small_need;
            }
            cs->small_raises = 0, cs->small_need = 0;
            if (need > (uint64_t)cs->want + band) {
                /* a decay undone soon after: wait longer before the next one */
                if (cs->since_decay != NONE32 && cs->since_decay <= 4 * cs->hold)
                    cs->hold = cs->hold * 2 > HOLD_MAX_FACTOR * cfg->decay_hold ? HOLD_MAX_FACTOR * cfg->decay_hold
                                                                                 : cs->hold * 2;
                cs->want = (uint32_t)need;
                cs->since_decay = NONE32;
                cs->since_raise = 0;
                epoch_clear(cs);
            } else if (limited && need + band < cs->want) {
                cs->want = (uint32_t)max64(need, cap_now);   /* less demand than believed */
            }
            continue;
        }
        cs->small_raises = 0, cs->small_need = 0;
        class_decay(st, cs, pc, cc, live, nact);
    }
    ghost_note(st, cur, ncls);

    /* 2. what the budget gives them */
    uint32_t grant[HAK_SHM_CLASSES];
    fit_budget(st, cur, ncls, grant);

    /* 3. a decision for every class whose cap should move (a class that
     * follows the global cap and wants just what it will be gets none) */
    uint64_t global = max64(cfg->ring_cap_min, min64(cur->knobs.ring_cap, cfg->ring_cap_max));
    for (uint32_t c = 0; c < ncls; c++) {
        tuner_class_state_t *cs = &st->cls[c];
        const hak_shm_class_t *pc = &prev->classes[c], *cc = &cur->classes[c];
        if (!budget_candidate(st, c) || cc->size != pc->size || n >= max) continue;
        uint64_t cap_now = cc->cap, target = grant[c];
        if (target == cap_now || (cs->has_posted && cs->posted == target)) continue;
        if (cc->class_cap == HAK_CLASS_CAP_GLOBAL && !cs->has_posted && target == global) continue;
        uint32_t reason = target > cap_now ? TUNER_R_GHOST_DEMAND : target < cs->want ? TUNER_R_BUDGET : TUNER_R_DECAY;
        if (cap_now > cfg->ring_cap_max || (cap_now < cfg->ring_cap_min && target >= cfg->ring_cap_min))
            reason = TUNER_R_BOUNDS;
        /* predicted ring hit rate of the class under this interval's traffic */
        uint64_t dh = sub0(cc->hits, pc->hits), dm = sub0(cc->misses, pc->misses);
        uint64_t all = dh + dm ? dh + dm : cc->hits + cc->misses;
        double before = all ? (double)(dh + dm ? dh : cc->hits) / (double)all : 0.0, predicted = before;
        uint64_t cap_then = min64(pc->cap, cap_now);
        if (target > cap_then && dh + dm) {
            uint64_t hd[8];
            hist_delta(pc, cc, hd);
            predicted = ((double)dh + tuner_hist_covered(hd, target - cap_then)) / (double)(dh + dm);
            if (predicted > 1.0) predicted = 1.0;
        }
        n = tuner_emit(out, n, max, HAK_KNOB_CLASS_CAP, c, cap_now, target, reason, c, predicted, before);
        cs->has_posted = 1;
        cs->posted = target;
        cs->posted_age = 0;
    }
    return n;
}
