/*
 * phctl: the daemon's phase control. It runs the phase manager (phase.h) with the daemon's hooks:
 *
 *   hold(on)      the front holds new writes (front_hold: they wait, they are not refused);
 *   owed(to)      the journal's records still to be applied to the store `to` makes primary
 *                 (pipe_owed: to Gen2 for gen2-primary, to Gen1 for gen1-primary and gen2-only);
 *   enter(p)      the pipeline tags new records for p's secondary and resyncs follow it
 *                 (pipe_set_phase), then the front dispatches in p (front_set_phase);
 *   fence(why)    the front refuses writes with 503 and why (front_fence);
 *   cutover_ok    the last verify allows gen2-only (vrec.h).
 *
 * From front_start until the manager has decided, writes are fenced ("the proxy is starting").
 *
 * Admin endpoints (answers JSON, errors {"error":"..."}):
 *   GET  /admin/phase                          the manager's status (phase, epoch, record, members)
 *                                              and "switch": the last switch asked of this proxy
 *   POST /admin/phase/set?to=PHASE[&force=1]   start a switch on a thread of its own: 202 with
 *                                              "switch" (state "running"); 409 when one runs here;
 *                                              400 for an unknown phase. GET /admin/phase says how it
 *                                              ended: done, noop, refused, busy, aborted or error,
 *                                              with the reason and the writers' pause
 *   POST /admin/phase/forget?member=ID         a member gone for good: switches stop waiting for it
 */
#ifndef DP_PHCTL_H
#define DP_PHCTL_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"
#include "dbuf.h"
#include "front.h"
#include "gen2client.h"
#include "metrics.h"
#include "pipeline.h"
#include "vrec.h"

typedef struct phctl phctl;

/**
 * Start the phase manager for this daemon (after front_start; p, f, g2, v and m must outlive it until
 * phctl_free). The front must have been started fenced (front_start does). 0 and *out, or -1 with err.
 */
int phctl_start(const dp_config *cfg, gen2c *g2, pipeline *p, front *f, vrec *v, metrics *m, phctl **out,
                char *err, size_t errlen);
/** Serve url (starting with "/admin/phase"). Returns the status with the JSON in out, or 405 with out
 *  empty (the caller answers 405 with Allow: *allow). */
unsigned phctl_handle(phctl *c, const char *url, bool post, const char *query, dbuf *out, const char **allow);
/** Stop the manager (reports STOPPED to the fleet) and wait for a switch thread. */
void phctl_stop(phctl *c);
void phctl_free(phctl *c);

#endif
