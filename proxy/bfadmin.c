/*
 * bfadmin: the admin endpoints a `dualpipe backfill` run talks to (bfadmin.h). The copies themselves
 * are the journal's RESYNC records (pipe_resync), so every guarantee of a resync holds for them:
 * ordered with the writes of the same path, gated by the path's epoch before and after the read of
 * Gen1 (a write that lands meanwhile makes the copy start again from Gen1's newest state), written
 * under a temporary name and renamed over, a path gone from Gen1 removed on Gen2, retried and parked
 * like any record. This file only adds the lease that keeps two runs off one tree and the look-up of
 * what became of a run's records.
 */
#include "bfadmin.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ajson.h"
#include "journal.h"
#include "jrnl_fmt.h"
#include "log.h"
#include "urlcodec.h"
#include "whreq.h"

#define BF_MAX_LEASES 16
#define BF_OWNER_MAX 64
#define BF_STATE_MAX 1000        /* seqs per state request */

typedef struct bf_lease {
    char *root;                  /* NULL: free slot */
    char owner[BF_OWNER_MAX + 1];
    double expires;              /* monotonic seconds */
} bf_lease;

struct bfadmin {
    pthread_mutex_t mu;
    bf_lease l[BF_MAX_LEASES];
    fence_reg *fences;           /* not owned */
};

bfadmin *bfadmin_new(fence_reg *fences)
{
    bfadmin *b = calloc(1, sizeof *b);
    if (b) pthread_mutex_init(&b->mu, NULL);
    if (b) b->fences = fences;
    return b;
}

void bfadmin_free(bfadmin *b)
{
    if (!b) return;
    for (int i = 0; i < BF_MAX_LEASES; i++) free(b->l[i].root);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}


/* owner: 1 to 64 of [0-9a-zA-Z-]. */
static bool owner_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > BF_OWNER_MAX) return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '-'))
            return false;
    return true;
}

/* a == b, or one is below the other (whole segments). */
static bool overlaps(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la == 1 || lb == 1) return true; /* "/" */
    size_t n = la < lb ? la : lb;
    if (strncmp(a, b, n) != 0) return false;
    return la == lb || (la < lb ? b[la] == '/' : a[lb] == '/');
}

