/*
 * applier: mirrors the writes Gen1 accepted onto Gen2 (see applier.h). applier_submit only queues;
 * one worker thread prepares each request (which Gen1 paths it touches), keeps the submission-ordered
 * list of unfinished operations, starts those that no earlier unfinished operation blocks (same path,
 * ancestor or descendant; a RENAME touches source and destination, a CONCAT its target and sources),
 * at most applier.concurrency at a time, and re-sends requests whose retry time has come. Each
 * operation is a small state machine: a step sends one Gen1 or Gen2 request (gen1c_get / gen2c_send),
 * and its handler, run on the httpc thread when the answer arrives, decides the next step from the
 * answer with common/xlate. Nothing blocks the httpc thread: retries are parked on the worker's timer
 * list.
 *
 * Transient failures (transport errors, 408, 429, 5xx) are re-sent without a limit after a full-jitter
 * backoff that honours Retry-After. Each upstream has a circuit breaker: after
 * applier.breaker_failures transient failures in a row it opens, sends wait on its list (no attempt
 * is spent) and the worker lets the first of them through as a probe every applier.breaker_probe_ms;
 * any answer that is not transient closes it and everything waiting is sent again at once. An
 * operation that fails for good (APPLY_FAILED) never reaches its submitter: ap_op_done turns it into
 * a resync of its paths (applier_resync.c), which ends RESYNCED or PARKED.
 *
 * Shared state (lists, counters, breakers, covers, the per-file cache of Gen2 committed lengths and
 * known directories) sits under one mutex; an operation's own fields are touched only by whoever runs
 * its current step. An operation is freed by ap_op_done, after its done callback, and never inside
 * applier_submit.
 *
 * This file holds the queue, ordering, APPEND groups, scheduling, sending, retries and breakers,
 * outcomes, metrics and the public API; the operations themselves are in applier_ops.c, copying from
 * Gen1 in applier_copy.c, subtree copies and resyncs in applier_resync.c, the shared cache, marks and
 * covers in applier_state.c (applier_int.h lists what crosses files).
 */
#include "applier_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

#define STOP_MSG "the applier stopped before this write was mirrored"

/* ================================================================ small helpers */

int64_t ap_mono_ms(void)
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

const char *ap_op_name(whreq_op op)
{
    const whreq_opinfo *i = whreq_opinfo_get(op);
    return i ? i->name : "UNKNOWN";
}

const char *ap_param(const apply_req *r, const char *lname)
{
    for (int i = 0; i < r->nparams; i++)
        if (r->params[i].name && strcmp(r->params[i].name, lname) == 0) return r->params[i].value;
    return NULL;
}

bool ap_param_bool(const apply_req *r, const char *lname, bool def)
{
    const char *v = ap_param(r, lname);
    if (!v || !*v) return def;
    return strcasecmp(v, "true") == 0;
}

int ap_path_list_add(char ***v, int *n, const char *p)
{
    char **nv = realloc(*v, sizeof *nv * (size_t)(*n + 1));
    if (!nv) return -1;
    *v = nv;
    if (!(nv[*n] = strdup(p))) return -1;
    (*n)++;
    return 0;
}

bool ap_path_under(const char *p, const char *root)
{
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0) return true;
    return strncmp(p, root, n) == 0 && (p[n] == 0 || p[n] == '/');
}

const char *apply_outcome_name(apply_outcome o)
{
    static const char *const names[APPLY__COUNT] = {"applied",    "skipped_unmapped", "skipped_invalid_name",
                                                    "divergence", "failed",           "resynced",
                                                    "parked",     "stopped"};
    return (int)o >= 0 && (int)o < APPLY__COUNT ? names[o] : "unknown";
}

/* ================================================================ requests */

void apply_req_free(apply_req *r)
{
    if (!r) return;
    free(r->path);
    for (int i = 0; i < r->nparams; i++) {
        free(r->params[i].name);
        free(r->params[i].value);
    }
    free(r->params);
    free(r->authorization);
    free(r->gen1_body);
    spool_unref(r->body);
    free(r);
}

/* ================================================================ finishing */

void ap_op_free(aop *op)
{
    apply_req_free(op->req);
    for (int i = 0; i < op->ntouch; i++) free(op->touch[i]);
    free(op->touch);
    free(op->grp);
    free(op->g2path);
    free(op->g2dst);
    free(op->g1status);
    free(op->rs_root);
    xlate_g2req_free(&op->rq);
    free(op->g1_path);
    free(op->g1_query);
    free(op->ext);
    free(op->pack);
    for (int i = 0; i < op->nmeta; i++) {
        free(op->meta[i].g1);
        free(op->meta[i].g2);
        free(op->meta[i].status);
    }
    free(op->meta);
    xlate_meta_free(&op->m);
    xlate_g2req_free(&op->mreq[0]);
    xlate_g2req_free(&op->mreq[1]);
    free(op->probe_node.g1);
    free(op->probe_node.g2);
    if (op->tmpfd >= 0) close(op->tmpfd);
    xlate_paths_free(&op->srcs);
    free(op->srcdir);
    free(op->del.g1);
    free(op->del.g2);
    free(op->cont);
    for (int i = 0; i < op->nrs_roots; i++) free(op->rs_roots[i]);
    free(op->rs_roots);
    ap_resync_free(op->rs);
    ap_rsnode_free(op->rsn);
    free(op);
}

static void ring_add(ap_ring *ring, const aop *op)
{
    ap_rec *r = &ring->r[ring->next];
    r->seq = op->req->seq;
    r->time_ms = real_ms();
    r->op = op->req->op;
    snprintf(r->path, sizeof r->path, "%s", op->req->path);
    snprintf(r->detail, sizeof r->detail, "%s", op->detail);
    ring->next = (ring->next + 1) % AP_RING;
    if (ring->n < AP_RING) ring->n++;
}

static void applier_destroy(applier *a);

/* ================================================================ metrics */

