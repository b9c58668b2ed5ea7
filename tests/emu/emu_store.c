/*
 * emu_store: the emulators' namespace (a tree of emu_node kept in memory, each directory's children in
 * a name-sorted array searched by bisection) made durable by an append-only JSON-lines metadata log
 * (DIR/meta.log) plus one object file per regular file (DIR/objects/<16 hex id>). Every mutation is
 * serialised in memory first and appended with one write(2), so a kill -9 loses at most the record
 * being written; replay at open tolerates (and truncates) a torn final line. The log is compacted
 * into a snapshot (written to meta.log.tmp, fsynced, renamed over) when it holds more than four
 * records per live node. A snapshot begins with a "seq" record so node ids and ETags never go
 * backwards, even when the nodes holding the highest values were deleted. Replay keeps the final
 * state of every id in a hash map and builds the tree at the end, so a long log costs O(records).
 *
 * This file holds the tree, locking, object files and the public API; the log itself (record encoding,
 * appends, compaction, replay at open) is in emu_store_log.c, and the shared internals in emu_store_int.h.
 */
#include "emu_store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "emu_store_int.h"
#include "log.h"

#define LOCK_NAME "lock"
#define OBJ_DIR "objects"

/* ---------------------------------------------------------------------------------------------- */
/* small helpers */

int emu_store__pvec_push(pvec *v, void *x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        void **q = realloc(v->p, cap * sizeof *q);
        if (!q) return -ENOMEM;
        v->p = q;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return 0;
}

__attribute__((format(printf, 3, 4))) void emu_store__set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void emu_store__obj_name(uint64_t id, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, id);
}

int64_t emu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------------------- */
/* nodes and children */

void emu_store__node_free(emu_node *n)
{
    if (!n) return;
    free(n->name);
    free(n->children);
    free(n->acl);
    free(n->staged);
    free(n->properties);
    free(en(n));
}

void emu_node_acl_get(const emu_node *n, acl_node *out)
{
    out->mode = n->mode;
    out->ext.n = n->nacl;
    if (n->nacl > 0) memcpy(out->ext.e, n->acl, (size_t)n->nacl * sizeof *n->acl);
}

int emu_node_acl_put(emu_node *n, const acl_node *a)
{
    if (a->ext.n < 0 || a->ext.n > ACL_MAX_ENTRIES) return -EINVAL;
    acl_entry *e = NULL;
    if (a->ext.n > 0) {
        e = malloc((size_t)a->ext.n * sizeof *e);
        if (!e) return -ENOMEM;
        memcpy(e, a->ext.e, (size_t)a->ext.n * sizeof *e);
    }
    free(n->acl);
    n->acl = e;
    n->nacl = a->ext.n;
    n->mode = a->mode;
    return 0;
}

