/*
 * gen1client: builds Gen1 / WebHDFS upstream requests from a writer's parsed request and sends them
 * through httpc. The URL is the configured endpoint, the op's prefix (/WebHdfsExt for
 * CONCURRENTAPPEND and SETEXPIRY, /webhdfs/v1 otherwise), whreq's normalised path percent-encoded
 * again, and the writer's raw query pieces in their order minus write/append/read/noredirect (the
 * dialect decides those); bytes a URL may not carry are escaped, existing escapes are kept so Gen1
 * decodes exactly what the writer meant. Only Authorization, Content-Type and
 * x-ms-client-request-id are passed on. In the hadoop dialect CREATE/APPEND/OPEN go in two steps: a
 * body-less request to the namenode, whose 307 Location is rewritten through gen1.datanode_rewrite and
 * then receives the request with its body; any other answer to step one is the final answer. Each
 * step has the configured timeouts. A streamed answer (HTTPC_BODY_STREAM) is streamed at both steps:
 * the namenode's 307 head and body are swallowed here, any other head goes to the caller at once. Step two is submitted from the httpc completion of step one, so
 * nothing here blocks.
 */
#include "gen1client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gen1auth.h"
#include "urlcodec.h"

#define G1_MAX_URL (512u << 10)        /* endpoint + encoded path + query: far above whreq's limits */
#define G1_MAX_QUERY_PIECES 256
#define G1_STEP1_MAX (1u << 20)        /* body of a namenode answer kept in memory */
#define G1_NHDR 3

struct gen1c {
    httpc *http;
    char endpoint[512];                /* no trailing '/' */
    cfg_dialect dialect;
    cfg_rewrite rewrites[CFG_MAX_REWRITES];
    int nrewrites;
    unsigned connect_timeout_ms, timeout_ms;
    g1a *ident;                        /* the proxy's own identity for gen1c_get, or NULL */
};

/* One writer (or applier) request in flight, possibly in two steps. */
typedef struct g1x {
    gen1c *c;
    const char *method;                /* static string */
    char *hdr[G1_NHDR];                /* "Name: value" copies, kept for step two */
    int nhdr;
    httpc_body_in in;
    const void *in_mem;
    int in_fd;
    uint64_t in_off, in_len;
    httpc_body_out out;
    size_t out_max;
    int out_fd;
    void (*on_head)(void *ud, const httpc_resp *resp); /* HTTPC_BODY_STREAM */
    size_t (*on_body)(void *ud, const char *p, size_t n);
    httpc_ctl *ctl;
    bool swallow;                      /* streaming the namenode's 307: not for the caller */
    bool two_step;                     /* hadoop CREATE/APPEND/OPEN, still at the namenode step */
    bool data_op;                      /* hadoop CREATE/APPEND/OPEN: starts with the namenode step */
    bool once;                         /* a writer's write: each step is sent at most once (httpc_req.once) */
    /* gen1c_get with the proxy's identity: the URL is kept to send again after a token wait or 401 */
    char *url;
    bool ident, retried;
    uint64_t gen;                      /* token generation the request carries */
    httpc_resp *held;                  /* a 401 kept while a newer token is fetched */
    httpc_resp *spare;                 /* allocated up front: the answer when no credential can be had */
    void (*done)(void *ud, httpc_resp *resp);
    void *ud;
} g1x;

int gen1c_new(const dp_config *cfg, httpc *http, gen1c **out, char *err, size_t errlen)
{
    const char *ep = cfg->gen1_endpoint;
    if (ep[0] && strncasecmp(ep, "http://", 7) != 0 && strncasecmp(ep, "https://", 8) != 0) {
        snprintf(err, errlen, "gen1.endpoint: must start with http:// or https://");
        return -1;
    }
    size_t n = strlen(ep);
    while (n > 0 && ep[n - 1] == '/') n--;
    gen1c *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (n >= sizeof c->endpoint) {
        free(c);
        snprintf(err, errlen, "gen1.endpoint: too long");
        return -1;
    }
    memcpy(c->endpoint, ep, n);
    c->endpoint[n] = '\0';
    c->http = http;
    c->dialect = cfg->gen1_dialect;
    c->nrewrites = cfg->gen1_nrewrites < 0 ? 0
                   : cfg->gen1_nrewrites > CFG_MAX_REWRITES ? CFG_MAX_REWRITES : cfg->gen1_nrewrites;
    memcpy(c->rewrites, cfg->gen1_rewrites, sizeof c->rewrites[0] * (size_t)c->nrewrites);
    c->connect_timeout_ms = cfg->gen1_connect_timeout_ms;
    c->timeout_ms = cfg->gen1_timeout_ms;
    *out = c;
    return 0;
}

