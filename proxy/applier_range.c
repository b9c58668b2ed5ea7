/*
 * applier_range: copying one file from Gen1 to Gen2 in ranges (ap_copy_file, ap_copy_tail;
 * applier_int.h). Used by resyncs, the re-copies of CONCAT/MSCONCAT/CONCURRENTAPPEND, renames Gen2
 * cannot do and in-doubt APPENDs.
 *
 * A whole-file copy never leaves the path missing or half written on Gen2: the bytes go to a
 * temporary name next to the target (AP_TMP_PREFIX "<seq>-<hash of the name>", same directory), which gets
 * the file's metadata and is then renamed over the target (Gen2's rename replaces a file), so Gen2
 * readers see the old content or the new, never nothing. Only a directory in the target's place (the
 * path changed type on Gen1) is deleted first. A tail copy (ap_copy_tail) appends Gen1's bytes past
 * the length Gen2 holds to the file itself.
 *
 * The file is read in parts of applier.copy_part_bytes (OPEN offset/length), one at a time: each part
 * is staged in a spool.dir file, counted against spool.max_bytes while it is (spool_reserve; a copy
 * that finds no room waits and asks again, it never fails for it), re-read from its own start when
 * its OPEN fails (the usual retries: backoff, breaker, gen1.timeout_ms per part), then appended to
 * Gen2 (appends of at most XLATE_CHUNK_MAX, each retried alone) before the next part is read; one
 * flush commits the whole. After each part, and once more after the rename that puts a whole copy in
 * place, Gen1's length and modificationTime are read again: when they changed, the file changed under
 * the copy and its copy starts over (at most AP_RESYNC_REDOS times).
 */
#include "applier_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

#define ROOM_WAIT_MS 200       /* a part that found no room in the spool asks again after this */
#define ROOM_WAIT_MAX_MS 2000

struct ap_copy {
    uint64_t len;              /* Gen1's length when the copy (re)started */
    int64_t mtime;             /* ... and its modificationTime */
    uint64_t base;             /* tail copies: Gen2's length, where Gen1's bytes from base on go */
    uint64_t pos;              /* bytes of [base, len) already appended on Gen2 */
    uint64_t part;             /* the part being read / sent */
    uint32_t part_crc;         /* its CRC-32C, computed as httpc wrote it to the spool file, ... */
    bool part_crc_ok;          /* ... when one answer wrote the whole part (else it is read back for it) */
    uint64_t reserved;         /* spool bytes counted for it */
    bool tail;
    bool target_deleted;       /* a directory in the target's place was removed */
    int redos, room_waits;
    const char *gave_up;       /* the copy was given up: what kept changing (a static string) */
    char *tmp;                 /* whole-file copies: the temporary Gen2 path (op->g2path while writing) */
    char *target;              /* ... the real Gen2 path, given back to op->g2path before the rename */
    uint64_t parts;            /* parts copied (for the log) */
    uint32_t crc;              /* CRC-32C of [base, base + pos) as appended to Gen2 ... */
    bool crc_ok;               /* ... while this holds */
    int64_t t0_ms;
};

static void c_start(aop *op);
static void c_part(aop *op);

static void release_room(aop *op)
{
    ap_copy *c = op->cp;
    if (c && c->reserved) {
        if (op->a->sp) spool_release(op->a->sp, c->reserved);
        c->reserved = 0;
    }
}

static void restore_target(aop *op);

void ap_copy_free(aop *op)
{
    ap_copy *c = op->cp;
    if (!c) return;
    release_room(op);
    restore_target(op); /* (a copy that failed while writing the temporary name) */
    if (op->dg_g2 == c->tmp) { /* (its digest was for the temporary name) */
        op->dg_g2 = NULL;
        op->dg_known = false;
    }
    free(c->tmp);
    free(c);
    op->cp = NULL;
}

/* Give op->g2path back its real path (after the temporary name was written). */
static void restore_target(aop *op)
{
    ap_copy *c = op->cp;
    if (!c->target) return;
    free(op->g2path);
    op->g2path = c->target;
    c->target = NULL;
}

