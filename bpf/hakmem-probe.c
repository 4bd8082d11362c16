/*
 * hakmem-probe - kernel-side view of a process running libhakmem (eBPF, libbpf CO-RE).
 *
 *   hakmem-probe [options] -p PID          attach to a running process
 *   hakmem-probe [options] -- CMD ARGS...  run CMD under libhakmem, traced from its exec on
 *
 * Loads hakmem.bpf.c (embedded skeleton) filtered to the target's tgid, attaches
 * the syscall tracepoints (mmap, munmap, madvise, mremap) and the USDT probes of
 * libhakmem.so, prints one line per Batch flush as it happens, and at the end
 * the totals, the latency histograms and a cross-check against the library's
 * own counters in /dev/shm/hakmem.<pid>.  --publish writes the kernel figures
 * into that segment's kernel section for the tuner.
 *
 * How "-- CMD" starts the command without missing anything and without ptrace:
 * fork; the child waits on a pipe; the parent loads the BPF program with the
 * child's pid as target and attaches the tracepoints and the USDT probes to
 * the child by pid and by the path of libhakmem.so (uprobes live on the file's
 * inode, so they arm themselves when ld.so maps the library after exec); then
 * the parent releases the child, which execs CMD with libhakmem.so in
 * LD_PRELOAD.  The tgid survives exec, so the filter holds.
 *
 * Exit status: the table every hakmem tool shares (tools/cli.h, README.md):
 * 0 ok, 1 runtime error, 2 usage, 3 no such process, 4 libhakmem.so not
 * mapped, 5 missing privilege (CAP_BPF + CAP_PERFMON or CAP_SYS_ADMIN), 13 not
 * possible here (no kernel BTF, no tracefs / syscall tracepoints, a library
 * without USDT probes).  With "-- CMD", once CMD ran: CMD's exit status (128+N
 * if killed by signal N).
 *
 * Event times are the kernel's (bpf_ktime_get_ns in the BPF program, i.e.
 * CLOCK_MONOTONIC), printed relative to the moment the probe was loaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "hakmem/shm.h"
#include "../tools/cli.h"
#include "hakmem_bpf.h"
#include "hakmem.skel.h"

static const char *prog_name = "hakmem-probe";

/* ---- options ---- */
static struct {
    int pid;
    char **cmd;
    double interval, duration;
    long count;                  /* with an interval: stop after count summaries (0 = no limit) */
    bool json, publish, quiet, verbose, outside, cont, no_preload, check_only;
    const char *lib;
} opt;

static void usage(FILE *f) {
    fprintf(f,
        "Usage: %s [options] -p PID [interval [count]]\n"
        "       %s [options] -- CMD [ARGS...]\n"
        "Kernel-side view of a process running libhakmem: mmap/munmap/madvise/mremap\n"
        "counts, bytes and latency, munmaps inside vs outside Batch flush windows, and\n"
        "one line per flush (blocks, bytes, merged ranges, munmap calls, kernel time).\n"
        "Event times are kernel timestamps, in seconds since the probe was loaded.\n"
        "\n"
        "  -p, --pid PID        attach to a running process that has libhakmem.so mapped\n"
        "  interval [count]     with -p: print a summary every interval seconds, count\n"
        "                       times (then stop); the same as -i interval\n"
        "      --cont           with -p: send SIGCONT once attached (for a process that\n"
        "                       stopped itself to wait for the probe: nothing is missed)\n"
        "  -- CMD ARGS...       run CMD with libhakmem.so preloaded, traced from its exec;\n"
        "                       hakmem-probe then exits with CMD's exit status\n"
        "  -L, --lib PATH       libhakmem.so to probe (default: from /proc/PID/maps with -p;\n"
        "                       else $LD_PRELOAD, $HAKMEM_LIB, next to this program or in ../lib)\n"
        "      --no-preload     with --: do not add the library to CMD's LD_PRELOAD\n"
        "  -i, --interval SEC   print a summary every SEC seconds (fractions allowed)\n"
        "  -d, --duration SEC   stop after SEC seconds (the target keeps running)\n"
        "  -j, --json           JSON lines: flush/knob/outside_munmap/interval/summary records\n"
        "  -P, --publish        write the kernel figures into the target's segment\n"
        "                       (kernel section of /dev/shm/hakmem.PID) every interval\n"
        "                       (default 1 s) and at the end, for the tuner\n"
        "  -o, --outside        also print every munmap outside flush windows\n"
        "  -q, --quiet          no per-flush lines\n"
        "  -v, --verbose        libbpf debug output\n"
        "      --check          only check that probing can work here; exit with the code\n"
        "  -h, --help           this text\n"
        "  -V, --version        the hakmem version\n"
        "\n",
        prog_name, prog_name);
    hak_cli_print_exit_table(f);
    fputs("  With -- CMD, once CMD ran: CMD's exit status (128+N if a signal N killed it).\n"
          "  Conventions shared by the hakmem tools: README.md, \"Command-line conventions\n"
          "  and exit status\".\n",
          f);
}

#define PROBE_MAX_S 1e7

static double parse_seconds(const char *s, const char *what) {
    double v;
    if (hak_cli_parse_seconds(s, 1e-3, PROBE_MAX_S, &v) != 0)
        exit(hak_cli_usage_error("%s '%s' is not a number of seconds >= 0.001", what, s));
    return v;
}

static void parse_args(int argc, char **argv) {
    enum { O_CONT = 1000, O_NO_PRELOAD, O_CHECK };
    static const struct option longs[] = {
        {"pid", required_argument, 0, 'p'},      {"lib", required_argument, 0, 'L'},
        {"interval", required_argument, 0, 'i'}, {"duration", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},           {"publish", no_argument, 0, 'P'},
        {"outside", no_argument, 0, 'o'},        {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {"cont", no_argument, 0, O_CONT},        {"no-preload", no_argument, 0, O_NO_PRELOAD},
        {"check", no_argument, 0, O_CHECK},      {0, 0, 0, 0},
    };
    int c;
    bool have_interval = false;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:p:L:i:d:jPoqvhV", longs, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (hak_cli_parse_pid(optarg, &opt.pid) != 0) exit(hak_cli_usage_error("'%s' is not a process id", optarg));
            break;
        case 'L': opt.lib = optarg; break;
        case 'i':
            opt.interval = parse_seconds(optarg, "interval");
            have_interval = true;
            break;
        case 'd': opt.duration = parse_seconds(optarg, "duration"); break;
        case 'j': opt.json = true; break;
        case 'P': opt.publish = true; break;
        case 'o': opt.outside = true; break;
        case 'q': opt.quiet = true; break;
        case 'v': opt.verbose = true; break;
        case O_CONT: opt.cont = true; break;
        case O_NO_PRELOAD: opt.no_preload = true; break;
        case O_CHECK: opt.check_only = true; break;
        case 'h': usage(stdout); exit(hak_cli_stdout_done());
        case 'V': exit(hak_cli_version(NULL));
        default: exit(hak_cli_bad_option(c, argv));
        }
    }
    /* What follows the options: after "--" the command to run; with -p and no
     * "--", the bcc-style [interval [count]]. */
    bool dashdash = optind > 1 && strcmp(argv[optind - 1], "--") == 0;
    if (optind < argc && opt.pid != 0 && !dashdash) {
        int npos = 0;
        double iv = 0;
        int rc = hak_cli_interval_count(argv + optind, argc - optind, 1e-3, PROBE_MAX_S, &iv, &opt.count, &npos);
        if (rc != 0) exit(rc);
        if (have_interval) exit(hak_cli_usage_error("the interval is given twice (-i and '%s')", argv[optind]));
        opt.interval = iv;
    } else if (optind < argc) {
        opt.cmd = &argv[optind];
    }
    if (opt.check_only) return;
    if ((opt.pid != 0) == (opt.cmd != NULL))
        exit(hak_cli_usage_error(opt.pid ? "give either -p PID or -- CMD, not both"
                                         : "nothing to trace: give -p PID or -- CMD ARGS"));
    if (opt.cont && !opt.pid) exit(hak_cli_usage_error("--cont goes with -p"));
}

