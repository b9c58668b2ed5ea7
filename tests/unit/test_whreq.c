/*
 * test_whreq: the WebHDFS request parser against every form real clients send (clients.md) and
 * against hostile input: prefix placement, %2F inside one segment, "//", root forms, '+' in paths
 * versus form-decoded values, case-insensitive names and op values, Hadoop's exact error text for an
 * unknown op or a wrong method, dot segments (plain and encoded), control bytes, invalid UTF-8,
 * length limits, typed getters with int64 overflow, and the RemoteException JSON rendering.
 */
#include <errno.h>

#include "tharness.h"
#include "whreq.h"

/* Parse and require success. */
static void parse_ok(const char *method, const char *target, whreq *r)
{
    whreq_err err = {0};
    if (whreq_parse(method, target, r, &err) != 0)
        TH_FAIL_AT("parse %s %s failed: %d %s %s", method, target, err.status, err.exception, err.message);
}

/* Parse and require failure with the given status and exception; returns the error. */
static whreq_err parse_fail(const char *method, const char *target, int status, const char *exc)
{
    whreq r;
    whreq_err err = {0};
    if (whreq_parse(method, target, &r, &err) == 0) {
        TH_FAIL_AT("parse %s %s succeeded (path %s)", method, target, r.path);
    }
    if (err.status != status || !err.exception || strcmp(err.exception, exc) != 0)
        TH_FAIL_AT("parse %s %s: got %d %s (%s), want %d %s", method, target, err.status,
                   err.exception ? err.exception : "(null)", err.message, status, exc);
    ASSERT_TRUE(r.path == NULL && r.nparams == 0); /* nothing left allocated */
    return err;
}

#define BAD_ARG(m, t) parse_fail((m), (t), 400, "IllegalArgumentException")

TEST(parses_create)
{
    whreq r;
    parse_ok("PUT", "/webhdfs/v1/dir/file.txt?op=CREATE&overwrite=true&api-version=2018-12-01", &r);
    ASSERT_EQ_INT(r.op, WH_OP_CREATE);
    ASSERT_EQ_INT(r.prefix, WH_PREFIX_WEBHDFS);
    ASSERT_EQ_STR(r.path, "/dir/file.txt");
    ASSERT_EQ_STR(r.method, "PUT");
    ASSERT_TRUE(r.info == whreq_opinfo_get(WH_OP_CREATE));
    ASSERT_TRUE(r.info->has_body && r.info->is_write);
    ASSERT_EQ_STR(whreq_param_get(&r, "api-version"), "2018-12-01");
    bool ow = false;
    ASSERT_EQ_INT(whreq_get_bool(&r, "overwrite", false, &ow, NULL), 0);
    ASSERT_TRUE(ow);
    whreq_free(&r);
    ASSERT_TRUE(r.path == NULL && r.nparams == 0);
}

TEST(encoded_slash_is_a_separator)
{
    whreq r;
    /* azure-arm-datalake-store sends the whole path as one encoded segment, with upper-case OP. */
    parse_ok("PUT", "/webhdfs/v1/%2Fdir%2Ffile?OP=create&overwrite=true", &r);
    ASSERT_EQ_STR(r.path, "/dir/file");
    ASSERT_EQ_INT(r.op, WH_OP_CREATE);
    whreq_free(&r);
    parse_ok("GET", "/webhdfs/v1/a%2fb%2F%2Fc%2F?op=GETFILESTATUS", &r);
    ASSERT_EQ_STR(r.path, "/a/b/c");
    whreq_free(&r);
}

TEST(double_slashes_collapse)
{
    whreq r;
    parse_ok("GET", "/webhdfs/v1//dir/file?op=OPEN&read=true", &r);
    ASSERT_EQ_STR(r.path, "/dir/file");
    whreq_free(&r);
    parse_ok("GET", "/webhdfs/v1///a////b///?op=LISTSTATUS", &r);
    ASSERT_EQ_STR(r.path, "/a/b");
    whreq_free(&r);
}

TEST(root_forms)
{
    static const char *const t[] = {"/webhdfs/v1?op=LISTSTATUS", "/webhdfs/v1/?op=LISTSTATUS",
                                    "/webhdfs/v1//?op=LISTSTATUS", "/webhdfs/v1/%2F?op=LISTSTATUS",
                                    "/WEBHDFS/V1?op=LISTSTATUS"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        whreq r;
        parse_ok("GET", t[i], &r);
        ASSERT_EQ_STR(r.path, "/");
        whreq_free(&r);
    }
}

