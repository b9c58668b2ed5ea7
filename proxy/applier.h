/*
 * applier: applies writes that the primary (Gen1) accepted to the secondary (Gen2), in order per path,
 * through the translator (common/xlate) and the Gen2 client. This is the interface the durable
 * journal (next issue) will drive: a record in, a final outcome out. In this issue the front submits
 * right after Gen1's success and the writer does not wait.
 *
 * Ordering: operations on one path apply in submission order; a namespace operation on a directory
 * (RENAME, DELETE) waits for everything earlier under it and holds back everything later under it or
 * under its destination. Different paths apply in parallel (bounded).
 *
 * A RENAME Gen2 cannot do as a rename (source and destination in different filesystems, or one of
 * them not mirrored) is mirrored by copying the destination's subtree from Gen1 and deleting the
 * source's on Gen2; it holds back later operations on both paths meanwhile.
 *
 * Outcomes are counted (metrics) and kept for the admin API: applied, skipped (unmapped path or a Gen2
 * name Gen2 would reject: counted and reported, the Gen1 write already succeeded), divergence (an op
 * Gen2 cannot express, e.g. SETTIMES: recorded), failed (Gen2 refused or unreachable after the
 * retries of this issue — the journal issue adds durable retry and resync).
 */
#ifndef DP_APPLIER_H
#define DP_APPLIER_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "gen1client.h"
#include "httpc.h"
#include "metrics.h"
#include "whreq.h"

typedef struct applier applier;

/** A request body kept on disk (spool file), shared by the Gen1 send and the Gen2 apply. */
typedef struct dp_body {
    int fd;               /* open spool file (unlinked or O_TMPFILE); closed at the last unref */
    uint64_t len;         /* bytes of body */
    int refs;             /* atomic */
} dp_body;
dp_body *dp_body_ref(dp_body *b);
void dp_body_unref(dp_body *b);

typedef enum apply_outcome {
    APPLY_OK = 0, APPLY_SKIPPED_UNMAPPED, APPLY_SKIPPED_INVALID_NAME, APPLY_DIVERGENCE, APPLY_FAILED
} apply_outcome;

typedef struct apply_req {
    uint64_t seq;                 /* submission order, assigned by the caller */
    whreq_op op;
    char *path;                   /* Gen1 path, normalised (owned by the request) */
    whreq_param *params;          /* copy of the writer's params (names lower-case, values decoded) */
    int nparams;
    dp_body *body;                /* CREATE/APPEND/CONCURRENTAPPEND data, or NULL; one ref owned */
    char *authorization;          /* writer's Authorization (for Gen1 look-ups on its behalf), or NULL */
    int gen1_status;              /* Gen1's status for the write (2xx) */
    char *gen1_body;              /* Gen1's JSON answer (e.g. {"boolean":true}), or NULL */
} apply_req;

/** Free an apply_req and everything it owns (also unrefs the body). */
void apply_req_free(apply_req *r);

typedef struct apply_result {
    apply_outcome outcome;
    char detail[512];             /* what happened, for logs and the admin API (no secrets) */
} apply_result;

/** Create the applier. Returns 0 or -1 with a message. */
int applier_new(const dp_config *cfg, httpc *http, gen1c *g1, applier **out, char *err, size_t errlen);
/**
 * Take ownership of req and apply it to Gen2 in per-path order. Never blocks on I/O and never calls
 * done itself (callable from the httpc thread, under the caller's locks). done (may be NULL) runs once
 * when the operation finished: on the httpc thread, or on the applier's own worker thread for
 * operations that needed no request (skips, SETTIMES) or were given up at stop, or on the thread
 * calling applier_stop (calls still waiting for a Gen2 token end there).
 * Returns 0, or -1 if the applier is stopping (req is freed).
 */
int applier_submit(applier *a, apply_req *req, void (*done)(void *ud, const apply_result *res), void *ud);
/** Operations submitted and not finished. */
uint64_t applier_pending(applier *a);
/**
 * Register the applier's metrics in m (call once, after applier_new and before writes arrive; m must
 * outlive the applier, and must not be rendered after applier_stop): dualpipe_applier_operations_total
 * {op,outcome}, dualpipe_applier_in_flight, dualpipe_applier_lag_seconds (submission to outcome),
 * dualpipe_applier_upstream_answers_total{upstream,code}, dualpipe_applier_retries_total{upstream},
 * dualpipe_applier_copied_nodes_total{kind} (subtree copies). (dualpipe_applier_pending is the
 * admin module's.) Returns 0, or -1 when a series cannot be created.
 */
int applier_register_metrics(applier *a, metrics *m);
/** Append JSON {"pending":n,"in_flight":n,"applied":n,"skipped":n,"skipped_unmapped":n,
 *  "skipped_invalid_name":n,"divergence_count":n,"failure_count":n,"divergences":[...],"failures":[...]}
 *  to out; the lists hold the last 100 of each, newest first, as {"seq","time_ms","op","path","detail"}. */
int applier_status_json(applier *a, dbuf *out);
/**
 * Stop accepting, wait up to timeout_ms for pending work, then free. Call it while the httpc engine
 * still runs. Past the timeout, queued and retry-parked operations fail at once ("stopped"); those
 * with a request in flight fail when it ends — httpc_stop cancels them — and the last one frees the
 * applier, so httpc_stop must follow. The applier must not be used after this call.
 */
void applier_stop(applier *a, unsigned timeout_ms);

#endif
