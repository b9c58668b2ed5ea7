/*
 * mirror_int: what the mirror's files share (mirror.c: queue, workers, ordering, retries, breakers,
 * outcomes, metrics, public API; mirror_ops.c: replaying one record onto Gen1 with its idempotency
 * checks; mirror_resync.c: copying Gen2 → Gen1 and the resync of an operation). Not part of the
 * interface (mirror.h); symbols carry the mr_ prefix.
 *
 * Threads: an operation (mop) is run start to end by one worker thread; the mirror's shared fields
 * (list, counters, breakers, covers, ring) are under m->mu.
 */
#ifndef DP_MIRROR_INT_H
#define DP_MIRROR_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "idmap.h"
#include "mirror.h"
#include "relset.h"
#include "xlate.h"

#define MR_CONC_MAX 256             /* upper bound of concurrency (worker threads) */
#define MR_RING 100                 /* failures kept for the status */
#define MR_COVERS_MAX 1024          /* resyncs remembered for covering later operations */
#define MR_GATE_WAIT_MS 50          /* a busy gate is asked again after 50, 100, 200, 200 ... ms */
#define MR_GATE_WAIT_MAX_MS 200
#define MR_RESYNC_REDOS 20          /* copies of one root redone because a record came in meanwhile */
#define MR_COPY_REDO 8              /* copies of one file made because Gen2 changed during the copy */
#define MR_JSON_MAX (8u << 20)      /* Gen1/Gen2 JSON answers read into memory */
#define MR_CONCAT_BODY_MAX (1u << 20)
#define MR_PATH_CAP 4200            /* a Gen2 path */
#define MR_DEPTH_MAX 512            /* directory depth a resync walks */
#define MR_STOP_MSG "mirror stopped before the write reached Gen1 (the journal keeps it)"

enum { MR_G1 = 0, MR_G2 = 1 };

typedef struct mop mop;
struct mop {
    mirror *m;
    apply_req *req;
    void (*done)(void *ud, const apply_result *res);
    void *ud;
    mop *prev, *next;               /* m->head..tail, submission order */
    int64_t t0_ms;                  /* submitted (monotonic) */
    bool started, first_done;
    char **touch;                   /* Gen1 paths it touches (ordering; resync roots) */
    int ntouch;
    char *dst;                      /* RENAME: the destination, normalised */
    xlate_paths srcs;               /* CONCAT/MSCONCAT: the sources */
    char *concat_body;              /* MSCONCAT: the body as read from the spool */
    size_t concat_len;
    char prep_err[256];             /* preparation failed: resync with this */
    int attempt;                    /* transient failures of the current request (backoff) */
    apply_outcome outcome;
    char detail[512];
    char note[300];                 /* a metadata difference (APPLY_DIVERGENCE) */
};

typedef struct mr_rec {
    uint64_t seq;
    int64_t time_ms;
    whreq_op op;
    apply_outcome outcome;
    char path[512];
    char detail[512];
} mr_rec;

typedef struct mr_breaker {
    unsigned fails;                 /* transient failures in a row */
    bool open, probing;
    int64_t next_probe_ms;
    unsigned closes;                /* times it closed: a backoff started before the last close ends early */
    mirror *m;                      /* (gauge callback) */
} mr_breaker;

typedef struct mr_cover {
    char *root;
    uint64_t epoch;
} mr_cover;

struct mirror {
    mirror_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* work, a finished operation, a breaker closing, stop (monotonic) */
    pthread_cond_t idle;            /* pending reached 0 */
    pthread_t workers[MR_CONC_MAX];
    int nworkers;
    mop *head, *tail;
    rset sched;
    uint64_t pending;
    unsigned in_flight;
    bool stopping, abandon, quit;
    uint64_t n_applied, n_divergence, n_resynced, n_parked, n_stopped, n_retries[2];
    mr_rec ring[MR_RING];
    int ring_next, ring_n;
    mr_breaker brk[2];
    mr_cover covers[MR_COVERS_MAX];
    int ncovers;
    uint64_t rng;
    /* metrics (mirror_register_metrics); NULL: no-ops */
    metrics *mx;
    _Atomic(metrics_counter *) ops[WH_OP__COUNT][APPLY__COUNT];
    metrics_histogram *lag;
    metrics_counter *retries[2];
};

/* ---- mirror.c ---------------------------------------------------------------------------------- */

