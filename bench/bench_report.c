/*
 * bench_report.c - what a run of bench_allocators_hakmem prints and writes:
 * summaries (medians, ratios to the best peer), the Markdown tables, JSON,
 * CSV, and an SVG bar chart of the ratios.  No allocation-heavy work here:
 * this runs in the driver, after every worker has finished.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "../tools/cli.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n) {
    double t[BENCH_MAX_REPEAT];
    if (n <= 0) return 0;
    memcpy(t, v, sizeof(double) * (size_t)n);
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static int cell_ok(const bench_cell_t *c) { return c->status == BENCH_OK && c->nruns > 0; }

void bench_summarize(bench_run_t *r) {
    for (int a = 0; a < r->nalloc; a++)
        for (int k = 0; k < r->nscen; k++) {
            bench_cell_t *c = &r->cell[a][k];
            if (c->status == BENCH_OK && c->nruns == 0) c->status = BENCH_NOTRUN;
            if (!cell_ok(c)) continue;
            double flt[BENCH_MAX_REPEAT], peak[BENCH_MAX_REPEAT], start[BENCH_MAX_REPEAT];
            double first[BENCH_MAX_REPEAT], first_op[BENCH_MAX_REPEAT], steady[BENCH_MAX_REPEAT];
            double dec[BENCH_MAX_REPEAT], decn[BENCH_MAX_REPEAT];
            uint64_t ops = 0, mm = 0, mu = 0, ma = 0, mr = 0, bf = 0, fl = 0;
            int nfirst = 0, nsteady = 0, ndec = 0;
            c->idle_mib = -1;
            for (int i = 0; i < c->nruns; i++) {
                const bench_sample_t *s = &c->runs[i];
                c->ns_op[i] = (double)s->ns / (double)s->ops;
                flt[i] = (double)s->minflt / (double)s->ops;
                peak[i] = (double)s->peak_kib / 1024.0;
                start[i] = (double)s->start_kib / 1024.0;
                ops += s->ops;
                mm += s->hak_mmap;
                mu += s->hak_munmap;
                ma += s->hak_madvise;
                mr += s->hak_mremap;
                bf += s->hak_blocks_flushed;
                fl += s->hak_flushes;
                if (s->first_ops > 0) {
                    first[nfirst] = (double)s->first_ns;
                    first_op[nfirst++] = (double)s->first_ns / (double)s->first_ops;
                }
                if (s->rounds > 0) steady[nsteady++] = (double)s->steady_ps_op / 1000.0;
                if (s->has_hak && s->ns > 0) {
                    decn[ndec] = (double)s->hak_decisions_run;
                    dec[ndec++] = (double)s->hak_decisions_run * 60e9 / (double)s->ns;
                }
            }
            c->first_ns = nfirst ? median(first, nfirst) : -1;
            c->first_ns_op = nfirst ? median(first_op, nfirst) : -1;
            c->steady_ns_op = nsteady ? median(steady, nsteady) : -1;
            c->steady_rounds = c->runs[0].rounds;
            c->decisions_min = ndec ? median(dec, ndec) : -1;
            c->decisions_run = ndec ? median(decn, ndec) : -1;
            c->blocks_per_munmap = c->blocks_per_flush = -1;
            c->idle_blocks_per_munmap = c->idle_blocks_per_flush = -1;
            c->ns_med = median(c->ns_op, c->nruns);
            c->ns_min = c->ns_max = c->ns_op[0];
            for (int i = 1; i < c->nruns; i++) {
                if (c->ns_op[i] < c->ns_min) c->ns_min = c->ns_op[i];
                if (c->ns_op[i] > c->ns_max) c->ns_max = c->ns_op[i];
            }
            c->flt_op = median(flt, c->nruns);
            if (c->has_idle) c->idle_mib = (double)c->idle_kib / 1024.0;
            c->peak_mib = median(peak, c->nruns);
            c->start_mib = median(start, c->nruns);
            if (c->runs[0].has_hak) {
                c->hak_blocks_flushed = bf;
                c->hak_munmap = mu;
                c->hak_flushes = fl;
                if (mu > 0) c->blocks_per_munmap = (double)bf / (double)mu;
                if (fl > 0) c->blocks_per_flush = (double)bf / (double)fl;
                if (c->has_idle && c->idle_hak_munmap > 0)
                    c->idle_blocks_per_munmap = (double)c->idle_hak_blocks / (double)c->idle_hak_munmap;
                if (c->has_idle && c->idle_hak_flushes > 0)
                    c->idle_blocks_per_flush = (double)c->idle_hak_blocks / (double)c->idle_hak_flushes;
                c->sys_source = SYS_HAKMEM;
                c->sys_mmap = (double)mm / (double)ops;
                c->sys_munmap = (double)mu / (double)ops;
                c->sys_madvise = (double)ma / (double)ops;
                c->sys_mremap = (double)mr / (double)ops;
            } else if (c->has_strace) {
                c->sys_source = SYS_STRACE;
                c->sys_mmap = c->strace_mmap;
                c->sys_munmap = c->strace_munmap;
                c->sys_madvise = c->strace_madvise;
                c->sys_mremap = c->strace_mremap;
            } else {
                c->sys_source = SYS_NA;
            }
        }
    for (int k = 0; k < r->nscen; k++) {
        double best = 0, sys = 0, peak = 0;
        for (int a = 0; a < r->nalloc; a++) {
            const bench_cell_t *c = &r->cell[a][k];
            if (!cell_ok(c) || !r->alloc[a]->peer) continue;
            if (best == 0 || c->ns_med < best) best = c->ns_med;
            if (peak == 0 || c->peak_mib < peak) peak = c->peak_mib;
            if (strcmp(r->alloc[a]->name, "system") == 0) sys = c->ns_med;
        }
        for (int a = 0; a < r->nalloc; a++) {
            bench_cell_t *c = &r->cell[a][k];
            c->ratio = cell_ok(c) && best > 0 ? c->ns_med / best : 0;
            c->ratio_sys = cell_ok(c) && sys > 0 ? c->ns_med / sys : 0;
            c->peak_ratio = cell_ok(c) && peak > 0 ? c->peak_mib / peak : 0;
        }
    }
}

// ---------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------
static const char *fmt_num(char *buf, size_t len, double v) {
    if (v < 0) snprintf(buf, len, "n/a");
    else if (v == 0) snprintf(buf, len, "0");
    else if (v < 0.01) snprintf(buf, len, "%.4f", v);
    else if (v < 10) snprintf(buf, len, "%.2f", v);
    else if (v < 1000) snprintf(buf, len, "%.1f", v);
    else snprintf(buf, len, "%.0f", v);
    return buf;
}

/* The peer with the lowest median ns/op in scenario k, or -1. */
static int best_peer(const bench_run_t *r, int k) {
    int best = -1;
    for (int a = 0; a < r->nalloc; a++) {
        const bench_cell_t *c = &r->cell[a][k];
        if (cell_ok(c) && r->alloc[a]->peer && (best < 0 || c->ns_med < r->cell[best][k].ns_med)) best = a;
    }
    return best;
}

