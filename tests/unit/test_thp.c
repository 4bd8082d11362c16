/* test_thp.c - THP per size class chosen from what the program touches
 * (HAKMEM_THP=auto): probes sampled at free decide HUGE or SMALL, fresh
 * blocks follow the choice, a huge block of a SMALL class is not cached,
 * and hak_set_class_thp overrides; classes learn from each other (the pool),
 * and a probe freed after its class chose huge pages gets them.
 * Skipped where the kernel has THP off. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"

static int setup(void **state) {
    (void)state;
    hak_trim();
    assert_int_equal(hak_set_ring_cap(0), 0);          /* every block fresh: probes come round */
    hak_opt.thp_fault_cost = 0;                        /* madvise counts exact; the fault-cost tests turn it on */
    hak_thp_init();                                    /* every class undecided, the pool empty */
    return 0;
}

static uint32_t thp_state(uint32_t c) { return HAK_CTHP_STATE(hak_seg->classes[c].thp); }

/* Map n blocks of size bytes, write `touch` bytes of each, free them all. */
static void churn(size_t size, size_t touch, int n) {
    unsigned char *v[32];
    for (int i = 0; i < n; i++) {
        v[i] = hak_alloc(size);
        assert_non_null(v[i]);
        for (size_t o = 0; o < touch; o += 4096) v[i][o] = 1;
    }
    for (int i = 0; i < n; i++) hak_free(v[i]);
}

static void test_partial_touch_chooses_small(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t size = (size_t)4 << 20;
    uint32_t c = hak_size_class(size);
    assert_int_equal(thp_state(c), HAK_CTHP_UNDECIDED);
    uint64_t s0 = cnt(HAK_C_thp_samples), ma0 = cnt(HAK_C_madvise_calls);
    churn(size, 128 << 10, 32);                         /* 3% touched, each right after malloc */
    assert_int_equal(cnt(HAK_C_thp_samples), s0 + 4);   /* decided at the 5th block, from 4 probes */
    /* not one huge page in the first round: peak RSS stays what the program touches */
    assert_int_equal(cnt(HAK_C_madvise_calls), ma0);
    assert_int_equal(thp_state(c), HAK_CTHP_SMALL);
    assert_int_equal(HAK_CTHP_SAMPLES(hak_seg->classes[c].thp), 4);
    assert_true(HAK_CTHP_PERMILLE(hak_seg->classes[c].thp) < 100);
    /* fresh blocks of the class: no MADV_HUGEPAGE any more */
    uint64_t m0 = cnt(HAK_C_madvise_calls);
    churn(size, 4096, 4);
    assert_int_equal(cnt(HAK_C_madvise_calls), m0);
}

static void test_full_touch_chooses_huge(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t size = (size_t)6 << 20;
    uint32_t c = hak_size_class(size);
    uint64_t ma0 = cnt(HAK_C_madvise_calls);
    churn(size, size, 32);
    assert_int_equal(thp_state(c), HAK_CTHP_HUGE);
    /* decided at the 5th block: the 27 after it were mapped with huge pages,
     * and the 5 probes got them when freed */
    assert_int_equal(cnt(HAK_C_madvise_calls), ma0 + 27 + 5);
    assert_true(HAK_CTHP_PERMILLE(hak_seg->classes[c].thp) >= 900);
    uint64_t m0 = cnt(HAK_C_madvise_calls);
    churn(size, 4096, 2);
    assert_int_equal(cnt(HAK_C_madvise_calls), m0 + 2);   /* every fresh block advised */
}

/* A huge block freed after its class chose SMALL goes to Batch, not the ring
 * (the memory its huge pages hold comes back). */
static void test_huge_block_of_small_class_not_cached(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t size = (size_t)10 << 20;
    uint32_t c = hak_size_class(size);
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_class_thp(c, HAK_CTHP_HUGE), 0);
    void *p = hak_alloc(size);
    hak_block_t *b = hak_registry_lookup(p);
    assert_non_null(b);
    assert_true(b->flags & HAK_BF_HUGE);
    assert_int_equal(hak_set_class_thp(c, HAK_CTHP_SMALL), 0);
    uint64_t u0 = cnt(HAK_C_evict_uncacheable);
    hak_free(p);
    assert_int_equal(cnt(HAK_C_evict_uncacheable), u0 + 1);
    assert_int_equal(hak_seg->classes[c].cached_blocks, 0);
    /* a 4 KiB-page block of the class is cached as usual */
    void *q = hak_alloc(size);
    assert_false(hak_registry_lookup(q)->flags & HAK_BF_HUGE);
    hak_free(q);
    assert_int_equal(hak_seg->classes[c].cached_blocks, 1);
}

