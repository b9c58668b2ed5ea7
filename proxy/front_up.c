/*
 * front_up: the upstream leg of a front request. front__dispatch suspends the connection. A write
 * is journaled first (pipe_accept); its durability callback, on the journal's commit thread (or, when
 * an earlier write of the same path was still out at Gen1, on the thread that ended that write: the
 * pipeline's per-path order), sends it to Gen1 through gen1client with the body read straight from its
 * spool region (or, when the journal could not make it durable, ends the suspension with a 503: Gen1
 * never sees it). A read
 * goes to Gen1 at once (OPEN data into an O_TMPFILE, other answers to bounded memory).
 *
 * Gen1's answer arrives on the httpc engine thread. For a write it goes to pipe_primary: 2xx is
 * accepted (the pipeline hands it to the applier), except MKDIRS/RENAME/DELETE answered
 * {"boolean": false}, which changed nothing and is aborted like a refusal; another status is a
 * refusal (the record is aborted, Gen2 never sees it), and so is a connection Gen1 refused (nothing
 * was sent); no answer after the request went out (timeout, reset) leaves the outcome unknown (the
 * pipeline resyncs the path from Gen1). The answer is stored and the
 * connection resumed, at once or, with ack "both", when pipe_primary's ack callback runs after the
 * first Gen2 attempt. MHD then calls the handler again on its own thread and
 * front__answer_upstream relays Gen1's status, body and relevant headers, unchanged.
 *
 * Every suspension is counted in upstream_calls (front_stop drains them) and ends with exactly one
 * finish_upstream, by whichever thread ends it.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "front_int.h"
#include "log.h"

/* Headers of Gen1's answer that go back to the writer (MHD sets Content-Length itself). */
static const char *const relay_headers[] = {
    "Content-Type", "Location", "Retry-After", "WWW-Authenticate", "x-ms-request-id",
};

/* End r's suspension: resume the connection (r belongs to the MHD thread again from here on and may
 * be freed at any moment) and let front_stop's drain know. */
static void finish_upstream(fr_req *r)
{
    front *f = r->f;
    MHD_resume_connection(r->conn);
    pthread_mutex_lock(&f->mu);
    f->upstream_calls--;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

/* End the suspension with a local answer (err: -errno, see front__answer_upstream). */
static void finish_local(fr_req *r, int err)
{
    atomic_store_explicit(&r->local_err, err, memory_order_release);
    finish_upstream(r);
}

bool front__upstream_ready(const fr_req *r)
{
    return atomic_load_explicit(&r->up, memory_order_acquire) != NULL ||
           atomic_load_explicit(&r->local_err, memory_order_acquire) != 0;
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
    finish_upstream(ud);
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
    } else if (resp->result == HTTPC_E_CONNECT) {
        /* No connection was made (refused, unresolvable): nothing reached Gen1, so it is aborted. */
        pr.kind = PIPE_P_REFUSED;
        LOGD("msg=\"Gen1 unreachable: write aborted\" req=%" PRIu64 " rid=%s seq=%" PRIu64, r->id, r->rid, r->seq);
    } else {
        LOGW("msg=\"no answer from Gen1 for a journaled write: its path will be resynced\" req=%" PRIu64
             " rid=%s op=%s seq=%" PRIu64 " result=%s",
             r->id, r->rid, r->wr.info->name, r->seq, httpc_result_str(resp->result));
    }
    return pipe_primary(f->p, r->seq, &pr, on_acked, r) == 0;
}

/* ---- Gen1 exchange ---- */

static void upstream_done(void *ud, httpc_resp *resp)
{
    fr_req *r = ud;
    front *f = r->f;
    if (resp->result == HTTPC_OK) {
        metrics_observe(f->up_latency, resp->total_s);
    } else if ((int)resp->result > 0 && (unsigned)resp->result <= HTTPC_E_AUTH) {
        metrics_inc(f->up_fail[resp->result]);
    }
    /* Stored first: with ack "both" the suspension may end on another thread inside report_primary. */
    atomic_store_explicit(&r->up, resp, memory_order_release);
    if (r->journaled && report_primary(r, resp)) return; /* r may be gone already */
    finish_upstream(r);
}

/* Send r to Gen1 (its body from the spool region). 0, or -1 when it could not be sent. */
static int send_gen1(fr_req *r)
{
    gen1c_call call = {
        .req = &r->wr,
        .raw_query = r->query,
        .authorization = r->authorization,
        .content_type = r->content_type,
        .client_request_id = r->rid,
        .in = r->body ? HTTPC_IN_FD : HTTPC_IN_NONE,
        .in_fd = r->body ? r->body->fd : -1,
        .in_off = r->body ? r->body->off : 0,
        .in_len = r->body ? r->body->len : 0,
        .out = r->open_fd >= 0 ? HTTPC_BODY_FD : HTTPC_BODY_MEMORY,
        .out_max = FRONT_JSON_MAX,
        .out_fd = r->open_fd,
        .done = upstream_done,
        .ud = r,
    };
    return gen1c_send(r->f->g1, &call);
}

