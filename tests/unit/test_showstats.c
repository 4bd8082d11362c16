/* test_showstats.c - the printer of showstats.c: the summary's figures and
 * units from a made-up snapshot, JSON escaping and completeness, output pieces
 * that end at line boundaries, the HAKMEM_STATS_FILE pattern, hak_stats_print
 * on the live counters, and the JSON file written at exit (rename, no
 * temporary left). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_counters.h"

typedef struct sink {
    char *buf;
    size_t len, pieces;
    int bad_end;            /* pieces that did not end with '\n' */
} sink_t;

static void collect(void *arg, const char *text) {
    sink_t *s = arg;
    size_t n = strlen(text);
    s->buf = realloc(s->buf, s->len + n + 1);
    assert_non_null(s->buf);
    memcpy(s->buf + s->len, text, n + 1);
    s->len += n;
    s->pieces++;
    if (n == 0 || text[n - 1] != '\n') s->bad_end++;
}

static hak_snapshot_t *made_up(void) {
    hak_snapshot_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->mode = HAK_MODE_FIXED;
    s->nclasses = HAK_NCLASSES;
    s->start_ns = 1000000000ull;
    strcpy(s->comm, "job");
    s->counter[HAK_C_large_allocs] = 40;
    s->counter[HAK_C_large_frees] = 39;
    s->counter[HAK_C_cache_hits] = 30;
    s->counter[HAK_C_cache_misses] = 10;
    s->counter[HAK_C_evict_ring_full] = 5;
    s->counter[HAK_C_evict_budget] = 2;
    s->counter[HAK_C_batch_flushes] = 2;
    s->counter[HAK_C_batch_blocks_flushed] = 8;
    s->counter[HAK_C_munmap_calls] = 2;
    s->counter[HAK_C_batch_ranges_flushed] = 2;
    s->counter[HAK_C_batch_bytes_flushed] = 3u << 19;      /* 1.5 MiB */
    s->counter[HAK_C_batch_flush_ns] = 2500000;             /* 2.50 ms */
    s->gauge[HAK_G_bytes_mapped] = 3 << 20;
    s->gauge[HAK_G_bytes_cached] = 1 << 20;
    s->gauge[HAK_G_blocks_cached] = 4;
    s->peak_bytes_mapped = 8u << 20;
    s->knobs.ring_cap = 4;
    s->knobs.batch_threshold = 4u << 20;
    s->knobs.large_min = 64u << 10;
    s->classes[8].size = 256u << 10;
    s->classes[8].hits = 30;
    s->classes[8].misses = 10;
    s->classes[8].cap = 4;
    s->classes[9].size = 320u << 10;                         /* unused: not listed */
    return s;
}

static void test_summary_figures(void **state) {
    (void)state;
    hak_snapshot_t *s = made_up();
    sink_t out = {0};
    hak_showstats_format(s, 42, 3500000000ull, 0, collect, &out);
    assert_non_null(out.buf);
    assert_non_null(strstr(out.buf, "hakmem[42]: statistics of job (pid 42, mode fixed, 2.50 s)\n"));
    assert_non_null(strstr(out.buf, "large allocations 40, frees 39 (requests >= 64 KiB"));
    assert_non_null(strstr(out.buf, "cache hits 30, misses 10: hit rate 75.0%"));
    assert_non_null(strstr(out.buf, "evictions 7: ring full 5, cap lowered 0, budget 2,"));
    assert_non_null(strstr(out.buf, "batch flushes 2: blocks 8, ranges 2, 4.00 blocks per munmap, 1.50 MiB released in 2.50 ms"));
    assert_non_null(strstr(out.buf, "mapped now 3 MiB, peak 8 MiB, ever 0 B"));
    assert_non_null(strstr(out.buf, "cached now 1 MiB in 4 blocks"));
    assert_non_null(strstr(out.buf, "knobs: ring cap 4, batch threshold 4 MiB"));
    assert_non_null(strstr(out.buf, "      8    256 KiB         30         10"));
    assert_null(strstr(out.buf, "320 KiB"));
    assert_null(strstr(out.buf, "no size class was used"));
    assert_int_equal(out.bad_end, 0);
    /* every line carries the prefix */
    for (char *l = out.buf; *l; l = strchr(l, '\n') + 1) assert_int_equal(strncmp(l, "hakmem[42]: ", 12), 0);
    free(out.buf);
    /* nothing used at all */
    memset(s->classes, 0, sizeof s->classes);
    memset(s->counter, 0, sizeof s->counter);
    sink_t empty = {0};
    hak_showstats_format(s, 42, 0, 0, collect, &empty);
    assert_non_null(strstr(empty.buf, "hit rate 0.0%"));
    assert_non_null(strstr(empty.buf, "no size class was used"));
    free(empty.buf);
    free(s);
}

