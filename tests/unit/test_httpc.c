/*
 * Unit tests for httpc, over real loopback HTTP: against `dualpipe-emu gen1` (bodies from memory and
 * from fd ranges, responses to memory/fd/discard, size limit, timeouts from an injected latency fault,
 * cancellation at stop, keep-alive reuse, 200 concurrent requests, follow-ups submitted from a
 * callback, streamed answers with pause/resume/cancel through an httpc_ctl), against a server that drops
 * a reused connection after reading a request (httpc_req.once: not sent twice) and against a small recording server that shows the exact request bytes (Content-Length:
 * 0 on body-less writes, no Expect / Transfer-Encoding / Accept, empty header values, only the final
 * response's headers after a 1xx). Also: several streams paused and resumed from their own threads among 200
 * other exchanges, a resume asked from the engine thread itself (inside on_body), and a timeout that fires
 * while the only other transfer sits paused (no socket event to wake the engine: only libcurl's timer).
 * The CRC-32C of a body written to an fd (what the applier's copies use instead of reading the part
 * back), and which TLS rule a URL gets: the same answers as libcurl's URL parser gives (the code before
 * the in-place reading of URLs), for http/https, explicit and default ports, case, IPv6, odd forms.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "crc32c.h"
#include "httpc.h"
#include "temu.h"
#include "tharness.h"

static httpc *start(unsigned maxh)
{
    httpc *e = NULL;
    char err[256];
    signal(SIGPIPE, SIG_IGN);
    if (httpc_start(maxh, &e, err, sizeof err) != 0) TH_FAIL_AT("httpc_start: %s", err);
    return e;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Blocking request with an optional memory body, response to memory. */
static httpc_resp req_mem(httpc *e, const char *method, const char *url, const void *body, size_t blen)
{
    httpc_req r = {.method = method, .url = url, .out = HTTPC_BODY_MEMORY};
    if (body) {
        r.in = HTTPC_IN_MEMORY;
        r.in_mem = body;
        r.in_len = blen;
    }
    httpc_resp resp;
    if (httpc_do(e, &r, &resp) != 0) TH_FAIL_AT("httpc_do refused %s %s", method, url);
    return resp;
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

static void url_of(char *buf, size_t cap, const temu *emu, const char *rest)
{
    snprintf(buf, cap, "%s%s", emu->url, rest);
}

TEST(get_json_to_memory)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    url_of(url, sizeof url, &emu, "/webhdfs/v1/?op=GETFILESTATUS");
    httpc_resp r = req_mem(e, "GET", url, NULL, 0);
    ASSERT_EQ_INT(r.result, HTTPC_OK);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_TRUE(strstr(r.body.data, "\"type\":\"DIRECTORY\"") != NULL);
    ASSERT_EQ_INT(r.body_bytes, r.body.len);
    const char *ct = httpc_resp_header(&r, "content-TYPE");
    ASSERT_TRUE(ct && strstr(ct, "application/json"));
    ASSERT_TRUE(r.total_s > 0 && r.total_s < 5);
    httpc_resp_free(&r);
    httpc_stop(e);
}

TEST(put_from_fd_range_then_open_to_fd)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    int in = tmp_fd("XXXXhello worldYYYY");
    url_of(url, sizeof url, &emu, "/webhdfs/v1/dir/f?op=CREATE&write=true");
    httpc_req r = {.method = "PUT", .url = url, .in = HTTPC_IN_FD, .in_fd = in, .in_off = 4, .in_len = 11,
                   .out = HTTPC_BODY_MEMORY};
    httpc_resp resp;
    ASSERT_EQ_INT(httpc_do(e, &r, &resp), 0);
    ASSERT_EQ_INT(resp.result, HTTPC_OK);
    ASSERT_EQ_INT(resp.status, 201);
    httpc_resp_free(&resp);

    /* APPEND with a memory body (POST). */
    url_of(url, sizeof url, &emu, "/webhdfs/v1/dir/f?op=APPEND&append=true&offset=11");
    resp = req_mem(e, "POST", url, "!!", 2);
    ASSERT_EQ_INT(resp.status, 200);
    httpc_resp_free(&resp);

    int out = tmp_fd(NULL);
    url_of(url, sizeof url, &emu, "/webhdfs/v1/dir/f?op=OPEN&read=true");
    httpc_req g = {.method = "GET", .url = url, .out = HTTPC_BODY_FD, .out_fd = out};
    ASSERT_EQ_INT(httpc_do(e, &g, &resp), 0);
    ASSERT_EQ_INT(resp.result, HTTPC_OK);
    ASSERT_EQ_INT(resp.status, 200);
    ASSERT_EQ_INT(resp.body_bytes, 13);
    ASSERT_TRUE(resp.body.data == NULL);
    httpc_resp_free(&resp);
    char got[32] = {0};
    ASSERT_EQ_INT(pread(out, got, sizeof got - 1, 0), 13);
    ASSERT_EQ_STR(got, "hello world!!");

    /* Same data to memory, and discarded (only counted). */
    resp = req_mem(e, "GET", url, NULL, 0);
    ASSERT_EQ_STR(resp.body.data, "hello world!!");
    httpc_resp_free(&resp);
    g.out = HTTPC_BODY_DISCARD;
    ASSERT_EQ_INT(httpc_do(e, &g, &resp), 0);
    ASSERT_EQ_INT(resp.status, 200);
    ASSERT_EQ_INT(resp.body_bytes, 13);
    ASSERT_EQ_INT(resp.body.len, 0);
    httpc_resp_free(&resp);
    close(in);
    close(out);
    httpc_stop(e);
}

