/* test_stats.c - per-thread counter slots (stats.c): a thread's first
 * operation claims a slot of its own; at thread exit the slot is folded into
 * the retired slot (nothing lost, the slot free again); hak_stats_sum and
 * hak_stats_get add up every thread exactly; threads beyond the slots share
 * the overflow slot and are still counted exactly, and none of them waits for
 * another (a thread held inside an operation does not stop the rest). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"
#include "test_pages.h"

#define SLOT_RETIRED 0u        /* hakmem/shm.h: slot 0 = retired threads, 1 = shared overflow */
#define SLOT_SHARED  1u
#define SLOT_FIRST   2u

typedef struct worker {
    int ops;                    /* large malloc/free pairs to do */
    pthread_barrier_t *done;    /* all workers done, still alive: main looks */
    pthread_barrier_t *go;      /* main has looked: exit */
    long slot;                  /* index of the slot it counted into, -1 = none */
    int shared;
    uint64_t owner;             /* owner_tid of that slot, seen from the thread */
    uint64_t tid;
    uint64_t slot_allocs;       /* large_allocs in its own slot */
    int had_slot_before;        /* hak_tls.slot was set before its first operation */
    int alloc_failed;           /* (cmocka's asserts belong to the main thread) */
} worker_t;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    w->had_slot_before = hak_tls.slot != NULL;
    for (int i = 0; i < w->ops; i++) {
        void *p = hak_alloc((size_t)(64 + 64 * (i % 8)) << 10);
        if (p == NULL) w->alloc_failed = 1;
        hak_free(p);
    }
    w->tid = (uint64_t)syscall(SYS_gettid);
    w->slot = hak_tls.slot ? (long)(hak_tls.slot - hak_seg->slots) : -1;
    w->shared = (int)hak_tls.shared;
    if (w->shared) {
        /* its counts went into the overflow slot; its own are private (and 0 between operations) */
        w->slot = SLOT_SHARED;
        for (int k = 0; k < HAK_NCOUNTERS; k++)
            if (hak_tls.slot->counter[k] != 0) w->alloc_failed = 2;
        w->slot_allocs = atomic_load_explicit((_Atomic uint64_t *)&hak_seg->slots[SLOT_SHARED].counter[HAK_C_large_allocs],
                                              memory_order_relaxed);
    } else if (hak_tls.slot) {
        w->owner = atomic_load((_Atomic uint64_t *)&hak_tls.slot->owner_tid);
        /* atomic: a thread on the shared slot reads what others write */
        w->slot_allocs = atomic_load_explicit((_Atomic uint64_t *)&hak_tls.slot->counter[HAK_C_large_allocs],
                                              memory_order_relaxed);
    }
    if (w->done) pthread_barrier_wait(w->done);
    if (w->go) pthread_barrier_wait(w->go);
    return NULL;
}

/* What the main thread saw while every worker was alive, done and waiting
 * (no assert may fire then: the workers would wait for ever). */
static struct {
    uint64_t allocs, frees;
    int64_t live;
    hak_stats_t pub;
    uint32_t free_slots;
} seen;

static uint32_t free_slots(void);

/* Run n workers of ops pairs each; between "all done" and "exit", look. */
static void run_workers(worker_t *w, int n, int ops) {
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_barrier_t done, go;
    assert_non_null(t);
    assert_int_equal(pthread_barrier_init(&done, NULL, (unsigned)n + 1), 0);
    assert_int_equal(pthread_barrier_init(&go, NULL, (unsigned)n + 1), 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    for (int i = 0; i < n; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].ops = ops;
        w[i].done = &done;
        w[i].go = &go;
        assert_int_equal(pthread_create(&t[i], &attr, worker_main, &w[i]), 0);
    }
    pthread_barrier_wait(&done);
    seen.allocs = cnt(HAK_C_large_allocs);
    seen.frees = cnt(HAK_C_large_frees);
    seen.live = gauge(HAK_G_bytes_live);
    hak_stats_get(&seen.pub);
    seen.free_slots = free_slots();
    pthread_barrier_wait(&go);
    for (int i = 0; i < n; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < n; i++) assert_int_equal(w[i].alloc_failed, 0);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&done);
    pthread_barrier_destroy(&go);
    free(t);
}

/* Free slots: those past the high-water mark (never claimed, never paged
 * in: not looked at) and those below it that no thread owns now. */