/* {"FileStatus":{...}}: type, length, modificationTime. 0, or -1 when it is none. */
static int read_status(const char *json, size_t n, bool *is_dir, uint64_t *len, int64_t *mtime)
{
    json_error_t je;
    json_t *root = json_loadb(json, n, 0, &je);
    json_t *fs = root ? json_object_get(root, "FileStatus") : NULL;
    json_t *t = fs ? json_object_get(fs, "type") : NULL;
    json_t *l = fs ? json_object_get(fs, "length") : NULL;
    json_t *m = fs ? json_object_get(fs, "modificationTime") : NULL;
    int rc = -1;
    if (json_is_string(t) && json_is_integer(l) && json_integer_value(l) >= 0) {
        *is_dir = strcmp(json_string_value(t), "DIRECTORY") == 0;
        *len = (uint64_t)json_integer_value(l);
        *mtime = json_is_integer(m) ? (int64_t)json_integer_value(m) : 0;
        rc = 0;
    }
    json_decref(root);
    return rc;
}

static int spool_tmp(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char path[1100];
    int n = snprintf(path, sizeof path, "%s/.dp-copy-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof path) return -1;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0) unlink(path);
    return fd;
}

/* ================================================================ the end: flush, metadata, rename */

static void c_done(aop *op)
{
    ap_copy *c = op->cp;
    LOGD("msg=\"file copied from gen1\" seq=%" PRIu64 " path=\"%s\" bytes=%" PRIu64 " parts=%" PRIu64
         " tail=%d ms=%" PRId64,
         op->req->seq, op->req->path, c->len - c->base, c->parts, (int)c->tail, ap_mono_ms() - c->t0_ms);
    ap_cache_put(op->a, op->req->path, false, c->len);
    ap_dg_remember(op);
    ap_copy_free(op);
    ap_step then = op->after_copy;
    then(op);
}

static void c_rename(aop *op);

static void c_target_deleted(aop *op)
{
    op->cp->target_deleted = true;
    c_rename(op);
}

static void h_del_target(aop *op, httpc_resp *r)
{
    ap_delete_round_answer(op, r, true, h_del_target, "removing the directory in the copy's place",
                           c_target_deleted);
}

static void c_changed(aop *op, const char *what);
static int read_status(const char *json, size_t n, bool *is_dir, uint64_t *len, int64_t *mtime);

/* The copy is in place. A write that reached Gen1 after the copy's last look at it (another proxy of a
 * fleet, or a writer that bypasses the proxy, whose append may even have been applied to Gen2's old
 * file just before the rename replaced it) would be missing from Gen2 for good: Gen1 is read once more
 * and, when its length or modificationTime moved, the copy is made again. A look that fails (after the
 * usual retries) leaves the copy as it is, as before this check. */
static void h_after_check(aop *op, httpc_resp *r)
{
    ap_copy *c = op->cp;
    bool dir = false;
    uint64_t len = 0;
    int64_t mt = 0;
    if (r->result == HTTPC_OK && r->status == 200 && read_status(r->body.data, r->body.len, &dir, &len, &mt) == 0 &&
        !dir && (len != c->len || mt != c->mtime)) {
        c_changed(op, "length or modification time, once the copy was in place");
        return;
    }
    if (r->result != HTTPC_OK || (r->status != 200 && r->status != 404))
        LOGW("msg=\"file copied; gen1 could not be read again to confirm it did not change meanwhile\" seq=%" PRIu64
             " path=\"%s\" status=%ld",
             op->req->seq, op->req->path, r->status);
    c_done(op);
}

static void h_rename(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && (r->status == 201 || (r->status == 404 && op->attempt > 1))) {
        /* (404 on a re-send: the first send moved the temporary name already) */
        ap_g1_get(op, op->req->path, "GETFILESTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_after_check);
        return;
    }
    char code[128];
    ap_g2code(r, code, sizeof code);
    /* A directory where Gen1 now has a file: it goes (the only case the path is missing a moment). */
    if (r->result == HTTPC_OK && r->status == 409 && !op->cp->target_deleted &&
        strcasecmp(code, "RenameDestinationParentPathNotFound") != 0 && strcasecmp(code, "SourcePathNotFound") != 0) {
        free(op->cont);
        op->cont = NULL;
        ap_delete_round(op, true, h_del_target);
        return;
    }
    ap_op_fail_resp(op, r, "renaming the copy over its target");
}

static void c_rename(aop *op)
{
    ap_copy *c = op->cp;
    restore_target(op);
    dbuf src;
    dbuf_init(&src, 64 * 1024);
    xlate_err e;
    int rc = gen2c_rename_source(op->a->g2, op->fs, c->tmp, &src);
    if (rc == 0) rc = xlate_rename(src.data, true, NULL, &op->rq, &e);
    dbuf_free(&src);
    if (rc != 0) {
        ap_op_finish(op, APPLY_FAILED, "cannot build the rename of the copy");
        return;
    }
    ap_cache_drop_tree(op->a, op->req->path);
    ap_g2_simple(op, op->g2path, h_rename);
}

static void c_meta(aop *op)
{
    ap_copy *c = op->cp;
    /* the digest of the whole copy goes with the metadata (c->base is 0 here) */
    op->dg_known = c->crc_ok && c->base == 0;
    op->dg_crc = c->crc;
    op->dg_len = c->len;
    op->dg_g2 = c->tmp;
    /* metadata goes on the temporary name, before the rename makes it visible */
    if (ap_meta_add_status(op, op->req->path, op->cp->tmp, op->g1status) != 0) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    ap_meta_run(op, c_rename);
}

/* A tail copy ends with Gen1's metadata on the file itself: the resync it belongs to covers the later
 * records of the path (a SETPERMISSION among them), so it must leave the path's metadata as Gen1 has
 * it, as a whole copy does (kill -9 cycles under load showed a permission left behind without it). */
static void c_tail_meta(aop *op)
{
    ap_copy *c = op->cp;
    uint32_t base = 0; /* the file's digest up to the tail, when remembered, extended by the tail's */
    op->dg_known = c->crc_ok && ap_dg_base(op->a, op->req->path, c->base, &base);
    op->dg_crc = crc32c_combine(base, c->crc, c->len - c->base);
    op->dg_len = c->len;
    op->dg_g2 = op->g2path;
    if (ap_meta_add_status(op, op->req->path, op->g2path, op->g1status) != 0) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    ap_meta_run(op, c_done);
}

static void c_flushed(aop *op)
{
    if (op->cp->tail) c_tail_meta(op);
    else c_meta(op);
}

/* Every part is on Gen2: commit them with one flush (a tail copy closes the file as Gen1 has it). */
static void c_finish(aop *op)
{
    ap_copy *c = op->cp;
    if (c->len == c->base && !c->tail) { /* an empty file: the create made it */
        c_meta(op);
        return;
    }
    if (c->len == c->base) { /* a tail copy with nothing to add but the metadata */
        c_tail_meta(op);
        return;
    }
    ap_data_run(op, -1, 0, 0, c->len, XLATE_FLUSH_CLOSE, c_flushed);
}

/* ================================================================ parts */

/* The temporary name of a copy given up is removed (best effort: one left behind is swept with its
 * directory): a later copy of the path may be covered by another one and never reuse it. */
static void h_tmp_dropped(aop *op, httpc_resp *r)
{
    (void)r;
    ap_op_finish(op, APPLY_FAILED, "%s changed on Gen1 during its copy %d times (%s)", op->req->path,
                 AP_RESYNC_REDOS, op->cp && op->cp->gave_up ? op->cp->gave_up : "?");
}

static void c_changed(aop *op, const char *what)
{
    ap_copy *c = op->cp;
    release_room(op);
    if (++c->redos > AP_RESYNC_REDOS) {
        xlate_err e;
        c->gave_up = what;
        if (!c->tmp || xlate_delete(false, NULL, &op->rq, &e) != 0) {
            h_tmp_dropped(op, NULL);
            return;
        }
        restore_target(op);
        ap_g2_simple(op, c->tmp, h_tmp_dropped);
        return;
    }
    LOGI("msg=\"file changed on gen1 during its copy: copied again\" seq=%" PRIu64 " path=\"%s\" what=\"%s\" redo=%d",
         op->req->seq, op->req->path, what, c->redos);
    free(op->g1status);
    op->g1status = NULL;
    for (int i = 0; i < op->nmeta; i++) { /* the probe and the metadata step run again */
        free(op->meta[i].g1);
        free(op->meta[i].g2);
        free(op->meta[i].status);
    }
    op->nmeta = 0;
    restore_target(op);
    c_start(op);
}

static void c_part_sent(aop *op)
{
    ap_copy *c = op->cp;
    release_room(op);
    if (op->dcrc_ok) c->crc = crc32c_combine(c->crc, op->dcrc, c->part);
    else c->crc_ok = false;
    c->pos += c->part;
    c->parts++;
    c_part(op);
}

static void h_part_check(aop *op, httpc_resp *r)
{
    ap_copy *c = op->cp;
    bool dir = false;
    uint64_t len = 0;
    int64_t mt = 0;
    if (r->result == HTTPC_OK && r->status == 404) {
        c_changed(op, "gone");
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        release_room(op);
        ap_op_fail_resp(op, r, "reading the file's status on Gen1 during its copy");
        return;
    }
    if (read_status(r->body.data, r->body.len, &dir, &len, &mt) != 0 || dir || len != c->len || mt != c->mtime) {
        c_changed(op, "length or modification time");
        return;
    }
    /* the part is what Gen1 holds: append it at its place (base + pos) */
    if (c->part_crc_ok)
        ap_data_run_crc(op, op->tmpfd, 0, c->part, c->part_crc, c->base + c->pos, XLATE_FLUSH_NONE, c_part_sent);
    else
        ap_data_run(op, op->tmpfd, 0, c->part, c->base + c->pos, XLATE_FLUSH_NONE, c_part_sent);
}

static void h_part_open(aop *op, httpc_resp *r)
{
    ap_copy *c = op->cp;
    if (r->result == HTTPC_OK && (r->status == 404 || r->status == 400)) {
        c_changed(op, r->status == 404 ? "gone" : "shorter"); /* 400: the offset is past its end now */
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        release_room(op);
        ap_op_fail_resp(op, r, "reading a part from Gen1 (OPEN)");
        return;
    }
    struct stat st;
    if (fstat(op->tmpfd, &st) != 0) {
        release_room(op);
        ap_op_finish(op, APPLY_FAILED, "cannot stat the spool file: %s", strerror(errno));
        return;
    }
    if ((uint64_t)st.st_size != c->part) {
        c_changed(op, "shorter");
        return;
    }
    /* The spool file was emptied before this answer's request went out (ap_send_now), so when the answer
     * alone wrote as many bytes as it holds, the CRC httpc computed as it wrote them is the part's. An
     * answer relayed another way (a namenode's final answer, kept in memory first) has no body_crc_ok. */
    c->part_crc_ok = r->body_crc_ok && r->body_bytes == c->part;
    c->part_crc = r->body_crc;
    ap_g1_get(op, op->req->path, "GETFILESTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_part_check);
}

static void c_part(aop *op)
{
    ap_copy *c = op->cp;
    applier *a = op->a;
    uint64_t left = c->len - c->base - c->pos;
    if (left == 0) {
        c_finish(op);
        return;
    }
    uint64_t part = a->part_bytes;
    spool_stats ss = {0};
    if (a->sp) spool_get_stats(a->sp, &ss);
    if (ss.max_bytes && part > ss.max_bytes / 2) part = ss.max_bytes / 2; /* room for writers' bodies too */
    if (part < 1) part = 1;
    c->part = left < part ? left : part;
    if (a->sp && spool_reserve(a->sp, c->part) != 0) {
        int k = c->room_waits < 4 ? c->room_waits : 4;
        if (c->room_waits++ == 0)
            LOGI("msg=\"re-copy waits for room in the spool\" seq=%" PRIu64 " path=\"%s\" part=%" PRIu64, op->req->seq,
                 op->req->path, c->part);
        int64_t d = (int64_t)ROOM_WAIT_MS << k;
        ap_park(op, d > ROOM_WAIT_MAX_MS ? ROOM_WAIT_MAX_MS : d, c_part);
        return;
    }
    c->room_waits = 0;
    c->reserved = a->sp ? c->part : 0;
    char extra[64];
    snprintf(extra, sizeof extra, "offset=%" PRIu64 "&length=%" PRIu64, c->base + c->pos, c->part);
    ap_g1_get(op, op->req->path, "OPEN", extra, HTTPC_BODY_FD, op->tmpfd, h_part_open);
}

/* ================================================================ the start */

static void h_create_tmp(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 201) {
        ap_op_fail_resp(op, r, "create (copy's temporary name)");
        return;
    }
    ap_mark_ancestors(op);
    c_part(op);
}

static void c_create_tmp(aop *op)
{
    ap_copy *c = op->cp;
    /* write under the temporary name: op->g2path is it until the rename */
    char *t = strdup(c->tmp);
    if (!t) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    c->target = op->g2path;
    op->g2path = t;
    xlate_err e;
    if (xlate_create(true, NULL, &op->rq, &e) != 0) {
        ap_op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(op, op->g2path, h_create_tmp);
}

/* Gen1's length and modification time are known: (re)start the copy. */
static void c_begin(aop *op)
{
    ap_copy *c = op->cp;
    c->pos = 0;
    c->crc = 0;
    c->crc_ok = true;
    if (c->tail && c->len >= c->base) {
        c_part(op);
        return;
    }
    if (c->tail) { /* Gen2 holds more than Gen1: no prefix of it, so the whole file is copied */
        LOGI("msg=\"gen2 holds more than gen1: whole file copied\" seq=%" PRIu64 " path=\"%s\" gen2=%" PRIu64
             " gen1=%" PRIu64,
             op->req->seq, op->req->path, c->base, c->len);
        c->tail = false;
        c->base = 0;
    }
    ap_probe_ancestors(op, c_create_tmp);
}

static void h_start_status(aop *op, httpc_resp *r)
{
    ap_copy *c = op->cp;
    if (r->result == HTTPC_OK && r->status == 404) {
        /* Gone on Gen1 already (a later write removes or moves it): nothing to copy. */
        free(op->g1status);
        op->g1status = NULL;
        ap_copy_free(op);
        ap_step then = op->after_copy;
        then(op);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(op, r, "reading the file's status on Gen1 (GETFILESTATUS)");
        return;
    }
    bool dir = false;
    if (read_status(r->body.data, r->body.len, &dir, &c->len, &c->mtime) != 0) {
        ap_op_finish(op, APPLY_FAILED, "Gen1 answered GETFILESTATUS of %s with no file status", op->req->path);
        return;
    }
    if (dir) {
        ap_op_finish(op, APPLY_FAILED, "%s is a directory on Gen1 now, not a file", op->req->path);
        return;
    }
    free(op->g1status);
    op->g1status = strndup(r->body.data, r->body.len);
    if (!op->g1status) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    c_begin(op);
}

static void c_start(aop *op)
{
    bool dir = false;
    ap_copy *c = op->cp;
    /* a status read just before (a listing's entry) saves one look-up on the first try */
    if (op->g1status && c->redos == 0 &&
        read_status(op->g1status, strlen(op->g1status), &dir, &c->len, &c->mtime) == 0 && !dir) {
        c_begin(op);
        return;
    }
    ap_g1_get(op, op->req->path, "GETFILESTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_start_status);
}

static int copy_new(aop *op, ap_step then, bool tail, uint64_t base)
{
    applier *a = op->a;
    ap_copy_free(op);
    op->after_copy = then;
    op->on_stale = NULL; /* (an APPEND's: its appends are not the copy's) */
    if (op->tmpfd < 0) op->tmpfd = spool_tmp(a->cfg->spool_dir);
    if (op->tmpfd < 0) {
        ap_op_finish(op, APPLY_FAILED, "cannot create a spool file: %s", strerror(errno));
        return -1;
    }
    ap_copy *c = calloc(1, sizeof *c);
    if (!c) {
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return -1;
    }
    op->cp = c;
    c->tail = tail;
    c->base = base;
    c->t0_ms = ap_mono_ms();
    {
        /* the temporary name (a tail copy needs it when it turns into a whole copy): next to the target, so the rename stays in its directory */
        const char *g2 = op->g2path, *slash = strrchr(g2, '/');
        size_t dlen = slash ? (size_t)(slash - g2) + 1 : 0;
        uint64_t h = 1469598103934665603ull; /* FNV-1a of the target's name */
        for (const char *k = g2 + dlen; *k; k++) h = (h ^ (unsigned char)*k) * 1099511628211ull;
        size_t cap = dlen + 96;
        c->tmp = malloc(cap);
        if (!c->tmp) {
            ap_op_finish(op, APPLY_FAILED, "out of memory");
            return -1;
        }
        /* the same name for every attempt of this record's copy of this file (also after a restart):
         * a retry overwrites what a failed attempt left, and the rename consumes it */
        snprintf(c->tmp, cap, "%.*s" AP_TMP_PREFIX "%" PRIu64 "-%016" PRIx64, (int)dlen, g2, op->req->seq, h);
    }
    return 0;
}

void ap_copy_file(aop *op, ap_step then)
{
    if (copy_new(op, then, false, 0) != 0) return;
    c_start(op);
}

void ap_copy_tail(aop *op, uint64_t gen2_len, ap_step then)
{
    if (copy_new(op, then, true, gen2_len) != 0) return;
    free(op->g1status); /* the tail needs Gen1's length now, not a listing's */
    op->g1status = NULL;
    c_start(op);
}

int ap_tmp_own_prefix(uint64_t seq, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, AP_TMP_PREFIX "%" PRIu64 "-", seq);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}
