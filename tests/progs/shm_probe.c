/* shm_probe.c - a minimal segment reader/forger for tests/integration/security.sh,
 * built only on the reader API of hakmem/shm.h (src/shm_read.c), so the checks
 * do not depend on hakmem-stat's command line.
 *
 *   shm_probe open PID          open /dev/shm/hakmem.PID the way tools do
 *                               (owner, mode, size, layout checks) + snapshot
 *   shm_probe path FILE         the same for any file (no owner check)
 *   shm_probe knobs PID         print the knob values the process publishes
 *   shm_probe post PID FLAGS RING_CAP BATCH_THRESHOLD
 *                               post a raw control request (no validation on
 *                               this side: the library must clamp), wait up to
 *                               5 s for it to be applied, print the knobs
 *   shm_probe forge FILE KIND [PID]
 *                               write a segment image: valid, bigger,
 *                               random-valid-header, huge-nclasses, odd-gens,
 *                               odd-fold, short, size-lie, wrong-version,
 *                               bad-magic, negative-gauge, pid-mismatch
 *   shm_probe scribble FILE SECONDS
 *                               a hostile live writer: keeps rewriting the
 *                               generations and counters of FILE
 * Exit status: 0, or the hak_shm_err number of the refusal (1-9), 11 when a
 * control request was not applied in time, 20 on usage or system errors.
 * Every result is printed as "result: <code> <name>: <message> (<ms> ms)". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"

static const char *const err_names[] = {"OK", "ENOENT", "EACCES", "EMAGIC", "EVERSION", "ESHORT", "ECORRUPT", "EBUSY",
                                        "EIO", "ESRCH"};
static hak_snapshot_t snap;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int report(int rc, double t0) {
    int e = rc < 0 ? -rc : rc;
    printf("result: %d %s: %s (%.0f ms)\n", e, e < 10 ? err_names[e] : "?", hak_shm_strerror(rc), now_ms() - t0);
    return e;
}

static int open_and_snapshot(int pid, const char *path) {
    double t0 = now_ms();
    hak_shm_handle_t h;
    int rc = path ? hak_shm_open_path(path, &h) : hak_shm_open_pid(pid, &h);
    if (rc == 0) {
        rc = hak_shm_snapshot(h.shm, &snap);
        if (rc == 0)
            printf("pid %u uid %u mode %s comm '%s' nclasses %u ring_cap %llu batch_threshold %llu\n", snap.pid,
                   snap.uid, hak_mode_name(snap.mode), snap.comm, snap.nclasses,
                   (unsigned long long)snap.knobs.ring_cap, (unsigned long long)snap.knobs.batch_threshold);
        hak_shm_close(&h);
    }
    return report(rc, t0);
}

static int knobs(int pid, int print) {
    hak_shm_handle_t h;
    int rc = hak_shm_open_pid(pid, &h);
    for (int i = 0; rc == 0 && i < 20; i++) {
        rc = hak_shm_snapshot(h.shm, &snap);
        if (rc != -HAK_SHM_EBUSY) break;
    }
    if (rc == 0) hak_shm_close(&h);
    if (rc != 0) return report(rc, now_ms());
    if (print)
        printf("ring_cap=%llu batch_threshold=%llu rejected=%llu applied_seq=%llu\n",
               (unsigned long long)snap.knobs.ring_cap, (unsigned long long)snap.knobs.batch_threshold,
               (unsigned long long)snap.control.rejected, (unsigned long long)snap.control.applied_seq);
    return 0;
}

static int post(int pid, uint64_t flags, uint64_t cap, uint64_t thr) {
    hak_shm_handle_t h;
    int rc = hak_shm_open_pid(pid, &h);
    if (rc != 0) return report(rc, now_ms());
    uint64_t seq = hak_shm_control_post(h.shm, flags, cap, thr);
    double t0 = now_ms();
    while (atomic_load_explicit((_Atomic uint64_t *)&h.shm->control.applied_seq, memory_order_acquire) < seq) {
        if (now_ms() - t0 > 5000) {
            hak_shm_close(&h);
            printf("result: 11 NOTAPPLIED: request %llu not applied within 5 s\n", (unsigned long long)seq);
            return 11;
        }
        usleep(1000);
    }
    hak_shm_close(&h);
    return knobs(pid, 1);
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void valid(hak_shm_t *s, int pid) {
    memset(s, 0, sizeof *s);
    s->magic = HAK_SHM_MAGIC;
    s->version = HAK_SHM_VERSION;
    s->size = (uint32_t)sizeof *s;
    s->pid = (uint32_t)pid;
    s->uid = (uint32_t)geteuid();
    s->mode = HAK_MODE_FIXED;
    s->nclasses = 49;
    s->ncounters = HAK_NCOUNTERS;
    s->ngauges = HAK_NGAUGES;
    snprintf(s->comm, sizeof s->comm, "forged");
    s->knobs.ring_cap = 4;
    s->knobs.batch_threshold = (uint64_t)4 << 20;
    s->knobs.large_min = (uint64_t)64 << 10;
    s->slots[0].owner_tid = UINT64_MAX;
    s->slots[1].owner_tid = UINT64_MAX;
}

static int forge(const char *file, const char *kind, int pid) {
    size_t len = (sizeof(hak_shm_t) + 4095) & ~(size_t)4095;
    unsigned char *buf = calloc(1, len + 8192);
    if (!buf) return 20;
    hak_shm_t *s = (hak_shm_t *)buf;
    valid(s, pid);
    uint64_t r = 0x9e3779b97f4a7c15ull ^ (uint64_t)pid;
    if (strcmp(kind, "valid") == 0) {
    } else if (strcmp(kind, "bigger") == 0) {
        len += 8192;                                     /* a newer writer's longer layout: tolerated */
        s->size = (uint32_t)(sizeof *s + 4096);
    } else if (strcmp(kind, "random-valid-header") == 0) {
        for (size_t i = 64; i < len; i++) buf[i] = (unsigned char)rnd(&r);
    } else if (strcmp(kind, "huge-nclasses") == 0) {
        s->nclasses = 0xffffffffu;
    } else if (strcmp(kind, "odd-gens") == 0) {
        for (unsigned i = 0; i < HAK_SHM_SLOTS; i++) s->slots[i].gen = 2 * i + 1;
        for (unsigned i = 0; i < HAK_SHM_CLASSES; i++) s->classes[i].gen = 1;
        s->knobs.gen = s->kernel.gen = 1;
    } else if (strcmp(kind, "odd-fold") == 0) {
        s->fold_gen = 1;
    } else if (strcmp(kind, "short") == 0) {
        len = 4096;
    } else if (strcmp(kind, "size-lie") == 0) {
        s->size = 0x7fffffffu;
    } else if (strcmp(kind, "wrong-version") == 0) {
        s->version = HAK_SHM_VERSION + 1;
    } else if (strcmp(kind, "bad-magic") == 0) {
        s->magic = 0x2a2a2a2a;
    } else if (strcmp(kind, "negative-gauge") == 0) {
        s->slots[2].owner_tid = 1;
        s->slots[2].gauge_out[HAK_G_bytes_live] = 1;
    } else if (strcmp(kind, "pid-mismatch") == 0) {
        s->pid = (uint32_t)pid + 1;
    } else {
        fprintf(stderr, "unknown kind %s\n", kind);
        return 20;
    }
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len) {
        perror(file);
        return 20;
    }
    close(fd);
    free(buf);
    return 0;
}

