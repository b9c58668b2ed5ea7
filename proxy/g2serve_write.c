/*
 * g2serve_write: the WebHDFS writes served on Gen2 (g2serve.h): data writes (CREATE, APPEND,
 * CONCURRENTAPPEND, CONCAT, MSCONCAT, under the proxy's per-path lock and Gen1 write leases), the namespace
 * (MKDIRS, DELETE, RENAME with the HDFS rules) and metadata (permission, owner, ACLs, SETTIMES, SETEXPIRY).
 * What differs from Gen1 is in README.md ("gen2-only: the Gen1 API on Gen2").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "g2serve_int.h"
#include "log.h"
#include "rid.h"
#include "urlcodec.h"

/* ---- data writes ---- */

/* Gen1's answer to a write on a file another writer's lease holds (ADLS error 0x83090a16). */
static void fail_leased(g2s_ctx *c)
{
    g2s__fail(c, 500, "RuntimeException",
              "%s failed with error 0x83090a16 (the file is locked by another writer's lease): %s", c->wr->info->name,
              c->wr->path);
}

/* Add "x-ms-lease-id: ID" to x when lease is non-empty. 0, or -1 (no room, out of memory). */
static int with_lease(xlate_g2req *x, const char *lease)
{
    if (!lease || !lease[0]) return 0;
    if (x->nheaders >= XLATE_MAX_HEADERS) return -1;
    size_t n = strlen(lease) + 16;
    char *h = malloc(n);
    if (!h) return -1;
    snprintf(h, n, "x-ms-lease-id: %s", lease);
    x->headers[x->nheaders++] = h;
    x->headers[x->nheaders] = NULL;
    return 0;
}

/* Append the spooled body at pos (chunks of XLATE_CHUNK_MAX) and flush per policy, naming lease (a fleet
 * lease, see fleet_lease) when non-empty: the last chunk carries the flush (flush=true) when the x-ms-version
 * allows it (xlate_append_flush_ok), else the flush is a request of its own. 0, or -1 answered. */
static int write_body(g2s_ctx *c, uint64_t pos, whreq_sync sync, uint64_t *end, const char *lease)
{
    const g2s_request *rq = c->rq;
    uint64_t n = rq->body_fd >= 0 ? rq->body_len : 0;
    uint64_t done = 0;
    xlate_err xe = {{0}};
    xlate_flush fl = xlate_flush_policy(sync, n);
    bool one = fl != XLATE_FLUSH_NONE && xlate_append_flush_ok(gen2c_version(c->s->g2)) &&
               !gen2c_append_flush_refused(c->s->g2);
    while (done < n) {
        uint64_t k = n - done > XLATE_CHUNK_MAX ? XLATE_CHUNK_MAX : n - done;
        bool last = one && done + k == n;
        xlate_g2req x = {0};
        int rc = last ? xlate_append_flush(pos + done, fl == XLATE_FLUSH_CLOSE, &x, &xe) : xlate_append(pos + done, &x, &xe);
        if (rc != 0 || with_lease(&x, lease) != 0) {
            xlate_g2req_free(&x);
            g2s__fail(c, 500, "RuntimeException", "%s", xe.message[0] ? xe.message : "out of memory");
            return -1;
        }
        g2resp *r = g2s__call(c, x.method, c->path, x.query, (const char *const *)x.headers, NULL, rq->body_fd,
                              rq->body_off + done, k, 64 * 1024);
        xlate_g2req_free(&x);
        if (!g2s__ok(r) && last && gen2c_check_append_flush_refusal(c->s->g2, r)) {
            /* the service does not take flush=true here (nothing was appended): this chunk again, then a
             * flush of its own */
            g2s__free(r);
            one = false;
            continue;
        }
        if (!g2s__ok(r) && last && r->result == HTTPC_OK && r->status == 400) {
            /* libcurl sends a request again on a fresh connection when a reused one dies before the
             * answer: an append with flush=true that landed the first time is then refused (its position
             * is behind the end). The file's length tells. */
            g2resp *h = g2s__head(c, c->path, NULL);
            const char *t = g2s__ok(h) ? httpc_resp_header(h, "x-ms-resource-type") : NULL;
            const char *cl = g2s__ok(h) ? httpc_resp_header(h, "Content-Length") : NULL;
            char want[24];
            snprintf(want, sizeof want, "%" PRIu64, pos + n);
            if (t && strcasecmp(t, "file") == 0 && cl && strcmp(cl, want) == 0) {
                c->changed = true; /* (the first send changed Gen2) */
                g2s__free(r);
                r = h;
                h = NULL;
            }
            g2s__free(h);
        }
        if (!g2s__ok(r)) {
            g2s__fail_gen2(c, r, c->wr->path);
            g2s__free(r);
            return -1;
        }
        g2s__free(r);
        done += k;
        if (last) {
            *end = pos + n;
            return 0;
        }
    }
    *end = pos + n;
    if (fl == XLATE_FLUSH_NONE) return 0;
    xlate_g2req x = {0};
    if (xlate_flush_req(*end, fl == XLATE_FLUSH_CLOSE, &x, &xe) != 0 || with_lease(&x, lease) != 0) {
        xlate_g2req_free(&x);
        g2s__fail(c, 500, "RuntimeException", "%s", xe.message[0] ? xe.message : "out of memory");
        return -1;
    }
    g2resp *r = g2s__xcall(c, c->path, &x);
    xlate_g2req_free(&x);
    int rc = 0;
    if (!g2s__ok(r)) {
        g2s__fail_gen2(c, r, c->wr->path);
        rc = -1;
    }
    g2s__free(r);
    return rc;
}

