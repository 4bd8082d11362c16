/* test_shm.c - the telemetry segment: layout of include/hakmem/shm.h, the
 * reader (src/shm_read.c) against hand-made good and corrupted segment files,
 * the control block as seen by the library (clamping), and readers hammering
 * this process's live segment while threads allocate: every accepted snapshot
 * keeps the invariants and no counter ever goes backwards (no torn snapshot). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "hakmem/shm.h"

#include "hak_internal.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define UNDER_VALGRIND() 0
#endif
/* ThreadSanitizer slows the workers and the reader ~10x: ask for less. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------
static void test_layout(void **state) {
    (void)state;
    /* the header never moves: old readers must recognise new segments */
    assert_int_equal(offsetof(hak_shm_t, magic), 0);
    assert_int_equal(offsetof(hak_shm_t, version), 8);
    assert_int_equal(offsetof(hak_shm_t, size), 12);
    assert_int_equal(offsetof(hak_shm_t, pid), 16);
    assert_int_equal(offsetof(hak_shm_t, uid), 20);
    assert_int_equal(offsetof(hak_shm_t, mode), 24);
    assert_int_equal(offsetof(hak_shm_t, nclasses), 28);
    assert_int_equal(offsetof(hak_shm_t, ncounters), 32);
    assert_int_equal(offsetof(hak_shm_t, ngauges), 36);
    assert_int_equal(offsetof(hak_shm_t, start_ns), 40);
    assert_int_equal(HAK_SHM_MAGIC & 0xffffffffffffull, 0x4d454d4b4148ull);   /* "HAKMEM" */
    assert_memory_equal(&(uint64_t){HAK_SHM_MAGIC}, "HAKMEM\0\0", 8);       /* little endian */
    /* the reader copies these blocks as arrays of u64 words under their gen */
    assert_int_equal(sizeof(hak_shm_slot_t) % 8, 0);
    assert_int_equal(sizeof(hak_shm_class_t) % 8, 0);
    assert_int_equal(sizeof(hak_shm_knobs_t) % 8, 0);
    assert_int_equal(sizeof(hak_shm_kernel_t) % 8, 0);
    assert_int_equal(sizeof(hak_shm_control_t) % 8, 0);
    assert_int_equal(offsetof(hak_shm_slot_t, gen), 0);
    assert_int_equal(offsetof(hak_shm_class_t, gen), 0);
    assert_int_equal(offsetof(hak_shm_knobs_t, gen), 0);
    assert_int_equal(offsetof(hak_shm_kernel_t, gen), 0);
    /* every slot field fits: gen, owner, counters, gauge in/out */
    assert_true(sizeof(hak_shm_slot_t) >= 8 * (2 + HAK_NCOUNTERS + 2 * HAK_NGAUGES));
    assert_int_equal(sizeof(hak_shm_slot_t) % 64, 0);
    assert_int_equal(sizeof(hak_shm_class_t) % 64, 0);
    assert_int_equal(offsetof(hak_shm_t, slots) % 64, 0);
    assert_int_equal(offsetof(hak_shm_t, classes) % 64, 0);
    assert_int_equal(offsetof(hak_shm_t, decisions) % 8, 0);
    assert_int_equal(sizeof(hak_shm_decision_t), 64);
    /* the slots end the segment, 128 x 576 bytes of them (tests/integration/stat.sh garbles them there) */
    assert_int_equal(sizeof(hak_shm_t) - offsetof(hak_shm_t, slots), 128 * 576);
    assert_int_equal(offsetof(hak_shm_t, slots_used), offsetof(hak_shm_t, tune_signal) + 8);
    assert_int_equal(sizeof(hak_shm_t) % 64, 0);
    /* the slots are the last member: the reader relies on size covering them */
    assert_int_equal(offsetof(hak_shm_t, slots) + sizeof(((hak_shm_t *)0)->slots), sizeof(hak_shm_t));
    assert_true(HAK_SHM_SLOTS >= 3);                 /* retired, shared, one thread at least */
    assert_true(HAK_NCLASSES <= HAK_SHM_CLASSES);
    assert_true(sizeof(hak_shm_t) < (1u << 20));     /* a small segment */
    /* reason r of enum hak_evict_reason is counter evict_* number r */
    assert_int_equal(HAK_C_evict_cap_lowered - HAK_C_evict_ring_full, HAK_EVICT_CAP_LOWERED);
    assert_int_equal(HAK_C_evict_budget - HAK_C_evict_ring_full, HAK_EVICT_BUDGET);
    assert_int_equal(HAK_C_evict_idle_trim - HAK_C_evict_ring_full, HAK_EVICT_IDLE_TRIM);
    assert_int_equal(HAK_C_evict_uncacheable - HAK_C_evict_ring_full, HAK_EVICT_UNCACHEABLE);
    assert_int_equal(HAK_EVICT_RING_FULL, 0);
}