static void count_outcome(aop *op)
{
    ap_metrics *mx = &op->a->mx;
    int o = (int)op->req->op, oc = (int)op->outcome;
    if (!mx->m || o < 0 || o >= WH_OP__COUNT || oc < 0 || oc >= APPLY__COUNT) return;
    metrics_counter *c = atomic_load_explicit(&mx->ops[o][oc], memory_order_acquire);
    if (!c) {
        char labels[96];
        snprintf(labels, sizeof labels, "op=\"%s\",outcome=\"%s\"", ap_op_name(op->req->op),
                 apply_outcome_name(op->outcome));
        c = metrics_counter_get(mx->m, "dualpipe_applier_operations_total",
                                "Writes mirrored to Gen2 (or not), by op and outcome.", labels);
        atomic_store_explicit(&mx->ops[o][oc], c, memory_order_release);
    }
    metrics_inc(c);
    metrics_observe(mx->lag, (double)(ap_mono_ms() - op->t0_ms) / 1000.0);
}

static void count_answer(aop *op, const httpc_resp *r)
{
    long s = r->result == HTTPC_OK ? r->status / 100 : 0;
    metrics_inc(op->a->mx.answers[op->is_g1 ? 0 : 1][s >= 1 && s <= 5 ? s : 0]);
}

static int64_t in_flight_fn(void *ud)
{
    applier *a = ud;
    pthread_mutex_lock(&a->mu);
    int64_t n = a->in_flight;
    pthread_mutex_unlock(&a->mu);
    return n;
}

static int64_t breaker_open_fn(void *ud)
{
    ap_breaker *b = ud;
    pthread_mutex_lock(&b->a->mu);
    int64_t v = b->open;
    pthread_mutex_unlock(&b->a->mu);
    return v;
}

int applier_register_metrics(applier *a, metrics *m)
{
    static const double lag_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    static const char *const code[AP_NCLASS] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    static const char *const side[2] = {"gen1", "gen2"};
    ap_metrics *mx = &a->mx;
    char labels[64];
    int bad = 0;
    for (int s = 0; s < 2; s++) {
        for (int c = 0; c < AP_NCLASS; c++) {
            snprintf(labels, sizeof labels, "upstream=\"%s\",code=\"%s\"", side[s], code[c]);
            mx->answers[s][c] = metrics_counter_get(m, "dualpipe_applier_upstream_answers_total",
                                                    "Answers to the applier's requests (Gen1 look-ups, Gen2 "
                                                    "writes), by status class (code=\"none\": no HTTP answer).",
                                                    labels);
            bad |= !mx->answers[s][c];
        }
        snprintf(labels, sizeof labels, "upstream=\"%s\"", side[s]);
        mx->retries[s] = metrics_counter_get(m, "dualpipe_applier_retries_total",
                                             "Requests of the applier sent again after a transient failure.", labels);
        mx->trips[s] = metrics_counter_get(m, "dualpipe_applier_breaker_trips_total",
                                           "Times the applier's circuit breaker toward an upstream opened.", labels);
        bad |= !mx->retries[s] || !mx->trips[s];
        bad |= metrics_gauge_fn(m, "dualpipe_applier_breaker_open",
                                "1 while the applier's circuit breaker toward an upstream is open (sends held "
                                "back, one probe per applier.breaker_probe_ms).",
                                labels, breaker_open_fn, &a->brk[s]) != 0;
    }
    mx->copied[0] = metrics_counter_get(m, "dualpipe_applier_copied_nodes_total",
                                        "Nodes copied from Gen1 by subtree copies (renames Gen2 cannot do, resyncs).",
                                        "kind=\"file\"");
    mx->copied[1] = metrics_counter_get(m, "dualpipe_applier_copied_nodes_total",
                                        "Nodes copied from Gen1 by subtree copies (renames Gen2 cannot do, resyncs).",
                                        "kind=\"directory\"");
    mx->coalesced = metrics_counter_get(m, "dualpipe_applier_coalesced_total",
                                        "APPENDs whose bytes were committed by another APPEND's flush.", NULL);
    mx->lag = metrics_histogram_get(m, "dualpipe_applier_lag_seconds",
                                    "Time from a write's submission to the applier to its outcome.", NULL, lag_bounds,
                                    (int)(sizeof lag_bounds / sizeof lag_bounds[0]));
    bad |= !mx->copied[0] || !mx->copied[1] || !mx->lag || !mx->coalesced;
    bad |= metrics_gauge_fn(m, "dualpipe_applier_in_flight", "Writes being applied to Gen2 now.", NULL, in_flight_fn,
                            a) != 0;
    mx->m = m;
    return bad ? -1 : 0;
}

/* ================================================================ first, done */

static void first_one(aop *op, bool ok)
{
    if (!op->req->first) return;
    if (__atomic_exchange_n(&op->first_done, true, __ATOMIC_ACQ_REL)) return;
    op->req->first(op->req->first_ud, ok);
}

void ap_first(aop *op, bool ok)
{
    if (op->job) op = ap_resync_owner(op->job);
    first_one(op, ok);
    for (int i = 0; i < op->ngrp; i++) first_one(op->grp[i], ok);
}

static bool outcome_ok(apply_outcome o)
{
    return o == APPLY_OK || o == APPLY_SKIPPED_UNMAPPED || o == APPLY_SKIPPED_INVALID_NAME || o == APPLY_DIVERGENCE ||
           o == APPLY_RESYNCED;
}

