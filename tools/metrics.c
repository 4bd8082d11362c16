/*
 * tools/metrics.c - names of the segment's figures and the Prometheus text
 * exposition, shared by hakmem-stat --prometheus and hakmem-tuner --listen
 * (see metrics.h).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

// ---------------------------------------------------------------------------
// Tables derived from shm.h (names of counters/gauges come from its X-macros)
// ---------------------------------------------------------------------------
_Static_assert(HAK_C_evict_cap_lowered == HAK_C_evict_ring_full + HAK_EVICT_CAP_LOWERED &&
                   HAK_C_evict_budget == HAK_C_evict_ring_full + HAK_EVICT_BUDGET &&
                   HAK_C_evict_idle_trim == HAK_C_evict_ring_full + HAK_EVICT_IDLE_TRIM &&
                   HAK_C_evict_uncacheable == HAK_C_evict_ring_full + HAK_EVICT_UNCACHEABLE,
               "evict_* counters follow enum hak_evict_reason");

const char *hak_metric_evict_reason(int r) {
    const char *n = hak_counter_names[HAK_C_evict_ring_full + r];
    return strncmp(n, "evict_", 6) == 0 ? n + 6 : n;
}

#define KNOB(f, u, prom, help) {#f, offsetof(hak_shm_knobs_t, f), u, prom, help}
const hak_metric_field_t hak_metric_knobs[] = {
    KNOB(ring_cap, HAK_MU_COUNT, "hakmem_knob_ring_cap", "BIGCACHE_RING_CAP: warm blocks kept per size class"),
    KNOB(batch_threshold, HAK_MU_BYTES, "hakmem_knob_batch_threshold_bytes",
         "BATCH_THRESHOLD: pending bytes that make Batch flush"),
    KNOB(cache_max_bytes, HAK_MU_BYTES, "hakmem_knob_cache_max_bytes", "bytes all BigCache rings may hold"),
    KNOB(large_min, HAK_MU_BYTES, "hakmem_knob_large_min_bytes", "smallest request hakmem serves"),
    KNOB(thp, HAK_MU_COUNT, "hakmem_knob_thp", "THP mode in effect: 0 never, 1 madvise-aligned, 2 always"),
    KNOB(tune_interval_ms, HAK_MU_MS, "hakmem_knob_tune_interval_seconds", "tuner period"),
    KNOB(idle_ms, HAK_MU_MS, "hakmem_knob_idle_seconds", "inactivity after which caches are trimmed"),
};
const size_t hak_metric_nknobs = sizeof hak_metric_knobs / sizeof hak_metric_knobs[0];

#define KERN(f, u, prom, help) {#f, offsetof(hak_shm_kernel_t, f), u, prom, help}
const hak_metric_field_t hak_metric_kernel[] = {
    KERN(munmap_calls, HAK_MU_COUNT, "hakmem_kernel_munmap_calls_total", "munmap calls seen by the kernel probe"),
    KERN(munmap_bytes, HAK_MU_BYTES, "hakmem_kernel_munmap_bytes_total", "bytes released by those munmap calls"),
    KERN(munmap_ns_total, HAK_MU_NS, "hakmem_kernel_munmap_seconds_total", "time spent in munmap"),
    KERN(munmap_outside_flush, HAK_MU_COUNT, "hakmem_kernel_munmap_outside_flush_total",
         "munmaps of the process outside Batch flush windows"),
    KERN(madvise_calls, HAK_MU_COUNT, "hakmem_kernel_madvise_calls_total", "madvise calls seen by the kernel probe"),
    KERN(madvise_ns_total, HAK_MU_NS, "hakmem_kernel_madvise_seconds_total", "time spent in madvise"),
};
const size_t hak_metric_nkernel = sizeof hak_metric_kernel / sizeof hak_metric_kernel[0];

#define CLS(f, u, prom, help) {#f, offsetof(hak_shm_class_t, f), u, prom, help}
const hak_metric_field_t hak_metric_class[] = {
    CLS(hits, HAK_MU_COUNT, "hakmem_class_hits_total", "allocations of this class served from its ring"),
    CLS(misses, HAK_MU_COUNT, "hakmem_class_misses_total", "allocations of this class that mapped fresh memory"),
    CLS(puts, HAK_MU_COUNT, "hakmem_class_puts_total", "freed blocks of this class kept warm"),
    CLS(ghost_hits, HAK_MU_COUNT, "hakmem_class_ghost_hits_total", "misses a bigger ring would have hit"),
    CLS(cached_blocks, HAK_MU_COUNT, "hakmem_class_cached_blocks", "blocks in the ring now"),
    CLS(cap, HAK_MU_COUNT, "hakmem_class_cap", "effective ring cap of the class now"),
};
const size_t hak_metric_nclass = sizeof hak_metric_class / sizeof hak_metric_class[0];

uint64_t hak_metric_field_at(const void *base, size_t off) {
    uint64_t v;
    memcpy(&v, (const char *)base + off, sizeof v);
    return v;
}

int hak_metric_class_used(const hak_shm_class_t *c) {
    uint64_t ev = 0;
    for (int r = 0; r < HAK_EVICT_NREASONS; r++) ev |= c->evictions[r];
    return (c->hits | c->misses | c->puts | ev | c->cached_blocks | c->ghost_hits) != 0;
}

// ---------------------------------------------------------------------------
// Prometheus text exposition format
// ---------------------------------------------------------------------------
static void prom_label_value(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') fputs("\\\\", f);
        else if (*s == '"') fputs("\\\"", f);
        else if (*s == '\n') fputs("\\n", f);
        else fputc(*s, f);
    }
}

static void prom_family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {   /* HELP escapes \ and newline */
        if (*p == '\\') fputs("\\\\", f);
        else if (*p == '\n') fputs("\\n", f);
        else fputc(*p, f);
    }
    fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* name{pid="..",comm=".."[,extra]} value */
