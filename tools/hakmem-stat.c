/*
 * hakmem-stat - read and steer the telemetry segments of hakmem processes.
 *
 * Every process running libhakmem publishes /dev/shm/hakmem.<pid> (layout:
 * include/hakmem/shm.h).  This tool lists those processes, shows every counter,
 * gauge, knob, control-block field and per-size-class figure of one of them,
 * watches them live, exports them as JSON or in the Prometheus text format,
 * posts control requests (--set, --trim) and removes segments of processes
 * that no longer exist (--gc).
 *
 * All parsing of a segment goes through the reader in src/shm_read.c; names
 * come from the HAK_COUNTERS/HAK_GAUGES X-macro arrays, so a counter added to
 * shm.h shows up here (plain, JSON, Prometheus) without touching this file.
 *
 * A segment is hostile input: another process can truncate it under our
 * mapping, so every read of a mapped segment runs under a SIGBUS guard that
 * turns the fault into a "truncated segment" error.  Each error kind has its
 * own exit status: the table every hakmem tool shares (tools/cli.h, printed by
 * --help, documented in README.md).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "hakmem/shm.h"
#include "hak_internal.h"
#include "cli.h"
#include "metrics.h"
#include "units.h"

#define PROG "hakmem-stat"

// ---------------------------------------------------------------------------
// Exit status: the table shared by every tool (tools/cli.h, README.md)
// ---------------------------------------------------------------------------
static int exit_code_of(int err) { return hak_cli_exit_of_shm(err); }

/* One line on stderr: "hakmem-stat: pid 123: <reader error text>". */
static int report_err(int pid, int err, int sys_errno) {
    if ((err < 0 ? -err : err) == HAK_SHM_EIO && sys_errno != 0)
        fprintf(stderr, PROG ": pid %d: %s: %s\n", pid, hak_shm_strerror(err), strerror(sys_errno));
    else
        fprintf(stderr, PROG ": pid %d: %s\n", pid, hak_shm_strerror(err));
    return exit_code_of(err);
}

#define usage_err hak_cli_usage_error

// ---------------------------------------------------------------------------
// SIGBUS guard around every read of a mapped segment
// ---------------------------------------------------------------------------
/* The guarded operations.  If the segment shrinks under us the access faults
 * and we land back here with "truncated segment".  (A fault inside
 * hak_shm_open_pid can leak that one mapping; the tool reports and moves on.) */
static int seg_open(int pid, hak_shm_handle_t *h) {
    if (sigsetjmp(hak_cli_bus_env, 1) != 0) return -HAK_SHM_ESHORT;
    hak_cli_bus_armed = 1;
    errno = 0;
    int rc = hak_shm_open_pid(pid, h);
    hak_cli_bus_armed = 0;
    return rc;
}

static int seg_snapshot(const hak_shm_t *shm, hak_snapshot_t *out) {
    if (sigsetjmp(hak_cli_bus_env, 1) != 0) return -HAK_SHM_ESHORT;
    hak_cli_bus_armed = 1;
    int rc = hak_shm_snapshot(shm, out);
    hak_cli_bus_armed = 0;
    return rc;
}

static int seg_post(hak_shm_t *shm, uint64_t flags, uint64_t cap, uint64_t thr, uint64_t *seq) {
    if (sigsetjmp(hak_cli_bus_env, 1) != 0) return -HAK_SHM_ESHORT;
    hak_cli_bus_armed = 1;
    *seq = hak_shm_control_post(shm, flags, cap, thr);
    hak_cli_bus_armed = 0;
    return 0;
}

static int seg_load(const uint64_t *p, uint64_t *out) {
    if (sigsetjmp(hak_cli_bus_env, 1) != 0) return -HAK_SHM_ESHORT;
    hak_cli_bus_armed = 1;
    *out = atomic_load_explicit((_Atomic uint64_t *)p, memory_order_acquire);
    hak_cli_bus_armed = 0;
    return 0;
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------
static bool process_gone(int pid) { return kill(pid, 0) == -1 && errno == ESRCH; }

/* "1.25 MiB": the formatter hakmem-report uses too (tools/units.h) */
static const char *fmt_bytes(char *buf, size_t n, double v) { return hak_fmt_bytes(buf, n, v); }

static const char *fmt_age(char *buf, size_t n, double s) {
    if (s < 120) snprintf(buf, n, "%.1f s", s);
    else if (s < 7200) snprintf(buf, n, "%.1f min", s / 60);
    else snprintf(buf, n, "%.1f h", s / 3600);
    return buf;
}

static double hit_rate(const uint64_t *c) {
    uint64_t d = c[HAK_C_cache_hits] + c[HAK_C_cache_misses];
    return d ? (double)c[HAK_C_cache_hits] / (double)d : NAN;
}

static bool parse_pid(const char *s, int *pid) { return hak_cli_parse_pid(s, pid) == 0; }

/* "hakmem.<pid>" exactly, pid canonical decimal > 0. */
static bool parse_seg_name(const char *name, int *pid) {
    size_t lp = strlen(HAK_SHM_PREFIX);
    return strncmp(name, HAK_SHM_PREFIX, lp) == 0 && parse_pid(name + lp, pid);
}

/* "123", "64K", "4M", "1G", "2T": the library's own parser (src/parse.c). */
static bool parse_size(const char *s, uint64_t *out) { return hak_parse_size(s, out) == 0; }

// ---------------------------------------------------------------------------
// Tables derived from shm.h (names of counters/gauges come from its X-macros)
// ---------------------------------------------------------------------------
/* enum hak_class_thp as shown by the tool. */
static const char *class_thp_name(uint32_t state) {
    switch (state) {
    case HAK_CTHP_NA: return "-";
    case HAK_CTHP_UNDECIDED: return "undecided";
    case HAK_CTHP_HUGE: return "huge";
    case HAK_CTHP_SMALL: return "small";
    default: return "?";
    }
}

/* Names, units and Prometheus names of the knob, kernel and class figures:
 * tools/metrics.c (shared with hakmem-tuner --listen). */

static const char *thp_name(uint64_t v) {
    switch (v) {
    case 0: return "never";
    case 1: return "madvise-aligned";
    case 2: return "always";
    default: return "?";
    }
}

static void ctl_flags_str(char *buf, size_t n, uint64_t flags) {
    buf[0] = '\0';
    size_t len = 0;
    if (flags & HAK_CTL_RING_CAP) len += (size_t)snprintf(buf + len, n - len, "%sring_cap", len ? "|" : "");
    if (len < n && (flags & HAK_CTL_BATCH_THRESHOLD))
        len += (size_t)snprintf(buf + len, n - len, "%sbatch_threshold", len ? "|" : "");
    if (len < n && (flags & HAK_CTL_TRIM)) len += (size_t)snprintf(buf + len, n - len, "%strim", len ? "|" : "");
    if (len == 0) snprintf(buf, n, "none");
}

// ---------------------------------------------------------------------------
// Collecting processes
// ---------------------------------------------------------------------------
typedef struct proc {
    int pid;
    hak_snapshot_t snap;
} proc_t;

typedef struct proc_list {
    proc_t *v;
    size_t n, cap;
    int errors;      /* segments that could not be read (reported on stderr) */
} proc_list_t;

static int pid_cmp(const void *a, const void *b) {
    int x = ((const proc_t *)a)->pid, y = ((const proc_t *)b)->pid;
    return (x > y) - (x < y);
}

/* Open, snapshot and close the segment of pid.  0 or -err. */
static int read_pid(int pid, hak_snapshot_t *out) {
    hak_shm_handle_t h;
    int rc = seg_open(pid, &h);
    if (rc != 0) return rc;
    rc = seg_snapshot(h.shm, out);
    hak_shm_close(&h);
    return rc;
}

/* Snapshot every live hakmem process found in /dev/shm.  Segments of dead
 * processes, segments that vanish while we look, and other users' segments
 * (unless we are root) are skipped silently; every other failure is reported
 * on stderr and counted in list->errors.  Returns 0 or an exit status. */
static int collect(proc_list_t *list) {
    list->n = 0;
    list->errors = 0;
    DIR *d = opendir(HAK_SHM_DIR);
    if (d == NULL) {
        if (errno == ENOENT) return 0;
        fprintf(stderr, PROG ": cannot read " HAK_SHM_DIR ": %s\n", strerror(errno));
        return HAK_EXIT_ERROR;
    }
    struct dirent *de;
    uid_t me = geteuid();
    while ((de = readdir(d)) != NULL) {
        int pid;
        if (!parse_seg_name(de->d_name, &pid)) continue;
        if (process_gone(pid)) continue;
        if (list->n == list->cap) {
            size_t ncap = list->cap ? list->cap * 2 : 16;
            proc_t *nv = realloc(list->v, ncap * sizeof *nv);
            if (nv == NULL) {
                closedir(d);
                fprintf(stderr, PROG ": out of memory\n");
                return HAK_EXIT_ERROR;
            }
            list->v = nv;
            list->cap = ncap;
        }
        int rc = read_pid(pid, &list->v[list->n].snap);
        int e = errno;
        if (rc == 0) {
            list->v[list->n++].pid = pid;
            continue;
        }
        if (rc == -HAK_SHM_ESRCH || rc == -HAK_SHM_ENOENT) continue;     /* raced with an exit */
        if (rc == -HAK_SHM_EACCES && me != 0) {
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid != me) continue;
        }
        report_err(pid, rc, e);
        list->errors++;
    }
    closedir(d);
    qsort(list->v, list->n, sizeof *list->v, pid_cmp);
    return 0;
}

