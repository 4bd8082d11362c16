/*
 * churn - a large-block workload for the telemetry tests (run it with
 * LD_PRELOAD=$HAKMEM_LIB; it only uses malloc/free).
 *
 * Each thread, each round: malloc BLOCKS blocks of SIZE bytes (or sizes
 * spread around SIZE with --vary), write a pattern into every KiB of each,
 * check every pattern, free them all.  A mismatch means corruption: exit 1.
 *
 * The rounds are split into PHASES.  With --pause, churn stops after each
 * phase (the last one included, before exiting) and waits for SIGUSR1, so a
 * test can read its segment mid-run and after; it announces each pause on
 * stdout as "paused <phase> pid <pid>" (and in --ready FILE).  With
 * --poke-ms N, while paused it frees and re-mallocs one held block every N ms:
 * the cache is left as it was, but pending control requests get applied,
 * as in a program that is almost idle.
 *
 * --stats prints its own counters at the end, read through the reader API.
 *
 * Exit: 0 ok, 1 corruption, 2 usage, 3 allocation failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"

typedef struct config {
    long blocks, rounds, threads, phases, sleep_ms, poke_ms;
    uint64_t size;
    bool vary, pause, stats, quiet;
    const char *ready;
} config_t;

static config_t cfg = {.blocks = 32, .rounds = 20, .threads = 1, .phases = 1, .size = 256 << 10};

typedef struct worker {
    pthread_t tid;
    int id;
    long round0, round1;       /* rounds [round0, round1) of this phase */
    int status;                /* 0 ok, 1 corruption, 3 ENOMEM */
    uint64_t allocs;
    void **blk;
    size_t *len;
} worker_t;

static uint64_t pattern(int thread, long round, long i, size_t off) {
    uint64_t x = ((uint64_t)thread << 48) ^ ((uint64_t)round << 32) ^ ((uint64_t)i << 16) ^ off;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 32);
}

/* One word per KiB (touches every page) plus the last word. */
static void fill(void *p, size_t n, int t, long r, long i) {
    for (size_t off = 0; off + 16 <= n; off += 1024) {   /* never overlaps the tail word */
        uint64_t v = pattern(t, r, i, off);
        memcpy((char *)p + off, &v, 8);
    }
    uint64_t v = pattern(t, r, i, n - 8);
    memcpy((char *)p + n - 8, &v, 8);
}

static bool check(const void *p, size_t n, int t, long r, long i) {
    uint64_t v;
    for (size_t off = 0; off + 16 <= n; off += 1024) {   /* never overlaps the tail word */
        memcpy(&v, (const char *)p + off, 8);
        if (v != pattern(t, r, i, off)) return false;
    }
    memcpy(&v, (const char *)p + n - 8, 8);
    return v == pattern(t, r, i, n - 8);
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
    for (long r = w->round0; r < w->round1; r++) {
        for (long i = 0; i < cfg.blocks; i++) {
            size_t n = cfg.size;
            if (cfg.vary) n = cfg.size / 2 + (size_t)(rnd(&seed) % (cfg.size * 3 / 2 + 1));
            if (n < 16) n = 16;
            w->len[i] = n;
            w->blk[i] = malloc(n);
            if (w->blk[i] == NULL) {
                fprintf(stderr, "churn: malloc(%zu) failed: %s\n", n, strerror(errno));
                w->status = 3;
                for (long j = 0; j < i; j++) free(w->blk[j]);
                return NULL;
            }
            w->allocs++;
            fill(w->blk[i], n, w->id, r, i);
        }
        for (long i = 0; i < cfg.blocks; i++) {
            if (!check(w->blk[i], w->len[i], w->id, r, i)) {
                fprintf(stderr, "churn: corruption in thread %d round %ld block %ld (%p, %zu bytes)\n", w->id, r, i,
                        w->blk[i], w->len[i]);
                w->status = 1;
            }
        }
        for (long i = 0; i < cfg.blocks; i++) free(w->blk[i]);
        if (w->status) return NULL;
        if (cfg.sleep_ms > 0) {
            struct timespec ts = {cfg.sleep_ms / 1000, (cfg.sleep_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void announce(long phase) {
    printf("paused %ld pid %d\n", phase, (int)getpid());
    fflush(stdout);
    if (cfg.ready) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", cfg.ready);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%ld %d\n", phase, (int)getpid());
            fclose(f);
            rename(tmp, cfg.ready);
        }
    }
}

/* Wait for SIGUSR1 (blocked in every thread); poke the allocator meanwhile. */
static int pause_here(long phase) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    announce(phase);
    size_t n = cfg.size;
    void *held = cfg.poke_ms > 0 ? malloc(n) : NULL;
    if (cfg.poke_ms > 0 && held == NULL) return 3;
    for (;;) {
        int sig;
        if (cfg.poke_ms > 0) {
            struct timespec ts = {cfg.poke_ms / 1000, (cfg.poke_ms % 1000) * 1000000L};
            sig = sigtimedwait(&set, NULL, &ts);
            if (sig < 0 && errno == EAGAIN) {
                memset(held, 0x5a, 64);
                free(held);           /* applies pending control requests ... */
                held = malloc(n);     /* ... and takes the same block back: cache unchanged */
                if (held == NULL) return 3;
                continue;
            }
        } else {
            sig = sigwaitinfo(&set, NULL);
        }
        if (sig == SIGUSR1) break;
    }
    free(held);
    return 0;
}

static void print_stats(void) {
    hak_shm_handle_t h;
    hak_snapshot_t s;
    int rc = hak_shm_open_pid((int)getpid(), &h);
    if (rc == 0) {
        rc = hak_shm_snapshot(h.shm, &s);
        hak_shm_close(&h);
    }
    if (rc != 0) {
        printf("churn: own segment: %s\n", hak_shm_strerror(rc));
        return;
    }
    printf("churn: pid %d counters:", (int)getpid());
    for (int k = 0; k < HAK_NCOUNTERS; k++)
        if (s.counter[k]) printf(" %s=%" PRIu64, hak_counter_names[k], s.counter[k]);
    printf("\nchurn: gauges:");
    for (int k = 0; k < HAK_NGAUGES; k++) printf(" %s=%" PRId64, hak_gauge_names[k], s.gauge[k]);
    printf("\n");
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: churn [-n BLOCKS] [-s SIZE] [-r ROUNDS] [-t THREADS] [-S SLEEP_MS] [-p PHASES]\n"
            "             [--vary] [--pause] [--poke-ms N] [--ready FILE] [--stats] [-q]\n"
            "  -n, --blocks N     blocks per thread per round (32)\n"
            "  -s, --size SIZE    block size, K/M suffixes (256K)\n"
            "  -r, --rounds N     rounds per thread (20)\n"
            "  -t, --threads N    threads (1)\n"
            "  -S, --sleep-ms N   sleep between rounds (0)\n"
            "  -p, --phases N     split the rounds into N phases (1)\n"
            "      --vary         sizes spread over [SIZE/2, 2*SIZE]\n"
            "      --pause        after each phase print 'paused <phase> pid <pid>' and wait for SIGUSR1\n"
            "      --poke-ms N    while paused, free + malloc one held block every N ms\n"
            "      --ready FILE   also write '<phase> <pid>' to FILE at each pause\n"
            "      --stats        print own counters at the end (reader API)\n"
            "  -q, --quiet        no summary line\n");
}