static void log_outcome(const aop *op)
{
    const apply_req *q = op->req;
    switch (op->outcome) {
    case APPLY_OK:
        LOGD("msg=applied seq=%" PRIu64 " op=%s path=\"%s\"%s%s%s", q->seq, ap_op_name(q->op), q->path,
             op->detail[0] ? " detail=\"" : "", op->detail, op->detail[0] ? "\"" : "");
        break;
    case APPLY_SKIPPED_UNMAPPED:
        LOGD("msg=\"not mirrored\" seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", q->seq, ap_op_name(q->op),
             q->path, op->detail);
        break;
    case APPLY_SKIPPED_INVALID_NAME:
        LOGW("msg=\"not mirrored\" seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", q->seq, ap_op_name(q->op),
             q->path, op->detail);
        break;
    case APPLY_DIVERGENCE:
        LOGW("msg=divergence seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", q->seq, ap_op_name(q->op), q->path,
             op->detail);
        break;
    case APPLY_RESYNCED:
        LOGW("msg=\"resynced from gen1\" seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", q->seq, ap_op_name(q->op),
             q->path, op->detail);
        break;
    case APPLY_PARKED:
        LOGE("msg=\"gen2 apply parked\" seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", q->seq, ap_op_name(q->op),
             q->path, op->detail);
        break;
    case APPLY_STOPPED:
        LOGI("msg=\"left for the next start\" seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", q->seq,
             ap_op_name(q->op), q->path, op->detail);
        break;
    case APPLY_FAILED: break; /* (never here) */
    }
}

/* The operation is over: count it, tell the submitter, free it, let the worker schedule more. A
 * failure turns into a resync instead; a group's members end with their leader's outcome. */
void ap_op_done(aop *op)
{
    if (op->job) {
        ap_resync_piece_done(op);
        return;
    }
    applier *a = op->a;
    if (op->outcome == APPLY_FAILED) {
        pthread_mutex_lock(&a->mu);
        bool ab = a->abandon;
        pthread_mutex_unlock(&a->mu);
        if (!ab && op->resyncing) {
            ap_op_resync_failed(op);
            return;
        }
        if (!ab) {
            char why[sizeof op->why];
            snprintf(why, sizeof why, "%.299s", op->detail);
            ap_first(op, false);
            ap_op_resync(op, why);
            return;
        }
        op->outcome = APPLY_STOPPED;
        snprintf(op->detail, sizeof op->detail, STOP_MSG);
    }
    log_outcome(op);
    count_outcome(op);
    aop **grp = op->grp;
    int ngrp = op->ngrp;
    op->grp = NULL;
    op->ngrp = 0;
    if (ngrp && (op->outcome == APPLY_OK || op->outcome == APPLY_DIVERGENCE)) metrics_add(a->mx.coalesced, ngrp);
    apply_result res;
    res.outcome = op->outcome;
    snprintf(res.detail, sizeof res.detail, "%s", op->detail);
    pthread_mutex_lock(&a->mu);
    if (op->prev) op->prev->next = op->next;
    else a->head = op->next;
    if (op->next) op->next->prev = op->prev;
    else a->tail = op->prev;
    if (op->counted) a->in_flight--;
    a->pending--;
    switch (op->outcome) {
    case APPLY_OK: a->n_applied++; break;
    case APPLY_SKIPPED_UNMAPPED: a->n_unmapped++; break;
    case APPLY_SKIPPED_INVALID_NAME: a->n_invalid++; break;
    case APPLY_DIVERGENCE: a->n_divergence++; ring_add(&a->divs, op); break;
    case APPLY_RESYNCED: a->n_resynced++; ring_add(&a->fails, op); break;
    case APPLY_PARKED: a->n_parked++; ring_add(&a->fails, op); break;
    case APPLY_STOPPED: a->n_stopped++; break;
    case APPLY_FAILED: break;
    }
    a->kick = true;
    pthread_cond_signal(&a->cv);
    if (a->pending == 0) pthread_cond_broadcast(&a->idle);
    bool last = a->orphaned && a->pending == 0;
    pthread_mutex_unlock(&a->mu);
    first_one(op, outcome_ok(res.outcome));
    if (op->done) op->done(op->ud, &res);
    uint64_t seq = op->req->seq;
    ap_op_free(op);
    for (int i = 0; i < ngrp; i++) {
        aop *m = grp[i];
        m->outcome = res.outcome;
        snprintf(m->detail, sizeof m->detail, "coalesced with seq %" PRIu64 "%s%.400s", seq, res.detail[0] ? ": " : "",
                 res.detail);
        ap_op_done(m);
    }
    free(grp);
    if (last) applier_destroy(a);
}

__attribute__((format(printf, 3, 4))) void ap_op_finish(aop *op, apply_outcome oc, const char *fmt, ...)
{
    op->outcome = oc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->detail, sizeof op->detail, fmt, ap);
    va_end(ap);
    ap_op_done(op);
}

void ap_st_ok(aop *op)
{
    ap_op_done(op);
}

/* Note a metadata problem (the data part went through): the outcome becomes a divergence. */
__attribute__((format(printf, 2, 3))) void ap_op_note(aop *op, const char *fmt, ...)
{
    if (op->outcome != APPLY_OK) return;
    op->outcome = APPLY_DIVERGENCE;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->detail, sizeof op->detail, fmt, ap);
    va_end(ap);
}

/* What a Gen2/Gen1 answer was, for details: "Gen2 409 PathAlreadyExists", "Gen2 unreachable: ..." or
 * "Gen2 not authenticated: ..." (no token could be had). */
void ap_resp_what(const aop *op, const httpc_resp *r, char *buf, size_t cap)
{
    const char *side = op->is_g1 ? "Gen1" : "Gen2";
    if (r->result != HTTPC_OK) {
        snprintf(buf, cap, "%s %s: %s%s%s", side, r->result == HTTPC_E_AUTH ? "not authenticated" : "unreachable",
                 httpc_result_str(r->result), r->error[0] ? ": " : "", r->error);
        return;
    }
    char code[128] = "";
    if (!op->is_g1) gen2c_error_code(r, code, sizeof code);
    snprintf(buf, cap, "%s %ld%s%s", side, r->status, code[0] ? " " : "", code);
}

void ap_op_fail_resp(aop *op, const httpc_resp *r, const char *step)
{
    char what[300];
    ap_resp_what(op, r, what, sizeof what);
    ap_op_finish(op, APPLY_FAILED, "%s on %s", what, step);
}

