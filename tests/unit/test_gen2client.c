/*
 * Tests for gen2client against the real Gen2 emulator over loopback: a create-filesystem / create /
 * append / flush / read-back round trip in every auth mode (Shared Key, SAS, OAuth client credentials,
 * managed identity), wrong credentials surfacing Gen2's error code, token refresh during a run, the
 * single refresh-and-retry after a 401, mandatory headers, URL encoding of awkward names; and without
 * a server: path mapping (longest prefix, unmapped, names Gen2 refuses, prefix join), call validation
 * and error-code extraction.
 */
#include <pthread.h>

#include "gen2client.h"
#include "skey.h"
#include "temu.h"
#include "tharness.h"
#include "urlcodec.h"

#define SECRET "cc-secret-42"
#define CLIENT_ID "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

static void base_cfg(dp_config *c, const char *url, cfg_auth_mode mode)
{
    memset(c, 0, sizeof *c);
    snprintf(c->gen2_endpoint, sizeof c->gen2_endpoint, "%s", url);
    c->gen2_path_style = true;
    snprintf(c->gen2_account, sizeof c->gen2_account, "%s", TEMU_ACCOUNT);
    snprintf(c->gen2_version, sizeof c->gen2_version, "2021-06-08");
    c->gen2_connect_timeout_ms = 2000;
    c->gen2_timeout_ms = 15000;
    c->gen2_auth = mode;
    c->gen2_account_key.value = (char *)TEMU_KEY;
    snprintf(c->oauth_authority, sizeof c->oauth_authority, "%s", url);
    snprintf(c->oauth_tenant, sizeof c->oauth_tenant, "tenant-1");
    snprintf(c->oauth_client_id, sizeof c->oauth_client_id, "%s", CLIENT_ID);
    c->oauth_client_secret.value = (char *)SECRET;
    snprintf(c->oauth_resource, sizeof c->oauth_resource, "https://storage.azure.com/");
    snprintf(c->imds_endpoint, sizeof c->imds_endpoint, "%s/metadata/identity/oauth2/token", url);
    c->token_refresh_margin_s = 300;
    c->nmappings = 1;
    snprintf(c->mappings[0].gen1_prefix, sizeof c->mappings[0].gen1_prefix, "/");
    snprintf(c->mappings[0].filesystem, sizeof c->mappings[0].filesystem, "lake");
}

static void add_mapping(dp_config *c, const char *gen1, const char *fs, const char *prefix)
{
    cfg_mapping *m = &c->mappings[c->nmappings++];
    snprintf(m->gen1_prefix, sizeof m->gen1_prefix, "%s", gen1);
    snprintf(m->filesystem, sizeof m->filesystem, "%s", fs);
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
}

typedef struct env {
    httpc *http;
    gen2c *c;
} env;

static void env_open(env *e, const dp_config *cfg)
{
    char err[256];
    if (httpc_start(0, &e->http, err, sizeof err) != 0) TH_FAIL_AT("httpc_start: %s", err);
    if (gen2c_new(cfg, e->http, &e->c, err, sizeof err) != 0) TH_FAIL_AT("gen2c_new: %s", err);
}

static void env_close(env *e)
{
    gen2c_stop(e->c);
    httpc_stop(e->http);
    gen2c_free(e->c);
}

/* ---------- synchronous calls ---------- */

typedef struct waitbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    httpc_resp *resp;
    bool done;
    pthread_t thread;
} waitbox;

static void box_done(void *ud, httpc_resp *r)
{
    waitbox *b = ud;
    pthread_mutex_lock(&b->mu);
    b->resp = r;
    b->done = true;
    b->thread = pthread_self();
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static httpc_resp *box_wait(waitbox *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&b->mu);
    while (!b->done)
        if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) != 0) TH_FAIL_AT("no answer within 30 s");
    pthread_mutex_unlock(&b->mu);
    return b->resp;
}

/* Send and wait. hdrs: NULL-terminated or NULL. */
static httpc_resp *call(gen2c *c, const char *method, const char *fs, const char *path, const char *query,
                        const char *const *hdrs, const void *body, size_t len)
{
    waitbox b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    gen2c_call k;
    memset(&k, 0, sizeof k);
    k.method = method;
    k.fs = fs;
    k.path = path;
    k.query = query;
    for (int i = 0; hdrs && hdrs[i] && i < 24; i++) k.headers[i] = hdrs[i];
    if (body) {
        k.in = HTTPC_IN_MEMORY;
        k.in_mem = body;
        k.in_len = len;
    }
    k.out = HTTPC_BODY_MEMORY;
    k.out_max = 1 << 20;
    k.done = box_done;
    k.ud = &b;
    if (gen2c_send(c, &k) != 0) TH_FAIL_AT("gen2c_send refused %s %s/%s", method, fs, path);
    return box_wait(&b);
}

static void resp_drop(httpc_resp *r)
{
    httpc_resp_free(r);
    free(r);
}

