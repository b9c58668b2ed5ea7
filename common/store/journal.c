/*
 * journal: the record API of the write journal (journal.h; bytes on disk: JOURNAL.md): open and
 * close, appending WRITEs and STATEs, the views of live entries, stats, metrics and JSON. The live
 * index and the path-epoch gate are in journal_index.c, the group commit in journal_commit.c, the
 * start-up scan in journal_recover.c; they share journal_int.h.
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
    jent *lists[2] = {j->lru, j->held}; /* every resident entry is on one of them */
    for (int i = 0; i < 2; i++) {
        for (jent *e = lists[i]; e;) {
            jent *n = e->lnext;
            /* bodies stay on disk: their references die with the spool (spool_close) */
            jnl__ent_free(e);
            e = n;
        }
    }
    j->head = j->tail = j->lru = j->lru_tail = j->held = NULL;
    free(j->hash);
    for (int i = 0; i < 2; i++) free(j->pcache[i].buf);
    for (jseg *g = j->segs; g;) {
        jseg *n = g->next;
        if (g->fd >= 0) close(g->fd);
        if (g->rfd >= 0) close(g->rfd);
        free(g->rows);
        free(g);
        g = n;
    }
    for (int i = 0; i < j->nresync; i++) spool_seg_put(j->resync_segs[i]);
    free(j->resync_segs);
    dbuf_free(&j->q.buf);
    free(j->q.items);
    if (j->dirfd >= 0) close(j->dirfd);
    if (j->lockfd >= 0) close(j->lockfd);
    if (j->side_fd >= 0) close(j->side_fd);
    if (j->side_retired >= 0) close(j->side_retired);
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
    j->dirfd = j->lockfd = j->side_fd = j->side_retired = -1;
    snprintf(j->dir, sizeof j->dir, "%s", o->dir);
    j->segment_bytes = o->segment_bytes ? o->segment_bytes : JNL_DEFAULT_SEGMENT;
    if (j->segment_bytes < 4096) j->segment_bytes = 4096;
    j->lazy_ms = o->commit_lazy_ms ? o->commit_lazy_ms : JNL_DEFAULT_LAZY_MS;
    j->wait_ns = (uint64_t)o->commit_wait_us * 1000u;
    j->batch_target = o->commit_batch ? o->commit_batch : 32;
    j->io = o->io;
    j->sp = o->sp;
    j->verify = o->verify_bodies;
    j->max_resident = o->max_resident ? o->max_resident : JNL_DEFAULT_RESIDENT;
    j->pcache[0].cap = j->pcache[1].cap = JNL_PAGE_WINDOW;
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
    int src = jnl__ensure_segment(j, 0);
    if (src < 0) {
        snprintf(err, errlen, "journal: cannot create a segment in %s: %s", j->dir, strerror(-src));
        goto fail;
    }
    if (pthread_create(&j->thread, NULL, jnl__commit_main, j) != 0) {
        snprintf(err, errlen, "journal: cannot start the commit thread");
        goto fail;
    }
    (void)pthread_setname_np(j->thread, "dp-journal"); /* ps -L, perf, /proc/PID/task/N/comm */
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

