/*
 * gen2auth: Gen2 credentials (see gen2auth.h). Shared Key and SAS are stateless. The OAuth modes keep
 * one token under a mutex. A refresher thread decides when a fetch starts (at start, refresh_margin_s
 * before expiry, at once when someone waits and the last fetch did not fail, otherwise after the
 * backoff); the fetch itself is an asynchronous httpc request whose completion (on the engine thread)
 * installs the token and resumes the waiters. Only one fetch is ever in flight, which is what makes
 * concurrent 401s share one refresh. The form body holding the client secret lives only while its
 * fetch is in flight and is wiped afterwards.
 */
#include "gen2auth.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "skey.h"
#include "urlcodec.h"

#define G2AUTH_ATTEMPTS 4              /* consecutive failed fetches before waiters are failed */
#define G2AUTH_BACKOFF_MS 250          /* first retry delay; doubles, +-20% jitter */
#define G2AUTH_BACKOFF_MAX_MS 30000
#define G2AUTH_MIN_REFRESH_MS 100
#define G2AUTH_FETCH_TIMEOUT_MS 30000
#define G2AUTH_MAX_RESPONSE (64 * 1024)
#define G2AUTH_MAX_URL 4096
#define G2AUTH_IMDS_VERSION "2018-02-01"

typedef struct waiter {
    struct waiter *next;
    g2auth_ready_fn fn;
    void *ud;
} waiter;

typedef struct sas_old {
    struct sas_old *next;
    char *sas;
} sas_old;

struct g2auth {
    httpc *http;
    cfg_auth_mode mode;
    /* token modes: what to fetch (copies; the secret is wiped on free) */
    char *label;               /* "gen2 auth", "gen1 auth": first words of every error */
    bool v2;                   /* client credentials against /oauth2/v2.0/token with scope */
    char *token_url;           /* client credentials: AUTHORITY/TENANT/oauth2[/v2.0]/token; MI: the IMDS URL */
    char *client_id, *resource, *scope;
    char *client_secret;       /* under mu: g2auth_reload replaces it */
    unsigned refresh_margin_s, connect_timeout_ms, timeout_ms;
    skey_key key;              /* shared_key (under mu: g2auth_reload replaces it) */
    _Atomic(char *) sas;       /* sas: the query string without '?' (g2auth_reload swaps it) */
    sas_old *retired;          /* SASes replaced by g2auth_reload (callers may still hold them): freed
                                  with the authenticator; one per reload that changed the SAS */
    /* token modes; everything below under mu */
    pthread_mutex_t mu;
    pthread_cond_t cond;       /* CLOCK_MONOTONIC; refresher wake-ups and fetch completions */
    pthread_t thread;
    bool thread_started;
    bool stop;
    bool fetching;
    char *token;
    uint64_t gen;
    int64_t expires_ms;        /* monotonic */
    int64_t next_fetch_ms;     /* monotonic: when the next unprompted fetch starts */
    int64_t fetch_started_ms;
    unsigned failures;         /* consecutive failed fetches */
    uint64_t fail_seq;         /* bumped when a fetch fails for good (waiters failed) */
    unsigned ready_waiting;    /* threads in g2auth_wait_ready */
    char last_err[256];
    waiter *waiters, **wtail;
    g2auth_stats st;
    uint32_t prng;
    /* the fetch in flight (owned by whoever set fetching) */
    char *fetch_url;
    dbuf fetch_body;
};

/* ---------- small helpers ---------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wipe_free(char *s)
{
    if (!s) return;
    memset(s, 0, strlen(s));
    free(s);
}

static void wipe_dbuf(dbuf *b)
{
    if (b->data) memset(b->data, 0, b->cap);
    dbuf_free(b);
}

static const char *mode_name(cfg_auth_mode m)
{
    switch (m) {
    case CFG_AUTH_SHARED_KEY: return "shared_key";
    case CFG_AUTH_SAS: return "sas";
    case CFG_AUTH_CLIENT_CREDENTIALS: return "client_credentials";
    case CFG_AUTH_MANAGED_IDENTITY: return "managed_identity";
    }
    return "?";
}

static bool is_http_url(const char *u)
{
    return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

/* Printable ASCII without spaces: what may go into a URL or a header unescaped. */
static bool printable_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; *s; s++, n++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || n >= max) return false;
    return n > 0;
}