#define EXPECT_STATUS(r, want)                                                                      \
    do {                                                                                            \
        httpc_resp *er_ = (r);                                                                      \
        char ec_[128];                                                                              \
        if (er_->result != HTTPC_OK || er_->status != (want))                                       \
            TH_FAIL_AT("want %d, got result %s status %ld code '%s' (%s)", (want),                  \
                       httpc_result_str(er_->result), er_->status, gen2c_error_code(er_, ec_, sizeof ec_), \
                       er_->error);                                                                 \
    } while (0)

static void expect_drop(httpc_resp *r, int status)
{
    EXPECT_STATUS(r, status);
    resp_drop(r);
}

/* Create (optionally) the filesystem, then a file with data, flush, read back. */
static void roundtrip(gen2c *c, const char *fs, const char *path, bool create_fs)
{
    static const char data[] = "hello, gen2 world\n";
    size_t n = sizeof data - 1;
    if (create_fs) expect_drop(call(c, "PUT", fs, "", "resource=filesystem", NULL, NULL, 0), 201);
    expect_drop(call(c, "PUT", fs, path, "resource=file", NULL, NULL, 0), 201);
    expect_drop(call(c, "PATCH", fs, path, "action=append&position=0", NULL, data, n), 202);
    char q[64];
    snprintf(q, sizeof q, "action=flush&position=%zu&close=true", n);
    expect_drop(call(c, "PATCH", fs, path, q, NULL, NULL, 0), 200);
    httpc_resp *r = call(c, "GET", fs, path, NULL, NULL, NULL, 0);
    EXPECT_STATUS(r, 200);
    ASSERT_EQ_INT(r->body.len, n);
    ASSERT_EQ_MEM(r->body.data, data, n);
    resp_drop(r);
}

/* ---------- auth modes ---------- */

TEST(shared_key_roundtrip_and_headers)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_SHARED_KEY);
    snprintf(cfg.gen2_version, sizeof cfg.gen2_version, "2020-10-02");
    env v;
    env_open(&v, &cfg);
    roundtrip(v.c, "lake", "dir/file.txt", true);
    /* Mandatory headers: the version we configured and a fresh UUID request id are echoed back. */
    httpc_resp *r = call(v.c, "HEAD", "lake", "dir/file.txt", NULL, NULL, NULL, 0);
    EXPECT_STATUS(r, 200);
    ASSERT_EQ_STR(httpc_resp_header(r, "x-ms-version"), "2020-10-02");
    const char *crid = httpc_resp_header(r, "x-ms-client-request-id");
    ASSERT_TRUE(crid && strlen(crid) == 36 && crid[8] == '-' && crid[14] == '4');
    char first[40];
    snprintf(first, sizeof first, "%s", crid);
    resp_drop(r);
    r = call(v.c, "HEAD", "lake", "dir/file.txt", NULL, NULL, NULL, 0);
    ASSERT_TRUE(strcmp(httpc_resp_header(r, "x-ms-client-request-id"), first) != 0);
    resp_drop(r);
    /* A caller's own request id is kept (and signed). */
    const char *h[] = {"x-ms-client-request-id: writer-id-1", NULL};
    r = call(v.c, "HEAD", "lake", "dir/file.txt", NULL, h, NULL, 0);
    EXPECT_STATUS(r, 200);
    ASSERT_EQ_STR(httpc_resp_header(r, "x-ms-client-request-id"), "writer-id-1");
    resp_drop(r);
    /* Signed conditional headers: If-None-Match: * on an existing file is refused by Gen2 (409). */
    const char *h2[] = {"If-None-Match: *", "x-ms-permissions: 0640", "x-ms-umask: 0000", NULL};
    r = call(v.c, "PUT", "lake", "dir/file.txt", "resource=file", h2, NULL, 0);
    EXPECT_STATUS(r, 409);
    char code[64];
    ASSERT_EQ_STR(gen2c_error_code(r, code, sizeof code), "PathAlreadyExists");
    resp_drop(r);
    r = call(v.c, "PUT", "lake", "dir/new.txt", "resource=file", h2, NULL, 0);
    EXPECT_STATUS(r, 201);
    resp_drop(r);
    env_close(&v);
}

TEST(wrong_key_is_403_authentication_failed)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_SHARED_KEY);
    cfg.gen2_account_key.value = (char *)"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    env v;
    env_open(&v, &cfg);
    httpc_resp *r = call(v.c, "PUT", "lake", "", "resource=filesystem", NULL, NULL, 0);
    EXPECT_STATUS(r, 403);
    char code[64];
    ASSERT_EQ_STR(gen2c_error_code(r, code, sizeof code), "AuthenticationFailed");
    resp_drop(r);
    env_close(&v);
}

