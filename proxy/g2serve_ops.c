/*
 * g2serve_ops: the reads served on Gen2 (g2serve.h), the helpers the writes (g2serve_write.c) share, and
 * the dispatch of every op. Each op is straight-line code over synchronous
 * Gen2 exchanges on a worker thread. The Gen1 rules followed are those of protocols.md §1 and the Gen1
 * emulator (tests/emu, the reference these answers are compared with); the differences are listed in
 * README.md ("gen2-only: the Gen1 API on Gen2").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "g2serve_int.h"
#include "log.h"
#include "reserved.h"
#include "rid.h"
#include "urlcodec.h"

/* ---- small helpers ---- */

g2resp *g2s__head(g2s_ctx *c, const char *path, const char *query)
{
    return g2s__call(c, "HEAD", path, query, NULL, NULL, -1, 0, 0, 0);
}

bool g2s__is_404(const g2resp *r)
{
    return r && r->result == HTTPC_OK && r->status == 404;
}

/* A node's facts from a HEAD answer. 0, or -1 (answered 502). */
static int node_of(g2s_ctx *c, const g2resp *r, g2a_node *n)
{
    if (g2a_node_from_head(httpc_resp_header(r, "Content-Length"), httpc_resp_header(r, "x-ms-resource-type"),
                           httpc_resp_header(r, "Last-Modified"), httpc_resp_header(r, "x-ms-owner"),
                           httpc_resp_header(r, "x-ms-group"), httpc_resp_header(r, "x-ms-permissions"),
                           httpc_resp_header(r, "x-ms-properties"), httpc_resp_header(r, "x-ms-expiry-time"),
                           httpc_resp_header(r, "ETag"), c->map, n) != 0) {
        g2s__fail(c, 502, "IOException", "Gen2 gave an unusable answer about %s", c->wr->path);
        return -1;
    }
    return 0;
}

/*
 * Look up fs/path (plain HEAD: properties included). 1 found (*n filled, *resp kept when asked),
 * 0 missing (404), -1 answered (any other failure). The filesystem root is a directory.
 */
int g2s__stat(g2s_ctx *c, const char *path, g2a_node *n, g2resp **keep)
{
    if (keep) *keep = NULL;
    if (!path[0]) {
        g2resp *r = g2s__call(c, "HEAD", "", "resource=filesystem", NULL, NULL, -1, 0, 0, 0);
        if (!g2s__ok(r)) {
            g2s__fail_gen2(c, r, c->wr->path);
            g2s__free(r);
            return -1;
        }
        memset(n, 0, sizeof *n);
        n->is_dir = true;
        (void)xlate_rfc1123_parse(httpc_resp_header(r, "Last-Modified") ? httpc_resp_header(r, "Last-Modified") : "",
                                  &n->mtime_ms);
        g2s__free(r);
        /* The root's owner, group and permission, where Gen2 tells them. */
        r = g2s__head(c, "", "action=getAccessControl");
        g2a_node acl;
        if (g2s__ok(r) && node_of(c, r, &acl) == 0) {
            memcpy(n->owner, acl.owner, sizeof n->owner);
            memcpy(n->group, acl.group, sizeof n->group);
            memcpy(n->permission, acl.permission, sizeof n->permission);
            n->acl_bit = acl.acl_bit;
        } else {
            snprintf(n->owner, sizeof n->owner, "$superuser");
            snprintf(n->group, sizeof n->group, "$superuser");
            snprintf(n->permission, sizeof n->permission, "770");
        }
        g2s__free(r);
        if (c->answered) return -1;
        return 1;
    }
    g2resp *r = g2s__head(c, path, NULL);
    if (g2s__is_404(r)) {
        char code[96];
        g2s__code(r, code, sizeof code);
        if (strcmp(code, "FilesystemNotFound") == 0 || strcmp(code, "ContainerNotFound") == 0) {
            g2s__fail_gen2(c, r, c->wr->path);
            g2s__free(r);
            return -1;
        }
        g2s__free(r);
        return 0;
    }
    if (!g2s__ok(r)) {
        g2s__fail_gen2(c, r, c->wr->path);
        g2s__free(r);
        return -1;
    }
    int rc = node_of(c, r, n) == 0 ? 1 : -1;
    if (keep && rc == 1) *keep = r;
    else g2s__free(r);
    return rc;
}