// ---------------------------------------------------------------------------
// Plain text
// ---------------------------------------------------------------------------
static void print_list_header(FILE *f) {
    fprintf(f, "%7s  %-16s %-8s %6s %10s %10s %8s\n", "PID", "COMMAND", "MODE", "HIT%", "CACHED", "PENDING",
            "FLUSHES");
}

static void print_list_row(FILE *f, const hak_snapshot_t *s) {
    char b1[32], b2[32], hr[16];
    double h = hit_rate(s->counter);
    if (isnan(h)) snprintf(hr, sizeof hr, "-");
    else snprintf(hr, sizeof hr, "%.1f", 100.0 * h);
    fprintf(f, "%7u  %-16.16s %-8s %6s %10s %10s %8" PRIu64 "\n", s->pid, s->comm, hak_mode_name(s->mode), hr,
            fmt_bytes(b1, sizeof b1, (double)s->gauge[HAK_G_bytes_cached]),
            fmt_bytes(b2, sizeof b2, (double)s->gauge[HAK_G_bytes_pending]), s->counter[HAK_C_batch_flushes]);
}

static void print_value(FILE *f, const char *name, uint64_t v, int unit, const char *help) {
    char b[32];
    switch (unit) {
    case HAK_MU_BYTES:
        fprintf(f, "  %-22s %20" PRIu64 "  %-10s %s\n", name, v, fmt_bytes(b, sizeof b, (double)v), help);
        break;
    case HAK_MU_MS:
        fprintf(f, "  %-22s %20" PRIu64 "  %-10s %s\n", name, v, "ms", help);
        break;
    case HAK_MU_NS:
        fprintf(f, "  %-22s %20" PRIu64 "  %-10s %s\n", name, v, hak_fmt_duration(b, sizeof b, (double)v / 1e9), help);
        break;
    default:
        fprintf(f, "  %-22s %20" PRIu64 "  %-10s %s\n", name, v, "", help);
    }
}

/* Units of a counter or gauge, from its name (generated names stay generic). */
static int unit_of(const char *name) {
    size_t l = strlen(name);
    if (strstr(name, "bytes") != NULL) return HAK_MU_BYTES;
    if (l > 3 && strcmp(name + l - 3, "_ns") == 0) return HAK_MU_NS;
    return HAK_MU_COUNT;
}