TEST(redirect_is_not_followed)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    url_of(url, sizeof url, &emu, "/webhdfs/v1/r?op=CREATE");
    httpc_resp r = req_mem(e, "PUT", url, NULL, 0);
    ASSERT_EQ_INT(r.result, HTTPC_OK);
    ASSERT_EQ_INT(r.status, 307);
    const char *loc = httpc_resp_header(&r, "Location");
    ASSERT_TRUE(loc && strstr(loc, "write=true"));
    httpc_resp_free(&r);
    url_of(url, sizeof url, &emu, "/webhdfs/v1/r?op=GETFILESTATUS");
    r = req_mem(e, "GET", url, NULL, 0);
    ASSERT_EQ_INT(r.status, 404); /* the redirect was not followed: nothing was created */
    httpc_resp_free(&r);
    httpc_stop(e);
}

static temu_srv srv;

TEST(wire_format)
{
    temu_srv_start(&srv, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    httpc *e = start(0);
    char url[256], head[TEMU_SRV_HEAD];

    snprintf(url, sizeof url, "http://127.0.0.1:%d/a?x=1", srv.port);
    httpc_resp r = req_mem(e, "DELETE", url, NULL, 0);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(r.body.data, "ok");
    httpc_resp_free(&r);
    temu_srv_last(&srv, head, sizeof head);
    ASSERT_TRUE(strncmp(head, "DELETE /a?x=1 HTTP/1.1\r\n", 24) == 0);
    ASSERT_TRUE(temu_head_has(head, "Content-Length", "0"));
    ASSERT_TRUE(!temu_head_has(head, "Expect", NULL));
    ASSERT_TRUE(!temu_head_has(head, "Transfer-Encoding", NULL));
    ASSERT_TRUE(!temu_head_has(head, "Accept", NULL));

    snprintf(url, sizeof url, "http://127.0.0.1:%d/p", srv.port);
    r = req_mem(e, "POST", url, NULL, 0);
    httpc_resp_free(&r);
    temu_srv_last(&srv, head, sizeof head);
    ASSERT_TRUE(strncmp(head, "POST /p HTTP/1.1\r\n", 18) == 0);
    ASSERT_TRUE(temu_head_has(head, "Content-Length", "0"));
    ASSERT_TRUE(!temu_head_has(head, "Content-Type", NULL));

    /* A large body (libcurl would ask for 100-continue above 1 MiB) goes with Content-Length only. */
    size_t big = 1536 * 1024;
    char *body = malloc(big);
    for (size_t i = 0; i < big; i++) body[i] = (char)('a' + i % 26);
    r = req_mem(e, "PATCH", url, body, big);
    ASSERT_EQ_INT(r.status, 200);
    httpc_resp_free(&r);
    temu_srv_last(&srv, head, sizeof head);
    ASSERT_TRUE(strncmp(head, "PATCH /p HTTP/1.1\r\n", 19) == 0);
    ASSERT_TRUE(temu_head_has(head, "Content-Length", "1572864"));
    ASSERT_TRUE(!temu_head_has(head, "Expect", NULL));
    ASSERT_TRUE(!temu_head_has(head, "Transfer-Encoding", NULL));
    pthread_mutex_lock(&srv.mu);
    ASSERT_EQ_INT(srv.body_len, big);
    ASSERT_EQ_MEM(srv.body, body, big);
    pthread_mutex_unlock(&srv.mu);
    free(body);

    /* Caller headers pass as given, including an empty value and the caller's own Accept. */
    httpc_req q = {.method = "PUT", .url = url, .out = HTTPC_BODY_MEMORY,
                   .headers = {"Authorization: Bearer abc", "X-Empty:", "Accept: application/json"}};
    ASSERT_EQ_INT(httpc_do(e, &q, &r), 0);
    ASSERT_EQ_INT(r.status, 200);
    httpc_resp_free(&r);
    temu_srv_last(&srv, head, sizeof head);
    ASSERT_TRUE(strncmp(head, "PUT /p HTTP/1.1\r\n", 17) == 0);
    ASSERT_TRUE(temu_head_has(head, "Authorization", "Bearer abc"));
    ASSERT_TRUE(temu_head_has(head, "X-Empty", ""));
    ASSERT_TRUE(temu_head_has(head, "Accept", "application/json"));
    ASSERT_TRUE(temu_head_has(head, "Content-Length", "0"));

    /* GET carries no Content-Length. */
    r = req_mem(e, "GET", url, NULL, 0);
    httpc_resp_free(&r);
    temu_srv_last(&srv, head, sizeof head);
    ASSERT_TRUE(strncmp(head, "GET /p HTTP/1.1\r\n", 17) == 0);
    ASSERT_TRUE(!temu_head_has(head, "Content-Length", NULL));

    /* HEAD: headers only, the announced body is not waited for. */
    temu_srv_set_reply(&srv, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-H: 1\r\n\r\n");
    r = req_mem(e, "HEAD", url, NULL, 0);
    ASSERT_EQ_INT(r.result, HTTPC_OK);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(httpc_resp_header(&r, "x-h"), "1");
    ASSERT_EQ_INT(r.body_bytes, 0);
    httpc_resp_free(&r);
    temu_srv_last(&srv, head, sizeof head);
    ASSERT_TRUE(strncmp(head, "HEAD /p HTTP/1.1\r\n", 18) == 0);

    /* Malformed requests are refused at submit. */
    httpc_req bad = {.method = "get", .url = url, .out = HTTPC_BODY_MEMORY};
    ASSERT_EQ_INT(httpc_do(e, &bad, &r), -1);
    bad.method = "GET";
    bad.url = NULL;
    ASSERT_EQ_INT(httpc_do(e, &bad, &r), -1);
    httpc_stop(e);
}

TEST(final_response_headers_only)
{
    temu_srv_start(&srv, "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
                       "HTTP/1.1 201 Created\r\nX-Final: yes\r\nX-Spaces:   padded  \r\nContent-Length: 3\r\n\r\nabc");
    httpc *e = start(0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", srv.port);
    httpc_resp r = req_mem(e, "PUT", url, "z", 1);
    ASSERT_EQ_INT(r.result, HTTPC_OK);
    ASSERT_EQ_INT(r.status, 201);
    ASSERT_EQ_STR(httpc_resp_header(&r, "X-Final"), "yes");
    ASSERT_EQ_STR(httpc_resp_header(&r, "X-Spaces"), "padded");
    ASSERT_TRUE(httpc_resp_header(&r, "X-Early") == NULL);
    ASSERT_EQ_STR(r.body.data, "abc");
    httpc_resp_free(&r);
    httpc_stop(e);
}

TEST(timeout)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    temu_fault(&emu, "action=latency,latency_ms=2000");
    httpc *e = start(0);
    char url[256];
    url_of(url, sizeof url, &emu, "/webhdfs/v1/?op=GETFILESTATUS");
    httpc_req r = {.method = "GET", .url = url, .timeout_ms = 300};
    httpc_resp resp;
    double t0 = now_s();
    ASSERT_EQ_INT(httpc_do(e, &r, &resp), 0);
    double el = now_s() - t0;
    ASSERT_EQ_INT(resp.result, HTTPC_E_TIMEOUT);
    ASSERT_EQ_INT(resp.status, 0);
    ASSERT_TRUE(resp.error[0] != '\0');
    ASSERT_TRUE(strstr(resp.error, "GETFILESTATUS") == NULL); /* no URL in messages */
    ASSERT_TRUE(el >= 0.25 && el < 1.5);
    httpc_resp_free(&resp);
    httpc_stop(e);
}

TEST(connect_refused)
{
    httpc *e = start(0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/webhdfs/v1/?op=GETFILESTATUS", temu_dead_port());
    httpc_resp r = req_mem(e, "GET", url, NULL, 0);
    ASSERT_EQ_INT(r.result, HTTPC_E_CONNECT);
    ASSERT_EQ_INT(r.status, 0);
    ASSERT_TRUE(r.error[0] != '\0');
    ASSERT_EQ_STR(httpc_result_str(r.result), "connect failed");
    ASSERT_TRUE(!r.sent); /* nothing went out */
    httpc_resp_free(&r);
    httpc_stop(e);
}

TEST(response_too_big)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    char *data = malloc(10000);
    memset(data, 'q', 10000);
    url_of(url, sizeof url, &emu, "/webhdfs/v1/big?op=CREATE&write=true");
    httpc_resp r = req_mem(e, "PUT", url, data, 10000);
    ASSERT_EQ_INT(r.status, 201);
    httpc_resp_free(&r);
    free(data);
    url_of(url, sizeof url, &emu, "/webhdfs/v1/big?op=OPEN&read=true");
    httpc_req g = {.method = "GET", .url = url, .out = HTTPC_BODY_MEMORY, .out_max = 1000};
    ASSERT_EQ_INT(httpc_do(e, &g, &r), 0);
    ASSERT_EQ_INT(r.result, HTTPC_E_TOO_BIG);
    ASSERT_EQ_INT(r.status, 0);
    httpc_resp_free(&r);
    g.out_max = 20000;
    ASSERT_EQ_INT(httpc_do(e, &g, &r), 0);
    ASSERT_EQ_INT(r.result, HTTPC_OK);
    ASSERT_EQ_INT(r.body.len, 10000);
    httpc_resp_free(&r);
    httpc_stop(e);
}

TEST(short_body_file_fails)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    int in = tmp_fd("0123456789");
    url_of(url, sizeof url, &emu, "/webhdfs/v1/short?op=CREATE&write=true");
    httpc_req r = {.method = "PUT", .url = url, .in = HTTPC_IN_FD, .in_fd = in, .in_off = 0, .in_len = 100};
    httpc_resp resp;
    ASSERT_EQ_INT(httpc_do(e, &r, &resp), 0);
    ASSERT_EQ_INT(resp.result, HTTPC_E_BODY);
    httpc_resp_free(&resp);
    /* The engine carries on. */
    r.in_len = 10;
    ASSERT_EQ_INT(httpc_do(e, &r, &resp), 0);
    ASSERT_EQ_INT(resp.status, 201);
    httpc_resp_free(&resp);
    close(in);
    httpc_stop(e);
}

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, ok, cancelled, other;
    httpc *e;
    char url[256];
    int chain;
    int do_rc;
} counter;