static bool under(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (n == 1) return true;
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* The owner parameter (checked) into owner. 0, or the status of the error written to out. */
static unsigned get_owner(const char *query, char owner[BF_OWNER_MAX + 1], dbuf *out)
{
    dbuf v;
    dbuf_init(&v, 256);
    int rc = url_query_get(query, "owner", &v);
    bool ok = rc == 1 && owner_ok(v.data);
    if (ok) snprintf(owner, BF_OWNER_MAX + 1, "%s", v.data);
    dbuf_free(&v);
    return ok ? 0 : ajson_error(out, 400, "owner: required, the run's id (1 to 64 letters, digits or '-')");
}

/* An absolute, normalised path parameter (caller frees *norm). 0 or an error status. */
static unsigned get_path(const char *query, const char *name, char **norm, dbuf *out)
{
    dbuf v;
    dbuf_init(&v, WHREQ_MAX_PATH + 1);
    int rc = url_query_get(query, name, &v);
    unsigned st = 0;
    whreq_err we;
    if (rc < 0) st = ajson_error(out, 400, "%s: malformed percent-encoding, a control character or too long", name);
    else if (rc == 0 || v.data[0] != '/') st = ajson_error(out, 400, "%s: required, an absolute path such as /data", name);
    else if (whreq_norm_path(v.data, norm, &we) != 0) st = ajson_error(out, 400, "%s: %s", name, we.message);
    dbuf_free(&v);
    return st;
}

/* The live lease of owner (under mu), renewed; NULL when it holds none. */
static bf_lease *held(bfadmin *b, const char *owner, double now)
{
    for (int i = 0; i < BF_MAX_LEASES; i++) {
        bf_lease *l = &b->l[i];
        if (l->root && strcmp(l->owner, owner) == 0 && l->expires > now) {
            l->expires = now + BF_LEASE_S;
            return l;
        }
    }
    return NULL;
}

static unsigned do_begin(bfadmin *b, pipeline *p, const char *query, dbuf *out)
{
    char owner[BF_OWNER_MAX + 1];
    char *root = NULL;
    unsigned st = get_owner(query, owner, out);
    if (st || (st = get_path(query, "root", &root, out))) return st;
    double now = now_s();
    pthread_mutex_lock(&b->mu);
    bf_lease *slot = NULL;
    for (int i = 0; i < BF_MAX_LEASES && !st; i++) {
        bf_lease *l = &b->l[i];
        if (l->root && l->expires <= now) { /* lapsed: its run stopped calling */
            free(l->root);
            l->root = NULL;
        }
        if (!l->root) {
            if (!slot) slot = l;
            continue;
        }
        if (strcmp(l->owner, owner) == 0) { /* the same run again (a resume): its old lease goes */
            free(l->root);
            l->root = NULL;
            if (!slot) slot = l;
        } else if (overlaps(l->root, root)) {
            st = ajson_error(out, 409, "another backfill (run %s) is working on %s; it holds the tree until it ends, or %d s "
                      "after its last call if it was killed", l->owner, l->root, BF_LEASE_S);
        }
    }
    if (!st && !slot) st = ajson_error(out, 503, "too many backfills at once (at most %d)", BF_MAX_LEASES);
    if (!st) {
        slot->root = root;
        root = NULL;
        snprintf(slot->owner, sizeof slot->owner, "%s", owner);
        slot->expires = now + BF_LEASE_S;
        jnl_stats js;
        jnl_get_stats(pipe_journal(p), &js);
        dbuf_reset(out);
        if (dbuf_printf(out, "{\"lease_s\":%d,\"max_seq\":%" PRIu64 "}\n", BF_LEASE_S, js.max_seq) != 0)
            st = ajson_error(out, 500, "out of memory");
        else st = 200;
        LOGI("msg=\"backfill started\" owner=%s root=\"%s\"", owner, slot->root);
    }
    pthread_mutex_unlock(&b->mu);
    free(root);
    return st;
}

static unsigned do_end(bfadmin *b, const char *query, dbuf *out)
{
    char owner[BF_OWNER_MAX + 1];
    unsigned st = get_owner(query, owner, out);
    if (st) return st;
    int n = 0;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < BF_MAX_LEASES; i++) {
        bf_lease *l = &b->l[i];
        if (l->root && strcmp(l->owner, owner) == 0) {
            LOGI("msg=\"backfill ended\" owner=%s root=\"%s\"", owner, l->root);
            free(l->root);
            l->root = NULL;
            n++;
        }
    }
    pthread_mutex_unlock(&b->mu);
    dbuf_reset(out);
    return dbuf_printf(out, "{\"ended\":%d}\n", n) == 0 ? 200 : ajson_error(out, 500, "out of memory");
}

static unsigned do_copy(bfadmin *b, pipeline *p, const char *query, dbuf *out)
{
    char owner[BF_OWNER_MAX + 1];
    char *path = NULL;
    unsigned st = get_owner(query, owner, out);
    if (st || (st = get_path(query, "path", &path, out))) return st;
    pthread_mutex_lock(&b->mu);
    bf_lease *l = held(b, owner, now_s());
    bool in = l && under(path, l->root);
    char root[512];
    snprintf(root, sizeof root, "%s", l ? l->root : "");
    pthread_mutex_unlock(&b->mu);
    if (!l) st = ajson_error(out, 409, "run %s holds no backfill lease (it lapsed %d s after its last call, or was never "
                      "taken): begin again", owner, BF_LEASE_S);
    else if (!in) st = ajson_error(out, 400, "path: %s is outside the run's tree %s", path, root);
    if (st) {
        free(path);
        return st;
    }
    dbuf v;
    dbuf_init(&v, 64);
    bool node = url_query_get(query, "node", &v) == 1 && strcmp(v.data, "1") == 0;
    dbuf_free(&v);
    uint64_t seq = 0;
    int rc = pipe_resync_node(p, path, node, &seq);
    if (rc == -ESHUTDOWN) st = ajson_error(out, 503, "the proxy is stopping");
    else if (rc != 0) st = ajson_error(out, 503, "the journal cannot take the copy of %s: %s", path, strerror(-rc));
    else {
        dbuf_reset(out);
        st = dbuf_printf(out, "{\"seq\":%" PRIu64 "}\n", seq) == 0 ? 200 : ajson_error(out, 500, "out of memory");
        LOGD("msg=\"backfill copy\" owner=%s seq=%" PRIu64 " path=\"%s\"", owner, seq, path);
    }
    free(path);
    return st;
}

