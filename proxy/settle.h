/*
 * settle: what became of a write whose Gen1 exchange ended without an answer (the connection died
 * after the request went out, or Gen1 stayed silent past gen1.timeout_ms). The write may have been
 * applied, may not have been, or may still be applied later: the outcome is unknown. It is settled by
 * asking Gen1, never by guessing and never by sending the write again:
 *
 *   check 0, at once:         a GETFILESTATUS of the path (and of RENAME's destination). An effect
 *                             that is visible cannot be undone later (the caller holds the path's later
 *                             writes), so "applied" is final here; anything else waits for the fence.
 *   check 1, after settle_ms: the fence (gen1.settle_ms): Gen1 is taken not to apply a write so long
 *                             after its exchange ended. Applied or not applied is final; a state that
 *                             matches neither is checked once more after another settle_ms.
 *   check 2:                  still neither: the outcome stays unknown.
 *
 * What is looked at: CREATE: a file of the body's length; APPEND and CONCURRENTAPPEND: the length
 * (offset + body when the writer gave `offset`, else growth by the body's length since check 0);
 * MKDIRS: a directory; DELETE: the path gone; RENAME: the source gone and the destination there;
 * SETPERMISSION, SETOWNER, SETTIMES: the permission, owner/group, times asked for. Other ops (ACLs,
 * CONCAT, ...) cannot be judged from a FileStatus: unknown after check 1. A check Gen1 does not answer
 * counts as "neither".
 *
 * One thread waits for due checks; the checks themselves go through gen1c_get (the proxy's own Gen1
 * identity when configured, else the writer's) and are judged on the httpc thread. done runs once
 * per settle, on one of those threads, never inside stl_start.
 */
#ifndef DP_SETTLE_H
#define DP_SETTLE_H

#include <stdint.h>

#include "gen1client.h"
#include "whreq.h"

typedef struct stl stl;

typedef enum stl_verdict {
    STL_APPLIED = 1,   /* Gen1 applied the write */
    STL_NOT_APPLIED,   /* it did not, and the fence has passed */
    STL_UNKNOWN,       /* cannot be told (or the proxy is stopping) */
} stl_verdict;

const char *stl_verdict_name(stl_verdict v);

/** Start the settle thread. settle_ms: gen1.settle_ms. 0 and *out, or -errno. */
int stl_new(gen1c *g1, unsigned settle_ms, stl **out);

/**
 * Settle write wr (its op, path and parameters are copied) whose body had body_len bytes.
 * authorization: the writer's, for the checks when the proxy has no Gen1 identity of its own (copied;
 * NULL: none). done(ud, verdict) runs once. 0, or -ENOMEM / -ESHUTDOWN (done will not run).
 */
int stl_start(stl *s, const whreq *wr, uint64_t body_len, const char *authorization,
              void (*done)(void *ud, stl_verdict v), void *ud);

/** Settles begun and not finished. */
unsigned stl_pending(stl *s);

/**
 * Stop: every settle waiting for its next check ends now as STL_UNKNOWN (done runs on this thread);
 * one whose check is out at Gen1 ends so when that check comes back. New starts are refused.
 */
void stl_stop(stl *s);

/** Free (after stl_stop, and after the httpc engine stopped: no check is out any more). NULL is fine. */
void stl_free(stl *s);

#endif
