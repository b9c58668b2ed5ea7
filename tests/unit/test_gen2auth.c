/*
 * Tests for gen2auth: Shared Key signatures that the common verifier accepts, SAS handling, config
 * errors that name the key and never the secret, and — against the real Gen2 emulator over loopback —
 * OAuth client credentials and managed identity tokens: first fetch, retries after 5xx, failure on a
 * refused connection, background refresh before expiry, and one shared refresh for concurrent waiters.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>

#include "gen2auth.h"
#include "skey.h"
#include "temu.h"
#include "tharness.h"

#define SECRET "s3cr3t-Value-XYZ"
#define CLIENT_ID "11111111-2222-3333-4444-555555555555"

static void base_cfg(dp_config *c, cfg_auth_mode mode)
{
    memset(c, 0, sizeof *c);
    snprintf(c->gen2_endpoint, sizeof c->gen2_endpoint, "http://127.0.0.1:1");
    c->gen2_path_style = true;
    snprintf(c->gen2_account, sizeof c->gen2_account, "%s", TEMU_ACCOUNT);
    snprintf(c->gen2_version, sizeof c->gen2_version, "2021-06-08");
    c->gen2_connect_timeout_ms = 2000;
    c->gen2_timeout_ms = 10000;
    c->gen2_auth = mode;
    c->gen2_account_key.value = (char *)TEMU_KEY;
    snprintf(c->oauth_authority, sizeof c->oauth_authority, "https://login.microsoftonline.com");
    snprintf(c->oauth_tenant, sizeof c->oauth_tenant, "contoso-tenant");
    snprintf(c->oauth_client_id, sizeof c->oauth_client_id, "%s", CLIENT_ID);
    c->oauth_client_secret.value = (char *)SECRET;
    snprintf(c->oauth_resource, sizeof c->oauth_resource, "https://storage.azure.com/");
    snprintf(c->imds_endpoint, sizeof c->imds_endpoint, "http://169.254.169.254/metadata/identity/oauth2/token");
    c->token_refresh_margin_s = 300;
    c->nmappings = 1;
    snprintf(c->mappings[0].gen1_prefix, sizeof c->mappings[0].gen1_prefix, "/");
    snprintf(c->mappings[0].filesystem, sizeof c->mappings[0].filesystem, "lake");
}

static httpc *start_http(void)
{
    httpc *h = NULL;
    char err[256];
    if (httpc_start(0, &h, err, sizeof err) != 0) TH_FAIL_AT("httpc_start: %s", err);
    return h;
}

/* ---------- Shared Key and SAS (no network) ---------- */

typedef struct hl {
    const char *const *h;
    int n;
} hl;

static const char *hl_get(void *ctx, const char *name)
{
    const hl *l = ctx;
    size_t n = strlen(name);
    for (int i = 0; i < l->n; i++)
        if (strncasecmp(l->h[i], name, n) == 0 && l->h[i][n] == ':') return l->h[i] + n + 2;
    return NULL;
}

static void hl_each(void *ctx, void (*fn)(void *, const char *, const char *), void *fnctx)
{
    const hl *l = ctx;
    for (int i = 0; i < l->n; i++) {
        char name[64];
        size_t n = (size_t)(strchr(l->h[i], ':') - l->h[i]);
        memcpy(name, l->h[i], n);
        name[n] = 0;
        fn(fnctx, name, l->h[i] + n + 2);
    }
}

