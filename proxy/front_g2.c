/*
 * front_g2: phase gen2-only in the front. A request that passed the front's checks (framing, limits,
 * TLS, redirects of the two-step dialect, the body spooled) is handed to g2serve instead of the
 * journal and Gen1: the connection is suspended (no thread held) until g2serve's answer, which is
 * stored here and turned into the writer's answer on the MHD thread. An OPEN gets a read stream
 * (front_up.c) before it is handed over: g2serve's answer carries the head, and the bytes of Gen2's
 * ranged GET flow through the same bounded buffer as Gen1's reads do in gen1-primary.
 *
 * Phase gen2-primary: reads go the same way; a write is journaled first (front_up.c: pipe_accept, the
 * per-path order) and, once durable, handed to g2serve here (front__send_g2_write). g2serve's answer
 * is reported to the pipeline (pipe_primary) before the writer gets it: 2xx is accepted (the mirror
 * applies it to Gen1; an APPEND's landing offset goes along), MKDIRS/RENAME/DELETE {"boolean":false}
 * changed nothing; another status with Gen2 unchanged is a refusal (the record is aborted, Gen1 never
 * sees it). An error after Gen2 may have changed (a modifying request succeeded, or went out and its
 * answer was lost) is an unknown outcome: the record becomes a resync of its paths from Gen2 to Gen1,
 * and a writer whose last request to Gen2 got no answer is told, with a 5xx, that the outcome is unknown.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
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

int front__submit_g2(fr_req *r)
{
    front *f = r->f;
    g2s_request rq = {.wr = &r->wr, .rid = r->rid, .body_fd = -1, .answer = on_answer, .ud = r};
    if (r->body) {
        rq.body_fd = r->body->fd;
        rq.body_off = r->body->off;
        rq.body_len = r->body->len;
    }
    if (r->wr.op == WH_OP_OPEN) {
        fr_stream *st = front__stream_new(r, g2s_http(f->g2s));
        if (!st) return -ENOMEM;
        g2s_stream *h = front__stream_hooks(st);
        *h = (g2s_stream){.on_body = front__stream_body, .on_end = on_stream_end, .ctl = front__stream_ctl(st),
                          .ud = st};
        rq.stream = h;
    }
    if (g2s_serve(f->g2s, &rq) == 0) return 0;
    if (r->stream) front__stream_abandon(r->stream);
    return -ESHUTDOWN;
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

/* ---- gen2-primary: journaled writes served on Gen2 ---- */

/* True when a boolean-answering op said {"boolean": false}: Gen2 changed nothing. */
static bool answered_false(const fr_req *r, const g2s_answer *a)
{
    whreq_op op = r->wr.op;
    if (op != WH_OP_MKDIRS && op != WH_OP_RENAME && op != WH_OP_DELETE) return false;
    if (!a->body || a->len == 0) return false;
    json_t *doc = json_loadb(a->body, a->len, 0, NULL);
    bool no = false;
    if (doc) {
        json_t *b = json_object_get(doc, "boolean");
        no = b && json_is_false(b);
        json_decref(doc);
    }
    return no;
}

/* Keep a's answer in r for the MHD thread (front__answer_g2). */
static void store_answer(fr_req *r, int status, const char *ctype, const char *body, size_t len, int retry_after)
{
    r->g2_status = status;
    r->g2_retry_after = retry_after;
    r->g2_ctype = ctype ? strdup(ctype) : NULL;
    r->g2_body = NULL;
    r->g2_len = 0;
    if (len > 0) {
        r->g2_body = malloc(len);
        if (r->g2_body) {
            memcpy(r->g2_body, body, len);
            r->g2_len = len;
        } else {
            r->g2_status = 503;
            r->g2_retry_after = FRONT_RETRY_AFTER_S;
        }
    }
}

/* g2serve's answer to a journaled write (a g2serve worker). */
static void on_write_answer(void *ud, const g2s_answer *a)
{
    fr_req *r = ud;
    front *f = r->f;
    bool ok = a->status >= 200 && a->status < 300;
    pipe_primary_result pr = {.kind = PIPE_P_REFUSED, .status = a->status, .authorization = r->authorization};
    if (ok) {
        pr.kind = PIPE_P_OK;
        pr.changed_nothing = answered_false(r, a);
        if (!pr.changed_nothing && a->offset >= 0 &&
            (r->wr.op == WH_OP_APPEND || r->wr.op == WH_OP_CONCURRENTAPPEND)) {
            pr.has_offset = true;
            pr.offset = (uint64_t)a->offset;
        }
        if (r->wr.op == WH_OP_CREATE && a->mtime_ms >= 0) {
            pr.has_mtime = true;
            pr.mtime_ms = (uint64_t)a->mtime_ms;
        }
        metrics_inc(pr.changed_nothing ? f->skipped_false : f->applied_submits);
    } else if (a->changed) {
        /* Gen2 may hold part or all of it: Gen1 copies what Gen2 holds (a resync of the record's paths) */
        pr.kind = PIPE_P_UNKNOWN;
        pr.status = 0;
        LOGW("msg=\"Gen2 may have applied part of a write it did not accept: its paths are resynced to Gen1\" "
             "req=%" PRIu64 " rid=%s op=%s seq=%" PRIu64 " status=%d answer_lost=%s",
             r->id, r->rid, r->wr.info->name, r->seq, a->status, a->lost ? "true" : "false");
    } else {
        LOGD("msg=\"Gen2 refused a write: aborted\" req=%" PRIu64 " rid=%s op=%s seq=%" PRIu64 " status=%d", r->id,
             r->rid, r->wr.info->name, r->seq, a->status);
    }
    /* the record first (the path's next write is released by it), then the writer's answer */
    (void)pipe_primary(f->p, r->seq, &pr, NULL, NULL);
    if (!ok && a->changed && a->lost) {
        whreq_err e = {.status = 502, .exception = "IOException"};
        snprintf(e.message, sizeof e.message,
                 "Gen2's answer to this %s was lost after it was sent: whether it was applied is unknown; the proxy "
                 "makes Gen1 equal to what Gen2 holds. Read the path to see its state",
                 r->wr.info->name);
        dbuf b;
        dbuf_init(&b, 4096);
        if (whreq_err_json(&e, &b) == 0 && b.data)
            store_answer(r, 502, "application/json; charset=utf-8", b.data, b.len, 0);
        else store_answer(r, 502, NULL, NULL, 0, 0);
        dbuf_free(&b);
    } else {
        store_answer(r, a->status, a->content_type, a->body, a->len, a->retry_after_s);
    }
    atomic_store_explicit(&r->g2_done, true, memory_order_release);
    front__finish_upstream(r);
}

int front__send_g2_write(fr_req *r)
{
    g2s_request rq = {.wr = &r->wr, .rid = r->rid, .body_fd = -1, .answer = on_write_answer, .ud = r,
                      .want_mtime = true};
    if (r->body) {
        rq.body_fd = r->body->fd;
        rq.body_off = r->body->off;
        rq.body_len = r->body->len;
    }
    return g2s_serve(r->f->g2s, &rq) == 0 ? 0 : -1;
}
