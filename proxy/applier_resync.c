/*
 * applier_resync: copying a whole subtree from Gen1 to Gen2 (ap_resync_run, applier_int.h), for a
 * RENAME Gen2 cannot do as a rename, and resyncs (ap_op_resync): journal records that can never apply
 * as they are, or that the pipeline marked for one (primary outcome unknown, body lost, degrade).
 *
 * The owning operation keeps its ordering entry for the whole copy and sends nothing itself; the
 * work is done by pieces: small operations (aop with ->job set) that run the usual steps (sending
 * with retries, metadata copy, file re-copy) for one node each and are never counted or listed by the
 * applier. The nodes still to copy sit on a stack, so the walk is depth first: a directory piece
 * creates the directory, copies its metadata and lists one page of its entries (adls: LISTSTATUS with
 * listSize, then listAfter = the page's continuationToken; hadoop: LISTSTATUS_BATCH, then startAfter
 * = the page's last name while remainingEntries > 0), pushing the entries above a node that
 * lists the next page; at most about one page per level of the tree waits in memory. At most
 * AP_RESYNC_CONC pieces run at once.
 *
 * The root piece first reads the root on Gen1 (GETFILESTATUS). Nothing Gen1 has is deleted on Gen2
 * first, so Gen2 readers never see a path vanish while it is copied back: a file is written under a
 * temporary name next to it and renamed over it (applier_range.c); a directory is created or, when it
 * exists, updated in place, and once Gen1's listing of it is complete (its names collected over the
 * pages) a sweep lists what Gen2 holds there and removes what Gen1 no longer has (with leftover
 * temporary names of copies that died); only a node whose type changed is removed before its copy.
 * A root gone from Gen1 is deleted on Gen2. An in-doubt APPEND's file (rs_tail) is settled by
 * lengths: when Gen2 holds a prefix of Gen1's file only the missing tail is copied.
 * The copy's lock guards the stack and the counts. Pieces end on whatever thread ran their last step;
 * the thread that leaves nothing running and nothing queued finishes the copy (one thread at a time
 * starts pieces: the "pumping" flag).
 *
 * A RESYNC record with the parameter APPLY_RESYNC_NODE_ONLY (pipe_resync_node, `dualpipe backfill`)
 * copies a directory root without its entries: created or updated with its metadata, no listing, no
 * sweep.
 *
 * A resync copies each root the operation touches in turn, gated by the journal (apply_gate_fn):
 * before reading Gen1 it asks for the root's epoch (the highest seq that touched it) and waits while
 * a record there still waits for the primary; after the copy it asks again, and copies again when
 * the answer changed (a write came in while the copy read Gen1). The epoch then becomes a cover
 * (applier_state.c): later operations up to it, under the root, are already on Gen2. A copy that
 * fails (a node Gen2 refused for good; transient failures are retried by the pieces themselves) is
 * retried after a backoff, up to applier.resync_attempts copies, then the operation is parked.
 */
#include "applier_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "log.h"
#include "reserved.h"
#include "urlcodec.h"

typedef enum rs_kind {
    RS_ROOT,        /* the subtree's root: type not known yet */
    RS_FILE,
    RS_DIR,
    RS_MORE,        /* the next page of a directory's listing */
    RS_SWEEP,       /* a page of what Gen2 holds in a directory that existed there: remove what Gen1 lacks */
    RS_REMOVE       /* one such node (recursively) */
} rs_kind;

/* The names Gen1 has in one directory (collected over its listing pages for the sweep). */
typedef struct rs_names {
    char **b;                       /* open addressing, power-of-two buckets */
    size_t cap, n;
} rs_names;

struct ap_rsnode {
    ap_rsnode *next;                /* stack link */
    rs_kind kind;
    char *g1;                       /* Gen1 path */
    char *status;                   /* {"FileStatus":..} from the listing (RS_FILE, RS_DIR) */
    char *after;                    /* RS_MORE: list after this token; RS_SWEEP: Gen2's continuation */
    char *g2;                       /* RS_REMOVE: the Gen2 path listed (the mapping must still give it) */
    rs_names *names;                /* RS_DIR that existed on Gen2, RS_MORE, RS_SWEEP: Gen1's names so far */
    bool removed;                   /* RS_REMOVE: it went */
};

struct ap_resync {
    pthread_mutex_t mu;
    aop *owner;
    char *root;
    ap_step then;
    ap_rsnode *stack;               /* nodes to copy, next on top */
    int active;                     /* pieces running */
    bool pumping;                   /* a thread is starting pieces */
    bool over;                      /* finished (nothing may touch the copy after that) */
    bool stopped;                   /* the applier stopped: queued nodes were dropped */
    uint64_t files, dirs, removed, unmapped, invalid, failed, diverged;
    char first_fail[1040];
    char first_div[1040];
};

/* How a piece ended, captured before it is freed. */
typedef struct rs_end {
    char copied;                    /* 'f' file, 'd' directory copied; 'x' a node Gen1 lacks removed */
    apply_outcome outcome;
    char path[512];
    char detail[512];
} rs_end;

