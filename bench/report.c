/* bn_rep: formatting only; every number comes from bn_stats and bn_vres. The JSON layout (documented in
 * bench/README.md) is what the comparison runs (bench/compare.py) and their plots read, so keys are only
 * ever added: the per-second timeline and the latency CDF points are there for the plots. */
#include "report.h"

#include "workload.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const wl_names[] = { "ingest", "small", "large", "read", "meta", "verify" };

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void row(const char *name, const struct bn_hist *h)
{
    printf("  %-14s %10llu %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", name, (unsigned long long)h->count,
           bn_hist_mean(h) / 1e6, ms(bn_hist_quantile(h, 0.5)), ms(bn_hist_quantile(h, 0.9)),
           ms(bn_hist_quantile(h, 0.99)), ms(bn_hist_quantile(h, 0.999)), ms(h->max));
}

void bn_rep_print(const struct bn_rep *r)
{
    const struct bn_cfg *c = r->cfg;
    const struct bn_stats *st = r->st;
    double el = st->elapsed;
    printf("dualpipe-bench  %s%sworkload=%s flow=%s url=%s concurrency=%u seed=%llu\n", c->label,
           c->label[0] ? "  " : "", wl_names[c->workload],
           c->api == BN_API_DFS ? "dfs" : c->flow == BN_FLOW_ADLS ? "adls" : "hadoop", c->url, c->concurrency,
           (unsigned long long)c->seed);
    if (c->workload != BN_WL_VERIFY) {
        printf("  elapsed %.2f s   ops %llu (%.1f ops/s)   %.1f MB (%.1f MB/s)   errors %llu\n", el,
               (unsigned long long)st->ops, el > 0 ? (double)st->ops / el : 0.0, (double)st->bytes / 1e6,
               el > 0 ? (double)st->bytes / el / 1e6 : 0.0, (unsigned long long)st->errors);
        printf("  %-14s %10s %9s %9s %9s %9s %9s %9s\n", "latency (ms)", "count", "mean", "p50", "p90", "p99",
               "p99.9", "max");
        row("all", &st->all);
        for (unsigned i = 0; i < BN_OP_COUNT; i++)
            if (st->op[i].count > 0)
                row(bn_wl_op_name((enum bn_op)i), &st->op[i]);
    }
    if (st->errors > 0) {
        printf("  errors by status:");
        for (unsigned s = 0; s < BN_STATUS_MAX; s++) {
            if (st->err_status[s] == 0)
                continue;
            if (s == 0)
                printf(" transport=%llu", (unsigned long long)st->err_status[s]);
            else
                printf(" %u=%llu", s, (unsigned long long)st->err_status[s]);
        }
        printf("\n");
    }
    if (c->workload == BN_WL_READ)
        printf("  read content mismatches: %llu\n", (unsigned long long)r->read_bad);
    if (r->verify->ran)
        printf("  verify: %llu files, %.1f MB read back, %llu skipped (write errors), %llu mismatches\n",
               (unsigned long long)r->verify->files, (double)r->verify->bytes / 1e6,
               (unsigned long long)r->verify->skipped, (unsigned long long)r->verify->mismatches);
    else
        printf("  verify: off\n");
    printf("  result: %s\n", r->ok ? "OK" : "FAILED");
}

static json_t *lat(const struct bn_hist *h)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)h->count, "mean_us",
                     bn_hist_mean(h) / 1e3, "min_us", h->count ? (double)h->min / 1e3 : 0.0, "p50_us",
                     (double)bn_hist_quantile(h, 0.5) / 1e3, "p90_us", (double)bn_hist_quantile(h, 0.9) / 1e3,
                     "p99_us", (double)bn_hist_quantile(h, 0.99) / 1e3, "p99.9_us",
                     (double)bn_hist_quantile(h, 0.999) / 1e3, "max_us", (double)h->max / 1e3);
}

/* [[latency_us, fraction], ...]: the cumulative distribution, one point per non-empty bucket. */
static json_t *cdf(const struct bn_hist *h)
{
    json_t *arr = json_array();
    uint64_t *val = malloc(BN_HIST_BUCKETS * sizeof(*val));
    double *frac = malloc(BN_HIST_BUCKETS * sizeof(*frac));
    if (arr == NULL || val == NULL || frac == NULL) {
        json_decref(arr);
        arr = NULL;
        goto out;
    }
    size_t n = bn_hist_cdf(h, val, frac, BN_HIST_BUCKETS);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("[f, f]", (double)val[i] / 1e3, frac[i]));
out:
    free(val);
    free(frac);
    return arr;
}

/* [{"t": second, "ops", "bytes", "errors", "mb_per_s", "p50_us", "p99_us", "max_us"}, ...] */
static json_t *timeline(const struct bn_hist_ts *ts)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i < ts->n; i++) {
        const struct bn_hist_sec *s = &ts->sec[i];
        json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "t", (json_int_t)i, "ops",
                                             (json_int_t)s->ops, "bytes", (json_int_t)s->bytes, "errors",
                                             (json_int_t)s->errors, "mb_per_s", (double)s->bytes / 1e6, "p50_us",
                                             (double)s->p50 / 1e3, "p99_us", (double)s->p99 / 1e3, "max_us",
                                             (double)s->max / 1e3));
    }
    return arr;
}

