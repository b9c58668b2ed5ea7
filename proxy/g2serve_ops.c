/*
 * g2serve_ops: each WebHDFS op served on Gen2 (g2serve.h), as straight-line code over synchronous
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
#include "rid.h"
#include "urlcodec.h"

/* ---- small helpers ---- */

static g2resp *head(g2s_ctx *c, const char *path, const char *query)
{
    return g2s__call(c, "HEAD", path, query, NULL, NULL, -1, 0, 0, 0);
}

static bool is_404(const g2resp *r)
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
static int stat_path(g2s_ctx *c, const char *path, g2a_node *n, g2resp **keep)
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
        r = head(c, "", "action=getAccessControl");
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
    g2resp *r = head(c, path, NULL);
    if (is_404(r)) {
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

static void parent_of(const char *path, char *out, size_t cap)
{
    const char *s = strrchr(path, '/');
    snprintf(out, cap, "%.*s", s ? (int)(s - path) : 0, path);
}

static const char *leaf_of(const char *path)
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
static void own_created(g2s_ctx *c, const char *path)
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
    int f = stat_path(c, c->path, &n, NULL);
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
    int f = stat_path(c, c->path, &n, NULL);
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
    int f = stat_path(c, c->path, &n, NULL);
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
    int f = stat_path(c, c->path, &n, NULL);
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
    g2resp *r = head(c, c->path, "action=getAccessControl");
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
    g2resp *r = head(c, c->path, q);
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
    int f = stat_path(c, c->path, &n, NULL);
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

/* ---- data writes ---- */

/* Gen1's answer to a write on a file another writer's lease holds (ADLS error 0x83090a16). */
static void fail_leased(g2s_ctx *c)
{
    g2s__fail(c, 500, "RuntimeException",
              "%s failed with error 0x83090a16 (the file is locked by another writer's lease): %s", c->wr->info->name,
              c->wr->path);
}

/* Append the spooled body at pos (chunks of XLATE_CHUNK_MAX) and flush per policy. 0, or -1 answered. */
static int write_body(g2s_ctx *c, uint64_t pos, whreq_sync sync, uint64_t *end)
{
    const g2s_request *rq = c->rq;
    uint64_t n = rq->body_fd >= 0 ? rq->body_len : 0;
    uint64_t done = 0;
    xlate_err xe;
    while (done < n) {
        uint64_t k = n - done > XLATE_CHUNK_MAX ? XLATE_CHUNK_MAX : n - done;
        xlate_g2req x = {0};
        if (xlate_append(pos + done, &x, &xe) != 0) {
            g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
            return -1;
        }
        g2resp *r = g2s__call(c, x.method, c->path, x.query, (const char *const *)x.headers, NULL, rq->body_fd,
                              rq->body_off + done, k, 64 * 1024);
        xlate_g2req_free(&x);
        if (!g2s__ok(r)) {
            g2s__fail_gen2(c, r, c->wr->path);
            g2s__free(r);
            return -1;
        }
        g2s__free(r);
        done += k;
    }
    *end = pos + n;
    xlate_flush fl = xlate_flush_policy(sync, n);
    if (fl == XLATE_FLUSH_NONE) return 0;
    xlate_g2req x = {0};
    if (xlate_flush_req(*end, fl == XLATE_FLUSH_CLOSE, &x, &xe) != 0) {
        g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
        return -1;
    }
    g2resp *r = g2s__xcall(c, c->path, &x);
    xlate_g2req_free(&x);
    int rc = 0;
    if (!g2s__ok(r)) {
        g2s__fail_gen2(c, r, c->wr->path);
        rc = -1;
    }
    g2s__free(r);
    return rc;
}

static void op_create(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_err e;
    bool overwrite, create_parent;
    whreq_sync sync;
    if (whreq_get_bool(w, "overwrite", false, &overwrite, &e) != 0 ||
        whreq_get_bool(w, "createparent", true, &create_parent, &e) != 0 ||
        whreq_get_sync(w, WH_SYNC_CLOSE, &sync, &e) != 0)
        return g2s__fail_err(c, &e);
    const char *perm = whreq_param_get(w, "permission");
    const char *lease = whreq_param_get(w, "leaseid");
    if (!c->path[0]) return g2s__fail(c, 403, "FileAlreadyExistsException", "%s already exists as a directory", w->path);
    if (g2s__lease_check(c->s, c->fs, c->path, lease) != 0) return fail_leased(c);
    g2a_node n;
    char parent[G2S_PATH_MAX];
    parent_of(c->path, parent, sizeof parent);
    if (!create_parent) {
        int f = stat_path(c, parent, &n, NULL);
        if (f < 0) return;
        if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "Parent directory doesn't exist: %s", w->path);
        if (!n.is_dir) return g2s__fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory");
    }
    if (overwrite) {
        int f = stat_path(c, c->path, &n, NULL);
        if (f < 0) return;
        if (f == 1 && n.is_dir)
            return g2s__fail(c, 403, "FileAlreadyExistsException", "%s already exists as a directory", w->path);
    }
    xlate_g2req x = {0};
    xlate_err xe;
    /* WebHDFS's defaults when none is given (644 files, 755 directories), not Gen2's umask 0027 */
    if (xlate_create(overwrite, perm && *perm ? perm : G2S_FILE_MODE, &x, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"permission\": %s",
                         xe.message);
    g2resp *r = g2s__xcall(c, c->path, &x);
    xlate_g2req_free(&x);
    if (!g2s__ok(r)) {
        char code[96];
        g2s__code(r, code, sizeof code);
        const char *type = r->result == HTTPC_OK ? httpc_resp_header(r, "x-ms-existing-resource-type") : NULL;
        if (xlate_already_exists(r->status, code) && type && strcasecmp(type, "directory") == 0)
            g2s__fail(c, 403, "FileAlreadyExistsException", "%s already exists as a directory", w->path);
        else if (xlate_already_exists(r->status, code))
            g2s__fail(c, 403, "FileAlreadyExistsException", "File already exists: %s", w->path);
        else if (r->result == HTTPC_OK && r->status == 409 && strcmp(code, "PathConflict") == 0)
            g2s__fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %s", w->path);
        else g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        return;
    }
    g2s__free(r);
    own_created(c, c->path);
    uint64_t end = 0;
    if (write_body(c, 0, sync, &end) != 0) return;
    g2s__lease_after(c->s, c->fs, c->path, lease, sync != WH_SYNC_CLOSE);
    g2s__answer(c, 201, NULL, 0);
}

static void op_append(g2s_ctx *c, bool concurrent)
{
    const whreq *w = c->wr;
    whreq_err e;
    int64_t offset = -1;
    whreq_sync sync;
    if ((!concurrent && whreq_get_i64(w, "offset", -1, &offset, &e) != 0) ||
        whreq_get_sync(w, concurrent ? WH_SYNC_DATA : WH_SYNC_CLOSE, &sync, &e) != 0)
        return g2s__fail_err(c, &e);
    bool autocreate = false;
    if (concurrent) {
        const char *mode = whreq_param_get(w, "appendmode");
        if (mode && *mode) {
            if (strcasecmp(mode, "autocreate") != 0)
                return g2s__fail(c, 400, "IllegalArgumentException",
                                 "Invalid value for webhdfs parameter \"appendMode\": %s", mode);
            autocreate = true;
        }
    }
    g2a_node n;
    int f = stat_path(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 1 && n.is_dir)
        return g2s__fail(c, 404, "FileNotFoundException", "%s: %s", concurrent ? "Path is not a file" :
                         "Failed to append to non-existent file", w->path);
    if (f == 0) {
        if (!concurrent)
            return g2s__fail(c, 404, "FileNotFoundException", "Failed to append to non-existent file %s", w->path);
        if (!autocreate) return g2s__fail(c, 404, "FileNotFoundException", "File %s does not exist.", w->path);
        xlate_g2req x = {0};
        xlate_err xe;
        if (xlate_create(false, G2S_FILE_MODE, &x, &xe) != 0) return g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
        g2resp *r = g2s__xcall(c, c->path, &x);
        xlate_g2req_free(&x);
        char code[96];
        bool raced = r->result == HTTPC_OK && xlate_already_exists(r->status, g2s__code(r, code, sizeof code));
        if (!g2s__ok(r) && !raced) {
            if (r->result == HTTPC_OK && r->status == 409)
                g2s__fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory");
            else g2s__fail_gen2(c, r, w->path);
            g2s__free(r);
            return;
        }
        if (!raced) own_created(c, c->path);
        g2s__free(r);
        n.length = 0;
    }
    const char *lease = whreq_param_get(w, "leaseid");
    if (!concurrent && g2s__lease_check(c->s, c->fs, c->path, lease) != 0) return fail_leased(c);
    if (offset >= 0 && offset != n.length)
        return g2s__fail(c, 400, "BadOffsetException",
                         "APPEND failed with error: the offset %" PRId64 " is not the end of file %s (length %" PRId64
                         ")",
                         offset, w->path, n.length);
    uint64_t end = 0;
    if (write_body(c, (uint64_t)n.length, sync, &end) != 0) return;
    if (!concurrent) g2s__lease_after(c->s, c->fs, c->path, lease, sync != WH_SYNC_CLOSE);
    g2s__answer(c, 200, NULL, 0);
}

/* CONCAT / MSCONCAT: copy on Gen2 (README: nothing is committed before the last byte is staged). */
static void op_concat(g2s_ctx *c)
{
    const whreq *w = c->wr;
    xlate_paths src = {0};
    xlate_err xe;
    char *body = NULL;
    size_t blen = 0;
    whreq_err e;
    bool delete_dir = false;
    if (whreq_get_bool(w, "deletesourcedirectory", false, &delete_dir, &e) != 0) return g2s__fail_err(c, &e);
    const char *list = whreq_param_get(w, "sources");
    if (w->op == WH_OP_CONCAT && (!list || !*list))
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param sources for op: %s is null or empty",
                         w->info->name);
    if (w->op == WH_OP_MSCONCAT && c->rq->body_fd >= 0 && c->rq->body_len > 0) {
        if (c->rq->body_len > (16u << 20))
            return g2s__fail(c, 413, "IllegalArgumentException", "MSCONCAT body too large");
        blen = (size_t)c->rq->body_len;
        body = malloc(blen + 1);
        if (!body) return g2s__fail(c, 503, "RetriableException", "the proxy is out of memory; retry later");
        size_t got = 0;
        while (got < blen) {
            ssize_t k = pread(c->rq->body_fd, body + got, blen - got, (off_t)(c->rq->body_off + got));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            got += (size_t)k;
        }
        if (got != blen) {
            free(body);
            return g2s__fail(c, 500, "IOException", "the proxy could not read the spooled request body");
        }
        body[blen] = '\0';
    }
    if (xlate_concat_sources(w->op, list, body, blen, &src, &xe) != 0) {
        free(body);
        return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
    }
    free(body);
    char (*sp)[G2S_PATH_MAX] = calloc((size_t)src.n, sizeof *sp);
    int64_t *slen = calloc((size_t)src.n, sizeof *slen);
    char *buf = malloc(G2S_COPY_CHUNK);
    g2a_node t;
    int64_t pos = 0;
    bool created = false;
    if (!sp || !slen || !buf) {
        g2s__fail(c, 503, "RetriableException", "the proxy is out of memory; retry later");
        goto out;
    }
    /* Check everything first (as Gen1 does), so a refusal changes nothing. */
    for (int i = 0; i < src.n; i++) {
        if (strcmp(src.v[i], w->path) == 0) {
            g2s__fail(c, 400, "IllegalArgumentException", "concat: target %s is among the sources", w->path);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(src.v[i], src.v[j]) == 0) {
                g2s__fail(c, 400, "IllegalArgumentException", "concat: source %s is given twice", src.v[i]);
                goto out;
            }
        char fs[64];
        if (g2s__map(c, src.v[i], fs, sp[i], sizeof sp[i]) != 0) goto out;
        if (strcmp(fs, c->fs) != 0) {
            g2s__fail(c, 400, "IllegalArgumentException",
                      "concat: source %s is on another Gen2 filesystem than the target", src.v[i]);
            goto out;
        }
        g2a_node sn;
        int f = stat_path(c, sp[i], &sn, NULL);
        if (f < 0) goto out;
        if (f == 0) {
            g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", src.v[i]);
            goto out;
        }
        if (sn.is_dir) {
            g2s__fail(c, 400, "IllegalArgumentException", "concat: source %s is not a file", src.v[i]);
            goto out;
        }
        slen[i] = sn.length;
    }
    int f = stat_path(c, c->path, &t, NULL);
    if (f < 0) goto out;
    if (f == 1 && t.is_dir) {
        g2s__fail(c, 400, "IllegalArgumentException", "concat: target %s is not a file", w->path);
        goto out;
    }
    if (f == 0 && w->op == WH_OP_CONCAT) {
        g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", w->path);
        goto out;
    }
    if (f == 0) {
        xlate_g2req x = {0};
        if (xlate_create(false, G2S_FILE_MODE, &x, &xe) != 0) {
            g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
            goto out;
        }
        g2resp *r = g2s__xcall(c, c->path, &x);
        xlate_g2req_free(&x);
        if (!g2s__ok(r)) {
            g2s__fail_gen2(c, r, w->path);
            g2s__free(r);
            goto out;
        }
        g2s__free(r);
        own_created(c, c->path);
        created = true;
    } else {
        pos = t.length;
    }
    /* Stage every source's bytes after the target's end; nothing is visible before the one flush. */
    for (int i = 0; i < src.n; i++) {
        for (int64_t o = 0; o < slen[i];) {
            int64_t k = slen[i] - o > (int64_t)G2S_COPY_CHUNK ? (int64_t)G2S_COPY_CHUNK : slen[i] - o;
            char range[96];
            snprintf(range, sizeof range, "Range: bytes=%" PRId64 "-%" PRId64, o, o + k - 1);
            const char *h[] = {range, NULL};
            g2resp *r = g2s__call(c, "GET", sp[i], NULL, h, NULL, -1, 0, 0, G2S_COPY_CHUNK + 1);
            if (!g2s__ok(r) || r->body.len != (size_t)k) {
                if (g2s__ok(r)) g2s__fail(c, 500, "RuntimeException", "concat: source %s changed while copied", src.v[i]);
                else g2s__fail_gen2(c, r, src.v[i]);
                g2s__free(r);
                goto undo;
            }
            memcpy(buf, r->body.data, (size_t)k);
            g2s__free(r);
            xlate_g2req x = {0};
            if (xlate_append((uint64_t)pos, &x, &xe) != 0) {
                g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
                goto undo;
            }
            r = g2s__call(c, x.method, c->path, x.query, (const char *const *)x.headers, buf, -1, 0, (uint64_t)k,
                          64 * 1024);
            xlate_g2req_free(&x);
            if (!g2s__ok(r)) {
                g2s__fail_gen2(c, r, w->path);
                g2s__free(r);
                goto undo;
            }
            g2s__free(r);
            o += k;
            pos += k;
        }
    }
    xlate_g2req x = {0};
    if (xlate_flush_req((uint64_t)pos, true, &x, &xe) != 0) {
        g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
        goto undo;
    }
    g2resp *r = g2s__xcall(c, c->path, &x);
    xlate_g2req_free(&x);
    if (!g2s__ok(r)) {
        g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        goto undo;
    }
    g2s__free(r);
    /* The target holds the result: now the sources go (or the one directory holding them). */
    char *dir = delete_dir ? xlate_concat_source_dir(&src, w->path) : NULL;
    int failed = 0;
    if (dir) {
        char ddir[G2S_PATH_MAX], fs[64];
        if (g2s__map(c, dir, fs, ddir, sizeof ddir) != 0) {
            free(dir);
            goto out;
        }
        xlate_g2req d = {0};
        if (xlate_delete(true, NULL, &d, &xe) == 0) {
            g2resp *dr = g2s__xcall(c, ddir, &d);
            if (!g2s__ok(dr) && !is_404(dr)) failed++;
            g2s__free(dr);
        }
        xlate_g2req_free(&d);
        free(dir);
    } else {
        for (int i = 0; i < src.n; i++) {
            xlate_g2req d = {0};
            if (xlate_delete(false, NULL, &d, &xe) == 0) {
                g2resp *dr = g2s__xcall(c, sp[i], &d);
                if (!g2s__ok(dr) && !is_404(dr)) failed++;
                g2s__free(dr);
            }
            xlate_g2req_free(&d);
        }
    }
    if (failed)
        g2s__fail(c, 500, "RuntimeException",
                  "concat: %s holds the concatenation, but %d source(s) could not be deleted; delete them", w->path,
                  failed);
    else g2s__answer(c, 200, NULL, 0);
    goto out;
undo:
    /* Staged appends are never committed without the flush; a target this request made goes again. */
    if (created) {
        xlate_g2req d = {0};
        if (xlate_delete(false, NULL, &d, &xe) == 0) g2s__free(g2s__xcall(c, c->path, &d));
        xlate_g2req_free(&d);
    }
out:
    free(buf);
    free(slen);
    free(sp);
    xlate_paths_free(&src);
}

