/*
 * applier: mirrors the writes Gen1 accepted onto Gen2 (see applier.h). applier_submit only queues;
 * one worker thread prepares each request (which Gen1 paths it touches), keeps the submission-ordered
 * list of unfinished operations, starts those that no earlier unfinished operation blocks (same path,
 * ancestor or descendant; a RENAME touches source and destination, a CONCAT its target and sources),
 * at most AP_MAX_INFLIGHT at a time, and re-sends requests whose retry time has come. Each operation
 * is a small state machine: a step sends one Gen1 or Gen2 request (gen1c_get / gen2c_send), and its
 * handler, run on the httpc thread when the answer arrives, decides the next step from the answer
 * with common/xlate. Nothing blocks the httpc thread: retries are parked on the worker's timer list.
 *
 * Shared state (lists, counters, the per-file cache of Gen2 committed lengths and known directories)
 * sits under one mutex; an operation's own fields are touched only by whoever runs its current step.
 * An operation is freed by op_done, after its done callback, and never inside applier_submit.
 */
#include "applier.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "gen2client.h"
#include "log.h"
#include "xlate.h"

#define AP_MAX_INFLIGHT 64          /* operations running at once */
#define AP_SCAN_MAX 512             /* unfinished operations looked at per scheduling pass */
#define AP_MAX_ATTEMPTS 5           /* sends of one request (transport errors, 408, 429, 5xx) */
#define AP_BACKOFF_BASE_MS 2000     /* full jitter over base * 2^n: at most 2+4+8+16 s in all */
#define AP_BACKOFF_CAP_MS 16000
#define AP_RETRY_AFTER_MAX_MS 30000
#define AP_RING 100                 /* divergences / failures kept for the admin API */
#define AP_JSON_MAX (1u << 20)      /* Gen1 JSON answers read into memory */
#define AP_CONCAT_BODY_MAX (1u << 20)
#define AP_PATH_CAP 4200            /* a Gen2 path (1024 chars, up to 4 bytes each, plus prefix) */
#define AP_CACHE_BUCKETS 1024
#define AP_CACHE_MAX 4096
#define AP_MARKS_MAX 65536          /* paths whose metadata copy waits for a later rename */

typedef struct aop aop;
typedef void (*ap_handler)(aop *op, httpc_resp *r);
typedef void (*ap_step)(aop *op);

/* A Gen1 path and where it lands on Gen2 (same filesystem as the operation). */
typedef struct ap_node {
    char *g1;
    char *g2;
} ap_node;

struct aop {
    applier *a;
    apply_req *req;
    void (*done)(void *ud, const apply_result *res);
    void *ud;
    aop *prev, *next;               /* a->head..tail, submission order */
    aop *qnext;                     /* incoming queue / timer list */
    int64_t due_ms;                 /* timer list: when to re-send */
    bool started;
    char **touch;                   /* Gen1 paths this operation touches (ordering) */
    int ntouch;
    char prep_err[256];             /* preparation failed: finish with this */

    char fs[64];
    char *g2path;                   /* the operation's path on Gen2 */
    char *g2dst;                    /* RENAME: the destination's path on Gen2 */

    /* the request in flight */
    bool is_g1;
    int attempt;                    /* sends of the current request so far */
    xlate_g2req rq;
    const char *rq_path;            /* Gen2 path (points into op-owned memory) */
    httpc_body_in in;
    int in_fd;
    uint64_t in_off, in_len;
    ap_handler on;
    char *g1_path;                  /* Gen1 look-up */
    char *g1_query;
    httpc_body_out g1_out;
    int g1_fd;

    /* data: [data_off, data_off+data_len) of data_fd goes to Gen2 at pos0.. then the flush */
    int data_fd;
    uint64_t data_off, data_len, pos0, sent;
    xlate_flush flush;
    ap_step after_data;
    bool len_from_cache;

    /* new nodes whose metadata is copied from Gen1 (missing ancestors top-down, then the node) */
    ap_node *meta;
    int nmeta, meta_i;
    xlate_meta m;
    xlate_g2req mreq[2];
    int nmreq, mreq_i;
    ap_step after_meta;
    ap_node probe;                  /* ancestor being probed */

    /* re-copies */
    int tmpfd;
    xlate_paths srcs;
    char *srcdir;
    int src_i;
    ap_node del;                    /* source being deleted */

    bool rename2, overwrite, dst_dir;
    int rmw;                        /* ACL read-modify-write rounds */
    char *cont;                     /* x-ms-continuation */
    apply_outcome outcome;
    char detail[512];
};

typedef struct ap_rec {
    uint64_t seq;
    int64_t time_ms;
    whreq_op op;
    char path[512];
    char detail[512];
} ap_rec;

typedef struct ap_ring {
    ap_rec r[AP_RING];
    int next, n;
} ap_ring;

typedef struct ap_cent {
    struct ap_cent *next;
    char *path;                     /* Gen1 path */
    bool is_dir;
    uint64_t len;                   /* files: committed length on Gen2 */
} ap_cent;

struct applier {
    const dp_config *cfg;
    httpc *http;
    gen1c *g1;
    gen2c *g2;
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* wakes the worker */
    pthread_cond_t idle;            /* pending reached 0 */
    aop *in_head, *in_tail;         /* submitted, not yet prepared */
    aop *head, *tail;               /* prepared, unfinished, in order */
    aop *timers;                    /* parked for a re-send, by due time */
    bool kick;                      /* something finished or arrived: schedule again */
    unsigned in_flight;
    uint64_t pending;
    bool stopping, abandon, quit, orphaned;
    uint64_t n_applied, n_unmapped, n_invalid, n_divergence, n_failed;
    ap_ring divs, fails;
    ap_cent *cache[AP_CACHE_BUCKETS];
    unsigned ncache;
    char **marks;                   /* Gen1 paths created on Gen2 whose Gen1 metadata could not be read */
    int nmarks;
    uint64_t rng;
};

/* ================================================================ small helpers */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *op_name(whreq_op op)
{
    const whreq_opinfo *i = whreq_opinfo_get(op);
    return i ? i->name : "UNKNOWN";
}

static const char *param(const apply_req *r, const char *lname)
{
    for (int i = 0; i < r->nparams; i++)
        if (r->params[i].name && strcmp(r->params[i].name, lname) == 0) return r->params[i].value;
    return NULL;
}

static bool param_bool(const apply_req *r, const char *lname, bool def)
{
    const char *v = param(r, lname);
    if (!v || !*v) return def;
    return strcasecmp(v, "true") == 0;
}

static whreq_sync param_sync(const apply_req *r)
{
    const char *v = param(r, "syncflag");
    if (v && strcasecmp(v, "DATA") == 0) return WH_SYNC_DATA;
    if (v && strcasecmp(v, "METADATA") == 0) return WH_SYNC_METADATA;
    return WH_SYNC_CLOSE; /* Gen1's default (swagger) */
}

static char *parent_path(const char *p)
{
    const char *s = strrchr(p, '/');
    if (!s || s == p) return strdup("/");
    return strndup(p, (size_t)(s - p));
}

static int path_list_add(char ***v, int *n, const char *p)
{
    char **nv = realloc(*v, sizeof *nv * (size_t)(*n + 1));
    if (!nv) return -1;
    *v = nv;
    if (!(nv[*n] = strdup(p))) return -1;
    (*n)++;
    return 0;
}

/* The Gen2 path used for metadata calls: the filesystem's root directory is "/". */
static const char *meta_target(const char *g2)
{
    return *g2 ? g2 : "/";
}

/* ================================================================ bodies and requests */

dp_body *dp_body_ref(dp_body *b)
{
    if (b) __atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

void dp_body_unref(dp_body *b)
{
    if (!b) return;
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (b->fd >= 0) close(b->fd);
    free(b);
}

void apply_req_free(apply_req *r)
{
    if (!r) return;
    free(r->path);
    for (int i = 0; i < r->nparams; i++) {
        free(r->params[i].name);
        free(r->params[i].value);
    }
    free(r->params);
    free(r->authorization);
    free(r->gen1_body);
    dp_body_unref(r->body);
    free(r);
}

/* ================================================================ cache (under a->mu) */

static unsigned cache_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % AP_CACHE_BUCKETS;
}

