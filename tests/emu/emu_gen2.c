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
 * a flush that commits nothing does not either.
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
#include <fcntl.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acl.h"
#include "b64.h"
#include "emu_auth.h"
#include "log.h"
#include "urlcodec.h"

#define G2_MAX_PARAMS 64
#define G2_MAX_VALUE 8192
#define G2_MAX_SEGS 256
#define G2_MAX_PATH 2048
#define G2_MAX_FORM (64 * 1024)
#define G2_DEFAULT_VERSION "2021-06-08"
#define G2_MSG_MAX (20 * 1024)
#define G2_LIST_MAX 5000
#define G2_ACLREC_MAX 2000
#define FILETIME_EPOCH_MS INT64_C(11644473600000)

struct emu_gen2 {
    emu_store *s;
    skey_key key;
    emu_auth *auth;
    uint64_t max_body;
    int64_t next_expiry_ms; /* earliest expiry in the store (store lock); 0 = scan needed */
};

typedef enum g2_op {
    OP_INVALID = 0,
    OP_TOKEN,
    OP_IMDS,
    OP_LIST_FS,
    OP_FS_CREATE,
    OP_FS_PROPS,
    OP_FS_SETPROPS,
    OP_FS_DELETE,
    OP_LIST_PATHS,
    OP_CREATE,
    OP_RENAME,
    OP_APPEND,
    OP_FLUSH,
    OP_SETPROPS,
    OP_SETACL,
    OP_SETACL_REC,
    OP_READ,
    OP_GETPROPS,
    OP_GETSTATUS,
    OP_GETACL,
    OP_CHECKACCESS,
    OP_DELETE,
    OP_LEASE,
    OP_EXPIRY,
} g2_op;

typedef struct g2_param {
    char *name;
    char *value; /* decoded; "" when the parameter had no value */
} g2_param;

typedef enum ans_kind { ANS_NONE = 0, ANS_EMPTY, ANS_BODY, ANS_HEAD, ANS_FD } ans_kind;

typedef struct g2req {
    emu_gen2 *g;
    emu_req *r;
    char id[37];
    char version[16];
    const char *method;   /* effective method (X-HTTP-Method-Override applied) */
    bool head;
    bool xml;             /* blob-shaped call: errors as XML */
    bool aad;             /* token endpoints: errors as AAD JSON */
    bool faulted;         /* a fault rule answered or reset this request: stay silent */
    g2_op op;
    const char *label;
    /* classification error, answered after the fault hook */
    int perr_status;
    const char *perr_code;
    const char *perr_msg;
    /* target */
    char *fs;             /* decoded filesystem name; NULL at account level */
    char *rel;            /* decoded path inside fs: "" or "a/b" */
    char *spath;          /* store path "/fs" or "/fs/a/b" */
    char *tenant;         /* token endpoint */
    bool v2;
    g2_param params[G2_MAX_PARAMS];
    int nparams;
    emu_auth_caller caller;
    /* deferred answer */
    ans_kind ans;
    int status;
    dbuf body;
    const char *ctype;
    uint64_t head_len;
    int fd;
    uint64_t fd_off, fd_len;
    /* request body: token form or append data */
    dbuf form;
    emu_node *node;       /* append: pinned by busy */
    bool busy_held;
    int wfd;
    int64_t pos;
    uint64_t got;
    int64_t declared;
    int io_err;
    bool too_big;
    EVP_MD_CTX *md5;
    unsigned char want_md5[16];
    bool has_md5;
} g2req;

/* ================================================================ small helpers */

static void random_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) memset(b, 0x5a, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void fmt_rfc1123(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int parse_rfc1123(const char *s, int64_t *out_s)
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

static void fmt_etag(const emu_node *n, char out[24], bool quoted)
{
    /* Counters from the store, shown in the shape of the service's ETags ("0x8DB...", 15 hex digits). */
    uint64_t v = UINT64_C(0x8DB000000000000) + n->etag;
    snprintf(out, 24, quoted ? "\"0x%" PRIX64 "\"" : "0x%" PRIX64, v);
}

static const char *param(const g2req *q, const char *name)
{
    for (int i = 0; i < q->nparams; i++)
        if (strcasecmp(q->params[i].name, name) == 0) return q->params[i].value;
    return NULL;
}

static const char *hdr(const g2req *q, const char *name)
{
    return emu_req_header(q->r, name);
}

/* Header value, NULL when absent or empty. */
static const char *hdr_ne(const g2req *q, const char *name)
{
    const char *v = emu_req_header(q->r, name);
    return v && *v ? v : NULL;
}

/* Parse "true"/"false" (any case). Returns 0/1, or -1 when malformed; dflt when absent. */
static int parse_bool(const char *v, int dflt)
{
    if (!v || !*v) return dflt;
    if (strcasecmp(v, "true") == 0) return 1;
    if (strcasecmp(v, "false") == 0) return 0;
    return -1;
}

static int parse_i64(const char *v, int64_t *out)
{
    if (!v || !*v) return -1;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || !end || *end || end == v) return -1;
    *out = (int64_t)x;
    return 0;
}

static bool fs_name_ok(const char *s)
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

static bool lease_active(const emu_node *n, int64_t now)
{
    if (!n->lease_id[0]) return false;
    if (n->lease_break_ms) return now < n->lease_break_ms;
    return n->lease_expiry_ms == 0 || now < n->lease_expiry_ms;
}

static const char *lease_state(const emu_node *n, int64_t now)
{
    if (!n->lease_id[0]) return "available";
    if (n->lease_break_ms) return now < n->lease_break_ms ? "breaking" : "broken";
    if (n->lease_expiry_ms && now >= n->lease_expiry_ms) return "expired";
    return "leased";
}

static bool is_expired(const emu_node *n, int64_t now)
{
    return n->type == EMU_FILE && n->expiry_ms > 0 && now >= n->expiry_ms;
}

static bool subtree_busy(const emu_node *n)
{
    if (n->busy) return true;
    for (size_t i = 0; i < n->nchildren; i++)
        if (subtree_busy(n->children[i])) return true;
    return false;
}

/* ================================================================ answering */

static void common_headers(g2req *q)
{
    emu_resp_header(q->r, "x-ms-request-id", q->id);
    emu_resp_header(q->r, "x-ms-version", q->version);
    emu_resp_header(q->r, "Server", "Windows-Azure-HDFS/1.0 Microsoft-HTTPAPI/2.0");
    const char *crid = hdr(q, "x-ms-client-request-id");
    if (crid && strlen(crid) <= 1024) emu_resp_header(q->r, "x-ms-client-request-id", crid);
}

static void ans_empty(g2req *q, int status)
{
    q->ans = ANS_EMPTY;
    q->status = status;
}

static void ans_text(g2req *q, int status, const char *ctype, const char *text)
{
    q->ans = ANS_BODY;
    q->status = status;
    q->ctype = ctype;
    dbuf_reset(&q->body);
    if (dbuf_adds(&q->body, text)) {
        q->status = 500;
        q->ans = ANS_EMPTY;
    }
}

static void xml_escape(dbuf *b, const char *s, int *rc)
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
static void ans_err(g2req *q, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void ans_err(g2req *q, int status, const char *code, const char *fmt, ...)
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
        q->ans = ANS_EMPTY;
        return;
    }
    dbuf_reset(&q->body);
    int rc = 0;
    if (q->xml) {
        rc = dbuf_printf(&q->body, "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>",
                         code);
        xml_escape(&q->body, msg, &rc);
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
    q->ans = rc ? ANS_EMPTY : ANS_BODY;
}

static void ans_auth_fail(g2req *q, const emu_auth_fail *f)
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
    ans_err(q, f->status, f->code, "%s", f->message);
}

static void ans_send(g2req *q)
{
    if (emu_req_answered(q->r)) return;
    common_headers(q);
    switch (q->ans) {
    case ANS_BODY:
        emu_resp_buf(q->r, q->status, q->ctype, q->body.data ? q->body.data : "", q->body.len);
        break;
    case ANS_HEAD:
        emu_resp_head(q->r, q->status, q->head_len);
        break;
    case ANS_FD:
        emu_resp_fd(q->r, q->status, q->ctype, q->fd, q->fd_off, q->fd_len);
        q->fd = -1;
        break;
    case ANS_EMPTY:
        emu_resp_empty(q->r, q->status);
        break;
    case ANS_NONE:
        emu_resp_header(q->r, "x-ms-error-code", "InternalError");
        emu_resp_empty(q->r, 500);
        break;
    }
}

static void hdr_node_common(g2req *q, const emu_node *n)
{
    char etag[24], lm[40];
    fmt_etag(n, etag, true);
    fmt_rfc1123(n->mtime_ms, lm);
    emu_resp_header(q->r, "ETag", etag);
    emu_resp_header(q->r, "Last-Modified", lm);
}

/* ================================================================ expiry */

typedef struct nodevec {
    emu_node **v;
    size_t n, cap;
} nodevec;

static void collect_expired(emu_node *n, int64_t now, nodevec *out, int64_t *next)
{
    if (n->type == EMU_FILE && n->expiry_ms > 0) {
        if (now >= n->expiry_ms && !n->busy) {
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 16;
                emu_node **v = realloc(out->v, cap * sizeof *v);
                if (!v) return;
                out->v = v;
                out->cap = cap;
            }
            out->v[out->n++] = n;
        } else {
            /* Not due yet, or due but pinned by an append: look again then (or at the next request). */
            int64_t when = now >= n->expiry_ms ? now : n->expiry_ms;
            if (*next == 0 || when < *next) *next = when;
        }
    }
    for (size_t i = 0; i < n->nchildren; i++) collect_expired(n->children[i], now, out, next);
}

/* Remove files whose expiry time has passed (store lock held). Cheap when nothing is due. */
static void expire_sweep(emu_gen2 *g)
{
    int64_t now = emu_now_ms();
    if (g->next_expiry_ms == INT64_MAX || (g->next_expiry_ms != 0 && now < g->next_expiry_ms)) return;
    nodevec vec = {0};
    int64_t next = 0;
    collect_expired(emu_store_root(g->s), now, &vec, &next);
    for (size_t i = 0; i < vec.n; i++)
        if (emu_store_remove(g->s, vec.v[i])) LOGW("gen2 expiry: could not remove an expired file");
    free(vec.v);
    g->next_expiry_ms = next ? next : INT64_MAX;
}

static void expiry_note(emu_gen2 *g, int64_t when)
{
    if (when > 0 && (g->next_expiry_ms == INT64_MAX || g->next_expiry_ms == 0 || when < g->next_expiry_ms))
        g->next_expiry_ms = when;
}

/* ================================================================ classification */

static void perr(g2req *q, int status, const char *code, const char *msg)
{
    if (q->perr_status) return;
    q->perr_status = status;
    q->perr_code = code;
    q->perr_msg = msg;
}

static const char *const MSG_BADQ = "Value for one of the query parameters specified in the request URI is invalid.";
static const char *const MSG_BADURI = "The requested URI does not represent any resource on the server.";
static const char *const MSG_BADHDR = "The value for one of the HTTP headers is not in the correct format.";
static const char *const MSG_NOQ = "A query parameter that's mandatory for this request is not specified.";
static const char *const MSG_NOHDR = "An HTTP header that's mandatory for this request is not specified.";
static const char *const MSG_VERB = "The resource doesn't support the specified HTTP verb.";

static int decode_dup(const char *s, size_t n, unsigned flags, char **out)
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

