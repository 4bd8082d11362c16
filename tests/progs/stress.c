/*
 * stress.c - multi-thread stress of the malloc family, meant to run under
 * LD_PRELOAD=libhakmem.so (it uses plain malloc/free/... only; hakmem's native
 * API is looked up with dlsym for the final accounting checks, when present).
 *
 * Each worker thread keeps a table of live blocks and, at random:
 *   - allocates with malloc, calloc (checked zeroed), realloc(NULL, n),
 *     posix_memalign / aligned_alloc / memalign / valloc / pvalloc with
 *     alignments up to 4 MiB (alignment checked), sizes 64 KiB..8 MiB biased
 *     to size-class boundaries and to 2 MiB, plus small sizes below 64 KiB;
 *   - reallocs grow/shrink, within the large range and across 64 KiB;
 *   - hands blocks to another thread's inbox: that thread checks them
 *     (sometimes reallocs them) and frees them (cross-thread frees);
 *   - frees, after checking the block's contents.
 * Every block carries a pattern derived from a unique tag (every byte for
 * "full" blocks, the first/last 256 bytes and 16 bytes of every page for the
 * others); it is checked before every free and realloc and at random while
 * live.  A monitor thread snapshots this process's telemetry segment
 * (/dev/shm/hakmem.<pid>) all along: snapshots must be consistent, counters
 * monotonic, and munmap_calls == batch_ranges_flushed (only Batch munmaps).
 * At the end (everything freed): blocks_live == 0; after hak_trim(),
 * bytes_mapped == 0 (nothing leaked, tails included).
 *
 * Exit 0 = OK, 1 = corruption or a failed check (message on stderr), 2 = usage.
 *   stress [-t threads] [-d seconds] [-n ops/thread] [-s seed] [-m MiB/thread] [-x KiB] [-C] [-M] [-A] [-q]
 *   -x caps the request sizes (64 KiB..x KiB): many small large blocks, e.g.
 *   to fill Batch's pending list with HAKMEM_RING_CAP=0 and a huge threshold.
 *   -C replaces the operation mix by a tight malloc/touch/check/free loop.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "hakmem/shm.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define NSLOTS 48
#define INBOX_CAP 256
#define LARGE_MIN (64 * KiB)

typedef struct blk {
    unsigned char *p;
    size_t n;           /* requested size */
    uint64_t tag;
    bool full;          /* every byte patterned (else sparse) */
} blk_t;

typedef struct inbox {
    pthread_mutex_t lock;
    blk_t v[INBOX_CAP];
    int n;
} inbox_t;

typedef struct counts {
    uint64_t ops, mallocs, callocs, aligned, reallocs, cross_reallocs, frees, handoffs, received, checks, small,
        large, thp_misaligned, bytes;
} counts_t;

typedef struct worker {
    pthread_t th;
    int id;
    uint64_t rng;
    blk_t slot[NSLOTS];
    size_t live_bytes;
    counts_t c;
} worker_t;

static int nthreads = 4;
static double duration = 10.0;
static uint64_t max_ops;       /* per thread; 0 = until the duration */
static uint64_t seed = 1;
static size_t max_live = 96 * MiB;
static size_t max_large = 8 * MiB;    /* -x: largest request */
static bool strict_thp, quiet, no_monitor, churn_mode;
#define MAX_THREADS 256
/* static, not malloc'd: the accounting checks expect no large block alive at the end */
static worker_t workers[MAX_THREADS];
static inbox_t inboxes[MAX_THREADS];
static pthread_barrier_t end_barrier;
static _Atomic bool stop_monitor;
static _Atomic int failing;
static _Atomic uint64_t tag_seq;
static uint64_t thp_expected;  /* 2 MiB alignment expected for >= 2 MiB blocks */
static bool hakmem_active;     /* large blocks served by hakmem (64-byte aligned, maybe colored) */
static size_t class_sizes[64];
static int nclass_sizes;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
    if (atomic_exchange(&failing, 1)) {
        for (;;) pause();      /* another thread is already reporting */
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "stress: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (seed %" PRIu64 ")\n", seed);
    va_end(ap);
    fflush(stderr);
    exit(1);
}

