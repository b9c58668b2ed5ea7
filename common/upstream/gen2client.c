/*
 * gen2client: Gen2 (DFS) requests on top of httpc (see gen2client.h). A call is copied into a g2call
 * (URL, raw path and query for signing, the caller's header lines) so that it can be sent again: each
 * send gets a fresh x-ms-date and authorization, the same x-ms-client-request-id. In the token modes a
 * call made before the first token arrives is parked in gen2auth and sent from its completion; a 401
 * parks the call once more, asking for a token newer than the one refused, and the call is re-sent
 * once (the body comes again from memory or from the fd range, so this is safe). If no token can be
 * had, the caller gets the original 401, or HTTPC_E_AUTH with the reason when nothing was sent.
 */
#include "gen2client.h"

#include <ctype.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "gen2auth.h"
#include "log.h"
#include "rid.h"
#include "urlcodec.h"

#define GEN2C_MAX_CALL_HDRS 24
#define GEN2C_MAX_URL (16 * 1024)
#define GEN2C_MAX_PATH_CHARS 1024
#define GEN2C_MAX_SEGMENTS 254
#define GEN2C_MAX_ERR_BODY (1u << 20)
#define GEN2C_DEFAULT_VERSION "2021-06-08"

struct gen2c {
    const dp_config *cfg;
    httpc *http;
    g2auth *auth;
    char origin[520];       /* scheme://host[:port] */
    char base_path[300];    /* "/account" (path-style) or "" (host-style) */
    char version[32];
    atomic_bool no_append_flush;  /* the service refused append's flush=true: separate flushes from now on */
};

typedef struct g2call {
    gen2c *c;
    char method[8];
    char *url;
    char *raw_path;
    char *raw_query;        /* NULL when none */
    char *hdrs[GEN2C_MAX_CALL_HDRS];
    int nh;
    bool has_ct;
    char crid[RID_MAX + 1];
    httpc_body_in in;
    const void *in_mem;
    int in_fd;
    uint64_t in_off, in_len;
    httpc_body_out out;
    size_t out_max;
    int out_fd;
    /* HTTPC_BODY_STREAM: the caller's hooks. A 401 that the token retry answers again is not shown to
     * them (swallowed is true while that answer's body runs). */
    void (*on_head)(void *ud, const httpc_resp *resp);
    size_t (*on_body)(void *ud, const char *p, size_t n);
    httpc_ctl *ctl;
    bool swallowed;
    uint64_t gen;           /* token generation the last send used */
    bool retried;
    httpc_resp *held;       /* the 401 kept while a refresh runs */
    void (*done)(void *ud, httpc_resp *resp);
    void *ud;
} g2call;

/* ---------- helpers ---------- */

static void rfc1123_now(char out[40])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday, mons[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool name_is(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* A header line the caller may pass: "Name: value", token name, no control characters. */
static bool header_line_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h) return false;
    for (const char *p = h; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') return false;
    for (const char *p = colon; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
    return true;
}

/* A query the caller encoded: printable ASCII, no space or '#'. */
static bool query_ok(const char *q)
{
    for (; *q; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '#') return false;
    return true;
}

static bool fs_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 63) return false;
    if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]) || s[0] == '$')) return false;
    if (!(islower((unsigned char)s[n - 1]) || isdigit((unsigned char)s[n - 1]))) return false;
    for (size_t i = 1; i < n; i++) {
        char ch = s[i];
        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '-')) return false;
        if (ch == '-' && s[i - 1] == '-') return false;
    }
    return true;
}

static httpc_resp *synth_resp(httpc_result result, const char *msg)
{
    httpc_resp *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->result = result;
    snprintf(r->error, sizeof r->error, "%s", msg);
    dbuf_init(&r->body, 0);
    return r;
}

static void call_free(g2call *k)
{
    if (!k) return;
    free(k->url);
    free(k->raw_path);
    free(k->raw_query);
    for (int i = 0; i < k->nh; i++) free(k->hdrs[i]);
    if (k->held) {
        httpc_resp_free(k->held);
        free(k->held);
    }
    free(k);
}

