/*
 * Unit tests for the journal's two-tier index (JOURNAL.md section 12) on real files, each case on both
 * iox backends: with a small max_resident, records evicted to the compact tier come back exact (path,
 * parameters, touched paths, body bytes and CRC-32C, state, status, detail) through jnl_with_entry,
 * jnl_foreach and jnl_list_json; state changes of evicted records; terminal states free their rows,
 * their spool space and, once nothing live is left in them, their segments; the resident bound is
 * honoured (stats); and a kill -9 with a large evicted backlog recovers exactly the records that were
 * still owed, which then drain with nothing lost and nothing seen twice.
 */
#include "tharness.h"
#include "tiox.h"

#include "crc32c.h"
#include "journal.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MAXRES 8

typedef struct env {
    iox_backend be;
    char dir[64], sdir[96], jdir[96];
    uint64_t seg_bytes, max_resident;
    iox *io;
    spool *sp;
    journal *j;
    jnl_recovery rep;
} env;

static void env_reopen(env *e)
{
    char err[512] = "";
    if (!e->io) e->io = tiox_engine(e->be);
    spool_opts so = {.dir = e->sdir, .segment_bytes = 64 << 10, .io = e->io};
    if (spool_open(&so, &e->sp, err, sizeof err) != 0) TH_FAIL_AT("spool: %s", err);
    jnl_opts o = {.dir = e->jdir, .segment_bytes = e->seg_bytes, .commit_lazy_ms = 5, .io = e->io, .sp = e->sp,
                  .verify_bodies = true, .max_resident = e->max_resident};
    if (jnl_open(&o, &e->j, &e->rep, err, sizeof err) != 0) TH_FAIL_AT("open: %s", err);
}

static void env_init(env *e, iox_backend be, uint64_t seg_bytes, uint64_t max_resident)
{
    memset(e, 0, sizeof *e);
    e->be = be;
    e->seg_bytes = seg_bytes;
    e->max_resident = max_resident;
    snprintf(e->dir, sizeof e->dir, "/tmp/dp-jpage-XXXXXX");
    ASSERT_TRUE(mkdtemp(e->dir) != NULL);
    snprintf(e->sdir, sizeof e->sdir, "%s/data", e->dir);
    snprintf(e->jdir, sizeof e->jdir, "%s/journal", e->dir);
}

static void env_open(env *e, iox_backend be, uint64_t seg_bytes, uint64_t max_resident)
{
    env_init(e, be, seg_bytes, max_resident);
    env_reopen(e);
}

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

typedef struct done {
    _Atomic int n, errs;
} done;

static void on_done(void *ud, uint64_t seq, int err)
{
    (void)seq;
    done *d = ud;
    if (err) atomic_fetch_add(&d->errs, 1);
    atomic_fetch_add(&d->n, 1);
}

static void wait_n(done *d, int n)
{
    for (int i = 0; i < 20000 && atomic_load(&d->n) < n; i++) usleep(1000);
    ASSERT_EQ_INT(atomic_load(&d->n), n);
    ASSERT_EQ_INT(atomic_load(&d->errs), 0);
}

static spool_body *mkbody(spool *sp, size_t n, unsigned seed)
{
    spool_body *b = NULL;
    ASSERT_EQ_INT(spool_begin(sp, n, n, &b), 0);
    uint8_t *buf = malloc(n);
    ASSERT_TRUE(buf != NULL);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 13 + seed);
    ASSERT_EQ_INT(spool_write(b, buf, n), 0);
    ASSERT_EQ_INT(spool_finish(b), 0);
    free(buf);
    return b;
}

/* What record i is: its op, path, parameters, body and the state it is given. */
typedef struct want {
    uint64_t seq;
    uint16_t jop;
    char path[64], dest[64], srcs[96];
    size_t body;           /* body bytes (0: none) */
    uint32_t crc; /* CRC-32C of the body, which the WRITE carries */
    uint16_t state, status;
    char detail[64];
} want;