static void count_done(void *ud, httpc_resp *resp)
{
    counter *c = ud;
    pthread_mutex_lock(&c->mu);
    c->n++;
    if (resp->result == HTTPC_OK && (resp->status == 201 || resp->status == 200))
        c->ok++;
    else if (resp->result == HTTPC_E_CANCELLED)
        c->cancelled++;
    else
        c->other++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    httpc_resp_free(resp);
    free(resp);
}

static void wait_count(counter *c, int n)
{
    pthread_mutex_lock(&c->mu);
    while (c->n < n) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

TEST(concurrent_200)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(8);
    counter c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    static char urls[200][128];
    static char bodies[200][16];
    for (int i = 0; i < 200; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/webhdfs/v1/c/f%d?op=CREATE&write=true", emu.url, i);
        snprintf(bodies[i], sizeof bodies[i], "body-%d", i);
        httpc_req r = {.method = "PUT", .url = urls[i], .in = HTTPC_IN_MEMORY, .in_mem = bodies[i],
                       .in_len = strlen(bodies[i]), .done = count_done, .ud = &c};
        ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    }
    wait_count(&c, 200);
    ASSERT_EQ_INT(c.ok, 200);
    ASSERT_EQ_INT(httpc_in_flight(e), 0);
    ASSERT_TRUE(httpc_connections_opened(e) >= 1);
    ASSERT_TRUE(httpc_connections_opened(e) <= 8); /* bounded by max_host_connections, and reused */
    char url[256];
    url_of(url, sizeof url, &emu, "/webhdfs/v1/c/f137?op=OPEN&read=true");
    httpc_resp r = req_mem(e, "GET", url, NULL, 0);
    ASSERT_EQ_STR(r.body.data, "body-137");
    httpc_resp_free(&r);
    httpc_stop(e);
}

