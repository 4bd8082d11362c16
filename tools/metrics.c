/*
 * tools/metrics.c - names of the segment's figures and the Prometheus text
 * exposition, shared by hakmem-stat --prometheus and hakmem-tuner --listen
 * (see metrics.h).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"

#include "cli.h"
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
    KNOB(thp_huge_fault_ns, HAK_MU_NS, "hakmem_knob_thp_huge_fault_seconds",
         "recent cost of one 2 MiB huge-page fault (HAKMEM_THP=auto; 0 = not measured)"),
    KNOB(thp_small_fault_ns, HAK_MU_NS, "hakmem_knob_thp_small_fault_seconds",
         "recent cost of 512 faults of 4 KiB pages, the same 2 MiB (0 = not measured)"),
    KNOB(thp_by_cost, HAK_MU_COUNT, "hakmem_knob_thp_by_cost",
         "1 while fresh blocks of huge-page classes get 4 KiB pages because huge-page faults cost more"),
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
    CLS(ghosts, HAK_MU_COUNT, "hakmem_class_ghosts",
        "capacity evictions not yet matched by a miss: demand a bigger ring would serve now"),
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
static void prom_family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {   /* HELP escapes \ and newline */
        if (*p == '\\') fputs("\\\\", f);
        else if (*p == '\n') fputs("\\n", f);
        else fputc(*p, f);
    }
    fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* The labels that name a process: pid (this run), comm and exe (the basename
 * of /proc/PID/exe, "" when unreadable), which survive a restart so a fleet
 * can aggregate by program. */
typedef struct prom_proc {
    char labels[HAK_SHM_COMM_LEN * 2 + 2 * 256 + 64];   /* escaped comm and exe, pid */
} prom_proc_t;

/* A label value: backslash, quote and newline escaped; bytes that are not
 * UTF-8 (a process name is any bytes) become U+FFFD, as the exposition format
 * wants valid UTF-8 and one bad name must not void every process's metrics. */
static void label_escape(char *out, size_t n, const char *s) {
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && o + 4 < n) {
        size_t u;
        if (*p == '\\' || *p == '"') out[o++] = '\\', out[o++] = (char)*p++;
        else if (*p == '\n') out[o++] = '\\', out[o++] = 'n', p++;
        else if ((u = hak_cli_utf8_len(p)) > 0) {
            memcpy(out + o, p, u);
            o += u, p += u;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3, p++;
        }
    }
    out[o] = '\0';
}

static void prom_proc_labels(prom_proc_t *p, const hak_snapshot_t *s) {
    char link[64], exe[256] = "", comm[HAK_SHM_COMM_LEN * 2 + 1], exe_esc[2 * sizeof exe + 1];
    snprintf(link, sizeof link, "/proc/%u/exe", s->pid);
    ssize_t l = readlink(link, exe, sizeof exe - 1);
    exe[l > 0 ? l : 0] = '\0';
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    /* a deleted binary reads as "name (deleted)" */
    char *del = strstr(exe, " (deleted)");
    if (del && del[10] == '\0') *del = '\0';
    char comm_raw[HAK_SHM_COMM_LEN];
    memcpy(comm_raw, s->comm, sizeof comm_raw);
    comm_raw[sizeof comm_raw - 1] = '\0';
    label_escape(comm, sizeof comm, comm_raw);
    label_escape(exe_esc, sizeof exe_esc, base);
    snprintf(p->labels, sizeof p->labels, "pid=\"%u\",comm=\"%s\",exe=\"%s\"", s->pid, comm, exe_esc);
}

/* name{pid="..",comm="..",exe=".."[,extra]} value */
static void prom_sample(FILE *f, const char *name, const prom_proc_t *p, const char *extra, uint64_t v, int unit) {
    fprintf(f, "%s{%s%s%s}", name, p->labels, extra ? "," : "", extra ? extra : "");
    if (unit == HAK_MU_NS) fprintf(f, " %.9f\n", (double)v / 1e9);
    else if (unit == HAK_MU_MS) fprintf(f, " %.3f\n", (double)v / 1e3);
    else fprintf(f, " %" PRIu64 "\n", v);
}

