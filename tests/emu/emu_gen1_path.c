/*
 * emu_gen1_path: the namespace primitives every Gen1 op builds on. Paths are resolved from the root
 * with HDFS permission checks (FSPermissionChecker rules: traverse on every directory looked into,
 * owner-only metadata changes, sticky directories, ALL on every directory of a recursive delete; a
 * user's only group is the one named like it). Files past their expiry are removed when a walk meets
 * them, and the staging directory of CREATE bodies is never visible. New files and directories get
 * HDFS metadata (owner = caller, group = parent's group, the parent's default ACL). Everything here
 * runs under the store lock and reports errors through g1_fail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "emu_gen1_int.h"
#include "log.h"

/* ------------------------------------------------------------------------------------------ */
/* nodes                                                                                        */

void g1_node_path(const emu_node *n, char *buf, size_t cap)
{
    if (emu_store_path(n, buf, cap) != 0) snprintf(buf, cap, "%s", "...");
}

static bool is_expired(const emu_node *n, int64_t now)
{
    return n->type == EMU_FILE && n->expiry_ms > 0 && n->expiry_ms <= now;
}

static bool is_staging(const emu_node *n)
{
    return n->parent && !n->parent->parent && strcmp(n->name, G1_STAGING) == 0;
}

/* Hidden entries a client never sees: the staging directory and files past their expiry. */
bool g1_hidden(const emu_node *n, int64_t now)
{
    return is_staging(n) || is_expired(n, now);
}

static emu_node *find_id(emu_node *n, uint64_t id)
{
    if (n->id == id) return n;
    for (size_t i = 0; i < n->nchildren; i++) {
        emu_node *f = find_id(n->children[i], id);
        if (f) return f;
    }
    return NULL;
}

/* The node being written: found by path when it has not moved, else by id (renamed meanwhile). */
emu_node *g1_find_node(emu_gen1 *g, const char *path, uint64_t id)
{
    emu_node *n = emu_store_lookup(g->store, path);
    if (n && n->id == id) return n;
    return find_id(emu_store_root(g->store), id);
}

/* ------------------------------------------------------------------------------------------ */
/* permissions (HDFS FSPermissionChecker rules; a user's only group is the one named like it)   */

static bool may(const g1_ctx *c, const emu_node *n, int want)
{
    if (c->q->super) return true;
    const char *groups[2] = {c->q->user, NULL};
    acl_node a; /* only the header and n's entries are written */
    emu_node_acl_get(n, &a);
    return acl_check(&a, n->owner, n->group, c->q->user, groups, want);
}

static int deny(g1_ctx *c, const emu_node *n, int want)
{
    static const char *const names[8] = {"NONE", "EXECUTE",      "WRITE",      "WRITE_EXECUTE",
                                         "READ", "READ_EXECUTE", "READ_WRITE", "ALL"};
    char path[G1_PATH_CAP], sym[12];
    g1_node_path(n, path, sizeof path);
    acl_mode_symbolic(n->mode, emu_node_has_acl(n), sym);
    return g1_fail(c, 403, "AccessControlException",
                   "Permission denied: user=%s, access=%s, inode=\"%.200s\":%s:%s:%c%s", c->q->user, names[want & 7],
                   path, n->owner, n->group, n->type == EMU_DIR ? 'd' : '-', sym);
}

int g1_need(g1_ctx *c, const emu_node *n, int want)
{
    return may(c, n, want) ? 0 : deny(c, n, want);
}

int g1_need_owner(g1_ctx *c, const emu_node *n)
{
    if (c->q->super || strcmp(n->owner, c->q->user) == 0) return 0;
    char path[G1_PATH_CAP];
    g1_node_path(n, path, sizeof path);
    return g1_fail(c, 403, "AccessControlException", "Permission denied. user=%s is not the owner of inode=%.200s",
                   c->q->user, path);
}

/* Sticky directory: only the owner of the directory or of the entry may remove or rename it. */
int g1_need_sticky(g1_ctx *c, const emu_node *dir, const emu_node *child)
{
    if (c->q->super || !(dir->mode & 01000)) return 0;
    if (strcmp(dir->owner, c->q->user) == 0 || strcmp(child->owner, c->q->user) == 0) return 0;
    char path[G1_PATH_CAP];
    g1_node_path(child, path, sizeof path);
    return g1_fail(c, 403, "AccessControlException", "Permission denied by sticky bit: user=%s, path=\"%.200s\"",
                   c->q->user, path);
}

