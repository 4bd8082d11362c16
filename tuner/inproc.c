/*
 * inproc.c - the tuner layer's in-process host: the allocator's background
 * thread.  It applies control requests (hakmem-stat --set/--trim,
 * hakmem-tuner --drive) even while the program sleeps, and in
 * HAKMEM_MODE=evolving runs the in-process tuner.
 *
 * Layering (DESIGN.md item 16): this file belongs to the tuner layer, not to
 * the allocator core, so it lives in tuner/ though it is linked into the
 * library; no file of src/ includes a tuner header.  It reaches the core
 * only the way hakmem-tuner does from outside: it reads telemetry (the segment, hak_shm_snapshot) and
 * acts through control (hak_knob_set, hak_set_class_cap, hak_set_class_thp,
 * hak_trim, the control block).  The core never calls into it except to
 * start and stop the thread; a signal the tuner needs from the core (a run of
 * ghost misses) travels through telemetry: the core bumps
 * hak_seg->tune_signal and FUTEX_WAKEs control.seq, and this thread, which
 * sleeps on control.seq, looks at tune_signal before sleeping and after
 * waking.
 *
 * Started lazily by the first large allocation (not at init: a malloc made
 * while ld.so or libc are still starting up must not spawn threads), only in
 * evolving mode or with HAKMEM_BACKGROUND_THREAD=1; restarted lazily in a
 * forked child, stopped at exit.  Every HAKMEM_TUNE_INTERVAL_MS (and at once
 * when tune_signal moved; once the idle trim is done, less often, up to
 * HAK_EVOLVE_IDLE_TICK_MAX_MS) it takes a consistent snapshot of this process's
 * own segment, asks the pure policy (tuner/policy*.c) for decisions, applies
 * them through the same clamped setters as everybody else, logs them in the
 * segment's decision ring, grades earlier decisions, and - with
 * HAKMEM_HISTORY=file.db - records the sample and the decisions in SQLite
 * (tuner/db.c loads libsqlite3 with dlopen, so the allocator itself does not
 * depend on it).  Because it is a thread, the idle trim happens even while
 * the program sleeps.
 *
 * Exit: hak_evolve_stop waits up to HAK_EVOLVE_STOP_WAIT_MS for the thread to
 * close the run in the history.  A write waits at most
 * HAK_EVOLVE_DB_BUSY_MS for another writer's lock; once stopping, the thread
 * writes nothing but the final sample and the run's end, and retries the end
 * until HAK_EVOLVE_FINISH_MS have passed, so a history locked for a while by
 * another writer still gets its run closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hak_internal.h"
#include "db.h"
#include "policy.h"
#include "shmlog.h"

#define HAK_EVOLVE_DB_BUSY_MS   500u    /* in-process history: wait for another writer's lock, per write */
#define HAK_EVOLVE_FINISH_MS    2000u   /* once stopping: keep trying to close the run this long */
#define HAK_EVOLVE_STOP_WAIT_MS 3000u   /* exit waits this long at most for the thread */
/* Once the idle period is handled (the idle trim: tstate.trimmed), the ticks
 * back off, doubling from the period up to this; activity seen at the next
 * tick, or a run of ghost misses (tune_signal, which calls a tick at once),
 * brings the period back.  Control requests are applied at once as always.
 * A program that sleeps for hours wakes its tuner every 2 s, not 10 times a
 * second. */
#define HAK_EVOLVE_IDLE_TICK_MAX_MS 2000u
/* The exit must outwait a write in flight when it began plus the closing
 * retries (issue 13, defect 8: a 1 s wait against a 2 s busy timeout left
 * runs unclosed). */
_Static_assert(HAK_EVOLVE_STOP_WAIT_MS > HAK_EVOLVE_DB_BUSY_MS + HAK_EVOLVE_FINISH_MS,
               "the exit outwaits the history's busy timeout and the closing retries");
_Static_assert(HAK_EVOLVE_DB_BUSY_MS < TUNER_DB_BUSY_TIMEOUT_MS, "in-process writes wait less than the daemon's");

static _Atomic int evolve_state;          /* 0 not started, 1 running, 2 stopping, 3 stopped */
static pthread_t evolve_thread;

/* Tuner state, snapshots and a step's decisions: one tuner per process, kept
 * off the thread's stack. */