static inline uint64_t rnd(uint64_t *s) {   /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static inline uint64_t rnd_below(uint64_t *s, uint64_t n) { return n ? rnd(s) % n : 0; }

/* ---- size choices ---- */
static void init_classes(void) {
    /* the library's classes: 64K, then 4 equal steps per doubling (up to 8 MiB here) */
    class_sizes[nclass_sizes++] = 64 * KiB;
    for (size_t base = 64 * KiB; base < 8 * MiB; base *= 2)
        for (int k = 1; k <= 4; k++) class_sizes[nclass_sizes++] = base + (size_t)k * (base / 4);
}

static size_t pick_small(uint64_t *r) {
    switch (rnd_below(r, 6)) {
    case 0: return 1 + rnd_below(r, 64);
    case 1: return LARGE_MIN - 1 - rnd_below(r, 32);
    case 2: return 1 + rnd_below(r, 4096);
    default: return 1 + rnd_below(r, LARGE_MIN - 1);
    }
}

static size_t pick_large(uint64_t *r) {
    static const long deltas[] = {-4097, -4096, -1, 0, 0, 0, 1, 4096, 4097};
    size_t n;
    switch (rnd_below(r, 10)) {
    case 0: case 1: case 2:                  /* a class boundary, +- a little */
        n = class_sizes[rnd_below(r, (uint64_t)nclass_sizes)];
        n = (size_t)((long)n + deltas[rnd_below(r, sizeof deltas / sizeof deltas[0])]);
        break;
    case 3: case 4:                          /* around 2 MiB */
        n = 2 * MiB + (size_t)(deltas[rnd_below(r, sizeof deltas / sizeof deltas[0])] +
                               (long)rnd_below(r, 3) * 65536 - 65536);
        break;
    default: {                               /* log-uniform 64 KiB .. 8 MiB */
        unsigned e = 16 + (unsigned)rnd_below(r, 7);
        n = ((size_t)1 << e) + rnd_below(r, (uint64_t)1 << e);
        break;
    }
    }
    if (n < LARGE_MIN) n = LARGE_MIN;
    if (n > max_large) n = LARGE_MIN + rnd_below(r, max_large - LARGE_MIN + 1);
    return n;
}

/* ---- patterns ---- */
static inline uint64_t pat_word(uint64_t tag, size_t i) { return tag + i * 0x9E3779B97F4A7C15ULL; }
static inline unsigned char pat_byte(uint64_t tag, size_t o) { return (unsigned char)((tag >> ((o & 7) * 8)) ^ o ^ 0x5a); }

/* Calls fn(i) for the word indexes of the sparse layout of an n-byte block. */
#define SPARSE_FOR(n, i, body)                                                      \
    do {                                                                            \
        size_t nw_ = (n) / 8, head_ = nw_ < 32 ? nw_ : 32;                          \
        for (size_t i = 0; i < head_; i++) { body; }                                \
        for (size_t pg_ = 512; pg_ < nw_; pg_ += 512)                               \
            for (size_t i = pg_; i < pg_ + 2 && i < nw_; i++) { body; }             \
        for (size_t i = nw_ > 32 ? nw_ - 32 : head_; i < nw_; i++) { body; }        \
    } while (0)

/* Write the pattern; words from word index `from` on (full blocks). */
static void fill(const blk_t *b, size_t from) {
    uint64_t *w = (uint64_t *)b->p;
    size_t nw = b->n / 8;
    if (b->full) {
        for (size_t i = from; i < nw; i++) w[i] = pat_word(b->tag, i);
    } else {
        SPARSE_FOR(b->n, i, w[i] = pat_word(b->tag, i));
    }
    for (size_t o = nw * 8; o < b->n; o++) b->p[o] = pat_byte(b->tag, o);
}

static void report_bad(const blk_t *b, size_t off, uint64_t want, uint64_t got, const char *what, int tid) {
    fail("thread %d: corruption %s: block %p (%zu bytes, %s, tag %#" PRIx64 ") at offset %zu: want %#" PRIx64
         " got %#" PRIx64,
         tid, what, (void *)b->p, b->n, b->full ? "full" : "sparse", b->tag, off, want, got);
}

/* Check the pattern of b over [0, limit). */
static void check(const blk_t *b, size_t limit, const char *what, int tid) {
    const uint64_t *w = (const uint64_t *)b->p;
    size_t nw = b->n / 8;
    if (limit > b->n) limit = b->n;
    size_t lw = limit / 8;
    if (b->full) {
        for (size_t i = 0; i < lw; i++)
            if (w[i] != pat_word(b->tag, i)) report_bad(b, i * 8, pat_word(b->tag, i), w[i], what, tid);
    } else {
        SPARSE_FOR(b->n, i, if (i < lw && w[i] != pat_word(b->tag, i))
                                report_bad(b, i * 8, pat_word(b->tag, i), w[i], what, tid));
    }
    for (size_t o = nw * 8; o < limit; o++)
        if (b->p[o] != pat_byte(b->tag, o)) report_bad(b, o, pat_byte(b->tag, o), b->p[o], what, tid);
}

static void check_zero(const unsigned char *p, size_t n, int tid) {
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i] != 0) fail("thread %d: calloc(%zu) = %p not zeroed at offset %zu: %#" PRIx64, tid, n, (void *)p, i * 8, w[i]);
    for (size_t o = n / 8 * 8; o < n; o++)
        if (p[o] != 0) fail("thread %d: calloc(%zu) = %p not zeroed at offset %zu", tid, n, (void *)p, o);
}

