/*
 * order: the per-path fence (what it promises is in order.h).
 *
 * Structures: every registered write has one ref per path it touches; refs hang off a node per path
 * (a hash of path -> node), in registration order. A write keeps the list of later writes that wait
 * for it (deps) and counts the earlier writes it waits for (blockers). Registering a write finds its
 * blockers: on each of its own paths the earlier writes there, on each ancestor path the writes that
 * cover that ancestor's subtree, and for a subtree write, every write below it (a walk over the
 * registered writes: subtree writes are DELETE and RENAME, and the walk costs the in-flight writes,
 * not history).
 *
 * Fewer edges: on one path, a write need not wait for everything before it. The latest earlier
 * write there that is not a CONCURRENTAPPEND waited itself for everything before it on that path,
 * and ends only after them, so waiting for it (and for the CONCURRENTAPPENDs after it) is enough.
 * That keeps the edges of a hot path linear in its writes. This relies on a write never ending
 * before the writes it waits for, hence the "ended early" state: a write that ends before its turn
 * (journal error) stays registered, holding its own waiters, until its own blockers ended.
 */
#include "order.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xlate.h"

#define ORD_MIN_BUCKETS 64u

typedef struct ord_node ord_node;

/* A chained hash table of structs that embed an hlink as their first member. */
typedef struct hlink {
    struct hlink *next;
    uint64_t h;
} hlink;

typedef struct htab {
    hlink **b;
    size_t mask, n;
} htab;

typedef struct ord_ref {
    ord_write *w;
    ord_node *node;
    bool subtree;                   /* the write covers this path's whole subtree */
    struct ord_ref *prev, *next;    /* in node's list, registration order */
} ord_ref;

struct ord_node {
    hlink hl;                       /* first: path hash */
    size_t len;
    ord_ref *head, *tail;
    char path[];
};

typedef enum ord_wstate {
    W_REGISTERED = 0, /* journaled, not ready yet */
    W_WAITING,        /* ready, waiting for blockers */
    W_SENT,           /* went (or may go) to the primary */
    W_ENDED,          /* ended before its turn: removed once its blockers ended */
} ord_wstate;

struct ord_write {
    hlink hl;                       /* first: seq hash (once bound) */
    uint64_t id;                    /* registration order */
    uint64_t seq;                   /* journal seq (ord_bind) */
    uint64_t stamp;                 /* id of the write whose blockers were last collected: dedup */
    uint64_t waits_for;             /* seq of the latest blocker */
    void *ud;
    bool concurrent;                /* CONCURRENTAPPEND */
    bool bound;
    ord_wstate st;
    unsigned blockers;
    ord_write **deps;               /* later writes waiting for this one, registration order */
    size_t ndeps, capdeps;
    ord_write *prev, *next;         /* every registered write, registration order */
    ord_write *qnext;               /* released queue, or the stack of writes to remove */
    int nrefs;
    ord_ref refs[];
};

struct ord {
    htab nodes;                     /* path -> node */
    htab writes;                    /* seq -> bound write */
    ord_write *head, *tail;
    ord_write *rel_head, *rel_tail; /* freed by ord_done, not yet taken */
    uint64_t next_id, nwaiting;
    uint64_t nlive;                 /* registered writes */
};

/* ---- tables ---- */

