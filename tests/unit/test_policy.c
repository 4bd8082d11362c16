/*
 * test_policy.c - the tuner policy (tuner/policy*.c) on deterministic,
 * hand-made snapshot sequences.
 *
 * A small simulator reproduces BigCache's ring and ghost accounting as
 * src/bigcache.c does it (ring count, ghosts, deficit run, reuse_hist, the
 * per-class cap that overrides the global one, the tune_signal the core
 * raises at the 4th ghost miss in a row and every 32 after), runs a synthetic workload, applies
 * the policy's decisions the way the library would, and hands the policy
 * snapshots: no library, no preload, no clock.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <stdlib.h>

#include "../../tuner/policy.h"

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define INTERVAL_NS 250000000ull
#define GHOST_MAX 4096u
#define NCLS 4
#define GLOBAL HAK_CLASS_CAP_GLOBAL

// ---------------------------------------------------------------------------
// Simulator
// ---------------------------------------------------------------------------

typedef struct sim_class {
    uint64_t size;
    uint32_t count, ghosts, deficit;
    uint64_t override;          /* per-class cap, GLOBAL = follows knobs.ring_cap */
} sim_class_t;

typedef struct sim {
    hak_snapshot_t s;           /* the "segment": counters, classes, knobs */
    sim_class_t cl[NCLS];
    uint64_t live_blocks;
    tuner_state_t st;
    hak_snapshot_t prev;
    int have_prev;
    uint64_t signals;           /* tune_signal bumps the core would have made */
    int signal_steps;           /* take a step when the core would bump tune_signal (4th ghost miss in a row) */
    int ndecisions, nraise, nlower, ntrim, ndir_changes, nthp, nreset;
    int last_dir;               /* +1 raise, -1 lower (class caps) */
    tuner_decision_t last[TUNER_MAX_DECISIONS];
    int nlast;
    uint64_t seq;
    uint64_t ih, im;            /* hits and misses of the last interval */
    uint64_t ch, cm;            /* counters at the last step */
    uint32_t rng;
} sim_t;

static uint32_t rnd(sim_t *m) {   /* xorshift32: deterministic, well spread */
    uint32_t x = m->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return m->rng = x;
}

static uint64_t cap_of(const sim_t *m, int c) {
    return m->cl[c].override != GLOBAL ? m->cl[c].override : m->s.knobs.ring_cap;
}

static void sim_init(sim_t *m, uint64_t cap, uint64_t budget, const tuner_cfg_t *cfg) {
    memset(m, 0, sizeof *m);
    m->s.pid = 4242;
    m->s.mode = HAK_MODE_FIXED;
    m->s.nclasses = NCLS;
    m->s.start_ns = 1;
    m->s.knobs.ring_cap = cap;
    m->s.knobs.batch_threshold = 4 * MiB;
    m->s.knobs.cache_max_bytes = budget;
    m->s.knobs.idle_ms = 1000;
    m->s.knobs.tune_interval_ms = 250;
    m->s.taken_ns = 1000000000ull;
    m->rng = 12345;
    static const uint64_t sizes[NCLS] = {2 * MiB, 64 << 10, 8 * MiB, 512 << 10};
    for (int c = 0; c < NCLS; c++) {
        m->cl[c].size = sizes[c];
        m->cl[c].override = GLOBAL;
        m->s.classes[c].size = sizes[c];
        m->s.classes[c].cap = cap;
        m->s.classes[c].class_cap = GLOBAL;
        m->s.classes[c].thp = sizes[c] >= 2 * MiB ? HAK_CTHP_UNDECIDED : HAK_CTHP_NA;
    }
    tuner_cfg_t def;
    tuner_cfg_default(&def, &m->s);
    tuner_init(&m->st, cfg ? cfg : &def);
    m->last_dir = 0;
}

static void sim_gauge(sim_t *m) {
    int64_t bytes = 0, blocks = 0;
    for (int c = 0; c < NCLS; c++) {
        bytes += (int64_t)(m->cl[c].count * m->cl[c].size);
        blocks += m->cl[c].count;
        m->s.classes[c].cached_blocks = m->cl[c].count;
        m->s.classes[c].ghosts = m->cl[c].ghosts;
        m->s.classes[c].cap = cap_of(m, c);
        m->s.classes[c].class_cap = m->cl[c].override;
    }
    m->s.gauge[HAK_G_bytes_cached] = bytes;
    m->s.gauge[HAK_G_blocks_cached] = blocks;
    m->s.gauge[HAK_G_blocks_live] = (int64_t)m->live_blocks;
}

static uint64_t cached_bytes(const sim_t *m) {
    uint64_t b = 0;
    for (int c = 0; c < NCLS; c++) b += (uint64_t)m->cl[c].count * m->cl[c].size;
    return b;
}

static void evicted(sim_t *m, int c, uint32_t n) {
    m->s.counter[HAK_C_batch_adds] += n;
    m->s.counter[HAK_C_batch_add_bytes] += n * m->cl[c].size;
}

static int sim_step(sim_t *m);

static void sim_pop(sim_t *m, int c) {
    sim_class_t *r = &m->cl[c];
    hak_shm_class_t *s = &m->s.classes[c];
    m->s.counter[HAK_C_large_allocs]++;
    m->live_blocks++;
    if (r->count > 0) {
        r->count--;
        s->hits++;
        m->s.counter[HAK_C_cache_hits]++;
        return;
    }
    s->misses++;
    m->s.counter[HAK_C_cache_misses]++;
    if (r->ghosts > 0) {
        r->ghosts--;
        r->deficit++;
        unsigned b = 31u - (unsigned)__builtin_clz(r->deficit);
        if (b > 7) b = 7;
        s->ghost_hits++;
        s->reuse_hist[b]++;
        if (r->deficit == 4 || (r->deficit > 4 && r->deficit % 32 == 0)) {   /* as bigcache.c */
            m->signals++;
            if (m->signal_steps) sim_step(m);
        }
    }
}

static void sim_put(sim_t *m, int c) {
    sim_class_t *r = &m->cl[c];
    hak_shm_class_t *s = &m->s.classes[c];
    uint32_t cap = (uint32_t)cap_of(m, c);
    m->s.counter[HAK_C_large_frees]++;
    m->live_blocks--;
    r->deficit = 0;
    uint32_t ev = 0, evb = 0;
    while (r->count > cap) r->count--, ev++;
    if (cap > 0 && r->count == cap) r->count--, ev++;
    while (r->count > 0 && cached_bytes(m) + r->size > m->s.knobs.cache_max_bytes) r->count--, evb++;
    int keep = cap > 0 && cached_bytes(m) + r->size <= m->s.knobs.cache_max_bytes;
    if (keep) {
        r->count++;
        s->puts++;
        m->s.counter[HAK_C_cache_puts]++;
    } else if (cap > 0 && r->count < cap) {
        evb++;                          /* the freed block itself: budget */
    } else {
        ev++;
    }
    r->ghosts = r->ghosts + ev + evb > GHOST_MAX ? GHOST_MAX : r->ghosts + ev + evb;
    s->evictions[HAK_EVICT_RING_FULL] += ev;
    s->evictions[HAK_EVICT_BUDGET] += evb;
    evicted(m, c, ev + evb);
}

static void shrink(sim_t *m, int c) {
    sim_class_t *r = &m->cl[c];
    uint32_t n = 0;
    while (r->count > cap_of(m, c)) r->count--, n++;
    r->ghosts = r->ghosts + n > GHOST_MAX ? GHOST_MAX : r->ghosts + n;
    m->s.classes[c].evictions[HAK_EVICT_CAP_LOWERED] += n;
    evicted(m, c, n);
}