static void want_init(want *w, int i)
{
    memset(w, 0, sizeof *w);
    switch (i % 5) {
    case 0:
        w->jop = JFMT_OP_CREATE;
        snprintf(w->path, sizeof w->path, "/p/d%d/f%d", i % 7, i);
        w->body = 100 + (size_t)i * 3;
        break;
    case 1:
        w->jop = JFMT_OP_RENAME;
        snprintf(w->path, sizeof w->path, "/p/src%d", i);
        snprintf(w->dest, sizeof w->dest, "/p/dst/%d", i);
        break;
    case 2:
        w->jop = JFMT_OP_CONCAT;
        snprintf(w->path, sizeof w->path, "/p/cat%d", i);
        snprintf(w->srcs, sizeof w->srcs, "/p/a%d,/p/b%d", i, i);
        break;
    case 3:
        w->jop = JFMT_OP_MKDIRS;
        snprintf(w->path, sizeof w->path, "/p/m%d", i);
        break;
    default:
        w->jop = JFMT_OP_APPEND;
        snprintf(w->path, sizeof w->path, "/p/app%d", i % 3);
        w->body = 4096 + (size_t)i;
        break;
    }
    w->state = i % 11 == 0 ? JFMT_S_PARKED : JFMT_S_PRIMARY_OK;
    w->status = w->state == JFMT_S_PARKED ? 0 : (uint16_t)(200 + i % 2);
    if (w->state == JFMT_S_PARKED) snprintf(w->detail, sizeof w->detail, "parked %d: needs an operator", i);
    else if (i % 3 == 0) snprintf(w->detail, sizeof w->detail, "gen1 said ok (%d)", i);
}

static uint32_t body_crc(size_t n, unsigned seed)
{
    uint8_t *buf = malloc(n);
    ASSERT_TRUE(buf != NULL);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 13 + seed);
    uint32_t crc = crc32c_extend_sw(0, buf, n);
    free(buf);
    return crc;
}

/* Append record i as want_init says and give it its state (both durable when done says so). */
static void put(env *e, want *w, int i, done *d)
{
    want_init(w, i);
    whreq_param ps[3];
    int np = 0;
    ps[np++] = (whreq_param){"op", "X"};
    if (w->dest[0]) ps[np++] = (whreq_param){"destination", w->dest};
    if (w->srcs[0]) ps[np++] = (whreq_param){"sources", w->srcs};
    spool_body *b = w->body ? mkbody(e->sp, w->body, (unsigned)i) : NULL;
    if (b) w->crc = body_crc(w->body, (unsigned)i);
    jnl_write_in in = {.jop = w->jop, .path = w->path, .params = ps, .nparams = np, .body = b};
    int before = atomic_load(&d->n);
    ASSERT_EQ_INT(jnl_append(e->j, &in, on_done, d, &w->seq), 0);
    spool_unref(b);
    wait_n(d, before + 1);
    ASSERT_EQ_INT(jnl_state(e->j, w->seq, (jfmt_state)w->state, w->status, w->detail[0] ? w->detail : NULL, on_done, d),
                  0);
    wait_n(d, before + 2);
}

typedef struct chk {
    const want *w;
    bool ok;
    char why[128];
} chk;

#define CHK(c, cond)                                                                                   \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            snprintf(c->why, sizeof c->why, "seq %" PRIu64 ": %s", c->w->seq, #cond);                  \
            return;                                                                                    \
        }                                                                                              \
    } while (0)

static bool has_touched(const jnl_entry *e, const char *p)
{
    for (int i = 0; i < e->ntouched; i++)
        if (strcmp(e->touched[i], p) == 0) return true;
    return false;
}

static const char *param(const jnl_entry *e, const char *k)
{
    for (int i = 0; i < e->nparams; i++)
        if (strcmp(e->params[i].name, k) == 0) return e->params[i].value;
    return NULL;
}

/* The entry is exactly what was written (with_body: its body bytes are read and hashed). */
static void check_entry(chk *c, const jnl_entry *e, bool with_body)
{
    const want *w = c->w;
    c->ok = false;
    CHK(c, e->seq == w->seq);
    CHK(c, e->jop == w->jop);
    CHK(c, strcmp(e->path, w->path) == 0);
    CHK(c, e->state == w->state);
    CHK(c, e->status == w->status);
    CHK(c, strcmp(e->detail, w->detail) == 0);
    CHK(c, param(e, "op") && strcmp(param(e, "op"), "X") == 0);
    CHK(c, has_touched(e, w->path));
    if (w->dest[0]) CHK(c, e->ntouched == 2 && has_touched(e, w->dest) && strcmp(param(e, "destination"), w->dest) == 0);
    if (w->srcs[0]) {
        char a[32], b[32];
        const char *s = param(e, "sources");
        CHK(c, s && strcmp(s, w->srcs) == 0);
        size_t cut = strcspn(w->srcs, ",");
        snprintf(a, sizeof a, "%.*s", (int)cut, w->srcs);
        snprintf(b, sizeof b, "%s", w->srcs + cut + 1);
        CHK(c, e->ntouched == 3 && has_touched(e, a) && has_touched(e, b));
    }
    if (!w->dest[0] && !w->srcs[0]) CHK(c, e->ntouched == 1);
    CHK(c, e->body_len == w->body);
    CHK(c, !e->body_lost);
    if (w->body && with_body) {
        CHK(c, e->body != NULL && e->body->len == w->body);
        CHK(c, e->body->sum.kind == SPOOL_SUM_CRC32C && spool_sum_crc(&e->body->sum) == w->crc);
        uint8_t *buf = malloc(w->body);
        CHK(c, buf != NULL);
        bool rd = pread(e->body->fd, buf, w->body, (off_t)e->body->off) == (ssize_t)w->body;
        uint32_t got = rd ? crc32c_extend_sw(0, buf, w->body) : 0;
        free(buf);
        CHK(c, rd && got == w->crc);
    }
    c->ok = true;
}