static int parse_query(g2req *q)
{
    url_param ps[G2_MAX_PARAMS];
    int n = url_split_query(emu_req_query(q->r), ps, G2_MAX_PARAMS);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        g2_param *p = &q->params[q->nparams];
        if (decode_dup(ps[i].name, ps[i].name_len, URL_NO_CTL, &p->name)) return -1;
        if (decode_dup(ps[i].value ? ps[i].value : "", ps[i].value_len, URL_NO_CTL, &p->value)) {
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
static int split_path(char *p, char **segs, int max)
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

static char *join_segs(char **segs, int n)
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
static bool rename_source_names_account(const g2req *q)
{
    const char *src = hdr_ne(q, "x-ms-rename-source");
    if (!src) return false;
    const char *qm = strchr(src, '?');
    char *dec = NULL;
    if (decode_dup(src, qm ? (size_t)(qm - src) : strlen(src), URL_NO_CTL, &dec)) return false;
    char *segs[G2_MAX_SEGS];
    int n = split_path(dec, segs, G2_MAX_SEGS);
    bool yes = n >= 1 && strcmp(segs[0], q->g->key.account) == 0;
    free(dec);
    return yes;
}

static void route_account(g2req *q)
{
    if (strcmp(q->method, "GET") == 0 && param(q, "resource") && strcmp(param(q, "resource"), "account") == 0) {
        q->op = OP_LIST_FS;
        q->label = "list-filesystems";
        return;
    }
    if (strcmp(q->method, "GET") == 0 && param(q, "comp") && strcmp(param(q, "comp"), "list") == 0) {
        q->op = OP_LIST_FS;
        q->xml = true;
        q->label = "list-filesystems";
        return;
    }
    perr(q, 400, "InvalidQueryParameterValue", MSG_BADQ);
}

static void route_filesystem(g2req *q, bool blob)
{
    const char *m = q->method;
    q->xml = blob;
    if (blob && param(q, "comp")) {
        q->label = "filesystem-properties";
        perr(q, 400, "InvalidQueryParameterValue", MSG_BADQ);
        return;
    }
    if (strcmp(m, "PUT") == 0) {
        q->op = OP_FS_CREATE;
        q->label = "filesystem-create";
    } else if (strcmp(m, "HEAD") == 0 || (blob && strcmp(m, "GET") == 0)) {
        q->op = OP_FS_PROPS;
        q->label = "filesystem-properties";
    } else if (!blob && strcmp(m, "GET") == 0) {
        q->op = OP_LIST_PATHS;
        q->label = "list-paths";
    } else if (!blob && strcmp(m, "PATCH") == 0) {
        q->op = OP_FS_SETPROPS;
        q->label = "filesystem-properties";
    } else if (strcmp(m, "DELETE") == 0) {
        q->op = OP_FS_DELETE;
        q->label = "filesystem-delete";
    } else {
        perr(q, 405, "UnsupportedHttpVerb", MSG_VERB);
    }
}

static void route_path(g2req *q)
{
    const char *m = q->method;
    const char *action = param(q, "action");
    if (strcmp(m, "PUT") == 0) {
        const char *res = param(q, "resource"), *comp = param(q, "comp");
        if (res && (strcmp(res, "file") == 0 || strcmp(res, "directory") == 0)) {
            q->op = OP_CREATE;
            q->label = res[0] == 'f' ? "create-file" : "create-directory";
        } else if (res) {
            q->label = "create-file";
            perr(q, 400, "InvalidQueryParameterValue", MSG_BADQ);
        } else if (comp && strcmp(comp, "expiry") == 0) {
            q->op = OP_EXPIRY;
            q->label = "set-expiry";
        } else if (comp && strcmp(comp, "lease") == 0) {
            /* Blob-shaped lease (the SDKs' lease clients): same actions, XML errors. */
            q->op = OP_LEASE;
            q->label = "lease";
            q->xml = true;
            if (!hdr_ne(q, "x-ms-lease-action")) perr(q, 400, "MissingRequiredHeader", MSG_NOHDR);
        } else if (hdr(q, "x-ms-rename-source")) {
            q->op = OP_RENAME;
            q->label = "rename";
        } else {
            q->label = "create-file";
            perr(q, 400, "MissingRequiredQueryParameter", MSG_NOQ);
        }
    } else if (strcmp(m, "PATCH") == 0) {
        static const struct {
            const char *action;
            g2_op op;
            const char *label;
        } acts[] = {
            {"append", OP_APPEND, "append"},
            {"flush", OP_FLUSH, "flush"},
            {"setProperties", OP_SETPROPS, "set-properties"},
            {"setAccessControl", OP_SETACL, "set-acl"},
            {"setAccessControlRecursive", OP_SETACL_REC, "set-acl-recursive"},
        };
        q->label = "update";
        for (size_t i = 0; action && i < sizeof acts / sizeof acts[0]; i++) {
            if (strcasecmp(action, acts[i].action) == 0) {
                q->op = acts[i].op;
                q->label = acts[i].label;
            }
        }
        if (q->op == OP_INVALID)
            perr(q, 400, action ? "InvalidQueryParameterValue" : "MissingRequiredQueryParameter",
                 action ? MSG_BADQ : MSG_NOQ);
    } else if (strcmp(m, "GET") == 0) {
        q->op = OP_READ;
        q->label = "read";
    } else if (strcmp(m, "HEAD") == 0) {
        if (!action) {
            q->op = OP_GETPROPS;
            q->label = "get-properties";
        } else if (strcasecmp(action, "getStatus") == 0) {
            q->op = OP_GETSTATUS;
            q->label = "get-status";
        } else if (strcasecmp(action, "getAccessControl") == 0) {
            q->op = OP_GETACL;
            q->label = "get-acl";
        } else if (strcasecmp(action, "checkAccess") == 0) {
            q->op = OP_CHECKACCESS;
            q->label = "check-access";
        } else {
            q->label = "get-properties";
            perr(q, 400, "InvalidQueryParameterValue", MSG_BADQ);
        }
    } else if (strcmp(m, "DELETE") == 0) {
        q->op = OP_DELETE;
        q->label = "delete";
    } else if (strcmp(m, "POST") == 0) {
        q->op = OP_LEASE;
        q->label = "lease";
        if (!hdr_ne(q, "x-ms-lease-action")) perr(q, 400, "MissingRequiredHeader", MSG_NOHDR);
    } else {
        perr(q, 405, "UnsupportedHttpVerb", MSG_VERB);
    }
}

static void classify(g2req *q)
{
    emu_gen2 *g = q->g;
    q->method = emu_req_method(q->r);
    const char *ovr = hdr_ne(q, "X-HTTP-Method-Override");
    if (ovr && (strcmp(q->method, "PUT") == 0 || strcmp(q->method, "POST") == 0) &&
        (strcmp(ovr, "PATCH") == 0 || strcmp(ovr, "DELETE") == 0 || strcmp(ovr, "PUT") == 0))
        q->method = ovr;
    q->head = strcmp(q->method, "HEAD") == 0;
    q->label = "invalid";
    if (parse_query(q)) {
        perr(q, 400, "InvalidQueryParameterValue", MSG_BADQ);
        return;
    }
    const char *raw = emu_req_path(q->r);
    char *dec = NULL;
    if (decode_dup(raw, strlen(raw), URL_NO_CTL, &dec)) {
        perr(q, 400, "InvalidUri", MSG_BADURI);
        return;
    }
    char *segs[G2_MAX_SEGS];
    int n = split_path(dec, segs, G2_MAX_SEGS);
    if (n < 0) {
        perr(q, 400, n == -EINVAL ? "InvalidUri" : "InvalidResourceName",
             n == -EINVAL ? MSG_BADURI : "The specified resource name length is not within the permissible limits.");
        goto out;
    }
    /* Token endpoints share the listener. */
    if (n == 4 && strcmp(segs[0], "metadata") == 0 && strcmp(segs[1], "identity") == 0 &&
        strcmp(segs[2], "oauth2") == 0 && strcmp(segs[3], "token") == 0) {
        q->op = OP_IMDS;
        q->label = "imds";
        q->aad = true;
        goto out;
    }
    if (strcmp(q->method, "POST") == 0 && !hdr(q, "x-ms-lease-action") &&
        ((n == 3 && strcmp(segs[1], "oauth2") == 0 && strcmp(segs[2], "token") == 0) ||
         (n == 4 && strcmp(segs[1], "oauth2") == 0 && strcmp(segs[2], "v2.0") == 0 && strcmp(segs[3], "token") == 0))) {
        q->op = OP_TOKEN;
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
            perr(q, 400, "InvalidUri", MSG_BADURI);
            goto out;
        }
    }
    if (n == first) {
        route_account(q);
        goto out;
    }
    q->fs = strdup(segs[first]);
    q->rel = join_segs(segs + first + 1, n - first - 1);
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
    const char *res = param(q, "resource"), *restype = param(q, "restype");
    if (n == first + 1 && res && strcmp(res, "filesystem") == 0)
        route_filesystem(q, false);
    else if (n == first + 1 && restype && strcmp(restype, "container") == 0)
        route_filesystem(q, true);
    else
        route_path(q);
    if (!fs_name_ok(q->fs)) perr(q, 400, "InvalidResourceName", "The specifed resource name contains invalid characters.");
out:
    free(dec);
}

/* ================================================================ conditions, leases, input checks */

static bool etag_list_matches(const char *list, const emu_node *n)
{
    char mine[24];
    fmt_etag(n, mine, false);
    size_t ml = strlen(mine);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ') len--;
        const char *v = p;
        if (len >= 2 && v[0] == 'W' && v[1] == '/') {
            v += 2;
            len -= 2;
        }
        if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
            v++;
            len -= 2;
        }
        if ((len == 1 && v[0] == '*') || (len == ml && strncasecmp(v, mine, ml) == 0)) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

/* Conditional headers (prefix "" or "x-ms-source-") against n (NULL = absent). Returns 0, 304 (reads:
 * not modified), 412, or 409 (If-None-Match: * and n exists). */
static int eval_conditions(const g2req *q, const emu_node *n, const char *prefix, bool read)
{
    char name[64];
    snprintf(name, sizeof name, "%sIf-Match", prefix);
    const char *im = hdr_ne(q, name);
    snprintf(name, sizeof name, "%sIf-None-Match", prefix);
    const char *inm = hdr_ne(q, name);
    snprintf(name, sizeof name, "%sIf-Modified-Since", prefix);
    const char *ims = hdr_ne(q, name);
    snprintf(name, sizeof name, "%sIf-Unmodified-Since", prefix);
    const char *ius = hdr_ne(q, name);
    if (im && (!n || !etag_list_matches(im, n))) return 412;
    if (inm && n) {
        if (strcmp(inm, "*") == 0) return read ? 304 : 409;
        if (etag_list_matches(inm, n)) return read ? 304 : 412;
    }
    int64_t t;
    if (ius && n && parse_rfc1123(ius, &t) == 0 && n->mtime_ms / 1000 > t) return 412;
    if (ims && n && parse_rfc1123(ims, &t) == 0 && n->mtime_ms / 1000 <= t) return read ? 304 : 412;
    return 0;
}

static const char *const MSG_COND = "The condition specified using HTTP conditional header(s) is not met.";

/* Answer a failed condition the usual way. Returns true when it answered. */
static bool cond_fail(g2req *q, const emu_node *n, int c)
{
    if (c == 0) return false;
    if (c == 304) {
        hdr_node_common(q, n);
        ans_empty(q, 304);
    } else if (c == 409) {
        emu_resp_header(q->r, "x-ms-existing-resource-type", n->type == EMU_DIR ? "directory" : "file");
        ans_err(q, 409, "PathAlreadyExists", "The specified path already exists.");
    } else {
        ans_err(q, 412, "ConditionNotMet", "%s", MSG_COND);
    }
    return true;
}

/* x-ms-lease-id on a write to n. Returns true when it answered (412). */
static bool lease_write_fail(g2req *q, const emu_node *n)
{
    const char *id = hdr_ne(q, "x-ms-lease-id");
    bool active = lease_active(n, emu_now_ms());
    if (active && !id) {
        ans_err(q, 412, "LeaseIdMissing",
                "There is currently a lease on the resource and no lease ID was specified in the request.");
        return true;
    }
    if (active && strcasecmp(id, n->lease_id) != 0) {
        ans_err(q, 412, "LeaseIdMismatch", "The lease ID specified did not match the lease ID for the resource.");
        return true;
    }
    if (!active && id) {
        ans_err(q, 412, "LeaseNotPresent", "There is currently no lease on the resource.");
        return true;
    }
    return false;
}

/* Lookups that answer 404 themselves. */
static emu_node *need_fs(g2req *q)
{
    char p[80];
    snprintf(p, sizeof p, "/%s", q->fs);
    emu_node *n = emu_store_lookup(q->g->s, p);
    if (!n || n->type != EMU_DIR) {
        if (q->xml)
            ans_err(q, 404, "ContainerNotFound", "The specified container does not exist.");
        else
            ans_err(q, 404, "FilesystemNotFound", "The specified filesystem does not exist.");
        return NULL;
    }
    return n;
}

static emu_node *need_path(g2req *q)
{
    if (!need_fs(q)) return NULL;
    emu_node *n = emu_store_lookup(q->g->s, q->spath);
    if (!n || is_expired(n, emu_now_ms())) {
        ans_err(q, 404, "PathNotFound", "The specified path does not exist.");
        return NULL;
    }
    return n;
}

static bool owner_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= EMU_MAX_PRINCIPAL) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == ',' || v[i] == ':') return false;
    return true;
}