TEST(shared_key_signature_verifies)
{
    dp_config cfg;
    base_cfg(&cfg, CFG_AUTH_SHARED_KEY);
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), 0);
    ASSERT_TRUE(!g2auth_uses_token(a));
    ASSERT_TRUE(g2auth_sas(a) == NULL);
    const char *hdrs[] = {"x-ms-date: Mon, 01 Jan 2024 00:00:00 GMT", "x-ms-version: 2021-06-08",
                          "Content-Type: application/octet-stream", "Content-Length: 11", "If-Match: \"0x1\""};
    g2auth_req r = {"PATCH", "/devstoreaccount1/lake/a%20b", "action=append&position=0", hdrs, 5};
    dbuf v;
    dbuf_init(&v, 1024);
    uint64_t gen = 99;
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, &gen, err, sizeof err), 0);
    ASSERT_EQ_INT(gen, 0);
    ASSERT_TRUE(strncmp(v.data, "SharedKey devstoreaccount1:", 27) == 0);

    /* The emulator's verifier (common/skey) accepts it for exactly this request... */
    skey_key k;
    ASSERT_EQ_INT(skey_key_init(&k, TEMU_ACCOUNT, TEMU_KEY), 0);
    hl l = {hdrs, 5};
    skey_request sr = {"PATCH", "/devstoreaccount1/lake/a%20b", "action=append&position=0", hl_get, hl_each, &l};
    ASSERT_EQ_INT(skey_verify(&k, &sr, v.data, NULL), 0);
    /* ...and not when a signed header, the path or the query differ. */
    const char *hdrs2[] = {"x-ms-date: Mon, 01 Jan 2024 00:00:00 GMT", "x-ms-version: 2021-06-08",
                           "Content-Type: application/octet-stream", "Content-Length: 12", "If-Match: \"0x1\""};
    hl l2 = {hdrs2, 5};
    sr.ctx = &l2;
    ASSERT_EQ_INT(skey_verify(&k, &sr, v.data, NULL), -EACCES);
    sr.ctx = &l;
    sr.raw_path = "/devstoreaccount1/lake/a%20c";
    ASSERT_EQ_INT(skey_verify(&k, &sr, v.data, NULL), -EACCES);
    sr.raw_path = "/devstoreaccount1/lake/a%20b";
    sr.raw_query = "action=append&position=1";
    ASSERT_EQ_INT(skey_verify(&k, &sr, v.data, NULL), -EACCES);
    dbuf_free(&v);
    g2auth_free(a);
}

TEST(sas_mode_appends_query_and_sends_no_header)
{
    dp_config cfg;
    base_cfg(&cfg, CFG_AUTH_SAS);
    cfg.gen2_sas.value = (char *)"?sv=2020-02-10&sr=c&sp=rw&se=2099-01-01T00%3A00%3A00Z&sig=abc%3D";
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), 0);
    ASSERT_EQ_STR(g2auth_sas(a), "sv=2020-02-10&sr=c&sp=rw&se=2099-01-01T00%3A00%3A00Z&sig=abc%3D");
    dbuf v;
    dbuf_init(&v, 1024);
    g2auth_req r = {"GET", "/devstoreaccount1/lake/x", NULL, NULL, 0};
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, NULL, err, sizeof err), 0);
    ASSERT_EQ_INT(v.len, 0);
    ASSERT_EQ_INT(g2auth_wait(a, 0, NULL, NULL), -1);
    ASSERT_EQ_INT(g2auth_wait_ready(a, 10, err, sizeof err), 0);
    dbuf_free(&v);
    g2auth_free(a);
}

TEST(config_errors_name_the_key_not_the_secret)
{
    dp_config cfg;
    g2auth *a = NULL;
    char err[256];
    base_cfg(&cfg, CFG_AUTH_SHARED_KEY);
    cfg.gen2_account_key.value = (char *)"not base64 !!" SECRET;
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.account_key") != NULL);
    ASSERT_TRUE(strstr(err, SECRET) == NULL);
    cfg.gen2_account_key.value = NULL;
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.account_key") != NULL);

    base_cfg(&cfg, CFG_AUTH_SAS);
    cfg.gen2_sas.value = (char *)"sv=2020-02-10&sp=r&" SECRET;
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.sas") != NULL);
    ASSERT_TRUE(strstr(err, SECRET) == NULL);
    cfg.gen2_sas.value = (char *)"sv=1&sig=a b\r\nX: y";
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), -1);

    base_cfg(&cfg, CFG_AUTH_CLIENT_CREDENTIALS);
    cfg.oauth_client_secret.value = NULL;
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.client_secret") != NULL);
    base_cfg(&cfg, CFG_AUTH_CLIENT_CREDENTIALS);
    snprintf(cfg.oauth_tenant, sizeof cfg.oauth_tenant, "a/b?c");
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.tenant_id") != NULL);
    base_cfg(&cfg, CFG_AUTH_CLIENT_CREDENTIALS);
    snprintf(cfg.oauth_authority, sizeof cfg.oauth_authority, "login.microsoftonline.com");
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.authority") != NULL);
    base_cfg(&cfg, CFG_AUTH_MANAGED_IDENTITY);
    cfg.imds_endpoint[0] = 0;
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.imds_endpoint") != NULL);
}

