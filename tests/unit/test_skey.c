/*
 * test_skey: Shared Key and service SAS. The three worked examples of protocols.md §3.1 are checked
 * byte for byte (string-to-sign) and by signature; extra vectors (the two empty-parameter
 * canonicalizations, path-style JS URLs, service SAS in the 2018-11-09 and 2020-12-06 layouts) were
 * computed once with an independent Python (stdlib hmac/hashlib) implementation of the same rules.
 * Verification accepts both canonicalizations and refuses wrong keys, accounts, tampered requests
 * and malformed headers.
 */
#include <errno.h>
#include <strings.h>

#include "skey.h"
#include "tharness.h"

#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

typedef struct kv {
    const char *name, *value;
} kv;

typedef struct hdrs {
    const kv *h;
    size_t n;
} hdrs;

static const char *h_get(void *ctx, const char *name)
{
    const hdrs *hs = ctx;
    for (size_t i = 0; i < hs->n; i++)
        if (strcasecmp(hs->h[i].name, name) == 0) return hs->h[i].value;
    return NULL;
}

static void h_each(void *ctx, void (*fn)(void *, const char *, const char *), void *fnctx)
{
    const hdrs *hs = ctx;
    for (size_t i = 0; i < hs->n; i++)
        fn(fnctx, hs->h[i].name, hs->h[i].value);
}

#define COMMON_HDRS                                                                                \
    {"x-ms-client-request-id", "00000000-0000-0000-0000-000000000001"},                            \
        {"x-ms-date", "Mon, 01 Jan 2024 00:00:00 GMT"}, {"x-ms-version", "2020-02-10"}

#define STS_HDRS                                                                                   \
    "x-ms-client-request-id:00000000-0000-0000-0000-000000000001\n"                                \
    "x-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\n"

static skey_key test_key(void)
{
    skey_key k;
    if (skey_key_init(&k, "myaccount", KEY_B64) != 0) TH_FAIL_AT("key init failed");
    return k;
}

static void check_vector(const char *method, const char *path, const char *query, const kv *h, size_t nh,
                         const char *want_sts, const char *want_sig)
{
    skey_key k = test_key();
    hdrs hs = {h, nh};
    skey_request req = {method, path, query, h_get, h_each, &hs};
    dbuf sts;
    dbuf_init(&sts, 1 << 16);
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    ASSERT_EQ_STR(sts.data, want_sts);
    char sig[64];
    ASSERT_EQ_INT(skey_hmac_b64(k.key, k.key_len, sts.data, sts.len, sig), 0);
    ASSERT_EQ_STR(sig, want_sig);

    dbuf auth;
    dbuf_init(&auth, 256);
    ASSERT_EQ_INT(skey_sign(&k, &req, &auth), 0);
    char want_auth[128];
    snprintf(want_auth, sizeof want_auth, "SharedKey myaccount:%s", want_sig);
    ASSERT_EQ_STR(auth.data, want_auth);
    ASSERT_EQ_INT(skey_verify(&k, &req, auth.data, NULL), 0);
    dbuf_free(&auth);
    dbuf_free(&sts);
}

TEST(vector_a_append)
{
    static const kv h[] = {{"Content-Length", "11"}, COMMON_HDRS};
    check_vector("PATCH", "/myfs/dir/file%20name.txt", "action=append&position=0&timeout=90", h, 4,
                 "PATCH\n\n\n11\n\n\n\n\n\n\n\n\n" STS_HDRS "x-ms-version:2020-02-10\n"
                 "/myaccount/myfs/dir/file%20name.txt\naction:append\nposition:0\ntimeout:90",
                 "b0Uq063FMtN0G/YUBtYviXc8NZpamrWJ0fE/ZxISahY=");
}

TEST(vector_b_flush)
{
    static const kv h[] = {{"Content-Length", "0"}, COMMON_HDRS};
    check_vector("PATCH", "/myfs/dir/file%20name.txt",
                 "action=flush&position=11&retainUncommittedData=false&close=true&timeout=90", h, 4,
                 "PATCH\n\n\n\n\n\n\n\n\n\n\n\n" STS_HDRS "x-ms-version:2020-02-10\n"
                 "/myaccount/myfs/dir/file%20name.txt\naction:flush\nclose:true\nposition:11\n"
                 "retainuncommitteddata:false\ntimeout:90",
                 "Y2C4VkT3eWdg0LpIYuNZjedj6+AdtoegskaRYVQsssI=");
}