const char *ap_g2code(const httpc_resp *r, char *buf, size_t cap)
{
    return r->result == HTTPC_OK ? gen2c_error_code(r, buf, cap) : "";
}

/* ================================================================ timers, backoff */

/* Insert op into the timer list by due time (a->mu held). */
static void timer_insert(applier *a, aop *op)
{
    aop **pp = &a->timers;
    while (*pp && (*pp)->due_ms <= op->due_ms) pp = &(*pp)->qnext;
    op->qnext = *pp;
    *pp = op;
}

void ap_park(aop *op, int64_t delay_ms, ap_step wake)
{
    applier *a = op->a;
    pthread_mutex_lock(&a->mu);
    if (a->abandon) {
        pthread_mutex_unlock(&a->mu);
        ap_op_finish(op, APPLY_STOPPED, STOP_MSG);
        return;
    }
    op->wake = wake;
    op->due_ms = ap_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    timer_insert(a, op);
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

int64_t ap_backoff_ms(applier *a, int n)
{
    if (n < 0) n = 0;
    if (n > 30) n = 30;
    uint64_t ceil = (uint64_t)a->backoff_base_ms << n;
    if (ceil > a->backoff_cap_ms) ceil = a->backoff_cap_ms;
    pthread_mutex_lock(&a->mu);
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 7;
    a->rng ^= a->rng << 17;
    uint64_t r = a->rng;
    pthread_mutex_unlock(&a->mu);
    return (int64_t)(r % (ceil + 1));
}

/* ================================================================ circuit breakers */

static const char *const side_name[2] = {"gen1", "gen2"};

typedef enum brk_verdict { BRK_NONE = 0, BRK_FAIL, BRK_ALIVE } brk_verdict;

/* Append op to a FIFO (a->mu held). */
static void fifo_push(aop **head, aop **tail, aop *op)
{
    op->qnext = NULL;
    if (*tail) (*tail)->qnext = op;
    else *head = op;
    *tail = op;
}

static aop *fifo_pop(aop **head, aop **tail)
{
    aop *op = *head;
    if (op) {
        *head = op->qnext;
        if (!*head) *tail = NULL;
        op->qnext = NULL;
    }
    return op;
}

/*
 * An answer from upstream side arrived (op sent it). FAIL: a transient failure (counts toward
 * opening); ALIVE: any other HTTP answer (closes an open breaker: everything it held back, and every
 * re-send of that side waiting for its backoff, goes out again now); NONE: says nothing about the
 * upstream (cancelled, no credential, a local error).
 */
static void breaker_note(applier *a, int side, aop *op, brk_verdict v)
{
    ap_breaker *b = &a->brk[side];
    bool tripped = false, closed = false;
    pthread_mutex_lock(&a->mu);
    if (op->probe) {
        op->probe = false;
        b->probing = false;
        pthread_cond_signal(&a->cv);
    }
    if (v == BRK_FAIL) {
        b->fails++;
        if (!b->open && b->fails >= a->brk_failures) {
            b->open = true;
            b->next_probe_ms = ap_mono_ms() + a->brk_probe_ms;
            tripped = true;
        }
    } else if (v == BRK_ALIVE) {
        b->fails = 0;
        if (b->open) {
            b->open = false;
            closed = true;
            aop *w;
            while ((w = fifo_pop(&b->wait_head, &b->wait_tail))) fifo_push(&a->ready, &a->ready_tail, w);
            for (aop **pp = &a->timers; *pp;) {
                aop *t = *pp;
                if (!t->wake && (t->is_g1 ? 0 : 1) == side) {
                    *pp = t->qnext;
                    fifo_push(&a->ready, &a->ready_tail, t);
                } else {
                    pp = &t->qnext;
                }
            }
            pthread_cond_signal(&a->cv);
        }
    }
    unsigned fails = b->fails;
    pthread_mutex_unlock(&a->mu);
    if (tripped) {
        metrics_inc(a->mx.trips[side]);
        LOGW("msg=\"circuit breaker open: sends held back\" upstream=%s failures=%u probe_ms=%u", side_name[side], fails,
             a->brk_probe_ms);
    }
    if (closed) LOGI("msg=\"circuit breaker closed\" upstream=%s", side_name[side]);
}

/* ================================================================ sending */

static void on_answer(void *ud, httpc_resp *r);

/* Send the current request (op->rq or the Gen1 look-up) now. */
static void send_now(aop *op)
{
    op->attempt++;
    int rc;
    if (op->is_g1) {
        if (op->g1_out == HTTPC_BODY_FD && (ftruncate(op->g1_fd, 0) != 0 || lseek(op->g1_fd, 0, SEEK_SET) != 0)) {
            breaker_note(op->a, 0, op, BRK_NONE);
            ap_op_finish(op, APPLY_FAILED, "cannot reset the spool file: %s", strerror(errno));
            return;
        }
        rc = gen1c_get(op->a->g1, op->g1_path, op->g1_query, op->req->authorization, op->g1_out, op->g1_max,
                       op->g1_fd, on_answer, op);
    } else {
        gen2c_call c;
        memset(&c, 0, sizeof c);
        c.method = op->rq.method;
        c.fs = op->rq_fs;
        c.path = op->rq_path;
        c.query = op->rq.query;
        for (int i = 0; i < op->rq.nheaders && i < 23; i++) c.headers[i] = op->rq.headers[i];
        c.in = op->in;
        c.in_mem = op->in_mem;
        c.in_fd = op->in_fd;
        c.in_off = op->in_off;
        c.in_len = op->in_len;
        c.out = HTTPC_BODY_MEMORY;
        c.out_max = 64 * 1024;
        c.done = on_answer;
        c.ud = op;
        rc = gen2c_send(op->a->g2, &c);
    }
    if (rc != 0) {
        breaker_note(op->a, op->is_g1 ? 0 : 1, op, BRK_NONE);
        ap_op_finish(op, APPLY_FAILED, "%s request could not be sent (%s %s)", op->is_g1 ? "Gen1" : "Gen2",
                     op->is_g1 ? "GET" : op->rq.method, op->is_g1 ? op->g1_query : op->rq.query);
    }
}

/* Send the current request, unless its upstream's breaker is open: then it waits on the breaker's
 * list (the worker sends the first waiting one as the probe when its time comes). */
static void resend(aop *op)
{
    applier *a = op->a;
    ap_breaker *b = &a->brk[op->is_g1 ? 0 : 1];
    pthread_mutex_lock(&a->mu);
    if (a->abandon) {
        pthread_mutex_unlock(&a->mu);
        ap_op_finish(op, APPLY_STOPPED, STOP_MSG);
        return;
    }
    if (b->open) {
        int64_t now = ap_mono_ms();
        if (b->probing || b->wait_head || now < b->next_probe_ms) {
            fifo_push(&b->wait_head, &b->wait_tail, op);
            pthread_cond_signal(&a->cv);
            pthread_mutex_unlock(&a->mu);
            return;
        }
        b->probing = true;
        op->probe = true;
        b->next_probe_ms = now + a->brk_probe_ms;
    }
    pthread_mutex_unlock(&a->mu);
    send_now(op);
}

/* Every answer comes here (httpc thread): retry what is worth retrying, else hand it to the step. */
static void on_answer(void *ud, httpc_resp *r)
{
    aop *op = ud;
    applier *a = op->a;
    int side = op->is_g1 ? 0 : 1;
    count_answer(op, r);
    /* HTTPC_E_AUTH: gen2c could get no token (the auth module already retried the token service):
     * not transient here. */
    bool transport = r->result == HTTPC_E_CONNECT || r->result == HTTPC_E_TIMEOUT || r->result == HTTPC_E_TRANSPORT ||
                     r->result == HTTPC_E_NOMEM;
    bool transient = transport || (r->result == HTTPC_OK && xlate_retryable(false, r->status));
    breaker_note(a, side, op, transient ? BRK_FAIL : r->result == HTTPC_OK ? BRK_ALIVE : BRK_NONE);
    if (r->result == HTTPC_E_CANCELLED) {
        httpc_resp_free(r);
        free(r);
        ap_op_finish(op, APPLY_STOPPED, STOP_MSG " (request cancelled)");
        return;
    }
    if (transient) {
        int64_t d = ap_backoff_ms(a, op->attempt - 1);
        int64_t ra = r->result == HTTPC_OK ? xlate_retry_after_ms(httpc_resp_header(r, "Retry-After"), real_ms()) : -1;
        if (ra > (int64_t)a->backoff_cap_ms) ra = a->backoff_cap_ms;
        if (ra > d) d = ra;
        char what[300];
        ap_resp_what(op, r, what, sizeof what);
        LOGI("msg=\"gen2 apply retry\" seq=%" PRIu64 " op=%s path=\"%s\" attempt=%d after_ms=%" PRId64 " cause=\"%s\"",
             op->req->seq, ap_op_name(op->req->op), op->req->path, op->attempt, d, what);
        metrics_inc(a->mx.retries[side]);
        httpc_resp_free(r);
        free(r);
        ap_first(op, false);
        ap_park(op, d, NULL);
        return;
    }
    op->on(op, r); /* may finish (free) op */
    httpc_resp_free(r);
    free(r);
}

static bool abandoned(aop *op)
{
    pthread_mutex_lock(&op->a->mu);
    bool ab = op->a->abandon;
    pthread_mutex_unlock(&op->a->mu);
    if (ab) ap_op_finish(op, APPLY_STOPPED, STOP_MSG);
    return ab;
}

/* Send op->rq to Gen2 at fs/rq_path; on answers, h runs (retries are handled here). */
static void g2_send_in(aop *op, const char *fs, const char *rq_path, httpc_body_in in, const void *mem, int fd,
                       uint64_t off, uint64_t len, ap_handler h)
{
    if (abandoned(op)) return;
    op->is_g1 = false;
    op->attempt = 0;
    op->rq_fs = fs;
    op->rq_path = rq_path;
    op->in = in;
    op->in_mem = mem;
    op->in_fd = fd;
    op->in_off = off;
    op->in_len = len;
    op->on = h;
    resend(op);
}

void ap_g2_send(aop *op, const char *rq_path, httpc_body_in in, int fd, uint64_t off, uint64_t len, ap_handler h)
{
    g2_send_in(op, op->fs, rq_path, in, NULL, fd, off, len, h);
}

void ap_g2_send_mem(aop *op, const char *rq_path, const void *mem, uint64_t len, ap_handler h)
{
    g2_send_in(op, op->fs, rq_path, HTTPC_IN_MEMORY, mem, -1, 0, len, h);
}

/* A body-less Gen2 request built by the caller into op->rq. */
void ap_g2_simple(aop *op, const char *rq_path, ap_handler h)
{
    g2_send_in(op, op->fs, rq_path, HTTPC_IN_NONE, NULL, -1, 0, 0, h);
}

void ap_g2_simple_in(aop *op, const char *fs, const char *rq_path, ap_handler h)
{
    g2_send_in(op, fs, rq_path, HTTPC_IN_NONE, NULL, -1, 0, 0, h);
}

/* A Gen1 look-up on path with the writer's identity ("op=X" + its user.name/doas/delegation). */
static void g1_send(aop *op, const char *path, const char *g1op, const char *extra, httpc_body_out out,
                    size_t max, int fd, ap_handler h)
{
    if (abandoned(op)) return;
    dbuf q;
    dbuf_init(&q, 64 * 1024);
    free(op->g1_path);
    free(op->g1_query);
    op->g1_path = strdup(path);
    op->g1_query = xlate_gen1_query(g1op, op->req->params, op->req->nparams, extra, &q) == 0 ? dbuf_take(&q) : NULL;
    dbuf_free(&q);
    if (!op->g1_path || !op->g1_query) {
        ap_op_finish(op, APPLY_FAILED, "out of memory building a Gen1 look-up");
        return;
    }
    op->is_g1 = true;
    op->attempt = 0;
    op->g1_out = out;
    op->g1_max = max;
    op->g1_fd = fd;
    op->on = h;
    resend(op);
}

void ap_g1_get(aop *op, const char *path, const char *g1op, const char *extra, httpc_body_out out, int fd,
               ap_handler h)
{
    g1_send(op, path, g1op, extra, out, AP_JSON_MAX, fd, h);
}

void ap_g1_list(aop *op, const char *path, const char *extra, ap_handler h)
{
    g1_send(op, path, "LISTSTATUS", extra, HTTPC_BODY_MEMORY, AP_LIST_MAX, -1, h);
}

/* ================================================================ worker: preparation, order, timers */

/* Which Gen1 paths the operation touches (worker thread, outside the lock). */
static void op_prepare(aop *op)
{
    const apply_req *q = op->req;
    if (ap_path_list_add(&op->touch, &op->ntouch, q->path) != 0) goto oom;
    if (q->op == WH_OP_RENAME) {
        whreq_err we;
        char *dst = NULL;
        const char *d = ap_param(q, "destination");
        if (!d || whreq_norm_path(d, &dst, &we) != 0) {
            snprintf(op->prep_err, sizeof op->prep_err, "RENAME without a valid destination");
            return;
        }
        int rc = ap_path_list_add(&op->touch, &op->ntouch, dst);
        free(dst);
        if (rc != 0) goto oom;
    } else if (q->op == WH_OP_CONCAT || q->op == WH_OP_MSCONCAT) {
        char *body = NULL;
        size_t blen = 0;
        if (q->op == WH_OP_MSCONCAT && q->body && q->body->len > 0) {
            blen = q->body->len > AP_CONCAT_BODY_MAX ? AP_CONCAT_BODY_MAX : (size_t)q->body->len;
            body = malloc(blen + 1);
            if (!body) goto oom;
            size_t got = 0;
            while (got < blen) {
                ssize_t n = pread(q->body->fd, body + got, blen - got, (off_t)(q->body->off + got));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    free(body);
                    snprintf(op->prep_err, sizeof op->prep_err, "cannot read the MSCONCAT body: %s",
                             n < 0 ? strerror(errno) : "short read");
                    return;
                }
                got += (size_t)n;
            }
            body[blen] = 0;
        }
        xlate_err e;
        int rc = xlate_concat_sources(q->op, ap_param(q, "sources"), body, blen, &op->srcs, &e);
        free(body);
        if (rc != 0) {
            snprintf(op->prep_err, sizeof op->prep_err, "%s", e.message);
            return;
        }
        for (int i = 0; i < op->srcs.n; i++)
            if (ap_path_list_add(&op->touch, &op->ntouch, op->srcs.v[i]) != 0) goto oom;
        if (q->op == WH_OP_MSCONCAT && ap_param_bool(q, "deletesourcedirectory", false)) {
            op->srcdir = xlate_concat_source_dir(&op->srcs, q->path);
            if (op->srcdir && ap_path_list_add(&op->touch, &op->ntouch, op->srcdir) != 0) goto oom;
        }
    }
    return;
oom:
    snprintf(op->prep_err, sizeof op->prep_err, "out of memory");
}

