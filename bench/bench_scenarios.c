/*
 * bench_scenarios.c - the workloads, and what a worker process measures.
 *
 * A worker runs ONE scenario under ONE allocator (the driver put it in
 * LD_PRELOAD) and prints one line "RESULT key=value ..." on stdout.  Every
 * scenario draws sizes and choices from a fixed-seed PRNG, so every allocator
 * sees exactly the same sequence of calls.  Memory is touched the way a program
 * would: one 8-byte write at every 4 KiB of the block (so every page is faulted
 * in) plus its last 8 bytes, or every byte with --touch full.  Before a block is
 * freed a few of those words are read back and checked; their sum is the
 * scenario's checksum, the same for every allocator (the driver compares them),
 * and the writes are volatile so the compiler cannot drop them.
 *
 * An "op" is one allocation call (malloc or realloc); ns/op = scenario wall time
 * / ops.  Frees are part of the timed work but not counted as ops.
 *
 * Each scenario is also cut into rounds (bench_scenario_t.rounds): the first
 * round is the start of the pattern, before any cache or tuner has seen it; the
 * later rounds repeat one unit of the pattern.  The worker reports the first
 * round's time and the median time per op of the later rounds.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "hakmem.h"
#include "hakmem/shm.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define PAGE 4096u

/* Indices of bench_scenarios[] (the worker dispatches on them). */
enum {
    SC_VM, SC_COLD_CHURN, SC_MIXED, SC_PHASED, SC_REALLOC_GROW, SC_THREADS, SC_MALLOC_LARGE, SC_SMALL,
    SC_PARTIAL, SC_LARGE, SC_SMALL_THREADS, SC_COUNT
};

#define SMALL_THREADS_MIN   4      /* threads of small-threads: at least this, or --threads */
#define SMALL_THREAD_SLOTS  1000   /* slots of each small-threads thread */

const bench_scenario_t bench_scenarios[BENCH_MAX_SCENARIOS] = {
    [SC_VM] = {"vm", "one 2 MiB block allocated, touched, freed, again and again (hot reuse: a VM image or tensor buffer)",
               "1 block", 50000, "first round: the first block; then rounds of 100 blocks", 1, 100},
    [SC_COLD_CHURN] = {"cold-churn",
                       "100 x 2 MiB allocated and touched, then all freed (a batch job's buffers, cold each time)",
                       "100 blocks", 10, "round = 1 iteration (100 blocks allocated, then freed)", 1, 1},
    [SC_MIXED] = {"mixed", "32 live slots of 64 KiB-8 MiB (log-uniform), a random slot replaced each step (IO/JSON buffers)",
                  "1 replacement", 4000, "first round: the 32 initial blocks; then rounds of 32 replacements", 0, 32},
    [SC_PHASED] = {"phased", "8 live 2 MiB blocks; each step grows the working set to 120 and shrinks it back to 8",
                   "112 blocks", 8, "first round: the 8 base blocks and the first phase; then 1 phase", 1, 1},
    [SC_REALLOC_GROW] = {"realloc-grow",
                         "a buffer doubled by realloc from 64 KiB to 32 MiB, then freed (growing arrays, readers)",
                         "10 calls", 40, "round = 1 iteration (one buffer grown to 32 MiB and freed)", 1, 1},
    [SC_THREADS] = {"threads", "T threads, each with 8 live 256 KiB-4 MiB blocks replaced at random (a server's workers)",
                    "1 replacement per thread", 5000,
                    "per thread: first round = its 8 initial blocks, then rounds of 8 replacements", 0, 8},
    [SC_MALLOC_LARGE] = {"malloc-large",
                         "20 live slots of 5-25 MiB (uniform), a random slot replaced each step (mimalloc-bench)",
                         "1 replacement", 150, "rounds of 20 replacements (the slots start empty)", 20, 20},
    [SC_SMALL] = {"small",
                  "1000 live small objects (80% 16-256 B, 15% <4 KiB, 5% <64 KiB), random replacement (pass-through)",
                  "1 replacement", 3000000, "first round: the 1000 initial objects; then rounds of 1000 replacements",
                  0, 1000},
    [SC_PARTIAL] = {"partial",
                    "32 live 4 MiB buffers, 16-512 KiB of each written (log-uniform), one replaced per step (read())",
                    "1 replacement", 100000, "first round: the 32 initial buffers; then rounds of 32 replacements", 0, 32},
    [SC_LARGE] = {"large", "20 live blocks of 5-25 MiB (uniform), every byte written, a random one replaced each step",
                  "1 replacement", 80, "first round: the 20 initial blocks; then rounds of 20 replacements", 0, 20},
    [SC_SMALL_THREADS] = {"small-threads",
                          "max(4, T) threads, each: free a random one of its 1000 slots, malloc 8-1024 B there (glibc)",
                          "1 step per thread", 2000000,
                          "per thread: first round = its first 1000 steps (the slots start empty), then 1000 steps",
                          1000, 1000},
};
const int bench_nscenarios = SC_COUNT;
_Static_assert(SC_COUNT <= BENCH_MAX_SCENARIOS, "bench_scenarios[] is too small");