TEST(prefix_must_be_at_the_start)
{
    parse_fail("GET", "//webhdfs/v1//a?op=OPEN", 404, "FileNotFoundException");
    parse_fail("GET", "/webhdfs/v1x/a?op=OPEN", 404, "FileNotFoundException");
    parse_fail("GET", "/webhdfs/v2/a?op=OPEN", 404, "FileNotFoundException");
    parse_fail("GET", "/webhdfs?op=OPEN", 404, "FileNotFoundException");
    parse_fail("GET", "/x/webhdfs/v1/a?op=OPEN", 404, "FileNotFoundException");
    parse_fail("GET", "/WebHdfsExtra/a?op=OPEN", 404, "FileNotFoundException");
    parse_fail("GET", "/webhdfs/v1%2Fa?op=OPEN", 404, "FileNotFoundException");
    parse_fail("GET", "", 404, "FileNotFoundException");
    parse_fail("GET", "?op=OPEN", 404, "FileNotFoundException");
}

TEST(ext_prefix_any_case)
{
    static const char *const t[] = {"/WebHdfsExt/%2Fdir%2Ff?appendMode=autocreate&op=CONCURRENTAPPEND",
                                    "/webhdfsext/dir/f?op=concurrentappend", "/WEBHDFSEXT//dir/f/?op=ConcurrentAppend"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        whreq r;
        parse_ok("POST", t[i], &r);
        ASSERT_EQ_INT(r.prefix, WH_PREFIX_EXT);
        ASSERT_EQ_INT(r.op, WH_OP_CONCURRENTAPPEND);
        ASSERT_EQ_STR(r.path, "/dir/f");
        whreq_free(&r);
    }
}

TEST(op_under_either_prefix_is_accepted)
{
    whreq r;
    parse_ok("POST", "/webhdfs/v1/f?op=CONCURRENTAPPEND", &r);
    ASSERT_EQ_INT(r.prefix, WH_PREFIX_WEBHDFS);
    ASSERT_EQ_INT(r.info->prefix, WH_PREFIX_EXT);
    whreq_free(&r);
    parse_ok("PUT", "/webhdfs/v1/f?op=SETEXPIRY&expiryOption=NeverExpire", &r);
    ASSERT_EQ_INT(r.op, WH_OP_SETEXPIRY);
    ASSERT_EQ_STR(whreq_param_get(&r, "expiryoption"), "NeverExpire");
    whreq_free(&r);
    parse_ok("GET", "/WebHdfsExt/f?op=GETFILESTATUS", &r);
    ASSERT_EQ_INT(r.prefix, WH_PREFIX_EXT);
    ASSERT_EQ_INT(r.op, WH_OP_GETFILESTATUS);
    whreq_free(&r);
}

TEST(path_plus_stays_plus_query_plus_is_space)
{
    whreq r;
    parse_ok("PUT", "/webhdfs/v1/a+b%20c%2Bd?op=RENAME&destination=%2Fx+y%2Bz", &r);
    ASSERT_EQ_STR(r.path, "/a+b c+d");
    ASSERT_EQ_STR(whreq_param_get(&r, "destination"), "/x y+z");
    whreq_free(&r);
}

TEST(path_special_characters_survive)
{
    whreq r;
    parse_ok("GET", "/webhdfs/v1/a&b=c;d,e$f!g@h/...%2E/.x/x./a..b/%25/%C3%A9?op=GETFILESTATUS", &r);
    ASSERT_EQ_STR(r.path, "/a&b=c;d,e$f!g@h/..../.x/x./a..b/%/\xC3\xA9");
    whreq_free(&r);
}

TEST(param_names_case_insensitive)
{
    whreq r;
    parse_ok("PUT", "/webhdfs/v1/f?OP=SETACL&aclSpec=user%3A%3Arwx%2Cgroup%3A%3Ar-x&LeaseId=L1&CreateParent=false", &r);
    ASSERT_EQ_INT(r.op, WH_OP_SETACL);
    ASSERT_EQ_STR(whreq_param_get(&r, "aclspec"), "user::rwx,group::r-x");
    ASSERT_EQ_STR(whreq_param_get(&r, "leaseid"), "L1");
    ASSERT_EQ_STR(whreq_param_get(&r, "createparent"), "false");
    ASSERT_TRUE(whreq_param_get(&r, "aclSpec") == NULL); /* lookups use the lower-case name */
    for (int i = 0; i < r.nparams; i++)
        for (const char *p = r.params[i].name; *p; p++)
            ASSERT_TRUE(!(*p >= 'A' && *p <= 'Z'));
    whreq_free(&r);
}

