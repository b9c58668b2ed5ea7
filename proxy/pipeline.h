/*
 * pipeline: the write path's durable middle (proxy/ARCHITECTURE.md "The write path, step by step"). It owns
 * the I/O engine (common/iox), the spool (common/spool), the journal (common/journal) and the
 * applier, and ties them together:
 *
 *   front: pipe_body_begin   -> a spool region for the body (or 503 under spool.policy "reject")
 *          pipe_accept       -> a WRITE record, durable by group commit, then the caller sends to Gen1
 *          pipe_primary      -> Gen1's answer: refused -> record aborted (Gen2 never sees it);
 *                               accepted -> handed to the applier (ack "both": the caller's ack
 *                               callback waits for the first Gen2 attempt); no answer after the
 *                               request went out (timeout, reset) -> settled by asking Gen1 after
 *                               gen1.settle_ms while the path's later writes wait (settle.h):
 *                               applied -> replayed, not applied -> refused, unknown -> resynced
 *   applier outcome          -> APPLIED / PARKED state in the journal (terminal states free the body)
 *
 * Two directions at once: every record says which side it is applied to (PIPE_PARAM_TO=PIPE_TO_GEN1: the
 * mirror, Gen2 -> Gen1; without it: the applier, Gen1 -> Gen2). A new write's direction follows the phase
 * it was admitted in (pipe_accept), an operator's resync the pipeline's current phase (pipe_set_phase).
 * Both engines run side by side: the applier always, the mirror whenever gen1.endpoint is set. Each
 * record goes to its own engine at every submission (fresh, recovered, retried, resynced), whatever the
 * phase, through one feed window that hands a path's records over in journal order whichever side each
 * is for (each engine then keeps that order for its own store). pipe_owed counts what each side still
 * owes: a phase switch waits until the new primary is owed nothing, so records of both sides meet on one
 * path only around a switch.
 *
 * On start (pipe_open) the journal recovers and every live record goes back to its engine: records
 * whose primary outcome is unknown, whose body was lost, RESYNC records and the first pending APPEND
 * without an offset per path (it may have been in flight) as resyncs; the rest are replayed with
 * their idempotency checks. PARKED records wait for an operator. A start refuses only when records for
 * Gen1 are live and no Gen1 is configured.
 *
 * Order: two writes that touch the same path (or one is a DELETE/RENAME of an ancestor of the other's
 * path) are never in flight to Gen1 together: the later one by seq waits, without a thread, until the
 * earlier one's answer (or its end without one), so Gen1 applies them in journal order, the order the
 * applier replays (see pipeline.c and order.h for the rules, CONCURRENTAPPEND's exemption and the
 * treatment of unknown outcomes).
 *
 * Records reach the applier through a bounded window (feed.h; applier.max_in_memory, of which at most
 * applier.max_per_path touch one path): the feeder thread loads the next ones from the journal as
 * operations finish, so a backlog of any length costs the applier no more than the window. How a
 * record is handed over (replay or resync) follows from its journal state. A fresh write goes straight
 * in when nothing waits before it (with ack "both", even past the window: bounded by the writers);
 * otherwise it queues, and a writer waiting on it (ack "both") is answered at its first Gen2 attempt as
 * usual, or at pipe_stop.
 *
 * Spool cap (spool.max_bytes): under "reject" a new body that would pass it gets 503 + Retry-After
 * before anything reaches Gen1; under "degrade" the write goes through as usual, but once Gen1
 * accepted it the record turns into a durable RESYNC mark and its body is freed: Gen2 gets the path
 * from Gen1 later instead of the bytes.
 *
 * Operator commands (admin API and `dualpipe journal`): status, list, retry (a parked record becomes
 * a resync again), drop (a parked record is given up, recorded as DROPPED), resync PATH (a RESYNC
 * record).
 *
 * Thread-safe; callbacks run on the journal's commit thread or the httpc thread, never inside the call
 * that registered them.
 */
#ifndef DP_PIPELINE_H
#define DP_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "applier.h"
#include "cfg.h"
#include "dbuf.h"
#include "gen1client.h"
#include "httpc.h"
#include "journal.h"
#include "metrics.h"
#include "settle.h"
#include "spool.h"
#include "whreq.h"

typedef struct pipeline pipeline;

/* A record applied to Gen1 (by the mirror) carries PIPE_PARAM_TO=PIPE_TO_GEN1; one without it is applied to
 * Gen2 (by the applier), as every record journaled before the parameter existed. */
#define PIPE_PARAM_TO "dualpipe.to"
#define PIPE_TO_GEN1 "gen1"
/* The PRIMARY_OK detail of an APPEND in gen2-primary: "<this> dualpipe.offset=N" (N: Gen2's length before
 * it), of a CREATE "<this> dualpipe.mtime=MS"; pipeline.c turns them back into the mirror's
 * MIRROR_PARAM_OFFSET / MIRROR_PARAM_MTIME at every submission. */
