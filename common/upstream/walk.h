/*
 * walk: the tree walker shared by `dualpipe assess` (and later backfill and verify). It lists a tree
 * one page at a time, in parallel, and hands each page to the caller's visitor.
 *
 *  - Listing is a lister callback (dir, continuation) -> one page (xlate_listing): walk_gen1_lister
 *    pages Gen1 (adls: LISTSTATUS listSize/listAfter; hadoop: LISTSTATUS_BATCH startAfter),
 *    walk_gen2_lister pages Gen2 (list paths with its continuation), so one walk can list either side.
 *  - Bounded memory whatever the tree size: the work is a stack of (directory, continuation) units,
 *    depth first (a page's subdirectories are listed before the page's continuation), so the stack
 *    stays about depth x page size; past `mem_units` units the older half is spilled to a file as a
 *    block and read back (the last block first) when the in-memory part runs empty.
 *  - A persistent cursor: every `checkpoint_ms` the workers stop between pages, and the visitor's
 *    state (its save callback) plus every pending unit are written to the cursor file (tmp + rename),
 *    so a run killed at any point resumes from the last checkpoint with exact results. A finished walk
 *    removes the cursor; a failed or interrupted one writes a final checkpoint.
 *  - Rate limit: at most ops_per_s lister and walk_get requests per second over all workers.
 *  - Retries: a failed request (no answer, 429, 5xx) is retried with backoff `retries` times; then the
 *    walk stops with the error and a cursor to resume from.
 *  - A progress line on stderr (entries, bytes, rate, ETA when total_hint is known), only when stderr
 *    is a terminal and progress is set.
 *
 * Threads: the visitor's on_page runs on the worker threads, several at once (it locks its own
 * state); save runs with every worker stopped between pages.
 */
#ifndef DP_WALK_H
#define DP_WALK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dbuf.h"
#include "gen1client.h"
#include "gen2client.h"
#include "xlate.h"

typedef struct walk walk;

/** Result of a lister call or walk_get: 0 ok, WALK_GONE (404: the directory vanished meanwhile),
 *  WALK_RETRY (a transient failure: retried by the walker), WALK_FATAL (give up at once). */
enum { WALK_OK = 0, WALK_GONE = 1, WALK_RETRY = 2, WALK_FATAL = 3 };

/** One page of dir after continuation token after ("" = first page) into out. err gets the reason. */
typedef int (*walk_lister)(void *lud, const char *dir, const char *after, xlate_listing *out, char *err,
                           size_t errlen);

/** What the walker knows of a directory when its last page is visited. */
typedef struct walk_dir {
    const char *path;
    int depth;             /* root 0 */
    uint64_t entries;      /* direct entries, all pages */
    uint64_t file_bytes;   /* bytes of the direct files, all pages */
} walk_dir;

typedef struct walk_opts {
    const char *root;          /* absolute, normalised; must be a directory */
    walk_lister list;
    void *lud;
    gen1c *g1;                 /* for walk_get (may be NULL if the visitor never calls it) */
    unsigned threads;          /* parallel listings (default 4) */
    double ops_per_s;          /* 0 = unlimited */
    unsigned retries;          /* per request (default 5) */
    unsigned retry_base_ms;    /* first backoff (default 200; doubles, capped at 5 s) */
    unsigned mem_units;        /* units held in memory before spilling (default 65536) */
    unsigned checkpoint_ms;    /* default 2000 */
    const char *cursor;        /* cursor file, or NULL: not resumable (spill to an unnamed file) */
    bool progress;             /* draw the progress line (only if stderr is a terminal) */
    uint64_t total_hint;       /* expected entries (ETA), 0 = unknown */
    const atomic_int *stop;    /* set non-zero (a signal handler, another thread) to stop at the next page */
    /* visitor */
    int (*on_page)(void *ud, walk *w, const walk_dir *dir, const xlate_listing *page, bool last, char *err,
                   size_t errlen);               /* 0, or -1 to stop the walk with err */
    json_t *(*save)(void *ud);                   /* the visitor's state for the cursor (new reference) */
    int (*load)(void *ud, const json_t *state);  /* a resumed run's state; 0 or -1 */
    void *ud;
} walk_opts;

typedef struct walk_stats {
    uint64_t entries, files, dirs, bytes;  /* listed so far (over resumed runs too) */
    uint64_t requests, retries, gone;      /* lister + walk_get calls, retries, directories gone */
    double seconds;                        /* walking time (over resumed runs too) */
    double request_seconds;                /* summed request time (mean latency = this / requests) */
    bool resumed;
} walk_stats;

typedef enum walk_result { WALK_DONE = 0, WALK_FAILED, WALK_STOPPED } walk_result;

/**
 * Walk opts->root. Resumes from opts->cursor when the file exists (its root must match). Returns
 * WALK_DONE (cursor removed), WALK_FAILED (err says why; a cursor was written when one is set and the
 * failure came during the walk) or WALK_STOPPED (opts->stop; cursor written). st gets the counters.
 */
walk_result walk_run(const walk_opts *opts, walk_stats *st, char *err, size_t errlen);

/**
 * From a visitor: one Gen1 GET (op_and_params, e.g. "op=GETACLSTATUS") of path, rate-limited and
 * retried like the listings; the answer's body (up to max bytes) into out. WALK_OK, WALK_GONE or
 * WALK_FATAL (err).
 */
int walk_get(walk *w, const char *path, const char *op_and_params, size_t max, dbuf *out, char *err, size_t errlen);

/** The Gen1 lister: lud is a walk_gen1 (the client and its dialect; page size for adls). */
typedef struct walk_gen1 {
    gen1c *g1;
    bool hadoop;
    unsigned page;             /* adls listSize (default 1000) */
    unsigned timeout_ms;
} walk_gen1;
int walk_gen1_lister(void *lud, const char *dir, const char *after, xlate_listing *out, char *err, size_t errlen);

/**
 * The Gen2 lister (list paths of one filesystem, not recursive, maxResults per page, the
 * x-ms-continuation token as the walker's continuation): lud is a walk_gen2. The walker's paths are
 * paths inside the filesystem with a leading '/' ("/" is the filesystem's root); each entry becomes a
 * {"FileStatus":{...}} as WebHDFS would give it (xlate_filestatus_json), its pathSuffix the last
 * segment of Gen2's name.
 */
typedef struct walk_gen2 {
    gen2c *g2;
    const char *fs;
    unsigned page;             /* maxResults (default 1000) */
    const char *const *skip;   /* NULL-terminated Gen2 paths ("/.dualpipe") left out of every listing (with
                                  what is below them: the walker never lists them), or NULL */
} walk_gen2;
int walk_gen2_lister(void *lud, const char *dir, const char *after, xlate_listing *out, char *err, size_t errlen);

/** One synchronous Gen1 GET with the proxy's identity: the HTTP status (0: no answer, reason in err). */
long walk_gen1_get(gen1c *g1, const char *path, const char *op_and_params, size_t max, dbuf *out, char *err,
                   size_t errlen);

#endif
