/* mt_native.c - multi-thread stress of the allocator core through the native
 * API (linked with libhakmem_core.a, no preload), for the sanitizer builds
 * (ThreadSanitizer above all) and as a plain stress test.
 *
 *   mt_native [SECONDS [PRODUCERS]]        (defaults 5 s, 2 producers)
 *
 * Threads, all running at once for SECONDS:
 *   producers  allocate blocks (small, around large_min, class boundaries,
 *              2 MiB, multiples of it, uncached sizes), stamp them with a
 *              pattern, sometimes grow them, and hand them to a queue;
 *   consumers  take blocks from the queue (allocated in another thread),
 *              verify the pattern, sometimes realloc (grow or shrink, also
 *              across large_min), and free them;
 *   spawner    starts short-lived threads that allocate, free (blocks go warm
 *              into BigCache) and exit while holding cached and live blocks
 *              (live ones go to the queue): thread slots are folded on exit;
 *   knobs      changes ring cap, batch threshold and cache budget (also out of
 *              range), posts control-block requests, trims and flushes;
 *   reader     snapshots the counters in-process: a snapshot of a live
 *              segment may be "busy", never "corrupt".
 * At the end every block is freed and trimmed: nothing may stay live,
 * mapped, cached or pending.  Exit 0 = every check held. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hak_internal.h"

static _Atomic int stop;
static _Atomic int failures;
static _Atomic uint64_t n_alloc, n_free, n_realloc, n_knob, n_snap, n_busy, n_threads;

#define FAIL(...)                                         \
    do {                                                  \
        fprintf(stderr, "mt_native: FAIL: " __VA_ARGS__); \
        fputc('\n', stderr);                              \
        atomic_fetch_add(&failures, 1);                   \
    } while (0)

/* ---- a bounded MPMC queue of blocks (mutex: the handoff itself is not under test) ---- */
typedef struct {
    unsigned char *p;
    size_t n;
    uint32_t tag;
} item_t;
#define QCAP 256
static item_t queue[QCAP];
static size_t qhead, qlen;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;

static int q_push(item_t it) {
    pthread_mutex_lock(&qlock);
    int ok = qlen < QCAP;
    if (ok) queue[(qhead + qlen++) % QCAP] = it;
    pthread_mutex_unlock(&qlock);
    return ok;
}
static int q_pop(item_t *it) {
    pthread_mutex_lock(&qlock);
    int ok = qlen > 0;
    if (ok) {
        *it = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
    }
    pthread_mutex_unlock(&qlock);
    return ok;
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s) {
    switch (rnd(s) % 10) {
    case 0: return 1 + rnd(s) % 60000;                                         /* small */
    case 1: return ((size_t)64 << 10) - 512 + rnd(s) % 1024;                   /* around large_min */
    case 2: return hak_class_size((uint32_t)(rnd(s) % 20)) + rnd(s) % 3 - 1;   /* class boundaries */
    case 3: return HAK_HUGE_PAGE - 4096 + rnd(s) % 8192;                       /* around 2 MiB */
    case 4: return (size_t)(1 + rnd(s) % 4) * HAK_HUGE_PAGE;                   /* multiples of 2 MiB */
    case 5: if (rnd(s) % 64 == 0) return HAK_CLASS_MAX_SIZE + 4096;            /* uncached, rarely */
            return (size_t)(rnd(s) % (6u << 20));
    default: return ((size_t)64 << 10) + rnd(s) % (1u << 20);
    }
}

/* Every access to the bytes of a block goes through the three user_mem_*
 * functions: ThreadSanitizer cannot see memory change hands through mremap
 * (not intercepted) nor through glibc's arenas (__libc_malloc/__libc_free are
 * not intercepted), so it reports reuse of such addresses by another thread as
 * races; tests/integration/sanitizers.sh suppresses reports in these functions
 * only.  A block really handed to two threads at once is caught by the tags:
 * every block carries its own. */
/* Stamp: the tag at every 4 KiB (not overlapping the last 4 bytes) and in the last 4 bytes. */
__attribute__((noinline)) static void user_mem_stamp(unsigned char *p, size_t n, uint32_t tag) {
    for (size_t i = 0; i + 8 <= n; i += 4096) memcpy(p + i, &tag, 4);
    if (n >= 4) memcpy(p + n - 4, &tag, 4);
}
/* The first `upto` bytes of a block of n bytes still carry the tag (upto <= n). */
__attribute__((noinline)) static int user_mem_check(const unsigned char *p, size_t n, size_t upto, uint32_t tag) {
    uint32_t v;
    for (size_t i = 0; i + 4 <= upto && i + 8 <= n; i += 4096) {
        memcpy(&v, p + i, 4);
        if (v != tag) return 0;
    }
    if (upto < n || n < 4) return 1;
    memcpy(&v, p + n - 4, 4);
    return v == tag;
}
/* Where the tag is missing first (for the failure message), or SIZE_MAX. */
__attribute__((noinline)) static size_t user_mem_first_bad(const unsigned char *p, size_t n, uint32_t tag, uint32_t *got) {
    for (size_t i = 0; i + 8 <= n; i += 4096) {
        memcpy(got, p + i, 4);
        if (*got != tag) return i;
    }
    if (n >= 4) {
        memcpy(got, p + n - 4, 4);
        if (*got != tag) return n - 4;
    }
    return SIZE_MAX;
}
#define stamp user_mem_stamp
static int stamped(const unsigned char *p, size_t n, uint32_t tag) { return user_mem_check(p, n, n, tag); }