/* Apply a decision as knobs.c / bigcache.c / thp.c would. */
static void sim_apply(sim_t *m, const tuner_decision_t *d) {
    if (d->knob == HAK_KNOB_RING_CAP) {
        m->s.knobs.ring_cap = d->new_value;
        for (int c = 0; c < NCLS; c++) shrink(m, c);
    } else if (d->knob == HAK_KNOB_CLASS_CAP) {
        m->cl[d->size_class].override = d->new_value;
        shrink(m, (int)d->size_class);
    } else if (d->knob == HAK_KNOB_CLASS_THP) {
        if (!(d->flags & TUNER_D_OBSERVED))
            m->s.classes[d->size_class].thp = (m->s.classes[d->size_class].thp & ~(uint64_t)0xff) | d->new_value;
    } else if (d->knob == HAK_KNOB_BATCH_THRESHOLD) {
        m->s.knobs.batch_threshold = d->new_value;
    } else if (d->knob == HAK_KNOB_TRIM) {
        m->s.counter[HAK_C_trims]++;
        for (int c = 0; c < NCLS; c++) {
            evicted(m, c, m->cl[c].count);
            m->s.counter[HAK_C_evict_idle_trim] += m->cl[c].count;
            m->cl[c].count = m->cl[c].ghosts = m->cl[c].deficit = 0;
        }
        m->s.gauge[HAK_G_bytes_pending] = 0;
    }
}

/* One interval: iters cycles of "allocate ws blocks of class c, free them". */
static void sim_work(sim_t *m, int c, uint32_t ws, uint32_t iters) {
    for (uint32_t i = 0; i < iters; i++) {
        for (uint32_t k = 0; k < ws; k++) sim_pop(m, c);
        for (uint32_t k = 0; k < ws; k++) sim_put(m, c);
    }
}

/* Checks every decision must pass, whatever the test. */
static void check_decision(const sim_t *m, const tuner_decision_t *d) {
    assert_true(d->reason > TUNER_R_NONE && d->reason < TUNER_NREASONS);
    assert_string_not_equal(tuner_reason_name(d->reason), "unknown");
    assert_string_not_equal(tuner_knob_name(d->knob), "unknown");
    switch (d->knob) {
    case HAK_KNOB_CLASS_CAP:
        assert_true(d->size_class < NCLS);
        assert_int_equal(d->old_value, m->prev.classes[d->size_class].cap);   /* as in the snapshot */
        if (d->new_value != GLOBAL) {
            assert_true(d->new_value <= m->st.cfg.ring_cap_max);
            assert_true(d->new_value >= m->st.cfg.ring_cap_min || d->reason == TUNER_R_BUDGET);
            assert_true(d->predicted >= 0.0 && d->predicted <= 1.0);
        } else {
            assert_true(d->reason == TUNER_R_IDLE || d->reason == TUNER_R_DECAY);
        }
        break;
    case HAK_KNOB_CLASS_THP:
        assert_true(d->size_class < NCLS);
        assert_int_equal(d->reason, TUNER_R_THP_TOUCH);
        assert_true(d->new_value == HAK_CTHP_HUGE || d->new_value == HAK_CTHP_SMALL);
        break;
    case HAK_KNOB_THP_COST:
        assert_int_equal(d->size_class, UINT32_MAX);
        assert_int_equal(d->reason, TUNER_R_FAULT_COST);
        assert_true(d->flags & TUNER_D_OBSERVED);              /* the library's own: nothing to apply */
        assert_true(d->new_value <= 1 && d->old_value == !d->new_value);
        break;
    default:
        assert_int_equal(d->size_class, UINT32_MAX);
        break;
    }
}

/* Take a snapshot, run the policy, apply its decisions.  Returns the number
 * of decisions. */
static int sim_step(sim_t *m) {
    m->s.taken_ns += INTERVAL_NS;
    sim_gauge(m);
    int n = tuner_step(&m->st, m->have_prev ? &m->prev : NULL, &m->s, m->last, (int)TUNER_MAX_DECISIONS);
    m->prev = m->s;   /* the snapshot the decisions were made on (before applying them) */
    m->have_prev = 1;
    assert_true(n >= 0 && n <= (int)TUNER_MAX_DECISIONS);
    m->nlast = n;
    m->ih = m->s.counter[HAK_C_cache_hits] - m->ch;
    m->im = m->s.counter[HAK_C_cache_misses] - m->cm;
    m->ch = m->s.counter[HAK_C_cache_hits];
    m->cm = m->s.counter[HAK_C_cache_misses];
    if (getenv("POLICY_TRACE")) {
        int tc = atoi(getenv("POLICY_TRACE"));
        if (tc < 0 || tc >= NCLS) tc = 0;
        const tuner_class_state_t *cs = &m->st.cls[tc];
        printf("c%d cap=%llu occ=%u want=%u slack=%u hold=%u since_decay=%u used=[%u..%u|%u..%u] | ", tc,
               (unsigned long long)cap_of(m, tc), m->cl[tc].count, cs->want, cs->slack, cs->hold, cs->since_decay,
               cs->lo[0], cs->hi[0], cs->lo[1], cs->hi[1]);
        printf("step cap0=%llu hits=%llu misses=%llu want0=%u quiet0=%u hold0=%u slack0=%u used0=[%u..%u|%u..%u] "
               "live=%llu ghosts0=%u",
               (unsigned long long)cap_of(m, 0), (unsigned long long)m->ih, (unsigned long long)m->im,
               m->st.cls[0].want, m->st.cls[0].quiet, m->st.cls[0].hold, m->st.cls[0].slack, m->st.cls[0].lo[0],
               m->st.cls[0].hi[0], m->st.cls[0].lo[1], m->st.cls[0].hi[1], (unsigned long long)m->live_blocks,
               m->cl[0].ghosts);
        for (int i = 0; i < n; i++)
            printf("  -> %s[%d] %llu->%llu %s pred=%.3f", tuner_knob_name(m->last[i].knob), (int)m->last[i].size_class,
                   (unsigned long long)m->last[i].old_value, (unsigned long long)m->last[i].new_value,
                   tuner_reason_name(m->last[i].reason), m->last[i].predicted);
        printf("\n");
    }
    for (int i = 0; i < n; i++) {
        const tuner_decision_t *d = &m->last[i];
        check_decision(m, d);
        tuner_note_decision(&m->st, d, ++m->seq, &m->s);
        m->ndecisions++;
        if (d->knob == HAK_KNOB_CLASS_CAP && d->new_value == GLOBAL) m->nreset++;
        else if (d->knob == HAK_KNOB_CLASS_CAP) {
            int dir = d->new_value > d->old_value ? 1 : -1;
            if (dir > 0) m->nraise++;
            else m->nlower++;
            if (m->last_dir && dir != m->last_dir) m->ndir_changes++;
            m->last_dir = dir;
        }
        if (d->knob == HAK_KNOB_TRIM) m->ntrim++;
        if (d->knob == HAK_KNOB_CLASS_THP) m->nthp++;
        sim_apply(m, d);
    }
    return n;
}

/* The decision of the last step on knob for class c, or NULL. */
static const tuner_decision_t *last_for(const sim_t *m, uint32_t knob, uint32_t c) {
    for (int k = 0; k < m->nlast; k++)
        if (m->last[k].knob == knob && m->last[k].size_class == c) return &m->last[k];
    return NULL;
}

/* A phase: n intervals of working set ws (class 0 = 2 MiB), 20 cycles each;
 * the sample is taken while the program holds its working set (as a real
 * program spends most of its time using the blocks), the frees follow. */
