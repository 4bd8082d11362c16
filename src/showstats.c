/*
 * showstats.c - the counters in words, for people: hak_stats_print() and the
 * statistics at exit (HAKMEM_SHOW_STATS=1 on stderr, HAKMEM_STATS_FILE=path as
 * JSON), like mimalloc's MIMALLOC_SHOW_STATS / mi_stats_print and jemalloc's
 * stats_print:true / malloc_stats_print.  The segment is removed at exit, so a
 * short job would otherwise leave nothing behind.
 *
 * It reads one consistent snapshot of this process's segment (shm_read.c, the
 * tools' reader) and formats it; it never writes the segment.  Counters are
 * kept with HAKMEM_STATS=0 too (in private memory), so the summary is the same.
 * Output goes through a small line buffer to a caller's write function, so the
 * summary on stderr is one write(2) (not interleaved with other output) and
 * no stdio stream is needed at exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hak_internal.h"

#define OUT_BUF 8192u

typedef struct out {
    void (*write)(void *arg, const char *text);
    void *arg;
    size_t n;
    char buf[OUT_BUF];
} out_t;

static void out_flush(out_t *o) {
    if (o->n == 0) return;
    o->buf[o->n] = '\0';
    o->write(o->arg, o->buf);
    o->n = 0;
}

/* Append formatted text; pieces handed to write() end at a line boundary
 * whenever the buffer allows. */
__attribute__((format(printf, 2, 3))) static void outf(out_t *o, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    size_t len = (size_t)m < sizeof line ? (size_t)m : sizeof line - 1;
    if (o->n + len + 1 > OUT_BUF) {
        /* hand over the complete lines, keep the one being built */
        char *nl = memrchr(o->buf, '\n', o->n);
        size_t keep = nl ? o->n - (size_t)(nl + 1 - o->buf) : 0;
        if (keep + len + 1 > OUT_BUF) keep = 0;          /* a line longer than the buffer: split it */
        char save = 0;
        if (keep) {
            save = o->buf[o->n - keep];
            o->buf[o->n - keep] = '\0';
            o->write(o->arg, o->buf);
            o->buf[o->n - keep] = save;
            memmove(o->buf, o->buf + o->n - keep, keep);
            o->n = keep;
        } else {
            out_flush(o);
        }
    }
    memcpy(o->buf + o->n, line, len);
    o->n += len;
}

/* 1536 -> "1.5 KiB", 262144 -> "256 KiB", 0 -> "0 B". */
static const char *fmt_bytes(char *b, size_t len, uint64_t v) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    double d = (double)v;
    while (d >= 1024.0 && u < 5) {
        d /= 1024.0;
        u++;
    }
    if (u == 0 || d == (double)(uint64_t)d) snprintf(b, len, "%.0f %s", d, unit[u]);
    else if (d < 10) snprintf(b, len, "%.2f %s", d, unit[u]);
    else if (d < 100) snprintf(b, len, "%.1f %s", d, unit[u]);
    else snprintf(b, len, "%.0f %s", d, unit[u]);
    return b;
}

/* Nanoseconds -> "850 ns", "12.3 us", "4.56 ms", "1.23 s". */
static const char *fmt_ns(char *b, size_t len, uint64_t ns) {
    if (ns < 1000) snprintf(b, len, "%llu ns", (unsigned long long)ns);
    else if (ns < 1000000) snprintf(b, len, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000) snprintf(b, len, "%.2f ms", (double)ns / 1e6);
    else snprintf(b, len, "%.2f s", (double)ns / 1e9);
    return b;
}

static double ratio(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0.0; }

static uint64_t evictions(const uint64_t *c) {
    return c[HAK_C_evict_ring_full] + c[HAK_C_evict_cap_lowered] + c[HAK_C_evict_budget] +
           c[HAK_C_evict_idle_trim] + c[HAK_C_evict_uncacheable];
}

