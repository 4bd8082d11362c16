/*
 * tuner/main.c - hakmem-tuner, the tuner as a daemon.
 *
 * Records the history of running hakmem processes (--pid N, or --all of this
 * user's) from their telemetry segments into a SQLite DB, one sample per
 * --interval; with --drive it also tunes processes running in fixed mode from
 * outside: the same policy as HAKMEM_MODE=evolving (tuner/policy*.c), whose
 * decisions are posted through the segment's control block and logged in its
 * decision ring.  SIGINT/SIGTERM (or --duration) end every run cleanly.
 * With --listen it also serves GET /metrics: the live telemetry of every
 * hakmem process in the Prometheus text format (tuner/listen.c); --listen
 * alone (no --db) is a plain exporter.
 *
 * Exit status: the table every hakmem tool shares (tools/cli.h, README.md):
 * 0 done (targets exited, duration over, or signalled), 1 runtime error (DB,
 * listen socket), 2 usage error, 3 no such process, 4 no hakmem segment, 5 not
 * ours, ... (the segment reader's errors, as hakmem-stat reports them).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"
#include "../tools/cli.h"
#include "db.h"
#include "listen.h"
#include "policy.h"
#include "shmlog.h"

#define MAX_TARGETS 256
#define CLS_CAP 0x1u
#define CLS_THP 0x2u
#define CLASS_POST_BUDGET_NS 20000000ull   /* per tick: time spent waiting for class requests to apply */
#define MAX_SNAP_FAILS 20   /* consecutive failed snapshots before a target is dropped */

static const char usage_text[] =
    "Usage: hakmem-tuner --db FILE (-p PID [-p PID...] | --all) [options]\n"
    "       hakmem-tuner --listen [ADDR:PORT] [--db FILE (-p PID | --all)] [options]\n"
    "Record the tuning history of running hakmem processes (samples of every counter,\n"
    "knob and size class) into a SQLite DB, and with --drive tune fixed-mode processes\n"
    "from outside with the same policy as HAKMEM_MODE=evolving.\n"
    "\n"
    "  --db FILE             history database (created or migrated; WAL mode)\n"
    "  -p, --pid PID         follow process PID (repeatable); exits when they all have exited\n"
    "  --all                 follow every hakmem process of this user, as they come and go\n"
    "  -i, --interval SEC    sampling / tuning interval in seconds (default 0.25, 0.01..60;\n"
    "                        fractions allowed, \"250ms\" too)\n"
    "  --drive               tune processes in HAKMEM_MODE=fixed through their control block\n"
    "                        (evolving processes tune themselves and are only recorded)\n"
    "  -d, --duration SEC    stop after SEC seconds (default: run until signalled)\n"
    "  --idle SEC            idle time before a trim (default: the process's HAKMEM_IDLE_MS)\n"
    "  --budget BYTES        cache budget for the ring cap (K/M/G; default: HAKMEM_CACHE_MAX_BYTES)\n"
    "  --cap-min N           lowest ring cap to set, global or per class (default 1)\n"
    "  --cap-max N           highest ring cap to set, global or per class (default 512)\n"
    "  --listen [ADDR:PORT]  serve GET /metrics over HTTP: the telemetry of every hakmem\n"
    "                        process of this user, Prometheus text format (the names of\n"
    "                        hakmem-stat --prometheus); default " TUNER_LISTEN_DEFAULT " (loopback);\n"
    "                        PORT alone means 127.0.0.1:PORT, port 0 a free one.  Without --db\n"
    "                        it only serves metrics, until signalled or --duration\n"
    "  -q, --quiet           print errors only\n"
    "  -h, --help            this text\n"
    "  -V, --version         the hakmem version\n"
    "\n";

static const char usage_tail[] =
    "  Conventions shared by the hakmem tools: README.md, \"Command-line conventions\n"
    "  and exit status\".\n"
    "Examples:\n"
    "  hakmem-tuner --db hist.db -p 1234 --drive --interval 0.1\n"
    "  hakmem-tuner --db hist.db --all --duration 60\n"
    "  hakmem-tuner --listen 127.0.0.1:9464\n";