static void print_one(FILE *f, const hak_snapshot_t *s) {
    char b1[32], b2[64];
    double now_s = (double)hak_cli_wall_ns() / 1e9;
    double up = s->start_ns ? now_s - (double)s->start_ns / 1e9 : 0;
    fprintf(f, "pid %u (%s)  uid %u  mode %s  layout v%u  up %s\n", s->pid, s->comm, s->uid, hak_mode_name(s->mode),
            HAK_SHM_VERSION, fmt_age(b1, sizeof b1, up > 0 ? up : 0));
    double h = hit_rate(s->counter);
    if (isnan(h)) fprintf(f, "hit rate -  (no large allocation yet)\n");
    else
        fprintf(f, "hit rate %.1f%%  (%" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " large allocations)\n",
                100.0 * h, s->counter[HAK_C_cache_hits], s->counter[HAK_C_cache_misses],
                s->counter[HAK_C_large_allocs]);

    fprintf(f, "\ncounters\n");
    for (int k = 0; k < HAK_NCOUNTERS; k++)
        print_value(f, hak_counter_names[k], s->counter[k], unit_of(hak_counter_names[k]), hak_counter_help[k]);

    fprintf(f, "\ngauges\n");
    for (int k = 0; k < HAK_NGAUGES; k++)
        print_value(f, hak_gauge_names[k], (uint64_t)s->gauge[k], unit_of(hak_gauge_names[k]), hak_gauge_help[k]);
    print_value(f, "peak_bytes_mapped", s->peak_bytes_mapped, HAK_MU_BYTES, "high-water mark of bytes_mapped");

    fprintf(f, "\nknobs\n");
    for (size_t k = 0; k < hak_metric_nknobs; k++) {
        uint64_t v = hak_metric_field_at(&s->knobs, hak_metric_knobs[k].off);
        if (strcmp(hak_metric_knobs[k].name, "thp") == 0) {
            snprintf(b2, sizeof b2, "%s", thp_name(v));
            fprintf(f, "  %-22s %20" PRIu64 "  %-10s %s\n", "thp", v, b2, hak_metric_knobs[k].help);
        } else {
            print_value(f, hak_metric_knobs[k].name, v, hak_metric_knobs[k].unit, hak_metric_knobs[k].help);
        }
    }

    const hak_shm_control_t *c = &s->control;
    ctl_flags_str(b2, sizeof b2, c->flags);
    fprintf(f, "\ncontrol\n");
    fprintf(f, "  seq %" PRIu64 "  applied_seq %" PRIu64 "  %s\n", c->seq, c->applied_seq,
            c->applied_seq >= c->seq ? "(nothing pending)"
                                     : "(request pending: applied on the next large malloc/free)");
    if (c->seq != 0)
        fprintf(f, "  last request: %s  ring_cap %" PRIu64 "  batch_threshold %" PRIu64 "\n", b2, c->ring_cap,
                c->batch_threshold);
    if (c->applied_ns != 0) {
        double ago = now_s - (double)c->applied_ns / 1e9;
        fprintf(f, "  last applied %s ago\n", fmt_age(b1, sizeof b1, ago > 0 ? ago : 0));
    }
    fprintf(f, "  rejected (clamped) values %" PRIu64 "\n", c->rejected);

    fprintf(f, "\nkernel (hakmem-probe)\n");
    if (s->kernel.updated_ns == 0) {
        fprintf(f, "  not published (no eBPF loader attached)\n");
    } else {
        double ago = now_s - (double)s->kernel.updated_ns / 1e9;
        fprintf(f, "  updated %s ago\n", fmt_age(b1, sizeof b1, ago > 0 ? ago : 0));
        for (size_t k = 0; k < hak_metric_nkernel; k++)
            print_value(f, hak_metric_kernel[k].name, hak_metric_field_at(&s->kernel, hak_metric_kernel[k].off), hak_metric_kernel[k].unit,
                        hak_metric_kernel[k].help);
    }
    fprintf(f, "\ntuner decisions logged: %" PRIu64 "\n", s->decision_head);

    uint32_t used = 0;
    for (uint32_t i = 0; i < s->nclasses; i++) used += hak_metric_class_used(&s->classes[i]);
    fprintf(f, "\nsize classes (%u of %u in use)\n", used, s->nclasses);
    if (used == 0) return;
    fprintf(f, "  %5s %10s %9s %9s %9s", "class", "size", "hits", "misses", "puts");
    for (int r = 0; r < HAK_EVICT_NREASONS; r++) fprintf(f, " %11s", hak_metric_evict_reason(r));
    fprintf(f, " %7s %5s %-6s %9s %7s %-9s %8s\n", "cached", "cap", "cap_by", "ghost", "ghosts", "thp", "touched");
    for (uint32_t i = 0; i < s->nclasses; i++) {
        const hak_shm_class_t *cl = &s->classes[i];
        if (!hak_metric_class_used(cl)) continue;
        fprintf(f, "  %5u %10s %9" PRIu64 " %9" PRIu64 " %9" PRIu64, i, fmt_bytes(b1, sizeof b1, (double)cl->size),
                cl->hits, cl->misses, cl->puts);
        for (int r = 0; r < HAK_EVICT_NREASONS; r++) fprintf(f, " %11" PRIu64, cl->evictions[r]);
        char touched[32] = "-";
        if (HAK_CTHP_SAMPLES(cl->thp) > 0)
            snprintf(touched, sizeof touched, "%.0f%%/%u", HAK_CTHP_PERMILLE(cl->thp) / 10.0, HAK_CTHP_SAMPLES(cl->thp));
        fprintf(f, " %7" PRIu64 " %5" PRIu64 " %-6s %9" PRIu64 " %7" PRIu64 " %-9s %8s\n", cl->cached_blocks, cl->cap,
                cl->class_cap == HAK_CLASS_CAP_GLOBAL ? "global" : "class", cl->ghost_hits, cl->ghosts,
                class_thp_name(HAK_CTHP_STATE(cl->thp)), touched);
    }
    fprintf(f, "  (cap_by: the class's own cap (tuner, hak_set_class_cap) or the global ring_cap; ghost: misses a\n"
               "   bigger ring would have hit; ghosts: evictions not yet missed; touched: pages the program touched\n"
               "   in the blocks sampled at free / blocks sampled)\n");
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------
typedef struct jw {
    FILE *f;
    bool pretty;
    int depth;
    bool comma[32];
} jw_t;

static void jw_string(FILE *f, const char *s) { hak_json_string(f, s); }

static void jw_key(jw_t *w, const char *key) {
    if (w->comma[w->depth]) fputc(',', w->f);
    w->comma[w->depth] = true;
    if (w->pretty && w->depth > 0) fprintf(w->f, "\n%*s", 2 * w->depth, "");
    if (key) {
        jw_string(w->f, key);
        fputs(w->pretty ? ": " : ":", w->f);
    }
}
static void jw_open(jw_t *w, const char *key, char c) {
    jw_key(w, key);
    fputc(c, w->f);
    w->depth++;
    w->comma[w->depth] = false;
}
static void jw_close(jw_t *w, char c) {
    bool had = w->comma[w->depth];
    w->depth--;
    if (w->pretty && had) fprintf(w->f, "\n%*s", 2 * w->depth, "");
    fputc(c, w->f);
}
static void jw_u64(jw_t *w, const char *key, uint64_t v) {
    jw_key(w, key);
    fprintf(w->f, "%" PRIu64, v);
}
static void jw_i64(jw_t *w, const char *key, int64_t v) {
    jw_key(w, key);
    fprintf(w->f, "%" PRId64, v);
}
static void jw_dbl(jw_t *w, const char *key, double v) {
    jw_key(w, key);
    hak_json_number(w->f, v);
}
static void jw_str(jw_t *w, const char *key, const char *v) {
    jw_key(w, key);
    jw_string(w->f, v);
}
static void jw_bool(jw_t *w, const char *key, bool v) {
    jw_key(w, key);
    fputs(v ? "true" : "false", w->f);
}

/* One process as a JSON object; prev (may be NULL) adds per-second "rates". */
static void json_proc(jw_t *w, const char *key, const hak_snapshot_t *s, const hak_snapshot_t *prev) {
    jw_open(w, key, '{');
    jw_u64(w, "pid", s->pid);
    jw_str(w, "comm", s->comm);
    jw_u64(w, "uid", s->uid);
    jw_str(w, "mode", hak_mode_name(s->mode));
    jw_u64(w, "layout_version", HAK_SHM_VERSION);
    jw_u64(w, "start_ns", s->start_ns);
    jw_dbl(w, "hit_rate", hit_rate(s->counter));
    jw_open(w, "counters", '{');
    for (int k = 0; k < HAK_NCOUNTERS; k++) jw_u64(w, hak_counter_names[k], s->counter[k]);
    jw_close(w, '}');
    jw_open(w, "gauges", '{');
    for (int k = 0; k < HAK_NGAUGES; k++) jw_i64(w, hak_gauge_names[k], s->gauge[k]);
    jw_u64(w, "peak_bytes_mapped", s->peak_bytes_mapped);
    jw_close(w, '}');
    if (prev != NULL && s->taken_ns > prev->taken_ns) {
        double dt = (double)(s->taken_ns - prev->taken_ns) / 1e9;
        jw_dbl(w, "interval_s", dt);
        jw_open(w, "rates", '{');
        for (int k = 0; k < HAK_NCOUNTERS; k++)
            jw_dbl(w, hak_counter_names[k],
                   s->counter[k] >= prev->counter[k] ? (double)(s->counter[k] - prev->counter[k]) / dt : 0.0);
        jw_close(w, '}');
    }
    jw_open(w, "knobs", '{');
    for (size_t k = 0; k < hak_metric_nknobs; k++) jw_u64(w, hak_metric_knobs[k].name, hak_metric_field_at(&s->knobs, hak_metric_knobs[k].off));
    jw_close(w, '}');
    jw_open(w, "control", '{');
    jw_u64(w, "seq", s->control.seq);
    jw_u64(w, "applied_seq", s->control.applied_seq);
    jw_bool(w, "pending", s->control.applied_seq < s->control.seq);
    jw_u64(w, "flags", s->control.flags);
    jw_u64(w, "ring_cap", s->control.ring_cap);
    jw_u64(w, "batch_threshold", s->control.batch_threshold);
    jw_u64(w, "applied_ns", s->control.applied_ns);
    jw_u64(w, "rejected", s->control.rejected);
    jw_close(w, '}');
    jw_open(w, "kernel", '{');
    jw_u64(w, "updated_ns", s->kernel.updated_ns);
    for (size_t k = 0; k < hak_metric_nkernel; k++) jw_u64(w, hak_metric_kernel[k].name, hak_metric_field_at(&s->kernel, hak_metric_kernel[k].off));
    jw_close(w, '}');
    jw_u64(w, "decisions_total", s->decision_head);
    jw_u64(w, "nclasses", s->nclasses);
    jw_open(w, "classes", '[');
    for (uint32_t i = 0; i < s->nclasses; i++) {
        const hak_shm_class_t *cl = &s->classes[i];
        if (!hak_metric_class_used(cl)) continue;
        jw_open(w, NULL, '{');
        jw_u64(w, "class", i);
        jw_u64(w, "size", cl->size);
        for (size_t k = 0; k < hak_metric_nclass; k++) jw_u64(w, hak_metric_class[k].name, hak_metric_field_at(cl, hak_metric_class[k].off));
        if (cl->class_cap == HAK_CLASS_CAP_GLOBAL) {
            jw_key(w, "class_cap");
            fputs("null", w->f);        /* follows the global ring_cap */
        } else {
            jw_u64(w, "class_cap", cl->class_cap);
        }
        jw_u64(w, "ghosts", cl->ghosts);
        uint32_t thp = HAK_CTHP_STATE(cl->thp);
        jw_str(w, "thp_state", thp == HAK_CTHP_NA ? "n/a" : class_thp_name(thp));
        jw_u64(w, "thp_samples", HAK_CTHP_SAMPLES(cl->thp));
        jw_u64(w, "thp_touched_permille", HAK_CTHP_PERMILLE(cl->thp));
        jw_open(w, "evictions", '{');
        for (int r = 0; r < HAK_EVICT_NREASONS; r++) jw_u64(w, hak_metric_evict_reason(r), cl->evictions[r]);
        jw_close(w, '}');
        bool pretty = w->pretty;
        w->pretty = false;      /* a short array on one line */
        jw_open(w, "reuse_hist", '[');
        for (int b = 0; b < 8; b++) jw_u64(w, NULL, cl->reuse_hist[b]);
        jw_close(w, ']');
        w->pretty = pretty;
        jw_close(w, '}');
    }
    jw_close(w, ']');
    jw_close(w, '}');
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------
enum out_fmt { OUT_PLAIN, OUT_JSON, OUT_PROM };

typedef struct opts {
    int pid;                  /* 0 = all processes */
    int fmt;
    bool watch;
    double interval;          /* seconds between refreshes (positional or --watch) */
    long count;               /* refreshes (positional or --count), 0 = until stopped */
    bool gc, dry_run;
    uint64_t ctl_flags;       /* HAK_CTL_* from --set / --trim */
    uint64_t ring_cap, batch_threshold;
    bool no_wait;
    double timeout;           /* seconds to wait for a control request */
} opts_t;

static void usage(FILE *f) {
    fprintf(f,
"Usage: " PROG " [-j | -P] [-p PID]\n"
"       " PROG " [-j] [-p PID] interval [count]      (or -w/--watch[=SECONDS] [-c N])\n"
"       " PROG " -s KNOB=VALUE [-s ...] [-t] [--no-wait | --timeout SECONDS] -p PID\n"
"       " PROG " -t -p PID\n"
"       " PROG " --gc [-n] [-p PID]\n"
"\n"
"Read and steer hakmem processes through their telemetry segments\n"
"(" HAK_SHM_DIR "/" HAK_SHM_PREFIX "<pid>, layout version %u).\n"
"\n"
"Without -p: one line per live hakmem process (pid, command, mode, hit rate,\n"
"bytes cached, bytes pending, flushes).  With -p PID: every counter, gauge, knob,\n"
"the control block and the size classes in use of that process.  With an\n"
"interval: refresh every interval seconds (fractions allowed) with per-second\n"
"rates, count times or until Ctrl-C (or until the process exits).\n"
"\n"
"Options:\n"
"  -p, --pid PID            the process to show, watch, steer or clean up\n"
"  -j, --json               JSON: one object for -p PID, an array for all processes;\n"
"                           when watching, one JSON document per line per refresh\n"
"  -P, --prometheus         Prometheus text format (node_exporter textfile collector)\n"
"  -w, --watch[=SECONDS]    refresh every SECONDS (default 1): the same as the\n"
"                           positional interval (" PROG " --watch 2 = " PROG " 2)\n"
"  -c, --count N            when watching: stop after N refreshes\n"
"  -s, --set KNOB=VALUE     post a knob change: ring_cap=N (blocks per class) or\n"
"                           batch_threshold=SIZE (bytes, K/M/G/T suffixes); may repeat\n"
"  -t, --trim               post a trim: every cached block is released\n"
"      --no-wait            post and return; do not wait for the process to apply it\n"
"      --timeout SECONDS    wait at most SECONDS for the request to be applied\n"
"                           (default 2; libhakmem applies it at once from its\n"
"                           background thread, which starts with the first large\n"
"                           allocation; without it, on the next large malloc/free)\n"
"      --gc                 remove segments of processes that no longer exist\n"
"                           (regular files only, never through a symlink; yours\n"
"                           only unless you are root); with -p PID, only that one\n"
"  -n, --dry-run            with --gc: list what would be removed\n"
"  -h, --help               this help\n"
"  -V, --version            version and segment layout version\n"
"\n",
            HAK_SHM_VERSION);
    hak_cli_print_exit_table(f);
    fprintf(f,
"  Without -p, unreadable segments are reported on stderr and skipped (exit 0).\n"
"  Conventions shared by the hakmem tools: README.md, \"Command-line conventions\n"
"  and exit status\".\n"
"\n"
"Examples:\n"
"  " PROG "                               list hakmem processes\n"
"  " PROG " -p 4242                       everything about pid 4242\n"
"  " PROG " -p 4242 0.5                   live view, twice a second\n"
"  " PROG " 2 5                           all processes, every 2 s, 5 times\n"
"  " PROG " --json -p 4242 | jq .counters.cache_hits\n"
"  " PROG " --set ring_cap=16 --set batch_threshold=8M -p 4242\n"
"  " PROG " --trim -p 4242                release every cached block now\n"
"  " PROG " --prometheus > /var/lib/node_exporter/hakmem.prom.$$ &&\n"
"      mv /var/lib/node_exporter/hakmem.prom.$$ /var/lib/node_exporter/hakmem.prom\n"
"  " PROG " --gc                          clean up after killed processes\n");
}

/* "ring_cap=16", "batch_threshold=8M" (also ring-cap, BIGCACHE_RING_CAP...). */
static int parse_set(const char *arg, opts_t *o) {
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || eq[1] == '\0') return usage_err("--set wants KNOB=VALUE, not '%s'", arg);
    char key[64];
    size_t kl = (size_t)(eq - arg);
    if (kl >= sizeof key) return usage_err("unknown knob in '%s' (ring_cap, batch_threshold)", arg);
    for (size_t i = 0; i < kl; i++) key[i] = arg[i] == '-' ? '_' : (char)tolower((unsigned char)arg[i]);
    key[kl] = '\0';
    const char *val = eq + 1;
    uint64_t v;
    if (strcmp(key, "ring_cap") == 0 || strcmp(key, "bigcache_ring_cap") == 0 || strcmp(key, "hakmem_ring_cap") == 0) {
        if (strspn(val, "0123456789") != strlen(val) || strlen(val) > 18)
            return usage_err("ring_cap wants a number of blocks, not '%s'", val);
        v = strtoull(val, NULL, 10);
        o->ctl_flags |= HAK_CTL_RING_CAP;
        o->ring_cap = v;
        return 0;
    }
    if (strcmp(key, "batch_threshold") == 0 || strcmp(key, "hakmem_batch_threshold") == 0) {
        if (!parse_size(val, &v)) return usage_err("batch_threshold wants a size such as 4M, not '%s'", val);
        o->ctl_flags |= HAK_CTL_BATCH_THRESHOLD;
        o->batch_threshold = v;
        return 0;
    }
    return usage_err("unknown knob '%.*s' (ring_cap, batch_threshold)", (int)kl, arg);
}

enum { OPT_NO_WAIT = 1000, OPT_TIMEOUT, OPT_GC };

#define WATCH_MIN_S 0.05
#define WATCH_MAX_S 86400.0

static int parse_args(int argc, char **argv, opts_t *o) {
    static const struct option longopts[] = {
        {"pid", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},       {"prometheus", no_argument, NULL, 'P'},
        {"watch", optional_argument, NULL, 'w'}, {"count", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},  {"trim", no_argument, NULL, 't'},
        {"no-wait", no_argument, NULL, OPT_NO_WAIT}, {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"gc", no_argument, NULL, OPT_GC},      {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},       {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->interval = 1.0;
    o->timeout = 2.0;
    bool have_count = false, have_timeout = false, watch_arg = false;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:jPw::c:s:tnhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!parse_pid(optarg, &o->pid)) return usage_err("'%s' is not a process id", optarg);
            break;
        case 'j':
        case 'P':
            if (o->fmt != OUT_PLAIN && o->fmt != (c == 'j' ? OUT_JSON : OUT_PROM))
                return usage_err("--json and --prometheus exclude each other");
            o->fmt = c == 'j' ? OUT_JSON : OUT_PROM;
            break;
        case 'w':
            o->watch = true;
            if (optarg) {
                if (hak_cli_parse_seconds(optarg, WATCH_MIN_S, WATCH_MAX_S, &o->interval) != 0)
                    return usage_err("--watch wants a number of seconds >= 0.05, not '%s'", optarg);
                watch_arg = true;
            }
            break;
        case 'c':
            if (hak_cli_parse_count(optarg, &o->count) != 0)
                return usage_err("--count wants a positive number, not '%s'", optarg);
            have_count = true;
            break;
        case 's':
            if ((rc = parse_set(optarg, o)) != 0) return rc;
            break;
        case 't': o->ctl_flags |= HAK_CTL_TRIM; break;
        case OPT_NO_WAIT: o->no_wait = true; break;
        case OPT_TIMEOUT:
            if (hak_cli_parse_seconds(optarg, 0, 86400, &o->timeout) != 0)
                return usage_err("--timeout wants seconds, not '%s'", optarg);
            have_timeout = true;
            break;
        case OPT_GC: o->gc = true; break;
        case 'n': o->dry_run = true; break;
        case 'h': usage(stdout); exit(hak_cli_stdout_done());
        case 'V': {
            char extra[64];
            snprintf(extra, sizeof extra, "segment layout version %u", HAK_SHM_VERSION);
            exit(hak_cli_version(extra));
        }
        case ':':
            if (optopt == 'p' && strcmp(argv[optind - 1], "-p") == 0)   /* -p was --prometheus: say where it went */
                return usage_err("option '-p' needs a process id (Prometheus output is -P, --prometheus)");
            return hak_cli_bad_option(c, argv);
        default: return hak_cli_bad_option(c, argv);
        }
    }
    /* [interval [count]]: the bcc/vmstat form; it implies watching. */
    int npos = 0;
    long pcount = 0;
    double pinterval = o->interval;
    if ((rc = hak_cli_interval_count(argv + optind, argc - optind, WATCH_MIN_S, WATCH_MAX_S, &pinterval, &pcount,
                                     &npos)) != 0)
        return rc;
    if (npos >= 1) {
        /* "hakmem-stat 4242" meant pid 4242 before the positional was the
         * interval: a whole number naming a live segment, without -p, is most
         * likely that old form; say so rather than watch every 4242 s. */
        int maybe_pid;
        char seg[64];
        if (o->pid == 0 && parse_pid(argv[optind], &maybe_pid)) {
            snprintf(seg, sizeof seg, HAK_SHM_DIR "/" HAK_SHM_PREFIX "%d", maybe_pid);
            if (access(seg, F_OK) == 0)
                return usage_err("'%s' is the interval in seconds; for process %s write -p %s (to watch all "
                                 "processes every %s s, write --watch=%s)",
                                 argv[optind], argv[optind], argv[optind], argv[optind], argv[optind]);
        }
        if (watch_arg) return usage_err("the interval is given twice (--watch=%g and '%s')", o->interval, argv[optind]);
        o->watch = true;
        o->interval = pinterval;
    }
    if (npos == 2) {
        if (have_count) return usage_err("the count is given twice (--count and '%s')", argv[optind + 1]);
        o->count = pcount;
        have_count = true;
    }
    bool ctl = o->ctl_flags != 0;
    if (o->gc && (ctl || o->watch || o->fmt != OUT_PLAIN)) return usage_err("--gc goes with no other mode");
    if (o->dry_run && !o->gc) return usage_err("--dry-run goes with --gc");
    if (ctl && o->pid == 0) return usage_err("--set and --trim need -p PID");
    if (ctl && o->watch) return usage_err("--set/--trim and an interval (--watch) exclude each other");
    if (ctl && o->fmt == OUT_PROM) return usage_err("--set/--trim print plain text or --json");
    if ((o->no_wait || have_timeout) && !ctl) return usage_err("--no-wait and --timeout go with --set or --trim");
    if (o->no_wait && have_timeout) return usage_err("--no-wait and --timeout exclude each other");
    if (have_count && !o->watch) return usage_err("--count goes with an interval (--watch)");
    if (o->watch && o->fmt == OUT_PROM) return usage_err("watching shows plain text or --json");
    return 0;
}

