/* test_batch.c - Batch: threshold, coalescing of adjacent and non-adjacent
 * ranges, counters; and the rule "only Batch munmaps": the real munmap is
 * interposed here and counted per path. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"

/* Every munmap in this process (the library's os.c included) lands here. */
static _Atomic uint64_t real_munmaps;
int munmap(void *addr, size_t len) {
    atomic_fetch_add(&real_munmaps, 1);
    return (int)syscall(SYS_munmap, addr, len);
}


static int setup(void **state) {
    (void)state;
    hak_trim();
    assert_int_equal(hak_set_ring_cap(4), 0);
    return 0;
}

/* Pure coalescing: sorted output, neighbours merged, gaps kept. */
static void test_coalesce(void **state) {
    (void)state;
    hak_block_t b[6];
    memset(b, 0, sizeof b);
    uintptr_t base = 0x7f0000000000;
    size_t sz[6] = {0x10000, 0x20000, 0x10000, 0x40000, 0x10000, 0x10000};
    uintptr_t at[6] = {base + 0x30000, base, base + 0x20000, base + 0x100000, base + 0x40000, base + 0x200000};
    hak_block_t *v[6];
    for (int i = 0; i < 6; i++) {
        b[i].map_base = at[i];
        b[i].map_size = sz[i];
        v[i] = &b[i];
    }
    uintptr_t starts[6];
    size_t lens[6];
    size_t n = hak_batch_coalesce(v, 6, starts, lens);
    /* [base, base+0x50000) merged from 4 blocks; 0x100000 and 0x200000 alone */
    assert_int_equal(n, 3);
    assert_int_equal(starts[0], base);
    assert_int_equal(lens[0], 0x50000);
    assert_int_equal(starts[1], base + 0x100000);
    assert_int_equal(lens[1], 0x40000);
    assert_int_equal(starts[2], base + 0x200000);
    for (int i = 1; i < 6; i++) assert_true(v[i - 1]->map_base < v[i]->map_base);
}

/* Evictions only queue; munmap happens when the threshold is reached, in Batch. */
static void test_threshold_and_no_direct_munmap(void **state) {
    (void)state;
    assert_int_equal(hak_set_batch_threshold(8 << 20), 0);
    assert_int_equal(hak_set_ring_cap(0), 0);                 /* every free is an eviction */
    uint64_t u0 = atomic_load(&real_munmaps), f0 = cnt(HAK_C_batch_flushes), mc0 = cnt(HAK_C_munmap_calls);
    void *v[4];
    for (int i = 0; i < 4; i++) v[i] = hak_alloc(1 << 20);
    for (int i = 0; i < 4; i++) hak_free(v[i]);               /* 4 MiB pending < 8 MiB */
    assert_int_equal(atomic_load(&real_munmaps), u0);
    assert_int_equal(cnt(HAK_C_batch_flushes), f0);
    void *w[4];
    /* 2.5 MiB: no 1 MiB pending block can serve them (a rescue takes back
     * only blocks of the class or up to one doubling bigger) */
    for (int i = 0; i < 4; i++) w[i] = hak_alloc((size_t)5 << 19);
    for (int i = 0; i < 2; i++) hak_free(w[i]);               /* 4 + 5 MiB >= 8 MiB: one flush */
    assert_int_equal(cnt(HAK_C_batch_flushes), f0 + 1);
    for (int i = 2; i < 4; i++) hak_free(w[i]);               /* 5 MiB pending: no second flush */
    assert_int_equal(cnt(HAK_C_batch_flushes), f0 + 1);
    uint64_t munmaps = atomic_load(&real_munmaps) - u0;
    assert_true(munmaps >= 1);
    assert_int_equal(munmaps, cnt(HAK_C_munmap_calls) - mc0);
    hak_flush();
    assert_int_equal(hak_set_ring_cap(4), 0);
}

/* A miss takes a block back from Batch before its munmap: the same mapping,
 * no mmap, no munmap, its bytes still there; counted as warm_rescued. */
