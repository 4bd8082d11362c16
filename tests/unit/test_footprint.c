/* test_footprint.c - the peak bound (footprint.c): warm blocks that would take
 * the process past the program's own high-water mark of requested bytes go
 * before fresh memory is mapped; a program that frees and asks again keeps
 * all of them; a lent block gives back a smaller tail while the bound is
 * exceeded; HAKMEM_PEAK_BOUND=0 turns it off.  The blocks are mapped but
 * mostly never touched: the bound counts bytes, not pages. */
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
#include "test_pages.h"

#define MIB ((size_t)1 << 20)

static int setup(void **state) {
    (void)state;
    hak_trim();
    hak_opt.peak_bound = 1;
    hak_footprint_reset();
    assert_int_equal(hak_set_ring_cap(16), 0);
    assert_int_equal(hak_set_batch_threshold((uint64_t)1 << 30), 0);   /* only the bound flushes */
    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, (uint64_t)4 << 30), 0);
    return 0;
}

/* Eight 32 MiB blocks live together (256 MiB requested), then all freed:
 * asked for again, they are all hits, and nothing is given back. */
static void test_phases_keep_everything(void **state) {
    (void)state;
    void *v[8];
    for (int i = 0; i < 8; i++) assert_non_null(v[i] = hak_alloc(32 * MIB));
    for (int i = 0; i < 8; i++) hak_free(v[i]);
    assert_int_equal(gauge(HAK_G_blocks_cached), 8);
    uint64_t f0 = cnt(HAK_C_peak_fits), h0 = cnt(HAK_C_cache_hits), mm0 = cnt(HAK_C_mmap_calls);
    for (int i = 0; i < 8; i++) assert_non_null(v[i] = hak_alloc(32 * MIB));
    assert_int_equal(cnt(HAK_C_cache_hits), h0 + 8);
    assert_int_equal(cnt(HAK_C_mmap_calls), mm0);
    assert_int_equal(cnt(HAK_C_peak_fits), f0);
    assert_int_equal(gauge(HAK_G_bytes_requested), 8 * 32 * MIB);
    for (int i = 0; i < 8; i++) hak_free(v[i]);
    assert_int_equal(gauge(HAK_G_bytes_requested), 0);
}

/* The same 256 MiB cached, then a 200 MiB request that no cached block can
 * serve: mapped fresh, it would hold 200 + 24 (its class, 224 MiB) + 256
 * cached against a high-water mark of 256 and a slack of 64 MiB (the floor;
 * 256/8 is less): 160 MiB over, so five 32 MiB blocks go first, released at
 * once (nothing pending after), the newest three stay. */
static void test_shed_before_fresh(void **state) {
    (void)state;
    void *v[8];
    for (int i = 0; i < 8; i++) assert_non_null(v[i] = hak_alloc(32 * MIB));
    for (int i = 0; i < 8; i++) hak_free(v[i]);
    uint64_t f0 = cnt(HAK_C_peak_fits), s0 = cnt(HAK_C_peak_shed_bytes), u0 = cnt(HAK_C_munmap_calls);
    void *big = hak_alloc(200 * MIB);
    assert_non_null(big);
    assert_int_equal(cnt(HAK_C_peak_fits), f0 + 1);
    assert_int_equal(cnt(HAK_C_peak_shed_bytes), s0 + 160 * MIB);
    assert_int_equal(gauge(HAK_G_blocks_cached), 3);
    assert_int_equal(gauge(HAK_G_bytes_pending), 0);
    assert_true(cnt(HAK_C_munmap_calls) > u0);
    hak_free(big);
    for (int i = 7; i >= 5; i--) assert_ptr_equal(hak_alloc(32 * MIB), v[i]);   /* the newest stayed */
    for (int i = 5; i < 8; i++) hak_free(v[i]);
}

/* The same with the blocks in this thread's front cache instead of the
 * rings: its oldest go. */
static void test_shed_front_cache(void **state) {
    (void)state;
    hak_tcache_max_bytes = (uint64_t)256 << 20;
    void *v[8];
    for (int i = 0; i < 8; i++) assert_non_null(v[i] = hak_alloc(32 * MIB));
    for (int i = 0; i < 8; i++) hak_free(v[i]);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 8);
    uint64_t s0 = cnt(HAK_C_peak_shed_bytes);
    void *big = hak_alloc(200 * MIB);
    assert_non_null(big);
    assert_int_equal(cnt(HAK_C_peak_shed_bytes), s0 + 160 * MIB);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 3);
    assert_int_equal(gauge(HAK_G_bytes_pending), 0);
    hak_free(big);
    for (int i = 7; i >= 5; i--) assert_ptr_equal(hak_alloc(32 * MIB), v[i]);   /* the newest stayed */
    for (int i = 5; i < 8; i++) hak_free(v[i]);
    hak_tcache_drain();
    hak_tcache_max_bytes = 0;
}

