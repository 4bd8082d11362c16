/* test_options.c - HAKMEM_* parsing: good values, bad values, clamping; the
 * environment is read with secure_getenv. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hak_internal.h"

static const char *const *env_pairs;   /* NAME, VALUE, NAME, VALUE, ..., NULL */

static const char *fake_env(const char *name) {
    for (size_t i = 0; env_pairs && env_pairs[i]; i += 2)
        if (strcmp(env_pairs[i], name) == 0) return env_pairs[i + 1];
    return NULL;
}

static void load(const char *const *pairs) {
    env_pairs = pairs;
    hak_options_load(fake_env);
}

/* This executable's secure_getenv takes the place of libc's for the core's
 * calls (the core is linked in statically).  While `secure_env` is set it
 * answers from env_pairs and counts the calls; otherwise it is libc's.  libc
 * itself and cmocka read their own variables through other entry points. */
static bool secure_env;
static int secure_calls;
char *secure_getenv(const char *name) {
    if (secure_env) {
        secure_calls++;
        return (char *)fake_env(name);
    }
    static char *(*real)(const char *);
    if (real == NULL) real = (char *(*)(const char *))dlsym(RTLD_NEXT, "secure_getenv");
    return real ? real(name) : NULL;
}

/* hak_option_given tells a value the environment set (even the default's)
 * from the default itself; an empty value is not set. */
static void test_given(void **state) {
    (void)state;
    load((const char *const[]){"HAKMEM_BATCH_THRESHOLD", "4M", "HAKMEM_RING_CAP", "", NULL});
    assert_true(hak_option_given("HAKMEM_BATCH_THRESHOLD"));
    assert_int_equal(hak_opt.batch_threshold, 4 << 20);
    assert_false(hak_option_given("HAKMEM_RING_CAP"));
    assert_false(hak_option_given("HAKMEM_MODE"));
    assert_false(hak_option_given("HAKMEM_NO_SUCH_OPTION"));
    load((const char *const[]){NULL});
    assert_false(hak_option_given("HAKMEM_BATCH_THRESHOLD"));
}

static void test_parse_size(void **state) {
    (void)state;
    uint64_t v;
    assert_int_equal(hak_parse_size("123", &v), 0); assert_int_equal(v, 123);
    assert_int_equal(hak_parse_size("64K", &v), 0); assert_int_equal(v, 64 << 10);
    assert_int_equal(hak_parse_size("4m", &v), 0); assert_int_equal(v, 4 << 20);
    assert_int_equal(hak_parse_size("1GiB", &v), 0); assert_int_equal(v, 1 << 30);
    assert_int_equal(hak_parse_size("2MB", &v), 0); assert_int_equal(v, 2 << 20);
    assert_int_equal(hak_parse_size(" 8k ", &v), 0); assert_int_equal(v, 8 << 10);
    assert_int_equal(hak_parse_size("", &v), -EINVAL);
    assert_int_equal(hak_parse_size("abc", &v), -EINVAL);
    assert_int_equal(hak_parse_size("12Q", &v), -EINVAL);
    assert_int_equal(hak_parse_size("-5", &v), -EINVAL);
    assert_int_equal(hak_parse_size("99999999999999999999999", &v), -ERANGE);
    assert_int_equal(hak_parse_size("99999999999999G", &v), -ERANGE);
}

static void test_defaults(void **state) {
    (void)state;
    load(NULL);
    assert_int_equal(hak_opt.mode, HAK_MODE_FIXED);
    assert_int_equal(hak_opt.ring_cap, 4);
    assert_int_equal(hak_opt.batch_threshold, 4 << 20);
    assert_int_equal(hak_opt.large_min, 64 << 10);
    assert_int_equal(hak_opt.stats, 1);
    assert_int_equal(hak_opt.thp, HAK_THP_AUTO);
    assert_string_equal(hak_opt.history, "");
}

static void test_good_values(void **state) {
    (void)state;
    static const char *const env[] = {
        "HAKMEM_MODE", "Evolving", "HAKMEM_RING_CAP", "120", "HAKMEM_BATCH_THRESHOLD", "16M",
        "HAKMEM_CACHE_MAX_BYTES", "512M", "HAKMEM_STATS", "off", "HAKMEM_THP", "never",
        "HAKMEM_HISTORY", "/tmp/h.db", "HAKMEM_LARGE_MIN", "128K", NULL};
    load(env);
    assert_int_equal(hak_opt.mode, HAK_MODE_EVOLVING);
    assert_int_equal(hak_opt.ring_cap, 120);
    assert_int_equal(hak_opt.batch_threshold, 16 << 20);
    assert_int_equal(hak_opt.cache_max_bytes, 512 << 20);
    assert_int_equal(hak_opt.stats, 0);
    assert_int_equal(hak_opt.thp, HAK_THP_NEVER);
    assert_int_equal(hak_opt.large_min, 128 << 10);
    assert_string_equal(hak_opt.history, "/tmp/h.db");
}