/* Once the program's samples (any class) say it touches what it allocates,
 * a class never seen maps huge pages from its first block. */
static void test_pool_decides_new_class(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t a = (size_t)3 << 20, c = (size_t)40 << 20;
    churn(a, a, 6);
    assert_int_equal(thp_state(hak_size_class(a)), HAK_CTHP_HUGE);       /* by its own 4 samples */
    uint32_t k = hak_size_class(c);
    assert_int_equal(thp_state(k), HAK_CTHP_UNDECIDED);
    uint64_t ma0 = cnt(HAK_C_madvise_calls);
    void *p = hak_alloc(c);
    hak_block_t *b = hak_registry_lookup(p);
    assert_true(b->flags & HAK_BF_HUGE);
    assert_false(b->flags & HAK_BF_PROBE);
    assert_int_equal(cnt(HAK_C_madvise_calls), ma0 + 1);                 /* MADV_HUGEPAGE at its map */
    assert_int_equal(thp_state(k), HAK_CTHP_HUGE);
    /* published with the pool's figures */
    assert_true(HAK_CTHP_SAMPLES(hak_seg->classes[k].thp) >= 4);
    assert_true(HAK_CTHP_PERMILLE(hak_seg->classes[k].thp) >= 750);
    hak_free(p);
}

/* A pool of partly touched blocks decides nothing: a new class probes. */
static void test_pool_of_partial_touch_keeps_probing(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t a = (size_t)3 << 20, c = (size_t)40 << 20;
    churn(a, 64 << 10, 6);
    assert_int_equal(thp_state(hak_size_class(a)), HAK_CTHP_SMALL);
    void *p = hak_alloc(c);
    hak_block_t *b = hak_registry_lookup(p);
    assert_false(b->flags & HAK_BF_HUGE);
    assert_true(b->flags & HAK_BF_PROBE);
    assert_int_equal(thp_state(hak_size_class(c)), HAK_CTHP_UNDECIDED);
    hak_free(p);
}

/* A class whose own samples say "partly touched" does not follow a pool
 * that says huge: it decides alone. */
static void test_own_samples_beat_the_pool(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t c = (size_t)40 << 20;
    uint32_t k = hak_size_class(c);
    churn(c, 64 << 10, 2);                              /* 2 probes, 3 samples: not decided */
    assert_int_equal(thp_state(k), HAK_CTHP_UNDECIDED);
    assert_true(HAK_CTHP_SAMPLES(hak_seg->classes[k].thp) >= 1);
    size_t full[] = {(size_t)3 << 20, (size_t)5 << 20, (size_t)7 << 20, (size_t)9 << 20};
    for (int i = 0; i < 4; i++) churn(full[i], full[i], 6);
    void *p = hak_alloc(c);
    hak_block_t *b = hak_registry_lookup(p);
    assert_true(b->flags & HAK_BF_PROBE);
    assert_false(b->flags & HAK_BF_HUGE);
    /* while a class that has no samples of its own follows the pool */
    void *q = hak_alloc((size_t)60 << 20);
    assert_true(hak_registry_lookup(q)->flags & HAK_BF_HUGE);
    hak_free(q);
    hak_free(p);
}

/* A live probe of a 12 MiB class (cached on free), whose class then chooses
 * st: its block; *p gets its pointer. */
static hak_block_t *probe_then_class(uint32_t st, void **p) {
    assert_int_equal(hak_set_ring_cap(4), 0);
    size_t size = (size_t)12 << 20;
    *p = hak_alloc(size);
    hak_block_t *b = hak_registry_lookup(*p);
    assert_non_null(b);
    assert_true(b->flags & HAK_BF_PROBE);
    assert_int_equal(hak_set_class_thp(hak_size_class(size), st), 0);
    return b;
}

/* A probe of a class that has since chosen huge pages is advised huge when
 * it is freed (before it is cached): the pages it has yet to touch come huge
 * at its next use, and it is a probe no more. */
