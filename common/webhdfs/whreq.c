/*
 * whreq: the WebHDFS request parser. whreq_parse splits the raw request target at the first '?',
 * matches the /webhdfs/v1 or /WebHdfsExt prefix (any case) at the very start, percent-decodes the
 * rest once and normalises it segment by segment, then splits and form-decodes the query into
 * lower-cased names and values. The op is looked up case-insensitively and checked against the
 * HTTP method; failures produce the same IllegalArgumentException text Hadoop's EnumParam does
 * ("Invalid value for webhdfs parameter "op": No enum constant ...PutOpParam.Op.FOO").
 *
 * Everything decoded is bounded (WHREQ_MAX_PATH, WHREQ_MAX_SEGMENT, WHREQ_MAX_VALUE,
 * WHREQ_MAX_PARAMS), refuses control bytes (so CR/LF/NUL never survive) and, for paths, invalid
 * UTF-8 (paths end up in JSON and on disk). Logs nothing.
 */
#include "whreq.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "urlcodec.h"

#define WHREQ_EXC_ARG "IllegalArgumentException"

static const whreq_opinfo whreq_ops[WH_OP__COUNT] = {
    [WH_OP_CREATE] = {WH_OP_CREATE, "CREATE", "PUT", WH_PREFIX_WEBHDFS, true, true},
    [WH_OP_APPEND] = {WH_OP_APPEND, "APPEND", "POST", WH_PREFIX_WEBHDFS, true, true},
    [WH_OP_CONCURRENTAPPEND] = {WH_OP_CONCURRENTAPPEND, "CONCURRENTAPPEND", "POST", WH_PREFIX_EXT, true, true},
    [WH_OP_MKDIRS] = {WH_OP_MKDIRS, "MKDIRS", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_RENAME] = {WH_OP_RENAME, "RENAME", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_DELETE] = {WH_OP_DELETE, "DELETE", "DELETE", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_CONCAT] = {WH_OP_CONCAT, "CONCAT", "POST", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_MSCONCAT] = {WH_OP_MSCONCAT, "MSCONCAT", "POST", WH_PREFIX_WEBHDFS, true, true},
    [WH_OP_SETPERMISSION] = {WH_OP_SETPERMISSION, "SETPERMISSION", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_SETOWNER] = {WH_OP_SETOWNER, "SETOWNER", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_SETACL] = {WH_OP_SETACL, "SETACL", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_MODIFYACLENTRIES] = {WH_OP_MODIFYACLENTRIES, "MODIFYACLENTRIES", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_REMOVEACLENTRIES] = {WH_OP_REMOVEACLENTRIES, "REMOVEACLENTRIES", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_REMOVEACL] = {WH_OP_REMOVEACL, "REMOVEACL", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_REMOVEDEFAULTACL] = {WH_OP_REMOVEDEFAULTACL, "REMOVEDEFAULTACL", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_SETTIMES] = {WH_OP_SETTIMES, "SETTIMES", "PUT", WH_PREFIX_WEBHDFS, true, false},
    [WH_OP_SETEXPIRY] = {WH_OP_SETEXPIRY, "SETEXPIRY", "PUT", WH_PREFIX_EXT, true, false},
    [WH_OP_OPEN] = {WH_OP_OPEN, "OPEN", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_GETFILESTATUS] = {WH_OP_GETFILESTATUS, "GETFILESTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_MSGETFILESTATUS] = {WH_OP_MSGETFILESTATUS, "MSGETFILESTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_LISTSTATUS] = {WH_OP_LISTSTATUS, "LISTSTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_MSLISTSTATUS] = {WH_OP_MSLISTSTATUS, "MSLISTSTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_GETCONTENTSUMMARY] = {WH_OP_GETCONTENTSUMMARY, "GETCONTENTSUMMARY", "GET", WH_PREFIX_WEBHDFS, false,
                                 false},
    [WH_OP_GETACLSTATUS] = {WH_OP_GETACLSTATUS, "GETACLSTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_MSGETACLSTATUS] = {WH_OP_MSGETACLSTATUS, "MSGETACLSTATUS", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_CHECKACCESS] = {WH_OP_CHECKACCESS, "CHECKACCESS", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_GETFILECHECKSUM] = {WH_OP_GETFILECHECKSUM, "GETFILECHECKSUM", "GET", WH_PREFIX_WEBHDFS, false, false},
    [WH_OP_GETHOMEDIRECTORY] = {WH_OP_GETHOMEDIRECTORY, "GETHOMEDIRECTORY", "GET", WH_PREFIX_WEBHDFS, false,
                                false},
    [WH_OP_LISTSTATUS_BATCH] = {WH_OP_LISTSTATUS_BATCH, "LISTSTATUS_BATCH", "GET", WH_PREFIX_WEBHDFS, false, false},
};

const whreq_opinfo *whreq_opinfo_get(whreq_op op)
{
    if ((int)op <= (int)WH_OP_UNKNOWN || (int)op >= (int)WH_OP__COUNT) return NULL;
    return &whreq_ops[op];
}

whreq_op whreq_op_from_name(const char *name, size_t len)
{
    if (!name) return WH_OP_UNKNOWN;
    for (int i = WH_OP_UNKNOWN + 1; i < WH_OP__COUNT; i++) {
        const char *canon = whreq_ops[i].name;
        if (strlen(canon) == len && strncasecmp(name, canon, len) == 0) return (whreq_op)i;
    }
    return WH_OP_UNKNOWN;
}

int whreq_fail(whreq_err *err, int status, const char *exception, const char *fmt, ...)
{
    if (!err) return -1;
    err->status = status;
    err->exception = exception;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    if (n < 0) err->message[0] = '\0';
    return -1;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one (overlong, surrogate, > U+10FFFF). */
static size_t whreq_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return need;
}

static bool whreq_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = whreq_utf8_seq(p + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

/*
 * Normalise the decoded path bytes d[0..n) into out (cleared first): split on '/', drop empty
 * segments, refuse "." / "..", control bytes, invalid UTF-8 and over-long segments or paths.
 */
static int whreq_norm(const char *d, size_t n, dbuf *out, whreq_err *err)
{
    dbuf_reset(out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c < 0x20 || c == 0x7F)
            return whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid path name: control character in path");
    }
    if (!whreq_utf8_valid(d, n))
        return whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid path name: path is not valid UTF-8");
    size_t i = 0;
    while (i < n) {
        while (i < n && d[i] == '/')
            i++;
        if (i >= n) break;
        size_t s = i;
        while (i < n && d[i] != '/')
            i++;
        size_t sl = i - s;
        if (sl > WHREQ_MAX_SEGMENT)
            return whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid path name: a path component is longer than %d bytes",
                              WHREQ_MAX_SEGMENT);
        if ((sl == 1 && d[s] == '.') || (sl == 2 && d[s] == '.' && d[s + 1] == '.'))
            return whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid path name: \".\" and \"..\" are not allowed");
        int rc = dbuf_add(out, "/", 1);
        if (!rc) rc = dbuf_add(out, d + s, sl);
        if (rc == -E2BIG)
            return whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid path name: path is longer than %d bytes",
                              WHREQ_MAX_PATH);
        if (rc) return whreq_fail(err, 500, "RuntimeException", "Out of memory");
    }
    if (out->len == 0) {
        int rc = dbuf_add(out, "/", 1);
        if (rc) return whreq_fail(err, 500, "RuntimeException", "Out of memory");
    }
    return 0;
}

