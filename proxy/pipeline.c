/*
 * pipeline: the glue of the durable write path (the promises are in pipeline.h and proxy/ARCHITECTURE.md). It
 * owns the I/O engine, the spool, the journal and both engines (the applier, records to Gen2; the mirror,
 * records to Gen1, whenever Gen1 is configured), turns the front's calls into journal records and
 * submissions to the engine each record names (PIPE_PARAM_TO), and turns the outcomes back into journal
 * states.
 *
 * Owed counts (pipe_owed): owed[side] is the number of live records for that side. It goes up before
 * jnl_append (so a record that ends at once never makes it dip below the truth) and at recovery, and
 * down exactly once per record: when a terminal state is queued for it (jnl_state returns 0 only once
 * per record: the journal answers -ENOENT once an end is queued) or when the journal itself refused it
 * (its WRITE could not be committed: the durability callback gets an error). Every terminal jnl_state
 * of this file goes through end_state.
 *
 * Threads: pipe_body_begin and pipe_accept run on the front's MHD threads, pipe_primary on the front's
 * httpc thread, journal callbacks on the journal's commit thread, applier callbacks on the applier's
 * own httpc thread, the applier's worker or the thread in applier_stop, operator commands on the admin
 * thread. One
 * mutex (mu) guards the life-cycle flags, the count of accepts whose durability callback has not run
 * yet, and the set of degraded writes. Lock order: mu, then the applier's or the journal's own lock
 * (applier_submit is called under mu so that it never races with applier_stop); no journal or
 * applier callback is ever called with mu held.
 *
 * Order (order.h): every journaled write is registered in the per-path fence under omu, in the same
 * critical section as jnl_append, so the fence's order is seq order. When its record is durable, a
 * write goes to Gen1 only if no earlier conflicting write is still out there; otherwise its durability
 * callback returns and the write waits, holding no thread. Whatever ends a write at Gen1 (pipe_primary,
 * on any answer or none; a journal error; stopping) ends its place in the fence and continues the
 * writes that waited for it, on that same thread (order_drain). An unknown outcome (the request went
 * out, then a timeout or a dead connection) keeps its place until it is settled (settle.h): Gen1 is
 * asked at once and again after gen1.settle_ms, so a write Gen1 applies late still lands before the
 * path's next write, and the check sees it. Then the record is replayed (applied; a CREATE is copied
 * from Gen1 instead), refused (not applied) or resynced (unknown), the path is released and the writer
 * answered (settle_done).
 * Lock order: omu, then the journal's lock; omu and mu are never held together.
 *
 * Stop: pipe_stop refuses new accepts, waits until every accepted record's durability callback ran
 * (the front's connections are all resumed then), marks the applier gone under mu (from then on
 * nothing is submitted: Gen1 answers still arriving are journaled and replayed at the next start)
 * and drains it. pipe_free closes the journal (queued states are committed; callbacks still arriving
 * see the pipeline stopped), then the spool and the I/O engine.
 */
#include "pipeline.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "feed.h"
#include "gen2client.h"
#include "idmap.h"
#include "iox.h"
#include "jrnl_fmt.h"
#include "log.h"
#include "mirror.h"
#include "order.h"
#include "reload.h"
#include "rid.h"

#define PIPE_STOP_LOG_S 5 /* pipe_stop logs this often while waiting for the journal */
#define PIPE_CONCAT_BODY_MAX (1u << 20) /* MSCONCAT body bytes read for the fence (its source list) */
#define PIPE_HELD_PER_WINDOW 64 /* the feeder holds back at most this many records per window slot */

struct pipeline {
    const dp_config *cfg;
    gen1c *g1;
    metrics *m;
    iox *io;
    spool *sp;
    journal *j;
    applier *ap;                             /* records to Gen2 (Gen1 -> Gen2) */
    mirror *mr;                              /* records to Gen1 (Gen2 -> Gen1); NULL without gen1.endpoint */
    bool has_mirror;                         /* mr was opened (set once in pipe_open; mr goes at pipe_stop) */
    gen2c *mr_g2;                            /* the mirror's Gen2 client (reads for its resyncs) */
    idm_watch *mr_ids;                       /* gen2.identity_map for the mirror, or NULL */
    jnl_recovery rec;
    uint64_t rec_resubmitted, rec_parked;    /* what recovery handed back to the engines / left parked */
    _Atomic int phase;                       /* pipe_set_phase: the direction of operator resyncs */
    _Atomic uint64_t owed[2];                /* live records per side: [1] to Gen1, [0] to Gen2 (pipe_owed) */
    char spool_dir[1100];
    pthread_mutex_t mu;
    pthread_cond_t cond;                     /* signalled when outstanding drops to 0 once stopped is set */
    atomic_bool stopped;                     /* pipe_stop began: accepts refused, nothing sent to Gen1 (set under mu) */
    bool ap_gone;                            /* the applier is stopping or stopped: no submissions */
    /* accepts whose durability callback has not finished. No lock per write: raised before stopped is
     * read (pipe_accept), lowered before it is read (outstanding_down), while pipe_stop sets stopped
     * before it reads the count (seq_cst both sides), so one of the two always sees the other. */
    atomic_uint outstanding;
    _Atomic int spool_policy;                /* spool.policy (cfg_spool_policy; SIGHUP changes it) */
    uint64_t *degraded;                      /* seqs of degraded writes waiting for the primary */
    size_t ndegraded, capdegraded;
    atomic_size_t ndegraded_any;             /* ndegraded, readable without mu: 0 spares Gen1's answers the lock */
    metrics_counter *m_degraded, *m_rejected;
    pthread_mutex_t omu;                     /* guards ord; held around jnl_append of writes */
    ord *ord;                                /* the per-path fence (order.h) */
    metrics_counter *m_owaits;
    metrics_histogram *m_owait_s;
    metrics_gauge *m_owaiting;
    stl *settle;                             /* unknown outcomes being settled (settle.h) */
    metrics_counter *m_settled[STL_UNKNOWN + 1]; /* by verdict */

    /* The feeder (feed.h): records reach the applier through a window of applier.max_in_memory. Its
     * lock fmu comes before mu and the journal's and the applier's locks. */
    pthread_mutex_t fmu;
    pthread_cond_t fcv;                      /* the feeder: a pass may hand something over, or quit */
    pthread_t fthread;
    bool fthread_started, fquit;
    atomic_bool fstop;                       /* pipe_stop began: a pass in progress ends at once */
    feed *fd;
    struct pipe_ent *fstash;                 /* the record the feeder loaded last (feed_load -> submit) */
    struct pipe_wait *waits;                 /* ack "both" writers whose record waits in the feed */
    size_t nwaits, capwaits;
    uint64_t *maybe_sent;                    /* recovered APPENDs that may have been sent (sorted seqs) */
    size_t nmaybe, capmaybe;
    uint64_t *in_doubt;                      /* recovered writes whose Gen1 outcome is unknown (sorted seqs):
                                                their resyncs wait until gen1.settle_ms after the start */
    size_t ndoubt, capdoubt;
    int64_t t_open_ms;                       /* CLOCK_MONOTONIC ms of pipe_open */
    uint64_t orphan_first, orphan_n;         /* recovery: live records for Gen1 without a Gen1 (pipe_open fails) */
};

/* A writer waiting (ack "both") for a record that waits in the feed; bounded by the writers. */
typedef struct pipe_wait {
    uint64_t seq;
    void (*acked)(void *ud);
    void *ud;
    char *authorization;
} pipe_wait;

/* One applier submission: done (and first, with ack "both") come back here. */
typedef struct pipe_sub {
    pipeline *p;
    uint64_t seq;
    char rid[RID_MAX + 1];   /* the record's request id, for the outcome's log line ("-": none) */
    bool to_gen1;            /* submitted to the mirror (else the applier) */
    void (*acked)(void *ud);
    void *acked_ud;
    atomic_bool acked_ran;
    atomic_int refs;
} pipe_sub;

/* pipe_accept's durability context. */
typedef struct pipe_actx {
    pipeline *p;
    pipe_durable_cb cb;
    void *ud;
    bool degraded;
    bool to_gen1;            /* the record's side (owed) */
    uint64_t seq;
    struct timespec t_wait;  /* when it began to wait in the fence (set under omu) */
    char rid[RID_MAX + 1];  /* the write's request id, for this file's log lines about it */
} pipe_actx;

/* A write whose Gen1 outcome is being settled. */
typedef struct pipe_sctx {
    pipeline *p;
    uint64_t seq;
    whreq_op op;
    bool degraded;
    char *authorization;
    void (*settled)(void *ud, stl_verdict v);
    void *ud;
} pipe_sctx;

/* A degraded write's RESYNC mark waiting to be durable. */
typedef struct pipe_dctx {
    pipeline *p;
    char *authorization;
} pipe_dctx;

/* A copy of a journal entry, taken under the journal's lock (jnl_foreach / jnl_with_entry). */
typedef struct pipe_ent {
    uint64_t seq;
    uint16_t jop;
    whreq_op op;
    uint16_t state;
    uint16_t status;  /* the HTTP status of the latest state (Gen1's, for PRIMARY_OK) */
    char *detail;     /* the latest state's detail (gen2-primary: PRIMARY_OK carries PIPE_DETAIL_OFFSET) */
    char *path;
    whreq_param *params;
    int nparams;
    spool_body *body; /* one reference, or NULL */
    bool body_lost;
    bool to_gen1;     /* PIPE_PARAM_TO=PIPE_TO_GEN1: the mirror's, else the applier's */
    bool oom;
    char **touched;   /* the paths it touches (journal's view) */
    int ntouched;
} pipe_ent;

/* ---- entry copies ---- */

static void ent_clear(pipe_ent *e)
{
    free(e->path);
    free(e->detail);
    for (int i = 0; i < e->nparams; i++) {
        free(e->params[i].name);
        free(e->params[i].value);
    }
    free(e->params);
    for (int i = 0; i < e->ntouched; i++) free(e->touched[i]);
    free(e->touched);
    spool_unref(e->body);
    memset(e, 0, sizeof *e);
}

/* Copy what a submission needs of a live entry (runs under the journal's lock: no journal calls). */
static void ent_copy(pipe_ent *d, const jnl_entry *s)
{
    memset(d, 0, sizeof *d);
    d->seq = s->seq;
    d->jop = s->jop;
    d->op = s->op;
    d->state = s->state;
    d->status = s->status;
    d->body_lost = s->body_lost;
    d->to_gen1 = pipe_params_to_gen1(s->params, s->nparams);
    d->path = strdup(s->path ? s->path : "/");
    if (!d->path) goto oom;
    if (s->detail && s->detail[0] && !(d->detail = strdup(s->detail))) goto oom;
    if (s->nparams > 0) {
        d->params = calloc((size_t)s->nparams, sizeof *d->params);
        if (!d->params) goto oom;
        for (int i = 0; i < s->nparams; i++) {
            d->params[i].name = strdup(s->params[i].name);
            d->params[i].value = strdup(s->params[i].value);
            d->nparams = i + 1;
            if (!d->params[i].name || !d->params[i].value) goto oom;
        }
    }
    if (s->ntouched > 0) {
        d->touched = calloc((size_t)s->ntouched, sizeof *d->touched);
        if (!d->touched) goto oom;
        for (int i = 0; i < s->ntouched; i++) {
            d->touched[i] = strdup(s->touched[i]);
            d->ntouched = i + 1;
            if (!d->touched[i]) goto oom;
        }
    }
    if (s->body) d->body = spool_ref(s->body);
    return;
oom:
    d->oom = true;
}

