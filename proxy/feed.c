/*
 * feed: the bounded window between the journal and the applier (feed.h).
 *
 * Memory: the queue holds runs of consecutive seqs and cursors over the journal (24 bytes each: a
 * recovered backlog is a few cursors whatever its length and however many records between its own are
 * gone; its records that are gone by the time the feeder gets to them are skipped by next and load); a held record is 12 bytes plus its share of a group (the
 * groups are keyed by the exact paths they touch, so a thousand held APPENDs of one file share one);
 * the window's records and the per-path counts are bounded by the window.
 */
#include "feed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relset.h"

/* ---- a small map of u64 -> u64 (linear probing, backward-shift delete; key 0 is never stored) ---- */

typedef struct u64map {
    uint64_t *k, *v;
    size_t mask, n;
} u64map;

static size_t mix(uint64_t k, size_t mask)
{
    k ^= k >> 31;
    k *= 0x9e3779b97f4a7c15ull;
    k ^= k >> 29;
    return (size_t)k & mask;
}

static uint64_t *map_find(const u64map *m, uint64_t k)
{
    if (!m->k) return NULL;
    for (size_t i = mix(k, m->mask); m->k[i]; i = (i + 1) & m->mask)
        if (m->k[i] == k) return &m->v[i];
    return NULL;
}

static int map_grow(u64map *m)
{
    size_t nm = m->k ? m->mask * 2 + 1 : 63;
    uint64_t *nk = calloc(nm + 1, sizeof *nk), *nv = calloc(nm + 1, sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return -ENOMEM;
    }
    for (size_t i = 0; m->k && i <= m->mask; i++) {
        if (!m->k[i]) continue;
        size_t j = mix(m->k[i], nm);
        while (nk[j]) j = (j + 1) & nm;
        nk[j] = m->k[i];
        nv[j] = m->v[i];
    }
    free(m->k);
    free(m->v);
    m->k = nk;
    m->v = nv;
    m->mask = nm;
    return 0;
}

/* The value slot of k, created (0) when missing; NULL on ENOMEM. */
static uint64_t *map_get(u64map *m, uint64_t k)
{
    uint64_t *v = map_find(m, k);
    if (v) return v;
    if ((!m->k || (m->n + 1) * 2 > m->mask + 1) && map_grow(m) < 0) return NULL;
    size_t i = mix(k, m->mask);
    while (m->k[i]) i = (i + 1) & m->mask;
    m->k[i] = k;
    m->v[i] = 0;
    m->n++;
    return &m->v[i];
}

static void map_del(u64map *m, uint64_t k)
{
    if (!m->k) return;
    size_t i = mix(k, m->mask);
    while (m->k[i] && m->k[i] != k) i = (i + 1) & m->mask;
    if (!m->k[i]) return;
    m->n--;
    /* backward shift: move later entries of the run into the hole when their home allows it */
    for (size_t j = (i + 1) & m->mask; m->k[j]; j = (j + 1) & m->mask) {
        size_t h = mix(m->k[j], m->mask);
        bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
        if (!movable) continue;
        m->k[i] = m->k[j];
        m->v[i] = m->v[j];
        i = j;
    }
    m->k[i] = 0;
    m->v[i] = 0;
}

