/*
 * Unit tests for the journal (common/store/journal.h) on real files in a mkdtemp directory, each case on
 * both iox backends (the io_uring cases skip, saying why, where this machine cannot set up a ring):
 * durability callbacks, group commit batching many concurrent appends into few fdatasyncs, states and
 * the removal of terminal entries (their bodies freed), segment rollover and deletion, bodies through
 * a restart, recovery after a clean close and after a crash (a child that _exits without closing), a
 * torn or truncated tail (reported, zeroed, appends go on), corruption in the middle (reported, the
 * rest kept), a changed body (body_lost), a journal written by format 1.0 (SHA-256 bodies) recovering
 * beside 1.1 records (CRC-32C bodies), the LOCK, the fault shim (-EIO/-ENOSPC on writes, -EIO on
 * fdatasync: callbacks see it, appends are refused, the journal recovers when the faults stop), short
 * writes, the path-epoch gate, and the status/list JSON and metrics.
 */
#include "tharness.h"
#include "tiox.h"

#include "crc32c.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <liburing.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

/* ---------------------------------------------------------------- helpers */

typedef struct env {
    iox_backend be;
    char dir[64], sdir[96], jdir[96];
    uint64_t seg_bytes;
    bool verify;
    unsigned wait_us, batch; /* group commit wait (0: off) */
    iox *io;
    spool *sp;
    journal *j;
    jnl_recovery rep;
} env;

static int env_try_open(env *e, char *err, size_t errlen)
{
    spool_opts so = {.dir = e->sdir, .segment_bytes = 1 << 20, .io = e->io};
    if (spool_open(&so, &e->sp, err, errlen) != 0) return -1;
    jnl_opts o = {.dir = e->jdir, .segment_bytes = e->seg_bytes, .commit_lazy_ms = 20, .commit_wait_us = e->wait_us,
                  .commit_batch = e->batch, .io = e->io, .sp = e->sp, .verify_bodies = e->verify};
    if (jnl_open(&o, &e->j, &e->rep, err, errlen) != 0) {
        spool_close(e->sp);
        e->sp = NULL;
        return -1;
    }
    return 0;
}

static void env_reopen(env *e)
{
    char err[512] = "";
    if (!e->io) e->io = tiox_engine(e->be);
    if (env_try_open(e, err, sizeof err) != 0) TH_FAIL_AT("open: %s", err);
}

static void env_init(env *e, iox_backend be, uint64_t seg_bytes)
{
    memset(e, 0, sizeof *e);
    e->be = be;
    e->seg_bytes = seg_bytes;
    e->verify = true;
    snprintf(e->dir, sizeof e->dir, "/tmp/dp-jrnl-XXXXXX");
    ASSERT_TRUE(mkdtemp(e->dir) != NULL);
    snprintf(e->sdir, sizeof e->sdir, "%s/data", e->dir);
    snprintf(e->jdir, sizeof e->jdir, "%s/journal", e->dir);
}

static void env_open(env *e, iox_backend be, uint64_t seg_bytes)
{
    env_init(e, be, seg_bytes);
    env_reopen(e);
    ASSERT_EQ_INT(e->rep.segments, 0);
    ASSERT_EQ_STR(e->rep.problem, "");
}

/* Close journal and spool (the engine stays for a reopen). */
static void env_shut(env *e)
{
    jnl_close(e->j);
    e->j = NULL;
    for (int i = 0; i < 5000 && iox_pending(e->io) > 0; i++) usleep(1000);
    spool_close(e->sp);
    e->sp = NULL;
}

static void env_close(env *e)
{
    env_shut(e);
    iox_free(e->io);
    tiox_rm_tree(e->dir);
}

/* Callback bookkeeping: how many ran, the last error, per-seq errors for small tests. */
typedef struct done {
    _Atomic int n;
    _Atomic int errs;
    _Atomic int last_err;
} done;

static void on_done(void *ud, uint64_t seq, int err)
{
    (void)seq;
    done *d = ud;
    if (err) {
        atomic_fetch_add(&d->errs, 1);
        atomic_store(&d->last_err, err);
    }
    atomic_fetch_add(&d->n, 1);
}

static void wait_n(done *d, int n)
{
    for (int i = 0; i < 10000 && atomic_load(&d->n) < n; i++) usleep(1000);
    ASSERT_EQ_INT(atomic_load(&d->n), n);
}

static uint64_t append(journal *j, uint16_t jop, const char *path, const whreq_param *ps, int np, spool_body *b,
                       done *d)
{
    jnl_write_in in = {.jop = jop, .path = path, .params = ps, .nparams = np, .body = b};
    uint64_t seq = 0;
    ASSERT_EQ_INT(jnl_append(j, &in, on_done, d, &seq), 0);
    ASSERT_TRUE(seq > 0);
    return seq;
}

/* Append and wait for durability. */
static uint64_t append_sync(journal *j, const char *path, done *d)
{
    int before = atomic_load(&d->n);
    uint64_t s = append(j, JFMT_OP_MKDIRS, path, NULL, 0, NULL, d);
    wait_n(d, before + 1);
    return s;
}

static void wait_live(journal *j, uint64_t live)
{
    jnl_stats st;
    for (int i = 0; i < 5000; i++) {
        jnl_get_stats(j, &st);
        if (st.live == live) return;
        usleep(1000);
    }
    ASSERT_EQ_INT(st.live, live);
}

static int count_files(const char *dir, const char *prefix)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^%s'", dir, prefix);
    FILE *f = popen(cmd, "r");
    ASSERT_TRUE(f != NULL);
    int n = -1;
    ASSERT_EQ_INT(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

/* The newest segment file's path. */
static void last_segment(const env *e, char *out, size_t len)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep '^jrnl-' | sort | tail -1", e->jdir);
    FILE *f = popen(cmd, "r");
    ASSERT_TRUE(f != NULL);
    char name[128] = "";
    ASSERT_TRUE(fgets(name, sizeof name, f) != NULL);
    pclose(f);
    name[strcspn(name, "\n")] = '\0';
    snprintf(out, len, "%s/%s", e->jdir, name);
}

typedef struct frames {
    uint64_t off[4096];
    int n;
} frames;

static int frame_cb(void *ctx, const jfmt_rec *rec, uint64_t off)
{
    (void)rec;
    frames *f = ctx;
    if (f->n < 4096) f->off[f->n++] = off;
    return 0;
}

/* Frame offsets of a segment file; returns the file size. */
static uint64_t seg_frames(const char *path, frames *fr)
{
    int fd = open(path, O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    struct stat st;
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size);
    ASSERT_TRUE(buf != NULL);
    ASSERT_EQ_INT(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    jfmt_seg_stats ss;
    fr->n = 0;
    ASSERT_EQ_INT(jfmt_scan_segment(buf, (size_t)st.st_size, frame_cb, fr, &ss), 0);
    free(buf);
    return ss.data_end;
}

static spool_body *mkbody(spool *sp, size_t n, unsigned seed)
{
    spool_body *b = NULL;
    ASSERT_EQ_INT(spool_begin(sp, n, n, &b), 0);
    uint8_t *buf = malloc(n);
    ASSERT_TRUE(buf != NULL);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 7 + seed);
    ASSERT_EQ_INT(spool_write(b, buf, n), 0);
    ASSERT_EQ_INT(spool_finish(b), 0);
    free(buf);
    return b;
}

typedef struct snap {
    uint64_t seq;
    uint16_t state;
    char path[64];
    char detail[64];
    char dest[64];
    uint64_t body_len;
    bool has_body, body_lost;
    int nparams;
} snap;

typedef struct snaps {
    snap s[256];
    int n;
} snaps;

static void snap_fn(void *ud, const jnl_entry *e)
{
    snaps *ss = ud;
    if (ss->n >= 256) return;
    snap *s = &ss->s[ss->n++];
    memset(s, 0, sizeof *s);
    s->seq = e->seq;
    s->state = e->state;
    snprintf(s->path, sizeof s->path, "%s", e->path);
    snprintf(s->detail, sizeof s->detail, "%s", e->detail);
    for (int i = 0; i < e->nparams; i++)
        if (strcmp(e->params[i].name, "destination") == 0) snprintf(s->dest, sizeof s->dest, "%s", e->params[i].value);
    s->nparams = e->nparams;
    s->body_len = e->body_len;
    s->has_body = e->body != NULL;
    s->body_lost = e->body_lost;
}

