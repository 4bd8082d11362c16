/* test_knobs.c - the run-time knobs (knobs.c): the setters' bounds (clamped,
 * -ERANGE) and unknown knobs (-EINVAL), the values published in the segment,
 * control-block requests applied on the poll path of the next large free with
 * out-of-range values clamped and counted in control.rejected, and lowering
 * the byte budget (HAKMEM_KNOB_CACHE_MAX_BYTES) evicting cached blocks down
 * to it, through Batch. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

static uint64_t published(const uint64_t *field) {
    return atomic_load_explicit((_Atomic const uint64_t *)field, memory_order_acquire);
}

static int setup(void **state) {
    (void)state;
    hak_trim();
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold(4 * MiB), 0);
    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, GiB), 0);
    return 0;
}

static void test_set_in_range(void **state) {
    (void)state;
    assert_int_equal(hak_knob_set(HAKMEM_KNOB_RING_CAP, 9), 0);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), 9);
    assert_int_equal(published(&hak_seg->knobs.ring_cap), 9);
    assert_int_equal(hak_set_ring_cap(0), 0);                   /* 0 = no caching, a legal value */
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), 0);
    assert_int_equal(hak_set_ring_cap(HAK_RING_CAP_MAX), 0);    /* the bound itself is in range */
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), HAK_RING_CAP_MAX);

    assert_int_equal(hak_set_batch_threshold(8 * MiB), 0);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), 8 * MiB);
    assert_int_equal(published(&hak_seg->knobs.batch_threshold), 8 * MiB);
    assert_int_equal(hak_set_batch_threshold(HAK_BATCH_THRESHOLD_MIN), 0);
    assert_int_equal(hak_set_batch_threshold(HAK_BATCH_THRESHOLD_MAX), 0);

    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, 0), 0);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_CACHE_MAX_BYTES), 0);
    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, 3 * GiB), 0);
    assert_int_equal(published(&hak_seg->knobs.cache_max_bytes), 3 * GiB);
}

/* Out of range: the nearest bound is used and the caller hears -ERANGE. */
static void test_set_clamped(void **state) {
    (void)state;
    assert_int_equal(hak_set_ring_cap(HAK_RING_CAP_MAX + 1), -ERANGE);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), HAK_RING_CAP_MAX);
    assert_int_equal(hak_set_ring_cap(UINT64_MAX), -ERANGE);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), HAK_RING_CAP_MAX);
    assert_int_equal(published(&hak_seg->knobs.ring_cap), HAK_RING_CAP_MAX);

    assert_int_equal(hak_set_batch_threshold(1), -ERANGE);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), HAK_BATCH_THRESHOLD_MIN);
    assert_int_equal(hak_set_batch_threshold(0), -ERANGE);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), HAK_BATCH_THRESHOLD_MIN);
    assert_int_equal(hak_set_batch_threshold(HAK_BATCH_THRESHOLD_MAX + 1), -ERANGE);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), HAK_BATCH_THRESHOLD_MAX);
    assert_int_equal(published(&hak_seg->knobs.batch_threshold), HAK_BATCH_THRESHOLD_MAX);

    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, UINT64_MAX), -ERANGE);
    uint64_t budget_max = hak_knob_get(HAKMEM_KNOB_CACHE_MAX_BYTES);
    assert_true(budget_max >= GiB && budget_max < UINT64_MAX);
    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, budget_max), 0);   /* its bound is in range */
}

/* An unknown knob: -EINVAL, and no knob moves. */
static void test_unknown_knob(void **state) {
    (void)state;
    int knobs[] = {-1, HAKMEM_KNOB_RING_CAP + 1000, 12345};
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
        assert_int_equal(hak_knob_set(knobs[i], 7), -EINVAL);
        assert_int_equal(hak_knob_get(knobs[i]), 0);
    }
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), 4);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), 4 * MiB);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_CACHE_MAX_BYTES), GiB);
}

/* One large malloc/free pair: the operations that poll the control block. */
static void large_op(void) {
    void *p = hak_alloc(1 << 20);
    assert_non_null(p);
    hak_free(p);
}

/* A request in range is applied as asked, at the next large operation, and
 * acknowledged; nothing is counted as rejected. */
static void test_control_request_applied(void **state) {
    (void)state;
    hak_shm_control_t *ctl = &hak_seg->control;
    uint64_t rej0 = published(&ctl->rejected), app0 = cnt(HAK_C_ctl_applied);
    uint64_t seq = hak_shm_control_post(hak_seg, HAK_CTL_RING_CAP | HAK_CTL_BATCH_THRESHOLD, 6, 16 * MiB);
    assert_true(seq > published(&ctl->applied_seq));
    /* fixed mode runs no thread: nothing applies it before the next large operation */
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), 4);
    large_op();
    assert_int_equal(published(&ctl->applied_seq), seq);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), 6);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), 16 * MiB);
    assert_int_equal(published(&hak_seg->knobs.ring_cap), 6);
    assert_int_equal(published(&ctl->rejected), rej0);
    assert_int_equal(cnt(HAK_C_ctl_applied), app0 + 1);
    assert_true(published(&ctl->applied_ns) > 0);
    /* applied once: more operations change nothing */
    assert_int_equal(hak_set_ring_cap(5), 0);
    large_op();
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), 5);
    assert_int_equal(cnt(HAK_C_ctl_applied), app0 + 1);
}

