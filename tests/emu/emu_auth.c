/*
 * emu_auth: how the Gen2 emulator decides who a caller is (protocols.md §3). Shared Key requests are
 * checked with common/skey (both canonicalizations) plus the 15-minute x-ms-date window; a SAS in
 * the query is checked for its fields, its time window and its signature over the resource it names
 * (service SAS) or over the account (account SAS); a bearer token must be one this emulator issued,
 * unexpired and for the storage audience. The token endpoints answer like AAD (v1 strings, v2
 * numbers) and IMDS, with AAD-shaped JSON errors. Tokens are JWTs signed with HS256 under a key
 * derived from the account key, so nothing is stored per token.
 */
#include "emu_auth.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "b64.h"
#include "urlcodec.h"

#define AUTH_MAX_TOKEN 8192
#define AUTH_MAX_FORM_PARAMS 32
#define AUTH_MAX_VALUE 1024
#define AUTH_SKEW_S (15 * 60)
#define AUTH_MSG_MAX (64 * 1024)
#define AUTH_TENANT_DEFAULT "72f988bf-0000-4000-8000-00000000e2e0"

struct emu_auth {
    skey_key key;
    unsigned char tok_key[32];  /* HMAC key for tokens, derived from the account key */
    char *client_id;
    char *client_secret;
    char *audience;             /* NULL: the storage audiences */
    unsigned ttl_s;
};

/* ---------- small helpers ---------- */

static void random_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* getrandom on Linux does not fail for 16 bytes once the pool is ready; fall back to time. */
        uint64_t t = (uint64_t)time(NULL);
        memcpy(b, &t, sizeof t);
        memcpy(b + 8, &t, sizeof t);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void emu_auth_object_id(const char *client_id, char out[37])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    memset(d, 0, sizeof d);
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1) {
        static const char salt[] = "dualpipe-emu/object-id/";
        EVP_DigestUpdate(c, salt, sizeof salt - 1);
        EVP_DigestUpdate(c, client_id, strlen(client_id));
        EVP_DigestFinal_ex(c, d, &dlen);
    }
    EVP_MD_CTX_free(c);
    d[6] = (unsigned char)((d[6] & 0x0f) | 0x40);
    d[8] = (unsigned char)((d[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", d[0], d[1], d[2],
             d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]);
}

static int64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static void iso_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char d[24];
    strftime(d, sizeof d, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, 32, "%sZ", d);
}

/* Parse an RFC 1123 date ("Mon, 01 Jan 2024 00:00:00 GMT"). Returns 0 or -1. */
static int parse_rfc1123(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

/* Parse an ISO 8601 UTC time as SAS uses it: "YYYY-MM-DD", "YYYY-MM-DDTHH:MMZ",
 * "YYYY-MM-DDTHH:MM:SSZ", optionally with fractional seconds. Returns 0 or -1. */
static int parse_iso8601(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    if (!p) return -1;
    if (*p == 'T') {
        const char *q = strptime(p + 1, "%H:%M", &tm);
        if (!q) return -1;
        p = q;
        if (*p == ':') {
            q = strptime(p + 1, "%S", &tm);
            if (!q) return -1;
            p = q;
            if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p)) return -1;
                while (isdigit((unsigned char)*p)) p++;
            }
        }
        if (*p != 'Z') return -1;
        p++;
    }
    if (*p) return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

static void b64url_encode(const unsigned char *in, size_t n, dbuf *out, int *rc)
{
    char *tmp = malloc(b64_encoded_size(n));
    if (!tmp) {
        *rc = -ENOMEM;
        return;
    }
    size_t len = b64_encode(in, n, tmp);
    for (size_t i = 0; i < len; i++) {
        if (tmp[i] == '+') tmp[i] = '-';
        else if (tmp[i] == '/') tmp[i] = '_';
    }
    while (len > 0 && tmp[len - 1] == '=') len--;
    if (!*rc) *rc = dbuf_add(out, tmp, len);
    free(tmp);
}

