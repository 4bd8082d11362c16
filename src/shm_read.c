/*
 * shm_read.c - the reader side of the telemetry segment, for hakmem-stat, the
 * tuner and the eBPF loader (not linked into the allocator's hot path).
 * Everything read from a segment is treated as hostile: bounded indexes,
 * bounded retries, invariants checked before a snapshot is accepted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"

#define X_NAME(name, help) #name,
#define X_HELP(name, help) help,
const char *const hak_counter_names[HAK_NCOUNTERS] = {HAK_COUNTERS(X_NAME)};
const char *const hak_counter_help[HAK_NCOUNTERS] = {HAK_COUNTERS(X_HELP)};
const char *const hak_gauge_names[HAK_NGAUGES] = {HAK_GAUGES(X_NAME)};
const char *const hak_gauge_help[HAK_NGAUGES] = {HAK_GAUGES(X_HELP)};

const char *hak_mode_name(uint32_t mode) {
    switch (mode) {
    case HAK_MODE_OFF: return "off";
    case HAK_MODE_FIXED: return "fixed";
    case HAK_MODE_EVOLVING: return "evolving";
    default: return "unknown";
    }
}

const char *hak_shm_strerror(int err) {
    switch (err < 0 ? -err : err) {
    case HAK_SHM_OK: return "ok";
    case HAK_SHM_ENOENT: return "no hakmem segment for that process (not running hakmem, or HAKMEM_STATS=0)";
    case HAK_SHM_EACCES: return "permission denied (segment owned by another user, or not mode 0600)";
    case HAK_SHM_EMAGIC: return "not a hakmem segment (bad magic)";
    case HAK_SHM_EVERSION: return "hakmem segment of another layout version";
    case HAK_SHM_ESHORT: return "truncated segment";
    case HAK_SHM_ECORRUPT: return "corrupt segment (counters violate their invariants)";
    case HAK_SHM_EBUSY: return "segment busy: no consistent snapshot within the time limit";
    case HAK_SHM_EIO: return "system error while opening the segment";
    case HAK_SHM_ESRCH: return "no such process";
    default: return "unknown error";
    }
}

static inline uint64_t ld(const uint64_t *p) {
    return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed);
}
static inline uint64_t ld_acq(const uint64_t *p) {
    return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_acquire);
}

int hak_shm_validate(const void *buf, size_t len) {
    const hak_shm_t *s = buf;
    if (len < offsetof(hak_shm_t, size) + sizeof s->size) return -HAK_SHM_ESHORT;
    if (s->magic != HAK_SHM_MAGIC) return -HAK_SHM_EMAGIC;
    if (s->version != HAK_SHM_VERSION) return -HAK_SHM_EVERSION;
    if (s->size < sizeof(hak_shm_t) || len < sizeof(hak_shm_t)) return -HAK_SHM_ESHORT;
    if (s->size > len) return -HAK_SHM_ESHORT;
    if (s->nclasses > HAK_SHM_CLASSES || s->ncounters != HAK_NCOUNTERS || s->ngauges != HAK_NGAUGES)
        return -HAK_SHM_ECORRUPT;
    return 0;
}

static int map_fd(int fd, hak_shm_handle_t *h, uid_t want_uid, bool check_uid) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -HAK_SHM_EIO;
    if (!S_ISREG(st.st_mode)) return -HAK_SHM_EMAGIC;
    if (check_uid && st.st_uid != want_uid) return -HAK_SHM_EACCES;
    if (st.st_mode & 077) return -HAK_SHM_EACCES;
    /* A segment being created is 0 bytes long between shm_open and
     * fallocate: give one that is short and blank 50 ms to reach its size. */
    for (int i = 0; (size_t)st.st_size < sizeof(hak_shm_t); i++) {
        /* distinguish "not ours at all" from "ours but short" */
        uint64_t magic = 0;
        ssize_t got = pread(fd, &magic, sizeof magic, 0);
        if (got == (ssize_t)sizeof magic && magic != 0 && magic != HAK_SHM_MAGIC) return -HAK_SHM_EMAGIC;
        if (i >= 50 || (got == (ssize_t)sizeof magic && magic == HAK_SHM_MAGIC)) return -HAK_SHM_ESHORT;
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
        if (fstat(fd, &st) != 0) return -HAK_SHM_EIO;
    }
    int writable = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR;
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return -HAK_SHM_EIO;
    /* A segment is stamped (magic last) right after it is created: one caught
     * in between reads magic 0 for a few microseconds.  Give it 50 ms. */
    for (int i = 0; i < 50 && ld_acq((const uint64_t *)p) == 0; i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    int rc = hak_shm_validate(p, (size_t)st.st_size);
    if (rc != 0) {
        munmap(p, (size_t)st.st_size);
        return rc;
    }
    h->shm = p;
    h->map_size = (size_t)st.st_size;
    return 0;
}