void gen1c_free(gen1c *c) { free(c); }

static void g1x_free(g1x *x)
{
    for (int i = 0; i < x->nhdr; i++) {
        if (!x->hdr[i]) continue; /* the empty Authorization slot of an identity call */
        memset(x->hdr[i], 0, strlen(x->hdr[i])); /* may hold a token */
        free(x->hdr[i]);
    }
    free(x->url);
    free(x->spare);
    if (x->held) {
        httpc_resp_free(x->held);
        free(x->held);
    }
    free(x);
}

static int g1x_header(g1x *x, const char *name, const char *value)
{
    if (!value) return 0;
    size_t len = strlen(name) + 2 + strlen(value) + 1;
    char *line = malloc(len);
    if (!line) return -1;
    snprintf(line, len, "%s: %s", name, value);
    x->hdr[x->nhdr++] = line;
    return 0;
}

/* True for a byte that may stand as is in a URL query (RFC 3986 pchar / "/" / "?", no '&' or '#'). */
static bool query_safe(unsigned char ch)
{
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) return true;
    return ch != 0 && strchr("-._~!$'()*+,;=:@/?", ch) != NULL;
}

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* Append raw query bytes, keeping valid %XX escapes and escaping whatever a URL may not carry. */
static int add_query_bytes(dbuf *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        int rc;
        if (query_safe(ch) || (ch == '%' && i + 2 < n && is_hex(p[i + 1]) && is_hex(p[i + 2]))) {
            rc = dbuf_add(out, &p[i], 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rc = dbuf_add(out, esc, 3);
        }
        if (rc != 0) return rc;
    }
    return 0;
}

/*
 * Append the pieces of raw (a query string without '?') to out, each preceded by '&' unless it is the
 * first thing after the '?', dropping the one-step flags and noredirect. *op receives the op named by
 * an "op" piece (WH_OP_UNKNOWN when none).
 */
static int add_query(dbuf *out, const char *raw, bool *first, whreq_op *op, bool drop_ident)
{
    url_param *ps = calloc(G1_MAX_QUERY_PIECES, sizeof *ps);
    dbuf name;
    dbuf_init(&name, WHREQ_MAX_NAME);
    int rc = ps ? 0 : -ENOMEM;
    int n = rc == 0 ? url_split_query(raw, ps, G1_MAX_QUERY_PIECES) : 0;
    if (n < 0) rc = n;
    for (int i = 0; rc == 0 && i < n; i++) {
        dbuf_reset(&name);
        if (url_decode(ps[i].name, ps[i].name_len, URL_FORM, &name) != 0) {
            rc = -EINVAL;
            break;
        }
        const char *nm = name.data ? name.data : "";
        if (strcasecmp(nm, "write") == 0 || strcasecmp(nm, "append") == 0 || strcasecmp(nm, "read") == 0 ||
            strcasecmp(nm, "noredirect") == 0)
            continue;
        /* The proxy's own identity replaces the writer's (theirs may be gone or expired). */
        if (drop_ident &&
            (strcmp(nm, "user.name") == 0 || strcmp(nm, "doas") == 0 || strcmp(nm, "delegation") == 0))
            continue;
        if (op && strcasecmp(nm, "op") == 0 && ps[i].value && *op == WH_OP_UNKNOWN)
            *op = whreq_op_from_name(ps[i].value, ps[i].value_len);
        if (!*first) rc = dbuf_add(out, "&", 1);
        *first = false;
        if (rc == 0) rc = add_query_bytes(out, ps[i].name, ps[i].name_len);
        if (rc == 0 && ps[i].value) {
            rc = dbuf_add(out, "=", 1);
            if (rc == 0) rc = add_query_bytes(out, ps[i].value, ps[i].value_len);
        }
    }
    dbuf_free(&name);
    free(ps);
    return rc;
}

static bool is_data_op(whreq_op op) { return op == WH_OP_CREATE || op == WH_OP_APPEND || op == WH_OP_OPEN; }

/* endpoint + prefix + encoded path + "?" + query (+ the adls one-step flag). The op is op_hint, or
 * when that is WH_OP_UNKNOWN the one the query names; it is stored in *op_out. */
