/*
 * applier_copy: the applier's copying from Gen1 to Gen2 (applier_int.h). Metadata copies (owner,
 * group, permission, ACL read from Gen1 with the writer's identity, written with setAccessControl),
 * the probe for ancestors Gen2 lacks (so their metadata is copied too), the data step (byte ranges of
 * spool files sent as append requests and one flush), and the re-copies of CONCAT, MSCONCAT and
 * CONCURRENTAPPEND (copy the result from Gen1, delete the sources; the copy itself is
 * applier_range.c). Each function is one step of an operation's state machine.
 */
#include "applier_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"

static char *parent_path(const char *p)
{
    const char *s = strrchr(p, '/');
    if (!s || s == p) return strdup("/");
    return strndup(p, (size_t)(s - p));
}

/* ================================================================ metadata copy (Gen1 → Gen2) */

static void meta_next(aop *op);
static void meta_from_status(aop *op, const char *json, size_t len);

static void h_meta_set(aop *op, httpc_resp *r)
{
    ap_node *n = &op->meta[op->meta_i];
    if (r->result != HTTPC_OK || r->status != 200) {
        char what[300];
        ap_resp_what(op, r, what, sizeof what);
        ap_op_note(op, "metadata of %s not copied: %s on %s", n->g1, what, op->rq.query ? op->rq.query : "");
        op->meta_i++;
        meta_next(op);
        return;
    }
    ap_dg_meta_done(op, n);
    if (++op->mreq_i < op->nmreq) {
        xlate_g2req_free(&op->rq);
        op->rq = op->mreq[op->mreq_i];
        memset(&op->mreq[op->mreq_i], 0, sizeof op->mreq[op->mreq_i]);
        ap_g2_simple(op, ap_meta_target(n->g2), h_meta_set);
        return;
    }
    op->meta_i++;
    meta_next(op);
}

static void meta_apply(aop *op)
{
    ap_node *n = &op->meta[op->meta_i];
    xlate_err e;
    ap_ids_meta(op, n->g1, &op->m); /* names to Gen2 identities, ACL limits */
    if (xlate_meta_requests(&op->m, op->mreq, &op->nmreq, &e) != 0) {
        ap_op_note(op, "metadata of %s not copied: %s", n->g1, e.message);
        op->meta_i++;
        meta_next(op);
        return;
    }
    op->mreq_i = 0;
    xlate_g2req_free(&op->rq);
    op->rq = op->mreq[0];
    memset(&op->mreq[0], 0, sizeof op->mreq[0]);
    ap_g2_simple(op, ap_meta_target(n->g2), h_meta_set);
}

static void h_meta_acl(aop *op, httpc_resp *r)
{
    ap_node *n = &op->meta[op->meta_i];
    xlate_err e;
    if (r->result != HTTPC_OK || r->status != 200) {
        char what[300];
        ap_resp_what(op, r, what, sizeof what);
        ap_op_note(op, "ACL of %s not copied: %s on GETACLSTATUS", n->g1, what);
    } else if (xlate_meta_from_aclstatus(r->body.data, r->body.len, &op->m, &e) != 0) {
        ap_op_note(op, "ACL of %s not copied: %s", n->g1, e.message);
    }
    meta_apply(op);
}

static void h_meta_status(aop *op, httpc_resp *r)
{
    ap_node *n = &op->meta[op->meta_i];
    if (r->result == HTTPC_OK && r->status == 404) {
        /* Gone on Gen1 since (a later write removed or moved it): that write finishes the job. */
        ap_marks_add(op->a, n->g1);
        op->meta_i++;
        meta_next(op);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        char what[300];
        ap_resp_what(op, r, what, sizeof what);
        ap_op_note(op, "metadata of %s not copied: %s on GETFILESTATUS", n->g1, what);
        op->meta_i++;
        meta_next(op);
        return;
    }
    meta_from_status(op, r->body.data, r->body.len);
}

/* The file a CREATE wrote whole, from a record journaled with a SHA-256 of its body (by a version before
 * journal format 1.1, recovered after the upgrade): that digest goes to Gen2 with the times (xlate.h
 * XLATE_DIGEST_KEY), for `dualpipe verify`. Bodies journaled since carry a CRC-32C instead, and the
 * CREATE's digest is the dualpipe_crc32c the same metadata copy writes (ap_dg_meta): verify --digest
 * relies on either. */
