/*
 * xlate: Gen1 (WebHDFS) ↔ Gen2 (DFS) translation, protocols.md §4. Builders fill an xlate_g2req with
 * the method, the encoded query and the extra headers of one Gen2 request; readers interpret Gen1 and
 * Gen2 answers (booleans, FileStatus, AclStatus, x-ms-acl, list entries, dates). Permissions and ACLs
 * go through common/acl so both sides use the same HDFS rules. Everything here is pure: the applier
 * (proxy/applier.c) does the I/O.
 */
#include "xlate.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acl.h"
#include "b64.h"
#include "urlcodec.h"

#define XL_STICKY 01000
#define XL_MAX_SOURCES 4096
#define XL_HDR_MAX (96 * 1024)  /* bytes of one header line we build (x-ms-acl: 64 entries) */

__attribute__((format(printf, 2, 3))) static int xl_fail(xlate_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- request building -------------------------------------------------------------------------- */

void xlate_g2req_free(xlate_g2req *r)
{
    free(r->query);
    for (int i = 0; i < r->nheaders; i++) free(r->headers[i]);
    memset(r, 0, sizeof *r);
}

/* Start a request: free what out held, set the method and the query (printf-style). */
__attribute__((format(printf, 4, 5))) static int req_begin(xlate_g2req *out, const char *method, xlate_err *err,
                                                           const char *qfmt, ...)
{
    xlate_g2req_free(out);
    out->method = method;
    dbuf q;
    dbuf_init(&q, XL_HDR_MAX);
    va_list ap;
    va_start(ap, qfmt);
    int rc = dbuf_vprintf(&q, qfmt, ap);
    va_end(ap);
    out->query = rc == 0 ? dbuf_take(&q) : NULL;
    dbuf_free(&q);
    if (!out->query) return xl_fail(err, "out of memory");
    return 0;
}

/* Add "Name: value". The value must not hold CR/LF (callers pass validated or encoded text). */
static int req_header(xlate_g2req *out, const char *name, const char *value, xlate_err *err)
{
    if (out->nheaders >= XLATE_MAX_HEADERS) return xl_fail(err, "too many headers");
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return xl_fail(err, "control character in %s", name);
    dbuf b;
    dbuf_init(&b, XL_HDR_MAX);
    if (dbuf_printf(&b, "%s: %s", name, value) != 0) {
        dbuf_free(&b);
        return xl_fail(err, "header %s too long", name);
    }
    char *line = dbuf_take(&b);
    dbuf_free(&b);
    if (!line) return xl_fail(err, "out of memory");
    out->headers[out->nheaders++] = line;
    out->headers[out->nheaders] = NULL;
    return 0;
}

/* Gen1 permission (1-4 octal digits) → 4-digit octal. */
static int perm4(const char *permission, char out[8], xlate_err *err)
{
    uint16_t mode;
    acl_err ae;
    if (acl_parse_octal(permission, &mode, &ae) != 0) return xl_fail(err, "%s", ae.message);
    snprintf(out, 8, "%04o", (unsigned)mode);
    return 0;
}

static int add_perm_umask(xlate_g2req *out, const char *permission, xlate_err *err)
{
    if (!permission || !*permission) return 0;
    char p[8];
    if (perm4(permission, p, err) != 0) return -1;
    if (req_header(out, "x-ms-permissions", p, err) != 0) return -1;
    return req_header(out, "x-ms-umask", "0000", err);
}

int xlate_create(bool overwrite, const char *permission, xlate_g2req *out, xlate_err *err)
{
    if (req_begin(out, "PUT", err, "resource=file") != 0) return -1;
    if (!overwrite && req_header(out, "If-None-Match", "*", err) != 0) return -1;
    return add_perm_umask(out, permission, err);
}

int xlate_mkdirs(const char *permission, xlate_g2req *out, xlate_err *err)
{
    if (req_begin(out, "PUT", err, "resource=directory") != 0) return -1;
    if (req_header(out, "If-None-Match", "*", err) != 0) return -1;
    return add_perm_umask(out, permission, err);
}

bool xlate_mkdirs_ok(long status, const char *existing_type)
{
    if (status == 201 || status == 200) return true;
    return status == 409 && existing_type && strcasecmp(existing_type, "directory") == 0;
}

bool xlate_already_exists(long status, const char *error_code)
{
    return status == 409 && error_code && strcmp(error_code, "PathAlreadyExists") == 0;
}

int xlate_append(uint64_t position, xlate_g2req *out, xlate_err *err)
{
    return req_begin(out, "PATCH", err, "action=append&position=%" PRIu64, position);
}

xlate_flush xlate_flush_policy(whreq_sync sync, uint64_t nbytes)
{
    switch (sync) {
    case WH_SYNC_CLOSE: return XLATE_FLUSH_CLOSE;
    case WH_SYNC_METADATA: return XLATE_FLUSH_OPEN;
    case WH_SYNC_DATA: return nbytes > 0 ? XLATE_FLUSH_OPEN : XLATE_FLUSH_NONE;
    }
    return XLATE_FLUSH_CLOSE;
}

int xlate_flush_req(uint64_t position, bool close, xlate_g2req *out, xlate_err *err)
{
    return req_begin(out, "PATCH", err, "action=flush&position=%" PRIu64 "&retainUncommittedData=false&close=%s",
                     position, close ? "true" : "false");
}

bool xlate_append_flush_ok(const char *x_ms_version)
{
    /* YYYY-MM-DD (cfg checks the form): dates compare as strings */
    return x_ms_version && strlen(x_ms_version) == 10 && strcmp(x_ms_version, XLATE_APPEND_FLUSH_VERSION) >= 0;
}

int xlate_append_flush(uint64_t position, bool close, xlate_g2req *out, xlate_err *err)
{
    return req_begin(out, "PATCH", err, "action=append&position=%" PRIu64 "&flush=true&close=%s", position,
                     close ? "true" : "false");
}

int xlate_rename_options(const char *renameoptions, bool *rename2, bool *overwrite, xlate_err *err)
{
    *rename2 = false;
    *overwrite = false;
    if (!renameoptions || !*renameoptions) return 0;
    *rename2 = true;
    const char *p = renameoptions;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 9 && strncasecmp(p, "OVERWRITE", 9) == 0)
            *overwrite = true;
        else if (!(len == 4 && strncasecmp(p, "NONE", 4) == 0) && !(len == 8 && strncasecmp(p, "TO_TRASH", 8) == 0))
            return xl_fail(err, "invalid renameoptions value");
        p = e ? e + 1 : p + len;
    }
    return 0;
}