static int build_url(const gen1c *c, whreq_prefix prefix, const char *path, const char *raw_query,
                     whreq_op op_hint, const char *ident_query, dbuf *url, whreq_op *op_out)
{
    whreq_op qop = WH_OP_UNKNOWN;
    bool first = true;
    int rc = dbuf_adds(url, c->endpoint);
    if (rc == 0) rc = dbuf_adds(url, prefix == WH_PREFIX_EXT ? "/WebHdfsExt" : "/webhdfs/v1");
    if (rc == 0) rc = url_encode(path && *path ? path : "/", true, url);
    if (rc == 0) rc = dbuf_add(url, "?", 1);
    if (rc == 0 && raw_query) rc = add_query(url, raw_query, &first, &qop, ident_query != NULL);
    if (rc == 0 && ident_query && *ident_query) {
        if (!first) rc = dbuf_add(url, "&", 1);
        first = false;
        if (rc == 0) rc = dbuf_adds(url, ident_query);
    }
    whreq_op op = op_hint != WH_OP_UNKNOWN ? op_hint : qop;
    *op_out = op;
    if (rc == 0 && c->dialect == CFG_DIALECT_ADLS && is_data_op(op)) {
        const char *flag = op == WH_OP_CREATE ? "write=true" : op == WH_OP_APPEND ? "append=true" : "read=true";
        if (!first) rc = dbuf_add(url, "&", 1);
        if (rc == 0) rc = dbuf_adds(url, flag);
    }
    return rc;
}

static int g1x_submit(g1x *x, const char *url);

static void g1x_finish(g1x *x, httpc_resp *resp)
{
    void (*done)(void *, httpc_resp *) = x->done;
    void *ud = x->ud;
    g1x_free(x);
    done(ud, resp);
}

/* Turn resp into a failure of kind r with message msg (no HTTP answer is relayed). */
static void resp_fail(httpc_resp *resp, httpc_result r, const char *msg)
{
    size_t max = resp->body.max;
    httpc_resp_free(resp);
    dbuf_init(&resp->body, max);
    resp->result = r;
    resp->status = 0;
    snprintf(resp->error, sizeof resp->error, "%s", msg);
}

/* A namenode answer that is final: deliver its body the way the caller asked for the final body. */
static void relay_step1_body(g1x *x, httpc_resp *resp)
{
    if (resp->result != HTTPC_OK) return;
    if (x->out == HTTPC_BODY_FD) {
        const char *p = resp->body.data;
        size_t n = resp->body.len;
        while (n > 0) {
            ssize_t w = write(x->out_fd, p, n);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                char msg[128];
                snprintf(msg, sizeof msg, "writing the response body: %s", strerror(errno));
                resp_fail(resp, HTTPC_E_BODY, msg);
                return;
            }
            p += w;
            n -= (size_t)w;
        }
        dbuf_free(&resp->body);
    } else if (x->out == HTTPC_BODY_DISCARD) {
        dbuf_free(&resp->body);
    }
}

/* scheme://authority/rest with the authority mapped through gen1.datanode_rewrite. */
static int redirect_url(const gen1c *c, const char *loc, dbuf *out)
{
    size_t slen;
    if (strncasecmp(loc, "http://", 7) == 0)
        slen = 7;
    else if (strncasecmp(loc, "https://", 8) == 0)
        slen = 8;
    else
        return -1;
    const char *auth = loc + slen;
    size_t alen = strcspn(auth, "/?#");
    if (alen == 0) return -1;
    const char *to = NULL;
    size_t tolen = alen;
    for (int i = 0; i < c->nrewrites && !to; i++) {
        if (strlen(c->rewrites[i].from) == alen && strncasecmp(c->rewrites[i].from, auth, alen) == 0) {
            to = c->rewrites[i].to;
            tolen = strlen(to);
        }
    }
    int rc = dbuf_add(out, loc, slen);
    if (rc == 0) rc = dbuf_add(out, to ? to : auth, tolen);
    if (rc == 0) rc = dbuf_adds(out, auth + alen);
    return rc;
}

static void ident_ready(void *ud, bool ok, const char *why);

/* HTTPC_BODY_STREAM at either step: the namenode's redirect stays here, every other answer goes on. */
static void g1x_on_head(void *ud, const httpc_resp *resp)
{
    g1x *x = ud;
    x->swallow = x->two_step && resp->status == 307;
    if (!x->swallow) x->on_head(x->ud, resp);
}