/* x-ms-properties: "n1=base64,n2=base64". */
static bool properties_ok(const char *v)
{
    if (!*v) return true;
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p) return false;
        for (const char *c = p; c < eq; c++)
            if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.') return false;
        const char *val = eq + 1;
        size_t vl = len - (size_t)(val - p);
        if (vl > 0) {
            unsigned char *buf = malloc(vl);
            long d = buf ? b64_decode(val, vl, buf, vl) : -1;
            free(buf);
            if (d < 0) return false;
        }
        if (!comma) return true;
        p = comma + 1;
    }
}

/* 4-digit octal umask ("0027"). */
static int parse_umask(const char *v, uint16_t *out)
{
    if (strlen(v) != 4) return -1;
    unsigned m = 0;
    for (int i = 0; i < 4; i++) {
        if (v[i] < '0' || v[i] > '7') return -1;
        m = m * 8 + (unsigned)(v[i] - '0');
    }
    if (m > 0777) return -1;
    *out = (uint16_t)m;
    return 0;
}

static int set_properties(emu_node *n, const char *v)
{
    char *copy = NULL;
    if (v && *v && !(copy = strdup(v))) return -ENOMEM;
    free(n->properties);
    n->properties = copy;
    return 0;
}

/* SAS: does the caller hold one of the letters? (Other callers always do.) */
static bool sas_allows(g2req *q, const char *letters)
{
    if (q->caller.kind != EMU_AUTH_SAS && q->caller.kind != EMU_AUTH_ACCOUNT_SAS) return true;
    for (const char *l = letters; *l; l++)
        if (strchr(q->caller.sp, *l)) return true;
    emu_auth_fail f;
    emu_auth_permits(&q->caller, letters[0], &f);
    ans_auth_fail(q, &f);
    return false;
}

static void save_or_fail(g2req *q, emu_node *n)
{
    if (emu_store_save(q->g->s, n)) ans_err(q, 500, "InternalError", "The metadata could not be written.");
}

/* ================================================================ filesystems */

static void op_fs_create(g2req *q)
{
    emu_store *s = q->g->s;
    const char *props = q->xml ? NULL : hdr(q, "x-ms-properties");
    if (props && !properties_ok(props)) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    if (!sas_allows(q, "cw")) return;
    emu_node *root = emu_store_root(s);
    if (emu_store_child(root, q->fs)) {
        if (q->xml)
            ans_err(q, 409, "ContainerAlreadyExists", "The specified container already exists.");
        else
            ans_err(q, 409, "FilesystemAlreadyExists", "The specified filesystem already exists.");
        return;
    }
    emu_node *tmpl = calloc(1, sizeof *tmpl);
    if (!tmpl) {
        ans_err(q, 500, "InternalError", "Out of memory.");
        return;
    }
    tmpl->acl.mode = 0750;
    snprintf(tmpl->owner, sizeof tmpl->owner, "%s", q->caller.principal);
    snprintf(tmpl->group, sizeof tmpl->group, "%s", q->caller.principal);
    emu_node *n = NULL;
    int rc = emu_store_create(s, root, q->fs, EMU_DIR, tmpl, &n);
    free(tmpl);
    if (rc) {
        ans_err(q, 500, "InternalError", "The filesystem could not be created.");
        return;
    }
    if (props && *props) {
        if (set_properties(n, props) || emu_store_save(s, n)) {
            ans_err(q, 500, "InternalError", "The filesystem properties could not be written.");
            return;
        }
    }
    hdr_node_common(q, n);
    if (!q->xml) emu_resp_header(q->r, "x-ms-namespace-enabled", "true");
    ans_empty(q, 201);
}

static void op_fs_props(g2req *q)
{
    if (!sas_allows(q, "r")) return;
    emu_node *n = need_fs(q);
    if (!n) return;
    hdr_node_common(q, n);
    emu_resp_header(q->r, "x-ms-namespace-enabled", "true");
    if (q->xml) {
        emu_resp_header(q->r, "x-ms-lease-status", "unlocked");
        emu_resp_header(q->r, "x-ms-lease-state", "available");
        emu_resp_header(q->r, "x-ms-has-immutability-policy", "false");
        emu_resp_header(q->r, "x-ms-has-legal-hold", "false");
        emu_resp_header(q->r, "x-ms-default-encryption-scope", "$account-encryption-key");
        emu_resp_header(q->r, "x-ms-deny-encryption-scope-override", "false");
    } else if (n->properties) {
        emu_resp_header(q->r, "x-ms-properties", n->properties);
    }
    ans_empty(q, 200);
}

static void op_fs_setprops(g2req *q)
{
    const char *props = hdr(q, "x-ms-properties");
    if (props && !properties_ok(props)) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    if (!sas_allows(q, "w")) return;
    emu_node *n = need_fs(q);
    if (!n) return;
    int c = eval_conditions(q, n, "", false);
    if (c) {
        ans_err(q, 412, "ConditionNotMet", "%s", MSG_COND);
        return;
    }
    if (set_properties(n, props)) {
        ans_err(q, 500, "InternalError", "Out of memory.");
        return;
    }
    n->mtime_ms = emu_now_ms();
    emu_store_bump_etag(q->g->s, n);
    save_or_fail(q, n);
    if (q->ans) return;
    hdr_node_common(q, n);
    ans_empty(q, 200);
}

static void op_fs_delete(g2req *q)
{
    if (!sas_allows(q, "d")) return;
    emu_store *s = q->g->s;
    emu_node *n;
    for (;;) {
        n = need_fs(q);
        if (!n) return;
        if (!subtree_busy(n)) break;
        emu_store_wait(s);
    }
    int c = eval_conditions(q, n, "", false);
    if (c) {
        ans_err(q, 412, "ConditionNotMet", "%s", MSG_COND);
        return;
    }
    if (emu_store_remove(s, n)) {
        ans_err(q, 500, "InternalError", "The filesystem could not be deleted.");
        return;
    }
    ans_empty(q, 202);
}

static bool fs_listed(const emu_node *n)
{
    return n->type == EMU_DIR && fs_name_ok(n->name);
}

static void op_list_fs(g2req *q)
{
    if (!sas_allows(q, "l")) return;
    emu_node *root = emu_store_root(q->g->s);
    const char *prefix = param(q, "prefix");
    const char *marker = param(q, q->xml ? "marker" : "continuation");
    const char *mr = param(q, q->xml ? "maxresults" : "maxResults");
    int64_t max = G2_LIST_MAX;
    if (mr && (parse_i64(mr, &max) || max < 1)) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        return;
    }
    if (max > G2_LIST_MAX) max = G2_LIST_MAX;
    if (!prefix) prefix = "";
    size_t i = marker && *marker ? emu_store_child_after(root, marker) : 0;
    /* A marker names the next entry to return, so step back onto it when it still exists. */
    if (marker && *marker && i > 0 && strcmp(root->children[i - 1]->name, marker) == 0) i--;
    dbuf *b = &q->body;
    dbuf_reset(b);
    int rc = 0;
    json_t *arr = q->xml ? NULL : json_array();
    if (q->xml) {
        rc = dbuf_printf(b, "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults "
                            "ServiceEndpoint=\"%s/%s/\">", emu_req_base_url(q->r), q->g->key.account);
        if (!rc && *prefix) {
            rc = dbuf_adds(b, "<Prefix>");
            xml_escape(b, prefix, &rc);
            if (!rc) rc = dbuf_adds(b, "</Prefix>");
        }
        if (!rc && mr) rc = dbuf_printf(b, "<MaxResults>%" PRId64 "</MaxResults>", max);
        if (!rc) rc = dbuf_adds(b, "<Containers>");
    }
    int64_t count = 0;
    const char *next = NULL;
    for (; i < root->nchildren && !rc; i++) {
        emu_node *c = root->children[i];
        if (!fs_listed(c) || strncmp(c->name, prefix, strlen(prefix)) != 0) continue;
        if (count == max) {
            next = c->name;
            break;
        }
        count++;
        char etag[24], lm[40];
        fmt_rfc1123(c->mtime_ms, lm);
        if (q->xml) {
            fmt_etag(c, etag, true);
            rc = dbuf_printf(b,
                             "<Container><Name>%s</Name><Properties><Last-Modified>%s</Last-Modified><Etag>%s</Etag>"
                             "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
                             "<DefaultEncryptionScope>$account-encryption-key</DefaultEncryptionScope>"
                             "<DenyEncryptionScopeOverride>false</DenyEncryptionScopeOverride>"
                             "<HasImmutabilityPolicy>false</HasImmutabilityPolicy><HasLegalHold>false</HasLegalHold>"
                             "</Properties>%s</Container>",
                             c->name, lm, etag,
                             param(q, "include") && strstr(param(q, "include"), "metadata") ? "<Metadata />" : "");
        } else {
            fmt_etag(c, etag, false);
            json_t *o = json_pack("{s:s,s:s,s:s}", "etag", etag, "lastModified", lm, "name", c->name);
            if (!o || json_array_append_new(arr, o)) rc = -ENOMEM;
        }
    }
    if (q->xml) {
        if (!rc) rc = next ? dbuf_printf(b, "</Containers><NextMarker>%s</NextMarker></EnumerationResults>", next)
                           : dbuf_adds(b, "</Containers><NextMarker /></EnumerationResults>");
        if (rc) {
            ans_err(q, 500, "InternalError", "The listing could not be built.");
            return;
        }
        q->ans = ANS_BODY;
        q->status = 200;
        q->ctype = "application/xml";
        return;
    }
    json_t *top = rc ? NULL : json_pack("{s:o}", "filesystems", arr);
    if (!top) json_decref(arr);
    char *text = top ? json_dumps(top, JSON_COMPACT) : NULL;
    json_decref(top);
    if (!text) {
        ans_err(q, 500, "InternalError", "The listing could not be built.");
        return;
    }
    if (next) emu_resp_header(q->r, "x-ms-continuation", next);
    ans_text(q, 200, "application/json;charset=utf-8", text);
    free(text);
}

/* ================================================================ create */

typedef struct create_in {
    bool dir;
    bool has_perm;
    uint16_t perm;
    uint16_t umask;
    acl_list *acl;          /* x-ms-acl, or NULL */
    const char *owner, *group, *props;
} create_in;

/* Validate the create headers; answers 400 and returns -1 on bad input. */
static int create_parse(g2req *q, create_in *in, acl_list *aclbuf)
{
    acl_err err;
    const char *perm = hdr_ne(q, "x-ms-permissions"), *umask = hdr_ne(q, "x-ms-umask");
    const char *acl = hdr_ne(q, "x-ms-acl");
    in->dir = strcmp(param(q, "resource"), "directory") == 0;
    in->umask = 0027;
    if (perm && acl) {
        ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid: x-ms-permissions and x-ms-acl "
                                        "cannot be used together.");
        return -1;
    }
    if (perm) {
        if (acl_parse_perm_any(perm, &in->perm, &err)) {
            ans_err(q, 400, "InvalidHeaderValue", "%s %s", MSG_BADHDR, err.message);
            return -1;
        }
        in->has_perm = true;
    }
    if (umask && parse_umask(umask, &in->umask)) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return -1;
    }
    if (acl) {
        if (acl_parse(acl, true, aclbuf, &err)) {
            ans_err(q, 400, "InvalidHeaderValue", "%s %s", MSG_BADHDR, err.message);
            return -1;
        }
        in->acl = aclbuf;
    }
    in->owner = hdr_ne(q, "x-ms-owner");
    in->group = hdr_ne(q, "x-ms-group");
    in->props = hdr(q, "x-ms-properties");
    if ((in->owner && !owner_ok(in->owner)) || (in->group && !owner_ok(in->group)) ||
        (in->props && !properties_ok(in->props))) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return -1;
    }
    return 0;
}

/* Metadata of a new node under a parent whose ACL state is pacl and group pgroup. */
static int create_meta(g2req *q, const create_in *in, const acl_node *pacl, const char *pgroup, bool dir, bool leaf,
                       emu_node *out)
{
    memset(out, 0, sizeof *out);
    uint16_t req = leaf && in->has_perm ? in->perm : (dir ? 0777 : 0666);
    acl_inherit(pacl, req, in->umask, dir, &out->acl);
    if (leaf && in->acl) {
        acl_err err;
        acl_remove_default(&out->acl);
        if (acl_set(&out->acl, in->acl, dir, &err)) {
            ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid. %s", err.message);
            return -1;
        }
    }
    snprintf(out->owner, sizeof out->owner, "%s", leaf && in->owner ? in->owner : q->caller.principal);
    snprintf(out->group, sizeof out->group, "%s", leaf && in->group ? in->group : pgroup);
    return 0;
}

