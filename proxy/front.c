/*
 * front: libmicrohttpd glue, request intake and local answers of the WebHDFS front end (the life
 * cycle is described in front.h; the Gen1 exchange lives in front_up.c).
 *
 * MHD calls the access handler several times per request: once when the headers are in, once per
 * piece of body, then with no data once the request is complete (and again after a resume). The raw
 * request target comes from the URI log callback (MHD would otherwise unescape the path, losing
 * "%2F"). Answers are queued at the final call: an answer queued during the first call makes MHD
 * close the connection after it, which is only worth it when refusing a body the client has not
 * sent yet (Expect: 100-continue) or that is declared too large to read and drop. MHD forbids
 * queueing during a body call, so any other refused body (one found too large while streaming
 * included) is read and dropped up to limits.max_body_bytes + FRONT_DRAIN_MAX, then the connection
 * is cut. The first call also checks the header section and the body's framing (front_frame.h); a
 * request refused there is answered at once with Connection: close, for the same reason: nothing after
 * its headers may be read as a body or as a next request. Connections, their limits and the request
 * timeout are kept in front_conn.c.
 */
#include "front_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "front_frame.h"
#include "log.h"
#include "reload.h"
#include "urlcodec.h"

/* ---- state machine ---- */

typedef struct fr_state_info {
    const char *name;
    unsigned next; /* bit mask of states reachable from this one */
} fr_state_info;

#define FR_BIT(s) (1u << (s))

static const fr_state_info fr_states[FR__COUNT] = {
    [FR_RECEIVING] = {"RECEIVING", FR_BIT(FR_SPOOLED) | FR_BIT(FR_ANSWERING) | FR_BIT(FR_DONE)},
    [FR_SPOOLED] = {"SPOOLED", FR_BIT(FR_UPSTREAM) | FR_BIT(FR_ANSWERING) | FR_BIT(FR_DONE)},
    [FR_UPSTREAM] = {"UPSTREAM", FR_BIT(FR_ANSWERING) | FR_BIT(FR_DONE)},
    [FR_ANSWERING] = {"ANSWERING", FR_BIT(FR_DONE)},
    [FR_DONE] = {"DONE", 0},
};

void front__set_state(fr_req *r, fr_state s, int line)
{
    fr_state old = r->state;
    if (old == s) return;
    if (!(fr_states[old].next & FR_BIT(s)))
        LOGE("msg=\"invalid request state transition\" req=%" PRIu64 " from=%s to=%s line=%d", r->id,
             fr_states[old].name, fr_states[s].name, line);
    LOGD("msg=state req=%" PRIu64 " transition=\"%s -> %s\" line=%d", r->id, fr_states[old].name,
         fr_states[s].name, line);
    /* Entry and exit effects: the gauge of requests waiting on Gen1. */
    if (s == FR_UPSTREAM) metrics_gauge_add(r->f->waiting, 1);
    if (old == FR_UPSTREAM) metrics_gauge_add(r->f->waiting, -1);
    r->state = s;
}

/* ---- local answers ---- */

void front__set_answer(fr_req *r, int status, struct MHD_Response *resp)
{
    if (r->resp) {
        /* A second answer (e.g. 413 after a spool error) replaces nothing: the first one stands. */
        if (resp) MHD_destroy_response(resp);
        return;
    }
    if (!resp) {
        LOGE("msg=\"cannot build response\" req=%" PRIu64 " status=%d", r->id, status);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = 500;
        if (!resp) return;
    }
    if (atomic_load(&r->f->stopping)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->resp = resp;
    r->status = status;
    FR_SET(r, FR_ANSWERING);
}

void front__fail_err(fr_req *r, const whreq_err *e)
{
    dbuf b;
    dbuf_init(&b, 4096);
    struct MHD_Response *resp = NULL;
    if (whreq_err_json(e, &b) == 0) {
        size_t len = b.len;
        if (!r->resp) r->resp_bytes = len;
        char *txt = dbuf_take(&b);
        if (txt) resp = MHD_create_response_from_buffer(len, txt, MHD_RESPMEM_MUST_FREE);
        if (!resp) free(txt);
    }
    dbuf_free(&b);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
        if (e->status == 503 || e->status == 429) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", FRONT_RETRY_AFTER_S);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
        }
    }
    LOGD("msg=refused req=%" PRIu64 " rid=%s status=%d exception=%s message=\"%s\"", r->id, r->rid, e->status,
         e->exception, e->message);
    front__set_answer(r, e->status, resp);
}

void front__fail(fr_req *r, int status, const char *exception, const char *fmt, ...)
{
    whreq_err e = {.status = status, .exception = exception};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    front__fail_err(r, &e);
}

/* ---- spool ---- */

