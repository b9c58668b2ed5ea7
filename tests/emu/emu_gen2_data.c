/*
 * emu_gen2_data: the Gen2 calls that move file bytes or describe a path (protocols.md §2.4). An
 * append is validated and pins its file in begin (g2_append_prepare), writes its body straight into
 * the file's object beyond the committed length without the lock (g2_append_body), and records the
 * range it wrote as staged in end (g2_append_end), checking Content-MD5 and flushing when asked. A
 * flush commits when the staged ranges cover [length, position) contiguously, after waiting until no
 * append is in flight. Read serves a range of the object; get-properties and the other HEAD
 * actions (getStatus, getAccessControl, checkAccess) answer with the path's headers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "acl.h"
#include "b64.h"
#include "emu_gen2_int.h"

/* ================================================================ append / flush (§2.4) */

static const char *const MSG_FLUSHPOS =
    "The uploaded data is not contiguous or the position query parameter value is not equal to the length of the "
    "file after appending the uploaded data.";

/* Record [off, off+len) as staged, merging overlapping and adjacent ranges (kept sorted). */
static int staged_add(emu_node *n, int64_t off, int64_t len)
{
    emu_range tmp[EMU_MAX_STAGED + 1];
    int k = 0;
    bool placed = false;
    int64_t s0 = off, e0 = off + len;
    for (int i = 0; i < n->nstaged; i++) {
        int64_t rs = n->staged[i].off, re = rs + n->staged[i].len;
        if (re < s0) {
            tmp[k++] = n->staged[i];
        } else if (rs > e0) {
            if (!placed) {
                tmp[k++] = (emu_range){s0, e0 - s0};
                placed = true;
            }
            tmp[k++] = n->staged[i];
        } else {
            if (rs < s0) s0 = rs;
            if (re > e0) e0 = re;
        }
    }
    if (!placed) tmp[k++] = (emu_range){s0, e0 - s0};
    int rc = emu_node_staged_reserve(n, k);
    if (rc) return rc;
    memcpy(n->staged, tmp, (size_t)k * sizeof tmp[0]);
    n->nstaged = k;
    return 0;
}

static bool staged_covers(const emu_node *n, int64_t from, int64_t to)
{
    for (int i = 0; i < n->nstaged; i++)
        if (n->staged[i].off <= from && n->staged[i].off + n->staged[i].len >= to) return true;
    return from >= to;
}

/* Commit n's staged data up to p (lock held, no append in flight except the caller's own). */
static void flush_commit(g2_req *q, emu_node *n, int64_t p, bool retain)
{
    emu_store *s = q->g->s;
    if (p < n->length || (p > n->length && !staged_covers(n, n->length, p))) {
        g2_ans_err(q, 400, "InvalidFlushPosition", "%s", MSG_FLUSHPOS);
        return;
    }
    bool changed = p > n->length;
    int had = n->nstaged, k = 0;
    for (int i = 0; retain && i < n->nstaged; i++) {
        int64_t rs = n->staged[i].off, re = rs + n->staged[i].len;
        if (re <= p) continue;
        if (rs < p) rs = p;
        n->staged[k++] = (emu_range){rs, re - rs};
    }
    n->nstaged = k;
    n->length = n->visible_length = p;
    if (changed) {
        n->mtime_ms = emu_now_ms();
        emu_store_bump_etag(s, n);
    }
    if (k == 0 && had > 0 && emu_store_truncate_object(s, n, p)) {
        g2_ans_err(q, 500, "InternalError", "The file could not be trimmed.");
        return;
    }
    if (changed || had != k) {
        g2_save_or_fail(q, n);
        if (q->ans) return;
    }
    g2_hdr_node_common(q, n);
    emu_resp_header(q->r, "x-ms-request-server-encrypted", "true");
    g2_ans_empty(q, 200);
}

static int flush_params(g2_req *q, int64_t *pos, bool *retain)
{
    const char *p = g2_param(q, "position");
    int r = g2_parse_bool(g2_param(q, "retainUncommittedData"), 0), c = g2_parse_bool(g2_param(q, "close"), 0);
    if (!p) {
        g2_ans_err(q, 400, "MissingRequiredQueryParameter", "%s", G2_MSG_NOQ);
        return -1;
    }
    if (g2_parse_i64(p, pos) || *pos < 0 || r < 0 || c < 0) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        return -1;
    }
    *retain = r == 1;
    return 0;
}

