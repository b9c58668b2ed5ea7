/*
 * journal: the live index, the group commit, the path-epoch gate and the operator views of the write
 * journal (journal.h; bytes on disk: JOURNAL.md; recovery: journal_recover.c). Appends encode their
 * frame into one in-memory queue under the journal mutex; a single commit thread swaps the queue
 * out, writes it to the current segment with one iox_pwrite, fdatasyncs that segment and every spool
 * segment written since the previous cycle concurrently, then, under the mutex again, applies what
 * the batch made durable (entries leave the index on a terminal state, segments with nothing left
 * go) and finally runs the callbacks without the mutex. A failed cycle fails its WRITEs (recorded as
 * PRIMARY_REFUSED), requeues its STATEs, refuses appends and moves to a fresh segment; the commit
 * thread retries after commit_lazy_ms.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal_int.h"

#define JNL_QUEUE_MAX ((size_t)1 << 30)
#define JNL_DIRTY_CHUNK 64
#define JNL_CLOSE_ATTEMPTS 3

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t jnl__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool jnl__terminal(uint16_t st)
{
    return st == JFMT_S_APPLIED || st == JFMT_S_PRIMARY_REFUSED || st == JFMT_S_DROPPED;
}

int jnl__seg_path(const journal *j, uint64_t seq, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/jrnl-%016" PRIx64 ".seg", j->dir, seq);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

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
    for (int i = 0; i < e->e.nparams; i++) {
        free(e->params[i].name);
        free(e->params[i].value);
    }
    free(e->params);
    for (int i = 0; i < e->ntouched; i++) free(e->touched[i]);
    free(e->touched);
    free(e->path);
    free(e);
}

static char *memdup_str(const char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s) return NULL;
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

typedef struct add_touch {
    jent *e;
    bool oom;
} add_touch;

static void add_touched(void *ud, char *p)
{
    add_touch *a = ud;
    char **t = realloc(a->e->touched, sizeof *t * (size_t)(a->e->ntouched + 1));
    if (!t) {
        free(p);
        a->oom = true;
        return;
    }
    a->e->touched = t;
    t[a->e->ntouched++] = p;
}

jent *jnl__ent_from_write(const jfmt_write *w)
{
    jent *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->e.seq = w->seq;
    e->e.jop = w->op;
    e->e.op = jfmt_op_to_whreq(w->op);
    e->e.state = JFMT_S_ACCEPTED;
    e->e.status = w->primary_status;
    e->e.t_accept_ns = w->t_accept_ns;
    e->e.t_state_ns = w->t_accept_ns;
    e->e.body_len = w->body_len;
    e->e.detail = e->detail;
    e->path = memdup_str(w->path.p, w->path.len);
    if (!e->path) goto fail;
    e->e.path = e->path;
    if (w->nparams > 0) {
        e->params = calloc(w->nparams, sizeof *e->params);
        if (!e->params) goto fail;
        for (int i = 0; i < w->nparams; i++) {
            e->params[i].name = memdup_str(w->params[i].key.p, w->params[i].key.len);
            e->params[i].value = memdup_str(w->params[i].val.p, w->params[i].val.len);
            e->e.nparams = i + 1;
            if (!e->params[i].name || !e->params[i].value) goto fail;
        }
    }
    e->e.params = e->params;
    e->touched = malloc(sizeof *e->touched);
    if (!e->touched) goto fail;
    e->touched[0] = memdup_str(w->path.p, w->path.len);
    if (!e->touched[0]) goto fail;
    e->ntouched = 1;
    add_touch at = {e, false};
    for_extra_paths(w->params, w->nparams, add_touched, &at);
    if (at.oom) goto fail;
    return e;
fail:
    jnl__ent_free(e);
    return NULL;
}

static size_t hash_seq(const journal *j, uint64_t seq)
{
    return (size_t)((seq * 0x9e3779b97f4a7c15ull) >> 20) & j->hmask;
}

static jent *lookup(const journal *j, uint64_t seq)
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
static void set_state(journal *j, jent *e, uint16_t st)
{
    count_state(j, e->e.state, -1);
    count_state(j, st, 1);
    if (st != JFMT_S_ACCEPTED) accepted_del(j, e);
    e->e.state = st;
    e->e.t_state_ns = jnl__now_ns();
}

/* Take e out of the index and free it; its body reference goes too. Under mu. */
static void index_remove(journal *j, jent *e)
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

/* Create, preallocate and head a fresh segment for a batch of need bytes (commit thread, no lock). */
static int seg_create(journal *j, uint64_t seq, uint64_t need, int *fd_out, uint64_t *size_out)
{
    char path[JNL_PATH_MAX + 64];
    int rc = jnl__seg_path(j, seq, path, sizeof path);
    if (rc < 0) return rc;
    uint64_t size = j->segment_bytes;
    if (size < JFMT_HDR_SIZE + need) size = (JFMT_HDR_SIZE + need + 4095) & ~(uint64_t)4095;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    if (posix_fallocate(fd, 0, (off_t)size) != 0 && ftruncate(fd, (off_t)size) < 0) {
        rc = -errno;
        goto fail;
    }
    dbuf h;
    dbuf_init(&h, JFMT_HDR_MAX);
    jfmt_hdr hdr;
    jfmt_hdr_init(&hdr, seq, jnl__now_ns());
    pthread_mutex_lock(&j->mu);
    hdr.seq_floor = j->max_seq; /* seqs stay unique across restarts even when old segments are gone */
    pthread_mutex_unlock(&j->mu);
    rc = jfmt_hdr_encode(&h, &hdr);
    if (rc == 0) {
        int64_t w = iox_pwrite_wait(j->io, fd, h.data, h.len, 0);
        rc = w < 0 ? (int)w : 0;
    }
    dbuf_free(&h);
    if (rc < 0) goto fail;
    int64_t s = iox_fdatasync_wait(j->io, j->dirfd);
    pthread_mutex_lock(&j->mu);
    j->fdatasyncs++;
    metrics_inc(j->m_fsyncs);
    pthread_mutex_unlock(&j->mu);
    if (s < 0) {
        rc = (int)s;
        goto fail;
    }
    *fd_out = fd;
    *size_out = size;
    return 0;
fail:
    close(fd);
    (void)unlink(path);
    return rc;
}

