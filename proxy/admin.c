/*
 * admin: the admin listener and the Gen1 readiness probe (endpoints in admin.h).
 *
 * The daemon is a plain libmicrohttpd one with a single internal epoll thread: admin traffic is a
 * scrape every few seconds and an operator's command now and then. Requests are answered at MHD's
 * second call (after the headers), so keep-alive works; a request body is never read (MHD closes
 * such a connection). The raw request target comes from the URI log callback, so query values are
 * decoded once, by urlcodec, with control characters refused (MHD's own unescaping would let "%00"
 * cut a value short). The journal endpoints call the pipeline's operator functions, which only queue
 * journal records: nothing here waits for a disk. The probe thread wakes every ADMIN_PROBE_S seconds
 * (or at stop) and sends one GETFILESTATUS of "/" unless the previous one is still out; its
 * completion runs on the httpc thread and only stores atomics.
 */
#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ajson.h"
#include "bfadmin.h"
#include "log.h"
#include "urlcodec.h"
#include "vrec.h"

#define ADMIN_PROBE_S 10
#define ADMIN_METRICS_MAX (8u << 20)
#define ADMIN_TARGET_MAX 8192u        /* request target kept for query parsing; longer gets 414 */
#define ADMIN_LIST_DEFAULT 100u
#define ADMIN_LIST_MAX 10000u
#define ADMIN_JSON_CTYPE "application/json; charset=utf-8"

struct admin {
    const dp_config *cfg;
    metrics *m;
    pipeline *p;
    applier *ap;
    gen1c *g1;
    front *f;
    _Atomic(phctl *) phc;             /* /admin/phase (admin_set_phctl) */
    bfadmin *bf;                  /* backfill leases (bfadmin.h) */
    _Atomic(vrec *) vr;           /* the verify record (admin_set_vrec), or NULL */
    struct MHD_Daemon *d;
    int port;
    /* probe */
    pthread_t probe_th;
    bool probe_running;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
    atomic_bool probe_out;        /* a probe is in flight */
    atomic_int gen1_state;        /* 0 not probed yet, 1 reachable, 2 unreachable */
    metrics_gauge *reachable;
    metrics_counter *probes_failed;
};

/* One admin request: its raw target (from the URI log callback) and whether the headers are in. */
typedef struct areq {
    char *target;                 /* NULL when longer than ADMIN_TARGET_MAX (answered 414) */
    bool headers_done;
} areq;

static int64_t pending_fn(void *ud)
{
    return (int64_t)applier_pending(ud);
}

/* ---- probe ---- */

static void probe_done(void *ud, httpc_resp *resp)
{
    admin *a = ud;
    int now = resp->result == HTTPC_OK ? 1 : 2;
    int old = atomic_exchange(&a->gen1_state, now);
    if (now == 1 && old != 1) LOGI("msg=\"Gen1 reachable\" status=%ld", resp->status);
    if (now == 2 && old != 2)
        LOGW("msg=\"Gen1 unreachable\" result=%s detail=\"%s\"", httpc_result_str(resp->result), resp->error);
    if (now == 2) metrics_inc(a->probes_failed);
    metrics_gauge_set(a->reachable, now == 1);
    httpc_resp_free(resp);
    free(resp);
    atomic_store(&a->probe_out, false);
}

void admin_set_phctl(admin *a, phctl *c) { atomic_store(&a->phc, c); }

/* The phase requests run in now (a switch changes it at run time). */
static cfg_phase cur_phase(const admin *a) { return a->f ? front_phase(a->f) : a->cfg->phase; }

static void probe_once(admin *a)
{
    /* The applier's check of the mapped Gen2 filesystems: at start, then while a problem lasts. */
    applier_gen2_check(a->ap);
    if (cur_phase(a) == CFG_PHASE_GEN2_ONLY) return; /* Gen1 is gone: nothing to ask it */
    if (atomic_exchange(&a->probe_out, true)) return; /* the previous probe is still out */
    if (gen1c_get(a->g1, "/", "op=GETFILESTATUS", NULL, HTTPC_BODY_DISCARD, 0, -1, probe_done, a) != 0)
        atomic_store(&a->probe_out, false);
}

