/* dualpipe-bench: command line and the phases of a run. Parses the flags into a bn_cfg, runs the
 * workload's measured phase on the driver (the read workload first writes its files unmeasured; the
 * verify workload writes nothing and only checks files an earlier run wrote with the same --prefix,
 * --seed, --files, --appends and --size), then verifies, prints the table, writes --json, and exits 0 when
 * every request succeeded and every file read back as written, 1 otherwise, 2 on a usage error. */
#include "bench.h"
#include "driver.h"
#include "report.h"
#include "verify.h"
#include "workload.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DP_VERSION
#define DP_VERSION "dev"
#endif

static const char usage[] =
    "usage: dualpipe-bench --url http://HOST:PORT [options]\n"
    "  --workload W      ingest (default) | small | large | read | meta | verify\n"
    "  --flow F          adls (one-step, write=true/append=true; default) | hadoop (two-step, follows the 307)\n"
    "  --concurrency N   workers, one connection each (default 16)\n"
    "  --files N         files to write (default: unbounded with --ops/--duration, else = concurrency)\n"
    "  --appends K       appends per file (ingest 4, small 256, large 16)\n"
    "  --size S          bytes per append, K/M/G suffixes (ingest 4M, small 4K, large 4M)\n"
    "  --duration SEC    measured run time (after warm-up)\n"
    "  --ops N           measured operations (open files still get closed)\n"
    "  --warmup SEC      operations started in the first SEC seconds are not measured\n"
    "  --seed N          content seed (default 1)\n"
    "  --prefix PATH     where files go (default /dpbench)\n"
    "  --json FILE       write the results as JSON\n"
    "  --no-verify       skip reading back lengths and SHA-256 digests\n"
    "  --api A           webhdfs (default) | dfs: Gen2 DFS REST (--url http://HOST:PORT/ACCOUNT/FILESYSTEM,\n"
    "                    write workloads and verify only; create, append at position, flush+close)\n"
    "  --sas QUERY       dfs: SAS query string added to every request (or env DPBENCH_SAS)\n"
    "  --label TEXT      copied to the JSON report (names the system a comparison run measured)\n"
    "  --phases S1,S2..  also report latency and throughput per phase of the measured window, split at\n"
    "                    these seconds (by completion time; at most 7 increasing split points)\n";

static const char *wl_name(enum bn_workload w)
{
    static const char *const names[] = { "ingest", "small", "large", "read", "meta", "verify" };
    return (unsigned)w < 6 ? names[w] : "?";
}

/* Parses an unsigned integer with an optional K/M/G (binary) suffix when `suffix`. */
static int parse_u64(const char *s, bool suffix, uint64_t *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    uint64_t mul = 1;
    if (suffix && *end != '\0') {
        switch (*end) {
        case 'k': case 'K': mul = 1024ull; break;
        case 'm': case 'M': mul = 1024ull * 1024; break;
        case 'g': case 'G': mul = 1024ull * 1024 * 1024; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'B')
            end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    }
    if (*end != '\0' || (v != 0 && mul > UINT64_MAX / v))
        return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

static int parse_secs(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > 1e7)
        return -1;
    *out = v;
    return 0;
}

static int copy_trimmed(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    while (len > 1 && src[len - 1] == '/')
        len--;
    if (len == 0 || len >= n)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

static int check_prefix(const char *p)
{
    if (p[0] != '/')
        return -1;
    for (const char *c = p; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("/._-", *c) != NULL))
            return -1;
    return strstr(p, "//") != NULL || strcmp(p, "/") == 0 ? -1 : 0;
}

/* "30,60.5": increasing split points into c->phase_at. */
static int parse_phases(const char *s, struct bn_cfg *c)
{
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, strlen(s) + 1);
    c->nphase_at = 0;
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        double v = 0;
        if (c->nphase_at == BN_PHASE_MAX - 1 || parse_secs(p, &v) != 0 || v <= 0 ||
            (c->nphase_at > 0 && v <= c->phase_at[c->nphase_at - 1]))
            return -1;
        c->phase_at[c->nphase_at++] = v;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

/* A SAS is sent as is in the query: printable, no spaces, no '?' or '#'. */
static int check_query(const char *q)
{
    for (const char *c = q; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || *c == '?' || *c == '#')
            return -1;
    return 0;
}

static int bad(const char *what, const char *val)
{
    fprintf(stderr, "dualpipe-bench: bad %s: '%s'\n%s", what, val ? val : "", usage);
    return -1;
}