/* Hand resp to the caller and free the call. */
static void deliver(g2call *k, httpc_resp *resp)
{
    if (k->held == resp) k->held = NULL;
    void (*done)(void *, httpc_resp *) = k->done;
    void *ud = k->ud;
    call_free(k);
    done(ud, resp);
}

/* The call cannot go on: the caller gets the 401 kept from the first try, or a synthesized failure. */
static void deliver_failure(g2call *k, httpc_result result, const char *msg)
{
    httpc_resp *r = k->held ? k->held : synth_resp(result, msg);
    if (!r) {
        /* Out of memory for even the failure: nothing can be reported; do not leak the call. */
        call_free(k);
        return;
    }
    deliver(k, r);
}

static void on_ready(void *ud, bool ok, const char *err);
static void on_http_done(void *ud, httpc_resp *resp);

/* True when a 401 answer will be retried with a fresh token (on_http_done's rule). */
static bool will_retry_401(const g2call *k, long status)
{
    return status == 401 && !k->retried && g2auth_uses_token(k->c->auth);
}

/* Streamed answers: the head goes to the caller unless it is a 401 about to be retried. */
static void stream_head(void *ud, const httpc_resp *resp)
{
    g2call *k = ud;
    k->swallowed = will_retry_401(k, resp->status);
    if (!k->swallowed && k->on_head) k->on_head(k->ud, resp);
}

static size_t stream_body(void *ud, const char *p, size_t n)
{
    g2call *k = ud;
    if (k->swallowed) return n;
    return k->on_body ? k->on_body(k->ud, p, n) : n;
}

/*
 * Send (or park) the call. Returns 0 when it was submitted or parked in gen2auth, -1 with err when it
 * cannot be authenticated, -2 when the engine refused it.
 */
