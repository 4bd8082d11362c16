/*
 * tuner/policy.h - the tuner's policy: pure functions from telemetry snapshots
 * to knob decisions, and the grading of those decisions afterwards.
 *
 * Pure: no I/O, no malloc, no globals, no clock reads.  Everything the policy
 * remembers lives in a fixed-size tuner_state_t owned by the caller (the
 * in-process thread in tuner/inproc.c or the daemon hakmem-tuner --drive); time
 * comes only from hak_snapshot_t.taken_ns (CLOCK_MONOTONIC ns).  Deterministic:
 * the same snapshot sequence always gives the same decisions, which is what
 * tests/unit/test_policy.c relies on.
 *
 * One rule per file (tuner/README.md has the full description):
 *   policy_cap.c    CLASS_CAP per size class: raised at the first run of ghost
 *                   misses to the whole outstanding demand (hit_target 1.0),
 *                   the sum over classes kept within the byte budget (classes
 *                   with the most predicted hits per byte first); lowered
 *                   slowly with hold, dead band and back-off, so a steady
 *                   workload reaches a fixed point.  The global RING_CAP stays
 *                   the default of classes without an opinion (only brought
 *                   back into the configured bounds).
 *   policy_batch.c  BATCH_THRESHOLD from the measured flush cost, with a dead
 *                   band between raising and lowering.
 *   policy_thp.c    CLASS_THP: every change of a class's THP state the library
 *                   made is logged; a class still undecided after 4 samples is
 *                   decided by the touched fraction.  THP_COST: every time the
 *                   library starts or stops refusing huge pages for what their
 *                   faults cost is logged.
 *   policy_trim.c   TRIM after idle_ms without large-block activity, and the
 *                   per-class caps back to the global cap.
 *   policy_grade.c  grading of the decisions against what happened.
 *   policy_step.c   tuner_step, which runs the rules.
 *   policy.c        what they share: configuration, state, names, tuner_emit.
 *
 * Units of tuner_decision_t.predicted / tuner_grade_t.observed, by knob:
 *   RING_CAP         cache hit rate (0..1, warm reuse counted as a hit) over the next grade window
 *   CLASS_CAP        the class's own ring hit rate (0..1) over the next grade window
 *   BATCH_THRESHOLD  flush time per MiB released (ns/MiB)
 *   TRIM             bytes cached + pending after the trim
 *   CLASS_THP        fraction of the class's sampled pages the program touched (0..1)
 *   THP_COST         a huge-page fault's cost / 512 faults of 4 KiB pages' (above 1.5: refused)
 */
#ifndef HAKMEM_TUNER_POLICY_H
#define HAKMEM_TUNER_POLICY_H

#include <stdint.h>

#include "hakmem/shm.h"

/* Configuration.  The first seven fields are the contract; every field left 0
 * takes its default (tuner_cfg_default fills them all explicitly). */
typedef struct tuner_cfg {
    uint64_t cache_max_bytes;   /* memory budget for all rings; 0 = the process's HAKMEM_CACHE_MAX_BYTES
                                   (the policy never plans beyond that knob either) */
    uint64_t ring_cap_min;      /* lowest ring cap the tuner sets (default 1; 0 is allowed only if max is 0) */
    uint64_t ring_cap_max;      /* highest ring cap (default 512 = HAK_RING_CAP_MAX) */
    uint64_t batch_min;         /* batch threshold bounds, bytes (default 64 KiB .. 1 GiB) */
    uint64_t batch_max;
    uint64_t idle_ms;           /* no large-block activity for this long -> one TRIM (0 = HAKMEM_IDLE_MS) */
    uint64_t interval_ms;       /* nominal step interval, for the grade window (0 = HAKMEM_TUNE_INTERVAL_MS) */
    /* optional tuning of the policy itself (0 = default) */
    double   hit_target;        /* fraction of the predicted achievable hits a raise covers (1.0: all of it) */
    double   flush_target;      /* flush time budget, fraction of one core (0.005) */
    uint32_t decay_hold;        /* over-provisioned intervals before the first decay step (8) */
    uint32_t grade_intervals;   /* intervals after a decision before it is graded (4) */
} tuner_cfg_t;