/* A hostile writer: odd generations most of the time, random counters. */
static int scribble(const char *file, double secs) {
    int fd = open(file, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(hak_shm_t)) {
        perror(file);
        return 20;
    }
    hak_shm_t *s = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s == MAP_FAILED) return 20;
    uint64_t r = 12345;
    double t0 = now_ms();
    unsigned long n = 0;
    while (now_ms() - t0 < secs * 1000) {
        for (unsigned i = 0; i < HAK_SHM_SLOTS; i++) {
            _Atomic uint64_t *g = (_Atomic uint64_t *)&s->slots[i].gen;
            atomic_fetch_add(g, 1);
            s->slots[i].counter[rnd(&r) % HAK_NCOUNTERS] = rnd(&r);
            s->slots[i].gauge_in[rnd(&r) % HAK_NGAUGES] = rnd(&r) >> (rnd(&r) % 64);
        }
        atomic_fetch_add((_Atomic uint64_t *)&s->fold_gen, 1);
        s->nclasses = (uint32_t)(rnd(&r) % 80);
        n++;
    }
    printf("scribbled %lu rounds\n", n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "open") == 0) return open_and_snapshot(atoi(argv[2]), NULL);
    if (argc >= 3 && strcmp(argv[1], "path") == 0) return open_and_snapshot(0, argv[2]);
    if (argc >= 3 && strcmp(argv[1], "knobs") == 0) return knobs(atoi(argv[2]), 1);
    if (argc >= 6 && strcmp(argv[1], "post") == 0)
        return post(atoi(argv[2]), strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0), strtoull(argv[5], NULL, 0));
    if (argc >= 4 && strcmp(argv[1], "forge") == 0) return forge(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 1);
    if (argc >= 4 && strcmp(argv[1], "scribble") == 0) return scribble(argv[2], atof(argv[3]));
    fprintf(stderr, "usage: see the top of tests/progs/shm_probe.c\n");
    return 20;
}
