/*
 * tuner/report_db.c - hakmem-report: read the tuning history (read-only).
 *
 * The report links libsqlite3 directly (it is a tool, not the library) and
 * opens the DB read-only: a report never migrates or writes a history.  The
 * counter and gauge columns are looked up by name (PRAGMA table_info), so a DB
 * written by a hakmem with fewer counters is read with those counters at 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "db.h"
#include "report.h"

#define X_NAME(name, help) #name,
static const char *const counter_cols[HAK_NCOUNTERS] = {HAK_COUNTERS(X_NAME)};
static const char *const gauge_cols[HAK_NGAUGES] = {HAK_GAUGES(X_NAME)};
#undef X_NAME

static int fail(rp_db_t *db, const char *what) {
    snprintf(db->err, sizeof db->err, "%s: %s: %s", db->path, what,
             db->sql ? sqlite3_errmsg((sqlite3 *)db->sql) : "cannot open");
    return -1;
}

/* True when PATH-wal exists and is not empty: changes not in the DB file yet. */
static int wal_holds_changes(const char *path) {
    char wal[PATH_MAX];
    struct stat st;
    if (snprintf(wal, sizeof wal, "%s-wal", path) >= (int)sizeof wal) return 1;
    return stat(wal, &st) == 0 && st.st_size > 0;
}

/* Open path again as an immutable file: URI (every byte but the unreserved
 * ones percent-encoded), read-only, no -shm and no locks. */
