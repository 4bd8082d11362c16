/* test_faults.c - fault injection in the allocator core (native API, no preload).
 *   - mmap and mremap failures (hak_os_fail_next) on every allocating path:
 *     NULL + ENOMEM (posix_memalign: the code, errno kept), the old block
 *     intact, no trace in the gauges, no metadata leaked, and the allocator
 *     keeps working right after;
 *   - munmap failure (munmap interposed in this executable): counted in
 *     munmap_failures and reported on stderr once, never silent;
 *   - requested alignments hold whatever address the kernel picks (run under
 *     valgrind by tests/integration/sanitizers.sh, where mappings are never
 *     2 MiB-aligned by luck);
 *   - a large realloc never fails while memory is plentiful (mremap of a
 *     block whose mapping has a THP tail). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"

/* ---- munmap interposed: fail on request for one address ---- */
static _Atomic uintptr_t munmap_fail_addr;
static _Atomic uint64_t munmap_failed;
int munmap(void *addr, size_t len) {
    uintptr_t a = atomic_load(&munmap_fail_addr);
    if (a != 0 && (uintptr_t)addr <= a && a < (uintptr_t)addr + len) {
        atomic_fetch_add(&munmap_failed, 1);
        errno = EINVAL;
        return -1;
    }
    return (int)syscall(SYS_munmap, addr, len);
}

typedef struct {
    int64_t live, blocks, mapped, cached, pending;
} gsnap_t;
static gsnap_t gauges(void) {
    uint64_t c[HAK_NCOUNTERS];
    int64_t g[HAK_NGAUGES];
    hak_stats_sum(c, g);
    return (gsnap_t){g[HAK_G_bytes_live], g[HAK_G_blocks_live], g[HAK_G_bytes_mapped], g[HAK_G_bytes_cached],
                     g[HAK_G_bytes_pending]};
}
static void assert_gauges_equal(gsnap_t a, gsnap_t b) {
    assert_int_equal(a.live, b.live);
    assert_int_equal(a.blocks, b.blocks);
    assert_int_equal(a.mapped, b.mapped);
    assert_int_equal(a.cached, b.cached);
    assert_int_equal(a.pending, b.pending);
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

static int setup(void **state) {
    (void)state;
    atomic_store(&hak_os_fail_next, 0);
    hak_trim();            /* empty caches: every allocation below maps */
    return 0;
}

/* An injected mmap failure on each allocating entry point. */
static void test_mmap_failure_every_path(void **state) {
    (void)state;
    const size_t n = (size_t)23 << 20;     /* a class nothing else here uses: never a cache hit */
    gsnap_t g0 = gauges();
    uint64_t f0 = cnt(HAK_C_mmap_failures);

    atomic_store(&hak_os_fail_next, 1);
    errno = 0;
    assert_null(hak_alloc(n));
    assert_int_equal(errno, ENOMEM);

    atomic_store(&hak_os_fail_next, 1);
    errno = 0;
    assert_null(hak_calloc(n / 8, 8));
    assert_int_equal(errno, ENOMEM);

    void *out = (void *)0x1;
    atomic_store(&hak_os_fail_next, 1);
    errno = 4242;
    assert_int_equal(hak_memalign(&out, (size_t)1 << 16, n), ENOMEM);
    assert_ptr_equal(out, (void *)0x1);                    /* untouched */
    assert_int_equal(errno, 4242);                          /* posix_memalign keeps errno */

    /* small -> large realloc: the small block stays valid and unchanged */
    unsigned char *s = hak_alloc(5000);
    assert_non_null(s);
    memset(s, 0x3c, 5000);
    atomic_store(&hak_os_fail_next, 1);
    errno = 0;
    assert_null(hak_realloc(s, n));
    assert_int_equal(errno, ENOMEM);
    for (int i = 0; i < 5000; i++) assert_int_equal(s[i], 0x3c);
    hak_free(s);

    assert_int_equal(cnt(HAK_C_mmap_failures), f0 + 4);
    assert_int_equal(atomic_load(&hak_os_fail_next), 0);
    assert_gauges_equal(gauges(), g0);

    /* and the same calls work right after */
    void *p = hak_alloc(n);
    assert_non_null(p);
    assert_true(hak_owns(p));
    hak_free(p);
    assert_int_equal(hak_memalign(&out, (size_t)1 << 16, n), 0);
    hak_free(out);
}

/* mremap failure: realloc returns NULL, the block keeps its address, size and bytes. */
static void test_mremap_failure(void **state) {
    (void)state;
    size_t n = (size_t)1 << 20;
    unsigned char *p = hak_alloc(n);
    assert_non_null(p);
    fill(p, n, 9);
    size_t usable = hak_usable_size(p);
    gsnap_t g0 = gauges();
    uint64_t f0 = cnt(HAK_C_mmap_failures), m0 = cnt(HAK_C_realloc_mremap);
    atomic_store(&hak_os_fail_next, 1);
    errno = 0;
    assert_null(hak_realloc(p, (size_t)40 << 20));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cnt(HAK_C_mmap_failures), f0 + 1);
    assert_int_equal(cnt(HAK_C_realloc_mremap), m0);
    assert_true(hak_owns(p));
    assert_int_equal(hak_usable_size(p), usable);
    assert_true(intact(p, n, 9));
    assert_gauges_equal(gauges(), g0);
    /* the block still grows, frees and is reused normally */
    unsigned char *q = hak_realloc(p, (size_t)40 << 20);
    assert_non_null(q);
    assert_true(intact(q, n, 9));
    hak_free(q);
}