static void chk_fn(void *ud, const jnl_entry *e)
{
    chk *c = ud;
    check_entry(c, e, true);
}

static void check_with_entry(env *e, const want *w)
{
    chk c = {.w = w};
    ASSERT_EQ_INT(jnl_with_entry(e->j, w->seq, chk_fn, &c), 0);
    if (!c.ok) TH_FAIL_AT("%s", c.why);
}

typedef struct walk {
    const want *w;
    int n, nw;
    int bad;
    char why[128];
    uint64_t last;
} walk;

static void walk_fn(void *ud, const jnl_entry *e)
{
    walk *k = ud;
    if (e->seq <= k->last) k->bad++;
    k->last = e->seq;
    /* find its want (seq order: the next one that is live) */
    while (k->n < k->nw && k->w[k->n].seq < e->seq) k->n++;
    if (k->n >= k->nw || k->w[k->n].seq != e->seq) {
        k->bad++;
        return;
    }
    chk c = {.w = &k->w[k->n]};
    check_entry(&c, e, true);
    if (!c.ok) {
        if (!k->bad) snprintf(k->why, sizeof k->why, "%s", c.why);
        k->bad++;
    }
    k->n++;
}

static jnl_stats stats(env *e)
{
    jnl_stats st;
    jnl_get_stats(e->j, &st);
    return st;
}

static void wait_live(env *e, uint64_t live)
{
    for (int i = 0; i < 5000 && stats(e).live != live; i++) usleep(1000);
    ASSERT_EQ_INT(stats(e).live, live);
}

/* Wait until the lazy states are durable and the bound is back (entries with queued states stay whole). */
static void wait_bound(env *e)
{
    for (int i = 0; i < 5000 && stats(e).resident > e->max_resident; i++) usleep(1000);
    jnl_stats st = stats(e);
    ASSERT_TRUE(st.resident <= e->max_resident);
    ASSERT_EQ_INT(st.resident + st.compact, st.live);
}

#define N 300

