/*
 * emu_http: libmicrohttpd glue for dualpipe-emu (see emu_http.h for the request life cycle).
 *
 * MHD runs a thread per connection, so service callbacks may block. The raw request target comes
 * from MHD's URI log callback (MHD would otherwise unescape the path, losing "%2F" and the exact
 * bytes Shared Key signs). A response is built into the emu_req first and queued at MHD's final call
 * for the request, after the body (a body the service refused is read and dropped), because an answer
 * queued during the first call makes MHD close the connection; only a large refused body is answered
 * at once, giving up the connection rather than reading it all.
 *
 * The listening socket is ours (bound before MHD starts), which gives the real port for port 0 and
 * lets "down" close it (connections refused) and "up" bind the same port again.
 */
#include "emu_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "emu_fault.h"
#include "log.h"

#define EMU_MAX_RESP_HEADERS 32
#define EMU_DRAIN_MAX (1u << 20) /* refused bodies up to this size are read and dropped */

struct emu_http {
    emu_http_opts o;
    emu_service svc;
    emu_fault *faults;
    struct MHD_Daemon *d;
    atomic_int port;         /* written again by "up" on the admin thread while main may read it */
    char base_url[64];
    pthread_mutex_t mu;      /* guards d, the timer and the down/up generation */
    pthread_cond_t cond;     /* wakes the up timer early */
    unsigned down_gen;       /* bumped by every down/up, so a stale timer does nothing */
    bool stopping;
    bool timer_running;
    pthread_t timer;
    struct timespec up_deadline; /* CLOCK_MONOTONIC */
    int reserve_fd;          /* while down: bound, not listening, keeps the port (-1 otherwise) */
};

struct emu_req {
    emu_http *h;
    struct MHD_Connection *conn;
    char *target;            /* raw target, owned */
    char *path;              /* raw path, owned */
    const char *query;       /* into target, "" when absent */
    const char *method;
    bool begun, ended, answered;
    bool is_head;
    int64_t content_length;
    bool chunked;
    uint64_t body_bytes;
    void *data;
    bool reset_now;          /* drop the connection at the next handler call */
    bool reset_armed;        /* drop once body_bytes >= reset_after */
    uint64_t reset_after;
    uint64_t cut_after;      /* > 0: the answer's body is cut off (connection reset) after this many bytes */
    bool lose_answer;        /* fault "lose": carried out, then the connection dropped instead of the answer */
    int status;
    struct MHD_Response *resp;
    char *hname[EMU_MAX_RESP_HEADERS];
    char *hvalue[EMU_MAX_RESP_HEADERS];
    int nh;
};

/* ---- request accessors ---- */

const char *emu_req_method(const emu_req *r) { return r->method; }
const char *emu_req_target(const emu_req *r) { return r->target; }
const char *emu_req_path(const emu_req *r) { return r->path; }
const char *emu_req_query(const emu_req *r) { return r->query; }
int64_t emu_req_content_length(const emu_req *r) { return r->content_length; }
bool emu_req_has_body(const emu_req *r) { return r->chunked || r->content_length > 0; }
uint64_t emu_req_body_bytes(const emu_req *r) { return r->body_bytes; }
const char *emu_req_base_url(const emu_req *r) { return r->h->base_url; }
void *emu_req_get_data(const emu_req *r) { return r->data; }
void emu_req_set_data(emu_req *r, void *data) { r->data = data; }
uint64_t emu_req_max_body(const emu_req *r) { return r->h->o.max_body; }
bool emu_req_answered(const emu_req *r) { return r->answered; }

const char *emu_req_header(const emu_req *r, const char *name)
{
    /* MHD matches header names case-insensitively. */
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

struct each_ctx {
    void (*fn)(void *, const char *, const char *);
    void *fnctx;
};

static enum MHD_Result each_header_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct each_ctx *e = cls;
    e->fn(e->fnctx, key, value ? value : "");
    return MHD_YES;
}

void emu_req_each_header(const emu_req *r, void (*fn)(void *fnctx, const char *name, const char *value),
                         void *fnctx)
{
    struct each_ctx e = {fn, fnctx};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, each_header_cb, &e);
}

/* ---- answering ---- */

