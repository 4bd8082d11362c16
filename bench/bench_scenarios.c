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
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
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

const bench_scenario_t bench_scenarios[BENCH_MAX_SCENARIOS] = {
    {"vm", "one 2 MiB block allocated, touched, freed, again and again (hot reuse: a VM image or tensor buffer)",
     "1 block", 50000},
    {"cold-churn", "100 x 2 MiB allocated and touched, then all freed (the seed's cold case: a batch job's buffers)",
     "100 blocks", 10},
    {"mixed", "32 live slots of 64 KiB-8 MiB (log-uniform), a random slot replaced each step (IO/JSON buffers)",
     "1 replacement", 4000},
    {"phased", "8 live 2 MiB blocks; each step grows the working set to 120 and shrinks it back to 8",
     "112 blocks", 8},
    {"realloc-grow", "a buffer doubled by realloc from 64 KiB to 32 MiB, then freed (growing arrays, readers)",
     "10 calls", 40},
    {"threads", "T threads, each with 8 live 256 KiB-4 MiB blocks replaced at random (a server's workers)",
     "1 replacement per thread", 5000},
    {"malloc-large", "20 live slots of 5-25 MiB (uniform), a random slot replaced each step (mimalloc-bench)",
     "1 replacement", 150},
    {"small", "1000 live small objects (80% 16-256 B, 15% <4 KiB, 5% <64 KiB), random replacement (pass-through)",
     "1 replacement", 3000000},
};
const int bench_nscenarios = 8;

int bench_scenario_find(const char *name) {
    for (int i = 0; i < bench_nscenarios; i++)
        if (strcmp(bench_scenarios[i].name, name) == 0) return i;
    return -1;
}

// ---------------------------------------------------------------------------
// PRNG, touching, checking
// ---------------------------------------------------------------------------
typedef uint64_t __attribute__((aligned(1), may_alias)) u64u_t;

typedef struct wctx {
    uint64_t rng;
    uint64_t sum;       /* checksum of read-back words */
    uint64_t errors;    /* words that did not read back as written */
    uint64_t ops;
    uint64_t nops;      /* tag counter */
    int      full;      /* --touch full */
    int      failed;    /* an allocation returned NULL */
    size_t   failed_size;
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

/* Write the page words of [from, to) of block p. */
static void touch_range(wctx_t *c, unsigned char *p, size_t from, size_t to, uint64_t tag) {
    if (c->full) memset(p + from, (int)(tag & 0xff), to - from);
    size_t off = (from + PAGE - 1) / PAGE * PAGE;
    for (; off + 8 <= to; off += PAGE) *(volatile u64u_t *)(p + off) = tag + off;
}

/* A fresh block of n bytes: every page written, plus its last word. */
static void touch(wctx_t *c, unsigned char *p, size_t n, uint64_t tag) {
    touch_range(c, p, 0, n, tag);
    *(volatile u64u_t *)(p + n - 8) = tag ^ n;
}

/* Check the first, middle and last words of a touched block (n >= 16). */
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
typedef struct blk { unsigned char *p; size_t n; uint64_t tag; } blk_t;

static int new_block(wctx_t *c, blk_t *b, size_t n) {
    b->n = n;
    b->tag = next_tag(c);
    b->p = balloc(c, n);
    if (b->p == NULL) return -1;
    touch(c, b->p, n, b->tag);
    return 0;
}

static void drop_block(wctx_t *c, blk_t *b) {
    if (b->p == NULL) return;
    readback(c, b->p, b->n, b->tag);
    free(b->p);
    b->p = NULL;
}

static int sc_vm(wctx_t *c, long iters) {
    for (long i = 0; i < iters; i++) {
        blk_t b;
        if (new_block(c, &b, 2 * MiB)) return -1;
        drop_block(c, &b);
    }
    return 0;
}

static int sc_cold_churn(wctx_t *c, long iters) {
    blk_t b[100];
    for (long i = 0; i < iters; i++) {
        for (int j = 0; j < 100; j++)
            if (new_block(c, &b[j], 2 * MiB)) return -1;
        for (int j = 0; j < 100; j++) drop_block(c, &b[j]);
    }
    return 0;
}

/* Fixed number of live slots, a random one replaced per iteration. */
static int slots_run(wctx_t *c, long iters, blk_t *s, int nslots, size_t (*size)(wctx_t *)) {
    int rc = 0;
    for (int j = 0; j < nslots && rc == 0; j++) rc = new_block(c, &s[j], size(c));
    for (long i = 0; i < iters && rc == 0; i++) {
        int k = (int)(rnd(c) % (uint64_t)nslots);
        drop_block(c, &s[k]);
        rc = new_block(c, &s[k], size(c));
    }
    for (int j = 0; j < nslots; j++) drop_block(c, &s[j]);
    return rc;
}

static size_t size_mixed(wctx_t *c) { return rnd_log(c, 64 * KiB, 8 * MiB); }
static int sc_mixed(wctx_t *c, long iters) {
    blk_t s[32] = {{0}};
    return slots_run(c, iters, s, 32, size_mixed);
}

static int sc_phased(wctx_t *c, long iters) {
    blk_t base[8] = {{0}}, ph[112] = {{0}};
    int order[112], rc = 0;
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
    }
    for (int j = 0; j < 8; j++) drop_block(c, &base[j]);
    return rc;
}

