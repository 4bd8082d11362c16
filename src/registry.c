/*
 * registry.c - exact ownership of large blocks, and their out-of-band metadata.
 *
 * A two-level radix table maps the 64 KiB chunk of an address to the metadata
 * of the block whose USER POINTER lies in that chunk.  Blocks are at least
 * 64 KiB and never overlap (a colored user pointer starts at most a page into
 * its mapping, with its size after it), so two user pointers are at least
 * 64 KiB apart and never share a chunk: the mapping is injective.  lookup(p) is lock-free: two
 * loads and a compare of p with the block's user pointer; the bytes around p
 * are never read, so a neighbouring block's contents cannot fool it.
 *
 * Root: 2^15 leaf pointers (user addresses below 2^47); leaf: 2^16 entries
 * (512 KiB, mapped lazily, never unmapped; a page of it comes in when a user
 * pointer first lands in its 32 MiB of addresses, and a trim gives back the
 * pages that hold no block again: hak_registry_trim).  Metadata records come
 * from 64 KiB slabs and are recycled through a free list.
 *
 * Writers (insert, remove, trim) hold reg_lock; readers take none.
 */
#include <errno.h>

#include "hak_internal.h"

#define CHUNK_SHIFT HAK_CHUNK_SHIFT
#define LEAF_BITS   HAK_LEAF_BITS
#define LEAF_LEN    ((size_t)1 << LEAF_BITS)
#define ADDR_BITS   (HAK_CHUNK_SHIFT + HAK_LEAF_BITS + HAK_ROOT_BITS)   /* 47 */
#define root        hak_registry_root

_Atomic(hak_leaf_t *) hak_registry_root[(size_t)1 << HAK_ROOT_BITS] HAK_PAGE_ALIGNED;
_Atomic uintptr_t hak_registry_lo = UINTPTR_MAX;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
#define LEAVES_TRIMMED 64u                  /* leaves a trim looks at (4 GiB of addresses each) */
static hak_leaf_t *leaves[LEAVES_TRIMMED];  /* the first ones made, in order; reg_lock */
static uint32_t nleaves;
static hak_block_t *meta_free;              /* records given back */
static hak_block_t *meta_next, *meta_end;   /* the newest slab's records never used yet */

void hak_registry_lock(void) { pthread_mutex_lock(&reg_lock); }
void hak_registry_unlock(void) { pthread_mutex_unlock(&reg_lock); }
void hak_registry_child_reset(void) { pthread_mutex_init(&reg_lock, NULL); }

/* A record: one given back, else the next of a slab handed out in order, so
 * that a slab's pages become resident only as the program needs records. */
hak_block_t *hak_block_new(void) {
    pthread_mutex_lock(&reg_lock);
    hak_block_t *b = meta_free;
    if (b != NULL) {
        meta_free = b->next;
    } else {
        if (meta_next == meta_end) {
            size_t slab = (size_t)64 << 10;
            hak_block_t *v = hak_os_meta_alloc(slab);
            if (v == NULL) {
                pthread_mutex_unlock(&reg_lock);
                return NULL;
            }
            meta_next = v;
            meta_end = v + slab / sizeof *v;
        }
        b = meta_next++;                    /* zeroed by the kernel */
    }
    pthread_mutex_unlock(&reg_lock);
    b->next = NULL;
    return b;
}

void hak_block_delete(hak_block_t *b) {
    atomic_store_explicit(&b->user, 0, memory_order_relaxed);
    atomic_store_explicit(&b->state, HAK_BLOCK_UNUSED, memory_order_relaxed);
    pthread_mutex_lock(&reg_lock);
    b->next = meta_free;
    meta_free = b;
    pthread_mutex_unlock(&reg_lock);
}

/* reg_lock held. */
static _Atomic(hak_block_t *) *slot_of(uintptr_t u, bool create) {
    if (u >> ADDR_BITS) return NULL;
    size_t ri = u >> (CHUNK_SHIFT + LEAF_BITS);
    hak_leaf_t *leaf = atomic_load_explicit(&root[ri], memory_order_acquire);
    if (leaf == NULL) {
        if (!create) return NULL;
        leaf = hak_os_meta_alloc(sizeof(hak_leaf_t));
        if (leaf == NULL) return NULL;
        atomic_store_explicit(&root[ri], leaf, memory_order_release);
        if (nleaves < LEAVES_TRIMMED) leaves[nleaves++] = leaf;
    }
    return &(*leaf)[(u >> CHUNK_SHIFT) & (LEAF_LEN - 1)];
}

_Atomic int hak_registry_fail_next;

int hak_registry_insert(hak_block_t *b) {
    int n = atomic_load_explicit(&hak_registry_fail_next, memory_order_relaxed);
    if (unlikely(n > 0) && atomic_compare_exchange_strong(&hak_registry_fail_next, &n, n - 1)) return -ENOMEM;
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    pthread_mutex_lock(&reg_lock);
    _Atomic(hak_block_t *) *s = slot_of(u, true);
    if (s == NULL) {
        pthread_mutex_unlock(&reg_lock);
        return -ENOMEM;
    }
    /* free()'s lower bound falls before the block can be handed out; to its
     * page start, which an aligned hand-out may make the user pointer */
    uintptr_t lo = atomic_load_explicit(&hak_registry_lo, memory_order_relaxed), pu = hak_page_down(u);
    while (pu < lo && !atomic_compare_exchange_weak_explicit(&hak_registry_lo, &lo, pu, memory_order_relaxed,
                                                             memory_order_relaxed)) {}
    atomic_store_explicit(s, b, memory_order_release);
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

void hak_registry_remove(hak_block_t *b) {
    pthread_mutex_lock(&reg_lock);
    _Atomic(hak_block_t *) *s = slot_of(atomic_load_explicit(&b->user, memory_order_relaxed), false);
    hak_block_t *expected = b;
    if (s != NULL) atomic_compare_exchange_strong(s, &expected, NULL);
    pthread_mutex_unlock(&reg_lock);
}

/* A leaf page whose entries are all NULL again goes back to the kernel (it
 * reads as NULLs when it comes back).  Under reg_lock no entry can change;
 * a lock-free reader finds NULL there before and after. */
void hak_registry_trim(void) {
    enum { PAGE_ENTRIES = HAK_PAGE / sizeof(hak_block_t *), PAGES = sizeof(hak_leaf_t) / HAK_PAGE };
    unsigned char vec[PAGES];
    pthread_mutex_lock(&reg_lock);
    for (uint32_t l = 0; l < nleaves; l++) {
        _Atomic(hak_block_t *) *e = *leaves[l];
        if (hak_os_resident((uintptr_t)e, sizeof(hak_leaf_t), vec) < 0) continue;
        for (size_t pg = 0; pg < PAGES; pg++) {
            if (!(vec[pg] & 1)) continue;
            size_t i = pg * PAGE_ENTRIES, end = i + PAGE_ENTRIES;
            while (i < end && atomic_load_explicit(&e[i], memory_order_relaxed) == NULL) i++;
            if (i == end) (void)hak_os_release((uintptr_t)&e[pg * PAGE_ENTRIES], HAK_PAGE);
        }
    }
    pthread_mutex_unlock(&reg_lock);
}

hak_block_t *hak_registry_near(const void *p) {
    uintptr_t u = (uintptr_t)p;
    hak_block_t *b = hak_registry_chunk(p);
    if (b == NULL) return NULL;
    uintptr_t user = atomic_load_explicit(&b->user, memory_order_relaxed);
    /* from the page start: the bytes in front of a colored block are its own */
    if (user != u && u >= hak_page_down(user) && u < user + b->size) return b;
    return NULL;
}