static void prom_sample_d(FILE *f, const char *name, const prom_proc_t *p, const char *extra, double v) {
    fprintf(f, "%s{%s%s%s} %.6g\n", name, p->labels, extra ? "," : "", extra ? extra : "", v);
}

/* The Prometheus name of counter `name`, in base units, with _total once:
 * x_ns -> hakmem_x_seconds_total, a "bytes" word moves to the unit position
 * (batch_bytes_flushed -> hakmem_batch_flushed_bytes_total), a trailing
 * "_total" of the counter's own name is not doubled (bytes_mapped_total ->
 * hakmem_mapped_bytes_total).  Returns the unit. */
static int prom_counter_name(char *buf, size_t n, const char *name) {
    /* bytes_mapped_total -> mmap_bytes: hakmem_mapped_bytes is the gauge, and
     * OpenMetrics names a counter's family without _total */
    if (strcmp(name, "bytes_mapped_total") == 0) name = "mmap_bytes";
    char w[96];
    snprintf(w, sizeof w, "%s", name);
    size_t l = strlen(w);
    if (l > 6 && strcmp(w + l - 6, "_total") == 0) w[l -= 6] = '\0';
    if (l > 3 && strcmp(w + l - 3, "_ns") == 0) {
        snprintf(buf, n, "hakmem_%.*s_seconds_total", (int)(l - 3), w);
        return HAK_MU_NS;
    }
    /* remove the word "bytes" wherever it is, then append it */
    char out[96] = "";
    int bytes = 0;
    for (char *tok = strtok(w, "_"); tok; tok = strtok(NULL, "_")) {
        if (strcmp(tok, "bytes") == 0) {
            bytes = 1;
            continue;
        }
        if (out[0]) strncat(out, "_", sizeof out - strlen(out) - 1);
        strncat(out, tok, sizeof out - strlen(out) - 1);
    }
    snprintf(buf, n, "hakmem_%s%s_total", out, bytes ? "_bytes" : "");
    return HAK_MU_COUNT;
}

/* HELP of a counter in the unit it is exported in ("nanoseconds ..." of a
 * *_ns counter reads "seconds ..."). */