/* ---- namespace ---- */

static void op_mkdirs(g2s_ctx *c)
{
    const char *perm = whreq_param_get(c->wr, "permission");
    if (!c->path[0]) {
        g2a_node n;
        if (stat_path(c, "", &n, NULL) == 1) g2s__answer_bool(c, true);
        return;
    }
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_mkdirs(perm && *perm ? perm : G2S_DIR_MODE, &x, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"permission\": %s",
                         xe.message);
    g2resp *r = g2s__xcall(c, c->path, &x);
    xlate_g2req_free(&x);
    char code[96];
    const char *type = r->result == HTTPC_OK ? httpc_resp_header(r, "x-ms-existing-resource-type") : NULL;
    if (r->result == HTTPC_OK && (r->status == 201 || r->status == 200)) {
        own_created(c, c->path);
        g2s__answer_bool(c, true);
    } else if (r->result == HTTPC_OK && xlate_mkdirs_ok(r->status, type)) g2s__answer_bool(c, true);
    else if (r->result == HTTPC_OK && xlate_already_exists(r->status, g2s__code(r, code, sizeof code)))
        g2s__fail(c, 403, "FileAlreadyExistsException", "Path is not a directory: %s", c->wr->path);
    else if (r->result == HTTPC_OK && r->status == 409)
        g2s__fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %s", c->wr->path);
    else g2s__fail_gen2(c, r, c->wr->path);
    g2s__free(r);
}