static bool tenant_ok(const char *t)
{
    if (!*t || strlen(t) > 128) return false;
    for (; *t; t++)
        if (!isalnum((unsigned char)*t) && *t != '-' && *t != '.' && *t != '_') return false;
    return true;
}

/* Copy an identifier a token service sent (for an error message) keeping only harmless characters. */
static void copy_ident(char *out, size_t cap, const char *in)
{
    size_t j = 0;
    for (; in && *in && j + 1 < cap && j < 64; in++)
        if (isalnum((unsigned char)*in) || *in == '_' || *in == '-' || *in == '.') out[j++] = *in;
    out[j] = 0;
}

/* ---------- Shared Key ---------- */

typedef struct hdr_list {
    const char *const *h;
    int n;
} hdr_list;

static const char *value_of(const char *line, size_t namelen)
{
    const char *v = line + namelen + 1;
    while (*v == ' ' || *v == '\t') v++;
    return v;
}

static const char *hdr_get(void *ctx, const char *name)
{
    const hdr_list *l = ctx;
    size_t nl = strlen(name);
    for (int i = 0; i < l->n; i++)
        if (l->h[i] && strncasecmp(l->h[i], name, nl) == 0 && l->h[i][nl] == ':') return value_of(l->h[i], nl);
    return NULL;
}

static void hdr_each(void *ctx, void (*fn)(void *fnctx, const char *name, const char *value), void *fnctx)
{
    const hdr_list *l = ctx;
    for (int i = 0; i < l->n; i++) {
        const char *colon = l->h[i] ? strchr(l->h[i], ':') : NULL;
        if (!colon) continue;
        size_t nl = (size_t)(colon - l->h[i]);
        char name[128];
        if (nl == 0 || nl >= sizeof name) continue;
        memcpy(name, l->h[i], nl);
        name[nl] = 0;
        fn(fnctx, name, value_of(l->h[i], nl));
    }
}

static int sign_shared_key(g2auth *a, const g2auth_req *req, dbuf *value, char *err, size_t errlen)
{
    hdr_list l = {req->headers, req->nheaders};
    skey_request sr = {
        .method = req->method,
        .raw_path = req->raw_path,
        .raw_query = req->raw_query,
        .get = hdr_get,
        .each = hdr_each,
        .ctx = &l,
    };
    skey_key key;
    pthread_mutex_lock(&a->mu);
    key = a->key;
    pthread_mutex_unlock(&a->mu);
    int rc = skey_sign(&key, &sr, value);
    explicit_bzero(&key, sizeof key);
    if (rc) {
        snprintf(err, errlen, "gen2 auth: shared_key: cannot sign the request (%s)",
                 rc == -EINVAL ? "malformed query" : rc == -E2BIG ? "too many headers or parameters" : "no memory");
        return -1;
    }
    return 0;
}

/* ---------- token fetch ---------- */

static bool token_valid_locked(const g2auth *a, int64_t now)
{
    return a->token && now < a->expires_ms;
}

static int64_t backoff_ms(g2auth *a, unsigned failures)
{
    int64_t d = G2AUTH_BACKOFF_MS;
    for (unsigned i = 1; i < failures && d < G2AUTH_BACKOFF_MAX_MS; i++) d *= 2;
    if (d > G2AUTH_BACKOFF_MAX_MS) d = G2AUTH_BACKOFF_MAX_MS;
    a->prng ^= a->prng << 13;
    a->prng ^= a->prng >> 17;
    a->prng ^= a->prng << 5;
    int64_t jitter = (int64_t)(a->prng % 401) - 200; /* -20%..+20%, in permille */
    return d + d * jitter / 1000;
}

