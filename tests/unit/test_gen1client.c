/*
 * Unit tests for gen1client over real loopback HTTP, against `dualpipe-emu gen1` in both dialects
 * (adls one-step, hadoop two-step with a datanode listener): data ops with bodies from fd and memory,
 * Gen1's refusals relayed (BadOffsetException, 401, 404), odd paths and parameter values that must
 * reach Gen1 meaning what the writer meant, one-step flags and noredirect stripped, the writer's
 * Authorization passed through, the datanode rewrite map. A recording server checks the exact URL and
 * headers sent, and the handling of a 307 without a usable Location. With the proxy's own identity
 * (gen1auth) gen1c_get replaces the writer's identity (hadoop query pieces, bearer header), turns
 * Gen1's 401 into a credential that cannot be had, and waits for an OAuth2 token from the emulator's
 * token endpoint (a wrong secret fails without a request to Gen1). Streamed answers (HTTPC_BODY_STREAM)
 * in both dialects: the hadoop namenode's 307 never reaches the caller's head/body callbacks.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "gen1auth.h"
#include "gen1client.h"
#include "httpc.h"
#include "temu.h"
#include "tharness.h"
#include "whreq.h"

typedef struct env {
    temu emu;
    httpc *http;
    gen1c *g;
    dp_config *cfg;
} env;

/* A client for endpoint with rewrites given as "from", "to" pairs (NULL-terminated). */
static void env_client(env *v, const char *endpoint, bool hadoop, const char *const *rewrites)
{
    if (v->g) gen1c_free(v->g);
    v->g = NULL;
    if (!v->cfg) v->cfg = calloc(1, sizeof *v->cfg);
    dp_config *c = v->cfg;
    memset(c, 0, sizeof *c);
    snprintf(c->gen1_endpoint, sizeof c->gen1_endpoint, "%s", endpoint);
    c->gen1_dialect = hadoop ? CFG_DIALECT_HADOOP : CFG_DIALECT_ADLS;
    c->gen1_connect_timeout_ms = 2000;
    c->gen1_timeout_ms = 20000;
    for (int i = 0; rewrites && rewrites[2 * i]; i++) {
        snprintf(c->gen1_rewrites[i].from, sizeof c->gen1_rewrites[i].from, "%s", rewrites[2 * i]);
        snprintf(c->gen1_rewrites[i].to, sizeof c->gen1_rewrites[i].to, "%s", rewrites[2 * i + 1]);
        c->gen1_nrewrites = i + 1;
    }
    char err[256];
    if (gen1c_new(c, v->http, &v->g, err, sizeof err) != 0) TH_FAIL_AT("gen1c_new: %s", err);
}

static void env_start(env *v, bool hadoop, const char *token)
{
    memset(v, 0, sizeof *v);
    const char *args[8];
    int n = 0;
    if (hadoop) {
        args[n++] = "--dialect";
        args[n++] = "hadoop";
    }
    if (token) {
        args[n++] = "--token";
        args[n++] = token;
    }
    args[n] = NULL;
    temu_start(&v->emu, "gen1", args, NULL);
    if (hadoop && !v->emu.dn_port) TH_FAIL_AT("hadoop emulator without a datanode listener");
    signal(SIGPIPE, SIG_IGN);
    char err[256];
    if (httpc_start(0, &v->http, err, sizeof err) != 0) TH_FAIL_AT("httpc_start: %s", err);
    env_client(v, v->emu.url, hadoop, NULL);
}

static void env_stop(env *v)
{
    gen1c_free(v->g);
    httpc_stop(v->http);
    free(v->cfg);
    temu_stop(&v->emu);
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    httpc_resp *resp;
} waiter;

static void wait_done(void *ud, httpc_resp *resp)
{
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->resp = resp;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static httpc_resp *wait_resp(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->resp) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    httpc_resp *r = w->resp;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return r;
}

typedef struct opts {
    const char *auth, *ctype, *crid;
    const char *mem;      /* memory body (C string) */
    int in_fd;            /* fd body when in_len > 0 */
    uint64_t in_off, in_len;
    httpc_body_out out;
    size_t out_max;
    int out_fd;
} opts;

