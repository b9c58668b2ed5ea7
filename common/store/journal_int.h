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

#define JNL_DEFAULT_RESIDENT 65536u
#define JNL_PAGE_WINDOW (16u << 10)  /* bytes a page-in reads at a time (the next records come along) */
#define JNL_WALK_WINDOW (256u << 10) /* bytes a walk over every record (jnl_foreach) reads at a time */
#define JNL_FAR 0xFFFFu          /* jrow.st_dseg: the latest STATE is too far; the entry stays resident */
#define JNL_RFD_MAX 64           /* read descriptors of old segments kept open at once */
#define JNL_TRIM_ROTATE 64u      /* entries with a body held elsewhere an eviction pass moves on, at most */

/* jrow.flags */
#define JR_DEAD 1u               /* the record left the index (the row goes at the next compaction) */
#define JR_BODY_LOST 2u          /* recovery could not get its body back */
#define JR_FAR 4u                /* latest STATE location in the resident entry (st_dseg overflowed) */

/*
 * The compact tier (JOURNAL.md section 12): one row per live record whose WRITE is durable, kept in
 * the segment that holds the WRITE, in seq order. Path, parameters, status and detail are read back
 * from the WRITE frame and the latest STATE frame when the record is needed (page-in).
 */
typedef struct jrow {
    uint32_t dseq;               /* seq - the segment's row_base */
    uint32_t off8;               /* WRITE frame offset / 8 */
    uint32_t st_off8;            /* latest durable STATE frame offset / 8 */
    uint16_t st_dseg;            /* its segment's seq - this segment's seq; UINT16 0xFFFF with JR_FAR; 0 and st_off8 0: none */
    uint8_t state;               /* latest durable state */
    uint8_t flags;
} jrow;

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
    jrow *rows;             /* live durable WRITEs in it, seq order (dead ones until compaction) */
    uint32_t nrows, caprows, ndead;
    uint64_t row_base;      /* seq of rows[0] is row_base + rows[0].dseq */
    int rfd;                /* read descriptor for page-ins (-1: not open) */
    struct jseg *prev, *next;
} jseg;

/* Page-in reads: a window of one segment's durable data (cap bytes, at least a frame). */
struct jrcache {
    jseg *g;
    uint64_t base;
    uint32_t len, cap;
    uint8_t *buf;
};

/* A live entry: the public view plus bookkeeping, in one allocation with its strings (blob). */
typedef struct jent {
    jnl_entry e;
    struct jent *prev, *next;   /* the fresh list (WRITE not durable yet), seq order */
    struct jent *lprev, *lnext; /* the eviction order (least recently used first), or the held list when held */
    struct jent *hnext;         /* hash chain */
    struct jent *aprev, *anext; /* the ACCEPTED set (in_accepted) */
    bool in_accepted;
    bool durable;               /* the WRITE record is durable (it has a row) */
    bool ending;                /* a terminal state is queued; no further states */
    bool in_fresh;              /* on the fresh list (no row yet) */
    bool far;                   /* its latest STATE is too far from its WRITE for a row: stays resident */
    bool held;                  /* on the held list: the journal needs it whole (jnl__release puts it back) */
    uint32_t nqueued;           /* its STATE records queued, not yet durable (resident while > 0) */
    jseg *wseg;                 /* segment of the WRITE record (NULL until written) */
    uint64_t woff;              /* WRITE frame offset in wseg */
    jseg *sseg;                 /* segment of the latest durable STATE record (NULL: none) */
    uint64_t st_off;            /* its frame offset */
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

    /* index: the resident tier (jent, hashed) and the compact tier (rows in the segments) */
    jent *head, *tail;          /* fresh entries (WRITE not durable), seq order */
    jent *lru, *lru_tail;       /* resident entries that may be evicted, least recently used first */
    jent *held;                 /* resident entries the eviction found in use (not in the order above) */
    jent **hash;
    size_t hmask;
    uint64_t nlive, nparked, naccepted, bytes_live;
    uint64_t nresident, max_resident, evictions, page_ins, page_in_errors;
    uint64_t nheld, evict_scans; /* entries on the held list; entries the eviction looked at (total) */
    uint64_t oldest_seq, oldest_ns; /* cache of the oldest pending entry's t_accept */
    jnl_stats gsnap;               /* the gauges' snapshot (metrics scrape), under mu ... */
    uint64_t gsnap_ns;             /* ... taken at this time (0: none yet) */
    int nrfd;                   /* segments with rfd open */
    struct jrcache pcache[2];   /* page-in reads: [0] WRITE frames, [1] STATE frames */
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

    /* the append hook (jnl_set_append_hook) and the file it writes, synced with the next commit */
    jnl_append_hook hook;
    void *hook_ud;
    int side_fd;                /* the journal's duplicate of the hook's file, -1 when none */
    int side_retired;           /* the previous one (a commit in flight may still sync it) */
    bool side_dirty;

    /* totals */
    uint64_t appended, applied, refused, dropped, resyncs, parked_total;
    uint64_t rate_sec[JNL_RATE_SLOTS];  /* applied per wall-clock second: which second a slot holds ... */
    uint32_t rate_cnt[JNL_RATE_SLOTS];  /* ... and how many records became APPLIED in it */
    uint64_t commits, fdatasyncs, records_written, bytes_written, segments_deleted;
    double fdatasync_seconds;

    /* metrics (NULL until jnl_register_metrics) */
    metrics_counter *m_applied, *m_refused, *m_dropped, *m_resync, *m_parked, *m_commits, *m_fsyncs, *m_page_ins;
    metrics_histogram *m_fsync_hist;
};

