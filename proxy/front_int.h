/*
 * front_int: what the front end's two files share — the front and per-request structures, the
 * request state machine and the internal helpers (front__ prefix). front.c holds the libmicrohttpd
 * glue, request intake and local answers; front_up.c the journal and Gen1 exchange (through the
 * pipeline) and the relay of Gen1's answer. Not for use outside proxy/front*.c.
 */
#ifndef DP_FRONT_INT_H
#define DP_FRONT_INT_H

#include <microhttpd.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "front.h"
#include "front_tls.h"
#include "g2serve.h"
#include "pipeline.h"
#include "rdbuf.h"
#include "rid.h"
#include "spool.h"
#include "whreq.h"

#define FRONT_RETRY_AFTER_S 5          /* Retry-After on a 503 the proxy makes itself */
#define FRONT_DRAIN_MAX (1u << 20)     /* refused bodies up to this are read and dropped (keep-alive) */
#define FRONT_JSON_MAX (8u << 20)      /* Gen1's answer to a write, kept in memory (reads stream instead) */
#define FRONT_NCLASS 6                 /* status classes: 0 = no answer sent, 1..5 = 1xx..5xx */

typedef enum fr_state {
    FR_RECEIVING = 0,  /* headers in, body arriving into the spool */
    FR_SPOOLED,        /* whole body received */
    FR_UPSTREAM,       /* suspended: waiting for the journal, Gen1 and (ack "both") Gen2's first attempt */
    FR_ANSWERING,      /* an answer is prepared or queued */
    FR_DONE,           /* finished; state about to be freed */
    FR__COUNT
} fr_state;

/* A read answer on its way from Gen1 to the reader (front_up.c). */
typedef struct fr_stream fr_stream;
typedef struct fr_req fr_req;

/*
 * One client connection (MHD's socket context, from its "started" to its "closed" notification), on the
 * front's list for the reaper thread (front_conn.c). deadline_ms bounds the time to receive the current
 * request: set when the connection opens and when a request ends (the next one may start), cleared once
 * the request is fully received. Past it the reaper answers 408 (400 for a request MHD could not parse,
 * see refuse) where no answer has started, and shuts the socket down, so MHD drops the connection.
 */
typedef struct fr_conn {
    struct fr_conn *prev, *next;  /* f->conns, under f->conn_mu */
    int fd;
    bool tls;                     /* a TLS connection: the reaper never writes on it (plain bytes would break
                                     the TLS stream), it only shuts it down */
    fr_req *req;                  /* the request MHD holds (uri_log_cb .. completed_cb), freed with the
                                     connection when MHD drops it without completing it */
    /* under f->conn_mu */
    int64_t deadline_ms;          /* monotonic; 0 = none (received, answering or waiting for Gen1) */
    bool reaped;                  /* the reaper shut the socket down: no answer may follow */
    bool handled;                 /* the access handler has seen the current request */
    bool refuse_params;           /* more query parameters than a request may have (answered 400) */
} fr_conn;

struct front {
    const dp_config *cfg;
    gen1c *g1;
    metrics *m;
    struct MHD_Daemon *d;
    front_tls *tls;                    /* HTTPS (tls.*), NULL for plain HTTP */
    int port;
    atomic_bool stopping;
    int quiesced_fd; /* listen socket MHD_quiesce_daemon handed back: shut down at once, closed after MHD_stop_daemon */
    atomic_uint_fast64_t next_id;      /* request ids for logs */
    _Atomic uint64_t max_body_bytes;   /* limits.max_body_bytes (SIGHUP changes it: front_reload) */
    pipeline *p;                       /* the journal and the applier behind it */
    g2s *g2s;                          /* phase gen2-only: every WebHDFS request is served on Gen2 (front_g2.c) */
    pthread_mutex_t mu;                /* front_stop waits on cond under it */
    pthread_cond_t cond;               /* signalled when upstream_calls drops to 0 once stopping is set */
    atomic_uint upstream_calls;        /* suspended requests: waiting for the journal, Gen1 or the ack. Raised
                                          before stopping is read, lowered before it is read (seq_cst both
                                          sides, as front_stop sets stopping before it reads the count): no
                                          lock per request, and front_stop never misses the last one */
    /* the phase requests run in, and the phase switch's hold and fence (front_phase.c) */
    _Atomic int phase;                 /* cfg_phase a request is dispatched in */
    pthread_mutex_t ph_mu;             /* guards everything below (taken before mu, never after) */
    pthread_cond_t ph_cond;            /* signalled when admitting drops to 0 */
    bool hold;                         /* new writes wait in held */
    unsigned admitting;                /* writes past the hold check, not yet journaled (or sent) */
    fr_req *held_head, *held_tail;     /* held writes, suspended, oldest first */
    unsigned nheld;
    char fence[320];                   /* non-empty: new writes are refused with 503 and this reason */
    metrics_gauge *mx_held;
    metrics_histogram *mx_hold_wait;
    metrics_counter *mx_fenced;
    /* metrics */
    _Atomic(metrics_counter *) req_ctr[WH_OP__COUNT][FRONT_NCLASS];
    metrics_counter *bytes_in, *bytes_out, *applied_submits, *skipped_false;
    metrics_counter *up_fail[HTTPC_E_AUTH + 1]; /* by httpc_result */
    metrics_histogram *up_latency;
    metrics_gauge *connections, *waiting, *spool_bytes, *streaming, *read_buf_bytes;
    rdbuf_pool rdpool;                 /* every read's relay buffer (front_up.c, rdbuf.h) */
    metrics_counter *conn_refused, *req_timeouts, *framing_refused;
    /* connections (front_conn.c) */
    pthread_mutex_t conn_mu;           /* guards conns and every fr_conn's deadline and flags */
    pthread_cond_t conn_cond;          /* wakes the reaper to stop */
    fr_conn *conns;                    /* open connections */
    atomic_uint nconns;                /* their number (limits.max_connections is checked on accept) */
    pthread_t reaper;
    bool reaper_started, reaper_stop;  /* reaper_stop under conn_mu */
};

