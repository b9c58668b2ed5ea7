/*
 * test_cfg: the configuration loader. A minimal config loads and every default is what the example
 * file documents; each kind of mistake (unknown key, type, bounds, enum, host:port, URL, mapping,
 * duplicate, auth mode requirements, secrets from env and file) fails with the full key path; the
 * gen2.path_style default follows the endpoint host; relative paths follow the config file's
 * directory; a secret never shows in cfg_explain or in any error message; config/local.json and
 * config/dualpipe.example.json from the source tree both load.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "cfg.h"
#include "tharness.h"

#define DEVKEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
/* A valid base64 key that is easy to search for in output. */
#define MARKKEY "U0VDUkVUTUFSS0VSU0VDUkVUTUFSS0VS"
#define AUTH_SK "{\"mode\":\"shared_key\",\"account_key\":\"" DEVKEY "\"}"
#define MAP1 "[{\"gen1_prefix\":\"/\",\"filesystem\":\"lake\",\"prefix\":\"\"}]"

static char jbuf[16384];

/* A config built from pieces: TOP members (each ending in ','; a default spool.dir unless TOP has
 * "spool"), GEN1 and GEN2 extra members (each starting with ','), the auth object and the mappings. */
static const char *mk(const char *top, const char *gen1, const char *gen2, const char *auth, const char *maps)
{
    int n = snprintf(jbuf, sizeof jbuf,
                     "{%s%s"
                     "\"gen1\":{\"endpoint\":\"http://127.0.0.1:14001\"%s},"
                     "\"gen2\":{\"endpoint\":\"http://127.0.0.1:10004\",\"account\":\"devstoreaccount1\"%s,"
                     "\"auth\":%s,\"mappings\":%s}}",
                     top ? top : "", top && strstr(top, "\"spool\"") ? "" : "\"spool\":{\"dir\":\"/tmp/dp-spool\"},",
                     gen1 ? gen1 : "", gen2 ? gen2 : "", auth ? auth : AUTH_SK, maps ? maps : MAP1);
    if (n < 0 || (size_t)n >= sizeof jbuf) TH_FAIL_AT("mk: config too long");
    return jbuf;
}

static int load(const char *json, dp_config *c, cfg_err *e) { return cfg_load_text(json, strlen(json), c, e); }

static void must_load(const char *json, dp_config *c)
{
    cfg_err e;
    if (load(json, c, &e) != 0) TH_FAIL_AT("load failed: %s: %s\nconfig: %s", e.path, e.message, json);
}

/* Loading fails, the error names PATH and the message contains PART. */
#define EXPECT_ERR(json, wpath, wpart)                                                             \
    do {                                                                                           \
        dp_config c_;                                                                              \
        cfg_err e_;                                                                                \
        const char *j_ = (json);                                                                   \
        if (load(j_, &c_, &e_) == 0) TH_FAIL_AT("loaded, expected %s error\nconfig: %s", wpath, j_); \
        if (strcmp(e_.path, (wpath)) != 0 || !strstr(e_.message, (wpart)))                        \
            TH_FAIL_AT("got \"%s: %s\", want \"%s: ...%s...\"", e_.path, e_.message, wpath, wpart); \
        ASSERT_TRUE(c_.gen2_account_key.value == NULL);                                            \
    } while (0)

static char *explain(const dp_config *c)
{
    dbuf b;
    dbuf_init(&b, 1 << 20);
    ASSERT_EQ_INT(cfg_explain(c, &b), 0);
    return dbuf_take(&b);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ_INT(fputs(text, f) >= 0, 1);
    ASSERT_EQ_INT(fclose(f), 0);
}

static char *tmpdir(void)
{
    static char d[64];
    snprintf(d, sizeof d, "/tmp/test_cfg.XXXXXX");
    ASSERT_TRUE(mkdtemp(d) != NULL);
    return d;
}

TEST(minimal_config_loads)
{
    dp_config c;
    must_load(mk(NULL, NULL, NULL, NULL, NULL), &c);
    ASSERT_EQ_STR(c.gen1_endpoint, "http://127.0.0.1:14001");
    ASSERT_EQ_STR(c.gen1_addr.host, "127.0.0.1");
    ASSERT_EQ_INT(c.gen1_addr.port, 14001);
    ASSERT_TRUE(!c.gen1_https);
    ASSERT_EQ_STR(c.gen2_endpoint, "http://127.0.0.1:10004");
    ASSERT_EQ_INT(c.gen2_addr.port, 10004);
    ASSERT_EQ_STR(c.gen2_account, "devstoreaccount1");
    ASSERT_EQ_INT(c.gen2_auth, CFG_AUTH_SHARED_KEY);
    ASSERT_EQ_STR(c.gen2_account_key.value, DEVKEY);
    ASSERT_EQ_STR(c.gen2_account_key.source, "inline");
    ASSERT_TRUE(c.gen2_sas.value == NULL && c.oauth_client_secret.value == NULL);
    ASSERT_EQ_INT(c.nmappings, 1);
    ASSERT_EQ_STR(c.mappings[0].gen1_prefix, "/");
    ASSERT_EQ_STR(c.mappings[0].filesystem, "lake");
    ASSERT_EQ_STR(c.mappings[0].prefix, "");
    ASSERT_EQ_STR(c.spool_dir, "/tmp/dp-spool");
    cfg_free(&c);
    ASSERT_TRUE(c.gen2_account_key.value == NULL);
    cfg_free(&c); /* twice is harmless */
}

TEST(every_default)
{
    dp_config c;
    const char *j = "{\"gen1\":{\"endpoint\":\"https://acct.azuredatalakestore.net\"},"
                    "\"gen2\":{\"endpoint\":\"https://acct.dfs.core.windows.net\",\"account\":\"acct\","
                    "\"auth\":{\"account_key\":\"" DEVKEY "\"},\"mappings\":" MAP1 "}}";
    must_load(j, &c);
    ASSERT_EQ_STR(c.listen.host, "127.0.0.1");
    ASSERT_EQ_INT(c.listen.port, 14000);
    ASSERT_EQ_STR(c.public_url, "");
    ASSERT_EQ_INT(c.max_connections, 1024);
    ASSERT_EQ_INT(c.max_connections_per_client, 0);
    ASSERT_EQ_INT(c.max_header_bytes, 32768);
    ASSERT_EQ_INT(c.max_body_bytes, 16 * 1024 * 1024);
    ASSERT_EQ_INT(c.stream_buffer_bytes, 1024 * 1024);
    ASSERT_EQ_INT(c.stream_memory_bytes, 4 * 1024 * 1024);
    ASSERT_EQ_INT(c.idle_timeout_s, 60);
    ASSERT_EQ_INT(c.request_timeout_s, 300);
    ASSERT_EQ_INT(c.threads, 0);
    ASSERT_EQ_STR(c.admin_listen.host, "127.0.0.1");
    ASSERT_EQ_INT(c.admin_listen.port, 14080);
    ASSERT_EQ_INT(c.phase, CFG_PHASE_GEN1_PRIMARY);
    ASSERT_EQ_STR(c.spool_dir, "/var/lib/dualpipe/spool");
    ASSERT_TRUE(c.spool_max_bytes == 8ull * 1024 * 1024 * 1024);
    ASSERT_EQ_INT(c.spool_policy, CFG_SPOOL_DEGRADE);
    ASSERT_TRUE(c.spool_segment_bytes == 64ull << 20);
    ASSERT_EQ_STR(c.journal_dir, "/var/lib/dualpipe/spool/journal");
    ASSERT_EQ_INT(c.journal_io, CFG_IO_AUTO);
    ASSERT_TRUE(c.journal_segment_bytes == 64ull << 20);
    ASSERT_EQ_INT(c.journal_lazy_ms, 100);
    ASSERT_TRUE(c.journal_verify_bodies);
    ASSERT_EQ_INT(c.ack, CFG_ACK_DURABLE);
    ASSERT_EQ_INT(c.applier_concurrency, 64);
    ASSERT_EQ_INT(c.applier_backoff_base_ms, 500);
    ASSERT_EQ_INT(c.applier_backoff_cap_ms, 30000);
    ASSERT_EQ_INT(c.applier_breaker_failures, 5);
    ASSERT_EQ_INT(c.applier_breaker_probe_ms, 500);
    ASSERT_EQ_INT(c.applier_resync_attempts, 3);
    ASSERT_TRUE(c.applier_copy_part_bytes == 64ull * 1024 * 1024);
    ASSERT_EQ_INT(c.gen1_dialect, CFG_DIALECT_ADLS);
    ASSERT_EQ_INT(c.gen1_nrewrites, 0);
    ASSERT_EQ_INT(c.gen1_connect_timeout_ms, 5000);
    ASSERT_EQ_INT(c.gen1_timeout_ms, 60000);
    ASSERT_EQ_INT(c.gen1_settle_ms, 10000);
    ASSERT_TRUE(c.gen1_https);
    ASSERT_EQ_INT(c.gen1_addr.port, 443);
    ASSERT_TRUE(c.gen2_https);
    ASSERT_EQ_INT(c.gen2_addr.port, 443);
    ASSERT_EQ_STR(c.gen2_addr.host, "acct.dfs.core.windows.net");
    ASSERT_TRUE(!c.gen2_path_style);
    ASSERT_EQ_STR(c.gen2_version, "2021-06-08");
    ASSERT_EQ_INT(c.gen2_connect_timeout_ms, 5000);
    ASSERT_EQ_INT(c.gen2_timeout_ms, 60000);
    ASSERT_EQ_INT(c.gen2_auth, CFG_AUTH_SHARED_KEY);
    ASSERT_EQ_STR(c.oauth_authority, "https://login.microsoftonline.com");
    ASSERT_EQ_STR(c.oauth_tenant, "");
    ASSERT_EQ_STR(c.oauth_client_id, "");
    ASSERT_EQ_STR(c.oauth_resource, "https://storage.azure.com/");
    ASSERT_EQ_STR(c.imds_endpoint, "http://169.254.169.254/metadata/identity/oauth2/token");
    ASSERT_EQ_INT(c.token_refresh_margin_s, 300);
    ASSERT_EQ_INT(c.unmapped, CFG_UNMAPPED_SKIP);
    ASSERT_EQ_INT(c.log_level, 2); /* LOG_INFO */
    cfg_free(&c);
}

