/*
 * mirror: applies writes that the primary (Gen2, phase gen2-primary) accepted to the secondary (Gen1),
 * in order per path, so that a rollback to gen1-primary finds Gen1 holding what writers were told was
 * written. The counterpart of the applier (applier.h) in the other direction: the pipeline drives it
 * the same way (an apply_req per journal record, an apply_result back), so it can switch engines by
 * phase.
 *
 * Replaying a record = sending its WebHDFS op to Gen1 with the proxy's own identity (gen1.auth; with
 * mode none, the writer's Authorization and user.name/doas parameters of the record) through gen1c_own,
 * in either dialect (adls one-step, hadoop two-step). The writer's parameters go along except the
 * proxy's own (MIRROR_PARAM_*), syncFlag (every mirrored write closes: Gen1's length is then visible to
 * the idempotency checks) and leaseid/filesessionid (the writer's lease lives on the primary).
 *
 * Ordering (as the applier's): operations on one path apply in submission order; an operation waits for
 * every earlier unfinished one that touches a related path (same path, ancestor or descendant; a RENAME
 * touches source and destination, a CONCAT/MSCONCAT its target and sources), so a namespace operation on
 * a directory waits for everything earlier under it and holds back everything later under it or its
 * destination. Unrelated paths apply in parallel, at most `concurrency` at a time.
 *
 * Idempotency (protocols.md 4.6): every replay that may have reached Gen1 before (a transient failure
 * after the request went out, or a record recovered with maybe_sent) first asks Gen1 whether it landed:
 *  - CREATE: a file of the body's length whose modificationTime is MIRROR_PARAM_MTIME, or whose bytes
 *    equal the body (read back, up to MIRROR_VERIFY_MAX); else sent again (overwrite=false and another
 *    file there: resync);
 *  - APPEND / CONCURRENTAPPEND with MIRROR_PARAM_OFFSET (an APPEND also the writer's offset): Gen1's length is
 *    offset + len → landed, offset → sent (adls: with offset=, so Gen1 refuses a second landing),
 *    anything else → resync; without an offset an APPEND that may have landed cannot be decided → resync;
 *  - MKDIRS, DELETE, SET*, ACL ops, SETTIMES, SETEXPIRY: the same result however often they run;
 *  - RENAME: source gone and destination present → landed; a {"boolean":false} answer is decided the
 *    same way (or matches the primary's own false, req->gen1_body);
 *  - CONCAT/MSCONCAT: every source gone and the target present → landed.
 *
 * Ownership: what the proxy's identity creates is owned by that identity on Gen1 (HDFS: the creating
 * user; ADLS Gen1: the caller's object id). When the record carries MIRROR_PARAM_OWNER (and
 * MIRROR_PARAM_GROUP) — who the primary made the owner — a CREATE or MKDIRS is followed by SETOWNER to
 * them; when Gen1 refuses (the identity is no superuser), the operation ends APPLY_DIVERGENCE saying
 * whose the node is on each side. Without the parameter the owner is the proxy's identity (mode none:
 * the writer's own), and nothing is claimed about it.
 *
 * Retries: a transient failure (transport error, 408, 429, 5xx) is sent again after a full-jitter
 * backoff (backoff_base_ms * 2^n, capped at backoff_cap_ms) honouring Retry-After, for as long as it
 * takes; a circuit breaker per upstream opens after breaker_failures transient failures in a row, holds
 * every send back and lets one probe through every breaker_probe_ms; an account-level problem of Gen2
 * (gen2c_classify: a filesystem that does not exist, a credential or role it refuses) is waited out the
 * same way, never taken for an answer about the path. A request that was sent and may have landed is not
 * sent again blindly: the next attempt begins with the idempotency check.
 *
 * Resync: a request marked resync, and any operation that fails for good (a non-retryable answer, an
 * APPEND Gen1 holds at another length), makes Gen1 equal to Gen2 for the paths it touches: per root,
 * ask the gate (wait while a record of the path waits for the primary), copy Gen2 → Gen1 (a file: its
 * bytes in parts of MIRROR_PART_BYTES written in place, then permission, owner and group — Gen2's
 * identities mapped back to Gen1 names through the identity map (opts.ids), names it lacks as they
 * are —, its ACL (entry names mapped back the same way), and its times from the
 * `dualpipe_times` property; a directory: created, its metadata, then every child Gen2 holds copied and
 * every child Gen1 holds that Gen2 lacks deleted — a child a nested mapping puts in another filesystem is
 * copied from there, one that maps nowhere or has a name Gen2 cannot hold is left and counted —; a path
 * Gen2 lacks: deleted on Gen1), ask the gate again (copy again when a record touched the root
 * meanwhile), and remember the cover: later records
 * under the root up to the gate's epoch end APPLY_OK without a replay (the copy already holds them).
 * Gen1 is written in place, not through a temporary name: nobody reads Gen1 while it is the secondary.
 * A resync that fails resync_attempts times ends APPLY_PARKED with the reason.
 *
 * Threads: `concurrency` worker threads run the operations with blocking exchanges (httpc_sync), so
 * done runs on a mirror worker thread (never inside mirror_submit, never on the httpc thread), or on the
 * thread calling mirror_stop for operations still queued when it gives up. done runs before the
 * operation leaves the queue (later operations on its path start after it returns), so mirror_pending may
 * still count it while done runs.
 */