int xlate_rename_target(const char *src, const char *dst, bool dst_is_dir, bool rename2, char *out, size_t cap)
{
    int n;
    if (dst_is_dir && !rename2) {
        const char *slash = strrchr(src, '/');
        const char *base = slash ? slash + 1 : src;
        n = snprintf(out, cap, "%s%s%s", dst, *dst ? "/" : "", base);
    } else {
        n = snprintf(out, cap, "%s", dst);
    }
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Append "&continuation=<encoded>" when a token is given. */
static int add_continuation(xlate_g2req *out, const char *continuation, xlate_err *err)
{
    if (!continuation || !*continuation) return 0;
    dbuf q;
    dbuf_init(&q, XL_HDR_MAX);
    int rc = dbuf_adds(&q, out->query);
    if (rc == 0) rc = dbuf_adds(&q, "&continuation=");
    if (rc == 0) rc = url_encode(continuation, false, &q);
    char *nq = rc == 0 ? dbuf_take(&q) : NULL;
    dbuf_free(&q);
    if (!nq) return xl_fail(err, "continuation token too long");
    free(out->query);
    out->query = nq;
    return 0;
}

int xlate_rename(const char *rename_source, bool overwrite, const char *continuation, xlate_g2req *out,
                 xlate_err *err)
{
    if (!rename_source || rename_source[0] != '/') return xl_fail(err, "bad rename source");
    if (req_begin(out, "PUT", err, "%s", "") != 0) return -1;
    if (add_continuation(out, continuation, err) != 0) return -1;
    if (out->query[0] == '&') memmove(out->query, out->query + 1, strlen(out->query));
    if (req_header(out, "x-ms-rename-source", rename_source, err) != 0) return -1;
    if (!overwrite && req_header(out, "If-None-Match", "*", err) != 0) return -1;
    return 0;
}

int xlate_delete(bool recursive, const char *continuation, xlate_g2req *out, xlate_err *err)
{
    if (req_begin(out, "DELETE", err, "recursive=%s", recursive ? "true" : "false") != 0) return -1;
    return add_continuation(out, continuation, err);
}

int xlate_setpermission(const char *permission, xlate_g2req *out, xlate_err *err)
{
    char p[8];
    if (!permission || !*permission) return xl_fail(err, "no permission given");
    if (perm4(permission, p, err) != 0) return -1;
    if (req_begin(out, "PATCH", err, "action=setAccessControl") != 0) return -1;
    return req_header(out, "x-ms-permissions", p, err);
}

int xlate_setowner(const char *owner, const char *group, xlate_g2req *out, xlate_err *err)
{
    bool o = owner && *owner, g = group && *group;
    if (!o && !g) return xl_fail(err, "neither owner nor group given");
    if (req_begin(out, "PATCH", err, "action=setAccessControl") != 0) return -1;
    if (o && req_header(out, "x-ms-owner", owner, err) != 0) return -1;
    if (g && req_header(out, "x-ms-group", group, err) != 0) return -1;
    return 0;
}

int xlate_getacl(xlate_g2req *out, xlate_err *err)
{
    return req_begin(out, "HEAD", err, "action=getAccessControl");
}

int xlate_getstatus(xlate_g2req *out, xlate_err *err)
{
    return req_begin(out, "HEAD", err, "action=getStatus");
}

int xlate_setacl(const char *acl, const char *etag, xlate_g2req *out, xlate_err *err)
{
    if (req_begin(out, "PATCH", err, "action=setAccessControl") != 0) return -1;
    if (req_header(out, "x-ms-acl", acl, err) != 0) return -1;
    if (etag && *etag && req_header(out, "If-Match", etag, err) != 0) return -1;
    return 0;
}

/* ---- ACLs ------------------------------------------------------------------------------------- */

/* A Gen2 permission string without its trailing '+' (and whether it had one). */
static int gen2_mode(const char *perm, uint16_t *mode, bool *plus, xlate_err *err)
{
    char buf[16];
    size_t n = perm ? strnlen(perm, sizeof buf) : 0;
    if (n == 0 || n >= sizeof buf) return xl_fail(err, "bad Gen2 permissions");
    memcpy(buf, perm, n);
    buf[n] = '\0';
    bool p = false;
    if (buf[n - 1] == '+') {
        buf[--n] = '\0';
        p = true;
    }
    acl_err ae;
    if (acl_parse_perm_any(buf, mode, &ae) != 0) return xl_fail(err, "bad Gen2 permissions: %s", ae.message);
    if (plus) *plus = p;
    return 0;
}

/* Build an acl_node from a full entry list and a mode (for the sticky bit and, without a list, all
 * bits). The list goes through acl_set, which validates it and stores it as HDFS does. */
static int node_from_full(acl_node *n, uint16_t mode, const acl_list *full, bool is_dir, xlate_err *err)
{
    memset(n, 0, sizeof *n);
    n->mode = mode;
    if (!full || full->n == 0) return 0;
    acl_err ae;
    n->mode = mode & XL_STICKY;
    if (acl_set(n, full, is_dir, &ae) != 0) return xl_fail(err, "%s", ae.message);
    return 0;
}

int xlate_acl_apply(whreq_op op, const char *aclspec, const char *x_ms_acl, const char *x_ms_permissions,
                    bool is_dir, dbuf *new_acl, xlate_err *err)
{
    int rc = -1;
    acl_list *cur = calloc(1, sizeof *cur), *spec = calloc(1, sizeof *spec), *full = calloc(1, sizeof *full);
    acl_node *n = calloc(1, sizeof *n);
    acl_err ae;
    uint16_t mode = 0;
    if (!cur || !spec || !full || !n) {
        xl_fail(err, "out of memory");
        goto out;
    }
    if (gen2_mode(x_ms_permissions, &mode, NULL, err) != 0) goto out;
    if (x_ms_acl && *x_ms_acl && acl_parse(x_ms_acl, true, cur, &ae) != 0) {
        xl_fail(err, "bad Gen2 x-ms-acl: %s", ae.message);
        goto out;
    }
    if (node_from_full(n, mode, cur, is_dir, err) != 0) goto out;
    bool need_spec = op == WH_OP_SETACL || op == WH_OP_MODIFYACLENTRIES || op == WH_OP_REMOVEACLENTRIES;
    if (need_spec && acl_parse(aclspec, op != WH_OP_REMOVEACLENTRIES, spec, &ae) != 0) {
        xl_fail(err, "%s", ae.message);
        goto out;
    }
    int r = 0;
    switch (op) {
    case WH_OP_SETACL: r = acl_set(n, spec, is_dir, &ae); break;
    case WH_OP_MODIFYACLENTRIES: r = acl_modify(n, spec, is_dir, &ae); break;
    case WH_OP_REMOVEACLENTRIES: r = acl_remove_entries(n, spec, &ae); break;
    case WH_OP_REMOVEACL: acl_remove_all(n); break;
    case WH_OP_REMOVEDEFAULTACL: acl_remove_default(n); break;
    default: xl_fail(err, "not an ACL operation"); goto out;
    }
    if (r != 0) {
        xl_fail(err, "%s", ae.message);
        goto out;
    }
    acl_full(n, full);
    if (acl_format(full, new_acl) != 0) {
        xl_fail(err, "ACL too long");
        goto out;
    }
    rc = 0;
out:
    free(cur);
    free(spec);
    free(full);
    free(n);
    return rc;
}

/* ---- expiry and dates ------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), Howard Hinnant's algorithm. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static const char *const xl_wday[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
static const char *const xl_mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void xlate_rfc1123_format(int64_t ms, char out[32])
{
    int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
    int64_t rem = s - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t wd = days % 7;
    if (wd < 0) wd += 7;
    snprintf(out, 32, "%s, %02u %s %04" PRId64 " %02d:%02d:%02d GMT", xl_wday[wd], d, xl_mon[m - 1], y,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

/* Read exactly n digits at *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int xlate_rfc1123_parse(const char *s, int64_t *ms)
{
    /* "Www, DD Mon YYYY HH:MM:SS GMT" */
    if (!s || strlen(s) != 29 || s[3] != ',' || s[4] != ' ') return -1;
    const char *p = s + 5;
    int d, y, hh, mm, ss;
    if (digits(&p, 2, &d) || *p++ != ' ') return -1;
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (strncmp(p, xl_mon[i], 3) == 0) mon = i + 1;
    if (mon < 0) return -1;
    p += 3;
    if (*p++ != ' ' || digits(&p, 4, &y) || *p++ != ' ' || digits(&p, 2, &hh) || *p++ != ':' ||
        digits(&p, 2, &mm) || *p++ != ':' || digits(&p, 2, &ss) || strcmp(p, " GMT") != 0)
        return -1;
    if (d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60) return -1;
    *ms = ((days_from_civil(y, (unsigned)mon, (unsigned)d) * 86400) + hh * 3600 + mm * 60 + ss) * 1000;
    return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9'))) return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end) return -1;
    *out = v;
    return 0;
}

