/*
 * applier_int: what the applier's files share (proxy/applier.c: queue, outcomes, metrics, public API;
 * applier_send.c: timers, backoff, breakers, sending; applier_sched.c: preparation, ordering, APPEND
 * groups, the worker; applier_state.c: the per-file cache and the metadata marks;
 * applier_copy.c: copying from Gen1 (metadata, missing ancestors, data chunks, re-copies);
 * applier_resync.c: copying whole subtrees from Gen1, and resyncs (gate, covers, parking);
 * applier_ops.c: the per-operation state machines). Not part of the applier's interface (applier.h);
 * every symbol here carries the ap_ prefix (types: aop and ap_*).
 *
 * Threads: an operation's own fields are touched only by whoever runs its current step (the worker
 * thread when it starts or re-sends, else the httpc thread in an answer handler); the applier's shared
 * fields (lists, counters, breakers, covers, cache) are under a->mu.
 */
#ifndef DP_APPLIER_INT_H
#define DP_APPLIER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "applier.h"
#include "dgcache.h"
#include "gen2client.h"
#include "metrics.h"
#include "relset.h"
#include "spool.h"
#include "xlate.h"

#define AP_CONC_MAX 1024            /* upper bound of applier.concurrency (the worker's batch array) */
#define AP_SCAN_MAX 512             /* later operations looked at for a superseding CONCURRENTAPPEND */
#define AP_GROUP_SCAN 4096          /* operations looked at when gathering an APPEND group */
#define AP_GROUP_OPS 256            /* APPENDs coalesced into one flush at most ... */
#define AP_GROUP_BYTES (64ull << 20) /* ... and their bytes */
#define AP_PACK_SMALL (1u << 20)    /* extents smaller than this are packed into one append request ... */
#define AP_PACK_MAX (4u << 20)      /* ... of at most this many bytes */
#define AP_COVERS_MAX 1024          /* resyncs remembered for covering later operations */
#define AP_GATE_WAIT_MS 50          /* a busy gate is asked again after 50, 100, 200, 200 ... ms */
#define AP_GATE_WAIT_MAX_MS 200
#define AP_RESYNC_REDOS 20          /* copies of one root redone because a write came in meanwhile */
#define AP_RESYNC_ROOTS 64          /* roots of one resync (a CONCAT's sources) */
#define AP_RING 100                 /* divergences / failures kept for the admin API */
#define AP_JSON_MAX (1u << 20)      /* Gen1 JSON answers read into memory */
#define AP_CONCAT_BODY_MAX (1u << 20)
#define AP_PATH_CAP 4200            /* a Gen2 path (1024 chars, up to 4 bytes each, plus prefix) */
#define AP_CACHE_BUCKETS 1024
#define AP_CACHE_MAX 4096
#define AP_MARKS_MAX 65536          /* paths whose metadata copy waits for a later rename */
#define AP_RESYNC_CONC 8            /* nodes of one subtree copy in progress at once */
#define AP_LIST_PAGE 256            /* LISTSTATUS listSize of a subtree copy */
#define AP_LIST_MAX (8u << 20)      /* a LISTSTATUS answer (also when Gen1 ignores listSize) */
#define AP_TMP_PREFIX ".dualpipe-resync-" /* reserved names: a copy's temporary file next to its target */

/* A request id for a log line ("-" when the record has none). */
#define AP_RID(q) ((q)->request_id[0] ? (q)->request_id : "-")

typedef struct aop aop;
typedef void (*ap_handler)(aop *op, httpc_resp *r);
typedef void (*ap_step)(aop *op);
typedef struct ap_resync ap_resync;   /* a subtree copy from Gen1 (applier_resync.c) */
typedef struct ap_rsnode ap_rsnode;   /* one node of it still to copy */
typedef struct ap_ids ap_ids;         /* the identity map and what it could not map (applier_ids.c) */
typedef struct ap_copy ap_copy;       /* a ranged file copy from Gen1 (applier_range.c) */

/* A byte range of a file that goes to Gen2 (a body, or a re-copy's spool file). */
typedef struct ap_ext {
    int fd;
    uint64_t off, len;
    const spool_body *body; /* the record body the range is, whole (its CRC-32C is known), or NULL */
} ap_ext;

/* A Gen1 path and where it lands on Gen2 (same filesystem as the operation). */
typedef struct ap_node {
    char *g1;
    char *g2;
    char *status;                   /* metadata copies: its {"FileStatus":..} already read, or NULL */
} ap_node;