static uint64_t hash_path(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_seq(uint64_t s)
{
    s ^= s >> 33;
    s *= 0xff51afd7ed558ccdull;
    return s ^ (s >> 33);
}

static int htab_init(htab *t)
{
    t->b = calloc(ORD_MIN_BUCKETS, sizeof *t->b);
    t->mask = ORD_MIN_BUCKETS - 1;
    t->n = 0;
    return t->b ? 0 : -ENOMEM;
}

/* Double the table once it holds more than one entry per bucket. A failed allocation keeps the old
 * table: chains get longer, nothing breaks. */
static void htab_grow(htab *t)
{
    if (t->n <= t->mask + 1) return;
    size_t nm = t->mask * 2 + 1;
    hlink **nb = calloc(nm + 1, sizeof *nb);
    if (!nb) return;
    for (size_t i = 0; i <= t->mask; i++) {
        for (hlink *l = t->b[i], *nx; l; l = nx) {
            nx = l->next;
            l->next = nb[l->h & nm];
            nb[l->h & nm] = l;
        }
    }
    free(t->b);
    t->b = nb;
    t->mask = nm;
}

static void htab_put(htab *t, hlink *l, uint64_t h)
{
    l->h = h;
    l->next = t->b[h & t->mask];
    t->b[h & t->mask] = l;
    t->n++;
    htab_grow(t);
}

static void htab_del(htab *t, hlink *l)
{
    for (hlink **pp = &t->b[l->h & t->mask]; *pp; pp = &(*pp)->next) {
        if (*pp != l) continue;
        *pp = l->next;
        t->n--;
        return;
    }
}

static ord_node *node_find(const ord *o, const char *p, size_t len)
{
    uint64_t h = hash_path(p, len);
    for (hlink *l = o->nodes.b[h & o->nodes.mask]; l; l = l->next) {
        ord_node *n = (ord_node *)l;
        if (l->h == h && n->len == len && memcmp(n->path, p, len) == 0) return n;
    }
    return NULL;
}

static ord_node *node_get(ord *o, const char *p)
{
    size_t len = strlen(p);
    ord_node *n = node_find(o, p, len);
    if (n) return n;
    n = malloc(sizeof *n + len + 1);
    if (!n) return NULL;
    n->len = len;
    n->head = n->tail = NULL;
    memcpy(n->path, p, len + 1);
    htab_put(&o->nodes, &n->hl, hash_path(p, len));
    return n;
}

static void node_drop(ord *o, ord_node *n)
{
    htab_del(&o->nodes, &n->hl);
    free(n);
}

static ord_write *write_find(const ord *o, uint64_t seq)
{
    uint64_t h = hash_seq(seq);
    for (hlink *l = o->writes.b[h & o->writes.mask]; l; l = l->next)
        if (l->h == h && ((ord_write *)l)->seq == seq) return (ord_write *)l;
    return NULL;
}

/* ---- life cycle ---- */

ord *ord_new(void)
{
    ord *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    if (htab_init(&o->nodes) != 0 || htab_init(&o->writes) != 0) {
        ord_free(o);
        return NULL;
    }
    return o;
}

void ord_free(ord *o)
{
    if (!o) return;
    for (ord_write *w = o->head, *nx; w; w = nx) {
        nx = w->next;
        free(w->deps);
        free(w);
    }
    for (size_t i = 0; o->nodes.b && i <= o->nodes.mask; i++) {
        for (hlink *l = o->nodes.b[i], *nx; l; l = nx) {
            nx = l->next;
            free(l);
        }
    }
    free(o->nodes.b);
    free(o->writes.b);
    free(o);
}

/* ---- registration ---- */

/* A growable list of writes (the blockers of the write being registered). */
typedef struct wlist {
    ord_write **v;
    size_t n, cap;
} wlist;

/* Add x as a blocker of w once (stamp: x was already counted for w). 0 or -ENOMEM. */
static int blocker_add(wlist *l, const ord_write *w, ord_write *x)
{
    if (x->stamp == w->id) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        ord_write **nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) return -ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    x->stamp = w->id;
    l->v[l->n++] = x;
    return 0;
}

/* True when path q (length ql) lies strictly below p (length pl). */
static bool below(const char *q, size_t ql, const char *p, size_t pl)
{
    if (ql <= pl || memcmp(q, p, pl) != 0) return false;
    return pl == 1 || q[pl] == '/';
}

/* The earlier writes that w's ref r conflicts with (see the file comment for the rules). */
static int collect(const ord *o, const ord_write *w, const ord_ref *r, wlist *bl)
{
    const char *p = r->node->path;
    size_t len = r->node->len;
    /* The same path: back to the latest write there that is not a CONCURRENTAPPEND. */
    for (ord_ref *x = r->node->tail; x; x = x->prev) {
        if (w->concurrent && x->w->concurrent) continue;
        if (blocker_add(bl, w, x->w) != 0) return -ENOMEM;
        if (!x->w->concurrent) break;
    }
    /* Ancestors ("/a/b" -> "/a" -> "/"): the latest write covering each one's subtree (it waited for
     * the ones before it). */
    for (size_t k = len; k > 1;) {
        do k--;
        while (k > 0 && p[k] != '/');
        const ord_node *a = node_find(o, p, k == 0 ? 1 : k);
        for (const ord_ref *x = a ? a->tail : NULL; x; x = x->prev) {
            if (!x->subtree) continue;
            if (blocker_add(bl, w, x->w) != 0) return -ENOMEM;
            break;
        }
    }
    if (!r->subtree) return 0;
    /* Descendants: every registered write touching a path below this subtree. */
    for (ord_write *x = o->head; x; x = x->next) {
        for (int i = 0; i < x->nrefs; i++) {
            if (!below(x->refs[i].node->path, x->refs[i].node->len, p, len)) continue;
            if (blocker_add(bl, w, x) != 0) return -ENOMEM;
            break;
        }
    }
    return 0;
}