/* Reserve the body's spool region (pipe_body_begin) and answer locally when the spool refuses. */
static void body_begin(fr_req *r)
{
    uint64_t expect = r->content_length >= 0 ? (uint64_t)r->content_length : UINT64_MAX;
    pipe_admit a = pipe_body_begin(r->f->p, expect, r->max_body, &r->body);
    switch (a) {
    case PIPE_ADMIT_OK:
        break;
    case PIPE_ADMIT_DEGRADED:
        r->degraded = true;
        LOGD("msg=\"body over the spool cap: the write will be resynced from Gen1\" req=%" PRIu64, r->id);
        break;
    case PIPE_ADMIT_REJECT:
        r->body = NULL;
        LOGI("msg=\"write refused: the spool is at its cap\" req=%" PRIu64 " rid=%s op=%s", r->id, r->rid,
             r->wr.info->name);
        front__fail(r, 503, "IOException", "the proxy's spool is full; retry later");
        break;
    case PIPE_ADMIT_ERROR:
    default:
        r->body = NULL;
        front__fail(r, 503, "IOException", "the proxy cannot spool the request body now; retry later");
        break;
    }
}

/* Append n bytes of body to the spool region (common/spool's spool_write). 0 or -errno. */
static int body_write(fr_req *r, const char *data, size_t n)
{
    metrics_gauge_add(r->f->spool_bytes, (int64_t)n);
    r->spool_counted += n;
    return spool_write(r->body, data, n);
}

/* ---- redirects for the two-step dialect ---- */

/* A Host header we are willing to put in a Location: host[:port], printable, no spaces. */
static bool sane_host(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    if (n == 0 || n > 255) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
        if (!ok) return false;
    }
    return true;
}

/* True when the raw parameter name p decodes to one of the names the redirect decides. */
static bool is_flag_param(const url_param *p)
{
    static const char *const names[] = {"write", "append", "read", "noredirect"};
    dbuf b;
    dbuf_init(&b, 64);
    bool hit = false;
    if (url_decode(p->name, p->name_len, URL_FORM | URL_NO_CTL, &b) == 0 && b.data) {
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !hit; i++) hit = strcasecmp(b.data, names[i]) == 0;
    }
    dbuf_free(&b);
    return hit;
}

/* Location for the one-step request: base + raw path + the query without the flags + the flag. */
static int build_location(fr_req *r, const char *base, const char *flag, dbuf *loc)
{
    const char *q = strchr(r->target, '?');
    size_t pathlen = q ? (size_t)(q - r->target) : strlen(r->target);
    int rc = dbuf_adds(loc, base);
    if (rc == 0) rc = dbuf_add(loc, r->target, pathlen);
    if (rc == 0) rc = dbuf_adds(loc, "?");
    url_param ps[WHREQ_MAX_PARAMS * 2];
    int np = url_split_query(r->query, ps, (int)(sizeof ps / sizeof ps[0]));
    if (np < 0) return np;
    for (int i = 0; rc == 0 && i < np; i++) {
        if (is_flag_param(&ps[i])) continue;
        rc = dbuf_add(loc, ps[i].name, ps[i].name_len);
        if (rc == 0 && ps[i].value) rc = dbuf_adds(loc, "=");
        if (rc == 0 && ps[i].value) rc = dbuf_add(loc, ps[i].value, ps[i].value_len);
        if (rc == 0) rc = dbuf_adds(loc, "&");
    }
    if (rc == 0) rc = dbuf_printf(loc, "%s=true", flag);
    return rc;
}

/* Answer a two-step first request: 307 to ourselves with the flag, or 200 JSON with noredirect. */
static void answer_redirect(fr_req *r, const char *flag)
{
    whreq_err e;
    bool noredirect = false;
    if (whreq_get_bool(&r->wr, "noredirect", false, &noredirect, &e) != 0) {
        front__fail_err(r, &e);
        return;
    }
    char base[600];
    const char *pub = r->f->cfg->public_url;
    if (pub[0]) {
        size_t n = strlen(pub);
        while (n > 0 && pub[n - 1] == '/') n--;
        snprintf(base, sizeof base, "%.*s", (int)n, pub);
    } else {
        /* ff_check let through at most one Host. */
        const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
        if (!sane_host(host)) {
            front__fail(r, 400, "IllegalArgumentException", "missing or invalid Host header");
            return;
        }
        snprintf(base, sizeof base, "%s://%s", r->f->tls ? "https" : "http", host);
    }
    dbuf loc;
    dbuf_init(&loc, 2 * 65536 + 1024);
    if (build_location(r, base, flag, &loc) != 0 || !loc.data) {
        dbuf_free(&loc);
        front__fail(r, 400, "IllegalArgumentException", "request target too long to redirect");
        return;
    }
    struct MHD_Response *resp = NULL;
    int status;
    if (noredirect) {
        status = 200;
        json_t *o = json_pack("{s:s}", "Location", loc.data);
        char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (txt) resp = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
        if (!resp) free(txt);
        if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    } else {
        status = 307;
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc.data);
    }
    LOGD("msg=redirect req=%" PRIu64 " status=%d", r->id, status);
    dbuf_free(&loc);
    front__set_answer(r, status, resp);
}

