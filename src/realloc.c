/*
 * realloc.c - realloc across the whole size range.
 *   large -> smaller: in place; needing half the mapping or less, the tail
 *                   goes back (mremap shrinks the mapping: no copy);
 *   large -> large: in place when the block (or its mapping's slack) fits,
 *                   else into a cached block of the new class (its pages move
 *                   onto that block's head; its warm tail is the growth),
 *                   else mremap: the kernel moves page tables, never a memcpy;
 *   small <-> large: a copy across the large_min boundary (glibc owns one side).
 */
#include <errno.h>
#include <string.h>

#include "hak_internal.h"

/* The mapping a block of size bytes needs, its user pointer off bytes into
 * it.  Like a fresh THP block: a multiple of 2 MiB, so a move can land 2 MiB-
 * aligned (os.c) and its huge pages move whole.  Not for a colored block: its
 * last bytes would start one more huge page. */
static size_t shaped_len(size_t off, size_t size) {
    if (hak_os_thp_effective() != 0 && size >= HAK_HUGE_PAGE && off == 0) return hak_align_up(size, HAK_HUGE_PAGE);
    return hak_align_up(off + size, HAK_PAGE);
}

/* Class c for b, resized to c's size, if b looks like a block of that class:
 * its page at the start of its mapping, and, uncolored, 2 MiB-aligned when
 * THP applies (a later malloc from the ring expects huge pages); a colored
 * one keeps the class with what pages it has.  Else HAK_CLASS_NONE: b is
 * never cached. */
static uint32_t class_if_shaped(const hak_block_t *b, uint32_t c) {
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    bool aligned = hak_os_thp_effective() == 0 || b->size < HAK_HUGE_PAGE || (u & (HAK_HUGE_PAGE - 1)) == 0 ||
                   hak_color_of(u) != 0;
    return (hak_page_down(u) == b->map_base && aligned) ? c : HAK_CLASS_NONE;
}

/* Grow b (its mapping one VMA, its user pointer in the mapping's first page:
 * at its start, or colored) into x, a cached block of the class it grows to:
 * b's pages move onto the head of x's mapping (x's pages there are dropped,
 * and x's own split point, if any, with them), x's tail stays, warm, as the
 * growth; b keeps its color.  b takes over x's mapping, as two VMAs
 * (b->split); x's record is deleted.  0, or -errno with both unchanged. */
static int grow_into(hak_block_t *b, hak_block_t *x) {
    size_t color = hak_color_of(atomic_load_explicit(&b->user, memory_order_relaxed));
    uintptr_t to = x->map_base;
    size_t blen = b->map_size;
    uintptr_t from = b->map_base;
    int rc = hak_os_move_onto(from, blen, to);
    if (rc != 0) return rc;
    hak_registry_remove(x);
    hak_registry_remove(b);
    b->map_base = to;
    b->map_size = x->map_size;
    b->split = blen;
    /* huge pages as x had them; no THP sample of a mix of two blocks' pages */
    b->flags = (b->flags & ~(HAK_BF_HUGE | HAK_BF_PROBE)) | (x->flags & HAK_BF_HUGE);
    atomic_store_explicit(&b->user, to + color, memory_order_relaxed);
    /* x was registered at this address: its radix leaf exists, so this cannot fail */
    if (hak_registry_insert(b) != 0) hak_fatal("realloc: block %p lost its registry entry", (void *)to);
    hak_block_delete(x);
    hak_os_vacated(from, blen);         /* b's old place: an arena's again, if it was one's */
    return 0;
}

/* Make b hold class c's size (or n page-rounded bytes when c is NONE):
 * in place when its mapping's slack covers it, else into a cached block of
 * class c or up to one doubling bigger (grow_into: a growing buffer goes on
 * growing, in place from then on, over that block's warm pages), else mremap
 * (the kernel grows the mapping or moves its page tables; never a copy).
 * On success b's mapping, user pointer, registry entry, size and class are
 * updated; *inplace tells which way it went.  0, or -ENOMEM with b unchanged. */
static int grow(hak_block_t *b, uint32_t c, size_t n, bool *inplace) {
    size_t size = c != HAK_CLASS_NONE ? hak_class_size(c) : hak_align_up(n, HAK_PAGE);
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    size_t off = u - b->map_base;       /* < a page: colored (or 0); more: over-aligned */
    size_t len = shaped_len(off, size);
    *inplace = len <= b->map_size;
    hak_block_t *x = NULL;
    if (!*inplace && c != HAK_CLASS_NONE && off < HAK_PAGE && b->split == 0 &&
        likely(hak_opt.warm_reuse) && (x = hak_bigcache_take_for_grow(c, len, b->map_size)) != NULL) {
        if (grow_into(b, x) == 0) {
            HAK_CNT(warm_realloc);
            len = b->map_size;
        } else {
            hak_bigcache_put(x);        /* back where it was */
            x = NULL;
        }
    }
    if (!*inplace && x == NULL) {
        void *nb = hak_os_remap(b->map_base, b->map_size, len, b->split);
        if (nb == NULL) return -ENOMEM;
        if ((uintptr_t)nb != b->map_base) {
            uintptr_t old_base = b->map_base;
            hak_registry_remove(b);
            b->map_base = (uintptr_t)nb;
            atomic_store_explicit(&b->user, (uintptr_t)nb + off, memory_order_relaxed);
            if (hak_registry_insert(b) != 0) {
                /* The new address has no radix leaf and none can be mapped:
                 * move the pages back rather than lose the block (a later
                 * free would hand a hakmem mapping to glibc). */
                if (hak_os_remap_back((uintptr_t)nb, len, b->map_size, old_base, b->split) != 0)
                    hak_fatal("realloc: cannot move block %p back after a registry failure", (void *)u);
                b->map_base = old_base;
                atomic_store_explicit(&b->user, u, memory_order_relaxed);
                if (hak_registry_insert(b) != 0) hak_fatal("realloc: block %p lost its registry entry", (void *)u);
                return -ENOMEM;
            }
            hak_os_vacated(old_base, b->map_size);  /* the move stands: the old place is empty */
        }
        b->map_size = len;
        /* the pages still to be touched can come as huge pages */
        if (size >= HAK_HUGE_PAGE && hak_thp_class_wants_huge(c)) {
            hak_os_advise_huge(b->map_base, len);
            b->flags |= HAK_BF_HUGE;
        }
    }
    b->size = size;
    b->touched = size;      /* a warm tail of x's may have come along */
    b->cls = class_if_shaped(b, c);
    return 0;
}