static void case_evicted_exact(iox_backend be)
{
    env e;
    env_open(&e, be, 8 << 10, MAXRES);
    done d = {0};
    static want w[N];
    for (int i = 0; i < N; i++) {
        put(&e, &w[i], i, &d);
        /* the bound holds all along: only entries with a state still queued may pass it */
        ASSERT_TRUE(stats(&e).resident <= MAXRES + 2);
    }
    wait_n(&d, 2 * N);
    wait_bound(&e);
    jnl_stats st = stats(&e);
    ASSERT_EQ_INT(st.live, N);
    ASSERT_TRUE(st.compact >= N - MAXRES);
    ASSERT_TRUE(st.evictions >= N - MAXRES);
    ASSERT_TRUE(st.segments > 3); /* small segments: records live in many */
    /* every record back exact, one at a time (each page-in evicts another) */
    for (int i = 0; i < N; i++) {
        check_with_entry(&e, &w[i]);
        ASSERT_TRUE(stats(&e).resident <= MAXRES);
    }
    ASSERT_TRUE(stats(&e).page_ins >= N - MAXRES);
    /* the walk: seq order, exact, bodies attached, and the bound still holds afterwards */
    walk k = {.w = w, .nw = N};
    jnl_foreach(e.j, walk_fn, &k);
    if (k.bad) TH_FAIL_AT("foreach: %d bad (%s)", k.bad, k.why);
    ASSERT_EQ_INT(k.n, N);
    ASSERT_TRUE(stats(&e).resident <= MAXRES);
    /* the list: parked ones only, from the compact tier */
    dbuf o;
    dbuf_init(&o, 1 << 20);
    ASSERT_EQ_INT(jnl_list_json(e.j, true, 0, 1000, &o), 0);
    json_error_t je;
    json_t *doc = json_loadb(o.data, o.len, 0, &je);
    ASSERT_TRUE(doc != NULL);
    json_t *recs = json_object_get(doc, "records");
    int parked = 0;
    for (int i = 0; i < N; i++) parked += w[i].state == JFMT_S_PARKED;
    ASSERT_EQ_INT((int)json_array_size(recs), parked);
    json_t *r0 = json_array_get(recs, 0);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r0, "seq")), w[0].seq);
    ASSERT_EQ_STR(json_string_value(json_object_get(r0, "path")), w[0].path);
    ASSERT_EQ_STR(json_string_value(json_object_get(r0, "detail")), w[0].detail);
    ASSERT_EQ_STR(json_string_value(json_object_get(r0, "state")), "PARKED");
    ASSERT_EQ_INT(json_integer_value(json_object_get(r0, "body_len")), w[0].body);
    json_decref(doc);
    dbuf_reset(&o);
    ASSERT_EQ_INT(jnl_status_json(e.j, &o), 0);
    doc = json_loadb(o.data, o.len, 0, &je);
    ASSERT_TRUE(doc != NULL);
    ASSERT_TRUE(json_integer_value(json_object_get(doc, "resident")) <= MAXRES);
    ASSERT_EQ_INT(json_integer_value(json_object_get(doc, "compact")) + json_integer_value(json_object_get(doc, "resident")),
                  N);
    json_decref(doc);
    dbuf_free(&o);
    /* and the same after a restart (recovery builds rows directly) */
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, N);
    ASSERT_EQ_INT(e.rep.bodies_lost, 0);
    ASSERT_TRUE(stats(&e).resident == 0);
    for (int i = N - 1; i >= 0; i--) check_with_entry(&e, &w[i]);
    ASSERT_TRUE(stats(&e).resident <= MAXRES);
    env_close(&e);
}

/* A caller holding an entry's body keeps the entry whole; the bound is reached again once it lets go. */
typedef struct hold {
    spool_body *b;
} hold;

static void hold_fn(void *ud, const jnl_entry *e)
{
    hold *h = ud;
    h->b = spool_ref(e->body);
}

/* Move the current segment on (records applied at once), so that the old ones may go. */
static void roll(env *e, done *d)
{
    for (int i = 0; i < 200; i++) {
        char p[32];
        snprintf(p, sizeof p, "/roll/%d", i);
        jnl_write_in in = {.jop = JFMT_OP_MKDIRS, .path = p};
        uint64_t s;
        int before = atomic_load(&d->n);
        ASSERT_EQ_INT(jnl_append(e->j, &in, on_done, d, &s), 0);
        wait_n(d, before + 1);
        ASSERT_EQ_INT(jnl_state(e->j, s, JFMT_S_APPLIED, 0, NULL, NULL, NULL), 0);
    }
}

