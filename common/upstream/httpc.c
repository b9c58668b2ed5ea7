/*
 * httpc: the upstream HTTP engine. One thread owns a libcurl multi handle and runs
 * curl_multi_perform / curl_multi_poll; other threads hand it requests through a mutex-protected
 * queue and wake it with curl_multi_wakeup. Each request becomes an easy handle (taken from a small
 * free list of reset handles) configured for HTTP/1.1 with Content-Length bodies only: "Expect:" and
 * "Transfer-Encoding:" are always suppressed, a body-less PUT/POST/PATCH/DELETE carries an explicit
 * "Content-Length: 0", and curl's default "Accept: * / *" is dropped so only the caller's headers go
 * out. Bodies are read from memory or pread from a file range (so one spool file can feed several
 * requests at once, and curl can rewind on a retried connection, unless the request is sent at most once:
 * httpc_req.once, enforced by the pre-request callback, which sees every send); responses go to a bounded dbuf, an
 * fd, nowhere, or to the caller's stream callbacks. A stream pauses with CURL_WRITEFUNC_PAUSE when
 * its consumer is full; curl_easy_pause may only run on this thread, so other threads ask for a resume
 * (or a cancel) through the exchange's httpc_ctl, which is queued like a submit and handled at the
 * engine's next turn. Connections are pooled by the multi handle (CURLMOPT_MAX_HOST_CONNECTIONS per
 * host). Per request there is no thread, no sleep and no scan of other requests: the active list is
 * only walked at shutdown to cancel what is left. libcurl's default upload buffer is kept on
 * purpose (measured here: a 2 MiB buffer doubled the CPU cost per byte).
 */
#include "httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "crc32c.h"

#define HTTPC_FREE_EASY 64                  /* reset easy handles kept for reuse */
#define HTTPC_MAX_HEADER_BYTES (256u << 10) /* response header bytes kept per response */
#define HTTPC_DEFAULT_OUT_MAX (1u << 20)
#define HTTPC_DEFAULT_CONNECT_MS 5000u
#define HTTPC_DEFAULT_TIMEOUT_MS 60000u
#define HTTPC_POLL_MS 1000
#define HTTPC_SMALL_BODY (32u << 10)        /* fd bodies up to this size are read at submit (see hx.small) */

typedef struct hx hx;

/* One exchange, from submit to done. Owned by the engine once queued. */
struct hx {
    hx *next, *prev;               /* submit queue (next only), then the active list */
    CURL *easy;
    struct curl_slist *hdrs;
    char method[16];
    bool added;                    /* in the multi handle */
    bool has_body;
    httpc_body_in in;
    const char *in_mem;
    char *small;                   /* an fd body of at most HTTPC_SMALL_BODY, read at submit: sent with the
                                      headers in one piece (libcurl's POSTFIELDS) instead of through on_read */
    int in_fd;
    uint64_t in_off, in_len, in_pos;
    httpc_body_out out;
    int out_fd;
    void (*on_head)(void *ud, const httpc_resp *resp);   /* HTTPC_BODY_STREAM */
    size_t (*on_body)(void *ud, const char *p, size_t n);
    httpc_ctl *ctl;                /* one reference, or NULL */
    bool head_done;                /* on_head has run */
    bool once;                     /* httpc_req.once */
    unsigned sends;                /* times libcurl was about to send the request (on_prereq) */
    unsigned connect_timeout_ms, timeout_ms;
    bool in_failed, out_failed, too_big, nomem;
    int io_errno;
    size_t hdr_bytes;
    httpc_resp *resp;
    void (*done)(void *ud, httpc_resp *resp);
    void *ud;
    char errbuf[CURL_ERROR_SIZE];
    char url[];                    /* copied at submit */
};

struct httpc_ctl {
    atomic_int refs;
    atomic_bool cancel;            /* sticky: this and every later exchange with the ctl is cancelled */
    atomic_bool resume;            /* a resume was asked and not yet done */
    bool queued;                   /* in the engine's ctl queue (guarded by the engine's mu) */
    httpc_ctl *qnext;              /* guarded by the engine's mu */
    hx *h;                         /* the exchange running with it (engine thread only) */
};

typedef struct tls_rule {
    char *host;                    /* NULL: the default rule */
    size_t hostlen;
    int port;                      /* 0: any */
    char *ca_file, *ca_path, *cert_file, *key_file; /* NULL when not set */
    bool insecure;
} tls_rule;