static void test_rescue_from_batch(void **state) {
    (void)state;
    hak_flush();
    assert_int_equal(hak_set_batch_threshold(64 << 20), 0);
    assert_int_equal(hak_set_ring_cap(0), 0);                 /* every free goes to Batch */
    unsigned char *p = hak_alloc(3 << 20);
    assert_non_null(p);
    memset(p, 0x5a, 3 << 20);
    hak_free(p);
    uint64_t mm0 = cnt(HAK_C_mmap_calls), r0 = cnt(HAK_C_warm_rescued), u0 = atomic_load(&real_munmaps);
    uint64_t miss0 = cnt(HAK_C_cache_misses);
    unsigned char *q = hak_alloc(3 << 20);
    assert_ptr_equal(q, p);                                   /* the pending block, taken back */
    assert_int_equal(cnt(HAK_C_mmap_calls), mm0);
    assert_int_equal(cnt(HAK_C_warm_rescued), r0 + 1);
    assert_int_equal(cnt(HAK_C_cache_misses), miss0 + 1);     /* its ring missed */
    assert_int_equal(atomic_load(&real_munmaps), u0);
    assert_int_equal(q[12345], 0x5a);                         /* warm: the program's bytes */
    assert_true(hak_owns(q));
    /* a smaller request takes a pending block up to one doubling bigger */
    hak_free(q);
    unsigned char *s = hak_alloc((size_t)2 << 20);
    assert_ptr_equal(s, p);
    assert_true(hak_usable_size(s) >= (size_t)3 << 20);
    hak_free(s);
    /* much smaller: not rescued (waste bound) */
    void *t = hak_alloc(256 << 10);
    assert_ptr_not_equal(t, p);
    hak_free(t);
    hak_flush();
    assert_true(atomic_load(&real_munmaps) > u0);
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold(4 << 20), 0);
}

/* Every path that drops blocks (ring full, cap lowered, budget, trim, oversize)
 * leaves the munmap count unchanged until Batch flushes, and then every real
 * munmap is one the library counted as a Batch range. */
static void test_only_batch_munmaps(void **state) {
    (void)state;
    assert_int_equal(hak_set_batch_threshold((uint64_t)1 << 30), 0);
    hak_flush();
    uint64_t u0 = atomic_load(&real_munmaps);
    uint64_t c0 = cnt(HAK_C_munmap_calls), r0 = cnt(HAK_C_batch_ranges_flushed);
    void *v[10];
    /* ring full */
    for (int i = 0; i < 10; i++) v[i] = hak_alloc(2 << 20);
    for (int i = 0; i < 10; i++) hak_free(v[i]);
    /* cap lowered */
    assert_int_equal(hak_set_ring_cap(1), 0);
    /* budget */
    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, 1 << 20), 0);
    for (int i = 0; i < 3; i++) v[i] = hak_alloc(4 << 20);
    for (int i = 0; i < 3; i++) hak_free(v[i]);
    /* oversize (no class) */
    void *big = hak_alloc((size_t)300 << 20);
    assert_non_null(big);
    hak_free(big);
    /* over-aligned */
    void *al = NULL;
    assert_int_equal(hak_memalign(&al, 1 << 20, 256 << 10), 0);
    assert_true(((uintptr_t)al & ((1 << 20) - 1)) == 0);
    hak_free(al);
    assert_int_equal(atomic_load(&real_munmaps), u0);          /* nothing released yet */
    assert_true(cnt(HAK_C_batch_adds) > 0);
    hak_trim();                                                 /* trim goes through Batch too */
    uint64_t real = atomic_load(&real_munmaps) - u0;
    assert_true(real > 0);
    assert_int_equal(real, cnt(HAK_C_munmap_calls) - c0);
    assert_int_equal(real, cnt(HAK_C_batch_ranges_flushed) - r0);
    assert_int_equal(cnt(HAK_C_evict_uncacheable) > 0, 1);
    assert_int_equal(hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, (uint64_t)1 << 30), 0);
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold(4 << 20), 0);
}