// ---------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------
static void emit_json_list(const proc_t *v, size_t n, bool pretty, const hak_snapshot_t *const *prev) {
    jw_t w = {.f = stdout, .pretty = pretty};
    jw_open(&w, NULL, '[');
    for (size_t i = 0; i < n; i++) json_proc(&w, NULL, &v[i].snap, prev ? prev[i] : NULL);
    jw_close(&w, ']');
    fputc('\n', stdout);
}

static int do_all(const opts_t *o) {
    proc_list_t list = {0};
    int rc = collect(&list);
    if (rc != 0) goto cleanup;
    if (o->fmt == OUT_JSON) {
        emit_json_list(list.v, list.n, true, NULL);
    } else if (o->fmt == OUT_PROM) {
        const hak_snapshot_t **snaps = calloc(list.n ? list.n : 1, sizeof *snaps);
        if (snaps == NULL) {
            fprintf(stderr, PROG ": out of memory\n");
            rc = HAK_EXIT_ERROR;
            goto cleanup;
        }
        for (size_t i = 0; i < list.n; i++) snaps[i] = &list.v[i].snap;
        hak_metrics_write_prometheus(stdout, snaps, list.n, list.errors);
        free(snaps);
    } else {
        print_list_header(stdout);
        for (size_t i = 0; i < list.n; i++) print_list_row(stdout, &list.v[i].snap);
    }
cleanup:
    free(list.v);
    return rc;
}

