/*
 * bfadmin: the daemon's side of `dualpipe backfill` (README "Backfill"): the admin endpoints under
 * /admin/backfill/ that let a backfill run order its copies with the live writes.
 *
 *   POST /admin/backfill/begin?root=/p&owner=ID   take the lease on the tree /p for run ID: 409 while
 *                                                 another run holds an overlapping tree
 *   POST /admin/backfill/copy?owner=ID&path=/p/f  journal a RESYNC of /p/f (pipe_resync_node): the copy is
 *                                                 made by the applier from Gen1's newest state, in
 *                                                 journal order with the live writes of that path
 *   GET  /admin/backfill/state?owner=ID&seqs=1,2  what became of those records: done (gone from the
 *                                                 journal), pending, or parked (with the reason)
 *   POST /admin/backfill/end?owner=ID             give the lease back
 *
 * A lease lasts BF_LEASE_S seconds after its run's last call, so a backfill killed with kill -9 blocks
 * nobody for long, and the same run (same ID, kept in its cursor) takes its lease back at once.
 * Answers are JSON; errors {"error":"..."} with 400 (bad parameter), 404 (no such endpoint), 405,
 * 409 (lease held by another run, or this run holds none), 503 (the journal refused).
 * Not tied to libmicrohttpd: bfadmin_handle returns the status and the body, admin.c sends them.
 */
#ifndef DP_BFADMIN_H
#define DP_BFADMIN_H

#include <stdbool.h>

#include "dbuf.h"
#include "fence.h"
#include "pipeline.h"

#define BF_LEASE_S 30

typedef struct bfadmin bfadmin;

/** A new registry of leases (no lease held). NULL when out of memory. Free with bfadmin_free. */
bfadmin *bfadmin_new(fence_reg *fences);
void bfadmin_free(bfadmin *b);

/**
 * Serve one request to url (which starts with "/admin/backfill/"); post says the method is POST
 * (else GET or HEAD), query is the raw query string. The JSON answer goes to out; returns the HTTP
 * status, or 405 with out empty (the caller answers with its 405 and Allow: *allow).
 */
unsigned bfadmin_handle(bfadmin *b, pipeline *p, const char *url, bool post, const char *query, dbuf *out,
                        const char **allow);

#endif
