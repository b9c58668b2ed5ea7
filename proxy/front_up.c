/*
 * front_up: the Gen1 leg of a front request. front__dispatch suspends the connection and sends the
 * request through gen1client (body from the spool file, OPEN data into an O_TMPFILE, other answers
 * to bounded memory). The completion runs on the httpc engine thread: it hands a write Gen1 accepted
 * to the applier (before the writer is answered; the writer does not wait for Gen2), stores the
 * answer and resumes the connection; MHD then calls the handler again on its own thread and
 * front__answer_upstream relays Gen1's status, body and relevant headers.
 *
 * A write Gen1 refused is relayed unchanged and nothing reaches the applier. MKDIRS, RENAME and
 * DELETE that Gen1 answered {"boolean": false} changed nothing, so they are not mirrored either.
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

/* ---- the hand-off to the applier (httpc thread) ---- */

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

static apply_req *build_apply(fr_req *r, const httpc_resp *resp)
{
    apply_req *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->seq = atomic_fetch_add(&r->f->next_seq, 1) + 1;
    a->op = r->wr.op;
    a->gen1_status = (int)resp->status;
    a->path = strdup(r->wr.path);
    if (!a->path) goto fail;
    if (r->wr.nparams > 0) {
        a->params = calloc((size_t)r->wr.nparams, sizeof *a->params);
        if (!a->params) goto fail;
        for (int i = 0; i < r->wr.nparams; i++) {
            a->params[i].name = strdup(r->wr.params[i].name);
            a->params[i].value = strdup(r->wr.params[i].value);
            a->nparams = i + 1;
            if (!a->params[i].name || !a->params[i].value) goto fail;
        }
    }
    if (r->authorization && !(a->authorization = strdup(r->authorization))) goto fail;
    if (resp->body.data && resp->body.len > 0 && r->open_fd < 0 && !(a->gen1_body = strdup(resp->body.data)))
        goto fail;
    if (r->body) a->body = dp_body_ref(r->body);
    return a;
fail:
    apply_req_free(a);
    return NULL;
}

static void submit_apply(fr_req *r, const httpc_resp *resp)
{
    front *f = r->f;
    if (answered_false(r, resp)) {
        metrics_inc(f->skipped_false);
        LOGD("msg=\"not mirrored: Gen1 answered false\" req=%" PRIu64 " op=%s", r->id, r->wr.info->name);
        return;
    }
    apply_req *a = build_apply(r, resp);
    if (!a) {
        LOGE("msg=\"write not mirrored: out of memory\" req=%" PRIu64 " op=%s path=\"%s\"", r->id, r->wr.info->name,
             r->wr.path);
        return;
    }
    uint64_t seq = a->seq;
    pthread_mutex_lock(&f->mu);
    int rc = f->ap ? applier_submit(f->ap, a, NULL, NULL) : -1;
    if (!f->ap) apply_req_free(a);
    pthread_mutex_unlock(&f->mu);
    if (rc == 0) {
        metrics_inc(f->applied_submits);
    } else {
        metrics_inc(f->not_mirrored);
        LOGE("msg=\"write not mirrored: the applier is stopping\" req=%" PRIu64 " op=%s path=\"%s\" seq=%" PRIu64,
             r->id, r->wr.info->name, r->wr.path, seq);
    }
}

/* ---- Gen1 exchange ---- */

static void upstream_done(void *ud, httpc_resp *resp)
{
    fr_req *r = ud;
    front *f = r->f;
    if (resp->result == HTTPC_OK) {
        metrics_observe(f->up_latency, resp->total_s);
        if (resp->status >= 200 && resp->status < 300 && r->wr.info->is_write) submit_apply(r, resp);
    } else if ((int)resp->result > 0 && (int)resp->result < 8) {
        if ((unsigned)resp->result <= HTTPC_E_AUTH) metrics_inc(f->up_fail[resp->result]);
    }
    atomic_store_explicit(&r->up, resp, memory_order_release);
    /* From here on r belongs to the MHD thread again (it may be freed at any moment). */
    MHD_resume_connection(r->conn);
    pthread_mutex_lock(&f->mu);
    f->upstream_calls--;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

void front__dispatch(fr_req *r)
{
    front *f = r->f;
    if (r->body) r->body->len = r->body_bytes;
    gen1c_call call = {
        .req = &r->wr,
        .raw_query = r->query,
        .authorization = r->authorization,
        .content_type = r->content_type,
        .client_request_id = r->client_request_id,
        .in = r->body ? HTTPC_IN_FD : HTTPC_IN_NONE,
        .in_fd = r->body ? r->body->fd : -1,
        .in_off = 0,
        .in_len = r->body ? r->body->len : 0,
        .out = HTTPC_BODY_MEMORY,
        .out_max = FRONT_JSON_MAX,
        .out_fd = -1,
        .done = upstream_done,
        .ud = r,
    };
    if (r->wr.op == WH_OP_OPEN) {
        int fd = front__spool_open(f);
        if (fd < 0) {
            LOGW("msg=\"cannot create a file for OPEN data\" req=%" PRIu64 " err=\"%s\"", r->id, strerror(-fd));
            front__fail(r, 503, "IOException", "the proxy cannot buffer the read now; retry later");
            return;
        }
        r->open_fd = fd;
        call.out = HTTPC_BODY_FD;
        call.out_fd = fd;
    }
    /* Refuse new Gen1 calls once front_stop began: counted under the same lock it drains with. */
    pthread_mutex_lock(&f->mu);
    bool stopping = atomic_load(&f->stopping);
    if (!stopping) f->upstream_calls++;
    pthread_mutex_unlock(&f->mu);
    if (stopping) {
        front__fail(r, 503, "IOException", "the proxy is shutting down");
        return;
    }
    /* Suspend before sending: the completion may run (and resume) before gen1c_send returns. */
    FR_SET(r, FR_UPSTREAM);
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    if (gen1c_send(f->g1, &call) != 0) {
        pthread_mutex_lock(&f->mu);
        f->upstream_calls--;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->mu);
        MHD_resume_connection(r->conn);
        front__fail(r, 503, "IOException", "the proxy cannot reach Gen1 now; retry later");
    }
}

/* The writer-facing error for an exchange that produced no HTTP answer (never an internal path). */
static void fail_transport(fr_req *r, const httpc_resp *resp)
{
    LOGW("msg=\"Gen1 exchange failed\" req=%" PRIu64 " op=%s result=%s detail=\"%s\"", r->id, r->wr.info->name,
         httpc_result_str(resp->result), resp->error);
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
    if (resp->result != HTTPC_OK) {
        fail_transport(r, resp);
        return;
    }
    int status = (int)resp->status;
    if (status < 200 || status > 599) {
        LOGW("msg=\"Gen1 gave an unusable status\" req=%" PRIu64 " status=%d", r->id, status);
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