static int do_one(const opts_t *o) {
    hak_snapshot_t *s = malloc(sizeof *s);
    int rc = HAK_EXIT_ERROR;
    if (s == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        goto cleanup;
    }
    int err = read_pid(o->pid, s);
    if (err != 0) {
        rc = report_err(o->pid, err, errno);
        goto cleanup;
    }
    if (o->fmt == OUT_JSON) {
        jw_t w = {.f = stdout, .pretty = true};
        json_proc(&w, NULL, s, NULL);
        fputc('\n', stdout);
    } else if (o->fmt == OUT_PROM) {
        const hak_snapshot_t *one = s;
        hak_metrics_write_prometheus(stdout, &one, 1, 0);
    } else {
        print_one(stdout, s);
    }
    rc = HAK_EXIT_OK;
cleanup:
    free(s);
    return rc;
}

/* --set / --trim: post, wait for applied_seq >= seq, report what the process uses now. */
static int do_control(const opts_t *o) {
    hak_shm_handle_t h = {.fd = -1};
    hak_snapshot_t *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    int rc = HAK_EXIT_ERROR, err;
    char req[64], b1[32];
    if (before == NULL || after == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        goto cleanup;
    }
    if ((err = seg_open(o->pid, &h)) != 0) {
        rc = report_err(o->pid, err, errno);
        goto cleanup;
    }
    if ((fcntl(h.fd, F_GETFL) & O_ACCMODE) != O_RDWR) {   /* read-only mapping: writing would fault */
        rc = report_err(o->pid, -HAK_SHM_EACCES, 0);
        goto cleanup;
    }
    if ((err = seg_snapshot(h.shm, before)) != 0) {
        rc = report_err(o->pid, err, 0);
        goto cleanup;
    }
    uint64_t seq;
    if ((err = seg_post(h.shm, o->ctl_flags, o->ring_cap, o->batch_threshold, &seq)) != 0) {
        rc = report_err(o->pid, err, 0);
        goto cleanup;
    }
    ctl_flags_str(req, sizeof req, o->ctl_flags);
    if (o->no_wait) {
        printf("pid %d: request %" PRIu64 " posted (%s)\n", o->pid, seq, req);
        rc = HAK_EXIT_OK;
        goto cleanup;
    }

    uint64_t t0 = hak_cli_mono_ns(), limit = (uint64_t)(o->timeout * 1e9), applied = 0;
    for (;;) {
        if ((err = seg_load(&h.shm->control.applied_seq, &applied)) != 0) {
            rc = report_err(o->pid, err, 0);
            goto cleanup;
        }
        if (applied >= seq) break;
        if (process_gone(o->pid)) {
            fprintf(stderr, PROG ": pid %d: process exited before applying request %" PRIu64 "\n", o->pid, seq);
            rc = HAK_EXIT_NOPROC;
            goto cleanup;
        }
        if (hak_cli_mono_ns() - t0 >= limit) {
            fprintf(stderr,
                    PROG ": pid %d: request %" PRIu64 " (%s) not applied within %.1f s; it stays posted%s\n", o->pid,
                    seq, req, o->timeout,
                    before->mode == HAK_MODE_OFF
                        ? " (the process runs in mode off: it never applies requests)"
                        : " (no hakmem background thread yet: applied on the next large malloc or free)");
            rc = HAK_EXIT_NOTAPPLIED;
            goto cleanup;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    uint64_t waited = hak_cli_mono_ns() - t0;
    if ((err = seg_snapshot(h.shm, after)) != 0) {
        rc = report_err(o->pid, err, 0);
        goto cleanup;
    }
    if (o->fmt == OUT_JSON) {
        jw_t w = {.f = stdout, .pretty = true};
        json_proc(&w, NULL, after, NULL);
        fputc('\n', stdout);
        rc = HAK_EXIT_OK;
        goto cleanup;
    }
    printf("pid %d: request %" PRIu64 " (%s) applied after %.0f ms\n", o->pid, seq, req, (double)waited / 1e6);
    if (o->ctl_flags & HAK_CTL_RING_CAP)
        printf("  ring_cap         %" PRIu64 " (requested %" PRIu64 ", was %" PRIu64 ")\n", after->knobs.ring_cap,
               o->ring_cap, before->knobs.ring_cap);
    if (o->ctl_flags & HAK_CTL_BATCH_THRESHOLD)
        printf("  batch_threshold  %" PRIu64 " (%s; requested %" PRIu64 ", was %" PRIu64 ")\n",
               after->knobs.batch_threshold, fmt_bytes(b1, sizeof b1, (double)after->knobs.batch_threshold),
               o->batch_threshold, before->knobs.batch_threshold);
    if (o->ctl_flags & HAK_CTL_TRIM)
        printf("  trim             done: %s cached now (was %s), %" PRIu64 " blocks released by the trim\n",
               fmt_bytes(b1, sizeof b1, (double)after->gauge[HAK_G_bytes_cached]),
               fmt_bytes(req, sizeof req, (double)before->gauge[HAK_G_bytes_cached]),
               after->counter[HAK_C_evict_idle_trim] - before->counter[HAK_C_evict_idle_trim]);
    if (after->control.rejected > before->control.rejected)
        printf("  note: %" PRIu64 " value(s) out of bounds were clamped by the library\n",
               after->control.rejected - before->control.rejected);
    rc = HAK_EXIT_OK;
cleanup:
    if (h.shm != NULL) hak_shm_close(&h);
    free(before);
    free(after);
    return rc;
}

/* --gc: remove hakmem.<pid> of processes that no longer exist (only o->pid's if set). */
static int do_gc(const opts_t *o) {
    DIR *d = opendir(HAK_SHM_DIR);
    if (d == NULL) {
        if (errno == ENOENT) {
            printf("0 stale segments %s\n", o->dry_run ? "found" : "removed");
            return HAK_EXIT_OK;
        }
        fprintf(stderr, PROG ": cannot read " HAK_SHM_DIR ": %s\n", strerror(errno));
        return HAK_EXIT_ERROR;
    }
    int rc = HAK_EXIT_OK, removed = 0, dfd = dirfd(d);
    uid_t me = geteuid();
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int pid;
        struct stat st, st2;
        if (!parse_seg_name(de->d_name, &pid)) continue;
        if (o->pid != 0 && pid != o->pid) continue;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!process_gone(pid)) continue;          /* alive (or not ours to signal): keep */
        if (!S_ISREG(st.st_mode)) {
            printf("skipped " HAK_SHM_DIR "/%s: not a regular file\n", de->d_name);
            continue;
        }
        if (me != 0 && st.st_uid != me) continue;   /* another user's: not ours to remove */
        if (o->dry_run) {
            printf("would remove " HAK_SHM_DIR "/%s (pid %d no longer exists)\n", de->d_name, pid);
            removed++;
            continue;
        }
        /* Re-check right before unlinking: the same regular file still. */
        if (fstatat(dfd, de->d_name, &st2, AT_SYMLINK_NOFOLLOW) != 0 || st2.st_ino != st.st_ino ||
            st2.st_dev != st.st_dev || !S_ISREG(st2.st_mode))
            continue;
        if (unlinkat(dfd, de->d_name, 0) != 0) {
            if (errno == ENOENT) continue;
            fprintf(stderr, PROG ": cannot remove " HAK_SHM_DIR "/%s: %s\n", de->d_name, strerror(errno));
            rc = HAK_EXIT_ERROR;
            continue;
        }
        printf("removed " HAK_SHM_DIR "/%s (pid %d no longer exists)\n", de->d_name, pid);
        removed++;
    }
    closedir(d);
    printf("%d stale segment%s %s\n", removed, removed == 1 ? "" : "s", o->dry_run ? "found" : "removed");
    return rc;
}