void g2s__parent_of(const char *path, char *out, size_t cap)
{
    const char *s = strrchr(path, '/');
    snprintf(out, cap, "%.*s", s ? (int)(s - path) : 0, path);
}

const char *g2s__leaf_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/*
 * A node this request created belongs to the writer, as on Gen1: with a Hadoop user.name (simple auth) the
 * owner becomes that user through the identity map (the name as it is when no map is configured, or when
 * it is unmapped and gen2.unmapped_identity is keep). Gen2's owner (the proxy's identity) stays otherwise. A refusal is
 * logged, not answered: the write itself succeeded.
 */
void g2s__own_created(g2s_ctx *c, const char *path)
{
    const char *user = whreq_param_get(c->wr, "user.name");
    if (!user || !*user) return;
    const char *id = idm_lookup(c->map, IDM_USER, user);
    if (!id && c->map && c->s->id_pol != IDM_KEEP) return; /* unmapped: Gen2's owner stays */
    if (!id) id = user;
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_setowner(id, NULL, &x, &xe) != 0) return;
    g2resp *r = g2s__xcall(c, path, &x);
    xlate_g2req_free(&x);
    if (!g2s__ok(r))
        LOGW("msg=\"gen2-only: the writer could not be made the owner of what it created\" rid=%s status=%ld", c->rq->rid,
             r->status);
    g2s__free(r);
}

static void answer_dbuf(g2s_ctx *c, int rc, dbuf *b)
{
    if (rc != 0 || !b->data) g2s__fail(c, 500, "RuntimeException", "the answer could not be built");
    else g2s__answer(c, 200, b->data, b->len);
}

/* ---- listings ---- */

typedef struct g2s_list {
    unsigned count;           /* entries emitted */
    bool more;                /* entries follow the last one emitted */
    char last[1024];          /* the last leaf emitted */
} g2s_list;

/*
 * Entries of directory dir (Gen2 path) in name order, after leaf `after` ("" from the start) and before
 * `before` (NULL: no bound), at most want, each appended to out as a FileStatus (comma-separated).
 * Gen2's continuation is remembered for the last entry of an aligned page, so a client asking for the
 * next page with that name as listAfter/startAfter continues where Gen2 left off; an unknown name walks
 * from the start, skipping names up to it. 0, or -1 (answered).
 */