static uint32_t free_slots(void) {
    uint64_t used = atomic_load((_Atomic uint64_t *)&hak_seg->slots_used);
    if (used < SLOT_FIRST || used > HAK_SHM_SLOTS) return 0;    /* (no assert here: see run_workers) */
    uint32_t n = HAK_SHM_SLOTS - (uint32_t)used;
    for (uint32_t i = SLOT_FIRST; i < used; i++)
        n += atomic_load((_Atomic uint64_t *)&hak_seg->slots[i].owner_tid) == 0;
    return n;
}

static uint64_t slot_counter(uint32_t slot, int id) {
    return atomic_load((_Atomic uint64_t *)&hak_seg->slots[slot].counter[id]);
}

/* The first operation of a thread claims a slot that is its own. */
static void test_claim(void **state) {
    (void)state;
    hak_free(hak_alloc(1 << 20));                  /* the main thread has its slot */
    assert_non_null(hak_tls.slot);
    worker_t w[3];
    int n = 3;
    run_workers(w, n, 5);
    for (int i = 0; i < n; i++) {
        assert_false(w[i].had_slot_before);
        assert_true(w[i].slot >= (long)SLOT_FIRST && w[i].slot < (long)HAK_SHM_SLOTS);
        assert_int_equal(w[i].shared, 0);
        assert_int_equal(w[i].owner, w[i].tid);
        assert_int_equal(w[i].slot_allocs, (uint64_t)w[i].ops);          /* its counts, and only its */
        assert_ptr_not_equal(&hak_seg->slots[w[i].slot], hak_tls.slot);   /* not the main thread's */
        for (int j = 0; j < i; j++) assert_int_not_equal(w[i].slot, w[j].slot);
    }
    /* the high-water mark covers every slot claimed, and no more than the
     * threads that ever lived here: the main thread and these workers */
    uint64_t used = atomic_load((_Atomic uint64_t *)&hak_seg->slots_used);
    for (int i = 0; i < n; i++) assert_true((uint64_t)w[i].slot < used);
    assert_true(used >= SLOT_FIRST + 1 && used <= SLOT_FIRST + 1 + (uint64_t)n);
}

/* Sums and snapshots read the slots below the high-water mark only, so the
 * pages of slots no thread ever claimed stay out of the process (idle RSS). */
static void test_unused_slots_untouched(void **state) {
    (void)state;
    hak_free(hak_alloc(1 << 20));
    hak_stats_t st;
    hak_stats_get(&st);
    hak_snapshot_t *snap = malloc(sizeof *snap);
    assert_non_null(snap);
    assert_int_equal(hak_shm_snapshot(hak_seg, snap), 0);
    assert_true(snap->counter[HAK_C_large_allocs] >= 1);
    free(snap);
    uint64_t used = atomic_load((_Atomic uint64_t *)&hak_seg->slots_used);
    assert_true(used >= SLOT_FIRST + 1 && used + 16 < HAK_SHM_SLOTS);   /* room for whole pages past it */
    assert_int_equal(pages_present(&hak_seg->slots[used], &hak_seg->slots[HAK_SHM_SLOTS]), 0);
}

/* At exit a thread's counts move into the retired slot: the sum keeps them,
 * the slot is zeroed and free for the next thread. */
static void test_fold_at_exit(void **state) {
    (void)state;
    uint64_t sum0 = cnt(HAK_C_large_allocs), frees0 = cnt(HAK_C_large_frees);
    uint64_t retired0 = slot_counter(SLOT_RETIRED, HAK_C_large_allocs);
    worker_t w[1];
    run_workers(w, 1, 7);
    long s = w[0].slot;
    assert_true(s >= (long)SLOT_FIRST);
    assert_int_equal(w[0].slot_allocs, 7);
    assert_int_equal(atomic_load((_Atomic uint64_t *)&hak_seg->slots[s].owner_tid), 0);   /* free again */
    for (int k = 0; k < HAK_NCOUNTERS; k++) assert_int_equal(slot_counter((uint32_t)s, k), 0);
    for (int k = 0; k < HAK_NGAUGES; k++) {
        assert_int_equal(hak_seg->slots[s].gauge_in[k], 0);
        assert_int_equal(hak_seg->slots[s].gauge_out[k], 0);
    }
    assert_int_equal(slot_counter(SLOT_RETIRED, HAK_C_large_allocs), retired0 + 7);
    assert_int_equal(cnt(HAK_C_large_allocs), sum0 + 7);
    assert_int_equal(cnt(HAK_C_large_frees), frees0 + 7);
    /* the next thread can get that slot back */
    uint32_t free_before = free_slots();
    run_workers(w, 1, 1);
    assert_int_equal(free_slots(), free_before);
}

