/*
 * gen1client: requests to the Gen1 / WebHDFS upstream on top of httpc, in either dialect:
 *  - adls: one request; CREATE/APPEND/OPEN carry the one-step flag (write=true / append=true /
 *    read=true) so the service does not redirect;
 *  - hadoop: CREATE/APPEND/OPEN are two-step: the request without body goes to the namenode, its 307
 *    Location (the datanode) is rewritten through the configured host map, and the body is sent there.
 * A writer's request (gen1c_send) carries the writer's identity unchanged: its Authorization header
 * and its user.name / doas / delegation parameters. The proxy's own requests (gen1c_get) carry the
 * proxy's identity (gen1auth) when one is configured, else the identity the caller passes. Body-less
 * requests carry Content-Length: 0.
 *
 * The upstream target is rebuilt from the parsed request: the path re-encoded from whreq's normalised
 * path (so "%2F", "//" and odd encodings never reach Gen1 in a form it could read differently), the
 * query taken from the writer's raw query with the one-step flags and `noredirect` removed (the
 * dialect decides them). whreq has already refused control characters, so nothing can be injected.
 */
#ifndef DP_GEN1CLIENT_H
#define DP_GEN1CLIENT_H

#include <stdint.h>

#include "cfg.h"
#include "gen1auth.h"
#include "httpc.h"
#include "whreq.h"

typedef struct gen1c gen1c;

/** Create a client for cfg's gen1.* settings. Returns 0 or -1 with a message. An empty gen1.endpoint (allowed
 *  in phase gen2-only only) makes a client whose every call fails at once (-1, done not called). */
int gen1c_new(const dp_config *cfg, httpc *http, gen1c **out, char *err, size_t errlen);
void gen1c_free(gen1c *c);

typedef struct gen1c_call {
    const whreq *req;             /* parsed writer request (op, path, params) */
    const char *raw_query;        /* the writer's raw query string (without '?') */
    const char *authorization;    /* writer's Authorization header or NULL */
    const char *content_type;     /* writer's Content-Type or NULL (MSCONCAT sends JSON) */
    const char *client_request_id;/* x-ms-client-request-id: the request id (rid.h), or NULL */
    httpc_body_in in;             /* request body: NONE, MEMORY or FD range */
    const void *in_mem;
    int in_fd;
    uint64_t in_off, in_len;
    httpc_body_out out;           /* response body: MEMORY, FD, or STREAM (reads relayed as they arrive) */
    size_t out_max;
    int out_fd;
    /* HTTPC_BODY_STREAM (see httpc_req): the final answer's head and body; in the hadoop dialect the
     * namenode's 307 is followed here and never reaches them. ctl serves both steps. */
    void (*on_head)(void *ud, const httpc_resp *resp);
    size_t (*on_body)(void *ud, const char *p, size_t n);
    httpc_ctl *ctl;
    /* Final answer of Gen1 (after the datanode step in the hadoop dialect); runs on the httpc thread;
     * callee owns resp (httpc_resp_free + free). */
    void (*done)(void *ud, httpc_resp *resp);
    void *ud;
} gen1c_call;

/**
 * Send a writer's request to Gen1. Returns 0 (done will be called) or -1 (it will not). A write
 * (info->is_write) goes at most once at each step (httpc_req.once): when its connection dies after the
 * request went out, done gets a failure with resp->sent set (Gen1 may have applied it), never a resend.
 */
int gen1c_send(gen1c *c, const gen1c_call *call);
/** The httpc engine c sends through (for httpc_ctl_resume / httpc_ctl_cancel on a streamed call). */
httpc *gen1c_http(const gen1c *c);

/**
 * Give the proxy's own identity to gen1c_get (NULL or mode none: none; ident must outlive c). Call
 * before the first request.
 */
void gen1c_set_identity(gen1c *c, g1a *ident);

/**
 * A request the proxy itself makes to Gen1 on the applier's behalf (GETFILESTATUS, GETACLSTATUS, OPEN
 * for re-copies, LISTSTATUS). With an identity set (gen1c_set_identity) it carries the proxy's
 * identity: authorization is ignored and user.name / doas / delegation pieces of op_and_params are
 * replaced by the proxy's; when no credential can be had (token service down, token file unreadable)
 * done gets result HTTPC_E_AUTH with the reason and nothing is sent; a 401 under client_credentials
 * is retried once with a newer token. Without one, it uses the identity given (the writer's
 * Authorization of the write being mirrored, or none). op_and_params: e.g. "op=GETFILESTATUS" (already encoded). path: decoded,
 * normalised. Response to memory or fd as in gen1c_call.
 */
int gen1c_get(gen1c *c, const char *path, const char *op_and_params, const char *authorization,
              httpc_body_out out, size_t out_max, int out_fd, void (*done)(void *ud, httpc_resp *resp), void *ud);

/** A request the proxy makes on its own account with any method and body (the mirror's replays of
 *  writes onto Gen1, proxy/mirror.c): gen1c_get's identity rules, the URL built as for a writer's
 *  request (prefix, the path re-encoded, op_and_params with the one-step flags and noredirect dropped,
 *  the dialect's flag added; hadoop CREATE/APPEND/OPEN in two steps). */
typedef struct gen1c_own_call {
    const char *method;           /* "GET" when NULL */
    whreq_prefix prefix;          /* /webhdfs/v1 or /WebHdfsExt (CONCURRENTAPPEND, SETEXPIRY) */
    const char *path;             /* decoded, normalised */
    const char *op_and_params;    /* "op=APPEND&offset=3" (encoded) */
    const char *authorization;    /* used only without an identity of the proxy's own, or NULL */
    const char *content_type;     /* or NULL */
    const char *client_request_id;/* or NULL */
    httpc_body_in in;
    const void *in_mem;
    int in_fd;
    uint64_t in_off, in_len;
    httpc_body_out out;
    size_t out_max;
    int out_fd;
    bool once;                    /* each step at most once (httpc_req.once): for writes */
    void (*done)(void *ud, httpc_resp *resp); /* as gen1c_get */
    void *ud;
} gen1c_own_call;
/** Send call. Returns 0 (done will be called once) or -1 (it will not). */
int gen1c_own(gen1c *c, const gen1c_own_call *call);

#endif