/* The one-step flag an op needs to skip the redirect, or NULL for ops that never redirect. */
static const char *onestep_flag(whreq_op op)
{
    switch (op) {
    case WH_OP_CREATE: return "write";
    case WH_OP_APPEND: return "append";
    case WH_OP_OPEN: return "read";
    default: return NULL;
    }
}

/* ---- paths carried in parameters or in the body ---- */

/* One path named by a parameter (RENAME destination, a CONCAT source): refused like the URL path
 * when it holds "." or ".." segments or control characters. */
static int check_one_path(const char *p, size_t n, const char *what, whreq_err *e)
{
    char *copy = strndup(p, n);
    char *norm = NULL;
    if (!copy) return whreq_fail(e, 500, "RuntimeException", "Out of memory");
    int rc = whreq_norm_path(copy, &norm, e);
    free(copy);
    free(norm);
    if (rc != 0) {
        whreq_err inner = *e;
        whreq_fail(e, 400, "IllegalArgumentException", "Invalid %s: %s", what, inner.message);
    }
    return rc;
}

/* Comma-separated list of paths (CONCAT sources, the text form of MSCONCAT). */
static int check_path_list(const char *list, size_t n, const char *what, whreq_err *e)
{
    const char *end = list + n;
    while (list < end) {
        const char *comma = memchr(list, ',', (size_t)(end - list));
        size_t len = comma ? (size_t)(comma - list) : (size_t)(end - list);
        if (len > 0 && check_one_path(list, len, what, e) != 0) return -1;
        list += len + (comma ? 1 : 0);
    }
    return 0;
}

/* Paths in the query: RENAME's destination and CONCAT's sources (values already form-decoded). */
static int check_path_params(const whreq *w, whreq_err *e)
{
    if (w->op == WH_OP_RENAME) {
        const char *d = whreq_param_get(w, "destination");
        if (d && check_one_path(d, strlen(d), "destination", e) != 0) return -1;
    } else if (w->op == WH_OP_CONCAT) {
        const char *src = whreq_param_get(w, "sources");
        if (src && check_path_list(src, strlen(src), "sources", e) != 0) return -1;
    }
    return 0;
}

/* MSCONCAT's sources are in the spooled body: JSON {"sources":[...]} or the older text form
 * "sources=/a,/b". A body that is neither is left for Gen1 to judge. */
