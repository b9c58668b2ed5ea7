/*
 * applier: applies writes that the primary (Gen1) accepted to the secondary (Gen2), in order per path,
 * through the translator (common/xlate) and the Gen2 client. The journal drives it (proxy/pipeline.c):
 * each record the primary accepted comes in as an apply_req with the journal's seq, and its final
 * outcome goes back to the journal.
 *
 * Ordering: operations on one path apply in submission order; a namespace operation on a directory
 * (RENAME, DELETE) waits for everything earlier under it and holds back everything later under it or
 * under its destination. Different paths apply in parallel (applier.concurrency). A backlog of
 * APPENDs to one file is coalesced: their bytes go out back to back and one flush commits them.
 *
 * Retries: a transient failure (transport error, 408, 429, 5xx) is re-sent after a backoff with full
 * jitter (applier.backoff_base_ms * 2^n, capped), honouring Retry-After, for as long as it takes; a
 * circuit breaker on Gen2 opens after applier.breaker_failures transient failures in a row, holds
 * every send back and lets one probe through every applier.breaker_probe_ms until Gen2 answers again.
 * An account-level problem (gen2c_classify: a filesystem that does not exist, a credential or role
 * Gen2 refuses, an account that does not resolve) is no failure of the operation: the breaker of the
 * filesystem (or of Gen2, for the whole account) opens at once and the operation waits there, not
 * retried, resynced or parked, until a probe goes through (applier_acct.c).
 *
 * Idempotency on every replay (protocols.md section 4.6): an APPEND whose bytes already landed (Gen2
 * holds offset + length) is not written twice, a flush at the existing length counts as done, a
 * CREATE or MKDIRS that finds its own result counts, a RENAME whose source is gone and destination
 * present counts, a DELETE of a missing path counts. What cannot be decided from Gen2 alone (an
 * APPEND without an offset that may have been sent before a crash: maybe_sent) is resynced.
 *
 * Resync: a request marked resync, and any operation that fails for good (a non-retryable answer,
 * an op Gen2 cannot express such as CONCAT), makes Gen2 equal to Gen1 for the path (a subtree copy:
 * applier_resync.c). The copy asks the gate (the journal) which records touched the path, and redoes
 * the copy if one was accepted while it read Gen1, so that it knows exactly which later records it
 * already covers; those finish as applied without being replayed. A resync that fails
 * applier.resync_attempts times ends as APPLY_PARKED: the journal keeps it for an operator.
 *
 * Outcomes are counted (metrics) and kept for the admin API.
 */
#ifndef DP_APPLIER_H
#define DP_APPLIER_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "gen1client.h"
#include "httpc.h"
#include "metrics.h"
#include "rid.h"
#include "spool.h"
#include "whreq.h"

typedef struct applier applier;

/*
 * Outcomes. APPLY_FAILED is internal (an operation that failed for good becomes a resync) and never
 * reaches done. APPLY_STOPPED: the applier stopped before the operation finished; the journal keeps
 * the record as it was and the next start replays it.
 */
typedef enum apply_outcome {
    APPLY_OK = 0, APPLY_SKIPPED_UNMAPPED, APPLY_SKIPPED_INVALID_NAME, APPLY_DIVERGENCE, APPLY_FAILED,
    APPLY_RESYNCED, APPLY_PARKED, APPLY_STOPPED
} apply_outcome;
#define APPLY__COUNT 8
/** "applied", "skipped_unmapped", "skipped_invalid_name", "divergence", "failed", "resynced", "parked", "stopped". */
const char *apply_outcome_name(apply_outcome o);

/** Gate of resyncs (journal.h jnl_path_epoch): highest seq that touched root or under it; busy when one
 *  of those still waits for the primary. */
typedef uint64_t (*apply_gate_fn)(void *ud, const char *root, bool *busy);

typedef struct apply_req {
    uint64_t seq;                 /* the journal's seq: submission order */
    whreq_op op;
    char *path;                   /* Gen1 path, normalised (owned by the request) */
    whreq_param *params;          /* copy of the writer's params (names lower-case, values decoded) */
    int nparams;
    spool_body *body;             /* CREATE/APPEND/CONCURRENTAPPEND data, or NULL; one ref owned;
                                     the bytes are [body->off, body->off + body->len) of body->fd */
    bool resync;                  /* copy path (a RENAME: both paths) from Gen1 instead of replaying */
    bool maybe_sent;              /* recovered after a crash: may already have reached Gen2 */
    int64_t not_before_ms;        /* a resync does not start copying before this CLOCK_MONOTONIC time (ms):
                                     a recovered write whose Gen1 outcome is unknown may still land at
                                     Gen1 until gen1.settle_ms after the start; 0 = at once */
    void (*first)(void *ud, bool ok); /* ack "both": runs once, when the first Gen2 attempt ended (ok: the
                                     operation applied) or at the outcome, whichever is first; or NULL */
    void *first_ud;
    char *authorization;          /* writer's Authorization (for Gen1 look-ups on its behalf when gen1.auth is
                                     none), or NULL */
    int gen1_status;              /* Gen1's status for the write (2xx) */
    char *gen1_body;              /* Gen1's JSON answer (e.g. {"boolean":true}), or NULL */
    char request_id[RID_MAX + 1]; /* the write's request id (rid_valid): Gen2's x-ms-client-request-id on
                                     every request for this record, and rid= in its log lines; "" = none
                                     (operator resyncs: each Gen2 request gets its own) */
} apply_req;

