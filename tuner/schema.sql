-- tuner/schema.sql - schema of the tuning history DB (compiled into tuner/db.c).
--
-- Migrations, oldest first.  A line "-- @migration N description" starts the
-- SQL of schema version N.  tuner_db_open applies, in order and each in its own
-- transaction, every migration above the DB's PRAGMA user_version, records it
-- in schema_migrations and sets user_version = N.  A DB whose user_version is
-- above the newest migration here is refused (written by a newer hakmem).
-- Never edit a released migration: append a new one.
--
-- The counter and gauge columns of samples are NOT listed here: tuner_db_open
-- adds one INTEGER column per name of HAK_COUNTERS / HAK_GAUGES
-- (include/hakmem/shm.h) that the table lacks, so a counter appended to the
-- X-macro list needs no migration.
--
-- Times are nanoseconds: *_ns = CLOCK_REALTIME (Unix epoch), mono_ns =
-- CLOCK_MONOTONIC of the machine that took the sample.

-- @migration 1 runs, samples, class_samples, decisions
CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    applied_ns  INTEGER NOT NULL,
    description TEXT
);

-- One recording of one process (by the daemon or in-process).
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    pid              INTEGER NOT NULL,
    command          TEXT,              -- command line (or comm)
    host             TEXT,
    mode             TEXT,              -- off | fixed | evolving (HAKMEM_MODE)
    source           TEXT,              -- in-process | daemon
    start_ns         INTEGER NOT NULL,  -- recording started
    end_ns           INTEGER,           -- recording ended; NULL = still running or killed
    proc_start_ns    INTEGER,           -- the process's segment was created
    ring_cap         INTEGER,           -- knobs at start
    batch_threshold  INTEGER,
    cache_max_bytes  INTEGER,
    large_min        INTEGER,
    thp              INTEGER,
    tune_interval_ms INTEGER,
    idle_ms          INTEGER
);

-- One snapshot of the segment (+ one column per counter and gauge, see above).
CREATE TABLE samples (
    id                     INTEGER PRIMARY KEY,
    run_id                 INTEGER NOT NULL REFERENCES runs(id),
    time_ns                INTEGER NOT NULL,
    mono_ns                INTEGER,
    ring_cap               INTEGER,     -- knobs in force
    batch_threshold        INTEGER,
    cache_max_bytes        INTEGER,
    peak_bytes_mapped      INTEGER,
    decision_head          INTEGER,     -- decisions ever logged in the segment
    ctl_seq                INTEGER,     -- control block: requests posted / applied
    ctl_applied_seq        INTEGER,
    k_updated_ns           INTEGER,     -- kernel section (hakmem-probe); 0 = not published
    k_munmap_calls         INTEGER,
    k_munmap_bytes         INTEGER,
    k_munmap_ns_total      INTEGER,
    k_munmap_outside_flush INTEGER,
    k_madvise_calls        INTEGER,
    k_madvise_ns_total     INTEGER
);

-- Per size class figures of a sample (classes that ever saw traffic).
CREATE TABLE class_samples (
    sample_id  INTEGER NOT NULL REFERENCES samples(id),
    class      INTEGER NOT NULL,
    size       INTEGER,                 -- block size of the class
    hits       INTEGER,
    misses     INTEGER,
    puts       INTEGER,
    cached     INTEGER,                 -- blocks in the ring now
    cap        INTEGER,                 -- effective ring cap
    ghost_hits INTEGER,                 -- misses a bigger ring would have hit
    PRIMARY KEY (sample_id, class)
);

-- Tuner decisions and, later, their grades.
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    time_ns     INTEGER NOT NULL,
    seq         INTEGER,                -- number in the segment's decision log
    knob        TEXT NOT NULL,          -- ring_cap | batch_threshold | trim
    size_class  INTEGER,                -- NULL = global
    old_value   INTEGER,
    new_value   INTEGER,
    reason      TEXT NOT NULL,          -- ghost_demand | decay | budget | flush_cost | ...
    reason_code INTEGER,
    predicted   REAL,                   -- ring_cap: hit rate; batch: flush core fraction; trim: bytes held
    grade       INTEGER,                -- NULL ungraded, 1 confirmed, 2 refuted, 3 inconclusive
    observed    REAL,                   -- the predicted figure as it happened
    graded_ns   INTEGER
);

-- @migration 2 reuse histogram and evictions per class, decision basis and driver, indexes
ALTER TABLE class_samples ADD COLUMN evictions INTEGER;   -- all reasons
ALTER TABLE class_samples ADD COLUMN h0 INTEGER;          -- reuse_hist: ghost misses by deficit
ALTER TABLE class_samples ADD COLUMN h1 INTEGER;          --   hN counts deficits [2^N, 2^(N+1))
ALTER TABLE class_samples ADD COLUMN h2 INTEGER;
ALTER TABLE class_samples ADD COLUMN h3 INTEGER;
ALTER TABLE class_samples ADD COLUMN h4 INTEGER;
ALTER TABLE class_samples ADD COLUMN h5 INTEGER;
ALTER TABLE class_samples ADD COLUMN h6 INTEGER;
ALTER TABLE class_samples ADD COLUMN h7 INTEGER;          --   h7: >= 128
ALTER TABLE decisions ADD COLUMN driver_class INTEGER;    -- class whose figures drove it
ALTER TABLE decisions ADD COLUMN before_value REAL;       -- the predicted figure before the change
CREATE INDEX samples_run_time ON samples(run_id, time_ns);
CREATE INDEX decisions_run_seq ON decisions(run_id, seq);
