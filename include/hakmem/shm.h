/*
 * hakmem/shm.h - THE layout of the hakmem telemetry segment (one definition).
 *
 * Every process running libhakmem maps one POSIX shared-memory segment named
 * "/hakmem.<pid>" (so /dev/shm/hakmem.<pid>), mode 0600. The library, hakmem-stat,
 * the tuner and the eBPF loader all include this header and nothing else to
 * understand it.  Rules:
 *   - the struct opens with magic, version and size: readers refuse another
 *     magic or version and tolerate a larger size (fields are only appended);
 *   - fixed-width types only, no pointers, no bool; every counter is a u64;
 *   - HAK_COUNTERS(X) lists every event counter once; the struct fields, JSON
 *     and Prometheus names are generated from it;
 *   - writers never wait for readers (seqlocks); readers retry a bounded
 *     number of times and report "busy" rather than stall.
 *
 * Consistency model.  Event counters live in per-thread slots.  Each slot has
 * one writer (its thread) and a generation number: odd while the thread is in
 * the middle of one allocator operation, even between operations.  A reader
 * copies a slot between two equal even generations, so it sees the slot at an
 * operation boundary; totals are the sum of the slots.  Slots of exiting
 * threads are folded into the "retired" slot under shm->fold_gen (also a
 * seqlock), so a reader that saw fold_gen change retries the whole snapshot.
 * Slot 1, the overflow slot, has many writers: a thread that found no free
 * slot counts privately and adds its counts into slot 1 (atomic adds) at the
 * end of each operation.  Slot 1's gen is (epoch << 16) | writers inside an
 * operation; a reader copies it while the low 16 bits are 0 and the word is
 * unchanged after the copy (HAK_SHM_SLOT_BUSY gives each slot's busy bits).
 * Per-class figures are written under the class lock, with their own gen.
 */
#ifndef HAKMEM_SHM_H
#define HAKMEM_SHM_H

#include <stdint.h>
#include <stddef.h>

#define HAK_SHM_MAGIC        0x4d454d4b4148ULL  /* "HAKMEM\0\0" little endian */
#define HAK_SHM_VERSION      6u
#define HAK_SHM_NAME_FMT     "/hakmem.%d"       /* shm_open name; /dev/shm/hakmem.<pid> */
#define HAK_SHM_DIR          "/dev/shm"
#define HAK_SHM_PREFIX       "hakmem."
#define HAK_SHM_CLASSES      64u   /* room for size classes (the library uses fewer) */
#define HAK_SHM_SLOTS        128u  /* thread slots; slot 0 = retired threads, 1 = shared overflow */
#define HAK_SHM_SLOT_SHARED  1u    /* the overflow slot: many writers, gen = epoch << 16 | writers inside */
#define HAK_SHM_SHARED_BUSY  0xffffull
#define HAK_SHM_SHARED_EPOCH 0x10000ull
/* The bits of slot i's gen that say "a writer is inside an operation". */
#define HAK_SHM_SLOT_BUSY(i) ((i) == HAK_SHM_SLOT_SHARED ? HAK_SHM_SHARED_BUSY : 1ull)
#define HAK_SHM_DECISIONS    256u  /* decision log ring entries (power of two) */
#define HAK_SHM_COMM_LEN     64u

