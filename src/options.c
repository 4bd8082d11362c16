/*
 * options.c - the HAKMEM_* environment variables: one table, parsed once at
 * init without calling malloc.  A bad value prints a warning (always: a user
 * who set a variable wants to know it was ignored) and the default stays; an
 * out-of-range value is clamped to the nearest bound with a warning.
 * Adding an option = one row in hak_option_defs plus its field in hak_options_t.
 *
 * The environment is read with secure_getenv: in a setuid/setgid or
 * capability-gaining program (AT_SECURE, e.g. libhakmem in /etc/ld.so.preload)
 * every HAKMEM_* variable is ignored and the defaults hold, so the invoking
 * user cannot choose, say, where a privileged process writes HAKMEM_HISTORY.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hak_internal.h"

hak_options_t hak_opt;

static const char *const mode_names[] = {"off", "fixed", "evolving", NULL};
static const char *const thp_names[] = {"auto", "always", "never", NULL};

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

#define OPT(f) offsetof(hak_options_t, f)
static const hak_option_def_t hak_option_defs[] = {
    {"HAKMEM_MODE", HAK_OPT_ENUM, HAK_MODE_FIXED, 0, 2, mode_names,
     "fixed: knobs stay as set; evolving: the tuner moves them online; off: pure pass-through to glibc", OPT(mode)},
    {"HAKMEM_RING_CAP", HAK_OPT_UINT, 4, 0, HAK_RING_CAP_MAX, NULL,
     "BIGCACHE_RING_CAP: warm blocks kept per size class (0 = no caching)", OPT(ring_cap)},
    {"HAKMEM_BATCH_THRESHOLD", HAK_OPT_SIZE, 4 * MiB, 64 * KiB, 1 * GiB, NULL,
     "BATCH_THRESHOLD: pending bytes that make Batch flush (one munmap per coalesced range)", OPT(batch_threshold)},
    {"HAKMEM_CACHE_MAX_BYTES", HAK_OPT_SIZE, 1 * GiB, 0, 1024 * GiB, NULL,
     "total bytes all BigCache rings may hold; above it blocks go to Batch", OPT(cache_max_bytes)},
    {"HAKMEM_LARGE_MIN", HAK_OPT_SIZE, 64 * KiB, 64 * KiB, 256 * MiB, NULL,
     "smallest request hakmem serves; smaller ones go to glibc malloc untouched", OPT(large_min)},
    {"HAKMEM_THP", HAK_OPT_ENUM, HAK_THP_AUTO, 0, 2, thp_names,
     "huge pages for blocks >= 2 MiB: auto (each size class chooses from the pages the program touched in a few "
     "sampled blocks; needs THP 'madvise' or 'always' in the kernel), always, never", OPT(thp)},
    {"HAKMEM_THP_FAULT_COST", HAK_OPT_BOOL, 1, 0, 1, NULL,
     "HAKMEM_THP=auto: time the first huge-page fault of fresh blocks (and a few 4 KiB faults), and map 4 KiB pages "
     "while a huge-page fault costs more than 1.5x 512 small ones (a host that takes free memory back: microVMs); "
     "0 = choose from the touched pages alone", OPT(thp_fault_cost)},
    {"HAKMEM_WARM_REUSE", HAK_OPT_BOOL, 1, 0, 1, NULL,
     "a miss first reuses warm memory hakmem holds: a block pending in Batch, a cached block up to one doubling "
     "bigger, a smaller cached block grown by mremap (0 = map fresh memory, for A/B comparisons)", OPT(warm_reuse)},
    {"HAKMEM_PEAK_BOUND", HAK_OPT_BOOL, 1, 0, 1, NULL,
     "what hakmem holds beyond the program's requests (cached and pending blocks, class rounding, lent blocks' "
     "tails) may take it past the high-water mark of the requested bytes by 64 MiB or 1/8 of them at most: "
     "beyond that the oldest cached blocks are released before fresh memory is mapped, and a lent block gives "
     "back a resident tail of 4 MiB or more (0 = no bound)",
     OPT(peak_bound)},
    {"HAKMEM_ARENA", HAK_OPT_BOOL, 1, 0, 1, NULL,
     "carve blocks of up to 64 MiB from address space hakmem reserves (1 GiB a piece, no memory), so that "
     "Batch releases blocks freed together in one call; 0 = let the kernel place every block", OPT(arena)},
    {"HAKMEM_TCACHE_MAX_BYTES", HAK_OPT_SIZE, 16 * MiB, 0, 1 * GiB, NULL,
     "bytes of freed large blocks each thread keeps in its own front cache, at most 8 blocks, before the rings "
     "(0 = no front cache); not part of HAKMEM_CACHE_MAX_BYTES", OPT(tcache_max_bytes)},
    {"HAKMEM_STATS", HAK_OPT_BOOL, 1, 0, 1, NULL,
     "publish counters in /dev/shm/hakmem.<pid> (0 = off; counting still happens in private memory)", OPT(stats)},
    {"HAKMEM_VERBOSE", HAK_OPT_UINT, 0, 0, 2, NULL,
     "1: print the resolved options and telemetry problems on stderr; 2: also each flush", OPT(verbose)},
    {"HAKMEM_TUNE_INTERVAL_MS", HAK_OPT_UINT, 100, 10, 60000, NULL,
     "evolving mode: tuner period in milliseconds", OPT(tune_interval_ms)},
    {"HAKMEM_IDLE_MS", HAK_OPT_UINT, 500, 50, 3600000, NULL,
     "evolving mode: large-block inactivity after which caches are trimmed", OPT(idle_ms)},
    {"HAKMEM_BACKGROUND_THREAD", HAK_OPT_BOOL, 0, 0, 1, NULL,
     "fixed mode: start a thread that applies hakmem-stat --set/--trim while the program sleeps "
     "(0 = none: requests apply at the next large malloc/free; evolving mode always runs its tuner thread)",
     OPT(background_thread)},
    {"HAKMEM_HISTORY", HAK_OPT_STR, 0, 0, sizeof hak_opt.history, NULL,
     "evolving mode: SQLite file that records every sample and decision (empty = none; in another mode it is "
     "ignored with a warning)", OPT(history)},
    {"HAKMEM_SHOW_STATS", HAK_OPT_BOOL, 0, 0, 1, NULL,
     "1: print a summary of the counters on stderr when the process exits (like MIMALLOC_SHOW_STATS; "
     "also with HAKMEM_STATS=0)", OPT(show_stats)},
    {"HAKMEM_STATS_FILE", HAK_OPT_STR, 0, 0, sizeof hak_opt.stats_file, NULL,
     "write the counters as JSON to this file when the process exits (atomically: temporary file + rename; "
     "%p = pid; empty = none)", OPT(stats_file)},
};
#define HAK_NOPTIONS (sizeof hak_option_defs / sizeof hak_option_defs[0])
_Static_assert(HAK_NOPTIONS <= 64, "hak_options_t.given has a bit per option");

const hak_option_def_t *hak_option_table(size_t *n) {
    *n = HAK_NOPTIONS;
    return hak_option_defs;
}

static int parse_bool(const char *s, uint64_t *out) {
    static const char *const yes[] = {"1", "on", "true", "yes", "enable", NULL};
    static const char *const no[] = {"0", "off", "false", "no", "disable", NULL};
    for (int i = 0; yes[i]; i++) if (strcasecmp(s, yes[i]) == 0) { *out = 1; return 0; }
    for (int i = 0; no[i]; i++) if (strcasecmp(s, no[i]) == 0) { *out = 0; return 0; }
    return -EINVAL;
}

/* Parse one value; returns 0, -EINVAL (bad syntax) or -ERANGE (clamped into *out). */
static int parse_value(const hak_option_def_t *d, const char *s, uint64_t *out) {
    uint64_t v = 0;
    int rc;
    switch (d->kind) {
    case HAK_OPT_BOOL: return parse_bool(s, out);
    case HAK_OPT_ENUM:
        for (uint64_t i = 0; d->choices[i]; i++)
            if (strcasecmp(s, d->choices[i]) == 0) { *out = i; return 0; }
        return -EINVAL;
    case HAK_OPT_UINT:
    case HAK_OPT_SIZE:
        rc = hak_parse_size(s, &v);
        if (rc == -ERANGE) v = UINT64_MAX;
        else if (rc < 0) return rc;
        if (d->kind == HAK_OPT_UINT && rc == 0) {
            /* plain numbers only */
            for (const char *p = s; *p; p++)
                if ((*p < '0' || *p > '9') && *p != ' ' && *p != '\t') return -EINVAL;
        }
        int clamped = 0;
        *out = hak_clamp(v, d->min, d->max, &clamped);
        return clamped ? -ERANGE : 0;
    default: return -EINVAL;
    }
}