static void meta_digest(aop *op, const ap_node *n)
{
    static const char hexd[] = "0123456789abcdef";
    static const uint8_t empty[SPOOL_DIGEST_LEN] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
        0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55}; /* of "" */
    const apply_req *q = op->req;
    if (op->job || !q || q->resync || q->op != WH_OP_CREATE || op->m.is_dir || strcmp(n->g1, q->path) != 0) return;
    const spool_body *b = q->body;
    if (!b || !b->finished || b->sum.kind != SPOOL_SUM_SHA256) return;
    const uint8_t *d = b->len ? b->sum.bytes : empty;
    for (int i = 0; i < SPOOL_DIGEST_LEN; i++) {
        op->m.sha256[2 * i] = hexd[d[i] >> 4];
        op->m.sha256[2 * i + 1] = hexd[d[i] & 15];
    }
    op->m.sha256[64] = 0;
    op->m.sha256_len = (int64_t)b->len;
}

/* The node's FileStatus is known: read the ACL too when it has one, then write. */
static void meta_from_status(aop *op, const char *json, size_t len)
{
    ap_node *n = &op->meta[op->meta_i];
    xlate_err e;
    if (xlate_meta_from_filestatus(json, len, &op->m, &e) != 0) {
        ap_op_note(op, "metadata of %s not copied: %s", n->g1, e.message);
        op->meta_i++;
        meta_next(op);
        return;
    }
    meta_digest(op, n);
    ap_dg_meta(op, n);
    if (op->m.acl_bit) {
        ap_g1_get(op, n->g1, "GETACLSTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_meta_acl);
        return;
    }
    meta_apply(op);
}

static void meta_next(aop *op)
{
    if (op->meta_i >= op->nmeta) {
        op->after_meta(op);
        return;
    }
    const ap_node *n = &op->meta[op->meta_i];
    if (n->status) {
        meta_from_status(op, n->status, strlen(n->status));
        return;
    }
    ap_g1_get(op, n->g1, "GETFILESTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_meta_status);
}

int ap_meta_add_status(aop *op, const char *g1, const char *g2, const char *status)
{
    ap_node *nv = realloc(op->meta, sizeof *nv * (size_t)(op->nmeta + 1));
    if (!nv) return -1;
    op->meta = nv;
    ap_node *n = &nv[op->nmeta];
    n->g1 = strdup(g1);
    n->g2 = strdup(g2);
    n->status = status ? strdup(status) : NULL;
    if (!n->g1 || !n->g2 || (status && !n->status)) {
        free(n->g1);
        free(n->g2);
        free(n->status);
        return -1;
    }
    op->nmeta++;
    return 0;
}

int ap_meta_add(aop *op, const char *g1, const char *g2)
{
    return ap_meta_add_status(op, g1, g2, NULL);
}

/* Copy the metadata of op->meta[] (ancestors first), then run then. */
void ap_meta_run(aop *op, ap_step then)
{
    op->meta_i = 0;
    op->after_meta = then;
    meta_next(op);
}

/* ================================================================ missing ancestors */

/*
 * Before creating a node, find which of its ancestors Gen2 lacks (Gen2 creates them implicitly with
 * its own defaults): HEAD each parent until one exists, stopping at the mapping's filesystem root.
 * They are recorded in op->meta (top-down) so their metadata is copied from Gen1 afterwards.
 */
static void probe_next(aop *op, ap_step then);

static void probe_found_missing(aop *op)
{
    /* Insert at the front: the list stays top-down. */
    if (ap_meta_add(op, op->probe_node.g1, op->probe_node.g2) != 0) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    ap_node last = op->meta[op->nmeta - 1];
    memmove(op->meta + 1, op->meta, sizeof *op->meta * (size_t)(op->nmeta - 1));
    op->meta[0] = last;
    char *up = parent_path(op->probe_node.g1);
    free(op->probe_node.g1);
    op->probe_node.g1 = up;
    if (!up) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    probe_next(op, NULL);
}

static void h_probe(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 404) {
        probe_found_missing(op);
        return;
    }
    if (r->result != HTTPC_OK) {
        ap_op_fail_resp(op, r, "checking the parent directories");
        return;
    }
    if (r->status == 200) {
        const char *t = httpc_resp_header(r, "x-ms-resource-type");
        bool dir = !t || strcasecmp(t, "directory") == 0;
        if (dir) ap_cache_put(op->a, op->probe_node.g1, true, 0);
        /* A replay after a crash, or the root of a resync: an earlier create may have made these
         * parents with Gen2's defaults and died before copying their metadata. Copy it again, up to
         * the mapping's root. */
        if (dir && (op->fix_ancestors || (op->req->maybe_sent && op->req->op != WH_OP_APPEND))) {
            probe_found_missing(op);
            return;
        }
    }
    /* Found, or an answer we cannot read (e.g. 403): the create itself will tell. */
    ap_step then = op->after_data;
    then(op);
}

/* then is remembered in op->after_data while probing (it is not used before the data step). */
static void probe_next(aop *op, ap_step then)
{
    if (then) op->after_data = then;
    char fs[64], why[128];
    char *g2 = malloc(AP_PATH_CAP);
    if (!g2) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    gen2c_map_result mr = gen2c_map(op->a->g2, op->probe_node.g1, fs, g2, AP_PATH_CAP, why, sizeof why);
    if (mr != GEN2C_MAPPED || strcmp(fs, op->fs) != 0 || !*g2 || ap_cache_get(op->a, op->probe_node.g1, NULL) == 2) {
        free(g2);
        op->after_data(op);
        return;
    }
    free(op->probe_node.g2);
    op->probe_node.g2 = g2;
    xlate_err e;
    if (xlate_getstatus(&op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->probe_node.g2, h_probe);
}

void ap_probe_ancestors(aop *op, ap_step then)
{
    free(op->probe_node.g1);
    op->probe_node.g1 = parent_path(op->req->path);
    if (!op->probe_node.g1) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    probe_next(op, then);
}

/* ================================================================ data: append chunks + flush */

/*
 * The data step sends the extents op->ext[ext_i..next_ext) to Gen2 back to back from position pos0
 * (append requests of at most XLATE_CHUNK_MAX bytes; a run of small extents, such as a group of
 * coalesced APPENDs, is read into one buffer of at most AP_PACK_MAX bytes and sent as one request),
 * then the flush. When the x-ms-version allows it (xlate_append_flush_ok), the flush rides on the last
 * append request (flush=true): one small APPEND is one Gen2 request; with an older version, or when there
 * are no bytes to send, the flush is a request of its own. A flush Gen2 refuses is checked with a HEAD:
 * when the file already has the length the flush was for (a re-sent flush whose first send landed), it
 * counts as done. So is an append with flush=true that Gen2 refuses: sent more than once (a retry, or
 * libcurl's own re-send on a fresh connection), its first send may have appended and committed, and the
 * next one then found the position behind the file's end.
 */
static void data_next(aop *op);

bool ap_g2_file_len(const httpc_resp *r, uint64_t *len, bool *is_dir)
{
    const char *t = httpc_resp_header(r, "x-ms-resource-type");
    const char *cl = httpc_resp_header(r, "Content-Length");
    *is_dir = t && strcasecmp(t, "directory") == 0;
    if (*is_dir) return true;
    if (t && strcasecmp(t, "file") != 0) return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = cl && cl[0] >= '0' && cl[0] <= '9' ? strtoull(cl, &end, 10) : 0;
    if (!end || errno || *end) return false;
    *len = v;
    return true;
}

/* The ETag Gen2 gave the file with the flush: the digest's write is made conditional on it. */
static void flush_etag(aop *op, httpc_resp *r)
{
    const char *t = httpc_resp_header(r, "ETag");
    free(op->dg_etag);
    op->dg_etag = t ? strdup(t) : NULL;
}

static void h_flush_check(aop *op, httpc_resp *r)
{
    uint64_t want = op->pos0 + op->data_len, len = 0;
    bool dir = false;
    if (r->result == HTTPC_OK && r->status == 200 && ap_g2_file_len(r, &len, &dir) && !dir && len == want) {
        ap_cache_put(op->a, op->req->path, false, want);
        flush_etag(op, r);
        op->after_data(op);
        return;
    }
    char what[sizeof op->detail];
    memcpy(what, op->detail, sizeof what);
    ap_cache_drop_tree(op->a, op->req->path);
    if (r->result == HTTPC_OK && r->status == 200 && !dir)
        ap_op_finish(op, APPLY_FAILED, "%s on flush (Gen2 then held %" PRIu64 " bytes, %" PRIu64 " expected)", what, len,
                     want);
    else
        ap_op_finish(op, APPLY_FAILED, "%s on flush", what);
}

static void h_flush(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        /* Did an earlier send of it land? (op->detail keeps what the answer was meanwhile.) */
        ap_resp_what(op, r, op->detail, sizeof op->detail);
        xlate_err e;
        if (xlate_getstatus(&op->rq, &e) != 0) {
            ap_op_finish(op, APPLY_FAILED, "%s", e.message);
            return;
        }
        ap_g2_simple(op, op->g2path, h_flush_check);
        return;
    }
    ap_cache_put(op->a, op->req->path, false, op->pos0 + op->data_len);
    flush_etag(op, r);
    op->after_data(op);
}

/* Account for n bytes sent: they came from the extents at ext_i onwards. */
static void data_advance(aop *op, uint64_t n)
{
    op->sent += n;
    while (n > 0 && op->ext_i < op->next_ext) {
        uint64_t rem = op->ext[op->ext_i].len - op->ext_done;
        uint64_t t = n < rem ? n : rem;
        op->ext_done += t;
        n -= t;
        if (op->ext_done >= op->ext[op->ext_i].len) {
            op->ext_i++;
            op->ext_done = 0;
        }
    }
}

static void h_append(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || (r->status != 202 && r->status != 200)) {
        ap_cache_drop_tree(op->a, op->req->path);
        ap_step stale = op->on_stale;
        op->on_stale = NULL;
        if (stale && op->sent == 0 && r->result == HTTPC_OK && r->status == 400) {
            stale(op); /* the position came from a stale cache: read the length again */
            return;
        }
        ap_op_fail_resp(op, r, "append");
        return;
    }
    ap_dg_data_sent(op);
    data_advance(op, op->in_len);
    data_next(op);
}