static bool ops_conflict(const aop *x, const aop *y)
{
    for (int i = 0; i < x->ntouch; i++)
        for (int j = 0; j < y->ntouch; j++)
            if (xlate_path_related(x->touch[i], y->touch[j])) return true;
    return false;
}

/* A CONCURRENTAPPEND whose next conflicting operation is another CONCURRENTAPPEND of the same file
 * need not copy: that one copies Gen1's file later, with these bytes in it (writers that stream
 * with CONCURRENTAPPEND would otherwise cost a full copy per append). */
uint64_t ap_superseded_by(aop *op)
{
    applier *a = op->a;
    uint64_t seq = 0;
    int scanned = 0;
    pthread_mutex_lock(&a->mu);
    for (aop *n = op->next; n && scanned < AP_SCAN_MAX; n = n->next, scanned++) {
        if (!ops_conflict(op, n)) continue;
        if (!n->started && !n->req->resync && n->req->op == WH_OP_CONCURRENTAPPEND &&
            strcmp(n->req->path, op->req->path) == 0)
            seq = n->req->seq;
        break;
    }
    pthread_mutex_unlock(&a->mu);
    return seq;
}

/* ================================================================ APPEND groups */

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || s[0] < '0' || s[0] > '9') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end) return false;
    *out = v;
    return true;
}