/* Event counters: X(name, help).  Monotonic, summed over thread slots. */
#define HAK_COUNTERS(X) \
    X(large_allocs,          "large allocations served (malloc/calloc/realloc/memalign >= large_min)") \
    X(large_frees,           "large blocks freed by the program") \
    X(cache_hits,            "large allocations served from a cache of their class, ring or front cache (no syscall)") \
    X(cache_misses,          "large allocations their own ring could not serve (warm_* of them still reused warm memory)") \
    X(cache_puts,            "blocks put into a BigCache ring (freed, or moved on from a front cache)") \
    X(evict_ring_full,       "blocks handed to Batch because their ring was full") \
    X(evict_cap_lowered,     "blocks handed to Batch because the ring cap was lowered") \
    X(evict_budget,          "blocks handed to Batch because the cache byte budget was exceeded") \
    X(evict_idle_trim,       "blocks handed to Batch by a trim (idle or requested)") \
    X(evict_uncacheable,     "freed blocks that no ring may hold (oversized, over-aligned, mode)") \
    X(batch_adds,            "blocks added to Batch (= sum of evict_*)") \
    X(batch_add_bytes,       "block bytes added to Batch") \
    X(batch_flushes,         "Batch flushes") \
    X(batch_blocks_flushed,  "blocks released by Batch flushes") \
    X(batch_bytes_flushed,   "block bytes released by Batch flushes") \
    X(batch_ranges_flushed,  "coalesced address ranges released by Batch flushes") \
    X(batch_flush_ns,        "nanoseconds spent inside Batch flushes") \
    X(mmap_calls,            "mmap calls for large blocks") \
    X(munmap_calls,          "munmap calls for large blocks (all from Batch)") \
    X(munmap_bytes,          "bytes of address space those munmap calls released (blocks + alignment tails)") \
    X(munmap_failures,       "munmap calls that failed (reported, never silent)") \
    X(madvise_calls,         "madvise calls") \
    X(mremap_calls,          "mremap calls (large realloc)") \
    X(mmap_failures,         "mmap/mremap calls that failed (allocation returned ENOMEM)") \
    X(bytes_mapped_total,    "bytes ever mapped for large blocks") \
    X(mremap_dropped_bytes,  "bytes of address space mremap dropped: a cached block's head that a realloc grew into, a shrunk block's tail") \
    X(realloc_inplace,       "large reallocs satisfied in place (a shrink to half the mapping or less gives its tail back)") \
    X(realloc_mremap,        "large reallocs satisfied by mremap (no copy)") \
    X(warm_realloc,          "of those, grown into a cached block's pages (its tail comes warm, nothing fresh)") \
    X(realloc_copy,          "reallocs that copied (crossing large_min)") \
    X(calloc_zero_skipped,   "large callocs that skipped memset on a fresh mapping") \
    X(invalid_frees,         "invalid or double frees of hakmem blocks detected") \
    X(trims,                 "trim operations (idle or requested)") \
    X(ctl_applied,           "control-block requests applied") \
    X(warm_near,             "misses served by a cached block of a bigger class (at most one doubling)") \
    X(warm_reshaped,         "misses served by growing a smaller cached block with mremap (its pages kept)") \
    X(warm_rescued,          "misses served by a block taken back from Batch before its munmap") \
    X(warm_rescued_bytes,    "block bytes taken back from Batch") \
    X(tcache_hits,           "cache hits served by the thread's own front cache (no lock, no shared write)") \
    X(tcache_puts,           "freed blocks kept in the thread's own front cache") \
    X(thp_samples,           "freed blocks whose touched pages were sampled (mincore) for the THP choice") \
    X(lent_tail_released,    "blocks of a bigger class lent to a smaller request whose unused resident tail was released") \
    X(lent_tail_bytes,       "bytes those releases gave back (MADV_DONTNEED; the mapping stays, a bigger use refaults them)") \
    X(thp_fault_probes,      "huge-page faults hakmem made and timed (MADV_POPULATE_WRITE: a fresh block's first 2 MiB, or a page of its own), to weigh huge against 4 KiB pages") \
    X(thp_small_by_cost,     "fresh blocks of huge-page classes given 4 KiB pages because huge-page faults cost more here (HAKMEM_THP=auto)") \
    X(batch_gap_bytes,       "bytes of free arena address space (reserved, no memory) that Batch's munmaps crossed between blocks, counted in munmap_bytes too") \
    X(peak_fits,             "fresh mappings before which cached or pending blocks were given back to hold the peak bound (HAKMEM_PEAK_BOUND)") \
    X(peak_shed_bytes,       "bytes of cached blocks those gave back (to Batch, released at once)")

/* Gauges: X(name, help).  Each slot keeps two monotonic sums per gauge, what it
 * added (gauge_in) and what it removed (gauge_out); the value is
 * sum(in) - sum(out).  Every removal happens after its addition, so a reader
 * that sums all gauge_out (and the "effect" counters below) BEFORE all gauge_in
 * never sees a negative gauge or more bytes flushed than added. */