/* Lowest peak RSS among the peers in scenario k, or 0. */
static double lowest_peer_peak(const bench_run_t *r, int k) {
    double m = 0;
    for (int a = 0; a < r->nalloc; a++) {
        const bench_cell_t *c = &r->cell[a][k];
        if (cell_ok(c) && r->alloc[a]->peer && (m == 0 || c->peak_mib < m)) m = c->peak_mib;
    }
    return m;
}

static int find_alloc(const bench_run_t *r, const char *name) {
    for (int a = 0; a < r->nalloc; a++)
        if (strcmp(r->alloc[a]->name, name) == 0) return a;
    return -1;
}

/* hakmem's ns/op targets: against the best peer,
 * or against system for the pass-through scenarios; 0 = no ns/op target. */
static double target_of(const char *scen, int *vs_system) {
    static const struct { const char *s; double t; } t[] = {
        {"cold-churn", 0.5}, {"phased", 0.5}, {"realloc-grow", 0.5}, {"mixed", 0.8}, {"large", 0.8},
        {"partial", 0.8}, {"malloc-large", 0.8}, {"vm", 1.0}, {"threads", 1.0}, {"small", 1.03},
        {"small-threads", 1.03},
    };
    *vs_system = strcmp(scen, "small") == 0 || strcmp(scen, "small-threads") == 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].s, scen) == 0) return t[i].t;
    return 0;
}

/* "bpm (bpf)" for the release columns, "-" without a munmap. */
static void release_cell(char *buf, size_t n, double bpm, double bpf) {
    char a[32], b[32];
    if (bpm < 0) snprintf(buf, n, "-");
    else if (bpf < 0) snprintf(buf, n, "%s", fmt_num(a, sizeof a, bpm));
    else snprintf(buf, n, "%s (%s)", fmt_num(a, sizeof a, bpm), fmt_num(b, sizeof b, bpf));
}

/* The release goal: >= RELEASE_GOAL blocks per munmap wherever a flush held
 * more than one block; checked for the timed runs and the idle trim apart. */
#define RELEASE_GOAL 4.0
static void release_goal(char *buf, size_t n, const bench_cell_t *c) {
    const struct { const char *what; double bpm, bpf; } part[] = {
        {"run", c->blocks_per_munmap, c->blocks_per_flush},
        {"trim", c->idle_blocks_per_munmap, c->idle_blocks_per_flush},
    };
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof part / sizeof part[0]; i++) {
        char a[32], b[32];
        if (part[i].bpm < 0 || part[i].bpf <= 1.0 + 1e-9 || len >= n) continue;
        len += (size_t)snprintf(buf + len, n - len, "%s%s %s of %s %s", len ? "; " : "", part[i].what,
                                fmt_num(a, sizeof a, part[i].bpm), fmt_num(b, sizeof b, part[i].bpf),
                                part[i].bpm >= RELEASE_GOAL ? "met" : "MISSED");
    }
    if (len == 0) snprintf(buf, n, "n/a");
}

/* First round against the steady state, peak RSS against the peers, release
 * batching and tuner activity: one row per cell, like the details table. */