typedef struct opts {
    const char *db_path;
    int pids[MAX_TARGETS];
    int npids;
    int all, drive, quiet;
    double interval_s, duration_s;  /* seconds; duration 0 = until signalled */
    uint64_t idle_ms, budget, cap_min, cap_max;
    int have_cap_min, have_cap_max;
    const char *listen;             /* --listen ADDR:PORT, NULL = no endpoint */
} opts_t;

typedef struct target {
    int pid;
    hak_shm_handle_t h;
    int writable, driving;
    int64_t run;
    hak_snapshot_t prev, cur;
    int have_prev;
    int fails;
    uint64_t seen_head;             /* decision log entries already recorded (recording only) */
    uint64_t ctl_seq, ctl_flags, ctl_cap, ctl_thr;   /* our last control request */
    /* per-class requests: the control block has one class slot, so they go
     * one class at a time (post_class_requests) */
    uint64_t cls_cap[HAK_SHM_CLASSES];   /* CLASS_CAP to post (HAK_CLASS_CAP_GLOBAL = follow ring_cap) */
    uint32_t cls_thp[HAK_SHM_CLASSES];   /* CLASS_THP state to post */
    uint8_t cls_dirty[HAK_SHM_CLASSES];  /* CLS_CAP | CLS_THP: still to post */
    uint64_t cls_seq;                    /* our last class request (0 = none) */
    tuner_state_t st;
    int alive;
} target_t;

#define mono_ns hak_cli_mono_ns

static int parse_u64(const char *s, uint64_t *out, int sizes) {
    char *end;
    errno = 0;
    if (s == NULL || *s == '\0' || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    uint64_t mul = 1;
    if (sizes && *end) {
        switch (*end | 0x20) {
        case 'k': mul = 1ull << 10; break;
        case 'm': mul = 1ull << 20; break;
        case 'g': mul = 1ull << 30; break;
        default: return -1;
        }
        end++;
        if ((*end | 0x20) == 'i') end++;
        if ((*end | 0x20) == 'b') end++;
    }
    if (*end) return -1;
    if (v > UINT64_MAX / mul) return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

/* The syntax tuner_listen_open takes ("ADDR:PORT", "[IPv6]:PORT", ":PORT",
 * "PORT"; PORT 0..65535), checked here so that a malformed value is a usage
 * error (2), not a runtime one: binding can still fail later (1). */
static int listen_spec_ok(const char *spec) {
    const char *port;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL || close == spec + 1 || close[1] != ':') return 0;
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        port = colon ? colon + 1 : spec;
    }
    if (*port == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port)) return 0;
    return atol(port) <= 65535;
}