void g2s__create(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_err e;
    bool overwrite, create_parent;
    whreq_sync sync;
    if (whreq_get_bool(w, "overwrite", false, &overwrite, &e) != 0 ||
        whreq_get_bool(w, "createparent", true, &create_parent, &e) != 0 ||
        whreq_get_sync(w, WH_SYNC_CLOSE, &sync, &e) != 0)
        return g2s__fail_err(c, &e);
    const char *perm = whreq_param_get(w, "permission");
    const char *lease = whreq_param_get(w, "leaseid");
    if (!c->path[0]) return g2s__fail(c, 403, "FileAlreadyExistsException", "%s already exists as a directory", w->path);
    if (g2s__lease_check(c->s, c->fs, c->path, lease) != 0) return fail_leased(c);
    g2a_node n;
    char parent[G2S_PATH_MAX];
    g2s__parent_of(c->path, parent, sizeof parent);
    if (!create_parent) {
        int f = g2s__stat(c, parent, &n, NULL);
        if (f < 0) return;
        if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "Parent directory doesn't exist: %s", w->path);
        if (!n.is_dir) return g2s__fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory");
    }
    if (overwrite) {
        int f = g2s__stat(c, c->path, &n, NULL);
        if (f < 0) return;
        if (f == 1 && n.is_dir)
            return g2s__fail(c, 403, "FileAlreadyExistsException", "%s already exists as a directory", w->path);
    }
    xlate_g2req x = {0};
    xlate_err xe;
    /* WebHDFS's defaults when none is given (644 files, 755 directories), not Gen2's umask 0027 */
    if (xlate_create(overwrite, perm && *perm ? perm : G2S_FILE_MODE, &x, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"permission\": %s",
                         xe.message);
    g2resp *r = g2s__xcall(c, c->path, &x);
    xlate_g2req_free(&x);
    if (!g2s__ok(r)) {
        char code[96];
        g2s__code(r, code, sizeof code);
        const char *type = r->result == HTTPC_OK ? httpc_resp_header(r, "x-ms-existing-resource-type") : NULL;
        if (xlate_already_exists(r->status, code) && type && strcasecmp(type, "directory") == 0)
            g2s__fail(c, 403, "FileAlreadyExistsException", "%s already exists as a directory", w->path);
        else if (xlate_already_exists(r->status, code))
            g2s__fail(c, 403, "FileAlreadyExistsException", "File already exists: %s", w->path);
        else if (r->result == HTTPC_OK && r->status == 409 && strcmp(code, "PathConflict") == 0)
            g2s__fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %s", w->path);
        else g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        return;
    }
    g2s__free(r);
    g2s__own_created(c, c->path);
    uint64_t end = 0;
    if (write_body(c, 0, sync, &end, NULL) != 0) return;
    g2s__lease_after(c->s, c->fs, c->path, lease, sync != WH_SYNC_CLOSE);
    if (c->rq->want_mtime) {
        /* the time a reader of Gen2 sees (gen2-primary: Gen1's copy gets it too); unknown if the HEAD fails */
        g2resp *h = g2s__head(c, c->path, NULL);
        const char *lm = g2s__ok(h) ? httpc_resp_header(h, "Last-Modified") : NULL;
        int64_t ms;
        if (lm && xlate_rfc1123_parse(lm, &ms) == 0) c->mtime_ms = ms;
        g2s__free(h);
    }
    g2s__answer(c, 201, NULL, 0);
}

/*
 * Phase fleet (phase.fleet: several proxies in front of one Gen2): the proxy's per-path lock covers its own
 * writers only, so an APPEND holds a Gen2 lease on the file from reading its length to the flush. Two
 * appenders through different proxies then take turns, as they would on Gen1, instead of staging bytes
 * at the same position. A lease lasts G2S_FLEET_LEASE_S seconds (a proxy killed while holding one blocks
 * the file that long at most) and is released once the flush is done.
 */
#define G2S_FLEET_LEASE_S "15"
#define G2S_FLEET_LEASE_WAIT_MS 20000

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Take the fleet lease on c->path (into c->fleet_lease: the answer releases it). 0, or -1 answered. */
static int fleet_lease(g2s_ctx *c)
{
    char id[RID_MAX + 1];
    rid_new(id);
    char prop[RID_MAX + 40];
    snprintf(prop, sizeof prop, "x-ms-proposed-lease-id: %s", id);
    const char *hdrs[] = {"x-ms-lease-action: acquire", "x-ms-lease-duration: " G2S_FLEET_LEASE_S, prop, NULL};
    int64_t until = now_ms() + G2S_FLEET_LEASE_WAIT_MS;
    unsigned wait = 5, waits = 0;
    for (;;) {
        g2resp *r = g2s__call(c, "POST", c->path, "", hdrs, NULL, -1, 0, 0, 4096);
        if (g2s__ok(r)) {
            g2s__free(r);
            snprintf(c->fleet_lease, sizeof c->fleet_lease, "%s", id);
            if (waits) LOGD("msg=\"fleet lease taken after waiting\" path=\"%s\" waits=%u", c->wr->path, waits);
            return 0;
        }
        char code[96];
        bool held = r->result == HTTPC_OK && r->status == 409 &&
                    strcmp(g2s__code(r, code, sizeof code), "LeaseAlreadyPresent") == 0;
        if (!held || now_ms() >= until) {
            if (held)
                g2s__fail(c, 503, "RetriableException",
                          "%s: another proxy of the fleet has been appending to this file for %d s; retry later",
                          c->wr->path, G2S_FLEET_LEASE_WAIT_MS / 1000);
            else g2s__fail_gen2(c, r, c->wr->path);
            g2s__free(r);
            return -1;
        }
        g2s__free(r);
        waits++;
        struct timespec ts = {0, (long)(wait + (unsigned)(now_ms() % wait)) * 1000000L};
        nanosleep(&ts, NULL);
        if (wait < 100) wait *= 2;
    }
}