static void print_rounds_table(const bench_run_t *r, FILE *f) {
    char b1[32], b2[32], b3[32], b4[32], b5[32], b7[32], b8[32], dec[80];
    char reps[512];
    bench_repeat_phrase(r, reps, sizeof reps);
    fprintf(f, "\n### First round and steady state, peak RSS, release batching (median of %s run%s)\n\n", reps,
            strcmp(reps, "1") ? "s" : "");
    fprintf(f, "| scenario | allocator | 1st round ms | 1st round ns/op | steady ns/op | 1st / steady "
               "| peak RSS x lowest peer | blocks/munmap (per flush) | idle trim: blocks/munmap (per flush) "
               "| decisions per run (/min) |\n");
    fprintf(f, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < r->nscen; k++)
        for (int a = 0; a < r->nalloc; a++) {
            const bench_cell_t *c = &r->cell[a][k];
            if (!cell_ok(c)) continue;
            const char *na = "-";
            if (c->decisions_min >= 0)
                snprintf(dec, sizeof dec, "%s (%s)", fmt_num(b7, sizeof b7, c->decisions_run),
                         fmt_num(b8, sizeof b8, c->decisions_min));
            char rel[80], idle_rel[80];
            release_cell(rel, sizeof rel, c->blocks_per_munmap, c->blocks_per_flush);
            release_cell(idle_rel, sizeof idle_rel, c->idle_blocks_per_munmap, c->idle_blocks_per_flush);
            fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", bench_scenarios[r->scen[k]].name,
                    r->alloc[a]->name, c->first_ns >= 0 ? fmt_num(b1, sizeof b1, c->first_ns / 1e6) : na,
                    c->first_ns_op >= 0 ? fmt_num(b2, sizeof b2, c->first_ns_op) : na,
                    c->steady_ns_op >= 0 ? fmt_num(b3, sizeof b3, c->steady_ns_op) : na,
                    c->first_ns_op >= 0 && c->steady_ns_op > 0 ? fmt_num(b4, sizeof b4, c->first_ns_op / c->steady_ns_op)
                                                               : na,
                    c->peak_ratio > 0 ? fmt_num(b5, sizeof b5, c->peak_ratio) : na,
                    rel, idle_rel, c->decisions_min >= 0 ? dec : na);
        }
    fprintf(f, "\n1st round: the start of the pattern, before any cache or tuner has seen it (what a round is, per "
               "scenario: bench/README.md); steady: the median ns/op of the rounds after it. peak RSS x lowest peer: "
               "this row's peak RSS / the lowest peak among the peers. blocks/munmap: hakmem's blocks released by Batch "
               "flushes / its munmap calls during the timed runs (- = no munmap, or a peer); in brackets the blocks "
               "per flush, the most that one munmap per flush could release (the batch threshold over the block "
               "size bounds it: a 4 MiB threshold flushes at most two 2 MiB blocks). idle trim: the same for the "
               "flushes during the idle sleep of the untimed run (evolving mode's idle trim). decisions per run: tuner decisions logged during "
               "one run of the scenario, and in brackets per minute of its wall time (hakmem rows; a run of a second "
               "with one decision reads as 60/min).\n");
}