void g2_op_flush(g2_req *q)
{
    int64_t pos;
    bool retain;
    if (emu_req_has_body(q->r)) {
        g2_ans_err(q, 400, "ContentLengthMustBeZero", "The Content-Length request header must be zero.");
        return;
    }
    if (flush_params(q, &pos, &retain) || !g2_sas_allows(q, "w")) return;
    for (;;) {
        emu_node *n = g2_need_path(q);
        if (!n) return;
        if (n->type != EMU_FILE) {
            g2_ans_err(q, 400, "InvalidFlushOperation", "The resource is a directory; only files can be flushed.");
            return;
        }
        if (g2_lease_write_fail(q, n)) return;
        int c = g2_eval_conditions(q, n, "", false);
        if (c) {
            g2_ans_err(q, 412, "ConditionNotMet", "%s", G2_MSG_COND);
            return;
        }
        if (n->busy) {
            emu_store_wait(q->g->s);
            continue;
        }
        flush_commit(q, n, pos, retain);
        return;
    }
}

/* Append, step 1 (begin, lock held): validate, pin the file, open its object. */
void g2_append_prepare(g2_req *q)
{
    emu_gen2 *g = q->g;
    const char *p = g2_param(q, "position");
    int fl = g2_parse_bool(g2_param(q, "flush"), 0);
    if (!p) {
        g2_ans_err(q, 400, "MissingRequiredQueryParameter", "%s", G2_MSG_NOQ);
        return;
    }
    if (g2_parse_i64(p, &q->pos) || q->pos < 0 || fl < 0 || g2_parse_bool(g2_param(q, "close"), 0) < 0 ||
        g2_parse_bool(g2_param(q, "retainUncommittedData"), 0) < 0) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        return;
    }
    q->declared = emu_req_content_length(q->r);
    uint64_t max = g->max_body;
    if (q->declared > 0 && (uint64_t)q->declared > max) {
        g2_ans_err(q, 413, "RequestBodyTooLarge",
                   "The request body is too large and exceeds the maximum permissible limit.");
        return;
    }
    const char *md5 = g2_hdr_ne(q, "Content-MD5");
    if (md5) {
        unsigned char tmp[24];
        if (b64_decode(md5, strlen(md5), tmp, sizeof tmp) != 16) {
            g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
            return;
        }
        memcpy(q->want_md5, tmp, 16);
        q->has_md5 = true;
    }
    if (!g2_sas_allows(q, "w")) return;
    emu_node *n = g2_need_path(q);
    if (!n) return;
    if (n->type != EMU_FILE) {
        g2_ans_err(q, 409, "InvalidAppendOperation",
                   "The resource is a directory; data can only be appended to files.");
        return;
    }
    if (g2_lease_write_fail(q, n)) return;
    if (q->pos < n->length) {
        g2_ans_err(q, 400, "InvalidFlushPosition", "%s", MSG_FLUSHPOS);
        return;
    }
    int fd = emu_store_open_object(g->s, n, O_RDWR);
    if (fd < 0) {
        g2_ans_err(q, 500, "InternalError", "The file could not be opened.");
        return;
    }
    if (q->has_md5) {
        q->md5 = EVP_MD_CTX_new();
        if (!q->md5 || EVP_DigestInit_ex(q->md5, EVP_md5(), NULL) != 1) {
            close(fd);
            g2_ans_err(q, 500, "InternalError", "Out of memory.");
            return;
        }
    }
    q->wfd = fd;
    q->node = n;
    n->busy++;
    q->busy_held = true;
}

/* Append, step 2 (no lock): write the bytes where they belong in the object. */
void g2_append_body(g2_req *q, const char *data, size_t len)
{
    if (q->io_err || q->too_big || emu_req_answered(q->r)) return;
    if (q->got + len > q->g->max_body) {
        q->too_big = true;
        g2_ans_err(q, 413, "RequestBodyTooLarge",
                   "The request body is too large and exceeds the maximum permissible limit.");
        g2_ans_send(q);
        return;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(q->wfd, data + off, len - off, (off_t)(q->pos + (int64_t)(q->got + off)));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            q->io_err = w < 0 ? errno : EIO;
            return;
        }
        off += (size_t)w;
    }
    if (q->md5) EVP_DigestUpdate(q->md5, data, len);
    q->got += len;
}

void g2_unpin(g2_req *q)
{
    if (!q->busy_held) return;
    q->node->busy--;
    q->busy_held = false;
    emu_store_broadcast(q->g->s);
}

