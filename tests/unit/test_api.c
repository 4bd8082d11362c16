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
#include <strings.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
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
    /* a bigger block lent to a smaller calloc: no earlier owner's byte shows
     * anywhere in its usable size */
    hak_trim();
    unsigned char *big = hak_alloc(110000);
    assert_non_null(big);
    memset(big, 'S', 110000);
    hak_free(big);
    unsigned char *lent = hak_calloc(1, 70000);
    assert_ptr_equal(lent, big);
    size_t usable = hak_usable_size(lent);
    assert_true(usable >= 110000);
    for (size_t i = 0; i < usable; i++)
        if (lent[i] != 0) fail_msg("byte %zu of %zu is 0x%02x after calloc(1, 70000)", i, usable, lent[i]);
    hak_free(lent);
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

/* Resident pages of [p, p+n) (mincore; a reserved or unmapped range has none). */
static size_t resident_pages(const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095, e = ((uintptr_t)p + n + 4095) & ~(uintptr_t)4095;
    size_t np = (e - a) / 4096, r = 0;
    unsigned char v[4096];
    for (size_t i = 0; i < np; i += sizeof v) {
        size_t k = np - i < sizeof v ? np - i : sizeof v;
        if (mincore((void *)(a + i * 4096), k * 4096, v) != 0) return 0;
        for (size_t j = 0; j < k; j++) r += v[j] & 1;
    }
    return r;
}

/* A realloc to half the mapping or less gives the rest back at once, in
 * place and without a copy (as glibc's mremap of an mmapped chunk): the
 * contents kept, the usable size and the gauges those of the new class, the
 * tail's pages gone; the shrunk block is cached and reused under its new
 * class.  A shrink to more than half keeps the block as it is. */
static void test_realloc_shrink_gives_back(void **state) {
    (void)state;
    const size_t big = (size_t)48 << 20, small = 100 << 10;
    unsigned char *p = hak_alloc(big);
    assert_non_null(p);
    memset(p, 0x6b, big);
    fill(p, small, 5);
    int64_t live0 = gauge(HAK_G_bytes_live), mapped0 = gauge(HAK_G_bytes_mapped);
    uint64_t dropped0 = cnt(HAK_C_mremap_dropped_bytes), cp0 = cnt(HAK_C_realloc_copy);
    size_t usable0 = hak_usable_size(p);

    /* more than half: nothing moves */
    assert_ptr_equal(hak_realloc(p, (size_t)30 << 20), p);
    assert_int_equal(hak_usable_size(p), usable0);
    assert_int_equal(cnt(HAK_C_mremap_dropped_bytes), dropped0);

    unsigned char *q = hak_realloc(p, small);
    assert_ptr_equal(q, p);                                  /* in place */
    assert_int_equal(cnt(HAK_C_realloc_copy), cp0);          /* no copy */
    assert_true(check(q, small, 5));
    size_t usable = hak_usable_size(q);
    assert_int_equal(usable, hak_class_size(hak_size_class(small)));
    uint64_t dropped = cnt(HAK_C_mremap_dropped_bytes) - dropped0;
    assert_true(dropped >= big - ((size_t)2 << 20));         /* the mapping went down to the class's */
    assert_int_equal(gauge(HAK_G_bytes_mapped), mapped0 - (int64_t)dropped);
    assert_int_equal(gauge(HAK_G_bytes_live), live0 - (int64_t)(usable0 - usable));
    assert_int_equal(resident_pages(q + ((size_t)4 << 20), big - ((size_t)4 << 20)), 0);
    memset(q, 0x2e, usable);                                 /* all of the usable size is the program's */

    /* freed, it is a block of its new class: the next request of it hits */
    hak_free(q);
    uint64_t hits0 = cnt(HAK_C_cache_hits);
    unsigned char *r = hak_alloc(small);
    assert_ptr_equal(r, q);
    assert_int_equal(cnt(HAK_C_cache_hits), hits0 + 1);
    hak_free(r);
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

/* Whether blocks of 2 MiB and more get the huge-page treatment here, worked
 * out from the kernel's THP mode and HAKMEM_THP as the README states them,
 * not from the library: HAKMEM_THP=never: no; always: yes; auto (default):
 * when /sys/kernel/mm/transparent_hugepage/enabled is [always] or [madvise]. */
static bool thp_expected(void) {
    const char *opt = getenv("HAKMEM_THP");
    if (opt != NULL && strcasecmp(opt, "never") == 0) return false;
    if (opt != NULL && strcasecmp(opt, "always") == 0) return true;
    char buf[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f == NULL) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, "[always]") != NULL || strstr(buf, "[madvise]") != NULL;
}

