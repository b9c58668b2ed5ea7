/*
 * g2serve: the WebHDFS (Gen1) API served on Gen2 alone (phase gen2-only). It takes a parsed WebHDFS
 * request (whreq) with its spooled body and answers it from Gen2 exactly as a Gen1/WebHDFS server would:
 * FileStatus/FileStatuses/ContentSummary/AclStatus JSON, {"boolean":..} results, offsets and
 * BadOffsetException, overwrite rules, RemoteException names and statuses mapped from Gen2's error codes
 * (g2answer.h). What each op does on Gen2 and where it differs from Gen1 is in README.md ("gen2-only:
 * the Gen1 API on Gen2").
 *
 * Requests run on a pool of gen2_only.workers threads, each one straight-line code over synchronous
 * Gen2 exchanges (httpc_sync); more requests wait in a queue (the front keeps their connections
 * suspended, no thread held). Data writes (CREATE, APPEND, CONCURRENTAPPEND, CONCAT, MSCONCAT) of one
 * path are serialised in the proxy, so racing appenders never interleave their offset check, append and
 * flush. An OPEN answers once Gen2's HEAD said what there is to read; the bytes then stream from a
 * ranged GET through the caller's hooks (never held whole).
 *
 * The answer goes to a callback (status, content type, body, Retry-After), so that a later gen2-primary
 * phase can journal what Gen2 answered before relaying it. Thread-safe.
 */
#ifndef DP_G2SERVE_H
#define DP_G2SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "gen2client.h"
#include "httpc.h"
#include "metrics.h"
#include "whreq.h"

typedef struct g2s g2s;

/** A WebHDFS answer. Strings live until the callback returns. */
typedef struct g2s_answer {
    int status;
    const char *content_type;   /* NULL: no body */
    const char *body;
    size_t len;
    int retry_after_s;          /* > 0: Retry-After */
    const char *exception;      /* for logs: the RemoteException's name, NULL on success */
    /* OPEN: the body follows through the request's stream hooks, length bytes (then on_end). */
    bool stream;
    uint64_t length;
    /* What a journal needs to know (phase gen2-primary: the write is mirrored to Gen1 afterwards):
     * changed: a request that modifies Gen2 (any method but GET/HEAD) succeeded, or went out and its
     *          answer was lost, while serving this one: Gen2 may hold a change even when the answer is an
     *          error;
     * lost:    the last such request went out and got no answer (timeout, reset): whether it landed is
     *          unknown;
     * offset:  APPEND/CONCURRENTAPPEND: the file's length on Gen2 before this append, i.e. where its
     *          bytes landed; -1 when not known (another op, or refused before the append);
     * mtime_ms: a CREATE served with want_mtime: the new file's modification time on Gen2 (what
     *          GETFILESTATUS shows), -1 when not known. */
    bool changed;
    bool lost;
    int64_t offset;
    int64_t mtime_ms;
} g2s_answer;

/** Where OPEN's bytes go after an answer with stream set (all on the httpc engine thread). */
typedef struct g2s_stream {
    size_t (*on_body)(void *ud, const char *p, size_t n); /* n taken, or HTTPC_PAUSE */
    void (*on_end)(void *ud, bool complete);               /* once, after the last on_body */
    httpc_ctl *ctl;                                        /* pauses/cancels the transfer (referenced) */
    void *ud;
} g2s_stream;

typedef struct g2s_request {
    const whreq *wr;            /* must stay valid until answer (and, for a stream, on_end) ran */
    const char *rid;            /* x-ms-client-request-id sent on every Gen2 request */
    int body_fd;                /* the spooled body (CREATE, APPEND, CONCURRENTAPPEND, MSCONCAT), or -1 */
    uint64_t body_off, body_len;
    const g2s_stream *stream;   /* OPEN: required */
    bool want_mtime;            /* CREATE: read the new file's modification time back (one HEAD) for the answer */
    void (*answer)(void *ud, const g2s_answer *a); /* exactly once, on a worker or the httpc thread */
    void *ud;
} g2s_request;

/**
 * Start the workers. g2 and http (the engine g2 sends on) must outlive the server; cfg gives
 * gen2_only.workers, gen2_only.list_max_entries, gen2.identity_map and gen2.unmapped_identity.
 * Returns 0 or -1 with err.
 */
int g2s_new(const dp_config *cfg, gen2c *g2, httpc *http, metrics *m, g2s **out, char *err, size_t errlen);
/** The engine Gen2 requests go through (to pause/resume a stream's ctl). */
httpc *g2s_http(g2s *s);
/**
 * Serve one request (queued for a worker; rq is copied, not what it points to). Returns 0 (answer will
 * run once), or -1 when the server is stopping (answer will not run).
 */
int g2s_serve(g2s *s, const g2s_request *rq);
/** Stop taking requests, let the workers finish what they hold and join them. Call while httpc runs. */
void g2s_stop(g2s *s);
void g2s_free(g2s *s);

#endif