/* ---- preflight: say exactly what is missing ---- */

static uint64_t cap_eff(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t caps = 0;
    if (!f) return ~0ull;   /* cannot tell: let the kernel decide */
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "CapEff: %" SCNx64, &caps) == 1) break;
    fclose(f);
    return caps;
}

static int check_privilege(void) {
    uint64_t caps = cap_eff();
    bool sys_admin = caps & (1ull << 21), perfmon = caps & (1ull << 38), bpf = caps & (1ull << 39);
    if (sys_admin || (bpf && perfmon)) return 0;
    char missing[64] = "";
    if (!bpf) strcat(missing, "CAP_BPF");
    if (!perfmon) strcat(missing, *missing ? " and CAP_PERFMON" : "CAP_PERFMON");
    hak_cli_error("missing privilege: loading the eBPF probe needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); "
            "this process (uid %u) lacks %s. Run it as root with full capabilities, or grant them: "
            "setcap cap_bpf,cap_perfmon+ep %s. "
            "The traced program is not affected.",
            (unsigned)getuid(), missing, "hakmem-probe");
    return HAK_EXIT_PERM;
}

static int check_btf(void) {
    if (access("/sys/kernel/btf/vmlinux", R_OK) == 0) return 0;
    hak_cli_error("missing kernel BTF: /sys/kernel/btf/vmlinux is %s; the CO-RE probe needs a kernel built "
            "with CONFIG_DEBUG_INFO_BTF=y. The traced program is not affected.",
            errno == ENOENT ? "absent" : strerror(errno));
    return HAK_EXIT_UNSUPPORTED;
}

/* libbpf 1.1 reads tracepoint ids from /sys/kernel/debug/tracing if that
 * directory exists, else from /sys/kernel/tracing. */
static int check_tracefs(void) {
    const char *root = access("/sys/kernel/debug/tracing", F_OK) == 0 ? "/sys/kernel/debug/tracing" : "/sys/kernel/tracing";
    char path[256];
    static const char *const tps[] = {"sys_enter_munmap", "sys_exit_munmap", "sys_enter_mmap", "sys_exit_mmap",
                                      "sys_enter_madvise", "sys_exit_madvise", "sys_enter_mremap", "sys_exit_mremap"};
    snprintf(path, sizeof path, "%s/events", root);
    if (access(path, F_OK) != 0) {
        hak_cli_error("tracefs is not mounted at %s (the syscall tracepoints need it): "
                "mount -t tracefs tracefs /sys/kernel/tracing",
                root);
        return HAK_EXIT_UNSUPPORTED;
    }
    for (size_t i = 0; i < sizeof tps / sizeof tps[0]; i++) {
        snprintf(path, sizeof path, "%s/events/syscalls/%s/id", root, tps[i]);
        if (access(path, R_OK) != 0) {
            hak_cli_error("syscall tracepoint syscalls:%s is not available (%s: %s); the kernel needs "
                    "CONFIG_FTRACE_SYSCALLS=y",
                    tps[i], path, strerror(errno));
            return HAK_EXIT_UNSUPPORTED;
        }
    }
    return 0;
}

/* ---- the library: its path and text range in the target ---- */

struct libinfo {
    char path[PATH_MAX];         /* path to open / attach to */
    uint64_t lo, hi;             /* text range in the target (0 = unknown yet) */
    uint64_t ino;
    uint32_t kdev;               /* kernel dev_t encoding */
};

static bool is_hakmem_lib_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return strncmp(b, "libhakmem", 9) == 0 && strstr(b, ".so") != NULL;
}

/* -p: find libhakmem in /proc/PID/maps. 0, or an exit status with a message. */
static int lib_from_maps(int pid, const char *want, struct libinfo *li) {
    char path[64], line[PATH_MAX + 256];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        hak_cli_error("cannot read %s: %s", path, strerror(errno));
        return errno == ENOENT || errno == ESRCH ? HAK_EXIT_NOPROC
               : errno == EACCES || errno == EPERM ? HAK_EXIT_PERM : HAK_EXIT_ERROR;
    }
    char wantreal[PATH_MAX] = "";
    if (want && !realpath(want, wantreal)) snprintf(wantreal, sizeof wantreal, "%s", want);
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        uint64_t lo, hi, off, ino;
        unsigned maj, min;
        char perms[8];
        int n = 0;
        if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %n", &lo, &hi, perms, &off, &maj,
                   &min, &ino, &n) < 7 || n == 0)
            continue;
        char *file = line + n;
        file[strcspn(file, "\n")] = '\0';
        if (*file != '/') continue;
        bool deleted = false;
        char *d = strstr(file, " (deleted)");
        if (d && d[10] == '\0') {
            *d = '\0';
            deleted = true;
        }
        if (*wantreal ? strcmp(file, wantreal) != 0 : !is_hakmem_lib_name(file)) continue;
        if (!found) {
            found = true;
            li->ino = ino;
            li->kdev = (maj << 20) | min;
            if (deleted) /* replaced on disk since: go through the process's own mapping */
                snprintf(li->path, sizeof li->path, "/proc/%d/map_files/%llx-%llx", pid, (unsigned long long)lo, (unsigned long long)hi);
            else
                snprintf(li->path, sizeof li->path, "%s", file);
        }
        if (perms[2] == 'x' && ino == li->ino) {
            li->lo = lo;
            li->hi = hi;
        }
    }
    fclose(f);
    if (!found) {
        hak_cli_error("process %d has no %s mapped (not running under hakmem? start it with LD_PRELOAD=libhakmem.so)",
                pid, *wantreal ? wantreal : "libhakmem*.so");
        return HAK_EXIT_NOHAKMEM;
    }
    return 0;
}