void emu_resp_header(emu_req *r, const char *name, const char *value)
{
    if (r->nh >= EMU_MAX_RESP_HEADERS) {
        LOGW("msg=\"too many response headers, dropping\" name=%s", name);
        return;
    }
    r->hname[r->nh] = strdup(name);
    r->hvalue[r->nh] = strdup(value);
    if (!r->hname[r->nh] || !r->hvalue[r->nh]) {
        free(r->hname[r->nh]);
        free(r->hvalue[r->nh]);
        return;
    }
    r->nh++;
}

static void set_response(emu_req *r, int status, struct MHD_Response *resp, const char *content_type)
{
    if (r->answered) {
        LOGE("msg=\"service answered twice\" target=%s", r->target);
        if (resp) MHD_destroy_response(resp);
        return;
    }
    if (!resp) {
        LOGE("msg=\"cannot build response\" status=%d", status);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = 500;
        if (!resp) return;
    }
    if (content_type) MHD_add_response_header(resp, "Content-Type", content_type);
    for (int i = 0; i < r->nh; i++) MHD_add_response_header(resp, r->hname[i], r->hvalue[i]);
    r->resp = resp;
    r->status = status;
    r->answered = true;
}

/* An answer whose body is cut off after cut bytes (fault reset with after_bytes on a body-less
 * request): it announces its full length, sends the first cut bytes, then resets the connection. */
