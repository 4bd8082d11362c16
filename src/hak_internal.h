/*
 * hak_internal.h - the cross-file prototypes of libhakmem, grouped by the
 * file that defines them.  Nothing here is exported.  The mechanisms live in
 * headers by concern, included below:
 *   hak_base.h     visibility, branch hints, page sizes, align/clamp helpers
 *   hak_lock.h     the rings' spinlock
 *   hak_types.h    block metadata, the front cache, the thread's state
 *   hak_sizeclass.h  size -> class (pure, inline)
 *   hak_radix.h    the registry's radix table and its lock-free lookups
 *   hak_bracket.h  the operation bracket and the counters inside it
 *   hak_libc.h     glibc's own allocator (small sizes), sanitizer builds
 *   hak_probe.h    USDT probes
 *
 * The pipeline of a large block, file by file:
 *   alloc.c    malloc(n >= large_min) -> hak_sizeclass.h -> bigcache.c pop: hit? reuse
 *                                     miss? -> os.c map (THP-aware) -> registry.c insert
 *   free.c     free(p) -> registry.c lookup ("ours"?) -> bigcache.c put: room? keep warm
 *                                     full / cap lowered / budget / trim -> batch.c add
 *   batch.c    pending >= batch_threshold -> flush: sort, coalesce, os.c unmap per range
 * Only batch.c asks os.c to unmap a block.
 */
#ifndef HAK_INTERNAL_H
#define HAK_INTERNAL_H

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hakmem.h"
#include "hakmem/shm.h"

#include "hak_base.h"
#include "hak_bracket.h"
#include "hak_libc.h"
#include "hak_lock.h"
#include "hak_probe.h"
#include "hak_radix.h"
#include "hak_types.h"




// ---------------------------------------------------------------------------
// options.c: the HAKMEM_* table, read once at init
// ---------------------------------------------------------------------------
enum hak_thp_mode { HAK_THP_AUTO = 0, HAK_THP_ALWAYS = 1, HAK_THP_NEVER = 2 };

typedef struct hak_options {
    uint64_t mode;              /* enum hak_mode */
    uint64_t ring_cap;          /* initial BIGCACHE_RING_CAP */
    uint64_t batch_threshold;   /* initial BATCH_THRESHOLD */
    uint64_t cache_max_bytes;
    uint64_t large_min;
    uint64_t thp;               /* enum hak_thp_mode as configured */
    uint64_t thp_fault_cost;    /* auto: huge pages only while their faults cost no more than 4 KiB ones (thp.c) */
    uint64_t stats;             /* telemetry segment on/off */
    uint64_t verbose;
    uint64_t tune_interval_ms;
    uint64_t idle_ms;
    uint64_t background_thread; /* fixed mode: thread for control requests (off by default) */
    uint64_t warm_reuse;        /* misses try warm memory before mapping fresh (alloc.c) */
    uint64_t peak_bound;        /* what hakmem holds bounded by the requested bytes' high-water mark (footprint.c) */
    uint64_t arena;             /* carve blocks from reserved address space (arena.c) */
    uint64_t tcache_max_bytes;  /* per-thread front cache bound (tcache.c) */
    char     history[256];      /* HAKMEM_HISTORY path, "" = none */
    uint64_t show_stats;        /* HAKMEM_SHOW_STATS: summary on stderr at exit (showstats.c) */
    char     stats_file[256];   /* HAKMEM_STATS_FILE: JSON at exit, "%p" = pid, "" = none */
    uint64_t given;             /* bit i: option i of the table was set in the environment */
} hak_options_t;

typedef struct hak_option_def {
    const char *name;           /* env var */
    int         kind;           /* HAK_OPT_SIZE, HAK_OPT_UINT, HAK_OPT_BOOL, HAK_OPT_ENUM, HAK_OPT_STR */
    uint64_t    def, min, max;
    const char *const *choices; /* HAK_OPT_ENUM: NULL-terminated names, value = index */
    const char *help;
    size_t      offset;         /* offsetof(hak_options_t, field); HAK_OPT_STR: a char[max] */
} hak_option_def_t;
enum { HAK_OPT_SIZE, HAK_OPT_UINT, HAK_OPT_BOOL, HAK_OPT_ENUM, HAK_OPT_STR };

extern hak_options_t hak_opt HAK_HIDDEN;
/* Whether the environment set option name (not just its default). */
HAK_HIDDEN bool hak_option_given(const char *name);
/* Fill hak_opt from the environment (getter may be NULL = secure_getenv).  Bad values
 * warn and keep the default; out-of-range values warn and are clamped. */