void jnl_set_append_hook(journal *j, jnl_append_hook fn, void *ud, int side_fd)
{
    /* the journal syncs its own duplicate: a commit in flight may still hold the previous one, so that
     * one is closed only with the journal (or by the next change; the proxy sets the hook once) */
    int fd = fn && side_fd >= 0 ? fcntl(side_fd, F_DUPFD_CLOEXEC, 0) : -1;
    pthread_mutex_lock(&j->mu);
    j->hook = fn;
    j->hook_ud = ud;
    if (j->side_fd >= 0) {
        if (j->side_retired >= 0) close(j->side_retired);
        j->side_retired = j->side_fd;
    }
    j->side_fd = fd;
    j->side_dirty = false;
    pthread_mutex_unlock(&j->mu);
}

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
        /* a recovered body keeps the kind of checksum it was journaled with (and is journaled again
         * only by tests: the proxy appends fresh bodies, which carry a CRC-32C) */
        if (in->body->sum.kind == SPOOL_SUM_CRC32C) {
            rec.flags |= JFMT_WF_CRC32C;
            jfmt_digest_set_crc(w->digest, spool_sum_crc(&in->body->sum));
        } else {
            memcpy(w->digest, in->body->sum.bytes, JFMT_DIGEST_LEN);
        }
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
    rc = jnl__queue_rec(j, &rec, &it);
    if (rc < 0) goto out;
    if (jnl__index_add(j, e) < 0) {
        /* cannot happen without a hash table at all; the record is queued, keep it honest */
        rc = -ENOMEM;
        goto out;
    }
    j->max_seq = w->seq;
    e->e.body = spool_ref(in->body);
    jnl__epoch_touch(j, w->seq, w->path.p, w->path.len, w->params, w->nparams);
    if (j->hook && j->hook(j->hook_ud, in->jop, e->e.touched, e->e.ntouched)) j->side_dirty = true;
    j->appended++;
    *seq = w->seq;
    e = NULL;
    jnl__trim_locked(j);
out:
    pthread_mutex_unlock(&j->mu);
    jnl__ent_free(e);
    return rc;
}

/** Record a new state of entry seq. */
int jnl_state(journal *j, uint64_t seq, jfmt_state st, int status, const char *detail, jnl_done_cb cb, void *ud)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&j->mu);
    jent *e = j->closing ? NULL : jnl__get(j, seq, &rc);
    if (j->closing) rc = -ESHUTDOWN;
    else if (!e) (void)0; /* rc: -ENOENT, or why it could not be paged in */
    else if (e->ending) rc = -ENOENT;
    else {
        char d[JFMT_MAX_DETAIL + 1];
        size_t n = detail ? jnl__detail_len(detail, strlen(detail)) : 0;
        if (n) memcpy(d, detail, n);
        d[n] = '\0';
        rc = jnl__queue_state(j, seq, (uint16_t)st, status, d, cb, ud);
        if (rc == 0) {
            jnl__set_state(j, e, (uint16_t)st);
            if (status > 0 && status < 65536) e->e.status = (uint16_t)status;
            jnl__set_detail(e, d, n);
            e->nqueued++;
            if (jnl__terminal((uint16_t)st)) e->ending = true;
        }
    }
    jnl__trim_locked(j);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

/* ---------------------------------------------------------------- views */

/*
 * Every live record in seq order (under mu): the rows of the segments merged with the fresh list.
 * visit gets the resident entry (e) or the row (g, r; e NULL); it returns false to stop.
 */
typedef bool (*walk_fn)(void *ud, journal *j, jseg *g, jrow *r, jent *e);

static void walk_locked(journal *j, walk_fn visit, void *ud)
{
    jent *f = j->head;
    for (jseg *g = j->segs; g; g = g->next) {
        for (uint32_t i = 0; i < g->nrows; i++) {
            jrow *r = &g->rows[i];
            if (r->flags & JR_DEAD) continue;
            uint64_t seq = g->row_base + r->dseq;
            for (; f && f->e.seq < seq; f = f->next)
                if (!visit(ud, j, NULL, NULL, f)) return;
            if (!visit(ud, j, g, r, jnl__lookup(j, seq))) return;
        }
    }
    for (; f; f = f->next)
        if (!visit(ud, j, NULL, NULL, f)) return;
}

/* A walk that pages in: sequential reads through caches of its own. */
typedef struct view_walk {
    void (*fn)(void *ud, const jnl_entry *e);
    void *ud;
    struct jrcache c[2];
} view_walk;