/* -- CMD: which library to preload and probe. */
static int lib_for_command(struct libinfo *li) {
    char cand[PATH_MAX] = "";
    if (opt.lib) {
        snprintf(cand, sizeof cand, "%s", opt.lib);
    } else {
        const char *pre = getenv("LD_PRELOAD");
        if (pre) {
            char tmp[PATH_MAX * 2];
            snprintf(tmp, sizeof tmp, "%s", pre);
            for (char *save = NULL, *tok = strtok_r(tmp, ": ", &save); tok; tok = strtok_r(NULL, ": ", &save))
                if (is_hakmem_lib_name(tok)) {
                    snprintf(cand, sizeof cand, "%s", tok);
                    break;
                }
        }
        if (!*cand && getenv("HAKMEM_LIB")) snprintf(cand, sizeof cand, "%s", getenv("HAKMEM_LIB"));
        if (!*cand) {
            char self[PATH_MAX];
            ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
            if (n > 0) {
                self[n] = '\0';
                char *slash = strrchr(self, '/');
                if (slash) {
                    *slash = '\0';
                    snprintf(cand, sizeof cand, "%.*s/libhakmem.so", (int)(sizeof cand - 16), self);
                    /* installed: PREFIX/sbin/hakmem-probe, PREFIX/lib/libhakmem.so */
                    if (access(cand, R_OK) != 0)
                        snprintf(cand, sizeof cand, "%.*s/../lib/libhakmem.so", (int)(sizeof cand - 24), self);
                }
            }
        }
    }
    struct stat st;
    if (!*cand || stat(cand, &st) != 0) {
        hak_cli_error("cannot find libhakmem.so%s%s%s%s: give it with --lib PATH", *cand ? " at " : "", cand,
                *cand ? ": " : "", *cand ? strerror(errno) : "");
        return HAK_EXIT_ERROR;
    }
    if (!realpath(cand, li->path)) snprintf(li->path, sizeof li->path, "%s", cand);
    li->ino = st.st_ino;
    li->kdev = (major(st.st_dev) << 20) | minor(st.st_dev);
    return 0;
}

/* ---- output helpers ---- */

#define mono_ns hak_cli_mono_ns
#define wall_ns hak_cli_wall_ns

static const char *fmt_bytes(uint64_t b, char *buf, size_t len) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, len, "%llu B", (unsigned long long)b);
    else snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}

static const char *fmt_ns(uint64_t ns, char *buf, size_t len) {
    if (ns < 1000) snprintf(buf, len, "%llu ns", (unsigned long long)ns);
    else if (ns < 1000000) snprintf(buf, len, "%.1f us", ns / 1e3);
    else if (ns < 1000000000) snprintf(buf, len, "%.2f ms", ns / 1e6);
    else snprintf(buf, len, "%.2f s", ns / 1e9);
    return buf;
}

static const char *knob_name(uint64_t k) {
    switch (k) {
    case 1: return "ring_cap";
    case 2: return "batch_threshold";
    case 3: return "cache_max_bytes";
    default: return "unknown";
    }
}

static const char *const evict_names[HP_EVICT_REASONS] = {"ring_full", "cap_lowered", "budget", "idle_trim",
                                                           "uncacheable"};

/* ---- state ---- */

static struct hakmem_bpf *skel;
static struct ring_buffer *rb;
static int target_pid;
static uint64_t t_start;
static const char *lib_path = "";

static struct {
    unsigned long long events, blocks, bytes, ranges, lib_calls, k_calls, k_bytes, k_ns, mismatches;
    unsigned long long knob_events, outside_events;
} seen;

/* the library's segment */
static hak_shm_handle_t seg = {.fd = -1};
static bool seg_open, seg_have_base;
static hak_snapshot_t seg_base;      /* counters at attach (-p) or zero (-- CMD) */
static int seg_last_err;

static const volatile struct hp_counters *kc(void) { return &skel->bss->counters; }

/* Seconds since the probe was loaded of a kernel timestamp (bpf_ktime_get_ns,
 * CLOCK_MONOTONIC like t_start). */
static double ktime_s(uint64_t ktime_ns) { return ktime_ns > t_start ? (double)(ktime_ns - t_start) / 1e9 : 0.0; }

static int on_event(void *ctx, void *data, size_t size) {
    uint32_t type = size >= 4 ? *(uint32_t *)data : 0;
    char b1[32], b2[32], b3[32], b4[32], b5[32];
    double t;
    if (type == HP_EV_FLUSH && size >= sizeof(struct hp_ev_flush)) {
        const struct hp_ev_flush *e = data;
        t = ktime_s(e->begin_ns);   /* when the flush began, in the kernel */
        seen.events++;
        seen.blocks += e->blocks;
        seen.bytes += e->bytes;
        seen.ranges += e->ranges;
        seen.lib_calls += e->lib_calls;
        seen.k_calls += e->k_calls;
        seen.k_bytes += e->k_bytes;
        seen.k_ns += e->k_ns;
        bool mismatch = e->k_calls != e->lib_calls;
        if (mismatch) seen.mismatches++;
        if (opt.quiet) return 0;
        if (opt.json) {
            printf("{\"event\":\"flush\",\"t\":%.6f,\"id\":%llu,\"tid\":%u,\"blocks\":%llu"
                   ",\"bytes\":%llu,\"ranges\":%llu,\"lib_munmap_calls\":%llu"
                   ",\"lib_ns\":%llu,\"kernel_munmap_calls\":%llu,\"kernel_munmap_bytes\":%llu"
                   ",\"kernel_munmap_ns\":%llu,\"kernel_munmap_errors\":%llu,\"window_ns\":%llu,\"begin_ktime\":%llu"
                   ",\"end_ktime\":%llu}\n",
                   t, e->id, e->tid, e->blocks, e->bytes, e->ranges, e->lib_calls, e->lib_ns, e->k_calls, e->k_bytes,
                   e->k_ns, e->k_errors, e->end_ns - e->begin_ns, e->begin_ns, e->end_ns);
        } else {
            printf("%9.3f flush #%-5llu tid %-7u %5llu blocks %10s -> %3llu ranges, %3llu"
                   " munmap | kernel: %3llu munmap %10s in %9s (window %s, library %s)%s%s\n",
                   t, e->id, e->tid, e->blocks, fmt_bytes(e->bytes, b1, sizeof b1), e->ranges, e->lib_calls, e->k_calls,
                   fmt_bytes(e->k_bytes, b2, sizeof b2), fmt_ns(e->k_ns, b3, sizeof b3),
                   fmt_ns(e->end_ns - e->begin_ns, b4, sizeof b4), fmt_ns(e->lib_ns, b5, sizeof b5),
                   e->k_errors ? " ERRORS" : "", mismatch ? " MISMATCH" : "");
        }
    } else if (type == HP_EV_KNOB && size >= sizeof(struct hp_ev_knob)) {
        const struct hp_ev_knob *e = data;
        t = ktime_s(e->ts_ns);
        seen.knob_events++;
        if (opt.json)
            printf("{\"event\":\"knob\",\"t\":%.6f,\"tid\":%u,\"knob\":%llu,\"name\":\"%s\",\"old\":%llu"
                   ",\"new\":%llu}\n",
                   t, e->tid, e->knob, knob_name(e->knob), e->old_value, e->new_value);
        else
            printf("%9.3f knob %s: %llu -> %llu (tid %u)\n", t, knob_name(e->knob), e->old_value,
                   e->new_value, e->tid);
    } else if (type == HP_EV_OUTSIDE && size >= sizeof(struct hp_ev_outside)) {
        const struct hp_ev_outside *e = data;
        static const char *const callers[] = {"other", "hakmem", "unknown"};
        const char *caller = e->caller < 3 ? callers[e->caller] : "?";
        t = ktime_s(e->ts_ns);
        seen.outside_events++;
        if (opt.json)
            printf("{\"event\":\"outside_munmap\",\"t\":%.6f,\"tid\":%u,\"addr\":%llu,\"len\":%llu"
                   ",\"ns\":%llu,\"caller\":\"%s\",\"hakmem_map\":%s,\"ret\":%lld,\"ret_addr\":%llu"
                   ",\"end_ktime\":%llu}\n",
                   t, e->tid, e->addr, e->len, e->ns, caller, e->hakmem_map ? "true" : "false", (long long)e->ret,
                   e->ret_addr, e->ts_ns);
        else
            printf("%9.3f munmap outside flush windows: tid %u addr 0x%llx len %s (%llu) in %s, caller %s (0x%llx)%s%s\n",
                   t, e->tid, e->addr, fmt_bytes(e->len, b1, sizeof b1), e->len, fmt_ns(e->ns, b2, sizeof b2), caller,
                   e->ret_addr, e->hakmem_map ? ", HAKMEM MAPPING" : "", (long long)e->ret ? " (failed)" : "");
    }
    return 0;
}