static void *probe_main(void *arg)
{
    admin *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        pthread_mutex_unlock(&a->mu);
        probe_once(a);
        pthread_mutex_lock(&a->mu);
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += ADMIN_PROBE_S;
        int rc = 0;
        while (!a->stopping && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&a->cond, &a->mu, &deadline);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---- HTTP ---- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype, char *body, size_t len)
{
    /* body is malloc'd and handed to MHD */
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    char *b = strdup(text);
    if (!b) return MHD_NO;
    return reply(conn, status, "text/plain; charset=utf-8", b, strlen(b));
}

static enum MHD_Result reply_dbuf(struct MHD_Connection *conn, unsigned status, const char *ctype, dbuf *b)
{
    size_t len = b->len;
    char *data = dbuf_take(b);
    if (!data) return MHD_NO;
    return reply(conn, status, ctype, data, len);
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, dbuf *b)
{
    return reply_dbuf(conn, status, ADMIN_JSON_CTYPE, b);
}

/* {"error": msg} with status (ajson: jansson escapes msg, which may quote a path the operator sent). */
static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
{
    dbuf b;
    dbuf_init(&b, 8192);
    va_list ap;
    va_start(ap, fmt);
    status = ajson_verror(&b, status, fmt, ap);
    va_end(ap);
    enum MHD_Result r = reply_json(conn, status, &b);
    dbuf_free(&b);
    return r;
}