/* Checks every new block: not NULL, usable size, alignment. */
static void check_new(worker_t *w, const void *p, size_t n, size_t align, const char *fn) {
    if (p == NULL) fail("thread %d: %s(%zu, align %zu) returned NULL: %s", w->id, fn, n, align, strerror(errno));
    size_t a = align > 16 ? align : 16;
    if ((uintptr_t)p % a != 0) fail("thread %d: %s(%zu) = %p is not %zu-aligned", w->id, fn, n, p, a);
    if (malloc_usable_size((void *)p) < n)
        fail("thread %d: %s(%zu) = %p: malloc_usable_size %zu < %zu", w->id, fn, n, p, malloc_usable_size((void *)p), n);
    if (hakmem_active && n >= LARGE_MIN) {
        /* a cache line at least: a block may be colored (an offset into its
         * first page, for blocks that keep 4 KiB pages) */
        if ((uintptr_t)p % 64 != 0) fail("thread %d: %s(%zu) = %p: large block not 64-byte aligned", w->id, fn, n, p);
        /* new blocks from malloc/calloc (not realloc, not over-aligned
         * requests), not colored (those keep 4 KiB pages by choice) */
        if (thp_expected && n >= 2 * MiB && align == 0 && strncmp(fn, "realloc", 7) != 0 &&
            (uintptr_t)p % 4096 == 0 && (uintptr_t)p % (2 * MiB) != 0) {
            w->c.thp_misaligned++;
            if (strict_thp) fail("thread %d: %s(%zu) = %p: block >= 2 MiB not 2 MiB-aligned (THP)", w->id, fn, n, p);
        }
    }
    if (n >= LARGE_MIN) w->c.large++;
    else w->c.small++;
}

static uint64_t new_tag(worker_t *w) {
    return (atomic_fetch_add(&tag_seq, 1) + 1) * 0xD1B54A32D192ED03ULL ^ ((uint64_t)w->id << 56);
}

