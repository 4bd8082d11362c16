/* test_tcache.c - the per-thread front cache: a hit takes no lock and writes
 * nothing shared (the class record is not touched), a miss served by a
 * bigger block of the front cache, bounds in blocks and
 * bytes, ring cap 0 bypasses it, thread exit returns its blocks, a trim
 * empties a sleeping thread's cache, a block freed by another thread is
 * reused correctly, and a forked child adopts the caches of the threads that
 * did not survive fork. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"

static int setup(void **state) {
    (void)state;
    hak_trim();
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(gauge(HAK_G_blocks_cached), 0);
    return 0;
}

static void test_hit_writes_nothing_shared(void **state) {
    (void)state;
    uint32_t c = hak_size_class(512 << 10);
    void *p = hak_alloc(512 << 10);
    hak_free(p);                                         /* into this thread's front cache */
    assert_int_equal(gauge(HAK_G_blocks_tcached), 1);
    uint64_t gen0 = hak_seg->classes[c].gen, h0 = cnt(HAK_C_cache_hits), t0 = cnt(HAK_C_tcache_hits);
    int64_t cb0 = atomic_load(&hak_cached_bytes);
    for (int i = 0; i < 100; i++) {
        void *q = hak_alloc(500 << 10);                  /* same class */
        assert_ptr_equal(q, p);
        hak_free(q);
    }
    assert_int_equal(hak_seg->classes[c].gen, gen0);     /* the shared class record untouched */
    assert_int_equal(atomic_load(&hak_cached_bytes), cb0);   /* no global atomic either */
    assert_int_equal(cnt(HAK_C_cache_hits), h0 + 100);
    assert_int_equal(cnt(HAK_C_tcache_hits), t0 + 100);
}

static void test_bounds(void **state) {
    (void)state;
    void *v[HAK_TC_SLOTS + 3];
    for (unsigned i = 0; i < HAK_TC_SLOTS + 3; i++) v[i] = hak_alloc(256 << 10);
    for (unsigned i = 0; i < HAK_TC_SLOTS + 3; i++) hak_free(v[i]);
    assert_int_equal(gauge(HAK_G_blocks_tcached), HAK_TC_SLOTS);   /* the newest 8 */
    assert_int_equal(hak_seg->classes[hak_size_class(256 << 10)].cached_blocks, 3);   /* the oldest went on */
    hak_trim();
    /* bytes: blocks above the per-thread bound go straight to the rings */
    void *big = hak_alloc((size_t)(hak_tcache_max_bytes + (1 << 20)));
    hak_free(big);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 0);
    assert_int_equal(gauge(HAK_G_blocks_cached), 1);
    hak_trim();
    /* ring cap 0: no caching, front cache included */
    assert_int_equal(hak_set_ring_cap(0), 0);
    void *p = hak_alloc(256 << 10);
    hak_free(p);
    assert_int_equal(gauge(HAK_G_blocks_cached), 0);
    assert_int_equal(hak_set_ring_cap(4), 0);
}

/* A miss whose exact class is in no cache is served by the newest front-cache
 * block of a bigger class (one doubling at most): the thread's most recently
 * used memory, before the rings, Batch or a fresh mapping; and the newest block
 * that fits wins over an older one of the exact class. */