/* Reason codes (stored in the decision log and the history DB). */
enum tuner_reason {
    TUNER_R_NONE = 0,
    TUNER_R_GHOST_DEMAND = 1,   /* cap raised: ghost misses show demand a bigger ring would serve */
    TUNER_R_DECAY = 2,          /* cap lowered: ring slots went unused for the hold period */
    TUNER_R_BUDGET = 3,         /* cap limited or lowered to fit cache_max_bytes */
    TUNER_R_FLUSH_COST = 4,     /* threshold raised: flush time above flush_target */
    TUNER_R_FLUSH_CHEAP = 5,    /* threshold lowered: flushes cheap, pending bytes held for nothing */
    TUNER_R_PENDING_HELD = 6,   /* threshold lowered: pending bytes sat with no flush for the hold period */
    TUNER_R_IDLE = 7,           /* trim, and class caps back to the global cap: no large-block activity for idle_ms */
    TUNER_R_BOUNDS = 8,         /* knob was outside the configured bounds */
    TUNER_R_THP_TOUCH = 9,      /* THP state of a class from the share of its pages the program touches */
    TUNER_R_OPENING = 10,       /* threshold at the tuner's start: hold evicted blocks for the first repetition */
    TUNER_R_FAULT_COST = 11,    /* THP_COST: huge pages refused or allowed again by what their faults cost */
    TUNER_NREASONS
};

/* Grades (tuner_grade_t.grade, decisions.grade in the DB, hak_shm_decision_t.grade). */
enum tuner_grade_code {
    TUNER_GRADE_NONE = 0,           /* not graded yet */
    TUNER_GRADE_CONFIRMED = 1,      /* what was predicted happened (within tolerance) */
    TUNER_GRADE_REFUTED = 2,        /* it did not */
    TUNER_GRADE_INCONCLUSIVE = 3,   /* no traffic to judge by before the grade expired */
};

/* tuner_decision_t.flags */
#define TUNER_D_OBSERVED 0x1u   /* the library made this change itself (a CLASS_THP state it chose, a
                                   THP_COST flip): logged and graded, nothing to apply */

typedef struct tuner_decision {
    uint32_t knob;              /* enum hak_knob_id: RING_CAP, BATCH_THRESHOLD, CLASS_CAP, TRIM, CLASS_THP */
    uint32_t size_class;        /* CLASS_CAP / CLASS_THP: the class; UINT32_MAX = global (the other knobs) */
    uint64_t old_value, new_value;   /* TRIM: old = bytes cached + pending, new = 0;
                                        CLASS_CAP: blocks, HAK_CLASS_CAP_GLOBAL = follow the global cap;
                                        CLASS_THP: enum hak_class_thp */
    uint32_t reason;            /* enum tuner_reason */
    uint32_t driver_class;      /* size class whose figures drove it, UINT32_MAX = none */
    double   predicted;         /* predicted effect after the change (units: see top) */
    double   before;            /* the same figure observed in the interval that led to it */
    uint32_t flags;             /* TUNER_D_* */
    uint32_t pad_;
} tuner_decision_t;

/* tuner_step never writes more than this: a cap and a THP decision per class,
 * the threshold, the trim and the global cap.  Callers size their buffers
 * with it. */
#define TUNER_MAX_DECISIONS (2 * HAK_SHM_CLASSES + 4)
#define TUNER_PENDING_MAX   128 /* decisions awaiting a grade (oldest dropped beyond) */