static uint64_t body_len(const apply_req *q)
{
    return q->body ? q->body->len : 0;
}

int ap_group_take(aop *op)
{
    applier *a = op->a;
    if (op->ngrp || op->req->op != WH_OP_APPEND) return op->ngrp;
    const char *o0 = ap_param(op->req, "offset");
    bool has_off = o0 && *o0;
    uint64_t expect = 0;
    if (has_off && !parse_u64(o0, &expect)) return 0;
    uint64_t bytes = body_len(op->req);
    expect += bytes;
    aop **v = malloc(sizeof *v * AP_GROUP_OPS);
    if (!v) return 0;
    int n = 0, scanned = 0;
    pthread_mutex_lock(&a->mu);
    for (aop *x = op->next; x && scanned < AP_GROUP_SCAN && n < AP_GROUP_OPS; x = x->next, scanned++) {
        if (!ops_conflict(op, x)) continue;
        const apply_req *q = x->req;
        if (x->started || q->op != WH_OP_APPEND || q->resync || x->prep_err[0] || strcmp(q->path, op->req->path) != 0)
            break;
        const char *xo = ap_param(q, "offset");
        bool xhas = xo && *xo;
        uint64_t xv = 0;
        if (xhas != has_off || (!xhas && q->maybe_sent)) break;
        if (xhas && (!parse_u64(xo, &xv) || xv != expect)) break;
        uint64_t xl = body_len(q);
        if (bytes + xl > AP_GROUP_BYTES) break;
        if (ap_covered(a, x, true, NULL, 0)) break;
        x->started = true;
        x->leader = op;
        v[n++] = x;
        bytes += xl;
        expect += xl;
    }
    pthread_mutex_unlock(&a->mu);
    if (n == 0) {
        free(v);
        return 0;
    }
    op->grp = v;
    op->ngrp = n;
    return n;
}

