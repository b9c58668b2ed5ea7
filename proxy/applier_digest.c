/*
 * applier_digest: the CRC-32C digest of every file the proxy writes, kept on Gen2 as the property
 * XLATE_CRC_KEY ("crc32c=<hex>,len=<bytes>", xlate.h) for `dualpipe verify` (applier_int.h).
 *
 * Where the CRC comes from: the data step adds the bytes of each append request Gen2 accepted (the
 * packed buffer it sent; a record's whole body: the CRC-32C the spool computed as it arrived, which the
 * journal keeps since format 1.1; a copy's part from Gen1: the CRC httpc computed as it wrote the part to
 * the spool file; any other spool range: read back, page cache) to op->dcrc. A CREATE's
 * digest is the CRC of its body, written by the metadata copy with the times; a whole-file copy from
 * Gen1 (resyncs, re-copies, backfill) combines its parts' CRCs and writes it the same way on the
 * temporary name before the rename. An APPEND combines the file's digest (remembered in a->dg, or read
 * from the property with a HEAD) with the CRC of its bytes (crc32c_combine), only when the digest was
 * for exactly the length the APPEND started at; else nothing is written (a digest is missing, never wrong).
 *
 * Cost: one setProperties per burst of APPENDs, not per APPEND: when another APPEND of the same file
 * is queued right behind, the new digest is only remembered and that APPEND writes it. Crash safety:
 * the flush commits the bytes before the property is written, so a crash in between leaves a property
 * whose len is the old length, which verify ignores (not current). The write carries If-Match with the
 * ETag of the flush (or of the HEAD): a file changed on Gen2 by anyone else meanwhile gets no digest.
 */
#include "applier_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

#define DG_READ_MAX (1u << 20) /* the buffer a spool range is read back through */

int ap_crc_fd(int fd, uint64_t off, uint64_t len, uint32_t *crc)
{
    if (len == 0) return 0;
    size_t cap = len < DG_READ_MAX ? (size_t)len : DG_READ_MAX;
    char *buf = malloc(cap);
    if (!buf) return -ENOMEM;
    uint32_t c = *crc;
    int rc = 0;
    while (len > 0) {
        size_t want = len < cap ? (size_t)len : cap;
        ssize_t k = pread(fd, buf, want, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            rc = k < 0 ? -errno : -EIO;
            break;
        }
        c = crc32c_extend(c, buf, (size_t)k);
        off += (uint64_t)k;
        len -= (uint64_t)k;
    }
    free(buf);
    if (rc == 0) *crc = c;
    return rc;
}

bool ap_body_crc(const spool_body *b, uint32_t *crc)
{
    if (!b || !b->finished || b->sum.kind != SPOOL_SUM_CRC32C) return false;
    *crc = spool_sum_crc(&b->sum);
    return true;
}

void ap_dg_data_sent(aop *op)
{
    if (!op->dcrc_ok || op->in_len == 0) return;
    if (op->dcrc_given) { /* known before the step: all of it goes in with its last byte, nothing is read */
        if (op->sent + op->in_len >= op->data_len) op->dcrc = crc32c_combine(op->dcrc, op->dcrc_step, op->data_len);
        return;
    }
    if (op->in_mem) {
        op->dcrc = crc32c_extend(op->dcrc, op->in_mem, (size_t)op->in_len);
        return;
    }
    /* a record's whole body in one request (the operation's own, or a coalesced APPEND's): the CRC the
     * spool computed as it arrived, no read-back */
    const spool_body *b = op->ext && op->ext_i < op->next_ext ? op->ext[op->ext_i].body : NULL;
    if (!b && op->req) b = op->req->body;
    uint32_t bc;
    if (b && op->in_fd == b->fd && op->in_off == b->off && op->in_len == b->len && ap_body_crc(b, &bc)) {
        op->dcrc = crc32c_combine(op->dcrc, bc, b->len);
        return;
    }
    if (op->in_fd < 0 || ap_crc_fd(op->in_fd, op->in_off, op->in_len, &op->dcrc) != 0) op->dcrc_ok = false;
}

