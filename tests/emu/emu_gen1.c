/*
 * emu_gen1: the Gen1 / WebHDFS service of dualpipe-emu. Every request is parsed by whreq, counted
 * and possibly failed by the fault hook, checked for the bearer token, redirected when the dialect
 * asks for it (ADLS: 307 to the same URL plus write/append/read=true; Hadoop: 307 from the namenode
 * listener to the datanode listener), and then executed against emu_store under its lock. Ops
 * without a body run at once in begin(). Ops with a body (CREATE, APPEND, CONCURRENTAPPEND with
 * data, MSCONCAT) are validated under the lock first and then stream the body outside the lock:
 * APPEND and CONCURRENTAPPEND mark the file busy and pwrite() past its committed length; CREATE
 * writes into a fresh node kept in a hidden staging directory (a name with a control character,
 * which whreq never lets a client address) and moves it into place at the end, so an overwrite that
 * fails half-way leaves the old file intact. Nothing becomes visible until end() publishes it; a
 * body that is too large or a client that goes away leaves the namespace and the data as they were.
 * Semantics follow protocols.md §1 and HDFS (permissions, rename, delete), with the choices noted
 * where they are made. This file holds the service object, the request life cycle, authentication,
 * the dialect redirects, dispatch and error replies; the ops live in emu_gen1_ns.c (namespace and
 * metadata) and emu_gen1_data.c (file bytes), on top of emu_gen1_path.c (see emu_gen1_int.h).
 */
#include "emu_gen1.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dbuf.h"
#include "emu_gen1_int.h"
#include "log.h"
#include "rid.h"
#include "whreq.h"

#define G1_DEFAULT_MAX_BODY (4u * 1024 * 1024)
#define G1_DEFAULT_LEASE_MS (10 * 60 * 1000)

/* ------------------------------------------------------------------------------------------ */
/* errors and replies                                                                           */

__attribute__((format(printf, 4, 5))) int g1_fail(g1_ctx *c, int status, const char *exc, const char *fmt, ...)
{
    va_list ap;
    c->err.status = status;
    c->err.exception = exc;
    va_start(ap, fmt);
    vsnprintf(c->err.message, sizeof c->err.message, fmt, ap);
    va_end(ap);
    return -1;
}

int g1_fail_arg(g1_ctx *c, const char *what, const char *value)
{
    return g1_fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"%s\": %.120s", what,
                   value);
}

static void send_err(emu_req *r, const whreq_err *e)
{
    dbuf b;
    dbuf_init(&b, 8192);
    if (whreq_err_json(e, &b) == 0)
        emu_resp_json(r, e->status, b.data);
    else
        emu_resp_empty(r, e->status);
    dbuf_free(&b);
}

int g1_jstr(dbuf *b, const char *s)
{
    int rc = dbuf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (rc == 0 && *p) {
        const unsigned char *q = p;
        while (*q && *q != '"' && *q != '\\' && *q >= 0x20 && *q != 0x7f) q++;
        if (q > p) rc = dbuf_add(b, p, (size_t)(q - p));
        if (rc == 0 && *q) {
            if (*q == '"' || *q == '\\') {
                char e[2] = {'\\', (char)*q};
                rc = dbuf_add(b, e, 2);
            } else {
                rc = dbuf_printf(b, "\\u%04x", *q);
            }
            q++;
        }
        p = q;
    }
    return rc ? rc : dbuf_add(b, "\"", 1);
}

void g1_reply_bool(emu_req *r, bool v)
{
    emu_resp_json(r, 200, v ? "{\"boolean\":true}" : "{\"boolean\":false}");
}

int g1_reply_dbuf(g1_ctx *c, int rc, dbuf *b)
{
    if (rc != 0) {
        dbuf_free(b);
        return g1_fail(c, 500, "RuntimeException", "response too large");
    }
    emu_resp_json(c->r, 200, b->data);
    dbuf_free(b);
    return 0;
}

bool g1_principal_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= EMU_MAX_PRINCIPAL) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == ',' || *p == ':') return false;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* request life cycle                                                                          */

typedef int (*g1_fn)(g1_ctx *c);

static int run_locked(g1_ctx *c, g1_fn fn)
{
    emu_store *s = c->g->store;
    int rc;
    emu_store_lock(s);
    while ((rc = fn(c)) == G1_AGAIN) emu_store_wait(s);
    emu_store_unlock(s);
    if (rc < 0) send_err(c->r, &c->err);
    return rc;
}