TEST(vector_c_create)
{
    /* Header order and name case on the wire must not matter. */
    static const kv h[] = {{"X-MS-Version", "2020-02-10"},
                           {"If-None-Match", "*"},
                           {"x-ms-permissions", "0644"},
                           {"Content-Length", "0"},
                           {"x-ms-date", "Mon, 01 Jan 2024 00:00:00 GMT"},
                           {"X-Ms-Client-Request-Id", "00000000-0000-0000-0000-000000000001"}};
    check_vector("PUT", "/myfs/dir/file%20name.txt", "resource=file&timeout=90", h, 6,
                 "PUT\n\n\n\n\n\n\n\n\n*\n\n\n" STS_HDRS "x-ms-permissions:0644\nx-ms-version:2020-02-10\n"
                 "/myaccount/myfs/dir/file%20name.txt\nresource:file\ntimeout:90",
                 "9rGKup7haunCyQR1vQcTX2TTTv4N+v6e6EtRTlDLaEI=");
}

TEST(empty_params_two_canonicalizations)
{
    /* Python SDK: GET /ACCOUNT/?comp=list&include= signs "include:"; the JS SDK would drop it. */
    static const kv h[] = {COMMON_HDRS};
    hdrs hs = {h, 3};
    skey_key k = test_key();
    skey_request req = {"GET", "/myaccount/", "comp=list&include=", h_get, h_each, &hs};
    dbuf sts;
    dbuf_init(&sts, 1 << 16);
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req, SKEY_KEEP_EMPTY_PARAMS, &sts), 0);
    ASSERT_EQ_STR(sts.data, "GET\n\n\n\n\n\n\n\n\n\n\n\n" STS_HDRS "x-ms-version:2020-02-10\n"
                            "/myaccount/myaccount/\ncomp:list\ninclude:");
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    ASSERT_EQ_STR(sts.data, "GET\n\n\n\n\n\n\n\n\n\n\n\n" STS_HDRS "x-ms-version:2020-02-10\n"
                            "/myaccount/myaccount/\ncomp:list");

    /* Independent (Python) signatures of both forms; the verifier accepts either. */
    const char *keep = "SharedKey myaccount:ZoQOIKZDaNzX31Zm8CdhVp3LeC1NN8Qpn4jaw+hynTU=";
    const char *drop = "SharedKey myaccount:7do7F96kN1+Mhwo4zBCdY61sMkR6pJ4Gj3FNULmu4L8=";
    ASSERT_EQ_INT(skey_verify(&k, &req, keep, NULL), 0);
    ASSERT_EQ_INT(skey_verify(&k, &req, drop, NULL), 0);
    dbuf auth;
    dbuf_init(&auth, 256);
    ASSERT_EQ_INT(skey_sign(&k, &req, &auth), 0);
    ASSERT_EQ_STR(auth.data, drop); /* what we send: the DROP form */

    /* A parameter without '=' counts as empty too. */
    skey_request req2 = {"GET", "/myaccount/", "comp=list&include", h_get, h_each, &hs};
    ASSERT_EQ_INT(skey_verify(&k, &req2, keep, NULL), 0);
    ASSERT_EQ_INT(skey_verify(&k, &req2, drop, NULL), 0);
    dbuf_free(&auth);
    dbuf_free(&sts);
}