/* Drop w's nodes that no registered write uses (w's refs are not linked). */
static void drop_unused_nodes(ord *o, ord_write *w)
{
    for (int i = 0; i < w->nrefs; i++) {
        ord_node *n = w->refs[i].node;
        if (!n || n->head) continue;
        for (int k = i + 1; k < w->nrefs; k++)
            if (w->refs[k].node == n) w->refs[k].node = NULL;
        node_drop(o, n);
    }
}

/* The paths wr touches, besides its own: RENAME's destination, CONCAT/MSCONCAT sources, MSCONCAT's
 * source directory. A destination or a source list that does not parse is left out: the primary
 * refuses such a request (and then it changes nothing), so the target alone is fenced. */
static void touched(const whreq *wr, const char *body, size_t blen, xlate_paths *srcs, char **extra, bool *main_sub)
{
    whreq_err we;
    *main_sub = wr->op == WH_OP_DELETE || wr->op == WH_OP_RENAME;
    if (wr->op == WH_OP_RENAME) {
        const char *d = whreq_param_get(wr, "destination");
        if (!d || whreq_norm_path(d, extra, &we) != 0) *extra = NULL;
    } else if (wr->op == WH_OP_CONCAT || wr->op == WH_OP_MSCONCAT) {
        xlate_err xe;
        if (xlate_concat_sources(wr->op, whreq_param_get(wr, "sources"), body, blen, srcs, &xe) != 0) {
            srcs->v = NULL;
            srcs->n = 0;
        }
        bool del_dir = false;
        if (wr->op == WH_OP_MSCONCAT && whreq_get_bool(wr, "deletesourcedirectory", false, &del_dir, &we) == 0 &&
            del_dir)
            *extra = xlate_concat_source_dir(srcs, wr->path);
    }
}

int ord_add(ord *o, const whreq *wr, const char *body, size_t blen, void *ud, ord_write **out)
{
    xlate_paths srcs = {0};
    char *extra = NULL; /* covered as a subtree: RENAME's destination, MSCONCAT's source directory */
    bool main_sub = false;
    wlist bl = {0};
    int rc = -ENOMEM;
    touched(wr, body, blen, &srcs, &extra, &main_sub);
    int n = 1 + (extra ? 1 : 0) + srcs.n;
    ord_write *w = calloc(1, sizeof *w + (size_t)n * sizeof(ord_ref));
    if (!w) goto out;
    w->id = ++o->next_id;
    w->ud = ud;
    w->concurrent = wr->op == WH_OP_CONCURRENTAPPEND;
    w->nrefs = n;
    for (int i = 0; i < n; i++) {
        const char *p = i == 0 ? wr->path : (extra && i == 1) ? extra : srcs.v[i - 1 - (extra ? 1 : 0)];
        w->refs[i].w = w;
        w->refs[i].subtree = i == 0 ? main_sub : (extra && i == 1);
        w->refs[i].node = node_get(o, p && p[0] ? p : "/");
        if (!w->refs[i].node) goto out;
    }
    for (int i = 0; i < n; i++)
        if (collect(o, w, &w->refs[i], &bl) != 0) goto out;
    /* Room in each blocker's list first, so that nothing below can fail half-way. */
    for (size_t i = 0; i < bl.n; i++) {
        ord_write *x = bl.v[i];
        if (x->ndeps < x->capdeps) continue;
        size_t cap = x->capdeps ? x->capdeps * 2 : 4;
        ord_write **nd = realloc(x->deps, cap * sizeof *nd);
        if (!nd) goto out;
        x->deps = nd;
        x->capdeps = cap;
    }
    for (size_t i = 0; i < bl.n; i++) {
        ord_write *x = bl.v[i];
        x->deps[x->ndeps++] = w;
        w->blockers++;
        if (x->seq > w->waits_for) w->waits_for = x->seq;
    }
    for (int i = 0; i < n; i++) {
        ord_ref *r = &w->refs[i];
        r->prev = r->node->tail;
        if (r->node->tail) r->node->tail->next = r;
        else r->node->head = r;
        r->node->tail = r;
    }
    w->prev = o->tail;
    if (o->tail) o->tail->next = w;
    else o->head = w;
    o->tail = w;
    o->nlive++;
    *out = w;
    w = NULL;
    rc = 0;
out:
    if (w) {
        drop_unused_nodes(o, w);
        free(w);
    }
    free(bl.v);
    free(extra);
    xlate_paths_free(&srcs);
    return rc;
}

