/* test_api.c - native API semantics (glibc/POSIX): errno, malloc(0), realloc
 * edge cases, calloc overflow and zeroing, memalign rules, realloc without
 * copying, mmap failure, invalid and double frees. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"


static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 512) p[i] = (unsigned char)(seed + i / 512);
    if (n) p[n - 1] = (unsigned char)seed;
}
static int check(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 512)
        if (p[i] != (unsigned char)(seed + i / 512)) return 0;
    return n == 0 || p[n - 1] == (unsigned char)seed;
}

static void test_malloc_free_basics(void **state) {
    (void)state;
    void *a = hak_alloc(0), *b = hak_alloc(0);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    hak_free(a);
    hak_free(b);
    hak_free(NULL);
    errno = 0;
    assert_null(hak_alloc(SIZE_MAX));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(hak_alloc((size_t)PTRDIFF_MAX + 1));
    assert_int_equal(errno, ENOMEM);
    void *big = hak_alloc(5 << 20);
    assert_non_null(big);
    assert_true(hak_usable_size(big) >= (5u << 20));
    assert_true(hak_usable_size(big) <= (5u << 20) * 5 / 4);
    hak_free(big);
    assert_int_equal(hak_usable_size(NULL), 0);
}

static void test_calloc_semantics(void **state) {
    (void)state;
    errno = 0;
    assert_null(hak_calloc(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    hak_trim();
    uint64_t skipped0 = cnt(HAK_C_calloc_zero_skipped);
    unsigned char *p = hak_calloc(1, 3 << 20);              /* fresh mapping: memset skipped */
    assert_non_null(p);
    assert_int_equal(cnt(HAK_C_calloc_zero_skipped), skipped0 + 1);
    for (size_t i = 0; i < (3u << 20); i += 4096) assert_int_equal(p[i], 0);
    memset(p, 0xab, 3 << 20);
    hak_free(p);
    unsigned char *q = hak_calloc(3 << 20, 1);              /* warm, dirty block: zeroed */
    assert_ptr_equal(q, p);
    for (size_t i = 0; i < (3u << 20); i += 997) assert_int_equal(q[i], 0);
    hak_free(q);
    unsigned char *s = hak_calloc(10, 10);                  /* small: glibc */
    for (int i = 0; i < 100; i++) assert_int_equal(s[i], 0);
    hak_free(s);
}

static void test_realloc_edges(void **state) {
    (void)state;
    unsigned char *p = hak_realloc(NULL, 100 << 10);        /* realloc(NULL, n) = malloc */
    assert_non_null(p);
    assert_true(hak_owns(p));
    assert_null(hak_realloc(p, 0));                         /* glibc: frees, returns NULL */
    assert_false(hak_owns(p));
    /* small -> large -> small keeps the contents */
    unsigned char *s = hak_alloc(1000);
    fill(s, 1000, 7);
    unsigned char *l = hak_realloc(s, 1 << 20);
    assert_non_null(l);
    assert_true(hak_owns(l));
    assert_true(check(l, 1000, 7));
    fill(l, 1 << 20, 9);
    unsigned char *s2 = hak_realloc(l, 3000);
    assert_non_null(s2);
    assert_false(hak_owns(s2));
    for (size_t i = 0; i < 3000; i += 512) assert_int_equal(s2[i], (unsigned char)(9 + i / 512));
    hak_free(s2);
    /* failure leaves the old block intact */
    unsigned char *k = hak_alloc(200 << 10);
    fill(k, 200 << 10, 3);
    errno = 0;
    assert_null(hak_realloc(k, SIZE_MAX - 4096));
    assert_int_equal(errno, ENOMEM);
    assert_true(check(k, 200 << 10, 3));
    hak_free(k);
}

/* Growing a large block never copies: in place or mremap. */
static void test_realloc_no_copy(void **state) {
    (void)state;
    uint64_t in0 = cnt(HAK_C_realloc_inplace), mr0 = cnt(HAK_C_realloc_mremap), cp0 = cnt(HAK_C_realloc_copy);
    size_t n = 64 << 10;
    unsigned char *p = hak_alloc(n);
    fill(p, n, 1);
    while (n < (32u << 20)) {
        size_t m = n * 2;
        p = hak_realloc(p, m);
        assert_non_null(p);
        assert_true(check(p, n, 1));
        fill(p, m, 1);
        n = m;
    }
    assert_int_equal(cnt(HAK_C_realloc_copy), cp0);
    assert_true(cnt(HAK_C_realloc_mremap) - mr0 >= 1);
    void *same = hak_realloc(p, n - 4096);                  /* shrink: in place */
    assert_ptr_equal(same, p);
    assert_true(cnt(HAK_C_realloc_inplace) - in0 >= 1);
    hak_free(p);
}