static void pump(ap_resync *j, const rs_end *end);

/* ================================================================ name sets */

static void names_free(rs_names *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->cap; i++) free(s->b[i]);
    free(s->b);
    free(s);
}

static size_t names_hash(const char *k)
{
    size_t h = 1469598103934665603ull;
    for (; *k; k++) h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

static bool names_has(const rs_names *s, const char *k)
{
    if (!s->cap) return false;
    for (size_t i = names_hash(k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->b[i]) return false;
        if (strcmp(s->b[i], k) == 0) return true;
    }
}

/* Add k (copied). 0 or -1 (out of memory). */
static int names_add(rs_names *s, const char *k)
{
    if (names_has(s, k)) return 0;
    if ((s->n + 1) * 2 > s->cap) { /* keep it at most half full */
        size_t cap = s->cap ? s->cap * 2 : 256;
        char **b = calloc(cap, sizeof *b);
        if (!b) return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->b[i]) continue;
            size_t j = names_hash(s->b[i]) & (cap - 1);
            while (b[j]) j = (j + 1) & (cap - 1);
            b[j] = s->b[i];
        }
        free(s->b);
        s->b = b;
        s->cap = cap;
    }
    char *d = strdup(k);
    if (!d) return -1;
    size_t i = names_hash(k) & (s->cap - 1);
    while (s->b[i]) i = (i + 1) & (s->cap - 1);
    s->b[i] = d;
    s->n++;
    return 0;
}

/* ================================================================ nodes and pieces */

void ap_rsnode_free(ap_rsnode *n)
{
    if (!n) return;
    free(n->g1);
    free(n->status);
    free(n->after);
    free(n->g2);
    names_free(n->names);
    free(n);
}

static ap_rsnode *node_new(rs_kind kind, const char *g1, const char *status, const char *after)
{
    ap_rsnode *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->g1 = strdup(g1);
    n->status = status ? strdup(status) : NULL;
    n->after = after ? strdup(after) : NULL;
    if (!n->g1 || (status && !n->status) || (after && !n->after)) {
        ap_rsnode_free(n);
        return NULL;
    }
    return n;
}

/* The owner's request, for path: same seq, op and writer identity (Gen1 look-ups use it). */
static apply_req *req_for(const apply_req *q, const char *path)
{
    apply_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->seq = q->seq;
    r->op = q->op;
    r->gen1_status = q->gen1_status;
    memcpy(r->request_id, q->request_id, sizeof r->request_id);
    r->path = strdup(path);
    bool ok = r->path != NULL;
    if (ok && q->authorization) ok = (r->authorization = strdup(q->authorization)) != NULL;
    if (ok && q->nparams > 0) ok = (r->params = calloc((size_t)q->nparams, sizeof *r->params)) != NULL;
    for (int i = 0; ok && i < q->nparams; i++) {
        whreq_param *p = &r->params[r->nparams++];
        p->name = q->params[i].name ? strdup(q->params[i].name) : NULL;
        p->value = q->params[i].value ? strdup(q->params[i].value) : NULL;
        ok = (p->name || !q->params[i].name) && (p->value || !q->params[i].value);
    }
    if (!ok) {
        apply_req_free(r);
        return NULL;
    }
    return r;
}

/*
 * A piece for node n (under j->mu), or NULL when the node is not copied: unmapped or a name Gen2
 * would reject (counted; its subtree is skipped with it), or out of memory (counted as failed).
 * The piece owns n from here on.
 */
static aop *piece_new(ap_resync *j, ap_rsnode *n)
{
    aop *owner = j->owner;
    applier *a = owner->a;
    char why[128];
    aop *p = calloc(1, sizeof *p);
    if (p) {
        p->a = a;
        p->tmpfd = -1;
        p->outcome = APPLY_OK;
        p->job = j;
        p->rsn = n;
        p->req = req_for(owner->req, n->g1);
        p->g2path = malloc(AP_PATH_CAP);
    }
    if (!p || !p->req || !p->g2path) {
        j->failed++;
        if (!j->first_fail[0]) snprintf(j->first_fail, sizeof j->first_fail, "%s: out of memory", n->g1);
        if (p) ap_op_free(p);
        else ap_rsnode_free(n);
        return NULL;
    }
    gen2c_map_result mr = gen2c_map(a->g2, n->g1, p->fs, p->g2path, AP_PATH_CAP, why, sizeof why);
    if (mr == GEN2C_MAPPED && dp_reserved_g2(p->g2path)) {
        /* dualpipe's own directory on Gen2 (the fleet's phase record): never copied onto, never removed */
        j->invalid++;
        LOGW("msg=\"not copied: the Gen2 path " DP_RESERVED_WHY "\" seq=%" PRIu64 " rid=%s path=\"%s\"",
             owner->req->seq, AP_RID(owner->req), n->g1);
        ap_op_free(p);
        return NULL;
    }
    if (mr == GEN2C_MAPPED) return p;
    if (mr == GEN2C_UNMAPPED) {
        j->unmapped++;
        LOGD("msg=\"not copied: no mapping covers it\" seq=%" PRIu64 " rid=%s path=\"%s\"", owner->req->seq,
             AP_RID(owner->req), n->g1);
    } else {
        j->invalid++;
        LOGW("msg=\"not copied: Gen2 would reject the name\" seq=%" PRIu64 " rid=%s path=\"%s\" why=\"%s\"",
             owner->req->seq, AP_RID(owner->req), n->g1, why);
    }
    ap_op_free(p);
    return NULL;
}

