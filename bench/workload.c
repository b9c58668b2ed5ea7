/* bn_wl: per-worker state machines for the write, read and meta workloads. Single-threaded (the driver
 * calls next/done from its loop), so the file table needs no locking. A failed request marks its file
 * broken and the worker moves on to its next file; verification then skips that file (the error is
 * already counted). When the run's budget is spent a worker still closes the file it has open. */
#include "workload.h"

#include "data.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct bn_wl_worker {
    uint64_t j;             /* ordinal of the worker's next file (or cycle) */
    int64_t file;           /* file being written, -1 = none */
    uint64_t step;          /* 0 create, 1..K appends, K+1 close; meta: 0..3 within a cycle */
    bool started;           /* meta: the worker's rename target directory exists */
};

static const char *const op_names[BN_OP_COUNT] = {
    [BN_OP_CREATE] = "create", [BN_OP_APPEND] = "append", [BN_OP_CLOSE] = "close",
    [BN_OP_OPEN] = "open",     [BN_OP_MKDIRS] = "mkdirs", [BN_OP_RENAME] = "rename",
    [BN_OP_SETACL] = "setacl", [BN_OP_LIST] = "liststatus", [BN_OP_STATUS] = "getfilestatus",
};

const char *bn_wl_op_name(enum bn_op op)
{
    return (unsigned)op < BN_OP_COUNT ? op_names[op] : "?";
}

int bn_wl_init(struct bn_wl *wl, const struct bn_cfg *cfg)
{
    memset(wl, 0, sizeof(*wl));
    wl->cfg = cfg;
    wl->w = calloc(cfg->concurrency, sizeof(*wl->w));
    if (wl->w == NULL)
        return -1;
    for (unsigned i = 0; i < cfg->concurrency; i++)
        wl->w[i].file = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(wl->run_id, sizeof(wl->run_id), "r%llx-%ld", (unsigned long long)ts.tv_sec, (long)getpid());
    return 0;
}

void bn_wl_free(struct bn_wl *wl)
{
    free(wl->w);
    free(wl->files.len);
    free(wl->files.state);
    free(wl->digest);
    memset(wl, 0, sizeof(*wl));
}

/* Makes room for file f in the table. */
static int files_reserve(struct bn_files *t, uint64_t f)
{
    if (f < t->cap) {
        if (f >= t->n)
            t->n = f + 1;
        return 0;
    }
    uint64_t cap = t->cap ? t->cap : 64;
    while (cap <= f)
        cap *= 2;
    uint64_t *len = realloc(t->len, cap * sizeof(*len));
    if (len == NULL)
        return -1;
    t->len = len;
    unsigned char *st = realloc(t->state, cap);
    if (st == NULL)
        return -1;
    t->state = st;
    memset(t->len + t->cap, 0, (cap - t->cap) * sizeof(*len));
    memset(t->state + t->cap, 0, cap - t->cap);
    t->cap = cap;
    t->n = f + 1;
    return 0;
}

int bn_wl_assume_files(struct bn_wl *wl, uint64_t n, uint64_t len)
{
    if (n == 0)
        return 0;
    if (files_reserve(&wl->files, n - 1) != 0)
        return -1;
    for (uint64_t f = 0; f < n; f++) {
        wl->files.len[f] = len;
        wl->files.state[f] = BN_F_CLOSED;
    }
    return 0;
}

int bn_wl_path(const struct bn_cfg *cfg, uint64_t f, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "%s/f%06" PRIu64, cfg->prefix, f);
    return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