static bool class_used(const hak_shm_class_t *k) {
    uint64_t ev = 0;
    for (int r = 0; r < HAK_EVICT_NREASONS; r++) ev += k->evictions[r];
    return k->hits || k->misses || k->puts || ev || k->cached_blocks;
}

static const char *thp_name(uint64_t v) {
    switch (HAK_CTHP_STATE(v)) {
    case HAK_CTHP_UNDECIDED: return "sampling";
    case HAK_CTHP_HUGE: return "huge";
    case HAK_CTHP_SMALL: return "4k";
    default: return "-";
    }
}

static void print_text(out_t *o, const hak_snapshot_t *s, int pid, uint64_t now_ns) {
    const uint64_t *c = s->counter;
    const int64_t *g = s->gauge;
    char b1[32], b2[32], b3[32], b4[32];
    double up = now_ns > s->start_ns ? (double)(now_ns - s->start_ns) / 1e9 : 0.0;
    uint64_t hits = c[HAK_C_cache_hits], misses = c[HAK_C_cache_misses];
    uint64_t warm = c[HAK_C_warm_near] + c[HAK_C_warm_reshaped] + c[HAK_C_warm_rescued];
#define P(...) outf(o, "hakmem[%d]: " __VA_ARGS__)
    P("statistics of %s (pid %d, mode %s, %.2f s)\n", pid, s->comm[0] ? s->comm : "?", pid, hak_mode_name(s->mode), up);
    P("  large allocations %llu, frees %llu (requests >= %s; smaller ones went to glibc)\n", pid,
      (unsigned long long)c[HAK_C_large_allocs], (unsigned long long)c[HAK_C_large_frees],
      fmt_bytes(b1, sizeof b1, s->knobs.large_min));
    P("  cache hits %llu, misses %llu: hit rate %.1f%% (front cache hits %llu)\n", pid, (unsigned long long)hits,
      (unsigned long long)misses, 100.0 * ratio(hits, hits + misses), (unsigned long long)c[HAK_C_tcache_hits]);
    P("  misses served warm %llu: bigger class %llu, grown by mremap %llu, taken back from Batch %llu\n", pid,
      (unsigned long long)warm, (unsigned long long)c[HAK_C_warm_near], (unsigned long long)c[HAK_C_warm_reshaped],
      (unsigned long long)c[HAK_C_warm_rescued]);
    P("  cache puts: rings %llu, front caches %llu\n", pid, (unsigned long long)c[HAK_C_cache_puts],
      (unsigned long long)c[HAK_C_tcache_puts]);
    P("  evictions %llu: ring full %llu, cap lowered %llu, budget %llu, trim %llu, uncacheable %llu\n", pid,
      (unsigned long long)evictions(c), (unsigned long long)c[HAK_C_evict_ring_full],
      (unsigned long long)c[HAK_C_evict_cap_lowered], (unsigned long long)c[HAK_C_evict_budget],
      (unsigned long long)c[HAK_C_evict_idle_trim], (unsigned long long)c[HAK_C_evict_uncacheable]);
    P("  batch flushes %llu: blocks %llu, ranges %llu, %.2f blocks per munmap, %s released in %s\n", pid,
      (unsigned long long)c[HAK_C_batch_flushes], (unsigned long long)c[HAK_C_batch_blocks_flushed],
      (unsigned long long)c[HAK_C_batch_ranges_flushed],
      ratio(c[HAK_C_batch_blocks_flushed], c[HAK_C_munmap_calls]),
      fmt_bytes(b1, sizeof b1, c[HAK_C_batch_bytes_flushed]), fmt_ns(b2, sizeof b2, c[HAK_C_batch_flush_ns]));
    P("  syscalls: mmap %llu, munmap %llu, madvise %llu, mremap %llu; failed: mmap %llu, munmap %llu\n", pid,
      (unsigned long long)c[HAK_C_mmap_calls], (unsigned long long)c[HAK_C_munmap_calls],
      (unsigned long long)c[HAK_C_madvise_calls], (unsigned long long)c[HAK_C_mremap_calls],
      (unsigned long long)c[HAK_C_mmap_failures], (unsigned long long)c[HAK_C_munmap_failures]);
    P("  mapped now %s, peak %s, ever %s\n", pid, fmt_bytes(b1, sizeof b1, (uint64_t)g[HAK_G_bytes_mapped]),
      fmt_bytes(b2, sizeof b2, s->peak_bytes_mapped), fmt_bytes(b3, sizeof b3, c[HAK_C_bytes_mapped_total]));
    P("  cached now %s in %lld blocks, pending %s, live %s in %lld blocks\n", pid,
      fmt_bytes(b1, sizeof b1, (uint64_t)g[HAK_G_bytes_cached]), (long long)g[HAK_G_blocks_cached],
      fmt_bytes(b2, sizeof b2, (uint64_t)g[HAK_G_bytes_pending]),
      fmt_bytes(b3, sizeof b3, (uint64_t)g[HAK_G_bytes_live]), (long long)g[HAK_G_blocks_live]);
    P("  live bytes asked for %s (the rest: class rounding, lent tails); peak bound: %llu fresh maps first gave "
      "back %s of cached blocks; lent tails released %llu (%s)\n",
      pid, fmt_bytes(b1, sizeof b1, (uint64_t)g[HAK_G_bytes_requested]), (unsigned long long)c[HAK_C_peak_fits],
      fmt_bytes(b2, sizeof b2, c[HAK_C_peak_shed_bytes]), (unsigned long long)c[HAK_C_lent_tail_released],
      fmt_bytes(b3, sizeof b3, c[HAK_C_lent_tail_bytes]));
    P("  realloc in place %llu, by mremap %llu (into a cached block %llu), copied %llu; calloc memset skipped %llu; "
      "trims %llu; invalid frees %llu\n",
      pid, (unsigned long long)c[HAK_C_realloc_inplace], (unsigned long long)c[HAK_C_realloc_mremap],
      (unsigned long long)c[HAK_C_warm_realloc],
      (unsigned long long)c[HAK_C_realloc_copy], (unsigned long long)c[HAK_C_calloc_zero_skipped],
      (unsigned long long)c[HAK_C_trims], (unsigned long long)c[HAK_C_invalid_frees]);
    P("  knobs: ring cap %llu, batch threshold %s, cache max %s, front cache %s per thread\n", pid,
      (unsigned long long)s->knobs.ring_cap, fmt_bytes(b1, sizeof b1, s->knobs.batch_threshold),
      fmt_bytes(b2, sizeof b2, s->knobs.cache_max_bytes), fmt_bytes(b4, sizeof b4, hak_opt.tcache_max_bytes));
    if (s->knobs.thp_huge_fault_ns != 0)
        P("  THP fault cost: a huge-page fault %s, 512 faults of 4 KiB pages %s (%llu timed); %llu fresh blocks of "
          "huge-page classes got 4 KiB pages for it\n",
          pid, fmt_ns(b1, sizeof b1, s->knobs.thp_huge_fault_ns), fmt_ns(b2, sizeof b2, s->knobs.thp_small_fault_ns),
          (unsigned long long)c[HAK_C_thp_fault_probes], (unsigned long long)c[HAK_C_thp_small_by_cost]);
    bool any = false;
    for (uint32_t k = 0; k < s->nclasses && k < HAK_SHM_CLASSES; k++) {
        const hak_shm_class_t *cl = &s->classes[k];
        if (!class_used(cl)) continue;
        if (!any) P("  %5s %10s %10s %10s %10s %9s %6s %4s %8s\n", pid, "class", "size", "ring-hits", "misses", "puts",
                    "evicted", "cached", "cap", "thp");
        any = true;
        uint64_t ev = 0;
        for (int r = 0; r < HAK_EVICT_NREASONS; r++) ev += cl->evictions[r];
        P("  %5u %10s %10llu %10llu %10llu %9llu %6llu %4llu %8s\n", pid, k, fmt_bytes(b1, sizeof b1, cl->size),
          (unsigned long long)cl->hits, (unsigned long long)cl->misses, (unsigned long long)cl->puts,
          (unsigned long long)ev, (unsigned long long)cl->cached_blocks, (unsigned long long)cl->cap,
          thp_name(cl->thp));
    }
    if (!any) P("  no size class was used\n", pid);
#undef P
}

