/*
 * evolve.c - the allocator's background thread: applies control requests
 * (hakmem-stat --set/--trim, hakmem-tuner --drive) even while the program
 * sleeps, in every mode with a published segment, and in HAKMEM_MODE=evolving
 * runs the in-process tuner.
 *
 * Started lazily by the first large allocation (not at init: a malloc made
 * while ld.so or libc are still starting up must not spawn threads), restarted
 * lazily in a forked child, stopped at exit.  Every HAKMEM_TUNE_INTERVAL_MS it
 * takes a consistent snapshot of this process's own segment, asks the pure
 * policy (tuner/policy.c) for decisions, applies them through the same clamped
 * setters as everybody else, logs them in the segment's decision ring, grades
 * earlier decisions, and - with HAKMEM_HISTORY=file.db - records the sample
 * and the decisions in SQLite (tuner/db.c loads libsqlite3 with dlopen, so the
 * allocator itself does not depend on it).  Because it is a thread, the idle
 * trim happens even while the program sleeps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hak_internal.h"
#include "../tuner/db.h"
#include "../tuner/policy.h"
#include "../tuner/shmlog.h"

static _Atomic int evolve_state;          /* 0 not started, 1 running, 2 stopping, 3 stopped */
_Atomic bool hak_tune_nudge;               /* BigCache saw a run of ghost misses: tune now */

void hak_evolve_nudge(void) {
    if (atomic_load_explicit(&evolve_state, memory_order_relaxed) != 1 || hak_opt.mode != HAK_MODE_EVOLVING) return;
    if (atomic_exchange(&hak_tune_nudge, true)) return;           /* already pending */
    syscall(SYS_futex, &hak_seg->control.seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}
static pthread_t evolve_thread;

/* Tuner state and snapshots: one tuner per process, kept off the stack. */
static tuner_state_t tstate;
static hak_snapshot_t snap[2];
static tuner_db_t *db;
static int64_t db_run;

static void read_cmdline(char *out, size_t len) {
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, len - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) n = 0;
    for (ssize_t i = 0; i < n; i++)
        if (out[i] == '\0') out[i] = ' ';
    while (n > 0 && out[n - 1] == ' ') n--;
    out[n] = '\0';
}

static void apply(const tuner_decision_t *d) {
    switch (d->knob) {
    case HAK_KNOB_RING_CAP: hak_knob_set(HAKMEM_KNOB_RING_CAP, d->new_value); break;
    case HAK_KNOB_BATCH_THRESHOLD: hak_knob_set(HAKMEM_KNOB_BATCH_THRESHOLD, d->new_value); break;
    case HAK_KNOB_TRIM: hak_trim(); break;
    default: break;   /* per-class caps: not applied by this library version */
    }
}

static void tick(int *have_prev, int *cur_i) {
    hak_snapshot_t *cur = &snap[*cur_i], *prev = &snap[!*cur_i];
    if (hak_shm_snapshot(hak_seg, cur) != 0) return;       /* busy: try next period */
    tuner_decision_t dec[TUNER_MAX_DECISIONS];
    int n = tuner_step(&tstate, *have_prev ? prev : NULL, cur, dec, TUNER_MAX_DECISIONS);
    for (int i = 0; i < n; i++) {
        apply(&dec[i]);
        uint64_t seq = tuner_shm_log_decision(hak_seg, &dec[i], hak_wall_ns());
        tuner_note_decision(&tstate, &dec[i], seq, cur);
        if (db) tuner_db_decision(db, db_run, hak_wall_ns(), seq, &dec[i]);
        if (hak_opt.verbose)
            hak_log("tuner: %s knob %u: %llu -> %llu (predicted %.3f)", tuner_reason_name(dec[i].reason),
                    dec[i].knob, (unsigned long long)dec[i].old_value, (unsigned long long)dec[i].new_value,
                    dec[i].predicted);
    }
    tuner_grade_t g[16];
    int ng = tuner_grade_pending(&tstate, cur, g, 16);
    for (int i = 0; i < ng; i++) {
        tuner_shm_log_grade(hak_seg, &g[i]);
        if (db) tuner_db_grade(db, db_run, &g[i]);
    }
    if (db) tuner_db_sample(db, db_run, cur);
    *have_prev = 1;
    *cur_i = !*cur_i;
}

