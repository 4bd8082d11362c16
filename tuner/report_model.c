/*
 * tuner/report_model.c - hakmem-report: the figures of one run.
 *
 * Counting.  Counters in the DB are the process's totals at each sample.  A
 * run recorded in-process (HAKMEM_HISTORY) starts with the process, so its
 * figures count from 0 (a virtual first sample with the knobs at start); a run
 * recorded by hakmem-tuner counts from its first sample.  Each interval is the
 * span between two consecutive samples.
 *
 * Offline recommendation (a static configuration for HAKMEM_MODE=fixed).
 *   Ring cap.  For every size class and every interval with traffic the DB
 *   holds hits, misses, the ghost misses (misses a bigger ring would have hit),
 *   their reuse histogram and the cap in force.  For a static cap C:
 *     C >= cap in force: hits + tuner_hist_covered(histogram, C - cap) - the
 *       policy's own prediction primitive, exact for runs of equal length -
 *       and every ghost miss once C reaches the blocks the class had in play
 *       (max of its ring occupancy and cap + ghost depth, bounded by the
 *       mapped high-water mark / block size);
 *     C <  cap in force: the hits of the interval are spread evenly over the
 *       ring depth the class used (its occupancy swing, seen at up to 6
 *       samples around the interval and widened by (n+1)/(n-1) for the swing
 *       the samples missed; the whole cap when ghost misses show the ring was
 *       short), and those deeper than C are lost.
 *   The recommended cap is the smallest whose predicted hit rate is within
 *   hit_slack (0.2 points) of the best predicted over caps 0..512, lowered
 *   until the rings fit the run's cache budget.  Memory cost: each class holds
 *   at most min(C, the blocks it was seen to keep in play) blocks.
 *   Batch threshold.  The tuner's own rule (tuner/policy_batch.c), replayed
 *   over the recorded intervals with large-block activity: its estimator of
 *   the per-flush cost a bigger batch saves (the intercept of time per flush
 *   against MiB per flush once batch sizes varied, else user time + one munmap
 *   from the eBPF kernel figures, else the mean time per flush; EWMA), and its
 *   need, rate x that cost / 0.5% of one core, rounded up to a power of two
 *   within [64 KiB, min(1 GiB, budget / 16)].  A static threshold takes the
 *   highest need of the run (the busiest interval: where the tuner raises),
 *   counting the bytes the program's own evictions hand to Batch (not a
 *   tuner's idle trims and cap reductions).  So the report recommends what the
 *   tuner did: 4M -> 64M in the demo is HAKMEM_BATCH_THRESHOLD=64M here.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_internal.h"   /* tuner_policy_batch: the recommendation replays the tuner's rule */
#include "report.h"
#include "../tools/units.h"

#define CAP_MAX 512u

/* One class in one interval with traffic. */
typedef struct rp_cint {
    uint32_t k;                 /* index into rp_pred.cls */
    uint64_t dh, dm, dg, hist[8], cap;
    double S;                   /* ring depth in use (for caps below the one in force) */
} rp_cint_t;

struct rp_pred {
    int ncls;
    uint32_t cls[HAK_SHM_CLASSES];
    uint64_t size[HAK_SHM_CLASSES], W[HAK_SHM_CLASSES], hits[HAK_SHM_CLASSES], acc[HAK_SHM_CLASSES];
    uint64_t g_hits, g_acc;
    int has_hist;
    size_t n;
    rp_cint_t ci[];
};

static const rp_sample_t *base_sample(const rp_run_t *r, rp_sample_t *zero) {
    if (r->nsamples == 0) return NULL;
    if (strcmp(r->source, "in-process") == 0) {
        memset(zero, 0, sizeof *zero);
        zero->time_ns = r->start_ns;
        zero->ring_cap = r->ring_cap;
        zero->batch_threshold = r->batch_threshold;
        zero->cache_max_bytes = r->cache_max_bytes;
        return zero;
    }
    return &r->samples[0];
}

static double secs(const rp_run_t *r, uint64_t t) { return ((double)t - (double)r->start_ns) / 1e9; }

