/*
 * journal_commit: the group commit of the journal. Appends encode their frame into one in-memory
 * queue under the journal mutex (jnl__queue_rec); the single commit thread (jnl__commit_main) swaps
 * the queue out, writes it to the current segment with one pwrite, fdatasyncs that segment and
 * every spool segment written since the previous cycle concurrently, then, under the mutex again,
 * applies what the batch made durable (entries leave the index on a terminal state, segments with
 * nothing left go) and finally runs the callbacks without the mutex. A failed cycle fails its WRITEs
 * (recorded as PRIMARY_REFUSED), requeues its STATEs, refuses appends and moves to a fresh segment;
 * the commit thread retries after commit_lazy_ms.
 *
 * The commit thread writes and fdatasyncs the journal segment itself (iox_pwrite_here,
 * iox_fdatasync_here) and hands only the other files' fdatasyncs to the I/O engine, which run while
 * it syncs the segment: a commit that went through the engine and waited for it took four thread
 * wake-ups (commit thread -> ring thread -> commit thread, twice) on top of the disk, each a
 * scheduling delay on a busy machine that every writer of the batch waited for.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal_int.h"

#define JNL_DIRTY_CHUNK 64
#define JNL_CLOSE_ATTEMPTS 3

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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
int jnl__queue_rec(journal *j, const jfmt_rec *rec, jitem *it)
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

int jnl__queue_state(journal *j, uint64_t seq, uint16_t st, int status, const char *detail, jnl_done_cb cb,
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
    return jnl__queue_rec(j, &rec, &it);
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

static void sync_observe(journal *j, uint64_t t0)
{
    double secs = (double)(mono_ns() - t0) / 1e9;
    pthread_mutex_lock(&j->mu);
    j->fdatasync_seconds += secs;
    pthread_mutex_unlock(&j->mu);
    metrics_observe(j->m_fsync_hist, secs);
}

static void sync_done(void *ud, int64_t res)
{
    sync_one *o = ud;
    sync_wait *w = o->w;
    sync_observe(w->j, o->t0);
    pthread_mutex_lock(&w->mu);
    if (res < 0 && w->err == 0) w->err = (int)res;
    if (--w->left == 0) pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* fdatasync the journal fd (on this thread) and the spool segments and the side file (on the I/O
 * engine, meanwhile); 0 or the first -errno. */
static int sync_all(journal *j, int jfd, spool_seg **ss, int nss, int side_fd)
{
    int n = nss + (side_fd >= 0); /* handed to the engine */
    sync_one *ones = n ? calloc((size_t)n, sizeof *ones) : NULL;
    if (n && !ones) return -ENOMEM;
    sync_wait w = {.left = n, .err = 0, .j = j};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&j->mu);
    j->fdatasyncs += (uint64_t)n + 1;
    pthread_mutex_unlock(&j->mu);
    metrics_add(j->m_fsyncs, (uint64_t)n + 1);
    for (int i = 0; i < n; i++) {
        ones[i].w = &w;
        ones[i].t0 = mono_ns();
        int fd = i < nss ? spool_seg_fd(ss[i]) : side_fd;
        int rc = iox_fdatasync(j->io, fd, sync_done, &ones[i]);
        if (rc < 0) {
            pthread_mutex_lock(&w.mu);
            if (w.err == 0) w.err = rc;
            w.left--;
            pthread_mutex_unlock(&w.mu);
        }
    }
    uint64_t t0 = mono_ns();
    int64_t jrc = iox_fdatasync_here(j->io, jfd);
    sync_observe(j, t0);
    pthread_mutex_lock(&w.mu);
    while (w.left > 0) pthread_cond_wait(&w.cv, &w.mu);
    int err = jrc < 0 ? (int)jrc : w.err;
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
int jnl__ensure_segment(journal *j, size_t len)
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
    uint64_t base = seg->end - b->buf.len; /* where the batch went */
    for (size_t i = 0; i < b->n; i++) {
        jitem *it = &b->items[i];
        jent *e = jnl__lookup(j, it->seq); /* resident: fresh, or a STATE queued (nqueued) */
        j->records_written++;
        if (it->type == JFMT_T_WRITE) {
            if (e) jnl__made_durable(j, e);
            if (e && e->e.jop == JFMT_OP_RESYNC) {
                j->resyncs++;
                metrics_inc(j->m_resync);
            }
        } else if (e) {
            uint16_t st = it->state;
            if (e->nqueued > 0) e->nqueued--;
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
                jnl__index_remove(j, e);
                e = NULL;
            } else {
                jnl__state_durable(j, e, seg, base + it->off, st);
                if (st == JFMT_S_RESYNC) {
                    /* one per record: a RESYNC record was counted when it was written */
                    if (e->e.jop != JFMT_OP_RESYNC) {
                        j->resyncs++;
                        metrics_inc(j->m_resync);
                    }
                    /* a resync copies from the primary: the body is no longer needed */
                    spool_unref(e->e.body);
                    e->e.body = NULL;
                } else if (st == JFMT_S_PARKED) {
                    j->parked_total++;
                    metrics_inc(j->m_parked);
                }
            }
        }
        if (e) jnl__release(j, e); /* durable now: evictable again unless still in use */
        if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, 0};
    }
    j->bytes_written += b->buf.len;
    j->commits++;
    metrics_inc(j->m_commits);
    j->failed = false;
    jnl__sweep_locked(j);
    jnl__trim_locked(j);
}

