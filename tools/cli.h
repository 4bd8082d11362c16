/*
 * tools/cli.h - the command-line base shared by every hakmem tool
 * (hakmem-stat, hakmem-probe, hakmem-tuner, hakmem-report): one exit-status
 * table, one way to parse a pid, an interval, a count and a duration, one
 * "unknown option" message, -V/--version from HAKMEM_VERSION, one monotonic
 * clock, one stop-signal flag and one JSON writer for strings and numbers.
 * Compiled once (build/obj/tools/cli.o) and linked into each tool; the
 * convention it implements is documented once, in README.md ("Command-line
 * conventions and exit status").
 *
 * The convention, bcc/libbpf-tools style:
 *   -p, --pid PID         a process id, in every tool
 *   [interval [count]]    positional, for the tools that print periodically
 *   seconds everywhere    intervals, durations and timeouts, fractions allowed
 *                         ("0.5"; a unit suffix "s" or "ms" is accepted too)
 *   -h, --help / -V, --version on every tool
 *   usage errors: one line "tool: <what>" and "Try 'tool --help'.", exit 2
 */
#ifndef HAKMEM_TOOLS_CLI_H
#define HAKMEM_TOOLS_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit status of every tool: X(code, name, meaning).  The table in README.md
 * and each tool's --help print these rows (hak_cli_print_exit_table). */
#define HAK_EXIT_CODES(X)                                                                                         \
    X(0, OK, "success")                                                                                           \
    X(1, ERROR, "I/O or other runtime error: a file or DB that cannot be opened, read or written (the errno "     \
                "reason is printed), out of memory, the eBPF program failing to load")                          \
    X(2, USAGE, "usage error: unknown option, bad or missing value")                                              \
    X(3, NOPROC, "no such process")                                                                               \
    X(4, NOHAKMEM, "the process runs without hakmem: no telemetry segment (or HAKMEM_STATS=0), no libhakmem.so "  \
                   "mapped")                                                                                      \
    X(5, PERM, "permission denied: another user's segment, a symlink, or missing privilege (eBPF needs "          \
               "CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)")                                                      \
    X(6, NOTHAKMEM, "not hakmem data: a segment with a bad magic, not a regular file")                            \
    X(7, VERSION, "a hakmem segment of another layout version")                                                   \
    X(8, TRUNCATED, "truncated segment (also when it shrinks while being read)")                                  \
    X(9, CORRUPT, "corrupt segment (counters violate their invariants)")                                          \
    X(10, BUSY, "segment busy: no consistent snapshot within 250 ms")                                             \
    X(11, NOTAPPLIED, "control request not applied within the timeout (it stays posted)")                         \
    X(12, NODATA, "nothing to report: no runs in the history, no such run, or runs without samples")              \
    X(13, UNSUPPORTED, "not possible here: no kernel BTF, no tracefs or syscall tracepoints, or a libhakmem.so "  \
                       "built without USDT probes")

enum hak_exit {
#define HAK_EXIT_ENUM(code, name, text) HAK_EXIT_##name = code,
    HAK_EXIT_CODES(HAK_EXIT_ENUM)
#undef HAK_EXIT_ENUM
};

/* Exit status for a segment reader error (-enum hak_shm_err or its positive
 * value): ESRCH -> NOPROC, ENOENT -> NOHAKMEM, EACCES -> PERM, ... */
int hak_cli_exit_of_shm(int err);

/* Name used in messages ("hakmem-stat"); set once at the top of main. */
void hak_cli_init(const char *prog);
const char *hak_cli_prog(void);
/* What was printed on stdout reached it: HAK_EXIT_OK; else "tool: write error on
 * standard output" on stderr and HAK_EXIT_ERROR (--help, --version, reports). */
int hak_cli_stdout_done(void);

/* "tool: <message>" on stderr (an error that is not the command line's). */
void hak_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "tool: <message>" + "Try 'tool --help'." on stderr; returns HAK_EXIT_USAGE. */
int hak_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* After getopt_long returned '?' or ':' (opterr = 0, optstring starting with
 * ':'): "tool: unknown option '--bogus'" or "tool: option '--db' needs a
 * value", then the Try line; returns HAK_EXIT_USAGE. */
int hak_cli_bad_option(int c, char **argv);