static void test_memalign(void **state) {
    (void)state;
    void *p = (void *)1;
    assert_int_equal(hak_memalign(&p, 3, 100), EINVAL);
    assert_int_equal(hak_memalign(&p, 0, 100), EINVAL);
    assert_int_equal(hak_memalign(&p, 4, 100), EINVAL);      /* not a multiple of sizeof(void *) */
    assert_ptr_equal(p, (void *)1);                          /* untouched on error */
    size_t aligns[] = {8, 64, 4096, 65536, 1 << 20, 4 << 20};
    size_t sizes[] = {10, 100 << 10, 3 << 20};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++)
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
            void *q = NULL;
            assert_int_equal(hak_memalign(&q, aligns[i], sizes[j]), 0);
            assert_non_null(q);
            assert_true(((uintptr_t)q & (aligns[i] - 1)) == 0);
            memset(q, 0x5a, sizes[j]);
            hak_free(q);
        }
    int saved = errno;
    assert_int_equal(hak_memalign(&p, 4096, SIZE_MAX - 8192), ENOMEM);
    assert_int_equal(errno, saved);                          /* posix_memalign keeps errno */
}

static void test_thp_alignment(void **state) {
    (void)state;
    void *p = hak_alloc(4 << 20);
    if (hak_os_thp_effective() != 0) assert_true(((uintptr_t)p & ((2u << 20) - 1)) == 0);
    else assert_true(((uintptr_t)p & 4095) == 0);
    hak_free(p);
}

/* mmap failure: NULL + ENOMEM, nothing leaked or counted as live. */
static void test_mmap_failure(void **state) {
    (void)state;
    int64_t live0 = gauge(HAK_G_bytes_live), mapped0 = gauge(HAK_G_bytes_mapped);
    uint64_t f0 = cnt(HAK_C_mmap_failures);
    atomic_store(&hak_os_fail_next, 1);
    errno = 0;
    assert_null(hak_alloc(77 << 20));                        /* uncached size: must map */
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cnt(HAK_C_mmap_failures), f0 + 1);
    assert_int_equal(gauge(HAK_G_bytes_live), live0);
    assert_int_equal(gauge(HAK_G_bytes_mapped), mapped0);
    /* mremap failure: realloc returns NULL, the block is intact */
    unsigned char *p = hak_alloc(1 << 20);
    fill(p, 1 << 20, 5);
    atomic_store(&hak_os_fail_next, 1);
    errno = 0;
    assert_null(hak_realloc(p, 40 << 20));
    assert_int_equal(errno, ENOMEM);
    assert_true(check(p, 1 << 20, 5));
    hak_free(p);
    assert_int_equal(atomic_load(&hak_os_fail_next), 0);
}

/* Run fn in a child; return the signal that ended it (0 if it exited). */
static int child_signal(void (*fn)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) dup2(devnull, 2);
        fn();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}
static void double_free(void) {
    void *p = hak_alloc(1 << 20);
    hak_free(p);
    hak_free(p);
}
static void interior_free(void) {
    char *p = hak_alloc(1 << 20);
    hak_free(p + 64);
}
static void realloc_freed(void) {
    void *p = hak_alloc(1 << 20);
    hak_free(p);
    (void)hak_realloc(p, 2 << 20);
}

static void test_invalid_frees_abort(void **state) {
    (void)state;
    assert_int_equal(child_signal(double_free), SIGABRT);
    assert_int_equal(child_signal(interior_free), SIGABRT);
    assert_int_equal(child_signal(realloc_freed), SIGABRT);
    /* and the cache of this process was not touched by any of it */
    void *p = hak_alloc(1 << 20);
    hak_free(p);
    assert_ptr_equal(hak_alloc(1 << 20), p);
    hak_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_free_basics),
        cmocka_unit_test(test_calloc_semantics),
        cmocka_unit_test(test_realloc_edges),
        cmocka_unit_test(test_realloc_no_copy),
        cmocka_unit_test(test_memalign),
        cmocka_unit_test(test_thp_alignment),
        cmocka_unit_test(test_mmap_failure),
        cmocka_unit_test(test_invalid_frees_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