/* b (live, inside a bracket) now holds n <= b->size bytes.  When n's class
 * needs half of b's mapping or less, the rest goes back to the kernel at once:
 * mremap shrinks the mapping in place (no copy; the head keeps its pages, the
 * tail's address space is an arena's again), as glibc's realloc does for an
 * mmapped chunk, and b takes n's class.  Else, or for a block of two VMAs
 * (grown into another block), b stays as it is.  A shrink of less than half
 * keeps the block: a buffer trimmed a little is often grown again. */
static void shrink(hak_block_t *b, size_t n) {
    if (b->split != 0) return;
    uint32_t c = hak_size_class(n);
    size_t size = c != HAK_CLASS_NONE ? hak_class_size(c) : hak_align_up(n, HAK_PAGE);
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    size_t len = shaped_len(u - b->map_base, size);
    if (len > b->map_size / 2 || hak_os_shrink(b->map_base, b->map_size, len) != 0) return;
    HAK_GAUGE_DOWN(bytes_live, b->size - size);
    b->map_size = len;
    b->size = size;
    if (b->touched > size) b->touched = size;
    /* no THP sample of a block cut short; no huge pages below one */
    b->flags &= ~HAK_BF_PROBE;
    if (size < HAK_HUGE_PAGE) b->flags &= ~HAK_BF_HUGE;
    b->cls = class_if_shaped(b, c);
}

/* b now serves a request of n bytes (inside a bracket). */
static void set_request(hak_block_t *b, size_t n) {
    HAK_GAUGE(bytes_requested, (int64_t)n - (int64_t)b->req);
    b->req = n;
}

int hak_block_grow(hak_block_t *b, uint32_t c) {
    bool inplace;
    return grow(b, c, hak_class_size(c), &inplace);
}

void *hak_large_realloc(hak_block_t *b, size_t n) {
    void *p = (void *)atomic_load_explicit(&b->user, memory_order_relaxed);
    if (atomic_load(&b->state) != HAK_BLOCK_LIVE) hak_invalid_pointer("realloc", p, NULL);
    if (n < hak_large_threshold) {                      /* large -> small */
        void *q = hak_libc_malloc(n);
        if (q == NULL) return NULL;
        memcpy(q, p, n);
        hak_op_begin();
        HAK_CNT(realloc_copy);
        hak_op_end();
        hak_large_free(b);
        return q;
    }
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    hak_op_begin();
    if (n <= b->size) {
        shrink(b, n);
        if (b->touched < n) b->touched = n;
        set_request(b, n);
        HAK_CNT(realloc_inplace);
        hak_op_end();
        return p;
    }
    uint32_t c = hak_size_class(n);
    size_t old_size = b->size;
    bool inplace;
    int rc = grow(b, c, n, &inplace);
    if (rc != 0) {
        hak_op_end();
        if (!hak_oom_release()) {
            errno = ENOMEM;
            return NULL;
        }
        hak_op_begin();                 /* what hakmem held is back: once more */
        rc = grow(b, c, n, &inplace);
        if (rc != 0) {
            hak_op_end();
            errno = ENOMEM;
            return NULL;
        }
    }
    if (inplace) HAK_CNT(realloc_inplace);
    else HAK_CNT(realloc_mremap);
    HAK_GAUGE(bytes_live, (int64_t)b->size - (int64_t)old_size);
    set_request(b, n);
    hak_op_end();
    return (void *)atomic_load_explicit(&b->user, memory_order_relaxed);
}

void *hak_realloc(void *p, size_t n) {
    if (p == NULL) return hak_alloc(n);
    if (n == 0) {                                       /* glibc: free and return NULL */
        hak_free(p);
        return NULL;
    }
    hak_block_t *b = hak_registry_lookup(p);
    if (b != NULL) return hak_large_realloc(b, n);
    hak_block_t *near = hak_registry_near(p);
    if (unlikely(near != NULL)) hak_invalid_pointer("realloc", p, near);
    if (n < hak_large_threshold || !hak_active()) return hak_libc_realloc(p, n);
    /* small -> large: page-aligned (no color, alloc.c): a growing buffer
     * likely grows on, and only an uncolored block takes the 2 MiB geometry */
    size_t old = hak_libc_usable_size(p);
    void *q = hak_large_alloc(n, HAK_PAGE, false);
    if (q == NULL) return NULL;
    memcpy(q, p, old < n ? old : n);
    hak_op_begin();
    HAK_CNT(realloc_copy);
    hak_op_end();
    hak_libc_free(p);
    return q;
}
