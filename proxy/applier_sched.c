/*
 * applier_sched: the worker thread (see applier.c for the whole). It prepares each submitted
 * operation (the Gen1 paths it touches), keeps the submission-ordered list of unfinished operations,
 * gathers APPEND groups, starts what no earlier unfinished operation blocks (at most
 * applier.concurrency at a time), and runs due timers, re-sends and breaker probes.
 */
#include "applier_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

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

/* An APPEND just applied: whether the next operation touching its paths is another APPEND of the same file
 * that has not started (the end of a burst writes the file's digest once, after its last APPEND). */
bool ap_append_follows(aop *op)
{
    applier *a = op->a;
    bool follows = false;
    int scanned = 0;
    pthread_mutex_lock(&a->mu);
    for (aop *n = op->next; n && scanned < AP_SCAN_MAX; n = n->next, scanned++) {
        if (n->leader == op || !ops_conflict(op, n)) continue; /* (its group's members end with it) */
        follows = !n->started && !n->req->resync && !n->prep_err[0] && n->req->op == WH_OP_APPEND &&
                  strcmp(n->req->path, op->req->path) == 0;
        break;
    }
    pthread_mutex_unlock(&a->mu);
    return follows;
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

/*
 * Pick operations that may start now (a->mu held); they are marked started. One walk over every
 * unfinished operation in submission order: an operation may start when none of its paths relates to
 * a path of an unfinished operation before it (relset: a look-up per path, whatever the number of
 * operations before it). So blocked operations at the head (a path that keeps failing) cost a hash
 * look-up each and never hide runnable ones behind them; how many operations are unfinished at once
 * is bounded by the pipeline's window (applier.max_in_memory).
 */
static int collect_runnable(applier *a, aop **out, int max)
{
    int n = 0;
    rset_clear(&a->sched);
    for (aop *op = a->head; op && n < max; op = op->next) {
        bool blocked = op->started;
        for (int i = 0; i < op->ntouch && !blocked; i++) blocked = rset_hits_path(&a->sched, op->touch[i]);
        bool oom = false;
        if (op->next) /* the last one blocks nothing behind it */
            for (int i = 0; i < op->ntouch && !oom; i++) oom = rset_add_path(&a->sched, op->touch[i]) != 0;
        if (!blocked) {
            op->started = true;
            op->counted = true;
            a->in_flight++;
            out[n++] = op;
        }
        if (oom) {
            /* what follows cannot be checked against this one: try again at the next pass */
            a->kick = true;
            break;
        }
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
        return ap_fifo_pop(&a->ready, &a->ready_tail);
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
            return ap_fifo_pop(&b->wait_head, &b->wait_tail);
        }
        if (!b->probing && now >= b->next_probe_ms) {
            aop *op = ap_fifo_pop(&b->wait_head, &b->wait_tail);
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

void *ap_worker_main(void *arg)
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
                ap_op_finish(due, APPLY_STOPPED, AP_STOP_MSG);
            } else if (how == WK_TIMER && due->wake) {
                ap_step w = due->wake;
                due->wake = NULL;
                w(due);
            } else if (how == WK_PROBE) {
                LOGI("msg=\"circuit breaker probe\" upstream=%s seq=%" PRIu64 " rid=%s op=%s path=\"%s\"",
                     ap_side_name[due->is_g1 ? 0 : 1], due->req->seq, AP_RID(due->req), ap_op_name(due->req->op),
                     due->req->path);
                ap_send_now(due);
            } else {
                ap_resend(due);
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
                if (ab) ap_op_finish(batch[i], APPLY_STOPPED, AP_STOP_MSG);
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