static void iso_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A service SAS for the whole filesystem (sr=c), laid out as tests/integration/emulib.py does. */
static char *make_sas(const char *fs, time_t start, time_t expiry)
{
    skey_key k;
    ASSERT_EQ_INT(skey_key_init(&k, TEMU_ACCOUNT, TEMU_KEY), 0);
    char st[32], se[32], sig[64];
    iso_time(start, st);
    iso_time(expiry, se);
    skey_sas s;
    memset(&s, 0, sizeof s);
    s.sv = "2020-02-10";
    s.sp = "racwdlm";
    s.st = st;
    s.se = se;
    s.sr = "c";
    ASSERT_EQ_INT(skey_sas_sign(&k, &s, fs, NULL, sig), 0);
    dbuf q;
    dbuf_init(&q, 4096);
    int rc = dbuf_printf(&q, "sv=%s&sr=c&sp=racwdlm&st=", s.sv);
    if (!rc) rc = url_encode(st, false, &q);
    if (!rc) rc = dbuf_adds(&q, "&se=");
    if (!rc) rc = url_encode(se, false, &q);
    if (!rc) rc = dbuf_adds(&q, "&sig=");
    if (!rc) rc = url_encode(sig, false, &q);
    ASSERT_EQ_INT(rc, 0);
    return dbuf_take(&q);
}

static void create_fs_shared_key(const temu *e, const char *fs)
{
    dp_config cfg;
    base_cfg(&cfg, e->url, CFG_AUTH_SHARED_KEY);
    env v;
    env_open(&v, &cfg);
    expect_drop(call(v.c, "PUT", fs, "", "resource=filesystem", NULL, NULL, 0), 201);
    env_close(&v);
}

TEST(sas_roundtrip)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    create_fs_shared_key(&e, "lake");
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_SAS);
    cfg.gen2_account_key.value = NULL;
    char *sas = make_sas("lake", time(NULL) - 300, time(NULL) + 3600);
    cfg.gen2_sas.value = sas;
    env v;
    env_open(&v, &cfg);
    roundtrip(v.c, "lake", "sas dir/f+1.bin", false);
    /* The rename source carries the SAS as well. */
    dbuf src;
    dbuf_init(&src, 4096);
    ASSERT_EQ_INT(gen2c_rename_source(v.c, "lake", "sas dir/f+1.bin", &src), 0);
    ASSERT_TRUE(strncmp(src.data, "/lake/sas%20dir/f%2B1.bin?sv=", 29) == 0);
    char hdr[4200];
    snprintf(hdr, sizeof hdr, "x-ms-rename-source: %s", src.data);
    const char *h[] = {hdr, NULL};
    expect_drop(call(v.c, "PUT", "lake", "sas dir/renamed", NULL, h, NULL, 0), 201);
    expect_drop(call(v.c, "HEAD", "lake", "sas dir/renamed", NULL, NULL, NULL, 0), 200);
    dbuf_free(&src);
    env_close(&v);
    free(sas);
}

TEST(sas_expired_fails)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    create_fs_shared_key(&e, "lake");
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_SAS);
    char *sas = make_sas("lake", time(NULL) - 7200, time(NULL) - 3600);
    cfg.gen2_sas.value = sas;
    env v;
    env_open(&v, &cfg);
    httpc_resp *r = call(v.c, "PUT", "lake", "x", "resource=file", NULL, NULL, 0);
    EXPECT_STATUS(r, 403);
    char code[64];
    ASSERT_EQ_STR(gen2c_error_code(r, code, sizeof code), "AuthenticationFailed");
    resp_drop(r);
    env_close(&v);
    free(sas);
}

static const char *const CC_ARGS[] = {"--oauth-client-id", CLIENT_ID, NULL};

TEST(client_credentials_roundtrip)
{
    temu e;
    temu_start(&e, "gen2", CC_ARGS, SECRET);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_CLIENT_CREDENTIALS);
    env v;
    env_open(&v, &cfg);
    /* No wait for the token: the first call is parked until it arrives. */
    roundtrip(v.c, "lake", "cc/file", true);
    ASSERT_EQ_INT(temu_counter(&e, "POST token"), 1);
    g2auth_stats st;
    gen2c_auth_stats(v.c, &st);
    ASSERT_EQ_INT(st.fetches_ok, 1);
    env_close(&v);
}

TEST(managed_identity_roundtrip)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_MANAGED_IDENTITY);
    env v;
    env_open(&v, &cfg);
    char err[256];
    ASSERT_EQ_INT(gen2c_wait_ready(v.c, 10000, err, sizeof err), 0);
    roundtrip(v.c, "lake", "mi/file", true);
    ASSERT_EQ_INT(temu_counter(&e, "GET imds"), 1);
    env_close(&v);
}

TEST(no_token_fails_call_with_reason)
{
    temu e;
    temu_start(&e, "gen2", CC_ARGS, "another-secret");
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_CLIENT_CREDENTIALS);
    env v;
    env_open(&v, &cfg);
    httpc_resp *r = call(v.c, "PUT", "lake", "", "resource=filesystem", NULL, NULL, 0);
    ASSERT_EQ_INT(r->result, HTTPC_E_AUTH);
    ASSERT_TRUE(strstr(r->error, "invalid_client") != NULL);
    ASSERT_TRUE(strstr(r->error, SECRET) == NULL);
    resp_drop(r);
    /* Nothing reached the storage side. */
    ASSERT_EQ_INT(temu_counter(&e, "PUT filesystem-create"), 0);
    env_close(&v);
}

