/*
 * tuner/report_html.c - hakmem-report --format html: ONE self-contained file.
 *
 * The page is the template dashboards/report.html (compiled in; --template
 * overrides it) with its {{PLACEHOLDERS}} filled: the figures as tables and
 * the timelines as inline SVG generated here.  No script, font, image or
 * style sheet is fetched (the template's Content-Security-Policy forbids it),
 * so the file opens offline, mails as one attachment and prints as it shows.
 *
 * Every number has data-k (its name) and data-value (the exact figure) so
 * tests and scripts can read the page; every plot is an <svg class="plot">
 * with data-plot and data-points.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

static void esc(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* <td class="num" data-k=".." data-value="..">text</td> */
static void td_num(FILE *f, const char *k, const char *value, const char *text) {
    fprintf(f, "<td class=\"num\" data-k=\"%s\" data-value=\"%s\">", k, value);
    esc(f, text);
    fputs("</td>", f);
}

static void td_u64(FILE *f, const char *k, uint64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    td_num(f, k, b, b);
}

static void td_bytes(FILE *f, const char *k, double v) {
    char b[32], t[32];
    snprintf(b, sizeof b, "%.0f", v);
    td_num(f, k, b, rp_bytes(t, sizeof t, v));
}

static void td_pct(FILE *f, const char *k, double v) {
    char b[32], t[32];
    if (isnan(v)) snprintf(b, sizeof b, "null");
    else snprintf(b, sizeof b, "%.6f", v);
    td_num(f, k, b, rp_pct(t, sizeof t, v));
}

