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

/* A probe of a class that has since chosen huge pages is advised huge when
 * it is freed (before it is cached): the pages it has yet to touch come huge
 * at its next use, and it is a probe no more. */
static void test_warm_probe_upgraded(void **state) {
    (void)state;
    if (hak_os_thp_effective() != 1) skip();
    assert_int_equal(hak_set_ring_cap(4), 0);
    size_t size = (size_t)12 << 20;
    uint32_t k = hak_size_class(size);
    void *p = hak_alloc(size);
    hak_block_t *b = hak_registry_lookup(p);
    assert_true(b->flags & HAK_BF_PROBE);
    assert_int_equal(hak_set_class_thp(k, HAK_CTHP_HUGE), 0);
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
        cmocka_unit_test_setup(test_set_class_thp_bounds, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