static void map_free(u64map *m)
{
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* ---- groups of paths (shared by held records) ---- */

typedef struct fgroup {
    uint64_t key;        /* hash of the exact hashes (0: free slot) */
    uint32_t refs;
    int n;
    rset_chain *ch;      /* one chain per path */
} fgroup;

/* A record handed over: its exact path hashes, for the per-path counts. */
typedef struct fwin {
    uint64_t seq;
    int n;
    uint64_t *exact;
} fwin;

typedef struct fheld {
    uint64_t seq;
    uint32_t gid;
} fheld;

struct feed {
    unsigned window, per_path;
    size_t held_max;
    /* queue: ring of runs [lo, hi] of seqs, in push order; a sparse run holds n records, the ones
     * `next` finds in [lo, hi] */
    struct frun {
        uint64_t lo, hi;
        uint64_t n;      /* sparse: records left in it; 0: a dense run (every seq of it) */
    } *q;
    size_t qcap, qhead, qn;
    uint64_t queued;     /* seqs in the runs */
    /* held, in order */
    fheld *held;
    size_t nheld, capheld;
    /* groups */
    fgroup *g;
    uint32_t ng, capg;
    uint32_t *gfree;
    uint32_t ngfree;
    u64map gmap;         /* group key -> gid + 1 */
    /* window */
    fwin *win;           /* slots; seq 0: free */
    size_t capwin, nwin;
    u64map wmap;         /* seq -> slot + 1 */
    u64map counts;       /* exact path hash -> operations in the window */
    rset blocked;        /* a pass: the paths of the records held so far */
    bool dirty;
    uint64_t fed, held_total;
    feed_next_fn next;
};

feed *feed_new(unsigned window, unsigned per_path, size_t held_max)
{
    feed *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->window = window ? window : 1;
    f->per_path = per_path ? per_path : 1;
    if (f->per_path > f->window) f->per_path = f->window;
    f->held_max = held_max ? held_max : 1;
    rset_init(&f->blocked);
    return f;
}

static void group_release(feed *f, uint32_t gid)
{
    fgroup *g = &f->g[gid];
    if (--g->refs) return;
    uint64_t *v = map_find(&f->gmap, g->key);
    if (v && *v == (uint64_t)gid + 1) map_del(&f->gmap, g->key);
    for (int i = 0; i < g->n; i++) rset_chain_free(&g->ch[i]);
    free(g->ch);
    memset(g, 0, sizeof *g);
    f->gfree[f->ngfree++] = gid;
}

void feed_free(feed *f)
{
    if (!f) return;
    for (uint32_t i = 0; i < f->ng; i++) {
        for (int k = 0; k < f->g[i].n; k++) rset_chain_free(&f->g[i].ch[k]);
        free(f->g[i].ch);
    }
    for (size_t i = 0; i < f->capwin; i++) free(f->win[i].exact);
    free(f->g);
    free(f->gfree);
    free(f->q);
    free(f->held);
    free(f->win);
    map_free(&f->gmap);
    map_free(&f->wmap);
    map_free(&f->counts);
    rset_free(&f->blocked);
    free(f);
}

static int queue_add(feed *f, uint64_t lo, uint64_t hi, uint64_t n)
{
    if (f->qn == f->qcap) {
        size_t nc = f->qcap ? f->qcap * 2 : 64;
        struct frun *nq = malloc(nc * sizeof *nq);
        if (!nq) return -ENOMEM;
        for (size_t i = 0; i < f->qn; i++) nq[i] = f->q[(f->qhead + i) % f->qcap];
        free(f->q);
        f->q = nq;
        f->qcap = nc;
        f->qhead = 0;
    }
    f->q[(f->qhead + f->qn) % f->qcap] = (struct frun){lo, hi, n};
    f->qn++;
    f->queued += n ? n : 1;
    return 0;
}

int feed_push(feed *f, uint64_t seq)
{
    f->dirty = true;
    if (f->qn > 0) {
        struct frun *last = &f->q[(f->qhead + f->qn - 1) % f->qcap];
        if (last->n == 0 && last->hi != UINT64_MAX && seq == last->hi + 1) {
            last->hi = seq;
            f->queued++;
            return 0;
        }
    }
    return queue_add(f, seq, seq, 0);
}

int feed_push_range(feed *f, uint64_t lo, uint64_t hi, uint64_t n)
{
    if (n == 0) return 0;
    if (lo > hi || n > hi - lo + 1) return -EINVAL;
    f->dirty = true;
    if (n == hi - lo + 1) { /* every seq of it: as dense runs are */
        for (uint64_t s = lo; s <= hi; s++) {
            int rc = feed_push(f, s);
            if (rc < 0) return rc;
            if (s == UINT64_MAX) break;
        }
        return 0;
    }
    if (!f->next) return -EINVAL; /* the gaps could not be told from the records */
    return queue_add(f, lo, hi, n);
}

void feed_set_next(feed *f, feed_next_fn next)
{
    f->next = next;
}

static void run_drop(feed *f)
{
    struct frun *r = &f->q[f->qhead];
    f->queued -= r->n ? r->n : r->hi - r->lo + 1;
    f->qhead = (f->qhead + 1) % f->qcap;
    f->qn--;
}

/* The first seq of the queue (a sparse run moves on to its next record first); false when empty. */
static bool queue_front(feed *f, void *ud, uint64_t *seq)
{
    while (f->qn > 0) {
        struct frun *r = &f->q[f->qhead];
        if (r->n > 0 && f->next) {
            uint64_t nx = f->next(ud, r->lo);
            if (nx > r->hi) { /* the rest of its records are gone */
                run_drop(f);
                continue;
            }
            r->lo = nx;
        }
        *seq = r->lo;
        return true;
    }
    return false;
}

static void queue_pop(feed *f)
{
    struct frun *r = &f->q[f->qhead];
    if (r->n > 1 || (r->n == 0 && r->lo < r->hi)) {
        f->queued--;
        if (r->n) r->n--;
        if (r->lo < r->hi) {
            r->lo++;
            return;
        }
    }
    run_drop(f);
}

/* Chains of paths (n of them) into ch[]. 0 or -ENOMEM (nothing left allocated). */
static int chains_of(const char *const *paths, int n, rset_chain *ch)
{
    for (int i = 0; i < n; i++) {
        if (rset_chain_of(paths[i], &ch[i]) < 0) {
            while (i-- > 0) rset_chain_free(&ch[i]);
            return -ENOMEM;
        }
    }
    return 0;
}

static uint64_t group_key(const rset_chain *ch, int n)
{
    uint64_t k = 0x84222325cbf29ce4ull;
    for (int i = 0; i < n; i++) k = (k ^ ch[i].h[ch[i].n - 1]) * 0x100000001b3ull;
    return k ? k : 1;
}

static bool same_paths(const fgroup *g, const rset_chain *ch, int n)
{
    if (g->n != n) return false;
    for (int i = 0; i < n; i++)
        if (g->ch[i].n != ch[i].n || memcmp(g->ch[i].h, ch[i].h, sizeof *ch[i].h * (size_t)ch[i].n) != 0)
            return false;
    return true;
}

/* The group of these chains (taken over when a new group is made, else freed); a reference is taken.
 * UINT32_MAX on ENOMEM (the chains are freed). */
static uint32_t group_get(feed *f, rset_chain *ch, int n)
{
    uint64_t key = group_key(ch, n);
    uint64_t *v = map_find(&f->gmap, key);
    if (v && same_paths(&f->g[*v - 1], ch, n)) {
        for (int i = 0; i < n; i++) rset_chain_free(&ch[i]);
        f->g[*v - 1].refs++;
        return (uint32_t)(*v - 1);
    }
    uint32_t gid;
    if (f->ngfree) {
        gid = f->gfree[--f->ngfree];
    } else {
        if (f->ng == f->capg) {
            uint32_t nc = f->capg ? f->capg * 2 : 64;
            fgroup *ng = realloc(f->g, nc * sizeof *ng);
            if (ng) f->g = ng;
            uint32_t *nf = ng ? realloc(f->gfree, nc * sizeof *nf) : NULL;
            if (nf) f->gfree = nf;
            if (!ng || !nf) goto oom;
            f->capg = nc;
        }
        gid = f->ng++;
    }
    rset_chain *own = malloc(sizeof *own * (size_t)(n ? n : 1));
    if (!own) {
        f->gfree[f->ngfree++] = gid;
        goto oom;
    }
    memcpy(own, ch, sizeof *own * (size_t)n);
    f->g[gid] = (fgroup){.key = key, .refs = 1, .n = n, .ch = own};
    if (!v) {
        uint64_t *slot = map_get(&f->gmap, key);
        if (slot) *slot = (uint64_t)gid + 1; /* without it the group is just not shared */
    }
    return gid;
oom:
    for (int i = 0; i < n; i++) rset_chain_free(&ch[i]);
    return UINT32_MAX;
}

static bool chains_hit(const rset *s, const rset_chain *ch, int n)
{
    for (int i = 0; i < n; i++)
        if (rset_hits(s, &ch[i])) return true;
    return false;
}

static bool chains_add(rset *s, const rset_chain *ch, int n)
{
    for (int i = 0; i < n; i++)
        if (rset_add(s, &ch[i]) < 0) return false;
    return true;
}

static bool saturated(const feed *f, const rset_chain *ch, int n)
{
    for (int i = 0; i < n; i++) {
        const uint64_t *c = map_find(&f->counts, ch[i].h[ch[i].n - 1]);
        if (c && *c >= f->per_path) return true;
    }
    return false;
}

/* Count seq as handed over with these paths. 0 or -ENOMEM (then it is not tracked: feed_finish of it
 * is a no-op and the per-path counts miss it, which only lets more of its path in). */
static int window_add(feed *f, uint64_t seq, const rset_chain *ch, int n)
{
    f->fed++;
    f->dirty = true;
    if (f->nwin == f->capwin) {
        size_t nc = f->capwin ? f->capwin * 2 : 64;
        fwin *nw = realloc(f->win, nc * sizeof *nw);
        if (!nw) return -ENOMEM;
        memset(nw + f->capwin, 0, (nc - f->capwin) * sizeof *nw);
        f->win = nw;
        f->capwin = nc;
    }
    size_t slot = 0;
    while (f->win[slot].seq) slot++; /* nwin < capwin: a free slot exists */
    uint64_t *exact = malloc(sizeof *exact * (size_t)(n ? n : 1));
    uint64_t *w = exact ? map_get(&f->wmap, seq) : NULL;
    if (!w) {
        free(exact);
        return -ENOMEM;
    }
    *w = slot + 1;
    for (int i = 0; i < n; i++) {
        exact[i] = ch[i].h[ch[i].n - 1];
        uint64_t *c = map_get(&f->counts, exact[i]);
        if (c) (*c)++;
        else exact[i] = 0; /* not counted: not uncounted either */
    }
    f->win[slot] = (fwin){.seq = seq, .n = n, .exact = exact};
    f->nwin++;
    return 0;
}

void feed_finish(feed *f, uint64_t seq)
{
    uint64_t *w = map_find(&f->wmap, seq);
    if (!w) return;
    fwin *x = &f->win[*w - 1];
    map_del(&f->wmap, seq);
    for (int i = 0; i < x->n; i++) {
        if (!x->exact[i]) continue;
        uint64_t *c = map_find(&f->counts, x->exact[i]);
        if (c && --*c == 0) map_del(&f->counts, x->exact[i]);
    }
    free(x->exact);
    memset(x, 0, sizeof *x);
    f->nwin--;
    f->dirty = true;
}

static bool room(const feed *f)
{
    return f->nwin < f->window;
}

size_t feed_pass(feed *f, feed_load_fn load, feed_submit_fn submit, void *ud)
{
    size_t handed = 0;
    f->dirty = false;
    rset_clear(&f->blocked);
    bool blocked_ok = true; /* false: the blocked set missed a path (ENOMEM): hold everything after */
    /* 1. the held records, in order: they come before everything queued */
    size_t keep = 0;
    for (size_t i = 0; i < f->nheld; i++) {
        fheld h = f->held[i];
        fgroup *g = &f->g[h.gid];
        if (room(f) && blocked_ok && !chains_hit(&f->blocked, g->ch, g->n) && !saturated(f, g->ch, g->n)) {
            if (submit(ud, h.seq) == 0) {
                (void)window_add(f, h.seq, g->ch, g->n);
                handed++;
            }
            group_release(f, h.gid);
            continue;
        }
        f->held[keep++] = h;
        if (blocked_ok && !chains_add(&f->blocked, g->ch, g->n)) blocked_ok = false;
    }
    f->nheld = keep;
    /* 2. the queue, while there is room */
    uint64_t seq;
    while (room(f) && queue_front(f, ud, &seq)) {
        const char *const *paths = NULL;
        int n = 0;
        int lr = load(ud, seq, &paths, &n);
        if (lr > 0) break;
        if (lr < 0) {
            queue_pop(f);
            continue;
        }
        rset_chain *ch = calloc((size_t)(n ? n : 1), sizeof *ch);
        if (!ch || chains_of(paths, n, ch) < 0) {
            free(ch);
            break; /* out of memory: try again at the next pass */
        }
        bool hold = !blocked_ok || chains_hit(&f->blocked, ch, n) || saturated(f, ch, n);
        if (!hold) {
            queue_pop(f);
            if (submit(ud, seq) == 0) {
                (void)window_add(f, seq, ch, n);
                handed++;
            }
            for (int i = 0; i < n; i++) rset_chain_free(&ch[i]);
            free(ch);
            continue;
        }
        if (f->nheld >= f->held_max || (f->nheld == f->capheld && f->capheld >= f->held_max)) {
            for (int i = 0; i < n; i++) rset_chain_free(&ch[i]);
            free(ch);
            break; /* the held list is full: what follows waits in the queue */
        }
        if (f->nheld == f->capheld) {
            size_t nc = f->capheld ? f->capheld * 2 : 64;
            if (nc > f->held_max) nc = f->held_max;
            fheld *nh = realloc(f->held, nc * sizeof *nh);
            if (!nh) {
                for (int i = 0; i < n; i++) rset_chain_free(&ch[i]);
                free(ch);
                break;
            }
            f->held = nh;
            f->capheld = nc;
        }
        if (blocked_ok && !chains_add(&f->blocked, ch, n)) blocked_ok = false;
        uint32_t gid = group_get(f, ch, n); /* takes or frees the chains */
        free(ch);
        if (gid == UINT32_MAX) break;
        queue_pop(f);
        f->held[f->nheld++] = (fheld){seq, gid};
        f->held_total++;
    }
    return handed;
}

bool feed_take_now(feed *f, uint64_t seq, const char *const *paths, int npaths)
{
    if (f->qn > 0) return false;
    rset_chain *ch = calloc((size_t)(npaths ? npaths : 1), sizeof *ch);
    if (!ch || chains_of(paths, npaths, ch) < 0) {
        free(ch);
        return false;
    }
    /* A path with its share of the window already in it waits like any other record: otherwise a
     * writer's burst on one failing path would fill the whole window by this door and stall every
     * other path behind it (nothing finishes, so no pass runs). */
    bool ok = !saturated(f, ch, npaths);
    if (ok && f->nheld > 0) {
        rset_clear(&f->blocked);
        for (uint32_t i = 0; i < f->ng && ok; i++)
            if (f->g[i].refs && !chains_add(&f->blocked, f->g[i].ch, f->g[i].n)) ok = false;
        if (ok) ok = !chains_hit(&f->blocked, ch, npaths);
        rset_clear(&f->blocked);
    }
    if (ok) (void)window_add(f, seq, ch, npaths);
    for (int i = 0; i < npaths; i++) rset_chain_free(&ch[i]);
    free(ch);
    return ok;
}

bool feed_want_pass(const feed *f)
{
    return f->dirty && room(f) && (f->qn > 0 || f->nheld > 0);
}

void feed_get_stats(const feed *f, feed_stats *st)
{
    st->queued = f->queued;
    st->held = f->nheld;
    st->in_window = f->nwin;
    st->groups = f->ng - f->ngfree;
    st->fed = f->fed;
    st->held_total = f->held_total;
}