/* Several failures in a row, then success; thousands of failures leak nothing:
 * the metadata record a failed allocation took is the one the next one gets. */
static void test_failure_streak_leaks_nothing(void **state) {
    (void)state;
    const size_t n = (size_t)29 << 20;
    atomic_store(&hak_os_fail_next, 3);
    for (int i = 0; i < 3; i++) {
        errno = 0;
        assert_null(hak_alloc(n));
        assert_int_equal(errno, ENOMEM);
    }
    void *p = hak_alloc(n);
    assert_non_null(p);
    hak_block_t *rec = hak_registry_lookup(p);
    assert_non_null(rec);
    hak_free(p);
    hak_trim();                               /* the record goes back to the free list, on top */
    gsnap_t g0 = gauges();
    for (int i = 0; i < 20000; i++) {
        atomic_store(&hak_os_fail_next, 1);
        assert_null(hak_alloc(n + (size_t)(i % 7) * 4096));
    }
    assert_gauges_equal(gauges(), g0);
    p = hak_alloc(n);
    assert_non_null(p);
    assert_ptr_equal(hak_registry_lookup(p), rec);   /* no record was lost on the way */
    hak_free(p);
}

/* Out of memory while hakmem holds freed blocks: a failed map gives every
 * cached and pending block back and tries once more, for malloc and for
 * realloc's growth; with nothing held the failure stands (the tests above). */
static void test_enomem_gives_back_what_is_held(void **state) {
    (void)state;
    void *held[4];
    for (int i = 0; i < 4; i++) assert_non_null(held[i] = hak_alloc((size_t)6 << 20));
    for (int i = 0; i < 4; i++) hak_free(held[i]);
    assert_true(gauge(HAK_G_bytes_cached) + gauge(HAK_G_bytes_pending) > 0);
    uint64_t f0 = cnt(HAK_C_mmap_failures);
    atomic_store(&hak_os_fail_next, 1);
    unsigned char *p = hak_alloc((size_t)23 << 20);         /* a class nothing cached serves */
    assert_non_null(p);
    assert_int_equal(cnt(HAK_C_mmap_failures), f0 + 1);     /* it did fail once */
    assert_int_equal(gauge(HAK_G_bytes_cached), 0);
    assert_int_equal(gauge(HAK_G_bytes_pending), 0);
    fill(p, (size_t)1 << 20, 4);

    for (int i = 0; i < 4; i++) assert_non_null(held[i] = hak_alloc((size_t)6 << 20));
    for (int i = 0; i < 4; i++) hak_free(held[i]);
    atomic_store(&hak_os_fail_next, 1);
    unsigned char *q = hak_realloc(p, (size_t)200 << 20);   /* beyond every cached class: mremap */
    assert_non_null(q);
    assert_int_equal(cnt(HAK_C_mmap_failures), f0 + 2);
    assert_true(intact(q, (size_t)1 << 20, 4));
    assert_int_equal(gauge(HAK_G_bytes_cached), 0);
    hak_free(q);
}

