/*
 * emu_gen1: the Gen1 / WebHDFS service of dualpipe-emu. Every request is parsed by whreq, counted
 * and possibly failed by the fault hook, checked for the bearer token, redirected when the dialect
 * asks for it (ADLS: 307 to the same URL plus write/append/read=true; Hadoop: 307 from the namenode
 * listener to the datanode listener), and then executed against emu_store under its lock. Ops
 * without a body run at once in begin(). Ops with a body (CREATE, APPEND, CONCURRENTAPPEND with
 * data, MSCONCAT) are validated under the lock first and then stream the body outside the lock:
 * APPEND and CONCURRENTAPPEND mark the file busy and pwrite() past its committed length; CREATE
 * writes into a fresh node kept in a hidden staging directory (a name with a control character,
 * which whreq never lets a client address) and moves it into place at the end, so an overwrite that
 * fails half-way leaves the old file intact. Nothing becomes visible until end() publishes it; a
 * body that is too large or a client that goes away leaves the namespace and the data as they were.
 * Semantics follow protocols.md §1 and HDFS (permissions, rename, delete), with the choices noted
 * where they are made.
 */
#include "emu_gen1.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "acl.h"
#include "dbuf.h"
#include "log.h"
#include "urlcodec.h"
#include "whreq.h"

/* Hidden directory (child of the root) holding CREATE bodies in flight; removed at start-up. */
#define G1_STAGING          "\x01gen1-staging"
#define G1_DEFAULT_MAX_BODY (4u * 1024 * 1024)
#define G1_DEFAULT_LEASE_MS (10 * 60 * 1000)
#define G1_MAX_SOURCES      4096
#define G1_MAX_JSON         (256u * 1024 * 1024)
#define G1_ADLS_BLOCK       268435456
#define G1_HDFS_BLOCK       134217728
#define G1_AGAIN            1 /* handler result: a file is busy, wait on the store and run again */
#define G1_PATH_CAP         (WHREQ_MAX_PATH + EMU_MAX_NAME + 2)

enum { P_X = 1, P_W = 2, P_R = 4 };

struct emu_gen1 {
    emu_store *store;
    bool hadoop;
    char *token;
    char *superuser;
    char *default_user;
    uint64_t max_body;
    int64_t lease_ms;
    uint64_t seq; /* staging names; under the store lock */
    pthread_mutex_t dn_mu;
    char datanode[160]; /* "http://127.0.0.1:PORT" or "" */
};

typedef enum g1_kind { G1_K_NONE = 0, G1_K_CREATE, G1_K_APPEND, G1_K_CAPPEND, G1_K_MSCONCAT } g1_kind;

typedef struct g1_req {
    whreq w;
    bool parsed;
    bool skip; /* the fault hook answered or resets the connection */
    char user[EMU_MAX_PRINCIPAL];
    bool super;
    g1_kind kind;
    /* data ops */
    int fd;
    uint64_t node_id; /* APPEND/CONCURRENTAPPEND: the file; CREATE: the staging node */
    char stage_name[40];
    int64_t base; /* object offset where this body starts */
    uint64_t got; /* body bytes written */
    bool busy_held;
    bool published;
    bool autocreated;
    whreq_sync sync;
    char lease[64];
    int64_t offset; /* APPEND: -1 = not given */
    bool overwrite;
    bool create_parent;
    bool has_mode;
    uint16_t mode;
    bool delete_dir; /* MSCONCAT deleteSourceDirectory */
    dbuf body;       /* MSCONCAT body */
} g1_req;

typedef struct g1_ctx {
    emu_gen1 *g;
    emu_req *r;
    g1_req *q;
    whreq_err err;
} g1_ctx;

typedef struct g1_res {
    emu_node *node;    /* the path's node, or NULL */
    emu_node *parent;  /* directory holding (or that would hold) the leaf; NULL if missing */
    emu_node *deepest; /* deepest existing node on the path */
    bool under_file;   /* a non-final component is a file */
    const char *leaf;  /* last component (points into the path) */
} g1_res;

/* ------------------------------------------------------------------------------------------ */
/* errors and small helpers                                                                     */

__attribute__((format(printf, 4, 5))) static int fail(g1_ctx *c, int status, const char *exc, const char *fmt, ...)
{
    va_list ap;
    c->err.status = status;
    c->err.exception = exc;
    va_start(ap, fmt);
    vsnprintf(c->err.message, sizeof c->err.message, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_arg(g1_ctx *c, const char *what, const char *value)
{
    return fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"%s\": %.120s", what, value);
}

static void send_err(emu_req *r, const whreq_err *e)
{
    dbuf b;
    dbuf_init(&b, 8192);
    if (whreq_err_json(e, &b) == 0)
        emu_resp_json(r, e->status, b.data);
    else
        emu_resp_empty(r, e->status);
    dbuf_free(&b);
}

static int jstr(dbuf *b, const char *s)
{
    int rc = dbuf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (rc == 0 && *p) {
        const unsigned char *q = p;
        while (*q && *q != '"' && *q != '\\' && *q >= 0x20 && *q != 0x7f) q++;
        if (q > p) rc = dbuf_add(b, p, (size_t)(q - p));
        if (rc == 0 && *q) {
            if (*q == '"' || *q == '\\') {
                char e[2] = {'\\', (char)*q};
                rc = dbuf_add(b, e, 2);
            } else {
                rc = dbuf_printf(b, "\\u%04x", *q);
            }
            q++;
        }
        p = q;
    }
    return rc ? rc : dbuf_add(b, "\"", 1);
}

static void reply_bool(emu_req *r, bool v)
{
    emu_resp_json(r, 200, v ? "{\"boolean\":true}" : "{\"boolean\":false}");
}

static int reply_dbuf(g1_ctx *c, int rc, dbuf *b)
{
    if (rc != 0) {
        dbuf_free(b);
        return fail(c, 500, "RuntimeException", "response too large");
    }
    emu_resp_json(c->r, 200, b->data);
    dbuf_free(b);
    return 0;
}

static void node_path(const emu_node *n, char *buf, size_t cap)
{
    if (emu_store_path(n, buf, cap) != 0) snprintf(buf, cap, "%s", "...");
}

static bool principal_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= EMU_MAX_PRINCIPAL) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == ',' || *p == ':') return false;
    return true;
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
static bool hidden(const emu_node *n, int64_t now)
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
static emu_node *find_node(emu_gen1 *g, const char *path, uint64_t id)
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
    return acl_check(&n->acl, n->owner, n->group, c->q->user, groups, want);
}

static int deny(g1_ctx *c, const emu_node *n, int want)
{
    static const char *const names[8] = {"NONE", "EXECUTE",      "WRITE",      "WRITE_EXECUTE",
                                         "READ", "READ_EXECUTE", "READ_WRITE", "ALL"};
    char path[G1_PATH_CAP], sym[12];
    node_path(n, path, sizeof path);
    acl_mode_symbolic(n->acl.mode, acl_has_extended(&n->acl), sym);
    return fail(c, 403, "AccessControlException", "Permission denied: user=%s, access=%s, inode=\"%.200s\":%s:%s:%c%s",
                c->q->user, names[want & 7], path, n->owner, n->group, n->type == EMU_DIR ? 'd' : '-', sym);
}

static int need(g1_ctx *c, const emu_node *n, int want)
{
    return may(c, n, want) ? 0 : deny(c, n, want);
}

static int need_owner(g1_ctx *c, const emu_node *n)
{
    if (c->q->super || strcmp(n->owner, c->q->user) == 0) return 0;
    char path[G1_PATH_CAP];
    node_path(n, path, sizeof path);
    return fail(c, 403, "AccessControlException", "Permission denied. user=%s is not the owner of inode=%.200s",
                c->q->user, path);
}

/* Sticky directory: only the owner of the directory or of the entry may remove or rename it. */
static int need_sticky(g1_ctx *c, const emu_node *dir, const emu_node *child)
{
    if (c->q->super || !(dir->acl.mode & 01000)) return 0;
    if (strcmp(dir->owner, c->q->user) == 0 || strcmp(child->owner, c->q->user) == 0) return 0;
    char path[G1_PATH_CAP];
    node_path(child, path, sizeof path);
    return fail(c, 403, "AccessControlException", "Permission denied by sticky bit: user=%s, path=\"%.200s\"",
                c->q->user, path);
}