TEST(keepalive_reuse)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    url_of(url, sizeof url, &emu, "/webhdfs/v1/?op=GETFILESTATUS");
    for (int i = 0; i < 50; i++) {
        httpc_resp r = req_mem(e, "GET", url, NULL, 0);
        ASSERT_EQ_INT(r.status, 200);
        httpc_resp_free(&r);
    }
    /* Also after error answers (404 bodies are read to their end). */
    url_of(url, sizeof url, &emu, "/webhdfs/v1/missing?op=GETFILESTATUS");
    for (int i = 0; i < 10; i++) {
        httpc_resp r = req_mem(e, "GET", url, NULL, 0);
        ASSERT_EQ_INT(r.status, 404);
        httpc_resp_free(&r);
    }
    ASSERT_EQ_INT(httpc_connections_opened(e), 1);
    httpc_stop(e);
}

/* An upstream that answers the first request of each connection and, at the second, reads it whole
 * and resets the connection without an answer: one that applied a request and lost its answer. Only
 * body-less requests (their head is the whole request). */
typedef struct dropper {
    int lfd, port;
    atomic_int nreq;
} dropper;

static void *dropper_main(void *arg)
{
    dropper *d = arg;
    for (;;) {
        int fd = accept(d->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        char buf[8192];
        size_t n = 0;
        for (int served = 0;; served++) {
            ssize_t end;
            while ((end = temu_srv_find(buf, n, "\r\n\r\n")) < 0 && n < sizeof buf) {
                ssize_t r = read(fd, buf + n, sizeof buf - n);
                if (r <= 0) break;
                n += (size_t)r;
            }
            if (end < 0) break;
            atomic_fetch_add(&d->nreq, 1);
            memmove(buf, buf + end + 4, n - (size_t)end - 4);
            n -= (size_t)end + 4;
            if (served > 0) {
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                break;
            }
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if (write(fd, ok, sizeof ok - 1) != (ssize_t)(sizeof ok - 1)) break;
        }
        close(fd);
    }
}

static httpc_resp delete_once(httpc *e, const char *url, bool once)
{
    httpc_req q = {.method = "DELETE", .url = url, .out = HTTPC_BODY_MEMORY, .once = once};
    httpc_resp r;
    if (httpc_do(e, &q, &r) != 0) TH_FAIL_AT("httpc_do refused");
    return r;
}

TEST(once_is_not_resent_on_a_dead_reused_connection)
{
    static dropper d;
    d.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (d.lfd < 0 || bind(d.lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(d.lfd, 16) != 0 ||
        getsockname(d.lfd, (struct sockaddr *)&a, &al) != 0)
        TH_FAIL_AT("server socket: %s", strerror(errno));
    d.port = ntohs(a.sin_port);
    pthread_t thr;
    if (pthread_create(&thr, NULL, dropper_main, &d) != 0) TH_FAIL_AT("pthread_create");
    pthread_detach(thr);
    httpc *e = start(0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/w", d.port);

    /* The connection is pooled after an answered request; the next one on it is read and dropped.
     * With once, libcurl's retry on a fresh connection is refused: the upstream saw it once, and the
     * caller learns that it went out. */
    httpc_resp r = delete_once(e, url, true);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_TRUE(r.sent);
    httpc_resp_free(&r);
    r = delete_once(e, url, true);
    ASSERT_EQ_INT(r.result, HTTPC_E_TRANSPORT);
    ASSERT_TRUE(r.sent);
    httpc_resp_free(&r);
    ASSERT_EQ_INT(atomic_load(&d.nreq), 2);

    /* Without once, the same drop is followed by libcurl's silent resend on a fresh connection (which
     * answers): the upstream got the request twice. This is what once exists for. */
    r = delete_once(e, url, false);
    ASSERT_EQ_INT(r.status, 200);
    httpc_resp_free(&r);
    r = delete_once(e, url, false);
    ASSERT_EQ_INT(r.status, 200);
    httpc_resp_free(&r);
    ASSERT_EQ_INT(atomic_load(&d.nreq), 5);
    httpc_stop(e);
}

TEST(stop_cancels_pending)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    temu_fault(&emu, "action=latency,latency_ms=3000");
    httpc *e = start(0);
    counter c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    char url[256];
    url_of(url, sizeof url, &emu, "/webhdfs/v1/?op=GETFILESTATUS");
    for (int i = 0; i < 3; i++) {
        httpc_req r = {.method = "GET", .url = url, .done = count_done, .ud = &c};
        ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    }
    usleep(200 * 1000);
    ASSERT_EQ_INT(httpc_in_flight(e), 3);
    double t0 = now_s();
    httpc_stop(e);
    ASSERT_TRUE(now_s() - t0 < 1.5);
    ASSERT_EQ_INT(c.n, 3);
    ASSERT_EQ_INT(c.cancelled, 3);
}

/* Each completion submits the next request from the engine thread; httpc_do there is refused. */
static void chain_done(void *ud, httpc_resp *resp)
{
    counter *c = ud;
    bool ok = resp->result == HTTPC_OK && resp->status == 200;
    httpc_resp_free(resp);
    free(resp);
    pthread_mutex_lock(&c->mu);
    c->ok += ok;
    int left = --c->chain;
    if (c->n == 0) {
        httpc_req q = {.method = "GET", .url = c->url};
        httpc_resp r2;
        c->do_rc = httpc_do(c->e, &q, &r2);
    }
    pthread_mutex_unlock(&c->mu);
    if (left > 0) {
        httpc_req r = {.method = "GET", .url = c->url, .done = chain_done, .ud = c};
        if (httpc_submit(c->e, &r) == 0) return;
    }
    pthread_mutex_lock(&c->mu);
    c->n = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

TEST(callback_submits_follow_up)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    counter c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .e = e, .chain = 5, .do_rc = 99};
    url_of(c.url, sizeof c.url, &emu, "/webhdfs/v1/?op=GETFILESTATUS");
    httpc_req r = {.method = "GET", .url = c.url, .done = chain_done, .ud = &c};
    ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    wait_count(&c, 1);
    ASSERT_EQ_INT(c.ok, 5);
    ASSERT_EQ_INT(c.chain, 0);
    ASSERT_EQ_INT(c.do_rc, -1);
    httpc_stop(e);
}

/* ---- HTTPC_BODY_STREAM ---- */

#define SBIG (3u << 20)

/* A stream consumer: keeps the body, and (with step > 0) pauses after every step bytes until the test
 * thread resumes it; with hold set from the start it pauses at the first piece and never takes one. */
typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long head_status;
    size_t head_at;               /* body bytes taken when on_head ran */
    char len_hdr[32];
    char *buf;
    size_t n, step, next_stop;
    bool hold, paused, done;
    int pauses;
    httpc *self_e;                /* set: each pause asks for its own resume from on_body (engine thread) */
    httpc_ctl *self_ctl;
    httpc_result result;
    uint64_t body_bytes;
} sink;

