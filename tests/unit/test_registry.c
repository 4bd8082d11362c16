/* test_registry.c - exact ownership: only a block's start is "ours"; the bytes
 * around a pointer never influence the answer; metadata is out of band. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_pages.h"

static void test_exact_lookup(void **state) {
    (void)state;
    char *p = hak_alloc(1 << 20);
    assert_non_null(p);
    assert_true(((uintptr_t)p & (HAK_COLOR_ALIGN - 1)) == 0);  /* a cache line, maybe colored */
    hak_block_t *b = hak_registry_lookup(p);
    assert_non_null(b);
    assert_true(hak_page_down((uintptr_t)p) == b->map_base);   /* in its mapping's first page */
    if (hak_color_of((uintptr_t)p) != 0) {                      /* the bytes in front are the block's */
        assert_null(hak_registry_lookup((void *)hak_page_down((uintptr_t)p)));
        assert_ptr_equal(hak_registry_near((void *)hak_page_down((uintptr_t)p)), b);
        assert_ptr_equal(hak_registry_near(p - HAK_COLOR_ALIGN), b);
    }
    assert_ptr_equal((void *)atomic_load(&b->user), p);
    assert_true(hak_owns(p));
    assert_null(hak_registry_lookup(p + 1));
    assert_null(hak_registry_lookup(p + 4096));
    assert_null(hak_registry_lookup(p - 4096));
    assert_ptr_equal(hak_registry_near(p + 16), b);             /* interior pointer detected */
    /* metadata is out of band: the block's bytes can be anything */
    memset(p, 0xff, 1 << 20);
    assert_ptr_equal(hak_registry_lookup(p), b);
    assert_true(hak_usable_size(p) >= (1 << 20));
    hak_free(p);
    assert_false(hak_owns(p));                                  /* cached, no longer live */
}

/* A small glibc block, even one whose preceding bytes mimic anything, is never ours. */
static void test_foreign_pointers(void **state) {
    (void)state;
    for (int i = 0; i < 1000; i++) {
        size_t n = (size_t)(16 + i * 37);
        unsigned char *q = __libc_malloc(n);
        assert_non_null(q);
        assert_null(hak_registry_lookup(q));
        assert_false(hak_owns(q));
        __libc_free(q);
    }
    static char stack_like[128];
    assert_null(hak_registry_lookup(stack_like));
    assert_null(hak_registry_lookup((void *)(uintptr_t)1));
    assert_null(hak_registry_lookup((void *)~(uintptr_t)0));      /* beyond 47 bits */
}

/* Many live blocks: every start maps to its own metadata. */
/* free()'s first test: below the lowest user pointer any block has had, no
 * block can be; the bound falls with every insert below it, and no address of
 * a live block is ever under it. */
static void test_low_bound(void **state) {
    (void)state;
    char *p = hak_alloc(3 << 20);
    assert_non_null(p);
    assert_false(hak_registry_below_all(p));
    assert_false(hak_registry_below_all(p + (3 << 20) - 1));
    uintptr_t lo = atomic_load(&hak_registry_lo);
    assert_true(lo <= (uintptr_t)p);
    /* a block registered lower (no memory needed: the registry keeps addresses) */
    hak_block_t *b = hak_block_new();
    assert_non_null(b);
    uintptr_t u = (lo - ((uintptr_t)64 << 20)) & ~(((uintptr_t)64 << 10) - 1);
    atomic_store(&b->user, u);
    b->size = (size_t)1 << 20;
    assert_true(hak_registry_below_all((void *)u));
    assert_int_equal(hak_registry_insert(b), 0);
    assert_int_equal(atomic_load(&hak_registry_lo), u);
    assert_false(hak_registry_below_all((void *)u));
    assert_true(hak_registry_below_all((void *)(u - 1)));
    assert_ptr_equal(hak_registry_lookup((void *)u), b);
    hak_registry_remove(b);
    hak_block_delete(b);
    assert_int_equal(atomic_load(&hak_registry_lo), u);      /* it never rises */
    hak_free(p);
}

static void test_many_blocks(void **state) {
    (void)state;
    enum { N = 300 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = hak_alloc((size_t)(64 << 10) * (size_t)(1 + i % 7));
        assert_non_null(v[i]);
    }
    for (int i = 0; i < N; i++) {
        hak_block_t *b = hak_registry_lookup(v[i]);
        assert_non_null(b);
        assert_ptr_equal((void *)atomic_load(&b->user), v[i]);
        for (int j = 0; j < i; j++) assert_true(v[i] != v[j]);
    }
    for (int i = 0; i < N; i++) hak_free(v[i]);
    hak_trim();
    for (int i = 0; i < N; i++) assert_false(hak_owns(v[i]));
}

/* The radix leaf page of a block's chunk comes in with the block; a trim
 * that leaves the page with no block gives it back, and the page serves
 * again (zeroed) when a block lands there later. */
static _Atomic(hak_block_t *) *leaf_slot(const void *p) {
    uintptr_t u = (uintptr_t)p;
    hak_leaf_t *leaf = atomic_load(&hak_registry_root[u >> (HAK_CHUNK_SHIFT + HAK_LEAF_BITS)]);
    assert_non_null(leaf);
    return &(*leaf)[(u >> HAK_CHUNK_SHIFT) & (((size_t)1 << HAK_LEAF_BITS) - 1)];
}

static void test_trim_gives_leaf_pages_back(void **state) {
    (void)state;
    hak_trim();                                       /* no block left from earlier tests */
    void *p = hak_alloc((size_t)1 << 20);
    assert_non_null(p);
    const char *page = (const char *)((uintptr_t)leaf_slot(p) & ~(uintptr_t)(HAK_PAGE - 1));
    assert_int_equal(pages_present(page, page + HAK_PAGE), 1);
    hak_trim();                                       /* p is live: its page stays */
    assert_int_equal(pages_present(page, page + HAK_PAGE), 1);
    assert_ptr_equal(hak_registry_lookup(p), leaf_slot(p)[0]);
    hak_free(p);
    hak_trim();
    /* before anything reads it (a read maps the kernel's zero page there,
     * which pagemap shows present though it is nobody's memory) */
    assert_int_equal(pages_present(page, page + HAK_PAGE), 0);
    assert_false(hak_owns(p));
    void *q = hak_alloc((size_t)1 << 20);            /* registered into a zeroed page */
    assert_non_null(q);
    assert_true(hak_owns(q));
    assert_non_null(hak_registry_lookup(q));
    hak_free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_lookup),
        cmocka_unit_test(test_foreign_pointers),
        cmocka_unit_test(test_low_bound),
        cmocka_unit_test(test_many_blocks),
        cmocka_unit_test(test_trim_gives_leaf_pages_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
