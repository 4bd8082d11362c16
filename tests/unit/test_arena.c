/* test_arena.c - the arenas' bookkeeping (arena.c: first-fit carves, gaps,
 * merging of given-back ranges) on a real reservation of this test's own, and
 * os.c's part: a vacated place is reserved again and reused, unless another
 * mapping took it meanwhile. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"

#define MiB ((size_t)1 << 20)
#define KiB ((size_t)1 << 10)

/* The test's arena: the first one of the process, made before any block. */
static uintptr_t base;

static int group_setup(void **state) {
    (void)state;
    assert_int_equal(hak_set_ring_cap(4), 0);       /* the library initialised: no block mapped yet */
    assert_int_equal(hak_arena_count(), 0);
    hak_opt.arena = 1;
    void *p = mmap(NULL, HAK_ARENA_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(p != MAP_FAILED);
    base = (uintptr_t)p;
    void *desc = mmap(NULL, HAK_ARENA_DESC, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(desc != MAP_FAILED);
    assert_true(hak_arena_add(base, HAK_ARENA_SIZE, desc));
    assert_int_equal(hak_arena_count(), 1);
    return 0;
}

/* First fit from the arena's start; alignment honoured; given back, the
 * pieces merge into one free range again. */
static void test_carve_first_fit_and_merge(void **state) {
    (void)state;
    size_t free0 = hak_arena_free_bytes();
    assert_int_equal(free0, HAK_ARENA_SIZE);
    uintptr_t a = hak_arena_carve(64 * KiB, HAK_PAGE);
    uintptr_t b = hak_arena_carve(4 * MiB, 2 * MiB);
    uintptr_t c = hak_arena_carve(128 * KiB, HAK_PAGE);
    assert_int_equal(a, base);
    assert_int_equal(b % (2 * MiB), 0);
    assert_true(b >= a + 64 * KiB && b < a + 64 * KiB + 2 * MiB);
    assert_int_equal(c, a + 64 * KiB);          /* the alignment gap before b is free: first fit takes it */
    assert_int_equal(hak_arena_free_bytes(), free0 - 64 * KiB - 4 * MiB - 128 * KiB);
    /* b leaves: the next carve of its size comes back to its place */
    hak_arena_give(b, b + 4 * MiB);
    assert_int_equal(hak_arena_carve(4 * MiB, 2 * MiB), b);
    hak_arena_give(b, b + 4 * MiB);
    hak_arena_give(a, a + 64 * KiB);
    hak_arena_give(c, c + 128 * KiB);
    assert_int_equal(hak_arena_free_bytes(), free0);
    /* merged again: one carve of the whole arena succeeds */
    assert_int_equal(hak_arena_carve(HAK_ARENA_SIZE, HAK_PAGE), base);
    assert_int_equal(hak_arena_carve(HAK_PAGE, HAK_PAGE), 0);    /* full, and no new arena here */
    hak_arena_give(base, base + HAK_ARENA_SIZE);
}

/* A gap can be claimed only when all of it is free and inside an arena. */
static void test_claim(void **state) {
    (void)state;
    uintptr_t a = hak_arena_carve(256 * KiB, HAK_PAGE), b = hak_arena_carve(256 * KiB, HAK_PAGE),
              c = hak_arena_carve(256 * KiB, HAK_PAGE);
    assert_int_equal(b, a + 256 * KiB);
    assert_int_equal(c, b + 256 * KiB);
    assert_false(hak_arena_claim(a + 256 * KiB, c));          /* b lies in it */
    hak_arena_give(b, b + 256 * KiB);
    assert_true(hak_arena_claim(b, c));                        /* free now */
    assert_false(hak_arena_claim(b, c));                       /* and taken */
    assert_true(hak_arena_claim(c, c));                        /* empty: nothing to cross */
    assert_false(hak_arena_claim(base - HAK_PAGE, base));      /* outside every arena */
    hak_arena_give(a, c + 256 * KiB);                          /* a, b and c back at once */
    assert_int_equal(hak_arena_free_bytes(), HAK_ARENA_SIZE);
    /* the parts of a range inside arenas */
    uintptr_t lo[2], hi[2];
    assert_int_equal(hak_arena_parts(base - MiB, base + MiB, lo, hi, 2), 1);
    assert_int_equal(lo[0], base);
    assert_int_equal(hi[0], base + MiB);
    assert_int_equal(hak_arena_parts(base - 2 * MiB, base - MiB, lo, hi, 2), 0);
}

/* os.c: a vacated place inside the arena is reserved again and free; one
 * that another mapping took meanwhile is left to it. */
static void test_vacated(void **state) {
    (void)state;
    size_t len = 512 * KiB;
    uintptr_t at = hak_arena_carve(len, HAK_PAGE);
    assert_int_equal(at, base);
    size_t free0 = hak_arena_free_bytes();
    /* as a block's release leaves it: unmapped, and another mapping there */
    assert_int_equal(munmap((void *)at, len), 0);
    void *other = mmap((void *)at, HAK_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                       -1, 0);
    assert_ptr_equal(other, (void *)at);
    memset(other, 0x77, HAK_PAGE);
    hak_op_begin();
    hak_os_vacated(at, len);
    hak_op_end();
    assert_int_equal(hak_arena_free_bytes(), free0);            /* not the arena's any more */
    assert_int_equal(((unsigned char *)other)[100], 0x77);      /* and untouched */
    assert_int_equal(munmap(other, HAK_PAGE), 0);
    /* the place empty: reserved again (inaccessible), free, carved again */
    hak_op_begin();
    hak_os_vacated(at, len);
    hak_op_end();
    assert_int_equal(hak_arena_free_bytes(), free0 + len);
    unsigned char vec;
    assert_int_equal(mincore((void *)at, HAK_PAGE, &vec), 0);  /* mapped (ENOMEM if not) */
    assert_int_equal(hak_arena_carve(len, HAK_PAGE), at);
    hak_arena_give(at, at + len);
}

/* Blocks come from the arena: a fresh block of hak_alloc is carved in it
 * (its free bytes go down by the mapping), and its release gives them back. */
static void test_blocks_in_arena(void **state) {
    (void)state;
    assert_int_equal(hak_set_ring_cap(0), 0);
    assert_int_equal(hak_set_batch_threshold(64 * KiB), 0);
    size_t free0 = hak_arena_free_bytes();
    unsigned char *p = hak_alloc(3 * MiB);
    assert_non_null(p);
    assert_true((uintptr_t)p >= base && (uintptr_t)p < base + HAK_ARENA_SIZE);
    assert_true(hak_arena_free_bytes() <= free0 - 3 * MiB);
    memset(p, 1, 3 * MiB);
    hak_free(p);
    hak_trim();                             /* out of the front cache, through Batch */
    assert_int_equal(hak_arena_free_bytes(), free0);
    /* with HAKMEM_ARENA=0 the kernel places it */
    hak_opt.arena = 0;
    p = hak_alloc(3 * MiB);
    assert_true((uintptr_t)p < base || (uintptr_t)p >= base + HAK_ARENA_SIZE);
    hak_free(p);
    hak_trim();
    hak_opt.arena = 1;
    assert_int_equal(hak_set_ring_cap(4), 0);
    assert_int_equal(hak_set_batch_threshold(4 * MiB), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_carve_first_fit_and_merge),
        cmocka_unit_test(test_claim),
        cmocka_unit_test(test_vacated),
        cmocka_unit_test(test_blocks_in_arena),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