static bool foreach_visit(void *ud, journal *j, jseg *g, jrow *r, jent *e)
{
    view_walk *w = ud;
    if (e) {
        w->fn(w->ud, &e->e);
        return true;
    }
    if (jnl__row_load(j, g, r, true, w->c, &e) < 0) return true; /* unreadable: not shown (jnl_with_entry says why) */
    w->fn(w->ud, &e->e);
    if (e->e.body && !spool_body_to_pin(e->e.body)) {
        /* fn kept a reference to the body: the entry stays resident, which keeps the journal's */
        jnl__resident_add(j, e);
        return true;
    }
    e->e.body = NULL;
    jnl__ent_free(e);
    return true;
}

static void walk_caches(struct jrcache *c)
{
    memset(c, 0, 2 * sizeof *c);
    c[0].cap = c[1].cap = JNL_WALK_WINDOW;
}

void jnl_foreach(journal *j, void (*fn)(void *ud, const jnl_entry *e), void *ud)
{
    view_walk w = {.fn = fn, .ud = ud};
    walk_caches(w.c);
    pthread_mutex_lock(&j->mu);
    walk_locked(j, foreach_visit, &w);
    jnl__trim_locked(j);
    pthread_mutex_unlock(&j->mu);
    free(w.c[0].buf);
    free(w.c[1].buf);
}