static void take_snaps(journal *j, snaps *ss)
{
    ss->n = 0;
    jnl_foreach(j, snap_fn, ss);
}

/* ---------------------------------------------------------------- cases */

static void case_append_durable(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    uint64_t prev = 0;
    for (int i = 0; i < 10; i++) {
        char p[32];
        snprintf(p, sizeof p, "/d/%d", i);
        uint64_t s = append(e.j, JFMT_OP_MKDIRS, p, NULL, 0, NULL, &d);
        ASSERT_TRUE(s > prev);
        prev = s;
    }
    wait_n(&d, 10);
    ASSERT_EQ_INT(atomic_load(&d.errs), 0);
    jnl_stats st;
    jnl_get_stats(e.j, &st);
    ASSERT_EQ_INT(st.live, 10);
    ASSERT_EQ_INT(st.awaiting_primary, 10);
    ASSERT_EQ_INT(st.appended, 10);
    ASSERT_TRUE(st.records_written >= 10);
    ASSERT_TRUE(st.fdatasyncs >= 1);
    ASSERT_EQ_INT(st.max_seq, prev);
    ASSERT_EQ_INT(count_files(e.jdir, "jrnl-"), 1);
    /* a record that breaks a format limit */
    jnl_write_in bad = {.jop = JFMT_OP_MKDIRS, .path = "relative"};
    uint64_t s;
    ASSERT_EQ_INT(jnl_append(e.j, &bad, on_done, &d, &s), -EINVAL);
    env_close(&e);
}

typedef struct gc_arg {
    journal *j;
    int n;
    int id;
    _Atomic int *errs;
} gc_arg;

typedef struct one_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int err;
} one_wait;

static void one_done(void *ud, uint64_t seq, int err)
{
    (void)seq;
    one_wait *w = ud;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* A writer: append, wait until durable, next. */
static void *gc_writer(void *arg)
{
    gc_arg *a = arg;
    one_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    for (int i = 0; i < a->n; i++) {
        char p[64];
        snprintf(p, sizeof p, "/w%d/f%d", a->id, i);
        whreq_param ps[1] = {{"overwrite", "true"}};
        jnl_write_in in = {.jop = JFMT_OP_CREATE, .path = p, .params = ps, .nparams = 1};
        uint64_t seq;
        w.done = false;
        if (jnl_append(a->j, &in, one_done, &w, &seq) != 0) {
            atomic_fetch_add(a->errs, 1);
            continue;
        }
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        if (w.err) atomic_fetch_add(a->errs, 1);
        pthread_mutex_unlock(&w.mu);
    }
    return NULL;
}

static void case_group_commit(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    enum { NT = 8, PER = 200 };
    pthread_t t[NT];
    gc_arg a[NT];
    _Atomic int errs = 0;
    for (int i = 0; i < NT; i++) {
        a[i] = (gc_arg){e.j, PER, i, &errs};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, gc_writer, &a[i]), 0);
    }
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    ASSERT_EQ_INT(atomic_load(&errs), 0);
    jnl_stats st;
    jnl_get_stats(e.j, &st);
    ASSERT_EQ_INT(st.appended, NT * PER);
    ASSERT_EQ_INT(st.live, NT * PER);
    fprintf(stderr, "group commit: %d records, %" PRIu64 " commits, %" PRIu64 " fdatasyncs\n", NT * PER,
            st.commits, st.fdatasyncs);
    ASSERT_TRUE(st.fdatasyncs < (uint64_t)(NT * PER / 2));
    ASSERT_TRUE(st.commits < (uint64_t)(NT * PER / 2));
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, NT * PER);
    ASSERT_EQ_INT(e.rep.records, NT * PER);
    env_close(&e);
}

static void case_states(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    spool_body *b1 = mkbody(e.sp, 10000, 1), *b2 = mkbody(e.sp, 5000, 2), *b3 = mkbody(e.sp, 3000, 3);
    uint64_t s1 = append(e.j, JFMT_OP_CREATE, "/a", NULL, 0, b1, &d);
    uint64_t s2 = append(e.j, JFMT_OP_CREATE, "/b", NULL, 0, b2, &d);
    uint64_t s3 = append(e.j, JFMT_OP_APPEND, "/c", NULL, 0, b3, &d);
    uint64_t s4 = append(e.j, JFMT_OP_MKDIRS, "/d", NULL, 0, NULL, &d);
    spool_unref(b1); /* the journal keeps its own references */
    spool_unref(b2);
    spool_unref(b3);
    wait_n(&d, 4);
    spool_stats ss;
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 3);
    ASSERT_EQ_INT(jnl_state(e.j, s1, JFMT_S_PRIMARY_OK, 201, NULL, on_done, &d), 0);
    ASSERT_EQ_INT(jnl_state(e.j, s2, JFMT_S_PRIMARY_REFUSED, 403, "AccessControlException", on_done, &d), 0);
    ASSERT_EQ_INT(jnl_state(e.j, s3, JFMT_S_PRIMARY_OK, 200, NULL, NULL, NULL), 0); /* lazy */
    ASSERT_EQ_INT(jnl_state(e.j, s4, JFMT_S_PRIMARY_OK, 200, NULL, NULL, NULL), 0);
    wait_n(&d, 6);
    ASSERT_EQ_INT(atomic_load(&d.errs), 0);
    wait_live(e.j, 3); /* s2 refused: gone once durable */
    ASSERT_EQ_INT(jnl_state(e.j, s2, JFMT_S_APPLIED, 0, NULL, NULL, NULL), -ENOENT);
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 2);
    ASSERT_EQ_INT(ss.used_bytes, 13000);
    /* applied (lazy): leaves and frees its body within commit_lazy_ms */
    ASSERT_EQ_INT(jnl_state(e.j, s1, JFMT_S_APPLIED, 200, "ok", NULL, NULL), 0);
    ASSERT_EQ_INT(jnl_state(e.j, s1, JFMT_S_PARKED, 0, NULL, NULL, NULL), -ENOENT); /* ending */
    wait_live(e.j, 2);
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 1);
    /* RESYNC: the entry stays but its body is released (a resync copies from the primary) */
    ASSERT_EQ_INT(jnl_state(e.j, s3, JFMT_S_RESYNC, 0, "degraded", on_done, &d), 0);
    ASSERT_EQ_INT(jnl_state(e.j, s4, JFMT_S_PARKED, 500, "resync failed", on_done, &d), 0);
    wait_n(&d, 8);
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 0);
    jnl_stats st;
    jnl_get_stats(e.j, &st);
    ASSERT_EQ_INT(st.live, 2);
    ASSERT_EQ_INT(st.parked, 1);
    ASSERT_EQ_INT(st.pending, 1);
    ASSERT_EQ_INT(st.applied, 1);
    ASSERT_EQ_INT(st.refused, 1);
    ASSERT_EQ_INT(st.resyncs, 1);
    ASSERT_EQ_INT(st.parked_total, 1);
    ASSERT_TRUE(st.oldest_ns > 0);
    snaps sn;
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(sn.n, 2);
    ASSERT_EQ_INT(sn.s[0].seq, s3);
    ASSERT_EQ_STR(sn.s[0].detail, "degraded");
    ASSERT_TRUE(!sn.s[0].has_body);
    ASSERT_EQ_INT(sn.s[1].seq, s4);
    ASSERT_EQ_INT(sn.s[1].state, JFMT_S_PARKED);
    /* dropped by an operator */
    ASSERT_EQ_INT(jnl_state(e.j, s4, JFMT_S_DROPPED, 0, "operator", NULL, NULL), 0);
    wait_live(e.j, 1);
    jnl_get_stats(e.j, &st);
    ASSERT_EQ_INT(st.dropped, 1);
    /* the states survive a restart */
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 1);
    ASSERT_EQ_INT(e.rep.bodies_lost, 0); /* a RESYNC entry needs no body */
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(sn.n, 1);
    ASSERT_EQ_INT(sn.s[0].seq, s3);
    ASSERT_EQ_INT(sn.s[0].state, JFMT_S_RESYNC);
    ASSERT_EQ_STR(sn.s[0].detail, "degraded");
    env_close(&e);
}