/* ---------------------------------------------------------------- queue */

static int queue_item(jqueue *q, const jitem *it)
{
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 256;
        jitem *ni = realloc(q->items, nc * sizeof *ni);
        if (!ni) return -ENOMEM;
        q->items = ni;
        q->cap = nc;
    }
    if (q->n == 0) q->first_ns = mono_ns();
    q->items[q->n++] = *it;
    if (it->cb && q->waiters++ == 0) q->first_waiter_ns = mono_ns();
    return 0;
}

/* Encode rec into the queue with its item. Under mu. */
static int queue_rec(journal *j, const jfmt_rec *rec, jitem *it)
{
    size_t before = j->q.buf.len;
    int rc = jfmt_encode(&j->q.buf, rec);
    if (rc < 0) return rc;
    it->off = (uint32_t)before;
    it->len = (uint32_t)(j->q.buf.len - before);
    rc = queue_item(&j->q, it);
    if (rc < 0) {
        j->q.buf.len = before;
        return rc;
    }
    /* Wake the commit thread only when what it waits for changed: the queue stopped being empty, or
     * it got its first waiter (a lazy batch becomes due now). Other records ride along unannounced. */
    if (j->q.n == 1 || (it->cb && (j->q.waiters == 1 || j->q.waiters == j->batch_target)))
        pthread_cond_signal(&j->wake);
    return 0;
}

static int queue_state(journal *j, uint64_t seq, uint16_t st, int status, const char *detail, jnl_done_cb cb,
                       void *ud)
{
    jfmt_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.type = JFMT_T_STATE;
    rec.u.s.seq = seq;
    rec.u.s.state = st;
    rec.u.s.status = (uint16_t)(status > 0 && status < 65536 ? status : 0);
    rec.u.s.t_ns = jnl__now_ns();
    rec.u.s.detail.p = detail ? detail : "";
    rec.u.s.detail.len = strlen(rec.u.s.detail.p);
    jitem it = {.seq = seq, .cb = cb, .ud = ud, .type = JFMT_T_STATE, .state = st};
    return queue_rec(j, &rec, &it);
}

/* Copy text into an entry's detail: truncated at JFMT_MAX_DETAIL on a UTF-8 boundary, NULs impossible. */
static void set_detail(jent *e, const char *d)
{
    size_t n = d ? strlen(d) : 0;
    if (n > JFMT_MAX_DETAIL) {
        n = JFMT_MAX_DETAIL;
        while (n > 0 && ((unsigned char)d[n] & 0xC0) == 0x80) n--;
    }
    if (n) memcpy(e->detail, d, n);
    e->detail[n] = '\0';
}

/* ---------------------------------------------------------------- commit */

typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left;
    int err;
    journal *j;
} sync_wait;

typedef struct sync_one {
    sync_wait *w;
    uint64_t t0;
} sync_one;

static void sync_done(void *ud, int64_t res)
{
    sync_one *o = ud;
    sync_wait *w = o->w;
    double secs = (double)(mono_ns() - o->t0) / 1e9;
    pthread_mutex_lock(&w->j->mu);
    w->j->fdatasync_seconds += secs;
    pthread_mutex_unlock(&w->j->mu);
    metrics_observe(w->j->m_fsync_hist, secs);
    pthread_mutex_lock(&w->mu);
    if (res < 0 && w->err == 0) w->err = (int)res;
    if (--w->left == 0) pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* fdatasync the journal fd and the spool segments concurrently; 0 or the first -errno. */
static int sync_all(journal *j, int jfd, spool_seg **ss, int nss)
{
    int n = nss + 1;
    sync_one *ones = calloc((size_t)n, sizeof *ones);
    if (!ones) return -ENOMEM;
    sync_wait w = {.left = n, .err = 0, .j = j};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&j->mu);
    j->fdatasyncs += (uint64_t)n;
    pthread_mutex_unlock(&j->mu);
    metrics_add(j->m_fsyncs, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        ones[i].w = &w;
        ones[i].t0 = mono_ns();
        int fd = i == 0 ? jfd : spool_seg_fd(ss[i - 1]);
        int rc = iox_fdatasync(j->io, fd, sync_done, &ones[i]);
        if (rc < 0) {
            pthread_mutex_lock(&w.mu);
            if (w.err == 0) w.err = rc;
            w.left--;
            pthread_mutex_unlock(&w.mu);
        }
    }
    pthread_mutex_lock(&w.mu);
    while (w.left > 0) pthread_cond_wait(&w.cv, &w.mu);
    int err = w.err;
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    free(ones);
    return err;
}

typedef struct cbrun {
    jnl_done_cb cb;
    void *ud;
    uint64_t seq;
    int err;
} cbrun;