/* Decode base64url (no padding) of len bytes into a NUL-terminated malloc'd buffer. */
static unsigned char *b64url_decode(const char *in, size_t len, size_t *outlen)
{
    if (len > AUTH_MAX_TOKEN) return NULL;
    char *tmp = malloc(len + 4);
    unsigned char *out = malloc(len + 1);
    if (!tmp || !out) goto fail;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (c == '+' || c == '/' || c == '=') goto fail;
        tmp[i] = c;
    }
    size_t n = len;
    while (n % 4) tmp[n++] = '=';
    long d = b64_decode(tmp, n, out, len);
    if (d < 0) goto fail;
    out[d] = 0;
    *outlen = (size_t)d;
    free(tmp);
    return out;
fail:
    free(tmp);
    free(out);
    return NULL;
}

static int hmac_raw(const unsigned char *key, size_t klen, const void *msg, size_t n, unsigned char out[32])
{
    unsigned len = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &len) || len != 32) return -1;
    return 0;
}

/* Find a parameter by name (case-insensitive) in a raw query or form body, decoding the value
 * (form: '+' is a space). Returns 1 found, 0 absent, -1 malformed. */
static int param_get(const char *query, const char *name, bool form, char *out, size_t cap)
{
    url_param ps[AUTH_MAX_FORM_PARAMS];
    int n = url_split_query(query, ps, AUTH_MAX_FORM_PARAMS);
    if (n < 0) return -1;
    size_t nl = strlen(name);
    for (int i = 0; i < n; i++) {
        if (ps[i].name_len != nl || strncasecmp(ps[i].name, name, nl) != 0) continue;
        dbuf d;
        dbuf_init(&d, cap - 1);
        int rc = url_decode(ps[i].value ? ps[i].value : "", ps[i].value_len, (form ? URL_FORM : 0) | URL_NO_CTL,
                            &d);
        if (rc) {
            dbuf_free(&d);
            return -1;
        }
        snprintf(out, cap, "%s", d.data ? d.data : "");
        dbuf_free(&d);
        return 1;
    }
    return 0;
}

static bool param_present(const char *query, const char *name)
{
    url_param ps[AUTH_MAX_FORM_PARAMS];
    int n = url_split_query(query, ps, AUTH_MAX_FORM_PARAMS);
    size_t nl = strlen(name);
    for (int i = 0; i < n; i++)
        if (ps[i].name_len == nl && strncasecmp(ps[i].name, name, nl) == 0) return true;
    return false;
}

static void fail_set(emu_auth_fail *f, int status, const char *code, const char *www, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void fail_set(emu_auth_fail *f, int status, const char *code, const char *www, const char *fmt, ...)
{
    f->status = status;
    f->code = code;
    f->www_authenticate = www != NULL;
    snprintf(f->www_error, sizeof f->www_error, "%s", www ? www : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap); /* truncated if longer: the code still says it */
    va_end(ap);
}

/* ---------- life cycle ---------- */

int emu_auth_new(const emu_auth_opts *o, emu_auth **out)
{
    emu_auth *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->key = *o->key;
    a->ttl_s = o->token_ttl_s ? o->token_ttl_s : 3600;
    if (o->client_id && !(a->client_id = strdup(o->client_id))) goto fail;
    if (o->client_secret && !(a->client_secret = strdup(o->client_secret))) goto fail;
    if (o->audience && !(a->audience = strdup(o->audience))) goto fail;
    static const char label[] = "dualpipe-emu token signing key v1";
    if (hmac_raw(a->key.key, a->key.key_len, label, sizeof label - 1, a->tok_key)) goto fail;
    *out = a;
    return 0;
fail:
    emu_auth_free(a);
    return -ENOMEM;
}

void emu_auth_free(emu_auth *a)
{
    if (!a) return;
    free(a->client_id);
    free(a->audience);
    if (a->client_secret) {
        memset(a->client_secret, 0, strlen(a->client_secret));
        free(a->client_secret);
    }
    memset(a, 0, sizeof *a);
    free(a);
}

/* ---------- tokens ---------- */

/* Issue a signed token for audience aud and object id oid. Appends it to tok. */
static int token_issue(emu_auth *a, const char *tenant, const char *appid, const char *oid, const char *aud,
                       bool v2, int64_t iat, int64_t exp, dbuf *tok)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char iss[256];
    snprintf(iss, sizeof iss, v2 ? "https://login.microsoftonline.com/%s/v2.0" : "https://sts.windows.net/%s/",
             tenant);
    json_t *p = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "aud", aud, "iss", iss, "iat",
                          (json_int_t)iat, "nbf", (json_int_t)iat, "exp", (json_int_t)exp, "appid", appid,
                          "idtyp", "app", "oid", oid, "sub", oid, "tid", tenant, "ver", v2 ? "2.0" : "1.0");
    if (!p) return -ENOMEM;
    char *ps = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    if (!ps) return -ENOMEM;
    int rc = 0;
    size_t start = tok->len;
    b64url_encode((const unsigned char *)hdr, sizeof hdr - 1, tok, &rc);
    if (!rc) rc = dbuf_add(tok, ".", 1);
    b64url_encode((const unsigned char *)ps, strlen(ps), tok, &rc);
    free(ps);
    unsigned char mac[32];
    if (!rc && hmac_raw(a->tok_key, sizeof a->tok_key, tok->data + start, tok->len - start, mac)) rc = -EIO;
    if (!rc) rc = dbuf_add(tok, ".", 1);
    b64url_encode(mac, sizeof mac, tok, &rc);
    return rc;
}