typedef struct walk {
    emu_node *parent;       /* deepest existing ancestor */
    int missing_from;       /* index of the first missing component (== ncomp - 1 when only the leaf is new) */
    emu_node *node;         /* the target, when every component exists */
} walk;

/* Walk comps from fsn. Answers 409 PathConflict when a component is a file. */
static int walk_path(g2req *q, emu_node *fsn, char **comps, int ncomp, walk *w)
{
    int64_t now = emu_now_ms();
    emu_node *cur = fsn;
    w->node = ncomp == 0 ? fsn : NULL;
    w->missing_from = ncomp;
    for (int i = 0; i < ncomp; i++) {
        emu_node *c = emu_store_child(cur, comps[i]);
        if (c && is_expired(c, now)) c = NULL;
        if (!c) {
            w->parent = cur;
            w->missing_from = i;
            return 0;
        }
        if (i < ncomp - 1 && c->type != EMU_DIR) {
            ans_err(q, 409, "PathConflict",
                    "The specified path, or an element of the path, exists and its resource type is invalid for "
                    "this operation.");
            return -1;
        }
        if (i == ncomp - 1) w->node = c;
        cur = c;
    }
    w->parent = ncomp ? w->node->parent : NULL;
    return 0;
}

static void op_create(g2req *q)
{
    emu_gen2 *g = q->g;
    emu_store *s = g->s;
    acl_list *aclbuf = calloc(1, sizeof *aclbuf);
    emu_node *meta = calloc(2, sizeof *meta);
    char *relcopy = strdup(q->rel);
    char *comps[G2_MAX_SEGS];
    create_in in = {0};
    if (!aclbuf || !meta || !relcopy) {
        ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    if (create_parse(q, &in, aclbuf) || !sas_allows(q, "wc")) goto out;
    int ncomp = split_path(relcopy, comps, G2_MAX_SEGS);
    if (ncomp < 0) {
        ans_err(q, 400, "InvalidUri", "%s", MSG_BADURI);
        goto out;
    }
    for (;;) {
        emu_node *fsn = need_fs(q);
        walk w;
        if (!fsn || walk_path(q, fsn, comps, ncomp, &w)) goto out;
        emu_node *n = w.node;
        int c = eval_conditions(q, n, "", false);
        if (c == 0 && !n && hdr_ne(q, "If-Match")) c = 412;
        if (cond_fail(q, n, c)) goto out;
        if (n && (n->type == EMU_DIR) != in.dir) {
            emu_resp_header(q->r, "x-ms-existing-resource-type", n->type == EMU_DIR ? "directory" : "file");
            ans_err(q, 409, "PathConflict",
                    "The specified path, or an element of the path, exists and its resource type is invalid for "
                    "this operation.");
            goto out;
        }
        if (n && in.dir) {
            /* Unconditional create of an existing directory: succeeds and changes nothing. */
            hdr_node_common(q, n);
            ans_empty(q, 201);
            goto out;
        }
        if (n) {
            /* Overwrite: a new, empty file in place of the old one (same node id). */
            if (n == fsn || lease_write_fail(q, n)) {
                if (!q->ans) ans_err(q, 409, "PathConflict", "The specified path exists as a filesystem root.");
                goto out;
            }
            if (n->busy) {
                emu_store_wait(s);
                continue;
            }
            if (create_meta(q, &in, &n->parent->acl, n->parent->group, false, true, &meta[0])) goto out;
            if (emu_store_truncate_object(s, n, 0)) {
                ans_err(q, 500, "InternalError", "The file could not be truncated.");
                goto out;
            }
            n->acl = meta[0].acl;
            memcpy(n->owner, meta[0].owner, sizeof n->owner);
            memcpy(n->group, meta[0].group, sizeof n->group);
            n->length = n->visible_length = 0;
            n->nstaged = 0;
            n->expiry_ms = 0;
            n->ctime_ms = n->mtime_ms = n->atime_ms = emu_now_ms();
            if (set_properties(n, in.props)) {
                ans_err(q, 500, "InternalError", "Out of memory.");
                goto out;
            }
            emu_store_bump_etag(s, n);
            save_or_fail(q, n);
            if (q->ans) goto out;
            hdr_node_common(q, n);
            emu_resp_header(q->r, "x-ms-request-server-encrypted", "true");
            ans_empty(q, 201);
            goto out;
        }
        /* New: check the leaf's metadata first (an invalid x-ms-acl must leave nothing behind). */
        acl_node pacl = w.parent->acl;
        const char *pgroup = w.parent->group;
        for (int i = w.missing_from; i < ncomp - 1; i++) {
            if (create_meta(q, &in, &pacl, pgroup, true, false, &meta[1])) goto out;
            pacl = meta[1].acl;
        }
        if (create_meta(q, &in, &pacl, pgroup, in.dir, true, &meta[0])) goto out;
        emu_node *cur = w.parent;
        for (int i = w.missing_from; i < ncomp; i++) {
            bool leaf = i == ncomp - 1;
            emu_node *child = NULL;
            if (!leaf && create_meta(q, &in, &cur->acl, cur->group, true, false, &meta[1])) goto out;
            int rc = emu_store_create(s, cur, comps[i], leaf ? (in.dir ? EMU_DIR : EMU_FILE) : EMU_DIR,
                                      leaf ? &meta[0] : &meta[1], &child);
            if (rc) {
                if (rc == -ENAMETOOLONG)
                    ans_err(q, 400, "InvalidResourceName",
                            "The specified resource name length is not within the permissible limits.");
                else
                    ans_err(q, 500, "InternalError", "The path could not be created.");
                goto out;
            }
            cur = child;
        }
        if (in.props && *in.props) {
            if (set_properties(cur, in.props) || emu_store_save(s, cur)) {
                ans_err(q, 500, "InternalError", "The path properties could not be written.");
                goto out;
            }
        }
        hdr_node_common(q, cur);
        emu_resp_header(q->r, "x-ms-request-server-encrypted", "true");
        ans_empty(q, 201);
        goto out;
    }
out:
    free(aclbuf);
    free(meta);
    free(relcopy);
}

/* ================================================================ rename */

typedef struct rename_src {
    char *dec;              /* decoded source path (owns the segment strings) */
    char *segs[G2_MAX_SEGS];
    int nseg;
    char *sas;              /* raw query after '?', or NULL */
} rename_src;

static int rename_src_parse(const char *v, rename_src *rs)
{
    memset(rs, 0, sizeof *rs);
    const char *qm = strchr(v, '?');
    if (decode_dup(v, qm ? (size_t)(qm - v) : strlen(v), URL_NO_CTL, &rs->dec)) return -1;
    if (qm && qm[1] && !(rs->sas = strdup(qm + 1))) return -1;
    rs->nseg = split_path(rs->dec, rs->segs, G2_MAX_SEGS);
    return rs->nseg < 1 ? -1 : 0;
}

/* Does the caller's SAS (verified for the destination) also cover fs/path? */
static bool sas_covers(const g2req *q, const char *fs, const char *path)
{
    const emu_auth_caller *c = &q->caller;
    if (c->kind == EMU_AUTH_ACCOUNT_SAS) return true;
    if (c->kind != EMU_AUTH_SAS) return true;
    if (strcmp(fs, q->fs) != 0) return false;
    if (strcmp(c->sr, "c") == 0) return true;
    if (strcmp(c->sr, "d") != 0) return false;
    /* Same first sdd segments. */
    const char *a = q->rel, *b = path;
    for (int i = 0; i < c->sdd; i++) {
        size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
        if (la == 0 || la != lb || strncmp(a, b, la) != 0) return false;
        a += la + (a[la] == '/');
        b += lb + (b[lb] == '/');
    }
    return true;
}

static void op_rename(g2req *q)
{
    emu_store *s = q->g->s;
    rename_src rs;
    char *relcopy = strdup(q->rel);
    char *comps[G2_MAX_SEGS];
    char *srcpath = NULL, *srcrel = NULL;
    const char *mode = param(q, "mode");
    if (mode && strcmp(mode, "legacy") != 0 && strcmp(mode, "posix") != 0) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        memset(&rs, 0, sizeof rs);
        goto out;
    }
    if (rename_src_parse(hdr(q, "x-ms-rename-source"), &rs) || !relcopy) {
        ans_err(q, 400, "InvalidSourceUri", "The source URI is invalid.");
        goto out;
    }
    int ncomp = split_path(relcopy, comps, G2_MAX_SEGS);
    if (ncomp <= 0) {
        ans_err(q, 400, "InvalidDestinationPath", "The specified destination path is not valid.");
        goto out;
    }
    if (!sas_allows(q, "m")) goto out;
    /* With or without the account segment: strip it when it names the account and what follows is a
     * filesystem (a filesystem may be called like the account). */
    int first = 0;
    if (rs.nseg >= 2 && strcmp(rs.segs[0], q->g->key.account) == 0) {
        char p[300];
        snprintf(p, sizeof p, "/%s", rs.segs[1]);
        snprintf(p + 150, 150, "/%s", rs.segs[0]);
        if (emu_store_lookup(s, p) || !emu_store_lookup(s, p + 150)) first = 1;
    }
    const char *srcfs = rs.segs[first];
    srcrel = join_segs(rs.segs + first + 1, rs.nseg - first - 1);
    dbuf sp;
    dbuf_init(&sp, G2_MAX_PATH + 80);
    if (!srcrel || dbuf_printf(&sp, "/%s%s%s", srcfs, *srcrel ? "/" : "", srcrel)) {
        dbuf_free(&sp);
        ans_err(q, 400, "InvalidSourceUri", "The source URI is invalid.");
        goto out;
    }
    srcpath = dbuf_take(&sp);
    if (q->caller.kind == EMU_AUTH_SAS || q->caller.kind == EMU_AUTH_ACCOUNT_SAS) {
        if (rs.sas) {
            emu_auth_caller sc;
            emu_auth_fail *f = malloc(sizeof *f);
            if (!f || emu_auth_check_sas(q->g->auth, rs.sas, srcfs, srcrel, &sc, f) || emu_auth_permits(&sc, 'm', f)) {
                if (f) ans_auth_fail(q, f);
                else ans_err(q, 500, "InternalError", "Out of memory.");
                free(f);
                goto out;
            }
            free(f);
        } else if (!sas_covers(q, srcfs, srcrel)) {
            ans_err(q, 403, "AuthorizationFailure", "This request is not authorized to perform this operation.");
            goto out;
        }
    }
    for (;;) {
        emu_node *dfs = need_fs(q);
        if (!dfs) goto out;
        emu_node *src = emu_store_lookup(s, srcpath);
        if (!src || !src->parent || is_expired(src, emu_now_ms())) {
            ans_err(q, 404, "SourcePathNotFound", "The source path for a rename operation does not exist.");
            goto out;
        }
        if (src->parent == emu_store_root(s)) {
            ans_err(q, 400, "InvalidSourceUri", "The source URI is invalid: a filesystem cannot be renamed.");
            goto out;
        }
        int c = eval_conditions(q, src, "x-ms-source-", false);
        if (c) {
            ans_err(q, 412, "SourceConditionNotMet", "The source condition specified using HTTP conditional "
                                                     "header(s) is not met.");
            goto out;
        }
        const char *slease = hdr_ne(q, "x-ms-source-lease-id");
        bool sactive = lease_active(src, emu_now_ms());
        if (sactive && !slease) {
            ans_err(q, 412, "LeaseIdMissing",
                    "There is currently a lease on the resource and no lease ID was specified in the request.");
            goto out;
        }
        if (slease && (!sactive || strcasecmp(slease, src->lease_id) != 0)) {
            ans_err(q, 412, sactive ? "LeaseIdMismatch" : "LeaseNotPresent",
                    sactive ? "The lease ID specified did not match the lease ID for the resource."
                            : "There is currently no lease on the resource.");
            goto out;
        }
        walk w;
        if (walk_path(q, dfs, comps, ncomp, &w)) goto out;
        if (w.missing_from < ncomp - 1) {
            ans_err(q, 404, "RenameDestinationParentPathNotFound",
                    "The parent directory of the destination path does not exist.");
            goto out;
        }
        emu_node *dparent = w.parent, *dst = w.node;
        c = eval_conditions(q, dst, "", false);
        if (c == 0 && !dst && hdr_ne(q, "If-Match")) c = 412;
        if (cond_fail(q, dst, c)) goto out;
        if (dst == src || emu_store_is_ancestor(src, dparent)) {
            ans_err(q, 409, "InvalidRenameSourcePath",
                    "The source path for a rename operation is invalid: the destination is the source or inside it.");
            goto out;
        }
        if (dst) {
            if (dst->type != src->type) {
                ans_err(q, 409, "InvalidSourceOrDestinationResourceType",
                        "The source and destination resource type must be identical.");
                goto out;
            }
            if (dst->type == EMU_DIR && dst->nchildren > 0) {
                ans_err(q, 409, "DirectoryNotEmpty", "The recursive query parameter value must be true to delete "
                                                     "a non-empty directory.");
                goto out;
            }
            /* An existing lease on the destination is broken, unless the caller names one. */
            if (hdr_ne(q, "x-ms-lease-id") && lease_write_fail(q, dst)) goto out;
            if (subtree_busy(dst)) {
                emu_store_wait(s);
                continue;
            }
            if (emu_store_remove(s, dst)) {
                ans_err(q, 500, "InternalError", "The destination could not be replaced.");
                goto out;
            }
        }
        int rc = emu_store_move(s, src, dparent, comps[ncomp - 1]);
        if (rc) {
            ans_err(q, rc == -EINVAL ? 409 : 500, rc == -EINVAL ? "InvalidRenameSourcePath" : "InternalError",
                    "The rename could not be completed.");
            goto out;
        }
        emu_store_broadcast(s);
        ans_empty(q, 201);
        goto out;
    }
out:
    free(relcopy);
    free(srcpath);
    free(srcrel);
    free(rs.dec);
    free(rs.sas);
}

