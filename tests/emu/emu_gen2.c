/*
 * emu_gen2: the ADLS Gen2 (DFS) service of dualpipe-emu (protocols.md §2-3, clients.md). A request
 * goes through four steps on its connection thread: classify (target, query, op label), count and
 * maybe fault (emu_req_fault), authenticate (emu_auth: Shared Key, SAS or bearer; token endpoints
 * need none), then run the operation under the store lock and answer after releasing it.
 *
 * Data rules (§2.4): an append writes its bytes straight into the file's object beyond the committed
 * length, outside the lock, with the node pinned by `busy`; only a completed append records its
 * range in `staged`. A flush commits when the staged ranges cover [length, position) contiguously;
 * anything that rewrites or frees a file (flush, overwrite, delete, rename-over, expiry) first waits
 * until no append is in flight, then looks everything up again. Appends never change the ETag;
 * a flush that commits nothing does not either. An append with flush=true (Path - Update's "flush"
 * parameter, in the REST specification from x-ms-version 2021-06-08; taken with any version here, as
 * clients such as Hadoop's ABFS driver send it with older ones) records its range and then commits at
 * position + its length as a flush to there would (it waits for the appends still receiving data, not for
 * other appends with flush=true waiting to commit, which would wait for it in turn; InvalidFlushPosition,
 * retainUncommittedData and close taken as on a flush, the ETag and Last-Modified change when the length
 * does); it answers
 * 202 with the flushed file's headers and is counted also as "PATCH append-flush".
 *
 * Choices where the service's behaviour is not documented (protocols.md §6), each asserted by
 * tests/integration/test_gen2*.py: every authenticated caller acts as super-user for authorization
 * (owner of new items is "$superuser" for Shared Key and SAS, the token's object id for bearer
 * callers; the group is the parent's, as the access-control article says); an append below the
 * committed length is refused at once with InvalidFlushPosition, a gap only at flush; an
 * unconditional create of an existing directory changes nothing; rename and delete finish in one
 * call and never return a continuation; a request without credentials gets 401
 * NoAuthenticationInformation with a Bearer challenge, as the service answers anonymous requests.
 *
 * Answers are prepared in begin and sent from end, unless a body is still on its way and is being
 * refused: libmicrohttpd closes the connection after an answer queued before it looked for a body,
 * and clients (the proxy, the SDKs) reuse connections.
 *
 * This file holds the service object, classification and routing, the request life cycle and the
 * answers (errors included); the operations live in emu_gen2_fs.c (account and filesystem calls),
 * emu_gen2_path.c (namespace and metadata calls on paths) and emu_gen2_data.c (append, flush, read
 * and the HEAD calls), on top of the checks in emu_gen2_check.c (see emu_gen2_int.h).
 */
#include "emu_gen2.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "emu_auth.h"
#include "emu_gen2_int.h"
#include "log.h"
#include "urlcodec.h"

#define G2_MAX_VALUE 8192
#define G2_MAX_FORM (64 * 1024)
#define G2_DEFAULT_VERSION "2021-06-08"
#define G2_MSG_MAX (20 * 1024)

/* ================================================================ small helpers */

void g2_random_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) memset(b, 0x5a, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void g2_fmt_rfc1123(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

int g2_parse_rfc1123(const char *s, int64_t *out_s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) return -1;
    *out_s = (int64_t)timegm(&tm);
    return 0;
}

static void fmt_iso_now(char out[64])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char d[24];
    strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 64, "%s.%07ldZ", d, (long)(ts.tv_nsec / 100));
}

void g2_fmt_etag(const emu_node *n, char out[24], bool quoted)
{
    /* Counters from the store, shown in the shape of the service's ETags ("0x8DB...", 15 hex digits). */
    uint64_t v = UINT64_C(0x8DB000000000000) + n->etag;
    snprintf(out, 24, quoted ? "\"0x%" PRIX64 "\"" : "0x%" PRIX64, v);
}

const char *g2_param(const g2_req *q, const char *name)
{
    for (int i = 0; i < q->nparams; i++)
        if (strcasecmp(q->params[i].name, name) == 0) return q->params[i].value;
    return NULL;
}

const char *g2_hdr(const g2_req *q, const char *name)
{
    return emu_req_header(q->r, name);
}

