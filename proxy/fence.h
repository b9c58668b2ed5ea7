/*
 * fence: the daemon's record of which paths were written through the proxy since a DistCp plan
 * (`dualpipe backfill --plan distcp`, README "Backfill: a bulk copy with DistCp"). A bulk copier
 * that runs beside the proxy may copy an older state of a path over a newer one (it read Gen1 before
 * a live write, wrote Gen2 after the applier did) or bring back a path deleted or renamed meanwhile;
 * every such path has a journal record after the fence, so a resync of each of them once the bulk
 * copy is over (`--settle FENCE`) makes Gen2 exact. The journal forgets applied records, so this
 * module keeps its own durable evidence:
 *
 *   <journal.dir>/fence.json          the fences: instance id, and per fence its root, the journal's
 *                                     max seq when it was taken, state (open, settling, settled),
 *                                     the stretch of the log that is its own; written whole (tmp,
 *                                     fsync, rename)
 *   <journal.dir>/fence-touched.log   while a fence is open, one line per path a new journal record
 *                                     touches under an open fence's root ("N <path>" or "T <path>"
 *                                     for the whole subtree: RENAME source and destination, DELETE;
 *                                     the path percent-encoded), written by the journal's append hook
 *                                     before the record can be committed and fdatasynced by the
 *                                     commit that makes the record durable (jnl_set_append_hook).
 *                                     A path already logged since the newest fence is not logged
 *                                     again (an in-memory set of up to FENCE_DEDUP_MAX paths).
 *
 * Taking a fence also logs every record still live in the journal (their writes may reach Gen2
 * after the bulk copy read Gen1). The log is emptied when no fence is open or settling.
 * A token: "dpf1-<instance 24 hex>-<fence number>-<max seq>"; the instance id is made with the first
 * fence of a journal directory, so a token from another daemon (another journal) is refused.
 * Thread-safe; the hook runs under the journal's lock (lock order: journal, then this module).
 */
#ifndef DP_FENCE_H
#define DP_FENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"
#include "journal.h"
#include "metrics.h"

#define FENCE_TOKEN_MAX 80
#define FENCE_DEDUP_MAX (1u << 20)

typedef struct fence_reg fence_reg;

/* ---- the parsers of what comes from outside (admin queries, the log on disk); fuzzed ---- */

/** A token "dpf1-<24 lower hex>-<number>-<number>": 0 with its parts, or -1. */
int fence_token_parse(const char *token, char inst[25], uint64_t *id, uint64_t *seq);
/** One line of fence-touched.log without its '\n' ("N <path>" / "T <path>", the path percent-encoded):
 *  0 with the decoded absolute path in path (reset first) and *tree, or -1 (damaged). */
int fence_log_line_parse(const char *ln, size_t len, dbuf *path, bool *tree);
/** Read fence.json's text as fence_open would (into a scratch registry): 0 with how many fences it
 *  holds, or -1 with err. */
int fence_file_check(const char *text, size_t len, int *nfences, char *err, size_t errlen);

typedef enum fence_state { FENCE_OPEN, FENCE_SETTLING, FENCE_SETTLED } fence_state;

typedef struct fence_info {
    char token[FENCE_TOKEN_MAX];
    char root[4097];
    uint64_t seq;               /* the journal's max seq when the fence was taken */
    int64_t created_s, settled_s; /* Unix seconds (settled_s 0 until settled) */
    fence_state state;
    uint64_t start, end;        /* its stretch of the log (end: set when settling begins) */
    uint64_t resynced;          /* paths the settle had resynced (when settled) */
    char broken[300];           /* "" or why its log cannot be trusted (settle refuses) */
} fence_info;

/**
 * Load dir/fence.json (if any), open the log and install the journal's append hook. j must outlive
 * the registry. 0 and *out, or -1 with err.
 */
int fence_open(const char *dir, journal *j, fence_reg **out, char *err, size_t errlen);
/**
 * Register dualpipe_fences{state="open|settling"} (fences recording, fences being settled) and
 * dualpipe_fence_log_bytes (the touched-path log). f must outlive every scrape of m (the admin stops
 * before fence_close). 0 or -1.
 */
int fence_register_metrics(fence_reg *f, metrics *m);
/** Remove the hook, free. NULL is fine. */
void fence_close(fence_reg *f);

/** Take a fence on root (normalised). 0 and *out, or -errno with err. */
int fence_create(fence_reg *f, const char *root, fence_info *out, char *err, size_t errlen);
/**
 * The fence of token. 0, or -EINVAL (not a token), -EXDEV (another daemon's), -ENOENT (not known
 * here: dropped, or older than the FENCE_KEEP newest), each with err.
 */
int fence_get(fence_reg *f, const char *token, fence_info *out, char *err, size_t errlen);
/**
 * Begin (or resume) the settle of token: the fence stops logging, its stretch of the log ends here
 * (kept by a resumed settle). A settled fence is returned as it is. 0 or -errno (-EIO: its log is
 * broken) with err.
 */
int fence_settle_begin(fence_reg *f, const char *token, fence_info *out, char *err, size_t errlen);
/**
 * Up to limit paths of a settling fence's log from offset after (0: its start), as JSON:
 * {"paths":[{"path":"/p","tree":false},...],"next":OFFSET,"end":bool}. 0 or -errno with err.
 */
int fence_read(fence_reg *f, const char *token, uint64_t after, unsigned limit, dbuf *out, char *err,
               size_t errlen);
/** The settle of token is over: resynced paths. 0 or -errno with err. */
int fence_settled(fence_reg *f, const char *token, uint64_t resynced, char *err, size_t errlen);
/** Drop a fence (an abandoned plan): it stops logging and is forgotten. 0 or -errno with err. */
int fence_drop(fence_reg *f, const char *token, char *err, size_t errlen);
/** {"instance":..,"fences":[...],"log_bytes":N}. 0 or -ENOMEM. */
int fence_list_json(fence_reg *f, dbuf *out);
/** A fence as a JSON object (caller frees with json_decref; opaque here to keep jansson out). */
int fence_info_json(const fence_info *i, dbuf *out);

#endif
