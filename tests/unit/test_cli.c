/* test_cli.c - the tools' shared command-line base (tools/cli.c): the JSON
 * string escaper and number writer, the pid / seconds / count parsers, the
 * positional [interval [count]], the exit-status mapping of reader errors.
 * cli.c is compiled into this test directly (it is a tool object, not part
 * of the core archive the unit tests link). */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../tools/cli.c"

static const char *js(const char *s) {
    static char buf[512];
    hak_json_string_buf(buf, sizeof buf, s);
    return buf;
}

static void test_json_string_plain_and_quotes(void **state) {
    (void)state;
    assert_string_equal(js(""), "\"\"");
    assert_string_equal(js("churn"), "\"churn\"");
    assert_string_equal(js("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
    assert_string_equal(js(NULL), "null");
}

static void test_json_string_control_and_del(void **state) {
    (void)state;
    assert_string_equal(js("a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
    assert_string_equal(js("\b\f"), "\"\\b\\f\"");
    assert_string_equal(js("\x01\x1f"), "\"\\u0001\\u001f\"");
    /* DEL is a control character too: the escaper that did not escape it
     * let a raw 0x7f through (valid JSON, but not what a log line wants) */
    assert_string_equal(js("x\x7fy"), "\"x\\u007fy\"");
    assert_string_equal(js(" ~"), "\" ~\"");   /* 0x20 and 0x7e are printable */
}

static void test_json_string_utf8(void **state) {
    (void)state;
    /* valid UTF-8 passes through unchanged: 2, 3 and 4-byte sequences */
    assert_string_equal(js("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* invalid bytes become U+FFFD, one per byte, and the text goes on */
    assert_string_equal(js("a\xff" "b"), "\"a\\ufffdb\"");
    assert_string_equal(js("\x80"), "\"\\ufffd\"");                      /* lone continuation */
    assert_string_equal(js("\xc0\xaf"), "\"\\ufffd\\ufffd\"");           /* overlong '/' */
    assert_string_equal(js("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\""); /* a surrogate */
    assert_string_equal(js("\xe2\x82"), "\"\\ufffd\\ufffd\"");           /* cut short by the end */
    assert_string_equal(js("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");   /* above U+10FFFF */
}

static void test_json_string_buffer_bounds(void **state) {
    (void)state;
    char small[6];
    size_t need = hak_json_string_buf(small, sizeof small, "abc\n");   /* -> "abc\n" in quotes: 7 chars */
    assert_int_equal(need, 7);
    assert_string_equal(small, "\"abc\\");                             /* truncated, NUL-terminated */
    /* the FILE writer takes strings longer than its stack buffer */
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[500] = '"';
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    hak_json_string(f, big);
    fclose(f);
    assert_int_equal(len, 999 + 2 + 1);
    assert_int_equal(out[0], '"');
    assert_memory_equal(out + 501, "\\\"", 2);
    assert_int_equal(out[len - 1], '"');
    free(out);
}

static const char *jnum_str(double v) {
    static char buf[64];
    hak_json_number_buf(buf, sizeof buf, v);
    return buf;
}

static void test_json_number(void **state) {
    (void)state;
    assert_string_equal(jnum_str(0), "0");
    assert_string_equal(jnum_str(-0.0), "0");
    assert_string_equal(jnum_str(42), "42");
    assert_string_equal(jnum_str(-7), "-7");
    assert_string_equal(jnum_str(1e15), "1000000000000000");                /* integers as integers, not 1e+15 */
    assert_string_equal(jnum_str(9007199254740991.0), "9007199254740991");  /* 2^53 - 1 */
    assert_string_equal(jnum_str(0.1), "0.1");                              /* shortest form, not 0.10000000000000001 */
    assert_string_equal(jnum_str(-2.5), "-2.5");
    assert_string_equal(jnum_str(NAN), "null");
    assert_string_equal(jnum_str(INFINITY), "null");
    assert_string_equal(jnum_str(-INFINITY), "null");
    /* every value reads back as the same double (%.6g gave 0.333333 and 1234570) */
    const double v[] = {1.0 / 3, 2.0 / 3, 1234567.891, 0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308,
                        123456.789012345678, 0.999999999999, 1e21, 3.0e16};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        const char *s = jnum_str(v[i]);
        assert_true(strtod(s, NULL) == v[i]);
        assert_null(strchr(s, ','));
    }
    assert_string_equal(jnum_str(1.0 / 3), "0.3333333333333333");
}

static void test_parse_pid(void **state) {
    (void)state;
    int p = -5;
    assert_int_equal(hak_cli_parse_pid("1", &p), 0);
    assert_int_equal(p, 1);
    assert_int_equal(hak_cli_parse_pid("4242", &p), 0);
    assert_int_equal(p, 4242);
    assert_int_equal(hak_cli_parse_pid("2147483647", &p), 0);
    assert_int_equal(p, 2147483647);
    p = 7;
    const char *bad[] = {"2147483648", "99999999999999999999", "0", "-1", "+1", " 1", "1 ", "1x", "", "01", "0x10", "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(hak_cli_parse_pid(bad[i], &p), -1);
    assert_int_equal(hak_cli_parse_pid(NULL, &p), -1);
    assert_int_equal(p, 7);   /* untouched on error */
}

static void test_parse_seconds(void **state) {
    (void)state;
    double v = -1;
    assert_int_equal(hak_cli_parse_seconds("2", 0, 60, &v), 0);
    assert_true(v == 2.0);
    assert_int_equal(hak_cli_parse_seconds("0.5", 0, 60, &v), 0);   /* hakmem-tuner --duration 0.5 was refused */
    assert_true(v == 0.5);
    assert_int_equal(hak_cli_parse_seconds(".25", 0, 60, &v), 0);
    assert_true(v == 0.25);
    assert_int_equal(hak_cli_parse_seconds("1e-2", 0, 60, &v), 0);
    assert_true(v == 0.01);
    assert_int_equal(hak_cli_parse_seconds("250ms", 0, 60, &v), 0);
    assert_true(v == 0.25);
    assert_int_equal(hak_cli_parse_seconds("3s", 0, 60, &v), 0);
    assert_true(v == 3.0);
    assert_int_equal(hak_cli_parse_seconds("0", 0, 60, &v), 0);
    assert_true(v == 0.0);
    v = 9;
    const char *bad[] = {"", "-1", "+1", " 1", "1 ", "0x10", "inf", "nan", "INF", "1min", "1e400", "ms", "s", "1ss", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(hak_cli_parse_seconds(bad[i], 0, 1e9, &v), -1);
    assert_int_equal(hak_cli_parse_seconds(NULL, 0, 1, &v), -1);
    /* bounds are inclusive */
    assert_int_equal(hak_cli_parse_seconds("0.01", 0.01, 60, &v), 0);
    assert_int_equal(hak_cli_parse_seconds("60", 0.01, 60, &v), 0);
    assert_int_equal(hak_cli_parse_seconds("0.009", 0.01, 60, &v), -1);
    assert_int_equal(hak_cli_parse_seconds("100", 0.01, 60, &v), -1);   /* the tuner's old "--interval 100" (ms) */
    assert_true(v == 60.0);
}

static void test_parse_count(void **state) {
    (void)state;
    long c = 0;
    assert_int_equal(hak_cli_parse_count("1", &c), 0);
    assert_int_equal(c, 1);
    assert_int_equal(hak_cli_parse_count("12345", &c), 0);
    assert_int_equal(c, 12345);
    const char *bad[] = {"0", "-3", "+3", "5x", "", " 5", "1.0", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(hak_cli_parse_count(bad[i], &c), -1);
    assert_int_equal(c, 12345);
}

static void test_interval_count(void **state) {
    (void)state;
    double iv = 1;
    long cnt = 0;
    int have = -1;
    char *none[] = {NULL};
    assert_int_equal(hak_cli_interval_count(none, 0, 0.05, 86400, &iv, &cnt, &have), 0);
    assert_int_equal(have, 0);
    assert_true(iv == 1.0);
    char *one[] = {"0.5"};
    assert_int_equal(hak_cli_interval_count(one, 1, 0.05, 86400, &iv, &cnt, &have), 0);
    assert_int_equal(have, 1);
    assert_true(iv == 0.5);
    char *two[] = {"2", "5"};
    assert_int_equal(hak_cli_interval_count(two, 2, 0.05, 86400, &iv, &cnt, &have), 0);
    assert_int_equal(have, 2);
    assert_true(iv == 2.0);
    assert_int_equal(cnt, 5);
    char *three[] = {"1", "2", "3"};
    assert_int_equal(hak_cli_interval_count(three, 3, 0.05, 86400, &iv, &cnt, &have), HAK_EXIT_USAGE);
    char *tiny[] = {"0.01"};
    assert_int_equal(hak_cli_interval_count(tiny, 1, 0.05, 86400, &iv, &cnt, &have), HAK_EXIT_USAGE);
    char *badcount[] = {"1", "0"};
    assert_int_equal(hak_cli_interval_count(badcount, 2, 0.05, 86400, &iv, &cnt, &have), HAK_EXIT_USAGE);
}

static void test_exit_codes(void **state) {
    (void)state;
    /* the reader's errors map to distinct codes; no-process and no-hakmem differ */
    assert_int_equal(hak_cli_exit_of_shm(0), HAK_EXIT_OK);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_ESRCH), HAK_EXIT_NOPROC);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_ENOENT), HAK_EXIT_NOHAKMEM);
    assert_int_equal(hak_cli_exit_of_shm(HAK_SHM_ENOENT), HAK_EXIT_NOHAKMEM);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_EACCES), HAK_EXIT_PERM);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_EMAGIC), HAK_EXIT_NOTHAKMEM);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_EVERSION), HAK_EXIT_VERSION);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_ESHORT), HAK_EXIT_TRUNCATED);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_ECORRUPT), HAK_EXIT_CORRUPT);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_EBUSY), HAK_EXIT_BUSY);
    assert_int_equal(hak_cli_exit_of_shm(-HAK_SHM_EIO), HAK_EXIT_ERROR);
    /* the numbers users and scripts rely on (README's table) */
    assert_int_equal(HAK_EXIT_USAGE, 2);
    assert_int_equal(HAK_EXIT_NOPROC, 3);
    assert_int_equal(HAK_EXIT_NOHAKMEM, 4);
    assert_int_equal(HAK_EXIT_PERM, 5);
    assert_int_equal(HAK_EXIT_NODATA, 12);
    assert_int_equal(HAK_EXIT_UNSUPPORTED, 13);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_string_plain_and_quotes),
        cmocka_unit_test(test_json_string_control_and_del),
        cmocka_unit_test(test_json_string_utf8),
        cmocka_unit_test(test_json_string_buffer_bounds),
        cmocka_unit_test(test_json_number),
        cmocka_unit_test(test_parse_pid),
        cmocka_unit_test(test_parse_seconds),
        cmocka_unit_test(test_parse_count),
        cmocka_unit_test(test_interval_count),
        cmocka_unit_test(test_exit_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
