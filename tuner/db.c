/*
 * tuner/db.c - the tuning history in SQLite, reached through dlopen so that
 * libhakmem.so never links libsqlite3 (see db.h for the contract).
 *
 * Schema: tuner/schema.sql, compiled in as a table of migrations
 * ($(O)/gen/tuner_schema.h).  The samples table gets one column per
 * HAK_COUNTERS / HAK_GAUGES name, generated here from the X-macros.
 * Every write is one transaction; WAL journal; busy_timeout 2 s (TUNER_DB_BUSY_TIMEOUT_MS, settable).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>   /* types and constants only: the functions come from dlsym */

#include "db.h"

struct tuner_migration {
    int version;
    const char *description;
    const char *sql;
};
#include "tuner_schema.h"
_Static_assert(TUNER_MIGRATIONS_N == TUNER_DB_SCHEMA_VERSION, "db.h version matches schema.sql");

#define SQLITE_SONAME   "libsqlite3.so.0"

/* Column names generated from the one counter list. */
#define X_NAME(name, help) #name,
static const char *const counter_cols[HAK_NCOUNTERS] = {HAK_COUNTERS(X_NAME)};
static const char *const gauge_cols[HAK_NGAUGES] = {HAK_GAUGES(X_NAME)};
#undef X_NAME

/* The SQLite functions we call, resolved by dlsym. */
#define SQLITE_FUNCS(X) \
    X(sqlite3_open_v2) X(sqlite3_close_v2) X(sqlite3_exec) X(sqlite3_prepare_v2) X(sqlite3_step) \
    X(sqlite3_reset) X(sqlite3_finalize) X(sqlite3_clear_bindings) X(sqlite3_bind_int64) X(sqlite3_bind_double) \
    X(sqlite3_bind_text) X(sqlite3_bind_null) X(sqlite3_column_int64) X(sqlite3_column_text) \
    X(sqlite3_column_type) X(sqlite3_errmsg) X(sqlite3_errcode) X(sqlite3_busy_timeout) \
    X(sqlite3_last_insert_rowid) X(sqlite3_changes) X(sqlite3_get_autocommit) X(sqlite3_free)

typedef struct sqlite_api {
#define X_PTR(fn) __typeof__(&fn) fn;
    SQLITE_FUNCS(X_PTR)
#undef X_PTR
} sqlite_api_t;

struct tuner_db {
    void *lib;                      /* dlopen handle */
    sqlite_api_t api;
    sqlite3 *h;
    int version;                    /* schema version after open */
    int full;                       /* migrated to the newest version: inserts prepared */
    sqlite3_stmt *ins_run, *ins_sample, *ins_class, *ins_decision, *upd_grade, *upd_end;
    int busy_ms;                    /* how long a write waits for another writer's lock */
    char err[512];
};

#define API(db) (&(db)->api)

static const char *sqlite_lib_name = SQLITE_SONAME;

void tuner_db_set_library(const char *soname) { sqlite_lib_name = soname ? soname : SQLITE_SONAME; }

static void set_err(tuner_db_t *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(tuner_db_t *db, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof db->err, fmt, ap);
    va_end(ap);
}

/* "what: sqlite's message" into db->err; returns -1. */
static int sql_fail(tuner_db_t *db, const char *what) {
    int code = API(db)->sqlite3_errcode(db->h);
    const char *msg = API(db)->sqlite3_errmsg(db->h);
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        set_err(db, "%s: database locked for more than %d ms by another writer (%s)", what, db->busy_ms, msg);
    else
        set_err(db, "%s: %s", what, msg);
    return -1;
}

uint64_t tuner_db_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tuner_db_set_busy_timeout(tuner_db_t *db, int ms) {
    if (db == NULL || ms < 0) return;
    db->busy_ms = ms;
    API(db)->sqlite3_busy_timeout(db->h, ms);
}

const char *tuner_db_errmsg(const tuner_db_t *db) { return db ? db->err : "no database"; }