/* Make sure the current segment can take len more bytes (a fresh one otherwise). No lock held. */
static int ensure_segment(journal *j, size_t len)
{
    pthread_mutex_lock(&j->mu);
    jseg *cur = j->cur;
    bool roll = !cur || j->need_roll || cur->end + len > cur->size;
    uint64_t seq = j->next_seg_seq;
    if (roll) j->next_seg_seq++;
    pthread_mutex_unlock(&j->mu);
    if (!roll) return 0;
    int fd = -1;
    uint64_t size = 0;
    int rc = seg_create(j, seq, len, &fd, &size);
    if (rc < 0) return rc;
    pthread_mutex_lock(&j->mu);
    jseg *g = jnl__seg_add(j, seq, fd, size, JFMT_HDR_SIZE);
    if (!g) {
        pthread_mutex_unlock(&j->mu);
        close(fd);
        return -ENOMEM;
    }
    jseg *old = j->cur;
    j->cur = g;
    j->need_roll = false;
    if (old && old->fd >= 0) {
        close(old->fd);
        old->fd = -1;
    }
    jnl__sweep_locked(j);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static int take_spool_dirty(journal *j, spool_seg ***out, int *nout)
{
    int n = 0, cap = 0;
    spool_seg **arr = NULL;
    for (int i = 0; i < j->nresync; i++) {
        if (n == cap) {
            cap = cap ? cap * 2 : JNL_DIRTY_CHUNK;
            spool_seg **na = realloc(arr, sizeof *na * (size_t)cap);
            if (!na) goto oom;
            arr = na;
        }
        arr[n++] = j->resync_segs[i];
    }
    j->nresync = 0;
    for (;;) {
        if (cap - n < JNL_DIRTY_CHUNK) {
            cap += JNL_DIRTY_CHUNK;
            spool_seg **na = realloc(arr, sizeof *na * (size_t)cap);
            if (!na) goto oom;
            arr = na;
        }
        int got = spool_take_dirty(j->sp, arr + n, JNL_DIRTY_CHUNK);
        n += got;
        if (got < JNL_DIRTY_CHUNK) break;
    }
    *out = arr;
    *nout = n;
    return 0;
oom:
    for (int i = 0; i < n; i++) spool_seg_put(arr[i]);
    free(arr);
    return -ENOMEM;
}

/* Apply a durable batch (under mu): WRITEs are durable, states move, terminal entries leave. */
static void apply_durable_locked(journal *j, jqueue *b, jseg *seg, cbrun *runs, size_t *nruns)
{
    for (size_t i = 0; i < b->n; i++) {
        jitem *it = &b->items[i];
        jent *e = lookup(j, it->seq);
        j->records_written++;
        if (it->type == JFMT_T_WRITE) {
            if (e) e->durable = true;
            if (e && e->e.jop == JFMT_OP_RESYNC) {
                j->resyncs++;
                metrics_inc(j->m_resync);
            }
        } else if (e) {
            uint16_t st = it->state;
            if (jnl__terminal(st)) {
                if (e->wseg) {
                    e->wseg->live_writes--;
                    if (e->wseg != seg && e->wseg->seq < seg->min_term_ref) seg->min_term_ref = e->wseg->seq;
                }
                if (e->sseg) e->sseg->state_refs--;
                if (st == JFMT_S_APPLIED) {
                    j->applied++;
                    uint64_t sec = jnl__now_ns() / 1000000000u;
                    unsigned slot = (unsigned)(sec % JNL_RATE_SLOTS);
                    if (j->rate_sec[slot] != sec) {
                        j->rate_sec[slot] = sec;
                        j->rate_cnt[slot] = 0;
                    }
                    j->rate_cnt[slot]++;
                    metrics_inc(j->m_applied);
                } else if (st == JFMT_S_PRIMARY_REFUSED) {
                    j->refused++;
                    metrics_inc(j->m_refused);
                } else {
                    j->dropped++;
                    metrics_inc(j->m_dropped);
                }
                index_remove(j, e);
            } else {
                if (e->sseg) e->sseg->state_refs--;
                e->sseg = seg;
                seg->state_refs++;
                if (st == JFMT_S_RESYNC) {
                    j->resyncs++;
                    metrics_inc(j->m_resync);
                    /* a resync copies from the primary: the body is no longer needed */
                    spool_unref(e->e.body);
                    e->e.body = NULL;
                } else if (st == JFMT_S_PARKED) {
                    j->parked_total++;
                    metrics_inc(j->m_parked);
                }
            }
        }
        if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, 0};
    }
    j->bytes_written += b->buf.len;
    j->commits++;
    metrics_inc(j->m_commits);
    j->failed = false;
    jnl__sweep_locked(j);
}

/* A failed batch (under mu): WRITEs fail (recorded PRIMARY_REFUSED), STATEs are queued again. */
static void apply_failed_locked(journal *j, jqueue *b, int err, cbrun *runs, size_t *nruns)
{
    for (size_t i = 0; i < b->n; i++) {
        jitem *it = &b->items[i];
        jent *e = lookup(j, it->seq);
        if (it->type == JFMT_T_WRITE) {
            if (e && !e->ending) {
                set_state(j, e, JFMT_S_PRIMARY_REFUSED);
                set_detail(e, "journal I/O error");
                e->ending = true;
                (void)queue_state(j, e->e.seq, JFMT_S_PRIMARY_REFUSED, 0, "journal I/O error", NULL, NULL);
            }
            if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, err};
        } else if (e && e->ending && !jnl__terminal(it->state)) {
            /* its WRITE failed in this batch: the refusal queued above must stay the last word */
            if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, err};
        } else {
            size_t before = j->q.buf.len;
            jitem again = *it;
            if (dbuf_add(&j->q.buf, b->buf.data + it->off, it->len) < 0) {
                if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, err};
                continue;
            }
            again.off = (uint32_t)before;
            if (queue_item(&j->q, &again) < 0) {
                j->q.buf.len = before;
                if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, err};
            }
        }
    }
    j->failed = true;
    j->need_roll = true;
    j->retry_at_ns = mono_ns() + (uint64_t)j->lazy_ms * 1000000u;
}

/* Give up on a batch at close (under mu): everything gets err. */
static void apply_abandon_locked(jqueue *b, int err, cbrun *runs, size_t *nruns)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].cb) runs[(*nruns)++] = (cbrun){b->items[i].cb, b->items[i].ud, b->items[i].seq, err};
}

