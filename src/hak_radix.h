/*
 * hak_radix.h - the registry's radix table and its lock-free lookups (registry.c
 * writes it; free, realloc and malloc_usable_size read it).
 */
#ifndef HAK_RADIX_H
#define HAK_RADIX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hak_libc.h"
#include "hak_types.h"

/* Radix table: root[u >> 32] -> leaf; leaf[(u >> 16) & 0xffff] -> block whose
 * user pointer lies in that 64 KiB chunk (see registry.c). */
#define HAK_CHUNK_SHIFT 16u
#define HAK_LEAF_BITS   16u
#define HAK_ROOT_BITS   15u
typedef _Atomic(hak_block_t *) hak_leaf_t[(size_t)1 << HAK_LEAF_BITS];
extern _Atomic(hak_leaf_t *) hak_registry_root[(size_t)1 << HAK_ROOT_BITS] HAK_HIDDEN;
/* The block registered in p's 64 KiB chunk, or NULL.  Lock-free: two loads. */
/* (The root index is masked, not range-checked: a pointer above 2^47 lands in
 * some lower region's leaf, where no block's user pointer can equal it, so the
 * exact compare of every caller rejects it; that saves the free path a branch.) */
static inline hak_block_t *hak_registry_chunk(const void *p) {
    uintptr_t u = (uintptr_t)p;
    hak_leaf_t *leaf = atomic_load_explicit(
        &hak_registry_root[(u >> (HAK_CHUNK_SHIFT + HAK_LEAF_BITS)) & (((size_t)1 << HAK_ROOT_BITS) - 1)],
        memory_order_acquire);
    if (likely(leaf == NULL)) return NULL;
    return atomic_load_explicit(&(*leaf)[(u >> HAK_CHUNK_SHIFT) & (((size_t)1 << HAK_LEAF_BITS) - 1)],
                                memory_order_acquire);
}
/* The lowest user pointer any block has had (UINTPTR_MAX before the first):
 * it only ever falls (hak_registry_insert).  A pointer below it is no hakmem
 * block's and lies in no hakmem block, so free() hands it to glibc on a
 * compare: the main arena's heap (brk) lies below the mmap area, where the
 * kernel places large blocks.  A program that frees a pointer got the block
 * after its insert (the handoff that made it free it orders the two), so a
 * relaxed load cannot see a stale value that is still above it. */
extern _Atomic uintptr_t hak_registry_lo HAK_HIDDEN;
static inline bool hak_registry_below_all(const void *p) {
#ifdef HAK_SANITIZER_BUILD
    return (uintptr_t)p < atomic_load_explicit(&hak_registry_lo, memory_order_relaxed);
#else
    /* A plain load: an aligned 8-byte load is atomic on every target of
     * this library, and it sits at the start of free(), after whatever
     * handoff ordered the block's insert before this call, so the argument
     * above holds as for a relaxed load.  The compiler folds it into the
     * compare: free()'s fast path is cmp + jae + jmp.  Sanitizer builds keep
     * the atomic form (TSan would report the plain read). */
    return (uintptr_t)p < *(const uintptr_t *)&hak_registry_lo;
#endif
}
/* Lock-free exact lookup: the block whose user pointer is p, or NULL. */
static inline hak_block_t *hak_registry_lookup(const void *p) {
    hak_block_t *b = hak_registry_chunk(p);
    if (b != NULL && atomic_load_explicit(&b->user, memory_order_relaxed) == (uintptr_t)p) return b;
    return NULL;
}

#endif
