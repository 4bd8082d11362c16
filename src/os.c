/*
 * os.c - the only file that calls mmap, munmap, mremap and madvise.
 * Every call on a block is counted in the caller's thread slot.
 * Block releases (hak_os_unmap) are called by batch.c alone.
 * Blocks of up to HAK_ARENA_BLOCK_MAX are carved from arenas (arena.c: the
 * bookkeeping): address space this file reserves inaccessible and maps
 * block by block, and reserves again when a block leaves it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hak_internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000    /* Linux 4.17 */
#endif

_Atomic int hak_os_fail_next;
static int thp_effective;      /* 0 never, 1 madvise-aligned, 2 always (kernel does it) */

uint64_t hak_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t hak_wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Read the kernel's THP mode: "always [madvise] never" -> the bracketed word. */
static int read_sys_thp(void) {
    char buf[128];
    int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    if (strstr(buf, "[always]")) return 2;
    if (strstr(buf, "[madvise]")) return 1;
    return 0;
}

void hak_os_init(void) {
    int sys = read_sys_thp();
    switch ((int)hak_opt.thp) {
    case HAK_THP_NEVER: thp_effective = 0; break;
    case HAK_THP_ALWAYS: thp_effective = 1; break;           /* align + madvise regardless */
    default: thp_effective = sys < 0 ? 0 : (sys == 2 ? 2 : sys); break;
    }
}

int hak_os_thp_effective(void) { return thp_effective; }

static bool inject_failure(void) {
    int n = atomic_load_explicit(&hak_os_fail_next, memory_order_relaxed);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&hak_os_fail_next, &n, n - 1)) return true;
    }
    return false;
}

/* Inaccessible, no memory and no commit charge: address space only (not
 * counted in mmap_calls, which counts the mappings of block memory). */
static void *reserve(void *at, size_t len, int fixed) {
    return mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed, -1, 0);
}

/* A new arena, or false: the table is full, or the kernel said no once, and
 * blocks go where the kernel puts them from then on.  None at all under a
 * finite RLIMIT_AS (ulimit -v): a reservation would spend the program's own
 * address-space budget.  Its length is a multiple of 2 MiB, so the kernel
 * aligns it to 2 MiB. */
static _Atomic int arena_refused;
static bool new_arena(void) {
    if (hak_arena_count() >= HAK_ARENA_MAX || atomic_load_explicit(&arena_refused, memory_order_relaxed)) return false;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        atomic_store_explicit(&arena_refused, 1, memory_order_relaxed);
        return false;
    }
    void *p = reserve(NULL, HAK_ARENA_SIZE, 0);
    if (p == MAP_FAILED) {
        atomic_store_explicit(&arena_refused, 1, memory_order_relaxed);
        return false;
    }
    void *desc = hak_os_meta_alloc(HAK_ARENA_DESC);
    if (desc != NULL && hak_arena_add((uintptr_t)p, HAK_ARENA_SIZE, desc)) return true;
    hak_os_meta_free(desc, HAK_ARENA_DESC);
    hak_os_meta_free(p, HAK_ARENA_SIZE);        /* never held a block */
    return false;
}

/* Where a fresh mapping of len bytes goes: a carve of an arena, aligned to
 * 2 MiB for the huge-page geometry; 0 = wherever the kernel puts it. */
static uintptr_t place(size_t len, bool geometry) {
    if (!hak_opt.arena || len > HAK_ARENA_BLOCK_MAX) return 0;
    size_t a = geometry ? HAK_HUGE_PAGE : HAK_PAGE;
    uintptr_t at = hak_arena_carve(len, a);
    if (at == 0 && new_arena()) at = hak_arena_carve(len, a);
    return at;
}

void hak_os_vacated(uintptr_t base, size_t len) {
    uintptr_t lo[4], hi[4];
    int n = hak_arena_parts(base, base + len, lo, hi, 4);
    for (int i = 0; i < n; i++) {
        void *p = reserve((void *)lo[i], hi[i] - lo[i], MAP_FIXED_NOREPLACE);
        if (p == (void *)lo[i]) hak_arena_give(lo[i], hi[i]);
        else if (p != MAP_FAILED) hak_os_meta_free(p, hi[i] - lo[i]);   /* a kernel without NOREPLACE put it elsewhere */
        /* else another mapping took the place meanwhile: it is not the arena's now */
    }
}