static void op_delete(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_err e;
    bool recursive;
    if (whreq_get_bool(w, "recursive", false, &recursive, &e) != 0) return g2s__fail_err(c, &e);
    const char *ctx_id = whreq_param_get(w, "filecontextid");
    if (!c->path[0]) return g2s__answer_bool(c, false); /* the root is never deleted (HDFS answers false) */
    g2a_node n;
    int f = stat_path(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 0) return g2s__answer_bool(c, false);
    char cond[160] = "";
    if (ctx_id && *ctx_id) {
        if (n.is_dir || strcmp(n.etag, ctx_id) != 0)
            return g2s__fail(c, 500, "RuntimeException", "DELETE failed with error: StreamID mismatch for %s", w->path);
        snprintf(cond, sizeof cond, "If-Match: \"%s\"", n.etag);
    }
    char *token = NULL;
    for (;;) {
        xlate_g2req x = {0};
        xlate_err xe;
        if (xlate_delete(recursive, token, &x, &xe) != 0) {
            g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
            break;
        }
        const char *h[XLATE_MAX_HEADERS + 2] = {0};
        int nh = 0;
        for (int i = 0; i < x.nheaders; i++) h[nh++] = x.headers[i];
        if (cond[0]) h[nh++] = cond;
        g2resp *r = g2s__call(c, x.method, c->path, x.query, h, NULL, -1, 0, 0, 64 * 1024);
        xlate_g2req_free(&x);
        char code[96];
        g2s__code(r, code, sizeof code);
        if (g2s__ok(r)) {
            const char *next = httpc_resp_header(r, "x-ms-continuation");
            free(token);
            token = next && *next ? strdup(next) : NULL;
            g2s__free(r);
            if (token) continue;
            g2s__lease_drop(c->s, c->fs, c->path);
            g2s__answer_bool(c, true);
        } else if (is_404(r) && strcmp(code, "FilesystemNotFound") != 0) {
            g2s__answer_bool(c, false); /* gone meanwhile */
            g2s__free(r);
        } else if (r->result == HTTPC_OK && strcmp(code, "DirectoryNotEmpty") == 0) {
            g2s__fail(c, 403, "PathIsNotEmptyDirectoryException", "`%s is non empty': Directory is not empty", w->path);
            g2s__free(r);
        } else if (r->result == HTTPC_OK && r->status == 412) {
            g2s__fail(c, 500, "RuntimeException", "DELETE failed with error: StreamID mismatch for %s", w->path);
            g2s__free(r);
        } else {
            g2s__fail_gen2(c, r, w->path);
            g2s__free(r);
        }
        break;
    }
    free(token);
}