/* HDFS recursive delete checks ALL on every directory of the subtree. */
static int need_subtree(g1_ctx *c, const emu_node *n)
{
    if (c->q->super || n->type != EMU_DIR) return 0;
    if (need(c, n, P_R | P_W | P_X) != 0) return -1;
    for (size_t i = 0; i < n->nchildren; i++)
        if (need_subtree(c, n->children[i]) != 0) return -1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* namespace helpers                                                                           */

static const char *leaf_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Walk path from the root, checking traverse (x) on every directory looked into. Expired files met
 * on the way are removed (they are gone). Returns 0 or -1 (permission) with c->err. */
static int resolve(g1_ctx *c, const char *path, g1_res *out)
{
    emu_store *s = c->g->store;
    emu_node *n = emu_store_root(s);
    const char *p = path;
    int64_t now = emu_now_ms();
    memset(out, 0, sizeof *out);
    out->deepest = n;
    out->leaf = leaf_of(path); /* whreq paths have no trailing '/' */
    while (*p == '/') p++;
    if (*p == '\0') {
        out->node = n;
        return 0;
    }
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[EMU_MAX_NAME + 1];
        if (len > EMU_MAX_NAME) return fail(c, 400, "IllegalArgumentException", "path component too long");
        if (n->type != EMU_DIR) {
            out->under_file = true;
            return 0;
        }
        if (need(c, n, P_X) != 0) return -1;
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
static void fill_meta(const g1_ctx *c, const emu_node *dir, emu_type t, bool has_mode, uint16_t mode, emu_node *dst)
{
    uint16_t req = has_mode ? mode : (t == EMU_DIR ? 0755 : 0644);
    acl_inherit(&dir->acl, req, 0, t == EMU_DIR, &dst->acl);
    snprintf(dst->owner, sizeof dst->owner, "%s", c->q->user);
    snprintf(dst->group, sizeof dst->group, "%s", dir->group);
}

static int store_fail(g1_ctx *c, int rc, const char *what)
{
    if (rc == -EEXIST) return fail(c, 403, "FileAlreadyExistsException", "%s: already exists", what);
    if (rc == -ENAMETOOLONG) return fail(c, 400, "IllegalArgumentException", "%s: name too long", what);
    if (rc == -ENOTDIR) return fail(c, 403, "ParentNotDirectoryException", "%s: parent is not a directory", what);
    return fail(c, 500, "RuntimeException", "%s failed: %s", what, strerror(-rc));
}

/* HDFS sets a directory's modification time when an entry is added, removed or renamed in it. */
static void touch_dir(g1_ctx *c, emu_node *dir)
{
    if (!dir || is_staging(dir)) return;
    dir->mtime_ms = emu_now_ms();
    if (emu_store_save(c->g->store, dir) != 0) LOGW("gen1: cannot save a directory's mtime");
}

static int new_child(g1_ctx *c, emu_node *dir, const char *name, emu_type t, bool has_mode, uint16_t mode,
                     emu_node **out)
{
    emu_node *tmpl = calloc(1, sizeof *tmpl);
    if (!tmpl) return fail(c, 500, "RuntimeException", "out of memory");
    fill_meta(c, dir, t, has_mode, mode, tmpl);
    int rc = emu_store_create(c->g->store, dir, name, t, tmpl, out);
    free(tmpl);
    if (rc != 0) return store_fail(c, rc, "create");
    touch_dir(c, dir);
    return 0;
}

/* Create every missing directory of path (the last component too when include_last). Implicit
 * parents get 0755 (or the requested mode plus u+wx, as HDFS does). *out is the last directory. */
static int make_dirs(g1_ctx *c, const char *path, bool include_last, bool has_mode, uint16_t mode, emu_node **out)
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
        if (len > EMU_MAX_NAME) return fail(c, 400, "IllegalArgumentException", "path component too long");
        memcpy(name, p, len);
        name[len] = '\0';
        emu_node *ch = emu_store_child(n, name);
        if (!ch) {
            bool m = last ? has_mode : true;
            if (new_child(c, n, name, EMU_DIR, m, last ? mode : implicit, &ch) != 0) return -1;
        } else if (ch->type != EMU_DIR) {
            char pp[G1_PATH_CAP];
            node_path(ch, pp, sizeof pp);
            return fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %.200s", pp);
        }
        n = ch;
        if (last) break;
        p = end + 1;
    }
    *out = n;
    return 0;
}

static emu_node *staging_dir(g1_ctx *c, bool create)
{
    emu_node *root = emu_store_root(c->g->store);
    emu_node *st = emu_store_child(root, G1_STAGING);
    if (st || !create) return st;
    emu_node *tmpl = calloc(1, sizeof *tmpl);
    if (!tmpl) return NULL;
    tmpl->acl.mode = 0700;
    snprintf(tmpl->owner, sizeof tmpl->owner, "%s", c->g->superuser);
    snprintf(tmpl->group, sizeof tmpl->group, "%s", root->group);
    if (emu_store_create(c->g->store, root, G1_STAGING, EMU_DIR, tmpl, &st) != 0) st = NULL;
    free(tmpl);
    return st;
}

static int save(g1_ctx *c, emu_node *n)
{
    int rc = emu_store_save(c->g->store, n);
    return rc == 0 ? 0 : fail(c, 500, "RuntimeException", "metadata write failed: %s", strerror(-rc));
}

/* ------------------------------------------------------------------------------------------ */
/* FileStatus and friends                                                                      */

static int put_status(const g1_ctx *c, dbuf *b, const emu_node *n, const char *suffix, bool single)
{
    bool dir = n->type == EMU_DIR;
    bool hadoop = c->g->hadoop;
    char perm[8];
    acl_mode_octal(n->acl.mode, perm);
    int rc =
        dbuf_printf(b, "{\"accessTime\":%" PRId64 ",\"aclBit\":%s,\"blockSize\":%d,", n->atime_ms,
                    acl_has_extended(&n->acl) ? "true" : "false", hadoop ? (dir ? 0 : G1_HDFS_BLOCK) : G1_ADLS_BLOCK);
    if (rc == 0 && hadoop)
        rc = dbuf_printf(b, "\"childrenNum\":%zu,\"fileId\":%" PRIu64 ",", dir ? n->nchildren : (size_t)0, n->id);
    if (rc == 0 && single && !dir) rc = dbuf_printf(b, "\"fileContextID\":\"%016" PRIx64 "\",", n->id);
    if (rc == 0) rc = dbuf_adds(b, "\"group\":");
    if (rc == 0) rc = jstr(b, n->group);
    if (rc == 0)
        rc = dbuf_printf(
            b, ",\"length\":%" PRId64 ",\"modificationTime\":%" PRId64 ",\"msExpirationTime\":%" PRId64 ",\"owner\":",
            dir ? 0 : n->visible_length, n->mtime_ms, dir ? 0 : n->expiry_ms);
    if (rc == 0) rc = jstr(b, n->owner);
    if (rc == 0) rc = dbuf_adds(b, ",\"pathSuffix\":");
    if (rc == 0) rc = jstr(b, suffix);
    if (rc == 0)
        rc = dbuf_printf(b, ",\"permission\":\"%s\",\"replication\":%d,%s\"type\":\"%s\"}", perm, dir ? 0 : 1,
                         hadoop ? "\"storagePolicy\":0," : "", dir ? "DIRECTORY" : "FILE");
    return rc;
}

static int not_found(g1_ctx *c, const char *path)
{
    return fail(c, 404, "FileNotFoundException", "File %.200s does not exist.", path);
}

static int op_getfilestatus(g1_ctx *c)
{
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return not_found(c, c->q->w.path);
    dbuf b;
    dbuf_init(&b, 1 << 20);
    int rc = dbuf_adds(&b, "{\"FileStatus\":");
    if (rc == 0) rc = put_status(c, &b, res.node, "", true);
    if (rc == 0) rc = dbuf_adds(&b, "}");
    return reply_dbuf(c, rc, &b);
}