int whreq_norm_path(const char *in, char **out, whreq_err *err)
{
    dbuf b;
    dbuf_init(&b, WHREQ_MAX_PATH);
    if (!in) {
        dbuf_free(&b);
        return whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid path name: missing path");
    }
    if (whreq_norm(in, strlen(in), &b, err)) {
        dbuf_free(&b);
        return -1;
    }
    char *p = dbuf_take(&b);
    if (!p) return whreq_fail(err, 500, "RuntimeException", "Out of memory");
    *out = p;
    return 0;
}

/* Length of the WebHDFS prefix at the start of path (of length n), recording which one; 0 if none. */
static size_t whreq_match_prefix(const char *path, size_t n, whreq_prefix *pfx)
{
    static const struct {
        const char *s;
        whreq_prefix p;
    } pre[] = {{"/webhdfs/v1", WH_PREFIX_WEBHDFS}, {"/webhdfsext", WH_PREFIX_EXT}};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
        size_t l = strlen(pre[i].s);
        if (n < l || strncasecmp(path, pre[i].s, l) != 0) continue;
        if (n > l && path[l] != '/') continue;
        *pfx = pre[i].p;
        return l;
    }
    return 0;
}

/* Hadoop names the op enum after the HTTP method: GetOpParam, PutOpParam, PostOpParam, DeleteOpParam. */
static const char *whreq_enum_class(const char *method)
{
    if (strcmp(method, "GET") == 0) return "GetOpParam";
    if (strcmp(method, "PUT") == 0) return "PutOpParam";
    if (strcmp(method, "POST") == 0) return "PostOpParam";
    if (strcmp(method, "DELETE") == 0) return "DeleteOpParam";
    return NULL;
}