/* HDFS recursive delete checks ALL on every directory of the subtree. */
int g1_need_subtree(g1_ctx *c, const emu_node *n)
{
    if (c->q->super || n->type != EMU_DIR) return 0;
    if (g1_need(c, n, P_R | P_W | P_X) != 0) return -1;
    for (size_t i = 0; i < n->nchildren; i++)
        if (g1_need_subtree(c, n->children[i]) != 0) return -1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* namespace helpers                                                                           */

const char *g1_leaf_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Walk path from the root, checking traverse (x) on every directory looked into. Expired files met
 * on the way are removed (they are gone). Returns 0 or -1 (permission) with c->err. */
int g1_resolve(g1_ctx *c, const char *path, g1_res *out)
{
    emu_store *s = c->g->store;
    emu_node *n = emu_store_root(s);
    const char *p = path;
    int64_t now = emu_now_ms();
    memset(out, 0, sizeof *out);
    out->deepest = n;
    out->leaf = g1_leaf_of(path); /* whreq paths have no trailing '/' */
    while (*p == '/') p++;
    if (*p == '\0') {
        out->node = n;
        return 0;
    }
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[EMU_MAX_NAME + 1];
        if (len > EMU_MAX_NAME) return g1_fail(c, 400, "IllegalArgumentException", "path component too long");
        if (n->type != EMU_DIR) {
            out->under_file = true;
            return 0;
        }
        if (g1_need(c, n, P_X) != 0) return -1;
        memcpy(name, p, len);
        name[len] = '\0';
        emu_node *ch = emu_store_child(n, name);
        if (ch && is_staging(ch)) ch = NULL;
        if (ch && is_expired(ch, now) && ch->busy == 0) {
            if (emu_store_remove(s, ch) != 0) LOGW("gen1: could not remove an expired file");
            ch = NULL;
        }
        if (!end || end[1] == '\0') {
            out->leaf = p;
            out->parent = n;
            out->node = ch;
            if (ch) out->deepest = ch;
            return 0;
        }
        if (!ch) return 0;
        n = ch;
        out->deepest = n;
        p = end + 1;
    }
}

/* Metadata of a new child of dir (HDFS: owner = caller, group = parent's group; mode as given or
 * 644/755, with the parent's default ACL inherited through acl_inherit; no umask is applied, as
 * WebHDFS applies none to the permission it receives). */
void g1_fill_meta(const g1_ctx *c, const emu_node *dir, emu_type t, bool has_mode, uint16_t mode, emu_meta *dst)
{
    uint16_t req = has_mode ? mode : (t == EMU_DIR ? 0755 : 0644);
    acl_node pa;
    emu_node_acl_get(dir, &pa);
    acl_inherit(&pa, req, 0, t == EMU_DIR, &dst->acl);
    snprintf(dst->owner, sizeof dst->owner, "%s", c->q->user);
    snprintf(dst->group, sizeof dst->group, "%s", dir->group);
}

int g1_store_fail(g1_ctx *c, int rc, const char *what)
{
    if (rc == -EEXIST) return g1_fail(c, 403, "FileAlreadyExistsException", "%s: already exists", what);
    if (rc == -ENAMETOOLONG) return g1_fail(c, 400, "IllegalArgumentException", "%s: name too long", what);
    if (rc == -ENOTDIR) return g1_fail(c, 403, "ParentNotDirectoryException", "%s: parent is not a directory", what);
    return g1_fail(c, 500, "RuntimeException", "%s failed: %s", what, strerror(-rc));
}

/* HDFS sets a directory's modification time when an entry is added, removed or renamed in it. */
void g1_touch_dir(g1_ctx *c, emu_node *dir)
{
    if (!dir || is_staging(dir)) return;
    dir->mtime_ms = emu_now_ms();
    if (emu_store_save(c->g->store, dir) != 0) LOGW("gen1: cannot save a directory's mtime");
}

