/*
 * phased.c - a phased large-block workload for the tuner tests and demos.
 *
 * Rounds of two phases: a small working set (-s, default 8 blocks) then a big
 * one (-b, default 120 blocks) of -z bytes (default 2 MiB).  Each phase runs
 * cycles for -p ms and at least -c cycles (default 3): malloc the whole working set, write one byte per 4 KiB
 * page of every block (what a real program touching its buffers pays in page
 * faults), free them all.  After the last round it frees everything and
 * sleeps -i ms (idle), so a tuner can trim.
 *
 * Under LD_PRELOAD=libhakmem.so it reads its own telemetry segment and prints
 * one line per phase (cache hits/misses in that phase, ring cap at its end),
 * then a summary line for scripts:
 *   summary big_hit_rate_later=R small_hit_rate_later=R cycles=N ms_per_big_cycle=T
 *   idle bytes_cached_before=B bytes_cached_after=A
 * "later" = every round but the first (the tuner's learning round).
 *
 * Usage: phased [-r rounds] [-p phase_ms] [-c min_cycles] [-s small] [-b big]
 *               [-z bytes] [-w start_delay_ms] [-i idle_ms]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static hak_shm_handle_t seg;
static int have_seg;

static int snap(hak_snapshot_t *s) {
    if (!have_seg) return -1;
    for (int i = 0; i < 20; i++) {
        if (hak_shm_snapshot(seg.shm, s) == 0) return 0;
        sleep_ms(1);
    }
    return -1;
}

static unsigned long arg(const char *s, const char *what) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0') {
        fprintf(stderr, "phased: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    unsigned long rounds = 4, phase_ms = 1500, small = 8, big = 120, idle_ms = 2000, delay_ms = 0, min_cycles = 3;
    size_t bsize = 2u << 20;
    int c;
    while ((c = getopt(argc, argv, "r:p:c:s:b:z:w:i:h")) != -1) {
        switch (c) {
        case 'r': rounds = arg(optarg, "rounds"); break;
        case 'p': phase_ms = arg(optarg, "phase ms"); break;
        case 'c': min_cycles = arg(optarg, "min cycles"); break;
        case 's': small = arg(optarg, "small working set"); break;
        case 'b': big = arg(optarg, "big working set"); break;
        case 'z': bsize = arg(optarg, "block size"); break;
        case 'w': delay_ms = arg(optarg, "start delay"); break;
        case 'i': idle_ms = arg(optarg, "idle ms"); break;
        default:
            fprintf(stderr, "usage: phased [-r rounds] [-p phase_ms] [-c min_cycles] [-s small] [-b big] [-z bytes] "
                            "[-w start_delay_ms] [-i idle_ms]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (small == 0 || big == 0 || big > 100000 || small > 100000 || bsize < 4096 || rounds == 0) {
        fprintf(stderr, "phased: working sets must be 1..100000 blocks of >= 4096 bytes, rounds >= 1\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* first large allocation: initialises the allocator and its segment */
    free(malloc(bsize));
    have_seg = hak_shm_open_pid(getpid(), &seg) == 0;
    printf("phased: pid %d, %lu rounds of %lu then %lu blocks of %zu bytes, %lu ms per phase, segment %s\n",
           (int)getpid(), rounds, small, big, bsize, phase_ms, have_seg ? "yes" : "no (not under hakmem)");
    if (delay_ms) sleep_ms(delay_ms);

    unsigned long maxws = small > big ? small : big;
    char **v = calloc(maxws, sizeof *v);
    if (v == NULL) return 1;
    uint64_t later_big[2] = {0, 0}, later_small[2] = {0, 0};   /* hits, misses */
    uint64_t big_cycles = 0, big_ns = 0, cycles_total = 0;
    hak_snapshot_t a, b;
    for (unsigned long r = 0; r < rounds; r++) {
        for (int ph = 0; ph < 2; ph++) {
            unsigned long ws = ph ? big : small;
            int have_a = snap(&a) == 0;
            uint64_t t0 = now_ns(), end = t0 + phase_ms * 1000000ull, cycles = 0;
            do {
                for (unsigned long i = 0; i < ws; i++) {
                    v[i] = malloc(bsize);
                    if (v[i] == NULL) {
                        perror("phased: malloc");
                        return 1;
                    }
                    for (size_t off = 0; off < bsize; off += 4096) v[i][off] = (char)(i + off);
                }
                for (unsigned long i = 0; i < ws; i++) free(v[i]);
                cycles++;
            } while (now_ns() < end || cycles < min_cycles);
            uint64_t dt = now_ns() - t0;
            cycles_total += cycles;
            if (ph) big_cycles += r ? cycles : 0, big_ns += r ? dt : 0;
            if (have_a && snap(&b) == 0) {
                uint64_t h = b.counter[HAK_C_cache_hits] - a.counter[HAK_C_cache_hits];
                uint64_t m = b.counter[HAK_C_cache_misses] - a.counter[HAK_C_cache_misses];
                if (r > 0) {
                    uint64_t *acc = ph ? later_big : later_small;
                    acc[0] += h, acc[1] += m;
                }
                printf("round %lu phase %-5s ws %4lu: %5llu cycles %8.3f ms/cycle  hits %7llu misses %7llu "
                       "hit_rate %.3f  ring_cap %llu\n",
                       r, ph ? "big" : "small", ws, (unsigned long long)cycles, dt / 1e6 / (double)cycles,
                       (unsigned long long)h, (unsigned long long)m, h + m ? (double)h / (double)(h + m) : 0.0,
                       (unsigned long long)b.knobs.ring_cap);
            } else {
                printf("round %lu phase %-5s ws %4lu: %5llu cycles %8.3f ms/cycle\n", r, ph ? "big" : "small", ws,
                       (unsigned long long)cycles, dt / 1e6 / (double)cycles);
            }
        }
    }
    double bhr = later_big[0] + later_big[1] ? (double)later_big[0] / (double)(later_big[0] + later_big[1]) : 0.0;
    double shr = later_small[0] + later_small[1]
                     ? (double)later_small[0] / (double)(later_small[0] + later_small[1]) : 0.0;
    printf("summary big_hit_rate_later=%.4f small_hit_rate_later=%.4f cycles=%llu ms_per_big_cycle=%.3f\n", bhr, shr,
           (unsigned long long)cycles_total, big_cycles ? big_ns / 1e6 / (double)big_cycles : 0.0);

    /* idle: everything freed, the program sleeps */
    free(v);
    int64_t before = -1, after = -1;
    if (snap(&a) == 0) before = a.gauge[HAK_G_bytes_cached];
    if (idle_ms) sleep_ms(idle_ms);
    if (snap(&b) == 0) after = b.gauge[HAK_G_bytes_cached];
    printf("idle bytes_cached_before=%lld bytes_cached_after=%lld idle_ms=%lu\n", (long long)before,
           (long long)after, idle_ms);
    if (have_seg) hak_shm_close(&seg);
    return 0;
}
