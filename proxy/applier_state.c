/*
 * applier_state: the applier's shared knowledge about Gen2 kept between operations, under a->mu
 * (applier_int.h). The cache maps Gen1 paths to what Gen2 holds there: a directory, or a file with its
 * committed length (so an APPEND need not ask Gen2 for the length each time); it is bounded and simply
 * emptied when full. The metadata marks remember nodes created on Gen2 whose Gen1 metadata could not
 * be read yet because a later write had already moved them on Gen1.
 */
#include "applier_int.h"

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
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0) return true;
    return strncmp(p, root, n) == 0 && (p[n] == 0 || p[n] == '/');
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