void g2s__fleet_release(g2s_ctx *c)
{
    if (!c->fleet_lease[0]) return;
    char hdr[RID_MAX + 32];
    snprintf(hdr, sizeof hdr, "x-ms-lease-id: %s", c->fleet_lease);
    c->fleet_lease[0] = '\0';
    const char *hdrs[] = {"x-ms-lease-action: release", hdr, NULL};
    g2resp *r = g2s__call(c, "POST", c->path, "", hdrs, NULL, -1, 0, 0, 4096);
    if (!g2s__ok(r)) LOGW("msg=\"fleet lease not released; it expires by itself\" gen2_path=\"%s\" seconds=%s",
                          c->path, G2S_FLEET_LEASE_S);
    g2s__free(r);
}

void g2s__append(g2s_ctx *c, bool concurrent)
{
    const whreq *w = c->wr;
    whreq_err e;
    int64_t offset = -1;
    whreq_sync sync;
    if ((!concurrent && whreq_get_i64(w, "offset", -1, &offset, &e) != 0) ||
        whreq_get_sync(w, concurrent ? WH_SYNC_DATA : WH_SYNC_CLOSE, &sync, &e) != 0)
        return g2s__fail_err(c, &e);
    bool autocreate = false;
    if (concurrent) {
        const char *mode = whreq_param_get(w, "appendmode");
        if (mode && *mode) {
            if (strcasecmp(mode, "autocreate") != 0)
                return g2s__fail(c, 400, "IllegalArgumentException",
                                 "Invalid value for webhdfs parameter \"appendMode\": %s", mode);
            autocreate = true;
        }
    }
    g2a_node n;
    int f = g2s__stat(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 1 && n.is_dir)
        return g2s__fail(c, 404, "FileNotFoundException", "%s: %s", concurrent ? "Path is not a file" :
                         "Failed to append to non-existent file", w->path);
    if (f == 0) {
        if (!concurrent)
            return g2s__fail(c, 404, "FileNotFoundException", "Failed to append to non-existent file %s", w->path);
        if (!autocreate) return g2s__fail(c, 404, "FileNotFoundException", "File %s does not exist.", w->path);
        xlate_g2req x = {0};
        xlate_err xe;
        if (xlate_create(false, G2S_FILE_MODE, &x, &xe) != 0) return g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
        g2resp *r = g2s__xcall(c, c->path, &x);
        xlate_g2req_free(&x);
        char code[96];
        bool raced = r->result == HTTPC_OK && xlate_already_exists(r->status, g2s__code(r, code, sizeof code));
        if (!g2s__ok(r) && !raced) {
            if (r->result == HTTPC_OK && r->status == 409)
                g2s__fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory");
            else g2s__fail_gen2(c, r, w->path);
            g2s__free(r);
            return;
        }
        if (!raced) g2s__own_created(c, c->path);
        g2s__free(r);
        n.length = 0;
    }
    const char *lease = whreq_param_get(w, "leaseid");
    if (!concurrent && g2s__lease_check(c->s, c->fs, c->path, lease) != 0) return fail_leased(c);
    if (c->s->cfg->phase_fleet) {
        /* the length is read again under the lease: another proxy may have appended since */
        if (fleet_lease(c) != 0) return;
        f = g2s__stat(c, c->path, &n, NULL);
        if (f < 0) return;
        if (f == 0 || n.is_dir)
            return g2s__fail(c, 404, "FileNotFoundException", "Failed to append to non-existent file %s", w->path);
    }
    if (offset >= 0 && offset != n.length)
        return g2s__fail(c, 400, "BadOffsetException",
                         "APPEND failed with error: the offset %" PRId64 " is not the end of file %s (length %" PRId64
                         ")",
                         offset, w->path, n.length);
    uint64_t end = 0;
    c->offset = n.length; /* where the bytes land: the journal's mirror replays them there */
    if (write_body(c, (uint64_t)n.length, sync, &end, c->fleet_lease) != 0) return;
    if (!concurrent) g2s__lease_after(c->s, c->fs, c->path, lease, sync != WH_SYNC_CLOSE);
    g2s__answer(c, 200, NULL, 0);
}