static uint64_t sum_allocs0, sum_frees0;
static int64_t live0;

/* The sums seen while the workers lived, and the sums now, count every
 * operation of every worker. */
static void check_sums(worker_t *w, int n) {
    uint64_t want = 0;
    for (int i = 0; i < n; i++) want += (uint64_t)w[i].ops;
    assert_int_equal(seen.allocs, sum_allocs0 + want);
    assert_int_equal(seen.frees, sum_frees0 + want);
    assert_int_equal(seen.live, live0);
    assert_int_equal(seen.pub.large_allocs, sum_allocs0 + want);
    assert_int_equal(seen.pub.large_frees, sum_frees0 + want);
    assert_int_equal(cnt(HAK_C_large_allocs), sum_allocs0 + want);
    assert_int_equal(cnt(HAK_C_large_frees), sum_frees0 + want);
    assert_int_equal(gauge(HAK_G_bytes_live), live0);
}

/* The sum over the slots is exact while the threads live and after they left. */
static void test_sum_across_threads(void **state) {
    (void)state;
    sum_allocs0 = cnt(HAK_C_large_allocs);
    sum_frees0 = cnt(HAK_C_large_frees);
    live0 = gauge(HAK_G_bytes_live);
    worker_t w[8];
    run_workers(w, 8, 50);
    check_sums(w, 8);
}

static uint32_t private_expected;

/* Threads beyond the free slots count into the shared overflow slot (what
 * each worker saw of its slot before the main thread looked). */
static void check_overflow(worker_t *w, int n) {
    uint32_t priv = 0, shared = 0;
    for (int i = 0; i < n; i++) {
        if (w[i].shared) {
            shared++;
            assert_int_equal(w[i].slot, SLOT_SHARED);
        } else {
            priv++;
            assert_true(w[i].slot >= (long)SLOT_FIRST);
            assert_int_equal(w[i].owner, w[i].tid);
            for (int j = 0; j < i; j++)
                if (!w[j].shared) assert_int_not_equal(w[i].slot, w[j].slot);
        }
    }
    assert_int_equal(priv, private_expected);
    assert_int_equal(shared, (uint32_t)n - private_expected);
    assert_int_equal(seen.free_slots, 0);
}

static void test_overflow_slot(void **state) {
    (void)state;
    private_expected = free_slots();
    assert_true(private_expected >= HAK_SHM_SLOTS - SLOT_FIRST - 2);   /* main thread (+ maybe one more) */
    int n = (int)private_expected + 5;
    uint64_t shared0 = slot_counter(SLOT_SHARED, HAK_C_large_allocs);
    sum_allocs0 = cnt(HAK_C_large_allocs);
    sum_frees0 = cnt(HAK_C_large_frees);
    live0 = gauge(HAK_G_bytes_live);
    worker_t *w = calloc((size_t)n, sizeof *w);
    assert_non_null(w);
    run_workers(w, n, 3);
    check_overflow(w, n);
    check_sums(w, n);
    assert_int_equal(slot_counter(SLOT_SHARED, HAK_C_large_allocs), shared0 + 5 * 3);
    assert_int_equal(free_slots(), private_expected);   /* every private slot released */
    free(w);
}

/* Threads on the overflow slot: one of them stopped inside an operation;
 * another one's large malloc/free pairs still finish, and a snapshot taken
 * while the first is still inside says "busy" rather than show half of it.
 * (With a lock around the overflow slot, the second thread waits for ever.) */
typedef struct held {
    pthread_barrier_t *in, *out;
    int shared;
} held_t;

static void *held_main(void *arg) {
    held_t *h = arg;
    void *p = hak_alloc(128 << 10);   /* its first operation: the slot it counts in */
    hak_free(p);
    h->shared = (int)hak_tls.shared;
    hak_op_begin();
    pthread_barrier_wait(h->in);      /* inside an operation */
    pthread_barrier_wait(h->out);
    hak_op_end();
    return NULL;
}

static _Atomic int pairs_done;
static void *pairs_main(void *arg) {
    int *shared = arg;
    for (int i = 0; i < 20; i++) {
        void *p = hak_alloc(256 << 10);
        if (p == NULL) break;
        hak_free(p);
        atomic_fetch_add(&pairs_done, 1);
    }
    *shared = (int)hak_tls.shared;
    return NULL;
}