void ap_group_release(aop *op)
{
    applier *a = op->a;
    if (!op->ngrp) return;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < op->ngrp; i++) {
        op->grp[i]->started = false;
        op->grp[i]->leader = NULL;
    }
    a->kick = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    free(op->grp);
    op->grp = NULL;
    op->ngrp = 0;
}

/* ================================================================ scheduling */

/* Pick operations that may start now (a->mu held); they are marked started. */
static int collect_runnable(applier *a, aop **out, int max)
{
    int n = 0, scanned = 0;
    for (aop *op = a->head; op && n < max && scanned < AP_SCAN_MAX; op = op->next, scanned++) {
        if (op->started) continue;
        bool blocked = false;
        for (aop *e = a->head; e != op && !blocked; e = e->next) blocked = ops_conflict(e, op);
        if (blocked) continue;
        op->started = true;
        op->counted = true;
        a->in_flight++;
        out[n++] = op;
    }
    return n;
}

/* How a worker pass got the operation it runs. */
typedef enum wk_how { WK_RESEND, WK_TIMER, WK_PROBE } wk_how;

/* The next operation with something due (a->mu held), or NULL. */
static aop *next_due(applier *a, int64_t now, wk_how *how)
{
    if (a->ready) {
        *how = WK_RESEND;
        return fifo_pop(&a->ready, &a->ready_tail);
    }
    if (a->timers && (a->abandon || a->timers->due_ms <= now)) {
        aop *op = a->timers;
        a->timers = op->qnext;
        op->qnext = NULL;
        *how = WK_TIMER;
        return op;
    }
    for (int s = 0; s < 2; s++) {
        ap_breaker *b = &a->brk[s];
        if (!b->wait_head) continue;
        if (a->abandon || !b->open) {
            *how = WK_RESEND;
            return fifo_pop(&b->wait_head, &b->wait_tail);
        }
        if (!b->probing && now >= b->next_probe_ms) {
            aop *op = fifo_pop(&b->wait_head, &b->wait_tail);
            b->probing = true;
            op->probe = true;
            b->next_probe_ms = now + a->brk_probe_ms;
            *how = WK_PROBE;
            return op;
        }
    }
    return NULL;
}

/* When the worker must wake up next (a->mu held): a timer or a breaker's probe; -1 for never. */
static int64_t next_wake(applier *a)
{
    int64_t t = a->timers ? a->timers->due_ms : -1;
    for (int s = 0; s < 2; s++) {
        const ap_breaker *b = &a->brk[s];
        if (b->open && b->wait_head && !b->probing && (t < 0 || b->next_probe_ms < t)) t = b->next_probe_ms;
    }
    return t;
}