static int count_segments(const env *e)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^jrnl-'", e->jdir);
    FILE *f = popen(cmd, "r");
    ASSERT_TRUE(f != NULL);
    int n = -1;
    ASSERT_EQ_INT(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static void case_states_and_release(iox_backend be)
{
    env e;
    env_open(&e, be, 8 << 10, MAXRES);
    done d = {0};
    static want w[N];
    for (int i = 0; i < N; i++) put(&e, &w[i], i, &d);
    wait_n(&d, 2 * N);
    wait_bound(&e);
    spool_stats ss;
    spool_get_stats(e.sp, &ss);
    uint64_t bodies = 0, bytes = 0;
    for (int i = 0; i < N; i++) {
        bodies += w[i].body > 0;
        bytes += w[i].body;
    }
    ASSERT_EQ_INT(ss.live_bodies, bodies); /* pins and objects */
    ASSERT_EQ_INT(ss.used_bytes, bytes);
    ASSERT_EQ_INT(stats(&e).bytes_pending, bytes);
    /* held bodies keep their entries resident past the bound */
    hold h[MAXRES + 4];
    for (int i = 0; i < MAXRES + 4; i++) {
        ASSERT_EQ_INT(jnl_with_entry(e.j, w[i * 5].seq, hold_fn, &h[i]), 0);
        ASSERT_TRUE(h[i].b != NULL);
    }
    ASSERT_EQ_INT(stats(&e).resident, MAXRES + 4);
    for (int i = 0; i < MAXRES + 4; i++) spool_unref(h[i].b);
    check_with_entry(&e, &w[1]); /* any later operation trims */
    ASSERT_TRUE(stats(&e).resident <= MAXRES);
    /* state changes of evicted records: a new state, status and detail, back exact once evicted again */
    for (int i = 0; i < N; i += 3) {
        if (w[i].state == JFMT_S_PARKED) continue;
        w[i].state = JFMT_S_PARKED;
        w[i].status = 409;
        snprintf(w[i].detail, sizeof w[i].detail, "now parked (%d)", i);
        int before = atomic_load(&d.n);
        ASSERT_EQ_INT(jnl_state(e.j, w[i].seq, JFMT_S_PARKED, 409, w[i].detail, on_done, &d), 0);
        wait_n(&d, before + 1);
    }
    wait_bound(&e);
    for (int i = 0; i < N; i++) check_with_entry(&e, &w[i]);
    /* terminal states of evicted records free their rows, bodies and spool bytes, then the segments */
    jnl_stats st0 = stats(&e);
    for (int i = 0; i < N - 1; i++) {
        /* (an entry with a state still queued stays whole until it is durable) */
        ASSERT_EQ_INT(jnl_state(e.j, w[i].seq, JFMT_S_APPLIED, 0, NULL, NULL, NULL), 0);
    }
    wait_live(&e, 1);
    wait_bound(&e);
    ASSERT_EQ_INT(jnl_state(e.j, w[N - 1].seq, JFMT_S_PRIMARY_OK, 200, "last", NULL, NULL), 0);
    roll(&e, &d);
    wait_live(&e, 1);
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, w[N - 1].body > 0);
    ASSERT_EQ_INT(ss.used_bytes, w[N - 1].body);
    ASSERT_EQ_INT(stats(&e).bytes_pending, w[N - 1].body);
    jnl_stats st = stats(&e);
    ASSERT_TRUE(st.segments_deleted > st0.segments_deleted);
    ASSERT_EQ_INT(st.segments, count_segments(&e));
    w[N - 1].state = JFMT_S_PRIMARY_OK;
    w[N - 1].status = 200;
    snprintf(w[N - 1].detail, sizeof w[N - 1].detail, "last");
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 1);
    ASSERT_EQ_STR(e.rep.problem, "");
    check_with_entry(&e, &w[N - 1]);
    /* the last one applied: everything but the current segment goes, and the spool empties */
    done d2 = {0};
    ASSERT_EQ_INT(jnl_state(e.j, w[N - 1].seq, JFMT_S_APPLIED, 0, NULL, on_done, &d2), 0);
    wait_n(&d2, 1);
    roll(&e, &d2);
    wait_live(&e, 0);
    st = stats(&e);
    ASSERT_TRUE(st.segments <= 2);
    ASSERT_EQ_INT(st.segments, count_segments(&e));
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 0);
    ASSERT_EQ_INT(ss.used_bytes, 0);
    env_close(&e);
}

#define NK 3000

typedef struct seen {
    uint8_t n[NK + 1];
    int bad;
} seen;

static void seen_fn(void *ud, const jnl_entry *e)
{
    seen *s = ud;
    if (e->seq < 1 || e->seq > NK || e->state != JFMT_S_PRIMARY_OK || e->status != 201) {
        s->bad++;
        return;
    }
    s->n[e->seq]++;
    char p[48];
    snprintf(p, sizeof p, "/k/d%d/f%d", (int)(e->seq - 1) % 13, (int)(e->seq - 1));
    bool body = (e->seq - 1) % 4 == 0;
    if (strcmp(e->path, p) != 0 || (body != (e->body != NULL)) || (body && e->body_len != 200 + e->seq - 1)) s->bad++;
}

