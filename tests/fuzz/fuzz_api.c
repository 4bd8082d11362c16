/*
 * fuzz_api.c - libFuzzer target: the native allocator API driven by a byte
 * stream, checked against a model of the live blocks.
 *
 * Every input is a program of operations (one opcode byte, then arguments):
 * alloc / calloc / memalign / realloc / free of sizes chosen around the size
 * class boundaries, large_min, 2 MiB, multiples of 2 MiB, the uncached sizes
 * above 256 MiB and absurd sizes; knob changes (direct and through the
 * control block) with out-of-range values; trims and flushes; injected
 * mmap/mremap failures (hak_os_fail_next).  After every operation the model
 * checks what the API promises:
 *   - contents written into a block survive realloc (up to the smaller size)
 *     and survive any operation on other blocks;
 *   - the requested alignment is honoured (16 bytes at least, memalign's own);
 *   - hak_usable_size() >= the request; a large block is at most one doubling
 *     bigger than its size class (a miss may reuse a cached block of a bigger
 *     class, DESIGN.md item 12), and its class wastes < 25% + a page;
 *   - ownership is exact: hak_owns() is true exactly for requests >= large_min;
 *   - live blocks never overlap ([p, p + usable) intervals are disjoint);
 *   - calloc memory reads as zero, also when a warm (dirty) block is reused;
 *   - failures return NULL + ENOMEM, leave the old block intact (realloc) and
 *     leave bytes_live / blocks_live / bytes_mapped unchanged;
 *   - knobs stay inside their bounds whatever was asked.
 * At the end of each input every block is freed and the process-wide gauges
 * must read zero live bytes; after a trim nothing may stay mapped, cached or
 * pending, and a snapshot of the counters must satisfy the reader's invariants.
 *
 * A failed check calls abort(): libFuzzer reports it as a crash and keeps the
 * input (copy it into tests/fuzz/corpus/api/ as a regression test).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hak_internal.h"

#define NSLOTS   24
#define NSAMPLES 24                 /* sampled positions per large block */
#define FULL_MAX ((size_t)8 << 10)  /* blocks up to this size are written/checked whole */

typedef struct {
    unsigned char *p;
    size_t n;          /* requested bytes */
    size_t usable;
    size_t align;
    uint8_t seed;      /* content pattern */
    int live;
} slot_t;

static slot_t slots[NSLOTS];
static size_t large_min;

/* ---- input reader ---- */
typedef struct {
    const uint8_t *d;
    size_t n, i;
} in_t;
static uint8_t u8(in_t *in) { return in->i < in->n ? in->d[in->i++] : 0; }
static uint16_t u16(in_t *in) { return (uint16_t)(u8(in) | (u8(in) << 8)); }
static uint32_t u32(in_t *in) { return (uint32_t)u16(in) | ((uint32_t)u16(in) << 16); }