struct aop {
    applier *a;
    apply_req *req;
    void (*done)(void *ud, const apply_result *res);
    void *ud;
    aop *prev, *next;               /* a->head..tail, submission order */
    aop *qnext;                     /* incoming queue / timer list / breaker wait list / ready list */
    int64_t due_ms;                 /* timer list: when to re-send (or to run wake) */
    ap_step wake;                   /* timer list: run this step when due instead of re-sending */
    int64_t t0_ms;                  /* when it was submitted (monotonic) */
    bool started;                   /* running, or taken into another operation's APPEND group */
    bool counted;                   /* counted in a->in_flight */
    bool first_done;                /* req->first ran (atomic exchange: pieces of a copy may race) */
    aop *leader;                    /* a member of an APPEND group: the operation sending its bytes */
    aop **grp;                      /* a group's leader: the members, in order (not owned) */
    int ngrp;
    char **touch;                   /* Gen1 paths this operation touches (ordering) */
    int ntouch;
    char prep_err[256];             /* preparation failed: finish with this */

    char fs[64];
    char *g2path;                   /* the operation's path on Gen2 */
    char *g2dst;                    /* RENAME: the destination's path on Gen2 */
    char fs2[64];                   /* RENAME: the destination's filesystem */
    char *g1status;                 /* {"FileStatus":..} of req->path already read from Gen1, or NULL */

    /* the request in flight */
    bool is_g1;
    bool probe;                     /* this send is the circuit breaker's probe */
    bool fs_probe;                  /* ... the probe of its filesystem's breaker (account-level problem) */
    int attempt;                    /* sends of the current request so far */
    xlate_g2req rq;
    const char *rq_fs;              /* its filesystem (op->fs unless the step said otherwise) */
    const char *rq_path;            /* Gen2 path (points into op-owned memory) */
    httpc_body_in in;
    const void *in_mem;
    int in_fd;
    uint64_t in_off, in_len;
    ap_handler on;
    char *g1_path;                  /* Gen1 look-up */
    char *g1_query;
    httpc_body_out g1_out;
    size_t g1_max;                  /* HTTPC_BODY_MEMORY limit of the look-up */
    int g1_fd;

    /* data: the extents ext[] go to Gen2 back to back at pos0.. then the flush */
    ap_ext *ext;
    int next_ext, ext_i;            /* extents used / the one being sent */
    uint64_t ext_done;              /* bytes of ext[ext_i] sent */
    uint64_t data_len, pos0, sent;
    char *pack;                     /* small extents packed into one request (in_mem) */
    xlate_flush flush;
    ap_step after_data;
    bool len_from_cache;
    ap_step on_stale;               /* the first append was refused and pos0 came from the cache: run this
                                       (after dropping the cached length) instead of failing */

    /* digests (applier_digest.c) */
    uint32_t dcrc;                  /* CRC-32C of the bytes the data step sent from pos0 on, ... */
    bool dcrc_ok;                   /* ... while this holds (false: no data step yet, or a spool read failed) */
    bool dcrc_given;                /* the step's CRC was known before it started (ap_data_run_crc): ... */
    uint32_t dcrc_step;             /* ... this, of all data_len bytes, goes into dcrc when the last is sent */
    char *dg_etag;                  /* ETag of the flush that ended the data step (If-Match of the digest's write) */
    bool dg_known;                  /* the file's digest once this operation is done: dg_crc of dg_len bytes */
    uint32_t dg_crc;
    uint64_t dg_len;
    const char *dg_g2;              /* the Gen2 path whose metadata copy writes it (op-owned memory), or NULL */
    char *dg_props;                 /* the x-ms-properties that metadata copy (or a burst's write) set there */
    int64_t dg_written_ms;          /* an APPEND's end: when the file's property was last written (0 unknown) */

    /* new nodes whose metadata is copied from Gen1 (missing ancestors top-down, then the node) */
    ap_node *meta;
    int nmeta, meta_i;
    xlate_meta m;
    xlate_g2req mreq[XLATE_META_REQS];
    int nmreq, mreq_i;
    ap_step after_meta;
    ap_node probe_node;             /* ancestor being probed */

    /* re-copies */
    ap_copy *cp;                    /* the ranged file copy in progress (owned) */
    int tmpfd;
    ap_step after_copy;             /* ap_copy_file: what follows the copy */
    xlate_paths srcs;
    char *srcdir;