static void prom_sample(FILE *f, const char *name, const hak_snapshot_t *s, const char *extra, uint64_t v,
                        int unit) {
    fprintf(f, "%s{pid=\"%u\",comm=\"", name, s->pid);
    prom_label_value(f, s->comm);
    fprintf(f, "\"%s%s}", extra ? "," : "", extra ? extra : "");
    if (unit == HAK_MU_NS) fprintf(f, " %.9f\n", (double)v / 1e9);
    else if (unit == HAK_MU_MS) fprintf(f, " %.3f\n", (double)v / 1e3);
    else fprintf(f, " %" PRIu64 "\n", v);
}

/* hakmem_<counter>_total, or hakmem_<x>_seconds_total for a *_ns counter. */
static int prom_counter_name(char *buf, size_t n, const char *name) {
    size_t l = strlen(name);
    if (l > 3 && strcmp(name + l - 3, "_ns") == 0) {
        snprintf(buf, n, "hakmem_%.*s_seconds_total", (int)(l - 3), name);
        return HAK_MU_NS;
    }
    snprintf(buf, n, "hakmem_%s_total", name);
    return HAK_MU_COUNT;
}

/* bytes_cached -> hakmem_cached_bytes, blocks_live -> hakmem_live_blocks. */
static void prom_gauge_name(char *buf, size_t n, const char *name) {
    static const char *const units[] = {"bytes", "blocks"};
    for (size_t u = 0; u < 2; u++) {
        size_t l = strlen(units[u]);
        if (strncmp(name, units[u], l) == 0 && name[l] == '_') {
            snprintf(buf, n, "hakmem_%s_%s", name + l + 1, units[u]);
            return;
        }
    }
    snprintf(buf, n, "hakmem_%s", name);
}

