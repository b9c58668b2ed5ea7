/*
 * test_gen1auth: the gen1.auth config keys (each mode's required keys, errors that name the key, no
 * secret in any message, kerberos refused) and the gen1auth module: bearer tokens from inline, env
 * and a file that is read again when it changes (also when replaced by rename, and kept through a
 * moment where it is missing), the hadoop query pieces, and mode none giving no identity.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "gen1auth.h"
#include "tharness.h"

static char jbuf[8192];

static const char *mk(const char *auth)
{
    snprintf(jbuf, sizeof jbuf,
             "{\"spool\":{\"dir\":\"/tmp/dp-spool\"},"
             "\"gen1\":{\"endpoint\":\"http://127.0.0.1:14001\",\"auth\":%s},"
             "\"gen2\":{\"endpoint\":\"http://127.0.0.1:10004\",\"account\":\"devstoreaccount1\","
             "\"auth\":{\"mode\":\"sas\",\"sas\":\"sv=1&sig=x\"},"
             "\"mappings\":[{\"gen1_prefix\":\"/\",\"filesystem\":\"lake\",\"prefix\":\"\"}]}}",
             auth);
    return jbuf;
}

static void expect_err(const char *auth, const char *path, const char *part)
{
    dp_config c;
    cfg_err e;
    const char *j = mk(auth);
    if (cfg_load_text(j, strlen(j), &c, &e) == 0) TH_FAIL_AT("loaded, expected a %s error: %s", path, auth);
    if (strcmp(e.path, path) != 0 || !strstr(e.message, part))
        TH_FAIL_AT("got \"%s: %s\", want \"%s: ...%s...\"", e.path, e.message, path, part);
    ASSERT_TRUE(strstr(e.message, "s3cr3t") == NULL);
}

static void must_load(const char *auth, dp_config *c)
{
    cfg_err e;
    const char *j = mk(auth);
    if (cfg_load_text(j, strlen(j), c, &e) != 0) TH_FAIL_AT("load failed: %s: %s", e.path, e.message);
}

TEST(config_errors_name_the_key)
{
    expect_err("{\"mode\":\"kerberos\"}", "gen1.auth.mode", "not supported yet");
    expect_err("{\"mode\":\"ntlm\"}", "gen1.auth.mode", "none, bearer, client_credentials, hadoop, kerberos");
    expect_err("{\"mode\":\"bearer\"}", "gen1.auth.token", "required with gen1.auth.mode bearer");
    expect_err("{\"mode\":\"bearer\",\"token\":\"s3cr3t\",\"token_env\":\"X\"}", "gen1.auth.token_env",
               "give only one of token, token_env and token_file");
    expect_err("{\"mode\":\"bearer\",\"token_file\":\"/nonexistent/dp-token\"}", "gen1.auth.token_file",
               "cannot read /nonexistent/dp-token");
    expect_err("{\"mode\":\"none\",\"token\":\"s3cr3t\"}", "gen1.auth.token", "not used with gen1.auth.mode none");
    expect_err("{\"mode\":\"client_credentials\",\"client_id\":\"a\",\"client_secret\":\"s3cr3t\"}",
               "gen1.auth.tenant_id", "required");
    expect_err("{\"mode\":\"client_credentials\",\"tenant_id\":\"t\",\"client_secret\":\"s3cr3t\"}",
               "gen1.auth.client_id", "required");
    expect_err("{\"mode\":\"client_credentials\",\"tenant_id\":\"t\",\"client_id\":\"a\"}", "gen1.auth.client_secret",
               "required with gen1.auth.mode client_credentials");
    expect_err("{\"mode\":\"client_credentials\",\"token_api\":\"v3\"}", "gen1.auth.token_api", "v1, v2");
    expect_err("{\"mode\":\"hadoop\"}", "gen1.auth.user", "required with gen1.auth.mode hadoop");
    expect_err("{\"mode\":\"bearer\",\"token\":\"s3cr3t\",\"doas\":\"hdfs\"}", "gen1.auth.doas", "only used with");
    expect_err("{\"mode\":\"hadoop\",\"user\":\"x\",\"refresh_margin_s\":9999}", "gen1.auth.refresh_margin_s", "");
    expect_err("{\"mode\":\"none\",\"usr\":\"x\"}", "gen1.auth.usr", "did you mean user");
}

TEST(defaults_and_explain)
{
    dp_config c;
    must_load("{}", &c);
    ASSERT_EQ_INT(c.gen1_auth, CFG_G1AUTH_NONE);
    ASSERT_EQ_STR(c.gen1_resource, "https://datalake.azure.net/");
    ASSERT_EQ_STR(c.gen1_authority, "https://login.microsoftonline.com");
    ASSERT_EQ_INT(c.gen1_token_api, CFG_TOKEN_API_V1);
    cfg_free(&c);
    must_load("{\"mode\":\"bearer\",\"token\":\"s3cr3t\"}", &c);
    dbuf b;
    dbuf_init(&b, 1 << 20);
    ASSERT_EQ_INT(cfg_explain(&c, &b), 0);
    ASSERT_TRUE(strstr(b.data, "gen1.auth.mode = bearer\n") != NULL);
    ASSERT_TRUE(strstr(b.data, "gen1.auth.token = (secret, inline)\n") != NULL);
    ASSERT_TRUE(strstr(b.data, "s3cr3t") == NULL);
    dbuf_free(&b);
    cfg_free(&c);
}

static int identity(g1a *a, char *authz, size_t cap, char *query, size_t qcap)
{
    dbuf z, q;
    dbuf_init(&z, 1 << 16);
    dbuf_init(&q, 4096);
    char err[256] = "";
    int rc = g1a_identity(a, &z, &q, NULL, err, sizeof err);
    snprintf(authz, cap, "%s", z.data ? z.data : "");
    snprintf(query, qcap, "%s", rc == 0 ? (q.data ? q.data : "") : err);
    dbuf_free(&z);
    dbuf_free(&q);
    return rc;
}

TEST(none_gives_no_identity)
{
    dp_config c;
    must_load("{}", &c);
    g1a *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g1a_new(&c, NULL, &a, err, sizeof err), 0);
    ASSERT_TRUE(!g1a_active(a));
    char z[64], q[64];
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "");
    ASSERT_EQ_STR(q, "");
    g1a_free(a);
    cfg_free(&c);
}

TEST(hadoop_query_is_encoded)
{
    dp_config c;
    must_load("{\"mode\":\"hadoop\",\"user\":\"dp proxy\",\"doas\":\"hdfs\"}", &c);
    g1a *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g1a_new(&c, NULL, &a, err, sizeof err), 0);
    char z[64], q[128];
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "");
    ASSERT_EQ_STR(q, "user.name=dp%20proxy&doas=hdfs");
    g1a_free(a);
    cfg_free(&c);
}

TEST(bearer_env)
{
    setenv("DP_TEST_G1TOKEN", "env-token", 1);
    dp_config c;
    must_load("{\"mode\":\"bearer\",\"token_env\":\"DP_TEST_G1TOKEN\"}", &c);
    g1a *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g1a_new(&c, NULL, &a, err, sizeof err), 0);
    char z[64], q[64];
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "Bearer env-token");
    g1a_free(a);
    cfg_free(&c);
}

static void put(const char *path, const char *text)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    ASSERT_TRUE(f != NULL);
    fputs(text, f);
    ASSERT_EQ_INT(fclose(f), 0);
    ASSERT_EQ_INT(rename(tmp, path), 0);
}

TEST(bearer_file_is_read_again_when_it_changes)
{
    char dir[] = "/tmp/test_gen1auth.XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char file[300], auth[600];
    snprintf(file, sizeof file, "%s/token", dir);
    put(file, "first-token\n");
    snprintf(auth, sizeof auth, "{\"mode\":\"bearer\",\"token_file\":\"%s\"}", file);
    dp_config c;
    must_load(auth, &c);
    g1a *a = NULL;
    char err[256];
    ASSERT_EQ_INT(g1a_new(&c, NULL, &a, err, sizeof err), 0);
    char z[128], q[256];
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "Bearer first-token");
    g1a_stats st;
    g1a_get_stats(a, &st);
    ASSERT_EQ_INT((int)st.file_reads, 0); /* unchanged since the loader read it: not read again */
    /* rotated by rename (new inode), same length */
    put(file, "other-token\n");
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "Bearer other-token");
    /* rewritten in place, another size */
    FILE *f = fopen(file, "w");
    ASSERT_TRUE(f != NULL);
    fputs("third-token-longer\r\nignored second line\n", f);
    ASSERT_EQ_INT(fclose(f), 0);
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "Bearer third-token-longer");
    /* briefly missing (mid-rotation): the last token is kept */
    ASSERT_EQ_INT(unlink(file), 0);
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "Bearer third-token-longer");
    /* back with a bad first line: still the last good token; then a good one is picked up */
    put(file, "has space\n");
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "Bearer third-token-longer");
    put(file, "fourth\n");
    ASSERT_EQ_INT(identity(a, z, sizeof z, q, sizeof q), 0);
    ASSERT_EQ_STR(z, "Bearer fourth");
    g1a_get_stats(a, &st);
    ASSERT_EQ_INT((int)st.file_reads, 3);
    ASSERT_TRUE(st.file_errors >= 2);
    g1a_free(a);
    cfg_free(&c);
    unlink(file);
    rmdir(dir);
}

TESTS(T(config_errors_name_the_key), T(defaults_and_explain), T(none_gives_no_identity), T(hadoop_query_is_encoded),
      T(bearer_env), T(bearer_file_is_read_again_when_it_changes))
