/*
 * shmpeek.c - test helper: read the hakmem telemetry segment of another
 * process (through src/shm_read.c) and print a one-line summary.
 *
 *   shmpeek [-r] [-q] PID        one snapshot of /dev/shm/hakmem.PID
 *   shmpeek -w [-r] [-q] PID     watch PID until it exits (snapshot every ms);
 *                                report the last consistent snapshot
 *   shmpeek -f FILE              print pid and comm of a segment file
 *
 * Every snapshot must be consistent (the reader's invariants) and show
 * munmap_calls == batch_ranges_flushed (only Batch munmaps hakmem blocks).
 * -r: also require large_allocs > 0 (hakmem served large blocks).
 * Exit: 0 ok; 1 a check failed; 3 no segment (never seen, with -w); 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"

static void summary(FILE *f, const hak_snapshot_t *s, uint64_t nsnaps) {
    const uint64_t *c = s->counter;
    fprintf(f,
            "shmpeek: pid=%u comm=%s mode=%s snapshots=%" PRIu64 " large_allocs=%" PRIu64 " large_frees=%" PRIu64
            " cache_hits=%" PRIu64 " cache_misses=%" PRIu64 " batch_adds=%" PRIu64 " batch_flushes=%" PRIu64
            " batch_blocks_flushed=%" PRIu64 " batch_ranges_flushed=%" PRIu64 " munmap_calls=%" PRIu64
            " mmap_calls=%" PRIu64 " mremap_calls=%" PRIu64 " peak_bytes_mapped=%" PRIu64 "\n",
            s->pid, s->comm, hak_mode_name(s->mode), nsnaps, c[HAK_C_large_allocs], c[HAK_C_large_frees],
            c[HAK_C_cache_hits], c[HAK_C_cache_misses], c[HAK_C_batch_adds], c[HAK_C_batch_flushes],
            c[HAK_C_batch_blocks_flushed], c[HAK_C_batch_ranges_flushed], c[HAK_C_munmap_calls], c[HAK_C_mmap_calls],
            c[HAK_C_mremap_calls], s->peak_bytes_mapped);
}

/* 0 ok, 1 check failed */
static int checks(const hak_snapshot_t *s, int pid) {
    if ((int)s->pid != pid) {
        fprintf(stderr, "shmpeek: segment of pid %d says pid %u\n", pid, s->pid);
        return 1;
    }
    if (s->counter[HAK_C_munmap_calls] != s->counter[HAK_C_batch_ranges_flushed]) {
        fprintf(stderr, "shmpeek: pid %d: munmap_calls %" PRIu64 " != batch_ranges_flushed %" PRIu64 "\n", pid,
                s->counter[HAK_C_munmap_calls], s->counter[HAK_C_batch_ranges_flushed]);
        return 1;
    }
    return 0;
}

/* Exited: gone, or a zombie not reaped yet by its parent (the test shell). */
static bool gone(int pid) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp == NULL || rp[1] == '\0' || rp[2] == 'Z' || rp[2] == 'X';
}

static int usage(void) {
    fprintf(stderr, "usage: shmpeek [-w] [-r] [-q] PID | shmpeek -f FILE\n");
    return 2;
}

int main(int argc, char **argv) {
    bool watch = false, require = false, quiet = false;
    const char *file = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "wrqf:")) != -1) {
        switch (opt) {
        case 'w': watch = true; break;
        case 'r': require = true; break;
        case 'q': quiet = true; break;
        case 'f': file = optarg; break;
        default: return usage();
        }
    }
    hak_shm_handle_t h;
    hak_snapshot_t s;
    if (file) {
        int rc = hak_shm_open_path(file, &h);
        if (rc != 0) {
            fprintf(stderr, "shmpeek: %s: %s\n", file, hak_shm_strerror(rc));
            return 1;
        }
        char comm[HAK_SHM_COMM_LEN];
        memcpy(comm, h.shm->comm, sizeof comm);
        comm[sizeof comm - 1] = '\0';
        printf("%u %s\n", h.shm->pid, comm);
        hak_shm_close(&h);
        return 0;
    }
    if (optind != argc - 1) return usage();
    int pid = atoi(argv[optind]);
    if (pid <= 0) return usage();

    uint64_t nsnaps = 0, busy = 0;
    hak_snapshot_t last;
    memset(&last, 0, sizeof last);
    bool opened = false;
    for (;;) {
        int rc = opened ? 0 : hak_shm_open_pid(pid, &h);
        if (rc == 0) {
            opened = true;
            rc = hak_shm_snapshot(h.shm, &s);
            if (rc == 0) {
                nsnaps++;
                if (checks(&s, pid)) return 1;
                last = s;
            } else if (rc == -HAK_SHM_EBUSY) {
                busy++;
            } else {
                /* a segment unlinked at exit stays mapped and readable: any
                 * other error is an inconsistent segment */
                fprintf(stderr, "shmpeek: pid %d: snapshot: %s\n", pid, hak_shm_strerror(rc));
                return 1;
            }
        } else if (rc != -HAK_SHM_ENOENT && rc != -HAK_SHM_ESRCH) {
            fprintf(stderr, "shmpeek: pid %d: %s\n", pid, hak_shm_strerror(rc));
            return 1;
        }
        if (!watch) {
            /* one snapshot wanted: EBUSY is the reader's answer under load, retry a while */
            if (rc == -HAK_SHM_EBUSY && busy < 40) {
                usleep(50000);
                continue;
            }
            break;
        }
        if (gone(pid)) {
            /* one last look: the mapping outlives the exit, so this is the final state */
            if (opened && hak_shm_snapshot(h.shm, &s) == 0 && checks(&s, pid) == 0) {
                nsnaps++;
                last = s;
            }
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (opened) hak_shm_close(&h);
    if (nsnaps == 0) {
        fprintf(stderr, "shmpeek: pid %d: %s\n", pid,
                opened ? "no consistent snapshot" : "no hakmem segment seen (not running hakmem?)");
        return opened ? 1 : 3;
    }
    if (!quiet) summary(stdout, &last, nsnaps);
    if (require && last.counter[HAK_C_large_allocs] == 0) {
        fprintf(stderr, "shmpeek: pid %d: hakmem served no large allocation\n", pid);
        return 1;
    }
    return 0;
}