struct fr_req {
    front *f;
    fr_conn *fc;                       /* its connection (NULL when out of memory at the connection's start) */
    uint64_t id;
    struct MHD_Connection *conn;
    char *target;                      /* raw request target (path + "?query"), owned */
    const char *query;                 /* into target: raw query without '?', "" when none */
    const char *method;
    fr_state state;                    /* written on the MHD thread only */
    bool begun;
    bool parsed;                       /* wr is valid */
    whreq wr;
    /* copied request headers (the httpc thread must not touch the MHD connection) */
    char *authorization, *content_type;
    char rid[RID_MAX + 1];             /* request id: the writer's well-formed x-ms-client-request-id, else a
                                          fresh UUID; sent to Gen1, journaled with a write, echoed back */
    int64_t content_length;            /* -1 when absent or chunked */
    bool chunked;
    uint64_t body_bytes;               /* received so far */
    uint64_t max_body;                 /* limits.max_body_bytes when its headers came (a reload never
                                          changes the limit in the middle of a body) */
    uint64_t spool_counted;            /* bytes added to the spool gauge */
    spool_body *body;                  /* spooled body (ops that carry data; one reference), or NULL */
    bool degraded;                     /* the body went over the spool cap (policy degrade) */
    bool journaled;                    /* a write op: goes through pipe_accept / pipe_primary */
    uint64_t seq;                      /* its journal seq (set by the durability callback) */
    _Atomic int local_err;             /* -errno: answered locally after a suspension (journal, send) */
    _Atomic int verdict;               /* stl_verdict of a write whose Gen1 answer was lost, once settled */
    fr_stream *stream;                 /* a read: Gen1's answer relayed as it arrives (one reference) */
    /* the answer */
    int status;
    struct MHD_Response *resp;         /* prepared, not yet queued */
    bool queued;
    bool close_after;                  /* the answer carries Connection: close (refused or ambiguous framing) */
    bool suspended;                    /* was suspended for Gen1: answer only at a later call */
    uint64_t resp_bytes;
    _Atomic(httpc_resp *) up;          /* Gen1's answer, stored by the httpc thread */
    /* gen2-only (front_g2.c): g2serve's answer, stored by the thread that ended the suspension */
    atomic_bool g2_done;
    int g2_status, g2_retry_after;
    char *g2_ctype, *g2_body;
    size_t g2_len;
    struct timespec t0;
    /* the phase it was admitted in (a write journaled in gen2-primary is answered by Gen2, mirrored to Gen1) */
    cfg_phase ph;
    fr_req *held_next;                 /* f->held_* list while a phase switch holds it */
    struct timespec held_t0;
    char *local_msg;                   /* local_err -EAGAIN: why the write was refused (the fence's reason) */
};

/** Move r to state s (logs "old -> new" at debug with the caller's line). */
void front__set_state(fr_req *r, fr_state s, int line);
#define FR_SET(r, s) front__set_state((r), (s), __LINE__)

/** Prepare a RemoteException answer (status, exception, message) and enter ANSWERING. */
__attribute__((format(printf, 4, 5))) void front__fail(fr_req *r, int status, const char *exception,
                                                       const char *fmt, ...);
/** Prepare a RemoteException answer from a whreq_err and enter ANSWERING. */
void front__fail_err(fr_req *r, const whreq_err *e);
/** Attach resp with status as r's answer (consumes resp; NULL means out of memory -> 500). */
void front__set_answer(fr_req *r, int status, struct MHD_Response *resp);

/** SPOOLED -> UPSTREAM: suspend, journal a write (pipe_accept) and send r to Gen1 once it is durable,
 *  or send a read at once (or prepare an error answer). */
