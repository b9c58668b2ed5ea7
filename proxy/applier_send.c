/*
 * applier_send: how an operation's requests reach the upstreams (see applier.c for the whole).
 * The timer list and full-jitter backoff, the circuit breaker per upstream (Gen1 look-ups, Gen2),
 * and sending: one Gen1 or Gen2 request per step, its answer on the httpc thread, a transient
 * failure parked for a re-send (Retry-After honoured), a breaker that is open holding sends back.
 * Account-level problems (gen2c_classify: a filesystem that does not exist, a credential or role Gen2
 * refuses, an account that does not resolve) are no failure of the operation: its breaker (the
 * filesystem's, or the Gen2 breaker for the whole account) opens at once, the operation waits on it
 * without its attempt being counted, and the breaker's probe (the first held operation) tells when the
 * problem is fixed; then everything held goes out again.
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
        ap_op_finish(op, APPLY_STOPPED, AP_STOP_MSG);
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

const char *const ap_side_name[2] = {"gen1", "gen2"};

typedef enum brk_verdict { BRK_NONE = 0, BRK_FAIL, BRK_ALIVE } brk_verdict;

/* Append op to a FIFO (a->mu held). */
void ap_fifo_push(aop **head, aop **tail, aop *op)
{
    op->qnext = NULL;
    if (*tail) (*tail)->qnext = op;
    else *head = op;
    *tail = op;
}