static void sink_head(void *ud, const httpc_resp *resp)
{
    sink *k = ud;
    pthread_mutex_lock(&k->mu);
    k->head_status = resp->status;
    k->head_at = k->n;
    const char *cl = httpc_resp_header(resp, "Content-Length");
    snprintf(k->len_hdr, sizeof k->len_hdr, "%s", cl ? cl : "");
    pthread_mutex_unlock(&k->mu);
}

static size_t sink_body(void *ud, const char *p, size_t n)
{
    sink *k = ud;
    pthread_mutex_lock(&k->mu);
    if (k->hold) {
        if (!k->paused) k->pauses++;
        k->paused = true;
        if (k->self_e) {
            k->hold = k->paused = false;
            httpc_ctl_resume(k->self_e, k->self_ctl); /* done at the engine's next turn */
        }
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
        return HTTPC_PAUSE;
    }
    if (k->n + n <= SBIG) memcpy(k->buf + k->n, p, n);
    k->n += n;
    if (k->step && k->n >= k->next_stop) {
        k->hold = true; /* the next piece pauses the transfer */
        k->next_stop = k->n + k->step;
    }
    pthread_mutex_unlock(&k->mu);
    return n;
}

static void sink_done(void *ud, httpc_resp *resp)
{
    sink *k = ud;
    pthread_mutex_lock(&k->mu);
    k->done = true;
    k->result = resp->result;
    k->body_bytes = resp->body_bytes;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    httpc_resp_free(resp);
    free(resp);
}

static void sink_init(sink *k, size_t step)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    k->buf = malloc(SBIG);
    if (!k->buf) TH_FAIL_AT("out of memory");
    k->step = step;
    k->next_stop = step;
    k->head_status = -1;
}

static void sink_free(sink *k)
{
    free(k->buf);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
}

/* Wait until *flag (a field of k) is set. */
static void sink_wait(sink *k, const bool *flag)
{
    pthread_mutex_lock(&k->mu);
    while (!*flag) pthread_cond_wait(&k->cv, &k->mu);
    pthread_mutex_unlock(&k->mu);
}

/* A file of SBIG bytes on the emulator (a pattern that shows any misplaced byte); returns its data. */
static char *put_big(httpc *e, const temu *emu, const char *name, char *url, size_t cap)
{
    char *data = malloc(SBIG);
    if (!data) TH_FAIL_AT("out of memory");
    for (size_t i = 0; i < SBIG; i++) data[i] = (char)((i * 7 + i / 4096) & 0xff);
    snprintf(url, cap, "%s/webhdfs/v1/%s?op=CREATE&write=true", emu->url, name);
    httpc_resp r = req_mem(e, "PUT", url, data, SBIG);
    ASSERT_EQ_INT(r.status, 201);
    httpc_resp_free(&r);
    snprintf(url, cap, "%s/webhdfs/v1/%s?op=OPEN&read=true", emu->url, name);
    return data;
}

static httpc_req stream_req(const char *url, sink *k, httpc_ctl *ctl)
{
    httpc_req r = {.method = "GET", .url = url, .out = HTTPC_BODY_STREAM, .on_head = sink_head,
                   .on_body = sink_body, .ctl = ctl, .done = sink_done, .ud = k};
    return r;
}

/* Resume every pause of k from this thread (the engine does the curl_easy_pause) until the end. */
static void resume_until_done(httpc *e, httpc_ctl *ctl, sink *k)
{
    pthread_mutex_lock(&k->mu);
    while (!k->done) {
        if (k->paused) {
            k->paused = false;
            k->hold = false;
            httpc_ctl_resume(e, ctl);
        }
        pthread_cond_wait(&k->cv, &k->mu);
    }
    pthread_mutex_unlock(&k->mu);
}

TEST(stream_pause_resume)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    char *data = put_big(e, &emu, "s1", url, sizeof url);
    sink k;
    sink_init(&k, 256u << 10);
    httpc_ctl *ctl = httpc_ctl_new();
    ASSERT_TRUE(ctl != NULL);
    httpc_req r = stream_req(url, &k, ctl);
    ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    resume_until_done(e, ctl, &k);
    ASSERT_EQ_INT(k.result, HTTPC_OK);
    ASSERT_EQ_INT(k.head_status, 200);
    ASSERT_EQ_INT(k.head_at, 0); /* the head came before any body byte */
    ASSERT_EQ_INT(atoi(k.len_hdr), SBIG);
    ASSERT_EQ_INT(k.n, SBIG);
    ASSERT_EQ_INT(k.body_bytes, SBIG); /* a paused piece is counted once, when taken */
    ASSERT_TRUE(memcmp(k.buf, data, SBIG) == 0);
    ASSERT_TRUE(k.pauses >= 8);
    ASSERT_EQ_INT(httpc_in_flight(e), 0);
    httpc_ctl_unref(ctl);
    sink_free(&k);
    free(data);
    httpc_stop(e);
}