    /* subtree copies (applier_resync.c) */
    ap_resync *rs;                  /* the copy this operation runs (owned) */
    ap_resync *job;                 /* set on a piece of a copy: the copy it belongs to (not owned) */
    ap_rsnode *rsn;                 /* that piece's node (owned) */
    char rs_copied;                 /* the piece copied a file ('f') or a directory ('d') */
    char *rs_root;                  /* RENAME Gen2 cannot do: the Gen1 path copied */
    gen2c_map_result xsrc, xdst;    /* RENAME: how source and destination map */
    char xwhy[128];                 /* RENAME: why Gen2 would reject the destination's name */

    /* resync of the operation's paths (ap_op_resync) */
    bool resyncing;
    bool copy_applies;              /* the resync IS the operation (CONCAT, MSCONCAT, CONCURRENTAPPEND: Gen2 has
                                       no such op): it ends as applied, not as resynced */
    bool rs_tail;                   /* an in-doubt APPEND: settle by lengths (a tail copy) when Gen2 holds
                                       a prefix of Gen1's file, a whole copy only otherwise */
    char **rs_roots;
    int nrs_roots, rs_i;
    uint64_t rs_e1;                 /* the gate's epoch of the current root before its copy */
    int rs_gate_waits, rs_redos, rs_fails;
    char why[300];                  /* why it is resynced */
    char rs_sum[512];               /* what the copies did, for the detail */

    bool rename2, overwrite, dst_dir;
    bool fix_ancestors;             /* the ancestor probe copies Gen1's metadata to existing parents too */
    int rmw;                        /* ACL read-modify-write rounds */
    char *cont;                     /* x-ms-continuation */
    /* identities (applier_ids.c) */
    bool ids_owed;                  /* resync-later: some metadata waits for the identity map */
    char ids_what[200];             /* which names (the first met) */
    bool ids_spec_done;             /* ACL ops: the writer's aclspec went through the map ... */
    bool ids_spec_empty;            /* ... and nothing of it was left */
    char *ids_spec;                 /* ... into this */
    apply_outcome outcome;
    char detail[512];
};

typedef struct ap_rec {
    uint64_t seq;
    int64_t time_ms;
    whreq_op op;
    char path[512];
    char detail[512];
} ap_rec;

typedef struct ap_ring {
    ap_rec r[AP_RING];
    int next, n;
} ap_ring;

/* Metrics (applier_register_metrics); all NULL (no-ops) without a registry. */
#define AP_NCLASS 6                 /* no answer, 1xx .. 5xx */
typedef struct ap_metrics {
    metrics *m;
    _Atomic(metrics_counter *) ops[WH_OP__COUNT][APPLY__COUNT]; /* created on first use */
    metrics_histogram *lag;
    metrics_counter *answers[2][AP_NCLASS];                    /* [0] Gen1 look-ups, [1] Gen2 */
    metrics_counter *retries[2];
    metrics_counter *copied[2];                                /* subtree copies: files, directories */
    metrics_counter *trips[2];                                 /* breaker opened */
    metrics_counter *coalesced;
    metrics_counter *digest[4];                                /* AP_DG_*: what the end of an APPEND burst did */
} ap_metrics;

enum { AP_DG_WRITTEN, AP_DG_DEFERRED, AP_DG_UNKNOWN, AP_DG_FAILED };

/*
 * Circuit breaker of one upstream ([0] Gen1 look-ups, [1] Gen2), under a->mu. The Gen2 breaker also
 * opens at once for an account-level problem of the whole account (authentication, account not found,
 * unreachable: problem says which). Each mapped filesystem has a breaker of its own (a->fsbrk) that
 * only account-level problems of that filesystem open (filesystem not found, authorization): its
 * probe is the first held operation, re-sent every applier.breaker_probe_ms from the timer list.
 */
typedef struct ap_breaker {
    unsigned fails;                 /* transient failures in a row */
    bool open;
    bool probing;                   /* the probe is in flight */
    int64_t next_probe_ms;
    aop *wait_head, *wait_tail;     /* sends held back while open, in order */
    struct applier *a;              /* (gauge callback) */
    gen2c_problem problem;          /* the account-level problem holding it open, or GEN2C_PROB_NONE */
    char problem_detail[200];       /* what Gen2 answered, for /readyz and the status */
    int64_t problem_since_ms;       /* wall clock */
    char fs[64];                    /* a filesystem's breaker: the filesystem ("" for [0], [1]) */
    bool checking;                  /* a filesystem check (applier_gen2_check) is out */
    bool creating;                  /* gen2.create_filesystems: a create is out */
} ap_breaker;

/* A resync that made Gen2 equal to Gen1 under root as of every record up to epoch. */
typedef struct ap_cover {
    char *root;
    uint64_t epoch;
} ap_cover;