void *hak_os_map_block(size_t size, size_t align, int thp_choice, size_t extra, uintptr_t *map_base,
                       size_t *map_size) {
    bool thp = thp_effective != 0 && size >= HAK_HUGE_PAGE && align <= HAK_PAGE;
    bool geometry = thp && extra == 0;      /* the 2 MiB geometry, below */
    size_t len;
    if (geometry) {
        /* A length that is a multiple of 2 MiB makes the kernel place the
         * mapping 2 MiB-aligned (and next to the previous one, so Batch can
         * coalesce).  The tail beyond size is never touched: address space
         * only, and room for realloc to grow in place. */
        len = hak_align_up(size, HAK_HUGE_PAGE);
        align = HAK_PAGE;
    } else if (align > HAK_PAGE) {
        /* Over-aligned request: over-map and keep the slack inside the
         * block's mapping, so its release stays one munmap of one range. */
        len = size + align - HAK_PAGE;
    } else {
        len = size + extra;
        align = HAK_PAGE;
    }
    if (len < size || inject_failure()) {
        HAK_CNT(mmap_failures);
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t at = place(len, geometry);
    HAK_CNT(mmap_calls);
    /* MAP_FIXED only over the arena's own reservation, which the carve took */
    void *p = mmap((void *)at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);
    if (p == MAP_FAILED && at != 0) {
        hak_os_vacated(at, len);            /* what of the reservation the failed mmap removed */
        HAK_CNT(mmap_calls);
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    if (p == MAP_FAILED) {
        HAK_CNT(mmap_failures);
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t base = (uintptr_t)p;
    uintptr_t user = (base + align - 1) & ~(uintptr_t)(align - 1);
    if (geometry && thp_effective == 1 && thp_choice == HAK_OS_THP_HUGE) {
        /* The whole mapping, not just [user, user+size): a madvise of part of
         * it would split the VMA, and mremap (realloc) cannot span two VMAs. */
        HAK_CNT(madvise_calls);
        (void)madvise(p, len, MADV_HUGEPAGE);
    } else if (thp && thp_effective == 2 && thp_choice == HAK_OS_THP_SMALL) {
        HAK_CNT(madvise_calls);
        (void)madvise(p, len, MADV_NOHUGEPAGE);
    }
    *map_base = base;
    *map_size = len;
    HAK_CNT_ADD(bytes_mapped_total, len);
    HAK_GAUGE_UP(bytes_mapped, len);
    hak_stats_note_mapped();
    return (void *)user;
}

int hak_os_unmap(uintptr_t base, size_t len) {
    HAK_CNT(munmap_calls);
    HAK_CNT_ADD(munmap_bytes, len);
    if (munmap((void *)base, len) != 0) {
        int e = errno;
        HAK_CNT(munmap_failures);
        return -e;
    }
    hak_os_vacated(base, len);
    return 0;
}

/* Move [base, base+old_len) to a fresh 2 MiB-aligned place of new_len bytes
 * (a multiple of 2 MiB): reserve the place with an inaccessible mapping of
 * exactly new_len (the kernel aligns PMD-multiple anonymous mappings), then
 * mremap onto it, which replaces the whole reservation.  Huge pages of the old
 * block move as whole PMDs instead of being split.  MAP_FAILED on failure. */
static void *remap_to_aligned(uintptr_t base, size_t old_len, size_t new_len) {
    HAK_CNT(mmap_calls);
    void *res = mmap(NULL, new_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) return MAP_FAILED;
    HAK_CNT(mremap_calls);
    void *p = mremap((void *)base, old_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, res);
    if (p == MAP_FAILED) hak_os_meta_free(res, new_len);    /* never held a block */
    return p;
}

/* A mapping made of two VMAs (split bytes, then the rest: a block grown into
 * a cached block's pages, hak_os_move_onto) grows like one: its second piece
 * in place, else both pieces move (no resize of the first) into a fresh
 * reservation of new_len bytes.  The split stays at the same offset. */
static void *remap_split(uintptr_t base, size_t old_len, size_t new_len, size_t split) {
    HAK_CNT(mremap_calls);
    if (mremap((void *)(base + split), old_len - split, new_len - split, 0) != MAP_FAILED) return (void *)base;
    /* the place for both pieces (replaced by them; read-write like them, so
     * tools that track mappings, valgrind, see the grown part as usable) */
    HAK_CNT(mmap_calls);
    void *res = mmap(NULL, new_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) return MAP_FAILED;
    uintptr_t r = (uintptr_t)res;
    HAK_CNT(mremap_calls);
    if (mremap((void *)base, split, split, MREMAP_MAYMOVE | MREMAP_FIXED, res) == MAP_FAILED) {
        hak_os_meta_free(res, new_len);            /* never held a block */
        return MAP_FAILED;
    }
    HAK_CNT(mremap_calls);
    if (mremap((void *)(base + split), old_len - split, new_len - split, MREMAP_MAYMOVE | MREMAP_FIXED,
               (void *)(r + split)) == MAP_FAILED) {
        int e = errno;
        HAK_CNT(mremap_calls);
        if (mremap(res, split, split, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)base) == MAP_FAILED)
            hak_fatal("mremap: cannot move %zu bytes back to %p (errno %d)", split, (void *)base, errno);
        hak_os_meta_free((void *)(r + split), new_len - split);
        errno = e;
        return MAP_FAILED;
    }
    return res;
}

void *hak_os_remap(uintptr_t base, size_t old_len, size_t new_len, size_t split) {
    if (inject_failure()) {
        HAK_CNT(mmap_failures);
        errno = ENOMEM;
        return NULL;
    }
    if (split != 0) {
        void *q = remap_split(base, old_len, new_len, split);
        if (q == MAP_FAILED) {
            HAK_CNT(mmap_failures);
            errno = ENOMEM;
            return NULL;
        }
        HAK_CNT_ADD(bytes_mapped_total, new_len - old_len);
        HAK_GAUGE_UP(bytes_mapped, new_len - old_len);
        hak_stats_note_mapped();
        return q;
    }
    /* Grow in place when the address space after the block is free. */
    HAK_CNT(mremap_calls);
    void *p = mremap((void *)base, old_len, new_len, 0);
    bool pmd = thp_effective != 0 && new_len % HAK_HUGE_PAGE == 0, huge = pmd && base % HAK_HUGE_PAGE == 0;
    /* else into an arena (onto the carve's own reservation), 2 MiB-aligned
     * for a 2 MiB-multiple length as the kernel would place it: later
     * faults can take huge pages, and huge pages it has move as whole PMDs */
    uintptr_t at = p == MAP_FAILED ? place(new_len, pmd) : 0;
    if (at != 0) {
        HAK_CNT(mremap_calls);
        p = mremap((void *)base, old_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)at);
        if (p == MAP_FAILED) hak_os_vacated(at, new_len);
    }
    if (p == MAP_FAILED && huge) p = remap_to_aligned(base, old_len, new_len);
    if (p == MAP_FAILED) {
        HAK_CNT(mremap_calls);
        p = mremap((void *)base, old_len, new_len, MREMAP_MAYMOVE);
    }
    if (p == MAP_FAILED) {
        HAK_CNT(mmap_failures);
        errno = ENOMEM;
        return NULL;
    }
    HAK_CNT_ADD(bytes_mapped_total, new_len > old_len ? new_len - old_len : 0);
    HAK_GAUGE(bytes_mapped, (int64_t)new_len - (int64_t)old_len);
    hak_stats_note_mapped();
    return p;
}

int hak_os_shrink(uintptr_t base, size_t old_len, size_t new_len) {
    HAK_CNT(mremap_calls);
    if (mremap((void *)base, old_len, new_len, 0) == MAP_FAILED) return -errno;
    HAK_CNT_ADD(mremap_dropped_bytes, old_len - new_len);
    HAK_GAUGE_DOWN(bytes_mapped, old_len - new_len);
    hak_os_vacated(base + new_len, old_len - new_len);     /* the tail: an arena's again, if it was one's */
    return 0;
}

int hak_os_remap_back(uintptr_t base, size_t len, size_t old_len, uintptr_t to, size_t split) {
    /* The old place has been a hole since the move: another thread's mmap
     * may have landed there.  Claim it first (MAP_FIXED_NOREPLACE fails on a
     * mapping it would replace), so that the MREMAP_FIXED below replaces
     * nothing but that claim. */
    void *claim = reserve((void *)to, old_len, MAP_FIXED_NOREPLACE);
    if (claim != (void *)to) {
        if (claim != MAP_FAILED) hak_os_meta_free(claim, old_len);   /* placed elsewhere: the place is taken */
        return -EEXIST;
    }
    if (split != 0) {               /* the first piece back as it is, then the second shrunk */
        HAK_CNT(mremap_calls);
        if (mremap((void *)base, split, split, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)to) == MAP_FAILED) return -errno;
        base += split;
        to += split;
        len -= split;
        old_len -= split;
    }
    HAK_CNT(mremap_calls);
    void *p = mremap((void *)base, len, old_len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)to);
    if (p == MAP_FAILED) return -errno;
    /* the growth undone: what hak_os_remap added to bytes_mapped_total goes */
    HAK_CNT_ADD(mremap_dropped_bytes, len - old_len);
    HAK_GAUGE_DOWN(bytes_mapped, len - old_len);
    return 0;
}