/* ================================================================ directories */

static void st_list(aop *p);

/* Push a listing page (entries in order on top, then the next page's node) onto the stack. */
static int push_page(aop *p, const xlate_listing *l)
{
    const char *dir = p->req->path;
    ap_rsnode *head = NULL, **tailp = &head;
    int rc = 0;
    rs_names *names = p->rsn->names;
    for (int i = 0; names && i < l->n && rc == 0; i++) rc = names_add(names, l->v[i].name);
    for (int i = 0; i < l->n && rc == 0; i++) {
        size_t n = strlen(dir) + strlen(l->v[i].name) + 2;
        char *path = malloc(n);
        if (path) snprintf(path, n, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, l->v[i].name);
        ap_rsnode *nd = path ? node_new(l->v[i].is_dir ? RS_DIR : RS_FILE, path, l->v[i].status, NULL) : NULL;
        free(path);
        if (!nd) rc = -1;
        else {
            *tailp = nd;
            tailp = &nd->next;
        }
    }
    const char *after = p->rsn->after;
    if (rc == 0 && l->token && after && strcmp(l->token, after) == 0) {
        LOGW("msg=\"Gen1 listing did not advance: the rest of the directory is not copied\" path=\"%s\"", dir);
        rc = -2;
    } else if (rc == 0 && (l->token || names)) {
        /* the next page, or (Gen1's names complete) the sweep of what Gen2 has beyond them; the
         * names go along */
        ap_rsnode *more = l->token ? node_new(RS_MORE, dir, NULL, l->token) : node_new(RS_SWEEP, dir, NULL, NULL);
        if (!more) rc = -1;
        else {
            more->names = names;
            p->rsn->names = NULL;
            *tailp = more;
        }
    }
    if (rc == -1) {
        while (head) {
            ap_rsnode *nx = head->next;
            ap_rsnode_free(head);
            head = nx;
        }
        return -1;
    }
    if (head) {
        ap_resync *j = p->job;
        pthread_mutex_lock(&j->mu);
        ap_rsnode *last = head;
        while (last->next) last = last->next;
        last->next = j->stack;
        j->stack = head;
        pthread_mutex_unlock(&j->mu);
    }
    return rc;
}

static void h_list(aop *p, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 404) { /* gone from Gen1 since (a later write) */
        ap_st_ok(p);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(p, r, "listing the directory on Gen1 (LISTSTATUS / LISTSTATUS_BATCH)");
        return;
    }
    xlate_listing l;
    xlate_err e;
    if (xlate_liststatus_parse(r->body.data, r->body.len, &l, &e) != 0) {
        ap_op_finish(p, APPLY_FAILED, "%s", e.message);
        return;
    }
    int rc = push_page(p, &l);
    xlate_listing_free(&l);
    if (rc == -1) ap_op_finish(p, APPLY_FAILED, "out of memory listing the directory");
    else if (rc == -2) ap_op_finish(p, APPLY_FAILED, "Gen1's listing did not advance past a continuation token");
    else ap_st_ok(p);
}

static void st_list(aop *p)
{
    dbuf extra;
    dbuf_init(&extra, 8192);
    bool hadoop = p->a->cfg->gen1_dialect == CFG_DIALECT_HADOOP; /* a NameNode ignores listSize */
    if ((hadoop ? xlate_liststatus_batch_query(p->rsn->after, &extra)
                : xlate_liststatus_query(AP_LIST_PAGE, p->rsn->after, &extra)) != 0) {
        dbuf_free(&extra);
        ap_op_finish(p, APPLY_FAILED, "listing continuation token too long");
        return;
    }
    ap_g1_list(p, p->req->path, extra.data, h_list);
    dbuf_free(&extra);
}

/* A node-only resync (pipe_resync_node): a directory root is copied without its entries. */
static bool req_node_only(const apply_req *r)
{
    for (int i = 0; i < r->nparams; i++)
        if (r->params[i].name && strcmp(r->params[i].name, APPLY_RESYNC_NODE_ONLY) == 0) return true;
    return false;
}

/* This piece copies the root of a node-only resync. */
static bool node_only_root(const aop *p)
{
    return req_node_only(ap_resync_owner(p->job)->req) && strcmp(p->req->path, p->job->root) == 0;
}

static void st_dir_meta(aop *p)
{
    p->rs_copied = 'd';
    if (ap_meta_add_status(p, p->req->path, p->g2path, p->g1status) != 0) {
        ap_op_finish(p, APPLY_FAILED, "out of memory");
        return;
    }
    ap_meta_run(p, node_only_root(p) ? ap_st_ok : st_list);
}