HAK_HIDDEN void hak_options_load(const char *(*getter)(const char *));
/* Parse a size "123", "64K", "4M", "1G" (case-insensitive, optional B/iB).
 * Returns 0 or -EINVAL / -ERANGE. */
HAK_HIDDEN int  hak_parse_size(const char *s, uint64_t *out);
HAK_HIDDEN void hak_options_print(void);
HAK_HIDDEN const hak_option_def_t *hak_option_table(size_t *n);

// ---------------------------------------------------------------------------
// log.c: malloc-free messages on stderr
// ---------------------------------------------------------------------------
HAK_HIDDEN void hak_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
HAK_HIDDEN void hak_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Report a fatal misuse (invalid free...) and abort(), like glibc. */
HAK_HIDDEN void hak_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

// ---------------------------------------------------------------------------
// hak_sizeclass.h: size -> class (pure, inline)
// ---------------------------------------------------------------------------
#include "hak_sizeclass.h"

// ---------------------------------------------------------------------------
// arena.c: the address space reserved for blocks, and which of it is free
// ---------------------------------------------------------------------------
#define HAK_ARENA_SIZE      ((size_t)1 << 30)   /* one reservation */
#define HAK_ARENA_MAX       16u                 /* reservations at most; then the kernel places blocks */
#define HAK_ARENA_BLOCK_MAX ((size_t)64 << 20)  /* bigger mappings are placed by the kernel */
#define HAK_ARENA_DESC      ((size_t)16 << 10)  /* bytes of an arena's descriptor (its free ranges) */
/* A reservation [base, base+len) made by os.c becomes an arena, all free;
 * desc: HAK_ARENA_DESC bytes of zeroed memory for its bookkeeping, kept.
 * false: the table is full (the caller releases both). */
HAK_HIDDEN bool      hak_arena_add(uintptr_t base, size_t len, void *desc);
/* Take len free bytes at an align-aligned address (first fit), or 0. */
HAK_HIDDEN uintptr_t hak_arena_carve(size_t len, size_t align);
/* Take [s, e) if it is all free in one arena (Batch crosses such a gap with
 * its munmap); true for an empty range. */
HAK_HIDDEN bool      hak_arena_claim(uintptr_t s, uintptr_t e);
/* [s, e) is reserved again and free (inside one arena). */
HAK_HIDDEN void      hak_arena_give(uintptr_t s, uintptr_t e);
/* The parts of [s, e) inside arenas, at most max: their count. */
HAK_HIDDEN int       hak_arena_parts(uintptr_t s, uintptr_t e, uintptr_t *lo, uintptr_t *hi, int max);
HAK_HIDDEN uint32_t  hak_arena_count(void);
HAK_HIDDEN size_t    hak_arena_free_bytes(void);   /* tests */
HAK_HIDDEN void      hak_arena_lock(void);
HAK_HIDDEN void      hak_arena_unlock(void);
HAK_HIDDEN void      hak_arena_child_reset(void);

// ---------------------------------------------------------------------------
// os.c: the only file that calls mmap/munmap/mremap/madvise
// ---------------------------------------------------------------------------
/* Map a block of size bytes: a 2 MiB-multiple length (the kernel aligns it)
 * when THP is available and size >= 2 MiB, with MADV_HUGEPAGE when thp_choice
 * is HAK_OS_THP_HUGE (MADV_NOHUGEPAGE for SMALL under THP=always); or aligned
 * to align (power of two >= page) when align > page.  extra > 0 asks for that
 * much room past size instead of the 2 MiB geometry (a block that will never
 * get huge pages, room for its color).
 * Fills map_base and map_size; returns the user pointer or NULL (errno ENOMEM). */
enum { HAK_OS_THP_NONE = 0, HAK_OS_THP_HUGE = 1, HAK_OS_THP_SMALL = 2 };
HAK_HIDDEN void *hak_os_map_block(size_t size, size_t align, int thp_choice, size_t extra, uintptr_t *map_base,
                                  size_t *map_size);
/* Pages of [base, base+len) resident now (mincore into vec, len/4096 bytes), or -errno. */
HAK_HIDDEN long  hak_os_resident(uintptr_t base, size_t len, unsigned char *vec);
/* Move a mapping back to `to` (MREMAP_FIXED) after a failed realloc, once
 * its old place is claimed again (MAP_FIXED_NOREPLACE).  0, -EEXIST when
 * another mapping took the place meanwhile (nothing is replaced), or -errno. */