/* The stream ended well and k holds the whole SBIG-byte file, byte for byte. */
static void assert_whole(const sink *k, const char *data)
{
    ASSERT_EQ_INT(k->result, HTTPC_OK);
    ASSERT_EQ_INT(k->n, SBIG);
    ASSERT_TRUE(memcmp(k->buf, data, SBIG) == 0);
}

/* Stream url into k (which holds from the first piece on) and wait until the transfer has paused. */
static httpc_ctl *start_paused(httpc *e, const char *url, sink *k, unsigned timeout_ms)
{
    sink_init(k, 0);
    k->hold = true;
    httpc_ctl *ctl = httpc_ctl_new();
    if (!ctl) TH_FAIL_AT("out of memory");
    httpc_req r = stream_req(url, k, ctl);
    r.timeout_ms = timeout_ms;
    ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    sink_wait(k, &k->paused);
    return ctl;
}

TEST(stream_cancel)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    char *data = put_big(e, &emu, "s2", url, sizeof url);
    /* Paused at the first piece, then cancelled from this thread. */
    sink k;
    httpc_ctl *ctl = start_paused(e, url, &k, 0);
    httpc_ctl_cancel(e, ctl);
    sink_wait(&k, &k.done);
    ASSERT_EQ_INT(k.result, HTTPC_E_CANCELLED);
    ASSERT_EQ_INT(k.n, 0);
    ASSERT_EQ_INT(httpc_in_flight(e), 0);
    /* The cancel sticks to the ctl: a later exchange with it ends cancelled without being sent. */
    sink k2;
    sink_init(&k2, 0);
    httpc_req r = stream_req(url, &k2, ctl);
    uint64_t opens = (uint64_t)temu_counter(&emu, "GET OPEN");
    ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    sink_wait(&k2, &k2.done);
    ASSERT_EQ_INT(k2.result, HTTPC_E_CANCELLED);
    ASSERT_EQ_INT(k2.head_status, -1);
    ASSERT_EQ_INT((uint64_t)temu_counter(&emu, "GET OPEN"), opens);
    httpc_ctl_unref(ctl);
    /* The engine still serves the same file. */
    httpc_req q = {.method = "GET", .url = url, .out = HTTPC_BODY_MEMORY, .out_max = SBIG};
    httpc_resp g;
    ASSERT_EQ_INT(httpc_do(e, &q, &g), 0);
    ASSERT_EQ_INT(g.status, 200);
    ASSERT_EQ_INT(g.body.len, SBIG);
    ASSERT_TRUE(memcmp(g.body.data, data, SBIG) == 0);
    httpc_resp_free(&g);
    sink_free(&k);
    sink_free(&k2);
    free(data);
    httpc_stop(e);
}

/* A stream's timeout is silence, not duration: a pause longer than timeout_ms is fine, a Gen1 that
 * says nothing for timeout_ms is not. */
TEST(stream_timeout_is_silence)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    char *data = put_big(e, &emu, "s3", url, sizeof url);
    sink k;
    httpc_ctl *ctl = start_paused(e, url, &k, 1000);
    struct timespec ts = {2, 500000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&k.mu);
    ASSERT_TRUE(!k.done);
    k.hold = false;
    httpc_ctl_resume(e, ctl);
    while (!k.done) pthread_cond_wait(&k.cv, &k.mu);
    pthread_mutex_unlock(&k.mu);
    assert_whole(&k, data);
    httpc_ctl_unref(ctl);
    sink_free(&k);
    /* A silent upstream (latency before the answer) times out. */
    temu_fault(&emu, "action=latency,latency_ms=3000,count=1");
    sink_init(&k, 0);
    httpc_req r = stream_req(url, &k, NULL);
    r.timeout_ms = 1000;
    ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    sink_wait(&k, &k.done);
    ASSERT_EQ_INT(k.result, HTTPC_E_TIMEOUT);
    ASSERT_EQ_INT(k.head_status, -1);
    sink_free(&k);
    free(data);
    httpc_stop(e);
}

#define NSTREAMS 4

typedef struct resumer {
    httpc *e;
    httpc_ctl *ctl;
    sink k;
} resumer;

static void *resumer_main(void *arg)
{
    resumer *r = arg;
    resume_until_done(r->e, r->ctl, &r->k);
    return NULL;
}

/* One engine, many exchanges at once: streams that pause every 128 KiB, each resumed from a thread of its
 * own, while 200 uploads run beside them. Every exchange ends, with every byte where it belongs. */