/* The bytes from ext_i/ext_done to the end of the step (the last request's, sent earlier) into op->dcrc. */
static void data_crc_rest(aop *op)
{
    if (op->dcrc_given) { /* none of the step's bytes went in yet: all of them now */
        if (op->dcrc_ok) op->dcrc = crc32c_combine(op->dcrc, op->dcrc_step, op->data_len);
        return;
    }
    uint64_t done = op->ext_done;
    for (int i = op->ext_i; i < op->next_ext && op->dcrc_ok; i++, done = 0) {
        const ap_ext *x = &op->ext[i];
        uint32_t bc;
        if (done == 0 && x->body && x->body->len == x->len && ap_body_crc(x->body, &bc))
            op->dcrc = crc32c_combine(op->dcrc, bc, x->len); /* the spool's CRC of the whole body */
        else if (x->len > done && ap_crc_fd(x->fd, x->off + done, x->len - done, &op->dcrc) != 0)
            op->dcrc_ok = false;
    }
}

/* After an append with flush=true was refused: does the file already end where it would have left it? */
static void h_append_flush_check(aop *op, httpc_resp *r)
{
    uint64_t want = op->pos0 + op->data_len, len = 0;
    bool dir = false, known = r->result == HTTPC_OK && r->status == 200 && ap_g2_file_len(r, &len, &dir) && !dir;
    /* The length proves it landed only when nothing else appends to this file on Gen2: one proxy orders its
     * own writes of a path, but in a fleet another proxy's applier may have appended as many bytes (then
     * this record would be lost on Gen2). There the refusal stands and the record is resynced from Gen1. */
    if (known && len == want && !op->a->cfg->phase_fleet) {
        /* An earlier send of it landed (a re-send, ours or libcurl's on a fresh connection, then found the
         * position behind the end): its bytes count as sent. */
        data_crc_rest(op);
        data_advance(op, op->data_len - op->sent);
        ap_cache_put(op->a, op->req->path, false, want);
        flush_etag(op, r);
        op->after_data(op);
        return;
    }
    ap_cache_drop_tree(op->a, op->req->path);
    ap_step stale = op->on_stale;
    op->on_stale = NULL;
    if (stale && op->sent == 0 && known) {
        stale(op); /* the position came from a stale cache: read the length again */
        return;
    }
    char what[sizeof op->detail];
    memcpy(what, op->detail, sizeof what);
    if (known)
        ap_op_finish(op, APPLY_FAILED, "%s on append with flush (Gen2 then held %" PRIu64 " bytes, %" PRIu64 " expected)",
                     what, len, want);
    else
        ap_op_finish(op, APPLY_FAILED, "%s on append with flush", what);
}