static unsigned char *alloc_checked(size_t n, const char *who) {
    unsigned char *p = hak_alloc(n);
    if (p == NULL) {
        FAIL("%s: alloc(%zu) failed: %s", who, n, strerror(errno));
        return NULL;
    }
    if (hak_usable_size(p) < n) FAIL("%s: usable %zu < %zu", who, hak_usable_size(p), n);
    if (((uintptr_t)p & 15) != 0) FAIL("%s: %p misaligned", who, (void *)p);
    atomic_fetch_add(&n_alloc, 1);
    return p;
}

static void *producer(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    uint32_t tag = (uint32_t)(uintptr_t)arg << 24;
    while (!atomic_load(&stop)) {
        size_t n = pick_size(&s);
        unsigned char *p = alloc_checked(n, "producer");
        if (p == NULL) continue;
        stamp(p, n, ++tag);
        if (rnd(&s) % 8 == 0) {                 /* grow before handing over */
            size_t m = n + rnd(&s) % (3u << 20);
            unsigned char *q = hak_realloc(p, m);
            if (q == NULL) {
                FAIL("producer: realloc %zu -> %zu failed: %s", n, m, strerror(errno));
            } else {
                if (!stamped(q, n, tag)) FAIL("producer: realloc %zu -> %zu lost contents", n, m);
                p = q;
                n = m;
                stamp(p, n, tag);
                atomic_fetch_add(&n_realloc, 1);
            }
        }
        if (!q_push((item_t){p, n, tag})) {
            hak_free(p);
            atomic_fetch_add(&n_free, 1);
            sched_yield();
        }
    }
    return NULL;
}

static void consume_one(item_t it, uint64_t *s) {
    if (!stamped(it.p, it.n, it.tag)) {
        uint32_t got = 0;
        size_t at = user_mem_first_bad(it.p, it.n, it.tag, &got);
        FAIL("consumer: block %p (%zu bytes, usable %zu, tag %08x) changed under us: %08x at offset %zu",
             (void *)it.p, it.n, hak_usable_size(it.p), it.tag, got, at);
    }
    if (rnd(s) % 6 == 0) {
        size_t m = pick_size(s);
        unsigned char *q = hak_realloc(it.p, m ? m : 1);
        if (q == NULL) {
            FAIL("consumer: realloc %zu -> %zu failed: %s", it.n, m, strerror(errno));
        } else {
            size_t keep = it.n < m ? it.n : m;
            if (!user_mem_check(q, it.n, keep, it.tag)) FAIL("consumer: realloc %zu -> %zu lost contents", it.n, m);
            it.p = q;
            atomic_fetch_add(&n_realloc, 1);
        }
    }
    hak_free(it.p);
    atomic_fetch_add(&n_free, 1);
}

static void *consumer(void *arg) {
    uint64_t s = (uintptr_t)arg * 0xbf58476d1ce4e5b9ull + 7;
    item_t it;
    while (!atomic_load(&stop)) {
        if (q_pop(&it)) consume_one(it, &s);
        else sched_yield();
    }
    return NULL;
}

/* A short-lived thread: warm blocks into the cache, some live ones handed on, exit. */
static void *ephemeral(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x94d049bb133111ebull + 3;
    unsigned char *v[4];
    size_t n[4];
    for (int i = 0; i < 4; i++) {
        n[i] = pick_size(&s);
        v[i] = alloc_checked(n[i], "ephemeral");
        if (v[i]) stamp(v[i], n[i], (uint32_t)i + 77);
    }
    for (int i = 0; i < 4; i++) {
        if (!v[i]) continue;
        if (i % 2 == 0 || !q_push((item_t){v[i], n[i], (uint32_t)i + 77})) {
            hak_free(v[i]);
            atomic_fetch_add(&n_free, 1);
        }
    }
    return NULL;               /* exits with a claimed counter slot and blocks in BigCache */
}

static void *spawner(void *arg) {
    (void)arg;
    uintptr_t k = 0;
    while (!atomic_load(&stop)) {
        pthread_t t[3];
        int nt = 0;
        for (int i = 0; i < 3; i++)
            if (pthread_create(&t[nt], NULL, ephemeral, (void *)++k) == 0) nt++;
        for (int i = 0; i < nt; i++) pthread_join(t[i], NULL);
        atomic_fetch_add(&n_threads, (uint64_t)nt);
    }
    return NULL;
}

