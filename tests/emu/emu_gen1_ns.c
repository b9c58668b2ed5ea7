/*
 * emu_gen1_ns: the Gen1 namespace and metadata ops: GETFILESTATUS, LISTSTATUS, GETCONTENTSUMMARY,
 * GETACLSTATUS, CHECKACCESS, GETHOMEDIRECTORY, MKDIRS, RENAME (HDFS rename and rename2), DELETE,
 * SETPERMISSION, SETOWNER, the ACL ops, SETTIMES and SETEXPIRY. Each runs under the store lock,
 * answers the request itself on success and returns -1 with c->err (or G1_AGAIN) otherwise. The
 * FileStatus layout follows the dialect: Hadoop adds childrenNum, fileId and storagePolicy and
 * reports HDFS block sizes; ADLS reports its 256 MiB block size on every entry.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acl.h"
#include "dbuf.h"
#include "emu_gen1_int.h"
#include "whreq.h"

#define G1_MAX_JSON   (256u * 1024 * 1024)
#define G1_ADLS_BLOCK 268435456
#define G1_HDFS_BLOCK 134217728

/* ------------------------------------------------------------------------------------------ */
/* FileStatus and friends                                                                      */

static int put_status(const g1_ctx *c, dbuf *b, const emu_node *n, const char *suffix, bool single)
{
    bool dir = n->type == EMU_DIR;
    bool hadoop = c->g->hadoop;
    char perm[8];
    acl_mode_octal(n->mode, perm);
    int rc =
        dbuf_printf(b, "{\"accessTime\":%" PRId64 ",\"aclBit\":%s,\"blockSize\":%d,", n->atime_ms,
                    emu_node_has_acl(n) ? "true" : "false", hadoop ? (dir ? 0 : G1_HDFS_BLOCK) : G1_ADLS_BLOCK);
    if (rc == 0 && hadoop)
        rc = dbuf_printf(b, "\"childrenNum\":%zu,\"fileId\":%" PRIu64 ",", dir ? n->nchildren : (size_t)0, n->id);
    if (rc == 0 && single && !dir) rc = dbuf_printf(b, "\"fileContextID\":\"%016" PRIx64 "\",", n->id);
    if (rc == 0) rc = dbuf_adds(b, "\"group\":");
    if (rc == 0) rc = g1_jstr(b, n->group);
    if (rc == 0)
        rc = dbuf_printf(
            b, ",\"length\":%" PRId64 ",\"modificationTime\":%" PRId64 ",\"msExpirationTime\":%" PRId64 ",\"owner\":",
            dir ? 0 : n->visible_length, n->mtime_ms, dir ? 0 : n->expiry_ms);
    if (rc == 0) rc = g1_jstr(b, n->owner);
    if (rc == 0) rc = dbuf_adds(b, ",\"pathSuffix\":");
    if (rc == 0) rc = g1_jstr(b, suffix);
    if (rc == 0)
        rc = dbuf_printf(b, ",\"permission\":\"%s\",\"replication\":%d,%s\"type\":\"%s\"}", perm, dir ? 0 : 1,
                         hadoop ? "\"storagePolicy\":0," : "", dir ? "DIRECTORY" : "FILE");
    return rc;
}

int g1_op_getfilestatus(g1_ctx *c)
{
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return g1_not_found(c, c->q->w.path);
    dbuf b;
    dbuf_init(&b, 1 << 20);
    int rc = dbuf_adds(&b, "{\"FileStatus\":");
    if (rc == 0) rc = put_status(c, &b, res.node, "", true);
    if (rc == 0) rc = dbuf_adds(&b, "}");
    return g1_reply_dbuf(c, rc, &b);
}

