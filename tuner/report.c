/*
 * tuner/report.c - hakmem-report: offline reports from the tuning history.
 *
 * Reads a history DB (HAKMEM_HISTORY=file.db or hakmem-tuner --db) read-only
 * and writes, per run: duration, mode, command, hit rate, evictions, flushes,
 * bytes released, peak and idle memory held; the knobs' timeline against hit
 * rate, evictions, flush rate and bytes cached; the decision log with reasons
 * and grades; a recommended static configuration with its predicted hit rate
 * and memory cost and the command line to run it; and a comparison with the
 * other runs of the same command.  Text, Markdown, JSON or one self-contained
 * HTML file (inline SVG plots, template dashboards/report.html).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tools/cli.h"
#include "report.h"
#include "report_template.h"

static const char usage_text[] =
    "Usage: hakmem-report --db FILE [--run ID | --last | --all] [--format text|md|html|json] [-o FILE]\n"
    "Offline report of hakmem tuning runs recorded in a history DB (HAKMEM_HISTORY=FILE with\n"
    "HAKMEM_MODE=evolving, or hakmem-tuner --db FILE).  The DB is opened read-only.\n"
    "\n"
    "  --db FILE         the history database\n"
    "  --run ID          report run ID (repeatable)\n"
    "  --last            report the most recent run (default)\n"
    "  --all             report every run\n"
    "  --format F        text (default; html when -o ends in .html, json for .json, md for .md),\n"
    "                    md (Markdown), html (one self-contained file, inline SVG plots), json\n"
    "  -o, --output FILE write there (atomically) instead of standard output\n"
    "  --lib PATH        libhakmem.so to name in the recommended command line\n"
    "                    (default: the one next to this program)\n"
    "  --template FILE   HTML template instead of the built-in dashboards/report.html\n"
    "  -h, --help        this text\n"
    "  -V, --version     the hakmem version\n"
    "\n"
    "Per run: duration, mode, command, hit rate, evictions, flushes, bytes released, peak and idle\n"
    "memory held; the timeline of the knobs against hit rate, evictions/s, flushes/s and bytes\n"
    "cached; the decision log with reasons and grades (share confirmed = confirmed / (confirmed +\n"
    "refuted)); a recommended static configuration (HAKMEM_RING_CAP, HAKMEM_BATCH_THRESHOLD)\n"
    "with predicted hit rate and memory cost from the recorded ghost histograms, and the command\n"
    "to run the program with it; the other runs of the same command side by side.\n"
    "\n"
    "\n";

static const char usage_tail[] =
    "  Conventions shared by the hakmem tools: README.md, \"Command-line conventions\n"
    "  and exit status\".  A run still in progress (no end recorded) or with a single\n"
    "  sample is reported up to its last sample, with a note (exit 0).\n"
    "Examples:\n"
    "  hakmem-report --db hakmem-history.db\n"
    "  hakmem-report --db hakmem-history.db --all --format html -o hakmem-report.html\n"
    "  hakmem-report --db hakmem-history.db --run 3 --format json | jq .runs[0].recommendation\n";

enum fmt { F_TEXT, F_MD, F_HTML, F_JSON };

typedef struct opts {
    const char *db, *out, *lib, *tpl;
    int fmt, fmt_set, last, all;
    int64_t runs[64];
    int nruns;
} opts_t;

#define usage_error hak_cli_usage_error

_Static_assert(RP_EXIT_DB == HAK_EXIT_ERROR && RP_EXIT_USAGE == HAK_EXIT_USAGE && RP_EXIT_OUTPUT == HAK_EXIT_ERROR &&
                   RP_EXIT_NODATA == HAK_EXIT_NODATA,
               "hakmem-report's exit status follows the shared table (tools/cli.h)");

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static int parse_args(int argc, char **argv, opts_t *o) {
    enum { O_DB = 256, O_RUN, O_LAST, O_ALL, O_FORMAT, O_LIB, O_TPL };
    static const struct option lo[] = {{"db", required_argument, 0, O_DB},
                                       {"run", required_argument, 0, O_RUN},
                                       {"last", no_argument, 0, O_LAST},
                                       {"all", no_argument, 0, O_ALL},
                                       {"format", required_argument, 0, O_FORMAT},
                                       {"output", required_argument, 0, 'o'},
                                       {"lib", required_argument, 0, O_LIB},
                                       {"template", required_argument, 0, O_TPL},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":ho:V", lo, NULL)) != -1) {
        switch (c) {
        case O_DB: o->db = optarg; break;
        case O_RUN: {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || *optarg == '\0' || *end || v <= 0) return usage_error("--run: '%s' is not a run id", optarg);
            if (o->nruns == 64) return usage_error("%s", "too many --run (max 64)");
            o->runs[o->nruns++] = v;
            break;
        }
        case O_LAST: o->last = 1; break;
        case O_ALL: o->all = 1; break;
        case O_FORMAT:
            if (strcmp(optarg, "text") == 0) o->fmt = F_TEXT;
            else if (strcmp(optarg, "md") == 0 || strcmp(optarg, "markdown") == 0) o->fmt = F_MD;
            else if (strcmp(optarg, "html") == 0) o->fmt = F_HTML;
            else if (strcmp(optarg, "json") == 0) o->fmt = F_JSON;
            else return usage_error("--format: '%s' is not text, md, html or json", optarg);
            o->fmt_set = 1;
            break;
        case 'o': o->out = optarg; break;
        case O_LIB: o->lib = optarg; break;
        case O_TPL: o->tpl = optarg; break;
        case 'h':
            fputs(usage_text, stdout);
            hak_cli_print_exit_table(stdout);
            fputs(usage_tail, stdout);
            return hak_cli_stdout_done() == 0 ? -1 : RP_EXIT_OUTPUT;
        case 'V': return hak_cli_version(NULL) == 0 ? -1 : RP_EXIT_OUTPUT;
        default: return hak_cli_bad_option(c, argv);
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (o->db == NULL) return usage_error("%s", "--db FILE is required");
    if ((o->nruns > 0) + o->last + o->all > 1) return usage_error("%s", "--run, --last and --all exclude each other");
    if (!o->fmt_set && o->out) {
        if (ends_with(o->out, ".html") || ends_with(o->out, ".htm")) o->fmt = F_HTML;
        else if (ends_with(o->out, ".json")) o->fmt = F_JSON;
        else if (ends_with(o->out, ".md")) o->fmt = F_MD;
    }
    return 0;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb, cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (buf == NULL || err) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* libhakmem.so next to this program (build tree), or ../lib (installed). */
