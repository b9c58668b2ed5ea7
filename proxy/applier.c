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
 * This file holds the queue, outcomes, metrics and the public API; the timer list, breakers and
 * sending are in applier_send.c, preparation, ordering, APPEND groups and the worker's scheduling in
 * applier_sched.c, the operations themselves in applier_ops.c, copying from Gen1 in applier_copy.c,
 * subtree copies and resyncs in applier_resync.c, the shared cache, marks and covers in
 * applier_state.c (applier_int.h lists what crosses files).
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

/* ================================================================ small helpers */

int64_t ap_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ap_real_ms(void)
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
    for (int i = 0; i < XLATE_META_REQS; i++) xlate_g2req_free(&op->mreq[i]);
    free(op->probe_node.g1);
    free(op->probe_node.g2);
    ap_copy_free(op);
    if (op->tmpfd >= 0) close(op->tmpfd);
    xlate_paths_free(&op->srcs);
    free(op->srcdir);
    free(op->cont);
    free(op->dg_etag);
    free(op->dg_props);
    free(op->ids_spec);
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
    r->time_ms = ap_real_ms();
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

void ap_count_answer(aop *op, const httpc_resp *r)
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

void applier_forget_gen2_state(applier *a)
{
    dgc_drop_tree(a->dg, "/");
    pthread_mutex_lock(&a->mu);
    ap_cache_clear(a);
    pthread_mutex_unlock(&a->mu);
}

void applier_set_spool(applier *a, spool *sp)
{
    pthread_mutex_lock(&a->mu);
    a->sp = sp;
    pthread_mutex_unlock(&a->mu);
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
    static const char *const dg_what[4] = {"written", "deferred", "unknown", "failed"};
    for (int i = 0; i < 4; i++) {
        snprintf(labels, sizeof labels, "result=\"%s\"", dg_what[i]);
        mx->digest[i] = metrics_counter_get(m, "dualpipe_applier_digest_total",
                                            "APPENDs by what became of the file's CRC-32C digest (dualpipe_crc32c) "
                                            "after them: written, deferred (remembered for a later APPEND or the "
                                            "CLOSE to write), unknown (none kept), failed (Gen2 refused the write).",
                                            labels);
        bad |= !mx->digest[i];
    }
    bad |= ap_acct_register_metrics(a, m) != 0;
    bad |= metrics_gauge_fn(m, "dualpipe_applier_in_flight", "Writes being applied to Gen2 now.", NULL, in_flight_fn,
                            a) != 0;
    mx->m = m;
    if (a->ids) bad |= ap_ids_register_metrics(a->ids, m) != 0;
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

/* A RESYNC record (`dualpipe journal resync PATH`, POST /admin/journal/resync): the operator's own
 * operation, with no WebHDFS op behind it; resyncing is its success, not a failed write's fallback. */
static bool requested_resync(const apply_req *q) { return q->resync && q->op == WH_OP_UNKNOWN; }

static void log_outcome(const aop *op)
{
    const apply_req *q = op->req;
    switch (op->outcome) {
    case APPLY_OK:
        LOGD("msg=applied seq=%" PRIu64 " rid=%s op=%s path=\"%s\"%s%s%s", q->seq, AP_RID(q), ap_op_name(q->op), q->path,
             op->detail[0] ? " detail=\"" : "", op->detail, op->detail[0] ? "\"" : "");
        break;
    case APPLY_SKIPPED_UNMAPPED:
        LOGD("msg=\"not mirrored\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, AP_RID(q), ap_op_name(q->op),
             q->path, op->detail);
        break;
    case APPLY_SKIPPED_INVALID_NAME:
        LOGW("msg=\"not mirrored\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, AP_RID(q), ap_op_name(q->op),
             q->path, op->detail);
        break;
    case APPLY_DIVERGENCE:
        LOGW("msg=divergence seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, AP_RID(q), ap_op_name(q->op), q->path,
             op->detail);
        break;
    case APPLY_RESYNCED:
        if (requested_resync(q))
            LOGI("msg=\"resynced from gen1\" seq=%" PRIu64 " rid=%s op=RESYNC path=\"%s\" detail=\"%s\"", q->seq,
                 AP_RID(q), q->path, op->detail);
        else
            LOGW("msg=\"resynced from gen1\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, AP_RID(q),
                 ap_op_name(q->op), q->path, op->detail);
        break;
    case APPLY_PARKED:
        LOGE("msg=\"gen2 apply parked\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq, AP_RID(q), ap_op_name(q->op),
             q->path, op->detail);
        break;
    case APPLY_STOPPED:
        LOGI("msg=\"left for the next start\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", q->seq,
             AP_RID(q), ap_op_name(q->op), q->path, op->detail);
        break;
    case APPLY_FAILED: break; /* (never here) */
    }
}

/* The operation is over: count it, tell the submitter, free it, let the worker schedule more. A
 * failure turns into a resync instead; a group's members end with their leader's outcome. */
void ap_op_done(aop *op)
{
    ap_copy_free(op); /* a copy that ended here (failed) gives its spool room back and its real path */
    if (op->job) {
        ap_resync_piece_done(op);
        return;
    }
    applier *a = op->a;
    ap_dg_forget(op, false);
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
        snprintf(op->detail, sizeof op->detail, AP_STOP_MSG);
    }
    ap_ids_settle(op);
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
    case APPLY_RESYNCED:
        a->n_resynced++;
        if (!requested_resync(op->req)) {
            a->n_failures++;
            ring_add(&a->fails, op);
        }
        break;
    case APPLY_PARKED:
        a->n_parked++;
        a->n_failures++;
        ring_add(&a->fails, op);
        break;
    case APPLY_STOPPED: a->n_stopped++; break;
    case APPLY_FAILED: break;
    }
    a->kick = true;
    pthread_cond_signal(&a->cv);
    if (a->pending == 0) pthread_cond_broadcast(&a->idle);
    bool last = a->orphaned && a->pending == 0 && a->calls_out == 0;
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
    a->brk_probe_ms = or_default(cfg->applier_breaker_probe_ms, 500);
    a->resync_attempts = or_default(cfg->applier_resync_attempts, 3);
    a->part_bytes = cfg->applier_copy_part_bytes ? cfg->applier_copy_part_bytes : 64ull << 20;
    a->dg = dgc_new(cfg->applier_digest_cache_entries);
    a->dg_interval_ms = cfg->applier_digest_interval_ms;
    if (!a->dg) {
        snprintf(err, errlen, "applier: out of memory");
        goto fail;
    }
    a->brk[0].a = a->brk[1].a = a;
    if (ap_acct_init(a) != 0) {
        snprintf(err, errlen, "applier: out of memory");
        goto fail;
    }
    if (getrandom(&a->rng, sizeof a->rng, 0) != (ssize_t)sizeof a->rng || a->rng == 0)
        a->rng = (uint64_t)ap_real_ms() | 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, &ca);
    pthread_cond_init(&a->idle, &ca);
    pthread_condattr_destroy(&ca);
    if (gen2c_new(cfg, http, &a->g2, err, errlen) != 0) goto fail;
    if (ap_ids_new(a, cfg, &a->ids, err, errlen) != 0) goto fail;
    if (pthread_create(&a->worker, NULL, ap_worker_main, a) != 0) {
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

void applier_on_identity_change(applier *a, void (*fn)(void *ud), void *ud)
{
    ap_ids_on_change(a->ids, fn, ud);
}

void applier_reread_identity_map(applier *a)
{
    ap_ids_reread(a->ids);
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
                          (json_int_t)a->n_parked, "failure_count", (json_int_t)a->n_failures,
                          "breaker", a->brk[1].open ? "open" : "closed", "breaker_gen1",
                          a->brk[0].open ? "open" : "closed");
    if (o) {
        json_object_set_new(o, "gen2_problems", ap_acct_status_json(a));
        json_object_set_new(o, "divergences", ring_json(&a->divs));
        json_object_set_new(o, "failures", ring_json(&a->fails));
        /* why the proxy's own Gen1 identity cannot be had right now ("" when it works or is unused) */
        json_object_set_new(o, "gen1_identity_error", json_string(a->g1_ident_err));
    }
    pthread_mutex_unlock(&a->mu);
    if (o && a->ids) json_object_set_new(o, "identity", ap_ids_json(a->ids));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = s ? dbuf_adds(out, s) : -ENOMEM;
    free(s);
    return rc == 0 ? 0 : -1;
}