static int parse_args(int argc, char **argv, opts_t *o) {
    enum { O_DB = 256, O_ALL, O_DRIVE, O_IDLE, O_IDLE_MS, O_BUDGET, O_CAPMIN, O_CAPMAX, O_LISTEN };
    static const struct option lo[] = {
        {"db", required_argument, 0, O_DB},           {"pid", required_argument, 0, 'p'},
        {"all", no_argument, 0, O_ALL},               {"interval", required_argument, 0, 'i'},
        {"drive", no_argument, 0, O_DRIVE},           {"duration", required_argument, 0, 'd'},
        {"idle", required_argument, 0, O_IDLE},       {"idle-ms", required_argument, 0, O_IDLE_MS},
        {"budget", required_argument, 0, O_BUDGET},
        {"cap-min", required_argument, 0, O_CAPMIN},  {"cap-max", required_argument, 0, O_CAPMAX},
        {"listen", optional_argument, 0, O_LISTEN},
        {"quiet", no_argument, 0, 'q'},               {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->interval_s = 0.25;
    o->cap_max = 512;
    o->cap_min = 1;
    opterr = 0;
    int c, pid;
    double secs = 0;
    while ((c = getopt_long(argc, argv, ":p:i:d:qhV", lo, NULL)) != -1) {
        switch (c) {
        case O_DB: o->db_path = optarg; break;
        case 'p':
            if (hak_cli_parse_pid(optarg, &pid) != 0) return hak_cli_usage_error("'%s' is not a process id", optarg);
            if (o->npids == MAX_TARGETS) return hak_cli_usage_error("too many --pid (max %d)", MAX_TARGETS);
            o->pids[o->npids++] = pid;
            break;
        case O_ALL: o->all = 1; break;
        case 'i':
            if (hak_cli_parse_seconds(optarg, 0.01, 60, &o->interval_s) != 0) {
                /* before 0.1 the interval was in ms: "--interval 100" */
                if (hak_cli_parse_seconds(optarg, 60, 60000, &secs) == 0)
                    return hak_cli_usage_error("--interval is in seconds (0.01..60): for %s ms write %g or %sms",
                                               optarg, secs / 1000, optarg);
                return hak_cli_usage_error("--interval: '%s' is not a number of seconds in 0.01..60", optarg);
            }
            break;
        case O_DRIVE: o->drive = 1; break;
        case 'd':
            if (hak_cli_parse_seconds(optarg, 0.001, 1e8, &o->duration_s) != 0)
                return hak_cli_usage_error("--duration: '%s' is not a positive number of seconds", optarg);
            break;
        case O_IDLE:
        case O_IDLE_MS:   /* --idle-ms MS: the older spelling, still accepted */
            if (c == O_IDLE_MS ? parse_u64(optarg, &o->idle_ms, 0) != 0
                               : hak_cli_parse_seconds(optarg, 0.01, 3600, &secs) != 0)
                return hak_cli_usage_error("%s: '%s' is not a time in 0.01..3600 s", c == O_IDLE ? "--idle" : "--idle-ms",
                                           optarg);
            if (c == O_IDLE) o->idle_ms = (uint64_t)llround(secs * 1000);
            if (o->idle_ms < 10 || o->idle_ms > 3600000)
                return hak_cli_usage_error("--idle-ms: '%s' is not a number of ms in 10..3600000", optarg);
            break;
        case O_BUDGET:
            if (parse_u64(optarg, &o->budget, 1) != 0 || o->budget == 0)
                return hak_cli_usage_error("--budget: '%s' is not a size (e.g. 512M)", optarg);
            break;
        case O_CAPMIN:
            if (parse_u64(optarg, &o->cap_min, 0) != 0 || o->cap_min > 512)
                return hak_cli_usage_error("--cap-min: '%s' is not in 0..512", optarg);
            o->have_cap_min = 1;
            break;
        case O_CAPMAX:
            if (parse_u64(optarg, &o->cap_max, 0) != 0 || o->cap_max > 512)
                return hak_cli_usage_error("--cap-max: '%s' is not in 0..512", optarg);
            o->have_cap_max = 1;
            break;
        case O_LISTEN:
            /* --listen, --listen=ADDR:PORT, or --listen ADDR:PORT (a next word that is not an option) */
            if (optarg) o->listen = optarg;
            else if (optind < argc && argv[optind][0] != '-') o->listen = argv[optind++];
            else o->listen = TUNER_LISTEN_DEFAULT;
            if (!listen_spec_ok(o->listen))
                return hak_cli_usage_error("--listen: '%s' is not [ADDR:]PORT (PORT 0..65535; [IPv6]:PORT)", o->listen);
            break;
        case 'q': o->quiet = 1; break;
        case 'h':
            fputs(usage_text, stdout);
            hak_cli_print_exit_table(stdout);
            fputs(usage_tail, stdout);
            return hak_cli_stdout_done() == 0 ? -1 : HAK_EXIT_ERROR;
        case 'V': return hak_cli_version(NULL) == 0 ? -1 : HAK_EXIT_ERROR;
        default: return hak_cli_bad_option(c, argv);
        }
    }
    if (optind < argc) return hak_cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->db_path == NULL && o->listen == NULL) return hak_cli_usage_error("--db FILE is required");
    if (o->db_path == NULL && (o->all || o->npids || o->drive))
        return hak_cli_usage_error("--pid, --all and --drive record into a DB: give --db FILE");
    if (o->db_path != NULL && !o->all && o->npids == 0) return hak_cli_usage_error("give -p PID or --all");
    if (o->all && o->npids) return hak_cli_usage_error("--pid and --all exclude each other");
    if (o->cap_min > o->cap_max) return hak_cli_usage_error("--cap-min is above --cap-max");
    return 0;
}

static void read_cmdline(int pid, char *buf, size_t len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    while (n > 0 && buf[n - 1] == '\0') n--;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0' || (unsigned char)buf[i] < 0x20) buf[i] = ' ';
    buf[n] = '\0';
}

static int process_alive(int pid) {
    if (kill(pid, 0) == 0 || errno == EPERM) {
        /* a zombie is not alive for us */
        char path[64], st[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        ssize_t n = read(fd, st, sizeof st - 1);
        close(fd);
        if (n <= 0) return 0;
        st[n] = '\0';
        char *p = strrchr(st, ')');
        return !(p && p[1] == ' ' && p[2] == 'Z');
    }
    return 0;
}

static void cfg_for(const opts_t *o, const hak_snapshot_t *s, tuner_cfg_t *cfg) {
    tuner_cfg_default(cfg, s);
    cfg->cache_max_bytes = o->budget;      /* 0 = follow the process's knob */
    cfg->idle_ms = o->idle_ms;             /* 0 = the process's HAKMEM_IDLE_MS */
    cfg->interval_ms = (uint64_t)llround(o->interval_s * 1000);
    cfg->ring_cap_min = o->cap_min;
    cfg->ring_cap_max = o->cap_max;
}

/* Open target pid; 0, or -enum hak_shm_err (message printed when loud). */
static int target_open(const opts_t *o, tuner_db_t *db, target_t *t, int pid, int loud) {
    memset(t, 0, sizeof *t);
    t->pid = pid;
    int rc = hak_shm_open_pid(pid, &t->h);
    if (rc != 0) {
        if (loud) fprintf(stderr, "hakmem-tuner: pid %d: %s\n", pid, hak_shm_strerror(rc));
        return rc;
    }
    t->writable = (fcntl(t->h.fd, F_GETFL) & O_ACCMODE) == O_RDWR;
    rc = hak_shm_snapshot(t->h.shm, &t->cur);
    if (rc != 0) {
        if (loud) fprintf(stderr, "hakmem-tuner: pid %d: %s\n", pid, hak_shm_strerror(rc));
        hak_shm_close(&t->h);
        return rc;
    }
    if (o->drive && t->cur.mode == HAK_MODE_FIXED) {
        if (!t->writable) {
            fprintf(stderr, "hakmem-tuner: pid %d: segment is read-only for us: cannot drive it (recording only)\n",
                    pid);
        } else {
            t->driving = 1;
        }
    } else if (o->drive && !o->quiet) {
        printf("hakmem-tuner: pid %d runs in %s mode: recording only%s\n", pid, hak_mode_name(t->cur.mode),
               t->cur.mode == HAK_MODE_EVOLVING ? " (it tunes itself)" : "");
    }
    char cmd[1024];
    read_cmdline(pid, cmd, sizeof cmd);
    t->run = tuner_db_run_begin(db, &t->cur, cmd[0] ? cmd : NULL, NULL, "daemon");
    if (t->run < 0) {
        fprintf(stderr, "hakmem-tuner: pid %d: %s\n", pid, tuner_db_errmsg(db));
        hak_shm_close(&t->h);
        return -HAK_SHM_EIO;
    }
    tuner_cfg_t cfg;
    cfg_for(o, &t->cur, &cfg);
    tuner_init(&t->st, &cfg);
    t->seen_head = t->cur.decision_head;
    t->alive = 1;
    if (!o->quiet)
        printf("hakmem-tuner: pid %d (%s, %s mode) -> run %" PRId64 "%s\n", pid, t->cur.comm,
               hak_mode_name(t->cur.mode), t->run, t->driving ? ", driving" : "");
    fflush(stdout);
    return 0;
}

static void target_close(tuner_db_t *db, target_t *t, const char *why, int quiet) {
    if (!t->alive) return;
    if (tuner_db_run_end(db, t->run, tuner_db_now_ns()) != 0)
        fprintf(stderr, "hakmem-tuner: pid %d: %s\n", t->pid, tuner_db_errmsg(db));
    hak_shm_close(&t->h);
    t->alive = 0;
    if (!quiet) printf("hakmem-tuner: pid %d: run %" PRId64 " ended (%s)\n", t->pid, t->run, why);
    fflush(stdout);
}

static int request_applied(const target_t *t, uint64_t seq) {
    return seq == 0 || __atomic_load_n(&t->h.shm->control.applied_seq, __ATOMIC_ACQUIRE) >= seq;
}

/* Post the queued per-class requests, one class per request: the control
 * block holds one class at a time, so each waits until the library applied
 * the previous one (it does at its next large operation, or at once from its
 * background thread).  What is not applied within CLASS_POST_BUDGET_NS stays
 * queued for the next tick. */
static void post_class_requests(target_t *t) {
    uint64_t deadline = mono_ns() + CLASS_POST_BUDGET_NS;
    for (uint32_t c = 0; c < HAK_SHM_CLASSES; c++) {
        if (!t->cls_dirty[c]) continue;
        while (!request_applied(t, t->cls_seq)) {
            if (mono_ns() >= deadline) return;
            struct timespec ts = {0, 200000L};
            nanosleep(&ts, NULL);
        }
        uint64_t flags = (t->cls_dirty[c] & CLS_CAP ? HAK_CTL_CLASS_CAP : 0) |
                         (t->cls_dirty[c] & CLS_THP ? HAK_CTL_CLASS_THP : 0);
        t->cls_seq = hak_shm_control_post_class(t->h.shm, flags, c, t->cls_cap[c], t->cls_thp[c]);
        t->cls_dirty[c] = 0;
    }
}

/* Post the decisions of one step: the global knobs and the trim as ONE
 * control request (merged with our previous request if the library has not
 * applied it yet), the per-class ones queued for post_class_requests. */
static void post_control(target_t *t, const tuner_decision_t *d, int n) {
    uint64_t flags = 0;
    for (int i = 0; i < n; i++) {
        uint32_t c = d[i].size_class;
        switch (d[i].knob) {
        case HAK_KNOB_RING_CAP: flags |= HAK_CTL_RING_CAP, t->ctl_cap = d[i].new_value; break;
        case HAK_KNOB_BATCH_THRESHOLD: flags |= HAK_CTL_BATCH_THRESHOLD, t->ctl_thr = d[i].new_value; break;
        case HAK_KNOB_TRIM: flags |= HAK_CTL_TRIM; break;
        case HAK_KNOB_CLASS_CAP:
            if (c < HAK_SHM_CLASSES) t->cls_cap[c] = d[i].new_value, t->cls_dirty[c] |= CLS_CAP;
            break;
        case HAK_KNOB_CLASS_THP:
            if (c < HAK_SHM_CLASSES && !(d[i].flags & TUNER_D_OBSERVED))
                t->cls_thp[c] = (uint32_t)d[i].new_value, t->cls_dirty[c] |= CLS_THP;
            break;
        default: break;
        }
    }
    if (flags) {
        if (t->ctl_seq && !request_applied(t, t->ctl_seq)) flags |= t->ctl_flags;
        t->ctl_flags = flags;
        t->ctl_seq = hak_shm_control_post(t->h.shm, flags, t->ctl_cap, t->ctl_thr);
    }
    post_class_requests(t);
}

static const char *thp_state_name(uint64_t v) {
    switch (v) {
    case HAK_CTHP_NA: return "n/a";
    case HAK_CTHP_UNDECIDED: return "undecided";
    case HAK_CTHP_HUGE: return "huge";
    case HAK_CTHP_SMALL: return "small";
    default: return "?";
    }
}

static void print_decision(int pid, const tuner_decision_t *d, uint64_t seq) {
    if (d->knob == HAK_KNOB_TRIM)
        printf("pid %d: #%" PRIu64 " trim (%s): %" PRIu64 " bytes held -> 0\n", pid, seq, tuner_reason_name(d->reason),
               d->old_value);
    else if (d->knob == HAK_KNOB_CLASS_THP)
        printf("pid %d: #%" PRIu64 " class_thp[%u] %s -> %s (%s%s, touched %.0f%%)\n", pid, seq, d->size_class,
               thp_state_name(d->old_value), thp_state_name(d->new_value), tuner_reason_name(d->reason),
               d->flags & TUNER_D_OBSERVED ? ", chosen by the library" : "", d->predicted * 100.0);
    else if (d->knob == HAK_KNOB_THP_COST)
        printf("pid %d: #%" PRIu64 " thp_cost: %s (%s, chosen by the library: a huge-page fault costs %.2fx 512 "
               "faults of 4 KiB pages)\n",
               pid, seq, d->new_value ? "4 KiB pages for fresh blocks of huge-page classes" : "huge pages again",
               tuner_reason_name(d->reason), d->predicted);
    else if (d->knob == HAK_KNOB_CLASS_CAP && d->new_value == HAK_CLASS_CAP_GLOBAL)
        printf("pid %d: #%" PRIu64 " class_cap[%u] %" PRIu64 " -> global (%s)\n", pid, seq, d->size_class, d->old_value,
               tuner_reason_name(d->reason));
    else if (d->knob == HAK_KNOB_CLASS_CAP)
        printf("pid %d: #%" PRIu64 " class_cap[%u] %" PRIu64 " -> %" PRIu64 " (%s, predicted %.3f, before %.3f)\n", pid,
               seq, d->size_class, d->old_value, d->new_value, tuner_reason_name(d->reason), d->predicted, d->before);
    else
        printf("pid %d: #%" PRIu64 " %s %" PRIu64 " -> %" PRIu64 " (%s, predicted %.3f, before %.3f)\n", pid, seq,
               tuner_knob_name(d->knob), d->old_value, d->new_value, tuner_reason_name(d->reason), d->predicted,
               d->before);
}

/* Recording only: copy decisions the process logged itself into the DB. */
static void record_logged_decisions(tuner_db_t *db, target_t *t) {
    uint64_t head = t->cur.decision_head;
    if (head <= t->seen_head) return;
    uint64_t from = head - t->seen_head > HAK_SHM_DECISIONS ? head - HAK_SHM_DECISIONS + 1 : t->seen_head + 1;
    /* by count, at most the ring: a head near UINT64_MAX (a corrupt segment)
     * must not make n <= head true for ever */
    for (uint64_t i = 0, count = head - from + 1; i < count && i < HAK_SHM_DECISIONS; i++) {
        uint64_t n = from + i;
        const hak_shm_decision_t *e = &t->h.shm->decisions[(n - 1) % HAK_SHM_DECISIONS];
        hak_shm_decision_t copy;
        if (__atomic_load_n(&e->seq, __ATOMIC_ACQUIRE) != n) continue;
        memcpy(&copy, e, sizeof copy);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != n) continue;
        tuner_decision_t d = {.knob = copy.knob, .size_class = copy.size_class, .old_value = copy.old_value,
                              .new_value = copy.new_value, .reason = copy.reason, .driver_class = UINT32_MAX,
                              .predicted = copy.predicted, .before = __builtin_nan("")};
        if (tuner_db_decision(db, t->run, copy.time_ns, n, &d) < 0)
            fprintf(stderr, "hakmem-tuner: pid %d: %s\n", t->pid, tuner_db_errmsg(db));
    }
    t->seen_head = head;
}

static void target_tick(const opts_t *o, tuner_db_t *db, target_t *t);

/* A tick under the SIGBUS guard: a segment truncated while it is read (or
 * written, when driving) ends that run, not the daemon and every other run. */
static void target_tick_guarded(const opts_t *o, tuner_db_t *db, target_t *t) {
    if (sigsetjmp(hak_cli_bus_env, 1) == 0) {
        hak_cli_bus_armed = 1;
        target_tick(o, db, t);
        hak_cli_bus_armed = 0;
    } else {
        fprintf(stderr, "hakmem-tuner: pid %d: %s; giving up on it\n", t->pid, hak_shm_strerror(-HAK_SHM_ESHORT));
        target_close(db, t, "truncated segment", o->quiet);
    }
}

static void target_tick(const opts_t *o, tuner_db_t *db, target_t *t) {
    if (!process_alive(t->pid)) {
        target_close(db, t, "process exited", o->quiet);
        return;
    }
    int rc = hak_shm_snapshot(t->h.shm, &t->cur);
    if (rc != 0) {
        if (++t->fails >= MAX_SNAP_FAILS) {
            fprintf(stderr, "hakmem-tuner: pid %d: %s; giving up on it\n", t->pid, hak_shm_strerror(rc));
            target_close(db, t, "unreadable segment", o->quiet);
        }
        return;
    }
    t->fails = 0;
    if (tuner_db_sample(db, t->run, &t->cur) != 0)
        fprintf(stderr, "hakmem-tuner: pid %d: sample not recorded: %s\n", t->pid, tuner_db_errmsg(db));
    if (t->driving) {
        if (t->cur.mode != HAK_MODE_FIXED) {   /* switched to evolving? leave it alone */
            t->driving = 0;
        } else {
            static tuner_decision_t d[TUNER_MAX_DECISIONS];   /* one target at a time */
            int n = tuner_step(&t->st, t->have_prev ? &t->prev : NULL, &t->cur, d, (int)TUNER_MAX_DECISIONS);
            post_control(t, d, n);
            uint64_t now = tuner_db_now_ns();
            for (int i = 0; i < n; i++) {
                uint64_t seq = tuner_shm_log_decision(t->h.shm, &d[i], now);
                if (tuner_db_decision(db, t->run, now, seq, &d[i]) < 0)
                    fprintf(stderr, "hakmem-tuner: pid %d: decision not recorded: %s\n", t->pid, tuner_db_errmsg(db));
                tuner_note_decision(&t->st, &d[i], seq, &t->cur);
                if (!o->quiet) print_decision(t->pid, &d[i], seq);
            }
            t->seen_head = __atomic_load_n(&t->h.shm->decision_head, __ATOMIC_ACQUIRE);
            tuner_grade_t g[16];
            int ng = tuner_grade_pending(&t->st, &t->cur, g, 16);
            for (int i = 0; i < ng; i++) {
                tuner_shm_log_grade(t->h.shm, &g[i]);
                if (tuner_db_grade(db, t->run, &g[i]) != 0)
                    fprintf(stderr, "hakmem-tuner: pid %d: grade not recorded: %s\n", t->pid, tuner_db_errmsg(db));
                if (!o->quiet)
                    printf("pid %d: #%" PRIu64 " %s (observed %.3f)\n", t->pid, g[i].decision_seq,
                           tuner_grade_name(g[i].grade), g[i].observed);
            }
        }
    } else {
        record_logged_decisions(db, t);
    }
    t->prev = t->cur;
    t->have_prev = 1;
    fflush(stdout);
}

static target_t *find_target(target_t *ts, int n, int pid) {
    for (int i = 0; i < n; i++)
        if (ts[i].alive && ts[i].pid == pid) return &ts[i];
    return NULL;
}

/* --all: open segments of this user's processes that appeared. */
static void scan_all(const opts_t *o, tuner_db_t *db, target_t *ts, int *nts) {
    DIR *d = opendir(HAK_SHM_DIR);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, HAK_SHM_PREFIX, strlen(HAK_SHM_PREFIX)) != 0) continue;
        uint64_t pid;
        if (parse_u64(e->d_name + strlen(HAK_SHM_PREFIX), &pid, 0) != 0 || pid == 0 || pid > 0x7fffffff) continue;
        if ((int)pid == getpid() || find_target(ts, *nts, (int)pid) || !process_alive((int)pid)) continue;
        int slot = -1;
        for (int i = 0; i < *nts; i++)
            if (!ts[i].alive) {
                slot = i;
                break;
            }
        if (slot < 0) {
            if (*nts == MAX_TARGETS) break;
            slot = (*nts)++;
        }
        if (target_open(o, db, &ts[slot], (int)pid, 0) != 0) ts[slot].alive = 0;
    }
    closedir(d);
}