static void test_warm_probe_upgraded(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t size = (size_t)12 << 20;
    uint32_t k = hak_size_class(size);
    void *p;
    hak_block_t *b = probe_then_class(HAK_CTHP_HUGE, &p);
    uint64_t ma0 = cnt(HAK_C_madvise_calls), h0 = cnt(HAK_C_cache_hits);
    hak_free(p);
    assert_int_equal(cnt(HAK_C_madvise_calls), ma0 + 1);
    assert_true(b->flags & HAK_BF_HUGE);
    assert_false(b->flags & HAK_BF_PROBE);
    assert_int_equal(hak_seg->classes[k].cached_blocks, 1);   /* kept: a huge block of a HUGE class */
    void *q = hak_alloc(size);
    assert_ptr_equal(q, p);
    assert_int_equal(cnt(HAK_C_cache_hits), h0 + 1);
    hak_free(q);                                         /* once: it is a huge block now */
    assert_int_equal(cnt(HAK_C_madvise_calls), ma0 + 1);
}

/* A probe of a class that has since chosen 4 KiB pages is a probe no more
 * once it is freed: it keeps its pages, and its later frees (front-cache
 * hits included) do not sample it again. */
static void test_warm_probe_of_small_class_retired(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    void *p;
    hak_block_t *b = probe_then_class(HAK_CTHP_SMALL, &p);
    uint64_t ma0 = cnt(HAK_C_madvise_calls), s0 = cnt(HAK_C_thp_samples);
    hak_free(p);
    assert_false(b->flags & HAK_BF_PROBE);
    assert_false(b->flags & HAK_BF_HUGE);
    assert_int_equal(cnt(HAK_C_madvise_calls), ma0);           /* nothing advised */
    void *q = hak_alloc((size_t)12 << 20);
    assert_ptr_equal(q, p);                                   /* still cached and reused */
    hak_free(q);
    assert_int_equal(cnt(HAK_C_thp_samples), s0);
    assert_false(b->flags & HAK_BF_PROBE);
}

/* The fault-cost gate (HAKMEM_THP_FAULT_COST), with measurements put in: a
 * HUGE class's fresh block is measured first (never measured yet); while a
 * huge-page fault costs more than 1.5x 512 small ones, fresh blocks get 4 KiB
 * pages, and every 32nd measures again; recent measurements weigh most, and
 * cheap huge faults open the gate again. */
static int64_t fake_huge_ns, fake_small_ns;
static int fake_huge_calls, fake_small_calls;
static int64_t fake_huge(void) { fake_huge_calls++; return fake_huge_ns; }
static int64_t fake_small(void) { fake_small_calls++; return fake_small_ns; }

static void fakes_on(int64_t huge_ns, int64_t small_ns) {
    hak_thp_huge_fault_probe = fake_huge;
    hak_thp_small_fault_probe = fake_small;
    fake_huge_ns = huge_ns;
    fake_small_ns = small_ns;
    fake_huge_calls = fake_small_calls = 0;
    hak_thp_reprobe_ns = UINT64_MAX;                   /* counts only, no clock (test_fault_cost_reprobe_time) */
}

static void fakes_off(void) {
    hak_thp_huge_fault_probe = hak_os_huge_fault_ns;
    hak_thp_small_fault_probe = hak_os_small_fault_ns;
    hak_thp_reprobe_ns = 1000000000ull;
    hak_opt.thp_fault_cost = 0;
}

/* The fault-cost tests' class: 6 MiB blocks, HUGE, the weighing on or off. */
#define COST_SIZE ((size_t)6 << 20)
static uint32_t huge_class(int cost_on) {
    hak_opt.thp_fault_cost = (uint64_t)cost_on;
    hak_thp_init();
    uint32_t c = hak_size_class(COST_SIZE);
    assert_int_equal(hak_set_class_thp(c, HAK_CTHP_HUGE), 0);
    return c;
}