/* ---------------------------------------------------------------- DistCp fences (fence.h) */

static unsigned fence_status(int rc)
{
    return rc == -EINVAL ? 400 : rc == -ENOENT ? 404 : rc == -EXDEV || rc == -EIO || rc == -EBUSY ? 409 : 503;
}

/* The fence parameter into tok. 0 or the status of the error written to out. */
static unsigned get_token(const char *query, char tok[FENCE_TOKEN_MAX], dbuf *out)
{
    dbuf v;
    dbuf_init(&v, 256);
    int rc = url_query_get(query, "fence", &v);
    bool ok = rc == 1 && v.len > 0 && v.len < FENCE_TOKEN_MAX;
    if (ok) snprintf(tok, FENCE_TOKEN_MAX, "%s", v.data);
    dbuf_free(&v);
    return ok ? 0 : ajson_error(out, 400, "fence: required, the token `dualpipe backfill --plan distcp` printed");
}

/* The root of owner's live lease into root (renewed). 0, or the status of the error written to out. */
static unsigned lease_root(bfadmin *b, const char *owner, char *root, size_t cap, dbuf *out)
{
    pthread_mutex_lock(&b->mu);
    bf_lease *l = held(b, owner, now_s());
    if (l) snprintf(root, cap, "%s", l->root);
    pthread_mutex_unlock(&b->mu);
    return l ? 0 : ajson_error(out, 409, "run %s holds no backfill lease: begin again", owner);
}

/* POST /admin/backfill/fence?owner=ID: a fence on the run's tree. */
static unsigned do_fence(bfadmin *b, const char *query, dbuf *out)
{
    char owner[BF_OWNER_MAX + 1], root[WHREQ_MAX_PATH + 1], err[800];
    unsigned st = get_owner(query, owner, out);
    if (st || (st = lease_root(b, owner, root, sizeof root, out))) return st;
    fence_info *fi = malloc(sizeof *fi);
    if (!fi) return ajson_error(out, 500, "out of memory");
    int rc = fence_create(b->fences, root, fi, err, sizeof err);
    if (rc != 0) st = ajson_error(out, fence_status(rc), "%s", err);
    else st = fence_info_json(fi, out) == 0 ? 200 : ajson_error(out, 500, "out of memory");
    free(fi);
    return st;
}

/* GET /admin/backfill/fences[?fence=T]: every fence, or one. */
static unsigned do_fences(bfadmin *b, const char *query, dbuf *out)
{
    char tok[FENCE_TOKEN_MAX], err[800];
    dbuf v;
    dbuf_init(&v, 256);
    bool one = url_query_get(query, "fence", &v) == 1;
    dbuf_free(&v);
    if (!one) return fence_list_json(b->fences, out) == 0 ? 200 : ajson_error(out, 500, "out of memory");
    unsigned st = get_token(query, tok, out);
    if (st) return st;
    fence_info *fi = malloc(sizeof *fi);
    if (!fi) return ajson_error(out, 500, "out of memory");
    int rc = fence_get(b->fences, tok, fi, err, sizeof err);
    if (rc != 0) st = ajson_error(out, fence_status(rc), "%s", err);
    else st = fence_info_json(fi, out) == 0 ? 200 : ajson_error(out, 500, "out of memory");
    free(fi);
    return st;
}

/* POST /admin/backfill/settle?owner=ID&fence=T: the settle begins (or resumes); the run's lease must be
 * on the fence's tree. */