static int dispatch(g2call *k, char *err, size_t errlen)
{
    gen2c *c = k->c;
    for (int attempt = 0; attempt < 3; attempt++) {
        char date[40], line_date[64], line_ver[64], line_crid[RID_MAX + 32], line_cl[48];
        const char *hdrs[HTTPC_MAX_HEADERS + 1];
        int n = 0;
        for (int i = 0; i < k->nh; i++) hdrs[n++] = k->hdrs[i];
        rfc1123_now(date);
        snprintf(line_date, sizeof line_date, "x-ms-date: %s", date);
        snprintf(line_ver, sizeof line_ver, "x-ms-version: %s", c->version);
        hdrs[n++] = line_date;
        hdrs[n++] = line_ver;
        if (k->crid[0]) {
            snprintf(line_crid, sizeof line_crid, "x-ms-client-request-id: %s", k->crid);
            hdrs[n++] = line_crid;
        }
        if (k->in != HTTPC_IN_NONE && k->in_len > 0 && !k->has_ct) hdrs[n++] = "Content-Type: application/octet-stream";
        /* What will be signed: the headers sent plus the Content-Length httpc/libcurl adds. */
        int nsend = n;
        if (k->in != HTTPC_IN_NONE && k->in_len > 0) {
            snprintf(line_cl, sizeof line_cl, "Content-Length: %llu", (unsigned long long)k->in_len);
            hdrs[n++] = line_cl;
        }
        g2auth_req ar = {k->method, k->raw_path, k->raw_query, hdrs, n};
        dbuf authz;
        dbuf_init(&authz, G2AUTH_MAX_TOKEN + 64);
        uint64_t gen = 0;
        int rc = g2auth_authorization(c->auth, &ar, &authz, &gen, err, errlen);
        if (rc == G2AUTH_AGAIN) {
            dbuf_free(&authz);
            int w = g2auth_wait(c->auth, 0, on_ready, k);
            if (w == 1) continue;
            if (w == 0) return 0;
            snprintf(err, errlen, "gen2: out of memory waiting for a token");
            return -1;
        }
        if (rc != 0) {
            dbuf_free(&authz);
            return -1;
        }
        dbuf line_auth;
        dbuf_init(&line_auth, G2AUTH_MAX_TOKEN + 128);
        n = nsend;
        if (authz.len) {
            if (dbuf_printf(&line_auth, "Authorization: %s", authz.data)) {
                memset(authz.data, 0, authz.len);
                dbuf_free(&authz);
                dbuf_free(&line_auth);
                snprintf(err, errlen, "gen2: out of memory");
                return -1;
            }
            hdrs[n++] = line_auth.data;
        }
        if (authz.data) memset(authz.data, 0, authz.len);
        dbuf_free(&authz);
        httpc_req req;
        memset(&req, 0, sizeof req);
        req.method = k->method;
        req.url = k->url;
        for (int i = 0; i < n && i < HTTPC_MAX_HEADERS; i++) req.headers[i] = hdrs[i];
        req.in = k->in;
        req.in_mem = k->in_mem;
        req.in_fd = k->in_fd;
        req.in_off = k->in_off;
        req.in_len = k->in_len;
        req.out = k->out;
        req.out_max = k->out_max;
        req.out_fd = k->out_fd;
        if (k->out == HTTPC_BODY_STREAM) {
            req.on_head = stream_head;
            req.on_body = stream_body;
            req.ctl = k->ctl;
        }
        req.connect_timeout_ms = c->cfg->gen2_connect_timeout_ms;
        req.timeout_ms = c->cfg->gen2_timeout_ms;
        req.done = on_http_done;
        req.ud = k;
        k->gen = gen;
        /* After a successful submit k may already be gone (done ran on the engine thread). */
        rc = httpc_submit(c->http, &req);
        if (line_auth.data) memset(line_auth.data, 0, line_auth.len);
        dbuf_free(&line_auth);
        if (rc != 0) {
            snprintf(err, errlen, "gen2: request not submitted (engine stopping)");
            return -2;
        }
        return 0;
    }
    snprintf(err, errlen, "gen2 auth: token expired before it could be used");
    return -1;
}

static void on_ready(void *ud, bool ok, const char *why)
{
    g2call *k = ud;
    if (!ok) {
        deliver_failure(k, HTTPC_E_AUTH, why);
        return;
    }
    httpc_resp *held = k->held;
    k->held = NULL;
    char err[256];
    int rc = dispatch(k, err, sizeof err);
    if (rc == 0) {
        if (held) {
            httpc_resp_free(held);
            free(held);
        }
        return;
    }
    k->held = held;
    deliver_failure(k, rc == -2 ? HTTPC_E_CANCELLED : HTTPC_E_AUTH, err); /* -1: cannot be authenticated */
}

static void on_http_done(void *ud, httpc_resp *resp)
{
    g2call *k = ud;
    gen2c *c = k->c;
    if (resp->result == HTTPC_OK && will_retry_401(k, resp->status)) {
        k->retried = true;
        k->held = resp;
        int w = g2auth_wait(c->auth, k->gen, on_ready, k);
        if (w == 1) {
            on_ready(k, true, "");
            return;
        }
        if (w == 0) return;
        deliver(k, resp);
        return;
    }
    deliver(k, resp);
}

/* ---------- public ---------- */