#define HAK_GAUGES(X) \
    X(bytes_mapped,          "address space currently mapped for large blocks (live + cached + pending, with tails)") \
    X(bytes_live,            "bytes in large blocks the program holds") \
    X(bytes_requested,       "of those, the bytes the program asked for (the rest: class rounding, lent blocks' tails)") \
    X(blocks_live,           "large blocks the program holds") \
    X(bytes_cached,          "bytes held warm in BigCache rings and the threads' front caches") \
    X(blocks_cached,         "blocks held warm in BigCache rings and the threads' front caches") \
    X(blocks_tcached,        "of those, blocks in the threads' front caches") \
    X(bytes_pending,         "block bytes waiting in Batch for the next flush") \
    X(blocks_pending,        "blocks waiting in Batch for the next flush")

#define HAK_X_ENUM(name, help) HAK_C_##name,
enum hak_counter_id { HAK_COUNTERS(HAK_X_ENUM) HAK_NCOUNTERS };
#define HAK_X_GENUM(name, help) HAK_G_##name,
enum hak_gauge_id { HAK_GAUGES(HAK_X_GENUM) HAK_NGAUGES };
#undef HAK_X_ENUM
#undef HAK_X_GENUM

/* Modes (hak_shm_t.mode, HAKMEM_MODE). */
enum hak_mode { HAK_MODE_OFF = 0, HAK_MODE_FIXED = 1, HAK_MODE_EVOLVING = 2 };

/* Eviction reasons (USDT probe argument, per-class figures). */
enum hak_evict_reason {
    HAK_EVICT_RING_FULL = 0, HAK_EVICT_CAP_LOWERED = 1, HAK_EVICT_BUDGET = 2,
    HAK_EVICT_IDLE_TRIM = 3, HAK_EVICT_UNCACHEABLE = 4, HAK_EVICT_NREASONS = 5
};

/* Knob ids (knob change probes, decision log). */
enum hak_knob_id { HAK_KNOB_RING_CAP = 1, HAK_KNOB_BATCH_THRESHOLD = 2, HAK_KNOB_CLASS_CAP = 3, HAK_KNOB_TRIM = 4,
                   HAK_KNOB_CLASS_THP = 5, HAK_KNOB_THP_COST = 6 };

/* Counters that record the effect of an earlier counted cause (read in the
 * first pass of a snapshot, with gauge_out). */
#define HAK_COUNTER_IS_EFFECT(id) \
    ((id) == HAK_C_batch_flushes || (id) == HAK_C_batch_blocks_flushed || (id) == HAK_C_batch_bytes_flushed || \
     (id) == HAK_C_batch_ranges_flushed || (id) == HAK_C_batch_flush_ns || (id) == HAK_C_munmap_calls || \
     (id) == HAK_C_munmap_failures || (id) == HAK_C_munmap_bytes || (id) == HAK_C_warm_rescued || \
     (id) == HAK_C_warm_rescued_bytes || (id) == HAK_C_mremap_dropped_bytes || (id) == HAK_C_batch_gap_bytes)

/* One thread slot: single writer (owner thread), seqlock by gen. */
typedef struct hak_shm_slot {
    uint64_t gen;                      /* odd while the owner is inside an operation */
    uint64_t owner_tid;                /* 0 = free; nonzero = kernel tid of the owner */
    uint64_t counter[HAK_NCOUNTERS];
    uint64_t gauge_in[HAK_NGAUGES];    /* sum of increments */
    uint64_t gauge_out[HAK_NGAUGES];   /* sum of decrements */
} __attribute__((aligned(64))) hak_shm_slot_t;