/* ---------- tokens from the emulator ---------- */

/* SIGHUP: a new account key signs from the next request on; a malformed one is refused (check and
 * apply alike) and changes nothing; a new SAS replaces the old one, which stays readable. */
TEST(reload_swaps_credentials)
{
    static const char other_key[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    dp_config cfg, nc;
    base_cfg(&cfg, CFG_AUTH_SHARED_KEY);
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), 0);
    const char *hdrs[] = {"x-ms-date: Mon, 01 Jan 2024 00:00:00 GMT", "x-ms-version: 2021-06-08"};
    g2auth_req r = {"GET", "/devstoreaccount1/lake/x", NULL, hdrs, 2};
    hl l = {hdrs, 2};
    skey_request sr = {"GET", "/devstoreaccount1/lake/x", NULL, hl_get, hl_each, &l};
    skey_key oldk, newk;
    ASSERT_EQ_INT(skey_key_init(&oldk, TEMU_ACCOUNT, TEMU_KEY), 0);
    ASSERT_EQ_INT(skey_key_init(&newk, TEMU_ACCOUNT, other_key), 0);
    dbuf v;
    dbuf_init(&v, 1024);

    base_cfg(&nc, CFG_AUTH_SHARED_KEY);
    nc.gen2_account_key.value = (char *)"not base64 " SECRET;
    ASSERT_EQ_INT(g2auth_reload(a, &nc, true, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "gen2.auth.account_key: not a valid base64 account key");
    ASSERT_EQ_INT(g2auth_reload(a, &nc, false, err, sizeof err), -1);
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, NULL, err, sizeof err), 0);
    ASSERT_EQ_INT(skey_verify(&oldk, &sr, v.data, NULL), 0);

    nc.gen2_account_key.value = (char *)other_key;
    ASSERT_EQ_INT(g2auth_reload(a, &nc, true, err, sizeof err), 0);
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, NULL, err, sizeof err), 0);
    ASSERT_EQ_INT(skey_verify(&oldk, &sr, v.data, NULL), 0); /* a check changes nothing */
    ASSERT_EQ_INT(g2auth_reload(a, &nc, false, err, sizeof err), 0);
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, NULL, err, sizeof err), 0);
    ASSERT_EQ_INT(skey_verify(&newk, &sr, v.data, NULL), 0);
    ASSERT_EQ_INT(skey_verify(&oldk, &sr, v.data, NULL), -EACCES);
    /* Another mode needs a restart: not this function's business, nothing changes. */
    base_cfg(&nc, CFG_AUTH_SAS);
    ASSERT_EQ_INT(g2auth_reload(a, &nc, false, err, sizeof err), 0);
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, NULL, err, sizeof err), 0);
    ASSERT_EQ_INT(skey_verify(&newk, &sr, v.data, NULL), 0);
    g2auth_free(a);

    base_cfg(&cfg, CFG_AUTH_SAS);
    cfg.gen2_sas.value = (char *)"sv=1&sig=old";
    ASSERT_EQ_INT(g2auth_new(&cfg, NULL, &a, err, sizeof err), 0);
    const char *before = g2auth_sas(a);
    base_cfg(&nc, CFG_AUTH_SAS);
    nc.gen2_sas.value = (char *)"sv=1&nosig";
    ASSERT_EQ_INT(g2auth_reload(a, &nc, true, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.sas:") == err);
    nc.gen2_sas.value = (char *)"?sv=1&sig=new";
    ASSERT_EQ_INT(g2auth_reload(a, &nc, false, err, sizeof err), 0);
    ASSERT_EQ_STR(g2auth_sas(a), "sv=1&sig=new");
    ASSERT_EQ_STR(before, "sv=1&sig=old"); /* a request still building with it reads valid memory */
    dbuf_free(&v);
    g2auth_free(a);
}

static void cc_cfg(dp_config *c, const temu *e)
{
    base_cfg(c, CFG_AUTH_CLIENT_CREDENTIALS);
    snprintf(c->gen2_endpoint, sizeof c->gen2_endpoint, "%s", e->url);
    snprintf(c->oauth_authority, sizeof c->oauth_authority, "%s/", e->url);
}

static const char *const CC_ARGS[] = {"--oauth-client-id", CLIENT_ID, NULL};

TEST(client_credentials_token)
{
    temu e;
    temu_start(&e, "gen2", CC_ARGS, SECRET);
    dp_config cfg;
    cc_cfg(&cfg, &e);
    httpc *h = start_http();
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, h, &a, err, sizeof err), 0);
    ASSERT_TRUE(g2auth_uses_token(a));
    ASSERT_EQ_INT(g2auth_wait_ready(a, 10000, err, sizeof err), 0);
    dbuf v;
    dbuf_init(&v, G2AUTH_MAX_TOKEN + 64);
    uint64_t gen = 0;
    g2auth_req r = {"GET", "/x", NULL, NULL, 0};
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, &gen, err, sizeof err), 0);
    ASSERT_TRUE(strncmp(v.data, "Bearer ey", 9) == 0); /* a JWT */
    ASSERT_EQ_INT(gen, 1);
    g2auth_stats st;
    g2auth_get_stats(a, &st);
    ASSERT_EQ_INT(st.fetches_ok, 1);
    ASSERT_EQ_INT(st.fetches_failed, 0);
    ASSERT_EQ_INT(temu_counter(&e, "POST token"), 1);
    /* A valid newer token is there for a waiter that used none: no fetch, answered at once. */
    ASSERT_EQ_INT(g2auth_wait(a, 0, NULL, NULL), 1);
    dbuf_free(&v);
    g2auth_free(a);
    httpc_stop(h);
}

