/*
 * Unit tests for the Gen1 mirror (proxy/mirror.c), against the real emulators: Gen1 in both dialects
 * (adls one-step, hadoop two-step through the datanode listener) as the secondary and Gen2 as the
 * primary that resyncs copy from. Records are built by hand with their bodies in a real spool, as the
 * pipeline would submit them, and the outcome of each is checked together with what Gen1 then holds:
 * the writes themselves; a replayed APPEND and CREATE that had already landed (applied once: the
 * emulator's request counters); per-path order with a delete of a directory held behind earlier writes
 * under it; Gen1 failing for a while, answering 503 or down with connections refused (breaker open, then
 * every write applied exactly once: the emulator's counters); a write Gen1
 * refuses for good, resynced from Gen2 (Gen1 then equals Gen2, owners and ACL names mapped back through
 * the identity map); the journal gate of a resync; a resync that cannot succeed, parked
 * after its attempts; an owner Gen1 refuses to set reported as a divergence.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cfg.h"
#include "gen1client.h"
#include "gen2client.h"
#include "httpc.h"
#include "idmap.h"
#include "iox.h"
#include "metrics.h"
#include "mirror.h"
#include "spool.h"
#include "temu.h"
#include "tharness.h"

/* ---------------------------------------------------------------- outcomes, by seq */

#define MAXSEQ 512
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ndone;
    bool done[MAXSEQ];
    apply_result res[MAXSEQ];
} R = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, {{0}}};

static void on_done(void *ud, const apply_result *res)
{
    uintptr_t seq = (uintptr_t)ud;
    pthread_mutex_lock(&R.mu);
    if (seq < MAXSEQ && !R.done[seq]) {
        R.done[seq] = true;
        R.res[seq] = *res;
        R.ndone++;
    } else {
        R.ndone = -1000; /* done twice: fails every wait */
    }
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
}

/* Wait until n operations finished in all (fails after 15 s). */
static void wait_done(int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    pthread_mutex_lock(&R.mu);
    while (R.ndone >= 0 && R.ndone < n)
        if (pthread_cond_timedwait(&R.cv, &R.mu, &ts) == ETIMEDOUT) break;
    int got = R.ndone;
    pthread_mutex_unlock(&R.mu);
    if (got != n) TH_FAIL_AT("%d operations finished, expected %d", got, n);
}

static apply_outcome outcome(uint64_t seq)
{
    pthread_mutex_lock(&R.mu);
    apply_outcome o = R.res[seq].outcome;
    pthread_mutex_unlock(&R.mu);
    return o;
}

#define ASSERT_OUTCOME(seq, oc)                                                                    \
    do {                                                                                           \
        if (outcome(seq) != (oc))                                                                  \
            TH_FAIL_AT("seq %d: outcome %s (%s), expected %s", (int)(seq),                          \
                       apply_outcome_name(outcome(seq)), R.res[seq].detail, apply_outcome_name(oc)); \
    } while (0)

/* ---------------------------------------------------------------- environment */