HAK_HIDDEN int   hak_os_remap_back(uintptr_t base, size_t len, size_t old_len, uintptr_t to, size_t split);
/* Move the mapping [base, base+len) onto [to, to+len), the head of another
 * mapping, whose pages there are dropped (mremap MREMAP_FIXED; not a munmap:
 * the rest of that mapping lives on, now a second VMA of one block).  0 or -errno. */
HAK_HIDDEN int   hak_os_move_onto(uintptr_t base, size_t len, uintptr_t to);
/* Release [base, base+len).  Only batch.c calls this for blocks.  The parts
 * inside an arena are reserved again (hak_os_vacated).  0 or -errno. */
HAK_HIDDEN int   hak_os_unmap(uintptr_t base, size_t len);
/* [base, base+len) holds nothing any more (a block moved away by mremap, or
 * released): its parts inside an arena are reserved again, unless another
 * mapping took them meanwhile (MAP_FIXED_NOREPLACE), and go back to the
 * arena's free ranges.  Nothing to do (and no syscall) outside the arenas. */
HAK_HIDDEN void  hak_os_vacated(uintptr_t base, size_t len);
/* Grow/move a mapping (MREMAP_MAYMOVE). New base or NULL (errno). */
/* split != 0: the mapping is two VMAs (see hak_block_t.split); both move together. */
HAK_HIDDEN void *hak_os_remap(uintptr_t base, size_t old_len, size_t new_len, size_t split);
/* Shrink the one-VMA mapping [base, base+old_len) in place to new_len bytes
 * (mremap: the tail's pages go, its place is an arena's again if it was one's;
 * counted as mremap_dropped_bytes).  0, or -errno with the mapping unchanged. */
HAK_HIDDEN int hak_os_shrink(uintptr_t base, size_t old_len, size_t new_len);
/* MADV_HUGEPAGE on a whole mapping that grew past 2 MiB (THP mode madvise). */
HAK_HIDDEN void  hak_os_advise_huge(uintptr_t base, size_t len);
/* MADV_NOHUGEPAGE on a whole mapping: its next faults take 4 KiB pages. */
HAK_HIDDEN void  hak_os_advise_small(uintptr_t base, size_t len);
/* Fault [base, base+len) in now (MADV_POPULATE_WRITE): the nanoseconds it took, or -errno
 * (-EINVAL on kernels before 5.14). */
HAK_HIDDEN int64_t hak_os_populate_ns(uintptr_t base, size_t len);
/* The cost of one 4 KiB page fault now, ns: a few pages of a private range of
 * the library's own faulted in, timed and given back.  Or -errno. */
HAK_HIDDEN int64_t hak_os_small_fault_ns(void);
/* The cost of one 2 MiB huge-page fault now, ns: a huge page of the library's
 * own, faulted in, timed and given back (the next fault takes it warm).  Or -errno. */
HAK_HIDDEN int64_t hak_os_huge_fault_ns(void);
/* Give the pages of [base, base+len) back (MADV_DONTNEED); the mapping stays.  0 or -errno.
 * Also for the library's own page-aligned zero-initialised arrays when what
 * they hold is stale (the trims): they read as zeroes again. */
HAK_HIDDEN int   hak_os_release(uintptr_t base, size_t len);
/* Anonymous zeroed memory for metadata (never released). NULL on failure. */
HAK_HIDDEN void *hak_os_meta_alloc(size_t len);
/* Release non-block memory (metadata/segment mappings). */
HAK_HIDDEN void  hak_os_meta_free(void *p, size_t len);
/* Effective THP mode after reading /sys: 0 never, 1 madvise-aligned, 2 always. */
HAK_HIDDEN int   hak_os_thp_effective(void);
HAK_HIDDEN void  hak_os_init(void);
/* Test hook: make the next n block mmaps/mremaps fail with ENOMEM. */
HAK_HIDDEN extern _Atomic int hak_os_fail_next;
HAK_HIDDEN uint64_t hak_now_ns(void);     /* CLOCK_MONOTONIC */
HAK_HIDDEN uint64_t hak_wall_ns(void);    /* CLOCK_REALTIME */

// ---------------------------------------------------------------------------
// thp.c: huge pages per size class, chosen from sampled touches
// ---------------------------------------------------------------------------
HAK_HIDDEN void hak_thp_init(void);
/* Give back the pages of the sampling vector (the trims). */
HAK_HIDDEN void hak_thp_trim(void);
/* THP choice for a fresh block of class c (HAK_OS_THP_*); may set HAK_BF_PROBE in *flags. */
HAK_HIDDEN int  hak_thp_choose(uint32_t c, uint32_t *flags);
/* A fresh huge-page block just mapped: its first 2 MiB is faulted in and
 * timed; if huge pages turn out not to pay, the rest of it gets 4 KiB pages
 * (HAKMEM_THP=auto with HAKMEM_THP_FAULT_COST; thp.c). */
