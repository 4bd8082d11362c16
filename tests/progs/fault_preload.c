/* fault_preload.c - fault injection through the public malloc family, run
 * under LD_PRELOAD=libhakmem.so by tests/integration/faults.sh (and used as a
 * live hakmem process by security.sh).  Counters are read back through this
 * process's own telemetry segment, as hakmem-stat would.
 *
 *   fault_preload rlimit [inside|outside]
 *       inside: lower RLIMIT_AS to the current size + 64 MiB, then every
 *       allocating call that needs more (malloc, calloc, posix_memalign,
 *       aligned_alloc, valloc, realloc large->larger, realloc small->large)
 *       must return NULL/ENOMEM, leave the old block intact and leave
 *       bytes_live/blocks_live/bytes_mapped unchanged; allocations that fit
 *       still work; after the limit is lifted everything works again.
 *       outside: the limit was set before exec (prlimit --as): a request
 *       beyond it fails cleanly, smaller ones work.
 *   fault_preload munmap
 *       a seccomp filter (all threads) makes munmap of one exact length fail
 *       with EPERM; two blocks of that length are freed and flushed: both
 *       failures are counted in munmap_failures, stderr gets one report
 *       (faults.sh checks), the program keeps working.  Needs HAKMEM_THP=never
 *       (the mapping length is then the page-rounded request).
 *   fault_preload churn SECONDS
 *       allocate/verify/free large blocks for SECONDS; prints "ready" once
 *       running and "churn ok N" at the end.
 * Exit 0 when every check held; each failed check prints a line. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"

#define MiB ((size_t)1 << 20)
static int failures;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            failures++;                                                   \
        }                                                                 \
    } while (0)

static hak_snapshot_t snap;
/* This process's counters through its segment; 0 or -1 (printed). */
static int read_self(void) {
    hak_shm_handle_t h;
    int rc = hak_shm_open_pid(getpid(), &h);
    if (rc == 0) {
        for (int i = 0; i < 50; i++) {
            rc = hak_shm_snapshot(h.shm, &snap);
            if (rc != -HAK_SHM_EBUSY) break;
        }
        hak_shm_close(&h);
    }
    if (rc != 0) fprintf(stderr, "FAIL: cannot read my own segment: %s\n", hak_shm_strerror(rc));
    return rc == 0 ? 0 : -1;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 4096) p[i] = (unsigned char)(seed + i / 4096);
    p[n - 1] = (unsigned char)~seed;
}
static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 4096)
        if (p[i] != (unsigned char)(seed + i / 4096)) return 0;
    return p[n - 1] == (unsigned char)~seed;
}

static long vm_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0) v = strtol(line + kl, NULL, 10);
    if (f) fclose(f);
    return v;
}

/* A call expected to fail with ENOMEM. */
#define EXPECT_ENOMEM(expr, what)                                                      \
    do {                                                                               \
        errno = 0;                                                                     \
        void *r_ = (expr);                                                             \
        CHECK(r_ == NULL && errno == ENOMEM, "%s: got %p errno %d", what, r_, errno); \
        if (r_ == NULL) nfail++;                                                       \
        else free(r_);                                                                 \
    } while (0)

