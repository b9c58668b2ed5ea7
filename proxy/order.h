/*
 * order: the per-path fence of the write path. Two journaled writes that touch the same path are
 * never in flight to the primary at the same time: the later one (by registration order, which the
 * caller makes equal to journal seq order) waits until the earlier one has ended at the primary
 * (answered, refused, timed out or never sent). The primary therefore applies conflicting writes in
 * journal order, the order in which the secondary replays them.
 *
 * What conflicts: two writes conflict when they touch the same path, or when one touches a path
 * that lies under a path the other one covers as a whole subtree. A DELETE covers its path's
 * subtree; a RENAME covers the subtrees of its source and its destination; CONCAT and MSCONCAT
 * touch their target and each source (MSCONCAT's deleteSourceDirectory covers the sources'
 * directory). Every other write touches its own path only. Two CONCURRENTAPPENDs of the same file do
 * not conflict with each other (the primary orders those itself and the secondary re-copies the
 * file), but each conflicts with any other write of that file. Writes of unrelated paths never wait.
 *
 * Pure logic: no I/O, no clock, no locking. The caller serialises every call (the pipeline holds
 * one mutex around them) and must register writes in journal order. Waiting writes are not blocked
 * threads: ord_ready says "wait", and ord_done queues the writes it frees for ord_next_released, so
 * the caller continues them on whichever thread ended the earlier write.
 *
 * Memory: one entry per registered write and one node per path such a write touches, each freed
 * when the last write that needs it ends; nothing grows with history.
 */
#ifndef DP_ORDER_H
#define DP_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "whreq.h"

typedef struct ord ord;
typedef struct ord_write ord_write;

/** A new, empty fence. NULL when out of memory. */
ord *ord_new(void);
/** Free the fence and every write still registered in it (their ud is not touched). NULL is fine. */
void ord_free(ord *o);

/**
 * Register write wr at the end of the order and work out which earlier writes it must wait for.
 * body/blen: MSCONCAT's request body (its sources), else NULL/0. ud is handed back by
 * ord_next_released. Call ord_bind (or ord_cancel) before any other call on o. Returns 0 and *out,
 * or -ENOMEM (nothing registered).
 */
__attribute__((warn_unused_result)) int ord_add(ord *o, const whreq *wr, const char *body, size_t blen, void *ud,
                                                ord_write **out);
/** Give write w its journal seq (the key of every later call). */
void ord_bind(ord *o, ord_write *w, uint64_t seq);
/** Take back the write registered last (the journal refused it): as if it was never added. */
void ord_cancel(ord *o, ord_write *w);

/**
 * Write seq wants to go to the primary (its record is durable). true: send it now. false: it waits
 * for an earlier conflicting write; *waits_for is the latest such write's seq (for the log), and the
 * write comes out of ord_next_released once every earlier conflicting write ended. An unknown seq
 * (never registered) may go.
 */
bool ord_ready(ord *o, uint64_t seq, uint64_t *waits_for);

/**
 * Write seq ended at the primary (any answer, or no answer), or will never be sent (journal error,
 * stopping): later writes no longer wait for it. A write that ends before its own turn (it still
 * waited for others) keeps holding the writes behind it until its own turn came, so order between the
 * writes on either side of it is kept. Returns how many waiting writes this freed (queued for
 * ord_next_released). An unknown seq is ignored.
 */
unsigned ord_done(ord *o, uint64_t seq);

/** The next write freed by ord_done (in seq order within one call): its ud and *seq, or NULL. */
void *ord_next_released(ord *o, uint64_t *seq);

typedef struct ord_stats {
    uint64_t writes;   /* registered and not ended */
    uint64_t paths;    /* path nodes those writes hold */
    uint64_t waiting;  /* ready but waiting for an earlier write */
} ord_stats;
void ord_get_stats(const ord *o, ord_stats *st);

#endif
