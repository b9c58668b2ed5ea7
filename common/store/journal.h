/*
 * journal: the durable record of every write the proxy accepted, and the index of those the
 * secondary still owes. Bytes on disk: JOURNAL.md (codec: jrnl_fmt). Bodies live in the spool
 * (spool.h); a WRITE record points at its body and carries its checksum (a CRC-32C since format 1.1,
 * a SHA-256 in records of 1.0, which are still read).
 *
 * Directory: "jrnl-%016" PRIx64 ".seg" segment files (preallocated to segment_bytes, header then
 * frames) and a LOCK file. jnl_open takes an exclusive flock on LOCK (a second daemon, or an offline
 * `dualpipe journal` command while the daemon runs, gets a clear error), then recovers:
 *   - scans every segment in order (jrnl_fmt scanner), truncating a torn tail (zeroing it, so the
 *     preallocated size stays) and reporting it, and reporting corrupt stretches in the middle;
 *   - rebuilds the live index: every WRITE whose latest state is not terminal (APPLIED,
 *     PRIMARY_REFUSED, DROPPED), with its body re-attached from the spool (checksum checked: a missing
 *     or different body makes the entry body_lost; the caller resyncs such a path from the primary);
 *   - deletes segments that hold no live WRITE; new records go to a fresh segment.
 *
 * Group commit: appended records are queued in memory; one commit thread writes the queue to the
 * current segment through iox, then fdatasyncs the segment and the spool segments written since
 * (spool_take_dirty) concurrently, then runs the callbacks of everything that batch held. A record
 * queued while a commit is in flight goes into the next one, so nobody waits for more than the
 * commit in flight plus its own. A batch of only "lazy" state records (no callback waiting) is
 * written and synced within commit_lazy_ms, so applied-markers cost no extra fdatasync under load.
 *
 * An entry reaching a terminal state leaves the index once that state is durable; its body reference
 * is dropped then (freeing spool space); a segment with no live WRITE left (and not current) is
 * deleted.
 *
 * Thread-safe. Callbacks run on the commit thread; they may call any journal function except
 * jnl_close.
 */
#ifndef DP_JOURNAL_H
#define DP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"
#include "iox.h"
#include "jrnl_fmt.h"
#include "metrics.h"
#include "spool.h"
#include "whreq.h"

typedef struct journal journal;

typedef struct jnl_opts {
    const char *dir;          /* journal directory (created if missing, not its parents) */
    uint64_t segment_bytes;   /* preallocated size of a segment (0 = 64 MiB); a batch that does not
                                 fit starts the next segment */
    unsigned commit_lazy_ms;  /* lazy-only batches wait at most this (0 = 100) */
    unsigned commit_wait_us;  /* under load, a batch with waiters waits up to this for company (0 = never) */
    unsigned commit_batch;    /* ... until it holds this many waiting records (0 = 32); the wait applies only
                                 when the previous batch held at least an eighth of this many */
    iox *io;                  /* must outlive the journal */
    spool *sp;                /* bodies; must outlive the journal */
    bool verify_bodies;       /* recovery reads every live body and checks its checksum (CRC-32C or SHA-256) */
    uint64_t max_resident;    /* live entries kept whole in memory (0 = 65536); the others are compact
                                 rows, read back from their segment when needed (JOURNAL.md section 12) */
} jnl_opts;

/** What recovery found (jnl_open). */
typedef struct jnl_recovery {
    uint64_t segments;        /* segment files scanned */
    uint64_t bytes;           /* bytes of frames scanned */
    uint64_t records;         /* good records read (WRITE + STATE + unknown types) */
    uint64_t live;            /* entries rebuilt (not terminal) */
    uint64_t unknown_outcome; /* of those: primary outcome unknown (ACCEPTED or PRIMARY_UNKNOWN) */
    uint64_t bodies_lost;     /* of those: body missing or digest mismatch */
    uint64_t torn;            /* segments whose tail was torn and zeroed */
    uint64_t torn_bytes;      /* bytes zeroed */
    uint64_t corrupt;         /* damaged stretches skipped in the middle of a segment */
    uint64_t orphan_states;   /* STATE records for a WRITE not found (its segment was deleted) */
    uint64_t max_seq;         /* new records continue after this */
    double scan_seconds;      /* reading and decoding segments (the recovery rate: records / this) */
    double seconds;           /* all of recovery, bodies included */
    char problem[512];        /* first torn/corrupt finding, human readable ("" when clean) */
} jnl_recovery;