typedef struct ap_cent {
    struct ap_cent *next;
    char *path;                     /* Gen1 path */
    bool is_dir;
    uint64_t len;                   /* files: committed length on Gen2 */
} ap_cent;

struct applier {
    const dp_config *cfg;
    httpc *http;
    gen1c *g1;
    gen2c *g2;
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* wakes the worker */
    pthread_cond_t idle;            /* pending reached 0 */
    aop *in_head, *in_tail;         /* submitted, not yet prepared */
    aop *head, *tail;               /* prepared, unfinished, in order */
    aop *timers;                    /* parked for a re-send, by due time */
    aop *ready, *ready_tail;        /* to re-send now (their breaker closed) */
    bool kick;                      /* something finished or arrived: schedule again */
    rset sched;                     /* a scheduling pass: the paths of the unfinished operations before
                                       the one looked at (worker thread, under mu) */
    unsigned in_flight;
    uint64_t pending;
    bool stopping, abandon, quit, orphaned;
    uint64_t n_applied, n_unmapped, n_invalid, n_divergence, n_resynced, n_parked, n_stopped;
    uint64_t n_failures;          /* writes that ended resynced or parked (the failures ring); an operator's
                                     own resync (a RESYNC record) counts as resynced, not as a failure */
    ap_ring divs, fails;
    /* applier.* settings (0 in the config: the documented default) */
    unsigned conc, backoff_base_ms, backoff_cap_ms, brk_failures, brk_probe_ms, resync_attempts;
    ap_breaker brk[2];
    ap_breaker *fsbrk;              /* one per mapped filesystem (applier_acct.c) */
    int nfsbrk;
    struct ap_probgauge *pgauges;   /* dualpipe_gen2_account_problem series */
    bool checked;                   /* applier_gen2_check ran once (the start-up check) */
    unsigned calls_out;             /* checks and creates in flight (the applier outlives them) */
    char g1_ident_err[256];         /* why the proxy's Gen1 identity could not be had, "" when it works */
    apply_gate_fn gate;
    void *gate_ud;
    ap_cover covers[AP_COVERS_MAX];
    int ncovers;
    ap_cent *cache[AP_CACHE_BUCKETS];
    unsigned ncache;
    char **marks;                   /* Gen1 paths created on Gen2 whose Gen1 metadata could not be read */
    int nmarks;
    uint64_t rng;
    ap_metrics mx;
    ap_ids *ids;
    spool *sp;                      /* re-copy parts are counted in it (applier_set_spool), or NULL */
    uint64_t part_bytes;            /* applier.copy_part_bytes */
    dgcache *dg;                    /* files' digests between writes (applier.digest_cache_entries) */
    unsigned dg_interval_ms;        /* applier.digest_interval_ms */
};

/* ---- applier.c: helpers ---------------------------------------------------------------------- */

const char *ap_op_name(whreq_op op);
/** The writer's parameter lname (lower-case) or NULL. */
const char *ap_param(const apply_req *r, const char *lname);
bool ap_param_bool(const apply_req *r, const char *lname, bool def);
/** Append a strdup of p to *v. Returns 0 or -1 (out of memory). */
int ap_path_list_add(char ***v, int *n, const char *p);
/** True when Gen1 path p is root or under it. */
bool ap_path_under(const char *p, const char *root);
int64_t ap_mono_ms(void);

/* The Gen2 path used for metadata calls: the filesystem's root directory is "/". */
static inline const char *ap_meta_target(const char *g2)
{
    return *g2 ? g2 : "/";
}

/* ---- applier.c: cross-file pieces of the core ------------------------------------------------- */

#define AP_STOP_MSG "the applier stopped before this write was mirrored"
/** Wall-clock milliseconds (Retry-After dates, admin timestamps). */
int64_t ap_real_ms(void);
/** Count an upstream answer by status class (metrics). */
void ap_count_answer(aop *op, const httpc_resp *r);

/* ---- applier_send.c: timers, breakers, sending ------------------------------------------------- */

extern const char *const ap_side_name[2]; /* "gen1", "gen2" */
/** FIFO of operations through qnext (a->mu held). */
void ap_fifo_push(aop **head, aop **tail, aop *op);
aop *ap_fifo_pop(aop **head, aop **tail);
/** Send op's current request now (the breaker already let it through). */
void ap_send_now(aop *op);
/** Send op's current request again, or hold it on its breaker's list while the breaker is open. */
void ap_resend(aop *op);
/** Gen2 answered fine for filesystem fs outside an operation (a check or a create of applier_acct.c):
 *  close what an account-level problem held open (checkable: also an authorization problem). */