static bool audience_ok(const emu_auth *a, const char *aud)
{
    if (a->audience) { /* one service's audience, with or without the trailing '/' */
        size_t n = strlen(a->audience);
        while (n > 0 && a->audience[n - 1] == '/') n--;
        return strncmp(aud, a->audience, n) == 0 && (aud[n] == 0 || strcmp(aud + n, "/") == 0);
    }
    static const char *const fixed[] = {"https://storage.azure.com", "https://storage.azure.com/"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(aud, fixed[i]) == 0) return true;
    static const char *const hosts[] = {"dfs", "blob"};
    for (size_t i = 0; i < 2; i++) {
        char u[400];
        int n = snprintf(u, sizeof u, "https://%s.%s.core.windows.net", a->key.account, hosts[i]);
        if (n > 0 && (size_t)n < sizeof u && strncmp(aud, u, (size_t)n) == 0 &&
            (aud[n] == 0 || strcmp(aud + n, "/") == 0))
            return true;
    }
    return false;
}

int emu_auth_verify_token(emu_auth *a, const char *tok, char oid[64], const char **why)
{
    size_t len = strlen(tok);
    *why = "Signature validation failed. The token is not valid.";
    if (len == 0 || len > AUTH_MAX_TOKEN) return -1;
    const char *d1 = strchr(tok, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.')) return -1;
    unsigned char mac[32];
    if (hmac_raw(a->tok_key, sizeof a->tok_key, tok, (size_t)(d2 - tok), mac)) return -1;
    dbuf want;
    dbuf_init(&want, 64);
    int rc = 0;
    b64url_encode(mac, sizeof mac, &want, &rc);
    bool sig_ok = !rc && want.data && skey_ct_strcmp(want.data, d2 + 1) == 0;
    dbuf_free(&want);
    if (!sig_ok) return -1;
    size_t plen = 0;
    unsigned char *payload = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &plen);
    if (!payload) return -1;
    json_t *j = json_loadb((const char *)payload, plen, 0, NULL);
    free(payload);
    if (!j) return -1;
    int res = -1;
    json_t *exp = json_object_get(j, "exp"), *nbf = json_object_get(j, "nbf");
    const char *aud = json_string_value(json_object_get(j, "aud"));
    const char *o = json_string_value(json_object_get(j, "oid"));
    if (!json_is_integer(exp) || !aud || !o || strlen(o) >= 64) goto out;
    int64_t now = now_s();
    if (now >= (int64_t)json_integer_value(exp)) {
        *why = "Lifetime validation failed. The token is expired.";
        goto out;
    }
    if (json_is_integer(nbf) && now + AUTH_SKEW_S < (int64_t)json_integer_value(nbf)) {
        *why = "Lifetime validation failed. The token is not yet valid.";
        goto out;
    }
    if (!audience_ok(a, aud)) {
        *why = "Audience validation failed. Audience did not match.";
        goto out;
    }
    snprintf(oid, 64, "%s", o);
    res = 0;
out:
    json_decref(j);
    return res;
}