/* The bound off: the same steps shed nothing. */
static void test_bound_off(void **state) {
    (void)state;
    hak_opt.peak_bound = 0;
    void *v[8];
    for (int i = 0; i < 8; i++) assert_non_null(v[i] = hak_alloc(32 * MIB));
    for (int i = 0; i < 8; i++) hak_free(v[i]);
    uint64_t f0 = cnt(HAK_C_peak_fits), u0 = cnt(HAK_C_munmap_calls);
    void *big = hak_alloc(200 * MIB);
    assert_non_null(big);
    assert_int_equal(cnt(HAK_C_peak_fits), f0);
    assert_int_equal(cnt(HAK_C_munmap_calls), u0);
    assert_int_equal(gauge(HAK_G_blocks_cached), 8);
    hak_free(big);
    hak_opt.peak_bound = 1;
}

/* A 24 MiB block written whole, lent to an 18 MiB request: the 6 MiB tail is
 * below the 8 MiB of the unbounded rule, so it stays while the bound holds.
 * Ten live blocks of class 80 MiB asked for 64 MiB + 1 each hold 160 MiB
 * the program did not ask for, past the slack (640/8 = 80 MiB): such a
 * lend then gives the tail back. */
static void test_tail_released_beyond_bound(void **state) {
    (void)state;
    unsigned char *p = NULL;                                 /* page-aligned: no color */
    assert_int_equal(hak_memalign((void **)&p, HAK_PAGE, 24 * MIB), 0);
    memset(p, 0x5a, 24 * MIB);
    hak_free(p);
    uint64_t r0 = cnt(HAK_C_lent_tail_released);
    unsigned char *q = hak_alloc(18 * MIB);                  /* class 20 MiB: the 24 MiB block is lent */
    assert_ptr_equal(q, p);
    assert_int_equal(cnt(HAK_C_lent_tail_released), r0);
    assert_int_equal(pages_present(q + 18 * MIB, q + 18 * MIB + 6 * MIB), 6 * MIB / 4096);
    hak_free(q);

    void *w[10];
    for (int i = 0; i < 10; i++) assert_non_null(w[i] = hak_alloc(64 * MIB + 1));
    assert_true(hak_footprint_over(0, 0) > 0);
    assert_int_equal(hak_memalign((void **)&p, HAK_PAGE, 24 * MIB), 0);   /* its fit shed the first */
    memset(p, 0x5a, 24 * MIB);
    hak_free(p);
    uint64_t b0 = cnt(HAK_C_lent_tail_bytes);
    q = hak_alloc(18 * MIB);
    assert_ptr_equal(q, p);
    assert_int_equal(cnt(HAK_C_lent_tail_released), r0 + 1);
    assert_int_equal(cnt(HAK_C_lent_tail_bytes), b0 + 6 * MIB);
    assert_int_equal(pages_present(q + 18 * MIB, q + 18 * MIB + 6 * MIB), 0);
    assert_int_equal(pages_present(q, q + 18 * MIB), 18 * MIB / 4096);   /* the request's part: warm */
    assert_int_equal(q[18 * MIB - 1], 0x5a);
    hak_free(q);
    for (int i = 0; i < 10; i++) hak_free(w[i]);
}

/* realloc keeps bytes_requested right: shrinking in place and growing. */
static void test_requested_follows_realloc(void **state) {
    (void)state;
    int64_t g0 = gauge(HAK_G_bytes_requested);
    void *p = hak_alloc(3 * MIB);
    assert_int_equal(gauge(HAK_G_bytes_requested), g0 + (int64_t)(3 * MIB));
    p = hak_realloc(p, 2 * MIB + 5);
    assert_int_equal(gauge(HAK_G_bytes_requested), g0 + (int64_t)(2 * MIB + 5));
    p = hak_realloc(p, 9 * MIB);
    assert_int_equal(gauge(HAK_G_bytes_requested), g0 + (int64_t)(9 * MIB));
    assert_true(gauge(HAK_G_bytes_live) >= gauge(HAK_G_bytes_requested));
    hak_free(p);
    assert_int_equal(gauge(HAK_G_bytes_requested), g0);
}

int main(void) {
    /* this thread gets a front cache with its slot (its first operation);
     * the tests use the rings alone but test_shed_front_cache */
    hak_tcache_max_bytes = (uint64_t)256 << 20;
    hak_free(hak_alloc(1 << 20));
    hak_trim();
    hak_tcache_max_bytes = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_phases_keep_everything, setup),
        cmocka_unit_test_setup(test_shed_before_fresh, setup),
        cmocka_unit_test_setup(test_shed_front_cache, setup),
        cmocka_unit_test_setup(test_bound_off, setup),
        cmocka_unit_test_setup(test_tail_released_beyond_bound, setup),
        cmocka_unit_test_setup(test_requested_follows_realloc, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
