/*
 * httpc: the asynchronous HTTP client engine for upstream calls (Gen1 and Gen2). One thread runs a
 * libcurl multi handle; any thread submits requests; completion callbacks run on the engine thread
 * and must not block (they may submit follow-up requests). Connections are kept alive and reused per
 * host (libcurl's pool). Every response is read to its end so connections stay reusable.
 *
 * Request bodies come from memory (not copied: must stay valid until the callback) or from a file
 * descriptor range (pread, so one spool file can feed several requests at once; a range of 32 KiB or
 * less is read by httpc_submit on the caller's thread and sent together with the headers). Response bodies go to
 * memory (bounded: over the limit the request fails with HTTPC_E_TOO_BIG), are appended to a file
 * descriptor, are discarded, or are streamed to the caller (HTTPC_BODY_STREAM: headers as soon as they are
 * complete, then the body piece by piece, with pause/resume and cancel through an httpc_ctl).
 *
 * Only the caller's headers go out (plus Host and Content-Length): libcurl's default "Accept" is
 * dropped unless the caller gives one, "Expect" and "Transfer-Encoding" are never sent (bodies always
 * carry Content-Length). HTTP/1.1 only. libcurl's redirect following is off: callers handle 307s
 * (the Gen1 hadoop dialect does). The process should ignore SIGPIPE (libcurl runs with NOSIGNAL).
 * Logs nothing.
 */
#ifndef DP_HTTPC_H
#define DP_HTTPC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"

#define HTTPC_MAX_HEADERS 48

typedef struct httpc httpc;

typedef enum httpc_result {
    HTTPC_OK = 0,          /* an HTTP answer arrived (any status) */
    HTTPC_E_CONNECT,       /* could not connect (refused, DNS, ...) */
    HTTPC_E_TIMEOUT,       /* connect or total timeout */
    HTTPC_E_TRANSPORT,     /* connection broke mid-exchange, bad HTTP, ... */
    HTTPC_E_TOO_BIG,       /* response body over the memory limit */
    HTTPC_E_BODY,          /* reading the request body (fd) or writing the response body (fd) failed */
    HTTPC_E_CANCELLED,     /* engine shut down before completion */
    HTTPC_E_NOMEM,
    HTTPC_E_AUTH           /* no request was sent: no credential could be had (gen2client: token fetch failed) */
} httpc_result;

const char *httpc_result_str(httpc_result r);

typedef struct httpc_header {
    char *name;
    char *value;
} httpc_header;

typedef struct httpc_resp {
    httpc_result result;
    long status;                         /* HTTP status, 0 unless result == HTTPC_OK */
    bool unresolved;                     /* HTTPC_E_CONNECT because the host name did not resolve */
    char error[256];                     /* libcurl's message on failure (no secrets: URLs are not included) */
    httpc_header headers[HTTPC_MAX_HEADERS]; /* response headers of the final response, in order */
    int nheaders;
    dbuf body;                           /* HTTPC_BODY_MEMORY (body.data is never NULL on HTTPC_OK) */
    uint64_t body_bytes;                 /* bytes received (all modes) */
    uint32_t body_crc;                   /* when body_crc_ok: CRC-32C (crc32c.h) of the body_bytes bytes
                                            written to out_fd, computed as they were written */
    bool body_crc_ok;                    /* set for HTTPC_BODY_FD (only): body_crc holds for every byte
                                            written when result is HTTPC_OK */
    double total_s;                      /* wall time of the exchange */
    bool sent;                           /* the request went out on a connection (it may have reached the
                                            upstream): false for HTTPC_E_CONNECT and anything that ended
                                            before a connection was ready */
} httpc_resp;

/** Value of response header name (case-insensitive), or NULL. */
const char *httpc_resp_header(const httpc_resp *r, const char *name);
/** Free what a response holds (headers, body). */
void httpc_resp_free(httpc_resp *r);