int tuner_db_exec(tuner_db_t *db, const char *sql) {
    char *msg = NULL;
    if (API(db)->sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = API(db)->sqlite3_errcode(db->h);
        if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
            set_err(db, "database locked for more than %d ms by another writer", db->busy_ms);
        else
            set_err(db, "%s", msg ? msg : API(db)->sqlite3_errmsg(db->h));
        if (msg) API(db)->sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int tuner_db_query_i64(tuner_db_t *db, const char *sql, int64_t *out) {
    sqlite3_stmt *st = NULL;
    *out = 0;
    if (API(db)->sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) return sql_fail(db, "query");
    int rc = API(db)->sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (API(db)->sqlite3_column_type(st, 0) != SQLITE_NULL) *out = API(db)->sqlite3_column_int64(st, 0);
    } else if (rc != SQLITE_DONE) {
        sql_fail(db, "query");
        API(db)->sqlite3_finalize(st);
        return -1;
    }
    API(db)->sqlite3_finalize(st);
    return 0;
}

int tuner_db_schema_version(tuner_db_t *db) {
    int64_t v = 0;
    if (tuner_db_query_i64(db, "PRAGMA user_version", &v) != 0) return -1;
    return (int)v;
}

static int begin(tuner_db_t *db) { return tuner_db_exec(db, "BEGIN IMMEDIATE"); }
static int commit(tuner_db_t *db) {
    if (tuner_db_exec(db, "COMMIT") == 0) return 0;
    char keep[sizeof db->err];
    memcpy(keep, db->err, sizeof keep);
    if (!API(db)->sqlite3_get_autocommit(db->h)) tuner_db_exec(db, "ROLLBACK");
    memcpy(db->err, keep, sizeof keep);
    return -1;
}
static void rollback(tuner_db_t *db) {
    char keep[sizeof db->err];
    memcpy(keep, db->err, sizeof keep);
    if (!API(db)->sqlite3_get_autocommit(db->h)) tuner_db_exec(db, "ROLLBACK");
    memcpy(db->err, keep, sizeof keep);
}

// ---------------------------------------------------------------------------
// Schema: migrations and generated columns
// ---------------------------------------------------------------------------

static int migrate(tuner_db_t *db, int upto) {
    for (int i = 0; i < TUNER_MIGRATIONS_N; i++) {
        const struct tuner_migration *m = &tuner_migrations[i];
        if (m->version > upto) break;
        if (begin(db) != 0) return -1;
        /* re-read inside the write lock: another process may have migrated */
        int cur = tuner_db_schema_version(db);
        if (cur < 0) goto fail;
        if (cur >= m->version) {
            rollback(db);
            continue;
        }
        if (tuner_db_exec(db, m->sql) != 0) {
            char keep[sizeof db->err];
            memcpy(keep, db->err, sizeof keep);
            set_err(db, "migration to schema version %d failed: %s", m->version, keep);
            goto fail;
        }
        char sql[256];
        snprintf(sql, sizeof sql,
                 "INSERT INTO schema_migrations(version, applied_ns, description) VALUES(%d, %llu, '%s');"
                 "PRAGMA user_version = %d",
                 m->version, (unsigned long long)tuner_db_now_ns(), m->description, m->version);
        if (tuner_db_exec(db, sql) != 0 || commit(db) != 0) goto fail;
        continue;
    fail:
        rollback(db);
        return -1;
    }
    return 0;
}

static int has_column(tuner_db_t *db, const char *table, const char *col, int *found) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM pragma_table_info('%s') WHERE name = '%s'", table, col);
    int64_t n;
    if (tuner_db_query_i64(db, sql, &n) != 0) return -1;
    *found = n > 0;
    return 0;
}

/* One INTEGER column in samples per counter and gauge (added when missing). */
static int add_counter_columns(tuner_db_t *db) {
    int missing = 0, found;
    for (int i = 0; i < HAK_NCOUNTERS + HAK_NGAUGES; i++) {
        const char *col = i < HAK_NCOUNTERS ? counter_cols[i] : gauge_cols[i - HAK_NCOUNTERS];
        if (has_column(db, "samples", col, &found) != 0) return -1;
        missing += !found;
    }
    if (!missing) return 0;
    if (begin(db) != 0) return -1;
    for (int i = 0; i < HAK_NCOUNTERS + HAK_NGAUGES; i++) {
        const char *col = i < HAK_NCOUNTERS ? counter_cols[i] : gauge_cols[i - HAK_NCOUNTERS];
        if (has_column(db, "samples", col, &found) != 0) goto fail;
        if (found) continue;
        char sql[128];
        snprintf(sql, sizeof sql, "ALTER TABLE samples ADD COLUMN \"%s\" INTEGER", col);
        if (tuner_db_exec(db, sql) != 0) goto fail;
    }
    return commit(db);
fail:
    rollback(db);
    return -1;
}