static void default_lib(char *out, size_t n) {
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    snprintf(out, n, "libhakmem.so");
    if (l <= 0) return;
    exe[l] = '\0';
    char *dir = dirname(exe);
    char cand[PATH_MAX + 32];
    snprintf(cand, sizeof cand, "%s/libhakmem.so", dir);
    if (access(cand, R_OK) == 0 && strlen(cand) < n) {
        memcpy(out, cand, strlen(cand) + 1);
        return;
    }
    snprintf(cand, sizeof cand, "%s/../lib/libhakmem.so", dir);
    char real[PATH_MAX];
    if (access(cand, R_OK) == 0 && realpath(cand, real) && strlen(real) < n) memcpy(out, real, strlen(real) + 1);
}

#define now_ns hak_cli_wall_ns

static int write_report(const opts_t *o, const rp_report_t *rep, const char *tpl) {
    FILE *f = stdout;
    char tmp[PATH_MAX];
    if (o->out && strcmp(o->out, "-") != 0) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", o->out, (int)getpid());
        f = fopen(tmp, "w");
        if (f == NULL) {
            fprintf(stderr, "hakmem-report: %s: %s\n", o->out, strerror(errno));
            return RP_EXIT_OUTPUT;
        }
    }
    int rc;
    switch (o->fmt) {
    case F_MD: rc = rp_write_text(f, rep, 1); break;
    case F_HTML: rc = rp_write_html(f, rep, tpl); break;
    case F_JSON: rc = rp_write_json(f, rep); break;
    default: rc = rp_write_text(f, rep, 0); break;
    }
    if (f != stdout) {
        if (fclose(f) != 0) rc = -1;
        if (rc == 0 && rename(tmp, o->out) != 0) rc = -1;
        if (rc != 0) {
            fprintf(stderr, "hakmem-report: %s: %s\n", o->out, strerror(errno ? errno : EIO));
            unlink(tmp);
            return RP_EXIT_OUTPUT;
        }
    } else if (rc != 0) {
        fprintf(stderr, "hakmem-report: writing the report: %s\n", strerror(errno ? errno : EIO));
        return RP_EXIT_OUTPUT;
    }
    return RP_EXIT_OK;
}

