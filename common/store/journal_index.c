/*
 * journal_index: the journal's live index (entries by seq, the ACCEPTED set, per-state counts), the
 * path-epoch gate and the bookkeeping of segment files (which ones the deletion rules of JOURNAL.md
 * section 10 let go). Shared with journal.c, journal_commit.c and journal_recover.c through
 * journal_int.h; callers hold the journal mutex (or run single-threaded at recovery).
 */
#include "journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal_int.h"

/* ---------------------------------------------------------------- path epochs */

static uint64_t fnv_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * 0x100000001b3ull;
}

static size_t epoch_slot(uint64_t h)
{
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (size_t)(h & (JNL_EPOCH_SLOTS - 1));
}

static void epoch_raise(journal *j, uint64_t h, uint64_t seq)
{
    size_t s = epoch_slot(h);
    if (j->epoch[s] < seq) j->epoch[s] = seq;
}

/* A normalised absolute path and each of its ancestors ("/", "/a", "/a/b"). */
static void epoch_touch_path(journal *j, const char *p, size_t len, uint64_t seq)
{
    uint64_t h = 0xcbf29ce484222325ull;
    epoch_raise(j, fnv_step(h, '/'), seq);
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '/' && i > 0) epoch_raise(j, h, seq);
        h = fnv_step(h, (unsigned char)p[i]);
    }
    if (len > 1) epoch_raise(j, h, seq);
}

/* Normalise a parameter's path (whreq_norm_path); NULL when it is not a usable path. */
static char *norm_value(const char *v, size_t len)
{
    if (len == 0 || len > JNL_PATH_MAX) return NULL;
    char *tmp = malloc(len + 1);
    if (!tmp) return NULL;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    char *out = NULL;
    whreq_err werr;
    if (whreq_norm_path(tmp, &out, &werr) != 0) out = NULL;
    free(tmp);
    return out;
}

/* Call fn for each extra path a record touches: RENAME's destination, CONCAT's sources. */
static void for_extra_paths(const jfmt_kv *kv, int nkv, void (*fn)(void *ud, char *p), void *ud)
{
    for (int i = 0; i < nkv; i++) {
        const jfmt_str *k = &kv[i].key, *v = &kv[i].val;
        if (k->len == 11 && memcmp(k->p, "destination", 11) == 0) {
            char *p = norm_value(v->p, v->len);
            if (p) fn(ud, p);
        } else if (k->len == 7 && memcmp(k->p, "sources", 7) == 0) {
            size_t s = 0;
            while (s <= v->len) {
                size_t e = s;
                while (e < v->len && v->p[e] != ',') e++;
                char *p = norm_value(v->p + s, e - s);
                if (p) fn(ud, p);
                s = e + 1;
            }
        }
    }
}

typedef struct touch_ctx {
    journal *j;
    uint64_t seq;
} touch_ctx;

static void touch_one(void *ud, char *p)
{
    touch_ctx *c = ud;
    epoch_touch_path(c->j, p, strlen(p), c->seq);
    free(p);
}

void jnl__epoch_touch(journal *j, uint64_t seq, const char *path, size_t plen, const jfmt_kv *kv, int nkv)
{
    epoch_touch_path(j, path, plen, seq);
    touch_ctx c = {j, seq};
    for_extra_paths(kv, nkv, touch_one, &c);
}

static bool path_under(const char *p, const char *root, size_t rlen)
{
    if (rlen == 1) return true; /* "/" */
    return strncmp(p, root, rlen) == 0 && (p[rlen] == '\0' || p[rlen] == '/');
}

/** Highest seq of a record that touched root or below, and whether one of those awaits the primary. */
uint64_t jnl_path_epoch(journal *j, const char *root, bool *busy)
{
    char r[JNL_PATH_MAX + 1];
    size_t len = root ? strlen(root) : 0;
    if (len == 0 || len > JNL_PATH_MAX || root[0] != '/') {
        r[0] = '/';
        len = 1;
    } else {
        memcpy(r, root, len);
        while (len > 1 && r[len - 1] == '/') len--;
    }
    r[len] = '\0';
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = fnv_step(h, (unsigned char)r[i]);
    pthread_mutex_lock(&j->mu);
    uint64_t e = j->epoch[epoch_slot(h)];
    bool b = false;
    for (jent *a = j->accepted; a && !b; a = a->anext)
        for (int i = 0; i < a->ntouched && !b; i++) b = path_under(a->touched[i], r, len);
    pthread_mutex_unlock(&j->mu);
    if (busy) *busy = b;
    return e;
}

/* ---------------------------------------------------------------- entries and index */

void jnl__ent_free(jent *e)
{
    if (!e) return;
    free(e->detail);
    free(e);
}