/* Out-of-range values from another process are clamped, never trusted, and
 * every clamped value is counted in control.rejected. */
static void test_control_request_clamped(void **state) {
    (void)state;
    hak_shm_control_t *ctl = &hak_seg->control;
    uint64_t rej0 = published(&ctl->rejected);
    uint64_t seq = hak_shm_control_post(hak_seg, HAK_CTL_RING_CAP | HAK_CTL_BATCH_THRESHOLD, 100000, 1);
    large_op();
    assert_int_equal(published(&ctl->applied_seq), seq);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), HAK_RING_CAP_MAX);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), HAK_BATCH_THRESHOLD_MIN);
    assert_int_equal(published(&ctl->rejected), rej0 + 2);
    /* the other bound, one value at a time */
    seq = hak_shm_control_post(hak_seg, HAK_CTL_BATCH_THRESHOLD, 0, UINT64_MAX);
    large_op();
    assert_int_equal(published(&ctl->applied_seq), seq);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), HAK_BATCH_THRESHOLD_MAX);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), HAK_RING_CAP_MAX);    /* flag not set: untouched */
    assert_int_equal(published(&ctl->rejected), rej0 + 3);
    /* a size class that does not exist: rejected, nothing changes */
    seq = hak_shm_control_post_class(hak_seg, HAK_CTL_CLASS_CAP, HAK_NCLASSES + 7, 2, 0);
    large_op();
    assert_int_equal(published(&ctl->applied_seq), seq);
    assert_int_equal(published(&ctl->rejected), rej0 + 4);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), HAK_RING_CAP_MAX);
}

/* HAK_CTL_TRIM: every cached block goes to Batch at the next operation. */
static void test_control_trim(void **state) {
    (void)state;
    void *v[3];
    for (int i = 0; i < 3; i++) memset(v[i] = hak_alloc(3 << 20), 1, 3 << 20);   /* touched: THP keeps caching them */
    for (int i = 0; i < 3; i++) hak_free(v[i]);
    assert_int_equal(gauge(HAK_G_blocks_cached), 3);
    uint64_t trims0 = cnt(HAK_C_evict_idle_trim), seq = hak_shm_control_post(hak_seg, HAK_CTL_TRIM, 0, 0);
    void *p = hak_alloc(100 << 10);                 /* another class: the poll path, not a hit */
    assert_int_equal(published(&hak_seg->control.applied_seq), seq);
    assert_int_equal(gauge(HAK_G_blocks_cached), 0);
    assert_true(cnt(HAK_C_evict_idle_trim) - trims0 >= 3);
    hak_free(p);
}

/* Lowering the byte budget evicts cached blocks down to it at once (not at
 * the next free), through Batch: with 4 x 2 MiB cached, a 5 MiB budget keeps
 * 2 of them and a budget of 0 keeps none. */
static void test_budget_lowered_evicts(void **state) {
    (void)state;
    assert_int_equal(hak_set_batch_threshold(GiB), 0);         /* evicted blocks stay pending: countable */
    void *v[4];
    for (int i = 0; i < 4; i++) memset(v[i] = hak_alloc(2 << 20), 1, 2 << 20);   /* touched: THP keeps caching them */
    for (int i = 0; i < 4; i++) hak_free(v[i]);
    assert_int_equal(gauge(HAK_G_blocks_cached), 4);
    assert_int_equal(gauge(HAK_G_bytes_cached), 8 * MiB);
    int64_t pending0 = gauge(HAK_G_bytes_pending);
    uint64_t budget0 = cnt(HAK_C_evict_budget), munmap0 = cnt(HAK_C_munmap_calls);

    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, 5 * MiB), 0);
    assert_int_equal(gauge(HAK_G_bytes_cached), 4 * MiB);
    assert_int_equal(gauge(HAK_G_blocks_cached), 2);
    assert_int_equal(cnt(HAK_C_evict_budget), budget0 + 2);
    assert_int_equal(gauge(HAK_G_bytes_pending), pending0 + (int64_t)(4 * MiB));

    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, 0), 0);
    assert_int_equal(gauge(HAK_G_bytes_cached), 0);
    assert_int_equal(gauge(HAK_G_blocks_cached), 0);
    assert_int_equal(cnt(HAK_C_evict_budget), budget0 + 4);
    assert_int_equal(gauge(HAK_G_bytes_pending), pending0 + (int64_t)(8 * MiB));
    assert_int_equal(cnt(HAK_C_munmap_calls), munmap0);           /* Batch holds them: nothing unmapped yet */

    /* Batch releases them (what a later free keeps is the front cache's
     * business: HAKMEM_CACHE_MAX_BYTES bounds the rings, see tcache.c) */
    hak_flush();
    assert_int_equal(gauge(HAK_G_bytes_pending), 0);
    assert_true(cnt(HAK_C_munmap_calls) > munmap0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_set_in_range, setup),
        cmocka_unit_test_setup(test_set_clamped, setup),
        cmocka_unit_test_setup(test_unknown_knob, setup),
        cmocka_unit_test_setup(test_control_request_applied, setup),
        cmocka_unit_test_setup(test_control_request_clamped, setup),
        cmocka_unit_test_setup(test_control_trim, setup),
        cmocka_unit_test_setup(test_budget_lowered_evicts, setup),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