/* A failed batch (under mu): WRITEs fail (recorded PRIMARY_REFUSED), STATEs are queued again. */
static void apply_failed_locked(journal *j, jqueue *b, int err, cbrun *runs, size_t *nruns)
{
    for (size_t i = 0; i < b->n; i++) {
        jitem *it = &b->items[i];
        jent *e = jnl__lookup(j, it->seq);
        if (it->type == JFMT_T_WRITE) {
            if (e && !e->ending) {
                jnl__set_state(j, e, JFMT_S_PRIMARY_REFUSED);
                jnl__set_detail(e, "journal I/O error", strlen("journal I/O error"));
                e->ending = true;
                if (jnl__queue_state(j, e->e.seq, JFMT_S_PRIMARY_REFUSED, 0, "journal I/O error", NULL, NULL) == 0)
                    e->nqueued++;
            }
            if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, err};
        } else if (e && e->ending && !jnl__terminal(it->state)) {
            /* its WRITE failed in this batch: the refusal queued above must stay the last word */
            if (e->nqueued > 0) e->nqueued--;
            if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, err};
        } else {
            size_t before = j->q.buf.len;
            jitem again = *it;
            if (dbuf_add(&j->q.buf, b->buf.data + it->off, it->len) < 0) {
                if (e && e->nqueued > 0) e->nqueued--;
                if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, err};
                if (e) jnl__release(j, e);
                continue;
            }
            again.off = (uint32_t)before;
            if (queue_item(&j->q, &again) < 0) {
                j->q.buf.len = before;
                if (e && e->nqueued > 0) e->nqueued--;
                if (it->cb) runs[(*nruns)++] = (cbrun){it->cb, it->ud, it->seq, err};
            }
        }
        if (e) jnl__release(j, e); /* a STATE given up on may have been its last in use */
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
        int64_t w = iox_pwrite_here(j->io, fd, jnl_zeros, (size_t)n, seg->zeroed);
        if (w < 0) return (int)w;
        seg->zeroed += n;
    }
    return 0;
}

/* One commit of batch b: place, write, sync. Returns 0 or -errno. No lock held. */
static int commit_batch(journal *j, jqueue *b, jseg **seg_out)
{
    int rc = jnl__ensure_segment(j, b->buf.len);
    if (rc < 0) return rc;
    pthread_mutex_lock(&j->mu);
    jseg *seg = j->cur;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].type != JFMT_T_WRITE) continue;
        jent *e = jnl__lookup(j, b->items[i].seq);
        if (e && !e->wseg) {
            e->wseg = seg;
            e->woff = seg->end + b->items[i].off;
            seg->live_writes++;
        }
    }
    int fd = seg->fd;
    uint64_t off = seg->end;
    pthread_mutex_unlock(&j->mu);
    *seg_out = seg;

    spool_seg **ss = NULL;
    int nss = 0;
    int64_t w = iox_pwrite_here(j->io, fd, b->buf.data, b->buf.len, off);
    if (w >= 0) w = zero_ahead(j, seg, fd, off + b->buf.len);
    /* the spool segments are taken even when the write failed, so a failed sync is retried */
    pthread_mutex_lock(&j->mu);
    rc = take_spool_dirty(j, &ss, &nss);
    /* what the append hook wrote for the records of this batch (taken at least as late as they were) */
    int side = j->side_dirty ? j->side_fd : -1;
    if (rc >= 0 && w >= 0) j->side_dirty = false;
    pthread_mutex_unlock(&j->mu);
    if (rc < 0) return rc;
    if (w < 0) rc = (int)w;
    else rc = sync_all(j, fd, ss, nss, side);
    pthread_mutex_lock(&j->mu);
    if (rc == 0) {
        seg->end = off + b->buf.len;
        for (int i = 0; i < nss; i++) spool_seg_put(ss[i]);
    } else {
        if (side >= 0 && side == j->side_fd) j->side_dirty = true;
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

void *jnl__commit_main(void *arg)
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