HAK_HIDDEN void hak_thp_fresh(hak_block_t *b);
/* Whether huge pages pay now: their measured fault cost against 4 KiB pages'. */
HAK_HIDDEN bool hak_thp_huge_pays(void);
/* Add measured fault costs (ns; 0 = none): one 2 MiB huge-page fault, one 4 KiB fault. */
HAK_HIDDEN void hak_thp_note_fault_cost(uint64_t huge_ns, uint64_t small_ns);
/* Where the measurements come from: hak_os_huge_fault_ns and hak_os_small_fault_ns
 * (tests put theirs in). */
HAK_HIDDEN extern int64_t (*hak_thp_huge_fault_probe)(void);
HAK_HIDDEN extern int64_t (*hak_thp_small_fault_probe)(void);
/* While huge pages are refused: time them again at the first fresh block this
 * long after the last measurement (1 s; tests change it). */
HAK_HIDDEN extern uint64_t hak_thp_reprobe_ns;
/* Whether blocks of class c (growing into it by realloc) should get huge pages. */
HAK_HIDDEN bool hak_thp_class_wants_huge(uint32_t c);
/* False for a huge-page block of a class that chose 4 KiB pages (not to be cached). */
HAK_HIDDEN bool hak_thp_block_fits(const hak_block_t *b);
/* A probe block was just mapped: count the touched pages of the one before. */
HAK_HIDDEN void hak_thp_mapped(hak_block_t *b);
/* A probe block is being freed: count its touched pages (undecided classes
 * only); if its class has chosen huge pages since, it gets them from now on
 * for the pages it has yet to touch, and if the class chose 4 KiB pages it
 * keeps its own; either way it is no probe any more. */
HAK_HIDDEN void hak_thp_sample(hak_block_t *b);
static inline void hak_thp_on_free(hak_block_t *b) {
    if (unlikely(b->flags & HAK_BF_PROBE)) hak_thp_sample(b);
}

// ---------------------------------------------------------------------------
// registry.c: exact ownership (user pointer -> metadata), metadata records
// ---------------------------------------------------------------------------
HAK_HIDDEN hak_block_t *hak_block_new(void);
HAK_HIDDEN void         hak_block_delete(hak_block_t *b);
/* Publish b under b->user. Returns 0 or -ENOMEM (radix leaf could not be mapped). */
HAK_HIDDEN int          hak_registry_insert(hak_block_t *b);
/* Test hook: make the next n registry inserts fail with -ENOMEM. */
HAK_HIDDEN extern _Atomic int hak_registry_fail_next;
HAK_HIDDEN void         hak_registry_remove(hak_block_t *b);
/* Give back the radix leaf pages that hold no block (the trims). */
HAK_HIDDEN void         hak_registry_trim(void);
/* A block whose registry chunk holds p but whose user pointer is not p
 * (an interior pointer near a block start), or NULL.  For diagnostics. */
HAK_HIDDEN hak_block_t *hak_registry_near(const void *p);
HAK_HIDDEN void         hak_registry_lock(void);
HAK_HIDDEN void         hak_registry_unlock(void);
HAK_HIDDEN void         hak_registry_child_reset(void);

// ---------------------------------------------------------------------------
// bigcache.c: per-class rings of warm blocks
// ---------------------------------------------------------------------------
/* Pop a warm block of class c (state -> LIVE) or NULL on a miss. */
HAK_HIDDEN hak_block_t *hak_bigcache_pop(uint32_t c);
/* Keep b warm, or hand it (or older blocks) to Batch. b is LIVE on entry. */
HAK_HIDDEN void         hak_bigcache_put(hak_block_t *b);
/* Warm reuse on a miss of class c: the newest cached block of a bigger class
 * (up to HAK_NEAR_CLASSES above, one doubling), or of a smaller one (up to
 * HAK_NEAR_CLASSES below, for alloc.c to grow).  LIVE, or NULL. */
#define HAK_NEAR_CLASSES 4u
#define HAK_RESHAPE_MIN  ((size_t)512 << 10)   /* grow smaller blocks only for classes >= this */
HAK_HIDDEN hak_block_t *hak_bigcache_pop_near(uint32_t c);
/* For a realloc growing into class c with head bytes of its own: the newest
 * cached block of c, or else of a class up to HAK_NEAR_CLASSES bigger (lent,
 * as to a malloc), if its mapping holds len bytes and its second VMA, if
 * any, starts within the head that the grower's pages replace. LIVE, or NULL. */