static void case_rollover(iox_backend be)
{
    env e;
    env_open(&e, be, 8192);
    done d = {0};
    uint64_t seqs[120];
    char longp[300];
    memset(longp, 'x', sizeof longp);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    for (int i = 0; i < 120; i++) seqs[i] = append_sync(e.j, longp, &d);
    int nseg = count_files(e.jdir, "jrnl-");
    ASSERT_TRUE(nseg >= 4);
    jnl_stats st;
    jnl_get_stats(e.j, &st);
    ASSERT_EQ_INT(st.segments, nseg);
    /* all but the last: the segments holding only terminal WRITEs go */
    for (int i = 0; i < 119; i++) ASSERT_EQ_INT(jnl_state(e.j, seqs[i], JFMT_S_PRIMARY_REFUSED, 0, NULL, NULL, NULL), 0);
    wait_live(e.j, 1);
    /* roll once more so that the segment holding seqs[119] is not current either */
    for (int i = 0; i < 40; i++) {
        uint64_t s = append_sync(e.j, longp, &d);
        ASSERT_EQ_INT(jnl_state(e.j, s, JFMT_S_APPLIED, 0, NULL, on_done, &d), 0);
        wait_n(&d, 120 + 2 * (i + 1));
    }
    wait_live(e.j, 1);
    jnl_get_stats(e.j, &st);
    int left = count_files(e.jdir, "jrnl-");
    ASSERT_EQ_INT(st.segments, left);
    ASSERT_TRUE(st.segments_deleted >= (uint64_t)nseg - 1);
    ASSERT_TRUE(left <= 3); /* the one holding seqs[119], the current one, maybe one between */
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 1);
    ASSERT_EQ_INT(e.rep.problem[0], 0);
    snaps sn;
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(sn.s[0].seq, seqs[119]);
    /* finishing it empties the journal down to the fresh segment */
    ASSERT_EQ_INT(jnl_state(e.j, seqs[119], JFMT_S_APPLIED, 0, NULL, on_done, &d), 0);
    wait_n(&d, 201);
    ASSERT_EQ_INT(count_files(e.jdir, "jrnl-"), 1);
    env_close(&e);
}

typedef struct body_chk {
    size_t n;
    unsigned seed;
    bool ok;
    uint64_t seg;
} body_chk;

static void body_fn(void *ud, const jnl_entry *e)
{
    body_chk *c = ud;
    c->ok = false;
    if (!e->body || e->body->len != c->n) return;
    uint8_t *buf = malloc(c->n);
    if (!buf) return;
    bool ok = pread(e->body->fd, buf, c->n, (off_t)e->body->off) == (ssize_t)c->n;
    for (size_t i = 0; ok && i < c->n; i++) ok = buf[i] == (uint8_t)(i * 7 + c->seed);
    free(buf);
    c->ok = ok;
    c->seg = e->body->seg;
}

static bool spool_seg_exists(const env *e, uint64_t id)
{
    char p[256];
    snprintf(p, sizeof p, "%s/spool-%016" PRIx64 ".seg", e->sdir, id);
    return access(p, F_OK) == 0;
}

static void case_bodies_restart(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    spool_body *b = mkbody(e.sp, 70000, 9);
    uint64_t s = append(e.j, JFMT_OP_CREATE, "/big", NULL, 0, b, &d);
    spool_body *orphan = mkbody(e.sp, 500, 1); /* never journaled: gone after a restart */
    (void)orphan;
    spool_unref(b);
    wait_n(&d, 1);
    ASSERT_EQ_INT(jnl_state(e.j, s, JFMT_S_PRIMARY_OK, 201, NULL, on_done, &d), 0);
    wait_n(&d, 2);
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 1);
    ASSERT_EQ_INT(e.rep.bodies_lost, 0);
    ASSERT_EQ_INT(e.rep.unknown_outcome, 0);
    body_chk c = {.n = 70000, .seed = 9};
    ASSERT_EQ_INT(jnl_with_entry(e.j, s, body_fn, &c), 0);
    ASSERT_TRUE(c.ok);
    ASSERT_TRUE(spool_seg_exists(&e, c.seg));
    spool_stats ss;
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 1);
    ASSERT_EQ_INT(ss.used_bytes, 70000);
    /* applied: the body goes, and with it the (no longer current) spool segment */
    ASSERT_EQ_INT(jnl_state(e.j, s, JFMT_S_APPLIED, 200, NULL, on_done, &d), 0);
    wait_n(&d, 3);
    ASSERT_EQ_INT(jnl_with_entry(e.j, s, body_fn, &c), -ENOENT);
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 0);
    ASSERT_TRUE(!spool_seg_exists(&e, c.seg));
    env_close(&e);
}

static void case_recover_close(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    whreq_param rp[2] = {{"destination", "/dst/x"}, {"op", "RENAME"}};
    uint64_t s1 = append(e.j, JFMT_OP_RENAME, "/src/x", rp, 2, NULL, &d);
    uint64_t s2 = append(e.j, JFMT_OP_MKDIRS, "/m", NULL, 0, NULL, &d);
    uint64_t s3 = append(e.j, JFMT_OP_DELETE, "/gone", NULL, 0, NULL, &d);
    uint64_t s4 = append(e.j, JFMT_OP_RESYNC, "/r", NULL, 0, NULL, &d);
    wait_n(&d, 4);
    ASSERT_EQ_INT(jnl_state(e.j, s1, JFMT_S_PRIMARY_OK, 200, NULL, NULL, NULL), 0);
    ASSERT_EQ_INT(jnl_state(e.j, s2, JFMT_S_PARKED, 0, "needs an operator", NULL, NULL), 0);
    ASSERT_EQ_INT(jnl_state(e.j, s3, JFMT_S_APPLIED, 200, NULL, NULL, NULL), 0);
    env_shut(&e); /* close commits the lazy states */
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.segments, 1);
    ASSERT_EQ_INT(e.rep.records, 7);
    ASSERT_EQ_INT(e.rep.live, 3);
    ASSERT_EQ_INT(e.rep.unknown_outcome, 1); /* s4 never got an answer */
    ASSERT_EQ_INT(e.rep.torn + e.rep.corrupt + e.rep.orphan_states, 0);
    ASSERT_EQ_INT(e.rep.max_seq, s4);
    ASSERT_TRUE(e.rep.bytes > 0);
    ASSERT_TRUE(e.rep.scan_seconds >= 0 && e.rep.seconds >= e.rep.scan_seconds);
    snaps sn;
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(sn.n, 3);
    ASSERT_EQ_INT(sn.s[0].seq, s1);
    ASSERT_EQ_INT(sn.s[0].state, JFMT_S_PRIMARY_OK);
    ASSERT_EQ_STR(sn.s[0].path, "/src/x");
    ASSERT_EQ_STR(sn.s[0].dest, "/dst/x");
    ASSERT_EQ_INT(sn.s[0].nparams, 2);
    ASSERT_EQ_INT(sn.s[1].state, JFMT_S_PARKED);
    ASSERT_EQ_STR(sn.s[1].detail, "needs an operator");
    ASSERT_EQ_INT(sn.s[2].seq, s4);
    /* new records continue after max_seq, in a fresh segment */
    uint64_t s5 = append_sync(e.j, "/n", &d);
    ASSERT_TRUE(s5 > s4);
    ASSERT_EQ_INT(count_files(e.jdir, "jrnl-"), 2);
    env_close(&e);
}

static void case_recover_crash(iox_backend be)
{
    env e;
    env_init(&e, be, 0);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        env_reopen(&e);
        done d = {0};
        for (int i = 0; i < 50; i++) {
            char p[32];
            snprintf(p, sizeof p, "/crash/%d", i);
            spool_body *b = i % 5 == 0 ? mkbody(e.sp, 1000 + (size_t)i, (unsigned)i) : NULL;
            append(e.j, JFMT_OP_CREATE, p, NULL, 0, b, &d);
            spool_unref(b);
        }
        wait_n(&d, 50);
        if (atomic_load(&d.errs) != 0) _exit(2);
        _exit(0); /* no close: the commit thread and its queue just vanish */
    }
    int st = 0;
    ASSERT_EQ_INT(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 50);
    ASSERT_EQ_INT(e.rep.unknown_outcome, 50);
    ASSERT_EQ_INT(e.rep.bodies_lost, 0);
    ASSERT_EQ_STR(e.rep.problem, "");
    body_chk c = {.n = 1005, .seed = 5};
    snaps sn;
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(jnl_with_entry(e.j, sn.s[5].seq, body_fn, &c), 0);
    ASSERT_TRUE(c.ok);
    env_close(&e);
}

