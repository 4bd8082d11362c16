/*
 * seed.c - the seed scenario of hakmem: 1000 alloc/free ops of 2 MiB blocks
 * (100 rounds: allocate 10 blocks, touch every page, free the 10), with the
 * default knobs and no per-thread front cache (HAKMEM_TCACHE_MAX_BYTES=0, so
 * the rings' figures are exact), under LD_PRELOAD=libhakmem.so.
 *
 * With BIGCACHE_RING_CAP 4, each round's frees keep 4 blocks warm and hand 6 to
 * Batch, which flushes every BATCH_THRESHOLD (4 MiB) of pending blocks with one
 * munmap per coalesced range.  At the end the program reads its own counters
 * through hak_stats_get (looked up with dlsym, so it works under LD_PRELOAD) and
 * asserts:
 *   batch_adds > 0 and batch_flushes > 0;
 *   munmap_calls <= batch_ranges_flushed (only Batch munmaps);
 *   munmap_calls < batch_blocks_flushed when blocks coalesce (the program saw
 *   2 MiB blocks that were address neighbours);
 *   with the default knobs in fixed mode, the exact figures of the scenario:
 *   hits = 99 * 4, batch_adds = 100 * 6, every block added was flushed.
 * Exit 0 = OK, 1 = an assertion failed, 77 = not running under hakmem.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"
#include "hakmem/shm.h"

#define ROUNDS 100
#define PER_ROUND 10
#define BLOCK ((size_t)2 << 20)

static int failures;

#define EXPECT(cond, ...)                                 \
    do {                                                  \
        if (!(cond)) {                                    \
            fprintf(stderr, "seed: FAIL: " __VA_ARGS__); \
            fprintf(stderr, "  [%s]\n", #cond);          \
            failures++;                                   \
        }                                                 \
    } while (0)

int main(void) {
    void (*stats_get)(hak_stats_t *) = (void (*)(hak_stats_t *))dlsym(RTLD_DEFAULT, "hak_stats_get");
    uint64_t (*knob_get)(int) = (uint64_t (*)(int))dlsym(RTLD_DEFAULT, "hak_knob_get");
    if (stats_get == NULL || knob_get == NULL) {
        fprintf(stderr, "seed: hak_stats_get not found: run under LD_PRELOAD=libhakmem.so\n");
        return 77;
    }
    hak_stats_t st0, st;
    stats_get(&st0);
    uint64_t ring_cap = knob_get(HAKMEM_KNOB_RING_CAP);
    uint64_t threshold = knob_get(HAKMEM_KNOB_BATCH_THRESHOLD);
    uint32_t mode = UINT32_MAX;
    hak_shm_handle_t h;
    hak_snapshot_t snap;
    if (hak_shm_open_pid((int)getpid(), &h) == 0) {
        if (hak_shm_snapshot(h.shm, &snap) == 0) mode = snap.mode;
        hak_shm_close(&h);
    }

    unsigned char *blk[PER_ROUND];
    uint64_t neighbours = 0, ops = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PER_ROUND; i++) {
            blk[i] = malloc(BLOCK);
            if (blk[i] == NULL) {
                fprintf(stderr, "seed: FAIL: malloc(2 MiB) returned NULL in round %d\n", r);
                return 1;
            }
            for (size_t o = 0; o < BLOCK; o += 4096) blk[i][o] = (unsigned char)(r + i + o / 4096);
            ops++;
        }
        for (int i = 0; i < PER_ROUND; i++)
            for (int j = 0; j < PER_ROUND; j++)
                if (blk[j] == blk[i] + BLOCK) neighbours++;
        for (int i = 0; i < PER_ROUND; i++) {
            for (size_t o = 0; o < BLOCK; o += 4096)
                if (blk[i][o] != (unsigned char)(r + i + o / 4096)) {
                    fprintf(stderr, "seed: FAIL: block %p corrupt at offset %zu in round %d\n", (void *)blk[i], o, r);
                    return 1;
                }
            free(blk[i]);
            ops++;
        }
    }
    stats_get(&st);
    uint64_t d_allocs = st.large_allocs - st0.large_allocs, d_hits = st.cache_hits - st0.cache_hits;
    uint64_t d_adds = st.batch_adds - st0.batch_adds, d_flushes = st.batch_flushes - st0.batch_flushes;
    uint64_t d_blocks = st.batch_blocks_flushed - st0.batch_blocks_flushed;
    uint64_t d_ranges = st.batch_ranges_flushed - st0.batch_ranges_flushed;
    uint64_t d_munmap = st.munmap_calls - st0.munmap_calls, d_mmap = st.mmap_calls - st0.mmap_calls;

    printf("seed: %" PRIu64 " alloc/free pairs (%d rounds of %d x 2 MiB), mode=%s ring_cap=%" PRIu64
           " batch_threshold=%" PRIu64 "\n",
           ops / 2, ROUNDS, PER_ROUND, mode == UINT32_MAX ? "?" : hak_mode_name(mode), ring_cap, threshold);
    printf("seed: large_allocs=%" PRIu64 " cache_hits=%" PRIu64 " cache_misses=%" PRIu64 " cache_puts=%" PRIu64
           " evictions=%" PRIu64 "\n",
           d_allocs, d_hits, st.cache_misses - st0.cache_misses, st.cache_puts - st0.cache_puts,
           st.evictions - st0.evictions);
    printf("seed: batch_adds=%" PRIu64 " batch_flushes=%" PRIu64 " batch_blocks_flushed=%" PRIu64
           " batch_ranges_flushed=%" PRIu64 " munmap_calls=%" PRIu64 " mmap_calls=%" PRIu64 " madvise_calls=%" PRIu64 "\n",
           d_adds, d_flushes, d_blocks, d_ranges, d_munmap, d_mmap, st.madvise_calls - st0.madvise_calls);
    printf("seed: neighbour blocks seen=%" PRIu64 ", blocks per munmap=%.2f, bytes_cached=%" PRIu64
           " bytes_pending=%" PRIu64 " peak_bytes_mapped=%" PRIu64 "\n",
           neighbours, d_munmap ? (double)d_blocks / (double)d_munmap : 0.0, st.bytes_cached, st.bytes_pending,
           st.peak_bytes_mapped);

    EXPECT(d_allocs == ROUNDS * PER_ROUND, "hakmem served %" PRIu64 " of the %d 2 MiB allocations\n", d_allocs,
           ROUNDS * PER_ROUND);
    EXPECT(d_adds > 0, "no block was added to Batch\n");
    EXPECT(d_flushes > 0, "Batch never flushed\n");
    EXPECT(d_munmap <= d_ranges, "%" PRIu64 " munmap calls for %" PRIu64 " flushed ranges: a munmap outside Batch\n",
           d_munmap, d_ranges);
    EXPECT(d_ranges <= d_blocks, "more ranges (%" PRIu64 ") than blocks (%" PRIu64 ")\n", d_ranges, d_blocks);
    if (neighbours > 0)
        EXPECT(d_munmap < d_blocks,
               "adjacent blocks were released but never coalesced: %" PRIu64 " munmaps for %" PRIu64 " blocks\n",
               d_munmap, d_blocks);
    if (mode == HAK_MODE_FIXED && ring_cap == 4 && threshold == ((uint64_t)4 << 20)) {
        /* round 1 misses 10; every later round hits the 4 warm blocks; every free
         * beyond the 4 kept is an eviction; 6 x 2 MiB per round = 3 flushes of 4 MiB */
        EXPECT(d_hits == (ROUNDS - 1) * 4, "cache_hits %" PRIu64 ", expected %d\n", d_hits, (ROUNDS - 1) * 4);
        EXPECT(d_adds == ROUNDS * 6, "batch_adds %" PRIu64 ", expected %d\n", d_adds, ROUNDS * 6);
        EXPECT(d_blocks == d_adds, "%" PRIu64 " blocks added to Batch but %" PRIu64 " flushed\n", d_adds, d_blocks);
        EXPECT(d_flushes == ROUNDS * 3, "batch_flushes %" PRIu64 ", expected %d\n", d_flushes, ROUNDS * 3);
    }
    if (failures) {
        fprintf(stderr, "seed: %d check(s) failed\n", failures);
        return 1;
    }
    printf("seed: OK\n");
    return 0;
}
