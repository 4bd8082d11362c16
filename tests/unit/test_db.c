/*
 * test_db.c - the tuning history DB (tuner/db.c): create, migrate, insert,
 * read back, reopen; bad input (corrupt file, newer schema, missing
 * libsqlite3, unwritable path, locked DB); writers killed mid-transaction;
 * concurrent writers.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../tuner/db.h"

static char dir[256];

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hakmem-test-db.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
    return 0;
}

/* A hand-made snapshot: every counter and gauge distinct, two active classes. */
static void make_snap(hak_snapshot_t *s, uint64_t k) {
    memset(s, 0, sizeof *s);
    s->pid = 4321;
    s->mode = HAK_MODE_FIXED;
    s->nclasses = 49;
    s->start_ns = 1700000000000000000ull;
    snprintf(s->comm, sizeof s->comm, "phased");
    for (int i = 0; i < HAK_NCOUNTERS; i++) s->counter[i] = 1000 * k + (uint64_t)i;
    for (int i = 0; i < HAK_NGAUGES; i++) s->gauge[i] = (int64_t)(100 * k + (uint64_t)i);
    s->knobs.ring_cap = 4 + k;
    s->knobs.batch_threshold = 4 << 20;
    s->knobs.cache_max_bytes = 1ull << 30;
    s->knobs.large_min = 64 << 10;
    s->knobs.idle_ms = 1000;
    s->knobs.tune_interval_ms = 250;
    s->classes[20].size = 2 << 20;
    s->classes[20].hits = 10 * k;
    s->classes[20].misses = 3 * k;
    s->classes[20].cached_blocks = 4;
    s->classes[20].ghost_hits = 2 * k;
    s->classes[20].reuse_hist[6] = k;
    s->classes[3].size = 96 << 10;
    s->classes[3].puts = 1;
    s->taken_ns = 5000000000ull + k;
}