static const char *default_getter(const char *name) { return secure_getenv(name); }

void hak_options_load(const char *(*getter)(const char *)) {
    if (getter == NULL) getter = default_getter;
    memset(&hak_opt, 0, sizeof hak_opt);
    for (size_t i = 0; i < HAK_NOPTIONS; i++) {
        const hak_option_def_t *d = &hak_option_defs[i];
        const char *s = getter(d->name);
        if (d->kind == HAK_OPT_STR) {
            if (s) {
                size_t len = strlen(s);
                if (len >= d->max) {
                    hak_warn("%s is longer than %zu bytes; ignored", d->name, (size_t)d->max - 1);
                } else {
                    memcpy((char *)&hak_opt + d->offset, s, len + 1);
                }
            }
            continue;
        }
        uint64_t v = d->def;
        if (s != NULL && *s != '\0') {
            hak_opt.given |= (uint64_t)1 << i;
            uint64_t pv = 0;
            int rc = parse_value(d, s, &pv);
            if (rc == 0) {
                v = pv;
            } else if (rc == -ERANGE) {
                hak_warn("%s=%s is out of range [%llu, %llu]; using %llu", d->name, s,
                         (unsigned long long)d->min, (unsigned long long)d->max, (unsigned long long)pv);
                v = pv;
            } else {
                hak_warn("%s=%s is not a valid value; keeping the default", d->name, s);
            }
        }
        *(uint64_t *)((char *)&hak_opt + d->offset) = v;
    }
    /* Said once per process (init runs once; a forked child does not load again). */
    if (hak_opt.history[0] != '\0' && hak_opt.mode != HAK_MODE_EVOLVING)
        hak_warn("HAKMEM_HISTORY=%s is ignored: history is recorded only with HAKMEM_MODE=evolving (mode is %s)",
                 hak_opt.history, mode_names[hak_opt.mode]);
}

bool hak_option_given(const char *name) {
    for (size_t i = 0; i < HAK_NOPTIONS; i++)
        if (strcmp(hak_option_defs[i].name, name) == 0) return (hak_opt.given >> i) & 1;
    return false;
}

static void print_value(const hak_option_def_t *d, char *buf, size_t len) {
    if (d->kind == HAK_OPT_STR) {
        const char *s = (const char *)&hak_opt + d->offset;
        snprintf(buf, len, "%s", *s ? s : "(none)");
        return;
    }
    uint64_t v = *(const uint64_t *)((const char *)&hak_opt + d->offset);
    if (d->kind == HAK_OPT_ENUM) snprintf(buf, len, "%s", d->choices[v]);
    else snprintf(buf, len, "%llu", (unsigned long long)v);
}

void hak_options_print(void) {
    char val[300];
    for (size_t i = 0; i < HAK_NOPTIONS; i++) {
        print_value(&hak_option_defs[i], val, sizeof val);
        hak_log("option %s = %s", hak_option_defs[i].name, val);
    }
}