/* AAD error body. */
static int aad_error(dbuf *out, int status, const char *error, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int aad_error(dbuf *out, int status, const char *error, int code, const char *fmt, ...)
{
    char desc[600], trace[37], corr[37], ts[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    random_uuid(trace);
    random_uuid(corr);
    iso_now(ts);
    char full[900];
    snprintf(full, sizeof full, "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", code, desc,
             trace, corr, ts);
    json_t *j = json_pack("{s:s,s:s,s:[i],s:s,s:s,s:s}", "error", error, "error_description", full, "error_codes",
                          code, "timestamp", ts, "trace_id", trace, "correlation_id", corr);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    dbuf_reset(out);
    if (!s || dbuf_adds(out, s)) {
        free(s);
        return 500;
    }
    free(s);
    return status;
}

static bool tenant_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 128) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && t[i] != '-' && t[i] != '.' && t[i] != '_') return false;
    return true;
}

int emu_auth_token_endpoint(emu_auth *a, bool v2, const char *tenant, const char *form, dbuf *out)
{
    char grant[64], cid[257], secret[AUTH_MAX_VALUE], res[AUTH_MAX_VALUE];
    if (!tenant_ok(tenant))
        return aad_error(out, 400, "invalid_request", 900023,
                         "Specified tenant identifier is neither a valid DNS name, nor a valid external domain.");
    int g = param_get(form, "grant_type", true, grant, sizeof grant);
    int c = param_get(form, "client_id", true, cid, sizeof cid);
    int s = param_get(form, "client_secret", true, secret, sizeof secret);
    int r = param_get(form, v2 ? "scope" : "resource", true, res, sizeof res);
    int rc;
    if (g < 0 || c < 0 || s < 0 || r < 0)
        return aad_error(out, 400, "invalid_request", 900144, "The request body is not well formed.");
    if (g == 0 || !grant[0])
        return aad_error(out, 400, "invalid_request", 900144,
                         "The request body must contain the following parameter: 'grant_type'.");
    if (strcmp(grant, "client_credentials") != 0)
        return aad_error(out, 400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
    if (c == 0 || !cid[0])
        return aad_error(out, 400, "invalid_request", 900144,
                         "The request body must contain the following parameter: 'client_id'.");
    if (a->client_id && strcmp(cid, a->client_id) != 0)
        return aad_error(out, 400, "unauthorized_client", 700016,
                         "Application with identifier '%s' was not found in the directory '%s'.", cid, tenant);
    if (s == 0 || !secret[0])
        return aad_error(out, 401, "invalid_client", 7000218,
                         "The request body must contain the following parameter: 'client_assertion' or "
                         "'client_secret'.");
    if (a->client_secret && skey_ct_strcmp(secret, a->client_secret) != 0) {
        memset(secret, 0, sizeof secret);
        return aad_error(out, 401, "invalid_client", 7000215,
                         "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                         "secret value, not the client secret ID, for a secret added to app '%s'.",
                         cid);
    }
    memset(secret, 0, sizeof secret);
    if (r == 0 || !res[0])
        return aad_error(out, 400, "invalid_request", 900144,
                         "The request body must contain the following parameter: '%s'.", v2 ? "scope" : "resource");
    if (v2) {
        size_t n = strlen(res);
        static const char suffix[] = "/.default";
        if (n <= sizeof suffix - 1 || strcmp(res + n - (sizeof suffix - 1), suffix) != 0)
            return aad_error(out, 400, "invalid_scope", 1002012,
                             "The provided value for scope is not valid. Client credential flows must have a scope "
                             "value with /.default suffixed to the resource identifier (application ID URI).");
        res[n - (sizeof suffix - 1)] = 0;
    }
    char oid[37];
    emu_auth_object_id(cid, oid);
    int64_t iat = now_s(), exp = iat + a->ttl_s;
    dbuf tok;
    dbuf_init(&tok, AUTH_MAX_TOKEN);
    rc = token_issue(a, tenant, cid, oid, res, v2, iat, exp, &tok);
    json_t *j = NULL;
    if (!rc && v2) {
        j = json_pack("{s:s,s:I,s:I,s:s}", "token_type", "Bearer", "expires_in", (json_int_t)a->ttl_s,
                      "ext_expires_in", (json_int_t)a->ttl_s, "access_token", tok.data);
    } else if (!rc) {
        char ttl[24], es[24], nb[24];
        snprintf(ttl, sizeof ttl, "%u", a->ttl_s);
        snprintf(es, sizeof es, "%" PRId64, exp);
        snprintf(nb, sizeof nb, "%" PRId64, iat);
        j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "token_type", "Bearer", "expires_in", ttl, "ext_expires_in",
                      ttl, "expires_on", es, "not_before", nb, "resource", res, "access_token", tok.data);
    }
    dbuf_free(&tok);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    dbuf_reset(out);
    if (!text || dbuf_adds(out, text)) {
        free(text);
        return aad_error(out, 500, "temporarily_unavailable", 90033, "The token could not be issued.");
    }
    free(text);
    return 200;
}

