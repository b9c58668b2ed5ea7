/*
 * jcli: `dualpipe journal` (usage and exit codes in jcli.h). The command line is parsed into a
 * jcli_args; the configuration gives admin.listen and journal.dir. Whether the daemon runs is decided
 * by the journal directory's LOCK: a non-blocking exclusive flock that fails with EWOULDBLOCK means
 * the daemon holds it, and the command becomes an HTTP request to the admin API (libcurl's easy
 * interface: one request, no proxy, bounded answer); otherwise the lock is released at once and the
 * journal is opened here (thread-pool I/O, spool, jnl_open with its recovery), the operation done
 * through the journal's own functions, every record it writes waited for until durable, and all
 * closed again. Either way the result is JSON in the admin API's shapes, which --json prints as it is
 * and the default output turns into aligned lines (status) or a table (list). A journal may hold records
 * for both sides at once (a phase switch, a restart in another phase): the status counts what each side
 * is owed, the list says each record's side ("to"), retry and drop work on either. Text that came from a
 * client (paths, details) is printed with control characters replaced, so a path cannot drive the
 * terminal.
 */
#include "jcli.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "acli.h"
#include "applier.h"
#include "cfg.h"
#include "dbuf.h"
#include "iox.h"
#include "journal.h"
#include "phase.h"
#include "pipeline.h"
#include "spool.h"
#include "urlcodec.h"
#include "vrec.h"
#include "whreq.h"

#define JCLI_LIST_DEFAULT 100u
#define JCLI_LIST_MAX 10000u
#define JCLI_ANSWER_MAX (256u << 20)  /* a list of 10000 records with long paths fits */
#define JCLI_HTTP_TIMEOUT_S 60L

enum { JCLI_OK = 0, JCLI_FAILED = 1, JCLI_USAGE = 2 };

typedef enum jcli_cmd { JC_STATUS, JC_LIST, JC_RETRY, JC_DROP, JC_RESYNC } jcli_cmd;

typedef struct jcli_args {
    jcli_cmd cmd;
    const char *config;
    const char *admin;     /* --admin HOST:PORT or NULL */
    bool parked, json, all, yes;
    bool node;             /* resync --node: the node alone (a directory without its entries) */
    uint64_t after, limit;
    uint64_t seq;          /* retry/drop ID */
    char *path;            /* resync PATH, normalised (whreq_norm_path; freed by jcli_main) */
} jcli_args;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dualpipe journal status [--json]                                  --config FILE [--admin HOST:PORT]\n"
            "       dualpipe journal list [--parked] [--after N] [--limit N] [--json] --config FILE [--admin HOST:PORT]\n"
            "       dualpipe journal retry ID | retry --all                           --config FILE [--admin HOST:PORT]\n"
            "       dualpipe journal drop ID --yes                                    --config FILE [--admin HOST:PORT]\n"
            "       dualpipe journal resync PATH [--node]                             --config FILE [--admin HOST:PORT]\n"
            "resync --node copies PATH's own metadata (owner, group, permission, ACL; a directory without its\n"
            "entries, a file with its bytes) instead of the whole tree under it.\n"
            "While the daemon runs (it holds the journal's LOCK) the command goes to its admin port (admin.listen,\n"
            "or --admin when that says port 0); otherwise it opens the journal directory itself.\n"
            "Exit status: 0 done, 1 the operation failed, 2 usage error.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    fputs("dualpipe journal: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    usage(stderr);
    return JCLI_USAGE;
}