/* Append, step 3 (end): check, then record the staged range (and flush when asked). */
void g2_append_end(g2_req *q)
{
    emu_store *s = q->g->s;
    unsigned char got_md5[EVP_MAX_MD_SIZE];
    unsigned md5len = 0;
    if (q->md5) EVP_DigestFinal_ex(q->md5, got_md5, &md5len);
    emu_store_lock(s);
    emu_node *n = q->node;
    int src = 0;
    if (q->io_err) {
        g2_ans_err(q, 500, "InternalError", "The data could not be written.");
    } else if (q->has_md5 && (md5len != 16 || memcmp(got_md5, q->want_md5, 16) != 0)) {
        g2_ans_err(q, 400, "Md5Mismatch",
                   "The MD5 value specified in the request did not match with the MD5 value calculated by the server.");
    } else if (q->got > 0 && (src = staged_add(n, q->pos, (int64_t)q->got)) != 0) {
        if (src == -E2BIG)
            g2_ans_err(q, 409, "InvalidAppendOperation", "Too many non-contiguous uncommitted ranges; flush first.");
        else
            g2_ans_err(q, 500, "InternalError", "Out of memory.");
    } else {
        if (q->got > 0) g2_save_or_fail(q, n);
        if (!q->ans && g2_parse_bool(g2_param(q, "flush"), 0) == 1) {
            /* wait for the appends still receiving data (our own pin keeps n alive), not for other
             * appends with flush=true waiting here too: they would wait for each other for ever */
            n->flushing++;
            while (n->busy > n->flushing) emu_store_wait(s);
            n->flushing--;
            bool retain = g2_parse_bool(g2_param(q, "retainUncommittedData"), 0) == 1;
            if (!g2_lease_write_fail(q, n)) flush_commit(q, n, q->pos + (int64_t)q->got, retain);
            if (q->ans == G2_ANS_EMPTY && q->status == 200) q->status = 202;
        } else if (!q->ans) {
            emu_resp_header(q->r, "x-ms-request-server-encrypted", "true");
            g2_ans_empty(q, 202);
        }
        if (q->md5 && q->status == 202) {
            char b[32];
            b64_encode(got_md5, 16, b);
            emu_resp_header(q->r, "Content-MD5", b);
        }
    }
    g2_unpin(q);
    emu_store_unlock(s);
    g2_ans_send(q);
}

/* ================================================================ read and properties */

/* x-ms-lease-duration of a held lease: as acquired, or, for a lease recorded before the store kept
 * durations, by whether it ends. */
static const char *lease_duration_name(const emu_node *n)
{
    if (n->lease_duration_s != 0) return n->lease_duration_s < 0 ? "infinite" : "fixed";
    return n->lease_expiry_ms ? "fixed" : "infinite";
}

static void hdr_path_props(g2_req *q, const emu_node *n, bool user_props, bool acl)
{
    char perm[12], ct[40];
    int64_t now = emu_now_ms();
    g2_hdr_node_common(q, n);
    emu_resp_header(q->r, "x-ms-resource-type", n->type == EMU_DIR ? "directory" : "file");
    emu_resp_header(q->r, "x-ms-owner", n->owner);
    emu_resp_header(q->r, "x-ms-group", n->group);
    acl_mode_symbolic(n->mode, emu_node_has_acl(n), perm);
    emu_resp_header(q->r, "x-ms-permissions", perm);
    g2_fmt_rfc1123(n->ctime_ms, ct);
    emu_resp_header(q->r, "x-ms-creation-time", ct);
    if (n->expiry_ms) {
        g2_fmt_rfc1123(n->expiry_ms, ct);
        emu_resp_header(q->r, "x-ms-expiry-time", ct);
    }
    const char *ls = g2_lease_state(n, now);
    emu_resp_header(q->r, "x-ms-lease-state", ls);
    emu_resp_header(q->r, "x-ms-lease-status", g2_lease_active(n, now) ? "locked" : "unlocked");
    if (strcmp(ls, "leased") == 0) emu_resp_header(q->r, "x-ms-lease-duration", lease_duration_name(n));
    emu_resp_header(q->r, "x-ms-server-encrypted", "true");
    if (n->type == EMU_FILE) {
        emu_resp_header(q->r, "x-ms-blob-type", "BlockBlob");
        emu_resp_header(q->r, "Accept-Ranges", "bytes");
    } else {
        emu_resp_header(q->r, "x-ms-meta-hdi_isfolder", "true");
    }
    if (user_props && n->properties) emu_resp_header(q->r, "x-ms-properties", n->properties);
    if (acl) {
        acl_list full;
        acl_node a;
        emu_node_acl_get(n, &a);
        acl_full(&a, &full);
        dbuf b;
        dbuf_init(&b, 64 * 1024);
        if (acl_format(&full, &b) == 0) emu_resp_header(q->r, "x-ms-acl", b.data ? b.data : "");
        dbuf_free(&b);
    }
}