void ap_acct_fine(applier *a, const char *fs, bool checkable);
/** Gen2 answered with account-level problem p (detail: what it said) for filesystem fs outside an
 *  operation: open the breaker it concerns (gen2c_problem_per_fs: fs's, else the Gen2 breaker). */
void ap_acct_problem(applier *a, const char *fs, gen2c_problem p, const char *detail);

/* ---- applier_acct.c: account-level problems (checks, creation, reports) ------------------------ */

/** Make one breaker per mapped filesystem. Returns 0 or -1 (out of memory). */
int ap_acct_init(applier *a);
void ap_acct_free(applier *a);
/** The breaker of filesystem fs, or NULL (the array never changes after init). */
ap_breaker *ap_acct_fsbrk(applier *a, const char *fs);
/** Log that a problem started (once per episode) or cleared (it held since since_ms). */
void ap_acct_log_start(applier *a, const char *fs, gen2c_problem p, const char *detail);
void ap_acct_log_clear(const char *fs, gen2c_problem p, int64_t since_ms, unsigned held);
/** FilesystemNotFound was seen for fs: create it when gen2.create_filesystems says so. */
void ap_acct_maybe_create(applier *a, const char *fs);
/** Move every operation waiting on a filesystem's breaker to the ready list (a->mu held; at stop). */
void ap_acct_release(applier *a);
/** The problems as a JSON array for the status (a->mu held). */
struct json_t *ap_acct_status_json(applier *a);
/** The dualpipe_gen2_account_problem{kind,filesystem} gauges. Returns 0 or -1. */
int ap_acct_register_metrics(applier *a, metrics *m);
/** A check or create (a->calls_out) ended: frees the applier when it was the last thing it waited for. */
void ap_call_done(applier *a);

/* ---- applier_sched.c: the worker --------------------------------------------------------------- */

/** The worker thread (applier_new starts it): preparation, ordering, scheduling, timers. */
void *ap_worker_main(void *arg);

/* ---- applier.c: outcomes ---------------------------------------------------------------------- */

/** The operation is over: count it, tell the submitter, free it, let the worker schedule more. A piece
 *  of a subtree copy (op->job) goes back to its copy instead. */
void ap_op_done(aop *op);
/** Free an operation and all it owns (no accounting; ap_op_done does that). */
void ap_op_free(aop *op);
/** Set the outcome and detail, then ap_op_done. */
__attribute__((format(printf, 3, 4))) void ap_op_finish(aop *op, apply_outcome oc, const char *fmt, ...);
/** The operation's first Gen2 attempt ended (ok: it applied) or it finished: run req->first once
 *  (for a piece of a copy: its owner's; for a group's leader: the members' too). */
void ap_first(aop *op, bool ok);
/** Park op on the timer list: after delay_ms, run wake (or re-send the current request when NULL).
 *  Finishes op as stopped instead when the applier is being abandoned. */
void ap_park(aop *op, int64_t delay_ms, ap_step wake);
/** A random delay in [0, min(cap, base * 2^n)] (full jitter). */
int64_t ap_backoff_ms(applier *a, int n);
/** Note a metadata problem (the data part went through): an APPLY_OK outcome becomes a divergence. */
__attribute__((format(printf, 2, 3))) void ap_op_note(aop *op, const char *fmt, ...);
/** Step that ends the operation with its current outcome. */
void ap_st_ok(aop *op);
/** What a Gen2/Gen1 answer was, for details: "Gen2 409 PathAlreadyExists", "Gen2 unreachable: ...". */
void ap_resp_what(const aop *op, const httpc_resp *r, char *buf, size_t cap);
/** Finish as failed: "<what the answer was> on <step>". */
void ap_op_fail_resp(aop *op, const httpc_resp *r, const char *step);
/** The Gen2 error code of an answer ("" for transport failures). */
const char *ap_g2code(const httpc_resp *r, char *buf, size_t cap);

/* ---- applier.c: sending (retries are handled there; h runs on the final answer) --------------- */

/** Send op->rq to Gen2 (op->fs) at rq_path (op-owned memory), with an optional fd-range body. */
void ap_g2_send(aop *op, const char *rq_path, httpc_body_in in, int fd, uint64_t off, uint64_t len, ap_handler h);
/** The same with the body in memory (mem stays valid until the answer). */
void ap_g2_send_mem(aop *op, const char *rq_path, const void *mem, uint64_t len, ap_handler h);
/** A body-less Gen2 request built by the caller into op->rq. */
void ap_g2_simple(aop *op, const char *rq_path, ap_handler h);
/** The same in filesystem fs (op-owned memory) instead of op->fs. */
void ap_g2_simple_in(aop *op, const char *fs, const char *rq_path, ap_handler h);
/** A Gen1 look-up on path with the proxy's own identity (gen1.auth), or without one the writer's ("op=X" + its
 *  user.name/doas/delegation). */