/* A decimal u64 without sign, spaces or junk. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || s[0] < '0' || s[0] > '9') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_args(int argc, char **argv, jcli_args *a)
{
    memset(a, 0, sizeof *a);
    a->limit = JCLI_LIST_DEFAULT;
    if (argc < 2) return usage_error("a command is required (status, list, retry, drop, resync)");
    static const struct { const char *name; jcli_cmd cmd; } cmds[] = {
        {"status", JC_STATUS}, {"list", JC_LIST}, {"retry", JC_RETRY}, {"drop", JC_DROP}, {"resync", JC_RESYNC},
    };
    size_t ci = 0;
    while (ci < sizeof cmds / sizeof cmds[0] && strcmp(argv[1], cmds[ci].name) != 0) ci++;
    if (ci == sizeof cmds / sizeof cmds[0]) return usage_error("unknown command %s", argv[1]);
    a->cmd = cmds[ci].cmd;
    const char *positional = NULL;
    bool has_limit = false, has_after = false;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        bool takes = strcmp(o, "--config") == 0 || strcmp(o, "--admin") == 0 || strcmp(o, "--after") == 0 ||
                     strcmp(o, "--limit") == 0;
        if (takes && i + 1 >= argc) return usage_error("%s needs a value", o);
        if (strcmp(o, "--config") == 0) a->config = argv[++i];
        else if (strcmp(o, "--admin") == 0) a->admin = argv[++i];
        else if (strcmp(o, "--after") == 0) {
            if (parse_u64(argv[++i], &a->after) != 0) return usage_error("--after: not a number: %s", argv[i]);
            has_after = true;
        } else if (strcmp(o, "--limit") == 0) {
            if (parse_u64(argv[++i], &a->limit) != 0 || a->limit < 1 || a->limit > JCLI_LIST_MAX)
                return usage_error("--limit: must be from 1 to 10000, not %s", argv[i]);
            has_limit = true;
        } else if (strcmp(o, "--parked") == 0) a->parked = true;
        else if (strcmp(o, "--json") == 0) a->json = true;
        else if (strcmp(o, "--all") == 0) a->all = true;
        else if (strcmp(o, "--yes") == 0) a->yes = true;
        else if (strcmp(o, "--node") == 0) a->node = true;
        else if (o[0] == '-' && o[1] == '-') return usage_error("unknown option %s", o);
        else if (positional) return usage_error("unexpected argument %s", o);
        else positional = o;
    }
    if (!a->config) return usage_error("--config FILE is required");
    if (a->cmd != JC_LIST && (a->parked || has_after || has_limit))
        return usage_error("--parked, --after and --limit go with list");
    if (a->cmd != JC_STATUS && a->cmd != JC_LIST && a->json) return usage_error("--json goes with status and list");
    if (a->cmd != JC_RETRY && a->all) return usage_error("--all goes with retry");
    if (a->cmd != JC_DROP && a->yes) return usage_error("--yes goes with drop");
    if (a->cmd != JC_RESYNC && a->node) return usage_error("--node goes with resync");
    switch (a->cmd) {
    case JC_STATUS:
    case JC_LIST:
        if (positional) return usage_error("unexpected argument %s", positional);
        break;
    case JC_RETRY:
        if (a->all && positional) return usage_error("retry takes an ID or --all, not both");
        if (!a->all && !positional) return usage_error("retry needs the record's ID (see list --parked) or --all");
        if (positional && (parse_u64(positional, &a->seq) != 0 || a->seq == 0))
            return usage_error("not a record ID: %s", positional);
        break;
    case JC_DROP:
        if (!positional) return usage_error("drop needs the record's ID (see list --parked)");
        if (parse_u64(positional, &a->seq) != 0 || a->seq == 0) return usage_error("not a record ID: %s", positional);
        if (!a->yes) {
            fprintf(stderr,
                    "dualpipe journal: refusing to drop record %" PRIu64 " without --yes: dropping gives up on copying "
                    "that write to Gen2 for good (the path stays different until something else resyncs it). "
                    "Consider `retry %" PRIu64 "` or `resync PATH` first.\n",
                    a->seq, a->seq);
            return JCLI_USAGE;
        }
        break;
    case JC_RESYNC: {
        if (!positional) return usage_error("resync needs an absolute PATH");
        whreq_err we;
        if (positional[0] != '/') {
            fprintf(stderr, "dualpipe journal: resync needs an absolute path (starting with /)\n");
            return JCLI_FAILED;
        }
        if (whreq_norm_path(positional, &a->path, &we) != 0) {
            fprintf(stderr, "dualpipe journal: resync needs a normalised path: %s\n", we.message);
            return JCLI_FAILED;
        }
        break;
    }
    }
    return JCLI_OK;
}

/* ---------------------------------------------------------------- printing */