void front__dispatch(fr_req *r);
/** Turn Gen1's stored answer, or the local failure that ended the suspension, into r's answer
 *  (UPSTREAM -> ANSWERING). */
void front__answer_upstream(fr_req *r);
/** True when the suspension ended with an answer to give (Gen1's, the head of a read, or a local failure). */
bool front__upstream_ready(const fr_req *r);
/** The request is over (completed_cb): let go of r's read stream, cancelling Gen1's transfer if it still
 *  runs. Returns the body bytes the reader was sent. */
uint64_t front__stream_release(fr_req *r);

/** End r's suspension: resume its connection (any thread; r may be freed right after). */
void front__finish_upstream(fr_req *r);

/* ---- read streams (front_up.c), also fed by g2serve in gen2-only ---- */

/** A read stream for r whose transfer runs on http (r->stream set; references: r and the exchange). NULL
 *  when out of memory. */
fr_stream *front__stream_new(fr_req *r, httpc *http);
httpc_ctl *front__stream_ctl(fr_stream *st);
/** Storage for g2serve's stream hooks, living as long as the stream. */
g2s_stream *front__stream_hooks(fr_stream *st);
/** A piece of the body (the httpc thread): taken, or HTTPC_PAUSE. */
size_t front__stream_body(void *st, const char *p, size_t n);
/** The head is known: status, length, Content-Type; ends r's suspension. */
void front__stream_head(fr_stream *st, int status, int64_t length, const char *content_type);
/** The exchange ended after the head (complete: every byte came); drops its reference. */
void front__stream_end(fr_stream *st, bool complete);
/** The exchange will never start (no head comes): drops its reference; r is answered otherwise. */
void front__stream_abandon(fr_stream *st);

/** Count r in upstream_calls and suspend its connection; false (r answered 503) once front_stop began. */
bool front__begin_upstream(fr_req *r);

/* ---- the phase, hold and fence (front_phase.c) ---- */

typedef enum fr_admit { FR_ADMIT_GO = 0, FR_ADMIT_HELD, FR_ADMIT_FENCED } fr_admit;
/** A write about to be dispatched (suspended, counted in upstream_calls). GO: r->ph is set and the caller
 *  must call front__admitted once it was journaled (or failed); HELD: r waits on the held list (a phase
 *  switch releases it through front__run); FENCED: refused, the reason copied into why. */
fr_admit front__admit(fr_req *r, char *why, size_t cap);
void front__admitted(front *f);
void front__phase_metrics(front *f);
/** front_stop: every held write is answered 503 (shutting down). */
void front__release_held_stopping(front *f);
void front__phase_init(front *f);
void front__phase_destroy(front *f);

/** Run a suspended request in r->ph: journal a write (then Gen1 or Gen2 once durable), serve a read on
 *  its store. 0, or -errno (nothing started: the caller ends the suspension with that error). */
int front__run(fr_req *r);
/** End r's suspension with a local error (answered on the MHD thread from local_err). */
void front__finish_local(fr_req *r, int err);

/* ---- gen2-only (front_g2.c) ---- */

/** Serve suspended r on Gen2 through g2serve (its answer ends the suspension). 0, -ENOMEM, -ESHUTDOWN. */
int front__submit_g2(fr_req *r);
/** Turn g2serve's stored answer into r's answer (UPSTREAM -> ANSWERING). */
void front__answer_g2(fr_req *r);
/** Phase gen2-primary: send journaled write r (its record durable, its turn in the per-path order) to
 *  g2serve; the answer goes to pipe_primary, then to the writer. 0, or -1 when g2serve is stopping. */
int front__send_g2_write(fr_req *r);

/* ---- connections, limits and the reaper (front_conn.c) ---- */

/** Start the reaper thread. 0, or -1 with err. */
int front__conn_start(front *f, char *err, size_t errlen);
/** Stop and join the reaper (after MHD_stop_daemon: no connection is left). */
void front__conn_stop(front *f);
/** MHD's accept policy: refuse (close at once) a connection over limits.max_connections. */
enum MHD_Result front__conn_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/** MHD's connection notification: track the connection; on close, free a request MHD dropped. */
void front__conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);
/** The request line of r is in (uri_log_cb): attach r to its connection. */
void front__conn_request(fr_req *r, size_t nparams);
/** The access handler sees r's headers. false when the reaper already answered (return MHD_NO). */
bool front__conn_handled(fr_req *r);
/** r is fully received or about to be answered: stop its receive deadline. false when the reaper
 *  already answered (return MHD_NO). */
bool front__conn_received(fr_req *r);
/** r is over (completed_cb): detach it; the connection's next request gets a fresh deadline. */
void front__conn_request_done(fr_req *r);
/** Free r and everything it holds (completed_cb, or the connection closing without completing r). */
void front__req_free(fr_req *r);

#endif