static void build_intervals(rp_run_t *r, const rp_sample_t *base) {
    r->nint = 0;
    if (base == NULL) return;
    r->ints = calloc((size_t)r->nsamples, sizeof *r->ints);
    if (r->ints == NULL) return;
    const rp_sample_t *p = base;
    for (int i = (base == &r->samples[0]) ? 1 : 0; i < r->nsamples; i++) {
        const rp_sample_t *s = &r->samples[i];
        rp_interval_t *v = &r->ints[r->nint++];
        v->t0 = secs(r, p->time_ns);
        v->t1 = secs(r, s->time_ns);
        double dt = v->t1 - v->t0;
        v->ring_cap = s->ring_cap;
        v->batch_threshold = s->batch_threshold;
        v->hits = sub0(s->c[HAK_C_cache_hits], p->c[HAK_C_cache_hits]);
        v->accesses = v->hits + sub0(s->c[HAK_C_cache_misses], p->c[HAK_C_cache_misses]);
        v->hit_rate = v->accesses ? (double)v->hits / (double)v->accesses : NAN;
        for (int e = 0; e < HAK_EVICT_NREASONS; e++)
            v->evictions += sub0(s->c[HAK_C_evict_ring_full + e], p->c[HAK_C_evict_ring_full + e]);
        v->flushes = sub0(s->c[HAK_C_batch_flushes], p->c[HAK_C_batch_flushes]);
        v->evict_per_s = dt > 0 ? (double)v->evictions / dt : 0;
        v->flush_per_s = dt > 0 ? (double)v->flushes / dt : 0;
        v->cached = s->g[HAK_G_bytes_cached];
        v->pending = s->g[HAK_G_bytes_pending];
        v->live = s->g[HAK_G_bytes_live];
        v->mapped = s->g[HAK_G_bytes_mapped];
        v->active = v->accesses > 0 || s->c[HAK_C_large_allocs] + s->c[HAK_C_large_frees] !=
                                            p->c[HAK_C_large_allocs] + p->c[HAK_C_large_frees];
        p = s;
    }
}

