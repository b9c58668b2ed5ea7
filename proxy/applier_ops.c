/*
 * applier_ops: the per-operation state machines of the applier (applier_int.h): which Gen2 requests
 * mirror each Gen1 write (through common/xlate) and how their answers lead to the next step. CREATE
 * and MKDIRS (with the missing ancestors' metadata), APPEND (at the length Gen2 holds, with the
 * APPENDs queued behind it on the same file coalesced into one flush), RENAME (HDFS semantics),
 * DELETE, SETPERMISSION, SETOWNER, SETEXPIRY and the five ACL operations (read-modify-write with
 * If-Match); ap_op_start dispatches, after the covers and resync requests. Re-copies are in
 * applier_copy.c, resyncs in applier_resync.c.
 *
 * Replays are checked against what Gen2 holds (protocols.md section 4.6): an APPEND with an offset
 * whose bytes Gen2 already has is not sent again, and one whose offset matches neither end fails
 * (and so is resynced); a CREATE re-sent (or replayed) that finds a file compares its length with the
 * body; a RENAME re-sent that finds its source gone checks the destination; DELETE of nothing is done.
 */
#include "applier_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reserved.h"

static whreq_sync param_sync(const apply_req *r)
{
    const char *v = ap_param(r, "syncflag");
    if (v && strcasecmp(v, "DATA") == 0) return WH_SYNC_DATA;
    if (v && strcasecmp(v, "METADATA") == 0) return WH_SYNC_METADATA;
    return WH_SYNC_CLOSE; /* Gen1's default (swagger) */
}

/* ================================================================ DELETE rounds */

