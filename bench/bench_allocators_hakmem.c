/*
 * bench_allocators_hakmem.c - hakmem against glibc, jemalloc, mimalloc and
 * tcmalloc, side by side in one run.
 *
 * The driver re-executes this binary as a worker (--worker) once per
 * (allocator, scenario, repeat), with LD_PRELOAD set to the allocator under
 * test, so every allocator runs in a fresh process of its own.  Runs alternate:
 * for each scenario, one warm-up round, then each repeat is a round in which
 * every allocator runs once, in an order drawn afresh per round (seeded), so a
 * noisy moment of the machine, or the state the previous process left the
 * kernel in, hits them all alike.  After the timed runs, one untimed run per (allocator, scenario) under
 * `strace -f -c` counts mmap/munmap/madvise/mremap calls of the peers (minus a
 * start-up baseline); hakmem rows also report hakmem's own counters.
 *
 * Exit status: 0 ok, 1 a worker failed (each failure is named on stderr and in
 * the table), 2 usage error.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "../tools/cli.h"

static bench_alloc_t allocs[] = {
    {.name = "hakmem", .hakmem = 1, .mode = "fixed"},
    {.name = "hakmem-evolving", .hakmem = 1, .mode = "evolving"},
    {.name = "system", .peer = 1},
    {.name = "jemalloc", .peer = 1},
    {.name = "mimalloc", .peer = 1},
    {.name = "tcmalloc", .peer = 1},
};
#define NALLOCS ((int)(sizeof allocs / sizeof allocs[0]))

static const char *const lib_names[][4] = {
    [3] = {"libjemalloc.so.2", "libjemalloc.so", NULL},
    [4] = {"libmimalloc.so.2.0", "libmimalloc.so.2", "libmimalloc.so", NULL},
    [5] = {"libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so", NULL},
};

static char self_exe[PATH_MAX];
static int quiet;
static long timeout_s = 900;
static int syscalls_mode = 1;   /* 0 none, 1 auto (strace when found), 2 strace required */
static char strace_path[PATH_MAX];

static void usage(FILE *f) {
    fprintf(f,
        "usage: bench_allocators_hakmem [--allocator NAME[,NAME...]] [--scenario NAME[,NAME...]]\n"
        "                               [--iterations N|SCENARIO=N[,...]] [--threads T]\n"
        "                               [--repeat R|SCENARIO=R[,...]]\n"
        "                               [--json FILE] [--csv FILE] [--md FILE] [--svg FILE] [options]\n"
        "\n"
        "Runs each scenario under each allocator, every run in a fresh process of its own\n"
        "(LD_PRELOAD), allocators alternating, and prints a Markdown table with each\n"
        "allocator's ns/op as a ratio to the best peer (system, jemalloc, mimalloc, tcmalloc).\n"
        "\n"
        "  --allocator LIST    hakmem (HAKMEM_MODE=fixed), hakmem-evolving (HAKMEM_MODE=evolving),\n"
        "                      system (glibc), jemalloc, mimalloc, tcmalloc, or all (default all);\n"
        "                      an allocator whose library is missing is reported as skipped\n"
        "  --scenario LIST     scenarios below, or all (default all)\n"
        "  --iterations SPEC   N for every scenario, and/or SCENARIO=N to set one (e.g.\n"
        "                      '100' or '200,cold-churn=5'); default: each scenario's own count\n"
        "  --threads T         threads of the 'threads' scenario (default: online CPUs, at least 2);\n"
        "                      'small-threads' runs max(4, T)\n"
        "  --repeat SPEC       timed runs per (allocator, scenario), 1-%d: R for every scenario,\n"
        "                      and/or SCENARIO=R to set one (e.g. '5,vm=21': the short scenarios\n"
        "                      need more runs for a steady median); default 3; ns/op is the\n"
        "                      median, with min and max\n"
        "  --json/--csv FILE   machine-readable results\n"
        "  --md FILE           a Markdown report: machine, command, date, tables\n"
        "  --svg FILE          a bar chart of the ratios to the best peer\n"
        "  --hakmem-lib PATH   libhakmem.so to preload (default: the one next to this binary)\n"
        "  --lib NAME=PATH     library of a peer (default: searched in the system library dirs)\n"
        "  --syscalls MODE     auto (strace when installed), strace, or none (default auto)\n"
        "  --idle-ms MS        sleep after the scenario before reading 'idle RSS' (default 1000;\n"
        "                      measured in one extra untimed run, the strace run when there is one)\n"
        "  --warmup W          untimed rounds of every allocator before the timed ones (default 1)\n"
        "  --warm-mib M|auto   before every run, touch M MiB (huge pages where THP allows) and free it,\n"
        "                      so each allocator finds the same warm free memory; auto (default):\n"
        "                      1.5x the highest peak RSS seen so far in the scenario, 1 GiB at first,\n"
        "                      64 MiB at least, half of MemAvailable at most; 0: none\n"
        "  --cold-ms MS        before every run, sleep MS ms (0-600000, default 0), so that a host that\n"
        "                      takes free memory back (free-page reporting: microVMs, this kind of VM)\n"
        "                      has taken it: each allocator starts on cold memory, as a process does\n"
        "                      after a quiet spell; with it, --warm-mib defaults to 0\n"
        "  --touch page|full   write one word per 4 KiB page (default) or every byte\n"
        "  --seed S            PRNG seed (default 42): every allocator sees the same sequence\n"
        "  --timeout SEC       kill a worker after SEC seconds (default 900)\n"
        "  --list              show the allocators (with their libraries) and scenarios\n"
        "  --quiet             no progress on stderr\n"
        "  --help              this text\n"
        "\n"
        "Scenarios (one op = one malloc/realloc call; iteration = the unit of --iterations; the report\n"
        "gives the time of the first round beside the median ns/op of the rounds after it):\n",
        BENCH_MAX_REPEAT);
    for (int i = 0; i < bench_nscenarios; i++)
        fprintf(f, "  %-13s %s\n  %-13s iteration = %s, default %ld\n  %-13s %s\n", bench_scenarios[i].name,
                bench_scenarios[i].what, "", bench_scenarios[i].iteration, bench_scenarios[i].default_iters, "",
                bench_scenarios[i].rounds);
    fprintf(f,
        "\nExit status: 0 ok, 1 a worker failed (named on stderr and in the table), 2 usage error.\n"
        "Example (one scenario, one allocator): bench_allocators_hakmem --allocator hakmem-evolving --scenario vm "
        "--iterations 100\n");
}