struct httpc {
    pthread_t thread;
    CURLM *multi;
    pthread_mutex_t mu;
    hx *q_head, *q_tail;           /* guarded by mu */
    httpc_ctl *c_head, *c_tail;    /* resume/cancel requests, guarded by mu (each holds a ctl reference) */
    bool stopping;                 /* guarded by mu */
    hx active;                     /* list sentinel: exchanges in the multi handle (engine thread) */
    CURL *free_easy[HTTPC_FREE_EASY]; /* engine thread only */
    int nfree;
    atomic_uint in_flight;
    atomic_uint_fast64_t connects;
    tls_rule tls[HTTPC_MAX_TLS_RULES]; /* added under mu; never changed once counted in ntls */
    atomic_int ntls;               /* rules published (release after the rule is written) */
};

const char *httpc_result_str(httpc_result r)
{
    switch (r) {
    case HTTPC_OK: return "ok";
    case HTTPC_E_CONNECT: return "connect failed";
    case HTTPC_E_TIMEOUT: return "timeout";
    case HTTPC_E_TRANSPORT: return "transport error";
    case HTTPC_E_TOO_BIG: return "response too big";
    case HTTPC_E_BODY: return "body i/o failed";
    case HTTPC_E_CANCELLED: return "cancelled";
    case HTTPC_E_NOMEM: return "out of memory";
    case HTTPC_E_AUTH: return "authentication failed";
    }
    return "unknown";
}

const char *httpc_resp_header(const httpc_resp *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

static void resp_clear_headers(httpc_resp *r)
{
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
        r->headers[i].name = r->headers[i].value = NULL;
    }
    r->nheaders = 0;
}

void httpc_sync_init(httpc_sync *s)
{
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->done = false;
    s->resp = NULL;
}

void httpc_sync_done(void *ud, httpc_resp *resp)
{
    httpc_sync *s = ud;
    pthread_mutex_lock(&s->mu);
    s->resp = resp;
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

httpc_resp *httpc_sync_wait(httpc_sync *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->done) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    httpc_sync_drop(s);
    return s->resp;
}

void httpc_sync_drop(httpc_sync *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

void httpc_resp_free(httpc_resp *r)
{
    if (!r) return;
    resp_clear_headers(r);
    dbuf_free(&r->body);
}

/* ---- curl callbacks (engine thread) ---- */

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    hx *h = ud;
    httpc_resp *r = h->resp;
    size_t len = size * n;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new status line (1xx, or a response after one): only the final response's headers count. */
        resp_clear_headers(r);
        h->hdr_bytes = 0;
        return len;
    }
    size_t end = len;
    while (end > 0 && (buf[end - 1] == '\r' || buf[end - 1] == '\n')) end--;
    if (end == 0 && h->out == HTTPC_BODY_STREAM && !h->head_done) {
        /* The blank line ends a response's headers; a final (non-1xx) one goes to the caller now, before
         * any body byte arrives. */
        long status = 0;
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200) {
            r->status = status;
            h->head_done = true;
            h->on_head(h->ud, r);
        }
        return len;
    }
    if (end == 0 || buf[0] == ' ' || buf[0] == '\t') return len; /* blank line; obsolete folding ignored */
    const char *colon = memchr(buf, ':', end);
    if (!colon || colon == buf) return len;
    if (r->nheaders >= HTTPC_MAX_HEADERS || h->hdr_bytes + end > HTTPC_MAX_HEADER_BYTES) return len;
    size_t nlen = (size_t)(colon - buf);
    while (nlen > 0 && (buf[nlen - 1] == ' ' || buf[nlen - 1] == '\t')) nlen--;
    const char *v = colon + 1, *vend = buf + end;
    while (v < vend && (*v == ' ' || *v == '\t')) v++;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
    char *name = strndup(buf, nlen);
    char *value = strndup(v, (size_t)(vend - v));
    if (!name || !value) {
        free(name);
        free(value);
        h->nomem = true;
        return 0;
    }
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = value;
    r->nheaders++;
    h->hdr_bytes += end;
    return len;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* HTTPC_BODY_STREAM: make sure on_head ran (an answer may end without the blank line reaching us). */
static void stream_head(hx *h)
{
    if (h->head_done) return;
    long status = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    h->resp->status = status;
    h->head_done = true;
    h->on_head(h->ud, h->resp);
}