/* Send a writer's request (method + raw target as received) through gen1c_send and wait. */
static httpc_resp *g1(env *v, const char *method, const char *target, const opts *o)
{
    static const opts none = {0};
    if (!o) o = &none;
    whreq w;
    whreq_err err;
    if (whreq_parse(method, target, &w, &err) != 0) TH_FAIL_AT("whreq_parse %s: %s", target, err.message);
    const char *q = strchr(target, '?');
    waiter wt = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    gen1c_call call = {.req = &w, .raw_query = q ? q + 1 : "", .authorization = o->auth,
                       .content_type = o->ctype, .client_request_id = o->crid, .out = o->out,
                       .out_max = o->out_max, .out_fd = o->out_fd, .done = wait_done, .ud = &wt};
    if (o->mem) {
        call.in = HTTPC_IN_MEMORY;
        call.in_mem = o->mem;
        call.in_len = strlen(o->mem);
    } else if (o->in_len) {
        call.in = HTTPC_IN_FD;
        call.in_fd = o->in_fd;
        call.in_off = o->in_off;
        call.in_len = o->in_len;
    }
    if (gen1c_send(v->g, &call) != 0) TH_FAIL_AT("gen1c_send refused %s", target);
    httpc_resp *r = wait_resp(&wt);
    whreq_free(&w);
    return r;
}

static httpc_resp *g1get(env *v, const char *path, const char *params, const char *auth)
{
    waiter wt = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    if (gen1c_get(v->g, path, params, auth, HTTPC_BODY_MEMORY, 0, -1, wait_done, &wt) != 0)
        TH_FAIL_AT("gen1c_get refused %s", path);
    return wait_resp(&wt);
}

static void rfree(httpc_resp *r)
{
    httpc_resp_free(r);
    free(r);
}

/* Status of a writer request; fails the test on a transport error. */
static long st(env *v, const char *method, const char *target, const opts *o)
{
    httpc_resp *r = g1(v, method, target, o);
    if (r->result != HTTPC_OK) TH_FAIL_AT("%s %s: %s: %s", method, target, httpc_result_str(r->result), r->error);
    long s = r->status;
    rfree(r);
    return s;
}

static long get_st(env *v, const char *path, const char *params)
{
    httpc_resp *r = g1get(v, path, params, NULL);
    if (r->result != HTTPC_OK) TH_FAIL_AT("GET %s: %s", path, r->error);
    long s = r->status;
    rfree(r);
    return s;
}

static int tmp_fd(const char *content)
{
    FILE *f = tmpfile();
    if (!f) TH_FAIL_AT("tmpfile: %s", strerror(errno));
    int fd = dup(fileno(f));
    fclose(f);
    if (content && write(fd, content, strlen(content)) != (ssize_t)strlen(content)) TH_FAIL_AT("write");
    return fd;
}

static void data_ops(bool hadoop)
{
    env v;
    env_start(&v, hadoop, NULL);
    int in = tmp_fd("XXhelloYY");
    opts o = {.in_fd = in, .in_off = 2, .in_len = 5};
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/dir/f?op=CREATE&overwrite=true", &o), 201);
    opts a = {.mem = "world"};
    ASSERT_EQ_INT(st(&v, "POST", "/webhdfs/v1/dir/f?op=APPEND&offset=5&syncFlag=CLOSE", &a), 200);

    /* A wrong offset: Gen1's refusal comes back as it was. */
    opts bad = {.mem = "zz"};
    httpc_resp *r = g1(&v, "POST", "/webhdfs/v1/dir/f?op=APPEND&offset=3", &bad);
    ASSERT_EQ_INT(r->result, HTTPC_OK);
    ASSERT_EQ_INT(r->status, 400);
    ASSERT_TRUE(strstr(r->body.data, "BadOffsetException") != NULL);
    ASSERT_TRUE(strstr(httpc_resp_header(r, "Content-Type"), "json") != NULL);
    rfree(r);

    int out = tmp_fd(NULL);
    opts ro = {.out = HTTPC_BODY_FD, .out_fd = out};
    r = g1(&v, "GET", "/webhdfs/v1/dir/f?op=OPEN", &ro);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_INT(r->body_bytes, 10);
    rfree(r);
    char got[32] = {0};
    ASSERT_EQ_INT(pread(out, got, sizeof got - 1, 0), 10);
    ASSERT_EQ_STR(got, "helloworld");

    r = g1get(&v, "/dir/f", "op=GETFILESTATUS", NULL);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_TRUE(strstr(r->body.data, "\"type\":\"FILE\"") != NULL);
    ASSERT_TRUE(strstr(r->body.data, "\"length\":10") != NULL);
    rfree(r);

    /* The applier's OPEN (re-copy) goes the same way as a writer's. */
    r = g1get(&v, "/dir/f", "op=OPEN&offset=5&length=5", NULL);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_STR(r->body.data, "world");
    rfree(r);

    /* CREATE without overwrite on an existing file: refused by Gen1, relayed. */
    opts c2 = {.mem = "again"};
    r = g1(&v, "PUT", "/webhdfs/v1/dir/f?op=CREATE&overwrite=false", &c2);
    ASSERT_EQ_INT(r->status, 403);
    ASSERT_TRUE(strstr(r->body.data, "FileAlreadyExistsException") != NULL);
    rfree(r);
    close(in);
    close(out);
    env_stop(&v);
}