static int reopen_immutable(rp_db_t *db, const char *path) {
    char uri[3 * PATH_MAX + 32];
    size_t o = 0;
    o += (size_t)snprintf(uri, sizeof uri, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p && o + 4 < sizeof uri - 16; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~/", *p))
            uri[o++] = (char)*p;
        else
            o += (size_t)snprintf(uri + o, sizeof uri - o, "%%%02X", *p);
    }
    snprintf(uri + o, sizeof uri - o, "?immutable=1");
    sqlite3_close((sqlite3 *)db->sql);
    sqlite3 *s = NULL;
    int rc = sqlite3_open_v2(uri, &s, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    db->sql = s;
    if (rc != SQLITE_OK) return -1;
    sqlite3_busy_timeout(s, 2000);
    return 0;
}

int rp_db_open(rp_db_t *db, const char *path) {
    memset(db, 0, sizeof *db);
    db->path = path;
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(db->err, sizeof db->err, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(db->err, sizeof db->err, "%s: not a regular file", path);
        return -1;
    }
    if (st.st_size == 0) {
        snprintf(db->err, sizeof db->err, "%s: empty file: not a hakmem history DB", path);
        return -1;
    }
    sqlite3 *s = NULL;
    int rc = sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL);
    db->sql = s;
    if (rc != SQLITE_OK) {
        fail(db, "cannot open");
        rp_db_close(db);
        return -1;
    }
    sqlite3_busy_timeout(s, 2000);
    sqlite3_stmt *q = NULL;
    int code = SQLITE_OK;
    if (sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK || sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        q = NULL;
        code = sqlite3_errcode(s);
        /* A WAL history in a directory this user cannot write: reading it
         * needs a -shm file beside it.  With no -wal file holding changes the
         * DB file is the whole history, and can be read as immutable. */
        if ((code & 0xff) == SQLITE_READONLY || (code & 0xff) == SQLITE_CANTOPEN) {
            if (wal_holds_changes(path)) {
                snprintf(db->err, sizeof db->err,
                         "%s: cannot read: a WAL history whose directory this user cannot write, with changes in "
                         "its -wal file (SQLite needs to create %s-shm): read a copy, or as a user who can write there",
                         path, path);
                return -1;
            }
            if (reopen_immutable(db, path) == 0) {
                s = (sqlite3 *)db->sql;
                if (sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
                    sqlite3_step(q) == SQLITE_ROW)
                    code = SQLITE_OK;
                else
                    code = sqlite3_errcode(s);
            }
        }
        if (code != SQLITE_OK) {
            sqlite3_finalize(q);
            fail(db, code == SQLITE_NOTADB ? "not a SQLite database"
                     : code == SQLITE_CORRUPT ? "corrupt database" : "cannot read");
            return -1;
        }
    }
    db->schema = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    int ntables = 0;
    if (sqlite3_prepare_v2(s,
                           "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                           "('runs', 'samples', 'class_samples', 'decisions')",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        code = sqlite3_errcode(s);
        return fail(db, code == SQLITE_NOTADB ? "not a SQLite database"
                        : code == SQLITE_CORRUPT ? "corrupt database" : "cannot read the schema");
    }
    ntables = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (ntables != 4 || db->schema < 1) {
        snprintf(db->err, sizeof db->err,
                 "%s: not a hakmem history DB (schema version %d, %d of the 4 tables runs/samples/class_samples/"
                 "decisions)",
                 path, db->schema, ntables);
        return -1;
    }
    if (db->schema > TUNER_DB_SCHEMA_VERSION) {
        snprintf(db->err, sizeof db->err,
                 "%s: written by a newer hakmem (schema version %d; this report reads up to %d)", path, db->schema,
                 TUNER_DB_SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

void rp_db_close(rp_db_t *db) {
    if (db->sql) sqlite3_close((sqlite3 *)db->sql);
    db->sql = NULL;
}

static int column_set(rp_db_t *db, const char *table, char ***names, int *n) {
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA table_info(%s)", table);
    sqlite3_stmt *q;
    *names = NULL, *n = 0;
    if (sqlite3_prepare_v2((sqlite3 *)db->sql, sql, -1, &q, NULL) != SQLITE_OK) return fail(db, "schema");
    int cap = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(*names, (size_t)cap * sizeof *nv);
            if (nv == NULL) break;
            *names = nv;
        }
        const char *c = (const char *)sqlite3_column_text(q, 1);
        (*names)[(*n)++] = strdup(c ? c : "");
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return fail(db, "schema");
    return 0;
}

static int has_col(char **names, int n, const char *c) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], c) == 0) return 1;
    return 0;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int grow(void **v, int *cap, int n, size_t elem) {
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 64;
    void *nv = realloc(*v, (size_t)nc * elem);
    if (nv == NULL) return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

static uint64_t col_u64(sqlite3_stmt *q, int i) {
    sqlite3_int64 v = sqlite3_column_int64(q, i);
    return v < 0 ? 0 : (uint64_t)v;
}

/* A knob value as the history stores it: the uint64_t's bits (a class cap's
 * "global", UINT64_MAX, is -1 in SQLite's signed integer), not clamped. */
static uint64_t col_knob(sqlite3_stmt *q, int i) { return (uint64_t)sqlite3_column_int64(q, i); }

static double col_real(sqlite3_stmt *q, int i) {
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

static void col_text(sqlite3_stmt *q, int i, char *out, size_t n) {
    const char *t = (const char *)sqlite3_column_text(q, i);
    snprintf(out, n, "%s", t ? t : "");
}

int rp_db_run_ids(rp_db_t *db, int64_t **ids, int *n) {
    sqlite3_stmt *q;
    int cap = 0, rc;
    *ids = NULL, *n = 0;
    if (sqlite3_prepare_v2((sqlite3 *)db->sql, "SELECT id FROM runs ORDER BY id", -1, &q, NULL) != SQLITE_OK)
        return fail(db, "reading runs");
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (grow((void **)ids, &cap, *n, sizeof **ids) != 0) break;
        (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return fail(db, "reading runs");
    return 0;
}

int rp_db_same_command(rp_db_t *db, const char *command, int64_t **ids, int *n) {
    sqlite3_stmt *q;
    int cap = 0, rc;
    *ids = NULL, *n = 0;
    if (sqlite3_prepare_v2((sqlite3 *)db->sql, "SELECT id FROM runs WHERE command IS ? ORDER BY id", -1, &q, NULL) !=
        SQLITE_OK)
        return fail(db, "reading runs");
    sqlite3_bind_text(q, 1, command, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (grow((void **)ids, &cap, *n, sizeof **ids) != 0) break;
        (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return fail(db, "reading runs");
    return 0;
}

static int load_samples(rp_db_t *db, rp_run_t *r) {
    char **cols;
    int ncols;
    if (column_set(db, "samples", &cols, &ncols) != 0) return -1;
    static const char *const fixed[] = {"id", "time_ns", "mono_ns", "ring_cap", "batch_threshold",
                                        "cache_max_bytes", "peak_bytes_mapped", "decision_head", "k_updated_ns",
                                        "k_munmap_calls", "k_munmap_bytes", "k_munmap_ns_total",
                                        "k_munmap_outside_flush"};
    enum { NFIXED = sizeof fixed / sizeof fixed[0] };
    size_t len = 64 + 40 * (NFIXED + HAK_NCOUNTERS + HAK_NGAUGES);
    char *sql = malloc(len);
    if (sql == NULL) {
        free_names(cols, ncols);
        snprintf(db->err, sizeof db->err, "out of memory");
        return -1;
    }
    size_t off = (size_t)snprintf(sql, len, "SELECT ");
    for (int i = 0; i < NFIXED; i++)
        off += (size_t)snprintf(sql + off, len - off, "%s%s", i ? ", " : "",
                                has_col(cols, ncols, fixed[i]) ? fixed[i] : "0");
    for (int i = 0; i < HAK_NCOUNTERS; i++)
        off += (size_t)snprintf(sql + off, len - off, ", %s%s%s", has_col(cols, ncols, counter_cols[i]) ? "\"" : "",
                                has_col(cols, ncols, counter_cols[i]) ? counter_cols[i] : "0",
                                has_col(cols, ncols, counter_cols[i]) ? "\"" : "");
    for (int i = 0; i < HAK_NGAUGES; i++)
        off += (size_t)snprintf(sql + off, len - off, ", %s%s%s", has_col(cols, ncols, gauge_cols[i]) ? "\"" : "",
                                has_col(cols, ncols, gauge_cols[i]) ? gauge_cols[i] : "0",
                                has_col(cols, ncols, gauge_cols[i]) ? "\"" : "");
    snprintf(sql + off, len - off, " FROM samples WHERE run_id = ? ORDER BY id");
    free_names(cols, ncols);

    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2((sqlite3 *)db->sql, sql, -1, &q, NULL);
    free(sql);
    if (rc != SQLITE_OK) return fail(db, "reading samples");
    sqlite3_bind_int64(q, 1, r->id);
    int cap = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (grow((void **)&r->samples, &cap, r->nsamples, sizeof *r->samples) != 0) break;
        rp_sample_t *s = &r->samples[r->nsamples++];
        memset(s, 0, sizeof *s);
        int c = 0;
        s->id = sqlite3_column_int64(q, c++);
        s->time_ns = col_u64(q, c++);
        s->mono_ns = col_u64(q, c++);
        s->ring_cap = col_u64(q, c++);
        s->batch_threshold = col_u64(q, c++);
        s->cache_max_bytes = col_u64(q, c++);
        s->peak_bytes_mapped = col_u64(q, c++);
        s->decision_head = col_u64(q, c++);
        s->k_updated_ns = col_u64(q, c++);
        s->k_munmap_calls = col_u64(q, c++);
        s->k_munmap_bytes = col_u64(q, c++);
        s->k_munmap_ns_total = col_u64(q, c++);
        s->k_munmap_outside_flush = col_u64(q, c++);
        for (int i = 0; i < HAK_NCOUNTERS; i++) s->c[i] = col_u64(q, c++);
        for (int i = 0; i < HAK_NGAUGES; i++) s->g[i] = sqlite3_column_int64(q, c++);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return rc == SQLITE_ROW ? (snprintf(db->err, sizeof db->err, "out of memory"), -1)
                                                   : fail(db, "reading samples");
    return 0;
}

static int load_classes(rp_db_t *db, rp_run_t *r) {
    if (r->nsamples == 0) return 0;
    char **cols;
    int ncols;
    if (column_set(db, "class_samples", &cols, &ncols) != 0) return -1;
    int v2 = has_col(cols, ncols, "h7") && has_col(cols, ncols, "evictions");
    free_names(cols, ncols);
    const char *sql = v2 ? "SELECT cs.sample_id, cs.class, cs.size, cs.hits, cs.misses, cs.puts, cs.cached, cs.cap, "
                           "cs.ghost_hits, cs.evictions, cs.h0, cs.h1, cs.h2, cs.h3, cs.h4, cs.h5, cs.h6, cs.h7 "
                           "FROM class_samples cs JOIN samples s ON s.id = cs.sample_id WHERE s.run_id = ? "
                           "ORDER BY cs.sample_id, cs.class"
                         : "SELECT cs.sample_id, cs.class, cs.size, cs.hits, cs.misses, cs.puts, cs.cached, cs.cap, "
                           "cs.ghost_hits, 0, 0, 0, 0, 0, 0, 0, 0, 0 "
                           "FROM class_samples cs JOIN samples s ON s.id = cs.sample_id WHERE s.run_id = ? "
                           "ORDER BY cs.sample_id, cs.class";
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2((sqlite3 *)db->sql, sql, -1, &q, NULL) != SQLITE_OK) return fail(db, "reading classes");
    sqlite3_bind_int64(q, 1, r->id);
    int si = 0, rc, caps = 0, cur = -1;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t sid = sqlite3_column_int64(q, 0);
        while (si < r->nsamples && r->samples[si].id < sid) si++;
        if (si >= r->nsamples || r->samples[si].id != sid) continue;
        int64_t cls = sqlite3_column_int64(q, 1);
        if (cls < 0 || cls >= (int64_t)HAK_SHM_CLASSES) continue;
        rp_sample_t *s = &r->samples[si];
        if (si != cur) cur = si, caps = 0;
        if (s->ncls >= HAK_SHM_CLASSES) continue;
        if (grow((void **)&s->cls, &caps, (int)s->ncls, sizeof *s->cls) != 0) break;
        rp_class_t *c = &s->cls[s->ncls++];
        c->cls = (uint32_t)cls;
        c->size = col_u64(q, 2);
        c->hits = col_u64(q, 3);
        c->misses = col_u64(q, 4);
        c->puts = col_u64(q, 5);
        c->cached = col_u64(q, 6);
        c->cap = col_u64(q, 7);
        c->ghost = col_u64(q, 8);
        c->evictions = col_u64(q, 9);
        for (int b = 0; b < 8; b++) c->h[b] = col_u64(q, 10 + b);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return rc == SQLITE_ROW ? (snprintf(db->err, sizeof db->err, "out of memory"), -1)
                                                   : fail(db, "reading classes");
    return 0;
}

static int load_decisions(rp_db_t *db, rp_run_t *r) {
    char **cols;
    int ncols;
    if (column_set(db, "decisions", &cols, &ncols) != 0) return -1;
    int v2 = has_col(cols, ncols, "before_value");
    free_names(cols, ncols);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT id, time_ns, seq, knob, size_class, old_value, new_value, reason, predicted, %s, grade, "
             "observed, graded_ns FROM decisions WHERE run_id = ? ORDER BY time_ns, id",
             v2 ? "before_value" : "NULL");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2((sqlite3 *)db->sql, sql, -1, &q, NULL) != SQLITE_OK) return fail(db, "reading decisions");
    sqlite3_bind_int64(q, 1, r->id);
    int cap = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (grow((void **)&r->decisions, &cap, r->ndecisions, sizeof *r->decisions) != 0) break;
        rp_decision_t *d = &r->decisions[r->ndecisions++];
        memset(d, 0, sizeof *d);
        d->id = sqlite3_column_int64(q, 0);
        d->time_ns = col_u64(q, 1);
        d->seq = col_u64(q, 2);
        col_text(q, 3, d->knob, sizeof d->knob);
        d->size_class = sqlite3_column_type(q, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 4);
        d->old_value = col_knob(q, 5);
        d->new_value = col_knob(q, 6);
        col_text(q, 7, d->reason, sizeof d->reason);
        d->predicted = col_real(q, 8);
        d->before = col_real(q, 9);
        d->grade = sqlite3_column_type(q, 10) == SQLITE_NULL ? 0 : sqlite3_column_int(q, 10);
        if (d->grade < 0 || d->grade > 3) d->grade = 0;
        d->observed = col_real(q, 11);
        d->graded_ns = col_u64(q, 12);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return rc == SQLITE_ROW ? (snprintf(db->err, sizeof db->err, "out of memory"), -1)
                                                   : fail(db, "reading decisions");
    return 0;
}

int rp_db_load_run(rp_db_t *db, int64_t id, rp_run_t *r) {
    memset(r, 0, sizeof *r);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2((sqlite3 *)db->sql,
                           "SELECT id, pid, command, host, mode, source, start_ns, end_ns, proc_start_ns, ring_cap, "
                           "batch_threshold, cache_max_bytes, large_min, thp, tune_interval_ms, idle_ms "
                           "FROM runs WHERE id = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return fail(db, "reading runs");
    sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(q);
        return 0;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(q);
        return fail(db, "reading runs");
    }
    r->id = sqlite3_column_int64(q, 0);
    r->pid = sqlite3_column_int64(q, 1);
    col_text(q, 2, r->command, sizeof r->command);
    col_text(q, 3, r->host, sizeof r->host);
    col_text(q, 4, r->mode, sizeof r->mode);
    col_text(q, 5, r->source, sizeof r->source);
    r->start_ns = col_u64(q, 6);
    r->end_ns = sqlite3_column_type(q, 7) == SQLITE_NULL ? 0 : col_u64(q, 7);
    r->proc_start_ns = col_u64(q, 8);
    r->ring_cap = col_u64(q, 9);
    r->batch_threshold = col_u64(q, 10);
    r->cache_max_bytes = col_u64(q, 11);
    r->large_min = col_u64(q, 12);
    r->thp = col_u64(q, 13);
    r->tune_interval_ms = col_u64(q, 14);
    r->idle_ms = col_u64(q, 15);
    sqlite3_finalize(q);
    if (load_samples(db, r) != 0 || load_classes(db, r) != 0 || load_decisions(db, r) != 0) {
        rp_run_free(r);
        return -1;
    }
    return 1;
}

void rp_run_free(rp_run_t *r) {
    for (int i = 0; i < r->nsamples; i++) free(r->samples[i].cls);
    free(r->samples);
    free(r->decisions);
    free(r->ints);
    free(r->pred);
    r->samples = NULL, r->decisions = NULL, r->ints = NULL, r->pred = NULL;
    r->nsamples = r->ndecisions = r->nint = 0;
}