static void st_mkdir(aop *p);

/* The directory existed on Gen2: its listing collects Gen1's names, so the sweep after it can remove
 * what Gen1 no longer has (never before: readers keep seeing what both have throughout). */
static void dir_existed(aop *p)
{
    if (!p->rsn->names) p->rsn->names = calloc(1, sizeof *p->rsn->names);
    if (!p->rsn->names) ap_op_finish(p, APPLY_FAILED, "out of memory");
}

static void h_file_removed(aop *p, httpc_resp *r)
{
    ap_delete_round_answer(p, r, false, h_file_removed, "removing the file in a directory's place", st_mkdir);
}

static void h_mkdir(aop *p, httpc_resp *r)
{
    const char *t = r->result == HTTPC_OK ? httpc_resp_header(r, "x-ms-existing-resource-type") : NULL;
    char code[128];
    bool ok = r->result == HTTPC_OK && xlate_mkdirs_ok(r->status, t);
    if (!ok && r->result == HTTPC_OK && xlate_already_exists(r->status, ap_g2code(r, code, sizeof code)))
        ok = p->attempt > 1 && (t == NULL || strcasecmp(t, "directory") == 0);
    if (!ok && r->result == HTTPC_OK && r->status == 409 && t && strcasecmp(t, "file") == 0 && !p->rsn->removed) {
        /* Gen1 has a directory where Gen2 has a file: the file goes first (the path changed type) */
        p->rsn->removed = true;
        free(p->cont);
        p->cont = NULL;
        ap_delete_round(p, false, h_file_removed);
        return;
    }
    if (!ok) {
        ap_op_fail_resp(p, r, "create directory (copy)");
        return;
    }
    if (r->status == 409) { /* it was there: updated in place */
        dir_existed(p);
        if (!p->rsn->names) return;
    }
    ap_mark_ancestors(p);
    ap_cache_put(p->a, p->req->path, true, 0);
    st_dir_meta(p);
}

static void st_mkdir(aop *p)
{
    xlate_err e;
    if (!*p->g2path) { /* a filesystem's root always exists */
        dir_existed(p);
        if (p->rsn->names) st_dir_meta(p);
        return;
    }
    if (xlate_mkdirs(NULL, &p->rq, &e) != 0) {
        ap_op_finish(p, APPLY_FAILED, "%s", e.message);
        return;
    }
    ap_g2_simple(p, p->g2path, h_mkdir);
}

/* ================================================================ the sweep: what Gen1 no longer has */

#define SWEEP_PAGE 50 /* Gen2 entries per listing page (the answer stays well under the 64 KiB read) */

static void h_removed(aop *p, httpc_resp *r);

static void st_removed(aop *p)
{
    p->rsn->removed = true;
    p->rs_copied = 'x';
    ap_st_ok(p);
}

static void h_removed(aop *p, httpc_resp *r)
{
    ap_delete_round_answer(p, r, true, h_removed, "removing what Gen1 no longer has", st_removed);
}

/* RS_REMOVE: delete the node, if Gen1's path still maps to the Gen2 path the listing gave. */
static void st_remove(aop *p)
{
    if (strcmp(p->g2path, p->rsn->g2) != 0) { /* another mapping owns that name: not this copy's */
        ap_st_ok(p);
        return;
    }
    free(p->cont);
    p->cont = NULL;
    ap_delete_round(p, true, h_removed);
}

/* One page of Gen2's entries: those whose names Gen1 lacks (and no copy of this resync is writing)
 * become RS_REMOVE nodes, then the next page. 0, -1 (out of memory) or -2 (not a listing). */
static int sweep_page(aop *p, const httpc_resp *r)
{
    json_error_t je;
    json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    json_t *paths = root ? json_object_get(root, "paths") : NULL;
    if (!json_is_array(paths)) {
        json_decref(root);
        return -2;
    }
    char own[96];
    if (ap_tmp_own_prefix(ap_resync_owner(p->job)->req->seq, own, sizeof own) != 0) own[0] = 0;
    const char *dir = p->req->path;
    ap_rsnode *head = NULL, **tailp = &head;
    int rc = 0;
    size_t i;
    json_t *e;
    json_array_foreach(paths, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *base = name ? strrchr(name, '/') : NULL;
        base = base ? base + 1 : name;
        if (!base || !*base || names_has(p->rsn->names, base)) continue;
        if (dp_reserved_g2(name)) continue; /* dualpipe's own directory at the filesystem's root: not Gen1's */
        if (own[0] && strncmp(base, own, strlen(own)) == 0) continue; /* a copy of this resync in flight */
        size_t n = strlen(dir) + strlen(base) + 2;
        char *g1 = malloc(n);
        if (g1) snprintf(g1, n, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, base);
        ap_rsnode *nd = g1 ? node_new(RS_REMOVE, g1, NULL, NULL) : NULL;
        free(g1);
        if (nd && !(nd->g2 = strdup(name))) {
            ap_rsnode_free(nd);
            nd = NULL;
        }
        if (!nd) {
            rc = -1;
            break;
        }
        *tailp = nd;
        tailp = &nd->next;
    }
    json_decref(root);
    const char *c = httpc_resp_header(r, "x-ms-continuation");
    if (rc == 0 && c && *c) {
        ap_rsnode *more = node_new(RS_SWEEP, dir, NULL, c);
        if (!more) rc = -1;
        else {
            more->names = p->rsn->names;
            p->rsn->names = NULL;
            *tailp = more;
        }
    }
    if (rc != 0) {
        while (head) {
            ap_rsnode *nx = head->next;
            ap_rsnode_free(head);
            head = nx;
        }
        return rc;
    }
    if (head) {
        ap_resync *j = p->job;
        pthread_mutex_lock(&j->mu);
        ap_rsnode *last = head;
        while (last->next) last = last->next;
        last->next = j->stack;
        j->stack = head;
        pthread_mutex_unlock(&j->mu);
    }
    return 0;
}