static int imds_error(dbuf *out, const char *error, const char *desc)
{
    json_t *j = json_pack("{s:s,s:s}", "error", error, "error_description", desc);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    dbuf_reset(out);
    int rc = s ? dbuf_adds(out, s) : -ENOMEM;
    free(s);
    return rc ? 500 : 400;
}

int emu_auth_imds(emu_auth *a, const char *query, const char *metadata, dbuf *out)
{
    char ver[64], res[AUTH_MAX_VALUE], cid[257];
    if (!metadata || strcasecmp(metadata, "true") != 0)
        return imds_error(out, "invalid_request", "Required metadata header not specified");
    int v = param_get(query, "api-version", false, ver, sizeof ver);
    int r = param_get(query, "resource", false, res, sizeof res);
    int c = param_get(query, "client_id", false, cid, sizeof cid);
    if (v < 0 || r < 0 || c < 0) return imds_error(out, "invalid_request", "Malformed query string");
    if (v == 0 || !ver[0]) return imds_error(out, "invalid_request", "Required query variable 'api-version' is missing");
    if (r == 0 || !res[0]) return imds_error(out, "invalid_request", "Required audience parameter not specified");
    char ident[300], oid[37], client[257];
    if (c == 1 && cid[0]) {
        snprintf(ident, sizeof ident, "msi:%s", cid);
        snprintf(client, sizeof client, "%s", cid);
    } else {
        snprintf(ident, sizeof ident, "msi:system-assigned");
        emu_auth_object_id("msi:system-assigned:client", client);
    }
    emu_auth_object_id(ident, oid);
    int64_t iat = now_s(), exp = iat + a->ttl_s;
    dbuf tok;
    dbuf_init(&tok, AUTH_MAX_TOKEN);
    int rc = token_issue(a, AUTH_TENANT_DEFAULT, client, oid, res, false, iat, exp, &tok);
    char ttl[24], es[24], nb[24];
    snprintf(ttl, sizeof ttl, "%u", a->ttl_s);
    snprintf(es, sizeof es, "%" PRId64, exp);
    snprintf(nb, sizeof nb, "%" PRId64, iat);
    json_t *j = rc ? NULL
                   : json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "access_token", tok.data, "client_id", client,
                               "expires_in", ttl, "expires_on", es, "ext_expires_in", ttl, "not_before", nb,
                               "resource", res, "token_type", "Bearer");
    dbuf_free(&tok);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    dbuf_reset(out);
    if (!text || dbuf_adds(out, text)) {
        free(text);
        return 500;
    }
    free(text);
    return 200;
}

/* ---------- verification ---------- */

static const char *req_get(void *ctx, const char *name)
{
    return emu_req_header((const emu_req *)ctx, name);
}

static void req_each(void *ctx, void (*fn)(void *fnctx, const char *name, const char *value), void *fnctx)
{
    emu_req_each_header((const emu_req *)ctx, fn, fnctx);
}