TEST(path_style_js_resource_repeats_account)
{
    static const kv h[] = {COMMON_HDRS};
    hdrs hs = {h, 3};
    skey_key k = test_key();
    skey_request req = {"HEAD", "/myaccount/myfs/dir%2Fsub/f", NULL, h_get, h_each, &hs};
    dbuf sts;
    dbuf_init(&sts, 1 << 16);
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    const char *nl = strrchr(sts.data, '\n');
    ASSERT_EQ_STR(nl + 1, "/myaccount/myaccount/myfs/dir%2Fsub/f"); /* raw path, not decoded */
    skey_request root = {"GET", "", NULL, h_get, h_each, &hs};
    ASSERT_EQ_INT(skey_string_to_sign(&k, &root, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    nl = strrchr(sts.data, '\n');
    ASSERT_EQ_STR(nl + 1, "/myaccount/");
    dbuf_free(&sts);
}

TEST(query_canonicalization)
{
    static const kv h[] = {COMMON_HDRS};
    hdrs hs = {h, 3};
    skey_key k = test_key();
    /* Names lower-cased and sorted, values form-decoded, repeated names' values sorted and joined. */
    skey_request req = {"GET", "/fs", "Zeta=2&alpha=b%2Cc&ALPHA=a&dir=x+y%2Fz&resource=filesystem&e=%3D", h_get,
                        h_each, &hs};
    dbuf sts;
    dbuf_init(&sts, 1 << 16);
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    const char *res = strstr(sts.data, "/myaccount/fs");
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_STR(res, "/myaccount/fs\nalpha:a,b,c\ndir:x y/z\ne:=\nresource:filesystem\nzeta:2");

    /* Malformed escapes and decoded control characters are refused, not signed. */
    skey_request bad = {"GET", "/fs", "a=%G0", h_get, h_each, &hs};
    ASSERT_EQ_INT(skey_string_to_sign(&k, &bad, SKEY_DROP_EMPTY_PARAMS, &sts), -EINVAL);
    skey_request inj = {"GET", "/fs", "a=1%0Ab:2", h_get, h_each, &hs};
    ASSERT_EQ_INT(skey_string_to_sign(&k, &inj, SKEY_KEEP_EMPTY_PARAMS, &sts), -EINVAL);
    ASSERT_EQ_INT(skey_verify(&k, &inj, "SharedKey myaccount:AAAA", NULL), -EINVAL);
    dbuf_free(&sts);
}

TEST(header_slots_and_xms_rules)
{
    static const kv h[] = {{"Content-Encoding", "gzip"},
                           {"Content-Language", "en"},
                           {"Content-Length", "5"},
                           {"Content-MD5", "md5"},
                           {"Content-Type", "text/plain"},
                           {"Date", "Tue, 02 Jan 2024 00:00:00 GMT"},
                           {"If-Modified-Since", "ims"},
                           {"If-Match", "\"etag\""},
                           {"If-None-Match", "inm"},
                           {"If-Unmodified-Since", "ius"},
                           {"Range", "bytes=0-4"},
                           {"X-Ms-Meta-B", "  two"},
                           {"x-ms-meta-a", "one"},
                           {"x-ms-meta-b", "three"},
                           {"x-ms-source-lease-id", ""},
                           {"x-ms-meta-c", "l1\r\n  l2\nl3"},
                           {"Host", "ignored"}};
    hdrs hs = {h, sizeof h / sizeof h[0]};
    skey_key k = test_key();
    skey_request req = {"PUT", "/fs/f", NULL, h_get, h_each, &hs};
    dbuf sts;
    dbuf_init(&sts, 1 << 16);
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    /* No x-ms-date: the Date slot carries Date. Values left-trimmed and unfolded, repeats joined,
     * empty values kept. */
    ASSERT_EQ_STR(sts.data, "PUT\ngzip\nen\n5\nmd5\ntext/plain\nTue, 02 Jan 2024 00:00:00 GMT\nims\n\"etag\"\ninm\n"
                            "ius\nbytes=0-4\nx-ms-meta-a:one\nx-ms-meta-b:two,three\nx-ms-meta-c:l1 l2 l3\n"
                            "x-ms-source-lease-id:\n"
                            "/myaccount/fs/f");

    /* With x-ms-date the Date slot is empty. */
    static const kv h2[] = {{"Date", "Tue, 02 Jan 2024 00:00:00 GMT"}, {"x-ms-date", "d"}};
    hdrs hs2 = {h2, 2};
    skey_request req2 = {"GET", "/fs", NULL, h_get, h_each, &hs2};
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req2, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    ASSERT_EQ_STR(sts.data, "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:d\n/myaccount/fs");

    /* No headers at all (and no callbacks). */
    skey_request req3 = {"GET", "/fs", NULL, NULL, NULL, NULL};
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req3, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    ASSERT_EQ_STR(sts.data, "GET\n\n\n\n\n\n\n\n\n\n\n\n/myaccount/fs");
    dbuf_free(&sts);
}

TEST(too_many_headers_refused)
{
    static char names[80][32];
    static kv h[80];
    for (int i = 0; i < 80; i++) {
        snprintf(names[i], sizeof names[i], "x-ms-h%02d", i);
        h[i].name = names[i];
        h[i].value = "v";
    }
    hdrs hs = {h, 80};
    skey_key k = test_key();
    skey_request req = {"GET", "/fs", NULL, h_get, h_each, &hs};
    dbuf sts;
    dbuf_init(&sts, 1 << 16);
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req, SKEY_DROP_EMPTY_PARAMS, &sts), -E2BIG);
    hs.n = 64;
    ASSERT_EQ_INT(skey_string_to_sign(&k, &req, SKEY_DROP_EMPTY_PARAMS, &sts), 0);
    dbuf_free(&sts);
}

