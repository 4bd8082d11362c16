/*
 * thp.c - transparent huge pages per size class, chosen by what the program
 * touches (DESIGN.md item 13).
 *
 * A 2 MiB-aligned block with MADV_HUGEPAGE costs one fault per 2 MiB instead
 * of 512, but the first touch of each 2 MiB extent makes all of it resident.
 * That wins when the program writes most of its blocks and loses memory (4x
 * glibc's RSS, measured) when it writes 16-512 KiB of a 4 MiB buffer.  So:
 *
 *   HAKMEM_THP=auto   classes of 2 MiB and more start UNDECIDED: their first
 *                     blocks are probes, mapped with 4 KiB pages.  Each time
 *                     the class maps a block, mincore counts the pages the
 *                     program touched in the probe mapped before it (programs
 *                     write a buffer right after malloc), and a probe freed
 *                     while the class is undecided is counted too.  After
 *                     SAMPLES_TO_DECIDE samples (the 5th block of the class,
 *                     usually) the class becomes HUGE (the program touched at
 *                     least half of them) or SMALL.  So a class pays 4 KiB
 *                     faults for a handful of blocks, and a program that fills
 *                     a small part of big buffers never gets a huge page of
 *                     them, even in the first round (peak RSS).
 *                     Classes also learn from each other: every sample goes
 *                     into a pool as well, and once the pool holds
 *                     POOL_SAMPLES samples that say the program touches
 *                     nearly all of what it allocates (>= POOL_HUGE_PERMILLE),
 *                     an undecided class whose own samples do not disagree
 *                     becomes HUGE at its next map.  A program with many
 *                     classes maps few blocks of each (most come back warm),
 *                     so alone each would probe for ever: measured, 5-25 MiB
 *                     blocks written whole took 830 faults per block with
 *                     every class still probing, against 2.6 with huge pages.
 *                     No pool verdict makes a class SMALL (an undecided class
 *                     maps 4 KiB pages anyway, and goes on sampling).  The
 *                     state and the figures are published per class in the
 *                     segment (a class decided by the pool shows the pool's),
 *                     where the tuner logs the choice as a decision (and may
 *                     override it with hak_set_class_thp).
 *   HAKMEM_THP=always every class of 2 MiB and more is HUGE.
 *   HAKMEM_THP=never  (or THP disabled in the kernel) none is.
 *
 * What a huge page costs is weighed too (HAKMEM_THP_FAULT_COST, on by default
 * under auto).  A huge-page fault zeroes 2 MiB at once; where the kernel has
 * free 2 MiB blocks at hand that takes ~0.3 ms here, less than the ~0.7 ms of
 * 512 faults of 4 KiB pages.  But a guest that reports its free memory to the
 * host (free-page reporting: microVMs, serverless hosts; this VM) hands its
 * free 2 MiB blocks back within seconds, and then every huge-page fault waits
 * for the host: 4.9-5.8 ms measured, 7x the small faults, which come from
 * lower-order free lists the guest never reports.  So every fresh huge-page
 * block has its first 2 MiB faulted in at once by the library
 * (MADV_POPULATE_WRITE: the program was about to, it touches most of such
 * blocks), timed; every SMALL_EVERY-th time a few 4 KiB faults of a range of
 * the library's own are timed too.  When that fault makes the recent average
 * (the last few weigh most) cost more than HAK_THP_FAULT_SLACK_PCT of 512 small
 * faults, the block keeps that one huge page and gets 4 KiB pages for the rest
 * (MADV_NOHUGEPAGE), and fresh blocks of HUGE classes get 4 KiB pages from
 * then on (both counted: thp_small_by_cost).  Every REPROBE_EVERY-th of those,
 * and the first after REPROBE_NS without a measurement, times a huge page of
 * the library's own (faulted in, timed, given back: the next fault takes it
 * warm), so huge pages come back once they are cheap again.  One measured
 * page can be a warm one among cold (the guest keeps a few free 2 MiB blocks
 * unreported), so a cheap one only halves the average: it takes three to come
 * back.  The figures are published in the segment
 * (knobs) and shown at exit.
 *
 * Every block of 2 MiB and more is mapped with a 2 MiB-multiple length (the
 * kernel places it 2 MiB-aligned) whatever its class chose, so realloc can
 * move its huge pages whole and a later HUGE choice still applies.  A freed
 * huge block of a class that chose SMALL is not cached (bigcache.c): it goes
 * to Batch, so the memory its huge pages held comes back.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "hak_internal.h"

#define SAMPLES_TO_DECIDE  4u
#define HUGE_PERMILLE      500u    /* touched at least half: huge pages pay */
#define SAMPLE_MAX_PAGES   (64u << 10)     /* mincore vector: the first 256 MiB of a block */
#define POOL_SAMPLES       SAMPLES_TO_DECIDE   /* samples of all classes before the pool decides one */
#define POOL_HUGE_PERMILLE 750u    /* ... and how clearly they must say "touched" */