static int open_fd(const char *path) {
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS))
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    return fd;
}

static int errno_to_err(int e) {
    switch (e) {
    case ENOENT: return -HAK_SHM_ENOENT;
    case EACCES: case EPERM: case ELOOP: return -HAK_SHM_EACCES;
    default: return -HAK_SHM_EIO;
    }
}

int hak_shm_open_path(const char *path, hak_shm_handle_t *h) {
    memset(h, 0, sizeof *h);
    h->fd = -1;
    int fd = open_fd(path);
    if (fd < 0) return errno_to_err(errno);
    int rc = map_fd(fd, h, 0, false);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    h->fd = fd;
    h->pid = (int)h->shm->pid;
    return 0;
}

int hak_shm_open_pid(int pid, hak_shm_handle_t *h) {
    memset(h, 0, sizeof *h);
    h->fd = -1;
    if (pid <= 0) return -HAK_SHM_ESRCH;
    char path[64];
    struct stat pst;
    snprintf(path, sizeof path, "/proc/%d", pid);
    if (stat(path, &pst) != 0) return -HAK_SHM_ESRCH;
    snprintf(path, sizeof path, HAK_SHM_DIR "/" HAK_SHM_PREFIX "%d", pid);
    int fd = open_fd(path);
    if (fd < 0) return errno_to_err(errno);
    /* The segment must belong to the user who owns the process. */
    int rc = map_fd(fd, h, pst.st_uid, true);
    if (rc == 0 && (int)h->shm->pid != pid) rc = -HAK_SHM_ECORRUPT;
    if (rc != 0) {
        if (h->shm) munmap(h->shm, h->map_size);
        h->shm = NULL;
        close(fd);
        return rc;
    }
    h->fd = fd;
    h->pid = pid;
    return 0;
}