/* Per size class: written under the class lock; seqlock by gen. */
typedef struct hak_shm_class {
    uint64_t gen;
    uint64_t size;                     /* block size of the class, bytes */
    uint64_t hits, misses, puts;
    uint64_t evictions[HAK_EVICT_NREASONS];
    uint64_t cached_blocks;            /* blocks in the ring now */
    uint64_t cap;                      /* effective ring cap of this class now */
    uint64_t ghost_hits;               /* misses that a bigger ring would have hit (tuner) */
    uint64_t reuse_hist[8];            /* misses by ghost depth bucket (tuner's hit prediction) */
    uint64_t ghosts;                   /* capacity evictions not yet matched by a miss: the demand a
                                          bigger ring would serve now (tuner) */
    uint64_t class_cap;                /* per-class cap set by hak_set_class_cap / the control block,
                                          HAK_CLASS_CAP_GLOBAL = this class follows ring_cap */
    uint64_t thp;                      /* packed THP figures of the class:
                                          bits 0-7   enum hak_class_thp (the choice now),
                                          bits 8-15  blocks sampled at free (saturates at 255),
                                          bits 16-31 permille of the sampled blocks' pages the
                                                     program had touched (mean over the samples) */
} __attribute__((aligned(64))) hak_shm_class_t;
#define HAK_CLASS_CAP_GLOBAL UINT64_MAX
/* THP per size class (classes of 2 MiB and more; smaller ones stay HAK_CTHP_NA). */
enum hak_class_thp {
    HAK_CTHP_NA = 0,          /* below 2 MiB, or THP unavailable / HAKMEM_THP=never */
    HAK_CTHP_UNDECIDED = 1,   /* auto: sampling what the program touches */
    HAK_CTHP_HUGE = 2,        /* 2 MiB-aligned + MADV_HUGEPAGE */
    HAK_CTHP_SMALL = 3,       /* 4 KiB pages: the program touches a small part of its blocks */
};
#define HAK_CTHP_STATE(v)    ((uint32_t)((v) & 0xff))
#define HAK_CTHP_SAMPLES(v)  ((uint32_t)(((v) >> 8) & 0xff))
#define HAK_CTHP_PERMILLE(v) ((uint32_t)(((v) >> 16) & 0xffff))

/* Knob values the library is using now (written by the library only). */
typedef struct hak_shm_knobs {
    uint64_t gen;
    uint64_t ring_cap;                 /* BIGCACHE_RING_CAP */
    uint64_t batch_threshold;          /* BATCH_THRESHOLD, bytes */
    uint64_t cache_max_bytes;          /* HAKMEM_CACHE_MAX_BYTES */
    uint64_t large_min;                /* HAKMEM_LARGE_MIN */
    uint64_t thp;                      /* 0 never, 1 madvise-aligned, 2 always */
    uint64_t tune_interval_ms;
    uint64_t idle_ms;
    uint64_t thp_huge_fault_ns;        /* HAKMEM_THP=auto: recent cost of one 2 MiB huge-page fault, ns (0 = not
                                          measured); written outside gen (a single word) */
    uint64_t thp_small_fault_ns;       /* ... and of 512 faults of 4 KiB pages (the same 2 MiB), ns */
    uint64_t thp_by_cost;              /* 1 while fresh blocks of huge-page classes get 4 KiB pages because a
                                          huge-page fault costs more than HAK_THP_FAULT_SLACK_PCT % of those
                                          512 faults, else 0 */
    uint64_t pad_[5];
} hak_shm_knobs_t;
/* Huge pages also save TLB misses: they pay while a huge-page fault costs up to
 * this percentage of 512 faults of 4 KiB pages (HAKMEM_THP_FAULT_COST, src/thp.c). */
#define HAK_THP_FAULT_SLACK_PCT 150u

/* Control block: written by other processes (hakmem-stat --set, the tuner).
 * Protocol: write flags and values, then store seq+1 (release).  The library
 * compares seq with applied_seq, reads the values, CLAMPS them to the knob
 * bounds, applies those whose flag is set, and stores applied_seq = seq.
 * Torn or hostile writes can only move knobs within their bounds. */
#define HAK_CTL_RING_CAP        0x1u   /* apply ring_cap */
#define HAK_CTL_BATCH_THRESHOLD 0x2u   /* apply batch_threshold */
#define HAK_CTL_TRIM            0x4u   /* hand every cached block to Batch and flush */
#define HAK_CTL_CLASS_CAP       0x8u   /* apply class_cap to size class class_id */
#define HAK_CTL_CLASS_THP       0x10u  /* apply class_thp (enum hak_class_thp) to size class class_id */
typedef struct hak_shm_control {
    uint64_t seq;                      /* bumped by the requester after writing the rest */
    uint64_t flags;                    /* HAK_CTL_* */
    uint64_t ring_cap;                 /* requested BIGCACHE_RING_CAP */
    uint64_t batch_threshold;          /* requested BATCH_THRESHOLD, bytes */
    uint64_t applied_seq;              /* written by the library */
    uint64_t applied_ns;               /* CLOCK_REALTIME ns when applied */
    uint64_t rejected;                 /* requested values that had to be clamped */
    uint64_t class_id;                 /* HAK_CTL_CLASS_CAP / HAK_CTL_CLASS_THP: the size class */
    uint64_t class_cap;                /* requested cap of that class (HAK_CLASS_CAP_GLOBAL = follow ring_cap) */
    uint64_t class_thp;                /* requested enum hak_class_thp (HUGE or SMALL) */
    uint64_t post_lock;                /* requesters serialise on it (hak_shm_control_post) */
    uint64_t pad_[5];
} hak_shm_control_t;