/* One line + "Try ...", exit 2: the convention of every hakmem tool (tools/cli.c). */
static void usage_error(const char *fmt, const char *arg) {
    exit(hak_cli_usage_error(fmt, arg));
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

// ---------------------------------------------------------------------------
// Allocator libraries
// ---------------------------------------------------------------------------
static int readable(const char *p) { return access(p, R_OK) == 0; }

static int find_lib(int idx, char *out, size_t len) {
    char dirs[8][PATH_MAX];
    int nd = 0;
    Dl_info info;   /* the directory this process's libc came from (multiarch-proof) */
    void *sym = dlsym(RTLD_DEFAULT, "printf");
    if (sym && dladdr(sym, &info) && info.dli_fname && info.dli_fname[0] == '/') {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s", info.dli_fname);
        char *d = dirname(tmp);
        snprintf(dirs[nd++], PATH_MAX, "%s", d);
        if (strncmp(d, "/lib", 4) == 0) snprintf(dirs[nd++], PATH_MAX, "/usr%s", d);
    }
    static const char *const fixed[] = {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                        "/usr/lib64", "/usr/lib", "/usr/local/lib"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && nd < 8; i++) snprintf(dirs[nd++], PATH_MAX, "%s", fixed[i]);
    for (int n = 0; lib_names[idx][n]; n++)
        for (int d = 0; d < nd; d++) {
            int w = snprintf(out, len, "%s/%s", dirs[d], lib_names[idx][n]);
            if (w > 0 && (size_t)w < len && readable(out)) return 0;
        }
    out[0] = '\0';
    return -1;
}

static void resolve_libs(const char *hakmem_lib, char lib_override[][PATH_MAX]) {
    for (int i = 0; i < NALLOCS; i++) {
        bench_alloc_t *a = &allocs[i];
        a->available = 0;
        a->why[0] = '\0';
        if (lib_override[i][0]) {
            if (snprintf(a->lib, sizeof a->lib, "%s", lib_override[i]) >= (int)sizeof a->lib) {
                snprintf(a->why, sizeof a->why, "library path too long");
                continue;
            }
        } else if (a->hakmem) {
            if (hakmem_lib) {
                snprintf(a->lib, sizeof a->lib, "%s", hakmem_lib);
            } else {
                char tmp[PATH_MAX];
                snprintf(tmp, sizeof tmp, "%s", self_exe);
                snprintf(a->lib, sizeof a->lib, "%s/libhakmem.so", dirname(tmp));
            }
        } else if (strcmp(a->name, "system") == 0) {
            a->lib[0] = '\0';
            a->available = 1;
            continue;
        } else if (find_lib(i, a->lib, sizeof a->lib) != 0) {
            snprintf(a->why, sizeof a->why, "%s not found (Debian package %s)", lib_names[i][0],
                     i == 3 ? "libjemalloc2" : i == 4 ? "libmimalloc2.0" : "libtcmalloc-minimal4");
            continue;
        }
        if (!readable(a->lib)) {
            snprintf(a->why, sizeof a->why, "%s not found", a->lib);
            continue;
        }
        a->available = 1;
    }
}

static int alloc_index(const char *name) {
    for (int i = 0; i < NALLOCS; i++)
        if (strcmp(allocs[i].name, name) == 0) return i;
    return -1;
}

static void find_strace(void) {
    strace_path[0] = '\0';
    const char *path = getenv("PATH");
    char buf[8192];
    snprintf(buf, sizeof buf, "%s:/usr/bin:/bin:/usr/sbin:/sbin", path ? path : "");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/strace", *d ? d : ".");
        if (access(p, X_OK) == 0) {
            snprintf(strace_path, sizeof strace_path, "%s", p);
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------
static int parse_result(const char *out, bench_sample_t *s) {
    const char *line = strstr(out, "RESULT ");
    if (line == NULL) return -1;
    memset(s, 0, sizeof *s);
    static const struct { const char *key; size_t off; } keys[] = {
#define K(f) {#f, offsetof(bench_sample_t, f)}
        K(ops), K(ns), K(minflt), K(majflt), K(peak_kib), K(start_kib), K(end_kib), K(idle_kib), K(checksum),
        K(threads), K(first_ns), K(first_ops), K(steady_ps_op), K(rounds), K(hak_blocks_flushed), K(hak_decisions_run),
        K(hak_mode), K(hak_hits), K(hak_misses), K(hak_puts), K(hak_evictions), K(hak_flushes), K(hak_mmap),
        K(hak_munmap), K(hak_madvise), K(hak_mremap), K(hak_idle_munmap), K(hak_ring_cap),
        K(hak_batch_threshold), K(hak_decisions), K(hak_idle_flushes), K(hak_idle_blocks),
#undef K
    };
    char buf[4096];
    size_t n = strcspn(line, "\n");
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, line, n);
    buf[n] = '\0';
    int seen = 0;
    for (char *save = NULL, *t = strtok_r(buf + 7, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) continue;
        *eq = '\0';
        if (strcmp(t, "has_hak") == 0) {
            s->has_hak = atoi(eq + 1);
            continue;
        }
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (strcmp(t, keys[k].key) == 0) {
                *(uint64_t *)((char *)s + keys[k].off) = strtoull(eq + 1, NULL, 10);
                seen++;
            }
    }
    return seen >= 9 ? 0 : -1;
}

static void describe_status(int st, char *buf, size_t len) {
    if (WIFEXITED(st)) snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
                 WTERMSIG(st) == SIGALRM ? ": timeout" : "");
    else snprintf(buf, len, "status 0x%x", st);
}

/* Run one worker; strace_out != NULL runs it under strace -f -c writing there.
 * 0 and *s filled, or -1 with err describing the failure. */
static int run_worker(const bench_run_t *r, const bench_alloc_t *a, int scen, long iters, long idle_ms,
                      const char *strace_out, bench_sample_t *s, char *err, size_t errlen) {
    char it[32], th[32], seed[32], idle[32], env_pre[4200], env_mode[64];
    snprintf(it, sizeof it, "%ld", iters);
    snprintf(th, sizeof th, "%d", r->threads);
    snprintf(seed, sizeof seed, "%" PRIu64, r->seed);
    snprintf(idle, sizeof idle, "%ld", idle_ms);
    const char *argv[40];
    int n = 0;
    if (strace_out) {
        argv[n++] = strace_path;
        argv[n++] = "-f";
        argv[n++] = "-c";
        argv[n++] = "-o";
        argv[n++] = strace_out;
        argv[n++] = "-e";
        argv[n++] = "trace=mmap,munmap,madvise,mremap";
        argv[n++] = "-E";
        if (a->lib[0]) snprintf(env_pre, sizeof env_pre, "LD_PRELOAD=%s", a->lib);
        else snprintf(env_pre, sizeof env_pre, "LD_PRELOAD");
        argv[n++] = env_pre;
        if (a->hakmem) {
            snprintf(env_mode, sizeof env_mode, "HAKMEM_MODE=%s", a->mode);
            argv[n++] = "-E";
            argv[n++] = env_mode;
        }
    }
    argv[n++] = self_exe;
    argv[n++] = "--worker";
    argv[n++] = "--allocator";
    argv[n++] = a->name;
    argv[n++] = "--scenario";
    argv[n++] = bench_scenarios[scen].name;
    argv[n++] = "--iterations";
    argv[n++] = it;
    argv[n++] = "--threads";
    argv[n++] = th;
    argv[n++] = "--seed";
    argv[n++] = seed;
    argv[n++] = "--idle-ms";
    argv[n++] = idle;
    argv[n++] = "--touch";
    argv[n++] = r->touch_full ? "full" : "page";
    argv[n] = NULL;

    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        if (strace_out || a->lib[0] == '\0') unsetenv("LD_PRELOAD");
        else setenv("LD_PRELOAD", a->lib, 1);
        if (a->hakmem && !strace_out) setenv("HAKMEM_MODE", a->mode, 1);
        alarm((unsigned)timeout_s);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    char out[16384];
    size_t len = 0;
    for (;;) {
        ssize_t k = read(fds[0], out + len, sizeof out - 1 - len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        len += (size_t)k;
        if (len == sizeof out - 1) len = 0;   /* keep reading; the RESULT line is last */
    }
    out[len] = '\0';
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char d[128];
        describe_status(st, d, sizeof d);
        snprintf(err, errlen, "worker %s/%s %s (see its message above)", a->name, bench_scenarios[scen].name, d);
        return -1;
    }
    if (parse_result(out, s) != 0) {
        snprintf(err, errlen, "worker %s/%s printed no result line", a->name, bench_scenarios[scen].name);
        return -1;
    }
    return 0;
}

/* Calls per syscall name from a strace -c summary. */
static int parse_strace(const char *path, double calls[4]) {
    static const char *const names[4] = {"mmap", "munmap", "madvise", "mremap"};
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    char line[512];
    int found = 0;
    for (int i = 0; i < 4; i++) calls[i] = 0;
    while (fgets(line, sizeof line, f)) {
        char *tok[8];
        int nt = 0;
        for (char *save = NULL, *t = strtok_r(line, " \t\n", &save); t && nt < 8; t = strtok_r(NULL, " \t\n", &save))
            tok[nt++] = t;
        if (nt < 5) continue;
        for (int i = 0; i < 4; i++)
            if (strcmp(tok[nt - 1], names[i]) == 0) {
                calls[i] = strtod(tok[3], NULL);
                found = 1;
            }
        if (strcmp(tok[nt - 1], "total") == 0) found = 1;
    }
    fclose(f);
    return found ? 0 : -1;
}

/* MemAvailable of /proc/meminfo in MiB, 0 when unknown. */
static long mem_available_mib(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib / 1024;
}

/* The memory to warm before a run of a scenario whose runs so far peaked at
 * peak KiB, 0 = none yet (see --warm-mib). */
static long warm_size(const bench_run_t *r, uint64_t peak) {
    if (r->warm_mib >= 0) return r->warm_mib;
    long mib = peak ? (long)(peak * 3 / 2 / 1024) : 1024, cap = mem_available_mib() / 2;
    if (mib < 64) mib = 64;
    return cap > 0 && mib > cap ? cap : mib;
}

/* Touch mib MiB of fresh anonymous memory, huge pages where THP allows, and
 * unmap it.  A guest that hands free memory back to its host (free-page
 * reporting: this VM) backs it again lazily, at a cost that dwarfs the
 * allocator's own; freeing it just now makes the next process's faults land
 * on memory the host already backs, whatever the process before it left. */
static void warm_memory(long mib) {
    if (mib <= 0) return;
    size_t n = (size_t)mib << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return;   /* nothing warmed: the run is as before */
    (void)madvise(p, n, MADV_HUGEPAGE);
    for (size_t o = 0; o < n; o += 4096) p[o] = 1;
    munmap(p, n);
}

/* --cold-ms: let the host take free memory back before the run. */
static void cold_wait(long ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The order of the allocators in one round: the canonical order for warm-up
 * rounds, else a permutation drawn from (seed, scenario, round).  Not a plain
 * rotation: on this VM a run is faster when the process before it left huge
 * pages behind, so who runs right BEFORE whom must vary too. */
static void round_order(const bench_run_t *r, int k, int rep, int *order) {
    for (int j = 0; j < r->nalloc; j++) order[j] = j;
    if (rep < 0) return;
    uint64_t x = r->seed * 0x9e3779b97f4a7c15ull + (uint64_t)k * 0x100000001b3ull + (uint64_t)rep + 1;
    for (int j = r->nalloc - 1; j > 0; j--) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdull;
        x ^= x >> 33;
        int i = (int)(x % (uint64_t)(j + 1)), t = order[j];
        order[j] = order[i];
        order[i] = t;
    }
}

// ---------------------------------------------------------------------------
// Machine description
// ---------------------------------------------------------------------------
static void describe_machine(bench_run_t *r) {
    struct utsname u;
    if (uname(&u) == 0 && snprintf(r->kernel, sizeof r->kernel, "%s %s", u.sysname, u.release) < 0)
        r->kernel[0] = '\0';
    r->nproc = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(r->cpu, sizeof r->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ' || *c == '\t') c++;
                    c[strcspn(c, "\n")] = '\0';
                    snprintf(r->cpu, sizeof r->cpu, "%s", c);
                }
                break;
            }
        fclose(f);
    }
    snprintf(r->thp, sizeof r->thp, "unknown");
    f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        char line[256];
        if (fgets(line, sizeof line, f)) {
            char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
            if (a && b) {
                *b = '\0';
                snprintf(r->thp, sizeof r->thp, "%s", a + 1);
            }
        }
        fclose(f);
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(r->date, sizeof r->date, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void record_command(bench_run_t *r, int argc, char **argv) {
    size_t len = 0;
    r->command[0] = '\0';
    for (int i = 0; i < argc && len + 8 < sizeof r->command; i++) {
        const char *a = argv[i];
        int quote = a[0] == '\0' || strpbrk(a, " \t'\"$*?;&|<>()") != NULL;
        len += (size_t)snprintf(r->command + len, sizeof r->command - len, quote ? "%s'%s'" : "%s%s",
                                i ? " " : "", a);
        if (len >= sizeof r->command) len = sizeof r->command - 1;
    }
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------
enum {
    OPT_WORKER = 256, OPT_JSON, OPT_CSV, OPT_MD, OPT_SVG, OPT_HAKLIB, OPT_LIB, OPT_SYSCALLS, OPT_IDLE,
    OPT_TOUCH, OPT_SEED, OPT_TIMEOUT, OPT_LIST, OPT_QUIET, OPT_WARMUP, OPT_WARM_MIB, OPT_COLD_MS,
};

static const struct option long_opts[] = {
    {"allocator", required_argument, 0, 'a'}, {"scenario", required_argument, 0, 's'},
    {"iterations", required_argument, 0, 'n'}, {"threads", required_argument, 0, 't'},
    {"repeat", required_argument, 0, 'r'}, {"json", required_argument, 0, OPT_JSON},
    {"csv", required_argument, 0, OPT_CSV}, {"md", required_argument, 0, OPT_MD},
    {"svg", required_argument, 0, OPT_SVG}, {"hakmem-lib", required_argument, 0, OPT_HAKLIB},
    {"lib", required_argument, 0, OPT_LIB}, {"syscalls", required_argument, 0, OPT_SYSCALLS},
    {"idle-ms", required_argument, 0, OPT_IDLE}, {"touch", required_argument, 0, OPT_TOUCH},
    {"seed", required_argument, 0, OPT_SEED}, {"timeout", required_argument, 0, OPT_TIMEOUT},
    {"warmup", required_argument, 0, OPT_WARMUP}, {"warm-mib", required_argument, 0, OPT_WARM_MIB},
    {"cold-ms", required_argument, 0, OPT_COLD_MS},
    {"list", no_argument, 0, OPT_LIST}, {"quiet", no_argument, 0, OPT_QUIET},
    {"worker", no_argument, 0, OPT_WORKER}, {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0},
};

static bench_run_t run;   /* large: not on the stack */

/* A SPEC of --iterations or --repeat: N for every scenario and/or SCENARIO=N
 * for one (which wins over the bare N), counts in lo..hi; per[] holds the
 * defaults and gets the result; *all, if given, the bare N when there is one. */
static void per_scenario(const char *opt, const char *bad, const char *spec, long lo, long hi, long per[],
                         long *all) {
    char buf[1024], bad_value[128], bad_name[128];
    snprintf(buf, sizeof buf, "%s", spec);
    snprintf(bad_value, sizeof bad_value, "%s: '%%s' %s", opt, bad);
    snprintf(bad_name, sizeof bad_name, "%s: unknown scenario '%%s'", opt);
    long bare = -1;
    char set[BENCH_MAX_SCENARIOS] = {0};
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        long v;
        if (eq == NULL) {
            if (parse_long(t, lo, hi, &bare)) usage_error(bad_value, t);
            continue;
        }
        *eq = '\0';
        int i = bench_scenario_find(t);
        if (i < 0) usage_error(bad_name, t);
        if (parse_long(eq + 1, lo, hi, &v)) usage_error(bad_value, eq + 1);
        per[i] = v;
        set[i] = 1;
    }
    for (int i = 0; i < bench_nscenarios; i++)
        if (!set[i] && bare > 0) per[i] = bare;
    if (all && bare > 0) *all = bare;
}

int main(int argc, char **argv) {
    const char *alloc_spec = "all", *scen_spec = "all", *iter_spec = NULL, *repeat_spec = NULL;
    const char *json = NULL, *csv = NULL, *md = NULL, *svg = NULL, *hakmem_lib = NULL;
    static char lib_override[NALLOCS][PATH_MAX];
    long threads = 0, idle_ms = 1000, seed = 42, warmup = 1, warm_mib = -2, cold_ms = 0;
    int worker = 0, list = 0, touch_full = 0;
    bench_run_t *r = &run;

    opterr = 0;
    int ch;
    hak_cli_init("bench_allocators_hakmem");
    while ((ch = getopt_long(argc, argv, ":hV", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'a': alloc_spec = optarg; break;
        case 's': scen_spec = optarg; break;
        case 'n': iter_spec = optarg; break;
        case 't':
            if (parse_long(optarg, 1, 256, &threads)) usage_error("--threads wants 1..256, not '%s'", optarg);
            break;
        case 'r': repeat_spec = optarg; break;
        case OPT_JSON: json = optarg; break;
        case OPT_CSV: csv = optarg; break;
        case OPT_MD: md = optarg; break;
        case OPT_SVG: svg = optarg; break;
        case OPT_HAKLIB: hakmem_lib = optarg; break;
        case OPT_LIB: {
            char name[64];
            const char *eq = strchr(optarg, '=');
            size_t nl = eq ? (size_t)(eq - optarg) : 0;
            if (!eq || nl >= sizeof name || !eq[1]) usage_error("--lib wants NAME=PATH, not '%s'", optarg);
            memcpy(name, optarg, nl);
            name[nl] = '\0';
            int i = alloc_index(name);
            if (i < 0 || strcmp(name, "system") == 0) usage_error("--lib: no allocator '%s' takes a library", name);
            snprintf(lib_override[i], PATH_MAX, "%s", eq + 1);
            break;
        }
        case OPT_SYSCALLS:
            if (strcmp(optarg, "none") == 0) syscalls_mode = 0;
            else if (strcmp(optarg, "auto") == 0) syscalls_mode = 1;
            else if (strcmp(optarg, "strace") == 0) syscalls_mode = 2;
            else usage_error("--syscalls wants auto, strace or none, not '%s'", optarg);
            break;
        case OPT_IDLE:
            if (parse_long(optarg, 0, 600000, &idle_ms)) usage_error("--idle-ms wants 0..600000, not '%s'", optarg);
            break;
        case OPT_TOUCH:
            if (strcmp(optarg, "page") == 0) touch_full = 0;
            else if (strcmp(optarg, "full") == 0) touch_full = 1;
            else usage_error("--touch wants page or full, not '%s'", optarg);
            break;
        case OPT_SEED:
            if (parse_long(optarg, 0, LONG_MAX, &seed)) usage_error("--seed wants a number >= 0, not '%s'", optarg);
            break;
        case OPT_TIMEOUT:
            if (parse_long(optarg, 1, 86400, &timeout_s)) usage_error("--timeout wants 1..86400 s, not '%s'", optarg);
            break;
        case OPT_WARMUP:
            if (parse_long(optarg, 0, 10, &warmup)) usage_error("--warmup wants 0..10, not '%s'", optarg);
            break;
        case OPT_WARM_MIB:
            if (strcmp(optarg, "auto") == 0) warm_mib = -1;
            else if (parse_long(optarg, 0, 1L << 20, &warm_mib))
                usage_error("--warm-mib wants auto or 0..1048576, not '%s'", optarg);
            break;
        case OPT_COLD_MS:
            if (parse_long(optarg, 0, 600000, &cold_ms)) usage_error("--cold-ms wants 0..600000 ms, not '%s'", optarg);
            break;
        case OPT_LIST: list = 1; break;
        case OPT_QUIET: quiet = 1; break;
        case OPT_WORKER: worker = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': return hak_cli_version(NULL);
        default: return hak_cli_bad_option(ch, argv);
        }
    }
    if (optind < argc) usage_error("unexpected argument '%s'", argv[optind]);

    if (worker) {
        bench_worker_args_t w = {0};
        long it = 0;
        w.scenario = bench_scenario_find(scen_spec);
        if (w.scenario < 0 || alloc_index(alloc_spec) < 0 || !iter_spec || parse_long(iter_spec, 0, LONG_MAX, &it))
            usage_error("worker mode wants one --allocator, one --scenario and --iterations N%s", "");
        w.allocator = alloc_spec;
        w.iterations = it;
        w.threads = threads > 0 ? (int)threads : 2;
        w.seed = (uint64_t)seed;
        w.idle_ms = idle_ms;
        w.touch_full = touch_full;
        return bench_worker_main(&w);
    }

    ssize_t sl = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (sl <= 0) {
        fprintf(stderr, "bench_allocators_hakmem: cannot find my own executable: %s\n", strerror(errno));
        return 1;
    }
    self_exe[sl] = '\0';
    resolve_libs(hakmem_lib, lib_override);

    /* allocators */
    int chosen[NALLOCS] = {0};
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", alloc_spec);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "all") == 0) {
            for (int i = 0; i < NALLOCS; i++) chosen[i] = 1;
            continue;
        }
        int i = alloc_index(t);
        if (i < 0)
            usage_error("unknown allocator '%s' (hakmem, hakmem-evolving, system, jemalloc, mimalloc, tcmalloc, all)", t);
        chosen[i] = 1;
    }
    for (int i = 0; i < NALLOCS; i++)
        if (chosen[i]) r->alloc[r->nalloc++] = &allocs[i];
    if (r->nalloc == 0) usage_error("--allocator names no allocator%s", "");

    /* scenarios */
    int schosen[BENCH_MAX_SCENARIOS] = {0};
    snprintf(buf, sizeof buf, "%s", scen_spec);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "all") == 0) {
            for (int i = 0; i < bench_nscenarios; i++) schosen[i] = 1;
            continue;
        }
        int i = bench_scenario_find(t);
        if (i < 0) usage_error("unknown scenario '%s' (see --help)", t);
        schosen[i] = 1;
    }
    for (int i = 0; i < bench_nscenarios; i++)
        if (schosen[i]) r->scen[r->nscen++] = i;
    if (r->nscen == 0) usage_error("--scenario names no scenario%s", "");

    /* iterations and repeats: defaults, then N for all, then SCENARIO=N */
    long per[BENCH_MAX_SCENARIOS], reps[BENCH_MAX_SCENARIOS], repeat = 3;
    for (int i = 0; i < bench_nscenarios; i++) {
        per[i] = bench_scenarios[i].default_iters;
        reps[i] = repeat;
    }
    if (iter_spec) per_scenario("--iterations", "is not a count 1..1e9", iter_spec, 1, 1000000000L, per, NULL);
    if (repeat_spec) per_scenario("--repeat", "wants 1..64", repeat_spec, 1, BENCH_MAX_REPEAT, reps, &repeat);
    for (int k = 0; k < r->nscen; k++) {
        r->iters[k] = per[r->scen[k]];
        r->repeats[k] = (int)reps[r->scen[k]];
    }

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    r->threads = threads > 0 ? (int)threads : ncpu >= 2 ? (int)(ncpu > 64 ? 64 : ncpu) : 2;
    r->repeat = (int)repeat;      /* the bare R (or the default): the report's headline figure */
    r->seed = (uint64_t)seed;
    r->idle_ms = idle_ms;
    r->warmup = (int)warmup;
    r->warm_mib = warm_mib != -2 ? warm_mib : cold_ms > 0 ? 0 : -1;   /* not given: auto, or none when cold */
    r->cold_ms = cold_ms;
    r->touch_full = touch_full;
    record_command(r, argc, argv);
    describe_machine(r);

    if (syscalls_mode) find_strace();
    if (syscalls_mode == 2 && !strace_path[0]) {
        fprintf(stderr, "bench_allocators_hakmem: --syscalls strace: strace is not installed\n");
        return 2;
    }

    if (list) {
        printf("allocators:\n");
        for (int i = 0; i < NALLOCS; i++)
            printf("  %-16s %s\n", allocs[i].name,
                   !allocs[i].available ? allocs[i].why : allocs[i].lib[0] ? allocs[i].lib : "(glibc, no preload)");
        printf("scenarios:\n");
        for (int i = 0; i < bench_nscenarios; i++)
            printf("  %-13s iteration = %s, default %ld\n", bench_scenarios[i].name, bench_scenarios[i].iteration,
                   bench_scenarios[i].default_iters);
        printf("strace: %s\n", strace_path[0] ? strace_path : "not found (syscall counts of peers: n/a)");
        return 0;
    }

    /* ---- the runs ---- */
    int nav = 0;
    for (int a = 0; a < r->nalloc; a++) {
        if (!r->alloc[a]->available) {
            fprintf(stderr, "bench: %s skipped: %s\n", r->alloc[a]->name, r->alloc[a]->why);
            for (int k = 0; k < r->nscen; k++) {
                r->cell[a][k].status = BENCH_SKIPPED;
                snprintf(r->cell[a][k].error, sizeof r->cell[a][k].error, "%s", r->alloc[a]->why);
            }
        } else {
            nav++;
        }
    }
    int use_strace = syscalls_mode && strace_path[0];
    int extra = use_strace || r->idle_ms > 0;   /* one untimed run per cell: syscalls + idle RSS */
    int total = 0, done = 0, failures = 0;
    for (int k = 0; k < r->nscen; k++) total += nav * (r->warmup + r->repeats[k] + extra);
    double base[BENCH_MAX_ALLOCS][4];
    int have_base[BENCH_MAX_ALLOCS] = {0};
    char tmpl[] = "/tmp/hakmem-bench-XXXXXX";
    char *tmpdir = use_strace ? mkdtemp(tmpl) : NULL;
    if (use_strace && !tmpdir) {
        fprintf(stderr, "bench: mkdtemp: %s; syscall counts of peers: n/a\n", strerror(errno));
        use_strace = 0;
    }
    if (!quiet) {
        char phrase[512];
        bench_repeat_phrase(r, phrase, sizeof phrase);
        fprintf(stderr, "bench: %d allocator(s) x %d scenario(s) x (%d warm-up + %s timed%s) runs, threads=%d, "
                "seed=%" PRIu64 "\n", nav, r->nscen, r->warmup, phrase,
                !extra ? "" : use_strace ? " + 1 untimed strace/idle" : " + 1 untimed idle", r->threads, r->seed);
    }
    struct timespec wall0;
    clock_gettime(CLOCK_MONOTONIC, &wall0);

    for (int k = 0; k < r->nscen; k++) {
        int sc = r->scen[k];
        const char *sn = bench_scenarios[sc].name;
        uint64_t ref_sum = 0, peak_seen = 0;   /* highest VmHWM of the scenario's runs */
        int have_ref = 0;
        /* warm-up rounds (this VM backs freed guest memory lazily: the first
         * runs after a quiet spell pay for it), then the timed rounds */
        for (int rep = -r->warmup; rep < r->repeats[k]; rep++) {
            int order[BENCH_MAX_ALLOCS];
            round_order(r, k, rep, order);
            for (int j = 0; j < r->nalloc; j++) {
                int a = order[j];
                bench_cell_t *c = &r->cell[a][k];
                const char *an = r->alloc[a]->name;
                if (!r->alloc[a]->available) continue;
                done++;
                if (c->status == BENCH_FAILED) continue;
                bench_sample_t s;
                char err[256];
                warm_memory(warm_size(r, peak_seen));
                cold_wait(r->cold_ms);
                int rc = run_worker(r, r->alloc[a], sc, r->iters[k], 0, NULL, &s, err, sizeof err);
                if (rc == 0 && s.ops == 0) {
                    rc = -1;
                    snprintf(err, sizeof err, "worker %s/%s did no operation", an, sn);
                }
                if (rc == 0 && have_ref && s.checksum != ref_sum) {
                    rc = -1;
                    snprintf(err, sizeof err, "worker %s/%s: checksum %" PRIu64 " differs from %" PRIu64
                             " (the other runs): the scenario did not do the same work", an, sn, s.checksum, ref_sum);
                }
                if (rc != 0) {
                    c->status = BENCH_FAILED;
                    snprintf(c->error, sizeof c->error, "%s", err);
                    fprintf(stderr, "bench: FAILED: %s\n", err);
                    failures++;
                    continue;
                }
                if (s.peak_kib > peak_seen) peak_seen = s.peak_kib;
                if (!have_ref) {
                    ref_sum = s.checksum;
                    have_ref = 1;
                }
                c->checksum = s.checksum;
                if (rep >= 0) c->runs[c->nruns++] = s;
                if (!quiet) {
                    char what[32];
                    if (rep < 0) snprintf(what, sizeof what, "warm-up");
                    else snprintf(what, sizeof what, "run %d/%d", rep + 1, r->repeats[k]);
                    fprintf(stderr, "[%3d/%3d] %-12s %-16s %-9s %12.1f ns/op %9.2f faults/op\n", done, total, sn, an,
                            what, (double)s.ns / (double)s.ops, (double)s.minflt / (double)s.ops);
                }
            }
        }
        /* one untimed run per allocator: syscall counts (strace) and RSS after idle */
        for (int a = 0; a < r->nalloc && extra; a++) {
            bench_cell_t *c = &r->cell[a][k];
            const char *an = r->alloc[a]->name;
            if (!r->alloc[a]->available) continue;
            done++;
            if (c->status != BENCH_OK || c->nruns == 0) continue;
            char path[PATH_MAX], err[256];
            bench_sample_t s;
            double calls[4];
            int traced = 0;
            if (use_strace && !have_base[a]) {
                snprintf(path, sizeof path, "%s/base-%d", tmpdir, a);
                if (run_worker(r, r->alloc[a], sc, 0, 0, path, &s, err, sizeof err) == 0 &&
                    parse_strace(path, base[a]) == 0)
                    have_base[a] = 1;
                else
                    have_base[a] = -1;
                unlink(path);
            }
            traced = use_strace && have_base[a] == 1;
            snprintf(path, sizeof path, "%s/run-%d-%d", tmpdir ? tmpdir : "/tmp", a, k);
            int rc = run_worker(r, r->alloc[a], sc, r->iters[k], r->idle_ms, traced ? path : NULL, &s, err, sizeof err);
            if (rc == 0 && s.checksum != c->checksum) {
                rc = -1;
                snprintf(err, sizeof err, "worker %s/%s: checksum differs in the untimed run", an, sn);
            }
            if (rc != 0) {
                c->status = BENCH_FAILED;
                snprintf(c->error, sizeof c->error, "%s", err);
                fprintf(stderr, "bench: FAILED: %s\n", err);
                failures++;
                if (traced) unlink(path);
                continue;
            }
            if (r->idle_ms > 0) {
                c->has_idle = 1;
                c->idle_kib = s.idle_kib;
                c->idle_hak_munmap = s.hak_idle_munmap;
                c->idle_hak_flushes = s.hak_idle_flushes;
                c->idle_hak_blocks = s.hak_idle_blocks;
            }
            if (traced && parse_strace(path, calls) == 0 && s.ops > 0) {
                double *dst[4] = {&c->strace_mmap, &c->strace_munmap, &c->strace_madvise, &c->strace_mremap};
                for (int i = 0; i < 4; i++) {
                    double d = calls[i] - base[a][i];
                    *dst[i] = (d < 0 ? 0 : d) / (double)s.ops;
                }
                c->has_strace = 1;   /* summarize() prefers hakmem's own counters for hakmem rows */
            } else if (traced && !quiet) {
                fprintf(stderr, "bench: strace run of %s/%s gave no counts (n/a)\n", an, sn);
            }
            if (traced) unlink(path);
            if (!quiet)
                fprintf(stderr, "[%3d/%3d] %-12s %-16s %-9s idle RSS %.1f MiB%s\n", done, total, sn, an,
                        traced ? "strace" : "idle", (double)s.idle_kib / 1024.0,
                        c->has_strace ? "" : ", syscalls n/a");
        }
    }
    if (tmpdir) rmdir(tmpdir);
    struct timespec wall1;
    clock_gettime(CLOCK_MONOTONIC, &wall1);
    if (!quiet)
        fprintf(stderr, "bench: done in %.1f s\n",
                (double)(wall1.tv_sec - wall0.tv_sec) + (double)(wall1.tv_nsec - wall0.tv_nsec) / 1e9);

    bench_summarize(r);
    bench_print_table(r, stdout);
    fflush(stdout);
    int werr = 0;
    if (json && bench_write_json(r, json) != 0) werr = 1;
    if (csv && bench_write_csv(r, csv) != 0) werr = 1;
    if (svg && bench_write_svg(r, svg) != 0) werr = 1;
    if (md) {
        const char *svg_name = NULL;
        if (svg) {
            const char *sl2 = strrchr(svg, '/');
            svg_name = sl2 ? sl2 + 1 : svg;
        }
        if (bench_write_md(r, md, svg_name) != 0) werr = 1;
    }
    if (failures) {
        fprintf(stderr, "bench: %d run(s) failed:\n", failures);
        for (int a = 0; a < r->nalloc; a++)
            for (int k = 0; k < r->nscen; k++)
                if (r->cell[a][k].status == BENCH_FAILED) fprintf(stderr, "  %s\n", r->cell[a][k].error);
        return 1;
    }
    return werr;
}