/* A failed munmap is counted and reported once on stderr; later ones are counted. */
static void test_munmap_failure_reported(void **state) {
    (void)state;
    char path[] = "/tmp/hak_faults_stderr.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(hak_set_ring_cap(0), 0);               /* every free goes to Batch ... */
    assert_int_equal(hak_set_batch_threshold(HAK_BATCH_THRESHOLD_MIN), 0);   /* ... and flushes */
    uint64_t f0 = cnt(HAK_C_munmap_failures);
    int64_t mapped0 = gauge(HAK_G_bytes_mapped);
    unsigned char *keep[2];
    for (int k = 0; k < 2; k++) {
        /* 3 then 7 MiB: the pending 3 MiB block cannot be rescued for 7 MiB */
        unsigned char *p = hak_alloc((size_t)(k ? 7 : 3) << 20);
        assert_non_null(p);
        keep[k] = p;
        atomic_store(&munmap_fail_addr, (uintptr_t)p + 8192);
        dup2(fd, 2);
        hak_free(p);
        dup2(saved, 2);
        atomic_store(&munmap_fail_addr, 0);
    }
    assert_int_equal(atomic_load(&munmap_failed), 2);
    assert_int_equal(cnt(HAK_C_munmap_failures), f0 + 2);
    char buf[2048];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    close(fd);
    close(saved);
    const char *first = strstr(buf, "munmap(");
    assert_non_null(first);                                 /* reported ... */
    assert_non_null(strstr(buf, "munmap_failures"));       /* ... naming the counter */
    assert_null(strstr(first + 1, "munmap("));             /* once */
    /* Batch's failure path: a range whose munmap failed stays mapped, so its
     * block stays pending (metadata kept, still counted as mapped), not
     * "released"; the second flush retried keep[0] (released unless it was
     * coalesced into keep[1]'s failing range), keep[1] is still waiting. */
    hak_block_t *b = hak_registry_lookup(keep[1]);
    assert_non_null(b);
    assert_int_equal(atomic_load(&b->state), HAK_BLOCK_PENDING);
    b = hak_registry_lookup(keep[0]);
    assert_int_equal(gauge(HAK_G_blocks_pending), b ? 2 : 1);
    assert_true(gauge(HAK_G_bytes_mapped) >= mapped0 + (int64_t)((size_t)3 << 20));
    keep[1][4096] = 7;                                      /* still mapped: writable */
    /* the next flush (no failure now) releases it through Batch */
    uint64_t mc0 = cnt(HAK_C_munmap_calls);
    hak_flush();
    assert_true(cnt(HAK_C_munmap_calls) > mc0);
    assert_null(hak_registry_lookup(keep[1]));
    assert_int_equal(gauge(HAK_G_blocks_pending), 0);
    assert_true(gauge(HAK_G_bytes_mapped) <= mapped0);
    /* the allocator keeps working */
    void *p = hak_alloc((size_t)3 << 20);
    assert_non_null(p);
    memset(p, 1, (size_t)3 << 20);
    hak_free(p);
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold((uint64_t)4 << 20), 0);
}

/* Every requested alignment holds, wherever the kernel placed the mapping. */
static void test_memalign_alignment(void **state) {
    (void)state;
    const size_t aligns[] = {(size_t)1 << 13, (size_t)1 << 16, (size_t)1 << 20, (size_t)2 << 20, (size_t)4 << 20,
                             (size_t)8 << 20};
    const size_t sizes[] = {(size_t)100 << 10, (size_t)2 << 20, (size_t)3 << 20, (size_t)5 << 20, (size_t)9 << 20};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++)
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
            void *p = NULL;
            assert_int_equal(hak_memalign(&p, aligns[i], sizes[j]), 0);
            if (((uintptr_t)p & (aligns[i] - 1)) != 0)
                fail_msg("memalign(%zu, %zu) = %p: not aligned", aligns[i], sizes[j], p);
            assert_true(hak_usable_size(p) >= sizes[j]);
            memset(p, 0x11, sizes[j]);
            hak_free(p);
        }
}

/* Growing any large block succeeds while memory is plentiful: the mremap of a
 * block whose class is not a multiple of 2 MiB (a THP mapping with a tail) too. */