static g1_fn handler_for(whreq_op op)
{
    switch (op) {
    case WH_OP_GETFILESTATUS:
    case WH_OP_MSGETFILESTATUS: return g1_op_getfilestatus;
    case WH_OP_LISTSTATUS:
    case WH_OP_MSLISTSTATUS: return g1_op_liststatus;
    case WH_OP_LISTSTATUS_BATCH: return g1_op_liststatus_batch;
    case WH_OP_GETCONTENTSUMMARY: return g1_op_contentsummary;
    case WH_OP_GETACLSTATUS:
    case WH_OP_MSGETACLSTATUS: return g1_op_aclstatus;
    case WH_OP_CHECKACCESS: return g1_op_checkaccess;
    case WH_OP_GETHOMEDIRECTORY: return g1_op_homedir;
    case WH_OP_OPEN: return g1_op_open;
    case WH_OP_MKDIRS: return g1_op_mkdirs;
    case WH_OP_RENAME: return g1_op_rename;
    case WH_OP_DELETE: return g1_op_delete;
    case WH_OP_CONCAT: return g1_op_concat;
    case WH_OP_SETPERMISSION: return g1_op_setpermission;
    case WH_OP_SETOWNER: return g1_op_setowner;
    case WH_OP_SETACL:
    case WH_OP_MODIFYACLENTRIES:
    case WH_OP_REMOVEACLENTRIES:
    case WH_OP_REMOVEACL:
    case WH_OP_REMOVEDEFAULTACL: return g1_op_acl;
    case WH_OP_SETTIMES: return g1_op_settimes;
    case WH_OP_SETEXPIRY: return g1_op_setexpiry;
    case WH_OP_CREATE: return g1_create_begin;
    case WH_OP_APPEND: return g1_append_begin;
    case WH_OP_CONCURRENTAPPEND: return g1_cappend_begin;
    default: return NULL;
    }
}

/* With tokens configured, the request's bearer token names its identity (counted per op). */
static int check_auth(g1_ctx *c, char who[EMU_IDENT_NAME])
{
    who[0] = 0;
    if (!emu_ident_required(c->g->ident)) return 0;
    const char *why = NULL;
    if (emu_ident_check(c->g->ident, emu_req_header(c->r, "Authorization"), who, &why) == 0) return 0;
    snprintf(who, EMU_IDENT_NAME, "(refused)");
    return g1_fail(c, 401, "SecurityException", "%s", why);
}

/* The identity /counters reports: the token's name, else the Hadoop caller ("USER" or "USER as DOAS"). */
static void count_identity(g1_ctx *c, const char *who)
{
    char label[EMU_IDENT_NAME + EMU_MAX_PRINCIPAL * 2];
    if (who[0]) {
        snprintf(label, sizeof label, "%s", who);
    } else {
        const char *u = c->q->parsed ? whreq_param_get(&c->q->w, "user.name") : NULL;
        const char *d = c->q->parsed ? whreq_param_get(&c->q->w, "doas") : NULL;
        snprintf(label, sizeof label, "%.60s%s%.60s", u && *u ? u : "(none)", d && *d ? " as " : "", d && *d ? d : "");
    }
    emu_req_count_identity(c->r, label, c->q->parsed ? c->q->w.info->name : "UNKNOWN");
}

/* POST /{tenant}/oauth2/token or /{tenant}/oauth2/v2.0/token: the token endpoint (body follows). */
static bool token_request(g1_ctx *c)
{
    emu_gen1 *g = c->g;
    if (!emu_ident_oauth(g->ident) || strcmp(emu_req_method(c->r), "POST") != 0) return false;
    const char *p = emu_req_path(c->r);
    if (*p != '/') return false;
    const char *slash = strchr(p + 1, '/');
    if (!slash || (size_t)(slash - p - 1) >= sizeof c->q->tenant || slash == p + 1) return false;
    bool v1 = strcmp(slash, "/oauth2/token") == 0, v2 = strcmp(slash, "/oauth2/v2.0/token") == 0;
    if (!v1 && !v2) return false;
    memcpy(c->q->tenant, p + 1, (size_t)(slash - p - 1));
    c->q->tenant[slash - p - 1] = 0;
    c->q->token_v2 = v2;
    c->q->kind = G1_K_TOKEN;
    dbuf_init(&c->q->body, 64 * 1024);
    return true;
}

static void token_answer(g1_ctx *c)
{
    dbuf out;
    dbuf_init(&out, 64 * 1024);
    int st = emu_ident_token_endpoint(c->g->ident, c->q->token_v2, c->q->tenant, c->q->body.data ? c->q->body.data : "",
                                      &out);
    if (c->q->body.data) memset(c->q->body.data, 0, c->q->body.len);
    emu_resp_json(c->r, st, out.data ? out.data : "{}");
    dbuf_free(&out);
}