static size_t on_write(char *buf, size_t size, size_t n, void *ud)
{
    hx *h = ud;
    size_t len = size * n;
    if (h->out == HTTPC_BODY_STREAM) {
        stream_head(h);
        size_t took = h->on_body(h->ud, buf, len);
        if (took == HTTPC_PAUSE) return CURL_WRITEFUNC_PAUSE; /* offered again after the resume */
        if (took != len) {
            h->out_failed = true; /* the consumer gave up: abort the exchange */
            return 0;
        }
        h->resp->body_bytes += len;
        return len;
    }
    h->resp->body_bytes += len;
    if (h->out == HTTPC_BODY_MEMORY) {
        int rc = dbuf_add(&h->resp->body, buf, len);
        if (rc == -E2BIG) {
            h->too_big = true;
            return 0;
        }
        if (rc != 0) {
            h->nomem = true;
            return 0;
        }
    } else if (h->out == HTTPC_BODY_FD) {
        int rc = write_all(h->out_fd, buf, len);
        if (rc != 0) {
            h->out_failed = true;
            h->io_errno = -rc;
            return 0;
        }
        h->resp->body_crc = crc32c_extend(h->resp->body_crc, buf, len); /* so the caller need not read it back */
    }
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    hx *h = ud;
    size_t want = size * n;
    uint64_t left = h->in_len - h->in_pos;
    if (want > left) want = (size_t)left;
    if (want == 0) return 0;
    if (h->in == HTTPC_IN_MEMORY) {
        memcpy(buf, h->in_mem + h->in_pos, want);
    } else {
        ssize_t r;
        do {
            r = pread(h->in_fd, buf, want, (off_t)(h->in_off + h->in_pos));
        } while (r < 0 && errno == EINTR);
        if (r <= 0) { /* error, or the file is shorter than in_off + in_len */
            h->in_failed = true;
            h->io_errno = r < 0 ? errno : 0;
            return CURL_READFUNC_ABORT;
        }
        want = (size_t)r;
    }
    h->in_pos += want;
    return want;
}

/* curl rewinds the body when it resends a request on a fresh connection. */
static int on_seek(void *ud, curl_off_t off, int origin)
{
    hx *h = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > h->in_len) return CURL_SEEKFUNC_CANTSEEK;
    h->in_pos = (uint64_t)off;
    return CURL_SEEKFUNC_OK;
}

/* ---- engine ---- */

static void list_add(hx *head, hx *h)
{
    h->next = head->next;
    h->prev = head;
    head->next->prev = h;
    head->next = h;
}

static void list_del(hx *h)
{
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->next = h->prev = NULL;
}

static void easy_release(httpc *e, CURL *c)
{
    if (!c) return;
    if (e->nfree < HTTPC_FREE_EASY) {
        curl_easy_reset(c);
        e->free_easy[e->nfree++] = c;
    } else {
        curl_easy_cleanup(c);
    }
}

/* libcurl is about to send the request on a connection that is ready: the first time, or again after
 * a reused connection died without an answer (its silent retry). A request that must go at most once
 * refuses the second send: the first may have been applied, so the outcome stays with the caller. */
static int on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    hx *h = ud;
    h->resp->sent = true;
    if (h->once && h->sends > 0) {
        snprintf(h->errbuf, sizeof h->errbuf, "the connection died after the request was sent; not sent again");
        return CURL_PREREQFUNC_ABORT;
    }
    h->sends++;
    return CURL_PREREQFUNC_OK;
}

static httpc_result map_curl(const hx *h, CURLcode cc)
{
    if (h->too_big) return HTTPC_E_TOO_BIG;
    if (h->in_failed || h->out_failed) return HTTPC_E_BODY;
    if (h->nomem) return HTTPC_E_NOMEM;
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    /* The TLS handshake failed: no byte of this attempt's request left, like a refused connection. */
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        /* after a send (libcurl's retry of a dead reused connection could not connect) the first send may
         * have reached the upstream: not "nothing was sent" */
        return h->resp->sent ? HTTPC_E_TRANSPORT : HTTPC_E_CONNECT;
    case CURLE_OPERATION_TIMEDOUT: return HTTPC_E_TIMEOUT;
    case CURLE_OUT_OF_MEMORY: return HTTPC_E_NOMEM;
    default: return HTTPC_E_TRANSPORT;
    }
}

