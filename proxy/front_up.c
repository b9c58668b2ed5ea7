/*
 * front_up: the upstream leg of a front request. front__dispatch suspends the connection. A write
 * is journaled first (pipe_accept); its durability callback, on the journal's commit thread (or, when
 * an earlier write of the same path was still out at Gen1, on the thread that ended that write: the
 * pipeline's per-path order), sends it to Gen1 through gen1client with the body read straight from its
 * spool region (or, when the journal could not make it durable, ends the suspension with a 503: Gen1
 * never sees it). A read goes to Gen1 at once and its answer is streamed (see "read streams" below).
 *
 * Gen1's answer arrives on the httpc engine thread. For a write it goes to pipe_primary: 2xx is
 * accepted (the pipeline hands it to the applier), except MKDIRS/RENAME/DELETE answered
 * {"boolean": false}, which changed nothing and is aborted like a refusal; another status is a
 * refusal (the record is aborted, Gen2 never sees it), and so is an exchange that ended before the
 * request went out (resp->sent false: nothing reached Gen1). No answer after the request went out
 * (timeout, reset; gen1client never sends a write twice) leaves the outcome unknown: the pipeline
 * settles it by asking Gen1 (settle.h) and on_settled gives the writer Gen1's answer when the check
 * shows the write applied, else a 5xx saying what is known (answer_settled). The answer is stored and the
 * connection resumed, at once or, with ack "both", when pipe_primary's ack callback runs after the
 * first Gen2 attempt. MHD then calls the handler again on its own thread and
 * front__answer_upstream relays Gen1's status, body and relevant headers, unchanged.
 *
 * Every suspension is counted in upstream_calls (front_stop drains them) and ends with exactly one
 * finish_upstream, by whichever thread ends it.
 *
 * Read streams. A read's answer (OPEN data, listings, any JSON) is never held whole: Gen1's head ends
 * the suspension at once (status and relayed headers, Gen1's Content-Length when it gave one, else
 * chunked), and the body goes through a buffer per request (rdbuf.h: 16 KiB, growing to
 * limits.stream_buffer_bytes while every read's buffer together stays within limits.stream_memory_bytes):
 *   - the httpc thread appends what Gen1 sends; when the buffer is full and may not grow the transfer
 *     pauses (HTTPC_PAUSE: libcurl stops reading Gen1's socket) until the reader has taken half of it;
 *   - MHD's content reader takes from it; when it is empty the reader's connection is suspended
 *     (no polling) until the httpc thread appends more or the exchange ends;
 *   - a Gen1 body that breaks off ends the reader's connection with an error (never a short body
 *     that looks complete); a reader that goes away cancels the Gen1 transfer.
 * The fr_stream is shared by the request, its MHD response and the Gen1 exchange (reference counted);
 * everything in it after the head is guarded by its mutex. httpc_ctl_cancel/_resume are only called
 * under that mutex while the exchange has not ended, so the engine is alive when they run (httpc_stop
 * ends every exchange first, and ending one needs the mutex).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front_int.h"
#include "log.h"

/* Headers of Gen1's answer that go back to the writer (MHD sets Content-Length itself). */
static const char *const relay_headers[] = {
    "Content-Type", "Location", "Retry-After", "WWW-Authenticate", "x-ms-request-id",
};
#define NRELAY (sizeof relay_headers / sizeof relay_headers[0])
#define STREAM_BLOCK (64u << 10)  /* MHD's preferred piece size for the content reader */

struct fr_stream {
    pthread_mutex_t mu;
    atomic_int refs;             /* the request, its response (once made) and the Gen1 exchange */
    front *f;
    httpc *http;                 /* the engine the exchange runs on (ctl's resume/cancel) */
    httpc_ctl *ctl;
    g2s_stream g2hooks;          /* gen2-only OPEN: where g2serve sends the bytes (front_g2.c) */
    struct MHD_Connection *conn;
    fr_req *r;                   /* until the suspension ends (httpc thread only), then NULL */
    /* the head: written by on_head before the connection resumes, read-only afterwards */
    atomic_bool head;
    int status;
    int64_t length;              /* Gen1's Content-Length, -1 when it sent none */
    char *hval[NRELAY];
    /* the body, guarded by mu */
    rdbuf rb;
    bool paused;                 /* Gen1's transfer is paused: the buffer was full */
    bool waiting;                /* the reader's connection is suspended: the buffer was empty */
    bool ended;                  /* the exchange is over (its done ran) */
    bool failed;                 /* it ended before Gen1's body was complete */
    bool gone;                   /* the reader side let go (request over) */
    bool counted;                /* in the streaming gauge */
    uint64_t sent;               /* body bytes handed to MHD */
};