HAK_HIDDEN hak_block_t *hak_bigcache_take_for_grow(uint32_t c, size_t len, size_t head);
HAK_HIDDEN hak_block_t *hak_bigcache_pop_smaller(uint32_t c);
/* Apply every ring's cap and the byte budget now (evictions to Batch). */
HAK_HIDDEN void         hak_bigcache_apply_cap(void);
/* Hand the oldest blocks of the biggest classes to Batch (reason budget)
 * until at least bytes went, or the rings are empty; returns the bytes. */
HAK_HIDDEN uint64_t     hak_bigcache_shed(uint64_t bytes);
/* Per-class cap (HAK_CLASS_CAP_GLOBAL = follow the global cap); *old gets the
 * previous setting (UINT32_MAX = global).  0, -EINVAL or -ERANGE (clamped). */
HAK_HIDDEN int          hak_bigcache_set_class_cap(uint32_t c, uint64_t cap, uint32_t *old);
HAK_HIDDEN void         hak_bigcache_publish_caps(void);
extern _Atomic int64_t hak_cached_bytes HAK_HIDDEN;    /* bytes in the rings (the budget's measure) */
/* Hand every cached block to Batch (reason idle/requested trim), and give
 * back the slot page of every ring that is empty then. */
HAK_HIDDEN void         hak_bigcache_trim(void);
/* Test hook: the first byte of class c's slot page. */
HAK_HIDDEN const void  *hak_bigcache_slot_page(uint32_t c);
HAK_HIDDEN void         hak_bigcache_init(void);
HAK_HIDDEN void         hak_bigcache_lock_all(void);
HAK_HIDDEN void         hak_bigcache_unlock_all(void);
HAK_HIDDEN void         hak_bigcache_child_reset(void);

// ---------------------------------------------------------------------------
// batch.c: pending releases, coalesced munmap
// ---------------------------------------------------------------------------
/* Take b (LIVE or CACHED, already out of any ring) for release; reason is an
 * enum hak_evict_reason.  May flush. */
HAK_HIDDEN void hak_batch_add(hak_block_t *b, int reason);
/* Flush pending blocks now (force) or only when over the threshold. */
HAK_HIDDEN void hak_batch_flush(bool force);
/* With nothing pending: give back the pages of the pending list and of the
 * flush's scratch arrays (the trims; an idle process keeps none of them). */
HAK_HIDDEN void hak_batch_trim(void);
/* Test hook: the pending list and its size in bytes. */
HAK_HIDDEN const void  *hak_batch_pending_array(size_t *len);
HAK_HIDDEN void hak_batch_lock(void);
HAK_HIDDEN void hak_batch_unlock(void);
HAK_HIDDEN void hak_batch_child_reset(void);
/* Take back a pending block of class lo..hi (lowest first) before its munmap:
 * LIVE, or NULL. */
HAK_HIDDEN hak_block_t *hak_batch_rescue(uint32_t lo, uint32_t hi);
/* Sort blocks by map_base and count the coalesced ranges (pure; tests). */
HAK_HIDDEN size_t hak_batch_coalesce(hak_block_t **v, size_t n, uintptr_t *starts, size_t *lens);

// ---------------------------------------------------------------------------
// footprint.c: the peak bound on the warm memory hakmem holds
// ---------------------------------------------------------------------------
/* Bytes by which what hakmem holds beyond the program's requests (cached and
 * pending blocks, the unrequested rest of live blocks) exceeds the peak bound
 * if a block of size bytes served a request of req bytes now; 0 within it.
 * Raises the requested bytes' high-water mark to what that would make. */
HAK_HIDDEN uint64_t hak_footprint_over(size_t req, size_t size);
/* Before a fresh block of size bytes is mapped for req: give back cached and
 * pending blocks until the bound holds again. */
HAK_HIDDEN void     hak_footprint_fit(size_t req, size_t size);
/* Test hook: forget the high-water mark. */
HAK_HIDDEN void     hak_footprint_reset(void);

