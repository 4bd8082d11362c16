/*
 * fuzz_shm.c - libFuzzer target: the telemetry segment reader and the control
 * block, fed hostile bytes.
 *
 * The first input byte chooses what to do with the rest:
 *   bit 0  raw: the rest IS the segment image (mostly short or foreign files);
 *          else a valid segment is built and the rest is a list of patches
 *          (header fields, knob/control/kernel blocks, one thread slot, one
 *          size class, or any offset), so the fuzzer reaches the snapshot code
 *          with plausible headers and implausible contents;
 *   bit 1  unused (generations are always made even: an odd one makes the
 *          reader retry for its full 250 ms deadline and returns "busy", a
 *          path of a few lines that would otherwise eat most of the fuzzing
 *          time; tests/integration/security.sh checks that bounded wait);
 *   bit 2  also go through a file: the image is written to a private temp
 *          file and opened with hak_shm_open_path (mmap, fstat checks), then
 *          snapshot and a control request on the mapping;
 *   bit 3  that file gets mode 0644 (must be refused: EACCES);
 *   bit 4  post the first 32 bytes of the input as a control request into this
 *          process's own control block and let the allocator apply it: the
 *          knobs must stay inside their bounds whatever was written;
 *   bits 5-7 the image length: exact, shorter, longer, or a few bytes.
 * Checks: every reader call returns 0 or one of the documented errors, in
 * bounded time, without touching memory outside the image (ASan); a
 * successful snapshot has a terminated printable comm, nclasses <= 64 and
 * non-negative gauges; a valid image opens from a 0600 file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hak_internal.h"

#define CHECK(cond, ...)                                                            \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "fuzz_shm: check failed at %s:%d: %s: ", __FILE__,      \
                    __LINE__, #cond);                                               \
            fprintf(stderr, __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                    \
            abort();                                                                \
        }                                                                           \
    } while (0)

#define IMG_MAX (sizeof(hak_shm_t) + 65536)

static unsigned char *img;         /* page-aligned scratch image */
static char tmpdir[64], tmpfile_path[96];
static hak_snapshot_t snap;

typedef struct {
    const uint8_t *d;
    size_t n, i;
} in_t;
static uint8_t u8(in_t *in) { return in->i < in->n ? in->d[in->i++] : 0; }
static uint16_t u16(in_t *in) { return (uint16_t)(u8(in) | (u8(in) << 8)); }
static uint32_t u32(in_t *in) { return (uint32_t)u16(in) | ((uint32_t)u16(in) << 16); }
static uint64_t u64(in_t *in) { return (uint64_t)u32(in) | ((uint64_t)u32(in) << 32); }

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A segment as the library stamps it, with counters that satisfy every invariant. */
static void build_valid(hak_shm_t *s) {
    memset(s, 0, sizeof *s);
    s->magic = HAK_SHM_MAGIC;
    s->version = HAK_SHM_VERSION;
    s->size = (uint32_t)sizeof *s;
    s->pid = (uint32_t)getpid();
    s->uid = (uint32_t)geteuid();
    s->mode = HAK_MODE_FIXED;
    s->nclasses = HAK_NCLASSES;
    s->ncounters = HAK_NCOUNTERS;
    s->ngauges = HAK_NGAUGES;
    memcpy(s->comm, "fuzz_shm", 9);
    s->knobs.ring_cap = 4;
    s->knobs.batch_threshold = (uint64_t)4 << 20;
    s->knobs.large_min = (uint64_t)64 << 10;
    for (uint32_t c = 0; c < HAK_NCLASSES; c++) {
        s->classes[c].size = hak_class_size(c);
        s->classes[c].cap = 4;
    }
    s->slots[0].owner_tid = UINT64_MAX;
    s->slots[1].owner_tid = UINT64_MAX;
    s->slots[2].owner_tid = 1234;
    s->slots[2].counter[HAK_C_large_allocs] = 10;
    s->slots[2].counter[HAK_C_cache_misses] = 10;
    s->slots[2].gauge_in[HAK_G_bytes_mapped] = (uint64_t)10 << 20;
}

