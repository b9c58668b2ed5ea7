/*
 * dgcache (dgcache.h): a hash table of entries chained per bucket, and one list of every entry in use
 * order (head: most recently used) from which the tail goes when the cache is full. Subtree drops and
 * moves walk the list: they come with DELETE and RENAME, which cost a Gen2 round trip anyway, and the
 * list is bounded by the configured size.
 */
#include "dgcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct dg_ent {
    struct dg_ent *hnext;      /* bucket chain */
    struct dg_ent *prev, *next; /* use order */
    char *path;
    char *props;               /* NULL: unknown */
    dgc_val v;
    unsigned h;
} dg_ent;

struct dgcache {
    pthread_mutex_t mu;
    dg_ent **b;
    unsigned nb;               /* buckets: a power of two */
    unsigned n, max;
    dg_ent *head, *tail;
};

static unsigned dg_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

dgcache *dgc_new(unsigned max)
{
    dgcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->max = max;
    c->nb = 16;
    while (c->nb < max && c->nb < (1u << 24)) c->nb <<= 1;
    c->b = calloc(c->nb, sizeof *c->b);
    if (!c->b) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void ent_free(dg_ent *e)
{
    free(e->path);
    free(e->props);
    free(e);
}

void dgc_free(dgcache *c)
{
    if (!c) return;
    for (dg_ent *e = c->head, *nx; e; e = nx) {
        nx = e->next;
        ent_free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->b);
    free(c);
}

static dg_ent *find(dgcache *c, const char *path, unsigned h)
{
    for (dg_ent *e = c->b[h & (c->nb - 1)]; e; e = e->hnext)
        if (e->h == h && strcmp(e->path, path) == 0) return e;
    return NULL;
}

static void list_unlink(dgcache *c, dg_ent *e)
{
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_head(dgcache *c, dg_ent *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

/* Take e out of the table and the list (not freed). */
static void detach(dgcache *c, dg_ent *e)
{
    dg_ent **pp = &c->b[e->h & (c->nb - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->hnext = NULL;
    list_unlink(c, e);
    c->n--;
}

static void attach(dgcache *c, dg_ent *e)
{
    unsigned i = e->h & (c->nb - 1);
    e->hnext = c->b[i];
    c->b[i] = e;
    list_push_head(c, e);
    c->n++;
}

bool dgc_get(dgcache *c, const char *path, dgc_val *v, char **props)
{
    if (props) *props = NULL;
    if (!c || c->max == 0) return false;
    pthread_mutex_lock(&c->mu);
    dg_ent *e = find(c, path, dg_hash(path));
    bool ok = e != NULL;
    if (e) {
        list_unlink(c, e);
        list_push_head(c, e);
        *v = e->v;
        if (props && e->props && !(*props = strdup(e->props))) ok = false;
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

int dgc_put(dgcache *c, const char *path, const dgc_val *v, const char *props)
{
    if (!c || c->max == 0) return 0;
    char *pc = props ? strdup(props) : NULL;
    if (props && !pc) {
        dgc_drop(c, path);
        return -1;
    }
    unsigned h = dg_hash(path);
    pthread_mutex_lock(&c->mu);
    dg_ent *e = find(c, path, h);
    if (e) {
        list_unlink(c, e);
        list_push_head(c, e);
    } else {
        if (c->n >= c->max && c->tail) {
            dg_ent *old = c->tail;
            detach(c, old);
            ent_free(old);
        }
        e = calloc(1, sizeof *e);
        if (e && !(e->path = strdup(path))) {
            free(e);
            e = NULL;
        }
        if (!e) {
            pthread_mutex_unlock(&c->mu);
            free(pc);
            return -1;
        }
        e->h = h;
        attach(c, e);
    }
    free(e->props);
    e->props = pc;
    e->v = *v;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void dgc_drop(dgcache *c, const char *path)
{
    if (!c || c->max == 0) return;
    pthread_mutex_lock(&c->mu);
    dg_ent *e = find(c, path, dg_hash(path));
    if (e) {
        detach(c, e);
        ent_free(e);
    }
    pthread_mutex_unlock(&c->mu);
}

/* p is root or under it ("/" covers everything). */
static bool under(const char *p, const char *root, size_t rl)
{
    if (rl == 1 && root[0] == '/') return true;
    return strncmp(p, root, rl) == 0 && (p[rl] == '\0' || p[rl] == '/');
}

static void drop_tree_locked(dgcache *c, const char *root)
{
    size_t rl = strlen(root);
    for (dg_ent *e = c->head, *nx; e; e = nx) {
        nx = e->next;
        if (under(e->path, root, rl)) {
            detach(c, e);
            ent_free(e);
        }
    }
}

void dgc_drop_tree(dgcache *c, const char *root)
{
    if (!c || c->max == 0) return;
    pthread_mutex_lock(&c->mu); /* (c->n is read under the lock: entries come and go on other threads) */
    drop_tree_locked(c, root);
    pthread_mutex_unlock(&c->mu);
}

void dgc_move(dgcache *c, const char *src, const char *dst)
{
    if (!c || c->max == 0) return;
    pthread_mutex_lock(&c->mu);
    drop_tree_locked(c, dst);
    size_t sl = strlen(src), dl = strlen(dst);
    dg_ent *moved = NULL; /* taken out first, so a moved entry is never looked at twice */
    for (dg_ent *e = c->head, *nx; e; e = nx) {
        nx = e->next;
        if (!under(e->path, src, sl)) continue;
        detach(c, e);
        e->hnext = moved;
        moved = e;
    }
    while (moved) {
        dg_ent *e = moved;
        moved = e->hnext;
        const char *rest = sl == 1 && src[0] == '/' ? e->path : e->path + sl;
        size_t rn = strlen(rest);
        char *np = malloc(dl + rn + 1);
        if (!np) {
            ent_free(e);
            continue;
        }
        memcpy(np, dst, dl);
        memcpy(np + dl, rest, rn + 1);
        free(e->path);
        e->path = np;
        e->h = dg_hash(np);
        attach(c, e);
    }
    pthread_mutex_unlock(&c->mu);
}

unsigned dgc_max(const dgcache *c)
{
    return c ? c->max : 0;
}

unsigned dgc_count(dgcache *c)
{
    if (!c) return 0;
    pthread_mutex_lock(&c->mu);
    unsigned n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}