/* End r's suspension: resume the connection (r belongs to the MHD thread again from here on and may
 * be freed at any moment) and let front_stop's drain know. */
void front__finish_upstream(fr_req *r)
{
    front *f = r->f;
    MHD_resume_connection(r->conn);
    /* Only front_stop waits for the count: the last call to end once it began wakes it. */
    if (atomic_fetch_sub(&f->upstream_calls, 1) == 1 && atomic_load(&f->stopping)) {
        pthread_mutex_lock(&f->mu);
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->mu);
    }
}

/* End the suspension with a local answer (err: -errno, see front__answer_upstream). */
void front__finish_local(fr_req *r, int err)
{
    atomic_store_explicit(&r->local_err, err, memory_order_release);
    front__finish_upstream(r);
}

bool front__upstream_ready(const fr_req *r)
{
    return atomic_load_explicit(&r->up, memory_order_acquire) != NULL ||
           atomic_load_explicit(&r->g2_done, memory_order_acquire) ||
           atomic_load_explicit(&r->local_err, memory_order_acquire) != 0 ||
           (r->stream && atomic_load_explicit(&r->stream->head, memory_order_acquire));
}

/* ---- Gen1's answer to a write -> the pipeline (httpc thread) ---- */

/* True when a boolean-answering op said {"boolean": false}: Gen1 changed nothing. */
static bool answered_false(const fr_req *r, const httpc_resp *resp)
{
    whreq_op op = r->wr.op;
    if (op != WH_OP_MKDIRS && op != WH_OP_RENAME && op != WH_OP_DELETE) return false;
    if (!resp->body.data || resp->body.len == 0) return false;
    json_t *doc = json_loadb(resp->body.data, resp->body.len, 0, NULL);
    bool no = false;
    if (doc) {
        json_t *b = json_object_get(doc, "boolean");
        no = b && json_is_false(b);
        json_decref(doc);
    }
    return no;
}

/* pipe_primary's ack ("both"): Gen2's first attempt ended; the writer gets Gen1's answer now. */
static void on_acked(void *ud)
{
    front__finish_upstream(ud);
}

/* The pipeline settled a lost answer (settle.h): the writer is answered with what was found. */
static void on_settled(void *ud, stl_verdict v)
{
    fr_req *r = ud;
    atomic_store_explicit(&r->verdict, (int)v, memory_order_release);
    front__finish_upstream(r);
}

/* Tell the pipeline what Gen1 said about journaled write r. Returns true when r's suspension
 * continues (ack "both": on_acked ends it), false when the caller ends it now. */
static bool report_primary(fr_req *r, const httpc_resp *resp)
{
    front *f = r->f;
    pipe_primary_result pr = {.kind = PIPE_P_UNKNOWN, .authorization = r->authorization};
    if (resp->result == HTTPC_OK) {
        pr.status = (int)resp->status;
        pr.gen1_body = resp->body.len > 0 ? resp->body.data : NULL;
        if (resp->status >= 200 && resp->status < 300) {
            pr.kind = PIPE_P_OK;
            pr.changed_nothing = answered_false(r, resp);
            if (pr.changed_nothing) {
                metrics_inc(f->skipped_false);
                LOGD("msg=\"not mirrored: Gen1 answered false\" req=%" PRIu64 " rid=%s op=%s seq=%" PRIu64, r->id,
                     r->rid, r->wr.info->name, r->seq);
            } else {
                metrics_inc(f->applied_submits);
            }
        } else {
            pr.kind = PIPE_P_REFUSED;
            LOGD("msg=\"Gen1 refused a write: aborted\" req=%" PRIu64 " rid=%s op=%s seq=%" PRIu64 " status=%d",
                 r->id, r->rid, r->wr.info->name, r->seq, pr.status);
        }
    } else if (!resp->sent) {
        /* The request never went out (no connection could be made, or the exchange ended before):
         * nothing reached Gen1, so it is aborted. */
        pr.kind = PIPE_P_REFUSED;
        LOGD("msg=\"write not sent to Gen1: aborted\" req=%" PRIu64 " rid=%s seq=%" PRIu64 " result=%s", r->id, r->rid,
             r->seq, httpc_result_str(resp->result));
    } else {
        LOGW("msg=\"no answer from Gen1 for a journaled write: its outcome is unknown\" req=%" PRIu64
             " rid=%s op=%s seq=%" PRIu64 " result=%s detail=\"%s\"",
             r->id, r->rid, r->wr.info->name, r->seq, httpc_result_str(resp->result), resp->error);
        pr.wr = &r->wr;
        pr.body_len = r->body ? r->body->len : 0;
        pr.settled = on_settled;
    }
    return pipe_primary(f->p, r->seq, &pr, on_acked, r) == 0;
}