int bn_wl_target(const struct bn_cfg *cfg, uint64_t f, const char *query, char *out, size_t outsz)
{
    int n;
    if (cfg->api == BN_API_DFS) {
        bool both = query[0] != '\0' && cfg->sas[0] != '\0';
        n = snprintf(out, outsz, "%s/f%06" PRIu64 "?%s%s%s", cfg->prefix, f, query, both ? "&" : "", cfg->sas);
    } else {
        n = snprintf(out, outsz, "/webhdfs/v1%s/f%06" PRIu64 "?%s", cfg->prefix, f, query);
    }
    return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

/* ---- write: ingest, small, large; also the read workload's setup ---- */

static int write_next(void *ctx, unsigned w, bool stopping, struct bn_req *req)
{
    struct bn_wl *wl = ctx;
    const struct bn_cfg *cfg = wl->cfg;
    struct bn_wl_worker *ws = &wl->w[w];
    uint64_t k = cfg->appends;
    char q[128];
    if (ws->file < 0) {
        uint64_t f = w + (uint64_t)cfg->concurrency * ws->j;
        if (stopping || (cfg->files != 0 && f >= cfg->files))
            return 0;
        if (files_reserve(&wl->files, f) != 0) {
            wl->oom = true;
            return 0;
        }
        ws->j++;
        ws->file = (int64_t)f;
        ws->step = 0;
        wl->files.state[f] = BN_F_OPEN;
        wl->files.len[f] = 0;
    }
    uint64_t f = (uint64_t)ws->file;
    if (ws->step == 0) {
        if (stopping) { /* not created yet: drop it */
            wl->files.state[f] = BN_F_UNUSED;
            ws->file = -1;
            return 0;
        }
        req->op = BN_OP_CREATE;
        req->method = BN_PUT;
        req->flag = "write=true";
        req->expect = 201;
        snprintf(q, sizeof(q), "%s", cfg->api == BN_API_DFS ? "resource=file" : "op=CREATE&overwrite=true");
    } else if (cfg->api == BN_API_DFS) {
        /* Gen2: append at the position (202), then flush the whole length and close (200) */
        if (stopping && ws->step <= k)
            ws->step = k + 1;
        uint64_t off = wl->files.len[f];
        bool close = ws->step > k;
        req->op = close ? BN_OP_CLOSE : BN_OP_APPEND;
        req->method = BN_PATCH;
        req->flag = "";
        req->expect = close ? 200 : 202;
        req->off = off;
        req->len = close ? 0 : cfg->size;
        snprintf(q, sizeof(q), close ? "action=flush&position=%" PRIu64 "&close=true" : "action=append&position=%" PRIu64,
                 off);
    } else {
        if (stopping && ws->step <= k)
            ws->step = k + 1;
        uint64_t off = wl->files.len[f];
        bool close = ws->step > k;
        req->op = close ? BN_OP_CLOSE : BN_OP_APPEND;
        req->method = BN_POST;
        req->flag = "append=true";
        req->expect = 200;
        req->off = off;
        req->len = close ? 0 : cfg->size;
        snprintf(q, sizeof(q), "op=APPEND&offset=%" PRIu64 "&syncFlag=%s", off, close ? "CLOSE" : "DATA");
    }
    req->upload = true;
    req->file = f;
    if (bn_wl_target(cfg, f, q, req->target, sizeof(req->target)) != 0)
        return 0;
    return 1;
}

static bool write_done(void *ctx, unsigned w, const struct bn_req *req, const struct bn_res *res)
{
    struct bn_wl *wl = ctx;
    struct bn_wl_worker *ws = &wl->w[w];
    uint64_t f = req->file;
    if (res->status != req->expect) {
        wl->files.state[f] = BN_F_BROKEN;
        ws->file = -1;
        return false;
    }
    switch (req->op) {
    case BN_OP_APPEND:
        wl->files.len[f] += req->len;
        ws->step++;
        break;
    case BN_OP_CLOSE:
        wl->files.state[f] = BN_F_CLOSED;
        ws->file = -1;
        break;
    default:
        ws->step++;
        break;
    }
    return true;
}

void bn_wl_job_write(struct bn_wl *wl, struct bn_job *job)
{
    job->next = write_next;
    job->done = write_done;
    job->ctx = wl;
}

/* ---- read ---- */

/* How many files worker w owns among the first n. */
static uint64_t owned(uint64_t n, unsigned w, unsigned c)
{
    return n > w ? (n - w + c - 1) / c : 0;
}

static int read_next(void *ctx, unsigned w, bool stopping, struct bn_req *req)
{
    struct bn_wl *wl = ctx;
    const struct bn_cfg *cfg = wl->cfg;
    struct bn_wl_worker *ws = &wl->w[w];
    uint64_t mine = owned(wl->files.n, w, cfg->concurrency);
    bool budget = cfg->ops != 0 || cfg->duration > 0;
    if (stopping || mine == 0 || (!budget && ws->j >= mine))
        return 0;
    /* skip files that did not get written; give up after one pass without a readable file */
    for (uint64_t tries = 0; tries < mine; tries++) {
        uint64_t f = w + (uint64_t)cfg->concurrency * (ws->j % mine);
        ws->j++;
        if (wl->files.state[f] != BN_F_CLOSED)
            continue;
        req->op = BN_OP_OPEN;
        req->method = BN_GET;
        req->flag = "read=true";
        req->expect = 200;
        req->hash = true;
        req->file = f;
        return bn_wl_target(cfg, f, "op=OPEN", req->target, sizeof(req->target)) == 0;
    }
    return 0;
}

static bool read_done(void *ctx, unsigned w, const struct bn_req *req, const struct bn_res *res)
{
    struct bn_wl *wl = ctx;
    if (res->status != req->expect)
        return false;
    if (res->body_bytes != wl->files.len[req->file] || memcmp(res->digest, wl->digest[req->file], 32) != 0)
        wl->read_bad++;
    return true;
}

int bn_wl_job_read(struct bn_wl *wl, struct bn_job *job)
{
    for (unsigned i = 0; i < wl->cfg->concurrency; i++)
        wl->w[i].j = 0;
    free(wl->digest);
    wl->digest = calloc(wl->files.n ? wl->files.n : 1, sizeof(*wl->digest));
    if (wl->digest == NULL)
        return -1;
    for (uint64_t f = 0; f < wl->files.n; f++)
        if (wl->files.state[f] == BN_F_CLOSED &&
            bn_data_digest(wl->cfg->seed, f, wl->files.len[f], wl->digest[f]) != 0)
            return -1;
    job->next = read_next;
    job->done = read_done;
    job->ctx = wl;
    return 0;
}

/* ---- meta ---- */

static int meta_next(void *ctx, unsigned w, bool stopping, struct bn_req *req)
{
    struct bn_wl *wl = ctx;
    const struct bn_cfg *cfg = wl->cfg;
    struct bn_wl_worker *ws = &wl->w[w];
    bool budget = cfg->ops != 0 || cfg->duration > 0;
    uint64_t cycles = owned(cfg->files, w, cfg->concurrency);
    if (stopping && ws->step == 0)
        return 0;
    if (!budget && ws->step == 0 && ws->j >= cycles)
        return 0;
    char base[512];
    int n = snprintf(base, sizeof(base), "/webhdfs/v1%s/meta/%s/w%u", cfg->prefix, wl->run_id, w);
    if (n < 0 || (size_t)n >= sizeof(base))
        return 0;
    req->method = BN_PUT;
    req->expect = 200;
    req->flag = "";
    uint64_t c = ws->j;
    if (!ws->started) {
        req->op = BN_OP_MKDIRS;
        n = snprintf(req->target, sizeof(req->target), "%s/r?op=MKDIRS", base);
    } else {
        switch (ws->step) {
        case 0:
            req->op = BN_OP_MKDIRS;
            n = snprintf(req->target, sizeof(req->target), "%s/d%" PRIu64 "?op=MKDIRS", base, c);
            break;
        case 1:
            req->op = BN_OP_SETACL;
            n = snprintf(req->target, sizeof(req->target),
                         "%s/d%" PRIu64 "?op=SETACL&aclspec=user%%3A%%3Arwx%%2Cgroup%%3A%%3Ar-x%%2Cother%%3A%%3A---",
                         base, c);
            break;
        case 2:
            req->op = BN_OP_RENAME;
            n = snprintf(req->target, sizeof(req->target), "%s/d%" PRIu64 "?op=RENAME&destination=%s/meta/%s/w%u/r/d%" PRIu64,
                         base, c, cfg->prefix, wl->run_id, w, c);
            break;
        default:
            req->op = BN_OP_LIST;
            req->method = BN_GET;
            n = snprintf(req->target, sizeof(req->target), "%s?op=LISTSTATUS", base);
            break;
        }
    }
    req->upload = req->method == BN_PUT;
    return n > 0 && (size_t)n < sizeof(req->target);
}

static bool meta_done(void *ctx, unsigned w, const struct bn_req *req, const struct bn_res *res)
{
    struct bn_wl *wl = ctx;
    struct bn_wl_worker *ws = &wl->w[w];
    bool ok = res->status == req->expect;
    if (ok && (req->op == BN_OP_MKDIRS || req->op == BN_OP_RENAME))
        ok = strstr(res->body, "true") != NULL;
    if (ok && req->op == BN_OP_LIST)
        ok = strstr(res->body, "FileStatuses") != NULL;
    if (!ws->started) {
        ws->started = ok;
        if (!ok)
            ws->j++; /* count the failed attempt as a cycle so an unreachable target ends */
        return ok;
    }
    /* advance even on failure: each cycle uses fresh names, so one error does not stall the worker */
    if (++ws->step == 4) {
        ws->step = 0;
        ws->j++;
    }
    return ok;
}

void bn_wl_job_meta(struct bn_wl *wl, struct bn_job *job)
{
    job->next = meta_next;
    job->done = meta_done;
    job->ctx = wl;
}