TEST(op_values_case_insensitive)
{
    static const char *const t[] = {"/webhdfs/v1/d?op=mkdirs", "/webhdfs/v1/d?op=MkDirs&permission=0755",
                                    "/webhdfs/v1/d?Op=MKDIRS", "/webhdfs/v1/d?op=%6Dkdirs"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        whreq r;
        parse_ok("PUT", t[i], &r);
        ASSERT_EQ_INT(r.op, WH_OP_MKDIRS);
        whreq_free(&r);
    }
}

TEST(unknown_op_is_hadoop_illegal_argument)
{
    whreq_err e = BAD_ARG("PUT", "/webhdfs/v1/f?op=frobnicate");
    ASSERT_EQ_STR(e.message, "Invalid value for webhdfs parameter \"op\": No enum constant "
                             "org.apache.hadoop.hdfs.web.resources.PutOpParam.Op.FROBNICATE");
    e = BAD_ARG("GET", "/webhdfs/v1/f?op=");
    ASSERT_EQ_STR(e.message, "Invalid value for webhdfs parameter \"op\": No enum constant "
                             "org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.");
    e = BAD_ARG("GET", "/webhdfs/v1/f?opx=OPEN");
    ASSERT_TRUE(strstr(e.message, "\"op\"") != NULL);
    BAD_ARG("GET", "/webhdfs/v1/f");
    BAD_ARG("GET", "/webhdfs/v1/f?op=OPEN%00");
    BAD_ARG("GET", "/webhdfs/v1/f?op=OPENX");
    BAD_ARG("GET", "/webhdfs/v1/f?op=OPE");
}

TEST(wrong_method_is_illegal_argument)
{
    whreq_err e = BAD_ARG("GET", "/webhdfs/v1/f?op=CREATE");
    ASSERT_EQ_STR(e.message, "Invalid value for webhdfs parameter \"op\": No enum constant "
                             "org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.CREATE");
    e = BAD_ARG("POST", "/webhdfs/v1/f?op=open");
    ASSERT_TRUE(strstr(e.message, "PostOpParam.Op.OPEN") != NULL);
    BAD_ARG("PUT", "/webhdfs/v1/f?op=APPEND");
    BAD_ARG("DELETE", "/webhdfs/v1/f?op=MKDIRS");
    BAD_ARG("PUT", "/webhdfs/v1/f?op=DELETE");
    BAD_ARG("PATCH", "/webhdfs/v1/f?op=OPEN");
    BAD_ARG("HEAD", "/webhdfs/v1/f?op=OPEN");
    BAD_ARG("get", "/webhdfs/v1/f?op=OPEN"); /* HTTP methods are case-sensitive */
}

