/*
 * g2answer: WebHDFS answers made from Gen2 facts (see g2answer.h).
 */
#include "g2answer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acl.h"
#include "xlate.h"

#define G2A_BLOCK 268435456 /* ADLS Gen1's reported block size, on every entry */
/* Windows FILETIME (100 ns ticks since 1601) of the Unix epoch, in ms. */
#define G2A_FILETIME_EPOCH_MS 11644473600000LL

int g2a_json_str(dbuf *out, const char *s)
{
    json_t *j = json_string(s ? s : "");
    if (!j) j = json_string("\xEF\xBF\xBD"); /* not UTF-8: one replacement character */
    char *txt = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!txt) return -ENOMEM;
    int rc = dbuf_adds(out, txt);
    free(txt);
    return rc;
}

static void name_back(const idm_map *m, idm_kind kind, const char *in, char *out, size_t cap)
{
    const char *name = in ? in : "";
    const char *back = idm_reverse(m, kind, name);
    snprintf(out, cap, "%s", back ? back : name);
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

/* mtime/atime from dualpipe_times when they belong to length (or the property names no length). */
static void times_from_props(const char *props, int64_t length, g2a_node *out)
{
    char v[256];
    if (!props || xlate_props_get(props, XLATE_TIMES_KEY, v, sizeof v) != 1) return;
    int64_t mt = -1, at = -1, len = -1;
    if (xlate_times_parse(v, &mt, &at, &len) != 0) return;
    if (len >= 0 && len != length) return; /* written before a later APPEND: Gen2's own time is newer */
    if (mt >= 0) out->mtime_ms = mt;
    if (at >= 0) out->atime_ms = at;
}

static int perm_fill(const char *perm, g2a_node *out)
{
    if (!perm || !*perm) {
        snprintf(out->permission, sizeof out->permission, "%s", out->is_dir ? "755" : "644");
        return 0;
    }
    xlate_err e;
    return xlate_perm_to_octal(perm, out->permission, &out->acl_bit, &e);
}

int g2a_node_from_head(const char *content_length, const char *resource_type, const char *last_modified,
                       const char *owner, const char *group, const char *permissions, const char *properties,
                       const char *expiry, const char *etag, const idm_map *m, g2a_node *out)
{
    memset(out, 0, sizeof *out);
    out->is_dir = resource_type && strcasecmp(resource_type, "directory") == 0;
    if (!out->is_dir && content_length && (parse_i64(content_length, &out->length) != 0 || out->length < 0))
        return -1; /* a length Gen2 cannot have sent: the answer is not Gen2's */
    if (out->is_dir) out->length = 0;
    if (last_modified && xlate_rfc1123_parse(last_modified, &out->mtime_ms) != 0) return -1;
    if (expiry && *expiry && xlate_rfc1123_parse(expiry, &out->expiry_ms) != 0) out->expiry_ms = 0;
    if (perm_fill(permissions, out) != 0) return -1;
    name_back(m, IDM_USER, owner, out->owner, sizeof out->owner);
    name_back(m, IDM_GROUP, group, out->group, sizeof out->group);
    times_from_props(properties, out->length, out);
    if (etag) {
        size_t n = strlen(etag);
        if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') snprintf(out->etag, sizeof out->etag, "%.*s", (int)(n - 2), etag + 1);
        else snprintf(out->etag, sizeof out->etag, "%s", etag);
    }
    return 0;
}

/* A List Paths field as text: strings as they are, numbers and booleans written out. */
static const char *field(const json_t *o, const char *key, char *buf, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_boolean(v)) return json_is_true(v) ? "true" : "false";
    return NULL;
}

int g2a_node_from_list(const json_t *entry, const idm_map *m, g2a_node *out, char *leaf, size_t leafcap)
{
    char b1[32], b2[32], b3[32];
    const char *name = field(entry, "name", b1, sizeof b1);
    if (!name || !*name) return -1;
    const char *slash = strrchr(name, '/');
    snprintf(leaf, leafcap, "%s", slash ? slash + 1 : name);
    const char *isdir = field(entry, "isDirectory", b2, sizeof b2);
    char ln[32];
    const char *len = field(entry, "contentLength", ln, sizeof ln);
    const char *etag = field(entry, "etag", b3, sizeof b3);
    if (!etag) etag = field(entry, "eTag", b3, sizeof b3);
    char lm[32], ow[32], gr[32], pm[32]; /* only used by non-string values (never for these) */
    if (g2a_node_from_head(len, isdir && strcasecmp(isdir, "true") == 0 ? "directory" : "file",
                           field(entry, "lastModified", lm, sizeof lm), field(entry, "owner", ow, sizeof ow),
                           field(entry, "group", gr, sizeof gr), field(entry, "permissions", pm, sizeof pm), NULL,
                           NULL, etag, m, out) != 0)
        return -1;
    char eb[32];
    const char *exp = field(entry, "expiryTime", eb, sizeof eb);
    int64_t ticks = 0;
    if (exp && parse_i64(exp, &ticks) == 0 && ticks > 0) out->expiry_ms = ticks / 10000 - G2A_FILETIME_EPOCH_MS;
    return 0;
}