/* [{"from_s", "to_s" (null for the last), "ops", "bytes", "errors", "mb_per_s", "latency": {...}}, ...]:
 * throughput over the phase's nominal span (the last one ends at the window's end). */
static json_t *phases(const struct bn_cfg *c, const struct bn_stats *st)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    for (unsigned i = 0; i <= c->nphase_at; i++) {
        double from = i == 0 ? 0.0 : c->phase_at[i - 1];
        double to = i < c->nphase_at ? c->phase_at[i] : st->elapsed;
        double span = to - from;
        json_t *ph = json_pack("{s:f, s:o, s:I, s:I, s:I, s:f, s:o}", "from_s", from, "to_s",
                               i < c->nphase_at ? json_real(to) : json_null(), "ops",
                               (json_int_t)st->phase[i].count, "bytes", (json_int_t)st->phase_bytes[i], "errors",
                               (json_int_t)st->phase_errors[i], "mb_per_s",
                               span > 0 ? (double)st->phase_bytes[i] / span / 1e6 : 0.0, "latency",
                               lat(&st->phase[i]));
        json_array_append_new(arr, ph);
    }
    return arr;
}

int bn_rep_json(const struct bn_rep *r, const char *path)
{
    int rc = -1;
    const struct bn_cfg *c = r->cfg;
    const struct bn_stats *st = r->st;
    double el = st->elapsed;
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:I, s:f, s:I}", "tool", "dualpipe-bench",
        "workload", wl_names[c->workload], "flow", c->flow == BN_FLOW_ADLS ? "adls" : "hadoop", "url", c->url,
        "prefix", c->prefix, "concurrency", (json_int_t)c->concurrency, "files", (json_int_t)r->files_written,
        "appends", (json_int_t)c->appends, "size", (json_int_t)c->size, "duration_s", c->duration, "ops_limit",
        (json_int_t)c->ops, "warmup_s", c->warmup, "seed", (json_int_t)c->seed);
    json_t *errs = json_object();
    json_t *byop = json_object();
    json_t *cdfs = json_object();
    if (doc == NULL || errs == NULL || byop == NULL || cdfs == NULL)
        goto out;
    for (unsigned s = 0; s < BN_STATUS_MAX; s++) {
        if (st->err_status[s] == 0)
            continue;
        char key[16];
        if (s == 0)
            snprintf(key, sizeof(key), "transport");
        else
            snprintf(key, sizeof(key), "%u", s);
        json_object_set_new(errs, key, json_integer((json_int_t)st->err_status[s]));
    }
    for (unsigned i = 0; i < BN_OP_COUNT; i++) {
        if (st->op[i].count > 0) {
            json_object_set_new(byop, bn_wl_op_name((enum bn_op)i), lat(&st->op[i]));
            json_object_set_new(cdfs, bn_wl_op_name((enum bn_op)i), cdf(&st->op[i]));
        }
    }
    json_object_set_new(cdfs, "all", cdf(&st->all));
    json_object_set_new(doc, "label", json_string(c->label));
    json_object_set_new(doc, "api", json_string(c->api == BN_API_DFS ? "dfs" : "webhdfs"));
    json_object_set_new(doc, "start_unix", json_real(st->start_unix));
    json_object_set_new(doc, "acked_total", json_integer((json_int_t)st->acked));
    json_object_set_new(doc, "acked_bytes", json_integer((json_int_t)st->acked_bytes));
    if (c->nphase_at > 0)
        json_object_set_new(doc, "phases", phases(c, st));
    json_object_set_new(doc, "timeline", timeline(&st->ts));
    json_object_set_new(doc, "timeline_complete", json_boolean(!st->ts.oom));
    json_object_set_new(doc, "cdf", cdfs);
    cdfs = NULL;
    json_object_set_new(doc, "elapsed_s", json_real(el));
    json_object_set_new(doc, "ops", json_integer((json_int_t)st->ops));
    json_object_set_new(doc, "bytes", json_integer((json_int_t)st->bytes));
    json_object_set_new(doc, "ops_per_s", json_real(el > 0 ? (double)st->ops / el : 0.0));
    json_object_set_new(doc, "mb_per_s", json_real(el > 0 ? (double)st->bytes / el / 1e6 : 0.0));
    json_object_set_new(doc, "errors", json_integer((json_int_t)st->errors));
    json_object_set_new(doc, "errors_by_status", errs);
    errs = NULL;
    json_object_set_new(doc, "latency", lat(&st->all));
    json_object_set_new(doc, "by_op", byop);
    byop = NULL;
    if (c->workload == BN_WL_READ)
        json_object_set_new(doc, "read_mismatches", json_integer((json_int_t)r->read_bad));
    json_object_set_new(doc, "verify",
                        json_pack("{s:b, s:I, s:I, s:I, s:I}", "enabled", r->verify->ran, "files",
                                  (json_int_t)r->verify->files, "skipped", (json_int_t)r->verify->skipped,
                                  "bytes", (json_int_t)r->verify->bytes, "mismatches",
                                  (json_int_t)r->verify->mismatches));
    json_object_set_new(doc, "ok", json_boolean(r->ok));
    if (json_dump_file(doc, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        fprintf(stderr, "dualpipe-bench: cannot write %s\n", path);
        goto out;
    }
    rc = 0;
out:
    json_decref(errs);
    json_decref(byop);
    json_decref(cdfs);
    json_decref(doc);
    return rc;
}
