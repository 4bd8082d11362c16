/*
 * tuner/report.h - hakmem-report: offline reports from the tuning history DB
 * (tuner/README.md has the schema).  Internal to the report tool.
 *
 *   report_db.c     read runs, samples, per-class samples and decisions (SQLite, read-only)
 *   report_model.c  figures: per-run summary, timeline, decision grades, the
 *                   offline recommendation (ghost-histogram prediction), comparisons
 *   report_text.c   text and Markdown output
 *   report_json.c   JSON output
 *   report_html.c   one self-contained HTML file with inline SVG plots
 *                   (template dashboards/report.html, compiled in)
 *   report.c        options, exit codes, main
 */
#ifndef HAKMEM_TUNER_REPORT_H
#define HAKMEM_TUNER_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "hakmem/shm.h"

/* Exit status of hakmem-report: rows of the table every hakmem tool shares
 * (HAK_EXIT_* in tools/cli.h, documented in README.md). */
#define RP_EXIT_OK     0    /* HAK_EXIT_OK: report written (a run in progress or with one sample, with a note) */
#define RP_EXIT_DB     1    /* HAK_EXIT_ERROR: DB unusable: cannot be opened (errno reason), not a database,
                               corrupt, not a hakmem history, newer schema */
#define RP_EXIT_USAGE  2    /* HAK_EXIT_USAGE: bad options */
#define RP_EXIT_OUTPUT 1    /* HAK_EXIT_ERROR: the output file could not be written */
#define RP_EXIT_NODATA 12   /* HAK_EXIT_NODATA: no runs, no such run, or the selected runs have no samples */

/* ---- what the DB holds ---- */

typedef struct rp_class {
    uint32_t cls;
    uint64_t size, hits, misses, puts, cached, cap, ghost, evictions;
    uint64_t h[8];              /* reuse_hist (schema >= 2; zeros before) */
} rp_class_t;

typedef struct rp_sample {
    int64_t id;
    uint64_t time_ns, mono_ns;
    uint64_t ring_cap, batch_threshold, cache_max_bytes, peak_bytes_mapped, decision_head;
    uint64_t k_updated_ns, k_munmap_calls, k_munmap_bytes, k_munmap_ns_total, k_munmap_outside_flush;
    uint64_t c[HAK_NCOUNTERS];
    int64_t g[HAK_NGAUGES];
    uint32_t ncls;
    rp_class_t *cls;            /* sorted by class */
} rp_sample_t;

typedef struct rp_decision {
    int64_t id;
    uint64_t time_ns, seq;
    char knob[24], reason[24];
    int64_t size_class;         /* -1 = global */
    uint64_t old_value, new_value;
    double predicted, before, observed;   /* NAN = NULL */
    int grade;                  /* 0 = NULL (ungraded), 1 confirmed, 2 refuted, 3 inconclusive */
    uint64_t graded_ns;
} rp_decision_t;

/* ---- figures (report_model.c) ---- */

typedef struct rp_interval {
    double t0, t1;              /* seconds since the run's start */
    uint64_t ring_cap, batch_threshold;
    uint64_t accesses, hits, evictions, flushes;
    double hit_rate;            /* NAN when no access */
    double evict_per_s, flush_per_s;
    int64_t cached, pending, live, mapped;   /* gauges at the end of the interval */
    int active;                 /* large allocs/frees happened */
} rp_interval_t;

typedef struct rp_summary {
    double duration_s;          /* start -> end (or last sample when in progress) */
    int in_progress;            /* end_ns NULL */
    int nsamples;
    int zero_base;              /* counted from 0 (in-process run) or from the first sample (daemon) */
    uint64_t accesses, hits, misses, evictions, evict[HAK_EVICT_NREASONS];
    double hit_rate;            /* NAN when no access */
    uint64_t flushes, bytes_released, munmap_calls, flush_ns, ranges;
    uint64_t peak_mapped;       /* max peak_bytes_mapped */
    int64_t peak_held;          /* max bytes_cached + bytes_pending */
    int64_t idle_held;          /* cached + pending at the last idle sample; -1 = never idle */
    double idle_at_s;
    int64_t end_held, end_mapped;
    uint64_t start_cap, end_cap, start_threshold, end_threshold, min_cap, max_cap;
    double active_s;            /* seconds with large-block activity */
    int kernel;                 /* eBPF kernel figures present */
    uint64_t k_munmap_calls, k_munmap_ns;
    /* decisions */
    int ndecisions, confirmed, refuted, inconclusive, ungraded;
    double decisions_per_min;   /* over the run's duration; NAN when it lasted 0 s */
    int ndec_knob[6];           /* decisions by knob, in the order of rp_knob_names (RP_NKNOBS) */
    double confirmed_share;     /* confirmed / (confirmed + refuted); NAN when none graded */
} rp_summary_t;

typedef struct rp_whatif {
    uint64_t cap;
    double hit_rate;            /* predicted */
    double cache_bytes;         /* bytes the rings would hold at most */
} rp_whatif_t;

typedef struct rp_class_reco {
    uint32_t cls;
    uint64_t size, accesses, hits, depth;   /* depth: blocks in play seen (ring occupancy or ghost demand) */
    double hit_rate_at_reco;
} rp_class_reco_t;