/* The answer to the last append request of the data step, sent with flush=true. */
static void h_append_flush(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && (r->status == 200 || r->status == 202)) {
        ap_dg_data_sent(op);
        data_advance(op, op->in_len);
        ap_cache_put(op->a, op->req->path, false, op->pos0 + op->data_len);
        flush_etag(op, r);
        op->after_data(op);
        return;
    }
    /* Refused. It may still have landed: sent before (a retry, or libcurl sending it again on a fresh
     * connection), the first send may have appended and committed, and this one then met the end of the
     * file past its position. A HEAD tells (op->detail keeps what this answer was). A refusal of the
     * parameter itself turns the one-request form off: the operation's next attempt sends two. */
    (void)gen2c_check_append_flush_refusal(op->a->g2, r);
    ap_resp_what(op, r, op->detail, sizeof op->detail);
    xlate_err e;
    if (xlate_getstatus(&op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->g2path, h_append_flush_check);
}

static int read_full(int fd, char *buf, uint64_t n, uint64_t off)
{
    uint64_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, buf + got, (size_t)(n - got), (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -errno;
        if (k == 0) return -EIO; /* (shorter than the journal says) */
        got += (uint64_t)k;
    }
    return 0;
}

/* Pack the small extents from ext_i on into op->pack (at most AP_PACK_MAX bytes); returns the length
 * or -errno. */
