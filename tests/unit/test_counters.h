/* test_counters.h - this process's counters and gauges, summed over the
 * thread slots (for the unit tests that drive the core directly). */
#ifndef HAKMEM_TEST_COUNTERS_H
#define HAKMEM_TEST_COUNTERS_H

#include "hak_internal.h"

static inline uint64_t cnt(int id) {
    uint64_t c[HAK_NCOUNTERS];
    int64_t g[HAK_NGAUGES];
    hak_stats_sum(c, g);
    return c[id];
}

static inline int64_t gauge(int id) {
    uint64_t c[HAK_NCOUNTERS];
    int64_t g[HAK_NGAUGES];
    hak_stats_sum(c, g);
    return g[id];
}

#endif
