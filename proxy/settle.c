/*
 * settle: the checks that settle a write whose Gen1 outcome is unknown (the rules are in settle.h).
 *
 * Each settle is one entry. It is either in the due list (sorted by due time, guarded by mu) waiting
 * for the thread to start its next check, or out at Gen1 (owned by the check's callbacks on the httpc
 * thread), never both: whoever holds it moves it on. The thread only pops due entries and submits their
 * look-ups; the judging happens in the look-up's callback, which ends the entry or puts it back in the
 * list with a new due time. stl_stop empties the list (those end as unknown at once); an entry out at
 * Gen1 sees `stopping` when its answer comes back and ends then.
 */
#include "settle.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xlate.h"

#define STL_ROUNDS 3            /* check 0 (at once), 1 (after settle_ms), 2 (after another settle_ms) */
#define STL_FS_MAX (64u << 10)  /* a FileStatus answer */

/* What one GETFILESTATUS said. */
typedef struct stl_fs {
    enum { FS_NONE = 0, FS_ABSENT, FS_PRESENT, FS_FAILED } st;
    bool dir;
    uint64_t len;
    unsigned perm;
    char owner[256], group[256];
    int64_t mtime, atime;
} stl_fs;

/* How a check judged the write. */
typedef enum judged { J_APPLIED, J_NOT_APPLIED, J_NEITHER, J_UNDECIDABLE } judged;

typedef struct stl_ent {
    struct stl_ent *next;
    stl *s;
    whreq_op op;
    char *path, *dst;           /* dst: RENAME's destination (normalised), else NULL */
    whreq_param *params;        /* the writer's parameters (copies) */
    int nparams;
    uint64_t body_len;
    char *authorization;
    int round;                  /* checks begun */
    bool have_l0;               /* check 0 saw the file: its length (APPEND without offset) */
    uint64_t l0;
    stl_fs src, dfs;
    struct timespec due;
    void (*done)(void *ud, stl_verdict v);
    void *ud;
} stl_ent;

struct stl {
    gen1c *g1;
    unsigned settle_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    stl_ent *head;              /* due list, by due time */
    bool stopping, started;
    unsigned pending;           /* begun and not ended */
    pthread_t thread;
};

const char *stl_verdict_name(stl_verdict v)
{
    switch (v) {
    case STL_APPLIED: return "applied";
    case STL_NOT_APPLIED: return "not_applied";
    case STL_UNKNOWN: return "unknown";
    }
    return "unknown";
}

static void ent_free(stl_ent *e)
{
    free(e->path);
    free(e->dst);
    for (int i = 0; i < e->nparams; i++) {
        free(e->params[i].name);
        free(e->params[i].value);
    }
    free(e->params);
    free(e->authorization);
    free(e);
}

static const char *param(const stl_ent *e, const char *name)
{
    for (int i = 0; i < e->nparams; i++)
        if (strcmp(e->params[i].name, name) == 0) return e->params[i].value;
    return NULL;
}

/* A decimal integer parameter: true and *v when present and well formed. */
static bool param_i64(const stl_ent *e, const char *name, int64_t *v)
{
    const char *s = param(e, name);
    if (!s || !*s) return false;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *v = x;
    return true;
}

/* ---- the end ---- */

static void finish(stl_ent *e, stl_verdict v)
{
    stl *s = e->s;
    void (*done)(void *, stl_verdict) = e->done;
    void *ud = e->ud;
    ent_free(e);
    pthread_mutex_lock(&s->mu);
    s->pending--;
    pthread_mutex_unlock(&s->mu);
    done(ud, v);
}