static int prepare(tuner_db_t *db, sqlite3_stmt **st, const char *sql) {
    if (API(db)->sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) return sql_fail(db, "prepare");
    return 0;
}

static int prepare_all(tuner_db_t *db) {
    /* samples: fixed columns, then the generated ones */
    static const char *const fixed[] = {"run_id", "time_ns", "mono_ns", "ring_cap", "batch_threshold",
                                        "cache_max_bytes", "peak_bytes_mapped", "decision_head", "ctl_seq",
                                        "ctl_applied_seq", "k_updated_ns", "k_munmap_calls", "k_munmap_bytes",
                                        "k_munmap_ns_total", "k_munmap_outside_flush", "k_madvise_calls",
                                        "k_madvise_ns_total"};
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    size_t ncols = nfixed + HAK_NCOUNTERS + HAK_NGAUGES;
    size_t cap = 64 + ncols * 40;
    char *sql = malloc(cap);
    if (sql == NULL) {
        set_err(db, "out of memory");
        return -1;
    }
    size_t len = (size_t)snprintf(sql, cap, "INSERT INTO samples(");
    for (size_t i = 0; i < ncols; i++) {
        const char *col = i < nfixed ? fixed[i]
                          : i < nfixed + HAK_NCOUNTERS ? counter_cols[i - nfixed]
                                                       : gauge_cols[i - nfixed - HAK_NCOUNTERS];
        len += (size_t)snprintf(sql + len, cap - len, "%s\"%s\"", i ? "," : "", col);
    }
    len += (size_t)snprintf(sql + len, cap - len, ") VALUES(");
    for (size_t i = 0; i < ncols; i++) len += (size_t)snprintf(sql + len, cap - len, "%s?", i ? "," : "");
    snprintf(sql + len, cap - len, ")");
    int rc = prepare(db, &db->ins_sample, sql);
    free(sql);
    if (rc != 0) return -1;
    if (prepare(db, &db->ins_run,
                "INSERT INTO runs(pid, command, host, mode, source, start_ns, proc_start_ns, ring_cap, "
                "batch_threshold, cache_max_bytes, large_min, thp, tune_interval_ms, idle_ms) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)") != 0 ||
        prepare(db, &db->ins_class,
                "INSERT INTO class_samples(sample_id, class, size, hits, misses, puts, cached, cap, ghost_hits, "
                "evictions, h0, h1, h2, h3, h4, h5, h6, h7) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)") != 0 ||
        prepare(db, &db->ins_decision,
                "INSERT INTO decisions(run_id, time_ns, seq, knob, size_class, old_value, new_value, reason, "
                "reason_code, predicted, driver_class, before_value) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)") != 0 ||
        prepare(db, &db->upd_grade,
                "UPDATE decisions SET grade = ?, observed = ?, graded_ns = ? WHERE run_id = ? AND seq = ?") != 0 ||
        prepare(db, &db->upd_end, "UPDATE runs SET end_ns = ? WHERE id = ?") != 0)
        return -1;
    return 0;
}

// ---------------------------------------------------------------------------
// Open / close
// ---------------------------------------------------------------------------