static void *knobber(void *arg) {
    (void)arg;
    uint64_t s = 12345;
    while (!atomic_load(&stop)) {
        switch (rnd(&s) % 7) {
        case 0: hak_set_ring_cap(rnd(&s) % 600); break;
        case 1: hak_set_batch_threshold(rnd(&s) % ((uint64_t)64 << 20)); break;
        case 2: hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, rnd(&s) % ((uint64_t)256 << 20)); break;
        case 3: hak_trim(); break;
        case 4: hak_flush(); break;
        default:   /* as another process would: through the control block */
            hak_shm_control_post(hak_seg, rnd(&s) % 8, rnd(&s) % 1000, rnd(&s) % ((uint64_t)2 << 30));
            break;
        }
        uint64_t cap = hak_knob_get(HAKMEM_KNOB_RING_CAP), thr = hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD);
        if (cap > HAK_RING_CAP_MAX || thr < HAK_BATCH_THRESHOLD_MIN || thr > HAK_BATCH_THRESHOLD_MAX)
            FAIL("knobs out of bounds: cap %llu threshold %llu", (unsigned long long)cap, (unsigned long long)thr);
        atomic_fetch_add(&n_knob, 1);
        usleep(2000);
    }
    return NULL;
}

/* Which invariant a refused snapshot broke (the reader fills the sums before checking). */
static void explain_corrupt(const hak_snapshot_t *sn) {
    const uint64_t *c = sn->counter;
    uint64_t ev = c[HAK_C_evict_ring_full] + c[HAK_C_evict_cap_lowered] + c[HAK_C_evict_budget] +
                  c[HAK_C_evict_idle_trim] + c[HAK_C_evict_uncacheable];
    fprintf(stderr,
            "mt_native: refused snapshot: hits+misses %llu vs large_allocs %llu; evictions %llu vs batch_adds %llu; "
            "batch bytes flushed %llu vs added %llu; gauges",
            (unsigned long long)(c[HAK_C_cache_hits] + c[HAK_C_cache_misses]), (unsigned long long)c[HAK_C_large_allocs],
            (unsigned long long)ev, (unsigned long long)c[HAK_C_batch_adds],
            (unsigned long long)c[HAK_C_batch_bytes_flushed], (unsigned long long)c[HAK_C_batch_add_bytes]);
    for (int k = 0; k < HAK_NGAUGES; k++) fprintf(stderr, " %s=%lld", hak_gauge_names[k], (long long)sn->gauge[k]);
    fputc('\n', stderr);
}

static void *reader(void *arg) {
    (void)arg;
    static hak_snapshot_t snap;
    while (!atomic_load(&stop)) {
        int rc = hak_shm_snapshot(hak_seg, &snap);
        if (rc == -HAK_SHM_EBUSY) atomic_fetch_add(&n_busy, 1);
        else if (rc != 0) {
            FAIL("snapshot of the live segment: %s", hak_shm_strerror(rc));
            if (rc == -HAK_SHM_ECORRUPT) explain_corrupt(&snap);
        }
        hak_stats_t st;
        hak_stats_get(&st);
        atomic_fetch_add(&n_snap, 1);
        usleep(1000);
    }
    return NULL;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 5;
    int nprod = argc > 2 ? atoi(argv[2]) : 2;
    if (nprod < 1 || nprod > 16) nprod = 2;
    hak_free(hak_alloc(1));
    pthread_t t[40];
    int nt = 0;
    for (int i = 0; i < nprod; i++) pthread_create(&t[nt++], NULL, producer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < nprod; i++) pthread_create(&t[nt++], NULL, consumer, (void *)(uintptr_t)(i + 1));
    pthread_create(&t[nt++], NULL, spawner, NULL);
    pthread_create(&t[nt++], NULL, knobber, NULL);
    pthread_create(&t[nt++], NULL, reader, NULL);
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < nt; i++) pthread_join(t[i], NULL);

    item_t it;
    uint64_t s = 99;
    while (q_pop(&it)) consume_one(it, &s);
    hak_set_ring_cap(4);
    hak_set_batch_threshold((uint64_t)4 << 20);
    hak_trim();
    uint64_t c[HAK_NCOUNTERS];
    int64_t g[HAK_NGAUGES];
    hak_stats_sum(c, g);
    for (int k = 0; k < HAK_NGAUGES; k++)
        if (g[k] != 0) FAIL("after freeing everything and a trim, gauge %s = %lld", hak_gauge_names[k], (long long)g[k]);
    static hak_snapshot_t snap;
    int rc = hak_shm_snapshot(hak_seg, &snap);
    if (rc != 0) FAIL("final snapshot: %s", hak_shm_strerror(rc));
    printf("mt_native: %.1f s, %d producers + %d consumers: %llu allocs, %llu frees, %llu reallocs, %llu threads "
           "exited, %llu knob changes, %llu snapshots (%llu busy), %llu flushes, %llu munmaps, failures %d\n",
           secs, nprod, nprod, (unsigned long long)n_alloc, (unsigned long long)n_free,
           (unsigned long long)n_realloc, (unsigned long long)n_threads, (unsigned long long)n_knob,
           (unsigned long long)n_snap, (unsigned long long)n_busy, (unsigned long long)c[HAK_C_batch_flushes],
           (unsigned long long)c[HAK_C_munmap_calls], atomic_load(&failures));
    return atomic_load(&failures) ? 1 : 0;
}