aop *ap_fifo_pop(aop **head, aop **tail)
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
    gen2c_problem was = GEN2C_PROB_NONE;
    int64_t since = 0;
    unsigned held = 0;
    pthread_mutex_lock(&a->mu);
    if (op && op->probe) {
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
            was = b->problem;
            since = b->problem_since_ms;
            b->problem = GEN2C_PROB_NONE;
            aop *w;
            while ((w = ap_fifo_pop(&b->wait_head, &b->wait_tail))) {
                ap_fifo_push(&a->ready, &a->ready_tail, w);
                held++;
            }
            for (aop **pp = &a->timers; *pp;) {
                aop *t = *pp;
                if (!t->wake && (t->is_g1 ? 0 : 1) == side) {
                    *pp = t->qnext;
                    ap_fifo_push(&a->ready, &a->ready_tail, t);
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
        LOGW("msg=\"circuit breaker open: sends held back\" upstream=%s failures=%u probe_ms=%u", ap_side_name[side], fails,
             a->brk_probe_ms);
    }
    if (closed && was != GEN2C_PROB_NONE) ap_acct_log_clear("", was, since, held);
    else if (closed) LOGI("msg=\"circuit breaker closed\" upstream=%s", ap_side_name[side]);
}

/* ================================================================ account-level problems */

/* Open b for problem p (a->mu held). Returns true when p is new for b (to be logged). */
static bool problem_open(applier *a, ap_breaker *b, gen2c_problem p, const char *detail, int64_t next_probe_ms)
{
    if (!b->open) {
        b->open = true;
        b->next_probe_ms = next_probe_ms;
    }
    if (b->problem == p) return false;
    b->problem = p;
    snprintf(b->problem_detail, sizeof b->problem_detail, "%s", detail);
    b->problem_since_ms = ap_real_ms();
    return true;
}

/* Make the first operation waiting on filesystem breaker b its probe, sent when the probe is due
 * (a->mu held). Every wait list of an open filesystem breaker has a probe going or coming. */
static void fs_probe_handoff(applier *a, ap_breaker *b)
{
    if (!b->open || b->probing || !b->wait_head) return;
    aop *w = ap_fifo_pop(&b->wait_head, &b->wait_tail);
    int64_t now = ap_mono_ms();
    b->probing = true;
    w->fs_probe = true;
    w->wake = NULL;
    w->due_ms = b->next_probe_ms > now ? b->next_probe_ms : now;
    timer_insert(a, w);
    pthread_cond_signal(&a->cv);
}

/* Close filesystem breaker b (a->mu held): everything it held goes out again. Returns how many. */
static unsigned fs_close(applier *a, ap_breaker *b)
{
    unsigned n = 0;
    aop *w;
    b->open = false;
    b->probing = false;
    b->problem = GEN2C_PROB_NONE;
    while ((w = ap_fifo_pop(&b->wait_head, &b->wait_tail))) {
        ap_fifo_push(&a->ready, &a->ready_tail, w);
        n++;
    }
    pthread_cond_signal(&a->cv);
    return n;
}

/* Gen2 answered op's request for its filesystem with no account-level problem: close the
 * filesystem's breaker if one held it. */
static void fs_fine(aop *op)
{
    applier *a = op->a;
    ap_breaker *b = ap_acct_fsbrk(a, op->rq_fs);
    if (!b) return;
    gen2c_problem was = GEN2C_PROB_NONE;
    int64_t since = 0;
    unsigned held = 0;
    pthread_mutex_lock(&a->mu);
    if (op->fs_probe) {
        op->fs_probe = false;
        b->probing = false;
    }
    if (b->open) {
        was = b->problem;
        since = b->problem_since_ms;
        held = fs_close(a, b);
    }
    pthread_mutex_unlock(&a->mu);
    if (was != GEN2C_PROB_NONE) ap_acct_log_clear(b->fs, was, since, held);
}

void ap_acct_fine(applier *a, const char *fs, bool checkable)
{
    breaker_note(a, 1, NULL, BRK_ALIVE); /* Gen2 answered: the account's credential and name are fine */
    ap_breaker *b = ap_acct_fsbrk(a, fs);
    if (!b) return;
    gen2c_problem was = GEN2C_PROB_NONE;
    int64_t since = 0;
    unsigned held = 0;
    pthread_mutex_lock(&a->mu);
    if (b->open && (checkable || b->problem != GEN2C_PROB_AUTHORIZATION)) {
        was = b->problem;
        since = b->problem_since_ms;
        held = fs_close(a, b);
    }
    pthread_mutex_unlock(&a->mu);
    if (was != GEN2C_PROB_NONE) ap_acct_log_clear(b->fs, was, since, held);
}

void ap_acct_problem(applier *a, const char *fs, gen2c_problem p, const char *detail)
{
    bool per_fs = gen2c_problem_per_fs(p);
    ap_breaker *b = per_fs ? ap_acct_fsbrk(a, fs) : NULL;
    if (per_fs) breaker_note(a, 1, NULL, BRK_ALIVE);
    if (!b) b = &a->brk[1];
    pthread_mutex_lock(&a->mu);
    bool was_open = b->open;
    /* Nothing is held yet: the first write to come is the probe, at once. */
    bool fresh = problem_open(a, b, p, detail, ap_mono_ms());
    pthread_mutex_unlock(&a->mu);
    if (!was_open && b == &a->brk[1]) metrics_inc(a->mx.trips[1]);
    if (fresh) ap_acct_log_start(a, b->fs, p, detail);
    if (fresh && p == GEN2C_PROB_FS_NOT_FOUND) ap_acct_maybe_create(a, b->fs);
}

/*
 * op's request met account-level problem p (r: the answer, freed here). The operation is held, not
 * failed: its attempt does not count, no resync starts, nothing is parked. On a filesystem's breaker
 * it becomes the probe (re-sent after applier.breaker_probe_ms from the timer list) unless another
 * one is out; on the Gen2 breaker it waits for the worker's probe.
 */
static void acct_hold(aop *op, httpc_resp *r, gen2c_problem p)
{
    applier *a = op->a;
    char what[200];
    ap_resp_what(op, r, what, sizeof what);
    httpc_resp_free(r);
    free(r);
    op->attempt--;
    ap_first(op, false);
    bool per_fs = gen2c_problem_per_fs(p);
    ap_breaker *b = per_fs ? ap_acct_fsbrk(a, op->rq_fs) : NULL;
    if (b) breaker_note(a, 1, op, BRK_ALIVE); /* Gen2 answered: the account itself is fine */
    else b = &a->brk[1];
    int64_t now = ap_mono_ms();
    pthread_mutex_lock(&a->mu);
    if (a->abandon) {
        pthread_mutex_unlock(&a->mu);
        ap_op_finish(op, APPLY_STOPPED, AP_STOP_MSG);
        return;
    }
    bool was_open = b->open;
    bool fresh = problem_open(a, b, p, what, now + a->brk_probe_ms);
    if (b != &a->brk[1]) {
        if (op->fs_probe) b->probing = false;
        op->fs_probe = false;
        b->next_probe_ms = now + a->brk_probe_ms;
        ap_fifo_push(&b->wait_head, &b->wait_tail, op);
        fs_probe_handoff(a, b);
    } else {
        if (op->probe) {
            op->probe = false;
            b->probing = false;
            b->next_probe_ms = now + a->brk_probe_ms;
        }
        ap_fifo_push(&b->wait_head, &b->wait_tail, op);
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    if (!was_open && b == &a->brk[1]) metrics_inc(a->mx.trips[1]);
    if (fresh) ap_acct_log_start(a, b->fs, p, what);
    if (fresh && p == GEN2C_PROB_FS_NOT_FOUND) ap_acct_maybe_create(a, b->fs);
}

/* ================================================================ sending */

static void on_answer(void *ud, httpc_resp *r);

/* Send the current request (op->rq or the Gen1 look-up) now. */
void ap_send_now(aop *op)
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
        c.client_request_id = op->req->request_id[0] ? op->req->request_id : NULL;
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
        ap_breaker *fb = op->fs_probe ? ap_acct_fsbrk(op->a, op->rq_fs) : NULL;
        if (fb) {
            pthread_mutex_lock(&op->a->mu);
            op->fs_probe = false;
            fb->probing = false;
            fs_probe_handoff(op->a, fb);
            pthread_mutex_unlock(&op->a->mu);
        }
        ap_op_finish(op, APPLY_FAILED, "%s request could not be sent (%s %s)", op->is_g1 ? "Gen1" : "Gen2",
                     op->is_g1 ? "GET" : op->rq.method, op->is_g1 ? op->g1_query : op->rq.query);
    }
}