static unsigned do_settle(bfadmin *b, const char *query, dbuf *out)
{
    char owner[BF_OWNER_MAX + 1], tok[FENCE_TOKEN_MAX], root[WHREQ_MAX_PATH + 1], err[800];
    unsigned st = get_owner(query, owner, out);
    if (st || (st = get_token(query, tok, out)) || (st = lease_root(b, owner, root, sizeof root, out))) return st;
    fence_info *fi = malloc(sizeof *fi);
    if (!fi) return ajson_error(out, 500, "out of memory");
    int rc = fence_get(b->fences, tok, fi, err, sizeof err);
    if (rc != 0) st = ajson_error(out, fence_status(rc), "%s", err);
    else if (strcmp(fi->root, root) != 0)
        st = ajson_error(out, 400, "fence %s was taken on %s, the run's tree is %s: settle that tree", tok, fi->root, root);
    else if ((rc = fence_settle_begin(b->fences, tok, fi, err, sizeof err)) != 0)
        st = ajson_error(out, fence_status(rc), "%s", err);
    else st = fence_info_json(fi, out) == 0 ? 200 : ajson_error(out, 500, "out of memory");
    free(fi);
    return st;
}

/* GET /admin/backfill/touched?owner=ID&fence=T&after=N: a page of the settling fence's paths. */
static unsigned do_touched(bfadmin *b, const char *query, dbuf *out)
{
    char owner[BF_OWNER_MAX + 1], tok[FENCE_TOKEN_MAX], root[WHREQ_MAX_PATH + 1], err[800];
    unsigned st = get_owner(query, owner, out);
    if (st || (st = get_token(query, tok, out)) || (st = lease_root(b, owner, root, sizeof root, out))) return st;
    dbuf v;
    dbuf_init(&v, 64);
    unsigned long long after = 0;
    int q = url_query_get(query, "after", &v);
    char *end = NULL;
    if (q == 1) after = strtoull(v.data, &end, 10);
    bool bad = q < 0 || (q == 1 && (!v.data[0] || *end));
    dbuf_free(&v);
    if (bad) return ajson_error(out, 400, "after: a byte offset, as the previous page's next");
    int rc = fence_read(b->fences, tok, (uint64_t)after, 1000, out, err, sizeof err);
    return rc == 0 ? 200 : ajson_error(out, fence_status(rc), "%s", err);
}

/* POST /admin/backfill/settled?owner=ID&fence=T&resynced=N: the settle is over. */
static unsigned do_settled(bfadmin *b, const char *query, dbuf *out)
{
    char owner[BF_OWNER_MAX + 1], tok[FENCE_TOKEN_MAX], root[WHREQ_MAX_PATH + 1], err[800];
    unsigned st = get_owner(query, owner, out);
    if (st || (st = get_token(query, tok, out)) || (st = lease_root(b, owner, root, sizeof root, out))) return st;
    dbuf v;
    dbuf_init(&v, 64);
    unsigned long long n = 0;
    if (url_query_get(query, "resynced", &v) == 1) n = strtoull(v.data, NULL, 10);
    dbuf_free(&v);
    int rc = fence_settled(b->fences, tok, (uint64_t)n, err, sizeof err);
    if (rc != 0) return ajson_error(out, fence_status(rc), "%s", err);
    fence_info *fi = malloc(sizeof *fi);
    if (!fi) return ajson_error(out, 500, "out of memory");
    rc = fence_get(b->fences, tok, fi, err, sizeof err);
    st = rc != 0 ? ajson_error(out, fence_status(rc), "%s", err) : fence_info_json(fi, out) == 0 ? 200 : ajson_error(out, 500, "out of memory");
    free(fi);
    return st;
}

/* POST /admin/backfill/unfence?fence=T: drop a fence whose plan was abandoned. */
static unsigned do_unfence(bfadmin *b, const char *query, dbuf *out)
{
    char tok[FENCE_TOKEN_MAX], err[800];
    unsigned st = get_token(query, tok, out);
    if (st) return st;
    int rc = fence_drop(b->fences, tok, err, sizeof err);
    if (rc != 0) return ajson_error(out, fence_status(rc), "%s", err);
    dbuf_reset(out);
    return dbuf_adds(out, "{\"dropped\":1}\n") == 0 ? 200 : ajson_error(out, 500, "out of memory");
}

typedef struct seen {
    uint16_t state;
    char detail[600];
} seen;

static void seen_fn(void *ud, const jnl_entry *e)
{
    seen *s = ud;
    s->state = e->state;
    snprintf(s->detail, sizeof s->detail, "%s", e->detail ? e->detail : "");
}