/* Range: "bytes=a-b" or "bytes=a-". Returns 1 with the range, 0 when absent or unusable (the
 * whole resource is served, as Blob storage does for syntax it ignores). */
static int parse_range(const char *v, int64_t *a, int64_t *b)
{
    if (!v || strncmp(v, "bytes=", 6) != 0) return 0;
    const char *p = v + 6;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (errno || end == p || *end != '-' || x < 0) return 0;
    *a = x;
    p = end + 1;
    if (!*p) {
        *b = INT64_MAX;
        return 1;
    }
    long long y = strtoll(p, &end, 10);
    if (errno || end == p || *end || y < x) return 0;
    *b = y;
    return 1;
}

void g2_op_read(g2_req *q, bool head)
{
    if (!g2_sas_allows(q, "r")) return;
    emu_node *n = g2_need_path(q);
    if (!n) return;
    const char *lid = g2_hdr_ne(q, "x-ms-lease-id");
    int64_t now = emu_now_ms();
    if (lid && (!g2_lease_active(n, now) || strcasecmp(lid, n->lease_id) != 0)) {
        bool active = g2_lease_active(n, now);
        g2_ans_err(q, 412, active ? "LeaseIdMismatch" : "LeaseNotPresent", "%s",
                   active ? "The lease ID specified did not match the lease ID for the resource."
                          : "There is currently no lease on the resource.");
        return;
    }
    if (g2_cond_fail(q, n, g2_eval_conditions(q, n, "", true))) return;
    int64_t len = n->type == EMU_FILE ? n->length : 0;
    if (head) {
        hdr_path_props(q, n, true, false);
        q->ans = G2_ANS_HEAD;
        q->status = 200;
        q->head_len = (uint64_t)len;
        return;
    }
    int64_t a = 0, b = 0;
    const char *rh = g2_hdr_ne(q, "x-ms-range");
    int ranged = parse_range(rh ? rh : g2_hdr_ne(q, "Range"), &a, &b);
    if (ranged && a >= len) {
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%" PRId64, len);
        emu_resp_header(q->r, "Content-Range", cr);
        g2_ans_err(q, 416, "InvalidRange", "The range specified is invalid for the current size of the resource.");
        return;
    }
    if (ranged && b >= len) b = len - 1;
    int64_t off = ranged ? a : 0, cnt = ranged ? b - a + 1 : len;
    hdr_path_props(q, n, true, false);
    if (ranged) {
        char cr[80];
        snprintf(cr, sizeof cr, "bytes %" PRId64 "-%" PRId64 "/%" PRId64, a, b, len);
        emu_resp_header(q->r, "Content-Range", cr);
    }
    if (cnt == 0) {
        g2_ans_text(q, ranged ? 206 : 200, "application/octet-stream", "");
        return;
    }
    int fd = emu_store_open_object(q->g->s, n, O_RDONLY);
    if (fd < 0) {
        g2_ans_err(q, 500, "InternalError", "The file could not be opened.");
        return;
    }
    q->ans = G2_ANS_FD;
    q->status = ranged ? 206 : 200;
    q->ctype = "application/octet-stream";
    q->fd = fd;
    q->fd_off = (uint64_t)off;
    q->fd_len = (uint64_t)cnt;
}

void g2_op_head_action(g2_req *q)
{
    if (!g2_sas_allows(q, q->op == G2_OP_GETPROPS ? "r" : "er")) return;
    emu_node *n = g2_need_path(q);
    if (!n) return;
    if (q->op == G2_OP_CHECKACCESS) {
        const char *fa = g2_param(q, "fsAction");
        if (!fa || strlen(fa) != 3 || !strchr("r-", fa[0]) || !strchr("w-", fa[1]) || !strchr("x-", fa[2])) {
            g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
            return;
        }
        g2_ans_empty(q, 200);
        return;
    }
    if (g2_parse_bool(g2_param(q, "upn"), 0) < 0) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        return;
    }
    if (g2_cond_fail(q, n, g2_eval_conditions(q, n, "", true))) return;
    hdr_path_props(q, n, false, q->op == G2_OP_GETACL);
    q->ans = G2_ANS_HEAD;
    q->status = 200;
    q->head_len = q->op == G2_OP_GETSTATUS && n->type == EMU_FILE ? (uint64_t)n->length : 0;
}