int bench_scenario_find(const char *name) {
    for (int i = 0; i < bench_nscenarios; i++)
        if (strcmp(bench_scenarios[i].name, name) == 0) return i;
    return -1;
}

// ---------------------------------------------------------------------------
// PRNG, touching, checking
// ---------------------------------------------------------------------------
typedef uint64_t __attribute__((aligned(1), may_alias)) u64u_t;

/* The rounds of a threaded scenario on the wall clock: global round g ended
 * when the threads had ended (g + 1) * nt rounds between them. */
typedef struct rounds_wall {
    _Atomic uint64_t done;  /* thread rounds ended so far */
    uint64_t *ts;           /* ts[g]: CLOCK_MONOTONIC ns when global round g ended */
    int      cap, nt;
} rounds_wall_t;

/* The rounds of one thread: round i took ns[i] and made ops[i] allocation calls. */
typedef struct rounds {
    uint64_t *ns, *ops;
    int      cap, n;
    rounds_wall_t *wall;    /* threaded scenarios: the shared wall-clock rounds, else NULL */
    uint64_t begin;         /* when round_begin ran */
    long     first;         /* iterations in the first round (0: the scenario ends it, after its fill) */
    long     every;         /* iterations per round after the first */
    long     left;          /* iterations left in the current round (0: the scenario ends it) */
    uint64_t t0, ops0;      /* when the current round began, and ops then */
} rounds_t;

typedef struct wctx {
    uint64_t rng;
    uint64_t sum;       /* checksum of read-back words */
    uint64_t errors;    /* words that did not read back as written */
    uint64_t ops;
    uint64_t nops;      /* tag counter */
    int      full;      /* --touch full */
    int      failed;    /* an allocation returned NULL */
    size_t   failed_size;
    rounds_t *rd;       /* where this thread's rounds go; NULL = not recorded */
} wctx_t;

static uint64_t rnd(wctx_t *c) {   /* splitmix64 */
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rnd01(wctx_t *c) { return (double)(rnd(c) >> 11) * (1.0 / 9007199254740992.0); }
static size_t rnd_log(wctx_t *c, size_t lo, size_t hi) {   /* log-uniform in [lo, hi] */
    size_t n = (size_t)((double)lo * exp2(rnd01(c) * log2((double)hi / (double)lo)));
    return n < lo ? lo : n > hi ? hi : n;
}

static uint64_t next_tag(wctx_t *c) { return ++c->nops * 0x9e3779b97f4a7c15ull; }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Rounds (lengths from bench_scenarios[]): round_begin at the start of the
 * pattern, round_step after every iteration, and round_end after the initial
 * fill of a scenario whose first round is its fill.  A round still open at the
 * end is not recorded, so every later round did the same work. */
static void round_begin(wctx_t *c) {
    if (c->rd == NULL) return;
    c->rd->n = 0;
    c->rd->left = c->rd->first;
    c->rd->ops0 = c->ops;
    c->rd->t0 = c->rd->begin = now_ns();
}

static void round_end(wctx_t *c) {
    rounds_t *rd = c->rd;
    if (rd == NULL) return;
    uint64_t t = now_ns();
    if (rd->n < rd->cap) {
        rd->ns[rd->n] = t - rd->t0;
        rd->ops[rd->n] = c->ops - rd->ops0;
        rd->n++;
    }
    if (rd->wall) {
        rounds_wall_t *w = rd->wall;
        uint64_t k = atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed) + 1;
        if (k % (uint64_t)w->nt == 0 && k / (uint64_t)w->nt <= (uint64_t)w->cap) w->ts[k / (uint64_t)w->nt - 1] = t;
    }
    rd->t0 = t;
    rd->ops0 = c->ops;
    rd->left = rd->every;
}

static inline void round_step(wctx_t *c) {
    if (c->rd && c->rd->left > 0 && --c->rd->left == 0) round_end(c);
}

/* Write the page words of [from, to) of block p; full: every byte first. */
static void touch_range(unsigned char *p, size_t from, size_t to, uint64_t tag, int full) {
    if (full) memset(p + from, (int)(tag & 0xff), to - from);
    size_t off = (from + PAGE - 1) / PAGE * PAGE;
    for (; off + 8 <= to; off += PAGE) *(volatile u64u_t *)(p + off) = tag + off;
}

/* A fresh block whose first w bytes the program uses: every page of them
 * written, plus the last word of them. */
static void touch(unsigned char *p, size_t w, uint64_t tag, int full) {
    touch_range(p, 0, w, tag, full);
    *(volatile u64u_t *)(p + w - 8) = tag ^ w;
}