uint64_t jnl_next_live(journal *j, uint64_t seq)
{
    uint64_t best = UINT64_MAX;
    pthread_mutex_lock(&j->mu);
    for (jseg *g = j->segs; g && best == UINT64_MAX; g = g->next) {
        if (g->nrows == 0 || g->row_base + g->rows[g->nrows - 1].dseq < seq) continue;
        uint64_t d = seq > g->row_base ? seq - g->row_base : 0;
        size_t lo = 0, hi = g->nrows;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (g->rows[mid].dseq < d) lo = mid + 1;
            else hi = mid;
        }
        for (; lo < g->nrows; lo++) {
            if (g->rows[lo].flags & JR_DEAD) continue;
            best = g->row_base + g->rows[lo].dseq;
            break;
        }
    }
    for (jent *f = j->head; f; f = f->next) { /* entries without a row */
        if (f->e.seq >= seq) {
            if (f->e.seq < best) best = f->e.seq;
            break;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return best;
}

int jnl_with_entry(journal *j, uint64_t seq, void (*fn)(void *ud, const jnl_entry *e), void *ud)
{
    int rc = 0;
    pthread_mutex_lock(&j->mu);
    jent *e = jnl__get(j, seq, &rc);
    if (e) fn(ud, &e->e);
    jnl__trim_locked(j);
    pthread_mutex_unlock(&j->mu);
    return e ? 0 : rc;
}

/* The oldest pending entry's t_accept (stats). */
typedef struct oldest_walk {
    uint64_t ns;
    struct jrcache c[2];
} oldest_walk;

static bool oldest_visit(void *ud, journal *j, jseg *g, jrow *r, jent *e)
{
    oldest_walk *w = ud;
    uint16_t st = e ? e->e.state : r->state;
    if (st == JFMT_S_PARKED || st == JFMT_S_ACCEPTED) return true;
    if (e) {
        w->ns = e->e.t_accept_ns;
        return false;
    }
    uint64_t seq = g->row_base + r->dseq;
    if (j->oldest_seq == seq) {
        w->ns = j->oldest_ns;
        return false;
    }
    if (jnl__row_load(j, g, r, false, j->pcache, &e) < 0) return true;
    w->ns = e->e.t_accept_ns;
    jnl__ent_free(e);
    j->oldest_seq = seq;
    j->oldest_ns = w->ns;
    return false;
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
    /* the oldest pending entry is nearly always first in seq order (its t_accept is cached) */
    oldest_walk ow = {0};
    walk_locked(j, oldest_visit, &ow);
    st->oldest_ns = ow.ns;
    st->resident = j->nresident;
    st->compact = j->nlive >= j->nresident ? j->nlive - j->nresident : 0;
    st->max_resident = j->max_resident;
    st->page_ins = j->page_ins;
    st->evictions = j->evictions;
    st->evict_scans = j->evict_scans;
    st->held = j->nheld;
    st->page_in_errors = j->page_in_errors;
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

/*
 * The gauges of one /metrics scrape share a snapshot: jnl_get_stats walks the records in seq order
 * to the first pending one, past every PARKED and ACCEPTED record before it, under the journal's
 * mutex, so nine gauges taking their own would walk a large parked backlog nine times per scrape.
 * A snapshot younger than JNL_GAUGE_SNAP_NS is reused.
 */
#define JNL_GAUGE_SNAP_NS 100000000u

static void gauge_stats(journal *j, jnl_stats *st)
{
    uint64_t now = jnl__now_ns();
    pthread_mutex_lock(&j->mu);
    bool fresh = j->gsnap_ns && now >= j->gsnap_ns && now - j->gsnap_ns < JNL_GAUGE_SNAP_NS;
    if (fresh) *st = j->gsnap;
    pthread_mutex_unlock(&j->mu);
    if (fresh) return;
    jnl_get_stats(j, st);
    pthread_mutex_lock(&j->mu);
    j->gsnap = *st;
    j->gsnap_ns = now;
    pthread_mutex_unlock(&j->mu);
}

#define JNL_GAUGE(name, expr)                                                                      \
    static int64_t name(void *ud)                                                                  \
    {                                                                                              \
        jnl_stats st;                                                                              \
        gauge_stats(ud, &st);                                                                      \
        return (int64_t)(expr);                                                                    \
    }
JNL_GAUGE(g_pending, st.pending)
JNL_GAUGE(g_parked, st.parked)
JNL_GAUGE(g_awaiting, st.awaiting_primary)
JNL_GAUGE(g_bytes, st.bytes_pending)
JNL_GAUGE(g_rate, st.apply_rate_10s + 0.5)
JNL_GAUGE(g_segments, st.segments)
JNL_GAUGE(g_resident, st.resident)
JNL_GAUGE(g_compact, st.compact)
#undef JNL_GAUGE

static int64_t g_oldest(void *ud)
{
    jnl_stats st;
    gauge_stats(ud, &st);
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
        metrics_gauge_fn(m, "dualpipe_journal_segments", "Journal segment files", NULL, g_segments, j) < 0 ||
        metrics_gauge_fn(m, "dualpipe_journal_index_entries", "Live journal entries by how they are held",
                         "tier=\"resident\"", g_resident, j) < 0 ||
        metrics_gauge_fn(m, "dualpipe_journal_index_entries", "Live journal entries by how they are held",
                         "tier=\"compact\"", g_compact, j) < 0)
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
    metrics_counter *pi = metrics_counter_get(m, "dualpipe_journal_page_ins_total",
                                              "Journal entries read back from their segment", NULL);
    metrics_histogram *fh = metrics_histogram_get(m, "dualpipe_journal_fdatasync_seconds",
                                                  "fdatasync latency", NULL, fs_bounds,
                                                  (int)(sizeof fs_bounds / sizeof fs_bounds[0]));
    char lbl[64];
    snprintf(lbl, sizeof lbl, "backend=\"%s\"", iox_backend_name(iox_in_use(j->io)));
    metrics_gauge *be = metrics_gauge_get(m, "dualpipe_io_backend", "I/O backend in use", lbl);
    if (!ap || !rf || !dr || !rs || !pk || !cm || !fs || !pi || !fh || !be) return -1;
    metrics_gauge_set(be, 1);
    pthread_mutex_lock(&j->mu);
    metrics_add(ap, j->applied);
    metrics_add(rf, j->refused);
    metrics_add(dr, j->dropped);
    metrics_add(rs, j->resyncs);
    metrics_add(pk, j->parked_total);
    metrics_add(cm, j->commits);
    metrics_add(fs, j->fdatasyncs);
    metrics_add(pi, j->page_ins);
    j->m_applied = ap;
    j->m_refused = rf;
    j->m_dropped = dr;
    j->m_resync = rs;
    j->m_parked = pk;
    j->m_commits = cm;
    j->m_fsyncs = fs;
    j->m_page_ins = pi;
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
                       ",\"failed\":%s,\"backend\":\"%s\",\"resident\":%" PRIu64 ",\"compact\":%" PRIu64
                       ",\"max_resident\":%" PRIu64 ",\"page_ins\":%" PRIu64 ",\"evictions\":%" PRIu64 ",\"page_in_errors\":%" PRIu64
                       ",\"held\":%" PRIu64 ",\"evict_scans\":%" PRIu64 "}",
                       st.live, st.pending, st.parked, st.awaiting_primary, st.bytes_pending, oldest, st.appended,
                       st.applied, st.refused, st.dropped, st.resyncs, st.parked_total, st.commits, st.commit_waits, st.fdatasyncs,
                       st.records_written, st.bytes_written, st.fdatasync_seconds, st.segments,
                       st.segments_deleted, st.max_seq, st.apply_rate_10s, st.apply_rate_60s,
                       st.failed ? "true" : "false",
                       iox_backend_name(iox_in_use(j->io)), st.resident, st.compact, st.max_resident, st.page_ins,
                       st.evictions, st.page_in_errors, st.held, st.evict_scans);
}

