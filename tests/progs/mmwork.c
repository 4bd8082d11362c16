/*
 * mmwork - a known large-block workload for the eBPF probe test
 * (tests/integration/ebpf.sh).  Runs under LD_PRELOAD=libhakmem.so.
 *
 *   mmwork [-s] [-r ROUNDS] [-t THREADS] [-n OWN] [-R] [-m] [-o FILE]
 *     -s          raise(SIGSTOP) first (hakmem-probe -p PID --cont resumes it)
 *     -r ROUNDS   churn rounds per thread (default 20)
 *     -t THREADS  churning threads (default 1)
 *     -n OWN      another thread maps and munmaps OWN regions of its own,
 *                 of length OWN_LEN (odd, so the test can pick them out),
 *                 while the churn (and its flushes) runs
 *     -R          rogue: munmap one hakmem block directly (outside Batch), at the end
 *     -m          also grow blocks with realloc (mremap)
 *     -k          after the churn, lower the knobs: ring cap 4 -> 1, batch
 *                 threshold -> 2 MiB (two hakmem:knob_change probes)
 *     -w SEC      at the end, wait up to SEC s for hakmem-probe --publish to
 *                 show this run's munmap_calls in the segment's kernel section
 *                 (the k_* fields of the result line)
 *     -N          do not touch the blocks (benchmark the allocator paths only)
 *     -o FILE     write the result line there instead of stdout
 * Ends with hak_trim() (everything pending is flushed), then writes one JSON
 * line with the library's own counters read from its segment.
 * Exit: 0 ok, 3 not running under hakmem (no segment).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"

#define OWN_LEN 28673u   /* 7 pages + 1 byte: no one else munmaps this length */

static int rounds = 20;
static int no_touch;
static atomic_int churning;