/* Check the first, middle and last words of the touched part [0, n) of a block (n >= 16). */
static void readback(wctx_t *c, const unsigned char *p, size_t n, uint64_t tag) {
    uint64_t v0 = *(volatile const u64u_t *)p;
    uint64_t vt = *(volatile const u64u_t *)(p + n - 8);
    c->errors += (v0 != tag) + (vt != (tag ^ n));
    c->sum += v0 + vt;
    size_t mid = n / 2 / PAGE * PAGE;
    if (mid > 0 && mid + 8 <= n - 8) {
        uint64_t vm = *(volatile const u64u_t *)(p + mid);
        c->errors += vm != tag + mid;
        c->sum += vm;
    }
}

/* Check every page word of [0, n) (realloc kept the contents). */
static void readback_pages(wctx_t *c, const unsigned char *p, size_t n, uint64_t tag) {
    for (size_t off = 0; off + 8 <= n; off += PAGE) {
        uint64_t v = *(volatile const u64u_t *)(p + off);
        c->errors += v != tag + off;
        c->sum += v;
    }
}

static unsigned char *balloc(wctx_t *c, size_t n) {
    unsigned char *p = malloc(n);
    c->ops++;
    if (p == NULL && !c->failed) {
        c->failed = 1;
        c->failed_size = n;
    }
    return p;
}

// ---------------------------------------------------------------------------
// The scenarios: each returns nonzero when it had to stop (allocation failed)
// ---------------------------------------------------------------------------
/* A live block: n bytes allocated, the first w of them touched. */
typedef struct blk { unsigned char *p; size_t n, w; uint64_t tag; } blk_t;

/* What the blocks of a slots scenario look like: size(c) bytes, of which the
 * program writes written(c) (NULL: all of them); full: every byte of them,
 * whatever --touch says. */
typedef struct blk_kind {
    size_t (*size)(wctx_t *);
    size_t (*written)(wctx_t *);
    int full;
} blk_kind_t;

static int new_block_w(wctx_t *c, blk_t *b, size_t n, size_t w, int full) {
    b->n = n;
    b->w = w;
    b->tag = next_tag(c);
    b->p = balloc(c, n);
    if (b->p == NULL) return -1;
    touch(b->p, w, b->tag, full);
    return 0;
}

static int new_block(wctx_t *c, blk_t *b, size_t n) { return new_block_w(c, b, n, n, c->full); }

static int new_block_of(wctx_t *c, blk_t *b, const blk_kind_t *k) {
    size_t n = k->size(c), w = k->written ? k->written(c) : n;
    return new_block_w(c, b, n, w < n ? w : n, k->full || c->full);
}

static void drop_block(wctx_t *c, blk_t *b) {
    if (b->p == NULL) return;
    readback(c, b->p, b->w, b->tag);
    free(b->p);
    b->p = NULL;
}

static int sc_vm(wctx_t *c, long iters) {
    round_begin(c);
    for (long i = 0; i < iters; i++) {
        blk_t b;
        if (new_block(c, &b, 2 * MiB)) return -1;
        drop_block(c, &b);
        round_step(c);
    }
    return 0;
}

static int sc_cold_churn(wctx_t *c, long iters) {
    blk_t b[100];
    round_begin(c);
    for (long i = 0; i < iters; i++) {
        for (int j = 0; j < 100; j++)
            if (new_block(c, &b[j], 2 * MiB)) return -1;
        for (int j = 0; j < 100; j++) drop_block(c, &b[j]);
        round_step(c);
    }
    return 0;
}

/* Fixed number of live slots, a random one replaced per iteration.  The
 * initial fill is the first round. */
static int slots_run(wctx_t *c, long iters, blk_t *s, int nslots, const blk_kind_t *kind) {
    int rc = 0;
    round_begin(c);
    for (int j = 0; j < nslots && rc == 0; j++) rc = new_block_of(c, &s[j], kind);
    round_end(c);
    for (long i = 0; i < iters && rc == 0; i++) {
        int k = (int)(rnd(c) % (uint64_t)nslots);
        drop_block(c, &s[k]);
        rc = new_block_of(c, &s[k], kind);
        round_step(c);
    }
    for (int j = 0; j < nslots; j++) drop_block(c, &s[j]);
    return rc;
}

static size_t size_mixed(wctx_t *c) { return rnd_log(c, 64 * KiB, 8 * MiB); }
static int sc_mixed(wctx_t *c, long iters) {
    static const blk_kind_t kind = {size_mixed, NULL, 0};
    blk_t s[32] = {{0}};
    return slots_run(c, iters, s, 32, &kind);
}

