/*
 * front_conn: the front end's client connections, their limits and the reaper thread.
 *
 * libmicrohttpd 0.9.75 bounds only inactivity (limits.idle_timeout_s): a client sending one byte a second
 * keeps its connection, and its request, for ever. And when MHD runs out of its per-connection memory
 * pool while parsing a request (about 900 query parameters in 64 KiB) it neither answers nor tells the
 * application the request ended. So the front keeps its own list of connections (MHD's connection
 * notifications) and one reaper thread that, at the earliest deadline (at least once a second):
 *  - ends a connection whose current request is not fully received within limits.request_timeout_s of
 *    the connection opening or the previous request ending: a 408 RemoteException where the request line
 *    is in and no answer has started, then shutdown(), which makes MHD drop the connection;
 *  - answers 400 (and shuts down) a request with more query parameters than any WebHDFS request may
 *    carry when the access handler has not seen it FRONT_PARAMS_GRACE_MS after its request line: MHD
 *    failed on it and would otherwise leave it hanging until the idle timeout.
 * Writing on a socket MHD owns is safe here because the two never overlap: the reaper only writes while
 * the request is still being received and no answer was queued (the handler clears the deadline, under
 * the same mutex, before it queues one), and it shuts the socket down before MHD could write again; the
 * handler then refuses to go on (front__conn_handled / front__conn_received return false). The fd stays
 * valid while the connection is on the list: MHD notifies "closed" before it closes the socket.
 * On a TLS connection the reaper writes nothing (plain bytes would break the TLS stream): it only shuts
 * the connection down.
 *
 * A request MHD drops without its completion callback is freed when its connection closes.
 * Connections over limits.max_connections are refused at accept (closed at once, not left in the
 * backlog); limits.max_connections_per_client is MHD's own per-address cap.
 */
#include "front_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dbuf.h"
#include "log.h"

#define FRONT_REAP_MAX_SLEEP_MS 1000 /* the reaper looks at least this often */
#define FRONT_PARAMS_GRACE_MS 50     /* see front__conn_request */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void last_words(const fr_conn *fc, int status, const char *reason, const char *message);

static int64_t request_deadline(const front *f)
{
    return now_ms() + (int64_t)f->cfg->request_timeout_s * 1000;
}

enum MHD_Result front__conn_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    front *f = cls;
    (void)addr, (void)addrlen;
    if (atomic_load(&f->nconns) >= f->cfg->max_connections) {
        metrics_inc(f->conn_refused);
        LOGD("msg=\"connection refused: limits.max_connections reached\" max_connections=%u", f->cfg->max_connections);
        return MHD_NO;
    }
    return MHD_YES;
}

void front__conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    front *f = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&f->nconns, 1);
        metrics_gauge_add(f->connections, 1);
        fr_conn *fc = calloc(1, sizeof *fc);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!fc || !ci) {
            free(fc);
            LOGW("msg=\"connection not tracked (out of memory): no request timeout for it\"");
            *socket_context = NULL;
            return;
        }
        fc->fd = ci->connect_fd;
        const union MHD_ConnectionInfo *di = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
        const union MHD_DaemonInfo *fl = di ? MHD_get_daemon_info(di->daemon, MHD_DAEMON_INFO_FLAGS) : NULL;
        fc->tls = fl && (fl->flags & MHD_USE_TLS);
        pthread_mutex_lock(&f->conn_mu);
        fc->deadline_ms = request_deadline(f);
        fc->next = f->conns;
        if (f->conns) f->conns->prev = fc;
        f->conns = fc;
        pthread_mutex_unlock(&f->conn_mu);
        *socket_context = fc;
        return;
    }
    atomic_fetch_sub(&f->nconns, 1);
    metrics_gauge_add(f->connections, -1);
    fr_conn *fc = *socket_context;
    *socket_context = NULL;
    if (!fc) return;
    pthread_mutex_lock(&f->conn_mu);
    if (fc->prev) fc->prev->next = fc->next;
    else f->conns = fc->next;
    if (fc->next) fc->next->prev = fc->prev;
    fr_req *r = fc->req;
    fc->req = NULL;
    bool answer = r && fc->refuse_params && !fc->handled && !fc->reaped;
    pthread_mutex_unlock(&f->conn_mu);
    if (answer) {
        /* MHD gave up on the query (out of pool memory) and answers nothing; the socket is still open. */
        last_words(fc, 400, "Bad Request", "Too many query parameters");
        LOGD("msg=\"connection ended by the front\" reason=\"too many query parameters\" req=%" PRIu64, r->id);
    }
    if (r) {
        /* MHD dropped the request without completing it (it failed on it, e.g. out of pool memory). */
        LOGD("msg=\"request dropped by libmicrohttpd, freed with its connection\" req=%" PRIu64, r->id);
        r->fc = NULL;
        front__req_free(r);
    }
    free(fc);
}

void front__conn_request(fr_req *r, size_t nparams)
{
    fr_conn *fc = r->fc;
    if (!fc) return;
    pthread_mutex_lock(&r->f->conn_mu);
    fc->req = r;
    fc->handled = false;
    fc->refuse_params = nparams > WHREQ_MAX_PARAMS;
    if (fc->refuse_params && !fc->reaped) {
        /* MHD parses the query into its pool right after this callback: when that fails, the handler
         * never runs and MHD answers nothing. The request is refused either way, so if the handler has
         * not seen it shortly the reaper answers. */
        int64_t grace = now_ms() + FRONT_PARAMS_GRACE_MS;
        if (fc->deadline_ms == 0 || grace < fc->deadline_ms) fc->deadline_ms = grace;
        pthread_cond_signal(&r->f->conn_cond);
    }
    pthread_mutex_unlock(&r->f->conn_mu);
}