typedef struct rp_reco {
    int have_cap;               /* 0: no large-block traffic to predict from */
    int have_hist;              /* ghost histograms recorded (schema >= 2) */
    uint64_t ring_cap, batch_threshold;
    double hit_rate;            /* predicted at the recommended knobs */
    double best_hit_rate;       /* best predicted over caps 0..512 */
    double recorded_hit_rate;
    double cache_bytes;         /* memory held warm by the rings at most */
    double memory_bytes;        /* cache_bytes + batch_threshold (pending at most) */
    uint64_t budget;            /* cache_max_bytes of the run */
    int budget_limited;
    int have_flush;             /* flushes were recorded: threshold from measured flush cost */
    double flush_fixed_ns;      /* per-flush cost a bigger batch saves */
    double release_rate;        /* predicted bytes/s handed to Batch */
    double flush_core_share;    /* predicted saveable flush cost at the threshold, fraction of one core (mean
                                   over the active time) */
    double peak_release_rate;   /* bytes/s in the busiest interval (the one that sets the threshold) */
    double peak_core_share;     /* predicted saveable flush cost at the threshold in that interval */
    double recorded_core_share; /* flush time recorded / active time (all of it, at the thresholds in force) */
    double flush_ns_recorded;   /* flush time recorded, ns */
    double active_s;            /* seconds of the intervals with large-block activity */
    char threshold_basis[256];
    char command[8448];         /* one-line command */
    int nwhatif;
    rp_whatif_t whatif[32];
    int nclass;
    rp_class_reco_t cls[HAK_SHM_CLASSES];
} rp_reco_t;

typedef struct rp_run {
    int64_t id;
    int64_t pid;
    char command[4096], host[256], mode[16], source[16];
    uint64_t start_ns, end_ns, proc_start_ns;   /* end_ns 0 = NULL */
    uint64_t ring_cap, batch_threshold, cache_max_bytes, large_min, thp, tune_interval_ms, idle_ms;
    int nsamples;
    rp_sample_t *samples;
    int ndecisions;
    rp_decision_t *decisions;
    /* computed */
    int nint;
    rp_interval_t *ints;
    rp_summary_t sum;
    rp_reco_t reco;
    struct rp_pred *pred;       /* per-class interval figures for the prediction (report_model.c) */
} rp_run_t;

typedef struct rp_db {
    void *sql;                  /* sqlite3 * */
    const char *path;
    int schema;
    char err[512];
} rp_db_t;

/* report_db.c */
int rp_db_open(rp_db_t *db, const char *path);   /* 0 or -1 (db->err) */
void rp_db_close(rp_db_t *db);
/* Run ids in the DB, ascending; *n = count.  0 or -1. */
int rp_db_run_ids(rp_db_t *db, int64_t **ids, int *n);
/* 1 loaded, 0 no such run, -1 error. */
int rp_db_load_run(rp_db_t *db, int64_t id, rp_run_t *r);
/* Ids of the runs with the same command as r (including r). */
int rp_db_same_command(rp_db_t *db, const char *command, int64_t **ids, int *n);
void rp_run_free(rp_run_t *r);

/* report_model.c */
typedef struct rp_opts {
    const char *lib;            /* libhakmem.so path for the command line */
    double hit_slack;           /* recommended cap: within this of the best predicted hit rate (0.002) */
} rp_opts_t;
void rp_model_run(rp_run_t *r, const rp_opts_t *o);
/* Predicted hit rate of run r with a static ring cap (exported for tests). */
double rp_predict_hit_rate(const rp_run_t *r, uint64_t cap, double *cache_bytes);

/* The report: runs to show, and the runs of the same commands to compare. */
typedef struct rp_report {
    const char *db_path;
    int nruns;
    rp_run_t *runs;             /* runs reported in full */
    int ncmp;
    rp_run_t *cmp;              /* summaries of every run sharing a command with a reported run */
    int total_runs;             /* runs in the DB */
    uint64_t generated_ns;
} rp_report_t;

/* report_text.c, report_json.c, report_html.c: 0 or -1 (write error). */
int rp_write_text(FILE *f, const rp_report_t *rep, int markdown);
int rp_write_json(FILE *f, const rp_report_t *rep);
int rp_write_html(FILE *f, const rp_report_t *rep, const char *template_text);

/* Helpers shared by the writers (report_text.c). */
const char *rp_bytes(char *buf, size_t n, double bytes);   /* "1.50 MiB" */
const char *rp_time(char *buf, size_t n, uint64_t ns);      /* "2025-01-31 12:00:00 UTC" */
const char *rp_pct(char *buf, size_t n, double v);          /* "99.54%" or "n/a" */
const char *rp_status(const rp_run_t *r);                   /* "complete", "in progress", ... */
const char *rp_size_arg(char *buf, size_t n, uint64_t v);   /* 4194304 -> "4M" */
extern const char *const rp_evict_names[HAK_EVICT_NREASONS];
/* The knobs a decision may move, as the DB names them (tuner_knob_name). */
#define RP_NKNOBS 6
extern const char *const rp_knob_names[RP_NKNOBS];   /* ring_cap batch_threshold class_cap trim class_thp */
int rp_knob_index(const char *knob);                 /* index in rp_knob_names, -1 unknown */
/* A decision's knob, with its size class for the per-class ones: "class_cap 2 MiB". */
const char *rp_decision_knob(char *buf, size_t n, const rp_run_t *r, const rp_decision_t *d);
/* A knob value as a reader wants it: 4M, 1.50 MiB, "global", "huge". */
const char *rp_knob_value(char *buf, size_t n, const char *knob, uint64_t v);
/* A decision's predicted / observed figure in its knob's unit ("-" for NAN). */
const char *rp_decision_fig(char *buf, size_t n, const char *knob, double v);

#endif /* HAKMEM_TUNER_REPORT_H */