TEST(explicit_values)
{
    dp_config c;
    must_load(mk("\"listen\":\"0.0.0.0:0\",\"admin\":{\"listen\":\"[::1]:9000\"},\"phase\":\"gen2-only\","
                 "\"gen2_only\":{\"trust_network\":true},"
                 "\"public_url\":\"HTTP://Proxy.Example:8080/\",\"log\":{\"level\":\"debug\"},"
                 "\"limits\":{\"max_body_bytes\":\"64 MiB\",\"threads\":8},",
                 ",\"dialect\":\"hadoop\",\"timeout_ms\":1000,\"settle_ms\":0",
                 ",\"unmapped\":\"reject\",\"version\":\"2023-11-03\"", NULL, NULL),
              &c);
    ASSERT_EQ_STR(c.listen.host, "0.0.0.0");
    ASSERT_EQ_INT(c.listen.port, 0);
    ASSERT_EQ_STR(c.admin_listen.host, "::1");
    ASSERT_EQ_INT(c.admin_listen.port, 9000);
    ASSERT_EQ_INT(c.phase, CFG_PHASE_GEN2_ONLY);
    ASSERT_EQ_STR(cfg_phase_name(c.phase), "gen2-only");
    ASSERT_TRUE(c.g2only_trust_network);
    ASSERT_EQ_STR(c.public_url, "http://proxy.example:8080");
    ASSERT_EQ_INT(c.log_level, 3);
    ASSERT_TRUE(c.max_body_bytes == 64ull << 20);
    ASSERT_EQ_INT(c.threads, 8);
    ASSERT_EQ_INT(c.gen1_dialect, CFG_DIALECT_HADOOP);
    ASSERT_EQ_INT(c.gen1_timeout_ms, 1000);
    ASSERT_EQ_INT(c.gen1_settle_ms, 0);
    ASSERT_EQ_INT(c.unmapped, CFG_UNMAPPED_REJECT);
    ASSERT_EQ_STR(c.gen2_version, "2023-11-03");
    cfg_free(&c);
    ASSERT_EQ_STR(cfg_phase_name(CFG_PHASE_GEN1_PRIMARY), "gen1-primary");
    ASSERT_EQ_STR(cfg_phase_name(CFG_PHASE_GEN2_PRIMARY), "gen2-primary");
}

TEST(unknown_keys_name_the_path_and_suggest)
{
    EXPECT_ERR(mk(NULL, NULL, ",\"auht\":{}", NULL, NULL), "gen2.auht", "unknown key (did you mean auth?)");
    EXPECT_ERR(mk("\"lsiten\":\"127.0.0.1:1\",", NULL, NULL, NULL, NULL), "lsiten", "did you mean listen?");
    EXPECT_ERR(mk("\"limits\":{\"max_conections\":5},", NULL, NULL, NULL, NULL), "limits.max_conections",
               "did you mean max_connections?");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key_enw\":\"X\"}", NULL), "gen2.auth.account_key_enw",
               "did you mean account_key_env?");
    EXPECT_ERR(mk("\"zzzzzz\":1,", NULL, NULL, NULL, NULL), "zzzzzz", "unknown key");
    EXPECT_ERR(mk(NULL, ",\"settle_ms\":3600001", NULL, NULL, NULL), "gen1.settle_ms", "");
    EXPECT_ERR(mk(NULL, ",\"settle_ms\":-1", NULL, NULL, NULL), "gen1.settle_ms", "");
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL, "[{\"gen1_prefix\":\"/\",\"filesytem\":\"lake\"}]"),
               "gen2.mappings[0].filesytem", "did you mean filesystem?");
    /* a leaf used as an object, and an object used as a leaf */
    EXPECT_ERR(mk("\"listen\":{\"host\":\"x\"},", NULL, NULL, NULL, NULL), "listen", "must be a string");
    EXPECT_ERR(mk("\"limits\":5,", NULL, NULL, NULL, NULL), "limits", "must be an object");
    EXPECT_ERR("[1,2]", "", "must be a JSON object");
}

TEST(comment_keys_are_ignored_duplicates_refused)
{
    dp_config c;
    must_load(mk("\"//\":\"top comment\",\"// listen\":{\"any\":[1]},\"limits\":{\"//x\":1},",
                 ",\"//dialect\":\"hadoop or adls\",\"datanode_rewrite\":{\"//\":\"comment\"}", ",\"//\":null",
                 "{\"//mode\":\"c\",\"account_key\":\"" DEVKEY "\"}",
                 "[{\"//\":\"c\",\"gen1_prefix\":\"/\",\"filesystem\":\"lake\"}]"),
              &c);
    ASSERT_EQ_INT(c.gen1_nrewrites, 0);
    cfg_free(&c);
    EXPECT_ERR(mk("\"listen\":\"127.0.0.1:1\",\"listen\":\"127.0.0.1:2\",", NULL, NULL, NULL, NULL), "",
               "duplicate object key");
}

TEST(type_and_bound_errors)
{
    EXPECT_ERR(mk("\"listen\":5,", NULL, NULL, NULL, NULL), "listen", "must be a string");
    EXPECT_ERR(mk("\"limits\":{\"threads\":\"4\"},", NULL, NULL, NULL, NULL), "limits.threads", "must be an integer");
    EXPECT_ERR(mk("\"limits\":{\"threads\":1.5},", NULL, NULL, NULL, NULL), "limits.threads", "must be an integer");
    EXPECT_ERR(mk("\"limits\":{\"max_connections\":0},", NULL, NULL, NULL, NULL), "limits.max_connections",
               "must be from 1 to 1048576");
    EXPECT_ERR(mk("\"limits\":{\"max_connections_per_client\":-1},", NULL, NULL, NULL, NULL),
               "limits.max_connections_per_client", "must be from 0 to 1048576");
    EXPECT_ERR(mk("\"limits\":{\"idle_timeout_s\":-1},", NULL, NULL, NULL, NULL), "limits.idle_timeout_s",
               "must be from 1 to 86400");
    EXPECT_ERR(mk("\"limits\":{\"max_header_bytes\":99999999999999999},", NULL, NULL, NULL, NULL),
               "limits.max_header_bytes", "must be from");
    EXPECT_ERR(mk("\"limits\":{\"max_body_bytes\":\"12 XB\"},", NULL, NULL, NULL, NULL), "limits.max_body_bytes",
               "must be a byte count");
    EXPECT_ERR(mk("\"limits\":{\"max_body_bytes\":0},", NULL, NULL, NULL, NULL), "limits.max_body_bytes",
               "must be from 1 to");
    EXPECT_ERR(mk("\"limits\":{\"stream_buffer_bytes\":\"4 KiB\"},", NULL, NULL, NULL, NULL),
               "limits.stream_buffer_bytes", "must be from 65536 to 1073741824");
    EXPECT_ERR(mk("\"limits\":{\"stream_memory_bytes\":\"65 GiB\"},", NULL, NULL, NULL, NULL),
               "limits.stream_memory_bytes", "must be from 0 to 68719476736");
    EXPECT_ERR(mk("\"spool\":{\"max_bytes\":\"2000000 TiB\"},", NULL, NULL, NULL, NULL), "spool.max_bytes",
               "must be from");
    EXPECT_ERR(mk(NULL, NULL, ",\"path_style\":\"yes\"", NULL, NULL), "gen2.path_style", "must be true or false");
    EXPECT_ERR("{\"gen2\":{\"account\":\"Dev_Store\"}}", "gen2.account", "storage account name");
    EXPECT_ERR("{\"gen2\":{\"account\":\"ab\"}}", "gen2.account", "storage account name");
    EXPECT_ERR(mk(NULL, NULL, ",\"version\":\"2021-6-8\"", NULL, NULL), "gen2.version", "YYYY-MM-DD");
    EXPECT_ERR(mk("\"spool\":{\"dir\":\"\"},", NULL, NULL, NULL, NULL), "spool.dir", "must not be empty");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key\":\"" DEVKEY "\",\"resource\":\"\"}", NULL), "gen2.auth.resource",
               "must not be empty");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key\":\"" DEVKEY "\",\"tenant_id\":\"a\\nb\"}", NULL),
               "gen2.auth.tenant_id", "control characters");
    dp_config c;
    must_load(mk("\"limits\":{\"max_body_bytes\":\"1GiB\"},\"spool\":{\"max_bytes\":1048576},", NULL, NULL, NULL,
                 NULL),
              &c);
    ASSERT_TRUE(c.max_body_bytes == 1ull << 30);
    ASSERT_TRUE(c.spool_max_bytes == 1ull << 20);
    cfg_free(&c);
}