/* Print s with control characters (and DEL) shown as '?'. */
static void put_safe(FILE *out, const char *s)
{
    for (; *s; s++) fputc(((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s, out);
}

static void fmt_bytes(uint64_t n, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%" PRIu64 " B", n);
    else snprintf(buf, cap, "%.1f %s", v, units[u]);
}

static void fmt_age(double s, char *buf, size_t cap)
{
    if (s < 0) s = 0;
    uint64_t t = (uint64_t)s;
    if (t < 60) snprintf(buf, cap, "%" PRIu64 "s", t);
    else if (t < 3600) snprintf(buf, cap, "%" PRIu64 "m%02" PRIu64 "s", t / 60, t % 60);
    else if (t < 86400) snprintf(buf, cap, "%" PRIu64 "h%02" PRIu64 "m", t / 3600, (t % 3600) / 60);
    else snprintf(buf, cap, "%" PRIu64 "d%02" PRIu64 "h", t / 86400, (t % 86400) / 3600);
}

static bool jnum(const json_t *o, const char *key, double *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) return false;
    *out = json_number_value(v);
    return true;
}

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void line(const char *label, const char *value)
{
    printf("%-22s ", label);
    put_safe(stdout, value);
    printf("\n");
}

static void line_num(const json_t *o, const char *label, const char *key)
{
    double v;
    if (!jnum(o, key, &v)) return;
    char b[64];
    snprintf(b, sizeof b, "%.0f", v);
    line(label, b);
}

/* The status object (pipe_status_json's shape; offline, the same shape built here) as aligned lines. */
static void print_status(const json_t *root, const char *where, bool online)
{
    const json_t *j = json_object_get(root, "journal");
    if (!json_is_object(j)) j = root;
    const json_t *sp = json_object_get(root, "spool");
    const json_t *ap = json_object_get(root, "applier");
    char b[128], b2[64];
    double v, v2;
    line("journal", where);
    const char *be = jstr(root, "io_backend");
    if (!be) be = jstr(j, "backend");
    const char *why = jstr(root, "io_fallback_reason");
    if (be && why && why[0]) {
        snprintf(b, sizeof b, "%s (io_uring refused: %s)", be, why);
        line("io backend", b);
    } else if (be) {
        line("io backend", be);
    }
    if (jnum(j, "failed", &v) || json_is_boolean(json_object_get(j, "failed")))
        line("journal commits", json_is_true(json_object_get(j, "failed")) ? "FAILING (appends refused)" : "ok");
    const char *ph = jstr(root, "phase");
    if (ph) line("phase", ph);
    const json_t *ow = json_object_get(root, "owed");
    if (json_is_object(ow)) { /* live records each side is still to get (pipe_owed) */
        line_num(ow, "owed to gen1", "gen1");
        line_num(ow, "owed to gen2", "gen2");
    }
    line_num(j, "pending records", "pending");
    line_num(j, "parked records", "parked");
    line_num(j, "awaiting primary", "awaiting_primary");
    if (jnum(j, "bytes_pending", &v)) {
        fmt_bytes((uint64_t)v, b, sizeof b);
        line("bytes pending", b);
    }
    if (jnum(j, "oldest_pending_s", &v) || jnum(j, "oldest_pending_seconds", &v) || jnum(j, "oldest_age_s", &v)) {
        if (v > 0) fmt_age(v, b, sizeof b);
        else snprintf(b, sizeof b, "-");
        line("oldest pending", b);
    }
    if (json_is_object(sp) && jnum(sp, "used_bytes", &v)) {
        fmt_bytes((uint64_t)v, b, sizeof b);
        if (jnum(sp, "max_bytes", &v2) && v2 > 0) {
            fmt_bytes((uint64_t)v2, b2, sizeof b2);
            size_t n = strlen(b);
            snprintf(b + n, sizeof b - n, " of %s", b2);
        }
        line("spool used", b);
    }
    if (json_is_object(ap)) {
        const char *br = jstr(ap, "breaker");
        if (br) line("gen2 breaker", br);
        br = jstr(ap, "breaker_gen1");
        if (br) line("gen1 breaker", br);
        line_num(ap, "applier in flight", "pending");
    }
    if (online) { /* counted since the daemon started; an offline open has just started */
        /* The outcomes are the applier's, the same counts as GET /admin/status; the journal's total is
         * every record finished on Gen2, whatever the outcome (their sum). */
        line_num(j, "done on gen2 (total)", "applied");
        if (json_is_object(ap)) {
            line_num(ap, "  applied", "applied");
            line_num(ap, "  skipped", "skipped");
            line_num(ap, "  divergences", "divergence_count");
            line_num(ap, "  resynced", "resynced");
        }
        const json_t *mr = json_object_get(root, "mirror");
        if (json_is_object(mr)) { /* Gen1 configured: records for Gen1 go Gen2 -> Gen1 through the mirror */
            if (ph && strcmp(ph, "gen2-primary") == 0) line("writes", "gen2-primary (mirror to gen1)");
            line_num(mr, "mirror pending", "pending");
            line_num(mr, "  applied to gen1", "applied");
            line_num(mr, "  resynced", "resynced");
            line_num(mr, "  parked", "parked");
            line_num(mr, "  divergences", "divergence_count");
            const json_t *brk = json_object_get(mr, "breaker");
            const char *g1b = json_is_object(brk) ? jstr(brk, "gen1") : NULL;
            if (g1b) line("mirror gen1 breaker", g1b);
        }
        line_num(j, "resyncs (since start)", "resyncs");
        line_num(j, "fdatasyncs", "fdatasyncs");
    }
    const json_t *rec = json_object_get(root, "recovery");
    const char *prob = json_is_object(rec) ? jstr(rec, "problem") : NULL;
    if (prob && prob[0]) line("last recovery", prob);
}

static void print_list(const json_t *root)
{
    const json_t *recs = json_object_get(root, "records");
    size_t n = json_array_size(recs);
    if (n == 0) {
        printf("no records\n");
        return;
    }
    printf("%-10s %-4s %-16s %-18s %-7s %s\n", "SEQ", "TO", "STATE", "OP", "AGE", "PATH / DETAIL");
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_array_get(recs, i);
        double seq = 0, age = 0;
        jnum(r, "seq", &seq);
        char ab[32] = "-";
        if (jnum(r, "age_s", &age)) fmt_age(age, ab, sizeof ab);
        const char *st = jstr(r, "state"), *op = jstr(r, "op"), *path = jstr(r, "path"), *det = jstr(r, "detail");
        const char *to = jstr(r, "to");
        printf("%-10.0f %-4s %-16s %-18s %-7s ", seq, to ? to : "?", st ? st : "?", op ? op : "?", ab);
        put_safe(stdout, path ? path : "?");
        if (det && det[0]) {
            printf("  (");
            put_safe(stdout, det);
            printf(")");
        }
        printf("\n");
        last = (uint64_t)seq;
    }
    if (json_is_true(json_object_get(root, "more")))
        printf("... more records: add --after %" PRIu64 "\n", last);
}