void bench_print_table(const bench_run_t *r, FILE *f) {
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32], b7[32], b8[32];
    fprintf(f, "### ns/op relative to the best peer (lower is better; peers: system, jemalloc, mimalloc, tcmalloc)\n\n");
    fprintf(f, "| scenario |");
    for (int a = 0; a < r->nalloc; a++) fprintf(f, " %s |", r->alloc[a]->name);
    fprintf(f, " best peer (ns/op) |\n|---|");
    for (int a = 0; a < r->nalloc; a++) fprintf(f, "---:|");
    fprintf(f, "---|\n");
    for (int k = 0; k < r->nscen; k++) {
        fprintf(f, "| %s |", bench_scenarios[r->scen[k]].name);
        int bp = best_peer(r, k);
        for (int a = 0; a < r->nalloc; a++) {
            const bench_cell_t *c = &r->cell[a][k];
            if (c->status == BENCH_SKIPPED) fprintf(f, " skipped |");
            else if (c->status == BENCH_FAILED) fprintf(f, " FAILED |");
            else if (!cell_ok(c)) fprintf(f, " - |");
            else if (c->ratio == 0) fprintf(f, " %s ns |", fmt_num(b1, sizeof b1, c->ns_med));
            else fprintf(f, c->ratio <= 1.0 ? " **%.2f** |" : " %.2f |", c->ratio);
        }
        if (bp >= 0) fprintf(f, " %s (%s) |\n", r->alloc[bp]->name, fmt_num(b1, sizeof b1, r->cell[bp][k].ns_med));
        else fprintf(f, " n/a |\n");
    }

    char reps[512];
    bench_repeat_phrase(r, reps, sizeof reps);
    fprintf(f, "\n### Details (median of %s run%s; faults = minor page faults; RSS in MiB)\n\n", reps,
            strcmp(reps, "1") ? "s" : "");
    fprintf(f, "| scenario | allocator | ns/op | min-max | x best peer | faults/op | mmap/op | munmap/op | madvise/op "
               "| peak RSS | idle RSS |\n");
    fprintf(f, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < r->nscen; k++)
        for (int a = 0; a < r->nalloc; a++) {
            const bench_cell_t *c = &r->cell[a][k];
            const char *sn = bench_scenarios[r->scen[k]].name, *an = r->alloc[a]->name;
            if (c->status == BENCH_SKIPPED) {
                fprintf(f, "| %s | %s | skipped: %s | | | | | | | | |\n", sn, an, c->error);
                continue;
            }
            if (c->status == BENCH_FAILED) {
                fprintf(f, "| %s | %s | FAILED: %s | | | | | | | | |\n", sn, an, c->error);
                continue;
            }
            if (!cell_ok(c)) continue;
            const char *mark = c->sys_source == SYS_HAKMEM ? " (c)" : "";
            char mm[48], mu[48], ma[48];
            if (c->sys_source == SYS_NA) {
                snprintf(mm, sizeof mm, "n/a");
                snprintf(mu, sizeof mu, "n/a");
                snprintf(ma, sizeof ma, "n/a");
            } else {
                snprintf(mm, sizeof mm, "%s%s", fmt_num(b4, sizeof b4, c->sys_mmap), mark);
                snprintf(mu, sizeof mu, "%s%s", fmt_num(b5, sizeof b5, c->sys_munmap), mark);
                snprintf(ma, sizeof ma, "%s%s", fmt_num(b6, sizeof b6, c->sys_madvise), mark);
            }
            fprintf(f, "| %s | %s | %s | %s-%s | %s | %s | %s | %s | %s | %s | %s |\n", sn, an,
                    fmt_num(b1, sizeof b1, c->ns_med), fmt_num(b2, sizeof b2, c->ns_min),
                    fmt_num(b3, sizeof b3, c->ns_max), c->ratio > 0 ? fmt_num(b7, sizeof b7, c->ratio) : "n/a",
                    fmt_num(b8, sizeof b8, c->flt_op), mm, mu, ma, fmt_num(b4, sizeof b4, c->peak_mib),
                    fmt_num(b5, sizeof b5, c->idle_mib));
        }
    fprintf(f, "\nsyscalls/op: (c) = hakmem's own counters (large blocks only); other rows: `strace -f -c`, "
               "whole process, minus a start-up baseline; n/a = not measured.\n"
               "idle RSS: VmRSS after the scenario freed everything and the process slept %ld ms.\n",
            r->idle_ms);
    print_rounds_table(r, f);

    /* targets */
    int hk[2] = {find_alloc(r, "hakmem-evolving"), find_alloc(r, "hakmem")};
    if (hk[0] < 0 && hk[1] < 0) return;
    int sys = find_alloc(r, "system");
    fprintf(f, "\n### hakmem against the targets (ratio met? / idle RSS <= system's? / peak RSS <= 1.1x "
               "lowest peer peak? / blocks per munmap >= %.0f where a flush held more than one block?)\n\n"
               "| scenario | target |", RELEASE_GOAL);
    for (int h = 0; h < 2; h++)
        if (hk[h] >= 0) fprintf(f, " %s ns/op | idle RSS | peak RSS | blocks/munmap |", r->alloc[hk[h]]->name);
    fprintf(f, "\n|---|---|");
    for (int h = 0; h < 2; h++)
        if (hk[h] >= 0) fprintf(f, "---|---|---|---|");
    fprintf(f, "\n");
    for (int k = 0; k < r->nscen; k++) {
        const char *sn = bench_scenarios[r->scen[k]].name;
        int vs_sys;
        double t = target_of(sn, &vs_sys);
        if (t > 0) fprintf(f, "| %s | <= %.2fx %s |", sn, t, vs_sys ? "system" : "best peer");
        else fprintf(f, "| %s | memory only |", sn);
        double lpp = lowest_peer_peak(r, k);
        const bench_cell_t *sc = sys >= 0 && cell_ok(&r->cell[sys][k]) ? &r->cell[sys][k] : NULL;
        for (int h = 0; h < 2; h++) {
            if (hk[h] < 0) continue;
            const bench_cell_t *c = &r->cell[hk[h]][k];
            if (!cell_ok(c)) {
                fprintf(f, " n/a | n/a | n/a | n/a |");
                continue;
            }
            double ratio = vs_sys ? c->ratio_sys : c->ratio;
            if (ratio > 0 && t > 0) fprintf(f, " %.2f %s |", ratio, ratio <= t ? "met" : "MISSED");
            else if (ratio > 0) fprintf(f, " %.2f |", ratio);
            else fprintf(f, " n/a |");
            if (sc && c->idle_mib >= 0 && sc->idle_mib >= 0)
                fprintf(f, " %s vs %s %s |", fmt_num(b1, sizeof b1, c->idle_mib), fmt_num(b2, sizeof b2, sc->idle_mib),
                        c->idle_mib <= sc->idle_mib ? "met" : "MISSED");
            else fprintf(f, " n/a |");
            if (lpp > 0)
                fprintf(f, " %s vs %s %s |", fmt_num(b1, sizeof b1, c->peak_mib), fmt_num(b2, sizeof b2, lpp),
                        c->peak_mib <= 1.1 * lpp ? "met" : "MISSED");
            else fprintf(f, " n/a |");
            char goal[160];
            release_goal(goal, sizeof goal, c);
            fprintf(f, " %s |", goal);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\nblocks/munmap: \"run X of Y\" = X blocks per munmap in the timed runs, whose flushes held Y "
               "blocks each on average (Y bounds X); \"trim\": the same for the idle trim; n/a: no flush held more "
               "than one block.\n");
}

