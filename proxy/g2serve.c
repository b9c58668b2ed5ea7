/*
 * g2serve: workers, queue, per-path write locks, listing cursors, Gen2 exchanges and answers (the
 * ops themselves are in g2serve_ops.c; the module is described in g2serve.h).
 */
#include "g2serve_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "reserved.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Gen2 exchanges ---- */

g2resp *g2s__call(g2s_ctx *c, const char *method, const char *path, const char *query, const char *const *hdrs,
                  const void *mem, int fd, uint64_t off, uint64_t len, size_t out_max)
{
    gen2c_call call = {.method = method, .fs = c->fs, .path = path, .query = query,
                       .client_request_id = c->rq->rid, .out = out_max ? HTTPC_BODY_MEMORY : HTTPC_BODY_DISCARD,
                       .out_max = out_max};
    for (int i = 0; hdrs && hdrs[i] && i < 23; i++) call.headers[i] = hdrs[i];
    if (fd >= 0 && len > 0) {
        call.in = HTTPC_IN_FD;
        call.in_fd = fd;
        call.in_off = off;
        call.in_len = len;
    } else if (mem && len > 0) {
        call.in = HTTPC_IN_MEMORY;
        call.in_mem = mem;
        call.in_len = len;
    }
    httpc_sync sy;
    httpc_sync_init(&sy);
    call.done = httpc_sync_done;
    call.ud = &sy;
    metrics_inc(c->s->mx_exchanges);
    g2resp *r = NULL;
    if (gen2c_send(c->s->g2, &call) == 0) {
        r = httpc_sync_wait(&sy);
    } else {
        httpc_sync_drop(&sy);
    }
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) abort(); /* small control structure: out of memory here is fatal (STYLE 10) */
        r->result = HTTPC_E_CANCELLED;
        snprintf(r->error, sizeof r->error, "the request could not be sent to Gen2");
    }
    if (r->result != HTTPC_OK) metrics_inc(c->s->mx_nothing);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        /* a modifying request: Gen2 changed (2xx), or may have (it went out, no answer came) */
        bool lost = r->result != HTTPC_OK && r->sent;
        if (g2s__ok(r) || lost) c->changed = true;
        c->lost = lost;
    }
    return r;
}

g2resp *g2s__xcall(g2s_ctx *c, const char *path, const xlate_g2req *x)
{
    return g2s__call(c, x->method, path, x->query, (const char *const *)x->headers, NULL, -1, 0, 0, 64 * 1024);
}

void g2s__free(g2resp *r)
{
    if (!r) return;
    httpc_resp_free(r);
    free(r);
}

bool g2s__ok(const g2resp *r)
{
    return r && r->result == HTTPC_OK && r->status >= 200 && r->status < 300;
}

const char *g2s__code(const g2resp *r, char *buf, size_t cap)
{
    if (!r || r->result != HTTPC_OK) {
        if (cap) buf[0] = '\0';
        return buf;
    }
    return gen2c_error_code(r, buf, cap);
}

/* ---- answers ---- */

static void deliver(g2s_ctx *c, const g2s_answer *a)
{
    if (c->answered) return;
    g2s__fleet_release(c); /* before the answer: once answered, the request may be gone */
    c->answered = true;
    g2s_answer full = *a;
    full.changed = c->changed;
    full.lost = c->lost;
    full.offset = c->offset;
    full.mtime_ms = c->mtime_ms;
    c->rq->answer(c->rq->ud, &full);
}

void g2s__answer(g2s_ctx *c, int status, const char *json, size_t len)
{
    g2s_answer a = {.status = status, .content_type = json ? "application/json; charset=utf-8" : NULL,
                    .body = json, .len = json ? len : 0};
    deliver(c, &a);
}

static void fail_retry(g2s_ctx *c, int status, const char *exception, int retry_after, const char *msg)
{
    whreq_err e = {.status = status, .exception = exception};
    snprintf(e.message, sizeof e.message, "%s", msg);
    dbuf b;
    dbuf_init(&b, 4096);
    int rc = whreq_err_json(&e, &b);
    g2s_answer a = {.status = status, .content_type = "application/json; charset=utf-8",
                    .body = rc == 0 && b.data ? b.data : "", .len = rc == 0 ? b.len : 0,
                    .retry_after_s = retry_after, .exception = exception};
    LOGD("msg=\"gen2-only refused\" rid=%s op=%s path=\"%s\" status=%d exception=%s message=\"%s\"", c->rq->rid,
         c->wr->info->name, c->wr->path, status, exception, e.message);
    deliver(c, &a);
    dbuf_free(&b);
}