static void patch(in_t *in, unsigned char *base, size_t len) {
    for (unsigned k = 0; k < 32 && in->i < in->n; k++) {
        uint8_t region = u8(in);
        size_t off;
        switch (region % 6) {
        case 0: off = u16(in) % offsetof(hak_shm_t, decision_head); break;              /* header, knobs, control, kernel */
        case 1: off = offsetof(hak_shm_t, slots) + (size_t)(u8(in) % HAK_SHM_SLOTS) * sizeof(hak_shm_slot_t) +
                      u16(in) % sizeof(hak_shm_slot_t); break;
        case 2: off = offsetof(hak_shm_t, classes) + (size_t)(u8(in) % HAK_SHM_CLASSES) * sizeof(hak_shm_class_t) +
                      u16(in) % sizeof(hak_shm_class_t); break;
        case 3: off = offsetof(hak_shm_t, decision_head) + u16(in) % 8192; break;
        default: off = u32(in); break;
        }
        off = off / ((region >> 3) & 1 ? 1 : 8) * ((region >> 3) & 1 ? 1 : 8);   /* mostly u64-aligned */
        uint8_t n = u8(in) % 17;
        if (n == 0) {                                   /* a special u64 */
            static const uint64_t special[] = {0, 1, 2, 3, UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 63,
                                               (uint64_t)INT64_MAX, 0xffffffffu, 0x80000000u, HAK_SHM_CLASSES + 1,
                                               HAK_SHM_MAGIC};
            uint64_t v = special[u8(in) % (sizeof special / sizeof special[0])];
            if (off < len) memcpy(base + off, &v, off + 8 <= len ? 8 : len - off);
            continue;
        }
        for (uint8_t j = 0; j < n; j++) {
            uint8_t b = u8(in);
            if (off + j < len) base[off + j] = b;
        }
    }
}

static void even_gens(hak_shm_t *s) {
    s->fold_gen &= ~1ull;
    s->knobs.gen &= ~1ull;
    s->kernel.gen &= ~1ull;
    for (unsigned i = 0; i < HAK_SHM_CLASSES; i++) s->classes[i].gen &= ~1ull;
    for (unsigned i = 0; i < HAK_SHM_SLOTS; i++) s->slots[i].gen &= ~HAK_SHM_SLOT_BUSY(i);
}

static int known_err(int rc) { return rc <= 0 && rc >= -HAK_SHM_ESRCH; }

static void check_snapshot(int rc, const char *what) {
    CHECK(rc == 0 || rc == -HAK_SHM_ECORRUPT || rc == -HAK_SHM_EBUSY, "%s: snapshot returned %d", what, rc);
    if (rc != 0) return;
    CHECK(snap.nclasses <= HAK_SHM_CLASSES, "%s: nclasses %u accepted", what, snap.nclasses);
    CHECK(memchr(snap.comm, 0, sizeof snap.comm) != NULL, "%s: comm not terminated", what);
    for (const char *p = snap.comm; *p; p++)
        CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f, "%s: control character in comm", what);
    for (int k = 0; k < HAK_NGAUGES; k++) CHECK(snap.gauge[k] >= 0, "%s: gauge %d negative", what, k);
}

static void control_block(in_t *in) {
    hak_shm_control_t *c = &hak_seg->control;
    uint64_t seq = u64(in), flags = u64(in), cap = u64(in), thr = u64(in);
    uint64_t prev = atomic_load((_Atomic uint64_t *)&c->applied_seq);
    atomic_store((_Atomic uint64_t *)&c->flags, flags);
    atomic_store((_Atomic uint64_t *)&c->ring_cap, cap);
    atomic_store((_Atomic uint64_t *)&c->batch_threshold, thr);
    atomic_store((_Atomic uint64_t *)&c->seq, seq);
    void *p = hak_alloc((size_t)1 << 20);             /* polls the control block */
    CHECK(p != NULL, "allocation after a control request failed");
    memset(p, 0x5a, (size_t)1 << 20);
    hak_free(p);
    uint64_t rc = hak_knob_get(HAKMEM_KNOB_RING_CAP), rt = hak_knob_get(HAKMEM_KNOB_BATCH_THRESHOLD);
    CHECK(rc <= HAK_RING_CAP_MAX, "control request left ring cap %llu", (unsigned long long)rc);
    CHECK(rt >= HAK_BATCH_THRESHOLD_MIN && rt <= HAK_BATCH_THRESHOLD_MAX, "control request left threshold %llu",
          (unsigned long long)rt);
    CHECK(atomic_load((_Atomic uint64_t *)&c->applied_seq) == seq, "control request %llu not applied",
          (unsigned long long)seq);
    if (seq != prev && (flags & HAK_CTL_RING_CAP)) CHECK(rc == (cap > HAK_RING_CAP_MAX ? HAK_RING_CAP_MAX : cap), "ring cap not applied");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* HAKMEM_STATS=0 (tests/fuzz/run.sh): this process's control block is private memory */
    hak_free(hak_alloc(1));
    img = mmap(NULL, IMG_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (img == MAP_FAILED) abort();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fuzz_shm.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) abort();
    snprintf(tmpfile_path, sizeof tmpfile_path, "%s/hakmem.seg", tmpdir);
    return 0;
}