/* ---- Gen1 exchange ---- */

/* Gen1's exchange in the metrics (httpc thread). */
static void observe_exchange(front *f, const httpc_resp *resp)
{
    if (resp->result == HTTPC_OK) {
        metrics_observe(f->up_latency, resp->total_s);
    } else if ((int)resp->result > 0 && (unsigned)resp->result <= HTTPC_E_AUTH) {
        metrics_inc(f->up_fail[resp->result]);
    }
}

static void upstream_done(void *ud, httpc_resp *resp)
{
    fr_req *r = ud;
    observe_exchange(r->f, resp);
    /* Stored first: with ack "both" the suspension may end on another thread inside report_primary. */
    atomic_store_explicit(&r->up, resp, memory_order_release);
    if (r->journaled && report_primary(r, resp)) return; /* r may be gone already */
    front__finish_upstream(r);
}

/* What every call for r carries: the parsed request, the writer's headers that go to Gen1 and the
 * request id (x-ms-client-request-id). */
static gen1c_call writer_call(const fr_req *r)
{
    gen1c_call call = {
        .req = &r->wr,
        .raw_query = r->query,
        .authorization = r->authorization,
        .content_type = r->content_type,
        .client_request_id = r->rid,
    };
    return call;
}

/* Send write r to Gen1 (its body from the spool region). 0, or -1 when it could not be sent. */
static int send_gen1(fr_req *r)
{
    gen1c_call call = writer_call(r);
    if (r->body) {
        call.in = HTTPC_IN_FD;
        call.in_fd = r->body->fd;
        call.in_off = r->body->off;
        call.in_len = r->body->len;
    }
    call.out = HTTPC_BODY_MEMORY; /* answers to writes are small */
    call.out_max = FRONT_JSON_MAX;
    call.done = upstream_done;
    call.ud = r;
    return gen1c_send(r->f->g1, &call);
}

/* ---- read streams ---- */

static void stream_unref(fr_stream *st)
{
    if (atomic_fetch_sub(&st->refs, 1) != 1) return;
    httpc_ctl_unref(st->ctl);
    for (size_t i = 0; i < NRELAY; i++) free(st->hval[i]);
    rdbuf_free(&st->rb);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* httpc thread: Gen1's final head. Keep what the reader gets and end the suspension. */
static void stream_on_head(void *ud, const httpc_resp *resp)
{
    fr_stream *st = ud;
    int64_t length = -1;
    const char *cl = httpc_resp_header(resp, "Content-Length");
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && *end == '\0' && cl[0] != '-' && v <= INT64_MAX) length = (int64_t)v;
    }
    for (size_t i = 0; i < NRELAY; i++) {
        const char *v = httpc_resp_header(resp, relay_headers[i]);
        if (v) st->hval[i] = strdup(v); /* out of memory: that header is not relayed */
    }
    pthread_mutex_lock(&st->mu); /* stream_let_go reads length */
    st->status = (int)resp->status;
    st->length = length;
    pthread_mutex_unlock(&st->mu);
    fr_req *r = st->r;
    st->r = NULL;
    atomic_store_explicit(&st->head, true, memory_order_release);
    front__finish_upstream(r); /* r belongs to the MHD thread from here on */
}

/* httpc thread: a piece of Gen1's body. Taken whole, or HTTPC_PAUSE while the buffer is full. */
static size_t stream_on_body(void *ud, const char *p, size_t n)
{
    fr_stream *st = ud;
    pthread_mutex_lock(&st->mu);
    if (st->gone) {
        pthread_mutex_unlock(&st->mu);
        return 0; /* nobody reads any more: abort (a cancel is on its way too) */
    }
    rdbuf_put_result pr = rdbuf_put(&st->rb, p, n);
    if (pr == RDBUF_FULL) {
        st->paused = true;
        pthread_mutex_unlock(&st->mu);
        return HTTPC_PAUSE;
    }
    if (pr == RDBUF_NOMEM) {
        pthread_mutex_unlock(&st->mu);
        return 0;
    }
    bool wake = st->waiting;
    st->waiting = false;
    pthread_mutex_unlock(&st->mu);
    if (wake) MHD_resume_connection(st->conn);
    return n;
}