TEST(token_refresh_during_run)
{
    const char *args[] = {"--oauth-client-id", CLIENT_ID, "--token-ttl", "2", NULL};
    temu e;
    temu_start(&e, "gen2", args, SECRET);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_CLIENT_CREDENTIALS);
    cfg.token_refresh_margin_s = 1;
    env v;
    env_open(&v, &cfg);
    expect_drop(call(v.c, "PUT", "lake", "", "resource=filesystem", NULL, NULL, 0), 201);
    for (int i = 0; i < 9; i++) {
        char p[32];
        snprintf(p, sizeof p, "f%d", i);
        expect_drop(call(v.c, "PUT", "lake", p, "resource=file", NULL, NULL, 0), 201);
        usleep(500 * 1000);
    }
    ASSERT_TRUE(temu_counter(&e, "POST token") > 1);
    ASSERT_EQ_INT(temu_counter(&e, "PUT create-file"), 9);
    env_close(&v);
}

TEST(a_401_refreshes_once_and_retries_once)
{
    temu e;
    temu_start(&e, "gen2", CC_ARGS, SECRET);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_CLIENT_CREDENTIALS);
    env v;
    env_open(&v, &cfg);
    expect_drop(call(v.c, "PUT", "lake", "", "resource=filesystem", NULL, NULL, 0), 201);
    ASSERT_EQ_INT(temu_counter(&e, "POST token"), 1);
    /* One 401: a new token is fetched and the request is sent again, with its body. */
    temu_fault(&e, "method=PATCH,op=append,action=fail,status=401,count=1");
    expect_drop(call(v.c, "PUT", "lake", "a", "resource=file", NULL, NULL, 0), 201);
    expect_drop(call(v.c, "PATCH", "lake", "a", "action=append&position=0", NULL, "abc", 3), 202);
    expect_drop(call(v.c, "PATCH", "lake", "a", "action=flush&position=3&close=true", NULL, NULL, 0), 200);
    ASSERT_EQ_INT(temu_counter(&e, "POST token"), 2);
    ASSERT_EQ_INT(temu_counter(&e, "PATCH append"), 2);
    httpc_resp *r = call(v.c, "GET", "lake", "a", NULL, NULL, NULL, 0);
    EXPECT_STATUS(r, 200);
    ASSERT_EQ_INT(r->body.len, 3);
    resp_drop(r);
    /* Two 401s in a row: exactly one refresh and one retry, then the caller gets the 401. */
    temu_fault(&e, "method=PUT,op=create-file,action=fail,status=401,count=2");
    r = call(v.c, "PUT", "lake", "b", "resource=file", NULL, NULL, 0);
    EXPECT_STATUS(r, 401);
    resp_drop(r);
    ASSERT_EQ_INT(temu_counter(&e, "POST token"), 3);
    ASSERT_EQ_INT(temu_counter(&e, "PUT create-file"), 3);
    env_close(&v);
}

TEST(shared_key_401_is_not_retried)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_SHARED_KEY);
    env v;
    env_open(&v, &cfg);
    temu_fault(&e, "method=PUT,op=filesystem-create,action=fail,status=401,count=1");
    httpc_resp *r = call(v.c, "PUT", "lake", "", "resource=filesystem", NULL, NULL, 0);
    EXPECT_STATUS(r, 401);
    resp_drop(r);
    ASSERT_EQ_INT(temu_counter(&e, "PUT filesystem-create"), 1);
    env_close(&v);
}

TEST(awkward_names_roundtrip)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_SHARED_KEY);
    env v;
    env_open(&v, &cfg);
    expect_drop(call(v.c, "PUT", "lake", "", "resource=filesystem", NULL, NULL, 0), 201);
    static const char *const names[] = {"sp ace/x y", "plus+/a+b", "pct%/100%25", ("\xc3\xbcnic\xc3\xb8" "de/\xe6\x97\xa5"),
                                        "q?h#a&b=c;d", "tilde~-_.ok"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) roundtrip(v.c, "lake", names[i], false);
    /* Listing shows the names decoded exactly as given. */
    httpc_resp *r = call(v.c, "GET", "lake", "", "resource=filesystem&recursive=true", NULL, NULL, 0);
    EXPECT_STATUS(r, 200);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *j = json_loadb(r->body.data, r->body.len, 0, NULL);
        json_t *paths = json_object_get(j, "paths");
        bool found = false;
        for (size_t k = 0; k < json_array_size(paths); k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(paths, k), "name")), names[i]) == 0)
                found = true;
        json_decref(j);
        if (!found) TH_FAIL_AT("'%s' not listed", names[i]);
    }
    resp_drop(r);
    env_close(&v);
}

/* ---------- no server ---------- */

static gen2c *offline_client(dp_config *cfg)
{
    gen2c *c = NULL;
    char err[256];
    if (gen2c_new(cfg, NULL, &c, err, sizeof err) != 0) TH_FAIL_AT("gen2c_new: %s", err);
    return c;
}