static unsigned long long cpu_now_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (unsigned long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (unsigned long long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static void touch(char *p, size_t n) {
    if (no_touch) {
        p[0] = 1;
        return;
    }
    for (size_t i = 0; i < n; i += 4096) p[i] = (char)i;
}

static void *churn(void *arg) {
    static const size_t sizes[] = {64 << 10, 256 << 10, 1 << 20, 3 << 20};
    int grow = arg != NULL;
    enum { K = 24 };
    for (int r = 0; r < rounds; r++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            char *v[K];
            for (int i = 0; i < K; i++) {
                v[i] = malloc(sizes[s]);
                if (!v[i]) {
                    perror("malloc");
                    exit(1);
                }
                touch(v[i], sizes[s]);
            }
            if (grow && s == 1) {   /* 256 KiB -> 5 MiB: mremap */
                char *p = realloc(v[0], 5u << 20);
                if (!p) {
                    perror("realloc");
                    exit(1);
                }
                v[0] = p;
            }
            for (int i = 0; i < K; i++) free(v[i]);
        }
    }
    return NULL;
}

static unsigned own_n;
static atomic_uint own_done;

static void *own(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < own_n; i++) {
        void *p = mmap(NULL, OWN_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            exit(1);
        }
        memset(p, 1, OWN_LEN);
        if (munmap(p, OWN_LEN) != 0) {
            perror("munmap");
            exit(1);
        }
        atomic_fetch_add(&own_done, 1);
        /* spread the own munmaps over the churn, so some fall while another
         * thread is inside a flush window */
        if (atomic_load(&churning)) usleep(200);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 1, stop = 0, rogue = 0, grow = 0, knobs = 0, wait_s = 0, c;
    const char *out = NULL;
    while ((c = getopt(argc, argv, "sr:t:n:RmkNw:o:")) != -1) {
        switch (c) {
        case 's': stop = 1; break;
        case 'r': rounds = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'n': own_n = (unsigned)atoi(optarg); break;
        case 'R': rogue = 1; break;
        case 'm': grow = 1; break;
        case 'k': knobs = 1; break;
        case 'N': no_touch = 1; break;
        case 'w': wait_s = atoi(optarg); break;
        case 'o': out = optarg; break;
        default:
            fprintf(stderr, "usage: mmwork [-s] [-r ROUNDS] [-t THREADS] [-n OWN] [-R] [-m] [-k] [-N] [-w SEC] [-o FILE]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 16 || rounds < 0) return 2;

    hak_shm_handle_t h;
    int rc = hak_shm_open_pid(getpid(), &h);
    if (rc != 0) {
        fprintf(stderr, "mmwork: no hakmem segment: %s (run under LD_PRELOAD=libhakmem.so)\n", hak_shm_strerror(rc));
        return 3;
    }
    void (*trim)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "hak_trim");
    if (!trim) {
        fprintf(stderr, "mmwork: hak_trim not found (not running under libhakmem?)\n");
        return 3;
    }
    if (stop) raise(SIGSTOP);

    pthread_t tid[17];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long long cpu0 = cpu_now_ns();
    atomic_store(&churning, 1);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tid[i], NULL, churn, grow ? (void *)1 : NULL) != 0) return 1;
    if (own_n && pthread_create(&tid[threads], NULL, own, NULL) != 0) return 1;
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    atomic_store(&churning, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    unsigned long long churn_cpu_ns = cpu_now_ns() - cpu0;
    unsigned long long churn_ns =
        (unsigned long long)((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec));
    if (own_n) pthread_join(tid[threads], NULL);
    if (knobs) {
        int (*set_cap)(uint64_t) = (int (*)(uint64_t))dlsym(RTLD_DEFAULT, "hak_set_ring_cap");
        int (*set_thr)(uint64_t) = (int (*)(uint64_t))dlsym(RTLD_DEFAULT, "hak_set_batch_threshold");
        if (!set_cap || !set_thr || set_cap(1) != 0 || set_thr(2u << 20) != 0) {
            fprintf(stderr, "mmwork: cannot set knobs\n");
            return 1;
        }
    }
    trim();

    unsigned long long rogue_len = 0;
    if (rogue) {
        size_t n = 1u << 20;
        void *p = malloc(n);
        if (!p) return 1;
        touch(p, n);
        /* wrong on purpose: a hakmem block released outside Batch (from its
         * page: the block may be colored, an offset into that page) */
        if (munmap((void *)((uintptr_t)p & ~(uintptr_t)4095), n) != 0) {
            perror("munmap(rogue)");
            return 1;
        }
        rogue_len = n;
    }

    static hak_snapshot_t s;
    rc = hak_shm_snapshot(h.shm, &s);
    if (rc != 0) {
        fprintf(stderr, "mmwork: snapshot: %s\n", hak_shm_strerror(rc));
        return 1;
    }
    /* The counters are final now (this thread is the only one left and does
     * no more large-block work); wait for the probe's kernel figures. */
    for (int i = 0; i < wait_s * 100; i++) {
        if (s.kernel.updated_ns != 0 && s.kernel.munmap_calls == s.counter[HAK_C_munmap_calls]) break;
        usleep(10000);
        if (hak_shm_snapshot(h.shm, &s) != 0) return 1;
    }
    /* No hak_shm_close: its munmap would be one more outside-window munmap. */
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        perror(out);
        return 1;
    }
    const uint64_t *k = s.counter;
    fprintf(f,
            "{\"pid\":%d,\"munmap_calls\":%llu,\"munmap_bytes\":%llu,\"munmap_failures\":%llu,"
            "\"batch_flushes\":%llu,\"batch_blocks_flushed\":%llu,\"batch_bytes_flushed\":%llu,"
            "\"batch_ranges_flushed\":%llu,\"mmap_calls\":%llu,\"madvise_calls\":%llu,\"mremap_calls\":%llu,"
            "\"own_munmaps\":%u,\"own_len\":%u,\"rogue_len\":%llu,\"k_updated_ns\":%llu,\"k_munmap_calls\":%llu,"
            "\"k_munmap_bytes\":%llu,\"k_munmap_ns_total\":%llu,\"k_munmap_outside_flush\":%llu,"
            "\"k_madvise_calls\":%llu,\"k_madvise_ns_total\":%llu,\"churn_ns\":%llu,\"churn_cpu_ns\":%llu}\n",
            (int)getpid(), (unsigned long long)k[HAK_C_munmap_calls], (unsigned long long)k[HAK_C_munmap_bytes],
            (unsigned long long)k[HAK_C_munmap_failures], (unsigned long long)k[HAK_C_batch_flushes],
            (unsigned long long)k[HAK_C_batch_blocks_flushed], (unsigned long long)k[HAK_C_batch_bytes_flushed],
            (unsigned long long)k[HAK_C_batch_ranges_flushed], (unsigned long long)k[HAK_C_mmap_calls],
            (unsigned long long)k[HAK_C_madvise_calls], (unsigned long long)k[HAK_C_mremap_calls],
            atomic_load(&own_done), OWN_LEN, rogue_len, (unsigned long long)s.kernel.updated_ns,
            (unsigned long long)s.kernel.munmap_calls, (unsigned long long)s.kernel.munmap_bytes,
            (unsigned long long)s.kernel.munmap_ns_total, (unsigned long long)s.kernel.munmap_outside_flush,
            (unsigned long long)s.kernel.madvise_calls, (unsigned long long)s.kernel.madvise_ns_total, churn_ns, churn_cpu_ns);
    if (f != stdout) fclose(f);
    else fflush(stdout);
    return 0;
}