/* "Invalid value for webhdfs parameter "op": No enum constant ...<Cls>.Op.<VALUE upper-cased>" */
static int whreq_fail_op(whreq_err *err, const char *cls, const char *value)
{
    char up[65];
    size_t i = 0;
    for (; value[i] && i < sizeof up - 1; i++) {
        unsigned char c = (unsigned char)value[i];
        up[i] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    up[i] = '\0';
    return whreq_fail(err, 400, WHREQ_EXC_ARG,
                      "Invalid value for webhdfs parameter \"op\": No enum constant "
                      "org.apache.hadoop.hdfs.web.resources.%s.Op.%s",
                      cls, up);
}

/* Decode and store the query parameters of raw query q into r. */
static int whreq_parse_query(const char *q, whreq *r, whreq_err *err)
{
    url_param raw[WHREQ_MAX_PARAMS];
    int n = url_split_query(q, raw, WHREQ_MAX_PARAMS);
    if (n < 0)
        return whreq_fail(err, 400, WHREQ_EXC_ARG, "Too many query parameters (at most %d)", WHREQ_MAX_PARAMS);
    dbuf name, value;
    dbuf_init(&name, WHREQ_MAX_NAME);
    dbuf_init(&value, WHREQ_MAX_VALUE);
    int rc = -1;
    for (int i = 0; i < n; i++) {
        int drc = url_decode(raw[i].name, raw[i].name_len, URL_FORM | URL_NO_CTL, &name);
        if (drc == -E2BIG) {
            whreq_fail(err, 400, WHREQ_EXC_ARG, "Query parameter name too long");
            goto out;
        }
        if (drc) {
            whreq_fail(err, 400, WHREQ_EXC_ARG, "Malformed query parameter name");
            goto out;
        }
        if (name.len == 0) continue; /* "=x": nothing to name it by */
        for (size_t k = 0; k < name.len; k++) {
            char c = name.data[k];
            if (c >= 'A' && c <= 'Z') name.data[k] = (char)(c - 'A' + 'a');
        }
        if (whreq_param_get(r, name.data)) continue; /* a repeated parameter keeps its first value */
        drc = url_decode(raw[i].value ? raw[i].value : "", raw[i].value_len, URL_FORM | URL_NO_CTL, &value);
        if (drc == -E2BIG) {
            whreq_fail(err, 400, WHREQ_EXC_ARG, "Value of webhdfs parameter \"%.64s\" is too long", name.data);
            goto out;
        }
        if (drc) {
            whreq_fail(err, 400, WHREQ_EXC_ARG, "Malformed value for webhdfs parameter \"%.64s\"", name.data);
            goto out;
        }
        whreq_param *p = &r->params[r->nparams];
        p->name = dbuf_take(&name);
        p->value = dbuf_take(&value);
        if (!p->name || !p->value) {
            free(p->name);
            free(p->value);
            p->name = p->value = NULL;
            whreq_fail(err, 500, "RuntimeException", "Out of memory");
            goto out;
        }
        r->nparams++;
    }
    rc = 0;
out:
    dbuf_free(&name);
    dbuf_free(&value);
    return rc;
}

int whreq_parse(const char *method, const char *raw_target, whreq *out, whreq_err *err)
{
    dbuf dec, norm;
    dbuf_init(&dec, 4 * (size_t)WHREQ_MAX_PATH);
    dbuf_init(&norm, WHREQ_MAX_PATH);
    memset(out, 0, sizeof *out);
    int rc = -1;
    if (!method || !raw_target) {
        whreq_fail(err, 400, WHREQ_EXC_ARG, "Missing method or request target");
        goto out;
    }
    out->method = method;

    const char *qm = strchr(raw_target, '?');
    size_t plen = qm ? (size_t)(qm - raw_target) : strlen(raw_target);
    size_t pfx = whreq_match_prefix(raw_target, plen, &out->prefix);
    if (!pfx) {
        whreq_fail(err, 404, "FileNotFoundException", "Path must start with /webhdfs/v1 or /WebHdfsExt");
        goto out;
    }
    int drc = url_decode(raw_target + pfx, plen - pfx, URL_NO_CTL, &dec);
    if (drc == -E2BIG) {
        whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid path name: path is longer than %d bytes", WHREQ_MAX_PATH);
        goto out;
    }
    if (drc) {
        whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid path name: malformed escape or control character");
        goto out;
    }
    if (whreq_norm(dec.data, dec.len, &norm, err)) goto out;
    out->path = dbuf_take(&norm);
    if (!out->path) {
        whreq_fail(err, 500, "RuntimeException", "Out of memory");
        goto out;
    }

    if (qm && whreq_parse_query(qm + 1, out, err)) goto out;

    const char *cls = whreq_enum_class(method);
    if (!cls) {
        whreq_fail(err, 400, WHREQ_EXC_ARG, "Unsupported HTTP method \"%.16s\" for webhdfs", method);
        goto out;
    }
    const char *opv = whreq_param_get(out, "op");
    if (!opv) {
        whreq_fail(err, 400, WHREQ_EXC_ARG, "Invalid value for webhdfs parameter \"op\": op is missing");
        goto out;
    }
    out->op = whreq_op_from_name(opv, strlen(opv));
    out->info = whreq_opinfo_get(out->op);
    if (!out->info || strcmp(out->info->method, method) != 0) {
        whreq_fail_op(err, cls, opv);
        goto out;
    }
    rc = 0;
out:
    dbuf_free(&dec);
    dbuf_free(&norm);
    if (rc) whreq_free(out);
    return rc;
}

void whreq_free(whreq *r)
{
    if (!r) return;
    for (int i = 0; i < r->nparams && i < WHREQ_MAX_PARAMS; i++) {
        free(r->params[i].name);
        free(r->params[i].value);
    }
    free(r->path);
    memset(r, 0, sizeof *r);
}

const char *whreq_param_get(const whreq *r, const char *lname)
{
    for (int i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, lname) == 0) return r->params[i].value;
    return NULL;
}