/* The extra paths a record touches, gathered before the entry is sized. */
typedef struct extra_paths {
    char **p;
    int n, cap;
    size_t bytes;
    bool oom;
} extra_paths;

static void add_extra(void *ud, char *p)
{
    extra_paths *x = ud;
    if (x->n == x->cap) {
        int nc = x->cap ? x->cap * 2 : 4;
        char **np = realloc(x->p, sizeof *np * (size_t)nc);
        if (!np) {
            free(p);
            x->oom = true;
            return;
        }
        x->p = np;
        x->cap = nc;
    }
    x->bytes += strlen(p) + 1;
    x->p[x->n++] = p;
}

static char *put_str(char **at, const char *p, size_t len)
{
    char *s = *at;
    memcpy(s, p, len);
    s[len] = '\0';
    *at += len + 1;
    return s;
}

/*
 * One allocation per entry: the struct, then its parameters, its touched-path list and every string
 * (the path doubles as the first touched path). The detail is allocated apart, only when there is one.
 */
jent *jnl__ent_from_write(const jfmt_write *w)
{
    extra_paths xs = {0}, *x = &xs;
    for_extra_paths(w->params, w->nparams, add_extra, x);
    jent *e = NULL;
    if (x->oom) goto out;
    size_t strs = w->path.len + 1 + x->bytes;
    for (int i = 0; i < w->nparams; i++) strs += w->params[i].key.len + w->params[i].val.len + 2;
    size_t np = (size_t)w->nparams, nt = (size_t)x->n + 1;
    e = calloc(1, sizeof *e + np * sizeof(whreq_param) + nt * sizeof(char *) + strs);
    if (!e) goto out;
    whreq_param *params = (whreq_param *)(void *)e->blob;
    char **touched = (char **)(void *)(params + np);
    char *at = (char *)(touched + nt);
    e->e.seq = w->seq;
    e->e.jop = w->op;
    e->e.op = jfmt_op_to_whreq(w->op);
    e->e.state = JFMT_S_ACCEPTED;
    e->e.status = w->primary_status;
    e->e.t_accept_ns = w->t_accept_ns;
    e->e.t_state_ns = w->t_accept_ns;
    e->e.body_len = w->body_len;
    e->e.detail = "";
    e->e.path = put_str(&at, w->path.p, w->path.len);
    for (size_t i = 0; i < np; i++) {
        params[i].name = put_str(&at, w->params[i].key.p, w->params[i].key.len);
        params[i].value = put_str(&at, w->params[i].val.p, w->params[i].val.len);
    }
    e->e.params = params;
    e->e.nparams = (int)np;
    touched[0] = (char *)e->e.path;
    for (int i = 0; i < x->n; i++) touched[i + 1] = put_str(&at, x->p[i], strlen(x->p[i]));
    e->touched = touched;
    e->ntouched = (int)nt;
    e->e.touched = (const char *const *)touched;
    e->e.ntouched = (int)nt;
out:
    for (int i = 0; i < x->n; i++) free(x->p[i]);
    free(x->p);
    return e;
}

static size_t hash_seq(const journal *j, uint64_t seq)
{
    return (size_t)((seq * 0x9e3779b97f4a7c15ull) >> 20) & j->hmask;
}

jent *jnl__lookup(const journal *j, uint64_t seq)
{
    for (jent *e = j->hash[hash_seq(j, seq)]; e; e = e->hnext)
        if (e->e.seq == seq) return e;
    return NULL;
}

static int hash_grow(journal *j)
{
    size_t n = (j->hmask + 1) * 2;
    jent **h = calloc(n, sizeof *h);
    if (!h) return -ENOMEM;
    size_t old = j->hmask + 1;
    jent **oh = j->hash;
    j->hash = h;
    j->hmask = n - 1;
    for (size_t i = 0; i < old; i++) {
        for (jent *e = oh[i]; e;) {
            jent *nx = e->hnext;
            size_t b = hash_seq(j, e->e.seq);
            e->hnext = h[b];
            h[b] = e;
            e = nx;
        }
    }
    free(oh);
    return 0;
}

static void count_state(journal *j, uint16_t st, int d)
{
    if (st == JFMT_S_PARKED) j->nparked += (uint64_t)(int64_t)d;
    else if (st == JFMT_S_ACCEPTED) j->naccepted += (uint64_t)(int64_t)d;
}

static void accepted_add(journal *j, jent *e)
{
    if (e->in_accepted) return;
    e->in_accepted = true;
    e->aprev = NULL;
    e->anext = j->accepted;
    if (j->accepted) j->accepted->aprev = e;
    j->accepted = e;
}