static void phase(sim_t *m, uint32_t ws, int n) {
    for (int i = 0; i < n; i++) {
        sim_work(m, 0, ws, 19);
        for (uint32_t k = 0; k < ws; k++) sim_pop(m, 0);
        sim_step(m);
        for (uint32_t k = 0; k < ws; k++) sim_put(m, 0);
    }
}

static double hit_rate_of_interval(const sim_t *m) {
    uint64_t h = m->ih, x = m->im;
    return h + x ? (double)h / (double)(h + x) : 0.0;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

static void test_hist_covered(void **state) {
    (void)state;
    /* one run of 116 ghost-served misses: deficits 1..116 once each */
    uint64_t h[8] = {1, 2, 4, 8, 16, 32, 53, 0};
    for (uint64_t k = 0; k <= 116; k++) assert_true(fabs(tuner_hist_covered(h, k) - (double)k) < 1e-9);
    assert_true(fabs(tuner_hist_covered(h, 300) - 116.0) < 1e-9);
    /* ten such runs */
    uint64_t h10[8];
    for (int b = 0; b < 8; b++) h10[b] = h[b] * 10;
    assert_true(fabs(tuner_hist_covered(h10, 50) - 500.0) < 1e-9);
    /* empty */
    uint64_t z[8] = {0};
    assert_true(tuner_hist_covered(z, 512) == 0.0);
    /* deficits >= 128 (bucket 7): runs of 200 */
    uint64_t big[8] = {1, 2, 4, 8, 16, 32, 64, 73};
    assert_true(fabs(tuner_hist_covered(big, 200) - 200.0) < 1e-9);
    assert_true(tuner_hist_covered(big, 150) < 200.0);
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(tuner_reason_name(TUNER_R_GHOST_DEMAND), "ghost_demand");
    assert_string_equal(tuner_reason_name(TUNER_R_IDLE), "idle");
    assert_string_equal(tuner_reason_name(999), "unknown");
    assert_string_equal(tuner_knob_name(HAK_KNOB_RING_CAP), "ring_cap");
    assert_string_equal(tuner_knob_name(HAK_KNOB_TRIM), "trim");
    assert_string_equal(tuner_knob_name(HAK_KNOB_CLASS_CAP), "class_cap");
    assert_string_equal(tuner_knob_name(HAK_KNOB_CLASS_THP), "class_thp");
    assert_string_equal(tuner_knob_name(99), "unknown");
    assert_string_equal(tuner_reason_name(TUNER_R_THP_TOUCH), "thp_touch");
    for (uint32_t r = 1; r < TUNER_NREASONS; r++) assert_string_not_equal(tuner_reason_name(r), "unknown");
    assert_string_equal(tuner_grade_name(TUNER_GRADE_REFUTED), "refuted");
}

/* The opening: a quarter of the budget as a power of two, at most 1 GiB,
 * only when it is more than the threshold in force. */
static void test_opening(void **state) {
    (void)state;
    tuner_decision_t d;
    memset(&d, 0, sizeof d);
    assert_int_equal(tuner_opening((uint64_t)1 << 30, 4 * MiB, &d), 1);
    assert_int_equal(d.knob, HAK_KNOB_BATCH_THRESHOLD);
    assert_int_equal(d.reason, TUNER_R_OPENING);
    assert_int_equal(d.old_value, 4 * MiB);
    assert_int_equal(d.new_value, 256 * MiB);
    assert_string_equal(tuner_reason_name(d.reason), "opening");
    assert_int_equal(tuner_opening(100 * MiB, 4 * MiB, &d), 1);
    assert_int_equal(d.new_value, 16 * MiB);                  /* 25 MiB, rounded down */
    assert_int_equal(tuner_opening((uint64_t)64 << 30, 4 * MiB, &d), 1);
    assert_int_equal(d.new_value, (uint64_t)1 << 30);         /* batch_max */
    assert_int_equal(tuner_opening((uint64_t)1 << 30, 256 * MiB, &d), 0);   /* holds that much already */
    assert_int_equal(tuner_opening(8 * MiB, 4 * MiB, &d), 0);               /* a budget too small to hold more */
}

/* Working set 8 -> 120 blocks of 2 MiB: the cap covers it within a couple of
 * intervals, stays in budget, and the hit rate follows. */
static void test_phased_demand_raises_cap(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    assert_int_equal(sim_step(&m), 0);   /* first call: baselines only */
    phase(&m, 8, 6);
    assert_true(cap_of(&m, 0) >= 8 && cap_of(&m, 0) <= 13);
    int raises_before = m.nraise;
    int reached = -1;
    for (int i = 0; i < 6; i++) {
        phase(&m, 120, 1);
        if (reached < 0 && cap_of(&m, 0) >= 120) reached = i + 1;
    }
    assert_int_equal(reached, 1);                      /* within the first interval of the phase */
    assert_true(cap_of(&m, 0) <= 130);                 /* the demand, not more */
    assert_true(cap_of(&m, 0) * 2 * MiB <= 1 * GiB);   /* budget */
    assert_true(m.nraise - raises_before <= 2);
    phase(&m, 120, 1);
    assert_true(hit_rate_of_interval(&m) > 0.99);
    assert_null(last_for(&m, HAK_KNOB_CLASS_CAP, 0));  /* settled */
    assert_int_equal(m.s.knobs.ring_cap, 4);           /* the global cap stays the default */
}

/* The same demand under a budget of 100 MiB: the cap stops at 50 blocks. */
static void test_budget_respected(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 100 * MiB, NULL);
    sim_step(&m);
    for (int i = 0; i < 20; i++) {
        phase(&m, 120, 1);
        assert_true(cap_of(&m, 0) * 2 * MiB <= 100 * MiB);
    }
    assert_true(cap_of(&m, 0) >= 40);   /* it still uses the budget it has */
    /* the budget shrinks under it: the cap follows at once, reason budget */
    m.s.knobs.cache_max_bytes = 40 * MiB;
    phase(&m, 120, 1);
    assert_true(cap_of(&m, 0) <= 20);
    const tuner_decision_t *d = last_for(&m, HAK_KNOB_CLASS_CAP, 0);
    assert_non_null(d);
    assert_int_equal(d->reason, TUNER_R_BUDGET);
}

/* After a big phase the working set drops to 8: the cap decays slowly
 * (steps of at most 1/8), monotonically, to a little above 8. */
static void test_quiet_decays_slowly(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    phase(&m, 120, 6);
    uint64_t cap = cap_of(&m, 0);
    assert_true(cap >= 120);
    int first_lower = -1;
    m.last_dir = 0;
    m.ndir_changes = 0;
    for (int i = 0; i < 300; i++) {
        phase(&m, 8, 1);
        uint64_t now = cap_of(&m, 0);
        assert_true(now <= cap);                       /* never up again */
        if (now < cap) {
            if (first_lower < 0) first_lower = i;
            assert_true(cap - now <= cap / 8 + 1);     /* slowly */
            const tuner_decision_t *d = last_for(&m, HAK_KNOB_CLASS_CAP, 0);
            assert_non_null(d);
            assert_int_equal(d->reason, TUNER_R_DECAY);
        }
        cap = now;
        assert_true(hit_rate_of_interval(&m) > 0.99); /* decay costs no hits */
    }
    assert_true(first_lower >= 8);                     /* held first */
    assert_true(cap >= 8 && cap <= 13);              /* 1.5 x 8 + 1 */
    assert_int_equal(m.ndir_changes, 0);
}

/* A steady small working set keeps a small cap and never raises it. */
static void test_small_steady(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    phase(&m, 3, 200);
    assert_int_equal(m.nraise, 0);
    assert_true(cap_of(&m, 0) >= 3 && cap_of(&m, 0) <= 4);
}

/* Demand alternating every interval between 100 and 8 blocks: the cap goes
 * up once and stays (no oscillation). */