// ---------------------------------------------------------------------------
// JSON / CSV
// ---------------------------------------------------------------------------
/* The JSON writer every tool shares (tools/cli.c): control bytes and 0x7f
 * escaped, UTF-8 kept; numbers that read back exactly (%.6g did not). */
static void json_str(FILE *f, const char *s) { hak_json_string(f, s); }
static void json_num(FILE *f, double v) { hak_json_number(f, v); }

/* v, or null when it is negative (not measured). */
static void json_opt(FILE *f, double v) {
    if (v < 0) fprintf(f, "null");
    else json_num(f, v);
}

static const char *status_name(int s) {
    switch (s) {
    case BENCH_OK: return "ok";
    case BENCH_SKIPPED: return "skipped";
    case BENCH_FAILED: return "failed";
    default: return "not-run";
    }
}

static const char *sys_name(int s) { return s == SYS_HAKMEM ? "hakmem-counters" : s == SYS_STRACE ? "strace" : "n/a"; }

static int close_checked(FILE *f, const char *path) {
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad) fprintf(stderr, "bench: error writing %s: %s\n", path, strerror(errno));
    return bad ? -1 : 0;
}

static FILE *open_out(const char *path) {
    FILE *f = fopen(path, "w");
    if (f == NULL) fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

int bench_write_json(const bench_run_t *r, const char *path) {
    FILE *f = open_out(path);
    if (!f) return -1;
    fprintf(f, "{\n  \"tool\": \"bench_allocators_hakmem\",\n  \"command\": ");
    json_str(f, r->command);
    fprintf(f, ",\n  \"date\": ");
    json_str(f, r->date);
    fprintf(f, ",\n  \"machine\": {\"nproc\": %ld, \"kernel\": ", r->nproc);
    json_str(f, r->kernel);
    fprintf(f, ", \"cpu\": ");
    json_str(f, r->cpu);
    fprintf(f, ", \"thp\": ");
    json_str(f, r->thp);
    fprintf(f, "},\n  \"config\": {\"repeat\": %d, \"threads\": %d, \"seed\": %" PRIu64
               ", \"idle_ms\": %ld, \"touch\": \"%s\", \"warm_mib\": %ld, \"cold_ms\": %ld, \"iterations\": {",
            r->repeat, r->threads, r->seed, r->idle_ms, r->touch_full ? "full" : "page", r->warm_mib, r->cold_ms);
    for (int k = 0; k < r->nscen; k++) fprintf(f, "%s\"%s\": %ld", k ? ", " : "", bench_scenarios[r->scen[k]].name, r->iters[k]);
    fprintf(f, "}, \"repeats\": {");
    for (int k = 0; k < r->nscen; k++) fprintf(f, "%s\"%s\": %d", k ? ", " : "", bench_scenarios[r->scen[k]].name, r->repeats[k]);
    fprintf(f, "}},\n  \"allocators\": [");
    for (int a = 0; a < r->nalloc; a++) {
        const bench_alloc_t *al = r->alloc[a];
        fprintf(f, "%s\n    {\"name\": \"%s\", \"peer\": %s, \"library\": ", a ? "," : "", al->name,
                al->peer ? "true" : "false");
        json_str(f, al->lib[0] ? al->lib : "");
        fprintf(f, ", \"available\": %s", al->available ? "true" : "false");
        if (al->hakmem) fprintf(f, ", \"hakmem_mode\": \"%s\"", al->mode);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"results\": [");
    int first = 1;
    for (int k = 0; k < r->nscen; k++)
        for (int a = 0; a < r->nalloc; a++) {
            const bench_cell_t *c = &r->cell[a][k];
            fprintf(f, "%s\n    {\"allocator\": \"%s\", \"scenario\": \"%s\", \"status\": \"%s\"", first ? "" : ",",
                    r->alloc[a]->name, bench_scenarios[r->scen[k]].name, status_name(c->status));
            first = 0;
            if (c->status == BENCH_SKIPPED || c->status == BENCH_FAILED) {
                fprintf(f, ", \"error\": ");
                json_str(f, c->error);
            }
            if (!cell_ok(c)) {
                fprintf(f, "}");
                continue;
            }
            fprintf(f, ",\n     \"iterations\": %ld, \"ops\": %" PRIu64 ", \"runs\": %d, \"checksum\": %" PRIu64,
                    r->iters[k], c->runs[0].ops, c->nruns, c->checksum);
            fprintf(f, ",\n     \"ns_per_op\": {\"median\": ");
            json_num(f, c->ns_med);
            fprintf(f, ", \"min\": ");
            json_num(f, c->ns_min);
            fprintf(f, ", \"max\": ");
            json_num(f, c->ns_max);
            fprintf(f, ", \"runs\": [");
            for (int i = 0; i < c->nruns; i++) {
                if (i) fprintf(f, ", ");
                json_num(f, c->ns_op[i]);
            }
            fprintf(f, "]},\n     \"ratio_to_best_peer\": ");
            if (c->ratio > 0) json_num(f, c->ratio);
            else fprintf(f, "null");
            fprintf(f, ", \"ratio_to_system\": ");
            if (c->ratio_sys > 0) json_num(f, c->ratio_sys);
            else fprintf(f, "null");
            fprintf(f, ",\n     \"minor_faults_per_op\": ");
            json_num(f, c->flt_op);
            fprintf(f, ",\n     \"syscalls_per_op\": {\"source\": \"%s\"", sys_name(c->sys_source));
            if (c->sys_source != SYS_NA) {
                fprintf(f, ", \"mmap\": ");
                json_num(f, c->sys_mmap);
                fprintf(f, ", \"munmap\": ");
                json_num(f, c->sys_munmap);
                fprintf(f, ", \"madvise\": ");
                json_num(f, c->sys_madvise);
                fprintf(f, ", \"mremap\": ");
                json_num(f, c->sys_mremap);
            }
            fprintf(f, "}");
            if (c->has_strace) {
                fprintf(f, ",\n     \"strace_per_op\": {\"mmap\": ");
                json_num(f, c->strace_mmap);
                fprintf(f, ", \"munmap\": ");
                json_num(f, c->strace_munmap);
                fprintf(f, ", \"madvise\": ");
                json_num(f, c->strace_madvise);
                fprintf(f, ", \"mremap\": ");
                json_num(f, c->strace_mremap);
                fprintf(f, "}");
            }
            fprintf(f, ",\n     \"rss_mib\": {\"start\": ");
            json_num(f, c->start_mib);
            fprintf(f, ", \"peak\": ");
            json_num(f, c->peak_mib);
            fprintf(f, ", \"idle\": ");
            if (c->idle_mib >= 0) json_num(f, c->idle_mib);
            else fprintf(f, "null");
            fprintf(f, "}");
            fprintf(f, ",\n     \"first_round_ns\": ");
            json_opt(f, c->first_ns);
            fprintf(f, ", \"first_round_ops\": %" PRIu64 ", \"first_round_ns_per_op\": ", c->runs[0].first_ops);
            json_opt(f, c->first_ns_op);
            fprintf(f, ", \"steady_ns_per_op\": ");
            json_opt(f, c->steady_ns_op);
            fprintf(f, ", \"steady_rounds\": %" PRIu64, c->steady_rounds);
            fprintf(f, ",\n     \"peak_rss_ratio\": ");
            if (c->peak_ratio > 0) json_num(f, c->peak_ratio);
            else fprintf(f, "null");
            const struct { const char *key; double v; } opt[] = {
                {"blocks_per_munmap", c->blocks_per_munmap}, {"blocks_per_flush", c->blocks_per_flush},
                {"idle_blocks_per_munmap", c->idle_blocks_per_munmap},
                {"idle_blocks_per_flush", c->idle_blocks_per_flush}, {"decisions_per_min", c->decisions_min},
            };
            for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
                fprintf(f, ", \"%s\": ", opt[i].key);
                json_opt(f, opt[i].v);
            }
            if (c->runs[0].threads) fprintf(f, ", \"threads\": %" PRIu64, c->runs[0].threads);
            if (c->runs[0].has_hak) {
                uint64_t hits = 0, misses = 0, puts = 0, ev = 0;
                for (int i = 0; i < c->nruns; i++) {
                    hits += c->runs[i].hak_hits;
                    misses += c->runs[i].hak_misses;
                    puts += c->runs[i].hak_puts;
                    ev += c->runs[i].hak_evictions;
                }
                const bench_sample_t *l = &c->runs[c->nruns - 1];
                fprintf(f, ",\n     \"hakmem\": {\"mode\": %" PRIu64 ", \"cache_hits\": %" PRIu64
                           ", \"cache_misses\": %" PRIu64 ", \"cache_puts\": %" PRIu64 ", \"evictions\": %" PRIu64
                           ", \"batch_flushes\": %" PRIu64 ", \"idle_munmaps\": %" PRIu64
                           ", \"idle_flushes\": %" PRIu64 ", \"idle_blocks_flushed\": %" PRIu64 ", \"hit_rate\": ",
                        l->hak_mode, hits, misses, puts, ev, c->hak_flushes, c->idle_hak_munmap, c->idle_hak_flushes,
                        c->idle_hak_blocks);
                json_num(f, hits + misses ? (double)hits / (double)(hits + misses) : 0);
                uint64_t dec_run = 0;
                for (int i = 0; i < c->nruns; i++) dec_run += c->runs[i].hak_decisions_run;
                fprintf(f, ", \"ring_cap\": %" PRIu64 ", \"batch_threshold\": %" PRIu64 ", \"decisions\": %" PRIu64
                           ", \"batch_blocks_flushed\": %" PRIu64 ", \"munmap_calls\": %" PRIu64
                           ", \"decisions_in_runs\": %" PRIu64 "}",
                        l->hak_ring_cap, l->hak_batch_threshold, l->hak_decisions, c->hak_blocks_flushed, c->hak_munmap,
                        dec_run);
            }
            fprintf(f, "}");
        }
    fprintf(f, "\n  ]\n}\n");
    return close_checked(f, path);
}