static size_t g1x_on_body(void *ud, const char *p, size_t n)
{
    g1x *x = ud;
    return x->swallow ? n : x->on_body(x->ud, p, n);
}

static void g1x_done(void *ud, httpc_resp *resp)
{
    g1x *x = ud;
    if (x->ident && !x->retried && resp->result == HTTPC_OK && resp->status == 401 && g1a_refreshable(x->c->ident)) {
        /* The token may have been revoked or rotated early: one more try with a newer one. */
        x->retried = true;
        x->held = resp;
        int w = g1a_wait(x->c->ident, x->gen, ident_ready, x);
        if (w == 1) ident_ready(x, true, "");
        if (w != -1) return;
        x->held = NULL; /* no refresh possible: reported below like any refused identity */
    }
    if (x->ident && resp->result == HTTPC_OK && resp->status == 401) {
        /* Refused credentials are the proxy's problem, not the record's: the caller sees a credential
         * that cannot be had (and waits), never an answer about the path. */
        char msg[200];
        snprintf(msg, sizeof msg, "gen1 answered 401 to the proxy's identity (gen1.auth.mode %s): check gen1.auth",
                 cfg_g1auth_name(g1a_mode(x->c->ident)));
        resp_fail(resp, HTTPC_E_AUTH, msg);
        g1x_finish(x, resp);
        return;
    }
    if (!x->two_step || resp->result != HTTPC_OK || resp->status != 307) {
        if (x->two_step) relay_step1_body(x, resp);
        g1x_finish(x, resp);
        return;
    }
    /* Namenode redirect: send the body to the (rewritten) datanode. */
    const char *loc = httpc_resp_header(resp, "Location");
    dbuf url;
    dbuf_init(&url, G1_MAX_URL);
    if (!loc || redirect_url(x->c, loc, &url) != 0) {
        dbuf_free(&url);
        resp_fail(resp, HTTPC_E_TRANSPORT, "gen1 answered 307 without an absolute http(s) Location");
        g1x_finish(x, resp);
        return;
    }
    x->two_step = false;
    int rc = g1x_submit(x, url.data);
    dbuf_free(&url);
    if (rc != 0) {
        resp_fail(resp, HTTPC_E_CANCELLED, "could not send the datanode request (engine stopping)");
        g1x_finish(x, resp);
        return;
    }
    httpc_resp_free(resp);
    free(resp);
}

static int g1x_submit(g1x *x, const char *url)
{
    if (!x->c->endpoint[0]) return -1; /* no Gen1 configured (phase gen2-only): nothing can be sent */
    httpc_req r = {0};
    r.method = x->method;
    r.url = url;
    int nh = 0;
    for (int i = 0; i < x->nhdr; i++)
        if (x->hdr[i]) r.headers[nh++] = x->hdr[i];
    if (x->out == HTTPC_BODY_STREAM) {
        /* Streamed at both steps (the wrappers keep a namenode 307 to themselves). */
        if (!x->two_step) {
            r.in = x->in;
            r.in_mem = x->in_mem;
            r.in_fd = x->in_fd;
            r.in_off = x->in_off;
            r.in_len = x->in_len;
        }
        r.out = HTTPC_BODY_STREAM;
        r.on_head = g1x_on_head;
        r.on_body = g1x_on_body;
        r.ctl = x->ctl;
    } else if (x->two_step) {
        /* Namenode step: no body; its answer is kept in memory until we know whether it is final. */
        r.out = HTTPC_BODY_MEMORY;
        r.out_max = x->out == HTTPC_BODY_MEMORY && x->out_max ? x->out_max : G1_STEP1_MAX;
    } else {
        r.in = x->in;
        r.in_mem = x->in_mem;
        r.in_fd = x->in_fd;
        r.in_off = x->in_off;
        r.in_len = x->in_len;
        r.out = x->out;
        r.out_max = x->out_max;
        r.out_fd = x->out_fd;
    }
    r.connect_timeout_ms = x->c->connect_timeout_ms;
    r.timeout_ms = x->c->timeout_ms;
    r.once = x->once;
    r.done = g1x_done;
    r.ud = x;
    return httpc_submit(x->c->http, &r);
}

/* Common tail of gen1c_send and gen1c_get: x is filled but for the URL; frees x on failure. */
static int g1x_start(g1x *x, whreq_op op, dbuf *url)
{
    x->data_op = x->c->dialect == CFG_DIALECT_HADOOP && is_data_op(op);
    x->two_step = x->data_op;
    int rc = g1x_submit(x, url->data);
    dbuf_free(url);
    if (rc != 0) g1x_free(x);
    return rc == 0 ? 0 : -1;
}