static void json_str(out_t *o, const char *s) {
    outf(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') outf(o, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) outf(o, "\\u%04x", *p);
        else outf(o, "%c", *p);
    }
    outf(o, "\"");
}

static void print_json(out_t *o, const hak_snapshot_t *s, int pid, uint64_t now_ns) {
    const uint64_t *c = s->counter;
    uint64_t hits = c[HAK_C_cache_hits], misses = c[HAK_C_cache_misses];
    outf(o, "{\n  \"hakmem_version\": \"%s\",\n  \"pid\": %d,\n  \"comm\": ", HAKMEM_VERSION, pid);
    json_str(o, s->comm);
    outf(o, ",\n  \"mode\": \"%s\",\n  \"uptime_ns\": %llu,\n  \"counters\": {", hak_mode_name(s->mode),
         (unsigned long long)(now_ns > s->start_ns ? now_ns - s->start_ns : 0));
    for (int k = 0; k < HAK_NCOUNTERS; k++)
        outf(o, "%s\n    \"%s\": %llu", k ? "," : "", hak_counter_names[k], (unsigned long long)c[k]);
    outf(o, "\n  },\n  \"gauges\": {");
    for (int k = 0; k < HAK_NGAUGES; k++)
        outf(o, "%s\n    \"%s\": %lld", k ? "," : "", hak_gauge_names[k], (long long)s->gauge[k]);
    outf(o, "\n  },\n  \"peak_bytes_mapped\": %llu,\n", (unsigned long long)s->peak_bytes_mapped);
    outf(o, "  \"derived\": {\"hit_rate\": %.6f, \"evictions\": %llu, \"blocks_per_munmap\": %.6f},\n",
         ratio(hits, hits + misses), (unsigned long long)evictions(c),
         ratio(c[HAK_C_batch_blocks_flushed], c[HAK_C_munmap_calls]));
    outf(o,
         "  \"knobs\": {\"ring_cap\": %llu, \"batch_threshold\": %llu, \"cache_max_bytes\": %llu, "
         "\"large_min\": %llu},\n  \"classes\": [",
         (unsigned long long)s->knobs.ring_cap, (unsigned long long)s->knobs.batch_threshold,
         (unsigned long long)s->knobs.cache_max_bytes, (unsigned long long)s->knobs.large_min);
    bool first = true;
    for (uint32_t k = 0; k < s->nclasses && k < HAK_SHM_CLASSES; k++) {
        const hak_shm_class_t *cl = &s->classes[k];
        if (!class_used(cl)) continue;
        outf(o,
             "%s\n    {\"class\": %u, \"size\": %llu, \"hits\": %llu, \"misses\": %llu, \"puts\": %llu, "
             "\"evict_ring_full\": %llu, \"evict_cap_lowered\": %llu, \"evict_budget\": %llu, "
             "\"evict_idle_trim\": %llu, \"evict_uncacheable\": %llu, \"cached_blocks\": %llu, \"cap\": %llu, "
             "\"thp\": \"%s\"}",
             first ? "" : ",", k, (unsigned long long)cl->size, (unsigned long long)cl->hits,
             (unsigned long long)cl->misses, (unsigned long long)cl->puts,
             (unsigned long long)cl->evictions[HAK_EVICT_RING_FULL],
             (unsigned long long)cl->evictions[HAK_EVICT_CAP_LOWERED],
             (unsigned long long)cl->evictions[HAK_EVICT_BUDGET],
             (unsigned long long)cl->evictions[HAK_EVICT_IDLE_TRIM],
             (unsigned long long)cl->evictions[HAK_EVICT_UNCACHEABLE], (unsigned long long)cl->cached_blocks,
             (unsigned long long)cl->cap, thp_name(cl->thp));
        first = false;
    }
    outf(o, "%s]\n}\n", first ? "" : "\n  ");
}