static void summarize(rp_run_t *r, const rp_sample_t *base) {
    rp_summary_t *m = &r->sum;
    memset(m, 0, sizeof *m);
    m->nsamples = r->nsamples;
    m->in_progress = r->end_ns == 0;
    m->hit_rate = NAN;
    m->confirmed_share = NAN;
    m->idle_held = -1;
    m->start_cap = r->ring_cap;
    m->start_threshold = r->batch_threshold;
    m->end_cap = r->ring_cap;
    m->end_threshold = r->batch_threshold;
    uint64_t end = r->end_ns ? r->end_ns : (r->nsamples ? r->samples[r->nsamples - 1].time_ns : r->start_ns);
    m->duration_s = end > r->start_ns ? (double)(end - r->start_ns) / 1e9 : 0.0;
    m->decisions_per_min = m->duration_s > 0 ? (double)r->ndecisions * 60.0 / m->duration_s : NAN;
    for (int i = 0; i < r->ndecisions; i++) {
        m->ndecisions++;
        int k = rp_knob_index(r->decisions[i].knob);
        if (k >= 0) m->ndec_knob[k]++;
        switch (r->decisions[i].grade) {
        case 1: m->confirmed++; break;
        case 2: m->refuted++; break;
        case 3: m->inconclusive++; break;
        default: m->ungraded++; break;
        }
    }
    if (m->confirmed + m->refuted) m->confirmed_share = (double)m->confirmed / (double)(m->confirmed + m->refuted);
    if (base == NULL) return;
    m->zero_base = base != &r->samples[0];
    const rp_sample_t *l = &r->samples[r->nsamples - 1];
    m->hits = sub0(l->c[HAK_C_cache_hits], base->c[HAK_C_cache_hits]);
    m->misses = sub0(l->c[HAK_C_cache_misses], base->c[HAK_C_cache_misses]);
    m->accesses = m->hits + m->misses;
    if (m->accesses) m->hit_rate = (double)m->hits / (double)m->accesses;
    for (int e = 0; e < HAK_EVICT_NREASONS; e++) {
        m->evict[e] = sub0(l->c[HAK_C_evict_ring_full + e], base->c[HAK_C_evict_ring_full + e]);
        m->evictions += m->evict[e];
    }
    m->flushes = sub0(l->c[HAK_C_batch_flushes], base->c[HAK_C_batch_flushes]);
    m->bytes_released = sub0(l->c[HAK_C_batch_bytes_flushed], base->c[HAK_C_batch_bytes_flushed]);
    m->munmap_calls = sub0(l->c[HAK_C_munmap_calls], base->c[HAK_C_munmap_calls]);
    m->flush_ns = sub0(l->c[HAK_C_batch_flush_ns], base->c[HAK_C_batch_flush_ns]);
    m->ranges = sub0(l->c[HAK_C_batch_ranges_flushed], base->c[HAK_C_batch_ranges_flushed]);
    m->min_cap = UINT64_MAX;
    for (int i = 0; i < r->nsamples; i++) {
        const rp_sample_t *s = &r->samples[i];
        if (s->peak_bytes_mapped > m->peak_mapped) m->peak_mapped = s->peak_bytes_mapped;
        int64_t held = s->g[HAK_G_bytes_cached] + s->g[HAK_G_bytes_pending];
        if (held > m->peak_held) m->peak_held = held;
        if (s->ring_cap < m->min_cap) m->min_cap = s->ring_cap;
        if (s->ring_cap > m->max_cap) m->max_cap = s->ring_cap;
        if (s->k_updated_ns) m->kernel = 1;
    }
    m->end_cap = l->ring_cap;
    m->end_threshold = l->batch_threshold;
    m->end_held = l->g[HAK_G_bytes_cached] + l->g[HAK_G_bytes_pending];
    m->end_mapped = l->g[HAK_G_bytes_mapped];
    if (m->kernel) {
        m->k_munmap_calls = sub0(l->k_munmap_calls, base->k_munmap_calls);
        m->k_munmap_ns = sub0(l->k_munmap_ns_total, base->k_munmap_ns_total);
    }
    for (int i = 0; i < r->nint; i++) {
        const rp_interval_t *v = &r->ints[i];
        if (v->active) {
            m->active_s += v->t1 - v->t0;
        } else {
            m->idle_held = v->cached + v->pending;
            m->idle_at_s = v->t1;
        }
    }
}