static void test_alternating_no_oscillation(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    for (int i = 0; i < 400; i++) phase(&m, i % 2 ? 8 : 100, 1);
    assert_true(cap_of(&m, 0) >= 100 && cap_of(&m, 0) <= 110);
    assert_int_equal(m.ndir_changes, 0);
    assert_true(m.nraise <= 3);
}

/* Long phases (30 intervals each) of 120 and 8: the cap follows the first
 * swings, then back-off makes the decays rarer (converges, no endless cycle). */
static void test_phases_backoff(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    int lowers_first = 0, lowers_last = 0;
    for (int r = 0; r < 40; r++) {
        int before = m.nlower;
        phase(&m, 120, 30);
        assert_true(cap_of(&m, 0) >= 120);
        phase(&m, 8, 30);
        if (r < 5) lowers_first += m.nlower - before;
        if (r >= 35) lowers_last += m.nlower - before;
    }
    assert_true(lowers_first > 0);
    assert_true(lowers_last < lowers_first);
    assert_true(lowers_last == 0);
}

/* Idle: one TRIM after idle_ms without large-block activity, not repeated;
 * re-armed by activity. */
static void test_idle_trim_once(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 16, 1 * GiB, NULL);
    sim_step(&m);
    phase(&m, 8, 4);
    assert_true(cached_bytes(&m) > 0);
    int trims = 0;
    for (int i = 0; i < 40; i++) {   /* 10 s of silence at 250 ms */
        sim_step(&m);
        for (int k = 0; k < m.nlast; k++) {
            assert_int_equal(m.last[k].knob, HAK_KNOB_TRIM);
            assert_int_equal(m.last[k].reason, TUNER_R_IDLE);
            assert_int_equal(m.last[k].new_value, 0);
            assert_true(m.last[k].old_value >= 8 * 2 * MiB);
            assert_true(i >= 3);     /* 1000 ms = 4 intervals of 250 ms */
            trims++;
        }
    }
    assert_int_equal(trims, 1);
    assert_int_equal(m.s.gauge[HAK_G_bytes_cached], 0);
    phase(&m, 8, 2);                 /* activity resumes */
    for (int i = 0; i < 10; i++) sim_step(&m);
    assert_int_equal(m.ntrim, 2);
    /* grading: the trim left nothing cached -> confirmed */
    tuner_grade_t g[8];
    for (int i = 0; i < 8; i++) sim_step(&m);
    int ng = tuner_grade_pending(&m.st, &m.s, g, 8);
    int confirmed = 0;
    for (int i = 0; i < ng; i++) confirmed += g[i].grade == TUNER_GRADE_CONFIRMED;
    assert_true(confirmed >= 1);
}

/* An idle process with nothing cached gets no trim. */
static void test_idle_nothing_held(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 0, 1 * GiB, NULL);
    sim_step(&m);
    sim_work(&m, 0, 1, 1);
    sim_step(&m);
    for (int i = 0; i < 20; i++) assert_int_equal(sim_step(&m), 0);
}

/* Flush cost: hand-made flush counters.  Expensive frequent flushes raise the
 * threshold (bounded by the budget/16 and batch_max); cheap ones lower it one
 * halving at a time; configured bounds always hold. */
static void flush_interval(sim_t *m, uint64_t flushes, uint64_t ns_per_flush, uint64_t bytes) {
    m->s.counter[HAK_C_large_allocs] += 10;
    m->s.counter[HAK_C_large_frees] += 10;
    m->s.counter[HAK_C_batch_add_bytes] += bytes;
    m->s.counter[HAK_C_batch_adds] += bytes / (2 * MiB);
    m->s.counter[HAK_C_batch_flushes] += flushes;
    m->s.counter[HAK_C_batch_ranges_flushed] += flushes;
    m->s.counter[HAK_C_batch_flush_ns] += flushes * ns_per_flush;
    m->s.counter[HAK_C_batch_bytes_flushed] += bytes;
}

static void test_flush_cost_threshold(void **state) {
    (void)state;
    static sim_t m;
    tuner_cfg_t cfg;
    sim_init(&m, 4, 1 * GiB, NULL);
    tuner_cfg_default(&cfg, &m.s);
    sim_init(&m, 4, 1 * GiB, &cfg);
    sim_step(&m);
    /* 4 MiB threshold, 64 flushes of 200 us per 250 ms: 5% of a core */
    uint64_t th0 = m.s.knobs.batch_threshold;
    for (int i = 0; i < 3; i++) {
        uint64_t th = m.s.knobs.batch_threshold;
        uint64_t bytes = 256 * MiB;
        flush_interval(&m, bytes / th, 200000, bytes);
        sim_step(&m);
    }
    uint64_t th1 = m.s.knobs.batch_threshold;
    assert_true(th1 > th0);
    assert_true(th1 <= (1 * GiB) / 16);               /* pending bytes worth holding */
    assert_true((th1 & (th1 - 1)) == 0);
    int saw = 0;
    /* now flushes become cheap (5 us): the threshold comes down, gradually */
    uint64_t prev_th = th1;
    for (int i = 0; i < 60; i++) {
        uint64_t th = m.s.knobs.batch_threshold;
        uint64_t bytes = 64 * MiB;
        flush_interval(&m, bytes / th ? bytes / th : 1, 5000, bytes);
        sim_step(&m);
        for (int k = 0; k < m.nlast; k++)
            if (m.last[k].knob == HAK_KNOB_BATCH_THRESHOLD) {
                saw++;
                assert_int_equal(m.last[k].reason, TUNER_R_FLUSH_CHEAP);
                assert_true(m.last[k].new_value * 2 >= m.last[k].old_value);   /* one halving at a time */
            }
        assert_true(m.s.knobs.batch_threshold <= prev_th);
        assert_true(m.s.knobs.batch_threshold >= cfg.batch_min);
        prev_th = m.s.knobs.batch_threshold;
    }
    assert_true(saw > 0);
    assert_true(m.s.knobs.batch_threshold < th1);

    /* narrow configured bounds: a threshold outside them is brought back */
    cfg.batch_min = 8 * MiB;
    cfg.batch_max = 16 * MiB;
    sim_init(&m, 4, 1 * GiB, &cfg);
    sim_step(&m);
    flush_interval(&m, 1, 1000, 4 * MiB);
    sim_step(&m);
    assert_int_equal(m.s.knobs.batch_threshold, 8 * MiB);
    assert_int_equal(m.last[0].reason, TUNER_R_BOUNDS);
    for (int i = 0; i < 20; i++) {
        flush_interval(&m, 100, 500000, 800 * MiB);
        sim_step(&m);
        assert_true(m.s.knobs.batch_threshold >= 8 * MiB && m.s.knobs.batch_threshold <= 16 * MiB);
    }
    assert_int_equal(m.s.knobs.batch_threshold, 16 * MiB);
}

/* Kernel figures: when most of the flush time is munmap latency of many
 * ranges, the amortisable per-flush cost is smaller than time/flushes. */
static void test_flush_cost_kernel(void **state) {
    (void)state;
    static sim_t a, b;
    sim_init(&a, 4, 1 * GiB, NULL);
    sim_init(&b, 4, 1 * GiB, NULL);
    b.s.kernel.updated_ns = 1;
    sim_step(&a);
    sim_step(&b);
    for (int i = 0; i < 3; i++) {
        uint64_t bytes = 256 * MiB;
        flush_interval(&a, 64, 200000, bytes);
        flush_interval(&b, 64, 200000, bytes);
        b.s.kernel.updated_ns += INTERVAL_NS;
        b.s.kernel.munmap_calls += 64 * 16;               /* 16 ranges per flush */
        b.s.kernel.munmap_ns_total += 64 * 16 * 11000;    /* 176 of the 200 us */
        a.s.knobs.batch_threshold = b.s.knobs.batch_threshold = 4 * MiB;   /* keep them comparable */
        sim_step(&a);
        sim_step(&b);
    }
    assert_true(b.st.flush_fixed_ns > 0 && b.st.flush_fixed_ns < a.st.flush_fixed_ns / 4);
}