TEST(wrong_secret_error_names_problem_without_secret)
{
    temu e;
    temu_start(&e, "gen2", CC_ARGS, "the-right-secret");
    dp_config cfg;
    cc_cfg(&cfg, &e);
    httpc *h = start_http();
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, h, &a, err, sizeof err), 0);
    ASSERT_EQ_INT(g2auth_wait_ready(a, 10000, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "client_credentials") != NULL);
    ASSERT_TRUE(strstr(err, "401") != NULL);
    ASSERT_TRUE(strstr(err, "invalid_client") != NULL);
    ASSERT_TRUE(strstr(err, SECRET) == NULL);
    /* A 401 from the token service fails the waiter at once, without the retries a 5xx gets (four
     * fetches, token_fetch_retried_after_5xx). The refresher keeps trying in the background after its
     * backoff (250 ms, doubling), so that a fixed secret is picked up without a restart: a loaded
     * machine may already have sent the second one when the counter is read, never the fourth. */
    ASSERT_TRUE(temu_counter(&e, "POST token") < 4);
    g2auth_free(a);
    httpc_stop(h);
}

TEST(token_fetch_retried_after_5xx)
{
    temu e;
    temu_start(&e, "gen2", CC_ARGS, SECRET);
    /* Fault before the client exists: the first two token requests fail with 503. */
    temu_fault(&e, "method=POST,op=token,action=fail,status=503,count=2");
    dp_config cfg;
    cc_cfg(&cfg, &e);
    httpc *h = start_http();
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, h, &a, err, sizeof err), 0);
    ASSERT_EQ_INT(g2auth_wait_ready(a, 15000, err, sizeof err), 0);
    g2auth_stats st;
    g2auth_get_stats(a, &st);
    ASSERT_EQ_INT(st.fetches_failed, 2);
    ASSERT_EQ_INT(st.fetches_ok, 1);
    ASSERT_EQ_INT(temu_counter(&e, "POST token"), 3);
    g2auth_free(a);
    httpc_stop(h);
}

