/*
 * feed: which journal records the pipeline hands to the applier, and when (the bounded window of
 * issue 9: the backlog stays in the journal, the applier holds at most `window` operations).
 *
 * Records ready for Gen2 are pushed in the order they became ready (feed_push; consecutive seqs are
 * kept as one run; feed_push_range pushes a recovered backlog as a cursor over the journal, so it costs
 * a few bytes in all). A pass
 * (feed_pass) walks them in that order and hands each over (submit) while the window has room, unless
 *   - one of its paths already has `per_path` operations in the applier (a path with a long queue, or
 *     one whose operations keep failing, takes at most that share of the window), or
 *   - one of its paths relates to a record held back earlier in this pass (same path, an ancestor or a
 *     descendant: relset.h), which keeps the order per path across the window's edge.
 * Such a record is held: it keeps its place in a second list (its seq and a reference to its group of
 * paths, shared by every held record touching the same paths, so memory grows with the number of
 * distinct blocked paths, not with their backlog) and is looked at first in the next pass. Records of
 * other paths behind it go on. The held list is bounded (held_max): once full, a pass stops at the
 * first record it would have to hold.
 *
 * The caller loads a record's paths (load: path, RENAME destination, CONCAT sources; a record whose
 * sources are not known, MSCONCAT, gives "/", which relates to everything) and hands it over
 * (submit); feed_finish tells that an operation handed over ended. Not thread-safe: the pipeline calls
 * it under its feeder's lock. No I/O of its own, so the decisions are unit-tested alone.
 */
#ifndef DP_FEED_H
#define DP_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct feed feed;

/** Fill *paths and *npaths with the paths record seq touches (valid until the next load or submit call).
 *  0, -1 when the record is gone (it leaves the feed), or 1 to end the pass now (the record stays). */
typedef int (*feed_load_fn)(void *ud, uint64_t seq, const char *const **paths, int *npaths);
/** Hand record seq to the applier. 0, or -1 when it was not taken (gone, stopping): it leaves the feed. */
typedef int (*feed_submit_fn)(void *ud, uint64_t seq);

typedef struct feed_stats {
    uint64_t queued;     /* pushed, not yet looked at */
    uint64_t held;       /* looked at and held back */
    uint64_t in_window;  /* handed over, not finished */
    uint64_t groups;     /* distinct path groups of the held records */
    uint64_t fed, held_total; /* totals */
} feed_stats;

/** window >= 1; per_path >= 1 (capped at window); held_max >= 1. NULL on ENOMEM. */
feed *feed_new(unsigned window, unsigned per_path, size_t held_max);
void feed_free(feed *f);

/** A record is ready for the applier. 0 or -ENOMEM. */
int feed_push(feed *f, uint64_t seq);
/** The first record at or after seq that may still be ready (UINT64_MAX: none); ud is feed_pass's. */
typedef uint64_t (*feed_next_fn)(void *ud, uint64_t seq);
/** n records are ready, the ones in [lo, hi] that next (feed_set_next) finds: a cursor over the journal,
 *  24 bytes however many records it covers (a recovered backlog). Every live record of the journal in
 *  [lo, hi] must be one of the n (seqs are never reused, so later writes cannot fall in). Needs
 *  feed_set_next unless the range has no gaps. 0, -EINVAL or -ENOMEM. */
int feed_push_range(feed *f, uint64_t lo, uint64_t hi, uint64_t n);
void feed_set_next(feed *f, feed_next_fn next);
/** Hand over what may go now (see above). Returns how many records were handed over. */
size_t feed_pass(feed *f, feed_load_fn load, feed_submit_fn submit, void *ud);
/** Take a record into the window without a pass (a writer waits for it: ack "both"): allowed when no
 *  record is queued or held that it could have to wait for (nothing queued, and none held relates to
 *  its paths) and none of its paths has its per-path share in the window yet; it may exceed the window. Returns true when taken (the caller submits it; feed_finish
 *  when it ends), false when it must be pushed. */
bool feed_take_now(feed *f, uint64_t seq, const char *const *paths, int npaths);
/** An operation handed over ended (any outcome). Unknown seqs are ignored. */
void feed_finish(feed *f, uint64_t seq);
/** Whether a pass could hand something over now (room in the window and records waiting, and
 *  something changed since the last pass). */
bool feed_want_pass(const feed *f);
void feed_get_stats(const feed *f, feed_stats *st);

#endif