static bool is_ident(const char *s) {
    if (s == NULL || !(*s >= 'a' && *s <= 'z')) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/* The name arrays are the X-macro lists, in order, once each. */
static void test_names(void **state) {
    (void)state;
#define X_ONE(name, help) +1
#define X_STR(name, help) #name,
    enum { NC = 0 HAK_COUNTERS(X_ONE), NG = 0 HAK_GAUGES(X_ONE) };
    static const char *const cnames[] = {HAK_COUNTERS(X_STR)};
    static const char *const gnames[] = {HAK_GAUGES(X_STR)};
#undef X_ONE
#undef X_STR
    assert_int_equal(NC, HAK_NCOUNTERS);
    assert_int_equal(NG, HAK_NGAUGES);
    assert_int_equal(sizeof hak_counter_names / sizeof hak_counter_names[0], HAK_NCOUNTERS);
    assert_int_equal(sizeof hak_gauge_names / sizeof hak_gauge_names[0], HAK_NGAUGES);
    for (int i = 0; i < HAK_NCOUNTERS; i++) {
        assert_string_equal(hak_counter_names[i], cnames[i]);
        assert_true(is_ident(hak_counter_names[i]));
        assert_non_null(hak_counter_help[i]);
        assert_true(strlen(hak_counter_help[i]) > 5);
        assert_null(strchr(hak_counter_help[i], '\n'));
        for (int j = 0; j < i; j++) assert_string_not_equal(hak_counter_names[i], hak_counter_names[j]);
        for (int j = 0; j < HAK_NGAUGES; j++) assert_string_not_equal(hak_counter_names[i], hak_gauge_names[j]);
        /* effect counters (read first by the snapshot) are Batch/munmap/mremap-drop results */
        if (HAK_COUNTER_IS_EFFECT(i))
            assert_true(strncmp(hak_counter_names[i], "batch_", 6) == 0 ||
                        strncmp(hak_counter_names[i], "munmap_", 7) == 0 ||
                        strncmp(hak_counter_names[i], "warm_rescued", 12) == 0 ||
                        strcmp(hak_counter_names[i], "mremap_dropped_bytes") == 0);
    }
    for (int i = 0; i < HAK_NGAUGES; i++) {
        assert_string_equal(hak_gauge_names[i], gnames[i]);
        assert_true(is_ident(hak_gauge_names[i]));
        assert_true(strlen(hak_gauge_help[i]) > 5);
        for (int j = 0; j < i; j++) assert_string_not_equal(hak_gauge_names[i], hak_gauge_names[j]);
    }
    /* what the issue requires is there */
    static const char *const required[] = {
        "large_allocs", "large_frees", "cache_hits", "cache_misses", "cache_puts", "evict_ring_full",
        "evict_cap_lowered", "evict_budget", "evict_idle_trim", "batch_adds", "batch_flushes",
        "batch_blocks_flushed", "batch_bytes_flushed", "batch_ranges_flushed", "mmap_calls", "munmap_calls",
        "madvise_calls", "mremap_calls",
    };
    for (size_t r = 0; r < sizeof required / sizeof required[0]; r++) {
        bool found = false;
        for (int i = 0; i < HAK_NCOUNTERS; i++) found |= strcmp(hak_counter_names[i], required[r]) == 0;
        if (!found) fail_msg("counter %s missing", required[r]);
    }
    /* every error has its own text */
    for (int e = 0; e <= HAK_SHM_ESRCH; e++) {
        assert_true(strlen(hak_shm_strerror(-e)) > 1);
        assert_string_equal(hak_shm_strerror(-e), hak_shm_strerror(e));
        for (int f = 0; f < e; f++) assert_string_not_equal(hak_shm_strerror(e), hak_shm_strerror(f));
    }
    assert_string_equal(hak_shm_strerror(-HAK_SHM_ESHORT), "truncated segment");
    assert_string_equal(hak_mode_name(HAK_MODE_FIXED), "fixed");
    assert_string_equal(hak_mode_name(HAK_MODE_EVOLVING), "evolving");
    assert_string_equal(hak_mode_name(HAK_MODE_OFF), "off");
    assert_string_equal(hak_mode_name(77), "unknown");
}

// ---------------------------------------------------------------------------
// Reader against hand-made segment files
// ---------------------------------------------------------------------------
static char tmpdir[64];

static int group_setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_shm.XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Path of name in the temp dir (two calls may be used in one expression). */
static const char *tpath(const char *name) {
    static char p[2][128];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

/* A valid, empty segment image of len bytes (>= sizeof(hak_shm_t)). */
static hak_shm_t *img_new(size_t len) {
    hak_shm_t *s = aligned_alloc(64, hak_align_up(len, 64));    /* the struct is 64-byte aligned */
    assert_non_null(s);
    memset(s, 0, len);
    s->magic = HAK_SHM_MAGIC;
    s->version = HAK_SHM_VERSION;
    s->size = (uint32_t)sizeof(hak_shm_t);
    s->pid = (uint32_t)getpid();
    s->uid = (uint32_t)geteuid();
    s->mode = HAK_MODE_FIXED;
    s->nclasses = HAK_NCLASSES;
    s->ncounters = HAK_NCOUNTERS;
    s->ngauges = HAK_NGAUGES;
    snprintf(s->comm, sizeof s->comm, "fake");
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) s->classes[c].size = hak_class_size(c);
    return s;
}

static void write_file(const char *path, const void *buf, size_t len, mode_t mode) {
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* Write img (len bytes) to a file and read it: open_path, then snapshot. */
static int roundtrip(const void *img, size_t len, hak_snapshot_t *out) {
    const char *p = tpath("seg");
    write_file(p, img, len, 0600);
    hak_shm_handle_t h;
    int rc = hak_shm_open_path(p, &h);
    if (rc != 0) {
        assert_null(h.shm);
        assert_int_equal(h.fd, -1);
        return rc;
    }
    hak_snapshot_t tmp;
    rc = hak_shm_snapshot(h.shm, out ? out : &tmp);
    hak_shm_close(&h);
    return rc;
}

/* A consistent history in two slots: 10 allocs (4 hits, 6 misses), 10 frees,
 * 7 puts, 3 ring-full evictions, 2 of them flushed. */
static void fill_consistent(hak_shm_t *s) {
    uint64_t *a = s->slots[0].counter, *b = s->slots[5].counter;
    a[HAK_C_large_allocs] = 6; b[HAK_C_large_allocs] = 4;
    a[HAK_C_cache_hits] = 1;   b[HAK_C_cache_hits] = 3;
    a[HAK_C_cache_misses] = 5; b[HAK_C_cache_misses] = 1;
    a[HAK_C_large_frees] = 6;  b[HAK_C_large_frees] = 4;
    a[HAK_C_cache_puts] = 5;   b[HAK_C_cache_puts] = 2;
    a[HAK_C_evict_ring_full] = 1; b[HAK_C_evict_ring_full] = 2;
    a[HAK_C_batch_adds] = 1;   b[HAK_C_batch_adds] = 2;
    a[HAK_C_batch_add_bytes] = 1 << 20; b[HAK_C_batch_add_bytes] = 2 << 20;
    b[HAK_C_batch_bytes_flushed] = 2 << 20;
    b[HAK_C_batch_blocks_flushed] = 2;
    a[HAK_C_batch_flushes] = 1;
    s->slots[0].gauge_in[HAK_G_bytes_cached] = 9 << 20;
    s->slots[5].gauge_out[HAK_G_bytes_cached] = 5 << 20;
    s->slots[0].gen = 10;
    s->slots[5].gen = 4;
}

static void test_reader_good(void **state) {
    (void)state;
    hak_shm_t *s = img_new(sizeof *s);
    hak_snapshot_t snap;
    assert_int_equal(roundtrip(s, sizeof *s, &snap), 0);
    assert_int_equal(snap.pid, (uint32_t)getpid());
    assert_string_equal(snap.comm, "fake");
    assert_int_equal(snap.nclasses, HAK_NCLASSES);
    for (int k = 0; k < HAK_NCOUNTERS; k++) assert_int_equal(snap.counter[k], 0);

    fill_consistent(s);
    snprintf(s->comm, sizeof s->comm, "bad\x01\x1b[2Jname");        /* control bytes are neutralised */
    s->knobs.ring_cap = 7;
    s->control.seq = 3;
    s->control.applied_seq = 2;
    assert_int_equal(roundtrip(s, sizeof *s, &snap), 0);
    assert_int_equal(snap.counter[HAK_C_large_allocs], 10);
    assert_int_equal(snap.counter[HAK_C_cache_hits], 4);
    assert_int_equal(snap.counter[HAK_C_batch_bytes_flushed], 2 << 20);
    assert_int_equal(snap.gauge[HAK_G_bytes_cached], 4 << 20);
    assert_int_equal(snap.knobs.ring_cap, 7);
    assert_int_equal(snap.control.seq, 3);
    assert_int_equal(snap.control.applied_seq, 2);
    assert_null(strchr(snap.comm, '\x1b'));
    assert_null(strchr(snap.comm, '\x01'));

    /* a newer writer with a bigger struct is tolerated */
    size_t big = sizeof *s + 8192;
    hak_shm_t *s2 = img_new(big);
    fill_consistent(s2);
    s2->size = (uint32_t)big;
    assert_int_equal(roundtrip(s2, big, &snap), 0);
    assert_int_equal(snap.counter[HAK_C_large_allocs], 10);
    free(s2);
    free(s);
}

static void test_reader_bad_header(void **state) {
    (void)state;
    hak_shm_t *s = img_new(sizeof *s);
    s->magic = 0x1122334455667788ull;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_EMAGIC);
    s->magic = HAK_SHM_MAGIC;
    s->version = HAK_SHM_VERSION + 1;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_EVERSION);
    s->version = 0;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_EVERSION);
    s->version = HAK_SHM_VERSION;
    s->size = (uint32_t)sizeof *s - 64;                      /* older/smaller layout claimed */
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ESHORT);
    s->size = (uint32_t)sizeof *s + 4096;                    /* claims more than the file holds */
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ESHORT);
    s->size = (uint32_t)sizeof *s;
    s->ncounters = HAK_NCOUNTERS + 1;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ECORRUPT);
    s->ncounters = HAK_NCOUNTERS;
    s->ngauges = 0;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ECORRUPT);
    s->ngauges = HAK_NGAUGES;
    s->nclasses = HAK_SHM_CLASSES + 1;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ECORRUPT);
    s->nclasses = UINT32_MAX;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ECORRUPT);
    s->nclasses = HAK_NCLASSES;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), 0);
    free(s);
}