static enum MHD_Result reply_405(struct MHD_Connection *conn, const char *allow)
{
    char *b = strdup("{\"error\":\"method not allowed\"}\n");
    if (!b) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(b), b, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(b);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ADMIN_JSON_CTYPE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(conn, 405, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result serve_readyz(admin *a, struct MHD_Connection *conn)
{
    if (!front_accepting(a->f)) return reply_text(conn, 503, "not ready: the front is stopping\n");
    jnl_stats st;
    jnl_get_stats(pipe_journal(a->p), &st);
    if (st.failed)
        return reply_text(conn, 503, "not ready: the journal cannot commit (its last write or fdatasync failed), "
                                     "so writes are refused until a commit succeeds; check the disk of journal.dir "
                                     "and spool.dir\n");
    /* gen2-only: Gen1 plays no part; gen2-primary: writers are served by Gen2 and the mirror waits Gen1
     * out (it is still probed, for dualpipe_gen1_reachable). Ready unless the mapped Gen2 filesystems have
     * a problem. */
    int g1 = cur_phase(a) != CFG_PHASE_GEN1_PRIMARY ? 1 : atomic_load(&a->gen1_state);
    if (g1 == 1) {
        /* Gen2 account-level problems: writers are still served (Gen1 is primary, records queue), but
         * nothing reaches Gen2 until someone fixes the account. */
        dbuf b;
        dbuf_init(&b, 64 * 1024);
        int n = dbuf_adds(&b, "not ready: ") == 0 ? applier_gen2_problems(a->ap, &b) : -1;
        if (n != 0) {
            enum MHD_Result ret = reply_text(conn, 503, n > 0 ? b.data : "not ready: out of memory\n");
            dbuf_free(&b);
            return ret;
        }
        dbuf_free(&b);
    }
    switch (g1) {
    case 1: return reply_text(conn, 200, "ready\n");
    case 2: return reply_text(conn, 503, "not ready: Gen1 is unreachable\n");
    default: return reply_text(conn, 503, "not ready: Gen1 not probed yet\n");
    }
}

/* ---- query parameters ---- */

/* A decimal u64 without sign, spaces or junk. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!s[0] || s[0] < '0' || s[0] > '9') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Read an optional u64 parameter: 0 (absent: *out untouched), 1 (set), -1 (already answered 400). */
typedef struct qctx {
    struct MHD_Connection *conn;
    const char *query;
    enum MHD_Result ret;
} qctx;

static int q_u64(qctx *q, const char *name, uint64_t *out)
{
    dbuf v;
    dbuf_init(&v, 64);
    int rc = url_query_get(q->query, name, &v);
    if (rc == 1 && parse_u64(v.data, out) != 0) rc = -2;
    dbuf_free(&v);
    if (rc == -1) q->ret = reply_error(q->conn, 400, "%s: malformed percent-encoding or control character", name);
    if (rc == -2) q->ret = reply_error(q->conn, 400, "%s: must be a non-negative integer", name);
    return rc < 0 ? -1 : rc;
}

/* A flag: absent, "1"/"true"/"yes" or "0"/"false"/"no". */
static int q_flag(qctx *q, const char *name, bool *out)
{
    dbuf v;
    dbuf_init(&v, 64);
    int rc = url_query_get(q->query, name, &v);
    if (rc == 1) {
        if (strcmp(v.data, "1") == 0 || strcmp(v.data, "true") == 0 || strcmp(v.data, "yes") == 0) *out = true;
        else if (strcmp(v.data, "0") == 0 || strcmp(v.data, "false") == 0 || strcmp(v.data, "no") == 0) *out = false;
        else rc = -2;
    }
    dbuf_free(&v);
    if (rc == -1) q->ret = reply_error(q->conn, 400, "%s: malformed percent-encoding or control character", name);
    if (rc == -2) q->ret = reply_error(q->conn, 400, "%s: must be 1 or 0", name);
    return rc < 0 ? -1 : rc;
}

/* ---- journal endpoints ---- */

/* An operator function's negative errno as an HTTP answer. */
static enum MHD_Result reply_errno(struct MHD_Connection *conn, int err, uint64_t seq, const char *what)
{
    switch (err) {
    case -ENOENT: return reply_error(conn, 404, "no live record %" PRIu64 " in the journal", seq);
    case -EBUSY: return reply_error(conn, 409, "record %" PRIu64 " is not parked", seq);
    case -EINVAL: return reply_error(conn, 400, "%s: the journal cannot hold this request", what);
    case -ESHUTDOWN: return reply_error(conn, 503, "%s: the proxy is stopping", what);
    default: return reply_error(conn, 503, "%s failed: %s", what, strerror(-err));
    }
}

static enum MHD_Result serve_journal_status(admin *a, struct MHD_Connection *conn)
{
    dbuf b;
    dbuf_init(&b, ADMIN_METRICS_MAX);
    int rc = pipe_status_json(a->p, &b);
    enum MHD_Result ret = rc == 0 ? reply_json(conn, 200, &b)
                                  : reply_error(conn, 500, "cannot render the journal status: %s", strerror(-rc));
    dbuf_free(&b);
    return ret;
}

static enum MHD_Result serve_journal_records(admin *a, qctx *q)
{
    bool parked = false;
    uint64_t after = 0, limit = ADMIN_LIST_DEFAULT;
    if (q_flag(q, "parked", &parked) < 0 || q_u64(q, "after", &after) < 0 || q_u64(q, "limit", &limit) < 0)
        return q->ret;
    if (limit < 1 || limit > ADMIN_LIST_MAX)
        return reply_error(q->conn, 400, "limit: must be from 1 to %u", ADMIN_LIST_MAX);
    dbuf b;
    dbuf_init(&b, ADMIN_METRICS_MAX);
    int rc = pipe_list_json(a->p, parked, after, (unsigned)limit, &b);
    enum MHD_Result ret = rc == 0 ? reply_json(q->conn, 200, &b)
                                  : reply_error(q->conn, 500, "cannot list the journal: %s", strerror(-rc));
    dbuf_free(&b);
    return ret;
}

static enum MHD_Result serve_journal_retry(admin *a, qctx *q)
{
    uint64_t seq = 0;
    bool all = false;
    int has_seq = q_u64(q, "seq", &seq);
    if (has_seq < 0) return q->ret;
    if (q_flag(q, "all", &all) < 0) return q->ret;
    if ((has_seq == 1) == all)
        return reply_error(q->conn, 400, "give either seq=N (one parked record) or all=1 (every parked record)");
    if (has_seq == 1 && seq == 0) return reply_error(q->conn, 400, "seq: must be a record's sequence number (1 or more)");
    unsigned n = 0;
    int rc = pipe_retry(a->p, all ? 0 : seq, &n);
    if (rc != 0) return reply_errno(q->conn, rc, seq, "retry");
    LOGI("msg=\"operator retry\" seq=%" PRIu64 " all=%d retried=%u", seq, all, n);
    dbuf b;
    dbuf_init(&b, 128);
    enum MHD_Result ret = dbuf_printf(&b, "{\"retried\":%u}\n", n) == 0 ? reply_json(q->conn, 200, &b) : MHD_NO;
    dbuf_free(&b);
    return ret;
}

static enum MHD_Result serve_journal_drop(admin *a, qctx *q)
{
    uint64_t seq = 0;
    dbuf v;
    dbuf_init(&v, 64);
    int has_seq = q_u64(q, "seq", &seq);
    if (has_seq < 0) return q->ret;
    if (has_seq == 0 || seq == 0) return reply_error(q->conn, 400, "seq: required, the parked record's sequence number");
    int crc = url_query_get(q->query, "confirm", &v);
    bool confirmed = crc == 1 && strcmp(v.data, "yes") == 0;
    dbuf_free(&v);
    if (!confirmed)
        return reply_error(q->conn, 400,
                           "dropping record %" PRIu64 " gives up on copying that write to the other store (it is "
                           "recorded as DROPPED and never retried); add confirm=yes to do it",
                           seq);
    bool to_gen1 = false;
    int rc = pipe_drop(a->p, seq, &to_gen1);
    if (rc != 0) return reply_errno(q->conn, rc, seq, "drop");
    LOGW("msg=\"operator dropped a parked record\" seq=%" PRIu64 " to=%s", seq, to_gen1 ? "gen1" : "gen2");
    vrec *vr = atomic_load(&a->vr);
    if (vr) (void)vrec_note_divergence(vr, seq, to_gen1); /* (a failure to persist is logged) */
    dbuf b;
    dbuf_init(&b, 128);
    enum MHD_Result ret =
        dbuf_printf(&b, "{\"dropped\":%" PRIu64 "}\n", seq) == 0 ? reply_json(q->conn, 200, &b) : MHD_NO;
    dbuf_free(&b);
    return ret;
}

static enum MHD_Result serve_journal_resync(admin *a, qctx *q)
{
    dbuf v;
    dbuf_init(&v, WHREQ_MAX_PATH + 1);
    int rc = url_query_get(q->query, "path", &v);
    if (rc < 0) {
        dbuf_free(&v);
        return reply_error(q->conn, 400, "path: malformed percent-encoding, a control character or too long");
    }
    if (rc == 0 || v.data[0] != '/') {
        dbuf_free(&v);
        return reply_error(q->conn, 400, "path: required, an absolute path such as /data/file");
    }
    char *norm = NULL;
    whreq_err we;
    rc = whreq_norm_path(v.data, &norm, &we);
    dbuf_free(&v);
    if (rc != 0) return reply_error(q->conn, 400, "path: %s", we.message);
    dbuf nv;
    dbuf_init(&nv, 8);
    bool node = url_query_get(q->query, "node", &nv) == 1 && strcmp(nv.data, "1") == 0;
    dbuf_free(&nv);
    uint64_t seq = 0;
    rc = pipe_resync_node(a->p, norm, node, &seq);
    enum MHD_Result ret;
    if (rc != 0) {
        ret = reply_errno(q->conn, rc, 0, "resync");
    } else {
        LOGI("msg=\"operator resync\" seq=%" PRIu64 " path=\"%s\" node_only=%d", seq, norm, node ? 1 : 0);
        dbuf b;
        dbuf_init(&b, 128);
        ret = dbuf_printf(&b, "{\"seq\":%" PRIu64 "}\n", seq) == 0 ? reply_json(q->conn, 200, &b) : MHD_NO;
        dbuf_free(&b);
    }
    free(norm);
    return ret;
}

static enum MHD_Result serve_journal(admin *a, struct MHD_Connection *conn, const char *url, const char *method,
                                     const char *query)
{
    static const struct {
        const char *url;
        bool post;
        enum MHD_Result (*fn)(admin *a, qctx *q);
    } routes[] = {
        {"/admin/journal/records", false, serve_journal_records}, {"/admin/journal/retry", true, serve_journal_retry},
        {"/admin/journal/drop", true, serve_journal_drop},         {"/admin/journal/resync", true, serve_journal_resync},
    };
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/admin/journal") == 0) return get ? serve_journal_status(a, conn) : reply_405(conn, "GET, HEAD");
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].url) != 0) continue;
        if (routes[i].post ? !post : !get) return reply_405(conn, routes[i].post ? "POST" : "GET, HEAD");
        qctx q = {conn, query, MHD_NO};
        return routes[i].fn(a, &q);
    }
    return reply_error(conn, 404, "no such journal endpoint");
}