static void test_miss_served_by_front_cache_near(void **state) {
    (void)state;
    uint32_t c = hak_size_class(1 << 20);
    void *a = hak_alloc((size_t)hak_class_size(c + 1));      /* one class up */
    void *b = hak_alloc((size_t)hak_class_size(c + 2));      /* two classes up, freed last: newest */
    void *far = hak_alloc((size_t)hak_class_size(c + HAK_NEAR_CLASSES + 1));   /* beyond one doubling */
    memset(b, 0x5a, 4096);
    hak_free(far);
    hak_free(a);
    hak_free(b);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 3);
    uint64_t m0 = cnt(HAK_C_mmap_calls), near0 = cnt(HAK_C_warm_near), miss0 = cnt(HAK_C_cache_misses);
    uint64_t gen0 = hak_seg->classes[c + 2].gen;
    void *p = hak_alloc(1 << 20);
    assert_ptr_equal(p, b);                                  /* the newest block that fits */
    assert_int_equal(((unsigned char *)p)[4095], 0x5a);      /* warm: its pages came along */
    assert_int_equal(hak_usable_size(p), hak_class_size(c + 2));
    assert_int_equal(cnt(HAK_C_cache_misses), miss0 + 1);    /* a miss of its class, served warm */
    assert_int_equal(cnt(HAK_C_warm_near), near0 + 1);
    assert_int_equal(cnt(HAK_C_mmap_calls), m0);
    assert_int_equal(hak_seg->classes[c + 2].gen, gen0);     /* no ring was touched */
    assert_int_equal(gauge(HAK_G_blocks_tcached), 2);
    void *q = hak_alloc(1 << 20);
    assert_ptr_equal(q, a);                                  /* then the next one */
    void *r = hak_alloc(1 << 20);                            /* 'far' is not near: fresh memory */
    assert_ptr_not_equal(r, far);
    assert_int_equal(cnt(HAK_C_mmap_calls), m0 + 1);
    hak_free(p);
    hak_free(q);
    hak_free(r);
    /* recency beats an exact fit: r (the class itself) freed before p (bigger) */
    hak_trim();
    r = hak_alloc(1 << 20);
    p = hak_alloc((size_t)hak_class_size(c + 1));
    hak_free(r);
    hak_free(p);
    uint64_t h0 = cnt(HAK_C_tcache_hits);
    q = hak_alloc(1 << 20);
    assert_ptr_equal(q, p);
    assert_int_equal(cnt(HAK_C_tcache_hits), h0);           /* not a hit of the class: served warm */
    void *s2 = hak_alloc(1 << 20);
    assert_ptr_equal(s2, r);                                 /* the exact one next: a hit */
    assert_int_equal(cnt(HAK_C_tcache_hits), h0 + 1);
    hak_free(q);
    hak_free(s2);
}

/* ---- other threads ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase;
static void *shared_block;

static void wait_phase(int want) {
    pthread_mutex_lock(&mu);
    while (phase < want) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}
static void set_phase(int p) {
    pthread_mutex_lock(&mu);
    phase = p;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void *fill_and_exit(void *arg) {
    (void)arg;
    void *v[3];
    for (int i = 0; i < 3; i++) v[i] = hak_alloc((size_t)(i + 1) << 20);
    for (int i = 0; i < 3; i++) hak_free(v[i]);
    return NULL;
}

static void test_thread_exit_returns_blocks(void **state) {
    (void)state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fill_and_exit, NULL), 0);
    pthread_join(t, NULL);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 0);      /* nothing left in a dead thread */
    assert_int_equal(gauge(HAK_G_blocks_cached), 3);       /* in the rings now */
    uint64_t h0 = cnt(HAK_C_cache_hits);
    void *p = hak_alloc((size_t)2 << 20);                  /* and this thread gets them */
    assert_int_equal(cnt(HAK_C_cache_hits), h0 + 1);
    hak_free(p);
}

/* A program's TLS destructor that frees large blocks in every round glibc
 * runs (re-arming itself), the last one included: after hakmem's own
 * destructor released the thread's slot, those frees must not leave a slot
 * owned by the dead thread nor a front cache registered in its TLS (a later
 * trim would walk it). */
static pthread_key_t late_key;
static _Atomic int late_rounds;
static _Atomic uint64_t late_tid;
static void late_free(void *arg) {
    (void)arg;
    void *p = hak_alloc((size_t)1 << 20);
    memset(p, 7, 4096);
    hak_free(p);                          /* into a front cache, if the thread had one again */
    if (atomic_fetch_add(&late_rounds, 1) + 1 < 8) pthread_setspecific(late_key, (void *)1);
}
static void *late_main(void *arg) {
    (void)arg;
    atomic_store(&late_tid, (uint64_t)syscall(SYS_gettid));
    hak_free(hak_alloc((size_t)1 << 20));  /* a slot and a front cache of its own */
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

static void test_free_in_last_tls_destructor(void **state) {
    (void)state;
    assert_int_equal(pthread_key_create(&late_key, late_free), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_main, NULL), 0);
    pthread_join(t, NULL);
    assert_true(atomic_load(&late_rounds) >= 2);
    uint64_t tid = atomic_load(&late_tid);
    for (uint32_t i = 0; i < HAK_SHM_SLOTS; i++)
        if (atomic_load((_Atomic uint64_t *)&hak_seg->slots[i].owner_tid) == tid)
            fail_msg("slot %u still owned by the exited thread %llu", i, (unsigned long long)tid);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 0);     /* no block left in a dead thread's cache */
    hak_trim();                                            /* walks every registered front cache */
    assert_int_equal(gauge(HAK_G_blocks_cached), 0);
    pthread_key_delete(late_key);
}