/* Adjacent mappings coalesce: fewer munmaps than blocks. */
static void test_adjacent_blocks_merge(void **state) {
    (void)state;
    assert_int_equal(hak_set_batch_threshold((uint64_t)1 << 30), 0);
    assert_int_equal(hak_set_ring_cap(0), 0);
    hak_flush();
    uint64_t u0 = atomic_load(&real_munmaps), b0 = cnt(HAK_C_batch_blocks_flushed);
    void *v[32];
    for (int i = 0; i < 32; i++) v[i] = hak_alloc(256 << 10);
    for (int i = 0; i < 32; i++) hak_free(v[i]);
    hak_flush();
    uint64_t real = atomic_load(&real_munmaps) - u0;
    assert_int_equal(cnt(HAK_C_batch_blocks_flushed) - b0, 32);
    assert_true(real >= 1);
    assert_true(real < 32);        /* the kernel hands out neighbouring mappings */
    print_message("32 blocks released with %llu munmap calls\n", (unsigned long long)real);
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold(4 << 20), 0);
}

/* Blocks carved from an arena and freed apart are released by one munmap:
 * the space between them that an earlier flush released is the arena's
 * again, and the munmap crosses it; a live block between two pending ones
 * keeps them apart.  The counters stay exact across it: bytes_mapped comes
 * back to where it was, and each munmap is one Batch range.  (With
 * HAKMEM_ARENA=0 the second flush takes two munmaps: the test fails.) */
static void test_arena_gap_crossed(void **state) {
    (void)state;
    uint64_t arena_opt = hak_opt.arena;
    hak_opt.arena = 1;                                      /* also under valgrind's HAKMEM_ARENA=0 */
    assert_int_equal(hak_set_batch_threshold((uint64_t)1 << 30), 0);
    assert_int_equal(hak_set_ring_cap(0), 0);
    hak_trim();
    int64_t mapped0 = gauge(HAK_G_bytes_mapped);
    void *v[4];
    uintptr_t at[4];
    for (int i = 0; i < 4; i++) {
        v[i] = hak_alloc(128 << 10);
        at[i] = hak_registry_lookup(v[i])->map_base;
    }
    for (int i = 1; i < 4; i++) assert_int_equal(at[i], at[i - 1] + (128 << 10));   /* first fit: neighbours */
    uint64_t u0 = atomic_load(&real_munmaps), r0 = cnt(HAK_C_batch_ranges_flushed), b0 = cnt(HAK_C_batch_blocks_flushed);
    hak_free(v[1]);
    hak_free(v[2]);
    hak_trim();                                             /* v[1], v[2]: one range, one munmap */
    assert_int_equal(atomic_load(&real_munmaps) - u0, 1);
    hak_free(v[0]);
    hak_free(v[3]);
    hak_trim();                                             /* v[0] .. v[3] over the gap they left: one */
    assert_int_equal(atomic_load(&real_munmaps) - u0, 2);
    assert_int_equal(cnt(HAK_C_batch_ranges_flushed) - r0, 2);
    assert_int_equal(cnt(HAK_C_batch_blocks_flushed) - b0, 4);
    assert_int_equal(gauge(HAK_G_bytes_mapped), mapped0);
    /* a live block between: two munmaps */
    for (int i = 0; i < 3; i++) {
        v[i] = hak_alloc(128 << 10);
        at[i] = hak_registry_lookup(v[i])->map_base;
    }
    assert_int_equal(at[2], at[0] + (256 << 10));
    u0 = atomic_load(&real_munmaps);
    hak_free(v[0]);
    hak_free(v[2]);
    hak_trim();
    assert_int_equal(atomic_load(&real_munmaps) - u0, 2);
    hak_free(v[1]);
    hak_trim();
    assert_int_equal(atomic_load(&real_munmaps) - u0, 3);
    assert_int_equal(gauge(HAK_G_bytes_mapped), mapped0);
    hak_opt.arena = arena_opt;
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold(4 << 20), 0);
}

/* munmap failure is counted and reported, never silent. */
static void test_munmap_failure_counted(void **state) {
    (void)state;
    assert_int_equal(hak_os_unmap(0x1001, 4096), -EINVAL);     /* unaligned: the kernel refuses */
    assert_true(cnt(HAK_C_munmap_failures) >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coalesce),
        cmocka_unit_test_setup(test_threshold_and_no_direct_munmap, setup),
        cmocka_unit_test_setup(test_rescue_from_batch, setup),
        cmocka_unit_test_setup(test_only_batch_munmaps, setup),
        cmocka_unit_test_setup(test_adjacent_blocks_merge, setup),
        cmocka_unit_test_setup(test_arena_gap_crossed, setup),
        cmocka_unit_test_setup(test_munmap_failure_counted, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