/* One tuner decision (filled by the in-process tuner or hakmem-tuner --drive). */
typedef struct hak_shm_decision {
    uint64_t seq;                      /* 1-based decision number; 0 = empty */
    uint64_t time_ns;                  /* CLOCK_REALTIME */
    uint32_t knob;                     /* enum hak_knob_id */
    uint32_t size_class;               /* for HAK_KNOB_CLASS_CAP, else UINT32_MAX */
    uint64_t old_value, new_value;
    uint32_t reason;                   /* tuner reason code */
    uint32_t pad0_;
    double   predicted;                /* predicted effect (hit rate, cost...) */
    uint64_t grade;                    /* 0 ungraded, 1 confirmed, 2 refuted (tuner) */
} hak_shm_decision_t;

/* Kernel-side figures published by hakmem-probe (eBPF loader). */
typedef struct hak_shm_kernel {
    uint64_t gen;
    uint64_t updated_ns;               /* 0 = nobody publishes */
    uint64_t munmap_calls, munmap_bytes, munmap_ns_total;
    uint64_t munmap_outside_flush;     /* munmaps of the process outside flush windows */
    uint64_t madvise_calls, madvise_ns_total;
    uint64_t pad_[8];
} hak_shm_kernel_t;

typedef struct hak_shm {
    /* header: never moves */
    uint64_t magic;                    /* HAK_SHM_MAGIC */
    uint32_t version;                  /* HAK_SHM_VERSION */
    uint32_t size;                     /* sizeof(hak_shm_t) of the writer */
    uint32_t pid;
    uint32_t uid;
    uint32_t mode;                     /* enum hak_mode */
    uint32_t nclasses;                 /* size classes in use (<= HAK_SHM_CLASSES) */
    uint32_t ncounters;                /* HAK_NCOUNTERS of the writer */
    uint32_t ngauges;                  /* HAK_NGAUGES of the writer */
    uint64_t start_ns;                 /* CLOCK_REALTIME ns at creation */
    uint64_t last_op_ns;               /* reserved (0): activity is read from counter deltas */
    char     comm[HAK_SHM_COMM_LEN];   /* NUL-terminated command name */
    uint64_t fold_gen;                 /* seqlock around folding retired slots */
    uint64_t peak_bytes_mapped;        /* high-water mark of bytes_mapped */
    uint64_t tune_signal;              /* bumped by the core when the tuner should look now (a run of
                                          ghost misses); the core also FUTEX_WAKEs control.seq */
    uint64_t slots_used;               /* slots[0 .. slots_used) are all a thread ever claimed (a
                                          high-water mark, raised before a claim); readers look at no
                                          others, so the rest are never paged in.  0 = all (a writer
                                          that does not keep it); > HAK_SHM_SLOTS = corrupt */
    uint64_t pad0_[4];

    hak_shm_knobs_t   knobs;
    hak_shm_control_t control;
    hak_shm_kernel_t  kernel;

    /* decision log ring: entry (n-1) % HAK_SHM_DECISIONS holds decision n */
    uint64_t decision_head;            /* number of decisions ever written */
    uint64_t pad1_[7];
    hak_shm_decision_t decisions[HAK_SHM_DECISIONS];

    hak_shm_class_t classes[HAK_SHM_CLASSES];
    hak_shm_slot_t  slots[HAK_SHM_SLOTS];
} hak_shm_t;

/* Layout guards: a change here is a new HAK_SHM_VERSION.  (C only: hakmem.h
 * includes this header and may be used from C++, which spells it static_assert.) */