void g2s__fail(g2s_ctx *c, int status, const char *exception, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_retry(c, status, exception, status == 503 || status == 429 ? G2S_RETRY_AFTER_S : 0, msg);
}

void g2s__fail_err(g2s_ctx *c, const whreq_err *e)
{
    fail_retry(c, e->status, e->exception, e->status == 503 ? G2S_RETRY_AFTER_S : 0, e->message);
}

void g2s__fail_gen2(g2s_ctx *c, const g2resp *r, const char *what)
{
    if (!r || r->result != HTTPC_OK) {
        LOGW("msg=\"gen2-only: no answer from Gen2\" rid=%s op=%s result=%s detail=\"%s\"", c->rq->rid,
             c->wr->info->name, r ? httpc_result_str(r->result) : "-", r ? r->error : "");
        fail_retry(c, 503, "RetriableException", G2S_RETRY_AFTER_S,
                   r && r->result == HTTPC_E_TIMEOUT ? "Gen2 did not answer in time; retry later"
                                                     : "Gen2 is unreachable; retry later");
        return;
    }
    char code[128];
    g2s__code(r, code, sizeof code);
    g2a_error e = g2a_error_of(r->status, code);
    char msg[1024]; /* whreq_err keeps the first 255 bytes */
    if (strcmp(code, "FilesystemNotFound") == 0 || strcmp(code, "ContainerNotFound") == 0)
        snprintf(msg, sizeof msg,
                 "The Gen2 filesystem %s that %.300s maps to does not exist (Gen2 answered %ld %s); an operator must "
                 "create it",
                 c->fs, what, r->status, code);
    else if (e.status == 404)
        snprintf(msg, sizeof msg, "File/Folder does not exist: %.300s", what);
    else
        snprintf(msg, sizeof msg, "%.300s: Gen2 answered %ld %s", what, r->status, code[0] ? code : "(no error code)");
    int ra = 0;
    if (e.retry_after) {
        const char *v = httpc_resp_header(r, "Retry-After");
        int64_t ms = v ? xlate_retry_after_ms(v, 0) : -1;
        ra = ms > 0 ? (int)((ms + 999) / 1000) : G2S_RETRY_AFTER_S;
    }
    fail_retry(c, e.status, e.exception, ra, msg);
}

void g2s__answer_bool(g2s_ctx *c, bool v)
{
    const char *t = v ? "{\"boolean\":true}" : "{\"boolean\":false}";
    g2s__answer(c, 200, t, strlen(t));
}

int g2s__map(g2s_ctx *c, const char *gen1_path, char fs[64], char *path, size_t cap)
{
    char why[200] = "";
    switch (gen2c_map(c->s->g2, gen1_path, fs, path, cap, why, sizeof why)) {
    case GEN2C_MAPPED:
        if (!dp_reserved_g2(path)) return 0;
        /* the fleet's directory (phase record, members): never seen or touched through the Gen1 API */
        g2s__fail(c, 403, "AccessControlException", "Permission denied: %s " DP_RESERVED_WHY, gen1_path);
        return -1;
    case GEN2C_UNMAPPED:
        g2s__fail(c, 403, "AccessControlException",
                  "Permission denied: %s is outside the paths dualpipe serves (gen2.mappings)", gen1_path);
        return -1;
    case GEN2C_INVALID_NAME:
    default:
        g2s__fail(c, 400, "IllegalArgumentException", "Gen2 cannot hold the name %s: %s", gen1_path, why);
        return -1;
    }
}

/* ---- per-path locks ---- */

static char *lock_key(const char *fs, const char *path)
{
    size_t n = strlen(fs) + strlen(path) + 2;
    char *k = malloc(n);
    if (!k) abort();
    snprintf(k, n, "%s/%s", fs, path);
    return k;
}

void g2s__lock(g2s *s, const char *fs, const char *path)
{
    char *key = lock_key(fs, path);
    pthread_mutex_lock(&s->mu);
    g2s_lock *l = s->locks;
    while (l && strcmp(l->key, key) != 0) l = l->next;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l) abort();
        l->key = key;
        key = NULL;
        pthread_cond_init(&l->cv, NULL);
        l->next = s->locks;
        s->locks = l;
    }
    l->refs++;
    if (l->held) metrics_inc(s->mx_lock_waits);
    while (l->held) pthread_cond_wait(&l->cv, &s->mu);
    l->held = true;
    pthread_mutex_unlock(&s->mu);
    free(key);
}

