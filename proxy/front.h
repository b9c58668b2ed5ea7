/*
 * front: the WebHDFS front end of the proxy. libmicrohttpd serves writers with its internal epoll
 * thread(s) (no thread per connection); each request runs through an explicit state machine
 *
 *     RECEIVING -> SPOOLED -> UPSTREAM -> ANSWERING -> DONE
 *         \___________\__________________/^
 *          (answered locally: parse error, 307 redirect, 413, 503 ...)
 *
 * RECEIVING: headers parsed (whreq), a write's body streamed into a spool region (pipe_body_begin,
 * spool_write) as it arrives; over the spool cap under spool.policy "reject" it is refused with 503
 * + Retry-After before anything reaches Gen1. SPOOLED: the whole body is on disk. UPSTREAM: the
 * connection is suspended (no thread held). A write is journaled first (pipe_accept); once the
 * record is durable (journal commit thread) it goes to Gen1 through the httpc engine (a journal
 * failure is answered 503 and Gen1 never sees the write); Gen1's answer (httpc thread) goes to
 * pipe_primary, which hands an accepted write to the applier; the connection resumes then, or with
 * ack "both" when Gen2's first attempt ended. Reads go to Gen1 directly, are never journaled, and their
 * answers stream back as Gen1 sends them (limits.stream_buffer_bytes per read).
 * ANSWERING: Gen1's answer (status, body, relevant headers) or a local answer is queued. DONE: the
 * request is finished and its state freed.
 *
 * The two writer dialects are both served whatever the upstream dialect: a body-less CREATE, APPEND
 * or OPEN without its one-step flag gets a 307 back at the proxy with the flag added
 * (`noredirect=true`: 200 {"Location": ...}).
 */
#ifndef DP_FRONT_H
#define DP_FRONT_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"
#include "g2serve.h"
#include "gen1client.h"
#include "metrics.h"
#include "pipeline.h"

typedef struct front front;

/**
 * Bind cfg.listen and start serving. cfg, g1, p, gs and m must outlive the front (see front_free).
 * gs: phase gen2-only, every WebHDFS request is served on Gen2 by g2serve (no journal, Gen1 never asked;
 * the framing, limits, TLS, redirects, spool and request ids stay the front's); phase gen2-primary, reads
 * the same, writes journaled (pipe_accept, the per-path order) and then served by g2serve, its answer
 * reported to pipe_primary (the pipeline mirrors accepted writes to Gen1); NULL: gen1-primary.
 * Returns 0 and *out, or -1 with a message in err naming the config key at fault where there is one.
 */
int front_start(const dp_config *cfg, gen1c *g1, pipeline *p, g2s *gs, metrics *m, front **out, char *err,
                size_t errlen);
/** The port the front listens on (the real one when the config said 0). */
int front_port(const front *f);
/** True while the front accepts new requests (false after front_stop). Thread-safe. */
bool front_accepting(const front *f);
/**
 * Stop taking new requests (the listener closes; requests on open connections get 503 with
 * Connection: close) and wait up to drain_ms for the suspended ones (waiting for the journal, Gen1
 * or the ack). A Gen1 answer arriving later is still relayed to its writer and handed to
 * pipe_primary (the pipeline journals it for the next start once it stopped). The front keeps
 * answering resumed requests until front_free.
 */
void front_stop(front *f, unsigned drain_ms);
/**
 * Stop the daemon and free the front. Call after pipe_stop and httpc_stop (no journal, Gen1 or
 * applier callback is pending, so no connection is still suspended) and before pipe_free (closing
 * connections releases their spool bodies).
 */
void front_free(front *f);

/* ---- the phase (front_phase.c) ---- */

/** The phase requests are dispatched in from now on (a write keeps the phase it was admitted in). */
void front_set_phase(front *f, cfg_phase p);
cfg_phase front_phase(const front *f);
/**
 * on: new writes wait (suspended, answered later; reads go on); returns once every write admitted
 * before is journaled, so pipe_owed counts all of them. off: the held writes run in the current phase
 * (refused with the fence's reason if a fence is up). Thread-safe; not from an MHD thread.
 */
void front_hold(front *f, bool on);
/** reason non-NULL: new writes are refused with 503 (RetriableException) and this reason; NULL: accepted. */
void front_fence(front *f, const char *reason);

/**
 * Create a listening TCP socket (close-on-exec, non-blocking, SO_REUSEADDR) for host:port, host
 * being a literal address or a name. Returns the fd and the bound port in *real_port, or -1 with a
 * message in err. Shared with the admin listener.
 */
int front_listen_socket(const char *host, int port, int *real_port, char *err, size_t errlen);

#endif