static int op_liststatus(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    g1_res res;
    int64_t limit;
    if (whreq_get_i64(w, "listsize", 0, &limit, &c->err) != 0) return -1;
    if (limit < 0) return fail_arg(c, "listSize", whreq_param_get(w, "listsize"));
    if (resolve(c, w->path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return not_found(c, w->path);
    dbuf b;
    dbuf_init(&b, G1_MAX_JSON);
    int rc = dbuf_adds(&b, "{\"FileStatuses\":{\"FileStatus\":[");
    const char *token = "";
    if (n->type == EMU_FILE) {
        if (rc == 0) rc = put_status(c, &b, n, "", false);
    } else {
        if (need(c, n, P_R | P_X) != 0) {
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
            if (hidden(ch, now)) continue;
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
    if (rc == 0) rc = jstr(&b, token);
    if (rc == 0) rc = dbuf_adds(&b, "}}");
    return reply_dbuf(c, rc, &b);
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
        if (!hidden(n->children[i], now)) summarize(n->children[i], now, dirs, files, bytes);
}

static int op_contentsummary(g1_ctx *c)
{
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return not_found(c, c->q->w.path);
    if (res.node->type == EMU_DIR && need(c, res.node, P_R | P_X) != 0) return -1;
    int64_t dirs = 0, files = 0, bytes = 0;
    summarize(res.node, emu_now_ms(), &dirs, &files, &bytes);
    dbuf b;
    dbuf_init(&b, 4096);
    int rc = dbuf_printf(&b,
                         "{\"ContentSummary\":{\"directoryCount\":%" PRId64 ",\"fileCount\":%" PRId64
                         ",\"length\":%" PRId64 ",\"quota\":-1,\"spaceConsumed\":%" PRId64 ",\"spaceQuota\":-1}}",
                         dirs, files, bytes, bytes);
    return reply_dbuf(c, rc, &b);
}

static int op_aclstatus(g1_ctx *c)
{
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return not_found(c, c->q->w.path);
    acl_list *l = malloc(sizeof *l);
    dbuf spec, b;
    char perm[8];
    if (!l) return fail(c, 500, "RuntimeException", "out of memory");
    dbuf_init(&spec, 1 << 20);
    dbuf_init(&b, 1 << 20);
    acl_status_entries(&n->acl, l);
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
        if (rc == 0) rc = jstr(&b, ent);
        first = false;
        p = e ? e + 1 : p + strlen(p);
    }
    acl_mode_octal(n->acl.mode, perm);
    if (rc == 0) rc = dbuf_adds(&b, "],\"group\":");
    if (rc == 0) rc = jstr(&b, n->group);
    if (rc == 0) rc = dbuf_adds(&b, ",\"owner\":");
    if (rc == 0) rc = jstr(&b, n->owner);
    if (rc == 0)
        rc = dbuf_printf(&b, ",\"permission\":\"%s\",\"stickyBit\":%s}}", perm,
                         (n->acl.mode & 01000) ? "true" : "false");
    free(l);
    dbuf_free(&spec);
    return reply_dbuf(c, rc, &b);
}

static int op_checkaccess(g1_ctx *c)
{
    const char *a = whreq_param_get(&c->q->w, "fsaction");
    int want = 0;
    if (!a || strlen(a) != 3) return fail_arg(c, "fsaction", a ? a : "");
    static const char bits[3] = {'r', 'w', 'x'};
    for (int i = 0; i < 3; i++) {
        if (a[i] == bits[i])
            want |= 4 >> i;
        else if (a[i] != '-')
            return fail_arg(c, "fsaction", a);
    }
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return not_found(c, c->q->w.path);
    if (need(c, res.node, want) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

static int op_homedir(g1_ctx *c)
{
    dbuf b;
    dbuf_init(&b, 4096);
    char path[EMU_MAX_PRINCIPAL + 8];
    snprintf(path, sizeof path, "/user/%s", c->q->user);
    int rc = dbuf_adds(&b, "{\"Path\":");
    if (rc == 0) rc = jstr(&b, path);
    if (rc == 0) rc = dbuf_adds(&b, "}");
    return reply_dbuf(c, rc, &b);
}

static int op_open(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    int64_t off, len;
    if (whreq_get_i64(w, "offset", 0, &off, &c->err) != 0) return -1;
    if (whreq_get_i64(w, "length", -1, &len, &c->err) != 0) return -1;
    if (off < 0) return fail_arg(c, "offset", whreq_param_get(w, "offset"));
    if (len < -1) return fail_arg(c, "length", whreq_param_get(w, "length"));
    g1_res res;
    if (resolve(c, w->path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return not_found(c, w->path);
    if (n->type != EMU_FILE) return fail(c, 404, "FileNotFoundException", "Path is not a file: %.200s", w->path);
    if (need(c, n, P_R) != 0) return -1;
    /* Readers see every committed byte (also those appended with syncFlag=DATA), as HDFS readers
     * see hflushed data; only the reported length waits for METADATA/CLOSE. */
    if (off > n->length)
        return fail(c, 400, "BadOffsetException",
                    "Requested offset %" PRId64 " is beyond the end of file (%" PRId64 ")", off, n->length);
    int64_t avail = n->length - off;
    if (len < 0 || len > avail) len = avail;
    int fd = emu_store_open_object(c->g->store, n, O_RDONLY);
    if (fd < 0) return fail(c, 500, "RuntimeException", "cannot open file data: %s", strerror(-fd));
    emu_resp_fd(c->r, 200, "application/octet-stream", fd, (uint64_t)off, (uint64_t)len);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* namespace ops                                                                               */

static int get_mode(g1_ctx *c, bool *has, uint16_t *mode)
{
    const char *p = whreq_param_get(&c->q->w, "permission");
    *has = false;
    if (!p || !*p) return 0;
    acl_err ae;
    if (acl_parse_octal(p, mode, &ae) != 0)
        return fail(c, 400, "IllegalArgumentException",
                    "Invalid value for webhdfs parameter \"permission\": %.60s (%s)", p, ae.message);
    *has = true;
    return 0;
}

static int op_mkdirs(g1_ctx *c)
{
    bool has;
    uint16_t mode = 0;
    if (get_mode(c, &has, &mode) != 0) return -1;
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    if (res.node) {
        if (res.node->type == EMU_DIR) {
            reply_bool(c->r, true);
            return 0;
        }
        return fail(c, 403, "FileAlreadyExistsException", "Path is not a directory: %.200s", c->q->w.path);
    }
    if (res.under_file) {
        char pp[G1_PATH_CAP];
        node_path(res.deepest, pp, sizeof pp);
        return fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %.200s", pp);
    }
    if (need(c, res.parent ? res.parent : res.deepest, P_W) != 0) return -1;
    emu_node *d;
    if (make_dirs(c, c->q->w.path, true, has, mode, &d) != 0) return -1;
    reply_bool(c->r, true);
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
            return fail_arg(c, "renameoptions", o);
        p = e ? e + 1 : p + len;
    }
    return 0;
}

/* Path of the parent directory of path ("/" for top-level entries). */
static void parent_path(const char *path, char *out, size_t cap)
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
static int op_rename(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    const char *d = whreq_param_get(w, "destination");
    bool r2, ow;
    char *dst = NULL;
    int rc = -1;
    if (!d || !*d)
        return fail(c, 400, "IllegalArgumentException", "Required param destination for op: RENAME is null or empty");
    if (rename_opts(c, &r2, &ow) != 0) return -1;
    if (whreq_norm_path(d, &dst, &c->err) != 0) return -1;

    g1_res sr, dr;
    if (resolve(c, w->path, &sr) != 0) goto out;
    emu_node *src = sr.node;
    if (!src || !src->parent) {
        if (r2 && !src) {
            rc = fail(c, 404, "FileNotFoundException", "rename source %.200s is not found.", w->path);
        } else if (r2) {
            rc = fail(c, 403, "IOException", "rename source cannot be the root");
        } else {
            reply_bool(c->r, false);
            rc = 0;
        }
        goto out;
    }
    if (strcmp(dst, w->path) == 0) {
        if (r2)
            rc = fail(c, 403, "FileAlreadyExistsException", "The source %.200s and destination %.200s are the same",
                      w->path, dst);
        else {
            reply_bool(c->r, src->type == EMU_FILE);
            rc = 0;
        }
        goto out;
    }
    if (resolve(c, dst, &dr) != 0) goto out;
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
                reply_bool(c->r, ex == src);
                rc = 0;
                goto out;
            }
        } else if (dr.node || !dparent) {
            reply_bool(c->r, false);
            rc = 0;
            goto out;
        }
        if (path_under(w->path, actual)) {
            rc = fail(c, 403, "IOException", "Rename destination %.200s is a directory or file under source %.200s",
                      dst, w->path);
            goto out;
        }
    } else {
        if (path_under(w->path, dst)) {
            rc = fail(c, 403, "IOException", "Rename destination %.200s is a directory or file under source %.200s",
                      dst, w->path);
            goto out;
        }
        if (!dparent) {
            char pp[G1_PATH_CAP];
            parent_path(dst, pp, sizeof pp);
            if (dr.under_file)
                rc = fail(c, 403, "ParentNotDirectoryException", "rename destination parent %.200s is a file.", pp);
            else
                rc = fail(c, 404, "FileNotFoundException", "rename destination parent %.200s not found.", pp);
            goto out;
        }
        if (dr.node) {
            victim = dr.node;
            if (!ow) {
                rc = fail(c, 403, "FileAlreadyExistsException", "rename destination %.200s already exists.", dst);
                goto out;
            }
            if (victim->type == EMU_DIR && src->type != EMU_DIR) {
                rc = fail(c, 403, "IOException", "Source %.200s and destination %.200s must both be directories",
                          w->path, dst);
                goto out;
            }
            if (victim->type != EMU_DIR && src->type == EMU_DIR) {
                rc = fail(c, 403, "IOException", "Source %.200s and destination %.200s must both be files", w->path,
                          dst);
                goto out;
            }
            if (victim->type == EMU_DIR && victim->nchildren > 0) {
                rc = fail(c, 403, "IOException", "rename destination directory is not empty: %.200s", dst);
                goto out;
            }
        }
    }
    if (need(c, src->parent, P_W) != 0 || need_sticky(c, src->parent, src) != 0) goto out;
    if (need(c, dparent, P_W) != 0) goto out;
    if (victim && need_sticky(c, dparent, victim) != 0) goto out;
    if (victim && victim->busy) {
        rc = G1_AGAIN;
        goto out;
    }
    if (victim) {
        int e = emu_store_remove(c->g->store, victim);
        if (e != 0) {
            rc = store_fail(c, e, "rename");
            goto out;
        }
    }
    emu_node *sparent = src->parent;
    int e = emu_store_move(c->g->store, src, dparent, dname);
    if (e != 0) {
        rc = store_fail(c, e, "rename");
        goto out;
    }
    touch_dir(c, sparent);
    if (dparent != sparent) touch_dir(c, dparent);
    if (r2 && c->g->hadoop)
        emu_resp_empty(c->r, 200); /* Hadoop's rename2 answers 200 with no body */
    else
        reply_bool(c->r, true);
    rc = 0;
out:
    free(dst);
    return rc;
}

static int op_delete(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    bool recursive;
    if (whreq_get_bool(w, "recursive", false, &recursive, &c->err) != 0) return -1;
    const char *ctx_id = whreq_param_get(w, "filecontextid");
    g1_res res;
    if (resolve(c, w->path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n || !n->parent) { /* missing, or the root (HDFS refuses to delete "/" with false) */
        reply_bool(c->r, false);
        return 0;
    }
    if (ctx_id && *ctx_id) {
        char mine[24];
        snprintf(mine, sizeof mine, "%016" PRIx64, n->id);
        if (n->type != EMU_FILE || strcasecmp(mine, ctx_id) != 0)
            return fail(c, 500, "RuntimeException", "DELETE failed with error: StreamID mismatch for %.200s", w->path);
    }
    if (n->type == EMU_DIR && n->nchildren > 0 && !recursive) {
        /* a directory holding only hidden entries is still non-empty on disk; HDFS semantics */
        return fail(c, 403, "PathIsNotEmptyDirectoryException", "`%.200s is non empty': Directory is not empty",
                    w->path);
    }
    if (need(c, n->parent, P_W) != 0 || need_sticky(c, n->parent, n) != 0) return -1;
    if (recursive && need_subtree(c, n) != 0) return -1;
    emu_node *parent = n->parent;
    int e = emu_store_remove(c->g->store, n);
    if (e != 0) return store_fail(c, e, "delete");
    touch_dir(c, parent);
    emu_store_broadcast(c->g->store);
    reply_bool(c->r, true);
    return 0;
}

static int op_setpermission(g1_ctx *c)
{
    bool has;
    uint16_t mode = 0;
    if (get_mode(c, &has, &mode) != 0) return -1;
    /* Hadoop would fall back to 755; ADLS requires the value. A request without one is refused. */
    if (!has)
        return fail(c, 400, "IllegalArgumentException", "Required param permission for op: SETPERMISSION is null");
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return not_found(c, c->q->w.path);
    if (need_owner(c, res.node) != 0) return -1;
    acl_chmod(&res.node->acl, mode);
    emu_store_bump_etag(c->g->store, res.node);
    if (save(c, res.node) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

static int op_setowner(g1_ctx *c)
{
    const char *owner = whreq_param_get(&c->q->w, "owner");
    const char *group = whreq_param_get(&c->q->w, "group");
    if (owner && !*owner) owner = NULL;
    if (group && !*group) group = NULL;
    if (!owner && !group) return fail(c, 400, "IllegalArgumentException", "Both owner and group are empty.");
    if (owner && !principal_ok(owner)) return fail_arg(c, "owner", owner);
    if (group && !principal_ok(group)) return fail_arg(c, "group", group);
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return not_found(c, c->q->w.path);
    if (!c->q->super) {
        if (need_owner(c, n) != 0) return -1;
        if (owner && strcmp(owner, c->q->user) != 0)
            return fail(c, 403, "AccessControlException",
                        "User %s is not a super user (non-super user cannot change owner).", c->q->user);
        if (group && strcmp(group, c->q->user) != 0)
            return fail(c, 403, "AccessControlException", "User %s does not belong to %.100s", c->q->user, group);
    }
    if (owner) snprintf(n->owner, sizeof n->owner, "%s", owner);
    if (group) snprintf(n->group, sizeof n->group, "%s", group);
    emu_store_bump_etag(c->g->store, n);
    if (save(c, n) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

/* SETACL, MODIFYACLENTRIES, REMOVEACLENTRIES, REMOVEACL, REMOVEDEFAULTACL: applied to a copy, so a
 * rejected spec leaves the node unchanged. */
static int op_acl(g1_ctx *c)
{
    whreq_op op = c->q->w.op;
    const char *spec = whreq_param_get(&c->q->w, "aclspec");
    bool needs_spec = op == WH_OP_SETACL || op == WH_OP_MODIFYACLENTRIES || op == WH_OP_REMOVEACLENTRIES;
    if (needs_spec && (!spec || !*spec))
        return fail(c, 400, "IllegalArgumentException", "Required param aclspec for op: %s is null or empty",
                    c->q->w.info->name);
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return not_found(c, c->q->w.path);
    if (need_owner(c, n) != 0) return -1;
    acl_node *tmp = malloc(sizeof *tmp);
    acl_list *l = malloc(sizeof *l);
    acl_err ae;
    int rc = -1;
    if (!tmp || !l) {
        rc = fail(c, 500, "RuntimeException", "out of memory");
        goto out;
    }
    *tmp = n->acl;
    bool is_dir = n->type == EMU_DIR;
    int e = 0;
    if (needs_spec && acl_parse(spec, op != WH_OP_REMOVEACLENTRIES, l, &ae) != 0) {
        rc =
            fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"aclspec\": %s", ae.message);
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
        rc = fail(c, 400, "IllegalArgumentException", "%s", ae.message);
        goto out;
    }
    n->acl = *tmp;
    emu_store_bump_etag(c->g->store, n);
    if (save(c, n) != 0) goto out;
    emu_resp_empty(c->r, 200);
    rc = 0;
out:
    free(tmp);
    free(l);
    return rc;
}

static int op_settimes(g1_ctx *c)
{
    int64_t mt, at;
    if (whreq_get_i64(&c->q->w, "modificationtime", -1, &mt, &c->err) != 0) return -1;
    if (whreq_get_i64(&c->q->w, "accesstime", -1, &at, &c->err) != 0) return -1;
    if (mt < -1) return fail_arg(c, "modificationtime", whreq_param_get(&c->q->w, "modificationtime"));
    if (at < -1) return fail_arg(c, "accesstime", whreq_param_get(&c->q->w, "accesstime"));
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node) return not_found(c, c->q->w.path);
    if (need_owner(c, res.node) != 0) return -1;
    if (mt != -1) res.node->mtime_ms = mt;
    if (at != -1) res.node->atime_ms = at;
    if (save(c, res.node) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

static int op_setexpiry(g1_ctx *c)
{
    const char *opt = whreq_param_get(&c->q->w, "expiryoption");
    int64_t t;
    if (whreq_get_i64(&c->q->w, "expiretime", -1, &t, &c->err) != 0) return -1;
    if (!opt || !*opt)
        return fail(c, 400, "IllegalArgumentException", "Required param expiryOption for op: SETEXPIRY is null");
    bool never = strcasecmp(opt, "NeverExpire") == 0;
    bool rel_now = strcasecmp(opt, "RelativeToNow") == 0;
    bool rel_create = strcasecmp(opt, "RelativeToCreationDate") == 0;
    bool absolute = strcasecmp(opt, "Absolute") == 0;
    if (!never && !rel_now && !rel_create && !absolute) return fail_arg(c, "expiryOption", opt);
    if (!never && t < 0)
        return fail_arg(c, "expireTime",
                        whreq_param_get(&c->q->w, "expiretime") ? whreq_param_get(&c->q->w, "expiretime") : "");
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return not_found(c, c->q->w.path);
    if (n->type != EMU_FILE)
        return fail(c, 400, "IllegalArgumentException", "SETEXPIRY applies to files only: %.200s", c->q->w.path);
    if (need(c, n, P_W) != 0) return -1;
    int64_t now = emu_now_ms();
    n->expiry_ms = never ? 0 : rel_now ? now + t : rel_create ? n->ctime_ms + t : t;
    if (n->expiry_ms < 0) n->expiry_ms = 0;
    if (save(c, n) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* CONCAT / MSCONCAT                                                                           */

static int copy_range(int from, int to, int64_t len, int64_t pos)
{
    off_t in = 0, outp = pos;
    while (len > 0) {
        ssize_t n = copy_file_range(from, &in, to, &outp, (size_t)(len > (1 << 30) ? (1 << 30) : len), 0);
        if (n > 0) {
            len -= n;
            continue;
        }
        if (n == 0) return -EIO;
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) return -errno;
        char buf[65536];
        while (len > 0) {
            ssize_t r = pread(from, buf, (size_t)(len > (int64_t)sizeof buf ? (int64_t)sizeof buf : len), in);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return r < 0 ? -errno : -EIO;
            for (ssize_t done = 0; done < r;) {
                ssize_t wr = pwrite(to, buf + done, (size_t)(r - done), outp);
                if (wr < 0 && errno == EINTR) continue;
                if (wr <= 0) return wr < 0 ? -errno : -EIO;
                done += wr;
                outp += wr;
            }
            in += r;
            len -= r;
        }
    }
    return 0;
}

typedef struct g1_srcs {
    char **v;
    int n;
} g1_srcs;

static void srcs_free(g1_srcs *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static int srcs_add(g1_ctx *c, g1_srcs *s, const char *p, size_t len)
{
    if (s->n >= G1_MAX_SOURCES) return fail(c, 400, "IllegalArgumentException", "too many sources");
    char *raw = strndup(p, len), *norm = NULL;
    if (!raw) return fail(c, 500, "RuntimeException", "out of memory");
    if (!*raw) {
        free(raw);
        return fail(c, 400, "IllegalArgumentException", "empty source path");
    }
    int rc = whreq_norm_path(raw, &norm, &c->err);
    free(raw);
    if (rc != 0) return -1;
    if (s->n % 16 == 0) {
        char **nv = realloc(s->v, sizeof *nv * (size_t)(s->n + 16));
        if (!nv) {
            free(norm);
            return fail(c, 500, "RuntimeException", "out of memory");
        }
        s->v = nv;
    }
    s->v[s->n++] = norm;
    return 0;
}

static int srcs_from_list(g1_ctx *c, g1_srcs *s, const char *list)
{
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (srcs_add(c, s, p, len) != 0) return -1;
        p = e ? e + 1 : p + len;
    }
    if (s->n == 0) return fail(c, 400, "IllegalArgumentException", "no sources given");
    return 0;
}

/* MSCONCAT body: JSON {"sources":["/a","/b"]} (SDK >= 2.3.3) or the older text "sources=/a,/b". */
static int srcs_from_body(g1_ctx *c, g1_srcs *s, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')) i++;
    if (i < len && data[i] == '{') {
        json_error_t je;
        json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
        json_t *arr = root && json_is_object(root) ? json_object_get(root, "sources") : NULL;
        int rc = 0;
        if (!arr || !json_is_array(arr) || json_array_size(arr) == 0) {
            rc = fail(c, 400, "IllegalArgumentException",
                      "Invalid MSCONCAT body: expected {\"sources\":[\"/path\",...]}");
        } else {
            size_t k;
            json_t *v;
            json_array_foreach(arr, k, v)
            {
                if (!json_is_string(v)) {
                    rc = fail(c, 400, "IllegalArgumentException", "Invalid MSCONCAT body: sources must be strings");
                    break;
                }
                if (srcs_add(c, s, json_string_value(v), json_string_length(v)) != 0) {
                    rc = -1;
                    break;
                }
            }
        }
        json_decref(root);
        return rc;
    }
    if (len - i >= 8 && strncasecmp(data + i, "sources=", 8) == 0) {
        dbuf dec;
        dbuf_init(&dec, len + 1);
        size_t end = len;
        while (end > i && (data[end - 1] == '\r' || data[end - 1] == '\n')) end--;
        int rc = url_decode(data + i + 8, end - i - 8, URL_FORM | URL_NO_CTL, &dec);
        if (rc != 0)
            rc = fail(c, 400, "IllegalArgumentException", "Invalid MSCONCAT body: bad encoding");
        else
            rc = srcs_from_list(c, s, dec.data ? dec.data : "");
        dbuf_free(&dec);
        return rc;
    }
    return fail(c, 400, "IllegalArgumentException",
                "Invalid MSCONCAT body: expected JSON {\"sources\":[...]} or sources=...");
}

/* Concatenate sources (in order) onto target, then delete them (or, with delete_dir, the one
 * directory that holds them all). MSCONCAT creates a missing target; CONCAT needs it. The bytes
 * are copied under the store lock (copy_file_range); on failure the target is cut back. HDFS's
 * extra CONCAT rules (sources in the target's directory, full blocks) are not applied: ADLS has
 * no such rules and the proxy must forward whatever the primary accepts. */
static int concat_run(g1_ctx *c, const g1_srcs *s, bool create_target, bool delete_dir)
{
    emu_store *st = c->g->store;
    const char *target = c->q->w.path;
    g1_res tr;
    int rc = -1, tfd = -1;
    emu_node **nodes = calloc((size_t)s->n, sizeof *nodes);
    if (!nodes) return fail(c, 500, "RuntimeException", "out of memory");
    if (resolve(c, target, &tr) != 0) goto out;
    emu_node *t = tr.node;
    if (t && t->type != EMU_FILE) {
        rc = fail(c, 400, "IllegalArgumentException", "concat: target %.200s is not a file", target);
        goto out;
    }
    if (!t && !create_target) {
        rc = not_found(c, target);
        goto out;
    }
    if (!t && tr.under_file) {
        rc = fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %.200s", target);
        goto out;
    }
    if (need(c, t ? t : (tr.parent ? tr.parent : tr.deepest), P_W) != 0) goto out;
    if (t && t->busy) {
        rc = G1_AGAIN;
        goto out;
    }
    for (int i = 0; i < s->n; i++) {
        g1_res sr;
        if (strcmp(s->v[i], target) == 0) {
            rc = fail(c, 400, "IllegalArgumentException", "concat: target %.200s is among the sources", target);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(s->v[i], s->v[j]) == 0) {
                rc = fail(c, 400, "IllegalArgumentException", "concat: source %.200s is given twice", s->v[i]);
                goto out;
            }
        if (resolve(c, s->v[i], &sr) != 0) goto out;
        if (!sr.node) {
            rc = not_found(c, s->v[i]);
            goto out;
        }
        if (sr.node->type != EMU_FILE) {
            rc = fail(c, 400, "IllegalArgumentException", "concat: source %.200s is not a file", s->v[i]);
            goto out;
        }
        if (need(c, sr.node, P_R) != 0 || need(c, sr.node->parent, P_W) != 0) goto out;
        if (sr.node->busy) {
            rc = G1_AGAIN;
            goto out;
        }
    }
    bool created = false;
    if (!t) {
        emu_node *dir;
        if (make_dirs(c, target, false, false, 0, &dir) != 0) goto out;
        if (new_child(c, dir, leaf_of(target), EMU_FILE, false, 0, &t) != 0) goto out;
        created = true;
    }
    for (int i = 0; i < s->n; i++) nodes[i] = emu_store_lookup(st, s->v[i]);
    tfd = emu_store_open_object(st, t, O_RDWR);
    if (tfd < 0) {
        rc = fail(c, 500, "RuntimeException", "concat: cannot open target: %s", strerror(-tfd));
        goto undo;
    }
    int64_t pos = t->length;
    for (int i = 0; i < s->n; i++) {
        int sfd = emu_store_open_object(st, nodes[i], O_RDONLY);
        int e = sfd < 0 ? sfd : copy_range(sfd, tfd, nodes[i]->length, pos);
        if (sfd >= 0) close(sfd);
        if (e != 0) {
            if (ftruncate(tfd, t->length) != 0) LOGW("gen1: concat: cannot cut the target back");
            rc = fail(c, 500, "RuntimeException", "concat failed: %s", strerror(-e));
            goto undo;
        }
        pos += nodes[i]->length;
    }
    t->length = pos;
    t->visible_length = pos;
    t->mtime_ms = emu_now_ms();
    t->concurrent = false;
    emu_store_bump_etag(st, t);
    if (save(c, t) != 0) goto out;
    /* deleteSourceDirectory: remove the one folder that holds every source (never the root or a
     * folder holding the target); otherwise, or when the sources are spread out, remove them. */
    emu_node *dir = nodes[0]->parent;
    for (int i = 1; i < s->n; i++)
        if (nodes[i]->parent != dir) dir = NULL;
    if (delete_dir && dir && dir->parent && !emu_store_is_ancestor(dir, t)) {
        if (emu_store_remove(st, dir) != 0) LOGW("gen1: concat: cannot remove the source directory");
    } else {
        for (int i = 0; i < s->n; i++)
            if (emu_store_remove(st, nodes[i]) != 0) LOGW("gen1: concat: cannot remove a source");
    }
    emu_store_broadcast(st);
    emu_resp_empty(c->r, 200);
    rc = 0;
    goto out;
undo:
    if (created && emu_store_remove(st, t) != 0) LOGW("gen1: concat: cannot remove the new target");
out:
    if (tfd >= 0) close(tfd);
    free(nodes);
    return rc;
}

static int op_concat(g1_ctx *c)
{
    g1_srcs s = {0};
    const char *list = whreq_param_get(&c->q->w, "sources");
    int rc;
    if (!list || !*list)
        rc = fail(c, 400, "IllegalArgumentException", "Required param sources for op: %s is null or empty",
                  c->q->w.info->name);
    else if (srcs_from_list(c, &s, list) != 0)
        rc = -1;
    else
        rc = concat_run(c, &s, c->q->w.op == WH_OP_MSCONCAT, c->q->delete_dir);
    srcs_free(&s);
    return rc;
}

static int op_msconcat_body(g1_ctx *c)
{
    g1_srcs s = {0};
    int rc;
    if (srcs_from_body(c, &s, c->q->body.data ? c->q->body.data : "", c->q->body.len) != 0)
        rc = -1;
    else
        rc = concat_run(c, &s, true, c->q->delete_dir);
    srcs_free(&s);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* data ops: CREATE, APPEND, CONCURRENTAPPEND                                                  */

static int lease_check(g1_ctx *c, const emu_node *n)
{
    if (!n->lease_id[0]) return 0;
    if (n->lease_expiry_ms && n->lease_expiry_ms <= emu_now_ms()) return 0; /* stale lease */
    if (strcmp(n->lease_id, c->q->lease) == 0) return 0;
    /* ADLS reported lease conflicts as error 0x83090a16 (the Java SDK looks for that code). */
    return fail(c, 500, "RuntimeException",
                "%s failed with error 0x83090a16 (the file is locked by another writer's lease): %.200s",
                c->q->w.info->name, c->q->w.path);
}

/* Apply a syncFlag after data landed: DATA keeps the file open and the published length as it
 * was; METADATA publishes length and mtime; CLOSE also closes the handle and releases the lease. */
static void apply_sync(g1_ctx *c, emu_node *n, int64_t now)
{
    whreq_sync s = c->q->sync;
    if (s != WH_SYNC_DATA) {
        n->visible_length = n->length;
        n->mtime_ms = now;
    }
    n->open_for_write = s != WH_SYNC_CLOSE;
    if (s == WH_SYNC_CLOSE) {
        n->lease_id[0] = '\0';
        n->lease_expiry_ms = 0;
    } else if (c->q->lease[0]) {
        snprintf(n->lease_id, sizeof n->lease_id, "%s", c->q->lease);
        n->lease_expiry_ms = now + c->g->lease_ms;
    }
}

/* Checks of CREATE against the current namespace (run at begin and again at publish time). */
static int create_check(g1_ctx *c, g1_res *res)
{
    g1_req *q = c->q;
    const char *path = q->w.path;
    if (resolve(c, path, res) != 0) return -1;
    emu_node *n = res->node;
    if (n && n->type == EMU_DIR)
        return fail(c, 403, "FileAlreadyExistsException", "%.200s already exists as a directory", path);
    if (res->under_file) {
        char pp[G1_PATH_CAP];
        node_path(res->deepest, pp, sizeof pp);
        return fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %.200s", pp);
    }
    if (n) {
        if (!q->overwrite) return fail(c, 403, "FileAlreadyExistsException", "File already exists: %.200s", path);
        if (lease_check(c, n) != 0) return -1;
        if (need(c, res->parent, P_W) != 0 || need_sticky(c, res->parent, n) != 0) return -1;
        if (n->busy) return G1_AGAIN;
        return 0;
    }
    if (!res->parent && !q->create_parent) {
        char pp[G1_PATH_CAP];
        parent_path(path, pp, sizeof pp);
        return fail(c, 404, "FileNotFoundException", "Parent directory doesn't exist: %.200s", pp);
    }
    return need(c, res->parent ? res->parent : res->deepest, P_W);
}

/* Put the new file in place: the staged node (body case) or a new empty one. */
static int create_commit(g1_ctx *c, int64_t len)
{
    g1_req *q = c->q;
    g1_res res;
    int rc = create_check(c, &res);
    if (rc != 0) return rc;
    emu_node *staged = NULL;
    if (q->kind == G1_K_CREATE) {
        emu_node *st = staging_dir(c, false);
        staged = st ? emu_store_child(st, q->stage_name) : NULL;
        if (!staged) return fail(c, 500, "RuntimeException", "CREATE lost its staged data");
    }
    emu_node *parent = res.parent;
    if (!parent && make_dirs(c, q->w.path, false, false, 0, &parent) != 0) return -1;
    if (res.node) {
        int e = emu_store_remove(c->g->store, res.node);
        if (e != 0) return store_fail(c, e, "create");
    }
    emu_node *n;
    if (staged) {
        fill_meta(c, parent, EMU_FILE, q->has_mode, q->mode, staged);
        int e = emu_store_move(c->g->store, staged, parent, res.leaf);
        if (e != 0) return store_fail(c, e, "create");
        touch_dir(c, parent);
        n = staged;
    } else if (new_child(c, parent, res.leaf, EMU_FILE, q->has_mode, q->mode, &n) != 0) {
        return -1;
    }
    int64_t now = emu_now_ms();
    n->length = len;
    n->visible_length = 0;
    n->ctime_ms = n->mtime_ms = n->atime_ms = now;
    n->concurrent = false;
    apply_sync(c, n, now);
    emu_store_bump_etag(c->g->store, n);
    q->published = true;
    if (save(c, n) != 0) return -1;
    emu_store_broadcast(c->g->store);
    if (c->g->hadoop) {
        /* Hadoop: 201 + Location: webhdfs://<namenode host:port><path>. */
        const char *nn = whreq_param_get(&q->w, "namenoderpcaddress");
        const char *base = emu_req_base_url(c->r);
        dbuf loc;
        dbuf_init(&loc, G1_PATH_CAP * 3 + 256);
        const char *hp = (nn && *nn) ? nn : (strncmp(base, "http://", 7) == 0 ? base + 7 : base);
        if (dbuf_printf(&loc, "webhdfs://%s", hp) == 0 && url_encode(q->w.path, true, &loc) == 0)
            emu_resp_header(c->r, "Location", loc.data);
        dbuf_free(&loc);
    }
    emu_resp_empty(c->r, 201);
    return 0;
}

static int create_begin(g1_ctx *c)
{
    g1_req *q = c->q;
    g1_res res;
    int rc = create_check(c, &res);
    if (rc != 0) return rc;
    if (!emu_req_has_body(c->r)) return create_commit(c, 0);
    emu_node *st = staging_dir(c, true), *n = NULL;
    if (!st) return fail(c, 500, "RuntimeException", "cannot stage CREATE data");
    snprintf(q->stage_name, sizeof q->stage_name, "w%016" PRIx64, ++c->g->seq);
    emu_node *tmpl = calloc(1, sizeof *tmpl);
    if (!tmpl) return fail(c, 500, "RuntimeException", "out of memory");
    fill_meta(c, st, EMU_FILE, false, 0600, tmpl);
    int e = emu_store_create(c->g->store, st, q->stage_name, EMU_FILE, tmpl, &n);
    free(tmpl);
    if (e != 0) return store_fail(c, e, "create");
    q->fd = emu_store_open_object(c->g->store, n, O_RDWR);
    if (q->fd < 0) {
        int err = q->fd;
        if (emu_store_remove(c->g->store, n) != 0) LOGW("gen1: cannot drop a staged file");
        return fail(c, 500, "RuntimeException", "cannot open file data: %s", strerror(-err));
    }
    q->node_id = n->id;
    q->base = 0;
    q->kind = G1_K_CREATE;
    return 0;
}

/* Start streaming a body into n at its end. */
static int start_write(g1_ctx *c, emu_node *n, g1_kind kind)
{
    c->q->fd = emu_store_open_object(c->g->store, n, O_RDWR);
    if (c->q->fd < 0) return fail(c, 500, "RuntimeException", "cannot open file data: %s", strerror(-c->q->fd));
    n->busy++;
    c->q->busy_held = true;
    c->q->node_id = n->id;
    c->q->base = n->length;
    c->q->kind = kind;
    return 0;
}

static int append_begin(g1_ctx *c)
{
    g1_req *q = c->q;
    g1_res res;
    if (resolve(c, q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n || n->type != EMU_FILE)
        return fail(c, 404, "FileNotFoundException", "Failed to append to non-existent file %.200s", q->w.path);
    if (need(c, n, P_W) != 0) return -1;
    if (n->concurrent)
        return fail(c, 400, "IllegalArgumentException",
                    "APPEND is not allowed on %.200s: it was written with CONCURRENTAPPEND", q->w.path);
    if (lease_check(c, n) != 0) return -1;
    if (n->busy) return G1_AGAIN;
    if (q->offset >= 0 && q->offset != n->length)
        return fail(c, 400, "BadOffsetException",
                    "APPEND failed with error: the offset %" PRId64 " is not the end of file %.200s (length %" PRId64
                    ")",
                    q->offset, q->w.path, n->length);
    if (emu_req_has_body(c->r)) return start_write(c, n, G1_K_APPEND);
    /* zero-length APPEND: only the syncFlag (and lease) act */
    apply_sync(c, n, emu_now_ms());
    q->published = true;
    if (save(c, n) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

static int cappend_begin(g1_ctx *c)
{
    g1_req *q = c->q;
    const char *mode = whreq_param_get(&q->w, "appendmode");
    bool autocreate = false;
    if (mode && *mode) {
        if (strcasecmp(mode, "autocreate") != 0) return fail_arg(c, "appendMode", mode);
        autocreate = true;
    }
    g1_res res;
    if (resolve(c, q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (n && n->type != EMU_FILE) return fail(c, 404, "FileNotFoundException", "Path is not a file: %.200s", q->w.path);
    if (!n) {
        if (!autocreate) return fail(c, 404, "FileNotFoundException", "File %.200s does not exist.", q->w.path);
        if (res.under_file) return fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory");
        if (need(c, res.parent ? res.parent : res.deepest, P_W) != 0) return -1;
        emu_node *dir = res.parent;
        if (!dir && make_dirs(c, q->w.path, false, false, 0, &dir) != 0) return -1;
        if (new_child(c, dir, res.leaf, EMU_FILE, false, 0, &n) != 0) return -1;
        n->concurrent = true;
        if (save(c, n) != 0) return -1;
        q->autocreated = true;
    } else {
        if (!n->concurrent && n->length > 0)
            return fail(c, 400, "IllegalArgumentException",
                        "CONCURRENTAPPEND is not allowed on %.200s: it was written with CREATE/APPEND", q->w.path);
        if (need(c, n, P_W) != 0) return -1;
        if (n->busy) return G1_AGAIN;
    }
    if (emu_req_has_body(c->r)) return start_write(c, n, G1_K_CAPPEND);
    q->published = true;
    emu_resp_empty(c->r, 200);
    return 0;
}

/* end(): publish what the body wrote. */
static int append_finish(g1_ctx *c)
{
    g1_req *q = c->q;
    emu_node *n = find_node(c->g, q->w.path, q->node_id);
    if (!n) return fail(c, 404, "FileNotFoundException", "%.200s was deleted while being written", q->w.path);
    int64_t now = emu_now_ms();
    n->length = q->base + (int64_t)q->got;
    if (q->kind == G1_K_CAPPEND) {
        /* CONCURRENTAPPEND has no handle or lease: the new length is published at once. */
        n->concurrent = true;
        n->visible_length = n->length;
        n->mtime_ms = now;
    } else {
        apply_sync(c, n, now);
    }
    n->busy--;
    q->busy_held = false;
    q->published = true;
    emu_store_bump_etag(c->g->store, n);
    emu_store_broadcast(c->g->store);
    if (save(c, n) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

static int create_finish(g1_ctx *c)
{
    return create_commit(c, (int64_t)c->q->got);
}

/* Read the parameters of a data op (before any lock is taken). */
static int data_params(g1_ctx *c)
{
    g1_req *q = c->q;
    const whreq *w = &q->w;
    whreq_op op = w->op;
    const char *lease = whreq_param_get(w, "leaseid");
    if (lease && strlen(lease) >= sizeof q->lease) return fail_arg(c, "leaseid", lease);
    snprintf(q->lease, sizeof q->lease, "%s", lease ? lease : "");
    if (whreq_get_sync(w, op == WH_OP_CONCURRENTAPPEND ? WH_SYNC_DATA : WH_SYNC_CLOSE, &q->sync, &c->err) != 0)
        return -1;
    q->offset = -1;
    if (op == WH_OP_APPEND) {
        if (whreq_get_i64(w, "offset", -1, &q->offset, &c->err) != 0) return -1;
        if (q->offset < -1) return fail_arg(c, "offset", whreq_param_get(w, "offset"));
    }
    if (op == WH_OP_CREATE) {
        if (whreq_get_bool(w, "overwrite", false, &q->overwrite, &c->err) != 0) return -1;
        if (whreq_get_bool(w, "createparent", true, &q->create_parent, &c->err) != 0) return -1;
        if (get_mode(c, &q->has_mode, &q->mode) != 0) return -1;
    }
    if (op == WH_OP_MSCONCAT || op == WH_OP_CONCAT)
        if (whreq_get_bool(w, "deletesourcedirectory", false, &q->delete_dir, &c->err) != 0) return -1;
    /* A declared body over the limit is refused before a byte is read. ADLS documents 4 MB per
     * request but not the error it gave. We answer 413 with a RemoteException naming
     * IllegalArgumentException: 413 is what the HTTP glue answers (through g1_fault) when a chunked
     * body crosses the limit while streaming, so both cases look the same to a client, and no
     * client retries a 413. */
    int64_t cl = emu_req_content_length(c->r);
    if (cl > 0 && (uint64_t)cl > c->g->max_body)
        return fail(c, 413, "IllegalArgumentException",
                    "Request body of %" PRId64 " bytes exceeds the limit of %" PRIu64 " bytes", cl, c->g->max_body);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* request life cycle                                                                          */

typedef int (*g1_fn)(g1_ctx *c);

static int run_locked(g1_ctx *c, g1_fn fn)
{
    emu_store *s = c->g->store;
    int rc;
    emu_store_lock(s);
    while ((rc = fn(c)) == G1_AGAIN) emu_store_wait(s);
    emu_store_unlock(s);
    if (rc < 0) send_err(c->r, &c->err);
    return rc;
}

static g1_fn handler_for(whreq_op op)
{
    switch (op) {
    case WH_OP_GETFILESTATUS:
    case WH_OP_MSGETFILESTATUS: return op_getfilestatus;
    case WH_OP_LISTSTATUS:
    case WH_OP_MSLISTSTATUS: return op_liststatus;
    case WH_OP_GETCONTENTSUMMARY: return op_contentsummary;
    case WH_OP_GETACLSTATUS:
    case WH_OP_MSGETACLSTATUS: return op_aclstatus;
    case WH_OP_CHECKACCESS: return op_checkaccess;
    case WH_OP_GETHOMEDIRECTORY: return op_homedir;
    case WH_OP_OPEN: return op_open;
    case WH_OP_MKDIRS: return op_mkdirs;
    case WH_OP_RENAME: return op_rename;
    case WH_OP_DELETE: return op_delete;
    case WH_OP_CONCAT: return op_concat;
    case WH_OP_SETPERMISSION: return op_setpermission;
    case WH_OP_SETOWNER: return op_setowner;
    case WH_OP_SETACL:
    case WH_OP_MODIFYACLENTRIES:
    case WH_OP_REMOVEACLENTRIES:
    case WH_OP_REMOVEACL:
    case WH_OP_REMOVEDEFAULTACL: return op_acl;
    case WH_OP_SETTIMES: return op_settimes;
    case WH_OP_SETEXPIRY: return op_setexpiry;
    case WH_OP_CREATE: return create_begin;
    case WH_OP_APPEND: return append_begin;
    case WH_OP_CONCURRENTAPPEND: return cappend_begin;
    default: return NULL;
    }
}

static int check_auth(g1_ctx *c)
{
    const char *tok = c->g->token;
    if (!tok || !*tok) return 0;
    const char *h = emu_req_header(c->r, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        const char *v = h + 7;
        while (*v == ' ') v++;
        if (strcmp(v, tok) == 0) return 0;
        return fail(c, 401, "SecurityException", "Authentication failed: the bearer token is not valid");
    }
    return fail(c, 401, "SecurityException", "Authentication required: no bearer token");
}

static int identify(g1_ctx *c)
{
    const char *u = whreq_param_get(&c->q->w, "doas");
    const char *what = "doas";
    if (!u || !*u) {
        u = whreq_param_get(&c->q->w, "user.name");
        what = "user.name";
    }
    if (!u || !*u)
        u = c->g->default_user;
    else if (!principal_ok(u))
        return fail_arg(c, what, u);
    snprintf(c->q->user, sizeof c->q->user, "%s", u);
    c->q->super = strcmp(c->q->user, c->g->superuser) == 0;
    return 0;
}

static bool on_datanode(emu_gen1 *g, emu_req *r, bool *dn_set)
{
    pthread_mutex_lock(&g->dn_mu);
    *dn_set = g->datanode[0] != '\0';
    bool on = *dn_set && strcmp(g->datanode, emu_req_base_url(r)) == 0;
    pthread_mutex_unlock(&g->dn_mu);
    return on;
}

static void redirect(g1_ctx *c, const char *url)
{
    bool noredirect = false;
    whreq_err e;
    if (whreq_get_bool(&c->q->w, "noredirect", false, &noredirect, &e) != 0) noredirect = false;
    if (noredirect) {
        dbuf b;
        dbuf_init(&b, strlen(url) * 2 + 64);
        if (dbuf_adds(&b, "{\"Location\":") == 0 && jstr(&b, url) == 0 && dbuf_adds(&b, "}") == 0)
            emu_resp_json(c->r, 200, b.data);
        else
            emu_resp_empty(c->r, 500);
        dbuf_free(&b);
        return;
    }
    emu_resp_header(c->r, "Location", url);
    emu_resp_empty(c->r, 307);
}

/* The namenode half of Hadoop's two-step OPEN/APPEND checks that the file exists first. */
static int nn_check(g1_ctx *c)
{
    g1_res res;
    if (resolve(c, c->q->w.path, &res) != 0) return -1;
    if (!res.node || res.node->type != EMU_FILE)
        return fail(c, 404, "FileNotFoundException", "File %.200s not found.", c->q->w.path);
    return 0;
}

/* Returns true when the request was answered with a redirect (or an error). */
static bool dialect_step(g1_ctx *c)
{
    emu_gen1 *g = c->g;
    whreq_op op = c->q->w.op;
    bool data = op == WH_OP_CREATE || op == WH_OP_APPEND || op == WH_OP_OPEN;
    dbuf url;
    if (g->hadoop) {
        bool dn_set;
        bool on_dn = on_datanode(g, c->r, &dn_set);
        if (on_dn && !data) {
            fail(c, 400, "IllegalArgumentException", "Invalid operation %s on a datanode", c->q->w.info->name);
            send_err(c->r, &c->err);
            return true;
        }
        if (!data || on_dn || !dn_set) return false; /* no datanode listener: serve in place */
        if (op != WH_OP_CREATE && run_locked(c, nn_check) < 0) return true;
        const char *base = emu_req_base_url(c->r);
        char dn[sizeof g->datanode];
        pthread_mutex_lock(&g->dn_mu);
        snprintf(dn, sizeof dn, "%s", g->datanode);
        pthread_mutex_unlock(&g->dn_mu);
        dbuf_init(&url, 64 * 1024);
        if (dbuf_printf(&url, "%s%s&namenoderpcaddress=%s", dn, emu_req_target(c->r),
                        strncmp(base, "http://", 7) == 0 ? base + 7 : base) == 0)
            redirect(c, url.data);
        else
            emu_resp_empty(c->r, 500);
        dbuf_free(&url);
        return true;
    }
    if (!data) return false;
    const char *flag = op == WH_OP_CREATE ? "write" : op == WH_OP_APPEND ? "append" : "read";
    bool v = false;
    if (whreq_get_bool(&c->q->w, flag, false, &v, &c->err) != 0) {
        send_err(c->r, &c->err);
        return true;
    }
    if (v) return false;
    /* ADLS two-step: the same URL plus the flag, absolute, whatever the request carried. */
    dbuf_init(&url, 64 * 1024);
    const char *target = emu_req_target(c->r);
    if (dbuf_printf(&url, "%s%s%s%s=true", emu_req_base_url(c->r), target, strchr(target, '?') ? "&" : "?", flag) == 0)
        redirect(c, url.data);
    else
        emu_resp_empty(c->r, 500);
    dbuf_free(&url);
    return true;
}

static void g1_begin(void *ctx, emu_req *r)
{
    emu_gen1 *g = ctx;
    g1_req *q = calloc(1, sizeof *q);
    if (!q) {
        if (emu_req_fault(r, "UNKNOWN") == 0) emu_resp_empty(r, 503);
        return;
    }
    q->fd = -1;
    emu_req_set_data(r, q);
    g1_ctx c = {.g = g, .r = r, .q = q};
    whreq_err perr;
    q->parsed = whreq_parse(emu_req_method(r), emu_req_target(r), &q->w, &perr) == 0;
    if (emu_req_fault(r, q->parsed ? q->w.info->name : "UNKNOWN") != 0) {
        q->skip = true;
        return;
    }
    if (!q->parsed) {
        send_err(r, &perr);
        return;
    }
    if (check_auth(&c) != 0 || identify(&c) != 0) {
        if (c.err.status == 401) emu_resp_header(r, "WWW-Authenticate", "Bearer");
        send_err(r, &c.err);
        return;
    }
    if (dialect_step(&c)) return;
    whreq_op op = q->w.op;
    bool body_op = op == WH_OP_CREATE || op == WH_OP_APPEND || op == WH_OP_CONCURRENTAPPEND || op == WH_OP_MSCONCAT;
    if (body_op && data_params(&c) != 0) {
        send_err(r, &c.err);
        return;
    }
    if (op == WH_OP_MSCONCAT) {
        if (emu_req_has_body(r)) {
            q->kind = G1_K_MSCONCAT;
            dbuf_init(&q->body, (size_t)g->max_body);
            return;
        }
        run_locked(&c, op_concat); /* the old form: sources in the query */
        return;
    }
    g1_fn fn = handler_for(op);
    if (!fn) {
        fail(&c, 400, "UnsupportedOperationException", "%s is not supported", q->w.info->name);
        send_err(r, &c.err);
        return;
    }
    run_locked(&c, fn);
}

static void g1_body(void *ctx, emu_req *r, const char *data, size_t n)
{
    emu_gen1 *g = ctx;
    g1_req *q = emu_req_get_data(r);
    if (!q || q->skip || emu_req_answered(r) || q->kind == G1_K_NONE) return;
    g1_ctx c = {.g = g, .r = r, .q = q};
    if (q->kind == G1_K_MSCONCAT) {
        if (dbuf_add(&q->body, data, n) != 0) {
            fail(&c, 413, "IllegalArgumentException", "MSCONCAT body exceeds the limit of %" PRIu64 " bytes",
                 g->max_body);
            send_err(r, &c.err);
        }
        return;
    }
    if (q->got + n > g->max_body) {
        fail(&c, 413, "IllegalArgumentException", "Request body exceeds the limit of %" PRIu64 " bytes", g->max_body);
        send_err(r, &c.err);
        return;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(q->fd, data + done, n - done, (off_t)(q->base + (int64_t)(q->got + done)));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            fail(&c, 500, "RuntimeException", "write failed: %s", w < 0 ? strerror(errno) : "short write");
            send_err(r, &c.err);
            return;
        }
        done += (size_t)w;
    }
    q->got += n;
}

static void g1_end(void *ctx, emu_req *r)
{
    emu_gen1 *g = ctx;
    g1_req *q = emu_req_get_data(r);
    if (!q || q->skip || emu_req_answered(r)) return;
    g1_ctx c = {.g = g, .r = r, .q = q};
    switch (q->kind) {
    case G1_K_CREATE: run_locked(&c, create_finish); break;
    case G1_K_APPEND:
    case G1_K_CAPPEND: run_locked(&c, append_finish); break;
    case G1_K_MSCONCAT: run_locked(&c, op_msconcat_body); break;
    default:
        fail(&c, 500, "RuntimeException", "request was not handled");
        send_err(r, &c.err);
        break;
    }
}

/* Undo an unpublished body: drop the staged CREATE node, or cut the file back to where this body
 * started (and drop a file CONCURRENTAPPEND created for it if nothing else landed). */
static void rollback(emu_gen1 *g, g1_req *q)
{
    emu_store *s = g->store;
    emu_store_lock(s);
    if (q->kind == G1_K_CREATE) {
        emu_node *root = emu_store_root(s);
        emu_node *st = emu_store_child(root, G1_STAGING);
        emu_node *n = st ? emu_store_child(st, q->stage_name) : NULL;
        if (n && emu_store_remove(s, n) != 0) LOGW("gen1: cannot drop a staged file");
    } else if (q->kind == G1_K_APPEND || q->kind == G1_K_CAPPEND) {
        if (q->fd >= 0 && ftruncate(q->fd, q->base) != 0) LOGW("gen1: cannot cut a file back after a failed write");
        emu_node *n = find_node(g, q->w.path, q->node_id);
        if (n && q->busy_held) {
            n->busy--;
            if (q->autocreated && n->busy == 0 && n->length == 0 && emu_store_remove(s, n) != 0)
                LOGW("gen1: cannot drop an auto-created file");
        }
    }
    q->busy_held = false;
    emu_store_broadcast(s);
    emu_store_unlock(s);
}

static void g1_done(void *ctx, emu_req *r, bool completed)
{
    emu_gen1 *g = ctx;
    g1_req *q = emu_req_get_data(r);
    if (!q) return;
    emu_req_set_data(r, NULL);
    bool data = q->kind == G1_K_CREATE || q->kind == G1_K_APPEND || q->kind == G1_K_CAPPEND;
    if (data && !q->published) rollback(g, q);
    if (q->fd >= 0) close(q->fd);
    if (q->parsed) whreq_free(&q->w);
    dbuf_free(&q->body);
    free(q);
}

static void g1_fault(void *ctx, emu_req *r, int status, int retry_after_s)
{
    whreq_err e;
    const char *exc;
    switch (status) {
    case 400: exc = "IllegalArgumentException"; break;
    case 401: exc = "SecurityException"; break;
    case 403: exc = "AccessControlException"; break;
    case 404: exc = "FileNotFoundException"; break;
    case 429: exc = "ThrottledException"; break;
    case 503: exc = "RetriableException"; break;
    default: exc = status >= 500 ? "RuntimeException" : "IOException"; break;
    }
    e.status = status;
    e.exception = exc;
    snprintf(e.message, sizeof e.message, "Injected fault: HTTP %d", status);
    if (status == 413 && emu_req_body_bytes(r) > emu_req_max_body(r)) {
        /* not a rule: the glue's body limit (see data_params) */
        e.exception = "IllegalArgumentException";
        snprintf(e.message, sizeof e.message, "Request body exceeds the limit of %" PRIu64 " bytes",
                 emu_req_max_body(r));
    }
    if (retry_after_s > 0) {
        char v[24];
        snprintf(v, sizeof v, "%d", retry_after_s);
        emu_resp_header(r, "Retry-After", v);
    }
    send_err(r, &e);
}

/* ------------------------------------------------------------------------------------------ */

int emu_gen1_new(const emu_gen1_opts *o, emu_gen1 **out, emu_service *svc)
{
    emu_gen1 *g = calloc(1, sizeof *g);
    if (!g) return -1;
    if (!o || !o->store) {
        free(g);
        return -1;
    }
    pthread_mutex_init(&g->dn_mu, NULL);
    g->store = o->store;
    g->hadoop = o->hadoop;
    g->max_body = o->max_body ? o->max_body : G1_DEFAULT_MAX_BODY;
    g->lease_ms = o->lease_ms > 0 ? o->lease_ms : G1_DEFAULT_LEASE_MS;
    g->token = (o->token && *o->token) ? strdup(o->token) : NULL;
    g->superuser = strdup(o->superuser && *o->superuser ? o->superuser : "hdfs");
    g->default_user = strdup(o->default_user && *o->default_user ? o->default_user
                             : g->superuser                      ? g->superuser
                                                                 : "hdfs");
    if ((o->token && *o->token && !g->token) || !g->superuser || !g->default_user) {
        emu_gen1_free(g);
        return -1;
    }
    /* CREATE bodies that were in flight when the emulator stopped never happened. */
    emu_store_lock(g->store);
    emu_node *st = emu_store_child(emu_store_root(g->store), G1_STAGING);
    if (st && emu_store_remove(g->store, st) != 0) LOGW("gen1: cannot clear the staging directory");
    emu_store_unlock(g->store);
    svc->ctx = g;
    svc->begin = g1_begin;
    svc->body = g1_body;
    svc->end = g1_end;
    svc->done = g1_done;
    svc->fault = g1_fault;
    *out = g;
    return 0;
}

void emu_gen1_set_datanode(emu_gen1 *g, const char *datanode_base_url)
{
    pthread_mutex_lock(&g->dn_mu);
    snprintf(g->datanode, sizeof g->datanode, "%s", datanode_base_url ? datanode_base_url : "");
    size_t n = strlen(g->datanode);
    if (n > 0 && g->datanode[n - 1] == '/') g->datanode[n - 1] = '\0';
    pthread_mutex_unlock(&g->dn_mu);
}

void emu_gen1_free(emu_gen1 *g)
{
    if (!g) return;
    pthread_mutex_destroy(&g->dn_mu);
    free(g->token);
    free(g->superuser);
    free(g->default_user);
    free(g);
}