static void accepted_del(journal *j, jent *e)
{
    if (!e->in_accepted) return;
    e->in_accepted = false;
    if (e->aprev) e->aprev->anext = e->anext;
    else j->accepted = e->anext;
    if (e->anext) e->anext->aprev = e->aprev;
    e->aprev = e->anext = NULL;
}

int jnl__index_add(journal *j, jent *e)
{
    if (j->nlive + 1 > j->hmask + 1) (void)hash_grow(j); /* on ENOMEM the chains just get longer */
    size_t b = hash_seq(j, e->e.seq);
    e->hnext = j->hash[b];
    j->hash[b] = e;
    /* seq order: appends come in increasing order; recovery too, nearly always */
    jent *after = j->tail;
    while (after && after->e.seq > e->e.seq) after = after->prev;
    e->prev = after;
    e->next = after ? after->next : j->head;
    if (e->next) e->next->prev = e;
    else j->tail = e;
    if (after) after->next = e;
    else j->head = e;
    j->nlive++;
    j->bytes_live += e->e.body_len;
    count_state(j, e->e.state, 1);
    if (e->e.state == JFMT_S_ACCEPTED) accepted_add(j, e);
    return 0;
}

/* Change an entry's in-memory state, keeping the per-state counts. Under mu. */
void jnl__set_state(journal *j, jent *e, uint16_t st)
{
    count_state(j, e->e.state, -1);
    count_state(j, st, 1);
    if (st != JFMT_S_ACCEPTED) accepted_del(j, e);
    e->e.state = st;
    e->e.t_state_ns = jnl__now_ns();
}

/* Take e out of the index and free it; its body reference goes too. Under mu. */
void jnl__index_remove(journal *j, jent *e)
{
    jent **pp = &j->hash[hash_seq(j, e->e.seq)];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    if (e->prev) e->prev->next = e->next;
    else j->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else j->tail = e->prev;
    accepted_del(j, e);
    j->nlive--;
    j->bytes_live -= e->e.body_len;
    count_state(j, e->e.state, -1);
    spool_unref(e->e.body);
    jnl__ent_free(e);
}

/* ---------------------------------------------------------------- segments */

jseg *jnl__seg_add(journal *j, uint64_t seq, int fd, uint64_t size, uint64_t end)
{
    jseg *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->seq = seq;
    g->fd = fd;
    g->size = size;
    g->end = end;
    g->zeroed = end;
    g->min_term_ref = UINT64_MAX;
    g->prev = j->segs_tail;
    if (j->segs_tail) j->segs_tail->next = g;
    else j->segs = g;
    j->segs_tail = g;
    j->nsegs++;
    if (seq >= j->next_seg_seq) j->next_seg_seq = seq + 1;
    return g;
}

static void seg_unlink_locked(journal *j, jseg *g)
{
    char path[JNL_PATH_MAX + 64];
    if (jnl__seg_path(j, g->seq, path, sizeof path) == 0) (void)unlink(path);
    if (g->prev) g->prev->next = g->next;
    else j->segs = g->next;
    if (g->next) g->next->prev = g->prev;
    else j->segs_tail = g->prev;
    if (g->fd >= 0) close(g->fd);
    j->nsegs--;
    j->segments_deleted++;
    free(g);
}

/*
 * A segment goes when it is not current, no live entry has its WRITE or its latest STATE there, and
 * no segment still on disk holds a WRITE that a terminal STATE here ends (deleting that STATE would
 * bring the WRITE back to life at the next recovery).
 */
void jnl__sweep_locked(journal *j)
{
    for (jseg *g = j->segs; g;) {
        jseg *n = g->next;
        bool ok = g != j->cur && g->live_writes == 0 && g->state_refs == 0;
        if (ok && g->min_term_ref != UINT64_MAX)
            for (jseg *t = j->segs; t && t->seq < g->seq && ok; t = t->next) ok = t->seq < g->min_term_ref;
        if (ok) seg_unlink_locked(j, g);
        g = n;
    }
}

/* Copy text into an entry's detail: truncated at JFMT_MAX_DETAIL on a UTF-8 boundary, NULs impossible. */
size_t jnl__detail_len(const char *d, size_t n)
{
    if (n > JFMT_MAX_DETAIL) {
        n = JFMT_MAX_DETAIL;
        while (n > 0 && ((unsigned char)d[n] & 0xC0) == 0x80) n--;
    }
    return n;
}

void jnl__set_detail(jent *e, const char *d, size_t n)
{
    n = d ? jnl__detail_len(d, n) : 0;
    char *nd = NULL;
    if (n) {
        nd = malloc(n + 1);
        if (nd) { /* without memory the entry just shows no detail */
            memcpy(nd, d, n);
            nd[n] = '\0';
        }
    }
    free(e->detail);
    e->detail = nd;
    e->e.detail = nd ? nd : "";
}