static const char *const MSG_SIG =
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly "
    "including the signature.";
static const char *const MSG_WWW =
    "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.";

static int check_shared_key(emu_auth *a, emu_req *r, const char *authz, emu_auth_caller *caller, emu_auth_fail *f)
{
    const char *date = emu_req_header(r, "x-ms-date");
    if (!date || !*date) date = emu_req_header(r, "Date");
    if (!date || !*date) {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s Request date header not specified.", MSG_SIG);
        return -1;
    }
    int64_t t;
    if (parse_rfc1123(date, &t)) {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s The Date header in the request is incorrect.", MSG_SIG);
        return -1;
    }
    int64_t now = now_s();
    if (t < now - AUTH_SKEW_S || t > now + AUTH_SKEW_S) {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s Request date header too %s: '%.64s'", MSG_SIG,
                 t < now ? "old" : "far in the future", date);
        return -1;
    }
    skey_request sr = {
        .method = emu_req_method(r),
        .raw_path = emu_req_path(r),
        .raw_query = emu_req_query(r),
        .get = req_get,
        .each = req_each,
        .ctx = r,
    };
    dbuf sts;
    dbuf_init(&sts, AUTH_MSG_MAX);
    int rc = skey_verify(&a->key, &sr, authz, &sts);
    if (rc == 0) {
        dbuf_free(&sts);
        caller->kind = EMU_AUTH_SHAREDKEY;
        snprintf(caller->principal, sizeof caller->principal, "$superuser");
        return 0;
    }
    if (rc == -EACCES) {
        const char *colon = strrchr(authz, ':');
        fail_set(f, 403, "AuthenticationFailed", NULL,
                 "The MAC signature found in the HTTP request '%.64s' is not the same as any computed signature. "
                 "Server used following string to sign: '%s'.",
                 colon ? colon + 1 : "", sts.data ? sts.data : "");
    } else {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s The Authorization header is malformed.", MSG_SIG);
    }
    dbuf_free(&sts);
    return -1;
}

static int check_bearer(emu_auth *a, const char *tok, emu_auth_caller *caller, emu_auth_fail *f)
{
    while (*tok == ' ') tok++;
    const char *why = NULL;
    char oid[64];
    if (emu_auth_verify_token(a, tok, oid, &why)) {
        fail_set(f, 401, "InvalidAuthenticationInfo", why, "%s", MSG_WWW);
        return -1;
    }
    caller->kind = EMU_AUTH_BEARER;
    snprintf(caller->principal, sizeof caller->principal, "%s", oid);
    return 0;
}

/* The SAS fields read from a query string (decoded). */
typedef struct sas_fields {
    char sv[32], sp[32], st[48], se[48], sr[8], sig[128], si[128], sip[64], spr[32], sdd[8];
    char ss[16], srt[8], ses[128], skoid[64];
    char rscc[256], rscd[256], rsce[256], rscl[256], rsct[256];
} sas_fields;

static int sas_read(const char *q, sas_fields *s)
{
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } map[] = {
        {"sv", s->sv, sizeof s->sv},       {"sp", s->sp, sizeof s->sp},       {"st", s->st, sizeof s->st},
        {"se", s->se, sizeof s->se},       {"sr", s->sr, sizeof s->sr},       {"sig", s->sig, sizeof s->sig},
        {"si", s->si, sizeof s->si},       {"sip", s->sip, sizeof s->sip},    {"spr", s->spr, sizeof s->spr},
        {"sdd", s->sdd, sizeof s->sdd},    {"ss", s->ss, sizeof s->ss},       {"srt", s->srt, sizeof s->srt},
        {"ses", s->ses, sizeof s->ses},    {"skoid", s->skoid, sizeof s->skoid},
        {"rscc", s->rscc, sizeof s->rscc}, {"rscd", s->rscd, sizeof s->rscd}, {"rsce", s->rsce, sizeof s->rsce},
        {"rscl", s->rscl, sizeof s->rscl}, {"rsct", s->rsct, sizeof s->rsct},
    };
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (param_get(q, map[i].name, false, map[i].dst, map[i].cap) < 0) return -1;
    return 0;
}