/* Smallest k whose coverage reaches the full coverage of hist. */
static uint64_t full_k(const uint64_t hist[8]) {
    double all = tuner_hist_covered(hist, CAP_MAX);
    if (all <= 0.0) return 0;
    uint64_t lo = 0, hi = CAP_MAX;   /* covered() is non-decreasing in k */
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (tuner_hist_covered(hist, mid) >= all - 1e-9) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static int class_index(struct rp_pred *p, const rp_class_t *c) {
    for (int k = 0; k < p->ncls; k++)
        if (p->cls[k] == c->cls) return k;
    if (p->ncls == (int)HAK_SHM_CLASSES) return -1;
    p->cls[p->ncls] = c->cls;
    p->size[p->ncls] = c->size;
    return p->ncls++;
}

static void build_pred(rp_run_t *r, const rp_sample_t *base) {
    if (base == NULL || r->nint == 0) return;
    size_t cap_n = 0;
    for (int i = 0; i < r->nsamples; i++) cap_n += r->samples[i].ncls;
    struct rp_pred *p = calloc(1, sizeof *p + (cap_n + 1) * sizeof(rp_cint_t));
    if (p == NULL) return;
    r->pred = p;
    p->g_hits = r->sum.hits;
    p->g_acc = r->sum.accesses;
    /* per interval: the class's figures; keep the sample index of both ends for the swing */
    int *t_of = calloc(cap_n + 1, sizeof *t_of);
    char *steady = calloc(cap_n + 1, 1);
    int last[HAK_SHM_CLASSES], last_t[HAK_SHM_CLASSES];
    for (unsigned k = 0; k < HAK_SHM_CLASSES; k++) last[k] = -1, last_t[k] = -100;
    uint64_t *c_start = calloc(cap_n + 1, sizeof *c_start), *c_end = calloc(cap_n + 1, sizeof *c_end);
    if (t_of == NULL || c_start == NULL || c_end == NULL || steady == NULL) {
        free(t_of), free(c_start), free(c_end), free(steady);
        free(p);
        r->pred = NULL;
        return;
    }
    uint64_t peak = 0;
    for (int i = 0; i < r->nsamples; i++)
        if (r->samples[i].peak_bytes_mapped > peak) peak = r->samples[i].peak_bytes_mapped;
    static const rp_class_t zero;
    const rp_sample_t *prev = base;
    int t = 0;
    for (int i = (base == &r->samples[0]) ? 1 : 0; i < r->nsamples; i++, t++) {
        const rp_sample_t *s = &r->samples[i];
        const rp_class_t *prow[HAK_SHM_CLASSES] = {0};
        for (uint32_t j = 0; j < prev->ncls; j++) prow[prev->cls[j].cls] = &prev->cls[j];
        for (uint32_t j = 0; j < s->ncls; j++) {
            const rp_class_t *c = &s->cls[j], *q = prow[c->cls];
            if (q == NULL) q = &zero;
            int k = class_index(p, c);
            if (k < 0) continue;
            if (c->cached > p->W[k]) p->W[k] = c->cached;
            for (int b = 0; b < 8; b++)
                if (c->h[b]) p->has_hist = 1;
            uint64_t dh = sub0(c->hits, q->hits), dm = sub0(c->misses, q->misses);
            if (dh + dm == 0) continue;
            uint64_t hist[8], hsum = 0;
            for (int b = 0; b < 8; b++) hist[b] = sub0(c->h[b], q->h[b]), hsum += hist[b];
            p->hits[k] += dh;
            p->acc[k] += dh + dm;
            /* A histogram without deficit-1 misses only continues runs of ghost
             * misses that began in the previous interval: join the two, so the
             * runs are whole again (the coverage layout assumes whole runs). */
            if (last[k] >= 0 && hist[0] == 0 && hsum > 0 && last_t[k] == t - 1 && p->ci[last[k]].cap == c->cap) {
                rp_cint_t *e = &p->ci[last[k]];
                e->dh += dh, e->dm += dm, e->dg += sub0(c->ghost, q->ghost);
                for (int b = 0; b < 8; b++) e->hist[b] += hist[b];
                c_end[last[k]] = c->cached;
                last_t[k] = t;
                continue;
            }
            rp_cint_t *e = &p->ci[p->n];
            e->k = (uint32_t)k;
            e->dh = dh, e->dm = dm, e->dg = sub0(c->ghost, q->ghost);
            memcpy(e->hist, hist, sizeof hist);
            e->cap = c->cap;
            t_of[p->n] = t;
            steady[p->n] = q != &zero && q->cap == c->cap;
            c_start[p->n] = q->cached;
            c_end[p->n] = c->cached;
            last[k] = (int)p->n, last_t[k] = t;
            p->n++;
        }
        prev = s;
    }
    /* Ghost demand: a ring of cap + fk slots would have hit every ghost miss.
     * Taken from intervals whose cap was already in force before them (right
     * after a raise, deficits may count from a ring that was still filling),
     * and bounded by the blocks of this size the mapped high-water mark could
     * hold (the histogram's last bucket is wide). */
    uint64_t w_any[HAK_SHM_CLASSES] = {0}, w_steady[HAK_SHM_CLASSES] = {0};
    for (size_t n = 0; n < p->n; n++) {
        const rp_cint_t *e = &p->ci[n];
        uint64_t fk = full_k(e->hist);
        if (fk == 0) continue;
        uint64_t want = e->cap + fk, size = p->size[e->k];
        if (size && want > peak / size) want = peak / size;
        if (want > w_any[e->k]) w_any[e->k] = want;
        if (steady[n] && want > w_steady[e->k]) w_steady[e->k] = want;
    }
    for (int k = 0; k < p->ncls; k++) {
        uint64_t w = w_steady[k] ? w_steady[k] : w_any[k];
        if (w > p->W[k]) p->W[k] = w;
    }
    /* ring depth in use per class interval (for caps below the one in force) */
    for (size_t n = 0; n < p->n; n++) {
        rp_cint_t *e = &p->ci[n];
        double W = p->W[e->k] ? (double)p->W[e->k] : 1.0, top = (double)e->cap < W ? (double)e->cap : W;
        if (top < 1.0) top = 1.0;
        if (e->dg > 0) {
            e->S = (double)e->cap > 1.0 ? (double)e->cap : 1.0;
            continue;
        }
        /* occupancy at the ends of this class's active intervals t-2 .. t+2 */
        uint64_t lo = UINT64_MAX, hi = 0;
        int pts = 0, prev_t = -100;
        size_t m0 = n;   /* entries are in interval order */
        while (m0 > 0 && t_of[m0 - 1] >= t_of[n] - 2) m0--;
        for (size_t m = m0; m < p->n && t_of[m] <= t_of[n] + 2; m++) {
            if (p->ci[m].k != e->k) continue;
            if (t_of[m] != prev_t + 1) {   /* a start point not shared with the previous interval */
                pts++;
                if (c_start[m] < lo) lo = c_start[m];
                if (c_start[m] > hi) hi = c_start[m];
            }
            pts++;
            if (c_end[m] < lo) lo = c_end[m];
            if (c_end[m] > hi) hi = c_end[m];
            prev_t = t_of[m];
        }
        double S = pts >= 2 ? (double)(hi - lo) * (pts + 1) / (pts - 1) : top;
        if (S < 1.0) S = 1.0;
        if (S > top) S = top;
        e->S = S;
    }
    free(t_of), free(c_start), free(c_end), free(steady);
}

static double class_hits_at(const struct rp_pred *p, uint32_t k, uint64_t C) {
    double h = 0.0;
    for (size_t n = 0; n < p->n; n++) {
        const rp_cint_t *e = &p->ci[n];
        if (e->k != k) continue;
        if (C >= e->cap) {
            /* a ring as deep as the blocks the class ever had in play hits
             * every ghost miss; below that, the histogram says how many */
            double all = 0.0;
            for (int b = 0; b < 8; b++) all += (double)e->hist[b];
            if (all == 0.0) all = (double)e->dg;
            double cov = C >= p->W[k] ? all : tuner_hist_covered(e->hist, C - e->cap);
            if (cov > all) cov = all;
            h += (double)e->dh + (cov < (double)e->dm ? cov : (double)e->dm);
        } else {
            h += (double)e->dh * ((double)C >= e->S ? 1.0 : (double)C / e->S);
        }
    }
    return h;
}

static double cache_bytes_at(const struct rp_pred *p, uint64_t C) {
    double b = 0.0;
    for (int k = 0; k < p->ncls; k++) b += (double)p->size[k] * (double)(C < p->W[k] ? C : p->W[k]);
    return b;
}

double rp_predict_hit_rate(const rp_run_t *r, uint64_t cap, double *cache_bytes) {
    const struct rp_pred *p = r->pred;
    if (cache_bytes) *cache_bytes = p ? cache_bytes_at(p, cap) : 0.0;
    if (p == NULL || p->g_acc == 0) return NAN;
    double hits = (double)p->g_hits;
    for (int k = 0; k < p->ncls; k++) hits += class_hits_at(p, (uint32_t)k, cap) - (double)p->hits[k];
    double v = hits / (double)p->g_acc;
    return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

static uint64_t pow2_ceil(double v) {
    uint64_t x = 1;
    while ((double)x < v && x < ((uint64_t)1 << 62)) x <<= 1;
    return x;
}

static int cmp_class_size(const void *a, const void *b) {
    const rp_class_reco_t *x = a, *y = b;
    return x->size < y->size ? -1 : x->size > y->size ? 1 : (x->cls > y->cls) - (x->cls < y->cls);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A recorded sample as the snapshot the tuner would have read (the fields the
 * batch rule uses): counters, gauges, the knobs in force, the kernel figures. */
static void sample_snapshot(const rp_run_t *r, const rp_sample_t *s, uint64_t budget, hak_snapshot_t *o) {
    memset(o, 0, sizeof *o);
    o->pid = (uint32_t)r->pid;
    o->start_ns = r->start_ns;
    memcpy(o->counter, s->c, sizeof o->counter);
    memcpy(o->gauge, s->g, sizeof o->gauge);
    o->knobs.ring_cap = s->ring_cap;
    o->knobs.batch_threshold = s->batch_threshold;
    o->knobs.cache_max_bytes = s->cache_max_bytes ? s->cache_max_bytes : budget;
    o->knobs.tune_interval_ms = r->tune_interval_ms;
    o->knobs.idle_ms = r->idle_ms;
    o->kernel.updated_ns = s->k_updated_ns;
    o->kernel.munmap_calls = s->k_munmap_calls;
    o->kernel.munmap_bytes = s->k_munmap_bytes;
    o->kernel.munmap_ns_total = s->k_munmap_ns_total;
    o->taken_ns = s->time_ns;
}

/* The batch threshold: the tuner's own rule (policy_batch.c) replayed over the
 * recorded samples.  Its estimator of the per-flush cost a bigger batch saves
 * (regression intercept / kernel figures / mean, EWMA) runs on each interval
 * with large-block activity, exactly as in tuner_step, and the same need
 * follows: rate x f_fix / flush_target, to a power of two in [batch_min,
 * min(batch_max, budget / 16)].  A static threshold cannot follow the phases,
 * so it is the highest need of the run: the threshold the tuner raises to
 * (at once) in the busiest interval.  Two differences, both of a static
 * configuration: the bytes of idle trims and cap reductions (a tuner's) are
 * not counted, and the grades that correct flush_alpha are not replayed (they
 * judged the thresholds then in force, not these). */
static void recommend_threshold(rp_run_t *r, const rp_sample_t *base) {
    rp_reco_t *o = &r->reco;
    tuner_cfg_t cfg;
    tuner_cfg_default(&cfg, NULL);
    cfg.cache_max_bytes = o->budget;
    if (r->tune_interval_ms) cfg.interval_ms = r->tune_interval_ms;
    if (r->idle_ms) cfg.idle_ms = r->idle_ms;
    tuner_state_t *st = calloc(1, sizeof *st);
    hak_snapshot_t *ps = calloc(2, sizeof *ps);
    uint64_t hold_max = o->budget / 16 < cfg.batch_max ? o->budget / 16 : cfg.batch_max;
    if (hold_max < cfg.batch_min) hold_max = cfg.batch_min;
    uint64_t F = 0, T = 0, Yall = 0;
    double need_max = 0.0, rate_max = 0.0, f_at_max = 0.0, active_ns = 0.0;
    int nint = 0, nneed = 0;
    if (st && ps && base) {
        tuner_init(st, &cfg);
        st->pid = (uint32_t)r->pid;
        hak_snapshot_t *prev = &ps[0], *cur = &ps[1];
        sample_snapshot(r, base, o->budget, prev);
        tuner_decision_t out[4];
        for (int i = base == &r->samples[0] ? 1 : 0; i < r->nsamples; i++) {
            sample_snapshot(r, &r->samples[i], o->budget, cur);
            const uint64_t *pc = prev->counter, *cc = cur->counter;
            uint64_t f = sub0(cc[HAK_C_batch_flushes], pc[HAK_C_batch_flushes]);
            uint64_t tn = sub0(cc[HAK_C_batch_flush_ns], pc[HAK_C_batch_flush_ns]);
            F += f, T += tn;
            int active = cur->taken_ns > prev->taken_ns &&
                         cc[HAK_C_large_allocs] + cc[HAK_C_large_frees] != pc[HAK_C_large_allocs] + pc[HAK_C_large_frees];
            if (active) {
                double dt = (double)(cur->taken_ns - prev->taken_ns);
                active_ns += dt;
                nint++;
                tuner_policy_batch(st, prev, cur, out, 0, 4);   /* the estimator's state; its decisions are the tuner's */
                /* bytes handed to Batch that a static configuration hands too */
                uint64_t add = sub0(sub0(cc[HAK_C_batch_add_bytes], pc[HAK_C_batch_add_bytes]),
                                    sub0(cc[HAK_C_warm_rescued_bytes], pc[HAK_C_warm_rescued_bytes]));
                uint64_t adds = sub0(cc[HAK_C_batch_adds], pc[HAK_C_batch_adds]);
                uint64_t tuner = sub0(cc[HAK_C_evict_idle_trim], pc[HAK_C_evict_idle_trim]) +
                                 sub0(cc[HAK_C_evict_cap_lowered], pc[HAK_C_evict_cap_lowered]);
                double y = adds ? (double)add * (double)sub0(adds, tuner) / (double)adds : (double)add;
                Yall += (uint64_t)y;
                double f_fix = st->flush_alpha * st->flush_fixed_ns;
                if (y > 0 && F > 0 && st->flush_ns_per_mib > 0.0) {
                    double rate = y / dt;   /* bytes per ns, as in the policy */
                    double need = rate * f_fix / cfg.flush_target;
                    nneed++;
                    if (need > need_max || nneed == 1) need_max = need, rate_max = rate * 1e9, f_at_max = f_fix;
                }
            }
            hak_snapshot_t *t = prev;
            prev = cur, cur = t;
        }
    }
    o->flush_ns_recorded = (double)T;
    o->active_s = active_ns / 1e9;
    if (F == 0 || T == 0 || st == NULL || ps == NULL || nneed == 0) {
        o->have_flush = 0;
        o->batch_threshold = r->sum.end_threshold ? r->sum.end_threshold : ((uint64_t)4 << 20);
        snprintf(o->threshold_basis, sizeof o->threshold_basis,
                 F == 0 || T == 0 ? "no flush recorded: the threshold had no measured cost; keeping the one in force"
                                  : "no interval with both flushes and bytes to release; keeping the one in force");
        free(st), free(ps);
        return;
    }
    o->have_flush = 1;
    char fb[32], rb[32];
    uint64_t th = need_max >= (double)((uint64_t)1 << 62) ? (uint64_t)1 << 62 : pow2_ceil(need_max);
    if (th < cfg.batch_min) th = cfg.batch_min;
    if (th > hold_max) th = hold_max;
    o->batch_threshold = th;
    o->flush_fixed_ns = st->flush_alpha * st->flush_fixed_ns;
    o->release_rate = o->active_s > 0 ? (double)Yall / o->active_s : 0.0;
    o->peak_release_rate = rate_max;
    /* predicted: the saveable part of the flush cost at th, on average and in the busiest interval */
    o->flush_core_share = o->release_rate / (double)th * o->flush_fixed_ns / 1e9;
    o->peak_core_share = rate_max / (double)th * f_at_max / 1e9;
    o->recorded_core_share = active_ns > 0 ? (double)T / active_ns : 0.0;
    snprintf(o->threshold_basis, sizeof o->threshold_basis,
             "the tuner's batch rule (policy_batch.c) over %d active intervals: per-flush cost %s (%s), "
             "busiest interval %s to release",
             nint, hak_fmt_duration(fb, sizeof fb, o->flush_fixed_ns / 1e9),
             st->reg_w >= 1.9 ? "intercept of time per flush against MiB per flush"
             : r->sum.kernel   ? "user time + one munmap, or time per flush"
                               : "time per flush",
             hak_fmt_rate(rb, sizeof rb, rate_max));
    if (need_max > (double)hold_max) {
        size_t l = strlen(o->threshold_basis);
        snprintf(o->threshold_basis + l, sizeof o->threshold_basis - l, "; capped at %s (budget / 16: pending bytes are memory nobody uses)",
                 rp_size_arg(rb, sizeof rb, hold_max));
    }
    free(st), free(ps);
}

/* Batch grades by the tuner's stated tolerance (tuner_grade_flush), so a
 * history recorded by an older tuner (which confirmed 3.5 us/MiB against a
 * predicted 1.4) reads the same as a new one. */
static void regrade(rp_run_t *r) {
    for (int i = 0; i < r->ndecisions; i++) {
        rp_decision_t *d = &r->decisions[i];
        if (strcmp(d->knob, "batch_threshold") != 0 || (d->grade != 1 && d->grade != 2)) continue;
        if (isnan(d->predicted) || isnan(d->observed)) continue;
        d->grade = tuner_grade_flush(d->predicted, d->observed);
    }
}

void rp_model_run(rp_run_t *r, const rp_opts_t *opt) {
    rp_sample_t zero;
    regrade(r);
    const rp_sample_t *base = base_sample(r, &zero);
    free(r->ints);
    r->ints = NULL;
    free(r->pred);
    r->pred = NULL;
    build_intervals(r, base);
    summarize(r, base);
    rp_reco_t *o = &r->reco;
    memset(o, 0, sizeof *o);
    o->budget = r->cache_max_bytes;
    if (r->nsamples && r->samples[r->nsamples - 1].cache_max_bytes)
        o->budget = r->samples[r->nsamples - 1].cache_max_bytes;
    o->recorded_hit_rate = r->sum.hit_rate;
    o->hit_rate = NAN, o->best_hit_rate = NAN;
    build_pred(r, base);
    struct rp_pred *p = r->pred;
    if (p && p->g_acc > 0 && p->n > 0) {
        o->have_cap = 1;
        o->have_hist = p->has_hist;
        double hr[CAP_MAX + 1], best = -1.0;
        for (uint64_t C = 0; C <= CAP_MAX; C++) {
            hr[C] = rp_predict_hit_rate(r, C, NULL);
            if (hr[C] > best) best = hr[C];
        }
        double slack = opt && opt->hit_slack > 0 ? opt->hit_slack : 0.002;
        uint64_t C = 0;
        while (C < CAP_MAX && hr[C] < best - slack) C++;
        while (C > 0 && cache_bytes_at(p, C) > (double)o->budget) C--, o->budget_limited = 1;
        o->ring_cap = C;
        o->best_hit_rate = best;
        o->hit_rate = hr[C];
        o->cache_bytes = cache_bytes_at(p, C);
        /* what-if table */
        uint64_t caps[32];
        int nc = 0;
        static const uint64_t std_caps[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
        for (size_t i = 0; i < sizeof std_caps / sizeof std_caps[0]; i++) caps[nc++] = std_caps[i];
        caps[nc++] = r->sum.start_cap > CAP_MAX ? CAP_MAX : r->sum.start_cap;
        caps[nc++] = r->sum.end_cap > CAP_MAX ? CAP_MAX : r->sum.end_cap;
        caps[nc++] = C;
        qsort(caps, (size_t)nc, sizeof caps[0], cmp_u64);
        for (int i = 0; i < nc; i++) {
            if (o->nwhatif && o->whatif[o->nwhatif - 1].cap == caps[i]) continue;
            rp_whatif_t *w = &o->whatif[o->nwhatif++];
            w->cap = caps[i];
            w->hit_rate = hr[caps[i]];
            w->cache_bytes = cache_bytes_at(p, caps[i]);
        }
        for (int k = 0; k < p->ncls; k++) {
            rp_class_reco_t *c = &o->cls[o->nclass++];
            c->cls = p->cls[k];
            c->size = p->size[k];
            c->accesses = p->acc[k];
            c->hits = p->hits[k];
            c->depth = p->W[k];
            c->hit_rate_at_reco = p->acc[k] ? class_hits_at(p, (uint32_t)k, C) / (double)p->acc[k] : NAN;
        }
        /* the per-class tables read by size */
        qsort(o->cls, (size_t)o->nclass, sizeof o->cls[0], cmp_class_size);
    } else {
        o->ring_cap = r->sum.end_cap;
    }
    recommend_threshold(r, base);
    o->memory_bytes = o->cache_bytes + (double)o->batch_threshold;
    char th[32];
    const char *lib = opt && opt->lib ? opt->lib : "libhakmem.so";
    snprintf(o->command, sizeof o->command, "HAKMEM_MODE=fixed HAKMEM_RING_CAP=%" PRIu64
             " HAKMEM_BATCH_THRESHOLD=%s LD_PRELOAD=%s %s",
             o->ring_cap, rp_size_arg(th, sizeof th, o->batch_threshold), lib,
             r->command[0] ? r->command : "<program>");
}