/* Header value, NULL when absent or empty. */
const char *g2_hdr_ne(const g2_req *q, const char *name)
{
    const char *v = emu_req_header(q->r, name);
    return v && *v ? v : NULL;
}

/* Parse "true"/"false" (any case). Returns 0/1, or -1 when malformed; dflt when absent. */
int g2_parse_bool(const char *v, int dflt)
{
    if (!v || !*v) return dflt;
    if (strcasecmp(v, "true") == 0) return 1;
    if (strcasecmp(v, "false") == 0) return 0;
    return -1;
}

int g2_parse_i64(const char *v, int64_t *out)
{
    if (!v || !*v) return -1;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || !end || *end || end == v) return -1;
    *out = (int64_t)x;
    return 0;
}

bool g2_fs_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 63) return false;
    if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]) || s[0] == '$')) return false;
    if (s[n - 1] == '-') return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-')) return false;
        if (c == '-' && s[i - 1] == '-') return false;
    }
    return true;
}

/* ================================================================ answering */

static void common_headers(g2_req *q)
{
    emu_resp_header(q->r, "x-ms-request-id", q->id);
    emu_resp_header(q->r, "x-ms-version", q->version);
    emu_resp_header(q->r, "Server", "Windows-Azure-HDFS/1.0 Microsoft-HTTPAPI/2.0");
    const char *crid = g2_hdr(q, "x-ms-client-request-id");
    if (crid && strlen(crid) <= 1024) emu_resp_header(q->r, "x-ms-client-request-id", crid);
}

void g2_ans_empty(g2_req *q, int status)
{
    q->ans = G2_ANS_EMPTY;
    q->status = status;
}

void g2_ans_text(g2_req *q, int status, const char *ctype, const char *text)
{
    q->ans = G2_ANS_BODY;
    q->status = status;
    q->ctype = ctype;
    dbuf_reset(&q->body);
    if (dbuf_adds(&q->body, text)) {
        q->status = 500;
        q->ans = G2_ANS_EMPTY;
    }
}

void g2_xml_escape(dbuf *b, const char *s, int *rc)
{
    for (; *s && !*rc; s++) {
        switch (*s) {
        case '<': *rc = dbuf_adds(b, "&lt;"); break;
        case '>': *rc = dbuf_adds(b, "&gt;"); break;
        case '&': *rc = dbuf_adds(b, "&amp;"); break;
        case '"': *rc = dbuf_adds(b, "&quot;"); break;
        case '\'': *rc = dbuf_adds(b, "&apos;"); break;
        default: *rc = dbuf_add(b, s, 1); break;
        }
    }
}

/* An error in the service's format: JSON {"error":{...}} (DFS), XML <Error> (Blob-shaped calls), no
 * body for HEAD; always with x-ms-error-code. Replaces any answer prepared before. */