static const char *prom_counter_help(char *buf, size_t n, const char *help, int unit) {
    if (unit == HAK_MU_NS) {
        if (strncmp(help, "nanoseconds", 11) == 0) snprintf(buf, n, "seconds%s", help + 11);
        else snprintf(buf, n, "%s (seconds)", help);
        return buf;
    }
    return help;
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

const char *hak_metric_counter_prom(char *buf, size_t n, int k) {
    if (k < 0 || k >= HAK_NCOUNTERS) return NULL;
    prom_counter_name(buf, n, hak_counter_names[k]);
    return buf;
}

static const char *const thp_states[] = {"na", "undecided", "huge", "small"};

void hak_metrics_write_prometheus(FILE *f, const hak_snapshot_t *const *snaps, size_t n, int errors) {
    char name[128], extra[192], help[512];
    prom_proc_t one, *pl = n > 1 ? calloc(n, sizeof *pl) : &one;
    if (pl == NULL) pl = &one, n = 1;   /* out of memory: the first process only */
    for (size_t i = 0; i < n; i++) prom_proc_labels(&pl[i], snaps[i]);

    prom_family(f, "hakmem_build_info", "gauge", "version of the hakmem tools that wrote this exposition (value 1)");
    fprintf(f, "hakmem_build_info{version=\"%s\",layout_version=\"%u\"} 1\n", HAKMEM_VERSION, HAK_SHM_VERSION);
    prom_family(f, "hakmem_stat_processes", "gauge", "hakmem processes whose segment was read");
    fprintf(f, "hakmem_stat_processes %zu\n", n);
    prom_family(f, "hakmem_stat_errors", "gauge", "hakmem segments that could not be read");
    fprintf(f, "hakmem_stat_errors %d\n", errors);

    prom_family(f, "hakmem_info", "gauge", "hakmem process: mode and layout version (value 1)");
    for (size_t i = 0; i < n; i++) {
        snprintf(extra, sizeof extra, "mode=\"%s\",layout_version=\"%u\"", hak_mode_name(snaps[i]->mode),
                 HAK_SHM_VERSION);
        prom_sample(f, "hakmem_info", &pl[i], extra, 1, HAK_MU_COUNT);
    }
    prom_family(f, "hakmem_start_time_seconds", "gauge", "when the process created its segment (unix time)");
    for (size_t i = 0; i < n; i++) prom_sample(f, "hakmem_start_time_seconds", &pl[i], NULL, snaps[i]->start_ns, HAK_MU_NS);

    for (int k = 0; k < HAK_NCOUNTERS; k++) {
        int unit = prom_counter_name(name, sizeof name, hak_counter_names[k]);
        prom_family(f, name, "counter", prom_counter_help(help, sizeof help, hak_counter_help[k], unit));
        for (size_t i = 0; i < n; i++) prom_sample(f, name, &pl[i], NULL, snaps[i]->counter[k], unit);
    }
    for (int k = 0; k < HAK_NGAUGES; k++) {
        prom_gauge_name(name, sizeof name, hak_gauge_names[k]);
        prom_family(f, name, "gauge", hak_gauge_help[k]);
        for (size_t i = 0; i < n; i++) {
            int64_t g = snaps[i]->gauge[k];
            prom_sample(f, name, &pl[i], NULL, g > 0 ? (uint64_t)g : 0, HAK_MU_COUNT);
        }
    }
    prom_family(f, "hakmem_peak_mapped_bytes", "gauge", "high-water mark of hakmem_mapped_bytes");
    for (size_t i = 0; i < n; i++)
        prom_sample(f, "hakmem_peak_mapped_bytes", &pl[i], NULL, snaps[i]->peak_bytes_mapped, HAK_MU_COUNT);

    for (size_t k = 0; k < hak_metric_nknobs; k++) {
        prom_family(f, hak_metric_knobs[k].prom, "gauge", hak_metric_knobs[k].help);
        for (size_t i = 0; i < n; i++)
            prom_sample(f, hak_metric_knobs[k].prom, &pl[i], NULL, hak_metric_field_at(&snaps[i]->knobs, hak_metric_knobs[k].off),
                        hak_metric_knobs[k].unit);
    }

    /* control.seq and applied_seq only grow (one per request posted / up to
     * which requests were applied): counters */
    prom_family(f, "hakmem_control_requests_total", "counter", "control requests posted to the process (its sequence number)");
    for (size_t i = 0; i < n; i++) prom_sample(f, "hakmem_control_requests_total", &pl[i], NULL, snaps[i]->control.seq, HAK_MU_COUNT);
    prom_family(f, "hakmem_control_requests_applied_total", "counter",
                "control requests the process has applied (the sequence number it reached)");
    for (size_t i = 0; i < n; i++)
        prom_sample(f, "hakmem_control_requests_applied_total", &pl[i], NULL, snaps[i]->control.applied_seq, HAK_MU_COUNT);
    prom_family(f, "hakmem_control_rejected_total", "counter", "control values the library had to clamp");
    for (size_t i = 0; i < n; i++)
        prom_sample(f, "hakmem_control_rejected_total", &pl[i], NULL, snaps[i]->control.rejected, HAK_MU_COUNT);
    prom_family(f, "hakmem_decisions_total", "counter", "tuner decisions logged in the segment");
    for (size_t i = 0; i < n; i++)
        prom_sample(f, "hakmem_decisions_total", &pl[i], NULL, snaps[i]->decision_head, HAK_MU_COUNT);

    int any_kernel = 0;
    for (size_t i = 0; i < n; i++) any_kernel |= snaps[i]->kernel.updated_ns != 0;
    for (size_t k = 0; any_kernel && k < hak_metric_nkernel; k++) {
        const char *type = strstr(hak_metric_kernel[k].prom, "_total") ? "counter" : "gauge";
        prom_family(f, hak_metric_kernel[k].prom, type, hak_metric_kernel[k].help);
        for (size_t i = 0; i < n; i++)
            if (snaps[i]->kernel.updated_ns != 0)
                prom_sample(f, hak_metric_kernel[k].prom, &pl[i], NULL, hak_metric_field_at(&snaps[i]->kernel, hak_metric_kernel[k].off),
                            hak_metric_kernel[k].unit);
    }

#define FOR_USED_CLASSES(i, c, cl)                                                   \
    for (size_t i = 0; i < n; i++)                                                  \
        for (uint32_t c = 0; c < snaps[i]->nclasses && c < HAK_SHM_CLASSES; c++)    \
            for (const hak_shm_class_t *cl = &snaps[i]->classes[c]; cl; cl = NULL)   \
                if (hak_metric_class_used(cl))
    for (size_t k = 0; k < hak_metric_nclass; k++) {
        const char *type = strstr(hak_metric_class[k].prom, "_total") ? "counter" : "gauge";
        prom_family(f, hak_metric_class[k].prom, type, hak_metric_class[k].help);
        FOR_USED_CLASSES(i, c, cl) {
            snprintf(extra, sizeof extra, "class=\"%u\",size=\"%" PRIu64 "\"", c, cl->size);
            prom_sample(f, hak_metric_class[k].prom, &pl[i], extra, hak_metric_field_at(cl, hak_metric_class[k].off), HAK_MU_COUNT);
        }
    }
    prom_family(f, "hakmem_class_cap_override", "gauge",
                "per-class ring cap set by the tuner or hak_set_class_cap (no sample: the class follows hakmem_knob_ring_cap)");
    FOR_USED_CLASSES(i, c, cl) {
        if (cl->class_cap == HAK_CLASS_CAP_GLOBAL) continue;
        snprintf(extra, sizeof extra, "class=\"%u\",size=\"%" PRIu64 "\"", c, cl->size);
        prom_sample(f, "hakmem_class_cap_override", &pl[i], extra, cl->class_cap, HAK_MU_COUNT);
    }
    prom_family(f, "hakmem_class_thp_state", "gauge",
                "THP choice of the class (1 for the state in force): na, undecided (sampling), huge, small");
    FOR_USED_CLASSES(i, c, cl) {
        for (uint32_t st = 0; st < sizeof thp_states / sizeof thp_states[0]; st++) {
            snprintf(extra, sizeof extra, "class=\"%u\",size=\"%" PRIu64 "\",state=\"%s\"", c, cl->size, thp_states[st]);
            prom_sample(f, "hakmem_class_thp_state", &pl[i], extra, HAK_CTHP_STATE(cl->thp) == st, HAK_MU_COUNT);
        }
    }
    prom_family(f, "hakmem_class_thp_sampled_blocks", "gauge",
                "freed blocks of the class whose touched pages were sampled (saturates at 255)");
    FOR_USED_CLASSES(i, c, cl) {
        snprintf(extra, sizeof extra, "class=\"%u\",size=\"%" PRIu64 "\"", c, cl->size);
        prom_sample(f, "hakmem_class_thp_sampled_blocks", &pl[i], extra, HAK_CTHP_SAMPLES(cl->thp), HAK_MU_COUNT);
    }
    prom_family(f, "hakmem_class_thp_touched_ratio", "gauge",
                "share of the sampled blocks' pages the program touched (0..1, mean over the samples)");
    FOR_USED_CLASSES(i, c, cl) {
        if (HAK_CTHP_SAMPLES(cl->thp) == 0) continue;
        snprintf(extra, sizeof extra, "class=\"%u\",size=\"%" PRIu64 "\"", c, cl->size);
        prom_sample_d(f, "hakmem_class_thp_touched_ratio", &pl[i], extra, HAK_CTHP_PERMILLE(cl->thp) / 1000.0);
    }
    prom_family(f, "hakmem_class_evictions_total", "counter", "blocks of this class handed to Batch, by reason");
    FOR_USED_CLASSES(i, c, cl) {
        for (int r = 0; r < HAK_EVICT_NREASONS; r++) {
            snprintf(extra, sizeof extra, "class=\"%u\",size=\"%" PRIu64 "\",reason=\"%s\"", c, cl->size,
                     hak_metric_evict_reason(r));
            prom_sample(f, "hakmem_class_evictions_total", &pl[i], extra, cl->evictions[r], HAK_MU_COUNT);
        }
    }
#undef FOR_USED_CLASSES
    if (pl != &one) free(pl);
}