void ap_delete_round(aop *op, bool recursive, ap_handler h)
{
    xlate_err e;
    if (xlate_delete(recursive, op->cont, &op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->g2path, h);
}

void ap_delete_round_answer(aop *op, httpc_resp *r, bool recursive, ap_handler again, const char *label,
                            ap_step then)
{
    if (r->result == HTTPC_OK && (r->status == 200 || r->status == 202)) {
        const char *c = httpc_resp_header(r, "x-ms-continuation");
        if (c && *c) {
            free(op->cont);
            op->cont = strdup(c);
            if (!op->cont) {
                ap_op_finish(op, APPLY_FAILED, "out of memory");
                return;
            }
            ap_delete_round(op, recursive, again);
            return;
        }
    } else if (!(r->result == HTTPC_OK && r->status == 404)) {
        ap_op_fail_resp(op, r, label);
        return;
    }
    ap_cache_drop_tree(op->a, op->req->path);
    ap_marks_drop_tree(op->a, op->req->path);
    then(op);
}

/* ================================================================ CREATE, MKDIRS */

static void st_meta_then_ok(aop *op)
{
    ap_meta_run(op, ap_st_ok);
}

static void create_done(aop *op)
{
    ap_dg_remember(op);
    ap_st_ok(op);
}

/* The body is on Gen2: its CRC (summed by the data step) goes with the metadata copy. */
static void create_sent(aop *op)
{
    const spool_body *b = op->req->body;
    op->dg_known = op->dcrc_ok && op->pos0 == 0 && b && op->data_len == b->len && op->flush != XLATE_FLUSH_NONE;
    op->dg_crc = op->dcrc;
    op->dg_len = op->data_len;
    ap_meta_run(op, create_done);
}

/* The file exists on Gen2 holding have bytes (0, or all of the body): write the rest, copy metadata. */
static void create_data(aop *op, uint64_t have)
{
    const spool_body *b = op->req->body;
    uint64_t len = b ? b->len : 0;
    ap_mark_ancestors(op);
    if (ap_meta_add(op, op->req->path, op->g2path) != 0) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    ap_cache_put(op->a, op->req->path, false, have);
    op->dg_g2 = op->g2path;
    if (len == 0 || have == len) {
        /* nothing to send: the CRC of what Gen2 already holds (the body: the spool's CRC of it, or read back) */
        op->dg_crc = 0;
        op->dg_len = len;
        op->dg_known = len == 0 || ap_body_crc(b, &op->dg_crc) || ap_crc_fd(b->fd, b->off, len, &op->dg_crc) == 0;
        ap_meta_run(op, create_done);
        return;
    }
    ap_data_run(op, b->fd, b->off, len, 0, xlate_flush_policy(param_sync(op->req), len), create_sent);
}

/* A re-sent or replayed create found a file: Gen2's copy of ours, empty or complete, or something else. */
static void h_create_exists(aop *op, httpc_resp *r)
{
    uint64_t have = 0, len = op->req->body ? op->req->body->len : 0;
    bool dir = false;
    if (r->result != HTTPC_OK || r->status != 200 || !ap_g2_file_len(r, &have, &dir) || dir) {
        if (r->result == HTTPC_OK && r->status == 200)
            ap_op_finish(op, APPLY_FAILED, "the create found a directory (or no file) on Gen2");
        else
            ap_op_fail_resp(op, r, "reading the file a re-sent create found");
        return;
    }
    if (have != 0 && have != len) {
        ap_op_finish(op, APPLY_FAILED, "Gen2 already holds %" PRIu64 " bytes at the path, the create carried %" PRIu64,
                     have, len);
        return;
    }
    create_data(op, have);
}

static void h_create(aop *op, httpc_resp *r)
{
    char code[128];
    if (r->result == HTTPC_OK && (op->attempt > 1 || op->req->maybe_sent) &&
        xlate_already_exists(r->status, ap_g2code(r, code, sizeof code))) {
        /* A re-sent create whose first send may have landed: see what is there. */
        xlate_err e;
        if (xlate_getstatus(&op->rq, &e) != 0) {
            ap_op_finish(op, APPLY_FAILED, "%s", e.message);
            return;
        }
        ap_g2_simple(op, op->g2path, h_create_exists);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 201) {
        ap_op_fail_resp(op, r, "create");
        return;
    }
    create_data(op, 0);
}

static void st_create(aop *op)
{
    xlate_err e;
    if (xlate_create(ap_param_bool(op->req, "overwrite", false), ap_param(op->req, "permission"), &op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->g2path, h_create);
}

static void h_mkdirs(aop *op, httpc_resp *r)
{
    const char *t = r->result == HTTPC_OK ? httpc_resp_header(r, "x-ms-existing-resource-type") : NULL;
    char code[128];
    bool ok = r->result == HTTPC_OK && xlate_mkdirs_ok(r->status, t);
    /* A re-sent mkdir whose first send landed sees its own directory: fine. */
    if (!ok && r->result == HTTPC_OK && op->attempt > 1 &&
        xlate_already_exists(r->status, ap_g2code(r, code, sizeof code)))
        ok = t == NULL || strcasecmp(t, "directory") == 0;
    if (!ok) {
        ap_op_fail_resp(op, r, "create directory");
        return;
    }
    ap_mark_ancestors(op);
    ap_cache_put(op->a, op->req->path, true, 0);
    /* An existing directory keeps its metadata (Gen1's MKDIRS does not change it either). */
    if (r->status == 201 && ap_meta_add(op, op->req->path, op->g2path) != 0) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    st_meta_then_ok(op);
}

static void st_mkdirs(aop *op)
{
    xlate_err e;
    if (!*op->g2path) { /* the filesystem root always exists */
        ap_op_done(op);
        return;
    }
    if (xlate_mkdirs(ap_param(op->req, "permission"), &op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->g2path, h_mkdirs);
}

/* ================================================================ APPEND */

static void st_append_len(aop *op);

static xlate_flush req_flush(const apply_req *q)
{
    return xlate_flush_policy(param_sync(q), q->body ? q->body->len : 0);
}

/* The extents of the APPEND and of its group's members, in order. Returns 0 or -1 (out of memory). */
static int append_extents(aop *op)
{
    int n = 1 + op->ngrp;
    ap_ext *x = realloc(op->ext, sizeof *x * (size_t)n);
    if (!x) return -1;
    op->ext = x;
    for (int i = 0; i < n; i++) {
        const spool_body *b = (i == 0 ? op : op->grp[i - 1])->req->body;
        x[i].fd = b ? b->fd : -1;
        x[i].off = b ? b->off : 0;
        x[i].len = b ? b->len : 0;
        x[i].body = b;
    }
    op->next_ext = n;
    return 0;
}

/*
 * Gen2 holds len bytes of the file (committed). Take the APPENDs queued behind this one into its
 * group, then decide where to start: without an offset, at len (unless the APPEND may have been sent
 * before a restart: that cannot be told, so it fails into a resync); with one, at the first member
 * boundary equal to len (what lies below it already landed), nothing at all when everything landed,
 * and a failure when len is no boundary (Gen2 and the journal disagree). The last member's syncFlag
 * decides the one flush.
 */
static void append_at(aop *op, uint64_t len)
{
    ap_group_take(op);
    if (append_extents(op) != 0) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    int n = op->next_ext, first = 0;
    const char *off = ap_param(op->req, "offset");
    if (off && *off) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = off[0] >= '0' && off[0] <= '9' ? strtoull(off, &end, 10) : 0;
        if (errno || !end || *end) {
            ap_op_finish(op, APPLY_FAILED, "APPEND with an offset that is not a number");
            return;
        }
        uint64_t b = v;
        first = -1;
        for (int i = 0; i <= n && first < 0; i++) {
            if (len == b) first = i;
            else if (i < n) b += op->ext[i].len;
        }
        if (first < 0) {
            if (op->len_from_cache) { /* stale? ask Gen2 */
                ap_cache_drop_tree(op->a, op->req->path);
                st_append_len(op);
                return;
            }
            op->rs_tail = true; /* the resync compares lengths: a tail may be all that is missing */
            ap_op_finish(op, APPLY_FAILED, "Gen2 holds %" PRIu64 " bytes but Gen1 appended at offset %llu", len, v);
            return;
        }
        if (first == n) {
            ap_op_finish(op, APPLY_OK, "already on Gen2 (it holds %" PRIu64 " bytes)", len);
            return;
        }
    } else if (op->req->maybe_sent) {
        op->rs_tail = true;
        ap_op_finish(op, APPLY_FAILED, "an APPEND without an offset that may have reached Gen2 before a restart "
                                       "(Gen2 holds %" PRIu64 " bytes): cannot tell whether it landed",
                     len);
        return;
    }
    xlate_flush fl = req_flush(op->ngrp ? op->grp[op->ngrp - 1]->req : op->req);
    if (fl == XLATE_FLUSH_NONE) { /* (an earlier member's bytes still need committing) */
        bool any = req_flush(op->req) != XLATE_FLUSH_NONE;
        for (int i = 0; i < op->ngrp; i++) any |= req_flush(op->grp[i]->req) != XLATE_FLUSH_NONE;
        if (any) fl = XLATE_FLUSH_OPEN;
    }
    op->on_stale = op->len_from_cache ? st_append_len : NULL;
    ap_data_run_ext(op, first, len, fl, ap_st_append_digest);
}

static void h_append_len(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(op, r, "reading the length before an append");
        return;
    }
    uint64_t v = 0;
    bool dir = false;
    if (!ap_g2_file_len(r, &v, &dir) || dir) {
        ap_op_finish(op, APPLY_FAILED, "Gen2 path is not a file with a length (append)");
        return;
    }
    ap_cache_put(op->a, op->req->path, false, v);
    op->len_from_cache = false;
    append_at(op, v);
}

static void st_append_len(aop *op)
{
    uint64_t len = 0;
    xlate_err e;
    if (ap_cache_get(op->a, op->req->path, &len) == 1) {
        op->len_from_cache = true;
        append_at(op, len);
        return;
    }
    if (xlate_getstatus(&op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->g2path, h_append_len);
}

/* ================================================================ RENAME, DELETE */

static void st_rename_send(aop *op, const char *target);

/* The Gen1 path the source has after the rename: the destination, or destination/basename(source)
 * when it moved into the directory there (HDFS rename). malloc'd; NULL when out of memory. */
static char *moved_path(const aop *op, bool into_dir)
{
    const char *src = op->req->path, *dst = op->touch[1];
    if (!into_dir) return strdup(dst);
    const char *base = strrchr(src, '/');
    base = base ? base + 1 : src;
    size_t n = strlen(dst) + strlen(base) + 2;
    char *tgt = malloc(n);
    if (tgt) snprintf(tgt, n, "%s/%s", strcmp(dst, "/") == 0 ? "" : dst, base);
    return tgt;
}

/* After a rename: copy the metadata of marked nodes it moved, at their new Gen1 paths. */
static void rename_moved_meta(aop *op)
{
    const char *src = op->req->path;
    char *tgt = moved_path(op, op->dst_dir && !op->rename2);
    char **moved = NULL;
    int nmoved = 0;
    int rc = tgt ? ap_marks_take_moved(op->a, src, tgt, &moved, &nmoved) : -1;
    free(tgt);
    for (int i = 0; i < nmoved; i++) {
        char fs[64], why[128];
        char *g2 = malloc(AP_PATH_CAP);
        if (g2 && gen2c_map(op->a->g2, moved[i], fs, g2, AP_PATH_CAP, why, sizeof why) == GEN2C_MAPPED &&
            strcmp(fs, op->fs) == 0 && ap_meta_add(op, moved[i], g2) != 0)
            rc = -1;
        free(g2);
        free(moved[i]);
    }
    free(moved);
    if (rc != 0) ap_op_note(op, "out of memory: the metadata of moved nodes was not copied");
    ap_meta_run(op, ap_st_ok);
}

static void rename_done(aop *op)
{
    ap_cache_drop_tree(op->a, op->req->path);
    ap_cache_drop_tree(op->a, op->touch[1]);
    char *tgt = moved_path(op, op->dst_dir && !op->rename2); /* the digests (properties) moved with the files */
    if (tgt) dgc_move(op->a->dg, op->req->path, tgt);
    else dgc_drop_tree(op->a->dg, op->req->path);
    free(tgt);
    rename_moved_meta(op);
}

/* A re-sent rename found its source gone: done when the destination is there. */
static void h_rename_gone(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 200) {
        rename_done(op);
        return;
    }
    if (r->result == HTTPC_OK && r->status == 404)
        ap_op_finish(op, APPLY_FAILED, "rename: neither the source nor the destination is on Gen2");
    else
        ap_op_fail_resp(op, r, "reading the destination of a re-sent rename");
}

static void h_rename(aop *op, httpc_resp *r)
{
    char code[128];
    ap_g2code(r, code, sizeof code);
    if (r->result == HTTPC_OK && r->status == 404 && (op->attempt > 1 || op->req->maybe_sent) &&
        strcmp(code, "SourcePathNotFound") == 0) {
        /* A re-sent rename whose first send may have landed (per-path order: nobody else moved it). */
        xlate_err e;
        free(op->cont);
        op->cont = NULL;
        if (xlate_getstatus(&op->rq, &e) != 0) {
            ap_op_finish(op, APPLY_FAILED, "%s", e.message);
            return;
        }
        ap_g2_simple(op, op->g2dst, h_rename_gone);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 201) {
        ap_op_fail_resp(op, r, "rename");
        return;
    }
    const char *c = httpc_resp_header(r, "x-ms-continuation");
    if (c && *c) {
        free(op->cont);
        op->cont = strdup(c);
        if (!op->cont) {
            ap_op_finish(op, APPLY_FAILED, "out of memory");
            return;
        }
        st_rename_send(op, op->rq_path);
        return;
    }
    rename_done(op);
}

static void st_rename_send(aop *op, const char *target)
{
    dbuf src;
    dbuf_init(&src, 64 * 1024);
    xlate_err e;
    int rc = gen2c_rename_source(op->a->g2, op->fs, op->g2path, &src);
    if (rc == 0) rc = xlate_rename(src.data, op->overwrite, op->cont, &op->rq, &e);
    dbuf_free(&src);
    if (rc != 0) {
        ap_op_finish(op, APPLY_FAILED, "cannot build the rename");
        return;
    }
    ap_g2_simple(op, target, h_rename);
}

/* The destination's type decides the target (HDFS moves a source into an existing directory). */
static void rename_with(aop *op, bool dst_is_dir)
{
    op->dst_dir = dst_is_dir;
    char *t = malloc(AP_PATH_CAP);
    if (!t || xlate_rename_target(op->g2path, op->g2dst, dst_is_dir, op->rename2, t, AP_PATH_CAP) != 0) {
        free(t);
        ap_op_finish(op, APPLY_FAILED, "rename target too long");
        return;
    }
    free(op->g2dst);
    op->g2dst = t;
    st_rename_send(op, op->g2dst);
}

/* Answer to a HEAD of the rename destination on Gen2: sets *dir (false when absent: 404). Returns 0,
 * or -1 after failing op on any other answer. */
static int dest_probe_answer(aop *op, httpc_resp *r, bool *dir)
{
    *dir = false;
    if (r->result == HTTPC_OK && r->status == 200) {
        const char *t = httpc_resp_header(r, "x-ms-resource-type");
        *dir = t && strcasecmp(t, "directory") == 0;
    } else if (!(r->result == HTTPC_OK && r->status == 404)) {
        ap_op_fail_resp(op, r, "reading the rename destination");
        return -1;
    }
    return 0;
}

static void h_rename_probe(aop *op, httpc_resp *r)
{
    bool dir;
    if (dest_probe_answer(op, r, &dir) == 0) rename_with(op, dir);
}

/*
 * A RENAME Gen2 cannot do as a rename: source and destination in different filesystems, or one of
 * them not mirrored (no mapping, or a name Gen2 would reject). Gen2 is made equal to Gen1 instead:
 * the destination subtree is copied from Gen1 (when it is mirrored) and the source subtree deleted
 * on Gen2 (when it was mirrored). The operation's ordering entry covers both paths meanwhile.
 */
static void xrename_end(aop *op)
{
    const char *dst = op->touch[1];
    dgc_drop_tree(op->a->dg, op->req->path); /* (the copy remembered the digests of what it copied) */
    char sum[160] = "";
    if (op->rs) ap_resync_summary(op, sum, sizeof sum);
    if (op->xdst == GEN2C_INVALID_NAME) {
        ap_op_finish(op, APPLY_SKIPPED_INVALID_NAME,
                     "destination %s: Gen2 would reject this name (%s); the source was deleted on Gen2", dst, op->xwhy);
        return;
    }
    if (op->outcome != APPLY_OK) { /* the copy noted a divergence (metadata): keep it */
        ap_op_done(op);
        return;
    }
    if (op->xdst == GEN2C_UNMAPPED)
        ap_op_finish(op, APPLY_OK, "destination %s is not mapped: the source was deleted on Gen2", dst);
    else if (op->xsrc == GEN2C_MAPPED)
        ap_op_finish(op, APPLY_OK, "moved across Gen2 filesystems (%s to %s): %s from Gen1, source deleted", op->fs,
                     op->fs2, sum);
    else
        ap_op_finish(op, APPLY_OK, "source not mirrored (%s): %s from Gen1",
                     op->xsrc == GEN2C_UNMAPPED ? "no mapping" : "a name Gen2 would reject", sum);
}

static void h_xrename_delete(aop *op, httpc_resp *r)
{
    ap_delete_round_answer(op, r, true, h_xrename_delete, "deleting the renamed source", xrename_end);
}

/* Delete the source subtree on Gen2 (op->fs, recursive, in as many rounds as Gen2 asks). */
static void xrename_delete_send(aop *op)
{
    free(op->cont);
    op->cont = NULL;
    ap_delete_round(op, true, h_xrename_delete);
}

static void xrename_copied(aop *op)
{
    if (op->xsrc != GEN2C_MAPPED) {
        xrename_end(op);
        return;
    }
    xrename_delete_send(op);
}

static void xrename_copy(aop *op, bool into_dir)
{
    op->rs_root = moved_path(op, into_dir);
    if (!op->rs_root) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    ap_resync_run(op, op->rs_root, xrename_copied);
}

static void h_xrename_probe(aop *op, httpc_resp *r)
{
    bool dir;
    if (dest_probe_answer(op, r, &dir) == 0) xrename_copy(op, dir);
}

static void xrename(aop *op)
{
    xlate_err e;
    if (op->xdst != GEN2C_MAPPED) { /* the source left the mirrored paths */
        xrename_delete_send(op);
        return;
    }
    /* Where the source landed: into the destination when that was a directory (Gen2 mirrors what
     * the destination was before this rename: per-path order). */
    if (op->rename2) {
        xrename_copy(op, false);
        return;
    }
    if (!*op->g2dst || ap_cache_get(op->a, op->touch[1], NULL) == 2) {
        xrename_copy(op, true);
        return;
    }
    if (xlate_getstatus(&op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple_in(op, op->fs2, op->g2dst, h_xrename_probe);
}

/* smr/swhy: how the source maps (op->fs, op->g2path filled when mapped). */
static void st_rename(aop *op, gen2c_map_result smr, const char *swhy)
{
    xlate_err e;
    const char *dst = op->touch[1];
    op->g2dst = malloc(AP_PATH_CAP);
    if (!op->g2dst) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    op->xsrc = smr;
    op->xdst = gen2c_map(op->a->g2, dst, op->fs2, op->g2dst, AP_PATH_CAP, op->xwhy, sizeof op->xwhy);
    if (op->xdst == GEN2C_MAPPED && dp_reserved_g2(op->g2dst)) { /* never renamed onto dualpipe's own directory */
        op->xdst = GEN2C_INVALID_NAME;
        snprintf(op->xwhy, sizeof op->xwhy, "the destination " DP_RESERVED_WHY);
    }
    if (smr != GEN2C_MAPPED && op->xdst != GEN2C_MAPPED) {
        if (smr == GEN2C_INVALID_NAME)
            ap_op_finish(op, APPLY_SKIPPED_INVALID_NAME, "Gen2 would reject this name: %s", swhy);
        else
            ap_op_finish(op, APPLY_SKIPPED_UNMAPPED, "no mapping covers this path");
        return;
    }
    if (smr == GEN2C_MAPPED && !*op->g2path) {
        ap_op_finish(op, APPLY_DIVERGENCE, "rename of a mapping's filesystem root: not mirrored");
        return;
    }
    if (xlate_rename_options(ap_param(op->req, "renameoptions"), &op->rename2, &op->overwrite, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    if (smr != GEN2C_MAPPED || op->xdst != GEN2C_MAPPED || strcmp(op->fs2, op->fs) != 0) {
        xrename(op);
        return;
    }
    if (op->rename2) {
        rename_with(op, false);
        return;
    }
    if (!*op->g2dst || ap_cache_get(op->a, dst, NULL) == 2) {
        rename_with(op, true);
        return;
    }
    if (xlate_getstatus(&op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->g2dst, h_rename_probe);
}

static void h_delete(aop *op, httpc_resp *r)
{
    ap_delete_round_answer(op, r, ap_param_bool(op->req, "recursive", false), h_delete, "delete", ap_op_done);
}

static void st_delete(aop *op)
{
    if (!*op->g2path) {
        ap_op_finish(op, APPLY_DIVERGENCE, "delete of a mapping's filesystem root: not mirrored");
        return;
    }
    ap_cache_drop_tree(op->a, op->req->path);
    ap_delete_round(op, ap_param_bool(op->req, "recursive", false), h_delete);
}

/* ================================================================ metadata ops */

static void h_simple(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(op, r, ap_op_name(op->req->op));
        return;
    }
    ap_op_done(op);
}

static void st_acl_get(aop *op);

static void h_acl_set(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 412 && ++op->rmw < XLATE_ACL_ATTEMPTS) {
        st_acl_get(op); /* changed between our read and write: read again */
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(op, r, "setAccessControl (ACL)");
        return;
    }
    ap_op_done(op);
}

static void h_acl_get(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(op, r, "getAccessControl");
        return;
    }
    const char *t = httpc_resp_header(r, "x-ms-resource-type");
    bool is_dir = !t || strcasecmp(t, "directory") == 0;
    dbuf acl;
    dbuf_init(&acl, 96 * 1024);
    xlate_err e;
    int rc = xlate_acl_apply(op->req->op, op->ids_spec, httpc_resp_header(r, "x-ms-acl"),
                             httpc_resp_header(r, "x-ms-permissions"), is_dir, &acl, &e);
    if (rc == 0) rc = xlate_setacl(acl.data ? acl.data : "", httpc_resp_header(r, "ETag"), &op->rq, &e);
    dbuf_free(&acl);
    if (rc != 0) {
        ap_op_finish(op, APPLY_FAILED, "ACL merge failed: %s", e.message);
        return;
    }
    ap_g2_simple(op, ap_meta_target(op->g2path), h_acl_set);
}

static void st_acl_get(aop *op)
{
    xlate_err e;
    whreq_op o = op->req->op;
    if (!op->ids_spec_done) { /* the writer's names to Gen2 identities, once for all rounds */
        const char *spec = o == WH_OP_REMOVEACL || o == WH_OP_REMOVEDEFAULTACL ? NULL : ap_param(op->req, "aclspec");
        if (ap_ids_aclspec(op, spec, o != WH_OP_REMOVEACLENTRIES) != 0) {
            ap_op_finish(op, APPLY_FAILED, "ACL spec not translated to Gen2 identities (bad spec or out of memory)");
            return;
        }
        if (op->ids_spec_empty) { /* every entry named someone the map lacks: nothing to change */
            ap_op_done(op);
            return;
        }
    }
    if (xlate_getacl(&op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, ap_meta_target(op->g2path), h_acl_get);
}

static void st_simple_meta(aop *op)
{
    xlate_err e;
    int rc;
    const apply_req *q = op->req;
    switch (q->op) {
    case WH_OP_SETPERMISSION:
        if (!ap_param(q, "permission") || !*ap_param(q, "permission")) {
            /* Gen1 applied its default: copy whatever it has now. */
            if (ap_meta_add(op, q->path, op->g2path) != 0) {
                ap_op_finish(op, APPLY_FAILED, "out of memory");
                return;
            }
            st_meta_then_ok(op);
            return;
        }
        rc = xlate_setpermission(ap_param(q, "permission"), &op->rq, &e);
        break;
    case WH_OP_SETOWNER: {
        char o[256], g[256];
        ap_ids_owner(op, ap_param(q, "owner"), ap_param(q, "group"), o, g);
        if (!o[0] && !g[0]) { /* nothing mapped: the outcome already says why */
            ap_op_done(op);
            return;
        }
        rc = xlate_setowner(o, g, &op->rq, &e);
        break;
    }
    case WH_OP_SETEXPIRY: rc = xlate_expiry(ap_param(q, "expiryoption"), ap_param(q, "expiretime"), &op->rq, &e); break;
    default: rc = -1; snprintf(e.message, sizeof e.message, "not a metadata operation");
    }
    if (rc != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, ap_meta_target(op->g2path), h_simple);
}

/* ================================================================ SETTIMES */

/*
 * Gen2 cannot set a path's times: Gen1's go into the property XLATE_TIMES_KEY instead. Properties are
 * replaced as a whole, so this is a read-modify-write: getProperties, merge the key into what is there,
 * setProperties with If-Match (a 412 reads again, as the ACL operations do).
 */
static void st_times_get(aop *op);

static void h_times_set(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 412 && ++op->rmw < XLATE_ACL_ATTEMPTS) {
        st_times_get(op);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(op, r, "setProperties (SETTIMES)");
        return;
    }
    ap_op_done(op);
}

static void h_times_get(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(op, r, "getProperties (SETTIMES)");
        return;
    }
    dbuf props;
    dbuf_init(&props, 64 * 1024);
    xlate_err e;
    const char *t = httpc_resp_header(r, "x-ms-resource-type");
    bool dir = t && strcasecmp(t, "directory") == 0;
    int rc = xlate_settimes_props(httpc_resp_header(r, "x-ms-properties"),
                                  dir ? NULL : httpc_resp_header(r, "Content-Length"),
                                  ap_param(op->req, "modificationtime"), ap_param(op->req, "accesstime"), &props, &e);
    if (rc == 0) rc = xlate_setprops(props.data ? props.data : "", httpc_resp_header(r, "ETag"), &op->rq, &e);
    dbuf_free(&props);
    if (rc != 0) {
        ap_op_finish(op, APPLY_DIVERGENCE, "times not kept on Gen2: %s", e.message);
        return;
    }
    ap_g2_simple(op, ap_meta_target(op->g2path), h_times_set);
}

static void st_times_get(aop *op)
{
    xlate_err e;
    if (xlate_getprops(&op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, ap_meta_target(op->g2path), h_times_get);
}

/* ================================================================ start */

void ap_op_start(aop *op)
{
    char root[512];
    if (ap_covered(op->a, op, false, root, sizeof root)) {
        ap_op_finish(op, APPLY_OK, "covered by resync of %s", root);
        return;
    }
    if (op->prep_err[0]) {
        ap_op_finish(op, APPLY_FAILED, "%s", op->prep_err);
        return;
    }
    ap_dg_on_start(op);
    if (op->req->resync) {
        op->rs_tail = op->req->op == WH_OP_APPEND; /* Gen1's outcome unknown: settle by lengths */
        ap_op_resync(op, op->req->maybe_sent ? "resync requested (recovered after a restart)" : "resync requested");
        return;
    }
    whreq_op o = op->req->op;
    if ((o == WH_OP_RENAME || o == WH_OP_DELETE || o == WH_OP_MKDIRS) && xlate_gen1_false(op->req->gen1_body)) {
        ap_op_finish(op, APPLY_OK, "Gen1 answered false: nothing changed");
        return;
    }
    char why[128];
    op->g2path = malloc(AP_PATH_CAP);
    if (!op->g2path) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    gen2c_map_result mr = gen2c_map(op->a->g2, op->req->path, op->fs, op->g2path, AP_PATH_CAP, why, sizeof why);
    if (mr == GEN2C_MAPPED && dp_reserved_g2(op->g2path)) { /* dualpipe's own directory on Gen2: never written */
        mr = GEN2C_INVALID_NAME;
        snprintf(why, sizeof why, "the path " DP_RESERVED_WHY);
    }
    if (o == WH_OP_RENAME) { /* the destination may be mirrored even when the source is not */
        st_rename(op, mr, why);
        return;
    }
    if (mr == GEN2C_INVALID_NAME) {
        ap_op_finish(op, APPLY_SKIPPED_INVALID_NAME, "Gen2 would reject this name: %s", why);
        return;
    }
    if (mr == GEN2C_UNMAPPED) {
        ap_op_finish(op, APPLY_SKIPPED_UNMAPPED, "no mapping covers this path");
        return;
    }
    switch (o) {
    case WH_OP_CREATE: ap_probe_ancestors(op, st_create); break;
    case WH_OP_MKDIRS: ap_probe_ancestors(op, st_mkdirs); break;
    case WH_OP_APPEND: st_append_len(op); break;
    case WH_OP_CONCURRENTAPPEND:
    case WH_OP_CONCAT:
    case WH_OP_MSCONCAT: ap_st_recopy(op); break;
    case WH_OP_DELETE: st_delete(op); break;
    case WH_OP_SETPERMISSION:
    case WH_OP_SETOWNER:
    case WH_OP_SETEXPIRY: st_simple_meta(op); break;
    case WH_OP_SETTIMES: st_times_get(op); break;
    case WH_OP_SETACL:
    case WH_OP_MODIFYACLENTRIES:
    case WH_OP_REMOVEACLENTRIES:
    case WH_OP_REMOVEACL:
    case WH_OP_REMOVEDEFAULTACL: st_acl_get(op); break;
    default: ap_op_finish(op, APPLY_DIVERGENCE, "%s has no Gen2 translation", ap_op_name(o)); break;
    }
}