static void test_overflow_no_wait(void **state) {
    (void)state;
    uint32_t n = free_slots();
    /* take every free slot with threads that wait (they hold a slot each) */
    worker_t *w = calloc(n, sizeof *w);
    pthread_t *t = calloc(n, sizeof *t);
    assert_non_null(w);
    assert_non_null(t);
    pthread_barrier_t done, go, in, out;
    pthread_barrier_init(&done, NULL, n + 1);
    pthread_barrier_init(&go, NULL, n + 1);
    pthread_barrier_init(&in, NULL, 2);
    pthread_barrier_init(&out, NULL, 2);
    for (uint32_t i = 0; i < n; i++) {
        w[i].ops = 1;
        w[i].done = &done;
        w[i].go = &go;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    pthread_barrier_wait(&done);            /* every slot taken now */
    assert_int_equal(free_slots(), 0);
    held_t h = {&in, &out, 0};
    pthread_t ht, pt;
    assert_int_equal(pthread_create(&ht, NULL, held_main, &h), 0);
    pthread_barrier_wait(&in);              /* h is inside an operation on the overflow slot */
    int busy = hak_shm_snapshot(hak_seg, &(hak_snapshot_t){0});
    int pshared = 0;
    atomic_store(&pairs_done, 0);
    assert_int_equal(pthread_create(&pt, NULL, pairs_main, &pshared), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    int joined = pthread_timedjoin_np(pt, NULL, &dl);
    int done_pairs = atomic_load(&pairs_done);
    pthread_barrier_wait(&out);             /* let h leave its operation */
    if (joined != 0) pthread_join(pt, NULL);
    pthread_join(ht, NULL);
    pthread_barrier_wait(&go);
    for (uint32_t i = 0; i < n; i++) pthread_join(t[i], NULL);
    assert_int_equal(h.shared, 1);
    assert_int_equal(pshared, 1);
    assert_int_equal(joined, 0);            /* not held up by h */
    assert_int_equal(done_pairs, 20);
    assert_int_equal(busy, -HAK_SHM_EBUSY); /* h's operation is not half-visible */
    assert_int_equal(hak_shm_snapshot(hak_seg, &(hak_snapshot_t){0}), 0);
    free(w);
    free(t);
}

/* calloc of a warm block zeroes it outside the operation bracket (defect 7):
 * sampled while a 192 MiB calloc runs, the caller's slot is at an operation
 * boundary (even generation) nearly always; with the memset inside the
 * bracket it was odd for the whole memset, so readers got "busy" and fork
 * waited for it. */
typedef struct zeroer {
    hak_shm_slot_t *_Atomic slot;
    _Atomic int done;
    unsigned char *p;
} zeroer_t;

#define ZERO_BYTES ((size_t)192 << 20)
static void *zeroer_main(void *arg) {
    zeroer_t *z = arg;
    unsigned char *warm = hak_alloc(ZERO_BYTES);     /* dirty it, then cache it */
    if (warm != NULL) {
        memset(warm, 0xa5, ZERO_BYTES);
        hak_free(warm);
    }
    atomic_store(&z->slot, hak_tls.slot);
    z->p = hak_calloc(1, ZERO_BYTES);
    atomic_store(&z->done, 1);
    return NULL;
}

static void test_calloc_zeroes_outside_bracket(void **state) {
    (void)state;
    zeroer_t z = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, zeroer_main, &z), 0);
    long odd = 0, samples = 0;
    while (!atomic_load(&z.done)) {
        hak_shm_slot_t *sl = atomic_load(&z.slot);
        if (sl == NULL) continue;
        odd += atomic_load_explicit((_Atomic uint64_t *)&sl->gen, memory_order_acquire) & 1;
        samples++;
    }
    pthread_join(t, NULL);
    assert_non_null(z.p);
    for (size_t i = 0; i < ZERO_BYTES; i += 4096) assert_int_equal(z.p[i], 0);
    assert_int_equal(z.p[ZERO_BYTES - 1], 0);
    print_message("calloc of a warm block: slot odd in %ld of %ld samples\n", odd, samples);
    assert_true(samples >= 100);
    assert_true(odd * 4 < samples);
    hak_free(z.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim),
        cmocka_unit_test(test_unused_slots_untouched),
        cmocka_unit_test(test_fold_at_exit),
        cmocka_unit_test(test_sum_across_threads),
        cmocka_unit_test(test_overflow_slot),
        cmocka_unit_test(test_overflow_no_wait),
        cmocka_unit_test(test_calloc_zeroes_outside_bracket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