void ap_g1_get(aop *op, const char *path, const char *g1op, const char *extra, httpc_body_out out, int fd,
               ap_handler h);
/** A Gen1 listing page of path: LISTSTATUS (extra: listSize/listAfter), or LISTSTATUS_BATCH (extra:
 *  startAfter) on the hadoop dialect; answer in memory up to AP_LIST_MAX. */
void ap_g1_list(aop *op, const char *path, const char *extra, ap_handler h);

/* ---- applier.c: ordering ---------------------------------------------------------------------- */

/** For a CONCURRENTAPPEND: the seq of a later, not yet started CONCURRENTAPPEND of the same file that
 *  is the next operation conflicting with it (that one copies these bytes too), else 0. */
uint64_t ap_superseded_by(aop *op);
/** For an APPEND that applied: true when the next operation conflicting with it is a not yet started
 *  APPEND of the same file (a burst goes on). */
bool ap_append_follows(aop *op);
/** For an APPEND about to send: take the APPENDs that follow it on the same file (not started, nothing
 *  else on the path in between, offsets consistent) into op->grp. Returns how many were taken. */
int ap_group_take(aop *op);
/** Give a group's members back to the queue (the leader turned into a resync). */
void ap_group_release(aop *op);

/* ---- applier_state.c: cache of Gen2 lengths / directories, metadata marks (take a->mu) -------- */

void ap_cache_clear(applier *a);
void ap_cache_put(applier *a, const char *path, bool is_dir, uint64_t len);
/** 1 and *len for a file with a known length, 2 for a known directory, 0 unknown. */
int ap_cache_get(applier *a, const char *path, uint64_t *len);
/** Forget path and everything under it. */
void ap_cache_drop_tree(applier *a, const char *path);
void ap_marks_add(applier *a, const char *path);
void ap_marks_drop_tree(applier *a, const char *root);
/** Take the marks under src (moved to dst): their new paths, malloc'd, appended to *out. */
int ap_marks_take_moved(applier *a, const char *src, const char *dst, char ***out, int *n);
/** Remember that a resync made Gen2 equal to Gen1 under root as of every record up to epoch. */
void ap_cover_add(applier *a, const char *root, uint64_t epoch);
/** Whether a cover applies to op (seq <= its epoch, every path op touches under its root): the root
 *  into buf. Caller holds a->mu when locked is true. */
bool ap_covered(applier *a, const aop *op, bool locked, char *buf, size_t cap);
void ap_covers_clear(applier *a);

/* ---- applier_copy.c ---------------------------------------------------------------------------- */

/** Add a node whose metadata is to be copied from Gen1. Returns 0 or -1 (out of memory). */
int ap_meta_add(aop *op, const char *g1, const char *g2);
/** The same with its {"FileStatus":..} already read (copied; NULL: read it from Gen1). */
int ap_meta_add_status(aop *op, const char *g1, const char *g2, const char *status);
/** Copy the metadata of op->meta[] (ancestors first), then run then. */
void ap_meta_run(aop *op, ap_step then);
/** Find the ancestors of op->req->path Gen2 lacks (into op->meta, top-down), then run then. */
void ap_probe_ancestors(aop *op, ap_step then);
/** The ancestors the probe found missing now exist (Gen2 made them with the node). */
void ap_mark_ancestors(aop *op);
/** Send [off, off+len) of fd to op->g2path at position pos0.., flush per fl, then run then. */
void ap_data_run(aop *op, int fd, uint64_t off, uint64_t len, uint64_t pos0, xlate_flush fl, ap_step then);
/** ap_data_run for bytes whose CRC-32C is known (a copy's part, computed as it arrived from Gen1): it
 *  goes into op->dcrc when the last byte is sent, and the bytes are not read back for it. */
void ap_data_run_crc(aop *op, int fd, uint64_t off, uint64_t len, uint32_t crc, uint64_t pos0, xlate_flush fl,
                     ap_step then);
/** The same for the extents op->ext[first..op->next_ext) back to back (op->ext is op's). */
void ap_data_run_ext(aop *op, int first, uint64_t pos0, xlate_flush fl, ap_step then);
/** A Gen2 HEAD/getStatus answer: a directory (*is_dir), or a file and its committed length. False when
 *  the answer says neither. */
