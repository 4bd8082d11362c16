/*
 * forktest.c - fork while other threads allocate, under LD_PRELOAD=libhakmem.so.
 *
 * The parent runs worker threads that allocate, check and free large and small
 * blocks without pause, and keeps a few patterned large blocks of its own.
 * Meanwhile it forks several times (from the main thread and from a
 * short-lived extra thread).  Each child:
 *   - checks the inherited blocks of the forking thread, frees half of them;
 *   - allocates/frees/checks large blocks, also from two threads of its own
 *     (every allocator lock must have been reset properly);
 *   - has its own telemetry segment /dev/shm/hakmem.<childpid> (pid field =
 *     its pid), counting its own work; the first child also forks a grandchild;
 *   - tells the parent it is running, waits for its answer, then exit(0).
 * The parent, while the child waits, opens the child's segment from outside
 * (hak_shm_open_pid), checks it, lets the child finish, checks its exit status
 * and that the child's segment is gone; its own segment keeps working and its
 * workers keep checking their blocks.  Exit 0 = OK, 1 = failure (message).
 *   forktest [-f forks] [-t threads] [-c child-ms] [-s seed]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "hakmem/shm.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define WSLOTS 16
#define OWN 8

typedef struct blk {
    unsigned char *p;
    size_t n;
    uint64_t tag;
} blk_t;

static int nforks = 6, nthreads = 3, child_ms = 200;
static uint64_t seed = 1;
static _Atomic bool stop_workers;
static _Atomic uint64_t tag_seq;
static _Atomic uint64_t worker_ops;
static blk_t own[OWN];                       /* the main thread's blocks */
static void (*stats_get)(hak_stats_t *);
static bool in_child;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
    static _Atomic int failing;
    if (atomic_exchange(&failing, 1))
        for (;;) pause();          /* another thread is already reporting */
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "forktest[%d%s]: FAIL: ", (int)getpid(), in_child ? ", child" : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    exit(1);                       /* exit, not _exit: hakmem removes our segment */
}