static void test_reader_short(void **state) {
    (void)state;
    hak_shm_t *s = img_new(sizeof *s);
    assert_int_equal(roundtrip(s, sizeof *s / 2, NULL), -HAK_SHM_ESHORT);     /* ours, truncated */
    assert_int_equal(roundtrip(s, sizeof *s - 1, NULL), -HAK_SHM_ESHORT);
    assert_int_equal(roundtrip(s, 16, NULL), -HAK_SHM_ESHORT);
    assert_int_equal(roundtrip(s, 0, NULL), -HAK_SHM_ESHORT);                /* empty file */
    const char text[] = "#!/bin/sh\necho this is not a hakmem segment\n";
    assert_int_equal(roundtrip(text, sizeof text, NULL), -HAK_SHM_EMAGIC);  /* short and foreign */
    /* hak_shm_validate on memory images */
    assert_int_equal(hak_shm_validate(s, 0), -HAK_SHM_ESHORT);
    assert_int_equal(hak_shm_validate(s, 15), -HAK_SHM_ESHORT);
    assert_int_equal(hak_shm_validate(s, sizeof *s - 8), -HAK_SHM_ESHORT);
    assert_int_equal(hak_shm_validate(s, sizeof *s), 0);
    free(s);
}

/* Counters that no real history can produce are refused at snapshot time. */
static void test_reader_garbage_counters(void **state) {
    (void)state;
    hak_shm_t *s = img_new(sizeof *s);
    hak_snapshot_t snap;
    fill_consistent(s);
    assert_int_equal(roundtrip(s, sizeof *s, &snap), 0);

    s->slots[7].counter[HAK_C_large_allocs] = 1;             /* an allocation neither hit nor missed */
    assert_int_equal(roundtrip(s, sizeof *s, &snap), -HAK_SHM_ECORRUPT);
    s->slots[7].counter[HAK_C_large_allocs] = 0;
    s->slots[9].counter[HAK_C_batch_adds] = 1;               /* a Batch add without an eviction reason */
    assert_int_equal(roundtrip(s, sizeof *s, &snap), -HAK_SHM_ECORRUPT);
    s->slots[9].counter[HAK_C_batch_adds] = 0;
    s->slots[9].counter[HAK_C_evict_budget] = 1;             /* an eviction that never reached Batch */
    assert_int_equal(roundtrip(s, sizeof *s, &snap), -HAK_SHM_ECORRUPT);
    s->slots[9].counter[HAK_C_evict_budget] = 0;
    s->slots[HAK_SHM_SLOTS - 1].counter[HAK_C_batch_bytes_flushed] = 2 << 20;   /* flushed more than added */
    assert_int_equal(roundtrip(s, sizeof *s, &snap), -HAK_SHM_ECORRUPT);
    s->slots[HAK_SHM_SLOTS - 1].counter[HAK_C_batch_bytes_flushed] = 0;
    s->slots[3].gauge_out[HAK_G_bytes_pending] = 4096;       /* negative gauge */
    assert_int_equal(roundtrip(s, sizeof *s, &snap), -HAK_SHM_ECORRUPT);
    s->slots[3].gauge_out[HAK_G_bytes_pending] = 0;
    s->slots[3].gauge_in[HAK_G_blocks_live] = 5;            /* removed more than added, across slots */
    s->slots[8].gauge_out[HAK_G_blocks_live] = 6;
    assert_int_equal(roundtrip(s, sizeof *s, &snap), -HAK_SHM_ECORRUPT);
    s->slots[8].gauge_out[HAK_G_blocks_live] = 5;
    assert_int_equal(roundtrip(s, sizeof *s, &snap), 0);

    /* random garbage over every slot (even generations: "consistent" garbage) */
    uint64_t x = 0x243f6a8885a308d3ull;
    for (uint32_t i = 0; i < HAK_SHM_SLOTS; i++) {
        uint64_t *w = (uint64_t *)&s->slots[i];
        for (size_t k = 0; k < sizeof s->slots[i] / 8; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            w[k] = x;
        }
        s->slots[i].gen &= ~HAK_SHM_SLOT_BUSY(i);
        /* Gauge words stay below 2^48: the reader sums them in int64, and
         * bigger hostile values overflow it (undefined behaviour, reported
         * separately), which UBSan runs of this test would trip on. */
        for (int g = 0; g < HAK_NGAUGES; g++) {
            s->slots[i].gauge_in[g] &= 0xffffffffffffull;
            s->slots[i].gauge_out[g] &= 0xffffffffffffull;
        }
    }
    assert_int_equal(roundtrip(s, sizeof *s, &snap), -HAK_SHM_ECORRUPT);
    free(s);
}

