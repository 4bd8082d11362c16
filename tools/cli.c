/*
 * tools/cli.c - the command-line base shared by every hakmem tool (contract
 * and the convention in tools/cli.h; the user-facing table in README.md).
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hakmem.h"
#include "hakmem/shm.h"

static const char *cli_prog = "hakmem";

void hak_cli_init(const char *prog) {
    if (prog != NULL && *prog != '\0') cli_prog = prog;
}

const char *hak_cli_prog(void) { return cli_prog; }

int hak_cli_exit_of_shm(int err) {
    switch (err < 0 ? -err : err) {
    case HAK_SHM_OK: return HAK_EXIT_OK;
    case HAK_SHM_ESRCH: return HAK_EXIT_NOPROC;
    case HAK_SHM_ENOENT: return HAK_EXIT_NOHAKMEM;
    case HAK_SHM_EACCES: return HAK_EXIT_PERM;
    case HAK_SHM_EMAGIC: return HAK_EXIT_NOTHAKMEM;
    case HAK_SHM_EVERSION: return HAK_EXIT_VERSION;
    case HAK_SHM_ESHORT: return HAK_EXIT_TRUNCATED;
    case HAK_SHM_ECORRUPT: return HAK_EXIT_CORRUPT;
    case HAK_SHM_EBUSY: return HAK_EXIT_BUSY;
    default: return HAK_EXIT_ERROR;
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------
static void try_help(void) { fprintf(stderr, "Try '%s --help'.\n", cli_prog); }

static void vmessage(const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void hak_cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
}

int hak_cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    try_help();
    return HAK_EXIT_USAGE;
}

int hak_cli_bad_option(int c, char **argv) {
    /* getopt leaves optind past the offending word (or past its missing value) */
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    char shortopt[3] = {'-', (char)optopt, '\0'};
    const char *name = word;
    int namelen = (int)strlen(word);
    if (strncmp(word, "--", 2) == 0) {
        const char *eq = strchr(word, '=');
        if (eq != NULL) namelen = (int)(eq - word);
    } else if (optopt > 0 && optopt < 256) {
        name = shortopt;
        namelen = 2;
    }
    if (c == ':') fprintf(stderr, "%s: option '%.*s' needs a value\n", cli_prog, namelen, name);
    else if (strncmp(word, "--", 2) == 0 && strchr(word, '=') != NULL && optopt != 0)
        fprintf(stderr, "%s: option '%.*s' takes no value\n", cli_prog, namelen, name);
    else fprintf(stderr, "%s: unknown option '%.*s'\n", cli_prog, namelen, name);
    try_help();
    return HAK_EXIT_USAGE;
}

int hak_cli_stdout_done(void) {
    /* a write that failed while printing (a full disk, /dev/full, a closed
     * pipe) leaves the error flag, and fflush then has nothing left to fail on */
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return HAK_EXIT_OK;
    fprintf(stderr, "%s: write error on standard output%s%s\n", cli_prog, errno ? ": " : "", errno ? strerror(errno) : "");
    return HAK_EXIT_ERROR;
}

int hak_cli_version(const char *extra) {
    printf("%s (hakmem) %s%s%s\n", cli_prog, HAKMEM_VERSION, extra ? ", " : "", extra ? extra : "");
    return hak_cli_stdout_done();
}

void hak_cli_print_exit_table(FILE *f) {
    static const struct {
        int code;
        const char *text;
    } rows[] = {
#define HAK_EXIT_ROW(code, name, text) {code, text},
        HAK_EXIT_CODES(HAK_EXIT_ROW)
#undef HAK_EXIT_ROW
    };
    fputs("Exit status (the same in every hakmem tool):\n", f);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        /* wrap at ~78 columns, continuation lines indented under the text */
        const char *t = rows[i].text;
        int first = 1;
        while (*t) {
            size_t len = strlen(t), cut = len;
            if (len > 70) {
                cut = 70;
                while (cut > 0 && t[cut] != ' ') cut--;
                if (cut == 0) cut = 70;
            }
            if (first) fprintf(f, "  %2d  %.*s\n", rows[i].code, (int)cut, t);
            else fprintf(f, "      %.*s\n", (int)cut, t);
            first = 0;
            t += cut;
            while (*t == ' ') t++;
        }
    }
}

// ---------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------
int hak_cli_parse_pid(const char *s, int *out) {
    if (s == NULL || *s < '1' || *s > '9') return -1;
    long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (*s - '0');
        if (v > INT_MAX) return -1;
    }
    *out = (int)v;
    return 0;
}