void g2_ans_err(g2_req *q, int status, const char *code, const char *fmt, ...)
{
    char msg[G2_MSG_MAX], t[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fmt_iso_now(t);
    q->status = status;
    emu_resp_header(q->r, "x-ms-error-code", code);
    LOGD("gen2 op=%s status=%d code=%s", q->label, status, code);
    if (q->head) {
        q->ans = G2_ANS_EMPTY;
        return;
    }
    dbuf_reset(&q->body);
    int rc = 0;
    if (q->xml) {
        rc = dbuf_printf(&q->body,
                         "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>", code);
        g2_xml_escape(&q->body, msg, &rc);
        if (!rc) rc = dbuf_printf(&q->body, "\nRequestId:%s\nTime:%s</Message></Error>", q->id, t);
        q->ctype = "application/xml";
    } else {
        char full[G2_MSG_MAX + 128];
        snprintf(full, sizeof full, "%s\nRequestId:%s\nTime:%s", msg, q->id, t);
        json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", full);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        rc = s ? dbuf_adds(&q->body, s) : -ENOMEM;
        free(s);
        q->ctype = "application/json;charset=utf-8";
    }
    q->ans = rc ? G2_ANS_EMPTY : G2_ANS_BODY;
}

void g2_ans_auth_fail(g2_req *q, const emu_auth_fail *f)
{
    if (f->www_authenticate) {
        char v[400];
        if (f->www_error[0])
            snprintf(v, sizeof v,
                     "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize "
                     "resource_id=https://storage.azure.com error=\"invalid_token\" error_description=\"%s\"",
                     f->www_error);
        else
            snprintf(v, sizeof v,
                     "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize "
                     "resource_id=https://storage.azure.com");
        emu_resp_header(q->r, "WWW-Authenticate", v);
    }
    g2_ans_err(q, f->status, f->code, "%s", f->message);
}

void g2_ans_send(g2_req *q)
{
    if (emu_req_answered(q->r)) return;
    common_headers(q);
    switch (q->ans) {
    case G2_ANS_BODY:
        emu_resp_buf(q->r, q->status, q->ctype, q->body.data ? q->body.data : "", q->body.len);
        break;
    case G2_ANS_HEAD:
        emu_resp_head(q->r, q->status, q->head_len);
        break;
    case G2_ANS_FD:
        emu_resp_fd(q->r, q->status, q->ctype, q->fd, q->fd_off, q->fd_len);
        q->fd = -1;
        break;
    case G2_ANS_EMPTY:
        emu_resp_empty(q->r, q->status);
        break;
    case G2_ANS_NONE:
        emu_resp_header(q->r, "x-ms-error-code", "InternalError");
        emu_resp_empty(q->r, 500);
        break;
    }
}

void g2_hdr_node_common(g2_req *q, const emu_node *n)
{
    char etag[24], lm[40];
    g2_fmt_etag(n, etag, true);
    g2_fmt_rfc1123(n->mtime_ms, lm);
    emu_resp_header(q->r, "ETag", etag);
    emu_resp_header(q->r, "Last-Modified", lm);
}

/* ================================================================ classification */

static void perr(g2_req *q, int status, const char *code, const char *msg)
{
    if (q->perr_status) return;
    q->perr_status = status;
    q->perr_code = code;
    q->perr_msg = msg;
}

static const char *const MSG_VERB = "The resource doesn't support the specified HTTP verb.";

int g2_decode_dup(const char *s, size_t n, unsigned flags, char **out)
{
    dbuf d;
    dbuf_init(&d, G2_MAX_VALUE);
    int rc = url_decode(s, n, flags, &d);
    if (rc) {
        dbuf_free(&d);
        return rc;
    }
    *out = dbuf_take(&d);
    return *out ? 0 : -ENOMEM;
}

static int parse_query(g2_req *q)
{
    url_param ps[G2_MAX_PARAMS];
    int n = url_split_query(emu_req_query(q->r), ps, G2_MAX_PARAMS);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        g2_qparam *p = &q->params[q->nparams];
        if (g2_decode_dup(ps[i].name, ps[i].name_len, URL_NO_CTL, &p->name)) return -1;
        if (g2_decode_dup(ps[i].value ? ps[i].value : "", ps[i].value_len, URL_NO_CTL, &p->value)) {
            free(p->name);
            p->name = NULL;
            return -1;
        }
        q->nparams++;
    }
    return 0;
}

/* Split a decoded path into segments in place (empty segments skipped). Returns the count, -E2BIG
 * when there are too many, -EINVAL for "." or ".." segments. */
int g2_split_path(char *p, char **segs, int max)
{
    int n = 0;
    char *save = p;
    while (*save) {
        while (*save == '/') save++;
        if (!*save) break;
        char *end = strchr(save, '/');
        if (end) *end = 0;
        if (strcmp(save, ".") == 0 || strcmp(save, "..") == 0) return -EINVAL;
        if (n >= max) return -E2BIG;
        segs[n++] = save;
        if (!end) break;
        save = end + 1;
    }
    return n;
}

char *g2_join_segs(char **segs, int n)
{
    dbuf d;
    dbuf_init(&d, G2_MAX_PATH);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (i) rc = dbuf_add(&d, "/", 1);
        if (!rc) rc = dbuf_adds(&d, segs[i]);
    }
    if (rc) {
        dbuf_free(&d);
        return NULL;
    }
    return dbuf_take(&d);
}

/* First segment of the (decoded) x-ms-rename-source path. */
static bool rename_source_names_account(const g2_req *q)
{
    const char *src = g2_hdr_ne(q, "x-ms-rename-source");
    if (!src) return false;
    const char *qm = strchr(src, '?');
    char *dec = NULL;
    if (g2_decode_dup(src, qm ? (size_t)(qm - src) : strlen(src), URL_NO_CTL, &dec)) return false;
    char *segs[G2_MAX_SEGS];
    int n = g2_split_path(dec, segs, G2_MAX_SEGS);
    bool yes = n >= 1 && strcmp(segs[0], q->g->key.account) == 0;
    free(dec);
    return yes;
}

