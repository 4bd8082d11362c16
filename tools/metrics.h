/*
 * tools/metrics.h - what the tools call each figure of a hakmem segment, and
 * the Prometheus text exposition of a set of snapshots.
 *
 * ONE implementation, used by `hakmem-stat --prometheus` and by the
 * `hakmem-tuner --listen` HTTP endpoint (GET /metrics), so both print the same
 * metric names (documented in dashboards/README.md).  Counter and gauge names
 * come from the HAK_COUNTERS / HAK_GAUGES X-macros of include/hakmem/shm.h:
 * a counter added there appears here without touching this file.
 *
 * Naming (Prometheus conventions, `promtool check metrics` clean): base
 * units (seconds, bytes), _total on counters only and once: counter x ->
 * hakmem_x_total, x_ns -> hakmem_x_seconds_total, a "bytes" word moves last
 * (batch_bytes_flushed -> hakmem_batch_flushed_bytes_total, bytes_mapped_total
 * -> hakmem_mapped_bytes_total); gauge bytes_y / blocks_y -> hakmem_y_bytes /
 * hakmem_y_blocks; knobs hakmem_knob_*; eBPF kernel figures hakmem_kernel_*
 * (only when a probe publishes them); size classes hakmem_class_* with labels
 * class and size (THP: hakmem_class_thp_state{state=...}, one series per
 * state, 1 for the state in force); hakmem_build_info{version} 1.
 * Every per-process sample carries pid, comm and exe (basename of
 * /proc/PID/exe): comm and exe survive a restart, so a fleet's Prometheus can
 * aggregate by program.
 */
#ifndef HAKMEM_TOOLS_METRICS_H
#define HAKMEM_TOOLS_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hakmem/shm.h"

enum hak_metric_unit { HAK_MU_COUNT, HAK_MU_BYTES, HAK_MU_MS, HAK_MU_NS };

/* One uint64_t field of a segment struct: its plain/JSON name, where it is,
 * its unit, its Prometheus name and help. */
typedef struct hak_metric_field {
    const char *name;
    size_t off;
    int unit;                   /* enum hak_metric_unit */
    const char *prom;
    const char *help;
} hak_metric_field_t;

extern const hak_metric_field_t hak_metric_knobs[];    /* hak_shm_knobs_t */
extern const size_t hak_metric_nknobs;
extern const hak_metric_field_t hak_metric_kernel[];   /* hak_shm_kernel_t */
extern const size_t hak_metric_nkernel;
extern const hak_metric_field_t hak_metric_class[];    /* hak_shm_class_t */
extern const size_t hak_metric_nclass;

/* The uint64_t at byte offset off of base. */
uint64_t hak_metric_field_at(const void *base, size_t off);
/* 1 when a size class has any figure worth showing. */
int hak_metric_class_used(const hak_shm_class_t *c);
/* "ring_full" for HAK_EVICT_RING_FULL (the evict_* counter name without "evict_"). */
const char *hak_metric_evict_reason(int r);

/* The Prometheus name of counter k (enum hak_counter_id) into buf; NULL for an unknown k. */
const char *hak_metric_counter_prom(char *buf, size_t n, int k);

/* The Prometheus text exposition (format 0.0.4) of n snapshots, plus
 * hakmem_build_info, hakmem_stat_processes (n) and hakmem_stat_errors
 * (errors: segments that could not be read).  Reads /proc/PID/exe of each.  Writes to f; check ferror(f). */
void hak_metrics_write_prometheus(FILE *f, const hak_snapshot_t *const *snaps, size_t n, int errors);

#endif /* HAKMEM_TOOLS_METRICS_H */