static bool under(const char *a, const char *b) /* Gen2 path b strictly under a */
{
    size_t la = strlen(a);
    if (!a[0]) return b[0] != '\0';
    return strncmp(a, b, la) == 0 && b[la] == '/';
}

/* True when directory path has at least one entry (-1: answered). */
static int dir_has_entries(g2s_ctx *c, const char *path)
{
    dbuf q;
    dbuf_init(&q, 8192);
    int rc = dbuf_adds(&q, "resource=filesystem&recursive=false&maxResults=1&directory=");
    if (rc == 0) rc = url_encode(path, false, &q);
    g2resp *r = rc == 0 ? g2s__call(c, "GET", "", q.data, NULL, NULL, -1, 0, 0, 1u << 20) : NULL;
    dbuf_free(&q);
    if (!g2s__ok(r)) {
        g2s__fail_gen2(c, r, c->wr->path);
        g2s__free(r);
        return -1;
    }
    json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    int has = json_array_size(json_object_get(doc, "paths")) > 0 ? 1 : 0;
    json_decref(doc);
    g2s__free(r);
    return has;
}

static void op_rename(g2s_ctx *c)
{
    const whreq *w = c->wr;
    const char *d = whreq_param_get(w, "destination");
    if (!d || !*d)
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param destination for op: RENAME is null or empty");
    bool r2, ow;
    xlate_err xe;
    if (xlate_rename_options(whreq_param_get(w, "renameoptions"), &r2, &ow, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
    whreq_err e;
    char *dst = NULL;
    if (whreq_norm_path(d, &dst, &e) != 0) return g2s__fail_err(c, &e);
    char dfs[64], dpath[G2S_PATH_MAX], target[2 * G2S_PATH_MAX + 2], pp[G2S_PATH_MAX];
    g2a_node sn, dn, tn;
    if (g2s__map(c, dst, dfs, dpath, sizeof dpath) != 0) goto out;
    if (strcmp(dfs, c->fs) != 0) {
        g2s__fail(c, 403, "IOException", "rename across Gen2 filesystems is not supported: %s to %s", w->path, dst);
        goto out;
    }
    int f = c->path[0] ? stat_path(c, c->path, &sn, NULL) : 1;
    if (f < 0) goto out;
    if (f == 0 || !c->path[0]) {
        if (r2 && f == 0) g2s__fail(c, 404, "FileNotFoundException", "rename source %s is not found.", w->path);
        else if (r2) g2s__fail(c, 403, "IOException", "rename source cannot be the root");
        else g2s__answer_bool(c, false);
        goto out;
    }
    if (strcmp(dpath, c->path) == 0) {
        if (r2) g2s__fail(c, 403, "FileAlreadyExistsException", "The source %s and destination %s are the same", w->path, dst);
        else g2s__answer_bool(c, !sn.is_dir);
        goto out;
    }
    int df = stat_path(c, dpath, &dn, NULL);
    if (df < 0) goto out;
    snprintf(target, sizeof target, "%s", dpath);
    if (!r2) {
        if (df == 1 && dn.is_dir) {
            /* HDFS: into an existing directory */
            int tn_len = snprintf(target, sizeof target, "%s%s%s", dpath, dpath[0] ? "/" : "", leaf_of(c->path));
            if (tn_len < 0 || (size_t)tn_len >= sizeof target) {
                g2s__fail(c, 400, "IllegalArgumentException", "rename destination too long: %s", dst);
                goto out;
            }
            int tf = stat_path(c, target, &tn, NULL);
            if (tf < 0) goto out;
            if (tf == 1) {
                g2s__answer_bool(c, strcmp(target, c->path) == 0);
                goto out;
            }
        } else if (df == 1) {
            g2s__answer_bool(c, false);
            goto out;
        } else {
            parent_of(dpath, pp, sizeof pp);
            g2a_node pn;
            int pf = stat_path(c, pp, &pn, NULL);
            if (pf < 0) goto out;
            if (pf == 0 || !pn.is_dir) {
                g2s__answer_bool(c, false);
                goto out;
            }
        }
        if (under(c->path, target)) {
            g2s__fail(c, 403, "IOException", "Rename destination %s is a directory or file under source %s", dst, w->path);
            goto out;
        }
    } else {
        if (under(c->path, dpath)) {
            g2s__fail(c, 403, "IOException", "Rename destination %s is a directory or file under source %s", dst, w->path);
            goto out;
        }
        parent_of(dpath, pp, sizeof pp);
        g2a_node pn;
        int pf = stat_path(c, pp, &pn, NULL);
        if (pf < 0) goto out;
        if (pf == 0 || !pn.is_dir) {
            if (pf == 1) g2s__fail(c, 403, "ParentNotDirectoryException", "rename destination parent of %s is a file.", dst);
            else g2s__fail(c, 404, "FileNotFoundException", "rename destination parent of %s not found.", dst);
            goto out;
        }
        if (df == 1) {
            if (!ow) {
                g2s__fail(c, 403, "FileAlreadyExistsException", "rename destination %s already exists.", dst);
                goto out;
            }
            if (dn.is_dir != sn.is_dir) {
                g2s__fail(c, 403, "IOException", "Source %s and destination %s must both be %s", w->path, dst,
                          dn.is_dir ? "directories" : "files");
                goto out;
            }
            if (dn.is_dir) {
                int has = dir_has_entries(c, dpath);
                if (has < 0) goto out;
                if (has) {
                    g2s__fail(c, 403, "IOException", "rename destination directory is not empty: %s", dst);
                    goto out;
                }
                /* Gen2 does not replace a directory: the empty one goes first */
                xlate_g2req dx = {0};
                if (xlate_delete(false, NULL, &dx, &xe) == 0) g2s__free(g2s__xcall(c, dpath, &dx));
                xlate_g2req_free(&dx);
            }
        }
    }
    dbuf src;
    dbuf_init(&src, 3 * G2S_PATH_MAX);
    if (gen2c_rename_source(c->s->g2, c->fs, c->path, &src) != 0) {
        dbuf_free(&src);
        g2s__fail(c, 500, "RuntimeException", "rename: the source could not be encoded");
        goto out;
    }
    char *token = NULL;
    for (;;) {
        xlate_g2req x = {0};
        if (xlate_rename(src.data, r2 && ow, token, &x, &xe) != 0) {
            g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
            break;
        }
        g2resp *r = g2s__xcall(c, target, &x);
        xlate_g2req_free(&x);
        if (g2s__ok(r)) {
            const char *next = httpc_resp_header(r, "x-ms-continuation");
            free(token);
            token = next && *next ? strdup(next) : NULL;
            g2s__free(r);
            if (token) continue;
            g2s__answer_bool(c, true);
            break;
        }
        char code[96];
        g2s__code(r, code, sizeof code);
        if (r->result == HTTPC_OK && strcmp(code, "SourcePathNotFound") == 0 && !r2) g2s__answer_bool(c, false);
        else if (r->result == HTTPC_OK && strcmp(code, "PathAlreadyExists") == 0 && !r2) g2s__answer_bool(c, false);
        else g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        break;
    }
    free(token);
    dbuf_free(&src);
out:
    free(dst);
}

/* ---- metadata ---- */

static void send_simple(g2s_ctx *c, xlate_g2req *x)
{
    g2resp *r = g2s__xcall(c, c->path, x);
    xlate_g2req_free(x);
    if (g2s__ok(r)) g2s__answer(c, 200, NULL, 0);
    else g2s__fail_gen2(c, r, c->wr->path);
    g2s__free(r);
}

static void op_setpermission(g2s_ctx *c)
{
    const char *perm = whreq_param_get(c->wr, "permission");
    if (!perm || !*perm)
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param permission for op: SETPERMISSION is null");
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_setpermission(perm, &x, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"permission\": %s",
                         xe.message);
    send_simple(c, &x);
}

/* A writer's name on its way to Gen2 through the identity map (NULL: refused, answered). */
static const char *name_to_gen2(g2s_ctx *c, idm_kind kind, const char *name)
{
    if (!name || !*name) return NULL;
    const char *id = idm_lookup(c->map, kind, name);
    if (id || c->s->id_pol == IDM_KEEP || !c->map) return id ? id : name;
    g2s__fail(c, 400, "IllegalArgumentException", "%s %s has no mapping in gen2.identity_map", kind == IDM_USER ? "user" : "group",
              name);
    return NULL;
}

static void op_setowner(g2s_ctx *c)
{
    const char *owner = whreq_param_get(c->wr, "owner"), *group = whreq_param_get(c->wr, "group");
    if ((!owner || !*owner) && (!group || !*group))
        return g2s__fail(c, 400, "IllegalArgumentException", "Both owner and group are empty.");
    const char *o = owner && *owner ? name_to_gen2(c, IDM_USER, owner) : NULL;
    if (c->answered) return;
    const char *g = group && *group ? name_to_gen2(c, IDM_GROUP, group) : NULL;
    if (c->answered) return;
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_setowner(o, g, &x, &xe) != 0) return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
    send_simple(c, &x);
}

static void op_acl(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_op op = w->op;
    const char *spec = whreq_param_get(w, "aclspec");
    bool needs = op == WH_OP_SETACL || op == WH_OP_MODIFYACLENTRIES || op == WH_OP_REMOVEACLENTRIES;
    if (needs && (!spec || !*spec))
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param aclspec for op: %s is null or empty",
                         w->info->name);
    dbuf mapped, acl;
    dbuf_init(&mapped, 1u << 20);
    dbuf_init(&acl, 1u << 20);
    if (needs && c->map) {
        bool empty = false;
        idm_result *res = calloc(1, sizeof *res);
        idm_err ie;
        int rc = res ? idm_acl(c->map, IDM_KEEP, spec, op != WH_OP_REMOVEACLENTRIES, &mapped, &empty, res, &ie) : -1;
        bool missing = res && res->unmapped > 0 && c->s->id_pol != IDM_KEEP;
        char names[200] = "";
        if (missing) idm_result_names(res, names, sizeof names);
        free(res);
        if (rc != 0) {
            g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"aclspec\": %s",
                      res ? ie.message : "out of memory");
            goto out;
        }
        if (missing) {
            g2s__fail(c, 400, "IllegalArgumentException", "aclspec names identities not in gen2.identity_map: %s", names);
            goto out;
        }
        spec = mapped.data ? mapped.data : "";
    }
    for (int attempt = 0; attempt < XLATE_ACL_ATTEMPTS; attempt++) {
        g2resp *r = head(c, c->path, "action=getAccessControl");
        if (!g2s__ok(r)) {
            g2s__fail_gen2(c, r, w->path);
            g2s__free(r);
            goto out;
        }
        const char *type = httpc_resp_header(r, "x-ms-resource-type");
        bool is_dir = type && strcasecmp(type, "directory") == 0;
        xlate_err xe;
        dbuf_reset(&acl);
        if (xlate_acl_apply(op, spec, httpc_resp_header(r, "x-ms-acl"), httpc_resp_header(r, "x-ms-permissions"),
                            is_dir, &acl, &xe) != 0) {
            g2s__free(r);
            g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"aclspec\": %s", xe.message);
            goto out;
        }
        const char *et = httpc_resp_header(r, "ETag");
        char etag[160];
        snprintf(etag, sizeof etag, "%s", et ? et : "");
        g2s__free(r);
        xlate_g2req x = {0};
        if (xlate_setacl(acl.data ? acl.data : "", etag, &x, &xe) != 0) {
            g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
            goto out;
        }
        r = g2s__xcall(c, c->path, &x);
        xlate_g2req_free(&x);
        if (g2s__ok(r)) {
            g2s__answer(c, 200, NULL, 0);
            g2s__free(r);
            goto out;
        }
        bool again = r->result == HTTPC_OK && r->status == 412;
        if (!again) g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        if (!again) goto out;
    }
    g2s__fail(c, 503, "RetriableException", "the ACL of %s kept changing while it was updated; retry", w->path);