TEST(journal_spool_and_applier_keys)
{
    dp_config c;
    must_load(mk("\"spool\":{\"dir\":\"/tmp/dp-spool\",\"policy\":\"reject\",\"segment_bytes\":\"1 MiB\"},"
                 "\"journal\":{\"dir\":\"/tmp/dp-jrnl\",\"io\":\"threads\",\"segment_bytes\":\"4 GiB\","
                 "\"lazy_commit_ms\":1,\"verify_bodies\":false},\"ack\":\"both\","
                 "\"applier\":{\"concurrency\":1024,\"backoff_base_ms\":50,\"backoff_cap_ms\":50,"
                 "\"breaker_failures\":1,\"breaker_probe_ms\":100,\"resync_attempts\":100},",
                 NULL, NULL, NULL, NULL),
              &c);
    ASSERT_EQ_INT(c.spool_policy, CFG_SPOOL_REJECT);
    ASSERT_TRUE(c.spool_segment_bytes == 1ull << 20);
    ASSERT_EQ_STR(c.journal_dir, "/tmp/dp-jrnl");
    ASSERT_EQ_INT(c.journal_io, CFG_IO_THREADS);
    ASSERT_TRUE(c.journal_segment_bytes == 4ull << 30);
    ASSERT_EQ_INT(c.journal_lazy_ms, 1);
    ASSERT_TRUE(!c.journal_verify_bodies);
    ASSERT_EQ_INT(c.ack, CFG_ACK_BOTH);
    ASSERT_EQ_INT(c.applier_concurrency, 1024);
    ASSERT_EQ_INT(c.applier_backoff_base_ms, 50);
    ASSERT_EQ_INT(c.applier_backoff_cap_ms, 50); /* equal to the base is allowed */
    ASSERT_EQ_INT(c.applier_breaker_failures, 1);
    ASSERT_EQ_INT(c.applier_breaker_probe_ms, 100);
    ASSERT_EQ_INT(c.applier_resync_attempts, 100);
    char *x = explain(&c);
    ASSERT_TRUE(strstr(x, "journal.dir = \"/tmp/dp-jrnl\"\n") != NULL);
    ASSERT_TRUE(strstr(x, "journal.io = threads\n") != NULL);
    ASSERT_TRUE(strstr(x, "spool.policy = reject\n") != NULL);
    free(x);
    cfg_free(&c);

    /* journal.io names the iox backends, in iox_backend's order */
    must_load(mk("\"journal\":{\"io\":\"io_uring\"},", NULL, NULL, NULL, NULL), &c);
    ASSERT_EQ_INT(c.journal_io, CFG_IO_URING);
    ASSERT_EQ_INT(CFG_IO_AUTO, 0);
    ASSERT_EQ_INT(CFG_IO_URING, 1);
    ASSERT_EQ_INT(CFG_IO_THREADS, 2);
    cfg_free(&c);

    /* journal.dir "" (given or not) is <spool.dir>/journal, and the explanation says so */
    must_load(mk("\"spool\":{\"dir\":\"/srv/sp\"},\"journal\":{\"dir\":\"\"},", NULL, NULL, NULL, NULL), &c);
    ASSERT_EQ_STR(c.journal_dir, "/srv/sp/journal");
    cfg_free(&c);
    must_load(mk("\"spool\":{\"dir\":\"/srv/sp\"},", NULL, NULL, NULL, NULL), &c);
    ASSERT_EQ_STR(c.journal_dir, "/srv/sp/journal");
    x = explain(&c);
    ASSERT_TRUE(strstr(x, "journal.dir = \"/srv/sp/journal\" (default: <spool.dir>/journal)\n") != NULL);
    free(x);
    cfg_free(&c);
    /* a spool.dir so long that "/journal" does not fit: the error names journal.dir */
    static char longtop[1200];
    char dir[1020];
    memset(dir, 'a', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    snprintf(longtop, sizeof longtop, "\"spool\":{\"dir\":\"%s\"},", dir);
    EXPECT_ERR(mk(longtop, NULL, NULL, NULL, NULL), "journal.dir", "too long; set journal.dir");

    /* bounds, each naming its key */
    EXPECT_ERR(mk("\"spool\":{\"dir\":\"/x\",\"segment_bytes\":1048575},", NULL, NULL, NULL, NULL),
               "spool.segment_bytes", "must be from 1048576 to");
    EXPECT_ERR(mk("\"journal\":{\"segment_bytes\":\"512 KiB\"},", NULL, NULL, NULL, NULL), "journal.segment_bytes",
               "must be from 1048576 to");
    EXPECT_ERR(mk("\"journal\":{\"lazy_commit_ms\":0},", NULL, NULL, NULL, NULL), "journal.lazy_commit_ms",
               "must be from 1 to 10000");
    EXPECT_ERR(mk("\"journal\":{\"lazy_commit_ms\":10001},", NULL, NULL, NULL, NULL), "journal.lazy_commit_ms",
               "must be from 1 to 10000");
    EXPECT_ERR(mk("\"journal\":{\"verify_bodies\":1},", NULL, NULL, NULL, NULL), "journal.verify_bodies",
               "must be true or false");
    EXPECT_ERR(mk("\"applier\":{\"concurrency\":0},", NULL, NULL, NULL, NULL), "applier.concurrency",
               "must be from 1 to 1024");
    EXPECT_ERR(mk("\"applier\":{\"concurrency\":1025},", NULL, NULL, NULL, NULL), "applier.concurrency",
               "must be from 1 to 1024");
    EXPECT_ERR(mk("\"applier\":{\"breaker_failures\":0},", NULL, NULL, NULL, NULL), "applier.breaker_failures",
               "must be from 1 to 1000");
    EXPECT_ERR(mk("\"applier\":{\"breaker_probe_ms\":99},", NULL, NULL, NULL, NULL), "applier.breaker_probe_ms",
               "must be from 100 to 600000");
    EXPECT_ERR(mk("\"applier\":{\"resync_attempts\":101},", NULL, NULL, NULL, NULL), "applier.resync_attempts",
               "must be from 1 to 100");
    EXPECT_ERR(mk("\"applier\":{\"backoff_base_ms\":0},", NULL, NULL, NULL, NULL), "applier.backoff_base_ms",
               "must be from 1 to");
    /* the cap below the base (either key may be the one the file set) */
    EXPECT_ERR(mk("\"applier\":{\"backoff_cap_ms\":499},", NULL, NULL, NULL, NULL), "applier.backoff_cap_ms",
               "must be at least applier.backoff_base_ms (500)");
    EXPECT_ERR(mk("\"applier\":{\"backoff_base_ms\":40000},", NULL, NULL, NULL, NULL), "applier.backoff_cap_ms",
               "must be at least applier.backoff_base_ms (40000)");
    EXPECT_ERR(mk("\"applier\":{\"concurency\":4},", NULL, NULL, NULL, NULL), "applier.concurency",
               "did you mean concurrency?");
    /* enums */
    EXPECT_ERR(mk("\"spool\":{\"dir\":\"/x\",\"policy\":\"block\"},", NULL, NULL, NULL, NULL), "spool.policy",
               "must be one of degrade, reject (got \"block\")");
    EXPECT_ERR(mk("\"journal\":{\"io\":\"uring\"},", NULL, NULL, NULL, NULL), "journal.io",
               "must be one of auto, io_uring, threads (got \"uring\")");
    EXPECT_ERR(mk("\"ack\":\"primary\",", NULL, NULL, NULL, NULL), "ack", "must be one of durable, both");
    EXPECT_ERR(mk("\"ack\":true,", NULL, NULL, NULL, NULL), "ack", "must be a string, one of durable, both");
}

TEST(bad_enum_lists_the_choices)
{
    EXPECT_ERR(mk(NULL, ",\"dialect\":\"webhdfs\"", NULL, NULL, NULL), "gen1.dialect",
               "must be one of adls, hadoop (got \"webhdfs\")");
    EXPECT_ERR(mk("\"phase\":\"gen1_primary\",", NULL, NULL, NULL, NULL), "phase",
               "must be one of gen1-primary, gen2-primary, gen2-only");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"oauth\"}", NULL), "gen2.auth.mode",
               "shared_key, sas, client_credentials, managed_identity");
    EXPECT_ERR(mk("\"log\":{\"level\":3},", NULL, NULL, NULL, NULL), "log.level", "must be a string, one of error");
    EXPECT_ERR(mk(NULL, NULL, ",\"unmapped\":\"drop\"", NULL, NULL), "gen2.unmapped", "skip, reject");
}

TEST(host_port_errors)
{
    EXPECT_ERR(mk("\"listen\":\"127.0.0.1:70000\",", NULL, NULL, NULL, NULL), "listen", "port must be a number from 0 to 65535");
    EXPECT_ERR(mk("\"listen\":\"127.0.0.1\",", NULL, NULL, NULL, NULL), "listen", "must be host:port");
    EXPECT_ERR(mk("\"listen\":\"127.0.0.1:\",", NULL, NULL, NULL, NULL), "listen", "port must be");
    EXPECT_ERR(mk("\"listen\":\"127.0.0.1:8o\",", NULL, NULL, NULL, NULL), "listen", "port must be");
    EXPECT_ERR(mk("\"listen\":\":80\",", NULL, NULL, NULL, NULL), "listen", "invalid host");
    EXPECT_ERR(mk("\"admin\":{\"listen\":\"::1:80\"},", NULL, NULL, NULL, NULL), "admin.listen", "brackets");
    EXPECT_ERR(mk("\"admin\":{\"listen\":\"[::g]:80\"},", NULL, NULL, NULL, NULL), "admin.listen", "invalid host");
    EXPECT_ERR(mk("\"admin\":{\"listen\":\"bad host:80\"},", NULL, NULL, NULL, NULL), "admin.listen", "invalid host");
    EXPECT_ERR(mk("\"listen\":\"127.0.0.1:9000\",\"admin\":{\"listen\":\"127.0.0.1:9000\"},", NULL, NULL, NULL, NULL),
               "admin.listen", "must differ from listen");
    dp_config c;
    must_load(mk("\"listen\":\"127.0.0.1:0\",\"admin\":{\"listen\":\"127.0.0.1:0\"},", NULL, NULL, NULL, NULL), &c);
    cfg_free(&c);
}

TEST(gen2_only_without_gen1)
{
    static const char g2[] = "\"gen2\":{\"endpoint\":\"http://127.0.0.1:10004\",\"account\":\"devstoreaccount1\","
                             "\"auth\":{\"mode\":\"shared_key\",\"account_key\":\"a2V5\"},"
                             "\"mappings\":[{\"gen1_prefix\":\"/\",\"filesystem\":\"lake\"}]}";
    char j[1024];
    dp_config c;
    cfg_err e;
    snprintf(j, sizeof j, "{\"phase\":\"gen2-only\",\"gen2_only\":{\"workers\":4,\"list_max_entries\":5000},%s}", g2);
    if (load(j, &c, &e) != 0) TH_FAIL_AT("gen2-only without gen1: %s: %s", e.path, e.message);
    ASSERT_EQ_STR(c.gen1_endpoint, "");
    ASSERT_EQ_INT(c.g2only_workers, 4);
    ASSERT_EQ_INT(c.g2only_list_max, 5000);
    cfg_free(&c);
    snprintf(j, sizeof j, "{\"phase\":\"gen1-primary\",%s}", g2);
    EXPECT_ERR(j, "gen1.endpoint", "required key is missing");
    snprintf(j, sizeof j, "{\"phase\":\"gen2-only\",\"gen2_only\":{\"workers\":0},%s}", g2);
    EXPECT_ERR(j, "gen2_only.workers", "");
    /* writers are not checked by anyone in gen2-only: a non-loopback front needs client certificates or
     * an explicit trust_network */
    snprintf(j, sizeof j, "{\"phase\":\"gen2-only\",\"listen\":\"0.0.0.0:14000\",%s}", g2);
    EXPECT_ERR(j, "phase", "proxy's own Gen2 identity");
    snprintf(j, sizeof j, "{\"phase\":\"gen2-only\",\"listen\":\"10.1.2.3:14000\",%s}", g2);
    EXPECT_ERR(j, "phase", "listen is 10.1.2.3");
    static const char *ok[] = {"\"listen\":\"127.0.0.2:14000\"", "\"listen\":\"[::1]:14000\"",
                               "\"listen\":\"localhost:14000\"",
                               "\"listen\":\"0.0.0.0:14000\",\"gen2_only\":{\"trust_network\":true}"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(j, sizeof j, "{\"phase\":\"gen2-only\",%s,%s}", ok[i], g2);
        if (load(j, &c, &e) != 0) TH_FAIL_AT("%s: %s: %s", ok[i], e.path, e.message);
        cfg_free(&c);
    }
    /* gen2-primary: Gen1 is required (writes are mirrored to it), and writers are checked by nobody,
     * as in gen2-only */
    snprintf(j, sizeof j, "{\"phase\":\"gen2-primary\",%s}", g2);
    EXPECT_ERR(j, "gen1.endpoint", "required key is missing");
    snprintf(j, sizeof j, "{\"phase\":\"gen2-primary\",\"listen\":\"0.0.0.0:14000\",\"gen1\":{\"endpoint\":"
             "\"http://127.0.0.1:1\"},%s}", g2);
    EXPECT_ERR(j, "phase", "gen2-primary serves every writer with the proxy's own Gen2 identity");
    snprintf(j, sizeof j, "{\"phase\":\"gen2-primary\",\"gen1\":{\"endpoint\":\"http://127.0.0.1:1\"},%s}", g2);
    if (load(j, &c, &e) != 0) TH_FAIL_AT("gen2-primary: %s: %s", e.path, e.message);
    ASSERT_EQ_INT(c.phase, CFG_PHASE_GEN2_PRIMARY);
    cfg_free(&c);
    /* the rule is gen2-only's: gen1-primary on any address is fine */
    snprintf(j, sizeof j, "{\"listen\":\"0.0.0.0:14000\",\"gen1\":{\"endpoint\":\"http://127.0.0.1:1\"},%s}", g2);
    if (load(j, &c, &e) != 0) TH_FAIL_AT("gen1-primary on 0.0.0.0: %s: %s", e.path, e.message);
    cfg_free(&c);
}