static int list_dir(g2s_ctx *c, const char *dir, const char *after, const char *before, unsigned want, dbuf *out,
                    g2s_list *res)
{
    memset(res, 0, sizeof *res);
    char *token = after[0] ? g2s__cursor_get(c->s, c->fs, dir, after) : NULL;
    bool skip = after[0] && !token;
    int rc = 0;
    dbuf q;
    dbuf_init(&q, 16384);
    for (;;) {
        unsigned page = skip ? G2S_LIST_PAGE : want - res->count;
        if (page > G2S_LIST_PAGE) page = G2S_LIST_PAGE;
        dbuf_reset(&q);
        rc = dbuf_printf(&q, "resource=filesystem&recursive=false&maxResults=%u", page);
        if (rc == 0 && dir[0]) rc = dbuf_adds(&q, "&directory=");
        if (rc == 0 && dir[0]) rc = url_encode(dir, false, &q);
        if (rc == 0 && token) rc = dbuf_adds(&q, "&continuation=");
        if (rc == 0 && token) rc = url_encode(token, false, &q);
        if (rc != 0) {
            g2s__fail(c, 500, "RuntimeException", "the listing request could not be built");
            break;
        }
        g2resp *r = g2s__call(c, "GET", "", q.data, NULL, NULL, -1, 0, 0, 8u << 20);
        if (!g2s__ok(r)) {
            g2s__fail_gen2(c, r, c->wr->path);
            g2s__free(r);
            rc = -1;
            break;
        }
        json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
        json_t *paths = json_object_get(doc, "paths");
        const char *next = httpc_resp_header(r, "x-ms-continuation");
        free(token);
        token = next && *next ? strdup(next) : NULL;
        g2s__free(r);
        if (!json_is_array(paths)) {
            json_decref(doc);
            g2s__fail(c, 502, "IOException", "Gen2 gave an unusable listing of %s", c->wr->path);
            rc = -1;
            break;
        }
        size_t i, n = json_array_size(paths);
        json_t *e;
        bool stop = false;
        json_array_foreach(paths, i, e) {
            g2a_node nd;
            char leaf[1024];
            if (g2a_node_from_list(e, c->map, &nd, leaf, sizeof leaf) != 0) continue;
            if (!dir[0] && dp_reserved_g2(leaf)) continue; /* the fleet's directory at the root: hidden */
            if (skip && strcmp(leaf, after) <= 0) continue;
            if (before && strcmp(leaf, before) >= 0) {
                stop = true;
                break;
            }
            if (want && res->count == want) {
                res->more = true;
                stop = true;
                break;
            }
            if (res->count > 0 && (rc = dbuf_adds(out, ",")) != 0) break;
            if ((rc = g2a_filestatus_json(&nd, leaf, false, out)) != 0) break;
            res->count++;
            snprintf(res->last, sizeof res->last, "%s", leaf);
            if (want && res->count == want && i + 1 == n) {
                /* an aligned page: Gen2's continuation is where the next page starts */
                res->more = token != NULL;
                if (token) g2s__cursor_put(c->s, c->fs, dir, leaf, token);
                stop = true;
                break;
            }
        }
        json_decref(doc);
        if (rc != 0) {
            g2s__fail(c, 500, "RuntimeException", "the listing could not be built");
            break;
        }
        if (!stop && want && res->count == want && token) {
            /* a full page whose last Gen2 entries were hidden (the fleet's directory): Gen2's continuation
             * is still where the next page starts */
            res->more = true;
            g2s__cursor_put(c->s, c->fs, dir, res->last, token);
            stop = true;
        }
        if (stop || !token) break;
    }
    free(token);
    dbuf_free(&q);
    return rc == 0 ? 0 : -1;
}

static void op_liststatus(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_err e;
    int64_t size;
    if (whreq_get_i64(w, "listsize", 0, &size, &e) != 0) return g2s__fail_err(c, &e);
    if (size < 0) return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"listSize\"");
    const char *after = whreq_param_get(w, "listafter");
    const char *before = whreq_param_get(w, "listbefore");
    if (before && !*before) before = NULL;
    g2a_node n;
    int f = g2s__stat(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", w->path);
    dbuf b;
    dbuf_init(&b, 256u << 20);
    int rc = dbuf_adds(&b, "{\"FileStatuses\":{\"FileStatus\":[");
    g2s_list res = {0};
    if (!n.is_dir) {
        if (rc == 0) rc = g2a_filestatus_json(&n, "", false, &b);
    } else if (rc == 0) {
        unsigned want = size > 0 && (uint64_t)size < c->s->list_max ? (unsigned)size : c->s->list_max;
        if (list_dir(c, c->path, after ? after : "", before, want, &b, &res) != 0) {
            dbuf_free(&b);
            return;
        }
    }
    /* continuationToken always present ("" when done): the Python ADLS client needs it. */
    if (rc == 0) rc = dbuf_adds(&b, "],\"continuationToken\":");
    if (rc == 0) rc = g2a_json_str(&b, res.more ? res.last : "");
    if (rc == 0) rc = dbuf_adds(&b, "}}");
    answer_dbuf(c, rc, &b);
    dbuf_free(&b);
}

