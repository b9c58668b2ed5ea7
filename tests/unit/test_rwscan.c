/*
 * test_rwscan: the URI and key rewriting core of `dualpipe rewrite` (proxy/rwscan.c). One URI at a
 * time: the longest mapping wins on whole segments, the Gen2 prefix is put in front of the rest,
 * percent-encoding, query and fragment are kept, a trailing '/' is kept or not as written, the
 * port is dropped; each reason a URI is left alone (other account, symbolic, home, no account,
 * unmapped, '..', encoded '/', run-time text that a deeper mapping could claim). On whole texts:
 * runtime concatenation and format strings, keys with and without spark.hadoop. and -D, the token
 * provider's value (in XML on the next line, in a JSON string), keys without a counterpart, table
 * metadata left alone, endpoints, JSON escapes untouched, and that applying the edits twice changes
 * nothing the second time.
 */
#include <errno.h>

#include "rwscan.h"
#include "tharness.h"

static dp_config *cfg_of(const char *json)
{
    dp_config *c = calloc(1, sizeof *c);
    cfg_err e;
    if (cfg_load_text(json, strlen(json), c, &e) != 0) TH_FAIL_AT("config: %s: %s", e.path, e.message);
    return c;
}

#define CFG_TEXT(mappings)                                                                                            \
    "{\"gen1\":{\"endpoint\":\"https://contosolake.azuredatalakestore.net\"},"                                        \
    "\"gen2\":{\"endpoint\":\"https://contosogen2.dfs.core.windows.net\",\"account\":\"contosogen2\","                \
    "\"auth\":{\"mode\":\"shared_key\",\"account_key\":\"AAAA\"},\"mappings\":[" mappings "]}}"

static const char *const MAPS =
    CFG_TEXT("{\"gen1_prefix\":\"/warehouse\",\"filesystem\":\"warehouse\",\"prefix\":\"\"},"
             "{\"gen1_prefix\":\"/landing\",\"filesystem\":\"raw\",\"prefix\":\"landing\"},"
             "{\"gen1_prefix\":\"/landing/partners\",\"filesystem\":\"partners\",\"prefix\":\"in/p q\"},"
             "{\"gen1_prefix\":\"/data sets\",\"filesystem\":\"sets\",\"prefix\":\"\"}");

static rws_opts opts(const dp_config *c)
{
    return (rws_opts){.cfg = c, .gen1_host = "contosolake.azuredatalakestore.net",
                      .gen2_host = "contosogen2.dfs.core.windows.net"};
}

/* Rewrite one URI: the result, or "!" + the reason's name. */
static char *one(const rws_opts *o, const char *uri, bool cont)
{
    char *out = NULL, *det = NULL;
    rws_why why;
    int rc = rws_uri(o, uri, strlen(uri), cont, &out, &why, &det);
    ASSERT_TRUE(rc >= 0);
    if (rc == 0) return out;
    free(det);
    char *s = NULL;
    ASSERT_TRUE(asprintf(&s, "!%s", rws_why_name(why)) > 0);
    return s;
}

#define EXPECT_URI(o, in, cont, want)                                                                                 \
    do {                                                                                                              \
        char *got_ = one(o, in, cont);                                                                                \
        ASSERT_EQ_STR(got_, want);                                                                                    \
        free(got_);                                                                                                   \
    } while (0)

TEST(uri_mappings)
{
    dp_config *c = cfg_of(MAPS);
    rws_opts o = opts(c);
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse/sales/orders", false,
               "abfss://warehouse@contosogen2.dfs.core.windows.net/sales/orders");
    /* the filesystem's root, with and without the trailing '/' as written */
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse", false,
               "abfss://warehouse@contosogen2.dfs.core.windows.net");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse/", false,
               "abfss://warehouse@contosogen2.dfs.core.windows.net/");
    /* a prefix inside the filesystem; the longest mapping wins; the prefix is percent-encoded */
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/landing/events/x.json", false,
               "abfss://raw@contosogen2.dfs.core.windows.net/landing/events/x.json");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/landing/partners/acme", false,
               "abfss://partners@contosogen2.dfs.core.windows.net/in/p%20q/acme");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/landing/partners", false,
               "abfss://partners@contosogen2.dfs.core.windows.net/in/p%20q");
    /* whole segments only */
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/landingzone/x", false, "!unmapped_path");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse2", false, "!unmapped_path");
    /* encoding, query and fragment kept; the port and the host's case dropped */
    EXPECT_URI(&o, "adl://CONTOSOLAKE.azuredatalakestore.net:443/warehouse/My%20Files/a%2Bb?op=x&y=1#f", false,
               "abfss://warehouse@contosogen2.dfs.core.windows.net/My%20Files/a%2Bb?op=x&y=1#f");
    /* an encoded mapping prefix matches its decoded form */
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/data%20sets/2026", false,
               "abfss://sets@contosogen2.dfs.core.windows.net/2026");
    cfg_free(c);
    free(c);
}