/* ================================================================ append / flush (§2.4) */

static const char *const MSG_FLUSHPOS =
    "The uploaded data is not contiguous or the position query parameter value is not equal to the length of the "
    "file after appending the uploaded data.";

/* Record [off, off+len) as staged, merging overlapping and adjacent ranges (kept sorted). */
static int staged_add(emu_node *n, int64_t off, int64_t len)
{
    emu_range tmp[EMU_MAX_STAGED + 1];
    int k = 0;
    bool placed = false;
    int64_t s0 = off, e0 = off + len;
    for (int i = 0; i < n->nstaged; i++) {
        int64_t rs = n->staged[i].off, re = rs + n->staged[i].len;
        if (re < s0) {
            tmp[k++] = n->staged[i];
        } else if (rs > e0) {
            if (!placed) {
                tmp[k++] = (emu_range){s0, e0 - s0};
                placed = true;
            }
            tmp[k++] = n->staged[i];
        } else {
            if (rs < s0) s0 = rs;
            if (re > e0) e0 = re;
        }
    }
    if (!placed) tmp[k++] = (emu_range){s0, e0 - s0};
    if (k > EMU_MAX_STAGED) return -E2BIG;
    memcpy(n->staged, tmp, (size_t)k * sizeof tmp[0]);
    n->nstaged = k;
    return 0;
}

static bool staged_covers(const emu_node *n, int64_t from, int64_t to)
{
    for (int i = 0; i < n->nstaged; i++)
        if (n->staged[i].off <= from && n->staged[i].off + n->staged[i].len >= to) return true;
    return from >= to;
}

/* Commit n's staged data up to p (lock held, no append in flight except the caller's own). */
static void flush_commit(g2req *q, emu_node *n, int64_t p, bool retain)
{
    emu_store *s = q->g->s;
    if (p < n->length || (p > n->length && !staged_covers(n, n->length, p))) {
        ans_err(q, 400, "InvalidFlushPosition", "%s", MSG_FLUSHPOS);
        return;
    }
    bool changed = p > n->length;
    int had = n->nstaged, k = 0;
    for (int i = 0; retain && i < n->nstaged; i++) {
        int64_t rs = n->staged[i].off, re = rs + n->staged[i].len;
        if (re <= p) continue;
        if (rs < p) rs = p;
        n->staged[k++] = (emu_range){rs, re - rs};
    }
    n->nstaged = k;
    n->length = n->visible_length = p;
    if (changed) {
        n->mtime_ms = emu_now_ms();
        emu_store_bump_etag(s, n);
    }
    if (k == 0 && had > 0 && emu_store_truncate_object(s, n, p)) {
        ans_err(q, 500, "InternalError", "The file could not be trimmed.");
        return;
    }
    if (changed || had != k) {
        save_or_fail(q, n);
        if (q->ans) return;
    }
    hdr_node_common(q, n);
    emu_resp_header(q->r, "x-ms-request-server-encrypted", "true");
    ans_empty(q, 200);
}

static int flush_params(g2req *q, int64_t *pos, bool *retain)
{
    const char *p = param(q, "position");
    int r = parse_bool(param(q, "retainUncommittedData"), 0), c = parse_bool(param(q, "close"), 0);
    if (!p) {
        ans_err(q, 400, "MissingRequiredQueryParameter", "%s", MSG_NOQ);
        return -1;
    }
    if (parse_i64(p, pos) || *pos < 0 || r < 0 || c < 0) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        return -1;
    }
    *retain = r == 1;
    return 0;
}

static void op_flush(g2req *q)
{
    int64_t pos;
    bool retain;
    if (emu_req_has_body(q->r)) {
        ans_err(q, 400, "ContentLengthMustBeZero", "The Content-Length request header must be zero.");
        return;
    }
    if (flush_params(q, &pos, &retain) || !sas_allows(q, "w")) return;
    for (;;) {
        emu_node *n = need_path(q);
        if (!n) return;
        if (n->type != EMU_FILE) {
            ans_err(q, 400, "InvalidFlushOperation", "The resource is a directory; only files can be flushed.");
            return;
        }
        if (lease_write_fail(q, n)) return;
        int c = eval_conditions(q, n, "", false);
        if (c) {
            ans_err(q, 412, "ConditionNotMet", "%s", MSG_COND);
            return;
        }
        if (n->busy) {
            emu_store_wait(q->g->s);
            continue;
        }
        flush_commit(q, n, pos, retain);
        return;
    }
}

/* Append, step 1 (begin, lock held): validate, pin the file, open its object. */
static void append_prepare(g2req *q)
{
    emu_gen2 *g = q->g;
    const char *p = param(q, "position");
    int fl = parse_bool(param(q, "flush"), 0);
    if (!p) {
        ans_err(q, 400, "MissingRequiredQueryParameter", "%s", MSG_NOQ);
        return;
    }
    if (parse_i64(p, &q->pos) || q->pos < 0 || fl < 0 || parse_bool(param(q, "close"), 0) < 0 ||
        parse_bool(param(q, "retainUncommittedData"), 0) < 0) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        return;
    }
    q->declared = emu_req_content_length(q->r);
    uint64_t max = g->max_body;
    if (q->declared > 0 && (uint64_t)q->declared > max) {
        ans_err(q, 413, "RequestBodyTooLarge",
                "The request body is too large and exceeds the maximum permissible limit.");
        return;
    }
    const char *md5 = hdr_ne(q, "Content-MD5");
    if (md5) {
        unsigned char tmp[24];
        if (b64_decode(md5, strlen(md5), tmp, sizeof tmp) != 16) {
            ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
            return;
        }
        memcpy(q->want_md5, tmp, 16);
        q->has_md5 = true;
    }
    if (!sas_allows(q, "w")) return;
    emu_node *n = need_path(q);
    if (!n) return;
    if (n->type != EMU_FILE) {
        ans_err(q, 409, "InvalidAppendOperation", "The resource is a directory; data can only be appended to files.");
        return;
    }
    if (lease_write_fail(q, n)) return;
    if (q->pos < n->length) {
        ans_err(q, 400, "InvalidFlushPosition", "%s", MSG_FLUSHPOS);
        return;
    }
    int fd = emu_store_open_object(g->s, n, O_RDWR);
    if (fd < 0) {
        ans_err(q, 500, "InternalError", "The file could not be opened.");
        return;
    }
    if (q->has_md5) {
        q->md5 = EVP_MD_CTX_new();
        if (!q->md5 || EVP_DigestInit_ex(q->md5, EVP_md5(), NULL) != 1) {
            close(fd);
            ans_err(q, 500, "InternalError", "Out of memory.");
            return;
        }
    }
    q->wfd = fd;
    q->node = n;
    n->busy++;
    q->busy_held = true;
}

/* Append, step 2 (no lock): write the bytes where they belong in the object. */
static void append_body(g2req *q, const char *data, size_t len)
{
    if (q->io_err || q->too_big || emu_req_answered(q->r)) return;
    if (q->got + len > q->g->max_body) {
        q->too_big = true;
        ans_err(q, 413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.");
        ans_send(q);
        return;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(q->wfd, data + off, len - off, (off_t)(q->pos + (int64_t)(q->got + off)));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            q->io_err = w < 0 ? errno : EIO;
            return;
        }
        off += (size_t)w;
    }
    if (q->md5) EVP_DigestUpdate(q->md5, data, len);
    q->got += len;
}

static void unpin(g2req *q)
{
    if (!q->busy_held) return;
    q->node->busy--;
    q->busy_held = false;
    emu_store_broadcast(q->g->s);
}

/* Append, step 3 (end): check, then record the staged range (and flush when asked). */
static void append_end(g2req *q)
{
    emu_store *s = q->g->s;
    unsigned char got_md5[EVP_MAX_MD_SIZE];
    unsigned md5len = 0;
    if (q->md5) EVP_DigestFinal_ex(q->md5, got_md5, &md5len);
    emu_store_lock(s);
    emu_node *n = q->node;
    if (q->io_err) {
        ans_err(q, 500, "InternalError", "The data could not be written.");
    } else if (q->has_md5 && (md5len != 16 || memcmp(got_md5, q->want_md5, 16) != 0)) {
        ans_err(q, 400, "Md5Mismatch",
                "The MD5 value specified in the request did not match with the MD5 value calculated by the server.");
    } else if (q->got > 0 && staged_add(n, q->pos, (int64_t)q->got)) {
        ans_err(q, 409, "InvalidAppendOperation", "Too many non-contiguous uncommitted ranges; flush first.");
    } else {
        if (q->got > 0) save_or_fail(q, n);
        if (!q->ans && parse_bool(param(q, "flush"), 0) == 1) {
            while (n->busy > 1) emu_store_wait(s); /* our own pin keeps n alive */
            bool retain = parse_bool(param(q, "retainUncommittedData"), 0) == 1;
            if (!lease_write_fail(q, n)) flush_commit(q, n, q->pos + (int64_t)q->got, retain);
            if (q->ans == ANS_EMPTY && q->status == 200) q->status = 202;
        } else if (!q->ans) {
            emu_resp_header(q->r, "x-ms-request-server-encrypted", "true");
            ans_empty(q, 202);
        }
        if (q->md5 && q->status == 202) {
            char b[32];
            b64_encode(got_md5, 16, b);
            emu_resp_header(q->r, "Content-MD5", b);
        }
    }
    unpin(q);
    emu_store_unlock(s);
    ans_send(q);
}

/* ================================================================ read and properties */