static void open_history(void) {
    if (hak_opt.history[0] == '\0') return;
    char err[256];
    db = tuner_db_open(hak_opt.history, err, sizeof err);
    if (db == NULL) {
        hak_warn("HAKMEM_HISTORY=%s: %s; history is not recorded", hak_opt.history, err);
        return;
    }
    char cmd[512], host[256];
    read_cmdline(cmd, sizeof cmd);
    if (gethostname(host, sizeof host) != 0) strcpy(host, "?");
    host[sizeof host - 1] = '\0';
    if (hak_shm_snapshot(hak_seg, &snap[0]) != 0) memset(&snap[0], 0, sizeof snap[0]);
    db_run = tuner_db_run_begin(db, &snap[0], cmd, host, "in-process");
    if (db_run <= 0) {
        hak_warn("HAKMEM_HISTORY=%s: cannot start a run; history is not recorded", hak_opt.history);
        tuner_db_close(db);
        db = NULL;
    }
}

/* Sleep until the control block's seq moves (a requester FUTEX_WAKEs its low
 * 32 bits, see hak_shm_control_post), until stop, or for at most ms. */
static void wait_for_control(uint64_t ms) {
    uint32_t *word = (uint32_t *)&hak_seg->control.seq;     /* low half (little endian) */
    uint32_t seen = atomic_load_explicit((_Atomic uint32_t *)word, memory_order_acquire);
    uint64_t applied = atomic_load_explicit((_Atomic uint64_t *)&hak_seg->control.applied_seq, memory_order_relaxed);
    if (seen != (uint32_t)applied || atomic_load(&evolve_state) != 1 || atomic_load(&hak_tune_nudge)) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void *evolve_main(void *arg) {
    (void)arg;
    bool evolving = hak_opt.mode == HAK_MODE_EVOLVING;
    int have_prev = 0, cur_i = 0;
    if (evolving) {
        tuner_cfg_t cfg;
        if (hak_shm_snapshot(hak_seg, &snap[0]) == 0) tuner_cfg_default(&cfg, &snap[0]);
        else tuner_cfg_default(&cfg, NULL);
        cfg.cache_max_bytes = atomic_load(&hak_cache_max_bytes);
        cfg.ring_cap_max = HAK_RING_CAP_MAX;
        cfg.batch_min = HAK_BATCH_THRESHOLD_MIN;
        cfg.batch_max = HAK_BATCH_THRESHOLD_MAX;
        cfg.idle_ms = hak_opt.idle_ms;
        cfg.interval_ms = hak_opt.tune_interval_ms;
        tuner_init(&tstate, &cfg);
        open_history();
    }
    uint64_t period_ns = hak_opt.tune_interval_ms * 1000000ull;
    uint64_t next_tick = hak_now_ns() + period_ns;
    while (atomic_load(&evolve_state) == 1) {
        uint64_t now = hak_now_ns();
        uint64_t wait_ms = 1000;                        /* fixed mode: control requests only */
        if (evolving) wait_ms = now >= next_tick ? 0 : (next_tick - now + 999999) / 1000000;
        if (wait_ms > 0) wait_for_control(wait_ms);
        if (atomic_load(&evolve_state) != 1) break;
        hak_control_poll();                             /* applies --set/--trim even while the program sleeps */
        bool nudged = atomic_exchange(&hak_tune_nudge, false);
        if (evolving && (nudged || hak_now_ns() >= next_tick)) {
            tick(&have_prev, &cur_i);
            next_tick += period_ns;
            if (next_tick < hak_now_ns()) next_tick = hak_now_ns() + period_ns;
        }
    }
    if (db) {
        if (hak_shm_snapshot(hak_seg, &snap[cur_i]) == 0) tuner_db_sample(db, db_run, &snap[cur_i]);
        tuner_db_run_end(db, db_run, hak_wall_ns());
        tuner_db_close(db);
        db = NULL;
    }
    atomic_store(&evolve_state, 3);
    return NULL;
}

void hak_evolve_start_slow(void) {
    int expect = 0;
    if (!atomic_compare_exchange_strong(&evolve_state, &expect, 1)) return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&evolve_thread, &attr, evolve_main, NULL);
    if (rc != 0) {
        atomic_store(&evolve_state, 3);
        hak_warn("cannot start the background thread (%s): %s", strerror(rc),
                 hak_opt.mode == HAK_MODE_EVOLVING ? "knobs stay fixed" : "control requests apply on the next large op");
    }
    pthread_attr_destroy(&attr);
}

void hak_evolve_stop(void) {
    int expect = 1;
    if (!atomic_compare_exchange_strong(&evolve_state, &expect, 2)) return;
    syscall(SYS_futex, &hak_seg->control.seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    /* Let it close the run in the history; never hang the exit on it. */
    for (int i = 0; i < 1000 && atomic_load(&evolve_state) == 2; i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

void hak_evolve_child_reset(void) {
    /* The parent's thread does not exist here; its SQLite connection must not
     * be used across fork (sqlite.org: "do not carry a connection across fork"),
     * so it is dropped, not closed. A new thread and run start lazily. */
    db = NULL;
    atomic_store(&evolve_state, 0);
}