int64_t mr_mono_ms(void);
const char *mr_op_name(whreq_op op);
/** The record's parameter lname, or NULL. */
const char *mr_param(const apply_req *r, const char *lname);
bool mr_param_u64(const apply_req *r, const char *lname, uint64_t *out);
bool mr_parse_u64(const char *s, uint64_t *out);
int mr_list_add(char ***v, int *n, const char *p);
bool mr_under(const char *p, const char *root);
/** True once the mirror is giving up on running operations (they end APPLY_STOPPED). */
bool mr_abandoned(mirror *m);
/** Sleep ms (monotonic), cut short when the mirror abandons. False when it does. */
bool mr_sleep(mirror *m, int64_t ms);
/** Remember that a resync made Gen1 equal to Gen2 under root as of every record up to epoch. */
void mr_cover_add(mirror *m, const char *root, uint64_t epoch);
/** Note a metadata difference: an APPLY_OK outcome becomes APPLY_DIVERGENCE with it. */
__attribute__((format(printf, 2, 3))) void mr_note(mop *op, const char *fmt, ...);
/** Set op->detail. */
__attribute__((format(printf, 2, 3))) void mr_why(mop *op, const char *fmt, ...);
void mr_resp_free(httpc_resp *r);
/** "Gen1 404 FileNotFoundException", "Gen1 unreachable: ..." into buf. */
void mr_resp_what(int side, const httpc_resp *r, char *buf, size_t cap);
/** A Gen1 RemoteException's exception name ("" when none). */
const char *mr_g1_exception(const httpc_resp *r, char *buf, size_t cap);

/* One request to Gen1 (gen1c_own). */
typedef struct mr_g1req {
    const char *method;
    whreq_prefix prefix;
    const char *path;
    const char *query;              /* "op=X&..." encoded */
    const char *ctype;
    const void *mem;                /* body from memory ... */
    int fd;                         /* ... or from fd (when len and !mem) */
    uint64_t off, len;
    size_t out_max;                 /* answer in memory up to this (0: MR_JSON_MAX) */
    bool write;                     /* a write: sent at most once per step (httpc once) */
} mr_g1req;

/** Send once, through the Gen1 breaker (waits while it is open; one probe at a time). Returns the
 *  answer (never NULL unless the mirror abandoned: then NULL); *transient: worth another try. */
httpc_resp *mr_g1_try(mop *op, const mr_g1req *q, bool *transient);
/** Back off before another try of op's current request after r (NULL ok): full jitter, Retry-After.
 *  Cut short when side's breaker closes meanwhile (its probe went through). Counts a retry. False when
 *  the mirror abandoned meanwhile. */
bool mr_backoff(mop *op, int side, const httpc_resp *r);
/** Try until an answer that is not transient (idempotent requests). NULL when the mirror abandoned. */
httpc_resp *mr_g1_retry(mop *op, const mr_g1req *q);
/** The same for Gen2 (gen2c_send; call.done/ud are set here). */
httpc_resp *mr_g2_retry(mop *op, gen2c_call *call);

/** The identity map in use (a reference: idm_unref it), or NULL without one. */
idm_map *mr_ids_get(mirror *m);
/** A Gen2 identity's Gen1 name through the map (idm_reverse), or the name as it is when no line maps it. */
const char *mr_name_back(const idm_map *map, idm_kind kind, const char *id);

/* ---- mirror_ops.c ------------------------------------------------------------------------------ */

/** Gen1 state of one path. */
typedef struct mr_stat {
    bool is_dir;
    uint64_t length;
    int64_t mtime_ms;
    char owner[256], group[256];
} mr_stat;
/** GETFILESTATUS of path: 1 exists (*st), 0 missing, -1 stopped, -2 failed (op->detail says why). */
int mr_g1_stat(mop *op, const char *path, mr_stat *st);
/** Append "&name=value" (both encoded) to q. 0 or -1. */
int mr_q_add(dbuf *q, const char *name, const char *value);
/** Write bytes at offset off of Gen1's file path (APPEND, adls with offset=; hadoop after a length
 *  check), deciding a possible earlier landing from the length. mem or [fd off..]. ext: /WebHdfsExt
 *  CONCURRENTAPPEND instead of APPEND. Returns 0 written (or had landed), 1 failed (detail), -1 stopped. */
int mr_write_at(mop *op, const char *path, uint64_t at, const void *mem, int fd, uint64_t foff, uint64_t len,
                bool concurrent, bool maybe);
/** Replay op's record onto Gen1. 0: done (outcome OK, maybe a note), 1: failed for good (detail: why;
 *  resync), -1: stopped. */
int mr_apply(mop *op);

/* ---- mirror_resync.c --------------------------------------------------------------------------- */

/** Make Gen1 equal to Gen2 for op's paths (gate, copy, redo, cover), up to resync_attempts tries.
 *  Sets op->outcome (RESYNCED, PARKED or STOPPED) and op->detail (why + what the copies did). */
void mr_resync(mop *op, const char *why);

#endif