void ap_call_done(applier *a)
{
    pthread_mutex_lock(&a->mu);
    a->calls_out--;
    bool last = a->orphaned && a->pending == 0 && a->calls_out == 0;
    pthread_mutex_unlock(&a->mu);
    if (last) applier_destroy(a);
}

static void applier_destroy(applier *a)
{
    if (!a) return;
    ap_ids_free(a->ids);
    dgc_free(a->dg);
    gen2c_free(a->g2);
    ap_acct_free(a);
    ap_cache_clear(a);
    ap_covers_clear(a);
    for (int i = 0; i < a->nmarks; i++) free(a->marks[i]);
    free(a->marks);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_cond_destroy(&a->idle);
    rset_free(&a->sched);
    free(a);
}

int applier_reload(applier *a, const dp_config *nc, bool check, char *err, size_t errlen)
{
    return gen2c_reload(a->g2, nc, check, err, errlen);
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
        ap_acct_release(a); /* (the worker knows the Gen1 and Gen2 breakers' lists, not the filesystems') */
        a->kick = true;
    }
    a->quit = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->worker_started) pthread_join(a->worker, NULL);
    ap_ids_stop(a->ids);
    /* While httpc still runs (gen2client's shut-down order): calls waiting for a token end now. */
    gen2c_stop(a->g2);
    pthread_mutex_lock(&a->mu);
    bool now = a->pending == 0 && a->calls_out == 0;
    if (!now) a->orphaned = true; /* the last running operation frees the applier (httpc_stop cancels them) */
    pthread_mutex_unlock(&a->mu);
    if (now) applier_destroy(a);
}