static const char *op_name(const jnl_entry *e, char *buf, size_t len)
{
    if (e->jop == JFMT_OP_RESYNC) return "RESYNC";
    const whreq_opinfo *oi = whreq_opinfo_get(e->op);
    if (oi) return oi->name;
    snprintf(buf, len, "UNKNOWN(%u)", (unsigned)e->jop);
    return buf;
}

typedef struct list_walk {
    bool parked_only;
    uint64_t after;
    unsigned limit, n;
    bool more;
    int rc;
    uint64_t now;
    dbuf *out;
    struct jrcache c[2];
} list_walk;

static bool list_visit(void *ud, journal *j, jseg *g, jrow *r, jent *x)
{
    list_walk *w = ud;
    uint64_t seq = x ? x->e.seq : g->row_base + r->dseq;
    uint16_t state = x ? x->e.state : r->state;
    if (seq <= w->after || (w->parked_only && state != JFMT_S_PARKED)) return true;
    if (w->n >= w->limit) {
        w->more = true;
        return false;
    }
    jent *tmp = NULL;
    if (!x) {
        if (jnl__row_load(j, g, r, false, w->c, &tmp) < 0) return true;
        x = tmp;
    }
    const jnl_entry *e = &x->e;
    dbuf *out = w->out;
    char ob[32];
    double age = w->now > e->t_accept_ns ? (double)(w->now - e->t_accept_ns) / 1e9 : 0;
    int rc = dbuf_printf(out, "%s{\"seq\":%" PRIu64 ",\"op\":\"%s\",\"path\":", w->n ? "," : "", e->seq,
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
    jnl__ent_free(tmp);
    w->n++;
    w->rc = rc;
    return rc == 0;
}

int jnl_list_json(journal *j, bool parked_only, uint64_t after, unsigned limit, dbuf *out)
{
    list_walk w = {.parked_only = parked_only, .after = after, .limit = limit, .now = jnl__now_ns(), .out = out};
    walk_caches(w.c);
    w.rc = dbuf_adds(out, "{\"records\":[");
    if (w.rc == 0) {
        pthread_mutex_lock(&j->mu);
        walk_locked(j, list_visit, &w);
        pthread_mutex_unlock(&j->mu);
    }
    free(w.c[0].buf);
    free(w.c[1].buf);
    int rc = w.rc;
    if (rc == 0) rc = dbuf_printf(out, "],\"more\":%s}", w.more ? "true" : "false");
    return rc;
}