out:
    dbuf_free(&mapped);
    dbuf_free(&acl);
}

static void op_settimes(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_err e;
    int64_t mt, at;
    if (whreq_get_i64(w, "modificationtime", -1, &mt, &e) != 0 || whreq_get_i64(w, "accesstime", -1, &at, &e) != 0)
        return g2s__fail_err(c, &e);
    if (mt < -1 || at < -1)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"%s\"",
                         mt < -1 ? "modificationtime" : "accesstime");
    for (int attempt = 0; attempt < XLATE_ACL_ATTEMPTS; attempt++) {
        g2a_node n;
        g2resp *r = NULL;
        int f = stat_path(c, c->path, &n, &r);
        if (f < 0) return;
        if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", w->path);
        if (mt == -1 && at == -1) {
            g2s__free(r);
            return g2s__answer(c, 200, NULL, 0);
        }
        if (!r) return g2s__fail(c, 400, "IllegalArgumentException", "SETTIMES is not supported on the filesystem root");
        dbuf props;
        dbuf_init(&props, 64 * 1024);
        xlate_err xe;
        char len[32];
        snprintf(len, sizeof len, "%" PRId64, n.length);
        int rc = xlate_settimes_props(httpc_resp_header(r, "x-ms-properties"), len, whreq_param_get(w, "modificationtime"),
                                      whreq_param_get(w, "accesstime"), &props, &xe);
        const char *et = httpc_resp_header(r, "ETag");
        char etag[160];
        snprintf(etag, sizeof etag, "%s", et ? et : "");
        g2s__free(r);
        if (rc != 0) {
            dbuf_free(&props);
            return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
        }
        xlate_g2req x = {0};
        rc = xlate_setprops(props.data ? props.data : "", etag, &x, &xe);
        dbuf_free(&props);
        if (rc != 0) return g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
        r = g2s__xcall(c, c->path, &x);
        xlate_g2req_free(&x);
        if (g2s__ok(r)) {
            g2s__free(r);
            return g2s__answer(c, 200, NULL, 0);
        }
        bool again = r->result == HTTPC_OK && r->status == 412;
        if (!again) g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        if (!again) return;
    }
    g2s__fail(c, 503, "RetriableException", "%s kept changing while its times were set; retry", w->path);
}

