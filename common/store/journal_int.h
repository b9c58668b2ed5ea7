/*
 * journal_int: what the journal's files share: journal.c (the record API, views, stats),
 * journal_index.c (the live index, the gate, segment bookkeeping), journal_commit.c (the group
 * commit) and journal_recover.c (the start-up scan): the journal's struct, the live entry, the
 * segment bookkeeping and the helpers they call across. Private to those files.
 */
#ifndef DP_JOURNAL_INT_H
#define DP_JOURNAL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "journal.h"

#define JNL_ZERO_AHEAD ((uint64_t)1 << 20) /* zeros written ahead of the data end (section 10 of JOURNAL.md) */
#define JNL_RATE_SLOTS 64 /* seconds of apply history behind the apply rates */

#define JNL_PATH_MAX 4096
#define JNL_EPOCH_SLOTS (1u << 16)
#define JNL_DEFAULT_SEGMENT ((uint64_t)64 << 20)
#define JNL_DEFAULT_LAZY_MS 100u
#define JNL_QUEUE_MAX ((size_t)1 << 30) /* bound of a commit queue's buffer */

/* A journal segment file. Segments are kept on a list in seq order. */
typedef struct jseg {
    uint64_t seq;
    int fd;                 /* open for the current segment (and until it is replaced); else -1 */
    uint64_t size;          /* file size (preallocated) */
    uint64_t end;           /* where the next frame goes (data end) */
    uint64_t zeroed;        /* [0, zeroed) has been written (header, frames, zeros); commit thread only */
    uint64_t live_writes;   /* WRITEs in it whose entry is still in the index */
    uint64_t state_refs;    /* live entries whose latest durable STATE record is in it */
    uint64_t min_term_ref;  /* lowest segment seq whose WRITE a terminal STATE here ends (UINT64_MAX: none) */
    struct jseg *prev, *next;
} jseg;

/* A live entry: the public view plus bookkeeping, in one allocation with its strings (blob). */
typedef struct jent {
    jnl_entry e;
    struct jent *prev, *next;   /* seq order */
    struct jent *hnext;         /* hash chain */
    struct jent *aprev, *anext; /* the ACCEPTED set (in_accepted) */
    bool in_accepted;
    bool durable;               /* the WRITE record is durable */
    bool ending;                /* a terminal state is queued; no further states */
    jseg *wseg;                 /* segment of the WRITE record (NULL until written) */
    jseg *sseg;                 /* segment of the latest durable STATE record (NULL: none) */
    char **touched;             /* path, RENAME destination, CONCAT sources (normalised; into blob) */
    int ntouched;
    char *detail;               /* latest state's detail (malloc'd), NULL when empty */
    void *blob[];               /* e.params, touched, then the strings (pointer-aligned) */
} jent;

/* A record queued for (or in) a commit. */
typedef struct jitem {
    uint64_t seq;
    jnl_done_cb cb;             /* NULL: lazy */
    void *ud;
    uint32_t off, len;          /* its frame in the batch buffer */
    uint16_t type;              /* JFMT_T_WRITE or JFMT_T_STATE */
    uint16_t state;             /* STATE: the state */
} jitem;

typedef struct jqueue {
    dbuf buf;
    jitem *items;
    size_t n, cap;
    size_t waiters;             /* items with a callback */
    uint64_t first_waiter_ns;   /* monotonic time the first item with a callback arrived */
    bool waited;                /* the commit thread held this batch back for company */
    uint64_t first_ns;          /* monotonic time the first item arrived */
} jqueue;

struct journal {
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* the commit thread: work, or closing */
    pthread_t thread;
    bool thread_started;
    char dir[JNL_PATH_MAX];
    int dirfd, lockfd;
    uint64_t segment_bytes;
    unsigned lazy_ms;
    uint64_t wait_ns;           /* commit_wait_us in ns (0: batches with waiters go at once) */
    size_t batch_target;        /* commit_batch */
    size_t last_waiters;        /* waiters in the batch taken last (commit thread, under mu) */
    uint64_t commit_waits;      /* batches held back for company */
    iox *io;
    spool *sp;
    bool verify;