#define PIPE_DETAIL_LANDED "landed on the primary at"

/**
 * Start: iox (journal.io; the backend in use is logged, with the reason for a fallback), spool
 * ("<spool.dir>/data"), journal (journal.dir) with recovery (logged: records, rate, torn tail,
 * corruption), applier, the mirror when gen1.endpoint is set, then resubmit the recovered records (each to
 * its side's engine). The phase operator resyncs follow starts as cfg->phase. m must outlive the
 * pipeline. Returns 0, or -1 with a message in err (naming the config key at fault where there is one;
 * journal.dir when it holds records for Gen1 and no Gen1 is configured).
 */
int pipe_open(const dp_config *cfg, httpc *http, gen1c *g1, metrics *m, pipeline **out, char *err, size_t errlen);

/** What pipe_body_begin decided. */
typedef enum pipe_admit { PIPE_ADMIT_OK = 0, PIPE_ADMIT_DEGRADED, PIPE_ADMIT_REJECT, PIPE_ADMIT_ERROR } pipe_admit;

/**
 * A spool region for a body of expect_len bytes (UINT64_MAX: unknown, up to max_len). OK: *out
 * holds one reference. DEGRADED: the same, but the spool is over its cap (policy degrade): pass
 * degraded=true to pipe_accept. REJECT: over the cap under policy reject (answer 503 with
 * Retry-After; nothing was reserved). ERROR: the spool cannot take it (disk error; answer 503).
 */
pipe_admit pipe_body_begin(pipeline *p, uint64_t expect_len, uint64_t max_len, spool_body **out);

/**
 * Result of pipe_accept's durability callback: err 0 (send to Gen1 now) or -errno (answer 503, do not
 * send). It runs on the journal's commit thread, or, for a write that waited for an earlier write of
 * the same path, on the thread that ended that one (usually the httpc thread, inside pipe_primary).
 */
typedef void (*pipe_durable_cb)(void *ud, uint64_t seq, int err);

/**
 * Journal a write (wr: the parsed request; request_id: its rid.h id, kept with the record so that
 * every request to the secondary for it carries the id, also after a restart; body: finished, or NULL)
 * and call durable once the record is durable. phase: the phase the write was admitted in, which gives
 * the record's direction: gen1-primary -> applied to Gen2 (applier), gen2-primary -> applied to Gen1
 * (mirror); gen2-only journals nothing (-EINVAL). Parameters that carry a credential (delegation tokens)
 * are not written to the journal: the secondary never gets them, and nothing on disk may hold a
 * writer's secret. Returns 0 and *seq, or -errno (-EINVAL: the request breaks a journal limit, or phase
 * gen2-only, answer 400; -ENOTSUP: gen2-primary without a Gen1 configured; -EIO/-ESHUTDOWN: answer 503).
 * Read ops must not come here.
 */
int pipe_accept(pipeline *p, cfg_phase phase, const whreq *wr, const char *request_id, spool_body *body,
                bool degraded, pipe_durable_cb durable, void *ud, uint64_t *seq);

/** Gen1's answer to a journaled write. */
typedef struct pipe_primary_result {
    enum { PIPE_P_OK, PIPE_P_REFUSED, PIPE_P_UNKNOWN } kind; /* 2xx / other status / no answer */
    int status;                    /* Gen1's status (0 when no answer) */
    const char *gen1_body;         /* Gen1's JSON answer or NULL */
    bool changed_nothing;          /* MKDIRS/RENAME/DELETE answered {"boolean": false}: like refused */
    const char *authorization;     /* writer's Authorization, for Gen1 look-ups on its behalf, or NULL */
    /* PIPE_P_UNKNOWN (the request went out, its answer was lost): with wr and settled given, the outcome
     * is settled by asking Gen1 (settle.h) while the path's later writes wait, and settled(ud, verdict)
     * then gives the writer its answer (pipe_primary returns 0). */
    const whreq *wr;
    uint64_t body_len;
    void (*settled)(void *ud, stl_verdict v);
    /* gen2-primary, an accepted APPEND/CONCURRENTAPPEND: where its bytes landed on the primary (the file's
     * length before it); journaled with the answer and given to the mirror (MIRROR_PARAM_OFFSET) */
    bool has_offset;
    uint64_t offset;
    /* gen2-primary, an accepted CREATE: the new file's modification time on the primary (ms), journaled
     * the same way and given to the mirror (MIRROR_PARAM_MTIME: set on Gen1, recognises a landed replay) */
    bool has_mtime;
    uint64_t mtime_ms;
} pipe_primary_result;

/**
 * Record Gen1's answer for seq (see the file comment). With ack "both" and an accepted write, acked
 * runs when the first Gen2 attempt ended; otherwise it is not called and the function returns 1
 * ("answer now"). An unknown outcome with res->settled is settled first: res->settled(ud, verdict)
 * runs once that is done (acked is then not called). Returns 0 when acked or settled will run, 1 when
 * the caller answers at once.
 */