static void copy_one(void *ud, const jnl_entry *e) { ent_copy(ud, e); }

/* True when seq is in the sorted list v[0..n). */
static bool seq_in(const uint64_t *v, size_t n, uint64_t seq)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid] < seq) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && v[lo] == seq;
}

/* ---- which side a record is for, and what each side is owed ---- */

bool pipe_params_to_gen1(const whreq_param *params, int nparams)
{
    bool g1 = false;
    for (int k = 0; k < nparams; k++)
        if (params[k].name && strcmp(params[k].name, PIPE_PARAM_TO) == 0)
            g1 = params[k].value && strcmp(params[k].value, PIPE_TO_GEN1) == 0;
    return g1;
}

static void owed_up(pipeline *p, bool to_gen1) { atomic_fetch_add(&p->owed[to_gen1 ? 1 : 0], 1); }

static void owed_down(pipeline *p, bool to_gen1) { atomic_fetch_sub(&p->owed[to_gen1 ? 1 : 0], 1); }

static void dir_one(void *ud, const jnl_entry *e) { *(bool *)ud = pipe_params_to_gen1(e->params, e->nparams); }

/* The side live record seq is for (false when it is gone: then nothing ends it here either). */
static bool seq_to_gen1(pipeline *p, uint64_t seq)
{
    bool g1 = false;
    (void)jnl_with_entry(p->j, seq, dir_one, &g1);
    return g1;
}

/*
 * A terminal state (APPLIED, PRIMARY_REFUSED, DROPPED) of record seq, for side to_gen1: the record no
 * longer counts as owed once the state is queued (jnl_state succeeds once per record). Lazy (no callback).
 */
static int end_state(pipeline *p, uint64_t seq, bool to_gen1, jfmt_state st, int status, const char *detail)
{
    int rc = jnl_state(p->j, seq, st, status, detail, NULL, NULL);
    if (rc == 0) owed_down(p, to_gen1);
    return rc;
}

/* ---- submissions to the engines ---- */

static void sub_unref(pipe_sub *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1) free(s);
}

/* The writer's ack ("both"): once, from first or, failing that, from the outcome. */
static void sub_ack(pipe_sub *s)
{
    if (s->acked && !atomic_exchange(&s->acked_ran, true)) s->acked(s->acked_ud);
}

static void on_first(void *ud, bool ok)
{
    (void)ok;
    pipe_sub *s = ud;
    sub_ack(s);
    sub_unref(s);
}

/* Applier outcome -> journal state (journal-arch.md, write path step 6). */
static void on_done(void *ud, const apply_result *res)
{
    pipe_sub *s = ud;
    pipeline *p = s->p;
    sub_ack(s);
    const char *name = apply_outcome_name(res->outcome);
    char detail[sizeof res->detail + 64]; /* the journal truncates it to JFMT_MAX_DETAIL */
    snprintf(detail, sizeof detail, "%s%s%s", name, res->detail[0] ? ": " : "", res->detail);
    int rc = 0;
    switch (res->outcome) {
    case APPLY_OK:
    case APPLY_SKIPPED_UNMAPPED:
    case APPLY_SKIPPED_INVALID_NAME:
    case APPLY_DIVERGENCE:
    case APPLY_RESYNCED:
        rc = end_state(p, s->seq, s->to_gen1, JFMT_S_APPLIED, 0, detail);
        break;
    case APPLY_FAILED: /* never reaches done by contract; keep it for an operator rather than lose it */
    case APPLY_PARKED:
        LOGW("msg=\"record parked: waits for an operator\" seq=%" PRIu64 " rid=%s to=%s detail=\"%s\"", s->seq,
             s->rid, s->to_gen1 ? "gen1" : "gen2", res->detail);
        rc = jnl_state(p->j, s->seq, JFMT_S_PARKED, 0, detail, NULL, NULL);
        break;
    case APPLY_STOPPED:
        /* left as it is: the next start replays it */
        break;
    }
    if (rc != 0)
        LOGD("msg=\"outcome not journaled\" seq=%" PRIu64 " rid=%s outcome=%s err=\"%s\"", s->seq, s->rid, name,
             strerror(-rc));
    /* the window has room again: the feeder may hand over the next records */
    pthread_mutex_lock(&p->fmu);
    feed_finish(p->fd, s->seq);
    if (feed_want_pass(p->fd)) pthread_cond_signal(&p->fcv);
    pthread_mutex_unlock(&p->fmu);
    sub_unref(s);
}

/* Move the journal's reserved request-id parameter out of r's params into r->request_id (a
 * malformed one is dropped: each Gen2 request then gets its own id). */
static void take_request_id(apply_req *r)
{
    for (int i = 0; i < r->nparams; i++) {
        if (!r->params[i].name || strcmp(r->params[i].name, JFMT_KEY_REQUEST_ID) != 0) continue;
        if (r->params[i].value && rid_valid(r->params[i].value))
            snprintf(r->request_id, sizeof r->request_id, "%s", r->params[i].value);
        free(r->params[i].name);
        free(r->params[i].value);
        memmove(&r->params[i], &r->params[i + 1], (size_t)(r->nparams - i - 1) * sizeof r->params[0]);
        r->nparams--;
        return;
    }
}

/*
 * A record for Gen1: what the mirror needs that only Gen2's answer told, rebuilt from the record's
 * PRIMARY_OK detail (so it survives a restart): an APPEND's landing offset (MIRROR_PARAM_OFFSET), a
 * CREATE's modification time (MIRROR_PARAM_MTIME). 0, or -1 out of memory. Without the offset the mirror
 * resyncs an APPEND that may have landed; without the time Gen1 keeps its own (mirror.h).
 */
static int add_primary_params(apply_req *r, const char *detail)
{
    const char *name = r->op == WH_OP_APPEND || r->op == WH_OP_CONCURRENTAPPEND ? MIRROR_PARAM_OFFSET
                       : r->op == WH_OP_CREATE                                  ? MIRROR_PARAM_MTIME
                                                                                : NULL;
    if (!name || !detail) return 0;
    const char *at = strstr(detail, name);
    if (!at || at[strlen(name)] != '=') return 0;
    at += strlen(name) + 1;
    char *end = NULL;
    errno = 0;
    unsigned long long off = strtoull(at, &end, 10);
    if (errno != 0 || end == at || *at == '-') return 0;
    for (int i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, name) == 0) return 0; /* a writer's is never kept */
    whreq_param *np = realloc(r->params, (size_t)(r->nparams + 1) * sizeof *np);
    if (!np) return -1;
    r->params = np;
    char val[24];
    snprintf(val, sizeof val, "%llu", off);
    np[r->nparams].name = strdup(name);
    np[r->nparams].value = strdup(val);
    if (!np[r->nparams].name || !np[r->nparams].value) {
        free(np[r->nparams].name);
        free(np[r->nparams].value);
        return -1;
    }
    r->nparams++;
    return 0;
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = true;
    return d;
}

/*
 * Hand entry e to its side's engine (e's contents move into the request): the mirror for a record to
 * Gen1, the applier otherwise. resync: copy the path from the primary instead of replaying (no body).
 * acked (ack "both") runs at the first attempt on the secondary. Returns 0, or -1 when nothing was
 * submitted (the engines are gone, or out of memory); acked is then not called.
 */
static int submit_ent(pipeline *p, pipe_ent *e, bool resync, bool maybe_sent, const char *authorization,
                      int gen1_status, const char *gen1_body, void (*acked)(void *ud), void *acked_ud)
{
    if (e->oom) {
        LOGE("msg=\"record not handed to its engine: out of memory\" seq=%" PRIu64, e->seq);
        ent_clear(e);
        return -1;
    }
    bool to_gen1 = e->to_gen1;
    apply_req *r = calloc(1, sizeof *r);
    pipe_sub *s = calloc(1, sizeof *s);
    bool oom = !r || !s;
    if (oom) goto fail;
    r->seq = e->seq;
    r->op = e->op;
    r->path = e->path;
    r->params = e->params;
    r->nparams = e->nparams;
    e->path = NULL;
    e->params = NULL;
    e->nparams = 0;
    take_request_id(r);
    r->resync = resync || e->body_lost;
    if (to_gen1 && !r->resync && e->state == JFMT_S_PRIMARY_OK && add_primary_params(r, e->detail) != 0) oom = true;
    if (oom) goto fail;
    r->maybe_sent = maybe_sent;
    if (r->resync && seq_in(p->in_doubt, p->ndoubt, e->seq))
        r->not_before_ms = p->t_open_ms + (int64_t)p->cfg->gen1_settle_ms;
    if (!r->resync) {
        r->body = e->body;
        e->body = NULL;
    }
    r->authorization = dup_or_null(authorization, &oom);
    r->gen1_status = gen1_status;
    r->gen1_body = dup_or_null(gen1_body, &oom);
    if (oom) goto fail;
    s->p = p;
    s->seq = e->seq;
    s->to_gen1 = to_gen1;
    snprintf(s->rid, sizeof s->rid, "%s", r->request_id[0] ? r->request_id : "-");
    s->acked = acked;
    s->acked_ud = acked_ud;
    atomic_init(&s->acked_ran, false);
    atomic_init(&s->refs, acked ? 2 : 1);
    if (acked) {
        r->first = on_first;
        r->first_ud = s;
    }
    ent_clear(e);
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    /* (a record for Gen1 without a mirror cannot be live: pipe_open refuses such a journal, pipe_accept
     * and pipe_set_phase never make one) */
    if (!p->ap_gone && (!to_gen1 || p->mr))
        rc = to_gen1 ? mirror_submit(p->mr, r, on_done, s) : applier_submit(p->ap, r, on_done, s);
    else apply_req_free(r);
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) {
        LOGD("msg=\"record left for the next start: the engines are stopping\" seq=%" PRIu64 " to=%s", s->seq,
             to_gen1 ? "gen1" : "gen2");
        free(s);
        return -1;
    }
    return 0;
fail:
    LOGE("msg=\"record not handed to its engine: out of memory\" seq=%" PRIu64, e->seq);
    if (r) apply_req_free(r);
    free(s);
    ent_clear(e);
    return -1;
}

/* ---- the feeder: records reach the applier through a bounded window (feed.h) ---- */

/* How a record is handed over follows from its journal state (the recovery rules of
 * resubmit_recovered): replayed when Gen1 accepted it (PRIMARY_OK), else resynced. */
static bool ent_resync(const pipe_ent *e)
{
    return e->state != JFMT_S_PRIMARY_OK || e->jop == JFMT_OP_RESYNC || e->op == WH_OP_UNKNOWN || e->body_lost;
}

/* Recovered records that may have been sent before the restart (the applier re-checks them). */
static bool ent_maybe_sent(const pipeline *p, const pipe_ent *e)
{
    if (e->seq > p->rec.max_seq) return false;
    /* the mirror: any recovered record may have reached Gen1 before the stop (it checks first) */
    if (e->to_gen1) return true;
    if (e->op == WH_OP_CREATE || e->op == WH_OP_MKDIRS) return true;
    return seq_in(p->maybe_sent, p->nmaybe, e->seq);
}

/* The paths the feeder orders e by: the journal's, or "/" for MSCONCAT (its sources are in its body). */
static void ent_paths(const pipe_ent *e, const char *const **paths, int *n)
{
    static const char *const root[] = {"/"};
    if (e->op == WH_OP_MSCONCAT || e->ntouched == 0) {
        *paths = root;
        *n = 1;
    } else {
        *paths = (const char *const *)e->touched;
        *n = e->ntouched;
    }
}

