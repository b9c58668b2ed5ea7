/*
 * journal_index: the journal's live index in two tiers (JOURNAL.md section 12: whole entries for the
 * records in use, hashed, in eviction order, the ACCEPTED set; a compact row per other live record in
 * its WRITE's segment, paged in from the segment on demand), per-state counts, the path-epoch gate and
 * the bookkeeping of segment files (which ones the deletion rules of JOURNAL.md section 10 let go). Shared with journal.c, journal_commit.c and journal_recover.c through
 * journal_int.h; callers hold the journal mutex (or run single-threaded at recovery).
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
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

void jnl__write_sum(const jfmt_rec *rec, spool_sum *sum)
{
    memset(sum, 0, sizeof *sum);
    if (rec->flags & JFMT_WF_CRC32C) {
        uint32_t crc = jfmt_digest_crc(rec->u.w.digest);
        sum->kind = SPOOL_SUM_CRC32C;
        for (int i = 0; i < 4; i++) sum->bytes[i] = (uint8_t)(crc >> (8 * i));
    } else {
        sum->kind = SPOOL_SUM_SHA256;
        memcpy(sum->bytes, rec->u.w.digest, JFMT_DIGEST_LEN);
    }
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

/* Out of the eviction order, or out of the held list when held. */
static void lru_unlink(journal *j, jent *e)
{
    if (e->held) {
        if (e->lprev) e->lprev->lnext = e->lnext;
        else j->held = e->lnext;
        if (e->lnext) e->lnext->lprev = e->lprev;
        e->held = false;
        j->nheld--;
    } else {
        if (e->lprev) e->lprev->lnext = e->lnext;
        else j->lru = e->lnext;
        if (e->lnext) e->lnext->lprev = e->lprev;
        else j->lru_tail = e->lprev;
    }
    e->lprev = e->lnext = NULL;
}

static void lru_append(journal *j, jent *e)
{
    e->lnext = NULL;
    e->lprev = j->lru_tail;
    if (j->lru_tail) j->lru_tail->lnext = e;
    else j->lru = e;
    j->lru_tail = e;
}

void jnl__touch(journal *j, jent *e)
{
    if (e->held || j->lru_tail == e) return; /* a held entry goes back to the end when released */
    lru_unlink(j, e);
    lru_append(j, e);
}

/*
 * Whether the journal itself needs e whole, whatever the bound (JOURNAL.md section 12): its WRITE is
 * not durable or has no row, it waits for the primary (ACCEPTED: jnl_path_epoch reads its paths), a
 * STATE of it is queued, a terminal state is on its way, or its latest STATE is too far for a row.
 * Only these fields make it so, and they stop doing so only where jnl__release is called: when a
 * commit made its WRITE or a queued STATE durable (apply_durable_locked) or failed a STATE
 * (apply_failed_locked). Leaving ACCEPTED goes through jnl_state, which queues a STATE.
 */
static bool in_use(const jent *e)
{
    return !e->durable || e->in_fresh || !e->wseg || e->in_accepted || e->e.state == JFMT_S_ACCEPTED ||
           e->ending || e->far || e->nqueued > 0;
}

/* Off the eviction order onto the held list: the eviction does not look at it again until released. */
static void hold(journal *j, jent *e)
{
    lru_unlink(j, e);
    e->held = true;
    e->lprev = NULL;
    e->lnext = j->held;
    if (j->held) j->held->lprev = e;
    j->held = e;
    j->nheld++;
}

void jnl__release(journal *j, jent *e)
{
    if (!e->held || in_use(e)) return;
    lru_unlink(j, e);
    lru_append(j, e);
}

/* The fresh list: entries without a row (WRITE not durable yet), seq order. */
static void fresh_del(journal *j, jent *e)
{
    if (!e->in_fresh) return;
    e->in_fresh = false;
    if (e->prev) e->prev->next = e->next;
    else j->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else j->tail = e->prev;
    e->prev = e->next = NULL;
}

static void fresh_add(journal *j, jent *e)
{
    jent *after = j->tail; /* appends come in increasing order */
    while (after && after->e.seq > e->e.seq) after = after->prev;
    e->prev = after;
    e->next = after ? after->next : j->head;
    if (e->next) e->next->prev = e;
    else j->tail = e;
    if (after) after->next = e;
    else j->head = e;
    e->in_fresh = true;
}