static void count(applier *a, int what)
{
    metrics_add(a->mx.digest[what], 1);
}

/* ================================================================ keeping the remembered digests right */

static void forget_touched(aop *op)
{
    for (int i = 0; i < op->ntouch; i++) dgc_drop_tree(op->a->dg, op->touch[i]);
}

void ap_dg_on_start(aop *op)
{
    if (op->req->resync) {
        forget_touched(op);
        return;
    }
    switch (op->req->op) {
    case WH_OP_RENAME: /* the properties move with the files: rename_done moves the entries there */
        if (op->ntouch > 1) dgc_drop_tree(op->a->dg, op->touch[1]);
        return;
    case WH_OP_APPEND: /* follows the bytes */
    case WH_OP_MKDIRS:
    case WH_OP_SETPERMISSION:
    case WH_OP_SETOWNER:
    case WH_OP_SETACL:
    case WH_OP_MODIFYACLENTRIES:
    case WH_OP_REMOVEACLENTRIES:
    case WH_OP_REMOVEACL:
    case WH_OP_REMOVEDEFAULTACL:
    case WH_OP_SETEXPIRY: return;
    case WH_OP_CREATE:     /* a file: nothing remembered lies under it, so no walk of the whole cache */
    case WH_OP_CONCURRENTAPPEND: /* (CREATE's end remembers the new digest) */
    case WH_OP_SETTIMES:   /* a directory's times change nothing under it */
        for (int i = 0; i < op->ntouch; i++) dgc_drop(op->a->dg, op->touch[i]);
        return;
    default: forget_touched(op); /* DELETE, CONCAT (its sources' directory), whatever may name a directory */
    }
}

void ap_dg_forget(aop *op, bool always)
{
    if (!always && (op->outcome == APPLY_OK || op->outcome == APPLY_DIVERGENCE)) return;
    forget_touched(op);
    op->dg_known = false; /* (what the operation was writing is not what a resync will) */
    op->dg_g2 = NULL;
}

/* ================================================================ CREATE and whole-file copies */

void ap_dg_meta(aop *op, const ap_node *n)
{
    if (!op->dg_known || !op->dg_g2 || strcmp(n->g2, op->dg_g2) != 0 || op->m.is_dir) return;
    op->m.has_crc = true;
    op->m.crc32c = op->dg_crc;
    op->m.crc_len = (int64_t)op->dg_len;
}

void ap_dg_meta_done(aop *op, const ap_node *n)
{
    if (!op->dg_known || !op->dg_g2 || strcmp(n->g2, op->dg_g2) != 0 || !op->rq.query ||
        !strstr(op->rq.query, "action=setProperties"))
        return;
    static const char hname[] = "x-ms-properties:";
    for (int i = 0; i < op->rq.nheaders; i++) {
        const char *h = op->rq.headers[i];
        if (!h || strncasecmp(h, hname, sizeof hname - 1) != 0) continue;
        const char *v = h + sizeof hname - 1;
        while (*v == ' ') v++;
        free(op->dg_props);
        op->dg_props = strdup(v); /* (NULL on OOM: the digest is then forgotten, not wrong) */
        return;
    }
}

void ap_dg_remember(aop *op)
{
    applier *a = op->a;
    dgc_val v = {.crc = op->dg_crc, .len = op->dg_len, .written_ms = ap_mono_ms(), .dirty = false};
    if (!(op->dg_known && op->dg_props && dgc_put(a->dg, op->req->path, &v, op->dg_props) == 0))
        dgc_drop(a->dg, op->req->path);
    op->dg_known = false;
    op->dg_g2 = NULL;
    free(op->dg_props);
    op->dg_props = NULL;
}

bool ap_dg_base(applier *a, const char *path, uint64_t len, uint32_t *crc)
{
    dgc_val v;
    if (!dgc_get(a->dg, path, &v, NULL) || v.len != len) return false;
    *crc = v.crc;
    return true;
}

/* ================================================================ the end of a burst of APPENDs */