#define CHECK(cond, ...)                                                            \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "fuzz_api: check failed at %s:%d: %s: ", __FILE__,      \
                    __LINE__, #cond);                                               \
            fprintf(stderr, __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                    \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* ---- gauges ---- */
static void gauges(int64_t *g) {
    uint64_t c[HAK_NCOUNTERS];
    hak_stats_sum(c, g);
}

/* ---- content pattern: whole block when small, sampled positions else ---- */
static size_t sample_pos(size_t n, unsigned k) {
    /* k < NSAMPLES: first bytes, last bytes, and evenly spread pages between */
    if (k < 4) return k < n ? k : n - 1;
    if (k < 8) return n - 1 - (k - 4) < n ? n - 1 - (k - 4) : 0;
    return (size_t)(((unsigned __int128)n * (k - 8)) / (NSAMPLES - 8));
}
static unsigned char pat(uint8_t seed, size_t pos) {
    return (unsigned char)(seed ^ (pos * 131u) ^ (pos >> 12));
}
static void fill(slot_t *s) {
    if (s->n == 0) return;
    if (s->n <= FULL_MAX) {
        for (size_t i = 0; i < s->n; i++) s->p[i] = pat(s->seed, i);
        return;
    }
    for (unsigned k = 0; k < NSAMPLES; k++) {
        size_t pos = sample_pos(s->n, k);
        s->p[pos] = pat(s->seed, pos);
    }
}
/* Check the pattern of a block of old_n bytes, now at p, up to upto bytes. */
static void verify(const unsigned char *p, size_t old_n, uint8_t seed, size_t upto, const char *what) {
    if (old_n == 0 || upto == 0) return;
    if (old_n <= FULL_MAX) {
        for (size_t i = 0; i < old_n && i < upto; i++)
            CHECK(p[i] == pat(seed, i), "%s: byte %zu of %zu is %02x, want %02x", what, i, old_n, p[i], pat(seed, i));
        return;
    }
    for (unsigned k = 0; k < NSAMPLES; k++) {
        size_t pos = sample_pos(old_n, k);
        if (pos >= upto) continue;
        CHECK(p[pos] == pat(seed, pos), "%s: byte %zu of %zu is %02x, want %02x", what, pos, old_n, p[pos],
              pat(seed, pos));
    }
}

/* ---- sizes ---- */
static size_t pick_size(in_t *in) {
    uint8_t sel = u8(in);
    int16_t d = (int16_t)u16(in);
    switch (sel % 12) {
    case 0: return sel >> 4;                                        /* 0..15 */
    case 1: return (size_t)u16(in) % (large_min + 1);                /* small */
    case 2: return (size_t)((int64_t)large_min + d % 4097);         /* around large_min */
    case 3: {                                                        /* around a class boundary */
        uint32_t c = u8(in) % 33;                                    /* classes up to 32 MiB */
        return (size_t)((int64_t)hak_class_size(c) + d % 65);
    }
    case 4: return (size_t)((int64_t)HAK_HUGE_PAGE + d % 8193);      /* around 2 MiB */
    case 5: return (size_t)(1 + u8(in) % 8) * HAK_HUGE_PAGE + (size_t)(d % 4097 + 4096) - 4096;
    case 6: return HAK_CLASS_MAX_SIZE + (size_t)(u8(in) % 3) * HAK_PAGE + (size_t)(d & 1);    /* uncached */
    case 7: {                                                        /* absurd */
        static const size_t absurd[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX,
                                        SIZE_MAX / 2, (size_t)1 << 47};
        return absurd[u8(in) % 6];
    }
    case 8: return large_min + (size_t)u16(in) * 16;
    case 9: return (size_t)u32(in) % ((size_t)64 << 20);
    default: return (size_t)u32(in) % ((size_t)4 << 20);
    }
}
static int absurd(size_t n) { return n > ((size_t)1 << 40); }

static size_t pick_align(in_t *in) {
    uint8_t a = u8(in);
    switch (a % 8) {
    case 0: return (size_t)3 << (a >> 4);                 /* not a power of two: EINVAL */
    case 1: return (size_t)1 << (a >> 5);                 /* 1..128: below sizeof(void*) is EINVAL */
    default: return (size_t)1 << (3 + (a >> 3) % 20);     /* 8 .. 4 MiB */
    }
}

/* ---- model checks ---- */
static void check_new_block(int i, const char *what) {
    slot_t *s = &slots[i];
    size_t want_align = s->align > 16 ? s->align : 16;
    CHECK(((uintptr_t)s->p & (want_align - 1)) == 0, "%s: %p not aligned to %zu (n=%zu)", what, (void *)s->p,
          want_align, s->n);
    s->usable = hak_usable_size(s->p);
    CHECK(s->usable >= s->n, "%s: usable %zu < requested %zu", what, s->usable, s->n);
    int large = s->n >= large_min;
    CHECK(hak_owns(s->p) == large, "%s: owns=%d for a request of %zu (large_min %zu)", what, hak_owns(s->p), s->n,
          large_min);
    if (large && strncmp(what, "realloc", 7) != 0)     /* a shrinking realloc may keep the bigger block */
        CHECK(s->usable - s->n <= s->n + s->n / 2 + 2 * HAK_PAGE,   /* 2 x (1.25 n) */
              "%s: %zu usable for %zu requested: more than one doubling of its class", what, s->usable, s->n);
    uintptr_t a = (uintptr_t)s->p, ae = a + (s->usable ? s->usable : 1);
    for (int j = 0; j < NSLOTS; j++) {
        if (j == i || !slots[j].live) continue;
        uintptr_t b = (uintptr_t)slots[j].p, be = b + (slots[j].usable ? slots[j].usable : 1);
        CHECK(ae <= b || be <= a, "%s: [%p,+%zu) overlaps live block [%p,+%zu)", what, (void *)s->p, s->usable,
              (void *)slots[j].p, slots[j].usable);
    }
}
static void check_all_contents(void) {
    for (int j = 0; j < NSLOTS; j++)
        if (slots[j].live) verify(slots[j].p, slots[j].n, slots[j].seed, slots[j].n, "live block");
}
static void check_zero(const unsigned char *p, size_t n) {
    if (n <= ((size_t)1 << 20)) {
        for (size_t i = 0; i < n; i++) CHECK(p[i] == 0, "calloc: byte %zu of %zu is %02x", i, n, p[i]);
        return;
    }
    for (unsigned k = 0; k < NSAMPLES; k++) {
        size_t pos = sample_pos(n, k);
        CHECK(p[pos] == 0, "calloc: byte %zu of %zu is %02x", pos, n, p[pos]);
    }
}
static void check_knobs(void) {
    uint64_t cap = hak_knob_get(HAKMEM_KNOB_RING_CAP), thr = hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD);
    uint64_t max = hak_knob_get(HAKMEM_KNOB_CACHE_MAX_BYTES);
    CHECK(cap <= HAK_RING_CAP_MAX, "ring cap %llu out of bounds", (unsigned long long)cap);
    CHECK(thr >= HAK_BATCH_THRESHOLD_MIN && thr <= HAK_BATCH_THRESHOLD_MAX, "batch threshold %llu out of bounds",
          (unsigned long long)thr);
    CHECK(max <= ((uint64_t)1 << 40), "cache max %llu out of bounds", (unsigned long long)max);
}