static void test_json(void **state) {
    (void)state;
    hak_snapshot_t *s = made_up();
    strcpy(s->comm, "a\"b\\c\x01");
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) {          /* every class used: more than one piece */
        s->classes[c].size = hak_class_size(c);
        s->classes[c].puts = c + 1;
    }
    sink_t out = {0};
    hak_showstats_format(s, 7, 0, HAK_STATS_PRINT_JSON, collect, &out);
    assert_true(out.len > 8192);
    assert_true(out.pieces > 1);
    assert_int_equal(out.bad_end, 0);
    assert_non_null(strstr(out.buf, "\"comm\": \"a\\\"b\\\\c\\u0001\""));
    assert_non_null(strstr(out.buf, "\"cache_hits\": 30,"));
    assert_non_null(strstr(out.buf, "\"hit_rate\": 0.750000"));
    assert_non_null(strstr(out.buf, "\"blocks_per_munmap\": 4.000000"));
    for (int k = 0; k < HAK_NCOUNTERS; k++) {
        char key[80];
        snprintf(key, sizeof key, "\"%s\": ", hak_counter_names[k]);
        assert_non_null(strstr(out.buf, key));
    }
    for (int k = 0; k < HAK_NGAUGES; k++) {
        char key[80];
        snprintf(key, sizeof key, "\"%s\": ", hak_gauge_names[k]);
        assert_non_null(strstr(out.buf, key));
    }
    int depth = 0, classes = 0;
    for (const char *p = out.buf; *p; p++) {
        if (*p == '\\') { p++; continue; }
        depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
        assert_true(depth >= 0);
    }
    assert_int_equal(depth, 0);
    for (const char *p = out.buf; (p = strstr(p, "{\"class\": ")) != NULL; p++) classes++;
    assert_int_equal(classes, HAK_NCLASSES);
    free(out.buf);
    free(s);
}

static void test_path(void **state) {
    (void)state;
    char b[32];
    assert_int_equal(hak_showstats_path("/t/s.%p.json", 1234, b, sizeof b), 0);
    assert_string_equal(b, "/t/s.1234.json");
    assert_int_equal(hak_showstats_path("100%%-%p%", 5, b, sizeof b), 0);
    assert_string_equal(b, "100%-5%");
    assert_int_equal(hak_showstats_path("plain", 5, b, sizeof b), 0);
    assert_string_equal(b, "plain");
    assert_int_equal(hak_showstats_path("0123456789012345678901234567%p", 123456, b, sizeof b), -ENAMETOOLONG);
}

static void test_print_live(void **state) {
    (void)state;
    void *p = hak_alloc(1 << 20);
    assert_non_null(p);
    hak_free(p);
    sink_t out = {0};
    assert_int_equal(hak_stats_print(collect, &out, HAK_STATS_PRINT_JSON), 0);
    char key[64];
    snprintf(key, sizeof key, "\"large_allocs\": %llu,", (unsigned long long)cnt(HAK_C_large_allocs));
    assert_non_null(strstr(out.buf, key));
    free(out.buf);
    assert_int_equal(hak_stats_print(collect, &out, 0x80), -EINVAL);
}