int gen2c_new(const dp_config *cfg, httpc *http, gen2c **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *ep = cfg->gen2_endpoint;
    size_t skip = strncmp(ep, "http://", 7) == 0 ? 7 : strncmp(ep, "https://", 8) == 0 ? 8 : 0;
    if (!skip) {
        snprintf(err, errlen, "gen2.endpoint: must start with http:// or https://");
        return -1;
    }
    size_t hostlen = strcspn(ep + skip, "/?#");
    const char *rest = ep + skip + hostlen;
    if (hostlen == 0 || (rest[0] && strcmp(rest, "/") != 0)) {
        snprintf(err, errlen, "gen2.endpoint: must be scheme://host[:port] without a path or query");
        return -1;
    }
    for (size_t i = 0; i < skip + hostlen; i++) {
        if ((unsigned char)ep[i] <= 0x20 || (unsigned char)ep[i] >= 0x7f) {
            snprintf(err, errlen, "gen2.endpoint: contains spaces or control characters");
            return -1;
        }
    }
    if (skip + hostlen >= sizeof ((gen2c *)0)->origin) {
        snprintf(err, errlen, "gen2.endpoint: too long");
        return -1;
    }
    const char *acct = cfg->gen2_account;
    if (!acct[0] || strlen(acct) > 255) {
        snprintf(err, errlen, "gen2.account: required");
        return -1;
    }
    for (const char *p = acct; *p; p++) {
        if (!isalnum((unsigned char)*p)) {
            snprintf(err, errlen, "gen2.account: only letters and digits");
            return -1;
        }
    }
    if (cfg->nmappings <= 0) {
        snprintf(err, errlen, "gen2.mappings: at least one mapping is required");
        return -1;
    }
    for (int i = 0; i < cfg->nmappings; i++) {
        const cfg_mapping *m = &cfg->mappings[i];
        if (m->gen1_prefix[0] != '/') {
            snprintf(err, errlen, "gen2.mappings[%d].gen1_prefix: must be an absolute path", i);
            return -1;
        }
        if (!fs_name_ok(m->filesystem)) {
            snprintf(err, errlen,
                     "gen2.mappings[%d].filesystem: 3-63 characters of a-z, 0-9 and '-', starting and ending with a "
                     "letter or digit, no '--'",
                     i);
            return -1;
        }
    }
    gen2c *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "gen2: out of memory");
        return -1;
    }
    c->cfg = cfg;
    c->http = http;
    memcpy(c->origin, ep, skip + hostlen);
    c->origin[skip + hostlen] = 0;
    if (cfg->gen2_path_style) snprintf(c->base_path, sizeof c->base_path, "/%s", acct);
    snprintf(c->version, sizeof c->version, "%s", cfg->gen2_version[0] ? cfg->gen2_version : GEN2C_DEFAULT_VERSION);
    if (g2auth_new(cfg, http, &c->auth, err, errlen) != 0) {
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int gen2c_reload(gen2c *c, const dp_config *nc, bool check, char *err, size_t errlen)
{
    return g2auth_reload(c->auth, nc, check, err, errlen);
}

void gen2c_stop(gen2c *c)
{
    if (c) g2auth_stop(c->auth);
}

void gen2c_free(gen2c *c)
{
    if (!c) return;
    g2auth_free(c->auth);
    free(c);
}

int gen2c_wait_ready(gen2c *c, unsigned timeout_ms, char *err, size_t errlen)
{
    return g2auth_wait_ready(c->auth, timeout_ms, err, errlen);
}

const char *gen2c_version(const gen2c *c)
{
    return c->version;
}

bool gen2c_append_flush_refused(gen2c *c)
{
    return atomic_load_explicit(&c->no_append_flush, memory_order_relaxed);
}

bool gen2c_check_append_flush_refusal(gen2c *c, const httpc_resp *r)
{
    if (!r || r->result != HTTPC_OK || r->status != 400) return false;
    char code[96];
    gen2c_error_code(r, code, sizeof code);
    if (strcmp(code, "UnsupportedQueryParameter") != 0 && strcmp(code, "InvalidQueryParameterValue") != 0) return false;
    if (!atomic_exchange(&c->no_append_flush, true))
        LOGW("msg=\"Gen2 refused append with flush=true; appends and flushes are separate requests from now on "
             "(set gen2.version to a version the account takes it with, or leave it)\" code=%s x_ms_version=%s",
             code, c->version);
    return true;
}

void gen2c_auth_stats(gen2c *c, g2auth_stats *st)
{
    g2auth_get_stats(c->auth, st);
}

int gen2c_build_target(const gen2c *c, const char *fs, const char *path, dbuf *raw_path)
{
    dbuf_reset(raw_path);
    int rc = dbuf_printf(raw_path, "%s/", c->base_path);
    if (!rc && fs && *fs) rc = url_encode(fs, false, raw_path);
    if (!rc && fs && *fs && path && *path) {
        while (*path == '/') path++;
        rc = dbuf_add(raw_path, "/", 1);
        if (!rc) rc = url_encode(path, true, raw_path);
    }
    return rc;
}

int gen2c_send(gen2c *c, const gen2c_call *call)
{
    static const char *const methods[] = {"PUT", "PATCH", "GET", "HEAD", "DELETE", "POST"};
    bool mok = false;
    for (size_t i = 0; call->method && i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(call->method, methods[i]) == 0) mok = true;
    if (!mok || !call->done) return -1;
    if (call->query && !query_ok(call->query)) return -1;
    if (call->in == HTTPC_IN_MEMORY && !call->in_mem && call->in_len) return -1;
    if (call->client_request_id && !rid_valid(call->client_request_id)) return -1;
    g2call *k = calloc(1, sizeof *k);
    if (!k) return -1;
    k->c = c;
    snprintf(k->method, sizeof k->method, "%s", call->method);
    k->in = call->in;
    k->in_mem = call->in_mem;
    k->in_fd = call->in_fd;
    k->in_off = call->in_off;
    k->in_len = call->in_len;
    k->out = call->out;
    k->out_max = call->out_max;
    k->out_fd = call->out_fd;
    if (call->out == HTTPC_BODY_STREAM && !call->on_body) goto fail;
    k->on_head = call->on_head;
    k->on_body = call->on_body;
    k->ctl = call->ctl;
    k->done = call->done;
    k->ud = call->ud;
    bool own_crid = false;
    for (int i = 0; i < GEN2C_MAX_CALL_HDRS && call->headers[i]; i++) {
        const char *h = call->headers[i];
        if (!header_line_ok(h) || name_is(h, "Authorization") || name_is(h, "x-ms-date") ||
            name_is(h, "x-ms-version") || name_is(h, "Content-Length") || name_is(h, "Date"))
            goto fail;
        if (name_is(h, "x-ms-client-request-id")) own_crid = true;
        if (name_is(h, "Content-Type")) k->has_ct = true;
        if (!(k->hdrs[k->nh] = strdup(h))) goto fail;
        k->nh++;
    }
    if (own_crid) k->crid[0] = '\0';
    else if (call->client_request_id) snprintf(k->crid, sizeof k->crid, "%s", call->client_request_id);
    else rid_new(k->crid);
    dbuf d;
    dbuf_init(&d, GEN2C_MAX_URL);
    if (gen2c_build_target(c, call->fs, call->path, &d)) {
        dbuf_free(&d);
        goto fail;
    }
    k->raw_path = dbuf_take(&d);
    const char *sas = g2auth_sas(c->auth);
    bool hq = call->query && *call->query;
    if (hq || sas) {
        dbuf_init(&d, GEN2C_MAX_URL);
        if (dbuf_printf(&d, "%s%s%s", hq ? call->query : "", hq && sas ? "&" : "", sas ? sas : "")) {
            dbuf_free(&d);
            goto fail;
        }
        k->raw_query = dbuf_take(&d);
    }
    dbuf_init(&d, GEN2C_MAX_URL);
    if (!k->raw_path ||
        dbuf_printf(&d, "%s%s%s%s", c->origin, k->raw_path, k->raw_query ? "?" : "", k->raw_query ? k->raw_query : "")) {
        dbuf_free(&d);
        goto fail;
    }
    k->url = dbuf_take(&d);
    if (!k->url) goto fail;
    char err[256];
    if (dispatch(k, err, sizeof err) != 0) goto fail;
    return 0;
fail:
    call_free(k);
    return -1;
}

/* ---------- mapping ---------- */

/* Decode one UTF-8 sequence at s; returns its length (1-4) and the code point, or 0 when invalid. */
static int utf8_next(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int n;
    uint32_t v, min;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2, v = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3, v = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4, v = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return n;
}

/* Why Gen2 would refuse path (inside the filesystem, no leading '/'), or NULL when it is fine. */
static const char *name_problem(const char *path)
{
    if (!*path) return NULL;
    size_t chars = 0;
    int segs = 1;
    const unsigned char *p = (const unsigned char *)path;
    const unsigned char *seg = p;
    for (;;) {
        if (*p == '/' || *p == 0) {
            size_t len = (size_t)(p - seg);
            if (len == 0) return "empty path segment ('//')";
            if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                return "'.' or '..' segment";
            if (seg[len - 1] == '.') return "a segment ends with '.' (Gen2 refuses such names)";
            if (*p == 0) break;
            if (++segs > GEN2C_MAX_SEGMENTS) return "more than 254 path segments";
            seg = ++p;
            chars++;
            continue;
        }
        uint32_t cp = 0;
        int n = utf8_next(p, &cp);
        if (n == 0) return "not valid UTF-8";
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) return "control character in a name";
        if (cp == 0xfffe || cp == 0xffff) return "non-character code point in a name";
        if (cp == '\\') return "backslash in a name (Gen2 reads it as a path separator)";
        p += n;
        chars++;
    }
    if (chars > GEN2C_MAX_PATH_CHARS) return "path longer than 1024 characters";
    return NULL;
}