/* Never written: the source of the zeros written ahead of a segment's data end. */
static uint8_t jnl_zeros[JNL_ZERO_AHEAD];

/*
 * Write zeros over the preallocated space from the end of what was written to JNL_ZERO_AHEAD past
 * data_end (commit thread). fallocate leaves "unwritten" extents: the first write into each block
 * converts it, a metadata change that turns the next fdatasync into a file system journal commit
 * (measured here: 0.46 ms per 4 KiB write + fdatasync into fallocated space, 0.15 ms into written
 * space). Zeroing a megabyte at a time pays that once per megabyte instead of once per commit.
 * Zeros are what an unwritten end reads as anyway (JOURNAL.md section 6), so a crash in between
 * changes nothing a reader sees.
 */
static int zero_ahead(journal *j, jseg *seg, int fd, uint64_t data_end)
{
    if (seg->zeroed < data_end) seg->zeroed = data_end;
    if (seg->zeroed >= seg->size || seg->zeroed >= data_end + JNL_ZERO_AHEAD / 2) return 0;
    uint64_t to = (data_end + JNL_ZERO_AHEAD + 4095) & ~(uint64_t)4095;
    if (to > seg->size) to = seg->size;
    while (seg->zeroed < to) {
        uint64_t n = to - seg->zeroed;
        if (n > JNL_ZERO_AHEAD) n = JNL_ZERO_AHEAD;
        int64_t w = iox_pwrite_wait(j->io, fd, jnl_zeros, (size_t)n, seg->zeroed);
        if (w < 0) return (int)w;
        seg->zeroed += n;
    }
    return 0;
}

/* One commit of batch b: place, write, sync. Returns 0 or -errno. No lock held. */
static int commit_batch(journal *j, jqueue *b, jseg **seg_out)
{
    int rc = ensure_segment(j, b->buf.len);
    if (rc < 0) return rc;
    pthread_mutex_lock(&j->mu);
    jseg *seg = j->cur;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].type != JFMT_T_WRITE) continue;
        jent *e = lookup(j, b->items[i].seq);
        if (e && !e->wseg) {
            e->wseg = seg;
            seg->live_writes++;
        }
    }
    int fd = seg->fd;
    uint64_t off = seg->end;
    pthread_mutex_unlock(&j->mu);
    *seg_out = seg;

    spool_seg **ss = NULL;
    int nss = 0;
    int64_t w = iox_pwrite_wait(j->io, fd, b->buf.data, b->buf.len, off);
    if (w >= 0) w = zero_ahead(j, seg, fd, off + b->buf.len);
    /* the spool segments are taken even when the write failed, so a failed sync is retried */
    pthread_mutex_lock(&j->mu);
    rc = take_spool_dirty(j, &ss, &nss);
    pthread_mutex_unlock(&j->mu);
    if (rc < 0) return rc;
    if (w < 0) rc = (int)w;
    else rc = sync_all(j, fd, ss, nss);
    pthread_mutex_lock(&j->mu);
    if (rc == 0) {
        seg->end = off + b->buf.len;
        for (int i = 0; i < nss; i++) spool_seg_put(ss[i]);
    } else {
        /* their pages may not be on disk: sync them again next time (bodies are checked at recovery) */
        for (int i = 0; i < nss; i++) {
            if (j->nresync == j->capresync) {
                int nc = j->capresync ? j->capresync * 2 : 16;
                spool_seg **na = realloc(j->resync_segs, sizeof *na * (size_t)nc);
                if (!na) {
                    spool_seg_put(ss[i]);
                    continue;
                }
                j->resync_segs = na;
                j->capresync = nc;
            }
            j->resync_segs[j->nresync++] = ss[i];
        }
    }
    pthread_mutex_unlock(&j->mu);
    free(ss);
    return rc;
}

/* Room for n callbacks (under mu); false on ENOMEM. */
static bool runs_reserve(cbrun **runs, size_t *cap, size_t n)
{
    if (n <= *cap) return true;
    size_t nc = *cap ? *cap : 256;
    while (nc < n) nc *= 2;
    cbrun *r = realloc(*runs, nc * sizeof *r);
    if (!r) return false;
    *runs = r;
    *cap = nc;
    return true;
}

static void run_callbacks(journal *j, cbrun *runs, size_t n)
{
    if (n == 0) return;
    pthread_mutex_unlock(&j->mu);
    for (size_t i = 0; i < n; i++) runs[i].cb(runs[i].ud, runs[i].seq, runs[i].err);
    pthread_mutex_lock(&j->mu);
}

/* How long the commit thread waits before taking the queue (monotonic deadline; 0: go now). Under mu;
 * marks the queue when it is held back for company. */
static uint64_t commit_due(journal *j, uint64_t now)
{
    if (j->failed && now < j->retry_at_ns) return j->retry_at_ns;
    uint64_t lazy_due = j->q.first_ns + (uint64_t)j->lazy_ms * 1000000u;
    if (!j->closing && j->q.waiters == 0 && now < lazy_due) return lazy_due;
    /* Group commit under load: when the previous batch was busy, wait a little for more writers so
     * that one fdatasync serves more of them. A lone writer never waits (its batches hold one). */
    if (!j->closing && j->wait_ns && j->q.waiters < j->batch_target && j->last_waiters * 8 >= j->batch_target) {
        uint64_t until = j->q.first_waiter_ns + j->wait_ns;
        if (now < until) {
            j->q.waited = true;
            return until;
        }
    }
    return 0;
}