TEST(data_ops_adls) { data_ops(false); }
TEST(data_ops_hadoop) { data_ops(true); }

static void odd_paths(bool hadoop)
{
    env v;
    env_start(&v, hadoop, NULL);
    opts o = {.mem = "x"};
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/d%20i%20r/a+b%20%C3%BC%25.txt?op=CREATE", &o), 201);
    ASSERT_EQ_INT(get_st(&v, "/d i r/a+b \xc3\xbc%.txt", "op=GETFILESTATUS"), 200);
    ASSERT_EQ_INT(get_st(&v, "/d i r/a b \xc3\xbc%.txt", "op=GETFILESTATUS"), 404);
    /* %2F inside one segment and "//" as a client may send them: one normalised path reaches Gen1. */
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/%2Fd%20i%20r%2F%2Fsub?op=MKDIRS", NULL), 200);
    httpc_resp *r = g1get(&v, "/d i r", "op=LISTSTATUS", NULL);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_TRUE(strstr(r->body.data, "\"pathSuffix\":\"a+b \xc3\xbc%.txt\"") != NULL);
    ASSERT_TRUE(strstr(r->body.data, "\"pathSuffix\":\"sub\"") != NULL);
    rfree(r);
    env_stop(&v);
}

TEST(odd_paths_adls) { odd_paths(false); }
TEST(odd_paths_hadoop) { odd_paths(true); }

static void params_verbatim(bool hadoop)
{
    env v;
    env_start(&v, hadoop, NULL);
    opts o = {.mem = "1"};
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/dst?op=MKDIRS", NULL), 200);
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/src1?op=CREATE", &o), 201);
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/src2?op=CREATE", &o), 201);

    /* What the proxy's parser decoded is what Gen1 decodes. */
    const char *t1 = "/webhdfs/v1/src1?op=RENAME&destination=%2Fdst%2Fa%2Bb%26c";
    whreq w;
    whreq_err err;
    ASSERT_EQ_INT(whreq_parse("PUT", t1, &w, &err), 0);
    ASSERT_EQ_STR(whreq_param_get(&w, "destination"), "/dst/a+b&c");
    whreq_free(&w);
    httpc_resp *r = g1(&v, "PUT", t1, NULL);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_TRUE(strstr(r->body.data, "\"boolean\":true") != NULL);
    rfree(r);
    ASSERT_EQ_INT(get_st(&v, "/dst/a+b&c", "op=GETFILESTATUS"), 200);

    /* '+' in a query value is a space (form encoding), for the proxy and for Gen1 alike. */
    const char *t2 = "/webhdfs/v1/src2?op=RENAME&destination=/dst/c+d";
    ASSERT_EQ_INT(whreq_parse("PUT", t2, &w, &err), 0);
    ASSERT_EQ_STR(whreq_param_get(&w, "destination"), "/dst/c d");
    whreq_free(&w);
    ASSERT_EQ_INT(st(&v, "PUT", t2, NULL), 200);
    ASSERT_EQ_INT(get_st(&v, "/dst/c d", "op=GETFILESTATUS"), 200);
    ASSERT_EQ_INT(get_st(&v, "/dst/c+d", "op=GETFILESTATUS"), 404);
    env_stop(&v);
}

TEST(params_verbatim_adls) { params_verbatim(false); }
TEST(params_verbatim_hadoop) { params_verbatim(true); }

TEST(one_step_flags_are_the_dialects_choice)
{
    env v;
    env_start(&v, false, NULL);
    /* A writer's flag (any case, any value) is replaced by the dialect's: these would 307 otherwise. */
    opts o = {.mem = "abc"};
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/ff?op=CREATE&WRITE=false&overwrite=true", &o), 201);
    opts a = {.mem = "d"};
    ASSERT_EQ_INT(st(&v, "POST", "/webhdfs/v1/ff?Append=false&op=APPEND&offset=3", &a), 200);
    httpc_resp *r = g1(&v, "GET", "/webhdfs/v1/ff?op=OPEN&read=false&noredirect=true", NULL);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_STR(r->body.data, "abcd");
    rfree(r);
    env_stop(&v);

    /* hadoop: noredirect=true would turn the namenode's 307 into a 200 JSON answer. */
    env_start(&v, true, NULL);
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/hh?op=CREATE&noredirect=true&write=true", &o), 201);
    r = g1(&v, "GET", "/webhdfs/v1/hh?op=OPEN&noredirect=true", NULL);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_STR(r->body.data, "abc");
    rfree(r);
    env_stop(&v);
}