/* "tool (hakmem) 0.1.0[, extra]" on stdout; returns HAK_EXIT_OK (or ERROR if
 * stdout cannot be written). */
int hak_cli_version(const char *extra);

/* The exit-status rows, "  %2d  meaning", wrapped; for --help. */
void hak_cli_print_exit_table(FILE *f);

/* Parsers: 0 and *out set, or -1 (nothing written).
 *   pid       decimal 1..INT_MAX, no sign, no spaces
 *   seconds   decimal with fraction and exponent ("2", "0.5", ".25", "1e-2"),
 *             optional unit "s" or "ms"; finite, within [min, max]
 *   count     decimal 1..LONG_MAX */
int hak_cli_parse_pid(const char *s, int *out);
int hak_cli_parse_seconds(const char *s, double min, double max, double *out);
int hak_cli_parse_count(const char *s, long *out);

/* The positional [interval [count]] of a periodic tool: args[0..n) are what
 * getopt left (argv + optind).  0, or HAK_EXIT_USAGE after the message.  An
 * interval must be in [min_s, max_s]; *have is set to the number parsed. */
int hak_cli_interval_count(char *const *args, int n, double min_s, double max_s, double *interval, long *count,
                           int *have);

/* CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns) and CLOCK_REALTIME, in ns. */
uint64_t hak_cli_mono_ns(void);
uint64_t hak_cli_wall_ns(void);

/* SIGINT, SIGTERM and SIGHUP set hak_cli_stop to the signal number (no
 * SA_RESTART: a sleep or poll returns at once); SIGPIPE is ignored when
 * ignore_pipe is set. */
extern volatile sig_atomic_t hak_cli_stop;
void hak_cli_install_stop(int ignore_pipe);

/* Sleep s seconds or until hak_cli_stop is set. */
void hak_cli_sleep(double s);

/* JSON output.  A string is quoted; '"' and '\\' are escaped, every byte below
 * 0x20 and 0x7f as \n \r \t \b \f or \u00XX; valid UTF-8 is copied as is, an
 * invalid byte becomes \ufffd (the output is always valid JSON).  NULL is
 * written as null.  A number is an integer when it is one (|v| < 2^53),
 * otherwise the shortest of %.15g/%.16g/%.17g that reads back as the same
 * double; NaN and infinities are null. */
void hak_json_string(FILE *f, const char *s);
void hak_json_number(FILE *f, double v);

/* The same into buf (always NUL-terminated); returns the length the full text
 * needs, as snprintf does. */
size_t hak_json_string_buf(char *buf, size_t n, const char *s);
size_t hak_json_number_buf(char *buf, size_t n, double v);

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if the bytes there are
 * not one (overlong forms, surrogates, code points above U+10FFFF); stops at
 * a NUL.  The JSON writer and the Prometheus labels replace such bytes with
 * U+FFFD. */
size_t hak_cli_utf8_len(const unsigned char *p);

/* SIGBUS guard around reads (and writes) of a mapped segment: a segment
 * truncated under a reader faults on its next access (a "truncated segment",
 * exit 8), not a crash.  hak_cli_install_sigbus() once at start; then
 *
 *     if (sigsetjmp(hak_cli_bus_env, 1) == 0) {
 *         hak_cli_bus_armed = 1;
 *         ... touch the mapping ...
 *         hak_cli_bus_armed = 0;
 *     } else {
 *         ... it shrank: HAK_SHM_ESHORT ...
 *     }
 *
 * (sigsetjmp must be the whole controlling expression, in the caller's frame).
 * A fault while the guard is not armed is a real bug: the default action. */
#include <setjmp.h>
extern sigjmp_buf hak_cli_bus_env;
extern volatile sig_atomic_t hak_cli_bus_armed;
void hak_cli_install_sigbus(void);
/* rc = call, run under the guard; -HAK_SHM_ESHORT if the segment shrank under it. */
#define HAK_CLI_GUARDED(rc, call)                   \
    do {                                            \
        if (sigsetjmp(hak_cli_bus_env, 1) == 0) {   \
            hak_cli_bus_armed = 1;                  \
            (rc) = (call);                          \
            hak_cli_bus_armed = 0;                  \
        } else {                                    \
            (rc) = -HAK_SHM_ESHORT;                 \
        }                                           \
    } while (0)

#endif /* HAKMEM_TOOLS_CLI_H */