int xlate_expiry(const char *option, const char *expire_time, xlate_g2req *out, xlate_err *err)
{
    const char *g2opt = NULL;
    bool absolute = false;
    if (!option) return xl_fail(err, "expiryOption missing");
    if (strcasecmp(option, "NeverExpire") == 0)
        g2opt = "NeverExpire";
    else if (strcasecmp(option, "RelativeToNow") == 0)
        g2opt = "RelativeToNow";
    else if (strcasecmp(option, "RelativeToCreationDate") == 0)
        g2opt = "RelativeToCreation";
    else if (strcasecmp(option, "Absolute") == 0)
        g2opt = "Absolute", absolute = true;
    else
        return xl_fail(err, "unknown expiryOption");
    if (req_begin(out, "PUT", err, "comp=expiry") != 0) return -1;
    if (req_header(out, "x-ms-expiry-option", g2opt, err) != 0) return -1;
    if (strcmp(g2opt, "NeverExpire") == 0) return 0;
    int64_t v;
    if (parse_i64(expire_time, &v) != 0 || v < 0) return xl_fail(err, "bad or missing expireTime");
    char t[32];
    if (absolute)
        xlate_rfc1123_format(v, t);
    else
        snprintf(t, sizeof t, "%" PRId64, v);
    return req_header(out, "x-ms-expiry-time", t, err);
}

/* ---- Gen1 answers ----------------------------------------------------------------------------- */

bool xlate_gen1_false(const char *body)
{
    if (!body || !*body) return false;
    json_error_t je;
    json_t *root = json_loads(body, 0, &je);
    bool f = false;
    if (root && json_is_object(root)) {
        json_t *b = json_object_get(root, "boolean");
        f = b && json_is_false(b);
    }
    json_decref(root);
    return f;
}

int xlate_gen1_query(const char *op, const whreq_param *params, int nparams, const char *extra, dbuf *out)
{
    static const char *const ident[] = {"user.name", "doas", "delegation"};
    int rc = dbuf_printf(out, "op=%s", op);
    for (size_t k = 0; rc == 0 && k < sizeof ident / sizeof ident[0]; k++) {
        for (int i = 0; i < nparams; i++) {
            if (!params[i].name || strcmp(params[i].name, ident[k]) != 0) continue;
            rc = dbuf_printf(out, "&%s=", ident[k]);
            if (rc == 0) rc = url_encode(params[i].value ? params[i].value : "", false, out);
            break;
        }
    }
    if (rc == 0 && extra && *extra) rc = dbuf_printf(out, "&%s", extra);
    return rc;
}

void xlate_meta_free(xlate_meta *m)
{
    free(m->acl);
    m->acl = NULL;
}

static int json_i64(const json_t *v, int64_t *out);

/* Wrapper object (case-insensitive key, as the ADLS swagger and examples disagree on casing). */
static json_t *get_ci(json_t *obj, const char *key)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, key) == 0) return v;
    }
    return NULL;
}

static bool json_truthy(const json_t *v)
{
    if (!v) return false;
    if (json_is_true(v)) return true;
    return json_is_string(v) && strcasecmp(json_string_value(v), "true") == 0;
}

static void copy_str(char *dst, size_t cap, const json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    snprintf(dst, cap, "%s", s);
}