/* ---- the segment: library counters, kernel section ---- */

/* The segment shrank under a read or a write (SIGBUS, caught: cli.h): it is
 * let go, and said as a truncated segment. */
static void seg_lost(void) {
    hak_shm_close(&seg);
    seg_open = false;
    seg_last_err = -HAK_SHM_ESHORT;
}

static void seg_try_open(void) {
    if (seg_open) return;
    int rc;
    HAK_CLI_GUARDED(rc, hak_shm_open_pid(target_pid, &seg));
    if (rc != 0) {
        seg_last_err = rc;
        return;
    }
    seg_open = true;
    if (opt.pid && !seg_have_base) {   /* attached mid-run: compare deltas */
        HAK_CLI_GUARDED(rc, hak_shm_snapshot(seg.shm, &seg_base));
        if (rc == 0) seg_have_base = true;
        else if (rc == -HAK_SHM_ESHORT) seg_lost();
    }
}

static int publish_kernel(void);

static void publish(void) {
    if (!opt.publish) return;
    seg_try_open();
    if (!seg_open) return;
    int rc;
    HAK_CLI_GUARDED(rc, publish_kernel());
    if (rc == -HAK_SHM_ESHORT) seg_lost();
}

/* The kernel's figures into the segment's kernel section (under the guard). */
static int publish_kernel(void) {
    if (seg.map_size < sizeof(hak_shm_t) || (fcntl(seg.fd, F_GETFL) & O_ACCMODE) != O_RDWR) {
        static bool warned;
        if (!warned) hak_cli_error("--publish: /dev/shm/hakmem.%d is not writable by this process", target_pid);
        warned = true;
        return 0;
    }
    const volatile struct hp_counters *c = kc();
    hak_shm_kernel_t *k = &seg.shm->kernel;
    _Atomic uint64_t *gen = (_Atomic uint64_t *)&k->gen;
    uint64_t g = atomic_load_explicit(gen, memory_order_relaxed);
    if (g & 1) g++;   /* a publisher died mid-write: recover */
    atomic_store_explicit(gen, g + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
#define PUT(field, v) atomic_store_explicit((_Atomic uint64_t *)&k->field, (v), memory_order_relaxed)
    PUT(munmap_calls, c->munmap_in_calls);
    PUT(munmap_bytes, c->munmap_in_bytes);
    PUT(munmap_ns_total, c->munmap_in_ns);
    PUT(munmap_outside_flush, c->munmap_out_calls);
    PUT(madvise_calls, c->madvise_calls);
    PUT(madvise_ns_total, c->madvise_ns);
    PUT(updated_ns, wall_ns());
#undef PUT
    atomic_store_explicit(gen, g + 2, memory_order_release);
    return 0;
}

/* ---- histograms ---- */

static void read_hist(unsigned h, unsigned long long out[HP_HIST_SLOTS]) {
    int ncpu = libbpf_num_possible_cpus();
    memset(out, 0, HP_HIST_SLOTS * sizeof out[0]);
    if (ncpu <= 0) return;
    uint64_t *vals = calloc((size_t)ncpu, sizeof *vals);
    if (!vals) return;
    for (unsigned s = 0; s < HP_HIST_SLOTS; s++) {
        uint32_t key = h * HP_HIST_SLOTS + s;
        if (bpf_map__lookup_elem(skel->maps.hists, &key, sizeof key, vals, (size_t)ncpu * sizeof *vals, 0) != 0)
            continue;
        for (int c = 0; c < ncpu; c++) out[s] += vals[c];
    }
    free(vals);
}

static const char *slot_label(unsigned s, char *buf, size_t len) {
    if (s >= 64) s = 63;
    static const char *const suf[] = {"", "K", "M", "G", "T", "P", "E"};
    unsigned long long v = s == 0 ? 0 : 1ull << s;
    int u = 0;
    while (v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, "%llu" "%s", v, suf[u]);
    return buf;
}

static void print_hist(const char *title, const unsigned long long h[HP_HIST_SLOTS]) {
    unsigned long long total = 0, max = 0;
    int lo = -1, hi = -1;
    for (int s = 0; s < (int)HP_HIST_SLOTS; s++) {
        total += h[s];
        if (h[s] > max) max = h[s];
        if (h[s]) {
            if (lo < 0) lo = s;
            hi = s;
        }
    }
    printf("\n%s: %llu samples\n", title, total);
    if (!total) return;
    for (int s = lo; s <= hi; s++) {
        char a[24], b[24], r[56];
        slot_label((unsigned)s, a, sizeof a);
        slot_label((unsigned)s + 1, b, sizeof b);
        snprintf(r, sizeof r, "[%s, %s)", a, b);
        int bar = (int)(h[s] * 52 / max);
        printf("%-16s %8llu |%.*s%*s|\n", r, h[s], bar,
               "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@", 52 - bar, "");
    }
}

static void json_hist(const char *name, const unsigned long long h[HP_HIST_SLOTS], bool *first) {
    printf("%s\"%s\":{", *first ? "" : ",", name);
    *first = false;
    bool f = true;
    for (unsigned s = 0; s < HP_HIST_SLOTS; s++) {
        if (!h[s]) continue;
        printf("%s\"%u\":%llu", f ? "" : ",", s, h[s]);
        f = false;
    }
    printf("}");
}

/* ---- reports ---- */

static void print_interval(double t) {
    const volatile struct hp_counters *c = kc();
    char b1[32], b2[32];
    if (opt.json) {
        printf("{\"event\":\"interval\",\"t\":%.6f,\"flushes\":%llu,\"munmap_inside_calls\":%llu"
               ",\"munmap_inside_bytes\":%llu,\"munmap_inside_ns\":%llu,\"munmap_outside_calls\":%llu"
               ",\"munmap_outside_hakmem_code_calls\":%llu,\"mmap_calls\":%llu,\"madvise_calls\":%llu"
               ",\"mremap_calls\":%llu}\n",
               t, c->flush_ends, c->munmap_in_calls, c->munmap_in_bytes, c->munmap_in_ns, c->munmap_out_calls,
               c->munmap_out_hakmem_code_calls, c->mmap_calls, c->madvise_calls, c->mremap_calls);
    } else {
        printf("%9.3f -- flushes %llu, munmap inside %llu (%s, %s), outside %llu (hakmem code %llu"
               "), mmap %llu, madvise %llu, mremap %llu\n",
               t, c->flush_ends, c->munmap_in_calls, fmt_bytes(c->munmap_in_bytes, b1, sizeof b1),
               fmt_ns(c->munmap_in_ns, b2, sizeof b2), c->munmap_out_calls, c->munmap_out_hakmem_code_calls,
               c->mmap_calls, c->madvise_calls, c->mremap_calls);
    }
    fflush(stdout);
}

struct libcmp {
    bool have;
    int err;
    unsigned long long munmap_calls, munmap_bytes, flushes, blocks, bytes, ranges, mmap_calls, madvise_calls, mremap_calls;
};

static struct libcmp library_counters(void) {
    struct libcmp l = {0};
    seg_try_open();
    if (!seg_open) {
        l.err = seg_last_err;
        return l;
    }
    static hak_snapshot_t s;
    int rc;
    HAK_CLI_GUARDED(rc, hak_shm_snapshot(seg.shm, &s));
    if (rc == -HAK_SHM_ESHORT) seg_lost();
    if (rc != 0) {
        l.err = rc;
        return l;
    }
    const uint64_t *c = s.counter, *b = seg_have_base ? seg_base.counter : NULL;
#define D(id) (c[id] - (b ? b[id] : 0))
    l.munmap_calls = D(HAK_C_munmap_calls);
    l.munmap_bytes = D(HAK_C_munmap_bytes);
    l.flushes = D(HAK_C_batch_flushes);
    l.blocks = D(HAK_C_batch_blocks_flushed);
    l.bytes = D(HAK_C_batch_bytes_flushed);
    l.ranges = D(HAK_C_batch_ranges_flushed);
    l.mmap_calls = D(HAK_C_mmap_calls);
    l.madvise_calls = D(HAK_C_madvise_calls);
    l.mremap_calls = D(HAK_C_mremap_calls);
#undef D
    l.have = true;
    return l;
}

static void final_report(bool exited, int status, const char *why) {
    const volatile struct hp_counters *c = kc();
    struct hp_counters k;
    memcpy(&k, (const void *)c, sizeof k);
    unsigned long long hs[HP_NHIST][HP_HIST_SLOTS];
    for (unsigned h = 0; h < HP_NHIST; h++) read_hist(h, hs[h]);
    struct libcmp l = library_counters();
    double t = (mono_ns() - t_start) / 1e9;
    bool ok_calls = l.have && l.munmap_calls == k.munmap_in_calls;
    bool ok_bytes = l.have && l.munmap_bytes == k.munmap_in_bytes;
    bool ok_flush = l.have && l.flushes == seen.events;
    bool ok_out = k.munmap_out_hakmem_code_calls == 0 && k.munmap_out_hakmem_map_calls == 0;
    char b1[32], b2[32], b3[32];

    if (opt.json) {
        printf("{\"event\":\"summary\",\"pid\":%d,\"duration_s\":%.6f,\"target_exited\":%s,\"exit_status\":%d,"
               "\"stopped_by\":",
               target_pid, t, exited ? "true" : "false", status);
        hak_json_string(stdout, why);
        fputs(",\"library\":", stdout);
        hak_json_string(stdout, lib_path);
        fputc(',', stdout);
        printf("\"syscalls\":{\"mmap\":{\"calls\":%llu,\"bytes\":%llu,\"errors\":%llu},"
               "\"munmap\":{\"calls\":%llu,\"bytes\":%llu,\"errors\":%llu,\"ns\":%llu},"
               "\"madvise\":{\"calls\":%llu,\"bytes\":%llu,\"errors\":%llu,\"ns\":%llu},"
               "\"mremap\":{\"calls\":%llu,\"bytes\":%llu,\"errors\":%llu}},",
               k.mmap_calls, k.mmap_bytes, k.mmap_errors, k.munmap_calls, k.munmap_bytes, k.munmap_errors, k.munmap_ns,
               k.madvise_calls, k.madvise_bytes, k.madvise_errors, k.madvise_ns, k.mremap_calls, k.mremap_bytes,
               k.mremap_errors);
        printf("\"munmap_inside\":{\"calls\":%llu,\"bytes\":%llu,\"ns\":%llu},"
               "\"munmap_outside\":{\"calls\":%llu,\"bytes\":%llu,\"ns\":%llu"
               ",\"hakmem_code_calls\":%llu,\"hakmem_code_bytes\":%llu,\"hakmem_map_calls\":%llu"
               ",\"hakmem_map_bytes\":%llu,\"caller_unknown\":%llu},",
               k.munmap_in_calls, k.munmap_in_bytes, k.munmap_in_ns, k.munmap_out_calls, k.munmap_out_bytes,
               k.munmap_out_ns, k.munmap_out_hakmem_code_calls, k.munmap_out_hakmem_code_bytes,
               k.munmap_out_hakmem_map_calls, k.munmap_out_hakmem_map_bytes, k.munmap_out_caller_unknown);
        printf("\"flushes\":{\"events\":%llu,\"begins\":%llu,\"ends\":%llu,\"unmatched_ends\":%llu"
               ",\"blocks\":%llu,\"bytes\":%llu,\"ranges\":%llu,\"lib_munmap_calls\":%llu"
               ",\"lib_ns\":%llu,\"event_kernel_munmap_calls\":%llu,\"event_kernel_munmap_bytes\":%llu"
               ",\"event_kernel_munmap_ns\":%llu,\"mismatched_events\":%llu},",
               seen.events, k.flush_begins, k.flush_ends, k.flush_unmatched_ends, k.flush_blocks, k.flush_bytes,
               k.flush_ranges, k.flush_lib_calls, k.flush_lib_ns, seen.k_calls, seen.k_bytes, seen.k_ns,
               seen.mismatches);
        printf("\"evictions\":{");
        for (unsigned r = 0; r < HP_EVICT_REASONS; r++)
            printf("%s\"%s\":{\"blocks\":%llu,\"bytes\":%llu}", r ? "," : "", evict_names[r],
                   k.evictions[r], k.evict_bytes[r]);
        printf("},\"knob_changes\":%llu,\"hakmem_maps_tracked\":%llu,\"hakmem_maps_overflow\":%llu"
               ",\"ringbuf_drops\":%llu,\"hakmem_range_from_usdt\":%llu,\"histograms_log2_ns\":{",
               k.knob_changes, k.hakmem_maps_tracked, k.hakmem_maps_overflow, k.ringbuf_drops, k.hakmem_range_from_usdt);
        bool first = true;
        json_hist("munmap_inside", hs[HP_HIST_MUNMAP_IN], &first);
        json_hist("munmap_outside", hs[HP_HIST_MUNMAP_OUT], &first);
        json_hist("madvise", hs[HP_HIST_MADVISE], &first);
        json_hist("flush_window", hs[HP_HIST_FLUSH], &first);
        printf("},\"library_counters\":");
        if (l.have)
            printf("{\"since_attach\":%s,\"munmap_calls\":%llu,\"munmap_bytes\":%llu"
                   ",\"batch_flushes\":%llu,\"batch_blocks_flushed\":%llu,\"batch_bytes_flushed\":%llu"
                   ",\"batch_ranges_flushed\":%llu,\"mmap_calls\":%llu,\"madvise_calls\":%llu"
                   ",\"mremap_calls\":%llu},\"crosscheck\":{\"munmap_calls\":%s,\"munmap_bytes\":%s,"
                   "\"flushes\":%s,\"no_hakmem_munmap_outside\":%s}",
                   seg_have_base ? "true" : "false", l.munmap_calls, l.munmap_bytes, l.flushes, l.blocks, l.bytes,
                   l.ranges, l.mmap_calls, l.madvise_calls, l.mremap_calls, ok_calls ? "true" : "false",
                   ok_bytes ? "true" : "false", ok_flush ? "true" : "false", ok_out ? "true" : "false");
        else {
            fputs("null,\"library_counters_error\":", stdout);
            hak_json_string(stdout, hak_shm_strerror(l.err));
            printf(",\"crosscheck\":{\"no_hakmem_munmap_outside\":%s}", ok_out ? "true" : "false");
        }
        printf("}\n");
        fflush(stdout);
        return;
    }

    printf("\n=== hakmem-probe: pid %d, %.3f s%s ===\n", target_pid, t,
           exited ? " (target exited)" : *why ? "" : "");
    if (exited) {
        if (WIFEXITED(status)) printf("target exit status %d\n", WEXITSTATUS(status));
        else if (WIFSIGNALED(status)) printf("target killed by signal %d\n", WTERMSIG(status));
    } else if (*why) {
        printf("stopped: %s\n", why);
    }
    printf("syscalls       calls        bytes     errors   kernel time\n");
    printf("  mmap    %10llu %12s %10llu\n", k.mmap_calls, fmt_bytes(k.mmap_bytes, b1, sizeof b1),
           k.mmap_errors);
    printf("  munmap  %10llu %12s %10llu   %s\n", k.munmap_calls, fmt_bytes(k.munmap_bytes, b1, sizeof b1),
           k.munmap_errors, fmt_ns(k.munmap_ns, b2, sizeof b2));
    printf("  madvise %10llu %12s %10llu   %s\n", k.madvise_calls,
           fmt_bytes(k.madvise_bytes, b1, sizeof b1), k.madvise_errors, fmt_ns(k.madvise_ns, b2, sizeof b2));
    printf("  mremap  %10llu %12s %10llu   (bytes = new lengths)\n", k.mremap_calls,
           fmt_bytes(k.mremap_bytes, b1, sizeof b1), k.mremap_errors);
    printf("munmap inside flush windows:  %llu calls, %s, %s", k.munmap_in_calls,
           fmt_bytes(k.munmap_in_bytes, b1, sizeof b1), fmt_ns(k.munmap_in_ns, b2, sizeof b2));
    if (k.munmap_in_calls) printf(" (%s per call)", fmt_ns(k.munmap_in_ns / k.munmap_in_calls, b3, sizeof b3));
    printf("\nmunmap outside flush windows: %llu calls, %s, %s\n", k.munmap_out_calls,
           fmt_bytes(k.munmap_out_bytes, b1, sizeof b1), fmt_ns(k.munmap_out_ns, b2, sizeof b2));
    printf("  of which issued by libhakmem code: %llu (%s)%s\n", k.munmap_out_hakmem_code_calls,
           fmt_bytes(k.munmap_out_hakmem_code_bytes, b1, sizeof b1),
           k.munmap_out_hakmem_code_calls ? "  <-- VIOLATION: only Batch may munmap" : "");
    printf("  of which start at a hakmem mapping: %llu (%s)%s\n", k.munmap_out_hakmem_map_calls,
           fmt_bytes(k.munmap_out_hakmem_map_bytes, b1, sizeof b1),
           k.munmap_out_hakmem_map_calls ? "  <-- a hakmem block released outside Batch" : "");
    if (k.munmap_out_caller_unknown) printf("  caller unknown (vma lookup busy): %llu\n", k.munmap_out_caller_unknown);
    printf("flushes: %llu events (begin %llu, end %llu%s), %llu blocks, %s, %llu"
           " ranges, %llu munmap; kernel time in windows %s, library-measured %s\n",
           seen.events, k.flush_begins, k.flush_ends, k.flush_unmatched_ends ? ", some unmatched" : "", k.flush_blocks,
           fmt_bytes(k.flush_bytes, b1, sizeof b1), k.flush_ranges, k.flush_lib_calls,
           fmt_ns(seen.k_ns, b2, sizeof b2), fmt_ns(k.flush_lib_ns, b3, sizeof b3));
    if (seen.mismatches) printf("  %llu flushes where kernel munmap calls != library munmap calls\n", seen.mismatches);
    printf("evictions:");
    for (unsigned r = 0; r < HP_EVICT_REASONS; r++) printf(" %s %llu", evict_names[r], k.evictions[r]);
    printf("; knob changes %llu\n", k.knob_changes);
    if (k.ringbuf_drops) printf("WARNING: %llu events dropped (ring buffer full)\n", k.ringbuf_drops);
    if (k.hakmem_maps_overflow)
        printf("WARNING: %llu hakmem mappings not tracked (map full)\n", k.hakmem_maps_overflow);
    if (k.hakmem_range_from_usdt)
        printf("note: libhakmem.so's inode in the target differs from %s: its code range was learned at the "
               "first flush, hakmem mappings made before it are not tracked\n", lib_path);

    print_hist("munmap latency inside flush windows (ns)", hs[HP_HIST_MUNMAP_IN]);
    print_hist("munmap latency outside flush windows (ns)", hs[HP_HIST_MUNMAP_OUT]);
    print_hist("madvise latency (ns)", hs[HP_HIST_MADVISE]);
    print_hist("flush window duration (ns)", hs[HP_HIST_FLUSH]);

    printf("\ncross-check with the library's own counters (/dev/shm/hakmem.%d%s%s):\n", target_pid,
           seg_have_base ? ", since attach" : "", exited ? "" : "; target still running, a flush in progress can differ");
    if (!l.have) {
        printf("  unavailable: %s\n", hak_shm_strerror(l.err));
    } else {
        printf("  munmap calls: kernel inside windows %llu, library %llu  %s\n", k.munmap_in_calls,
               l.munmap_calls, ok_calls ? "ok" : "MISMATCH");
        printf("  munmap bytes: kernel inside windows %llu, library %llu  %s\n", k.munmap_in_bytes,
               l.munmap_bytes, ok_bytes ? "ok" : "MISMATCH");
        printf("  flushes:      probe events %llu, library %llu  %s\n", seen.events, l.flushes,
               ok_flush ? "ok" : "MISMATCH");
    }
    printf("  hakmem munmaps outside flush windows: %llu  %s\n",
           k.munmap_out_hakmem_code_calls + k.munmap_out_hakmem_map_calls, ok_out ? "ok" : "VIOLATION");
    fflush(stdout);
}

/* ---- attach ---- */

static bool libbpf_quiet;   /* set around attaches whose failure we explain ourselves */

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
    if ((level == LIBBPF_DEBUG && !opt.verbose) || libbpf_quiet) return 0;
    return vfprintf(stderr, fmt, ap);
}

