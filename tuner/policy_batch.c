/*
 * tuner/policy_batch.c - the batch threshold rule: how many pending bytes
 * make Batch flush (BATCH_THRESHOLD).
 *
 * Model: one flush costs f_fix (what a bigger batch saves per flush avoided)
 * plus a part proportional to the bytes released.  f_fix is the intercept of
 * ns/flush against MiB/flush over the batch sizes seen (decayed least
 * squares) once they varied enough; before that the user-side work plus one
 * munmap (kernel figures, when published), else the whole time per flush;
 * always scaled by flush_alpha, which the grades correct (policy_grade.c).
 * At threshold th the saveable cost is rate x f_fix / th per second, rate =
 * the bytes handed to Batch and not taken back by a warm rescue; th should be
 * the smallest power of two keeping that under flush_target of one core,
 * bounded by [batch_min, batch_max] and by budget / 16 (pending bytes are
 * memory nobody uses).
 *
 *   raise   at once when the need is over 1.5 x th (dead band), then wait a
 *           grade window before compounding it;
 *   lower   one halving per batch_hold intervals in a row that needed at
 *           most th / 4, that instant and on average (EWMA), with the same
 *           back-off as the cap: a lowering undone by a raise within 16
 *           holds doubles batch_hold;
 *   held    pending bytes that sat with no flush for 4 holds lower it to
 *           what is pending, so they get released.
 * Between th / 4 and 1.5 x th nothing moves: a steady workload stops here.
 *
 *   opening (tuner_opening, when the tuner starts): budget / 4 (a power of
 *           two, at most batch_max).  A first round's frees come before any
 *           interval, and every block its rings cannot keep would be
 *           unmapped at once, so the next round - the first repetition -
 *           would map and fault all of them again.  Held pending, they are
 *           taken back warm by its misses (measured: 100 x 2 MiB rounds,
 *           the second round 39 ms -> 1.1 ms), and the cap rule has seen
 *           the demand by the round after.  Pending bytes are bounded by it;
 *           the held rule, the cheap-flush halvings and the idle trim give
 *           them back.
 * Predictions are in flush ns per MiB released: c - s + s x th_old / th_new,
 * with s = f_fix x MiB / th_old the saveable part now.
 */
#include <stdint.h>

#include "policy_internal.h"

#define RAISE_MARGIN 1.5   /* raise only when the need exceeds the threshold by this factor */

static uint64_t pow2_ceil(uint64_t v) {
    if (v <= 1) return 1;
    if (v > ((uint64_t)1 << 62)) return (uint64_t)1 << 63;
    return (uint64_t)1 << (64 - __builtin_clzll(v - 1));
}
static uint64_t pow2_floor(uint64_t v) { return v ? (uint64_t)1 << (63 - __builtin_clzll(v)) : 0; }

int tuner_opening(uint64_t budget, uint64_t threshold, tuner_decision_t *out) {
    uint64_t v = pow2_floor(min64(budget / 4, BATCH_HARD_MAX));
    if (v <= threshold) return 0;
    return tuner_emit(out, 0, 1, HAK_KNOB_BATCH_THRESHOLD, NONE32, threshold, v, TUNER_R_OPENING, NONE32, 0.0, 0.0);
}