/* Make e resident: hash, eviction order, the ACCEPTED set, and the fresh list when it has no row. */
static void resident_add(journal *j, jent *e, bool fresh)
{
    if (j->nresident + 1 > j->hmask + 1) (void)hash_grow(j); /* on ENOMEM the chains just get longer */
    size_t b = hash_seq(j, e->e.seq);
    e->hnext = j->hash[b];
    j->hash[b] = e;
    lru_append(j, e);
    if (fresh) fresh_add(j, e);
    if (e->e.state == JFMT_S_ACCEPTED) accepted_add(j, e);
    j->nresident++;
}

void jnl__resident_add(journal *j, jent *e)
{
    resident_add(j, e, false);
}

static void resident_del(journal *j, jent *e)
{
    jent **pp = &j->hash[hash_seq(j, e->e.seq)];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    lru_unlink(j, e);
    fresh_del(j, e);
    accepted_del(j, e);
    j->nresident--;
}

int jnl__index_add(journal *j, jent *e)
{
    resident_add(j, e, !e->durable);
    j->nlive++;
    j->bytes_live += e->e.body_len;
    count_state(j, e->e.state, 1);
    return 0;
}

void jnl__index_count(journal *j, uint16_t state, uint64_t body_len)
{
    j->nlive++;
    j->bytes_live += body_len;
    count_state(j, state, 1);
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

/* ---------------------------------------------------------------- the compact tier */

static jrow *seg_find_row(const jseg *g, uint64_t seq)
{
    if (g->nrows == 0 || seq < g->row_base) return NULL;
    uint64_t d = seq - g->row_base;
    if (d > g->rows[g->nrows - 1].dseq) return NULL;
    size_t lo = 0, hi = g->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->rows[mid].dseq < d) lo = mid + 1;
        else hi = mid;
    }
    return lo < g->nrows && g->rows[lo].dseq == d ? &g->rows[lo] : NULL;
}

jrow *jnl__row(const journal *j, uint64_t seq, jseg **gout)
{
    for (jseg *g = j->segs; g; g = g->next) {
        jrow *r = seg_find_row(g, seq);
        if (r) {
            if (gout) *gout = g;
            return r;
        }
    }
    return NULL;
}

int jnl__row_add(jseg *g, uint64_t seq, uint64_t off, uint8_t state, uint8_t flags)
{
    if (off % 8 || off / 8 > UINT32_MAX) return -ERANGE;
    if (g->nrows > 0) {
        uint64_t last = g->row_base + g->rows[g->nrows - 1].dseq;
        if (seq <= last || seq - g->row_base > UINT32_MAX) return -ERANGE; /* rows come in seq order */
    }
    if (g->nrows == g->caprows) {
        uint32_t nc = g->caprows ? g->caprows + g->caprows / 2 : 256;
        jrow *nr = realloc(g->rows, (size_t)nc * sizeof *nr);
        if (!nr) return -ENOMEM;
        g->rows = nr;
        g->caprows = nc;
    }
    if (g->nrows == 0) g->row_base = seq;
    g->rows[g->nrows++] = (jrow){.dseq = (uint32_t)(seq - g->row_base), .off8 = (uint32_t)(off / 8), .state = state,
                                 .flags = flags};
    return 0;
}

bool jnl__row_state(jseg *g, jrow *r, const jseg *s, uint64_t off, uint8_t state)
{
    r->state = state;
    if (s->seq < g->seq || s->seq - g->seq >= JNL_FAR || off / 8 > UINT32_MAX || off % 8) {
        r->flags |= JR_FAR;
        r->st_dseg = JNL_FAR;
        return false;
    }
    r->st_dseg = (uint16_t)(s->seq - g->seq);
    r->st_off8 = (uint32_t)(off / 8);
    return true;
}

/* A row left the index: marked dead; the array is compacted once half of it is dead. */
static void row_kill(jseg *g, jrow *r)
{
    if (r->flags & JR_DEAD) return;
    r->flags |= JR_DEAD;
    if (++g->ndead == g->nrows) {
        free(g->rows);
        g->rows = NULL;
        g->nrows = g->caprows = g->ndead = 0;
        return;
    }
    if (g->ndead < 64 || g->ndead * 2 < g->nrows) return;
    uint32_t k = 0;
    uint64_t base = 0;
    for (uint32_t i = 0; i < g->nrows; i++) {
        if (g->rows[i].flags & JR_DEAD) continue;
        jrow r2 = g->rows[i];
        uint64_t seq = g->row_base + r2.dseq;
        if (k == 0) base = seq;
        r2.dseq = (uint32_t)(seq - base);
        g->rows[k++] = r2;
    }
    g->row_base = base;
    g->nrows = k;
    g->ndead = 0;
    uint32_t nc = k + k / 4 + 16;
    jrow *nr = realloc(g->rows, (size_t)nc * sizeof *nr);
    if (nr) {
        g->rows = nr;
        g->caprows = nc;
    }
}