static int check_msconcat_body(fr_req *r, whreq_err *e)
{
    if (!r->body || r->body->len == 0) return 0;
    size_t len = (size_t)r->body->len;
    char *buf = malloc(len + 1);
    if (!buf) return whreq_fail(e, 503, "IOException", "the proxy is out of memory; retry later");
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(r->body->fd, buf + got, len - got, (off_t)(r->body->off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    int rc = 0;
    if (got != len) {
        rc = whreq_fail(e, 500, "IOException", "the proxy could not read the spooled request body");
        goto out;
    }
    buf[len] = '\0';
    json_t *doc = json_loadb(buf, len, 0, NULL);
    if (doc) {
        json_t *srcs = json_object_get(doc, "sources");
        size_t i;
        json_t *v;
        json_array_foreach(srcs, i, v) {
            if (!json_is_string(v)) continue;
            if ((rc = check_one_path(json_string_value(v), json_string_length(v), "sources", e)) != 0) break;
        }
        json_decref(doc);
    } else if (strncmp(buf, "sources=", 8) == 0) {
        dbuf d;
        dbuf_init(&d, len + 1);
        if (url_decode(buf + 8, len - 8, URL_FORM | URL_NO_CTL, &d) != 0)
            rc = whreq_fail(e, 400, "IllegalArgumentException", "Invalid sources: bad encoding or control character");
        else if (d.data)
            rc = check_path_list(d.data, d.len, "sources", e);
        dbuf_free(&d);
    }
out:
    free(buf);
    return rc;
}

/* ---- gen2.unmapped = reject ---- */

/* True when some gen2.mappings[].gen1_prefix covers path (the same rule as gen2c_map, which needs a
 * Gen2 client the front does not hold: "/" covers everything, else the prefix itself and below). */
static bool path_mapped(const dp_config *cfg, const char *path)
{
    for (int i = 0; i < cfg->nmappings; i++) {
        const char *pre = cfg->mappings[i].gen1_prefix;
        size_t n = strlen(pre);
        while (n > 0 && pre[n - 1] == '/') n--;
        if (n == 0 || (strncmp(path, pre, n) == 0 && (path[n] == '\0' || path[n] == '/'))) return true;
    }
    return false;
}

/* With gen2.unmapped = reject, a write that could not be mirrored is refused before Gen1 sees it. */
static int check_mapped(const dp_config *cfg, const whreq *w, whreq_err *e)
{
    if (cfg->unmapped != CFG_UNMAPPED_REJECT || !w->info->is_write) return 0;
    const char *dest = w->op == WH_OP_RENAME ? whreq_param_get(w, "destination") : NULL;
    char *ndest = NULL;
    int rc = 0;
    if (!path_mapped(cfg, w->path)) {
        rc = whreq_fail(e, 403, "AccessControlException",
                        "Permission denied: %s is outside the paths dualpipe mirrors (gen2.unmapped is reject)",
                        w->path);
    } else if (dest && whreq_norm_path(dest, &ndest, e) == 0 && !path_mapped(cfg, ndest)) {
        rc = whreq_fail(e, 403, "AccessControlException",
                        "Permission denied: %s is outside the paths dualpipe mirrors (gen2.unmapped is reject)",
                        ndest);
    }
    free(ndest);
    return rc;
}

/* ---- MHD callbacks ---- */

static char *dup_header(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? strdup(v) : NULL;
}

static bool has_body(const fr_req *r)
{
    return r->chunked || r->content_length > 0;
}

static int status_class(const fr_req *r)
{
    if (!r->queued || r->status < 100 || r->status > 599) return 0;
    return r->status / 100;
}

static void count_request(fr_req *r)
{
    static const char *const classes[FRONT_NCLASS] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    front *f = r->f;
    int op = r->parsed ? (int)r->wr.op : (int)WH_OP_UNKNOWN;
    int cls = status_class(r);
    metrics_counter *c = atomic_load_explicit(&f->req_ctr[op][cls], memory_order_acquire);
    if (!c) {
        const whreq_opinfo *oi = whreq_opinfo_get((whreq_op)op);
        char labels[96];
        snprintf(labels, sizeof labels, "op=\"%s\",code=\"%s\"", oi ? oi->name : "invalid", classes[cls]);
        c = metrics_counter_get(f->m, "dualpipe_requests_total",
                                "WebHDFS requests answered by the front, by op and status class (code=\"none\": "
                                "the client went away before an answer).",
                                labels);
        atomic_store_explicit(&f->req_ctr[op][cls], c, memory_order_release);
    }
    metrics_inc(c);
}

/* Queue the prepared answer; the request is counted now, when its answer is decided. */
static enum MHD_Result queue_answer(fr_req *r)
{
    if (!r->resp) front__fail(r, 500, "IOException", "the proxy produced no answer");
    if (!r->resp) return MHD_NO;
    if (!front__conn_received(r)) return MHD_NO; /* the reaper answered and shut the connection down */
    if (r->close_after) MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->queued = true;
    /* The request id goes back the way Gen2 echoes it; Gen1's own x-ms-request-id is relayed untouched. */
    if (r->rid[0]) MHD_add_response_header(r->resp, "x-ms-client-request-id", r->rid);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    count_request(r);
    metrics_add(r->f->bytes_out, r->resp_bytes);
    return ret;
}

/* Headers are in: parse, decide local answers, open the spool. Returns MHD_YES, or MHD_NO. */
static enum MHD_Result add_header_len(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                      const char *value, size_t value_size)
{
    (void)kind, (void)key, (void)value;
    *(size_t *)cls += key_size + value_size + 4; /* "Name: value\r\n" */
    return MHD_YES;
}

/* Bytes of the request line and headers as the client sent them (to within whitespace). */
static size_t header_bytes(fr_req *r, const char *method)
{
    size_t n = strlen(method) + strlen(r->target) + 11; /* " HTTP/1.1\r\n" */
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, add_header_len, &n);
    return n + 2;
}

typedef struct field_list {
    ff_field f[FF_MAX_FIELDS];
    size_t n; /* all fields, possibly more than f holds */
} field_list;

static enum MHD_Result add_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                 const char *value, size_t value_size)
{
    field_list *l = cls;
    if (l->n < FF_MAX_FIELDS) l->f[l->n] = (ff_field){key, key_size, value, value_size};
    l->n++;
    return MHD_YES;
}

/* RFC 9112 framing and header checks (front_frame.h) on what MHD parsed. 0, or -1 with e. */
static int check_framing(fr_req *r, const char *version, whreq_err *e)
{
    field_list *l = calloc(1, sizeof *l);
    if (!l) return whreq_fail(e, 503, "IOException", "the proxy is out of memory; retry later");
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, add_field, l);
    ff_frame fr;
    int rc;
    if (l->n > FF_MAX_FIELDS)
        rc = whreq_fail(e, 431, "IllegalArgumentException", "Too many header fields (at most %d)", FF_MAX_FIELDS);
    else if (!ff_in_place(l->f, l->n))
        rc = whreq_fail(e, 400, "IllegalArgumentException",
                        "Malformed header section (a folded line or a NUL byte in a header)");
    else
        rc = ff_check(version, l->f, l->n, &fr, e);
    if (rc == 0) {
        r->content_length = fr.content_length;
        r->chunked = fr.chunked;
        r->close_after = fr.must_close;
    }
    free(l);
    return rc;
}

