/*
 * realloc.c - realloc across the whole size range.
 *   large -> large: in place when the block (or its mapping's slack) fits,
 *                   else mremap: the kernel moves page tables, never a memcpy;
 *   small <-> large: a copy across the large_min boundary (glibc owns one side).
 */
#include <errno.h>
#include <string.h>

#include "hak_internal.h"

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
        HAK_CNT(realloc_inplace);
        hak_op_end();
        return p;
    }
    uint32_t c = hak_size_class(n);
    size_t size = c != HAK_CLASS_NONE ? hak_class_size(c) : hak_align_up(n, HAK_PAGE);
    size_t off = (uintptr_t)p - b->map_base;
    size_t len = off + size;
    /* Like a fresh THP block: the mapping a multiple of 2 MiB, so a move can
     * land 2 MiB-aligned (os.c) and its huge pages move whole. */
    if (hak_os_thp_effective() != 0 && size >= HAK_HUGE_PAGE && off == 0) len = hak_align_up(size, HAK_HUGE_PAGE);
    if (len <= b->map_size) {                           /* alignment slack covers it */
        HAK_CNT(realloc_inplace);
    } else {
        void *nb = hak_os_remap(b->map_base, b->map_size, len);
        if (nb == NULL) {
            hak_op_end();
            errno = ENOMEM;
            return NULL;
        }
        HAK_CNT(realloc_mremap);
        if ((uintptr_t)nb != b->map_base) {
            hak_registry_remove(b);
            b->map_base = (uintptr_t)nb;
            atomic_store_explicit(&b->user, (uintptr_t)nb + off, memory_order_relaxed);
            hak_registry_insert(b);     /* leaf exists or is mapped; cannot fail without ENOMEM */
        }
        b->map_size = len;
        /* the pages still to be touched can come as huge pages */
        if (size >= HAK_HUGE_PAGE) hak_os_advise_huge(b->map_base, len);
    }
    HAK_GAUGE(bytes_live, (int64_t)size - (int64_t)b->size);
    b->size = size;
    /* Cache it under its new class only if it looks like a block of that
     * class: page-aligned start of its mapping, and 2 MiB-aligned when THP
     * applies (a later malloc from the ring expects huge pages). */
    uintptr_t u = atomic_load_explicit(&b->user, memory_order_relaxed);
    bool aligned = hak_os_thp_effective() == 0 || size < HAK_HUGE_PAGE || (u & (HAK_HUGE_PAGE - 1)) == 0;
    b->cls = (u == b->map_base && aligned) ? c : HAK_CLASS_NONE;
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
    /* small -> large */
    size_t old = hak_libc_usable_size(p);
    void *q = hak_large_alloc(n, 0, false);
    if (q == NULL) return NULL;
    memcpy(q, p, old < n ? old : n);
    hak_op_begin();
    HAK_CNT(realloc_copy);
    hak_op_end();
    hak_libc_free(p);
    return q;
}