TEST(url_encoding)
{
    dp_config cfg;
    base_cfg(&cfg, "http://127.0.0.1:10004", CFG_AUTH_SHARED_KEY);
    gen2c *c = offline_client(&cfg);
    dbuf d;
    dbuf_init(&d, 4096);
    ASSERT_EQ_INT(gen2c_build_target(c, "lake", "dir/a b+c%d/\xc3\xbc~_.-x", &d), 0);
    ASSERT_EQ_STR(d.data, "/devstoreaccount1/lake/dir/a%20b%2Bc%25d/%C3%BC~_.-x");
    ASSERT_EQ_INT(gen2c_build_target(c, "lake", "", &d), 0);
    ASSERT_EQ_STR(d.data, "/devstoreaccount1/lake");
    ASSERT_EQ_INT(gen2c_build_target(c, "lake", "q?#&=:;@", &d), 0);
    ASSERT_EQ_STR(d.data, "/devstoreaccount1/lake/q%3F%23%26%3D%3A%3B%40");
    ASSERT_EQ_INT(gen2c_build_target(c, NULL, NULL, &d), 0);
    ASSERT_EQ_STR(d.data, "/devstoreaccount1/");
    gen2c_free(c);
    /* Host-style: no account segment. */
    base_cfg(&cfg, "https://acct.dfs.core.windows.net/", CFG_AUTH_SHARED_KEY);
    cfg.gen2_path_style = false;
    c = offline_client(&cfg);
    ASSERT_EQ_INT(gen2c_build_target(c, "lake", "a b", &d), 0);
    ASSERT_EQ_STR(d.data, "/lake/a%20b");
    ASSERT_EQ_INT(gen2c_rename_source(c, "lake", "a b", &d), 0);
    ASSERT_EQ_STR(d.data, "/lake/a%20b");
    dbuf_free(&d);
    gen2c_free(c);
}