// ---------------------------------------------------------------------------
// knobs.c: run-time knob values, bounds, control block
// ---------------------------------------------------------------------------
extern _Atomic uint64_t hak_ring_cap HAK_HIDDEN;
extern _Atomic uint64_t hak_batch_threshold HAK_HIDDEN;
extern _Atomic uint64_t hak_cache_max_bytes HAK_HIDDEN;
#define HAK_BATCH_THRESHOLD_MIN ((uint64_t)64 << 10)
#define HAK_BATCH_THRESHOLD_MAX ((uint64_t)1 << 30)
HAK_HIDDEN void hak_knobs_init(void);
/* Apply a pending control-block request, if any: inline compare when none. */
extern _Atomic uint64_t hak_ctl_applied_seq HAK_HIDDEN;
HAK_HIDDEN void hak_control_poll_slow(void);
HAK_HIDDEN void hak_knobs_publish(void);
HAK_HIDDEN void hak_knobs_lock(void);
HAK_HIDDEN void hak_knobs_unlock(void);
HAK_HIDDEN void hak_knobs_child_reset(void);
/* malloc_trim's share: hak_trim when hakmem holds cached or pending bytes; 1 if it did. */
HAK_HIDDEN int  hak_trim_held(void);

// ---------------------------------------------------------------------------
// stats.c: per-thread counter slots in the segment
// ---------------------------------------------------------------------------
HAK_HIDDEN void hak_stats_init(void);
HAK_HIDDEN void hak_stats_child_fold(void);
/* The segment moved from old to s (a forked child's copy): rebase this thread's slot. */
HAK_HIDDEN void hak_stats_rebase(const hak_shm_t *old, hak_shm_t *s);
HAK_HIDDEN void hak_stats_fold_lock(void);
HAK_HIDDEN void hak_stats_fold_unlock(void);
/* Sum the slots into counters/gauges (in-process reader). */
HAK_HIDDEN void hak_stats_sum(uint64_t *counter, int64_t *gauge);
HAK_HIDDEN void hak_stats_note_mapped(void);
/* Every gauge now (HAK_NGAUGES values, by HAK_G_*), summed over the slots in one pass. */
HAK_HIDDEN void hak_stats_gauges_now(int64_t *gauge);
/* Tell the tuner (whoever watches this segment) to look now: bumps
 * tune_signal and wakes a thread sleeping on the control block. */
HAK_HIDDEN void hak_stats_signal_tuner(void);
/* fork: stop new operations and wait until no thread is inside one. */
HAK_HIDDEN void hak_stats_quiesce_begin(void);
HAK_HIDDEN void hak_stats_quiesce_end(void);
HAK_HIDDEN void hak_stats_quiesce_end_child(void);


static inline void hak_control_poll(void) {
    uint64_t seq = atomic_load_explicit((_Atomic uint64_t *)&hak_seg->control.seq, memory_order_relaxed);
    if (unlikely(seq != atomic_load_explicit(&hak_ctl_applied_seq, memory_order_relaxed))) hak_control_poll_slow();
}

// ---------------------------------------------------------------------------
// tcache.c: the per-thread front cache
// ---------------------------------------------------------------------------
extern uint64_t hak_tcache_max_bytes HAK_HIDDEN;   /* HAKMEM_TCACHE_MAX_BYTES; 0 = none */
/* Effective cap of class c (per-class, else the global one). */
extern _Atomic uint32_t hak_class_cap1[HAK_NCLASSES] HAK_HIDDEN;   /* cap + 1, 0 = global */
static inline uint32_t hak_bigcache_cap(uint32_t c) {
    uint32_t cc = atomic_load_explicit(&hak_class_cap1[c], memory_order_relaxed);
    return cc != 0 ? cc - 1 : (uint32_t)atomic_load_explicit(&hak_ring_cap, memory_order_relaxed);
}
HAK_HIDDEN void hak_tcache_register(uint32_t slot_index);
HAK_HIDDEN void hak_tcache_unregister(uint32_t slot_index);
/* This thread's blocks to the rings (thread exit). */
HAK_HIDDEN void hak_tcache_drain(void);
/* Every thread's blocks to the rings, sleeping threads' too (trim, caps). */
HAK_HIDDEN void hak_tcache_drain_all(void);
HAK_HIDDEN void hak_tcache_child_adopt(void);
HAK_HIDDEN hak_block_t *hak_tcache_evict_oldest(hak_tcache_t *tc);
/* A front cache's fields are read by a trimming thread while their owner is
 * held at an operation boundary (tcache.c); relaxed atomics (plain moves on
 * x86) say so to the compiler and to TSan, which cannot see the membarrier
 * that orders the two. */
#define HAK_TC_LD(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define HAK_TC_ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
/* Take the newest block whose class is in [lo, hi] out of this thread's
 * front cache (inside an op bracket), or NULL. */