static bool letters_ok(const char *s, const char *allowed)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!strchr(allowed, *s)) return false;
    return true;
}

/* First depth segments of path ("a/b/c", 2 -> "a/b"). */
static void path_prefix(const char *path, int depth, char *out, size_t cap)
{
    while (*path == '/') path++;
    const char *p = path;
    int seen = 0;
    while (*p && seen < depth) {
        const char *slash = strchr(p, '/');
        seen++;
        p = slash ? slash + 1 : p + strlen(p);
        if (seen == depth && slash) p = slash;
    }
    size_t n = (size_t)(p - path);
    while (n > 0 && path[n - 1] == '/') n--;
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), path);
}

static int sas_verify(emu_auth *a, const char *q, const char *fs, const char *path, emu_auth_caller *caller,
                      emu_auth_fail *f)
{
    sas_fields s;
    if (sas_read(q, &s)) {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s Signature fields not well formed.", MSG_SIG);
        return -1;
    }
    bool account = !s.sr[0] && (s.ss[0] || s.srt[0]);
    if (!s.sv[0] || !s.sp[0] || !s.se[0] || !s.sig[0] || (!account && !s.sr[0]) ||
        (account && (!s.ss[0] || !s.srt[0]))) {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s Signature fields not well formed.", MSG_SIG);
        return -1;
    }
    if (s.si[0] || s.skoid[0]) {
        fail_set(f, 403, "AuthenticationFailed", NULL,
                 "%s Stored access policies and user delegation SAS are not supported by this emulator.", MSG_SIG);
        return -1;
    }
    if (!letters_ok(s.sp, "racwdxyltmeopi")) {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s Signature fields not well formed.", MSG_SIG);
        return -1;
    }
    int64_t st = 0, se = 0, now = now_s();
    if ((s.st[0] && parse_iso8601(s.st, &st)) || parse_iso8601(s.se, &se)) {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s Signature fields not well formed.", MSG_SIG);
        return -1;
    }
    if ((s.st[0] && now < st) || now >= se) {
        fail_set(f, 403, "AuthenticationFailed", NULL,
                 "%s Signature not valid in the specified time frame: Start [%s] - Expiry [%s] - Current [%" PRId64
                 "]",
                 MSG_SIG, s.st, s.se, now);
        return -1;
    }
    if (s.spr[0] && strcmp(s.spr, "https,http") != 0 && strcmp(s.spr, "http,https") != 0) {
        fail_set(f, 403, "AuthorizationProtocolMismatch", NULL,
                 "This request is not authorized to perform this operation using this protocol.");
        return -1;
    }
    dbuf sts;
    dbuf_init(&sts, AUTH_MSG_MAX);
    int rc = 0;
    if (account) {
        if (!strchr(s.ss, 'b')) {
            fail_set(f, 403, "AuthorizationServiceMismatch", NULL,
                     "This request is not authorized to perform this operation using this service.");
            dbuf_free(&sts);
            return -1;
        }
        char need = !fs ? 's' : (!path || !*path) ? 'c' : 'o';
        if (!strchr(s.srt, need)) {
            fail_set(f, 403, "AuthorizationResourceTypeMismatch", NULL,
                     "This request is not authorized to perform this operation using this resource type.");
            dbuf_free(&sts);
            return -1;
        }
        rc = dbuf_printf(&sts, "%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n", a->key.account, s.sp, s.ss, s.srt, s.st, s.se,
                         s.sip, s.spr, s.sv);
        if (!rc && strcmp(s.sv, "2020-12-06") >= 0) rc = dbuf_printf(&sts, "%s\n", s.ses);
    } else {
        char canon[2048] = "";
        if (strcmp(s.sr, "c") == 0) {
            canon[0] = 0;
        } else if (strcmp(s.sr, "b") == 0) {
            snprintf(canon, sizeof canon, "%s", path ? path : "");
        } else if (strcmp(s.sr, "d") == 0) {
            char *end = NULL;
            long d = strtol(s.sdd, &end, 10);
            if (!s.sdd[0] || !end || *end || d < 0 || d > 254) {
                fail_set(f, 403, "AuthenticationFailed", NULL, "%s Signature fields not well formed.", MSG_SIG);
                dbuf_free(&sts);
                return -1;
            }
            caller->sdd = (int)d;
            path_prefix(path ? path : "", (int)d, canon, sizeof canon);
        } else {
            fail_set(f, 403, "AuthenticationFailed", NULL, "%s Signature fields not well formed.", MSG_SIG);
            dbuf_free(&sts);
            return -1;
        }
        if (!fs) {
            fail_set(f, 403, "AuthorizationResourceTypeMismatch", NULL,
                     "This request is not authorized to perform this operation using this resource type.");
            dbuf_free(&sts);
            return -1;
        }
        skey_sas ss = {.sv = s.sv, .sp = s.sp, .st = s.st, .se = s.se, .sr = s.sr, .sig = s.sig, .si = s.si,
                       .sip = s.sip, .spr = s.spr, .sdd = s.sdd, .rscc = s.rscc, .rscd = s.rscd, .rsce = s.rsce,
                       .rscl = s.rscl, .rsct = s.rsct, .ses = s.ses};
        rc = skey_sas_string_to_sign(&a->key, &ss, fs, canon, &sts);
    }
    char sig[64];
    if (rc || !sts.data || skey_hmac_b64(a->key.key, a->key.key_len, sts.data, sts.len, sig)) {
        dbuf_free(&sts);
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s Signature fields not well formed.", MSG_SIG);
        return -1;
    }
    if (skey_ct_strcmp(sig, s.sig) != 0) {
        fail_set(f, 403, "AuthenticationFailed", NULL, "%s Signature did not match. String to sign used was %s",
                 MSG_SIG, sts.data);
        dbuf_free(&sts);
        return -1;
    }
    dbuf_free(&sts);
    caller->kind = account ? EMU_AUTH_ACCOUNT_SAS : EMU_AUTH_SAS;
    snprintf(caller->principal, sizeof caller->principal, "$superuser");
    snprintf(caller->sp, sizeof caller->sp, "%s", s.sp);
    snprintf(caller->sr, sizeof caller->sr, "%s", account ? "" : s.sr);
    return 0;
}