static int errno_exit(int err) {
    err = err < 0 ? -err : err;
    return err == EPERM || err == EACCES ? HAK_EXIT_PERM : HAK_EXIT_ERROR;
}

/* The USDT probes of libhakmem.so, attached by libbpf, which reads and
 * validates the library's .note.stapsdt itself (the probe's address, the
 * argument specs, the semaphore).  The flush probes are required; the
 * eviction and knob probes are optional (an older library: a note).  libbpf's
 * own warnings are kept for -v: a missing probe gets one message of ours. */

static int attach_usdt(const struct libinfo *li, int pid) {
    struct {
        struct bpf_program *prog;
        struct bpf_link **link;
        const char *name;
        bool required;
    } u[] = {
        {skel->progs.usdt_flush_begin, &skel->links.usdt_flush_begin, "batch_flush_begin", true},
        {skel->progs.usdt_flush_end, &skel->links.usdt_flush_end, "batch_flush_end", true},
        {skel->progs.usdt_evict, &skel->links.usdt_evict, "bigcache_evict", false},
        {skel->progs.usdt_knob_change, &skel->links.usdt_knob_change, "knob_change", false},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        libbpf_quiet = !opt.verbose;
        errno = 0;
        *u[i].link = bpf_program__attach_usdt(u[i].prog, pid, li->path, "hakmem", u[i].name, NULL);
        int err = errno ? errno : EINVAL;
        libbpf_quiet = false;
        if (*u[i].link) continue;
        /* libbpf: ENOENT = no such probe in the notes, ESRCH = no .note.stapsdt at all */
        bool absent = err == ENOENT || err == ESRCH;
        if (absent && !u[i].required) {
            fprintf(stderr, "%s: note: %s has no hakmem:%s probe\n", prog_name, li->path, u[i].name);
            continue;
        }
        if (absent) {
            hak_cli_error("%s has no hakmem:%s USDT probe (%s): the library was built without HAK_HAVE_SDT "
                    "(sys/sdt.h from systemtap-sdt-dev); rebuild it with probes",
                    li->path, u[i].name, err == ESRCH ? "no .note.stapsdt section" : "not in its USDT notes");
            return HAK_EXIT_UNSUPPORTED;
        }
        char msg[128];
        libbpf_strerror(-err, msg, sizeof msg);
        hak_cli_error("attaching USDT hakmem:%s in %s (pid %d): %s%s", u[i].name, li->path, pid, msg,
                opt.verbose ? "" : " (run with -v for libbpf's details)");
        return errno_exit(err);
    }
    return 0;
}