/* Flush time proportional to the bytes released (no per-flush cost): a bigger
 * batch saves nothing.  The first raise is refuted by its grade, the
 * regression over the batch sizes seen finds no per-flush cost, and the
 * threshold comes back down instead of climbing to the maximum. */
static void test_flush_cost_learns(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 16 * GiB, NULL);   /* budget/16 = 1 GiB: only batch_max bounds it */
    sim_step(&m);
    uint64_t highest = 0;
    int refuted = 0;
    for (int i = 0; i < 80; i++) {
        uint64_t th = m.s.knobs.batch_threshold;
        uint64_t bytes = 256 * MiB, flushes = bytes / th ? bytes / th : 1;
        flush_interval(&m, flushes, (bytes / flushes / MiB) * 50000, bytes);
        sim_step(&m);
        if (m.s.knobs.batch_threshold > highest) highest = m.s.knobs.batch_threshold;
        tuner_grade_t g[8];
        int ng = tuner_grade_pending(&m.st, &m.s, g, 8);
        for (int k = 0; k < ng; k++) refuted += g[k].grade == TUNER_GRADE_REFUTED;
    }
    assert_true(highest <= 128 * MiB);
    assert_true(refuted >= 1);
    assert_true(m.s.knobs.batch_threshold <= 8 * MiB);
    assert_true(m.st.flush_fixed_ns < 1000.0);   /* ~0 ns saved per flush avoided */
}

/* Grading: a raise that came true is confirmed; a decay followed by misses is
 * refuted; a decision with no traffic afterwards ends inconclusive. */
static void test_grading(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    phase(&m, 120, 2);
    assert_true(m.nraise >= 1);
    phase(&m, 120, 6);
    tuner_grade_t g[16];
    int n = tuner_grade_pending(&m.st, &m.s, g, 16);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        assert_int_equal(g[i].grade, TUNER_GRADE_CONFIRMED);
        assert_true(g[i].observed > 0.9);
        if (i) assert_true(g[i].decision_seq > g[i - 1].decision_seq);
    }
    assert_int_equal(tuner_grade_pending(&m.st, &m.s, g, 16), 0);   /* forgotten once graded */

    /* a decision predicting 0.99 followed by a phase of misses: refuted */
    tuner_decision_t d = {.knob = HAK_KNOB_RING_CAP, .size_class = UINT32_MAX, .old_value = 120, .new_value = 60,
                          .reason = TUNER_R_DECAY, .driver_class = 0, .predicted = 0.99, .before = 0.99};
    tuner_note_decision(&m.st, &d, 1000, &m.s);
    m.cl[0].override = 4;
    for (int i = 0; i < 5; i++) {
        sim_work(&m, 0, 120, 20);
        m.s.taken_ns += INTERVAL_NS;
    }
    n = tuner_grade_pending(&m.st, &m.s, g, 16);
    assert_int_equal(n, 1);
    assert_int_equal(g[0].decision_seq, 1000);
    assert_int_equal(g[0].grade, TUNER_GRADE_REFUTED);
    assert_true(g[0].observed < 0.5);

    /* no traffic at all: waits, then inconclusive */
    tuner_note_decision(&m.st, &d, 1001, &m.s);
    m.s.taken_ns += 5 * INTERVAL_NS;
    assert_int_equal(tuner_grade_pending(&m.st, &m.s, g, 16), 0);
    m.s.taken_ns += 40 * INTERVAL_NS;
    n = tuner_grade_pending(&m.st, &m.s, g, 16);
    assert_int_equal(n, 1);
    assert_int_equal(g[0].grade, TUNER_GRADE_INCONCLUSIVE);
    assert_true(isnan(g[0].observed));
}

/* More decisions than the pending table: the oldest are dropped, never a crash. */
static void test_pending_overflow(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    tuner_decision_t d = {.knob = HAK_KNOB_RING_CAP, .size_class = UINT32_MAX, .new_value = 8, .predicted = 0.5};
    for (uint64_t s = 1; s <= 3 * TUNER_PENDING_MAX; s++) tuner_note_decision(&m.st, &d, s, &m.s);
    m.seq = 100000;   /* the policy's own decisions during the phase come after */
    phase(&m, 8, 8);
    tuner_grade_t g[3 * TUNER_PENDING_MAX];
    int n = tuner_grade_pending(&m.st, &m.s, g, 3 * TUNER_PENDING_MAX);
    assert_true(n >= TUNER_PENDING_MAX - 1 && n <= TUNER_PENDING_MAX + 2);
    assert_true(g[0].decision_seq > 2 * TUNER_PENDING_MAX);   /* the oldest were dropped */
    for (int i = 1; i < n; i++) assert_true(g[i].decision_seq > g[i - 1].decision_seq);
}

/* Snapshots that cannot follow each other (other pid, counters reset, time
 * going backwards) only reset the baselines. */
static void test_discontinuity(void **state) {
    (void)state;
    static sim_t m;
    static hak_snapshot_t other;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    phase(&m, 120, 1);
    other = m.s;
    other.pid = 99;
    tuner_decision_t d[TUNER_MAX_DECISIONS];
    assert_int_equal(tuner_step(&m.st, &m.s, &other, d, TUNER_MAX_DECISIONS), 0);
    other = m.s;
    other.counter[HAK_C_cache_hits] = 0;
    other.taken_ns += INTERVAL_NS;
    assert_int_equal(tuner_step(&m.st, &m.s, &other, d, TUNER_MAX_DECISIONS), 0);
    other = m.s;
    other.taken_ns -= 1;
    assert_int_equal(tuner_step(&m.st, &m.s, &other, d, TUNER_MAX_DECISIONS), 0);
    /* max 0: nothing written */
    phase(&m, 8, 1);
    other = m.s;
    sim_work(&m, 0, 120, 20);
    m.s.taken_ns += INTERVAL_NS;
    assert_int_equal(tuner_step(&m.st, &other, &m.s, d, 0), 0);
}

/* Determinism: the same trace gives the same decisions. */
static void test_deterministic(void **state) {
    (void)state;
    static sim_t a, b;
    sim_init(&a, 4, 1 * GiB, NULL);
    sim_init(&b, 4, 1 * GiB, NULL);
    sim_step(&a);
    sim_step(&b);
    for (int r = 0; r < 6; r++) {
        phase(&a, r % 2 ? 8 : 120, 25);
        phase(&b, r % 2 ? 8 : 120, 25);
        assert_int_equal(cap_of(&a, 0), cap_of(&b, 0));
    }
    assert_int_equal(a.ndecisions, b.ndecisions);
    assert_memory_equal(&a.st, &b.st, sizeof a.st);
}


// ---------------------------------------------------------------------------
// Issue 11: a tuner that learns within the first repetition of a pattern
// ---------------------------------------------------------------------------

/* One repetition of the pattern: allocate ws blocks of class c, free them. */
static void cycle(sim_t *m, int c, uint32_t ws) { sim_work(m, c, ws, 1); }

/* (a) A cycle of 100 blocks of 2 MiB at cap 4.  The first repetition is cold
 * (all misses, 96 evictions leave 96 ghosts); the second one is the first run
 * of ghost misses, and the one step after it raises class 0's cap to the
 * whole demand (>= 100), not to ~90 (95% of a prediction). */