static void authorization(bool hadoop)
{
    env v;
    env_start(&v, hadoop, "T0ken");
    opts with = {.auth = "Bearer T0ken", .mem = "data"};
    opts wrong = {.auth = "Bearer nope", .mem = "data"};
    opts without = {.mem = "data"};
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/a?op=CREATE", &with), 201);
    httpc_resp *r = g1(&v, "PUT", "/webhdfs/v1/b?op=CREATE", &without);
    ASSERT_EQ_INT(r->status, 401);
    ASSERT_TRUE(strstr(r->body.data, "SecurityException") != NULL);
    rfree(r);
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/b?op=CREATE", &wrong), 401);
    with.out = HTTPC_BODY_MEMORY;
    with.mem = NULL;
    r = g1(&v, "GET", "/webhdfs/v1/a?op=OPEN", &with);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_STR(r->body.data, "data");
    rfree(r);
    r = g1get(&v, "/a", "op=GETFILESTATUS", "Bearer T0ken");
    ASSERT_EQ_INT(r->status, 200);
    rfree(r);
    r = g1get(&v, "/a", "op=GETFILESTATUS", NULL);
    ASSERT_EQ_INT(r->status, 401);
    rfree(r);
    env_stop(&v);
}

TEST(authorization_adls) { authorization(false); }
TEST(authorization_hadoop) { authorization(true); }

TEST(hadoop_datanode_rewrite)
{
    env v;
    env_start(&v, true, NULL);
    char from[64], to[64], dead[64];
    snprintf(from, sizeof from, "127.0.0.1:%d", v.emu.dn_port);
    snprintf(to, sizeof to, "localhost:%d", v.emu.dn_port);
    snprintf(dead, sizeof dead, "127.0.0.1:%d", temu_dead_port());

    const char *good[] = {"127.0.0.1:1", dead, from, to, NULL};
    env_client(&v, v.emu.url, true, good);
    opts o = {.mem = "via-localhost"};
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/rw?op=CREATE", &o), 201);
    httpc_resp *r = g1(&v, "GET", "/webhdfs/v1/rw?op=OPEN", NULL);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_STR(r->body.data, "via-localhost");
    rfree(r);

    /* A mapping to a dead port shows the rewrite is applied to the datanode step only. */
    const char *bad[] = {from, dead, NULL};
    env_client(&v, v.emu.url, true, bad);
    r = g1(&v, "PUT", "/webhdfs/v1/rw2?op=CREATE", &o);
    ASSERT_EQ_INT(r->result, HTTPC_E_CONNECT);
    rfree(r);
    ASSERT_EQ_INT(get_st(&v, "/rw", "op=GETFILESTATUS"), 200);
    env_stop(&v);
}

TEST(hadoop_namenode_answer_is_final)
{
    env v;
    env_start(&v, true, NULL);
    /* APPEND/OPEN of a missing file: the namenode's 404 is the answer, in the form asked for. */
    opts a = {.mem = "x"};
    httpc_resp *r = g1(&v, "POST", "/webhdfs/v1/missing?op=APPEND", &a);
    ASSERT_EQ_INT(r->status, 404);
    ASSERT_TRUE(strstr(r->body.data, "FileNotFoundException") != NULL);
    rfree(r);
    int out = tmp_fd(NULL);
    opts ro = {.out = HTTPC_BODY_FD, .out_fd = out};
    r = g1(&v, "GET", "/webhdfs/v1/missing?op=OPEN", &ro);
    ASSERT_EQ_INT(r->status, 404);
    ASSERT_TRUE(r->body.data == NULL);
    rfree(r);
    char got[512] = {0};
    ASSERT_TRUE(pread(out, got, sizeof got - 1, 0) > 0);
    ASSERT_TRUE(strstr(got, "FileNotFoundException") != NULL);
    opts small = {.out = HTTPC_BODY_MEMORY, .out_max = 8};
    r = g1(&v, "GET", "/webhdfs/v1/missing?op=OPEN", &small);
    ASSERT_EQ_INT(r->result, HTTPC_E_TOO_BIG);
    rfree(r);
    close(out);
    env_stop(&v);
}

/* ---- streamed answers ---- */

typedef struct collect {
    int heads;
    long status;
    char *buf;
    size_t n, cap;
} collect;

static void col_head(void *ud, const httpc_resp *resp)
{
    collect *c = ud;
    c->heads++;
    c->status = resp->status;
}

static size_t col_body(void *ud, const char *p, size_t n)
{
    collect *c = ud;
    if (c->n + n > c->cap) return 0; /* more than expected: abort */
    memcpy(c->buf + c->n, p, n);
    c->n += n;
    return n;
}

typedef struct scall {
    collect col;
    waiter wt;
} scall;

static void scall_done(void *ud, httpc_resp *resp) { wait_done(&((scall *)ud)->wt, resp); }

static size_t scall_body(void *ud, const char *p, size_t n) { return col_body(&((scall *)ud)->col, p, n); }