int hak_os_move_onto(uintptr_t base, size_t len, uintptr_t to) {
    if (inject_failure()) return -ENOMEM;
    HAK_CNT(mremap_calls);
    if (mremap((void *)base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)to) == MAP_FAILED) return -errno;
    /* the pages that were at [to, to+len) are gone with the move */
    HAK_CNT_ADD(mremap_dropped_bytes, len);
    HAK_GAUGE_DOWN(bytes_mapped, len);
    return 0;
}

void hak_os_advise_huge(uintptr_t base, size_t len) {
    if (thp_effective != 1 || len < HAK_HUGE_PAGE) return;
    HAK_CNT(madvise_calls);
    (void)madvise((void *)base, len, MADV_HUGEPAGE);
}

void hak_os_advise_small(uintptr_t base, size_t len) {
    if (thp_effective == 0) return;
    HAK_CNT(madvise_calls);
    (void)madvise((void *)base, len, MADV_NOHUGEPAGE);
}

int hak_os_release(uintptr_t base, size_t len) {
    HAK_CNT(madvise_calls);
    return madvise((void *)base, len, MADV_DONTNEED) == 0 ? 0 : -errno;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23          /* Linux 5.14 */
#endif

int64_t hak_os_populate_ns(uintptr_t base, size_t len) {
    HAK_CNT(madvise_calls);
    uint64_t t0 = hak_now_ns();
    if (madvise((void *)base, len, MADV_POPULATE_WRITE) != 0) return -errno;
    return (int64_t)(hak_now_ns() - t0);
}

/* The two probes below: a private range of the library's own, mapped at the
 * first use and kept for the process's life (address space only: its pages
 * go back after each use); callers serialise (thp.c's measure_lock). */
static int64_t probe_fault_ns(uintptr_t base, size_t len) {
    int64_t ns = hak_os_populate_ns(base, len);
    HAK_CNT(madvise_calls);
    (void)madvise((void *)base, len, MADV_DONTNEED);
    return ns;
}

/* SMALL_FAULT_PAGES pages with 4 KiB pages only. */
#define SMALL_FAULT_PAGES 8u
static uintptr_t small_probe;

int64_t hak_os_small_fault_ns(void) {
    size_t len = SMALL_FAULT_PAGES * HAK_PAGE;
    if (small_probe == 0) {
        void *p = hak_os_meta_alloc(len);
        if (p == NULL) return -ENOMEM;
        hak_os_advise_small((uintptr_t)p, len);
        small_probe = (uintptr_t)p;
    }
    int64_t ns = probe_fault_ns(small_probe, len);
    return ns < 0 ? ns : ns / SMALL_FAULT_PAGES;
}

/* One 2 MiB-aligned huge page. */
static uintptr_t huge_probe;

int64_t hak_os_huge_fault_ns(void) {
    if (huge_probe == 0) {
        void *p = hak_os_meta_alloc(2 * HAK_HUGE_PAGE);
        if (p == NULL) return -ENOMEM;
        uintptr_t a = ((uintptr_t)p + HAK_HUGE_PAGE - 1) & ~(uintptr_t)(HAK_HUGE_PAGE - 1);
        hak_os_advise_huge(a, HAK_HUGE_PAGE);
        huge_probe = a;
    }
    return probe_fault_ns(huge_probe, HAK_HUGE_PAGE);
}

long hak_os_resident(uintptr_t base, size_t len, unsigned char *vec) {
    if (mincore((void *)base, len, vec) != 0) return -errno;
    long n = 0;
    for (size_t i = 0; i < len / HAK_PAGE; i++) n += vec[i] & 1;
    return n;
}

void *hak_os_meta_alloc(size_t len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void hak_os_meta_free(void *p, size_t len) {
    if (p) (void)munmap(p, len);
}