static void test_first_run_whole_demand(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    cycle(&m, 0, 100);
    sim_step(&m);
    assert_null(last_for(&m, HAK_KNOB_CLASS_CAP, 0));   /* no ghost miss yet: nothing to go by */
    cycle(&m, 0, 100);                                  /* 4 hits, 96 ghost misses */
    assert_int_equal(sim_step(&m), 1);
    const tuner_decision_t *d = last_for(&m, HAK_KNOB_CLASS_CAP, 0);
    assert_non_null(d);
    assert_int_equal(d->size_class, 0);
    assert_int_equal(d->driver_class, 0);
    assert_int_equal(d->reason, TUNER_R_GHOST_DEMAND);
    assert_int_equal(d->old_value, 4);
    assert_true(d->new_value >= 100 && d->new_value <= 104);
    assert_true(d->predicted > 0.99);                   /* every miss of the interval would have hit */
    assert_true(fabs(d->before - 0.04) < 1e-9);
    assert_int_equal(m.s.knobs.ring_cap, 4);            /* per class: the global cap is untouched */
    assert_int_equal(cap_of(&m, 1), 4);
    /* the evicted blocks are gone once: one more round of misses, then all hits */
    cycle(&m, 0, 100);
    assert_int_equal(sim_step(&m), 0);
    cycle(&m, 0, 100);
    sim_step(&m);
    assert_int_equal(m.im, 0);
    assert_int_equal(m.ih, 100);
}

/* (a) The same, but the step comes when the core signals the tuner (the 4th
 * ghost miss in a row, in the middle of the run): the histogram knows 4 of
 * the deficits, the ghosts the rest; the raise covers all of it at once. */
static void test_signal_mid_run_whole_demand(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    cycle(&m, 0, 100);
    sim_step(&m);
    m.signal_steps = 1;
    uint64_t sig = m.signals;
    for (uint32_t k = 0; k < 100 && m.nraise == 0; k++) sim_pop(&m, 0);
    assert_int_equal(m.signals, sig + 1);
    assert_int_equal(m.nraise, 1);
    assert_true(cap_of(&m, 0) >= 100 && cap_of(&m, 0) <= 104);
    assert_int_equal(m.live_blocks, 8);                 /* decided after 4 hits + 4 ghost misses */
}

/* (a) A step at every signal of the core (the 4th ghost miss of a run, and
 * every 32 after), as the in-process tuner takes them: the steps in the
 * middle of a run that spans them, right after a raise, must not count the
 * run from the new cap (once seen: 4 -> 112 -> 113 -> 239 for 120 blocks). */
static void test_signal_steps_no_overshoot(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    m.signal_steps = 1;
    for (int i = 0; i < 6; i++) cycle(&m, 0, 120);
    sim_step(&m);
    assert_true(cap_of(&m, 0) >= 120 && cap_of(&m, 0) <= 126);
    assert_true(m.nraise <= 3);
    assert_int_equal(m.nlower, 0);
    cycle(&m, 0, 120);
    sim_step(&m);
    assert_int_equal(m.im, 0);
}

/* A workload of several classes sampled at arbitrary points of its cycle
 * (as a timer would), with flushes of noisy cost: classes 0 (100 x 2 MiB)
 * and 3 (20 x 512 KiB) cycle, class 2 (8 MiB) blocks go through Batch. */
static void steady_interval(sim_t *m, int random_phase) {
    uint32_t cut = random_phase ? rnd(m) % 100 : 0, cut3 = random_phase ? rnd(m) % 20 : 0;
    for (int i = 0; i < 10; i++) {
        for (uint32_t k = 0; k < 100; k++) sim_pop(m, 0);
        for (uint32_t k = 0; k < 20; k++) sim_pop(m, 3);
        for (uint32_t k = 0; k < 20; k++) sim_put(m, 3);
        for (uint32_t k = 0; k < 100; k++) sim_put(m, 0);
    }
    for (uint32_t k = 0; k < cut; k++) sim_pop(m, 0);
    for (uint32_t k = 0; k < cut3; k++) sim_pop(m, 3);
    /* Batch: 8 MiB x 32 per interval, flushed at the threshold, 30-70 us per flush */
    uint64_t bytes = 32 * 8 * MiB, th = m->s.knobs.batch_threshold, fl = bytes / th ? bytes / th : 1;
    m->s.counter[HAK_C_batch_add_bytes] += bytes;
    m->s.counter[HAK_C_batch_adds] += 32;
    m->s.counter[HAK_C_evict_uncacheable] += 32;
    m->s.counter[HAK_C_batch_flushes] += fl;
    m->s.counter[HAK_C_batch_ranges_flushed] += fl;
    m->s.counter[HAK_C_batch_bytes_flushed] += bytes;
    for (uint64_t f = 0; f < fl; f++) m->s.counter[HAK_C_batch_flush_ns] += 30000 + rnd(m) % 40000;
    sim_step(m);
    for (uint32_t k = 0; k < cut3; k++) sim_put(m, 3);
    for (uint32_t k = 0; k < cut; k++) sim_put(m, 0);
}

/* (b) Steady cycle: it settles within a few intervals, then makes no decision
 * at all (the issue saw cap 4 -> 3 -> 4 -> 3 and threshold 4 -> 8 -> 4 -> 2 MiB
 * within 8 s at a 97% hit rate). */
static void test_steady_fixed_point(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    for (int i = 0; i < 40; i++) steady_interval(&m, 1);
    assert_true(cap_of(&m, 0) >= 100);
    assert_true(cap_of(&m, 3) >= 20);
    int settled = m.ndecisions;
    for (int i = 0; i < 400; i++) {
        steady_interval(&m, 1);
        assert_int_equal(m.nlast, 0);
    }
    assert_int_equal(m.ndecisions, settled);
    assert_true(hit_rate_of_interval(&m) > 0.99);
}

/* (b) The worst case for usage estimates: every sample lands right after the
 * frees (the ring full, nothing live), so the telemetry cannot tell this ring
 * from an idle one.  The decays it then tries are undone at once and the
 * back-off doubles the hold each time (8, 16, ... 2048 intervals): the probes
 * get rarer and rarer. */
static void test_steady_adversarial_sampling(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    for (int i = 0; i < 40; i++) steady_interval(&m, 0);
    int first = m.ndecisions;
    for (int i = 0; i < 400; i++) steady_interval(&m, 0);
    int mid = m.ndecisions;
    for (int i = 0; i < 400; i++) steady_interval(&m, 0);
    assert_true(mid - first <= 12);                   /* probes after 30, 64, 128, 256 intervals: 4 decisions each */
    assert_true(m.ndecisions - mid <= 4);             /* one probe in the next 400 */
    assert_true(m.ndecisions - mid < mid - first);
    assert_true(m.st.cls[0].hold >= 32 * m.st.cfg.decay_hold);
    assert_true(cap_of(&m, 0) >= 88);
}

/* (c) Demand falls: the class cap decays (decisions with reason decay, each
 * at most 1/8); then the program goes idle: one trim and the class cap back
 * to the global one, not repeated; when the program comes back, the first
 * repetition raises the cap again. */