static void scall_head(void *ud, const httpc_resp *resp) { col_head(&((scall *)ud)->col, resp); }

/* GET target streamed through gen1c_send; body collected into c (at most cap bytes). */
static httpc_resp *g1_stream(env *v, const char *target, scall *sc, size_t cap)
{
    whreq w;
    whreq_err err;
    if (whreq_parse("GET", target, &w, &err) != 0) TH_FAIL_AT("whreq_parse %s: %s", target, err.message);
    memset(sc, 0, sizeof *sc);
    sc->wt = (waiter){.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    sc->col.buf = malloc(cap);
    sc->col.cap = cap;
    const char *q = strchr(target, '?');
    gen1c_call call = {.req = &w, .raw_query = q ? q + 1 : "", .out = HTTPC_BODY_STREAM, .on_head = scall_head,
                       .on_body = scall_body, .done = scall_done, .ud = sc};
    if (gen1c_send(v->g, &call) != 0) TH_FAIL_AT("gen1c_send refused %s", target);
    httpc_resp *r = wait_resp(&sc->wt);
    whreq_free(&w);
    return r;
}

static void stream_answers(bool hadoop)
{
    env v;
    env_start(&v, hadoop, NULL);
    enum { N = 600000 };
    char *data = malloc(N + 1);
    for (int i = 0; i < N; i++) data[i] = (char)('a' + (i * 13 + i / 1000) % 26);
    data[N] = '\0';
    opts o = {.mem = data};
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/s/f?op=CREATE&overwrite=true", &o), 201);
    scall sc;
    httpc_resp *r = g1_stream(&v, "/webhdfs/v1/s/f?op=OPEN", &sc, N);
    ASSERT_EQ_INT(r->result, HTTPC_OK);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_INT(sc.col.heads, 1); /* only the final answer's head: a namenode 307 stays inside */
    ASSERT_EQ_INT(sc.col.status, 200);
    ASSERT_EQ_INT(sc.col.n, N);
    ASSERT_TRUE(memcmp(sc.col.buf, data, N) == 0);
    ASSERT_EQ_INT(r->body.len, 0); /* nothing kept in memory */
    rfree(r);
    free(sc.col.buf);
    r = g1_stream(&v, "/webhdfs/v1/s/f?op=OPEN&offset=1000&length=10", &sc, N);
    ASSERT_EQ_INT(sc.col.n, 10);
    ASSERT_TRUE(memcmp(sc.col.buf, data + 1000, 10) == 0);
    rfree(r);
    free(sc.col.buf);
    /* The namenode's own final answer (404) streams to the caller like any other. */
    r = g1_stream(&v, "/webhdfs/v1/s/missing?op=OPEN", &sc, 4096);
    ASSERT_EQ_INT(r->status, 404);
    ASSERT_EQ_INT(sc.col.heads, 1);
    ASSERT_EQ_INT(sc.col.status, 404);
    ASSERT_TRUE(sc.col.n > 0 && memmem(sc.col.buf, sc.col.n, "FileNotFoundException", 21) != NULL);
    rfree(r);
    free(sc.col.buf);
    /* A listing streams too. */
    r = g1_stream(&v, "/webhdfs/v1/s?op=LISTSTATUS", &sc, 65536);
    ASSERT_EQ_INT(sc.col.status, 200);
    ASSERT_TRUE(memmem(sc.col.buf, sc.col.n, "\"pathSuffix\":\"f\"", 15) != NULL);
    rfree(r);
    free(sc.col.buf);
    free(data);
    env_stop(&v);
}

TEST(stream_answers_adls) { stream_answers(false); }
TEST(stream_answers_hadoop) { stream_answers(true); }

static temu_srv srv;

static int count_header_lines(const char *head)
{
    int n = 0;
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) n++;
    return n;
}