/* Bad syntax keeps the default; out of range clamps to the bound. */
static void test_bad_and_out_of_range(void **state) {
    (void)state;
    static const char *const env[] = {
        "HAKMEM_MODE", "turbo", "HAKMEM_RING_CAP", "many", "HAKMEM_BATCH_THRESHOLD", "1",
        "HAKMEM_LARGE_MIN", "4K", "HAKMEM_STATS", "maybe", NULL};
    load(env);
    assert_int_equal(hak_opt.mode, HAK_MODE_FIXED);
    assert_int_equal(hak_opt.ring_cap, 4);
    assert_int_equal(hak_opt.batch_threshold, HAK_BATCH_THRESHOLD_MIN);
    assert_int_equal(hak_opt.large_min, HAK_LARGE_MIN_MIN);
    assert_int_equal(hak_opt.stats, 1);
    static const char *const env2[] = {"HAKMEM_RING_CAP", "100000", "HAKMEM_RING_CAP_X", "1",
                                       "HAKMEM_BATCH_THRESHOLD", "64G", NULL};
    load(env2);
    assert_int_equal(hak_opt.ring_cap, HAK_RING_CAP_MAX);
    assert_int_equal(hak_opt.batch_threshold, HAK_BATCH_THRESHOLD_MAX);
    static const char *const env3[] = {"HAKMEM_RING_CAP", "12K", NULL};   /* counts take no suffix */
    load(env3);
    assert_int_equal(hak_opt.ring_cap, 4);
}

/* hak_options_load(NULL) reads every option with secure_getenv and never
 * with getenv: the real environment says one thing, secure_getenv another. */
static void test_default_getter_is_secure_getenv(void **state) {
    (void)state;
    size_t n;
    hak_option_table(&n);
    assert_int_equal(setenv("HAKMEM_RING_CAP", "9", 1), 0);
    assert_int_equal(setenv("HAKMEM_HISTORY", "/tmp/from-getenv.db", 1), 0);
    static const char *const env[] = {"HAKMEM_RING_CAP", "7", "HAKMEM_HISTORY", "/tmp/from-secure.db", NULL};
    env_pairs = env;
    secure_calls = 0;
    secure_env = true;
    hak_options_load(NULL);
    secure_env = false;
    assert_int_equal(secure_calls, (int)n);                 /* every option, once */
    assert_int_equal(hak_opt.ring_cap, 7);
    assert_string_equal(hak_opt.history, "/tmp/from-secure.db");
    /* As in an AT_SECURE (setuid) process: secure_getenv answers NULL, the
     * variables in environ are ignored, the defaults hold. */
    env_pairs = NULL;
    secure_env = true;
    hak_options_load(NULL);
    secure_env = false;
    assert_int_equal(hak_opt.ring_cap, 4);
    assert_string_equal(hak_opt.history, "");
    /* Outside such a process the real secure_getenv is getenv. */
    hak_options_load(NULL);
    assert_int_equal(hak_opt.ring_cap, 9);
    assert_string_equal(hak_opt.history, "/tmp/from-getenv.db");
    unsetenv("HAKMEM_RING_CAP");
    unsetenv("HAKMEM_HISTORY");
}

static void test_table_is_complete(void **state) {
    (void)state;
    size_t n;
    const hak_option_def_t *t = hak_option_table(&n);
    assert_true(n >= 10);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(t[i].name);
        assert_true(strncmp(t[i].name, "HAKMEM_", 7) == 0);
        assert_non_null(t[i].help);
        assert_true(t[i].offset < sizeof(hak_options_t));
        if (t[i].kind != HAK_OPT_STR) {
            assert_true(t[i].def >= t[i].min && t[i].def <= t[i].max);
        }
        for (size_t j = 0; j < i; j++) assert_string_not_equal(t[i].name, t[j].name);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_good_values),
        cmocka_unit_test(test_bad_and_out_of_range),
        cmocka_unit_test(test_default_getter_is_secure_getenv),
        cmocka_unit_test(test_table_is_complete),
        cmocka_unit_test(test_given),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