TEST(op_table_matches_protocol)
{
    static const struct {
        whreq_op op;
        const char *name, *method;
        whreq_prefix prefix;
        bool write, body;
    } want[] = {
        {WH_OP_CREATE, "CREATE", "PUT", WH_PREFIX_WEBHDFS, true, true},
        {WH_OP_APPEND, "APPEND", "POST", WH_PREFIX_WEBHDFS, true, true},
        {WH_OP_CONCURRENTAPPEND, "CONCURRENTAPPEND", "POST", WH_PREFIX_EXT, true, true},
        {WH_OP_MKDIRS, "MKDIRS", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_RENAME, "RENAME", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_DELETE, "DELETE", "DELETE", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_CONCAT, "CONCAT", "POST", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_MSCONCAT, "MSCONCAT", "POST", WH_PREFIX_WEBHDFS, true, true},
        {WH_OP_SETPERMISSION, "SETPERMISSION", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_SETOWNER, "SETOWNER", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_SETACL, "SETACL", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_MODIFYACLENTRIES, "MODIFYACLENTRIES", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_REMOVEACLENTRIES, "REMOVEACLENTRIES", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_REMOVEACL, "REMOVEACL", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_REMOVEDEFAULTACL, "REMOVEDEFAULTACL", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_SETTIMES, "SETTIMES", "PUT", WH_PREFIX_WEBHDFS, true, false},
        {WH_OP_SETEXPIRY, "SETEXPIRY", "PUT", WH_PREFIX_EXT, true, false},
        {WH_OP_OPEN, "OPEN", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_GETFILESTATUS, "GETFILESTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_MSGETFILESTATUS, "MSGETFILESTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_LISTSTATUS, "LISTSTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_MSLISTSTATUS, "MSLISTSTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_GETCONTENTSUMMARY, "GETCONTENTSUMMARY", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_GETACLSTATUS, "GETACLSTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_MSGETACLSTATUS, "MSGETACLSTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_CHECKACCESS, "CHECKACCESS", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_GETFILECHECKSUM, "GETFILECHECKSUM", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_GETHOMEDIRECTORY, "GETHOMEDIRECTORY", "GET", WH_PREFIX_WEBHDFS, false, false},
        {WH_OP_LISTSTATUS_BATCH, "LISTSTATUS_BATCH", "GET", WH_PREFIX_WEBHDFS, false, false},
    };
    ASSERT_EQ_INT(sizeof want / sizeof want[0], WH_OP__COUNT - 1); /* every op is listed */
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const whreq_opinfo *in = whreq_opinfo_get(want[i].op);
        ASSERT_TRUE(in != NULL);
        ASSERT_EQ_INT(in->op, want[i].op);
        ASSERT_EQ_STR(in->name, want[i].name);
        ASSERT_EQ_STR(in->method, want[i].method);
        ASSERT_EQ_INT(in->prefix, want[i].prefix);
        ASSERT_EQ_INT(in->is_write, want[i].write);
        ASSERT_EQ_INT(in->has_body, want[i].body);
        ASSERT_EQ_INT(whreq_op_from_name(want[i].name, strlen(want[i].name)), want[i].op);

        char t[128];
        snprintf(t, sizeof t, "/webhdfs/v1/p?op=%s", want[i].name);
        whreq r;
        parse_ok(want[i].method, t, &r);
        ASSERT_EQ_INT(r.op, want[i].op);
        whreq_free(&r);
    }
    ASSERT_TRUE(whreq_opinfo_get(WH_OP_UNKNOWN) == NULL);
    ASSERT_TRUE(whreq_opinfo_get(WH_OP__COUNT) == NULL);
    ASSERT_TRUE(whreq_opinfo_get((whreq_op)-1) == NULL);
    ASSERT_EQ_INT(whreq_op_from_name("liststatus", 10), WH_OP_LISTSTATUS);
    ASSERT_EQ_INT(whreq_op_from_name("LISTSTATUSX", 10), WH_OP_LISTSTATUS); /* length-bounded */
    ASSERT_EQ_INT(whreq_op_from_name("LISTSTATU", 9), WH_OP_UNKNOWN);
    ASSERT_EQ_INT(whreq_op_from_name("OPEN\0", 5), WH_OP_UNKNOWN);
    ASSERT_EQ_INT(whreq_op_from_name(NULL, 0), WH_OP_UNKNOWN);
}