/**
 * Waiting for one exchange from a thread that is not the engine's (the command-line tools): init, pass
 * httpc_sync_done with &s as the request's done/ud, then httpc_sync_wait, which returns the answer
 * (the caller frees it as any done callback would). If the request could not be submitted, call
 * httpc_sync_drop instead of waiting.
 */
typedef struct httpc_sync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    httpc_resp *resp;
} httpc_sync;
void httpc_sync_init(httpc_sync *s);
void httpc_sync_done(void *ud, httpc_resp *resp);
httpc_resp *httpc_sync_wait(httpc_sync *s);
void httpc_sync_drop(httpc_sync *s);

typedef enum httpc_body_in { HTTPC_IN_NONE = 0, HTTPC_IN_MEMORY, HTTPC_IN_FD } httpc_body_in;
typedef enum httpc_body_out {
    HTTPC_BODY_MEMORY = 0,
    HTTPC_BODY_FD,
    HTTPC_BODY_DISCARD,
    HTTPC_BODY_STREAM                    /* to on_head / on_body as it arrives (see httpc_req) */
} httpc_body_out;

/* on_body's answer when it cannot take the piece now: the transfer pauses (nothing more is read from
 * the connection) and the same piece is offered again after httpc_ctl_resume. */
#define HTTPC_PAUSE ((size_t)-1)

/* Control of a streamed exchange from other threads: resume after a pause, or cancel. One ctl may serve
 * several exchanges one after the other (a two-step request); it is reference counted because the
 * engine and the caller let go of it at different times. */
typedef struct httpc_ctl httpc_ctl;
/** A new ctl with one reference (the caller's), or NULL when memory ran out. */
httpc_ctl *httpc_ctl_new(void);
/** Drop a reference (any thread); the last one frees it. */
void httpc_ctl_unref(httpc_ctl *c);
/** Ask the engine to resume the paused exchange of c (any thread; on the engine thread, where
 *  curl_easy_pause must run, at its next turn). Harmless when it is not paused or already ended. */
void httpc_ctl_resume(httpc *e, httpc_ctl *c);
/** Cancel c's exchange, the current one and any later one submitted with c: it ends with
 *  HTTPC_E_CANCELLED (done runs as usual). Any thread. */
void httpc_ctl_cancel(httpc *e, httpc_ctl *c);

typedef struct httpc_req {
    const char *method;                  /* "GET", "PUT", "POST", "PATCH", "DELETE", "HEAD" */
    const char *url;                     /* absolute; copied at submit */
    const char *headers[HTTPC_MAX_HEADERS]; /* "Name: value" lines, copied at submit; NULL-terminated
                                            if fewer. "Name:" with nothing after sends an empty value. */
    httpc_body_in in;
    const void *in_mem;                  /* HTTPC_IN_MEMORY: not copied */
    int in_fd;                           /* HTTPC_IN_FD: pread from in_off, in_len bytes */
    uint64_t in_off, in_len;             /* in_len is also the length for HTTPC_IN_MEMORY (in_off unused
                                            there: the body is in_mem[0..in_len)). A body given with GET
                                            or HEAD is ignored. */
    httpc_body_out out;
    size_t out_max;                      /* HTTPC_BODY_MEMORY limit (default 1 MiB when 0) */
    int out_fd;                          /* HTTPC_BODY_FD: bytes appended with write() (their CRC-32C in
                                            resp->body_crc, so they need not be read back for one) */
    unsigned connect_timeout_ms;         /* 0 = 5000 */
    unsigned timeout_ms;                 /* whole exchange; 0 = 60000. HTTPC_BODY_STREAM: the longest
                                            silence instead (no byte while not paused), since a stream
                                            lasts as long as its reader takes */
    /* HTTPC_BODY_STREAM, both on the engine thread. on_head runs once, when the final answer's headers
     * are complete (resp: status and headers; body empty), before any on_body. on_body gets each piece
     * of the body and returns n (taken) or HTTPC_PAUSE; it must not block. */
    void (*on_head)(void *ud, const httpc_resp *resp);
    size_t (*on_body)(void *ud, const char *p, size_t n);
    httpc_ctl *ctl;                      /* optional (HTTPC_BODY_STREAM): referenced while the exchange runs */
    bool once;                           /* send at most once: libcurl retries a request whose reused
                                            keep-alive connection died before any answer byte, on a fresh
                                            connection (rewinding the body). With once that second send is
                                            refused: the exchange ends HTTPC_E_TRANSPORT with sent set (the
                                            first send may have been applied). For writes to a primary. */
    /* Called once, on the engine thread, when the exchange ends. The callee owns resp (free it with
     * httpc_resp_free, then free(resp)). */
    void (*done)(void *ud, httpc_resp *resp);
    void *ud;
} httpc_req;