/* a knob value: exact in data-value, readable in the cell (4M, 276.17 MiB, global, huge) */
static void td_knob(FILE *f, const char *k, const char *knob, uint64_t v) {
    char b[32], t[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    td_num(f, k, b, rp_knob_value(t, sizeof t, knob, v));
}

static void td_text(FILE *f, const char *s) {
    fputs("<td>", f);
    esc(f, s);
    fputs("</td>", f);
}

// ---------------------------------------------------------------------------
// SVG line plots
// ---------------------------------------------------------------------------
enum unit { U_COUNT, U_PCT, U_BYTES, U_RATE };

#define PW 880.0
#define PH 172.0
#define ML 78.0
#define MR 18.0
#define MT 22.0
#define MB 38.0   /* tick labels, then the axis title below them (they must not overlap) */

typedef struct series {
    const char *name, *label;
    const double *x, *y;
    int n;
    int step;
} series_t;

static double nice(double v) {   /* 1, 2, 5 x 10^k >= v */
    if (v <= 0) return 1;
    double p = pow(10, floor(log10(v)));
    double m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void tick_label(char *b, size_t n, double v, int unit) {
    switch (unit) {
    case U_PCT: snprintf(b, n, "%.0f%%", v * 100); break;
    case U_BYTES: rp_bytes(b, n, v); break;
    case U_RATE: snprintf(b, n, v >= 100 ? "%.0f/s" : "%.3g/s", v); break;
    default: snprintf(b, n, "%.6g", v); break;
    }
}

/* Vertical dashed lines (tuner decisions, the recommended cap): each shows
 * its tag ("#3") on the plot, so a printout explains it with the caption;
 * label is the hover text. */
typedef struct marks {
    const double *t;
    const char *const *label;
    const char *const *tag;
    int n;
} marks_t;

static void svg_plot(FILE *f, const char *id, const char *plot, int64_t run, const char *title, int unit,
                     double x0, double x1, const char *xlabel, const series_t *ss, int ns, const marks_t *mk) {
    double ymax = 0;
    int points = 0;
    for (int s = 0; s < ns; s++)
        for (int i = 0; i < ss[s].n; i++)
            if (!isnan(ss[s].y[i])) {
                if (ss[s].y[i] > ymax) ymax = ss[s].y[i];
                points++;
            }
    double ystep = 0;   /* > 0: ticks every ystep from 0 (whole numbers for a count) */
    if (unit == U_PCT) ymax = 1.0;
    else if (unit == U_BYTES) {
        double u = 1;
        while (ymax / u >= 1024 && u < 1099511627776.0) u *= 1024;
        ymax = nice(ymax / u * 1.02) * u;
        if (ymax <= 0) ymax = 1;
    } else if (unit == U_COUNT) {
        /* a whole-number knob (ring cap): integer ticks, 2 to 5 of them */
        double top = ymax < 1 ? 1 : ymax * 1.02;
        ystep = nice(top / 4);
        if (ystep < 1) ystep = 1;
        ystep = floor(ystep + 0.5);
        ymax = ceil(top / ystep) * ystep;
    } else ymax = nice(ymax * 1.02);
    if (x1 <= x0) x1 = x0 + 1;
    const double W = PW - ML - MR, H = PH - MT - MB;
#define SX(v) (ML + ((v) - x0) / (x1 - x0) * W)
#define SY(v) (MT + H - (v) / ymax * H)
    fprintf(f, "<svg class=\"plot\" id=\"%s\" data-run=\"%" PRId64 "\" data-plot=\"%s\" data-points=\"%d\" "
               "viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"",
            id, run, plot, points, PW, PH, PW, PH);
    esc(f, title);
    fprintf(f, "\" xmlns=\"http://www.w3.org/2000/svg\">\n<title>");
    esc(f, title);
    fprintf(f, "</title>\n<rect class=\"bg\" x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"%.1f\"/>\n", ML, MT, W, H);
    /* y grid and labels */
    int nyt = ystep > 0 ? (int)(ymax / ystep + 0.5) : 4;
    for (int i = 0; i <= nyt; i++) {
        double v = ystep > 0 ? ystep * i : ymax * i / 4, y = SY(v);
        char b[32];
        tick_label(b, sizeof b, v, unit);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"tick\" data-axis=\"y\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                ML, ML + W, y, y, ML - 6, y + 4, b);
    }
    /* x ticks */
    double xs = nice((x1 - x0) / 8);
    for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs) {
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"tick\" data-axis=\"x\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.6g</text>\n",
                SX(v), SX(v), MT, MT + H, SX(v), MT + H + 14, v);
    }
    /* the axis title centred under the tick labels, a line below them */
    fprintf(f, "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", ML + W / 2,
            PH - 4, xlabel);
    /* decision markers, each tagged on the plot (tags that would collide stack downwards) */
    double last_x = -1e9;
    int stack = 0;
    for (int i = 0; mk && i < mk->n; i++) {
        if (mk->t[i] < x0 || mk->t[i] > x1) continue;
        double mx = SX(mk->t[i]);
        fprintf(f, "<line class=\"mark\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"><title>", mx, mx, MT,
                MT + H);
        esc(f, mk->label[i]);
        fputs("</title></line>\n", f);
        if (mk->tag && mk->tag[i]) {
            stack = mx - last_x < 8.0 * (double)strlen(mk->tag[i]) ? stack + 1 : 0;
            if (stack > 5) stack = 0;
            last_x = mx;
            int right = mx > ML + W - 60;   /* near the right edge: the tag goes left of its line */
            fprintf(f, "<text class=\"marklabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", right ? mx - 3 : mx + 3,
                    MT + 10 + 10.0 * stack, right ? "end" : "start");
            esc(f, mk->tag[i]);
            fputs("</text>\n", f);
        }
    }
    /* series */
    for (int s = 0; s < ns; s++) {
        const series_t *e = &ss[s];
        int open = 0;
        double py = 0;
        for (int i = 0; i < e->n; i++) {
            if (isnan(e->y[i])) {
                if (open) fputs("\"/>\n", f);
                open = 0;
                continue;
            }
            double x = SX(e->x[i]), y = SY(e->y[i]);
            if (!open) {
                fprintf(f, "<polyline class=\"series s%d\" data-series=\"%s\" points=\"", s, e->name);
                open = 1;
                fprintf(f, "%.1f,%.1f", x, y);
            } else {
                if (e->step) fprintf(f, " %.1f,%.1f", x, py);
                fprintf(f, " %.1f,%.1f", x, y);
            }
            py = y;
        }
        if (open) fputs("\"/>\n", f);
        /* a lone point shows as a dot */
        for (int i = 0; i < e->n; i++) {
            int prev_nan = i == 0 || isnan(e->y[i - 1]), next_nan = i == e->n - 1 || isnan(e->y[i + 1]);
            if (!isnan(e->y[i]) && prev_nan && next_nan)
                fprintf(f, "<circle class=\"dot s%d\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>\n", s, SX(e->x[i]),
                        SY(e->y[i]));
        }
    }
    /* legend */
    double lx = ML + 8;
    for (int s = 0; s < ns; s++) {
        fprintf(f, "<rect class=\"key s%d\" x=\"%.1f\" y=\"5\" width=\"14\" height=\"4\"/>"
                   "<text class=\"legend\" x=\"%.1f\" y=\"12\">",
                s, lx, lx + 18);
        esc(f, ss[s].label);
        fputs("</text>\n", f);
        lx += 30 + 6.5 * (double)strlen(ss[s].label);
    }
    fputs("</svg>\n", f);
#undef SX
#undef SY
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

static void run_plots(FILE *f, const rp_run_t *r) {
    int n = r->nint;
    if (n == 0) {
        fputs("<p class=\"note\">No interval between samples: nothing to plot.</p>\n", f);
        return;
    }
    double *x = calloc((size_t)n, sizeof *x), *cap = calloc((size_t)n, sizeof *cap),
           *thr = calloc((size_t)n, sizeof *thr), *hr = calloc((size_t)n, sizeof *hr),
           *ev = calloc((size_t)n, sizeof *ev), *fl = calloc((size_t)n, sizeof *fl),
           *ca = calloc((size_t)n, sizeof *ca), *pe = calloc((size_t)n, sizeof *pe),
           *li = calloc((size_t)n, sizeof *li);
    int nm = 0;
    double *mt = calloc((size_t)r->ndecisions + 1, sizeof *mt);
    char **ml = calloc((size_t)r->ndecisions + 1, sizeof *ml);
    char **mg = calloc((size_t)r->ndecisions + 1, sizeof *mg);
    if (!x || !cap || !thr || !hr || !ev || !fl || !ca || !pe || !li || !mt || !ml || !mg) goto out;
    for (int i = 0; i < n; i++) {
        const rp_interval_t *v = &r->ints[i];
        x[i] = v->t1;
        cap[i] = (double)v->ring_cap;
        thr[i] = (double)v->batch_threshold;
        hr[i] = v->hit_rate;
        ev[i] = v->evict_per_s;
        fl[i] = v->flush_per_s;
        ca[i] = (double)v->cached;
        pe[i] = (double)v->pending;
        li[i] = (double)v->live;
    }
    for (int i = 0; i < r->ndecisions; i++) {
        const rp_decision_t *d = &r->decisions[i];
        char b[160];
        mt[nm] = ((double)d->time_ns - (double)r->start_ns) / 1e9;
        char kn[64], o[32], nv[32];
        snprintf(b, sizeof b, "#%" PRIu64 " %s %s -> %s (%s)", d->seq, rp_decision_knob(kn, sizeof kn, r, d),
                 rp_knob_value(o, sizeof o, d->knob, d->old_value), rp_knob_value(nv, sizeof nv, d->knob, d->new_value),
                 d->reason);
        ml[nm] = strdup(b);
        snprintf(b, sizeof b, "#%" PRIu64, d->seq);
        mg[nm++] = strdup(b);
    }
    marks_t mk = {mt, (const char *const *)ml, (const char *const *)mg, nm};
    double x0 = r->ints[0].t0 < 0 ? r->ints[0].t0 : 0, x1 = r->ints[n - 1].t1;
    char id[64];
    series_t s1[] = {{"ring_cap", "ring cap (blocks per class)", x, cap, n, 1}};
    snprintf(id, sizeof id, "run%" PRId64 "-ring_cap", r->id);
    svg_plot(f, id, "ring_cap", r->id, "Ring cap", U_COUNT, x0, x1, "time (s)", s1, 1, &mk);
    series_t s2[] = {{"batch_threshold", "batch threshold", x, thr, n, 1}};
    snprintf(id, sizeof id, "run%" PRId64 "-batch_threshold", r->id);
    svg_plot(f, id, "batch_threshold", r->id, "Batch threshold", U_BYTES, x0, x1, "time (s)", s2, 1, &mk);
    series_t s3[] = {{"hit_rate", "cache hit rate per interval", x, hr, n, 0}};
    snprintf(id, sizeof id, "run%" PRId64 "-hit_rate", r->id);
    svg_plot(f, id, "hit_rate", r->id, "Hit rate", U_PCT, x0, x1, "time (s)", s3, 1, &mk);
    series_t s4[] = {{"evictions_per_s", "evictions/s", x, ev, n, 0}, {"flushes_per_s", "flushes/s", x, fl, n, 0}};
    snprintf(id, sizeof id, "run%" PRId64 "-rates", r->id);
    svg_plot(f, id, "rates", r->id, "Evictions and flushes per second", U_RATE, x0, x1, "time (s)", s4, 2, &mk);
    series_t s5[] = {{"bytes_cached", "bytes cached", x, ca, n, 0},
                     {"bytes_pending", "bytes pending", x, pe, n, 0},
                     {"bytes_live", "bytes live (program)", x, li, n, 0}};
    snprintf(id, sizeof id, "run%" PRId64 "-bytes", r->id);
    svg_plot(f, id, "bytes", r->id, "Bytes cached, pending and live", U_BYTES, x0, x1, "time (s)", s5, 3, &mk);
    /* the legend of the dashed lines, in print too */
    fputs("<p class=\"caption marks-caption\">", f);
    if (nm == 0) {
        fputs("No tuner decision in this run (no dashed line).", f);
    } else {
        fputs("Dashed lines: the tuner's decisions, tagged with their number in the Decisions table: ", f);
        for (int i = 0; i < nm; i++) {
            fprintf(f, "%s<b>%s</b> at %.2f s: ", i ? "; " : "", mg[i], mt[i]);
            esc(f, strchr(ml[i], ' ') ? strchr(ml[i], ' ') + 1 : ml[i]);
        }
        fputs(".", f);
    }
    fputs("</p>\n", f);
out:
    for (int i = 0; ml && i < nm; i++) free(ml[i]);
    for (int i = 0; mg && i < nm; i++) free(mg[i]);
    free(mg), free(ml), free(mt), free(x), free(cap), free(thr), free(hr), free(ev), free(fl), free(ca), free(pe), free(li);
}

static void whatif_plot(FILE *f, const rp_run_t *r) {
    const rp_reco_t *o = &r->reco;
    if (!o->have_cap) return;
    uint64_t top = o->ring_cap * 2;
    if (r->sum.max_cap * 3 / 2 > top) top = r->sum.max_cap * 3 / 2;
    if (top < 16) top = 16;
    if (top > 512) top = 512;
    int n = (int)(top < 256 ? top + 1 : 257);
    double *x = calloc((size_t)n, sizeof *x), *y = calloc((size_t)n, sizeof *y), *m = calloc((size_t)n, sizeof *m);
    if (x && y && m) {
        for (int i = 0; i < n; i++) {
            uint64_t c = (uint64_t)((double)top * i / (n - 1) + 0.5);
            x[i] = (double)c;
            y[i] = rp_predict_hit_rate(r, c, &m[i]);
        }
        double mk_t[1] = {(double)o->ring_cap};
        char lab[64];
        snprintf(lab, sizeof lab, "recommended ring cap %" PRIu64, o->ring_cap);
        const char *labs[1] = {lab}, *tags[1] = {"recommended"};
        marks_t mk = {mk_t, labs, tags, 1};
        char id[64];
        series_t s[] = {{"predicted_hit_rate", "predicted hit rate with a static ring cap", x, y, n, 0}};
        snprintf(id, sizeof id, "run%" PRId64 "-whatif", r->id);
        svg_plot(f, id, "whatif", r->id, "Predicted hit rate by static ring cap", U_PCT, 0, (double)top,
                 "static ring cap (blocks per class)", s, 1, &mk);
        fprintf(f, "<p class=\"caption\">Dashed line: the recommended ring cap (%" PRIu64 ").</p>\n", o->ring_cap);
    }
    free(x), free(y), free(m);
}

static const char *grade_name(int g) {
    switch (g) {
    case 1: return "confirmed";
    case 2: return "refuted";
    case 3: return "inconclusive";
    default: return "ungraded";
    }
}

static void write_run(FILE *f, const rp_report_t *rep, const rp_run_t *r) {
    const rp_summary_t *m = &r->sum;
    const rp_reco_t *o = &r->reco;
    char a[64], b[64];
    fprintf(f, "<section class=\"run\" id=\"run%" PRId64 "\" data-run=\"%" PRId64 "\">\n<h2>Run %" PRId64 ": ", r->id,
            r->id, r->id);
    esc(f, r->mode);
    fputs(", ", f);
    esc(f, r->source);
    fprintf(f, " <span class=\"status s-%s\">", r->end_ns == 0 ? "progress" : r->nsamples <= 1 ? "thin" : "ok");
    esc(f, rp_status(r));
    fputs("</span></h2>\n<p class=\"cmd\"><code>", f);
    esc(f, r->command[0] ? r->command : "?");
    fprintf(f, "</code></p>\n<p class=\"meta\">pid %" PRId64 " on ", r->pid);
    esc(f, r->host);
    fprintf(f, ", recorded from %s, %d samples, %s.</p>\n", rp_time(a, sizeof a, r->start_ns), m->nsamples,
            m->zero_base ? "counted from the process's start" : "counted from the first sample");
    if (r->end_ns == 0)
        fputs("<p class=\"note\">No end time recorded: the run is still in progress, or its writer was killed. "
              "Figures are up to the last sample.</p>\n", f);
    if (r->nsamples == 0) {
        fputs("<p class=\"note\">No samples recorded for this run: nothing to report.</p>\n</section>\n", f);
        return;
    }
    if (r->nint == 0)
        fputs("<p class=\"note\">Only one sample: no interval to measure counts, rates or a timeline from.</p>\n", f);

    /* summary cards */
    fputs("<h3>Summary</h3>\n<table class=\"summary\">\n", f);
    char v[64];
    fputs("<tr><th>duration</th>", f);
    snprintf(v, sizeof v, "%.3f", m->duration_s);
    snprintf(a, sizeof a, "%.2f s", m->duration_s);
    td_num(f, "duration_s", v, a);
    fputs("<th>mode</th>", f);
    td_text(f, r->mode);
    fputs("</tr>\n<tr><th>large allocations</th>", f);
    td_u64(f, "accesses", m->accesses);
    fputs("<th>hit rate</th>", f);
    td_pct(f, "hit_rate", m->hit_rate);
    fputs("</tr>\n<tr><th>cache hits</th>", f);
    td_u64(f, "hits", m->hits);
    fputs("<th>cache misses</th>", f);
    td_u64(f, "misses", m->misses);
    fputs("</tr>\n<tr><th>evictions</th>", f);
    td_u64(f, "evictions", m->evictions);
    fputs("<th>by reason</th><td>", f);
    for (int e = 0; e < HAK_EVICT_NREASONS; e++)
        fprintf(f, "%s%s <span class=\"num\" data-k=\"evict_%s\" data-value=\"%" PRIu64 "\">%" PRIu64 "</span>",
                e ? ", " : "", rp_evict_names[e], rp_evict_names[e], m->evict[e], m->evict[e]);
    fputs("</td></tr>\n<tr><th>flushes</th>", f);
    td_u64(f, "flushes", m->flushes);
    fputs("<th>bytes released</th>", f);
    td_bytes(f, "bytes_released", (double)m->bytes_released);
    fputs("</tr>\n<tr><th>peak memory held (mapped)</th>", f);
    td_bytes(f, "peak_mapped", (double)m->peak_mapped);
    fputs("<th>peak cached + pending</th>", f);
    td_bytes(f, "peak_held", (double)m->peak_held);
    fputs("</tr>\n<tr><th>idle memory held</th>", f);
    if (m->idle_held >= 0) td_bytes(f, "idle_held", (double)m->idle_held);
    else td_num(f, "idle_held", "null", "never idle");
    fputs("<th>held at the last sample</th>", f);
    td_bytes(f, "end_held", (double)m->end_held);
    char th0[32], th1[32];
    fprintf(f, "</tr>\n<tr><th>ring cap at start &rarr; end</th><td class=\"num\"><span class=\"num\" "
               "data-k=\"ring_cap_start\" data-value=\"%" PRIu64 "\">%" PRIu64 "</span> &rarr; <span class=\"num\" "
               "data-k=\"ring_cap_end\" data-value=\"%" PRIu64 "\">%" PRIu64 "</span></td>",
            m->start_cap, m->start_cap, m->end_cap, m->end_cap);
    fprintf(f, "<th>batch threshold at start &rarr; end</th><td class=\"num\"><span class=\"num\" "
               "data-k=\"batch_threshold_start\" data-value=\"%" PRIu64 "\">%s</span> &rarr; <span class=\"num\" "
               "data-k=\"batch_threshold_end\" data-value=\"%" PRIu64 "\">%s</span></td>",
            m->start_threshold, rp_size_arg(th0, sizeof th0, m->start_threshold), m->end_threshold,
            rp_size_arg(th1, sizeof th1, m->end_threshold));
    fputs("</tr>\n<tr><th>decisions</th>", f);
    td_u64(f, "decisions", (uint64_t)m->ndecisions);
    fputs("<th>share confirmed</th>", f);
    td_pct(f, "confirmed_share", m->confirmed_share);
    fputs("</tr>\n<tr><th>decisions per minute</th>", f);
    if (isnan(m->decisions_per_min)) {
        td_num(f, "decisions_per_min", "null", "n/a");
    } else {
        char dv[32], dt[32];
        snprintf(dv, sizeof dv, "%.6f", m->decisions_per_min);
        snprintf(dt, sizeof dt, "%.1f", m->decisions_per_min);
        td_num(f, "decisions_per_min", dv, dt);
    }
    fputs("<th>by knob</th><td>", f);
    for (int k = 0, any = 0; k < RP_NKNOBS; k++) {
        if (!m->ndec_knob[k]) continue;
        fprintf(f, "%s%s <span class=\"num\" data-k=\"decisions_%s\" data-value=\"%d\">%d</span>", any ? ", " : "",
                rp_knob_names[k], rp_knob_names[k], m->ndec_knob[k], m->ndec_knob[k]);
        any = 1;
    }
    fputs("</td></tr>\n</table>\n", f);

    fputs("<h3>Timeline</h3>\n<p class=\"hint\">Dashed lines: tuner decisions, numbered as in the Decisions table (listed under the plots).</p>\n"
          "<div class=\"plots\">\n", f);
    run_plots(f, r);
    fputs("</div>\n", f);

    /* decisions */
    fprintf(f, "<h3>Decisions</h3>\n<p>%d decisions: %d confirmed, %d refuted, %d inconclusive, %d ungraded; "
               "share confirmed (of those confirmed or refuted): <b>%s</b>.</p>\n",
            m->ndecisions, m->confirmed, m->refuted, m->inconclusive, m->ungraded,
            rp_pct(a, sizeof a, m->confirmed_share));
    if (r->ndecisions) {
        fputs("<table class=\"decisions\"><tr><th>t (s)</th><th>#</th><th>knob</th><th>old</th><th>new</th>"
              "<th>reason</th><th>predicted</th><th>observed</th><th>grade</th></tr>\n", f);
        for (int i = 0; i < r->ndecisions; i++) {
            const rp_decision_t *d = &r->decisions[i];
            fprintf(f, "<tr class=\"g%d\"><td class=\"num\">%.2f</td>", d->grade,
                    ((double)d->time_ns - (double)r->start_ns) / 1e9);
            td_u64(f, "seq", d->seq);
            char kn[64];
            td_text(f, rp_decision_knob(kn, sizeof kn, r, d));
            td_knob(f, "old_value", d->knob, d->old_value);
            td_knob(f, "new_value", d->knob, d->new_value);
            td_text(f, d->reason);
            rp_decision_fig(a, sizeof a, d->knob, d->predicted);
            td_text(f, a);
            rp_decision_fig(a, sizeof a, d->knob, d->observed);
            td_text(f, a);
            fprintf(f, "<td class=\"grade\">%s</td></tr>\n", grade_name(d->grade));
        }
        fputs("</table>\n", f);
    }

    /* recommendation */
    fputs("<h3>Recommended static configuration</h3>\n<div class=\"reco\">\n", f);
    fprintf(f, "<p class=\"env\"><code>HAKMEM_RING_CAP=<span class=\"num\" data-k=\"reco_ring_cap\" data-value=\"%"
               PRIu64 "\">%" PRIu64 "</span> HAKMEM_BATCH_THRESHOLD=<span class=\"num\" data-k=\"reco_batch_threshold\" "
               "data-value=\"%" PRIu64 "\">%s</span></code></p>\n",
            o->ring_cap, o->ring_cap, o->batch_threshold, rp_size_arg(a, sizeof a, o->batch_threshold));
    fputs("<table class=\"summary\"><tr><th>predicted hit rate</th>", f);
    td_pct(f, "reco_hit_rate", o->hit_rate);
    fputs("<th>recorded hit rate</th>", f);
    td_pct(f, "recorded_hit_rate", o->recorded_hit_rate);
    fputs("</tr>\n<tr><th>memory cost (rings + pending)</th>", f);
    td_bytes(f, "reco_memory", o->memory_bytes);
    fputs("<th>of which warm in the rings</th>", f);
    td_bytes(f, "reco_cache", o->cache_bytes);
    fputs("</tr>\n</table>\n<p class=\"hint\">", f);
    if (!o->have_cap) fputs("No per-class traffic recorded: nothing to predict a ring cap from. ", f);
    if (o->budget_limited) fputs("Lowered to fit the cache budget. ", f);
    esc(f, o->threshold_basis);
    if (o->have_flush)
        fprintf(f, ". Flushing took %.3f%% of one core as recorded; at this threshold the part a bigger batch saves is "
                   "predicted at %.3f%% on average and %.3f%% in the busiest interval (the tuner's target: 0.5%%)",
                o->recorded_core_share * 100.0, o->flush_core_share * 100.0, o->peak_core_share * 100.0);
    fputs(". In fixed mode the rings stay filled while the program is idle (only evolving mode trims).</p>\n"
          "<p>Run it:</p>\n<pre class=\"command\"><code>", f);
    esc(f, o->command);
    fputs("</code></pre>\n", f);
    whatif_plot(f, r);
    if (o->nwhatif) {
        fputs("<table class=\"whatif\"><tr><th>static ring cap</th><th>predicted hit rate</th><th>cache memory</th>"
              "<th></th></tr>\n", f);
        for (int i = 0; i < o->nwhatif; i++) {
            const rp_whatif_t *w = &o->whatif[i];
            fprintf(f, "<tr%s>", w->cap == o->ring_cap ? " class=\"chosen\"" : "");
            td_u64(f, "whatif_cap", w->cap);
            td_pct(f, "whatif_hit_rate", w->hit_rate);
            td_bytes(f, "whatif_cache", w->cache_bytes);
            td_text(f, w->cap == o->ring_cap ? "recommended"
                       : w->cap == m->end_cap ? "in force at the end"
                       : w->cap == m->start_cap ? "at start" : "");
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    if (o->nclass) {
        fputs("<table class=\"classes\"><tr><th>class</th><th>block size</th><th>accesses</th><th>hits</th>"
              "<th>blocks in play</th><th>hit rate at the recommended cap</th></tr>\n", f);
        for (int i = 0; i < o->nclass; i++) {
            const rp_class_reco_t *k = &o->cls[i];
            fprintf(f, "<tr><td class=\"num\">%u</td>", k->cls);
            td_bytes(f, "class_size", (double)k->size);
            td_u64(f, "class_accesses", k->accesses);
            td_u64(f, "class_hits", k->hits);
            td_u64(f, "class_depth", k->depth);
            td_pct(f, "class_hit_rate", k->hit_rate_at_reco);
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    fputs("</div>\n", f);

    /* comparison */
    int same = 0;
    for (int i = 0; i < rep->ncmp; i++) same += strcmp(rep->cmp[i].command, r->command) == 0;
    if (same >= 2) {
        fprintf(f, "<h3>Runs of the same command (%d)</h3>\n<table class=\"compare\"><tr><th>run</th><th>mode</th>"
                   "<th>status</th><th>duration</th><th>hit rate</th><th>evictions</th><th>flushes</th>"
                   "<th>peak mapped</th><th>idle held</th><th>ring cap at end</th></tr>\n",
                same);
        for (int i = 0; i < rep->ncmp; i++) {
            const rp_run_t *c = &rep->cmp[i];
            if (strcmp(c->command, r->command) != 0) continue;
            fprintf(f, "<tr data-run=\"%" PRId64 "\"%s><td class=\"num\">%" PRId64 "</td>", c->id,
                    c->id == r->id ? " class=\"chosen\"" : "", c->id);
            td_text(f, c->mode);
            td_text(f, rp_status(c));
            snprintf(v, sizeof v, "%.3f", c->sum.duration_s);
            snprintf(b, sizeof b, "%.2f s", c->sum.duration_s);
            td_num(f, "cmp_duration_s", v, b);
            td_pct(f, "cmp_hit_rate", c->sum.hit_rate);
            td_u64(f, "cmp_evictions", c->sum.evictions);
            td_u64(f, "cmp_flushes", c->sum.flushes);
            td_bytes(f, "cmp_peak_mapped", (double)c->sum.peak_mapped);
            if (c->sum.idle_held >= 0) td_bytes(f, "cmp_idle_held", (double)c->sum.idle_held);
            else td_num(f, "cmp_idle_held", "null", "never idle");
            td_u64(f, "cmp_ring_cap_end", c->sum.end_cap);
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    fputs("</section>\n", f);
}

static void write_content(FILE *f, const rp_report_t *rep) {
    for (int i = 0; i < rep->nruns; i++) write_run(f, rep, &rep->runs[i]);
}

static void write_nav(FILE *f, const rp_report_t *rep) {
    fputs("<ul>", f);
    for (int i = 0; i < rep->nruns; i++) {
        const rp_run_t *r = &rep->runs[i];
        char a[32];
        fprintf(f, "<li><a href=\"#run%" PRId64 "\">run %" PRId64 "</a> ", r->id, r->id);
        esc(f, r->mode);
        fprintf(f, ", %s hits</li>", rp_pct(a, sizeof a, r->sum.hit_rate));
    }
    fputs("</ul>\n", f);
}

int rp_write_html(FILE *f, const rp_report_t *rep, const char *tpl) {
    char a[64];
    const char *p = tpl;
    while (*p) {
        const char *o = strstr(p, "{{");
        if (o == NULL) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(o - p), f);
        const char *c = strstr(o + 2, "}}");
        if (c == NULL) {
            fputs(o, f);
            break;
        }
        size_t len = (size_t)(c - o - 2);
        char key[32] = "";
        if (len < sizeof key) memcpy(key, o + 2, len), key[len] = '\0';
        if (strcmp(key, "TITLE") == 0) {
            fputs("hakmem report: ", f);
            esc(f, rep->db_path);
        } else if (strcmp(key, "DB") == 0) {
            esc(f, rep->db_path);
        } else if (strcmp(key, "GENERATED") == 0) {
            fputs(rp_time(a, sizeof a, rep->generated_ns), f);
        } else if (strcmp(key, "SUBTITLE") == 0) {
            fprintf(f, "%d run%s reported of %d in ", rep->nruns, rep->nruns == 1 ? "" : "s", rep->total_runs);
            esc(f, rep->db_path);
        } else if (strcmp(key, "NAV") == 0) {
            write_nav(f, rep);
        } else if (strcmp(key, "CONTENT") == 0) {
            write_content(f, rep);
        } else {
            fwrite(o, 1, (size_t)(c + 2 - o), f);   /* unknown: left as is */
        }
        p = c + 2;
    }
    fflush(f);
    return ferror(f) ? -1 : 0;
}