typedef struct cut_body {
    struct MHD_Connection *conn;
    int fd;                  /* source: fd at off, or mem */
    uint64_t off;
    char *mem;
    uint64_t len, cut;
} cut_body;

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    cut_body *c = cls;
    if (pos >= c->len) return MHD_CONTENT_READER_END_OF_STREAM;
    if (pos >= c->cut) {
        /* RST rather than FIN: the client sees the connection break, as with a crashed server. */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        if (ci) setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    uint64_t n = c->cut - pos;
    if (n > c->len - pos) n = c->len - pos;
    if (n > max) n = max;
    if (c->mem) {
        memcpy(buf, c->mem + pos, (size_t)n);
        return (ssize_t)n;
    }
    ssize_t got;
    do {
        got = pread(c->fd, buf, (size_t)n, (off_t)(c->off + pos));
    } while (got < 0 && errno == EINTR);
    return got > 0 ? got : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void cut_free(void *cls)
{
    cut_body *c = cls;
    if (c->fd >= 0) close(c->fd);
    free(c->mem);
    free(c);
}

/* The cut answer for r (takes fd, copies data), or NULL when memory ran out (fd is then closed). */
static struct MHD_Response *cut_response(emu_req *r, int fd, uint64_t off, const void *data, uint64_t len)
{
    cut_body *c = calloc(1, sizeof *c);
    if (c && !data) {
        c->fd = fd;
    } else if (c) {
        c->fd = -1;
        c->mem = malloc(len ? (size_t)len : 1);
        if (c->mem) memcpy(c->mem, data, (size_t)len);
    }
    if (!c || (data && !c->mem)) {
        if (c) free(c->mem);
        free(c);
        if (fd >= 0) close(fd);
        return NULL;
    }
    c->conn = r->conn;
    c->off = off;
    c->len = len;
    c->cut = r->cut_after;
    struct MHD_Response *resp = MHD_create_response_from_callback(len, 64 * 1024, cut_reader, c, cut_free);
    if (!resp) cut_free(c);
    return resp;
}

void emu_resp_buf(emu_req *r, int status, const char *content_type, const void *data, size_t len)
{
    struct MHD_Response *resp = r->cut_after > 0 ? cut_response(r, -1, 0, data, len)
                                                 : MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    set_response(r, status, resp, content_type);
}

void emu_resp_json(emu_req *r, int status, const char *json)
{
    emu_resp_buf(r, status, "application/json; charset=utf-8", json, strlen(json));
}

void emu_resp_empty(emu_req *r, int status)
{
    emu_resp_buf(r, status, NULL, "", 0);
}

void emu_resp_fd(emu_req *r, int status, const char *content_type, int fd, uint64_t offset, uint64_t len)
{
    if (r->cut_after > 0) {
        set_response(r, status, cut_response(r, fd, offset, NULL, len), content_type);
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, offset);
    if (!resp) close(fd);
    set_response(r, status, resp, content_type);
}

static ssize_t no_body_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

void emu_resp_head(emu_req *r, int status, uint64_t len)
{
    /* MHD sends the Content-Length of the response but no body for HEAD; the reader is never used. */
    struct MHD_Response *resp = MHD_create_response_from_callback(len, 4096, no_body_reader, NULL, NULL);
    set_response(r, status, resp, NULL);
}

/* ---- fault hook ---- */

void emu_req_count_identity(emu_req *r, const char *ident, const char *op)
{
    if (r->h->faults) emu_fault_count_identity(r->h->faults, ident, r->method, op);
}

void emu_req_count(emu_req *r, const char *label)
{
    if (r->h->faults) emu_fault_count(r->h->faults, r->method, label);
}

int emu_req_fault(emu_req *r, const char *op)
{
    emu_fault_hit hit;
    if (!r->h->faults) return 0;
    emu_fault_note_crid(r->h->faults, r->method, op, emu_req_header(r, "x-ms-client-request-id"));
    emu_fault_check_target(r->h->faults, r->method, op, r->target, &hit);
    if (hit.latency_ms) {
        struct timespec ts = {hit.latency_ms / 1000, (long)(hit.latency_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (hit.action == EMU_FAULT_FAIL) {
        r->h->svc.fault(r->h->svc.ctx, r, hit.status, hit.retry_after_s, hit.code[0] ? hit.code : NULL);
        return 1;
    }
    if (hit.action == EMU_FAULT_LOSE) {
        r->lose_answer = true;
        return 0;
    }
    if (hit.action == EMU_FAULT_RESET) {
        if (hit.after_bytes > 0 && !emu_req_has_body(r) && strcmp(r->method, "GET") == 0) {
            /* A read: answered as usual, its body cut short by a reset (a server crashing mid-answer). */
            r->cut_after = hit.after_bytes;
            return 0;
        }
        if (hit.after_bytes > 0 && emu_req_has_body(r)) {
            r->reset_armed = true;
            r->reset_after = hit.after_bytes;
        } else {
            r->reset_now = true;
        }
        return -1;
    }
    return 0;
}

/* ---- MHD callbacks ---- */

static void free_req(emu_req *r)
{
    if (r->resp) MHD_destroy_response(r->resp);
    for (int i = 0; i < r->nh; i++) {
        free(r->hname[i]);
        free(r->hvalue[i]);
    }
    free(r->target);
    free(r->path);
    free(r);
}

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    emu_http *h = cls;
    emu_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->h = h;
    r->conn = conn;
    r->target = strdup(uri ? uri : "/");
    const char *q = r->target ? strchr(r->target, '?') : NULL;
    r->path = r->target ? strndup(r->target, q ? (size_t)(q - r->target) : strlen(r->target)) : NULL;
    r->query = q ? q + 1 : "";
    r->content_length = -1;
    if (!r->target || !r->path) {
        free(r->target);
        free(r->path);
        free(r);
        return NULL;
    }
    return r;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    emu_http *h = cls;
    emu_req *r = *con_cls;
    if (!r) return;
    if (r->begun && h->svc.done) h->svc.done(h->svc.ctx, r, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (r->begun && h->faults) emu_fault_in_flight(h->faults, -1);
    free_req(r);
    *con_cls = NULL;
}

static enum MHD_Result queue(emu_req *r)
{
    if (!r->answered) {
        LOGE("msg=\"service gave no answer\" method=%s target=%s", r->method, r->target);
        emu_resp_json(r, 500, "{\"error\":\"emulator service gave no answer\"}");
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    LOGD("msg=answer method=%s target=%s status=%d", r->method, r->target, r->status);
    return ret;
}

static void begin(emu_req *r, const char *method)
{
    r->begun = true;
    if (r->h->faults) emu_fault_in_flight(r->h->faults, 1);
    r->method = method;
    r->is_head = strcmp(method, "HEAD") == 0;
    const char *te = emu_req_header(r, "Transfer-Encoding");
    r->chunked = te && strcasestr(te, "chunked") != NULL;
    const char *cl = emu_req_header(r, "Content-Length");
    if (cl && !r->chunked) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(cl, &end, 10);
        if (errno == 0 && end != cl && *end == '\0' && v >= 0) r->content_length = v;
    }
    r->h->svc.begin(r->h->svc.ctx, r);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size,
                                 void **con_cls)
{
    emu_http *h = cls;
    emu_req *r = *con_cls;
    if (!r) return MHD_NO; /* out of memory in uri_log_cb: drop the connection */
    if (!r->begun) {
        begin(r, method);
        if (r->reset_now) return MHD_NO;
        /* An answer queued during this first call makes MHD close the connection afterwards. So a
         * body-less request (MHD calls once more with no data) and a small refused body (read and
         * dropped) are answered at the final call, keeping keep-alive; only a large refused body is
         * answered at once, at the cost of the connection, rather than reading it all. */
        if (r->answered && emu_req_has_body(r) &&
            (r->chunked || (uint64_t)r->content_length > EMU_DRAIN_MAX))
            return queue(r);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        r->body_bytes += n;
        if (r->reset_now || (r->reset_armed && r->body_bytes >= r->reset_after)) return MHD_NO;
        if (r->answered) return MHD_YES; /* read and drop the rest of a refused body */
        if (r->body_bytes > h->o.max_body) {
            h->svc.fault(h->svc.ctx, r, 413, 0, NULL);
            return MHD_YES;
        }
        h->svc.body(h->svc.ctx, r, upload_data, n);
        return MHD_YES;
    }
    if (r->reset_now || r->reset_armed) return MHD_NO;
    if (!r->answered && !r->ended) {
        r->ended = true;
        h->svc.end(h->svc.ctx, r);
    }
    if (r->lose_answer) return MHD_NO; /* done, and the answer never leaves */
    return queue(r);
}

/* ---- server ---- */

static bool is_loopback(const char *host)
{
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1) return false;
    return (ntohl(a.s_addr) >> 24) == 127;
}

/* A socket bound to host:port (SO_REUSEADDR + SO_REUSEPORT), not yet listening. SO_REUSEPORT lets
 * "down" bind a second socket to the same port before the listener closes, so the port stays ours
 * while down: a bound socket that does not listen answers connections with RST (refused), and other
 * processes, which do not share the port, can neither bind it nor get it from bind(0). */
static int bind_socket(const char *host, int port, bool reserve, char *err, size_t errlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "listen address %s is not an IPv4 address", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    /* SO_REUSEPORT lets the reserving socket of emu_http_down bind while the listener is still open; it
     * would also let a second emulator join a port in use, and the kernel would then split connections
     * between the two. So a listener's port is first probed with a plain socket: busy means refused. */
    if (!reserve && port != 0) {
        int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            int busy = bind(probe, (struct sockaddr *)&sa, sizeof sa) != 0 && errno == EADDRINUSE;
            close(probe);
            if (busy) {
                snprintf(err, errlen, "cannot bind %s:%d: the port is in use", host, port);
                close(fd);
                return -1;
            }
        }
    }
    /* The reserving socket goes without SO_REUSEADDR, so that even an explicit bind elsewhere fails. */
    if (!reserve) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "cannot bind %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int start_daemon(emu_http *h, char *err, size_t errlen)
{
    /* Coming back up: listen on the socket that kept the port while down. */
    int fd = h->reserve_fd;
    h->reserve_fd = -1;
    int held = atomic_load(&h->port);
    if (fd < 0) fd = bind_socket(h->o.host, held ? held : h->o.port, false, err, errlen);
    if (fd < 0) return -1;
    if (listen(fd, 512) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", h->o.host, strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    int port = ntohs(sa.sin_port);
    /* Before the daemon's threads start (they read it); a restart keeps its port, so the URL holds. */
    if (!h->base_url[0]) snprintf(h->base_url, sizeof h->base_url, "http://%s:%d", h->o.host, port);
    bool tls = h->o.tls_cert_pem && h->o.tls_key_pem;
    struct MHD_OptionItem tls_opts[] = {
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)h->o.tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)h->o.tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                                (tls ? MHD_USE_TLS : 0),
                            0, NULL, NULL, access_cb, h, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_ARRAY, tls_opts,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, h, MHD_OPTION_NOTIFY_COMPLETED,
                            completed_cb, h, MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->o.max_header,
                            MHD_OPTION_CONNECTION_LIMIT, h->o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                            h->o.idle_timeout_s, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "libmicrohttpd failed to start on %s:%d", h->o.host, port);
        close(fd);
        return -1;
    }
    atomic_store(&h->port, port);
    return 0;
}

int emu_http_start(const emu_http_opts *o, const emu_service *svc, struct emu_fault *faults, emu_http **out,
                   char *err, size_t errlen)
{
    if (!is_loopback(o->host)) {
        snprintf(err, errlen, "refusing to listen on %s: the emulator binds loopback addresses only", o->host);
        return -1;
    }
    emu_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->o = *o;
    h->reserve_fd = -1;
    if (!h->o.max_body) h->o.max_body = 4u << 20;
    if (!h->o.max_header) h->o.max_header = 64u << 10;
    if (!h->o.max_connections) h->o.max_connections = 1024;
    if (!h->o.idle_timeout_s) h->o.idle_timeout_s = 120;
    h->svc = *svc;
    h->faults = faults;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (start_daemon(h, err, errlen) != 0) {
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

int emu_http_port(const emu_http *h) { return atomic_load(&((emu_http *)h)->port); }

/* The "come back after ms" timer: one joinable thread at a time, woken early by a later down/up or
 * by stop, so nothing touches h after emu_http_stop. */
static void *up_timer_main(void *arg)
{
    emu_http *h = arg;
    pthread_mutex_lock(&h->mu);
    unsigned gen = h->down_gen;
    struct timespec deadline = h->up_deadline;
    int rc = 0;
    while (!h->stopping && h->down_gen == gen && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&h->cond, &h->mu, &deadline);
    bool fire = !h->stopping && h->down_gen == gen;
    pthread_mutex_unlock(&h->mu);
    if (fire) emu_http_up(h);
    return NULL;
}

static void join_timer(emu_http *h)
{
    pthread_mutex_lock(&h->mu);
    bool running = h->timer_running;
    pthread_t th = h->timer;
    h->timer_running = false;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
    if (running && !pthread_equal(th, pthread_self())) pthread_join(th, NULL);
    else if (running) pthread_detach(th);
}

int emu_http_down(emu_http *h, unsigned ms)
{
    pthread_mutex_lock(&h->mu);
    struct MHD_Daemon *d = h->d;
    h->d = NULL;
    h->down_gen++;
    pthread_mutex_unlock(&h->mu);
    join_timer(h);
    if (d) {
        /* Hold the port before the listener closes (see bind_socket), so nothing else takes it. */
        char err[256];
        int r = bind_socket(h->o.host, atomic_load(&h->port), true, err, sizeof err);
        if (r < 0) LOGW("msg=\"cannot hold the port while down\" err=\"%s\"", err);
        pthread_mutex_lock(&h->mu);
        if (h->reserve_fd >= 0) close(h->reserve_fd);
        h->reserve_fd = r;
        pthread_mutex_unlock(&h->mu);
        MHD_stop_daemon(d); /* closes the listener and every open connection */
        LOGI("msg=\"listener down\" port=%d ms=%u", atomic_load(&h->port), ms);
    }
    if (ms == 0) return 0;
    pthread_mutex_lock(&h->mu);
    clock_gettime(CLOCK_MONOTONIC, &h->up_deadline);
    h->up_deadline.tv_sec += ms / 1000;
    h->up_deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (h->up_deadline.tv_nsec >= 1000000000L) {
        h->up_deadline.tv_sec++;
        h->up_deadline.tv_nsec -= 1000000000L;
    }
    int rc = pthread_create(&h->timer, NULL, up_timer_main, h);
    h->timer_running = rc == 0;
    pthread_mutex_unlock(&h->mu);
    return rc == 0 ? 0 : -1;
}

int emu_http_up(emu_http *h)
{
    char err[256];
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    h->down_gen++;
    pthread_cond_broadcast(&h->cond);
    if (!h->d) {
        rc = start_daemon(h, err, sizeof err);
        if (rc != 0)
            LOGE("msg=\"listener could not come back\" err=\"%s\"", err);
        else
            LOGI("msg=\"listener up\" port=%d", atomic_load(&h->port));
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void emu_http_stop(emu_http *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_mutex_unlock(&h->mu);
    join_timer(h);
    pthread_mutex_lock(&h->mu);
    struct MHD_Daemon *d = h->d;
    h->d = NULL;
    pthread_mutex_unlock(&h->mu);
    if (d) MHD_stop_daemon(d);
    if (h->reserve_fd >= 0) close(h->reserve_fd);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