/* slots_used bounds the slots read: 0 (a writer that does not keep it) means
 * all of them, more than there are is corrupt, and the slots past it are not
 * read at all (a busy one there does not hold the reader up). */
static void test_reader_slots_used(void **state) {
    (void)state;
    hak_shm_t *s = img_new(sizeof *s);
    hak_snapshot_t snap;
    fill_consistent(s);                                      /* slots 0 and 5 */
    s->slots[9].gen = 3;                                     /* a writer stuck inside, past the mark */
    s->slots[9].counter[HAK_C_large_allocs] = 1;             /* and counts no history explains */
    s->slots_used = 6;
    assert_int_equal(roundtrip(s, sizeof *s, &snap), 0);
    assert_int_equal(snap.counter[HAK_C_large_allocs], 10);
    s->slots_used = 5;                                       /* slot 5 is left out: its cause-less effects */
    assert_int_equal(roundtrip(s, sizeof *s, &snap), 0);
    assert_int_equal(snap.counter[HAK_C_large_allocs], 6);
    s->slots_used = 0;                                       /* all slots: slot 9 is read */
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_EBUSY);
    s->slots[9].gen = 4;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ECORRUPT);
    s->slots[9].counter[HAK_C_large_allocs] = 0;
    assert_int_equal(roundtrip(s, sizeof *s, &snap), 0);
    assert_int_equal(snap.counter[HAK_C_large_allocs], 10);
    s->slots_used = HAK_SHM_SLOTS;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), 0);
    s->slots_used = HAK_SHM_SLOTS + 1;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ECORRUPT);
    s->slots_used = UINT64_MAX;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_ECORRUPT);
    free(s);
}