int bench_write_csv(const bench_run_t *r, const char *path) {
    FILE *f = open_out(path);
    if (!f) return -1;
    fprintf(f, "scenario,allocator,status,iterations,ops,runs,ns_per_op_median,ns_per_op_min,ns_per_op_max,"
               "ratio_best_peer,ratio_system,minor_faults_per_op,syscall_source,mmap_per_op,munmap_per_op,"
               "madvise_per_op,mremap_per_op,peak_rss_mib,idle_rss_mib,start_rss_mib,checksum,hak_cache_hits,"
               "hak_cache_misses,hak_ring_cap,hak_batch_threshold,first_round_ns,first_round_ns_per_op,"
               "steady_ns_per_op,peak_rss_ratio,blocks_per_munmap,decisions_per_min,blocks_per_flush,"
               "idle_blocks_per_munmap,idle_blocks_per_flush,error\n");
    for (int k = 0; k < r->nscen; k++)
        for (int a = 0; a < r->nalloc; a++) {
            const bench_cell_t *c = &r->cell[a][k];
            fprintf(f, "%s,%s,%s,%ld,", bench_scenarios[r->scen[k]].name, r->alloc[a]->name, status_name(c->status),
                    r->iters[k]);
            if (!cell_ok(c)) {
                char e[256];
                snprintf(e, sizeof e, "%s", c->error);
                for (char *p = e; *p; p++)
                    if (*p == '"' || *p == ',') *p = ' ';
                fprintf(f, ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,\"%s\"\n", e);
                continue;
            }
            uint64_t hits = 0, misses = 0;
            for (int i = 0; i < c->nruns; i++) {
                hits += c->runs[i].hak_hits;
                misses += c->runs[i].hak_misses;
            }
            fprintf(f, "%" PRIu64 ",%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%s,", c->runs[0].ops, c->nruns, c->ns_med,
                    c->ns_min, c->ns_max, c->ratio, c->ratio_sys, c->flt_op, sys_name(c->sys_source));
            if (c->sys_source != SYS_NA)
                fprintf(f, "%.6g,%.6g,%.6g,%.6g,", c->sys_mmap, c->sys_munmap, c->sys_madvise, c->sys_mremap);
            else fprintf(f, ",,,,");
            fprintf(f, "%.6g,%.6g,%.6g,%" PRIu64 ",", c->peak_mib, c->idle_mib, c->start_mib, c->checksum);
            if (c->runs[0].has_hak)
                fprintf(f, "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",", hits, misses,
                        c->runs[c->nruns - 1].hak_ring_cap, c->runs[c->nruns - 1].hak_batch_threshold);
            else fprintf(f, ",,,,");
            const double opt[] = {c->first_ns, c->first_ns_op, c->steady_ns_op, c->peak_ratio > 0 ? c->peak_ratio : -1,
                                  c->blocks_per_munmap, c->decisions_min, c->blocks_per_flush,
                                  c->idle_blocks_per_munmap, c->idle_blocks_per_flush};
            for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
                if (opt[i] >= 0) fprintf(f, "%.6g", opt[i]);
                fputc(',', f);
            }
            fputc('\n', f);
        }
    return close_checked(f, path);
}