/* /admin/status: the applier's object, with the per-path fence's numbers added as "order". */
static int status_json(admin *a, dbuf *b)
{
    if (applier_status_json(a->ap, b) != 0 || b->len == 0 || b->data[b->len - 1] != '}') return -1;
    if (!a->p) return 0;
    b->data[--b->len] = '\0';
    if (dbuf_adds(b, ",\"order\":") != 0 || pipe_order_json(a->p, b) != 0) return -1;
    /* gen2-primary: the mirror's counts (Gen2 -> Gen1) beside the (idle) applier's */
    size_t mark = b->len;
    if (dbuf_adds(b, ",\"mirror\":") != 0) return -1;
    int mrc = pipe_mirror_status_json(a->p, b);
    if (mrc < 0) return -1;
    if (mrc == 1) {
        b->len = mark;
        b->data[mark] = '\0';
    }
    if (dbuf_adds(b, "}") != 0) return -1;
    return 0;
}

/* /admin/verify...: the verify record (vrec.h), 404 when the daemon has none. */
static enum MHD_Result serve_verify(admin *a, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *query)
{
    vrec *vr = atomic_load(&a->vr);
    if (!vr) return reply_error(conn, 404, "this daemon keeps no verify record");
    bool post = strcmp(method, "POST") == 0;
    if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return reply_405(conn, "GET, POST");
    jnl_stats js;
    jnl_get_stats(pipe_journal(a->p), &js);
    dbuf b;
    dbuf_init(&b, 1u << 20);
    const char *allow = NULL;
    unsigned st = vrec_http(vr, js.max_seq, url, post, query, &b, &allow);
    enum MHD_Result ret = st == 405 ? reply_405(conn, allow) : reply_json(conn, st, &b);
    dbuf_free(&b);
    return ret;
}