static void cache_clear(applier *a)
{
    for (int i = 0; i < AP_CACHE_BUCKETS; i++) {
        while (a->cache[i]) {
            ap_cent *e = a->cache[i];
            a->cache[i] = e->next;
            free(e->path);
            free(e);
        }
    }
    a->ncache = 0;
}

static ap_cent *cache_find(applier *a, const char *path)
{
    for (ap_cent *e = a->cache[cache_hash(path)]; e; e = e->next)
        if (strcmp(e->path, path) == 0) return e;
    return NULL;
}

static void cache_put(applier *a, const char *path, bool is_dir, uint64_t len)
{
    pthread_mutex_lock(&a->mu);
    ap_cent *e = cache_find(a, path);
    if (!e) {
        if (a->ncache >= AP_CACHE_MAX) cache_clear(a);
        e = calloc(1, sizeof *e);
        if (e && !(e->path = strdup(path))) {
            free(e);
            e = NULL;
        }
        if (e) {
            unsigned h = cache_hash(path);
            e->next = a->cache[h];
            a->cache[h] = e;
            a->ncache++;
        }
    }
    if (e) {
        e->is_dir = is_dir;
        e->len = len;
    }
    pthread_mutex_unlock(&a->mu);
}

/* 1 and *len for a file with a known length, 2 for a known directory, 0 unknown. */
static int cache_get(applier *a, const char *path, uint64_t *len)
{
    pthread_mutex_lock(&a->mu);
    ap_cent *e = cache_find(a, path);
    int rc = !e ? 0 : e->is_dir ? 2 : 1;
    if (e && len) *len = e->len;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* Forget path and everything under it. */
static void cache_drop_tree(applier *a, const char *path)
{
    size_t n = strlen(path);
    bool root = strcmp(path, "/") == 0;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < AP_CACHE_BUCKETS; i++) {
        ap_cent **pp = &a->cache[i];
        while (*pp) {
            ap_cent *e = *pp;
            if (root || (strncmp(e->path, path, n) == 0 && (e->path[n] == 0 || e->path[n] == '/'))) {
                *pp = e->next;
                free(e->path);
                free(e);
                a->ncache--;
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* ================================================================ metadata marks (under a->mu) */

/*
 * A node is created on Gen2 after Gen1 made it, and its metadata is then read from Gen1. When a later
 * write has already moved it on Gen1 (a quick create-then-rename), that read finds nothing: the path
 * is marked, and the RENAME that moved it (which per-path order runs after) copies the metadata at
 * the new place. A DELETE drops the marks under it.
 */
static bool under(const char *p, const char *root)
{
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0) return true;
    return strncmp(p, root, n) == 0 && (p[n] == 0 || p[n] == '/');
}

static void marks_add(applier *a, const char *path)
{
    pthread_mutex_lock(&a->mu);
    bool have = false;
    for (int i = 0; i < a->nmarks && !have; i++) have = strcmp(a->marks[i], path) == 0;
    if (!have && a->nmarks < AP_MARKS_MAX) {
        if (path_list_add(&a->marks, &a->nmarks, path) != 0) LOGW("msg=\"metadata mark lost: out of memory\"");
    } else if (!have) {
        LOGW("msg=\"too many nodes wait for their metadata: one is dropped\" path=\"%s\"", path);
    }
    pthread_mutex_unlock(&a->mu);
}

static void marks_drop_tree(applier *a, const char *root)
{
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->nmarks;) {
        if (under(a->marks[i], root)) {
            free(a->marks[i]);
            a->marks[i] = a->marks[--a->nmarks];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* Take the marks under src (moved to dst): their new paths, malloc'd, in *out. */
static int marks_take_moved(applier *a, const char *src, const char *dst, char ***out, int *n)
{
    int rc = 0;
    size_t sl = strcmp(src, "/") == 0 ? 0 : strlen(src);
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->nmarks;) {
        if (!under(a->marks[i], src)) {
            i++;
            continue;
        }
        dbuf b;
        dbuf_init(&b, WHREQ_MAX_PATH + 2);
        if (dbuf_adds(&b, dst) == 0 && dbuf_adds(&b, a->marks[i] + sl) == 0 && path_list_add(out, n, b.data) != 0)
            rc = -1;
        dbuf_free(&b);
        free(a->marks[i]);
        a->marks[i] = a->marks[--a->nmarks];
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* ================================================================ finishing */

static void op_free(aop *op)
{
    apply_req_free(op->req);
    for (int i = 0; i < op->ntouch; i++) free(op->touch[i]);
    free(op->touch);
    free(op->g2path);
    free(op->g2dst);
    xlate_g2req_free(&op->rq);
    free(op->g1_path);
    free(op->g1_query);
    for (int i = 0; i < op->nmeta; i++) {
        free(op->meta[i].g1);
        free(op->meta[i].g2);
    }
    free(op->meta);
    xlate_meta_free(&op->m);
    xlate_g2req_free(&op->mreq[0]);
    xlate_g2req_free(&op->mreq[1]);
    free(op->probe.g1);
    free(op->probe.g2);
    if (op->tmpfd >= 0) close(op->tmpfd);
    xlate_paths_free(&op->srcs);
    free(op->srcdir);
    free(op->del.g1);
    free(op->del.g2);
    free(op->cont);
    free(op);
}

static void ring_add(ap_ring *ring, const aop *op)
{
    ap_rec *r = &ring->r[ring->next];
    r->seq = op->req->seq;
    r->time_ms = real_ms();
    r->op = op->req->op;
    snprintf(r->path, sizeof r->path, "%s", op->req->path);
    snprintf(r->detail, sizeof r->detail, "%s", op->detail);
    ring->next = (ring->next + 1) % AP_RING;
    if (ring->n < AP_RING) ring->n++;
}

static void applier_destroy(applier *a);

/* The operation is over: count it, tell the submitter, free it, let the worker schedule more. */
static void op_done(aop *op)
{
    applier *a = op->a;
    apply_result res;
    res.outcome = op->outcome;
    snprintf(res.detail, sizeof res.detail, "%s", op->detail);
    switch (op->outcome) {
    case APPLY_OK: LOGD("msg=applied seq=%" PRIu64 " op=%s path=\"%s\"", op->req->seq, op_name(op->req->op), op->req->path); break;
    case APPLY_SKIPPED_UNMAPPED:
        LOGD("msg=\"not mirrored\" seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", op->req->seq,
             op_name(op->req->op), op->req->path, op->detail);
        break;
    case APPLY_SKIPPED_INVALID_NAME:
        LOGW("msg=\"not mirrored\" seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", op->req->seq,
             op_name(op->req->op), op->req->path, op->detail);
        break;
    case APPLY_DIVERGENCE:
        LOGW("msg=divergence seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", op->req->seq, op_name(op->req->op),
             op->req->path, op->detail);
        break;
    case APPLY_FAILED:
        LOGE("msg=\"gen2 apply failed\" seq=%" PRIu64 " op=%s path=\"%s\" detail=\"%s\"", op->req->seq,
             op_name(op->req->op), op->req->path, op->detail);
        break;
    }
    pthread_mutex_lock(&a->mu);
    if (op->prev) op->prev->next = op->next;
    else a->head = op->next;
    if (op->next) op->next->prev = op->prev;
    else a->tail = op->prev;
    if (op->started) a->in_flight--;
    a->pending--;
    switch (op->outcome) {
    case APPLY_OK: a->n_applied++; break;
    case APPLY_SKIPPED_UNMAPPED: a->n_unmapped++; break;
    case APPLY_SKIPPED_INVALID_NAME: a->n_invalid++; break;
    case APPLY_DIVERGENCE: a->n_divergence++; ring_add(&a->divs, op); break;
    case APPLY_FAILED: a->n_failed++; ring_add(&a->fails, op); break;
    }
    a->kick = true;
    pthread_cond_signal(&a->cv);
    if (a->pending == 0) pthread_cond_broadcast(&a->idle);
    bool last = a->orphaned && a->pending == 0;
    pthread_mutex_unlock(&a->mu);
    if (op->done) op->done(op->ud, &res);
    op_free(op);
    if (last) applier_destroy(a);
}

__attribute__((format(printf, 3, 4))) static void op_finish(aop *op, apply_outcome oc, const char *fmt, ...)
{
    op->outcome = oc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->detail, sizeof op->detail, fmt, ap);
    va_end(ap);
    op_done(op);
}

/* Note a metadata problem (the data part went through): the outcome becomes a divergence. */
__attribute__((format(printf, 2, 3))) static void op_note(aop *op, const char *fmt, ...)
{
    if (op->outcome != APPLY_OK) return;
    op->outcome = APPLY_DIVERGENCE;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->detail, sizeof op->detail, fmt, ap);
    va_end(ap);
}

/* What a Gen2/Gen1 answer was, for details: "Gen2 409 PathAlreadyExists" or "Gen2 unreachable: ...". */
static void resp_what(const aop *op, const httpc_resp *r, char *buf, size_t cap)
{
    const char *side = op->is_g1 ? "Gen1" : "Gen2";
    if (r->result != HTTPC_OK) {
        snprintf(buf, cap, "%s unreachable: %s%s%s", side, httpc_result_str(r->result), r->error[0] ? ": " : "",
                 r->error);
        return;
    }
    char code[128] = "";
    if (!op->is_g1) gen2c_error_code(r, code, sizeof code);
    snprintf(buf, cap, "%s %ld%s%s", side, r->status, code[0] ? " " : "", code);
}

static void op_fail_resp(aop *op, const httpc_resp *r, const char *step)
{
    char what[300];
    resp_what(op, r, what, sizeof what);
    op_finish(op, APPLY_FAILED, "%s on %s", what, step);
}

static const char *g2code(const httpc_resp *r, char *buf, size_t cap)
{
    return r->result == HTTPC_OK ? gen2c_error_code(r, buf, cap) : "";
}

/* ================================================================ sending, retries */

static void park(aop *op, int64_t delay_ms)
{
    applier *a = op->a;
    pthread_mutex_lock(&a->mu);
    op->due_ms = mono_ms() + delay_ms;
    aop **pp = &a->timers;
    while (*pp && (*pp)->due_ms <= op->due_ms) pp = &(*pp)->qnext;
    op->qnext = *pp;
    *pp = op;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void on_answer(void *ud, httpc_resp *r);

/* Send the current request (op->rq or the Gen1 look-up) once more. */
static void resend(aop *op)
{
    op->attempt++;
    int rc;
    if (op->is_g1) {
        if (op->g1_out == HTTPC_BODY_FD && (ftruncate(op->g1_fd, 0) != 0 || lseek(op->g1_fd, 0, SEEK_SET) != 0)) {
            op_finish(op, APPLY_FAILED, "cannot reset the spool file: %s", strerror(errno));
            return;
        }
        rc = gen1c_get(op->a->g1, op->g1_path, op->g1_query, op->req->authorization, op->g1_out, AP_JSON_MAX,
                       op->g1_fd, on_answer, op);
    } else {
        gen2c_call c;
        memset(&c, 0, sizeof c);
        c.method = op->rq.method;
        c.fs = op->fs;
        c.path = op->rq_path;
        c.query = op->rq.query;
        for (int i = 0; i < op->rq.nheaders && i < 23; i++) c.headers[i] = op->rq.headers[i];
        c.in = op->in;
        c.in_fd = op->in_fd;
        c.in_off = op->in_off;
        c.in_len = op->in_len;
        c.out = HTTPC_BODY_MEMORY;
        c.out_max = 64 * 1024;
        c.done = on_answer;
        c.ud = op;
        rc = gen2c_send(op->a->g2, &c);
    }
    if (rc != 0)
        op_finish(op, APPLY_FAILED, "%s request could not be sent (%s %s)", op->is_g1 ? "Gen1" : "Gen2",
                  op->is_g1 ? "GET" : op->rq.method, op->is_g1 ? op->g1_query : op->rq.query);
}

static bool abandoned(aop *op)
{
    pthread_mutex_lock(&op->a->mu);
    bool ab = op->a->abandon;
    pthread_mutex_unlock(&op->a->mu);
    if (ab) op_finish(op, APPLY_FAILED, "the applier stopped before this write was mirrored");
    return ab;
}

/* Send op->rq to Gen2 at rq_path; on answers, h runs (retries are handled here). */
static void g2_send(aop *op, const char *rq_path, httpc_body_in in, int fd, uint64_t off, uint64_t len, ap_handler h)
{
    if (abandoned(op)) return;
    op->is_g1 = false;
    op->attempt = 0;
    op->rq_path = rq_path;
    op->in = in;
    op->in_fd = fd;
    op->in_off = off;
    op->in_len = len;
    op->on = h;
    resend(op);
}

/* A body-less Gen2 request built by the caller into op->rq. */
static void g2_simple(aop *op, const char *rq_path, ap_handler h)
{
    g2_send(op, rq_path, HTTPC_IN_NONE, -1, 0, 0, h);
}

/* A Gen1 look-up on path with the writer's identity ("op=X" + its user.name/doas/delegation). */
static void g1_get(aop *op, const char *path, const char *g1op, const char *extra, httpc_body_out out, int fd,
                   ap_handler h)
{
    if (abandoned(op)) return;
    dbuf q;
    dbuf_init(&q, 64 * 1024);
    free(op->g1_path);
    free(op->g1_query);
    op->g1_path = strdup(path);
    op->g1_query = xlate_gen1_query(g1op, op->req->params, op->req->nparams, extra, &q) == 0 ? dbuf_take(&q) : NULL;
    dbuf_free(&q);
    if (!op->g1_path || !op->g1_query) {
        op_finish(op, APPLY_FAILED, "out of memory building a Gen1 look-up");
        return;
    }
    op->is_g1 = true;
    op->attempt = 0;
    op->g1_out = out;
    op->g1_fd = fd;
    op->on = h;
    resend(op);
}

static int64_t backoff_ms(applier *a, int attempt)
{
    uint64_t cap = (uint64_t)AP_BACKOFF_BASE_MS << (attempt > 4 ? 4 : attempt - 1);
    if (cap > AP_BACKOFF_CAP_MS) cap = AP_BACKOFF_CAP_MS;
    pthread_mutex_lock(&a->mu);
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 7;
    a->rng ^= a->rng << 17;
    uint64_t r = a->rng;
    pthread_mutex_unlock(&a->mu);
    return (int64_t)(r % (cap + 1));
}

/* Every answer comes here (httpc thread): retry what is worth retrying, else hand it to the step. */
static void on_answer(void *ud, httpc_resp *r)
{
    aop *op = ud;
    applier *a = op->a;
    /* gen2c reports "no token could be had" as a connect failure whose message starts with
     * "gen2 auth": the auth module already retried the token service, so do not retry here. */
    bool auth_gave_up = !op->is_g1 && r->result == HTTPC_E_CONNECT && strncmp(r->error, "gen2 auth", 9) == 0;
    bool transport = r->result != HTTPC_OK && r->result != HTTPC_E_TOO_BIG && r->result != HTTPC_E_CANCELLED &&
                     r->result != HTTPC_E_BODY && !auth_gave_up;
    bool retry = xlate_retryable(transport, r->result == HTTPC_OK ? r->status : 0) &&
                 (r->result == HTTPC_OK || transport) && op->attempt < AP_MAX_ATTEMPTS;
    if (retry) {
        pthread_mutex_lock(&a->mu);
        retry = !a->abandon;
        pthread_mutex_unlock(&a->mu);
    }
    if (retry) {
        int64_t d = backoff_ms(a, op->attempt);
        int64_t ra = r->result == HTTPC_OK ? xlate_retry_after_ms(httpc_resp_header(r, "Retry-After"), real_ms()) : -1;
        if (ra > d) d = ra > AP_RETRY_AFTER_MAX_MS ? AP_RETRY_AFTER_MAX_MS : ra;
        char what[300];
        resp_what(op, r, what, sizeof what);
        LOGI("msg=\"gen2 apply retry\" seq=%" PRIu64 " op=%s path=\"%s\" attempt=%d after_ms=%" PRId64 " cause=\"%s\"",
             op->req->seq, op_name(op->req->op), op->req->path, op->attempt, d, what);
        httpc_resp_free(r);
        free(r);
        park(op, d);
        return;
    }
    op->on(op, r); /* may finish (free) op */
    httpc_resp_free(r);
    free(r);
}

/* ================================================================ metadata copy (Gen1 → Gen2) */

static void meta_next(aop *op);

static void h_meta_set(aop *op, httpc_resp *r)
{
    ap_node *n = &op->meta[op->meta_i];
    if (r->result != HTTPC_OK || r->status != 200) {
        char what[300];
        resp_what(op, r, what, sizeof what);
        op_note(op, "metadata of %s not copied: %s on setAccessControl", n->g1, what);
        op->meta_i++;
        meta_next(op);
        return;
    }
    if (++op->mreq_i < op->nmreq) {
        xlate_g2req_free(&op->rq);
        op->rq = op->mreq[op->mreq_i];
        memset(&op->mreq[op->mreq_i], 0, sizeof op->mreq[op->mreq_i]);
        g2_simple(op, meta_target(n->g2), h_meta_set);
        return;
    }
    op->meta_i++;
    meta_next(op);
}

static void meta_apply(aop *op)
{
    ap_node *n = &op->meta[op->meta_i];
    xlate_err e;
    if (xlate_meta_requests(&op->m, op->mreq, &op->nmreq, &e) != 0) {
        op_note(op, "metadata of %s not copied: %s", n->g1, e.message);
        op->meta_i++;
        meta_next(op);
        return;
    }
    op->mreq_i = 0;
    xlate_g2req_free(&op->rq);
    op->rq = op->mreq[0];
    memset(&op->mreq[0], 0, sizeof op->mreq[0]);
    g2_simple(op, meta_target(n->g2), h_meta_set);
}

static void h_meta_acl(aop *op, httpc_resp *r)
{
    ap_node *n = &op->meta[op->meta_i];
    xlate_err e;
    if (r->result != HTTPC_OK || r->status != 200) {
        char what[300];
        resp_what(op, r, what, sizeof what);
        op_note(op, "ACL of %s not copied: %s on GETACLSTATUS", n->g1, what);
    } else if (xlate_meta_from_aclstatus(r->body.data, r->body.len, &op->m, &e) != 0) {
        op_note(op, "ACL of %s not copied: %s", n->g1, e.message);
    }
    meta_apply(op);
}

static void h_meta_status(aop *op, httpc_resp *r)
{
    ap_node *n = &op->meta[op->meta_i];
    xlate_err e;
    if (r->result == HTTPC_OK && r->status == 404) {
        /* Gone on Gen1 since (a later write removed or moved it): that write finishes the job. */
        marks_add(op->a, n->g1);
        op->meta_i++;
        meta_next(op);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        char what[300];
        resp_what(op, r, what, sizeof what);
        op_note(op, "metadata of %s not copied: %s on GETFILESTATUS", n->g1, what);
        op->meta_i++;
        meta_next(op);
        return;
    }
    if (xlate_meta_from_filestatus(r->body.data, r->body.len, &op->m, &e) != 0) {
        op_note(op, "metadata of %s not copied: %s", n->g1, e.message);
        op->meta_i++;
        meta_next(op);
        return;
    }
    if (op->m.acl_bit) {
        g1_get(op, n->g1, "GETACLSTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_meta_acl);
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
    g1_get(op, op->meta[op->meta_i].g1, "GETFILESTATUS", NULL, HTTPC_BODY_MEMORY, -1, h_meta_status);
}

static int meta_add(aop *op, const char *g1, const char *g2)
{
    ap_node *nv = realloc(op->meta, sizeof *nv * (size_t)(op->nmeta + 1));
    if (!nv) return -1;
    op->meta = nv;
    nv[op->nmeta].g1 = strdup(g1);
    nv[op->nmeta].g2 = strdup(g2);
    if (!nv[op->nmeta].g1 || !nv[op->nmeta].g2) {
        free(nv[op->nmeta].g1);
        free(nv[op->nmeta].g2);
        return -1;
    }
    op->nmeta++;
    return 0;
}

/* Copy the metadata of op->meta[] (ancestors first), then run then. */
static void meta_run(aop *op, ap_step then)
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
    if (meta_add(op, op->probe.g1, op->probe.g2) != 0) {
        op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    ap_node last = op->meta[op->nmeta - 1];
    memmove(op->meta + 1, op->meta, sizeof *op->meta * (size_t)(op->nmeta - 1));
    op->meta[0] = last;
    char *up = parent_path(op->probe.g1);
    free(op->probe.g1);
    op->probe.g1 = up;
    if (!up) {
        op_finish(op, APPLY_FAILED, "out of memory");
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
        op_fail_resp(op, r, "checking the parent directories");
        return;
    }
    if (r->status == 200) {
        const char *t = httpc_resp_header(r, "x-ms-resource-type");
        if (!t || strcasecmp(t, "directory") == 0) cache_put(op->a, op->probe.g1, true, 0);
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
        op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    gen2c_map_result mr = gen2c_map(op->a->g2, op->probe.g1, fs, g2, AP_PATH_CAP, why, sizeof why);
    if (mr != GEN2C_MAPPED || strcmp(fs, op->fs) != 0 || !*g2 || cache_get(op->a, op->probe.g1, NULL) == 2) {
        free(g2);
        op->after_data(op);
        return;
    }
    free(op->probe.g2);
    op->probe.g2 = g2;
    xlate_err e;
    if (xlate_getstatus(&op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, op->probe.g2, h_probe);
}

static void probe_ancestors(aop *op, ap_step then)
{
    free(op->probe.g1);
    op->probe.g1 = parent_path(op->req->path);
    if (!op->probe.g1) {
        op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    probe_next(op, then);
}

/* ================================================================ data: append chunks + flush */

static void data_next(aop *op);

static void h_flush(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        cache_drop_tree(op->a, op->req->path);
        op_fail_resp(op, r, "flush");
        return;
    }
    cache_put(op->a, op->req->path, false, op->pos0 + op->data_len);
    op->after_data(op);
}

static void h_append(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || (r->status != 202 && r->status != 200)) {
        cache_drop_tree(op->a, op->req->path);
        op_fail_resp(op, r, "append");
        return;
    }
    op->sent += op->in_len;
    data_next(op);
}

static void data_next(aop *op)
{
    xlate_err e;
    if (op->sent < op->data_len) {
        uint64_t n = op->data_len - op->sent;
        if (n > XLATE_CHUNK_MAX) n = XLATE_CHUNK_MAX;
        if (xlate_append(op->pos0 + op->sent, &op->rq, &e) != 0) {
            op_finish(op, APPLY_FAILED, "%s", e.message);
            return;
        }
        g2_send(op, op->g2path, HTTPC_IN_FD, op->data_fd, op->data_off + op->sent, n, h_append);
        return;
    }
    if (op->flush == XLATE_FLUSH_NONE) {
        op->after_data(op);
        return;
    }
    if (xlate_flush_req(op->pos0 + op->data_len, op->flush == XLATE_FLUSH_CLOSE, &op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, op->g2path, h_flush);
}

static void data_run(aop *op, int fd, uint64_t off, uint64_t len, uint64_t pos0, xlate_flush fl, ap_step then)
{
    op->data_fd = fd;
    op->data_off = off;
    op->data_len = len;
    op->pos0 = pos0;
    op->sent = 0;
    op->flush = fl;
    op->after_data = then;
    data_next(op);
}

/* ================================================================ CREATE, MKDIRS */

/* The ancestors the probe found missing now exist (Gen2 made them with the node). */
static void mark_ancestors(aop *op)
{
    for (int i = 0; i < op->nmeta; i++) cache_put(op->a, op->meta[i].g1, true, 0);
}

static void st_ok(aop *op)
{
    op_done(op);
}

static void st_meta_then_ok(aop *op)
{
    meta_run(op, st_ok);
}

static void h_create(aop *op, httpc_resp *r)
{
    char code[128];
    bool exists_retry = r->result == HTTPC_OK && op->attempt > 1 && xlate_already_exists(r->status, g2code(r, code, sizeof code));
    if (!exists_retry && (r->result != HTTPC_OK || r->status != 201)) {
        op_fail_resp(op, r, "create");
        return;
    }
    /* (A 409 on a re-sent create: the first send landed; nothing was appended yet.) */
    mark_ancestors(op);
    uint64_t len = op->req->body ? op->req->body->len : 0;
    if (meta_add(op, op->req->path, op->g2path) != 0) {
        op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    cache_put(op->a, op->req->path, false, 0);
    if (len == 0) {
        st_meta_then_ok(op);
        return;
    }
    data_run(op, op->req->body->fd, 0, len, 0, xlate_flush_policy(param_sync(op->req), len), st_meta_then_ok);
}

static void st_create(aop *op)
{
    xlate_err e;
    if (xlate_create(param_bool(op->req, "overwrite", false), param(op->req, "permission"), &op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, op->g2path, h_create);
}

static void h_mkdirs(aop *op, httpc_resp *r)
{
    const char *t = r->result == HTTPC_OK ? httpc_resp_header(r, "x-ms-existing-resource-type") : NULL;
    char code[128];
    bool ok = r->result == HTTPC_OK && xlate_mkdirs_ok(r->status, t);
    /* A re-sent mkdir whose first send landed sees its own directory: fine. */
    if (!ok && r->result == HTTPC_OK && op->attempt > 1 && xlate_already_exists(r->status, g2code(r, code, sizeof code)))
        ok = t == NULL || strcasecmp(t, "directory") == 0;
    if (!ok) {
        op_fail_resp(op, r, "create directory");
        return;
    }
    mark_ancestors(op);
    cache_put(op->a, op->req->path, true, 0);
    /* An existing directory keeps its metadata (Gen1's MKDIRS does not change it either). */
    if (r->status == 201 && meta_add(op, op->req->path, op->g2path) != 0) {
        op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    st_meta_then_ok(op);
}

static void st_mkdirs(aop *op)
{
    xlate_err e;
    if (!*op->g2path) { /* the filesystem root always exists */
        op_done(op);
        return;
    }
    if (xlate_mkdirs(param(op->req, "permission"), &op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, op->g2path, h_mkdirs);
}

/* ================================================================ APPEND */

static void st_append_len(aop *op);

static void append_at(aop *op, uint64_t len)
{
    const char *off = param(op->req, "offset");
    if (off && *off) {
        char *end = NULL;
        errno = 0;
        long long v = off[0] >= '0' && off[0] <= '9' ? strtoll(off, &end, 10) : -1;
        if (!errno && end && !*end && v >= 0 && (uint64_t)v != len) {
            if (op->len_from_cache) { /* stale? ask Gen2 */
                cache_drop_tree(op->a, op->req->path);
                st_append_len(op);
                return;
            }
            op_finish(op, APPLY_FAILED, "Gen2 holds %" PRIu64 " bytes but Gen1 appended at offset %lld", len, v);
            return;
        }
    }
    uint64_t n = op->req->body ? op->req->body->len : 0;
    data_run(op, op->req->body ? op->req->body->fd : -1, 0, n, len, xlate_flush_policy(param_sync(op->req), n), st_ok);
}

static void h_append_len(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        op_fail_resp(op, r, "reading the length before an append");
        return;
    }
    const char *t = httpc_resp_header(r, "x-ms-resource-type");
    const char *cl = httpc_resp_header(r, "Content-Length");
    char *end = NULL;
    errno = 0;
    unsigned long long v = cl && cl[0] >= '0' && cl[0] <= '9' ? strtoull(cl, &end, 10) : 0;
    if ((t && strcasecmp(t, "file") != 0) || !end || errno || *end) {
        op_finish(op, APPLY_FAILED, "Gen2 path is not a file with a length (append)");
        return;
    }
    cache_put(op->a, op->req->path, false, v);
    op->len_from_cache = false;
    append_at(op, v);
}

static void st_append_len(aop *op)
{
    uint64_t len = 0;
    xlate_err e;
    if (cache_get(op->a, op->req->path, &len) == 1) {
        op->len_from_cache = true;
        append_at(op, len);
        return;
    }
    if (xlate_getstatus(&op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, op->g2path, h_append_len);
}

/* ================================================================ re-copies: CONCAT, MSCONCAT, CONCURRENTAPPEND */

static void del_next(aop *op);

static void h_del_source(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || (r->status != 200 && r->status != 202 && r->status != 404)) {
        op_fail_resp(op, r, "deleting a concat source");
        return;
    }
    cache_drop_tree(op->a, op->del.g1);
    marks_drop_tree(op->a, op->del.g1);
    op->src_i++;
    del_next(op);
}

/* Delete the sources on Gen2 (one by one, or their directory for deleteSourceDirectory). */
static void del_next(aop *op)
{
    int total = op->srcdir ? 1 : op->srcs.n;
    while (op->src_i < total) {
        const char *g1 = op->srcdir ? op->srcdir : op->srcs.v[op->src_i];
        char fs[64], why[128];
        char *g2 = malloc(AP_PATH_CAP);
        if (!g2) {
            op_finish(op, APPLY_FAILED, "out of memory");
            return;
        }
        if (gen2c_map(op->a->g2, g1, fs, g2, AP_PATH_CAP, why, sizeof why) != GEN2C_MAPPED || !*g2) {
            free(g2);
            op->src_i++;
            continue;
        }
        if (strcmp(fs, op->fs) != 0) {
            free(g2);
            op_note(op, "source %s is in another filesystem: not deleted there", g1);
            op->src_i++;
            continue;
        }
        free(op->del.g1);
        free(op->del.g2);
        op->del.g1 = strdup(g1);
        op->del.g2 = g2;
        xlate_err e;
        if (!op->del.g1 || xlate_delete(op->srcdir != NULL, NULL, &op->rq, &e) != 0) {
            op_finish(op, APPLY_FAILED, "cannot build a delete");
            return;
        }
        g2_simple(op, op->del.g2, h_del_source);
        return;
    }
    op_done(op);
}

static void st_recopy_done(aop *op)
{
    if (op->req->op == WH_OP_CONCURRENTAPPEND) {
        op_done(op);
        return;
    }
    op->src_i = 0;
    del_next(op);
}

static void st_recopy_meta(aop *op)
{
    meta_run(op, st_recopy_done);
}

static void h_recopy_create(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 201) {
        op_fail_resp(op, r, "create (re-copy)");
        return;
    }
    mark_ancestors(op);
    if (meta_add(op, op->req->path, op->g2path) != 0) {
        op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    cache_put(op->a, op->req->path, false, 0);
    if (op->data_len == 0) {
        st_recopy_meta(op);
        return;
    }
    data_run(op, op->tmpfd, 0, op->data_len, 0, XLATE_FLUSH_CLOSE, st_recopy_meta);
}

static void st_recopy_create(aop *op)
{
    xlate_err e;
    if (xlate_create(true, NULL, &op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, op->g2path, h_recopy_create);
}

static void h_recopy_open(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 404) {
        /* The target is gone on Gen1 already (a later write): only the sources' fate is left. */
        st_recopy_done(op);
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        op_fail_resp(op, r, "reading the result from Gen1 (OPEN)");
        return;
    }
    struct stat st;
    if (fstat(op->tmpfd, &st) != 0) {
        op_finish(op, APPLY_FAILED, "cannot stat the spool file: %s", strerror(errno));
        return;
    }
    op->data_len = (uint64_t)st.st_size;
    cache_drop_tree(op->a, op->req->path);
    probe_ancestors(op, st_recopy_create);
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

static bool ops_conflict(const aop *x, const aop *y);

/* A CONCURRENTAPPEND whose next conflicting operation is another CONCURRENTAPPEND of the same file
 * need not copy: that one copies Gen1's file later, with these bytes in it (writers that stream
 * with CONCURRENTAPPEND would otherwise cost a full copy per append). */
static uint64_t superseded_by(aop *op)
{
    applier *a = op->a;
    uint64_t seq = 0;
    int scanned = 0;
    pthread_mutex_lock(&a->mu);
    for (aop *n = op->next; n && scanned < AP_SCAN_MAX; n = n->next, scanned++) {
        if (!ops_conflict(op, n)) continue;
        if (!n->started && n->req->op == WH_OP_CONCURRENTAPPEND && strcmp(n->req->path, op->req->path) == 0)
            seq = n->req->seq;
        break;
    }
    pthread_mutex_unlock(&a->mu);
    return seq;
}

static void st_recopy(aop *op)
{
    uint64_t later = op->req->op == WH_OP_CONCURRENTAPPEND ? superseded_by(op) : 0;
    if (later) {
        op_finish(op, APPLY_OK, "copied with the later CONCURRENTAPPEND seq=%" PRIu64, later);
        return;
    }
    op->tmpfd = spool_tmp(op->a->cfg->spool_dir);
    if (op->tmpfd < 0) {
        op_finish(op, APPLY_FAILED, "cannot create a spool file: %s", strerror(errno));
        return;
    }
    g1_get(op, op->req->path, "OPEN", NULL, HTTPC_BODY_FD, op->tmpfd, h_recopy_open);
}

/* ================================================================ RENAME, DELETE */

static void st_rename_send(aop *op, const char *target);

/* After a rename: copy the metadata of marked nodes it moved, at their new Gen1 paths. */
static void rename_moved_meta(aop *op)
{
    const char *src = op->req->path, *dst = op->touch[1];
    char *tgt = NULL;
    if (op->dst_dir && !op->rename2) {
        const char *base = strrchr(src, '/');
        base = base ? base + 1 : src;
        size_t n = strlen(dst) + strlen(base) + 2;
        tgt = malloc(n);
        if (tgt) snprintf(tgt, n, "%s/%s", strcmp(dst, "/") == 0 ? "" : dst, base);
    } else {
        tgt = strdup(dst);
    }
    char **moved = NULL;
    int nmoved = 0;
    int rc = tgt ? marks_take_moved(op->a, src, tgt, &moved, &nmoved) : -1;
    free(tgt);
    for (int i = 0; i < nmoved; i++) {
        char fs[64], why[128];
        char *g2 = malloc(AP_PATH_CAP);
        if (g2 && gen2c_map(op->a->g2, moved[i], fs, g2, AP_PATH_CAP, why, sizeof why) == GEN2C_MAPPED &&
            strcmp(fs, op->fs) == 0 && meta_add(op, moved[i], g2) != 0)
            rc = -1;
        free(g2);
        free(moved[i]);
    }
    free(moved);
    if (rc != 0) op_note(op, "out of memory: the metadata of moved nodes was not copied");
    meta_run(op, st_ok);
}

static void h_rename(aop *op, httpc_resp *r)
{
    char code[128];
    g2code(r, code, sizeof code);
    if (r->result == HTTPC_OK && r->status == 404 && op->attempt > 1 && strcmp(code, "SourcePathNotFound") == 0) {
        /* A re-sent rename whose first send landed (per-path order: nobody else moved it). */
    } else if (r->result != HTTPC_OK || r->status != 201) {
        op_fail_resp(op, r, "rename");
        return;
    } else {
        const char *c = httpc_resp_header(r, "x-ms-continuation");
        if (c && *c) {
            free(op->cont);
            op->cont = strdup(c);
            if (!op->cont) {
                op_finish(op, APPLY_FAILED, "out of memory");
                return;
            }
            st_rename_send(op, op->rq_path);
            return;
        }
    }
    cache_drop_tree(op->a, op->req->path);
    cache_drop_tree(op->a, op->touch[1]);
    rename_moved_meta(op);
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
        op_finish(op, APPLY_FAILED, "cannot build the rename");
        return;
    }
    g2_simple(op, target, h_rename);
}

/* The destination's type decides the target (HDFS moves a source into an existing directory). */
static void rename_with(aop *op, bool dst_is_dir)
{
    op->dst_dir = dst_is_dir;
    char *t = malloc(AP_PATH_CAP);
    if (!t || xlate_rename_target(op->g2path, op->g2dst, dst_is_dir, op->rename2, t, AP_PATH_CAP) != 0) {
        free(t);
        op_finish(op, APPLY_FAILED, "rename target too long");
        return;
    }
    free(op->g2dst);
    op->g2dst = t;
    st_rename_send(op, op->g2dst);
}

static void h_rename_probe(aop *op, httpc_resp *r)
{
    bool dir = false;
    if (r->result == HTTPC_OK && r->status == 200) {
        const char *t = httpc_resp_header(r, "x-ms-resource-type");
        dir = t && strcasecmp(t, "directory") == 0;
    } else if (!(r->result == HTTPC_OK && r->status == 404)) {
        op_fail_resp(op, r, "reading the rename destination");
        return;
    }
    rename_with(op, dir);
}

static void st_rename(aop *op)
{
    char fs2[64], why[128];
    xlate_err e;
    const char *dst = op->touch[1];
    op->g2dst = malloc(AP_PATH_CAP);
    if (!op->g2dst) {
        op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    gen2c_map_result mr = gen2c_map(op->a->g2, dst, fs2, op->g2dst, AP_PATH_CAP, why, sizeof why);
    if (mr != GEN2C_MAPPED || strcmp(fs2, op->fs) != 0) {
        op_finish(op, APPLY_DIVERGENCE, "rename to %s leaves the source's Gen2 filesystem (%s): not mirrored", dst,
                  mr == GEN2C_MAPPED ? "another filesystem" : why);
        return;
    }
    if (!*op->g2path) {
        op_finish(op, APPLY_DIVERGENCE, "rename of a mapping's filesystem root: not mirrored");
        return;
    }
    if (xlate_rename_options(param(op->req, "renameoptions"), &op->rename2, &op->overwrite, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    if (op->rename2) {
        rename_with(op, false);
        return;
    }
    if (!*op->g2dst || cache_get(op->a, dst, NULL) == 2) {
        rename_with(op, true);
        return;
    }
    if (xlate_getstatus(&op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, op->g2dst, h_rename_probe);
}

static void st_delete_send(aop *op);

static void h_delete(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && (r->status == 200 || r->status == 202)) {
        const char *c = httpc_resp_header(r, "x-ms-continuation");
        if (c && *c) {
            free(op->cont);
            op->cont = strdup(c);
            if (!op->cont) {
                op_finish(op, APPLY_FAILED, "out of memory");
                return;
            }
            st_delete_send(op);
            return;
        }
    } else if (!(r->result == HTTPC_OK && r->status == 404)) {
        op_fail_resp(op, r, "delete");
        return;
    }
    cache_drop_tree(op->a, op->req->path);
    marks_drop_tree(op->a, op->req->path);
    op_done(op);
}

static void st_delete_send(aop *op)
{
    xlate_err e;
    if (xlate_delete(param_bool(op->req, "recursive", false), op->cont, &op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, op->g2path, h_delete);
}

static void st_delete(aop *op)
{
    if (!*op->g2path) {
        op_finish(op, APPLY_DIVERGENCE, "delete of a mapping's filesystem root: not mirrored");
        return;
    }
    cache_drop_tree(op->a, op->req->path);
    st_delete_send(op);
}

/* ================================================================ metadata ops */

static void h_simple(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        op_fail_resp(op, r, op_name(op->req->op));
        return;
    }
    op_done(op);
}

static void st_acl_get(aop *op);

static void h_acl_set(aop *op, httpc_resp *r)
{
    if (r->result == HTTPC_OK && r->status == 412 && ++op->rmw < XLATE_ACL_ATTEMPTS) {
        st_acl_get(op); /* changed between our read and write: read again */
        return;
    }
    if (r->result != HTTPC_OK || r->status != 200) {
        op_fail_resp(op, r, "setAccessControl (ACL)");
        return;
    }
    op_done(op);
}

static void h_acl_get(aop *op, httpc_resp *r)
{
    if (r->result != HTTPC_OK || r->status != 200) {
        op_fail_resp(op, r, "getAccessControl");
        return;
    }
    const char *t = httpc_resp_header(r, "x-ms-resource-type");
    bool is_dir = !t || strcasecmp(t, "directory") == 0;
    dbuf acl;
    dbuf_init(&acl, 96 * 1024);
    xlate_err e;
    int rc = xlate_acl_apply(op->req->op, param(op->req, "aclspec"), httpc_resp_header(r, "x-ms-acl"),
                             httpc_resp_header(r, "x-ms-permissions"), is_dir, &acl, &e);
    if (rc == 0) rc = xlate_setacl(acl.data ? acl.data : "", httpc_resp_header(r, "ETag"), &op->rq, &e);
    dbuf_free(&acl);
    if (rc != 0) {
        op_finish(op, APPLY_FAILED, "ACL merge failed: %s", e.message);
        return;
    }
    g2_simple(op, meta_target(op->g2path), h_acl_set);
}

static void st_acl_get(aop *op)
{
    xlate_err e;
    if (xlate_getacl(&op->rq, &e) != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, meta_target(op->g2path), h_acl_get);
}

static void st_simple_meta(aop *op)
{
    xlate_err e;
    int rc;
    const apply_req *q = op->req;
    switch (q->op) {
    case WH_OP_SETPERMISSION:
        if (!param(q, "permission") || !*param(q, "permission")) {
            /* Gen1 applied its default: copy whatever it has now. */
            if (meta_add(op, q->path, op->g2path) != 0) {
                op_finish(op, APPLY_FAILED, "out of memory");
                return;
            }
            st_meta_then_ok(op);
            return;
        }
        rc = xlate_setpermission(param(q, "permission"), &op->rq, &e);
        break;
    case WH_OP_SETOWNER: rc = xlate_setowner(param(q, "owner"), param(q, "group"), &op->rq, &e); break;
    case WH_OP_SETEXPIRY: rc = xlate_expiry(param(q, "expiryoption"), param(q, "expiretime"), &op->rq, &e); break;
    default: rc = -1; snprintf(e.message, sizeof e.message, "not a metadata operation");
    }
    if (rc != 0) {
        op_finish(op, APPLY_FAILED, "%s", e.message);
        return;
    }
    g2_simple(op, meta_target(op->g2path), h_simple);
}

/* ================================================================ start */

static void op_start(aop *op)
{
    if (op->prep_err[0]) {
        op_finish(op, APPLY_FAILED, "%s", op->prep_err);
        return;
    }
    whreq_op o = op->req->op;
    if ((o == WH_OP_RENAME || o == WH_OP_DELETE || o == WH_OP_MKDIRS) && xlate_gen1_false(op->req->gen1_body)) {
        op_finish(op, APPLY_OK, "Gen1 answered false: nothing changed");
        return;
    }
    if (o == WH_OP_SETTIMES) {
        op_finish(op, APPLY_DIVERGENCE, "Gen2 cannot set modification/access times (SETTIMES)");
        return;
    }
    char why[128];
    op->g2path = malloc(AP_PATH_CAP);
    if (!op->g2path) {
        op_finish(op, APPLY_FAILED, "out of memory");
        return;
    }
    gen2c_map_result mr = gen2c_map(op->a->g2, op->req->path, op->fs, op->g2path, AP_PATH_CAP, why, sizeof why);
    if (mr == GEN2C_INVALID_NAME) {
        op_finish(op, APPLY_SKIPPED_INVALID_NAME, "Gen2 would reject this name: %s", why);
        return;
    }
    if (mr == GEN2C_UNMAPPED) {
        char fs2[64];
        if (o == WH_OP_RENAME && gen2c_map(op->a->g2, op->touch[1], fs2, op->g2path, AP_PATH_CAP, why, sizeof why) ==
                                     GEN2C_MAPPED) {
            op_finish(op, APPLY_DIVERGENCE, "rename from an unmapped path into a mapped one: not mirrored");
            return;
        }
        op_finish(op, APPLY_SKIPPED_UNMAPPED, "no mapping covers this path");
        return;
    }
    switch (o) {
    case WH_OP_CREATE: probe_ancestors(op, st_create); break;
    case WH_OP_MKDIRS: probe_ancestors(op, st_mkdirs); break;
    case WH_OP_APPEND: st_append_len(op); break;
    case WH_OP_CONCURRENTAPPEND:
    case WH_OP_CONCAT:
    case WH_OP_MSCONCAT: st_recopy(op); break;
    case WH_OP_RENAME: st_rename(op); break;
    case WH_OP_DELETE: st_delete(op); break;
    case WH_OP_SETPERMISSION:
    case WH_OP_SETOWNER:
    case WH_OP_SETEXPIRY: st_simple_meta(op); break;
    case WH_OP_SETACL:
    case WH_OP_MODIFYACLENTRIES:
    case WH_OP_REMOVEACLENTRIES:
    case WH_OP_REMOVEACL:
    case WH_OP_REMOVEDEFAULTACL: st_acl_get(op); break;
    default: op_finish(op, APPLY_DIVERGENCE, "%s has no Gen2 translation", op_name(o)); break;
    }
}

/* ================================================================ worker: preparation, order, timers */

/* Which Gen1 paths the operation touches (worker thread, outside the lock). */
static void op_prepare(aop *op)
{
    const apply_req *q = op->req;
    if (path_list_add(&op->touch, &op->ntouch, q->path) != 0) goto oom;
    if (q->op == WH_OP_RENAME) {
        whreq_err we;
        char *dst = NULL;
        const char *d = param(q, "destination");
        if (!d || whreq_norm_path(d, &dst, &we) != 0) {
            snprintf(op->prep_err, sizeof op->prep_err, "RENAME without a valid destination");
            return;
        }
        int rc = path_list_add(&op->touch, &op->ntouch, dst);
        free(dst);
        if (rc != 0) goto oom;
    } else if (q->op == WH_OP_CONCAT || q->op == WH_OP_MSCONCAT) {
        char *body = NULL;
        size_t blen = 0;
        if (q->op == WH_OP_MSCONCAT && q->body && q->body->len > 0) {
            blen = q->body->len > AP_CONCAT_BODY_MAX ? AP_CONCAT_BODY_MAX : (size_t)q->body->len;
            body = malloc(blen + 1);
            if (!body) goto oom;
            ssize_t n = pread(q->body->fd, body, blen, 0);
            if (n < 0) {
                free(body);
                snprintf(op->prep_err, sizeof op->prep_err, "cannot read the MSCONCAT body: %s", strerror(errno));
                return;
            }
            blen = (size_t)n;
            body[blen] = 0;
        }
        xlate_err e;
        int rc = xlate_concat_sources(q->op, param(q, "sources"), body, blen, &op->srcs, &e);
        free(body);
        if (rc != 0) {
            snprintf(op->prep_err, sizeof op->prep_err, "%s", e.message);
            return;
        }
        for (int i = 0; i < op->srcs.n; i++)
            if (path_list_add(&op->touch, &op->ntouch, op->srcs.v[i]) != 0) goto oom;
        if (q->op == WH_OP_MSCONCAT && param_bool(q, "deletesourcedirectory", false)) {
            op->srcdir = xlate_concat_source_dir(&op->srcs, q->path);
            if (op->srcdir && path_list_add(&op->touch, &op->ntouch, op->srcdir) != 0) goto oom;
        }
    }
    return;
oom:
    snprintf(op->prep_err, sizeof op->prep_err, "out of memory");
}

static bool ops_conflict(const aop *x, const aop *y)
{
    for (int i = 0; i < x->ntouch; i++)
        for (int j = 0; j < y->ntouch; j++)
            if (xlate_path_related(x->touch[i], y->touch[j])) return true;
    return false;
}

/* Pick operations that may start now (a->mu held); they are marked started. */
static int collect_runnable(applier *a, aop **out, int max)
{
    int n = 0, scanned = 0;
    for (aop *op = a->head; op && n < max && scanned < AP_SCAN_MAX; op = op->next, scanned++) {
        if (op->started) continue;
        bool blocked = false;
        for (aop *e = a->head; e != op && !blocked; e = e->next) blocked = ops_conflict(e, op);
        if (blocked) continue;
        op->started = true;
        a->in_flight++;
        out[n++] = op;
    }
    return n;
}

static void *worker_main(void *arg)
{
    applier *a = arg;
    aop *batch[AP_MAX_INFLIGHT];
    pthread_mutex_lock(&a->mu);
    for (;;) {
        if (a->in_head) {
            aop *list = a->in_head;
            a->in_head = a->in_tail = NULL;
            pthread_mutex_unlock(&a->mu);
            for (aop *op = list; op; op = op->qnext) op_prepare(op);
            pthread_mutex_lock(&a->mu);
            while (list) {
                aop *op = list;
                list = op->qnext;
                op->qnext = NULL;
                op->prev = a->tail;
                if (a->tail) a->tail->next = op;
                else a->head = op;
                a->tail = op;
            }
            a->kick = true;
            continue;
        }
        int64_t now = mono_ms();
        if (a->timers && (a->abandon || a->timers->due_ms <= now)) {
            aop *op = a->timers;
            a->timers = op->qnext;
            op->qnext = NULL;
            bool ab = a->abandon;
            pthread_mutex_unlock(&a->mu);
            if (ab) op_finish(op, APPLY_FAILED, "the applier stopped before this write was mirrored");
            else resend(op);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (a->kick) {
            a->kick = false;
            int n = 0;
            if (a->abandon) {
                for (aop *op = a->head; op && n < AP_MAX_INFLIGHT; op = op->next)
                    if (!op->started) {
                        op->started = true;
                        a->in_flight++;
                        batch[n++] = op;
                    }
                if (n == AP_MAX_INFLIGHT) a->kick = true;
            } else if (a->in_flight < AP_MAX_INFLIGHT) {
                n = collect_runnable(a, batch, (int)(AP_MAX_INFLIGHT - a->in_flight));
            }
            bool ab = a->abandon;
            pthread_mutex_unlock(&a->mu);
            for (int i = 0; i < n; i++) {
                if (ab) op_finish(batch[i], APPLY_FAILED, "the applier stopped before this write was mirrored");
                else op_start(batch[i]);
            }
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (a->quit) break;
        if (a->timers) {
            int64_t wait = a->timers->due_ms - now;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        } else {
            pthread_cond_wait(&a->cv, &a->mu);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ================================================================ public */

int applier_new(const dp_config *cfg, httpc *http, gen1c *g1, applier **out, char *err, size_t errlen)
{
    *out = NULL;
    applier *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "applier: out of memory");
        return -1;
    }
    a->cfg = cfg;
    a->http = http;
    a->g1 = g1;
    if (getrandom(&a->rng, sizeof a->rng, 0) != (ssize_t)sizeof a->rng || a->rng == 0)
        a->rng = (uint64_t)real_ms() | 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, &ca);
    pthread_cond_init(&a->idle, &ca);
    pthread_condattr_destroy(&ca);
    if (gen2c_new(cfg, http, &a->g2, err, errlen) != 0) goto fail;
    if (pthread_create(&a->worker, NULL, worker_main, a) != 0) {
        snprintf(err, errlen, "applier: cannot start its thread");
        goto fail;
    }
    a->worker_started = true;
    *out = a;
    return 0;
fail:
    applier_destroy(a);
    return -1;
}

int applier_submit(applier *a, apply_req *req, void (*done)(void *ud, const apply_result *res), void *ud)
{
    aop *op = calloc(1, sizeof *op);
    if (!op) {
        apply_req_free(req);
        return -1;
    }
    op->a = a;
    op->req = req;
    op->done = done;
    op->ud = ud;
    op->tmpfd = -1;
    op->data_fd = -1;
    op->outcome = APPLY_OK;
    pthread_mutex_lock(&a->mu);
    if (a->stopping) {
        pthread_mutex_unlock(&a->mu);
        op_free(op);
        return -1;
    }
    if (a->in_tail) a->in_tail->qnext = op;
    else a->in_head = op;
    a->in_tail = op;
    a->pending++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

uint64_t applier_pending(applier *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->pending;
    pthread_mutex_unlock(&a->mu);
    return n;
}

static json_t *ring_json(const ap_ring *ring)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < ring->n; i++) {
        const ap_rec *r = &ring->r[(ring->next - 1 - i + AP_RING) % AP_RING]; /* newest first */
        json_array_append_new(arr, json_pack("{s:I,s:I,s:s,s:s,s:s}", "seq", (json_int_t)r->seq, "time_ms",
                                             (json_int_t)r->time_ms, "op", op_name(r->op), "path", r->path, "detail",
                                             r->detail));
    }
    return arr;
}

int applier_status_json(applier *a, dbuf *out)
{
    pthread_mutex_lock(&a->mu);
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "pending", (json_int_t)a->pending, "in_flight",
                          (json_int_t)a->in_flight, "applied", (json_int_t)a->n_applied, "skipped",
                          (json_int_t)(a->n_unmapped + a->n_invalid), "skipped_unmapped", (json_int_t)a->n_unmapped,
                          "skipped_invalid_name", (json_int_t)a->n_invalid, "divergence_count",
                          (json_int_t)a->n_divergence, "failure_count", (json_int_t)a->n_failed);
    if (o) {
        json_object_set_new(o, "divergences", ring_json(&a->divs));
        json_object_set_new(o, "failures", ring_json(&a->fails));
    }
    pthread_mutex_unlock(&a->mu);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = s ? dbuf_adds(out, s) : -ENOMEM;
    free(s);
    return rc == 0 ? 0 : -1;
}

static void applier_destroy(applier *a)
{
    if (!a) return;
    gen2c_free(a->g2);
    cache_clear(a);
    for (int i = 0; i < a->nmarks; i++) free(a->marks[i]);
    free(a->marks);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_cond_destroy(&a->idle);
    free(a);
}

void applier_stop(applier *a, unsigned timeout_ms)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    while (a->pending > 0)
        if (pthread_cond_timedwait(&a->idle, &a->mu, &ts) == ETIMEDOUT) break;
    if (a->pending > 0) {
        LOGW("msg=\"applier stopping with writes not mirrored\" pending=%" PRIu64, a->pending);
        a->abandon = true; /* queued and parked operations fail now; running ones at their next step */
        a->kick = true;
    }
    a->quit = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->worker_started) pthread_join(a->worker, NULL);
    /* While httpc still runs (gen2client's shut-down order): calls waiting for a token end now. */
    gen2c_stop(a->g2);
    pthread_mutex_lock(&a->mu);
    bool now = a->pending == 0;
    if (!now) a->orphaned = true; /* the last running operation frees the applier (httpc_stop cancels them) */
    pthread_mutex_unlock(&a->mu);
    if (now) applier_destroy(a);
}