/* Print JSON text as the command's result: raw with --json, else readable. 0 or -1 (not JSON). */
static int print_result(const jcli_args *a, const char *text, const char *where, bool online)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) {
        fprintf(stderr, "dualpipe journal: the answer is not JSON: %s\n", je.text);
        return -1;
    }
    switch (a->cmd) {
    case JC_STATUS:
        if (a->json) {
            fputs(text, stdout);
            if (!text[0] || text[strlen(text) - 1] != '\n') fputs("\n", stdout);
        } else {
            print_status(root, where, online);
        }
        break;
    case JC_LIST:
        if (a->json) {
            fputs(text, stdout);
            if (!text[0] || text[strlen(text) - 1] != '\n') fputs("\n", stdout);
        } else {
            print_list(root);
        }
        break;
    case JC_RETRY: {
        double n = 0;
        jnum(root, "retried", &n);
        if (a->all) printf("%.0f parked record(s) queued for a resync from the primary\n", n);
        else printf("record %" PRIu64 " queued for a resync from the primary\n", a->seq);
        break;
    }
    case JC_DROP: printf("record %" PRIu64 " dropped\n", a->seq); break;
    case JC_RESYNC: {
        double seq = 0;
        jnum(root, "seq", &seq);
        printf("resync of ");
        put_safe(stdout, a->path);
        printf(" journaled as record %.0f\n", seq);
        break;
    }
    }
    json_decref(root);
    return 0;
}

/* ---------------------------------------------------------------- online: the admin API */

/* "http://HOST:PORT" of the daemon's admin listener (--admin, else admin.listen). 0 or -1 (printed). */
static int admin_base(const jcli_args *a, const dp_config *c, char *base, size_t cap)
{
    return acli_base("dualpipe journal", a->admin, c, base, cap);
}

/* One request to the admin API; the answer's body in out. The HTTP status, or -1 (printed). */
static long admin_call(const char *base, const char *method, const char *target, dbuf *out)
{
    return acli_call("dualpipe journal", base, method, target, JCLI_HTTP_TIMEOUT_S, JCLI_ANSWER_MAX, out);
}

static int run_online(const jcli_args *a, const dp_config *c, const char *where)
{
    char base[400];
    if (admin_base(a, c, base, sizeof base) != 0) return JCLI_FAILED;
    dbuf t, out;
    dbuf_init(&t, 16384);
    dbuf_init(&out, JCLI_ANSWER_MAX);
    int rc = 0, status = JCLI_FAILED;
    const char *method = "POST";
    switch (a->cmd) {
    case JC_STATUS:
        method = "GET";
        rc = dbuf_adds(&t, "/admin/journal");
        break;
    case JC_LIST:
        method = "GET";
        rc = dbuf_printf(&t, "/admin/journal/records?parked=%d&after=%" PRIu64 "&limit=%" PRIu64, a->parked ? 1 : 0,
                         a->after, a->limit);
        break;
    case JC_RETRY:
        rc = a->all ? dbuf_adds(&t, "/admin/journal/retry?all=1")
                    : dbuf_printf(&t, "/admin/journal/retry?seq=%" PRIu64, a->seq);
        break;
    case JC_DROP: rc = dbuf_printf(&t, "/admin/journal/drop?seq=%" PRIu64 "&confirm=yes", a->seq); break;
    case JC_RESYNC:
        rc = dbuf_adds(&t, "/admin/journal/resync?path=");
        if (rc == 0) rc = url_encode(a->path, true, &t);
        if (rc == 0 && a->node) rc = dbuf_adds(&t, "&node=1");
        break;
    }
    if (rc != 0) {
        fprintf(stderr, "dualpipe journal: request too long\n");
        goto out;
    }
    long http = admin_call(base, method, t.data, &out);
    if (http < 0) goto out;
    const char *body = out.data ? out.data : "";
    if (http != 200) {
        json_t *e = json_loads(body, 0, NULL);
        const char *msg = e ? jstr(e, "error") : NULL;
        fprintf(stderr, "dualpipe journal: %s (HTTP %ld from %s)\n", msg ? msg : "the daemon refused", http, base);
        json_decref(e);
        goto out;
    }
    if (print_result(a, body, where, true) == 0) status = JCLI_OK;
out:
    dbuf_free(&t);
    dbuf_free(&out);
    return status;
}