/* partial: a 4 MiB buffer of which a read() fills 16-512 KiB. */
static size_t size_partial(wctx_t *c) {
    (void)c;
    return 4 * MiB;
}
static size_t written_partial(wctx_t *c) { return rnd_log(c, 16 * KiB, 512 * KiB); }
static int sc_partial(wctx_t *c, long iters) {
    static const blk_kind_t kind = {size_partial, written_partial, 0};
    blk_t s[32] = {{0}};
    return slots_run(c, iters, s, 32, &kind);
}

static int sc_phased(wctx_t *c, long iters) {
    blk_t base[8] = {{0}}, ph[112] = {{0}};
    int order[112], rc = 0;
    round_begin(c);
    for (int j = 0; j < 8 && rc == 0; j++) rc = new_block(c, &base[j], 2 * MiB);
    for (long i = 0; i < iters && rc == 0; i++) {
        for (int j = 0; j < 112 && rc == 0; j++) rc = new_block(c, &ph[j], 2 * MiB);
        for (int j = 0; j < 112; j++) order[j] = j;
        for (int j = 111; j > 0; j--) {   /* the phase ends in some order */
            int k = (int)(rnd(c) % (uint64_t)(j + 1)), t = order[j];
            order[j] = order[k];
            order[k] = t;
        }
        for (int j = 0; j < 112; j++) drop_block(c, &ph[order[j]]);
        round_step(c);
    }
    for (int j = 0; j < 8; j++) drop_block(c, &base[j]);
    return rc;
}

static int sc_realloc_grow(wctx_t *c, long iters) {
    round_begin(c);
    for (long i = 0; i < iters; i++) {
        uint64_t tag = next_tag(c);
        size_t n = 64 * KiB;
        unsigned char *p = balloc(c, n);
        if (p == NULL) return -1;
        touch_range(p, 0, n, tag, c->full);
        while (n < 32 * MiB) {
            unsigned char *q = realloc(p, 2 * n);
            c->ops++;
            if (q == NULL) {
                c->failed = 1;
                c->failed_size = 2 * n;
                free(p);
                return -1;
            }
            p = q;
            readback_pages(c, p, n, tag);           /* realloc kept what was written */
            touch_range(p, n, 2 * n, tag, c->full);
            n *= 2;
        }
        readback_pages(c, p, n, tag);
        free(p);
        round_step(c);
    }
    return 0;
}

static size_t size_large(wctx_t *c) { return 5 * MiB + (size_t)(rnd(c) % (20 * MiB)); }
static int sc_malloc_large(wctx_t *c, long iters) {
    blk_t s[20] = {{0}};
    int rc = 0;
    round_begin(c);
    for (long i = 0; i < iters && rc == 0; i++) {   /* slots start empty */
        int k = (int)(rnd(c) % 20);
        drop_block(c, &s[k]);
        rc = new_block(c, &s[k], size_large(c));
        round_step(c);
    }
    for (int j = 0; j < 20; j++) drop_block(c, &s[j]);
    return rc;
}

/* large: malloc-large's sizes, but 20 live from the start and every byte written. */
static int sc_large(wctx_t *c, long iters) {
    static const blk_kind_t kind = {size_large, NULL, 1};
    blk_t s[20] = {{0}};
    return slots_run(c, iters, s, 20, &kind);
}

static size_t size_small(wctx_t *c) {
    unsigned r = (unsigned)(rnd(c) % 100);
    if (r < 80) return 16 + (size_t)(rnd(c) % 241);
    if (r < 95) return 256 + (size_t)(rnd(c) % (4096 - 256));
    return 4096 + (size_t)(rnd(c) % (64 * KiB - 4096));   /* < 64 KiB: hakmem passes it to glibc */
}
static int sc_small(wctx_t *c, long iters) {
    static const blk_kind_t kind = {size_small, NULL, 0};
    blk_t *s = calloc(1000, sizeof *s);
    if (s == NULL) return -1;
    int rc = slots_run(c, iters, s, 1000, &kind);
    free(s);
    return rc;
}

static size_t size_thread(wctx_t *c) { return rnd_log(c, 256 * KiB, 4 * MiB); }

/* threads: one worker thread's 8 slots of large blocks. */
static int thread_large(wctx_t *c, long iters) {
    static const blk_kind_t kind = {size_thread, NULL, 0};
    blk_t s[8] = {{0}};
    return slots_run(c, iters, s, 8, &kind);
}

/* small-threads: one thread's slots, like glibc's bench-malloc-thread: they
 * start empty; each step frees a random slot (reading back the byte written
 * there) and puts a new 8-1024 B block in it, of which one byte is written. */
