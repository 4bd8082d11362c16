/*
 * tuner/report_json.c - hakmem-report --format json: every figure of the
 * report, machine-readable (NULL / unknown = null; bytes and ns as integers).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../tools/cli.h"
#include "report.h"

/* Strings and numbers: the JSON writer every tool shares (tools/cli.c):
 * control bytes and 0x7f escaped, UTF-8 kept, numbers that read back exactly. */
static void jstr(FILE *f, const char *s) { hak_json_string(f, s ? s : ""); }
static void jnum(FILE *f, double v) { hak_json_number(f, v); }

static void kstr(FILE *f, const char *k, const char *v, int comma) {
    fprintf(f, "%s\"%s\": ", comma ? ", " : "", k);
    jstr(f, v);
}
static void ku64(FILE *f, const char *k, uint64_t v) { fprintf(f, ", \"%s\": %" PRIu64, k, v); }
static void ki64(FILE *f, const char *k, int64_t v) { fprintf(f, ", \"%s\": %" PRId64, k, v); }
static void kdbl(FILE *f, const char *k, double v) {
    fprintf(f, ", \"%s\": ", k);
    jnum(f, v);
}

static void summary_brief(FILE *f, const rp_run_t *c) {
    fprintf(f, "{\"id\": %" PRId64, c->id);
    kstr(f, "mode", c->mode, 1);
    kstr(f, "source", c->source, 1);
    kstr(f, "status", rp_status(c), 1);
    ku64(f, "start_ns", c->start_ns);
    kdbl(f, "duration_s", c->sum.duration_s);
    ku64(f, "accesses", c->sum.accesses);
    kdbl(f, "hit_rate", c->sum.hit_rate);
    ku64(f, "evictions", c->sum.evictions);
    ku64(f, "flushes", c->sum.flushes);
    ku64(f, "bytes_released", c->sum.bytes_released);
    ku64(f, "peak_mapped_bytes", c->sum.peak_mapped);
    fputs(", \"idle_held_bytes\": ", f);
    if (c->sum.idle_held < 0) fputs("null", f);
    else fprintf(f, "%" PRId64, c->sum.idle_held);
    ku64(f, "ring_cap_end", c->sum.end_cap);
    ku64(f, "batch_threshold_end", c->sum.end_threshold);
    fputs("}", f);
}