int pipe_primary(pipeline *p, uint64_t seq, const pipe_primary_result *res, void (*acked)(void *ud), void *ud);

/* ---- operator commands (admin API, `dualpipe journal`) ---- */

/** {"journal":{jnl_status_json},"spool":{...},"ack":..,"applier":{...},"phase":"..","owed":{"gen1":N,"gen2":N},
 *  "mirror":{...} (when the mirror exists),"io_backend":"..","recovery":{...}} */
int pipe_status_json(pipeline *p, dbuf *out);
/**
 * The per-path fence: {"waits_total":N (writes that waited),"waiting":N (now),"wait_seconds_sum":S,
 * "writes_in_flight":N (registered, not answered by Gen1 yet),"paths_held":N,"settling":N (writes whose
 * lost Gen1 answer is being settled, holding their paths)}. 0 or a dbuf error.
 */
int pipe_order_json(pipeline *p, dbuf *out);
/** jnl_list_json, each record with "to":"gen1"|"gen2" (the side it is applied to). */
int pipe_list_json(pipeline *p, bool parked_only, uint64_t after, unsigned limit, dbuf *out);
/** The same on any journal (the offline `dualpipe journal list`). 0 or -errno. */
int pipe_jnl_list_json(journal *j, bool parked_only, uint64_t after, unsigned limit, dbuf *out);
/** True when a record's parameters say it is applied to Gen1 (PIPE_PARAM_TO=PIPE_TO_GEN1). */
bool pipe_params_to_gen1(const whreq_param *params, int nparams);
/** Retry parked record seq (0: all parked): each becomes a resync again. *n: how many. 0 or -ENOENT. */
int pipe_retry(pipeline *p, uint64_t seq, unsigned *n);
/** Drop parked record seq (recorded as DROPPED); *to_gen1 (may be NULL) says which side it was for. 0,
 *  -ENOENT (no such live record), -EBUSY (not parked). */
int pipe_drop(pipeline *p, uint64_t seq, bool *to_gen1);
/** Queue a resync of path (a RESYNC record in the direction of the current phase, pipe_set_phase: in
 *  gen2-primary the mirror copies it Gen2 -> Gen1, otherwise the applier copies it Gen1 -> Gen2). 0 and
 *  *seq, or -errno. */
int pipe_resync(pipeline *p, const char *path, uint64_t *seq);
/**
 * The same with node_only: a directory is copied without its subtree (created or updated in place with
 * its metadata; its entries are neither copied nor swept): `dualpipe backfill` copies the entries one
 * by one after it. The record carries the parameter APPLY_RESYNC_NODE_ONLY (applier.h).
 */
int pipe_resync_node(pipeline *p, const char *path, bool node_only, uint64_t *seq);

/**
 * The phase the pipeline follows for what is not a writer's record: the direction of operator resyncs
 * (pipe_resync, pipe_resync_node: verify --repair, backfill copies) and pipe_to_gen1. Records already
 * journaled keep their own direction. Atomic; pipe_open starts with cfg->phase. 0, or -ENOTSUP for
 * gen2-primary without a mirror (no Gen1 configured), -EINVAL for an unknown phase.
 */
int pipe_set_phase(pipeline *p, cfg_phase ph);
/** The phase last set (pipe_set_phase, or cfg->phase). */
cfg_phase pipe_phase(const pipeline *p);
/** True in phase gen2-primary (pipe_set_phase): operator resyncs copy Gen2 -> Gen1. */
bool pipe_to_gen1(const pipeline *p);
/**
 * Live journal records still to be applied to one side (to_gen1: Gen1, else Gen2): accepted and not
 * durable yet, waiting for the primary, pending, in flight, parked, resyncs. 0: that side holds
 * everything the journal has for it. O(1) (counters kept at every record's creation and end).
 */
uint64_t pipe_owed(pipeline *p, bool to_gen1);
/** The mirror's mirror_status_json ("null" while stopping). 1 without a mirror (nothing written), 0, or a
 *  dbuf error. */
int pipe_mirror_status_json(pipeline *p, dbuf *out);

/** The applier (admin /admin/status) and the journal (metrics). */
applier *pipe_applier(pipeline *p);
journal *pipe_journal(pipeline *p);

/**
 * Stop: new accepts are refused (-ESHUTDOWN) and both engines drain, together, for up to drain_ms (what
 * is left stays in the journal for the next start). Call while httpc still runs (like applier_stop). Then
 * httpc_stop, then pipe_free: the journal commits what is queued (outcomes that arrived meanwhile)
 * and closes, then the spool and the I/O engine.
 */
void pipe_stop(pipeline *p, unsigned drain_ms);
void pipe_free(pipeline *p);

#endif