/**
 * A live entry (read-only outside journal.c; handed to callbacks under the journal's lock, so do not
 * keep the pointer). op is jfmt_op_to_whreq(jop); WH_OP_UNKNOWN for JFMT_OP_RESYNC and unknown codes.
 */
typedef struct jnl_entry {
    uint64_t seq;
    uint16_t jop;             /* on-disk op code */
    whreq_op op;
    uint16_t state;           /* latest jfmt_state */
    uint16_t status;          /* the HTTP status that came with it (0 = none) */
    uint64_t t_accept_ns;
    uint64_t t_state_ns;
    const char *path;
    const whreq_param *params;
    int nparams;
    spool_body *body;         /* NULL without a body or when body_lost */
    uint64_t body_len;
    bool body_lost;           /* had a body that recovery could not get back intact */
    const char *detail;       /* latest state's detail ("" when none) */
    const char *const *touched; /* the paths it touches, normalised: path, RENAME destination, CONCAT
                                   sources (MSCONCAT's sources are in its body: not listed) */
    int ntouched;
} jnl_entry;

/** What a new WRITE record holds. */
typedef struct jnl_write_in {
    uint16_t jop;             /* jfmt_op code (JFMT_OP_RESYNC for an operator's or a dirty mark's resync) */
    const char *path;
    const whreq_param *params;
    int nparams;
    spool_body *body;         /* finished body or NULL; the journal takes its own reference */
} jnl_write_in;

/** Durability callback: err 0 when the record is durable, else -errno (not durable; see jnl_append). */
typedef void (*jnl_done_cb)(void *ud, uint64_t seq, int err);

/** Open and recover (see above). rep (may be NULL) receives the report. 0, or -1 with err. */
int jnl_open(const jnl_opts *o, journal **out, jnl_recovery *rep, char *err, size_t errlen);
/** Let the commit thread finish what is queued (callbacks run), stop it, close. NULL is fine. */
void jnl_close(journal *j);

/**
 * Append a WRITE (state ACCEPTED) and queue it for the next commit; cb (required) runs once it is
 * durable. On a commit failure (write or fdatasync error) cb gets -errno: the record may or may not
 * be on disk, so the caller must not send it to the primary; the journal records it as
 * PRIMARY_REFUSED ("journal I/O error") and, until a commit succeeds again, refuses new appends with
 * -EIO. Returns 0 and *seq, -EINVAL (the record breaks a format limit), -EIO, -ESHUTDOWN.
 */
int jnl_append(journal *j, const jnl_write_in *in, jnl_done_cb cb, void *ud, uint64_t *seq);

/**
 * Record a new state of entry seq (detail: short operator text, truncated to JFMT_MAX_DETAIL, may be
 * NULL). Written with the next commit; cb (may be NULL: lazy) runs when durable. A terminal state
 * (APPLIED, PRIMARY_REFUSED, DROPPED) removes the entry from the index when durable and drops its
 * body. Returns 0 or -ENOENT (no such live entry), -EIO, -ESHUTDOWN.
 */
int jnl_state(journal *j, uint64_t seq, jfmt_state st, int status, const char *detail, jnl_done_cb cb, void *ud);

/**
 * An observer of every WRITE appended (the proxy's DistCp fences, proxy/fence.h): fn runs under the
 * journal's lock, after the record is queued and before any commit can take it, with the record's
 * op code and touched paths (jnl_entry.touched); it must not call the journal. It returns true when
 * it wrote to side_fd: the commit that makes the record durable then fdatasyncs side_fd too (with the
 * segment, concurrently), so what fn wrote is on disk before the record is. side_fd must stay open
 * until the hook is removed. fn NULL removes the hook; takes effect for the next append.
 */