static int rlimit_inside(void) {
    volatile size_t big = 256 * MiB, huge = 300 * MiB;   /* volatile: keep the compiler out of it */
    unsigned char *p1 = malloc(MiB), *s = malloc(100);
    CHECK(p1 && s, "setup");
    if (!p1 || !s) return 1;
    fill(p1, MiB, 3);
    memset(s, 0x5c, 100);
    if (read_self() != 0) return 1;
    hak_snapshot_t g0 = snap;

    struct rlimit old, lim;
    getrlimit(RLIMIT_AS, &old);
    long vm = vm_kb("VmSize:");
    lim.rlim_cur = (rlim_t)vm * 1024 + 64 * MiB;
    lim.rlim_max = old.rlim_max;
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit: %s", strerror(errno));
    int nfail = 0;
    EXPECT_ENOMEM(malloc(big), "malloc(256 MiB)");
    EXPECT_ENOMEM(malloc(huge), "malloc(300 MiB) (uncached size)");
    EXPECT_ENOMEM(calloc(1, big / 2), "calloc(128 MiB)");
    EXPECT_ENOMEM(aligned_alloc(MiB, 100 * MiB), "aligned_alloc(1 MiB, 100 MiB)");
    EXPECT_ENOMEM(valloc(100 * MiB), "valloc(100 MiB)");
    void *q = (void *)0x1;
    errno = 4242;
    int rc = posix_memalign(&q, 2 * MiB, big / 2);
    CHECK(rc == ENOMEM && q == (void *)0x1 && errno == 4242, "posix_memalign: rc %d q %p errno %d", rc, q, errno);
    nfail += rc == ENOMEM;
    errno = 0;
    void *r = realloc(p1, 200 * MiB);
    CHECK(r == NULL && errno == ENOMEM, "realloc(1 MiB block, 200 MiB): %p errno %d", r, errno);
    nfail += r == NULL;
    if (r) p1 = r;
    CHECK(intact(p1, MiB, 3), "the block survives a failed realloc");
    errno = 0;
    r = realloc(s, 100 * MiB);
    CHECK(r == NULL && errno == ENOMEM, "realloc(small, 100 MiB): %p errno %d", r, errno);
    nfail += r == NULL;
    if (r) s = r;
    for (int i = 0; i < 100; i++) CHECK(s[i] == 0x5c, "small block byte %d changed", i);

    if (read_self() != 0) return 1;
    CHECK(snap.gauge[HAK_G_bytes_live] == g0.gauge[HAK_G_bytes_live], "bytes_live %lld -> %lld",
          (long long)g0.gauge[HAK_G_bytes_live], (long long)snap.gauge[HAK_G_bytes_live]);
    CHECK(snap.gauge[HAK_G_blocks_live] == g0.gauge[HAK_G_blocks_live], "blocks_live moved");
    CHECK(snap.gauge[HAK_G_bytes_mapped] == g0.gauge[HAK_G_bytes_mapped], "bytes_mapped %lld -> %lld",
          (long long)g0.gauge[HAK_G_bytes_mapped], (long long)snap.gauge[HAK_G_bytes_mapped]);
    uint64_t mf = snap.counter[HAK_C_mmap_failures] - g0.counter[HAK_C_mmap_failures];
    CHECK(mf >= 6, "mmap_failures grew by %llu only", (unsigned long long)mf);

    /* what fits still works under the limit */
    unsigned char *w = malloc(8 * MiB);
    CHECK(w != NULL, "malloc(8 MiB) under the limit: %s", strerror(errno));
    if (w) {
        fill(w, 8 * MiB, 7);
        CHECK(intact(w, 8 * MiB, 7), "8 MiB block");
        free(w);
    }
    /* lift the limit: everything works again */
    CHECK(setrlimit(RLIMIT_AS, &old) == 0, "restore rlimit");
    unsigned char *b = malloc(big);
    CHECK(b != NULL, "malloc(256 MiB) after the limit is lifted");
    if (b) {
        fill(b, big, 9);
        CHECK(intact(b, big, 9), "256 MiB block");
        free(b);
    }
    r = realloc(p1, 200 * MiB);
    CHECK(r != NULL && intact(r, MiB, 3), "realloc to 200 MiB after the limit is lifted");
    if (r) p1 = r;
    free(p1);
    free(s);
    printf("rlimit inside: %d calls failed cleanly (ENOMEM), mmap_failures +%llu, gauges unchanged; recovered\n", nfail,
           (unsigned long long)mf);
    return failures ? 1 : 0;
}

static int rlimit_outside(void) {
    struct rlimit lim;
    getrlimit(RLIMIT_AS, &lim);
    CHECK(lim.rlim_cur != RLIM_INFINITY, "run me under prlimit --as=...");
    int nfail = 0;
    volatile size_t n = (size_t)lim.rlim_cur;
    EXPECT_ENOMEM(malloc(n), "malloc(the whole limit)");
    EXPECT_ENOMEM(calloc(n / 4096, 4096), "calloc(the whole limit)");
    unsigned char *p = malloc(16 * MiB);
    CHECK(p != NULL, "malloc(16 MiB) within the limit: %s", strerror(errno));
    if (p) {
        fill(p, 16 * MiB, 1);
        errno = 0;
        unsigned char *r = realloc(p, n);
        CHECK(r == NULL && errno == ENOMEM, "realloc beyond the limit: %p", (void *)r);
        if (r == NULL) {
            CHECK(intact(p, 16 * MiB, 1), "block after a failed realloc");
            free(p);
        } else {
            free(r);
        }
    }
    for (int i = 0; i < 20; i++) {       /* churn within the limit */
        unsigned char *q = malloc((size_t)(1 + i % 5) * 3 * MiB);
        CHECK(q != NULL, "churn malloc %d", i);
        if (q) {
            fill(q, (size_t)(1 + i % 5) * 3 * MiB, (unsigned)i);
            free(q);
        }
    }
    printf("rlimit outside (%llu MiB): %d calls failed cleanly, churn within the limit ok\n",
           (unsigned long long)(lim.rlim_cur >> 20), nfail);
    return failures ? 1 : 0;
}

/* munmap of exactly len bytes fails with EPERM, in every thread. */
static int fail_munmap_of_len(uint64_t len) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_munmap, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)len, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1]) + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(len >> 32), 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
}

