/*
 * front_g2: phase gen2-only in the front. A request that passed the front's checks (framing, limits,
 * TLS, redirects of the two-step dialect, the body spooled) is handed to g2serve instead of the
 * journal and Gen1: the connection is suspended (no thread held) until g2serve's answer, which is
 * stored here and turned into the writer's answer on the MHD thread. An OPEN gets a read stream
 * (front_up.c) before it is handed over: g2serve's answer carries the head, and the bytes of Gen2's
 * ranged GET flow through the same bounded buffer as Gen1's reads do in gen1-primary.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front_int.h"
#include "log.h"

/* g2serve's answer (a worker or the httpc thread). */
static void on_answer(void *ud, const g2s_answer *a)
{
    fr_req *r = ud;
    if (a->stream) {
        front__stream_head(r->stream, a->status, (int64_t)a->length, a->content_type);
        return;
    }
    if (r->stream) {
        fr_stream *st = r->stream;
        /* an OPEN answered without a stream (an error, or nothing to read): no exchange follows */
        front__stream_abandon(st);
    }
    r->g2_status = a->status;
    r->g2_retry_after = a->retry_after_s;
    r->g2_ctype = a->content_type ? strdup(a->content_type) : NULL;
    r->g2_body = NULL;
    r->g2_len = 0;
    if (a->len > 0) {
        r->g2_body = malloc(a->len);
        if (r->g2_body) {
            memcpy(r->g2_body, a->body, a->len);
            r->g2_len = a->len;
        } else {
            r->g2_status = 503;
            r->g2_retry_after = FRONT_RETRY_AFTER_S;
        }
    }
    atomic_store_explicit(&r->g2_done, true, memory_order_release);
    front__finish_upstream(r);
}

/* The stream's end (httpc thread). */
static void on_stream_end(void *ud, bool complete)
{
    front__stream_end(ud, complete);
}

void front__dispatch_g2(fr_req *r)
{
    front *f = r->f;
    pthread_mutex_lock(&f->mu);
    bool stopping = atomic_load(&f->stopping);
    if (!stopping) f->upstream_calls++;
    pthread_mutex_unlock(&f->mu);
    if (stopping) {
        front__fail(r, 503, "IOException", "the proxy is shutting down");
        return;
    }
    FR_SET(r, FR_UPSTREAM);
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    g2s_request rq = {.wr = &r->wr, .rid = r->rid, .body_fd = -1, .answer = on_answer, .ud = r};
    if (r->body) {
        rq.body_fd = r->body->fd;
        rq.body_off = r->body->off;
        rq.body_len = r->body->len;
    }
    if (r->wr.op == WH_OP_OPEN) {
        fr_stream *st = front__stream_new(r, g2s_http(f->g2s));
        if (!st) {
            front__finish_upstream(r);
            front__fail(r, 503, "RetriableException", "the proxy is out of memory; retry later");
            return;
        }
        g2s_stream *h = front__stream_hooks(st);
        *h = (g2s_stream){.on_body = front__stream_body, .on_end = on_stream_end, .ctl = front__stream_ctl(st),
                          .ud = st};
        rq.stream = h;
    }
    if (g2s_serve(f->g2s, &rq) == 0) return;
    if (r->stream) front__stream_abandon(r->stream);
    front__finish_upstream(r);
    front__fail(r, 503, "IOException", "the proxy is shutting down");
}

void front__answer_g2(fr_req *r)
{
    int status = r->g2_status;
    struct MHD_Response *mr = NULL;
    size_t len = r->g2_len;
    char *data = r->g2_body;
    r->g2_body = NULL;
    r->g2_len = 0;
    if (data) mr = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    else mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!mr) free(data);
    r->resp_bytes = len;
    if (mr && r->g2_ctype) (void)MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->g2_ctype);
    if (mr && r->g2_retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->g2_retry_after);
        (void)MHD_add_response_header(mr, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    front__set_answer(r, status, mr);
}