static tuner_state_t tstate HAK_PAGE_ALIGNED;
static hak_snapshot_t snap0 HAK_PAGE_ALIGNED, snap1 HAK_PAGE_ALIGNED;   /* pages of their own (forget) */
static hak_snapshot_t *const snap[2] = {&snap0, &snap1};
static tuner_decision_t dec[TUNER_MAX_DECISIONS] HAK_PAGE_ALIGNED;
static tuner_db_t *db;
static int64_t db_run;
static uint64_t signal_seen;             /* hak_seg->tune_signal last acted on */
static tuner_decision_t opening;         /* the opening move, applied at start, logged by the thread */
static int have_opening;

static bool stopping(void) { return atomic_load_explicit(&evolve_state, memory_order_relaxed) != 1; }

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

/* Apply one decision through the control layer's setters (clamped like any
 * other request). */
static void apply(const tuner_decision_t *d) {
    switch (d->knob) {
    case HAK_KNOB_RING_CAP: hak_knob_set(HAKMEM_KNOB_RING_CAP, d->new_value); break;
    case HAK_KNOB_BATCH_THRESHOLD: hak_knob_set(HAKMEM_KNOB_BATCH_THRESHOLD, d->new_value); break;
    case HAK_KNOB_TRIM: hak_trim(); break;
    case HAK_KNOB_CLASS_CAP: hak_set_class_cap(d->size_class, d->new_value); break;
    case HAK_KNOB_CLASS_THP:
        if (!(d->flags & TUNER_D_OBSERVED)) hak_set_class_thp(d->size_class, (unsigned)d->new_value);
        break;
    default: break;
    }
}

static void log_decision(const tuner_decision_t *d) {
    if (!hak_opt.verbose) return;
    char cls[24] = "";
    if (d->size_class != UINT32_MAX) snprintf(cls, sizeof cls, " class %u", d->size_class);
    if (d->knob == HAK_KNOB_CLASS_CAP && d->new_value == HAK_CLASS_CAP_GLOBAL)
        hak_log("tuner: %s %s%s: %llu -> global", tuner_reason_name(d->reason), tuner_knob_name(d->knob), cls,
                (unsigned long long)d->old_value);
    else
        hak_log("tuner: %s %s%s: %llu -> %llu (predicted %.3f)", tuner_reason_name(d->reason), tuner_knob_name(d->knob),
                cls, (unsigned long long)d->old_value, (unsigned long long)d->new_value, d->predicted);
}