bool front__conn_handled(fr_req *r)
{
    fr_conn *fc = r->fc;
    if (!fc) return true;
    pthread_mutex_lock(&r->f->conn_mu);
    bool ok = !fc->reaped;
    fc->handled = true;
    if (ok && fc->refuse_params) fc->deadline_ms = request_deadline(r->f); /* the handler answers it */
    pthread_mutex_unlock(&r->f->conn_mu);
    return ok;
}

bool front__conn_received(fr_req *r)
{
    fr_conn *fc = r->fc;
    if (!fc) return true;
    pthread_mutex_lock(&r->f->conn_mu);
    bool ok = !fc->reaped;
    fc->deadline_ms = 0;
    pthread_mutex_unlock(&r->f->conn_mu);
    return ok;
}

void front__conn_request_done(fr_req *r)
{
    fr_conn *fc = r->fc;
    if (!fc) return;
    pthread_mutex_lock(&r->f->conn_mu);
    if (fc->req == r) fc->req = NULL;
    fc->handled = false;
    fc->refuse_params = false;
    fc->deadline_ms = fc->reaped ? 0 : request_deadline(r->f);
    pthread_mutex_unlock(&r->f->conn_mu);
    r->fc = NULL;
}

/* The raw answer the reaper writes: status line, Connection: close and a RemoteException. */
static void raw_answer(int status, const char *reason, const char *message, dbuf *out)
{
    whreq_err e = {.status = status, .exception = "IllegalArgumentException"};
    snprintf(e.message, sizeof e.message, "%s", message);
    dbuf body;
    dbuf_init(&body, 4096);
    if (whreq_err_json(&e, &body) == 0 && body.data &&
        dbuf_printf(out,
                    "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n"
                    "Content-Length: %zu\r\n\r\n%s",
                    status, reason, body.len, body.data) != 0)
        dbuf_free(out); /* out of memory: the socket is shut down without an answer */
    dbuf_free(&body);
}

/* Write a last answer on fd (best effort) and read off what the client sent that MHD did not read: that
 * would turn the close into a reset, which loses the answer on the client's side (bounded; a client
 * still sending gets the reset). */
static void last_words(const fr_conn *fc, int status, const char *reason, const char *message)
{
    if (fc->tls) return; /* MHD owns the TLS session: a plain answer would corrupt it; the close says it */
    int fd = fc->fd;
    dbuf msg;
    dbuf_init(&msg, 8192);
    if (status) raw_answer(status, reason, message, &msg);
    if (msg.data && msg.len > 0) {
        ssize_t n = send(fd, msg.data, msg.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)n; /* the client may be gone or its window full */
    }
    dbuf_free(&msg);
    char sink[4096];
    for (int i = 0; i < 64 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {
    }
}

/* Under conn_mu: end fc's request (see the file comment). */
static void reap(front *f, fr_conn *fc)
{
    const char *what;
    if (fc->refuse_params && !fc->handled) {
        what = "too many query parameters";
        last_words(fc, 400, "Bad Request", "Too many query parameters");
    } else if (fc->req) {
        what = "request not received within limits.request_timeout_s";
        last_words(fc, 408, "Request Timeout", "The request was not received within limits.request_timeout_s");
        metrics_inc(f->req_timeouts);
    } else {
        what = "no request within limits.request_timeout_s";
        last_words(fc, 0, NULL, NULL);
        metrics_inc(f->req_timeouts);
    }
    shutdown(fc->fd, SHUT_RDWR);
    fc->reaped = true;
    fc->deadline_ms = 0;
    LOGD("msg=\"connection ended by the front\" reason=\"%s\" req=%" PRIu64, what, fc->req ? fc->req->id : 0);
}

static void *reaper_main(void *arg)
{
    front *f = arg;
    pthread_mutex_lock(&f->conn_mu);
    while (!f->reaper_stop) {
        int64_t now = now_ms();
        int64_t next = now + FRONT_REAP_MAX_SLEEP_MS;
        for (fr_conn *fc = f->conns; fc; fc = fc->next) {
            if (fc->reaped || fc->deadline_ms == 0) continue;
            if (now >= fc->deadline_ms) reap(f, fc);
            else if (fc->deadline_ms < next) next = fc->deadline_ms;
        }
        struct timespec until = {.tv_sec = next / 1000, .tv_nsec = (long)(next % 1000) * 1000000L};
        pthread_cond_timedwait(&f->conn_cond, &f->conn_mu, &until);
    }
    pthread_mutex_unlock(&f->conn_mu);
    return NULL;
}

int front__conn_start(front *f, char *err, size_t errlen)
{
    int rc = pthread_create(&f->reaper, NULL, reaper_main, f);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the connection reaper: %s", strerror(rc));
        return -1;
    }
    f->reaper_started = true;
    return 0;
}

void front__conn_stop(front *f)
{
    if (!f->reaper_started) return;
    pthread_mutex_lock(&f->conn_mu);
    f->reaper_stop = true;
    pthread_cond_signal(&f->conn_cond);
    pthread_mutex_unlock(&f->conn_mu);
    pthread_join(f->reaper, NULL);
    f->reaper_started = false;
}
