/*
 * emu_gen1_data: the Gen1 ops that move file bytes. OPEN answers with a range of the object file.
 * CONCAT and MSCONCAT copy the sources onto the target under the store lock and remove them.
 * CREATE, APPEND and CONCURRENTAPPEND are validated in begin() (leases, offsets, permissions, the
 * body limit), stream their body outside the lock (emu_gen1.c writes it to q->fd at q->base), and
 * are published in end(): CREATE moves its staged node into place, APPEND applies its syncFlag
 * (DATA keeps the published length, METADATA and CLOSE publish it; CLOSE releases the lease), and
 * CONCURRENTAPPEND publishes at once. A body that never completes is undone by g1_rollback.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dbuf.h"
#include "emu_gen1_int.h"
#include "log.h"
#include "urlcodec.h"
#include "whreq.h"

#define G1_MAX_SOURCES 4096

int g1_op_open(g1_ctx *c)
{
    const whreq *w = &c->q->w;
    int64_t off, len;
    if (whreq_get_i64(w, "offset", 0, &off, &c->err) != 0) return -1;
    if (whreq_get_i64(w, "length", -1, &len, &c->err) != 0) return -1;
    if (off < 0) return g1_fail_arg(c, "offset", whreq_param_get(w, "offset"));
    if (len < -1) return g1_fail_arg(c, "length", whreq_param_get(w, "length"));
    /* Where reads start (GET /counters): a re-copy that resumes or copies a tail reads past 0. */
    emu_req_count(c->r, off > 0 ? "OPEN past 0" : "OPEN at 0");
    g1_res res;
    if (g1_resolve(c, w->path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n) return g1_not_found(c, w->path);
    if (n->type != EMU_FILE) return g1_fail(c, 404, "FileNotFoundException", "Path is not a file: %.200s", w->path);
    if (g1_need(c, n, P_R) != 0) return -1;
    /* Readers see every committed byte (also those appended with syncFlag=DATA), as HDFS readers
     * see hflushed data; only the reported length waits for METADATA/CLOSE. */
    if (off > n->length)
        return g1_fail(c, 400, "BadOffsetException",
                       "Requested offset %" PRId64 " is beyond the end of file (%" PRId64 ")", off, n->length);
    int64_t avail = n->length - off;
    if (len < 0 || len > avail) len = avail;
    int fd = emu_store_open_object(c->g->store, n, O_RDONLY);
    if (fd < 0) return g1_fail(c, 500, "RuntimeException", "cannot open file data: %s", strerror(-fd));
    emu_resp_fd(c->r, 200, "application/octet-stream", fd, (uint64_t)off, (uint64_t)len);
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
    if (s->n >= G1_MAX_SOURCES) return g1_fail(c, 400, "IllegalArgumentException", "too many sources");
    char *raw = strndup(p, len), *norm = NULL;
    if (!raw) return g1_fail(c, 500, "RuntimeException", "out of memory");
    if (!*raw) {
        free(raw);
        return g1_fail(c, 400, "IllegalArgumentException", "empty source path");
    }
    int rc = whreq_norm_path(raw, &norm, &c->err);
    free(raw);
    if (rc != 0) return -1;
    if (s->n % 16 == 0) {
        char **nv = realloc(s->v, sizeof *nv * (size_t)(s->n + 16));
        if (!nv) {
            free(norm);
            return g1_fail(c, 500, "RuntimeException", "out of memory");
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
    if (s->n == 0) return g1_fail(c, 400, "IllegalArgumentException", "no sources given");
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
            rc = g1_fail(c, 400, "IllegalArgumentException",
                         "Invalid MSCONCAT body: expected {\"sources\":[\"/path\",...]}");
        } else {
            size_t k;
            json_t *v;
            json_array_foreach(arr, k, v)
            {
                if (!json_is_string(v)) {
                    rc = g1_fail(c, 400, "IllegalArgumentException", "Invalid MSCONCAT body: sources must be strings");
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
            rc = g1_fail(c, 400, "IllegalArgumentException", "Invalid MSCONCAT body: bad encoding");
        else
            rc = srcs_from_list(c, s, dec.data ? dec.data : "");
        dbuf_free(&dec);
        return rc;
    }
    return g1_fail(c, 400, "IllegalArgumentException",
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
    if (!nodes) return g1_fail(c, 500, "RuntimeException", "out of memory");
    if (g1_resolve(c, target, &tr) != 0) goto out;
    emu_node *t = tr.node;
    if (t && t->type != EMU_FILE) {
        rc = g1_fail(c, 400, "IllegalArgumentException", "concat: target %.200s is not a file", target);
        goto out;
    }
    if (!t && !create_target) {
        rc = g1_not_found(c, target);
        goto out;
    }
    if (!t && tr.under_file) {
        rc = g1_fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %.200s", target);
        goto out;
    }
    if (g1_need(c, t ? t : (tr.parent ? tr.parent : tr.deepest), P_W) != 0) goto out;
    if (t && t->busy) {
        rc = G1_AGAIN;
        goto out;
    }
    for (int i = 0; i < s->n; i++) {
        g1_res sr;
        if (strcmp(s->v[i], target) == 0) {
            rc = g1_fail(c, 400, "IllegalArgumentException", "concat: target %.200s is among the sources", target);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(s->v[i], s->v[j]) == 0) {
                rc = g1_fail(c, 400, "IllegalArgumentException", "concat: source %.200s is given twice", s->v[i]);
                goto out;
            }
        if (g1_resolve(c, s->v[i], &sr) != 0) goto out;
        if (!sr.node) {
            rc = g1_not_found(c, s->v[i]);
            goto out;
        }
        if (sr.node->type != EMU_FILE) {
            rc = g1_fail(c, 400, "IllegalArgumentException", "concat: source %.200s is not a file", s->v[i]);
            goto out;
        }
        if (g1_need(c, sr.node, P_R) != 0 || g1_need(c, sr.node->parent, P_W) != 0) goto out;
        if (sr.node->busy) {
            rc = G1_AGAIN;
            goto out;
        }
    }
    bool created = false;
    if (!t) {
        emu_node *dir;
        if (g1_make_dirs(c, target, false, false, 0, &dir) != 0) goto out;
        if (g1_new_child(c, dir, g1_leaf_of(target), EMU_FILE, false, 0, &t) != 0) goto out;
        created = true;
    }
    for (int i = 0; i < s->n; i++) nodes[i] = emu_store_lookup(st, s->v[i]);
    tfd = emu_store_open_object(st, t, O_RDWR);
    if (tfd < 0) {
        rc = g1_fail(c, 500, "RuntimeException", "concat: cannot open target: %s", strerror(-tfd));
        goto undo;
    }
    int64_t pos = t->length;
    for (int i = 0; i < s->n; i++) {
        int sfd = emu_store_open_object(st, nodes[i], O_RDONLY);
        int e = sfd < 0 ? sfd : copy_range(sfd, tfd, nodes[i]->length, pos);
        if (sfd >= 0) close(sfd);
        if (e != 0) {
            if (ftruncate(tfd, t->length) != 0) LOGW("gen1: concat: cannot cut the target back");
            rc = g1_fail(c, 500, "RuntimeException", "concat failed: %s", strerror(-e));
            goto undo;
        }
        pos += nodes[i]->length;
    }
    t->length = pos;
    t->visible_length = pos;
    t->mtime_ms = emu_now_ms();
    t->concurrent = false;
    emu_store_bump_etag(st, t);
    if (g1_save(c, t) != 0) goto out;
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

int g1_op_concat(g1_ctx *c)
{
    g1_srcs s = {0};
    const char *list = whreq_param_get(&c->q->w, "sources");
    int rc;
    if (!list || !*list)
        rc = g1_fail(c, 400, "IllegalArgumentException", "Required param sources for op: %s is null or empty",
                     c->q->w.info->name);
    else if (srcs_from_list(c, &s, list) != 0)
        rc = -1;
    else
        rc = concat_run(c, &s, c->q->w.op == WH_OP_MSCONCAT, c->q->delete_dir);
    srcs_free(&s);
    return rc;
}

int g1_op_msconcat_body(g1_ctx *c)
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
    return g1_fail(c, 500, "RuntimeException",
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
    if (g1_resolve(c, path, res) != 0) return -1;
    emu_node *n = res->node;
    if (n && n->type == EMU_DIR)
        return g1_fail(c, 403, "FileAlreadyExistsException", "%.200s already exists as a directory", path);
    if (res->under_file) {
        char pp[G1_PATH_CAP];
        g1_node_path(res->deepest, pp, sizeof pp);
        return g1_fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %.200s", pp);
    }
    if (n) {
        if (!q->overwrite) return g1_fail(c, 403, "FileAlreadyExistsException", "File already exists: %.200s", path);
        if (lease_check(c, n) != 0) return -1;
        if (g1_need(c, res->parent, P_W) != 0 || g1_need_sticky(c, res->parent, n) != 0) return -1;
        if (n->busy) return G1_AGAIN;
        return 0;
    }
    if (!res->parent && !q->create_parent) {
        char pp[G1_PATH_CAP];
        g1_parent_path(path, pp, sizeof pp);
        return g1_fail(c, 404, "FileNotFoundException", "Parent directory doesn't exist: %.200s", pp);
    }
    return g1_need(c, res->parent ? res->parent : res->deepest, P_W);
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
        emu_node *st = g1_staging_dir(c, false);
        staged = st ? emu_store_child(st, q->stage_name) : NULL;
        if (!staged) return g1_fail(c, 500, "RuntimeException", "CREATE lost its staged data");
    }
    emu_node *parent = res.parent;
    if (!parent && g1_make_dirs(c, q->w.path, false, false, 0, &parent) != 0) return -1;
    if (res.node) {
        int e = emu_store_remove(c->g->store, res.node);
        if (e != 0) return g1_store_fail(c, e, "create");
    }
    emu_node *n;
    if (staged) {
        emu_meta *meta = calloc(1, sizeof *meta);
        if (!meta) return g1_fail(c, 500, "RuntimeException", "out of memory");
        g1_fill_meta(c, parent, EMU_FILE, q->has_mode, q->mode, meta);
        int e = emu_store_set_meta(c->g->store, staged, meta);
        free(meta);
        if (e != 0) return g1_store_fail(c, e, "create");
        e = emu_store_move(c->g->store, staged, parent, res.leaf);
        if (e != 0) return g1_store_fail(c, e, "create");
        g1_touch_dir(c, parent);
        n = staged;
    } else if (g1_new_child(c, parent, res.leaf, EMU_FILE, q->has_mode, q->mode, &n) != 0) {
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
    if (g1_save(c, n) != 0) return -1;
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

int g1_create_begin(g1_ctx *c)
{
    g1_req *q = c->q;
    g1_res res;
    int rc = create_check(c, &res);
    if (rc != 0) return rc;
    if (!emu_req_has_body(c->r)) return create_commit(c, 0);
    emu_node *st = g1_staging_dir(c, true), *n = NULL;
    if (!st) return g1_fail(c, 500, "RuntimeException", "cannot stage CREATE data");
    snprintf(q->stage_name, sizeof q->stage_name, "w%016" PRIx64, ++c->g->seq);
    emu_meta *tmpl = calloc(1, sizeof *tmpl);
    if (!tmpl) return g1_fail(c, 500, "RuntimeException", "out of memory");
    g1_fill_meta(c, st, EMU_FILE, false, 0600, tmpl);
    int e = emu_store_create(c->g->store, st, q->stage_name, EMU_FILE, tmpl, &n);
    free(tmpl);
    if (e != 0) return g1_store_fail(c, e, "create");
    q->fd = emu_store_open_object(c->g->store, n, O_RDWR);
    if (q->fd < 0) {
        int err = q->fd;
        if (emu_store_remove(c->g->store, n) != 0) LOGW("gen1: cannot drop a staged file");
        return g1_fail(c, 500, "RuntimeException", "cannot open file data: %s", strerror(-err));
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
    if (c->q->fd < 0) return g1_fail(c, 500, "RuntimeException", "cannot open file data: %s", strerror(-c->q->fd));
    n->busy++;
    c->q->busy_held = true;
    c->q->node_id = n->id;
    c->q->base = n->length;
    c->q->kind = kind;
    return 0;
}

int g1_append_begin(g1_ctx *c)
{
    g1_req *q = c->q;
    g1_res res;
    if (g1_resolve(c, q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (!n || n->type != EMU_FILE)
        return g1_fail(c, 404, "FileNotFoundException", "Failed to append to non-existent file %.200s", q->w.path);
    if (g1_need(c, n, P_W) != 0) return -1;
    if (n->concurrent)
        return g1_fail(c, 400, "IllegalArgumentException",
                       "APPEND is not allowed on %.200s: it was written with CONCURRENTAPPEND", q->w.path);
    if (lease_check(c, n) != 0) return -1;
    if (n->busy) return G1_AGAIN;
    if (q->offset >= 0 && q->offset != n->length)
        return g1_fail(c, 400, "BadOffsetException",
                       "APPEND failed with error: the offset %" PRId64 " is not the end of file %.200s (length %" PRId64
                       ")",
                       q->offset, q->w.path, n->length);
    if (emu_req_has_body(c->r)) return start_write(c, n, G1_K_APPEND);
    /* zero-length APPEND: only the syncFlag (and lease) act */
    apply_sync(c, n, emu_now_ms());
    q->published = true;
    if (g1_save(c, n) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

int g1_cappend_begin(g1_ctx *c)
{
    g1_req *q = c->q;
    const char *mode = whreq_param_get(&q->w, "appendmode");
    bool autocreate = false;
    if (mode && *mode) {
        if (strcasecmp(mode, "autocreate") != 0) return g1_fail_arg(c, "appendMode", mode);
        autocreate = true;
    }
    g1_res res;
    if (g1_resolve(c, q->w.path, &res) != 0) return -1;
    emu_node *n = res.node;
    if (n && n->type != EMU_FILE)
        return g1_fail(c, 404, "FileNotFoundException", "Path is not a file: %.200s", q->w.path);
    if (!n) {
        if (!autocreate) return g1_fail(c, 404, "FileNotFoundException", "File %.200s does not exist.", q->w.path);
        if (res.under_file) return g1_fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory");
        if (g1_need(c, res.parent ? res.parent : res.deepest, P_W) != 0) return -1;
        emu_node *dir = res.parent;
        if (!dir && g1_make_dirs(c, q->w.path, false, false, 0, &dir) != 0) return -1;
        if (g1_new_child(c, dir, res.leaf, EMU_FILE, false, 0, &n) != 0) return -1;
        n->concurrent = true;
        if (g1_save(c, n) != 0) return -1;
        q->autocreated = true;
    } else {
        if (!n->concurrent && n->length > 0)
            return g1_fail(c, 400, "IllegalArgumentException",
                           "CONCURRENTAPPEND is not allowed on %.200s: it was written with CREATE/APPEND", q->w.path);
        if (g1_need(c, n, P_W) != 0) return -1;
        if (n->busy) return G1_AGAIN;
    }
    if (emu_req_has_body(c->r)) return start_write(c, n, G1_K_CAPPEND);
    q->published = true;
    emu_resp_empty(c->r, 200);
    return 0;
}

/* end(): publish what the body wrote. */
int g1_append_finish(g1_ctx *c)
{
    g1_req *q = c->q;
    emu_node *n = g1_find_node(c->g, q->w.path, q->node_id);
    if (!n) return g1_fail(c, 404, "FileNotFoundException", "%.200s was deleted while being written", q->w.path);
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
    if (g1_save(c, n) != 0) return -1;
    emu_resp_empty(c->r, 200);
    return 0;
}

int g1_create_finish(g1_ctx *c)
{
    return create_commit(c, (int64_t)c->q->got);
}

/* Read the parameters of a data op (before any lock is taken). */
int g1_data_params(g1_ctx *c)
{
    g1_req *q = c->q;
    const whreq *w = &q->w;
    whreq_op op = w->op;
    const char *lease = whreq_param_get(w, "leaseid");
    if (lease && strlen(lease) >= sizeof q->lease) return g1_fail_arg(c, "leaseid", lease);
    snprintf(q->lease, sizeof q->lease, "%s", lease ? lease : "");
    if (whreq_get_sync(w, op == WH_OP_CONCURRENTAPPEND ? WH_SYNC_DATA : WH_SYNC_CLOSE, &q->sync, &c->err) != 0)
        return -1;
    q->offset = -1;
    if (op == WH_OP_APPEND) {
        if (whreq_get_i64(w, "offset", -1, &q->offset, &c->err) != 0) return -1;
        if (q->offset < -1) return g1_fail_arg(c, "offset", whreq_param_get(w, "offset"));
    }
    if (op == WH_OP_CREATE) {
        if (whreq_get_bool(w, "overwrite", false, &q->overwrite, &c->err) != 0) return -1;
        if (whreq_get_bool(w, "createparent", true, &q->create_parent, &c->err) != 0) return -1;
        if (g1_get_mode(c, &q->has_mode, &q->mode) != 0) return -1;
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
        return g1_fail(c, 413, "IllegalArgumentException",
                       "Request body of %" PRId64 " bytes exceeds the limit of %" PRIu64 " bytes", cl, c->g->max_body);
    return 0;
}

/* Undo an unpublished body: drop the staged CREATE node, or cut the file back to where this body
 * started (and drop a file CONCURRENTAPPEND created for it if nothing else landed). */
void g1_rollback(emu_gen1 *g, g1_req *q)
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
        emu_node *n = g1_find_node(g, q->w.path, q->node_id);
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