int gen1c_send(gen1c *c, const gen1c_call *call)
{
    if (!c || !call || !call->req || !call->req->info || !call->done) return -1;
    const whreq *w = call->req;
    g1x *x = calloc(1, sizeof *x);
    if (!x) return -1;
    x->c = c;
    x->method = w->info->method;
    x->once = w->info->is_write;
    x->in = call->in;
    x->in_mem = call->in_mem;
    x->in_fd = call->in_fd;
    x->in_off = call->in_off;
    x->in_len = call->in_len;
    x->out = call->out;
    x->out_max = call->out_max;
    x->out_fd = call->out_fd;
    x->on_head = call->on_head;
    x->on_body = call->on_body;
    x->ctl = call->ctl;
    x->done = call->done;
    x->ud = call->ud;
    dbuf url;
    dbuf_init(&url, G1_MAX_URL);
    whreq_op op;
    if (g1x_header(x, "Authorization", call->authorization) != 0 ||
        g1x_header(x, "Content-Type", call->content_type) != 0 ||
        g1x_header(x, "x-ms-client-request-id", call->client_request_id) != 0 ||
        build_url(c, w->info->prefix, w->path, call->raw_query, w->op, NULL, &url, &op) != 0) {
        dbuf_free(&url);
        g1x_free(x);
        return -1;
    }
    return g1x_start(x, op, &url);
}

/* Finish x (a request with the proxy's identity) with result r and why instead of an answer: no
 * credential could be had. A 401 held for a token refresh is dropped: it, too, only says that. */
static void g1x_fail_auth(g1x *x, httpc_result r, const char *why)
{
    if (x->held) {
        httpc_resp_free(x->held);
        free(x->held);
        x->held = NULL;
    }
    httpc_resp *resp = x->spare;
    x->spare = NULL;
    dbuf_init(&resp->body, x->out_max ? x->out_max : 1);
    resp->result = r;
    snprintf(resp->error, sizeof resp->error, "%s", why);
    g1x_finish(x, resp);
}

/* Put the proxy's current Authorization into x's headers and send x->url. Returns 0 when sent or
 * waiting for a token (ident_ready resumes), 1 when x was finished with an error answer, -1 when
 * the engine refused it (x not finished). */
static int ident_send(g1x *x)
{
    gen1c *c = x->c;
    for (int attempt = 0; attempt < 3; attempt++) {
        dbuf authz, q;
        dbuf_init(&authz, G1_STEP1_MAX);
        dbuf_init(&q, 4096);
        char err[256] = "";
        int rc = g1a_identity(c->ident, &authz, &q, &x->gen, err, sizeof err);
        dbuf_free(&q); /* hadoop pieces are in the URL already */
        if (rc == G1A_AGAIN) {
            dbuf_free(&authz);
            int w = g1a_wait(c->ident, 0, ident_ready, x);
            if (w == 1) continue;
            if (w == 0) return 0;
            g1x_fail_auth(x, HTTPC_E_AUTH, "gen1 auth: cannot wait for a token (stopping or out of memory)");
            return 1;
        }
        if (rc != 0) {
            dbuf_free(&authz);
            g1x_fail_auth(x, HTTPC_E_AUTH, err);
            return 1;
        }
        /* hdr[0] is reserved for the Authorization line (the caller's other headers follow it) */
        if (x->hdr[0]) {
            memset(x->hdr[0], 0, strlen(x->hdr[0]));
            free(x->hdr[0]);
            x->hdr[0] = NULL;
        }
        if (x->nhdr == 0) x->nhdr = 1;
        int hr = 0;
        if (authz.len) {
            int keep = x->nhdr;
            x->nhdr = 0;
            hr = g1x_header(x, "Authorization", authz.data);
            x->nhdr = keep;
        }
        if (authz.data) memset(authz.data, 0, authz.len);
        dbuf_free(&authz);
        if (hr != 0) {
            g1x_fail_auth(x, HTTPC_E_NOMEM, "gen1 auth: out of memory");
            return 1;
        }
        x->two_step = x->data_op;
        return g1x_submit(x, x->url) == 0 ? 0 : -1;
    }
    g1x_fail_auth(x, HTTPC_E_AUTH, "gen1 auth: token expired before it could be used");
    return 1;
}