/** Start the engine thread. Returns 0 or -1 (with a message in err). max_host_connections bounds
 *  connections per upstream host (0 = 64). */
int httpc_start(unsigned max_host_connections, httpc **out, char *err, size_t errlen);
/* TLS toward one upstream host (libcurl's options). Verification of the peer's chain and name is on
 * unless insecure_skip_verify. Strings "" or NULL = not set; ca_file replaces the system bundle. */
typedef struct httpc_tls {
    const char *ca_file;   /* CURLOPT_CAINFO */
    const char *ca_path;   /* CURLOPT_CAPATH */
    const char *cert_file; /* CURLOPT_SSLCERT (PEM), with key_file */
    const char *key_file;  /* CURLOPT_SSLKEY (PEM) */
    bool insecure_skip_verify;
} httpc_tls;

#define HTTPC_MAX_TLS_RULES 16

/** TLS settings for requests whose URL names host (case-insensitive) and port (0 = any port); host NULL
 *  makes them the default for every other URL (without a default, libcurl's: system CAs, verified).
 *  Rules are matched in the order added, the first wins. Strings are copied. Call before the requests
 *  it should apply to are submitted (thread-safe). 0, or -1 when HTTPC_MAX_TLS_RULES are set or memory
 *  ran out. A TLS handshake that fails (untrusted or expired certificate, wrong name) ends the exchange
 *  with HTTPC_E_CONNECT (nothing was sent) and libcurl's reason in resp->error. */
int httpc_set_tls(httpc *e, const char *host, int port, const httpc_tls *tls);
/** The TLS rule (its index among those added, in order) a request to url would use, or -1 when none
 *  does: url's host (an IPv6 literal without its brackets) and port (the scheme's default when the URL
 *  names none) as libcurl's URL parser reads them, matched as httpc_set_tls says. -1 too for a URL that
 *  parser refuses. */
int httpc_tls_rule_for(httpc *e, const char *url);
/** Submit a request (thread-safe, any thread incl. the engine's). Copies url and headers. Returns 0,
 *  or -1 when the engine is stopping, the request is malformed (no url or done, method not an upper-case
 *  token) or memory ran out (done is then not called). A body-less PUT/POST/PATCH/DELETE is sent
 *  with "Content-Length: 0" (Gen1 requires it); "Expect:" is never sent. */
int httpc_submit(httpc *e, const httpc_req *req);
/** Blocking convenience for threads other than the engine's: submit and wait. Fills *resp (caller
 *  frees with httpc_resp_free). Returns 0, or -1 if it could not be submitted (or when called on the
 *  engine thread, where it would deadlock). req->done and req->ud are ignored. */
int httpc_do(httpc *e, const httpc_req *req, httpc_resp *resp);
/** Requests submitted and not finished. */
unsigned httpc_in_flight(httpc *e);

/* Name the engine's thread (ps -L, perf, /proc/PID/task/N/comm); at most 15 characters are kept. */
void httpc_set_name(httpc *e, const char *name);
/** New connections opened so far (sum of CURLINFO_NUM_CONNECTS): low when keep-alive works. */
uint64_t httpc_connections_opened(httpc *e);
/** Stop: pending requests complete with HTTPC_E_CANCELLED (their done runs on the engine thread, and
 *  a submit from there fails), the thread is joined, e is freed. Not to be called from a callback. */
void httpc_stop(httpc *e);

#endif