/* CONCAT / MSCONCAT: copy on Gen2 (README: nothing is committed before the last byte is staged). */
void g2s__concat(g2s_ctx *c)
{
    const whreq *w = c->wr;
    xlate_paths src = {0};
    xlate_err xe;
    char *body = NULL;
    size_t blen = 0;
    whreq_err e;
    bool delete_dir = false;
    if (whreq_get_bool(w, "deletesourcedirectory", false, &delete_dir, &e) != 0) return g2s__fail_err(c, &e);
    const char *list = whreq_param_get(w, "sources");
    if (w->op == WH_OP_CONCAT && (!list || !*list))
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param sources for op: %s is null or empty",
                         w->info->name);
    if (w->op == WH_OP_MSCONCAT && c->rq->body_fd >= 0 && c->rq->body_len > 0) {
        if (c->rq->body_len > (16u << 20))
            return g2s__fail(c, 413, "IllegalArgumentException", "MSCONCAT body too large");
        blen = (size_t)c->rq->body_len;
        body = malloc(blen + 1);
        if (!body) return g2s__fail(c, 503, "RetriableException", "the proxy is out of memory; retry later");
        size_t got = 0;
        while (got < blen) {
            ssize_t k = pread(c->rq->body_fd, body + got, blen - got, (off_t)(c->rq->body_off + got));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            got += (size_t)k;
        }
        if (got != blen) {
            free(body);
            return g2s__fail(c, 500, "IOException", "the proxy could not read the spooled request body");
        }
        body[blen] = '\0';
    }
    if (xlate_concat_sources(w->op, list, body, blen, &src, &xe) != 0) {
        free(body);
        return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
    }
    free(body);
    char (*sp)[G2S_PATH_MAX] = calloc((size_t)src.n, sizeof *sp);
    int64_t *slen = calloc((size_t)src.n, sizeof *slen);
    char *buf = malloc(G2S_COPY_CHUNK);
    g2a_node t;
    int64_t pos = 0;
    bool created = false;
    if (!sp || !slen || !buf) {
        g2s__fail(c, 503, "RetriableException", "the proxy is out of memory; retry later");
        goto out;
    }
    /* Check everything first (as Gen1 does), so a refusal changes nothing. */
    for (int i = 0; i < src.n; i++) {
        if (strcmp(src.v[i], w->path) == 0) {
            g2s__fail(c, 400, "IllegalArgumentException", "concat: target %s is among the sources", w->path);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(src.v[i], src.v[j]) == 0) {
                g2s__fail(c, 400, "IllegalArgumentException", "concat: source %s is given twice", src.v[i]);
                goto out;
            }
        char fs[64];
        if (g2s__map(c, src.v[i], fs, sp[i], sizeof sp[i]) != 0) goto out;
        if (strcmp(fs, c->fs) != 0) {
            g2s__fail(c, 400, "IllegalArgumentException",
                      "concat: source %s is on another Gen2 filesystem than the target", src.v[i]);
            goto out;
        }
        g2a_node sn;
        int f = g2s__stat(c, sp[i], &sn, NULL);
        if (f < 0) goto out;
        if (f == 0) {
            g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", src.v[i]);
            goto out;
        }
        if (sn.is_dir) {
            g2s__fail(c, 400, "IllegalArgumentException", "concat: source %s is not a file", src.v[i]);
            goto out;
        }
        slen[i] = sn.length;
    }
    int f = g2s__stat(c, c->path, &t, NULL);
    if (f < 0) goto out;
    if (f == 1 && t.is_dir) {
        g2s__fail(c, 400, "IllegalArgumentException", "concat: target %s is not a file", w->path);
        goto out;
    }
    if (f == 0 && w->op == WH_OP_CONCAT) {
        g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", w->path);
        goto out;
    }
    if (f == 0) {
        xlate_g2req x = {0};
        if (xlate_create(false, G2S_FILE_MODE, &x, &xe) != 0) {
            g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
            goto out;
        }
        g2resp *r = g2s__xcall(c, c->path, &x);
        xlate_g2req_free(&x);
        if (!g2s__ok(r)) {
            g2s__fail_gen2(c, r, w->path);
            g2s__free(r);
            goto out;
        }
        g2s__free(r);
        g2s__own_created(c, c->path);
        created = true;
    } else {
        pos = t.length;
    }
    /* Stage every source's bytes after the target's end; nothing is visible before the one flush. */
    for (int i = 0; i < src.n; i++) {
        for (int64_t o = 0; o < slen[i];) {
            int64_t k = slen[i] - o > (int64_t)G2S_COPY_CHUNK ? (int64_t)G2S_COPY_CHUNK : slen[i] - o;
            char range[96];
            snprintf(range, sizeof range, "Range: bytes=%" PRId64 "-%" PRId64, o, o + k - 1);
            const char *h[] = {range, NULL};
            g2resp *r = g2s__call(c, "GET", sp[i], NULL, h, NULL, -1, 0, 0, G2S_COPY_CHUNK + 1);
            if (!g2s__ok(r) || r->body.len != (size_t)k) {
                if (g2s__ok(r)) g2s__fail(c, 500, "RuntimeException", "concat: source %s changed while copied", src.v[i]);
                else g2s__fail_gen2(c, r, src.v[i]);
                g2s__free(r);
                goto undo;
            }
            memcpy(buf, r->body.data, (size_t)k);
            g2s__free(r);
            xlate_g2req x = {0};
            if (xlate_append((uint64_t)pos, &x, &xe) != 0) {
                g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
                goto undo;
            }
            r = g2s__call(c, x.method, c->path, x.query, (const char *const *)x.headers, buf, -1, 0, (uint64_t)k,
                          64 * 1024);
            xlate_g2req_free(&x);
            if (!g2s__ok(r)) {
                g2s__fail_gen2(c, r, w->path);
                g2s__free(r);
                goto undo;
            }
            g2s__free(r);
            o += k;
            pos += k;
        }
    }
    xlate_g2req x = {0};
    if (xlate_flush_req((uint64_t)pos, true, &x, &xe) != 0) {
        g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
        goto undo;
    }
    g2resp *r = g2s__xcall(c, c->path, &x);
    xlate_g2req_free(&x);
    if (!g2s__ok(r)) {
        g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        goto undo;
    }
    g2s__free(r);
    /* The target holds the result: now the sources go (or the one directory holding them). */
    char *dir = delete_dir ? xlate_concat_source_dir(&src, w->path) : NULL;
    int failed = 0;
    if (dir) {
        char ddir[G2S_PATH_MAX], fs[64];
        if (g2s__map(c, dir, fs, ddir, sizeof ddir) != 0) {
            free(dir);
            goto out;
        }
        xlate_g2req d = {0};
        if (xlate_delete(true, NULL, &d, &xe) == 0) {
            g2resp *dr = g2s__xcall(c, ddir, &d);
            if (!g2s__ok(dr) && !g2s__is_404(dr)) failed++;
            g2s__free(dr);
        }
        xlate_g2req_free(&d);
        free(dir);
    } else {
        for (int i = 0; i < src.n; i++) {
            xlate_g2req d = {0};
            if (xlate_delete(false, NULL, &d, &xe) == 0) {
                g2resp *dr = g2s__xcall(c, sp[i], &d);
                if (!g2s__ok(dr) && !g2s__is_404(dr)) failed++;
                g2s__free(dr);
            }
            xlate_g2req_free(&d);
        }
    }
    if (failed)
        g2s__fail(c, 500, "RuntimeException",
                  "concat: %s holds the concatenation, but %d source(s) could not be deleted; delete them", w->path,
                  failed);
    else g2s__answer(c, 200, NULL, 0);
    goto out;