static void h_sweep_list(aop *p, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 404) { /* gone meanwhile: nothing to sweep */
        ap_st_ok(p);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(p, r, "listing the directory on Gen2 (sweep)");
        return;
    }
    int rc = sweep_page(p, r);
    if (rc == -1) ap_op_finish(p, APPLY_FAILED, "out of memory sweeping the directory");
    else if (rc == -2) ap_op_finish(p, APPLY_FAILED, "Gen2 answered the directory's listing with no paths");
    else ap_st_ok(p);
}

/* RS_SWEEP: list one page of what Gen2 holds in the directory (not recursive). */
static void st_sweep(aop *p)
{
    dbuf q;
    dbuf_init(&q, 16 * 1024);
    int rc = dbuf_adds(&q, "resource=filesystem&directory=");
    if (rc == 0) rc = url_encode(p->g2path, true, &q);
    if (rc == 0) rc = dbuf_printf(&q, "&recursive=false&maxResults=%d", SWEEP_PAGE);
    if (rc == 0 && p->rsn->after) rc = dbuf_adds(&q, "&continuation=");
    if (rc == 0 && p->rsn->after) rc = url_encode(p->rsn->after, false, &q);
    char *query = rc == 0 ? dbuf_take(&q) : NULL;
    dbuf_free(&q);
    if (!query) {
        ap_op_finish(p, APPLY_FAILED, "out of memory building a Gen2 listing");
        return;
    }
    xlate_g2req_free(&p->rq);
    p->rq.method = "GET";
    p->rq.query = query;
    ap_g2_simple_in(p, p->fs, "", h_sweep_list);
}

/* ================================================================ files, the root */

static void st_file_copied(aop *p)
{
    if (p->nmeta > 0 || p->g1status) p->rs_copied = 'f'; /* (nothing when the file was gone from Gen1) */
    ap_st_ok(p);
}

static void h_tail_len(aop *p, httpc_resp *r)
{
    uint64_t len = 0;
    bool dir = false;
    if (r->result == HTTPC_OK && r->status == 200 && ap_g2_file_len(r, &len, &dir) && !dir) {
        ap_copy_tail(p, len, st_file_copied); /* (a whole copy when Gen2 holds more than Gen1) */
        return;
    }
    if (r->result != HTTPC_OK || (r->status != 200 && r->status != 404)) {
        ap_op_fail_resp(p, r, "reading the file's length on Gen2");
        return;
    }
    ap_copy_file(p, st_file_copied); /* nothing there, or a directory: a whole copy */
}

static void root_copy(aop *p)
{
    p->fix_ancestors = true; /* the parents Gen2 has may be half made (a crash mid-create) */
    aop *owner = ap_resync_owner(p->job);
    if (p->rsn->kind == RS_DIR) {
        ap_probe_ancestors(p, st_mkdir);
    } else if (owner->rs_tail && owner->req->op == WH_OP_APPEND && strcmp(owner->req->path, p->req->path) == 0) {
        /* an in-doubt APPEND: what Gen2 lacks may be just a tail of Gen1's file */
        xlate_err e;
        if (xlate_getstatus(&p->rq, &e) != 0) {
            ap_op_finish(p, APPLY_FAILED, "%s", e.message);
            return;
        }
        ap_g2_simple(p, p->g2path, h_tail_len);
    } else {
        ap_copy_file(p, st_file_copied);
    }
}

static void h_root_delete(aop *p, httpc_resp *r)
{
    ap_delete_round_answer(p, r, true, h_root_delete, "deleting what Gen1 no longer has", ap_st_ok);
}

/* Gen1 has nothing at the root: neither may Gen2 (a filesystem's root stays). */
static void root_delete(aop *p)
{
    if (!*p->g2path) {
        ap_st_ok(p);
        return;
    }
    free(p->cont);
    p->cont = NULL;
    ap_delete_round(p, true, h_root_delete);
}