/* Append n small records and close; returns the last segment's path. */
static void fill_and_close(env *e, int n, char *seg, size_t seglen)
{
    done d = {0};
    for (int i = 0; i < n; i++) {
        char p[32];
        snprintf(p, sizeof p, "/t/%d", i);
        append(e->j, JFMT_OP_MKDIRS, p, NULL, 0, NULL, &d);
    }
    wait_n(&d, n);
    env_shut(e);
    last_segment(e, seg, seglen);
}

static void garble(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    ASSERT_TRUE(fd >= 0);
    uint8_t x;
    ASSERT_EQ_INT(pread(fd, &x, 1, (off_t)off), 1);
    x ^= 0x5a;
    ASSERT_EQ_INT(pwrite(fd, &x, 1, (off_t)off), 1);
    close(fd);
}

static void case_torn_tail(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    char seg[256];
    fill_and_close(&e, 20, seg, sizeof seg);
    frames fr;
    uint64_t end = seg_frames(seg, &fr);
    ASSERT_EQ_INT(fr.n, 20);
    struct stat st0;
    ASSERT_EQ_INT(stat(seg, &st0), 0);
    garble(seg, fr.off[19] + 12); /* inside the last frame's payload */
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.torn, 1);
    ASSERT_TRUE(e.rep.torn_bytes > 0 && e.rep.torn_bytes <= end - fr.off[19]);
    ASSERT_EQ_INT(e.rep.corrupt, 0);
    ASSERT_EQ_INT(e.rep.live, 19);
    ASSERT_TRUE(strstr(e.rep.problem, "torn tail") != NULL);
    struct stat st1;
    ASSERT_EQ_INT(stat(seg, &st1), 0);
    ASSERT_EQ_INT(st1.st_size, st0.st_size); /* zeroed, not truncated */
    /* appends go on, and the next start is clean */
    done d = {0};
    append_sync(e.j, "/after", &d);
    ASSERT_EQ_INT(atomic_load(&d.errs), 0);
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.torn + e.rep.corrupt, 0);
    ASSERT_EQ_STR(e.rep.problem, "");
    ASSERT_EQ_INT(e.rep.live, 20);
    env_close(&e);
}

static void case_truncated_tail(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    char seg[256];
    fill_and_close(&e, 10, seg, sizeof seg);
    frames fr;
    seg_frames(seg, &fr);
    ASSERT_EQ_INT(fr.n, 10);
    /* the file ends in the middle of the last frame (a crash before preallocation was used) */
    ASSERT_EQ_INT(truncate(seg, (off_t)fr.off[9] + 10), 0);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.torn, 1);
    ASSERT_EQ_INT(e.rep.live, 9);
    done d = {0};
    append_sync(e.j, "/after", &d);
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.torn + e.rep.corrupt, 0);
    ASSERT_EQ_INT(e.rep.live, 10);
    env_close(&e);
}

static void case_corrupt_middle(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    char seg[256];
    fill_and_close(&e, 30, seg, sizeof seg);
    frames fr;
    seg_frames(seg, &fr);
    ASSERT_EQ_INT(fr.n, 30);
    garble(seg, fr.off[10] + 20);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.corrupt, 1);
    ASSERT_EQ_INT(e.rep.torn, 0);
    ASSERT_EQ_INT(e.rep.live, 29);
    ASSERT_EQ_INT(e.rep.records, 29);
    ASSERT_TRUE(strstr(e.rep.problem, "corrupt") != NULL);
    char off[32];
    snprintf(off, sizeof off, "%" PRIu64, fr.off[10]);
    ASSERT_TRUE(strstr(e.rep.problem, off) != NULL);
    env_close(&e);
}

static void case_body_lost(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    spool_body *b = mkbody(e.sp, 9000, 4);
    spool_body *ok = mkbody(e.sp, 100, 5);
    uint64_t boff = b->off, bseg = b->seg;
    uint64_t s1 = append(e.j, JFMT_OP_CREATE, "/x", NULL, 0, b, &d);
    uint64_t s2 = append(e.j, JFMT_OP_CREATE, "/y", NULL, 0, ok, &d);
    spool_unref(b);
    spool_unref(ok);
    wait_n(&d, 2);
    env_shut(&e);
    char p[256];
    snprintf(p, sizeof p, "%s/spool-%016" PRIx64 ".seg", e.sdir, bseg);
    garble(p, boff + 4444);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 2);
    ASSERT_EQ_INT(e.rep.bodies_lost, 1);
    snaps sn;
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(sn.s[0].seq, s1);
    ASSERT_TRUE(sn.s[0].body_lost && !sn.s[0].has_body);
    ASSERT_EQ_INT(sn.s[1].seq, s2);
    ASSERT_TRUE(!sn.s[1].body_lost && sn.s[1].has_body);
    env_close(&e);
}

/* ---- journal format 1.0 (before the CRC-32C): segments written by an older dualpipe ---- */

static void le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Append a frame around payload (len bytes) to seg, as JOURNAL.md section 3 lays it out. */
static void old_frame(dbuf *seg, const uint8_t *payload, size_t len)
{
    uint8_t h[8], pad[8] = {0};
    le(h, len, 4);
    le(h + 4, crc32c(payload, len), 4);
    ASSERT_EQ_INT(dbuf_add(seg, h, 8), 0);
    ASSERT_EQ_INT(dbuf_add(seg, payload, len), 0);
    ASSERT_EQ_INT(dbuf_add(seg, pad, (8 - len % 8) % 8), 0);
}

/* A 1.0 WRITE, byte for byte from the offsets of JOURNAL.md section 4 (record flags 0: the digest
 * field is the body's SHA-256), not through the encoder, so the fixture stays what 1.0 wrote. */
static void old_write(dbuf *seg, uint64_t seq, uint16_t op, const char *path, const spool_body *b, const uint8_t sha[32])
{
    uint8_t p[256] = {0};
    size_t pl = strlen(path);
    le(p, JFMT_T_WRITE, 2);
    le(p + 4, op, 2);
    le(p + 8, seq, 8);
    le(p + 16, 1700000000000000000ull + seq, 8);
    if (b) {
        le(p + 32, b->seg, 8);
        le(p + 40, b->off, 8);
        le(p + 48, b->len, 8);
        memcpy(p + 56, sha, 32);
    }
    le(p + 88, pl, 2);
    memcpy(p + 92, path, pl);
    old_frame(seg, p, 92 + pl);
}

static void old_state(dbuf *seg, uint64_t seq, uint16_t state, uint16_t status)
{
    uint8_t p[32] = {0};
    le(p, JFMT_T_STATE, 2);
    le(p + 4, state, 2);
    le(p + 6, status, 2);
    le(p + 8, seq, 8);
    le(p + 16, 1700000000000000100ull + seq, 8);
    old_frame(seg, p, 32);
}

static void body_sha(const spool_body *b, unsigned seed, uint8_t out[32])
{
    uint8_t *buf = malloc(b->len);
    ASSERT_TRUE(buf != NULL);
    for (size_t i = 0; i < b->len; i++) buf[i] = (uint8_t)(i * 7 + seed);
    SHA256(buf, b->len, out);
    free(buf);
}

typedef struct sum_chk {
    spool_sum want;
    body_chk bytes;
    bool ok;
} sum_chk;

static void sum_fn(void *ud, const jnl_entry *e)
{
    sum_chk *c = ud;
    body_fn(&c->bytes, e);
    c->ok = c->bytes.ok && e->body && e->body->sum.kind == c->want.kind &&
            memcmp(e->body->sum.bytes, c->want.bytes, SPOOL_DIGEST_LEN) == 0;
}

/* What the newest segment holds: its header's minor version, and the flags and digest of its WRITEs. */
typedef struct seg_writes {
    uint16_t minor;
    int n;
    uint16_t flags[8];
    uint8_t digest[8][JFMT_DIGEST_LEN];
} seg_writes;

static int writes_cb(void *ctx, const jfmt_rec *rec, uint64_t off)
{
    (void)off;
    seg_writes *w = ctx;
    if (rec->type == JFMT_T_WRITE && w->n < 8) {
        w->flags[w->n] = rec->flags;
        memcpy(w->digest[w->n++], rec->u.w.digest, JFMT_DIGEST_LEN);
    }
    return 0;
}