/* kill -9 with a large evicted backlog: recovery has exactly what was owed; it drains once. */
static void case_crash_backlog(iox_backend be)
{
    env e;
    env_init(&e, be, 256 << 10, 16); /* the child makes its own I/O engine: threads do not survive fork */
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        env_reopen(&e);
        done d = {0};
        for (int i = 0; i < NK; i++) {
            char p[48];
            snprintf(p, sizeof p, "/k/d%d/f%d", i % 13, i);
            spool_body *b = i % 4 == 0 ? mkbody(e.sp, 200 + (size_t)i, (unsigned)i) : NULL;
            jnl_write_in in = {.jop = JFMT_OP_CREATE, .path = p, .body = b};
            uint64_t s;
            if (jnl_append(e.j, &in, on_done, &d, &s) != 0) _exit(3);
            spool_unref(b);
            while (atomic_load(&d.n) < i + 1) usleep(100);
            if (jnl_state(e.j, s, JFMT_S_PRIMARY_OK, 201, NULL, NULL, NULL) != 0) _exit(4);
        }
        /* every third one applied, durably */
        done a = {0};
        int na = 0;
        for (uint64_t s = 1; s <= NK; s++) {
            if (s % 3) continue;
            if (jnl_state(e.j, s, JFMT_S_APPLIED, 0, NULL, on_done, &a) != 0) _exit(5);
            na++;
        }
        while (atomic_load(&a.n) < na) usleep(1000);
        jnl_stats st;
        jnl_get_stats(e.j, &st);
        if (atomic_load(&d.errs) || atomic_load(&a.errs) || st.resident > 16 + 64) _exit(6);
        _exit(0); /* no close */
    }
    int wst = 0;
    ASSERT_EQ_INT(waitpid(pid, &wst, 0), pid);
    ASSERT_TRUE(WIFEXITED(wst));
    ASSERT_EQ_INT(WEXITSTATUS(wst), 0);
    env_reopen(&e);
    uint64_t owed = NK - NK / 3;
    ASSERT_EQ_INT(e.rep.live, owed);
    ASSERT_EQ_INT(e.rep.bodies_lost, 0);
    ASSERT_EQ_STR(e.rep.problem, "");
    /* exactly the ones not applied, each once, in order, with their bodies */
    static seen sn;
    memset(&sn, 0, sizeof sn);
    jnl_foreach(e.j, seen_fn, &sn);
    ASSERT_EQ_INT(sn.bad, 0);
    for (uint64_t s = 1; s <= NK; s++) ASSERT_EQ_INT(sn.n[s], s % 3 ? 1 : 0);
    ASSERT_TRUE(stats(&e).resident <= 16);
    /* drain: every owed record applied once; a second APPLIED finds nothing */
    done a = {0};
    int na = 0;
    for (uint64_t s = 1; s <= NK; s++) {
        if (s % 3 == 0) {
            ASSERT_EQ_INT(jnl_state(e.j, s, JFMT_S_APPLIED, 0, NULL, NULL, NULL), -ENOENT);
            continue;
        }
        ASSERT_EQ_INT(jnl_state(e.j, s, JFMT_S_APPLIED, 0, NULL, on_done, &a), 0);
        na++;
    }
    wait_n(&a, na);
    wait_live(&e, 0);
    for (uint64_t s = 1; s <= NK; s += 97) ASSERT_EQ_INT(jnl_state(e.j, s, JFMT_S_APPLIED, 0, NULL, NULL, NULL), -ENOENT);
    spool_stats ss;
    spool_get_stats(e.sp, &ss);
    ASSERT_EQ_INT(ss.live_bodies, 0);
    ASSERT_EQ_INT(ss.used_bytes, 0);
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, 0);
    env_close(&e);
}

/* Threads page records in and out while others append and finish records: a page-in never fails. */
#define NT 4
#define NS 800

typedef struct stress {
    env *e;
    _Atomic uint64_t max_seq;
    _Atomic int bad, done_writers;
} stress;

typedef struct sarg {
    stress *s;
    int id;
} sarg;

static void *stress_writer(void *ud)
{
    sarg *a = ud;
    stress *s = a->s;
    done d = {0};
    for (int i = 0; i < NS; i++) {
        char p[48];
        uint64_t seq;
        spool_body *b = i % 3 == 0 ? mkbody(s->e->sp, 64, (unsigned)i) : NULL;
        snprintf(p, sizeof p, "/s/w%d/%d", a->id, i);
        jnl_write_in in2 = {.jop = JFMT_OP_CREATE, .path = p, .body = b};
        if (jnl_append(s->e->j, &in2, on_done, &d, &seq) != 0) atomic_fetch_add(&s->bad, 1);
        spool_unref(b);
        while (atomic_load(&d.n) < i + 1) usleep(50);
        /* (a reader may have finished it already) */
        int src = jnl_state(s->e->j, seq, JFMT_S_PRIMARY_OK, 201, NULL, NULL, NULL);
        if (src != 0 && src != -ENOENT) atomic_fetch_add(&s->bad, 1);
        uint64_t m = atomic_load(&s->max_seq);
        while (seq > m && !atomic_compare_exchange_weak(&s->max_seq, &m, seq)) {
        }
    }
    atomic_fetch_add(&s->done_writers, 1);
    return NULL;
}

