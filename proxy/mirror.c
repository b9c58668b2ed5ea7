/*
 * mirror: replays the writes the primary (Gen2) accepted onto Gen1 (see mirror.h). mirror_submit only
 * queues; `concurrency` worker threads each take the first operation that no earlier unfinished one
 * blocks (relset over the paths of those before it), run it to its end with blocking exchanges
 * (mirror_ops.c; a failure becomes a resync, mirror_resync.c), report it and take the next. Retries
 * back off inside the worker; the breakers hold every worker's sends while open and let one probe
 * through per breaker_probe_ms.
 *
 * This file holds the queue, the workers, the ordering, sending with retries and breakers, outcomes,
 * covers, metrics, the status and the public API.
 */
#include "mirror_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

static const char *const side_name[2] = {"gen1", "gen2"};

/* ================================================================ helpers */

int64_t mr_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *mr_op_name(whreq_op op)
{
    const whreq_opinfo *i = whreq_opinfo_get(op);
    return i ? i->name : "RESYNC";
}

const char *mr_param(const apply_req *r, const char *lname)
{
    for (int i = 0; i < r->nparams; i++)
        if (r->params[i].name && strcmp(r->params[i].name, lname) == 0) return r->params[i].value;
    return NULL;
}

bool mr_parse_u64(const char *s, uint64_t *out)
{
    if (!s || s[0] < '0' || s[0] > '9') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end) return false;
    *out = v;
    return true;
}

bool mr_param_u64(const apply_req *r, const char *lname, uint64_t *out)
{
    return mr_parse_u64(mr_param(r, lname), out);
}

int mr_list_add(char ***v, int *n, const char *p)
{
    char **nv = realloc(*v, sizeof *nv * (size_t)(*n + 1));
    if (!nv) return -1;
    *v = nv;
    if (!(nv[*n] = strdup(p))) return -1;
    (*n)++;
    return 0;
}

bool mr_under(const char *p, const char *root)
{
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0) return true;
    return strncmp(p, root, n) == 0 && (p[n] == 0 || p[n] == '/');
}

void mr_note(mop *op, const char *fmt, ...)
{
    if (op->note[0]) return; /* the first difference is the one reported */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->note, sizeof op->note, fmt, ap);
    va_end(ap);
}

void mr_why(mop *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->detail, sizeof op->detail, fmt, ap);
    va_end(ap);
}

void mr_resp_free(httpc_resp *r)
{
    if (!r) return;
    httpc_resp_free(r);
    free(r);
}

const char *mr_g1_exception(const httpc_resp *r, char *buf, size_t cap)
{
    buf[0] = 0;
    if (!r || r->result != HTTPC_OK || !r->body.data || !r->body.len) return buf;
    json_t *j = json_loadb(r->body.data, r->body.len, 0, NULL);
    json_t *e = json_object_get(json_object_get(j, "RemoteException"), "exception");
    if (json_is_string(e)) snprintf(buf, cap, "%s", json_string_value(e));
    json_decref(j);
    return buf;
}

void mr_resp_what(int side, const httpc_resp *r, char *buf, size_t cap)
{
    const char *who = side == MR_G1 ? "Gen1" : "Gen2";
    if (!r) {
        snprintf(buf, cap, "%s: no answer", who);
    } else if (r->result != HTTPC_OK) {
        snprintf(buf, cap, "%s unreachable: %s%s%s", who, httpc_result_str(r->result), r->error[0] ? ": " : "",
                 r->error);
    } else {
        char code[128];
        if (side == MR_G1) mr_g1_exception(r, code, sizeof code);
        else gen2c_error_code(r, code, sizeof code);
        snprintf(buf, cap, "%s %ld%s%s", who, r->status, code[0] ? " " : "", code);
    }
}

idm_map *mr_ids_get(mirror *m)
{
    if (!m->o.ids) return NULL;
    idm_err e;
    if (idm_watch_poll(m->o.ids, mr_mono_ms(), false, &e) == IDM_POLL_BROKEN)
        LOGW("msg=\"identity map changed and does not load; the last good map stays\" component=mirror error=\"%s\"",
             e.message);
    return idm_watch_get(m->o.ids);
}