static _Atomic uint32_t state[HAK_NCLASSES];      /* enum hak_class_thp */
static _Atomic uint32_t maps[HAK_NCLASSES];       /* blocks mapped while undecided */
static uint32_t samples[HAK_NCLASSES];            /* guarded by sample_lock */
static uint64_t permille_sum[HAK_NCLASSES];
static hak_lock_t sample_lock;
static hak_block_t *last_probe[HAK_NCLASSES];    /* guarded by sample_lock */
static hak_block_t *last_any;                     /* guarded by sample_lock: the last probe of any class */
static uint32_t last_any_cls;                     /* ... and its class then */
static unsigned char vec[SAMPLE_MAX_PAGES] HAK_PAGE_ALIGNED;       /* guarded by sample_lock */
static bool vec_dirty;                     /* written since hak_thp_trim gave it back; sample_lock */
static bool by_pool[HAK_NCLASSES];                /* guarded by sample_lock: decided by the pool */
static uint32_t pool_samples;                     /* guarded by sample_lock: every class's samples */
static uint64_t pool_permille_sum;
static _Atomic bool pool_huge;                    /* the pool says: huge pages pay */

/* Fault cost (see the top). */
#define REPROBE_EVERY      32u     /* while they do not pay: time them again at every this many fresh blocks */
#define REPROBE_NS         1000000000ull   /* ... and at the first fresh block after a second without a measurement */
#define SMALL_EVERY        8u      /* time the 4 KiB faults again at every this many huge ones */
#define SMALL_FAULT_NS_DEF 1500u   /* one 4 KiB fault until one is measured (1.35 us measured here) */
int64_t (*hak_thp_huge_fault_probe)(void) = hak_os_huge_fault_ns;
int64_t (*hak_thp_small_fault_probe)(void) = hak_os_small_fault_ns;
static _Atomic uint64_t huge_fault_ns;            /* average cost of a 2 MiB huge-page fault, 0 = none yet */
static _Atomic uint64_t small_fault_ns;           /* average cost of one 4 KiB fault, 0 = none yet */
static _Atomic uint32_t huge_timed;               /* huge faults timed */
static _Atomic uint64_t measured_at;              /* hak_now_ns of the last one */
uint64_t hak_thp_reprobe_ns = REPROBE_NS;
static _Atomic uint32_t gated;                    /* fresh HUGE-class blocks while huge pages did not pay */
static _Atomic bool cost_off;                     /* not asked for, or MADV_POPULATE_WRITE refused (kernel < 5.14) */
static hak_lock_t measure_lock;                   /* one measurement at a time (the probe ranges are shared) */

static void publish_cost(void);

static void publish(uint32_t c) {
    uint64_t n = by_pool[c] ? pool_samples : samples[c];
    uint64_t pm = n ? (by_pool[c] ? pool_permille_sum : permille_sum[c]) / n : 0;
    uint64_t v = (uint64_t)atomic_load_explicit(&state[c], memory_order_relaxed) | (n > 255 ? 255 : n) << 8 |
                 (pm > 0xffff ? 0xffff : pm) << 16;
    atomic_store_explicit((_Atomic uint64_t *)&hak_seg->classes[c].thp, v, memory_order_relaxed);
}

void hak_thp_init(void) {
    int eff = hak_os_thp_effective();
    hak_lock_init(&sample_lock);
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) {
        uint32_t st = HAK_CTHP_NA;
        if (eff != 0 && hak_class_size(c) >= HAK_HUGE_PAGE)
            st = hak_opt.thp == HAK_THP_AUTO ? HAK_CTHP_UNDECIDED : HAK_CTHP_HUGE;
        atomic_store(&state[c], st);
        atomic_store(&maps[c], 0);
        samples[c] = 0;
        permille_sum[c] = 0;
        last_probe[c] = NULL;
        by_pool[c] = false;
        publish(c);
    }
    last_any = NULL;
    pool_samples = 0;
    pool_permille_sum = 0;
    atomic_store(&pool_huge, false);
    hak_lock_init(&measure_lock);
    atomic_store(&huge_fault_ns, 0);
    atomic_store(&small_fault_ns, 0);
    atomic_store(&huge_timed, 0);
    atomic_store(&measured_at, 0);
    atomic_store(&gated, 0);
    atomic_store(&cost_off, hak_opt.thp != HAK_THP_AUTO || !hak_opt.thp_fault_cost);
    publish_cost();
}