int xlate_meta_from_filestatus(const char *json, size_t len, xlate_meta *m, xlate_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(json ? json : "", len, 0, &je);
    json_t *fs = root && json_is_object(root) ? get_ci(root, "FileStatus") : NULL;
    int rc = -1;
    xlate_meta_free(m);
    memset(m, 0, sizeof *m);
    if (!fs || !json_is_object(fs)) {
        xl_fail(err, "Gen1 answer is not a FileStatus");
        goto out;
    }
    json_t *perm = json_object_get(fs, "permission");
    acl_err ae;
    if (!json_is_string(perm) || acl_parse_octal(json_string_value(perm), &m->mode, &ae) != 0) {
        xl_fail(err, "Gen1 FileStatus has no valid permission");
        goto out;
    }
    copy_str(m->owner, sizeof m->owner, json_object_get(fs, "owner"));
    copy_str(m->group, sizeof m->group, json_object_get(fs, "group"));
    json_t *type = json_object_get(fs, "type");
    m->is_dir = json_is_string(type) && strcmp(json_string_value(type), "DIRECTORY") == 0;
    m->acl_bit = json_truthy(json_object_get(fs, "aclBit"));
    int64_t mt = -1, at = -1, flen = -1;
    json_t *v = json_object_get(fs, "modificationTime");
    if (v && json_i64(v, &mt) != 0) mt = -1;
    v = json_object_get(fs, "accessTime");
    if (v && json_i64(v, &at) != 0) at = -1;
    v = json_object_get(fs, "length");
    if (v && json_i64(v, &flen) != 0) flen = -1;
    m->has_times = mt >= 0 || at >= 0;
    m->mtime_ms = mt;
    m->atime_ms = at;
    m->length = flen;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Count what Gen2 would hold per scope for a Gen1 AclStatus entries array (the access scope adds user::,
 * mask:: and other::; the default scope the base entries and mask HDFS implies). Sets m->acl_over and
 * m->base_added; returns -1 when a scope is over XLATE_ACL_SCOPE_MAX. */
static int acl_scope_counts(const json_t *ents, xlate_meta *m)
{
    int access = 0, defaults = 0, dnamed = 0;
    bool dbase[3] = {false, false, false}, dmask = false;
    static const char *const dnames[3] = {"default:user::", "default:group::", "default:other::"};
    size_t i;
    json_t *v;
    m->acl_over = 0;
    m->base_added = false;
    if (!json_is_array(ents)) return 0;
    json_array_foreach(ents, i, v)
    {
        const char *e = json_string_value(v);
        if (!e) continue;
        if (strncmp(e, "default:", 8) != 0) {
            access++;
            continue;
        }
        defaults++;
        for (int k = 0; k < 3; k++)
            if (strncasecmp(e, dnames[k], strlen(dnames[k])) == 0) dbase[k] = true;
        const char *c = strchr(e + 8, ':');
        if (strncasecmp(e, "default:mask:", 13) == 0) dmask = true;
        else if (c && c[1] != ':' && c[1] != '\0' && strncasecmp(e, "default:other:", 14) != 0) dnamed++;
    }
    int atotal = access ? access + 3 : 3, dtotal = defaults;
    if (defaults) {
        for (int k = 0; k < 3; k++)
            if (!dbase[k]) {
                dtotal++;
                m->base_added = true;
            }
        if (dnamed && !dmask) dtotal++;
    }
    int most = atotal > dtotal ? atotal : dtotal;
    if (most <= XLATE_ACL_SCOPE_MAX) return 0;
    m->acl_over = most;
    m->base_added = false;
    return -1;
}

int xlate_meta_from_aclstatus(const char *json, size_t len, xlate_meta *m, xlate_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(json ? json : "", len, 0, &je);
    json_t *as = root && json_is_object(root) ? get_ci(root, "AclStatus") : NULL;
    acl_list *full = calloc(1, sizeof *full), *out = calloc(1, sizeof *out);
    acl_node *n = calloc(1, sizeof *n);
    dbuf b;
    dbuf_init(&b, XL_HDR_MAX);
    int rc = -1;
    if (!full || !out || !n) {
        xl_fail(err, "out of memory");
        goto out;
    }
    if (!as || !json_is_object(as)) {
        xl_fail(err, "Gen1 answer is not an AclStatus");
        goto out;
    }
    uint16_t mode = m->mode;
    acl_err ae;
    json_t *perm = json_object_get(as, "permission");
    if (json_is_string(perm) && acl_parse_octal(json_string_value(perm), &mode, &ae) != 0) {
        xl_fail(err, "Gen1 AclStatus has a bad permission");
        goto out;
    }
    if (json_truthy(json_object_get(as, "stickyBit"))) mode |= XL_STICKY;
    /* entries: named users, group:: (with an extended access ACL), named groups, then defaults. */
    json_t *ents = json_object_get(as, "entries"), *v;
    size_t i;
    if (acl_scope_counts(ents, m) != 0) { /* over Gen2's limit: only the permission bits go */
        free(m->acl);
        m->acl = NULL;
        m->mode = mode;
        rc = 0;
        goto out;
    }
    bool access_ext = false;
    acl_entry e;
    memset(&e, 0, sizeof e);
    e.type = ACL_USER;
    e.perm = (mode >> 6) & 7;
    full->e[full->n++] = e;
    if (json_is_array(ents)) {
        json_array_foreach(ents, i, v)
        {
            acl_list one;
            if (!json_is_string(v) || acl_parse(json_string_value(v), true, &one, &ae) != 0 || one.n != 1) {
                xl_fail(err, "Gen1 AclStatus has a bad entry");
                goto out;
            }
            if (full->n >= ACL_MAX_ENTRIES - 3) {
                xl_fail(err, "Gen1 AclStatus has too many entries");
                goto out;
            }
            if (!one.e[0].is_default && (one.e[0].type == ACL_USER || one.e[0].type == ACL_GROUP)) access_ext = true;
            full->e[full->n++] = one.e[0];
        }
    }
    memset(&e, 0, sizeof e);
    e.type = access_ext ? ACL_MASK : ACL_GROUP;
    e.perm = (mode >> 3) & 7;
    full->e[full->n++] = e;
    if (access_ext) {
        /* The owning group's entry is in the list when the access ACL is extended (HDFS). */
        bool has_group = false;
        for (int k = 0; k < full->n; k++)
            if (!full->e[k].is_default && full->e[k].type == ACL_GROUP && !full->e[k].name[0]) has_group = true;
        if (!has_group) {
            xl_fail(err, "Gen1 AclStatus lacks the group:: entry");
            goto out;
        }
    }
    memset(&e, 0, sizeof e);
    e.type = ACL_OTHER;
    e.perm = mode & 7;
    full->e[full->n++] = e;
    if (node_from_full(n, mode, full, m->is_dir, err) != 0) goto out;
    acl_full(n, out);
    if (acl_format(out, &b) != 0) {
        xl_fail(err, "ACL too long");
        goto out;
    }
    free(m->acl);
    m->acl = dbuf_take(&b);
    if (!m->acl) {
        xl_fail(err, "out of memory");
        goto out;
    }
    m->mode = n->mode;
    rc = 0;
out:
    dbuf_free(&b);
    free(full);
    free(out);
    free(n);
    json_decref(root);
    return rc;
}

/* XLATE_CRC_KEY added to the properties being built in *props. */
static int meta_crc_put(const xlate_meta *m, dbuf *props, xlate_err *err)
{
    char v[64];
    if (xlate_crc_format(m->crc32c, m->crc_len, v, sizeof v) != 0) {
        xl_fail(err, "bad CRC-32C length");
        return -1;
    }
    dbuf next; /* xlate_props_put appends to its output: not the buffer it reads */
    dbuf_init(&next, 1024);
    int rc = xlate_props_put(props->data, XLATE_CRC_KEY, v, &next, err);
    dbuf_free(props);
    *props = next;
    return rc;
}

/* The times request of a metadata copy (files with times only): appended at out[*n]. */
static int meta_times_req(const xlate_meta *m, xlate_g2req out[XLATE_META_REQS], int *n, xlate_err *err)
{
    if (m->is_dir || (!m->has_times && !m->sha256[0] && !m->has_crc)) return 0;
    char v[96], d[128];
    dbuf props;
    dbuf_init(&props, 1024);
    int rc = 0;
    if (m->has_times) {
        rc = xlate_times_format(m->mtime_ms, m->atime_ms, m->length, v, sizeof v);
        if (rc == 0) rc = xlate_props_put(NULL, XLATE_TIMES_KEY, v, &props, err);
    }
    if (rc == 0 && m->has_crc) rc = meta_crc_put(m, &props, err);
    if (rc == 0 && m->sha256[0]) {
        rc = xlate_digest_format(m->sha256, m->sha256_len, d, sizeof d);
        if (rc != 0) xl_fail(err, "bad digest");
        else {
            dbuf both; /* xlate_props_put appends to its output: not the buffer it reads */
            dbuf_init(&both, 1024);
            rc = xlate_props_put(props.data, XLATE_DIGEST_KEY, d, &both, err);
            dbuf_free(&props);
            props = both;
        }
    }
    if (rc == 0) rc = xlate_setprops(props.data ? props.data : "", NULL, &out[*n], err);
    dbuf_free(&props);
    if (rc == 0) (*n)++;
    return rc;
}

int xlate_meta_requests(const xlate_meta *m, xlate_g2req out[XLATE_META_REQS], int *n, xlate_err *err)
{
    *n = 0;
    if (req_begin(&out[0], "PATCH", err, "action=setAccessControl") != 0) return -1;
    if (m->owner[0] && req_header(&out[0], "x-ms-owner", m->owner, err) != 0) return -1;
    if (m->group[0] && req_header(&out[0], "x-ms-group", m->group, err) != 0) return -1;
    if (m->acl_over) { /* no entries: the permission bits (group bits: the mask) and sticky bit in one go */
        char p[8];
        snprintf(p, sizeof p, "%04o", (unsigned)(m->mode & 01777));
        if (req_header(&out[0], "x-ms-permissions", p, err) != 0) return -1;
        *n = 1;
        return meta_times_req(m, out, n, err);
    }
    if (m->acl) {
        if (req_header(&out[0], "x-ms-acl", m->acl, err) != 0) return -1;
    } else {
        char u[4], g[4], o[4], line[64];
        acl_perm_str((m->mode >> 6) & 7, u);
        acl_perm_str((m->mode >> 3) & 7, g);
        acl_perm_str(m->mode & 7, o);
        snprintf(line, sizeof line, "user::%s,group::%s,other::%s", u, g, o);
        if (req_header(&out[0], "x-ms-acl", line, err) != 0) return -1;
    }
    *n = 1;
    if (m->mode & XL_STICKY) {
        char p[8];
        snprintf(p, sizeof p, "%04o", (unsigned)(m->mode & 01777));
        if (req_begin(&out[1], "PATCH", err, "action=setAccessControl") != 0) return -1;
        if (req_header(&out[1], "x-ms-permissions", p, err) != 0) return -1;
        *n = 2;
    }
    return meta_times_req(m, out, n, err);
}

/* ---- times as a Gen2 property ----------------------------------------------------------------- */

int xlate_digest_format(const char *hex, int64_t len, char *out, size_t cap)
{
    if (!hex || strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64 || len < 0) return -1;
    int w = snprintf(out, cap, "sha256=%s,len=%" PRId64, hex, len);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

int xlate_digest_parse(const char *v, char hex[65], int64_t *len)
{
    hex[0] = 0;
    *len = -1;
    if (!v || strncmp(v, "sha256=", 7) != 0 || strspn(v + 7, "0123456789abcdefABCDEF") != 64 ||
        strncmp(v + 71, ",len=", 5) != 0)
        return -1;
    int64_t x;
    if (parse_i64(v + 76, &x) != 0 || x < 0) return -1;
    for (int i = 0; i < 64; i++) hex[i] = (char)tolower((unsigned char)v[7 + i]);
    hex[64] = 0;
    *len = x;
    return 0;
}

int xlate_crc_format(uint32_t crc, int64_t len, char *out, size_t cap)
{
    if (len < 0) return -1;
    int w = snprintf(out, cap, "crc32c=%08" PRIx32 ",len=%" PRId64, crc, len);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

int xlate_crc_parse(const char *v, uint32_t *crc, int64_t *len)
{
    if (!v || strncmp(v, "crc32c=", 7) != 0 || strspn(v + 7, "0123456789abcdefABCDEF") != 8 ||
        strncmp(v + 15, ",len=", 5) != 0)
        return -1;
    int64_t x;
    if (parse_i64(v + 20, &x) != 0 || x < 0) return -1;
    uint32_t c = 0;
    for (int i = 0; i < 8; i++) {
        int ch = tolower((unsigned char)v[7 + i]);
        c = (c << 4) | (uint32_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    }
    *crc = c;
    *len = x;
    return 0;
}

int xlate_times_format(int64_t mtime_ms, int64_t atime_ms, int64_t length, char *out, size_t cap)
{
    size_t off = 0;
    const char *names[3] = {"mtime", "atime", "len"};
    int64_t vals[3] = {mtime_ms, atime_ms, length};
    if (cap) out[0] = '\0';
    for (int i = 0; i < 3; i++) {
        if (vals[i] < 0) continue;
        int w = snprintf(out + off, cap - off, "%s%s=%" PRId64, off ? "," : "", names[i], vals[i]);
        if (w < 0 || (size_t)w >= cap - off) return -1;
        off += (size_t)w;
    }
    return 0;
}

int xlate_times_parse(const char *v, int64_t *mtime_ms, int64_t *atime_ms, int64_t *length)
{
    *mtime_ms = *atime_ms = *length = -1;
    const char *p = v ? v : "";
    while (*p) {
        const char *e = strchr(p, ','), *eq = strchr(p, '=');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!eq || eq > p + len) return -1;
        char num[24];
        size_t nl = len - (size_t)(eq + 1 - p);
        if (nl == 0 || nl >= sizeof num) return -1;
        memcpy(num, eq + 1, nl);
        num[nl] = '\0';
        int64_t x;
        if (parse_i64(num, &x) != 0 || x < 0) return -1;
        size_t kl = (size_t)(eq - p);
        if (kl == 5 && strncmp(p, "mtime", 5) == 0) *mtime_ms = x;
        else if (kl == 5 && strncmp(p, "atime", 5) == 0) *atime_ms = x;
        else if (kl == 3 && strncmp(p, "len", 3) == 0) *length = x;
        else return -1;
        p = e ? e + 1 : p + len;
    }
    return 0;
}

int xlate_props_get(const char *props, const char *key, char *out, size_t cap)
{
    const char *p = props ? props : "";
    size_t kl = strlen(key);
    while (*p) {
        const char *e = strchr(p, ','), *eq = strchr(p, '=');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!eq || eq > p + len) return -1;
        if ((size_t)(eq - p) == kl && strncmp(p, key, kl) == 0) {
            size_t vl = len - kl - 1;
            unsigned char *buf = malloc(vl + 1);
            long d = buf ? b64_decode(eq + 1, vl, buf, vl + 1) : -1;
            if (d < 0 || (size_t)d >= cap || memchr(buf, '\0', (size_t)d)) {
                free(buf);
                return -1;
            }
            memcpy(out, buf, (size_t)d);
            out[d] = '\0';
            free(buf);
            return 1;
        }
        p = e ? e + 1 : p + len;
    }
    return 0;
}

int xlate_props_put(const char *props, const char *key, const char *value, dbuf *out, xlate_err *err)
{
    const char *p = props ? props : "";
    size_t kl = strlen(key);
    bool first = true;
    int rc = 0;
    while (*p && rc == 0) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool ours = len > kl && p[kl] == '=' && strncmp(p, key, kl) == 0;
        if (!ours && len > 0) {
            rc = dbuf_printf(out, "%s%.*s", first ? "" : ",", (int)len, p);
            first = false;
        }
        p = e ? e + 1 : p + len;
    }
    size_t vl = strlen(value);
    char *enc = malloc(b64_encoded_size(vl) + 1);
    if (!enc) return xl_fail(err, "out of memory");
    enc[b64_encode((const unsigned char *)value, vl, enc)] = '\0';
    if (rc == 0) rc = dbuf_printf(out, "%s%s=%s", first ? "" : ",", key, enc);
    free(enc);
    return rc == 0 ? 0 : xl_fail(err, "x-ms-properties too long");
}

int xlate_getprops(xlate_g2req *out, xlate_err *err)
{
    return req_begin(out, "HEAD", err, "%s", "");
}

int xlate_setprops(const char *props, const char *etag, xlate_g2req *out, xlate_err *err)
{
    if (req_begin(out, "PATCH", err, "action=setProperties") != 0) return -1;
    if (req_header(out, "x-ms-properties", props, err) != 0) return -1;
    if (etag && *etag && req_header(out, "If-Match", etag, err) != 0) return -1;
    return 0;
}

/* A SETTIMES parameter: absent or -1 = unchanged (-1 out), else ms >= 0. */
static int time_param(const char *s, int64_t *out)
{
    *out = -1;
    if (!s || !*s) return 0;
    int64_t v;
    if (parse_i64(s, &v) != 0 || v < -1) return -1;
    *out = v;
    return 0;
}

int xlate_settimes_props(const char *props, const char *content_length, const char *mtime_param,
                         const char *atime_param, dbuf *out, xlate_err *err)
{
    int64_t mt, at, len = -1, omt = -1, oat = -1, olen = -1;
    if (time_param(mtime_param, &mt) != 0) return xl_fail(err, "bad modificationtime");
    if (time_param(atime_param, &at) != 0) return xl_fail(err, "bad accesstime");
    if (mt < 0 && at < 0) return xl_fail(err, "SETTIMES changes neither time");
    char cur[128];
    int g = xlate_props_get(props, XLATE_TIMES_KEY, cur, sizeof cur);
    if (g < 0) return xl_fail(err, "Gen2 x-ms-properties cannot be read");
    if (g == 1 && xlate_times_parse(cur, &omt, &oat, &olen) != 0) omt = oat = -1; /* unreadable: replace it */
    if (content_length && (parse_i64(content_length, &len) != 0 || len < 0)) len = -1;
    char v[96];
    if (xlate_times_format(mt >= 0 ? mt : omt, at >= 0 ? at : oat, len, v, sizeof v) != 0)
        return xl_fail(err, "times value too long");
    return xlate_props_put(props, XLATE_TIMES_KEY, v, out, err);
}

/* ---- listings --------------------------------------------------------------------------------- */

void xlate_listing_free(xlate_listing *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].status);
    }
    free(l->v);
    free(l->token);
    memset(l, 0, sizeof *l);
}