TEST(wire_request)
{
    temu_srv_start(&srv, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    env v;
    memset(&v, 0, sizeof v);
    char err[256], ep[64], head[TEMU_SRV_HEAD];
    signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ_INT(httpc_start(0, &v.http, err, sizeof err), 0);
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/", srv.port);
    env_client(&v, ep, false, NULL);

    opts o = {.auth = "Bearer tok", .ctype = "application/octet-stream", .crid = "abc-123", .mem = "hello"};
    ASSERT_EQ_INT(st(&v, "PUT",
                     "/webhdfs/v1/a%20b//c+d/?op=CREATE&overwrite=true&user.name=bob&dest=%2Fx+y&note=\xc3\xbc"
                     "&Write=true",
                     &o),
                  201);
    temu_srv_last(&srv, head, sizeof head);
    const char *line = "PUT /webhdfs/v1/a%20b/c%2Bd?op=CREATE&overwrite=true&user.name=bob&dest=%2Fx+y&note=%C3%BC"
                       "&write=true HTTP/1.1\r\n";
    ASSERT_TRUE(strncmp(head, line, strlen(line)) == 0);
    ASSERT_TRUE(temu_head_has(head, "Authorization", "Bearer tok"));
    ASSERT_TRUE(temu_head_has(head, "Content-Type", "application/octet-stream"));
    ASSERT_TRUE(temu_head_has(head, "x-ms-client-request-id", "abc-123"));
    ASSERT_TRUE(temu_head_has(head, "Content-Length", "5"));
    ASSERT_TRUE(temu_head_has(head, "Host", NULL));
    ASSERT_EQ_INT(count_header_lines(head), 5); /* nothing invented */

    /* CONCURRENTAPPEND goes under /WebHdfsExt, with no flag; MKDIRS under /webhdfs/v1 whatever the writer used. */
    opts c = {.mem = "z"};
    ASSERT_EQ_INT(st(&v, "POST", "/WebHdfsExt/%2Fdir%2Ffile?appendMode=autocreate&op=CONCURRENTAPPEND", &c), 201);
    temu_srv_last(&srv, head, sizeof head);
    line = "POST /WebHdfsExt/dir/file?appendMode=autocreate&op=CONCURRENTAPPEND HTTP/1.1\r\n";
    ASSERT_TRUE(strncmp(head, line, strlen(line)) == 0);
    ASSERT_EQ_INT(count_header_lines(head), 2);
    ASSERT_EQ_INT(st(&v, "PUT", "/WEBHDFSEXT/m?op=MKDIRS&permission=750", NULL), 201);
    temu_srv_last(&srv, head, sizeof head);
    line = "PUT /webhdfs/v1/m?op=MKDIRS&permission=750 HTTP/1.1\r\n";
    ASSERT_TRUE(strncmp(head, line, strlen(line)) == 0);
    ASSERT_TRUE(temu_head_has(head, "Content-Length", "0"));

    /* gen1c_get: OPEN gets read=true in the adls dialect; GET carries no body headers. */
    httpc_resp *r = g1get(&v, "/a b", "op=OPEN&offset=1", "Bearer x");
    rfree(r);
    temu_srv_last(&srv, head, sizeof head);
    line = "GET /webhdfs/v1/a%20b?op=OPEN&offset=1&read=true HTTP/1.1\r\n";
    ASSERT_TRUE(strncmp(head, line, strlen(line)) == 0);
    ASSERT_TRUE(temu_head_has(head, "Authorization", "Bearer x"));
    ASSERT_EQ_INT(count_header_lines(head), 2);
    r = g1get(&v, "/", "op=LISTSTATUS", NULL);
    rfree(r);
    temu_srv_last(&srv, head, sizeof head);
    line = "GET /webhdfs/v1/?op=LISTSTATUS HTTP/1.1\r\n";
    ASSERT_TRUE(strncmp(head, line, strlen(line)) == 0);
    env_stop(&v);
}

TEST(hadoop_redirect_handling)
{
    temu_srv_start(&srv, "HTTP/1.1 307 Temporary Redirect\r\nLocation: /relative\r\nContent-Length: 0\r\n\r\n");
    env v;
    memset(&v, 0, sizeof v);
    char err[256], ep[64], head[TEMU_SRV_HEAD], reply[256];
    signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ_INT(httpc_start(0, &v.http, err, sizeof err), 0);
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv.port);
    env_client(&v, ep, true, NULL);
    opts o = {.mem = "hello"};

    httpc_resp *r = g1(&v, "PUT", "/webhdfs/v1/f?op=CREATE&write=true", &o);
    ASSERT_EQ_INT(r->result, HTTPC_E_TRANSPORT);
    ASSERT_EQ_INT(r->status, 0);
    ASSERT_TRUE(strstr(r->error, "Location") != NULL);
    rfree(r);
    temu_srv_last(&srv, head, sizeof head);
    ASSERT_TRUE(strncmp(head, "PUT /webhdfs/v1/f?op=CREATE HTTP/1.1\r\n", 38) == 0); /* no flag, no body */
    ASSERT_TRUE(temu_head_has(head, "Content-Length", "0"));

    temu_srv_set_reply(&srv, "HTTP/1.1 307 Temporary Redirect\r\nContent-Length: 0\r\n\r\n");
    r = g1(&v, "PUT", "/webhdfs/v1/f?op=CREATE", &o);
    ASSERT_EQ_INT(r->result, HTTPC_E_TRANSPORT);
    rfree(r);
    temu_srv_set_reply(&srv, "HTTP/1.1 307 Temporary Redirect\r\nLocation: ftp://h/x\r\nContent-Length: 0\r\n\r\n");
    r = g1(&v, "PUT", "/webhdfs/v1/f?op=CREATE", &o);
    ASSERT_EQ_INT(r->result, HTTPC_E_TRANSPORT);
    rfree(r);

    /* A good Location: the body goes there with the same method; that answer is final (even a 307). */
    snprintf(reply, sizeof reply,
             "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://datanode.invalid:1/dn/f?op=APPEND&x=%%2F\r\n"
             "Content-Length: 0\r\n\r\n");
    temu_srv_set_reply(&srv, reply);
    char from[] = "datanode.invalid:1", to[64];
    snprintf(to, sizeof to, "127.0.0.1:%d", srv.port);
    const char *rw[] = {from, to, NULL};
    env_client(&v, ep, true, rw);
    pthread_mutex_lock(&srv.mu);
    int before = srv.nreq;
    pthread_mutex_unlock(&srv.mu);
    r = g1(&v, "POST", "/webhdfs/v1/f?op=APPEND", &o);
    ASSERT_EQ_INT(r->result, HTTPC_OK);
    ASSERT_EQ_INT(r->status, 307);
    rfree(r);
    temu_srv_last(&srv, head, sizeof head);
    ASSERT_TRUE(strncmp(head, "POST /dn/f?op=APPEND&x=%2F HTTP/1.1\r\n", 37) == 0);
    ASSERT_TRUE(temu_head_has(head, "Content-Length", "5"));
    pthread_mutex_lock(&srv.mu);
    ASSERT_EQ_INT(srv.nreq - before, 2);
    ASSERT_EQ_MEM(srv.body, "hello", 5);
    pthread_mutex_unlock(&srv.mu);
    env_stop(&v);
}