int g1_op_liststatus(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    g1_res res;
    int64_t limit;
    if (whreq_get_i64(w, "listsize", 0, &limit, &c->err) != 0) return -1;
    if (limit < 0) return g1_fail_arg(c, "listSize", whreq_param_get(w, "listsize"));
    if (g1_resolve(c, w->path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return g1_not_found(c, w->path);
    dbuf b;
    dbuf_init(&b, G1_MAX_JSON);
    int rc = dbuf_adds(&b, "{\"FileStatuses\":{\"FileStatus\":[");
    const char *token = "";
    if (n->type == EMU_FILE) {
        if (rc == 0) rc = put_status(c, &b, n, "", false);
    } else {
        if (g1_need(c, n, P_R | P_X) != 0) {
            dbuf_free(&b);
            return -1;
        }
        const char *after = whreq_param_get(w, "listafter");
        const char *before = whreq_param_get(w, "listbefore");
        if (before && !*before) before = NULL;
        size_t i = (after && *after) ? emu_store_child_after(n, after) : 0;
        int64_t count = 0, now = emu_now_ms();
        const emu_node *last = NULL;
        for (; rc == 0 && i < n->nchildren; i++) {
            const emu_node *ch = n->children[i];
            if (g1_hidden(ch, now)) continue;
            if (before && strcmp(ch->name, before) >= 0) break;
            if (limit > 0 && count == limit) {
                token = last->name; /* more entries follow */
                break;
            }
            if (count > 0) rc = dbuf_add(&b, ",", 1);
            if (rc == 0) rc = put_status(c, &b, ch, ch->name, false);
            last = ch;
            count++;
        }
    }
    /* continuationToken is always present ("" when done): the Python ADLS client needs it. */
    if (rc == 0) rc = dbuf_adds(&b, "],\"continuationToken\":");
    if (rc == 0) rc = g1_jstr(&b, token);
    if (rc == 0) rc = dbuf_adds(&b, "}}");
    return g1_reply_dbuf(c, rc, &b);
}

/*
 * Hadoop's paged listing (WebHDFS LISTSTATUS_BATCH, Hadoop 2.8+): at most dfs.ls.limit entries
 * (--ls-limit) after startAfter, as {"DirectoryListing":{"partialListing":{"FileStatuses":
 * {"FileStatus":[...]}},"remainingEntries":N}}; the client asks again with startAfter = the last
 * pathSuffix while remainingEntries > 0. A file lists as itself. ADLS Gen1 has no such op.
 */
int g1_op_liststatus_batch(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    if (!c->g->hadoop)
        return g1_fail(c, 400, "IllegalArgumentException",
                       "Invalid value for webhdfs parameter \"op\": No enum constant LISTSTATUS_BATCH");
    g1_res res;
    if (g1_resolve(c, w->path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return g1_not_found(c, w->path);
    dbuf b;
    dbuf_init(&b, G1_MAX_JSON);
    int rc = dbuf_adds(&b, "{\"DirectoryListing\":{\"partialListing\":{\"FileStatuses\":{\"FileStatus\":[");
    int64_t remaining = 0;
    if (n->type == EMU_FILE) {
        if (rc == 0) rc = put_status(c, &b, n, "", false);
    } else {
        if (g1_need(c, n, P_R | P_X) != 0) {
            dbuf_free(&b);
            return -1;
        }
        const char *after = whreq_param_get(w, "startafter");
        size_t i = (after && *after) ? emu_store_child_after(n, after) : 0;
        int64_t count = 0, now = emu_now_ms();
        for (; rc == 0 && i < n->nchildren; i++) {
            const emu_node *ch = n->children[i];
            if (g1_hidden(ch, now)) continue;
            if (count == (int64_t)c->g->ls_limit) {
                remaining++;
                continue;
            }
            if (count > 0) rc = dbuf_add(&b, ",", 1);
            if (rc == 0) rc = put_status(c, &b, ch, ch->name, false);
            count++;
        }
    }
    if (rc == 0) rc = dbuf_printf(&b, "]}},\"remainingEntries\":%" PRId64 "}}", remaining);
    return g1_reply_dbuf(c, rc, &b);
}

static void summarize(const emu_node *n, int64_t now, int64_t *dirs, int64_t *files, int64_t *bytes)
{
    if (n->type == EMU_FILE) {
        (*files)++;
        *bytes += n->visible_length;
        return;
    }
    (*dirs)++;
    for (size_t i = 0; i < n->nchildren; i++)
        if (!g1_hidden(n->children[i], now)) summarize(n->children[i], now, dirs, files, bytes);
}

int g1_op_contentsummary(g1_ctx *c)
{
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return g1_not_found(c, c->q->w.path);
    if (res.node->type == EMU_DIR && g1_need(c, res.node, P_R | P_X) != 0) return -1;
    int64_t dirs = 0, files = 0, bytes = 0;
    summarize(res.node, emu_now_ms(), &dirs, &files, &bytes);
    dbuf b;
    dbuf_init(&b, 4096);
    int rc = dbuf_printf(&b,
                         "{\"ContentSummary\":{\"directoryCount\":%" PRId64 ",\"fileCount\":%" PRId64
                         ",\"length\":%" PRId64 ",\"quota\":-1,\"spaceConsumed\":%" PRId64 ",\"spaceQuota\":-1}}",
                         dirs, files, bytes, bytes);
    return g1_reply_dbuf(c, rc, &b);
}

int g1_op_aclstatus(g1_ctx *c)
{
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return g1_not_found(c, c->q->w.path);
    acl_list *l = malloc(sizeof *l);
    acl_node *a = malloc(sizeof *a);
    dbuf spec, b;
    char perm[8];
    if (!l || !a) {
        free(l);
        free(a);
        return g1_fail(c, 500, "RuntimeException", "out of memory");
    }
    dbuf_init(&spec, 1 << 20);
    dbuf_init(&b, 1 << 20);
    emu_node_acl_get(n, a);
    acl_status_entries(a, l);
    free(a);
    int rc = acl_format(l, &spec);
    if (rc == 0) rc = dbuf_adds(&b, "{\"AclStatus\":{\"entries\":[");
    /* acl_format joins entries with ','; names never contain one (principal_ok, acl_parse). */
    const char *p = spec.data ? spec.data : "";
    bool first = true;
    while (rc == 0 && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char ent[ACL_MAX_NAME + 64];
        if (len >= sizeof ent) len = sizeof ent - 1;
        memcpy(ent, p, len);
        ent[len] = '\0';
        if (!first) rc = dbuf_add(&b, ",", 1);
        if (rc == 0) rc = g1_jstr(&b, ent);
        first = false;
        p = e ? e + 1 : p + strlen(p);
    }
    acl_mode_octal(n->mode, perm);
    if (rc == 0) rc = dbuf_adds(&b, "],\"group\":");
    if (rc == 0) rc = g1_jstr(&b, n->group);
    if (rc == 0) rc = dbuf_adds(&b, ",\"owner\":");
    if (rc == 0) rc = g1_jstr(&b, n->owner);
    if (rc == 0)
        rc = dbuf_printf(&b, ",\"permission\":\"%s\",\"stickyBit\":%s}}", perm,
                         (n->mode & 01000) ? "true" : "false");
    free(l);
    dbuf_free(&spec);
    return g1_reply_dbuf(c, rc, &b);
}

int g1_op_checkaccess(g1_ctx *c)
{
    const char *a = whreq_param_get(&c->q->w, "fsaction");
    int want = 0;
    if (!a || strlen(a) != 3) return g1_fail_arg(c, "fsaction", a ? a : "");
    static const char bits[3] = {'r', 'w', 'x'};
    for (int i = 0; i < 3; i++) {
        if (a[i] == bits[i])
            want |= 4 >> i;
        else if (a[i] != '-')
            return g1_fail_arg(c, "fsaction", a);
    }
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return g1_not_found(c, c->q->w.path);
    if (g1_need(c, res.node, want) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

int g1_op_homedir(g1_ctx *c)
{
    dbuf b;
    dbuf_init(&b, 4096);
    char path[EMU_MAX_PRINCIPAL + 8];
    snprintf(path, sizeof path, "/user/%s", c->q->user);
    int rc = dbuf_adds(&b, "{\"Path\":");
    if (rc == 0) rc = g1_jstr(&b, path);
    if (rc == 0) rc = dbuf_adds(&b, "}");
    return g1_reply_dbuf(c, rc, &b);
}

/* ------------------------------------------------------------------------------------------ */
/* namespace ops                                                                               */

int g1_op_mkdirs(g1_ctx *c)
{
    bool has;
    uint16_t mode = 0;
    if (g1_get_mode(c, &has, &mode) != 0) return -1;
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    if (res.node) {
        if (res.node->type == EMU_DIR) {
            g1_reply_bool(c->r, true);
            return 0;
        }
        return g1_fail(c, 403, "FileAlreadyExistsException", "Path is not a directory: %.200s", c->q->w.path);
    }
    if (res.under_file) {
        char pp[G1_PATH_CAP];
        g1_node_path(res.deepest, pp, sizeof pp);
        return g1_fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %.200s", pp);
    }
    if (g1_need(c, res.parent ? res.parent : res.deepest, P_W) != 0) return -1;
    emu_node *d;
    if (g1_make_dirs(c, c->q->w.path, true, has, mode, &d) != 0) return -1;
    g1_reply_bool(c->r, true);
    return 0;
}

/* Parse renameoptions: a comma list of NONE, OVERWRITE, TO_TRASH. */
static int rename_opts(g1_ctx *c, bool *rename2, bool *overwrite)
{
    const char *o = whreq_param_get(&c->q->w, "renameoptions");
    *rename2 = false;
    *overwrite = false;
    if (!o || !*o) return 0;
    *rename2 = true;
    const char *p = o;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 9 && strncasecmp(p, "OVERWRITE", 9) == 0)
            *overwrite = true;
        else if (!((len == 4 && strncasecmp(p, "NONE", 4) == 0) || (len == 8 && strncasecmp(p, "TO_TRASH", 8) == 0)))
            return g1_fail_arg(c, "renameoptions", o);
        p = e ? e + 1 : p + len;
    }
    return 0;
}

static bool path_under(const char *a, const char *b) /* b strictly under a */
{
    size_t la = strlen(a);
    if (strcmp(a, "/") == 0) return strcmp(b, "/") != 0;
    return strncmp(a, b, la) == 0 && b[la] == '/';
}

/* RENAME. Without renameoptions: HDFS rename(src, dst) -> {"boolean"}: false for a missing source,
 * an existing file destination, a missing destination parent; an existing directory destination
 * receives the source inside it. With renameoptions (rename2): exact destination, errors instead
 * of false; OVERWRITE replaces a file or an empty directory of the same kind. */
int g1_op_rename(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    const char *d = whreq_param_get(w, "destination");
    bool r2, ow;
    char *dst = NULL;
    int rc = -1;
    if (!d || !*d)
        return g1_fail(c, 400, "IllegalArgumentException",
                       "Required param destination for op: RENAME is null or empty");
    if (rename_opts(c, &r2, &ow) != 0) return -1;
    if (whreq_norm_path(d, &dst, &c->err) != 0) return -1;

    g1_res sr, dr;
    if (g1_resolve(c, w->path, &sr) != 0) goto out;
    emu_node *src = sr.node;
    if (!src || !src->parent) {
        if (r2 && !src) {
            rc = g1_fail(c, 404, "FileNotFoundException", "rename source %.200s is not found.", w->path);
        } else if (r2) {
            rc = g1_fail(c, 403, "IOException", "rename source cannot be the root");
        } else {
            g1_reply_bool(c->r, false);
            rc = 0;
        }
        goto out;
    }
    if (strcmp(dst, w->path) == 0) {
        if (r2)
            rc = g1_fail(c, 403, "FileAlreadyExistsException", "The source %.200s and destination %.200s are the same",
                         w->path, dst);
        else {
            g1_reply_bool(c->r, src->type == EMU_FILE);
            rc = 0;
        }
        goto out;
    }
    if (g1_resolve(c, dst, &dr) != 0) goto out;
    emu_node *dparent = dr.parent;
    const char *dname = dr.leaf;
    emu_node *victim = NULL;
    char actual[G1_PATH_CAP];
    snprintf(actual, sizeof actual, "%s", dst);
    if (!r2) {
        if (dr.node && dr.node->type == EMU_DIR) {
            /* HDFS: rename into an existing directory. */
            dparent = dr.node;
            dname = src->name;
            snprintf(actual, sizeof actual, "%s/%s", strcmp(dst, "/") == 0 ? "" : dst, src->name);
            emu_node *ex = emu_store_child(dparent, dname);
            if (ex) {
                g1_reply_bool(c->r, ex == src);
                rc = 0;
                goto out;
            }
        } else if (dr.node || !dparent) {
            g1_reply_bool(c->r, false);
            rc = 0;
            goto out;
        }
        if (path_under(w->path, actual)) {
            rc = g1_fail(c, 403, "IOException", "Rename destination %.200s is a directory or file under source %.200s",
                         dst, w->path);
            goto out;
        }
    } else {
        if (path_under(w->path, dst)) {
            rc = g1_fail(c, 403, "IOException", "Rename destination %.200s is a directory or file under source %.200s",
                         dst, w->path);
            goto out;
        }
        if (!dparent) {
            char pp[G1_PATH_CAP];
            g1_parent_path(dst, pp, sizeof pp);
            if (dr.under_file)
                rc = g1_fail(c, 403, "ParentNotDirectoryException", "rename destination parent %.200s is a file.", pp);
            else
                rc = g1_fail(c, 404, "FileNotFoundException", "rename destination parent %.200s not found.", pp);
            goto out;
        }
        if (dr.node) {
            victim = dr.node;
            if (!ow) {
                rc = g1_fail(c, 403, "FileAlreadyExistsException", "rename destination %.200s already exists.", dst);
                goto out;
            }
            if (victim->type == EMU_DIR && src->type != EMU_DIR) {
                rc = g1_fail(c, 403, "IOException", "Source %.200s and destination %.200s must both be directories",
                             w->path, dst);
                goto out;
            }
            if (victim->type != EMU_DIR && src->type == EMU_DIR) {
                rc = g1_fail(c, 403, "IOException", "Source %.200s and destination %.200s must both be files", w->path,
                             dst);
                goto out;
            }
            if (victim->type == EMU_DIR && victim->nchildren > 0) {
                rc = g1_fail(c, 403, "IOException", "rename destination directory is not empty: %.200s", dst);
                goto out;
            }
        }
    }
    if (g1_need(c, src->parent, P_W) != 0 || g1_need_sticky(c, src->parent, src) != 0) goto out;
    if (g1_need(c, dparent, P_W) != 0) goto out;
    if (victim && g1_need_sticky(c, dparent, victim) != 0) goto out;
    if (victim && victim->busy) {
        rc = G1_AGAIN;
        goto out;
    }
    if (victim) {
        int e = emu_store_remove(c->g->store, victim);
        if (e != 0) {
            rc = g1_store_fail(c, e, "rename");
            goto out;
        }
    }
    emu_node *sparent = src->parent;
    int e = emu_store_move(c->g->store, src, dparent, dname);
    if (e != 0) {
        rc = g1_store_fail(c, e, "rename");
        goto out;
    }
    g1_touch_dir(c, sparent);
    if (dparent != sparent) g1_touch_dir(c, dparent);
    if (r2 && c->g->hadoop)
        emu_resp_empty(c->r, 200); /* Hadoop's rename2 answers 200 with no body */
    else
        g1_reply_bool(c->r, true);
    rc = 0;
out:
    free(dst);
    return rc;
}

int g1_op_delete(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    bool recursive;
    if (whreq_get_bool(w, "recursive", false, &recursive, &c->err) != 0) return -1;
    const char *ctx_id = whreq_param_get(w, "filecontextid");
    g1_res res;
    if (g1_resolve(c, w->path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n || !n->parent) { /* missing, or the root (HDFS refuses to delete "/" with false) */
        g1_reply_bool(c->r, false);
        return 0;
    }
    if (ctx_id && *ctx_id) {
        char mine[24];
        snprintf(mine, sizeof mine, "%016" PRIx64, n->id);
        if (n->type != EMU_FILE || strcasecmp(mine, ctx_id) != 0)
            return g1_fail(c, 500, "RuntimeException", "DELETE failed with error: StreamID mismatch for %.200s",
                           w->path);
    }
    if (n->type == EMU_DIR && n->nchildren > 0 && !recursive) {
        /* a directory holding only hidden entries is still non-empty on disk; HDFS semantics */
        return g1_fail(c, 403, "PathIsNotEmptyDirectoryException", "`%.200s is non empty': Directory is not empty",
                       w->path);
    }
    if (g1_need(c, n->parent, P_W) != 0 || g1_need_sticky(c, n->parent, n) != 0) return -1;
    if (recursive && g1_need_subtree(c, n) != 0) return -1;
    emu_node *parent = n->parent;
    int e = emu_store_remove(c->g->store, n);
    if (e != 0) return g1_store_fail(c, e, "delete");
    g1_touch_dir(c, parent);
    emu_store_broadcast(c->g->store);
    g1_reply_bool(c->r, true);
    return 0;
}

int g1_op_setpermission(g1_ctx *c)
{
    bool has;
    uint16_t mode = 0;
    if (g1_get_mode(c, &has, &mode) != 0) return -1;
    /* Hadoop would fall back to 755; ADLS requires the value. A request without one is refused. */
    if (!has)
        return g1_fail(c, 400, "IllegalArgumentException", "Required param permission for op: SETPERMISSION is null");
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return g1_not_found(c, c->q->w.path);
    if (g1_need_owner(c, res.node) != 0) return -1;
    acl_node *a = malloc(sizeof *a);
    if (!a) return g1_fail(c, 500, "RuntimeException", "out of memory");
    emu_node_acl_get(res.node, a);
    acl_chmod(a, mode);
    int rc = emu_node_acl_put(res.node, a);
    free(a);
    if (rc) return g1_fail(c, 500, "RuntimeException", "out of memory");
    emu_store_bump_etag(c->g->store, res.node);
    if (g1_save(c, res.node) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

int g1_op_setowner(g1_ctx *c)
{
    const char *owner = whreq_param_get(&c->q->w, "owner");
    const char *group = whreq_param_get(&c->q->w, "group");
    if (owner && !*owner) owner = NULL;
    if (group && !*group) group = NULL;
    if (!owner && !group) return g1_fail(c, 400, "IllegalArgumentException", "Both owner and group are empty.");
    if (owner && !g1_principal_ok(owner)) return g1_fail_arg(c, "owner", owner);
    if (group && !g1_principal_ok(group)) return g1_fail_arg(c, "group", group);
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return g1_not_found(c, c->q->w.path);
    if (!c->q->super) {
        if (g1_need_owner(c, n) != 0) return -1;
        if (owner && strcmp(owner, c->q->user) != 0)
            return g1_fail(c, 403, "AccessControlException",
                           "User %s is not a super user (non-super user cannot change owner).", c->q->user);
        if (group && strcmp(group, c->q->user) != 0)
            return g1_fail(c, 403, "AccessControlException", "User %s does not belong to %.100s", c->q->user, group);
    }
    if ((owner && emu_store_set_owner(c->g->store, n, owner)) || (group && emu_store_set_group(c->g->store, n, group)))
        return g1_fail(c, 500, "RuntimeException", "out of memory");
    emu_store_bump_etag(c->g->store, n);
    if (g1_save(c, n) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

/* SETACL, MODIFYACLENTRIES, REMOVEACLENTRIES, REMOVEACL, REMOVEDEFAULTACL: applied to a copy, so a
 * rejected spec leaves the node unchanged. */
int g1_op_acl(g1_ctx *c)
{
    whreq_op op = c->q->w.op;
    const char *spec = whreq_param_get(&c->q->w, "aclspec");
    bool needs_spec = op == WH_OP_SETACL || op == WH_OP_MODIFYACLENTRIES || op == WH_OP_REMOVEACLENTRIES;
    if (needs_spec && (!spec || !*spec))
        return g1_fail(c, 400, "IllegalArgumentException", "Required param aclspec for op: %s is null or empty",
                       c->q->w.info->name);
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return g1_not_found(c, c->q->w.path);
    if (g1_need_owner(c, n) != 0) return -1;
    acl_node *tmp = malloc(sizeof *tmp);
    acl_list *l = malloc(sizeof *l);
    acl_err ae;
    int rc = -1;
    if (!tmp || !l) {
        rc = g1_fail(c, 500, "RuntimeException", "out of memory");
        goto out;
    }
    emu_node_acl_get(n, tmp);
    bool is_dir = n->type == EMU_DIR;
    int e = 0;
    if (needs_spec && acl_parse(spec, op != WH_OP_REMOVEACLENTRIES, l, &ae) != 0) {
        rc = g1_fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"aclspec\": %s",
                     ae.message);
        goto out;
    }
    switch (op) {
    case WH_OP_SETACL: e = acl_set(tmp, l, is_dir, &ae); break;
    case WH_OP_MODIFYACLENTRIES: e = acl_modify(tmp, l, is_dir, &ae); break;
    case WH_OP_REMOVEACLENTRIES: e = acl_remove_entries(tmp, l, &ae); break;
    case WH_OP_REMOVEACL: acl_remove_all(tmp); break;
    default: acl_remove_default(tmp); break;
    }
    if (e != 0) {
        /* HDFS raises AclException (an IOException); we answer 400 IllegalArgumentException for
         * every spec the model refuses, the same as for one that does not parse. */
        rc = g1_fail(c, 400, "IllegalArgumentException", "%s", ae.message);
        goto out;
    }
    if (emu_node_acl_put(n, tmp)) {
        rc = g1_fail(c, 500, "RuntimeException", "out of memory");
        goto out;
    }
    emu_store_bump_etag(c->g->store, n);
    if (g1_save(c, n) != 0) goto out;
    emu_resp_empty(c->r, 200);
    rc = 0;
out:
    free(tmp);
    free(l);
    return rc;
}

int g1_op_settimes(g1_ctx *c)
{
    int64_t mt, at;
    if (whreq_get_i64(&c->q->w, "modificationtime", -1, &mt, &c->err) != 0) return -1;
    if (whreq_get_i64(&c->q->w, "accesstime", -1, &at, &c->err) != 0) return -1;
    if (mt < -1) return g1_fail_arg(c, "modificationtime", whreq_param_get(&c->q->w, "modificationtime"));
    if (at < -1) return g1_fail_arg(c, "accesstime", whreq_param_get(&c->q->w, "accesstime"));
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return g1_not_found(c, c->q->w.path);
    if (g1_need_owner(c, res.node) != 0) return -1;
    if (mt != -1) res.node->mtime_ms = mt;
    if (at != -1) res.node->atime_ms = at;
    if (g1_save(c, res.node) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

int g1_op_setexpiry(g1_ctx *c)
{
    const char *opt = whreq_param_get(&c->q->w, "expiryoption");
    int64_t t;
    if (whreq_get_i64(&c->q->w, "expiretime", -1, &t, &c->err) != 0) return -1;
    if (!opt || !*opt)
        return g1_fail(c, 400, "IllegalArgumentException", "Required param expiryOption for op: SETEXPIRY is null");
    bool never = strcasecmp(opt, "NeverExpire") == 0;
    bool rel_now = strcasecmp(opt, "RelativeToNow") == 0;
    bool rel_create = strcasecmp(opt, "RelativeToCreationDate") == 0;
    bool absolute = strcasecmp(opt, "Absolute") == 0;
    if (!never && !rel_now && !rel_create && !absolute) return g1_fail_arg(c, "expiryOption", opt);
    if (!never && t < 0)
        return g1_fail_arg(c, "expireTime",
                           whreq_param_get(&c->q->w, "expiretime") ? whreq_param_get(&c->q->w, "expiretime") : "");
    g1_res res;
    if (g1_resolve(c, c->q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return g1_not_found(c, c->q->w.path);
    if (n->type != EMU_FILE)
        return g1_fail(c, 400, "IllegalArgumentException", "SETEXPIRY applies to files only: %.200s", c->q->w.path);
    if (g1_need(c, n, P_W) != 0) return -1;
    int64_t now = emu_now_ms();
    n->expiry_ms = never ? 0 : rel_now ? now + t : rel_create ? n->ctime_ms + t : t;
    if (n->expiry_ms < 0) n->expiry_ms = 0;
    if (g1_save(c, n) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}
