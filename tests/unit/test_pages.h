/* test_pages.h - which pages of this process are resident, read from
 * /proc/self/pagemap (for the unit tests that check what the library keeps
 * in memory).  Include after cmocka.h. */
#ifndef HAKMEM_TEST_PAGES_H
#define HAKMEM_TEST_PAGES_H

#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

/* Pages of this process's page table present in [lo, hi) (/proc/self/pagemap bit 63). */
static inline int pages_present(const void *lo, const void *hi) {
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)lo + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), b = (uintptr_t)hi & ~((uintptr_t)pg - 1);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), n = 0;
    assert_true(fd >= 0);
    for (uintptr_t p = a; p < b; p += (uintptr_t)pg) {
        uint64_t e = 0;
        assert_int_equal(pread(fd, &e, sizeof e, (off_t)(p / (uintptr_t)pg * 8)), (ssize_t)sizeof e);
        n += (int)(e >> 63);
    }
    close(fd);
    return n;
}

#endif