static void op_setexpiry(g2s_ctx *c)
{
    const char *opt = whreq_param_get(c->wr, "expiryoption");
    if (!opt || !*opt)
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param expiryOption for op: SETEXPIRY is null");
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_expiry(opt, whreq_param_get(c->wr, "expiretime"), &x, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
    g2a_node n;
    int f = stat_path(c, c->path, &n, NULL);
    if (f == 0) g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", c->wr->path);
    else if (f == 1 && n.is_dir)
        g2s__fail(c, 400, "IllegalArgumentException", "SETEXPIRY applies to files only: %s", c->wr->path);
    if (f != 1 || c->answered) {
        xlate_g2req_free(&x);
        return;
    }
    send_simple(c, &x);
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
    case WH_OP_CREATE: op_create(c); break;
    case WH_OP_APPEND: op_append(c, false); break;
    case WH_OP_CONCURRENTAPPEND: op_append(c, true); break;
    case WH_OP_CONCAT:
    case WH_OP_MSCONCAT: op_concat(c); break;
    case WH_OP_MKDIRS: op_mkdirs(c); break;
    case WH_OP_RENAME: op_rename(c); break;
    case WH_OP_DELETE: op_delete(c); break;
    case WH_OP_SETPERMISSION: op_setpermission(c); break;
    case WH_OP_SETOWNER: op_setowner(c); break;
    case WH_OP_SETACL:
    case WH_OP_MODIFYACLENTRIES:
    case WH_OP_REMOVEACLENTRIES:
    case WH_OP_REMOVEACL:
    case WH_OP_REMOVEDEFAULTACL: op_acl(c); break;
    case WH_OP_SETTIMES: op_settimes(c); break;
    case WH_OP_SETEXPIRY: op_setexpiry(c); break;
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