TEST(streams_resumed_from_threads_among_200_exchanges)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    char *data = put_big(e, &emu, "m", url, sizeof url);
    static resumer rs[NSTREAMS];
    pthread_t thr[NSTREAMS];
    for (int i = 0; i < NSTREAMS; i++) {
        rs[i].e = e;
        rs[i].ctl = httpc_ctl_new();
        ASSERT_TRUE(rs[i].ctl != NULL);
        sink_init(&rs[i].k, 128u << 10);
        httpc_req r = stream_req(url, &rs[i].k, rs[i].ctl);
        ASSERT_EQ_INT(httpc_submit(e, &r), 0);
        ASSERT_EQ_INT(pthread_create(&thr[i], NULL, resumer_main, &rs[i]), 0);
    }
    counter c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    static char urls[200][128];
    static char bodies[200][16];
    for (int i = 0; i < 200; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/webhdfs/v1/mc/f%d?op=CREATE&write=true", emu.url, i);
        snprintf(bodies[i], sizeof bodies[i], "body-%d", i);
        httpc_req r = {.method = "PUT", .url = urls[i], .in = HTTPC_IN_MEMORY, .in_mem = bodies[i],
                       .in_len = strlen(bodies[i]), .done = count_done, .ud = &c};
        ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    }
    wait_count(&c, 200);
    ASSERT_EQ_INT(c.ok, 200);
    for (int i = 0; i < NSTREAMS; i++) {
        ASSERT_EQ_INT(pthread_join(thr[i], NULL), 0);
        sink *k = &rs[i].k;
        assert_whole(k, data);
        ASSERT_TRUE(k->pauses >= 8);
        httpc_ctl_unref(rs[i].ctl);
        sink_free(k);
    }
    ASSERT_EQ_INT(httpc_in_flight(e), 0);
    url_of(url, sizeof url, &emu, "/webhdfs/v1/mc/f199?op=OPEN&read=true");
    httpc_resp g = req_mem(e, "GET", url, NULL, 0);
    ASSERT_EQ_STR(g.body.data, "body-199");
    httpc_resp_free(&g);
    free(data);
    httpc_stop(e);
}

/* A resume asked on the engine thread (inside on_body, right as the consumer pauses) is done at the
 * engine's next turn, without another thread to wake it. */
TEST(stream_resume_from_the_engine_thread)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    char *data = put_big(e, &emu, "r", url, sizeof url);
    sink k;
    sink_init(&k, 256u << 10);
    httpc_ctl *ctl = httpc_ctl_new();
    ASSERT_TRUE(ctl != NULL);
    k.self_e = e;
    k.self_ctl = ctl;
    httpc_req r = stream_req(url, &k, ctl);
    ASSERT_EQ_INT(httpc_submit(e, &r), 0);
    sink_wait(&k, &k.done);
    assert_whole(&k, data);
    ASSERT_TRUE(k.pauses >= 8);
    httpc_ctl_unref(ctl);
    sink_free(&k);
    free(data);
    httpc_stop(e);
}

/* An upstream that takes connections (the kernel's backlog) and never answers. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        TH_FAIL_AT("server socket: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return fd;
}

/* With the only other transfer paused (libcurl does not watch its socket then), nothing but libcurl's timer can
 * wake the engine: an exchange's timeout still ends it, and the paused stream then resumes and ends. */
TEST(timeout_fires_while_the_other_transfer_is_paused)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    char url[256];
    char *data = put_big(e, &emu, "t", url, sizeof url);
    sink k;
    httpc_ctl *ctl = start_paused(e, url, &k, 0);
    int port;
    int lfd = silent_listener(&port);
    char surl[128];
    snprintf(surl, sizeof surl, "http://127.0.0.1:%d/w", port);
    httpc_req q = {.method = "PUT", .url = surl, .in = HTTPC_IN_MEMORY, .in_mem = "x", .in_len = 1,
                   .timeout_ms = 300};
    httpc_resp resp;
    ASSERT_EQ_INT(httpc_do(e, &q, &resp), 0);
    ASSERT_EQ_INT(resp.result, HTTPC_E_TIMEOUT);
    ASSERT_TRUE(resp.sent);
    httpc_resp_free(&resp);
    pthread_mutex_lock(&k.mu);
    ASSERT_TRUE(!k.done);
    pthread_mutex_unlock(&k.mu);
    resume_until_done(e, ctl, &k);
    assert_whole(&k, data);
    httpc_ctl_unref(ctl);
    sink_free(&k);
    free(data);
    httpc_stop(e);
    close(lfd);
}

/* A body of several MiB to an fd (many write callbacks): body_crc is the CRC-32C of the bytes in the
 * file; a memory body says it has none. */
TEST(fd_body_crc)
{
    temu emu;
    temu_start(&emu, "gen1", NULL, NULL);
    httpc *e = start(0);
    enum { N = 3 * 1024 * 1024 + 17 };
    char *data = malloc(N);
    ASSERT_TRUE(data != NULL);
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (char)(x >> 16);
    }
    char url[256];
    url_of(url, sizeof url, &emu, "/webhdfs/v1/crc/f?op=CREATE&write=true");
    httpc_resp resp = req_mem(e, "PUT", url, data, N);
    ASSERT_EQ_INT(resp.status, 201);
    ASSERT_TRUE(!resp.body_crc_ok);
    httpc_resp_free(&resp);

    int out = tmp_fd(NULL);
    url_of(url, sizeof url, &emu, "/webhdfs/v1/crc/f?op=OPEN&read=true&offset=5&length=3000000");
    httpc_req g = {.method = "GET", .url = url, .out = HTTPC_BODY_FD, .out_fd = out};
    ASSERT_EQ_INT(httpc_do(e, &g, &resp), 0);
    ASSERT_EQ_INT(resp.result, HTTPC_OK);
    ASSERT_EQ_INT(resp.status, 200);
    ASSERT_EQ_INT(resp.body_bytes, 3000000);
    ASSERT_TRUE(resp.body_crc_ok);
    char *back = malloc(3000000);
    ASSERT_TRUE(back != NULL);
    ASSERT_EQ_INT(pread(out, back, 3000000, 0), 3000000);
    ASSERT_TRUE(memcmp(back, data + 5, 3000000) == 0);
    ASSERT_EQ_INT(resp.body_crc, crc32c(back, 3000000));
    ASSERT_EQ_INT(resp.body_crc, crc32c(data + 5, 3000000));
    httpc_resp_free(&resp);

    /* an empty body: the CRC of nothing */
    url_of(url, sizeof url, &emu, "/webhdfs/v1/crc/f?op=OPEN&read=true&offset=0&length=0");
    ASSERT_EQ_INT(httpc_do(e, &g, &resp), 0);
    ASSERT_EQ_INT(resp.status, 200);
    ASSERT_EQ_INT(resp.body_bytes, 0);
    ASSERT_TRUE(resp.body_crc_ok);
    ASSERT_EQ_INT(resp.body_crc, crc32c("", 0));
    httpc_resp_free(&resp);
    free(back);
    free(data);
    close(out);
    httpc_stop(e);
}

