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
 * (512 KiB, mapped lazily, never released).  Metadata records come from
 * 64 KiB slabs and are recycled through a free list.
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

static _Atomic(hak_block_t *) *slot_of(uintptr_t u, bool create) {
    if (u >> ADDR_BITS) return NULL;
    size_t ri = u >> (CHUNK_SHIFT + LEAF_BITS);
    hak_leaf_t *leaf = atomic_load_explicit(&root[ri], memory_order_acquire);
    if (leaf == NULL) {
        if (!create) return NULL;
        pthread_mutex_lock(&reg_lock);
        leaf = atomic_load_explicit(&root[ri], memory_order_acquire);
        if (leaf == NULL) {
            leaf = hak_os_meta_alloc(sizeof(hak_leaf_t));
            if (leaf != NULL) atomic_store_explicit(&root[ri], leaf, memory_order_release);
        }
        pthread_mutex_unlock(&reg_lock);
        if (leaf == NULL) return NULL;
    }
    return &(*leaf)[(u >> CHUNK_SHIFT) & (LEAF_LEN - 1)];
}

_Atomic int hak_registry_fail_next;

int hak_registry_insert(hak_block_t *b) {
    int n = atomic_load_explicit(&hak_registry_fail_next, memory_order_relaxed);
    if (unlikely(n > 0) && atomic_compare_exchange_strong(&hak_registry_fail_next, &n, n - 1)) return -ENOMEM;
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    _Atomic(hak_block_t *) *s = slot_of(u, true);
    if (s == NULL) return -ENOMEM;
    /* free()'s lower bound falls before the block can be handed out; to its
     * page start, which an aligned hand-out may make the user pointer */
    uintptr_t lo = atomic_load_explicit(&hak_registry_lo, memory_order_relaxed), pu = hak_page_down(u);
    while (pu < lo && !atomic_compare_exchange_weak_explicit(&hak_registry_lo, &lo, pu, memory_order_relaxed,
                                                             memory_order_relaxed)) {}
    atomic_store_explicit(s, b, memory_order_release);
    return 0;
}

void hak_registry_remove(hak_block_t *b) {
    _Atomic(hak_block_t *) *s = slot_of(atomic_load_explicit(&b->user, memory_order_relaxed), false);
    if (s == NULL) return;
    hak_block_t *expected = b;
    atomic_compare_exchange_strong(s, &expected, NULL);
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