static void route_account(g2_req *q)
{
    if (strcmp(q->method, "GET") == 0 && g2_param(q, "resource") && strcmp(g2_param(q, "resource"), "account") == 0) {
        q->op = G2_OP_LIST_FS;
        q->label = "list-filesystems";
        return;
    }
    if (strcmp(q->method, "GET") == 0 && g2_param(q, "comp") && strcmp(g2_param(q, "comp"), "list") == 0) {
        q->op = G2_OP_LIST_FS;
        q->xml = true;
        q->label = "list-filesystems";
        return;
    }
    perr(q, 400, "InvalidQueryParameterValue", G2_MSG_BADQ);
}

static void route_filesystem(g2_req *q, bool blob)
{
    const char *m = q->method;
    q->xml = blob;
    if (blob && g2_param(q, "comp")) {
        q->label = "filesystem-properties";
        perr(q, 400, "InvalidQueryParameterValue", G2_MSG_BADQ);
        return;
    }
    if (strcmp(m, "PUT") == 0) {
        q->op = G2_OP_FS_CREATE;
        q->label = "filesystem-create";
    } else if (strcmp(m, "HEAD") == 0 || (blob && strcmp(m, "GET") == 0)) {
        q->op = G2_OP_FS_PROPS;
        q->label = "filesystem-properties";
    } else if (!blob && strcmp(m, "GET") == 0) {
        q->op = G2_OP_LIST_PATHS;
        q->label = "list-paths";
    } else if (!blob && strcmp(m, "PATCH") == 0) {
        q->op = G2_OP_FS_SETPROPS;
        q->label = "filesystem-properties";
    } else if (strcmp(m, "DELETE") == 0) {
        q->op = G2_OP_FS_DELETE;
        q->label = "filesystem-delete";
    } else {
        perr(q, 405, "UnsupportedHttpVerb", MSG_VERB);
    }
}

static void route_path(g2_req *q)
{
    const char *m = q->method;
    const char *action = g2_param(q, "action");
    if (strcmp(m, "PUT") == 0) {
        const char *res = g2_param(q, "resource"), *comp = g2_param(q, "comp");
        if (res && (strcmp(res, "file") == 0 || strcmp(res, "directory") == 0)) {
            q->op = G2_OP_CREATE;
            q->label = res[0] == 'f' ? "create-file" : "create-directory";
        } else if (res) {
            q->label = "create-file";
            perr(q, 400, "InvalidQueryParameterValue", G2_MSG_BADQ);
        } else if (comp && strcmp(comp, "expiry") == 0) {
            q->op = G2_OP_EXPIRY;
            q->label = "set-expiry";
        } else if (comp && strcmp(comp, "lease") == 0) {
            /* Blob-shaped lease (the SDKs' lease clients): same actions, XML errors. */
            q->op = G2_OP_LEASE;
            q->label = "lease";
            q->xml = true;
            if (!g2_hdr_ne(q, "x-ms-lease-action")) perr(q, 400, "MissingRequiredHeader", G2_MSG_NOHDR);
        } else if (g2_hdr(q, "x-ms-rename-source")) {
            q->op = G2_OP_RENAME;
            q->label = "rename";
        } else {
            q->label = "create-file";
            perr(q, 400, "MissingRequiredQueryParameter", G2_MSG_NOQ);
        }
    } else if (strcmp(m, "PATCH") == 0) {
        static const struct {
            const char *action;
            g2_op op;
            const char *label;
        } acts[] = {
            {"append", G2_OP_APPEND, "append"},
            {"flush", G2_OP_FLUSH, "flush"},
            {"setProperties", G2_OP_SETPROPS, "set-properties"},
            {"setAccessControl", G2_OP_SETACL, "set-acl"},
            {"setAccessControlRecursive", G2_OP_SETACL_REC, "set-acl-recursive"},
        };
        q->label = "update";
        for (size_t i = 0; action && i < sizeof acts / sizeof acts[0]; i++) {
            if (strcasecmp(action, acts[i].action) == 0) {
                q->op = acts[i].op;
                q->label = acts[i].label;
            }
        }
        if (q->op == G2_OP_INVALID)
            perr(q, 400, action ? "InvalidQueryParameterValue" : "MissingRequiredQueryParameter",
                 action ? G2_MSG_BADQ : G2_MSG_NOQ);
    } else if (strcmp(m, "GET") == 0) {
        q->op = G2_OP_READ;
        q->label = "read";
    } else if (strcmp(m, "HEAD") == 0) {
        if (!action) {
            q->op = G2_OP_GETPROPS;
            q->label = "get-properties";
        } else if (strcasecmp(action, "getStatus") == 0) {
            q->op = G2_OP_GETSTATUS;
            q->label = "get-status";
        } else if (strcasecmp(action, "getAccessControl") == 0) {
            q->op = G2_OP_GETACL;
            q->label = "get-acl";
        } else if (strcasecmp(action, "checkAccess") == 0) {
            q->op = G2_OP_CHECKACCESS;
            q->label = "check-access";
        } else {
            q->label = "get-properties";
            perr(q, 400, "InvalidQueryParameterValue", G2_MSG_BADQ);
        }
    } else if (strcmp(m, "DELETE") == 0) {
        q->op = G2_OP_DELETE;
        q->label = "delete";
    } else if (strcmp(m, "POST") == 0) {
        q->op = G2_OP_LEASE;
        q->label = "lease";
        if (!g2_hdr_ne(q, "x-ms-lease-action")) perr(q, 400, "MissingRequiredHeader", G2_MSG_NOHDR);
    } else {
        perr(q, 405, "UnsupportedHttpVerb", MSG_VERB);
    }
}