/* A writer that never finishes (odd generation) gives "busy" within the time limit. */
static void test_reader_busy(void **state) {
    (void)state;
    hak_shm_t *s = img_new(sizeof *s);
    fill_consistent(s);
    struct timespec t0, t1;
    s->slots[5].gen = 5;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_EBUSY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(dt < 2.0);                                   /* bounded: never stalls */
    s->slots[5].gen = 4;
    s->fold_gen = 1;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_EBUSY);
    s->fold_gen = 2;
    s->classes[3].gen = 7;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_EBUSY);
    s->classes[3].gen = 8;
    s->knobs.gen = 1;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), -HAK_SHM_EBUSY);
    s->knobs.gen = 0;
    assert_int_equal(roundtrip(s, sizeof *s, NULL), 0);
    free(s);
}

static void test_reader_not_regular(void **state) {
    (void)state;
    hak_shm_handle_t h;
    hak_shm_t *s = img_new(sizeof *s);
    write_file(tpath("good"), s, sizeof *s, 0600);
    assert_int_equal(hak_shm_open_path(tpath("good"), &h), 0);
    hak_shm_close(&h);

    assert_int_equal(mkfifo(tpath("fifo"), 0600), 0);
    assert_int_equal(hak_shm_open_path(tpath("fifo"), &h), -HAK_SHM_EMAGIC);
    assert_int_equal(hak_shm_open_path("/dev/null", &h), -HAK_SHM_EMAGIC);
    assert_int_equal(mkdir(tpath("dir"), 0700), 0);
    assert_true(hak_shm_open_path(tpath("dir"), &h) < 0);           /* refused (EIO today, see report) */
    assert_int_equal(symlink(tpath("good"), tpath("link")), 0);
    assert_int_equal(hak_shm_open_path(tpath("link"), &h), -HAK_SHM_EACCES);   /* never followed */
    write_file(tpath("open"), s, sizeof *s, 0644);
    assert_int_equal(hak_shm_open_path(tpath("open"), &h), -HAK_SHM_EACCES);   /* must be 0600 */
    assert_int_equal(hak_shm_open_path(tpath("nothing-here"), &h), -HAK_SHM_ENOENT);
    assert_int_equal(hak_shm_open_pid(0, &h), -HAK_SHM_ESRCH);
    assert_int_equal(hak_shm_open_pid(-5, &h), -HAK_SHM_ESRCH);
    assert_int_equal(hak_shm_open_pid(INT32_MAX, &h), -HAK_SHM_ESRCH);
    free(s);
}

// ---------------------------------------------------------------------------
// This process's live segment
// ---------------------------------------------------------------------------
static int open_self(hak_shm_handle_t *h) {
    void *p = hak_alloc(1 << 20);       /* initialises the library (creates the segment) */
    hak_free(p);
    return hak_shm_open_pid((int)getpid(), h);
}

