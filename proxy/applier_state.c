/*
 * applier_state: the applier's shared knowledge about Gen2 kept between operations, under a->mu
 * (applier_int.h). The cache maps Gen1 paths to what Gen2 holds there: a directory, or a file with its
 * committed length (so an APPEND need not ask Gen2 for the length each time); it is bounded and simply
 * emptied when full. The metadata marks remember nodes created on Gen2 whose Gen1 metadata could not
 * be read yet because a later write had already moved them on Gen1. The covers remember resyncs that
 * made Gen2 equal to Gen1 under a root as of a journal seq, so that later operations they already
 * include finish without being replayed.
 */
#include "applier_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ================================================================ cache (under a->mu) */

static unsigned cache_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % AP_CACHE_BUCKETS;
}

void ap_cache_clear(applier *a)
{
    for (int i = 0; i < AP_CACHE_BUCKETS; i++) {
        while (a->cache[i]) {
            ap_cent *e = a->cache[i];
            a->cache[i] = e->next;
            free(e->path);
            free(e);
        }
    }
    a->ncache = 0;
}

static ap_cent *cache_find(applier *a, const char *path)
{
    for (ap_cent *e = a->cache[cache_hash(path)]; e; e = e->next)
        if (strcmp(e->path, path) == 0) return e;
    return NULL;
}

void ap_cache_put(applier *a, const char *path, bool is_dir, uint64_t len)
{
    pthread_mutex_lock(&a->mu);
    ap_cent *e = cache_find(a, path);
    if (!e) {
        if (a->ncache >= AP_CACHE_MAX) ap_cache_clear(a);
        e = calloc(1, sizeof *e);
        if (e && !(e->path = strdup(path))) {
            free(e);
            e = NULL;
        }
        if (e) {
            unsigned h = cache_hash(path);
            e->next = a->cache[h];
            a->cache[h] = e;
            a->ncache++;
        }
    }
    if (e) {
        e->is_dir = is_dir;
        e->len = len;
    }
    pthread_mutex_unlock(&a->mu);
}

