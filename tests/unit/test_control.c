/* test_control.c - issue 13, defects 9 and 10:
 *   - two requests posted before the library applies either are merged: both
 *     take effect (the second used to overwrite the first's flags and values);
 *   - a forked child that cannot copy the segment (ENOMEM) counts in memory of
 *     its own, never in the parent's shared segment;
 * and a knob lowered by a thread that never made an allocator call (the
 * tuner's thread, a control thread) evicts inside an operation bracket of
 * its own (it used to count into a thread slot it did not have). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"

static void apply_now(void) {
    /* the library applies pending requests at its next large operation */
    hak_free(hak_alloc(1 << 20));
}

static void test_posts_merge(void **state) {
    (void)state;
    apply_now();
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold(4 << 20), 0);
    uint64_t s1 = hak_shm_control_post(hak_seg, HAK_CTL_RING_CAP, 7, 0);
    uint64_t s2 = hak_shm_control_post(hak_seg, HAK_CTL_BATCH_THRESHOLD, 0, 2 << 20);
    uint32_t c = hak_size_class(3 << 20);
    uint64_t s3 = hak_shm_control_post_class(hak_seg, HAK_CTL_CLASS_CAP, c, 9, 0);
    assert_true(s1 < s2 && s2 < s3);
    apply_now();
    assert_true(atomic_load((_Atomic uint64_t *)&hak_seg->control.applied_seq) >= s3);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), 7);                 /* not lost to the 2nd post */
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD), 2 << 20);
    assert_int_equal(hak_seg->classes[c].cap, 9);
    assert_int_equal(hak_seg->classes[c].class_cap, 9);
    assert_int_equal(hak_set_class_cap(c, HAK_CLASS_CAP_GLOBAL), 0);
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold(4 << 20), 0);
}

static void test_child_without_memory_counts_privately(void **state) {
    (void)state;
    if (!hak_shm_is_shared()) skip();                   /* no /dev/shm here: nothing to leak into */
    apply_now();
    const hak_shm_t *parent_seg = hak_seg;
    uint64_t before = cnt(HAK_C_large_allocs);
    hak_shm_child_alloc_hook = 1;                       /* the child's copy of the segment fails */
    pid_t pid = fork();
    if (pid == 0) {
        int ok = hak_seg != parent_seg;                 /* not the inherited shared mapping */
        for (int i = 0; i < 10; i++) hak_free(hak_alloc(1 << 20));
        ok = ok && cnt(HAK_C_large_allocs) >= before + 10;   /* it still counts */
        _exit(ok ? 0 : 1);
    }
    hak_shm_child_alloc_hook = 0;
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(cnt(HAK_C_large_allocs), before);  /* the child's counts did not land here */
}

static uint32_t lower_class;
static void *lower_from_fresh_thread(void *arg) {
    (void)arg;
    /* this thread never called the allocator: no counter slot yet */
    int rc = hak_set_class_cap(lower_class, 1);
    int rc2 = hak_set_ring_cap(0);
    return (void *)(intptr_t)(rc == 0 && rc2 == 0 ? 0 : 1);
}

static void test_lowering_from_a_fresh_thread(void **state) {
    (void)state;
    hak_trim();
    lower_class = hak_size_class(768 << 10);
    assert_int_equal(hak_set_class_cap(lower_class, 8), 0);
    uint64_t saved = hak_tcache_max_bytes;
    hak_tcache_max_bytes = 0;                           /* into the ring, where a cap binds */
    void *v[4];
    for (int i = 0; i < 4; i++) v[i] = hak_alloc(768 << 10);
    for (int i = 0; i < 4; i++) hak_free(v[i]);
    hak_tcache_max_bytes = saved;
    assert_int_equal(hak_seg->classes[lower_class].cached_blocks, 4);
    uint64_t low0 = cnt(HAK_C_evict_cap_lowered);
    pthread_t t;
    void *ret = (void *)1;
    assert_int_equal(pthread_create(&t, NULL, lower_from_fresh_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    assert_int_equal(hak_seg->classes[lower_class].cached_blocks, 1);   /* its own cap 1 (ring cap 0 is global) */
    assert_int_equal(cnt(HAK_C_evict_cap_lowered), low0 + 3);    /* counted, by the thread that did it */
    assert_int_equal(hak_set_class_cap(lower_class, HAK_CLASS_CAP_GLOBAL), 0);
    assert_int_equal(hak_set_ring_cap(4), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_merge),
        cmocka_unit_test(test_child_without_memory_counts_privately),
        cmocka_unit_test(test_lowering_from_a_fresh_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