void ord_bind(ord *o, ord_write *w, uint64_t seq)
{
    w->seq = seq;
    w->bound = true;
    htab_put(&o->writes, &w->hl, hash_seq(seq));
}

/* Unlink w from its nodes (dropping emptied ones), the write list and the seq table; free it. */
static void write_unlink_free(ord *o, ord_write *w)
{
    for (int i = 0; i < w->nrefs; i++) {
        ord_ref *r = &w->refs[i];
        if (r->prev) r->prev->next = r->next;
        else r->node->head = r->next;
        if (r->next) r->next->prev = r->prev;
        else r->node->tail = r->prev;
        r->prev = r->next = NULL;
    }
    drop_unused_nodes(o, w);
    if (w->prev) w->prev->next = w->next;
    else o->head = w->next;
    if (w->next) w->next->prev = w->prev;
    else o->tail = w->prev;
    o->nlive--;
    if (w->bound) htab_del(&o->writes, &w->hl);
    free(w->deps);
    free(w);
}

void ord_cancel(ord *o, ord_write *w)
{
    /* w was registered last: where it is a dep, it is the last one. */
    for (ord_write *x = o->head; x; x = x->next)
        if (x->ndeps > 0 && x->deps[x->ndeps - 1] == w) x->ndeps--;
    write_unlink_free(o, w);
}

/* ---- the order ---- */

bool ord_ready(ord *o, uint64_t seq, uint64_t *waits_for)
{
    ord_write *w = write_find(o, seq);
    if (!w || w->st != W_REGISTERED) return true;
    if (w->blockers == 0) {
        w->st = W_SENT;
        return true;
    }
    w->st = W_WAITING;
    o->nwaiting++;
    *waits_for = w->waits_for;
    return false;
}

unsigned ord_done(ord *o, uint64_t seq)
{
    ord_write *w = write_find(o, seq);
    if (!w || w->st == W_ENDED) return 0;
    if (w->st == W_WAITING) o->nwaiting--;
    if (w->blockers > 0) {
        w->st = W_ENDED;
        return 0;
    }
    /* Remove w; writes it frees go to the released queue, early-ended writes it frees are removed in
     * turn (a stack, not recursion: a long chain costs no stack). */
    unsigned released = 0;
    w->qnext = NULL;
    for (ord_write *stack = w; stack;) {
        ord_write *x = stack;
        stack = x->qnext;
        for (size_t i = 0; i < x->ndeps; i++) {
            ord_write *d = x->deps[i];
            if (--d->blockers > 0) continue;
            if (d->st == W_WAITING) {
                d->st = W_SENT;
                o->nwaiting--;
                d->qnext = NULL;
                if (o->rel_tail) o->rel_tail->qnext = d;
                else o->rel_head = d;
                o->rel_tail = d;
                released++;
            } else if (d->st == W_ENDED) {
                d->qnext = stack;
                stack = d;
            }
        }
        write_unlink_free(o, x);
    }
    return released;
}

void *ord_next_released(ord *o, uint64_t *seq)
{
    ord_write *w = o->rel_head;
    if (!w) return NULL;
    o->rel_head = w->qnext;
    if (!o->rel_head) o->rel_tail = NULL;
    w->qnext = NULL;
    *seq = w->seq;
    return w->ud;
}

void ord_get_stats(const ord *o, ord_stats *st)
{
    st->writes = o->nlive;
    st->paths = o->nodes.n;
    st->waiting = o->nwaiting;
}