/* A client of v's emulator (or server) with the proxy's own identity from cfg's gen1.auth keys. */
static g1a *with_identity(env *v, void (*set)(dp_config *c, void *ud), void *ud)
{
    set(v->cfg, ud);
    g1a *id = NULL;
    char err[256];
    if (g1a_new(v->cfg, v->http, &id, err, sizeof err) != 0) TH_FAIL_AT("g1a_new: %s", err);
    gen1c_set_identity(v->g, id);
    return id;
}

static void set_hadoop(dp_config *c, void *ud)
{
    (void)ud;
    c->gen1_auth = CFG_G1AUTH_HADOOP;
    snprintf(c->gen1_user, sizeof c->gen1_user, "svc");
    snprintf(c->gen1_doas, sizeof c->gen1_doas, "hdfs");
}

static void set_bearer(dp_config *c, void *ud)
{
    c->gen1_auth = CFG_G1AUTH_BEARER;
    c->gen1_token.value = ud;
}

TEST(proxy_identity_replaces_the_writers)
{
    temu_srv_start(&srv, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    env v;
    memset(&v, 0, sizeof v);
    char err[256], ep[64], head[TEMU_SRV_HEAD];
    signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ_INT(httpc_start(0, &v.http, err, sizeof err), 0);
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv.port);
    env_client(&v, ep, false, NULL);
    /* hadoop: the writer's user.name, doas and delegation and its Authorization are all replaced */
    g1a *id = with_identity(&v, set_hadoop, NULL);
    httpc_resp *r = g1get(&v, "/a", "op=GETFILESTATUS&user.name=bob&doas=alice&delegation=D1&x=1", "Bearer w");
    ASSERT_EQ_INT(r->status, 200);
    rfree(r);
    temu_srv_last(&srv, head, sizeof head);
    const char *line = "GET /webhdfs/v1/a?op=GETFILESTATUS&x=1&user.name=svc&doas=hdfs HTTP/1.1\r\n";
    if (strncmp(head, line, strlen(line)) != 0) TH_FAIL_AT("sent %.200s", head);
    ASSERT_TRUE(!temu_head_has(head, "Authorization", NULL));
    /* a writer's own request is never touched */
    opts o = {.auth = "Bearer w", .mem = "x"};
    ASSERT_EQ_INT(st(&v, "PUT", "/webhdfs/v1/b?op=CREATE&user.name=bob", &o), 200);
    temu_srv_last(&srv, head, sizeof head);
    line = "PUT /webhdfs/v1/b?op=CREATE&user.name=bob&write=true HTTP/1.1\r\n";
    ASSERT_TRUE(strncmp(head, line, strlen(line)) == 0);
    ASSERT_TRUE(temu_head_has(head, "Authorization", "Bearer w"));
    g1a_free(id);

    /* bearer: its token instead of the writer's; Gen1's 401 to it is a credential that cannot be had */
    env_client(&v, ep, false, NULL);
    char tok[] = "proxy-tok";
    id = with_identity(&v, set_bearer, tok);
    temu_srv_set_reply(&srv, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}");
    r = g1get(&v, "/a", "op=OPEN&user.name=bob", "Bearer w");
    ASSERT_EQ_INT(r->result, HTTPC_E_AUTH);
    ASSERT_TRUE(strstr(r->error, "401") != NULL && strstr(r->error, "bearer") != NULL);
    ASSERT_TRUE(strstr(r->error, tok) == NULL);
    rfree(r);
    temu_srv_last(&srv, head, sizeof head);
    line = "GET /webhdfs/v1/a?op=OPEN&read=true HTTP/1.1\r\n";
    ASSERT_TRUE(strncmp(head, line, strlen(line)) == 0);
    ASSERT_TRUE(temu_head_has(head, "Authorization", "Bearer proxy-tok"));
    v.cfg->gen1_token.value = NULL;
    g1a_free(id);
    env_stop(&v);
}