/* Open, configure, load, attach tracepoints. 0 or an exit code. */
static int load_probe(const struct libinfo *li, int pid) {
    skel = hakmem_bpf__open();
    if (!skel) {
        int err = errno;
        hak_cli_error("opening the BPF object: %s", strerror(err));
        return errno_exit(err);
    }
    skel->rodata->target_tgid = (uint32_t)pid;
    skel->rodata->hak_ino = li->ino;
    skel->rodata->hak_dev = li->kdev;
    skel->rodata->trace_outside = opt.outside;
    int err = hakmem_bpf__load(skel);
    if (err) {
        hak_cli_error("loading the BPF program: %s%s", strerror(-err),
                (-err == EPERM || -err == EACCES) ? " (missing privilege: needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"
                : -err == EINVAL ? " (kernel too old? needs >= 5.17 for bpf_find_vma/bpf_loop; run with -v)"
                                 : "");
        return errno_exit(err);
    }
    skel->bss->hak_lo = li->lo;
    skel->bss->hak_hi = li->hi;
    err = hakmem_bpf__attach(skel);   /* the tracepoints; SEC("usdt") is skipped by libbpf 1.1 */
    if (err) {
        hak_cli_error("attaching the syscall tracepoints: %s", strerror(-err));
        return -err == ENOENT ? HAK_EXIT_UNSUPPORTED : errno_exit(err);
    }
    rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
    if (!rb) {
        err = errno;
        hak_cli_error("ring buffer: %s", strerror(err));
        return errno_exit(err);
    }
    return 0;
}