// ---------------------------------------------------------------------------
// SVG: grouped bars of ratio to the best peer, log2 scale, bars from 1.0
// ---------------------------------------------------------------------------
static const char *color_of(const char *name) {
    static const struct { const char *n, *c; } col[] = {
        {"hakmem", "#d62728"}, {"hakmem-evolving", "#ff7f0e"}, {"system", "#1f77b4"},
        {"jemalloc", "#2ca02c"}, {"mimalloc", "#9467bd"}, {"tcmalloc", "#8c564b"},
    };
    for (size_t i = 0; i < sizeof col / sizeof col[0]; i++)
        if (strcmp(col[i].n, name) == 0) return col[i].c;
    return "#7f7f7f";
}

int bench_write_svg(const bench_run_t *r, const char *path) {
    double lo = 0.5, hi = 2.0;
    for (int a = 0; a < r->nalloc; a++)
        for (int k = 0; k < r->nscen; k++) {
            double v = r->cell[a][k].ratio;
            if (v <= 0) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    double llo = floor(log2(lo)), lhi = ceil(log2(hi));
    if (llo < -6) llo = -6;
    if (lhi > 6) lhi = 6;
    if (lhi - llo < 2) lhi = llo + 2;
    const int bw = 14, gap = 28, left = 60, top = 60, ph = 300;
    int gw = r->nalloc * bw + gap;
    int width = left + r->nscen * gw + 20, height = top + ph + 70;
    FILE *f = open_out(path);
    if (!f) return -1;
#define Y(v) (top + (lhi - log2(v)) / (lhi - llo) * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n", width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"14\" font-weight=\"bold\">ns/op relative to the best peer "
               "(log scale; below 1 = faster than every peer)</text>\n", left);
    fprintf(f, "<text x=\"%d\" y=\"34\" fill=\"#555\">%s, %ld CPUs, %s, %s</text>\n", left, r->date, r->nproc,
            r->kernel, r->cpu);
    /* legend */
    for (int a = 0; a < r->nalloc; a++) {
        int x = left + a * 130;
        fprintf(f, "<rect x=\"%d\" y=\"42\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"51\">%s</text>\n",
                x, color_of(r->alloc[a]->name), x + 14, r->alloc[a]->name);
    }
    /* grid */
    for (double e = llo; e <= lhi + 1e-9; e += 1) {
        double v = exp2(e), y = Y(v);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%s\"/>\n", left,
                width - 20, y, y, e == 0 ? "#000" : "#ddd", e == 0 ? "1.5" : "1");
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%gx</text>\n", left - 6, y + 4, v);
    }
    double y1 = Y(1.0);
    for (int k = 0; k < r->nscen; k++) {
        int gx = left + k * gw + gap / 2;
        for (int a = 0; a < r->nalloc; a++) {
            const bench_cell_t *c = &r->cell[a][k];
            int x = gx + a * bw;
            if (c->ratio <= 0) {
                fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"9\" fill=\"#999\">-</text>\n", x + 4, y1 - 2);
                continue;
            }
            double v = c->ratio < exp2(llo) ? exp2(llo) : c->ratio > exp2(lhi) ? exp2(lhi) : c->ratio;
            double y = Y(v), yt = y < y1 ? y : y1, h = fabs(y1 - y);
            if (h < 1) h = 1;
            fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\"><title>%s %s: %.3fx "
                       "(%.1f ns/op)</title></rect>\n", x, yt, bw - 2, h, color_of(r->alloc[a]->name),
                    bench_scenarios[r->scen[k]].name, r->alloc[a]->name, c->ratio, c->ns_med);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", gx + r->nalloc * bw / 2,
                top + ph + 18, bench_scenarios[r->scen[k]].name);
    }
    char reps[512];
    bench_repeat_phrase(r, reps, sizeof reps);
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">median of %s runs per bar; bars grow from 1x (the best peer)"
               "</text>\n", left, top + ph + 44, reps);
