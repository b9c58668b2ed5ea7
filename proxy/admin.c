/*
 * admin: the admin listener and the Gen1 readiness probe (endpoints in admin.h).
 *
 * The daemon is a plain libmicrohttpd one with a single internal epoll thread: admin traffic is a
 * scrape every few seconds. Requests are answered at MHD's second call (after the headers), so
 * keep-alive works; anything but GET/HEAD gets 405, unknown paths 404, and a body is never read
 * (MHD closes such a connection). The probe thread wakes every ADMIN_PROBE_S seconds (or at stop) and
 * sends one GETFILESTATUS of "/" unless the previous one is still out; its completion runs on the
 * httpc thread and only stores atomics.
 */
#include "admin.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define ADMIN_PROBE_S 10
#define ADMIN_METRICS_MAX (8u << 20)

struct admin {
    const dp_config *cfg;
    metrics *m;
    applier *ap;
    gen1c *g1;
    front *f;
    struct MHD_Daemon *d;
    int port;
    /* probe */
    pthread_t probe_th;
    bool probe_running;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
    atomic_bool probe_out;        /* a probe is in flight */
    atomic_int gen1_state;        /* 0 not probed yet, 1 reachable, 2 unreachable */
    metrics_gauge *reachable;
    metrics_counter *probes_failed;
};

static int64_t pending_fn(void *ud)
{
    return (int64_t)applier_pending(ud);
}

/* ---- probe ---- */

static void probe_done(void *ud, httpc_resp *resp)
{
    admin *a = ud;
    int now = resp->result == HTTPC_OK ? 1 : 2;
    int old = atomic_exchange(&a->gen1_state, now);
    if (now == 1 && old != 1) LOGI("msg=\"Gen1 reachable\" status=%ld", resp->status);
    if (now == 2 && old != 2)
        LOGW("msg=\"Gen1 unreachable\" result=%s detail=\"%s\"", httpc_result_str(resp->result), resp->error);
    if (now == 2) metrics_inc(a->probes_failed);
    metrics_gauge_set(a->reachable, now == 1);
    httpc_resp_free(resp);
    free(resp);
    atomic_store(&a->probe_out, false);
}

static void probe_once(admin *a)
{
    if (atomic_exchange(&a->probe_out, true)) return; /* the previous probe is still out */
    if (gen1c_get(a->g1, "/", "op=GETFILESTATUS", NULL, HTTPC_BODY_DISCARD, 0, -1, probe_done, a) != 0)
        atomic_store(&a->probe_out, false);
}

static void *probe_main(void *arg)
{
    admin *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        pthread_mutex_unlock(&a->mu);
        probe_once(a);
        pthread_mutex_lock(&a->mu);
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += ADMIN_PROBE_S;
        int rc = 0;
        while (!a->stopping && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&a->cond, &a->mu, &deadline);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---- HTTP ---- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype, char *body, size_t len)
{
    /* body is malloc'd and handed to MHD */
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    char *b = strdup(text);
    if (!b) return MHD_NO;
    return reply(conn, status, "text/plain; charset=utf-8", b, strlen(b));
}

static enum MHD_Result reply_dbuf(struct MHD_Connection *conn, unsigned status, const char *ctype, dbuf *b)
{
    size_t len = b->len;
    char *data = dbuf_take(b);
    if (!data) return MHD_NO;
    return reply(conn, status, ctype, data, len);
}

static enum MHD_Result serve_readyz(admin *a, struct MHD_Connection *conn)
{
    if (!front_accepting(a->f)) return reply_text(conn, 503, "not ready: the front is stopping\n");
    switch (atomic_load(&a->gen1_state)) {
    case 1: return reply_text(conn, 200, "ready\n");
    case 2: return reply_text(conn, 503, "not ready: Gen1 is unreachable\n");
    default: return reply_text(conn, 503, "not ready: Gen1 not probed yet\n");
    }
}