static int64_t q(tuner_db_t *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q(tuner_db_t *db, const char *fmt, ...) {
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    int64_t v = -12345;
    if (tuner_db_query_i64(db, sql, &v) != 0) fail_msg("query failed: %s: %s", sql, tuner_db_errmsg(db));
    return v;
}

static tuner_db_t *open_ok(const char *path) {
    char err[512] = "";
    tuner_db_t *db = tuner_db_open(path, err, sizeof err);
    if (db == NULL) fail_msg("open %s: %s", path, err);
    return db;
}

static void test_create_insert_read_back(void **state) {
    (void)state;
    char path[300];
    path_in(path, sizeof path, "h.db");
    tuner_db_t *db = open_ok(path);
    assert_int_equal(tuner_db_schema_version(db), TUNER_DB_SCHEMA_VERSION);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM schema_migrations"), TUNER_DB_SCHEMA_VERSION);

    /* one column per counter and gauge, generated from the X-macro lists */
#define X_COL(name, help) assert_int_equal(q(db, "SELECT COUNT(*) FROM pragma_table_info('samples') WHERE name = '%s'", #name), 1);
    HAK_COUNTERS(X_COL)
    HAK_GAUGES(X_COL)
#undef X_COL

    hak_snapshot_t s;
    make_snap(&s, 1);
    int64_t run = tuner_db_run_begin(db, &s, "phased --rounds 4", "testhost", "daemon");
    assert_true(run > 0);
    for (uint64_t k = 1; k <= 3; k++) {
        make_snap(&s, k);
        assert_int_equal(tuner_db_sample(db, run, &s), 0);
    }
    tuner_decision_t d = {.knob = HAK_KNOB_RING_CAP, .size_class = UINT32_MAX, .old_value = 4, .new_value = 115,
                          .reason = TUNER_R_GHOST_DEMAND, .driver_class = 20, .predicted = 0.95, .before = 0.03};
    assert_true(tuner_db_decision(db, run, tuner_db_now_ns(), 7, &d) > 0);
    tuner_decision_t t = {.knob = HAK_KNOB_TRIM, .size_class = UINT32_MAX, .old_value = 1 << 30, .new_value = 0,
                          .reason = TUNER_R_IDLE, .driver_class = UINT32_MAX, .predicted = 0.0,
                          .before = __builtin_nan("")};
    assert_true(tuner_db_decision(db, run, tuner_db_now_ns(), 8, &t) > 0);
    tuner_grade_t g = {.decision_seq = 7, .grade = TUNER_GRADE_CONFIRMED, .observed = 0.97};
    assert_int_equal(tuner_db_grade(db, run, &g), 0);
    tuner_grade_t bad = {.decision_seq = 99, .grade = TUNER_GRADE_REFUTED, .observed = 0.1};
    assert_int_equal(tuner_db_grade(db, run, &bad), -1);
    assert_non_null(strstr(tuner_db_errmsg(db), "no decision 99"));
    assert_int_equal(q(db, "SELECT end_ns IS NULL FROM runs WHERE id = %lld", (long long)run), 1);
    assert_int_equal(tuner_db_run_end(db, run, 123456789), 0);

    /* read back */
    assert_int_equal(q(db, "SELECT COUNT(*) FROM runs"), 1);
    assert_int_equal(q(db, "SELECT pid FROM runs"), 4321);
    assert_int_equal(q(db, "SELECT command = 'phased --rounds 4' AND host = 'testhost' AND mode = 'fixed' AND "
                           "source = 'daemon' FROM runs"), 1);
    assert_int_equal(q(db, "SELECT ring_cap FROM runs"), 5);
    assert_int_equal(q(db, "SELECT end_ns FROM runs"), 123456789);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM samples WHERE run_id = %lld", (long long)run), 3);
    assert_int_equal(q(db, "SELECT cache_hits FROM samples ORDER BY id DESC LIMIT 1"), 3000 + HAK_C_cache_hits);
    assert_int_equal(q(db, "SELECT ctl_applied FROM samples ORDER BY id DESC LIMIT 1"), 3000 + HAK_C_ctl_applied);
    assert_int_equal(q(db, "SELECT bytes_pending FROM samples ORDER BY id DESC LIMIT 1"), 300 + HAK_G_bytes_pending);
    assert_int_equal(q(db, "SELECT ring_cap FROM samples ORDER BY id DESC LIMIT 1"), 7);
    assert_int_equal(q(db, "SELECT mono_ns FROM samples ORDER BY id DESC LIMIT 1"), 5000000003ll);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM class_samples"), 6);   /* 2 active classes x 3 */
    assert_int_equal(q(db, "SELECT ghost_hits FROM class_samples WHERE class = 20 ORDER BY sample_id DESC LIMIT 1"), 6);
    assert_int_equal(q(db, "SELECT h6 FROM class_samples WHERE class = 20 ORDER BY sample_id DESC LIMIT 1"), 3);
    assert_int_equal(q(db, "SELECT size FROM class_samples WHERE class = 3 LIMIT 1"), 96 << 10);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM decisions"), 2);
    assert_int_equal(q(db, "SELECT knob = 'ring_cap' AND reason = 'ghost_demand' AND old_value = 4 AND new_value = 115 "
                           "AND size_class IS NULL AND driver_class = 20 AND abs(predicted - 0.95) < 1e-9 "
                           "AND grade = 1 AND abs(observed - 0.97) < 1e-9 AND graded_ns > 0 FROM decisions "
                           "WHERE seq = 7"), 1);
    assert_int_equal(q(db, "SELECT knob = 'trim' AND reason = 'idle' AND grade IS NULL AND before_value IS NULL "
                           "FROM decisions WHERE seq = 8"), 1);
    tuner_db_close(db);

    /* WAL mode is recorded in the file header (bytes 18/19 = 2) */
    unsigned char hdr[20];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
    close(fd);
    assert_int_equal(hdr[18], 2);
    assert_int_equal(hdr[19], 2);

    /* re-open: everything is still there, new runs get new ids */
    db = open_ok(path);
    assert_int_equal(tuner_db_schema_version(db), TUNER_DB_SCHEMA_VERSION);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM samples"), 3);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM schema_migrations"), TUNER_DB_SCHEMA_VERSION);
    int64_t run2 = tuner_db_run_begin(db, &s, NULL, NULL, "in-process");
    assert_true(run2 > run);
    assert_int_equal(q(db, "SELECT command = 'phased' AND host IS NOT NULL FROM runs WHERE id = %lld", (long long)run2), 1);
    tuner_db_close(db);
    tuner_db_close(NULL);
}

static void test_migrate_from_v1(void **state) {
    (void)state;
    char path[300], err[512];
    path_in(path, sizeof path, "old.db");
    tuner_db_t *db = tuner_db_open_version(path, 1, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(tuner_db_schema_version(db), 1);
    assert_int_equal(tuner_db_exec(db, "INSERT INTO runs(pid, command, start_ns) VALUES(77, 'old', 1);"
                                       "INSERT INTO samples(run_id, time_ns, cache_hits) VALUES(1, 2, 33);"
                                       "INSERT INTO class_samples(sample_id, class, hits) VALUES(1, 5, 9);"),
                     0);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM pragma_table_info('class_samples') WHERE name = 'h0'"), 0);
    /* an old-schema handle refuses the v2 writers cleanly */
    hak_snapshot_t s;
    make_snap(&s, 1);
    assert_int_equal(tuner_db_sample(db, 1, &s), -1);
    assert_non_null(strstr(tuner_db_errmsg(db), "schema version 1"));
    tuner_db_close(db);

    db = open_ok(path);
    assert_int_equal(tuner_db_schema_version(db), 2);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM schema_migrations"), 2);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM pragma_table_info('class_samples') WHERE name = 'h0'"), 1);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM pragma_table_info('decisions') WHERE name = 'driver_class'"), 1);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'samples_run_time'"), 1);
    /* earlier rows intact */
    assert_int_equal(q(db, "SELECT pid FROM runs WHERE command = 'old'"), 77);
    assert_int_equal(q(db, "SELECT cache_hits FROM samples WHERE run_id = 1"), 33);
    assert_int_equal(q(db, "SELECT hits FROM class_samples WHERE class = 5"), 9);
    assert_int_equal(tuner_db_sample(db, 1, &s), 0);
    tuner_db_close(db);
}