static bool parse_num(const char *s, long *out, long min) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min) return false;
    *out = v;
    return true;
}

static bool parse_size(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-') return false;
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end || v < 16) return false;
    *out = v;
    return true;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"blocks", required_argument, NULL, 'n'}, {"size", required_argument, NULL, 's'},
        {"rounds", required_argument, NULL, 'r'}, {"threads", required_argument, NULL, 't'},
        {"sleep-ms", required_argument, NULL, 'S'}, {"phases", required_argument, NULL, 'p'},
        {"vary", no_argument, NULL, 'v'},         {"pause", no_argument, NULL, 'P'},
        {"poke-ms", required_argument, NULL, 'k'}, {"ready", required_argument, NULL, 'R'},
        {"stats", no_argument, NULL, 'x'},        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int c, rc = 0;
    while ((c = getopt_long(argc, argv, "n:s:r:t:S:p:qh", lo, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'n': ok = parse_num(optarg, &cfg.blocks, 1); break;
        case 's': ok = parse_size(optarg, &cfg.size); break;
        case 'r': ok = parse_num(optarg, &cfg.rounds, 0); break;
        case 't': ok = parse_num(optarg, &cfg.threads, 1) && cfg.threads <= 64; break;
        case 'S': ok = parse_num(optarg, &cfg.sleep_ms, 0); break;
        case 'p': ok = parse_num(optarg, &cfg.phases, 1); break;
        case 'v': cfg.vary = true; break;
        case 'P': cfg.pause = true; break;
        case 'k': ok = parse_num(optarg, &cfg.poke_ms, 1); break;
        case 'R': cfg.ready = optarg; break;
        case 'x': cfg.stats = true; break;
        case 'q': cfg.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: ok = false;
        }
        if (!ok) {
            if (c != '?') fprintf(stderr, "churn: bad value '%s' for -%c\n", optarg ? optarg : "", c);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    /* SIGUSR1 is only ever taken by sigwait in the main thread. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    worker_t *w = calloc((size_t)cfg.threads, sizeof *w);
    if (w == NULL) return 3;
    for (long t = 0; t < cfg.threads; t++) {
        w[t].id = (int)t;
        w[t].blk = calloc((size_t)cfg.blocks, sizeof(void *));
        w[t].len = calloc((size_t)cfg.blocks, sizeof(size_t));
        if (w[t].blk == NULL || w[t].len == NULL) return 3;
    }
    uint64_t allocs = 0;
    for (long ph = 0; ph < cfg.phases && rc == 0; ph++) {
        long r0 = cfg.rounds * ph / cfg.phases, r1 = cfg.rounds * (ph + 1) / cfg.phases;
        for (long t = 0; t < cfg.threads; t++) {
            w[t].round0 = r0;
            w[t].round1 = r1;
            if (pthread_create(&w[t].tid, NULL, worker_main, &w[t]) != 0) {
                fprintf(stderr, "churn: cannot create thread\n");
                return 3;
            }
        }
        for (long t = 0; t < cfg.threads; t++) {
            pthread_join(w[t].tid, NULL);
            if (w[t].status > rc) rc = w[t].status;
        }
        if (rc == 0 && cfg.pause) rc = pause_here(ph + 1);
    }
    for (long t = 0; t < cfg.threads; t++) {
        allocs += w[t].allocs;
        free(w[t].blk);
        free(w[t].len);
    }
    free(w);
    if (cfg.stats) print_stats();
    if (!cfg.quiet)
        printf("churn: pid %d %s: %" PRIu64 " allocations of ~%" PRIu64 " bytes in %ld threads\n", (int)getpid(),
               rc == 0 ? "ok" : rc == 1 ? "CORRUPTION" : "failed", allocs, cfg.size, cfg.threads);
    return rc;
}