static void set_cc(dp_config *c, void *ud)
{
    const char *const *kv = ud; /* authority, secret */
    c->gen1_auth = CFG_G1AUTH_CLIENT_CREDENTIALS;
    c->gen1_token_api = CFG_TOKEN_API_V1;
    snprintf(c->gen1_authority, sizeof c->gen1_authority, "%s", kv[0]);
    snprintf(c->gen1_tenant, sizeof c->gen1_tenant, "contoso");
    snprintf(c->gen1_client_id, sizeof c->gen1_client_id, "app");
    snprintf(c->gen1_resource, sizeof c->gen1_resource, "https://datalake.azure.net/");
    c->gen1_client_secret.value = (char *)kv[1];
    c->gen1_refresh_margin_s = 300;
}

TEST(proxy_identity_client_credentials)
{
    env v;
    memset(&v, 0, sizeof v);
    const char *args[] = {"--identity", "W=wtok", "--oauth-client-id", "app", NULL};
    temu_start(&v.emu, "gen1", args, "right");
    signal(SIGPIPE, SIG_IGN);
    char err[256];
    ASSERT_EQ_INT(httpc_start(0, &v.http, err, sizeof err), 0);
    env_client(&v, v.emu.url, false, NULL);
    /* the first request waits for the first token, then carries it */
    const char *good[] = {v.emu.url, "right"};
    g1a *id = with_identity(&v, set_cc, (void *)good);
    httpc_resp *r = g1get(&v, "/", "op=GETFILESTATUS", NULL);
    ASSERT_EQ_INT(r->result, HTTPC_OK);
    ASSERT_EQ_INT(r->status, 200);
    rfree(r);
    ASSERT_EQ_INT(temu_counter(&v.emu, "POST TOKEN"), 1);
    r = g1get(&v, "/", "op=LISTSTATUS", "Bearer wtok");
    ASSERT_EQ_INT(r->status, 200);
    rfree(r);
    ASSERT_EQ_INT(temu_counter(&v.emu, "POST TOKEN"), 1); /* cached */
    char *body = NULL;
    ASSERT_EQ_INT(temu_admin(&v.emu, "GET", "/counters", NULL, &body), 200);
    ASSERT_TRUE(strstr(body, "\"oauth\":{\"total\":2") != NULL);
    ASSERT_TRUE(strstr(body, "\"W\"") == NULL);
    free(body);
    v.cfg->gen1_client_secret.value = NULL;
    g1a_free(id);

    /* a wrong secret: no request reaches Gen1, the answer says why without the secret */
    env_client(&v, v.emu.url, false, NULL);
    const char *bad[] = {v.emu.url, "wrong-s3cret"};
    id = with_identity(&v, set_cc, (void *)bad);
    long before = temu_counter(&v.emu, "GET GETFILESTATUS");
    r = g1get(&v, "/", "op=GETFILESTATUS", NULL);
    ASSERT_EQ_INT(r->result, HTTPC_E_AUTH);
    ASSERT_TRUE(strstr(r->error, "invalid_client") != NULL);
    ASSERT_TRUE(strstr(r->error, "wrong-s3cret") == NULL);
    rfree(r);
    ASSERT_EQ_INT(temu_counter(&v.emu, "GET GETFILESTATUS"), before);
    v.cfg->gen1_client_secret.value = NULL;
    g1a_free(id);
    env_stop(&v);
}

TESTS(T(data_ops_adls), T(data_ops_hadoop), T(odd_paths_adls), T(odd_paths_hadoop), T(params_verbatim_adls),
      T(params_verbatim_hadoop), T(one_step_flags_are_the_dialects_choice), T(authorization_adls),
      T(authorization_hadoop), T(hadoop_datanode_rewrite), T(hadoop_namenode_answer_is_final), T(wire_request),
      T(hadoop_redirect_handling), T(proxy_identity_replaces_the_writers), T(proxy_identity_client_credentials),
      T(stream_answers_adls), T(stream_answers_hadoop))