/* A file of random bytes is not a database: clean error, file untouched. */
static void test_corrupt_file(void **state) {
    (void)state;
    char path[300], err[512] = "";
    path_in(path, sizeof path, "junk.db");
    static unsigned char junk[65536];
    srand(42);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)rand();
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    assert_null(tuner_db_open(path, err, sizeof err));
    assert_non_null(strstr(err, "not a database"));
    assert_non_null(strstr(err, path));
    static unsigned char back[65536];
    fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, back, sizeof back), (ssize_t)sizeof back);
    close(fd);
    assert_memory_equal(junk, back, sizeof junk);

    /* a truncated header ("SQLite format 3" then garbage) is refused as well */
    path_in(path, sizeof path, "half.db");
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    memcpy(junk, "SQLite format 3", 16);
    assert_int_equal(write(fd, junk, 4096), 4096);
    close(fd);
    err[0] = '\0';
    assert_null(tuner_db_open(path, err, sizeof err));
    assert_true(strlen(err) > 0);
}

static void test_newer_schema_refused(void **state) {
    (void)state;
    char path[300], err[512] = "";
    path_in(path, sizeof path, "new.db");
    tuner_db_t *db = open_ok(path);
    assert_int_equal(tuner_db_exec(db, "PRAGMA user_version = 99"), 0);
    tuner_db_close(db);
    assert_null(tuner_db_open(path, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
    assert_non_null(strstr(err, "99"));
}

static void test_bad_paths(void **state) {
    (void)state;
    char err[512] = "";
    assert_null(tuner_db_open("/nonexistent-dir-hakmem/x.db", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    err[0] = '\0';
    assert_null(tuner_db_open("", err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_null(tuner_db_open(NULL, err, sizeof err));
    assert_null(tuner_db_open("/nonexistent-dir-hakmem/x.db", NULL, 0));   /* no buffer: still no crash */
}

static void test_missing_libsqlite(void **state) {
    (void)state;
    char path[300], err[512] = "";
    path_in(path, sizeof path, "nolib.db");
    tuner_db_set_library("libsqlite3-hakmem-missing.so.0");
    tuner_db_t *db = tuner_db_open(path, err, sizeof err);
    tuner_db_set_library(NULL);
    assert_null(db);
    assert_non_null(strstr(err, "cannot load"));
    assert_non_null(strstr(err, "libsqlite3"));
    assert_int_equal(access(path, F_OK), -1);   /* nothing created */
}

/* Writers that die: (a) _exit in the middle of an open transaction,
 * (b) SIGKILL while writing samples in a loop.  The DB opens, passes
 * integrity_check, keeps every committed row and no partial sample. */
static void test_killed_writer(void **state) {
    (void)state;
    char path[300];
    path_in(path, sizeof path, "crash.db");
    tuner_db_t *db = open_ok(path);
    hak_snapshot_t s;
    make_snap(&s, 1);
    int64_t run = tuner_db_run_begin(db, &s, "before", NULL, "daemon");
    for (uint64_t k = 1; k <= 5; k++) {
        make_snap(&s, k);
        assert_int_equal(tuner_db_sample(db, run, &s), 0);
    }
    tuner_db_close(db);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[512];
        tuner_db_t *c = tuner_db_open(path, err, sizeof err);
        if (c == NULL) _exit(3);
        if (tuner_db_exec(c, "BEGIN IMMEDIATE") != 0) _exit(4);
        for (int i = 0; i < 200; i++)
            if (tuner_db_exec(c, "INSERT INTO samples(run_id, time_ns) VALUES(1, 1)") != 0) _exit(5);
        _exit(0);   /* no COMMIT, no close */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    db = open_ok(path);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM samples"), 5);
    tuner_db_close(db);

    /* (b) */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        char err[512];
        tuner_db_t *c = tuner_db_open(path, err, sizeof err);
        if (c == NULL) _exit(3);
        hak_snapshot_t cs;
        make_snap(&cs, 9);
        int64_t r = tuner_db_run_begin(c, &cs, "killed", NULL, "daemon");
        for (uint64_t k = 0;; k++) {
            cs.counter[HAK_C_cache_hits] = k;
            if (tuner_db_sample(c, r, &cs) != 0) _exit(6);
            if (k == 20 && write(pfd[1], "x", 1) != 1) _exit(7);
        }
    }
    close(pfd[1]);
    char x;
    assert_int_equal(read(pfd[0], &x, 1), 1);   /* the child is writing */
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(pfd[0]);
    assert_true(WIFSIGNALED(st));
    db = open_ok(path);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM samples WHERE run_id = %lld", (long long)run), 5);
    assert_true(q(db, "SELECT COUNT(*) FROM samples s JOIN runs r ON r.id = s.run_id WHERE r.command = 'killed'") > 20);
    /* every committed sample came with its class rows (one transaction) */
    assert_int_equal(q(db, "SELECT COUNT(*) FROM samples s WHERE s.run_id > 0 AND s.time_ns > 1 AND "
                           "(SELECT COUNT(*) FROM class_samples c WHERE c.sample_id = s.id) != 2"), 0);
    /* the killed run has no end: "still running or killed" */
    assert_int_equal(q(db, "SELECT end_ns IS NULL FROM runs WHERE command = 'killed'"), 1);
    hak_snapshot_t s2;
    make_snap(&s2, 2);
    assert_int_equal(tuner_db_sample(db, run, &s2), 0);   /* writable again */
    tuner_db_close(db);
}

/* Several processes writing one DB at once lose nothing. */
static void test_concurrent_writers(void **state) {
    (void)state;
    char path[300];
    path_in(path, sizeof path, "multi.db");
    tuner_db_close(open_ok(path));
    enum { NPROC = 3, NSAMPLES = 40 };
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            char err[512];
            tuner_db_t *c = tuner_db_open(path, err, sizeof err);
            if (c == NULL) _exit(3);
            hak_snapshot_t cs;
            make_snap(&cs, 1);
            cs.pid = 1000 + (uint32_t)p;
            int64_t r = tuner_db_run_begin(c, &cs, NULL, NULL, "in-process");
            if (r < 0) _exit(4);
            for (int k = 0; k < NSAMPLES; k++)
                if (tuner_db_sample(c, r, &cs) != 0) _exit(5);
            tuner_decision_t d = {.knob = HAK_KNOB_RING_CAP, .size_class = UINT32_MAX, .new_value = 9,
                                  .reason = TUNER_R_GHOST_DEMAND, .driver_class = UINT32_MAX};
            if (tuner_db_decision(c, r, 1, 1, &d) < 0) _exit(6);
            if (tuner_db_run_end(c, r, 2) != 0) _exit(7);
            tuner_db_close(c);
            _exit(0);
        }
    }
    for (int p = 0; p < NPROC; p++) {
        int st;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    tuner_db_t *db = open_ok(path);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM runs WHERE end_ns = 2"), NPROC);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM samples"), NPROC * NSAMPLES);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM class_samples"), NPROC * NSAMPLES * 2);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM decisions"), NPROC);
    tuner_db_close(db);
}