static int pidfd_open_(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* ---- main ---- */

static int preflight(void) {
    int rc = check_privilege();
    if (!rc) rc = check_btf();
    if (!rc) rc = check_tracefs();
    return rc;
}

/* -- CMD: fork a child that waits for the go signal, then execs. */
static int spawn_waiting(const struct libinfo *li, int *go_fd, int *status_fd) {
    int go[2], st[2];
    if (pipe2(go, O_CLOEXEC) != 0 || pipe2(st, O_CLOEXEC) != 0) {
        hak_cli_error("pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        hak_cli_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(go[1]);
        close(st[0]);
        char c;
        if (read(go[0], &c, 1) != 1) _exit(127);   /* the probe failed: never run */
        if (!opt.no_preload) {
            const char *pre = getenv("LD_PRELOAD");
            bool present = false;
            if (pre) {
                char tmp[PATH_MAX * 2];
                snprintf(tmp, sizeof tmp, "%s", pre);
                for (char *save = NULL, *tok = strtok_r(tmp, ": ", &save); tok; tok = strtok_r(NULL, ": ", &save)) {
                    char real[PATH_MAX];
                    if (realpath(tok, real) && strcmp(real, li->path) == 0) present = true;
                }
            }
            if (!present) {
                char *val = NULL;
                if (asprintf(&val, "%s%s%s", li->path, pre && *pre ? ":" : "", pre ? pre : "") < 0) _exit(127);
                setenv("LD_PRELOAD", val, 1);
            }
        }
        execvp(opt.cmd[0], opt.cmd);
        int e = errno;
        if (write(st[1], &e, sizeof e) != (ssize_t)sizeof e) _exit(127);
        _exit(127);
    }
    close(go[0]);
    close(st[1]);
    *go_fd = go[1];
    *status_fd = st[0];
    return pid;
}

int main(int argc, char **argv) {
    hak_cli_init(prog_name);
    parse_args(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);

    int rc;
    if (opt.check_only) {
        rc = preflight();
        if (!rc) printf("%s: ok: privilege, kernel BTF and syscall tracepoints are available\n", prog_name);
        return rc;
    }

    /* The target first (no privilege needed): a wrong pid is "no such
     * process" (3) or "no libhakmem.so mapped" (4) wherever this runs. */
    struct libinfo li;
    memset(&li, 0, sizeof li);
    int child = 0, go_fd = -1, st_fd = -1, pidfd = -1;
    if (opt.pid) {
        target_pid = opt.pid;
        if (kill(target_pid, 0) != 0 && errno == ESRCH) {
            hak_cli_error("pid %d: no such process", target_pid);
            return HAK_EXIT_NOPROC;
        }
        rc = lib_from_maps(target_pid, opt.lib, &li);
        if (rc) return rc;
    } else {
        rc = lib_for_command(&li);
        if (rc) return rc;
    }
    lib_path = li.path;
    if ((rc = preflight()) != 0) return rc;
    libbpf_set_print(libbpf_print);
    if (opt.pid) pidfd = pidfd_open_(target_pid);

    if (opt.cmd) {
        child = spawn_waiting(&li, &go_fd, &st_fd);
        if (child < 0) return HAK_EXIT_ERROR;
        target_pid = child;
        pidfd = pidfd_open_(child);
    }

    t_start = mono_ns();   /* before anything is attached: every event's kernel time is later */
    rc = load_probe(&li, target_pid);
    if (!rc) rc = attach_usdt(&li, target_pid);
    if (rc) {
        if (child > 0) {   /* closing go_fd makes the child exit without running CMD */
            close(go_fd);
            waitpid(child, NULL, 0);
        }
        if (rb) ring_buffer__free(rb);
        hakmem_bpf__destroy(skel);
        return rc;
    }

    hak_cli_install_stop(1);
    hak_cli_install_sigbus();

    if (child > 0) {
        if (write(go_fd, "g", 1) != 1) hak_cli_error("cannot release the command: %s", strerror(errno));
        close(go_fd);
        int e = 0;
        ssize_t n = read(st_fd, &e, sizeof e);
        close(st_fd);
        if (n == (ssize_t)sizeof e) {
            hak_cli_error("cannot run %s: %s", opt.cmd[0], strerror(e));
            waitpid(child, NULL, 0);
            ring_buffer__free(rb);
            hakmem_bpf__destroy(skel);
            return e == ENOENT ? 127 : 126;
        }
        if (!opt.json)
            fprintf(stderr, "%s: tracing pid %d (%s) with %s\n", prog_name, child, opt.cmd[0], li.path);
    } else {
        seg_try_open();   /* baseline of the library counters before anything more happens */
        if (opt.cont) kill(target_pid, SIGCONT);
        if (!opt.json) fprintf(stderr, "%s: tracing pid %d with %s\n", prog_name, target_pid, li.path);
    }

    /* Times are printed from t_start (before the load); the interval, the
     * count and --duration run from now, when everything is attached. */
    uint64_t t_traced = mono_ns();
    long intervals = 0;
    double pub_every = opt.interval > 0 ? opt.interval : 1.0;
    uint64_t next_interval = opt.interval > 0 ? t_traced + (uint64_t)(opt.interval * 1e9) : UINT64_MAX;
    uint64_t next_publish = opt.publish ? t_traced + (uint64_t)(pub_every * 1e9) : UINT64_MAX;
    uint64_t deadline = opt.duration > 0 ? t_traced + (uint64_t)(opt.duration * 1e9) : UINT64_MAX;
    bool exited = false;
    int status = 0;
    const char *why = "";
    struct pollfd pfd[2] = {{.fd = ring_buffer__epoll_fd(rb), .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};

    while (!hak_cli_stop) {
        uint64_t now = mono_ns();
        if (now >= deadline) {
            why = "duration elapsed";
            break;
        }
        uint64_t wake = deadline < next_interval ? deadline : next_interval;
        if (next_publish < wake) wake = next_publish;
        int timeout = 100;
        if (wake != UINT64_MAX && (wake - now) / 1000000 < 100) timeout = (int)((wake - now) / 1000000) + 1;
        int n = poll(pfd, pidfd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            hak_cli_error("poll: %s", strerror(errno));
            break;
        }
        ring_buffer__consume(rb);
        if (!seg_open) seg_try_open();
        now = mono_ns();
        if (now >= next_interval) {
            print_interval((now - t_start) / 1e9);
            next_interval += (uint64_t)(opt.interval * 1e9);
            if (opt.count > 0 && ++intervals >= opt.count) {
                why = "count reached";
                break;
            }
        }
        if (now >= next_publish) {
            publish();
            next_publish += (uint64_t)(pub_every * 1e9);
        }
        bool gone = false;
        if (child > 0) {
            gone = waitpid(child, &status, WNOHANG) == child;
        } else if (pidfd >= 0) {
            gone = n > 0 && (pfd[1].revents & (POLLIN | POLLHUP));
        } else {
            gone = kill(target_pid, 0) != 0 && errno == ESRCH;
        }
        if (gone) {
            exited = true;
            break;
        }
    }
    if (hak_cli_stop) why = strsignal(hak_cli_stop);
    ring_buffer__consume(rb);
    publish();
    final_report(exited, status, why);

    ring_buffer__free(rb);
    hakmem_bpf__destroy(skel);
    if (seg_open) hak_shm_close(&seg);
    if (child > 0) {
        if (!exited && hak_cli_stop) {   /* pass the signal on, give CMD 5 s to go */
            kill(child, hak_cli_stop);
            for (int i = 0; i < 500 && !exited; i++) {
                if (waitpid(child, &status, WNOHANG) == child) exited = true;
                else usleep(10000);
            }
        }
        if (!exited) return 0;   /* --duration: CMD keeps running */
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    }
    return 0;
}