/* With THP a block of 2 MiB and more whose class may take huge pages is 2
 * MiB-aligned in a mapping of a 2 MiB multiple; without, it starts in the
 * first page of a mapping of its class size and a page (colored; 5 MiB is no
 * 2 MiB multiple, so the two cases differ in what the registry holds). */
static void test_thp_alignment(void **state) {
    (void)state;
    bool thp = thp_expected();
    size_t sizes[] = {4u << 20, 5u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        hak_trim();                 /* a fresh mapping: no warm block of another class */
        void *p = hak_alloc(sizes[i]);
        assert_non_null(p);
        hak_block_t *b = hak_registry_lookup(p);
        assert_non_null(b);
        /* its page starts the mapping (without THP it may be colored) */
        assert_true(hak_page_down((uintptr_t)p) == b->map_base);
        if (thp && hak_thp_class_wants_huge(b->cls)) {
            assert_true(((uintptr_t)p & (HAK_PAGE - 1)) == 0);
            if (((uintptr_t)p & (HAK_HUGE_PAGE - 1)) != 0 || b->map_size % HAK_HUGE_PAGE != 0)
                fail_msg("THP expected: block %p of %zu bytes in a mapping of %zu bytes", p, sizes[i], b->map_size);
        } else if (sizes[i] % HAK_HUGE_PAGE != 0 && b->map_size % HAK_HUGE_PAGE == 0) {
            fail_msg("no THP expected, yet a %zu-byte block got a 2 MiB-multiple mapping (%zu bytes)", sizes[i],
                     b->map_size);
        }
        hak_free(p);
    }
}

/* mmap failure: NULL + ENOMEM, nothing leaked or counted as live.  With
 * nothing cached (a map failure with blocks held gives them back and tries
 * again: test_faults). */