static unsigned do_state(bfadmin *b, pipeline *p, const char *query, dbuf *out)
{
    char owner[BF_OWNER_MAX + 1];
    unsigned st = get_owner(query, owner, out);
    if (st) return st;
    pthread_mutex_lock(&b->mu);
    bool ok = held(b, owner, now_s()) != NULL;
    pthread_mutex_unlock(&b->mu);
    if (!ok) return ajson_error(out, 409, "run %s holds no backfill lease: begin again", owner);
    dbuf v;
    dbuf_init(&v, 32 * BF_STATE_MAX);
    int rc = url_query_get(query, "seqs", &v);
    if (rc != 1) {
        dbuf_free(&v);
        return ajson_error(out, 400, "seqs: required, record ids separated by commas");
    }
    json_t *arr = json_array();
    const char *s = v.data;
    int n = 0;
    while (arr && *s && !st) {
        char *end = NULL;
        errno = 0;
        unsigned long long seq = strtoull(s, &end, 10);
        if (errno || end == s || (*end && *end != ',') || *s < '0' || *s > '9' || ++n > BF_STATE_MAX) {
            st = ajson_error(out, 400, "seqs: record ids (at most %d) separated by commas", BF_STATE_MAX);
            break;
        }
        s = *end ? end + 1 : end;
        seen sn = {0};
        int w = jnl_with_entry(pipe_journal(p), (uint64_t)seq, seen_fn, &sn);
        const char *name = w == -ENOENT ? "done"
                           : w != 0             ? "unknown"
                           : sn.state == JFMT_S_PARKED ? "parked"
                                                       : "pending";
        json_t *o = json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "state", name);
        if (o && w == 0 && sn.detail[0]) json_object_set_new(o, "detail", json_string(sn.detail));
        if (!o || json_array_append_new(arr, o) != 0) st = ajson_error(out, 500, "out of memory");
    }
    dbuf_free(&v);
    if (!st) {
        json_t *root = json_pack("{s:O}", "states", arr);
        char *txt = root ? json_dumps(root, JSON_COMPACT) : NULL;
        json_decref(root);
        dbuf_reset(out);
        st = txt && dbuf_adds(out, txt) == 0 && dbuf_adds(out, "\n") == 0 ? 200 : ajson_error(out, 500, "out of memory");
        free(txt);
    }
    json_decref(arr);
    return st;
}

unsigned bfadmin_handle(bfadmin *b, pipeline *p, const char *url, bool post, const char *query, dbuf *out,
                        const char **allow)
{
    static const struct {
        const char *url;
        bool post;
    } routes[] = {{"/admin/backfill/begin", true},
                  {"/admin/backfill/copy", true},
                  {"/admin/backfill/state", false},
                  {"/admin/backfill/end", true},
                  {"/admin/backfill/fence", true},
                  {"/admin/backfill/fences", false},
                  {"/admin/backfill/settle", true},
                  {"/admin/backfill/touched", false},
                  {"/admin/backfill/settled", true},
                  {"/admin/backfill/unfence", true}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].url) != 0) continue;
        if (routes[i].post != post) {
            *allow = routes[i].post ? "POST" : "GET, HEAD";
            dbuf_reset(out);
            return 405;
        }
        if (!b || !p) return ajson_error(out, 503, "backfill is not available in this process");
        if (pipe_to_gen1(p))
            return ajson_error(out, 409, "backfill copies Gen1 to Gen2, and this proxy runs in phase gen2-primary (Gen2 is the "
                                  "primary, writes are mirrored to Gen1): run it in gen1-primary, or use "
                                  "dualpipe journal resync PATH to copy Gen2 to Gen1");
        if (i >= 4 && !b->fences) return ajson_error(out, 503, "DistCp fences are not available in this process");
        switch (i) {
        case 0: return do_begin(b, p, query, out);
        case 1: return do_copy(b, p, query, out);
        case 2: return do_state(b, p, query, out);
        case 3: return do_end(b, query, out);
        case 4: return do_fence(b, query, out);
        case 5: return do_fences(b, query, out);
        case 6: return do_settle(b, query, out);
        case 7: return do_touched(b, query, out);
        case 8: return do_settled(b, query, out);
        default: return do_unfence(b, query, out);
        }
    }
    return ajson_error(out, 404, "no such backfill endpoint");
}