int whreq_get_bool(const whreq *r, const char *lname, bool def, bool *out, whreq_err *err)
{
    const char *v = whreq_param_get(r, lname);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    if (strcasecmp(v, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(v, "false") == 0) {
        *out = false;
        return 0;
    }
    return whreq_fail(err, 400, WHREQ_EXC_ARG,
                      "Invalid value for webhdfs parameter \"%.64s\": Failed to parse \"%.64s\" to Boolean.", lname, v);
}

/* Decimal int64 with an optional sign and nothing else (no spaces, no radix prefix). */
static int whreq_parse_i64(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') neg = (*p++ == '-');
    if (!*p) return -1;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

int whreq_get_i64(const whreq *r, const char *lname, int64_t def, int64_t *out, whreq_err *err)
{
    const char *v = whreq_param_get(r, lname);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    int64_t x;
    if (whreq_parse_i64(v, &x))
        return whreq_fail(err, 400, WHREQ_EXC_ARG,
                          "Invalid value for webhdfs parameter \"%.64s\": Failed to parse \"%.64s\" as a radix-10 "
                          "long integer.",
                          lname, v);
    *out = x;
    return 0;
}

int whreq_get_sync(const whreq *r, whreq_sync def, whreq_sync *out, whreq_err *err)
{
    static const char *const names[] = {"DATA", "METADATA", "CLOSE"};
    const char *v = whreq_param_get(r, "syncflag");
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            *out = (whreq_sync)i;
            return 0;
        }
    }
    return whreq_fail(err, 400, WHREQ_EXC_ARG,
                      "Invalid value for webhdfs parameter \"syncFlag\": \"%.64s\" is not one of DATA, METADATA, "
                      "CLOSE",
                      v);
}