TEST(endpoint_urls)
{
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"ftp://h\"}}", "gen1.endpoint", "http:// or https://");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"http://user:pw@h:1\"}}", "gen1.endpoint", "user information");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"http://h:1/webhdfs/v1\"}}", "gen1.endpoint", "must not have a path");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"http://h:0\"}}", "gen1.endpoint", "port must be a number from 1");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"http://h:1?x=1\"}}", "gen1.endpoint", "query");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"http://\"}}", "gen1.endpoint", "invalid host");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"\"}}", "gen1.endpoint", "http:// or https://");
    EXPECT_ERR(mk("\"public_url\":\"proxy:80\",", NULL, NULL, NULL, NULL), "public_url", "http:// or https://");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"managed_identity\",\"imds_endpoint\":\"http://h/x?y\"}", NULL),
               "gen2.auth.imds_endpoint", "query");
    dp_config c;
    must_load(mk(NULL, NULL, NULL,
                 "{\"mode\":\"managed_identity\",\"imds_endpoint\":\"http://127.0.0.1:10004/metadata/identity/oauth2/token/\","
                 "\"authority\":\"HTTPS://Login.Example/\"}",
                 NULL),
              &c);
    ASSERT_EQ_STR(c.imds_endpoint, "http://127.0.0.1:10004/metadata/identity/oauth2/token");
    ASSERT_EQ_STR(c.oauth_authority, "https://login.example");
    cfg_free(&c);
    must_load("{\"gen1\":{\"endpoint\":\"HTTPS://[::1]:8443/\"},"
              "\"gen2\":{\"endpoint\":\"http://LocalHost:10004\",\"account\":\"devstoreaccount1\","
              "\"auth\":{\"account_key\":\"" DEVKEY "\"},\"mappings\":" MAP1 "}}",
              &c);
    ASSERT_EQ_STR(c.gen1_endpoint, "https://[::1]:8443");
    ASSERT_EQ_STR(c.gen1_addr.host, "::1");
    ASSERT_EQ_INT(c.gen1_addr.port, 8443);
    ASSERT_TRUE(c.gen1_https);
    ASSERT_EQ_STR(c.gen2_endpoint, "http://localhost:10004");
    cfg_free(&c);
}

TEST(required_keys)
{
    EXPECT_ERR("{}", "gen1.endpoint", "required key is missing");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"http://h:1\"}}", "gen2.endpoint", "required key is missing");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"http://h:1\"},\"gen2\":{\"endpoint\":\"http://h:2\"}}", "gen2.account",
               "required key is missing");
    EXPECT_ERR("{\"gen1\":{\"endpoint\":\"http://h:1\"},\"gen2\":{\"endpoint\":\"http://h:2\",\"account\":\"abc\"}}",
               "gen2.mappings", "required key is missing");
}

TEST(mapping_errors)
{
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL, "[]"), "gen2.mappings", "at least one");
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL, "{}"), "gen2.mappings", "must be an array");
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL, "[\"/\"]"), "gen2.mappings[0]", "must be an object");
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL, "[{\"gen1_prefix\":\"/\"}]"), "gen2.mappings[0].filesystem",
               "required key is missing");
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL, "[{\"filesystem\":\"lake\"}]"), "gen2.mappings[0].gen1_prefix",
               "required key is missing");
    static const char *const badfs[] = {"Lake", "ab", "a--b", "-abc", "abc-", "a_bc", "lake/x"};
    for (size_t i = 0; i < sizeof badfs / sizeof badfs[0]; i++) {
        char maps[256];
        snprintf(maps, sizeof maps, "[{\"gen1_prefix\":\"/a\",\"filesystem\":\"lake\"},"
                                    "{\"gen1_prefix\":\"/b\",\"filesystem\":\"%s\"}]", badfs[i]);
        EXPECT_ERR(mk(NULL, NULL, NULL, NULL, maps), "gen2.mappings[1].filesystem", "filesystem name");
    }
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL,
                  "[{\"gen1_prefix\":\"/\",\"filesystem\":"
                  "\"a234567890123456789012345678901234567890123456789012345678901234\"}]"),
               "gen2.mappings[0].filesystem", "too long (at most 63 bytes)");
    static const char *const badg1[] = {"data", "/data/", "/a//b", "/a/./b", "/a/..", "", "//"};
    for (size_t i = 0; i < sizeof badg1 / sizeof badg1[0]; i++) {
        char maps[256];
        snprintf(maps, sizeof maps, "[{\"gen1_prefix\":\"%s\",\"filesystem\":\"lake\"}]", badg1[i]);
        EXPECT_ERR(mk(NULL, NULL, NULL, NULL, maps), "gen2.mappings[0].gen1_prefix", "path");
    }
    static const char *const badpfx[] = {"/x", "x/", "a//b", "a/../b", "."};
    for (size_t i = 0; i < sizeof badpfx / sizeof badpfx[0]; i++) {
        char maps[256];
        snprintf(maps, sizeof maps, "[{\"gen1_prefix\":\"/\",\"filesystem\":\"lake\",\"prefix\":\"%s\"}]", badpfx[i]);
        EXPECT_ERR(mk(NULL, NULL, NULL, NULL, maps), "gen2.mappings[0].prefix", "must not");
    }
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL,
                  "[{\"gen1_prefix\":\"/a\",\"filesystem\":\"lake\"},{\"gen1_prefix\":\"/b\",\"filesystem\":\"lake\"},"
                  "{\"gen1_prefix\":\"/a\",\"filesystem\":\"other\"}]"),
               "gen2.mappings[2].gen1_prefix", "duplicate: gen2.mappings[0]");
    /* 65 mappings is one too many */
    static char maps[8192];
    size_t n = 0;
    maps[n++] = '[';
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(maps + n, sizeof maps - n, "%s{\"gen1_prefix\":\"/p%d\",\"filesystem\":\"lake\"}",
                              i ? "," : "", i);
    snprintf(maps + n, sizeof maps - n, "]");
    EXPECT_ERR(mk(NULL, NULL, NULL, NULL, maps), "gen2.mappings", "at most 64");

    dp_config c;
    must_load(mk(NULL, NULL, NULL, NULL,
                 "[{\"gen1_prefix\":\"/\",\"filesystem\":\"lake\"},"
                 "{\"gen1_prefix\":\"/data/raw\",\"filesystem\":\"raw-2024\",\"prefix\":\"in/raw\"}]"),
              &c);
    ASSERT_EQ_INT(c.nmappings, 2);
    ASSERT_EQ_STR(c.mappings[1].gen1_prefix, "/data/raw");
    ASSERT_EQ_STR(c.mappings[1].filesystem, "raw-2024");
    ASSERT_EQ_STR(c.mappings[1].prefix, "in/raw");
    cfg_free(&c);
}

TEST(datanode_rewrite)
{
    dp_config c;
    must_load(mk(NULL, ",\"dialect\":\"hadoop\",\"datanode_rewrite\":{\"dn1.cluster:50075\":\"127.0.0.1:15001\","
                       "\"[fe80::1]:9864\":\"localhost:15002\"}",
                 NULL, NULL, NULL),
              &c);
    ASSERT_EQ_INT(c.gen1_nrewrites, 2);
    ASSERT_EQ_STR(c.gen1_rewrites[0].from, "dn1.cluster:50075");
    ASSERT_EQ_STR(c.gen1_rewrites[0].to, "127.0.0.1:15001");
    ASSERT_EQ_STR(c.gen1_rewrites[1].from, "[fe80::1]:9864");
    ASSERT_EQ_STR(c.gen1_rewrites[1].to, "localhost:15002");
    char *x = explain(&c);
    ASSERT_TRUE(strstr(x, "gen1.datanode_rewrite[\"dn1.cluster:50075\"] = \"127.0.0.1:15001\"\n") != NULL);
    free(x);
    cfg_free(&c);
    EXPECT_ERR(mk(NULL, ",\"datanode_rewrite\":{\"dn1\":\"127.0.0.1:1\"}", NULL, NULL, NULL),
               "gen1.datanode_rewrite[\"dn1\"]", "data node's host:port");
    EXPECT_ERR(mk(NULL, ",\"datanode_rewrite\":{\"dn1:1\":\"127.0.0.1:0\"}", NULL, NULL, NULL),
               "gen1.datanode_rewrite[\"dn1:1\"]", "port must be a number from 1");
    EXPECT_ERR(mk(NULL, ",\"datanode_rewrite\":{\"dn1:1\":5}", NULL, NULL, NULL), "gen1.datanode_rewrite[\"dn1:1\"]",
               "must be a string");
    EXPECT_ERR(mk(NULL, ",\"datanode_rewrite\":[]", NULL, NULL, NULL), "gen1.datanode_rewrite", "must be an object");
}