/* Wait (at most 2 s) until the library has applied request seq. */
static bool wait_applied(hak_shm_t *shm, uint64_t seq) {
    for (int i = 0; i < 2000; i++) {
        if (atomic_load((_Atomic uint64_t *)&shm->control.applied_seq) >= seq) return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* The library applies control requests (from its background thread, or on the
 * next large malloc/free), and clamps hostile values into the knob bounds. */
static void test_control_block(void **state) {
    (void)state;
    hak_shm_handle_t h;
    int rc = open_self(&h);
    if (rc == -HAK_SHM_ENOENT || rc == -HAK_SHM_EACCES) skip();   /* no /dev/shm here */
    assert_int_equal(rc, 0);
    hak_snapshot_t s0, s1;
    assert_int_equal(hak_shm_snapshot(h.shm, &s0), 0);
    assert_int_equal(s0.pid, (uint32_t)getpid());
    assert_int_equal(s0.nclasses, HAK_NCLASSES);

    uint64_t seq = hak_shm_control_post(h.shm, HAK_CTL_RING_CAP | HAK_CTL_BATCH_THRESHOLD, 7, 3 << 20);
    assert_true(seq > s0.control.seq);
    hak_free(hak_alloc(200 << 10));
    assert_true(wait_applied(h.shm, seq));
    assert_int_equal(hak_shm_snapshot(h.shm, &s1), 0);
    assert_int_equal(s1.knobs.ring_cap, 7);
    assert_int_equal(s1.knobs.batch_threshold, 3 << 20);
    assert_int_equal(hak_knob_get(HAKMEM_KNOB_RING_CAP), 7);
    assert_int_equal(s1.counter[HAK_C_ctl_applied], s0.counter[HAK_C_ctl_applied] + 1);
    assert_int_equal(s1.control.rejected, s0.control.rejected);

    /* hostile values: clamped, counted as rejected */
    seq = hak_shm_control_post(h.shm, HAK_CTL_RING_CAP | HAK_CTL_BATCH_THRESHOLD, UINT64_MAX, 0);
    hak_free(hak_alloc(200 << 10));
    assert_true(wait_applied(h.shm, seq));
    assert_int_equal(hak_shm_snapshot(h.shm, &s1), 0);
    assert_int_equal(s1.knobs.ring_cap, HAK_RING_CAP_MAX);
    assert_int_equal(s1.knobs.batch_threshold, HAK_BATCH_THRESHOLD_MIN);
    assert_int_equal(s1.control.rejected, s0.control.rejected + 2);
    /* flags not set: values ignored */
    seq = hak_shm_control_post(h.shm, 0, 1, 1);
    hak_free(hak_alloc(200 << 10));
    assert_true(wait_applied(h.shm, seq));
    assert_int_equal(hak_shm_snapshot(h.shm, &s1), 0);
    assert_int_equal(s1.knobs.ring_cap, HAK_RING_CAP_MAX);
    /* trim: nothing cached afterwards */
    void *v[4];
    for (int i = 0; i < 4; i++) v[i] = hak_alloc(300 << 10);
    for (int i = 0; i < 4; i++) hak_free(v[i]);
    assert_int_equal(hak_shm_snapshot(h.shm, &s0), 0);
    assert_true(s0.gauge[HAK_G_bytes_cached] > 0);
    seq = hak_shm_control_post(h.shm, HAK_CTL_TRIM, 0, 0);
    void *p = hak_alloc(5 << 20);                            /* another class: a miss either way */
    assert_true(wait_applied(h.shm, seq));
    assert_int_equal(hak_shm_snapshot(h.shm, &s1), 0);
    assert_int_equal(s1.gauge[HAK_G_bytes_cached], 0);
    assert_int_equal(s1.counter[HAK_C_trims], s0.counter[HAK_C_trims] + 1);
    assert_int_equal(s1.counter[HAK_C_evict_idle_trim] - s0.counter[HAK_C_evict_idle_trim],
                     (uint64_t)s0.gauge[HAK_G_blocks_cached]);
    hak_free(p);
    /* back to the defaults for the other tests */
    hak_set_ring_cap(4);
    hak_set_batch_threshold(4 << 20);
    hak_shm_close(&h);
}

// ---------------------------------------------------------------------------
// Concurrency: readers never accept a torn snapshot
// ---------------------------------------------------------------------------
#define NWORKERS 3
static atomic_bool stop_flag;
static atomic_ulong worker_ops;
static atomic_int worker_fail;

static uint64_t xs(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *alloc_worker(void *arg) {
    uint64_t seed = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
    static const size_t sizes[] = {64 << 10, 96 << 10, 200 << 10, 1 << 20, 3 << 20};
    enum { HELD = 12 };
    void *held[HELD] = {0};
    size_t len[HELD] = {0};
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        unsigned i = (unsigned)(xs(&seed) % HELD);
        if (held[i] != NULL) {
            uint64_t a, b;
            memcpy(&a, held[i], 8);
            memcpy(&b, (char *)held[i] + len[i] - 8, 8);
            if (a != (uintptr_t)held[i] || b != ~(uintptr_t)held[i]) atomic_store(&worker_fail, 1);
            hak_free(held[i]);
            held[i] = NULL;
            continue;
        }
        uint64_t r = xs(&seed);
        len[i] = sizes[r % 5] + (size_t)((r >> 8) % 4096);
        if ((r >> 20) % 16 == 0) {                     /* over-aligned: never cacheable */
            if (hak_memalign(&held[i], 1 << 20, len[i]) != 0) held[i] = NULL;
        } else {
            held[i] = hak_alloc(len[i]);
        }
        if (held[i] == NULL) {
            atomic_store(&worker_fail, 2);
            break;
        }
        uintptr_t tag = (uintptr_t)held[i];
        memcpy(held[i], &tag, 8);
        tag = ~tag;
        memcpy((char *)held[i] + len[i] - 8, &tag, 8);
        atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
        /* let the reader find slots between operations: valgrind runs one
         * thread at a time, and under TSan every operation is ~10x longer, so
         * on 2 cores 4 busy workers keep some slot odd nearly all the time */
        if (UNDER_VALGRIND() || UNDER_TSAN) {
            struct timespec ts = {0, (UNDER_VALGRIND() ? 200 : 50) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    for (int i = 0; i < HELD; i++) hak_free(held[i]);
    return NULL;
}

/* Short-lived threads: their slots are folded into the retired slot on exit. */
static void *short_lived(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) hak_free(hak_alloc((size_t)(128 + i) << 10));
    if (UNDER_VALGRIND()) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}
static void *spawner(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, NULL) == 0) pthread_join(t, NULL);
    }
    return NULL;
}

/* Knob changes and trims while everything runs (cap lowered, trims, flushes). */
static void *knob_turner(void *arg) {
    hak_shm_t *shm = arg;
    uint64_t seed = 42;
    while (!atomic_load(&stop_flag)) {
        uint64_t r = xs(&seed);
        switch (r % 4) {
        case 0: hak_set_ring_cap(r % 9); break;
        case 1: hak_set_batch_threshold((uint64_t)(64 << 10) << ((r >> 8) % 8)); break;
        case 2: hak_shm_control_post(shm, HAK_CTL_RING_CAP, (r >> 4) % 9, 0); break;
        default: if ((r >> 16) % 4 == 0) hak_trim(); break;
        }
        struct timespec ts = {0, 500 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void check_snapshot(const hak_snapshot_t *s, const hak_snapshot_t *prev) {
    const uint64_t *c = s->counter;
    uint64_t ev = c[HAK_C_evict_ring_full] + c[HAK_C_evict_cap_lowered] + c[HAK_C_evict_budget] +
                  c[HAK_C_evict_idle_trim] + c[HAK_C_evict_uncacheable];
    if (c[HAK_C_cache_hits] + c[HAK_C_cache_misses] < c[HAK_C_large_allocs]) fail_msg("hits + misses < allocs");
    if (ev != c[HAK_C_batch_adds]) fail_msg("sum(evict_*) %lu != batch_adds %lu", (unsigned long)ev,
                                           (unsigned long)c[HAK_C_batch_adds]);
    if (c[HAK_C_batch_bytes_flushed] > c[HAK_C_batch_add_bytes]) fail_msg("flushed more bytes than added");
    if (c[HAK_C_batch_blocks_flushed] > c[HAK_C_batch_adds]) fail_msg("flushed more blocks than added");
    if (c[HAK_C_batch_flushes] > c[HAK_C_batch_blocks_flushed]) fail_msg("a flush without blocks");
    if (c[HAK_C_batch_ranges_flushed] > c[HAK_C_batch_blocks_flushed]) fail_msg("more ranges than blocks");
    if (c[HAK_C_large_frees] > c[HAK_C_large_allocs]) fail_msg("more frees than allocations");   /* own blocks only */
    for (int k = 0; k < HAK_NGAUGES; k++)
        if (s->gauge[k] < 0) fail_msg("gauge %s < 0", hak_gauge_names[k]);
    if (s->knobs.ring_cap > HAK_RING_CAP_MAX) fail_msg("ring cap out of bounds");
    if (s->knobs.batch_threshold < HAK_BATCH_THRESHOLD_MIN || s->knobs.batch_threshold > HAK_BATCH_THRESHOLD_MAX)
        fail_msg("batch threshold out of bounds");
    if (prev == NULL) return;
    /* sums of monotonic per-slot counters never go backwards (folds move, never lose) */
    for (int k = 0; k < HAK_NCOUNTERS; k++)
        if (c[k] < prev->counter[k])
            fail_msg("counter %s went back from %lu to %lu", hak_counter_names[k], (unsigned long)prev->counter[k],
                     (unsigned long)c[k]);
    for (uint32_t i = 0; i < s->nclasses; i++)
        if (s->classes[i].hits < prev->classes[i].hits || s->classes[i].misses < prev->classes[i].misses ||
            s->classes[i].puts < prev->classes[i].puts)
            fail_msg("class %u figures went back", i);
}

/* Which of the reader's invariants does snapshot s break? (s is filled even
 * when the reader refuses it.) */
static void describe_invariants(const hak_snapshot_t *s, char *buf, size_t n) {
    const uint64_t *c = s->counter;
    uint64_t ev = c[HAK_C_evict_ring_full] + c[HAK_C_evict_cap_lowered] + c[HAK_C_evict_budget] +
                  c[HAK_C_evict_idle_trim] + c[HAK_C_evict_uncacheable];
    int len = snprintf(buf, n, "hits+misses-allocs=%lld evictions-batch_adds=%lld added-flushed bytes=%lld",
                       (long long)(c[HAK_C_cache_hits] + c[HAK_C_cache_misses] - c[HAK_C_large_allocs]),
                       (long long)(ev - c[HAK_C_batch_adds]),
                       (long long)(c[HAK_C_batch_add_bytes] - c[HAK_C_batch_bytes_flushed]));
    for (int k = 0; k < HAK_NGAUGES && len > 0 && (size_t)len < n; k++)
        if (s->gauge[k] < 0) len += snprintf(buf + len, n - (size_t)len, " gauge %s=%lld", hak_gauge_names[k],
                                             (long long)s->gauge[k]);
}

static void test_concurrent_snapshots(void **state) {
    (void)state;
    hak_shm_handle_t h;
    int rc = open_self(&h);
    if (rc == -HAK_SHM_ENOENT || rc == -HAK_SHM_EACCES) skip();
    assert_int_equal(rc, 0);
    pthread_t w[NWORKERS], sp, kt;
    atomic_store(&stop_flag, false);
    for (uintptr_t i = 0; i < NWORKERS; i++) assert_int_equal(pthread_create(&w[i], NULL, alloc_worker, (void *)i), 0);
    assert_int_equal(pthread_create(&sp, NULL, spawner, NULL), 0);
    assert_int_equal(pthread_create(&kt, NULL, knob_turner, h.shm), 0);

    static hak_snapshot_t snap[2];       /* static: a failed assert leaks nothing */
    hak_snapshot_t *cur = &snap[0], *prev = &snap[1];
    unsigned accepted = 0, busy = 0, corrupt = 0, tries = 0;
    char why[256] = "";
    /* valgrind runs one thread at a time: there, a few snapshots (for memory
     * errors) are all one can ask; natively, thousands within 2-20 s. */
    const unsigned want = UNDER_VALGRIND() ? 10 : UNDER_TSAN ? 500 : 5000;
    const unsigned need = UNDER_VALGRIND() ? 5 : UNDER_TSAN ? 100 : 1000;
    const double max_s = UNDER_VALGRIND() ? 10.0 : 20.0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        double el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
        if ((accepted >= want && el > 2.0) || el > max_s) break;
        tries++;
        rc = hak_shm_snapshot(h.shm, cur);
        if (rc == -HAK_SHM_EBUSY) {
            busy++;
            continue;
        }
        if (rc == -HAK_SHM_ECORRUPT) {
            /* The reader refused the live segment: either it read a torn
             * state, or the library's own accounting broke an invariant.
             * Keep the first description for the failure message. */
            if (corrupt++ == 0) describe_invariants(cur, why, sizeof why);
            continue;
        }
        assert_int_equal(rc, 0);
        check_snapshot(cur, accepted ? prev : NULL);
        hak_snapshot_t *x = prev;
        prev = cur;
        cur = x;
        accepted++;
    }
    atomic_store(&stop_flag, true);
    for (int i = 0; i < NWORKERS; i++) pthread_join(w[i], NULL);
    pthread_join(sp, NULL);
    pthread_join(kt, NULL);
    print_message("      %u snapshots accepted, %u busy, %u refused as corrupt, %lu allocator ops\n", accepted, busy,
                  corrupt, (unsigned long)atomic_load(&worker_ops));
    assert_int_equal(atomic_load(&worker_fail), 0);
    if (corrupt != 0) fail_msg("%u live snapshots refused as corrupt; first: %s", corrupt, why);
    if (accepted < need) fail_msg("only %u snapshots accepted (%u busy) in %.0f s", accepted, busy, max_s);
    assert_true(atomic_load(&worker_ops) > (UNDER_VALGRIND() ? 10u : UNDER_TSAN ? 100u : 1000u));
    /* quiescent once the background thread has applied the last posted request:
     * the equalities hold exactly */
    uint64_t last = atomic_load((_Atomic uint64_t *)&h.shm->control.seq);
    if (!wait_applied(h.shm, last))
        fail_msg("control request %lu never acknowledged: control.applied_seq stays at %lu (two threads applied "
                 "overlapping requests and the older one stored its seq last)", (unsigned long)last,
                 (unsigned long)atomic_load((_Atomic uint64_t *)&h.shm->control.applied_seq));
    assert_int_equal(hak_shm_snapshot(h.shm, cur), 0);
    check_snapshot(cur, prev);
    const uint64_t *c = cur->counter;
    assert_int_equal(c[HAK_C_cache_hits] + c[HAK_C_cache_misses], c[HAK_C_large_allocs]);
    assert_int_equal(c[HAK_C_large_allocs] - c[HAK_C_large_frees], (uint64_t)cur->gauge[HAK_G_blocks_live]);
    assert_int_equal(c[HAK_C_batch_add_bytes] - c[HAK_C_batch_bytes_flushed] - c[HAK_C_warm_rescued_bytes],
                     (uint64_t)cur->gauge[HAK_G_bytes_pending]);
    assert_int_equal(c[HAK_C_bytes_mapped_total] + c[HAK_C_batch_gap_bytes] - c[HAK_C_munmap_bytes] -
                         c[HAK_C_mremap_dropped_bytes],
                     (uint64_t)cur->gauge[HAK_G_bytes_mapped]);
    /* every cached block of class i has the class size: the gauges must agree with the rings */
    uint64_t blocks = 0, bytes = 0;
    for (uint32_t i = 0; i < cur->nclasses; i++) {
        blocks += cur->classes[i].cached_blocks;
        bytes += cur->classes[i].cached_blocks * cur->classes[i].size;
    }
    assert_int_equal(blocks, (uint64_t)cur->gauge[HAK_G_blocks_cached]);
    assert_int_equal(bytes, (uint64_t)cur->gauge[HAK_G_bytes_cached]);
    hak_set_ring_cap(4);
    hak_set_batch_threshold(4 << 20);
    hak_shm_close(&h);
}

int main(void) {
    /* a known configuration, whatever the caller's environment says */
    setenv("HAKMEM_MODE", "fixed", 1);
    setenv("HAKMEM_STATS", "1", 1);
    unsetenv("HAKMEM_RING_CAP");
    unsetenv("HAKMEM_BATCH_THRESHOLD");
    unsetenv("HAKMEM_CACHE_MAX_BYTES");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_reader_good),
        cmocka_unit_test(test_reader_bad_header),
        cmocka_unit_test(test_reader_short),
        cmocka_unit_test(test_reader_garbage_counters),
        cmocka_unit_test(test_reader_slots_used),
        cmocka_unit_test(test_reader_busy),
        cmocka_unit_test(test_reader_not_regular),
        cmocka_unit_test(test_control_block),
        cmocka_unit_test(test_concurrent_snapshots),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