TEST(config_errors)
{
    dp_config cfg;
    gen2c *c = NULL;
    char err[256];
    base_cfg(&cfg, "ftp://x", CFG_AUTH_SHARED_KEY);
    ASSERT_EQ_INT(gen2c_new(&cfg, NULL, &c, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.endpoint") != NULL);
    base_cfg(&cfg, "http://127.0.0.1:1/some/path", CFG_AUTH_SHARED_KEY);
    ASSERT_EQ_INT(gen2c_new(&cfg, NULL, &c, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.endpoint") != NULL);
    base_cfg(&cfg, "http://127.0.0.1:1", CFG_AUTH_SHARED_KEY);
    snprintf(cfg.mappings[0].filesystem, sizeof cfg.mappings[0].filesystem, "Bad--Name");
    ASSERT_EQ_INT(gen2c_new(&cfg, NULL, &c, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.mappings[0].filesystem") != NULL);
    base_cfg(&cfg, "http://127.0.0.1:1", CFG_AUTH_SHARED_KEY);
    cfg.gen2_account_key.value = NULL;
    ASSERT_EQ_INT(gen2c_new(&cfg, NULL, &c, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "gen2.auth.account_key") != NULL);
}

static void noop_done(void *ud, httpc_resp *r)
{
    (void)ud;
    (void)r;
}

TEST(invalid_calls_refused)
{
    dp_config cfg;
    base_cfg(&cfg, "http://127.0.0.1:1", CFG_AUTH_SHARED_KEY);
    gen2c *c = offline_client(&cfg);
    gen2c_call k;
    memset(&k, 0, sizeof k);
    k.method = "PUT";
    k.fs = "lake";
    k.path = "x";
    k.done = noop_done;
    k.headers[0] = "x-ms-meta: a\r\nInjected: 1";
    ASSERT_EQ_INT(gen2c_send(c, &k), -1);
    k.headers[0] = "Authorization: Bearer x";
    ASSERT_EQ_INT(gen2c_send(c, &k), -1);
    k.headers[0] = "x-ms-date: Mon, 01 Jan 2024 00:00:00 GMT";
    ASSERT_EQ_INT(gen2c_send(c, &k), -1);
    k.headers[0] = "Bad Name: v";
    ASSERT_EQ_INT(gen2c_send(c, &k), -1);
    k.headers[0] = NULL;
    k.query = "action=flush&x=a b";
    ASSERT_EQ_INT(gen2c_send(c, &k), -1);
    k.query = "a=1\r\nX: y";
    ASSERT_EQ_INT(gen2c_send(c, &k), -1);
    k.query = NULL;
    k.method = "CONNECT";
    ASSERT_EQ_INT(gen2c_send(c, &k), -1);
    gen2c_free(c);
}

TEST(mapping_longest_prefix)
{
    dp_config cfg;
    base_cfg(&cfg, "http://127.0.0.1:1", CFG_AUTH_SHARED_KEY);
    add_mapping(&cfg, "/data", "raw", "in");
    add_mapping(&cfg, "/data/hot/", "hot", "");
    add_mapping(&cfg, "/archive", "cold", "/base/sub/");
    gen2c *c = offline_client(&cfg);
    char fs[64], path[2048], why[128];
    struct {
        const char *in, *fs, *path;
    } cases[] = {
        {"/data/hot/x", "hot", "x"},
        {"/data/hot", "hot", ""},
        {"/data/hotter", "raw", "in/hotter"},
        {"/data", "raw", "in"},
        {"/data/a/b c", "raw", "in/a/b c"},
        {"/database", "lake", "database"},
        {"/other/a", "lake", "other/a"},
        {"/", "lake", ""},
        {"/archive/2024/x+y%z", "cold", "base/sub/2024/x+y%z"},
        {"/archive", "cold", "base/sub"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gen2c_map_result m = gen2c_map(c, cases[i].in, fs, path, sizeof path, why, sizeof why);
        if (m != GEN2C_MAPPED) TH_FAIL_AT("%s: result %d (%s)", cases[i].in, m, why);
        ASSERT_EQ_STR(fs, cases[i].fs);
        ASSERT_EQ_STR(path, cases[i].path);
    }
    gen2c_free(c);
}

TEST(mapping_unmapped)
{
    dp_config cfg;
    base_cfg(&cfg, "http://127.0.0.1:1", CFG_AUTH_SHARED_KEY);
    snprintf(cfg.mappings[0].gen1_prefix, sizeof cfg.mappings[0].gen1_prefix, "/data");
    gen2c *c = offline_client(&cfg);
    char fs[64], path[2048], why[128];
    ASSERT_EQ_INT(gen2c_map(c, "/x/data", fs, path, sizeof path, why, sizeof why), GEN2C_UNMAPPED);
    ASSERT_EQ_INT(gen2c_map(c, "/database", fs, path, sizeof path, why, sizeof why), GEN2C_UNMAPPED);
    ASSERT_EQ_INT(gen2c_map(c, "/", fs, path, sizeof path, why, sizeof why), GEN2C_UNMAPPED);
    ASSERT_TRUE(why[0] != 0);
    ASSERT_EQ_INT(gen2c_map(c, "/data/y", fs, path, sizeof path, why, sizeof why), GEN2C_MAPPED);
    ASSERT_EQ_STR(path, "y");
    gen2c_free(c);
}

TEST(mapping_invalid_names)
{
    dp_config cfg;
    base_cfg(&cfg, "http://127.0.0.1:1", CFG_AUTH_SHARED_KEY);
    gen2c *c = offline_client(&cfg);
    char fs[64], path[4096], why[128];
    struct {
        const char *in, *why_has;
    } bad[] = {
        {"/dir./x", "ends with '.'"},
        {"/dir/x.", "ends with '.'"},
        {"/a/\x01", "control"},
        {"/a/\x7f", "control"},
        {"/a/\xc2\x85", "control"},  /* U+0085 */
        {"/a/\xff\xfe", "UTF-8"},
        {"/a/\xc0\xaf", "UTF-8"},    /* overlong '/' */
        {"/a\\b", "backslash"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gen2c_map_result m = gen2c_map(c, bad[i].in, fs, path, sizeof path, why, sizeof why);
        if (m != GEN2C_INVALID_NAME) TH_FAIL_AT("case %zu: result %d", i, m);
        if (!strstr(why, bad[i].why_has)) TH_FAIL_AT("case %zu: why '%s'", i, why);
        ASSERT_EQ_STR(fs, "lake");
    }
    /* 254 segments are fine, 255 are not. */
    char deep[1200] = "";
    size_t o = 0;
    for (int i = 0; i < 254; i++) o += (size_t)snprintf(deep + o, sizeof deep - o, "/d");
    ASSERT_EQ_INT(gen2c_map(c, deep, fs, path, sizeof path, why, sizeof why), GEN2C_MAPPED);
    snprintf(deep + o, sizeof deep - o, "/d");
    ASSERT_EQ_INT(gen2c_map(c, deep, fs, path, sizeof path, why, sizeof why), GEN2C_INVALID_NAME);
    ASSERT_TRUE(strstr(why, "254") != NULL);
    /* 1024 characters (counted as characters, not bytes) are fine, 1025 are not. */
    char longp[3200];
    longp[0] = '/';
    memset(longp + 1, 'a', 1024);
    longp[1025] = 0;
    ASSERT_EQ_INT(gen2c_map(c, longp, fs, path, sizeof path, why, sizeof why), GEN2C_MAPPED);
    longp[1025] = 'a';
    longp[1026] = 0;
    ASSERT_EQ_INT(gen2c_map(c, longp, fs, path, sizeof path, why, sizeof why), GEN2C_INVALID_NAME);
    ASSERT_TRUE(strstr(why, "1024") != NULL);
    o = 1;
    for (int i = 0; i < 1024; i++) {
        longp[o++] = '\xc3';
        longp[o++] = '\xa9';
    }
    longp[o] = 0;
    ASSERT_EQ_INT(gen2c_map(c, longp, fs, path, sizeof path, why, sizeof why), GEN2C_MAPPED);
    /* Fine names: spaces, '+', '%', unicode, dots inside. */
    ASSERT_EQ_INT(gen2c_map(c, "/a b/c+d/e%f/\xe6\x97\xa5/x.y/..z", fs, path, sizeof path, why, sizeof why),
                  GEN2C_MAPPED);
    ASSERT_EQ_STR(path, "a b/c+d/e%f/\xe6\x97\xa5/x.y/..z");
    /* Too small an output buffer is reported, not overrun. */
    char small[4];
    ASSERT_EQ_INT(gen2c_map(c, "/abcdef", fs, small, sizeof small, why, sizeof why), GEN2C_INVALID_NAME);
    gen2c_free(c);
}

static void fake_resp(httpc_resp *r, const char *hname, const char *hvalue, const char *body)
{
    memset(r, 0, sizeof *r);
    r->result = HTTPC_OK;
    r->status = 400;
    if (hname) {
        r->headers[0].name = (char *)hname;
        r->headers[0].value = (char *)hvalue;
        r->nheaders = 1;
    }
    dbuf_init(&r->body, 1 << 20);
    if (body) ASSERT_EQ_INT(dbuf_adds(&r->body, body), 0);
}

TEST(error_code_sources)
{
    httpc_resp r;
    char code[64];
    fake_resp(&r, "X-MS-Error-Code", "PathNotFound", "{\"error\":{\"code\":\"Other\"}}");
    ASSERT_EQ_STR(gen2c_error_code(&r, code, sizeof code), "PathNotFound");
    dbuf_free(&r.body);
    fake_resp(&r, NULL, NULL, "{\"error\":{\"code\":\"InvalidFlushPosition\",\"message\":\"m\"}}");
    ASSERT_EQ_STR(gen2c_error_code(&r, code, sizeof code), "InvalidFlushPosition");
    dbuf_free(&r.body);
    fake_resp(&r, NULL, NULL, "{\"Error\":{\"Code\":\"ConditionNotMet\",\"Message\":\"m\"}}");
    ASSERT_EQ_STR(gen2c_error_code(&r, code, sizeof code), "ConditionNotMet");
    dbuf_free(&r.body);
    fake_resp(&r, NULL, NULL, "{\"Code\":\"ServerBusy\"}");
    ASSERT_EQ_STR(gen2c_error_code(&r, code, sizeof code), "ServerBusy");
    dbuf_free(&r.body);
    fake_resp(&r, NULL, NULL, "<html><body>Bad Request</body></html>");
    ASSERT_EQ_STR(gen2c_error_code(&r, code, sizeof code), "");
    dbuf_free(&r.body);
    fake_resp(&r, NULL, NULL, NULL);
    ASSERT_EQ_STR(gen2c_error_code(&r, code, sizeof code), "");
    dbuf_free(&r.body);
    fake_resp(&r, "x-ms-error-code", "Bad\r\nCode", NULL);
    ASSERT_EQ_STR(gen2c_error_code(&r, code, sizeof code), "BadCode");
    dbuf_free(&r.body);
    ASSERT_EQ_STR(gen2c_error_code(NULL, code, sizeof code), "");
}

/* The classifier on its own: account-level codes and transport classes, and what stays path-level. */
TEST(problem_classifier_table)
{
    static const struct {
        httpc_result res;
        bool unresolved;
        long status;
        const char *code;
        gen2c_problem want;
    } t[] = {
        {HTTPC_OK, false, 404, "FilesystemNotFound", GEN2C_PROB_FS_NOT_FOUND},
        {HTTPC_OK, false, 404, "ContainerNotFound", GEN2C_PROB_FS_NOT_FOUND},
        {HTTPC_OK, false, 404, "PathNotFound", GEN2C_PROB_NONE},
        {HTTPC_OK, false, 404, "", GEN2C_PROB_NONE},
        {HTTPC_OK, false, 403, "AuthenticationFailed", GEN2C_PROB_AUTHENTICATION},
        {HTTPC_OK, false, 401, "InvalidAuthenticationInfo", GEN2C_PROB_AUTHENTICATION},
        {HTTPC_OK, false, 401, "NoAuthenticationInformation", GEN2C_PROB_AUTHENTICATION},
        {HTTPC_OK, false, 403, "AuthorizationPermissionMismatch", GEN2C_PROB_AUTHORIZATION},
        {HTTPC_OK, false, 403, "AuthorizationFailure", GEN2C_PROB_AUTHORIZATION},
        {HTTPC_OK, false, 403, "InsufficientAccountPermissions", GEN2C_PROB_AUTHORIZATION},
        {HTTPC_OK, false, 403, "", GEN2C_PROB_NONE},              /* no code: not known to be Gen2's */
        {HTTPC_OK, false, 400, "AuthorizationPermissionMismatch", GEN2C_PROB_NONE},
        {HTTPC_OK, false, 404, "AccountNotFound", GEN2C_PROB_ACCOUNT_NOT_FOUND},
        {HTTPC_OK, false, 403, "AccountIsDisabled", GEN2C_PROB_ACCOUNT_NOT_FOUND},
        {HTTPC_OK, false, 409, "PathAlreadyExists", GEN2C_PROB_NONE},
        {HTTPC_OK, false, 503, "ServerBusy", GEN2C_PROB_NONE},
        {HTTPC_E_CONNECT, true, 0, "", GEN2C_PROB_UNREACHABLE},
        {HTTPC_E_CONNECT, false, 0, "", GEN2C_PROB_NONE},          /* refused: an outage, not the account */
        {HTTPC_E_TIMEOUT, false, 0, "", GEN2C_PROB_NONE},
        {HTTPC_E_AUTH, false, 0, "", GEN2C_PROB_AUTHENTICATION},
        {HTTPC_E_CANCELLED, false, 0, "", GEN2C_PROB_NONE},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        gen2c_problem got = gen2c_classify(t[i].res, t[i].unresolved, t[i].status, t[i].code);
        if (got != t[i].want)
            TH_FAIL_AT("row %zu (%s %ld %s): got %s, want %s", i, httpc_result_str(t[i].res), t[i].status, t[i].code,
                       gen2c_problem_name(got), gen2c_problem_name(t[i].want));
    }
    ASSERT_TRUE(gen2c_problem_per_fs(GEN2C_PROB_FS_NOT_FOUND));
    ASSERT_TRUE(gen2c_problem_per_fs(GEN2C_PROB_AUTHORIZATION));
    ASSERT_TRUE(!gen2c_problem_per_fs(GEN2C_PROB_AUTHENTICATION));
    ASSERT_TRUE(!gen2c_problem_per_fs(GEN2C_PROB_UNREACHABLE));
    ASSERT_EQ_STR(gen2c_problem_name(GEN2C_PROB_FS_NOT_FOUND), "filesystem_not_found");
}

/* Get the properties of filesystem fs with a client made from cfg: what the classifier makes of the
 * answer, and the transport result it had. */
static gen2c_problem fs_props_problem(const dp_config *cfg, const char *fs, httpc_result *res, bool *unresolved)
{
    env v;
    env_open(&v, cfg);
    httpc_resp *r = call(v.c, "HEAD", fs, "", "resource=filesystem", NULL, NULL, 0);
    gen2c_problem p = gen2c_problem_of(r);
    *res = r->result;
    *unresolved = r->unresolved;
    resp_drop(r);
    env_close(&v);
    return p;
}

/* The classifier on real exchanges: a missing filesystem, a wrong key, a host that does not resolve,
 * and a refused connection (transient, not account-level). */
TEST(problem_classifier_on_the_wire)
{
    temu e;
    temu_start(&e, "gen2", NULL, NULL);
    dp_config cfg;
    base_cfg(&cfg, e.url, CFG_AUTH_SHARED_KEY);
    httpc_result res;
    bool unresolved;
    ASSERT_EQ_INT(fs_props_problem(&cfg, "nosuchfs", &res, &unresolved), GEN2C_PROB_FS_NOT_FOUND);
    env v;
    env_open(&v, &cfg);
    expect_drop(call(v.c, "PUT", "lake", "", "resource=filesystem", NULL, NULL, 0), 201);
    httpc_resp *r = call(v.c, "PUT", "lake", "missing/parent/f", "resource=file", NULL, NULL, 0);
    ASSERT_EQ_INT(gen2c_problem_of(r), GEN2C_PROB_NONE); /* created with its parents, or path-level */
    resp_drop(r);
    env_close(&v);
    ASSERT_EQ_INT(fs_props_problem(&cfg, "lake", &res, &unresolved), GEN2C_PROB_NONE);

    cfg.gen2_account_key.value = (char *)"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    ASSERT_EQ_INT(fs_props_problem(&cfg, "lake", &res, &unresolved), GEN2C_PROB_AUTHENTICATION);

    base_cfg(&cfg, "http://dualpipe-test-account.invalid:10004", CFG_AUTH_SHARED_KEY);
    ASSERT_EQ_INT(fs_props_problem(&cfg, "lake", &res, &unresolved), GEN2C_PROB_UNREACHABLE);
    ASSERT_EQ_INT(res, HTTPC_E_CONNECT);
    ASSERT_TRUE(unresolved);

    temu_stop(&e); /* nothing listens on its port any more: refused */
    base_cfg(&cfg, e.url, CFG_AUTH_SHARED_KEY);
    ASSERT_EQ_INT(fs_props_problem(&cfg, "lake", &res, &unresolved), GEN2C_PROB_NONE);
    ASSERT_EQ_INT(res, HTTPC_E_CONNECT);
    ASSERT_TRUE(!unresolved);
}

TESTS(T(shared_key_roundtrip_and_headers), T(wrong_key_is_403_authentication_failed), T(sas_roundtrip),
      T(sas_expired_fails), T(client_credentials_roundtrip), T(managed_identity_roundtrip),
      T(no_token_fails_call_with_reason), T(token_refresh_during_run), T(a_401_refreshes_once_and_retries_once),
      T(shared_key_401_is_not_retried), T(awkward_names_roundtrip), T(url_encoding), T(config_errors),
      T(invalid_calls_refused), T(mapping_longest_prefix), T(mapping_unmapped), T(mapping_invalid_names),
      T(error_code_sources), T(problem_classifier_table), T(problem_classifier_on_the_wire))
