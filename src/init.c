/*
 * init.c - initialisation order, process exit and fork.
 *
 * hak_init_slow() runs once, from the first allocator call or the
 * constructor, whichever comes first: options -> os (THP mode) -> segment ->
 * stats slots -> knobs -> BigCache.  While it runs, allocator calls made
 * by the initialising thread (and any call in mode=off) go to glibc.
 * Fork: every lock is taken in prepare and released in both processes; the
 * child then gets its own telemetry segment.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>

#include "hak_internal.h"

_Atomic int hak_ready;     /* 0 none, 1 initialising, 2 ready */
size_t hak_large_threshold;

const char *hak_mode_str(uint64_t mode) {
    static const char *const names[] = {"off", "fixed", "evolving"};
    return mode < 3 ? names[mode] : "?";
}

/* The background thread: the tuner (evolving), or - only when the user asks
 * with HAKMEM_BACKGROUND_THREAD=1 - control requests from other processes in
 * fixed mode.  A single-threaded program stays single-threaded by default:
 * unshare(CLONE_NEWUSER), seccomp sandboxes and container runtimes need it. */
static bool hak_background_wanted(void) {
    if (hak_opt.mode == HAK_MODE_EVOLVING) return true;
    return hak_opt.mode == HAK_MODE_FIXED && hak_opt.background_thread && hak_shm_is_shared();
}

bool hak_active(void) {
    return hak_init() && hak_opt.mode != HAK_MODE_OFF;
}

static void fork_prepare(void) {
    if (atomic_load(&hak_ready) != 2) return;
    hak_stats_quiesce_begin();          /* no thread inside an operation from here */
    hak_knobs_lock();
    hak_stats_fold_lock();
    hak_batch_lock();
    hak_bigcache_lock_all();
    hak_registry_lock();
    hak_arena_lock();
    hak_shm_fork_prepare();             /* the child's counters: a quiescent copy */
}

static void fork_parent(void) {
    if (atomic_load(&hak_ready) != 2) return;
    hak_arena_unlock();
    hak_registry_unlock();
    hak_bigcache_unlock_all();
    hak_batch_unlock();
    hak_stats_fold_unlock();
    hak_knobs_unlock();
    hak_shm_fork_parent();
    hak_stats_quiesce_end();
}

static void fork_child(void) {
    if (atomic_load(&hak_ready) != 2) return;
    hak_knobs_child_reset();
    hak_registry_child_reset();
    hak_bigcache_child_reset();
    hak_batch_child_reset();
    hak_arena_child_reset();
    hak_shm_child_recreate();
    hak_stats_child_fold();
    hak_evolve_child_reset();
    atomic_store(&hak_first_large_hook, hak_background_wanted() ? hak_evolve_start_slow : NULL);
    hak_stats_quiesce_end_child();
    hak_tcache_child_adopt();           /* the front caches of the threads that did not survive fork */
}

void hak_init_slow(void) {
    int expect = 0;
    if (!atomic_compare_exchange_strong(&hak_ready, &expect, 1)) {
        if (hak_tls.in_init) return;             /* recursive call from init itself */
        while (atomic_load_explicit(&hak_ready, memory_order_acquire) == 1) sched_yield();
        return;
    }
    hak_tls.in_init = 1;
    hak_options_load(NULL);
    hak_os_init();
    hak_shm_create();
    hak_stats_init();
    hak_knobs_init();
    hak_bigcache_init();
    hak_thp_init();
    hak_tcache_max_bytes = hak_opt.tcache_max_bytes;
    if (hak_opt.verbose) {
        hak_log("hakmem %s: mode %s, telemetry %s", HAKMEM_VERSION, hak_mode_str(hak_opt.mode),
                hak_shm_is_shared() ? "published in /dev/shm" : "private (not published)");
        hak_options_print();
    }
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    /* after every other init store: a nonzero threshold lets callers skip hak_init() */
    __atomic_store_n(&hak_large_threshold, hak_opt.mode == HAK_MODE_OFF ? SIZE_MAX : hak_opt.large_min, __ATOMIC_RELEASE);
    /* the background thread starts at the first large allocation, not here:
     * a malloc made while ld.so or libc are still starting must not spawn one */
    atomic_store(&hak_first_large_hook, hak_background_wanted() ? hak_evolve_start_slow : NULL);
    hak_tls.in_init = 0;
    atomic_store_explicit(&hak_ready, 2, memory_order_release);
}

__attribute__((constructor)) static void hak_constructor(void) {
    hak_init();
    hak_libc_resolve();
    hak_shm_gc_stale();
}

__attribute__((destructor)) static void hak_destructor(void) {
    if (atomic_load(&hak_ready) != 2) return;
    hak_evolve_stop();
    hak_showstats_at_exit();            /* HAKMEM_SHOW_STATS / HAKMEM_STATS_FILE, before the segment goes */
    hak_shm_remove();
    hak_shm_gc_stale();
}