void hak_showstats_format(const hak_snapshot_t *s, int pid, uint64_t now_ns, unsigned flags,
                          void (*write)(void *arg, const char *text), void *arg) {
    out_t *o = hak_libc_malloc(sizeof *o);
    if (o == NULL) return;
    o->write = write;
    o->arg = arg;
    o->n = 0;
    if (flags & HAK_STATS_PRINT_JSON) print_json(o, s, pid, now_ns);
    else print_text(o, s, pid, now_ns);
    out_flush(o);
    hak_libc_free(o);
}

static void write_stderr(void *arg, const char *text) {
    (void)arg;
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t w = write(2, text, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        text += w;
        len -= (size_t)w;
    }
}

int hak_stats_print(void (*write)(void *arg, const char *text), void *arg, unsigned flags) {
    if (write == NULL) write = write_stderr;
    if (!hak_init()) return -EAGAIN;
    if (flags & ~(unsigned)HAK_STATS_PRINT_JSON) return -EINVAL;
    int saved = errno;
    hak_snapshot_t *s = hak_libc_malloc(sizeof *s);
    if (s == NULL) return -ENOMEM;
    int rc = hak_shm_snapshot(hak_seg, s);
    if (rc == 0) hak_showstats_format(s, (int)getpid(), hak_wall_ns(), flags, write, arg);
    hak_libc_free(s);
    errno = saved;
    return rc == 0 ? 0 : -EBUSY;
}