bool ap_g2_file_len(const httpc_resp *r, uint64_t *len, bool *is_dir);
/* ---- applier_range.c --------------------------------------------------------------------------- */

/**
 * Copy Gen1's file op->req->path to op->g2path (op->fs) without a gap: read in ranged parts (counted
 * in the spool), written under a temporary name next to the target (the missing ancestors probed
 * first), flushed, given Gen1's metadata, renamed over the target; then run then. A file gone from
 * Gen1 meanwhile (404) copies nothing and runs then.
 */
void ap_copy_file(aop *op, ap_step then);
/** Append Gen1's bytes past gen2_len (what Gen2 holds of op->g2path) to it in ranged parts, flush
 *  (close), then run then. When Gen1 holds fewer bytes than gen2_len, a whole copy (ap_copy_file). */
void ap_copy_tail(aop *op, uint64_t gen2_len, ap_step then);
/** Free op->cp (gives back its spool room). NULL is fine. */
void ap_copy_free(aop *op);
/** AP_TMP_PREFIX "<seq>-": the prefix of the temporary names of the copies for record seq. */
int ap_tmp_own_prefix(uint64_t seq, char *buf, size_t cap);
/** CONCAT, MSCONCAT, CONCURRENTAPPEND: re-copy the result from Gen1, then delete the sources. */
void ap_st_recopy(aop *op);

/* ---- applier_resync.c ---------------------------------------------------------------------------- */

/**
 * Make Gen2 equal to Gen1 for the subtree at Gen1 path root without a gap: every node Gen1 has there
 * is created or updated on Gen2 where its own mapping puts it (directories in place, files through a
 * temporary name renamed over them, metadata), a few at a time, walking Gen1 with GETFILESTATUS and
 * paged listings with op's writer identity; then what Gen2 holds in those directories and Gen1 does
 * not is removed (a root Gen1 lacks is deleted). Names Gen2 would reject and unmapped nodes are skipped
 * (with their subtrees) and counted. When all is done, then runs on op (metadata problems noted as
 * a divergence); if a node failed, op finishes as failed instead. op must not be touched by its
 * caller after this call (tail call); op's ordering entry covers root for the whole copy.
 */
void ap_resync_run(aop *op, const char *root, ap_step then);
/** What the copy op->rs did ("2 files and 1 directory copied"), for details. */
void ap_resync_summary(const aop *op, char *buf, size_t cap);
/** A piece of a copy ended (from ap_op_done): account for it and free it. */
void ap_resync_piece_done(aop *piece);
/** Free a copy's state, a piece's node (from ap_op_free; NULL is fine). */
void ap_resync_free(ap_resync *rs);
void ap_rsnode_free(ap_rsnode *n);
/** The operation a copy belongs to. */
aop *ap_resync_owner(const ap_resync *rs);
/**
 * Turn op into a resync of the paths it touches (a RENAME: source and destination): per root, ask
 * the gate (waiting while it is busy), copy the subtree from Gen1, ask the gate again (redo the copy
 * when a record came in meanwhile), remember the cover; then op finishes APPLY_RESYNCED with why in
 * the detail. A copy that fails is retried (backoff) up to applier.resync_attempts times in all,
 * then op finishes APPLY_PARKED. Tail call.
 */
void ap_op_resync(aop *op, const char *why);
/** A copy of op's resync failed (from ap_op_done, op->resyncing and APPLY_FAILED): retry or park. */
void ap_op_resync_failed(aop *op);

/* ---- applier_ids.c: identities on Gen2 (owners, groups, ACL entry names), ACL limits ----------- */

/** Set up from gen2.identity_map / gen2.unmapped_identity (the map must load) and start watching the
 *  file. Returns 0 or -1 with a message. */
int ap_ids_new(applier *a, const dp_config *cfg, ap_ids **out, char *err, size_t errlen);
/** Stop watching (joins the watcher thread); ap_ids_free frees. NULL is fine for both. */
void ap_ids_stop(ap_ids *ids);
void ap_ids_free(ap_ids *ids);
/** Have the watcher read the map file now, even if it looks unchanged (SIGHUP). */
void ap_ids_reread(ap_ids *ids);
int ap_ids_register_metrics(ap_ids *ids, metrics *m);
/** {"map":..,"policy":..,"generation":n,"unmapped_total":{"user":n,"group":n},"acl_over_limit":n,
 *  "acl_base_added":n,"unmapped":[{"kind","name","path","count","time_ms"}...]} (newest first). */