static void classify(g2_req *q)
{
    emu_gen2 *g = q->g;
    q->method = emu_req_method(q->r);
    const char *ovr = g2_hdr_ne(q, "X-HTTP-Method-Override");
    if (ovr && (strcmp(q->method, "PUT") == 0 || strcmp(q->method, "POST") == 0) &&
        (strcmp(ovr, "PATCH") == 0 || strcmp(ovr, "DELETE") == 0 || strcmp(ovr, "PUT") == 0))
        q->method = ovr;
    q->head = strcmp(q->method, "HEAD") == 0;
    q->label = "invalid";
    if (parse_query(q)) {
        perr(q, 400, "InvalidQueryParameterValue", G2_MSG_BADQ);
        return;
    }
    const char *raw = emu_req_path(q->r);
    char *dec = NULL;
    if (g2_decode_dup(raw, strlen(raw), URL_NO_CTL, &dec)) {
        perr(q, 400, "InvalidUri", G2_MSG_BADURI);
        return;
    }
    char *segs[G2_MAX_SEGS];
    int n = g2_split_path(dec, segs, G2_MAX_SEGS);
    if (n < 0) {
        perr(q, 400, n == -EINVAL ? "InvalidUri" : "InvalidResourceName",
             n == -EINVAL ? G2_MSG_BADURI : "The specified resource name length is not within the permissible limits.");
        goto out;
    }
    /* Token endpoints share the listener. */
    if (n == 4 && strcmp(segs[0], "metadata") == 0 && strcmp(segs[1], "identity") == 0 &&
        strcmp(segs[2], "oauth2") == 0 && strcmp(segs[3], "token") == 0) {
        q->op = G2_OP_IMDS;
        q->label = "imds";
        q->aad = true;
        goto out;
    }
    if (strcmp(q->method, "POST") == 0 && !g2_hdr(q, "x-ms-lease-action") &&
        ((n == 3 && strcmp(segs[1], "oauth2") == 0 && strcmp(segs[2], "token") == 0) ||
         (n == 4 && strcmp(segs[1], "oauth2") == 0 && strcmp(segs[2], "v2.0") == 0 && strcmp(segs[3], "token") == 0))) {
        q->op = G2_OP_TOKEN;
        q->label = "token";
        q->aad = true;
        q->v2 = n == 4;
        q->tenant = strdup(segs[0]);
        if (!q->tenant) perr(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    int first = 1;
    if (n == 0 || strcmp(segs[0], g->key.account) != 0) {
        /* The JS SDK drops the account segment from a rename's request path (clients.md). */
        if (n >= 2 && strcmp(q->method, "PUT") == 0 && rename_source_names_account(q)) {
            first = 0;
        } else {
            perr(q, 400, "InvalidUri", G2_MSG_BADURI);
            goto out;
        }
    }
    if (n == first) {
        route_account(q);
        goto out;
    }
    q->fs = strdup(segs[first]);
    q->rel = g2_join_segs(segs + first + 1, n - first - 1);
    if (!q->fs || !q->rel) {
        perr(q, 400, "InvalidResourceName", "The specified resource name length is not within the permissible limits.");
        goto out;
    }
    dbuf sp;
    dbuf_init(&sp, G2_MAX_PATH + 80);
    if (dbuf_printf(&sp, "/%s%s%s", q->fs, q->rel[0] ? "/" : "", q->rel)) {
        dbuf_free(&sp);
        perr(q, 400, "InvalidResourceName", "The specified resource name length is not within the permissible limits.");
        goto out;
    }
    q->spath = dbuf_take(&sp);
    if (strlen(q->rel) > 1024) {
        perr(q, 400, "InvalidResourceName", "The specified resource name length is not within the permissible limits.");
    }
    const char *res = g2_param(q, "resource"), *restype = g2_param(q, "restype");
    if (n == first + 1 && res && strcmp(res, "filesystem") == 0)
        route_filesystem(q, false);
    else if (n == first + 1 && restype && strcmp(restype, "container") == 0)
        route_filesystem(q, true);
    else
        route_path(q);
    if (!g2_fs_name_ok(q->fs))
        perr(q, 400, "InvalidResourceName", "The specifed resource name contains invalid characters.");
out:
    free(dec);
}

/* ================================================================ request life cycle */

static void run_locked(g2_req *q)
{
    emu_store *s = q->g->s;
    emu_store_lock(s);
    g2_expire_sweep(q->g);
    switch (q->op) {
    case G2_OP_LIST_FS: g2_op_list_fs(q); break;
    case G2_OP_FS_CREATE: g2_op_fs_create(q); break;
    case G2_OP_FS_PROPS: g2_op_fs_props(q); break;
    case G2_OP_FS_SETPROPS: g2_op_fs_setprops(q); break;
    case G2_OP_FS_DELETE: g2_op_fs_delete(q); break;
    case G2_OP_LIST_PATHS: g2_op_list_paths(q); break;
    case G2_OP_CREATE: g2_op_create(q); break;
    case G2_OP_RENAME: g2_op_rename(q); break;
    case G2_OP_APPEND: g2_append_prepare(q); break;
    case G2_OP_FLUSH: g2_op_flush(q); break;
    case G2_OP_SETPROPS: g2_op_setprops(q); break;
    case G2_OP_SETACL: g2_op_setacl(q); break;
    case G2_OP_SETACL_REC: g2_op_setacl_recursive(q); break;
    case G2_OP_READ: g2_op_read(q, false); break;
    case G2_OP_GETPROPS: g2_op_read(q, true); break;
    case G2_OP_GETSTATUS:
    case G2_OP_GETACL:
    case G2_OP_CHECKACCESS: g2_op_head_action(q); break;
    case G2_OP_DELETE: g2_op_delete(q); break;
    case G2_OP_LEASE: g2_op_lease(q); break;
    case G2_OP_EXPIRY: g2_op_expiry(q); break;
    default: g2_ans_err(q, 400, "InvalidUri", "%s", G2_MSG_BADURI); break;
    }
    emu_store_unlock(s);
}

static bool version_ok(const char *v)
{
    if (strlen(v) != 10) return false;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (v[i] != '-') return false;
        } else if (!isdigit((unsigned char)v[i])) {
            return false;
        }
    }
    return true;
}