#ifndef DP_MIRROR_H
#define DP_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "applier.h"
#include "dbuf.h"
#include "gen1client.h"
#include "gen2client.h"
#include "httpc.h"
#include "idmap.h"
#include "metrics.h"

/* Parameters the pipeline adds to a record for the mirror (lower case, like the writer's). */
#define MIRROR_PARAM_OFFSET "dualpipe.offset" /* APPEND/CONCURRENTAPPEND: where on the primary its bytes
                                                 landed (the file's length before it), decimal */
#define MIRROR_PARAM_MTIME "dualpipe.mtime"   /* CREATE: the primary's modificationTime (ms) of the new file:
                                                 set on Gen1 (SETTIMES) and used to recognise a landed replay */
#define MIRROR_PARAM_OWNER "dualpipe.owner"   /* CREATE/MKDIRS: the owner the primary gave the new node (a
                                                 Gen1 name, or a Gen2 identity the identity map maps back) */
#define MIRROR_PARAM_GROUP "dualpipe.group"   /* ... and its group */

#define MIRROR_VERIFY_MAX (16u << 20)         /* a CREATE replay without mtime compares bytes up to this */
#define MIRROR_PART_BYTES (4u << 20)          /* resync copy parts (Gen1's body limit) */

typedef struct mirror mirror;

typedef struct mirror_opts {
    httpc *http;                  /* running engine (must outlive the mirror) */
    gen1c *g1;                    /* Gen1 client; its identity (gen1c_set_identity) is the proxy's */
    gen2c *g2;                    /* Gen2 client with the mappings (reads for resyncs) */
    bool hadoop;                  /* Gen1 dialect is hadoop (APPEND without offset=: length checked first) */
    idm_watch *ids;               /* gen2.identity_map, or NULL: Gen2 identities (owners, groups, ACL entry
                                     names) are mapped back to Gen1 names by it (idm_reverse); names no
                                     line maps go to Gen1 as Gen2 has them. Polled here; must outlive it */
    apply_gate_fn gate;           /* the journal's gate (jnl_path_epoch), or NULL */
    void *gate_ud;
    unsigned concurrency;         /* operations at once (worker threads); 0 = 8 */
    unsigned backoff_base_ms;     /* 0 = 100 */
    unsigned backoff_cap_ms;      /* 0 = 30000 */
    unsigned breaker_failures;    /* 0 = 5 */
    unsigned breaker_probe_ms;    /* 0 = 500 */
    unsigned resync_attempts;     /* 0 = 5 */
} mirror_opts;

/** Create the mirror and start its workers. Returns 0 or -1 with a message. */
int mirror_new(const mirror_opts *o, mirror **out, char *err, size_t errlen);
/**
 * Take ownership of req and apply it to Gen1 in per-path order. Never blocks on I/O and never calls done
 * itself (callable under the caller's locks). done (may be NULL) runs once when the operation finished,
 * with one of applier.h's outcomes (APPLY_OK, APPLY_DIVERGENCE, APPLY_RESYNCED, APPLY_PARKED,
 * APPLY_STOPPED; APPLY_FAILED never reaches done). Returns 0, or -1 if the mirror is stopping (req is
 * freed).
 */
int mirror_submit(mirror *m, apply_req *req, void (*done)(void *ud, const apply_result *res), void *ud);
/** Operations submitted and not finished. */
uint64_t mirror_pending(mirror *m);
/**
 * Register the metrics (once, before writes arrive; m must outlive the mirror and not be rendered after
 * mirror_stop): dualpipe_mirror_operations_total{op,outcome}, dualpipe_mirror_in_flight,
 * dualpipe_mirror_lag_seconds (submission to outcome), dualpipe_mirror_retries_total{upstream},
 * dualpipe_mirror_breaker_open{upstream} (1 while open). Returns 0, or -1 when a series cannot be made.
 */
int mirror_register_metrics(mirror *m, metrics *mx);
/** Append {"pending":n,"in_flight":n,"applied":n,"divergence_count":n,"resynced":n,"parked":n,
 *  "stopped":n,"retries":{"gen1":n,"gen2":n},"breaker":{"gen1":"closed|open","gen2":..},
 *  "failures":[{"seq","time_ms","op","path","outcome","detail"}]} (the last 100 resynced, parked or
 *  divergent operations, newest first) to out. 0 or -1. */
int mirror_status_json(mirror *m, dbuf *out);
/**
 * Stop accepting, wait up to timeout_ms for pending work; past it, queued operations end APPLY_STOPPED
 * at once and running ones at their next step (a request in flight first ends, within its timeout, or
 * when httpc_stop cancels it). Joins the workers and frees the mirror; call it while httpc runs.
 */
void mirror_stop(mirror *m, unsigned timeout_ms);

#endif