static int sc_realloc_grow(wctx_t *c, long iters) {
    for (long i = 0; i < iters; i++) {
        uint64_t tag = next_tag(c);
        size_t n = 64 * KiB;
        unsigned char *p = balloc(c, n);
        if (p == NULL) return -1;
        touch_range(c, p, 0, n, tag);
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
            touch_range(c, p, n, 2 * n, tag);
            n *= 2;
        }
        readback_pages(c, p, n, tag);
        free(p);
    }
    return 0;
}

static size_t size_large(wctx_t *c) { return 5 * MiB + (size_t)(rnd(c) % (20 * MiB)); }
static int sc_malloc_large(wctx_t *c, long iters) {
    blk_t s[20] = {{0}};
    int rc = 0;
    for (long i = 0; i < iters && rc == 0; i++) {   /* slots start empty */
        int k = (int)(rnd(c) % 20);
        drop_block(c, &s[k]);
        rc = new_block(c, &s[k], size_large(c));
    }
    for (int j = 0; j < 20; j++) drop_block(c, &s[j]);
    return rc;
}

static size_t size_small(wctx_t *c) {
    unsigned r = (unsigned)(rnd(c) % 100);
    if (r < 80) return 16 + (size_t)(rnd(c) % 241);
    if (r < 95) return 256 + (size_t)(rnd(c) % (4096 - 256));
    return 4096 + (size_t)(rnd(c) % (64 * KiB - 4096));   /* < 64 KiB: hakmem passes it to glibc */
}
static int sc_small(wctx_t *c, long iters) {
    blk_t *s = calloc(1000, sizeof *s);
    if (s == NULL) return -1;
    int rc = slots_run(c, iters, s, 1000, size_small);
    free(s);
    return rc;
}

static size_t size_thread(wctx_t *c) { return rnd_log(c, 256 * KiB, 4 * MiB); }

typedef struct tharg {
    pthread_t th;
    pthread_barrier_t *bar;
    wctx_t c;
    long iters;
    int rc;
} tharg_t;

static void *thread_main(void *arg) {
    tharg_t *t = arg;
    blk_t s[8] = {{0}};
    pthread_barrier_wait(t->bar);
    t->rc = slots_run(&t->c, t->iters, s, 8, size_thread);
    return NULL;
}