// ---------------------------------------------------------------------------
// --watch
// ---------------------------------------------------------------------------
static void frame_begin(bool tty, const opts_t *o, long frame) {
    char tbuf[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(tbuf, sizeof tbuf, "%H:%M:%S", &tm);
    if (tty) fputs("\033[H\033[2J", stdout);
    else if (frame > 0) fputc('\n', stdout);
    printf(PROG " --watch  every %.2gs  refresh %ld  %s%s\n", o->interval, frame + 1, tbuf,
           tty ? "  (Ctrl-C to stop)" : "");
}

static double rate(uint64_t now, uint64_t before, double dt) {
    return dt > 0 && now >= before ? (double)(now - before) / dt : 0.0;
}

static void watch_render_one(const hak_snapshot_t *s, const hak_snapshot_t *prev) {
    char b1[32], b2[32];
    double dt = prev ? (double)(s->taken_ns - prev->taken_ns) / 1e9 : 0;
    double h = hit_rate(s->counter), hi = NAN;
    if (prev) {
        uint64_t dh = s->counter[HAK_C_cache_hits] - prev->counter[HAK_C_cache_hits];
        uint64_t dm = s->counter[HAK_C_cache_misses] - prev->counter[HAK_C_cache_misses];
        if (dh + dm) hi = (double)dh / (double)(dh + dm);
    }
    printf("pid %u (%s)  mode %s  ring_cap %" PRIu64 "  batch_threshold %s\n", s->pid, s->comm,
           hak_mode_name(s->mode), s->knobs.ring_cap, fmt_bytes(b1, sizeof b1, (double)s->knobs.batch_threshold));
    printf("hit rate  %s total", isnan(h) ? "-" : (snprintf(b1, sizeof b1, "%.1f%%", 100 * h), b1));
    printf(", %s last interval\n\n", isnan(hi) ? "-" : (snprintf(b2, sizeof b2, "%.1f%%", 100 * hi), b2));
    printf("  %-22s %16s %14s\n", "counter", "total", "per second");
    for (int k = 0; k < HAK_NCOUNTERS; k++) {
        if (s->counter[k] == 0) continue;
        if (prev) {
            /* bytes per second and time per second in units; events as a number */
            double r = rate(s->counter[k], prev->counter[k], dt);
            int u = unit_of(hak_counter_names[k]);
            char rb[48];
            if (u == HAK_MU_BYTES) hak_fmt_rate(rb, sizeof rb, r);
            else if (u == HAK_MU_NS) snprintf(rb, sizeof rb, "%s/s", hak_fmt_duration(b2, sizeof b2, r / 1e9));
            else snprintf(rb, sizeof rb, "%.1f", r);
            printf("  %-22s %16" PRIu64 " %14s\n", hak_counter_names[k], s->counter[k], rb);
        } else
            printf("  %-22s %16" PRIu64 " %14s\n", hak_counter_names[k], s->counter[k], "-");
    }
    printf("\n  %-22s %16s\n", "gauge", "now");
    for (int k = 0; k < HAK_NGAUGES; k++) {
        if (unit_of(hak_gauge_names[k]) == HAK_MU_BYTES)
            printf("  %-22s %16s\n", hak_gauge_names[k], fmt_bytes(b1, sizeof b1, (double)s->gauge[k]));
        else
            printf("  %-22s %16" PRId64 "\n", hak_gauge_names[k], s->gauge[k]);
    }
    printf("  %-22s %16s\n", "peak_bytes_mapped", fmt_bytes(b1, sizeof b1, (double)s->peak_bytes_mapped));
}

static int watch_one(const opts_t *o) {
    hak_shm_handle_t h = {.fd = -1};
    hak_snapshot_t *cur = malloc(sizeof *cur), *prev = malloc(sizeof *prev);
    int rc = HAK_EXIT_ERROR, err, busy = 0;
    bool tty = isatty(STDOUT_FILENO) && o->fmt == OUT_PLAIN, have_prev = false;
    if (cur == NULL || prev == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        goto cleanup;
    }
    if ((err = seg_open(o->pid, &h)) != 0) {
        rc = report_err(o->pid, err, errno);
        goto cleanup;
    }
    for (long frame = 0; !hak_cli_stop;) {
        if (frame > 0 || busy > 0) hak_cli_sleep(o->interval);
        if (hak_cli_stop) break;
        if (process_gone(o->pid)) {
            if (o->fmt == OUT_PLAIN) printf("pid %d exited\n", o->pid);
            break;
        }
        err = seg_snapshot(h.shm, cur);
        if (err == -HAK_SHM_EBUSY && ++busy < 5) continue;     /* transient: try next tick */
        if (err != 0) {
            rc = report_err(o->pid, err, 0);
            goto cleanup;
        }
        busy = 0;
        if (o->fmt == OUT_JSON) {
            jw_t w = {.f = stdout, .pretty = false};
            json_proc(&w, NULL, cur, have_prev ? prev : NULL);
            fputc('\n', stdout);
        } else {
            frame_begin(tty, o, frame);
            watch_render_one(cur, have_prev ? prev : NULL);
        }
        fflush(stdout);
        hak_snapshot_t *t = prev;
        prev = cur;
        cur = t;
        have_prev = true;
        frame++;
        if (o->count && frame >= o->count) break;
    }
    rc = HAK_EXIT_OK;
cleanup:
    if (h.shm != NULL) hak_shm_close(&h);
    free(cur);
    free(prev);
    return rc;
}

static const hak_snapshot_t *find_prev(const proc_list_t *prev, const hak_snapshot_t *s) {
    for (size_t i = 0; i < prev->n; i++)
        if (prev->v[i].snap.pid == s->pid && prev->v[i].snap.start_ns == s->start_ns) return &prev->v[i].snap;
    return NULL;
}

static int watch_all(const opts_t *o) {
    proc_list_t a = {0}, b = {0}, *cur = &a, *prev = &b;
    const hak_snapshot_t **pv = NULL;
    size_t pv_cap = 0;
    int rc = HAK_EXIT_OK;
    bool tty = isatty(STDOUT_FILENO) && o->fmt == OUT_PLAIN;
    char b1[32], b2[32], b3[32], hr[16];
    for (long frame = 0; !hak_cli_stop;) {
        if (frame > 0) hak_cli_sleep(o->interval);
        if (hak_cli_stop) break;
        if ((rc = collect(cur)) != 0) goto cleanup;
        if (cur->n > pv_cap) {
            const hak_snapshot_t **npv = realloc(pv, cur->n * sizeof *npv);
            if (npv == NULL) {
                fprintf(stderr, PROG ": out of memory\n");
                rc = HAK_EXIT_ERROR;
                goto cleanup;
            }
            pv = npv;
            pv_cap = cur->n;
        }
        for (size_t i = 0; i < cur->n; i++) pv[i] = find_prev(prev, &cur->v[i].snap);
        if (o->fmt == OUT_JSON) {
            emit_json_list(cur->v, cur->n, false, pv);
        } else {
            frame_begin(tty, o, frame);
            printf("%7s  %-16s %-8s %10s %6s %10s %10s %10s %9s %9s\n", "PID", "COMMAND", "MODE", "ALLOC/s", "HIT%",
                   "MAPPED", "CACHED", "PENDING", "FLUSH/s", "MUNMAP/s");
            for (size_t i = 0; i < cur->n; i++) {
                const hak_snapshot_t *s = &cur->v[i].snap, *p = pv[i];
                double dt = p ? (double)(s->taken_ns - p->taken_ns) / 1e9 : 0;
                double h = hit_rate(s->counter);
                if (isnan(h)) snprintf(hr, sizeof hr, "-");
                else snprintf(hr, sizeof hr, "%.1f", 100.0 * h);
                char ar[24], fr[24], mr[24];
                if (p) {
                    snprintf(ar, sizeof ar, "%.1f", rate(s->counter[HAK_C_large_allocs], p->counter[HAK_C_large_allocs], dt));
                    snprintf(fr, sizeof fr, "%.1f", rate(s->counter[HAK_C_batch_flushes], p->counter[HAK_C_batch_flushes], dt));
                    snprintf(mr, sizeof mr, "%.1f", rate(s->counter[HAK_C_munmap_calls], p->counter[HAK_C_munmap_calls], dt));
                } else {
                    snprintf(ar, sizeof ar, "-");
                    snprintf(fr, sizeof fr, "-");
                    snprintf(mr, sizeof mr, "-");
                }
                printf("%7u  %-16.16s %-8s %10s %6s %10s %10s %10s %9s %9s\n", s->pid, s->comm, hak_mode_name(s->mode),
                       ar, hr, fmt_bytes(b1, sizeof b1, (double)s->gauge[HAK_G_bytes_mapped]),
                       fmt_bytes(b2, sizeof b2, (double)s->gauge[HAK_G_bytes_cached]),
                       fmt_bytes(b3, sizeof b3, (double)s->gauge[HAK_G_bytes_pending]), fr, mr);
            }
            if (cur->n == 0) printf("  (no hakmem process)\n");
        }
        fflush(stdout);
        proc_list_t *t = prev;
        prev = cur;
        cur = t;
        frame++;
        if (o->count && frame >= o->count) break;
    }
cleanup:
    free(a.v);
    free(b.v);
    free(pv);
    return rc;
}

/* Entry point: parse the command line, run one mode, return its exit status
 * (table at the top of this file and in --help); stdout is flushed and a
 * write error on it is an error too. */
int main(int argc, char **argv) {
    opts_t o;
    hak_cli_init(PROG);
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) return rc;
    hak_cli_install_sigbus();
    if (o.gc) rc = do_gc(&o);
    else if (o.ctl_flags) rc = do_control(&o);
    else if (o.watch) {
        hak_cli_install_stop(0);
        rc = o.pid ? watch_one(&o) : watch_all(&o);
    } else if (o.pid) rc = do_one(&o);
    else rc = do_all(&o);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, PROG ": write error: %s\n", strerror(errno));
        if (rc == HAK_EXIT_OK) rc = HAK_EXIT_ERROR;
    }
    return rc;
}