TEST(uri_left_alone)
{
    dp_config *c = cfg_of(MAPS);
    rws_opts o = opts(c);
    EXPECT_URI(&o, "adl://fabrikam.azuredatalakestore.net/warehouse/x", false, "!other_account");
    EXPECT_URI(&o, "adl://home/warehouse/x", false, "!adl_home");
    EXPECT_URI(&o, "adl://mystore/warehouse/x", false, "!symbolic_account");
    EXPECT_URI(&o, "adl:///warehouse/x", false, "!no_account");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse/../etc", false, "!unusual_path");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse//x", false, "!unusual_path");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse%2Fx", false, "!unusual_path");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net", false, "!unmapped_path");
    /* run-time text: the account, or a path whose known part a deeper mapping could still claim */
    EXPECT_URI(&o, "adl://", true, "!runtime_built");
    EXPECT_URI(&o, "adl://{account}.azuredatalakestore.net/warehouse", false, "!runtime_built");
    EXPECT_URI(&o, "adl://%s.azuredatalakestore.net/warehouse", false, "!runtime_built");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/landing/${zone}/x", false, "!runtime_built");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/land", true, "!runtime_built");
    /* ... and rewritten when no deeper mapping can: the run-time rest is kept as written */
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse/dt=${day}/x", false,
               "abfss://warehouse@contosogen2.dfs.core.windows.net/dt=${day}/x");
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse/", true,
               "abfss://warehouse@contosogen2.dfs.core.windows.net/");
    /* table metadata: never */
    o.table_meta = true;
    EXPECT_URI(&o, "adl://contosolake.azuredatalakestore.net/warehouse/x", false, "!table_metadata");
    /* without a Gen1 host in the config: any Gen1 account, nothing else */
    o.table_meta = false;
    o.gen1_host = "";
    EXPECT_URI(&o, "adl://fabrikam.azuredatalakestore.net/warehouse/x", false,
               "abfss://warehouse@contosogen2.dfs.core.windows.net/x");
    EXPECT_URI(&o, "adl://example.com/warehouse/x", false, "!other_account");
    cfg_free(c);
    free(c);
}

/* Scan and apply text; returns the result (caller frees) and fills r. */
static char *scan(const rws_opts *o, const char *t, rws_result *r)
{
    memset(r, 0, sizeof *r);
    ASSERT_EQ_INT(rws_scan(o, t, strlen(t), r), 0);
    char *out = NULL;
    size_t n = 0;
    ASSERT_EQ_INT(rws_apply(t, strlen(t), r, &out, &n), 0);
    ASSERT_EQ_INT(n, strlen(out));
    return out;
}

static size_t count_why(const rws_result *r, rws_why w)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nfinds; i++) n += r->finds[i].why == w;
    return n;
}