    /* index */
    jent *head, *tail;
    jent **hash;
    size_t hmask;
    uint64_t nlive, nparked, naccepted, bytes_live;
    jent *accepted;             /* the ACCEPTED set */
    uint64_t epoch[JNL_EPOCH_SLOTS];

    /* segments */
    jseg *segs, *segs_tail, *cur;
    uint64_t next_seg_seq;
    uint64_t nsegs;
    bool need_roll;             /* the next commit starts a fresh segment (after an I/O error) */

    /* group commit */
    jqueue q;
    uint64_t max_seq;
    bool closing, failed;
    uint64_t retry_at_ns;       /* after a failure: no new attempt before this (monotonic) */
    spool_seg **resync_segs;    /* spool segments whose last sync failed: synced again next time */
    int nresync, capresync;

    /* totals */
    uint64_t appended, applied, refused, dropped, resyncs, parked_total;
    uint64_t rate_sec[JNL_RATE_SLOTS];  /* applied per wall-clock second: which second a slot holds ... */
    uint32_t rate_cnt[JNL_RATE_SLOTS];  /* ... and how many records became APPLIED in it */
    uint64_t commits, fdatasyncs, records_written, bytes_written, segments_deleted;
    double fdatasync_seconds;

    /* metrics (NULL until jnl_register_metrics) */
    metrics_counter *m_applied, *m_refused, *m_dropped, *m_resync, *m_parked, *m_commits, *m_fsyncs;
    metrics_histogram *m_fsync_hist;
};

/* ---- journal.c ---- */

uint64_t jnl__now_ns(void);
int jnl__seg_path(const journal *j, uint64_t seq, char *buf, size_t len);
bool jnl__terminal(uint16_t st);

/* ---- journal_index.c ---- */

/** A new entry from a decoded WRITE (copies everything). NULL on ENOMEM. */
jent *jnl__ent_from_write(const jfmt_write *w);
void jnl__ent_free(jent *e);
/** Insert into the index (seq order, hash, ACCEPTED set when e->e.state is ACCEPTED). Under mu or single-threaded. */
int jnl__index_add(journal *j, jent *e);
/** Raise the path-epoch slots of every path a record touches (path, destination, sources). */
void jnl__epoch_touch(journal *j, uint64_t seq, const char *path, size_t plen, const jfmt_kv *kv, int nkv);
/** Append a segment to the list (in seq order). */
jseg *jnl__seg_add(journal *j, uint64_t seq, int fd, uint64_t size, uint64_t end);
/** Delete every segment the rules allow (JOURNAL.md §10). Under mu. */
void jnl__sweep_locked(journal *j);
/** The live entry seq, or NULL. Under mu. */
jent *jnl__lookup(const journal *j, uint64_t seq);
/** Change an entry's in-memory state, keeping the per-state counts. Under mu. */
void jnl__set_state(journal *j, jent *e, uint16_t st);
/** Take e out of the index and free it; its body reference goes too. Under mu. */
void jnl__index_remove(journal *j, jent *e);
/** How many of d's n bytes a detail keeps (at most JFMT_MAX_DETAIL, cut on a UTF-8 boundary). */
size_t jnl__detail_len(const char *d, size_t n);
/** Set an entry's detail to d's first n bytes (truncated as jnl__detail_len says; NULL/0: none). */
void jnl__set_detail(jent *e, const char *d, size_t n);

/* ---- journal_commit.c ---- */

/** Encode rec into the commit queue with its item (seq, callback). Under mu. 0 or -errno. */
int jnl__queue_rec(journal *j, const jfmt_rec *rec, jitem *it);
/** Queue a STATE record of seq. Under mu. 0 or -errno. */
int jnl__queue_state(journal *j, uint64_t seq, uint16_t st, int status, const char *detail, jnl_done_cb cb,
                     void *ud);
/** Make sure the current segment can take len more bytes (a fresh one otherwise). No lock held. */
int jnl__ensure_segment(journal *j, size_t len);
/** The commit thread (pthread start routine; arg is the journal). */
void *jnl__commit_main(void *arg);

/* ---- journal_recover.c ---- */

/** Scan, repair and rebuild (jnl_open's recovery). 0 or -1 with err. */
int jnl__recover(journal *j, jnl_recovery *rep, char *err, size_t errlen);

#endif