static void *fill_and_sleep(void *arg) {
    (void)arg;
    void *v[4];
    for (int i = 0; i < 4; i++) v[i] = hak_alloc(768 << 10);
    for (int i = 0; i < 4; i++) hak_free(v[i]);
    set_phase(1);
    wait_phase(2);                                         /* asleep while main trims */
    void *p = hak_alloc(768 << 10);                        /* its cache is empty now: a miss, no crash */
    memset(p, 1, 768 << 10);
    hak_free(p);
    return NULL;
}

static void test_trim_empties_sleeping_thread(void **state) {
    (void)state;
    phase = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fill_and_sleep, NULL), 0);
    wait_phase(1);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 4);
    hak_trim();
    assert_int_equal(gauge(HAK_G_blocks_tcached), 0);
    assert_int_equal(gauge(HAK_G_blocks_cached), 0);
    assert_int_equal(gauge(HAK_G_bytes_cached), 0);
    set_phase(2);
    pthread_join(t, NULL);
    /* a cap of 0 reaches front caches too */
    void *p = hak_alloc(768 << 10);
    hak_free(p);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 1);
    assert_int_equal(hak_set_ring_cap(0), 0);
    assert_int_equal(gauge(HAK_G_blocks_cached), 0);
    assert_int_equal(hak_set_ring_cap(4), 0);
}

static void *free_other(void *arg) {
    (void)arg;
    hak_free(shared_block);                                /* freed by another thread than its owner */
    void *q = hak_alloc(1 << 20);                          /* and reused by it */
    assert_ptr_equal(q, shared_block);
    assert_int_equal(((unsigned char *)q)[4095], 0xab);
    hak_free(q);
    return NULL;
}

static void test_cross_thread_free(void **state) {
    (void)state;
    shared_block = hak_alloc(1 << 20);
    memset(shared_block, 0xab, 1 << 20);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_other, NULL), 0);
    pthread_join(t, NULL);
    assert_int_equal(gauge(HAK_G_blocks_live), 0);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 0);      /* its exit returned it */
    assert_int_equal(gauge(HAK_G_blocks_cached), 1);
}

static void test_fork_adopts_caches(void **state) {
    (void)state;
    phase = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fill_and_sleep, NULL), 0);
    wait_phase(1);
    void *mine = hak_alloc(3 << 20);
    hak_free(mine);
    assert_int_equal(gauge(HAK_G_blocks_tcached), 5);
    pid_t pid = fork();
    if (pid == 0) {
        /* only this thread lives on: the sleeper's 4 blocks were adopted by the rings */
        int ok = gauge(HAK_G_blocks_tcached) == 1 && gauge(HAK_G_blocks_cached) == 5;
        void *p = hak_alloc(768 << 10);                    /* one of the adopted blocks */
        ok = ok && p != NULL && cnt(HAK_C_cache_hits) > 0;
        hak_free(p);
        hak_trim();
        ok = ok && gauge(HAK_G_blocks_cached) == 0 && gauge(HAK_G_bytes_cached) == 0;
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    set_phase(2);
    pthread_join(t, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hit_writes_nothing_shared, setup),
        cmocka_unit_test_setup(test_bounds, setup),
        cmocka_unit_test_setup(test_miss_served_by_front_cache_near, setup),
        cmocka_unit_test_setup(test_thread_exit_returns_blocks, setup),
        cmocka_unit_test_setup(test_free_in_last_tls_destructor, setup),
        cmocka_unit_test_setup(test_trim_empties_sleeping_thread, setup),
        cmocka_unit_test_setup(test_cross_thread_free, setup),
        cmocka_unit_test_setup(test_fork_adopts_caches, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