static void test_fault_cost_gate(void **state) {
    (void)state;
    if (hak_os_thp_effective() == 0) skip();
    size_t size = COST_SIZE;
    uint32_t c = huge_class(1);
    assert_true(hak_thp_huge_pays());                     /* nothing measured: as before */
    fakes_on(5000000, 1000);
    hak_thp_note_fault_cost(5000000, 1000);               /* 5 ms against 512 x 1 us */
    assert_false(hak_thp_huge_pays());
    assert_false(hak_thp_class_wants_huge(c));
    assert_int_equal(hak_seg->knobs.thp_huge_fault_ns, 5000000);
    assert_int_equal(hak_seg->knobs.thp_small_fault_ns, 512 * 1000);
    uint64_t s0 = cnt(HAK_C_thp_small_by_cost), p0 = cnt(HAK_C_thp_fault_probes);
    uint32_t flags = 0;
    for (int i = 0; i < 64; i++) {
        flags = 0;
        assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_SMALL);
        assert_int_equal(flags, 0);
    }
    assert_int_equal(fake_huge_calls, 2);                 /* the 32nd and the 64th refused block timed again */
    assert_int_equal(fake_small_calls, 1);                /* the first time, 4 KiB faults too */
    assert_int_equal(cnt(HAK_C_thp_fault_probes), p0 + 2);
    assert_int_equal(cnt(HAK_C_thp_small_by_cost), s0 + 64);
    /* a fresh block while the gate is shut: 4 KiB pages, usable */
    unsigned char *p = hak_alloc(size);
    assert_non_null(p);
    hak_block_t *b = hak_registry_lookup(p);
    assert_non_null(b);
    assert_false(b->flags & HAK_BF_HUGE);
    assert_int_equal(cnt(HAK_C_thp_small_by_cost), s0 + 65);
    memset(p, 0x5a, size);
    assert_int_equal(p[size - 1], 0x5a);
    hak_free(p);
    /* cheap huge faults again: each halves the average, 5 -> 2.55 -> 1.33 ->
     * 0.71 ms, and the third is below 1.5 x 512 us */
    fake_huge_ns = 100000;
    for (int i = 65; i < 3 * 32; i++) assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_SMALL);
    assert_int_equal(fake_huge_calls, 3);
    for (int i = 0; i < 32; i++) assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_SMALL);
    assert_int_equal(fake_huge_calls, 4);
    assert_false(hak_thp_huge_pays());
    for (int i = 0; i < 31; i++) assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_SMALL);
    assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_HUGE);     /* the third cheap one opens it */
    assert_int_equal(fake_huge_calls, 5);
    assert_true(hak_thp_huge_pays());
    assert_true(hak_thp_class_wants_huge(c));
    assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_HUGE);     /* open: nothing timed in choose */
    assert_int_equal(fake_huge_calls, 5);
    /* a probe the kernel refuses (before 5.14: EINVAL) turns the weighing off for good */
    hak_thp_note_fault_cost(50000000, 0);
    assert_false(hak_thp_huge_pays());
    fake_huge_ns = -EINVAL;
    for (int i = 0; i < 32; i++) hak_thp_choose(c, &flags);
    assert_true(hak_thp_huge_pays());
    assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_HUGE);
    fakes_off();
}

/* While huge pages are refused, a block that comes long enough after the last
 * measurement is preceded by one, whatever the count (here: any time). */
static void test_fault_cost_reprobe_time(void **state) {
    (void)state;
    if (hak_os_thp_effective() == 0) skip();
    uint32_t c = huge_class(1);
    fakes_on(5000000, 1000);
    hak_thp_note_fault_cost(5000000, 1000);
    uint32_t flags = 0;
    assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_SMALL);
    assert_int_equal(fake_huge_calls, 0);                 /* counts only: not the 32nd */
    hak_thp_reprobe_ns = 0;
    for (int i = 0; i < 3; i++) assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_SMALL);
    assert_int_equal(fake_huge_calls, 3);                 /* each one timed: 5 ms, still refused */
    fake_huge_ns = 100000;
    hak_thp_choose(c, &flags);
    hak_thp_choose(c, &flags);
    assert_int_equal(hak_thp_choose(c, &flags), HAK_OS_THP_HUGE);     /* three cheap ones in a row */
    assert_int_equal(fake_huge_calls, 6);
    fakes_off();
}

/* The real measurement: a fresh block of a HUGE class has its first 2 MiB
 * faulted in and timed; the figures reach the segment.  Here every real
 * fault is made dear (4 KiB faults said to cost 1 ns), so the block that
 * measured it keeps its first huge page and gets 4 KiB pages for the rest,
 * and the next fresh block gets 4 KiB pages. */