typedef bool (*jnl_append_hook)(void *ud, uint16_t jop, const char *const *touched, int ntouched);
void jnl_set_append_hook(journal *j, jnl_append_hook fn, void *ud, int side_fd);

/** Call fn for each live entry in seq order (under the lock: fn must not call the journal). */
void jnl_foreach(journal *j, void (*fn)(void *ud, const jnl_entry *e), void *ud);
/** The smallest seq >= seq of a live entry, UINT64_MAX when none (a cursor over the index). */
uint64_t jnl_next_live(journal *j, uint64_t seq);
/** Copy out what the applier needs of entry seq: fn runs under the lock with the entry. -ENOENT if gone. */
int jnl_with_entry(journal *j, uint64_t seq, void (*fn)(void *ud, const jnl_entry *e), void *ud);

/**
 * The gate a resync of root uses to know what its copy covers: the highest seq of any record (live or
 * not) that touched root or a path under it (its path, a RENAME destination, CONCAT sources), and
 * whether one of those is still waiting for the primary (state ACCEPTED). Hashed and conservative: a
 * collision can only report a higher seq or busy, never a lower one.
 */
uint64_t jnl_path_epoch(journal *j, const char *root, bool *busy);

typedef struct jnl_stats {
    uint64_t live;            /* entries in the index */
    uint64_t pending;         /* of those: owed to the secondary (not parked) */
    uint64_t parked;
    uint64_t awaiting_primary;
    uint64_t bytes_pending;   /* body bytes of live entries */
    uint64_t oldest_ns;       /* t_accept of the oldest pending entry, 0 when none */
    uint64_t appended, applied, refused, dropped, resyncs, parked_total; /* totals since start */
    double apply_rate_10s, apply_rate_60s; /* records that became APPLIED per second, last 10 / 60 s */
    uint64_t commits, fdatasyncs, records_written, bytes_written;
    uint64_t commit_waits;    /* commits that waited for company (journal.commit_wait_us) */
    double fdatasync_seconds; /* summed */
    uint64_t segments, segments_deleted;
    uint64_t max_seq;
    bool failed;              /* the last commit failed (appends refused until one succeeds) */
    uint64_t resident;        /* live entries held whole in memory (may pass max_resident while in use) */
    uint64_t compact;         /* live entries held as a compact row only */
    uint64_t max_resident;
    uint64_t page_ins, evictions; /* totals: entries read back from their segment, entries made compact */
    uint64_t page_in_errors;  /* page-ins that failed (segment unreadable, out of memory): the call fails */
    uint64_t held;            /* of the resident: found in use by the eviction (waiting for the primary, a
                                 state queued, ...), kept out of its order until they are not */
    uint64_t evict_scans;     /* total: resident entries the eviction looked at (about one per eviction or
                                 use, however many records are resident) */
} jnl_stats;
void jnl_get_stats(journal *j, jnl_stats *st);

/**
 * Register the journal's metrics: dualpipe_journal_records{state="pending|parked|awaiting_primary"},
 * dualpipe_journal_bytes_pending, dualpipe_journal_oldest_pending_seconds, dualpipe_journal_apply_rate (records/s, last 10 s),
 * dualpipe_journal_records_total{state=...} (applied, refused, dropped, resync, parked),
 * dualpipe_journal_commits_total, dualpipe_journal_fdatasync_total,
 * dualpipe_journal_fdatasync_seconds (histogram), dualpipe_journal_segments,
 * dualpipe_io_backend{backend="io_uring|threads"} (1). m must outlive the journal. 0 or -1.
 */
int jnl_register_metrics(journal *j, metrics *m);

/** {"live":..,"pending":..,"parked":..,...,"backend":"io_uring"}: jnl_get_stats as JSON. 0 or -errno. */
int jnl_status_json(journal *j, dbuf *out);
/**
 * {"records":[{"seq","op","path","state","status","age_s","body_len","detail"}...],"more":bool}: live
 * entries with seq > after, parked ones only when parked_only, at most limit. 0 or -errno.
 */
int jnl_list_json(journal *j, bool parked_only, uint64_t after, unsigned limit, dbuf *out);

#endif