int emu_node_staged_reserve(emu_node *n, int want)
{
    if (want > EMU_MAX_STAGED) return -E2BIG;
    if (want <= n->cap_staged) return 0;
    int cap = n->cap_staged ? n->cap_staged * 2 : 4;
    while (cap < want) cap *= 2;
    if (cap > EMU_MAX_STAGED) cap = EMU_MAX_STAGED;
    emu_range *p = realloc(n->staged, (size_t)cap * sizeof *p);
    if (!p) return -ENOMEM;
    n->staged = p;
    n->cap_staged = cap;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* the string pool (owner and group) */

static uint64_t str_hash(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static int pool_grow(strpool *p)
{
    size_t ncap = p->cap ? p->cap * 2 : 64;
    char **slots = calloc(ncap, sizeof *slots);
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < p->cap; i++) {
        if (!p->slots[i]) continue;
        size_t j = str_hash(p->slots[i], strlen(p->slots[i])) & (ncap - 1);
        while (slots[j]) j = (j + 1) & (ncap - 1);
        slots[j] = p->slots[i];
    }
    free(p->slots);
    p->slots = slots;
    p->cap = ncap;
    return 0;
}

static void pool_free(strpool *p)
{
    for (size_t i = 0; i < p->cap; i++) free(p->slots[i]);
    free(p->slots);
    memset(p, 0, sizeof *p);
}

/* The pooled copy of v's first EMU_MAX_PRINCIPAL - 1 bytes (what a principal field held), or NULL
 * on ENOMEM. */
const char *emu_store__intern(emu_store *s, const char *v)
{
    size_t len = strnlen(v, EMU_MAX_PRINCIPAL - 1);
    if (len == 0) return "";
    strpool *p = &s->pool;
    if ((p->used + 1) * 2 > p->cap && pool_grow(p)) return NULL;
    size_t j = str_hash(v, len) & (p->cap - 1);
    for (; p->slots[j]; j = (j + 1) & (p->cap - 1))
        if (strncmp(p->slots[j], v, len) == 0 && p->slots[j][len] == '\0') return p->slots[j];
    char *c = malloc(len + 1);
    if (!c) return NULL;
    memcpy(c, v, len);
    c[len] = '\0';
    p->slots[j] = c;
    p->used++;
    return c;
}

int emu_store_set_owner(emu_store *s, emu_node *n, const char *owner)
{
    const char *v = emu_store__intern(s, owner);
    if (!v) return -ENOMEM;
    n->owner = v;
    return 0;
}

int emu_store_set_group(emu_store *s, emu_node *n, const char *group)
{
    const char *v = emu_store__intern(s, group);
    if (!v) return -ENOMEM;
    n->group = v;
    return 0;
}

int emu_store_set_meta(emu_store *s, emu_node *n, const emu_meta *m)
{
    /* Pool first: an entry added there and then not used costs nothing, a half-applied meta would. */
    const char *owner = emu_store__intern(s, m->owner), *group = emu_store__intern(s, m->group);
    if (!owner || !group) return -ENOMEM;
    int rc = emu_node_acl_put(n, &m->acl);
    if (rc) return rc;
    n->owner = owner;
    n->group = group;
    return 0;
}

/* Compare a child's name with (s, len) in strcmp byte order. */
int emu_store__name_cmp(const emu_node *c, const char *s, size_t len)
{
    size_t cl = en(c)->namelen;
    int r = memcmp(c->name, s, cl < len ? cl : len);
    if (r) return r;
    return cl < len ? -1 : (cl > len ? 1 : 0);
}

/* Index of the first child whose name is >= (s, len); *found when equal. */
static size_t lower_bound(const emu_node *dir, const char *s, size_t len, bool *found)
{
    size_t lo = 0, hi = dir->nchildren;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (emu_store__name_cmp(dir->children[mid], s, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < dir->nchildren && emu_store__name_cmp(dir->children[lo], s, len) == 0;
    return lo;
}

static emu_node *child_n(const emu_node *dir, const char *s, size_t len)
{
    if (!dir || dir->type != EMU_DIR) return NULL;
    bool found;
    size_t i = lower_bound(dir, s, len, &found);
    return found ? dir->children[i] : NULL;
}

int emu_store__children_reserve(emu_node *dir, size_t want)
{
    if (want <= dir->cap_children) return 0;
    size_t cap = dir->cap_children ? dir->cap_children * 2 : 4;
    while (cap < want) cap *= 2;
    emu_node **p = realloc(dir->children, cap * sizeof *p);
    if (!p) return -ENOMEM;
    dir->children = p;
    dir->cap_children = cap;
    return 0;
}

/* Insert c at index i of dir (space reserved by the caller). */
static void children_insert(emu_node *dir, size_t i, emu_node *c)
{
    memmove(dir->children + i + 1, dir->children + i, (dir->nchildren - i) * sizeof *dir->children);
    dir->children[i] = c;
    dir->nchildren++;
    c->parent = dir;
}

static void children_detach(emu_node *c)
{
    emu_node *dir = c->parent;
    bool found;
    size_t i = lower_bound(dir, c->name, en(c)->namelen, &found);
    if (!found || dir->children[i] != c) {
        /* Cannot happen while the array stays sorted; fall back to a scan rather than corrupt it. */
        for (i = 0; i < dir->nchildren && dir->children[i] != c; i++) {}
        if (i == dir->nchildren) return;
    }
    memmove(dir->children + i, dir->children + i + 1, (dir->nchildren - i - 1) * sizeof *dir->children);
    dir->nchildren--;
    c->parent = NULL;
    if (dir->cap_children > 64 && dir->nchildren < dir->cap_children / 4) { /* give back a drained array */
        emu_node **p = realloc(dir->children, dir->cap_children / 2 * sizeof *p);
        if (p) {
            dir->children = p;
            dir->cap_children /= 2;
        }
    }
}

int emu_store__name_check(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return -EINVAL;
    if (len > EMU_MAX_NAME) return -ENAMETOOLONG;
    return 0;
}

/* All nodes of the subtree at top, parents before children. */
static int subtree_collect(emu_node *top, pvec *out)
{
    if (emu_store__pvec_push(out, top)) return -ENOMEM;
    for (size_t i = 0; i < out->n; i++) {
        emu_node *d = out->p[i];
        for (size_t k = 0; k < d->nchildren; k++)
            if (emu_store__pvec_push(out, d->children[k])) return -ENOMEM;
    }
    return 0;
}

static emu_node *root_new(emu_store *s, const emu_store_opts *o)
{
    enode *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    emu_node *n = &e->n;
    n->id = ROOT_ID;
    n->type = EMU_DIR;
    n->name = strdup("");
    if (!n->name) {
        free(e);
        return NULL;
    }
    n->mode = o->root_mode & 07777;
    n->owner = emu_store__intern(s, o->root_owner ? o->root_owner : "");
    n->group = emu_store__intern(s, o->root_group ? o->root_group : "");
    if (!n->owner || !n->group) {
        emu_store__node_free(n);
        return NULL;
    }
    n->ctime_ms = n->mtime_ms = n->atime_ms = emu_now_ms();
    return n;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
        buf[i] = c;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* public API */

int emu_store_open(const emu_store_opts *o, emu_store **out, char *err, size_t errlen)
{
    emu_store *s = calloc(1, sizeof *s);
    replay r = {0};
    int rc = -1;
    if (!s) {
        emu_store__set_err(err, errlen, "out of memory");
        return -1;
    }
    s->dirfd = s->objfd = s->logfd = s->lockfd = -1;
    s->sync = o->sync;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!o->dir || !o->dir[0]) {
        emu_store__set_err(err, errlen, "no data directory given");
        goto out;
    }
    int e = mkdir_p(o->dir);
    if (e) {
        emu_store__set_err(err, errlen, "cannot create %s: %s", o->dir, strerror(-e));
        goto out;
    }
    s->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        emu_store__set_err(err, errlen, "cannot open %s: %s", o->dir, strerror(errno));
        goto out;
    }
    s->lockfd = openat(s->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        emu_store__set_err(err, errlen, "data directory %s is in use or unwritable: %s", o->dir, strerror(errno));
        goto out;
    }
    if (mkdirat(s->dirfd, OBJ_DIR, 0755) != 0 && errno != EEXIST) {
        emu_store__set_err(err, errlen, "cannot create %s/objects: %s", o->dir, strerror(errno));
        goto out;
    }
    s->objfd = openat(s->dirfd, OBJ_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    s->logfd = openat(s->dirfd, LOG_NAME, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (s->objfd < 0 || s->logfd < 0) {
        emu_store__set_err(err, errlen, "cannot open the store in %s: %s", o->dir, strerror(errno));
        goto out;
    }
    unlinkat(s->dirfd, LOG_TMP_NAME, 0); /* a compaction that did not finish */
    if (emu_store__replay_log(s, &r, err, errlen)) goto out;
    if (r.map.used > 0 && !emu_store__idmap_get(&r.map, ROOT_ID)) {
        emu_store__set_err(err, errlen, "%s in %s has nodes but no root", LOG_NAME, o->dir);
        goto out;
    }
    s->records = r.records;
    s->next_id = r.max_id + 1;
    s->etag = r.max_etag;
    if (emu_store__build_tree(s, &r)) {
        emu_store__set_err(err, errlen, "out of memory building the tree");
        goto out;
    }
    emu_store__objects_reconcile(s, &r.map);
    emu_store__idmap_free(&r.map, false); /* the nodes now belong to the tree */
    if (!s->root) {
        emu_node *root = root_new(s, o);
        if (!root) {
            emu_store__set_err(err, errlen, "out of memory");
            goto out;
        }
        if (s->next_id <= ROOT_ID) s->next_id = ROOT_ID + 1;
        root->etag = ++s->etag;
        if (emu_store__log_put(s, root, 0, "")) {
            emu_store__node_free(root);
            emu_store__set_err(err, errlen, "cannot write %s/%s", o->dir, LOG_NAME);
            goto out;
        }
        s->root = root;
        atomic_store(&s->nnodes, 1);
    }
    emu_store__maybe_compact(s);
    rc = 0;
out:
    if (rc) {
        emu_store__idmap_free(&r.map, true);
        emu_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void emu_store_close(emu_store *s)
{
    if (!s) return;
    if (s->root) {
        pvec all = {0};
        if (subtree_collect(s->root, &all) == 0) {
            for (size_t i = 0; i < all.n; i++) emu_store__node_free(all.p[i]);
        }
        free(all.p);
    }
    if (s->logfd >= 0) close(s->logfd);
    if (s->objfd >= 0) close(s->objfd);
    if (s->lockfd >= 0) close(s->lockfd);
    if (s->dirfd >= 0) close(s->dirfd);
    pool_free(&s->pool);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void emu_store_lock(emu_store *s)
{
    pthread_mutex_lock(&s->mu);
}

void emu_store_unlock(emu_store *s)
{
    pthread_mutex_unlock(&s->mu);
}

void emu_store_wait(emu_store *s)
{
    pthread_cond_wait(&s->cv, &s->mu);
}

void emu_store_broadcast(emu_store *s)
{
    pthread_cond_broadcast(&s->cv);
}

emu_node *emu_store_root(emu_store *s)
{
    return s->root;
}

emu_node *emu_store_lookup(emu_store *s, const char *path)
{
    if (!path || path[0] != '/') return NULL;
    emu_node *cur = s->root;
    const char *p = path;
    while (cur) {
        while (*p == '/') p++;
        if (!*p) return cur;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        cur = child_n(cur, p, len);
        p += len;
    }
    return NULL;
}

emu_node *emu_store_child(const emu_node *dir, const char *name)
{
    return child_n(dir, name, strlen(name));
}

size_t emu_store_child_after(const emu_node *dir, const char *after)
{
    if (!after || !after[0] || dir->type != EMU_DIR) return 0;
    bool found;
    size_t i = lower_bound(dir, after, strlen(after), &found);
    return found ? i + 1 : i;
}

int emu_store_path(const emu_node *n, char *buf, size_t cap)
{
    if (cap < 2) return -E2BIG;
    if (!n->parent) {
        memcpy(buf, "/", 2);
        return 0;
    }
    size_t total = 0;
    for (const emu_node *c = n; c->parent; c = c->parent) total += 1 + en(c)->namelen;
    if (total + 1 > cap) return -E2BIG;
    size_t pos = total;
    buf[pos] = '\0';
    for (const emu_node *c = n; c->parent; c = c->parent) {
        size_t l = en(c)->namelen;
        pos -= l;
        memcpy(buf + pos, c->name, l);
        buf[--pos] = '/';
    }
    return 0;
}

bool emu_store_is_ancestor(const emu_node *a, const emu_node *b)
{
    for (; b; b = b->parent)
        if (a == b) return true;
    return false;
}

int emu_store_create(emu_store *s, emu_node *dir, const char *name, emu_type type, const emu_meta *meta,
                     emu_node **out)
{
    int rc;
    enode *e = NULL;
    bool made_object = false;
    char oname[17];
    if (!dir || dir->type != EMU_DIR) return -ENOTDIR;
    if (type != EMU_DIR && type != EMU_FILE) return -EINVAL;
    if ((rc = emu_store__name_check(name))) return rc;
    bool found;
    size_t pos = lower_bound(dir, name, strlen(name), &found);
    if (found) return -EEXIST;
    if (s->logfd < 0) return -EIO;
    rc = -EIO;
    if (emu_store__children_reserve(dir, dir->nchildren + 1)) goto out;
    e = calloc(1, sizeof *e);
    if (!e || !(e->n.name = strdup(name))) goto out;
    emu_node *n = &e->n;
    e->namelen = strlen(name);
    n->id = s->next_id;
    n->type = type;
    int64_t now = emu_now_ms();
    n->owner = n->group = "";
    if (meta) {
        if ((rc = emu_store_set_meta(s, n, meta))) {
            if (rc == -ENOMEM) rc = -EIO;
            goto out;
        }
        rc = -EIO;
        n->ctime_ms = meta->ctime_ms;
        n->mtime_ms = meta->mtime_ms;
        n->atime_ms = meta->atime_ms;
    } else {
        n->mode = type == EMU_DIR ? 0755 : 0644;
    }
    if (!n->ctime_ms) n->ctime_ms = now;
    if (!n->mtime_ms) n->mtime_ms = now;
    if (!n->atime_ms) n->atime_ms = now;
    n->etag = s->etag + 1;
    if (type == EMU_FILE) {
        emu_store__obj_name(n->id, oname);
        int fd = openat(s->objfd, oname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST) /* left by a crash before its record was written */
            fd = openat(s->objfd, oname, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) goto out;
        close(fd);
        made_object = true;
    }
    if ((rc = emu_store__log_put(s, n, dir->id, name))) goto out;
    s->next_id++;
    s->etag++;
    children_insert(dir, pos, n);
    atomic_fetch_add(&s->nnodes, 1);
    if (out) *out = n;
    e = NULL;
    rc = 0;
    emu_store__maybe_compact(s);
out:
    if (e) {
        if (made_object) unlinkat(s->objfd, oname, 0);
        emu_store__node_free(&e->n);
    }
    return rc;
}

int emu_store_remove(emu_store *s, emu_node *n)
{
    if (!n || !n->parent) return -EINVAL;
    if (s->logfd < 0) return -EIO;
    pvec all = {0};
    if (subtree_collect(n, &all)) {
        free(all.p);
        return -EIO;
    }
    char line[64];
    int len = snprintf(line, sizeof line, "{\"del\":%" PRIu64 "}\n", n->id);
    if (emu_store__log_append(s, line, (size_t)len)) {
        free(all.p);
        return -EIO;
    }
    children_detach(n);
    int64_t bytes = 0;
    for (size_t i = 0; i < all.n; i++) {
        emu_node *c = all.p[i];
        if (c->type == EMU_FILE) {
            char oname[17];
            emu_store__obj_name(c->id, oname);
            unlinkat(s->objfd, oname, 0);
            bytes += en(c)->counted_len;
        }
        emu_store__node_free(c);
    }
    atomic_fetch_sub(&s->nnodes, (uint64_t)all.n);
    atomic_fetch_sub(&s->bytes, bytes);
    free(all.p);
    emu_store__maybe_compact(s);
    return 0;
}

int emu_store_move(emu_store *s, emu_node *n, emu_node *new_parent, const char *new_name)
{
    int rc;
    if (!n || !n->parent || !new_parent) return -EINVAL;
    if (new_parent->type != EMU_DIR) return -ENOTDIR;
    if (emu_store_is_ancestor(n, new_parent)) return -EINVAL;
    if ((rc = emu_store__name_check(new_name))) return rc;
    bool found;
    size_t nlen = strlen(new_name);
    size_t pos = lower_bound(new_parent, new_name, nlen, &found);
    if (found) return new_parent->children[pos] == n ? 0 : -EEXIST;
    if (s->logfd < 0) return -EIO;
    char *nm = strdup(new_name);
    if (!nm || emu_store__children_reserve(new_parent, new_parent->nchildren + 1)) {
        free(nm);
        return -EIO;
    }
    if ((rc = emu_store__log_put(s, n, new_parent->id, new_name))) {
        free(nm);
        return rc;
    }
    children_detach(n);
    free(n->name);
    n->name = nm;
    en(n)->namelen = nlen;
    /* Detaching from the same parent shifted the slots after the old position. */
    pos = lower_bound(new_parent, nm, nlen, &found);
    children_insert(new_parent, pos, n);
    emu_store__maybe_compact(s);
    return 0;
}

int emu_store_save(emu_store *s, emu_node *n)
{
    if (!n) return -EINVAL;
    if (s->logfd < 0) return -EIO;
    int rc = emu_store__log_put(s, n, n->parent ? n->parent->id : 0, n->name);
    if (rc) return rc;
    if (n->nstaged == 0 && n->staged) { /* all committed: give the ranges back */
        free(n->staged);
        n->staged = NULL;
        n->cap_staged = 0;
    }
    if (n->type == EMU_FILE) {
        atomic_fetch_add(&s->bytes, n->length - en(n)->counted_len);
        en(n)->counted_len = n->length;
    }
    emu_store__maybe_compact(s);
    return 0;
}

void emu_store_bump_etag(emu_store *s, emu_node *n)
{
    n->etag = ++s->etag;
}

int emu_store_open_object(emu_store *s, const emu_node *n, int flags)
{
    char oname[17];
    emu_store__obj_name(n->id, oname);
    int fd = openat(s->objfd, oname, flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int emu_store_truncate_object(emu_store *s, const emu_node *n, int64_t len)
{
    if (len < 0) return -EINVAL;
    int fd = emu_store_open_object(s, n, O_WRONLY);
    if (fd < 0) return fd;
    int rc = ftruncate(fd, (off_t)len) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

void emu_store_stats(emu_store *s, uint64_t *nodes, uint64_t *bytes)
{
    if (nodes) *nodes = atomic_load(&s->nnodes);
    if (bytes) {
        int64_t b = atomic_load(&s->bytes);
        *bytes = b > 0 ? (uint64_t)b : 0;
    }
}
