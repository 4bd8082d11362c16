/*
 * tuner/report_text.c - hakmem-report: text and Markdown output, and the
 * formatting helpers the other writers share.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"
#include "../tools/units.h"

const char *const rp_evict_names[HAK_EVICT_NREASONS] = {"ring_full", "cap_lowered", "budget", "idle_trim",
                                                          "uncacheable"};

/* The formatter hakmem-stat uses too (tools/units.h): "1.25 MiB", "2 MiB". */
const char *rp_bytes(char *buf, size_t n, double b) { return hak_fmt_bytes(buf, n, b); }

const char *rp_time(char *buf, size_t n, uint64_t ns) {
    time_t t = (time_t)(ns / 1000000000ull);
    struct tm tm;
    if (ns == 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, n, "-");
        return buf;
    }
    strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

const char *rp_pct(char *buf, size_t n, double v) {
    if (isnan(v)) snprintf(buf, n, "n/a");
    else snprintf(buf, n, "%.2f%%", v * 100.0);
    return buf;
}

const char *rp_status(const rp_run_t *r) {
    if (r->nsamples == 0) return r->end_ns ? "no samples" : "no samples, in progress";
    if (r->end_ns == 0) return "in progress";
    if (r->nsamples == 1) return "one sample";
    return "complete";
}

const char *rp_size_arg(char *buf, size_t n, uint64_t v) {
    if (v && v % (1ull << 30) == 0) snprintf(buf, n, "%" PRIu64 "G", v >> 30);
    else if (v && v % (1ull << 20) == 0) snprintf(buf, n, "%" PRIu64 "M", v >> 20);
    else if (v && v % (1ull << 10) == 0) snprintf(buf, n, "%" PRIu64 "K", v >> 10);
    else snprintf(buf, n, "%" PRIu64, v);
    return buf;
}

// ---------------------------------------------------------------------------
// Tables: text (aligned) or Markdown
// ---------------------------------------------------------------------------
#define TBL_MAXCOL 12
typedef struct tbl {
    int ncol, nrow, cap;
    const char *head[TBL_MAXCOL];
    int left[TBL_MAXCOL];       /* left-aligned column */
    char **cells;               /* nrow * ncol */
} tbl_t;

static void tbl_init(tbl_t *t, int ncol, ...) {
    memset(t, 0, sizeof *t);
    t->ncol = ncol;
    va_list ap;
    va_start(ap, ncol);
    for (int i = 0; i < ncol; i++) {
        const char *h = va_arg(ap, const char *);
        if (h[0] == '<') t->left[i] = 1, h++;
        t->head[i] = h;
    }
    va_end(ap);
}

static void tbl_row(tbl_t *t, ...) {
    if (t->nrow == t->cap) {
        int nc = t->cap ? t->cap * 2 : 32;
        char **n = realloc(t->cells, (size_t)nc * (size_t)t->ncol * sizeof *n);
        if (n == NULL) return;
        t->cells = n, t->cap = nc;
    }
    va_list ap;
    va_start(ap, t);
    for (int i = 0; i < t->ncol; i++) {
        const char *c = va_arg(ap, const char *);
        t->cells[t->nrow * t->ncol + i] = strdup(c ? c : "");
    }
    va_end(ap);
    t->nrow++;
}