TEST(dot_segments_rejected)
{
    static const char *const t[] = {
        "/webhdfs/v1/a/../b?op=OPEN",       "/webhdfs/v1/a/./b?op=OPEN",     "/webhdfs/v1/..?op=OPEN",
        "/webhdfs/v1/.?op=OPEN",            "/webhdfs/v1/a/%2E%2E/b?op=OPEN", "/webhdfs/v1/a/%2e%2E?op=OPEN",
        "/webhdfs/v1/%2Fa%2F..%2Fb?op=OPEN", "/webhdfs/v1/a/.%2e/b?op=OPEN",  "/webhdfs/v1/..%2F..%2Fetc?op=OPEN",
        "/webhdfs/v1/a/%2E/b?op=OPEN",
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        BAD_ARG("GET", t[i]);
}

TEST(control_characters_rejected)
{
    static const char *const t[] = {
        "/webhdfs/v1/a%00b?op=OPEN",         "/webhdfs/v1/a%0D%0AX-Evil:%201?op=OPEN", "/webhdfs/v1/a%0a?op=OPEN",
        "/webhdfs/v1/a%7F?op=OPEN",          "/webhdfs/v1/a%09b?op=OPEN",              "/webhdfs/v1/a\r\nb?op=OPEN",
        "/webhdfs/v1/a?op=OPEN&x=%0D%0A",     "/webhdfs/v1/a?op=OPEN&x%0A=1",          "/webhdfs/v1/a?op=OPEN&x=\n",
        "/webhdfs/v1/a?op=RENAME%00&d=1",
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        BAD_ARG(strstr(t[i], "RENAME") ? "PUT" : "GET", t[i]);
}

TEST(malformed_escapes_rejected)
{
    BAD_ARG("GET", "/webhdfs/v1/a%G1?op=OPEN");
    BAD_ARG("GET", "/webhdfs/v1/a%?op=OPEN");
    BAD_ARG("GET", "/webhdfs/v1/a%2?op=OPEN");
    BAD_ARG("GET", "/webhdfs/v1/a?op=OPEN&offset=%");
    BAD_ARG("GET", "/webhdfs/v1/a?op=OPEN&%zz=1");
}

TEST(invalid_utf8_path_rejected)
{
    BAD_ARG("GET", "/webhdfs/v1/a%C3%28?op=OPEN");   /* bad continuation */
    BAD_ARG("GET", "/webhdfs/v1/a%FF?op=OPEN");      /* never valid */
    BAD_ARG("GET", "/webhdfs/v1/a%C0%AF?op=OPEN");   /* overlong '/' */
    BAD_ARG("GET", "/webhdfs/v1/a%ED%A0%80?op=OPEN"); /* surrogate */
    BAD_ARG("GET", "/webhdfs/v1/a%E2%82?op=OPEN");   /* truncated */
    BAD_ARG("GET", "/webhdfs/v1/a\xC3?op=OPEN");     /* raw, truncated */
    whreq r;
    parse_ok("GET", "/webhdfs/v1/%E6%97%A5%F0%9F%98%80\xC3\xA9?op=OPEN", &r);
    ASSERT_EQ_STR(r.path, "/\xE6\x97\xA5\xF0\x9F\x98\x80\xC3\xA9");
    whreq_free(&r);
}

TEST(length_limits)
{
    char t[3 * WHREQ_MAX_PATH];
    /* One segment of exactly WHREQ_MAX_SEGMENT bytes is fine, one byte more is not. */
    int n = snprintf(t, sizeof t, "/webhdfs/v1/");
    memset(t + n, 's', WHREQ_MAX_SEGMENT);
    snprintf(t + n + WHREQ_MAX_SEGMENT, sizeof t - (size_t)n - WHREQ_MAX_SEGMENT, "?op=OPEN");
    whreq r;
    parse_ok("GET", t, &r);
    ASSERT_EQ_INT(strlen(r.path), WHREQ_MAX_SEGMENT + 1);
    whreq_free(&r);
    memset(t + n, 's', WHREQ_MAX_SEGMENT + 1);
    snprintf(t + n + WHREQ_MAX_SEGMENT + 1, sizeof t - (size_t)n - WHREQ_MAX_SEGMENT - 1, "?op=OPEN");
    BAD_ARG("GET", t);

    /* A path of exactly WHREQ_MAX_PATH bytes (40 x "/" + 99 chars, then "/" + 95 chars). */
    n = snprintf(t, sizeof t, "/webhdfs/v1");
    for (int i = 0; i < 40; i++) {
        t[n++] = '/';
        memset(t + n, 'a' + i % 26, 99);
        n += 99;
    }
    t[n++] = '/';
    memset(t + n, 'z', 95);
    n += 95;
    snprintf(t + n, sizeof t - (size_t)n, "?op=OPEN");
    parse_ok("GET", t, &r);
    ASSERT_EQ_INT(strlen(r.path), WHREQ_MAX_PATH);
    whreq_free(&r);
    t[n] = 'z';
    snprintf(t + n + 1, sizeof t - (size_t)n - 1, "?op=OPEN");
    BAD_ARG("GET", t);

    /* Encoded slashes that collapse are still bounded, without crashing. */
    n = snprintf(t, sizeof t, "/webhdfs/v1/");
    for (int i = 0; i < WHREQ_MAX_PATH / 3 * 2; i++)
        n += snprintf(t + n, sizeof t - (size_t)n, "%%2F");
    snprintf(t + n, sizeof t - (size_t)n, "x?op=OPEN");
    parse_ok("GET", t, &r);
    ASSERT_EQ_STR(r.path, "/x");
    whreq_free(&r);
}

TEST(value_length_limit)
{
    size_t big = WHREQ_MAX_VALUE + 100;
    char *t = malloc(big + 64);
    ASSERT_TRUE(t != NULL);
    int n = snprintf(t, 64, "/webhdfs/v1/a?op=OPEN&x=");
    memset(t + n, 'v', WHREQ_MAX_VALUE);
    t[n + WHREQ_MAX_VALUE] = '\0';
    whreq r;
    parse_ok("GET", t, &r);
    ASSERT_EQ_INT(strlen(whreq_param_get(&r, "x")), WHREQ_MAX_VALUE);
    whreq_free(&r);
    t[n + WHREQ_MAX_VALUE] = 'v';
    t[n + WHREQ_MAX_VALUE + 1] = '\0';
    BAD_ARG("GET", t);
    free(t);
}

TEST(repeated_and_valueless_params)
{
    whreq r;
    parse_ok("PUT", "/webhdfs/v1/d?op=MKDIRS&permission=755&PERMISSION=700&flag&&=orphan&empty=", &r);
    ASSERT_EQ_STR(whreq_param_get(&r, "permission"), "755");
    ASSERT_EQ_STR(whreq_param_get(&r, "flag"), "");
    ASSERT_EQ_STR(whreq_param_get(&r, "empty"), "");
    ASSERT_TRUE(whreq_param_get(&r, "") == NULL);
    ASSERT_TRUE(whreq_param_get(&r, "absent") == NULL);
    ASSERT_EQ_INT(r.nparams, 4); /* op, permission, flag, empty */
    whreq_free(&r);
    /* The op itself: the first one wins. */
    parse_ok("GET", "/webhdfs/v1/d?op=OPEN&op=CREATE", &r);
    ASSERT_EQ_INT(r.op, WH_OP_OPEN);
    whreq_free(&r);
}

TEST(parameter_count_limit)
{
    char t[4096];
    int n = snprintf(t, sizeof t, "/webhdfs/v1/a?op=OPEN");
    for (int i = 1; i < WHREQ_MAX_PARAMS; i++)
        n += snprintf(t + n, sizeof t - (size_t)n, "&p%d=%d", i, i);
    whreq r;
    parse_ok("GET", t, &r);
    ASSERT_EQ_INT(r.nparams, WHREQ_MAX_PARAMS);
    ASSERT_EQ_STR(whreq_param_get(&r, "p63"), "63");
    whreq_free(&r);
    snprintf(t + n, sizeof t - (size_t)n, "&one=more");
    BAD_ARG("GET", t);
}

TEST(bool_getter)
{
    whreq r;
    whreq_err e = {0};
    parse_ok("DELETE", "/webhdfs/v1/d?op=DELETE&recursive=True&a=FALSE&b=&c=yes&d=1", &r);
    bool v = false;
    ASSERT_EQ_INT(whreq_get_bool(&r, "recursive", false, &v, &e), 0);
    ASSERT_TRUE(v);
    ASSERT_EQ_INT(whreq_get_bool(&r, "a", true, &v, &e), 0);
    ASSERT_TRUE(!v);
    ASSERT_EQ_INT(whreq_get_bool(&r, "b", true, &v, &e), 0); /* empty: default */
    ASSERT_TRUE(v);
    ASSERT_EQ_INT(whreq_get_bool(&r, "missing", true, &v, &e), 0);
    ASSERT_TRUE(v);
    ASSERT_EQ_INT(whreq_get_bool(&r, "c", false, &v, &e), -1);
    ASSERT_EQ_INT(e.status, 400);
    ASSERT_EQ_STR(e.exception, "IllegalArgumentException");
    ASSERT_TRUE(strstr(e.message, "\"c\"") != NULL && strstr(e.message, "yes") != NULL);
    ASSERT_EQ_INT(whreq_get_bool(&r, "d", false, &v, &e), -1);
    whreq_free(&r);
}

TEST(i64_getter)
{
    whreq r;
    whreq_err e = {0};
    parse_ok("GET", "/webhdfs/v1/f?op=OPEN&a=0&b=-1&c=9223372036854775807&d=-9223372036854775808"
                    "&e=9223372036854775808&f=-9223372036854775809&g=12a&h=%2B7&i=0x10&j=-&k=99999999999999999999999"
                    "&l=%201&m=007&n=1.5&o=",
             &r);
    int64_t v = 0;
    ASSERT_EQ_INT(whreq_get_i64(&r, "a", 5, &v, &e), 0);
    ASSERT_EQ_INT(v, 0);
    ASSERT_EQ_INT(whreq_get_i64(&r, "b", 5, &v, &e), 0);
    ASSERT_EQ_INT(v, -1);
    ASSERT_EQ_INT(whreq_get_i64(&r, "c", 5, &v, &e), 0);
    ASSERT_TRUE(v == INT64_MAX);
    ASSERT_EQ_INT(whreq_get_i64(&r, "d", 5, &v, &e), 0);
    ASSERT_TRUE(v == INT64_MIN);
    ASSERT_EQ_INT(whreq_get_i64(&r, "h", 5, &v, &e), 0);
    ASSERT_EQ_INT(v, 7);
    ASSERT_EQ_INT(whreq_get_i64(&r, "m", 5, &v, &e), 0);
    ASSERT_EQ_INT(v, 7);
    ASSERT_EQ_INT(whreq_get_i64(&r, "o", 5, &v, &e), 0);
    ASSERT_EQ_INT(v, 5);
    ASSERT_EQ_INT(whreq_get_i64(&r, "missing", -3, &v, &e), 0);
    ASSERT_EQ_INT(v, -3);
    static const char *const bad[] = {"e", "f", "g", "i", "j", "k", "l", "n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        memset(&e, 0, sizeof e);
        if (whreq_get_i64(&r, bad[i], 5, &v, &e) != -1) TH_FAIL_AT("param %s accepted as %lld", bad[i], (long long)v);
        ASSERT_EQ_INT(v, 42); /* untouched on failure */
        ASSERT_EQ_INT(e.status, 400);
        ASSERT_EQ_STR(e.exception, "IllegalArgumentException");
    }
    whreq_free(&r);
}

TEST(sync_getter)
{
    whreq r;
    whreq_err e = {0};
    whreq_sync s;
    parse_ok("POST", "/webhdfs/v1/f?op=APPEND&syncFlag=metadata", &r);
    ASSERT_EQ_INT(whreq_get_sync(&r, WH_SYNC_CLOSE, &s, &e), 0);
    ASSERT_EQ_INT(s, WH_SYNC_METADATA);
    whreq_free(&r);
    parse_ok("POST", "/webhdfs/v1/f?op=APPEND&SYNCFLAG=DATA", &r);
    ASSERT_EQ_INT(whreq_get_sync(&r, WH_SYNC_CLOSE, &s, &e), 0);
    ASSERT_EQ_INT(s, WH_SYNC_DATA);
    whreq_free(&r);
    parse_ok("POST", "/webhdfs/v1/f?op=APPEND&syncflag=Close", &r);
    ASSERT_EQ_INT(whreq_get_sync(&r, WH_SYNC_DATA, &s, &e), 0);
    ASSERT_EQ_INT(s, WH_SYNC_CLOSE);
    whreq_free(&r);
    parse_ok("POST", "/webhdfs/v1/f?op=APPEND", &r);
    ASSERT_EQ_INT(whreq_get_sync(&r, WH_SYNC_CLOSE, &s, &e), 0);
    ASSERT_EQ_INT(s, WH_SYNC_CLOSE);
    whreq_free(&r);
    parse_ok("POST", "/webhdfs/v1/f?op=APPEND&syncFlag=FLUSH", &r);
    ASSERT_EQ_INT(whreq_get_sync(&r, WH_SYNC_CLOSE, &s, &e), -1);
    ASSERT_EQ_INT(e.status, 400);
    ASSERT_EQ_STR(e.exception, "IllegalArgumentException");
    whreq_free(&r);
}

TEST(norm_path)
{
    static const struct {
        const char *in, *out;
    } ok[] = {{"dir/file", "/dir/file"}, {"/dir/file", "/dir/file"}, {"//a//b/", "/a/b"},
              {"/", "/"},                {"", "/"},                   {"a b+c", "/a b+c"},
              {"...", "/..."}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *p = NULL;
        whreq_err e = {0};
        ASSERT_EQ_INT(whreq_norm_path(ok[i].in, &p, &e), 0);
        ASSERT_EQ_STR(p, ok[i].out);
        free(p);
    }
    static const char *const bad[] = {"..", "a/../b", "./a", "a/.", "a\r\nb", "a\x01", "a\x7f", "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p = NULL;
        whreq_err e = {0};
        ASSERT_EQ_INT(whreq_norm_path(bad[i], &p, &e), -1);
        ASSERT_TRUE(p == NULL);
        ASSERT_EQ_INT(e.status, 400);
        ASSERT_EQ_STR(e.exception, "IllegalArgumentException");
    }
    char *p = NULL;
    whreq_err e = {0};
    ASSERT_EQ_INT(whreq_norm_path(NULL, &p, &e), -1);
}

TEST(fail_fills_error)
{
    whreq_err e;
    ASSERT_EQ_INT(whreq_fail(&e, 404, "FileNotFoundException", "File %s does not exist: %d", "/x", 7), -1);
    ASSERT_EQ_INT(e.status, 404);
    ASSERT_EQ_STR(e.exception, "FileNotFoundException");
    ASSERT_EQ_STR(e.message, "File /x does not exist: 7");
    char big[600];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_EQ_INT(whreq_fail(&e, 400, "IllegalArgumentException", "%s", big), -1);
    ASSERT_EQ_INT(strlen(e.message), sizeof e.message - 1); /* truncated, terminated */
    ASSERT_EQ_INT(whreq_fail(NULL, 400, "X", "y"), -1);
}

TEST(err_json)
{
    whreq_err e;
    dbuf b;
    dbuf_init(&b, 4096);
    whreq_fail(&e, 404, "FileNotFoundException", "File/Folder does not exist: /Test");
    ASSERT_EQ_INT(whreq_err_json(&e, &b), 0);
    ASSERT_EQ_STR(b.data, "{\"RemoteException\":{\"exception\":\"FileNotFoundException\",\"javaClassName\":"
                          "\"java.io.FileNotFoundException\",\"message\":\"File/Folder does not exist: /Test\"}}");

    static const struct {
        const char *exc, *fq;
    } m[] = {
        {"IllegalArgumentException", "java.lang.IllegalArgumentException"},
        {"UnsupportedOperationException", "java.lang.UnsupportedOperationException"},
        {"AccessControlException", "org.apache.hadoop.security.AccessControlException"},
        {"FileAlreadyExistsException", "org.apache.hadoop.fs.FileAlreadyExistsException"},
        {"IOException", "java.io.IOException"},
        {"SecurityException", "java.lang.SecurityException"},
        {"RuntimeException", "java.lang.RuntimeException"},
        {"ParentNotDirectoryException", "org.apache.hadoop.fs.ParentNotDirectoryException"},
        {"BadOffsetException", "org.apache.hadoop.fs.adl.BadOffsetException"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        dbuf_reset(&b);
        whreq_fail(&e, 400, m[i].exc, "x");
        ASSERT_EQ_INT(whreq_err_json(&e, &b), 0);
        char want[512];
        snprintf(want, sizeof want,
                 "{\"RemoteException\":{\"exception\":\"%s\",\"javaClassName\":\"%s\",\"message\":\"x\"}}", m[i].exc,
                 m[i].fq);
        ASSERT_EQ_STR(b.data, want);
    }

    /* Unknown exception names get no javaClassName; message bytes are escaped. */
    dbuf_reset(&b);
    whreq_fail(&e, 500, "WeirdException", "q\"b\\s\n\r\t\x01 \xC3\xA9 \xFF end");
    ASSERT_EQ_INT(whreq_err_json(&e, &b), 0);
    ASSERT_EQ_STR(b.data, "{\"RemoteException\":{\"exception\":\"WeirdException\",\"message\":"
                          "\"q\\\"b\\\\s\\u000a\\u000d\\u0009\\u0001 \xC3\xA9 \\ufffd end\"}}");

    /* A message cut in the middle of a UTF-8 sequence still renders valid JSON. */
    dbuf_reset(&b);
    e.exception = "IOException";
    memset(e.message, 'a', sizeof e.message);
    e.message[sizeof e.message - 2] = '\xC3';
    e.message[sizeof e.message - 1] = '\0';
    ASSERT_EQ_INT(whreq_err_json(&e, &b), 0);
    ASSERT_TRUE(strstr(b.data, "a\\ufffd\"}}") != NULL);

    /* The output limit is honoured. */
    dbuf small;
    dbuf_init(&small, 20);
    ASSERT_EQ_INT(whreq_err_json(&e, &small), -E2BIG);
    dbuf_free(&small);
    dbuf_free(&b);
}

TEST(free_is_idempotent)
{
    whreq r;
    parse_ok("GET", "/webhdfs/v1/a?op=OPEN&x=1", &r);
    whreq_free(&r);
    whreq_free(&r);
    whreq_free(NULL);
    whreq_err e;
    ASSERT_EQ_INT(whreq_parse("GET", "/nope", &r, &e), -1);
    whreq_free(&r); /* harmless after a failed parse */
    ASSERT_EQ_INT(whreq_parse(NULL, "/webhdfs/v1/?op=OPEN", &r, &e), -1);
    ASSERT_EQ_INT(whreq_parse("GET", NULL, &r, &e), -1);
}

TESTS(T(parses_create), T(encoded_slash_is_a_separator), T(double_slashes_collapse), T(root_forms),
      T(prefix_must_be_at_the_start), T(ext_prefix_any_case), T(op_under_either_prefix_is_accepted),
      T(path_plus_stays_plus_query_plus_is_space), T(path_special_characters_survive), T(param_names_case_insensitive),
      T(op_values_case_insensitive), T(unknown_op_is_hadoop_illegal_argument), T(wrong_method_is_illegal_argument),
      T(op_table_matches_protocol), T(dot_segments_rejected), T(control_characters_rejected),
      T(malformed_escapes_rejected), T(invalid_utf8_path_rejected), T(length_limits), T(value_length_limit),
      T(repeated_and_valueless_params), T(parameter_count_limit), T(bool_getter), T(i64_getter), T(sync_getter),
      T(norm_path), T(fail_fills_error), T(err_json), T(free_is_idempotent))