TEST(path_style_default_follows_the_host)
{
    static const struct {
        const char *endpoint;
        bool want;
    } cases[] = {
        {"http://127.0.0.1:10004", true},        {"http://localhost:10004", true},
        {"http://[::1]:10004", true},             {"https://acct.dfs.core.windows.net", false},
        {"http://emulator.internal:10004", false}, {"http://10.1.2.3", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char j[1024];
        snprintf(j, sizeof j,
                 "{\"gen1\":{\"endpoint\":\"http://127.0.0.1:1\"},\"gen2\":{\"endpoint\":\"%s\",\"account\":\"acct\","
                 "\"auth\":{\"account_key\":\"" DEVKEY "\"},\"mappings\":" MAP1 "}}",
                 cases[i].endpoint);
        dp_config c;
        must_load(j, &c);
        if (c.gen2_path_style != cases[i].want) TH_FAIL_AT("%s: path_style %d", cases[i].endpoint, c.gen2_path_style);
        char *x = explain(&c);
        ASSERT_TRUE(strstr(x, cases[i].want ? "gen2.path_style = true (default: the endpoint host is an IP"
                                            : "gen2.path_style = false (default: the endpoint host is a name)"));
        free(x);
        cfg_free(&c);
    }
    dp_config c;
    must_load(mk(NULL, NULL, ",\"path_style\":false", NULL, NULL), &c);
    ASSERT_TRUE(!c.gen2_path_style);
    char *x = explain(&c);
    ASSERT_TRUE(strstr(x, "gen2.path_style = false\n") != NULL);
    free(x);
    cfg_free(&c);
}

TEST(auth_modes)
{
    dp_config c;
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"shared_key\"}", NULL), "gen2.auth.account_key",
               "required with gen2.auth.mode shared_key (give account_key, account_key_env or account_key_file)");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key\":\"" DEVKEY "\",\"account_key_env\":\"HOME\"}", NULL),
               "gen2.auth.account_key_env", "give only one of account_key, account_key_env and account_key_file");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key\":\"not base64!\"}", NULL), "gen2.auth.account_key",
               "not valid base64 (secret from inline)");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key\":\"\"}", NULL), "gen2.auth.account_key", "must not be empty");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key\":7}", NULL), "gen2.auth.account_key", "must be a string");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"sas\"}", NULL), "gen2.auth.sas", "required with gen2.auth.mode sas");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"sas\",\"sas\":\"sv=2021-06-08&sp=rw\"}", NULL), "gen2.auth.sas",
               "no sig= parameter");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"sas\",\"sas\":\"sv=1&sig=x\",\"account_key\":\"" DEVKEY "\"}", NULL),
               "gen2.auth.account_key", "not used with gen2.auth.mode sas; remove it");
    must_load(mk(NULL, NULL, NULL, "{\"mode\":\"sas\",\"sas\":\"?sv=2021-06-08&sp=rwdl&sig=abc%2B\"}", NULL), &c);
    ASSERT_EQ_INT(c.gen2_auth, CFG_AUTH_SAS);
    ASSERT_EQ_STR(c.gen2_sas.value, "sv=2021-06-08&sp=rwdl&sig=abc%2B");
    ASSERT_TRUE(c.gen2_account_key.value == NULL);
    cfg_free(&c);

    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"client_credentials\",\"client_id\":\"c\",\"client_secret\":\"s\"}",
                  NULL),
               "gen2.auth.tenant_id", "required with gen2.auth.mode client_credentials");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"client_credentials\",\"tenant_id\":\"t\",\"client_secret\":\"s\"}",
                  NULL),
               "gen2.auth.client_id", "required with gen2.auth.mode client_credentials");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"client_credentials\",\"tenant_id\":\"t\",\"client_id\":\"c\"}", NULL),
               "gen2.auth.client_secret", "required with gen2.auth.mode client_credentials");
    must_load(mk(NULL, NULL, NULL,
                 "{\"mode\":\"client_credentials\",\"tenant_id\":\"t1\",\"client_id\":\"c1\",\"client_secret\":\"s1\","
                 "\"authority\":\"http://127.0.0.1:10004\"}",
                 NULL),
              &c);
    ASSERT_EQ_INT(c.gen2_auth, CFG_AUTH_CLIENT_CREDENTIALS);
    ASSERT_EQ_STR(c.oauth_tenant, "t1");
    ASSERT_EQ_STR(c.oauth_client_id, "c1");
    ASSERT_EQ_STR(c.oauth_client_secret.value, "s1");
    ASSERT_EQ_STR(c.oauth_authority, "http://127.0.0.1:10004");
    cfg_free(&c);
    ASSERT_TRUE(c.oauth_client_secret.value == NULL);

    must_load(mk(NULL, NULL, NULL, "{\"mode\":\"managed_identity\"}", NULL), &c);
    ASSERT_EQ_INT(c.gen2_auth, CFG_AUTH_MANAGED_IDENTITY);
    cfg_free(&c);
    must_load(mk(NULL, NULL, NULL, "{\"mode\":\"managed_identity\",\"client_id\":\"uami\"}", NULL), &c);
    ASSERT_EQ_STR(c.oauth_client_id, "uami");
    cfg_free(&c);
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"mode\":\"managed_identity\",\"client_secret\":\"s\"}", NULL),
               "gen2.auth.client_secret", "not used with gen2.auth.mode managed_identity");
}

TEST(secret_from_env)
{
    setenv("DP_TEST_KEY", MARKKEY, 1);
    dp_config c;
    must_load(mk(NULL, NULL, NULL, "{\"account_key_env\":\"DP_TEST_KEY\"}", NULL), &c);
    ASSERT_EQ_STR(c.gen2_account_key.value, MARKKEY);
    ASSERT_EQ_STR(c.gen2_account_key.source, "env DP_TEST_KEY");
    char *x = explain(&c);
    ASSERT_TRUE(strstr(x, "gen2.auth.account_key = (secret, env DP_TEST_KEY)\n") != NULL);
    ASSERT_TRUE(strstr(x, MARKKEY) == NULL);
    free(x);
    cfg_free(&c);

    unsetenv("DP_TEST_UNSET");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key_env\":\"DP_TEST_UNSET\"}", NULL), "gen2.auth.account_key_env",
               "environment variable DP_TEST_UNSET is not set");
    setenv("DP_TEST_EMPTY", "", 1);
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key_env\":\"DP_TEST_EMPTY\"}", NULL), "gen2.auth.account_key_env",
               "environment variable DP_TEST_EMPTY is empty");
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key_env\":\"1BAD-NAME\"}", NULL), "gen2.auth.account_key_env",
               "must be an environment variable name");
    setenv("DP_TEST_SECRET", "client-secret-value", 1);
    must_load(mk(NULL, NULL, NULL,
                 "{\"mode\":\"client_credentials\",\"tenant_id\":\"t\",\"client_id\":\"c\","
                 "\"client_secret_env\":\"DP_TEST_SECRET\"}",
                 NULL),
              &c);
    ASSERT_EQ_STR(c.oauth_client_secret.value, "client-secret-value");
    cfg_free(&c);
}

TEST(secret_from_file)
{
    char *d = tmpdir();
    char f[256], j[1024];
    snprintf(f, sizeof f, "%s/key", d);
    write_file(f, MARKKEY "\nsecond line ignored\n");
    snprintf(j, sizeof j, "{\"account_key_file\":\"%s\"}", f);
    dp_config c;
    must_load(mk(NULL, NULL, NULL, j, NULL), &c);
    ASSERT_EQ_STR(c.gen2_account_key.value, MARKKEY);
    char want[320];
    snprintf(want, sizeof want, "gen2.auth.account_key = (secret, file %s)\n", f);
    char *x = explain(&c);
    ASSERT_TRUE(strstr(x, want) != NULL);
    ASSERT_TRUE(strstr(x, MARKKEY) == NULL);
    free(x);
    cfg_free(&c);

    write_file(f, MARKKEY "\r\n"); /* CRLF and no newline at all both work */
    must_load(mk(NULL, NULL, NULL, j, NULL), &c);
    ASSERT_EQ_STR(c.gen2_account_key.value, MARKKEY);
    cfg_free(&c);
    write_file(f, MARKKEY);
    must_load(mk(NULL, NULL, NULL, j, NULL), &c);
    ASSERT_EQ_STR(c.gen2_account_key.value, MARKKEY);
    cfg_free(&c);

    char msg[512];
    write_file(f, "\n" MARKKEY "\n");
    snprintf(msg, sizeof msg, "the first line of %s is empty", f);
    EXPECT_ERR(mk(NULL, NULL, NULL, j, NULL), "gen2.auth.account_key_file", msg);
    ASSERT_EQ_INT(unlink(f), 0);
    snprintf(msg, sizeof msg, "cannot read %s: No such file or directory", f);
    EXPECT_ERR(mk(NULL, NULL, NULL, j, NULL), "gen2.auth.account_key_file", msg);
    snprintf(j, sizeof j, "{\"account_key_file\":\"%s\"}", d);
    snprintf(msg, sizeof msg, "%s is not a regular file", d);
    EXPECT_ERR(mk(NULL, NULL, NULL, j, NULL), "gen2.auth.account_key_file", msg);
    EXPECT_ERR(mk(NULL, NULL, NULL, "{\"account_key_file\":\"/dev/zero\"}", NULL), "gen2.auth.account_key_file",
               "/dev/zero is not a regular file");
    ASSERT_EQ_INT(rmdir(d), 0);
}

/* Whatever goes wrong, the secret's value is in no message and never in the explanation. */
TEST(secret_never_leaks)
{
    static const char *const broken[] = {
        /* syntax errors right at or after the inline secret: jansson would quote the token */
        "{\"gen2\":{\"auth\":{\"account_key\":\"" MARKKEY,
        "{\"gen2\":{\"auth\":{\"account_key\":\"" MARKKEY "\" \"x\"",
        "{\"gen2\":{\"auth\":{\"account_key\":" MARKKEY "}}}",
        "{\"gen2\":{\"auth\":{\"account_key\":\"" MARKKEY "\\q\"}}}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        dp_config c;
        cfg_err e;
        ASSERT_EQ_INT(load(broken[i], &c, &e), -1);
        ASSERT_EQ_STR(e.path, "");
        ASSERT_TRUE(strncmp(e.message, "line 1, column ", 15) == 0);
        if (strstr(e.message, "SECRET") || strstr(e.message, MARKKEY)) TH_FAIL_AT("leak: %s", e.message);
    }
    setenv("DP_TEST_MARK", MARKKEY, 1);
    static const char *const auths[] = {
        "{\"mode\":\"sas\",\"account_key\":\"" MARKKEY "\",\"sas\":\"sig=1\"}",
        "{\"mode\":\"sas\",\"sas\":\"" MARKKEY "\"}",
        "{\"mode\":\"sas\",\"sas_env\":\"DP_TEST_MARK\"}",
        "{\"account_key\":\"" MARKKEY "\",\"account_key_env\":\"DP_TEST_MARK\"}",
        "{\"account_key\":\"" MARKKEY "\",\"mode\":\"nope\"}",
        "{\"account_key\":\"" MARKKEY "\",\"bogus\":1}",
        "{\"account_key\":\"" MARKKEY "!\"}",
        "{\"account_key\":[\"" MARKKEY "\"]}",
        "{\"account_key\":\"" MARKKEY "\",\"account_key\":\"x\"}",
        "\"" MARKKEY "\"",
    };
    for (size_t i = 0; i < sizeof auths / sizeof auths[0]; i++) {
        dp_config c;
        cfg_err e;
        ASSERT_EQ_INT(load(mk(NULL, NULL, NULL, auths[i], NULL), &c, &e), -1);
        if (strstr(e.message, "SECRET") || strstr(e.message, MARKKEY) || strstr(e.path, MARKKEY))
            TH_FAIL_AT("leak: %s: %s", e.path, e.message);
    }
    dp_config c;
    must_load(mk(NULL, NULL, NULL, "{\"account_key\":\"" MARKKEY "\"}", NULL), &c);
    char *x = explain(&c);
    ASSERT_TRUE(strstr(x, "gen2.auth.account_key = (secret, inline)\n") != NULL);
    ASSERT_TRUE(strstr(x, "gen2.auth.sas = (not set)\n") != NULL);
    ASSERT_TRUE(strstr(x, MARKKEY) == NULL);
    free(x);
    cfg_free(&c);
}