undo:
    /* Staged appends are never committed without the flush; a target this request made goes again. */
    if (created) {
        xlate_g2req d = {0};
        if (xlate_delete(false, NULL, &d, &xe) == 0) g2s__free(g2s__xcall(c, c->path, &d));
        xlate_g2req_free(&d);
    }
out:
    free(buf);
    free(slen);
    free(sp);
    xlate_paths_free(&src);
}

/* ---- namespace ---- */

void g2s__mkdirs(g2s_ctx *c)
{
    const char *perm = whreq_param_get(c->wr, "permission");
    if (!c->path[0]) {
        g2a_node n;
        if (g2s__stat(c, "", &n, NULL) == 1) g2s__answer_bool(c, true);
        return;
    }
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_mkdirs(perm && *perm ? perm : G2S_DIR_MODE, &x, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"permission\": %s",
                         xe.message);
    g2resp *r = g2s__xcall(c, c->path, &x);
    xlate_g2req_free(&x);
    char code[96];
    const char *type = r->result == HTTPC_OK ? httpc_resp_header(r, "x-ms-existing-resource-type") : NULL;
    if (r->result == HTTPC_OK && (r->status == 201 || r->status == 200)) {
        g2s__own_created(c, c->path);
        g2s__answer_bool(c, true);
    } else if (r->result == HTTPC_OK && xlate_mkdirs_ok(r->status, type)) g2s__answer_bool(c, true);
    else if (r->result == HTTPC_OK && xlate_already_exists(r->status, g2s__code(r, code, sizeof code)))
        g2s__fail(c, 403, "FileAlreadyExistsException", "Path is not a directory: %s", c->wr->path);
    else if (r->result == HTTPC_OK && r->status == 409)
        g2s__fail(c, 403, "ParentNotDirectoryException", "Parent path is not a directory: %s", c->wr->path);
    else g2s__fail_gen2(c, r, c->wr->path);
    g2s__free(r);
}

void g2s__delete(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_err e;
    bool recursive;
    if (whreq_get_bool(w, "recursive", false, &recursive, &e) != 0) return g2s__fail_err(c, &e);
    const char *ctx_id = whreq_param_get(w, "filecontextid");
    if (!c->path[0]) return g2s__answer_bool(c, false); /* the root is never deleted (HDFS answers false) */
    g2a_node n;
    int f = g2s__stat(c, c->path, &n, NULL);
    if (f < 0) return;
    if (f == 0) return g2s__answer_bool(c, false);
    char cond[160] = "";
    if (ctx_id && *ctx_id) {
        if (n.is_dir || strcmp(n.etag, ctx_id) != 0)
            return g2s__fail(c, 500, "RuntimeException", "DELETE failed with error: StreamID mismatch for %s", w->path);
        snprintf(cond, sizeof cond, "If-Match: \"%s\"", n.etag);
    }
    char *token = NULL;
    for (;;) {
        xlate_g2req x = {0};
        xlate_err xe;
        if (xlate_delete(recursive, token, &x, &xe) != 0) {
            g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
            break;
        }
        const char *h[XLATE_MAX_HEADERS + 2] = {0};
        int nh = 0;
        for (int i = 0; i < x.nheaders; i++) h[nh++] = x.headers[i];
        if (cond[0]) h[nh++] = cond;
        g2resp *r = g2s__call(c, x.method, c->path, x.query, h, NULL, -1, 0, 0, 64 * 1024);
        xlate_g2req_free(&x);
        char code[96];
        g2s__code(r, code, sizeof code);
        if (g2s__ok(r)) {
            const char *next = httpc_resp_header(r, "x-ms-continuation");
            free(token);
            token = next && *next ? strdup(next) : NULL;
            g2s__free(r);
            if (token) continue;
            g2s__lease_drop(c->s, c->fs, c->path);
            g2s__answer_bool(c, true);
        } else if (g2s__is_404(r) && strcmp(code, "FilesystemNotFound") != 0) {
            g2s__answer_bool(c, false); /* gone meanwhile */
            g2s__free(r);
        } else if (r->result == HTTPC_OK && strcmp(code, "DirectoryNotEmpty") == 0) {
            g2s__fail(c, 403, "PathIsNotEmptyDirectoryException", "`%s is non empty': Directory is not empty", w->path);
            g2s__free(r);
        } else if (r->result == HTTPC_OK && r->status == 412) {
            g2s__fail(c, 500, "RuntimeException", "DELETE failed with error: StreamID mismatch for %s", w->path);
            g2s__free(r);
        } else {
            g2s__fail_gen2(c, r, w->path);
            g2s__free(r);
        }
        break;
    }
    free(token);
}