TEST(verify_refuses)
{
    static const kv h[] = {{"Content-Length", "11"}, COMMON_HDRS};
    hdrs hs = {h, 4};
    skey_key k = test_key();
    skey_request req = {"PATCH", "/myfs/dir/file%20name.txt", "action=append&position=0&timeout=90", h_get, h_each,
                        &hs};
    const char *good = "SharedKey myaccount:b0Uq063FMtN0G/YUBtYviXc8NZpamrWJ0fE/ZxISahY=";
    ASSERT_EQ_INT(skey_verify(&k, &req, good, NULL), 0);
    ASSERT_EQ_INT(skey_verify(&k, &req, "sharedkey myaccount:b0Uq063FMtN0G/YUBtYviXc8NZpamrWJ0fE/ZxISahY=", NULL), 0);

    /* Wrong signature: -EACCES, and the DROP string-to-sign is handed back. */
    dbuf sts;
    dbuf_init(&sts, 1 << 16);
    ASSERT_EQ_INT(skey_verify(&k, &req, "SharedKey myaccount:b0Uq063FMtN0G/YUBtYviXc8NZpamrWJ0fE/ZxISahZ=", &sts),
                  -EACCES);
    ASSERT_TRUE(strncmp(sts.data, "PATCH\n", 6) == 0);
    ASSERT_TRUE(strstr(sts.data, "position:0") != NULL);

    /* Tampered request. */
    skey_request moved = req;
    moved.raw_query = "action=append&position=1&timeout=90";
    ASSERT_EQ_INT(skey_verify(&k, &moved, good, NULL), -EACCES);
    skey_request other_path = req;
    other_path.raw_path = "/myfs/dir/file name.txt";
    ASSERT_EQ_INT(skey_verify(&k, &other_path, good, NULL), -EACCES);

    /* Another account's name, or a different key. */
    ASSERT_EQ_INT(skey_verify(&k, &req, "SharedKey otheraccount:b0Uq063FMtN0G/YUBtYviXc8NZpamrWJ0fE/ZxISahY=", NULL),
                  -EACCES);
    skey_key k2;
    ASSERT_EQ_INT(skey_key_init(&k2, "myaccount", "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="), 0);
    ASSERT_EQ_INT(skey_verify(&k2, &req, good, NULL), -EACCES);

    /* Malformed headers. */
    static const char *const bad[] = {"", "SharedKey", "SharedKey ", "SharedKey myaccount", "SharedKey :sig",
                                      "SharedKey myaccount:", "Bearer abc", "SharedKeyLite myaccount:abc",
                                      "SharedKey myaccount:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (skey_verify(&k, &req, bad[i], NULL) != -EINVAL) TH_FAIL_AT("accepted or misjudged \"%s\"", bad[i]);
    ASSERT_EQ_INT(skey_verify(&k, &req, NULL, NULL), -EINVAL);
    dbuf_free(&sts);
}