/* A failed allocation must leave no trace in the gauges. */
typedef struct {
    int64_t g[HAK_NGAUGES];
} gsnap_t;
static void check_unchanged(const gsnap_t *before, const char *what) {
    int64_t g[HAK_NGAUGES];
    gauges(g);
    CHECK(g[HAK_G_bytes_live] == before->g[HAK_G_bytes_live] && g[HAK_G_blocks_live] == before->g[HAK_G_blocks_live],
          "%s failed but live gauges moved: %lld -> %lld bytes", what, (long long)before->g[HAK_G_bytes_live],
          (long long)g[HAK_G_bytes_live]);
    /* bytes_mapped may only fall (a flush of earlier evictions), never grow */
    CHECK(g[HAK_G_bytes_mapped] <= before->g[HAK_G_bytes_mapped], "%s failed but bytes_mapped grew: %lld -> %lld",
          what, (long long)before->g[HAK_G_bytes_mapped], (long long)g[HAK_G_bytes_mapped]);
}

static int free_slot(void) {
    for (int i = 0; i < NSLOTS; i++)
        if (!slots[i].live) return i;
    return -1;
}

static void do_free(int i) {
    slot_t *s = &slots[i];
    verify(s->p, s->n, s->seed, s->n, "before free");
    hak_free(s->p);
    memset(s, 0, sizeof *s);
}

/* ---- operations ---- */
enum { OP_ALLOC, OP_CALLOC, OP_MEMALIGN, OP_REALLOC, OP_FREE, OP_KNOB, OP_CTL, OP_TRIM, OP_FAIL, OP_NOPS };

static void op_alloc(in_t *in, int kind, int fail) {
    int i = free_slot();
    if (i < 0) {
        do_free(u8(in) % NSLOTS);
        i = free_slot();
    }
    slot_t *s = &slots[i];
    size_t n = pick_size(in), align = 0;
    gsnap_t before;
    gauges(before.g);
    void *p = NULL;
    errno = 0;
    if (fail) atomic_store(&hak_os_fail_next, fail);
    if (kind == OP_ALLOC) {
        p = hak_alloc(n);
    } else if (kind == OP_CALLOC) {
        size_t k = 1 + u8(in) % 4, each = n / k;
        if (u8(in) == 0xff) each = SIZE_MAX / 2;            /* n * size overflow */
        size_t total;
        int ovf = __builtin_mul_overflow(k, each, &total);
        p = hak_calloc(k, each);
        if (ovf) {
            CHECK(p == NULL && errno == ENOMEM, "calloc(%zu, %zu) overflow gave %p errno %d", k, each, p, errno);
            atomic_store(&hak_os_fail_next, 0);
            return;
        }
        n = total;
    } else {
        align = pick_align(in);
        int valid = align && (align & (align - 1)) == 0 && align % sizeof(void *) == 0;
        void *out = (void *)0x1;
        errno = 1234;
        int rc = hak_memalign(&out, align, n);
        CHECK(rc == 0 || errno == 1234, "failed memalign changed errno to %d", errno);
        if (!valid) {
            CHECK(rc == EINVAL && out == (void *)0x1, "memalign(align %zu) gave %d", align, rc);
            atomic_store(&hak_os_fail_next, 0);
            return;
        }
        CHECK(rc == 0 || rc == ENOMEM, "memalign returned %d", rc);
        CHECK(rc == 0 || out == (void *)0x1, "memalign failed but wrote *out");
        p = rc == 0 ? out : NULL;
        if (rc != 0) errno = ENOMEM;
    }
    int injected = atomic_exchange(&hak_os_fail_next, 0) != fail;
    if (p == NULL) {
        CHECK(errno == ENOMEM, "allocation of %zu failed with errno %d", n, errno);
        CHECK(absurd(n) || injected, "allocation of %zu bytes failed without cause", n);
        check_unchanged(&before, "allocation");
        return;
    }
    CHECK(!absurd(n), "allocation of %zu bytes succeeded", n);
    s->p = p;
    s->n = n;
    s->align = align;
    s->seed = u8(in);
    s->live = 1;
    check_new_block(i, kind == OP_ALLOC ? "alloc" : kind == OP_CALLOC ? "calloc" : "memalign");
    if (kind == OP_CALLOC) check_zero(s->p, n);
    fill(s);
}