static bool segment_ok(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int xlate_liststatus_parse(const char *json, size_t len, xlate_listing *out, xlate_err *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(json ? json : "", len, 0, &je);
    int rc = -1;
    /* Hadoop's LISTSTATUS_BATCH: {"DirectoryListing":{"partialListing":{"FileStatuses":..},
     * "remainingEntries":N}}; the next page starts after the last entry while N > 0. */
    json_t *dl = root && json_is_object(root) ? get_ci(root, "DirectoryListing") : NULL;
    json_t *part = dl && json_is_object(dl) ? get_ci(dl, "partialListing") : NULL;
    json_t *rem = dl && json_is_object(dl) ? get_ci(dl, "remainingEntries") : NULL;
    if (dl && (!json_is_object(part) || !json_is_integer(rem))) {
        xl_fail(err, "Gen1 answer is not a DirectoryListing");
        goto out;
    }
    json_t *fss = dl ? get_ci(part, "FileStatuses") : root && json_is_object(root) ? get_ci(root, "FileStatuses") : NULL;
    json_t *arr = fss && json_is_object(fss) ? get_ci(fss, "FileStatus") : NULL;
    if (!arr || !json_is_array(arr)) {
        xl_fail(err, "Gen1 answer is not a FileStatuses listing");
        goto out;
    }
    size_t n = json_array_size(arr);
    if (n > XLATE_LIST_MAX_ENTRIES) {
        xl_fail(err, "Gen1 listing has over %d entries", XLATE_LIST_MAX_ENTRIES);
        goto out;
    }
    out->v = calloc(n ? n : 1, sizeof *out->v);
    if (!out->v) {
        xl_fail(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        const char *name = json_is_object(e) ? json_string_value(json_object_get(e, "pathSuffix")) : NULL;
        const char *type = json_is_object(e) ? json_string_value(json_object_get(e, "type")) : NULL;
        if (!segment_ok(name)) {
            xl_fail(err, "Gen1 listing entry %zu has no valid pathSuffix", i);
            goto out;
        }
        if (!type || (strcmp(type, "DIRECTORY") != 0 && strcmp(type, "FILE") != 0)) {
            xl_fail(err, "Gen1 listing entry %zu has no valid type", i);
            goto out;
        }
        json_t *wrap = json_pack("{s:O}", "FileStatus", e);
        xlate_entry *x = &out->v[out->n];
        x->name = strdup(name);
        x->is_dir = strcmp(type, "DIRECTORY") == 0;
        x->status = wrap ? json_dumps(wrap, JSON_COMPACT) : NULL;
        json_decref(wrap);
        out->n++;
        if (!x->name || !x->status) {
            xl_fail(err, "out of memory");
            goto out;
        }
    }
    const char *tok = dl ? (json_integer_value(rem) > 0 && out->n > 0 ? out->v[out->n - 1].name : NULL)
                         : json_string_value(get_ci(fss, "continuationToken"));
    if (tok && *tok && !(out->token = strdup(tok))) {
        xl_fail(err, "out of memory");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc != 0) xlate_listing_free(out);
    return rc;
}

int xlate_liststatus_batch_query(const char *after, dbuf *out)
{
    if (!after || !*after) return 0;
    int rc = dbuf_adds(out, "startAfter=");
    return rc == 0 ? url_encode(after, false, out) : rc;
}

int xlate_liststatus_query(unsigned list_size, const char *after, dbuf *out)
{
    int rc = dbuf_printf(out, "listSize=%u", list_size);
    if (rc == 0 && after && *after) rc = dbuf_adds(out, "&listAfter=");
    if (rc == 0 && after && *after) rc = url_encode(after, false, out);
    return rc;
}

/* ---- concat ----------------------------------------------------------------------------------- */

void xlate_paths_free(xlate_paths *p)
{
    for (int i = 0; i < p->n; i++) free(p->v[i]);
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

static int paths_add(xlate_paths *p, const char *s, size_t len, xlate_err *err)
{
    if (p->n >= XL_MAX_SOURCES) return xl_fail(err, "too many sources");
    if (len == 0) return xl_fail(err, "empty source path");
    char *raw = strndup(s, len), *norm = NULL;
    if (!raw) return xl_fail(err, "out of memory");
    whreq_err we;
    int rc = whreq_norm_path(raw, &norm, &we);
    free(raw);
    if (rc != 0) return xl_fail(err, "bad source path: %s", we.message);
    if (p->n % 16 == 0) {
        char **nv = realloc(p->v, sizeof *nv * (size_t)(p->n + 16));
        if (!nv) {
            free(norm);
            return xl_fail(err, "out of memory");
        }
        p->v = nv;
    }
    p->v[p->n++] = norm;
    return 0;
}

static int paths_from_list(xlate_paths *p, const char *list, xlate_err *err)
{
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (paths_add(p, s, len, err) != 0) return -1;
        s = e ? e + 1 : s + len;
    }
    return p->n > 0 ? 0 : xl_fail(err, "no sources given");
}

static int paths_from_body(xlate_paths *p, const char *body, size_t len, xlate_err *err)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
    if (i < len && body[i] == '{') {
        json_error_t je;
        json_t *root = json_loadb(body, len, 0, &je);
        json_t *arr = root && json_is_object(root) ? json_object_get(root, "sources") : NULL;
        int rc = 0;
        size_t k;
        json_t *v;
        if (!arr || !json_is_array(arr) || json_array_size(arr) == 0) rc = xl_fail(err, "bad MSCONCAT body");
        if (rc == 0) {
            json_array_foreach(arr, k, v)
            {
                if (!json_is_string(v) || paths_add(p, json_string_value(v), json_string_length(v), err) != 0) {
                    if (!json_is_string(v)) xl_fail(err, "MSCONCAT sources must be strings");
                    rc = -1;
                    break;
                }
            }
        }
        json_decref(root);
        return rc;
    }
    if (len - i >= 8 && strncasecmp(body + i, "sources=", 8) == 0) {
        dbuf dec;
        dbuf_init(&dec, len + 1);
        size_t end = len;
        while (end > i && (body[end - 1] == '\r' || body[end - 1] == '\n')) end--;
        int rc = url_decode(body + i + 8, end - i - 8, URL_FORM | URL_NO_CTL, &dec);
        rc = rc != 0 ? xl_fail(err, "bad MSCONCAT body encoding") : paths_from_list(p, dec.data ? dec.data : "", err);
        dbuf_free(&dec);
        return rc;
    }
    return xl_fail(err, "bad MSCONCAT body");
}

int xlate_concat_sources(whreq_op op, const char *sources_param, const char *body, size_t body_len,
                         xlate_paths *out, xlate_err *err)
{
    int rc;
    memset(out, 0, sizeof *out);
    if (op == WH_OP_MSCONCAT && body && body_len > 0)
        rc = paths_from_body(out, body, body_len, err);
    else if (sources_param && *sources_param)
        rc = paths_from_list(out, sources_param, err);
    else
        rc = xl_fail(err, "no sources given");
    if (rc != 0) xlate_paths_free(out);
    return rc;
}

static char *parent_of(const char *p)
{
    const char *slash = strrchr(p, '/');
    if (!slash || slash == p) return strdup("/");
    return strndup(p, (size_t)(slash - p));
}

char *xlate_concat_source_dir(const xlate_paths *sources, const char *target)
{
    if (!sources || sources->n == 0) return NULL;
    char *dir = parent_of(sources->v[0]);
    if (!dir) return NULL;
    for (int i = 1; i < sources->n; i++) {
        char *d = parent_of(sources->v[i]);
        bool same = d && strcmp(d, dir) == 0;
        free(d);
        if (!same) goto none;
    }
    if (strcmp(dir, "/") == 0 || xlate_path_related(dir, target)) goto none;
    return dir;
none:
    free(dir);
    return NULL;
}

bool xlate_path_related(const char *a, const char *b)
{
    if (strcmp(a, "/") == 0 || strcmp(b, "/") == 0) return true;
    size_t la = strlen(a), lb = strlen(b);
    const char *s = la <= lb ? a : b, *l = la <= lb ? b : a;
    size_t ls = la <= lb ? la : lb;
    return strncmp(s, l, ls) == 0 && (l[ls] == '\0' || l[ls] == '/');
}

/* ---- retries ---------------------------------------------------------------------------------- */

bool xlate_retryable(bool transport_failed, long status)
{
    if (transport_failed) return true;
    if (status == 408 || status == 429) return true;
    return status >= 500 && status != 501 && status != 505;
}

int64_t xlate_retry_after_ms(const char *value, int64_t now_ms)
{
    if (!value || !*value) return -1;
    int64_t v;
    if (parse_i64(value, &v) == 0) return v >= 0 && v <= 86400 ? v * 1000 : -1;
    int64_t at;
    if (xlate_rfc1123_parse(value, &at) != 0) return -1;
    return at > now_ms ? at - now_ms : 0;
}

/* ---- Gen2 → Gen1 conversions ------------------------------------------------------------------ */

int xlate_perm_to_octal(const char *gen2, char out[8], bool *acl_bit, xlate_err *err)
{
    uint16_t mode;
    bool plus = false;
    if (gen2_mode(gen2, &mode, &plus, err) != 0) return -1;
    acl_mode_octal(mode, out);
    if (acl_bit) *acl_bit = plus;
    return 0;
}

static int json_add_str(dbuf *out, const char *s)
{
    char *enc = NULL;
    json_t *j = json_string(s ? s : "");
    if (j) enc = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    int rc = enc ? dbuf_adds(out, enc) : -ENOMEM;
    free(enc);
    return rc;
}

int xlate_aclstatus_json(const char *x_ms_acl, const char *x_ms_permissions, const char *owner, const char *group,
                         dbuf *out, xlate_err *err)
{
    uint16_t mode;
    acl_err ae;
    int rc = -1;
    acl_list *cur = calloc(1, sizeof *cur), *ents = calloc(1, sizeof *ents);
    acl_node *n = calloc(1, sizeof *n);
    if (!cur || !ents || !n) {
        xl_fail(err, "out of memory");
        goto out;
    }
    if (gen2_mode(x_ms_permissions, &mode, NULL, err) != 0) goto out;
    if (x_ms_acl && *x_ms_acl && acl_parse(x_ms_acl, true, cur, &ae) != 0) {
        xl_fail(err, "bad Gen2 x-ms-acl: %s", ae.message);
        goto out;
    }
    /* Defaults can only be on directories; allow them whatever the type (Gen2 already checked). */
    if (node_from_full(n, mode, cur, true, err) != 0) goto out;
    acl_status_entries(n, ents);
    char perm[8];
    acl_mode_octal(n->mode, perm);
    int r = dbuf_adds(out, "{\"AclStatus\":{\"entries\":[");
    for (int i = 0; r == 0 && i < ents->n; i++) {
        acl_list one = {.n = 1};
        one.e[0] = ents->e[i];
        dbuf eb;
        dbuf_init(&eb, ACL_MAX_NAME + 64);
        r = acl_format(&one, &eb);
        if (r == 0) r = dbuf_adds(out, i ? "," : "");
        if (r == 0) r = json_add_str(out, eb.data ? eb.data : "");
        dbuf_free(&eb);
    }
    if (r == 0) r = dbuf_adds(out, "],\"group\":");
    if (r == 0) r = json_add_str(out, group);
    if (r == 0) r = dbuf_adds(out, ",\"owner\":");
    if (r == 0) r = json_add_str(out, owner);
    if (r == 0)
        r = dbuf_printf(out, ",\"permission\":\"%s\",\"stickyBit\":%s}}", perm, (n->mode & XL_STICKY) ? "true" : "false");
    if (r != 0) {
        xl_fail(err, "AclStatus too long");
        goto out;
    }
    rc = 0;
out:
    free(cur);
    free(ents);
    free(n);
    return rc;
}

/* A JSON value that may be a number or a string of digits. */
static int json_i64(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) return parse_i64(json_string_value(v), out);
    return -1;
}