json_t *ap_ids_json(ap_ids *ids);
void ap_ids_on_change(ap_ids *ids, void (*fn)(void *ud), void *ud);
/**
 * Translate a metadata copy's owner, group and ACL (m, read from Gen1 for path g1) to Gen2 identities
 * in place, then account for what could not be mapped (counted, reported; drop: op's outcome becomes
 * a divergence naming the names; resync-later: op, or the operation a copy piece belongs to, owes
 * metadata) and for an ACL over Gen2's limit (divergence) or with base entries filled in (counted).
 */
void ap_ids_meta(aop *op, const char *g1, xlate_meta *m);
/** SETOWNER: owner and group (either may be NULL) translated into o and g ("" = leave out). */
void ap_ids_owner(aop *op, const char *owner, const char *group, char o[256], char g[256]);
/** ACL ops: the writer's aclspec translated once into op->ids_spec (op->ids_spec_empty when nothing is
 *  left). Returns 0, or -1 (out of memory / a spec that does not parse: op->ids_spec stays NULL). */
int ap_ids_aclspec(aop *op, const char *spec, bool with_perm);
/** At the end of op (ap_op_done): an op that owes metadata ends APPLY_PARKED with APPLY_IDS_OWED. */
void ap_ids_settle(aop *op);

/* ---- applier_digest.c: CRC-32C digests of the files the proxy writes (xlate.h XLATE_CRC_KEY) ---- */

/** Extend *crc with the CRC-32C of [off, off+len) of fd. 0 or -errno (a read failed or came short). */
int ap_crc_fd(int fd, uint64_t off, uint64_t len, uint32_t *crc);
/** The CRC-32C of a finished body as the spool computed it (true), or false when the journal kept
 *  another kind (a SHA-256, records of journal format 1.0): then the caller reads the bytes back. */
bool ap_body_crc(const spool_body *b, uint32_t *crc);
/** The data step's current request was accepted by Gen2: add its bytes to op->dcrc. */
void ap_dg_data_sent(aop *op);
/** An operation starts: forget the digests of what it changes without following the bytes (all but
 *  APPEND, the metadata-only operations and RENAME, whose end moves them). */
void ap_dg_on_start(aop *op);
/** An operation ended (ap_op_done): one that did not apply (failed, resynced, parked, stopped) forgets the
 *  digests of every path it touches; with always (the start of a resync of op's paths), whatever it did. */
void ap_dg_forget(aop *op, bool always);
/** The metadata copy of node n is being built: with op->dg_known and n the node op->dg_g2 names, the
 *  digest goes to Gen2 with the times (op->m). */
void ap_dg_meta(aop *op, const ap_node *n);
/** The metadata copy's request op->rq for node n was accepted: keep the properties it set (op->dg_props). */
void ap_dg_meta_done(aop *op, const ap_node *n);
/** A CREATE or a whole-file copy of op->req->path is done: remember its digest (when its metadata copy
 *  wrote one), else forget the path's. Clears op->dg_*. */
void ap_dg_remember(aop *op);
/**
 * The step after an APPEND's data (and flush): work out the file's new digest from the remembered one
 * (or the property, read with a HEAD) and op->dcrc; when the next operation on the path is another
 * APPEND, leave the write to it; else read Gen1's times (GETFILESTATUS) and write XLATE_CRC_KEY (and
 * XLATE_TIMES_KEY when Gen1 holds exactly the new length) in one setProperties with If-Match. Never
 * fails the APPEND: a digest that cannot be known is not written (then ap_st_ok).
 */
void ap_st_append_digest(aop *op);
/** The digest of the first len bytes of path as remembered (a tail copy extends it): true and *crc. */
bool ap_dg_base(applier *a, const char *path, uint64_t len, uint32_t *crc);

/* ---- applier_ops.c ----------------------------------------------------------------------------- */

/** Start a prepared operation (worker thread). */
void ap_op_start(aop *op);
/** Send one round of a Gen2 DELETE of op->g2path (continuing from op->cont, NULL for the first round);
 *  h gets the answer and normally hands it to ap_delete_round_answer. */
void ap_delete_round(aop *op, bool recursive, ap_handler h);
/** Handle a DELETE round's answer: an x-ms-continuation sends the next round to again; done or 404
 *  (nothing there) drops the cached view of op->req->path's subtree and runs then; any other answer
 *  fails op with label naming what failed. */
void ap_delete_round_answer(aop *op, httpc_resp *r, bool recursive, ap_handler again, const char *label,
                            ap_step then);

#endif