static void test_file_at_exit(void **state) {
    (void)state;
    char dir[] = "/tmp/test_showstats.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char want[128], pat[128];
    snprintf(pat, sizeof pat, "%s/s.%%p.json", dir);
    snprintf(want, sizeof want, "%s/s.%d.json", dir, (int)getpid());
    hak_free(hak_alloc(1 << 20));
    snprintf(hak_opt.stats_file, sizeof hak_opt.stats_file, "%s", pat);
    hak_showstats_at_exit();
    FILE *f = fopen(want, "r");
    assert_non_null(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"large_allocs\": "));
    assert_int_equal(buf[n - 2], '}');
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", want, (int)getpid());
    assert_int_equal(access(tmp, F_OK), -1);                 /* renamed, not left behind */
    unlink(want);
    /* an unwritable place: nothing created, the caller's errno kept */
    snprintf(hak_opt.stats_file, sizeof hak_opt.stats_file, "%s/no/such/dir/s.json", dir);
    errno = 1234;
    hak_showstats_at_exit();
    assert_int_equal(errno, 1234);
    hak_opt.stats_file[0] = '\0';
    assert_int_equal(rmdir(dir), 0);                         /* empty: no temporary anywhere */
}

/* hak_stats_t is generated from the X-macro lists: one field per counter and
 * gauge, each the value the slots sum to (this test is single-threaded). */
_Static_assert(sizeof(hak_stats_t) == (1 + HAK_NCOUNTERS + HAK_NGAUGES + 2) * sizeof(uint64_t),
               "hak_stats_t = size and version, every counter, every gauge, evictions, peak_bytes_mapped");
static void test_stats_struct(void **state) {
    (void)state;
    void *p[6];
    for (int i = 0; i < 6; i++) assert_non_null(p[i] = hak_alloc((size_t)(i + 1) << 18));
    for (int i = 0; i < 5; i++) hak_free(p[i]);
    hak_stats_t st;
    hak_stats_get(&st);
#define X_C(name, help) assert_int_equal(st.name, cnt(HAK_C_##name));
#define X_G(name, help) assert_int_equal(st.name, (uint64_t)gauge(HAK_G_##name));
    HAK_COUNTERS(X_C)
    HAK_GAUGES(X_G)
#undef X_C
#undef X_G
    assert_true(st.large_allocs >= 6 && st.blocks_live >= 1 && st.bytes_live >= (6u << 18));
    assert_int_equal(st.evictions, st.evict_ring_full + st.evict_cap_lowered + st.evict_budget + st.evict_idle_trim +
                                       st.evict_uncacheable);
    assert_true(st.peak_bytes_mapped >= st.bytes_mapped);
    assert_int_equal(st.size, sizeof st);
    assert_int_equal(st.version, HAK_STATS_VERSION);
    hak_free(p[5]);
}

/* The ABI-checked form: a caller whose hak_stats_t differs (another header)
 * gets -EINVAL and the library's size and version, and nothing past them is
 * written; the right size fills everything. */
static void test_stats_sized(void **state) {
    (void)state;
    unsigned char buf[sizeof(hak_stats_t) + 64];
    memset(buf, 0xee, sizeof buf);
    size_t old = sizeof(hak_stats_t) - 29 * sizeof(uint64_t);       /* a shorter, older layout */
    assert_int_equal(hak_stats_get_sized((hak_stats_t *)(void *)buf, old), -EINVAL);
    uint32_t hdr[2];
    memcpy(hdr, buf, sizeof hdr);
    assert_int_equal(hdr[0], sizeof(hak_stats_t));
    assert_int_equal(hdr[1], HAK_STATS_VERSION);
    for (size_t i = sizeof hdr; i < sizeof buf; i++) assert_int_equal(buf[i], 0xee);   /* no overrun */
    memset(buf, 0xee, sizeof buf);
    assert_int_equal(hak_stats_get_sized((hak_stats_t *)(void *)buf, 4), -EINVAL);      /* no room for the header */
    for (size_t i = 0; i < sizeof buf; i++) assert_int_equal(buf[i], 0xee);
    assert_int_equal(hak_stats_get_sized(NULL, sizeof(hak_stats_t)), -EFAULT);
    hak_stats_t st, ref;
    void *p = hak_alloc(1 << 20);
    assert_int_equal(hak_stats_get_sized(&st, sizeof st), 0);
    hak_stats_get(&ref);
    assert_int_equal(st.size, sizeof st);
    assert_int_equal(st.large_allocs, ref.large_allocs);
    assert_int_equal(st.blocks_live, ref.blocks_live);
    hak_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_figures), cmocka_unit_test(test_json), cmocka_unit_test(test_path),
        cmocka_unit_test(test_print_live), cmocka_unit_test(test_file_at_exit), cmocka_unit_test(test_stats_struct),
        cmocka_unit_test(test_stats_sized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