/* Called with ok/!ok once per fetch (any thread); resumes the waiters outside the lock. */
static void fetch_finish(g2auth *a, char *token, int64_t life_ms, bool retryable, const char *why)
{
    waiter *run = NULL;
    char err[256] = "";
    bool ok = token != NULL;
    pthread_mutex_lock(&a->mu);
    a->fetching = false;
    free(a->fetch_url);
    a->fetch_url = NULL;
    wipe_dbuf(&a->fetch_body);
    int64_t now = mono_ms();
    if (ok) {
        wipe_free(a->token);
        a->token = token;
        a->gen++;
        a->expires_ms = a->fetch_started_ms + life_ms; /* counted from the request: conservative */
        int64_t remaining = a->expires_ms - now;
        int64_t delay = remaining - (int64_t)a->refresh_margin_s * 1000;
        if (delay < remaining / 2) delay = remaining / 2;
        if (delay < G2AUTH_MIN_REFRESH_MS) delay = G2AUTH_MIN_REFRESH_MS;
        a->next_fetch_ms = now + delay;
        a->failures = 0;
        a->last_err[0] = 0;
        a->st.fetches_ok++;
        a->st.generation = a->gen;
        run = a->waiters;
        a->waiters = NULL;
        a->wtail = &a->waiters;
    } else {
        a->failures++;
        a->st.fetches_failed++;
        snprintf(a->last_err, sizeof a->last_err, "%s", why);
        a->next_fetch_ms = now + backoff_ms(a, a->failures);
        if (!retryable || a->failures >= G2AUTH_ATTEMPTS) {
            a->fail_seq++;
            run = a->waiters;
            a->waiters = NULL;
            a->wtail = &a->waiters;
        }
        snprintf(err, sizeof err, "%s", why);
    }
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    while (run) {
        waiter *w = run;
        run = w->next;
        w->fn(w->ud, ok, ok ? "" : err);
        free(w);
    }
}

/* A JSON number or a string of digits (AAD v1 and IMDS send strings). Returns 0 or -1. */
static int json_int_any(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        *out = (long long)json_real_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s) return -1;
    *out = n;
    return 0;
}

static void fetch_done(void *ud, httpc_resp *resp)
{
    g2auth *a = ud;
    const char *mode = mode_name(a->mode);
    char why[256];
    char *token = NULL;
    int64_t life_ms = 0;
    bool retryable = false;
    json_t *j = NULL;
    if (resp->result != HTTPC_OK) {
        snprintf(why, sizeof why, "%s: %s: token request failed: %s", a->label, mode, httpc_result_str(resp->result));
        retryable = resp->result != HTTPC_E_CANCELLED && resp->result != HTTPC_E_NOMEM;
        goto out;
    }
    if (resp->body.len) j = json_loadb(resp->body.data, resp->body.len, 0, NULL);
    if (resp->status != 200) {
        char e[80] = "", code[32] = "";
        json_t *codes = json_object_get(j, "error_codes");
        copy_ident(e, sizeof e, json_string_value(json_object_get(j, "error")));
        if (json_is_array(codes) && json_is_integer(json_array_get(codes, 0)))
            snprintf(code, sizeof code, "AADSTS%lld", (long long)json_integer_value(json_array_get(codes, 0)));
        snprintf(why, sizeof why, "%s: %s: token service answered HTTP %ld%s%s%s%s%s", a->label, mode, resp->status,
                 e[0] || code[0] ? " (" : "", e, e[0] && code[0] ? ", " : "", code, e[0] || code[0] ? ")" : "");
        retryable = resp->status == 408 || resp->status == 429 || resp->status >= 500;
        goto out;
    }
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    if (!j || !tok) {
        snprintf(why, sizeof why, "%s: %s: token response has no access_token", a->label, mode);
        retryable = true;
        goto out;
    }
    if (!printable_token(tok, G2AUTH_MAX_TOKEN)) {
        snprintf(why, sizeof why, "%s: %s: access_token is empty, too long or has invalid characters", a->label,
                 mode);
        goto out;
    }
    long long in = 0, on = 0;
    bool has_in = json_int_any(json_object_get(j, "expires_in"), &in) == 0;
    bool has_on = json_int_any(json_object_get(j, "expires_on"), &on) == 0;
    life_ms = has_in ? in * 1000 : -1;
    if (has_on) {
        int64_t l2 = on * 1000 - wall_ms();
        if (!has_in || (l2 > 0 && l2 < life_ms)) life_ms = l2;
    }
    if (!has_in && !has_on) {
        snprintf(why, sizeof why, "%s: %s: token response has no expires_in or expires_on", a->label, mode);
        goto out;
    }
    if (life_ms <= 0) {
        snprintf(why, sizeof why, "%s: %s: token service returned an expired token", a->label, mode);
        retryable = true;
        goto out;
    }
    token = strdup(tok);
    if (!token) snprintf(why, sizeof why, "%s: %s: out of memory", a->label, mode);
out:
    json_decref(j);
    if (resp->body.data) memset(resp->body.data, 0, resp->body.len);
    httpc_resp_free(resp);
    free(resp);
    fetch_finish(a, token, life_ms, retryable, why);
}