int hak_cli_parse_seconds(const char *s, double min, double max, double *out) {
    if (s == NULL || !((*s >= '0' && *s <= '9') || *s == '.')) return -1;   /* no sign, space, hex, inf */
    for (const char *p = s; *p; p++)
        if (*p == 'x' || *p == 'X' || *p == 'p' || *p == 'P') return -1;  /* no hex floats */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s) return -1;
    if (strcmp(end, "ms") == 0) v /= 1000.0;
    else if (strcmp(end, "s") != 0 && *end != '\0') return -1;
    if (!isfinite(v) || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int hak_cli_parse_count(const char *s, long *out) {
    if (s == NULL || *s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1) return -1;
    *out = v;
    return 0;
}

int hak_cli_interval_count(char *const *args, int n, double min_s, double max_s, double *interval, long *count,
                           int *have) {
    *have = 0;
    if (n > 2) return hak_cli_usage_error("unexpected argument '%s' (positional arguments: [interval [count]])", args[2]);
    if (n >= 1) {
        if (hak_cli_parse_seconds(args[0], min_s, max_s, interval) != 0)
            return hak_cli_usage_error("interval '%s' is not a number of seconds in %g..%g", args[0], min_s, max_s);
        *have = 1;
    }
    if (n == 2) {
        if (hak_cli_parse_count(args[1], count) != 0)
            return hak_cli_usage_error("count '%s' is not a positive number", args[1]);
        *have = 2;
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Clock, signals
// ---------------------------------------------------------------------------
static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t hak_cli_mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t hak_cli_wall_ns(void) { return clock_ns(CLOCK_REALTIME); }

volatile sig_atomic_t hak_cli_stop;

static void on_stop(int sig) { hak_cli_stop = sig; }

void hak_cli_install_stop(int ignore_pipe) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;   /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (ignore_pipe) signal(SIGPIPE, SIG_IGN);
}

void hak_cli_sleep(double s) {
    if (!(s > 0)) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (!hak_cli_stop && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------
/* Length of the valid UTF-8 sequence at p (1..4), or 0 if the bytes there are
 * not one (overlong forms, surrogates and code points above U+10FFFF are not). */
size_t hak_cli_utf8_len(const unsigned char *p) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;   /* also stops at the NUL */
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Appends to buf[0..n) at *len, counting what does not fit. */
static void put(char *buf, size_t n, size_t *len, const char *s, size_t sl) {
    if (*len < n) {
        size_t room = n - *len;
        memcpy(buf + *len, s, sl < room ? sl : room);
    }
    *len += sl;
}

size_t hak_json_string_buf(char *buf, size_t n, const char *s) {
    size_t len = 0;
    if (s == NULL) {
        put(buf, n, &len, "null", 4);
    } else {
        put(buf, n, &len, "\"", 1);
        const unsigned char *p = (const unsigned char *)s;
        while (*p) {
            char esc[8];
            size_t u;
            switch (*p) {
            case '"': put(buf, n, &len, "\\\"", 2); p++; continue;
            case '\\': put(buf, n, &len, "\\\\", 2); p++; continue;
            case '\n': put(buf, n, &len, "\\n", 2); p++; continue;
            case '\r': put(buf, n, &len, "\\r", 2); p++; continue;
            case '\t': put(buf, n, &len, "\\t", 2); p++; continue;
            case '\b': put(buf, n, &len, "\\b", 2); p++; continue;
            case '\f': put(buf, n, &len, "\\f", 2); p++; continue;
            default: break;
            }
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                put(buf, n, &len, esc, 6);
                p++;
            } else if ((u = hak_cli_utf8_len(p)) > 0) {
                put(buf, n, &len, (const char *)p, u);
                p += u;
            } else {
                put(buf, n, &len, "\\ufffd", 6);
                p++;
            }
        }
        put(buf, n, &len, "\"", 1);
    }
    if (n > 0) buf[len < n ? len : n - 1] = '\0';
    return len;
}

size_t hak_json_number_buf(char *buf, size_t n, double v) {
    char tmp[40];
    if (!isfinite(v)) {
        snprintf(tmp, sizeof tmp, "null");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {   /* 2^53: every integer is exact */
        snprintf(tmp, sizeof tmp, "%.0f", v == 0 ? 0.0 : v);       /* no "-0" */
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) break;
        }
    }
    return (size_t)snprintf(buf, n, "%s", tmp);
}

void hak_json_string(FILE *f, const char *s) {
    char small[256];
    size_t need = hak_json_string_buf(small, sizeof small, s);
    if (need < sizeof small) {
        fwrite(small, 1, need, f);
        return;
    }
    char *big = malloc(need + 1);
    if (big == NULL) {   /* out of memory: still valid JSON */
        fputs("\"\"", f);
        return;
    }
    hak_json_string_buf(big, need + 1, s);
    fwrite(big, 1, need, f);
    free(big);
}

void hak_json_number(FILE *f, double v) {
    char tmp[40];
    hak_json_number_buf(tmp, sizeof tmp, v);
    fputs(tmp, f);
}

// ---------------------------------------------------------------------------
// SIGBUS guard (cli.h)
// ---------------------------------------------------------------------------
sigjmp_buf hak_cli_bus_env;
volatile sig_atomic_t hak_cli_bus_armed;

static void on_sigbus(int sig) {
    if (hak_cli_bus_armed) {
        hak_cli_bus_armed = 0;
        siglongjmp(hak_cli_bus_env, 1);
    }
    signal(sig, SIG_DFL);   /* a fault outside a guarded access: a real bug, crash loudly */
    raise(sig);
}

void hak_cli_install_sigbus(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