/* T threads; the caller's clock runs from the barrier to the last join. */
static int sc_threads(wctx_t *c, long iters, int nthreads, uint64_t *ns) {
    tharg_t *t = calloc((size_t)nthreads, sizeof *t);
    pthread_barrier_t bar;
    if (t == NULL || pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1) != 0) {
        free(t);
        return -1;
    }
    int created = 0, rc = 0;
    for (int i = 0; i < nthreads; i++) {
        t[i].bar = &bar;
        t[i].iters = iters;
        t[i].c = *c;
        t[i].c.rng = c->rng + 0x1000193ull * (uint64_t)(i + 1);
        t[i].c.nops = (uint64_t)(i + 1) << 40;      /* distinct tags per thread */
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

/* hakmem's counters: the telemetry segment, else hak_stats_get(). */
typedef struct hakc {
    int ok;
    uint64_t mode, hits, misses, puts, evictions, flushes, mmap, munmap, madvise, mremap;
    uint64_t ring_cap, batch_threshold, decisions;
} hakc_t;

static void hak_read(hakc_t *h) {
    memset(h, 0, sizeof *h);
    hak_shm_handle_t sh;
    if (hak_shm_open_pid((int)getpid(), &sh) == 0) {
        hak_snapshot_t *s = malloc(sizeof *s);
        int rc = s ? hak_shm_snapshot(sh.shm, s) : -1;
        if (rc == 0) {
            const uint64_t *c = s->counter;
            h->ok = 1;
            h->mode = s->mode;
            h->hits = c[HAK_C_cache_hits];
            h->misses = c[HAK_C_cache_misses];
            h->puts = c[HAK_C_cache_puts];
            h->evictions = c[HAK_C_batch_adds];
            h->flushes = c[HAK_C_batch_flushes];
            h->mmap = c[HAK_C_mmap_calls];
            h->munmap = c[HAK_C_munmap_calls];
            h->madvise = c[HAK_C_madvise_calls];
            h->mremap = c[HAK_C_mremap_calls];
            h->ring_cap = s->knobs.ring_cap;
            h->batch_threshold = s->knobs.batch_threshold;
            h->decisions = s->decision_head;
        }
        free(s);
        hak_shm_close(&sh);
        if (h->ok) return;
    }
    void (*get)(hak_stats_t *) = (void (*)(hak_stats_t *))dlsym(RTLD_DEFAULT, "hak_stats_get");
    uint64_t (*knob)(int) = (uint64_t (*)(int))dlsym(RTLD_DEFAULT, "hak_knob_get");
    if (get == NULL) return;
    hak_stats_t st;
    get(&st);
    const char *m = getenv("HAKMEM_MODE");
    h->ok = 1;
    h->mode = m && strcmp(m, "evolving") == 0 ? HAK_MODE_EVOLVING : m && strcmp(m, "off") == 0 ? HAK_MODE_OFF
                                                                                               : HAK_MODE_FIXED;
    h->hits = st.cache_hits;
    h->misses = st.cache_misses;
    h->puts = st.cache_puts;
    h->evictions = st.evictions;
    h->flushes = st.batch_flushes;
    h->mmap = st.mmap_calls;
    h->munmap = st.munmap_calls;
    h->madvise = st.madvise_calls;
    h->mremap = st.mremap_calls;
    if (knob) {
        h->ring_cap = knob(HAKMEM_KNOB_RING_CAP);
        h->batch_threshold = knob(HAKMEM_KNOB_BATCH_THRESHOLD);
    }
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
    bench_sample_t s;
    memset(&s, 0, sizeof s);
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
        case 0: rc = sc_vm(&c, a->iterations); break;
        case 1: rc = sc_cold_churn(&c, a->iterations); break;
        case 2: rc = sc_mixed(&c, a->iterations); break;
        case 3: rc = sc_phased(&c, a->iterations); break;
        case 4: rc = sc_realloc_grow(&c, a->iterations); break;
        case 5: rc = sc_threads(&c, a->iterations, a->threads, &tns); break;
        case 6: rc = sc_malloc_large(&c, a->iterations); break;
        case 7: rc = sc_small(&c, a->iterations); break;
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
    s.ns = a->scenario == 5 && a->iterations > 0 ? tns : t1 - t0;
    s.minflt = (uint64_t)(r1.ru_minflt - r0.ru_minflt);
    s.majflt = (uint64_t)(r1.ru_majflt - r0.ru_majflt);
    s.checksum = c.sum;
    if (is_hak && h0.ok && h1.ok) {
        hak_read(&h2);
        s.has_hak = 1;
        s.hak_mode = h1.mode;
        s.hak_hits = h1.hits - h0.hits;
        s.hak_misses = h1.misses - h0.misses;
        s.hak_puts = h1.puts - h0.puts;
        s.hak_evictions = h1.evictions - h0.evictions;
        s.hak_flushes = h1.flushes - h0.flushes;
        s.hak_mmap = h1.mmap - h0.mmap;
        s.hak_munmap = h1.munmap - h0.munmap;
        s.hak_madvise = h1.madvise - h0.madvise;
        s.hak_mremap = h1.mremap - h0.mremap;
        s.hak_idle_munmap = h2.ok ? h2.munmap - h1.munmap : 0;
        s.hak_ring_cap = h2.ok ? h2.ring_cap : h1.ring_cap;
        s.hak_batch_threshold = h2.ok ? h2.batch_threshold : h1.batch_threshold;
        s.hak_decisions = h2.ok ? h2.decisions : h1.decisions;
    }
    printf("RESULT ops=%" PRIu64 " ns=%" PRIu64 " minflt=%" PRIu64 " majflt=%" PRIu64 " peak_kib=%" PRIu64
           " start_kib=%" PRIu64 " end_kib=%" PRIu64 " idle_kib=%" PRIu64 " checksum=%" PRIu64 " has_hak=%d",
           s.ops, s.ns, s.minflt, s.majflt, s.peak_kib, s.start_kib, s.end_kib, s.idle_kib, s.checksum, s.has_hak);
    if (s.has_hak)
        printf(" hak_mode=%" PRIu64 " hak_hits=%" PRIu64 " hak_misses=%" PRIu64 " hak_puts=%" PRIu64
               " hak_evictions=%" PRIu64 " hak_flushes=%" PRIu64 " hak_mmap=%" PRIu64 " hak_munmap=%" PRIu64
               " hak_madvise=%" PRIu64 " hak_mremap=%" PRIu64 " hak_idle_munmap=%" PRIu64 " hak_ring_cap=%" PRIu64
               " hak_batch_threshold=%" PRIu64 " hak_decisions=%" PRIu64,
               s.hak_mode, s.hak_hits, s.hak_misses, s.hak_puts, s.hak_evictions, s.hak_flushes, s.hak_mmap,
               s.hak_munmap, s.hak_madvise, s.hak_mremap, s.hak_idle_munmap, s.hak_ring_cap, s.hak_batch_threshold,
               s.hak_decisions);
    printf("\n");
    fflush(stdout);
    return 0;
}