static void hdr_path_props(g2req *q, const emu_node *n, bool user_props, bool acl)
{
    char perm[12], ct[40];
    int64_t now = emu_now_ms();
    hdr_node_common(q, n);
    emu_resp_header(q->r, "x-ms-resource-type", n->type == EMU_DIR ? "directory" : "file");
    emu_resp_header(q->r, "x-ms-owner", n->owner);
    emu_resp_header(q->r, "x-ms-group", n->group);
    acl_mode_symbolic(n->acl.mode, acl_has_extended(&n->acl), perm);
    emu_resp_header(q->r, "x-ms-permissions", perm);
    fmt_rfc1123(n->ctime_ms, ct);
    emu_resp_header(q->r, "x-ms-creation-time", ct);
    if (n->expiry_ms) {
        fmt_rfc1123(n->expiry_ms, ct);
        emu_resp_header(q->r, "x-ms-expiry-time", ct);
    }
    const char *ls = lease_state(n, now);
    emu_resp_header(q->r, "x-ms-lease-state", ls);
    emu_resp_header(q->r, "x-ms-lease-status", lease_active(n, now) ? "locked" : "unlocked");
    if (strcmp(ls, "leased") == 0) emu_resp_header(q->r, "x-ms-lease-duration", n->lease_expiry_ms ? "fixed" : "infinite");
    emu_resp_header(q->r, "x-ms-server-encrypted", "true");
    if (n->type == EMU_FILE) {
        emu_resp_header(q->r, "x-ms-blob-type", "BlockBlob");
        emu_resp_header(q->r, "Accept-Ranges", "bytes");
    } else {
        emu_resp_header(q->r, "x-ms-meta-hdi_isfolder", "true");
    }
    if (user_props && n->properties) emu_resp_header(q->r, "x-ms-properties", n->properties);
    if (acl) {
        acl_list full;
        acl_full(&n->acl, &full);
        dbuf b;
        dbuf_init(&b, 64 * 1024);
        if (acl_format(&full, &b) == 0) emu_resp_header(q->r, "x-ms-acl", b.data ? b.data : "");
        dbuf_free(&b);
    }
}

/* Range: "bytes=a-b" or "bytes=a-". Returns 1 with the range, 0 when absent or unusable (the
 * whole resource is served, as Blob storage does for syntax it ignores). */
static int parse_range(const char *v, int64_t *a, int64_t *b)
{
    if (!v || strncmp(v, "bytes=", 6) != 0) return 0;
    const char *p = v + 6;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (errno || end == p || *end != '-' || x < 0) return 0;
    *a = x;
    p = end + 1;
    if (!*p) {
        *b = INT64_MAX;
        return 1;
    }
    long long y = strtoll(p, &end, 10);
    if (errno || end == p || *end || y < x) return 0;
    *b = y;
    return 1;
}

static void op_read(g2req *q, bool head)
{
    if (!sas_allows(q, "r")) return;
    emu_node *n = need_path(q);
    if (!n) return;
    const char *lid = hdr_ne(q, "x-ms-lease-id");
    int64_t now = emu_now_ms();
    if (lid && (!lease_active(n, now) || strcasecmp(lid, n->lease_id) != 0)) {
        bool active = lease_active(n, now);
        ans_err(q, 412, active ? "LeaseIdMismatch" : "LeaseNotPresent", "%s",
                active ? "The lease ID specified did not match the lease ID for the resource."
                       : "There is currently no lease on the resource.");
        return;
    }
    if (cond_fail(q, n, eval_conditions(q, n, "", true))) return;
    int64_t len = n->type == EMU_FILE ? n->length : 0;
    if (head) {
        hdr_path_props(q, n, true, false);
        q->ans = ANS_HEAD;
        q->status = 200;
        q->head_len = (uint64_t)len;
        return;
    }
    int64_t a = 0, b = 0;
    const char *rh = hdr_ne(q, "x-ms-range");
    int ranged = parse_range(rh ? rh : hdr_ne(q, "Range"), &a, &b);
    if (ranged && a >= len) {
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%" PRId64, len);
        emu_resp_header(q->r, "Content-Range", cr);
        ans_err(q, 416, "InvalidRange", "The range specified is invalid for the current size of the resource.");
        return;
    }
    if (ranged && b >= len) b = len - 1;
    int64_t off = ranged ? a : 0, cnt = ranged ? b - a + 1 : len;
    hdr_path_props(q, n, true, false);
    if (ranged) {
        char cr[80];
        snprintf(cr, sizeof cr, "bytes %" PRId64 "-%" PRId64 "/%" PRId64, a, b, len);
        emu_resp_header(q->r, "Content-Range", cr);
    }
    if (cnt == 0) {
        ans_text(q, ranged ? 206 : 200, "application/octet-stream", "");
        return;
    }
    int fd = emu_store_open_object(q->g->s, n, O_RDONLY);
    if (fd < 0) {
        ans_err(q, 500, "InternalError", "The file could not be opened.");
        return;
    }
    q->ans = ANS_FD;
    q->status = ranged ? 206 : 200;
    q->ctype = "application/octet-stream";
    q->fd = fd;
    q->fd_off = (uint64_t)off;
    q->fd_len = (uint64_t)cnt;
}

static void op_head_action(g2req *q)
{
    if (!sas_allows(q, q->op == OP_GETPROPS ? "r" : "er")) return;
    emu_node *n = need_path(q);
    if (!n) return;
    if (q->op == OP_CHECKACCESS) {
        const char *fa = param(q, "fsAction");
        if (!fa || strlen(fa) != 3 || !strchr("r-", fa[0]) || !strchr("w-", fa[1]) || !strchr("x-", fa[2])) {
            ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
            return;
        }
        ans_empty(q, 200);
        return;
    }
    if (parse_bool(param(q, "upn"), 0) < 0) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        return;
    }
    if (cond_fail(q, n, eval_conditions(q, n, "", true))) return;
    hdr_path_props(q, n, false, q->op == OP_GETACL);
    q->ans = ANS_HEAD;
    q->status = 200;
    q->head_len = q->op == OP_GETSTATUS && n->type == EMU_FILE ? (uint64_t)n->length : 0;
}

/* ================================================================ properties and access control */

static void op_setprops(g2req *q)
{
    const char *props = hdr(q, "x-ms-properties");
    if (props && !properties_ok(props)) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    if (!sas_allows(q, "w")) return;
    emu_node *n = need_path(q);
    if (!n || lease_write_fail(q, n)) return;
    int c = eval_conditions(q, n, "", false);
    if (cond_fail(q, n, c == 409 ? 412 : c)) return;
    if (set_properties(n, props)) {
        ans_err(q, 500, "InternalError", "Out of memory.");
        return;
    }
    emu_store_bump_etag(q->g->s, n);
    save_or_fail(q, n);
    if (q->ans) return;
    hdr_node_common(q, n);
    ans_empty(q, 200);
}

/* Gen2 x-ms-acl replaces the whole ACL, default entries included (ABFS keeps defaults client-side
 * for exactly this reason, protocols.md §2.7). */
static int acl_replace(acl_node *a, const acl_list *spec, bool is_dir, acl_err *err)
{
    acl_node tmp = *a;
    acl_remove_default(&tmp);
    if (acl_set(&tmp, spec, is_dir, err)) return -1;
    *a = tmp;
    return 0;
}

static void op_setacl(g2req *q)
{
    const char *owner = hdr_ne(q, "x-ms-owner"), *group = hdr_ne(q, "x-ms-group");
    const char *perm = hdr_ne(q, "x-ms-permissions"), *acl = hdr_ne(q, "x-ms-acl");
    acl_err err;
    uint16_t mode = 0;
    acl_list *spec = NULL;
    if (!owner && !group && !perm && !acl) {
        ans_err(q, 400, "MissingRequiredHeader", "%s", MSG_NOHDR);
        return;
    }
    if (perm && acl) {
        ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid: x-ms-permissions and x-ms-acl "
                                        "cannot be used together.");
        return;
    }
    if ((owner && !owner_ok(owner)) || (group && !owner_ok(group))) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    if (perm && acl_parse_perm_any(perm, &mode, &err)) {
        ans_err(q, 400, "InvalidHeaderValue", "%s %s", MSG_BADHDR, err.message);
        return;
    }
    if (acl) {
        spec = malloc(sizeof *spec);
        if (!spec) {
            ans_err(q, 500, "InternalError", "Out of memory.");
            return;
        }
        if (acl_parse(acl, true, spec, &err)) {
            ans_err(q, 400, "InvalidHeaderValue", "%s %s", MSG_BADHDR, err.message);
            goto out;
        }
    }
    if (!sas_allows(q, owner || group ? "o" : "p")) goto out;
    if ((owner || group) && (perm || acl) && !sas_allows(q, "p")) goto out;
    emu_node *n = need_path(q);
    if (!n || lease_write_fail(q, n)) goto out;
    int c = eval_conditions(q, n, "", false);
    if (cond_fail(q, n, c == 409 ? 412 : c)) goto out;
    acl_node next = n->acl;
    if (spec && acl_replace(&next, spec, n->type == EMU_DIR, &err)) {
        ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid. %s", err.message);
        goto out;
    }
    if (perm) acl_chmod(&next, mode);
    n->acl = next;
    if (owner) snprintf(n->owner, sizeof n->owner, "%s", owner);
    if (group) snprintf(n->group, sizeof n->group, "%s", group);
    emu_store_bump_etag(q->g->s, n);
    save_or_fail(q, n);
    if (q->ans) goto out;
    hdr_node_common(q, n);
    ans_empty(q, 200);
out:
    free(spec);
}

typedef struct aclrec {
    g2req *q;
    int mode;               /* 0 set, 1 modify, 2 remove */
    const acl_list *spec, *fspec; /* fspec: spec without default entries (for files) */
    int64_t skip, budget;   /* entries to skip (continuation), entries to process */
    int64_t seen, resume;   /* nodes visited; where the next call starts */
    int64_t dirs, files, failures;
    bool force, stop, more;
    json_t *failed;
    dbuf path;
} aclrec;

/* One entry of a recursive ACL change. Kept out of line so the recursion in aclrec_visit does not
 * carry an acl_node (tens of KiB) per level. */
static __attribute__((noinline)) void aclrec_apply(aclrec *R, emu_node *n)
{
    bool dir = n->type == EMU_DIR;
    const acl_list *spec = dir ? R->spec : R->fspec;
    acl_node next = n->acl;
    acl_err err;
    int rc = 0;
    if (R->mode == 0) rc = acl_replace(&next, spec, dir, &err);
    else if (R->mode == 1) rc = acl_modify(&next, spec, dir, &err);
    else rc = acl_remove_entries(&next, spec, &err);
    if (rc) {
        R->failures++;
        json_t *e = json_pack("{s:s,s:s,s:s}", "errorMessage", err.message, "name", R->path.data ? R->path.data : "",
                              "type", dir ? "DIRECTORY" : "FILE");
        if (e) json_array_append_new(R->failed, e);
        if (!R->force) {
            R->stop = true;
            R->more = true;
            R->resume = R->seen;
        }
        return;
    }
    n->acl = next;
    emu_store_bump_etag(R->q->g->s, n);
    if (emu_store_save(R->q->g->s, n)) LOGW("gen2 acl: metadata write failed");
    if (dir) R->dirs++;
    else R->files++;
}

static void aclrec_visit(aclrec *R, emu_node *n)
{
    if (R->stop) return;
    if (R->seen++ >= R->skip) {
        if (R->budget == 0) {
            R->more = true;
            R->stop = true;
            R->resume = R->seen - 1;
            return;
        }
        R->budget--;
        aclrec_apply(R, n);
    }
    for (size_t i = 0; i < n->nchildren && !R->stop; i++) {
        size_t keep = R->path.len;
        int rc = (R->path.len ? dbuf_add(&R->path, "/", 1) : 0);
        if (!rc) rc = dbuf_adds(&R->path, n->children[i]->name);
        if (!rc) aclrec_visit(R, n->children[i]);
        R->path.len = keep;
        if (R->path.data) R->path.data[keep] = 0;
    }
}

