/*
 * bench.h - shared types of bench_allocators_hakmem, grouped by the file that
 * defines them.
 *
 *   bench_allocators_hakmem.c  command line, allocator discovery, the driver that
 *                              re-executes itself as one worker process per run
 *                              (LD_PRELOAD = the allocator), strace syscall counts
 *   bench_scenarios.c          the workloads and the worker's measurements
 *   bench_report.c             Markdown table, JSON, CSV, SVG plot of the ratios
 */
#ifndef HAK_BENCH_H
#define HAK_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_MAX_ALLOCS    8
#define BENCH_MAX_SCENARIOS 16
#define BENCH_MAX_REPEAT    64

// ---------------------------------------------------------------------------
// bench_scenarios.c: workloads
// ---------------------------------------------------------------------------
typedef struct bench_scenario {
    const char *name;
    const char *what;          /* one line: what it models */
    const char *iteration;     /* what one iteration is */
    long        default_iters; /* used by `make bench` and when --iterations is absent */
    const char *rounds;        /* one line: what the first round and a steady round are */
    long        first_iters;   /* iterations in the first round; 0 = the initial fill is the first round */
    long        round_iters;   /* iterations in each round after the first (at least) */
} bench_scenario_t;

extern const bench_scenario_t bench_scenarios[BENCH_MAX_SCENARIOS];
extern const int bench_nscenarios;
/* Index of the scenario called name, or -1. */
int bench_scenario_find(const char *name);

/* What one worker measured (one line "key=value ..." on its stdout). */
typedef struct bench_sample {
    uint64_t ops;              /* allocation calls (malloc + realloc) */
    uint64_t ns;               /* wall time of the scenario */
    uint64_t minflt, majflt;   /* getrusage deltas over the scenario */
    uint64_t peak_kib;         /* VmHWM at the end of the scenario */
    uint64_t start_kib;        /* VmRSS before the scenario */
    uint64_t end_kib;          /* VmRSS right after the scenario (all freed) */
    uint64_t idle_kib;         /* VmRSS after idle_ms of sleep; 0 = not measured */
    uint64_t checksum;         /* sum of the words read back from touched memory */
    uint64_t threads;          /* threads of a threaded scenario, else 0 */
    /* rounds (see bench_scenario_t.rounds): the first one, and the steady state after it */
    uint64_t first_ns, first_ops;   /* duration and allocation calls of the first round */
    uint64_t steady_ps_op;     /* median over the later rounds of their time per op, picoseconds */
    uint64_t rounds;           /* complete rounds after the first (0: steady_ps_op not measured) */
    /* hakmem's own counters over the scenario (has_hak) */
    int      has_hak;
    uint64_t hak_mode;         /* enum hak_mode from the segment */
    uint64_t hak_hits, hak_misses, hak_puts, hak_evictions, hak_flushes;
    uint64_t hak_mmap, hak_munmap, hak_madvise, hak_mremap;
    uint64_t hak_idle_munmap;  /* munmaps during the idle sleep (tuner trims) */
    uint64_t hak_idle_flushes, hak_idle_blocks;  /* Batch flushes and blocks they released in that sleep */
    uint64_t hak_ring_cap, hak_batch_threshold;  /* knob values at the end */
    uint64_t hak_decisions;    /* tuner decisions logged (evolving), all of the process's life */
    uint64_t hak_blocks_flushed;    /* blocks released by Batch flushes during the scenario */
    uint64_t hak_decisions_run;     /* decisions logged during the scenario (decision_head delta) */
} bench_sample_t;

typedef struct bench_worker_args {
    int      scenario;         /* index into bench_scenarios */
    const char *allocator;     /* name, to check that the preload took */
    long     iterations;
    int      threads;
    uint64_t seed;
    long     idle_ms;
    int      touch_full;       /* memset every byte instead of one write per page */
} bench_worker_args_t;

/* Run one scenario in this process and print the result line on stdout.
 * Returns the process exit code (0 ok, 1 failure reported on stderr). */
int bench_worker_main(const bench_worker_args_t *a);

// ---------------------------------------------------------------------------
// bench_allocators_hakmem.c / bench_report.c: results of a whole run
// ---------------------------------------------------------------------------
enum bench_status { BENCH_OK = 0, BENCH_SKIPPED = 1, BENCH_FAILED = 2, BENCH_NOTRUN = 3 };
enum bench_sys_source { SYS_NA = 0, SYS_HAKMEM = 1, SYS_STRACE = 2 };