int tuner_policy_batch(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur, tuner_decision_t *out,
                       int n, int max) {
    const tuner_cfg_t *cfg = &st->cfg;
    const double MiB = 1048576.0;
    uint64_t th = cur->knobs.batch_threshold;
    const uint64_t *pc = prev->counter, *cc = cur->counter;
    uint64_t F = sub0(cc[HAK_C_batch_flushes], pc[HAK_C_batch_flushes]);
    uint64_t T = sub0(cc[HAK_C_batch_flush_ns], pc[HAK_C_batch_flush_ns]);
    /* bytes handed to Batch that a warm rescue did not take back */
    uint64_t Y = sub0(sub0(cc[HAK_C_batch_add_bytes], pc[HAK_C_batch_add_bytes]),
                      sub0(cc[HAK_C_warm_rescued_bytes], pc[HAK_C_warm_rescued_bytes]));
    uint64_t Yf = sub0(cc[HAK_C_batch_bytes_flushed], pc[HAK_C_batch_bytes_flushed]);
    double dt = (double)(cur->taken_ns - prev->taken_ns);
    uint64_t pending = gauge0(cur, HAK_G_bytes_pending);

    if (st->posted_batch && (th == st->posted_batch || ++st->posted_batch_age > POSTED_MAX_AGE)) st->posted_batch = 0;

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
            n = tuner_emit(out, n, max, HAK_KNOB_BATCH_THRESHOLD, NONE32, th, v, TUNER_R_BOUNDS, NONE32, PREDICT(v), c_now);
            st->posted_batch = v, st->posted_batch_age = 0;
        }
        return n;
    }

    uint64_t hold_max = max64(cfg->batch_min, min64(cfg->batch_max, tuner_budget_of(st, cur) / 16));
    if (Y > 0 && F > 0 && st->flush_ns_per_mib > 0.0) {
        double rate = (double)Y / dt;                        /* bytes per ns */
        double need = rate * f_fix / cfg->flush_target;      /* bytes */
        uint64_t cand = need >= (double)((uint64_t)1 << 62) ? (uint64_t)1 << 62 : pow2_ceil((uint64_t)need);
        cand = max64(cfg->batch_min, min64(cand, hold_max));
        st->need_avg = st->need_avg > 0.0 ? 0.75 * st->need_avg + 0.25 * need : need;
        if (cand > th && th < hold_max && need > RAISE_MARGIN * (double)th) {
            /* measure one raise (grade window) before compounding it */
            if (st->batch_since_raise < cfg->grade_intervals) return n;
            /* a lowering undone soon after: lower more reluctantly */
            if (st->batch_since_lower != NONE32 && st->batch_since_lower <= 16 * st->batch_hold)
                st->batch_hold = st->batch_hold * 2 > HOLD_MAX_FACTOR * cfg->decay_hold
                                     ? HOLD_MAX_FACTOR * cfg->decay_hold : st->batch_hold * 2;
            st->batch_since_lower = NONE32;
            if (cand != st->posted_batch) {
                n = tuner_emit(out, n, max, HAK_KNOB_BATCH_THRESHOLD, NONE32, th, cand, TUNER_R_FLUSH_COST, NONE32, PREDICT(cand),
                         c_now);
                st->posted_batch = cand, st->posted_batch_age = 0;
                st->batch_since_raise = 0;
            }
            st->batch_agree = 0;
            return n;
        }
        if (cand * 4 <= th && st->need_avg * 4.0 <= (double)th) {
            /* one halving per batch_hold intervals in a row that asked for
             * at most a quarter of the threshold (and did so on average) */
            uint64_t half = max64(th / 2, cand);
            if (++st->batch_agree >= st->batch_hold && half != st->posted_batch) {
                n = tuner_emit(out, n, max, HAK_KNOB_BATCH_THRESHOLD, NONE32, th, half, TUNER_R_FLUSH_CHEAP, NONE32, PREDICT(half),
                         c_now);
                st->posted_batch = half, st->posted_batch_age = 0;
                st->batch_since_lower = 0;
                st->batch_agree = 0;
            }
            return n;
        }
        st->batch_agree = 0;
    }
    if (st->no_flush >= 4 * st->batch_hold && pending > 0 && th > cfg->batch_min) {
        uint64_t v = max64(cfg->batch_min, pow2_floor(pending));
        if (v < th && v != st->posted_batch) {
            n = tuner_emit(out, n, max, HAK_KNOB_BATCH_THRESHOLD, NONE32, th, v, TUNER_R_PENDING_HELD, NONE32, PREDICT(v), c_now);
            st->posted_batch = v, st->posted_batch_age = 0;
            st->batch_since_lower = 0;
        }
        st->no_flush = 0;
    }
#undef PREDICT
    return n;
}