static void op_setacl_recursive(g2req *q)
{
    const char *mode = param(q, "mode"), *acl = hdr_ne(q, "x-ms-acl");
    const char *mr = param(q, "maxRecords"), *cont = param(q, "continuation");
    int m = -1;
    if (!mode) {
        ans_err(q, 400, "MissingRequiredQueryParameter", "%s", MSG_NOQ);
        return;
    }
    if (strcmp(mode, "set") == 0) m = 0;
    else if (strcmp(mode, "modify") == 0) m = 1;
    else if (strcmp(mode, "remove") == 0) m = 2;
    int force = parse_bool(param(q, "forceFlag"), 0);
    int64_t max = G2_ACLREC_MAX, skip = 0;
    if (m < 0 || force < 0 || (mr && (parse_i64(mr, &max) || max < 1))) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        return;
    }
    if (max > G2_ACLREC_MAX) max = G2_ACLREC_MAX;
    if (cont && *cont) {
        unsigned char raw[64];
        long d = b64_decode(cont, strlen(cont), raw, sizeof raw - 1);
        if (d > 0) raw[d] = 0;
        if (d < 4 || memcmp(raw, "acl:", 4) != 0 || parse_i64((char *)raw + 4, &skip) || skip < 0) {
            ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
            return;
        }
    }
    if (!acl) {
        ans_err(q, 400, "MissingRequiredHeader", "%s", MSG_NOHDR);
        return;
    }
    acl_list *spec = calloc(2, sizeof *spec);
    aclrec R = {.q = q, .mode = m, .skip = skip, .budget = max, .force = force == 1};
    dbuf_init(&R.path, G2_MAX_PATH);
    acl_err err;
    if (!spec) {
        ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    if (acl_parse(acl, m != 2, &spec[0], &err)) {
        ans_err(q, 400, "InvalidHeaderValue", "%s %s", MSG_BADHDR, err.message);
        goto out;
    }
    for (int i = 0; i < spec[0].n; i++)
        if (!spec[0].e[i].is_default) spec[1].e[spec[1].n++] = spec[0].e[i];
    R.spec = &spec[0];
    R.fspec = &spec[1];
    if (!sas_allows(q, "p")) goto out;
    emu_node *n = need_path(q);
    if (!n) goto out;
    if (dbuf_adds(&R.path, q->rel)) {
        ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    R.failed = json_array();
    aclrec_visit(&R, n);
    json_t *j = json_pack("{s:I,s:I,s:I,s:o}", "directoriesSuccessful", (json_int_t)R.dirs, "filesSuccessful",
                          (json_int_t)R.files, "failureCount", (json_int_t)R.failures, "failedEntries", R.failed);
    if (!j) json_decref(R.failed);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        ans_err(q, 500, "InternalError", "The result could not be built.");
        goto out;
    }
    if (R.more) {
        char tok[48], enc[80];
        snprintf(tok, sizeof tok, "acl:%" PRId64, R.resume);
        b64_encode((const unsigned char *)tok, strlen(tok), enc);
        emu_resp_header(q->r, "x-ms-continuation", enc);
    }
    ans_text(q, 200, "application/json;charset=utf-8", text);
    free(text);
out:
    free(spec);
    dbuf_free(&R.path);
}

/* ================================================================ delete, lease, expiry */

static void op_delete(g2req *q)
{
    emu_store *s = q->g->s;
    int rec = parse_bool(param(q, "recursive"), 0);
    if (rec < 0 || parse_bool(param(q, "paginated"), 0) < 0) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        return;
    }
    if (!sas_allows(q, "d")) return;
    for (;;) {
        emu_node *n = need_path(q);
        if (!n) return;
        if (!q->rel[0]) {
            ans_err(q, 400, "InvalidUri", "The root directory of a filesystem cannot be deleted; delete the "
                                          "filesystem instead.");
            return;
        }
        if (n->type == EMU_DIR && n->nchildren > 0 && rec != 1) {
            ans_err(q, 409, "DirectoryNotEmpty",
                    "The recursive query parameter value must be true to delete a non-empty directory.");
            return;
        }
        if (lease_write_fail(q, n)) return;
        int c = eval_conditions(q, n, "", false);
        if (cond_fail(q, n, c == 409 ? 412 : c)) return;
        if (subtree_busy(n)) {
            emu_store_wait(s);
            continue;
        }
        if (emu_store_remove(s, n)) {
            ans_err(q, 500, "InternalError", "The path could not be deleted.");
            return;
        }
        ans_empty(q, 200);
        return;
    }
}

static int lease_duration(const char *v, int64_t *ms)
{
    int64_t d;
    if (!v || parse_i64(v, &d)) return -1;
    if (d == -1) {
        *ms = 0;
        return 0;
    }
    if (d < 15 || d > 60) return -1;
    *ms = emu_now_ms() + d * 1000;
    return 0;
}

static bool guid_ok(const char *v)
{
    if (strlen(v) != 36) return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (v[i] != '-') return false;
        } else if (!isxdigit((unsigned char)v[i])) {
            return false;
        }
    }
    return true;
}