/* httpc thread: the exchange ended. Before the head it is answered like any failed exchange (r still
 * waits); after it, the reader takes what is left and then the end or the error. */
static void stream_done(void *ud, httpc_resp *resp)
{
    fr_stream *st = ud;
    observe_exchange(st->f, resp);
    if (st->r) {
        fr_req *r = st->r;
        st->r = NULL;
        pthread_mutex_lock(&st->mu);
        st->ended = true;
        st->failed = true;
        pthread_mutex_unlock(&st->mu);
        atomic_store_explicit(&r->up, resp, memory_order_release);
        stream_unref(st);
        front__finish_upstream(r);
        return;
    }
    pthread_mutex_lock(&st->mu);
    st->ended = true;
    st->failed = resp->result != HTTPC_OK;
    bool wake = st->waiting;
    st->waiting = false;
    pthread_mutex_unlock(&st->mu);
    if (st->failed)
        LOGW("msg=\"Gen1's read answer broke off: the reader's connection is cut\" result=%s detail=\"%s\" "
             "received=%" PRIu64,
             httpc_result_str(resp->result), resp->error, resp->body_bytes);
    if (wake) MHD_resume_connection(st->conn);
    httpc_resp_free(resp);
    free(resp);
    stream_unref(st);
}

/* MHD thread: the next piece for the reader. Suspends the connection while the buffer is empty. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    fr_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    if (rdbuf_used(&st->rb) > 0) {
        size_t k = rdbuf_take(&st->rb, out, max);
        st->sent += k;
        /* Resume Gen1 once half the buffer is free: fewer pause/resume rounds than at every piece. */
        if (st->paused && !st->ended && rdbuf_used(&st->rb) <= rdbuf_size(&st->rb) / 2) {
            st->paused = false;
            httpc_ctl_resume(st->http, st->ctl);
        }
        pthread_mutex_unlock(&st->mu);
        metrics_add(st->f->bytes_out, k);
        return (ssize_t)k;
    }
    if (st->ended) {
        bool failed = st->failed;
        pthread_mutex_unlock(&st->mu);
        return failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* Nothing yet: wait without polling; stream_on_body or stream_done resumes (it sees waiting only
     * after this unlock, so the resume always follows the suspend). */
    st->waiting = true;
    MHD_suspend_connection(st->conn);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* The reader side lets go: cancel Gen1's transfer if it still runs, drop a reference. A reader that had
 * every byte of a Content-Length answer leaves the exchange to end by itself (its connection to Gen1
 * stays reusable). */
static void stream_let_go(fr_stream *st)
{
    pthread_mutex_lock(&st->mu);
    st->gone = true;
    bool complete = st->length >= 0 && st->sent >= (uint64_t)st->length;
    if (!st->ended && !complete) httpc_ctl_cancel(st->http, st->ctl);
    bool counted = st->counted;
    st->counted = false;
    pthread_mutex_unlock(&st->mu);
    if (counted) metrics_gauge_add(st->f->streaming, -1);
}

/* MHD: the response is destroyed (sent, or the reader went away). */
static void stream_response_free(void *cls)
{
    fr_stream *st = cls;
    stream_let_go(st);
    stream_unref(st);
}

uint64_t front__stream_release(fr_req *r)
{
    fr_stream *st = r->stream;
    r->stream = NULL;
    stream_let_go(st);
    pthread_mutex_lock(&st->mu);
    uint64_t sent = st->sent;
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
    return sent;
}

fr_stream *front__stream_new(fr_req *r, httpc *http)
{
    front *f = r->f;
    fr_stream *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    int brc = rdbuf_init(&st->rb, &f->rdpool, (size_t)f->cfg->stream_buffer_bytes);
    st->ctl = httpc_ctl_new();
    if (brc != 0 || !st->ctl) {
        rdbuf_free(&st->rb);
        httpc_ctl_unref(st->ctl);
        free(st);
        return NULL;
    }
    pthread_mutex_init(&st->mu, NULL);
    atomic_init(&st->refs, 2); /* r and the exchange */
    atomic_init(&st->head, false);
    st->f = f;
    st->http = http;
    st->conn = r->conn;
    st->r = r;
    st->length = -1;
    r->stream = st;
    return st;
}

httpc_ctl *front__stream_ctl(fr_stream *st) { return st->ctl; }
g2s_stream *front__stream_hooks(fr_stream *st) { return &st->g2hooks; }

size_t front__stream_body(void *st, const char *p, size_t n) { return stream_on_body(st, p, n); }

void front__stream_head(fr_stream *st, int status, int64_t length, const char *content_type)
{
    if (content_type) st->hval[0] = strdup(content_type); /* relay_headers[0] is Content-Type */
    pthread_mutex_lock(&st->mu);
    st->status = status;
    st->length = length;
    pthread_mutex_unlock(&st->mu);
    fr_req *r = st->r;
    st->r = NULL;
    atomic_store_explicit(&st->head, true, memory_order_release);
    front__finish_upstream(r);
}

void front__stream_end(fr_stream *st, bool complete)
{
    pthread_mutex_lock(&st->mu);
    st->ended = true;
    st->failed = !complete;
    bool wake = st->waiting;
    st->waiting = false;
    pthread_mutex_unlock(&st->mu);
    if (wake) MHD_resume_connection(st->conn);
    stream_unref(st);
}

void front__stream_abandon(fr_stream *st)
{
    st->r = NULL;
    pthread_mutex_lock(&st->mu);
    st->ended = true;
    st->failed = true;
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

/* Send read r to Gen1 with its answer streamed. 0, or -ECONNREFUSED when it could not be sent. */
static int send_read(fr_req *r)
{
    front *f = r->f;
    fr_stream *st = front__stream_new(r, gen1c_http(f->g1));
    if (!st) return -ECONNREFUSED;
    gen1c_call call = writer_call(r);
    call.out = HTTPC_BODY_STREAM;
    call.on_head = stream_on_head;
    call.on_body = stream_on_body;
    call.ctl = st->ctl;
    call.done = stream_done;
    call.ud = st;
    if (gen1c_send(f->g1, &call) == 0) return 0;
    st->r = NULL;
    st->ended = true;               /* nothing to cancel when r lets go */
    atomic_fetch_sub(&st->refs, 1); /* the exchange's: it never started */
    return -ECONNREFUSED;
}

/* MHD thread: Gen1's head arrived for read r; answer with a response that streams the body. */
static void answer_stream(fr_req *r)
{
    fr_stream *st = r->stream;
    if (st->status < 200 || st->status > 599) {
        LOGW("msg=\"Gen1 gave an unusable status\" req=%" PRIu64 " status=%d", r->id, st->status);
        r->resp_bytes = front__stream_release(r);
        front__fail(r, 502, "IOException", "Gen1 gave an invalid answer");
        return;
    }
    uint64_t size = st->length >= 0 ? (uint64_t)st->length : MHD_SIZE_UNKNOWN;
    struct MHD_Response *mr = MHD_create_response_from_callback(size, STREAM_BLOCK, stream_read, st,
                                                                stream_response_free);
    if (mr) {
        atomic_fetch_add(&st->refs, 1); /* the response's, dropped in stream_response_free */
        pthread_mutex_lock(&st->mu);
        st->counted = true;
        pthread_mutex_unlock(&st->mu);
        metrics_gauge_add(r->f->streaming, 1);
        for (size_t i = 0; i < NRELAY; i++) {
            if (st->hval[i] && MHD_add_response_header(mr, relay_headers[i], st->hval[i]) != MHD_YES)
                LOGW("msg=\"header not relayed\" req=%" PRIu64 " name=%s", r->id, relay_headers[i]);
        }
    }
    /* resp_bytes stays 0 here: streamed bytes are counted as they go (completed_cb logs the total). */
    front__set_answer(r, st->status, mr);
}

/* Journal commit thread: the write's record is durable (err 0) or not; send it or answer 503. */
static void on_durable(void *ud, uint64_t seq, int err)
{
    fr_req *r = ud;
    r->seq = seq;
    if (err != 0) {
        front__finish_local(r, err);
        return;
    }
    /* admitted in gen2-primary: the primary is Gen2, served by g2serve (front_g2.c) */
    bool g2 = r->ph == CFG_PHASE_GEN2_PRIMARY;
    if ((g2 ? front__send_g2_write(r) : send_gen1(r)) != 0) {
        /* Never reached the primary: aborted like a refusal, the secondary never sees it. */
        pipe_primary_result pr = {.kind = PIPE_P_REFUSED, .status = 0};
        (void)pipe_primary(r->f->p, seq, &pr, NULL, NULL);
        front__finish_local(r, g2 ? -ESHUTDOWN : -ECONNREFUSED);
    }
}

bool front__begin_upstream(fr_req *r)
{
    front *f = r->f;
    /* Refuse new suspensions once front_stop began. Counted first, then stopping read: either this
     * sees stopping, or front_stop sees the count (front_int.h, upstream_calls). */
    atomic_fetch_add(&f->upstream_calls, 1);
    if (atomic_load(&f->stopping)) {
        if (atomic_fetch_sub(&f->upstream_calls, 1) == 1) {
            pthread_mutex_lock(&f->mu);
            pthread_cond_broadcast(&f->cond);
            pthread_mutex_unlock(&f->mu);
        }
        front__fail(r, 503, "IOException", "the proxy is shutting down");
        return false;
    }
    /* Suspend before journaling or sending: the completion may run (and resume) before the call returns.
     * r stays ours until this handler returns (MHD serves the connection on this thread only). */
    FR_SET(r, FR_UPSTREAM);
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    return true;
}

int front__run(fr_req *r)
{
    front *f = r->f;
    bool write = r->wr.info->is_write;
    /* gen2-only: everything on Gen2, nothing journaled; gen2-primary: reads on Gen2, writes journaled */
    if (r->ph == CFG_PHASE_GEN2_ONLY || (r->ph == CFG_PHASE_GEN2_PRIMARY && !write)) return front__submit_g2(r);
    r->journaled = write;
    if (!write) return send_read(r);
    uint64_t seq = 0;
    int rc = pipe_accept(f->p, r->ph, &r->wr, r->rid, r->body, r->degraded, on_durable, r, &seq);
    if (rc != 0)
        LOGW("msg=\"write not journaled\" req=%" PRIu64 " rid=%s op=%s err=\"%s\"", r->id, r->rid, r->wr.info->name,
             strerror(-rc));
    return rc;
}

void front__dispatch(fr_req *r)
{
    front *f = r->f;
    if (!front__begin_upstream(r)) return;
    bool write = r->wr.info->is_write;
    if (!write) {
        r->ph = (cfg_phase)atomic_load(&f->phase);
    } else {
        char why[sizeof f->fence];
        fr_admit ad = front__admit(r, why, sizeof why);
        if (ad == FR_ADMIT_HELD) return; /* a phase switch releases it */
        if (ad == FR_ADMIT_FENCED) {
            front__finish_upstream(r);
            front__fail(r, 503, "RetriableException", "%s", why);
            return;
        }
    }
    int rc = front__run(r);
    if (write) front__admitted(f);
    if (rc != 0) front__finish_local(r, rc);
}

/* The writer-facing error for an exchange that produced no HTTP answer (never an internal path). */
static void fail_transport(fr_req *r, const httpc_resp *resp)
{
    LOGW("msg=\"Gen1 exchange failed\" req=%" PRIu64 " rid=%s seq=%" PRIu64 " op=%s result=%s detail=\"%s\"", r->id,
         r->rid, r->seq, r->wr.info->name, httpc_result_str(resp->result), resp->error);
    switch (resp->result) {
    case HTTPC_E_TIMEOUT:
        front__fail(r, 504, "IOException", "Gen1 did not answer in time");
        break;
    case HTTPC_E_TOO_BIG:
        front__fail(r, 502, "IOException", "Gen1's answer is larger than the proxy relays");
        break;
    case HTTPC_E_BODY:
        front__fail(r, 500, "IOException", "the proxy could not read the spooled request body");
        break;
    case HTTPC_E_CANCELLED:
    case HTTPC_E_NOMEM:
        front__fail(r, 503, "IOException", "the proxy is shutting down or overloaded; retry later");
        break;
    case HTTPC_OK:
    case HTTPC_E_CONNECT:
    case HTTPC_E_TRANSPORT:
    default:
        front__fail(r, 502, "IOException", "Gen1 is unreachable");
        break;
    }
}

/* A write whose Gen1 answer was lost, settled by asking Gen1: the answer Gen1 gives when it applied
 * such a write, or a 5xx that says what is known. */
static void answer_settled(fr_req *r, const httpc_resp *resp, stl_verdict v)
{
    LOGW("msg=\"writer answered after its lost Gen1 answer was settled\" req=%" PRIu64 " rid=%s seq=%" PRIu64
         " op=%s result=%s verdict=%s",
         r->id, r->rid, r->seq, r->wr.info->name, httpc_result_str(resp->result), stl_verdict_name(v));
    if (v == STL_APPLIED) {
        whreq_op op = r->wr.op;
        bool boolean = op == WH_OP_MKDIRS || op == WH_OP_RENAME || op == WH_OP_DELETE;
        static const char btrue[] = "{\"boolean\":true}";
        struct MHD_Response *mr = MHD_create_response_from_buffer(boolean ? sizeof btrue - 1 : 0, (void *)btrue,
                                                                   MHD_RESPMEM_PERSISTENT);
        if (mr && boolean) (void)MHD_add_response_header(mr, "Content-Type", "application/json");
        r->resp_bytes = boolean ? sizeof btrue - 1 : 0;
        front__set_answer(r, op == WH_OP_CREATE ? 201 : 200, mr);
    } else if (v == STL_NOT_APPLIED) {
        front__fail(r, 503, "IOException",
                    "Gen1's answer to this write was lost and Gen1, asked after gen1.settle_ms, does not hold it: "
                    "the write was not applied; retry it");
    } else {
        front__fail(r, resp->result == HTTPC_E_TIMEOUT ? 504 : 502, "IOException",
                    "Gen1's answer to this write was lost and whether Gen1 applied it cannot be told: the outcome "
                    "is unknown; the proxy reconciles Gen2 with what Gen1 holds");
    }
}

void front__answer_upstream(fr_req *r)
{
    if (r->stream && atomic_load_explicit(&r->stream->head, memory_order_acquire)) {
        answer_stream(r);
        return;
    }
    if (atomic_load_explicit(&r->g2_done, memory_order_acquire)) {
        front__answer_g2(r);
        return;
    }
    httpc_resp *resp = atomic_load_explicit(&r->up, memory_order_acquire);
    int lerr = atomic_load_explicit(&r->local_err, memory_order_acquire);
    if (!resp) {
        if (lerr == -ESHUTDOWN) front__fail(r, 503, "IOException", "the proxy is shutting down");
        else if (lerr == -EINVAL)
            front__fail(r, 400, "IllegalArgumentException", "the request is larger than the proxy's journal can record");
        else if (lerr == -ENOMEM) front__fail(r, 503, "RetriableException", "the proxy is out of memory; retry later");
        else if (lerr == -EAGAIN)
            front__fail(r, 503, "RetriableException", "%s", r->local_msg ? r->local_msg : "the proxy is fenced");
        else if (lerr == -ECONNREFUSED)
            front__fail(r, 503, "IOException", "the proxy cannot reach Gen1 now; retry later");
        else front__fail(r, 503, "IOException", "the proxy cannot journal the write now; retry later");
        return;
    }
    if (resp->result != HTTPC_OK) {
        int v = atomic_load_explicit(&r->verdict, memory_order_acquire);
        if (v != 0) answer_settled(r, resp, (stl_verdict)v);
        else fail_transport(r, resp);
        return;
    }
    int status = (int)resp->status;
    if (status < 200 || status > 599) {
        LOGW("msg=\"Gen1 gave an unusable status\" req=%" PRIu64 " rid=%s status=%d", r->id, r->rid, status);
        front__fail(r, 502, "IOException", "Gen1 gave an invalid answer");
        return;
    }
    /* A write's answer, whole in memory. */
    struct MHD_Response *mr = NULL;
    size_t len = resp->body.len;
    char *data = dbuf_take(&resp->body);
    if (data) mr = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!mr) free(data);
    r->resp_bytes = len;
    if (mr) {
        for (size_t i = 0; i < NRELAY; i++) {
            const char *v = httpc_resp_header(resp, relay_headers[i]);
            if (v && MHD_add_response_header(mr, relay_headers[i], v) != MHD_YES)
                LOGW("msg=\"header not relayed\" req=%" PRIu64 " name=%s", r->id, relay_headers[i]);
        }
    }
    front__set_answer(r, status, mr);
}