TEST(syntax_errors_give_line_and_column)
{
    dp_config c;
    cfg_err e;
    const char *j = "{\n  \"listen\": \"127.0.0.1:1\",\n  \"admin\": {\"listen\" \"x\"}\n}\n";
    ASSERT_EQ_INT(load(j, &c, &e), -1);
    ASSERT_EQ_STR(e.path, "");
    if (!strstr(e.message, "line 3, column ")) TH_FAIL_AT("message: %s", e.message);
    ASSERT_EQ_INT(load("", &c, &e), -1);
    ASSERT_TRUE(strstr(e.message, "line ") != NULL);
    ASSERT_EQ_INT(cfg_load_text("{\"a\":\"\\u0000\"}", 14, &c, &e), -1);
    ASSERT_EQ_STR(e.path, "");
}

TEST(explain_lists_every_key_and_marks_defaults)
{
    dp_config c;
    must_load(mk("\"listen\":\"127.0.0.1:14000\",\"limits\":{\"threads\":4},", NULL, NULL,
                 "{\"account_key\":\"" DEVKEY "\"}", NULL),
              &c);
    char *x = explain(&c);
    static const char *const want[] = {
        "listen = 127.0.0.1:14000\n", /* set in the file, even though it equals the default */
        "public_url = \"\" (default)\n",
        "limits.max_connections = 1024 (default)\n",
        "limits.max_connections_per_client = 0 (default)\n",
        "limits.max_header_bytes = 32768 (default)\n",
        "limits.max_body_bytes = 16777216 (16 MiB) (default)\n",
        "limits.stream_buffer_bytes = 1048576 (1 MiB) (default)\n",
        "limits.stream_memory_bytes = 4194304 (4 MiB) (default)\n",
        "limits.idle_timeout_s = 60 (default)\n",
        "limits.request_timeout_s = 300 (default)\n",
        "limits.threads = 4\n",
        "admin.listen = 127.0.0.1:14080 (default)\n",
        "phase.initial = gen1-primary (default)\n",
        "phase.fleet = false (default)\n",
        "phase.fleet_filesystem = \"\" (default: the filesystem of gen2.mappings[0])\n",
        "phase.fleet_dir = \".dualpipe\" (default)\n",
        "phase.member_id = \"\" (default)\n",
        "phase.switch_timeout_ms = 30000 (default)\n",
        "phase.poll_ms = 250 (default)\n",
        "phase.heartbeat_ms = 10000 (default)\n",
        "spool.dir = \"/tmp/dp-spool\"\n",
        "spool.max_bytes = 8589934592 (8 GiB) (default)\n",
        "spool.policy = degrade (default)\n",
        "spool.segment_bytes = 67108864 (64 MiB) (default)\n",
        "journal.dir = \"/tmp/dp-spool/journal\" (default: <spool.dir>/journal)\n",
        "journal.io = auto (default)\n",
        "journal.segment_bytes = 67108864 (64 MiB) (default)\n",
        "journal.lazy_commit_ms = 100 (default)\n",
        "journal.verify_bodies = true (default)\n",
        "ack = durable (default)\n",
        "applier.concurrency = 64 (default)\n",
        "applier.backoff_base_ms = 500 (default)\n",
        "applier.backoff_cap_ms = 30000 (default)\n",
        "applier.breaker_failures = 5 (default)\n",
        "applier.breaker_probe_ms = 500 (default)\n",
        "applier.resync_attempts = 3 (default)\n",
        "log.level = info (default)\n",
        "gen1.endpoint = \"http://127.0.0.1:14001\"\n",
        "gen1.dialect = adls (default)\n",
        "gen1.datanode_rewrite = {} (default)\n",
        "gen1.connect_timeout_ms = 5000 (default)\n",
        "gen1.timeout_ms = 60000 (default)\n",
        "gen1.settle_ms = 10000 (default)\n",
        "gen2.endpoint = \"http://127.0.0.1:10004\"\n",
        "gen2.path_style = true (default: the endpoint host is an IP address or localhost)\n",
        "gen2.account = \"devstoreaccount1\"\n",
        "gen2.version = \"2021-06-08\" (default)\n",
        "gen2.connect_timeout_ms = 5000 (default)\n",
        "gen2.timeout_ms = 60000 (default)\n",
        "gen2.unmapped = skip (default)\n",
        "gen2.mappings[0].gen1_prefix = \"/\"\n",
        "gen2.mappings[0].filesystem = \"lake\"\n",
        "gen2.mappings[0].prefix = \"\"\n",
        "gen2.auth.mode = shared_key (default)\n",
        "gen2.auth.account_key = (secret, inline)\n",
        "gen2.auth.sas = (not set)\n",
        "gen2.auth.tenant_id = \"\" (default)\n",
        "gen2.auth.client_id = \"\" (default)\n",
        "gen2.auth.client_secret = (not set)\n",
        "gen2.auth.authority = \"https://login.microsoftonline.com\" (default)\n",
        "gen2.auth.resource = \"https://storage.azure.com/\" (default)\n",
        "gen2.auth.imds_endpoint = \"http://169.254.169.254/metadata/identity/oauth2/token\" (default)\n",
        "gen2.auth.refresh_margin_s = 300 (default)\n",
    };
    const char *at = x;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *hit = strstr(at, want[i]);
        if (!hit) TH_FAIL_AT("explain lacks (in order) %s--- explain:\n%s", want[i], x);
        at = hit + strlen(want[i]);
    }
    ASSERT_TRUE(strstr(x, DEVKEY) == NULL);
    free(x);
    /* a too small buffer is reported, not overrun */
    dbuf b;
    dbuf_init(&b, 100);
    ASSERT_EQ_INT(cfg_explain(&c, &b), -E2BIG);
    dbuf_free(&b);
    cfg_free(&c);
}

TEST(relative_paths_follow_the_config_file)
{
    char *d = tmpdir();
    char sub[128], f[256], key[256], j[1024];
    snprintf(sub, sizeof sub, "%s/etc", d);
    ASSERT_EQ_INT(mkdir(sub, 0700), 0);
    snprintf(key, sizeof key, "%s/etc/key", d);
    write_file(key, DEVKEY "\n");
    snprintf(f, sizeof f, "%s/etc/dp.json", d);
    snprintf(j, sizeof j,
             "{\"spool\":{\"dir\":\"../var/spool\"},\"gen1\":{\"endpoint\":\"http://127.0.0.1:1\"},"
             "\"gen2\":{\"endpoint\":\"http://127.0.0.1:2\",\"account\":\"acct\","
             "\"auth\":{\"account_key_file\":\"./key\"},\"mappings\":" MAP1 "}}");
    write_file(f, j);
    dp_config c;
    cfg_err e;
    if (cfg_load_file(f, &c, &e) != 0) TH_FAIL_AT("%s: %s", e.path, e.message);
    char want[300];
    snprintf(want, sizeof want, "%s/var/spool", d);
    ASSERT_EQ_STR(c.spool_dir, want);
    snprintf(want, sizeof want, "%s/var/spool/journal", d);
    ASSERT_EQ_STR(c.journal_dir, want);
    ASSERT_EQ_STR(c.gen2_account_key.value, DEVKEY);
    snprintf(want, sizeof want, "file %s/etc/key", d);
    ASSERT_EQ_STR(c.gen2_account_key.source, want);
    cfg_free(&c);

    /* from the file's own directory, given as a bare name */
    ASSERT_EQ_INT(chdir(sub), 0);
    if (cfg_load_file("dp.json", &c, &e) != 0) TH_FAIL_AT("%s: %s", e.path, e.message);
    snprintf(want, sizeof want, "%s/var/spool", d);
    ASSERT_EQ_STR(c.spool_dir, want);
    cfg_free(&c);

    /* journal.dir, when given, is relative to the file as well */
    snprintf(j, sizeof j,
             "{\"spool\":{\"dir\":\"../var/spool\"},\"journal\":{\"dir\":\"../var/jrnl\"},"
             "\"gen1\":{\"endpoint\":\"http://127.0.0.1:1\"},"
             "\"gen2\":{\"endpoint\":\"http://127.0.0.1:2\",\"account\":\"acct\","
             "\"auth\":{\"account_key_file\":\"./key\"},\"mappings\":" MAP1 "}}");
    write_file(f, j);
    if (cfg_load_file(f, &c, &e) != 0) TH_FAIL_AT("%s: %s", e.path, e.message);
    snprintf(want, sizeof want, "%s/var/jrnl", d);
    ASSERT_EQ_STR(c.journal_dir, want);
    cfg_free(&c);

    /* file errors */
    ASSERT_EQ_INT(cfg_load_file("/nonexistent/dp.json", &c, &e), -1);
    ASSERT_EQ_STR(e.path, "");
    ASSERT_TRUE(strstr(e.message, "cannot open") != NULL);
    write_file(f, "{\"gen1\": {\"endpoint\": \"http://h:1\"},\n \"gen2\": {\"auth\": {\"mode\": 1}}}");
    ASSERT_EQ_INT(cfg_load_file(f, &c, &e), -1);
    ASSERT_EQ_STR(e.path, "gen2.auth.mode");
    unlink(f);
    unlink(key);
    rmdir(sub);
    rmdir(d);
}