int emu_auth_check_sas(emu_auth *a, const char *query, const char *fs, const char *path, emu_auth_caller *caller,
                       emu_auth_fail *fail)
{
    memset(caller, 0, sizeof *caller);
    fail->status = 0;
    return sas_verify(a, query, fs, path, caller, fail);
}

int emu_auth_check(emu_auth *a, emu_req *r, const char *fs, const char *path, emu_auth_caller *caller,
                   emu_auth_fail *fail)
{
    memset(caller, 0, sizeof *caller);
    fail->status = 0;
    const char *authz = emu_req_header(r, "Authorization");
    if (authz && *authz) {
        if (strncasecmp(authz, "SharedKey ", 10) == 0) return check_shared_key(a, r, authz, caller, fail);
        if (strncasecmp(authz, "Bearer ", 7) == 0) return check_bearer(a, authz + 7, caller, fail);
        fail_set(fail, 400, "InvalidAuthenticationInfo", NULL,
                 "Authentication information is not given in the correct format. Check the value of Authorization "
                 "header.");
        return -1;
    }
    const char *q = emu_req_query(r);
    if (q && *q && param_present(q, "sig")) return sas_verify(a, q, fs, path, caller, fail);
    fail_set(fail, 401, "NoAuthenticationInformation", "", "%s", MSG_WWW);
    return -1;
}

int emu_auth_permits(const emu_auth_caller *c, char perm, emu_auth_fail *fail)
{
    if (c->kind != EMU_AUTH_SAS && c->kind != EMU_AUTH_ACCOUNT_SAS) return 0;
    if (strchr(c->sp, perm)) return 0;
    fail_set(fail, 403, "AuthorizationPermissionMismatch", NULL,
             "This request is not authorized to perform this operation using this permission.");
    return -1;
}