/* Journal commit thread: the write's record is durable (err 0) or not; send it or answer 503. */
static void on_durable(void *ud, uint64_t seq, int err)
{
    fr_req *r = ud;
    r->seq = seq;
    if (err != 0) {
        finish_local(r, err);
        return;
    }
    if (send_gen1(r) != 0) {
        /* Never reached Gen1: aborted like a refusal, Gen2 never sees it. */
        pipe_primary_result pr = {.kind = PIPE_P_REFUSED, .status = 0};
        (void)pipe_primary(r->f->p, seq, &pr, NULL, NULL);
        finish_local(r, -ECONNREFUSED);
    }
}

void front__dispatch(fr_req *r)
{
    front *f = r->f;
    r->journaled = r->wr.info->is_write;
    if (r->wr.op == WH_OP_OPEN) {
        int fd = front__spool_open(f);
        if (fd < 0) {
            LOGW("msg=\"cannot create a file for OPEN data\" req=%" PRIu64 " err=\"%s\"", r->id, strerror(-fd));
            front__fail(r, 503, "IOException", "the proxy cannot buffer the read now; retry later");
            return;
        }
        r->open_fd = fd;
    }
    /* Refuse new suspensions once front_stop began: counted under the same lock it drains with. */
    pthread_mutex_lock(&f->mu);
    bool stopping = atomic_load(&f->stopping);
    if (!stopping) f->upstream_calls++;
    pthread_mutex_unlock(&f->mu);
    if (stopping) {
        front__fail(r, 503, "IOException", "the proxy is shutting down");
        return;
    }
    /* Suspend before journaling or sending: the completion may run (and resume) before the call returns.
     * r stays ours until this handler returns (MHD serves the connection on this thread only). */
    FR_SET(r, FR_UPSTREAM);
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    int rc;
    if (r->journaled) {
        uint64_t seq = 0;
        rc = pipe_accept(f->p, &r->wr, r->rid, r->body, r->degraded, on_durable, r, &seq);
        if (rc == 0) return;
        LOGW("msg=\"write not journaled\" req=%" PRIu64 " rid=%s op=%s err=\"%s\"", r->id, r->rid, r->wr.info->name,
             strerror(-rc));
    } else {
        rc = send_gen1(r) == 0 ? 0 : -ECONNREFUSED;
        if (rc == 0) return;
    }
    finish_upstream(r);
    if (rc == -EINVAL)
        front__fail(r, 400, "IllegalArgumentException", "the request is larger than the proxy's journal can record");
    else if (rc == -ESHUTDOWN)
        front__fail(r, 503, "IOException", "the proxy is shutting down");
    else if (rc == -ECONNREFUSED)
        front__fail(r, 503, "IOException", "the proxy cannot reach Gen1 now; retry later");
    else
        front__fail(r, 503, "IOException", "the proxy cannot journal the write now; retry later");
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

void front__answer_upstream(fr_req *r)
{
    httpc_resp *resp = atomic_load_explicit(&r->up, memory_order_acquire);
    int lerr = atomic_load_explicit(&r->local_err, memory_order_acquire);
    if (!resp) {
        if (lerr == -ESHUTDOWN) front__fail(r, 503, "IOException", "the proxy is shutting down");
        else if (lerr == -ECONNREFUSED)
            front__fail(r, 503, "IOException", "the proxy cannot reach Gen1 now; retry later");
        else front__fail(r, 503, "IOException", "the proxy cannot journal the write now; retry later");
        return;
    }
    if (resp->result != HTTPC_OK) {
        fail_transport(r, resp);
        return;
    }
    int status = (int)resp->status;
    if (status < 200 || status > 599) {
        LOGW("msg=\"Gen1 gave an unusable status\" req=%" PRIu64 " rid=%s status=%d", r->id, r->rid, status);
        front__fail(r, 502, "IOException", "Gen1 gave an invalid answer");
        return;
    }
    struct MHD_Response *mr = NULL;
    if (r->open_fd >= 0) {
        /* OPEN data (or Gen1's error about it) is in our O_TMPFILE; MHD sends it and closes the fd. */
        mr = MHD_create_response_from_fd_at_offset64(resp->body_bytes, r->open_fd, 0);
        if (mr) r->open_fd = -1;
        r->resp_bytes = resp->body_bytes;
    } else {
        size_t len = resp->body.len;
        char *data = dbuf_take(&resp->body);
        if (data) mr = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (!mr) free(data);
        r->resp_bytes = len;
    }
    if (mr) {
        for (size_t i = 0; i < sizeof relay_headers / sizeof relay_headers[0]; i++) {
            const char *v = httpc_resp_header(resp, relay_headers[i]);
            if (v && MHD_add_response_header(mr, relay_headers[i], v) != MHD_YES)
                LOGW("msg=\"header not relayed\" req=%" PRIu64 " name=%s", r->id, relay_headers[i]);
        }
    }
    front__set_answer(r, status, mr);
}