void hak_metrics_write_prometheus(FILE *f, const hak_snapshot_t *const *snaps, size_t n, int errors) {
    char name[128], extra[160];
    prom_family(f, "hakmem_stat_processes", "gauge", "hakmem processes whose segment was read");
    fprintf(f, "hakmem_stat_processes %zu\n", n);
    prom_family(f, "hakmem_stat_errors", "gauge", "hakmem segments that could not be read");
    fprintf(f, "hakmem_stat_errors %d\n", errors);

    prom_family(f, "hakmem_info", "gauge", "hakmem process: mode and layout version (value 1)");
    for (size_t i = 0; i < n; i++) {
        snprintf(extra, sizeof extra, "mode=\"%s\",layout_version=\"%u\"", hak_mode_name(snaps[i]->mode),
                 HAK_SHM_VERSION);
        prom_sample(f, "hakmem_info", snaps[i], extra, 1, HAK_MU_COUNT);
    }
    prom_family(f, "hakmem_start_time_seconds", "gauge", "when the process created its segment (unix time)");
    for (size_t i = 0; i < n; i++) prom_sample(f, "hakmem_start_time_seconds", snaps[i], NULL, snaps[i]->start_ns, HAK_MU_NS);

    for (int k = 0; k < HAK_NCOUNTERS; k++) {
        int unit = prom_counter_name(name, sizeof name, hak_counter_names[k]);
        prom_family(f, name, "counter", hak_counter_help[k]);
        for (size_t i = 0; i < n; i++) prom_sample(f, name, snaps[i], NULL, snaps[i]->counter[k], unit);
    }
    for (int k = 0; k < HAK_NGAUGES; k++) {
        prom_gauge_name(name, sizeof name, hak_gauge_names[k]);
        prom_family(f, name, "gauge", hak_gauge_help[k]);
        for (size_t i = 0; i < n; i++) {
            int64_t g = snaps[i]->gauge[k];
            prom_sample(f, name, snaps[i], NULL, g > 0 ? (uint64_t)g : 0, HAK_MU_COUNT);
        }
    }
    prom_family(f, "hakmem_peak_mapped_bytes", "gauge", "high-water mark of hakmem_mapped_bytes");
    for (size_t i = 0; i < n; i++)
        prom_sample(f, "hakmem_peak_mapped_bytes", snaps[i], NULL, snaps[i]->peak_bytes_mapped, HAK_MU_COUNT);

    for (size_t k = 0; k < hak_metric_nknobs; k++) {
        prom_family(f, hak_metric_knobs[k].prom, "gauge", hak_metric_knobs[k].help);
        for (size_t i = 0; i < n; i++)
            prom_sample(f, hak_metric_knobs[k].prom, snaps[i], NULL, hak_metric_field_at(&snaps[i]->knobs, hak_metric_knobs[k].off),
                        hak_metric_knobs[k].unit);
    }

    prom_family(f, "hakmem_control_seq", "gauge", "control requests posted to the process (sequence number)");
    for (size_t i = 0; i < n; i++) prom_sample(f, "hakmem_control_seq", snaps[i], NULL, snaps[i]->control.seq, HAK_MU_COUNT);
    prom_family(f, "hakmem_control_applied_seq", "gauge", "last control request the process applied");
    for (size_t i = 0; i < n; i++)
        prom_sample(f, "hakmem_control_applied_seq", snaps[i], NULL, snaps[i]->control.applied_seq, HAK_MU_COUNT);
    prom_family(f, "hakmem_control_rejected_total", "counter", "control values the library had to clamp");
    for (size_t i = 0; i < n; i++)
        prom_sample(f, "hakmem_control_rejected_total", snaps[i], NULL, snaps[i]->control.rejected, HAK_MU_COUNT);
    prom_family(f, "hakmem_decisions_total", "counter", "tuner decisions logged in the segment");
    for (size_t i = 0; i < n; i++)
        prom_sample(f, "hakmem_decisions_total", snaps[i], NULL, snaps[i]->decision_head, HAK_MU_COUNT);

    int any_kernel = 0;
    for (size_t i = 0; i < n; i++) any_kernel |= snaps[i]->kernel.updated_ns != 0;
    for (size_t k = 0; any_kernel && k < hak_metric_nkernel; k++) {
        const char *type = strstr(hak_metric_kernel[k].prom, "_total") ? "counter" : "gauge";
        prom_family(f, hak_metric_kernel[k].prom, type, hak_metric_kernel[k].help);
        for (size_t i = 0; i < n; i++)
            if (snaps[i]->kernel.updated_ns != 0)
                prom_sample(f, hak_metric_kernel[k].prom, snaps[i], NULL, hak_metric_field_at(&snaps[i]->kernel, hak_metric_kernel[k].off),
                            hak_metric_kernel[k].unit);
    }

    for (size_t k = 0; k < hak_metric_nclass; k++) {
        const char *type = strstr(hak_metric_class[k].prom, "_total") ? "counter" : "gauge";
        prom_family(f, hak_metric_class[k].prom, type, hak_metric_class[k].help);
        for (size_t i = 0; i < n; i++)
            for (uint32_t c = 0; c < snaps[i]->nclasses; c++) {
                const hak_shm_class_t *cl = &snaps[i]->classes[c];
                if (!hak_metric_class_used(cl)) continue;
                snprintf(extra, sizeof extra, "class=\"%u\",size=\"%" PRIu64 "\"", c, cl->size);
                prom_sample(f, hak_metric_class[k].prom, snaps[i], extra, hak_metric_field_at(cl, hak_metric_class[k].off), HAK_MU_COUNT);
            }
    }
    prom_family(f, "hakmem_class_evictions_total", "counter", "blocks of this class handed to Batch, by reason");
    for (size_t i = 0; i < n; i++)
        for (uint32_t c = 0; c < snaps[i]->nclasses; c++) {
            const hak_shm_class_t *cl = &snaps[i]->classes[c];
            if (!hak_metric_class_used(cl)) continue;
            for (int r = 0; r < HAK_EVICT_NREASONS; r++) {
                snprintf(extra, sizeof extra, "class=\"%u\",size=\"%" PRIu64 "\",reason=\"%s\"", c, cl->size,
                         hak_metric_evict_reason(r));
                prom_sample(f, "hakmem_class_evictions_total", snaps[i], extra, cl->evictions[r], HAK_MU_COUNT);
            }
        }
}