static int identify(g1_ctx *c)
{
    const char *u = whreq_param_get(&c->q->w, "doas");
    const char *what = "doas";
    if (!u || !*u) {
        u = whreq_param_get(&c->q->w, "user.name");
        what = "user.name";
    }
    if (!u || !*u)
        u = c->g->default_user;
    else if (!g1_principal_ok(u))
        return g1_fail_arg(c, what, u);
    snprintf(c->q->user, sizeof c->q->user, "%s", u);
    c->q->super = strcmp(c->q->user, c->g->superuser) == 0;
    return 0;
}

static bool on_datanode(emu_gen1 *g, emu_req *r, bool *dn_set)
{
    pthread_mutex_lock(&g->dn_mu);
    *dn_set = g->datanode[0] != '\0';
    bool on = *dn_set && strcmp(g->datanode, emu_req_base_url(r)) == 0;
    pthread_mutex_unlock(&g->dn_mu);
    return on;
}

static void redirect(g1_ctx *c, const char *url)
{
    bool noredirect = false;
    whreq_err e;
    if (whreq_get_bool(&c->q->w, "noredirect", false, &noredirect, &e) != 0) noredirect = false;
    if (noredirect) {
        dbuf b;
        dbuf_init(&b, strlen(url) * 2 + 64);
        if (dbuf_adds(&b, "{\"Location\":") == 0 && g1_jstr(&b, url) == 0 && dbuf_adds(&b, "}") == 0)
            emu_resp_json(c->r, 200, b.data);
        else
            emu_resp_empty(c->r, 500);
        dbuf_free(&b);
        return;
    }
    emu_resp_header(c->r, "Location", url);
    emu_resp_empty(c->r, 307);
}

/* The namenode half of Hadoop's two-step OPEN/APPEND checks that the file exists first. */
static int nn_check(g1_ctx *c)
{
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node || res.node->type != EMU_FILE)
        return g1_fail(c, 404, "FileNotFoundException", "File %.200s not found.", c->q->w.path);
    return 0;
}

/* Returns true when the request was answered with a redirect (or an error). */
static bool dialect_step(g1_ctx *c)
{
    emu_gen1 *g = c->g;
    whreq_op op = c->q->w.op;
    bool data = op == WH_OP_CREATE || op == WH_OP_APPEND || op == WH_OP_OPEN;
    dbuf url;
    if (g->hadoop) {
        bool dn_set;
        bool on_dn = on_datanode(g, c->r, &dn_set);
        if (on_dn && !data) {
            g1_fail(c, 400, "IllegalArgumentException", "Invalid operation %s on a datanode", c->q->w.info->name);
            send_err(c->r, &c->err);
            return true;
        }
        if (!data || on_dn || !dn_set) return false; /* no datanode listener: serve in place */
        if (op != WH_OP_CREATE && run_locked(c, nn_check) < 0) return true;
        const char *base = emu_req_base_url(c->r);
        char dn[sizeof g->datanode];
        pthread_mutex_lock(&g->dn_mu);
        snprintf(dn, sizeof dn, "%s", g->datanode);
        pthread_mutex_unlock(&g->dn_mu);
        dbuf_init(&url, 64 * 1024);
        if (dbuf_printf(&url, "%s%s&namenoderpcaddress=%s", dn, emu_req_target(c->r),
                        strncmp(base, "http://", 7) == 0 ? base + 7 : base) == 0)
            redirect(c, url.data);
        else
            emu_resp_empty(c->r, 500);
        dbuf_free(&url);
        return true;
    }
    if (!data) return false;
    const char *flag = op == WH_OP_CREATE ? "write" : op == WH_OP_APPEND ? "append" : "read";
    bool v = false;
    if (whreq_get_bool(&c->q->w, flag, false, &v, &c->err) != 0) {
        send_err(c->r, &c->err);
        return true;
    }
    if (v) return false;
    /* ADLS two-step: the same URL plus the flag, absolute, whatever the request carried. */
    dbuf_init(&url, 64 * 1024);
    const char *target = emu_req_target(c->r);
    if (dbuf_printf(&url, "%s%s%s%s=true", emu_req_base_url(c->r), target, strchr(target, '?') ? "&" : "?", flag) == 0)
        redirect(c, url.data);
    else
        emu_resp_empty(c->r, 500);
    dbuf_free(&url);
    return true;
}