/* Send the current request, unless its upstream's breaker is open: then it waits on the breaker's
 * list (the worker sends the first waiting one as the probe when its time comes). */
void ap_resend(aop *op)
{
    applier *a = op->a;
    ap_breaker *b = &a->brk[op->is_g1 ? 0 : 1];
    pthread_mutex_lock(&a->mu);
    if (a->abandon) {
        pthread_mutex_unlock(&a->mu);
        ap_op_finish(op, APPLY_STOPPED, AP_STOP_MSG);
        return;
    }
    ap_breaker *fb = op->is_g1 ? NULL : ap_acct_fsbrk(a, op->rq_fs);
    if (fb && !fb->open) {
        op->fs_probe = false;
    } else if (fb && !op->fs_probe) {
        /* Its filesystem has an account-level problem: wait behind the probe, or be the probe. */
        ap_fifo_push(&fb->wait_head, &fb->wait_tail, op);
        fs_probe_handoff(a, fb);
        pthread_mutex_unlock(&a->mu);
        return;
    } else if (fb) {
        fb->next_probe_ms = ap_mono_ms() + a->brk_probe_ms;
    }
    if (b->open) {
        int64_t now = ap_mono_ms();
        if (b->probing || b->wait_head || now < b->next_probe_ms) {
            ap_fifo_push(&b->wait_head, &b->wait_tail, op);
            pthread_cond_signal(&a->cv);
            pthread_mutex_unlock(&a->mu);
            return;
        }
        b->probing = true;
        op->probe = true;
        b->next_probe_ms = now + a->brk_probe_ms;
    }
    pthread_mutex_unlock(&a->mu);
    ap_send_now(op);
}

/* One log line when the proxy's Gen1 identity stops (or starts again) being usable, not one per
 * request: the cause is remembered and logged again only when it changes. */
static void ident_note(applier *a, int side, const httpc_resp *r)
{
    if (side != 0 || (r->result != HTTPC_E_AUTH && r->result != HTTPC_OK)) return;
    bool failed = r->result == HTTPC_E_AUTH;
    char was[sizeof a->g1_ident_err];
    pthread_mutex_lock(&a->mu);
    snprintf(was, sizeof was, "%s", a->g1_ident_err);
    bool changed = failed ? strcmp(was, r->error) != 0 : was[0] != 0;
    if (changed) snprintf(a->g1_ident_err, sizeof a->g1_ident_err, "%s", failed ? r->error : "");
    pthread_mutex_unlock(&a->mu);
    if (!changed) return;
    if (failed)
        LOGW("msg=\"the proxy's Gen1 identity cannot be had: writer-less Gen1 work waits and is retried\" "
             "cause=\"%s\"", r->error);
    else
        LOGI("msg=\"the proxy's Gen1 identity works again\"");
}