static void newest_writes(const env *e, seg_writes *w)
{
    char path[256];
    last_segment(e, path, sizeof path);
    int fd = open(path, O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    struct stat st;
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size);
    ASSERT_TRUE(buf != NULL);
    ASSERT_EQ_INT(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    jfmt_seg_stats ss;
    memset(w, 0, sizeof *w);
    ASSERT_EQ_INT(jfmt_scan_segment(buf, (size_t)st.st_size, writes_cb, w, &ss), 0);
    w->minor = ss.hdr.minor;
    free(buf);
}

/*
 * A journal written by format 1.0 with live records (the fixture is built here byte for byte: header
 * minor 0, WRITEs whose digest is the body's SHA-256) recovers under 1.1: the bodies verify against their
 * SHA-256 (a resident ACCEPTED entry through spool_attach, a compact PRIMARY_OK row through spool_pin),
 * a changed body is body_lost; new records go to a 1.1 segment with a CRC-32C; both kinds recover
 * together again, and a changed byte of a new body is caught by its CRC-32C (journal.verify_bodies), not
 * without it.
 */
static void case_old_format(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    spool_body *b1 = mkbody(e.sp, 70000, 21), *b2 = mkbody(e.sp, 5000, 22), *b3 = mkbody(e.sp, 3000, 23);
    uint8_t h1[32], h2[32], h3[32];
    body_sha(b1, 21, h1);
    body_sha(b2, 22, h2);
    body_sha(b3, 23, h3);
    uint64_t b3seg = b3->seg, b3off = b3->off;
    dbuf seg;
    dbuf_init(&seg, 1 << 20);
    uint8_t hdr[64] = {0};
    memcpy(hdr, JFMT_MAGIC, 8);
    le(hdr + 8, 1, 2);  /* major */
    le(hdr + 10, 0, 2); /* minor 0 */
    le(hdr + 12, 64, 4);
    le(hdr + 16, 1, 8); /* seg_seq */
    le(hdr + 24, 1700000000000000000ull, 8);
    le(hdr + 60, crc32c(hdr, 60), 4);
    ASSERT_EQ_INT(dbuf_add(&seg, hdr, 64), 0);
    old_write(&seg, 1, JFMT_OP_CREATE, "/old/a", b1, h1);
    old_write(&seg, 2, JFMT_OP_APPEND, "/old/b", b2, h2);
    old_write(&seg, 3, JFMT_OP_CREATE, "/old/c", b3, h3);
    old_write(&seg, 4, JFMT_OP_MKDIRS, "/old/d", NULL, NULL);
    old_state(&seg, 1, JFMT_S_PRIMARY_OK, 201);
    old_state(&seg, 3, JFMT_S_PRIMARY_OK, 201);
    /* "stop the old version": the spool keeps the bodies (the crash way: no reference is dropped), the
     * journal directory holds the 1.0 segment only */
    env_shut(&e);
    char p[256];
    snprintf(p, sizeof p, "rm -f %s/jrnl-*.seg", e.jdir);
    ASSERT_EQ_INT(system(p), 0);
    snprintf(p, sizeof p, "%s/jrnl-%016x.seg", e.jdir, 1);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(write(fd, seg.data, seg.len), (ssize_t)seg.len);
    close(fd);
    dbuf_free(&seg);
    snprintf(p, sizeof p, "%s/spool-%016" PRIx64 ".seg", e.sdir, b3seg);
    garble(p, b3off + 1234);

    env_reopen(&e);
    ASSERT_EQ_STR(e.rep.problem, "");
    ASSERT_EQ_INT(e.rep.live, 4);
    ASSERT_EQ_INT(e.rep.bodies_lost, 1);
    sum_chk c1 = {.want = {.kind = SPOOL_SUM_SHA256}, .bytes = {.n = 70000, .seed = 21}};
    memcpy(c1.want.bytes, h1, 32);
    sum_chk c2 = {.want = {.kind = SPOOL_SUM_SHA256}, .bytes = {.n = 5000, .seed = 22}};
    memcpy(c2.want.bytes, h2, 32);
    ASSERT_EQ_INT(jnl_with_entry(e.j, 1, sum_fn, &c1), 0);
    ASSERT_TRUE(c1.ok);
    ASSERT_EQ_INT(jnl_with_entry(e.j, 2, sum_fn, &c2), 0);
    ASSERT_TRUE(c2.ok);
    snaps sn;
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(sn.n, 4);
    ASSERT_TRUE(sn.s[2].seq == 3 && sn.s[2].body_lost && !sn.s[2].has_body);
    ASSERT_TRUE(sn.s[3].seq == 4 && !sn.s[3].body_lost && sn.s[3].body_len == 0);
    ASSERT_EQ_STR(sn.s[1].path, "/old/b");

    /* a new record: a 1.1 segment, its WRITE flagged JFMT_WF_CRC32C with the body's CRC-32C */
    spool_body *b5 = mkbody(e.sp, 9000, 25);
    uint64_t b5seg = b5->seg, b5off = b5->off;
    uint32_t crc5 = spool_sum_crc(&b5->sum);
    uint64_t s5 = append(e.j, JFMT_OP_CREATE, "/new/e", NULL, 0, b5, &d);
    spool_unref(b5);
    wait_n(&d, 1);
    ASSERT_EQ_INT(s5, 5);
    seg_writes w;
    newest_writes(&e, &w);
    ASSERT_EQ_INT(w.minor, JFMT_VERSION_MINOR);
    ASSERT_EQ_INT(w.n, 1);
    ASSERT_EQ_INT(w.flags[0], JFMT_WF_CRC32C);
    ASSERT_EQ_INT(jfmt_digest_crc(w.digest[0]), crc5);
    uint8_t fx[JFMT_DIGEST_LEN];
    jfmt_digest_set_crc(fx, crc5);
    ASSERT_EQ_MEM(w.digest[0], fx, JFMT_DIGEST_LEN);
    /* an old record finishes as usual: its body goes */
    ASSERT_EQ_INT(jnl_state(e.j, 1, JFMT_S_APPLIED, 200, NULL, on_done, &d), 0);
    wait_n(&d, 2);

    /* both kinds through a restart */
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 4); /* 2, 3, 4, 5 */
    ASSERT_EQ_INT(e.rep.bodies_lost, 1);
    ASSERT_EQ_INT(jnl_with_entry(e.j, 2, sum_fn, &c2), 0);
    ASSERT_TRUE(c2.ok);
    sum_chk c5 = {.want = {.kind = SPOOL_SUM_CRC32C}, .bytes = {.n = 9000, .seed = 25}};
    jfmt_digest_set_crc(c5.want.bytes, crc5);
    ASSERT_EQ_INT(jnl_with_entry(e.j, s5, sum_fn, &c5), 0);
    ASSERT_TRUE(c5.ok);

    /* a changed byte of the new body: its CRC-32C catches it */
    env_shut(&e);
    snprintf(p, sizeof p, "%s/spool-%016" PRIx64 ".seg", e.sdir, b5seg);
    garble(p, b5off + 4321);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 4);
    ASSERT_EQ_INT(e.rep.bodies_lost, 2);
    take_snaps(e.j, &sn);
    ASSERT_TRUE(sn.s[3].seq == s5 && sn.s[3].body_lost && !sn.s[3].has_body);
    ASSERT_EQ_INT(jnl_with_entry(e.j, 2, sum_fn, &c2), 0);
    ASSERT_TRUE(c2.ok);
    env_close(&e);
}

static void case_lock(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    env second = e;
    second.sp = NULL;
    second.j = NULL;
    char err[512] = "";
    spool_opts so = {.dir = e.sdir, .io = e.io};
    ASSERT_EQ_INT(spool_open(&so, &second.sp, err, sizeof err), 0);
    jnl_opts o = {.dir = e.jdir, .io = e.io, .sp = second.sp};
    journal *j2 = NULL;
    ASSERT_EQ_INT(jnl_open(&o, &j2, NULL, err, sizeof err), -1);
    char want[256];
    snprintf(want, sizeof want, "journal %s is in use by another dualpipe (pid %ld)", e.jdir, (long)getpid());
    ASSERT_EQ_STR(err, want);
    spool_close(second.sp);
    /* once closed, it opens */
    env_shut(&e);
    env_reopen(&e);
    env_close(&e);
}

/* ---- fault shim */

typedef struct fault {
    _Atomic int mode;    /* 0 none, 1 fail writes, 2 fail fdatasync, 3 short writes */
    _Atomic int err;
    _Atomic int hits;
} fault;