static enum MHD_Result serve(admin *a, struct MHD_Connection *conn, const char *url, const char *method,
                             const char *query)
{
    if (strcmp(url, "/admin/journal") == 0 || strncmp(url, "/admin/journal/", 15) == 0)
        return serve_journal(a, conn, url, method, query);
    if (strcmp(url, "/admin/verify") == 0 || strncmp(url, "/admin/verify/", 14) == 0) return serve_verify(a, conn, url, method, query);
    if (strcmp(url, "/admin/phase") == 0 || strncmp(url, "/admin/phase/", 13) == 0) {
        bool post = strcmp(method, "POST") == 0;
        if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return reply_405(conn, "GET, POST");
        phctl *pc = atomic_load(&a->phc);
        if (!pc) return reply_error(conn, 503, "the phase control is not running yet");
        dbuf b;
        dbuf_init(&b, ADMIN_METRICS_MAX);
        const char *allow = NULL;
        unsigned st = phctl_handle(pc, url, post, query, &b, &allow);
        enum MHD_Result ret = st == 405 ? reply_405(conn, allow) : reply_json(conn, st, &b);
        dbuf_free(&b);
        return ret;
    }
    if (strncmp(url, "/admin/backfill/", 16) == 0) {
        bool post = strcmp(method, "POST") == 0;
        if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return reply_405(conn, "GET, POST");
        dbuf b;
        dbuf_init(&b, ADMIN_METRICS_MAX);
        const char *allow = NULL;
        unsigned st = bfadmin_handle(a->bf, a->p, url, post, query, &b, &allow);
        enum MHD_Result ret = st == 405 ? reply_405(conn, allow) : reply_json(conn, st, &b);
        dbuf_free(&b);
        return ret;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return reply_text(conn, 405, "method not allowed\n");
    if (strcmp(url, "/healthz") == 0) return reply_text(conn, 200, "ok\n");
    if (strcmp(url, "/readyz") == 0) return serve_readyz(a, conn);
    if (strcmp(url, "/metrics") == 0) {
        dbuf b;
        dbuf_init(&b, ADMIN_METRICS_MAX);
        enum MHD_Result ret = metrics_render(a->m, &b) == 0 ? reply_dbuf(conn, 200, METRICS_CONTENT_TYPE, &b)
                                                            : reply_text(conn, 500, "cannot render metrics\n");
        dbuf_free(&b);
        return ret;
    }
    if (strcmp(url, "/admin/status") == 0) {
        dbuf b;
        dbuf_init(&b, ADMIN_METRICS_MAX);
        enum MHD_Result ret = status_json(a, &b) == 0 ? reply_json(conn, 200, &b)
                                                      : reply_text(conn, 500, "cannot render the applier status\n");
        dbuf_free(&b);
        return ret;
    }
    return reply_text(conn, 404, "not found\n");
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    areq *r = *con_cls;
    if (!r) return MHD_NO; /* out of memory in uri_log_cb */
    if (!r->headers_done) {
        r->headers_done = true; /* headers in: answer at the next call so keep-alive survives */
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0; /* a body on an admin request: dropped */
        return MHD_YES;
    }
    if (!r->target) return reply_text(conn, 414, "request target too long\n");
    const char *q = strchr(r->target, '?');
    return serve(cls, conn, url, method, q ? q + 1 : "");
}

/* Keep the raw target (MHD hands access_cb an unescaped path and decodes arguments itself). */
static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    areq *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (uri && strlen(uri) <= ADMIN_TARGET_MAX) {
        r->target = strdup(uri);
        if (!r->target) {
            free(r);
            return NULL;
        }
    }
    return r;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    areq *r = *con_cls;
    if (r) {
        free(r->target);
        free(r);
    }
    *con_cls = NULL;
}