static void op_liststatus_batch(g2s_ctx *c)
{
    const char *after = whreq_param_get(c->wr, "startafter");
    g2a_node n;
    int f = g2s__stat(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", c->wr->path);
    dbuf b;
    dbuf_init(&b, 64u << 20);
    int rc = dbuf_adds(&b, "{\"DirectoryListing\":{\"partialListing\":{\"FileStatuses\":{\"FileStatus\":[");
    g2s_list res = {0};
    if (!n.is_dir) {
        if (rc == 0) rc = g2a_filestatus_json(&n, "", false, &b);
    } else if (rc == 0 && list_dir(c, c->path, after ? after : "", NULL, G2S_BATCH_PAGE, &b, &res) != 0) {
        dbuf_free(&b);
        return;
    }
    /* Gen2 does not count what is left: 1 says "more follow", 0 "done". */
    if (rc == 0) rc = dbuf_printf(&b, "]}},\"remainingEntries\":%d}}", res.more ? 1 : 0);
    answer_dbuf(c, rc, &b);
    dbuf_free(&b);
}

static void op_contentsummary(g2s_ctx *c)
{
    g2a_node n;
    int f = g2s__stat(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", c->wr->path);
    int64_t dirs = 0, files = 0, bytes = 0;
    if (!n.is_dir) {
        files = 1;
        bytes = n.length;
    } else {
        dirs = 1;
        char *token = NULL;
        dbuf q;
        dbuf_init(&q, 16384);
        for (;;) {
            dbuf_reset(&q);
            int rc = dbuf_printf(&q, "resource=filesystem&recursive=true&maxResults=%u", G2S_LIST_PAGE);
            if (rc == 0 && c->path[0]) rc = dbuf_adds(&q, "&directory=");
            if (rc == 0 && c->path[0]) rc = url_encode(c->path, false, &q);
            if (rc == 0 && token) rc = dbuf_adds(&q, "&continuation=");
            if (rc == 0 && token) rc = url_encode(token, false, &q);
            g2resp *r = rc == 0 ? g2s__call(c, "GET", "", q.data, NULL, NULL, -1, 0, 0, 8u << 20) : NULL;
            if (!g2s__ok(r)) {
                g2s__fail_gen2(c, r, c->wr->path);
                g2s__free(r);
                break;
            }
            json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
            const char *next = httpc_resp_header(r, "x-ms-continuation");
            free(token);
            token = next && *next ? strdup(next) : NULL;
            g2s__free(r);
            size_t i;
            json_t *e;
            json_array_foreach(json_object_get(doc, "paths"), i, e) {
                g2a_node en;
                char leaf[1024];
                const char *name = json_string_value(json_object_get(e, "name"));
                if (!c->path[0] && name && dp_reserved_g2(name)) continue; /* the fleet's directory: not counted */
                if (g2a_node_from_list(e, NULL, &en, leaf, sizeof leaf) != 0) continue;
                if (en.is_dir) dirs++;
                else {
                    files++;
                    bytes += en.length;
                }
            }
            json_decref(doc);
            if (!token) break;
        }
        free(token);
        dbuf_free(&q);
        if (c->answered) return;
    }
    char body[512];
    int len = snprintf(body, sizeof body,
                       "{\"ContentSummary\":{\"directoryCount\":%" PRId64 ",\"fileCount\":%" PRId64
                       ",\"length\":%" PRId64 ",\"quota\":-1,\"spaceConsumed\":%" PRId64 ",\"spaceQuota\":-1}}",
                       dirs, files, bytes, bytes);
    g2s__answer(c, 200, body, (size_t)len);
}

/* ---- reads ---- */

static void op_getfilestatus(g2s_ctx *c)
{
    g2a_node n;
    int f = g2s__stat(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", c->wr->path);
    dbuf b;
    dbuf_init(&b, 64 * 1024);
    int rc = dbuf_adds(&b, "{\"FileStatus\":");
    if (rc == 0) rc = g2a_filestatus_json(&n, "", true, &b);
    if (rc == 0) rc = dbuf_adds(&b, "}");
    answer_dbuf(c, rc, &b);
    dbuf_free(&b);
}

static void op_aclstatus(g2s_ctx *c)
{
    g2resp *r = g2s__head(c, c->path, "action=getAccessControl");
    if (!g2s__ok(r)) {
        g2s__fail_gen2(c, r, c->wr->path);
        g2s__free(r);
        return;
    }
    dbuf b;
    dbuf_init(&b, 1u << 20);
    int rc = g2a_aclstatus_json(httpc_resp_header(r, "x-ms-acl"), httpc_resp_header(r, "x-ms-permissions"),
                                httpc_resp_header(r, "x-ms-owner"), httpc_resp_header(r, "x-ms-group"), c->map, &b);
    g2s__free(r);
    answer_dbuf(c, rc, &b);
    dbuf_free(&b);
}

static void op_checkaccess(g2s_ctx *c)
{
    const char *a = whreq_param_get(c->wr, "fsaction");
    static const char bits[3] = {'r', 'w', 'x'};
    bool ok = a && strlen(a) == 3;
    for (int i = 0; ok && i < 3; i++) ok = a[i] == bits[i] || a[i] == '-';
    if (!ok)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"fsaction\": %s",
                         a ? a : "");
    char q[64];
    snprintf(q, sizeof q, "action=checkAccess&fsAction=%s", a);
    g2resp *r = g2s__head(c, c->path, q);
    if (g2s__ok(r)) g2s__answer(c, 200, NULL, 0);
    else if (r->result == HTTPC_OK && r->status == 403)
        g2s__fail(c, 403, "AccessControlException", "Permission denied: %s on %s", a, c->wr->path);
    else g2s__fail_gen2(c, r, c->wr->path);
    g2s__free(r);
}

static void op_homedir(g2s_ctx *c)
{
    const char *user = whreq_param_get(c->wr, "user.name");
    dbuf b;
    dbuf_init(&b, 4096);
    int rc = dbuf_adds(&b, "{\"Path\":");
    char path[600];
    snprintf(path, sizeof path, "/user/%s", user && *user ? user : "");
    if (!user || !*user) snprintf(path, sizeof path, "/");
    if (rc == 0) rc = g2a_json_str(&b, path);
    if (rc == 0) rc = dbuf_adds(&b, "}");
    answer_dbuf(c, rc, &b);
    dbuf_free(&b);
}

/* OPEN: the ranged GET's bytes go to the caller's hooks; its head is checked first. */
typedef struct open_x {
    const g2s_stream *st;
    bool ok;             /* Gen2's head was 200/206 */
    uint64_t want, got;
} open_x;

static void open_head(void *ud, const httpc_resp *resp)
{
    open_x *x = ud;
    x->ok = resp->status == 200 || resp->status == 206;
}

static size_t open_body(void *ud, const char *p, size_t n)
{
    open_x *x = ud;
    if (!x->ok) return n; /* an error answer's body: not the reader's */
    size_t k = x->st->on_body(x->st->ud, p, n);
    if (k != HTTPC_PAUSE) x->got += k;
    return k;
}

static void open_done(void *ud, httpc_resp *resp)
{
    open_x *x = ud;
    bool complete = resp->result == HTTPC_OK && x->ok && x->got == x->want;
    if (!complete)
        LOGW("msg=\"gen2-only: Gen2's read broke off: the reader's connection is cut\" result=%s status=%ld "
             "sent=%" PRIu64 " of=%" PRIu64,
             httpc_result_str(resp->result), resp->status, x->got, x->want);
    httpc_resp_free(resp);
    free(resp);
    x->st->on_end(x->st->ud, complete);
    free(x);
}

static void op_open(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_err e;
    int64_t off, len;
    if (whreq_get_i64(w, "offset", 0, &off, &e) != 0 || whreq_get_i64(w, "length", -1, &len, &e) != 0)
        return g2s__fail_err(c, &e);
    if (off < 0) return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"offset\"");
    if (len < -1) return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"length\"");
    g2a_node n;
    int f = g2s__stat(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", w->path);
    if (n.is_dir) return g2s__fail(c, 404, "FileNotFoundException", "Path is not a file: %s", w->path);
    if (off > n.length)
        return g2s__fail(c, 400, "BadOffsetException",
                         "Requested offset %" PRId64 " is beyond the end of file (%" PRId64 ")", off, n.length);
    int64_t avail = n.length - off;
    if (len < 0 || len > avail) len = avail;
    if (len == 0) {
        g2s_answer a = {.status = 200, .content_type = "application/octet-stream", .body = "", .len = 0};
        c->answered = true;
        c->rq->answer(c->rq->ud, &a);
        return;
    }
    open_x *x = calloc(1, sizeof *x);
    if (!x) return g2s__fail(c, 503, "RetriableException", "the proxy is out of memory; retry later");
    x->st = c->rq->stream;
    x->want = (uint64_t)len;
    /* Once answered, the request (and what rq points to but the stream hooks) may be gone. */
    char rid[RID_MAX + 1];
    snprintf(rid, sizeof rid, "%s", c->rq->rid);
    char range[96], etag[160];
    snprintf(range, sizeof range, "Range: bytes=%" PRId64 "-%" PRId64, off, off + len - 1);
    /* the bytes of the version the HEAD measured: a file rewritten meanwhile fails the read */
    snprintf(etag, sizeof etag, "If-Match: \"%s\"", n.etag);
    gen2c_call call = {.method = "GET", .fs = c->fs, .path = c->path, .client_request_id = rid,
                       .out = HTTPC_BODY_STREAM, .on_head = open_head, .on_body = open_body,
                       .ctl = x->st->ctl, .done = open_done, .ud = x};
    call.headers[0] = range;
    if (n.etag[0]) call.headers[1] = etag;
    /* The answer goes first: the reader's response exists before the first byte arrives. */
    g2s_answer a = {.status = 200, .content_type = "application/octet-stream", .stream = true,
                    .length = (uint64_t)len};
    c->answered = true;
    c->rq->answer(c->rq->ud, &a);
    metrics_inc(c->s->mx_exchanges);
    if (gen2c_send(c->s->g2, &call) != 0) {
        LOGW("msg=\"gen2-only: the read could not be sent to Gen2\" rid=%s", rid);
        const g2s_stream *st = x->st;
        free(x);
        st->on_end(st->ud, false);
    }
}

/* ---- dispatch ---- */

static bool is_data_write(whreq_op op)
{
    return op == WH_OP_CREATE || op == WH_OP_APPEND || op == WH_OP_CONCURRENTAPPEND || op == WH_OP_CONCAT ||
           op == WH_OP_MSCONCAT;
}

void g2s__serve_op(g2s_ctx *c)
{
    whreq_op op = c->wr->op;
    bool locked = is_data_write(op);
    if (locked) g2s__lock(c->s, c->fs, c->path);
    switch (op) {
    case WH_OP_OPEN: op_open(c); break;
    case WH_OP_GETFILESTATUS:
    case WH_OP_MSGETFILESTATUS: op_getfilestatus(c); break;
    case WH_OP_LISTSTATUS:
    case WH_OP_MSLISTSTATUS: op_liststatus(c); break;
    case WH_OP_LISTSTATUS_BATCH: op_liststatus_batch(c); break;
    case WH_OP_GETCONTENTSUMMARY: op_contentsummary(c); break;
    case WH_OP_GETACLSTATUS:
    case WH_OP_MSGETACLSTATUS: op_aclstatus(c); break;
    case WH_OP_CHECKACCESS: op_checkaccess(c); break;
    case WH_OP_GETHOMEDIRECTORY: op_homedir(c); break;
    case WH_OP_CREATE: g2s__create(c); break;
    case WH_OP_APPEND: g2s__append(c, false); break;
    case WH_OP_CONCURRENTAPPEND: g2s__append(c, true); break;
    case WH_OP_CONCAT:
    case WH_OP_MSCONCAT: g2s__concat(c); break;
    case WH_OP_MKDIRS: g2s__mkdirs(c); break;
    case WH_OP_RENAME: g2s__rename(c); break;
    case WH_OP_DELETE: g2s__delete(c); break;
    case WH_OP_SETPERMISSION: g2s__setpermission(c); break;
    case WH_OP_SETOWNER: g2s__setowner(c); break;
    case WH_OP_SETACL:
    case WH_OP_MODIFYACLENTRIES:
    case WH_OP_REMOVEACLENTRIES:
    case WH_OP_REMOVEACL:
    case WH_OP_REMOVEDEFAULTACL: g2s__acl(c); break;
    case WH_OP_SETTIMES: g2s__settimes(c); break;
    case WH_OP_SETEXPIRY: g2s__setexpiry(c); break;
    case WH_OP_GETFILECHECKSUM:
    case WH_OP_UNKNOWN:
    case WH_OP__COUNT:
    default:
        g2s__fail(c, 400, "UnsupportedOperationException", "%s is not supported",
                  c->wr->info ? c->wr->info->name : "this op");
        break;
    }
    if (locked) g2s__unlock(c->s, c->fs, c->path);
}
