/* test_sizeclass.c - size classes: monotone, bounded waste, exact edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hak_internal.h"

static void test_edges(void **state) {
    (void)state;
    assert_int_equal(hak_size_class(1), 0);
    assert_int_equal(hak_size_class(64 << 10), 0);
    assert_int_equal(hak_size_class((64 << 10) + 1), 1);
    assert_int_equal(hak_class_size(0), 64 << 10);
    assert_int_equal(hak_class_size(1), 80 << 10);
    assert_int_equal(hak_class_size(4), 128 << 10);
    assert_int_equal(hak_class_size(5), 160 << 10);
    assert_int_equal(hak_size_class(2 << 20), hak_size_class((2 << 20) - 4096));
    assert_int_equal(hak_class_size(hak_size_class(2 << 20)), 2 << 20);
    assert_int_equal(hak_class_size(HAK_NCLASSES - 1), HAK_CLASS_MAX_SIZE);
    assert_int_equal(hak_size_class(HAK_CLASS_MAX_SIZE), HAK_NCLASSES - 1);
    assert_int_equal(hak_size_class(HAK_CLASS_MAX_SIZE + 1), HAK_CLASS_NONE);
}

static void test_every_class_roundtrips(void **state) {
    (void)state;
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) {
        size_t s = hak_class_size(c);
        assert_int_equal(hak_size_class(s), c);
        assert_true(s % 4096 == 0);
        if (c > 0) {
            assert_true(s > hak_class_size(c - 1));
            assert_int_equal(hak_size_class(hak_class_size(c - 1) + 1), c);
        }
    }
}

/* Every request gets a class >= it with waste below 25% of the request. */
static void test_waste_bound(void **state) {
    (void)state;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t n = (64 << 10) + (size_t)(x % (HAK_CLASS_MAX_SIZE - (64 << 10)));
        uint32_t c = hak_size_class(n);
        assert_true(c < HAK_NCLASSES);
        size_t s = hak_class_size(c);
        assert_true(s >= n);
        assert_true((double)(s - n) <= 0.25 * (double)n);
        if (c > 0) assert_true(hak_class_size(c - 1) < n);  /* smallest fitting class */
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_every_class_roundtrips),
        cmocka_unit_test(test_waste_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