static int thread_small(wctx_t *c, long iters) {
    unsigned char *s[SMALL_THREAD_SLOTS] = {0};
    unsigned char b[SMALL_THREAD_SLOTS];
    int rc = 0;
    round_begin(c);
    for (long i = 0; i < iters; i++) {
        int k = (int)(rnd(c) % SMALL_THREAD_SLOTS);
        if (s[k]) {
            unsigned char v = *(volatile unsigned char *)s[k];
            c->errors += v != b[k];
            c->sum += v;
            free(s[k]);
        }
        s[k] = balloc(c, 8 + (size_t)(rnd(c) % 1017));
        if (s[k] == NULL) {
            rc = -1;
            break;
        }
        b[k] = (unsigned char)(next_tag(c) >> 56);
        *(volatile unsigned char *)s[k] = b[k];
        round_step(c);
    }
    for (int k = 0; k < SMALL_THREAD_SLOTS; k++)
        if (s[k]) {
            c->sum += *(volatile unsigned char *)s[k];
            free(s[k]);
        }
    return rc;
}

typedef struct tharg {
    pthread_t th;
    pthread_barrier_t *bar;
    int (*body)(wctx_t *, long);
    wctx_t c;
    long iters;
    int rc;
} tharg_t;

static void *thread_main(void *arg) {
    tharg_t *t = arg;
    pthread_barrier_wait(t->bar);
    t->rc = t->body(&t->c, t->iters);
    return NULL;
}

/* T threads running body; the caller's clock runs from the barrier to the
 * last join.  Thread i records its rounds in rd[i] (rd may be NULL). */
static int sc_threads(wctx_t *c, long iters, int nthreads, int (*body)(wctx_t *, long), rounds_t *rd,
                      uint64_t *ns) {
    tharg_t *t = calloc((size_t)nthreads, sizeof *t);
    pthread_barrier_t bar;
    if (t == NULL || pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1) != 0) {
        free(t);
        return -1;
    }
    int created = 0, rc = 0;
    for (int i = 0; i < nthreads; i++) {
        t[i].bar = &bar;
        t[i].body = body;
        t[i].iters = iters;
        t[i].c = *c;
        t[i].c.rng = c->rng + 0x1000193ull * (uint64_t)(i + 1);
        t[i].c.nops = (uint64_t)(i + 1) << 40;      /* distinct tags per thread */
        t[i].c.rd = rd ? &rd[i] : NULL;
        if (pthread_create(&t[i].th, NULL, thread_main, &t[i]) != 0) break;
        created++;
    }
    if (created < nthreads) {
        fprintf(stderr, "bench: pthread_create failed after %d threads\n", created);
        /* release the barrier with the missing parties never arriving: abort */
        _exit(1);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_barrier_wait(&bar);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i].th, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    *ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
    for (int i = 0; i < nthreads; i++) {
        c->sum += t[i].c.sum;
        c->errors += t[i].c.errors;
        c->ops += t[i].c.ops;
        if (t[i].c.failed && !c->failed) {
            c->failed = 1;
            c->failed_size = t[i].c.failed_size;
        }
        if (t[i].rc) rc = t[i].rc;
    }
    pthread_barrier_destroy(&bar);
    free(t);
    return rc;
}

// ---------------------------------------------------------------------------
// The worker: which allocator is really there, RSS, faults, hakmem counters
// ---------------------------------------------------------------------------

/* The object that `malloc` resolves to must be the allocator asked for. */
static int check_allocator(const char *name, char *got, size_t len) {
    static const struct { const char *alloc, *lib; } want[] = {
        {"hakmem", "libhakmem"}, {"hakmem-evolving", "libhakmem"}, {"system", "libc.so"},
        {"jemalloc", "libjemalloc"}, {"mimalloc", "libmimalloc"}, {"tcmalloc", "libtcmalloc"},
    };
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    const char *path = sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : "?";
    snprintf(got, len, "%s", path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strcmp(want[i].alloc, name) == 0) return strncmp(base, want[i].lib, strlen(want[i].lib)) == 0;
    return 0;
}

/* "VmRSS:" or "VmHWM:" of this process, KiB; 0 if unreadable. */
static uint64_t status_kib(const char *key) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strstr(buf, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void reset_peak_rss(void) {   /* "5" resets VmHWM to VmRSS (Linux >= 4.0) */
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "5", 1) != 1) { /* older kernel: peak includes start-up, which is small */ }
        close(fd);
    }
}

/* hakmem's counters: the telemetry segment, else hak_stats_get_sized().  Either way
 * they land in a hak_stats_t, whose fields are generated from HAK_COUNTERS /
 * HAK_GAUGES (include/hakmem.h), so a counter added there is here too. */
typedef struct hakc {
    int ok;
    uint64_t mode, ring_cap, batch_threshold, decisions;
    hak_stats_t st;
} hakc_t;