static void h_root_status(aop *p, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 404) {
        root_delete(p);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        ap_op_fail_resp(p, r, "reading the copy's root on Gen1 (GETFILESTATUS)");
        return;
    }
    xlate_err e;
    if (xlate_meta_from_filestatus(r->body.data, r->body.len, &p->m, &e) != 0) {
        ap_op_finish(p, APPLY_FAILED, "%s", e.message);
        return;
    }
    p->rsn->kind = p->m.is_dir ? RS_DIR : RS_FILE;
    p->g1status = strndup(r->body.data, r->body.len);
    if (!p->g1status) {
        ap_op_finish(p, APPLY_FAILED, "out of memory");
        return;
    }
    /* Copied over what Gen2 holds, never after deleting it: a file through a temporary name renamed
     * over it, a directory updated in place and swept afterwards. */
    root_copy(p);
}

static void piece_start(aop *p)
{
    ap_rsnode *n = p->rsn;
    switch (n->kind) {
    case RS_ROOT: ap_g1_get(p, p->req->path, "GETFILESTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_root_status); break;
    case RS_FILE:
        p->g1status = n->status;
        n->status = NULL;
        ap_copy_file(p, st_file_copied);
        break;
    case RS_DIR:
        p->g1status = n->status;
        n->status = NULL;
        st_mkdir(p);
        break;
    case RS_MORE: st_list(p); break;
    case RS_SWEEP: st_sweep(p); break;
    case RS_REMOVE: st_remove(p); break;
    }
}

/* ================================================================ the copy */

/* The copy is over (no piece left): report to the owner. */
static void complete(ap_resync *j)
{
    aop *op = j->owner;
    if (j->stopped) {
        ap_op_finish(op, APPLY_STOPPED, "the applier stopped before this write was mirrored");
        return;
    }
    if (j->failed) {
        ap_op_finish(op, APPLY_FAILED, "copy of %s from Gen1: %" PRIu64 " node(s) not copied, first %s", j->root,
                     j->failed, j->first_fail);
        return;
    }
    if (j->diverged)
        ap_op_note(op, "copy of %s from Gen1: %" PRIu64 " node(s) with metadata not copied, first %s", j->root,
                   j->diverged, j->first_div);
    j->then(op);
}

static void account(ap_resync *j, const rs_end *e)
{
    j->active--;
    if (e->copied == 'f') j->files++;
    if (e->copied == 'd') j->dirs++;
    if (e->copied == 'x') j->removed++;
    if (e->copied == 'f' || e->copied == 'd') metrics_inc(j->owner->a->mx.copied[e->copied == 'f' ? 0 : 1]);
    char *first = NULL;
    if (e->outcome == APPLY_STOPPED) {
        j->stopped = true;
    } else if (e->outcome == APPLY_FAILED) {
        j->failed++;
        first = j->first_fail;
    } else if (e->outcome == APPLY_DIVERGENCE) {
        j->diverged++;
        first = j->first_div;
    }
    if (first && !first[0]) snprintf(first, sizeof j->first_fail, "%s: %s", e->path, e->detail);
}

/*
 * Account for a piece that ended (end, or NULL), then start pieces while there are nodes and room.
 * Only one thread starts pieces at a time; the others just account and leave. The thread that finds
 * nothing running and nothing queued completes the copy.
 */
static void pump(ap_resync *j, const rs_end *end)
{
    applier *a = j->owner->a;
    pthread_mutex_lock(&a->mu);
    bool ab = a->abandon;
    pthread_mutex_unlock(&a->mu);

    pthread_mutex_lock(&j->mu);
    if (end) account(j, end);
    if (ab) {
        j->stopped = true;
        while (j->stack) {
            ap_rsnode *n = j->stack;
            j->stack = n->next;
            ap_rsnode_free(n);
        }
    }
    if (j->pumping) {
        pthread_mutex_unlock(&j->mu);
        return;
    }
    j->pumping = true;
    for (;;) {
        aop *batch[AP_RESYNC_CONC];
        int n = 0;
        while (j->stack && j->active < AP_RESYNC_CONC) {
            ap_rsnode *nd = j->stack;
            j->stack = nd->next;
            nd->next = NULL;
            aop *p = piece_new(j, nd);
            if (p) {
                j->active++;
                batch[n++] = p;
            }
        }
        if (n == 0) break;
        pthread_mutex_unlock(&j->mu);
        for (int i = 0; i < n; i++) piece_start(batch[i]); /* may end pieces (they only account) */
        pthread_mutex_lock(&j->mu);
    }
    bool finished = j->active == 0 && !j->stack && !j->over;
    if (finished) j->over = true;
    j->pumping = false;
    pthread_mutex_unlock(&j->mu);
    if (finished) complete(j);
}

void ap_resync_piece_done(aop *p)
{
    ap_resync *j = p->job;
    rs_end e;
    e.copied = p->rs_copied;
    e.outcome = p->outcome;
    snprintf(e.path, sizeof e.path, "%s", p->req->path);
    snprintf(e.detail, sizeof e.detail, "%s", p->detail);
    if (e.outcome == APPLY_FAILED)
        LOGW("msg=\"not copied\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", p->req->seq,
             AP_RID(p->req), ap_op_name(p->req->op), e.path, e.detail);
    else if (e.outcome == APPLY_DIVERGENCE)
        LOGW("msg=\"copied, metadata not\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" detail=\"%s\"", p->req->seq,
             AP_RID(p->req), ap_op_name(p->req->op), e.path, e.detail);
    ap_op_free(p);
    pump(j, &e);
}

void ap_resync_run(aop *op, const char *root, ap_step then)
{
    ap_resync *j = calloc(1, sizeof *j);
    ap_rsnode *n = node_new(RS_ROOT, root, NULL, NULL);
    if (j) j->root = strdup(root);
    if (!j || !n || !j->root) {
        if (j) free(j->root);
        free(j);
        ap_rsnode_free(n);
        ap_op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->owner = op;
    j->then = then;
    j->stack = n;
    ap_resync_free(op->rs);
    op->rs = j;
    pump(j, NULL);
}

void ap_resync_summary(const aop *op, char *buf, size_t cap)
{
    const ap_resync *j = op->rs;
    if (!j) {
        snprintf(buf, cap, "nothing copied");
        return;
    }
    int n = snprintf(buf, cap, "copied %" PRIu64 " file%s and %" PRIu64 " director%s", j->files,
                     j->files == 1 ? "" : "s", j->dirs, j->dirs == 1 ? "y" : "ies");
    if (n > 0 && (size_t)n < cap && j->removed)
        n += snprintf(buf + n, cap - (size_t)n, ", %" PRIu64 " node(s) Gen1 no longer has removed", j->removed);
    if (n > 0 && (size_t)n < cap && j->invalid)
        n += snprintf(buf + n, cap - (size_t)n, ", %" PRIu64 " name(s) Gen2 would reject skipped", j->invalid);
    if (n > 0 && (size_t)n < cap && j->unmapped)
        snprintf(buf + n, cap - (size_t)n, ", %" PRIu64 " unmapped node(s) skipped", j->unmapped);
}

void ap_resync_free(ap_resync *j)
{
    if (!j) return;
    while (j->stack) {
        ap_rsnode *n = j->stack;
        j->stack = n->next;
        ap_rsnode_free(n);
    }
    free(j->root);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

aop *ap_resync_owner(const ap_resync *rs)
{
    return rs->owner;
}

/* ================================================================ resyncs of an operation's paths */

static void rs_gate(aop *op);

static void rs_root_start(aop *op)
{
    op->rs_redos = 0;
    op->rs_gate_waits = 0;
    rs_gate(op);
}

/* The copy of the current root is done: check the gate again, remember the cover, go on. */
static void rs_copied(aop *op)
{
    applier *a = op->a;
    const char *root = op->rs_roots[op->rs_i];
    /* A node-only copy of a directory (or of a root Gen1 no longer has) covers nothing below its root,
     * so it records no cover (the records of its entries, journaled after it, still apply) and is not
     * redone for writes below it: the path's epoch counts those. The writes of the directory itself
     * it may have read early are metadata operations, applied again after it with the same result.
     * A root that turned out to be a file takes the gate as any resync (an APPEND is not idempotent). */
    bool node_dir = req_node_only(op->req) && op->rs && op->rs->files == 0;
    if (a->gate && !node_dir) {
        bool busy = false;
        uint64_t e2 = a->gate(a->gate_ud, root, &busy);
        if (busy || e2 != op->rs_e1) {
            if (++op->rs_redos > AP_RESYNC_REDOS) {
                ap_op_finish(op, APPLY_FAILED, "the copy of %s was overtaken by new writes %d times", root,
                             AP_RESYNC_REDOS);
                return;
            }
            LOGD("msg=\"resync copied again: a write came in meanwhile\" seq=%" PRIu64 " rid=%s root=\"%s\" epoch=%" PRIu64
                 " now=%" PRIu64 " busy=%d",
                 op->req->seq, AP_RID(op->req), root, op->rs_e1, e2, (int)busy);
            op->rs_gate_waits = 0;
            rs_gate(op);
            return;
        }
        ap_cover_add(a, root, op->rs_e1);
    }
    char sum[200];
    ap_resync_summary(op, sum, sizeof sum);
    size_t l = strlen(op->rs_sum);
    int w = l + 1 < sizeof op->rs_sum
                ? snprintf(op->rs_sum + l, sizeof op->rs_sum - l, "%s%.200s: %s%s%.120s", l ? "; " : "", root, sum,
                           op->outcome == APPLY_DIVERGENCE ? ", " : "",
                           op->outcome == APPLY_DIVERGENCE ? op->detail : "")
                : 0;
    if (w < 0) op->rs_sum[l] = 0;
    op->outcome = APPLY_OK;
    op->detail[0] = 0;
    if (++op->rs_i < op->nrs_roots) {
        rs_root_start(op);
        return;
    }
    if (op->copy_applies)
        ap_op_finish(op, APPLY_OK, "applied by copying from Gen1 (%.200s): %.290s", op->why, op->rs_sum);
    else
        ap_op_finish(op, APPLY_RESYNCED, "resynced from Gen1 (%.200s): %.290s", op->why, op->rs_sum);
}

/* Ask the gate for the current root (wait while busy), then copy it. */
static void rs_gate(aop *op)
{
    applier *a = op->a;
    const char *root = op->rs_roots[op->rs_i];
    if (a->gate) {
        bool busy = false;
        uint64_t e = a->gate(a->gate_ud, root, &busy);
        if (busy) {
            int k = op->rs_gate_waits < 3 ? op->rs_gate_waits : 3;
            op->rs_gate_waits++;
            int64_t d = (int64_t)AP_GATE_WAIT_MS << k;
            ap_park(op, d > AP_GATE_WAIT_MAX_MS ? AP_GATE_WAIT_MAX_MS : d, rs_gate);
            return;
        }
        op->rs_e1 = e;
    }
    op->outcome = APPLY_OK;
    ap_resync_run(op, root, rs_copied);
}

/* The settle wait of a recovered in-doubt write is over: the resync starts. */
static void rs_after_settle(aop *op)
{
    char why[sizeof op->why];
    memcpy(why, op->why, sizeof why);
    ap_op_resync(op, why);
}

void ap_op_resync(aop *op, const char *why)
{
    ap_group_release(op);
    int64_t wait = op->req->not_before_ms ? op->req->not_before_ms - ap_mono_ms() : 0;
    op->req->not_before_ms = 0;
    if (wait > 0) {
        /* A write of the last run whose Gen1 outcome is unknown may still land at Gen1: the copy must see
         * it, so it waits for the settle time (the op keeps the path: later records of it wait too). */
        snprintf(op->why, sizeof op->why, "%s", why);
        LOGI("msg=\"resync waits for gen1.settle_ms: the write's Gen1 outcome is unknown and it may still land\""
             " seq=%" PRIu64 " rid=%s path=\"%s\" wait_ms=%" PRId64,
             op->req->seq, AP_RID(op->req), op->req->path, wait);
        ap_park(op, wait, rs_after_settle);
        return;
    }
    op->resyncing = true;
    ap_dg_forget(op, true); /* the copy writes the digests of what it copies whole */
    snprintf(op->why, sizeof op->why, "%s", why);
    op->rs_fails = 0;
    op->rs_i = 0;
    op->rs_sum[0] = 0;
    op->outcome = APPLY_OK;
    op->detail[0] = 0;
    LOGI("msg=\"resync from gen1\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" why=\"%s\"", op->req->seq,
         AP_RID(op->req), ap_op_name(op->req->op), op->req->path, op->why);
    /* The roots: every path the operation touches, without those under another. */
    for (int t = 0; t < op->ntouch; t++) {
        const char *p = op->touch[t];
        bool dup = false;
        for (int i = 0; i < op->nrs_roots && !dup; i++) dup = ap_path_under(p, op->rs_roots[i]);
        if (dup) continue;
        for (int i = 0; i < op->nrs_roots;) {
            if (ap_path_under(op->rs_roots[i], p)) {
                free(op->rs_roots[i]);
                op->rs_roots[i] = op->rs_roots[--op->nrs_roots];
            } else {
                i++;
            }
        }
        if (op->nrs_roots >= AP_RESYNC_ROOTS) {
            ap_op_finish(op, APPLY_PARKED, "resync needed (%.200s) but it touches more than %d paths", op->why,
                         AP_RESYNC_ROOTS);
            return;
        }
        if (ap_path_list_add(&op->rs_roots, &op->nrs_roots, p) != 0) {
            ap_op_finish(op, APPLY_PARKED, "resync needed (%.200s): out of memory", op->why);
            return;
        }
    }
    if (op->nrs_roots == 0) {
        ap_op_finish(op, APPLY_PARKED, "resync needed (%.200s): no path to copy", op->why);
        return;
    }
    rs_root_start(op);
}

void ap_op_resync_failed(aop *op)
{
    applier *a = op->a;
    op->rs_fails++;
    if (op->rs_fails >= (int)a->resync_attempts) {
        char last[sizeof op->detail];
        memcpy(last, op->detail, sizeof last);
        ap_op_finish(op, APPLY_PARKED, "resync failed %d time%s, last: %.250s (resync because: %.200s)", op->rs_fails,
                     op->rs_fails == 1 ? "" : "s", last, op->why);
        return;
    }
    int64_t d = ap_backoff_ms(a, op->rs_fails + 1);
    LOGW("msg=\"resync failed: tried again later\" seq=%" PRIu64 " rid=%s op=%s path=\"%s\" attempt=%d after_ms=%" PRId64
         " detail=\"%s\"",
         op->req->seq, AP_RID(op->req), ap_op_name(op->req->op), op->req->path, op->rs_fails, d, op->detail);
    op->outcome = APPLY_OK;
    op->detail[0] = 0;
    ap_park(op, d, rs_root_start);
}