static void *worker_main(void *arg)
{
    applier *a = arg;
    aop *batch[AP_CONC_MAX];
    pthread_mutex_lock(&a->mu);
    for (;;) {
        if (a->in_head) {
            aop *list = a->in_head;
            a->in_head = a->in_tail = NULL;
            pthread_mutex_unlock(&a->mu);
            for (aop *op = list; op; op = op->qnext) op_prepare(op);
            pthread_mutex_lock(&a->mu);
            while (list) {
                aop *op = list;
                list = op->qnext;
                op->qnext = NULL;
                op->prev = a->tail;
                if (a->tail) a->tail->next = op;
                else a->head = op;
                a->tail = op;
            }
            a->kick = true;
            continue;
        }
        int64_t now = ap_mono_ms();
        wk_how how = WK_RESEND;
        aop *due = next_due(a, now, &how);
        if (due) {
            bool ab = a->abandon;
            pthread_mutex_unlock(&a->mu);
            if (ab) {
                ap_op_finish(due, APPLY_STOPPED, STOP_MSG);
            } else if (how == WK_TIMER && due->wake) {
                ap_step w = due->wake;
                due->wake = NULL;
                w(due);
            } else if (how == WK_PROBE) {
                LOGI("msg=\"circuit breaker probe\" upstream=%s seq=%" PRIu64 " op=%s path=\"%s\"",
                     side_name[due->is_g1 ? 0 : 1], due->req->seq, ap_op_name(due->req->op), due->req->path);
                send_now(due);
            } else {
                resend(due);
            }
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (a->kick) {
            a->kick = false;
            int n = 0;
            if (a->abandon) {
                for (aop *op = a->head; op && n < AP_CONC_MAX; op = op->next)
                    if (!op->started) {
                        op->started = true;
                        batch[n++] = op;
                    }
                if (n == AP_CONC_MAX) a->kick = true;
            } else if (a->in_flight < a->conc) {
                n = collect_runnable(a, batch, (int)(a->conc - a->in_flight));
            }
            bool ab = a->abandon;
            pthread_mutex_unlock(&a->mu);
            for (int i = 0; i < n; i++) {
                if (ab) ap_op_finish(batch[i], APPLY_STOPPED, STOP_MSG);
                else ap_op_start(batch[i]);
            }
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (a->quit) break;
        int64_t at = next_wake(a);
        if (at >= 0) {
            int64_t wait = at - now;
            if (wait < 1) wait = 1;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        } else {
            pthread_cond_wait(&a->cv, &a->mu);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ================================================================ public */

static unsigned or_default(unsigned v, unsigned def)
{
    return v ? v : def;
}

int applier_new(const dp_config *cfg, httpc *http, gen1c *g1, apply_gate_fn gate, void *gate_ud, applier **out,
                char *err, size_t errlen)
{
    *out = NULL;
    applier *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "applier: out of memory");
        return -1;
    }
    a->cfg = cfg;
    a->http = http;
    a->g1 = g1;
    a->gate = gate;
    a->gate_ud = gate_ud;
    a->conc = or_default(cfg->applier_concurrency, 64);
    if (a->conc > AP_CONC_MAX) a->conc = AP_CONC_MAX;
    a->backoff_base_ms = or_default(cfg->applier_backoff_base_ms, 500);
    a->backoff_cap_ms = or_default(cfg->applier_backoff_cap_ms, 30000);
    if (a->backoff_cap_ms < a->backoff_base_ms) a->backoff_cap_ms = a->backoff_base_ms;
    a->brk_failures = or_default(cfg->applier_breaker_failures, 5);
    a->brk_probe_ms = or_default(cfg->applier_breaker_probe_ms, 2000);
    a->resync_attempts = or_default(cfg->applier_resync_attempts, 3);
    a->brk[0].a = a->brk[1].a = a;
    if (getrandom(&a->rng, sizeof a->rng, 0) != (ssize_t)sizeof a->rng || a->rng == 0)
        a->rng = (uint64_t)real_ms() | 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, &ca);
    pthread_cond_init(&a->idle, &ca);
    pthread_condattr_destroy(&ca);
    if (gen2c_new(cfg, http, &a->g2, err, errlen) != 0) goto fail;
    if (pthread_create(&a->worker, NULL, worker_main, a) != 0) {
        snprintf(err, errlen, "applier: cannot start its thread");
        goto fail;
    }
    a->worker_started = true;
    *out = a;
    return 0;
fail:
    applier_destroy(a);
    return -1;
}

int applier_submit(applier *a, apply_req *req, void (*done)(void *ud, const apply_result *res), void *ud)
{
    aop *op = calloc(1, sizeof *op);
    if (!op) {
        apply_req_free(req);
        return -1;
    }
    op->a = a;
    op->req = req;
    op->done = done;
    op->ud = ud;
    op->tmpfd = -1;
    op->outcome = APPLY_OK;
    op->t0_ms = ap_mono_ms();
    pthread_mutex_lock(&a->mu);
    if (a->stopping) {
        pthread_mutex_unlock(&a->mu);
        ap_op_free(op);
        return -1;
    }
    bool was_empty = !a->in_head; /* otherwise the worker was woken for the list already */
    if (a->in_tail) a->in_tail->qnext = op;
    else a->in_head = op;
    a->in_tail = op;
    a->pending++;
    if (was_empty) pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

uint64_t applier_pending(applier *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->pending;
    pthread_mutex_unlock(&a->mu);
    return n;
}

static json_t *ring_json(const ap_ring *ring)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < ring->n; i++) {
        const ap_rec *r = &ring->r[(ring->next - 1 - i + AP_RING) % AP_RING]; /* newest first */
        json_array_append_new(arr, json_pack("{s:I,s:I,s:s,s:s,s:s}", "seq", (json_int_t)r->seq, "time_ms",
                                             (json_int_t)r->time_ms, "op", ap_op_name(r->op), "path", r->path, "detail",
                                             r->detail));
    }
    return arr;
}

int applier_status_json(applier *a, dbuf *out)
{
    pthread_mutex_lock(&a->mu);
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:s}", "pending", (json_int_t)a->pending,
                          "in_flight", (json_int_t)a->in_flight, "applied", (json_int_t)a->n_applied, "skipped",
                          (json_int_t)(a->n_unmapped + a->n_invalid), "skipped_unmapped", (json_int_t)a->n_unmapped,
                          "skipped_invalid_name", (json_int_t)a->n_invalid, "divergence_count",
                          (json_int_t)a->n_divergence, "resynced", (json_int_t)a->n_resynced, "parked",
                          (json_int_t)a->n_parked, "failure_count", (json_int_t)(a->n_resynced + a->n_parked),
                          "breaker", a->brk[1].open ? "open" : "closed", "breaker_gen1",
                          a->brk[0].open ? "open" : "closed");
    if (o) {
        json_object_set_new(o, "divergences", ring_json(&a->divs));
        json_object_set_new(o, "failures", ring_json(&a->fails));
    }
    pthread_mutex_unlock(&a->mu);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = s ? dbuf_adds(out, s) : -ENOMEM;
    free(s);
    return rc == 0 ? 0 : -1;
}

static void applier_destroy(applier *a)
{
    if (!a) return;
    gen2c_free(a->g2);
    ap_cache_clear(a);
    ap_covers_clear(a);
    for (int i = 0; i < a->nmarks; i++) free(a->marks[i]);
    free(a->marks);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_cond_destroy(&a->idle);
    free(a);
}

void applier_stop(applier *a, unsigned timeout_ms)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    while (a->pending > 0)
        if (pthread_cond_timedwait(&a->idle, &a->mu, &ts) == ETIMEDOUT) break;
    if (a->pending > 0) {
        LOGW("msg=\"applier stopping with writes not mirrored: the journal keeps them\" pending=%" PRIu64, a->pending);
        a->abandon = true; /* queued and waiting operations stop now; running ones at their next step */
        a->kick = true;
    }
    a->quit = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->worker_started) pthread_join(a->worker, NULL);
    /* While httpc still runs (gen2client's shut-down order): calls waiting for a token end now. */
    gen2c_stop(a->g2);
    pthread_mutex_lock(&a->mu);
    bool now = a->pending == 0;
    if (!now) a->orphaned = true; /* the last running operation frees the applier (httpc_stop cancels them) */
    pthread_mutex_unlock(&a->mu);
    if (now) applier_destroy(a);
}
