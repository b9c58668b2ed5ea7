/*
 * front: the WebHDFS front end of the proxy. libmicrohttpd serves writers with its internal epoll
 * thread(s) (no thread per connection); each request runs through an explicit state machine
 *
 *     RECEIVING -> SPOOLED -> UPSTREAM -> ANSWERING -> DONE
 *         \___________\__________________/^
 *          (answered locally: parse error, 307 redirect, 413, 503 ...)
 *
 * RECEIVING: headers parsed (whreq), the body streamed into a spool file (dp_body, O_TMPFILE in
 * spool.dir) as it arrives. SPOOLED: the whole body is on disk. UPSTREAM: the connection is
 * suspended (no thread held) while Gen1 answers through the httpc engine; the completion, on the
 * httpc thread, hands a write Gen1 accepted (2xx) to the applier and resumes the connection.
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

#include "applier.h"
#include "cfg.h"
#include "gen1client.h"
#include "metrics.h"

typedef struct front front;

/**
 * Bind cfg.listen and start serving. cfg, g1, ap and m must outlive the front. Returns 0 and *out,
 * or -1 with a message in err naming the config key at fault where there is one.
 */
int front_start(const dp_config *cfg, gen1c *g1, applier *ap, metrics *m, front **out, char *err, size_t errlen);
/** The port the front listens on (the real one when the config said 0). */
int front_port(const front *f);
/** True while the front accepts new requests (false after front_stop). Thread-safe. */
bool front_accepting(const front *f);
/**
 * Stop taking new requests (the listener closes; requests on open connections get 503 with
 * Connection: close) and wait up to drain_ms for requests already sent to Gen1. After it returns
 * the front never calls the applier again (a Gen1 answer arriving later is relayed to its writer
 * but not mirrored, and logged). The front keeps answering resumed requests until front_free.
 */
void front_stop(front *f, unsigned drain_ms);
/** Stop the daemon and free the front. Call after httpc_stop, so no Gen1 call is pending. */
void front_free(front *f);

/**
 * Create a listening TCP socket (close-on-exec, non-blocking, SO_REUSEADDR) for host:port, host
 * being a literal address or a name. Returns the fd and the bound port in *real_port, or -1 with a
 * message in err. Shared with the admin listener.
 */
int front_listen_socket(const char *host, int port, int *real_port, char *err, size_t errlen);

#endif