/*
 * State between the steps below: op->dg_crc / dg_len (the new digest, once known), op->dg_props (the
 * file's properties as Gen2 holds them now), op->dg_etag (If-Match), op->dg_written_ms (when the
 * property was last written, 0 unknown).
 */
static void dg_unknown(aop *op, const char *why)
{
    LOGD("msg=\"no digest after append\" seq=%" PRIu64 " path=\"%s\" why=\"%s\"", op->req->seq, op->req->path, why);
    dgc_drop(op->a->dg, op->req->path);
    count(op->a, AP_DG_UNKNOWN);
    ap_st_ok(op);
}

/* Remember op's new digest (dirty: not on Gen2 yet; else written now). */
static void dg_keep(aop *op, bool dirty)
{
    applier *a = op->a;
    dgc_val v = {.crc = op->dg_crc, .len = op->dg_len, .written_ms = dirty ? op->dg_written_ms : ap_mono_ms(),
                 .dirty = dirty};
    if (dgc_put(a->dg, op->req->path, &v, op->dg_props) != 0) dgc_drop(a->dg, op->req->path);
}

static void h_dg_set(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        char what[300];
        ap_resp_what(op, r, what, sizeof what);
        LOGI("msg=\"digest not written after append\" seq=%" PRIu64 " path=\"%s\" rid=%s answer=\"%s\"", op->req->seq,
             op->req->path, AP_RID(op->req), what);
        dgc_drop(op->a->dg, op->req->path);
        count(op->a, AP_DG_FAILED);
        ap_st_ok(op);
        return;
    }
    dg_keep(op, false);
    count(op->a, AP_DG_WRITTEN);
    ap_st_ok(op);
}

/* Gen1's answer (times, length) is in, or could not be had: write the property. */
static void h_dg_g1(aop *op, httpc_resp *r)
{
    xlate_meta m;
    memset(&m, 0, sizeof m);
    xlate_err e;
    bool times = r->result == HTTPC_OK && r->status == 200 &&
                 xlate_meta_from_filestatus(r->body.data, r->body.len, &m, &e) == 0 && !m.is_dir && m.has_times &&
                 m.length == (int64_t)op->dg_len; /* the times are those of the length the digest is for */
    int64_t mt = m.mtime_ms, at = m.atime_ms;
    xlate_meta_free(&m);
    char tv[96], cv[64];
    dbuf p1, p2;
    dbuf_init(&p1, 64 * 1024);
    dbuf_init(&p2, 64 * 1024);
    int rc = xlate_crc_format(op->dg_crc, (int64_t)op->dg_len, cv, sizeof cv);
    const char *cur = op->dg_props ? op->dg_props : "";
    if (rc == 0 && times) {
        rc = xlate_times_format(mt, at, (int64_t)op->dg_len, tv, sizeof tv);
        if (rc == 0) rc = xlate_props_put(cur, XLATE_TIMES_KEY, tv, &p1, &e);
        cur = p1.data ? p1.data : "";
    }
    if (rc == 0) rc = xlate_props_put(cur, XLATE_CRC_KEY, cv, &p2, &e);
    if (rc == 0) rc = xlate_setprops(p2.data ? p2.data : "", op->dg_etag, &op->rq, &e);
    if (rc == 0) {
        free(op->dg_props);
        op->dg_props = p2.data ? strdup(p2.data) : NULL;
        if (!op->dg_props) rc = -1;
    }
    dbuf_free(&p1);
    dbuf_free(&p2);
    if (rc != 0) {
        dg_unknown(op, "the properties could not be built");
        return;
    }
    ap_g2_simple(op, ap_meta_target(op->g2path), h_dg_set);
}

/*
 * The new digest is known (op->dg_crc of op->dg_len bytes, op->dg_props, op->dg_etag): write it now, or
 * only remember it (dirty) when another APPEND of the file is queued right behind (the burst goes on),
 * or when the file is not being closed and its property was written less than applier.digest_interval_ms
 * ago (a stream of APPENDs gets one write per interval and one at its CLOSE).
 */