static void *commit_main(void *arg)
{
    journal *j = arg;
    jqueue b;
    memset(&b, 0, sizeof b);
    dbuf_init(&b.buf, JNL_QUEUE_MAX);
    cbrun *runs = NULL;
    size_t runcap = 0;
    int close_attempts = 0;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->q.n == 0) {
            if (j->closing) break;
            pthread_cond_wait(&j->wake, &j->mu);
            continue;
        }
        uint64_t now = mono_ns();
        uint64_t due = commit_due(j, now);
        if (due) {
            struct timespec ts; /* the condvar runs on CLOCK_REALTIME */
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t abs = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (due - now);
            ts.tv_sec = (time_t)(abs / 1000000000u);
            ts.tv_nsec = (long)(abs % 1000000000u);
            pthread_cond_timedwait(&j->wake, &j->mu, &ts);
            continue;
        }
        /* a failed batch's WRITEs add one refusal each to the queue: room for both */
        if (!runs_reserve(&runs, &runcap, j->q.n * 2 + 1)) {
            j->retry_at_ns = now + 10000000u;
            pthread_mutex_unlock(&j->mu);
            usleep(10000);
            pthread_mutex_lock(&j->mu);
            continue;
        }
        /* take the queue as this batch */
        jqueue t = j->q;
        j->last_waiters = t.waiters;
        if (t.waited) j->commit_waits++;
        j->q = b;
        b = t;
        j->q.n = 0;
        j->q.waiters = 0;
        j->q.waited = false;
        dbuf_reset(&j->q.buf);
        pthread_mutex_unlock(&j->mu);

        jseg *seg = NULL;
        int rc = commit_batch(j, &b, &seg);
        size_t nruns = 0;
        pthread_mutex_lock(&j->mu);
        if (rc == 0) apply_durable_locked(j, &b, seg, runs, &nruns);
        else if (j->closing && ++close_attempts >= JNL_CLOSE_ATTEMPTS) apply_abandon_locked(&b, rc, runs, &nruns);
        else apply_failed_locked(j, &b, rc, runs, &nruns);
        b.n = 0;
        b.waiters = 0;
        b.waited = false;
        dbuf_reset(&b.buf);
        run_callbacks(j, runs, nruns);
        if (rc != 0 && j->closing && close_attempts >= JNL_CLOSE_ATTEMPTS) {
            /* closing and the disk keeps failing: give up on what is still queued */
            nruns = 0;
            if (runs_reserve(&runs, &runcap, j->q.n)) apply_abandon_locked(&j->q, rc, runs, &nruns);
            j->q.n = 0;
            j->q.waiters = 0;
            j->q.waited = false;
            dbuf_reset(&j->q.buf);
            run_callbacks(j, runs, nruns);
        }
    }
    pthread_mutex_unlock(&j->mu);
    dbuf_free(&b.buf);
    free(b.items);
    free(runs);
    return NULL;
}

/* ---------------------------------------------------------------- open / close */