/* ---- operations ---- */
static void do_alloc(worker_t *w, blk_t *b) {
    uint64_t *r = &w->rng;
    size_t n = rnd_below(r, 4) == 0 ? pick_small(r) : pick_large(r);
    if (w->live_bytes + n > max_live) n = pick_small(r);
    void *p = NULL;
    size_t align = 0;
    bool zeroed = false;
    switch (rnd_below(r, 10)) {
    case 0: case 1:
        if (n % 8 == 0 && rnd_below(r, 2)) p = calloc(8, n / 8);
        else p = rnd_below(r, 2) ? calloc(1, n) : calloc(n, 1);
        zeroed = true;
        check_new(w, p, n, 0, "calloc");
        w->c.callocs++;
        break;
    case 2: case 3: {
        static const size_t aligns[] = {16, 64, 4096, 8192, 64 * KiB, 1 * MiB, 2 * MiB, 4 * MiB};
        align = aligns[rnd_below(r, sizeof aligns / sizeof aligns[0])];
        int kind = (int)rnd_below(r, 5);
        const char *fn = "posix_memalign";
        if (kind == 0) {
            int rc = posix_memalign(&p, align, n);
            if (rc != 0) fail("thread %d: posix_memalign(%zu, %zu) = %d", w->id, align, n, rc);
        } else if (kind == 1) {
            fn = "aligned_alloc";
            p = aligned_alloc(align, n);
        } else if (kind == 2) {
            fn = "memalign";
            p = memalign(align, n);
        } else if (kind == 3) {
            fn = "valloc";
            align = 4096;
            p = valloc(n);
        } else {
            fn = "pvalloc";
            align = 4096;
            p = pvalloc(n);
        }
        check_new(w, p, n, align, fn);
        w->c.aligned++;
        break;
    }
    case 4:
        p = realloc(NULL, n);
        check_new(w, p, n, 0, "realloc(NULL)");
        w->c.mallocs++;
        break;
    default:
        p = malloc(n);
        check_new(w, p, n, 0, "malloc");
        w->c.mallocs++;
        break;
    }
    if (zeroed) {
        check_zero(p, n, w->id);
        w->c.checks++;
    }
    b->p = p;
    b->n = n;
    b->tag = new_tag(w);
    b->full = n < 8 * KiB || rnd_below(r, 8) == 0;
    fill(b, 0);
    w->live_bytes += n;
    w->c.bytes += n;
}

static void do_free(worker_t *w, blk_t *b, const char *what) {
    check(b, b->n, what, w->id);
    free(b->p);
    w->live_bytes -= b->n;
    b->p = NULL;
    w->c.frees++;
}

static void do_realloc(worker_t *w, blk_t *b) {
    uint64_t *r = &w->rng;
    size_t old = b->n, n;
    switch (rnd_below(r, 5)) {
    case 0: n = old < LARGE_MIN ? pick_large(r) : pick_small(r); break;     /* across 64 KiB */
    case 1: n = old + 1 + rnd_below(r, old < 2 * MiB ? old : 2 * MiB); break; /* grow */
    case 2: n = old / 2 + 1; break;                                         /* shrink */
    case 3: n = old + 4096; break;                                          /* grow a page */
    default: n = pick_large(r); break;
    }
    if (n > max_large) n = max_large;
    if (w->live_bytes - old + n > max_live) n = old / 2 + 1;
    check(b, old, "before realloc", w->id);
    void *p = rnd_below(r, 8) == 0 ? reallocarray(b->p, 1, n) : realloc(b->p, n);
    check_new(w, p, n, 0, "realloc");
    if ((old < LARGE_MIN) != (n < LARGE_MIN)) w->c.cross_reallocs++;
    b->p = p;
    size_t keep = old < n ? old : n;
    blk_t prev = *b;
    prev.n = old;
    check(&prev, keep, "after realloc (contents not preserved)", w->id);
    b->n = n;
    fill(b, keep / 8);
    w->live_bytes = w->live_bytes - old + n;
    w->c.reallocs++;
}

static bool hand_off(worker_t *w, blk_t *b) {
    if (nthreads < 2) return false;
    int to = (int)rnd_below(&w->rng, (uint64_t)nthreads - 1);
    if (to >= w->id) to++;
    inbox_t *in = &inboxes[to];
    bool ok = false;
    pthread_mutex_lock(&in->lock);
    if (in->n < INBOX_CAP) {
        in->v[in->n++] = *b;
        ok = true;
    }
    pthread_mutex_unlock(&in->lock);
    if (ok) {
        w->live_bytes -= b->n;
        b->p = NULL;
        w->c.handoffs++;
    }
    return ok;
}