int g1_new_child(g1_ctx *c, emu_node *dir, const char *name, emu_type t, bool has_mode, uint16_t mode, emu_node **out)
{
    emu_meta *tmpl = calloc(1, sizeof *tmpl);
    if (!tmpl) return g1_fail(c, 500, "RuntimeException", "out of memory");
    g1_fill_meta(c, dir, t, has_mode, mode, tmpl);
    int rc = emu_store_create(c->g->store, dir, name, t, tmpl, out);
    free(tmpl);
    if (rc != 0) return g1_store_fail(c, rc, "create");
    g1_touch_dir(c, dir);
    return 0;
}

/* Create every missing directory of path (the last component too when include_last). Implicit
 * parents get 0755 (or the requested mode plus u+wx, as HDFS does). *out is the last directory. */
int g1_make_dirs(g1_ctx *c, const char *path, bool include_last, bool has_mode, uint16_t mode, emu_node **out)
{
    emu_node *n = emu_store_root(c->g->store);
    const char *p = path;
    uint16_t implicit = has_mode ? (uint16_t)(mode | 0300) : 0755;
    while (*p == '/') p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool last = !end || end[1] == '\0';
        char name[EMU_MAX_NAME + 1];
        if (last && !include_last) break;
        if (len > EMU_MAX_NAME) return g1_fail(c, 400, "IllegalArgumentException", "path component too long");
        memcpy(name, p, len);
        name[len] = '\0';
        emu_node *ch = emu_store_child(n, name);
        if (!ch) {
            bool m = last ? has_mode : true;
            if (g1_new_child(c, n, name, EMU_DIR, m, last ? mode : implicit, &ch) != 0) return -1;
        } else if (ch->type != EMU_DIR) {
            char pp[G1_PATH_CAP];
            g1_node_path(ch, pp, sizeof pp);
            return g1_fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %.200s", pp);
        }
        n = ch;
        if (last) break;
        p = end + 1;
    }
    *out = n;
    return 0;
}

emu_node *g1_staging_dir(g1_ctx *c, bool create)
{
    emu_node *root = emu_store_root(c->g->store);
    emu_node *st = emu_store_child(root, G1_STAGING);
    if (st || !create) return st;
    emu_meta *tmpl = calloc(1, sizeof *tmpl);
    if (!tmpl) return NULL;
    tmpl->acl.mode = 0700;
    snprintf(tmpl->owner, sizeof tmpl->owner, "%s", c->g->superuser);
    snprintf(tmpl->group, sizeof tmpl->group, "%s", root->group);
    if (emu_store_create(c->g->store, root, G1_STAGING, EMU_DIR, tmpl, &st) != 0) st = NULL;
    free(tmpl);
    return st;
}

int g1_save(g1_ctx *c, emu_node *n)
{
    int rc = emu_store_save(c->g->store, n);
    return rc == 0 ? 0 : g1_fail(c, 500, "RuntimeException", "metadata write failed: %s", strerror(-rc));
}

/* ------------------------------------------------------------------------------------------ */
/* small shared pieces of several ops                                                           */

int g1_not_found(g1_ctx *c, const char *path)
{
    return g1_fail(c, 404, "FileNotFoundException", "File %.200s does not exist.", path);
}

int g1_get_mode(g1_ctx *c, bool *has, uint16_t *mode)
{
    const char *p = whreq_param_get(&c->q->w, "permission");
    *has = false;
    if (!p || !*p) return 0;
    acl_err ae;
    if (acl_parse_octal(p, mode, &ae) != 0)
        return g1_fail(c, 400, "IllegalArgumentException",
                       "Invalid value for webhdfs parameter \"permission\": %.60s (%s)", p, ae.message);
    *has = true;
    return 0;
}

/* Path of the parent directory of path ("/" for top-level entries). */
void g1_parent_path(const char *path, char *out, size_t cap)
{
    const char *s = strrchr(path, '/');
    size_t len = s ? (size_t)(s - path) : 0;
    if (len == 0) {
        snprintf(out, cap, "/");
        return;
    }
    if (len >= cap) len = cap - 1;
    memcpy(out, path, len);
    out[len] = '\0';
}