TEST(key_init)
{
    skey_key k;
    ASSERT_EQ_INT(skey_key_init(&k, "myaccount", KEY_B64), 0);
    ASSERT_EQ_STR(k.account, "myaccount");
    ASSERT_EQ_INT(k.key_len, 32);
    ASSERT_EQ_INT(k.key[31], 31);
    ASSERT_EQ_INT(skey_key_init(&k, "", KEY_B64), -EINVAL);
    ASSERT_EQ_INT(skey_key_init(&k, "a:b", KEY_B64), -EINVAL);
    ASSERT_EQ_INT(skey_key_init(&k, "myaccount", "not base64!"), -EINVAL);
    ASSERT_EQ_INT(skey_key_init(&k, "myaccount", ""), -EINVAL);
    ASSERT_EQ_INT(skey_key_init(&k, NULL, KEY_B64), -EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ASSERT_EQ_INT(skey_key_init(&k, longname, KEY_B64), -EINVAL);
    /* A key longer than SKEY_MAX_KEY bytes does not fit. */
    char bigkey[400];
    memset(bigkey, 'A', 4 * 50);
    bigkey[200] = '\0'; /* 150 bytes decoded */
    ASSERT_EQ_INT(skey_key_init(&k, "myaccount", bigkey), -EINVAL);
    /* The well-known public emulator key (devstoreaccount1) decodes to 64 bytes. */
    ASSERT_EQ_INT(skey_key_init(&k, "devstoreaccount1",
                                "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="),
                  0);
    ASSERT_EQ_INT(k.key_len, 64);
}

TEST(service_sas_2018_layout)
{
    skey_key k = test_key();
    skey_sas sas = {0};
    sas.sp = "rw";
    sas.st = "2024-01-01T00:00:00Z";
    sas.se = "2024-01-02T00:00:00Z";
    sas.spr = "https";
    sas.sv = "2020-02-10";
    sas.sr = "b";
    sas.ses = "ignored-before-2020-12-06";
    dbuf sts;
    dbuf_init(&sts, 4096);
    ASSERT_EQ_INT(skey_sas_string_to_sign(&k, &sas, "myfs", "dir/file name.txt", &sts), 0);
    ASSERT_EQ_STR(sts.data, "rw\n2024-01-01T00:00:00Z\n2024-01-02T00:00:00Z\n/blob/myaccount/myfs/dir/file name.txt\n"
                            "\n\nhttps\n2020-02-10\nb\n\n\n\n\n\n");
    ASSERT_EQ_INT(skey_sas_string_to_sign(&k, &sas, "myfs", "/dir/file name.txt", &sts), 0);
    ASSERT_TRUE(strstr(sts.data, "\n/blob/myaccount/myfs/dir/file name.txt\n") != NULL);
    char sig[64];
    ASSERT_EQ_INT(skey_sas_sign(&k, &sas, "myfs", "/dir/file name.txt", sig), 0);
    ASSERT_EQ_STR(sig, "g61LxV5HbdSqHhstveSyGgZEn6mDJ0dSqGgfZuSG6J8=");
    dbuf_free(&sts);
}

TEST(service_sas_2020_12_layout_signs_encryption_scope)
{
    skey_key k = test_key();
    skey_sas sas = {0};
    sas.sp = "rl";
    sas.se = "2024-01-02T00:00:00Z";
    sas.sip = "127.0.0.1";
    sas.spr = "https,http";
    sas.sv = "2021-06-08";
    sas.sr = "c";
    dbuf sts;
    dbuf_init(&sts, 4096);
    ASSERT_EQ_INT(skey_sas_string_to_sign(&k, &sas, "myfs", "", &sts), 0);
    ASSERT_EQ_STR(sts.data, "rl\n\n2024-01-02T00:00:00Z\n/blob/myaccount/myfs\n\n127.0.0.1\nhttps,http\n2021-06-08\nc"
                            "\n\n\n\n\n\n\n");
    char sig[64];
    ASSERT_EQ_INT(skey_sas_sign(&k, &sas, "myfs", NULL, sig), 0);
    ASSERT_EQ_STR(sig, "e79nxREMdL0d7zLK4XKATP98wCK3dV82pQX05krGP0Y=");
    ASSERT_EQ_INT(skey_sas_string_to_sign(&k, &sas, "", "x", &sts), -EINVAL);
    dbuf_free(&sts);
}

TEST(ct_strcmp)
{
    ASSERT_EQ_INT(skey_ct_strcmp("abc", "abc"), 0);
    ASSERT_EQ_INT(skey_ct_strcmp("", ""), 0);
    ASSERT_TRUE(skey_ct_strcmp("abc", "abd") != 0);
    ASSERT_TRUE(skey_ct_strcmp("abc", "ab") != 0);
    ASSERT_TRUE(skey_ct_strcmp("ab", "abc") != 0);
    ASSERT_TRUE(skey_ct_strcmp("", "a") != 0);
}

TESTS(T(vector_a_append), T(vector_b_flush), T(vector_c_create), T(empty_params_two_canonicalizations),
      T(path_style_js_resource_repeats_account), T(query_canonicalization), T(header_slots_and_xms_rules),
      T(too_many_headers_refused), T(verify_refuses), T(key_init), T(service_sas_2018_layout),
      T(service_sas_2020_12_layout_signs_encryption_scope), T(ct_strcmp))