static void write_run(FILE *f, const rp_run_t *r) {
    const rp_summary_t *m = &r->sum;
    fprintf(f, "{\"id\": %" PRId64, r->id);
    ki64(f, "pid", r->pid);
    kstr(f, "command", r->command, 1);
    kstr(f, "host", r->host, 1);
    kstr(f, "mode", r->mode, 1);
    kstr(f, "source", r->source, 1);
    ku64(f, "start_ns", r->start_ns);
    if (r->end_ns) ku64(f, "end_ns", r->end_ns);
    else fputs(", \"end_ns\": null", f);
    kstr(f, "status", rp_status(r), 1);
    fprintf(f, ", \"in_progress\": %s", r->end_ns ? "false" : "true");
    fprintf(f, ",\n  \"knobs_at_start\": {\"ring_cap\": %" PRIu64 ", \"batch_threshold\": %" PRIu64
               ", \"cache_max_bytes\": %" PRIu64 ", \"large_min\": %" PRIu64 ", \"thp\": %" PRIu64
               ", \"tune_interval_ms\": %" PRIu64 ", \"idle_ms\": %" PRIu64 "}",
            r->ring_cap, r->batch_threshold, r->cache_max_bytes, r->large_min, r->thp, r->tune_interval_ms,
            r->idle_ms);

    fprintf(f, ",\n  \"summary\": {\"duration_s\": ");
    jnum(f, m->duration_s);
    fprintf(f, ", \"samples\": %d, \"intervals\": %d", m->nsamples, r->nint);
    kstr(f, "counted_from", m->zero_base ? "process_start" : "first_sample", 1);
    ku64(f, "accesses", m->accesses);
    ku64(f, "hits", m->hits);
    ku64(f, "misses", m->misses);
    kdbl(f, "hit_rate", m->hit_rate);
    ku64(f, "evictions", m->evictions);
    fputs(", \"evictions_by_reason\": {", f);
    for (int e = 0; e < HAK_EVICT_NREASONS; e++) fprintf(f, "%s\"%s\": %" PRIu64, e ? ", " : "", rp_evict_names[e], m->evict[e]);
    fputs("}", f);
    ku64(f, "flushes", m->flushes);
    ku64(f, "bytes_released", m->bytes_released);
    ku64(f, "munmap_calls", m->munmap_calls);
    ku64(f, "ranges_released", m->ranges);
    ku64(f, "flush_ns", m->flush_ns);
    ku64(f, "peak_mapped_bytes", m->peak_mapped);
    ki64(f, "peak_held_bytes", m->peak_held);
    fputs(", \"idle_held_bytes\": ", f);
    if (m->idle_held < 0) fputs("null", f);
    else fprintf(f, "%" PRId64, m->idle_held);
    kdbl(f, "idle_at_s", m->idle_held < 0 ? NAN : m->idle_at_s);
    ki64(f, "end_held_bytes", m->end_held);
    ki64(f, "end_mapped_bytes", m->end_mapped);
    ku64(f, "ring_cap_start", m->start_cap);
    ku64(f, "ring_cap_end", m->end_cap);
    ku64(f, "ring_cap_min", m->nsamples ? m->min_cap : m->start_cap);
    ku64(f, "ring_cap_max", m->nsamples ? m->max_cap : m->start_cap);
    ku64(f, "batch_threshold_start", m->start_threshold);
    ku64(f, "batch_threshold_end", m->end_threshold);
    kdbl(f, "active_s", m->active_s);
    if (m->kernel) fprintf(f, ", \"kernel\": {\"munmap_calls\": %" PRIu64 ", \"munmap_ns\": %" PRIu64 "}",
                           m->k_munmap_calls, m->k_munmap_ns);
    else fputs(", \"kernel\": null", f);
    fputs("}", f);

    fprintf(f, ",\n  \"decision_grades\": {\"decisions\": %d, \"confirmed\": %d, \"refuted\": %d, \"inconclusive\": %d, "
               "\"ungraded\": %d, \"confirmed_share\": ",
            m->ndecisions, m->confirmed, m->refuted, m->inconclusive, m->ungraded);
    jnum(f, m->confirmed_share);
    kdbl(f, "decisions_per_minute", m->decisions_per_min);
    fputs(", \"by_knob\": {", f);
    for (int k = 0; k < RP_NKNOBS; k++) fprintf(f, "%s\"%s\": %d", k ? ", " : "", rp_knob_names[k], m->ndec_knob[k]);
    fputs("}}", f);

    fputs(",\n  \"timeline\": [", f);
    for (int i = 0; i < r->nint; i++) {
        const rp_interval_t *v = &r->ints[i];
        fprintf(f, "%s\n    {\"t0\": ", i ? "," : "");
        jnum(f, v->t0);
        kdbl(f, "t1", v->t1);
        ku64(f, "ring_cap", v->ring_cap);
        ku64(f, "batch_threshold", v->batch_threshold);
        ku64(f, "accesses", v->accesses);
        ku64(f, "hits", v->hits);
        kdbl(f, "hit_rate", v->hit_rate);
        ku64(f, "evictions", v->evictions);
        ku64(f, "flushes", v->flushes);
        kdbl(f, "evictions_per_s", v->evict_per_s);
        kdbl(f, "flushes_per_s", v->flush_per_s);
        ki64(f, "bytes_cached", v->cached);
        ki64(f, "bytes_pending", v->pending);
        ki64(f, "bytes_live", v->live);
        ki64(f, "bytes_mapped", v->mapped);
        fprintf(f, ", \"active\": %s}", v->active ? "true" : "false");
    }
    fputs("]", f);

    fputs(",\n  \"decisions\": [", f);
    for (int i = 0; i < r->ndecisions; i++) {
        const rp_decision_t *d = &r->decisions[i];
        static const char *const gn[] = {"ungraded", "confirmed", "refuted", "inconclusive"};
        fprintf(f, "%s\n    {\"seq\": %" PRIu64, i ? "," : "", d->seq);
        ku64(f, "time_ns", d->time_ns);
        kdbl(f, "t", ((double)d->time_ns - (double)r->start_ns) / 1e9);
        kstr(f, "knob", d->knob, 1);
        if (d->size_class >= 0) ki64(f, "size_class", d->size_class);
        else fputs(", \"size_class\": null", f);
        ku64(f, "old_value", d->old_value);
        ku64(f, "new_value", d->new_value);
        kstr(f, "reason", d->reason, 1);
        kdbl(f, "predicted", d->predicted);
        kdbl(f, "before", d->before);
        if (d->grade) fprintf(f, ", \"grade\": %d", d->grade);
        else fputs(", \"grade\": null", f);
        kstr(f, "grade_name", gn[d->grade], 1);
        kdbl(f, "observed", d->observed);
        fputs("}", f);
    }
    fputs("]", f);

    const rp_reco_t *o = &r->reco;
    char th[32], env[96];
    snprintf(env, sizeof env, "HAKMEM_RING_CAP=%" PRIu64 " HAKMEM_BATCH_THRESHOLD=%s", o->ring_cap,
             rp_size_arg(th, sizeof th, o->batch_threshold));
    fprintf(f, ",\n  \"recommendation\": {\"ring_cap\": %" PRIu64, o->ring_cap);
    ku64(f, "batch_threshold", o->batch_threshold);
    kstr(f, "env", env, 1);
    kstr(f, "command", o->command, 1);
    fprintf(f, ", \"predicted_from_history\": %s, \"ghost_histograms\": %s", o->have_cap ? "true" : "false",
            o->have_hist ? "true" : "false");
    kdbl(f, "predicted_hit_rate", o->hit_rate);
    kdbl(f, "best_hit_rate", o->best_hit_rate);
    kdbl(f, "recorded_hit_rate", o->recorded_hit_rate);
    kdbl(f, "cache_bytes", o->cache_bytes);
    kdbl(f, "memory_bytes", o->memory_bytes);
    ku64(f, "budget_bytes", o->budget);
    fprintf(f, ", \"budget_limited\": %s", o->budget_limited ? "true" : "false");
    fprintf(f, ", \"flushes_recorded\": %s", o->have_flush ? "true" : "false");
    kstr(f, "threshold_basis", o->threshold_basis, 1);
    kdbl(f, "flush_fixed_ns", o->have_flush ? o->flush_fixed_ns : NAN);
    kdbl(f, "release_bytes_per_s", o->have_flush ? o->release_rate : NAN);
    kdbl(f, "flush_core_share", o->have_flush ? o->flush_core_share : NAN);
    fputs(",\n    \"what_if\": [", f);
    for (int i = 0; i < o->nwhatif; i++) {
        fprintf(f, "%s{\"ring_cap\": %" PRIu64, i ? ", " : "", o->whatif[i].cap);
        kdbl(f, "hit_rate", o->whatif[i].hit_rate);
        kdbl(f, "cache_bytes", o->whatif[i].cache_bytes);
        fputs("}", f);
    }
    fputs("],\n    \"classes\": [", f);
    for (int i = 0; i < o->nclass; i++) {
        const rp_class_reco_t *k = &o->cls[i];
        fprintf(f, "%s{\"class\": %u", i ? ", " : "", k->cls);
        ku64(f, "size", k->size);
        ku64(f, "accesses", k->accesses);
        ku64(f, "hits", k->hits);
        ku64(f, "blocks_in_play", k->depth);
        kdbl(f, "hit_rate_at_ring_cap", k->hit_rate_at_reco);
        fputs("}", f);
    }
    fputs("]}}", f);
}