static void op_realloc(in_t *in, int fail) {
    int i = u8(in) % NSLOTS;
    slot_t *s = &slots[i];
    size_t n = pick_size(in);
    if (!s->live) {                                       /* realloc(NULL, n) = alloc */
        void *p = hak_realloc(NULL, n);
        if (p == NULL) {
            CHECK(absurd(n), "realloc(NULL, %zu) failed", n);
            return;
        }
        *s = (slot_t){.p = p, .n = n, .seed = u8(in), .live = 1};
        check_new_block(i, "realloc(NULL)");
        fill(s);
        return;
    }
    if (n == 0) {                                          /* realloc(p, 0) frees */
        verify(s->p, s->n, s->seed, s->n, "before realloc(p, 0)");
        CHECK(hak_realloc(s->p, 0) == NULL, "realloc(p, 0) did not return NULL");
        memset(s, 0, sizeof *s);
        return;
    }
    gsnap_t before;
    gauges(before.g);
    if (fail) atomic_store(&hak_os_fail_next, fail);
    errno = 0;
    unsigned char *q = hak_realloc(s->p, n);
    int injected = atomic_exchange(&hak_os_fail_next, 0) != fail;
    if (q == NULL) {
        CHECK(errno == ENOMEM, "realloc to %zu failed with errno %d", n, errno);
        CHECK(absurd(n) || injected, "realloc of %zu to %zu bytes failed without cause", s->n, n);
        check_unchanged(&before, "realloc");
        CHECK(hak_usable_size(s->p) == s->usable, "failed realloc changed the old block's size");
        verify(s->p, s->n, s->seed, s->n, "old block after a failed realloc");
        return;
    }
    CHECK(!absurd(n), "realloc to %zu bytes succeeded", n);
    size_t old_n = s->n;
    s->p = q;
    s->n = n;
    s->align = 0;
    verify(q, old_n, s->seed, n, "realloc");
    check_new_block(i, "realloc");
    s->seed = (uint8_t)(s->seed + 1);
    fill(s);
}

static void op_knob(in_t *in) {
    uint8_t which = u8(in);
    uint64_t v;
    switch (which % 4) {
    case 0: v = u16(in) % 640; break;                                   /* around the cap bound 512 */
    case 1: v = (uint64_t)u32(in) << (u8(in) % 12); break;              /* thresholds, any magnitude */
    case 2: v = (uint64_t)u32(in) << (u8(in) % 16); break;
    default: v = ~(uint64_t)0 >> (u8(in) % 64); break;
    }
    int knob = 1 + which / 4 % 4;      /* 1..3 valid, 4 invalid */
    int rc = hak_knob_set(knob, v);
    if (knob == 4) {
        CHECK(rc == -EINVAL, "unknown knob accepted: %d", rc);
        return;
    }
    uint64_t lo = knob == HAKMEM_KNOB_BATCH_THRESHOLD ? HAK_BATCH_THRESHOLD_MIN : 0;
    uint64_t hi = knob == HAKMEM_KNOB_RING_CAP ? HAK_RING_CAP_MAX
                  : knob == HAKMEM_KNOB_BATCH_THRESHOLD ? HAK_BATCH_THRESHOLD_MAX : ((uint64_t)1 << 40);
    int in_range = v >= lo && v <= hi;
    CHECK(rc == (in_range ? 0 : -ERANGE), "knob %d = %llu returned %d", knob, (unsigned long long)v, rc);
    uint64_t got = hak_knob_get(knob);
    CHECK(got == (in_range ? v : v < lo ? lo : hi), "knob %d = %llu reads back %llu", knob, (unsigned long long)v,
          (unsigned long long)got);
    check_knobs();
}