static int add_enc_param(dbuf *d, const char *name, const char *value)
{
    int rc = dbuf_printf(d, "%s%s=", d->len ? "&" : "", name);
    if (!rc) rc = url_encode(value, false, d);
    return rc;
}

/* Build and submit the fetch; called on the refresher thread with fetching set and the lock released. */
static void start_fetch(g2auth *a)
{
    dbuf url;
    dbuf_init(&url, G2AUTH_MAX_URL);
    dbuf_init(&a->fetch_body, G2AUTH_MAX_URL);
    httpc_req req;
    memset(&req, 0, sizeof req);
    int rc;
    if (a->mode == CFG_AUTH_CLIENT_CREDENTIALS) {
        rc = dbuf_adds(&url, a->token_url);
        if (!rc) rc = add_enc_param(&a->fetch_body, "grant_type", "client_credentials");
        if (!rc) rc = add_enc_param(&a->fetch_body, "client_id", a->client_id);
        pthread_mutex_lock(&a->mu);
        if (!rc) rc = add_enc_param(&a->fetch_body, "client_secret", a->client_secret);
        pthread_mutex_unlock(&a->mu);
        if (!rc) rc = add_enc_param(&a->fetch_body, a->v2 ? "scope" : "resource", a->v2 ? a->scope : a->resource);
        req.method = "POST";
        req.headers[0] = "Content-Type: application/x-www-form-urlencoded";
        req.headers[1] = "Accept: application/json";
        req.in = HTTPC_IN_MEMORY;
        req.in_mem = a->fetch_body.data;
        req.in_len = a->fetch_body.len;
    } else {
        dbuf q;
        dbuf_init(&q, G2AUTH_MAX_URL);
        rc = add_enc_param(&q, "api-version", G2AUTH_IMDS_VERSION);
        if (!rc) rc = add_enc_param(&q, "resource", a->resource);
        if (!rc && a->client_id[0]) rc = add_enc_param(&q, "client_id", a->client_id);
        if (!rc) rc = dbuf_printf(&url, "%s%s%s", a->token_url, strchr(a->token_url, '?') ? "&" : "?", q.data);
        dbuf_free(&q);
        req.method = "GET";
        req.headers[0] = "Metadata: true";
        req.headers[1] = "Accept: application/json";
    }
    char why[160];
    if (rc) {
        dbuf_free(&url);
        snprintf(why, sizeof why, "%s: token request too large (authority, tenant or ids too long)", a->label);
        fetch_finish(a, NULL, 0, false, why);
        return;
    }
    a->fetch_url = dbuf_take(&url);
    req.url = a->fetch_url;
    req.out = HTTPC_BODY_MEMORY;
    req.out_max = G2AUTH_MAX_RESPONSE;
    req.connect_timeout_ms = a->connect_timeout_ms;
    req.timeout_ms = a->timeout_ms && a->timeout_ms < G2AUTH_FETCH_TIMEOUT_MS ? a->timeout_ms : G2AUTH_FETCH_TIMEOUT_MS;
    req.done = fetch_done;
    req.ud = a;
    if (!a->fetch_url || httpc_submit(a->http, &req) != 0) {
        snprintf(why, sizeof why, "%s: token request could not be submitted (engine stopping)", a->label);
        fetch_finish(a, NULL, 0, false, why);
    }
}