TEST(text_code)
{
    dp_config *c = cfg_of(MAPS);
    rws_opts o = opts(c);
    rws_result r;
    char *out = scan(&o,
                     "a = \"adl://contosolake.azuredatalakestore.net/warehouse/t\"\n"
                     "b = \"adl://\" + account + \".azuredatalakestore.net/warehouse/t\"\n"
                     "c = 'adl://contosolake.azuredatalakestore.net/warehouse/' + name\n"
                     "d = \"adl://contosolake.azuredatalakestore.net/lan\" + \"ding\"\n"
                     "e = f\"adl://{acct}.azuredatalakestore.net/x\"\n"
                     "hdfs dfs -ls adl://contosolake.azuredatalakestore.net/warehouse/a;echo\n"
                     "(adl://contosolake.azuredatalakestore.net/warehouse/b) x,adl://contosolake.azuredatalakestore.net/warehouse/{c,d}\n"
                     "xadl://contosolake.azuredatalakestore.net/warehouse/no\n",
                     &r);
    ASSERT_EQ_STR(out,
                  "a = \"abfss://warehouse@contosogen2.dfs.core.windows.net/t\"\n"
                  "b = \"adl://\" + account + \".azuredatalakestore.net/warehouse/t\"\n"
                  "c = 'abfss://warehouse@contosogen2.dfs.core.windows.net/' + name\n"
                  "d = \"adl://contosolake.azuredatalakestore.net/lan\" + \"ding\"\n"
                  "e = f\"adl://{acct}.azuredatalakestore.net/x\"\n"
                  "hdfs dfs -ls abfss://warehouse@contosogen2.dfs.core.windows.net/a;echo\n"
                  "(abfss://warehouse@contosogen2.dfs.core.windows.net/b) x,abfss://warehouse@contosogen2.dfs.core.windows.net/{c,d}\n"
                  "xadl://contosolake.azuredatalakestore.net/warehouse/no\n");
    ASSERT_EQ_INT(count_why(&r, RWS_RUNTIME), 3);
    /* the host suffix of b belongs to its finding; xadl:// is another scheme naming a Gen1 host */
    ASSERT_EQ_INT(count_why(&r, RWS_ENDPOINT), 1);
    ASSERT_EQ_INT(r.finds[r.nfinds - 1].why, RWS_ENDPOINT);
    ASSERT_EQ_INT(r.nedits, 5);
    for (size_t i = 0; i < r.nedits; i++) ASSERT_EQ_INT(r.edits[i].kind, RWS_URI);
    /* a second pass finds nothing more to rewrite */
    rws_result r2;
    char *again = scan(&o, out, &r2);
    ASSERT_EQ_INT(r2.nedits, 0);
    ASSERT_EQ_STR(again, out);
    free(again);
    rws_result_free(&r2);
    free(out);
    rws_result_free(&r);
    cfg_free(c);
    free(c);
}

TEST(text_keys)
{
    dp_config *c = cfg_of(MAPS);
    rws_opts o = opts(c);
    rws_result r;
    char *out = scan(&o,
                     "<name>fs.adl.oauth2.access.token.provider.type</name>\n"
                     "  <value>ClientCredential</value>\n"
                     "spark.hadoop.fs.adl.oauth2.client.id=abc\n"
                     "hadoop fs -Dfs.adl.oauth2.credential=s -D dfs.adls.oauth2.refresh.url=u\n"
                     "fs.adl.oauth2.refresh.token: t\n"
                     "conf.set(\"fs.adl.impl\", \"org.apache.hadoop.fs.adl.AdlFileSystem\")\n"
                     "conf.set(\"fs.AbstractFileSystem.adl.impl\", \"org.apache.hadoop.fs.adl.Adl\")\n"
                     "fs.adl.oauth2.msi.port=1\n"
                     "my.fs.adl.oauth2.client.id=keep\n",
                     &r);
    ASSERT_EQ_STR(out,
                  "<name>fs.azure.account.oauth.provider.type</name>\n"
                  "  <value>org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider</value>\n"
                  "spark.hadoop.fs.azure.account.oauth2.client.id=abc\n"
                  "hadoop fs -Dfs.azure.account.oauth2.client.secret=s -D fs.azure.account.oauth2.client.endpoint=u\n"
                  "fs.azure.account.oauth2.refresh.token: t\n"
                  "conf.set(\"fs.abfss.impl\", \"org.apache.hadoop.fs.azurebfs.SecureAzureBlobFileSystem\")\n"
                  "conf.set(\"fs.AbstractFileSystem.abfss.impl\", \"org.apache.hadoop.fs.azurebfs.Abfss\")\n"
                  "fs.adl.oauth2.msi.port=1\n"
                  "my.fs.adl.oauth2.client.id=keep\n");
    ASSERT_EQ_INT(count_why(&r, RWS_KEY_NONE), 1);
    ASSERT_EQ_INT(count_why(&r, RWS_AUTH_TYPE), 1); /* the provider without fs.azure.account.auth.type */
    free(out);
    rws_result_free(&r);
    /* a provider type without a counterpart, or with its value elsewhere: the key stays */
    out = scan(&o, "fs.adl.oauth2.access.token.provider.type=Custom\nfs.azure.account.auth.type=OAuth\n"
                   "fs.adl.oauth2.access.token.provider.type = ${TYPE}\n", &r);
    ASSERT_EQ_STR(out, "fs.adl.oauth2.access.token.provider.type=Custom\nfs.azure.account.auth.type=OAuth\n"
                       "fs.adl.oauth2.access.token.provider.type = ${TYPE}\n");
    ASSERT_EQ_INT(count_why(&r, RWS_PROVIDER), 2);
    ASSERT_EQ_INT(count_why(&r, RWS_AUTH_TYPE), 0);
    free(out);
    rws_result_free(&r);
    cfg_free(c);
    free(c);
}