typedef struct got {
    uint64_t seq;
    bool ok;
} got;

static void got_fn(void *ud, const jnl_entry *e)
{
    got *g = ud;
    g->ok = e->seq == g->seq && e->path[0] == '/' && (e->body_len == 0 || e->body != NULL);
}

static void *stress_reader(void *ud)
{
    sarg *a = ud;
    stress *s = a->s;
    unsigned r = (unsigned)a->id * 7919u + 1;
    for (int it = 0; it < 3000 || atomic_load(&s->done_writers) < NT / 2;) {
        uint64_t m = atomic_load(&s->max_seq);
        if (m == 0) {
            usleep(100);
            continue;
        }
        it++;
        r = r * 1103515245u + 12345u;
        uint64_t seq = 1 + (r >> 8) % m;
        got g = {.seq = seq};
        int rc = jnl_with_entry(s->e->j, seq, got_fn, &g);
        if (rc != 0 && rc != -ENOENT) {
            fprintf(stderr, "with_entry %" PRIu64 ": %d\n", seq, rc);
            atomic_fetch_add(&s->bad, 1);
        }
        if (rc == 0 && !g.ok) {
            fprintf(stderr, "with_entry %" PRIu64 ": not what was written\n", seq);
            atomic_fetch_add(&s->bad, 1);
        }
        /* some get finished, some parked and back */
        if (rc == 0 && r % 5 == 0) {
            rc = jnl_state(s->e->j, seq, JFMT_S_APPLIED, 0, NULL, NULL, NULL);
            if (rc != 0 && rc != -ENOENT) atomic_fetch_add(&s->bad, 1);
        } else if (rc == 0 && r % 5 == 1) {
            rc = jnl_state(s->e->j, seq, JFMT_S_PARKED, 0, "stress", NULL, NULL);
            if (rc != 0 && rc != -ENOENT) atomic_fetch_add(&s->bad, 1);
        }
    }
    return NULL;
}

static void case_concurrent(iox_backend be)
{
    env e;
    env_open(&e, be, 16 << 10, MAXRES);
    stress s = {.e = &e};
    pthread_t t[NT];
    sarg a[NT];
    for (int i = 0; i < NT; i++) {
        a[i] = (sarg){&s, i};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, i < NT / 2 ? stress_writer : stress_reader, &a[i]), 0);
    }
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    ASSERT_EQ_INT(atomic_load(&s.bad), 0);
    /* records that stay live (how many the readers above left live depends on the machine's speed), each
     * waited for until durable */
    done d = {0};
    uint64_t first = 0, last = 0;
    for (int i = 0; i < 4 * MAXRES; i++) {
        char p[48];
        snprintf(p, sizeof p, "/s/tail/%d", i);
        jnl_write_in in = {.jop = JFMT_OP_MKDIRS, .path = p};
        ASSERT_EQ_INT(jnl_append(e.j, &in, on_done, &d, &last), 0);
        if (i == 0) first = last;
    }
    wait_n(&d, 4 * MAXRES);
    /* answered by the primary: no longer held resident for it (records waiting for Gen1 are) */
    for (uint64_t seq = first; seq <= last; seq++)
        ASSERT_EQ_INT(jnl_state(e.j, seq, JFMT_S_PRIMARY_OK, 200, NULL, NULL, NULL), 0);
    for (int i = 0; i < 5000 && stats(&e).resident > MAXRES; i++) usleep(1000);
    /* every record still live reads back exact; once the bound holds most are compact, so this pass pages
     * records in for certain (on a loaded machine the random readers above may have caught none) */
    ASSERT_TRUE(stats(&e).live > MAXRES);
    uint64_t m = last;
    for (uint64_t seq = 1; seq <= m; seq++) {
        got g = {.seq = seq};
        int rc = jnl_with_entry(e.j, seq, got_fn, &g);
        ASSERT_TRUE(rc == 0 || rc == -ENOENT);
        ASSERT_TRUE(rc != 0 || g.ok);
    }
    for (int i = 0; i < 5000 && stats(&e).resident > MAXRES; i++) usleep(1000);
    jnl_stats st = stats(&e);
    ASSERT_TRUE(st.resident <= MAXRES);
    ASSERT_TRUE(st.page_ins > 0 && st.evictions > 0);
    ASSERT_EQ_INT(st.page_in_errors, 0);
    /* what is live after a restart is what was live before */
    uint64_t live = st.live;
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, live);
    ASSERT_EQ_INT(e.rep.bodies_lost, 0);
    env_close(&e);
}