/* A request through the control block, as another process would post it. */
static void op_ctl(in_t *in) {
    hak_shm_control_t *c = &hak_seg->control;
    uint64_t flags = u8(in) & 7u;
    if (flags & HAK_CTL_TRIM && (u8(in) & 3)) flags &= ~(uint64_t)HAK_CTL_TRIM;
    uint64_t cap = (uint64_t)u32(in) << (u8(in) % 40);
    uint64_t thr = (uint64_t)u32(in) << (u8(in) % 40);
    uint64_t rej0 = atomic_load((_Atomic uint64_t *)&c->rejected);
    uint64_t seq = hak_shm_control_post(hak_seg, flags, cap, thr);
    hak_control_poll();
    CHECK(atomic_load((_Atomic uint64_t *)&c->applied_seq) == seq, "control request %llu not applied",
          (unsigned long long)seq);
    uint64_t rej = (flags & HAK_CTL_RING_CAP && cap > HAK_RING_CAP_MAX) +
                   (flags & HAK_CTL_BATCH_THRESHOLD && (thr < HAK_BATCH_THRESHOLD_MIN || thr > HAK_BATCH_THRESHOLD_MAX));
    CHECK(atomic_load((_Atomic uint64_t *)&c->rejected) - rej0 == rej, "rejected moved by %llu, want %llu",
          (unsigned long long)(atomic_load((_Atomic uint64_t *)&c->rejected) - rej0), (unsigned long long)rej);
    check_knobs();
}

static void reset_state(void) {
    atomic_store(&hak_os_fail_next, 0);
    hak_set_ring_cap(4);
    hak_set_batch_threshold((uint64_t)4 << 20);
    hak_knob_set(HAKMEM_KNOB_CACHE_MAX_BYTES, (uint64_t)1 << 30);
    hak_trim();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* tests/fuzz/run.sh runs the targets with HAKMEM_STATS=0 (counters in
     * private memory, no /dev/shm litter): the library reads it in its
     * constructor, before this function. */
    setenv("HAKMEM_VERBOSE", "0", 0);
    hak_free(hak_alloc(1));             /* initialise */
    large_min = (size_t)hak_seg->knobs.large_min;
    if (large_min < HAK_LARGE_MIN_MIN) large_min = HAK_LARGE_MIN_MIN;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    in_t in = {data, size, 0};
    reset_state();
    for (unsigned ops = 0; in.i < in.n && ops < 64; ops++) {
        uint8_t op = u8(&in);
        int fail = 0;
        if (op % OP_NOPS == OP_FAIL) {                       /* next op runs with injected failures */
            fail = 1 + u8(&in) % 3;
            op = u8(&in);
            if (op % OP_NOPS == OP_FAIL) op = OP_ALLOC;
        }
        switch (op % OP_NOPS) {
        case OP_ALLOC: case OP_CALLOC: case OP_MEMALIGN: op_alloc(&in, op % OP_NOPS, fail); break;
        case OP_REALLOC: op_realloc(&in, fail); break;
        case OP_FREE: {
            int i = u8(&in) % NSLOTS;
            if (slots[i].live) do_free(i);
            else hak_free(NULL);
            break;
        }
        case OP_KNOB: op_knob(&in); break;
        case OP_CTL: op_ctl(&in); break;
        case OP_TRIM: if (u8(&in) & 1) hak_trim(); else hak_flush(); break;
        default: break;
        }
        check_all_contents();
    }
    for (int i = 0; i < NSLOTS; i++)
        if (slots[i].live) do_free(i);
    int64_t g[HAK_NGAUGES];
    gauges(g);
    CHECK(g[HAK_G_bytes_live] == 0 && g[HAK_G_blocks_live] == 0, "everything freed but %lld bytes in %lld blocks live",
          (long long)g[HAK_G_bytes_live], (long long)g[HAK_G_blocks_live]);
    hak_trim();
    gauges(g);
    CHECK(g[HAK_G_bytes_mapped] == 0 && g[HAK_G_bytes_cached] == 0 && g[HAK_G_bytes_pending] == 0 &&
              g[HAK_G_blocks_cached] == 0 && g[HAK_G_blocks_pending] == 0,
          "after free-all + trim: mapped %lld cached %lld pending %lld", (long long)g[HAK_G_bytes_mapped],
          (long long)g[HAK_G_bytes_cached], (long long)g[HAK_G_bytes_pending]);
    CHECK(atomic_load(&hak_cached_bytes) == 0, "BigCache byte budget account is %lld after a trim",
          (long long)atomic_load(&hak_cached_bytes));
    static hak_snapshot_t snap;
    int rc = hak_shm_snapshot(hak_seg, &snap);
    CHECK(rc == 0, "snapshot of our own counters: %s", hak_shm_strerror(rc));
    return 0;
}