int xlate_filestatus_from_list(const json_t *entry, xlate_filestatus *out, xlate_err *err)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(entry)) return xl_fail(err, "list entry is not an object");
    const json_t *e = entry;
    json_t *name = json_object_get(e, "name");
    if (!json_is_string(name)) return xl_fail(err, "list entry without a name");
    if (snprintf(out->name, sizeof out->name, "%s", json_string_value(name)) >= (int)sizeof out->name)
        return xl_fail(err, "list entry name too long");
    out->is_dir = json_truthy(json_object_get(e, "isDirectory"));
    json_t *cl = json_object_get(e, "contentLength");
    if (cl && json_i64(cl, &out->length) != 0) return xl_fail(err, "bad contentLength");
    if (out->is_dir) out->length = 0;
    json_t *lm = json_object_get(e, "lastModified");
    if (json_is_string(lm) && xlate_rfc1123_parse(json_string_value(lm), &out->mtime_ms) != 0)
        return xl_fail(err, "bad lastModified");
    json_t *perm = json_object_get(e, "permissions");
    if (json_is_string(perm)) {
        if (xlate_perm_to_octal(json_string_value(perm), out->permission, &out->acl_bit, err) != 0) return -1;
    } else {
        snprintf(out->permission, sizeof out->permission, "%s", out->is_dir ? "770" : "640");
    }
    copy_str(out->owner, sizeof out->owner, json_object_get(e, "owner"));
    copy_str(out->group, sizeof out->group, json_object_get(e, "group"));
    return 0;
}