static enum MHD_Result serve(admin *a, struct MHD_Connection *conn, const char *url)
{
    if (strcmp(url, "/healthz") == 0) return reply_text(conn, 200, "ok\n");
    if (strcmp(url, "/readyz") == 0) return serve_readyz(a, conn);
    if (strcmp(url, "/metrics") == 0) {
        dbuf b;
        dbuf_init(&b, ADMIN_METRICS_MAX);
        enum MHD_Result ret = metrics_render(a->m, &b) == 0 ? reply_dbuf(conn, 200, METRICS_CONTENT_TYPE, &b)
                                                            : reply_text(conn, 500, "cannot render metrics\n");
        dbuf_free(&b);
        return ret;
    }
    if (strcmp(url, "/admin/status") == 0) {
        dbuf b;
        dbuf_init(&b, ADMIN_METRICS_MAX);
        enum MHD_Result ret = applier_status_json(a->ap, &b) == 0
                                  ? reply_dbuf(conn, 200, "application/json; charset=utf-8", &b)
                                  : reply_text(conn, 500, "cannot render the applier status\n");
        dbuf_free(&b);
        return ret;
    }
    return reply_text(conn, 404, "not found\n");
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    static int marker;
    if (*con_cls == NULL) {
        *con_cls = &marker; /* headers in: answer at the next call so keep-alive survives */
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0; /* a body on an admin request: dropped */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return reply_text(conn, 405, "method not allowed\n");
    return serve(cls, conn, url);
}

static void mhd_logger(void *cls, const char *fm, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fm, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    LOGD("msg=libmicrohttpd listener=admin detail=\"%s\"", line);
}

/* ---- life cycle ---- */

int admin_start(const dp_config *cfg, metrics *m, applier *ap, gen1c *g1, front *f, admin **out, char *err,
                size_t errlen)
{
    admin *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->cfg = cfg;
    a->m = m;
    a->ap = ap;
    a->g1 = g1;
    a->f = f;
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    a->reachable = metrics_gauge_get(m, "dualpipe_gen1_reachable", "1 when Gen1 answered the last readiness probe.",
                                     NULL);
    a->probes_failed = metrics_counter_get(m, "dualpipe_gen1_probe_failures_total",
                                           "Readiness probes of Gen1 that got no HTTP answer.", NULL);
    metrics_gauge_fn(m, "dualpipe_applier_pending", "Writes handed to the Gen2 applier and not finished.", NULL,
                     pending_fn, ap);

    char lerr[300];
    int lfd = front_listen_socket(cfg->admin_listen.host, cfg->admin_listen.port, &a->port, lerr, sizeof lerr);
    if (lfd < 0) {
        snprintf(err, errlen, "admin.listen: %s", lerr);
        goto fail;
    }
    a->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            access_cb, a, MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, a,
                            MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32u << 10), MHD_OPTION_END);
    if (!a->d) {
        close(lfd);
        snprintf(err, errlen, "admin.listen: libmicrohttpd failed to start on %s:%d", cfg->admin_listen.host, a->port);
        goto fail;
    }
    if (pthread_create(&a->probe_th, NULL, probe_main, a) != 0) {
        MHD_stop_daemon(a->d);
        snprintf(err, errlen, "cannot start the Gen1 probe thread");
        goto fail;
    }
    a->probe_running = true;
    LOGI("msg=\"admin listening\" host=%s port=%d", cfg->admin_listen.host, a->port);
    *out = a;
    return 0;
fail:
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    free(a);
    return -1;
}

int admin_port(const admin *a) { return a->port; }

void admin_stop(admin *a)
{
    if (!a) return;
    if (a->d) {
        MHD_stop_daemon(a->d);
        a->d = NULL;
    }
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    if (a->probe_running) {
        pthread_join(a->probe_th, NULL);
        a->probe_running = false;
    }
}

void admin_free(admin *a)
{
    if (!a) return;
    admin_stop(a);
    if (atomic_load(&a->probe_out)) LOGW("msg=\"admin freed with a Gen1 probe in flight\"");
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