/* ---------------------------------------------------------------- offline: the journal itself */

typedef struct offline {
    iox *io;
    spool *sp;
    journal *j;
    jnl_recovery rep;
} offline;

/* Records written here are waited for until durable. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned left;
    int err;
    uint64_t seq;     /* of the last record appended */
} waiter;

static void waiter_init(waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void waiter_add(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    w->left++;
    pthread_mutex_unlock(&w->mu);
}

static void waiter_done(void *ud, uint64_t seq, int err)
{
    (void)seq;
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    if (err && !w->err) w->err = err;
    w->left--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Wait for every record added; 0 or the first -errno a commit reported. */
static int waiter_wait(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->left > 0) pthread_cond_wait(&w->cv, &w->mu);
    int err = w->err;
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return err;
}

static void report_recovery(const jnl_recovery *r, const char *dir)
{
    if (r->torn)
        fprintf(stderr, "dualpipe journal: recovery: %" PRIu64 " segment(s) had a torn tail; %" PRIu64
                        " byte(s) zeroed\n", r->torn, r->torn_bytes);
    if (r->corrupt)
        fprintf(stderr, "dualpipe journal: recovery: %" PRIu64 " corrupt stretch(es) skipped: records there are LOST\n",
                r->corrupt);
    if (r->bodies_lost)
        fprintf(stderr, "dualpipe journal: recovery: %" PRIu64 " body(ies) missing or damaged: those paths will be "
                        "resynced from Gen1\n", r->bodies_lost);
    if (r->orphan_states)
        fprintf(stderr, "dualpipe journal: recovery: %" PRIu64 " state record(s) for writes no longer in the journal\n",
                r->orphan_states);
    if (r->problem[0]) {
        fprintf(stderr, "dualpipe journal: recovery of %s: ", dir);
        put_safe(stderr, r->problem);
        fputs("\n", stderr);
    }
}

static int off_open(const dp_config *c, offline *o)
{
    char err[512] = "", data[1100];
    memset(o, 0, sizeof *o);
    if (iox_new(IOX_THREADS, 0, 2, &o->io, err, sizeof err) != 0) goto fail;
    int n = snprintf(data, sizeof data, "%s/data", c->spool_dir);
    if (n < 0 || (size_t)n >= sizeof data) {
        snprintf(err, sizeof err, "spool.dir is too long");
        goto fail;
    }
    spool_opts so = {.dir = data, .segment_bytes = c->spool_segment_bytes, .max_bytes = c->spool_max_bytes,
                     .io = o->io};
    if (spool_open(&so, &o->sp, err, sizeof err) != 0) goto fail;
    jnl_opts jo = {.dir = c->journal_dir, .segment_bytes = c->journal_segment_bytes,
                   .commit_lazy_ms = c->journal_lazy_ms, .io = o->io, .sp = o->sp,
                   .verify_bodies = c->journal_verify_bodies};
    if (jnl_open(&jo, &o->j, &o->rep, err, sizeof err) != 0) goto fail;
    report_recovery(&o->rep, c->journal_dir);
    return 0;
fail:
    fprintf(stderr, "dualpipe journal: cannot open the journal offline: ");
    put_safe(stderr, err);
    fputs("\n", stderr);
    if (o->sp) spool_close(o->sp);
    iox_free(o->io);
    memset(o, 0, sizeof *o);
    return -1;
}

static void off_close(offline *o)
{
    jnl_close(o->j);
    if (o->sp) spool_close(o->sp);
    iox_free(o->io);
}

/* The state of live entry seq (jnl_with_entry). */
static void get_state(void *ud, const jnl_entry *e) { *(uint16_t *)ud = e->state; }

/* 0 when seq is a parked live entry; else prints why and returns -1. */
static void get_to_gen1(void *ud, const jnl_entry *e) { *(bool *)ud = pipe_params_to_gen1(e->params, e->nparams); }

/* The phase the stopped daemon will start in: the one it recorded (journal.dir/phase.json), else the
 * config's phase.initial. */
static cfg_phase recorded_phase(const dp_config *c)
{
    char file[1100], err[300];
    snprintf(file, sizeof file, "%s/phase.json", c->journal_dir);
    cfg_phase ph = c->phase;
    if (phase_recorded(file, &ph, err, sizeof err) < 0) {
        fprintf(stderr, "dualpipe journal: %s; taking phase.initial (%s)\n", err, cfg_phase_name(c->phase));
        ph = c->phase;
    }
    return ph;
}

/* An offline drop of a record owed to Gen2 is noted in the verify record, as the daemon does (vrec.h):
 * a gen2-only cutover must not rest on a verify older than it. 0 or -EIO (printed). */
static int note_drop(const dp_config *c, uint64_t seq, bool to_gen1)
{
    char err[300] = "";
    vrec *v = NULL;
    int rc = vrec_open(c, c->journal_dir, &v, err, sizeof err) == 0 && vrec_note_divergence(v, seq, to_gen1) == 0
                 ? 0 : -EIO;
    if (rc != 0)
        fprintf(stderr, "dualpipe journal: record %" PRIu64 " was dropped, but the verify record could not note it%s%s: "
                        "run dualpipe verify again before entering gen2-only\n",
                seq, err[0] && !v ? ": " : "", !v ? err : "");
    vrec_free(v);
    return rc;
}

static int off_check_parked(offline *o, uint64_t seq)
{
    uint16_t st = 0;
    if (jnl_with_entry(o->j, seq, get_state, &st) != 0) {
        fprintf(stderr, "dualpipe journal: no live record %" PRIu64 " in the journal\n", seq);
        return -1;
    }
    if (st != JFMT_S_PARKED) {
        fprintf(stderr, "dualpipe journal: record %" PRIu64 " is not parked (it is %s)\n", seq, jfmt_state_name(st));
        return -1;
    }
    return 0;
}

typedef struct seqlist {
    uint64_t *v;
    size_t n, cap;
    bool oom;
} seqlist;

static void seqlist_push(seqlist *l, uint64_t seq)
{
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        uint64_t *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) {
            l->oom = true;
            return;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = seq;
}

static void collect_parked(void *ud, const jnl_entry *e)
{
    if (e->state == JFMT_S_PARKED) seqlist_push(ud, e->seq);
}

/* Offline, what each side is owed: every live record counted by its side (the daemon keeps counters). */
static void count_owed(void *ud, const jnl_entry *e)
{
    uint64_t *owed = ud;
    owed[pipe_params_to_gen1(e->params, e->nparams) ? 1 : 0]++;
}

/* The status in pipe_status_json's shape: {"journal":..,"spool":..,"io_backend":..,"recovery":..}. */
static int off_status_json(offline *o, dbuf *out)
{
    dbuf jb;
    dbuf_init(&jb, 1u << 20);
    int rc = jnl_status_json(o->j, &jb);
    json_t *js = rc == 0 ? json_loads(jb.data ? jb.data : "", 0, NULL) : NULL;
    dbuf_free(&jb);
    if (!js) return rc ? rc : -EINVAL;
    spool_stats ss;
    spool_get_stats(o->sp, &ss);
    const jnl_recovery *r = &o->rep;
    json_t *root = json_pack("{s:o, s:{s:I, s:I, s:I, s:I}, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:s}}",
                             "journal", js, "spool", "used_bytes", (json_int_t)ss.used_bytes, "max_bytes",
                             (json_int_t)ss.max_bytes, "live_bodies", (json_int_t)ss.live_bodies, "segments",
                             (json_int_t)ss.segments, "io_backend", iox_backend_name(iox_in_use(o->io)), "recovery",
                             "segments", (json_int_t)r->segments, "records", (json_int_t)r->records, "live",
                             (json_int_t)r->live, "torn", (json_int_t)r->torn, "corrupt", (json_int_t)r->corrupt,
                             "bodies_lost", (json_int_t)r->bodies_lost, "seconds", r->seconds, "problem", r->problem);
    if (!root) return -ENOMEM;
    uint64_t owed[2] = {0, 0};
    jnl_foreach(o->j, count_owed, owed);
    if (json_object_set_new(root, "owed", json_pack("{s:I, s:I}", "gen1", (json_int_t)owed[1], "gen2",
                                                    (json_int_t)owed[0])) != 0) {
        json_decref(root);
        return -ENOMEM;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text) return -ENOMEM;
    rc = dbuf_adds(out, text);
    free(text);
    return rc;
}

static int run_offline(const jcli_args *a, const dp_config *c, const char *where)
{
    offline o;
    if (off_open(c, &o) != 0) return JCLI_FAILED;
    int status = JCLI_FAILED, rc = 0;
    dbuf out;
    dbuf_init(&out, JCLI_ANSWER_MAX);
    waiter w;
    waiter_init(&w);
    switch (a->cmd) {
    case JC_STATUS: rc = off_status_json(&o, &out); break;
    case JC_LIST: rc = pipe_jnl_list_json(o.j, a->parked, a->after, (unsigned)a->limit, &out); break;
    case JC_RETRY: {
        seqlist l = {NULL, 0, 0, false};
        if (a->all) {
            jnl_foreach(o.j, collect_parked, &l);
            if (l.oom) rc = -ENOMEM;
        } else if (off_check_parked(&o, a->seq) == 0) {
            seqlist_push(&l, a->seq);
            if (l.oom) rc = -ENOMEM;
        } else {
            rc = -ENOENT; /* already printed */
        }
        for (size_t i = 0; rc == 0 && i < l.n; i++) {
            waiter_add(&w);
            rc = jnl_state(o.j, l.v[i], JFMT_S_RESYNC, 0, "operator retry (offline)", waiter_done, &w);
            if (rc != 0) waiter_done(&w, l.v[i], 0);
        }
        if (rc == 0) rc = dbuf_printf(&out, "{\"retried\":%zu}", l.n);
        free(l.v);
        break;
    }
    case JC_DROP: {
        if (off_check_parked(&o, a->seq) != 0) {
            rc = -ENOENT;
            break;
        }
        bool to_gen1 = false;
        (void)jnl_with_entry(o.j, a->seq, get_to_gen1, &to_gen1);
        waiter_add(&w);
        rc = jnl_state(o.j, a->seq, JFMT_S_DROPPED, 0, "dropped by an operator (offline)", waiter_done, &w);
        if (rc != 0) waiter_done(&w, a->seq, 0);
        if (rc == 0) rc = note_drop(c, a->seq, to_gen1);
        if (rc == 0) rc = dbuf_printf(&out, "{\"dropped\":%" PRIu64 "}", a->seq);
        break;
    }
    case JC_RESYNC: {
        /* as pipe_resync_node: in gen2-primary the record is for Gen1 (a copy Gen2 -> Gen1) and says so */
        whreq_param prm[2];
        int np = 0;
        if (a->node) prm[np++] = (whreq_param){.name = APPLY_RESYNC_NODE_ONLY, .value = "1"};
        if (recorded_phase(c) == CFG_PHASE_GEN2_PRIMARY)
            prm[np++] = (whreq_param){.name = (char *)PIPE_PARAM_TO, .value = (char *)PIPE_TO_GEN1};
        jnl_write_in in = {.jop = JFMT_OP_RESYNC, .path = a->path, .params = np ? prm : NULL, .nparams = np,
                           .body = NULL};
        uint64_t seq = 0;
        waiter_add(&w);
        rc = jnl_append(o.j, &in, waiter_done, &w, &seq);
        if (rc != 0) waiter_done(&w, 0, 0);
        /* As the daemon does: the record waits for no primary answer, so it is in state RESYNC at once
         * (an ACCEPTED record would make the resync gate wait for a primary that never answers). */
        if (rc == 0) {
            waiter_add(&w);
            rc = jnl_state(o.j, seq, JFMT_S_RESYNC, 0, "resync requested by an operator (offline)", waiter_done, &w);
            if (rc != 0) waiter_done(&w, seq, 0);
        }
        if (rc == 0) rc = dbuf_printf(&out, "{\"seq\":%" PRIu64 "}", seq);
        break;
    }
    }
    int werr = waiter_wait(&w);
    if (rc == 0 && werr != 0) {
        fprintf(stderr, "dualpipe journal: the journal could not make the change durable: %s\n", strerror(-werr));
        rc = werr;
    } else if (rc != 0 && rc != -ENOENT) {
        fprintf(stderr, "dualpipe journal: %s\n", strerror(-rc));
    }
    off_close(&o);
    if (rc == 0 && print_result(a, out.data ? out.data : "{}", where, false) == 0) status = JCLI_OK;
    dbuf_free(&out);
    return status;
}

/* ---------------------------------------------------------------- who holds the journal */

/* 1: the daemon holds the LOCK (pid in *pid when it wrote one), 0: nobody, -1: no journal (printed). */
static int journal_locked(const char *dir, long *pid)
{
    struct stat st;
    int serr = stat(dir, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
    if (serr) {
        fprintf(stderr, "dualpipe journal: no journal directory at %s (%s); has the daemon run with this config?\n",
                dir, strerror(serr));
        return -1;
    }
    char lock[1100];
    int n = snprintf(lock, sizeof lock, "%s/LOCK", dir);
    if (n < 0 || (size_t)n >= sizeof lock) return 0;
    int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return 0; /* never locked */
    int held = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        held = errno == EWOULDBLOCK;
        char buf[32];
        ssize_t r = held ? pread(fd, buf, sizeof buf - 1, 0) : 0;
        *pid = 0;
        if (r > 0) {
            buf[r] = '\0';
            char *end = NULL;
            long v = strtol(buf, &end, 10);
            if (end != buf && v > 0 && (*end == '\0' || *end == '\n')) *pid = v;
        }
    } else {
        flock(fd, LOCK_UN); /* free: released at once, jnl_open takes it for real */
    }
    close(fd);
    return held;
}

int jcli_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) /* `dualpipe journal [CMD] --help`: the usage of every command */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return JCLI_OK;
        }
    jcli_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != JCLI_OK) {
        free(a.path);
        return rc;
    }
    dp_config c;
    cfg_err e;
    if (cfg_load_file(a.config, &c, &e) != 0) {
        fprintf(stderr, "dualpipe journal: %s: %s%s%s\n", a.config, e.path, e.path[0] ? ": " : "", e.message);
        free(a.path);
        return JCLI_FAILED;
    }
    long pid = 0;
    int held = journal_locked(c.journal_dir, &pid);
    if (held < 0) {
        cfg_free(&c);
        free(a.path);
        return JCLI_FAILED;
    }
    char where[1200];
    if (held) {
        if (pid > 0) snprintf(where, sizeof where, "%s (daemon running, pid %ld)", c.journal_dir, pid);
        else snprintf(where, sizeof where, "%s (daemon running)", c.journal_dir);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
            fprintf(stderr, "dualpipe journal: cannot initialise libcurl\n");
            rc = JCLI_FAILED;
        } else {
            rc = run_online(&a, &c, where);
            curl_global_cleanup();
        }
    } else {
        snprintf(where, sizeof where, "%s (offline: no daemon holds it)", c.journal_dir);
        rc = run_offline(&a, &c, where);
    }
    cfg_free(&c);
    free(a.path);
    return rc;
}

