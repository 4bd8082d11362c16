/*
 * shm.c - this process's telemetry segment /dev/shm/hakmem.<pid>.
 *
 * Created at init with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600; a stale segment of
 * a dead process that had our pid (and our uid) is replaced; anything else in
 * the way (a symlink, another user's file) disables telemetry instead.  When
 * the segment cannot be created, or HAKMEM_STATS=0, the same layout lives in
 * private memory: counting continues, nothing is published, nothing fails.
 * Removed at exit; a forked child gets its own copy under its own pid.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hak_internal.h"

#define SEG_LEN hak_align_up(sizeof(hak_shm_t), HAK_PAGE)

static char seg_name[64];
/* Last resort when no page can be mapped for a private segment (a forked
 * child under ENOMEM): the same layout in .bss, faulted in only when used.
 * Counting continues there and never lands in another process's segment. */
static hak_shm_t fallback_seg __attribute__((aligned(4096)));
static int seg_pid;              /* pid whose name we own, 0 = private */

/* Create and map /hakmem.<pid>; NULL (with a verbose warning) on any problem.
 * With at != NULL the segment gets at's current contents and is mapped over
 * at (MAP_FIXED), so every pointer into it stays valid. */
static hak_shm_t *create_named(int pid, void *at) {
    char name[64];
    snprintf(name, sizeof name, HAK_SHM_NAME_FMT, pid);
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST || attempt > 0) break;
        /* A live process cannot hold our pid, so an existing segment is stale.
         * Replace it only if it is a plain file of ours. */
        int old = shm_open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
        struct stat st;
        bool ours = old >= 0 && fstat(old, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid();
        if (old >= 0) close(old);
        if (!ours) { errno = EEXIST; break; }
        shm_unlink(name);
    }
    if (fd < 0) {
        if (hak_opt.verbose)
            hak_warn("telemetry disabled: cannot create /dev/shm%s: %s", name, strerror(errno));
        return NULL;
    }
    /* Allocate the pages now: a sparse file on a full /dev/shm would SIGBUS
     * the program at its first counter update instead of failing here. */
    int falloc = fallocate(fd, 0, 0, (off_t)SEG_LEN);
    if (falloc != 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
        int e = errno;
        close(fd);
        shm_unlink(name);
        if (hak_opt.verbose) hak_warn("telemetry disabled: cannot allocate /dev/shm%s: %s", name, strerror(e));
        return NULL;
    }
    void *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)SEG_LEN) == 0 &&
        (at == NULL || pwrite(fd, at, SEG_LEN, 0) == (ssize_t)SEG_LEN))
        p = mmap(at, SEG_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0), fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        shm_unlink(name);
        if (hak_opt.verbose) hak_warn("telemetry disabled: cannot map /dev/shm%s: %s", name, strerror(e));
        return NULL;
    }
    memcpy(seg_name, name, sizeof name);
    seg_pid = pid;
    return p;
}

static void read_comm(char *out, size_t len) {
    int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, len - 1) : -1;
    if (fd >= 0) close(fd);
    if (n < 0) n = 0;
    out[n] = '\0';
    char *nl = strchr(out, '\n');
    if (nl) *nl = '\0';
}

/* Fill the header of a fresh (zeroed or copied) segment; magic last. */
static void stamp(hak_shm_t *s) {
    s->version = HAK_SHM_VERSION;
    s->size = (uint32_t)sizeof(hak_shm_t);
    s->pid = (uint32_t)getpid();
    s->uid = (uint32_t)geteuid();
    s->mode = (uint32_t)hak_opt.mode;
    s->nclasses = HAK_NCLASSES;
    s->ncounters = HAK_NCOUNTERS;
    s->ngauges = HAK_NGAUGES;
    s->start_ns = hak_wall_ns();
    read_comm(s->comm, sizeof s->comm);
    atomic_store_explicit((_Atomic uint64_t *)&s->magic, HAK_SHM_MAGIC, memory_order_release);
}

void hak_shm_create(void) {
    hak_shm_t *s = hak_opt.stats ? create_named((int)getpid(), NULL) : NULL;
    if (s == NULL) s = hak_os_meta_alloc(SEG_LEN);
    if (s == NULL) s = &fallback_seg;
    stamp(s);
    hak_seg = s;
}

bool hak_shm_is_shared(void) { return seg_pid != 0; }

/* Remove segments of our uid whose process is gone.  A process that ends in
 * _exit() or by a signal runs no destructor (forked workers of Python's
 * multiprocessing, shells' children), so the living clean up after the dead:
 * at start and at exit.  Only plain files owned by us, never through links. */
void hak_shm_gc_stale(void) {
    if (!hak_opt.stats) return;
    DIR *d = opendir(HAK_SHM_DIR);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, HAK_SHM_PREFIX, sizeof HAK_SHM_PREFIX - 1) != 0) continue;
        char *end;
        long pid = strtol(e->d_name + sizeof HAK_SHM_PREFIX - 1, &end, 10);
        if (*end != '\0' || pid <= 0 || pid > INT32_MAX || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;       /* alive (or not ours to judge) */
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

void hak_shm_remove(void) {
    if (seg_pid != 0 && seg_pid == (int)getpid()) {
        shm_unlink(seg_name);
        seg_pid = 0;
    }
}

/* After fork(): the child must stop writing into the parent's shared
 * segment at once, but it should publish its own only if it lives on as a
 * hakmem process: a child that execs right away would leave a stale
 * /dev/shm/hakmem.<pid> behind (exec runs no destructor).  So the child gets a
 * private copy now, published by hak_shm_publish_child() at its first large
 * allocation or free. */
_Atomic bool hak_shm_publish_pending;
int hak_shm_child_alloc_hook;    /* test hook: the child's segment copy fails (ENOMEM) */

static hak_shm_t *fork_copy;     /* taken in the parent before fork, quiescent */

void hak_shm_fork_prepare(void) {
    fork_copy = hak_shm_child_alloc_hook ? NULL : hak_os_meta_alloc(SEG_LEN);
    if (fork_copy) memcpy(fork_copy, hak_seg, sizeof *fork_copy);
}

void hak_shm_fork_parent(void) {
    hak_os_meta_free(fork_copy, SEG_LEN);
    fork_copy = NULL;
}

void hak_shm_child_recreate(void) {
    hak_shm_t *old = hak_seg;
    seg_pid = 0;
    hak_shm_t *s = fork_copy;
    fork_copy = NULL;
    if (s == NULL) {
        /* no copy (mmap failed before fork): copy the parent's live segment,
         * into .bss when even that mapping fails - never keep writing into
         * the parent's shared segment. */
        s = hak_shm_child_alloc_hook ? NULL : hak_os_meta_alloc(SEG_LEN);
        if (s == NULL) s = &fallback_seg;
        if (s != old) memcpy(s, old, sizeof *s);
    }
    s->magic = 0;
    stamp(s);
    hak_stats_rebase(old, s);
    hak_seg = s;
    if (old != &fallback_seg) hak_os_meta_free(old, SEG_LEN);
    atomic_store(&hak_shm_publish_pending, hak_opt.stats != 0 && s != &fallback_seg);
}

void hak_shm_publish_child(void) {
    /* Map the new segment over the private copy at the same address: slot
     * pointers held by threads stay valid.  (A thread created after fork that
     * counts between the copy and the remap loses those increments; the child
     * usually has one thread here, as the background thread starts after.) */
    if (create_named((int)getpid(), hak_seg) == NULL && hak_opt.verbose)
        hak_warn("forked child keeps its counters private");
}