/* Complete h with result (or curl's cc when result is HTTPC_OK and cc is not), free it, call done. */
static void hx_finish(httpc *e, hx *h, CURLcode cc, httpc_result result)
{
    httpc_resp *r = h->resp;
    if (h->easy) {
        double t = 0;
        long conns = 0;
        if (curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME, &t) == CURLE_OK) r->total_s = t;
        if (curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK && conns > 0)
            atomic_fetch_add(&e->connects, (uint_fast64_t)conns);
    }
    if (result == HTTPC_OK && cc != CURLE_OK) result = map_curl(h, cc);
    r->result = result;
    r->unresolved = result == HTTPC_E_CONNECT && cc == CURLE_COULDNT_RESOLVE_HOST;
    if (result == HTTPC_OK) {
        long status = 0;
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
        r->status = status;
        if (h->out == HTTPC_BODY_STREAM) stream_head(h);
        if (h->out == HTTPC_BODY_MEMORY && !r->body.data && dbuf_add(&r->body, "", 0) != 0) {
            r->result = HTTPC_E_NOMEM;
            r->status = 0;
        }
    } else {
        r->status = 0;
        if (result == HTTPC_E_TOO_BIG)
            snprintf(r->error, sizeof r->error, "response body over %zu bytes", r->body.max);
        else if (h->in_failed)
            snprintf(r->error, sizeof r->error, "reading the request body: %s",
                     h->io_errno ? strerror(h->io_errno) : "file shorter than the declared length");
        else if (h->out_failed && h->out == HTTPC_BODY_STREAM)
            snprintf(r->error, sizeof r->error, "the stream's consumer refused the response body");
        else if (h->out_failed)
            snprintf(r->error, sizeof r->error, "writing the response body: %s", strerror(h->io_errno));
        else if (result == HTTPC_E_CANCELLED)
            snprintf(r->error, sizeof r->error, "engine stopped before the exchange ended");
        else if (h->errbuf[0])
            snprintf(r->error, sizeof r->error, "%s", h->errbuf);
        else
            snprintf(r->error, sizeof r->error, "%s", cc != CURLE_OK ? curl_easy_strerror(cc) : httpc_result_str(result));
    }
    if (h->added) {
        curl_multi_remove_handle(e->multi, h->easy);
        list_del(h);
    }
    easy_release(e, h->easy);
    curl_slist_free_all(h->hdrs);
    free(h->small);
    if (h->ctl) {
        if (h->ctl->h == h) h->ctl->h = NULL;
        httpc_ctl_unref(h->ctl);
    }
    void (*done)(void *, httpc_resp *) = h->done;
    void *ud = h->ud;
    free(h);
    atomic_fetch_sub(&e->in_flight, 1);
    done(ud, r);
}

/* The host and port of an http(s) URL as libcurl's URL parser reports them (CURLUPART_HOST, and
 * CURLUPART_PORT with CURLU_DEFAULT_PORT), read in place for the URLs the proxy sends: a scheme of http or
 * https, a host name or a dotted-quad IPv4 address, an optional decimal port, then nothing but printable
 * bytes. 0 with *host (not terminated) / *hostlen / *port set; -1 for anything else (user info, an IPv6
 * literal, percent-encoding, a numeric host in another form, a port libcurl may write differently), which
 * the caller hands to libcurl's parser: this one must never answer differently from it. */
static int url_host_port_fast(const char *url, const char **host, size_t *hostlen, int *port)
{
    int def;
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        def = 80;
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        def = 443;
        p = url + 8;
    } else {
        return -1;
    }
    const char *h = p;
    bool name = false; /* a byte no numeric IPv4 form has: the host is a name libcurl keeps as written */
    bool dot_ok = false; /* no empty label: not first, not after another dot */
    for (; *p && *p != ':' && *p != '/' && *p != '?' && *p != '#'; p++) {
        char ch = *p;
        if (ch == '.') {
            if (!dot_ok) return -1;
            dot_ok = false;
            continue;
        }
        bool digit = ch >= '0' && ch <= '9';
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (!digit && !alpha && ch != '-') return -1;
        if (!digit && !((ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') || ch == 'x' || ch == 'X')) name = true;
        dot_ok = true;
    }
    size_t hl = (size_t)(p - h);
    if (hl == 0 || !dot_ok) return -1; /* empty, or ends with a dot */
    if (!name) { /* it may be a number libcurl rewrites (127.1, 0x7f.1, 017...): only the canonical form here */
        int parts = 0;
        const char *q = h;
        while (q < p) {
            unsigned v = 0;
            int nd = 0;
            for (; q < p && *q >= '0' && *q <= '9'; q++, nd++) v = v * 10 + (unsigned)(*q - '0');
            if (nd == 0 || nd > 3 || v > 255 || (nd > 1 && q[-nd] == '0')) return -1;
            parts++;
            if (q < p && *q++ != '.') return -1;
        }
        if (parts != 4) return -1;
    }
    int pt = def;
    if (*p == ':') {
        p++;
        unsigned v = 0;
        int nd = 0;
        for (; *p >= '0' && *p <= '9' && nd < 6; p++, nd++) v = v * 10 + (unsigned)(*p - '0');
        if (nd == 0 || nd > 5 || p[-nd] == '0' || v > 65535) return -1;
        pt = (int)v;
    }
    if (*p && *p != '/' && *p != '?' && *p != '#') return -1;
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return -1; /* libcurl's to judge */
    *host = h;
    *hostlen = hl;
    *port = pt;
    return 0;
}

/* The index of the first of the n published rules matching host[0..hostlen) and port, or -1. */
static int match_rule(const httpc *e, int n, const char *host, size_t hostlen, int port)
{
    for (int i = 0; i < n; i++) {
        const tls_rule *r = &e->tls[i];
        if (!r->host || (r->hostlen == hostlen && strncasecmp(r->host, host, hostlen) == 0 &&
                         (r->port == 0 || r->port == port)))
            return i;
    }
    return -1;
}

int httpc_tls_rule_for(httpc *e, const char *url)
{
    int n = atomic_load_explicit(&e->ntls, memory_order_acquire);
    if (n == 0) return -1;
    const char *host;
    size_t hl;
    int port;
    if (url_host_port_fast(url, &host, &hl, &port) == 0) return match_rule(e, n, host, hl, port);
    /* anything unusual: libcurl's parser (several allocations) */
    int found = -1;
    CURLU *u = curl_url();
    char *h = NULL, *ps = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &ps, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        const char *hp = h;
        hl = strlen(h);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* IPv6 literal: compare without brackets */
            hp++;
            hl -= 2;
        }
        found = match_rule(e, n, hp, hl, atoi(ps));
    }
    curl_free(h);
    curl_free(ps);
    curl_url_cleanup(u);
    return found;
}

