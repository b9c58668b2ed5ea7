/*
 * admin: the proxy's admin HTTP listener (admin.listen, loopback by default), a second small
 * libmicrohttpd daemon with one internal thread:
 *   GET /healthz       200 "ok" while the process serves
 *   GET /readyz        200 "ready" when the front takes requests and Gen1 answered the last probe
 *                      (any HTTP status counts: it is reachable); else 503 with the reason
 *   GET /metrics       Prometheus text (common/metrics)
 *   GET /admin/status  JSON from applier_status_json
 * A probe thread sends GETFILESTATUS of "/" to Gen1 at start and every 10 s, without credentials
 * (dualpipe never invents an identity toward Gen1; a 401/403 still proves Gen1 is there).
 */
#ifndef DP_ADMIN_H
#define DP_ADMIN_H

#include <stddef.h>

#include "applier.h"
#include "cfg.h"
#include "front.h"
#include "gen1client.h"
#include "metrics.h"

typedef struct admin admin;

/**
 * Bind admin.listen and start serving and probing. Everything passed must outlive the admin until
 * admin_stop. Returns 0 and *out, or -1 with a message in err naming the config key.
 */
int admin_start(const dp_config *cfg, metrics *m, applier *ap, gen1c *g1, front *f, admin **out, char *err,
                size_t errlen);
/** The port the admin listener is bound to. */
int admin_port(const admin *a);
/** Stop the listener and the probe thread; after this the admin touches no applier, front or metrics. */
void admin_stop(admin *a);
/** Free the admin. Call after httpc_stop (a probe may still be in flight until then). */
void admin_free(admin *a);

#endif