int g2a_filestatus_json(const g2a_node *n, const char *path_suffix, bool single, dbuf *out)
{
    int rc = dbuf_printf(out, "{\"accessTime\":%" PRId64 ",\"aclBit\":%s,\"blockSize\":%d,", n->atime_ms,
                         n->acl_bit ? "true" : "false", G2A_BLOCK);
    if (rc == 0 && single && !n->is_dir) {
        rc = dbuf_adds(out, "\"fileContextID\":");
        if (rc == 0) rc = g2a_json_str(out, n->etag);
        if (rc == 0) rc = dbuf_adds(out, ",");
    }
    if (rc == 0) rc = dbuf_adds(out, "\"group\":");
    if (rc == 0) rc = g2a_json_str(out, n->group);
    if (rc == 0)
        rc = dbuf_printf(out,
                         ",\"length\":%" PRId64 ",\"modificationTime\":%" PRId64 ",\"msExpirationTime\":%" PRId64
                         ",\"owner\":",
                         n->is_dir ? 0 : n->length, n->mtime_ms, n->is_dir ? 0 : n->expiry_ms);
    if (rc == 0) rc = g2a_json_str(out, n->owner);
    if (rc == 0) rc = dbuf_adds(out, ",\"pathSuffix\":");
    if (rc == 0) rc = g2a_json_str(out, path_suffix ? path_suffix : "");
    if (rc == 0)
        rc = dbuf_printf(out, ",\"permission\":\"%s\",\"replication\":%d,\"type\":\"%s\"}", n->permission,
                         n->is_dir ? 0 : 1, n->is_dir ? "DIRECTORY" : "FILE");
    return rc;
}

int g2a_aclstatus_json(const char *x_ms_acl, const char *x_ms_permissions, const char *owner, const char *group,
                       const idm_map *m, dbuf *out)
{
    char o[256], g[256];
    name_back(m, IDM_USER, owner, o, sizeof o);
    name_back(m, IDM_GROUP, group, g, sizeof g);
    acl_list *l = calloc(1, sizeof *l);
    dbuf acl;
    dbuf_init(&acl, 1u << 20);
    int rc = l ? 0 : -1;
    acl_err ae;
    if (rc == 0 && x_ms_acl && *x_ms_acl) {
        rc = acl_parse(x_ms_acl, true, l, &ae);
        for (int i = 0; rc == 0 && i < l->n; i++) {
            acl_entry *e = &l->e[i];
            if (!e->name[0] || (e->type != ACL_USER && e->type != ACL_GROUP)) continue;
            const char *back = idm_reverse(m, e->type == ACL_USER ? IDM_USER : IDM_GROUP, e->name);
            if (back) snprintf(e->name, sizeof e->name, "%s", back);
        }
        if (rc == 0) rc = acl_format(l, &acl);
    }
    xlate_err xe;
    if (rc == 0) rc = xlate_aclstatus_json(acl.data, x_ms_permissions, o, g, out, &xe);
    dbuf_free(&acl);
    free(l);
    return rc == 0 ? 0 : -1;
}

static bool code_is(const char *code, const char *want)
{
    return code && strcasecmp(code, want) == 0;
}

g2a_error g2a_error_of(long status, const char *code)
{
    g2a_error e = {.status = 500, .exception = "RuntimeException"};
    if (!code) code = "";
    if (code_is(code, "FilesystemNotFound") || code_is(code, "ContainerNotFound") ||
        code_is(code, "FilesystemBeingDeleted") || code_is(code, "ContainerBeingDeleted") ||
        code_is(code, "InternalOperationAbortError") || code_is(code, "SourcePathIsBeingDeleted") ||
        code_is(code, "DestinationPathIsBeingDeleted") || code_is(code, "AccountIsDisabled") ||
        code_is(code, "AccountNotFound"))
        return (g2a_error){503, "RetriableException", true};
    if (status == 404) return (g2a_error){404, "FileNotFoundException", false};
    if (code_is(code, "PathAlreadyExists")) return (g2a_error){403, "FileAlreadyExistsException", false};
    if (code_is(code, "DirectoryNotEmpty")) return (g2a_error){403, "PathIsNotEmptyDirectoryException", false};
    if (code_is(code, "PathConflict")) return (g2a_error){403, "ParentNotDirectoryException", false};
    if (code_is(code, "InvalidSourceOrDestinationResourceType"))
        return (g2a_error){403, "FileAlreadyExistsException", false};
    if (code_is(code, "InvalidFlushPosition") || code_is(code, "InvalidRange"))
        return (g2a_error){400, "BadOffsetException", false};
    if (status == 401 || code_is(code, "AuthenticationFailed") || code_is(code, "InvalidAuthenticationInfo") ||
        code_is(code, "NoAuthenticationInformation"))
        return (g2a_error){401, "SecurityException", false};
    if (status == 403) return (g2a_error){403, "AccessControlException", false};
    if (status == 409 || status == 412) return (g2a_error){403, "IOException", false};
    if (status == 413) return (g2a_error){413, "IllegalArgumentException", false};
    if (status == 416) return (g2a_error){400, "BadOffsetException", false};
    if (status == 429) return (g2a_error){429, "ThrottledException", true};
    if (status == 501 || status == 505) return e;
    if (status >= 500) return (g2a_error){503, "RetriableException", true};
    if (status >= 400) return (g2a_error){400, "IllegalArgumentException", false};
    return e;
}