static void token_answer(g2_req *q, int status, dbuf *json)
{
    emu_resp_header(q->r, "Cache-Control", "no-store, no-cache");
    g2_ans_text(q, status, "application/json; charset=utf-8", json->data ? json->data : "");
}

/* Everything begin does up to a prepared answer (or an append waiting for its body). */
static void begin_prepare(g2_req *q)
{
    emu_gen2 *g = q->g;
    emu_req *r = q->r;
    const char *ver = g2_hdr_ne(q, "x-ms-version");
    if (q->perr_status) {
        g2_ans_err(q, q->perr_status, q->perr_code, "%s", q->perr_msg);
        return;
    }
    if (q->op == G2_OP_IMDS) {
        dbuf out;
        dbuf_init(&out, 64 * 1024);
        int st = strcmp(q->method, "GET") == 0 ? emu_auth_imds(g->auth, emu_req_query(r), g2_hdr(q, "Metadata"), &out)
                                               : 405;
        token_answer(q, st, &out);
        dbuf_free(&out);
        return;
    }
    if (q->op == G2_OP_TOKEN) return; /* answered at end, with the form body */
    const char *crid = g2_hdr(q, "x-ms-client-request-id");
    if ((crid && strlen(crid) > 1024) || (ver && !version_ok(ver))) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    const char *sas_path = q->rel ? q->rel : "";
    if (q->op == G2_OP_LIST_PATHS) sas_path = g2_param(q, "directory") ? g2_param(q, "directory") : "";
    emu_auth_fail *f = malloc(sizeof *f);
    if (!f) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        return;
    }
    int rc = emu_auth_check(g->auth, r, q->fs, sas_path, &q->caller, f);
    if (rc) g2_ans_auth_fail(q, f);
    free(f);
    if (rc) return;
    if (!ver && (q->caller.kind == EMU_AUTH_SHAREDKEY || q->caller.kind == EMU_AUTH_BEARER)) {
        g2_ans_err(q, 400, "MissingRequiredHeader", "%s", G2_MSG_NOHDR);
        return;
    }
    run_locked(q);
}