/* The writer waiting for seq (ack "both"), taken out of the list (fmu held); false when none. */
static bool wait_take_locked(pipeline *p, uint64_t seq, pipe_wait *out)
{
    for (size_t i = 0; i < p->nwaits; i++) {
        if (p->waits[i].seq != seq) continue;
        *out = p->waits[i];
        p->waits[i] = p->waits[--p->nwaits];
        return true;
    }
    return false;
}

/* feed_next: the next live record of a recovered cursor (fmu held). */
static uint64_t feed_next(void *ud, uint64_t seq)
{
    pipeline *p = ud;
    return jnl_next_live(p->j, seq);
}

/* feed_load: copy the record into the stash (fmu held). */
static int feed_load(void *ud, uint64_t seq, const char *const **paths, int *n)
{
    pipeline *p = ud;
    pipe_ent *e = p->fstash;
    ent_clear(e);
    if (atomic_load(&p->fstop)) return 1;
    if (jnl_with_entry(p->j, seq, copy_one, e) != 0 || e->state == JFMT_S_PARKED) {
        ent_clear(e);
        pipe_wait w;
        if (wait_take_locked(p, seq, &w)) { /* nothing more will happen to it: answer its writer */
            w.acked(w.ud);
            free(w.authorization);
        }
        return -1;
    }
    ent_paths(e, paths, n);
    return 0;
}

/* feed_submit: hand record seq to the applier (fmu held). */
static int feed_submit(void *ud, uint64_t seq)
{
    pipeline *p = ud;
    pipe_ent *e = p->fstash;
    if (atomic_load(&p->fstop)) return -1; /* stays in the journal for the next start */
    if (e->seq != seq) {
        ent_clear(e);
        if (jnl_with_entry(p->j, seq, copy_one, e) != 0 || e->state == JFMT_S_PARKED) {
            ent_clear(e);
            return -1;
        }
    }
    pipe_wait w = {0};
    bool waiting = wait_take_locked(p, seq, &w);
    bool resync = ent_resync(e);
    int g1status = resync ? 0 : e->status ? e->status : 200;
    int rc = submit_ent(p, e, resync, !resync && ent_maybe_sent(p, e), w.authorization, g1status, NULL,
                        waiting ? w.acked : NULL, w.ud);
    if (rc != 0 && waiting) w.acked(w.ud); /* the applier is gone: the record stays for the next start */
    free(w.authorization);
    return rc;
}

static void *feeder_main(void *arg)
{
    pipeline *p = arg;
    pthread_mutex_lock(&p->fmu);
    while (!p->fquit) {
        if (!feed_want_pass(p->fd)) {
            pthread_cond_wait(&p->fcv, &p->fmu);
            continue;
        }
        (void)feed_pass(p->fd, feed_load, feed_submit, p);
    }
    ent_clear(p->fstash);
    pthread_mutex_unlock(&p->fmu);
    return NULL;
}

/*
 * Live entry seq is ready for Gen2 (its state says how: feed_submit). It goes to the applier at once
 * when nothing waits in the feed before it and the window has room, or, for a writer waiting on it
 * (acked: ack "both"), even past the window: such writes are bounded by the writers. Otherwise it
 * waits in the feed (the writer's authorization is then kept only for a writer that waits; others are
 * replayed like recovered records, without it). Returns 0 when handed over or queued (acked then runs
 * later), -1 when neither (acked is not called).
 */