/* A DB locked by another writer for longer than the busy timeout: the
 * sample fails with a clear message, nothing is lost, and writing works
 * again once the lock is gone. */
static void test_locked_db(void **state) {
    (void)state;
    char path[300];
    path_in(path, sizeof path, "locked.db");
    tuner_db_t *db = open_ok(path);
    hak_snapshot_t s;
    make_snap(&s, 1);
    int64_t run = tuner_db_run_begin(db, &s, NULL, NULL, "daemon");
    assert_int_equal(tuner_db_sample(db, run, &s), 0);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        char err[512];
        tuner_db_t *c = tuner_db_open(path, err, sizeof err);
        if (c == NULL || tuner_db_exec(c, "BEGIN EXCLUSIVE") != 0) _exit(3);
        if (write(pfd[1], "x", 1) != 1) _exit(4);
        sleep(3);
        tuner_db_exec(c, "COMMIT");
        _exit(0);
    }
    close(pfd[1]);
    char x;
    assert_int_equal(read(pfd[0], &x, 1), 1);
    close(pfd[0]);
    assert_int_equal(tuner_db_sample(db, run, &s), -1);
    assert_non_null(strstr(tuner_db_errmsg(db), "locked"));
    int st;
    waitpid(pid, &st, 0);
    assert_int_equal(tuner_db_sample(db, run, &s), 0);
    assert_int_equal(q(db, "SELECT COUNT(*) FROM samples"), 2);
    tuner_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_insert_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_libsqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_db, setup, teardown),
    };
    return cmocka_run_group_tests_name("db", tests, NULL, NULL);
}