/* ---------------------------------------------------------------- records for other commands */

/* Feed the records of one list answer to fn; the last seq in *last, "more" in *more. 0 or -1. */
static int feed_records(const dbuf *b, void (*fn)(void *ud, const json_t *rec), void *ud, uint64_t *last, bool *more)
{
    json_error_t je;
    json_t *root = json_loadb(b->data ? b->data : "", b->len, 0, &je);
    json_t *recs = root ? json_object_get(root, "records") : NULL;
    if (!json_is_array(recs)) {
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        json_t *s = json_object_get(r, "seq");
        if (json_is_integer(s)) *last = (uint64_t)json_integer_value(s);
        fn(ud, r);
    }
    *more = json_is_true(json_object_get(root, "more")) && json_array_size(recs) > 0;
    json_decref(root);
    return 0;
}

int jcli_records(const dp_config *c, const char *admin, void (*fn)(void *ud, const json_t *rec), void *ud,
                 bool *online, char *err, size_t errlen)
{
    long pid = 0;
    int held = journal_locked(c->journal_dir, &pid);
    if (held < 0) {
        snprintf(err, errlen, "no journal directory at %s", c->journal_dir);
        return -1;
    }
    *online = held == 1;
    uint64_t after = 0;
    bool more = true;
    int rc = 0;
    dbuf out;
    dbuf_init(&out, JCLI_ANSWER_MAX);
    if (held) {
        jcli_args a = {.admin = admin};
        char base[400];
        if (admin_base(&a, c, base, sizeof base) != 0) {
            snprintf(err, errlen, "the daemon's admin address is unknown");
            dbuf_free(&out);
            return -1;
        }
        while (rc == 0 && more) {
            char t[128];
            snprintf(t, sizeof t, "/admin/journal/records?after=%" PRIu64 "&limit=%u", after, JCLI_LIST_MAX);
            dbuf_reset(&out);
            long st = admin_call(base, "GET", t, &out);
            if (st != 200 || feed_records(&out, fn, ud, &after, &more) != 0) {
                snprintf(err, errlen, "the daemon's admin API at %s did not list the journal (status %ld)", base, st);
                rc = -1;
            }
        }
    } else {
        offline o;
        if (off_open(c, &o) != 0) {
            snprintf(err, errlen, "cannot open the journal at %s offline", c->journal_dir);
            dbuf_free(&out);
            return -1;
        }
        while (rc == 0 && more) {
            dbuf_reset(&out);
            if (jnl_list_json(o.j, false, after, JCLI_LIST_MAX, &out) != 0 || feed_records(&out, fn, ud, &after, &more) != 0) {
                snprintf(err, errlen, "cannot list the journal at %s", c->journal_dir);
                rc = -1;
            }
        }
        off_close(&o);
    }
    dbuf_free(&out);
    return rc;
}