#undef Y
    fprintf(f, "</svg>\n");
    return close_checked(f, path);
}

void bench_repeat_phrase(const bench_run_t *r, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "%d", r->repeat);
    int other = 0;
    for (int k = 0; k < r->nscen && len < n; k++) {
        if (r->repeats[k] == r->repeat) continue;
        len += (size_t)snprintf(buf + len, n - len, "%s%s %d", other++ ? ", " : " (",
                                bench_scenarios[r->scen[k]].name, r->repeats[k]);
    }
    if (other && len < n) snprintf(buf + len, n - len, ")");
}

// ---------------------------------------------------------------------------
// Markdown report
// ---------------------------------------------------------------------------
int bench_write_md(const bench_run_t *r, const char *path, const char *svg_name) {
    FILE *f = open_out(path);
    if (!f) return -1;
    fprintf(f, "# bench_allocators_hakmem: latest results\n\n");
    fprintf(f, "- date: %s\n", r->date);
    fprintf(f, "- machine: %ld CPUs (nproc), %s, CPU \"%s\", THP %s\n", r->nproc, r->kernel, r->cpu, r->thp);
    fprintf(f, "- command: `%s`\n", r->command);
    fprintf(f, "- iterations:");
    for (int k = 0; k < r->nscen; k++)
        fprintf(f, "%s %s=%ld", k ? "," : "", bench_scenarios[r->scen[k]].name, r->iters[k]);
    char reps[512];
    bench_repeat_phrase(r, reps, sizeof reps);
    fprintf(f, "; repeat %s; threads %d; seed %" PRIu64 "; touch %s; memory warmed before each run: ", reps,
            r->threads, r->seed, r->touch_full ? "every byte" : "one word per 4 KiB page");
    if (r->warm_mib < 0) fprintf(f, "auto (1.5x the scenario's highest peak RSS so far)");
    else fprintf(f, "%ld MiB", r->warm_mib);
    if (r->cold_ms > 0) fprintf(f, "; slept %ld ms before each run (cold memory)", r->cold_ms);
    fprintf(f, "\n");
    fprintf(f, "- libraries:");
    for (int a = 0; a < r->nalloc; a++)
        fprintf(f, "%s %s=%s", a ? "," : "", r->alloc[a]->name,
                !r->alloc[a]->available ? "missing" : r->alloc[a]->lib[0] ? r->alloc[a]->lib : "glibc");
    fprintf(f, "\n\nGenerated by `make bench` (see bench/README.md for what each scenario models). "
               "The machine is noisy: compare allocators within one run, as ratios.\n\n");
    bench_print_table(r, f);
    if (svg_name) fprintf(f, "\n![ns/op relative to the best peer](%s)\n", svg_name);
    return close_checked(f, path);
}
