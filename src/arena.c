/*
 * arena.c - the address space hakmem reserves for its blocks, and which of
 * it is free.  Pure bookkeeping: os.c makes the reservations (inaccessible,
 * MAP_NORESERVE: no memory, no commit charge) and maps blocks into them.
 *
 * Why: the blocks the kernel places are separated by holes nobody owns (its
 * 2 MiB alignment of huge-page mappings, the places of blocks that realloc
 * moved), and a munmap must not cross a hole another thread may have mapped
 * since.  Blocks carved from an arena are neighbours, or separated by
 * address space of the arena that holds nothing: Batch releases several with
 * ONE munmap over the whole span (hak_arena_claim lets it cross such a gap),
 * one TLB shootdown where there were as many as blocks.  A released range is
 * reserved again by os.c and comes back here (hak_arena_give).
 *
 * An arena keeps its free ranges as a sorted array of extents; a carve is
 * address-ordered first fit (blocks packed toward the arena's start, so the
 * ones freed together tend to be neighbours).  One mutex for all arenas:
 * every caller is about to make a syscall anyway.  Arenas live as long as
 * the process (address space only).  A free range that finds the extent
 * array full stays reserved but is not reused: address space, never memory.
 */
#include <string.h>

#include "hak_internal.h"

typedef struct {
    uintptr_t start, end;
} ext_t;

#define ARENA_EXTS  ((HAK_ARENA_DESC - 4 * sizeof(uintptr_t)) / sizeof(ext_t))
typedef struct arena {
    uintptr_t base, end;
    size_t nfree;
    size_t pad_;
    ext_t free[ARENA_EXTS];
} arena_t;
_Static_assert(sizeof(arena_t) <= HAK_ARENA_DESC, "an arena's descriptor fits its pages");

static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
static arena_t *arenas[HAK_ARENA_MAX];
static _Atomic uint32_t narenas;

void hak_arena_lock(void) { pthread_mutex_lock(&arena_lock); }
void hak_arena_unlock(void) { pthread_mutex_unlock(&arena_lock); }
void hak_arena_child_reset(void) { pthread_mutex_init(&arena_lock, NULL); }

bool hak_arena_add(uintptr_t base, size_t len, void *desc) {
    arena_t *a = desc;
    a->base = base;
    a->end = base + len;
    a->nfree = 1;
    a->free[0] = (ext_t){base, base + len};
    pthread_mutex_lock(&arena_lock);
    uint32_t n = atomic_load_explicit(&narenas, memory_order_relaxed);
    bool ok = n < HAK_ARENA_MAX;
    if (ok) {
        arenas[n] = a;
        atomic_store_explicit(&narenas, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&arena_lock);
    return ok;
}

uint32_t hak_arena_count(void) { return atomic_load_explicit(&narenas, memory_order_acquire); }

/* Remove [s, e) from extent i of a (s, e inside it): 0, 1 or 2 pieces stay.
 * false (nothing changed) when a second piece finds the array full. */
static bool ext_cut(arena_t *a, size_t i, uintptr_t s, uintptr_t e) {
    ext_t x = a->free[i];
    bool left = s > x.start, right = e < x.end;
    if (left && right) {
        if (a->nfree == ARENA_EXTS) return false;
        memmove(&a->free[i + 2], &a->free[i + 1], (a->nfree - i - 1) * sizeof(ext_t));
        a->free[i] = (ext_t){x.start, s};
        a->free[i + 1] = (ext_t){e, x.end};
        a->nfree++;
    } else if (left) {
        a->free[i].end = s;
    } else if (right) {
        a->free[i].start = e;
    } else {
        memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof(ext_t));
        a->nfree--;
    }
    return true;
}

uintptr_t hak_arena_carve(size_t len, size_t align) {
    uintptr_t got = 0;
    pthread_mutex_lock(&arena_lock);
    uint32_t n = atomic_load_explicit(&narenas, memory_order_relaxed);
    for (uint32_t k = 0; k < n && got == 0; k++) {
        arena_t *a = arenas[k];
        for (size_t i = 0; i < a->nfree; i++) {
            uintptr_t s = (a->free[i].start + align - 1) & ~(uintptr_t)(align - 1);
            if (s < a->free[i].start || s + len < s || s + len > a->free[i].end) continue;
            if (ext_cut(a, i, s, s + len)) got = s;
            break;      /* first fit; an array too full to split it waits for a give */
        }
    }
    pthread_mutex_unlock(&arena_lock);
    return got;
}

/* The arena that holds [s, e), or NULL. */
static arena_t *arena_of(uintptr_t s, uintptr_t e) {
    uint32_t n = atomic_load_explicit(&narenas, memory_order_acquire);
    for (uint32_t k = 0; k < n; k++)
        if (s >= arenas[k]->base && e <= arenas[k]->end) return arenas[k];
    return NULL;
}

/* The extent of a with start <= s < end, or a->nfree. */
static size_t ext_find(const arena_t *a, uintptr_t s) {
    size_t lo = 0, hi = a->nfree;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (a->free[m].end <= s) lo = m + 1;
        else hi = m;
    }
    return lo < a->nfree && a->free[lo].start <= s ? lo : a->nfree;
}

bool hak_arena_claim(uintptr_t s, uintptr_t e) {
    if (e <= s) return e == s;
    bool ok = false;
    pthread_mutex_lock(&arena_lock);
    arena_t *a = arena_of(s, e);
    if (a != NULL) {
        size_t i = ext_find(a, s);
        ok = i < a->nfree && e <= a->free[i].end && ext_cut(a, i, s, e);
    }
    pthread_mutex_unlock(&arena_lock);
    return ok;
}

int hak_arena_parts(uintptr_t s, uintptr_t e, uintptr_t *lo, uintptr_t *hi, int max) {
    int np = 0;
    uint32_t n = atomic_load_explicit(&narenas, memory_order_acquire);
    for (uint32_t k = 0; k < n && np < max; k++) {
        uintptr_t a = s > arenas[k]->base ? s : arenas[k]->base, b = e < arenas[k]->end ? e : arenas[k]->end;
        if (a < b) {
            lo[np] = a;
            hi[np++] = b;
        }
    }
    return np;
}

void hak_arena_give(uintptr_t s, uintptr_t e) {
    pthread_mutex_lock(&arena_lock);
    arena_t *a = arena_of(s, e);
    if (a != NULL && s < e) {
        size_t i = 0;          /* the first extent after [s, e) */
        while (i < a->nfree && a->free[i].start < e) i++;
        bool prev = i > 0 && a->free[i - 1].end == s, next = i < a->nfree && a->free[i].start == e;
        if (prev && next) {
            a->free[i - 1].end = a->free[i].end;
            memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof(ext_t));
            a->nfree--;
        } else if (prev) {
            a->free[i - 1].end = e;
        } else if (next) {
            a->free[i].start = s;
        } else if (a->nfree < ARENA_EXTS) {
            memmove(&a->free[i + 1], &a->free[i], (a->nfree - i) * sizeof(ext_t));
            a->free[i] = (ext_t){s, e};
            a->nfree++;
        }
    }
    pthread_mutex_unlock(&arena_lock);
}

size_t hak_arena_free_bytes(void) {
    size_t n = 0;
    pthread_mutex_lock(&arena_lock);
    for (uint32_t k = 0; k < atomic_load_explicit(&narenas, memory_order_relaxed); k++)
        for (size_t i = 0; i < arenas[k]->nfree; i++) n += arenas[k]->free[i].end - arenas[k]->free[i].start;
    pthread_mutex_unlock(&arena_lock);
    return n;
}