static void hak_read(hakc_t *h) {
    memset(h, 0, sizeof *h);
    hak_shm_handle_t sh;
    if (hak_shm_open_pid((int)getpid(), &sh) == 0) {
        hak_snapshot_t *s = malloc(sizeof *s);
        int rc = s ? hak_shm_snapshot(sh.shm, s) : -1;
        if (rc == 0) {
            h->ok = 1;
            h->mode = s->mode;
#define X_C(name, help) h->st.name = s->counter[HAK_C_##name];
#define X_G(name, help) h->st.name = s->gauge[HAK_G_##name] > 0 ? (uint64_t)s->gauge[HAK_G_##name] : 0;
            HAK_COUNTERS(X_C)
            HAK_GAUGES(X_G)
#undef X_C
#undef X_G
            h->st.evictions = h->st.evict_ring_full + h->st.evict_cap_lowered + h->st.evict_budget +
                              h->st.evict_idle_trim + h->st.evict_uncacheable;
            h->st.peak_bytes_mapped = s->peak_bytes_mapped;
            h->ring_cap = s->knobs.ring_cap;
            h->batch_threshold = s->knobs.batch_threshold;
            h->decisions = s->decision_head;
        }
        free(s);
        hak_shm_close(&sh);
        if (h->ok) return;
    }
    /* the ABI-checked form: the preloaded library may be another build */
    int (*get)(hak_stats_t *, size_t) = (int (*)(hak_stats_t *, size_t))dlsym(RTLD_DEFAULT, "hak_stats_get_sized");
    uint64_t (*knob)(int) = (uint64_t (*)(int))dlsym(RTLD_DEFAULT, "hak_knob_get");
    if (get == NULL || get(&h->st, sizeof h->st) != 0) return;
    const char *m = getenv("HAKMEM_MODE");
    h->ok = 1;
    h->mode = m && strcmp(m, "evolving") == 0 ? HAK_MODE_EVOLVING : m && strcmp(m, "off") == 0 ? HAK_MODE_OFF
                                                                                               : HAK_MODE_FIXED;
    if (knob) {
        h->ring_cap = knob(HAKMEM_KNOB_RING_CAP);
        h->batch_threshold = knob(HAKMEM_KNOB_BATCH_THRESHOLD);
    }
}

// ---------------------------------------------------------------------------
// Rounds of the worker: storage, and first round / steady state
// ---------------------------------------------------------------------------
#define ROUND_CAP (1 << 14)   /* rounds kept per scenario, over all its threads */
static uint64_t round_ns[ROUND_CAP], round_ops[ROUND_CAP], round_wall_ts[ROUND_CAP];
static rounds_t round_set[256];   /* one per thread (--threads is at most 256) */
static rounds_wall_t round_wall;
static double round_tmp[ROUND_CAP];

/* Give each of nt threads its share of the storage, with rounds of the
 * scenario's length, made longer if that many would not fit; the storage is
 * written once here so that its page faults are not the scenario's. */