int main(int argc, char **argv) {
    opts_t o;
    hak_cli_init("hakmem-tuner");
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) return rc < 0 ? 0 : rc;

    int status = 0, nts = 0;
    target_t *ts = calloc(MAX_TARGETS, sizeof *ts);
    char err[512];
    tuner_db_t *db = NULL;
    tuner_listen_t *lsn = NULL;
    if (ts == NULL) {
        fprintf(stderr, "hakmem-tuner: out of memory\n");
        return HAK_EXIT_ERROR;
    }
    if (o.db_path) {
        db = tuner_db_open(o.db_path, err, sizeof err);
        if (db == NULL) {
            fprintf(stderr, "hakmem-tuner: %s\n", err);
            status = HAK_EXIT_ERROR;
            goto cleanup;
        }
    }
    if (o.listen) {
        lsn = tuner_listen_open(o.listen, err, sizeof err);
        if (lsn == NULL) {
            fprintf(stderr, "hakmem-tuner: %s\n", err);
            status = HAK_EXIT_ERROR;
            goto cleanup;
        }
        if (!tuner_listen_is_loopback(lsn))
            fprintf(stderr, "hakmem-tuner: warning: %s is reachable from other hosts: the telemetry of your "
                            "processes (command names, memory figures) is readable by anyone who can connect\n",
                    tuner_listen_url(lsn));
        if (!o.quiet) printf("hakmem-tuner: serving %s\n", tuner_listen_url(lsn));
        fflush(stdout);
    }

    hak_cli_install_stop(1);
    hak_cli_install_sigbus();

    for (int i = 0; i < o.npids; i++) {
        if (find_target(ts, nts, o.pids[i])) continue;
        if ((rc = target_open(&o, db, &ts[nts], o.pids[i], 1)) != 0) {
            status = hak_cli_exit_of_shm(rc);   /* no such process 3, no segment 4, ...; DB error 1 */
            goto cleanup;
        }
        nts++;
    }

    uint64_t start = mono_ns(), next = start;
    uint64_t interval_ns = (uint64_t)llround(o.interval_s * 1e9);
    uint64_t end = o.duration_s > 0 ? start + (uint64_t)llround(o.duration_s * 1e9) : UINT64_MAX;
    while (!hak_cli_stop) {
        if (o.all) scan_all(&o, db, ts, &nts);
        int alive = 0;
        for (int i = 0; i < nts; i++) {
            if (!ts[i].alive) continue;
            target_tick_guarded(&o, db, &ts[i]);
            alive += ts[i].alive;
        }
        if (!o.all && o.npids && alive == 0) break;   /* every --pid has exited */
        next += interval_ns;
        uint64_t now = mono_ns();
        if (now >= end) break;
        if (next < now) next = now;        /* fell behind: do not burst */
        if (next > end) next = end;
        if (lsn) {
            tuner_listen_serve_until(lsn, next, &hak_cli_stop);   /* scrapes between samples */
        } else {
            struct timespec ts_next = {.tv_sec = (time_t)(next / 1000000000ull),
                                       .tv_nsec = (long)(next % 1000000000ull)};
            while (!hak_cli_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts_next, NULL) == EINTR) {
            }
        }
    }
    if (hak_cli_stop && !o.quiet) printf("hakmem-tuner: %s: ending runs\n", strsignal(hak_cli_stop));

cleanup:
    for (int i = 0; i < nts; i++) target_close(db, &ts[i], hak_cli_stop ? "tuner stopped" : "tuner done", o.quiet);
    tuner_db_close(db);
    tuner_listen_close(lsn);
    free(ts);
    return status;
}