/* libmicrohttpd's messages: fm is its printf format. */
static void mhd_logger(void *cls, const char *fm, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_logger(void *cls, const char *fm, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fm, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    LOGD("msg=libmicrohttpd listener=admin detail=\"%s\"", line);
}

/* ---- life cycle ---- */

int admin_start(const dp_config *cfg, metrics *m, pipeline *p, gen1c *g1, front *f, fence_reg *fences, admin **out,
                char *err, size_t errlen)
{
    admin *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->cfg = cfg;
    a->m = m;
    a->p = p;
    a->ap = pipe_applier(p);
    a->g1 = g1;
    a->f = f;
    if (!(a->bf = bfadmin_new(fences))) {
        snprintf(err, errlen, "out of memory");
        free(a);
        return -1;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    a->reachable = metrics_gauge_get(m, "dualpipe_gen1_reachable", "1 when Gen1 answered the last readiness probe.",
                                     NULL);
    a->probes_failed = metrics_counter_get(m, "dualpipe_gen1_probe_failures_total",
                                           "Readiness probes of Gen1 that got no HTTP answer.", NULL);
    metrics_gauge_fn(m, "dualpipe_applier_pending", "Writes handed to the Gen2 applier and not finished.", NULL,
                     pending_fn, a->ap);

    char lerr[300];
    int lfd = front_listen_socket(cfg->admin_listen.host, cfg->admin_listen.port, &a->port, lerr, sizeof lerr);
    if (lfd < 0) {
        snprintf(err, errlen, "admin.listen: %s", lerr);
        goto fail;
    }
    a->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            access_cb, a, MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, a,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, a, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, a,
                            MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32u << 10), MHD_OPTION_END);
    if (!a->d) {
        close(lfd);
        snprintf(err, errlen, "admin.listen: libmicrohttpd failed to start on %s:%d", cfg->admin_listen.host, a->port);
        goto fail;
    }
    if (pthread_create(&a->probe_th, NULL, probe_main, a) != 0) {
        MHD_stop_daemon(a->d);
        snprintf(err, errlen, "cannot start the Gen1 probe thread");
        goto fail;
    }
    a->probe_running = true;
    LOGI("msg=\"admin listening\" host=%s port=%d", cfg->admin_listen.host, a->port);
    *out = a;
    return 0;
fail:
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    bfadmin_free(a->bf);
    free(a);
    return -1;
}

int admin_port(const admin *a) { return a->port; }

void admin_set_vrec(admin *a, vrec *v) { atomic_store(&a->vr, v); }

void admin_stop(admin *a)
{
    if (!a) return;
    if (a->d) {
        MHD_stop_daemon(a->d);
        a->d = NULL;
    }
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    if (a->probe_running) {
        pthread_join(a->probe_th, NULL);
        a->probe_running = false;
    }
}

void admin_free(admin *a)
{
    if (!a) return;
    admin_stop(a);
    if (atomic_load(&a->probe_out)) LOGW("msg=\"admin freed with a Gen1 probe in flight\"");
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    bfadmin_free(a->bf);
    free(a);
}