static void dg_known(aop *op)
{
    applier *a = op->a;
    bool closing = op->flush == XLATE_FLUSH_CLOSE;
    bool cache = dgc_max(a->dg) > 0; /* (without one every burst writes: nothing could be remembered) */
    if (cache && (ap_append_follows(op) ||
                  (!closing && op->dg_written_ms && ap_mono_ms() - op->dg_written_ms < (int64_t)a->dg_interval_ms))) {
        dg_keep(op, true);
        count(a, AP_DG_DEFERRED);
        ap_st_ok(op);
        return;
    }
    if (!op->dg_etag) {
        dg_unknown(op, "no ETag to write the property with");
        return;
    }
    ap_g1_get(op, op->req->path, "GETFILESTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_dg_g1);
}

/* Gen2's properties after the flush (the digest was not remembered for the length the APPEND started at). */
static void h_dg_head(aop *op, httpc_resp *r)
{
    uint64_t len = 0, data = op->dg_len - op->pos0;
    bool dir = false;
    if (r->result != HTTPC_OK || r->status != 200 || !ap_g2_file_len(r, &len, &dir) || dir) {
        dg_unknown(op, "Gen2's properties could not be read");
        return;
    }
    if (len != op->dg_len) {
        dg_unknown(op, "Gen2's length is not the one the append left");
        return;
    }
    const char *props = httpc_resp_header(r, "x-ms-properties");
    const char *etag = httpc_resp_header(r, "ETag");
    char v[128];
    uint32_t base = 0;
    int64_t blen = -1;
    if (!props || xlate_props_get(props, XLATE_CRC_KEY, v, sizeof v) != 1 || xlate_crc_parse(v, &base, &blen) != 0 ||
        blen != (int64_t)op->pos0) {
        dg_unknown(op, "no digest recorded for the length the append started at");
        return;
    }
    free(op->dg_props);
    free(op->dg_etag);
    op->dg_props = strdup(props);
    op->dg_etag = etag ? strdup(etag) : NULL;
    if (!op->dg_props || (etag && !op->dg_etag)) {
        dg_unknown(op, "out of memory");
        return;
    }
    op->dg_crc = crc32c_combine(base, op->dcrc, data);
    op->dg_written_ms = 0; /* (not known: written now) */
    dg_known(op);
}

void ap_st_append_digest(aop *op)
{
    applier *a = op->a;
    ap_first(op, true); /* the bytes are on Gen2: a writer with ack "both" need not wait for the digest */
    dgc_val v;
    char *props = NULL;
    bool hit = dgc_get(a->dg, op->req->path, &v, &props) && v.len == op->pos0 && props;
    if (op->data_len == 0) {
        /* nothing sent: the file is as it was; a CLOSE writes a digest left dirty by the stream's APPENDs */
        if (hit && v.dirty && op->flush == XLATE_FLUSH_CLOSE && op->dcrc_ok) {
            op->dg_crc = v.crc;
            op->dg_len = v.len;
            op->dg_written_ms = v.written_ms;
            free(op->dg_props);
            op->dg_props = props;
            dg_known(op);
            return;
        }
        free(props);
        ap_st_ok(op);
        return;
    }
    if (!op->dcrc_ok || op->flush == XLATE_FLUSH_NONE) {
        free(props);
        dg_unknown(op, !op->dcrc_ok ? "the spooled bytes could not be read back" : "no flush");
        return;
    }
    op->dg_len = op->pos0 + op->data_len;
    if (hit) {
        free(op->dg_props);
        op->dg_props = props;
        op->dg_crc = crc32c_combine(v.crc, op->dcrc, op->data_len);
        op->dg_written_ms = v.written_ms;
        dg_known(op);
        return;
    }
    free(props);
    xlate_err e;
    if (xlate_getprops(&op->rq, &e) != 0) {
        dg_unknown(op, e.message);
        return;
    }
    ap_g2_simple(op, ap_meta_target(op->g2path), h_dg_head);
}