static void test_fault_cost_measured(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t size = COST_SIZE;
    (void)huge_class(1);
    fakes_on(1, 1);                                       /* the library's own probes: 1 ns */
    hak_thp_huge_fault_probe = hak_os_huge_fault_ns;      /* ... but the blocks' faults are real */
    hak_thp_note_fault_cost(1, 1);                        /* pays: 1 ns <= 1.5 x 512 ns */
    assert_true(hak_thp_huge_pays());
    uint64_t f0 = cnt(HAK_C_thp_fault_probes), s0 = cnt(HAK_C_thp_small_by_cost);
    unsigned char *p = hak_alloc(size);
    assert_non_null(p);
    hak_block_t *b = hak_registry_lookup(p);
    if (cnt(HAK_C_thp_fault_probes) == f0) {
        hak_free(p);
        fakes_off();
        skip();                                            /* MADV_POPULATE_WRITE refused: kernel < 5.14 */
    }
    assert_int_equal(cnt(HAK_C_thp_fault_probes), f0 + 1);
    static unsigned char vec[512];
    assert_int_equal(hak_os_resident((uintptr_t)p, HAK_HUGE_PAGE, vec), 512);   /* faulted in before the program */
    assert_true(hak_seg->knobs.thp_huge_fault_ns > 1000);  /* a real fault takes more than 1 us */
    assert_false(hak_thp_huge_pays());
    assert_false(b->flags & HAK_BF_HUGE);                  /* the rest of it: 4 KiB pages */
    assert_int_equal(cnt(HAK_C_thp_small_by_cost), s0 + 1);
    memset(p, 1, size);
    void *q = hak_alloc(size);                             /* ring cap 0: fresh, refused huge pages */
    assert_false(hak_registry_lookup(q)->flags & HAK_BF_HUGE);
    assert_int_equal(cnt(HAK_C_thp_small_by_cost), s0 + 2);
    hak_free(q);
    hak_free(p);
    fakes_off();
}

/* HAKMEM_THP_FAULT_COST=0: the touches alone decide; nothing is timed. */
static void test_fault_cost_off(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    size_t size = COST_SIZE;
    (void)huge_class(0);
    fakes_on(50000000, 1000);
    hak_thp_note_fault_cost(50000000, 1000);
    assert_true(hak_thp_huge_pays());
    uint64_t f0 = cnt(HAK_C_thp_fault_probes), s0 = cnt(HAK_C_thp_small_by_cost);
    void *p = hak_alloc(size);
    assert_true(hak_registry_lookup(p)->flags & HAK_BF_HUGE);
    hak_free(p);
    assert_int_equal(fake_huge_calls, 0);
    assert_int_equal(cnt(HAK_C_thp_fault_probes), f0);
    assert_int_equal(cnt(HAK_C_thp_small_by_cost), s0);
    fakes_off();
}

static void test_set_class_thp_bounds(void **state) {
    (void)state;
    uint32_t small = hak_size_class(256 << 10);
    assert_int_equal(hak_set_class_thp(small, HAK_CTHP_HUGE), -EINVAL);   /* below 2 MiB */
    assert_int_equal(hak_set_class_thp(HAK_NCLASSES, HAK_CTHP_HUGE), -EINVAL);
    if (hak_os_thp_effective() == 0) return;
    uint32_t c = hak_size_class((size_t)64 << 20);
    assert_int_equal(hak_set_class_thp(c, 7), -EINVAL);
    assert_int_equal(hak_set_class_thp(c, HAK_CTHP_SMALL), 0);
    assert_int_equal(thp_state(c), HAK_CTHP_SMALL);
}

int main(void) {
    hak_tcache_max_bytes = 0;      /* the rings themselves (test_tcache.c has the front cache) */
    setenv("HAKMEM_THP", "auto", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_partial_touch_chooses_small, setup),
        cmocka_unit_test_setup(test_full_touch_chooses_huge, setup),
        cmocka_unit_test_setup(test_huge_block_of_small_class_not_cached, setup),
        cmocka_unit_test_setup(test_pool_decides_new_class, setup),
        cmocka_unit_test_setup(test_pool_of_partial_touch_keeps_probing, setup),
        cmocka_unit_test_setup(test_own_samples_beat_the_pool, setup),
        cmocka_unit_test_setup(test_warm_probe_upgraded, setup),
        cmocka_unit_test_setup(test_warm_probe_of_small_class_retired, setup),
        cmocka_unit_test_setup(test_fault_cost_gate, setup),
        cmocka_unit_test_setup(test_fault_cost_reprobe_time, setup),
        cmocka_unit_test_setup(test_fault_cost_measured, setup),
        cmocka_unit_test_setup(test_fault_cost_off, setup),
        cmocka_unit_test_setup(test_set_class_thp_bounds, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