/* Fully-qualified Java class for an exception short name; NULL when unknown. */
static const char *whreq_java_class(const char *exc)
{
    static const struct {
        const char *name, *fq;
    } map[] = {
        {"IllegalArgumentException", "java.lang.IllegalArgumentException"},
        {"UnsupportedOperationException", "java.lang.UnsupportedOperationException"},
        {"SecurityException", "java.lang.SecurityException"},
        {"RuntimeException", "java.lang.RuntimeException"},
        {"NullPointerException", "java.lang.NullPointerException"},
        {"IOException", "java.io.IOException"},
        {"FileNotFoundException", "java.io.FileNotFoundException"},
        {"AccessControlException", "org.apache.hadoop.security.AccessControlException"},
        {"FileAlreadyExistsException", "org.apache.hadoop.fs.FileAlreadyExistsException"},
        {"ParentNotDirectoryException", "org.apache.hadoop.fs.ParentNotDirectoryException"},
        {"PathIsNotEmptyDirectoryException", "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"},
        {"PathIsNotDirectoryException", "org.apache.hadoop.fs.PathIsNotDirectoryException"},
        {"InvalidPathException", "org.apache.hadoop.fs.InvalidPathException"},
        {"HadoopIllegalArgumentException", "org.apache.hadoop.HadoopIllegalArgumentException"},
        {"BadOffsetException", "org.apache.hadoop.fs.adl.BadOffsetException"},
        {"RetriableException", "org.apache.hadoop.ipc.RetriableException"},
        /* Not confirmed from a live service; named after BadOffsetException's package. */
        {"ThrottledException", "org.apache.hadoop.fs.adl.ThrottledException"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(exc, map[i].name) == 0) return map[i].fq;
    return NULL;
}

/* Append s[0..n) as a JSON string literal; invalid UTF-8 becomes U+FFFD. */
static int whreq_json_str(dbuf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = dbuf_add(out, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (!rc && i < n) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rc = dbuf_add(out, e, 2);
            i++;
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = dbuf_add(out, e, 6);
            i++;
        } else {
            size_t k = whreq_utf8_seq(p + i, n - i);
            if (k) {
                rc = dbuf_add(out, p + i, k);
                i += k;
            } else {
                rc = dbuf_add(out, "\\ufffd", 6);
                i++;
            }
        }
    }
    if (!rc) rc = dbuf_add(out, "\"", 1);
    return rc;
}

int whreq_err_json(const whreq_err *err, dbuf *out)
{
    const char *exc = err->exception ? err->exception : "RuntimeException";
    const char *fq = whreq_java_class(exc);
    int rc = dbuf_adds(out, "{\"RemoteException\":{\"exception\":");
    if (!rc) rc = whreq_json_str(out, exc, strlen(exc));
    if (!rc && fq) rc = dbuf_adds(out, ",\"javaClassName\":");
    if (!rc && fq) rc = whreq_json_str(out, fq, strlen(fq));
    if (!rc) rc = dbuf_adds(out, ",\"message\":");
    if (!rc) rc = whreq_json_str(out, err->message, strnlen(err->message, sizeof err->message));
    if (!rc) rc = dbuf_adds(out, "}}");
    return rc;
}