static enum MHD_Result on_headers(fr_req *r, const char *method, const char *version)
{
    front *f = r->f;
    r->begun = true;
    r->method = method;
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    r->content_length = -1;
    whreq_err fe;
    if (check_framing(r, version, &fe) != 0) {
        /* Answered at once with Connection: close: nothing after these headers is read as a body or as
         * a next request, and nothing reaches an upstream. */
        rid_new(r->rid);
        r->close_after = true;
        metrics_inc(f->framing_refused);
        LOGD("msg=\"request refused: framing\" req=%" PRIu64 " status=%d message=\"%s\"", r->id, fe.status,
             fe.message);
        front__fail_err(r, &fe);
        return queue_answer(r);
    }
    r->authorization = dup_header(r->conn, MHD_HTTP_HEADER_AUTHORIZATION);
    r->content_type = dup_header(r->conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *crid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-ms-client-request-id");
    if (crid && rid_valid(crid)) snprintf(r->rid, sizeof r->rid, "%s", crid);
    else rid_new(r->rid);

    r->max_body = atomic_load_explicit(&f->max_body_bytes, memory_order_relaxed);

    whreq_err e;
    size_t hbytes = header_bytes(r, method);
    char tlsmsg[300];
    if (atomic_load(&f->stopping)) {
        front__fail(r, 503, "IOException", "the proxy is shutting down");
    } else if (front_tls_check_peer(f->tls, r->conn, tlsmsg, sizeof tlsmsg) != 0) {
        front__fail(r, 403, "AccessControlException", "%s", tlsmsg);
    } else if (hbytes > f->cfg->max_header_bytes) {
        front__fail(r, 431, "IllegalArgumentException",
                    "request line and headers of %zu bytes are over limits.max_header_bytes (%u)", hbytes,
                    f->cfg->max_header_bytes);
    } else if (whreq_parse(method, r->target, &r->wr, &e) != 0) {
        front__fail_err(r, &e);
    } else {
        r->parsed = true;
        const char *flag = onestep_flag(r->wr.op);
        bool flag_set = false;
        if (r->content_length > 0 && (uint64_t)r->content_length > r->max_body) {
            front__fail(r, 413, "IllegalArgumentException",
                        "request body of %" PRId64 " bytes is over the limit of %" PRIu64, r->content_length,
                        r->max_body);
        } else if (check_path_params(&r->wr, &e) != 0 || check_mapped(f->cfg, &r->wr, &e) != 0) {
            front__fail_err(r, &e);
        } else if (flag && whreq_get_bool(&r->wr, flag, false, &flag_set, &e) != 0) {
            front__fail_err(r, &e);
        } else if (flag && !flag_set && !has_body(r)) {
            answer_redirect(r, flag);
        } else if (has_body(r) && r->wr.info->has_body) {
            body_begin(r);
        }
    }
    if (r->state == FR_ANSWERING && has_body(r)) {
        /* Refused with a body on the way. A client waiting for 100-continue has sent nothing: answer
         * now (MHD then closes the connection). Others are already sending, and cutting them off
         * makes most clients see a reset instead of the answer, so their body is read and dropped
         * (on_body) unless it is declared larger than that allows. */
        const char *expect = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if ((expect && strcasecmp(expect, "100-continue") == 0) ||
            (r->content_length > 0 && (uint64_t)r->content_length > r->max_body + FRONT_DRAIN_MAX))
            return queue_answer(r);
    }
    return MHD_YES;
}

/* A piece of body. Returns MHD_YES, or MHD_NO to cut the connection. */
static enum MHD_Result on_body(fr_req *r, const char *data, size_t n)
{
    r->body_bytes += n;
    metrics_add(r->f->bytes_in, n);
    if (r->state == FR_ANSWERING) {
        /* Refused: read and drop, but no more than a body we would have accepted plus
         * FRONT_DRAIN_MAX; past that the connection is cut. */
        return r->body_bytes > r->max_body + FRONT_DRAIN_MAX ? MHD_NO : MHD_YES;
    }
    if (r->body_bytes > r->max_body) {
        front__fail(r, 413, "IllegalArgumentException", "request body is over the limit of %" PRIu64 " bytes",
                    r->max_body);
        return MHD_YES;
    }
    if (!r->body) return MHD_YES; /* a body on an op that takes none: dropped */
    int rc = body_write(r, data, n);
    if (rc != 0) {
        if (rc == -EFBIG) LOGI("msg=\"body past its spool reservation (spool cap)\" req=%" PRIu64 " rid=%s", r->id, r->rid);
        else LOGW("msg=\"spool write failed\" req=%" PRIu64 " rid=%s err=\"%s\"", r->id, r->rid, strerror(-rc));
        front__fail(r, 503, "IOException", "the proxy's spool is full; retry later");
    }
    return MHD_YES;
}


static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    fr_req *r = *con_cls;
    if (!r) return MHD_NO; /* out of memory in uri_log_cb */
    if (!r->begun) return front__conn_handled(r) ? on_headers(r, method, version) : MHD_NO;
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        return on_body(r, upload_data, n);
    }
    switch (r->state) {
    case FR_RECEIVING: {
        if (!front__conn_received(r)) return MHD_NO; /* the reaper answered 408 and shut the connection */
        FR_SET(r, FR_SPOOLED);
        whreq_err e;
        int frc = r->body ? spool_finish(r->body) : 0;
        if (frc != 0) {
            LOGW("msg=\"spool finish failed\" req=%" PRIu64 " rid=%s err=\"%s\"", r->id, r->rid, strerror(-frc));
            front__fail(r, 503, "IOException", "the proxy cannot spool the request body now; retry later");
            return queue_answer(r);
        }
        if (r->wr.op == WH_OP_MSCONCAT && check_msconcat_body(r, &e) != 0) {
            front__fail_err(r, &e);
            return queue_answer(r);
        }
        front__dispatch(r);
        /* After a suspension (even one already undone) MHD calls again once it resumed. */
        return r->suspended ? MHD_YES : queue_answer(r);
    }
    case FR_UPSTREAM:
        if (!front__upstream_ready(r)) {
            LOGE("msg=\"resumed without an upstream answer\" req=%" PRIu64, r->id);
            return MHD_NO;
        }
        front__answer_upstream(r);
        return queue_answer(r);
    case FR_ANSWERING:
        if (r->queued) return MHD_YES;
        return queue_answer(r);
    case FR_SPOOLED:
    case FR_DONE:
    case FR__COUNT:
        break;
    }
    LOGE("msg=\"request in unexpected state\" req=%" PRIu64 " state=%s", r->id, fr_states[r->state].name);
    return MHD_NO;
}

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    front *f = cls;
    fr_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->f = f;
    r->id = atomic_fetch_add(&f->next_id, 1) + 1;
    r->conn = conn;
    r->target = strdup(uri ? uri : "/");
    if (!r->target) {
        free(r);
        return NULL;
    }
    const char *q = strchr(r->target, '?');
    r->query = q ? q + 1 : "";
    atomic_init(&r->up, NULL);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->fc = ci ? ci->socket_context : NULL;
    front__conn_request(r, ff_query_params(r->query));
    return r;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    fr_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (r->stream) r->resp_bytes = front__stream_release(r);
    if (r->begun) {
        if (!r->queued) count_request(r); /* the client went away before an answer */
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
        char seqs[24] = "-";
        if (r->journaled && r->seq) snprintf(seqs, sizeof seqs, "%" PRIu64, r->seq);
        LOGD("msg=request req=%" PRIu64 " rid=%s seq=%s method=%s op=%s path=\"%s\" status=%d in=%" PRIu64
             " out=%" PRIu64 " ms=%.1f completed=%d",
             r->id, r->rid, seqs, r->method, r->parsed ? r->wr.info->name : "-", r->parsed ? r->wr.path : "-",
             r->queued ? r->status : 0, r->body_bytes, r->resp_bytes, ms, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    }
    front__conn_request_done(r);
    front__req_free(r);
}