const char *mr_name_back(const idm_map *map, idm_kind kind, const char *id)
{
    const char *n = map && id && *id ? idm_reverse(map, kind, id) : NULL;
    return n ? n : id;
}

/* ================================================================ waiting */

bool mr_abandoned(mirror *m)
{
    pthread_mutex_lock(&m->mu);
    bool a = m->abandon;
    pthread_mutex_unlock(&m->mu);
    return a;
}

static void deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* Sleep ms, or until side's breaker closes (side < 0: no breaker ends it early). */
static bool sleep_side(mirror *m, int64_t ms, int side)
{
    int64_t end = mr_mono_ms() + (ms > 0 ? ms : 0);
    pthread_mutex_lock(&m->mu);
    unsigned closes = side >= 0 ? m->brk[side].closes : 0;
    while (!m->abandon) {
        int64_t left = end - mr_mono_ms();
        if (left <= 0 || (side >= 0 && m->brk[side].closes != closes)) break;
        struct timespec ts;
        deadline(&ts, left);
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    bool ok = !m->abandon;
    pthread_mutex_unlock(&m->mu);
    return ok;
}

bool mr_sleep(mirror *m, int64_t ms)
{
    return sleep_side(m, ms, -1);
}

/* ================================================================ breakers and sending */

/* Wait until side's breaker lets a send through (m->mu held). *probe: this send is the probe. False
 * when the mirror abandoned. */
static bool breaker_pass(mirror *m, int side, bool *probe)
{
    mr_breaker *b = &m->brk[side];
    *probe = false;
    while (!m->abandon && b->open) {
        int64_t now = mr_mono_ms();
        if (!b->probing && now >= b->next_probe_ms) {
            b->probing = true;
            b->next_probe_ms = now + m->o.breaker_probe_ms;
            *probe = true;
            LOGI("msg=\"circuit breaker probe\" component=mirror upstream=%s", side_name[side]);
            return true;
        }
        struct timespec ts;
        int64_t wait = b->probing ? 100 : b->next_probe_ms - now;
        deadline(&ts, wait > 0 ? wait : 1);
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    return !m->abandon;
}

/* Account one answer on side's breaker (m->mu held). */
static void breaker_account(mirror *m, int side, bool probe, bool transient)
{
    mr_breaker *b = &m->brk[side];
    if (probe) b->probing = false;
    if (transient) {
        b->fails++;
        if (!b->open && b->fails >= m->o.breaker_failures) {
            b->open = true;
            b->next_probe_ms = mr_mono_ms() + m->o.breaker_probe_ms;
            LOGW("msg=\"circuit breaker open\" component=mirror upstream=%s failures=%u", side_name[side], b->fails);
        }
    } else {
        b->fails = 0;
        if (b->open) {
            /* The probe went through: every worker backing off toward side sends again now, not when
             * its own backoff (grown through the outage, up to backoff_cap_ms) runs out. */
            b->open = false;
            b->closes++;
            LOGI("msg=\"circuit breaker closed\" component=mirror upstream=%s", side_name[side]);
            pthread_cond_broadcast(&m->cv);
        }
    }
}

static bool is_transient(const httpc_resp *r)
{
    if (r->result == HTTPC_E_TOO_BIG || r->result == HTTPC_E_BODY || r->result == HTTPC_E_NOMEM) return false;
    /* no credential could be had (HTTPC_E_AUTH) is the proxy's problem, not the record's: wait for it */
    return xlate_retryable(r->result != HTTPC_OK, r->status);
}

static httpc_resp *canned(httpc_result res, const char *msg)
{
    httpc_resp *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    dbuf_init(&r->body, 1);
    r->result = res;
    snprintf(r->error, sizeof r->error, "%s", msg);
    return r;
}

httpc_resp *mr_g1_try(mop *op, const mr_g1req *q, bool *transient)
{
    mirror *m = op->m;
    bool probe;
    pthread_mutex_lock(&m->mu);
    bool pass = breaker_pass(m, MR_G1, &probe);
    pthread_mutex_unlock(&m->mu);
    if (!pass) return NULL;
    /* The writer's identity pieces (gen1c_own replaces them with the proxy's when it has one). */
    dbuf qs;
    dbuf_init(&qs, 1 << 20);
    int qr = dbuf_adds(&qs, q->query);
    static const char *const ident[] = {"user.name", "doas", "delegation"};
    for (int i = 0; qr == 0 && i < 3; i++) {
        const char *v = mr_param(op->req, ident[i]);
        if (v) qr = mr_q_add(&qs, ident[i], v);
    }
    if (qr != 0) {
        dbuf_free(&qs);
        *transient = false;
        return canned(HTTPC_E_NOMEM, "out of memory");
    }
    httpc_sync s;
    httpc_sync_init(&s);
    gen1c_own_call c = {.method = q->method, .prefix = q->prefix, .path = q->path, .op_and_params = qs.data,
                        .authorization = op->req->authorization, .content_type = q->ctype,
                        .client_request_id = op->req->request_id[0] ? op->req->request_id : NULL,
                        .out = HTTPC_BODY_MEMORY, .out_max = q->out_max ? q->out_max : MR_JSON_MAX,
                        .once = q->write, .done = httpc_sync_done, .ud = &s};
    if (q->mem) {
        c.in = HTTPC_IN_MEMORY;
        c.in_mem = q->mem;
        c.in_len = q->len;
    } else if (q->len) {
        c.in = HTTPC_IN_FD;
        c.in_fd = q->fd;
        c.in_off = q->off;
        c.in_len = q->len;
    }
    httpc_resp *r;
    bool sent = gen1c_own(m->o.g1, &c) == 0;
    if (!sent) {
        httpc_sync_drop(&s);
        r = canned(HTTPC_E_CANCELLED, "gen1: request not submitted (engine stopping, a bad request or out of memory)");
    } else {
        r = httpc_sync_wait(&s);
    }
    dbuf_free(&qs);
    if (!r) return NULL;
    *transient = sent && is_transient(r);
    pthread_mutex_lock(&m->mu);
    breaker_account(m, MR_G1, probe, *transient);
    pthread_mutex_unlock(&m->mu);
    if (!*transient) op->attempt = 0;
    return r;
}

bool mr_backoff(mop *op, int side, const httpc_resp *r)
{
    mirror *m = op->m;
    int n = op->attempt < 30 ? op->attempt : 30;
    op->attempt++;
    uint64_t cap = (uint64_t)m->o.backoff_base_ms << (n < 20 ? n : 20);
    if (cap > m->o.backoff_cap_ms) cap = m->o.backoff_cap_ms;
    pthread_mutex_lock(&m->mu);
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    uint64_t rnd = m->rng;
    m->n_retries[side]++;
    pthread_mutex_unlock(&m->mu);
    metrics_inc(m->retries[side]);
    int64_t d = (int64_t)(rnd % (cap + 1));
    int64_t ra = -1;
    if (r && r->result == HTTPC_OK) {
        ra = xlate_retry_after_ms(httpc_resp_header(r, "Retry-After"), real_ms());
        if (ra > (int64_t)m->o.backoff_cap_ms) ra = m->o.backoff_cap_ms;
        if (ra > d) d = ra;
    }
    /* While side's breaker is open its probe paces the retries (breaker_pass holds this worker until the
     * probe goes through), not the worker's own backoff: when the probe succeeds every worker sends again
     * at once. A Retry-After delays the next probe instead. (r NULL: a whole resync attempt failed, not a
     * request: its own backoff.) */
    pthread_mutex_lock(&m->mu);
    mr_breaker *b = &m->brk[side];
    if (r && b->open) {
        int64_t now = mr_mono_ms();
        if (ra > 0 && b->next_probe_ms < now + ra) b->next_probe_ms = now + ra;
        d = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return sleep_side(m, d, side);
}

httpc_resp *mr_g1_retry(mop *op, const mr_g1req *q)
{
    for (;;) {
        bool tr = false;
        httpc_resp *r = mr_g1_try(op, q, &tr);
        if (!r || !tr) return r;
        bool go = mr_backoff(op, MR_G1, r);
        mr_resp_free(r);
        if (!go) return NULL;
    }
}

httpc_resp *mr_g2_retry(mop *op, gen2c_call *call)
{
    mirror *m = op->m;
    for (;;) {
        bool probe;
        pthread_mutex_lock(&m->mu);
        bool pass = breaker_pass(m, MR_G2, &probe);
        pthread_mutex_unlock(&m->mu);
        if (!pass) return NULL;
        httpc_sync s;
        httpc_sync_init(&s);
        call->done = httpc_sync_done;
        call->ud = &s;
        if (!call->client_request_id && op->req->request_id[0]) call->client_request_id = op->req->request_id;
        httpc_resp *r;
        bool sent = gen2c_send(m->o.g2, call) == 0;
        if (!sent) {
            httpc_sync_drop(&s);
            r = canned(HTTPC_E_CANCELLED, "gen2: request not submitted (engine stopping or a bad call)");
        } else {
            r = httpc_sync_wait(&s);
        }
        if (!r) return NULL;
        /* An account-level problem (a filesystem that does not exist, a credential or role Gen2 refuses)
         * says nothing about the path: the operation waits behind the breaker until it is fixed. */
        bool tr = sent && (is_transient(r) || gen2c_problem_of(r) != GEN2C_PROB_NONE);
        pthread_mutex_lock(&m->mu);
        breaker_account(m, MR_G2, probe, tr);
        pthread_mutex_unlock(&m->mu);
        if (!tr) {
            op->attempt = 0;
            return r;
        }
        bool go = mr_backoff(op, MR_G2, r);
        mr_resp_free(r);
        if (!go) return NULL;
    }
}

/* ================================================================ covers */

void mr_cover_add(mirror *m, const char *root, uint64_t epoch)
{
    char *dup = strdup(root);
    if (!dup) return; /* covering is an optimisation: later records then replay (idempotently) */
    pthread_mutex_lock(&m->mu);
    if (m->ncovers == MR_COVERS_MAX) {
        free(m->covers[0].root);
        memmove(&m->covers[0], &m->covers[1], sizeof m->covers[0] * (MR_COVERS_MAX - 1));
        m->ncovers--;
    }
    m->covers[m->ncovers].root = dup;
    m->covers[m->ncovers].epoch = epoch;
    m->ncovers++;
    pthread_mutex_unlock(&m->mu);
}

/* A cover that holds op (m->mu held): the root into buf. */
static bool covered(mirror *m, const mop *op, char *buf, size_t cap)
{
    for (int i = m->ncovers - 1; i >= 0; i--) {
        const mr_cover *c = &m->covers[i];
        if (op->req->seq > c->epoch) continue;
        bool all = op->ntouch > 0;
        for (int t = 0; t < op->ntouch && all; t++) all = mr_under(op->touch[t], c->root);
        if (all) {
            snprintf(buf, cap, "%s", c->root);
            return true;
        }
    }
    return false;
}

/* ================================================================ preparation */

/* Which Gen1 paths the operation touches (worker thread). */
static void prepare(mop *op)
{
    const apply_req *q = op->req;
    if (mr_list_add(&op->touch, &op->ntouch, q->path) != 0) goto oom;
    if (q->op == WH_OP_RENAME) {
        whreq_err we;
        const char *d = mr_param(q, "destination");
        if (!d || whreq_norm_path(d, &op->dst, &we) != 0) {
            snprintf(op->prep_err, sizeof op->prep_err, "RENAME without a valid destination");
            return;
        }
        if (mr_list_add(&op->touch, &op->ntouch, op->dst) != 0) goto oom;
    } else if (q->op == WH_OP_CONCAT || q->op == WH_OP_MSCONCAT) {
        if (q->op == WH_OP_MSCONCAT && q->body && q->body->len > 0) {
            size_t blen = q->body->len > MR_CONCAT_BODY_MAX ? MR_CONCAT_BODY_MAX : (size_t)q->body->len;
            op->concat_body = malloc(blen + 1);
            if (!op->concat_body) goto oom;
            size_t got = 0;
            while (got < blen) {
                ssize_t n = pread(q->body->fd, op->concat_body + got, blen - got, (off_t)(q->body->off + got));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    snprintf(op->prep_err, sizeof op->prep_err, "cannot read the MSCONCAT body: %s",
                             n < 0 ? strerror(errno) : "short read");
                    return;
                }
                got += (size_t)n;
            }
            op->concat_body[blen] = 0;
            op->concat_len = blen;
        }
        xlate_err e;
        if (xlate_concat_sources(q->op, mr_param(q, "sources"), op->concat_body, op->concat_len, &op->srcs, &e) != 0) {
            snprintf(op->prep_err, sizeof op->prep_err, "%s", e.message);
            return;
        }
        for (int i = 0; i < op->srcs.n; i++)
            if (mr_list_add(&op->touch, &op->ntouch, op->srcs.v[i]) != 0) goto oom;
    }
    return;
oom:
    snprintf(op->prep_err, sizeof op->prep_err, "out of memory");
}

/* ================================================================ outcomes */

static void op_free(mop *op)
{
    apply_req_free(op->req);
    for (int i = 0; i < op->ntouch; i++) free(op->touch[i]);
    free(op->touch);
    free(op->dst);
    xlate_paths_free(&op->srcs);
    free(op->concat_body);
    free(op);
}

static bool outcome_ok(apply_outcome o)
{
    return o == APPLY_OK || o == APPLY_DIVERGENCE || o == APPLY_RESYNCED || o == APPLY_SKIPPED_UNMAPPED ||
           o == APPLY_SKIPPED_INVALID_NAME;
}

static void log_outcome(const mop *op)
{
    const apply_req *q = op->req;
    const char *rid = q->request_id[0] ? q->request_id : "-";
    switch (op->outcome) {
    case APPLY_OK:
        LOGD("msg=\"mirrored to gen1\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, rid,
             mr_op_name(q->op), q->path, op->detail);
        break;
    case APPLY_DIVERGENCE:
        LOGW("msg=\"gen1 divergence\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, rid,
             mr_op_name(q->op), q->path, op->detail);
        break;
    case APPLY_RESYNCED:
        LOGW("msg=\"resynced gen1 from gen2\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, rid,
             mr_op_name(q->op), q->path, op->detail);
        break;
    case APPLY_PARKED:
        LOGE("msg=\"gen1 mirror parked\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, rid,
             mr_op_name(q->op), q->path, op->detail);
        break;
    default:
        LOGI("msg=\"left for the next start\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, rid,
             mr_op_name(q->op), q->path, op->detail);
        break;
    }
}

static void count_outcome(mop *op)
{
    mirror *m = op->m;
    int o = (int)op->req->op, oc = (int)op->outcome;
    if (!m->mx || o < 0 || o >= WH_OP__COUNT || oc < 0 || oc >= APPLY__COUNT) return;
    metrics_counter *c = atomic_load_explicit(&m->ops[o][oc], memory_order_acquire);
    if (!c) {
        char labels[96];
        snprintf(labels, sizeof labels, "op=\"%s\",outcome=\"%s\"", mr_op_name(op->req->op),
                 apply_outcome_name(op->outcome));
        c = metrics_counter_get(m->mx, "dualpipe_mirror_operations_total",
                                "Writes mirrored back to Gen1 (phase gen2-primary), by op and outcome.", labels);
        atomic_store_explicit(&m->ops[o][oc], c, memory_order_release);
    }
    metrics_inc(c);
    metrics_observe(m->lag, (double)(mr_mono_ms() - op->t0_ms) / 1000.0);
}

/* The operation is over: count, report, unlink, free, let the workers look again. */
static void op_done(mop *op)
{
    mirror *m = op->m;
    if (op->outcome == APPLY_OK && op->note[0]) {
        op->outcome = APPLY_DIVERGENCE;
        size_t n = strlen(op->detail);
        snprintf(op->detail + n, sizeof op->detail - n, "%s%s", n ? "; " : "", op->note);
    }
    log_outcome(op);
    count_outcome(op);
    pthread_mutex_lock(&m->mu);
    switch (op->outcome) {
    case APPLY_OK: m->n_applied++; break;
    case APPLY_DIVERGENCE: m->n_divergence++; break;
    case APPLY_RESYNCED: m->n_resynced++; break;
    case APPLY_PARKED: m->n_parked++; break;
    default: m->n_stopped++; break;
    }
    if (op->outcome == APPLY_DIVERGENCE || op->outcome == APPLY_RESYNCED || op->outcome == APPLY_PARKED) {
        mr_rec *r = &m->ring[m->ring_next];
        r->seq = op->req->seq;
        r->time_ms = real_ms();
        r->op = op->req->op;
        r->outcome = op->outcome;
        snprintf(r->path, sizeof r->path, "%s", op->req->path);
        snprintf(r->detail, sizeof r->detail, "%s", op->detail);
        m->ring_next = (m->ring_next + 1) % MR_RING;
        if (m->ring_n < MR_RING) m->ring_n++;
    }
    pthread_mutex_unlock(&m->mu);
    if (op->req->first && !op->first_done) {
        op->first_done = true;
        op->req->first(op->req->first_ud, outcome_ok(op->outcome));
    }
    if (op->done) {
        apply_result res = {.outcome = op->outcome};
        snprintf(res.detail, sizeof res.detail, "%s", op->detail);
        op->done(op->ud, &res);
    }
    pthread_mutex_lock(&m->mu);
    if (op->prev) op->prev->next = op->next;
    else m->head = op->next;
    if (op->next) op->next->prev = op->prev;
    else m->tail = op->prev;
    if (op->started) m->in_flight--;
    m->pending--;
    if (m->pending == 0) pthread_cond_broadcast(&m->idle);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    op_free(op);
}

/* Run one operation to its end (worker thread, no lock held). */
static void op_run(mop *op)
{
    mirror *m = op->m;
    const apply_req *q = op->req;
    char root[512];
    pthread_mutex_lock(&m->mu);
    bool cov = covered(m, op, root, sizeof root);
    pthread_mutex_unlock(&m->mu);
    if (cov) {
        op->outcome = APPLY_OK;
        mr_why(op, "covered by the resync of %s", root);
    } else if (op->prep_err[0]) {
        char why[300];
        snprintf(why, sizeof why, "%s", op->prep_err);
        mr_resync(op, why);
    } else if (q->resync || q->op == WH_OP_UNKNOWN) {
        mr_resync(op, q->op == WH_OP_UNKNOWN ? "resync requested" : "record marked for resync");
    } else {
        op->outcome = APPLY_OK;
        int rc = mr_apply(op);
        if (rc < 0) {
            op->outcome = APPLY_STOPPED;
            mr_why(op, MR_STOP_MSG);
        } else if (rc > 0) {
            char why[300];
            snprintf(why, sizeof why, "%.299s", op->detail);
            op->note[0] = 0;
            mr_resync(op, why);
        }
    }
    if (op->outcome == APPLY_STOPPED) mr_why(op, MR_STOP_MSG);
    op_done(op);
}

/* ================================================================ workers */

/* The first operation no earlier unfinished one blocks (m->mu held), marked started; or NULL. */
static mop *pick(mirror *m)
{
    rset_clear(&m->sched);
    for (mop *op = m->head; op; op = op->next) {
        bool blocked = op->started;
        for (int i = 0; i < op->ntouch && !blocked; i++) blocked = rset_hits_path(&m->sched, op->touch[i]);
        if (!blocked) {
            op->started = true;
            m->in_flight++;
            return op;
        }
        for (int i = 0; i < op->ntouch; i++)
            if (rset_add_path(&m->sched, op->touch[i]) != 0) return NULL; /* cannot check further: wait */
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    mirror *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        if (m->abandon || m->quit) break;
        mop *op = pick(m);
        if (op) {
            pthread_mutex_unlock(&m->mu);
            op_run(op);
            pthread_mutex_lock(&m->mu);
            continue;
        }
        pthread_cond_wait(&m->cv, &m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ================================================================ public API */

int mirror_new(const mirror_opts *o, mirror **out, char *err, size_t errlen)
{
    if (!o || !o->http || !o->g1 || !o->g2) {
        snprintf(err, errlen, "mirror: http, gen1 and gen2 clients are required");
        return -1;
    }
    mirror *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->o = *o;
    if (!m->o.concurrency) m->o.concurrency = 8;
    if (m->o.concurrency > MR_CONC_MAX) m->o.concurrency = MR_CONC_MAX;
    if (!m->o.backoff_base_ms) m->o.backoff_base_ms = 100;
    if (!m->o.backoff_cap_ms) m->o.backoff_cap_ms = 30000;
    if (m->o.backoff_cap_ms < m->o.backoff_base_ms) m->o.backoff_cap_ms = m->o.backoff_base_ms;
    if (!m->o.breaker_failures) m->o.breaker_failures = 5;
    if (!m->o.breaker_probe_ms) m->o.breaker_probe_ms = 500;
    if (!m->o.resync_attempts) m->o.resync_attempts = 5;
    for (int s = 0; s < 2; s++) m->brk[s].m = m;
    if (getrandom(&m->rng, sizeof m->rng, 0) != (ssize_t)sizeof m->rng || !m->rng) m->rng = 0x9e3779b97f4a7c15ull;
    rset_init(&m->sched);
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_cond_init(&m->idle, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned i = 0; i < m->o.concurrency; i++) {
        if (pthread_create(&m->workers[i], NULL, worker_main, m) != 0) {
            snprintf(err, errlen, "mirror: cannot start worker threads");
            mirror_stop(m, 0);
            return -1;
        }
        m->nworkers++;
    }
    *out = m;
    return 0;
}

int mirror_submit(mirror *m, apply_req *req, void (*done)(void *ud, const apply_result *res), void *ud)
{
    mop *op = calloc(1, sizeof *op);
    pthread_mutex_lock(&m->mu);
    bool stopping = m->stopping;
    pthread_mutex_unlock(&m->mu);
    if (!op || stopping) {
        free(op);
        apply_req_free(req);
        return -1;
    }
    op->m = m;
    op->req = req;
    op->done = done;
    op->ud = ud;
    op->t0_ms = mr_mono_ms();
    prepare(op); /* memory and the spool (page cache) only */
    pthread_mutex_lock(&m->mu);
    op->prev = m->tail;
    if (m->tail) m->tail->next = op;
    else m->head = op;
    m->tail = op;
    m->pending++;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

uint64_t mirror_pending(mirror *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t n = m->pending;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static int64_t in_flight_fn(void *ud)
{
    mirror *m = ud;
    pthread_mutex_lock(&m->mu);
    int64_t n = m->in_flight;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static int64_t breaker_open_fn(void *ud)
{
    mr_breaker *b = ud;
    pthread_mutex_lock(&b->m->mu);
    int64_t v = b->open;
    pthread_mutex_unlock(&b->m->mu);
    return v;
}

int mirror_register_metrics(mirror *m, metrics *mx)
{
    static const double lag_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    int bad = 0;
    char labels[64];
    for (int s = 0; s < 2; s++) {
        snprintf(labels, sizeof labels, "upstream=\"%s\"", side_name[s]);
        m->retries[s] = metrics_counter_get(mx, "dualpipe_mirror_retries_total",
                                            "Requests of the Gen1 mirror sent again after a transient failure.",
                                            labels);
        bad |= !m->retries[s];
        bad |= metrics_gauge_fn(mx, "dualpipe_mirror_breaker_open",
                                "1 while the Gen1 mirror's circuit breaker toward an upstream is open.", labels,
                                breaker_open_fn, &m->brk[s]) != 0;
    }
    m->lag = metrics_histogram_get(mx, "dualpipe_mirror_lag_seconds",
                                   "Time from a write's submission to the Gen1 mirror to its outcome.", NULL,
                                   lag_bounds, (int)(sizeof lag_bounds / sizeof lag_bounds[0]));
    bad |= !m->lag;
    bad |= metrics_gauge_fn(mx, "dualpipe_mirror_in_flight", "Writes being mirrored to Gen1 now.", NULL, in_flight_fn,
                            m) != 0;
    m->mx = mx;
    return bad ? -1 : 0;
}

int mirror_status_json(mirror *m, dbuf *out)
{
    json_t *o = json_object();
    json_t *fails = json_array();
    pthread_mutex_lock(&m->mu);
    if (o && fails) {
        json_object_set_new(o, "pending", json_integer((json_int_t)m->pending));
        json_object_set_new(o, "in_flight", json_integer(m->in_flight));
        json_object_set_new(o, "applied", json_integer((json_int_t)m->n_applied));
        json_object_set_new(o, "divergence_count", json_integer((json_int_t)m->n_divergence));
        json_object_set_new(o, "resynced", json_integer((json_int_t)m->n_resynced));
        json_object_set_new(o, "parked", json_integer((json_int_t)m->n_parked));
        json_object_set_new(o, "stopped", json_integer((json_int_t)m->n_stopped));
        json_object_set_new(o, "retries", json_pack("{sIsI}", "gen1", (json_int_t)m->n_retries[0], "gen2",
                                                    (json_int_t)m->n_retries[1]));
        json_object_set_new(o, "breaker", json_pack("{ssss}", "gen1", m->brk[0].open ? "open" : "closed", "gen2",
                                                    m->brk[1].open ? "open" : "closed"));
        for (int i = 0; i < m->ring_n; i++) {
            const mr_rec *r = &m->ring[(m->ring_next - 1 - i + MR_RING) % MR_RING];
            json_array_append_new(fails, json_pack("{sIsIssssssss}", "seq", (json_int_t)r->seq, "time_ms",
                                                   (json_int_t)r->time_ms, "op", mr_op_name(r->op), "path", r->path,
                                                   "outcome", apply_outcome_name(r->outcome), "detail", r->detail));
        }
    }
    pthread_mutex_unlock(&m->mu);
    char *s = NULL;
    if (o && fails) {
        json_object_set_new(o, "failures", fails);
        fails = NULL;
        s = json_dumps(o, JSON_COMPACT);
    }
    json_decref(fails);
    json_decref(o);
    int rc = s ? dbuf_adds(out, s) : -ENOMEM;
    free(s);
    return rc == 0 ? 0 : -1;
}

void mirror_stop(mirror *m, unsigned timeout_ms)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    struct timespec ts;
    deadline(&ts, timeout_ms);
    while (m->pending > 0)
        if (pthread_cond_timedwait(&m->idle, &m->mu, &ts) == ETIMEDOUT) break;
    if (m->pending > 0) {
        LOGW("msg=\"mirror stopping with writes not on gen1: the journal keeps them\" pending=%" PRIu64, m->pending);
        m->abandon = true;
    }
    m->quit = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; i < m->nworkers; i++) pthread_join(m->workers[i], NULL);
    /* What no worker started ends here. */
    for (;;) {
        pthread_mutex_lock(&m->mu);
        mop *op = m->head;
        while (op && op->started) op = op->next;
        pthread_mutex_unlock(&m->mu);
        if (!op) break;
        op->outcome = APPLY_STOPPED;
        mr_why(op, MR_STOP_MSG);
        op_done(op);
    }
    for (int i = 0; i < m->ncovers; i++) free(m->covers[i].root);
    rset_free(&m->sched);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    pthread_cond_destroy(&m->idle);
    free(m);
}