/* Per-class memory of the policy. */
typedef struct tuner_class_state {
    uint32_t want;              /* ring cap this class wants (0 = no opinion: it follows the global cap) */
    uint32_t quiet;             /* consecutive active intervals without ghost demand */
    uint32_t hold;              /* quiet intervals required before decaying (back-off) */
    uint32_t since_decay;       /* steps since this class's last decay step (UINT32_MAX = never) */
    uint32_t since_active;      /* steps since this class last had traffic (UINT32_MAX = never) */
    uint32_t epoch_age;         /* steps in the current occupancy epoch */
    uint32_t lo[2], hi[2];      /* min/max cached_blocks seen: [0] current epoch, [1] previous */
    uint32_t live_hi[2];        /* max global blocks_live seen in the epochs (single active class) */
    uint32_t ghost_lo[2];       /* fewest ghosts seen at a sample, two epochs: ghosts that old are stale */
    uint32_t slack;             /* consecutive active intervals whose usage left the want 25% idle */
    uint32_t since_raise;       /* active steps since this class's want was last raised (UINT32_MAX = never) */
    uint32_t thp_seen;          /* THP state (enum hak_class_thp) at the last snapshot */
    uint32_t thp_posted;        /* THP state decided and not yet seen (0 = none) */
    uint32_t thp_posted_age;
    uint32_t posted_age;        /* steps since posted was decided */
    uint32_t has_posted;        /* posted holds a cap decided and not yet seen in the snapshot */
    uint32_t granted;           /* cap the budget gave this class at the last step (0 = none) */
    uint32_t run_base;          /* ring occupancy when the latest run of ghost misses began */
    uint32_t run_ghosts;        /* ghost misses of that run so far (it may span intervals) */
    uint32_t evict_prev;        /* capacity evictions of the class in the previous active interval */
    uint32_t small_raises;      /* consecutive intervals asking for a small raise (dead band) */
    uint32_t small_need;        /* the most they asked for */
    uint32_t pad_;
    uint64_t posted;            /* that cap (HAK_CLASS_CAP_GLOBAL = back to the global cap) */
    double   rate;              /* EWMA of the class's accesses per step (budget priority) */
} tuner_class_state_t;

typedef struct tuner_pending {
    uint64_t seq;               /* 0 = free slot */
    uint32_t knob, reason;
    double   predicted;
    uint64_t at_ns;             /* taken_ns of the snapshot the decision was made on */
    uint64_t old_value, new_value;
    uint64_t hits, misses;      /* cache_hits / cache_misses at the decision */
    uint64_t warm;              /* warm_near + warm_reshaped + warm_rescued at the decision */
    uint64_t flush_ns;          /* batch_flush_ns at the decision */
    uint64_t activity;          /* large_allocs + large_frees at the decision */
    uint64_t trims;             /* trims + evict_idle_trim counters at the decision */
    uint64_t bytes_flushed;     /* batch_bytes_flushed at the decision */
    uint32_t size_class;        /* CLASS_CAP / CLASS_THP: the class (UINT32_MAX = global) */
    uint32_t thp_samples;       /* CLASS_THP: blocks sampled by then */
    uint64_t fault_probes;      /* THP_COST: thp_fault_probes by then */
    uint64_t class_hits, class_misses;   /* CLASS_CAP: the class's ring figures at the decision */
} tuner_pending_t;

/* Everything the policy remembers: fixed size, no pointers, copyable. */
typedef struct tuner_state {
    tuner_cfg_t cfg;            /* with defaults filled in */
    uint32_t pid;               /* process the baselines belong to (0 = none yet) */
    uint32_t steps;             /* tuner_step calls with a usable prev */
    /* idle */
    uint64_t last_activity;     /* large_allocs + large_frees last seen */
    uint64_t activity_ns;       /* taken_ns when it last changed */
    uint32_t trimmed;           /* 1 once the idle period was handled (TRIM and caps back) */
    /* global ring cap (bounds only) */
    uint32_t posted_cap;        /* cap decided and not yet seen in the knobs (UINT32_MAX = none) */
    uint32_t posted_age;
    uint32_t ghost_epoch_age;   /* steps in the current ghost-floor epoch */
    /* batch threshold */
    uint32_t batch_agree;       /* consecutive intervals proposing a lower threshold */
    uint32_t batch_hold;        /* intervals they must agree before lowering (back-off) */
    uint32_t batch_since_lower; /* steps since the threshold was last lowered (UINT32_MAX = never) */
    uint32_t batch_since_raise; /* steps since the last flush_cost raise (UINT32_MAX = never) */
    double   bytes_per_flush;   /* EWMA of bytes released per flush */
    double   reg_w, reg_x, reg_y, reg_xx, reg_xy;   /* decayed sums for ns/flush = a + b x MiB/flush */
    uint32_t no_flush;          /* consecutive intervals with pending bytes and no flush */
    uint32_t pad_;
    double   flush_fixed_ns;    /* EWMA of the per-flush cost a bigger batch could save (0 = unknown) */
    double   flush_ns_per_mib;  /* EWMA of flush time per MiB released (0 = unknown) */
    double   flush_alpha;       /* share of it that really amortises: halved by each refuted
                                   flush_cost raise, regained (x1.25) by each confirmed one */
    double   need_avg;          /* EWMA of the threshold the flush cost asks for (bytes; 0 = none yet) */
    uint64_t posted_batch;      /* threshold decided and not yet seen (0 = none) */
    uint32_t posted_batch_age;
    uint32_t npending;
    uint32_t inplay_hi[2];      /* max blocks in play (live + cached) seen: [0] current epoch, [1] previous */
    uint32_t inplay_age;
    uint32_t thp_cost_seen;     /* knobs.thp_by_cost at the last snapshot (THP_COST) */
    tuner_class_state_t cls[HAK_SHM_CLASSES];
    tuner_pending_t pending[TUNER_PENDING_MAX];
} tuner_state_t;