static void g2_begin(void *ctx, emu_req *r)
{
    emu_gen2 *g = ctx;
    g2_req *q = calloc(1, sizeof *q);
    if (!q) {
        emu_resp_header(r, "x-ms-error-code", "InternalError");
        emu_resp_empty(r, 500);
        return;
    }
    q->g = g;
    q->r = r;
    q->fd = q->wfd = -1;
    dbuf_init(&q->body, 64u << 20);
    dbuf_init(&q->form, G2_MAX_FORM);
    g2_random_uuid(q->id);
    const char *ver = g2_hdr_ne(q, "x-ms-version");
    snprintf(q->version, sizeof q->version, "%s", ver && version_ok(ver) ? ver : G2_DEFAULT_VERSION);
    emu_req_set_data(r, q);
    classify(q);
    /* an append that also flushes is counted apart too ("PATCH append-flush"): tests count requests per kind */
    if (q->op == G2_OP_APPEND && g2_parse_bool(g2_param(q, "flush"), 0) == 1) emu_req_count(r, "append-flush");
    if (emu_req_fault(r, q->label) != 0) {
        q->faulted = true;
        return;
    }
    begin_prepare(q);
    if (q->ans == G2_ANS_NONE) return; /* token form or append data to come */
    /* Refuse a body that is on its way right now (it is then dropped); anything else is sent from
     * end, since an answer queued before MHD has looked for a body makes it close the connection. */
    if (emu_req_has_body(r)) g2_ans_send(q);
}

static void g2_body(void *ctx, emu_req *r, const char *data, size_t n)
{
    g2_req *q = emu_req_get_data(r);
    if (!q || q->faulted || emu_req_answered(r)) return;
    if (q->op == G2_OP_APPEND && q->busy_held) {
        g2_append_body(q, data, n);
    } else if (q->op == G2_OP_TOKEN) {
        if (dbuf_add(&q->form, data, n)) q->too_big = true;
    }
}

static void g2_end(void *ctx, emu_req *r)
{
    g2_req *q = emu_req_get_data(r);
    if (!q || q->faulted || emu_req_answered(r)) return;
    if (q->op == G2_OP_APPEND && q->busy_held) {
        g2_append_end(q);
        return;
    }
    if (q->op == G2_OP_TOKEN && q->ans == G2_ANS_NONE) {
        dbuf out;
        dbuf_init(&out, 64 * 1024);
        int st = q->too_big ? 413 : emu_auth_token_endpoint(q->g->auth, q->v2, q->tenant,
                                                            q->form.data ? q->form.data : "", &out);
        token_answer(q, st, &out);
        dbuf_free(&out);
    }
    g2_ans_send(q);
}