static int munmap_failure(void) {
    void (*flush)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "hak_flush");
    CHECK(flush != NULL, "hakmem is not loaded");
    if (!flush) return 2;
    const char *thp = getenv("HAKMEM_THP");
    CHECK(thp && strcmp(thp, "never") == 0, "needs HAKMEM_THP=never");
    const size_t n = 259 * MiB + 12345, len = (n + 4095) & ~(size_t)4095;   /* uncached: mapped exactly */
    free(malloc(2 * MiB));
    flush();                                         /* nothing pending that could coalesce */
    if (read_self() != 0) return 1;
    hak_snapshot_t g0 = snap;
    CHECK(fail_munmap_of_len(len) == 0, "seccomp: %s", strerror(errno));
    long vm0 = vm_kb("VmSize:");
    for (int k = 0; k < 2; k++) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        if (!p) return 1;
        p[0] = 1;
        p[n - 1] = 2;
        free(p);                                     /* uncacheable: Batch, flush, munmap -> EPERM */
        flush();
    }
    long vm1 = vm_kb("VmSize:");
    if (read_self() != 0) return 1;
    uint64_t f = snap.counter[HAK_C_munmap_failures] - g0.counter[HAK_C_munmap_failures];
    uint64_t c = snap.counter[HAK_C_munmap_calls] - g0.counter[HAK_C_munmap_calls];
    CHECK(f >= 2, "munmap_failures grew by %llu, want at least 2", (unsigned long long)f);
    CHECK(c >= 2, "munmap_calls grew by %llu", (unsigned long long)c);
    /* A range whose munmap failed stays mapped: its blocks stay pending in
     * Batch (retried at every flush) and bytes_mapped keeps counting them. */
    int64_t dmapped = snap.gauge[HAK_G_bytes_mapped] - g0.gauge[HAK_G_bytes_mapped];
    int64_t pend = snap.gauge[HAK_G_blocks_pending];
    CHECK(pend >= 1, "no block kept pending after failed munmaps");
    CHECK(dmapped == pend * (int64_t)len, "bytes_mapped grew by %lld, want %lld (%lld pending blocks of %zu)",
          (long long)dmapped, (long long)(pend * (int64_t)len), (long long)pend, len);
    CHECK((vm1 - vm0) * 1024 >= dmapped, "VmSize grew by %ld KiB, less than bytes_mapped says", vm1 - vm0);
    /* the program keeps working */
    for (int i = 0; i < 10; i++) {
        unsigned char *q = malloc((size_t)(i + 1) * MiB);
        CHECK(q != NULL, "malloc after the failures");
        if (q) {
            fill(q, (size_t)(i + 1) * MiB, (unsigned)i);
            CHECK(intact(q, (size_t)(i + 1) * MiB, (unsigned)i), "block %d", i);
            free(q);
        }
    }
    flush();
    printf("munmap: failures injected, munmap_failures +%llu, munmap_calls +%llu; the ranges stay mapped "
           "(VmSize +%ld MiB), pending in Batch, and bytes_mapped says so (+%lld MiB)\n",
           (unsigned long long)f, (unsigned long long)c, (vm1 - vm0) >> 10, (long long)(dmapped >> 20));
    return failures ? 1 : 0;
}

static int churn(double secs) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long n = 0;
    int said = 0;
    unsigned char *keep[4] = {0};
    size_t keep_n[4] = {0};
    for (;;) {
        size_t sz = (size_t)(1 + n % 9) * (MiB / 2) + (n % 3) * 4096;
        unsigned char *p = malloc(sz);
        CHECK(p != NULL, "malloc(%zu)", sz);
        if (!p) break;
        fill(p, sz, (unsigned)n);
        unsigned k = n % 4;
        if (keep[k]) {
            CHECK(intact(keep[k], keep_n[k], (unsigned)(n - 4)), "kept block changed");
            free(keep[k]);
        }
        keep[k] = p;
        keep_n[k] = sz;
        n++;
        if (!said) {
            printf("ready\n");
            fflush(stdout);
            said = 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >= secs || failures) break;
        usleep(2000);
    }
    for (int k = 0; k < 4; k++) free(keep[k]);
    printf("churn ok %lu\n", n);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fault_preload rlimit [inside|outside] | munmap | churn SECONDS\n");
        return 2;
    }
    if (strcmp(argv[1], "rlimit") == 0)
        return argc > 2 && strcmp(argv[2], "outside") == 0 ? rlimit_outside() : rlimit_inside();
    if (strcmp(argv[1], "munmap") == 0) return munmap_failure();
    if (strcmp(argv[1], "churn") == 0) return churn(argc > 2 ? atof(argv[2]) : 1);
    fprintf(stderr, "unknown command %s\n", argv[1]);
    return 2;
}