static inline hak_block_t *hak_tcache_take(uint32_t lo, uint32_t hi) {
    hak_tcache_t *tc = &hak_tls.tc;
    uint32_t n = HAK_TC_LD(tc->n);
    for (uint32_t i = n; i-- > 0;) {
        hak_block_t *b = HAK_TC_LD(tc->v[i]);
        if (b->cls - lo > hi - lo) continue;   /* unsigned: one compare for the range */
        for (uint32_t k = i + 1; k < n; k++) HAK_TC_ST(tc->v[k - 1], HAK_TC_LD(tc->v[k]));
        HAK_TC_ST(tc->n, n - 1);
        HAK_TC_ST(tc->bytes, HAK_TC_LD(tc->bytes) - b->size);
        atomic_store_explicit(&b->state, HAK_BLOCK_LIVE, memory_order_relaxed);
        HAK_GAUGE_DOWN(bytes_cached, b->size);
        HAK_GAUGE_DOWN(blocks_cached, 1);
        HAK_GAUGE_DOWN(blocks_tcached, 1);
        return b;
    }
    return NULL;
}
/* The block this thread freed last among those that fit class c: of the class
 * itself (a hit) or of a bigger class, one doubling at most (a miss served
 * warm, counted as warm_near).  The most recently used memory is the cheapest
 * to touch again (its pages and page-table entries are still hot), so recency
 * wins over an exact fit here.  Inside an op bracket; NULL if none. */
static inline hak_block_t *hak_tcache_pop(uint32_t c) {
    hak_block_t *b = hak_tcache_take(c, c + HAK_NEAR_CLASSES);
    if (b == NULL) return NULL;
    if (b->cls == c) {
        HAK_CNT(cache_hits);
        HAK_CNT(tcache_hits);
    } else {
        HAK_CNT(cache_misses);
        HAK_CNT(warm_near);
    }
    return b;
}
/* Keep freed block b (CACHED, class-shaped) in the front cache; returns the
 * block that must go on to its ring instead (b itself, or the oldest one
 * pushed out), or NULL. Inside an op bracket. */
static inline hak_block_t *hak_tcache_put(hak_block_t *b) {
    hak_tcache_t *tc = &hak_tls.tc;
    if (unlikely(!hak_tls.tc_ok) || b->size > hak_tcache_max_bytes || hak_bigcache_cap(b->cls) == 0) return b;
    hak_block_t *out = NULL;
    while (HAK_TC_LD(tc->n) > 0 &&
           (HAK_TC_LD(tc->n) == HAK_TC_SLOTS || HAK_TC_LD(tc->bytes) + b->size > hak_tcache_max_bytes)) {
        if (out != NULL) hak_bigcache_put(out);
        out = hak_tcache_evict_oldest(tc);
    }
    uint32_t n = HAK_TC_LD(tc->n);
    HAK_TC_ST(tc->v[n], b);
    HAK_TC_ST(tc->n, n + 1);
    HAK_TC_ST(tc->bytes, HAK_TC_LD(tc->bytes) + b->size);
    HAK_CNT(tcache_puts);
    HAK_GAUGE_UP(bytes_cached, b->size);
    HAK_GAUGE_UP(blocks_cached, 1);
    HAK_GAUGE_UP(blocks_tcached, 1);
    return out;
}

// ---------------------------------------------------------------------------
// shm.c: the telemetry segment of this process
// ---------------------------------------------------------------------------
/* Create /hakmem.<pid> (or a private fallback); never fails the allocator. */
HAK_HIDDEN void hak_shm_create(void);
HAK_HIDDEN void hak_shm_remove(void);
HAK_HIDDEN void hak_shm_child_recreate(void);
/* fork: copy the (quiescent) segment before fork; the parent drops the copy. */
HAK_HIDDEN void hak_shm_fork_prepare(void);
HAK_HIDDEN void hak_shm_fork_parent(void);
/* A forked child publishes its segment lazily (see shm.c). */
extern _Atomic bool hak_shm_publish_pending HAK_HIDDEN;
HAK_HIDDEN void hak_shm_publish_child(void);
/* Test hook: nonzero makes fork's segment copies fail as under ENOMEM. */
extern int hak_shm_child_alloc_hook HAK_HIDDEN;
static inline void hak_shm_publish_check(void) {
    if (unlikely(atomic_load_explicit(&hak_shm_publish_pending, memory_order_relaxed)) &&
        atomic_exchange(&hak_shm_publish_pending, false))
        hak_shm_publish_child();
}
/* True when the segment is published under /dev/shm (others can read and steer it). */
HAK_HIDDEN bool hak_shm_is_shared(void);
/* Remove /dev/shm/hakmem.<pid> files of our uid whose process is gone. */
HAK_HIDDEN void hak_shm_gc_stale(void);