/* Every answer comes here (httpc thread): retry what is worth retrying, else hand it to the step. */
static void on_answer(void *ud, httpc_resp *r)
{
    aop *op = ud;
    applier *a = op->a;
    int side = op->is_g1 ? 0 : 1;
    ap_count_answer(op, r);
    gen2c_problem prob = side == 1 ? gen2c_problem_of(r) : GEN2C_PROB_NONE;
    if (prob != GEN2C_PROB_NONE) {
        acct_hold(op, r, prob);
        return;
    }
    /* HTTPC_E_AUTH (gen2c could get no token; the auth module already retried the token service) is
     * an account-level problem: held above. On the Gen1 side it means the proxy's own identity could not be had (token service
     * down, bad secret, unreadable token file): the Gen1 side is unavailable for writer-less work,
     * which waits (breaker, retries) and is never parked for it. */
    bool no_ident = side == 0 && r->result == HTTPC_E_AUTH;
    ident_note(a, side, r);
    bool transport = r->result == HTTPC_E_CONNECT || r->result == HTTPC_E_TIMEOUT || r->result == HTTPC_E_TRANSPORT ||
                     r->result == HTTPC_E_NOMEM || no_ident;
    bool transient = transport || (r->result == HTTPC_OK && xlate_retryable(false, r->status));
    breaker_note(a, side, op, transient ? BRK_FAIL : r->result == HTTPC_OK ? BRK_ALIVE : BRK_NONE);
    if (side == 1 && !transient && r->result == HTTPC_OK) fs_fine(op);
    if (r->result == HTTPC_E_CANCELLED) {
        httpc_resp_free(r);
        free(r);
        ap_op_finish(op, APPLY_STOPPED, AP_STOP_MSG " (request cancelled)");
        return;
    }
    if (transient) {
        int64_t d = ap_backoff_ms(a, op->attempt - 1);
        int64_t ra = r->result == HTTPC_OK ? xlate_retry_after_ms(httpc_resp_header(r, "Retry-After"), ap_real_ms()) : -1;
        if (ra > (int64_t)a->backoff_cap_ms) ra = a->backoff_cap_ms;
        if (ra > d) d = ra;
        /* While the breaker is open its probe paces the retries, not each operation's own backoff: the
         * operation goes straight back to the breaker's wait list (through ap_resend), so that when the
         * probe goes through every waiting path is sent again at once, however long the backoff it
         * would have grown during the outage. A Retry-After delays the next probe instead. */
        ap_breaker *b = &a->brk[side];
        pthread_mutex_lock(&a->mu);
        if (b->open) {
            if (ra > 0 && b->next_probe_ms < ap_mono_ms() + ra) b->next_probe_ms = ap_mono_ms() + ra;
            d = 0;
        }
        pthread_mutex_unlock(&a->mu);
        char what[300];
        ap_resp_what(op, r, what, sizeof what);
        LOGI("msg=\"gen2 apply retry\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" attempt=%d after_ms=%" PRId64
             " cause=\"%s\"",
             op->req->seq, AP_RID(op->req), ap_op_name(op->req->op), op->req->path, op->attempt, d, what);
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
    if (ab) ap_op_finish(op, APPLY_STOPPED, AP_STOP_MSG);
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
    ap_resend(op);
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

/* A Gen1 look-up on path ("op=X" + the writer's user.name/doas/delegation): gen1c_get swaps in the proxy's
 * own identity when gen1.auth sets one. */
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
    ap_resend(op);
}

void ap_g1_get(aop *op, const char *path, const char *g1op, const char *extra, httpc_body_out out, int fd,
               ap_handler h)
{
    g1_send(op, path, g1op, extra, out, AP_JSON_MAX, fd, h);
}

void ap_g1_list(aop *op, const char *path, const char *extra, ap_handler h)
{
    /* Hadoop NameNodes page only LISTSTATUS_BATCH (startAfter); ADLS Gen1 pages LISTSTATUS */
    bool hadoop = op->a->cfg->gen1_dialect == CFG_DIALECT_HADOOP;
    g1_send(op, path, hadoop ? "LISTSTATUS_BATCH" : "LISTSTATUS", extra, HTTPC_BODY_MEMORY, AP_LIST_MAX, -1, h);
}