static void test_demand_falls_then_idle(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    phase(&m, 120, 4);
    assert_true(cap_of(&m, 0) >= 120);
    int lowers = m.nlower;
    for (int i = 0; i < 200; i++) phase(&m, 8, 1);
    assert_true(m.nlower - lowers >= 5);
    assert_true(cap_of(&m, 0) >= 8 && cap_of(&m, 0) <= 13);
    assert_true(m.cl[0].override != GLOBAL);
    int trims = 0, resets = 0;
    for (int i = 0; i < 40; i++) {
        sim_step(&m);
        for (int k = 0; k < m.nlast; k++) {
            const tuner_decision_t *d = &m.last[k];
            assert_true(i >= 3);
            assert_int_equal(d->reason, TUNER_R_IDLE);
            if (d->knob == HAK_KNOB_TRIM) trims++;
            else {
                assert_int_equal(d->knob, HAK_KNOB_CLASS_CAP);
                assert_int_equal(d->size_class, 0);
                assert_int_equal(d->new_value, GLOBAL);
                resets++;
            }
        }
    }
    assert_int_equal(trims, 1);
    assert_int_equal(resets, 1);
    assert_int_equal(m.cl[0].override, GLOBAL);
    assert_int_equal(cached_bytes(&m), 0);
    /* back: cold, then the first run of ghost misses */
    cycle(&m, 0, 100);
    sim_step(&m);
    cycle(&m, 0, 100);
    sim_step(&m);
    assert_true(cap_of(&m, 0) >= 100);
}

/* (d) Three classes want 200 + 240 + 25 MiB under a 256 MiB budget: the sum
 * of the caps stays within it; the classes with the most accesses per byte
 * (512 KiB x 50, then 2 MiB x 100) get their whole demand, the 8 MiB class
 * what is left; a smaller budget lowers the caps at once (reason budget). */
static uint64_t caps_bytes(const sim_t *m) {
    uint64_t b = 0;
    for (int c = 0; c < NCLS; c++)
        if (m->s.classes[c].hits + m->s.classes[c].misses) b += cap_of(m, c) * m->cl[c].size;
    return b;
}

static void three_classes(sim_t *m) {
    for (int i = 0; i < 4; i++) {
        sim_work(m, 0, 100, 1);
        sim_work(m, 2, 30, 1);
        sim_work(m, 3, 50, 1);
    }
    /* sampled at an arbitrary point of the next cycle */
    uint32_t cut[3] = {rnd(m) % 100, rnd(m) % 30, rnd(m) % 50};
    for (uint32_t k = 0; k < cut[0]; k++) sim_pop(m, 0);
    for (uint32_t k = 0; k < cut[1]; k++) sim_pop(m, 2);
    for (uint32_t k = 0; k < cut[2]; k++) sim_pop(m, 3);
    sim_step(m);
    for (uint32_t k = 0; k < cut[0]; k++) sim_put(m, 0);
    for (uint32_t k = 0; k < cut[1]; k++) sim_put(m, 2);
    for (uint32_t k = 0; k < cut[2]; k++) sim_put(m, 3);
}

static void test_budget_across_classes(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 256 * MiB, NULL);
    sim_step(&m);
    for (int i = 0; i < 6; i++) {
        three_classes(&m);
        if (i >= 2) assert_true(caps_bytes(&m) <= 256 * MiB);
    }
    assert_true(cap_of(&m, 3) >= 50);
    assert_true(cap_of(&m, 0) >= 100);
    assert_true(cap_of(&m, 2) < 30);
    /* settled: no reshuffling */
    for (int i = 0; i < 40; i++) {
        three_classes(&m);
        assert_true(caps_bytes(&m) <= 256 * MiB);
        for (int k = 0; k < m.nlast; k++) assert_int_not_equal(m.last[k].reason, TUNER_R_BUDGET);
    }
    m.s.knobs.cache_max_bytes = 128 * MiB;
    three_classes(&m);
    assert_true(caps_bytes(&m) <= 128 * MiB);
    int budget = 0;
    for (int k = 0; k < m.nlast; k++) {
        assert_int_equal(m.last[k].knob, HAK_KNOB_CLASS_CAP);
        budget += m.last[k].reason == TUNER_R_BUDGET;
        assert_true(m.last[k].new_value < m.last[k].old_value);
    }
    assert_true(budget >= 1);
    assert_true(cap_of(&m, 3) >= 50);   /* still first */
}

/* (e) THP: a state the library chose is logged once as a decision (observed,
 * nothing to apply); an undecided class with 4 samples is decided by the
 * policy (touched < 50%: small pages), and not logged again when it shows. */
static void test_thp_logged(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    phase(&m, 8, 1);
    assert_int_equal(m.nthp, 0);
    m.s.classes[0].thp = HAK_CTHP_HUGE | (3u << 8) | (800u << 16);   /* the core decided class 0 */
    sim_work(&m, 0, 8, 1);
    sim_step(&m);
    const tuner_decision_t *d = last_for(&m, HAK_KNOB_CLASS_THP, 0);
    assert_non_null(d);
    assert_int_equal(d->old_value, HAK_CTHP_UNDECIDED);
    assert_int_equal(d->new_value, HAK_CTHP_HUGE);
    assert_int_equal(d->reason, TUNER_R_THP_TOUCH);
    assert_true(d->flags & TUNER_D_OBSERVED);
    assert_true(fabs(d->predicted - 0.8) < 1e-9);
    sim_work(&m, 0, 8, 1);
    sim_step(&m);
    assert_null(last_for(&m, HAK_KNOB_CLASS_THP, 0));                 /* once */
    /* class 2 (8 MiB): 5 samples, 20% touched, still undecided */
    m.s.classes[2].thp = HAK_CTHP_UNDECIDED | (5u << 8) | (200u << 16);
    sim_work(&m, 2, 2, 1);
    sim_step(&m);
    d = last_for(&m, HAK_KNOB_CLASS_THP, 2);
    assert_non_null(d);
    assert_int_equal(d->new_value, HAK_CTHP_SMALL);
    assert_false(d->flags & TUNER_D_OBSERVED);
    assert_int_equal(HAK_CTHP_STATE(m.s.classes[2].thp), HAK_CTHP_SMALL);   /* applied */
    for (int i = 0; i < 3; i++) {
        sim_work(&m, 2, 2, 1);
        sim_step(&m);
        assert_null(last_for(&m, HAK_KNOB_CLASS_THP, 2));
    }
    assert_int_equal(m.nthp, 2);
    /* classes below 2 MiB have no THP state and get no decision */
    assert_int_equal(HAK_CTHP_STATE(m.s.classes[1].thp), HAK_CTHP_NA);
    /* grading: more samples, still 15% touched: the small-page choice holds */
    m.s.classes[2].thp = HAK_CTHP_SMALL | (9u << 8) | (150u << 16);
    tuner_grade_t g[32];
    int confirmed = 0;
    for (int i = 0; i < 6; i++) {
        sim_work(&m, 2, 2, 1);
        sim_step(&m);
        int ng = tuner_grade_pending(&m.st, &m.s, g, 32);
        for (int k = 0; k < ng; k++) confirmed += g[k].grade == TUNER_GRADE_CONFIRMED;
    }
    assert_true(confirmed >= 2);
}

/* The library's fault-cost rule (knobs.thp_by_cost) is logged once per flip,
 * as an observed THP_COST decision with the cost ratio that led to it, and
 * graded on the ratio once more faults were timed. */
