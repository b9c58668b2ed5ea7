/* bn_rep: formatting only; every number comes from bn_stats and bn_vres. The JSON layout (documented in
 * bench/README.md) is what later comparison runs and plots read, so keys are only ever added. */
#include "report.h"

#include "workload.h"

#include <jansson.h>
#include <stdio.h>

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
    printf("dualpipe-bench  workload=%s flow=%s url=%s concurrency=%u seed=%llu\n", wl_names[c->workload],
           c->flow == BN_FLOW_ADLS ? "adls" : "hadoop", c->url, c->concurrency, (unsigned long long)c->seed);
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
    if (doc == NULL || errs == NULL || byop == NULL)
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
    for (unsigned i = 0; i < BN_OP_COUNT; i++)
        if (st->op[i].count > 0)
            json_object_set_new(byop, bn_wl_op_name((enum bn_op)i), lat(&st->op[i]));
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
    json_decref(doc);
    return rc;
}