static char *dup_opt(const char *s, bool *bad)
{
    if (!s || !s[0]) return NULL;
    char *d = strdup(s);
    if (!d) *bad = true;
    return d;
}

static void tls_rule_free(tls_rule *r)
{
    free(r->host);
    free(r->ca_file);
    free(r->ca_path);
    free(r->cert_file);
    free(r->key_file);
}

int httpc_set_tls(httpc *e, const char *host, int port, const httpc_tls *tls)
{
    bool bad = false;
    tls_rule r = {.port = port, .insecure = tls->insecure_skip_verify};
    if (host) {
        r.host = strdup(host);
        r.hostlen = strlen(host);
        bad = !r.host;
    }
    r.ca_file = dup_opt(tls->ca_file, &bad);
    r.ca_path = dup_opt(tls->ca_path, &bad);
    r.cert_file = dup_opt(tls->cert_file, &bad);
    r.key_file = dup_opt(tls->key_file, &bad);
    pthread_mutex_lock(&e->mu);
    int n = atomic_load_explicit(&e->ntls, memory_order_relaxed);
    if (!bad && n < HTTPC_MAX_TLS_RULES) {
        e->tls[n] = r;
        atomic_store_explicit(&e->ntls, n + 1, memory_order_release);
    } else {
        bad = true;
    }
    pthread_mutex_unlock(&e->mu);
    if (bad) tls_rule_free(&r);
    return bad ? -1 : 0;
}

static bool setup_tls(httpc *e, hx *h, CURL *c)
{
    int i = httpc_tls_rule_for(e, h->url);
    if (i < 0) return true;
    const tls_rule r = e->tls[i]; /* published rules stay as they are until httpc_stop */
    bool bad = false;
    if (r.ca_file) bad |= curl_easy_setopt(c, CURLOPT_CAINFO, r.ca_file) != CURLE_OK;
    if (r.ca_path) bad |= curl_easy_setopt(c, CURLOPT_CAPATH, r.ca_path) != CURLE_OK;
    if (r.cert_file) {
        bad |= curl_easy_setopt(c, CURLOPT_SSLCERT, r.cert_file) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM") != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SSLKEY, r.key_file) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM") != CURLE_OK;
    }
    if (r.insecure) {
        bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK;
    }
    return !bad;
}

static bool setup_easy(hx *h, CURL *c)
{
    bool bad = false;
    bad |= curl_easy_setopt(c, CURLOPT_URL, (const char *)h->url) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PRIVATE, h) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    /* Upstreams speak HTTP/1.1; keeping it fixed makes Content-Length framing and pooling predictable. */
    bad |= curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms) != CURLE_OK;
    if (h->out == HTTPC_BODY_STREAM) {
        /* A stream lasts as long as its reader takes, so no total timeout: instead the exchange fails
         * after timeout_ms without a byte (less than 1 byte/s over that window). libcurl leaves paused
         * transfers out of this check, so a slow reader does not count as a silent upstream. */
        long secs = (long)((h->timeout_ms + 999) / 1000);
        bad |= curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, secs) != CURLE_OK;
    } else {
        bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms) != CURLE_OK;
    }
    bad |= curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PREREQDATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hdrs) != CURLE_OK;
    if (strcmp(h->method, "GET") == 0) {
        bad |= curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    } else if (strcmp(h->method, "HEAD") == 0) {
        bad |= curl_easy_setopt(c, CURLOPT_NOBODY, 1L) != CURLE_OK;
    } else if (h->has_body && (h->small || (h->in == HTTPC_IN_MEMORY && h->in_len <= HTTPC_SMALL_BODY))) {
        /* A small body goes out with the request headers in one send; CUSTOMREQUEST keeps the method
         * (libcurl would say POST) and the header list drops libcurl's default Content-Type. */
        const char *data = h->small ? h->small : h->in_mem;
        bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->in_len) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, data ? data : "") != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, h->method) != CURLE_OK;
    } else if (h->has_body) {
        bad |= curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_READDATA, h) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SEEKDATA, h) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)h->in_len) != CURLE_OK;
        if (strcmp(h->method, "PUT") != 0)
            bad |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, h->method) != CURLE_OK;
    } else {
        /* No body: the method string only; "Content-Length: 0" is in the header list. */
        bad |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, h->method) != CURLE_OK;
    }
    return !bad;
}