static void test_thp_cost_logged(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    phase(&m, 8, 1);
    assert_null(last_for(&m, HAK_KNOB_THP_COST, UINT32_MAX));
    /* huge-page faults turn dear: 5 ms against 512 x 1.25 us */
    m.s.knobs.thp_huge_fault_ns = 5000000;
    m.s.knobs.thp_small_fault_ns = 640000;
    m.s.knobs.thp_by_cost = 1;
    m.s.counter[HAK_C_thp_fault_probes] += 1;
    sim_work(&m, 0, 8, 1);
    sim_step(&m);
    const tuner_decision_t *d = last_for(&m, HAK_KNOB_THP_COST, UINT32_MAX);
    assert_non_null(d);
    assert_int_equal(d->old_value, 0);
    assert_int_equal(d->new_value, 1);
    assert_int_equal(d->reason, TUNER_R_FAULT_COST);
    assert_true(d->flags & TUNER_D_OBSERVED);
    assert_true(fabs(d->predicted - 5000000.0 / 640000.0) < 1e-9);
    assert_string_equal(tuner_knob_name(d->knob), "thp_cost");
    assert_string_equal(tuner_reason_name(d->reason), "fault_cost");
    for (int i = 0; i < 3; i++) {                          /* once: no new flip, no new decision */
        sim_work(&m, 0, 8, 1);
        sim_step(&m);
        assert_null(last_for(&m, HAK_KNOB_THP_COST, UINT32_MAX));
    }
    /* graded once more faults were timed: still dear, the refusal holds */
    m.s.counter[HAK_C_thp_fault_probes] += 1;
    m.s.knobs.thp_huge_fault_ns = 3000000;
    tuner_grade_t g[32];
    int confirmed = 0, refuted = 0;
    for (int i = 0; i < 6; i++) {
        sim_work(&m, 0, 8, 1);
        sim_step(&m);
        int ng = tuner_grade_pending(&m.st, &m.s, g, 32);
        for (int k = 0; k < ng; k++) {
            confirmed += g[k].grade == TUNER_GRADE_CONFIRMED && fabs(g[k].observed - 3000000.0 / 640000.0) < 1e-9;
            refuted += g[k].grade == TUNER_GRADE_REFUTED;
        }
    }
    assert_int_equal(confirmed, 1);
    assert_int_equal(refuted, 0);
    /* cheap again: the flip back is logged */
    m.s.knobs.thp_huge_fault_ns = 300000;
    m.s.knobs.thp_by_cost = 0;
    sim_work(&m, 0, 8, 1);
    sim_step(&m);
    d = last_for(&m, HAK_KNOB_THP_COST, UINT32_MAX);
    assert_non_null(d);
    assert_int_equal(d->old_value, 1);
    assert_int_equal(d->new_value, 0);
}

/* Batch grades have a stated tolerance (25% + 0.1 us/MiB): an observed flush
 * cost 2.5 x the predicted one is refuted, through the pending path too. */
static void test_grade_flush_tolerance(void **state) {
    (void)state;
    assert_int_equal(tuner_grade_flush(1400.0, 3500.0), TUNER_GRADE_REFUTED);   /* 1.4 vs 3.5 us/MiB */
    assert_int_equal(tuner_grade_flush(1400.0, 2.5 * 1400.0), TUNER_GRADE_REFUTED);
    assert_int_equal(tuner_grade_flush(100.0, 2.5 * 100.0), TUNER_GRADE_REFUTED);
    assert_int_equal(tuner_grade_flush(1400.0, 1400.0 * 1.25 + 100.0), TUNER_GRADE_CONFIRMED);
    assert_int_equal(tuner_grade_flush(1400.0, 900.0), TUNER_GRADE_CONFIRMED);   /* cheaper than predicted */
    assert_int_equal(tuner_grade_flush(0.0, 50.0), TUNER_GRADE_CONFIRMED);      /* within the noise floor */
    assert_int_equal(tuner_grade_flush(NAN, 50.0), TUNER_GRADE_INCONCLUSIVE);

    static tuner_state_t st;
    static hak_snapshot_t at, cur;
    tuner_cfg_t cfg;
    tuner_cfg_default(&cfg, NULL);
    tuner_init(&st, &cfg);
    st.pid = at.pid = cur.pid = 77;
    at.taken_ns = 1000000000ull;
    at.counter[HAK_C_batch_bytes_flushed] = 64 * MiB;
    at.counter[HAK_C_batch_flush_ns] = 100000;
    tuner_decision_t d = {.knob = HAK_KNOB_BATCH_THRESHOLD, .size_class = UINT32_MAX, .old_value = 4 * MiB,
                          .new_value = 64 * MiB, .reason = TUNER_R_FLUSH_COST, .driver_class = UINT32_MAX,
                          .predicted = 1400.0, .before = 5000.0};
    tuner_note_decision(&st, &d, 1, &at);
    cur = at;
    cur.taken_ns += 10ull * 1000000000ull;                        /* past the grade window */
    cur.counter[HAK_C_batch_bytes_flushed] += 100 * MiB;
    cur.counter[HAK_C_batch_flush_ns] += 100 * 3500;              /* 3.5 us per MiB */
    tuner_grade_t g[4];
    assert_int_equal(tuner_grade_pending(&st, &cur, g, 4), 1);
    assert_true(fabs(g[0].observed - 3500.0) < 1e-6);
    assert_int_equal(g[0].grade, TUNER_GRADE_REFUTED);
    assert_true(st.flush_alpha < 1.0);                            /* the refuted raise corrects the policy */
}

/* (f) The decision fields: per-class knobs name their class, the others are
 * global (UINT32_MAX); every knob and reason has a name; check_decision
 * (run on every decision of every test) holds the rest. */
static void test_decision_fields(void **state) {
    (void)state;
    static sim_t m;
    sim_init(&m, 4, 1 * GiB, NULL);
    sim_step(&m);
    sim_work(&m, 3, 40, 2);
    sim_step(&m);
    const tuner_decision_t *d = last_for(&m, HAK_KNOB_CLASS_CAP, 3);
    assert_non_null(d);
    assert_int_equal(d->size_class, 3);
    assert_int_equal(d->driver_class, 3);
    assert_null(last_for(&m, HAK_KNOB_CLASS_CAP, 0));
    assert_int_equal(m.cl[3].override, d->new_value);
    assert_int_equal(m.cl[0].override, GLOBAL);
    /* a global cap out of the configured bounds comes back: a global decision */
    tuner_cfg_t cfg;
    tuner_cfg_default(&cfg, &m.s);
    cfg.ring_cap_max = 64;
    sim_init(&m, 100, 1 * GiB, &cfg);
    sim_step(&m);
    sim_work(&m, 1, 2, 2);
    sim_step(&m);
    d = last_for(&m, HAK_KNOB_RING_CAP, UINT32_MAX);
    assert_non_null(d);
    assert_int_equal(d->reason, TUNER_R_BOUNDS);
    assert_int_equal(d->new_value, 64);
    /* TUNER_MAX_DECISIONS holds a cap and a THP decision for every class */
    assert_true(TUNER_MAX_DECISIONS >= 2 * HAK_SHM_CLASSES + 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_covered),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_opening),
        cmocka_unit_test(test_phased_demand_raises_cap),
        cmocka_unit_test(test_budget_respected),
        cmocka_unit_test(test_quiet_decays_slowly),
        cmocka_unit_test(test_small_steady),
        cmocka_unit_test(test_alternating_no_oscillation),
        cmocka_unit_test(test_phases_backoff),
        cmocka_unit_test(test_idle_trim_once),
        cmocka_unit_test(test_idle_nothing_held),
        cmocka_unit_test(test_flush_cost_threshold),
        cmocka_unit_test(test_flush_cost_kernel),
        cmocka_unit_test(test_flush_cost_learns),
        cmocka_unit_test(test_grading),
        cmocka_unit_test(test_pending_overflow),
        cmocka_unit_test(test_discontinuity),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_first_run_whole_demand),
        cmocka_unit_test(test_signal_mid_run_whole_demand),
        cmocka_unit_test(test_signal_steps_no_overshoot),
        cmocka_unit_test(test_steady_fixed_point),
        cmocka_unit_test(test_steady_adversarial_sampling),
        cmocka_unit_test(test_demand_falls_then_idle),
        cmocka_unit_test(test_budget_across_classes),
        cmocka_unit_test(test_thp_logged),
        cmocka_unit_test(test_thp_cost_logged),
        cmocka_unit_test(test_decision_fields),
        cmocka_unit_test(test_grade_flush_tolerance),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