static int64_t fault_fn(void *ud, iox_kind kind, int fd, size_t len, uint64_t off)
{
    (void)fd, (void)off;
    fault *f = ud;
    int m = atomic_load(&f->mode);
    if (m == 1 && kind == IOX_OP_PWRITE) {
        atomic_fetch_add(&f->hits, 1);
        return atomic_load(&f->err);
    }
    if (m == 2 && kind == IOX_OP_FDATASYNC) {
        atomic_fetch_add(&f->hits, 1);
        return atomic_load(&f->err);
    }
    if (m == 3 && kind == IOX_OP_PWRITE && len > 1) {
        atomic_fetch_add(&f->hits, 1);
        return (int64_t)(len / 2 > 8 ? len / 2 - 3 : 1);
    }
    return 0;
}

static void wait_not_failed(journal *j)
{
    jnl_stats st;
    for (int i = 0; i < 5000; i++) {
        jnl_get_stats(j, &st);
        if (!st.failed) return;
        usleep(1000);
    }
    ASSERT_TRUE(!st.failed);
}

static void run_fault(iox_backend be, int mode, int err)
{
    env e;
    env_open(&e, be, 0);
    fault f = {0};
    iox_set_fault(e.io, fault_fn, &f);
    done d = {0};
    uint64_t ok1 = append_sync(e.j, "/before", &d);
    ASSERT_EQ_INT(atomic_load(&d.errs), 0);
    atomic_store(&f.err, err);
    atomic_store(&f.mode, mode);
    spool_body *b = mkbody(e.sp, 3000, 3);
    done bad = {0};
    uint64_t s_bad = append(e.j, JFMT_OP_CREATE, "/bad", NULL, 0, b, &bad);
    spool_unref(b);
    wait_n(&bad, 1);
    ASSERT_EQ_INT(atomic_load(&bad.errs), 1);
    ASSERT_EQ_INT(atomic_load(&bad.last_err), err);
    ASSERT_TRUE(atomic_load(&f.hits) > 0);
    jnl_stats st;
    jnl_get_stats(e.j, &st);
    ASSERT_TRUE(st.failed);
    /* appends are refused while the journal cannot commit */
    jnl_write_in in = {.jop = JFMT_OP_MKDIRS, .path = "/refused"};
    uint64_t s;
    ASSERT_EQ_INT(jnl_append(e.j, &in, on_done, &d, &s), -EIO);
    /* the failed write is recorded as refused (in memory now, on disk once a commit works) */
    snaps sn;
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(sn.n, 2);
    ASSERT_EQ_INT(sn.s[1].seq, s_bad);
    ASSERT_EQ_INT(sn.s[1].state, JFMT_S_PRIMARY_REFUSED);
    ASSERT_EQ_STR(sn.s[1].detail, "journal I/O error");
    /* still failing a while later: the retries fail too */
    usleep(60000);
    jnl_get_stats(e.j, &st);
    ASSERT_TRUE(st.failed);
    /* faults stop: a retry on a fresh segment succeeds, appends work again */
    atomic_store(&f.mode, 0);
    wait_not_failed(e.j);
    wait_live(e.j, 1);
    uint64_t ok2 = append_sync(e.j, "/after", &d);
    ASSERT_EQ_INT(atomic_load(&d.errs), 0);
    spool_stats ss;
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 0); /* the refused write's body was released */
    env_shut(&e);
    iox_set_fault(e.io, NULL, NULL);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 2);
    take_snaps(e.j, &sn);
    ASSERT_EQ_INT(sn.n, 2);
    ASSERT_EQ_INT(sn.s[0].seq, ok1);
    ASSERT_EQ_INT(sn.s[1].seq, ok2);
    env_close(&e);
}

static void case_fault_write_eio(iox_backend be)
{
    run_fault(be, 1, -EIO);
}

static void case_fault_write_enospc(iox_backend be)
{
    run_fault(be, 1, -ENOSPC);
}

static void case_fault_fsync_eio(iox_backend be)
{
    run_fault(be, 2, -EIO);
}

static void case_short_writes(iox_backend be)
{
    env e;
    env_open(&e, be, 16384);
    fault f = {0};
    atomic_store(&f.mode, 3);
    iox_set_fault(e.io, fault_fn, &f);
    enum { NT = 4, PER = 50 };
    pthread_t t[NT];
    gc_arg a[NT];
    _Atomic int errs = 0;
    for (int i = 0; i < NT; i++) {
        a[i] = (gc_arg){e.j, PER, i, &errs};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, gc_writer, &a[i]), 0);
    }
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    ASSERT_EQ_INT(atomic_load(&errs), 0);
    ASSERT_TRUE(atomic_load(&f.hits) > 0);
    env_shut(&e);
    iox_set_fault(e.io, NULL, NULL);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, NT * PER);
    ASSERT_EQ_INT(e.rep.torn + e.rep.corrupt, 0);
    ASSERT_EQ_STR(e.rep.problem, "");
    env_close(&e);
}

/* The append hook (jnl_set_append_hook): called for every WRITE with its op and touched paths; what it
 * writes to the side file is fdatasynced with the commit (one more fdatasync only when it wrote). */
typedef struct hook_seen {
    int calls, wrote;
    char paths[512];
    int fd;
} hook_seen;

static bool test_hook(void *ud, uint16_t jop, const char *const *touched, int n)
{
    hook_seen *h = ud;
    h->calls++;
    size_t at = strlen(h->paths);
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(h->paths + at, sizeof h->paths - at, "%d:%s;", jop, touched[i]);
    if (jop != JFMT_OP_RENAME) return false;
    h->wrote++;
    return write(h->fd, "x", 1) == 1;
}

static void case_append_hook(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    char side[160];
    snprintf(side, sizeof side, "%s/side", e.dir);
    hook_seen h = {.fd = open(side, O_WRONLY | O_CREAT | O_APPEND, 0600)};
    ASSERT_TRUE(h.fd >= 0);
    jnl_set_append_hook(e.j, test_hook, &h, h.fd);
    jnl_stats st;
    append(e.j, JFMT_OP_CREATE, "/a/b", NULL, 0, NULL, &d);
    wait_n(&d, 1);
    jnl_get_stats(e.j, &st);
    uint64_t f0 = st.fdatasyncs;
    whreq_param rp[1] = {{"destination", "/c/d"}};
    append(e.j, JFMT_OP_RENAME, "/a/b", rp, 1, NULL, &d);
    wait_n(&d, 2);
    jnl_get_stats(e.j, &st);
    ASSERT_TRUE(st.fdatasyncs >= f0 + 2); /* the segment and the side file */
    ASSERT_EQ_INT(h.calls, 2);
    ASSERT_EQ_STR(h.paths, "1:/a/b;5:/a/b;5:/c/d;");
    /* removed: not called any more; the side file is closed by the hook's owner */
    jnl_set_append_hook(e.j, NULL, NULL, -1);
    close(h.fd);
    append(e.j, JFMT_OP_DELETE, "/c/d", NULL, 0, NULL, &d);
    wait_n(&d, 3);
    ASSERT_EQ_INT(h.calls, 2);
    env_close(&e);
}

static void case_path_epoch(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    bool busy = true;
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/a", &busy), 0);
    ASSERT_TRUE(!busy);
    uint64_t s1 = append(e.j, JFMT_OP_CREATE, "/a/b/c", NULL, 0, NULL, &d);
    whreq_param rp[1] = {{"destination", "/a/y"}};
    uint64_t s2 = append(e.j, JFMT_OP_RENAME, "/x", rp, 1, NULL, &d);
    whreq_param cp[1] = {{"sources", "/z/s1,/q/s2"}};
    uint64_t s3 = append(e.j, JFMT_OP_CONCAT, "/t/target", cp, 1, NULL, &d);
    wait_n(&d, 3);
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/a/b", &busy), s1);
    ASSERT_TRUE(busy);
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/a/", &busy), s2); /* the rename's destination is under /a */
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/x", &busy), s2);
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/q", &busy), s3);  /* a CONCAT source */
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/z/s1", &busy), s3);
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/", &busy), s3);
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/elsewhere", &busy), 0);
    ASSERT_TRUE(!busy);
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/ab", &busy), 0); /* a prefix that is not a parent */
    ASSERT_TRUE(!busy);
    /* the primary answered: no longer busy, the epoch stays */
    ASSERT_EQ_INT(jnl_state(e.j, s1, JFMT_S_PRIMARY_OK, 201, NULL, NULL, NULL), 0);
    jnl_path_epoch(e.j, "/a/b", &busy);
    ASSERT_TRUE(!busy);
    jnl_path_epoch(e.j, "/a", &busy);
    ASSERT_TRUE(busy); /* the rename to /a/y still waits */
    ASSERT_EQ_INT(jnl_state(e.j, s2, JFMT_S_PRIMARY_REFUSED, 403, NULL, on_done, &d), 0);
    wait_n(&d, 4);
    ASSERT_EQ_INT(jnl_path_epoch(e.j, "/a", &busy), s2); /* gone from the index, not from the gate */
    ASSERT_TRUE(!busy);
    /* a restart rebuilds the epochs from what is on disk */
    env_shut(&e);
    env_reopen(&e);
    ASSERT_TRUE(jnl_path_epoch(e.j, "/a", &busy) >= s2);
    ASSERT_TRUE(jnl_path_epoch(e.j, "/q/s2", &busy) >= s3);
    ASSERT_TRUE(busy); /* s3 never got an answer */
    env_close(&e);
}