static void *refresher(void *arg)
{
    g2auth *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        if (a->fetching) {
            pthread_cond_wait(&a->cond, &a->mu);
            continue;
        }
        int64_t now = mono_ms();
        int64_t due = a->next_fetch_ms;
        if ((a->waiters || (a->ready_waiting && !token_valid_locked(a, now))) && a->failures == 0) due = now;
        if (due <= now) {
            a->fetching = true;
            a->fetch_started_ms = now;
            pthread_mutex_unlock(&a->mu);
            start_fetch(a);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = due - now;
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a->cond, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---------- public ---------- */

/* The settings of a token source; errors name the key under tc->key_prefix. */
static int token_check(const g2auth_token_cfg *tc, char *err, size_t errlen)
{
    const char *k = tc->key_prefix;
    if (!tc->managed_identity) {
        if (!tc->authority || !is_http_url(tc->authority)) {
            snprintf(err, errlen, "%s.authority: must be an http:// or https:// URL", k);
            return -1;
        }
        if (!tc->tenant || !tenant_ok(tc->tenant)) {
            snprintf(err, errlen, "%s.tenant_id: required (letters, digits, '-', '.', '_')", k);
            return -1;
        }
        if (!tc->client_id || !tc->client_id[0]) {
            snprintf(err, errlen, "%s.client_id: required for mode client_credentials", k);
            return -1;
        }
        if (!tc->client_secret || !*tc->client_secret) {
            snprintf(err, errlen, "%s.client_secret: required for mode client_credentials", k);
            return -1;
        }
        if (tc->v2 && (!tc->scope || !tc->scope[0])) {
            snprintf(err, errlen, "%s.scope: required for the v2 token endpoint", k);
            return -1;
        }
    } else if (!tc->imds_endpoint || !is_http_url(tc->imds_endpoint) || strchr(tc->imds_endpoint, '#')) {
        snprintf(err, errlen, "%s.imds_endpoint: must be an http:// or https:// URL", k);
        return -1;
    }
    if (!tc->v2 && (!tc->resource || !tc->resource[0])) {
        snprintf(err, errlen, "%s.resource: required for mode %s", k,
                 tc->managed_identity ? "managed_identity" : "client_credentials");
        return -1;
    }
    return 0;
}

static int check_config(const dp_config *c, char *err, size_t errlen)
{
    switch (c->gen2_auth) {
    case CFG_AUTH_SHARED_KEY:
        if (!c->gen2_account_key.value || !*c->gen2_account_key.value) {
            snprintf(err, errlen, "gen2.auth.account_key: required for mode shared_key");
            return -1;
        }
        return 0;
    case CFG_AUTH_SAS:
        if (!c->gen2_sas.value || !*c->gen2_sas.value) {
            snprintf(err, errlen, "gen2.auth.sas: required for mode sas");
            return -1;
        }
        return 0;
    case CFG_AUTH_CLIENT_CREDENTIALS:
    case CFG_AUTH_MANAGED_IDENTITY: return 0; /* token_check */
    default:
        snprintf(err, errlen, "gen2.auth.mode: unknown mode");
        return -1;
    }
}

static g2auth *alloc_auth(httpc *http, cfg_auth_mode mode)
{
    g2auth *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->http = http;
    a->mode = mode;
    a->wtail = &a->waiters;
    a->prng = (uint32_t)mono_ms() ^ (uint32_t)(uintptr_t)a ^ 0x9e3779b9u;
    if (!a->prng) a->prng = 1;
    dbuf_init(&a->fetch_body, G2AUTH_MAX_URL);
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    return a;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

/* Copy tc into a (token mode) and start the refresher. */
static int token_setup(g2auth *a, const g2auth_token_cfg *tc, char *err, size_t errlen)
{
    a->v2 = tc->v2;
    a->refresh_margin_s = tc->refresh_margin_s;
    a->connect_timeout_ms = tc->connect_timeout_ms;
    a->timeout_ms = tc->timeout_ms;
    a->label = dup_or_empty(tc->label);
    a->client_id = dup_or_empty(tc->client_id);
    a->client_secret = dup_or_empty(tc->client_secret);
    a->resource = dup_or_empty(tc->resource);
    a->scope = dup_or_empty(tc->scope);
    dbuf url;
    dbuf_init(&url, G2AUTH_MAX_URL);
    int rc;
    if (tc->managed_identity) {
        rc = dbuf_adds(&url, tc->imds_endpoint);
    } else {
        size_t n = strlen(tc->authority);
        while (n > 0 && tc->authority[n - 1] == '/') n--;
        rc = dbuf_printf(&url, "%.*s/%s/oauth2/%stoken", (int)n, tc->authority, tc->tenant, tc->v2 ? "v2.0/" : "");
    }
    a->token_url = rc ? NULL : dbuf_take(&url);
    dbuf_free(&url);
    if (!a->label || !a->client_id || !a->client_secret || !a->resource || !a->scope || !a->token_url) {
        snprintf(err, errlen, "%s: out of memory or token URL too long", tc->key_prefix);
        return -1;
    }
    if (pthread_create(&a->thread, NULL, refresher, a) != 0) {
        snprintf(err, errlen, "%s: cannot start the token refresher thread", tc->key_prefix);
        return -1;
    }
    a->thread_started = true;
    return 0;
}

int g2auth_new_token(const g2auth_token_cfg *tc, httpc *http, g2auth **out, char *err, size_t errlen)
{
    *out = NULL;
    if (token_check(tc, err, errlen)) return -1;
    g2auth *a = alloc_auth(http, tc->managed_identity ? CFG_AUTH_MANAGED_IDENTITY : CFG_AUTH_CLIENT_CREDENTIALS);
    if (!a) {
        snprintf(err, errlen, "%s: out of memory", tc->key_prefix);
        return -1;
    }
    if (token_setup(a, tc, err, errlen) != 0) {
        g2auth_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int g2auth_new(const dp_config *cfg, httpc *http, g2auth **out, char *err, size_t errlen)
{
    *out = NULL;
    if (check_config(cfg, err, errlen)) return -1;
    if (cfg->gen2_auth == CFG_AUTH_CLIENT_CREDENTIALS || cfg->gen2_auth == CFG_AUTH_MANAGED_IDENTITY) {
        g2auth_token_cfg tc = {
            .key_prefix = "gen2.auth",
            .label = "gen2 auth",
            .managed_identity = cfg->gen2_auth == CFG_AUTH_MANAGED_IDENTITY,
            .authority = cfg->oauth_authority,
            .tenant = cfg->oauth_tenant,
            .client_id = cfg->oauth_client_id,
            .client_secret = cfg->oauth_client_secret.value,
            .resource = cfg->oauth_resource,
            .imds_endpoint = cfg->imds_endpoint,
            .refresh_margin_s = cfg->token_refresh_margin_s,
            .connect_timeout_ms = cfg->gen2_connect_timeout_ms,
            .timeout_ms = cfg->gen2_timeout_ms,
        };
        return g2auth_new_token(&tc, http, out, err, errlen);
    }
    g2auth *a = alloc_auth(http, cfg->gen2_auth);
    if (!a) {
        snprintf(err, errlen, "gen2 auth: out of memory");
        return -1;
    }
    if (a->mode == CFG_AUTH_SHARED_KEY) {
        if (skey_key_init(&a->key, cfg->gen2_account, cfg->gen2_account_key.value) != 0) {
            snprintf(err, errlen, "gen2.auth.account_key: not a valid base64 account key (or gen2.account is empty)");
            goto fail;
        }
    } else {
        const char *s = cfg->gen2_sas.value;
        if (*s == '?') s++;
        if (!printable_token(s, 8192) || strchr(s, '#') || !strstr(s, "sig=")) {
            snprintf(err, errlen, "gen2.auth.sas: must be a SAS query string (with sig=, no spaces or '#')");
            goto fail;
        }
        char *copy = strdup(s);
        if (!copy) {
            snprintf(err, errlen, "gen2 auth: out of memory");
            goto fail;
        }
        atomic_store(&a->sas, copy);
    }
    *out = a;
    return 0;
fail:
    g2auth_free(a);
    return -1;
}

void g2auth_stop(g2auth *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    bool first = !a->stop;
    a->stop = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    if (first && a->thread_started) pthread_join(a->thread, NULL);
    pthread_mutex_lock(&a->mu);
    while (a->fetching) pthread_cond_wait(&a->cond, &a->mu);
    waiter *run = a->waiters;
    a->waiters = NULL;
    a->wtail = &a->waiters;
    pthread_mutex_unlock(&a->mu);
    while (run) {
        waiter *w = run;
        run = w->next;
        w->fn(w->ud, false, "shutting down");
        free(w);
    }
}

void g2auth_free(g2auth *a)
{
    if (!a) return;
    g2auth_stop(a);
    wipe_free(a->token);
    wipe_free(atomic_load(&a->sas));
    while (a->retired) {
        sas_old *o = a->retired;
        a->retired = o->next;
        wipe_free(o->sas);
        free(o);
    }
    wipe_free(a->client_secret);
    free(a->label);
    free(a->token_url);
    free(a->client_id);
    free(a->resource);
    free(a->scope);
    wipe_dbuf(&a->fetch_body);
    free(a->fetch_url);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    memset(&a->key, 0, sizeof a->key);
    free(a);
}

cfg_auth_mode g2auth_mode(const g2auth *a)
{
    return a->mode;
}

bool g2auth_uses_token(const g2auth *a)
{
    return a->mode == CFG_AUTH_CLIENT_CREDENTIALS || a->mode == CFG_AUTH_MANAGED_IDENTITY;
}

const char *g2auth_sas(const g2auth *a)
{
    return a->mode == CFG_AUTH_SAS ? atomic_load(&((g2auth *)a)->sas) : NULL;
}

int g2auth_reload(g2auth *a, const dp_config *nc, bool check, char *err, size_t errlen)
{
    if (nc->gen2_auth != a->mode) return 0; /* a new mode needs a restart (the caller says so) */
    if (check_config(nc, err, errlen)) return -1;
    if (a->mode == CFG_AUTH_SHARED_KEY) {
        skey_key k;
        char account[sizeof k.account];
        pthread_mutex_lock(&a->mu);
        memcpy(account, a->key.account, sizeof account); /* gen2.account itself needs a restart */
        pthread_mutex_unlock(&a->mu);
        if (skey_key_init(&k, account, nc->gen2_account_key.value) != 0) {
            snprintf(err, errlen, "gen2.auth.account_key: not a valid base64 account key");
            return -1;
        }
        if (!check) {
            pthread_mutex_lock(&a->mu);
            a->key = k;
            pthread_mutex_unlock(&a->mu);
        }
        explicit_bzero(&k, sizeof k);
    } else if (a->mode == CFG_AUTH_SAS) {
        const char *s = nc->gen2_sas.value;
        if (*s == '?') s++;
        if (!printable_token(s, 8192) || strchr(s, '#') || !strstr(s, "sig=")) {
            snprintf(err, errlen, "gen2.auth.sas: must be a SAS query string (with sig=, no spaces or '#')");
            return -1;
        }
        if (check || strcmp(s, atomic_load(&a->sas)) == 0) return 0;
        sas_old *o = calloc(1, sizeof *o);
        char *copy = strdup(s);
        if (!o || !copy) {
            free(o);
            free(copy);
            snprintf(err, errlen, "gen2.auth.sas: out of memory");
            return -1;
        }
        /* The old SAS stays allocated: a request being built may still be reading it. */
        o->sas = atomic_exchange(&a->sas, copy);
        o->next = a->retired;
        a->retired = o;
    } else if (a->mode == CFG_AUTH_CLIENT_CREDENTIALS && !check) {
        char *copy = strdup(nc->oauth_client_secret.value);
        if (!copy) {
            snprintf(err, errlen, "gen2.auth.client_secret: out of memory");
            return -1;
        }
        pthread_mutex_lock(&a->mu);
        char *old = a->client_secret;
        a->client_secret = copy;
        pthread_mutex_unlock(&a->mu);
        wipe_free(old);
    }
    return 0;
}

int g2auth_authorization(g2auth *a, const g2auth_req *req, dbuf *value, uint64_t *gen, char *err, size_t errlen)
{
    dbuf_reset(value);
    if (gen) *gen = 0;
    switch (a->mode) {
    case CFG_AUTH_SHARED_KEY: return sign_shared_key(a, req, value, err, errlen);
    case CFG_AUTH_SAS: return 0;
    default: break;
    }
    int rc = G2AUTH_AGAIN;
    pthread_mutex_lock(&a->mu);
    if (token_valid_locked(a, mono_ms())) {
        rc = dbuf_printf(value, "Bearer %s", a->token) ? -1 : 0;
        if (rc == 0 && gen) *gen = a->gen;
        if (rc) snprintf(err, errlen, "%s: out of memory", a->label ? a->label : "auth");
    } else if (a->stop) {
        rc = -1;
        snprintf(err, errlen, "%s: shutting down", a->label ? a->label : "auth");
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int g2auth_wait(g2auth *a, uint64_t stale_gen, g2auth_ready_fn fn, void *ud)
{
    if (!g2auth_uses_token(a)) return -1;
    waiter *w = calloc(1, sizeof *w);
    if (!w) return -1;
    w->fn = fn;
    w->ud = ud;
    pthread_mutex_lock(&a->mu);
    if (token_valid_locked(a, mono_ms()) && a->gen > stale_gen) {
        pthread_mutex_unlock(&a->mu);
        free(w);
        return 1;
    }
    if (a->stop) {
        pthread_mutex_unlock(&a->mu);
        free(w);
        return -1;
    }
    *a->wtail = w;
    a->wtail = &w->next;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int g2auth_wait_ready(g2auth *a, unsigned timeout_ms, char *err, size_t errlen)
{
    if (!g2auth_uses_token(a)) return 0;
    int64_t deadline = mono_ms() + timeout_ms;
    int rc = -1;
    pthread_mutex_lock(&a->mu);
    uint64_t seq = a->fail_seq;
    a->ready_waiting++;
    pthread_cond_broadcast(&a->cond);
    for (;;) {
        int64_t now = mono_ms();
        if (token_valid_locked(a, now)) {
            rc = 0;
            break;
        }
        if (a->fail_seq != seq) {
            snprintf(err, errlen, "%s", a->last_err);
            break;
        }
        if (now >= deadline || a->stop) {
            snprintf(err, errlen, "%s: %s: no token after %u ms%s%s", a->label, mode_name(a->mode), timeout_ms,
                     a->last_err[0] ? "; last error: " : "", a->last_err);
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = deadline - now;
        if (wait > 200) wait = 200;
        ts.tv_nsec += wait * 1000000;
        while (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a->cond, &a->mu, &ts);
    }
    a->ready_waiting--;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void g2auth_get_stats(g2auth *a, g2auth_stats *st)
{
    pthread_mutex_lock(&a->mu);
    *st = a->st;
    pthread_mutex_unlock(&a->mu);
}