/* The segment whose seq is seq, at or after from; NULL when gone. */
static jseg *seg_by_seq(jseg *from, uint64_t seq)
{
    for (jseg *g = from; g; g = g->next)
        if (g->seq == seq) return g;
    return NULL;
}

static int seg_rfd(journal *j, jseg *g)
{
    if (g->rfd >= 0) return g->rfd;
    if (j->nrfd >= JNL_RFD_MAX) {
        for (jseg *o = j->segs; o; o = o->next) {
            if (o->rfd >= 0) {
                close(o->rfd);
                o->rfd = -1;
            }
        }
        j->nrfd = 0;
    }
    char path[JNL_PATH_MAX + 64];
    int rc = jnl__seg_path(j, g->seq, path, sizeof path);
    if (rc < 0) return rc;
    g->rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->rfd < 0) return -errno;
    j->nrfd++;
    return g->rfd;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The payload of the frame at off of g, through cache c (a window of the segment's durable data). */
static int frame_at(journal *j, struct jrcache *c, jseg *g, uint64_t off, const uint8_t **pl, uint32_t *plen)
{
    for (int pass = 0; pass < 2; pass++) {
        if (c->g == g && off >= c->base && off - c->base + JFMT_FRAME_HDR <= c->len) {
            const uint8_t *f = c->buf + (off - c->base);
            uint32_t len = le32(f);
            if (len < 4 || len > JFMT_MAX_PAYLOAD) return -EIO;
            if (off - c->base + JFMT_FRAME_HDR + len <= c->len) {
                if (crc32c(f + JFMT_FRAME_HDR, len) != le32(f + 4)) return -EIO;
                *pl = f + JFMT_FRAME_HDR;
                *plen = len;
                return 0;
            }
            if (pass == 1) return -EIO; /* the frame runs past the durable data */
        }
        if (!c->buf) {
            if (c->cap < JFMT_MAX_FRAME) c->cap = JFMT_MAX_FRAME;
            c->buf = malloc(c->cap);
            if (!c->buf) return -ENOMEM;
        }
        int fd = seg_rfd(j, g);
        if (fd < 0) return fd;
        if (off >= g->end) return -EIO;
        uint64_t want = g->end - off;
        if (want > c->cap) want = c->cap;
        c->g = NULL;
        size_t got = 0;
        while (got < want) {
            ssize_t r = pread(fd, c->buf + got, (size_t)want - got, (off_t)(off + got));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return -errno;
            if (r == 0) break;
            got += (size_t)r;
        }
        c->g = g;
        c->base = off;
        c->len = (uint32_t)got;
    }
    return -EIO;
}

int jnl__row_load(journal *j, jseg *g, const jrow *r, bool body, struct jrcache *cache, jent **out)
{
    const uint8_t *pl;
    uint32_t plen;
    int rc = frame_at(j, &cache[0], g, (uint64_t)r->off8 * 8, &pl, &plen);
    if (rc < 0) return rc;
    jfmt_rec rec;
    if (jfmt_decode_payload(pl, plen, &rec, NULL) != 0 || rec.type != JFMT_T_WRITE) return -EIO;
    const jfmt_write *w = &rec.u.w;
    uint64_t seq = g->row_base + r->dseq;
    if (w->seq != seq) return -EIO;
    jent *e = jnl__ent_from_write(w);
    if (!e) return -ENOMEM;
    e->e.state = r->state;
    e->durable = true;
    e->wseg = g;
    e->woff = (uint64_t)r->off8 * 8;
    e->e.body_lost = (r->flags & JR_BODY_LOST) != 0;
    if (r->st_off8) {
        jseg *ss = seg_by_seq(g, g->seq + r->st_dseg);
        if (!ss) {
            jnl__ent_free(e);
            return -EIO;
        }
        e->sseg = ss;
        e->st_off = (uint64_t)r->st_off8 * 8;
        rc = frame_at(j, &cache[1], ss, e->st_off, &pl, &plen);
        jfmt_rec srec;
        if (rc == 0 && (jfmt_decode_payload(pl, plen, &srec, NULL) != 0 || srec.type != JFMT_T_STATE ||
                        srec.u.s.seq != seq))
            rc = -EIO;
        if (rc < 0) {
            jnl__ent_free(e);
            return rc;
        }
        if (srec.u.s.status) e->e.status = srec.u.s.status;
        e->e.t_state_ns = srec.u.s.t_ns;
        jnl__set_detail(e, srec.u.s.detail.p, srec.u.s.detail.len);
    }
    bool has_body = w->body_len > 0 || w->spool_seg != 0;
    if (body && has_body && !e->e.body_lost && r->state != JFMT_S_RESYNC) {
        spool_body *b = NULL;
        spool_sum sum;
        jnl__write_sum(&rec, &sum);
        rc = spool_pin_take(j->sp, w->spool_seg, w->spool_off, w->body_len, &sum, &b);
        if (rc < 0) {
            jnl__ent_free(e);
            return rc;
        }
        e->e.body = b;
    }
    *out = e;
    return 0;
}

jent *jnl__get(journal *j, uint64_t seq, int *err)
{
    jent *e = jnl__lookup(j, seq);
    if (e) {
        jnl__touch(j, e);
        return e;
    }
    jseg *g = NULL;
    jrow *r = jnl__row(j, seq, &g);
    int rc = -ENOENT;
    if (r && !(r->flags & JR_DEAD)) rc = jnl__row_load(j, g, r, true, j->pcache, &e);
    if (rc < 0) {
        if (rc != -ENOENT) j->page_in_errors++;
        if (err) *err = rc;
        return NULL;
    }
    resident_add(j, e, false);
    j->page_ins++;
    metrics_inc(j->m_page_ins);
    return e;
}

/* The record became durable: it gets its row (and leaves the fresh list). Without one it stays resident. */
void jnl__made_durable(journal *j, jent *e)
{
    e->durable = true;
    if (!e->wseg || !e->in_fresh) return;
    if (jnl__row_add(e->wseg, e->e.seq, e->woff, JFMT_S_ACCEPTED, 0) == 0) fresh_del(j, e);
}

/* A durable STATE of e at off of s (not terminal). */
void jnl__state_durable(journal *j, jent *e, jseg *s, uint64_t off, uint16_t st)
{
    if (e->sseg) e->sseg->state_refs--;
    e->sseg = s;
    e->st_off = off;
    s->state_refs++;
    if (e->in_fresh || !e->wseg) return;
    jrow *r = seg_find_row(e->wseg, e->e.seq);
    if (r && !jnl__row_state(e->wseg, r, s, off, (uint8_t)st)) e->far = true;
}

/* Evict e (not in use) to its row; false when it must stay whole (someone else holds its body). */
static bool evict(journal *j, jent *e)
{
    jrow *r = seg_find_row(e->wseg, e->e.seq);
    if (!r || (r->flags & (JR_DEAD | JR_FAR))) return false;
    if (e->e.body && !spool_body_to_pin(e->e.body)) return false; /* someone still reads it */
    e->e.body = NULL;
    r->state = (uint8_t)e->e.state;
    if (e->e.body_lost) r->flags |= JR_BODY_LOST;
    resident_del(j, e);
    jnl__ent_free(e);
    j->evictions++;
    return true;
}

/*
 * Evict from the front of the eviction order while past the bound. What it meets is evicted, or moved
 * to the held list when the journal needs it whole (it comes back through jnl__release, so it is
 * looked at once per use, however long it stays: a backlog of records waiting for the primary past
 * the bound costs each call O(1), not a walk over all of them), or, when someone else holds its body,
 * moved to the end; at most JNL_TRIM_ROTATE of those per call.
 */
void jnl__trim_locked(journal *j)
{
    unsigned rotated = 0;
    while (j->nresident > j->max_resident && j->lru && rotated < JNL_TRIM_ROTATE) {
        jent *e = j->lru;
        j->evict_scans++;
        if (in_use(e)) {
            hold(j, e);
        } else if (!evict(j, e)) {
            jnl__touch(j, e); /* look again later */
            rotated++;
        }
    }
}

/* Take e out of the index and free it; its body reference goes too. Under mu. */
void jnl__index_remove(journal *j, jent *e)
{
    if (e->durable && !e->in_fresh && e->wseg) {
        jrow *r = seg_find_row(e->wseg, e->e.seq);
        if (r) row_kill(e->wseg, r);
    }
    resident_del(j, e);
    j->nlive--;
    j->bytes_live -= e->e.body_len;
    count_state(j, e->e.state, -1);
    if (j->oldest_seq == e->e.seq) j->oldest_seq = 0;
    spool_unref(e->e.body);
    jnl__ent_free(e);
}

void jnl__seg_forget(journal *j, jseg *g)
{
    if (g->rfd >= 0) {
        close(g->rfd);
        g->rfd = -1;
        j->nrfd--;
    }
    for (int i = 0; i < 2; i++)
        if (j->pcache[i].g == g) j->pcache[i].g = NULL;
    free(g->rows);
    g->rows = NULL;
    g->nrows = g->caprows = g->ndead = 0;
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
    g->rfd = -1;
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
    jnl__seg_forget(j, g);
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