static void test_realloc_grow_never_spurious(void **state) {
    (void)state;
    for (uint32_t c = hak_size_class(HAK_HUGE_PAGE) - 4; c <= hak_size_class((size_t)16 << 20); c++) {
        size_t n = hak_class_size(c);
        unsigned char *p = hak_alloc(n);
        assert_non_null(p);
        fill(p, n, c);
        errno = 0;
        unsigned char *q = hak_realloc(p, (size_t)48 << 20);
        if (q == NULL)
            fail_msg("realloc of a %zu-byte block to 48 MiB failed: %s (mmap_failures %llu)", n, strerror(errno),
                     (unsigned long long)cnt(HAK_C_mmap_failures));
        assert_true(intact(q, n, c));
        hak_free(q);
    }
}

/* realloc that mremap moved: a registry insert that fails (no radix leaf
 * can be mapped) must not lose the block.  The pages move back, realloc
 * fails with ENOMEM, and the old pointer is still a live hakmem block. */
static void test_realloc_move_registry_failure(void **state) {
    (void)state;
    assert_int_equal(hak_set_ring_cap(0), 0);
    unsigned char *p = hak_alloc((size_t)1 << 20);
    unsigned char *wall = hak_alloc((size_t)1 << 20);      /* likely right below or above p */
    assert_non_null(p);
    assert_non_null(wall);
    memset(p, 0x77, (size_t)1 << 20);
    /* grow far beyond what fits in place: mremap must move it */
    atomic_store(&hak_registry_fail_next, 1);
    errno = 0;
    unsigned char *q = hak_realloc(p, (size_t)64 << 20);
    int moved_failed = q == NULL;
    atomic_store(&hak_registry_fail_next, 0);
    if (!moved_failed) {
        /* it grew in place (no move, no insert): nothing to check here */
        assert_ptr_equal(q, p);
        hak_free(q);
        hak_free(wall);
        skip();
    }
    assert_int_equal(errno, ENOMEM);
    hak_block_t *b = hak_registry_lookup(p);
    assert_non_null(b);                                    /* still ours */
    assert_int_equal(atomic_load(&b->state), HAK_BLOCK_LIVE);
    assert_int_equal(hak_usable_size(p), (size_t)1 << 20);
    assert_int_equal(p[(1 << 20) - 1], 0x77);              /* contents moved back */
    hak_free(p);                                           /* a hakmem free, not glibc's */
    hak_free(wall);
    assert_int_equal(hak_set_ring_cap(4), 0);
}

/* Moving pages back after that failure claims the old place first: when
 * another mapping took it in the meantime (another thread's mmap, between
 * the move and the move back), that mapping is left whole and the move back
 * fails; when the place is a hole, the pages go back there. */
static void test_remap_back_spares_a_foreign_mapping(void **state) {
    (void)state;
    const size_t len = (size_t)1 << 20;
    unsigned char *blk = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(blk != MAP_FAILED);
    memset(blk, 0x31, 2 * len);                                /* the "moved" block, grown to 2 MiB */
    unsigned char *old = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(old != MAP_FAILED);
    memset(old, 0x42, len);                                    /* someone else's mapping on the old place */
    hak_op_begin();
    int rc = hak_os_remap_back((uintptr_t)blk, 2 * len, len, (uintptr_t)old, 0);
    hak_op_end();
    assert_int_equal(rc, -EEXIST);
    assert_int_equal(old[0], 0x42);                            /* not replaced */
    assert_int_equal(old[len - 1], 0x42);
    assert_int_equal(blk[2 * len - 1], 0x31);                  /* the block stays where it was */
    assert_int_equal(munmap(old, len), 0);                     /* now the old place is a hole */
    hak_op_begin();
    rc = hak_os_remap_back((uintptr_t)blk, 2 * len, len, (uintptr_t)old, 0);
    hak_op_end();
    assert_int_equal(rc, 0);
    assert_int_equal(old[0], 0x31);                            /* the pages came back, shrunk */
    assert_int_equal(old[len - 1], 0x31);
    assert_int_equal(munmap(old, len), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_mmap_failure_every_path, setup),
        cmocka_unit_test_setup(test_mremap_failure, setup),
        cmocka_unit_test_setup(test_failure_streak_leaks_nothing, setup),
        cmocka_unit_test_setup(test_enomem_gives_back_what_is_held, setup),
        cmocka_unit_test_setup(test_munmap_failure_reported, setup),
        cmocka_unit_test_setup(test_memalign_alignment, setup),
        cmocka_unit_test_setup(test_realloc_grow_never_spurious, setup),
        cmocka_unit_test_setup(test_realloc_move_registry_failure, setup),
        cmocka_unit_test_setup(test_remap_back_spares_a_foreign_mapping, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