static void drain_inbox(worker_t *w) {
    inbox_t *in = &inboxes[w->id];
    blk_t got[INBOX_CAP];
    pthread_mutex_lock(&in->lock);
    int n = in->n;
    memcpy(got, in->v, (size_t)n * sizeof got[0]);
    in->n = 0;
    pthread_mutex_unlock(&in->lock);
    for (int i = 0; i < n; i++) {
        blk_t *b = &got[i];
        w->live_bytes += b->n;
        w->c.received++;
        check(b, b->n, "received from another thread", w->id);
        if (rnd_below(&w->rng, 4) == 0) do_realloc(w, b);
        do_free(w, b, "before free (received)");
    }
}

/* -C: tight malloc/touch/check/free loop, a block at a time (cold churn:
 * with HAKMEM_RING_CAP=0 every free goes straight to Batch). */
static void churn_loop(worker_t *w) {
    double deadline = now_s() + duration;
    for (uint64_t op = 0; max_ops == 0 || op < max_ops; op++) {
        if ((op & 63) == 0 && max_ops == 0 && now_s() >= deadline) break;
        blk_t b;
        b.n = pick_large(&w->rng);
        b.p = malloc(b.n);
        check_new(w, b.p, b.n, 0, "malloc");
        b.tag = new_tag(w);
        b.full = true;                      /* every byte written and checked */
        fill(&b, 0);
        check(&b, b.n, "before free (churn)", w->id);
        free(b.p);
        w->c.mallocs++;
        w->c.frees++;
        w->c.bytes += b.n;
        w->c.ops++;
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    if (churn_mode) {
        churn_loop(w);
        pthread_barrier_wait(&end_barrier);
        return NULL;
    }
    double deadline = now_s() + duration;
    for (uint64_t op = 0; max_ops == 0 || op < max_ops; op++) {
        if ((op & 15) == 0 && max_ops == 0 && now_s() >= deadline) break;
        if ((op & 3) == 0) drain_inbox(w);
        blk_t *b = &w->slot[rnd_below(&w->rng, NSLOTS)];
        if (b->p == NULL) {
            do_alloc(w, b);
        } else {
            uint64_t a = rnd_below(&w->rng, 20);
            if (a < 8) do_free(w, b, "before free");
            else if (a < 13) do_realloc(w, b);
            else if (a < 17) {
                if (!hand_off(w, b)) do_free(w, b, "before free");
            } else {
                check(b, b->n, "live block", w->id);
                w->c.checks++;
            }
        }
        w->c.ops++;
    }
    for (int i = 0; i < NSLOTS; i++)
        if (w->slot[i].p) do_free(w, &w->slot[i], "before final free");
    drain_inbox(w);
    pthread_barrier_wait(&end_barrier);   /* nobody hands off any more */
    drain_inbox(w);
    return NULL;
}

/* ---- telemetry ---- */
typedef struct monitor {
    hak_shm_handle_t h;
    bool open;
    uint64_t snaps, busy;
    uint64_t last[HAK_NCOUNTERS];
} monitor_t;

static void check_snapshot(monitor_t *m, const hak_snapshot_t *s, const char *when) {
    for (int k = 0; k < HAK_NCOUNTERS; k++) {
        if (s->counter[k] < m->last[k])
            fail("%s snapshot: counter %s went backwards (%" PRIu64 " -> %" PRIu64 ")", when, hak_counter_names[k],
                 m->last[k], s->counter[k]);
        m->last[k] = s->counter[k];
    }
    if (s->counter[HAK_C_munmap_calls] != s->counter[HAK_C_batch_ranges_flushed])
        fail("%s snapshot: munmap_calls %" PRIu64 " != batch_ranges_flushed %" PRIu64 " (a munmap outside Batch?)", when,
             s->counter[HAK_C_munmap_calls], s->counter[HAK_C_batch_ranges_flushed]);
    if (s->counter[HAK_C_munmap_failures] != 0)
        fail("%s snapshot: %" PRIu64 " munmap failures", when, s->counter[HAK_C_munmap_failures]);
    if (s->counter[HAK_C_invalid_frees] != 0)
        fail("%s snapshot: %" PRIu64 " invalid frees detected", when, s->counter[HAK_C_invalid_frees]);
}

/* The sums of a rejected snapshot, as the reader had them (gauges: only the
 * negative ones; the reader does not fill them when it rejects). */
static const char *why_corrupt(const hak_snapshot_t *s) {
    static char buf[512];
    const uint64_t *c = s->counter;
    uint64_t ev = c[HAK_C_evict_ring_full] + c[HAK_C_evict_cap_lowered] + c[HAK_C_evict_budget] +
                  c[HAK_C_evict_idle_trim] + c[HAK_C_evict_uncacheable];
    int n = snprintf(buf, sizeof buf, ": hits+misses=%" PRIu64 " large_allocs=%" PRIu64 " evictions=%" PRIu64
                     " batch_adds=%" PRIu64 " bytes_flushed=%" PRIu64 " add_bytes=%" PRIu64,
                     c[HAK_C_cache_hits] + c[HAK_C_cache_misses], c[HAK_C_large_allocs], ev, c[HAK_C_batch_adds],
                     c[HAK_C_batch_bytes_flushed], c[HAK_C_batch_add_bytes]);
    for (int k = 0; k < HAK_NGAUGES && n > 0 && (size_t)n < sizeof buf; k++)
        if (s->gauge[k] < 0) n += snprintf(buf + n, sizeof buf - (size_t)n, " %s=%" PRId64, hak_gauge_names[k], s->gauge[k]);
    return buf;
}

static void *monitor_main(void *arg) {
    monitor_t *m = arg;
    hak_snapshot_t s;
    while (!atomic_load(&stop_monitor)) {
        int rc = hak_shm_snapshot(m->h.shm, &s);
        if (rc == -HAK_SHM_EBUSY) m->busy++;
        else if (rc != 0) fail("monitor: snapshot of own segment: %s%s", hak_shm_strerror(rc), why_corrupt(&s));
        else {
            m->snaps++;
            check_snapshot(m, &s, "live");
        }
        usleep(2000);
    }
    return NULL;
}

static void usage(void) {
    fprintf(stderr,
            "usage: stress [-t threads] [-d seconds] [-n ops-per-thread] [-s seed] [-m MiB-live-per-thread]\n"
            "              [-x KiB (largest request, default 8192)] [-C (cold churn: malloc/touch/free loop)]\n"
            "              [-M (no telemetry monitor)] [-A (>= 2 MiB blocks must be 2 MiB-aligned under THP)] [-q]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "t:d:n:s:m:x:CMAqh")) != -1) {
        switch (opt) {
        case 't': nthreads = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'n': max_ops = strtoull(optarg, NULL, 0); break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'm': max_live = (size_t)strtoull(optarg, NULL, 0) * MiB; break;
        case 'x': max_large = (size_t)strtoull(optarg, NULL, 0) * KiB; break;
        case 'M': no_monitor = true; break;
        case 'C': churn_mode = true; break;
        case 'A': strict_thp = true; break;
        case 'q': quiet = true; break;
        default: usage();
        }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS || duration <= 0 || max_live < 16 * MiB || max_large < LARGE_MIN ||
        max_large > max_live / 2)
        usage();
    if (seed == 0) seed = 1;
    init_classes();

    void (*stats_get)(hak_stats_t *) = (void (*)(hak_stats_t *))dlsym(RTLD_DEFAULT, "hak_stats_get");
    void (*trim)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "hak_trim");

    monitor_t mon;
    memset(&mon, 0, sizeof mon);
    hak_snapshot_t snap;
    int orc = hak_shm_open_pid((int)getpid(), &mon.h);
    mon.open = orc == 0;
    uint32_t mode = HAK_MODE_OFF;
    if (mon.open) {
        int rc = hak_shm_snapshot(mon.h.shm, &snap);
        if (rc != 0) fail("first snapshot of own segment: %s", hak_shm_strerror(rc));
        mode = snap.mode;
        hakmem_active = mode != HAK_MODE_OFF && snap.knobs.large_min <= LARGE_MIN;
        thp_expected = snap.knobs.thp != 0;
        check_snapshot(&mon, &snap, "initial");
    } else if (stats_get) {
        void *probe = malloc(LARGE_MIN);
        hak_stats_t st;
        stats_get(&st);
        hakmem_active = st.large_allocs > 0;
        free(probe);
    }
    if (!quiet)
        printf("stress: %sthreads=%d duration=%.1fs ops/thread=%" PRIu64 " seed=%" PRIu64 " sizes<=%zuK hakmem=%s segment=%s"
               " mode=%s thp=%s\n",
               churn_mode ? "churn " : "", nthreads, duration, max_ops, seed, max_large >> 10, stats_get ? "preloaded" : "absent",
               mon.open ? "yes" : hak_shm_strerror(orc), mon.open ? hak_mode_name(mode) : "?",
               thp_expected ? "2MiB-aligned" : "no");
    fflush(stdout);

    pthread_barrier_init(&end_barrier, NULL, (unsigned)nthreads);
    pthread_t mon_th;
    bool mon_running = mon.open && !no_monitor;
    if (mon_running && pthread_create(&mon_th, NULL, monitor_main, &mon) != 0) fail("pthread_create(monitor)");
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_init(&inboxes[i].lock, NULL);
        workers[i].id = i;
        workers[i].rng = (seed * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)(i + 1) * 0xBF58476D1CE4E5B9ULL);
        if (workers[i].rng == 0) workers[i].rng = 1;
        if (pthread_create(&workers[i].th, NULL, worker_main, &workers[i]) != 0) fail("pthread_create(worker %d)", i);
    }
    counts_t tot = {0};
    for (int i = 0; i < nthreads; i++) {
        pthread_join(workers[i].th, NULL);
        counts_t *c = &workers[i].c;
        tot.ops += c->ops; tot.mallocs += c->mallocs; tot.callocs += c->callocs; tot.aligned += c->aligned;
        tot.reallocs += c->reallocs; tot.cross_reallocs += c->cross_reallocs; tot.frees += c->frees;
        tot.handoffs += c->handoffs; tot.received += c->received; tot.checks += c->checks; tot.small += c->small;
        tot.large += c->large; tot.thp_misaligned += c->thp_misaligned; tot.bytes += c->bytes;
    }
    double dt = now_s() - t0;
    for (int i = 0; i < nthreads; i++)
        if (inboxes[i].n != 0) fail("inbox of thread %d not drained (%d blocks)", i, inboxes[i].n);
    if (tot.handoffs != tot.received) fail("handed off %" PRIu64 " blocks but %" PRIu64 " were received", tot.handoffs, tot.received);
    if (mon_running) {
        atomic_store(&stop_monitor, true);
        pthread_join(mon_th, NULL);
    }
    printf("stress: %" PRIu64 " ops in %.1fs (%.0f ops/s): mallocs=%" PRIu64 " callocs=%" PRIu64 " aligned=%" PRIu64
           " reallocs=%" PRIu64 " (across 64K: %" PRIu64 ") frees=%" PRIu64 " handoffs=%" PRIu64 " large=%" PRIu64
           " small=%" PRIu64 " checks=%" PRIu64 " GiB=%.1f thp_misaligned=%" PRIu64 "\n",
           tot.ops, dt, (double)tot.ops / dt, tot.mallocs, tot.callocs, tot.aligned, tot.reallocs, tot.cross_reallocs,
           tot.frees, tot.handoffs, tot.large, tot.small, tot.checks, (double)tot.bytes / (double)(1u << 30),
           tot.thp_misaligned);

    /* ---- accounting, now that every block is freed ---- */
    if (stats_get) {
        hak_stats_t st;
        stats_get(&st);
        printf("hakmem: large_allocs=%" PRIu64 " large_frees=%" PRIu64 " hits=%" PRIu64 " misses=%" PRIu64
               " puts=%" PRIu64 " evictions=%" PRIu64 " batch_adds=%" PRIu64 " flushes=%" PRIu64
               " blocks_flushed=%" PRIu64 " ranges=%" PRIu64 " munmap=%" PRIu64 " mmap=%" PRIu64 " mremap=%" PRIu64
               " madvise=%" PRIu64 " peak_mapped_MiB=%" PRIu64 " near=%" PRIu64 " reshaped=%" PRIu64
               " rescued=%" PRIu64 " lent_tails=%" PRIu64 "\n",
               st.large_allocs, st.large_frees, st.cache_hits, st.cache_misses, st.cache_puts, st.evictions,
               st.batch_adds, st.batch_flushes, st.batch_blocks_flushed, st.batch_ranges_flushed, st.munmap_calls,
               st.mmap_calls, st.mremap_calls, st.madvise_calls, st.peak_bytes_mapped >> 20, st.warm_near,
               st.warm_reshaped, st.warm_rescued, st.lent_tail_released);
        if (hakmem_active && st.large_allocs == 0) fail("hakmem is active but served no large allocation");
        if (mon.open && mode == HAK_MODE_OFF && st.large_allocs != 0)
            fail("HAKMEM_MODE=off but hakmem served %" PRIu64 " large allocations", st.large_allocs);
        if (st.large_allocs != st.large_frees)
            fail("large_allocs %" PRIu64 " != large_frees %" PRIu64 " with every block freed", st.large_allocs, st.large_frees);
        if (st.munmap_calls != st.batch_ranges_flushed)
            fail("munmap_calls %" PRIu64 " != batch_ranges_flushed %" PRIu64, st.munmap_calls, st.batch_ranges_flushed);
    }
    if (mon.open) {
        int rc = hak_shm_snapshot(mon.h.shm, &snap);
        if (rc != 0) fail("final snapshot: %s", hak_shm_strerror(rc));
        check_snapshot(&mon, &snap, "final");
        const int64_t *g = snap.gauge;
        printf("segment: snapshots=%" PRIu64 " busy=%" PRIu64 " blocks_live=%" PRId64 " bytes_cached=%" PRId64
               " blocks_cached=%" PRId64 " bytes_pending=%" PRId64 " bytes_mapped=%" PRId64 "\n",
               mon.snaps, mon.busy, g[HAK_G_blocks_live], g[HAK_G_bytes_cached], g[HAK_G_blocks_cached],
               g[HAK_G_bytes_pending], g[HAK_G_bytes_mapped]);
        if (mon_running && mon.snaps == 0) fail("the monitor never got a consistent snapshot (%" PRIu64 " busy)", mon.busy);
        if (g[HAK_G_blocks_live] != 0 || g[HAK_G_bytes_live] != 0)
            fail("every block is freed but blocks_live=%" PRId64 " bytes_live=%" PRId64, g[HAK_G_blocks_live], g[HAK_G_bytes_live]);
        if (g[HAK_G_bytes_mapped] < g[HAK_G_bytes_cached] + g[HAK_G_bytes_pending])
            fail("bytes_mapped %" PRId64 " < bytes_cached %" PRId64 " + bytes_pending %" PRId64, g[HAK_G_bytes_mapped],
                 g[HAK_G_bytes_cached], g[HAK_G_bytes_pending]);
        if (trim) {
            trim();
            rc = hak_shm_snapshot(mon.h.shm, &snap);
            if (rc != 0) fail("snapshot after hak_trim: %s", hak_shm_strerror(rc));
            check_snapshot(&mon, &snap, "after trim");
            printf("after hak_trim: bytes_mapped=%" PRId64 " blocks_cached=%" PRId64 " blocks_pending=%" PRId64
                   " munmap=%" PRIu64 " ranges=%" PRIu64 "\n",
                   g[HAK_G_bytes_mapped], g[HAK_G_blocks_cached], g[HAK_G_blocks_pending],
                   snap.counter[HAK_C_munmap_calls], snap.counter[HAK_C_batch_ranges_flushed]);
            if (g[HAK_G_bytes_mapped] != 0 || g[HAK_G_blocks_cached] != 0 || g[HAK_G_blocks_pending] != 0 ||
                g[HAK_G_bytes_pending] != 0)
                fail("after hak_trim with nothing live: bytes_mapped=%" PRId64 " blocks_cached=%" PRId64
                     " blocks_pending=%" PRId64 " (memory not returned, or gauges wrong)",
                     g[HAK_G_bytes_mapped], g[HAK_G_blocks_cached], g[HAK_G_blocks_pending]);
        }
        hak_shm_close(&mon.h);
    }
    if (strict_thp && tot.thp_misaligned) fail("%" PRIu64 " blocks >= 2 MiB not 2 MiB-aligned", tot.thp_misaligned);
    printf("stress: OK\n");
    return 0;
}