/* The whole pages of [p, p+len) go back to the kernel (they read as zeroes). */
static void forget(void *p, size_t len) {
    uintptr_t a = ((uintptr_t)p + HAK_PAGE - 1) & ~(uintptr_t)(HAK_PAGE - 1), b = ((uintptr_t)p + len) & ~(uintptr_t)(HAK_PAGE - 1);
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

const void *hak_evolve_snapshot(int i, size_t *len) {
    *len = sizeof *snap[i];
    return snap[i];
}

static void tick(int *have_prev, int *cur_i) {
    hak_snapshot_t *cur = snap[*cur_i], *prev = snap[!*cur_i];
    if (hak_shm_snapshot(hak_seg, cur) != 0) return;       /* busy: try next period */
    int n = tuner_step(&tstate, *have_prev ? prev : NULL, cur, dec, (int)TUNER_MAX_DECISIONS);
    for (int i = 0; i < n; i++) {
        apply(&dec[i]);
        uint64_t seq = tuner_shm_log_decision(hak_seg, &dec[i], hak_wall_ns());
        tuner_note_decision(&tstate, &dec[i], seq, cur);
        /* once stopping, only the run's end is written (see the top) */
        if (db && !stopping()) tuner_db_decision(db, db_run, hak_wall_ns(), seq, &dec[i]);
        log_decision(&dec[i]);
    }
    tuner_grade_t g[16];
    int ng = tuner_grade_pending(&tstate, cur, g, 16);
    for (int i = 0; i < ng; i++) {
        tuner_shm_log_grade(hak_seg, &g[i]);
        if (db && !stopping()) tuner_db_grade(db, db_run, &g[i]);
    }
    if (db && !stopping()) tuner_db_sample(db, db_run, cur);
    /* idle (the ticks backing off): the older snapshot is not read again
     * (the next tick writes it whole), nor are the decisions; their pages go
     * back, and an idle process keeps one snapshot, not two */
    if (tstate.trimmed) {
        forget(prev, sizeof *prev);
        forget(dec, sizeof dec);
    }
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
    tuner_db_set_busy_timeout(db, (int)HAK_EVOLVE_DB_BUSY_MS);
    char cmd[512], host[256];
    read_cmdline(cmd, sizeof cmd);
    if (gethostname(host, sizeof host) != 0) strcpy(host, "?");
    host[sizeof host - 1] = '\0';
    if (hak_shm_snapshot(hak_seg, snap[0]) != 0) memset(snap[0], 0, sizeof *snap[0]);
    db_run = tuner_db_run_begin(db, snap[0], cmd, host, "in-process");
    if (db_run <= 0) {
        hak_warn("HAKMEM_HISTORY=%s: cannot start a run; history is not recorded", hak_opt.history);
        tuner_db_close(db);
        db = NULL;
    }
}

/* Close the run: the last sample (once), then the end, retried while another
 * writer holds the lock, for at most HAK_EVOLVE_FINISH_MS. */
static void close_history(int cur_i) {
    if (db == NULL) return;
    uint64_t deadline = hak_now_ns() + HAK_EVOLVE_FINISH_MS * 1000000ull;
    if (hak_shm_snapshot(hak_seg, snap[cur_i]) == 0) tuner_db_sample(db, db_run, snap[cur_i]);
    while (tuner_db_run_end(db, db_run, hak_wall_ns()) != 0 && hak_now_ns() < deadline) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    tuner_db_close(db);
    db = NULL;
}

static uint64_t tune_signal_now(void) {
    return atomic_load_explicit((_Atomic uint64_t *)&hak_seg->tune_signal, memory_order_acquire);
}

/* Sleep until the control block's seq moves (a requester FUTEX_WAKEs its low
 * 32 bits, see hak_shm_control_post; the core does the same after bumping
 * tune_signal), until stop, or for at most ms.  Returns at once when a
 * request is pending or, when evolving, tune_signal moved since it was last
 * acted on. */
static void wait_for_control(uint64_t ms, bool evolving) {
    uint32_t *word = (uint32_t *)&hak_seg->control.seq;     /* low half (little endian) */
    uint32_t seen = atomic_load_explicit((_Atomic uint32_t *)word, memory_order_acquire);
    uint64_t applied = atomic_load_explicit((_Atomic uint64_t *)&hak_seg->control.applied_seq, memory_order_relaxed);
    if (seen != (uint32_t)applied || stopping() || (evolving && tune_signal_now() != signal_seen)) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void *evolve_main(void *arg) {
    (void)arg;
    (void)pthread_setname_np(pthread_self(), "hakmem-tuner");   /* ps -L, top -H: whose thread this is */
    bool evolving = hak_opt.mode == HAK_MODE_EVOLVING;
    int have_prev = 0, cur_i = 0;
    if (evolving) {
        tuner_cfg_t cfg;
        if (hak_shm_snapshot(hak_seg, snap[0]) == 0) tuner_cfg_default(&cfg, snap[0]);
        else tuner_cfg_default(&cfg, NULL);
        cfg.cache_max_bytes = atomic_load(&hak_cache_max_bytes);
        cfg.ring_cap_max = HAK_RING_CAP_MAX;
        cfg.batch_min = HAK_BATCH_THRESHOLD_MIN;
        cfg.batch_max = HAK_BATCH_THRESHOLD_MAX;
        cfg.idle_ms = hak_opt.idle_ms;
        cfg.interval_ms = hak_opt.tune_interval_ms;
        tuner_init(&tstate, &cfg);
        open_history();
        signal_seen = tune_signal_now();
        if (have_opening) {
            /* logged like the others; not graded (it predicts no flush cost) */
            uint64_t seq = tuner_shm_log_decision(hak_seg, &opening, hak_wall_ns());
            if (db) tuner_db_decision(db, db_run, hak_wall_ns(), seq, &opening);
            log_decision(&opening);
            have_opening = 0;
        }
    }
    uint64_t period_ns = hak_opt.tune_interval_ms * 1000000ull;
    /* a signalled tick comes at most this soon after the previous one:
     * a tenth of the period, between 1 and 10 ms */
    uint64_t min_gap_ns = period_ns / 10;
    if (min_gap_ns < 1000000ull) min_gap_ns = 1000000ull;
    if (min_gap_ns > 10000000ull) min_gap_ns = 10000000ull;
    uint64_t next_tick = hak_now_ns() + period_ns, last_tick = 0, idle_step = 0;
    while (!stopping()) {
        uint64_t now = hak_now_ns();
        uint64_t wait_ms = 1000;                        /* fixed mode: control requests only */
        if (evolving) wait_ms = now >= next_tick ? 0 : (next_tick - now + 999999) / 1000000;
        if (wait_ms > 0) wait_for_control(wait_ms, evolving);
        if (stopping()) break;
        hak_control_poll();                             /* applies --set/--trim even while the program sleeps */
        if (!evolving) continue;
        now = hak_now_ns();
        uint64_t sig = tune_signal_now();
        bool signalled = sig != signal_seen;
        if (signalled && now - last_tick < min_gap_ns) {
            /* a burst of signals: look again once the gap has passed */
            struct timespec ts = {0, (long)(min_gap_ns - (now - last_tick))};
            nanosleep(&ts, NULL);
            now = hak_now_ns();
        }
        if (signalled || now >= next_tick) {
            signal_seen = sig;
            tick(&have_prev, &cur_i);
            last_tick = hak_now_ns();
            uint64_t step = period_ns;
            if (tstate.trimmed) {
                idle_step = idle_step ? idle_step * 2 : period_ns * 2;
                if (idle_step > HAK_EVOLVE_IDLE_TICK_MAX_MS * 1000000ull)
                    idle_step = HAK_EVOLVE_IDLE_TICK_MAX_MS * 1000000ull;
                if (idle_step > step) step = idle_step;
            } else {
                idle_step = 0;
            }
            next_tick += step;
            if (next_tick < last_tick) next_tick = last_tick + step;
        }
    }
    close_history(cur_i);
    atomic_store(&evolve_state, 3);
    return NULL;
}

/* The opening move (tuner_opening), unless the user chose the threshold:
 * made here, in the thread of the first large allocation, because the
 * program's first frees may come before the tuner thread runs at all. */
static void open_batch(void) {
    if (hak_opt.mode != HAK_MODE_EVOLVING || hak_option_given("HAKMEM_BATCH_THRESHOLD")) return;
    if (tuner_opening(atomic_load(&hak_cache_max_bytes), atomic_load(&hak_batch_threshold), &opening) == 0) return;
    hak_knob_set(HAKMEM_KNOB_BATCH_THRESHOLD, opening.new_value);
    have_opening = 1;
}

void hak_evolve_start_slow(void) {
    int expect = 0;
    if (!atomic_compare_exchange_strong(&evolve_state, &expect, 1)) return;
    open_batch();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The thread blocks every signal: it inherits the mask of whichever
     * thread made the first large allocation, and a signal the program blocks
     * everywhere to read it (signalfd, sigwait) would otherwise be delivered
     * here, where its default action ends the process. */
    sigset_t all, old;
    sigfillset(&all);
    int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    int rc = pthread_create(&evolve_thread, &attr, evolve_main, NULL);
    if (masked) pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        atomic_store(&evolve_state, 3);
        if (have_opening) {             /* no tuner to give the pending bytes back: as it was */
            hak_knob_set(HAKMEM_KNOB_BATCH_THRESHOLD, opening.old_value);
            have_opening = 0;
        }
        hak_warn("cannot start the background thread (%s): %s", strerror(rc),
                 hak_opt.mode == HAK_MODE_EVOLVING ? "knobs stay fixed" : "control requests apply on the next large op");
    }
    pthread_attr_destroy(&attr);
}

void hak_evolve_stop(void) {
    int expect = 1;
    if (!atomic_compare_exchange_strong(&evolve_state, &expect, 2)) return;
    syscall(SYS_futex, &hak_seg->control.seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    /* Let it close the run in the history (see the top); never hang the exit
     * on it longer than that. */
    uint64_t deadline = hak_now_ns() + HAK_EVOLVE_STOP_WAIT_MS * 1000000ull;
    while (atomic_load(&evolve_state) == 2 && hak_now_ns() < deadline) {
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