int rp_write_json(FILE *f, const rp_report_t *rep) {
    fputs("{", f);
    kstr(f, "db", rep->db_path, 0);
    ku64(f, "generated_ns", rep->generated_ns);
    fprintf(f, ", \"runs_in_db\": %d", rep->total_runs);
    fputs(",\n\"runs\": [", f);
    for (int i = 0; i < rep->nruns; i++) {
        fputs(i ? ",\n" : "\n", f);
        write_run(f, &rep->runs[i]);
    }
    fputs("],\n\"comparisons\": [", f);
    /* one group per command of a reported run that has several runs */
    int ng = 0;
    for (int i = 0; i < rep->nruns; i++) {
        const char *cmd = rep->runs[i].command;
        int seen = 0, n = 0;
        for (int j = 0; j < i; j++) seen |= strcmp(rep->runs[j].command, cmd) == 0;
        if (seen) continue;
        for (int j = 0; j < rep->ncmp; j++) n += strcmp(rep->cmp[j].command, cmd) == 0;
        if (n < 2) continue;
        fprintf(f, "%s\n  {", ng++ ? "," : "");
        kstr(f, "command", cmd, 0);
        fputs(", \"runs\": [", f);
        int k = 0;
        for (int j = 0; j < rep->ncmp; j++) {
            if (strcmp(rep->cmp[j].command, cmd) != 0) continue;
            fputs(k++ ? ",\n    " : "\n    ", f);
            summary_brief(f, &rep->cmp[j]);
        }
        fputs("]}", f);
    }
    fputs("]}\n", f);
    fflush(f);
    return ferror(f) ? -1 : 0;
}