/* Fill cfg with the defaults; when s is not NULL take cache_max_bytes, idle_ms
 * and interval_ms from the process's knobs. */
void tuner_cfg_default(tuner_cfg_t *cfg, const hak_snapshot_t *s);

/* Reset st for a new process; cfg fields left 0 take their defaults. */
void tuner_init(tuner_state_t *st, const tuner_cfg_t *cfg);

/* The tuner's opening move, made when it starts (before its first interval:
 * the first repetition of a pattern may come sooner), from the byte budget
 * and the threshold in force: the batch threshold that holds the blocks a
 * first round evicts pending in Batch, where the next round's misses take
 * them back warm (policy_batch.c).  Writes one BATCH_THRESHOLD decision
 * (reason opening) to *out and returns 1, or returns 0 when the threshold in
 * force already holds that much. */
int tuner_opening(uint64_t budget, uint64_t threshold, tuner_decision_t *out);

/* One policy step on the interval prev -> cur.  Writes at most max (and at most
 * TUNER_MAX_DECISIONS) decisions to out and returns how many.  prev may be NULL
 * on the first call (baselines only, returns 0); a prev of another pid or with
 * counters that went backwards also only resets the baselines.  cur->taken_ns
 * is CLOCK_MONOTONIC ns.  The caller applies the decisions (control block or
 * hak_knob_set / hak_trim), then calls tuner_note_decision for each. */
int tuner_step(tuner_state_t *st, const hak_snapshot_t *prev, const hak_snapshot_t *cur,
               tuner_decision_t *out, int max);

/* Remember decision d (numbered seq by the caller) for grading; at is the
 * snapshot it was decided on (cur of that tuner_step). */
void tuner_note_decision(tuner_state_t *st, const tuner_decision_t *d, uint64_t seq, const hak_snapshot_t *at);

typedef struct tuner_grade {
    uint64_t decision_seq;
    int      grade;             /* enum tuner_grade_code: 1 confirmed, 2 refuted, 3 inconclusive */
    double   observed;          /* the figure predicted, as observed (units: see top) */
} tuner_grade_t;

/* Grade the noted decisions whose effect window (grade_intervals * interval_ms)
 * has passed by cur->taken_ns; writes at most max grades and returns how many.
 * Graded decisions are forgotten; the rest wait for the next call. */
int tuner_grade_pending(tuner_state_t *st, const hak_snapshot_t *cur, tuner_grade_t *out, int max);

/* The grade of a BATCH_THRESHOLD prediction (flush ns per MiB): CONFIRMED when
 * observed <= predicted x 1.25 + 100 ns/MiB, else REFUTED; INCONCLUSIVE for a
 * NAN or negative figure.  The tuner grades with it and hakmem-report re-judges
 * recorded grades with it. */
int tuner_grade_flush(double predicted, double observed);

/* "ghost_demand", "decay", ..., "thp_touch"; "unknown" for an unknown code. */
const char *tuner_reason_name(uint32_t reason);
/* "ring_cap", "batch_threshold", "class_cap", "trim", "class_thp", "thp_cost", "unknown". */
const char *tuner_knob_name(uint32_t knob);
/* "ungraded", "confirmed", "refuted", "inconclusive", "unknown". */
const char *tuner_grade_name(int grade);

/* Prediction primitive (exported for tests and reports): how many of the ghost
 * misses recorded in hist (a reuse_hist delta, bucket b = deficits [2^b, 2^(b+1)),
 * bucket 7 = >= 128) a ring with k more slots would have turned into hits. */
double tuner_hist_covered(const uint64_t hist[8], uint64_t k);

#endif /* HAKMEM_TUNER_POLICY_H */