void g2s__unlock(g2s *s, const char *fs, const char *path)
{
    char *key = lock_key(fs, path);
    pthread_mutex_lock(&s->mu);
    g2s_lock **pp = &s->locks;
    while (*pp && strcmp((*pp)->key, key) != 0) pp = &(*pp)->next;
    g2s_lock *l = *pp;
    if (l) {
        l->held = false;
        if (--l->refs == 0) {
            *pp = l->next;
            pthread_cond_destroy(&l->cv);
            free(l->key);
            free(l);
        } else {
            pthread_cond_signal(&l->cv);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(key);
}

/* ---- leases ---- */

/* The lease of key, dropping stale ones on the way (under mu). */
static g2s_lease **lease_find(g2s *s, const char *key, int64_t now)
{
    g2s_lease **pp = &s->leases;
    while (*pp) {
        g2s_lease *l = *pp;
        if (l->expiry_ms <= now) {
            *pp = l->next;
            free(l->key);
            free(l);
            continue;
        }
        if (strcmp(l->key, key) == 0) return pp;
        pp = &l->next;
    }
    return NULL;
}

int g2s__lease_check(g2s *s, const char *fs, const char *path, const char *id)
{
    char *key = lock_key(fs, path);
    pthread_mutex_lock(&s->mu);
    g2s_lease **pp = lease_find(s, key, mono_ms());
    int rc = pp && strcmp((*pp)->id, id ? id : "") != 0 ? -1 : 0;
    pthread_mutex_unlock(&s->mu);
    free(key);
    return rc;
}

void g2s__lease_after(g2s *s, const char *fs, const char *path, const char *id, bool hold)
{
    if (!id || !*id) return;
    char *key = lock_key(fs, path);
    pthread_mutex_lock(&s->mu);
    int64_t now = mono_ms();
    g2s_lease **pp = lease_find(s, key, now);
    if (pp && !hold) {
        g2s_lease *l = *pp;
        *pp = l->next;
        free(l->key);
        free(l);
    } else if (pp) {
        (*pp)->expiry_ms = now + G2S_LEASE_MS;
    } else if (hold) {
        g2s_lease *l = calloc(1, sizeof *l);
        if (!l) abort();
        l->key = key;
        key = NULL;
        snprintf(l->id, sizeof l->id, "%s", id);
        l->expiry_ms = now + G2S_LEASE_MS;
        l->next = s->leases;
        s->leases = l;
    }
    pthread_mutex_unlock(&s->mu);
    free(key);
}

void g2s__lease_drop(g2s *s, const char *fs, const char *path)
{
    char *key = lock_key(fs, path);
    pthread_mutex_lock(&s->mu);
    g2s_lease **pp = lease_find(s, key, mono_ms());
    if (pp) {
        g2s_lease *l = *pp;
        *pp = l->next;
        free(l->key);
        free(l);
    }
    pthread_mutex_unlock(&s->mu);
    free(key);
}

/* ---- listing cursors ---- */

static char *cursor_key(const char *fs, const char *dir, const char *after)
{
    size_t n = strlen(fs) + strlen(dir) + strlen(after) + 3;
    char *k = malloc(n);
    if (!k) abort();
    snprintf(k, n, "%s\n%s\n%s", fs, dir, after);
    return k;
}

void g2s__cursor_put(g2s *s, const char *fs, const char *dir, const char *after, const char *token)
{
    char *key = cursor_key(fs, dir, after);
    char *tok = strdup(token);
    if (!tok) abort();
    pthread_mutex_lock(&s->mu);
    g2s_cursor *cu = &s->cursors[s->cursor_next];
    s->cursor_next = (s->cursor_next + 1) % G2S_CURSORS;
    free(cu->key);
    free(cu->token);
    cu->key = key;
    cu->token = tok;
    pthread_mutex_unlock(&s->mu);
}

char *g2s__cursor_get(g2s *s, const char *fs, const char *dir, const char *after)
{
    char *key = cursor_key(fs, dir, after);
    char *tok = NULL;
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < G2S_CURSORS && !tok; i++) {
        /* newest first: the same position listed twice keeps the latest token */
        g2s_cursor *cu = &s->cursors[(s->cursor_next + G2S_CURSORS - 1 - i) % G2S_CURSORS];
        if (cu->key && strcmp(cu->key, key) == 0) tok = strdup(cu->token);
    }
    pthread_mutex_unlock(&s->mu);
    free(key);
    return tok;
}

/* ---- workers ---- */

static void serve_one(g2s *s, const g2s_request *rq)
{
    g2s_ctx c = {.s = s, .rq = rq, .wr = rq->wr, .offset = -1, .mtime_ms = -1};
    if (s->ids) c.map = idm_watch_get(s->ids);
    if (g2s__map(&c, rq->wr->path, c.fs, c.path, sizeof c.path) == 0) g2s__serve_op(&c);
    if (!c.answered) g2s__fail(&c, 500, "RuntimeException", "the proxy produced no answer");
    idm_unref(c.map);
}

static void *worker_main(void *arg)
{
    g2s *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->cv, &s->mu);
        g2s_job *j = s->head;
        if (!j) break; /* stopping and nothing left */
        s->head = j->next;
        if (!s->head) s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        if (s->ids) {
            idm_err ie;
            if (idm_watch_poll(s->ids, mono_ms(), false, &ie) == IDM_POLL_BROKEN)
                LOGW("msg=\"gen2.identity_map changed and does not load; the last good map stays\" error=\"%s\"",
                     ie.message);
        }
        serve_one(s, &j->rq);
        free(j);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int g2s_serve(g2s *s, const g2s_request *rq)
{
    g2s_job *j = calloc(1, sizeof *j);
    if (!j) return -1;
    j->rq = *rq;
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        free(j);
        return -1;
    }
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

httpc *g2s_http(g2s *s) { return s->http; }

int g2s_new(const dp_config *cfg, gen2c *g2, httpc *http, metrics *m, g2s **out, char *err, size_t errlen)
{
    g2s *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = cfg;
    s->g2 = g2;
    s->http = http;
    s->id_pol = (idm_policy)cfg->unmapped_identity;
    s->list_max = cfg->g2only_list_max;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (cfg->identity_map[0]) {
        idm_err ie;
        if (idm_watch_new(cfg->identity_map, &s->ids, &ie) != 0) {
            snprintf(err, errlen, "gen2.identity_map: %s", ie.message);
            goto fail;
        }
    }
    s->mx_exchanges = metrics_counter_get(m, "dualpipe_gen2_only_exchanges_total",
                                          "Gen2 requests made to serve WebHDFS requests in phase gen2-only.", NULL);
    s->mx_nothing = metrics_counter_get(m, "dualpipe_gen2_only_exchange_failures_total",
                                        "Of those, exchanges that ended without an HTTP answer from Gen2.", NULL);
    s->mx_lock_waits = metrics_counter_get(m, "dualpipe_gen2_only_path_waits_total",
                                           "Data writes (CREATE, APPEND, CONCURRENTAPPEND, CONCAT) that waited for "
                                           "another write of the same path (serialised in the proxy).",
                                           NULL);
    s->th = calloc(cfg->g2only_workers, sizeof *s->th);
    if (!s->th) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < cfg->g2only_workers; i++) {
        if (pthread_create(&s->th[i], NULL, worker_main, s) != 0) {
            snprintf(err, errlen, "gen2_only.workers: cannot start thread %u", i + 1);
            g2s_stop(s);
            g2s_free(s);
            return -1;
        }
        s->nth++;
    }
    LOGI("msg=\"the WebHDFS API is served on Gen2\" workers=%u identity_map=%s", s->nth,
         s->ids ? "yes" : "no");
    *out = s;
    return 0;
fail:
    free(s->th);
    idm_watch_free(s->ids);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return -1;
}

void g2s_stop(g2s *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nth; i++) pthread_join(s->th[i], NULL);
    s->nth = 0;
}

void g2s_free(g2s *s)
{
    if (!s) return;
    g2s_stop(s);
    for (unsigned i = 0; i < G2S_CURSORS; i++) {
        free(s->cursors[i].key);
        free(s->cursors[i].token);
    }
    while (s->leases) {
        g2s_lease *l = s->leases;
        s->leases = l->next;
        free(l->key);
        free(l);
    }
    free(s->th);
    idm_watch_free(s->ids);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