// ---------------------------------------------------------------------------
// init.c: lazy init, constructor/destructor, fork handlers
// ---------------------------------------------------------------------------
extern _Atomic int hak_ready HAK_HIDDEN;      /* 2 once initialised */
HAK_HIDDEN void hak_init_slow(void);
HAK_HIDDEN const char *hak_mode_str(uint64_t mode);
static inline bool hak_init(void) {
    if (likely(atomic_load_explicit(&hak_ready, memory_order_acquire) == 2)) return true;
    hak_init_slow();
    return atomic_load_explicit(&hak_ready, memory_order_acquire) == 2;
}
/* True when hakmem handles large blocks (initialised and mode != off). */
HAK_HIDDEN bool hak_active(void);

// ---------------------------------------------------------------------------
// tuner/inproc.c: the tuner layer's in-process host (the background thread)
// ---------------------------------------------------------------------------
/* The core never calls the tuner: a signal it needs travels through the
 * segment (hak_stats_signal_tuner bumps tune_signal, inproc.c watches it). */
HAK_HIDDEN void hak_evolve_start_slow(void);
HAK_HIDDEN void hak_evolve_stop(void);
HAK_HIDDEN void hak_evolve_child_reset(void);
/* Test hook: the in-process tuner's snapshot buffer i (0 or 1) and its size. */
HAK_HIDDEN const void *hak_evolve_snapshot(int i, size_t *len);


// ---------------------------------------------------------------------------
// alloc.c / free.c / realloc.c
// ---------------------------------------------------------------------------
/* Called once, after the first large allocation, when set (init.c wires the
 * background thread's start here: the core does not know who listens). */
extern void (*_Atomic hak_first_large_hook)(void) HAK_HIDDEN;
/* Requests of at least this many bytes are hakmem's: 0 before init (every call
 * takes the init path), large_min once ready, SIZE_MAX in mode=off. */
extern size_t hak_large_threshold HAK_HIDDEN;
/* Allocate a large block of n bytes (n >= large_min), aligned to align when
 * align > page; zeroed when zero (memset skipped on fresh mappings).
 * NULL + ENOMEM on failure. */
HAK_HIDDEN void *hak_large_alloc(size_t n, size_t align, bool zero);
/* Out of memory (a map failed) while hakmem holds freed blocks: outside any
 * operation, every cached and pending block goes back to the kernel, and
 * true says the caller may try once more (false: nothing was held, or the
 * caller is inside an operation).  hak_large_alloc and realloc's growth do. */
HAK_HIDDEN bool hak_oom_release(void);
/* free(p) where p's registry chunk holds b (non-NULL): p itself, an interior
 * pointer (aborts), or a glibc block that shares the chunk. */
HAK_HIDDEN void  hak_free_chunk(void *p, hak_block_t *b);
/* Free a block found in the registry (aborts on a double free). */
HAK_HIDDEN void  hak_large_free(hak_block_t *b);
/* realloc of a block found in the registry. */
HAK_HIDDEN void *hak_large_realloc(hak_block_t *b, size_t n);
/* Grow block b (LIVE, class-shaped) to class c in place or by mremap. 0 or -ENOMEM. */
HAK_HIDDEN int   hak_block_grow(hak_block_t *b, uint32_t c);
/* Report an invalid pointer passed to fn and abort. */
HAK_HIDDEN void  hak_invalid_pointer(const char *fn, const void *p, hak_block_t *near) __attribute__((noreturn));

// ---------------------------------------------------------------------------
// showstats.c: the counters for people (hak_stats_print, statistics at exit)
// ---------------------------------------------------------------------------
/* Format snapshot s of process pid, taken at CLOCK_REALTIME now_ns, as the
 * summary (flags 0) or JSON (HAK_STATS_PRINT_JSON), through write(arg, text). */
HAK_HIDDEN void hak_showstats_format(const hak_snapshot_t *s, int pid, uint64_t now_ns, unsigned flags,
                                     void (*write)(void *arg, const char *text), void *arg);
/* pattern with "%p" = pid and "%%" = "%" into out[len]. 0 or -ENAMETOOLONG. */
HAK_HIDDEN int  hak_showstats_path(const char *pattern, int pid, char *out, size_t len);
/* From the destructor: HAKMEM_SHOW_STATS on stderr, HAKMEM_STATS_FILE as JSON. */
HAK_HIDDEN void hak_showstats_at_exit(void);

#endif /* HAK_INTERNAL_H */
