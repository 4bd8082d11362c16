/*
 * test_evolve.c - the tuner's in-process host (tuner/inproc.c): it wakes when
 * the core bumps hak_seg->tune_signal, not only every HAKMEM_TUNE_INTERVAL_MS.
 *
 * The process runs in evolving mode with a 60 s tuner period and a global
 * ring cap of 0, outside the tuner's bounds (1..512): the tuner's first step
 * with traffic brings it back to 1 (a ring_cap decision, reason bounds).  Runs
 * of misses make the core signal the tuner (tune_signal, at the 4th ghost
 * miss in a row); the test also bumps it as the core does.  The decision must
 * come long before the period: the test gives it 10 s (a hung or deaf tuner
 * fails; nothing is timed finer than that).
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_reexec.h"
#include "../../tuner/policy.h"

#define MiB ((size_t)1 << 20)

static uint64_t load(const uint64_t *p) { return atomic_load_explicit((_Atomic const uint64_t *)p, memory_order_acquire); }

/* What the core does when a class has a run of ghost misses (stats.c). */
static void signal_tuner(void) {
    atomic_fetch_add_explicit((_Atomic uint64_t *)&hak_seg->tune_signal, 1, memory_order_release);
    syscall(SYS_futex, &hak_seg->control.seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void churn(int rounds) {
    void *p[8];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 8; i++) {
            p[i] = hak_alloc(2 * MiB);
            assert_non_null(p[i]);
        }
        for (int i = 0; i < 8; i++) hak_free(p[i]);
    }
}

/* The tuner's opening: at the first large allocation the batch threshold is
 * a quarter of the budget (HAKMEM_BATCH_THRESHOLD is not set here), and the
 * thread logs it as a decision (reason opening). */
static void test_opening(void **state) {
    (void)state;
    void *p = hak_alloc(2 * MiB);
    assert_non_null(p);
    assert_int_equal(load(&hak_seg->knobs.batch_threshold), load(&hak_seg->knobs.cache_max_bytes) / 4);
    const hak_shm_decision_t *d = NULL;
    for (int i = 0; i < 1000 && d == NULL; i++) {
        for (uint64_t n = 0, head = load(&hak_seg->decision_head); n < head && d == NULL; n++)
            if (hak_seg->decisions[n % HAK_SHM_DECISIONS].reason == TUNER_R_OPENING)
                d = &hak_seg->decisions[n % HAK_SHM_DECISIONS];
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    assert_non_null(d);
    assert_int_equal(d->knob, HAK_KNOB_BATCH_THRESHOLD);
    assert_int_equal(d->old_value, 4 * MiB);
    assert_int_equal(d->new_value, load(&hak_seg->knobs.cache_max_bytes) / 4);
    hak_free(p);
}

static void test_tune_signal_wakes_tuner(void **state) {
    (void)state;
    churn(1);   /* the first large allocation reads the options and starts the thread */
    assert_int_equal(hak_opt.mode, HAK_MODE_EVOLVING);
    assert_int_equal(hak_opt.tune_interval_ms, 60000);
    assert_int_equal(load(&hak_seg->knobs.ring_cap), 0);
    uint64_t head0 = load(&hak_seg->decision_head);
    int waited_ms = 0;
    const hak_shm_decision_t *d = NULL;
    while (d == NULL && waited_ms < 10000) {
        churn(2);
        signal_tuner();
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
        waited_ms += 20;
        /* the ring-cap decision, whatever else (a THP choice) was logged first */
        for (uint64_t n = head0, head = load(&hak_seg->decision_head); n < head && d == NULL; n++)
            if (hak_seg->decisions[n % HAK_SHM_DECISIONS].knob == HAK_KNOB_RING_CAP)
                d = &hak_seg->decisions[n % HAK_SHM_DECISIONS];
    }
    assert_non_null(d);
    assert_int_equal(d->knob, HAK_KNOB_RING_CAP);
    assert_int_equal(d->new_value, 1);
    /* applied through the control layer's setter */
    for (int i = 0; i < 500 && load(&hak_seg->knobs.ring_cap) != 1; i++) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(load(&hak_seg->knobs.ring_cap), 1);
}

int main(int argc, char **argv) {
    (void)argc;
    reexec_evolving(argv, (const char *const[]){"HAKMEM_TUNE_INTERVAL_MS", "60000", "HAKMEM_RING_CAP", "0", NULL});
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opening),
        cmocka_unit_test(test_tune_signal_wakes_tuner),
    };
    return cmocka_run_group_tests_name("evolve", tests, NULL, NULL);
}