static void g1_begin(void *ctx, emu_req *r)
{
    emu_gen1 *g = ctx;
    g1_req *q = calloc(1, sizeof *q);
    if (!q) {
        if (emu_req_fault(r, "UNKNOWN") == 0) emu_resp_empty(r, 503);
        return;
    }
    q->fd = -1;
    emu_req_set_data(r, q);
    if (!g->hadoop) {
        /* ADLS Gen1 names every answer (errors too) with its own request id; Hadoop sends none. */
        char id[RID_MAX + 1];
        rid_new(id);
        emu_resp_header(r, "x-ms-request-id", id);
    }
    g1_ctx c = {.g = g, .r = r, .q = q};
    if (token_request(&c)) {
        if (emu_req_fault(r, "TOKEN") != 0) q->skip = true;
        return;
    }
    whreq_err perr;
    q->parsed = whreq_parse(emu_req_method(r), emu_req_target(r), &q->w, &perr) == 0;
    if (emu_req_fault(r, q->parsed ? q->w.info->name : "UNKNOWN") != 0) {
        q->skip = true;
        return;
    }
    if (!q->parsed) {
        send_err(r, &perr);
        return;
    }
    char who[EMU_IDENT_NAME];
    int arc = check_auth(&c, who);
    count_identity(&c, who);
    if (arc != 0 || identify(&c) != 0) {
        if (c.err.status == 401) emu_resp_header(r, "WWW-Authenticate", "Bearer");
        send_err(r, &c.err);
        return;
    }
    if (dialect_step(&c)) return;
    whreq_op op = q->w.op;
    bool body_op = op == WH_OP_CREATE || op == WH_OP_APPEND || op == WH_OP_CONCURRENTAPPEND || op == WH_OP_MSCONCAT;
    if (body_op && g1_data_params(&c) != 0) {
        send_err(r, &c.err);
        return;
    }
    if (op == WH_OP_MSCONCAT) {
        if (emu_req_has_body(r)) {
            q->kind = G1_K_MSCONCAT;
            dbuf_init(&q->body, (size_t)g->max_body);
            return;
        }
        run_locked(&c, g1_op_concat); /* the old form: sources in the query */
        return;
    }
    g1_fn fn = handler_for(op);
    if (!fn) {
        g1_fail(&c, 400, "UnsupportedOperationException", "%s is not supported", q->w.info->name);
        send_err(r, &c.err);
        return;
    }
    run_locked(&c, fn);
}

static void g1_body(void *ctx, emu_req *r, const char *data, size_t n)
{
    emu_gen1 *g = ctx;
    g1_req *q = emu_req_get_data(r);
    if (!q || q->skip || emu_req_answered(r) || q->kind == G1_K_NONE) return;
    g1_ctx c = {.g = g, .r = r, .q = q};
    if (q->kind == G1_K_TOKEN) {
        if (dbuf_add(&q->body, data, n) != 0) emu_resp_json(r, 413, "{\"error\":\"invalid_request\"}");
        return;
    }
    if (q->kind == G1_K_MSCONCAT) {
        if (dbuf_add(&q->body, data, n) != 0) {
            g1_fail(&c, 413, "IllegalArgumentException", "MSCONCAT body exceeds the limit of %" PRIu64 " bytes",
                    g->max_body);
            send_err(r, &c.err);
        }
        return;
    }
    if (q->got + n > g->max_body) {
        g1_fail(&c, 413, "IllegalArgumentException", "Request body exceeds the limit of %" PRIu64 " bytes",
                g->max_body);
        send_err(r, &c.err);
        return;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(q->fd, data + done, n - done, (off_t)(q->base + (int64_t)(q->got + done)));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            g1_fail(&c, 500, "RuntimeException", "write failed: %s", w < 0 ? strerror(errno) : "short write");
            send_err(r, &c.err);
            return;
        }
        done += (size_t)w;
    }
    q->got += n;
}

static void g1_end(void *ctx, emu_req *r)
{
    emu_gen1 *g = ctx;
    g1_req *q = emu_req_get_data(r);
    if (!q || q->skip || emu_req_answered(r)) return;
    g1_ctx c = {.g = g, .r = r, .q = q};
    switch (q->kind) {
    case G1_K_CREATE: run_locked(&c, g1_create_finish); break;
    case G1_K_APPEND:
    case G1_K_CAPPEND: run_locked(&c, g1_append_finish); break;
    case G1_K_MSCONCAT: run_locked(&c, g1_op_msconcat_body); break;
    case G1_K_TOKEN: token_answer(&c); break;
    default:
        g1_fail(&c, 500, "RuntimeException", "request was not handled");
        send_err(r, &c.err);
        break;
    }
}