static void op_lease(g2req *q)
{
    const char *act = hdr_ne(q, "x-ms-lease-action"), *id = hdr_ne(q, "x-ms-lease-id");
    const char *prop = hdr_ne(q, "x-ms-proposed-lease-id");
    int64_t exp = 0, now = emu_now_ms();
    int status = 200;
    if (prop && !guid_ok(prop)) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    if (!sas_allows(q, "w")) return;
    bool acquire = strcasecmp(act, "acquire") == 0, renew = strcasecmp(act, "renew") == 0;
    bool change = strcasecmp(act, "change") == 0, release = strcasecmp(act, "release") == 0;
    bool brk = strcasecmp(act, "break") == 0;
    if (!acquire && !renew && !change && !release && !brk) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    if (acquire && lease_duration(hdr_ne(q, "x-ms-lease-duration"), &exp)) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    if ((renew || change || release) && !id) {
        ans_err(q, 400, "MissingRequiredHeader", "%s", MSG_NOHDR);
        return;
    }
    if (change && !prop) {
        ans_err(q, 400, "MissingRequiredHeader", "%s", MSG_NOHDR);
        return;
    }
    emu_node *n = need_path(q);
    if (!n) return;
    int c = eval_conditions(q, n, "", false);
    if (cond_fail(q, n, c == 409 ? 412 : c)) return;
    const char *st = lease_state(n, now);
    bool same = id && n->lease_id[0] && strcasecmp(id, n->lease_id) == 0;
    if (acquire) {
        if (strcmp(st, "breaking") == 0) {
            ans_err(q, 409, "LeaseIsBreakingAndCannotBeAcquired", "There is already a breaking lease.");
            return;
        }
        if (strcmp(st, "leased") == 0 && !(prop && strcasecmp(prop, n->lease_id) == 0)) {
            ans_err(q, 409, "LeaseAlreadyPresent", "There is already a lease present.");
            return;
        }
        if (prop) snprintf(n->lease_id, sizeof n->lease_id, "%s", prop);
        else random_uuid(n->lease_id);
        n->lease_expiry_ms = exp;
        n->lease_break_ms = 0;
        status = 201;
    } else if (renew) {
        if (!same) {
            ans_err(q, 409, "LeaseIdMismatchWithLeaseOperation",
                    "The lease ID specified did not match the lease ID for the resource with the specified lease "
                    "operation.");
            return;
        }
        if (strcmp(st, "broken") == 0 || strcmp(st, "breaking") == 0) {
            ans_err(q, 409, "LeaseIsBrokenAndCannotBeRenewed", "The lease ID matched, but the lease has been broken "
                                                               "explicitly and cannot be renewed.");
            return;
        }
        /* The store keeps no lease duration, so a fixed lease renews for 60 s (or the duration the
         * request names). */
        if (n->lease_expiry_ms && lease_duration(hdr_ne(q, "x-ms-lease-duration"), &n->lease_expiry_ms))
            n->lease_expiry_ms = now + 60000;
    } else if (change) {
        if (!same && !(n->lease_id[0] && strcasecmp(prop, n->lease_id) == 0)) {
            ans_err(q, 409, "LeaseIdMismatchWithLeaseOperation",
                    "The lease ID specified did not match the lease ID for the resource with the specified lease "
                    "operation.");
            return;
        }
        if (strcmp(st, "breaking") == 0 || strcmp(st, "broken") == 0 || strcmp(st, "expired") == 0) {
            ans_err(q, 409, "LeaseIsBreakingAndCannotBeChanged", "The lease ID matched, but the lease is currently "
                                                                 "in breaking state and cannot be changed.");
            return;
        }
        snprintf(n->lease_id, sizeof n->lease_id, "%s", prop);
    } else if (release) {
        if (!same) {
            ans_err(q, 409, n->lease_id[0] ? "LeaseIdMismatchWithLeaseOperation" : "LeaseNotPresentWithLeaseOperation",
                    "The lease ID specified did not match the lease ID for the resource with the specified lease "
                    "operation.");
            return;
        }
        n->lease_id[0] = 0;
        n->lease_expiry_ms = n->lease_break_ms = 0;
    } else {
        int64_t period = -1;
        const char *bp = hdr_ne(q, "x-ms-lease-break-period");
        if (bp && (parse_i64(bp, &period) || period < 0 || period > 60)) {
            ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
            return;
        }
        if (strcmp(st, "available") == 0 || strcmp(st, "expired") == 0) {
            ans_err(q, 409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the resource.");
            return;
        }
        if (lease_active(n, now)) {
            /* Breaking ends at the earlier of the break period and what the lease had left; an
             * infinite lease without a period breaks at once. */
            int64_t at = n->lease_break_ms ? n->lease_break_ms : n->lease_expiry_ms ? n->lease_expiry_ms : INT64_MAX;
            if (period >= 0 && now + period * 1000 < at) at = now + period * 1000;
            if (at == INT64_MAX) at = now;
            n->lease_break_ms = at > now ? at : now;
        }
        char t[24];
        int64_t rem = n->lease_break_ms > now ? (n->lease_break_ms - now + 999) / 1000 : 0;
        snprintf(t, sizeof t, "%" PRId64, rem);
        emu_resp_header(q->r, "x-ms-lease-time", t);
        status = 202;
    }
    if (emu_store_save(q->g->s, n)) {
        ans_err(q, 500, "InternalError", "The lease could not be recorded.");
        return;
    }
    hdr_node_common(q, n);
    if (!brk && n->lease_id[0]) emu_resp_header(q->r, "x-ms-lease-id", n->lease_id);
    ans_empty(q, status);
}

static void op_expiry(g2req *q)
{
    const char *opt = hdr_ne(q, "x-ms-expiry-option"), *tv = hdr_ne(q, "x-ms-expiry-time");
    if (!opt) {
        ans_err(q, 400, "MissingRequiredHeader", "%s", MSG_NOHDR);
        return;
    }
    bool never = strcasecmp(opt, "NeverExpire") == 0, abs = strcasecmp(opt, "Absolute") == 0;
    bool rel_now = strcasecmp(opt, "RelativeToNow") == 0, rel_create = strcasecmp(opt, "RelativeToCreation") == 0;
    int64_t v = 0;
    if (!never && !abs && !rel_now && !rel_create) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    if (!never && (!tv || (abs ? parse_rfc1123(tv, &v) : (parse_i64(tv, &v) || v < 0)))) {
        ans_err(q, 400, tv ? "InvalidHeaderValue" : "MissingRequiredHeader", "%s", tv ? MSG_BADHDR : MSG_NOHDR);
        return;
    }
    if (!sas_allows(q, "w")) return;
    emu_node *n = need_path(q);
    if (!n) return;
    if (n->type != EMU_FILE) {
        ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid: expiry can only be set on files.");
        return;
    }
    if (lease_write_fail(q, n)) return;
    n->expiry_ms = never ? 0 : abs ? v * 1000 : rel_now ? emu_now_ms() + v : n->ctime_ms + v;
    if (!never && n->expiry_ms <= 0) n->expiry_ms = 1;
    expiry_note(q->g, n->expiry_ms);
    save_or_fail(q, n);
    if (q->ans) return;
    hdr_node_common(q, n);
    ans_empty(q, 200);
}

/* ================================================================ list paths (§2.5) */

typedef struct lister {
    g2req *q;
    json_t *arr;
    int64_t left;
    bool recursive, more, oom;
    dbuf path;              /* path of the node being visited, relative to the filesystem */
    char *last;             /* path of the last entry emitted */
} lister;

static void list_emit(lister *L, const emu_node *n)
{
    char etag[24], lm[40], perm[12], len[24], ct[24], exp[24];
    fmt_etag(n, etag, false);
    fmt_rfc1123(n->mtime_ms, lm);
    acl_mode_symbolic(n->acl.mode, acl_has_extended(&n->acl), perm);
    snprintf(len, sizeof len, "%" PRId64, n->type == EMU_FILE ? n->length : 0);
    snprintf(ct, sizeof ct, "%" PRId64, (n->ctime_ms + FILETIME_EPOCH_MS) * 10000);
    if (n->expiry_ms) snprintf(exp, sizeof exp, "%" PRId64, (n->expiry_ms + FILETIME_EPOCH_MS) * 10000);
    else snprintf(exp, sizeof exp, "0");
    json_t *o = json_object();
    if (!o) {
        L->oom = true;
        return;
    }
    json_object_set_new(o, "contentLength", json_string(len));
    json_object_set_new(o, "creationTime", json_string(ct));
    json_object_set_new(o, "etag", json_string(etag));
    json_object_set_new(o, "expiryTime", json_string(exp));
    json_object_set_new(o, "group", json_string(n->group));
    if (n->type == EMU_DIR) json_object_set_new(o, "isDirectory", json_string("true"));
    json_object_set_new(o, "lastModified", json_string(lm));
    json_object_set_new(o, "name", json_stringn(L->path.data ? L->path.data : "", L->path.len));
    json_object_set_new(o, "owner", json_string(n->owner));
    json_object_set_new(o, "permissions", json_string(perm));
    if (json_array_append_new(L->arr, o)) L->oom = true;
    free(L->last);
    L->last = strndup(L->path.data ? L->path.data : "", L->path.len);
    if (!L->last) L->oom = true;
}

static bool path_push(lister *L, const char *name, size_t *keep)
{
    *keep = L->path.len;
    int rc = L->path.len ? dbuf_add(&L->path, "/", 1) : 0;
    if (!rc) rc = dbuf_adds(&L->path, name);
    if (rc) L->oom = true;
    return rc == 0;
}

static void path_pop(lister *L, size_t keep)
{
    L->path.len = keep;
    if (L->path.data) L->path.data[keep] = 0;
}

/* Pre-order walk over dir's subtree with children in byte order (the order of component tuples),
 * emitting entries after the position named by after[0..nafter). */
static void list_walk(lister *L, const emu_node *dir, char **after, int nafter)
{
    int64_t now = emu_now_ms();
    size_t i = 0, keep;
    if (nafter > 0) {
        const emu_node *c = emu_store_child(dir, after[0]);
        if (c && c->type == EMU_DIR && L->recursive) {
            if (!path_push(L, c->name, &keep)) return;
            list_walk(L, c, after + 1, nafter - 1);
            path_pop(L, keep);
            if (L->more || L->oom) return;
        }
        i = emu_store_child_after(dir, after[0]);
    }
    for (; i < dir->nchildren; i++) {
        const emu_node *c = dir->children[i];
        if (is_expired(c, now)) continue;
        if (L->left == 0) {
            L->more = true;
            return;
        }
        if (!path_push(L, c->name, &keep)) return;
        list_emit(L, c);
        L->left--;
        if (L->recursive && c->type == EMU_DIR && !L->oom) list_walk(L, c, NULL, 0);
        path_pop(L, keep);
        if (L->more || L->oom) return;
    }
}

static void op_list_paths(g2req *q)
{
    const char *rec = param(q, "recursive"), *dir = param(q, "directory"), *mr = param(q, "maxResults");
    const char *cont = param(q, "continuation");
    int r = parse_bool(rec, -2);
    int64_t max = G2_LIST_MAX;
    char *dirdup = NULL, *after = NULL;
    char *dsegs[G2_MAX_SEGS], *asegs[G2_MAX_SEGS];
    int nd = 0, na = 0;
    lister L = {.q = q};
    dbuf_init(&L.path, G2_MAX_PATH);
    if (r == -2) {
        ans_err(q, 400, "MissingRequiredQueryParameter", "%s", MSG_NOQ);
        goto out;
    }
    if (r < 0 || (mr && (parse_i64(mr, &max) || max < 1)) || parse_bool(param(q, "upn"), 0) < 0) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        goto out;
    }
    if (max > G2_LIST_MAX) max = G2_LIST_MAX;
    dirdup = strdup(dir ? dir : "");
    if (!dirdup || (nd = split_path(dirdup, dsegs, G2_MAX_SEGS)) < 0) {
        ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
        goto out;
    }
    if (cont && *cont) {
        size_t cl = strlen(cont);
        after = malloc(cl + 1);
        long d = after ? b64_decode(cont, cl, (unsigned char *)after, cl) : -1;
        if (d >= 0) after[d] = 0;
        if (d < 5 || memcmp(after, "path:", 5) != 0 || memchr(after, 0, (size_t)d) ||
            (na = split_path(after + 5, asegs, G2_MAX_SEGS)) <= nd) {
            ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
            goto out;
        }
        for (int i = 0; i < nd; i++) {
            if (strcmp(asegs[i], dsegs[i]) != 0) {
                ans_err(q, 400, "InvalidQueryParameterValue", "%s", MSG_BADQ);
                goto out;
            }
        }
    }
    /* SAS: list needs 'l'; a directory SAS is checked against the directory parameter. */
    if (!sas_allows(q, "l")) goto out;
    emu_node *base = need_fs(q);
    if (!base) goto out;
    for (int i = 0; i < nd && base; i++) {
        base = emu_store_child(base, dsegs[i]);
        if (base && is_expired(base, emu_now_ms())) base = NULL;
    }
    if (!base) {
        ans_err(q, 404, "PathNotFound", "The specified path does not exist.");
        goto out;
    }
    L.arr = json_array();
    L.left = max;
    L.recursive = r == 1;
    for (int i = 0; i < nd && !L.oom; i++) {
        size_t keep;
        path_push(&L, dsegs[i], &keep);
    }
    if (L.oom || !L.arr) {
        ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    if (base->type == EMU_FILE) {
        if (!after) list_emit(&L, base);
    } else {
        list_walk(&L, base, after ? asegs + nd : NULL, after ? na - nd : 0);
    }
    json_t *top = L.oom ? NULL : json_pack("{s:O}", "paths", L.arr);
    char *text = top ? json_dumps(top, JSON_COMPACT) : NULL;
    json_decref(top);
    if (!text) {
        ans_err(q, 500, "InternalError", "The listing could not be built.");
        goto out;
    }
    if (L.more && L.last) {
        dbuf raw;
        dbuf_init(&raw, G2_MAX_PATH + 8);
        size_t ll = strlen(L.last);
        char *enc = malloc(b64_encoded_size(ll + 5));
        if (enc && dbuf_printf(&raw, "path:%s", L.last) == 0) {
            b64_encode((const unsigned char *)raw.data, raw.len, enc);
            emu_resp_header(q->r, "x-ms-continuation", enc);
        }
        free(enc);
        dbuf_free(&raw);
    }
    ans_text(q, 200, "application/json;charset=utf-8", text);
    free(text);
out:
    json_decref(L.arr);
    free(L.last);
    dbuf_free(&L.path);
    free(dirdup);
    free(after);
}

/* ================================================================ request life cycle */

static void run_locked(g2req *q)
{
    emu_store *s = q->g->s;
    emu_store_lock(s);
    expire_sweep(q->g);
    switch (q->op) {
    case OP_LIST_FS: op_list_fs(q); break;
    case OP_FS_CREATE: op_fs_create(q); break;
    case OP_FS_PROPS: op_fs_props(q); break;
    case OP_FS_SETPROPS: op_fs_setprops(q); break;
    case OP_FS_DELETE: op_fs_delete(q); break;
    case OP_LIST_PATHS: op_list_paths(q); break;
    case OP_CREATE: op_create(q); break;
    case OP_RENAME: op_rename(q); break;
    case OP_APPEND: append_prepare(q); break;
    case OP_FLUSH: op_flush(q); break;
    case OP_SETPROPS: op_setprops(q); break;
    case OP_SETACL: op_setacl(q); break;
    case OP_SETACL_REC: op_setacl_recursive(q); break;
    case OP_READ: op_read(q, false); break;
    case OP_GETPROPS: op_read(q, true); break;
    case OP_GETSTATUS:
    case OP_GETACL:
    case OP_CHECKACCESS: op_head_action(q); break;
    case OP_DELETE: op_delete(q); break;
    case OP_LEASE: op_lease(q); break;
    case OP_EXPIRY: op_expiry(q); break;
    default: ans_err(q, 400, "InvalidUri", "%s", MSG_BADURI); break;
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

static void token_answer(g2req *q, int status, dbuf *json)
{
    emu_resp_header(q->r, "Cache-Control", "no-store, no-cache");
    ans_text(q, status, "application/json; charset=utf-8", json->data ? json->data : "");
}

/* Everything begin does up to a prepared answer (or an append waiting for its body). */
static void begin_prepare(g2req *q)
{
    emu_gen2 *g = q->g;
    emu_req *r = q->r;
    const char *ver = hdr_ne(q, "x-ms-version");
    if (q->perr_status) {
        ans_err(q, q->perr_status, q->perr_code, "%s", q->perr_msg);
        return;
    }
    if (q->op == OP_IMDS) {
        dbuf out;
        dbuf_init(&out, 64 * 1024);
        int st = strcmp(q->method, "GET") == 0 ? emu_auth_imds(g->auth, emu_req_query(r), hdr(q, "Metadata"), &out)
                                               : 405;
        token_answer(q, st, &out);
        dbuf_free(&out);
        return;
    }
    if (q->op == OP_TOKEN) return; /* answered at end, with the form body */
    const char *crid = hdr(q, "x-ms-client-request-id");
    if ((crid && strlen(crid) > 1024) || (ver && !version_ok(ver))) {
        ans_err(q, 400, "InvalidHeaderValue", "%s", MSG_BADHDR);
        return;
    }
    const char *sas_path = q->rel ? q->rel : "";
    if (q->op == OP_LIST_PATHS) sas_path = param(q, "directory") ? param(q, "directory") : "";
    emu_auth_fail *f = malloc(sizeof *f);
    if (!f) {
        ans_err(q, 500, "InternalError", "Out of memory.");
        return;
    }
    int rc = emu_auth_check(g->auth, r, q->fs, sas_path, &q->caller, f);
    if (rc) ans_auth_fail(q, f);
    free(f);
    if (rc) return;
    if (!ver && (q->caller.kind == EMU_AUTH_SHAREDKEY || q->caller.kind == EMU_AUTH_BEARER)) {
        ans_err(q, 400, "MissingRequiredHeader", "%s", MSG_NOHDR);
        return;
    }
    run_locked(q);
}

static void g2_begin(void *ctx, emu_req *r)
{
    emu_gen2 *g = ctx;
    g2req *q = calloc(1, sizeof *q);
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
    random_uuid(q->id);
    const char *ver = hdr_ne(q, "x-ms-version");
    snprintf(q->version, sizeof q->version, "%s", ver && version_ok(ver) ? ver : G2_DEFAULT_VERSION);
    emu_req_set_data(r, q);
    classify(q);
    if (emu_req_fault(r, q->label) != 0) {
        q->faulted = true;
        return;
    }
    begin_prepare(q);
    if (q->ans == ANS_NONE) return; /* token form or append data to come */
    /* Refuse a body that is on its way right now (it is then dropped); anything else is sent from
     * end, since an answer queued before MHD has looked for a body makes it close the connection. */
    if (emu_req_has_body(r)) ans_send(q);
}

static void g2_body(void *ctx, emu_req *r, const char *data, size_t n)
{
    g2req *q = emu_req_get_data(r);
    if (!q || q->faulted || emu_req_answered(r)) return;
    if (q->op == OP_APPEND && q->busy_held) {
        append_body(q, data, n);
    } else if (q->op == OP_TOKEN) {
        if (dbuf_add(&q->form, data, n)) q->too_big = true;
    }
}

static void g2_end(void *ctx, emu_req *r)
{
    g2req *q = emu_req_get_data(r);
    if (!q || q->faulted || emu_req_answered(r)) return;
    if (q->op == OP_APPEND && q->busy_held) {
        append_end(q);
        return;
    }
    if (q->op == OP_TOKEN && q->ans == ANS_NONE) {
        dbuf out;
        dbuf_init(&out, 64 * 1024);
        int st = q->too_big ? 413 : emu_auth_token_endpoint(q->g->auth, q->v2, q->tenant,
                                                            q->form.data ? q->form.data : "", &out);
        token_answer(q, st, &out);
        dbuf_free(&out);
    }
    ans_send(q);
}

static void g2_done(void *ctx, emu_req *r, bool completed)
{
    g2req *q = emu_req_get_data(r);
    if (!q) return;
    if (q->busy_held) {
        /* The client went away mid-body: the bytes written stay unrecorded (invisible). */
        emu_store_lock(q->g->s);
        unpin(q);
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

static void g2_fault(void *ctx, emu_req *r, int status, int retry_after_s)
{
    g2req *q = emu_req_get_data(r);
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
        ans_send(q);
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
    const char *code = status >= 500 ? "InternalError" : "InvalidInput", *msg = map[0].msg;
    if (status >= 500) msg = map[9].msg;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].status == status) {
            code = map[i].code;
            msg = map[i].msg;
        }
    }
    ans_err(q, status, code, "%s", msg);
    ans_send(q);
}

int emu_gen2_new(const emu_gen2_opts *o, emu_gen2 **out, emu_service *svc)
{
    emu_gen2 *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    g->s = o->store;
    g->key = *o->key;
    g->max_body = o->max_body ? o->max_body : (100u << 20);
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