gen2c_map_result gen2c_map(const gen2c *c, const char *gen1_path, char fs[64], char *path, size_t pathcap,
                           char *why, size_t whylen)
{
    const dp_config *cfg = c->cfg;
    const cfg_mapping *best = NULL;
    size_t bestlen = 0;
    fs[0] = 0;
    if (pathcap) path[0] = 0;
    if (whylen) why[0] = 0;
    if (!gen1_path || gen1_path[0] != '/') {
        snprintf(why, whylen, "not an absolute path");
        return GEN2C_UNMAPPED;
    }
    int mi = cfg_mapping_of(cfg, gen1_path, &bestlen);
    if (mi >= 0) best = &cfg->mappings[mi];
    if (!best) {
        snprintf(why, whylen, "no mapping covers this path");
        return GEN2C_UNMAPPED;
    }
    snprintf(fs, 64, "%s", best->filesystem);
    const char *rest = gen1_path + bestlen;
    while (*rest == '/') rest++;
    size_t rlen = strlen(rest);
    while (rlen > 0 && rest[rlen - 1] == '/') rlen--;
    const char *pre = best->prefix;
    while (*pre == '/') pre++;
    size_t plen = strlen(pre);
    while (plen > 0 && pre[plen - 1] == '/') plen--;
    size_t need = plen + (plen && rlen ? 1 : 0) + rlen + 1;
    if (need > pathcap) {
        snprintf(why, whylen, "path too long");
        return GEN2C_INVALID_NAME;
    }
    memcpy(path, pre, plen);
    size_t o = plen;
    if (plen && rlen) path[o++] = '/';
    memcpy(path + o, rest, rlen);
    path[o + rlen] = 0;
    const char *problem = name_problem(path);
    if (problem) {
        snprintf(why, whylen, "%s", problem);
        return GEN2C_INVALID_NAME;
    }
    return GEN2C_MAPPED;
}