/*
 * Records waiting for the primary (ACCEPTED) past the bound: the journal keeps each whole (the gate
 * reads their paths), and the eviction looks at each about once, not at every one of them on every
 * append (which made the appends slow down with the backlog). Once the primary answered they go
 * compact again, down to the bound. The same after a restart, which rebuilds them whole.
 */
#define NB 2000

static void append_waiting(env *e, done *d, int from, int n, uint64_t *seqs)
{
    int before = atomic_load(&d->n);
    for (int i = from; i < from + n; i++) {
        char p[48];
        snprintf(p, sizeof p, "/held/d%d/f%d", i % 16, i);
        jnl_write_in in = {.jop = JFMT_OP_MKDIRS, .path = p};
        ASSERT_EQ_INT(jnl_append(e->j, &in, on_done, d, &seqs[i]), 0);
    }
    wait_n(d, before + n);
}

typedef struct peek {
    uint64_t seq;
    uint16_t state, status;
    bool ok;
} peek;

static void peek_fn(void *ud, const jnl_entry *e)
{
    peek *g = ud;
    g->ok = e->seq == g->seq && strncmp(e->path, "/held/d", 7) == 0;
    g->state = e->state;
    g->status = e->status;
}

static void case_held_backlog(iox_backend be)
{
    env e;
    env_open(&e, be, 64 << 10, MAXRES);
    done d = {0};
    static uint64_t seqs[NB + 1];
    append_waiting(&e, &d, 0, NB, seqs);
    jnl_stats st = stats(&e);
    ASSERT_EQ_INT(st.live, NB);
    ASSERT_EQ_INT(st.resident, NB); /* every one still waits for the primary */
    ASSERT_EQ_INT(st.evictions, 0);
    /* each looked at about once (before: every one on the list at each append, ~NB * NB / 2) */
    ASSERT_TRUE(st.evict_scans <= NB + 64);
    ASSERT_TRUE(st.held >= NB - MAXRES);
    bool busy = false;
    jnl_path_epoch(e.j, "/held", &busy);
    ASSERT_TRUE(busy);

    /* a restart rebuilds them whole; the next append looks at each once more, and no more after */
    env_shut(&e);
    env_reopen(&e);
    ASSERT_EQ_INT(e.rep.live, NB);
    ASSERT_EQ_INT(stats(&e).resident, NB);
    append_waiting(&e, &d, NB, 1, seqs);
    st = stats(&e);
    ASSERT_EQ_INT(st.resident, NB + 1);
    ASSERT_TRUE(st.held >= NB - MAXRES);
    ASSERT_TRUE(st.evict_scans <= NB + 64);

    /* the primary answers each: not in use any more, evicted down to the bound */
    for (int i = 0; i <= NB; i++)
        ASSERT_EQ_INT(jnl_state(e.j, seqs[i], JFMT_S_PRIMARY_OK, 200, NULL, NULL, NULL), 0);
    wait_bound(&e);
    st = stats(&e);
    ASSERT_EQ_INT(st.live, NB + 1);
    ASSERT_EQ_INT(st.held, 0);
    ASSERT_TRUE(st.evictions >= NB + 1 - MAXRES);
    ASSERT_TRUE(st.evict_scans <= 3 * (NB + 64));
    jnl_path_epoch(e.j, "/held", &busy);
    ASSERT_TRUE(!busy);
    /* and they page back in with the state the primary gave them */
    for (int i = 0; i <= NB; i += 97) {
        peek g = {.seq = seqs[i]};
        ASSERT_EQ_INT(jnl_with_entry(e.j, seqs[i], peek_fn, &g), 0);
        ASSERT_TRUE(g.ok);
        ASSERT_EQ_INT(g.state, JFMT_S_PRIMARY_OK);
        ASSERT_EQ_INT(g.status, 200);
    }
    ASSERT_TRUE(stats(&e).resident <= MAXRES);
    env_close(&e);
}

TIOX_BOTH(evicted_exact)
TIOX_BOTH(states_and_release)
TIOX_BOTH(crash_backlog)
TIOX_BOTH(concurrent)
TIOX_BOTH(held_backlog)

#define TB(name) T(name##_threads), T(name##_uring)

TESTS(TB(evicted_exact), TB(states_and_release), TB(crash_backlog), TB(concurrent), TB(held_backlog))