static rounds_t *rounds_setup(const bench_scenario_t *sc, long iters, int nt) {
    int cap = ROUND_CAP / nt;
    long every = sc->round_iters > 0 ? sc->round_iters : 1;
    long later = iters - sc->first_iters;
    if (cap < 2) return NULL;
    if (later > 0 && later / every > cap - 1) every *= later / every / (cap - 1) + 1;
    size_t need = (size_t)(1 + (later > 0 ? later / every : 0));
    if (need > (size_t)cap) need = (size_t)cap;
    atomic_store(&round_wall.done, 0);
    round_wall.ts = round_wall_ts;
    round_wall.cap = cap;
    round_wall.nt = nt;
    for (int i = 0; i < nt; i++) {
        rounds_t *rd = &round_set[i];
        memset(rd, 0, sizeof *rd);
        rd->ns = round_ns + (size_t)i * (size_t)cap;
        rd->ops = round_ops + (size_t)i * (size_t)cap;
        rd->cap = cap;
        rd->first = sc->first_iters;
        rd->every = every;
        rd->wall = nt > 1 ? &round_wall : NULL;
        memset(rd->ns, 0, sizeof(uint64_t) * need);
        memset(rd->ops, 0, sizeof(uint64_t) * need);
    }
    memset(round_wall_ts, 0, sizeof(uint64_t) * need);
    memset(round_tmp, 0, sizeof(double) * need);
    return round_set;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The first round, and the median time per op of the rounds after it, into
 * s.  One thread: its rounds.  nt threads: the wall-clock rounds (global
 * round g = the g-th nt thread rounds to end, of nt times one thread round's
 * ops), so that a round's ns/op is wall time / every thread's ops, like the
 * scenario's ns/op. */
static void rounds_summary(const rounds_t *rd, int nt, bench_sample_t *s) {
    int n = rd[0].n;
    for (int i = 1; i < nt; i++)
        if (rd[i].n < n) n = rd[i].n;
    if (n <= 0) return;
    uint64_t first_ops = 0, later_ops = 0;
    for (int i = 0; i < nt; i++) {
        first_ops += rd[i].ops[0];
        later_ops += n > 1 ? rd[i].ops[1] : 0;
    }
    s->first_ops = first_ops;
    int m = 0;   /* later rounds in round_tmp */
    if (nt == 1) {
        s->first_ns = rd[0].ns[0];
        for (int j = 1; j < n; j++) round_tmp[m++] = rd[0].ops[j] ? (double)rd[0].ns[j] / (double)rd[0].ops[j] : 0;
    } else {
        const rounds_wall_t *w = rd[0].wall;
        uint64_t begin = rd[0].begin, done = atomic_load(&w->done) / (uint64_t)nt;
        for (int i = 1; i < nt; i++)
            if (rd[i].begin < begin) begin = rd[i].begin;
        int g = done < (uint64_t)w->cap ? (int)done : w->cap;
        if (g <= 0) return;
        /* two threads can stamp their rounds' ends out of order: keep the stamps monotonic */
        uint64_t prev = w->ts[0] > begin ? w->ts[0] : begin;
        s->first_ns = prev - begin;
        for (int j = 1; j < g && later_ops; j++) {
            uint64_t t = w->ts[j] > prev ? w->ts[j] : prev;
            round_tmp[m++] = (double)(t - prev) / (double)later_ops;
            prev = t;
        }
    }
    s->rounds = (uint64_t)m;
    if (m == 0) return;
    qsort(round_tmp, (size_t)m, sizeof round_tmp[0], cmp_double);
    double med = m % 2 ? round_tmp[m / 2] : (round_tmp[m / 2 - 1] + round_tmp[m / 2]) / 2;
    s->steady_ps_op = (uint64_t)llround(med * 1000.0);
}

int bench_worker_main(const bench_worker_args_t *a) {
    const bench_scenario_t *sc = &bench_scenarios[a->scenario];
    char got[512];
    if (!check_allocator(a->allocator, got, sizeof got)) {
        fprintf(stderr, "bench worker: allocator %s is not in effect: malloc comes from %s (LD_PRELOAD=%s)\n",
                a->allocator, got, getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
        return 1;
    }
    int is_hak = strncmp(a->allocator, "hakmem", 6) == 0;
    wctx_t c;
    memset(&c, 0, sizeof c);
    c.rng = a->seed * 0x2545f4914f6cdd1dull + (uint64_t)a->scenario;
    c.full = a->touch_full;
    int nt = a->scenario == SC_THREADS         ? a->threads
             : a->scenario == SC_SMALL_THREADS ? (a->threads > SMALL_THREADS_MIN ? a->threads : SMALL_THREADS_MIN)
                                               : 1;
    rounds_t *rd = rounds_setup(sc, a->iterations, nt);
    c.rd = rd;
    bench_sample_t s;
    memset(&s, 0, sizeof s);
    s.threads = nt > 1 || a->scenario == SC_THREADS ? (uint64_t)nt : 0;
    hakc_t h0, h1, h2;
    memset(&h0, 0, sizeof h0);
    if (is_hak) hak_read(&h0);

    struct rusage r0, r1;
    reset_peak_rss();
    s.start_kib = status_kib("VmRSS:");
    getrusage(RUSAGE_SELF, &r0);
    uint64_t t0 = now_ns(), tns = 0;
    int rc = 0;
    if (a->iterations > 0) {
        switch (a->scenario) {
        case SC_VM: rc = sc_vm(&c, a->iterations); break;
        case SC_COLD_CHURN: rc = sc_cold_churn(&c, a->iterations); break;
        case SC_MIXED: rc = sc_mixed(&c, a->iterations); break;
        case SC_PHASED: rc = sc_phased(&c, a->iterations); break;
        case SC_REALLOC_GROW: rc = sc_realloc_grow(&c, a->iterations); break;
        case SC_THREADS: rc = sc_threads(&c, a->iterations, nt, thread_large, rd, &tns); break;
        case SC_MALLOC_LARGE: rc = sc_malloc_large(&c, a->iterations); break;
        case SC_SMALL: rc = sc_small(&c, a->iterations); break;
        case SC_PARTIAL: rc = sc_partial(&c, a->iterations); break;
        case SC_LARGE: rc = sc_large(&c, a->iterations); break;
        case SC_SMALL_THREADS: rc = sc_threads(&c, a->iterations, nt, thread_small, rd, &tns); break;
        default: rc = -1; break;
        }
    }
    uint64_t t1 = now_ns();
    getrusage(RUSAGE_SELF, &r1);
    s.peak_kib = status_kib("VmHWM:");
    s.end_kib = status_kib("VmRSS:");
    if (is_hak) hak_read(&h1);
    if (c.failed) {
        fprintf(stderr, "bench worker: %s/%s: allocation of %zu bytes failed: %s\n", a->allocator, sc->name,
                c.failed_size, strerror(ENOMEM));
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "bench worker: %s/%s: scenario could not run\n", a->allocator, sc->name);
        return 1;
    }
    if (c.errors != 0) {
        fprintf(stderr, "bench worker: %s/%s: %" PRIu64 " words read back wrong: memory was corrupted\n",
                a->allocator, sc->name, c.errors);
        return 1;
    }
    if (a->idle_ms > 0) {
        struct timespec ts = {a->idle_ms / 1000, (a->idle_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        s.idle_kib = status_kib("VmRSS:");
    }
    s.ops = c.ops;
    s.ns = (a->scenario == SC_THREADS || a->scenario == SC_SMALL_THREADS) && a->iterations > 0 ? tns : t1 - t0;
    if (rd && a->iterations > 0) rounds_summary(rd, nt, &s);
    s.minflt = (uint64_t)(r1.ru_minflt - r0.ru_minflt);
    s.majflt = (uint64_t)(r1.ru_majflt - r0.ru_majflt);
    s.checksum = c.sum;
    if (is_hak && h0.ok && h1.ok) {
        hak_read(&h2);
        s.has_hak = 1;
        s.hak_mode = h1.mode;
        s.hak_hits = h1.st.cache_hits - h0.st.cache_hits;
        s.hak_misses = h1.st.cache_misses - h0.st.cache_misses;
        s.hak_puts = h1.st.cache_puts - h0.st.cache_puts;
        s.hak_evictions = h1.st.evictions - h0.st.evictions;
        s.hak_flushes = h1.st.batch_flushes - h0.st.batch_flushes;
        s.hak_mmap = h1.st.mmap_calls - h0.st.mmap_calls;
        s.hak_munmap = h1.st.munmap_calls - h0.st.munmap_calls;
        s.hak_madvise = h1.st.madvise_calls - h0.st.madvise_calls;
        s.hak_mremap = h1.st.mremap_calls - h0.st.mremap_calls;
        s.hak_blocks_flushed = h1.st.batch_blocks_flushed - h0.st.batch_blocks_flushed;
        s.hak_decisions_run = h1.decisions - h0.decisions;
        s.hak_idle_munmap = h2.ok ? h2.st.munmap_calls - h1.st.munmap_calls : 0;
        s.hak_idle_flushes = h2.ok ? h2.st.batch_flushes - h1.st.batch_flushes : 0;
        s.hak_idle_blocks = h2.ok ? h2.st.batch_blocks_flushed - h1.st.batch_blocks_flushed : 0;
        s.hak_ring_cap = h2.ok ? h2.ring_cap : h1.ring_cap;
        s.hak_batch_threshold = h2.ok ? h2.batch_threshold : h1.batch_threshold;
        s.hak_decisions = h2.ok ? h2.decisions : h1.decisions;
    }
    printf("RESULT ops=%" PRIu64 " ns=%" PRIu64 " minflt=%" PRIu64 " majflt=%" PRIu64 " peak_kib=%" PRIu64
           " start_kib=%" PRIu64 " end_kib=%" PRIu64 " idle_kib=%" PRIu64 " checksum=%" PRIu64 " threads=%" PRIu64
           " first_ns=%" PRIu64 " first_ops=%" PRIu64 " steady_ps_op=%" PRIu64 " rounds=%" PRIu64 " has_hak=%d",
           s.ops, s.ns, s.minflt, s.majflt, s.peak_kib, s.start_kib, s.end_kib, s.idle_kib, s.checksum, s.threads,
           s.first_ns, s.first_ops, s.steady_ps_op, s.rounds, s.has_hak);
    if (s.has_hak)
        printf(" hak_mode=%" PRIu64 " hak_hits=%" PRIu64 " hak_misses=%" PRIu64 " hak_puts=%" PRIu64
               " hak_evictions=%" PRIu64 " hak_flushes=%" PRIu64 " hak_mmap=%" PRIu64 " hak_munmap=%" PRIu64
               " hak_madvise=%" PRIu64 " hak_mremap=%" PRIu64 " hak_idle_munmap=%" PRIu64 " hak_ring_cap=%" PRIu64
               " hak_batch_threshold=%" PRIu64 " hak_decisions=%" PRIu64 " hak_blocks_flushed=%" PRIu64
               " hak_decisions_run=%" PRIu64 " hak_idle_flushes=%" PRIu64 " hak_idle_blocks=%" PRIu64,
               s.hak_mode, s.hak_hits, s.hak_misses, s.hak_puts, s.hak_evictions, s.hak_flushes, s.hak_mmap,
               s.hak_munmap, s.hak_madvise, s.hak_mremap, s.hak_idle_munmap, s.hak_ring_cap, s.hak_batch_threshold,
               s.hak_decisions, s.hak_blocks_flushed, s.hak_decisions_run, s.hak_idle_flushes, s.hak_idle_blocks);
    printf("\n");
    fflush(stdout);
    return 0;
}