static void test_mmap_failure(void **state) {
    (void)state;
    hak_trim();
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

/* Invalid frees: each abuse runs in a forked child and must abort it without
 * touching the cache.  The child checks that itself, where the abuse happens:
 * just before the bad call it writes a view of its counters, gauges and the
 * abused block's metadata into a pipe, and its SIGABRT handler (abort() runs
 * it before the process dies) writes a second view.  The parent compares the
 * two: only invalid_frees may move (by one), the block keeps its state and its
 * registry entry.  The handler only reads memory and calls write(). */
typedef struct abuse_view {
    uint64_t c[HAK_NCOUNTERS];
    int64_t  g[HAK_NGAUGES];
    uint32_t state;             /* the abused block's enum hak_block_state */
    uint32_t registered;        /* still found in the registry */
} abuse_view_t;

static int abuse_fd = -1;
static void *abuse_block;

static void abuse_take_view(abuse_view_t *v) {
    memset(v, 0, sizeof *v);
    hak_stats_sum(v->c, v->g);
    hak_block_t *b = hak_registry_lookup(abuse_block);
    v->registered = b != NULL;
    v->state = b ? atomic_load(&b->state) : UINT32_MAX;
}

static void abuse_write_view(void) {
    abuse_view_t v;
    abuse_take_view(&v);
    ssize_t n = write(abuse_fd, &v, sizeof v);
    (void)n;
}

static void on_abort(int sig) {
    (void)sig;
    abuse_write_view();        /* then abort() goes on and ends the child with SIGABRT */
}

/* Called by an abuse right before its invalid call on block p. */
static void abuse_begin(void *p) {
    abuse_block = p;
    abuse_write_view();
}

/* Run fn in a child; return the signal that ended it (0 if it exited) and
 * the child's views from before the abuse and from its abort handler.  A
 * child that stays silent for CHILD_TIMEOUT_MS is killed: the test fails
 * instead of hanging. */
#define CHILD_TIMEOUT_MS 20000
static int child_signal(void (*fn)(void), abuse_view_t *before, abuse_view_t *after, int *nviews) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        abuse_fd = fds[1];
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 2);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_abort;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGABRT, &sa, NULL);
        fn();
        _exit(0);
    }
    close(fds[1]);
    abuse_view_t *views[2] = {before, after};
    *nviews = 0;
    for (int i = 0; i < 2; i++) {
        size_t got = 0;
        while (got < sizeof(abuse_view_t)) {
            struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
            if (poll(&pfd, 1, CHILD_TIMEOUT_MS) != 1) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                close(fds[0]);
                fail_msg("the child did not report within %d ms (hung in fork or in the abuse)", CHILD_TIMEOUT_MS);
            }
            ssize_t n = read(fds[0], (char *)views[i] + got, sizeof(abuse_view_t) - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (got < sizeof(abuse_view_t)) break;
        (*nviews)++;
    }
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

static void double_free(void) {
    void *p = hak_alloc(1 << 20);
    hak_free(p);                               /* cached */
    abuse_begin(p);
    hak_free(p);
}
static void interior_free(void) {
    char *p = hak_alloc(1 << 20);
    /* 64 bytes in, or the block's page start (a colored block's bytes in
     * front of it are its own) when p + 64 is in the next 64 KiB chunk: only
     * the user pointer's chunk is registered (README, Known limitations), and
     * a color of up to 4032 bytes in a chunk's last page puts p there */
    char *q = p + 64;
    if (((uintptr_t)q ^ (uintptr_t)p) >> 16) q = (char *)hak_page_down((uintptr_t)p);
    abuse_begin(p);
    hak_free(q);
}
/* An interior pointer whose 16 bytes in front look like a glibc mmapped
 * chunk (prev_size 0, size one page | IS_MMAPPED, the chunk page-aligned):
 * handed to glibc's free, it would munmap a page out of the middle of the
 * hakmem block and return.  Only the registry knows the block is hakmem's. */
static void interior_free_forged(void) {
    char *p = hak_alloc(1 << 20);
    /* the next page, or the block's first one if that is in another 64 KiB
     * chunk (only the user pointer's chunk is registered) */
    uintptr_t pg = hak_page_down((uintptr_t)p) + 4096;
    if ((pg ^ (uintptr_t)p) >> 16) pg -= 4096;
    uint64_t *hdr = (uint64_t *)pg;
    hdr[0] = 0;                                 /* prev_size */
    hdr[1] = 4096 | 2;                          /* size | IS_MMAPPED */
    abuse_begin(p);
    hak_free((char *)hdr + 16);
}
static void realloc_freed(void) {
    void *p = hak_alloc(1 << 20);
    hak_free(p);                               /* cached */
    abuse_begin(p);
    (void)hak_realloc(p, 2 << 20);
}

/* The abuse aborted the child, and the child saw nothing change but the
 * invalid_frees counter (by one). */
static void expect_abort_untouched(const char *what, void (*fn)(void), uint32_t want_state) {
    abuse_view_t before, after;
    int nviews;
    int sig = child_signal(fn, &before, &after, &nviews);
    if (sig != SIGABRT) fail_msg("%s: the child ended with signal %d, not SIGABRT", what, sig);
    if (nviews != 2) fail_msg("%s: the child wrote %d views, not 2 (abort handler not reached)", what, nviews);
    assert_int_equal(before.state, want_state);
    if (after.c[HAK_C_invalid_frees] != before.c[HAK_C_invalid_frees] + 1)
        fail_msg("%s: hakmem did not report it (invalid_frees %llu -> %llu): something else aborted", what,
                 (unsigned long long)before.c[HAK_C_invalid_frees], (unsigned long long)after.c[HAK_C_invalid_frees]);
    for (int i = 0; i < HAK_NCOUNTERS; i++) {
        uint64_t want = before.c[i] + (i == HAK_C_invalid_frees);
        if (after.c[i] != want)
            fail_msg("%s: counter %s went %llu -> %llu during the abuse", what, hak_counter_names[i],
                     (unsigned long long)before.c[i], (unsigned long long)after.c[i]);
    }
    for (int i = 0; i < HAK_NGAUGES; i++)
        if (after.g[i] != before.g[i])
            fail_msg("%s: gauge %s went %lld -> %lld during the abuse", what, hak_gauge_names[i],
                     (long long)before.g[i], (long long)after.g[i]);
    if (!after.registered) fail_msg("%s: the block left the registry", what);
    if (after.state != before.state) fail_msg("%s: the block's state went %u -> %u", what, before.state, after.state);
}

static void test_invalid_frees_abort(void **state) {
    (void)state;
    expect_abort_untouched("double free", double_free, HAK_BLOCK_CACHED);
    expect_abort_untouched("interior free", interior_free, HAK_BLOCK_LIVE);
    expect_abort_untouched("interior free behind a forged glibc header", interior_free_forged, HAK_BLOCK_LIVE);
    expect_abort_untouched("realloc of a freed block", realloc_freed, HAK_BLOCK_CACHED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_free_basics),
        cmocka_unit_test(test_calloc_semantics),
        cmocka_unit_test(test_realloc_edges),
        cmocka_unit_test(test_realloc_no_copy),
        cmocka_unit_test(test_realloc_shrink_gives_back),
        cmocka_unit_test(test_memalign),
        cmocka_unit_test(test_thp_alignment),
        cmocka_unit_test(test_mmap_failure),
        cmocka_unit_test(test_invalid_frees_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