static void hx_start(httpc *e, hx *h)
{
    CURL *c = e->nfree > 0 ? e->free_easy[--e->nfree] : curl_easy_init();
    if (!c) {
        hx_finish(e, h, CURLE_OK, HTTPC_E_NOMEM);
        return;
    }
    h->easy = c;
    if (h->ctl) {
        if (atomic_load(&h->ctl->cancel)) {
            hx_finish(e, h, CURLE_OK, HTTPC_E_CANCELLED);
            return;
        }
        h->ctl->h = h;
    }
    if (h->in_failed) { /* the small body could not be read at submit */
        hx_finish(e, h, CURLE_OK, HTTPC_E_BODY);
        return;
    }
    if (!setup_easy(h, c) || !setup_tls(e, h, c)) {
        hx_finish(e, h, CURLE_OK, HTTPC_E_TRANSPORT);
        return;
    }
    CURLMcode mc = curl_multi_add_handle(e->multi, c);
    if (mc != CURLM_OK) {
        snprintf(h->errbuf, sizeof h->errbuf, "%s", curl_multi_strerror(mc));
        hx_finish(e, h, CURLE_OK, mc == CURLM_OUT_OF_MEMORY ? HTTPC_E_NOMEM : HTTPC_E_TRANSPORT);
        return;
    }
    h->added = true;
    list_add(&e->active, h);
}

/* Take the submit queue and the ctl queue; returns the first and whether the engine is stopping. */
static hx *take_queue(httpc *e, httpc_ctl **ctls, bool *stopping)
{
    pthread_mutex_lock(&e->mu);
    hx *q = e->q_head;
    e->q_head = e->q_tail = NULL;
    *ctls = e->c_head;
    for (httpc_ctl *c = e->c_head; c; c = c->qnext) c->queued = false;
    e->c_head = e->c_tail = NULL;
    *stopping = e->stopping;
    pthread_mutex_unlock(&e->mu);
    return q;
}

/* Act on queued resume/cancel requests (engine thread) and drop the queue's references. With run
 * false (stopping) the references are only dropped: every exchange is being cancelled anyway. */
static void run_ctls(httpc *e, httpc_ctl *c, bool run)
{
    while (c) {
        httpc_ctl *next = c->qnext;
        c->qnext = NULL;
        hx *h = c->h;
        if (run && h) {
            if (atomic_load(&c->cancel))
                hx_finish(e, h, CURLE_OK, HTTPC_E_CANCELLED);
            else if (atomic_exchange(&c->resume, false))
                curl_easy_pause(h->easy, CURLPAUSE_CONT); /* may hand the held piece to on_body right away */
        }
        httpc_ctl_unref(c);
        c = next;
    }
}

httpc_ctl *httpc_ctl_new(void)
{
    httpc_ctl *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    atomic_init(&c->refs, 1);
    atomic_init(&c->cancel, false);
    atomic_init(&c->resume, false);
    return c;
}

void httpc_ctl_unref(httpc_ctl *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) free(c);
}

static void ctl_enqueue(httpc *e, httpc_ctl *c)
{
    pthread_mutex_lock(&e->mu);
    bool wake = false;
    if (!e->stopping && !c->queued) {
        wake = !e->q_head && !e->c_head; /* as in httpc_submit */
        c->queued = true;
        atomic_fetch_add(&c->refs, 1);
        if (e->c_tail)
            e->c_tail->qnext = c;
        else
            e->c_head = c;
        e->c_tail = c;
    }
    pthread_mutex_unlock(&e->mu);
    if (wake) curl_multi_wakeup(e->multi);
}

void httpc_ctl_resume(httpc *e, httpc_ctl *c)
{
    if (!e || !c) return;
    atomic_store(&c->resume, true);
    ctl_enqueue(e, c);
}

void httpc_ctl_cancel(httpc *e, httpc_ctl *c)
{
    if (!e || !c) return;
    atomic_store(&c->cancel, true);
    ctl_enqueue(e, c);
}

static void cancel_list(httpc *e, hx *q)
{
    while (q) {
        hx *next = q->next;
        hx_finish(e, q, CURLE_OK, HTTPC_E_CANCELLED);
        q = next;
    }
}

