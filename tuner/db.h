/*
 * tuner/db.h - the tuning history in SQLite: runs, samples, per-class samples,
 * decisions and their grades (schema: tuner/schema.sql, tuner/README.md).
 *
 * libsqlite3 is NOT linked: tuner_db_open dlopen()s "libsqlite3.so.0" and
 * calls it through function pointers, so libhakmem.so keeps working (and
 * tuning) on a machine without SQLite; only the history is missing then.
 * The daemon, the in-process tuner and the report use this same code.
 *
 * Database: WAL journal, busy_timeout TUNER_DB_BUSY_TIMEOUT_MS (2000 ms; the
 * in-process tuner sets a shorter one with tuner_db_set_busy_timeout), schema version in
 * PRAGMA user_version, migrations applied in order from a table, each in its
 * own transaction.  Every write is one transaction (BEGIN IMMEDIATE ...
 * COMMIT), so a writer killed at any point leaves the DB as of its last
 * commit.  Several processes may write one DB at once.
 *
 * Threads: one tuner_db_t per thread at a time.  The caller must not hold
 * allocator locks (SQLite calls malloc).  After fork() the child must not use
 * the parent's handle (open a new one).
 *
 * Errors: functions return 0 / a row id > 0 on success and -1 on failure;
 * tuner_db_errmsg() says why.  Nothing already committed is ever lost.
 */
#ifndef HAKMEM_TUNER_DB_H
#define HAKMEM_TUNER_DB_H

#include <stddef.h>
#include <stdint.h>

#include "hakmem/shm.h"
#include "policy.h"

#define TUNER_DB_SCHEMA_VERSION 2   /* newest schema this code writes */
#define TUNER_DB_BUSY_TIMEOUT_MS 2000   /* default wait for another writer's lock, per write */

typedef struct tuner_db tuner_db_t;

/* Open (creating and/or migrating) the history DB at path.  Returns NULL and a
 * message in err on failure: libsqlite3 missing, unwritable path, not a
 * database, schema newer than TUNER_DB_SCHEMA_VERSION, locked too long. */
tuner_db_t *tuner_db_open(const char *path, char *err, size_t errlen);

/* Same, but migrate only up to schema version max_version (tests: build an
 * "older" DB to exercise migrations).  max_version 0 = newest. */
tuner_db_t *tuner_db_open_version(const char *path, int max_version, char *err, size_t errlen);

/* Start a run for the process of snapshot s: pid, command (cmdline, or s->comm
 * when NULL), host (gethostname when NULL), mode, knobs at start, start time,
 * source ("in-process" or "daemon").  Returns the run id (> 0) or -1.
 * end_ns stays NULL until tuner_db_run_end: NULL = running or killed. */
int64_t tuner_db_run_begin(tuner_db_t *db, const hak_snapshot_t *s, const char *cmdline, const char *host,
                           const char *source);

/* Record snapshot s: one samples row (CLOCK_REALTIME now, s->taken_ns, every
 * HAK_COUNTERS / HAK_GAUGES figure in its own column, knobs, kernel figures)
 * and one class_samples row per size class that ever saw traffic.  One
 * transaction.  0 or -1. */
int tuner_db_sample(tuner_db_t *db, int64_t run, const hak_snapshot_t *s);

/* Record decision d (decision log number seq, CLOCK_REALTIME time_ns).
 * Returns the decisions row id or -1. */
int64_t tuner_db_decision(tuner_db_t *db, int64_t run, uint64_t time_ns, uint64_t seq, const tuner_decision_t *d);

/* Store the grade of decision g->decision_seq of run.  0, or -1 (also when
 * no such decision is recorded). */
int tuner_db_grade(tuner_db_t *db, int64_t run, const tuner_grade_t *g);

/* Close run (end_ns = CLOCK_REALTIME ns).  0 or -1. */
int tuner_db_run_end(tuner_db_t *db, int64_t run, uint64_t end_ns);

/* How long each later write waits for another writer's lock before it fails
 * with "database locked" (ms; 0 = fail at once).  Default
 * TUNER_DB_BUSY_TIMEOUT_MS. */
void tuner_db_set_busy_timeout(tuner_db_t *db, int ms);

/* Close the DB (NULL is a no-op). */
void tuner_db_close(tuner_db_t *db);

/* Last error message of db ("" when none). */
const char *tuner_db_errmsg(const tuner_db_t *db);

/* Schema version of the open DB (PRAGMA user_version). */
int tuner_db_schema_version(tuner_db_t *db);

/* Run sql (one or more statements, no results).  0 or -1.  For tools/tests. */
int tuner_db_exec(tuner_db_t *db, const char *sql);

/* First column of the first row of sql as an integer into *out (0 when the
 * result is NULL or there is no row).  0 or -1.  For tools/tests. */
int tuner_db_query_i64(tuner_db_t *db, const char *sql, int64_t *out);

/* Test hook: the next opens load soname instead of libsqlite3.so.0 (NULL restores).
 * Not thread-safe; for tests of the "libsqlite3 missing" path. */
void tuner_db_set_library(const char *soname);

/* Current CLOCK_REALTIME in ns (helper for callers of tuner_db_decision). */
uint64_t tuner_db_now_ns(void);

#endif /* HAKMEM_TUNER_DB_H */