int xlate_filestatus_from_head(const char *content_length, const char *resource_type, const char *last_modified,
                               const char *owner, const char *group, const char *permissions,
                               xlate_filestatus *out, xlate_err *err)
{
    memset(out, 0, sizeof *out);
    out->is_dir = resource_type && strcasecmp(resource_type, "directory") == 0;
    if (content_length && !out->is_dir && (parse_i64(content_length, &out->length) != 0 || out->length < 0))
        return xl_fail(err, "bad Content-Length");
    if (last_modified && xlate_rfc1123_parse(last_modified, &out->mtime_ms) != 0) return xl_fail(err, "bad Last-Modified");
    if (permissions) {
        if (xlate_perm_to_octal(permissions, out->permission, &out->acl_bit, err) != 0) return -1;
    } else {
        snprintf(out->permission, sizeof out->permission, "%s", out->is_dir ? "770" : "640");
    }
    snprintf(out->owner, sizeof out->owner, "%s", owner ? owner : "");
    snprintf(out->group, sizeof out->group, "%s", group ? group : "");
    return 0;
}

int xlate_filestatus_json(const xlate_filestatus *fs, const char *path_suffix, dbuf *out)
{
    int rc = dbuf_printf(out, "{\"accessTime\":0,\"aclBit\":%s,\"blockSize\":%d,\"group\":",
                         fs->acl_bit ? "true" : "false", fs->is_dir ? 0 : 268435456);
    if (rc == 0) rc = json_add_str(out, fs->group);
    if (rc == 0)
        rc = dbuf_printf(out, ",\"length\":%" PRId64 ",\"modificationTime\":%" PRId64 ",\"owner\":",
                         fs->is_dir ? 0 : fs->length, fs->mtime_ms);
    if (rc == 0) rc = json_add_str(out, fs->owner);
    if (rc == 0) rc = dbuf_adds(out, ",\"pathSuffix\":");
    if (rc == 0) rc = json_add_str(out, path_suffix ? path_suffix : "");
    if (rc == 0)
        rc = dbuf_printf(out, ",\"permission\":\"%s\",\"replication\":%d,\"type\":\"%s\"}", fs->permission,
                         fs->is_dir ? 0 : 1, fs->is_dir ? "DIRECTORY" : "FILE");
    return rc;
}