typedef struct bench_alloc {
    const char *name;
    int   peer;                /* system, jemalloc, mimalloc, tcmalloc */
    int   hakmem;              /* hakmem, hakmem-evolving */
    const char *mode;          /* HAKMEM_MODE for hakmem rows */
    char  lib[4096];           /* LD_PRELOAD path; "" = none (system) */
    int   available;
    char  why[256];            /* why it is skipped */
} bench_alloc_t;

typedef struct bench_cell {
    int      status;           /* enum bench_status */
    char     error[256];
    int      nruns;
    bench_sample_t runs[BENCH_MAX_REPEAT];
    double   ns_op[BENCH_MAX_REPEAT];
    /* summary */
    double   ns_med, ns_min, ns_max;
    double   flt_op;           /* median minor faults per op */
    double   peak_mib, idle_mib, start_mib;
    int      sys_source;       /* enum bench_sys_source */
    double   sys_mmap, sys_munmap, sys_madvise, sys_mremap;   /* per op */
    int      has_idle;         /* idle_kib was measured (in the untimed run) */
    uint64_t idle_kib, idle_hak_munmap, idle_hak_flushes, idle_hak_blocks;
    int      has_strace;       /* strace_* below were measured */
    double   strace_mmap, strace_munmap, strace_madvise, strace_mremap; /* per op */
    double   ratio;            /* to the best peer; 0 = n/a */
    double   ratio_sys;        /* to system; 0 = n/a */
    uint64_t checksum;
    /* first round against the steady state (medians over the runs; -1 = n/a) */
    double   first_ns, first_ns_op, steady_ns_op;
    uint64_t steady_rounds;    /* steady rounds per run (of the first run) */
    double   peak_ratio;       /* peak_mib / lowest peer peak in the scenario; 0 = n/a */
    /* hakmem rows: summed over the runs; blocks_per_munmap = flushed / munmap,
     * blocks_per_flush = flushed / flushes (what one flush held: the most one
     * munmap could release); idle_*: the same for the flushes of the idle
     * sleep (the tuner's trim) in the untimed run; -1 = n/a */
    uint64_t hak_blocks_flushed, hak_munmap, hak_flushes;
    double   blocks_per_munmap, blocks_per_flush;
    double   idle_blocks_per_munmap, idle_blocks_per_flush;
    double   decisions_min;    /* median tuner decisions per minute of scenario time; -1 = n/a */
    double   decisions_run;    /* median tuner decisions per run; -1 = n/a */
} bench_cell_t;

typedef struct bench_run {
    int  nalloc, nscen;
    bench_alloc_t *alloc[BENCH_MAX_ALLOCS];
    int  scen[BENCH_MAX_SCENARIOS];
    long iters[BENCH_MAX_SCENARIOS];  /* per selected scenario */
    int  repeat, threads, warmup;   /* repeat: the bare --repeat R (or 3) */
    int  repeats[BENCH_MAX_SCENARIOS];  /* timed runs per selected scenario (--repeat R,SCENARIO=N) */
    uint64_t seed;
    long idle_ms;
    int  touch_full;
    long warm_mib;             /* MiB touched and freed before each run (warm-up and timed): -1 auto, 0 none */
    long cold_ms;              /* ms slept before each run (--cold-ms), 0 = none */
    char command[4096];
    char date[64];
    char kernel[128], cpu[256], thp[64];
    long nproc;
    bench_cell_t cell[BENCH_MAX_ALLOCS][BENCH_MAX_SCENARIOS];
} bench_run_t;

/* Fill the summaries (medians, ratios) of every cell. */
void bench_summarize(bench_run_t *r);
/* The result table (Markdown) on f. */
void bench_print_table(const bench_run_t *r, FILE *f);
/* Write the results; 0 or -1 (errno set, message printed). */
int  bench_write_json(const bench_run_t *r, const char *path);
int  bench_write_csv(const bench_run_t *r, const char *path);
int  bench_write_svg(const bench_run_t *r, const char *path);
int  bench_write_md(const bench_run_t *r, const char *path, const char *svg_name);

/* "R" or "R (vm 21, small 15)": the timed runs of the selected scenarios, for headings. */
void bench_repeat_phrase(const bench_run_t *r, char *buf, size_t n);

#endif /* HAK_BENCH_H */