/* ---------- error codes ---------- */

static json_t *get_ci(json_t *obj, const char *key)
{
    if (!json_is_object(obj)) return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (strcasecmp(k, key) == 0) return v;
    }
    return NULL;
}

static const char *copy_code(const char *s, char *buf, size_t cap)
{
    size_t j = 0;
    for (; *s && j + 1 < cap; s++)
        if ((unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f) buf[j++] = *s;
    buf[j] = 0;
    return buf;
}

const char *gen2c_error_code(const httpc_resp *r, char *buf, size_t cap)
{
    if (!cap) return "";
    buf[0] = 0;
    if (!r) return buf;
    const char *h = httpc_resp_header(r, "x-ms-error-code");
    if (h && *h) return copy_code(h, buf, cap);
    if (!r->body.data || r->body.len == 0 || r->body.len > GEN2C_MAX_ERR_BODY) return buf;
    json_t *j = json_loadb(r->body.data, r->body.len, 0, NULL);
    if (!j) return buf;
    json_t *e = get_ci(j, "error");
    json_t *code = get_ci(e, "code");
    if (!json_is_string(code)) code = get_ci(j, "code");
    if (!json_is_string(code) && json_is_string(e)) code = e;
    if (json_is_string(code)) copy_code(json_string_value(code), buf, cap);
    json_decref(j);
    return buf;
}

gen2c_problem gen2c_classify(httpc_result result, bool unresolved, long status, const char *code)
{
    if (result == HTTPC_E_AUTH) return GEN2C_PROB_AUTHENTICATION;
    if (result == HTTPC_E_CONNECT && unresolved) return GEN2C_PROB_UNREACHABLE;
    if (result != HTTPC_OK || !code) return GEN2C_PROB_NONE;
    /* Codes only: a 403 without one (a proxy in between, a firewall page) is not known to be Gen2's. */
    if (status == 404 && (strcmp(code, "FilesystemNotFound") == 0 || strcmp(code, "ContainerNotFound") == 0))
        return GEN2C_PROB_FS_NOT_FOUND;
    if ((status == 403 && strcmp(code, "AuthenticationFailed") == 0) ||
        (status == 401 && (strcmp(code, "InvalidAuthenticationInfo") == 0 ||
                           strcmp(code, "NoAuthenticationInformation") == 0)))
        return GEN2C_PROB_AUTHENTICATION;
    if (status == 403 && (strncmp(code, "Authorization", 13) == 0 || strcmp(code, "InsufficientAccountPermissions") == 0))
        return GEN2C_PROB_AUTHORIZATION;
    if ((status == 403 || status == 404) &&
        (strcmp(code, "AccountNotFound") == 0 || strcmp(code, "AccountIsDisabled") == 0))
        return GEN2C_PROB_ACCOUNT_NOT_FOUND;
    return GEN2C_PROB_NONE;
}

gen2c_problem gen2c_problem_of(const httpc_resp *r)
{
    /* Only the statuses an account-level code comes with: no JSON parse of every other answer. */
    char code[64] = "";
    if (r->result == HTTPC_OK && (r->status == 401 || r->status == 403 || r->status == 404))
        gen2c_error_code(r, code, sizeof code);
    return gen2c_classify(r->result, r->unresolved, r->status, code);
}

const char *gen2c_problem_name(gen2c_problem p)
{
    switch (p) {
    case GEN2C_PROB_FS_NOT_FOUND: return "filesystem_not_found";
    case GEN2C_PROB_AUTHENTICATION: return "authentication";
    case GEN2C_PROB_AUTHORIZATION: return "authorization";
    case GEN2C_PROB_ACCOUNT_NOT_FOUND: return "account_not_found";
    case GEN2C_PROB_UNREACHABLE: return "unreachable";
    default: return "";
    }
}

bool gen2c_problem_per_fs(gen2c_problem p)
{
    return p == GEN2C_PROB_FS_NOT_FOUND || p == GEN2C_PROB_AUTHORIZATION;
}

int gen2c_rename_source(const gen2c *c, const char *fs, const char *path, dbuf *out)
{
    dbuf_reset(out);
    int rc = dbuf_add(out, "/", 1);
    if (!rc) rc = url_encode(fs ? fs : "", false, out);
    if (!rc && path && *path) {
        while (*path == '/') path++;
        rc = dbuf_add(out, "/", 1);
        if (!rc) rc = url_encode(path, true, out);
    }
    const char *sas = g2auth_sas(c->auth);
    if (!rc && sas) rc = dbuf_printf(out, "?%s", sas);
    return rc;
}