/* What an entry view carries (one allocation per entry: parameters, touched paths, strings). */
typedef struct view {
    char path[64], params[256], touched[256], detail[300];
    int nparams, ntouched;
} view;

static void view_fn(void *ud, const jnl_entry *e)
{
    view *v = ud;
    snprintf(v->path, sizeof v->path, "%s", e->path);
    v->nparams = e->nparams;
    v->ntouched = e->ntouched;
    v->params[0] = v->touched[0] = '\0';
    for (int i = 0; i < e->nparams; i++)
        snprintf(v->params + strlen(v->params), sizeof v->params - strlen(v->params), "%s=%s;", e->params[i].name,
                 e->params[i].value);
    for (int i = 0; i < e->ntouched; i++)
        snprintf(v->touched + strlen(v->touched), sizeof v->touched - strlen(v->touched), "%s;", e->touched[i]);
    snprintf(v->detail, sizeof v->detail, "%s", e->detail);
}

static void case_entry_view(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    whreq_param rp[2] = {{"destination", "/a//y/"}, {"overwrite", ""}};
    uint64_t s1 = append(e.j, JFMT_OP_RENAME, "/x", rp, 2, NULL, &d);
    whreq_param cp[1] = {{"sources", "/z/s1,,/q/s2"}};
    uint64_t s2 = append(e.j, JFMT_OP_CONCAT, "/t/target", cp, 1, NULL, &d);
    uint64_t s3 = append(e.j, JFMT_OP_MKDIRS, "/m", NULL, 0, NULL, &d);
    wait_n(&d, 3);
    /* a detail longer than the format's limit is cut on a UTF-8 boundary: 255 ASCII bytes + "é" */
    char longd[400];
    memset(longd, 'x', 255);
    strcpy(longd + 255, "\xc3\xa9 and more");
    ASSERT_EQ_INT(jnl_state(e.j, s3, JFMT_S_PARKED, 0, longd, on_done, &d), 0);
    ASSERT_EQ_INT(jnl_state(e.j, s1, JFMT_S_PRIMARY_OK, 200, NULL, on_done, &d), 0);
    wait_n(&d, 5);
    for (int round = 0; round < 2; round++) { /* as appended, then as recovered */
        view v;
        ASSERT_EQ_INT(jnl_with_entry(e.j, s1, view_fn, &v), 0);
        ASSERT_EQ_STR(v.path, "/x");
        ASSERT_EQ_STR(v.params, "destination=/a//y/;overwrite=;");
        ASSERT_EQ_STR(v.touched, "/x;/a/y;"); /* the destination normalised */
        ASSERT_EQ_STR(v.detail, "");
        ASSERT_EQ_INT(jnl_with_entry(e.j, s2, view_fn, &v), 0);
        ASSERT_EQ_STR(v.touched, "/t/target;/z/s1;/q/s2;"); /* an empty source is left out */
        ASSERT_EQ_INT(v.nparams, 1);
        ASSERT_EQ_INT(jnl_with_entry(e.j, s3, view_fn, &v), 0);
        ASSERT_EQ_INT(v.nparams, 0);
        ASSERT_EQ_INT(v.ntouched, 1);
        ASSERT_EQ_INT(strlen(v.detail), 255); /* the 2-byte character would pass 256: cut before it */
        env_shut(&e);
        env_reopen(&e);
    }
    env_close(&e);
}

static void case_json_metrics(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    metrics *m = metrics_new();
    ASSERT_TRUE(m != NULL);
    ASSERT_EQ_INT(jnl_register_metrics(e.j, m), 0);
    done d = {0};
    uint64_t s1 = append(e.j, JFMT_OP_CREATE, "/we\"ird\\name\x01\xc3\xa9\xff", NULL, 0, NULL, &d);
    uint64_t s2 = append(e.j, JFMT_OP_MKDIRS, "/p", NULL, 0, NULL, &d);
    uint64_t s3 = append(e.j, JFMT_OP_RESYNC, "/r", NULL, 0, NULL, &d);
    wait_n(&d, 3);
    ASSERT_EQ_INT(jnl_state(e.j, s2, JFMT_S_PARKED, 502, "resync \"failed\"", on_done, &d), 0);
    ASSERT_EQ_INT(jnl_state(e.j, s1, JFMT_S_PRIMARY_OK, 201, NULL, on_done, &d), 0);
    wait_n(&d, 5);

    dbuf o;
    dbuf_init(&o, 1 << 20);
    ASSERT_EQ_INT(jnl_status_json(e.j, &o), 0);
    json_error_t jerr;
    json_t *v = json_loads(o.data, 0, &jerr);
    if (!v) TH_FAIL_AT("status JSON does not parse: %s: %s", jerr.text, o.data);
    ASSERT_EQ_INT(json_integer_value(json_object_get(v, "live")), 3);
    ASSERT_EQ_INT(json_integer_value(json_object_get(v, "parked")), 1);
    ASSERT_EQ_STR(json_string_value(json_object_get(v, "backend")), iox_backend_name(be));
    json_decref(v);

    dbuf_reset(&o);
    ASSERT_EQ_INT(jnl_list_json(e.j, false, 0, 2, &o), 0);
    v = json_loads(o.data, 0, &jerr);
    if (!v) TH_FAIL_AT("list JSON does not parse: %s: %s", jerr.text, o.data);
    json_t *recs = json_object_get(v, "records");
    ASSERT_EQ_INT(json_array_size(recs), 2);
    ASSERT_TRUE(json_is_true(json_object_get(v, "more")));
    json_t *r0 = json_array_get(recs, 0);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r0, "seq")), s1);
    ASSERT_EQ_STR(json_string_value(json_object_get(r0, "op")), "CREATE");
    ASSERT_EQ_STR(json_string_value(json_object_get(r0, "path")), "/we\"ird\\name\x01\xc3\xa9\xef\xbf\xbd");
    ASSERT_EQ_STR(json_string_value(json_object_get(r0, "state")), "PRIMARY_OK");
    ASSERT_EQ_INT(json_integer_value(json_object_get(r0, "status")), 201);
    json_decref(v);

    dbuf_reset(&o);
    ASSERT_EQ_INT(jnl_list_json(e.j, false, s2, 10, &o), 0);
    v = json_loads(o.data, 0, &jerr);
    ASSERT_TRUE(v != NULL);
    recs = json_object_get(v, "records");
    ASSERT_EQ_INT(json_array_size(recs), 1);
    ASSERT_EQ_STR(json_string_value(json_object_get(json_array_get(recs, 0), "op")), "RESYNC");
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(recs, 0), "seq")), s3);
    ASSERT_TRUE(json_is_false(json_object_get(v, "more")));
    json_decref(v);

    dbuf_reset(&o);
    ASSERT_EQ_INT(jnl_list_json(e.j, true, 0, 10, &o), 0);
    v = json_loads(o.data, 0, &jerr);
    ASSERT_TRUE(v != NULL);
    recs = json_object_get(v, "records");
    ASSERT_EQ_INT(json_array_size(recs), 1);
    ASSERT_EQ_STR(json_string_value(json_object_get(json_array_get(recs, 0), "detail")), "resync \"failed\"");
    json_decref(v);

    dbuf_reset(&o);
    ASSERT_EQ_INT(metrics_render(m, &o), 0);
    const char *want[] = {"dualpipe_journal_records{state=\"parked\"} 1",
                          "dualpipe_journal_records{state=\"awaiting_primary\"} 1",
                          "dualpipe_journal_records{state=\"pending\"} 1",
                          "dualpipe_journal_bytes_pending 0",
                          "dualpipe_journal_oldest_pending_seconds",
                          "dualpipe_journal_records_total{state=\"parked\"} 1",
                          "dualpipe_journal_commits_total",
                          "dualpipe_journal_fdatasync_total",
                          "dualpipe_journal_fdatasync_seconds_count",
                          "dualpipe_journal_segments 1"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(o.data, want[i])) TH_FAIL_AT("metrics lack %s:\n%s", want[i], o.data);
    char be_line[64];
    snprintf(be_line, sizeof be_line, "dualpipe_io_backend{backend=\"%s\"} 1", iox_backend_name(be));
    ASSERT_TRUE(strstr(o.data, be_line) != NULL);
    dbuf_free(&o);
    env_close(&e);
    metrics_free(m);
}