static int feed_seq(pipeline *p, uint64_t seq, const char *authorization, int gen1_status, const char *gen1_body,
                    void (*acked)(void *ud), void *acked_ud)
{
    pipe_ent e;
    memset(&e, 0, sizeof e);
    if (jnl_with_entry(p->j, seq, copy_one, &e) != 0) {
        LOGD("msg=\"record gone before its submission\" seq=%" PRIu64, seq);
        return -1;
    }
    pthread_mutex_lock(&p->fmu);
    feed_stats st;
    feed_get_stats(p->fd, &st);
    const char *const *paths;
    int np;
    ent_paths(&e, &paths, &np);
    int rc;
    if (!p->fquit && (acked || st.in_window < p->cfg->applier_max_in_memory) && feed_take_now(p->fd, seq, paths, np)) {
        bool resync = ent_resync(&e);
        rc = submit_ent(p, &e, resync, false, authorization, resync ? 0 : gen1_status, gen1_body, acked, acked_ud);
        if (rc != 0) feed_finish(p->fd, seq);
        pthread_mutex_unlock(&p->fmu);
        return rc;
    }
    ent_clear(&e);
    rc = p->fquit ? -ESHUTDOWN : 0;
    if (rc == 0 && acked) {
        if (p->nwaits == p->capwaits) {
            size_t cap = p->capwaits ? p->capwaits * 2 : 16;
            pipe_wait *nw = realloc(p->waits, cap * sizeof *nw);
            if (nw) {
                p->waits = nw;
                p->capwaits = cap;
            }
        }
        if (p->nwaits < p->capwaits) {
            char *auth = authorization ? strdup(authorization) : NULL;
            p->waits[p->nwaits++] = (pipe_wait){seq, acked, acked_ud, auth};
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0) rc = feed_push(p->fd, seq);
    if (rc != 0 && acked) {
        pipe_wait w;
        if (wait_take_locked(p, seq, &w)) free(w.authorization);
    }
    if (rc == 0 && feed_want_pass(p->fd)) pthread_cond_signal(&p->fcv);
    pthread_mutex_unlock(&p->fmu);
    if (rc != 0) LOGD("msg=\"record left for the next start\" seq=%" PRIu64 " err=\"%s\"", seq, strerror(-rc));
    return rc == 0 ? 0 : -1;
}

/* Durability callback of resync marks (retry: a state, not a record): submit as a resync. A mark that
 * could not be made durable leaves the record live as it was. */
static void resync_durable(void *ud, uint64_t seq, int err)
{
    pipeline *p = ud;
    if (err != 0) {
        LOGW("msg=\"resync mark not durable\" seq=%" PRIu64 " err=\"%s\"", seq, strerror(-err));
        return;
    }
    (void)feed_seq(p, seq, NULL, 0, NULL, NULL, NULL);
}

/* Durability callback of a RESYNC record (pipe_resync_node): one whose WRITE could not be committed was
 * refused by the journal itself, so its side is owed it no more. */
static void resync_rec_durable(pipeline *p, uint64_t seq, int err, bool to_gen1)
{
    if (err != 0) {
        LOGW("msg=\"resync record not durable: not queued\" seq=%" PRIu64 " err=\"%s\"", seq, strerror(-err));
        owed_down(p, to_gen1);
        return;
    }
    (void)feed_seq(p, seq, NULL, 0, NULL, NULL, NULL);
}

static void resync_rec_durable_g1(void *ud, uint64_t seq, int err) { resync_rec_durable(ud, seq, err, true); }

static void resync_rec_durable_g2(void *ud, uint64_t seq, int err) { resync_rec_durable(ud, seq, err, false); }

static void retry_owed(void *ud);

/* Gate of the applier's resyncs. */
static uint64_t gate(void *ud, const char *root, bool *busy)
{
    pipeline *p = ud;
    return jnl_path_epoch(p->j, root, busy);
}

/* ---- degraded writes (seqs waiting for their primary answer) ---- */

static int degraded_add_locked(pipeline *p, uint64_t seq)
{
    if (p->ndegraded == p->capdegraded) {
        size_t cap = p->capdegraded ? p->capdegraded * 2 : 16;
        uint64_t *n = realloc(p->degraded, cap * sizeof *n);
        if (!n) return -ENOMEM;
        p->degraded = n;
        p->capdegraded = cap;
    }
    p->degraded[p->ndegraded++] = seq;
    atomic_store(&p->ndegraded_any, p->ndegraded);
    return 0;
}

static bool degraded_take_locked(pipeline *p, uint64_t seq)
{
    for (size_t i = 0; i < p->ndegraded; i++) {
        if (p->degraded[i] != seq) continue;
        p->degraded[i] = p->degraded[--p->ndegraded];
        atomic_store(&p->ndegraded_any, p->ndegraded);
        return true;
    }
    return false;
}

/* ---- open ---- */

/* A set of paths (recovery: "the first pending APPEND of this path was seen"). */
typedef struct pathset {
    char **slot;
    size_t mask, n;
} pathset;

static uint64_t path_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Insert s (not copied: it must outlive the set). 1 when added, 0 when present, -ENOMEM. */
static int pathset_add(pathset *ps, const char *s)
{
    if ((ps->n + 1) * 2 > ps->mask + 1 || !ps->slot) {
        size_t nm = ps->slot ? ps->mask * 2 + 1 : 255;
        char **ns = calloc(nm + 1, sizeof *ns);
        if (!ns) return -ENOMEM;
        for (size_t i = 0; ps->slot && i <= ps->mask; i++) {
            if (!ps->slot[i]) continue;
            size_t k = (size_t)path_hash(ps->slot[i]) & nm;
            while (ns[k]) k = (k + 1) & nm;
            ns[k] = ps->slot[i];
        }
        free(ps->slot);
        ps->slot = ns;
        ps->mask = nm;
    }
    size_t k = (size_t)path_hash(s) & ps->mask;
    while (ps->slot[k]) {
        if (strcmp(ps->slot[k], s) == 0) return 0;
        k = (k + 1) & ps->mask;
    }
    ps->slot[k] = (char *)s;
    ps->n++;
    return 1;
}

/* A recovered record still waiting for the primary when the proxy stopped. */
typedef struct rec_acc {
    uint64_t seq;
    bool mark;        /* a RESYNC record */
} rec_acc;

typedef struct rec_scan {
    pipeline *p;
    uint64_t orphan_first; /* the first live record for Gen1 when there is no mirror, or 0 */
    uint64_t orphan_n;
    pathset seen;     /* paths whose first pending APPEND without an offset was seen */
    rec_acc *acc;
    size_t nacc, capacc;
    uint64_t lo, hi, n; /* the cursor being built: n records in [lo, hi], no other live one between */
    int err;
} rec_scan;

/* Queue the cursor built so far (feed_push_range). */
static void rec_flush(rec_scan *r)
{
    if (r->n && !r->err && feed_push_range(r->p->fd, r->lo, r->hi, r->n) != 0) r->err = -ENOMEM;
    r->n = 0;
}

static int u64_push(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        uint64_t *nv = realloc(*v, nc * sizeof *nv);
        if (!nv) return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return 0;
}

/* One live entry at start (under the journal's lock, fmu held; the feeder is not running yet). */
static void recover_one(void *ud, const jnl_entry *e)
{
    rec_scan *r = ud;
    pipeline *p = r->p;
    /* every live record is owed to its side, whatever happens to it below */
    bool to_gen1 = pipe_params_to_gen1(e->params, e->nparams);
    owed_up(p, to_gen1);
    if (to_gen1 && !p->has_mirror) {
        if (!r->orphan_first) r->orphan_first = e->seq;
        r->orphan_n++;
        r->err = -EXDEV;
    }
    if (r->err) return;
    if (e->state == JFMT_S_PARKED) {
        p->rec_parked++;
        rec_flush(r); /* a cursor covers only records it queues: a retry of this one queues it anew */
        return;
    }
    if ((e->state == JFMT_S_ACCEPTED || e->state == JFMT_S_PRIMARY_UNKNOWN) && e->jop != JFMT_OP_RESYNC &&
        p->cfg->gen1_settle_ms > 0 && u64_push(&p->in_doubt, &p->ndoubt, &p->capdoubt, e->seq) != 0) {
        r->err = -ENOMEM;
        return;
    }
    if (e->state == JFMT_S_ACCEPTED) {
        if (r->nacc == r->capacc) {
            size_t nc = r->capacc ? r->capacc * 2 : 64;
            rec_acc *na = realloc(r->acc, nc * sizeof *na);
            if (!na) {
                r->err = -ENOMEM;
                return;
            }
            r->acc = na;
            r->capacc = nc;
        }
        r->acc[r->nacc++] = (rec_acc){e->seq, e->jop == JFMT_OP_RESYNC};
    }
    bool resync = e->state != JFMT_S_PRIMARY_OK || e->jop == JFMT_OP_RESYNC || e->op == WH_OP_UNKNOWN ||
                  e->body_lost;
    /* (for Gen2 only: the mirror checks every recovered record for Gen1 itself, and one of those must not
     * hide the first pending APPEND for Gen2 of the same path) */
    if (!to_gen1 && !resync && (e->op == WH_OP_APPEND || e->op == WH_OP_CONCURRENTAPPEND) && e->path) {
        bool has_off = false;
        for (int k = 0; k < e->nparams && !has_off; k++) has_off = strcmp(e->params[k].name, "offset") == 0;
        if (!has_off) {
            /* the set keeps a pointer to the path: keep a copy that lives until the end */
            char *key = strdup(e->path);
            int added = key ? pathset_add(&r->seen, key) : -ENOMEM;
            if (added < 0) {
                free(key);
                r->err = added;
                return;
            }
            if (added == 0) free(key);
            else if (u64_push(&p->maybe_sent, &p->nmaybe, &p->capmaybe, e->seq) != 0) {
                /* without the flag it would be replayed blind: better stop here than risk a double append */
                r->err = -ENOMEM;
                return;
            }
        }
    }
    if (r->n == 0) r->lo = e->seq;
    r->hi = e->seq;
    r->n++;
    p->rec_resubmitted++;
}

/*
 * Recovery "resubmit" (journal-arch.md "Recovery"): ACCEPTED, PRIMARY_UNKNOWN, body lost, RESYNC state
 * or RESYNC record -> resync; PRIMARY_OK -> replay, the first APPEND of a path without an offset
 * flagged maybe_sent (and CREATE/MKDIRS: their parents' metadata may be half copied); PARKED stays.
 * One walk over the index queues the records in the feeder as cursors over the journal (a few bytes in
 * all; the feeder finds them with jnl_next_live and loads them as the applier has room: feed_submit
 * applies these rules from the record's state). What
 * cannot be queued (out of memory) stays in the journal for the next start.
 */
static int resubmit_recovered(pipeline *p)
{
    rec_scan r = {.p = p};
    pthread_mutex_lock(&p->fmu);
    jnl_foreach(p->j, recover_one, &r);
    if (r.err != -EXDEV) rec_flush(&r);
    pthread_mutex_unlock(&p->fmu);
    if (r.err == -EXDEV) {
        /* Nothing was handed over or changed: the journal stays as it is for a start with Gen1. */
        p->orphan_first = r.orphan_first;
        p->orphan_n = r.orphan_n;
        free(r.acc);
        for (size_t i = 0; r.seen.slot && i <= r.seen.mask; i++) free(r.seen.slot[i]);
        free(r.seen.slot);
        return -EXDEV;
    }
    /* Nobody will answer for these any more: not "busy" for the resync gate from now on. */
    for (size_t i = 0; i < r.nacc; i++) {
        bool mark = r.acc[i].mark;
        int src = jnl_state(p->j, r.acc[i].seq, mark ? JFMT_S_RESYNC : JFMT_S_PRIMARY_UNKNOWN, 0,
                            mark ? "resync requested" : "recovered: primary outcome unknown", NULL, NULL);
        if (src != 0)
            LOGW("msg=\"cannot journal a recovered record's state\" seq=%" PRIu64 " err=\"%s\"", r.acc[i].seq,
                 strerror(-src));
    }
    free(r.acc);
    for (size_t i = 0; r.seen.slot && i <= r.seen.mask; i++) free(r.seen.slot[i]);
    free(r.seen.slot);
    return r.err;
}

static void log_recovery(const pipeline *p)
{
    const jnl_recovery *r = &p->rec;
    double rate = r->scan_seconds > 0 ? (double)r->records / r->scan_seconds : 0;
    LOGI("msg=\"journal recovered\" segments=%" PRIu64 " bytes=%" PRIu64 " records=%" PRIu64 " live=%" PRIu64
         " unknown_outcome=%" PRIu64 " bodies_lost=%" PRIu64 " scan_s=%.3f rate_records_per_s=%.0f seconds=%.3f"
         " max_seq=%" PRIu64,
         r->segments, r->bytes, r->records, r->live, r->unknown_outcome, r->bodies_lost, r->scan_seconds, rate,
         r->seconds, r->max_seq);
    if (r->torn || r->corrupt || r->orphan_states)
        LOGW("msg=\"journal damage found and handled in recovery\" torn_segments=%" PRIu64 " torn_bytes=%" PRIu64
             " corrupt_stretches=%" PRIu64 " orphan_states=%" PRIu64 " problem=\"%s\"",
             r->torn, r->torn_bytes, r->corrupt, r->orphan_states, r->problem);
    if (r->bodies_lost)
        LOGW("msg=\"recovered records lost their bodies: their paths are resynced from Gen1\" count=%" PRIu64,
             r->bodies_lost);
}

static int64_t g_spool_used(void *ud)
{
    spool_stats st;
    spool_get_stats(((pipeline *)ud)->sp, &st);
    return (int64_t)(st.used_bytes + st.held_bytes);
}

static int64_t g_spool_max(void *ud)
{
    spool_stats st;
    spool_get_stats(((pipeline *)ud)->sp, &st);
    return (int64_t)st.max_bytes;
}

static int64_t g_owed_gen1(void *ud) { return (int64_t)pipe_owed(ud, true); }

static int64_t g_owed_gen2(void *ud) { return (int64_t)pipe_owed(ud, false); }

static int register_metrics(pipeline *p, char *err, size_t errlen)
{
    metrics *m = p->m;
    const char *what = NULL;
    if (jnl_register_metrics(p->j, m) != 0) what = "journal";
    else if (applier_register_metrics(p->ap, m) != 0) what = "applier";
    else if (p->mr && mirror_register_metrics(p->mr, m) != 0) what = "mirror";
    else if (metrics_gauge_fn(m, "dualpipe_spool_bytes_used", "Bytes the spool holds against spool.max_bytes: live "
                                                              "bodies, reservations of bodies being received, and "
                                                              "released space not punched out yet.",
                              NULL, g_spool_used, p) != 0 ||
             metrics_gauge_fn(m, "dualpipe_spool_bytes_max", "spool.max_bytes: the cap on dualpipe_spool_bytes_used.",
                              NULL, g_spool_max, p) != 0)
        what = "spool";
    static const char owed_help[] = "Live journal records still to be applied to a side (to=\"gen1\": by the mirror, "
                                    "to=\"gen2\": by the applier): waiting for the primary, pending, in flight, "
                                    "parked or resyncs. 0: that side holds everything the journal has.";
    if (!what && (metrics_gauge_fn(m, "dualpipe_journal_owed", owed_help, "to=\"gen1\"", g_owed_gen1, p) != 0 ||
                  metrics_gauge_fn(m, "dualpipe_journal_owed", owed_help, "to=\"gen2\"", g_owed_gen2, p) != 0))
        what = "journal owed";
    if (!what) {
        p->m_degraded = metrics_counter_get(m, "dualpipe_spool_degraded_total",
                                            "Writes accepted over the spool cap (policy degrade): resynced from "
                                            "Gen1 instead of replayed.",
                                            NULL);
        p->m_rejected = metrics_counter_get(m, "dualpipe_spool_rejected_total",
                                            "Writes refused with 503 because the spool is at its cap "
                                            "(policy reject, or a body larger than the whole cap).",
                                            NULL);
        if (!p->m_degraded || !p->m_rejected) what = "spool";
    }
    if (!what) {
        static const double wait_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
        p->m_owaits = metrics_counter_get(m, "dualpipe_order_waits_total",
                                          "Writes that waited before going to Gen1 because an earlier write of the "
                                          "same path (or a DELETE/RENAME of an ancestor) was still in flight there.",
                                          NULL);
        p->m_owait_s = metrics_histogram_get(m, "dualpipe_order_wait_seconds",
                                             "How long writes that waited for an earlier write of the same path "
                                             "waited before going to Gen1.",
                                             NULL, wait_bounds, (int)(sizeof wait_bounds / sizeof wait_bounds[0]));
        p->m_owaiting = metrics_gauge_get(m, "dualpipe_order_waiting",
                                          "Writes durable in the journal and waiting now for an earlier write of "
                                          "the same path to be answered by Gen1.",
                                          NULL);
        if (!p->m_owaits || !p->m_owait_s || !p->m_owaiting) what = "order";
    }
    for (int v = STL_APPLIED; !what && v <= STL_UNKNOWN; v++) {
        char lab[40];
        snprintf(lab, sizeof lab, "verdict=\"%s\"", stl_verdict_name((stl_verdict)v));
        p->m_settled[v] = metrics_counter_get(m, "dualpipe_gen1_unknown_outcomes_total",
                                              "Writes whose Gen1 answer was lost after they were sent (timeout, "
                                              "dead connection), by what asking Gen1 settled: applied (replayed "
                                              "to Gen2), not_applied (refused), unknown (resynced from Gen1).",
                                              lab);
        if (!p->m_settled[v]) what = "settle";
    }
    if (what) {
        snprintf(err, errlen, "%s: cannot register its metrics", what);
        return -1;
    }
    return 0;
}

/* SIGHUP (reload.h): the spool policy, and the Gen2 credentials the applier signs with. */
static const char *const pipe_live_keys[] = {"spool.policy", "gen2.auth.account_key", "gen2.auth.sas",
                                             "gen2.auth.client_secret", NULL};

static int pipe_reload(void *arg, const dp_config *nc, bool check, char *err, size_t errlen)
{
    pipeline *p = arg;
    if (!check) atomic_store_explicit(&p->spool_policy, (int)nc->spool_policy, memory_order_relaxed);
    if (p->mr_g2 && gen2c_reload(p->mr_g2, nc, check, err, errlen) != 0) return -1;
    return p->ap ? applier_reload(p->ap, nc, check, err, errlen) : 0;
}

/* The mirror that applies records for Gen1 to it (mirror.h), tuned by the applier.* keys, with the proxy's
 * own Gen1 identity (g1) and a Gen2 client of its own for its resyncs. Opened whenever Gen1 is configured,
 * so that a phase switch finds it running and records of both sides drain side by side. */
static int open_mirror(pipeline *p, httpc *http, gen1c *g1, char *err, size_t errlen)
{
    const dp_config *cfg = p->cfg;
    char e[300] = "";
    if (gen2c_new(cfg, http, &p->mr_g2, e, sizeof e) != 0) {
        snprintf(err, errlen, "mirror: %s", e);
        return -1;
    }
    if (cfg->identity_map[0]) {
        idm_err ie;
        if (idm_watch_new(cfg->identity_map, &p->mr_ids, &ie) != 0) {
            snprintf(err, errlen, "gen2.identity_map: %s", ie.message);
            return -1;
        }
    }
    mirror_opts o = {.http = http, .g1 = g1, .g2 = p->mr_g2, .hadoop = cfg->gen1_dialect == CFG_DIALECT_HADOOP,
                     .ids = p->mr_ids, .gate = gate, .gate_ud = p, .concurrency = cfg->applier_concurrency,
                     .backoff_base_ms = cfg->applier_backoff_base_ms, .backoff_cap_ms = cfg->applier_backoff_cap_ms,
                     .breaker_failures = cfg->applier_breaker_failures,
                     .breaker_probe_ms = cfg->applier_breaker_probe_ms,
                     .resync_attempts = cfg->applier_resync_attempts};
    if (mirror_new(&o, &p->mr, e, sizeof e) != 0) {
        snprintf(err, errlen, "mirror: %s", e);
        return -1;
    }
    p->has_mirror = true;
    LOGI("msg=\"mirror ready: records for Gen1 are applied to it\" concurrency=%u", o.concurrency);
    return 0;
}

int pipe_open(const dp_config *cfg, httpc *http, gen1c *g1, metrics *m, pipeline **out, char *err, size_t errlen)
{
    char e[400] = "";
    pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->cfg = cfg;
    struct timespec t_open;
    clock_gettime(CLOCK_MONOTONIC, &t_open);
    p->t_open_ms = (int64_t)t_open.tv_sec * 1000 + t_open.tv_nsec / 1000000;
    atomic_init(&p->spool_policy, (int)cfg->spool_policy);
    atomic_init(&p->phase, (int)cfg->phase);
    atomic_init(&p->owed[0], 0);
    atomic_init(&p->owed[1], 0);
    p->g1 = g1;
    p->m = m;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_mutex_init(&p->omu, NULL);
    p->ord = ord_new();
    pthread_mutex_init(&p->fmu, NULL);
    pthread_cond_init(&p->fcv, NULL);
    p->fd = feed_new(cfg->applier_max_in_memory, cfg->applier_max_per_path,
                     (size_t)cfg->applier_max_in_memory * PIPE_HELD_PER_WINDOW);
    p->fstash = calloc(1, sizeof *p->fstash);
    if (p->fd) feed_set_next(p->fd, feed_next);
    if (!p->ord || !p->fd || !p->fstash) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    if (iox_new((iox_backend)cfg->journal_io, 0, 0, &p->io, e, sizeof e) != 0) {
        snprintf(err, errlen, "journal.io: %s", e);
        goto fail;
    }
    const char *reason = iox_reason(p->io);
    LOGI("msg=\"journal I/O backend\" backend=%s configured=%s%s%s%s", iox_backend_name(iox_in_use(p->io)),
         iox_backend_name((iox_backend)cfg->journal_io), reason[0] ? " fallback_reason=\"" : "", reason,
         reason[0] ? "\"" : "");

    int n = snprintf(p->spool_dir, sizeof p->spool_dir, "%s/data", cfg->spool_dir);
    if (n < 0 || (size_t)n >= sizeof p->spool_dir) {
        snprintf(err, errlen, "spool.dir: too long");
        goto fail;
    }
    spool_opts so = {.dir = p->spool_dir, .segment_bytes = cfg->spool_segment_bytes,
                     .max_bytes = cfg->spool_max_bytes, .io = p->io};
    if (spool_open(&so, &p->sp, e, sizeof e) != 0) {
        snprintf(err, errlen, "spool.dir: %s", e);
        goto fail;
    }

    char jdir[1100];
    if (cfg->journal_dir[0]) n = snprintf(jdir, sizeof jdir, "%s", cfg->journal_dir);
    else n = snprintf(jdir, sizeof jdir, "%s/journal", cfg->spool_dir);
    if (n < 0 || (size_t)n >= sizeof jdir) {
        snprintf(err, errlen, "journal.dir: too long");
        goto fail;
    }
    jnl_opts jo = {.dir = jdir, .segment_bytes = cfg->journal_segment_bytes, .commit_lazy_ms = cfg->journal_lazy_ms,
                   .commit_wait_us = cfg->journal_commit_wait_us, .commit_batch = cfg->journal_commit_batch,
                   .io = p->io, .sp = p->sp, .verify_bodies = cfg->journal_verify_bodies,
                   /* whole entries: what the applier holds (and its copies' neighbours), the rest compact */
                   .max_resident = (uint64_t)cfg->applier_max_in_memory * 2 + 1024};
    if (jnl_open(&jo, &p->j, &p->rec, e, sizeof e) != 0) {
        snprintf(err, errlen, "journal.dir: %s", e);
        goto fail;
    }
    log_recovery(p);

    if (applier_new(cfg, http, g1, gate, p, &p->ap, e, sizeof e) != 0) {
        snprintf(err, errlen, "%s", e);
        goto fail;
    }
    applier_set_spool(p->ap, p->sp);
    if (cfg->gen1_endpoint[0] && open_mirror(p, http, g1, err, errlen) != 0) goto fail;
    if (cfg->phase == CFG_PHASE_GEN2_PRIMARY && !p->has_mirror) {
        snprintf(err, errlen, "gen1.endpoint: phase gen2-primary mirrors writes to Gen1, which needs it");
        goto fail;
    }
    int src = stl_new(g1, cfg->gen1_settle_ms, &p->settle);
    if (src != 0) {
        snprintf(err, errlen, "cannot start the settle thread: %s", strerror(-src));
        goto fail;
    }
    if (register_metrics(p, err, errlen) != 0) goto fail;
    applier_on_identity_change(p->ap, retry_owed, p);
    /* Past this point nothing fails: submitted records call back into p. What cannot be resubmitted
     * (out of memory) stays in the journal for the next start. */
    int rrc = resubmit_recovered(p);
    if (rrc == -EXDEV) {
        snprintf(err, errlen,
                 "journal.dir (%s): the journal holds %" PRIu64 " live record(s) to be applied to Gen1 (journaled in "
                 "phase gen2-primary; the first: seq %" PRIu64 ") and no Gen1 is configured (gen1.endpoint is "
                 "empty). Start once with gen1.endpoint set and let them drain (dualpipe journal status: owed to "
                 "gen1 0), then remove it; nothing was changed",
                 jdir, p->orphan_n, p->orphan_first);
        goto fail;
    }
    if (rrc != 0) LOGE("msg=\"out of memory resubmitting recovered records; the rest wait for the next start\"");
    if (p->rec_resubmitted || p->rec_parked)
        LOGI("msg=\"recovered records queued for their engines\" resubmitted=%" PRIu64 " parked=%" PRIu64
             " owed_gen1=%" PRIu64 " owed_gen2=%" PRIu64 " max_in_memory=%u",
             p->rec_resubmitted, p->rec_parked, pipe_owed(p, true), pipe_owed(p, false), cfg->applier_max_in_memory);
    if (pthread_create(&p->fthread, NULL, feeder_main, p) == 0) (void)pthread_setname_np(p->fthread, "dp-feeder");
    else {
        snprintf(err, errlen, "cannot start the feeder thread");
        goto fail;
    }
    p->fthread_started = true;
    if (rl_register("pipeline", pipe_live_keys, pipe_reload, p) != 0)
        LOGW("msg=\"spool policy and Gen2 credentials will not follow SIGHUP: too many reload hooks\"");
    *out = p;
    return 0;

fail:
    if (p->ap || p->mr) {
        pthread_mutex_lock(&p->mu);
        p->ap_gone = true;
        pthread_mutex_unlock(&p->mu);
    }
    if (p->mr) {
        mirror_stop(p->mr, 0);
        p->mr = NULL;
    }
    if (p->mr_g2) gen2c_stop(p->mr_g2);
    if (p->ap) {
        applier_stop(p->ap, 0);
        p->ap = NULL;
    }
    p->stopped = true;
    pipe_free(p);
    return -1;
}

/* ---- write path ---- */

pipe_admit pipe_body_begin(pipeline *p, uint64_t expect_len, uint64_t max_len, spool_body **out)
{
    const dp_config *cfg = p->cfg;
    uint64_t cap = cfg->spool_max_bytes;
    bool known = expect_len != UINT64_MAX;
    uint64_t want = known ? expect_len : max_len;
    pipe_admit adm = PIPE_ADMIT_OK;
    /* A body larger than the whole cap can never be held within it: refused under either policy.
     * A body of unknown length gets at most the cap (past it spool_write fails: 503). */
    if (cap && known && expect_len > cap) {
        metrics_inc(p->m_rejected);
        return PIPE_ADMIT_REJECT;
    }
    if (cap && !known && want > cap) want = cap;
    if (spool_would_exceed(p->sp, want)) {
        if (atomic_load_explicit(&p->spool_policy, memory_order_relaxed) == CFG_SPOOL_REJECT) {
            spool_stats st;
            spool_get_stats(p->sp, &st);
            uint64_t used = st.used_bytes + st.held_bytes;
            uint64_t room = used < cap ? cap - used : 0;
            /* a chunked body takes what room is left (past it: 503 mid-body, as a full spool does) */
            if (known || room < SPOOL_ALIGN) {
                metrics_inc(p->m_rejected);
                return PIPE_ADMIT_REJECT;
            }
            want = room;
        } else {
            adm = PIPE_ADMIT_DEGRADED;
        }
    }
    int rc = spool_begin(p->sp, known ? expect_len : UINT64_MAX, want, out);
    if (rc != 0) {
        LOGW("msg=\"cannot reserve spool space\" len=%" PRIu64 " err=\"%s\"", want, strerror(-rc));
        return PIPE_ADMIT_ERROR;
    }
    return adm;
}

/* ---- the per-path fence ---- */

/* The accept is settled: its callback reached the front (pipe_stop waits for all of them). */
/* One accept fewer whose durability callback has not finished: only pipe_stop waits for the count, so
 * only the last one once it began takes mu to wake it. */
static void outstanding_down(pipeline *p)
{
    if (atomic_fetch_sub(&p->outstanding, 1) == 1 && atomic_load(&p->stopped)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
    }
}

static void accept_settle(pipe_actx *c)
{
    outstanding_down(c->p);
    free(c);
}

/* A durable write that will not be sent because the proxy is stopping: the record says so. */
static void refuse_stopping(pipeline *p, uint64_t seq, bool to_gen1)
{
    /* httpc may be gone: the write is not sent, and the record says so. */
    (void)end_state(p, seq, to_gen1, JFMT_S_PRIMARY_REFUSED, 0, "not sent to the primary: the proxy is stopping");
}

/*
 * Continue the writes the fence freed, on this thread: each goes to the front's callback (which sends
 * it to Gen1), or, once the proxy is stopping, is refused and ends its own place at once. Whoever ends
 * a write calls this, so a waiting write never needs a thread of its own.
 */
static void order_drain(pipeline *p)
{
    for (;;) {
        uint64_t seq = 0;
        pthread_mutex_lock(&p->omu);
        pipe_actx *c = ord_next_released(p->ord, &seq);
        if (c) metrics_gauge_add(p->m_owaiting, -1);
        pthread_mutex_unlock(&p->omu);
        if (!c) return;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double waited = (double)(now.tv_sec - c->t_wait.tv_sec) + (double)(now.tv_nsec - c->t_wait.tv_nsec) / 1e9;
        metrics_observe(p->m_owait_s, waited);
        pthread_mutex_lock(&p->mu);
        bool stopped = p->stopped;
        if (stopped) (void)degraded_take_locked(p, seq);
        pthread_mutex_unlock(&p->mu);
        int err = 0;
        if (stopped) {
            refuse_stopping(p, seq, c->to_gen1);
            pthread_mutex_lock(&p->omu);
            (void)ord_done(p->ord, seq); /* what it frees, this loop takes next */
            pthread_mutex_unlock(&p->omu);
            err = -ESHUTDOWN;
        }
        LOGD("msg=\"write released by the per-path order\" seq=%" PRIu64 " rid=%s waited_s=%.6f%s", seq, c->rid,
             waited, stopped ? " sent=false reason=stopping" : "");
        c->cb(c->ud, seq, err);
        accept_settle(c);
    }
}

/* Write seq ended at Gen1, or will never reach it: the writes behind it may go. */
static void order_end(pipeline *p, uint64_t seq)
{
    pthread_mutex_lock(&p->omu);
    unsigned freed = ord_done(p->ord, seq);
    pthread_mutex_unlock(&p->omu);
    if (freed) order_drain(p);
}

/* Journal commit thread: the record is durable (or not). Tell the front, unless we are stopping or an
 * earlier write of the same path is still in flight at Gen1 (then order_drain tells it later). */
static void accept_durable(void *ud, uint64_t seq, int err)
{
    pipe_actx *c = ud;
    pipeline *p = c->p;
    c->seq = seq;
    bool stopped = atomic_load(&p->stopped);
    if (err == 0 && !stopped && c->degraded) { /* mu only for a write over the spool cap */
        pthread_mutex_lock(&p->mu);
        if (degraded_add_locked(p, seq) != 0)
            LOGW("msg=\"out of memory: a write over the spool cap is replayed instead of resynced\" seq=%" PRIu64
                 " rid=%s",
                 seq, c->rid);
        pthread_mutex_unlock(&p->mu);
    }
    if (err == 0 && !stopped) {
        uint64_t waits_for = 0;
        char rid[sizeof c->rid];
        pthread_mutex_lock(&p->omu);
        bool go = ord_ready(p->ord, seq, &waits_for);
        if (!go) {
            /* set (and read) before omu is released: the write may be freed on another thread right after */
            clock_gettime(CLOCK_MONOTONIC, &c->t_wait);
            metrics_inc(p->m_owaits);
            metrics_gauge_add(p->m_owaiting, 1);
            memcpy(rid, c->rid, sizeof rid);
        }
        pthread_mutex_unlock(&p->omu);
        if (!go) {
            LOGD("msg=\"write waits for an earlier write of the same path\" seq=%" PRIu64 " rid=%s waits_for=%" PRIu64,
                 seq, rid, waits_for);
            return;
        }
    } else {
        if (err == 0) {
            refuse_stopping(p, seq, c->to_gen1);
            err = -ESHUTDOWN;
        } else {
            /* the journal recorded the refusal itself (journal.h, jnl_append) */
            owed_down(p, c->to_gen1);
            LOGW("msg=\"journal commit failed: write refused\" seq=%" PRIu64 " rid=%s err=\"%s\"", seq, c->rid,
                 strerror(-err));
        }
        order_end(p, seq); /* never sent: nothing behind it waits for it */
    }
    c->cb(c->ud, seq, err);
    accept_settle(c);
}

/* MSCONCAT's body (its source list, for the fence), up to PIPE_CONCAT_BODY_MAX bytes. NULL when there
 * is none or it cannot be read: the fence then covers the target alone (Gen1 judges the body). */
static char *concat_body(const spool_body *b, size_t *len)
{
    if (!b || b->len == 0) return NULL;
    size_t n = b->len > PIPE_CONCAT_BODY_MAX ? PIPE_CONCAT_BODY_MAX : (size_t)b->len;
    char *buf = malloc(n + 1);
    if (!buf) return NULL;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(b->fd, buf + got, n - got, (off_t)(b->off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return NULL;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Query parameters that carry a writer's credential: never journaled (pipe_accept). */
static bool credential_param(const char *name)
{
    return strcmp(name, "delegation") == 0 || strcmp(name, "token") == 0;
}

int pipe_accept(pipeline *p, cfg_phase phase, const whreq *wr, const char *request_id, spool_body *body,
                bool degraded, pipe_durable_cb durable, void *ud, uint64_t *seq)
{
    /* The side the record is for follows the phase the write was admitted in: the secondary's. */
    if (phase != CFG_PHASE_GEN1_PRIMARY && phase != CFG_PHASE_GEN2_PRIMARY) return -EINVAL;
    bool to_gen1 = phase == CFG_PHASE_GEN2_PRIMARY;
    if (to_gen1 && !p->has_mirror) return -ENOTSUP;
    /* What goes to disk: the writer's parameters but its credentials, plus the request id (left out
     * only when the writer filled the journal's parameter list: the record matters more than its id). */
    whreq_param kept[JFMT_MAX_PARAMS];
    int nkept = 0;
    for (int i = 0; i < wr->nparams; i++) {
        if (credential_param(wr->params[i].name)) continue;
        /* the proxy's own parameters (PIPE_PARAM_TO, MIRROR_PARAM_*, APPLY_RESYNC_NODE_ONLY) are never a
         * writer's: one sent by a writer is not journaled */
        if (strncmp(wr->params[i].name, "dualpipe.", 9) == 0) continue;
        if (nkept == JFMT_MAX_PARAMS) return -EINVAL;
        kept[nkept++] = wr->params[i];
    }
    /* Which side the record is for, kept with it: a restart, a phase switch or a retry applies it there. */
    if (to_gen1) {
        if (nkept == JFMT_MAX_PARAMS) return -EINVAL;
        kept[nkept++] = (whreq_param){.name = (char *)PIPE_PARAM_TO, .value = (char *)PIPE_TO_GEN1};
    }
    if (request_id && rid_valid(request_id) && nkept < JFMT_MAX_PARAMS)
        kept[nkept++] = (whreq_param){.name = (char *)JFMT_KEY_REQUEST_ID, .value = (char *)request_id};
    uint16_t jop = jfmt_op_from_whreq(wr->op);
    if (jop == JFMT_OP_NONE || !durable) return -EINVAL;
    pipe_actx *c = malloc(sizeof *c);
    if (!c) return -EIO;
    *c = (pipe_actx){.p = p, .cb = durable, .ud = ud, .degraded = degraded, .to_gen1 = to_gen1};
    snprintf(c->rid, sizeof c->rid, "%s", request_id && rid_valid(request_id) ? request_id : "-");
    atomic_fetch_add(&p->outstanding, 1); /* before stopped is read (see outstanding) */
    if (atomic_load(&p->stopped)) {
        outstanding_down(p);
        free(c);
        return -ESHUTDOWN;
    }
    size_t cblen = 0;
    char *cbody = wr->op == WH_OP_MSCONCAT ? concat_body(body, &cblen) : NULL;
    jnl_write_in in = {.jop = jop, .path = wr->path, .params = kept, .nparams = nkept, .body = body};
    /* Registered in the fence and given its seq in one critical section: fence order = seq order. */
    pthread_mutex_lock(&p->omu);
    ord_write *ow = NULL;
    int rc = ord_add(p->ord, wr, cbody, cblen, c, &ow);
    if (rc == 0) {
        owed_up(p, to_gen1); /* before: its end may come before jnl_append returns */
        rc = jnl_append(p->j, &in, accept_durable, c, seq);
        if (rc == 0) ord_bind(p->ord, ow, *seq);
        else {
            owed_down(p, to_gen1);
            ord_cancel(p->ord, ow);
        }
    }
    pthread_mutex_unlock(&p->omu);
    free(cbody);
    if (rc != 0) {
        outstanding_down(p);
        free(c);
        if (rc != -EINVAL && rc != -ESHUTDOWN) rc = -EIO;
    }
    return rc;
}

/* Journal commit thread: a degraded write's RESYNC mark is durable; the body is gone, copy from Gen1. */
static void degrade_durable(void *ud, uint64_t seq, int err)
{
    pipe_dctx *c = ud;
    if (err == 0) (void)feed_seq(c->p, seq, c->authorization, 0, NULL, NULL, NULL);
    else LOGW("msg=\"resync mark of a degraded write not durable\" seq=%" PRIu64 " err=\"%s\"", seq, strerror(-err));
    free(c->authorization);
    free(c);
}

/* The answer Gen1 gives a write it applied (what the applier's replay expects of it, too). */
static int applied_status(whreq_op op, const char **body)
{
    *body = NULL;
    if (op == WH_OP_MKDIRS || op == WH_OP_RENAME || op == WH_OP_DELETE) *body = "{\"boolean\":true}";
    return op == WH_OP_CREATE ? 201 : 200;
}

/* A settle ended (settle thread or httpc thread): journal what it found, hand the record on, release
 * the path, answer the writer. The record stayed ACCEPTED while it was settled (busy for resync gates,
 * and resynced by recovery after a crash). */
static void settle_done(void *ud, stl_verdict v)
{
    pipe_sctx *c = ud;
    pipeline *p = c->p;
    uint64_t seq = c->seq;
    metrics_inc(p->m_settled[v]);
    LOGW("msg=\"lost Gen1 answer settled\" seq=%" PRIu64 " op=%s verdict=%s", seq,
         whreq_opinfo_get(c->op) ? whreq_opinfo_get(c->op)->name : "?", stl_verdict_name(v));
    int rc = 0;
    if (v == STL_NOT_APPLIED) {
        rc = end_state(p, seq, seq_to_gen1(p, seq), JFMT_S_PRIMARY_REFUSED, 0,
                       "answer lost; the primary was asked after the settle time: not applied");
    } else if (v == STL_APPLIED && !c->degraded && c->op != WH_OP_CREATE) {
        const char *body;
        int status = applied_status(c->op, &body);
        rc = jnl_state(p->j, seq, JFMT_S_PRIMARY_OK, status, "answer lost; the primary was asked: applied", NULL,
                       NULL);
        if (rc == 0) (void)feed_seq(p, seq, c->authorization, status, body, NULL, NULL);
    } else {
        /* Unknown: copy the path from Gen1. Also an applied CREATE (judged by its length, which a file
         * that was already there may share: Gen2 gets what Gen1 holds, not the body) and an applied write
         * over the spool cap (its body may be gone). */
        rc = jnl_state(p->j, seq, JFMT_S_PRIMARY_UNKNOWN, 0,
                       v == STL_UNKNOWN ? "answer lost; the primary's state does not tell: resync"
                                        : "answer lost; applied: resync from the primary",
                       NULL, NULL);
        if (rc == 0) (void)feed_seq(p, seq, c->authorization, 0, NULL, NULL, NULL);
    }
    if (rc != 0) LOGW("msg=\"cannot journal a settled outcome\" seq=%" PRIu64 " err=\"%s\"", seq, strerror(-rc));
    order_end(p, seq);
    c->settled(c->ud, v);
    free(c->authorization);
    free(c);
}

/* An unknown outcome: settle it by asking Gen1 (settle.h). true when settle_done will run. */
static bool settle_begin(pipeline *p, uint64_t seq, const pipe_primary_result *res, bool degraded, void *ud)
{
    if (!res->wr || !res->settled || !p->settle) return false;
    pipe_sctx *c = calloc(1, sizeof *c);
    if (!c) return false;
    *c = (pipe_sctx){.p = p, .seq = seq, .op = res->wr->op, .degraded = degraded, .settled = res->settled,
                     .ud = ud};
    if (res->authorization && !(c->authorization = strdup(res->authorization))) {
        free(c);
        return false;
    }
    LOGW("msg=\"Gen1's answer was lost after the write went out: settling by asking Gen1\" seq=%" PRIu64
         " op=%s path=\"%s\" settle_ms=%u",
         seq, res->wr->info->name, res->wr->path, p->cfg->gen1_settle_ms);
    if (stl_start(p->settle, res->wr, res->body_len, res->authorization, settle_done, c) == 0) return true;
    free(c->authorization);
    free(c);
    return false;
}

/* pipe_primary without the fence: journal Gen1's answer and hand the write on. */
static int primary_record(pipeline *p, uint64_t seq, const pipe_primary_result *res, void (*acked)(void *ud),
                          void *ud)
{
    /* A degraded write was listed (accept_durable) before it was sent, so a count of 0 read here means
     * this one is not listed. */
    bool degraded = false;
    if (atomic_load(&p->ndegraded_any) > 0) {
        pthread_mutex_lock(&p->mu);
        degraded = degraded_take_locked(p, seq);
        pthread_mutex_unlock(&p->mu);
    }
    int rc;
    if (res->kind == PIPE_P_REFUSED || (res->kind == PIPE_P_OK && res->changed_nothing)) {
        rc = end_state(p, seq, seq_to_gen1(p, seq), JFMT_S_PRIMARY_REFUSED, res->status,
                       res->changed_nothing ? "the primary answered false: nothing changed"
                       : res->status ? "refused by the primary"
                                     : "not sent: the primary was unreachable or the proxy could not send");
        if (rc != 0) LOGW("msg=\"cannot journal a refusal\" seq=%" PRIu64 " err=\"%s\"", seq, strerror(-rc));
        return 1;
    }
    if (res->kind == PIPE_P_UNKNOWN && settle_begin(p, seq, res, degraded, ud)) return 0;
    if (res->kind == PIPE_P_UNKNOWN) {
        rc = jnl_state(p->j, seq, JFMT_S_PRIMARY_UNKNOWN, 0, "no answer from the primary", NULL, NULL);
        if (rc != 0) LOGW("msg=\"cannot journal an unknown outcome\" seq=%" PRIu64 " err=\"%s\"", seq, strerror(-rc));
        (void)feed_seq(p, seq, res->authorization, 0, NULL, NULL, NULL);
        return 1;
    }
    if (degraded) {
        /* The writer is answered at once even with ack "both": what Gen2 gets is a later copy. */
        pipe_dctx *c = calloc(1, sizeof *c);
        if (c) {
            c->p = p;
            c->authorization = res->authorization ? strdup(res->authorization) : NULL;
            rc = jnl_state(p->j, seq, JFMT_S_RESYNC, res->status, "spool over its cap: resync from the primary",
                           degrade_durable, c);
            if (rc == 0) {
                metrics_inc(p->m_degraded);
                return 1;
            }
            free(c->authorization);
            free(c);
            LOGW("msg=\"cannot mark a degraded write for resync; replaying it\" seq=%" PRIu64 " err=\"%s\"", seq,
                 strerror(-rc));
        }
    }
    /* Gen2 primary: where an APPEND landed on Gen2 goes into the state's detail, so that the mirror's
     * replay (also after a restart) writes it at the same offset of Gen1 (add_primary_params). */
    char detail[64];
    bool with = res->has_offset || res->has_mtime;
    if (res->has_offset) snprintf(detail, sizeof detail, "%s %s=%" PRIu64, PIPE_DETAIL_LANDED, MIRROR_PARAM_OFFSET,
                                  res->offset);
    else if (res->has_mtime)
        snprintf(detail, sizeof detail, "%s %s=%" PRIu64, PIPE_DETAIL_LANDED, MIRROR_PARAM_MTIME, res->mtime_ms);
    rc = jnl_state(p->j, seq, JFMT_S_PRIMARY_OK, res->status, with ? detail : NULL, NULL, NULL);
    if (rc != 0) LOGW("msg=\"cannot journal the primary's answer\" seq=%" PRIu64 " err=\"%s\"", seq, strerror(-rc));
    /* ack "both" waits for the secondary's first attempt for a record to Gen2 only: with Gen2 primary the
     * writer has its answer from Gen2 and Gen1 follows (for rollback) */
    bool both = p->cfg->ack == CFG_ACK_BOTH && acked && !seq_to_gen1(p, seq);
    rc = feed_seq(p, seq, res->authorization, res->status, res->gen1_body, both ? acked : NULL, ud);
    return both && rc == 0 ? 0 : 1;
}

int pipe_primary(pipeline *p, uint64_t seq, const pipe_primary_result *res, void (*acked)(void *ud), void *ud)
{
    int rc = primary_record(p, seq, res, acked, ud);
    /* Gen1 answered (or the write never reached it): the next write of the path may go. After the
     * record, so the journal holds this answer first. A write being settled keeps its place until
     * settle_done. */
    if (!(res->kind == PIPE_P_UNKNOWN && rc == 0)) order_end(p, seq);
    return rc;
}

/* ---- operator commands ---- */

/* JSON string (escaped) appended to out. */
static int json_str(dbuf *out, const char *s)
{
    int rc = dbuf_adds(out, "\"");
    for (const unsigned char *c = (const unsigned char *)s; rc == 0 && *c; c++) {
        if (*c == '"' || *c == '\\') rc = dbuf_printf(out, "\\%c", *c);
        else if (*c < 0x20) rc = dbuf_printf(out, "\\u%04x", *c);
        else rc = dbuf_add(out, c, 1);
    }
    return rc == 0 ? dbuf_adds(out, "\"") : rc;
}

int pipe_status_json(pipeline *p, dbuf *out)
{
    spool_stats ss;
    spool_get_stats(p->sp, &ss);
    const jnl_recovery *r = &p->rec;
    int rc = dbuf_adds(out, "{\"journal\":");
    if (rc == 0) rc = jnl_status_json(p->j, out);
    if (rc == 0)
        rc = dbuf_printf(out,
                         ",\"spool\":{\"used_bytes\":%" PRIu64 ",\"held_bytes\":%" PRIu64 ",\"max_bytes\":%" PRIu64
                         ",\"live_bodies\":%" PRIu64
                         ",\"segments\":%" PRIu64 ",\"segments_deleted\":%" PRIu64 ",\"policy\":\"%s\""
                         ",\"degraded\":%" PRIu64 ",\"rejected\":%" PRIu64 "},\"ack\":\"%s\",\"applier\":",
                         ss.used_bytes, ss.held_bytes, ss.max_bytes, ss.live_bodies, ss.segments, ss.segments_deleted,
                         atomic_load(&p->spool_policy) == CFG_SPOOL_REJECT ? "reject" : "degrade",
                         metrics_counter_value(p->m_degraded), metrics_counter_value(p->m_rejected),
                         p->cfg->ack == CFG_ACK_BOTH ? "both" : "durable");
    if (rc == 0) {
        pthread_mutex_lock(&p->mu);
        if (p->ap_gone) rc = dbuf_adds(out, "null");
        else rc = applier_status_json(p->ap, out);
        pthread_mutex_unlock(&p->mu);
    }
    if (rc == 0)
        rc = dbuf_printf(out, ",\"phase\":\"%s\",\"owed\":{\"gen1\":%" PRIu64 ",\"gen2\":%" PRIu64 "}",
                         cfg_phase_name(pipe_phase(p)), pipe_owed(p, true), pipe_owed(p, false));
    if (rc == 0) {
        /* the mirror's counts whenever it exists (Gen1 configured), whichever side is primary */
        size_t mark = out->len;
        rc = dbuf_adds(out, ",\"mirror\":");
        int mrc = rc == 0 ? pipe_mirror_status_json(p, out) : rc;
        if (mrc == 1) {
            out->len = mark;
            out->data[mark] = '\0';
        }
        rc = mrc == 1 ? 0 : mrc;
    }
    if (rc == 0) rc = dbuf_adds(out, ",\"io_backend\":");
    if (rc == 0) rc = json_str(out, iox_backend_name(iox_in_use(p->io)));
    if (rc == 0) rc = dbuf_adds(out, ",\"io_fallback_reason\":");
    if (rc == 0) rc = json_str(out, iox_reason(p->io));
    double rate = r->scan_seconds > 0 ? (double)r->records / r->scan_seconds : 0;
    if (rc == 0)
        rc = dbuf_printf(out,
                         ",\"recovery\":{\"segments\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"records\":%" PRIu64
                         ",\"live\":%" PRIu64 ",\"unknown_outcome\":%" PRIu64 ",\"bodies_lost\":%" PRIu64
                         ",\"torn\":%" PRIu64 ",\"torn_bytes\":%" PRIu64 ",\"corrupt\":%" PRIu64
                         ",\"orphan_states\":%" PRIu64 ",\"scan_seconds\":%.6f,\"seconds\":%.6f"
                         ",\"records_per_s\":%.0f,\"resubmitted\":%" PRIu64 ",\"parked\":%" PRIu64 ",\"problem\":",
                         r->segments, r->bytes, r->records, r->live, r->unknown_outcome, r->bodies_lost, r->torn,
                         r->torn_bytes, r->corrupt, r->orphan_states, r->scan_seconds, r->seconds, rate,
                         p->rec_resubmitted, p->rec_parked);
    if (rc == 0) rc = json_str(out, r->problem);
    if (rc == 0) rc = dbuf_adds(out, "}}\n");
    return rc;
}

int pipe_order_json(pipeline *p, dbuf *out)
{
    ord_stats st;
    pthread_mutex_lock(&p->omu);
    ord_get_stats(p->ord, &st);
    pthread_mutex_unlock(&p->omu);
    double sum = 0;
    if (p->m_owait_s) {
        uint64_t bits = atomic_load_explicit(&p->m_owait_s->sum_bits, memory_order_relaxed);
        memcpy(&sum, &bits, sizeof sum);
    }
    return dbuf_printf(out,
                       "{\"waits_total\":%" PRIu64 ",\"waiting\":%" PRIu64 ",\"wait_seconds_sum\":%.6f"
                       ",\"writes_in_flight\":%" PRIu64 ",\"paths_held\":%" PRIu64 ",\"settling\":%u}",
                       metrics_counter_value(p->m_owaits), st.waiting, sum, st.writes, st.paths,
                       p->settle ? stl_pending(p->settle) : 0u);
}

int pipe_list_json(pipeline *p, bool parked_only, uint64_t after, unsigned limit, dbuf *out)
{
    return pipe_jnl_list_json(p->j, parked_only, after, limit, out);
}

int pipe_jnl_list_json(journal *j, bool parked_only, uint64_t after, unsigned limit, dbuf *out)
{
    /* The journal's page, each record given its side: one look-up per listed record (a page is bounded). */
    dbuf page;
    dbuf_init(&page, out->max ? out->max : SIZE_MAX);
    int rc = jnl_list_json(j, parked_only, after, limit, &page);
    json_t *doc = rc == 0 ? json_loadb(page.data ? page.data : "", page.len, 0, NULL) : NULL;
    dbuf_free(&page);
    if (rc != 0) return rc;
    json_t *recs = doc ? json_object_get(doc, "records") : NULL;
    if (!json_is_array(recs)) {
        json_decref(doc);
        return -EINVAL;
    }
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        json_t *sq = json_object_get(r, "seq");
        bool g1 = false;
        if (json_is_integer(sq)) (void)jnl_with_entry(j, (uint64_t)json_integer_value(sq), dir_one, &g1);
        if (json_object_set_new(r, "to", json_string(g1 ? PIPE_TO_GEN1 : "gen2")) != 0) rc = -ENOMEM;
    }
    char *text = rc == 0 ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (rc == 0 && !text) rc = -ENOMEM;
    if (rc == 0) rc = dbuf_adds(out, text);
    free(text);
    return rc;
}

typedef struct seq_list {
    uint64_t want;     /* 0: every parked entry */
    const char *has;   /* with want 0: only entries whose detail holds this, or NULL */
    uint64_t *v;
    size_t n, cap;
    bool found, oom;   /* found: want is live (parked or not) */
} seq_list;

static void collect_parked(void *ud, const jnl_entry *e)
{
    seq_list *l = ud;
    if (l->want && e->seq != l->want) return;
    if (l->want) l->found = true;
    if (e->state != JFMT_S_PARKED) return;
    if (l->has && (!e->detail || !strstr(e->detail, l->has))) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) {
            l->oom = true;
            return;
        }
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = e->seq;
}

int pipe_retry(pipeline *p, uint64_t seq, unsigned *n)
{
    seq_list l = {.want = seq};
    *n = 0;
    int rc = 0;
    if (seq) {
        /* one entry: look it up directly rather than walking the index */
        pipe_ent e;
        memset(&e, 0, sizeof e);
        if (jnl_with_entry(p->j, seq, copy_one, &e) != 0) return -ENOENT;
        uint16_t st = e.state;
        ent_clear(&e);
        if (st != JFMT_S_PARKED) return -EBUSY;
        l.v = malloc(sizeof *l.v);
        if (!l.v) return -ENOMEM;
        l.v[l.n++] = seq;
    } else {
        jnl_foreach(p->j, collect_parked, &l);
        if (l.oom) {
            free(l.v);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        int src = jnl_state(p->j, l.v[i], JFMT_S_RESYNC, 0, "retried by an operator", resync_durable, p);
        if (src == 0) (*n)++;
        else if (src != -ENOENT) rc = src;
    }
    free(l.v);
    if (seq && *n == 0 && rc == 0) rc = -ENOENT;
    return rc;
}

/* The identity map changed: resync the records parked because their metadata waited for it. */
static void retry_owed(void *ud)
{
    pipeline *p = ud;
    seq_list l = {.has = APPLY_IDS_OWED};
    jnl_foreach(p->j, collect_parked, &l);
    unsigned n = 0;
    for (size_t i = 0; i < l.n; i++)
        if (jnl_state(p->j, l.v[i], JFMT_S_RESYNC, 0, "identity map changed", resync_durable, p) == 0) n++;
    if (l.n || l.oom)
        LOGI("msg=\"identity map changed: records owing metadata resynced\" records=%u%s", n,
             l.oom ? " (out of memory: the rest wait for journal retry)" : "");
    free(l.v);
}

int pipe_drop(pipeline *p, uint64_t seq, bool *to_gen1)
{
    pipe_ent e;
    memset(&e, 0, sizeof e);
    if (jnl_with_entry(p->j, seq, copy_one, &e) != 0) return -ENOENT;
    uint16_t st = e.state;
    ent_clear(&e);
    if (st != JFMT_S_PARKED) return -EBUSY;
    bool g1 = seq_to_gen1(p, seq);
    if (to_gen1) *to_gen1 = g1;
    return end_state(p, seq, g1, JFMT_S_DROPPED, 0, "dropped by an operator");
}

int pipe_resync(pipeline *p, const char *path, uint64_t *seq)
{
    return pipe_resync_node(p, path, false, seq);
}

int pipe_resync_node(pipeline *p, const char *path, bool node_only, uint64_t *seq)
{
    if (!path || path[0] != '/') return -EINVAL;
    pthread_mutex_lock(&p->mu);
    bool stopped = p->stopped;
    pthread_mutex_unlock(&p->mu);
    if (stopped) return -ESHUTDOWN;
    whreq_param prm[2];
    int np = 0;
    /* the current phase's direction: Gen2 -> Gen1 in gen2-primary (pipe_set_phase checked the mirror) */
    bool to_gen1 = pipe_to_gen1(p) && p->has_mirror;
    if (node_only) prm[np++] = (whreq_param){.name = APPLY_RESYNC_NODE_ONLY, .value = "1"};
    if (to_gen1) prm[np++] = (whreq_param){.name = (char *)PIPE_PARAM_TO, .value = (char *)PIPE_TO_GEN1};
    jnl_write_in in = {.jop = JFMT_OP_RESYNC, .path = path, .params = np ? prm : NULL, .nparams = np};
    owed_up(p, to_gen1);
    int rc = jnl_append(p->j, &in, to_gen1 ? resync_rec_durable_g1 : resync_rec_durable_g2, p, seq);
    if (rc != 0) {
        owed_down(p, to_gen1);
        return rc;
    }
    /* A RESYNC record waits for no primary answer: state RESYNC at once, so that the resync gate does
     * not see it as busy (if the state is lost in a crash, recovery sets it again). */
    int src = jnl_state(p->j, *seq, JFMT_S_RESYNC, 0, "resync requested by an operator", NULL, NULL);
    if (src != 0 && src != -ENOENT)
        LOGW("msg=\"cannot journal a resync's state\" seq=%" PRIu64 " err=\"%s\"", *seq, strerror(-src));
    return 0;
}

applier *pipe_applier(pipeline *p) { return p->ap; }

int pipe_set_phase(pipeline *p, cfg_phase ph)
{
    if (ph != CFG_PHASE_GEN1_PRIMARY && ph != CFG_PHASE_GEN2_PRIMARY && ph != CFG_PHASE_GEN2_ONLY) return -EINVAL;
    if (ph == CFG_PHASE_GEN2_PRIMARY && !p->has_mirror) return -ENOTSUP;
    int old = atomic_exchange(&p->phase, (int)ph);
    if (old != (int)ph) {
        /* Gen2's files changed without the applier while another phase ran, or will: no digest state or
         * length it kept from before may be used for a later APPEND */
        applier_forget_gen2_state(p->ap);
        LOGI("msg=\"pipeline phase\" from=%s to=%s operator_resyncs_to=%s", cfg_phase_name((cfg_phase)old),
             cfg_phase_name(ph), ph == CFG_PHASE_GEN2_PRIMARY ? "gen1" : "gen2");
    }
    return 0;
}

cfg_phase pipe_phase(const pipeline *p) { return (cfg_phase)atomic_load(&((pipeline *)p)->phase); }

bool pipe_to_gen1(const pipeline *p) { return pipe_phase(p) == CFG_PHASE_GEN2_PRIMARY; }

uint64_t pipe_owed(pipeline *p, bool to_gen1) { return atomic_load(&p->owed[to_gen1 ? 1 : 0]); }

int pipe_mirror_status_json(pipeline *p, dbuf *out)
{
    pthread_mutex_lock(&p->mu);
    int rc = !p->has_mirror ? 1 : p->ap_gone || !p->mr ? dbuf_adds(out, "null") : mirror_status_json(p->mr, out);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

journal *pipe_journal(pipeline *p) { return p->j; }

/* ---- stop ---- */

/* Stop the feeder: what waits in it stays in the journal for the next start; writers waiting on such
 * records (ack "both") are answered now, as at any stop. */
static void stop_feeder(pipeline *p)
{
    pthread_mutex_lock(&p->fmu);
    p->fquit = true;
    pthread_cond_signal(&p->fcv);
    pipe_wait *w = p->waits;
    size_t n = p->nwaits;
    p->waits = NULL;
    p->nwaits = p->capwaits = 0;
    pthread_mutex_unlock(&p->fmu);
    if (p->fthread_started) {
        pthread_join(p->fthread, NULL);
        p->fthread_started = false;
    }
    for (size_t i = 0; i < n; i++) {
        w[i].acked(w[i].ud);
        free(w[i].authorization);
    }
    free(w);
}

void pipe_stop(pipeline *p, unsigned drain_ms)
{
    if (!p) return;
    atomic_store(&p->fstop, true);
    pthread_mutex_lock(&p->mu);
    p->stopped = true;
    pthread_mutex_unlock(&p->mu);
    /* Writes being settled end as unknown now (their records are resynced at the next start); the
     * writes they held are then released and refused as stopping, which settles their accepts. */
    stl_stop(p->settle);
    pthread_mutex_lock(&p->mu);
    bool already = p->ap_gone;
    /* Every accepted record's callback must have reached the front before its connections go. */
    time_t last_log = time(NULL);
    while (atomic_load(&p->outstanding) > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&p->cond, &p->mu, &ts);
        unsigned left = atomic_load(&p->outstanding);
        if (left > 0 && time(NULL) - last_log >= PIPE_STOP_LOG_S) {
            last_log = time(NULL);
            LOGW("msg=\"waiting for the journal to settle accepted writes\" outstanding=%u", left);
        }
    }
    p->ap_gone = true;
    pthread_mutex_unlock(&p->mu);
    /* Reloads run on the thread that stops us, never during this call: no hook is running now. */
    rl_unregister(pipe_reload, p);
    stop_feeder(p);
    /* Both engines drain at once: the applier goes on while mirror_stop waits, and gets what is left
     * of drain_ms after it. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!already && p->mr) {
        uint64_t left = mirror_pending(p->mr);
        if (left) LOGI("msg=\"draining the mirror to Gen1\" pending=%" PRIu64 " drain_ms=%u", left, drain_ms);
        mirror_stop(p->mr, drain_ms);
        pthread_mutex_lock(&p->mu);
        p->mr = NULL;
        pthread_mutex_unlock(&p->mu);
    }
    if (p->mr_g2) gen2c_stop(p->mr_g2);
    if (already || !p->ap) return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t spent = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    unsigned rest = spent >= (int64_t)drain_ms ? 0u : drain_ms - (unsigned)spent;
    uint64_t left = applier_pending(p->ap);
    if (left) LOGI("msg=\"draining the applier to Gen2\" pending=%" PRIu64 " drain_ms=%u", left, rest);
    applier_stop(p->ap, rest);
    /* applier_stop freed it (or the last in-flight operation will, during httpc_stop) */
    p->ap = NULL;
    jnl_stats st;
    jnl_get_stats(p->j, &st);
    if (st.pending || st.awaiting_primary)
        LOGI("msg=\"records left in the journal for the next start\" pending=%" PRIu64 " awaiting_primary=%" PRIu64
             " parked=%" PRIu64,
             st.pending, st.awaiting_primary, st.parked);
}

void pipe_free(pipeline *p)
{
    if (!p) return;
    atomic_store(&p->fstop, true);
    stop_feeder(p);
    stl_free(p->settle); /* the httpc engines stopped: no check is out */
    gen2c_free(p->mr_g2);
    idm_watch_free(p->mr_ids);
    p->settle = NULL;
    /* Normally pipe_stop ran (and the applier is gone); closing the journal commits what is queued. */
    jnl_close(p->j);
    spool_close(p->sp);
    iox_free(p->io);
    free(p->degraded);
    ord_free(p->ord);
    pthread_mutex_destroy(&p->omu);
    if (p->fstash) ent_clear(p->fstash);
    free(p->fstash);
    feed_free(p->fd);
    for (size_t i = 0; i < p->nwaits; i++) free(p->waits[i].authorization);
    free(p->waits);
    free(p->maybe_sent);
    free(p->in_doubt);
    pthread_cond_destroy(&p->fcv);
    pthread_mutex_destroy(&p->fmu);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