int main(int argc, char **argv) {
    opts_t o;
    hak_cli_init("hakmem-report");
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) return rc < 0 ? 0 : rc;

    char *tpl_buf = NULL;
    const char *tpl = report_template;
    if (o.tpl) {
        tpl_buf = read_file(o.tpl);
        if (tpl_buf == NULL) {
            fprintf(stderr, "hakmem-report: --template %s: %s\n", o.tpl, strerror(errno ? errno : EIO));
            return RP_EXIT_USAGE;
        }
        tpl = tpl_buf;
    }
    char lib[PATH_MAX];
    if (o.lib) snprintf(lib, sizeof lib, "%s", o.lib);
    else default_lib(lib, sizeof lib);
    rp_opts_t mo = {.lib = lib, .hit_slack = 0.002};

    rp_db_t db;
    rp_report_t rep;
    memset(&rep, 0, sizeof rep);
    rep.db_path = o.db;
    rep.generated_ns = now_ns();
    int64_t *ids = NULL, *sel = NULL;
    int nids = 0, nsel = 0;
    int status = RP_EXIT_OK;
    /* SQLite says only "unable to open database file": open it ourselves
     * first, so that a missing or unreadable DB is reported with the reason. */
    int dbfd = open(o.db, O_RDONLY | O_CLOEXEC);
    if (dbfd < 0) {
        fprintf(stderr, "hakmem-report: cannot open %s: %s\n", o.db, strerror(errno));
        free(tpl_buf);
        return RP_EXIT_DB;
    }
    close(dbfd);
    if (rp_db_open(&db, o.db) != 0) {
        fprintf(stderr, "hakmem-report: %s\n", db.err);
        free(tpl_buf);
        return RP_EXIT_DB;
    }
    if (rp_db_run_ids(&db, &ids, &nids) != 0) {
        fprintf(stderr, "hakmem-report: %s\n", db.err);
        status = RP_EXIT_DB;
        goto done;
    }
    rep.total_runs = nids;
    if (nids == 0) {
        fprintf(stderr, "hakmem-report: %s: no runs recorded yet\n", o.db);
        status = RP_EXIT_NODATA;
        goto done;
    }
    sel = calloc((size_t)nids + 64, sizeof *sel);
    if (sel == NULL) {
        status = RP_EXIT_DB;
        goto done;
    }
    if (o.all) {
        memcpy(sel, ids, (size_t)nids * sizeof *sel);
        nsel = nids;
    } else if (o.nruns) {
        for (int i = 0; i < o.nruns; i++) {
            int found = 0;
            for (int j = 0; j < nids; j++) found |= ids[j] == o.runs[i];
            if (!found) {
                fprintf(stderr, "hakmem-report: %s: no run %" PRId64 " (runs %" PRId64 "..%" PRId64 ", %d in all)\n",
                        o.db, o.runs[i], ids[0], ids[nids - 1], nids);
                status = RP_EXIT_NODATA;
                goto done;
            }
            sel[nsel++] = o.runs[i];
        }
    } else {
        sel[nsel++] = ids[nids - 1];
    }

    rep.runs = calloc((size_t)nsel, sizeof *rep.runs);
    if (rep.runs == NULL) {
        status = RP_EXIT_DB;
        goto done;
    }
    int with_data = 0;
    for (int i = 0; i < nsel; i++) {
        rp_run_t *r = &rep.runs[rep.nruns];
        int lr = rp_db_load_run(&db, sel[i], r);
        if (lr < 0) {
            fprintf(stderr, "hakmem-report: %s\n", db.err);
            status = RP_EXIT_DB;
            goto done;
        }
        if (lr == 0) continue;
        rep.nruns++;
        rp_model_run(r, &mo);
        if (r->nsamples == 0) {
            fprintf(stderr, "hakmem-report: run %" PRId64 " has no samples%s\n", r->id,
                    r->end_ns ? " (the process ended before its first sample)"
                              : " yet (still starting, or its writer was killed before the first sample)");
            continue;
        }
        with_data++;
        if (r->end_ns == 0)
            fprintf(stderr, "hakmem-report: note: run %" PRId64 " has no end time: still in progress or its writer "
                            "was killed; reported up to its last sample\n", r->id);
        else if (r->nsamples == 1)
            fprintf(stderr, "hakmem-report: note: run %" PRId64 " has a single sample\n", r->id);
    }
    if (with_data == 0) {
        fprintf(stderr, "hakmem-report: %s: nothing to report\n", o.db);
        status = RP_EXIT_NODATA;
        goto done;
    }

    /* every run sharing a command with a reported run, for the comparison */
    int cmp_cap = 0;
    for (int i = 0; i < rep.nruns; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= strcmp(rep.runs[j].command, rep.runs[i].command) == 0;
        if (seen) continue;
        int64_t *same = NULL;
        int nsame = 0;
        if (rp_db_same_command(&db, rep.runs[i].command, &same, &nsame) != 0) {
            fprintf(stderr, "hakmem-report: %s\n", db.err);
            status = RP_EXIT_DB;
            goto done;
        }
        if (nsame >= 2) {
            int from = nsame > 50 ? nsame - 50 : 0;   /* the 50 most recent */
            for (int k = from; k < nsame; k++) {
                if (rep.ncmp == cmp_cap) {
                    int nc = cmp_cap ? cmp_cap * 2 : 16;
                    rp_run_t *nv = realloc(rep.cmp, (size_t)nc * sizeof *nv);
                    if (nv == NULL) break;
                    rep.cmp = nv, cmp_cap = nc;
                }
                rp_run_t *c = &rep.cmp[rep.ncmp];
                int lr = rp_db_load_run(&db, same[k], c);
                if (lr < 0) {
                    fprintf(stderr, "hakmem-report: %s\n", db.err);
                    free(same);
                    status = RP_EXIT_DB;
                    goto done;
                }
                if (lr == 0) continue;
                rp_model_run(c, &mo);
                /* the comparison needs the summary only */
                for (int s = 0; s < c->nsamples; s++) free(c->samples[s].cls), c->samples[s].cls = NULL;
                rep.ncmp++;
            }
        }
        free(same);
    }
    status = write_report(&o, &rep, tpl);

done:
    for (int i = 0; i < rep.nruns; i++) rp_run_free(&rep.runs[i]);
    for (int i = 0; i < rep.ncmp; i++) rp_run_free(&rep.cmp[i]);
    free(rep.runs);
    free(rep.cmp);
    free(ids);
    free(sel);
    rp_db_close(&db);
    free(tpl_buf);
    return status;
}