static inline uint64_t rnd(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t pick_size(uint64_t *r) {
    switch (rnd(r) % 6) {
    case 0: return 1 + rnd(r) % (64 * KiB - 1);                 /* small */
    case 1: return 2 * MiB;
    case 2: return 64 * KiB + rnd(r) % 64;
    default: return 64 * KiB + rnd(r) % (4 * MiB);
    }
}

static inline uint64_t pat(uint64_t tag, size_t i) { return tag + i * 0x9E3779B97F4A7C15ULL; }

/* Pattern: first 64 words, 2 words per page, last word before n/8. */
static void fill(blk_t *b) {
    uint64_t *w = (uint64_t *)b->p;
    size_t nw = b->n / 8;
    for (size_t i = 0; i < nw && i < 64; i++) w[i] = pat(b->tag, i);
    for (size_t i = 512; i + 1 < nw; i += 512) w[i] = pat(b->tag, i), w[i + 1] = pat(b->tag, i + 1);
    if (nw) w[nw - 1] = pat(b->tag, nw - 1);
}

/* Check the pattern of b, only the words that lie below limit bytes. */
static void check_upto(const blk_t *b, size_t limit, const char *what) {
    const uint64_t *w = (const uint64_t *)b->p;
    size_t nw = b->n / 8, lw = limit / 8;
#define CK(i)                                                                                                      \
    if ((i) < lw && w[i] != pat(b->tag, i))                                                                        \
        fail("%s: block %p (%zu bytes) corrupt at offset %zu: want %#" PRIx64 " got %#" PRIx64, what, (void *)b->p, \
             b->n, (size_t)(i) * 8, pat(b->tag, i), w[i]);
    for (size_t i = 0; i < nw && i < 64; i++) CK(i);
    for (size_t i = 512; i + 1 < nw; i += 512) { CK(i); CK(i + 1); }
    if (nw) CK(nw - 1);
#undef CK
}

static void check(const blk_t *b, const char *what) { check_upto(b, b->n, what); }

static void alloc_blk(blk_t *b, size_t n) {
    b->p = malloc(n);
    if (b->p == NULL) fail("malloc(%zu): %s", n, strerror(errno));
    b->n = n;
    b->tag = (atomic_fetch_add(&tag_seq, 1) + 1) * 0xD1B54A32D192ED03ULL ^ (uint64_t)getpid() << 40;
    fill(b);
}

static void free_blk(blk_t *b, const char *what) {
    check(b, what);
    free(b->p);
    b->p = NULL;
}

/* One round of churn on a table of slots; returns ops done. */
static uint64_t churn(blk_t *slot, int nslots, uint64_t *r, int ops, const char *what) {
    for (int k = 0; k < ops; k++) {
        blk_t *b = &slot[rnd(r) % (uint64_t)nslots];
        if (b->p) {
            if (rnd(r) % 4 == 0) {                 /* realloc, contents kept */
                size_t n = pick_size(r), keep = n < b->n ? n : b->n;
                blk_t old = *b;
                check(b, what);
                void *q = realloc(b->p, n);
                if (q == NULL) fail("realloc(%zu): %s", n, strerror(errno));
                old.p = q;
                check_upto(&old, keep, "contents after realloc");
                b->p = q;
                b->n = n;
                fill(b);
            } else {
                free_blk(b, what);
            }
        } else {
            alloc_blk(b, pick_size(r));
        }
    }
    return (uint64_t)ops;
}

static void *worker(void *arg) {
    uint64_t r = seed * 0x9E3779B97F4A7C15ULL + (uintptr_t)arg * 7919 + 1;
    blk_t slot[WSLOTS];
    memset(slot, 0, sizeof slot);
    while (!atomic_load(&stop_workers)) atomic_fetch_add(&worker_ops, churn(slot, WSLOTS, &r, 8, "parent worker"));
    for (int i = 0; i < WSLOTS; i++)
        if (slot[i].p) free_blk(&slot[i], "parent worker (final)");
    return NULL;
}

typedef struct child_thread_arg {
    int id;
    int ms;
} child_thread_arg_t;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void *child_worker(void *arg) {
    child_thread_arg_t *a = arg;
    uint64_t r = seed ^ ((uint64_t)getpid() << 20) ^ (uint64_t)(a->id + 1) * 0xBF58476D1CE4E5B9ULL;
    blk_t slot[WSLOTS];
    memset(slot, 0, sizeof slot);
    double end = now_ms() + a->ms;
    while (now_ms() < end) churn(slot, WSLOTS, &r, 8, "child worker");
    for (int i = 0; i < WSLOTS; i++)
        if (slot[i].p) free_blk(&slot[i], "child worker (final)");
    return NULL;
}

static bool seg_exists(int pid) {
    char path[64];
    snprintf(path, sizeof path, HAK_SHM_DIR "/" HAK_SHM_PREFIX "%d", pid);
    return access(path, F_OK) == 0;
}

/* Open and snapshot the segment of pid; fails the test on any error. */
static void snap_of(int pid, hak_snapshot_t *s, const char *who) {
    hak_shm_handle_t h;
    int rc = hak_shm_open_pid(pid, &h);
    if (rc != 0) fail("%s: cannot open the segment of pid %d: %s", who, pid, hak_shm_strerror(rc));
    /* EBUSY ("no consistent snapshot within 250 ms") is the reader's documented
     * answer while writers are busy, on a loaded machine too: try again */
    for (int tries = 0; (rc = hak_shm_snapshot(h.shm, s)) == -HAK_SHM_EBUSY && tries < 40; tries++) usleep(50000);
    hak_shm_close(&h);
    if (rc != 0) fail("%s: snapshot of pid %d: %s", who, pid, hak_shm_strerror(rc));
    if ((int)s->pid != pid) fail("%s: segment of pid %d says pid %u", who, pid, s->pid);
    if (s->counter[HAK_C_munmap_calls] != s->counter[HAK_C_batch_ranges_flushed])
        fail("%s: pid %d: munmap_calls %" PRIu64 " != batch_ranges_flushed %" PRIu64, who, pid,
             s->counter[HAK_C_munmap_calls], s->counter[HAK_C_batch_ranges_flushed]);
}

static void wait_exit0(pid_t pid, const char *who) {
    int st;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {}
    if (w != pid) fail("waitpid(%s %d): %s", who, (int)pid, strerror(errno));
    if (WIFSIGNALED(st))
        fail("%s %d killed by signal %d%s", who, (int)pid, WTERMSIG(st),
             WTERMSIG(st) == SIGALRM ? " (timeout: deadlock after fork?)" : "");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("%s %d exited with status %d", who, (int)pid, WEXITSTATUS(st));
    if (seg_exists((int)pid)) fail("the segment of %s %d is still there after it exited", who, (int)pid);
}

static void child_main(int round, int ready_fd, int go_fd) {
    in_child = true;
    alarm(30);
    int me = (int)getpid();
    /* the main thread's blocks came through intact (it is waiting in poll or
     * pthread_join, not touching them); free half of them */
    for (int i = 0; i < OWN; i++) check(&own[i], "inherited block");
    for (int i = 0; i < OWN; i += 2) free_blk(&own[i], "inherited block (free)");
    hak_snapshot_t s0, s1;
    /* the child has done large frees just above: its segment is published */
    if (!seg_exists(me)) fail("no segment /dev/shm/hakmem.%d in the child", me);
    snap_of(me, &s0, "child at start");
    hak_stats_t st0, st1;
    stats_get(&st0);

    child_thread_arg_t a[2] = {{0, child_ms}, {1, child_ms}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, child_worker, &a[i]) != 0) fail("pthread_create in child");
    uint64_t r = seed + (uint64_t)me;
    blk_t slot[WSLOTS];
    memset(slot, 0, sizeof slot);
    churn(slot, WSLOTS, &r, 64, "child main");
    if (round == 0) {                           /* a grandchild, forked while the child's threads run */
        pid_t g = fork();
        if (g < 0) fail("fork (grandchild): %s", strerror(errno));
        if (g == 0) {
            alarm(30);
            blk_t gs[WSLOTS];
            memset(gs, 0, sizeof gs);
            churn(gs, WSLOTS, &r, 64, "grandchild");
            if (!seg_exists((int)getpid())) fail("no segment for the grandchild");
            for (int i = 0; i < WSLOTS; i++)
                if (gs[i].p) free_blk(&gs[i], "grandchild (final)");
            exit(0);
        }
        wait_exit0(g, "grandchild");
    }
    if (write(ready_fd, "R", 1) != 1) fail("write(ready): %s", strerror(errno));
    char c;
    if (read(go_fd, &c, 1) != 1) fail("read(go): parent went away");
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < WSLOTS; i++)
        if (slot[i].p) free_blk(&slot[i], "child main (final)");
    for (int i = 1; i < OWN; i += 2) free_blk(&own[i], "inherited block (final free)");
    stats_get(&st1);
    snap_of(me, &s1, "child at end");
    if (st1.large_allocs <= st0.large_allocs) fail("hak_stats_get: the child's large_allocs did not move");
    if (s1.counter[HAK_C_large_allocs] <= s0.counter[HAK_C_large_allocs])
        fail("the child's segment did not count its allocations");
    exit(0);   /* the destructor removes /dev/shm/hakmem.<pid> */
}