/** Parameter of a RESYNC record whose directory root is copied without its entries (pipe_resync_node). */
#define APPLY_RESYNC_NODE_ONLY "dualpipe.node_only"

/** Detail of a record parked because identities could not be mapped (gen2.unmapped_identity
 *  resync-later): the data applied, some metadata waits for the identity map. */
#define APPLY_IDS_OWED "metadata owed to unmapped identities"

/** Free an apply_req and everything it owns (also unrefs the body). */
void apply_req_free(apply_req *r);

typedef struct apply_result {
    apply_outcome outcome;
    char detail[512];             /* what happened, for logs and the admin API (no secrets) */
} apply_result;

/** Create the applier (applier.* config keys). gate may be NULL (resyncs then cover nothing later).
 *  Returns 0 or -1 with a message. */
int applier_new(const dp_config *cfg, httpc *http, gen1c *g1, apply_gate_fn gate, void *gate_ud, applier **out,
                char *err, size_t errlen);
/**
 * Take ownership of req and apply it to Gen2 in per-path order. Never blocks on I/O and never calls
 * done itself (callable from the httpc thread, under the caller's locks). done (may be NULL) runs once
 * when the operation finished: on the httpc thread, or on the applier's own worker thread for
 * operations that needed no request (skips, SETTIMES) or were given up at stop, or on the thread
 * calling applier_stop (calls still waiting for a Gen2 token end there).
 * Returns 0, or -1 if the applier is stopping (req is freed).
 */
int applier_submit(applier *a, apply_req *req, void (*done)(void *ud, const apply_result *res), void *ud);
/**
 * fn runs (on the identity map's watcher thread) each time gen2.identity_map was reloaded with a new
 * version, so that records parked with APPLY_IDS_OWED can be resynced. Call before writes arrive.
 */
void applier_on_identity_change(applier *a, void (*fn)(void *ud), void *ud);
/** SIGHUP: read gen2.identity_map again now (the watcher otherwise notices a change within a second). */
void applier_reread_identity_map(applier *a);
/** SIGHUP: Gen2 credentials from nc (gen2c_reload; check=true only validates). 0, or -1 with err. */
int applier_reload(applier *a, const dp_config *nc, bool check, char *err, size_t errlen);
/** Count the parts re-copies stage from Gen1 against sp's cap (spool.max_bytes; a re-copy waits for
 *  room). Call before the first submit; sp must outlive the applier. Without it nothing is counted. */
void applier_set_spool(applier *a, spool *sp);
/** Forget what the applier knows of Gen2's files (digest states, lengths, directories): after a phase change
 *  files may have changed on Gen2 without it (served there by g2serve), so a later APPEND must neither
 *  combine a CRC kept from before nor be sent at a length kept from before. */
void applier_forget_gen2_state(applier *a);
/** Operations submitted and not finished. */
uint64_t applier_pending(applier *a);
/**
 * Register the applier's metrics in m (call once, after applier_new and before writes arrive; m must
 * outlive the applier, and must not be rendered after applier_stop): dualpipe_applier_operations_total
 * {op,outcome}, dualpipe_applier_in_flight, dualpipe_applier_lag_seconds (submission to outcome),
 * dualpipe_applier_upstream_answers_total{upstream,code}, dualpipe_applier_retries_total{upstream},
 * dualpipe_applier_copied_nodes_total{kind} (subtree copies), dualpipe_applier_breaker_open{upstream}
 * (1 while open), dualpipe_applier_breaker_trips_total{upstream}, dualpipe_applier_coalesced_total,
 * dualpipe_gen2_account_problem{kind,filesystem} (1 while a problem holds the filesystem). (dualpipe_applier_pending is the
 * admin module's.) Returns 0, or -1 when a series cannot be created.
 */
int applier_register_metrics(applier *a, metrics *m);
/** Append JSON {"pending":n,"in_flight":n,"applied":n,"skipped":n,"skipped_unmapped":n,
 *  "skipped_invalid_name":n,"divergence_count":n,"resynced":n,"parked":n,"breaker":"closed|open",
 *  "gen2_problems":[{"kind","filesystem" ("" = the whole account),"since_ms","waiting","detail",
 *  "message"}],"divergences":[...],"failures":[...]} ("failures": operations that ended resynced or parked)
 *  to out; the lists hold the last 100 of each, newest first, as {"seq","time_ms","op","path","detail"}. */
int applier_status_json(applier *a, dbuf *out);
/**
 * Account-level Gen2 problems (a filesystem that does not exist, a credential or role Gen2 refuses, an
 * account that does not exist or resolve): writes are held pending, never parked, while one lasts.
 * applier_gen2_check: the first call checks every mapped filesystem (get properties) and logs each
 * result (creating missing ones under gen2.create_filesystems); later calls check again what a read
 * can settle while a problem lasts. Never blocks (answers arrive on the httpc thread).
 */
void applier_gen2_check(applier *a);
/** Append one line per current problem (what is wrong, how to fix it) to out. Returns how many, or -1. */
int applier_gen2_problems(applier *a, dbuf *out);
/**
 * Stop accepting, wait up to timeout_ms for pending work, then free. Call it while the httpc engine
 * still runs. Past the timeout, queued and waiting operations end as APPLY_STOPPED at once; those
 * with a request in flight end so when it ends — httpc_stop cancels them — and the last one frees the
 * applier, so httpc_stop must follow. The applier must not be used after this call.
 */
void applier_stop(applier *a, unsigned timeout_ms);

#endif