/* The matching as it was before URLs were read in place: libcurl's URL parser. */
typedef struct ref_rule {
    const char *host;
    int port;
} ref_rule;

static int ref_rule_for(const ref_rule *rules, int n, const char *url)
{
    int found = -1;
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = '\0';
        }
        int p = atoi(port);
        for (int i = 0; i < n && found < 0; i++)
            if (!rules[i].host || (strcasecmp(rules[i].host, host) == 0 && (rules[i].port == 0 || rules[i].port == p)))
                found = i;
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return found;
}

TEST(tls_rule_matching)
{
    static const ref_rule rules[] = {{"Gen1.Example.com", 443}, {"gen1.example.com", 0}, {"127.0.0.1", 8443},
                                     {"::1", 0}, {"10.0.0.1", 80}, {"acc.dfs.core.windows.net", 443},
                                     {"abc.def", 0}, {NULL, 0}};
    static const struct {
        const char *url;
        int want; /* with every rule but the default (the last); with it, -1 becomes the default's index */
    } cases[] = {
        {"https://gen1.example.com/webhdfs/v1/a?op=APPEND", 0},
        {"HTTPS://GEN1.EXAMPLE.COM:443/x", 0},
        {"https://gen1.EXAMPLE.com", 0},
        {"https://gen1.example.com?op=A", 0},
        {"https://gen1.example.com#f", 0},
        {"http://gen1.example.com/x", 1},
        {"https://gen1.example.com:8443/x?op=A", 1},
        {"http://user:pw@gen1.example.com/x", 1},
        {"https://gen1.example.com:0443/x", 0},
        {"https://127.0.0.1:8443/a", 2},
        {"https://127.0.0.1/a", -1},
        {"http://127.0.0.1:8443/a", 2},
        {"http://[::1]:9000/a", 3},
        {"https://[::1]/a", 3},
        {"http://[0:0:0:0:0:0:0:1]/a", -2},
        {"http://10.0.0.1/a", 4},
        {"http://10.0.0.1:80/a", 4},
        {"http://10.0.0.1:8080/a", -1},
        {"https://10.0.0.1/a", -1},
        {"http://10.1/a", -2},
        {"http://0x0a.0.0.1/a", -2},
        {"http://010.0.0.1/a", -2},
        {"http://10.0.0.01/a", -2},
        {"https://acc.dfs.core.windows.net/fs/p?action=append&position=4096", 5},
        {"https://ACC.dfs.core.windows.net:443/fs/p", 5},
        {"https://acc.dfs.core.windows.net:444/fs/p", -1},
        {"https://acc.blob.core.windows.net/fs/p", -1},
        {"http://abc.def/", 6},
        {"http://abc.def./", -2},
        {"http://gen1.example.com./", -2},
        {"http://gen1..example.com/", -2},
        {"http://gen1.example.com:/x", -2},
        {"http://gen1.example.com:99999/x", -2},
        {"http://gen1.example.com/a b", -2},
        {"http://gen1.example.com/caf\xc3\xa9", -2},
        {"http://gen1%2eexample.com/", -2},
        {"ftp://gen1.example.com/", -2},
        {"gen1.example.com/x", -2},
        {"http:/gen1.example.com/x", -2},
        {"", -1},
    };
    httpc *e = start(0);
    httpc *d = start(0); /* the same rules and a default */
    int nr = (int)(sizeof rules / sizeof rules[0]);
    httpc_tls t = {0};
    ASSERT_EQ_INT(httpc_tls_rule_for(e, "https://gen1.example.com/"), -1); /* no rule at all */
    for (int i = 0; i < nr; i++) {
        if (rules[i].host) ASSERT_EQ_INT(httpc_set_tls(e, rules[i].host, rules[i].port, &t), 0);
        ASSERT_EQ_INT(httpc_set_tls(d, rules[i].host, rules[i].port, &t), 0);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *u = cases[i].url;
        int ref = ref_rule_for(rules, nr - 1, u), got = httpc_tls_rule_for(e, u);
        if (got != ref) TH_FAIL_AT("%s: rule %d, libcurl's parser gives %d", u, got, ref);
        if (cases[i].want != -2 && got != cases[i].want) TH_FAIL_AT("%s: rule %d, want %d", u, got, cases[i].want);
        int refd = ref_rule_for(rules, nr, u), gotd = httpc_tls_rule_for(d, u);
        if (gotd != refd) TH_FAIL_AT("%s (with a default): rule %d, libcurl's parser gives %d", u, gotd, refd);
    }
    httpc_stop(e);
    httpc_stop(d);
}

TESTS(T(get_json_to_memory), T(put_from_fd_range_then_open_to_fd), T(redirect_is_not_followed), T(wire_format),
      T(final_response_headers_only), T(timeout), T(connect_refused), T(response_too_big),
      T(short_body_file_fails), T(concurrent_200), T(keepalive_reuse),
      T(once_is_not_resent_on_a_dead_reused_connection), T(stop_cancels_pending),
      T(callback_submits_follow_up), T(stream_pause_resume), T(stream_cancel), T(stream_timeout_is_silence),
      T(streams_resumed_from_threads_among_200_exchanges), T(stream_resume_from_the_engine_thread),
      T(timeout_fires_while_the_other_transfer_is_paused), T(fd_body_crc), T(tls_rule_matching))