typedef struct fork_job {
    int round;
    const char *forker;
} fork_job_t;

static void do_fork(int round, const char *forker) {
    int ready[2], go[2];
    if (pipe(ready) || pipe(go)) fail("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        child_main(round, ready[1], go[0]);
    }
    close(ready[1]);
    close(go[0]);
    struct pollfd pf = {.fd = ready[0], .events = POLLIN};
    int rc = poll(&pf, 1, 30000);
    char c = 0;
    if (rc != 1 || read(ready[0], &c, 1) != 1 || c != 'R') {
        int st = 0;
        if (rc == 0) kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        if (rc == 0) fail("child %d (round %d) did not report running within 30 s (deadlock after fork?)", (int)pid, round);
        fail("child %d (round %d) ended before reporting: %s %d", (int)pid, round,
             WIFSIGNALED(st) ? "signal" : "exit status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
    /* The child is alive and waiting: its own segment, seen from outside. */
    hak_snapshot_t cs, ps;
    snap_of((int)pid, &cs, "parent reading the child's segment");
    snap_of((int)getpid(), &ps, "parent reading its own segment");
    if (cs.counter[HAK_C_large_allocs] == 0) fail("child %d: segment shows no large allocation", (int)pid);
    if (cs.mode != ps.mode) fail("child mode %u != parent mode %u", cs.mode, ps.mode);
    printf("fork %d (from %s thread): child %d segment ok (large_allocs=%" PRIu64 " flushes=%" PRIu64
           "), parent segment ok (large_allocs=%" PRIu64 ")\n",
           round, forker, (int)pid, cs.counter[HAK_C_large_allocs], cs.counter[HAK_C_batch_flushes],
           ps.counter[HAK_C_large_allocs]);
    if (write(go[1], "G", 1) != 1) fail("write(go): %s", strerror(errno));
    close(go[1]);
    close(ready[0]);
    wait_exit0(pid, "child");
}

static void *fork_thread(void *arg) {
    fork_job_t *j = arg;
    do_fork(j->round, j->forker);
    return NULL;
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "f:t:c:s:")) != -1) {
        switch (opt) {
        case 'f': nforks = atoi(optarg); break;
        case 't': nthreads = atoi(optarg); break;
        case 'c': child_ms = atoi(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        default:
            fprintf(stderr, "usage: forktest [-f forks] [-t threads] [-c child-ms] [-s seed]\n");
            return 2;
        }
    }
    if (nforks < 1 || nthreads < 1 || nthreads > 32 || child_ms < 1) {
        fprintf(stderr, "forktest: bad arguments\n");
        return 2;
    }
    stats_get = (void (*)(hak_stats_t *))dlsym(RTLD_DEFAULT, "hak_stats_get");
    if (stats_get == NULL) {
        fprintf(stderr, "forktest: hak_stats_get not found: run under LD_PRELOAD=libhakmem.so\n");
        return 77;
    }
    if (!seg_exists((int)getpid())) fail("no telemetry segment for this process (HAKMEM_STATS=0 or HAKMEM_MODE=off?)");
    hak_snapshot_t s0, s1;
    snap_of((int)getpid(), &s0, "parent at start");

    uint64_t r = seed;
    for (int i = 0; i < OWN; i++) alloc_blk(&own[i], i % 2 ? 2 * MiB + 4096 * (size_t)i : 64 * KiB + (rnd(&r) % MiB));
    pthread_t th[32];
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) != 0) fail("pthread_create");
    for (int round = 0; round < nforks; round++) {
        usleep(20000 + (useconds_t)(rnd(&r) % 30000));   /* workers are busy in the allocator */
        uint64_t before = atomic_load(&worker_ops);
        if (round % 2 == 0) {
            do_fork(round, "main");
        } else {
            fork_job_t j = {round, "extra"};
            pthread_t ft;
            if (pthread_create(&ft, NULL, fork_thread, &j) != 0) fail("pthread_create(fork thread)");
            pthread_join(ft, NULL);
        }
        for (int i = 0; i < OWN; i++) check(&own[i], "parent block after fork");
        usleep(5000);
        if (atomic_load(&worker_ops) == before) fail("parent workers made no progress around fork %d", round);
    }
    atomic_store(&stop_workers, true);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < OWN; i++) free_blk(&own[i], "parent block (final)");

    snap_of((int)getpid(), &s1, "parent at end");
    hak_stats_t st;
    stats_get(&st);
    printf("parent: worker ops=%" PRIu64 " large_allocs=%" PRIu64 " large_frees=%" PRIu64 " flushes=%" PRIu64
           " munmap=%" PRIu64 " ranges=%" PRIu64 " blocks_live=%" PRId64 "\n",
           atomic_load(&worker_ops), st.large_allocs, st.large_frees, st.batch_flushes, st.munmap_calls,
           st.batch_ranges_flushed, s1.gauge[HAK_G_blocks_live]);
    if (s1.counter[HAK_C_large_allocs] <= s0.counter[HAK_C_large_allocs])
        fail("the parent's segment stopped counting");
    if (st.large_allocs != st.large_frees || s1.gauge[HAK_G_blocks_live] != 0)
        fail("parent: every block is freed but large_allocs=%" PRIu64 " large_frees=%" PRIu64 " blocks_live=%" PRId64,
             st.large_allocs, st.large_frees, s1.gauge[HAK_G_blocks_live]);
    printf("forktest: OK (%d forks)\n", nforks);
    return 0;
}