static int64_t data_pack(aop *op)
{
    uint64_t n = 0, done = op->ext_done;
    for (int i = op->ext_i; i < op->next_ext && n < AP_PACK_MAX; i++, done = 0) {
        uint64_t take = op->ext[i].len - done;
        n += take < AP_PACK_MAX - n ? take : AP_PACK_MAX - n;
    }
    char *buf = realloc(op->pack, n ? n : 1);
    if (!buf) return -ENOMEM;
    op->pack = buf;
    uint64_t at = 0;
    done = op->ext_done;
    for (int i = op->ext_i; i < op->next_ext && at < n; i++, done = 0) {
        const ap_ext *x = &op->ext[i];
        uint64_t take = x->len - done;
        if (take > n - at) take = n - at;
        int rc = take ? read_full(x->fd, buf + at, take, x->off + done) : 0;
        if (rc != 0) return rc;
        at += take;
    }
    return (int64_t)n;
}

static void data_next(aop *op)
{
    xlate_err e;
    while (op->ext_i < op->next_ext && op->ext_done >= op->ext[op->ext_i].len) {
        op->ext_i++;
        op->ext_done = 0;
    }
    if (op->sent < op->data_len && op->ext_i < op->next_ext) {
        const ap_ext *x = &op->ext[op->ext_i];
        uint64_t rem = x->len - op->ext_done, n;
        bool from_fd = rem >= AP_PACK_SMALL || op->sent + rem >= op->data_len;
        if (from_fd) {
            n = rem > XLATE_CHUNK_MAX ? XLATE_CHUNK_MAX : rem;
        } else {
            int64_t k = data_pack(op);
            if (k < 0) {
                ap_op_finish(op, APPLY_FAILED, "cannot read the spooled bytes: %s", strerror((int)-k));
                return;
            }
            n = (uint64_t)k;
        }
        /* the last request of the step carries the flush when the x-ms-version allows it */
        bool with_flush = op->flush != XLATE_FLUSH_NONE && n > 0 && op->sent + n >= op->data_len &&
                          xlate_append_flush_ok(gen2c_version(op->a->g2)) && !gen2c_append_flush_refused(op->a->g2);
        int rc = with_flush ? xlate_append_flush(op->pos0 + op->sent, op->flush == XLATE_FLUSH_CLOSE, &op->rq, &e)
                            : xlate_append(op->pos0 + op->sent, &op->rq, &e);
        if (rc != 0) {
            ap_op_finish(op, APPLY_FAILED, "%s", e.message);
            return;
        }
        ap_handler h = with_flush ? h_append_flush : h_append;
        if (from_fd) ap_g2_send(op, op->g2path, HTTPC_IN_FD, x->fd, x->off + op->ext_done, n, h);
        else ap_g2_send_mem(op, op->g2path, op->pack, n, h);
        return;
    }
    if (op->flush == XLATE_FLUSH_NONE) {
        op->after_data(op);
        return;
    }
    if (xlate_flush_req(op->pos0 + op->data_len, op->flush == XLATE_FLUSH_CLOSE, &op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->g2path, h_flush);
}

static void data_start(aop *op, int first, uint64_t pos0, xlate_flush fl, const uint32_t *crc, ap_step then)
{
    op->ext_i = first;
    op->ext_done = 0;
    op->data_len = 0;
    for (int i = first; i < op->next_ext; i++) op->data_len += op->ext[i].len;
    op->pos0 = pos0;
    op->sent = 0;
    op->flush = fl;
    op->dcrc = 0;
    op->dcrc_ok = true;
    op->dcrc_given = crc != NULL;
    op->dcrc_step = crc ? *crc : 0;
    free(op->dg_etag);
    op->dg_etag = NULL;
    op->after_data = then;
    data_next(op);
}

void ap_data_run_ext(aop *op, int first, uint64_t pos0, xlate_flush fl, ap_step then)
{
    data_start(op, first, pos0, fl, NULL, then);
}

static void data_run_one(aop *op, int fd, uint64_t off, uint64_t len, uint64_t pos0, xlate_flush fl,
                         const uint32_t *crc, ap_step then)
{
    ap_ext *x = realloc(op->ext, sizeof *x);
    if (!x) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    op->ext = x;
    x->fd = fd;
    x->off = off;
    x->len = len;
    x->body = NULL;
    op->next_ext = 1;
    data_start(op, 0, pos0, fl, crc, then);
}

void ap_data_run(aop *op, int fd, uint64_t off, uint64_t len, uint64_t pos0, xlate_flush fl, ap_step then)
{
    data_run_one(op, fd, off, len, pos0, fl, NULL, then);
}

void ap_data_run_crc(aop *op, int fd, uint64_t off, uint64_t len, uint32_t crc, uint64_t pos0, xlate_flush fl,
                     ap_step then)
{
    data_run_one(op, fd, off, len, pos0, fl, &crc, then);
}

/* The ancestors the probe found missing now exist (Gen2 made them with the node). */
void ap_mark_ancestors(aop *op)
{
    for (int i = 0; i < op->nmeta; i++) ap_cache_put(op->a, op->meta[i].g1, true, 0);
}

/* ================================================================ re-copies: CONCAT, MSCONCAT, CONCURRENTAPPEND */

/*
 * CONCAT, MSCONCAT, CONCURRENTAPPEND: Gen2 has no such op, so the paths they touch (the target, and a
 * concat's sources, gone from Gen1 now) are copied from Gen1 as a resync: under the journal's gate, so
 * the copy knows which later records of those paths it already holds (Gen1 may have applied an APPEND
 * behind the CONCAT before the copy read it; replaying that APPEND after the copy would write its bytes
 * twice) and covers them. The operation ends as applied, not as resynced.
 */
void ap_st_recopy(aop *op)
{
    uint64_t later = op->req->op == WH_OP_CONCURRENTAPPEND ? ap_superseded_by(op) : 0;
    if (later) {
        ap_op_finish(op, APPLY_OK, "copied with the later CONCURRENTAPPEND seq=%" PRIu64, later);
        return;
    }
    op->copy_applies = true;
    ap_op_resync(op, op->req->op == WH_OP_CONCURRENTAPPEND ? "CONCURRENTAPPEND: Gen2 has no concurrent append"
                                                            : "Gen2 has no concat: the result is copied");
}
