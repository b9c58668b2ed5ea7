/*
 * admin: the proxy's admin HTTP listener (admin.listen, loopback by default), a second small
 * libmicrohttpd daemon with one internal thread:
 *   GET /healthz       200 "ok" while the process serves
 *   GET /readyz        200 "ready" when the front takes requests, the journal commits (the last
 *                      group commit did not fail), Gen1 answered the last probe (any HTTP status
 *                      counts: it is reachable) and Gen2 has no account-level problem
 *                      (applier_gen2_problems); else 503 with the reason
 *   GET /metrics       Prometheus text (common/metrics)
 *   GET /admin/status  JSON from applier_status_json
 * The journal's operator endpoints (what `dualpipe journal` uses while the daemon runs); answers are
 * JSON, errors {"error":"..."} with 400 (bad parameter), 404 (no such record), 409 (record not
 * parked), 405 (wrong method), 503 (the journal refuses: I/O error, stopping):
 *   GET  /admin/journal                          pipe_status_json
 *   GET  /admin/journal/records?parked=1&after=N&limit=N   pipe_list_json (limit 100 by default, at
 *                                                most 10000; after: list seqs above N)
 *   POST /admin/journal/retry?seq=N | ?all=1     {"retried":n}: parked record(s) become resyncs again
 *   POST /admin/journal/drop?seq=N&confirm=yes   {"dropped":N}: a parked record is given up (DROPPED);
 *                                                without confirm=yes: 400 saying so
 *   POST /admin/journal/resync?path=/p           {"seq":N}: a resync of /p from Gen1 is journaled
 * Query values are percent-decoded (form style); path must be an absolute path, normalised like the
 * front's ("//" and a trailing "/" fold, "." and ".." segments and control characters are refused).
 * There is no authentication: anyone who can reach the port can drop records. Keep it on loopback.
 *
 * A probe thread sends GETFILESTATUS of "/" to Gen1 at start and every 10 s, without credentials
 * (dualpipe never invents an identity toward Gen1; a 401/403 still proves Gen1 is there), and runs
 * the applier's check of the mapped Gen2 filesystems (applier_gen2_check) at the same times.
 */
#ifndef DP_ADMIN_H
#define DP_ADMIN_H

#include <stddef.h>

#include "cfg.h"
#include "front.h"
#include "gen1client.h"
#include "metrics.h"
#include "fence.h"
#include "phctl.h"
#include "pipeline.h"
#include "vrec.h"

typedef struct admin admin;

/**
 * Bind admin.listen and start serving and probing. p (required) gives the journal endpoints, the
 * applier (pipe_applier: /admin/status, the dualpipe_applier_pending gauge) and the journal
 * (readiness); fences the DistCp fences (/admin/backfill/fence...). Everything passed must outlive the admin until admin_stop. Returns 0 and *out, or -1
 * with a message in err naming the config key.
 */
int admin_start(const dp_config *cfg, metrics *m, pipeline *p, gen1c *g1, front *f, fence_reg *fences, admin **out,
                char *err, size_t errlen);
/**
 * The verify record (vrec.h; may be NULL, must outlive the admin until admin_stop): serves GET
 * /admin/verify, POST /admin/verify/begin and /admin/verify/end (vrec_http), and a successful
 * /admin/journal/drop notes the dropped record in it (vrec_note_divergence). Without one those
 * endpoints answer 404.
 */
void admin_set_vrec(admin *a, vrec *v);
/** The phase control behind /admin/phase (phctl.h); until it is set those endpoints answer 503. */
void admin_set_phctl(admin *a, phctl *c);
/** The port the admin listener is bound to. */
int admin_port(const admin *a);
/** Stop the listener and the probe thread; after this the admin touches no pipeline, front or metrics. */
void admin_stop(admin *a);
/** Free the admin. Call after httpc_stop (a probe may still be in flight until then). */
void admin_free(admin *a);

#endif