TEST(token_service_unreachable_fails_after_retries)
{
    /* A port nobody listens on: bind, learn the port, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    ASSERT_EQ_INT(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ_INT(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    dp_config cfg;
    base_cfg(&cfg, CFG_AUTH_MANAGED_IDENTITY);
    snprintf(cfg.imds_endpoint, sizeof cfg.imds_endpoint, "http://127.0.0.1:%d/metadata/identity/oauth2/token",
             ntohs(sa.sin_port));
    httpc *h = start_http();
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, h, &a, err, sizeof err), 0);
    time_t t0 = time(NULL);
    ASSERT_EQ_INT(g2auth_wait_ready(a, 20000, err, sizeof err), -1);
    ASSERT_TRUE(time(NULL) - t0 < 10);
    ASSERT_TRUE(strstr(err, "managed_identity") != NULL);
    ASSERT_TRUE(strstr(err, "token request failed") != NULL);
    g2auth_stats st;
    g2auth_get_stats(a, &st);
    ASSERT_EQ_INT(st.fetches_failed, 4);
    ASSERT_EQ_INT(st.fetches_ok, 0);
    g2auth_free(a);
    httpc_stop(h);
}

TEST(managed_identity_token)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    dp_config cfg;
    base_cfg(&cfg, CFG_AUTH_MANAGED_IDENTITY);
    snprintf(cfg.imds_endpoint, sizeof cfg.imds_endpoint, "%s/metadata/identity/oauth2/token", e.url);
    httpc *h = start_http();
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, h, &a, err, sizeof err), 0);
    ASSERT_EQ_INT(g2auth_wait_ready(a, 10000, err, sizeof err), 0);
    ASSERT_EQ_INT(temu_counter(&e, "GET imds"), 1);
    dbuf v;
    dbuf_init(&v, G2AUTH_MAX_TOKEN + 64);
    g2auth_req r = {"GET", "/x", NULL, NULL, 0};
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, NULL, err, sizeof err), 0);
    ASSERT_TRUE(strncmp(v.data, "Bearer ", 7) == 0);
    dbuf_free(&v);
    g2auth_free(a);
    httpc_stop(h);
}

TEST(background_refresh_before_expiry)
{
    const char *args[] = {"--oauth-client-id", CLIENT_ID, "--token-ttl", "2", NULL};
    temu e;
    temu_start(&e, "gen2", args, SECRET);
    dp_config cfg;
    cc_cfg(&cfg, &e);
    cfg.token_refresh_margin_s = 1;
    httpc *h = start_http();
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, h, &a, err, sizeof err), 0);
    ASSERT_EQ_INT(g2auth_wait_ready(a, 10000, err, sizeof err), 0);
    dbuf v;
    dbuf_init(&v, G2AUTH_MAX_TOKEN + 64);
    g2auth_req r = {"GET", "/x", NULL, NULL, 0};
    /* Over 4 s a token is always at hand (never G2AUTH_AGAIN) because it is renewed ahead of time. */
    int missing = 0;
    for (int i = 0; i < 40; i++) {
        if (g2auth_authorization(a, &r, &v, NULL, err, sizeof err) != 0) missing++;
        usleep(100 * 1000);
    }
    ASSERT_EQ_INT(missing, 0);
    g2auth_stats st;
    g2auth_get_stats(a, &st);
    ASSERT_TRUE(st.fetches_ok >= 3);
    ASSERT_TRUE(temu_counter(&e, "POST token") >= 3);
    dbuf_free(&v);
    g2auth_free(a);
    httpc_stop(h);
}

typedef struct waitctx {
    g2auth *a;
    uint64_t stale;
    atomic_int ok, failed, immediate;
} waitctx;

static void on_ready(void *ud, bool ok, const char *err)
{
    waitctx *w = ud;
    (void)err;
    if (ok)
        atomic_fetch_add(&w->ok, 1);
    else
        atomic_fetch_add(&w->failed, 1);
}