TEST(text_json_and_meta)
{
    dp_config *c = cfg_of(MAPS);
    rws_opts o = opts(c);
    o.json = true;
    rws_result r;
    /* a notebook line: escaped quotes and \n stay exactly as they are */
    char *out = scan(&o,
                     "{\"source\": [\"df = spark.read.csv(\\\"adl://contosolake.azuredatalakestore.net/warehouse/a.csv\\\")\\n\","
                     " \"x = 'adl:\\/\\/contosolake.azuredatalakestore.net\\/warehouse'\"],"
                     " \"type\": \"AzureDataLakeStore\", \"u\": \"https://contosolake.azuredatalakestore.net/webhdfs/v1\","
                     " \"caf\\u00e9\": \"adl://contosolake.azuredatalakestore.net/warehouse/caf\\u00e9/x\"}",
                     &r);
    ASSERT_EQ_STR(out,
                  "{\"source\": [\"df = spark.read.csv(\\\"abfss://warehouse@contosogen2.dfs.core.windows.net/a.csv\\\")\\n\","
                  " \"x = 'adl:\\/\\/contosolake.azuredatalakestore.net\\/warehouse'\"],"
                  " \"type\": \"AzureDataLakeStore\", \"u\": \"https://contosolake.azuredatalakestore.net/webhdfs/v1\","
                  " \"caf\\u00e9\": \"abfss://warehouse@contosogen2.dfs.core.windows.net/caf\\u00e9/x\"}");
    ASSERT_EQ_INT(count_why(&r, RWS_ESCAPED), 1);
    ASSERT_EQ_INT(count_why(&r, RWS_ADF), 1);
    ASSERT_EQ_INT(count_why(&r, RWS_ENDPOINT), 1);
    free(out);
    rws_result_free(&r);
    /* Delta/Iceberg metadata: nothing rewritten, every reference reported */
    o.json = false;
    o.table_meta = true;
    const char *meta = "{\"add\":{\"path\":\"adl://contosolake.azuredatalakestore.net/warehouse/e/p0.parquet\"}}\n"
                       "{\"location\":\"adl://contosolake.azuredatalakestore.net/warehouse/e\",\"fs.adl.impl\":1}\n";
    out = scan(&o, meta, &r);
    ASSERT_EQ_STR(out, meta);
    ASSERT_EQ_INT(r.nedits, 0);
    ASSERT_EQ_INT(count_why(&r, RWS_TABLE_META), 2);
    free(out);
    rws_result_free(&r);
    cfg_free(c);
    free(c);
}

TEST(binary_and_edges)
{
    dp_config *c = cfg_of(MAPS);
    rws_opts o = opts(c);
    rws_result r;
    memset(&r, 0, sizeof r);
    /* NULs, a URI at the very end, a lone scheme, and an empty text */
    static const char t[] = "\0adl://contosolake.azuredatalakestore.net/warehouse/z\0adl:\0adl://";
    ASSERT_EQ_INT(rws_scan(&o, t, sizeof t - 1, &r), 0);
    ASSERT_EQ_INT(r.nedits, 1);
    ASSERT_EQ_INT(r.edits[0].off, 1);
    ASSERT_EQ_INT(count_why(&r, RWS_RUNTIME), 1);
    rws_result_free(&r);
    ASSERT_EQ_INT(rws_scan(&o, "", 0, &r), 0);
    ASSERT_EQ_INT(r.nedits + r.nfinds, 0);
    ASSERT_EQ_STR(rws_kind_name(RWS_KEY), "config_key");
    ASSERT_TRUE(rws_why_front(RWS_RUNTIME));
    ASSERT_TRUE(!rws_why_front(RWS_ADF));
    cfg_free(c);
    free(c);
}

TESTS(T(uri_mappings), T(uri_left_alone), T(text_code), T(text_keys), T(text_json_and_meta), T(binary_and_edges));