void front__req_free(fr_req *r)
{
    FR_SET(r, FR_DONE);
    if (r->resp) MHD_destroy_response(r->resp);
    httpc_resp *up = atomic_load(&r->up);
    if (up) {
        httpc_resp_free(up);
        free(up);
    }
    spool_unref(r->body);
    metrics_gauge_add(r->f->spool_bytes, -(int64_t)r->spool_counted);
    if (r->parsed) whreq_free(&r->wr);
    free(r->authorization);
    free(r->content_type);
    free(r->g2_ctype);
    free(r->g2_body);
    free(r->local_msg);
    free(r->target);
    free(r);
}

/*
 * libmicrohttpd's fatal-error hook (process-wide). One of its "panics" is a known race of its own:
 * MHD_quiesce_daemon removes the listen socket from each worker's epoll set while a worker that has
 * already seen the quiesce flag may remove it first; the worker's side tolerates ENOENT for exactly
 * this race, the quiesce side does not (0.9.75 daemon.c). Seen once in CI as a crash on SIGTERM right
 * after start. That one is tolerated while front_stop quiesces (the socket is out of the set either
 * way, and MHD marks it so right after); every other panic is logged and aborts, as MHD's default does.
 */
static atomic_bool g_quiescing;

static void mhd_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
    (void)cls;
    if (atomic_load(&g_quiescing) && reason && strstr(reason, "Failed to remove listen FD from epoll set")) {
        LOGW("msg=\"libmicrohttpd: the listen socket left a worker's epoll set first (tolerated race)\" "
             "file=\"%s\" line=%u",
             file ? file : "", line);
        return;
    }
    LOGE("msg=\"libmicrohttpd fatal error\" file=\"%s\" line=%u reason=\"%s\"", file ? file : "", line,
         reason ? reason : "");
    abort();
}