static bool under(const char *a, const char *b) /* Gen2 path b strictly under a */
{
    size_t la = strlen(a);
    if (!a[0]) return b[0] != '\0';
    return strncmp(a, b, la) == 0 && b[la] == '/';
}

/* True when directory path has at least one entry (-1: answered). */
static int dir_has_entries(g2s_ctx *c, const char *path)
{
    dbuf q;
    dbuf_init(&q, 8192);
    int rc = dbuf_adds(&q, "resource=filesystem&recursive=false&maxResults=1&directory=");
    if (rc == 0) rc = url_encode(path, false, &q);
    g2resp *r = rc == 0 ? g2s__call(c, "GET", "", q.data, NULL, NULL, -1, 0, 0, 1u << 20) : NULL;
    dbuf_free(&q);
    if (!g2s__ok(r)) {
        g2s__fail_gen2(c, r, c->wr->path);
        g2s__free(r);
        return -1;
    }
    json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    int has = json_array_size(json_object_get(doc, "paths")) > 0 ? 1 : 0;
    json_decref(doc);
    g2s__free(r);
    return has;
}

void g2s__rename(g2s_ctx *c)
{
    const whreq *w = c->wr;
    const char *d = whreq_param_get(w, "destination");
    if (!d || !*d)
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param destination for op: RENAME is null or empty");
    bool r2, ow;
    xlate_err xe;
    if (xlate_rename_options(whreq_param_get(w, "renameoptions"), &r2, &ow, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
    whreq_err e;
    char *dst = NULL;
    if (whreq_norm_path(d, &dst, &e) != 0) return g2s__fail_err(c, &e);
    char dfs[64], dpath[G2S_PATH_MAX], target[2 * G2S_PATH_MAX + 2], pp[G2S_PATH_MAX];
    g2a_node sn, dn, tn;
    if (g2s__map(c, dst, dfs, dpath, sizeof dpath) != 0) goto out;
    if (strcmp(dfs, c->fs) != 0) {
        g2s__fail(c, 403, "IOException", "rename across Gen2 filesystems is not supported: %s to %s", w->path, dst);
        goto out;
    }
    int f = c->path[0] ? g2s__stat(c, c->path, &sn, NULL) : 1;
    if (f < 0) goto out;
    if (f == 0 || !c->path[0]) {
        if (r2 && f == 0) g2s__fail(c, 404, "FileNotFoundException", "rename source %s is not found.", w->path);
        else if (r2) g2s__fail(c, 403, "IOException", "rename source cannot be the root");
        else g2s__answer_bool(c, false);
        goto out;
    }
    if (strcmp(dpath, c->path) == 0) {
        if (r2) g2s__fail(c, 403, "FileAlreadyExistsException", "The source %s and destination %s are the same", w->path, dst);
        else g2s__answer_bool(c, !sn.is_dir);
        goto out;
    }
    int df = g2s__stat(c, dpath, &dn, NULL);
    if (df < 0) goto out;
    snprintf(target, sizeof target, "%s", dpath);
    if (!r2) {
        if (df == 1 && dn.is_dir) {
            /* HDFS: into an existing directory */
            int tn_len = snprintf(target, sizeof target, "%s%s%s", dpath, dpath[0] ? "/" : "", g2s__leaf_of(c->path));
            if (tn_len < 0 || (size_t)tn_len >= sizeof target) {
                g2s__fail(c, 400, "IllegalArgumentException", "rename destination too long: %s", dst);
                goto out;
            }
            int tf = g2s__stat(c, target, &tn, NULL);
            if (tf < 0) goto out;
            if (tf == 1) {
                g2s__answer_bool(c, strcmp(target, c->path) == 0);
                goto out;
            }
        } else if (df == 1) {
            g2s__answer_bool(c, false);
            goto out;
        } else {
            g2s__parent_of(dpath, pp, sizeof pp);
            g2a_node pn;
            int pf = g2s__stat(c, pp, &pn, NULL);
            if (pf < 0) goto out;
            if (pf == 0 || !pn.is_dir) {
                g2s__answer_bool(c, false);
                goto out;
            }
        }
        if (under(c->path, target)) {
            g2s__fail(c, 403, "IOException", "Rename destination %s is a directory or file under source %s", dst, w->path);
            goto out;
        }
    } else {
        if (under(c->path, dpath)) {
            g2s__fail(c, 403, "IOException", "Rename destination %s is a directory or file under source %s", dst, w->path);
            goto out;
        }
        g2s__parent_of(dpath, pp, sizeof pp);
        g2a_node pn;
        int pf = g2s__stat(c, pp, &pn, NULL);
        if (pf < 0) goto out;
        if (pf == 0 || !pn.is_dir) {
            if (pf == 1) g2s__fail(c, 403, "ParentNotDirectoryException", "rename destination parent of %s is a file.", dst);
            else g2s__fail(c, 404, "FileNotFoundException", "rename destination parent of %s not found.", dst);
            goto out;
        }
        if (df == 1) {
            if (!ow) {
                g2s__fail(c, 403, "FileAlreadyExistsException", "rename destination %s already exists.", dst);
                goto out;
            }
            if (dn.is_dir != sn.is_dir) {
                g2s__fail(c, 403, "IOException", "Source %s and destination %s must both be %s", w->path, dst,
                          dn.is_dir ? "directories" : "files");
                goto out;
            }
            if (dn.is_dir) {
                int has = dir_has_entries(c, dpath);
                if (has < 0) goto out;
                if (has) {
                    g2s__fail(c, 403, "IOException", "rename destination directory is not empty: %s", dst);
                    goto out;
                }
                /* Gen2 does not replace a directory: the empty one goes first */
                xlate_g2req dx = {0};
                if (xlate_delete(false, NULL, &dx, &xe) == 0) g2s__free(g2s__xcall(c, dpath, &dx));
                xlate_g2req_free(&dx);
            }
        }
    }
    dbuf src;
    dbuf_init(&src, 3 * G2S_PATH_MAX);
    if (gen2c_rename_source(c->s->g2, c->fs, c->path, &src) != 0) {
        dbuf_free(&src);
        g2s__fail(c, 500, "RuntimeException", "rename: the source could not be encoded");
        goto out;
    }
    char *token = NULL;
    for (;;) {
        xlate_g2req x = {0};
        if (xlate_rename(src.data, r2 && ow, token, &x, &xe) != 0) {
            g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
            break;
        }
        g2resp *r = g2s__xcall(c, target, &x);
        xlate_g2req_free(&x);
        if (g2s__ok(r)) {
            const char *next = httpc_resp_header(r, "x-ms-continuation");
            free(token);
            token = next && *next ? strdup(next) : NULL;
            g2s__free(r);
            if (token) continue;
            g2s__answer_bool(c, true);
            break;
        }
        char code[96];
        g2s__code(r, code, sizeof code);
        if (r->result == HTTPC_OK && strcmp(code, "SourcePathNotFound") == 0 && !r2) g2s__answer_bool(c, false);
        else if (r->result == HTTPC_OK && strcmp(code, "PathAlreadyExists") == 0 && !r2) g2s__answer_bool(c, false);
        else g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        break;
    }
    free(token);
    dbuf_free(&src);
out:
    free(dst);
}

/* ---- metadata ---- */

static void send_simple(g2s_ctx *c, xlate_g2req *x)
{
    g2resp *r = g2s__xcall(c, c->path, x);
    xlate_g2req_free(x);
    if (g2s__ok(r)) g2s__answer(c, 200, NULL, 0);
    else g2s__fail_gen2(c, r, c->wr->path);
    g2s__free(r);
}

void g2s__setpermission(g2s_ctx *c)
{
    const char *perm = whreq_param_get(c->wr, "permission");
    if (!perm || !*perm)
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param permission for op: SETPERMISSION is null");
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_setpermission(perm, &x, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"permission\": %s",
                         xe.message);
    send_simple(c, &x);
}

/* A writer's name on its way to Gen2 through the identity map (NULL: refused, answered). */
static const char *name_to_gen2(g2s_ctx *c, idm_kind kind, const char *name)
{
    if (!name || !*name) return NULL;
    const char *id = idm_lookup(c->map, kind, name);
    if (id || c->s->id_pol == IDM_KEEP || !c->map) return id ? id : name;
    g2s__fail(c, 400, "IllegalArgumentException", "%s %s has no mapping in gen2.identity_map", kind == IDM_USER ? "user" : "group",
              name);
    return NULL;
}

void g2s__setowner(g2s_ctx *c)
{
    const char *owner = whreq_param_get(c->wr, "owner"), *group = whreq_param_get(c->wr, "group");
    if ((!owner || !*owner) && (!group || !*group))
        return g2s__fail(c, 400, "IllegalArgumentException", "Both owner and group are empty.");
    const char *o = owner && *owner ? name_to_gen2(c, IDM_USER, owner) : NULL;
    if (c->answered) return;
    const char *g = group && *group ? name_to_gen2(c, IDM_GROUP, group) : NULL;
    if (c->answered) return;
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_setowner(o, g, &x, &xe) != 0) return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
    send_simple(c, &x);
}

void g2s__acl(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_op op = w->op;
    const char *spec = whreq_param_get(w, "aclspec");
    bool needs = op == WH_OP_SETACL || op == WH_OP_MODIFYACLENTRIES || op == WH_OP_REMOVEACLENTRIES;
    if (needs && (!spec || !*spec))
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param aclspec for op: %s is null or empty",
                         w->info->name);
    dbuf mapped, acl;
    dbuf_init(&mapped, 1u << 20);
    dbuf_init(&acl, 1u << 20);
    if (needs && c->map) {
        bool empty = false;
        idm_result *res = calloc(1, sizeof *res);
        idm_err ie;
        int rc = res ? idm_acl(c->map, IDM_KEEP, spec, op != WH_OP_REMOVEACLENTRIES, &mapped, &empty, res, &ie) : -1;
        bool missing = res && res->unmapped > 0 && c->s->id_pol != IDM_KEEP;
        char names[200] = "";
        if (missing) idm_result_names(res, names, sizeof names);
        free(res);
        if (rc != 0) {
            g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"aclspec\": %s",
                      res ? ie.message : "out of memory");
            goto out;
        }
        if (missing) {
            g2s__fail(c, 400, "IllegalArgumentException", "aclspec names identities not in gen2.identity_map: %s", names);
            goto out;
        }
        spec = mapped.data ? mapped.data : "";
    }
    for (int attempt = 0; attempt < XLATE_ACL_ATTEMPTS; attempt++) {
        g2resp *r = g2s__head(c, c->path, "action=getAccessControl");
        if (!g2s__ok(r)) {
            g2s__fail_gen2(c, r, w->path);
            g2s__free(r);
            goto out;
        }
        const char *type = httpc_resp_header(r, "x-ms-resource-type");
        bool is_dir = type && strcasecmp(type, "directory") == 0;
        xlate_err xe;
        dbuf_reset(&acl);
        if (xlate_acl_apply(op, spec, httpc_resp_header(r, "x-ms-acl"), httpc_resp_header(r, "x-ms-permissions"),
                            is_dir, &acl, &xe) != 0) {
            g2s__free(r);
            g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"aclspec\": %s", xe.message);
            goto out;
        }
        const char *et = httpc_resp_header(r, "ETag");
        char etag[160];
        snprintf(etag, sizeof etag, "%s", et ? et : "");
        g2s__free(r);
        xlate_g2req x = {0};
        if (xlate_setacl(acl.data ? acl.data : "", etag, &x, &xe) != 0) {
            g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
            goto out;
        }
        r = g2s__xcall(c, c->path, &x);
        xlate_g2req_free(&x);
        if (g2s__ok(r)) {
            g2s__answer(c, 200, NULL, 0);
            g2s__free(r);
            goto out;
        }
        bool again = r->result == HTTPC_OK && r->status == 412;
        if (!again) g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        if (!again) goto out;
    }
    g2s__fail(c, 503, "RetriableException", "the ACL of %s kept changing while it was updated; retry", w->path);