static void tbl_print(FILE *f, tbl_t *t, int md, const char *indent) {
    int w[TBL_MAXCOL];
    for (int i = 0; i < t->ncol; i++) {
        w[i] = (int)strlen(t->head[i]);
        for (int r = 0; r < t->nrow; r++) {
            int l = (int)strlen(t->cells[r * t->ncol + i]);
            if (l > w[i]) w[i] = l;
        }
    }
    if (md) {
        fputs("|", f);
        for (int i = 0; i < t->ncol; i++) fprintf(f, " %s |", t->head[i]);
        fputs("\n|", f);
        for (int i = 0; i < t->ncol; i++) fprintf(f, "%s|", t->left[i] ? "---" : "--:");
        fputs("\n", f);
        for (int r = 0; r < t->nrow; r++) {
            fputs("|", f);
            for (int i = 0; i < t->ncol; i++) {
                fputc(' ', f);
                for (const char *c = t->cells[r * t->ncol + i]; *c; c++) {
                    if (*c == '|') fputc('\\', f);
                    fputc(*c, f);
                }
                fputs(" |", f);
            }
            fputs("\n", f);
        }
        fputs("\n", f);
    } else {
        fputs(indent, f);
        for (int i = 0; i < t->ncol; i++)
            fprintf(f, "%s%*s", i ? "  " : "", t->left[i] ? -w[i] : w[i], t->head[i]);
        fputs("\n", f);
        for (int r = 0; r < t->nrow; r++) {
            fputs(indent, f);
            for (int i = 0; i < t->ncol; i++) {
                const char *c = t->cells[r * t->ncol + i];
                if (i == t->ncol - 1 && t->left[i]) fprintf(f, "%s%s", i ? "  " : "", c);
                else fprintf(f, "%s%*s", i ? "  " : "", t->left[i] ? -w[i] : w[i], c);
            }
            fputs("\n", f);
        }
    }
    for (int i = 0; i < t->nrow * t->ncol; i++) free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

static void heading(FILE *f, int md, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (md) {
        fprintf(f, "%s%s ", level == 1 ? "" : "\n", level == 1 ? "#" : level == 2 ? "##" : "###");
        vfprintf(f, fmt, ap);
        fputs("\n\n", f);
    } else {
        if (level <= 2) fputs("\n", f);
        vfprintf(f, fmt, ap);
        fputs("\n", f);
        if (level == 1) fputs("=====================================================================\n", f);
    }
    va_end(ap);
}

/* "key  value" line: text = aligned, markdown = bullet. */
static void kv(FILE *f, int md, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (md) fprintf(f, "- **%s**: ", key);
    else fprintf(f, "  %-22s ", key);
    vfprintf(f, fmt, ap);
    fputs("\n", f);
    va_end(ap);
}

const char *const rp_knob_names[RP_NKNOBS] = {"ring_cap", "batch_threshold", "class_cap", "trim", "class_thp",
                                              "thp_cost"};

int rp_knob_index(const char *knob) {
    for (int k = 0; k < RP_NKNOBS; k++)
        if (strcmp(knob, rp_knob_names[k]) == 0) return k;
    return -1;
}

const char *rp_decision_knob(char *buf, size_t n, const rp_run_t *r, const rp_decision_t *d) {
    if (d->size_class < 0) {
        snprintf(buf, n, "%s", d->knob);
        return buf;
    }
    uint64_t size = 0;
    for (int i = r->nsamples - 1; i >= 0 && size == 0; i--)
        for (uint32_t c = 0; c < r->samples[i].ncls; c++)
            if (r->samples[i].cls[c].cls == (uint32_t)d->size_class) size = r->samples[i].cls[c].size;
    char b[32];
    if (size) snprintf(buf, n, "%s %s", d->knob, rp_bytes(b, sizeof b, (double)size));
    else snprintf(buf, n, "%s #%" PRId64, d->knob, d->size_class);
    return buf;
}

const char *rp_decision_fig(char *buf, size_t n, const char *knob, double v) {
    if (isnan(v)) snprintf(buf, n, "-");
    else if (strcmp(knob, "ring_cap") == 0 || strcmp(knob, "class_cap") == 0 || strcmp(knob, "class_thp") == 0)
        rp_pct(buf, n, v);   /* hit rate; THP: share of the pages touched */
    else if (strcmp(knob, "batch_threshold") == 0) snprintf(buf, n, "%.1f us/MiB", v / 1e3);
    else if (strcmp(knob, "trim") == 0) rp_bytes(buf, n, v);
    else if (strcmp(knob, "thp_cost") == 0) snprintf(buf, n, "%.2fx", v);   /* huge fault / 512 small ones */
    else snprintf(buf, n, "%.4g", v);
    return buf;
}

static const char *grade_name(int g) {
    switch (g) {
    case 1: return "confirmed";
    case 2: return "refuted";
    case 3: return "inconclusive";
    default: return "ungraded";
    }
}

const char *rp_knob_value(char *buf, size_t n, const char *knob, uint64_t v) {
    static const char *const thp[] = {"n/a", "undecided", "huge", "small"};
    if (strcmp(knob, "batch_threshold") == 0) rp_size_arg(buf, n, v);
    else if (strcmp(knob, "trim") == 0) rp_bytes(buf, n, (double)v);
    else if (strcmp(knob, "class_cap") == 0 && v == UINT64_MAX) snprintf(buf, n, "global");
    else if (strcmp(knob, "class_thp") == 0 && v < 4) snprintf(buf, n, "%s", thp[v]);
    else if (strcmp(knob, "thp_cost") == 0 && v < 2) snprintf(buf, n, "%s", v ? "4 KiB pages" : "huge pages");
    else snprintf(buf, n, "%" PRIu64, v);
    return buf;
}

static void write_timeline(FILE *f, const rp_run_t *r, int md) {
    const int maxrows = 30;
    int step = (r->nint + maxrows - 1) / maxrows;
    if (step < 1) step = 1;
    if (step > 1) {
        if (md) fprintf(f, "%d intervals, shown in groups of %d (rates and hit rate over the group, knobs and bytes at its end).\n\n", r->nint, step);
        else fprintf(f, "  (%d intervals, shown in groups of %d: rates and hit rate over the group, knobs and bytes at its end)\n", r->nint, step);
    }
    tbl_t t;
    tbl_init(&t, 8, "t (s)", "ring cap", "batch thr", "hit rate", "evict/s", "flush/s", "cached", "pending");
    for (int i = 0; i < r->nint; i += step) {
        int j = i + step < r->nint ? i + step : r->nint;
        uint64_t acc = 0, hits = 0, ev = 0, fl = 0;
        for (int k = i; k < j; k++) acc += r->ints[k].accesses, hits += r->ints[k].hits, ev += r->ints[k].evictions,
                                     fl += r->ints[k].flushes;
        const rp_interval_t *e = &r->ints[j - 1];
        double dt = e->t1 - r->ints[i].t0;
        char a[32], b[32], c[32], d[32], g[32], h[32], k2[32], l[32];
        snprintf(a, sizeof a, "%.2f", e->t1);
        snprintf(b, sizeof b, "%" PRIu64, e->ring_cap);
        rp_size_arg(c, sizeof c, e->batch_threshold);
        rp_pct(d, sizeof d, acc ? (double)hits / (double)acc : NAN);
        snprintf(g, sizeof g, "%.1f", dt > 0 ? (double)ev / dt : 0.0);
        snprintf(h, sizeof h, "%.1f", dt > 0 ? (double)fl / dt : 0.0);
        rp_bytes(k2, sizeof k2, (double)e->cached);
        rp_bytes(l, sizeof l, (double)e->pending);
        tbl_row(&t, a, b, c, d, g, h, k2, l);
    }
    tbl_print(f, &t, md, "  ");
}

static void write_decisions(FILE *f, const rp_run_t *r, int md) {
    const rp_summary_t *m = &r->sum;
    char s[32], per[32], by[160] = "";
    if (isnan(m->decisions_per_min)) snprintf(per, sizeof per, "n/a");
    else snprintf(per, sizeof per, "%.1f", m->decisions_per_min);
    for (int k = 0, len = 0; k < RP_NKNOBS; k++)
        if (m->ndec_knob[k] && len < (int)sizeof by)
            len += snprintf(by + len, sizeof by - (size_t)len, "%s%s %d", len ? ", " : "", rp_knob_names[k],
                            m->ndec_knob[k]);
    if (md) fprintf(f, "%d decisions (%s per minute%s%s): %d confirmed, %d refuted, %d inconclusive, %d ungraded; **share confirmed: %s** (of the graded confirmed or refuted).\n\n",
                    m->ndecisions, per, by[0] ? "; " : "", by, m->confirmed, m->refuted, m->inconclusive, m->ungraded,
                    rp_pct(s, sizeof s, m->confirmed_share));
    else fprintf(f, "  %d decisions (%s per minute%s%s): %d confirmed, %d refuted, %d inconclusive, %d ungraded; share confirmed %s (of those confirmed or refuted)\n",
                 m->ndecisions, per, by[0] ? "; " : "", by, m->confirmed, m->refuted, m->inconclusive, m->ungraded,
                 rp_pct(s, sizeof s, m->confirmed_share));
    if (r->ndecisions == 0) return;
    const int maxrows = 200;
    tbl_t t;
    tbl_init(&t, 9, "t (s)", "#", "<knob", "old", "new", "<reason", "predicted", "observed", "<grade");
    for (int i = 0; i < r->ndecisions && i < maxrows; i++) {
        const rp_decision_t *d = &r->decisions[i];
        char a[32], b[32], c[32], e[32], g[32], h[32], k[64];
        snprintf(a, sizeof a, "%.2f", ((double)d->time_ns - (double)r->start_ns) / 1e9);
        snprintf(b, sizeof b, "%" PRIu64, d->seq);
        rp_knob_value(c, sizeof c, d->knob, d->old_value);
        rp_knob_value(e, sizeof e, d->knob, d->new_value);
        rp_decision_fig(g, sizeof g, d->knob, d->predicted);
        rp_decision_fig(h, sizeof h, d->knob, d->observed);
        tbl_row(&t, a, b, rp_decision_knob(k, sizeof k, r, d), c, e, d->reason, g, h, grade_name(d->grade));
    }
    tbl_print(f, &t, md, "  ");
    if (r->ndecisions > maxrows)
        fprintf(f, "  ... %d more decisions (all of them are in --format json)\n", r->ndecisions - maxrows);
}

static void write_reco(FILE *f, const rp_run_t *r, int md) {
    const rp_reco_t *o = &r->reco;
    char a[32], b[32], c[32], d[32], e[32];
    if (!o->have_cap) {
        fprintf(f, md ? "No per-class traffic recorded: nothing to predict a ring cap from; keep the knobs in force.\n\n"
                      : "  No per-class traffic recorded: nothing to predict a ring cap from; keep the knobs in force.\n");
    }
    if (md) fprintf(f, "**`HAKMEM_RING_CAP=%" PRIu64 " HAKMEM_BATCH_THRESHOLD=%s`**\n\n", o->ring_cap,
                    rp_size_arg(a, sizeof a, o->batch_threshold));
    else fprintf(f, "  HAKMEM_RING_CAP=%" PRIu64 " HAKMEM_BATCH_THRESHOLD=%s\n", o->ring_cap,
                 rp_size_arg(a, sizeof a, o->batch_threshold));
    if (o->have_cap) {
        kv(f, md, "predicted hit rate", "%s (recorded %s; best static cap %s)%s", rp_pct(a, sizeof a, o->hit_rate),
           rp_pct(b, sizeof b, o->recorded_hit_rate), rp_pct(c, sizeof c, o->best_hit_rate),
           o->budget_limited ? " - lowered to fit the cache budget" : "");
        if (!o->have_hist)
            kv(f, md, "note", "no ghost histogram in this history (schema 1 or no ring overflow): larger caps are "
                              "predicted from the hits alone");
    }
    kv(f, md, "memory cost", "up to %s warm in the rings + up to %s pending = %s (fixed mode keeps it while idle)",
       rp_bytes(a, sizeof a, o->cache_bytes), rp_bytes(b, sizeof b, (double)o->batch_threshold),
       rp_bytes(c, sizeof c, o->memory_bytes));
    if (o->have_flush) {
        kv(f, md, "batch threshold", "%s", o->threshold_basis);
        kv(f, md, "flush cost", "recorded %s flushing in %s of activity = %.3f%% of one core (at the thresholds in force); "
                                "at %s the part a bigger batch saves is predicted at %.3f%% on average (%s to release), "
                                "%.3f%% in the busiest interval (%s); the tuner's target is 0.5%%",
           hak_fmt_duration(a, sizeof a, o->flush_ns_recorded / 1e9), hak_fmt_duration(b, sizeof b, o->active_s),
           o->recorded_core_share * 100.0, rp_size_arg(c, sizeof c, o->batch_threshold), o->flush_core_share * 100.0,
           hak_fmt_rate(d, sizeof d, o->release_rate), o->peak_core_share * 100.0,
           hak_fmt_rate(e, sizeof e, o->peak_release_rate));
    } else {
        kv(f, md, "batch threshold", "%s", o->threshold_basis);
    }
    if (md) fprintf(f, "\nRun it:\n\n```sh\n%s\n```\n\n", o->command);
    else fprintf(f, "  run it:\n    %s\n", o->command);
    if (o->nwhatif) {
        if (md) fputs("What if (static ring cap):\n\n", f);
        else fputs("  what if (static ring cap):\n", f);
        tbl_t t;
        tbl_init(&t, 4, "ring cap", "hit rate", "cache memory", "<");
        for (int i = 0; i < o->nwhatif; i++) {
            const rp_whatif_t *w = &o->whatif[i];
            snprintf(a, sizeof a, "%" PRIu64, w->cap);
            const char *mark = w->cap == o->ring_cap ? "recommended"
                               : w->cap == r->sum.end_cap ? "in force at the end"
                               : w->cap == r->sum.start_cap ? "at start" : "";
            tbl_row(&t, a, rp_pct(b, sizeof b, w->hit_rate), rp_bytes(c, sizeof c, w->cache_bytes), mark);
        }
        tbl_print(f, &t, md, "    ");
    }
    if (o->nclass) {
        if (md) fputs("Per size class (the library applies one global cap):\n\n", f);
        else fputs("  per size class (the library applies one global cap):\n", f);
        tbl_t t;
        tbl_init(&t, 6, "class", "block size", "accesses", "hits", "blocks in play", "hit rate at cap");
        for (int i = 0; i < o->nclass; i++) {
            const rp_class_reco_t *k = &o->cls[i];
            char g[32], h[32], l[32];
            snprintf(a, sizeof a, "%u", k->cls);
            snprintf(g, sizeof g, "%" PRIu64, k->accesses);
            snprintf(h, sizeof h, "%" PRIu64, k->hits);
            snprintf(l, sizeof l, "%" PRIu64, k->depth);
            tbl_row(&t, a, rp_bytes(b, sizeof b, (double)k->size), g, h, l, rp_pct(c, sizeof c, k->hit_rate_at_reco));
        }
        tbl_print(f, &t, md, "    ");
    }
}

static void write_compare(FILE *f, const rp_report_t *rep, const rp_run_t *r, int md) {
    int n = 0;
    for (int i = 0; i < rep->ncmp; i++) n += strcmp(rep->cmp[i].command, r->command) == 0;
    if (n < 2) return;
    heading(f, md, 3, "Runs of the same command (%d)", n);
    tbl_t t;
    tbl_init(&t, 10, "run", "<mode", "<status", "duration", "hit rate", "evictions", "flushes", "peak mapped",
             "idle held", "cap at end");
    for (int i = 0; i < rep->ncmp; i++) {
        const rp_run_t *c = &rep->cmp[i];
        if (strcmp(c->command, r->command) != 0) continue;
        char a[32], b[32], d[32], e[32], g[32], h[32], k[32], l[32];
        snprintf(a, sizeof a, "%" PRId64 "%s", c->id, c->id == r->id ? "*" : "");
        snprintf(b, sizeof b, "%.2f s", c->sum.duration_s);
        snprintf(e, sizeof e, "%" PRIu64, c->sum.evictions);
        snprintf(g, sizeof g, "%" PRIu64, c->sum.flushes);
        if (c->sum.idle_held < 0) snprintf(k, sizeof k, "never idle");
        else rp_bytes(k, sizeof k, (double)c->sum.idle_held);
        snprintf(l, sizeof l, "%" PRIu64, c->sum.end_cap);
        tbl_row(&t, a, c->mode, rp_status(c), b, rp_pct(d, sizeof d, c->sum.hit_rate), e, g,
                rp_bytes(h, sizeof h, (double)c->sum.peak_mapped), k, l);
    }
    tbl_print(f, &t, md, "  ");
}

static void write_run(FILE *f, const rp_report_t *rep, const rp_run_t *r, int md) {
    const rp_summary_t *m = &r->sum;
    char a[64], b[64], c[64], d[64];
    heading(f, md, 2, "Run %" PRId64 ": %s, %s, pid %" PRId64 " on %s [%s]", r->id, r->mode[0] ? r->mode : "?",
            r->source[0] ? r->source : "?", r->pid, r->host[0] ? r->host : "?", rp_status(r));
    if (md) fprintf(f, "- **command**: `%s`\n", r->command[0] ? r->command : "?");
    else kv(f, md, "command", "%s", r->command[0] ? r->command : "?");
    kv(f, md, "recorded", "%s, %.2f s, %d samples (%s)", rp_time(a, sizeof a, r->start_ns), m->duration_s,
       m->nsamples, m->zero_base ? "counted from the process's start" : "counted from the first sample");
    kv(f, md, "ring cap", "%" PRIu64 " at start, %" PRIu64 " at the end (range %" PRIu64 "..%" PRIu64 ")",
       m->start_cap, m->end_cap, m->nsamples ? m->min_cap : m->start_cap, m->nsamples ? m->max_cap : m->start_cap);
    kv(f, md, "batch threshold", "%s at start, %s at the end; cache budget %s", rp_size_arg(a, sizeof a, m->start_threshold),
       rp_size_arg(b, sizeof b, m->end_threshold), rp_bytes(c, sizeof c, (double)r->cache_max_bytes));
    if (md) fputs("\n", f);
    if (r->end_ns == 0)
        fprintf(f, "%sNOTE: no end time recorded: the run is still in progress, or its writer was killed; figures "
                   "are up to the last sample%s.\n",
                md ? "> " : "  ", md ? "\n" : "");
    if (r->nsamples == 0) {
        fprintf(f, "%sNOTE: no samples recorded for this run: nothing to report.\n%s", md ? "> " : "  ", md ? "\n" : "");
        return;
    }
    if (r->nint == 0)
        fprintf(f, "%sNOTE: only one sample: no interval to measure counts, rates or a timeline from.\n%s",
                md ? "> " : "  ", md ? "\n" : "");
    else if (r->nsamples == 1)
        fprintf(f, "%sNOTE: only one sample: the timeline has one point.\n%s", md ? "> " : "  ", md ? "\n" : "");

    heading(f, md, 3, "Summary");
    kv(f, md, "large allocations", "%" PRIu64 ", hit rate %s (%" PRIu64 " hits, %" PRIu64 " misses)", m->accesses,
       rp_pct(a, sizeof a, m->hit_rate), m->hits, m->misses);
    kv(f, md, "evictions", "%" PRIu64 " (ring_full %" PRIu64 ", cap_lowered %" PRIu64 ", budget %" PRIu64
       ", idle_trim %" PRIu64 ", uncacheable %" PRIu64 ")",
       m->evictions, m->evict[0], m->evict[1], m->evict[2], m->evict[3], m->evict[4]);
    kv(f, md, "flushes", "%" PRIu64 ", %s released (%" PRIu64 " bytes) in %" PRIu64 " munmap calls, %.2f ms flushing",
       m->flushes, rp_bytes(a, sizeof a, (double)m->bytes_released), m->bytes_released, m->munmap_calls,
       (double)m->flush_ns / 1e6);
    kv(f, md, "peak memory held", "%s mapped (high-water mark), %s cached + pending",
       rp_bytes(a, sizeof a, (double)m->peak_mapped), rp_bytes(b, sizeof b, (double)m->peak_held));
    if (m->idle_held >= 0)
        kv(f, md, "idle memory held", "%s cached + pending at the last idle sample (t = %.2f s)",
           rp_bytes(a, sizeof a, (double)m->idle_held), m->idle_at_s);
    else kv(f, md, "idle memory held", "never idle between samples");
    kv(f, md, "at the last sample", "%s cached + pending, %s mapped", rp_bytes(a, sizeof a, (double)m->end_held),
       rp_bytes(b, sizeof b, (double)m->end_mapped));
    if (m->kernel)
        kv(f, md, "kernel (eBPF)", "%" PRIu64 " munmap calls, %s per call", m->k_munmap_calls,
           m->k_munmap_calls ? (snprintf(d, sizeof d, "%.1f us", (double)m->k_munmap_ns / (double)m->k_munmap_calls / 1e3), d)
                             : "-");
    if (md) fputs("\n", f);

    if (r->nint > 0) {
        heading(f, md, 3, "Timeline");
        write_timeline(f, r, md);
    }
    heading(f, md, 3, "Decisions");
    write_decisions(f, r, md);
    heading(f, md, 3, "Recommended static configuration");
    write_reco(f, r, md);
    write_compare(f, rep, r, md);
}

int rp_write_text(FILE *f, const rp_report_t *rep, int md) {
    char a[64];
    heading(f, md, 1, "hakmem report: %s", rep->db_path);
    if (md) fprintf(f, "%d run%s reported of %d in the history; generated %s.\n", rep->nruns, rep->nruns == 1 ? "" : "s",
                    rep->total_runs, rp_time(a, sizeof a, rep->generated_ns));
    else fprintf(f, "%d run%s reported of %d in the history; generated %s\n", rep->nruns, rep->nruns == 1 ? "" : "s",
                 rep->total_runs, rp_time(a, sizeof a, rep->generated_ns));
    for (int i = 0; i < rep->nruns; i++) write_run(f, rep, &rep->runs[i], md);
    fflush(f);
    return ferror(f) ? -1 : 0;
}