static void *engine_main(void *arg)
{
    httpc *e = arg;
    for (;;) {
        bool stopping;
        httpc_ctl *ctls;
        hx *q = take_queue(e, &ctls, &stopping);
        if (stopping) {
            run_ctls(e, ctls, false);
            cancel_list(e, q);
            break;
        }
        while (q) {
            hx *next = q->next;
            hx_start(e, q);
            q = next;
        }
        run_ctls(e, ctls, true);
        int running = 0;
        curl_multi_perform(e->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE) continue;
            char *priv = NULL;
            CURLcode cc = m->data.result;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            if (priv) hx_finish(e, (hx *)(void *)priv, cc, HTTPC_OK);
        }
        curl_multi_poll(e->multi, NULL, 0, HTTPC_POLL_MS, NULL);
    }
    /* Stopping: submit refuses new work, so the active list and the queue only shrink. */
    while (e->active.next != &e->active) hx_finish(e, e->active.next, CURLE_OK, HTTPC_E_CANCELLED);
    bool stopping;
    httpc_ctl *ctls;
    hx *q = take_queue(e, &ctls, &stopping);
    run_ctls(e, ctls, false);
    cancel_list(e, q);
    return NULL;
}

int httpc_start(unsigned max_host_connections, httpc **out, char *err, size_t errlen)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl initialisation failed");
        return -1;
    }
    httpc *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        goto fail_global;
    }
    unsigned maxh = max_host_connections ? max_host_connections : 64;
    e->active.next = e->active.prev = &e->active;
    atomic_init(&e->in_flight, 0);
    atomic_init(&e->connects, 0);
    if (pthread_mutex_init(&e->mu, NULL) != 0) {
        snprintf(err, errlen, "mutex init failed");
        goto fail_free;
    }
    e->multi = curl_multi_init();
    if (!e->multi) {
        snprintf(err, errlen, "curl_multi_init failed");
        goto fail_mutex;
    }
    /* The pool keeps enough idle connections for a few upstream hosts at the per-host bound. */
    if (curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)maxh) != CURLM_OK ||
        curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)maxh * 4) != CURLM_OK) {
        snprintf(err, errlen, "curl_multi_setopt failed");
        goto fail_multi;
    }
    int rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the engine thread: %s", strerror(rc));
        goto fail_multi;
    }
    *out = e;
    return 0;

fail_multi:
    curl_multi_cleanup(e->multi);
fail_mutex:
    pthread_mutex_destroy(&e->mu);
fail_free:
    free(e);
fail_global:
    curl_global_cleanup();
    return -1;
}

/* Append one caller header. curl drops "Name:" with an empty value; "Name;" is its way to send one. */
static int add_header(struct curl_slist **l, const char *line)
{
    const char *colon = strchr(line, ':');
    struct curl_slist *n;
    if (colon && colon > line) {
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        if (*v == '\0') {
            size_t nlen = (size_t)(colon - line);
            char *tmp = malloc(nlen + 2);
            if (!tmp) return -1;
            memcpy(tmp, line, nlen);
            tmp[nlen] = ';';
            tmp[nlen + 1] = '\0';
            n = curl_slist_append(*l, tmp);
            free(tmp);
            goto out;
        }
    }
    n = curl_slist_append(*l, line);
out:
    if (!n) return -1;
    *l = n;
    return 0;
}

/* Append a line as is ("Name:" alone tells curl to leave out a header it would add itself). */
static int add_raw(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n) return -1;
    *l = n;
    return 0;
}

static bool has_header(const httpc_req *req, const char *name)
{
    size_t nlen = strlen(name);
    for (int i = 0; i < HTTPC_MAX_HEADERS && req->headers[i]; i++)
        if (strncasecmp(req->headers[i], name, nlen) == 0 && req->headers[i][nlen] == ':') return true;
    return false;
}

/* Read a small fd body into h->small (the submitting thread does the pread, not the engine). A read
 * error or a short file is kept for the engine to report as HTTPC_E_BODY; -1 only on ENOMEM. */