#ifndef DP_SOURCE_DIR
#error "DP_SOURCE_DIR must name the source tree (tests/unit/CMakeLists.txt)"
#endif

TEST(local_json_loads)
{
    dp_config c;
    cfg_err e;
    unsetenv("DUALPIPE_GEN2_ACCOUNT_KEY");
    if (cfg_load_file(DP_SOURCE_DIR "/config/local.json", &c, &e) != 0)
        TH_FAIL_AT("config/local.json: %s: %s", e.path, e.message);
    ASSERT_EQ_STR(c.listen.host, "127.0.0.1");
    ASSERT_EQ_INT(c.listen.port, 14000);
    ASSERT_EQ_INT(c.admin_listen.port, 14080);
    ASSERT_EQ_STR(c.gen1_endpoint, "http://127.0.0.1:14001");
    ASSERT_EQ_INT(c.gen1_dialect, CFG_DIALECT_ADLS);
    ASSERT_EQ_STR(c.gen2_endpoint, "http://127.0.0.1:10004");
    ASSERT_TRUE(c.gen2_path_style);
    ASSERT_EQ_STR(c.gen2_account, "devstoreaccount1");
    ASSERT_EQ_INT(c.gen2_auth, CFG_AUTH_SHARED_KEY);
    ASSERT_EQ_STR(c.gen2_account_key.value, DEVKEY);
    ASSERT_EQ_STR(c.mappings[0].filesystem, "lake");
    char real[PATH_MAX];
    ASSERT_TRUE(realpath(DP_SOURCE_DIR, real) != NULL);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/build/local-stack/spool", real);
    ASSERT_EQ_STR(c.spool_dir, want);
    cfg_free(&c);
}