static void *waiter_thread(void *arg)
{
    waitctx *w = arg;
    for (int i = 0; i < 5; i++) {
        int rc = g2auth_wait(w->a, w->stale, on_ready, w);
        if (rc == 1) atomic_fetch_add(&w->immediate, 1);
        if (rc < 0) atomic_fetch_add(&w->failed, 1);
    }
    return NULL;
}

TEST(concurrent_refresh_requests_share_one_fetch)
{
    temu e;
    temu_start(&e, "gen2", CC_ARGS, SECRET);
    dp_config cfg;
    cc_cfg(&cfg, &e);
    httpc *h = start_http();
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, h, &a, err, sizeof err), 0);
    ASSERT_EQ_INT(g2auth_wait_ready(a, 10000, err, sizeof err), 0);
    /* Slow the token endpoint so every waiter arrives while the one refresh is in flight. */
    temu_fault(&e, "method=POST,op=token,action=latency,latency_ms=500,count=1");
    waitctx w = {.a = a, .stale = 1};
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, waiter_thread, &w);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 100 && atomic_load(&w.ok) + atomic_load(&w.immediate) < 40; i++) usleep(50 * 1000);
    ASSERT_EQ_INT(atomic_load(&w.failed), 0);
    ASSERT_EQ_INT(atomic_load(&w.ok) + atomic_load(&w.immediate), 40);
    ASSERT_TRUE(atomic_load(&w.ok) > 0);
    ASSERT_EQ_INT(temu_counter(&e, "POST token"), 2);
    g2auth_stats st;
    g2auth_get_stats(a, &st);
    ASSERT_EQ_INT(st.generation, 2);
    /* A waiter holding the now-current generation starts the next refresh. */
    w.stale = 2;
    ASSERT_EQ_INT(g2auth_wait(a, 2, on_ready, &w), 0);
    for (int i = 0; i < 100 && atomic_load(&w.ok) + atomic_load(&w.immediate) < 41; i++) usleep(50 * 1000);
    ASSERT_EQ_INT(temu_counter(&e, "POST token"), 3);
    g2auth_free(a);
    httpc_stop(h);
}

TEST(stop_fails_queued_waiters)
{
    /* The token service keeps failing: waiters are parked between retries when the client stops. */
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    temu_fault(&e, "method=GET,op=imds,action=fail,status=503,count=100");
    dp_config cfg;
    base_cfg(&cfg, CFG_AUTH_MANAGED_IDENTITY);
    snprintf(cfg.imds_endpoint, sizeof cfg.imds_endpoint, "%s/metadata/identity/oauth2/token", e.url);
    httpc *h = start_http();
    g2auth *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g2auth_new(&cfg, h, &a, err, sizeof err), 0);
    waitctx w = {.a = a};
    ASSERT_EQ_INT(g2auth_wait(a, 0, on_ready, &w), 0);
    ASSERT_EQ_INT(g2auth_wait(a, 0, on_ready, &w), 0);
    usleep(100 * 1000);
    g2auth_stop(a);
    ASSERT_EQ_INT(atomic_load(&w.failed), 2);
    ASSERT_EQ_INT(atomic_load(&w.ok), 0);
    ASSERT_EQ_INT(g2auth_wait(a, 0, on_ready, &w), -1);
    dbuf v;
    dbuf_init(&v, 64);
    g2auth_req r = {"GET", "/x", NULL, NULL, 0};
    ASSERT_EQ_INT(g2auth_authorization(a, &r, &v, NULL, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "shutting down") != NULL);
    dbuf_free(&v);
    httpc_stop(h);
    g2auth_free(a);
}

TESTS(T(shared_key_signature_verifies), T(sas_mode_appends_query_and_sends_no_header),
      T(config_errors_name_the_key_not_the_secret), T(client_credentials_token),
      T(wrong_secret_error_names_problem_without_secret), T(token_fetch_retried_after_5xx),
      T(token_service_unreachable_fails_after_retries), T(managed_identity_token),
      T(background_refresh_before_expiry), T(concurrent_refresh_requests_share_one_fetch),
      T(stop_fails_queued_waiters), T(reload_swaps_credentials))