static int read_small(hx *h)
{
    h->small = malloc(h->in_len ? h->in_len : 1);
    if (!h->small) return -1;
    uint64_t got = 0;
    while (got < h->in_len) {
        ssize_t r = pread(h->in_fd, h->small + got, (size_t)(h->in_len - got), (off_t)(h->in_off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { /* error, or the file is shorter than in_off + in_len */
            h->in_failed = true;
            h->io_errno = r < 0 ? errno : 0;
            return 0;
        }
        got += (uint64_t)r;
    }
    return 0;
}

int httpc_submit(httpc *e, const httpc_req *req)
{
    if (!e || !req || !req->url || !req->done) return -1;
    const char *method = req->method ? req->method : "GET";
    size_t mlen = strlen(method), ulen = strlen(req->url);
    if (mlen == 0 || mlen >= sizeof ((hx *)0)->method) return -1;
    for (size_t i = 0; i < mlen; i++)
        if (method[i] < 'A' || method[i] > 'Z') return -1;
    if (req->in == HTTPC_IN_MEMORY && !req->in_mem && req->in_len > 0) return -1;
    if (req->out == HTTPC_BODY_STREAM && (!req->on_head || !req->on_body)) return -1;

    hx *h = calloc(1, sizeof *h + ulen + 1);
    httpc_resp *r = calloc(1, sizeof *r);
    if (!h || !r) goto fail;
    memcpy(h->url, req->url, ulen + 1);
    memcpy(h->method, method, mlen + 1);
    bool bodyless_method = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    h->has_body = req->in != HTTPC_IN_NONE && !bodyless_method;
    h->in = h->has_body ? req->in : HTTPC_IN_NONE;
    h->in_mem = req->in_mem;
    h->in_fd = req->in_fd;
    h->in_off = req->in_off;
    h->in_len = h->has_body ? req->in_len : 0;
    h->out = req->out;
    h->out_fd = req->out_fd;
    h->on_head = req->on_head;
    h->on_body = req->on_body;
    h->once = req->once;
    h->connect_timeout_ms = req->connect_timeout_ms ? req->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_MS;
    h->timeout_ms = req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
    h->done = req->done;
    h->ud = req->ud;
    h->resp = r;
    r->body_crc_ok = req->out == HTTPC_BODY_FD;
    dbuf_init(&r->body, req->out == HTTPC_BODY_MEMORY ? (req->out_max ? req->out_max : HTTPC_DEFAULT_OUT_MAX) : 0);

    for (int i = 0; i < HTTPC_MAX_HEADERS && req->headers[i]; i++)
        if (add_header(&h->hdrs, req->headers[i]) != 0) goto fail;
    if (h->in == HTTPC_IN_FD && h->in_len <= HTTPC_SMALL_BODY && read_small(h) != 0) goto fail;
    bool inline_body = h->small || (h->in == HTTPC_IN_MEMORY && h->in_len <= HTTPC_SMALL_BODY);
    if (h->has_body && inline_body && !has_header(req, "Content-Type") && add_raw(&h->hdrs, "Content-Type:") != 0)
        goto fail;
    /* Bodies always go with Content-Length; never wait for a 100 Continue. */
    if (add_raw(&h->hdrs, "Expect:") != 0 || add_raw(&h->hdrs, "Transfer-Encoding:") != 0) goto fail;
    /* Only the caller's headers go out: drop curl's default "Accept". */
    if (!has_header(req, "Accept") && add_raw(&h->hdrs, "Accept:") != 0) goto fail;
    if (!h->has_body && !bodyless_method && add_raw(&h->hdrs, "Content-Length: 0") != 0) goto fail;

    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        goto fail;
    }
    /* Wake the engine only when the queues were empty: whoever filled them woke it, and it takes
     * both queues whole at its next turn (the wake-up stays pending until its next poll). */
    bool wake = !e->q_head && !e->c_head;
    if (e->q_tail)
        e->q_tail->next = h;
    else
        e->q_head = h;
    e->q_tail = h;
    atomic_fetch_add(&e->in_flight, 1);
    if (req->out == HTTPC_BODY_STREAM && req->ctl) {
        h->ctl = req->ctl;
        atomic_fetch_add(&h->ctl->refs, 1);
    }
    pthread_mutex_unlock(&e->mu);
    if (wake) curl_multi_wakeup(e->multi);
    return 0;

fail:
    if (h) {
        curl_slist_free_all(h->hdrs);
        free(h->small);
    }
    free(h);
    if (r) dbuf_free(&r->body);
    free(r);
    return -1;
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    httpc_resp *resp;
} waiter;

static void waiter_done(void *ud, httpc_resp *resp)
{
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->resp = resp;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int httpc_do(httpc *e, const httpc_req *req, httpc_resp *resp)
{
    if (!e || !req || pthread_equal(pthread_self(), e->thread)) return -1;
    waiter w = {.resp = NULL};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    httpc_req r = *req;
    r.done = waiter_done;
    r.ud = &w;
    int rc = httpc_submit(e, &r);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.resp) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        *resp = *w.resp;
        free(w.resp);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

unsigned httpc_in_flight(httpc *e) { return atomic_load(&e->in_flight); }

void httpc_set_name(httpc *e, const char *name)
{
    char n[16]; /* the kernel keeps 15 characters */
    snprintf(n, sizeof n, "%s", name);
    (void)pthread_setname_np(e->thread, n);
}

uint64_t httpc_connections_opened(httpc *e) { return (uint64_t)atomic_load(&e->connects); }

void httpc_stop(httpc *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_mutex_unlock(&e->mu);
    curl_multi_wakeup(e->multi);
    pthread_join(e->thread, NULL);
    for (int i = 0; i < e->nfree; i++) curl_easy_cleanup(e->free_easy[i]);
    for (int i = 0; i < atomic_load(&e->ntls); i++) tls_rule_free(&e->tls[i]);
    curl_multi_cleanup(e->multi);
    pthread_mutex_destroy(&e->mu);
    free(e);
    curl_global_cleanup();
}
