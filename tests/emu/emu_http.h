/*
 * emu_http: the HTTP glue of dualpipe-emu. It runs libmicrohttpd (a thread per connection, so service
 * code may block: latency injection, waiting for a busy file), hands each request to a service
 * (Gen1 or Gen2) through the emu_service callbacks, enforces the header/body limits, applies fault
 * injection (emu_fault), and can take the listener down and bring it back on the same port.
 *
 * Request life cycle, all on the connection's thread:
 *   begin(r)          headers complete, no body read yet. May answer (emu_resp_*) right away.
 *   body(r, data, n)  zero or more times, only if begin did not answer; may answer (the rest of the
 *                     body is then read and dropped before the answer is sent).
 *   end(r)            the whole body was received; must answer if nothing has been answered yet.
 *   done(r, ok)       always last (also when the client went away): free per-request state.
 * A service that never answers gets a 500 from the glue.
 */
#ifndef DP_EMU_HTTP_H
#define DP_EMU_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"

typedef struct emu_req emu_req;
typedef struct emu_http emu_http;
struct emu_fault;

typedef struct emu_service {
    void *ctx;
    void (*begin)(void *ctx, emu_req *r);
    void (*body)(void *ctx, emu_req *r, const char *data, size_t n);
    void (*end)(void *ctx, emu_req *r);
    void (*done)(void *ctx, emu_req *r, bool completed);
    /* Render an injected fault (status, optional Retry-After seconds, optional error code: NULL
     * for the service's default) in the service's own error format (RemoteException JSON for Gen1,
     * {"error":{...}} + x-ms-error-code for Gen2). */
    void (*fault)(void *ctx, emu_req *r, int status, int retry_after_s, const char *code);
} emu_service;

/* ---- request accessors (valid from begin to done) ---- */
const char *emu_req_method(const emu_req *r);
/** Request target exactly as received: raw path + optional "?query". */
const char *emu_req_target(const emu_req *r);
/** Raw path (no query), as received, not decoded. */
const char *emu_req_path(const emu_req *r);
/** Raw query string without '?', or "" when there is none. */
const char *emu_req_query(const emu_req *r);
/** Header value (case-insensitive name) or NULL. */
const char *emu_req_header(const emu_req *r, const char *name);
/** Call fn for every request header. */
void emu_req_each_header(const emu_req *r, void (*fn)(void *fnctx, const char *name, const char *value),
                         void *fnctx);
/** Declared body length (Content-Length), -1 if chunked or absent. */
int64_t emu_req_content_length(const emu_req *r);
/** True when the request carries (or announces) a body: Content-Length > 0 or chunked. */
bool emu_req_has_body(const emu_req *r);
/** Bytes of body received so far. */
uint64_t emu_req_body_bytes(const emu_req *r);
/** "http://127.0.0.1:PORT" of the listener this request arrived on (for absolute Locations). */
const char *emu_req_base_url(const emu_req *r);
/** Per-request service state slot. */
void *emu_req_get_data(const emu_req *r);
void emu_req_set_data(emu_req *r, void *data);
/** Maximum body size configured (--max-body); services reject larger declared bodies early. */
uint64_t emu_req_max_body(const emu_req *r);

/** Bump the counter "METHOD label" (GET /counters) for this request; no fault rule acts on it. */
void emu_req_count(emu_req *r, const char *label);
/**
 * Fault injection and per-op counters. The service calls this once per request, in begin, with the
 * op label it identified ("CREATE", "append", "flush", ...). It counts the request, sleeps for any
 * latency rule that matches, and returns:
 *   0  proceed normally (also for a GET a reset rule with after_bytes matched: the service answers as
 *      usual and the glue resets the connection after that many bytes of the answer's body, a JSON
 *      answer or file data alike, as when a server crashes mid-answer);
 *   1  a fail rule matched: the glue has already answered through service->fault();
 *  -1  a reset rule matched: the glue drops the connection (now, or after some body bytes);
 *      the service must not answer.
 */
int emu_req_fault(emu_req *r, const char *op);
/** Count the request under identity ident (who sent it) and op, for /counters' "identities". */
void emu_req_count_identity(emu_req *r, const char *ident, const char *op);

/* ---- answering ---- */
/** Add a response header (copied). Call before emu_resp_*; allowed several times. */
void emu_resp_header(emu_req *r, const char *name, const char *value);
/** Answer with a copy of data. content_type may be NULL. */
void emu_resp_buf(emu_req *r, int status, const char *content_type, const void *data, size_t len);
/** Answer with JSON text (copied), Content-Type application/json. */
void emu_resp_json(emu_req *r, int status, const char *json);
/** Answer with no body (Content-Length: 0). */
void emu_resp_empty(emu_req *r, int status);
/** Answer with len bytes of fd from offset; the glue takes ownership of fd (closes it). */
void emu_resp_fd(emu_req *r, int status, const char *content_type, int fd, uint64_t offset, uint64_t len);
/** For HEAD: answer with headers only but announce Content-Length: len. */
void emu_resp_head(emu_req *r, int status, uint64_t len);
/** True once an answer has been given. */
bool emu_req_answered(const emu_req *r);

/* ---- server ---- */
typedef struct emu_http_opts {
    const char *host;           /* must be a loopback address */
    int port;                   /* 0 = pick a free port */
    uint64_t max_body;          /* bytes per request body */
    size_t max_header;          /* bytes of request headers (MHD memory limit) */
    unsigned max_connections;
    unsigned idle_timeout_s;
    const char *tls_cert_pem;   /* with tls_key_pem: serve HTTPS with this PEM chain and key (must outlive
                                   the listener); NULL = plain HTTP */
    const char *tls_key_pem;
} emu_http_opts;

/** Start listening. Returns 0 and *out, or -1 with a message in err. */
int emu_http_start(const emu_http_opts *o, const emu_service *svc, struct emu_fault *faults, emu_http **out,
                   char *err, size_t errlen);
int emu_http_port(const emu_http *h);
/** Stop accepting (connections refused) for ms milliseconds (0 = until emu_http_up). */
int emu_http_down(emu_http *h, unsigned ms);
int emu_http_up(emu_http *h);
void emu_http_stop(emu_http *h);

#endif