/* Put e in the due list delay_ms from now (or end it as unknown when stopping). */
static void schedule(stl_ent *e, unsigned delay_ms)
{
    stl *s = e->s;
    clock_gettime(CLOCK_MONOTONIC, &e->due);
    e->due.tv_sec += delay_ms / 1000;
    e->due.tv_nsec += (long)(delay_ms % 1000) * 1000000L;
    if (e->due.tv_nsec >= 1000000000L) {
        e->due.tv_sec++;
        e->due.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        finish(e, STL_UNKNOWN);
        return;
    }
    stl_ent **pp = &s->head;
    while (*pp && ((*pp)->due.tv_sec < e->due.tv_sec ||
                   ((*pp)->due.tv_sec == e->due.tv_sec && (*pp)->due.tv_nsec <= e->due.tv_nsec)))
        pp = &(*pp)->next;
    e->next = *pp;
    *pp = e;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- judging ---- */

static judged judge_append(stl_ent *e)
{
    const stl_fs *f = &e->src;
    if (f->st != FS_PRESENT || f->dir) return f->st == FS_ABSENT ? J_NOT_APPLIED : J_NEITHER;
    int64_t off;
    if (param_i64(e, "offset", &off) && off >= 0) {
        if (f->len == (uint64_t)off + e->body_len) return J_APPLIED;
        return f->len == (uint64_t)off ? J_NOT_APPLIED : J_NEITHER;
    }
    /* No offset: only growth by exactly the body since check 0 tells; an unchanged length after the
     * fence cannot say whether it landed before check 0. */
    if (!e->have_l0) {
        e->have_l0 = true;
        e->l0 = f->len;
        return J_NEITHER;
    }
    if (e->body_len > 0 && f->len == e->l0 + e->body_len) return J_APPLIED;
    return f->len == e->l0 ? J_UNDECIDABLE : J_NEITHER;
}

static judged judge(stl_ent *e)
{
    const stl_fs *f = &e->src;
    if (f->st == FS_FAILED) return J_NEITHER;
    switch (e->op) {
    case WH_OP_CREATE:
        if (f->st == FS_ABSENT) return J_NOT_APPLIED;
        return !f->dir && f->len == e->body_len ? J_APPLIED : J_NEITHER;
    case WH_OP_APPEND:
    case WH_OP_CONCURRENTAPPEND:
        return judge_append(e);
    case WH_OP_MKDIRS:
        return f->st == FS_PRESENT && f->dir ? J_APPLIED : J_NOT_APPLIED;
    case WH_OP_DELETE:
        return f->st == FS_ABSENT ? J_APPLIED : J_NOT_APPLIED;
    case WH_OP_RENAME:
        if (f->st == FS_PRESENT) return J_NOT_APPLIED;
        if (e->dfs.st == FS_FAILED) return J_NEITHER;
        return e->dfs.st == FS_PRESENT ? J_APPLIED : J_NEITHER;
    case WH_OP_SETPERMISSION: {
        const char *want = param(e, "permission");
        if (f->st != FS_PRESENT) return J_NOT_APPLIED;
        unsigned w = want && *want ? (unsigned)strtoul(want, NULL, 8) : 0755u; /* HDFS's default */
        return (f->perm & 07777u) == (w & 07777u) ? J_APPLIED : J_NOT_APPLIED;
    }
    case WH_OP_SETOWNER: {
        const char *o = param(e, "owner"), *g = param(e, "group");
        if (f->st != FS_PRESENT || ((!o || !*o) && (!g || !*g))) return J_NOT_APPLIED;
        bool ok = (!o || !*o || strcmp(o, f->owner) == 0) && (!g || !*g || strcmp(g, f->group) == 0);
        return ok ? J_APPLIED : J_NOT_APPLIED;
    }
    case WH_OP_SETTIMES: {
        int64_t mt = -1, at = -1;
        if (f->st != FS_PRESENT) return J_NOT_APPLIED;
        bool hm = param_i64(e, "modificationtime", &mt) && mt != -1;
        bool ha = param_i64(e, "accesstime", &at) && at != -1;
        if (!hm && !ha) return J_UNDECIDABLE;
        bool ok = (!hm || f->mtime == mt) && (!ha || f->atime == at);
        return ok ? J_APPLIED : J_NOT_APPLIED;
    }
    default:
        return J_UNDECIDABLE;
    }
}

/* Check e->round - 1 came back: end e or schedule the next check. */
static void judged_next(stl_ent *e)
{
    judged j = judge(e);
    int done_round = e->round; /* 1 after check 0 */
    pthread_mutex_lock(&e->s->mu);
    bool stopping = e->s->stopping;
    pthread_mutex_unlock(&e->s->mu);
    if (j == J_APPLIED) {
        finish(e, STL_APPLIED); /* a visible effect is final: the path's later writes are held */
        return;
    }
    if (done_round >= 2 && j == J_NOT_APPLIED) {
        finish(e, STL_NOT_APPLIED); /* the fence has passed */
        return;
    }
    if (stopping || (done_round >= 2 && j == J_UNDECIDABLE) || done_round >= STL_ROUNDS) {
        finish(e, STL_UNKNOWN);
        return;
    }
    schedule(e, e->s->settle_ms);
}

/* ---- look-ups ---- */

static void parse_fs(stl_fs *f, const httpc_resp *resp)
{
    memset(f, 0, sizeof *f);
    f->st = FS_FAILED;
    if (resp->result != HTTPC_OK) return;
    if (resp->status == 404) {
        f->st = FS_ABSENT;
        return;
    }
    if (resp->status != 200 || !resp->body.data) return;
    json_t *doc = json_loadb(resp->body.data, resp->body.len, 0, NULL);
    json_t *fs = doc ? json_object_get(doc, "FileStatus") : NULL;
    if (json_is_object(fs)) {
        const char *type = json_string_value(json_object_get(fs, "type"));
        const char *perm = json_string_value(json_object_get(fs, "permission"));
        const char *owner = json_string_value(json_object_get(fs, "owner"));
        const char *group = json_string_value(json_object_get(fs, "group"));
        json_t *len = json_object_get(fs, "length");
        f->dir = type && strcmp(type, "DIRECTORY") == 0;
        f->len = json_is_integer(len) && json_integer_value(len) > 0 ? (uint64_t)json_integer_value(len) : 0;
        f->perm = perm ? (unsigned)strtoul(perm, NULL, 8) : 0;
        snprintf(f->owner, sizeof f->owner, "%s", owner ? owner : "");
        snprintf(f->group, sizeof f->group, "%s", group ? group : "");
        f->mtime = (int64_t)json_integer_value(json_object_get(fs, "modificationTime"));
        f->atime = (int64_t)json_integer_value(json_object_get(fs, "accessTime"));
        f->st = FS_PRESENT;
    }
    json_decref(doc);
}

static int lookup(stl_ent *e, const char *path, void (*cb)(void *, httpc_resp *))
{
    dbuf q;
    dbuf_init(&q, 64 * 1024);
    int rc = xlate_gen1_query("GETFILESTATUS", e->params, e->nparams, NULL, &q);
    if (rc == 0)
        rc = gen1c_get(e->s->g1, path, q.data, e->authorization, HTTPC_BODY_MEMORY, STL_FS_MAX, -1, cb, e);
    dbuf_free(&q);
    return rc == 0 ? 0 : -1;
}

static void on_dst(void *ud, httpc_resp *resp)
{
    stl_ent *e = ud;
    parse_fs(&e->dfs, resp);
    httpc_resp_free(resp);
    free(resp);
    judged_next(e);
}

static void on_src(void *ud, httpc_resp *resp)
{
    stl_ent *e = ud;
    parse_fs(&e->src, resp);
    httpc_resp_free(resp);
    free(resp);
    if (e->dst && e->src.st == FS_ABSENT) {
        if (lookup(e, e->dst, on_dst) == 0) return;
        e->dfs.st = FS_FAILED;
    }
    judged_next(e);
}

/* The thread: start e's next check (e is out of the list: it belongs to this call). */
static void check(stl_ent *e)
{
    e->round++;
    memset(&e->dfs, 0, sizeof e->dfs);
    if (lookup(e, e->path, on_src) == 0) return;
    e->src.st = FS_FAILED;
    judged_next(e);
}

static void *settle_main(void *arg)
{
    stl *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        if (!s->head) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        stl_ent *e = s->head;
        if (e->due.tv_sec > now.tv_sec || (e->due.tv_sec == now.tv_sec && e->due.tv_nsec > now.tv_nsec)) {
            pthread_cond_timedwait(&s->cv, &s->mu, &e->due);
            continue;
        }
        s->head = e->next;
        e->next = NULL;
        pthread_mutex_unlock(&s->mu);
        check(e);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- life cycle ---- */

int stl_new(gen1c *g1, unsigned settle_ms, stl **out)
{
    stl *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->g1 = g1;
    s->settle_ms = settle_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&s->thread, NULL, settle_main, s);
    if (rc != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -rc;
    }
    s->started = true;
    *out = s;
    return 0;
}

int stl_start(stl *s, const whreq *wr, uint64_t body_len, const char *authorization,
              void (*done)(void *ud, stl_verdict v), void *ud)
{
    stl_ent *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    e->s = s;
    e->op = wr->op;
    e->body_len = body_len;
    e->done = done;
    e->ud = ud;
    e->path = strdup(wr->path ? wr->path : "/");
    bool oom = !e->path;
    if (!oom && wr->nparams > 0) {
        e->params = calloc((size_t)wr->nparams, sizeof *e->params);
        oom = !e->params;
        for (int i = 0; !oom && i < wr->nparams; i++) {
            e->params[i].name = strdup(wr->params[i].name);
            e->params[i].value = strdup(wr->params[i].value);
            e->nparams = i + 1;
            oom = !e->params[i].name || !e->params[i].value;
        }
    }
    if (!oom && authorization) oom = !(e->authorization = strdup(authorization));
    if (!oom && wr->op == WH_OP_RENAME) {
        const char *d = whreq_param_get(wr, "destination");
        whreq_err we;
        if (d && whreq_norm_path(d, &e->dst, &we) != 0) e->dst = NULL; /* Gen1 refuses it: judged by the source */
    }
    if (oom) {
        ent_free(e);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    if (!stopping) s->pending++;
    pthread_mutex_unlock(&s->mu);
    if (stopping) {
        ent_free(e);
        return -ESHUTDOWN;
    }
    schedule(e, 0); /* check 0 at once */
    return 0;
}

unsigned stl_pending(stl *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->pending;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void stl_stop(stl *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    stl_ent *list = s->head;
    s->head = NULL;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started) {
        pthread_join(s->thread, NULL);
        s->started = false;
    }
    while (list) {
        stl_ent *next = list->next;
        finish(list, STL_UNKNOWN);
        list = next;
    }
}

void stl_free(stl *s)
{
    if (!s) return;
    stl_stop(s);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