/* ---- journal.c ---- */

uint64_t jnl__now_ns(void);
int jnl__seg_path(const journal *j, uint64_t seq, char *buf, size_t len);
bool jnl__terminal(uint16_t st);

/* ---- journal_index.c ---- */

/** A new entry from a decoded WRITE (copies everything). NULL on ENOMEM. */
jent *jnl__ent_from_write(const jfmt_write *w);
/** The body checksum a decoded WRITE record carries: a CRC-32C (flag JFMT_WF_CRC32C) or a SHA-256 (1.0). */
void jnl__write_sum(const jfmt_rec *rec, spool_sum *sum);
void jnl__ent_free(jent *e);
/** Insert into the index (seq order, hash, ACCEPTED set when e->e.state is ACCEPTED). Under mu or single-threaded. */
int jnl__index_add(journal *j, jent *e);
/** Count a live record of the compact tier (recovery: it has a row, no entry). */
void jnl__index_count(journal *j, uint16_t state, uint64_t body_len);
/** Raise the path-epoch slots of every path a record touches (path, destination, sources). */
void jnl__epoch_touch(journal *j, uint64_t seq, const char *path, size_t plen, const jfmt_kv *kv, int nkv);
/** Append a segment to the list (in seq order). */
jseg *jnl__seg_add(journal *j, uint64_t seq, int fd, uint64_t size, uint64_t end);
/** Delete every segment the rules allow (JOURNAL.md §10). Under mu. */
void jnl__sweep_locked(journal *j);
/** The resident entry seq, or NULL. Under mu. */
jent *jnl__lookup(const journal *j, uint64_t seq);
/** The live entry seq, paged in from its row when not resident (and made resident). NULL when not
 *  live; *err (may be NULL) then says -ENOENT, or -EIO / -ENOMEM when the page-in failed. Under mu. */
jent *jnl__get(journal *j, uint64_t seq, int *err);
/** The row of seq in its segment (dead rows too), or NULL. */
jrow *jnl__row(const journal *j, uint64_t seq, jseg **gout);
/** Add a row for a durable WRITE at frame offset off of g (rows are appended in seq order). 0 or -ENOMEM. */
int jnl__row_add(jseg *g, uint64_t seq, uint64_t off, uint8_t state, uint8_t flags);
/** Point row r (of segment g) at its latest durable STATE (segment s, offset off); false when too far. */
bool jnl__row_state(jseg *g, jrow *r, const jseg *s, uint64_t off, uint8_t state);
/** A live entry from row r of g (not in the index), with a body reference when body is set, read
 *  through cache[0] (WRITE frames) and cache[1] (STATE frames). 0 or -errno. */
int jnl__row_load(journal *j, jseg *g, const jrow *r, bool body, struct jrcache *cache, jent **out);
/** e's WRITE is durable: it gets its row. Under mu. */
void jnl__made_durable(journal *j, jent *e);
/** A durable non-terminal STATE of e at off of segment s. Under mu. */
void jnl__state_durable(journal *j, jent *e, jseg *s, uint64_t off, uint16_t st);
/** Make a paged-in entry resident (it has a row). Under mu. */
void jnl__resident_add(journal *j, jent *e);
/** Evict resident entries past max_resident to the compact tier (those that may go). Under mu. */
void jnl__trim_locked(journal *j);
/** Mark a resident entry as used (moves to the end of the eviction order). Under mu. */
void jnl__touch(journal *j, jent *e);
/** e may no longer be in use (made durable, a queued STATE became durable or failed): when it is held
 *  and no longer in use, it goes back to the end of the eviction order. Under mu. */
void jnl__release(journal *j, jent *e);
/** Drop the read descriptors and caches of g (it is going). Under mu. */
void jnl__seg_forget(journal *j, jseg *g);
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