/* The spool's temporary directory, removed at exit too (a failed assertion exits early). */
static char spool_dir[64];
static void spool_dir_rm(void)
{
    if (spool_dir[0]) nftw(spool_dir, temu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    spool_dir[0] = 0;
}

typedef struct env {
    temu e1, e2;
    dp_config c1, c2;
    httpc *http;
    gen1c *g1;
    gen2c *g2;
    char dir[64];
    iox *io;
    spool *sp;
    mirror *m;
    idm_watch *ids;
    bool hadoop;
} env;

/* gen2.identity_map for the next env_start (NULL: none). */
static const char *env_map_text;

static void env_start(env *e, bool hadoop, const mirror_opts *tune)
{
    memset(e, 0, sizeof *e);
    e->hadoop = hadoop;
    /* hadoop: LISTSTATUS_BATCH pages of 2 entries, so a resync's listing of Gen1 takes several pages */
    const char *a1[] = {"--dialect", hadoop ? "hadoop" : "adls", hadoop ? "--ls-limit" : NULL, "2", NULL};
    temu_start(&e->e1, "gen1", a1, NULL);
    temu_start(&e->e2, "gen2", NULL, NULL);
    signal(SIGPIPE, SIG_IGN);
    char err[256];
    if (httpc_start(0, &e->http, err, sizeof err) != 0) TH_FAIL_AT("httpc_start: %s", err);

    snprintf(e->c1.gen1_endpoint, sizeof e->c1.gen1_endpoint, "%s", e->e1.url);
    e->c1.gen1_dialect = hadoop ? CFG_DIALECT_HADOOP : CFG_DIALECT_ADLS;
    e->c1.gen1_connect_timeout_ms = 2000;
    e->c1.gen1_timeout_ms = 10000;
    if (gen1c_new(&e->c1, e->http, &e->g1, err, sizeof err) != 0) TH_FAIL_AT("gen1c_new: %s", err);

    dp_config *c = &e->c2;
    snprintf(c->gen2_endpoint, sizeof c->gen2_endpoint, "%s", e->e2.url);
    c->gen2_path_style = true;
    snprintf(c->gen2_account, sizeof c->gen2_account, "%s", TEMU_ACCOUNT);
    snprintf(c->gen2_version, sizeof c->gen2_version, "2021-06-08");
    c->gen2_connect_timeout_ms = 2000;
    c->gen2_timeout_ms = 10000;
    c->gen2_auth = CFG_AUTH_SHARED_KEY;
    c->gen2_account_key.value = (char *)TEMU_KEY;
    c->nmappings = 1;
    snprintf(c->mappings[0].gen1_prefix, sizeof c->mappings[0].gen1_prefix, "/");
    snprintf(c->mappings[0].filesystem, sizeof c->mappings[0].filesystem, "lake");
    /* a nested mapping: Gen1's /s/nest is the root of filesystem "other" */
    c->nmappings = 2;
    snprintf(c->mappings[1].gen1_prefix, sizeof c->mappings[1].gen1_prefix, "/s/nest");
    snprintf(c->mappings[1].filesystem, sizeof c->mappings[1].filesystem, "other");
    if (gen2c_new(c, e->http, &e->g2, err, sizeof err) != 0) TH_FAIL_AT("gen2c_new: %s", err);

    snprintf(e->dir, sizeof e->dir, "/tmp/dp-mirror-XXXXXX");
    if (!mkdtemp(e->dir)) TH_FAIL_AT("mkdtemp: %s", strerror(errno));
    snprintf(spool_dir, sizeof spool_dir, "%s", e->dir);
    atexit(spool_dir_rm);
    if (iox_new(IOX_THREADS, 0, 0, &e->io, err, sizeof err) != 0) TH_FAIL_AT("iox_new: %s", err);
    char sdir[128];
    snprintf(sdir, sizeof sdir, "%s/spool", e->dir);
    spool_opts so = {.dir = sdir, .io = e->io};
    if (spool_open(&so, &e->sp, err, sizeof err) != 0) TH_FAIL_AT("spool_open: %s", err);

    mirror_opts o = tune ? *tune : (mirror_opts){0};
    if (env_map_text) {
        char mp[128];
        snprintf(mp, sizeof mp, "%s/idmap.txt", e->dir);
        FILE *f = fopen(mp, "w");
        if (!f || fputs(env_map_text, f) < 0 || fclose(f) != 0) TH_FAIL_AT("writing %s", mp);
        idm_err ie;
        if (idm_watch_new(mp, &e->ids, &ie) != 0) TH_FAIL_AT("idm_watch_new: %s", ie.message);
        o.ids = e->ids;
    }
    o.http = e->http;
    o.g1 = e->g1;
    o.g2 = e->g2;
    o.hadoop = hadoop;
    if (!o.concurrency) o.concurrency = 4;
    if (!o.backoff_base_ms) o.backoff_base_ms = 10;
    if (!o.backoff_cap_ms) o.backoff_cap_ms = 100;
    if (!o.breaker_probe_ms) o.breaker_probe_ms = 100;
    if (!o.resync_attempts) o.resync_attempts = 3;
    if (mirror_new(&o, &e->m, err, sizeof err) != 0) TH_FAIL_AT("mirror_new: %s", err);
}

static void env_stop(env *e)
{
    if (e->m) mirror_stop(e->m, 5000);
    idm_watch_free(e->ids);
    gen2c_stop(e->g2);
    httpc_stop(e->http);
    gen2c_free(e->g2);
    gen1c_free(e->g1);
    spool_close(e->sp);
    iox_free(e->io);
    spool_dir_rm();
    temu_stop(&e->e1);
    temu_stop(&e->e2);
}

/* A record: params as name, value pairs (NULL-terminated), body (may be NULL). */
static apply_req *mkreq_v(env *e, uint64_t seq, whreq_op op, const char *path, const char *body, size_t blen,
                          const char *const *params)
{
    apply_req *q = calloc(1, sizeof *q);
    q->seq = seq;
    q->op = op;
    q->path = strdup(path);
    int n = 0;
    while (params && params[2 * n]) n++;
    q->params = calloc((size_t)n + 1, sizeof *q->params);
    for (int i = 0; i < n; i++) {
        q->params[i].name = strdup(params[2 * i]);
        q->params[i].value = strdup(params[2 * i + 1]);
    }
    q->nparams = n;
    if (body) {
        if (spool_begin(e->sp, blen, blen, &q->body) != 0) TH_FAIL_AT("spool_begin");
        if (blen && spool_write(q->body, body, blen) != 0) TH_FAIL_AT("spool_write");
        if (spool_finish(q->body) != 0) TH_FAIL_AT("spool_finish");
    }
    q->gen1_status = 200;
    return q;
}

#define P(...) ((const char *const[]){__VA_ARGS__, NULL})

static void submit(env *e, apply_req *q)
{
    uint64_t seq = q->seq;
    if (mirror_submit(e->m, q, on_done, (void *)(uintptr_t)seq) != 0) TH_FAIL_AT("mirror_submit refused");
}

static void sub(env *e, uint64_t seq, whreq_op op, const char *path, const char *body, const char *const *params)
{
    submit(e, mkreq_v(e, seq, op, path, body, body ? strlen(body) : 0, params));
}

/* ---------------------------------------------------------------- direct Gen1 / Gen2 access */

static httpc_resp *g1(env *e, const char *method, const char *path, const char *query, const char *body)
{
    httpc_sync s;
    httpc_sync_init(&s);
    gen1c_own_call c = {.method = method, .path = path, .op_and_params = query, .out = HTTPC_BODY_MEMORY,
                        .out_max = 1 << 24, .done = httpc_sync_done, .ud = &s};
    if (body) {
        c.in = HTTPC_IN_MEMORY;
        c.in_mem = body;
        c.in_len = strlen(body);
    }
    if (gen1c_own(e->g1, &c) != 0) TH_FAIL_AT("gen1c_own");
    return httpc_sync_wait(&s);
}

static void g1_ok(env *e, const char *method, const char *path, const char *query, const char *body)
{
    httpc_resp *r = g1(e, method, path, query, body);
    if (r->result != HTTPC_OK || r->status / 100 != 2)
        TH_FAIL_AT("gen1 %s %s %s: %d %ld %s", method, path, query, r->result, r->status,
                   r->body.data ? r->body.data : "");
    httpc_resp_free(r);
    free(r);
}

/* Gen1's bytes of path (malloc'd), or NULL when it has no such file. */
static char *g1_cat(env *e, const char *path)
{
    httpc_resp *r = g1(e, "GET", path, "op=OPEN", NULL);
    char *s = NULL;
    if (r->result == HTTPC_OK && r->status == 200) {
        s = malloc(r->body.len + 1);
        memcpy(s, r->body.data, r->body.len);
        s[r->body.len] = 0;
    }
    httpc_resp_free(r);
    free(r);
    return s;
}

#define ASSERT_G1_CONTENT(e, path, want)                                                           \
    do {                                                                                           \
        char *got_ = g1_cat(e, path);                                                              \
        if (!got_) TH_FAIL_AT("gen1 has no file %s", path);                                        \
        ASSERT_EQ_STR(got_, want);                                                                 \
        free(got_);                                                                                \
    } while (0)

/* A FileStatus field of path as a string ("" when absent; NULL when the path does not exist). */
static char *g1_field(env *e, const char *path, const char *field)
{
    httpc_resp *r = g1(e, "GET", path, "op=GETFILESTATUS", NULL);
    char *out = NULL;
    if (r->result == HTTPC_OK && r->status == 200) {
        json_t *j = json_loadb(r->body.data, r->body.len, 0, NULL);
        json_t *v = json_object_get(json_object_get(j, "FileStatus"), field);
        char buf[256] = "";
        if (json_is_string(v)) snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        out = strdup(buf);
        json_decref(j);
    }
    httpc_resp_free(r);
    free(r);
    return out;
}

static bool g1_exists(env *e, const char *path)
{
    char *t = g1_field(e, path, "type");
    free(t);
    return t != NULL;
}

#define ASSERT_G1_FIELD(e, path, field, want)                                                      \
    do {                                                                                           \
        char *got_ = g1_field(e, path, field);                                                     \
        if (!got_) TH_FAIL_AT("gen1 has no %s", path);                                             \
        ASSERT_EQ_STR(got_, want);                                                                 \
        free(got_);                                                                                \
    } while (0)

static char *g1_acl(env *e, const char *path)
{
    httpc_resp *r = g1(e, "GET", path, "op=GETACLSTATUS", NULL);
    char *s = strdup(r->result == HTTPC_OK && r->body.data ? r->body.data : "");
    httpc_resp_free(r);
    free(r);
    return s;
}

static void g2_ok_in(env *e, const char *fs, const char *method, const char *path, const char *query, const char *hdr,
                     const char *body)
{
    httpc_sync s;
    httpc_sync_init(&s);
    gen2c_call c = {.method = method, .fs = fs, .path = path, .query = query, .headers = {hdr},
                    .out = HTTPC_BODY_MEMORY, .done = httpc_sync_done, .ud = &s};
    if (body) {
        c.in = HTTPC_IN_MEMORY;
        c.in_mem = body;
        c.in_len = strlen(body);
    }
    if (gen2c_send(e->g2, &c) != 0) TH_FAIL_AT("gen2c_send");
    httpc_resp *r = httpc_sync_wait(&s);
    if (r->result != HTTPC_OK || r->status / 100 != 2)
        TH_FAIL_AT("gen2 %s %s?%s: %d %ld %s", method, path, query, r->result, r->status,
                   r->body.data ? r->body.data : "");
    httpc_resp_free(r);
    free(r);
}

static void g2_ok(env *e, const char *method, const char *path, const char *query, const char *hdr, const char *body)
{
    g2_ok_in(e, "lake", method, path, query, hdr, body);
}

static void g2_file(env *e, const char *path, const char *content)
{
    g2_ok(e, "PUT", path, "resource=file", NULL, NULL);
    size_t n = strlen(content);
    char q[96];
    if (n) g2_ok(e, "PATCH", path, "action=append&position=0", NULL, content);
    snprintf(q, sizeof q, "action=flush&position=%zu&close=true", n);
    g2_ok(e, "PATCH", path, q, NULL, NULL);
}

/* Requests of one op ("PUT CREATE") that reached Gen1's service (past the injected faults), by caller
 * "(none)": the emulator's per-identity counters. */
static long g1_served(env *e, const char *label)
{
    char *body = NULL;
    if (temu_admin(&e->e1, "GET", "/counters", NULL, &body) != 200) TH_FAIL_AT("GET /counters failed");
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    json_t *v = json_object_get(json_object_get(json_object_get(json_object_get(j, "identities"), "(none)"), "ops"),
                                label);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    json_decref(j);
    return n;
}

static void g2_fs(env *e) { g2_ok(e, "PUT", "", "resource=filesystem", NULL, NULL); }

/* ---------------------------------------------------------------- tests */

/* Every kind of write, replayed onto Gen1 in the given dialect. */
static void run_ops(bool hadoop)
{
    env e;
    env_start(&e, hadoop, NULL);
    metrics *mx = metrics_new();
    ASSERT_EQ_INT(mirror_register_metrics(e.m, mx), 0);
    uint64_t s = 1;
    sub(&e, s++, WH_OP_MKDIRS, "/a", NULL, P("permission", "750"));
    sub(&e, s++, WH_OP_CREATE, "/a/f", "hello ", P("overwrite", "false", MIRROR_PARAM_MTIME, "1600000000000"));
    sub(&e, s++, WH_OP_APPEND, "/a/f", "world", P(MIRROR_PARAM_OFFSET, "6"));
    sub(&e, s++, WH_OP_APPEND, "/a/f", "!", P(MIRROR_PARAM_OFFSET, "11", "syncflag", "DATA"));
    sub(&e, s++, WH_OP_SETPERMISSION, "/a/f", NULL, P("permission", "640"));
    sub(&e, s++, WH_OP_MODIFYACLENTRIES, "/a/f", NULL, P("aclspec", "user:bob:r--"));
    sub(&e, s++, WH_OP_SETOWNER, "/a/f", NULL, P("owner", "carol", "group", "staff"));
    sub(&e, s++, WH_OP_SETTIMES, "/a/f", NULL, P("modificationtime", "1700000000000", "accesstime", "-1"));
    sub(&e, s++, WH_OP_CREATE, "/a/p1", "AAA", P("overwrite", "true"));
    sub(&e, s++, WH_OP_CREATE, "/a/p2", "BBB", P("overwrite", "true"));
    sub(&e, s++, WH_OP_CONCAT, "/a/p1", NULL, P("sources", "/a/p2"));
    sub(&e, s++, WH_OP_RENAME, "/a/p1", NULL, P("destination", "/a/joined"));
    sub(&e, s++, WH_OP_CREATE, "/a/gone", "x", P("overwrite", "true"));
    sub(&e, s++, WH_OP_DELETE, "/a/gone", NULL, P("recursive", "false"));
    sub(&e, s++, WH_OP_DELETE, "/a/never", NULL, P("recursive", "false"));
    sub(&e, s++, WH_OP_MKDIRS, "/b", NULL, NULL);
    sub(&e, s++, WH_OP_SETACL, "/b", NULL, P("aclspec", "user::rwx,group::r-x,other::---,user:dave:rwx"));
    sub(&e, s++, WH_OP_REMOVEACLENTRIES, "/b", NULL, P("aclspec", "user:dave"));
    sub(&e, s++, WH_OP_CREATE, "/b/owned", "o", P("overwrite", "false", MIRROR_PARAM_OWNER, "erin",
                                                  MIRROR_PARAM_GROUP, "ops"));
    sub(&e, s++, WH_OP_CREATE, "/a/ca", "", P("overwrite", "false"));
    sub(&e, s++, WH_OP_CONCURRENTAPPEND, "/a/ca", "c1", P(MIRROR_PARAM_OFFSET, "0"));
    sub(&e, s++, WH_OP_CONCURRENTAPPEND, "/a/ca", "c2", P(MIRROR_PARAM_OFFSET, "2"));
    sub(&e, s++, WH_OP_CREATE, "/a/m1", "m1", P("overwrite", "false"));
    sub(&e, s++, WH_OP_CREATE, "/a/m2", "m2", P("overwrite", "false"));
    sub(&e, s++, WH_OP_MSCONCAT, "/a/ms", "{\"sources\":[\"/a/m1\",\"/a/m2\"]}", NULL);
    sub(&e, s++, WH_OP_SETEXPIRY, "/a/ms", NULL, P("expiryoption", "NeverExpire"));
    int n = (int)s - 1;
    wait_done(n);
    for (int i = 1; i <= n; i++) ASSERT_OUTCOME(i, APPLY_OK);
    ASSERT_G1_CONTENT(&e, "/a/ca", "c1c2");
    ASSERT_G1_CONTENT(&e, "/a/ms", "m1m2");
    ASSERT_TRUE(!g1_exists(&e, "/a/m1"));
    ASSERT_G1_CONTENT(&e, "/a/f", "hello world!");
    ASSERT_G1_FIELD(&e, "/a/f", "permission", "640");
    ASSERT_G1_FIELD(&e, "/a/f", "owner", "carol");
    ASSERT_G1_FIELD(&e, "/a/f", "group", "staff");
    ASSERT_G1_FIELD(&e, "/a/f", "modificationTime", "1700000000000");
    ASSERT_G1_FIELD(&e, "/a", "permission", "750");
    char *acl = g1_acl(&e, "/a/f");
    ASSERT_TRUE(strstr(acl, "user:bob:r--") != NULL);
    free(acl);
    acl = g1_acl(&e, "/b");
    ASSERT_TRUE(strstr(acl, "dave") == NULL);
    free(acl);
    ASSERT_G1_CONTENT(&e, "/a/joined", "AAABBB");
    ASSERT_TRUE(!g1_exists(&e, "/a/p1"));
    ASSERT_TRUE(!g1_exists(&e, "/a/p2"));
    ASSERT_TRUE(!g1_exists(&e, "/a/gone"));
    ASSERT_G1_FIELD(&e, "/b/owned", "owner", "erin");
    ASSERT_G1_FIELD(&e, "/b/owned", "group", "ops");
    dbuf st;
    dbuf_init(&st, 1 << 20);
    ASSERT_EQ_INT(mirror_status_json(e.m, &st), 0);
    ASSERT_TRUE(strstr(st.data, "\"applied\":26") != NULL);
    dbuf_reset(&st);
    for (int i = 0; i < 500 && mirror_pending(e.m) > 0; i++) usleep(2000); /* (done runs before the unlink) */
    ASSERT_EQ_INT((int)mirror_pending(e.m), 0);
    ASSERT_EQ_INT(metrics_render(mx, &st), 0);
    ASSERT_TRUE(strstr(st.data, "dualpipe_mirror_operations_total{op=\"CREATE\",outcome=\"applied\"} 8\n") != NULL);
    ASSERT_TRUE(strstr(st.data, "dualpipe_mirror_operations_total{op=\"RENAME\",outcome=\"applied\"} 1\n") != NULL);
    ASSERT_TRUE(strstr(st.data, "dualpipe_mirror_in_flight 0\n") != NULL);
    ASSERT_TRUE(strstr(st.data, "dualpipe_mirror_breaker_open{upstream=\"gen1\"} 0\n") != NULL);
    ASSERT_TRUE(strstr(st.data, "dualpipe_mirror_lag_seconds_count 26\n") != NULL);
    dbuf_free(&st);
    env_stop(&e);
    metrics_free(mx);
}

TEST(ops_adls) { run_ops(false); }
TEST(ops_hadoop) { run_ops(true); }

/* Replays of writes that already landed on Gen1 (a crash between Gen1 applying and the journal
 * recording it) apply nothing a second time: no APPEND/CREATE request reaches Gen1 again. */
static void run_replay(bool hadoop)
{
    env e;
    env_start(&e, hadoop, NULL);
    g1_ok(&e, "PUT", "/r/f", "op=CREATE&overwrite=false", "abc");
    g1_ok(&e, "POST", "/r/f", "op=APPEND", "def");
    g1_ok(&e, "PUT", "/r/c", "op=CREATE&overwrite=false", "same bytes");
    g1_ok(&e, "PUT", "/r/src", "op=CREATE&overwrite=false", "s");
    g1_ok(&e, "PUT", "/r/src", "op=RENAME&destination=/r/dst", NULL);
    g1_ok(&e, "PUT", "/r/t", "op=CREATE&overwrite=false", "tt"); /* landed; the crash came before SETTIMES */
    long appends = temu_counter(&e.e1, "POST APPEND"), creates = temu_counter(&e.e1, "PUT CREATE");
    long renames = temu_counter(&e.e1, "PUT RENAME");

    apply_req *q = mkreq_v(&e, 1, WH_OP_APPEND, "/r/f", "def", 3, P(MIRROR_PARAM_OFFSET, "3"));
    q->maybe_sent = true;
    submit(&e, q);
    q = mkreq_v(&e, 2, WH_OP_CREATE, "/r/c", "same bytes", 10, P("overwrite", "false"));
    q->maybe_sent = true;
    submit(&e, q);
    q = mkreq_v(&e, 3, WH_OP_RENAME, "/r/src", NULL, 0, P("destination", "/r/dst"));
    q->maybe_sent = true;
    submit(&e, q);
    /* not flagged maybe_sent: the adls offset (or hadoop's length check) still catches it */
    sub(&e, 4, WH_OP_APPEND, "/r/f", "def", P(MIRROR_PARAM_OFFSET, "3"));
    /* a fresh append after them applies */
    sub(&e, 5, WH_OP_APPEND, "/r/f", "ghi", P(MIRROR_PARAM_OFFSET, "6"));
    q = mkreq_v(&e, 6, WH_OP_CREATE, "/r/t", "tt", 2, P("overwrite", "false", MIRROR_PARAM_MTIME, "1500000000000"));
    q->maybe_sent = true;
    submit(&e, q);
    /* RENAME's {"boolean":false}: already landed (source gone, destination there) ... */
    sub(&e, 7, WH_OP_RENAME, "/r/src", NULL, P("destination", "/r/dst"));
    /* ... false on the primary too (gen1_body: the primary's answer) ... */
    q = mkreq_v(&e, 8, WH_OP_RENAME, "/r/none", NULL, 0, P("destination", "/r/none2"));
    q->gen1_body = strdup("{\"boolean\":false}");
    submit(&e, q);
    wait_done(8);
    for (int i = 1; i <= 8; i++) ASSERT_OUTCOME(i, APPLY_OK);
    ASSERT_TRUE(strstr(R.res[8].detail, "false} on both sides") != NULL);
    ASSERT_G1_FIELD(&e, "/r/t", "modificationTime", "1500000000000");
    ASSERT_TRUE(strstr(R.res[1].detail, "already on Gen1") != NULL);
    ASSERT_G1_CONTENT(&e, "/r/f", "abcdefghi");
    ASSERT_G1_CONTENT(&e, "/r/c", "same bytes");
    ASSERT_G1_CONTENT(&e, "/r/dst", "s");
    ASSERT_EQ_INT(temu_counter(&e.e1, "PUT CREATE"), creates);
    ASSERT_EQ_INT(temu_counter(&e.e1, "PUT RENAME"), renames + 2); /* seq 7 and 8 (answered false), not seq 3 */
    /* only seq 5 wrote (hadoop: namenode step and datanode step; adls: seq 4's refused offset too) */
    ASSERT_EQ_INT(temu_counter(&e.e1, "POST APPEND"), appends + 2);
    /* ... and false on Gen1 only (its destination exists): Gen1 differs, both paths resynced from Gen2,
     * which holds the rename's result. */
    g2_fs(&e);
    g2_ok(&e, "PUT", "r", "resource=directory", NULL, NULL);
    g2_file(&e, "r/c2", "same bytes");
    g1_ok(&e, "PUT", "/r/c2", "op=CREATE&overwrite=false", "stale");
    sub(&e, 9, WH_OP_RENAME, "/r/c", NULL, P("destination", "/r/c2"));
    wait_done(9);
    ASSERT_OUTCOME(9, APPLY_RESYNCED);
    ASSERT_TRUE(strstr(R.res[9].detail, "boolean\":false} to RENAME") != NULL);
    ASSERT_TRUE(!g1_exists(&e, "/r/c"));
    ASSERT_G1_CONTENT(&e, "/r/c2", "same bytes");
    env_stop(&e);
}

TEST(replay_adls) { run_replay(false); }
TEST(replay_hadoop) { run_replay(true); }

/* Per-path order with parallel workers: writes under /d apply before the DELETE of /d, the RENAME of
 * /m waits for the appends under it, and what follows under the destination waits for the RENAME. */
TEST(ordering)
{
    env e;
    mirror_opts t = {.concurrency = 8};
    env_start(&e, false, &t);
    uint64_t s = 1;
    sub(&e, s++, WH_OP_MKDIRS, "/d", NULL, NULL);
    sub(&e, s++, WH_OP_MKDIRS, "/m", NULL, NULL);
    char body[8];
    for (int i = 0; i < 6; i++) {
        char p[32];
        snprintf(p, sizeof p, "/d/f%d", i);
        sub(&e, s++, WH_OP_CREATE, p, "x", P("overwrite", "false"));
    }
    sub(&e, s++, WH_OP_CREATE, "/m/log", "", P("overwrite", "false"));
    for (int i = 0; i < 10; i++) {
        char off[16];
        snprintf(body, sizeof body, "%d", i);
        snprintf(off, sizeof off, "%d", i);
        sub(&e, s++, WH_OP_APPEND, "/m/log", body, P(MIRROR_PARAM_OFFSET, off));
    }
    sub(&e, s++, WH_OP_DELETE, "/d", NULL, P("recursive", "true"));
    sub(&e, s++, WH_OP_RENAME, "/m", NULL, P("destination", "/n"));
    sub(&e, s++, WH_OP_APPEND, "/n/log", "!", P(MIRROR_PARAM_OFFSET, "10"));
    sub(&e, s++, WH_OP_MKDIRS, "/d", NULL, NULL);
    int n = (int)s - 1;
    wait_done(n);
    for (int i = 1; i <= n; i++) ASSERT_OUTCOME(i, APPLY_OK);
    ASSERT_G1_CONTENT(&e, "/n/log", "0123456789!");
    ASSERT_TRUE(g1_exists(&e, "/d"));
    ASSERT_TRUE(!g1_exists(&e, "/d/f0"));
    ASSERT_TRUE(!g1_exists(&e, "/m"));
    env_stop(&e);
}

/* Gen1 failing for a while (every request answered 503, or down: connections refused): the breaker
 * opens, nothing is lost, nothing applied twice. */
static void run_outage(bool hadoop, bool down)
{
    env e;
    mirror_opts t = {.breaker_failures = 3, .breaker_probe_ms = 100};
    env_start(&e, hadoop, &t);
    g1_ok(&e, "PUT", "/o", "op=MKDIRS", NULL);
    if (down) ASSERT_EQ_INT(temu_admin(&e.e1, "POST", "/down?ms=0", NULL, NULL), 200);
    else temu_fault(&e.e1, "action=fail,status=503");
    uint64_t s = 1;
    sub(&e, s++, WH_OP_CREATE, "/o/f", "ab", P("overwrite", "false"));
    sub(&e, s++, WH_OP_APPEND, "/o/f", "cd", P(MIRROR_PARAM_OFFSET, "2"));
    sub(&e, s++, WH_OP_APPEND, "/o/f", "ef", P(MIRROR_PARAM_OFFSET, "4"));
    sub(&e, s++, WH_OP_CREATE, "/o/g", "xyz", P("overwrite", "true"));
    sub(&e, s++, WH_OP_RENAME, "/o/g", NULL, P("destination", "/o/h"));
    sub(&e, s++, WH_OP_MKDIRS, "/o/dir", NULL, NULL);
    bool opened = false;
    for (int i = 0; i < 300 && !opened; i++) {
        dbuf st;
        dbuf_init(&st, 1 << 20);
        if (mirror_status_json(e.m, &st) != 0) TH_FAIL_AT("status");
        opened = strstr(st.data, "\"gen1\":\"open\"") != NULL;
        dbuf_free(&st);
        if (!opened) usleep(10000);
    }
    ASSERT_TRUE(opened);
    ASSERT_EQ_INT((int)mirror_pending(e.m), 6);
    usleep(500000);
    ASSERT_EQ_INT((int)mirror_pending(e.m), 6);
    if (down) ASSERT_EQ_INT(temu_admin(&e.e1, "POST", "/up", NULL, NULL), 200);
    else ASSERT_EQ_INT(temu_admin(&e.e1, "DELETE", "/faults", NULL, NULL), 200);
    wait_done(6);
    for (int i = 1; i <= 6; i++) ASSERT_OUTCOME(i, APPLY_OK);
    ASSERT_G1_CONTENT(&e, "/o/f", "abcdef");
    ASSERT_G1_CONTENT(&e, "/o/h", "xyz");
    ASSERT_TRUE(!g1_exists(&e, "/o/g"));
    ASSERT_TRUE(g1_exists(&e, "/o/dir"));
    /* every write reached Gen1's service once (hadoop: namenode and datanode steps of CREATE/APPEND) */
    int steps = hadoop ? 2 : 1;
    ASSERT_EQ_INT(g1_served(&e, "PUT CREATE"), 2 * steps);
    ASSERT_EQ_INT(g1_served(&e, "POST APPEND"), 2 * steps);
    ASSERT_EQ_INT(g1_served(&e, "PUT RENAME"), 1);
    ASSERT_EQ_INT(g1_served(&e, "PUT MKDIRS"), 2); /* /o (the test's) and /o/dir */
    dbuf st;
    dbuf_init(&st, 1 << 20);
    ASSERT_EQ_INT(mirror_status_json(e.m, &st), 0);
    ASSERT_TRUE(strstr(st.data, "\"breaker\":{\"gen1\":\"closed\"") != NULL);
    ASSERT_TRUE(strstr(st.data, "\"retries\":{\"gen1\":0") == NULL);
    dbuf_free(&st);
    env_stop(&e);
}

TEST(outage_adls) { run_outage(false, false); }
TEST(outage_hadoop) { run_outage(true, false); }
TEST(down_adls) { run_outage(false, true); }
TEST(down_hadoop) { run_outage(true, true); }

/* A write Gen1 refuses for good (its file differs from what the record expects) is resynced from
 * Gen2: Gen1 then holds Gen2's bytes, permission, owner, ACL and times, and loses what Gen2 lacks. */
#define GUID_FRANK "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
#define GUID_BOB "0c9d8f1a-7b21-4c3e-9f00-11aa22bb33cc"

static void run_resync(bool hadoop)
{
    env e;
    env_map_text = "user frank " GUID_FRANK "\nuser bob " GUID_BOB "\n";
    env_start(&e, hadoop, NULL);
    g2_fs(&e);
    g2_ok(&e, "PUT", "s", "resource=directory", NULL, NULL);
    g2_file(&e, "s/f", "primary bytes");
    g2_file(&e, "s/empty", "");
    g2_ok(&e, "PUT", "s/sub", "resource=directory", NULL, NULL);
    g2_file(&e, "s/sub/deep", "deep");
    /* a file over MIRROR_PART_BYTES: copied in three parts (CREATE, then APPENDs at their offsets) */
    size_t bign = 2 * MIRROR_PART_BYTES + 4321;
    char *big = malloc(bign + 1);
    for (size_t i = 0; i < bign; i++) big[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    big[bign] = 0;
    g2_file(&e, "s/big", big);
    g2_ok(&e, "PATCH", "s/f", "action=setAccessControl",
          "x-ms-acl: user::rw-,user:" GUID_BOB ":r--,group::r--,mask::r--,other::---", NULL);
    g2_ok(&e, "PATCH", "s/f", "action=setAccessControl", "x-ms-owner: " GUID_FRANK, NULL);
    g2_ok(&e, "PATCH", "s/empty", "action=setAccessControl", "x-ms-owner: nobody-mapped", NULL);
    g2_ok(&e, "PATCH", "s/f", "action=setProperties",
          "x-ms-properties: dualpipe_times=bXRpbWU9MTYwMDAwMDAwMDAwMCxhdGltZT0xNjAwMDAwMDAwMDAwLGxlbj0xMw==", NULL);
    /* Gen1: stale and extra things */
    g1_ok(&e, "PUT", "/s/f", "op=CREATE&overwrite=false", "old");
    g1_ok(&e, "PUT", "/s/extra", "op=CREATE&overwrite=false", "not on gen2");
    g1_ok(&e, "PUT", "/s/x1", "op=MKDIRS", NULL);
    /* /s/nest lives in another filesystem (a nested mapping): copied from there, not deleted */
    g2_ok_in(&e, "other", "PUT", "", "resource=filesystem", NULL, NULL);
    g2_ok_in(&e, "other", "PUT", "n", "resource=file", NULL, NULL);
    g2_ok_in(&e, "other", "PATCH", "n", "action=append&position=0", NULL, "nested");
    g2_ok_in(&e, "other", "PATCH", "n", "action=flush&position=6&close=true", NULL, NULL);
    g1_ok(&e, "PUT", "/s/nest/n", "op=CREATE&overwrite=false", "old");
    g1_ok(&e, "PUT", "/s/nest/gone", "op=CREATE&overwrite=false", "x");
    /* a name Gen2 cannot hold (a trailing dot): never on the primary, left alone */
    g1_ok(&e, "PUT", "/s/odd.", "op=CREATE&overwrite=false", "odd");
    g1_ok(&e, "PUT", "/s/x2", "op=CREATE&overwrite=false", "x2");
    g1_ok(&e, "PUT", "/s/sub/deep", "op=MKDIRS", NULL);
    /* an APPEND at 13 of /s/f: Gen1 holds 3 bytes → resync of /s/f; then the directory by request */
    sub(&e, 1, WH_OP_APPEND, "/s/f", "more", P(MIRROR_PARAM_OFFSET, "13"));
    apply_req *q = mkreq_v(&e, 2, WH_OP_UNKNOWN, "/s", NULL, 0, NULL);
    q->resync = true;
    submit(&e, q);
    wait_done(2);
    ASSERT_OUTCOME(1, APPLY_RESYNCED);
    ASSERT_OUTCOME(2, APPLY_RESYNCED);
    ASSERT_TRUE(strstr(R.res[1].detail, "Gen1 holds 3 bytes") != NULL);
    ASSERT_G1_CONTENT(&e, "/s/f", "primary bytes");
    ASSERT_G1_CONTENT(&e, "/s/empty", "");
    ASSERT_G1_CONTENT(&e, "/s/sub/deep", "deep");
    ASSERT_G1_CONTENT(&e, "/s/big", big);
    free(big);
    ASSERT_TRUE(!g1_exists(&e, "/s/extra"));
    ASSERT_TRUE(!g1_exists(&e, "/s/x1"));
    ASSERT_TRUE(!g1_exists(&e, "/s/x2"));
    ASSERT_G1_CONTENT(&e, "/s/nest/n", "nested");
    ASSERT_TRUE(!g1_exists(&e, "/s/nest/gone"));
    ASSERT_G1_CONTENT(&e, "/s/odd.", "odd");
    ASSERT_TRUE(strstr(R.res[2].detail, "1 left on Gen1") != NULL);
    ASSERT_G1_FIELD(&e, "/s/f", "owner", "frank");       /* mapped back by the identity map */
    ASSERT_G1_FIELD(&e, "/s/empty", "owner", "nobody-mapped"); /* no line for it: as Gen2 has it */
    ASSERT_G1_FIELD(&e, "/s/f", "modificationTime", "1600000000000");
    char *acl = g1_acl(&e, "/s/f");
    ASSERT_TRUE(strstr(acl, "user:bob:r--") != NULL);
    free(acl);
    env_stop(&e);
}

TEST(resync_adls) { run_resync(false); }
TEST(resync_hadoop) { run_resync(true); }

/* A resync that cannot succeed (the path is a name Gen1 refuses every write to) is parked after its
 * attempts, with the reason; an unrelated write still applies. */
TEST(park)
{
    env e;
    mirror_opts t = {.resync_attempts = 2};
    env_start(&e, false, &t);
    g2_fs(&e);
    g2_file(&e, "p", "data");
    temu_fault(&e.e1, "method=PUT,op=CREATE,action=fail,status=403,path=/p");
    sub(&e, 1, WH_OP_CREATE, "/p", "data", P("overwrite", "false"));
    sub(&e, 2, WH_OP_MKDIRS, "/q", NULL, NULL);
    wait_done(2);
    ASSERT_OUTCOME(1, APPLY_PARKED);
    ASSERT_OUTCOME(2, APPLY_OK);
    ASSERT_TRUE(strstr(R.res[1].detail, "resync failed 2 times") != NULL);
    ASSERT_TRUE(strstr(R.res[1].detail, "Gen1 403") != NULL);
    dbuf st;
    dbuf_init(&st, 1 << 20);
    ASSERT_EQ_INT(mirror_status_json(e.m, &st), 0);
    ASSERT_TRUE(strstr(st.data, "\"parked\":1") != NULL);
    dbuf_free(&st);
    env_stop(&e);
}

/* A resync while Gen2's filesystem does not exist (an account-level problem, not "the path is gone")
 * waits behind the Gen2 breaker and deletes nothing on Gen1; once the filesystem is there it copies. */
TEST(gen2_fs_missing)
{
    env e;
    mirror_opts t = {.breaker_failures = 2, .breaker_probe_ms = 50};
    env_start(&e, false, &t);
    g1_ok(&e, "PUT", "/k", "op=CREATE&overwrite=false", "gen1 only");
    apply_req *q = mkreq_v(&e, 1, WH_OP_UNKNOWN, "/k", NULL, 0, NULL);
    q->resync = true;
    submit(&e, q);
    usleep(600000);
    ASSERT_EQ_INT((int)mirror_pending(e.m), 1);
    ASSERT_G1_CONTENT(&e, "/k", "gen1 only");
    dbuf st;
    dbuf_init(&st, 1 << 20);
    ASSERT_EQ_INT(mirror_status_json(e.m, &st), 0);
    ASSERT_TRUE(strstr(st.data, "\"gen2\":\"open\"") != NULL);
    dbuf_free(&st);
    g2_fs(&e);
    g2_file(&e, "k", "gen2 bytes");
    wait_done(1);
    ASSERT_OUTCOME(1, APPLY_RESYNCED);
    ASSERT_G1_CONTENT(&e, "/k", "gen2 bytes");
    env_stop(&e);
}

/* Ownership: a writer identity that may not give files away (the hadoop caller bob, with gen1.auth none)
 * leaves the file its own; the difference from the primary's owner is reported as a divergence. */
TEST(owner_divergence)
{
    env e;
    env_start(&e, true, NULL);
    g1_ok(&e, "PUT", "/home", "op=MKDIRS&permission=777", NULL);
    sub(&e, 1, WH_OP_CREATE, "/home/b", "x", P("overwrite", "false", "user.name", "bob", MIRROR_PARAM_OWNER, "zed"));
    wait_done(1);
    ASSERT_OUTCOME(1, APPLY_DIVERGENCE);
    ASSERT_TRUE(strstr(R.res[1].detail, "owner differs") != NULL);
    ASSERT_G1_FIELD(&e, "/home/b", "owner", "bob");
    ASSERT_G1_CONTENT(&e, "/home/b", "x");
    env_stop(&e);
}

/* Stop with work that cannot finish (Gen1 down): the operations end APPLY_STOPPED, once each. */
TEST(stop_pending)
{
    env e;
    env_start(&e, false, NULL);
    temu_fault(&e.e1, "action=fail,status=503");
    sub(&e, 1, WH_OP_MKDIRS, "/x", NULL, NULL);
    sub(&e, 2, WH_OP_MKDIRS, "/x/y", NULL, NULL);
    usleep(200000);
    mirror_stop(e.m, 100);
    e.m = NULL;
    wait_done(2);
    ASSERT_OUTCOME(1, APPLY_STOPPED);
    ASSERT_OUTCOME(2, APPLY_STOPPED);
    env_stop(&e);
}

/* An APPEND whose connection breaks while its body goes out (it may have reached Gen1) is decided from
 * Gen1's length before it is sent again: the bytes land once. */
TEST(reset_midbody)
{
    env e;
    env_start(&e, false, NULL);
    g1_ok(&e, "PUT", "/z", "op=CREATE&overwrite=false", "12");
    temu_fault(&e.e1, "method=POST,op=APPEND,action=reset,after_bytes=2,count=1");
    long stats = temu_counter(&e.e1, "GET GETFILESTATUS");
    sub(&e, 1, WH_OP_APPEND, "/z", "34567", P(MIRROR_PARAM_OFFSET, "2"));
    wait_done(1);
    ASSERT_OUTCOME(1, APPLY_OK);
    ASSERT_G1_CONTENT(&e, "/z", "1234567");
    ASSERT_TRUE(temu_counter(&e.e1, "GET GETFILESTATUS") > stats); /* it looked before sending again */
    env_stop(&e);
}

/* The journal's gate: a resync waits while a record of its root waits for the primary, copies again
 * when a record touched the root during the copy, and covers the records up to the epoch it settled
 * on (they end applied without a replay); a later record replays. */
static struct {
    pthread_mutex_t mu;
    int calls;
    char root[64];
} G = {PTHREAD_MUTEX_INITIALIZER, 0, ""};

static uint64_t fake_gate(void *ud, const char *root, bool *busy)
{
    (void)ud;
    pthread_mutex_lock(&G.mu);
    int n = ++G.calls;
    snprintf(G.root, sizeof G.root, "%s", root);
    pthread_mutex_unlock(&G.mu);
    *busy = n <= 3;               /* calls 1-3: a record of the root waits for the primary */
    return n <= 4 ? 10 : 11;      /* a record came in during the first copy */
}

TEST(gate)
{
    env e;
    mirror_opts t = {.gate = fake_gate};
    env_start(&e, false, &t);
    g2_fs(&e);
    g2_ok(&e, "PUT", "g", "resource=directory", NULL, NULL);
    g2_file(&e, "g/f", "gen2 says");
    apply_req *q = mkreq_v(&e, 1, WH_OP_UNKNOWN, "/g", NULL, 0, NULL);
    q->resync = true;
    submit(&e, q);
    /* would fail as a replay (Gen1 has no such file): covered by the copy instead */
    sub(&e, 5, WH_OP_APPEND, "/g/f", "zzz", P(MIRROR_PARAM_OFFSET, "999"));
    sub(&e, 12, WH_OP_MKDIRS, "/g/later", NULL, NULL);
    wait_done(3);
    ASSERT_OUTCOME(1, APPLY_RESYNCED);
    ASSERT_OUTCOME(5, APPLY_OK);
    ASSERT_TRUE(strstr(R.res[5].detail, "covered by the resync of /g") != NULL);
    ASSERT_OUTCOME(12, APPLY_OK);
    ASSERT_TRUE(strstr(R.res[12].detail, "covered") == NULL);
    pthread_mutex_lock(&G.mu);
    ASSERT_EQ_INT(G.calls, 7); /* 3 busy, before/after the first copy, before/after the second */
    ASSERT_EQ_STR(G.root, "/g");
    pthread_mutex_unlock(&G.mu);
    ASSERT_G1_CONTENT(&e, "/g/f", "gen2 says");
    ASSERT_TRUE(g1_exists(&e, "/g/later"));
    env_stop(&e);
}

TESTS(T(ops_adls), T(ops_hadoop), T(replay_adls), T(replay_hadoop), T(ordering), T(outage_adls), T(outage_hadoop),
      T(down_adls), T(down_hadoop),
      T(resync_adls), T(resync_hadoop), T(park), T(owner_divergence), T(stop_pending),
      T(reset_midbody), T(gate), T(gen2_fs_missing))