static int parse_args(int argc, char **argv, struct bn_cfg *c)
{
    enum { O_URL = 256, O_WL, O_FLOW, O_CONC, O_FILES, O_APP, O_SIZE, O_DUR, O_OPS, O_WARM, O_SEED, O_JSON,
           O_NOVER, O_PREFIX, O_HELP, O_VERSION, O_API, O_SAS, O_LABEL, O_PHASES };
    static const struct option opts[] = {
        { "url", required_argument, NULL, O_URL },       { "workload", required_argument, NULL, O_WL },
        { "flow", required_argument, NULL, O_FLOW },     { "concurrency", required_argument, NULL, O_CONC },
        { "files", required_argument, NULL, O_FILES },   { "appends", required_argument, NULL, O_APP },
        { "size", required_argument, NULL, O_SIZE },     { "duration", required_argument, NULL, O_DUR },
        { "ops", required_argument, NULL, O_OPS },       { "warmup", required_argument, NULL, O_WARM },
        { "seed", required_argument, NULL, O_SEED },     { "json", required_argument, NULL, O_JSON },
        { "no-verify", no_argument, NULL, O_NOVER },     { "prefix", required_argument, NULL, O_PREFIX },
        { "help", no_argument, NULL, O_HELP },           { "version", no_argument, NULL, O_VERSION },
        { "api", required_argument, NULL, O_API },       { "sas", required_argument, NULL, O_SAS },
        { "label", required_argument, NULL, O_LABEL },   { "phases", required_argument, NULL, O_PHASES },
        { NULL, 0, NULL, 0 },
    };
    bool have_url = false, have_k = false, have_s = false;
    uint64_t v = 0;
    memset(c, 0, sizeof(*c));
    c->workload = BN_WL_INGEST;
    c->flow = BN_FLOW_ADLS;
    c->concurrency = 16;
    c->seed = 1;
    c->verify = true;
    snprintf(c->prefix, sizeof(c->prefix), "/dpbench");
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_URL:
            if ((strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0) ||
                copy_trimmed(c->url, sizeof(c->url), optarg) != 0)
                return bad("--url", optarg);
            have_url = true;
            break;
        case O_WL: {
            unsigned i = 0;
            while (i < 6 && strcmp(optarg, wl_name((enum bn_workload)i)) != 0)
                i++;
            if (i == 6)
                return bad("--workload", optarg);
            c->workload = (enum bn_workload)i;
            break;
        }
        case O_FLOW:
            if (strcmp(optarg, "adls") == 0)
                c->flow = BN_FLOW_ADLS;
            else if (strcmp(optarg, "hadoop") == 0)
                c->flow = BN_FLOW_HADOOP;
            else
                return bad("--flow", optarg);
            break;
        case O_CONC:
            if (parse_u64(optarg, false, &v) != 0 || v == 0 || v > 4096)
                return bad("--concurrency (1..4096)", optarg);
            c->concurrency = (unsigned)v;
            break;
        case O_FILES:
            if (parse_u64(optarg, false, &c->files) != 0)
                return bad("--files", optarg);
            break;
        case O_APP:
            if (parse_u64(optarg, false, &c->appends) != 0 || c->appends > (1ull << 32))
                return bad("--appends", optarg);
            have_k = true;
            break;
        case O_SIZE:
            if (parse_u64(optarg, true, &c->size) != 0 || c->size > (1ull << 34))
                return bad("--size", optarg);
            have_s = true;
            break;
        case O_DUR:
            if (parse_secs(optarg, &c->duration) != 0)
                return bad("--duration", optarg);
            break;
        case O_OPS:
            if (parse_u64(optarg, false, &c->ops) != 0)
                return bad("--ops", optarg);
            break;
        case O_WARM:
            if (parse_secs(optarg, &c->warmup) != 0)
                return bad("--warmup", optarg);
            break;
        case O_SEED:
            if (parse_u64(optarg, false, &c->seed) != 0)
                return bad("--seed", optarg);
            break;
        case O_JSON:
            c->json_path = optarg;
            break;
        case O_NOVER:
            c->verify = false;
            break;
        case O_PREFIX:
            if (copy_trimmed(c->prefix, sizeof(c->prefix) - 64, optarg) != 0 || check_prefix(c->prefix) != 0)
                return bad("--prefix (absolute; letters, digits, / . _ -)", optarg);
            break;
        case O_API:
            if (strcmp(optarg, "webhdfs") == 0)
                c->api = BN_API_WEBHDFS;
            else if (strcmp(optarg, "dfs") == 0)
                c->api = BN_API_DFS;
            else
                return bad("--api", optarg);
            break;
        case O_SAS:
            if (check_query(optarg) != 0 || strlen(optarg) >= sizeof(c->sas))
                return bad("--sas (a query string without '?', at most 1023 bytes)", "...");
            memcpy(c->sas, optarg, strlen(optarg) + 1);
            break;
        case O_LABEL:
            if (strlen(optarg) >= sizeof(c->label))
                return bad("--label (at most 127 bytes)", optarg);
            memcpy(c->label, optarg, strlen(optarg) + 1);
            break;
        case O_PHASES:
            if (parse_phases(optarg, c) != 0)
                return bad("--phases (up to 7 increasing seconds, comma-separated)", optarg);
            break;
        case O_HELP:
            fputs(usage, stdout);
            exit(0);
        case O_VERSION:
            printf("dualpipe-bench %s\n", DP_VERSION);
            exit(0);
        default:
            fputs(usage, stderr);
            return -1;
        }
    }
    if (optind < argc)
        return bad("argument", argv[optind]);
    if (!have_url)
        return bad("--url (required)", "");
    if (c->api == BN_API_DFS) {
        const char *env = getenv("DPBENCH_SAS");
        if (c->sas[0] == '\0' && env != NULL) {
            if (check_query(env) != 0 || strlen(env) >= sizeof(c->sas))
                return bad("DPBENCH_SAS (a query string without '?')", "...");
            memcpy(c->sas, env, strlen(env) + 1);
        }
        if (c->flow != BN_FLOW_ADLS)
            return bad("--flow with --api dfs (Gen2 has one flow)", "hadoop");
        if (c->workload == BN_WL_READ || c->workload == BN_WL_META)
            return bad("--workload with --api dfs (ingest, small, large, verify)", wl_name(c->workload));
    }
    static const uint64_t dk[] = { 4, 256, 16, 4, 0, 4 };
    static const uint64_t ds[] = { 4u << 20, 4u << 10, 4u << 20, 4u << 20, 0, 4u << 20 };
    if (!have_k)
        c->appends = dk[c->workload];
    if (!have_s)
        c->size = ds[c->workload];
    bool budget = c->ops != 0 || c->duration > 0;
    bool fixed = c->workload == BN_WL_READ || c->workload == BN_WL_VERIFY || c->workload == BN_WL_META;
    if (c->files == 0 && (!budget || fixed))
        c->files = c->concurrency;
    c->progress = isatty(STDOUT_FILENO) == 1;
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 1;
    struct bn_cfg cfg;
    struct bn_wl wl;
    struct bn_stats *st = NULL;
    struct bn_stats *setup = NULL;
    struct bn_vres vres = { 0 };
    struct bn_job job;
    bool wl_ready = false;
    if (parse_args(argc, argv, &cfg) != 0)
        return 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    st = calloc(1, sizeof(*st));
    setup = calloc(1, sizeof(*setup));
    if (st == NULL || setup == NULL || bn_wl_init(&wl, &cfg) != 0)
        goto out;
    wl_ready = true;
    bn_drv_stats_init(st);
    bn_drv_stats_init(setup);

    switch (cfg.workload) {
    case BN_WL_INGEST:
    case BN_WL_SMALL:
    case BN_WL_LARGE:
        bn_wl_job_write(&wl, &job);
        if (bn_drv_run(&cfg, &job, st, true, "write") != 0)
            goto fail;
        break;
    case BN_WL_READ: {
        struct bn_cfg wcfg = cfg;
        wcfg.ops = 0;
        wcfg.duration = 0;
        wcfg.warmup = 0;
        wcfg.progress = false;
        wl.cfg = &wcfg;
        bn_wl_job_write(&wl, &job);
        int r = bn_drv_run(&wcfg, &job, setup, false, "setup");
        wl.cfg = &cfg;
        if (r != 0 || bn_wl_job_read(&wl, &job) != 0 || bn_drv_run(&cfg, &job, st, true, "read") != 0)
            goto fail;
        if (setup->errors > 0)
            fprintf(stderr, "dualpipe-bench: %llu errors while writing the files to read\n",
                    (unsigned long long)setup->errors);
        break;
    }
    case BN_WL_META:
        bn_wl_job_meta(&wl, &job);
        if (bn_drv_run(&cfg, &job, st, true, "meta") != 0)
            goto fail;
        break;
    case BN_WL_VERIFY:
        if (bn_wl_assume_files(&wl, cfg.files, cfg.appends * cfg.size) != 0)
            goto fail;
        break;
    }
    if (wl.oom)
        goto fail;
    if ((cfg.verify || cfg.workload == BN_WL_VERIFY) && cfg.workload != BN_WL_META &&
        bn_verify_run(&cfg, &wl, &vres) != 0)
        goto fail;

    uint64_t written = 0;
    for (uint64_t f = 0; f < wl.files.n; f++)
        written += wl.files.state[f] == BN_F_CLOSED;
    struct bn_rep rep = { .cfg = &cfg, .st = st, .verify = &vres, .files_written = written,
                          .read_bad = wl.read_bad };
    rep.ok = st->errors == 0 && setup->errors == 0 && wl.read_bad == 0 && vres.mismatches == 0;
    bn_rep_print(&rep);
    if (cfg.json_path != NULL && bn_rep_json(&rep, cfg.json_path) != 0)
        goto out;
    rc = rep.ok ? 0 : 1;
    goto out;
fail:
    fprintf(stderr, "dualpipe-bench: internal failure (libcurl setup or out of memory)\n");
out:
    if (wl_ready)
        bn_wl_free(&wl);
    if (st != NULL)
        bn_drv_stats_free(st);
    if (setup != NULL)
        bn_drv_stats_free(setup);
    free(st);
    free(setup);
    curl_global_cleanup();
    return rc;
}