/* Remove " (default)" and " (default: ...)" from an explanation, in place. */
static void strip_default_marks(char *x)
{
    char *w = x;
    for (const char *r = x; *r;) {
        if (strncmp(r, " (default", 9) == 0) {
            r = strchr(r, '\n');
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
}

TEST(example_json_loads)
{
    dp_config c;
    cfg_err e;
    setenv("DUALPIPE_GEN2_ACCOUNT_KEY", DEVKEY, 1);
    if (cfg_load_file(DP_SOURCE_DIR "/config/dualpipe.example.json", &c, &e) != 0)
        TH_FAIL_AT("config/dualpipe.example.json: %s: %s", e.path, e.message);
    ASSERT_EQ_STR(c.gen2_account_key.source, "env DUALPIPE_GEN2_ACCOUNT_KEY");
    /* The example sets every key (nothing is marked "(default)"), and to its default: its explanation
     * equals that of a config with only the required keys, once the markers are removed. */
    char *x = explain(&c);
    if (strstr(strchr(x, '\n'), "(default")) TH_FAIL_AT("the example does not set every key:\n%s", x);
    cfg_free(&c);
    must_load("{\"spool\":{\"dir\":\"/var/lib/dualpipe/spool\"},"
              "\"gen1\":{\"endpoint\":\"https://youraccount.azuredatalakestore.net\"},"
              "\"gen2\":{\"endpoint\":\"https://youraccount.dfs.core.windows.net\",\"account\":\"youraccount\","
              "\"auth\":{\"account_key_env\":\"DUALPIPE_GEN2_ACCOUNT_KEY\"},\"mappings\":" MAP1 "}}",
              &c);
    char *y = explain(&c);
    strip_default_marks(y);
    ASSERT_EQ_STR(x, y);
    free(x);
    free(y);
    cfg_free(&c);
    unsetenv("DUALPIPE_GEN2_ACCOUNT_KEY");
    ASSERT_EQ_INT(cfg_load_file(DP_SOURCE_DIR "/config/dualpipe.example.json", &c, &e), -1);
    ASSERT_EQ_STR(e.path, "gen2.auth.account_key_env");
    ASSERT_EQ_STR(e.message, "environment variable DUALPIPE_GEN2_ACCOUNT_KEY is not set");
}

/* cfg_diff (SIGHUP): every changed key and only those, secrets by value and source, never a value. */
static void diff_collect(void *ud, const char *key)
{
    dbuf *b = ud;
    ASSERT_EQ_INT(dbuf_printf(b, "%s;", key), 0);
}

static char *diff(const char *ja, const char *jb)
{
    dp_config a, b;
    must_load(ja, &a);
    char copy[sizeof jbuf];
    snprintf(copy, sizeof copy, "%s", jb);
    must_load(copy, &b);
    dbuf out;
    dbuf_init(&out, 4096);
    ASSERT_EQ_INT(dbuf_adds(&out, ""), 0);
    cfg_diff(&a, &b, diff_collect, &out);
    cfg_free(&a);
    cfg_free(&b);
    return dbuf_take(&out);
}

TEST(diff_names_changed_keys)
{
    char base[sizeof jbuf];
    snprintf(base, sizeof base, "%s", mk(NULL, NULL, NULL, NULL, NULL));
    char *d = diff(base, base);
    ASSERT_EQ_STR(d, "");
    free(d);
    d = diff(base, mk("\"limits\":{\"max_body_bytes\":\"1 MiB\"},\"log\":{\"level\":\"debug\"},"
                      "\"shutdown\":{\"drain_ms\":100},",
                      NULL, NULL, NULL, NULL));
    ASSERT_EQ_STR(d, "limits.max_body_bytes;log.level;shutdown.drain_ms;");
    free(d);
    /* The same key value given another way (a file) is a change of source; another value is a change. */
    d = diff(base, mk(NULL, NULL, NULL, "{\"mode\":\"shared_key\",\"account_key\":\"" MARKKEY "\"}", NULL));
    ASSERT_EQ_STR(d, "gen2.auth.account_key;");
    free(d);
    d = diff(base, mk("\"listen\":\"127.0.0.1:1\",", NULL, NULL, NULL,
                      "[{\"gen1_prefix\":\"/\",\"filesystem\":\"other\",\"prefix\":\"\"}]"));
    ASSERT_EQ_STR(d, "listen;gen2.mappings;");
    free(d);
    d = diff(base, mk(NULL, ",\"datanode_rewrite\":{\"a:1\":\"b:2\"}", NULL, NULL, NULL));
    ASSERT_EQ_STR(d, "gen1.datanode_rewrite;");
    free(d);
}

TEST(drain_key)
{
    dp_config c;
    must_load(mk(NULL, NULL, NULL, NULL, NULL), &c);
    ASSERT_EQ_INT(c.shutdown_drain_ms, 5000);
    char *x = explain(&c);
    ASSERT_TRUE(strstr(x, "shutdown.drain_ms = 5000 (default)\n") != NULL);
    free(x);
    cfg_free(&c);
    must_load(mk("\"shutdown\":{\"drain_ms\":0},", NULL, NULL, NULL, NULL), &c);
    ASSERT_EQ_INT(c.shutdown_drain_ms, 0);
    cfg_free(&c);
    EXPECT_ERR(mk("\"shutdown\":{\"drain_ms\":600001},", NULL, NULL, NULL, NULL), "shutdown.drain_ms",
               "must be from 0 to 600000");
    EXPECT_ERR(mk("\"shutdown\":{\"drain\":1},", NULL, NULL, NULL, NULL), "shutdown.drain", "unknown key");
}

/* tls.*, gen1.tls.*, gen2.tls.*: defaults (plain HTTP front, verification on), values, and the pairs that
 * go together, each error naming the key at fault. */
TEST(tls_keys)
{
    dp_config c;
    must_load(mk(NULL, NULL, NULL, NULL, NULL), &c);
    ASSERT_EQ_STR(c.tls_cert_file, "");
    ASSERT_EQ_STR(c.tls_key_file, "");
    ASSERT_EQ_STR(c.tls_client_ca_file, "");
    ASSERT_TRUE(!c.gen1_tls.insecure_skip_verify && !c.gen2_tls.insecure_skip_verify);
    ASSERT_EQ_STR(c.gen1_tls.ca_file, "");
    cfg_free(&c);
    must_load(mk("\"tls\":{\"cert_file\":\"/etc/dp/p.pem\",\"key_file\":\"/etc/dp/p.key\",\"client_ca_file\":\"/etc/dp/ca.pem\"},",
                 ",\"tls\":{\"ca_file\":\"/etc/dp/g1ca.pem\",\"ca_path\":\"/etc/dp/cas\",\"cert_file\":\"/etc/dp/c.pem\","
                 "\"key_file\":\"/etc/dp/c.key\",\"insecure_skip_verify\":true}",
                 ",\"tls\":{\"ca_file\":\"/etc/dp/g2ca.pem\"}", NULL, NULL),
              &c);
    ASSERT_EQ_STR(c.tls_cert_file, "/etc/dp/p.pem");
    ASSERT_EQ_STR(c.tls_client_ca_file, "/etc/dp/ca.pem");
    ASSERT_EQ_STR(c.gen1_tls.ca_path, "/etc/dp/cas");
    ASSERT_EQ_STR(c.gen1_tls.key_file, "/etc/dp/c.key");
    ASSERT_TRUE(c.gen1_tls.insecure_skip_verify);
    ASSERT_EQ_STR(c.gen2_tls.ca_file, "/etc/dp/g2ca.pem");
    ASSERT_TRUE(!c.gen2_tls.insecure_skip_verify);
    cfg_free(&c);
    EXPECT_ERR(mk("\"tls\":{\"cert_file\":\"/etc/dp/p.pem\"},", NULL, NULL, NULL, NULL), "tls.key_file", "go together");
    EXPECT_ERR(mk("\"tls\":{\"key_file\":\"/etc/dp/p.key\"},", NULL, NULL, NULL, NULL), "tls.cert_file", "go together");
    EXPECT_ERR(mk("\"tls\":{\"client_ca_file\":\"/etc/dp/ca.pem\"},", NULL, NULL, NULL, NULL), "tls.client_ca_file",
               "needs an HTTPS front");
    EXPECT_ERR(mk(NULL, ",\"tls\":{\"cert_file\":\"/etc/dp/c.pem\"}", NULL, NULL, NULL), "gen1.tls.key_file", "go together");
    EXPECT_ERR(mk(NULL, NULL, ",\"tls\":{\"cert_file\":\"/etc/dp/c.pem\"}", NULL, NULL), "gen2.tls.cert_file", "unknown key");
    EXPECT_ERR(mk(NULL, NULL, ",\"tls\":{\"insecure_skip_verify\":\"yes\"}", NULL, NULL), "gen2.tls.insecure_skip_verify",
               "");
}

/* "phase": a string (the phase a proxy starts in) or an object of phase.* keys, each checked, each error
 * naming its key; the string form is {"initial": STRING} with the other keys at their defaults. */
TEST(phase_string_or_object)
{
    dp_config c;
    must_load(mk("\"phase\":\"gen2-primary\",", NULL, NULL, NULL, NULL), &c);
    ASSERT_EQ_INT(c.phase, CFG_PHASE_GEN2_PRIMARY);
    ASSERT_TRUE(!c.phase_fleet);
    ASSERT_EQ_STR(c.phase_fleet_fs, "");
    ASSERT_EQ_STR(c.phase_fleet_dir, ".dualpipe");
    ASSERT_EQ_STR(c.phase_member_id, "");
    ASSERT_EQ_INT(c.phase_switch_timeout_ms, 30000);
    ASSERT_EQ_INT(c.phase_poll_ms, 250);
    ASSERT_EQ_INT(c.phase_heartbeat_ms, 10000);
    char *x = explain(&c);
    ASSERT_TRUE(strstr(x, "\nphase.initial = gen2-primary\n") != NULL);
    ASSERT_TRUE(strstr(x, "\nphase.fleet = false (default)\n") != NULL);
    free(x);
    cfg_free(&c);

    /* the object form, every key */
    must_load(mk("\"phase\":{\"initial\":\"gen2-only\",\"fleet\":true,\"fleet_filesystem\":\"ops\","
                 "\"fleet_dir\":\".dualpipe/fleet-a\",\"member_id\":\"pod-7.ns_a\",\"switch_timeout_ms\":5000,"
                 "\"poll_ms\":100,\"heartbeat_ms\":2000,\"//\":\"a comment\"},",
                 NULL, NULL, NULL, NULL),
              &c);
    ASSERT_EQ_INT(c.phase, CFG_PHASE_GEN2_ONLY);
    ASSERT_TRUE(c.phase_fleet);
    ASSERT_EQ_STR(c.phase_fleet_fs, "ops");
    ASSERT_EQ_STR(c.phase_fleet_dir, ".dualpipe/fleet-a");
    ASSERT_EQ_STR(c.phase_member_id, "pod-7.ns_a");
    ASSERT_EQ_INT(c.phase_switch_timeout_ms, 5000);
    ASSERT_EQ_INT(c.phase_poll_ms, 100);
    ASSERT_EQ_INT(c.phase_heartbeat_ms, 2000);
    x = explain(&c);
    ASSERT_TRUE(strstr(x, "\nphase.fleet_filesystem = \"ops\"\nphase.fleet_dir = \".dualpipe/fleet-a\"\n"
                          "phase.member_id = \"pod-7.ns_a\"\nphase.switch_timeout_ms = 5000\n") != NULL);
    free(x);
    cfg_free(&c);

    /* an object without initial starts in gen1-primary; a fleet without a filesystem uses the first mapping's */
    must_load(mk("\"phase\":{\"fleet\":true},", NULL, NULL, NULL,
                 "[{\"gen1_prefix\":\"/a\",\"filesystem\":\"first\"},{\"gen1_prefix\":\"/\",\"filesystem\":\"lake\"}]"),
              &c);
    ASSERT_EQ_INT(c.phase, CFG_PHASE_GEN1_PRIMARY);
    ASSERT_EQ_STR(c.phase_fleet_fs, "first");
    x = explain(&c);
    ASSERT_TRUE(strstr(x, "\nphase.fleet_filesystem = \"first\" (default: the filesystem of gen2.mappings[0])\n"));
    free(x);
    cfg_free(&c);

    /* SIGHUP names each phase key that changed (none is live: they need a restart) */
    char base[sizeof jbuf];
    snprintf(base, sizeof base, "%s", mk("\"phase\":\"gen1-primary\",", NULL, NULL, NULL, NULL));
    char *d = diff(base, mk("\"phase\":{\"initial\":\"gen1-primary\",\"poll_ms\":500},", NULL, NULL, NULL, NULL));
    ASSERT_EQ_STR(d, "phase.poll_ms;");
    free(d);
    d = diff(base, mk("\"phase\":{\"initial\":\"gen2-primary\",\"fleet\":true},", NULL, NULL, NULL, NULL));
    ASSERT_EQ_STR(d, "phase.initial;phase.fleet;phase.fleet_filesystem;");
    free(d);

    /* each bad value names its key */
#define PH(obj) mk("\"phase\":" obj ",", NULL, NULL, NULL, NULL)
    EXPECT_ERR(PH("3"), "phase", "must be a string (the same as phase.initial) or an object");
    EXPECT_ERR(PH("[\"gen2-only\"]"), "phase", "or an object");
    EXPECT_ERR(PH("\"gen3\""), "phase", "must be one of gen1-primary, gen2-primary, gen2-only");
    EXPECT_ERR(PH("{\"initial\":\"gen3\"}"), "phase.initial", "must be one of gen1-primary, gen2-primary");
    EXPECT_ERR(PH("{\"initial\":1}"), "phase.initial", "must be a string, one of gen1-primary");
    EXPECT_ERR(PH("{\"inital\":\"gen2-only\"}"), "phase.inital", "unknown key (did you mean initial?)");
    EXPECT_ERR(PH("{\"fleet\":\"yes\"}"), "phase.fleet", "must be true or false");
    EXPECT_ERR(PH("{\"fleet\":true,\"fleet_filesystem\":\"Bad_FS\"}"), "phase.fleet_filesystem", "");
    EXPECT_ERR(PH("{\"fleet\":true,\"fleet_filesystem\":7}"), "phase.fleet_filesystem", "must be a string");
    EXPECT_ERR(PH("{\"fleet_filesystem\":\"ops\"}"), "phase.fleet_filesystem", "only used with phase.fleet true");
    EXPECT_ERR(PH("{\"fleet_dir\":\".dualpipe/other\"}"), "phase.fleet_dir", "only used with phase.fleet true");
    EXPECT_ERR(PH("{\"fleet\":true,\"fleet_dir\":\"other\"}"), "phase.fleet_dir", "must be .dualpipe or a directory under it");
    static const char *const bad_dirs[] = {"\"\"", "\"/abs\"", "\"a/\"", "\"a//b\"", "\"a/../b\"", "\"./a\"",
                                           "\"a b\"", "\"a%2fb\"", "\"a\\\\b\"", "1"};
    char top[400];
    for (size_t i = 0; i < sizeof bad_dirs / sizeof bad_dirs[0]; i++) {
        snprintf(top, sizeof top, "\"phase\":{\"fleet\":true,\"fleet_dir\":%s},", bad_dirs[i]);
        EXPECT_ERR(mk(top, NULL, NULL, NULL, NULL), "phase.fleet_dir", "");
    }
    char long_dir[260];
    memset(long_dir, 'd', 250);
    long_dir[250] = '\0';
    snprintf(top, sizeof top, "\"phase\":{\"fleet\":true,\"fleet_dir\":\"%s\"},", long_dir);
    EXPECT_ERR(mk(top, NULL, NULL, NULL, NULL), "phase.fleet_dir", "at most 199 bytes");
    static const char *const bad_ids[] = {"\"..\"", "\".\"", "\"a b\"", "\"a/b\"", "\"caf\\u00e9\"",
                                          "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "false"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        snprintf(top, sizeof top, "\"phase\":{\"member_id\":%s},", bad_ids[i]);
        EXPECT_ERR(mk(top, NULL, NULL, NULL, NULL), "phase.member_id", "");
    }
    EXPECT_ERR(PH("{\"switch_timeout_ms\":999}"), "phase.switch_timeout_ms", "must be from 1000 to 3600000");
    EXPECT_ERR(PH("{\"switch_timeout_ms\":3600001}"), "phase.switch_timeout_ms", "must be from 1000");
    EXPECT_ERR(PH("{\"switch_timeout_ms\":\"30s\"}"), "phase.switch_timeout_ms", "must be an integer");
    EXPECT_ERR(PH("{\"poll_ms\":9}"), "phase.poll_ms", "must be from 10 to 60000");
    EXPECT_ERR(PH("{\"poll_ms\":-1}"), "phase.poll_ms", "must be from 10 to 60000");
    EXPECT_ERR(PH("{\"heartbeat_ms\":99}"), "phase.heartbeat_ms", "must be from 100 to 3600000");
    EXPECT_ERR(PH("{\"poll_ms\":2000,\"heartbeat_ms\":1000}"), "phase.heartbeat_ms", "at least phase.poll_ms (2000)");
    EXPECT_ERR(PH("{\"poll_ms\":1000,\"switch_timeout_ms\":3999}"), "phase.switch_timeout_ms",
               "at least 4 times phase.poll_ms (1000)");
#undef PH
    /* the writer-trust rule of gen2-primary and gen2-only names the key the phase was given with */
    EXPECT_ERR(mk("\"phase\":{\"initial\":\"gen2-only\"},\"listen\":\"0.0.0.0:14000\",", NULL, NULL, NULL, NULL),
               "phase.initial", "proxy's own Gen2 identity");
    EXPECT_ERR(mk("\"phase\":\"gen2-primary\",\"listen\":\"0.0.0.0:14000\",", NULL, NULL, NULL, NULL), "phase",
               "proxy's own Gen2 identity");
    /* gen2-only given in the object form may leave Gen1 out too */
    must_load("{\"phase\":{\"initial\":\"gen2-only\"},\"spool\":{\"dir\":\"/tmp/dp-spool\"},"
              "\"gen2\":{\"endpoint\":\"http://127.0.0.1:10004\",\"account\":\"devstoreaccount1\","
              "\"auth\":" AUTH_SK ",\"mappings\":" MAP1 "}}",
              &c);
    ASSERT_EQ_STR(c.gen1_endpoint, "");
    cfg_free(&c);
}

TESTS(T(minimal_config_loads), T(every_default), T(explicit_values), T(unknown_keys_name_the_path_and_suggest),
      T(comment_keys_are_ignored_duplicates_refused), T(type_and_bound_errors), T(journal_spool_and_applier_keys), T(bad_enum_lists_the_choices),
      T(host_port_errors), T(endpoint_urls), T(gen2_only_without_gen1), T(required_keys), T(mapping_errors), T(datanode_rewrite),
      T(path_style_default_follows_the_host), T(auth_modes), T(secret_from_env), T(secret_from_file),
      T(secret_never_leaks), T(syntax_errors_give_line_and_column), T(explain_lists_every_key_and_marks_defaults),
      T(relative_paths_follow_the_config_file), T(local_json_loads), T(example_json_loads),
      T(diff_names_changed_keys), T(drain_key), T(tls_keys), T(phase_string_or_object))