/* libmicrohttpd's messages: fm is its printf format. */
static void mhd_logger(void *cls, const char *fm, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_logger(void *cls, const char *fm, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fm, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    LOGD("msg=libmicrohttpd detail=\"%s\"", line);
}

/* ---- life cycle ---- */

int front_listen_socket(const char *host, int port, int *real_port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, last_errno = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(last_errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    *real_port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) *real_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6) *real_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static void init_metrics(front *f)
{
    metrics *m = f->m;
    front__phase_metrics(f);
    f->bytes_in = metrics_counter_get(m, "dualpipe_request_body_bytes_total",
                                      "Request body bytes received from writers.", NULL);
    f->bytes_out = metrics_counter_get(m, "dualpipe_response_body_bytes_total",
                                       "Response body bytes sent to writers.", NULL);
    f->connections = metrics_gauge_get(m, "dualpipe_front_connections", "Open client connections on the front.", NULL);
    f->waiting = metrics_gauge_get(m, "dualpipe_front_requests_upstream", "Requests waiting for Gen1's answer.", NULL);
    f->streaming = metrics_gauge_get(m, "dualpipe_front_reads_streaming",
                                     "Read answers being relayed from Gen1 to their readers.", NULL);
    f->read_buf_bytes = metrics_gauge_get(m, "dualpipe_front_read_buffer_bytes",
                                          "Memory held by the buffers of the reads being relayed (bytes).", NULL);
    f->conn_refused = metrics_counter_get(m, "dualpipe_front_connections_refused_total",
                                          "Connections closed at accept: limits.max_connections reached.", NULL);
    f->req_timeouts = metrics_counter_get(m, "dualpipe_front_request_timeouts_total",
                                          "Connections ended because a request was not received within "
                                          "limits.request_timeout_s.",
                                          NULL);
    f->framing_refused = metrics_counter_get(m, "dualpipe_front_framing_refused_total",
                                             "Requests refused for their header section or message framing "
                                             "(RFC 9112), their connection closed.",
                                             NULL);
    f->spool_bytes = metrics_gauge_get(m, "dualpipe_spool_bytes",
                                       "Bytes of request bodies being received into the spool.", NULL);
    static const double lat[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    f->up_latency = metrics_histogram_get(m, "dualpipe_upstream_seconds", "Duration of upstream exchanges.",
                                          "upstream=\"gen1\"", lat, (int)(sizeof lat / sizeof lat[0]));
    static const char *const kinds[HTTPC_E_AUTH + 1] = {"ok",   "connect",   "timeout", "transport", "too_big",
                                                        "body", "cancelled", "nomem",   "auth"};
    for (int i = 1; i <= HTTPC_E_AUTH; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "upstream=\"gen1\",kind=\"%s\"", kinds[i]);
        f->up_fail[i] = metrics_counter_get(m, "dualpipe_upstream_failures_total",
                                            "Upstream exchanges that ended without an HTTP answer, by kind.", labels);
    }
    f->applied_submits = metrics_counter_get(m, "dualpipe_mirror_submitted_total",
                                             "Writes Gen1 accepted that the journal owes Gen2.", NULL);
    f->skipped_false = metrics_counter_get(m, "dualpipe_mirror_skipped_total",
                                           "Writes not mirrored to Gen2, by reason.", "reason=\"gen1_false\"");
}

/* SIGHUP (reload.h): the limits the front reads per request. */
static const char *const front_live_keys[] = {"limits.max_body_bytes", NULL};

static int front_reload(void *arg, const dp_config *nc, bool check, char *err, size_t errlen)
{
    front *f = arg;
    if (!check) atomic_store_explicit(&f->max_body_bytes, nc->max_body_bytes, memory_order_relaxed);
    return 0;
}

int front_start(const dp_config *cfg, gen1c *g1, pipeline *p, g2s *gs, metrics *m, front **out, char *err,
                size_t errlen)
{
    int lfd = -1;
    front *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    f->cfg = cfg;
    f->quiesced_fd = -1;
    atomic_init(&f->max_body_bytes, cfg->max_body_bytes);
    f->g1 = g1;
    f->p = p;
    f->g2s = gs;
    f->m = m;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    front__phase_init(f);
    pthread_mutex_init(&f->conn_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->conn_cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&f->nconns, 0);
    init_metrics(f);
    /* one read's buffer may always grow to its full limits.stream_buffer_bytes */
    rdbuf_pool_init(&f->rdpool,
                    cfg->stream_memory_bytes > cfg->stream_buffer_bytes ? cfg->stream_memory_bytes : cfg->stream_buffer_bytes,
                    f->read_buf_bytes);
    /* no write until the phase is settled: the phase control lifts this (phctl_start) */
    front_fence(f, "the proxy is starting: its phase is not settled yet");
    if (front__conn_start(f, err, errlen) != 0) goto fail;

    char lerr[300];
    lfd = front_listen_socket(cfg->listen.host, cfg->listen.port, &f->port, lerr, sizeof lerr);
    if (lfd < 0) {
        snprintf(err, errlen, "listen: %s", lerr);
        goto fail;
    }
    unsigned threads = cfg->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    /* One memory pool per connection holds the request line, the headers and the body as it arrives:
     * larger than the header limit so big bodies come in big pieces; the header limit is then checked
     * in on_headers. */
    size_t pool_bytes = cfg->read_buffer_bytes > cfg->max_header_bytes ? cfg->read_buffer_bytes : cfg->max_header_bytes;
    MHD_set_panic_func(mhd_panic, NULL);
    if (front_tls_new(cfg, &f->tls, err, errlen) != 0) goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     front_tls_mhd_flags(f->tls);
    /* limits.max_connections is enforced at accept (front__conn_accept refuses at once); MHD's own limit,
     * which splits evenly over the pool's threads and past which a thread stops accepting (connections
     * then wait in the backlog), is set well above it. */
    unsigned mhd_limit = cfg->max_connections * 2u + threads;
    struct MHD_OptionItem pool[] = {
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_client, NULL},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    f->d = MHD_start_daemon(flags, 0, front__conn_accept, f, access_cb, f, MHD_OPTION_LISTEN_SOCKET, lfd,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, f, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, f,
                            MHD_OPTION_NOTIFY_CONNECTION, front__conn_notify, f,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, f,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool_bytes,
                            MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s, MHD_OPTION_ARRAY, pool,
                            MHD_OPTION_ARRAY, front_tls_mhd_options(f->tls), MHD_OPTION_END);
    if (!f->d) {
        snprintf(err, errlen, "listen: libmicrohttpd failed to start on %s:%d (check limits.*)", cfg->listen.host,
                 f->port);
        goto fail;
    }
    LOGI("msg=\"front listening\" phase=%s host=%s port=%d threads=%u max_connections=%u max_connections_per_client=%u "
         "request_timeout_s=%u tls=%s",
         cfg_phase_name(cfg->phase), cfg->listen.host, f->port, threads, cfg->max_connections, cfg->max_connections_per_client,
         cfg->request_timeout_s, f->tls ? (cfg->tls_client_ca_file[0] ? "on+client_cert" : "on") : "off");
    if (rl_register("front", front_live_keys, front_reload, f) != 0)
        LOGW("msg=\"front limits will not follow SIGHUP: too many reload hooks\"");
    *out = f;
    return 0;

fail:
    if (lfd >= 0) close(lfd);
    front_tls_free(f->tls);
    front__conn_stop(f);
    pthread_cond_destroy(&f->conn_cond);
    pthread_mutex_destroy(&f->conn_mu);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    front__phase_destroy(f);
    free(f);
    return -1;
}

int front_port(const front *f) { return f->port; }

bool front_accepting(const front *f) { return !atomic_load(&f->stopping); }

void front_stop(front *f, unsigned drain_ms)
{
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    atomic_store(&f->stopping, true);
    pthread_mutex_unlock(&f->mu);
    front__release_held_stopping(f);
    atomic_store(&g_quiescing, true);
    MHD_socket lfd = MHD_quiesce_daemon(f->d);
    atomic_store(&g_quiescing, false);
    /* Workers drop the socket from their sets with some delay after the quiesce, so it must stay a valid
     * descriptor until MHD_stop_daemon (closing it now races a worker's accept, and the number could be
     * reused). shutdown() already makes the kernel refuse new connections, so clients are not left
     * waiting in the backlog during the drain. */
    if (lfd != MHD_INVALID_SOCKET) {
        shutdown(lfd, SHUT_RDWR);
        f->quiesced_fd = lfd;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += drain_ms / 1000;
    deadline.tv_nsec += (long)(drain_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    while (atomic_load(&f->upstream_calls) > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&f->cond, &f->mu, &deadline);
    unsigned left = atomic_load(&f->upstream_calls);
    if (left > 0)
        LOGW("msg=\"front stopped with requests still waiting for the journal, Gen1 or the ack; the journal "
             "keeps their writes for the next start\" calls=%u",
             left);
    pthread_mutex_unlock(&f->mu);
    LOGI("msg=\"front stopped taking requests\"");
}

void front_free(front *f)
{
    if (!f) return;
    rl_unregister(front_reload, f);
    if (f->d) MHD_stop_daemon(f->d);
    if (f->quiesced_fd >= 0) close(f->quiesced_fd);
    front_tls_free(f->tls);
    front__conn_stop(f);
    pthread_cond_destroy(&f->conn_cond);
    pthread_mutex_destroy(&f->conn_mu);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    front__phase_destroy(f);
    free(f);
}
