/*
 * hak_types.h - the records the modules share: a block's out-of-band metadata, the
 * per-thread front cache and the thread's allocator state.
 */
#ifndef HAK_TYPES_H
#define HAK_TYPES_H

#include <stdatomic.h>
#include <stdint.h>

#include "hak_base.h"
#include "hakmem/shm.h"

/* Block metadata, out of band (never in front of the user's bytes). */
enum hak_block_state {
    HAK_BLOCK_UNUSED = 0,   /* metadata record on the free list */
    HAK_BLOCK_LIVE = 1,     /* held by the program */
    HAK_BLOCK_CACHED = 2,   /* warm in a BigCache ring */
    HAK_BLOCK_PENDING = 3,  /* waiting in Batch for munmap */
};

typedef struct hak_block {
    _Atomic uintptr_t user;     /* user pointer: the registry key */
    uintptr_t map_base;         /* the mapping that holds the block */
    size_t    map_size;         /* its length (may include alignment slack) */
    size_t    size;             /* usable bytes from user (the user pointer may lie up to a
                                   page past its page: its color, hak_color_of) */
    uint32_t  cls;              /* size class, or HAK_CLASS_NONE (never cached) */
    _Atomic uint32_t state;     /* enum hak_block_state */
    struct hak_block *next;     /* free list link of metadata records */
    uint32_t  flags;            /* HAK_BF_* */
    size_t    split;            /* 0, or where the mapping's second VMA starts: a block that a
                                   realloc grew into a cached block's pages (its own pages first,
                                   then that block's warm tail); mremap moves the two together */
    size_t    touched;          /* bytes from user its uses may have made resident: the largest
                                   request it served since its tail was last released (alloc.c);
                                   only an estimate, it never decides correctness */
    size_t    req;              /* bytes the program asked for in its current use (gauge bytes_requested) */
} hak_block_t;
#define HAK_BF_HUGE  0x1u       /* mapped (or grown) with MADV_HUGEPAGE */
#define HAK_BF_PROBE 0x2u       /* THP probe: 4 KiB pages, sampled at free (thp.c) */

/* The per-thread front cache (tcache.c): v[0] oldest, v[n-1] newest. */
#define HAK_TC_SLOTS 8u
typedef struct hak_tcache {
    uint32_t n;
    uint32_t pad_;
    uint64_t bytes;
    hak_block_t *v[HAK_TC_SLOTS];
} hak_tcache_t;
typedef struct hak_tls {
    hak_shm_slot_t *slot;
    uint32_t depth;
    uint32_t shared;            /* no slot of its own: counts in its private slot, added into slot 1 per op */
    uint32_t in_init;
    uint32_t tc_ok;             /* this thread has a front cache (a slot of its own) */
    uint32_t quiescing;         /* this thread holds the others at the gate (tcache.c) */
    uint32_t overflow_ops;      /* operations on the overflow slot (a free slot is looked for now and then) */
    uint32_t own;               /* 1: slot is this thread's own (the common case: one test per operation) */
    uint32_t exited;            /* the thread's slot was released (it is exiting): later ops share the overflow slot */
    hak_tcache_t tc;
} hak_tls_t;
extern __thread hak_tls_t hak_tls __attribute__((tls_model("initial-exec"))) HAK_HIDDEN;

#endif
