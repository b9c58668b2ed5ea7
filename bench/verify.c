/* bn_verify: a driver job of two requests per file, GETFILESTATUS then OPEN (following the 307 in the
 * hadoop flow like the writes do); against Gen2 (--api dfs) one GET per file. Mismatches are reported on stderr, at most 20 lines, with the path,
 * what was found and what was expected. */
#include "verify.h"

#include "data.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_MAX 20

struct vworker {
    uint64_t j;
    int step;               /* 0 status, 1 open */
    uint64_t file;
    bool bad;               /* this file already counted as a mismatch */
};

struct vctx {
    const struct bn_cfg *cfg;
    struct bn_wl *wl;
    struct vworker *w;
    struct bn_vres *out;
};

__attribute__((format(printf, 3, 4)))
static void mismatch(struct vctx *v, uint64_t f, const char *fmt, ...)
{
    v->out->mismatches++;
    if (v->out->mismatches > REPORT_MAX)
        return;
    char path[512];
    if (bn_wl_path(v->cfg, f, path, sizeof(path)) != 0)
        snprintf(path, sizeof(path), "file %" PRIu64, f);
    fprintf(stderr, "verify: %s: ", path);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int vnext(void *ctx, unsigned w, bool stopping, struct bn_req *req)
{
    struct vctx *v = ctx;
    struct vworker *vw = &v->w[w];
    const struct bn_files *t = &v->wl->files;
    if (vw->step == 0) {
        bool dfs = v->cfg->api == BN_API_DFS;
        for (;;) {
            uint64_t f = w + (uint64_t)v->cfg->concurrency * vw->j;
            if (f >= t->n)
                return 0;
            vw->j++;
            if (t->state[f] == BN_F_CLOSED) {
                vw->file = f;
                vw->bad = false;
                break;
            }
            if (t->state[f] == BN_F_BROKEN)
                v->out->skipped++;
        }
        if (dfs) {
            /* Gen2: no status step; the read's length and digest say it all */
            v->out->files++;
            vw->step = 1;
        } else {
            req->op = BN_OP_STATUS;
            req->flag = "";
            if (bn_wl_target(v->cfg, vw->file, "op=GETFILESTATUS", req->target, sizeof(req->target)) != 0)
                return 0;
        }
    }
    if (vw->step == 1) {
        bool dfs = v->cfg->api == BN_API_DFS;
        req->op = BN_OP_OPEN;
        req->flag = dfs ? "" : "read=true";
        req->hash = true;
        if (bn_wl_target(v->cfg, vw->file, dfs ? "" : "op=OPEN", req->target, sizeof(req->target)) != 0)
            return 0;
    }
    req->method = BN_GET;
    req->expect = 200;
    req->file = vw->file;
    return 1;
}

static bool vdone(void *ctx, unsigned w, const struct bn_req *req, const struct bn_res *res)
{
    struct vctx *v = ctx;
    struct vworker *vw = &v->w[w];
    uint64_t f = req->file;
    uint64_t want = v->wl->files.len[f];
    if (vw->step == 0) {
        vw->step = 1;
        v->out->files++;
        if (res->status != 200) {
            vw->bad = true;
            mismatch(v, f, "GETFILESTATUS answered %ld (expected 200)", res->status);
            return false;
        }
        json_error_t err;
        json_t *doc = json_loads(res->body, 0, &err);
        json_t *len = json_object_get(json_object_get(doc, "FileStatus"), "length");
        if (!json_is_integer(len) || (uint64_t)json_integer_value(len) != want) {
            vw->bad = true;
            mismatch(v, f, "length %" PRIu64 ", expected %" PRIu64,
                     json_is_integer(len) ? (uint64_t)json_integer_value(len) : UINT64_MAX, want);
        }
        json_decref(doc);
        return true;
    }
    vw->step = 0;
    v->out->bytes += res->body_bytes;
    if (res->status != 200) {
        if (!vw->bad)
            mismatch(v, f, "OPEN answered %ld (expected 200)", res->status);
        return false;
    }
    if (vw->bad)
        return true;
    unsigned char d[32];
    if (res->body_bytes != want) {
        mismatch(v, f, "read %" PRIu64 " bytes, expected %" PRIu64, res->body_bytes, want);
    } else if (bn_data_digest(v->cfg->seed, f, want, d) != 0 || memcmp(d, res->digest, 32) != 0) {
        mismatch(v, f, "SHA-256 of the %" PRIu64 " bytes read differs from the %" PRIu64 " bytes written",
                 res->body_bytes, want);
    }
    return true;
}

int bn_verify_run(const struct bn_cfg *cfg, struct bn_wl *wl, struct bn_vres *out)
{
    int rc = -1;
    memset(out, 0, sizeof(*out));
    struct vctx v = { .cfg = cfg, .wl = wl, .out = out };
    v.w = calloc(cfg->concurrency, sizeof(*v.w));
    if (v.w == NULL)
        goto out;
    struct bn_job job = { .next = vnext, .done = vdone, .ctx = &v };
    if (bn_drv_run(cfg, &job, NULL, false, "verify") != 0)
        goto out;
    out->ran = true;
    rc = 0;
out:
    free(v.w);
    return rc;
}