static int take_lock(journal *j, char *err, size_t errlen)
{
    char path[JNL_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/LOCK", j->dir);
    j->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lockfd < 0) {
        snprintf(err, errlen, "journal: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e != EWOULDBLOCK) {
            snprintf(err, errlen, "journal: cannot lock %s: %s", path, strerror(e));
            return -1;
        }
        char buf[32];
        ssize_t n = pread(j->lockfd, buf, sizeof buf - 1, 0);
        long pid = -1;
        if (n > 0) {
            buf[n] = '\0';
            char *end = NULL;
            errno = 0;
            long v = strtol(buf, &end, 10);
            if (errno == 0 && end != buf && (*end == '\n' || *end == '\0') && v > 0) pid = v;
        }
        if (pid > 0) snprintf(err, errlen, "journal %s is in use by another dualpipe (pid %ld)", j->dir, pid);
        else snprintf(err, errlen, "journal %s is in use by another dualpipe (pid unknown)", j->dir);
        return -1;
    }
    char txt[32];
    int len = snprintf(txt, sizeof txt, "%ld\n", (long)getpid());
    if (ftruncate(j->lockfd, 0) < 0 || pwrite(j->lockfd, txt, (size_t)len, 0) != len) {
        snprintf(err, errlen, "journal: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void free_all(journal *j)
{
    for (jent *e = j->head; e;) {
        jent *n = e->next;
        /* bodies stay on disk: their references die with the spool (spool_close) */
        jnl__ent_free(e);
        e = n;
    }
    j->head = j->tail = NULL;
    free(j->hash);
    for (jseg *g = j->segs; g;) {
        jseg *n = g->next;
        if (g->fd >= 0) close(g->fd);
        free(g);
        g = n;
    }
    for (int i = 0; i < j->nresync; i++) spool_seg_put(j->resync_segs[i]);
    free(j->resync_segs);
    dbuf_free(&j->q.buf);
    free(j->q.items);
    if (j->dirfd >= 0) close(j->dirfd);
    if (j->lockfd >= 0) close(j->lockfd);
    pthread_cond_destroy(&j->wake);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/** Open and recover. */
int jnl_open(const jnl_opts *o, journal **out, jnl_recovery *rep, char *err, size_t errlen)
{
    jnl_recovery local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    if (!o || !o->dir || !o->dir[0] || !o->io || !o->sp) {
        snprintf(err, errlen, "journal: dir, io and spool are required");
        return -1;
    }
    if (strlen(o->dir) >= JNL_PATH_MAX) {
        snprintf(err, errlen, "journal: directory name too long");
        return -1;
    }
    if (mkdir(o->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "journal: cannot create %s: %s", o->dir, strerror(errno));
        return -1;
    }
    journal *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "journal: out of memory");
        return -1;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->wake, NULL);
    j->dirfd = j->lockfd = -1;
    snprintf(j->dir, sizeof j->dir, "%s", o->dir);
    j->segment_bytes = o->segment_bytes ? o->segment_bytes : JNL_DEFAULT_SEGMENT;
    if (j->segment_bytes < 4096) j->segment_bytes = 4096;
    j->lazy_ms = o->commit_lazy_ms ? o->commit_lazy_ms : JNL_DEFAULT_LAZY_MS;
    j->wait_ns = (uint64_t)o->commit_wait_us * 1000u;
    j->batch_target = o->commit_batch ? o->commit_batch : 32;
    j->io = o->io;
    j->sp = o->sp;
    j->verify = o->verify_bodies;
    j->next_seg_seq = 1;
    dbuf_init(&j->q.buf, JNL_QUEUE_MAX);
    j->hmask = 1023;
    j->hash = calloc(j->hmask + 1, sizeof *j->hash);
    if (!j->hash) {
        snprintf(err, errlen, "journal: out of memory");
        goto fail;
    }
    j->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        snprintf(err, errlen, "journal: cannot open %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    if (take_lock(j, err, errlen) < 0) goto fail;
    if (jnl__recover(j, rep, err, errlen) < 0) goto fail;
    /* Start the fresh segment now rather than at the first append: its header carries the highest
     * seq so far (seq_floor), so seqs stay unique even when recovery deleted every older segment. */
    int src = ensure_segment(j, 0);
    if (src < 0) {
        snprintf(err, errlen, "journal: cannot create a segment in %s: %s", j->dir, strerror(-src));
        goto fail;
    }
    if (pthread_create(&j->thread, NULL, commit_main, j) != 0) {
        snprintf(err, errlen, "journal: cannot start the commit thread");
        goto fail;
    }
    j->thread_started = true;
    *out = j;
    return 0;
fail:
    free_all(j);
    return -1;
}

/** Commit what is queued, stop the commit thread, close. */
void jnl_close(journal *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    j->closing = true;
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->mu);
    if (j->thread_started) pthread_join(j->thread, NULL);
    free_all(j);
}

/* ---------------------------------------------------------------- append / state */

/** Append a WRITE (state ACCEPTED); cb runs once it is durable (or failed). */
int jnl_append(journal *j, const jnl_write_in *in, jnl_done_cb cb, void *ud, uint64_t *seq)
{
    if (!in || !cb || !in->path || in->nparams < 0 || in->nparams > JFMT_MAX_PARAMS || (in->nparams > 0 && !in->params))
        return -EINVAL;
    if (in->body && !in->body->finished) return -EINVAL;
    jfmt_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.type = JFMT_T_WRITE;
    jfmt_write *w = &rec.u.w;
    w->op = in->jop;
    w->t_accept_ns = jnl__now_ns();
    if (in->body) {
        w->spool_seg = in->body->seg;
        w->spool_off = in->body->off;
        w->body_len = in->body->len;
        memcpy(w->digest, in->body->digest, JFMT_DIGEST_LEN);
    }
    w->path.p = in->path;
    w->path.len = strlen(in->path);
    w->nparams = (uint16_t)in->nparams;
    for (int i = 0; i < in->nparams; i++) {
        if (!in->params[i].name || !in->params[i].value) return -EINVAL;
        w->params[i].key = (jfmt_str){in->params[i].name, strlen(in->params[i].name)};
        w->params[i].val = (jfmt_str){in->params[i].value, strlen(in->params[i].value)};
    }
    if (jfmt_frame_size(&rec) == 0) return -EINVAL;
    jent *e = jnl__ent_from_write(w);
    if (!e) return -ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&j->mu);
    if (j->closing) {
        rc = -ESHUTDOWN;
        goto out;
    }
    if (j->failed) {
        rc = -EIO;
        goto out;
    }
    w->seq = j->max_seq + 1;
    e->e.seq = w->seq;
    jitem it = {.seq = w->seq, .cb = cb, .ud = ud, .type = JFMT_T_WRITE};
    rc = queue_rec(j, &rec, &it);
    if (rc < 0) goto out;
    if (jnl__index_add(j, e) < 0) {
        /* cannot happen without a hash table at all; the record is queued, keep it honest */
        rc = -ENOMEM;
        goto out;
    }
    j->max_seq = w->seq;
    e->e.body = spool_ref(in->body);
    jnl__epoch_touch(j, w->seq, w->path.p, w->path.len, w->params, w->nparams);
    j->appended++;
    *seq = w->seq;
    e = NULL;
out:
    pthread_mutex_unlock(&j->mu);
    jnl__ent_free(e);
    return rc;
}

/** Record a new state of entry seq. */
int jnl_state(journal *j, uint64_t seq, jfmt_state st, int status, const char *detail, jnl_done_cb cb, void *ud)
{
    int rc;
    pthread_mutex_lock(&j->mu);
    jent *e = lookup(j, seq);
    if (j->closing) rc = -ESHUTDOWN;
    else if (!e || e->ending) rc = -ENOENT;
    else {
        char d[JFMT_MAX_DETAIL + 1];
        jent tmp;
        set_detail(&tmp, detail);
        memcpy(d, tmp.detail, sizeof d);
        rc = queue_state(j, seq, (uint16_t)st, status, d, cb, ud);
        if (rc == 0) {
            set_state(j, e, (uint16_t)st);
            if (status > 0 && status < 65536) e->e.status = (uint16_t)status;
            memcpy(e->detail, d, sizeof d);
            if (jnl__terminal((uint16_t)st)) e->ending = true;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

/* ---------------------------------------------------------------- views */

void jnl_foreach(journal *j, void (*fn)(void *ud, const jnl_entry *e), void *ud)
{
    pthread_mutex_lock(&j->mu);
    for (jent *e = j->head; e; e = e->next) fn(ud, &e->e);
    pthread_mutex_unlock(&j->mu);
}

int jnl_with_entry(journal *j, uint64_t seq, void (*fn)(void *ud, const jnl_entry *e), void *ud)
{
    pthread_mutex_lock(&j->mu);
    jent *e = lookup(j, seq);
    if (e) fn(ud, &e->e);
    pthread_mutex_unlock(&j->mu);
    return e ? 0 : -ENOENT;
}

void jnl_get_stats(journal *j, jnl_stats *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&j->mu);
    st->live = j->nlive;
    st->parked = j->nparked;
    st->awaiting_primary = j->naccepted;
    st->pending = j->nlive - j->nparked - j->naccepted;
    /* Apply rates over the last complete 10 and 60 seconds (the current second is still filling). */
    uint64_t now_s = jnl__now_ns() / 1000000000u;
    uint64_t n10 = 0, n60 = 0;
    for (unsigned i = 0; i < JNL_RATE_SLOTS; i++) {
        uint64_t age = now_s - j->rate_sec[i];
        if (j->rate_sec[i] == 0 || j->rate_sec[i] >= now_s || age > 60) continue;
        n60 += j->rate_cnt[i];
        if (age <= 10) n10 += j->rate_cnt[i];
    }
    st->apply_rate_10s = (double)n10 / 10.0;
    st->apply_rate_60s = (double)n60 / 60.0;
    st->bytes_pending = j->bytes_live;
    /* the oldest pending entry is nearly always at the head (seq order) */
    for (jent *e = j->head; e; e = e->next) {
        if (e->e.state == JFMT_S_PARKED || e->e.state == JFMT_S_ACCEPTED) continue;
        st->oldest_ns = e->e.t_accept_ns;
        break;
    }
    st->appended = j->appended;
    st->applied = j->applied;
    st->refused = j->refused;
    st->dropped = j->dropped;
    st->resyncs = j->resyncs;
    st->parked_total = j->parked_total;
    st->commits = j->commits;
    st->commit_waits = j->commit_waits;
    st->fdatasyncs = j->fdatasyncs;
    st->records_written = j->records_written;
    st->bytes_written = j->bytes_written;
    st->fdatasync_seconds = j->fdatasync_seconds;
    st->segments = j->nsegs;
    st->segments_deleted = j->segments_deleted;
    st->max_seq = j->max_seq;
    st->failed = j->failed;
    pthread_mutex_unlock(&j->mu);
}

/* ---------------------------------------------------------------- metrics */

/* One gauge callback per figure of jnl_stats: each takes a fresh snapshot. */
#define JNL_GAUGE(name, expr)                                                                      \
    static int64_t name(void *ud)                                                                  \
    {                                                                                              \
        jnl_stats st;                                                                              \
        jnl_get_stats(ud, &st);                                                                    \
        return (int64_t)(expr);                                                                    \
    }
JNL_GAUGE(g_pending, st.pending)
JNL_GAUGE(g_parked, st.parked)
JNL_GAUGE(g_awaiting, st.awaiting_primary)
JNL_GAUGE(g_bytes, st.bytes_pending)
JNL_GAUGE(g_rate, st.apply_rate_10s + 0.5)
JNL_GAUGE(g_segments, st.segments)
#undef JNL_GAUGE

static int64_t g_oldest(void *ud)
{
    jnl_stats st;
    jnl_get_stats(ud, &st);
    uint64_t now = jnl__now_ns();
    return st.oldest_ns && now > st.oldest_ns ? (int64_t)((now - st.oldest_ns) / 1000000000u) : 0;
}

int jnl_register_metrics(journal *j, metrics *m)
{
    static const double fs_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                       0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
    const char *recs = "Journal entries by state";
    if (metrics_gauge_fn(m, "dualpipe_journal_records", recs, "state=\"pending\"", g_pending, j) < 0 ||
        metrics_gauge_fn(m, "dualpipe_journal_records", recs, "state=\"parked\"", g_parked, j) < 0 ||
        metrics_gauge_fn(m, "dualpipe_journal_records", recs, "state=\"awaiting_primary\"", g_awaiting, j) < 0 ||
        metrics_gauge_fn(m, "dualpipe_journal_bytes_pending", "Body bytes of live journal entries", NULL, g_bytes,
                         j) < 0 ||
        metrics_gauge_fn(m, "dualpipe_journal_oldest_pending_seconds", "Age of the oldest entry owed to Gen2",
                         NULL, g_oldest, j) < 0 ||
        metrics_gauge_fn(m, "dualpipe_journal_apply_rate", "Records applied to Gen2 per second, last 10 s", NULL,
                         g_rate, j) < 0 ||
        metrics_gauge_fn(m, "dualpipe_journal_segments", "Journal segment files", NULL, g_segments, j) < 0)
        return -1;
    const char *tot = "Journal entries that reached a state";
    metrics_counter *ap = metrics_counter_get(m, "dualpipe_journal_records_total", tot, "state=\"applied\"");
    metrics_counter *rf = metrics_counter_get(m, "dualpipe_journal_records_total", tot, "state=\"refused\"");
    metrics_counter *dr = metrics_counter_get(m, "dualpipe_journal_records_total", tot, "state=\"dropped\"");
    metrics_counter *rs = metrics_counter_get(m, "dualpipe_journal_records_total", tot, "state=\"resync\"");
    metrics_counter *pk = metrics_counter_get(m, "dualpipe_journal_records_total", tot, "state=\"parked\"");
    metrics_counter *cm = metrics_counter_get(m, "dualpipe_journal_commits_total", "Journal group commits", NULL);
    metrics_counter *fs =
        metrics_counter_get(m, "dualpipe_journal_fdatasync_total", "fdatasync calls by the journal", NULL);
    metrics_histogram *fh = metrics_histogram_get(m, "dualpipe_journal_fdatasync_seconds",
                                                  "fdatasync latency", NULL, fs_bounds,
                                                  (int)(sizeof fs_bounds / sizeof fs_bounds[0]));
    char lbl[64];
    snprintf(lbl, sizeof lbl, "backend=\"%s\"", iox_backend_name(iox_in_use(j->io)));
    metrics_gauge *be = metrics_gauge_get(m, "dualpipe_io_backend", "I/O backend in use", lbl);
    if (!ap || !rf || !dr || !rs || !pk || !cm || !fs || !fh || !be) return -1;
    metrics_gauge_set(be, 1);
    pthread_mutex_lock(&j->mu);
    metrics_add(ap, j->applied);
    metrics_add(rf, j->refused);
    metrics_add(dr, j->dropped);
    metrics_add(rs, j->resyncs);
    metrics_add(pk, j->parked_total);
    metrics_add(cm, j->commits);
    metrics_add(fs, j->fdatasyncs);
    j->m_applied = ap;
    j->m_refused = rf;
    j->m_dropped = dr;
    j->m_resync = rs;
    j->m_parked = pk;
    j->m_commits = cm;
    j->m_fsyncs = fs;
    j->m_fsync_hist = fh;
    pthread_mutex_unlock(&j->mu);
    return 0;
}

/* ---------------------------------------------------------------- JSON */

/* A JSON string: quotes, backslashes and control bytes escaped; bytes that are not UTF-8 become U+FFFD. */
static int json_str(dbuf *o, const char *s)
{
    int rc = dbuf_add(o, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (rc == 0 && *p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = dbuf_add(o, esc, 2);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            rc = dbuf_printf(o, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            rc = dbuf_add(o, p, 1);
            p++;
        } else {
            int n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
            int k = 1;
            while (n && k < n && (p[k] & 0xC0) == 0x80) k++;
            if (n && k == n) {
                rc = dbuf_add(o, p, (size_t)n);
                p += n;
            } else {
                rc = dbuf_adds(o, "\\ufffd");
                p++;
            }
        }
    }
    if (rc == 0) rc = dbuf_add(o, "\"", 1);
    return rc;
}

int jnl_status_json(journal *j, dbuf *out)
{
    jnl_stats st;
    jnl_get_stats(j, &st);
    uint64_t now = jnl__now_ns();
    double oldest = st.oldest_ns && now > st.oldest_ns ? (double)(now - st.oldest_ns) / 1e9 : 0;
    return dbuf_printf(out,
                       "{\"live\":%" PRIu64 ",\"pending\":%" PRIu64 ",\"parked\":%" PRIu64
                       ",\"awaiting_primary\":%" PRIu64 ",\"bytes_pending\":%" PRIu64
                       ",\"oldest_pending_s\":%.3f,\"appended\":%" PRIu64 ",\"applied\":%" PRIu64
                       ",\"refused\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"resyncs\":%" PRIu64
                       ",\"parked_total\":%" PRIu64 ",\"commits\":%" PRIu64 ",\"commit_waits\":%" PRIu64 ",\"fdatasyncs\":%" PRIu64
                       ",\"records_written\":%" PRIu64 ",\"bytes_written\":%" PRIu64
                       ",\"fdatasync_seconds\":%.6f,\"segments\":%" PRIu64 ",\"segments_deleted\":%" PRIu64
                       ",\"max_seq\":%" PRIu64 ",\"apply_rate_10s\":%.1f,\"apply_rate_60s\":%.1f"
                       ",\"failed\":%s,\"backend\":\"%s\"}",
                       st.live, st.pending, st.parked, st.awaiting_primary, st.bytes_pending, oldest, st.appended,
                       st.applied, st.refused, st.dropped, st.resyncs, st.parked_total, st.commits, st.commit_waits, st.fdatasyncs,
                       st.records_written, st.bytes_written, st.fdatasync_seconds, st.segments,
                       st.segments_deleted, st.max_seq, st.apply_rate_10s, st.apply_rate_60s,
                       st.failed ? "true" : "false",
                       iox_backend_name(iox_in_use(j->io)));
}

static const char *op_name(const jnl_entry *e, char *buf, size_t len)
{
    if (e->jop == JFMT_OP_RESYNC) return "RESYNC";
    const whreq_opinfo *oi = whreq_opinfo_get(e->op);
    if (oi) return oi->name;
    snprintf(buf, len, "UNKNOWN(%u)", (unsigned)e->jop);
    return buf;
}

int jnl_list_json(journal *j, bool parked_only, uint64_t after, unsigned limit, dbuf *out)
{
    int rc = dbuf_adds(out, "{\"records\":[");
    unsigned n = 0;
    bool more = false;
    uint64_t now = jnl__now_ns();
    pthread_mutex_lock(&j->mu);
    for (jent *x = j->head; x && rc == 0; x = x->next) {
        const jnl_entry *e = &x->e;
        if (e->seq <= after || (parked_only && e->state != JFMT_S_PARKED)) continue;
        if (n >= limit) {
            more = true;
            break;
        }
        char ob[32];
        double age = now > e->t_accept_ns ? (double)(now - e->t_accept_ns) / 1e9 : 0;
        rc = dbuf_printf(out, "%s{\"seq\":%" PRIu64 ",\"op\":\"%s\",\"path\":", n ? "," : "", e->seq,
                         op_name(e, ob, sizeof ob));
        if (rc == 0) rc = json_str(out, e->path);
        if (rc == 0)
            rc = dbuf_printf(out,
                             ",\"state\":\"%s\",\"status\":%u,\"age_s\":%.3f,\"body_len\":%" PRIu64
                             ",\"body_lost\":%s,\"detail\":",
                             jfmt_state_name(e->state), (unsigned)e->status, age, e->body_len,
                             e->body_lost ? "true" : "false");
        if (rc == 0) rc = json_str(out, e->detail);
        if (rc == 0) rc = dbuf_add(out, "}", 1);
        n++;
    }
    pthread_mutex_unlock(&j->mu);
    if (rc == 0) rc = dbuf_printf(out, "],\"more\":%s}", more ? "true" : "false");
    return rc;
}