static int load_sqlite(tuner_db_t *db) {
    db->lib = dlopen(sqlite_lib_name, RTLD_NOW | RTLD_LOCAL);
    if (db->lib == NULL) {
        const char *e = dlerror();
        set_err(db, "cannot load %s (%s): install libsqlite3-0 to record history", sqlite_lib_name,
                e ? e : "not found");
        return -1;
    }
#define X_SYM(fn)                                                                  \
    if ((*(void **)&db->api.fn = dlsym(db->lib, #fn)) == NULL) {                   \
        set_err(db, "%s lacks %s: SQLite too old (need 3.8+)", sqlite_lib_name, #fn); \
        return -1;                                                                 \
    }
    SQLITE_FUNCS(X_SYM)
#undef X_SYM
    return 0;
}

tuner_db_t *tuner_db_open_version(const char *path, int max_version, char *err, size_t errlen) {
    tuner_db_t *db = calloc(1, sizeof *db);
    if (db == NULL) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int upto = max_version <= 0 || max_version > TUNER_DB_SCHEMA_VERSION ? TUNER_DB_SCHEMA_VERSION : max_version;
    int64_t v = 0;
    if (path == NULL || *path == '\0') {
        set_err(db, "no database path given");
        goto fail;
    }
    if (load_sqlite(db) != 0) goto fail;
    if (API(db)->sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                 NULL) != SQLITE_OK) {
        set_err(db, "cannot open %s: %s", path, db->h ? API(db)->sqlite3_errmsg(db->h) : "out of memory");
        goto fail;
    }
    db->busy_ms = TUNER_DB_BUSY_TIMEOUT_MS;
    API(db)->sqlite3_busy_timeout(db->h, db->busy_ms);
    /* The first statement reads the header: "not a database" shows up here. */
    if (tuner_db_query_i64(db, "PRAGMA user_version", &v) != 0) {
        set_err(db, "%s: %s", path, API(db)->sqlite3_errmsg(db->h));
        goto fail;
    }
    if (v > TUNER_DB_SCHEMA_VERSION) {
        set_err(db, "%s: schema version %lld is newer than this hakmem understands (%d); "
                    "use a newer hakmem-tuner or another file",
                path, (long long)v, TUNER_DB_SCHEMA_VERSION);
        goto fail;
    }
    if (tuner_db_exec(db, "PRAGMA journal_mode=WAL") != 0 || tuner_db_exec(db, "PRAGMA synchronous=NORMAL") != 0) {
        char keep[sizeof db->err];
        memcpy(keep, db->err, sizeof keep);
        set_err(db, "%s: cannot enable WAL: %s", path, keep);
        goto fail;
    }
    if (migrate(db, upto) != 0 || (upto >= 1 && add_counter_columns(db) != 0)) {
        char keep[sizeof db->err];
        memcpy(keep, db->err, sizeof keep);
        set_err(db, "%s: %s", path, keep);
        goto fail;
    }
    db->version = tuner_db_schema_version(db);
    db->full = db->version == TUNER_DB_SCHEMA_VERSION;
    if (db->full && prepare_all(db) != 0) goto fail;
    db->err[0] = '\0';
    return db;
fail:
    if (err && errlen) snprintf(err, errlen, "%s", db->err);
    tuner_db_close(db);
    return NULL;
}

tuner_db_t *tuner_db_open(const char *path, char *err, size_t errlen) {
    return tuner_db_open_version(path, 0, err, errlen);
}

void tuner_db_close(tuner_db_t *db) {
    if (db == NULL) return;
    if (db->h) {
        sqlite3_stmt *sts[] = {db->ins_run, db->ins_sample, db->ins_class, db->ins_decision, db->upd_grade,
                               db->upd_end};
        for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
            if (sts[i]) API(db)->sqlite3_finalize(sts[i]);
        API(db)->sqlite3_close_v2(db->h);
    }
    /* libsqlite3 stays loaded: unloading a library other threads of the
     * process may still have open is not worth the risk. */
    free(db);
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

static int need_full(tuner_db_t *db) {
    if (db->full) return 0;
    set_err(db, "database opened at schema version %d (not %d): read-only use", db->version, TUNER_DB_SCHEMA_VERSION);
    return -1;
}

/* Step a prepared insert/update; resets it.  0 or -1. */
static int run_stmt(tuner_db_t *db, sqlite3_stmt *st, const char *what) {
    int rc = API(db)->sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : sql_fail(db, what);
    API(db)->sqlite3_reset(st);
    API(db)->sqlite3_clear_bindings(st);
    return ret;
}

static void bind_u64(tuner_db_t *db, sqlite3_stmt *st, int i, uint64_t v) {
    API(db)->sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static const char *mode_name(uint32_t mode) {
    switch (mode) {
    case HAK_MODE_OFF: return "off";
    case HAK_MODE_FIXED: return "fixed";
    case HAK_MODE_EVOLVING: return "evolving";
    default: return "unknown";
    }
}

int64_t tuner_db_run_begin(tuner_db_t *db, const hak_snapshot_t *s, const char *cmdline, const char *host,
                           const char *source) {
    if (need_full(db) != 0) return -1;
    char hostbuf[256];
    if (host == NULL) {
        if (gethostname(hostbuf, sizeof hostbuf) != 0) hostbuf[0] = '\0';
        hostbuf[sizeof hostbuf - 1] = '\0';
        host = hostbuf;
    }
    sqlite3_stmt *st = db->ins_run;
    const sqlite_api_t *a = API(db);
    bind_u64(db, st, 1, s->pid);
    a->sqlite3_bind_text(st, 2, cmdline ? cmdline : s->comm, -1, SQLITE_TRANSIENT);
    a->sqlite3_bind_text(st, 3, host, -1, SQLITE_TRANSIENT);
    a->sqlite3_bind_text(st, 4, mode_name(s->mode), -1, SQLITE_STATIC);
    a->sqlite3_bind_text(st, 5, source ? source : "unknown", -1, SQLITE_TRANSIENT);
    bind_u64(db, st, 6, tuner_db_now_ns());
    bind_u64(db, st, 7, s->start_ns);
    bind_u64(db, st, 8, s->knobs.ring_cap);
    bind_u64(db, st, 9, s->knobs.batch_threshold);
    bind_u64(db, st, 10, s->knobs.cache_max_bytes);
    bind_u64(db, st, 11, s->knobs.large_min);
    bind_u64(db, st, 12, s->knobs.thp);
    bind_u64(db, st, 13, s->knobs.tune_interval_ms);
    bind_u64(db, st, 14, s->knobs.idle_ms);
    if (run_stmt(db, st, "insert run") != 0) return -1;
    return a->sqlite3_last_insert_rowid(db->h);
}

int tuner_db_sample(tuner_db_t *db, int64_t run, const hak_snapshot_t *s) {
    if (need_full(db) != 0) return -1;
    const sqlite_api_t *a = API(db);
    if (begin(db) != 0) return -1;
    sqlite3_stmt *st = db->ins_sample;
    int i = 1;
    a->sqlite3_bind_int64(st, i++, run);
    bind_u64(db, st, i++, tuner_db_now_ns());
    bind_u64(db, st, i++, s->taken_ns);
    bind_u64(db, st, i++, s->knobs.ring_cap);
    bind_u64(db, st, i++, s->knobs.batch_threshold);
    bind_u64(db, st, i++, s->knobs.cache_max_bytes);
    bind_u64(db, st, i++, s->peak_bytes_mapped);
    bind_u64(db, st, i++, s->decision_head);
    bind_u64(db, st, i++, s->control.seq);
    bind_u64(db, st, i++, s->control.applied_seq);
    bind_u64(db, st, i++, s->kernel.updated_ns);
    bind_u64(db, st, i++, s->kernel.munmap_calls);
    bind_u64(db, st, i++, s->kernel.munmap_bytes);
    bind_u64(db, st, i++, s->kernel.munmap_ns_total);
    bind_u64(db, st, i++, s->kernel.munmap_outside_flush);
    bind_u64(db, st, i++, s->kernel.madvise_calls);
    bind_u64(db, st, i++, s->kernel.madvise_ns_total);
    for (int k = 0; k < HAK_NCOUNTERS; k++) bind_u64(db, st, i++, s->counter[k]);
    for (int k = 0; k < HAK_NGAUGES; k++) a->sqlite3_bind_int64(st, i++, s->gauge[k]);
    if (run_stmt(db, st, "insert sample") != 0) goto fail;
    int64_t sample = a->sqlite3_last_insert_rowid(db->h);
    uint32_t ncls = s->nclasses < HAK_SHM_CLASSES ? s->nclasses : HAK_SHM_CLASSES;
    for (uint32_t c = 0; c < ncls; c++) {
        const hak_shm_class_t *cl = &s->classes[c];
        if (cl->hits + cl->misses + cl->puts + cl->cached_blocks == 0) continue;
        uint64_t ev = 0;
        for (int r = 0; r < HAK_EVICT_NREASONS; r++) ev += cl->evictions[r];
        st = db->ins_class;
        i = 1;
        a->sqlite3_bind_int64(st, i++, sample);
        bind_u64(db, st, i++, c);
        bind_u64(db, st, i++, cl->size);
        bind_u64(db, st, i++, cl->hits);
        bind_u64(db, st, i++, cl->misses);
        bind_u64(db, st, i++, cl->puts);
        bind_u64(db, st, i++, cl->cached_blocks);
        bind_u64(db, st, i++, cl->cap);
        bind_u64(db, st, i++, cl->ghost_hits);
        bind_u64(db, st, i++, ev);
        for (int b = 0; b < 8; b++) bind_u64(db, st, i++, cl->reuse_hist[b]);
        if (run_stmt(db, st, "insert class sample") != 0) goto fail;
    }
    return commit(db);
fail:
    rollback(db);
    return -1;
}

int64_t tuner_db_decision(tuner_db_t *db, int64_t run, uint64_t time_ns, uint64_t seq, const tuner_decision_t *d) {
    if (need_full(db) != 0) return -1;
    const sqlite_api_t *a = API(db);
    sqlite3_stmt *st = db->ins_decision;
    a->sqlite3_bind_int64(st, 1, run);
    bind_u64(db, st, 2, time_ns);
    bind_u64(db, st, 3, seq);
    a->sqlite3_bind_text(st, 4, tuner_knob_name(d->knob), -1, SQLITE_STATIC);
    if (d->size_class == UINT32_MAX) a->sqlite3_bind_null(st, 5);
    else bind_u64(db, st, 5, d->size_class);
    bind_u64(db, st, 6, d->old_value);
    bind_u64(db, st, 7, d->new_value);
    a->sqlite3_bind_text(st, 8, tuner_reason_name(d->reason), -1, SQLITE_STATIC);
    bind_u64(db, st, 9, d->reason);
    a->sqlite3_bind_double(st, 10, d->predicted);   /* NaN is stored as NULL */
    if (d->driver_class == UINT32_MAX) a->sqlite3_bind_null(st, 11);
    else bind_u64(db, st, 11, d->driver_class);
    a->sqlite3_bind_double(st, 12, d->before);
    if (run_stmt(db, st, "insert decision") != 0) return -1;
    return a->sqlite3_last_insert_rowid(db->h);
}

int tuner_db_grade(tuner_db_t *db, int64_t run, const tuner_grade_t *g) {
    if (need_full(db) != 0) return -1;
    const sqlite_api_t *a = API(db);
    sqlite3_stmt *st = db->upd_grade;
    a->sqlite3_bind_int64(st, 1, g->grade);
    a->sqlite3_bind_double(st, 2, g->observed);
    bind_u64(db, st, 3, tuner_db_now_ns());
    a->sqlite3_bind_int64(st, 4, run);
    bind_u64(db, st, 5, g->decision_seq);
    if (run_stmt(db, st, "grade decision") != 0) return -1;
    if (a->sqlite3_changes(db->h) == 0) {
        set_err(db, "grade: no decision %llu in run %lld", (unsigned long long)g->decision_seq, (long long)run);
        return -1;
    }
    return 0;
}

int tuner_db_run_end(tuner_db_t *db, int64_t run, uint64_t end_ns) {
    if (need_full(db) != 0) return -1;
    const sqlite_api_t *a = API(db);
    sqlite3_stmt *st = db->upd_end;
    bind_u64(db, st, 1, end_ns);
    a->sqlite3_bind_int64(st, 2, run);
    if (run_stmt(db, st, "end run") != 0) return -1;
    if (a->sqlite3_changes(db->h) == 0) {
        set_err(db, "end run: no run %lld", (long long)run);
        return -1;
    }
    return 0;
}