__attribute__((destructor)) static void cleanup(void) {
    if (tmpfile_path[0]) unlink(tmpfile_path);
    if (tmpdir[0]) rmdir(tmpdir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    in_t in = {data, size, 0};
    uint8_t f = u8(&in);
    size_t len;
    if (f & 1) {                                           /* raw image */
        len = size - in.i < IMG_MAX ? size - in.i : IMG_MAX;
        memcpy(img, data + in.i, len);
        in.i += len;
    } else {
        build_valid((hak_shm_t *)img);
        memset(img + sizeof(hak_shm_t), 0, IMG_MAX - sizeof(hak_shm_t));
        switch ((f >> 5) % 4) {
        case 1: len = sizeof(hak_shm_t) - 1 - u16(&in) % sizeof(hak_shm_t); break;
        case 2: len = sizeof(hak_shm_t) + u16(&in); break;
        case 3: len = u8(&in) % 40; break;
        default: len = sizeof(hak_shm_t); break;
        }
        uint8_t *ctl = NULL;
        if (f & 16) {                                      /* control request bytes come first */
            ctl = (uint8_t *)data + in.i;
            in.i = in.i + 32 <= in.n ? in.i + 32 : in.n;
        }
        patch(&in, img, IMG_MAX);
        even_gens((hak_shm_t *)img);
        if (ctl) {
            in_t cin = {ctl, (size_t)(data + in.n - ctl) < 32 ? (size_t)(data + in.n - ctl) : 32, 0};
            control_block(&cin);
        }
    }

    uint64_t t0 = mono_ms();
    int rc = hak_shm_validate(img, len);
    CHECK(known_err(rc), "validate returned %d", rc);
    if (rc == 0) {
        CHECK(len >= sizeof(hak_shm_t), "validate accepted %zu bytes", len);
        check_snapshot(hak_shm_snapshot((const hak_shm_t *)img, &snap), "image");
    }
    CHECK(mono_ms() - t0 < 2000, "reader took %llu ms", (unsigned long long)(mono_ms() - t0));

    if (f & 4) {
        int fd = open(tmpfile_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        CHECK(fd >= 0, "temp file: %s", strerror(errno));
        CHECK(fchmod(fd, (f & 8) ? 0644 : 0600) == 0, "fchmod");
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(fd, img + done, len - done);
            CHECK(w > 0, "write: %s", strerror(errno));
            done += (size_t)w;
        }
        close(fd);
        hak_shm_handle_t h;
        t0 = mono_ms();
        int orc = hak_shm_open_path(tmpfile_path, &h);
        CHECK(known_err(orc), "open_path returned %d", orc);
        if (f & 8) CHECK(orc == -HAK_SHM_EACCES, "a mode 0644 segment was accepted (%d)", orc);
        else if (rc == 0) CHECK(orc == 0, "a valid image was refused from a file: %s", hak_shm_strerror(orc));
        if (orc == 0) {
            CHECK(h.shm != NULL && h.map_size == len && h.fd >= 0, "handle");
            check_snapshot(hak_shm_snapshot(h.shm, &snap), "file");
            uint64_t seq0 = h.shm->control.seq;
            uint64_t seq = hak_shm_control_post(h.shm, HAK_CTL_RING_CAP, 8, 0);
            CHECK(seq == seq0 + 1, "control post");
            hak_shm_close(&h);
            CHECK(h.shm == NULL && h.fd < 0, "close");
        } else {
            CHECK(h.shm == NULL && h.fd < 0, "a refused open left a mapping or an fd");
        }
        CHECK(mono_ms() - t0 < 2000, "open+snapshot took %llu ms", (unsigned long long)(mono_ms() - t0));
        unlink(tmpfile_path);
    }
    return 0;
}