/* A seq names one record for good: after every record was applied and the segments holding them were
 * deleted, a restart still continues after the highest seq ever assigned (the header's seq_floor). */
static void case_seq_never_reused(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    uint64_t last = 0;
    for (int round = 0; round < 3; round++) {
        uint64_t s = append(e.j, JFMT_OP_MKDIRS, "/m", NULL, 0, NULL, &d);
        wait_n(&d, round + 1);
        ASSERT_TRUE(s > last);
        last = s;
        ASSERT_EQ_INT(jnl_state(e.j, s, JFMT_S_APPLIED, 201, NULL, NULL, NULL), 0);
        env_shut(&e);
        env_reopen(&e); /* the segment holding s is deleted here: nothing in it is live */
        env_shut(&e);
        env_reopen(&e); /* a restart with no record left at all */
        ASSERT_EQ_INT(e.rep.live, 0);
        ASSERT_TRUE(e.rep.max_seq >= last);
    }
    env_close(&e);
}

/* The apply rate operators see: records that became APPLIED per second over the last complete 10 and 60
 * seconds (the current second is left out while it fills). */
static void case_apply_rate(iox_backend be)
{
    env e;
    env_open(&e, be, 0);
    done d = {0};
    uint64_t seqs[5];
    for (int i = 0; i < 5; i++) seqs[i] = append(e.j, JFMT_OP_MKDIRS, "/rate", NULL, 0, NULL, &d);
    wait_n(&d, 5);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ_INT(jnl_state(e.j, seqs[i], JFMT_S_APPLIED, 201, NULL, on_done, &d), 0);
    wait_n(&d, 10);
    usleep(1100 * 1000); /* the second they were applied in is over */
    jnl_stats st;
    jnl_get_stats(e.j, &st);
    ASSERT_EQ_INT(st.applied, 5);
    ASSERT_TRUE(st.apply_rate_10s > 0.49 && st.apply_rate_10s < 0.51);
    ASSERT_TRUE(st.apply_rate_60s > 5.0 / 60 - 0.001 && st.apply_rate_60s < 5.0 / 60 + 0.001);
    dbuf o;
    dbuf_init(&o, 1 << 16);
    ASSERT_EQ_INT(jnl_status_json(e.j, &o), 0);
    ASSERT_TRUE(strstr(o.data, "\"apply_rate_10s\":0.5") != NULL);
    dbuf_free(&o);
    env_close(&e);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Group commit under load (journal.commit_wait_us / commit_batch): after a busy batch, writes that
 * arrive a few ms apart share one commit (up to commit_batch of them) instead of one commit each; a
 * lone writer that waits for each write is held back at most once, when the load has just ended. */
static void case_commit_wait(iox_backend be)
{
    env e;
    env_init(&e, be, 0);
    e.wait_us = 200000;
    e.batch = 16;
    env_reopen(&e);
    done d = {0};
    char p[32];
    /* a burst: a busy batch (at least commit_batch / 8 waiters) */
    for (int i = 0; i < 16; i++) {
        snprintf(p, sizeof p, "/burst/%d", i);
        append(e.j, JFMT_OP_MKDIRS, p, NULL, 0, NULL, &d);
    }
    wait_n(&d, 16);
    jnl_stats st;
    jnl_get_stats(e.j, &st);
    uint64_t c0 = st.commits;
    ASSERT_TRUE(c0 <= 4);
    /* 48 writes 2 ms apart: without the wait each would be a commit of its own. The spacing is what is
     * tested, so a round in which this thread was held off the CPU for longer than the commit wait
     * (a busy machine: the writes were then not a few ms apart) does not count, and the round is run
     * again after a new burst; at most SPACED_ROUNDS rounds, and one must have its spacing. */
    enum { SPACED_ROUNDS = 4, SPACED_GAP_MAX_US = 50000 };
    bool spaced = false;
    int n = 16;
    for (int round = 0; round < SPACED_ROUNDS && !spaced; round++) {
        if (round > 0) { /* the previous round broke the busy streak: a burst again */
            for (int i = 0; i < 16; i++, n++) {
                snprintf(p, sizeof p, "/burst/%d.%d", round, i);
                append(e.j, JFMT_OP_MKDIRS, p, NULL, 0, NULL, &d);
            }
            wait_n(&d, n);
            jnl_get_stats(e.j, &st);
            c0 = st.commits;
        }
        int64_t gap_max = 0, t_prev = mono_us();
        for (int i = 0; i < 48; i++, n++) {
            snprintf(p, sizeof p, "/spaced/%d.%d", round, i);
            append(e.j, JFMT_OP_MKDIRS, p, NULL, 0, NULL, &d);
            usleep(2000);
            int64_t t = mono_us();
            if (t - t_prev > gap_max) gap_max = t - t_prev;
            t_prev = t;
        }
        wait_n(&d, n);
        jnl_get_stats(e.j, &st);
        fprintf(stderr, "commit wait: 48 spaced writes in %" PRIu64 " commits (largest gap %" PRId64 " us)\n",
                st.commits - c0, gap_max);
        if (gap_max > SPACED_GAP_MAX_US) continue;
        spaced = true;
        ASSERT_TRUE(st.commits - c0 <= 8);
    }
    if (!spaced) TH_FAIL_AT("no round of 48 writes kept them under %d us apart", (int)SPACED_GAP_MAX_US);
    ASSERT_TRUE(st.commit_waits >= 1);
    /* a lone writer: at most its first write waits (the previous batch was busy), then none */
    append_sync(e.j, "/lone/0", &d);
    jnl_get_stats(e.j, &st);
    uint64_t w0 = st.commit_waits;
    for (int i = 1; i < 10; i++) {
        snprintf(p, sizeof p, "/lone/%d", i);
        append_sync(e.j, p, &d);
    }
    jnl_get_stats(e.j, &st);
    ASSERT_EQ_INT(st.commit_waits, w0);
    env_close(&e);
}

TIOX_BOTH(append_durable)
TIOX_BOTH(entry_view)
TIOX_BOTH(group_commit)
TIOX_BOTH(states)
TIOX_BOTH(rollover)
TIOX_BOTH(bodies_restart)
TIOX_BOTH(recover_close)
TIOX_BOTH(recover_crash)
TIOX_BOTH(torn_tail)
TIOX_BOTH(truncated_tail)
TIOX_BOTH(corrupt_middle)
TIOX_BOTH(body_lost)
TIOX_BOTH(old_format)
TIOX_BOTH(lock)
TIOX_BOTH(fault_write_eio)
TIOX_BOTH(fault_write_enospc)
TIOX_BOTH(fault_fsync_eio)
TIOX_BOTH(short_writes)
TIOX_BOTH(path_epoch)
TIOX_BOTH(append_hook)
TIOX_BOTH(json_metrics)
TIOX_BOTH(seq_never_reused)
TIOX_BOTH(apply_rate)
TIOX_BOTH(commit_wait)

#define TB(name) T(name##_threads), T(name##_uring)

TESTS(TB(append_durable), TB(group_commit), TB(states), TB(rollover), TB(bodies_restart), TB(recover_close),
      TB(recover_crash), TB(torn_tail), TB(truncated_tail), TB(corrupt_middle), TB(body_lost), TB(old_format), TB(lock),
      TB(fault_write_eio), TB(fault_write_enospc), TB(fault_fsync_eio), TB(short_writes), TB(path_epoch), TB(append_hook),
      TB(json_metrics), TB(seq_never_reused), TB(apply_rate), TB(commit_wait), TB(entry_view))