out:
    dbuf_free(&mapped);
    dbuf_free(&acl);
}

void g2s__settimes(g2s_ctx *c)
{
    const whreq *w = c->wr;
    whreq_err e;
    int64_t mt, at;
    if (whreq_get_i64(w, "modificationtime", -1, &mt, &e) != 0 || whreq_get_i64(w, "accesstime", -1, &at, &e) != 0)
        return g2s__fail_err(c, &e);
    if (mt < -1 || at < -1)
        return g2s__fail(c, 400, "IllegalArgumentException", "Invalid value for webhdfs parameter \"%s\"",
                         mt < -1 ? "modificationtime" : "accesstime");
    for (int attempt = 0; attempt < XLATE_ACL_ATTEMPTS; attempt++) {
        g2a_node n;
        g2resp *r = NULL;
        int f = g2s__stat(c, c->path, &n, &r);
        if (f < 0) return;
        if (f == 0) return g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", w->path);
        if (mt == -1 && at == -1) {
            g2s__free(r);
            return g2s__answer(c, 200, NULL, 0);
        }
        if (!r) return g2s__fail(c, 400, "IllegalArgumentException", "SETTIMES is not supported on the filesystem root");
        dbuf props;
        dbuf_init(&props, 64 * 1024);
        xlate_err xe;
        char len[32];
        snprintf(len, sizeof len, "%" PRId64, n.length);
        int rc = xlate_settimes_props(httpc_resp_header(r, "x-ms-properties"), len, whreq_param_get(w, "modificationtime"),
                                      whreq_param_get(w, "accesstime"), &props, &xe);
        const char *et = httpc_resp_header(r, "ETag");
        char etag[160];
        snprintf(etag, sizeof etag, "%s", et ? et : "");
        g2s__free(r);
        if (rc != 0) {
            dbuf_free(&props);
            return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
        }
        xlate_g2req x = {0};
        rc = xlate_setprops(props.data ? props.data : "", etag, &x, &xe);
        dbuf_free(&props);
        if (rc != 0) return g2s__fail(c, 500, "RuntimeException", "%s", xe.message);
        r = g2s__xcall(c, c->path, &x);
        xlate_g2req_free(&x);
        if (g2s__ok(r)) {
            g2s__free(r);
            return g2s__answer(c, 200, NULL, 0);
        }
        bool again = r->result == HTTPC_OK && r->status == 412;
        if (!again) g2s__fail_gen2(c, r, w->path);
        g2s__free(r);
        if (!again) return;
    }
    g2s__fail(c, 503, "RetriableException", "%s kept changing while its times were set; retry", w->path);
}

void g2s__setexpiry(g2s_ctx *c)
{
    const char *opt = whreq_param_get(c->wr, "expiryoption");
    if (!opt || !*opt)
        return g2s__fail(c, 400, "IllegalArgumentException", "Required param expiryOption for op: SETEXPIRY is null");
    xlate_g2req x = {0};
    xlate_err xe;
    if (xlate_expiry(opt, whreq_param_get(c->wr, "expiretime"), &x, &xe) != 0)
        return g2s__fail(c, 400, "IllegalArgumentException", "%s", xe.message);
    g2a_node n;
    int f = g2s__stat(c, c->path, &n, NULL);
    if (f == 0) g2s__fail(c, 404, "FileNotFoundException", "File/Folder does not exist: %s", c->wr->path);
    else if (f == 1 && n.is_dir)
        g2s__fail(c, 400, "IllegalArgumentException", "SETEXPIRY applies to files only: %s", c->wr->path);
    if (f != 1 || c->answered) {
        xlate_g2req_free(&x);
        return;
    }
    send_simple(c, &x);
}