static void g2_done(void *ctx, emu_req *r, bool completed)
{
    g2_req *q = emu_req_get_data(r);
    if (!q) return;
    if (q->busy_held) {
        /* The client went away mid-body: the bytes written stay unrecorded (invisible). */
        emu_store_lock(q->g->s);
        g2_unpin(q);
        emu_store_unlock(q->g->s);
    }
    if (q->wfd >= 0) close(q->wfd);
    if (q->fd >= 0) close(q->fd);
    EVP_MD_CTX_free(q->md5);
    for (int i = 0; i < q->nparams; i++) {
        free(q->params[i].name);
        free(q->params[i].value);
    }
    free(q->fs);
    free(q->rel);
    free(q->spath);
    free(q->tenant);
    dbuf_free(&q->body);
    dbuf_free(&q->form);
    emu_req_set_data(r, NULL);
    free(q);
}

static void g2_fault(void *ctx, emu_req *r, int status, int retry_after_s, const char *code_rule)
{
    g2_req *q = emu_req_get_data(r);
    if (retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%d", retry_after_s);
        emu_resp_header(r, "Retry-After", ra);
    }
    if (!q) {
        emu_resp_empty(r, status);
        return;
    }
    if (q->aad) {
        dbuf out;
        dbuf_init(&out, 4096);
        int rc = dbuf_printf(&out,
                             "{\"error\":\"temporarily_unavailable\",\"error_description\":\"AADSTS90033: A "
                             "transient error has occurred. Please try again.\",\"error_codes\":[90033]}");
        if (rc) dbuf_reset(&out);
        token_answer(q, status, &out);
        dbuf_free(&out);
        g2_ans_send(q);
        return;
    }
    static const struct {
        int status;
        const char *code, *msg;
    } map[] = {
        {400, "InvalidInput", "One of the request inputs is not valid."},
        {401, "InvalidAuthenticationInfo", "Server failed to authenticate the request."},
        {403, "AuthorizationFailure", "This request is not authorized to perform this operation."},
        {404, "PathNotFound", "The specified path does not exist."},
        {408, "OperationTimedOut", "The operation could not be completed within the permitted time."},
        {409, "PathConflict", "The specified path, or an element of the path, exists and its resource type is invalid "
                              "for this operation."},
        {412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met."},
        {413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit."},
        {429, "ServerBusy", "Operations per second is over the account limit."},
        {500, "InternalError", "Server encountered an internal error. Please try again after some time."},
        {503, "ServerBusy", "The server is currently unable to receive requests. Please retry your request."},
    };
    /* Codes a rule may name, with the message the service sends with them. */
    static const struct {
        const char *code, *msg;
    } named[] = {
        {"AuthorizationPermissionMismatch", "This request is not authorized to perform this operation using this "
                                            "permission."},
        {"AuthenticationFailed", "Server failed to authenticate the request. Make sure the value of Authorization "
                                 "header is formed correctly including the signature."},
        {"FilesystemNotFound", "The specified filesystem does not exist."},
        {"AccountIsDisabled", "The specified account is disabled."},
    };
    const char *code = status >= 500 ? "InternalError" : "InvalidInput", *msg = map[0].msg;
    if (status >= 500) msg = map[9].msg;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].status == status) {
            code = map[i].code;
            msg = map[i].msg;
        }
    }
    if (code_rule) {
        code = code_rule;
        msg = "Injected fault.";
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
            if (strcmp(named[i].code, code_rule) == 0) msg = named[i].msg;
    }
    g2_ans_err(q, status, code, "%s", msg);
    g2_ans_send(q);
}

int emu_gen2_new(const emu_gen2_opts *o, emu_gen2 **out, emu_service *svc)
{
    emu_gen2 *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    g->s = o->store;
    g->key = *o->key;
    g->max_body = o->max_body ? o->max_body : (100u << 20);
    g->delete_page = o->delete_page;
    emu_auth_opts ao = {
        .key = &g->key,
        .client_id = o->oauth_client_id,
        .client_secret = o->oauth_client_secret,
        .token_ttl_s = o->token_ttl_s,
    };
    if (emu_auth_new(&ao, &g->auth)) {
        free(g);
        return -ENOMEM;
    }
    memset(svc, 0, sizeof *svc);
    svc->ctx = g;
    svc->begin = g2_begin;
    svc->body = g2_body;
    svc->end = g2_end;
    svc->done = g2_done;
    svc->fault = g2_fault;
    *out = g;
    return 0;
}

void emu_gen2_free(emu_gen2 *g)
{
    if (!g) return;
    emu_auth_free(g->auth);
    memset(&g->key, 0, sizeof g->key);
    free(g);
}