static void publish_cost(void) {
    atomic_store_explicit((_Atomic uint64_t *)&hak_seg->knobs.thp_huge_fault_ns,
                          atomic_load_explicit(&huge_fault_ns, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit((_Atomic uint64_t *)&hak_seg->knobs.thp_small_fault_ns,
                          atomic_load_explicit(&small_fault_ns, memory_order_relaxed) * (HAK_HUGE_PAGE / HAK_PAGE),
                          memory_order_relaxed);
    atomic_store_explicit((_Atomic uint64_t *)&hak_seg->knobs.thp_by_cost, !hak_thp_huge_pays(), memory_order_relaxed);
}

/* A new measurement into an average where the last few weigh most (a host
 * that takes memory back turns slow within seconds, and fast again as soon
 * as memory is freed). */
static void note_ns(_Atomic uint64_t *avg, uint64_t ns) {
    uint64_t old = atomic_load_explicit(avg, memory_order_relaxed);
    atomic_store_explicit(avg, old == 0 ? (ns ? ns : 1) : (old + ns + 1) / 2, memory_order_relaxed);
}

void hak_thp_note_fault_cost(uint64_t huge_ns, uint64_t small_ns) {
    if (huge_ns) note_ns(&huge_fault_ns, huge_ns);
    if (small_ns) note_ns(&small_fault_ns, small_ns);
    publish_cost();
}

bool hak_thp_huge_pays(void) {
    if (atomic_load_explicit(&cost_off, memory_order_relaxed)) return true;
    uint64_t h = atomic_load_explicit(&huge_fault_ns, memory_order_relaxed);
    uint64_t s = atomic_load_explicit(&small_fault_ns, memory_order_relaxed);
    if (s == 0) s = SMALL_FAULT_NS_DEF;
    return h == 0 || h * 100u <= s * (HAK_HUGE_PAGE / HAK_PAGE) * HAK_THP_FAULT_SLACK_PCT;
}

/* A huge-page fault measured (ns), and every SMALL_EVERY-th time 4 KiB
 * faults of the library's own range too; measure_lock held. */
static void note_huge(int64_t h, bool before) {
    atomic_store_explicit(&measured_at, hak_now_ns(), memory_order_relaxed);
    int64_t s = 0;
    if (atomic_fetch_add_explicit(&huge_timed, 1, memory_order_relaxed) % SMALL_EVERY == 0)
        s = hak_thp_small_fault_probe();
    HAK_CNT(thp_fault_probes);
    hak_thp_note_fault_cost((uint64_t)h, s > 0 ? (uint64_t)s : 0);
    bool now = hak_thp_huge_pays();
    if (now != before && hak_opt.verbose)
        hak_log("THP: a huge-page fault costs %.0f us, 512 faults of 4 KiB pages %.0f us: %s", (double)h / 1e3,
                (double)atomic_load(&small_fault_ns) * (HAK_HUGE_PAGE / HAK_PAGE) / 1e3,
                now ? "huge pages again" : "4 KiB pages for fresh blocks until huge ones are cheaper");
}

static void probe_failed(int64_t h) {
    if (h == -EINVAL) atomic_store_explicit(&cost_off, true, memory_order_relaxed);   /* kernel < 5.14 */
}

/* Huge pages for a fresh block of a class that chose them, unless they do
 * not pay now; every REPROBE_EVERY-th block refused them, and the first one
 * after hak_thp_reprobe_ns without a measurement, times a huge page of the
 * library's own first. */
static int gate(void) {
    if (hak_thp_huge_pays()) return HAK_OS_THP_HUGE;
    bool due = (atomic_fetch_add_explicit(&gated, 1, memory_order_relaxed) + 1) % REPROBE_EVERY == 0 ||
               hak_now_ns() - atomic_load_explicit(&measured_at, memory_order_relaxed) >= hak_thp_reprobe_ns;
    if (due && hak_trylock(&measure_lock)) {
        int64_t h = hak_thp_huge_fault_probe();
        if (h >= 0) note_huge(h, false);
        else probe_failed(h);
        hak_unlock(&measure_lock);
        if (hak_thp_huge_pays()) return HAK_OS_THP_HUGE;
    }
    HAK_CNT(thp_small_by_cost);
    return HAK_OS_THP_SMALL;
}

void hak_thp_fresh(hak_block_t *b) {
    if (!(b->flags & HAK_BF_HUGE) || atomic_load_explicit(&cost_off, memory_order_relaxed)) return;
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    if (u != b->map_base || (u & (HAK_HUGE_PAGE - 1)) != 0 || b->size < HAK_HUGE_PAGE) return;
    if (!hak_trylock(&measure_lock)) return;          /* another thread is measuring: its figure will do */
    bool before = hak_thp_huge_pays();
    int64_t h = hak_os_populate_ns(u, HAK_HUGE_PAGE);
    if (h >= 0) note_huge(h, before);
    else probe_failed(h);
    hak_unlock(&measure_lock);
    if (h >= 0 && !hak_thp_huge_pays()) {
        /* that fault was dear: the rest of this block gets 4 KiB pages (its
         * first huge page stays; one VMA flag for the whole mapping) */
        hak_os_advise_small(b->map_base, b->map_size);
        b->flags &= ~HAK_BF_HUGE;
        HAK_CNT(thp_small_by_cost);
    }
}

/* Undecided class c, the pool saying huge: c becomes HUGE unless its own
 * samples so far say otherwise.  True if it did. */
static bool adopt_pool(uint32_t c) {
    if (!hak_trylock(&sample_lock)) return false;   /* busy: next time */
    bool ok = atomic_load_explicit(&state[c], memory_order_relaxed) == HAK_CTHP_UNDECIDED &&
              (samples[c] == 0 || permille_sum[c] / samples[c] >= HUGE_PERMILLE);
    if (ok) {
        atomic_store_explicit(&state[c], HAK_CTHP_HUGE, memory_order_relaxed);
        by_pool[c] = true;
        publish(c);
        if (hak_opt.verbose)
            hak_log("THP: class %u (%zu bytes): huge pages, as the program's other classes (%u samples, %u permille "
                    "touched)", c, hak_class_size(c), pool_samples, (unsigned)(pool_permille_sum / pool_samples));
    }
    hak_unlock(&sample_lock);
    return ok;
}

int hak_thp_choose(uint32_t c, uint32_t *flags) {
    if (hak_os_thp_effective() == 0) return HAK_OS_THP_NONE;
    if (c == HAK_CLASS_NONE) return HAK_OS_THP_HUGE;          /* oversized: as always */
    switch (atomic_load_explicit(&state[c], memory_order_relaxed)) {
    case HAK_CTHP_HUGE: return gate();
    case HAK_CTHP_SMALL: return HAK_OS_THP_SMALL;
    case HAK_CTHP_UNDECIDED:
        if (atomic_load_explicit(&pool_huge, memory_order_relaxed) && adopt_pool(c)) return gate();
        atomic_fetch_add_explicit(&maps[c], 1, memory_order_relaxed);
        *flags |= HAK_BF_PROBE;
        return HAK_OS_THP_SMALL;
    default: return HAK_OS_THP_NONE;
    }
}

bool hak_thp_class_wants_huge(uint32_t c) {
    if (hak_os_thp_effective() == 0) return false;
    if (c == HAK_CLASS_NONE) return true;
    uint32_t st = atomic_load_explicit(&state[c], memory_order_relaxed);
    return st == HAK_CTHP_UNDECIDED || (st == HAK_CTHP_HUGE && hak_thp_huge_pays());
}

bool hak_thp_block_fits(const hak_block_t *b) {
    return !(b->flags & HAK_BF_HUGE) || b->cls == HAK_CLASS_NONE ||
           atomic_load_explicit(&state[b->cls], memory_order_relaxed) != HAK_CTHP_SMALL;
}

/* Count b's touched pages into class c; sample_lock held. */
static void sample_locked(hak_block_t *b, uint32_t c) {
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    /* the class's size, not b->size: the block may be another thread's,
     * which a realloc may be resizing (only its atomic fields are read) */
    size_t pages = hak_class_size(c) / HAK_PAGE;
    if (pages > SAMPLE_MAX_PAGES) pages = SAMPLE_MAX_PAGES;
    vec_dirty = true;
    long resident = hak_os_resident(hak_page_down(u), pages * HAK_PAGE, vec);
    if (resident >= 0 && atomic_load_explicit(&state[c], memory_order_relaxed) == HAK_CTHP_UNDECIDED) {
        HAK_CNT(thp_samples);
        uint64_t touched = (uint64_t)resident * 1000u / pages;
        samples[c]++;
        permille_sum[c] += touched;
        pool_samples++;
        pool_permille_sum += touched;
        atomic_store_explicit(&pool_huge,
                              pool_samples >= POOL_SAMPLES && pool_permille_sum / pool_samples >= POOL_HUGE_PERMILLE,
                              memory_order_relaxed);
        if (samples[c] >= SAMPLES_TO_DECIDE) {
            uint32_t pm = (uint32_t)(permille_sum[c] / samples[c]);
            atomic_store_explicit(&state[c], pm >= HUGE_PERMILLE ? HAK_CTHP_HUGE : HAK_CTHP_SMALL,
                                  memory_order_relaxed);
            if (hak_opt.verbose)
                hak_log("THP: class %u (%zu bytes): %u permille touched -> %s pages", c, hak_class_size(c), pm,
                        pm >= HUGE_PERMILLE ? "huge" : "4 KiB");
        }
        publish(c);
    }
}

/* A probe of a class that chose huge pages after it was mapped: 2 MiB-aligned,
 * its length a 2 MiB multiple (map_fresh); the whole mapping, one VMA flag. */
static void upgrade(hak_block_t *b) {
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    if (hak_os_thp_effective() != 1 || u != b->map_base || (u & (HAK_HUGE_PAGE - 1)) != 0) return;
    hak_os_advise_huge(b->map_base, b->map_size);
    b->flags = (b->flags | HAK_BF_HUGE) & ~HAK_BF_PROBE;
}

void hak_thp_trim(void) {
    hak_lock(&sample_lock);
    if (vec_dirty && hak_os_release((uintptr_t)vec, sizeof vec) == 0) vec_dirty = false;
    hak_unlock(&sample_lock);
}

void hak_thp_sample(hak_block_t *b) {
    uint32_t c = b->cls;
    if (c >= HAK_NCLASSES) return;
    uint32_t st = atomic_load_explicit(&state[c], memory_order_relaxed);
    if (st == HAK_CTHP_HUGE && hak_thp_huge_pays()) upgrade(b);
    /* its class chose 4 KiB pages: the block keeps them, and is no probe any
     * more (or every later free of it, a front-cache hit's included, would
     * come here again for nothing) */
    if (st == HAK_CTHP_SMALL) b->flags &= ~HAK_BF_PROBE;
    if (st != HAK_CTHP_UNDECIDED) return;
    if (!hak_trylock(&sample_lock)) return;   /* busy: skip this one */
    if (last_probe[c] == b) last_probe[c] = NULL;     /* counted now, not again at the next map */
    if (last_any == b) last_any = NULL;
    sample_locked(b, c);
    hak_unlock(&sample_lock);
}

void hak_thp_mapped(hak_block_t *b) {
    uint32_t c = b->cls;
    if (c >= HAK_NCLASSES || !(b->flags & HAK_BF_PROBE)) return;
    if (!hak_trylock(&sample_lock)) return;
    hak_block_t *prev = last_probe[c];
    uint32_t pc = c;
    last_probe[c] = b;
    if (prev == NULL || prev == b) {
        /* the class's first probe: the last one of another class is a sample
         * for the pool, so a program of many classes decides early */
        prev = last_any;
        pc = last_any_cls;
    }
    last_any = b;
    last_any_cls = c;
    /* the probe mapped before this one, if the program still holds it (a
     * metadata record is never unmapped: a stale one is only a wrong guess) */
    if (prev != NULL && prev != b && atomic_load_explicit(&prev->state, memory_order_relaxed) == HAK_BLOCK_LIVE &&
        atomic_load_explicit(&state[pc], memory_order_relaxed) == HAK_CTHP_UNDECIDED)
        sample_locked(prev, pc);
    hak_unlock(&sample_lock);
}

int hak_set_class_thp(unsigned cls, unsigned st) {
    if (!hak_init()) return -EINVAL;
    if (cls >= HAK_NCLASSES || (st != HAK_CTHP_HUGE && st != HAK_CTHP_SMALL)) return -EINVAL;
    if (atomic_load(&state[cls]) == HAK_CTHP_NA) return -EINVAL;
    atomic_store(&state[cls], st);
    hak_lock(&sample_lock);
    by_pool[cls] = false;
    publish(cls);
    hak_unlock(&sample_lock);
    return 0;
}