#ifndef __cplusplus
_Static_assert(offsetof(hak_shm_t, magic) == 0, "magic first");
_Static_assert(offsetof(hak_shm_t, version) == 8, "version at 8");
_Static_assert(offsetof(hak_shm_t, size) == 12, "size at 12");
_Static_assert(sizeof(hak_shm_slot_t) % 64 == 0, "slots are cache-line sized");
_Static_assert(sizeof(hak_shm_class_t) % 64 == 0, "classes are cache-line sized");
_Static_assert(sizeof(hak_shm_class_t) == 192, "class record size (fields only appended into its padding)");
_Static_assert(sizeof(hak_shm_control_t) == 128, "control block size");
_Static_assert(sizeof(hak_shm_decision_t) == 64, "decision entry is 64 bytes");
_Static_assert((HAK_SHM_DECISIONS & (HAK_SHM_DECISIONS - 1)) == 0, "ring size power of two");
_Static_assert(offsetof(hak_shm_t, slots) % 64 == 0, "slots aligned");
#endif

/* ---- reader side (implemented in src/shm_read.c, linked into the tools) ---- */

/* A consistent copy of one segment. */
typedef struct hak_snapshot {
    uint32_t pid, uid, mode, nclasses;
    uint64_t start_ns, last_op_ns, peak_bytes_mapped;
    char     comm[HAK_SHM_COMM_LEN];
    uint64_t counter[HAK_NCOUNTERS];
    int64_t  gauge[HAK_NGAUGES];
    hak_shm_knobs_t   knobs;
    hak_shm_control_t control;
    hak_shm_kernel_t  kernel;
    hak_shm_class_t   classes[HAK_SHM_CLASSES];
    uint64_t decision_head;
    uint64_t taken_ns;                 /* CLOCK_MONOTONIC ns when taken */
} hak_snapshot_t;

/* Errors returned (negated) by the reader functions. */
enum hak_shm_err {
    HAK_SHM_OK = 0,
    HAK_SHM_ENOENT = 1,     /* no segment for that pid */
    HAK_SHM_EACCES = 2,     /* permission denied, or owned by another uid */
    HAK_SHM_EMAGIC = 3,     /* not a hakmem segment */
    HAK_SHM_EVERSION = 4,   /* hakmem segment of another layout version */
    HAK_SHM_ESHORT = 5,     /* truncated segment */
    HAK_SHM_ECORRUPT = 6,   /* inconsistent contents */
    HAK_SHM_EBUSY = 7,      /* writer kept it busy; no consistent snapshot */
    HAK_SHM_EIO = 8,        /* other system error (errno kept) */
    HAK_SHM_ESRCH = 9,      /* no such process */
};

typedef struct hak_shm_handle {
    int          fd;
    hak_shm_t   *shm;        /* read-write mapping (control block writes) */
    size_t       map_size;
    int          pid;
} hak_shm_handle_t;

/* Open the segment of pid (read-write if allowed, else read-only).
 * Returns 0 or -enum hak_shm_err; validates magic, version, size, owner. */
int  hak_shm_open_pid(int pid, hak_shm_handle_t *h);
/* Open a segment file by path (tests, fuzzing). Same checks. */
int  hak_shm_open_path(const char *path, hak_shm_handle_t *h);
/* Validate an in-memory segment image of len bytes. Returns 0 or -err. */
int  hak_shm_validate(const void *buf, size_t len);
void hak_shm_close(hak_shm_handle_t *h);
/* Take a consistent snapshot; never blocks the writer. 0 or -err. */
int  hak_shm_snapshot(const hak_shm_t *shm, hak_snapshot_t *out);
/* Post a control request (flags = HAK_CTL_*); returns the request's seq.
 * Wait for shm->control.applied_seq >= seq to know it was applied. */
uint64_t hak_shm_control_post(hak_shm_t *shm, uint64_t flags, uint64_t ring_cap, uint64_t batch_threshold);
/* Post a per-class request: flags HAK_CTL_CLASS_CAP and/or HAK_CTL_CLASS_THP
 * for size class cls.  Concurrent posters are serialised and a pending
 * request is merged, never lost (see shm_read.c). */
uint64_t hak_shm_control_post_class(hak_shm_t *shm, uint64_t flags, uint64_t cls, uint64_t class_cap,
                                    uint64_t class_thp);
const char *hak_shm_strerror(int err);
extern const char *const hak_counter_names[HAK_NCOUNTERS];
extern const char *const hak_counter_help[HAK_NCOUNTERS];
extern const char *const hak_gauge_names[HAK_NGAUGES];
extern const char *const hak_gauge_help[HAK_NGAUGES];
const char *hak_mode_name(uint32_t mode);

#endif /* HAKMEM_SHM_H */