/* A token wait ended (token engine thread, or in the caller when ready at once). */
static void ident_ready(void *ud, bool ok, const char *why)
{
    g1x *x = ud;
    if (!ok) {
        g1x_fail_auth(x, HTTPC_E_AUTH, why && *why ? why : "gen1 auth: no token");
        return;
    }
    httpc_resp *held = x->held;
    x->held = NULL;
    int rc = ident_send(x);
    if (rc == -1) { /* the engine refused it: x is still ours */
        x->held = held;
        g1x_fail_auth(x, HTTPC_E_CANCELLED, "gen1: request not submitted (engine stopping)");
        return;
    }
    if (held) {
        httpc_resp_free(held);
        free(held);
    }
}

void gen1c_set_identity(gen1c *c, g1a *ident)
{
    if (c) c->ident = g1a_active(ident) ? ident : NULL;
}

httpc *gen1c_http(const gen1c *c) { return c->http; }

int gen1c_own(gen1c *c, const gen1c_own_call *call)
{
    if (!c || !call || !call->path || !call->op_and_params || !call->done) return -1;
    g1x *x = calloc(1, sizeof *x);
    if (!x) return -1;
    x->c = c;
    x->method = call->method ? call->method : "GET";
    x->once = call->once;
    x->in = call->in;
    x->in_mem = call->in_mem;
    x->in_fd = call->in_fd;
    x->in_off = call->in_off;
    x->in_len = call->in_len;
    x->out = call->out;
    x->out_max = call->out_max;
    x->out_fd = call->out_fd;
    x->done = call->done;
    x->ud = call->ud;
    dbuf url;
    dbuf_init(&url, G1_MAX_URL);
    whreq_op op = WH_OP_UNKNOWN;
    if (c->ident) {
        /* The proxy's own identity: the writer's Authorization and identity pieces are dropped. */
        dbuf authz, q;
        dbuf_init(&authz, 16);
        dbuf_init(&q, 4096);
        char err[64];
        /* hadoop pieces are static; a token is fetched at send time (ident_send) */
        int rc = g1a_mode(c->ident) == CFG_G1AUTH_HADOOP ? g1a_identity(c->ident, &authz, &q, NULL, err, sizeof err) : 0;
        dbuf_free(&authz);
        x->nhdr = 1; /* hdr[0]: the Authorization slot, filled at send time */
        if (rc != 0 || g1x_header(x, "Content-Type", call->content_type) != 0 ||
            g1x_header(x, "x-ms-client-request-id", call->client_request_id) != 0 ||
            build_url(c, call->prefix, call->path, call->op_and_params, WH_OP_UNKNOWN, q.data ? q.data : "", &url,
                      &op) != 0) {
            dbuf_free(&q);
            dbuf_free(&url);
            g1x_free(x);
            return -1;
        }
        dbuf_free(&q);
        x->data_op = c->dialect == CFG_DIALECT_HADOOP && is_data_op(op);
        x->ident = true;
        x->url = dbuf_take(&url);
        dbuf_free(&url);
        x->spare = calloc(1, sizeof *x->spare);
        if (!x->url || !x->spare) {
            g1x_free(x);
            return -1;
        }
        int sr = ident_send(x);
        if (sr == -1) g1x_free(x);
        return sr == -1 ? -1 : 0;
    }
    /* Same URL rules as a writer's request; the op is read from op_and_params. */
    if (g1x_header(x, "Authorization", call->authorization) != 0 ||
        g1x_header(x, "Content-Type", call->content_type) != 0 ||
        g1x_header(x, "x-ms-client-request-id", call->client_request_id) != 0 ||
        build_url(c, call->prefix, call->path, call->op_and_params, WH_OP_UNKNOWN, NULL, &url, &op) != 0) {
        dbuf_free(&url);
        g1x_free(x);
        return -1;
    }
    return g1x_start(x, op, &url);
}

int gen1c_get(gen1c *c, const char *path, const char *op_and_params, const char *authorization,
              httpc_body_out out, size_t out_max, int out_fd, void (*done)(void *ud, httpc_resp *resp), void *ud)
{
    gen1c_own_call call = {.method = "GET", .prefix = WH_PREFIX_WEBHDFS, .path = path, .op_and_params = op_and_params,
                           .authorization = authorization, .out = out, .out_max = out_max, .out_fd = out_fd,
                           .done = done, .ud = ud};
    return gen1c_own(c, &call);
}
