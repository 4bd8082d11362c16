/* test_units.c - tools/units.h: the one formatter of bytes, byte rates and
 * durations that hakmem-stat and hakmem-report share (a size class reads the
 * same in both; batch_flush_ns and --watch rates read in units). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../tools/units.h"

static void test_bytes(void **state) {
    (void)state;
    char b[32];
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 0), "0 B");
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 512), "512 B");
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 81920), "80 KiB");
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 1310720), "1.25 MiB");   /* a size class: 1.2 MiB before */
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 1572864), "1.5 MiB");
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 2097152), "2 MiB");
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 251838218), "240.17 MiB");
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 1073741824), "1 GiB");
    assert_string_equal(hak_fmt_bytes(b, sizeof b, 1048575), "1 MiB");      /* not "1024 KiB" */
    assert_string_equal(hak_fmt_bytes(b, sizeof b, -3145728), "-3 MiB");
}

static void test_rate(void **state) {
    (void)state;
    char b[32];
    assert_string_equal(hak_fmt_rate(b, sizeof b, 5237360.6), "4.99 MiB/s");   /* was 5237360.6/s */
    assert_string_equal(hak_fmt_rate(b, sizeof b, 0), "0 B/s");
    char small[6];
    hak_fmt_rate(small, sizeof small, 5237360.6);   /* truncated, still terminated */
    assert_true(small[5] == '\0' || small[sizeof small - 1] == '\0');
}

static void test_duration(void **state) {
    (void)state;
    char b[32];
    assert_string_equal(hak_fmt_duration(b, sizeof b, 0), "0 s");
    assert_string_equal(hak_fmt_duration(b, sizeof b, 850e-9), "850 ns");
    assert_string_equal(hak_fmt_duration(b, sizeof b, 106859e-9), "107 us");   /* batch_flush_ns 106859: was "0.000 s" */
    assert_string_equal(hak_fmt_duration(b, sizeof b, 2.26e-3), "2.26 ms");
    assert_string_equal(hak_fmt_duration(b, sizeof b, 1.5), "1.5 s");
    assert_string_equal(hak_fmt_duration(b, sizeof b, 90), "90 s");
    assert_string_equal(hak_fmt_duration(b, sizeof b, 150), "2.5 min");
    assert_string_equal(hak_fmt_duration(b, sizeof b, 3 * 3600.0), "3 h");
    assert_string_equal(hak_fmt_duration(b, sizeof b, 0.0 / 0.0), "-");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