/* 1 and *len for a file with a known length, 2 for a known directory, 0 unknown. */
int ap_cache_get(applier *a, const char *path, uint64_t *len)
{
    pthread_mutex_lock(&a->mu);
    ap_cent *e = cache_find(a, path);
    int rc = !e ? 0 : e->is_dir ? 2 : 1;
    if (e && len) *len = e->len;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* Forget path and everything under it. */
void ap_cache_drop_tree(applier *a, const char *path)
{
    size_t n = strlen(path);
    bool root = strcmp(path, "/") == 0;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < AP_CACHE_BUCKETS; i++) {
        ap_cent **pp = &a->cache[i];
        while (*pp) {
            ap_cent *e = *pp;
            if (root || (strncmp(e->path, path, n) == 0 && (e->path[n] == 0 || e->path[n] == '/'))) {
                *pp = e->next;
                free(e->path);
                free(e);
                a->ncache--;
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* ================================================================ metadata marks (under a->mu) */

/*
 * A node is created on Gen2 after Gen1 made it, and its metadata is then read from Gen1. When a later
 * write has already moved it on Gen1 (a quick create-then-rename), that read finds nothing: the path
 * is marked, and the RENAME that moved it (which per-path order runs after) copies the metadata at
 * the new place. A DELETE drops the marks under it.
 */
static bool under(const char *p, const char *root)
{
    return ap_path_under(p, root);
}

void ap_marks_add(applier *a, const char *path)
{
    pthread_mutex_lock(&a->mu);
    bool have = false;
    for (int i = 0; i < a->nmarks && !have; i++) have = strcmp(a->marks[i], path) == 0;
    if (!have && a->nmarks < AP_MARKS_MAX) {
        if (ap_path_list_add(&a->marks, &a->nmarks, path) != 0) LOGW("msg=\"metadata mark lost: out of memory\"");
    } else if (!have) {
        LOGW("msg=\"too many nodes wait for their metadata: one is dropped\" path=\"%s\"", path);
    }
    pthread_mutex_unlock(&a->mu);
}

void ap_marks_drop_tree(applier *a, const char *root)
{
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->nmarks;) {
        if (under(a->marks[i], root)) {
            free(a->marks[i]);
            a->marks[i] = a->marks[--a->nmarks];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* Take the marks under src (moved to dst): their new paths, malloc'd, in *out. */
int ap_marks_take_moved(applier *a, const char *src, const char *dst, char ***out, int *n)
{
    int rc = 0;
    size_t sl = strcmp(src, "/") == 0 ? 0 : strlen(src);
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->nmarks;) {
        if (!under(a->marks[i], src)) {
            i++;
            continue;
        }
        dbuf b;
        dbuf_init(&b, WHREQ_MAX_PATH + 2);
        if (dbuf_adds(&b, dst) == 0 && dbuf_adds(&b, a->marks[i] + sl) == 0 && ap_path_list_add(out, n, b.data) != 0)
            rc = -1;
        dbuf_free(&b);
        free(a->marks[i]);
        a->marks[i] = a->marks[--a->nmarks];
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* ================================================================ resync covers (under a->mu) */

/*
 * A cover (root, epoch): a resync copied root from Gen1 while no record touching root waited for the
 * primary, and no record touching root came in during the copy (the gate said so before and after).
 * Every record up to epoch that touches only paths under covered roots is therefore already on Gen2.
 * A cover is useless once every unfinished operation is newer than its epoch; those are dropped when
 * the list fills up. Should it still be full, the oldest goes (its operations are then replayed,
 * which the idempotency checks make safe in all but rare cases: logged).
 */
static uint64_t min_pending_seq(applier *a)
{
    uint64_t m = UINT64_MAX;
    for (aop *o = a->head; o; o = o->next)
        if (o->req->seq < m) m = o->req->seq;
    for (aop *o = a->in_head; o; o = o->qnext)
        if (o->req->seq < m) m = o->req->seq;
    return m;
}

static void cover_drop(applier *a, int i)
{
    free(a->covers[i].root);
    memmove(&a->covers[i], &a->covers[i + 1], sizeof a->covers[0] * (size_t)(a->ncovers - i - 1));
    a->ncovers--;
}

void ap_cover_add(applier *a, const char *root, uint64_t epoch)
{
    char *r = strdup(root);
    if (!r) {
        LOGW("msg=\"resync cover lost: out of memory\" root=\"%s\"", root);
        return;
    }
    pthread_mutex_lock(&a->mu);
    if (a->ncovers >= AP_COVERS_MAX / 2) {
        uint64_t m = min_pending_seq(a);
        for (int i = 0; i < a->ncovers;) {
            if (a->covers[i].epoch < m) cover_drop(a, i);
            else i++;
        }
    }
    if (a->ncovers >= AP_COVERS_MAX) {
        LOGW("msg=\"too many resync covers: the oldest is dropped\" root=\"%s\" epoch=%" PRIu64, a->covers[0].root,
             a->covers[0].epoch);
        cover_drop(a, 0);
    }
    a->covers[a->ncovers].root = r;
    a->covers[a->ncovers].epoch = epoch;
    a->ncovers++;
    pthread_mutex_unlock(&a->mu);
}

bool ap_covered(applier *a, const aop *op, bool locked, char *buf, size_t cap)
{
    if (op->ntouch == 0) return false;
    if (!locked) pthread_mutex_lock(&a->mu);
    int found = -1;
    for (int t = 0; t < op->ntouch; t++) {
        int hit = -1;
        for (int i = a->ncovers - 1; i >= 0 && hit < 0; i--)
            if (op->req->seq <= a->covers[i].epoch && ap_path_under(op->touch[t], a->covers[i].root)) hit = i;
        if (hit < 0) {
            found = -1;
            break;
        }
        if (found < 0) found = hit;
    }
    if (found >= 0 && buf) snprintf(buf, cap, "%s", a->covers[found].root);
    if (!locked) pthread_mutex_unlock(&a->mu);
    return found >= 0;
}

void ap_covers_clear(applier *a)
{
    for (int i = 0; i < a->ncovers; i++) free(a->covers[i].root);
    a->ncovers = 0;
}