void hak_shm_close(hak_shm_handle_t *h) {
    if (h->shm) munmap(h->shm, h->map_size);
    if (h->fd >= 0) close(h->fd);
    h->shm = NULL;
    h->fd = -1;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Copy n u64 words guarded by *gen (seqlock).  0 or -EBUSY past the deadline. */
static int read_seq_busy(const uint64_t *gen, uint64_t busy, const void *src, void *dst, size_t n,
                         uint64_t deadline) {
    for (unsigned spin = 0;; spin++) {
        uint64_t g1 = ld_acq(gen);
        if ((g1 & busy) == 0) {
            const uint64_t *s = src;
            uint64_t *d = dst;
            for (size_t i = 0; i < n; i++) d[i] = ld(&s[i]);
            atomic_thread_fence(memory_order_acquire);
            if (ld(gen) == g1) return 0;
        }
        if ((spin & 63) == 63) {
            if (mono_ns() > deadline) return -HAK_SHM_EBUSY;
            sched_yield();
        }
    }
}

static int read_seq(const uint64_t *gen, const void *src, void *dst, size_t n, uint64_t deadline) {
    return read_seq_busy(gen, 1, src, dst, n, deadline);
}

int hak_shm_snapshot(const hak_shm_t *shm, hak_snapshot_t *out) {
    uint64_t deadline = mono_ns() + 250000000ull;   /* 250 ms */
    hak_shm_slot_t slot;
    memset(out, 0, sizeof *out);
    for (;;) {
        uint64_t f1 = ld_acq(&shm->fold_gen);
        if (f1 & 1) {
            if (mono_ns() > deadline) return -HAK_SHM_EBUSY;
            sched_yield();
            continue;
        }
        memset(out->counter, 0, sizeof out->counter);
        uint64_t gin[HAK_NGAUGES] = {0}, gout[HAK_NGAUGES] = {0};   /* unsigned: hostile values wrap, not UB */
        /* pass 0: effects (gauge_out, effect counters); pass 1: causes */
        for (int pass = 0; pass < 2; pass++) {
            /* Read again for the causes: a slot claimed after the first look
             * holds no effect pass 0 saw, but may hold the cause of one. */
            uint64_t nslots = ld_acq(&shm->slots_used);
            if (nslots > HAK_SHM_SLOTS) return -HAK_SHM_ECORRUPT;
            if (nslots == 0) nslots = HAK_SHM_SLOTS;          /* a writer that does not keep it */
            for (uint32_t i = 0; i < nslots; i++) {
                const hak_shm_slot_t *s = &shm->slots[i];
                int rc = read_seq_busy(&s->gen, HAK_SHM_SLOT_BUSY(i), s, &slot, sizeof slot / 8, deadline);
                if (rc != 0) return rc;
                for (int k = 0; k < HAK_NCOUNTERS; k++)
                    if ((HAK_COUNTER_IS_EFFECT(k) != 0) == (pass == 0)) out->counter[k] += slot.counter[k];
                for (int k = 0; k < HAK_NGAUGES; k++) {
                    if (pass == 0) gout[k] += slot.gauge_out[k];
                    else gin[k] += slot.gauge_in[k];
                }
            }
        }
        atomic_thread_fence(memory_order_acquire);
        if (ld(&shm->fold_gen) != f1) {            /* a thread exited meanwhile: take it again */
            if (mono_ns() > deadline) return -HAK_SHM_EBUSY;
            continue;
        }
        for (int k = 0; k < HAK_NGAUGES; k++) {
            if (gout[k] > gin[k] || gin[k] - gout[k] > (uint64_t)INT64_MAX) return -HAK_SHM_ECORRUPT;
            out->gauge[k] = (int64_t)(gin[k] - gout[k]);
        }
        break;
    }
    uint32_t nclasses = shm->nclasses;
    if (nclasses > HAK_SHM_CLASSES) return -HAK_SHM_ECORRUPT;
    for (uint32_t c = 0; c < nclasses; c++) {
        const hak_shm_class_t *cl = &shm->classes[c];
        int rc = read_seq(&cl->gen, cl, &out->classes[c], sizeof *cl / 8, deadline);
        if (rc != 0) return rc;
    }
    int rc = read_seq(&shm->knobs.gen, &shm->knobs, &out->knobs, sizeof out->knobs / 8, deadline);
    if (rc != 0) return rc;
    rc = read_seq(&shm->kernel.gen, &shm->kernel, &out->kernel, sizeof out->kernel / 8, deadline);
    if (rc != 0) return rc;
    const uint64_t *cs = (const uint64_t *)&shm->control;
    uint64_t *cd = (uint64_t *)&out->control;
    for (size_t i = 0; i < sizeof out->control / 8; i++) cd[i] = ld(&cs[i]);
    out->pid = shm->pid;
    out->uid = shm->uid;
    out->mode = shm->mode;
    out->nclasses = nclasses;
    out->start_ns = shm->start_ns;
    out->last_op_ns = shm->last_op_ns;
    out->peak_bytes_mapped = ld(&shm->peak_bytes_mapped);
    out->decision_head = ld(&shm->decision_head);
    memcpy(out->comm, shm->comm, sizeof out->comm);
    out->comm[sizeof out->comm - 1] = '\0';
    for (char *p = out->comm; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) *p = '?';
    out->taken_ns = mono_ns();

    /* Invariants that hold at every operation boundary. */
    const uint64_t *c = out->counter;
    uint64_t evictions = c[HAK_C_evict_ring_full] + c[HAK_C_evict_cap_lowered] + c[HAK_C_evict_budget] +
                         c[HAK_C_evict_idle_trim] + c[HAK_C_evict_uncacheable];
    if (c[HAK_C_cache_hits] + c[HAK_C_cache_misses] < c[HAK_C_large_allocs] || evictions != c[HAK_C_batch_adds] ||
        c[HAK_C_batch_bytes_flushed] + c[HAK_C_warm_rescued_bytes] > c[HAK_C_batch_add_bytes] ||
        c[HAK_C_batch_blocks_flushed] + c[HAK_C_warm_rescued] > c[HAK_C_batch_adds] ||
        c[HAK_C_warm_near] + c[HAK_C_warm_reshaped] + c[HAK_C_warm_rescued] > c[HAK_C_cache_misses])
        return -HAK_SHM_ECORRUPT;
    for (int k = 0; k < HAK_NGAUGES; k++)
        if (out->gauge[k] < 0) return -HAK_SHM_ECORRUPT;
    return 0;
}

/* Requesters serialise on control.post_lock (a pid-stamped word), so two
 * posters never interleave their writes.  A request still pending when the
 * next one is posted is merged, not overwritten: the flags add up, and only
 * the values of the new request's flags change.  A class request for another
 * class than a pending one waits (bounded) for the library to apply it.  A
 * lock left by a poster that died is taken over after 100 ms. */
static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void post_lock(hak_shm_control_t *c) {
    _Atomic uint64_t *l = (_Atomic uint64_t *)&c->post_lock;
    uint64_t me = (uint64_t)getpid(), t0 = mono_ms();
    for (;;) {
        uint64_t v = 0;
        if (atomic_compare_exchange_weak_explicit(l, &v, me, memory_order_acquire, memory_order_relaxed)) return;
        if (mono_ms() - t0 > 100 && atomic_compare_exchange_strong(l, &v, me)) return;   /* stale */
        sched_yield();
    }
}
static void post_unlock(hak_shm_control_t *c) {
    atomic_store_explicit((_Atomic uint64_t *)&c->post_lock, 0, memory_order_release);
}

static uint64_t post_locked(hak_shm_t *shm, uint64_t flags, const uint64_t *vals) {
    hak_shm_control_t *c = &shm->control;
    _Atomic uint64_t *seqp = (_Atomic uint64_t *)&c->seq;
    _Atomic uint64_t *applied = (_Atomic uint64_t *)&c->applied_seq;
    const uint64_t class_flags = HAK_CTL_CLASS_CAP | HAK_CTL_CLASS_THP;
    uint64_t pending = 0;
    for (uint64_t t0 = mono_ms();;) {
        bool open = atomic_load_explicit(seqp, memory_order_acquire) != atomic_load_explicit(applied, memory_order_acquire);
        pending = open ? atomic_load_explicit((_Atomic uint64_t *)&c->flags, memory_order_relaxed) : 0;
        /* one class slot: a pending request for another class must land first */
        if (!(flags & class_flags) || !(pending & class_flags) ||
            atomic_load_explicit((_Atomic uint64_t *)&c->class_id, memory_order_relaxed) == vals[2] ||
            mono_ms() - t0 > 200)
            break;
        post_unlock(c);
        sched_yield();
        post_lock(c);
    }
    if (flags & HAK_CTL_RING_CAP) atomic_store_explicit((_Atomic uint64_t *)&c->ring_cap, vals[0], memory_order_relaxed);
    if (flags & HAK_CTL_BATCH_THRESHOLD)
        atomic_store_explicit((_Atomic uint64_t *)&c->batch_threshold, vals[1], memory_order_relaxed);
    if (flags & class_flags) atomic_store_explicit((_Atomic uint64_t *)&c->class_id, vals[2], memory_order_relaxed);
    if (flags & HAK_CTL_CLASS_CAP) atomic_store_explicit((_Atomic uint64_t *)&c->class_cap, vals[3], memory_order_relaxed);
    if (flags & HAK_CTL_CLASS_THP) atomic_store_explicit((_Atomic uint64_t *)&c->class_thp, vals[4], memory_order_relaxed);
    atomic_store_explicit((_Atomic uint64_t *)&c->flags, flags | pending, memory_order_relaxed);
    uint64_t seq = atomic_fetch_add_explicit(seqp, 1, memory_order_release) + 1;
    /* Wake the library's background thread, which sleeps on the low 32 bits. */
    syscall(SYS_futex, (uint32_t *)&c->seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    return seq;
}

uint64_t hak_shm_control_post(hak_shm_t *shm, uint64_t flags, uint64_t ring_cap, uint64_t batch_threshold) {
    uint64_t vals[5] = {ring_cap, batch_threshold, 0, 0, 0};
    post_lock(&shm->control);
    uint64_t seq = post_locked(shm, flags & ~(uint64_t)(HAK_CTL_CLASS_CAP | HAK_CTL_CLASS_THP), vals);
    post_unlock(&shm->control);
    return seq;
}

uint64_t hak_shm_control_post_class(hak_shm_t *shm, uint64_t flags, uint64_t cls, uint64_t class_cap,
                                    uint64_t class_thp) {
    uint64_t vals[5] = {0, 0, cls, class_cap, class_thp};
    post_lock(&shm->control);
    uint64_t seq = post_locked(shm, flags & (HAK_CTL_CLASS_CAP | HAK_CTL_CLASS_THP | HAK_CTL_TRIM), vals);
    post_unlock(&shm->control);
    return seq;
}