static void g1_done(void *ctx, emu_req *r, bool completed)
{
    emu_gen1 *g = ctx;
    g1_req *q = emu_req_get_data(r);
    if (!q) return;
    emu_req_set_data(r, NULL);
    bool data = q->kind == G1_K_CREATE || q->kind == G1_K_APPEND || q->kind == G1_K_CAPPEND;
    if (data && !q->published) g1_rollback(g, q);
    if (q->fd >= 0) close(q->fd);
    if (q->parsed) whreq_free(&q->w);
    dbuf_free(&q->body);
    free(q);
}

static void g1_fault(void *ctx, emu_req *r, int status, int retry_after_s, const char *code)
{
    whreq_err e;
    const char *exc;
    switch (status) {
    case 400: exc = "IllegalArgumentException"; break;
    case 401: exc = "SecurityException"; break;
    case 403: exc = "AccessControlException"; break;
    case 404: exc = "FileNotFoundException"; break;
    case 429: exc = "ThrottledException"; break;
    case 503: exc = "RetriableException"; break;
    default: exc = status >= 500 ? "RuntimeException" : "IOException"; break;
    }
    e.status = status;
    e.exception = code ? code : exc;
    snprintf(e.message, sizeof e.message, "Injected fault: HTTP %d", status);
    if (status == 413 && emu_req_body_bytes(r) > emu_req_max_body(r)) {
        /* not a rule: the glue's body limit (see g1_data_params) */
        e.exception = "IllegalArgumentException";
        snprintf(e.message, sizeof e.message, "Request body exceeds the limit of %" PRIu64 " bytes",
                 emu_req_max_body(r));
    }
    if (retry_after_s > 0) {
        char v[24];
        snprintf(v, sizeof v, "%d", retry_after_s);
        emu_resp_header(r, "Retry-After", v);
    }
    send_err(r, &e);
}

/* ------------------------------------------------------------------------------------------ */

int emu_gen1_new(const emu_gen1_opts *o, emu_gen1 **out, emu_service *svc)
{
    emu_gen1 *g = calloc(1, sizeof *g);
    if (!g || !o || !o->store) {
        if (o) emu_ident_free(o->ident);
        free(g);
        return -1;
    }
    pthread_mutex_init(&g->dn_mu, NULL);
    g->store = o->store;
    g->hadoop = o->hadoop;
    g->max_body = o->max_body ? o->max_body : G1_DEFAULT_MAX_BODY;
    g->lease_ms = o->lease_ms > 0 ? o->lease_ms : G1_DEFAULT_LEASE_MS;
    g->ident = o->ident;
    g->ls_limit = o->ls_limit ? o->ls_limit : 1000;
    g->superuser = strdup(o->superuser && *o->superuser ? o->superuser : "hdfs");
    g->default_user = strdup(o->default_user && *o->default_user ? o->default_user
                             : g->superuser                      ? g->superuser
                                                                 : "hdfs");
    if (!g->superuser || !g->default_user) {
        emu_gen1_free(g);
        return -1;
    }
    /* CREATE bodies that were in flight when the emulator stopped never happened. */
    emu_store_lock(g->store);
    emu_node *st = emu_store_child(emu_store_root(g->store), G1_STAGING);
    if (st && emu_store_remove(g->store, st) != 0) LOGW("gen1: cannot clear the staging directory");
    emu_store_unlock(g->store);
    svc->ctx = g;
    svc->begin = g1_begin;
    svc->body = g1_body;
    svc->end = g1_end;
    svc->done = g1_done;
    svc->fault = g1_fault;
    *out = g;
    return 0;
}

void emu_gen1_set_datanode(emu_gen1 *g, const char *datanode_base_url)
{
    pthread_mutex_lock(&g->dn_mu);
    snprintf(g->datanode, sizeof g->datanode, "%s", datanode_base_url ? datanode_base_url : "");
    size_t n = strlen(g->datanode);
    if (n > 0 && g->datanode[n - 1] == '/') g->datanode[n - 1] = '\0';
    pthread_mutex_unlock(&g->dn_mu);
}

void emu_gen1_free(emu_gen1 *g)
{
    if (!g) return;
    pthread_mutex_destroy(&g->dn_mu);
    emu_ident_free(g->ident);
    free(g->superuser);
    free(g->default_user);
    free(g);
}