// ---------------------------------------------------------------------------
// At exit
// ---------------------------------------------------------------------------
typedef struct fd_sink { int fd, err; } fd_sink_t;

static void write_fd(void *arg, const char *text) {
    fd_sink_t *f = arg;
    size_t len = strlen(text);
    while (len > 0 && f->err == 0) {
        ssize_t w = write(f->fd, text, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            f->err = w < 0 ? errno : EIO;
            return;
        }
        text += w;
        len -= (size_t)w;
    }
}

/* HAKMEM_STATS_FILE with "%p" replaced by the pid and "%%" by "%".
 * Returns 0, or -ENAMETOOLONG. */
int hak_showstats_path(const char *pattern, int pid, char *out, size_t len) {
    size_t n = 0;
    for (const char *p = pattern; *p; p++) {
        char num[16];
        const char *add = p;
        size_t alen = 1;
        if (p[0] == '%' && p[1] == 'p') {
            alen = (size_t)snprintf(num, sizeof num, "%d", pid);
            add = num;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            p++;
        }
        if (n + alen >= len) return -ENAMETOOLONG;
        memcpy(out + n, add, alen);
        n += alen;
    }
    out[n] = '\0';
    return 0;
}

/* Write the JSON to path atomically: a temporary file in the same directory,
 * then rename(2), so a reader sees the old file or the whole new one. */
static int write_json_file(const char *path) {
    char tmp[sizeof hak_opt.stats_file + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    fd_sink_t f = {open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666), 0};
    if (f.fd < 0) return -errno;
    int rc = hak_stats_print(write_fd, &f, HAK_STATS_PRINT_JSON);
    if (rc == 0 && f.err) rc = -f.err;
    if (close(f.fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc != 0) unlink(tmp);
    return rc;
}

void hak_showstats_at_exit(void) {
    int saved = errno;
    if (hak_opt.show_stats) hak_stats_print(NULL, NULL, 0);
    if (hak_opt.stats_file[0] != '\0') {
        char path[sizeof hak_opt.stats_file];
        int rc = hak_showstats_path(hak_opt.stats_file, (int)getpid(), path, sizeof path);
        if (rc == 0) rc = write_json_file(path);
        if (rc != 0)
            hak_warn("HAKMEM_STATS_FILE=%s: %s; statistics not written", hak_opt.stats_file,
                     rc == -EBUSY ? "no consistent snapshot of the counters" : strerror(-rc));
    }
    errno = saved;
}
